"""Generators of the pix2pix/CycleGAN reference: the U-Net and the ResNet generator.

Both are functional `keras.Model`s on NHWC float images in [-1, 1] with tanh outputs,
built with `keras.Input(shape=(None, None, input_nc))` so that they run at any height and
width that is a multiple of `size_divisor(netG)`.

What happens at other sizes (use `size_divisor` or `check_size` to avoid it):
- U-Net: the skip connections no longer line up and the call fails inside the
  concatenation (an error from TensorFlow, not a UserError).
- ResNet: the call succeeds but the output is larger than the input (e.g. 66 -> 68),
  because each stride-2 convolution rounds the size up and the transposed convolution
  exactly doubles it, as in the reference.
"""

import keras

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.layers import (
    ReflectionPadding2D,
    check_norm,
    conv2d,
    conv2d_transpose,
    conv_uses_bias,
    normalization,
)

_UNET_DOWNS = {"unet_256": 8, "unet_128": 7, "unet_64": 6, "unet_32": 5}
_RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}
GENERATORS = tuple(_UNET_DOWNS) + ("unet",) + tuple(_RESNET_BLOCKS)


def _unet_num_downs(netG, num_downs):
    """The U-Net's number of downsamplings, validated."""
    if netG == "unet":
        if num_downs is None:
            raise UserError(
                "netG 'unet' needs num_downs (the number of downsamplings, at least 5; "
                "8 for 256 px images), or use one of unet_256, unet_128, unet_64, unet_32."
            )
        if not isinstance(num_downs, int) or num_downs < 5:
            raise UserError(f"num_downs must be an integer >= 5 for a U-Net, got {num_downs!r}.")
        return num_downs
    fixed = _UNET_DOWNS[netG]
    if num_downs is not None and num_downs != fixed:
        raise UserError(
            f"netG {netG!r} has {fixed} downsamplings but num_downs={num_downs} was given: "
            "use netG 'unet' to choose num_downs."
        )
    return fixed


def _check_netG(netG):
    if netG not in GENERATORS:
        raise UserError(f"Unknown generator {netG!r}: use one of {', '.join(GENERATORS)}.")


def size_divisor(netG, num_downs=None):
    """The number that input heights and widths of generator `netG` must be multiples of.

    Args:
        netG: a generator name (see `define_G`).
        num_downs: the number of downsamplings, for netG `"unet"`.

    Returns:
        `2 ** num_downs` for a U-Net (256 for unet_256), 4 for the ResNet generators.

    Raises:
        UserError: for an unknown `netG` or an invalid `num_downs`.
    """
    _check_netG(netG)
    if netG in _RESNET_BLOCKS:
        return 4
    return 2 ** _unet_num_downs(netG, num_downs)


def check_size(netG, height, width, num_downs=None):
    """Raises UserError unless `height` x `width` images fit generator `netG`.

    Args:
        netG: a generator name (see `define_G`).
        height, width: the image size in pixels.
        num_downs: the number of downsamplings, for netG `"unet"`.
    """
    divisor = size_divisor(netG, num_downs)
    if height % divisor or width % divisor or height <= 0 or width <= 0:
        def fit(size):
            # Round down, so that a crop can reach it, unless that leaves nothing.
            return max(divisor, size // divisor * divisor)

        raise UserError(
            f"Image size {height}x{width} does not fit generator {netG!r}: height and width "
            f"must be multiples of {divisor}. Crop or resize to e.g. {fit(height)}x{fit(width)}, "
            "or pad (reflect) to a multiple and crop the result back."
        )


def unet_generator(input_nc=3, output_nc=3, num_downs=8, ngf=64, norm="batch",
                   use_dropout=False, init_type="normal", init_gain=0.02, name="G"):
    """The reference U-Net (`UnetGenerator` of the pix2pix code), unrolled.

    Encoder: C(ngf) without norm, then LeakyReLU(0.2)-conv-norm blocks doubling the width up
    to 8*ngf; the innermost block has no norm. Each conv is 4x4, stride 2, padding 1.
    Decoder: ReLU-transposed conv (4x4, stride 2, padding 1)-norm blocks, each followed by
    the concatenation [skip, decoded] (skip first, as in the reference). Dropout 0.5 follows
    the `num_downs - 5` decoder blocks next to the innermost one when `use_dropout` (3 for
    unet_256). The outermost block is ReLU-transposed conv (with bias)-tanh.

    Reference quirk kept: its LeakyReLU is in place, so the skip connections carry the
    LeakyReLU-activated encoder features, not the normalised ones.

    Args: see `define_G`.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    use_bias = conv_uses_bias(norm)
    widths = [ngf * min(2**level, 8) for level in range(num_downs)]

    def norm_layer(x, layer_name):
        layer = normalization(norm, init_gain, name=layer_name)
        return x if layer is None else layer(x)

    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(inputs, widths[0], 4, 2, 1, use_bias, init_type, init_gain, name="down1_conv")
    skips = []
    for level in range(2, num_downs + 1):
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"down{level}_lrelu")(x)
        skips.append(x)
        x = conv2d(x, widths[level - 1], 4, 2, 1, use_bias, init_type, init_gain,
                   name=f"down{level}_conv")
        if level < num_downs:
            x = norm_layer(x, f"down{level}_norm")

    for level in range(num_downs, 1, -1):
        x = keras.layers.ReLU(name=f"up{level}_relu")(x)
        x = conv2d_transpose(x, widths[level - 2], 4, 2, 1, 0, use_bias, init_type, init_gain,
                             name=f"up{level}_conv")
        x = norm_layer(x, f"up{level}_norm")
        if use_dropout and 5 <= level < num_downs:
            x = keras.layers.Dropout(0.5, name=f"up{level}_dropout")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([skips[level - 2], x])

    x = keras.layers.ReLU(name="up1_relu")(x)
    x = conv2d_transpose(x, output_nc, 4, 2, 1, 0, True, init_type, init_gain, name="up1_conv")
    # float32 output even under a mixed-precision policy.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet_generator(input_nc=3, output_nc=3, n_blocks=9, ngf=64, norm="batch",
                     use_dropout=False, init_type="normal", init_gain=0.02, name="G"):
    """The reference ResNet generator (`ResnetGenerator` of the CycleGAN code).

    c7s1-ngf, d(2*ngf), d(4*ngf), `n_blocks` residual blocks R(4*ngf), u(2*ngf), u(ngf),
    c7s1-output_nc, tanh. c7s1 = reflection pad 3, 7x7 conv, norm, ReLU (the last one: conv
    with bias, no norm). d = 3x3 conv, stride 2, zero padding 1, norm, ReLU. R = reflection
    pad 1, 3x3 conv, norm, ReLU, [dropout 0.5], reflection pad 1, 3x3 conv, norm, plus the
    input. u = 3x3 transposed conv, stride 2, padding 1, output_padding 1, norm, ReLU.

    Args: see `define_G`; `n_blocks` is the number of residual blocks.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    use_bias = conv_uses_bias(norm)

    def norm_layer(x, layer_name):
        layer = normalization(norm, init_gain, name=layer_name)
        return x if layer is None else layer(x)

    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = ReflectionPadding2D(3, name="in_pad")(inputs)
    x = conv2d(x, ngf, 7, 1, 0, use_bias, init_type, init_gain, name="in_conv")
    x = norm_layer(x, "in_norm")
    x = keras.layers.ReLU(name="in_relu")(x)

    for i in range(1, 3):
        x = conv2d(x, ngf * 2**i, 3, 2, 1, use_bias, init_type, init_gain, name=f"down{i}_conv")
        x = norm_layer(x, f"down{i}_norm")
        x = keras.layers.ReLU(name=f"down{i}_relu")(x)

    width = ngf * 4
    for b in range(1, n_blocks + 1):
        prefix = f"res{b}"
        y = ReflectionPadding2D(1, name=f"{prefix}_pad1")(x)
        y = conv2d(y, width, 3, 1, 0, use_bias, init_type, init_gain, name=f"{prefix}_conv1")
        y = norm_layer(y, f"{prefix}_norm1")
        y = keras.layers.ReLU(name=f"{prefix}_relu")(y)
        if use_dropout:
            y = keras.layers.Dropout(0.5, name=f"{prefix}_dropout")(y)
        y = ReflectionPadding2D(1, name=f"{prefix}_pad2")(y)
        y = conv2d(y, width, 3, 1, 0, use_bias, init_type, init_gain, name=f"{prefix}_conv2")
        y = norm_layer(y, f"{prefix}_norm2")
        x = keras.layers.Add(name=f"{prefix}_add")([x, y])

    for i in range(1, 3):
        x = conv2d_transpose(x, ngf * 2 ** (2 - i), 3, 2, 1, 1, use_bias, init_type, init_gain,
                             name=f"up{i}_conv")
        x = norm_layer(x, f"up{i}_norm")
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)

    x = ReflectionPadding2D(3, name="out_pad")(x)
    x = conv2d(x, output_nc, 7, 1, 0, True, init_type, init_gain, name="out_conv")
    # float32 output even under a mixed-precision policy.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def define_G(netG, input_nc=3, output_nc=3, ngf=64, norm="batch", use_dropout=False,
             init_type="normal", init_gain=0.02, num_downs=None, name="G"):
    """Builds a generator of the pix2pix/CycleGAN reference (its `define_G`).

    Args:
        netG: `"unet_256"`, `"unet_128"`, `"unet_64"`, `"unet_32"` (U-Nets with 8, 7, 6, 5
            downsamplings), `"unet"` (U-Net with `num_downs` downsamplings),
            `"resnet_9blocks"` or `"resnet_6blocks"` (ResNet generators).
        input_nc, output_nc: input and output channel counts.
        ngf: width of the first convolution layer.
        norm: `"batch"`, `"sync_batch"`, `"instance"` or `"none"` (see
            `tfi2i.nets.layers.normalization`). Convolutions before a norm keep a bias only
            with `"instance"`, as in the reference.
        use_dropout: add the reference's dropout 0.5 layers (U-Net: next to the innermost
            block; ResNet: inside every residual block). They are Keras Dropout layers: call
            the model with `training=True` to keep them on at test time (pix2pix paper).
        init_type, init_gain: weight initialisation (see `initializers.kernel_initializer`).
        num_downs: number of downsamplings, for netG `"unet"` only (at least 5). Ignored by
            the ResNet generators; for `"unet_N"` it must be None or N's own value.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, input_nc)` float images in [-1, 1] to
        `(batch, H, W, output_nc)` tanh outputs, for H and W multiples of
        `size_divisor(netG, num_downs)`.

    Raises:
        UserError: for an unknown `netG`, `norm` or `init_type`, or a bad `num_downs`.
    """
    _check_netG(netG)
    check_norm(norm)
    initializers.check_init_type(init_type)
    common = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm,
                  use_dropout=use_dropout, init_type=init_type, init_gain=init_gain, name=name)
    if netG in _RESNET_BLOCKS:
        return resnet_generator(n_blocks=_RESNET_BLOCKS[netG], **common)
    return unet_generator(num_downs=_unet_num_downs(netG, num_downs), **common)
