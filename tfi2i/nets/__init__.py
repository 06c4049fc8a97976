"""Networks: custom layers and the generator/discriminator architectures.

`define_G` and `define_D` build the nets of the pix2pix/CycleGAN reference code by name,
with its structure, parameter counts and initialisation.
"""

from tfi2i.nets.bicycle import (
    AveragePooling2DExcludePad,
    ConcatenateLatent,
    define_bicycle_D,
    define_bicycle_E,
    define_bicycle_G,
)
from tfi2i.nets.discriminators import DISCRIMINATORS, define_D, with_features
from tfi2i.nets.generators import GENERATORS, check_size, define_G, size_divisor
from tfi2i.nets.initializers import INIT_TYPES
from tfi2i.nets.latent import (
    AdaptiveInstanceNormalization,
    LayerNorm2D,
    SpectralNormalization,
)
from tfi2i.nets.layers import NORM_TYPES, InstanceNormalization, ReflectionPadding2D

__all__ = [
    "AdaptiveInstanceNormalization",
    "AveragePooling2DExcludePad",
    "ConcatenateLatent",
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "NORM_TYPES",
    "InstanceNormalization",
    "LayerNorm2D",
    "ReflectionPadding2D",
    "SpectralNormalization",
    "check_size",
    "define_D",
    "define_G",
    "define_bicycle_D",
    "define_bicycle_E",
    "define_bicycle_G",
    "size_divisor",
    "with_features",
]
