"""Discriminators of the pix2pix/CycleGAN reference: PatchGAN and PixelGAN.

Functional `keras.Model`s on NHWC images that return raw logits (no sigmoid; the losses
apply what they need), in float32 even under a mixed-precision policy. They accept any
input size large enough for their convolutions.
"""

import keras

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.layers import check_norm, conv2d, conv_uses_bias, normalization

DISCRIMINATORS = ("basic", "n_layers", "pixel")


def nlayer_discriminator(input_nc, ndf=64, n_layers=3, norm="batch", init_type="normal",
                         init_gain=0.02, name="D"):
    """The reference PatchGAN (`NLayerDiscriminator`).

    C(ndf) without norm, then `n_layers - 1` stride-2 blocks C(ndf * min(2**n, 8)), then
    one stride-1 block C(ndf * min(2**n_layers, 8)), then a stride-1 convolution to one
    channel. C = 4x4 conv with zero padding 1, norm, LeakyReLU(0.2). With n_layers 3 each
    logit sees a 70x70 patch and a 256x256 input gives 30x30 logits; n_layers 1 gives the
    paper's 16x16 PatchGAN.

    Args: see `define_D`; `n_layers` is the reference's `n_layers_D`.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise UserError(f"n_layers_D must be an integer >= 1, got {n_layers!r}.")
    use_bias = conv_uses_bias(norm)

    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(inputs, ndf, 4, 2, 1, True, init_type, init_gain, name="conv1")
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu1")(x)
    for n in range(1, n_layers + 1):
        # The last of these blocks keeps the resolution (stride 1).
        strides = 2 if n < n_layers else 1
        x = conv2d(x, ndf * min(2**n, 8), 4, strides, 1, use_bias, init_type, init_gain,
                   name=f"conv{n + 1}")
        layer = normalization(norm, init_gain, name=f"norm{n + 1}")
        if layer is not None:
            x = layer(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{n + 1}")(x)
    outputs = conv2d(x, 1, 4, 1, 1, True, init_type, init_gain, dtype="float32", name="logits")
    return keras.Model(inputs, outputs, name=name)


def pixel_discriminator(input_nc, ndf=64, norm="batch", init_type="normal", init_gain=0.02,
                        name="D"):
    """The reference 1x1 PixelGAN (`PixelDiscriminator`): one logit per pixel.

    1x1 convs: C(ndf) without norm, LeakyReLU(0.2), C(2 * ndf), norm, LeakyReLU(0.2), then
    one channel. Reference quirk kept: the last convolution has a bias only with instance
    norm (it uses the same `use_bias` as the normalised one).

    Args: see `define_D`.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    use_bias = conv_uses_bias(norm)

    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(inputs, ndf, 1, 1, 0, True, init_type, init_gain, name="conv1")
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu1")(x)
    x = conv2d(x, ndf * 2, 1, 1, 0, use_bias, init_type, init_gain, name="conv2")
    layer = normalization(norm, init_gain, name="norm2")
    if layer is not None:
        x = layer(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu2")(x)
    outputs = conv2d(x, 1, 1, 1, 0, use_bias, init_type, init_gain, dtype="float32",
                     name="logits")
    return keras.Model(inputs, outputs, name=name)


def with_features(discriminator):
    """The discriminator with its intermediate features: a model on the same weights.

    For feature matching and MMD losses (`tfi2i.losses.FEATURE_LOSSES`): the model returns
    `(logits, features)`, the logits as `discriminator` computes them and `features` the
    list of its hidden activations (the output of each LeakyReLU, shallow to deep). No
    variable is copied: training either model trains both.

    Args:
        discriminator: a functional `keras.Model` of `define_D`.
    """
    features = [layer.output for layer in discriminator.layers
                if isinstance(layer, keras.layers.LeakyReLU)]
    if not features:
        raise ValueError(f"{discriminator.name} has no LeakyReLU activations to match.")
    return keras.Model(discriminator.inputs, [discriminator.outputs[0], features],
                       name=f"{discriminator.name}_features")


def define_D(netD, input_nc, ndf=64, n_layers_D=3, norm="batch", init_type="normal",
             init_gain=0.02, name="D"):
    """Builds a discriminator of the pix2pix/CycleGAN reference (its `define_D`).

    Args:
        netD: `"basic"` (70x70 PatchGAN, n_layers 3), `"n_layers"` (PatchGAN with
            `n_layers_D` layers) or `"pixel"` (1x1 PixelGAN).
        input_nc: input channel count (pix2pix's conditional D sees input and output
            concatenated: 6 for RGB to RGB).
        ndf: width of the first convolution layer.
        n_layers_D: number of stride-2-or-last blocks, for netD `"n_layers"` only.
        norm: `"batch"`, `"sync_batch"`, `"instance"` or `"none"`; convolutions before a norm
            keep a bias only with `"instance"`, as in the reference.
        init_type, init_gain: weight initialisation (see `initializers.kernel_initializer`).
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, input_nc)` images to
        `(batch, H', W', 1)` float32 logits (H' = H / 8 - 2 for the basic PatchGAN at sizes
        that are multiples of 8, H' = H for the PixelGAN).

    Raises:
        UserError: for an unknown `netD`, `norm` or `init_type`, or a bad `n_layers_D`.
    """
    if netD not in DISCRIMINATORS:
        raise UserError(
            f"Unknown discriminator {netD!r}: use one of {', '.join(DISCRIMINATORS)}."
        )
    common = dict(input_nc=input_nc, ndf=ndf, norm=norm, init_type=init_type,
                  init_gain=init_gain, name=name)
    if netD == "basic":
        return nlayer_discriminator(n_layers=3, **common)
    if netD == "n_layers":
        return nlayer_discriminator(n_layers=n_layers_D, **common)
    return pixel_discriminator(**common)
