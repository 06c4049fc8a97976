"""Building blocks of the shared-latent and multimodal methods: UNIT, MUNIT and DRIT.

The structure follows the reference code: NVlabs/MUNIT `networks.py` (which the 2018 PyTorch
rewrite of mingyuliutw/UNIT shares: `VAEGen` is MUNIT's content encoder and decoder with instance
norm) and HsinYingLee/DRIT `src/networks.py`. All tensors are NHWC; the builders return
functional `keras.Model`s (so they export, count parameters and nest), the custom layers have
`get_config` and are registered for `.keras` saving.

What is here, by reference name:
- `conv2d_block` (MUNIT `Conv2dBlock`): pad (reflect or zero) + conv (always with bias) + norm
  (none / instance / layer / adain) + activation (relu / lrelu / tanh / none).
- `res_blocks` (MUNIT `ResBlocks` / DRIT `INSResBlock`s): a nested model that can be passed as
  `shared` to two encoders (or decoders) so that both use the same variables.
- `content_encoder` (MUNIT `ContentEncoder`, UNIT's encoder, DRIT `E_content` by options).
- `style_encoder` (MUNIT `StyleEncoder`).
- `attribute_encoder` (DRIT `E_attr_concat`, BicycleGAN's `E_ResNet`-like): returns (mu, logvar).
- `AdaptiveInstanceNormalization` and `decoder` (MUNIT `Decoder` + `MLP` + `assign_adain_params`;
  UNIT's decoder with `res_norm="instance"`).
- `multiscale_discriminator` (MUNIT/UNIT `MsImageDis`, DRIT `MultiScaleDis`).
- `content_discriminator` (DRIT `Dis_content`).
- `drit_decoder` (DRIT `G_concat`: the attribute code tiled and concatenated at every stage).
- `SpectralNormalization`: a wrapper for Conv2D / Dense with PyTorch's semantics (see its
  docstring for why not `keras.layers.SpectralNormalization`).
PyTorch's `AvgPool2d(count_include_pad=False)` and the tiling of a latent code are the layers
of `tfi2i.nets.bicycle` (`AveragePooling2DExcludePad`, `ConcatenateLatent`).

Reference quirks NOT reproduced (named so that method files can say so):
- MUNIT's `Conv2dBlock` with norm "in" uses `InstanceNorm2d(track_running_stats=True)`, so in
  `eval()` mode (its test scripts) the content encoder normalises with running averages. Ours
  always uses the instance's statistics, as in training.
- MUNIT's "replicate" padding and "bn"/"prelu"/"selu" options (unused by its configs).
"""

import keras
import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.bicycle import AveragePooling2DExcludePad, ConcatenateLatent
from tfi2i.nets.layers import InstanceNormalization, ReflectionPadding2D, conv2d_transpose

PAD_TYPES = ("reflect", "zero")
BLOCK_NORMS = ("none", "instance", "layer", "adain")
ACTIVATIONS = ("relu", "lrelu", "tanh", "none")


def _check(name, value, allowed):
    if value not in allowed:
        raise UserError(f"Unknown {name} {value!r}: use one of {', '.join(allowed)}.")


# --- Layers ----------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="tfi2i")
class LayerNorm2D(keras.layers.Layer):
    """MUNIT's `LayerNorm` of NHWC feature maps: per example over H, W and C, per-channel affine.

    With `munit_std=True` (MUNIT, UNIT): `(x - mean) / (std + epsilon)` where `std` is the
    UNBIASED standard deviation over all H*W*C values of the example (`torch.Tensor.std`), and
    the scale `gamma` is initialised from U(0, 1) (MUNIT's `uniform_()`), the offset `beta` to 0.
    With `munit_std=False` (DRIT's `LayerNorm`, i.e. `F.layer_norm`): `(x - mean) /
    sqrt(var + epsilon)` with the biased variance, and `gamma` initialised to 1.

    Args:
        epsilon: see above; 1e-5 in both references.
        affine: learn the per-channel `gamma` and `beta` (True in both references).
        munit_std: which of the two formulas above.
        gamma_initializer: overrides the reference's initialiser of `gamma` when given.
        **kwargs: base layer arguments.
    """

    def __init__(self, epsilon=1e-5, affine=True, munit_std=True, gamma_initializer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)
        self.munit_std = bool(munit_std)
        if gamma_initializer is None:
            gamma_initializer = (keras.initializers.RandomUniform(0.0, 1.0) if self.munit_std
                                 else "ones")
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"LayerNorm2D needs a known channel count, got {input_shape}.")
        if self.affine:
            self.gamma = self.add_weight(shape=(channels,), initializer=self.gamma_initializer,
                                         name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        centred = x - mean
        if self.munit_std:
            count = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
            var = tf.reduce_sum(tf.square(centred), axis=[1, 2, 3], keepdims=True) / (count - 1)
            y = centred / (tf.sqrt(var) + self.epsilon)
        else:
            var = tf.reduce_mean(tf.square(centred), axis=[1, 2, 3], keepdims=True)
            y = centred * tf.math.rsqrt(var + self.epsilon)
        if self.affine:
            y = y * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
        return tf.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "affine": self.affine,
                       "munit_std": self.munit_std,
                       "gamma_initializer": keras.initializers.serialize(self.gamma_initializer)})
        return config


@keras.saving.register_keras_serializable(package="tfi2i")
class AdaptiveInstanceNormalization(keras.layers.Layer):
    """AdaIN (Huang & Belongie 2017) with its scale and offset taken from an input tensor.

    Called on `[x, params]`: `x` is `(batch, H, W, C)`, `params` is `(batch, P)`, the output of
    the style MLP for ALL the AdaIN layers of a decoder. This layer reads its own slice, as
    MUNIT's `assign_adain_params` hands it out: `offset` is where its slice starts, the first
    `C` values are the offset ("mean", MUNIT's `bias`), the next `C` the scale ("std", its
    `weight`). Then `(x - mu) / sqrt(var + epsilon) * std + mean`, with `mu`, `var` the biased
    per-instance, per-channel statistics over H and W (MUNIT runs `F.batch_norm` in training mode
    on a `(1, B*C, H, W)` view, which is exactly that). It has no weights of its own.

    Args:
        offset: index in `params` of this layer's first value.
        epsilon: added to the variance; 1e-5 as in MUNIT.
        **kwargs: base layer arguments.
    """

    def __init__(self, offset=0, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.offset = int(offset)
        self.epsilon = float(epsilon)

    @property
    def num_params(self):
        """2 * channels: how many values of `params` this layer reads (known once built)."""
        return 2 * self._channels

    def build(self, input_shape):
        x_shape, p_shape = input_shape
        self._channels = int(x_shape[-1])
        if p_shape[-1] is not None and p_shape[-1] < self.offset + 2 * self._channels:
            raise ValueError(f"{self.name}: params of width {p_shape[-1]} are too short for "
                             f"offset {self.offset} + 2 * {self._channels} channels.")

    def call(self, inputs):
        x, params = inputs
        channels = self._channels
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        params = tf.cast(params, tf.float32)
        mean = params[:, self.offset:self.offset + channels]
        std = params[:, self.offset + channels:self.offset + 2 * channels]
        mu, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        y = (x - mu) * tf.math.rsqrt(var + self.epsilon)
        y = y * std[:, None, None, :] + mean[:, None, None, :]
        return tf.cast(y, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"offset": self.offset, "epsilon": self.epsilon})
        return config


def _l2_normalize(x, eps=1e-12):
    # F.normalize: x / max(||x||, eps).
    return x / tf.maximum(tf.norm(x), eps)


@keras.saving.register_keras_serializable(package="tfi2i")
class SpectralNormalization(keras.layers.Wrapper):
    """Spectral normalisation (Miyato et al. 2018) of a Conv2D or Dense, as PyTorch does it.

    The wrapped layer's `kernel` stays the trainable parameter (PyTorch's `weight_orig`); each
    call uses `kernel / sigma`, where `sigma = u . (W v)` estimates the largest singular value
    of `W`, the kernel as an (out, everything else) matrix. In training each call first runs
    `power_iterations` steps `v = normalize(W^T u)`, `u = normalize(W v)` and stores `u`, `v`
    (non-trainable variables, saved in checkpoints); the gradient flows through `sigma` with
    `u`, `v` held constant, as in `torch.nn.utils.spectral_norm`. In inference `sigma` comes from
    the stored `u`, `v` without updating them (PyTorch's eval mode).

    Why not `keras.layers.SpectralNormalization` (Keras 3.15): it OVERWRITES the kernel with
    `kernel / sigma` on every training call, so the optimiser updates the normalised kernel,
    no gradient flows through `sigma`, and inference (training=False) uses the kernel as left by
    the last optimiser step, which is no longer normalised. `tests/test_latent_nets.py` shows
    the last point.

    Args:
        layer: a `keras.layers.Conv2D` or `keras.layers.Dense` (not built yet).
        power_iterations: power-iteration steps per training call (1 in the references).
        eps: PyTorch's `F.normalize` epsilon.
        **kwargs: base wrapper arguments.
    """

    def __init__(self, layer, power_iterations=1, eps=1e-12, **kwargs):
        super().__init__(layer, **kwargs)
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            raise ValueError(f"SpectralNormalization wraps Conv2D or Dense, not "
                             f"{type(layer).__name__}.")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}.")
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel_shape = self.layer.kernel.shape
        out_dim = int(kernel_shape[-1])
        in_dim = int(np.prod(kernel_shape[:-1]))
        # Random unit vectors, as PyTorch starts them. A new initializer per variable (one
        # shared instance would give both the same draws); keras.utils.set_random_seed makes
        # them reproducible. "only_first_replica": every replica computes the same u, v from
        # the same kernel, and assigning a MirroredVariable in replica context needs an
        # aggregation.
        self.u = self.add_weight(shape=(out_dim,), name="u", trainable=False,
                                 initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                 aggregation="only_first_replica")
        self.v = self.add_weight(shape=(in_dim,), name="v", trainable=False,
                                 initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                 aggregation="only_first_replica")
        self.u.assign(_l2_normalize(self.u))
        self.v.assign(_l2_normalize(self.v))
        self.built = True

    def _matrix(self):
        kernel = tf.cast(self.layer.kernel, tf.float32)
        # (kh, kw, in, out) -> (out, kh*kw*in): PyTorch's (out, in*kh*kw) up to a column order,
        # which changes neither sigma nor u.
        return tf.transpose(tf.reshape(kernel, [-1, kernel.shape[-1]]))

    def normalized_kernel(self, training=False):
        """`kernel / sigma`; in training also runs the power iteration and stores u and v."""
        w = self._matrix()
        u = tf.cast(self.u, tf.float32)
        v = tf.cast(self.v, tf.float32)
        if training:
            for _ in range(self.power_iterations):
                v = _l2_normalize(tf.linalg.matvec(w, u, transpose_a=True), self.eps)
                u = _l2_normalize(tf.linalg.matvec(w, v), self.eps)
            u = tf.stop_gradient(u)
            v = tf.stop_gradient(v)
            self.u.assign(u)
            self.v.assign(v)
        sigma = tf.tensordot(u, tf.linalg.matvec(w, v), 1)
        kernel = self.layer.kernel
        return kernel / tf.cast(sigma, kernel.dtype)

    def call(self, inputs, training=False):
        layer = self.layer
        kernel = self.normalized_kernel(training=bool(training))
        if isinstance(layer, keras.layers.Conv2D):
            outputs = layer.convolution_op(inputs, tf.cast(kernel, inputs.dtype))
        else:
            outputs = tf.matmul(inputs, tf.cast(kernel, inputs.dtype))
        if layer.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(layer.bias, outputs.dtype))
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "eps": self.eps})
        return config


# --- Blocks ----------------------------------------------------------------------------------

class _AdainRouter:
    """Hands consecutive slices of one AdaIN-parameter tensor to the AdaIN layers, in order.

    The functional form of MUNIT's `assign_adain_params`: the n-th AdaIN layer built gets the
    offset after the n-1 before it, so `params[:, offset:offset + C]` is its mean and the next
    `C` values its std.
    """

    def __init__(self, params):
        self.params = params
        self.offset = 0

    def take(self, channels):
        offset = self.offset
        self.offset += 2 * channels
        return offset


def _conv(filters, kernel_size, strides, use_bias, init_type, init_gain, spectral_norm, name,
          dtype=None):
    conv = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias,
        kernel_initializer=initializers.kernel_initializer(init_type, init_gain),
        bias_initializer="zeros", dtype=dtype, name=name)
    if spectral_norm:
        return SpectralNormalization(conv, name=f"{name}_sn", dtype=dtype)
    return conv


def _dense(units, init_type, init_gain, spectral_norm, name):
    dense = keras.layers.Dense(
        units, kernel_initializer=initializers.kernel_initializer(init_type, init_gain),
        bias_initializer="zeros", name=name)
    if spectral_norm:
        return SpectralNormalization(dense, name=f"{name}_sn")
    return dense


def _activation(x, activation, lrelu_slope, name):
    if activation == "relu":
        return keras.layers.ReLU(name=name)(x)
    if activation == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=lrelu_slope, name=name)(x)
    if activation == "tanh":
        # float32 output even under a mixed-precision policy (image outputs).
        return keras.layers.Activation("tanh", dtype="float32", name=name)(x)
    return x


def conv2d_block(x, filters, kernel_size, strides=1, padding=0, norm="none", activation="relu",
                 pad_type="zero", adain=None, lrelu_slope=0.2, spectral_norm=False,
                 init_type="kaiming", init_gain=0.02, name="block"):
    """MUNIT's `Conv2dBlock`: pad, conv (with bias), norm, activation.

    Args:
        x: NHWC input tensor.
        filters, kernel_size, strides: of the convolution (square kernel).
        padding: pixels padded on each side before the ("valid") convolution.
        norm: `"none"`, `"instance"` (no affine parameters), `"layer"` (`LayerNorm2D`, MUNIT's)
            or `"adain"` (`AdaptiveInstanceNormalization`; needs `adain`).
        activation: `"relu"`, `"lrelu"` (slope `lrelu_slope`), `"tanh"` or `"none"`.
        pad_type: `"reflect"` or `"zero"`.
        adain: the `_AdainRouter` of the decoder being built, for norm "adain".
        lrelu_slope: 0.2 in MUNIT; DRIT's `nn.LeakyReLU()` uses PyTorch's default 0.01.
        spectral_norm: wrap the convolution in `SpectralNormalization`.
        init_type, init_gain: kernel initialisation (`initializers.kernel_initializer`); MUNIT's
            generators use "kaiming", its discriminators "normal" with 0.02.
        name: prefix of the layer names (`_pad`, `_conv`, `_norm`, `_act`).

    Returns:
        The output tensor.
    """
    _check("normalization", norm, BLOCK_NORMS)
    _check("activation", activation, ACTIVATIONS)
    _check("padding type", pad_type, PAD_TYPES)
    if padding:
        if pad_type == "reflect":
            x = ReflectionPadding2D(padding, name=f"{name}_pad")(x)
        else:
            x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    x = _conv(filters, kernel_size, strides, True, init_type, init_gain, spectral_norm,
              f"{name}_conv")(x)
    if norm == "instance":
        x = InstanceNormalization(epsilon=1e-5, affine=False, name=f"{name}_norm")(x)
    elif norm == "layer":
        x = LayerNorm2D(name=f"{name}_norm")(x)
    elif norm == "adain":
        if adain is None:
            raise ValueError(f"{name}: norm 'adain' needs the AdaIN parameters (adain=...).")
        offset = adain.take(filters)
        x = AdaptiveInstanceNormalization(offset=offset, name=f"{name}_adain")(
            [x, adain.params])
    return _activation(x, activation, lrelu_slope, f"{name}_act")


def _res_blocks(x, num_blocks, dim, norm, activation, adain=None, *, pad_type, lrelu_slope=0.2,
                spectral_norm=False, init_type="kaiming", init_gain=0.02, name="res"):
    """MUNIT's `ResBlocks` applied inline: each block is two 3x3 Conv2dBlocks plus the input."""
    for b in range(1, num_blocks + 1):
        prefix = f"{name}{b}"
        y = conv2d_block(x, dim, 3, 1, 1, norm, activation, pad_type, adain, lrelu_slope,
                         spectral_norm, init_type, init_gain, name=f"{prefix}_1")
        y = conv2d_block(y, dim, 3, 1, 1, norm, "none", pad_type, adain, lrelu_slope,
                         spectral_norm, init_type, init_gain, name=f"{prefix}_2")
        x = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return x


def res_blocks(num_blocks, dim, norm="instance", activation="relu", pad_type="reflect",
               noise_stddev=0.0, lrelu_slope=0.2, spectral_norm=False, init_type="kaiming",
               init_gain=0.02, name="res_blocks"):
    """MUNIT's `ResBlocks` as its own model, e.g. the layers two domains share.

    Calling the same returned model inside two encoders (`content_encoder(shared=...)`) or two
    decoders (`decoder(shared=...)`) makes both use ONE set of variables: UNIT's shared
    encoder top and decoder bottom (NIPS 2017 code; the 2018 PyTorch rewrite dropped the
    sharing, mingyuliutw/UNIT#113), DRIT's `conv_share` and `dec_share`.

    Args:
        num_blocks: number of residual blocks.
        dim: their width (input and output channels).
        norm: `"instance"` or `"none"` (AdaIN blocks live inside `decoder`).
        activation, pad_type, lrelu_slope, spectral_norm, init_type, init_gain: see
            `conv2d_block`.
        noise_stddev: > 0 adds `keras.layers.GaussianNoise` after the blocks, active only in
            training: DRIT's `GaussianNoiseLayer` (stddev 1) after its shared content block.
            Its SeedGenerator state is not in a `tf.train.Checkpoint` of the model by itself
            (GUIDE.md, Dropout): a method that resumes exactly must track it.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, dim)` to the same shape.
    """
    if norm not in ("instance", "none"):
        raise UserError(f"res_blocks norm must be 'instance' or 'none', got {norm!r}.")
    inputs = keras.Input(shape=(None, None, dim), name=f"{name}_input")
    x = _res_blocks(inputs, num_blocks, dim, norm, activation, pad_type=pad_type,
                    lrelu_slope=lrelu_slope, spectral_norm=spectral_norm, init_type=init_type,
                    init_gain=init_gain, name="res")
    if noise_stddev:
        x = keras.layers.GaussianNoise(noise_stddev, name="noise")(x)
    return keras.Model(inputs, x, name=name)


def _shared_dim(shared):
    return int(shared.inputs[0].shape[-1]) if isinstance(shared, keras.Model) else None


def content_encoder(input_nc=3, dim=64, n_downsample=2, n_res=4, norm="instance",
                    activation="relu", pad_type="reflect", shared=None, down_kernel=4,
                    first_norm=None, first_activation=None, lrelu_slope=0.2,
                    spectral_norm=False, init_type="kaiming", init_gain=0.02,
                    name="content_encoder"):
    """MUNIT's `ContentEncoder` (and UNIT's encoder): conv7, downsamplings, residual blocks.

    c7s1-dim, then `n_downsample` stride-2 blocks doubling the width (kernel `down_kernel`,
    padding 1: MUNIT/UNIT use 4, DRIT's `E_content` 3), then `n_res` residual blocks, then the
    `shared` blocks if given. Every block: `norm` and `activation`, except the first when
    `first_norm` / `first_activation` say otherwise.

    DRIT's `E_content`: `n_res=3, down_kernel=3, first_norm="none", first_activation="lrelu",
    lrelu_slope=0.01, init_type="normal"`, `shared=res_blocks(1, 256, noise_stddev=1.0)`.

    Args:
        input_nc: image channels.
        dim: width of the first block; the output has `dim * 2**n_downsample` channels.
        n_downsample, n_res: as in MUNIT (2 and 4 in its configs).
        norm: `"instance"` (MUNIT/UNIT), `"layer"` or `"none"`.
        activation, pad_type, lrelu_slope, spectral_norm, init_type, init_gain: see
            `conv2d_block` (MUNIT's configs: relu, reflect, kaiming).
        shared: a model of `res_blocks` (or any Keras layer keeping the shape) applied last;
            the same object in two encoders shares its variables.
        down_kernel: kernel size of the downsampling convolutions.
        first_norm, first_activation: of the c7s1 block; default `norm` / `activation`.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, H, W, input_nc)` images to
        `(batch, H / 2**n_downsample, W / 2**n_downsample, dim * 2**n_downsample)` content codes.
    """
    if norm == "adain":
        raise UserError("content_encoder norm cannot be 'adain' (that is the decoder's).")
    out_dim = dim * 2**n_downsample
    if shared is not None and _shared_dim(shared) not in (None, out_dim):
        raise ValueError(f"shared blocks take {_shared_dim(shared)} channels but the encoder "
                         f"gives {out_dim}.")
    common = dict(pad_type=pad_type, lrelu_slope=lrelu_slope, spectral_norm=spectral_norm,
                  init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d_block(inputs, dim, 7, 1, 3, first_norm or norm, first_activation or activation,
                     name="in", **common)
    for i in range(1, n_downsample + 1):
        dim *= 2
        x = conv2d_block(x, dim, down_kernel, 2, 1, norm, activation, name=f"down{i}", **common)
    x = _res_blocks(x, n_res, dim, norm, activation, adain=None, name="res", **common)
    if shared is not None:
        x = shared(x)
    return keras.Model(inputs, x, name=name)


def style_encoder(input_nc=3, dim=64, style_dim=8, n_downsample=4, norm="none",
                  activation="relu", pad_type="reflect", spectral_norm=False,
                  init_type="kaiming", init_gain=0.02, name="style_encoder"):
    """MUNIT's `StyleEncoder`: conv7, downsamplings, global average pool, 1x1 conv to the style.

    c7s1-dim, two stride-2 4x4 blocks doubling the width, `n_downsample - 2` more at constant
    width, global average pooling, then a 1x1 convolution (with bias, no activation) to
    `style_dim`. No normalisation (MUNIT passes norm "none"). MUNIT hard-codes 4 downsamplings.

    Args:
        input_nc: image channels.
        dim: width of the first block (the code's last width is `4 * dim`).
        style_dim: size of the style code (8 in MUNIT).
        n_downsample: total stride-2 blocks, at least 2.
        norm, activation, pad_type, spectral_norm, init_type, init_gain: see `conv2d_block`.
        name: the model's name.

    Returns:
        A functional `keras.Model` from images to `(batch, style_dim)` codes (MUNIT's are
        `(batch, style_dim, 1, 1)`).
    """
    if n_downsample < 2:
        raise UserError(f"style_encoder needs n_downsample >= 2, got {n_downsample}.")
    common = dict(pad_type=pad_type, spectral_norm=spectral_norm, init_type=init_type,
                  init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d_block(inputs, dim, 7, 1, 3, norm, activation, name="in", **common)
    for i in range(1, n_downsample + 1):
        if i <= 2:
            dim *= 2
        x = conv2d_block(x, dim, 4, 2, 1, norm, activation, name=f"down{i}", **common)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = _conv(style_dim, 1, 1, True, init_type, init_gain, spectral_norm, "style_conv")(x)
    x = keras.layers.Flatten(name="style")(x)
    return keras.Model(inputs, x, name=name)


def attribute_encoder(input_nc=3, ndf=64, n_blocks=4, max_mult=4, nz=8, norm="none",
                      activation="lrelu", lrelu_slope=0.2, pad_type="reflect",
                      spectral_norm=False, init_type="normal", init_gain=0.02,
                      name="attribute_encoder"):
    """DRIT's `E_attr_concat` (BicycleGAN's `E_ResNet` structure): images to (mu, logvar).

    4x4 stride-2 conv (padding 1, `pad_type`; DRIT reflects, BicycleGAN zero-pads) to `ndf`,
    then `n_blocks - 1` `BasicBlock`s from `ndf * min(max_mult, n)` to
    `ndf * min(max_mult, n + 1)` channels, each halving the size, then the activation, global
    average pooling and two linear layers to `nz`: mu and logvar. A `BasicBlock` is
    [norm] act, conv3x3 (in->in), [norm] act, conv3x3 (in->out), avgpool2, plus a shortcut
    avgpool2, conv1x1 (in->out).

    The references pool with a fixed window (BicycleGAN `AvgPool2d(8)`, DRIT's comment
    `AvgPool2d(13)`) where the feature map is exactly that size; global pooling is the same
    there and works at any size. DRIT passes `norm_layer=None` (norm "none"), BicycleGAN
    instance norm. Initialisation (recalled): DRIT's `initialize()` applies
    `gaussian_weights_init`, N(0, 0.02) on conv weights only, to every net, leaving biases and
    the linear layers at PyTorch's defaults; here every kernel is `init_type`, biases 0.

    Args:
        input_nc: image channels.
        ndf, n_blocks, max_mult: width, number of stages (4 in DRIT) and the width cap.
        nz: size of the attribute code (8 in DRIT and BicycleGAN).
        norm: `"none"` or `"instance"`.
        activation, lrelu_slope, pad_type, spectral_norm, init_type, init_gain: see
            `conv2d_block` (DRIT's nl_layer is LeakyReLU 0.2).
        name: the model's name.

    Returns:
        A functional `keras.Model` from images to `[mu, logvar]`, each `(batch, nz)`.
    """
    if norm not in ("none", "instance"):
        raise UserError(f"attribute_encoder norm must be 'none' or 'instance', got {norm!r}.")
    common = dict(pad_type=pad_type, lrelu_slope=lrelu_slope, spectral_norm=spectral_norm,
                  init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = conv2d_block(inputs, ndf, 4, 2, 1, "none", "none", name="in", **common)
    for n in range(1, n_blocks):
        in_dim, out_dim = ndf * min(max_mult, n), ndf * min(max_mult, n + 1)
        prefix = f"block{n}"
        y = x
        if norm == "instance":
            y = InstanceNormalization(name=f"{prefix}_norm1")(y)
        y = _activation(y, activation, lrelu_slope, f"{prefix}_act1")
        y = conv2d_block(y, in_dim, 3, 1, 1, norm, activation, name=f"{prefix}_1", **common)
        y = conv2d_block(y, out_dim, 3, 1, 1, "none", "none", name=f"{prefix}_2", **common)
        y = keras.layers.AveragePooling2D(2, name=f"{prefix}_pool")(y)
        s = keras.layers.AveragePooling2D(2, name=f"{prefix}_shortcut_pool")(x)
        s = _conv(out_dim, 1, 1, True, init_type, init_gain, spectral_norm,
                  f"{prefix}_shortcut_conv")(s)
        x = keras.layers.Add(name=f"{prefix}_add")([y, s])
    x = _activation(x, activation, lrelu_slope, "out_act")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    mu = _dense(nz, init_type, init_gain, spectral_norm, "mu")(x)
    logvar = _dense(nz, init_type, init_gain, spectral_norm, "logvar")(x)
    return keras.Model(inputs, [mu, logvar], name=name)


def decoder(output_nc=3, dim=256, n_upsample=2, n_res=4, res_norm="adain", style_dim=8,
            mlp_dim=256, mlp_blocks=3, activation="relu", pad_type="reflect", shared=None,
            spectral_norm=False, init_type="kaiming", init_gain=0.02, name="decoder"):
    """MUNIT's `Decoder` (with its style `MLP` when `res_norm="adain"`), or UNIT's.

    [`shared` blocks], `n_res` residual blocks with `res_norm`, then `n_upsample` times
    (nearest upsampling x2, 5x5 conv halving the width, `LayerNorm2D`, activation), then c7s1
    to `output_nc` with tanh.

    With `res_norm="adain"` the model also takes the style code: MUNIT's `MLP` (`mlp_blocks`
    linear layers, `mlp_dim` wide, relu between, none after the last) maps it to the
    parameters of all the AdaIN layers, and each AdaIN layer reads its own slice in build order
    (`AdaptiveInstanceNormalization.offset`: mean = first C values, std = next C), which is
    `assign_adain_params`. The MLP's layers are `mlp_fc1`... and its output is
    `num_adain_params(model)` wide.

    Args:
        output_nc: image channels.
        dim: channels of the content code (MUNIT: `enc_content.output_dim`, 256).
        n_upsample, n_res: as in MUNIT (2 and 4).
        res_norm: `"adain"` (MUNIT) or `"instance"` (UNIT's `VAEGen`).
        style_dim, mlp_dim, mlp_blocks: the style MLP's input, width and depth (8, 256, 3).
        activation, pad_type, spectral_norm, init_type, init_gain: see `conv2d_block`.
        shared: a `res_blocks` model applied first (UNIT's shared decoder bottom).
        name: the model's name.

    Returns:
        A functional `keras.Model`: `[content, style] -> image` for adain, `content -> image`
        otherwise, images `(batch, H * 2**n_upsample, W * 2**n_upsample, output_nc)` in [-1, 1].
    """
    if res_norm not in ("adain", "instance"):
        raise UserError(f"decoder res_norm must be 'adain' or 'instance', got {res_norm!r}.")
    if mlp_blocks < 2:
        raise UserError(f"mlp_blocks must be >= 2, got {mlp_blocks}.")
    common = dict(pad_type=pad_type, spectral_norm=spectral_norm, init_type=init_type,
                  init_gain=init_gain)
    content = keras.Input(shape=(None, None, dim), name="content")
    inputs = [content]
    router = None
    if res_norm == "adain":
        style = keras.Input(shape=(style_dim,), name="style")
        inputs.append(style)
        h = style
        for i in range(1, mlp_blocks):
            h = _dense(mlp_dim, init_type, init_gain, spectral_norm, f"mlp_fc{i}")(h)
            h = keras.layers.ReLU(name=f"mlp_relu{i}")(h)
        # Two AdaIN layers (mean and std: 2 * dim values each) per residual block.
        n_params = 2 * (2 * dim) * n_res
        params = _dense(n_params, init_type, init_gain, spectral_norm,
                        f"mlp_fc{mlp_blocks}")(h)
        router = _AdainRouter(params)
    x = content
    if shared is not None:
        x = shared(x)
    x = _res_blocks(x, n_res, dim, res_norm, activation, router, name="res", **common)
    if router is not None and router.offset != router.params.shape[-1]:
        raise AssertionError("AdaIN parameter count mismatch")  # a bug here, not user input
    for i in range(1, n_upsample + 1):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_upsample")(x)
        dim //= 2
        x = conv2d_block(x, dim, 5, 1, 2, "layer", activation, name=f"up{i}", **common)
    x = conv2d_block(x, output_nc, 7, 1, 3, "none", "tanh", name="out", **common)
    return keras.Model(inputs if len(inputs) > 1 else content, x, name=name)


def adain_layers(model):
    """The AdaIN layers of `model` (searching nested models), in the order they read params."""
    found = []
    for layer in model.layers:
        if isinstance(layer, AdaptiveInstanceNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(adain_layers(layer))
    return sorted(found, key=lambda layer: layer.offset)


def num_adain_params(model):
    """MUNIT's `get_num_adain_params`: 2 * channels summed over the AdaIN layers of `model`."""
    return sum(layer.num_params for layer in adain_layers(model))


def multiscale_discriminator(input_nc=3, dim=64, n_layer=4, num_scales=3, norm="none",
                             activation="lrelu", pad_type="reflect", lrelu_slope=0.2,
                             spectral_norm=False, init_type="normal", init_gain=0.02,
                             name="D"):
    """MUNIT/UNIT's `MsImageDis` (DRIT's `MultiScaleDis`): one discriminator per scale.

    Each scale: a 4x4 stride-2 block to `dim` without norm, `n_layer - 1` 4x4 stride-2 blocks
    doubling the width with `norm`, all with `activation` (LeakyReLU 0.2), then a 1x1 conv to
    one channel. Between scales the image is downsampled by `AvgPool2d(3, stride=2, padding=1,
    count_include_pad=False)`. MUNIT's configs: dim 64, n_layer 4, num_scales 3, norm none,
    lrelu, reflect padding, "normal" 0.02 initialisation. DRIT's: reflect padding, no norm, its
    default LeakyReLU slope 0.01 and an optional spectral norm (`sn`: `spectral_norm=True`).

    Args:
        input_nc: image channels.
        dim, n_layer, num_scales: see above.
        norm, activation, pad_type, lrelu_slope, spectral_norm, init_type, init_gain: see
            `conv2d_block` (norm "adain" is not allowed).
        name: the model's name.

    Returns:
        A functional `keras.Model` from images to a list of `num_scales` float32 logit maps,
        finest first: `(batch, H / 2**n_layer / 2**s, ..., 1)` for scale s at sizes divisible
        by `2**(n_layer + num_scales - 1)`.
    """
    if norm == "adain":
        raise UserError("multiscale_discriminator norm cannot be 'adain'.")
    common = dict(pad_type=pad_type, lrelu_slope=lrelu_slope, spectral_norm=spectral_norm,
                  init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="image")
    x = inputs
    outputs = []
    for s in range(num_scales):
        width = dim
        y = conv2d_block(x, width, 4, 2, 1, "none", activation, name=f"s{s}_conv1", **common)
        for i in range(2, n_layer + 1):
            width *= 2
            y = conv2d_block(y, width, 4, 2, 1, norm, activation, name=f"s{s}_conv{i}",
                             **common)
        y = _conv(1, 1, 1, True, init_type, init_gain, spectral_norm, f"s{s}_logits",
                  dtype="float32")(y)
        outputs.append(y)
        if s + 1 < num_scales:
            x = AveragePooling2DExcludePad(3, 2, 1, name=f"downsample{s + 1}")(x)
    return keras.Model(inputs, outputs, name=name)


def multiscale_min_size(n_layer, num_scales):
    """The smallest image side `multiscale_discriminator(n_layer=..., num_scales=...)` takes:
    its coarsest scale needs 2**n_layer pixels so that its last convolution's reflect padding
    fits."""
    return 2 ** (n_layer + num_scales - 1)


def content_discriminator(input_nc=256, ndf=256, n_layers=3, kernel_size=7, norm="none",
                          lrelu_slope=0.01, pad_type="reflect", spectral_norm=False,
                          init_type="normal", init_gain=0.02, name="D_content"):
    """DRIT's `Dis_content`: one logit per example from a content code.

    `n_layers` blocks (reflect pad 1, `kernel_size` stride-2 conv to `ndf`, LeakyReLU), a
    4x4 stride-1 unpadded conv block, a 1x1 conv to one channel, then global average pooling.
    DRIT's LeakyReLUs are `nn.LeakyReLU()` (slope 0.01), its initialisation N(0, 0.02).

    Reference quirk: its blocks ask for instance norm but test `'norm' == 'Instance'` (a string
    literal), which is never true, so the reference has NO norm; `norm="none"` is that, and
    `norm="instance"` what it meant. At DRIT's 216 px crops the content code is 54x54 and the
    reference's map is already 1x1 (54 -> 25 -> 11 -> 4 -> 1), so the pooling changes nothing
    there; it makes the net work at other sizes (at least 4x4 after the strided blocks).

    Args:
        input_nc: channels of the content code (256 in DRIT).
        ndf, n_layers, kernel_size: width, number of strided blocks and their kernel.
        norm: `"none"` (reference behaviour) or `"instance"`.
        lrelu_slope, pad_type, spectral_norm, init_type, init_gain: see `conv2d_block`.
        name: the model's name.

    Returns:
        A functional `keras.Model` from `(batch, h, w, input_nc)` to `(batch, 1)` float32 logits.
    """
    if norm not in ("none", "instance"):
        raise UserError(f"content_discriminator norm must be 'none' or 'instance', got {norm!r}.")
    common = dict(pad_type=pad_type, lrelu_slope=lrelu_slope, spectral_norm=spectral_norm,
                  init_type=init_type, init_gain=init_gain)
    inputs = keras.Input(shape=(None, None, input_nc), name="content")
    x = inputs
    for i in range(1, n_layers + 1):
        x = conv2d_block(x, ndf, kernel_size, 2, 1, norm, "lrelu", name=f"conv{i}", **common)
    x = conv2d_block(x, ndf, 4, 1, 0, "none", "lrelu", name=f"conv{n_layers + 1}", **common)
    x = _conv(1, 1, 1, True, init_type, init_gain, spectral_norm, "logits", dtype="float32")(x)
    x = keras.layers.GlobalAveragePooling2D(dtype="float32", name="pool")(x)
    return keras.Model(inputs, x, name=name)


def drit_decoder(output_nc=3, dim=256, nz=8, n_res=3, shared=None, init_type="normal",
                 init_gain=0.02, name="drit_decoder"):
    """DRIT's `G_concat` (one domain's half): content + attribute code to an image.

    The `shared` blocks (DRIT's `dec_share`, one `INSResBlock` that both domains' decoders
    use: `res_blocks(1, dim)`; a block of this decoder's own when None), then the attribute
    code `z` tiled and concatenated (`ConcatenateLatent`) before each stage: `n_res` residual
    blocks (instance norm, reflect) at `dim + nz`, two (3x3 stride-2 transposed conv, padding
    1, output padding 1, DRIT's `LayerNorm` = `LayerNorm2D(munit_std=False)`, ReLU) halving the
    width, and a 1x1 transposed conv to `output_nc` with tanh. Initialisation: DRIT's
    `gaussian_weights_init`, N(0, 0.02) on conv and transposed-conv weights (biases keep
    PyTorch's defaults there, 0 here).

    Args:
        output_nc: image channels.
        dim: channels of the content code (256).
        nz: attribute code size (8).
        n_res: residual blocks after the shared one (3).
        shared: a `res_blocks(1, dim)` model shared with the other domain's decoder.
        init_type, init_gain: kernel initialisation.
        name: the model's name.

    Returns:
        A functional `keras.Model` `[content, z] -> image`, 4x the content's size.
    """
    common = dict(pad_type="reflect", init_type=init_type, init_gain=init_gain)
    content = keras.Input(shape=(None, None, dim), name="content")
    z = keras.Input(shape=(nz,), name="z")
    if shared is None:
        shared = res_blocks(1, dim, init_type=init_type, init_gain=init_gain,
                            name=f"{name}_share")
    x = shared(content)
    x = ConcatenateLatent(name="concat1")([x, z])
    width = dim + nz
    x = _res_blocks(x, n_res, width, "instance", "relu", name="res", **common)
    for i in (1, 2):
        x = ConcatenateLatent(name=f"concat{i + 1}")([x, z])
        width = (width + nz) // 2
        x = conv2d_transpose(x, width, 3, 2, 1, 1, True, init_type, init_gain, name=f"up{i}_conv")
        x = LayerNorm2D(munit_std=False, name=f"up{i}_norm")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = ConcatenateLatent(name="concat4")([x, z])
    x = conv2d_transpose(x, output_nc, 1, 1, 0, 0, True, init_type, init_gain, name="out_conv")
    x = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model([content, z], x, name=name)


@keras.saving.register_keras_serializable(package="tfi2i")
class SampleCode(keras.layers.Layer):
    """Draws one code from N(0, I) per image of its input batch: [N, latent_dim].

    Stateful random (`tf.random.normal`), so every call draws anew: what a multimodal
    generator without a given code does at inference (eval, compare, the export's default
    signatures). Training draws its codes statelessly instead (`TranslationModel.step_normal`).

    Args:
        latent_dim: length of each code.
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)

    def call(self, images):
        return tf.random.normal([tf.shape(images)[0], self.latent_dim])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


def sampling_generator(code_generator, latent_dim, name=None):
    """image -> image: `code_generator([image, code])` with the code drawn by `SampleCode`.

    Args:
        code_generator: a keras.Model taking [images, codes [N, latent_dim]].
        latent_dim: the codes' length.
        name: the model's name (default: the code generator's + "_sampling").
    """
    channels = code_generator.inputs[0].shape[-1]
    images = keras.Input(shape=(None, None, channels), name="images")
    codes = SampleCode(latent_dim, name="sample_code")(images)
    outputs = code_generator([images, codes])
    return keras.Model(images, outputs, name=name or f"{code_generator.name}_sampling")
