"""The networks of DiscoGAN (Kim et al. 2017): an encoder-decoder generator and a
discriminator that also returns its intermediate features.

Both are functional `keras.Model`s on NHWC images in **[0, 1]** (the generator ends in a
sigmoid), as in the authors' code (`discogan/model.py` of SKTBrain/DiscoGAN). Every
convolution there is `bias=False`, with or without a batch norm after it; batch norms use
PyTorch's defaults (momentum 0.1, i.e. Keras 0.9, epsilon 1e-5).

With ngf = ndf = 64 on RGB images the generator has 5,513,856 trainable parameters and the
discriminator 2,765,568 (PyTorch's count: kernels plus batch-norm scales and offsets; Keras
also counts the batch norms' moving statistics, 2,688 and 1,792 more, as non-trainable).
"""

import keras

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.layers import check_norm, conv2d, conv2d_transpose, normalization

# Four stride-2 convolutions in the encoder and in the discriminator.
DISCOGAN_SIZE_DIVISOR = 16
# The discriminator's last 4x4 "valid" convolution needs a 4x4 map after four halvings.
DISCOGAN_MIN_SIZE = 64


def check_discogan_size(height, width):
    """Raises UserError unless height x width images fit the DiscoGAN nets."""
    for side in (height, width):
        if side % DISCOGAN_SIZE_DIVISOR or side < DISCOGAN_MIN_SIZE:
            raise UserError(
                f"DiscoGAN's nets take images whose sides are multiples of "
                f"{DISCOGAN_SIZE_DIVISOR} and at least {DISCOGAN_MIN_SIZE} px (the paper's 64 x "
                f"64: four stride-2 convolutions, then the discriminator's 4x4 valid "
                f"convolution); got {height} x {width}. Use --crop_size=64.")


def _norm(x, norm, init_gain, name):
    layer = normalization(norm, init_gain, name=name)
    return x if layer is None else layer(x)


def discogan_generator(input_nc=3, output_nc=3, ngf=64, norm="batch", init_type="normal",
                       init_gain=0.02, name="G"):
    """The reference `Generator` (extra_layers=False): an encoder-decoder without skips.

    Encoder: conv4 s2 p1 to ngf, 2 ngf, 4 ngf, 8 ngf, batch norm from the second layer on,
    LeakyReLU 0.2. Decoder: transposed conv4 s2 p1 to 4 ngf, 2 ngf, ngf, each with batch
    norm and ReLU, then a transposed conv4 s2 p1 to `output_nc` and a sigmoid. A 64 x 64
    input goes down to 4 x 4 x 8 ngf and back.

    Args:
        input_nc, output_nc: channels in and out.
        ngf: filters of the first layer.
        norm: "batch" (the reference), "sync_batch" (statistics over all replicas), or
            another of `tfi2i.nets.layers.NORM_TYPES` (not the reference's).
        init_type, init_gain: kernel initialisation (`tfi2i.nets.initializers`).
        name: the model's name.

    Returns:
        A functional keras.Model from [N, H, W, input_nc] in [0, 1] to
        [N, H, W, output_nc] in [0, 1] (float32 even under mixed precision).
    """
    initializers.check_init_type(init_type)
    check_norm(norm)
    conv = dict(use_bias=False, init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(inputs, ngf, 4, 2, 1, name="conv1", **conv)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu1")(x)
    for i, mult in enumerate((2, 4, 8), start=2):
        x = conv2d(x, ngf * mult, 4, 2, 1, name=f"conv{i}", **conv)
        x = _norm(x, norm, init_gain, f"bn{i}")
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{i}")(x)
    for i, mult in enumerate((4, 2, 1), start=1):
        x = conv2d_transpose(x, ngf * mult, 4, 2, 1, name=f"deconv{i}", **conv)
        x = _norm(x, norm, init_gain, f"deconv{i}_bn")
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = conv2d_transpose(x, output_nc, 4, 2, 1, name="deconv4", **conv)
    outputs = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
    return keras.Model(inputs, outputs, name=name)


def discogan_discriminator(input_nc=3, ndf=64, norm="batch", init_type="normal", init_gain=0.02,
                           name="D"):
    """The reference `Discriminator`, returning its logits and its features.

    conv4 s2 p1 to ndf, 2 ndf, 4 ndf, 8 ndf (batch norm from the second layer on, LeakyReLU
    0.2), then a 4x4 convolution without padding to one channel: one logit for a 64 x 64
    image (an (H/16 - 3) x (W/16 - 3) map for larger ones). The reference applies the
    sigmoid inside the net and BCELoss after it; here the net returns the logit and the loss
    applies the sigmoid (`tfi2i.losses.gan_loss("vanilla", ...)`), the same function,
    computed stably.

    Args:
        input_nc: channels of the images judged.
        ndf: filters of the first layer.
        norm: as for `discogan_generator`.
        init_type, init_gain: kernel initialisation.
        name: the model's name.

    Returns:
        A functional keras.Model from [N, H, W, input_nc] in [0, 1] to a list
        `[logits, feature_2, feature_3, feature_4]`: the logits [N, h, w, 1] and the
        activations after the LeakyReLU of layers 2, 3 and 4 (the reference's relu2, relu3,
        relu4, which its feature-matching loss compares), all float32.
    """
    initializers.check_init_type(init_type)
    check_norm(norm)
    conv = dict(use_bias=False, init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(inputs, ndf, 4, 2, 1, name="conv1", **conv)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu1")(x)
    features = []
    for i, mult in enumerate((2, 4, 8), start=2):
        x = conv2d(x, ndf * mult, 4, 2, 1, name=f"conv{i}", **conv)
        x = _norm(x, norm, init_gain, f"bn{i}")
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{i}")(x)
        features.append(keras.layers.Activation("linear", dtype="float32",
                                                name=f"feature{i}")(x))
    logits = conv2d(x, 1, 4, 1, 0, dtype="float32", name="logits", **conv)
    return keras.Model(inputs, [logits] + features, name=name)
