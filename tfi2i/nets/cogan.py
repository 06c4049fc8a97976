"""The networks of CoGAN (Liu & Tuzel 2016): coupled DCGAN generators and discriminators,
and the latent inversion that turns a pair of generators into a translator.

Coupling is weight sharing by construction: the generators of the two domains are one
shared trunk (the first, high-level layers, from the noise vector z) followed by a head of
their own (the last `unshared` layers, down to pixels); the discriminators are a head of
their own (the first, low-level layers) followed by one shared tail (the last layers and the
logit). `G_A` and `G_B` (and `D_A`, `D_B`) are functional models built from the same
sub-models, so their shared parts are the same variables, not copies.

Architecture (DCGAN-style, as the CoGAN code's RGB nets; the widths and the cap at 8 x ngf
are ours): for a `size` x `size` image (a power of 2, at least 16) there are
n = log2(size) - 2 doubling steps from a 4 x 4 start.

    G: z [N, z_dim] -> transposed conv 4x4 (1x1 -> 4x4, ngf * min(2^(n-1), 8) channels),
       norm, ReLU -> n transposed convs k4 s2 p1 halving the channels down to ngf, each with
       norm and ReLU, the last one to `nc` channels with tanh.            (n + 1 layers)
    D: image -> n convs k4 s2 p1 (ndf, 2 ndf, ... capped at 8 ndf; down to 4 x 4), norm from
       the second one on, LeakyReLU 0.2 -> conv 4x4 valid to one logit.   (n + 1 layers)

A convolution before a batch norm has no bias (the norm's offset replaces it); every other
one has one.
"""

import math

import keras
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.nets import initializers
from tfi2i.nets.layers import check_norm, conv2d, conv2d_transpose, normalization

COGAN_MIN_SIZE = 16


def check_cogan_size(size):
    """Raises UserError unless `size` is a power of 2 >= 16 (what the nets generate)."""
    if size < COGAN_MIN_SIZE or size & (size - 1):
        fits = max(COGAN_MIN_SIZE, 2 ** round(math.log2(max(size, 1))))
        raise UserError(
            f"--crop_size={size} does not fit cogan, whose generators make square images "
            f"whose side is a power of 2 of at least {COGAN_MIN_SIZE} px (doubling from 4 x 4): "
            f"use --crop_size={fits} (and a --load_size at least that).")


def num_layers(size):
    """Layers of each CoGAN generator and discriminator at `size` px: log2(size) - 1."""
    check_cogan_size(size)
    return int(math.log2(size)) - 1


def check_unshared(size, g_unshared_layers, d_unshared_layers):
    """Raises UserError unless both nets keep at least one shared layer at `size` px."""
    layers = num_layers(size)
    for flag, value in (("g_unshared_layers", g_unshared_layers),
                        ("d_unshared_layers", d_unshared_layers)):
        if not 1 <= value < layers:
            raise UserError(
                f"--{flag}={value}: at --crop_size={size} cogan's generators and "
                f"discriminators have {layers} layers, and the coupling needs at least one of "
                f"them shared and one per domain: use 1 to {layers - 1}.")


def _has_bias(norm):
    """Whether a convolution followed by `norm` keeps a bias: not before a batch norm."""
    return norm not in ("batch", "sync_batch")


def _norm(x, norm, init_gain, name):
    layer = normalization(norm, init_gain, name=name)
    return x if layer is None else layer(x)


def _g_channels(n, ngf):
    """Output channels of the generator's layers 0 .. n - 1 (layer n is the image)."""
    return [ngf * min(2 ** (n - 1 - i), 8) for i in range(n)]


def _d_channels(n, ndf):
    """Output channels of the discriminator's convolutions 0 .. n - 1 (layer n: the logit)."""
    return [ndf * min(2 ** i, 8) for i in range(n)]


def _g_layer(x, i, n, channels, out_nc, norm, init, prefix):
    """Generator layer i of n + 1 (i = 0 projects z to 4 x 4, i = n makes the image)."""
    if i == n:
        x = conv2d_transpose(x, out_nc, 4, 2, 1, use_bias=True, name=f"{prefix}deconv{i}",
                             **init)
        return keras.layers.Activation("tanh", dtype="float32", name=f"{prefix}tanh")(x)
    stride, padding = (1, 0) if i == 0 else (2, 1)
    x = conv2d_transpose(x, channels[i], 4, stride, padding, use_bias=_has_bias(norm),
                         name=f"{prefix}deconv{i}", **init)
    x = _norm(x, norm, init["init_gain"], f"{prefix}norm{i}")
    return keras.layers.ReLU(name=f"{prefix}relu{i}")(x)


def cogan_generators(size, z_dim=100, nc_A=3, nc_B=3, ngf=64, unshared_layers=1, norm="batch",
                     init_type="normal", init_gain=0.02):
    """The coupled generators.

    Args:
        size: the side of the generated images (power of 2, >= 16).
        z_dim: length of the noise vector.
        nc_A, nc_B: channels of the two domains' images.
        ngf: channels of the last hidden layer (the widest layer has 8 x ngf at most).
        unshared_layers: the last layers each domain has of its own (1 = only the layer that
            makes pixels, the paper's choice); the others are shared.
        norm: normalization after every hidden layer (`tfi2i.nets.layers.NORM_TYPES`).
        init_type, init_gain: kernel initialisation (`tfi2i.nets.initializers`).

    Returns:
        {"shared": z -> features, "head_A", "head_B": features -> image, "G_A", "G_B":
        z [N, z_dim] -> [N, size, size, nc] in [-1, 1] (float32)}, functional models;
        G_A and G_B are the shared trunk followed by their head.
    """
    initializers.check_init_type(init_type)
    check_norm(norm)
    n = num_layers(size) - 1
    check_unshared(size, unshared_layers, 1)
    init = dict(init_type=init_type, init_gain=init_gain)
    channels = _g_channels(n, ngf)
    split = n + 1 - unshared_layers       # layers 0 .. split - 1 are shared

    z = keras.Input(shape=(z_dim,), name="z")
    x = keras.layers.Reshape((1, 1, z_dim), name="z_as_map")(z)
    for i in range(split):
        x = _g_layer(x, i, n, channels, None, norm, init, "")
    shared = keras.Model(z, x, name="G_shared")

    heads = {}
    for domain, nc in (("A", nc_A), ("B", nc_B)):
        features = keras.Input(shape=tuple(shared.output.shape[1:]), name="features")
        x = features
        for i in range(split, n + 1):
            x = _g_layer(x, i, n, channels, nc, norm, init, f"{domain}_")
        heads[domain] = keras.Model(features, x, name=f"G_{domain}_head")
    nets = {"shared": shared, "head_A": heads["A"], "head_B": heads["B"]}
    for domain in ("A", "B"):
        z = keras.Input(shape=(z_dim,), name="z")
        nets[f"G_{domain}"] = keras.Model(z, heads[domain](shared(z)), name=f"G_{domain}")
    return nets


def _d_layer(x, i, n, channels, norm, init, prefix):
    """Discriminator layer i of n + 1 (i = n is the 4 x 4 valid convolution to a logit)."""
    if i == n:
        x = conv2d(x, 1, 4, 1, 0, use_bias=True, name=f"{prefix}conv{i}", **init)
        return keras.layers.Reshape((1,), dtype="float32", name=f"{prefix}logit")(x)
    x = conv2d(x, channels[i], 4, 2, 1, use_bias=i == 0 or _has_bias(norm),
               name=f"{prefix}conv{i}", **init)
    if i > 0:
        x = _norm(x, norm, init["init_gain"], f"{prefix}norm{i}")
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}lrelu{i}")(x)


def cogan_discriminators(size, nc_A=3, nc_B=3, ndf=64, unshared_layers=1, norm="batch",
                         init_type="normal", init_gain=0.02):
    """The coupled discriminators.

    Args:
        size: the side of the judged images (power of 2, >= 16).
        nc_A, nc_B: channels of the two domains' images.
        ndf: channels of the first convolution.
        unshared_layers: the first layers each domain has of its own (1 = only the first
            convolution, the paper's choice); the rest, and the logit, are shared.
        norm, init_type, init_gain: as for `cogan_generators`.

    Returns:
        {"head_A", "head_B": image -> features, "shared": features -> logit, "D_A", "D_B":
        [N, size, size, nc] -> logits [N, 1] (float32)}, functional models.
    """
    initializers.check_init_type(init_type)
    check_norm(norm)
    n = num_layers(size) - 1
    check_unshared(size, 1, unshared_layers)
    init = dict(init_type=init_type, init_gain=init_gain)
    channels = _d_channels(n, ndf)

    heads = {}
    for domain, nc in (("A", nc_A), ("B", nc_B)):
        image = keras.Input(shape=(size, size, nc), name="image")
        x = image
        for i in range(unshared_layers):
            x = _d_layer(x, i, n, channels, norm, init, f"{domain}_")
        heads[domain] = keras.Model(image, x, name=f"D_{domain}_head")
    features = keras.Input(shape=tuple(heads["A"].output.shape[1:]), name="features")
    x = features
    for i in range(unshared_layers, n + 1):
        x = _d_layer(x, i, n, channels, norm, init, "")
    shared = keras.Model(features, x, name="D_shared")
    nets = {"shared": shared, "head_A": heads["A"], "head_B": heads["B"]}
    for domain, nc in (("A", nc_A), ("B", nc_B)):
        image = keras.Input(shape=(size, size, nc), name="image")
        nets[f"D_{domain}"] = keras.Model(image, shared(heads[domain](image)), name=f"D_{domain}")
    return nets


# -- translation by latent inversion --------------------------------------------------------

INVERSION_OPTIMIZERS = ("adam", "gd")
Z_DISTRIBUTIONS = ("uniform", "normal")
# Adam's constants for the inversion (Kingma & Ba's defaults).
_ADAM = (0.9, 0.999, 1e-8)


def sample_z(shape, z_dist, seed):
    """Stateless noise of `shape`: uniform in [-1, 1] or standard normal; `seed` is [2] ints."""
    if z_dist == "uniform":
        return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
    return tf.random.stateless_normal(shape, seed)


def invert(generator, images, z_dim, steps, lr, optimizer="adam", z_dist="uniform", seed=0,
           with_start=False):
    """z* minimizing |generator(z) - image|_1 for each image, by `steps` gradient steps.

    Every image starts from the same z0 (one fixed-seed draw of the prior), so an image's z*
    does not depend on the batch it comes in; each image's loss is its own per-pixel mean
    L1, and the batch's sum is differentiated, so no image's gradient depends on the others.
    With a uniform prior z stays in [-1, 1] (projected after every step). The generator runs
    in inference mode (batch norm's moving statistics). The result is the best z seen, so
    the reconstruction error is never above the start's.

    Runs as a `tf.while_loop`, so that a traced caller (tf.function, a SavedModel
    signature) holds one loop, not `steps` copies of the network.

    Args:
        generator: z [N, z_dim] -> images of the shape of `images`.
        images: [N, H, W, C] float32 in [-1, 1], H, W the generator's size.
        z_dim: length of z.
        steps: gradient steps (0: z0 itself).
        lr: step size (Adam's learning rate, or plain gradient descent's).
        optimizer: "adam" or "gd".
        z_dist: the prior, "uniform" or "normal" (only the start and the projection use it).
        seed: the seed of z0.
        with_start: also return the start and its error.

    Returns:
        {"z": z* [N, z_dim], "rec": per-image L1 at z* [N]}, and with `with_start`
        "z0" (the start) and "rec0" (its L1).
    """
    if optimizer not in INVERSION_OPTIMIZERS:
        raise UserError(f"Unknown inversion optimizer {optimizer!r}: use one of "
                        f"{', '.join(INVERSION_OPTIMIZERS)}.")
    images = tf.cast(images, tf.float32)
    batch = tf.shape(images)[0]
    z0 = tf.tile(sample_z([1, z_dim], z_dist, tf.constant([seed, 0], tf.int64)), [batch, 1])
    beta_1, beta_2, epsilon = _ADAM

    def reconstruction(z):
        out = tf.cast(generator(z, training=False), tf.float32)
        return tf.reduce_mean(tf.abs(out - images), axis=[1, 2, 3])

    def body(i, z, m, v, best_z, best):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = reconstruction(z)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(total, z)
        better = loss < best
        best_z = tf.where(better[:, None], z, best_z)
        best = tf.where(better, loss, best)
        if optimizer == "adam":
            m = beta_1 * m + (1.0 - beta_1) * grad
            v = beta_2 * v + (1.0 - beta_2) * tf.square(grad)
            t = tf.cast(i + 1, tf.float32)
            m_hat = m / (1.0 - tf.pow(beta_1, t))
            v_hat = v / (1.0 - tf.pow(beta_2, t))
            z = z - lr * m_hat / (tf.sqrt(v_hat) + epsilon)
        else:
            z = z - lr * grad
        if z_dist == "uniform":
            z = tf.clip_by_value(z, -1.0, 1.0)
        return i + 1, z, m, v, best_z, best

    zeros = tf.zeros_like(z0)
    inf = tf.fill([batch], float("inf"))
    _, z, _, _, best_z, best = tf.while_loop(
        lambda i, *_: i < steps, body, (tf.constant(0), z0, zeros, zeros, z0, inf),
        maximum_iterations=steps)
    # The last step's result, which the loop did not evaluate.
    last = reconstruction(z)
    better = last < best
    best_z = tf.where(better[:, None], z, best_z)
    best = tf.where(better, last, best)
    result = {"z": best_z, "rec": best}
    if with_start:
        result.update(z0=z0, rec0=reconstruction(z0))
    return result


class LatentTranslator(keras.layers.Layer):
    """Translation with a coupled pair: G_target(z*), z* the inversion of G_source for x.

    Takes [N, H, W, C] images in [-1, 1] of any size: they are resized (bilinear, with
    antialiasing) to the generators' size, inverted, and the translation is resized back to
    H x W. It has no variables of its own: it reads the generators' (which stay trainable for
    the method's optimizers; this layer is never trained).

    Args:
        source, target: generators z -> image of the input and of the output domain.
        size: the generators' image size.
        z_dim, steps, lr, optimizer, z_dist, seed: of `invert`.
    """

    def __init__(self, source, target, size, z_dim, steps, lr, optimizer="adam",
                 z_dist="uniform", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.source, self.target = source, target
        self.size = int(size)
        self.inversion = dict(z_dim=int(z_dim), steps=int(steps), lr=float(lr),
                              optimizer=optimizer, z_dist=z_dist, seed=int(seed))
        self.out_nc = target.output.shape[-1]
        # Compiled once per input shape: eager callers (tfi2i-compare, sample grids) would
        # otherwise run the loop op by op.
        self._compiled = tf.function(self._translate, reduce_retracing=True)
        self._compiled_invert = tf.function(self._invert, reduce_retracing=True)

    def resized(self, images):
        """images at the generators' size (unchanged when already there)."""
        images = tf.cast(images, tf.float32)
        if images.shape[1] == self.size and images.shape[2] == self.size:
            return images
        return tf.image.resize(images, [self.size, self.size], antialias=True)

    def invert(self, images, with_start=False):
        """`invert` of the source generator for images at the generators' size."""
        if tf.executing_eagerly():
            return self._compiled_invert(tf.convert_to_tensor(images, tf.float32), with_start)
        return invert(self.source, images, with_start=with_start, **self.inversion)

    def _invert(self, images, with_start):
        return invert(self.source, images, with_start=with_start, **self.inversion)

    def _translate(self, images):
        shape = tf.shape(images)
        z = self.invert(self.resized(images))["z"]
        out = tf.cast(self.target(z, training=False), tf.float32)
        if images.shape[1] == self.size and images.shape[2] == self.size:
            return out
        return tf.image.resize(out, shape[1:3], antialias=True)

    def call(self, images, training=False):
        # training is ignored: translation always runs the generators in inference mode.
        return self._compiled(images)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_nc,)


def latent_translator(source, target, size, in_nc, name, **inversion):
    """A functional keras.Model around `LatentTranslator`: [N, H, W, in_nc] -> [N, H, W, out].

    A functional model has the `inputs` the exporter and the translator read.
    """
    images = keras.Input(shape=(None, None, in_nc), name="image")
    layer = LatentTranslator(source, target, size, name=f"{name}_inversion", **inversion)
    return keras.Model(images, layer(images), name=name)
