"""The networks of BicycleGAN (Zhu et al. 2017): U-Nets that take a latent code z, the
encoder E that infers z from an image, and the multi-scale PatchGAN discriminator.

Followed: `models/networks.py` of the reference code (junyanz/BicycleGAN): `define_G` with
`G_Unet_add_input` / `G_Unet_add_all` (`UnetBlock`, `UnetBlock_with_z`, `upsampleLayer`),
`define_E` with `E_ResNet` (`BasicBlock`) / `E_NLayers`, and `define_D` with
`D_NLayersMulti`. The defaults here are those a BicycleGAN run of the reference uses (its
`base_options.py`: netG unet_256, where_add "all", upsample "basic", nl "relu", norm
"instance", netE resnet_256, netD basic_256_multi with num_Ds 2, xavier init with gain
0.02, nz 8), not the defaults of the reference's `define_*` signatures.

All nets are functional `keras.Model`s on NHWC float images in [-1, 1]:

- `define_bicycle_G`: `G([image, z])` -> tanh image; z is `(batch, nz)`, tiled over the
  height and width of the feature map it joins (`ConcatenateLatent`) and concatenated after
  its channels, each example with its own code.
- `define_bicycle_E`: `E(image)` -> `(mu, logvar)`, each `(batch, nz)` (or `mu` alone with
  `vae_like=False`).
- `define_bicycle_D`: `D(image)` -> a list of `num_D` logit maps, finest scale first (the
  map itself with num_D 1, as in the reference). Mind `discriminator_min_size`.

How these differ from the pix2pix nets of `tfi2i.nets.generators` / `discriminators`
(all as in the BicycleGAN code):

- Every convolution, transposed convolution and linear layer has a bias, whatever the norm
  (pix2pix drops it before batch norm and "none").
- The U-Net's skip concatenation puts the decoded features first: `[decoded, skip]`
  (pix2pix: `[skip, decoded]`); only the order of channels (and so of weights) changes.
- Decoder non-linearity `nl`: "relu" (default), "lrelu" (0.2) or "elu"; the encoder's is
  always LeakyReLU(0.2).
- Upsampling `upsample`: "basic" = transposed conv 4x4 s2 p1 (as pix2pix), or "bilinear" =
  bilinear x2 (PyTorch `align_corners=False`), reflection pad 1, conv 3x3.
- The innermost block (no norm after its down conv, norm after its up conv) and the
  dropout (0.5 after the up norm of the `num_downs - 5` blocks next to the innermost) are
  placed as in pix2pix.
- Skip connections. The reference's down LeakyReLU is in place. In `G_Unet_add_input`
  it rewrites the block input, so the skips carry LeakyReLU-activated features (as in
  pix2pix); in `G_Unet_add_all` it acts on the fresh `cat([x, z])` tensor, so the skips
  carry the features before the LeakyReLU (the down norm's output). Both kept.
"""

import keras
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.layers import (
    ReflectionPadding2D,
    check_norm,
    conv2d,
    conv2d_transpose,
    normalization,
)

_UNET_DOWNS = {"unet_256": 8, "unet_128": 7, "unet_64": 6, "unet_32": 5}
BICYCLE_GENERATORS = tuple(_UNET_DOWNS)
WHERE_ADD = ("all", "input")
UPSAMPLE_TYPES = ("basic", "bilinear")
NONLINEARITIES = ("relu", "lrelu", "elu")
# E_ResNet's n_blocks and E_NLayers' n_layers, by the reference's names.
_ENCODERS = {"resnet_256": ("resnet", 5), "resnet_128": ("resnet", 4),
             "conv_256": ("conv", 5), "conv_128": ("conv", 4)}
BICYCLE_ENCODERS = tuple(_ENCODERS)
_DISCRIMINATORS = {"basic_256_multi": 3, "basic_128_multi": 2}
BICYCLE_DISCRIMINATORS = tuple(_DISCRIMINATORS)


@keras.saving.register_keras_serializable(package="tfi2i")
class ConcatenateLatent(keras.layers.Layer):
    """Tiles a latent code over an image's height and width and concatenates it.

    `[x, z]` with x `(batch, H, W, C)` and z `(batch, nz)` gives `(batch, H, W, C + nz)`:
    x's channels, then z[i] at every pixel of example i. This is the reference's
    `z.view(B, nz, 1, 1).expand(B, nz, H, W)` then `torch.cat([x, z_img], 1)`.

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).
    """

    def call(self, inputs):
        x, z = inputs
        z = tf.cast(z, x.dtype)
        shape = tf.concat([tf.shape(x)[:3], tf.shape(z)[1:]], axis=0)
        return tf.concat([x, tf.broadcast_to(z[:, None, None, :], shape)], axis=-1)

    def compute_output_shape(self, input_shapes):
        x_shape, z_shape = input_shapes
        channels = None
        if x_shape[-1] is not None and z_shape[-1] is not None:
            channels = x_shape[-1] + z_shape[-1]
        return (*x_shape[:3], channels)


@keras.saving.register_keras_serializable(package="tfi2i")
class AveragePooling2DExcludePad(keras.layers.Layer):
    """PyTorch's `AvgPool2d(pool_size, strides, padding, count_include_pad=False)`, NHWC.

    Pads `padding` zeros on every side and averages each window over the pixels that are
    inside the image only (a corner window of a 3x3 pool averages 4 pixels, not 9 with 5
    zeros). Keras' "same" pooling also leaves padding out of the average, but pads even
    sizes at the end only, which shifts every window by one pixel against PyTorch's.
    Output size: `floor((size + 2 * padding - pool_size) / strides) + 1`.

    Args:
        pool_size, strides: the square window and its stride.
        padding: zero padding on each side (less than `pool_size`).
        **kwargs: base layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides)
        self.padding = int(padding)
        if not 0 <= self.padding < self.pool_size:
            raise ValueError(f"padding must be in [0, pool_size), got {padding!r}.")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        p = self.padding
        paddings = [[0, 0], [p, p], [p, p], [0, 0]]
        # Window sums over window counts: both pools divide by pool_size**2, which cancels.
        sums = tf.nn.avg_pool2d(tf.pad(inputs, paddings), self.pool_size, self.strides, "VALID")
        ones = tf.pad(tf.ones_like(inputs[..., :1]), paddings)
        counts = tf.nn.avg_pool2d(ones, self.pool_size, self.strides, "VALID")
        return sums / counts

    def compute_output_shape(self, input_shape):
        def size(n):
            if n is None:
                return None
            return (n + 2 * self.padding - self.pool_size) // self.strides + 1

        batch, height, width, channels = input_shape
        return (batch, size(height), size(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return config


def _check_choice(kind, value, choices):
    if value not in choices:
        raise UserError(f"Unknown {kind} {value!r}: use one of {', '.join(choices)}.")


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}.")


def _nonlinearity(nl, name):
    """A new activation layer of the reference's `get_non_linearity`."""
    if nl == "relu":
        return keras.layers.ReLU(name=name)
    if nl == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=0.2, name=name)
    return keras.layers.ELU(alpha=1.0, name=name)


def _norm(x, norm, init_gain, name):
    layer = normalization(norm, init_gain, name=name)
    return x if layer is None else layer(x)


def _dense(x, units, init_type, init_gain, name):
    return keras.layers.Dense(
        units,
        kernel_initializer=initializers.kernel_initializer(init_type, init_gain),
        bias_initializer="zeros",
        dtype="float32",  # the code stays float32 under a mixed-precision policy
        name=name,
    )(x)


def unet_with_z(input_nc=3, output_nc=3, nz=8, num_downs=8, ngf=64, norm="instance",
                nl="relu", use_dropout=False, where_add="all", upsample="basic",
                init_type="xavier", init_gain=0.02, name="G"):
    """The reference's `G_Unet_add_all` (where_add "all") or `G_Unet_add_input` ("input").

    Level 1 is the outermost block, level `num_downs` the innermost. With width
    w_k = ngf * min(2**(k-1), 8):

    - down k: [concat z] (every level with "all", level 1 only with "input"), then for
      k > 1 LeakyReLU(0.2), then conv 4x4 s2 p1 to w_k, then norm for 1 < k < num_downs.
    - up k (k = num_downs .. 1): `nl`, upsample to w_(k-1) (`output_nc` for k = 1); for
      k > 1 norm, dropout 0.5 if `use_dropout` and 5 <= k < num_downs, then the
      concatenation `[decoded, skip_k]` with skip_k the input of down k (activated by the
      LeakyReLU with "input", not with "all": see the module docstring); for k = 1 tanh.

    The reference builds only unet_128 and unet_256. Its `G_Unet_add_all` always has a
    8*ngf block between the innermost and the 4*ngf one, which `G_Unet_add_input` has only
    from num_downs 6; both are "num_downs - 5 blocks of 8*ngf next to the innermost" from
    num_downs 6 on, and that formula is what builds num_downs 5 (unet_32) here, for tests.

    Args: see `define_bicycle_G`; `num_downs` is the number of downsamplings.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    _check_choice("where_add", where_add, WHERE_ADD)
    _check_choice("upsample", upsample, UPSAMPLE_TYPES)
    _check_choice("non-linearity nl", nl, NONLINEARITIES)
    _check_positive("nz", nz)
    _check_positive("ngf", ngf)
    if not isinstance(num_downs, int) or num_downs < 5:
        raise UserError(f"num_downs must be an integer >= 5 for a U-Net, got {num_downs!r}.")
    widths = [ngf * min(2**level, 8) for level in range(num_downs)]

    def up_conv(x, filters, layer_name):
        if upsample == "basic":
            return conv2d_transpose(x, filters, 4, 2, 1, 0, True, init_type, init_gain,
                                    name=layer_name)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear",
                                      name=f"{layer_name}_upsample")(x)
        x = ReflectionPadding2D(1, name=f"{layer_name}_reflect")(x)
        return conv2d(x, filters, 3, 1, 0, True, init_type, init_gain, name=layer_name)

    image = keras.Input(shape=(None, None, input_nc), name="image")
    z = keras.Input(shape=(nz,), name="z")
    x = image
    skips = {}
    for level in range(1, num_downs + 1):
        block_input = x
        if where_add == "all" or level == 1:
            x = ConcatenateLatent(name=f"down{level}_z")([x, z])
        if level > 1:
            x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"down{level}_lrelu")(x)
            # The in-place LeakyReLU rewrites the block input only when no concat came first.
            skips[level] = x if where_add == "input" else block_input
        x = conv2d(x, widths[level - 1], 4, 2, 1, True, init_type, init_gain,
                   name=f"down{level}_conv")
        if 1 < level < num_downs:
            x = _norm(x, norm, init_gain, f"down{level}_norm")

    for level in range(num_downs, 0, -1):
        x = _nonlinearity(nl, f"up{level}_{nl}")(x)
        x = up_conv(x, output_nc if level == 1 else widths[level - 2], f"up{level}_conv")
        if level == 1:
            break
        x = _norm(x, norm, init_gain, f"up{level}_norm")
        if use_dropout and 5 <= level < num_downs:
            x = keras.layers.Dropout(0.5, name=f"up{level}_dropout")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
    # float32 output even under a mixed-precision policy.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model([image, z], outputs, name=name)


def define_bicycle_G(netG="unet_256", input_nc=3, output_nc=3, nz=8, ngf=64, norm="instance",
                     nl="relu", use_dropout=False, where_add="all", upsample="basic",
                     init_type="xavier", init_gain=0.02, name="G"):
    """Builds BicycleGAN's generator (the reference's `define_G`).

    Args:
        netG: `"unet_256"`, `"unet_128"` (the reference's, 8 and 7 downsamplings),
            `"unet_64"`, `"unet_32"` (6 and 5, ours, for small images and tests).
        input_nc, output_nc: input and output channel counts.
        nz: latent code size (8 in the reference), at least 1 (the reference's nz 0 is a
            pix2pix generator: use `tfi2i.nets.define_G`).
        ngf: width of the first convolution layer.
        norm: `"instance"` (reference default), `"batch"`, `"sync_batch"` or `"none"`.
        nl: the decoder's non-linearity, `"relu"`, `"lrelu"` or `"elu"`.
        use_dropout: dropout 0.5 in the `num_downs - 5` decoder blocks next to the innermost
            (Keras Dropout: on only when called with `training=True`).
        where_add: `"all"`: z joins the input of every down block (`G_Unet_add_all`);
            `"input"`: z joins the image only (`G_Unet_add_input`).
        upsample: `"basic"` (transposed conv) or `"bilinear"` (upsample, reflection pad,
            3x3 conv).
        init_type, init_gain: weight initialisation (see `initializers.kernel_initializer`);
            the reference's BicycleGAN uses xavier with gain 0.02.
        name: the model's name.

    Returns:
        A functional `keras.Model` on `[image, z]`: images `(batch, H, W, input_nc)` in
        [-1, 1] and codes `(batch, nz)`, to `(batch, H, W, output_nc)` tanh outputs (float32),
        for H and W multiples of `tfi2i.nets.size_divisor(netG)` (2 ** num_downs).

    Raises:
        UserError: for an unknown name or option, or a bad `nz` / `ngf`.
    """
    _check_choice("BicycleGAN generator", netG, BICYCLE_GENERATORS)
    return unet_with_z(input_nc=input_nc, output_nc=output_nc, nz=nz, num_downs=_UNET_DOWNS[netG],
                       ngf=ngf, norm=norm, nl=nl, use_dropout=use_dropout, where_add=where_add,
                       upsample=upsample, init_type=init_type, init_gain=init_gain, name=name)


def _heads(x, nz, vae_like, init_type, init_gain, name, image):
    """The reference's `fc` (mu) and, when `vae_like`, `fcVar` (logvar) linear heads."""
    mu = _dense(x, nz, init_type, init_gain, "mu")
    if not vae_like:
        return keras.Model(image, mu, name=name)
    logvar = _dense(x, nz, init_type, init_gain, "logvar")
    return keras.Model(image, (mu, logvar), name=name)


def resnet_encoder(input_nc=3, nz=8, nef=64, n_blocks=5, norm="instance", vae_like=True,
                   init_type="xavier", init_gain=0.02, name="E"):
    """The reference's `E_ResNet`.

    conv 4x4 s2 p1 to nef, then `n_blocks - 1` BasicBlocks from nef * min(4, n) to
    nef * min(4, n + 1) channels (n = 1 ..), LeakyReLU(0.2), average pool, and linear
    heads to mu (and logvar). BasicBlock(c_in, c_out), halving the size:
    main = [norm], LeakyReLU, conv 3x3 p1 (c_in), [norm], LeakyReLU, conv 3x3 p1 (c_out),
    avg pool 2; shortcut = avg pool 2, conv 1x1 (c_out); output main + shortcut.

    Pooling: the reference's `AvgPool2d(8)` and flatten work only where the last map is
    8x8 (256 px for resnet_256, 128 px for resnet_128), where they are a global average;
    this is a global average pool at every size, the same at the reference's.

    Reference quirk kept: with norm "none" the block's first (in-place) LeakyReLU also
    rewrites the shortcut's input, so the shortcut pools the activated features.

    Args: see `define_bicycle_E`; `n_blocks` is the reference's (resnet_256: 5).
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    _check_positive("nz", nz)
    _check_positive("nef", nef)
    _check_positive("n_blocks", n_blocks)

    image = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(image, nef, 4, 2, 1, True, init_type, init_gain, name="conv1")
    for n in range(1, n_blocks):
        c_in, c_out = nef * min(4, n), nef * min(4, n + 1)
        prefix = f"block{n}"
        h = _norm(x, norm, init_gain, f"{prefix}_norm1")
        h = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_lrelu1")(h)
        shortcut = h if norm == "none" else x
        h = conv2d(h, c_in, 3, 1, 1, True, init_type, init_gain, name=f"{prefix}_conv1")
        h = _norm(h, norm, init_gain, f"{prefix}_norm2")
        h = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_lrelu2")(h)
        h = conv2d(h, c_out, 3, 1, 1, True, init_type, init_gain, name=f"{prefix}_conv2")
        h = keras.layers.AveragePooling2D(2, name=f"{prefix}_pool")(h)
        s = keras.layers.AveragePooling2D(2, name=f"{prefix}_shortcut_pool")(shortcut)
        s = conv2d(s, c_out, 1, 1, 0, True, init_type, init_gain, name=f"{prefix}_shortcut_conv")
        x = keras.layers.Add(name=f"{prefix}_add")([h, s])
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return _heads(x, nz, vae_like, init_type, init_gain, name, image)


def nlayers_encoder(input_nc=3, nz=8, nef=64, n_layers=5, norm="instance", vae_like=True,
                    init_type="xavier", init_gain=0.02, name="E"):
    """The reference's `E_NLayers`.

    conv 4x4 s2 p1 to nef, LeakyReLU(0.2), then `n_layers - 1` blocks of conv 4x4 s2 p1 to
    nef * min(2**n, 4), [norm], LeakyReLU(0.2); average pool (global, as in
    `resnet_encoder`); linear heads to mu (and logvar).

    Args: see `define_bicycle_E`; `n_layers` is the reference's (conv_256: 5).
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    _check_positive("nz", nz)
    _check_positive("nef", nef)
    _check_positive("n_layers", n_layers)

    image = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d(image, nef, 4, 2, 1, True, init_type, init_gain, name="conv1")
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="lrelu1")(x)
    for n in range(1, n_layers):
        x = conv2d(x, nef * min(2**n, 4), 4, 2, 1, True, init_type, init_gain,
                   name=f"conv{n + 1}")
        x = _norm(x, norm, init_gain, f"norm{n + 1}")
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{n + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return _heads(x, nz, vae_like, init_type, init_gain, name, image)


def define_bicycle_E(netE="resnet_256", input_nc=3, nz=8, nef=64, norm="instance",
                     vae_like=True, init_type="xavier", init_gain=0.02, name="E"):
    """Builds BicycleGAN's encoder E (the reference's `define_E`).

    Args:
        netE: `"resnet_256"` / `"resnet_128"` (`E_ResNet` with 5 / 4 blocks) or
            `"conv_256"` / `"conv_128"` (`E_NLayers` with 5 / 4 layers). The number is the
            size at which the reference's last map is 8x8; here any size works.
        input_nc: channels of the images encoded (the output images: output_nc).
        nz: code size.
        nef: width of the first convolution layer.
        norm: `"instance"`, `"batch"`, `"sync_batch"` or `"none"`.
        vae_like: the reference's `vaeLike` (True in BicycleGAN): return `(mu, logvar)`;
            False returns `mu` alone.
        init_type, init_gain: weight initialisation, linear layers included.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, input_nc)` images to float32
        `(mu, logvar)`, each `(batch, nz)`, or `mu` alone.

    Raises:
        UserError: for an unknown name or option, or a bad `nz` / `nef`.
    """
    _check_choice("BicycleGAN encoder", netE, BICYCLE_ENCODERS)
    kind, depth = _ENCODERS[netE]
    build = resnet_encoder if kind == "resnet" else nlayers_encoder
    return build(input_nc, nz, nef, depth, norm=norm, vae_like=vae_like, init_type=init_type,
                 init_gain=init_gain, name=name)


def encoder_min_size(netE="resnet_256"):
    """The smallest image height/width encoder `netE` works at: its last map is then 1x1.

    Below it the last map has no pixel and mu and logvar are NaN (no error is raised).
    resnet_256 and conv_256: 32; resnet_128 and conv_128: 16.
    """
    _check_choice("BicycleGAN encoder", netE, BICYCLE_ENCODERS)
    return 2 ** _ENCODERS[netE][1]


def discriminator_min_size(netD="basic_256_multi", num_D=2):
    """The smallest image height/width at which every scale of `netD` gives a logit.

    Below it the coarsest PatchGAN's last convolutions see a map smaller than their kernel:
    TensorFlow on CPU then returns garbage of a wrong shape rather than an error (PyTorch
    raises). basic_256_multi: 24 with num_D 1, 47 with 2, 93 with 3.
    """
    _check_choice("BicycleGAN discriminator", netD, BICYCLE_DISCRIMINATORS)
    _check_positive("num_D", num_D)
    n_layers = _DISCRIMINATORS[netD]

    def fits(size):
        for i in range(num_D):
            if i:
                size = (size - 1) // 2 + 1  # the 3x3 stride-2 pool, padding 1
            logits = size
            for _ in range(n_layers):
                logits = (logits - 2) // 2 + 1  # 4x4 stride-2 convs, padding 1
            if logits - 2 < 1:  # two 4x4 stride-1 convs, padding 1
                return False
        return True

    size = 1
    while not fits(size):
        size += 1
    return size


def multiscale_patchgan(input_nc=3, ndf=64, n_layers=3, num_D=2, norm="instance",
                        init_type="xavier", init_gain=0.02, name="D"):
    """The reference's `D_NLayersMulti`: PatchGANs on an image and its downsampled copies.

    Scale i (0 = full size) is a PatchGAN of width ndf_i = round(ndf / 2**i) on the image
    average-pooled i times by `AveragePooling2DExcludePad(3, 2, 1)` (the reference's
    `AvgPool2d(3, stride=2, padding=1, count_include_pad=False)`). Each PatchGAN: conv
    4x4 s2 p1 to ndf_i, LeakyReLU(0.2); `n_layers - 1` blocks conv 4x4 s2 p1 to
    ndf_i * min(2**n, 8), norm, LeakyReLU; conv 4x4 s1 p1 to ndf_i * min(2**n_layers, 8),
    norm, LeakyReLU; conv 4x4 s1 p1 to one logit. Every conv has a bias. The layers of
    scale i are named `scale{i}_*`.

    Args: see `define_bicycle_D`; `n_layers` is 3 for basic_256_multi, 2 for basic_128_multi.
    """
    check_norm(norm)
    initializers.check_init_type(init_type)
    _check_positive("num_D", num_D)
    _check_positive("ndf", ndf)
    _check_positive("n_layers", n_layers)

    def patchgan(x, width, prefix):
        x = conv2d(x, width, 4, 2, 1, True, init_type, init_gain, name=f"{prefix}_conv1")
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_lrelu1")(x)
        for n in range(1, n_layers + 1):
            strides = 2 if n < n_layers else 1
            x = conv2d(x, width * min(2**n, 8), 4, strides, 1, True, init_type, init_gain,
                       name=f"{prefix}_conv{n + 1}")
            x = _norm(x, norm, init_gain, f"{prefix}_norm{n + 1}")
            x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_lrelu{n + 1}")(x)
        return conv2d(x, 1, 4, 1, 1, True, init_type, init_gain, dtype="float32",
                      name=f"{prefix}_logits")

    image = keras.Input(shape=(None, None, input_nc), name="image")
    outputs = []
    x = image
    for i in range(num_D):
        if i:
            x = AveragePooling2DExcludePad(3, 2, 1, name=f"down{i}")(x)
        # Python's round, as the reference (halves to even).
        width = int(round(ndf / 2**i))
        if width < 1:
            raise UserError(f"ndf {ndf} is too small for num_D {num_D}: scale {i} would have "
                            f"width round({ndf} / {2**i}) = 0. Use ndf >= {2 ** (num_D - 1)}.")
        outputs.append(patchgan(x, width, f"scale{i}"))
    return keras.Model(image, outputs, name=name)


def define_bicycle_D(netD="basic_256_multi", input_nc=3, ndf=64, norm="instance", num_D=2,
                     init_type="xavier", init_gain=0.02, name="D"):
    """Builds BicycleGAN's discriminator (the reference's `define_D`, multi-scale ones).

    Args:
        netD: `"basic_256_multi"` (PatchGANs with n_layers 3: 70x70 patches at full scale)
            or `"basic_128_multi"` (n_layers 2). The reference's single-scale `basic_256`
            with instance or batch norm is `tfi2i.nets.define_D("basic", ...)`.
        input_nc: input channels: output_nc (3) in the reference's default, whose D is not
            conditional; input_nc + output_nc for its `--conditional_D`.
        ndf: width of the first convolution at full scale (halved at each coarser scale).
        norm: `"instance"`, `"batch"`, `"sync_batch"` or `"none"` (the reference fails with
            "none"; here the norm layers are left out).
        num_D: number of scales (the reference's num_Ds: 2).
        init_type, init_gain: weight initialisation.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, input_nc)` images to a list of
        `num_D` float32 logit maps `(batch, H_i, W_i, 1)`, full scale first (a list of one
        with num_D 1, where the reference returns the tensor). For basic_256_multi at
        256 px: 30x30 and 14x14.

    Raises:
        UserError: for an unknown name or option, or a bad `num_D` / `ndf`.
    """
    _check_choice("BicycleGAN discriminator", netD, BICYCLE_DISCRIMINATORS)
    return multiscale_patchgan(input_nc, ndf, _DISCRIMINATORS[netD], num_D, norm=norm,
                               init_type=init_type, init_gain=init_gain, name=name)
