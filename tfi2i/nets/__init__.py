"""Networks: custom layers and the generator/discriminator architectures.

`define_G` and `define_D` build the nets of the pix2pix/CycleGAN reference code by name,
with its structure, parameter counts and initialisation.
"""

from tfi2i.nets.discriminators import DISCRIMINATORS, define_D, with_features
from tfi2i.nets.generators import GENERATORS, check_size, define_G, size_divisor
from tfi2i.nets.initializers import INIT_TYPES
from tfi2i.nets.layers import NORM_TYPES, InstanceNormalization, ReflectionPadding2D

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "NORM_TYPES",
    "InstanceNormalization",
    "ReflectionPadding2D",
    "check_size",
    "define_D",
    "define_G",
    "size_divisor",
    "with_features",
]
