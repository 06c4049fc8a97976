"""Translation methods, one file each, registered by name for `--method`."""

from tfi2i.methods.registry import METHODS, get_method, register
from tfi2i.methods.pix2pix import Pix2Pix
from tfi2i.methods.cyclegan import CycleGAN
from tfi2i.methods.dualgan import DualGAN
from tfi2i.methods.discogan import DiscoGAN
from tfi2i.methods.dtn import DTN
from tfi2i.methods.simgan import SimGAN
from tfi2i.methods.cogan import CoGAN
from tfi2i.methods.bigan import BiGAN
from tfi2i.methods.bicycle_gan import BicycleGAN
from tfi2i.methods.unit import UNIT
from tfi2i.methods.munit import MUNIT
from tfi2i.methods.drit import DRIT

__all__ = ["METHODS", "get_method", "register", "Pix2Pix", "CycleGAN", "DualGAN", "DiscoGAN",
           "DTN", "SimGAN", "BiGAN", "CoGAN", "BicycleGAN", "UNIT", "MUNIT", "DRIT"]
