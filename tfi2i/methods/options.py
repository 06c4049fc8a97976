"""Option declarations that several methods share: networks and losses.

A method lists these in its `options`, with `with_default` where its paper
chose another default (e.g. CycleGAN's `NETG.with_default("resnet_9blocks")`).
Each is declared here once, so its flag, help and allowed values are the same
for every method.
"""

from tfi2i.errors import UserError
from tfi2i.losses import FEATURE_LOSSES, GAN_MODES, MMD_KERNELS
from tfi2i.nets import DISCRIMINATORS, GENERATORS, INIT_TYPES, size_divisor
from tfi2i.nets.layers import NORM_TYPES
from tfi2i.options import Option

# "unet" with a free number of downsamplings is for Python users of tfi2i.nets.
_NAMED_GENERATORS = tuple(g for g in GENERATORS if g != "unet")

NETG = Option("netG", str, "unet_256", "Generator architecture.", choices=_NAMED_GENERATORS)
NETD = Option("netD", str, "basic", "Discriminator: basic (70x70 PatchGAN), n_layers, pixel.",
              choices=DISCRIMINATORS)
NGF = Option("ngf", int, 64, "Generator filters in the first layer.", min=1)
NDF = Option("ndf", int, 64, "Discriminator filters in the first layer.", min=1)
N_LAYERS_D = Option("n_layers_D", int, 3, "Discriminator depth for --netD=n_layers.", min=1)
NORM = Option("norm", str, "batch", "Normalization layers.", choices=NORM_TYPES)
USE_DROPOUT = Option("use_dropout", bool, False, "Dropout 0.5 in the generator.")
INIT_TYPE = Option("init_type", str, "normal", "Weight initialisation.", choices=INIT_TYPES)
INIT_GAIN = Option("init_gain", float, 0.02, "Scale of the weight initialisation.", min=0.0)
GAN_MODE = Option("gan_mode", str, "lsgan", "Adversarial loss.", choices=GAN_MODES)
LAMBDA_GAN = Option("lambda_gan", float, 1.0, "Weight of the adversarial terms (1 in the "
                    "papers); 0 trains the generators without them and the discriminators not "
                    "at all (CycleGAN's \"cycle alone\" ablation).", min=0.0)
LAMBDA_A = Option("lambda_A", float, 10.0, "Weight of the reconstruction of domain A "
                  "through the other domain, |G_B(G_A(a)) - a| (CycleGAN's cycle loss A -> B -> "
                  "A, DualGAN's lambda_U).", min=0.0)
LAMBDA_B = Option("lambda_B", float, 10.0, "Weight of the reconstruction of domain B, "
                  "|G_A(G_B(b)) - b| (DualGAN's lambda_V).", min=0.0)
POOL_SIZE = Option("pool_size", int, 50, "Past fakes kept per discriminator (the image "
                   "history pool of SimGAN and CycleGAN); 0 updates the discriminators on the "
                   "newest fakes only.", min=0)
LAMBDA_GP = Option("lambda_gp", float, 10.0, "Weight of the gradient penalty "
                   "(--gan_mode=wgangp).", min=0.0)
LAMBDA_L1 = Option("lambda_L1", float, 100.0, "Weight of the L1 distance between the "
                   "output and its target (pix2pix: 100; BicycleGAN: 10, on |G(A, E(B)) - B|).",
                   min=0.0)
NEF = Option("nef", int, 64, "Encoder filters in the first layer (DTN's f: 1, 2, 4, 2 x nef; "
             "BicycleGAN's E).", min=1)
NZ = Option("nz", int, 8, "Length of the latent code z, prior N(0, I) (BicycleGAN: 8).", min=1)

FEATURE_LOSS = Option("feature_loss", str, "none", "Also pull the discriminator's hidden "
                      "features of generated images towards those of real ones: fm (feature "
                      "matching of batch means, Salimans et al. 2016) or mmd (maximum mean "
                      "discrepancy, --mmd_kernel); none: off.",
                      choices=("none",) + FEATURE_LOSSES)
LAMBDA_FEATURE = Option("lambda_feature", float, 1.0, "Weight of --feature_loss in the "
                        "generator's objective.", min=0.0)
MMD_KERNEL = Option("mmd_kernel", str, "gaussian", "--feature_loss=mmd: gaussian (every "
                    "moment, several bandwidths), linear (means) or gram (second moments, "
                    "the style loss).", choices=MMD_KERNELS)
FEATURE_OPTIONS = (FEATURE_LOSS, LAMBDA_FEATURE, MMD_KERNEL)


# Preprocessing modes whose training images are crops of crop_size.
_CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")


def check_crop_fits_generator(config):
    """Raises UserError unless --crop_size fits --netG (the most common first mistake).

    Modes that do not crop round image sizes to the generator's divisor
    themselves, so only cropping modes are checked.
    """
    netG, crop = config["netG"], config["crop_size"]
    divisor = size_divisor(netG)
    if config["preprocess"] not in _CROPPING or crop % divisor == 0:
        return
    fits = [g for g in _NAMED_GENERATORS if crop % size_divisor(g) == 0]
    suggestion = max(divisor, round(crop / divisor) * divisor)
    raise UserError(
        f"--crop_size={crop} does not fit --netG={netG}, which needs image sides that are "
        f"multiples of {divisor}: use --crop_size={suggestion}"
        + (f", or a generator that takes {crop} px: {', '.join(fits)}." if fits else "."))


def check_pool_fits_preprocess(config):
    """Raises UserError when --preprocess gives images of varying sizes but a pool is on.

    Image pools hold crop_size x crop_size images (static shapes, for XLA and
    tf.distribute); scale_width and none give training images of other sizes.
    """
    if config["pool_size"] > 0 and config["preprocess"] in ("scale_width", "none"):
        raise UserError(
            f"--preprocess={config['preprocess']} gives training images of varying sizes, "
            f"which the image pools (--pool_size={config['pool_size']}) cannot hold: use a "
            "cropping mode (resize_and_crop, crop, scale_width_and_crop) or --pool_size=0.")


# The shared-latent and multimodal methods' nets (tfi2i.nets.latent: UNIT, MUNIT, DRIT).
N_DOWNSAMPLE = Option("n_downsample", int, 2, "Stride-2 convolutions of the content encoders "
                      "(and nearest upsamplings of the decoders).", min=1)
N_RES = Option("n_res", int, 4, "Residual blocks of each content encoder and each decoder.",
               min=0)
NUM_SCALES = Option("num_scales", int, 3, "Scales of the multi-scale discriminators (the "
                    "image halved by average pooling between scales).", min=1)
N_LAYER = Option("n_layer", int, 4, "Stride-2 convolutions of each scale of the multi-scale "
                 "discriminators.", min=1)
LAMBDA_RECON = Option("lambda_recon", float, 10.0, "Weight of the within-domain image "
                      "reconstruction |dec(enc(x)) - x|_1 (UNIT's and MUNIT's recon_x_w).",
                      min=0.0)
LAMBDA_KL = Option("lambda_kl", float, 0.01, "Weight of the KL term of the latent code.",
                   min=0.0)
LAMBDA_CYCLE = Option("lambda_cycle", float, 10.0, "Weight of the cycle reconstruction "
                      "|x -> other domain -> x|_1 (UNIT's and MUNIT's recon_x_cyc_w).", min=0.0)
