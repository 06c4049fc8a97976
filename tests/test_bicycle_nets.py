"""Tests of tfi2i.nets.bicycle: BicycleGAN's U-Nets with z, encoder E and multi-scale D.

The parameter counts of the reference's default configuration are computed here layer by
layer; the literal numbers were also measured on torch versions of the reference modules
(scripts/bicycle_torch_reference.py, which also checks the outputs with ported weights).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.nets import (
    AveragePooling2DExcludePad,
    ConcatenateLatent,
    define_bicycle_D,
    define_bicycle_E,
    define_bicycle_G,
    size_divisor,
)
from tfi2i.nets.bicycle import discriminator_min_size, encoder_min_size

NZ = 8


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def images(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def codes(batch, nz=NZ, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, nz)).astype("float32")


# --- Parameter counts, layer by layer ---------------------------------------------------

def conv(c_in, c_out, k):
    """Weights and bias of a k x k convolution (every BicycleGAN conv has a bias)."""
    return c_in * c_out * k * k + c_out


def unet_count(input_nc, output_nc, nz, num_downs, ngf, where_add, upsample="basic",
               batch_norm=False):
    widths = [ngf * min(2**i, 8) for i in range(num_downs)]
    total = 0
    for k in range(1, num_downs + 1):
        c_in = input_nc if k == 1 else widths[k - 2]
        z = nz if where_add == "all" or k == 1 else 0
        total += conv(c_in + z, widths[k - 1], 4)
        up_in = widths[k - 1] if k == num_downs else 2 * widths[k - 1]
        up_out = output_nc if k == 1 else widths[k - 2]
        total += conv(up_in, up_out, 4 if upsample == "basic" else 3)
        if batch_norm and 1 < k < num_downs:
            total += 2 * widths[k - 1]  # down norm: gamma and beta
        if batch_norm and k > 1:
            total += 2 * up_out  # up norm
    return total


def resnet_encoder_count(input_nc, nz, nef, n_blocks):
    total = conv(input_nc, nef, 4)
    for n in range(1, n_blocks):
        c_in, c_out = nef * min(4, n), nef * min(4, n + 1)
        total += conv(c_in, c_in, 3) + conv(c_in, c_out, 3) + conv(c_in, c_out, 1)
    return total + 2 * (c_out * nz + nz)  # the mu and logvar heads


def multiscale_d_count(input_nc, ndf, num_D, n_layers=3):
    total = 0
    for i in range(num_D):
        width = round(ndf / 2**i)
        widths = [width * min(2**n, 8) for n in range(n_layers + 1)]
        total += conv(input_nc, widths[0], 4)
        total += sum(conv(a, b, 4) for a, b in zip(widths, widths[1:]))
        total += conv(widths[-1], 1, 4)
    return total


def test_reference_default_parameter_counts():
    # unet_256 add_all, resnet_256 E, basic_256_multi D with 2 scales: ngf = nef = ndf = 64,
    # nz 8, RGB, instance norm (no parameters). The literals: torch reference modules.
    g = define_bicycle_G()
    assert trainable_count(g) == unet_count(3, 3, NZ, 8, 64, "all") == 54_794_627
    del g
    keras.backend.clear_session()
    e = define_bicycle_E()
    assert trainable_count(e) == resnet_encoder_count(3, NZ, 64, 5) == 2_590_032
    d = define_bicycle_D()
    assert trainable_count(d) == multiscale_d_count(3, 64, 2) == 3_458_978
    # The second scale has half the width: 694,241 of the 3,458,978.
    assert multiscale_d_count(3, 64, 1) == 2_764_737


@pytest.mark.parametrize(
    "netG, where_add, upsample, norm",
    [("unet_128", "input", "basic", "instance"), ("unet_64", "all", "bilinear", "batch"),
     ("unet_32", "all", "basic", "none"), ("unet_32", "input", "bilinear", "batch")],
)
def test_generator_counts_follow_the_formula(netG, where_add, upsample, norm):
    g = define_bicycle_G(netG, input_nc=2, output_nc=1, nz=3, ngf=8, norm=norm,
                         where_add=where_add, upsample=upsample)
    num_downs = {"unet_128": 7, "unet_64": 6, "unet_32": 5}[netG]
    assert trainable_count(g) == unet_count(2, 1, 3, num_downs, 8, where_add, upsample,
                                            batch_norm=norm == "batch")


def test_every_convolution_has_a_bias_whatever_the_norm():
    # Unlike pix2pix's nets (no bias before batch norm), as in the BicycleGAN code.
    nets = [define_bicycle_G("unet_32", ngf=4, norm="batch"),
            define_bicycle_E("resnet_128", nef=4, norm="batch"),
            define_bicycle_E("conv_128", nef=4, norm="batch"),
            define_bicycle_D(ndf=4, norm="batch")]
    for net in nets:
        layers = [layer for layer in net.layers
                  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
        assert layers and all(layer.use_bias for layer in layers), net.name


# --- Generators --------------------------------------------------------------------------

@pytest.mark.parametrize("where_add", ["all", "input"])
@pytest.mark.parametrize("upsample", ["basic", "bilinear"])
def test_generator_output_shape_and_range(where_add, upsample):
    g = define_bicycle_G("unet_32", input_nc=1, output_nc=2, nz=NZ, ngf=8,
                         where_add=where_add, upsample=upsample)
    assert [tuple(t.shape) for t in g.inputs] == [(None, None, None, 1), (None, NZ)]
    out = g([images(2, 32, 64, 1), codes(2)]).numpy()
    assert out.shape == (2, 32, 64, 2) and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0 and out.std() > 0


@pytest.mark.parametrize("where_add, z_levels", [("all", [1, 2, 3, 4, 5, 6]), ("input", [1])])
def test_z_enters_only_by_concatenation(where_add, z_levels):
    g = define_bicycle_G("unet_64", nz=NZ, ngf=4, where_add=where_add)
    z_input = g.inputs[1]
    consumers = [layer for layer in g.layers
                 if any(node_input is z_input for node_input in tf.nest.flatten(layer.input))]
    assert sorted(layer.name for layer in consumers) == [f"down{k}_z" for k in z_levels]
    assert all(isinstance(layer, ConcatenateLatent) for layer in consumers)
    # Each down conv sees nz more channels exactly where z joins.
    for k in range(1, 7):
        in_channels = g.get_layer(f"down{k}_conv").kernel.shape[2]
        base = 3 if k == 1 else 4 * min(2 ** (k - 2), 8)
        assert in_channels == base + (NZ if k in z_levels else 0)

    x, z = images(2, 64, 64, 3), codes(2)
    zero = np.zeros_like(z)
    assert np.abs(g([x, z]).numpy() - g([x, zero]).numpy()).max() > 1e-6
    # Cut z out of the input level: "input" no longer depends on z at all, "all" still does
    # (through the deeper levels).
    kernel = g.get_layer("down1_conv").kernel
    kernel.assign(tf.concat([kernel[:, :, :3], tf.zeros_like(kernel[:, :, 3:])], axis=2))
    change = np.abs(g([x, z]).numpy() - g([x, zero]).numpy()).max()
    if where_add == "input":
        assert change == 0.0
    else:
        assert change > 1e-6


def test_concatenate_latent_tiles_each_example_its_own_code():
    x, z = images(3, 4, 5, 2), codes(3, nz=4)
    out = ConcatenateLatent()([x, z]).numpy()
    assert out.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(out[..., :2], x)
    np.testing.assert_array_equal(out[..., 2:], np.broadcast_to(z[:, None, None, :], (3, 4, 5, 4)))
    assert ConcatenateLatent().compute_output_shape(((None, None, None, 2), (None, 4))) == (
        None, None, None, 6)


def test_generator_batch_equals_one_example_at_a_time():
    # Instance norm is per example, so only a mixed-up tiling could couple the batch.
    g = define_bicycle_G("unet_32", ngf=4)
    x = np.repeat(images(1, 32, 32, 3), 2, axis=0)
    z = codes(2)
    both = g([x, z]).numpy()
    assert np.abs(both[0] - both[1]).max() > 1e-6
    for i in range(2):
        np.testing.assert_allclose(both[i], g([x[i:i + 1], z[i:i + 1]]).numpy()[0], atol=1e-6)


def test_unet_structure_follows_bicycle_reference():
    for where_add in ("all", "input"):
        g = define_bicycle_G("unet_64", ngf=4, nl="elu", where_add=where_add)
        for k in range(2, 7):
            assert isinstance(g.get_layer(f"down{k}_lrelu"), keras.layers.LeakyReLU)
            assert isinstance(g.get_layer(f"up{k}_elu"), keras.layers.ELU)
            # Concatenation [decoded, skip]: decoded first.
            decoded, skip = g.get_layer(f"skip{k}").input
            assert decoded is g.get_layer(f"up{k}_norm").output
            # The in-place LeakyReLU rewrites the skip only without a z concat before it.
            if where_add == "input":
                assert skip is g.get_layer(f"down{k}_lrelu").output
            elif k == 2:
                assert skip is g.get_layer("down1_conv").output
            else:
                assert skip is g.get_layer(f"down{k - 1}_norm").output
        # Innermost: no norm after its down conv, a norm after its up conv.
        names = {layer.name for layer in g.layers}
        assert "down6_norm" not in names and "down1_norm" not in names
        assert "up6_norm" in names and "up1_norm" not in names
        assert g.get_layer("tanh").input is g.get_layer("up1_conv").output


def test_dropout_where_the_reference_puts_it():
    for where_add in ("all", "input"):
        def dropouts(**kwargs):
            g = define_bicycle_G("unet_256", ngf=2, nz=2, where_add=where_add, **kwargs)
            return sorted(layer.name for layer in g.layers
                          if isinstance(layer, keras.layers.Dropout))

        assert dropouts(use_dropout=True) == ["up5_dropout", "up6_dropout", "up7_dropout"]
        assert dropouts() == []
    g = define_bicycle_G("unet_64", ngf=4, use_dropout=True)
    assert g.get_layer("skip5").input[0] is g.get_layer("up5_dropout").output


def test_bilinear_upsampling_matches_pytorch_align_corners_false():
    g = define_bicycle_G("unet_32", ngf=4, upsample="bilinear")
    ups = [layer for layer in g.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert len(ups) == 5 and all(layer.interpolation == "bilinear" for layer in ups)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g.layers)
    assert g.get_layer("up3_conv").kernel.shape[:2] == (3, 3)
    # torch.nn.Upsample(scale_factor=2, mode="bilinear") of [[0, 1], [2, 3]]: source
    # coordinate (i + 0.5) / 2 - 0.5, clamped at the border.
    m = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    out = ups[0](x[None, :, :, None].astype("float32")).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out, m @ x @ m.T, atol=1e-6)


def test_generator_sizes_use_the_unet_divisor():
    assert size_divisor("unet_256") == 256 and size_divisor("unet_32") == 32
    g = define_bicycle_G("unet_32", ngf=4)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        g([images(1, 48, 48, 3), codes(1)])


# --- Encoder -----------------------------------------------------------------------------

@pytest.mark.parametrize("netE, size", [("resnet_256", 64), ("resnet_128", 32),
                                        ("conv_256", 64), ("conv_128", 48)])
def test_encoder_gives_mu_and_logvar(netE, size):
    e = define_bicycle_E(netE, input_nc=3, nz=5, nef=4)
    mu, logvar = e(images(2, size, size, 3))
    assert mu.shape == logvar.shape == (2, 5)
    assert mu.dtype == logvar.dtype == tf.float32
    assert np.abs(mu.numpy() - logvar.numpy()).max() > 0  # two heads, not one
    e = define_bicycle_E(netE, nz=5, nef=4, vae_like=False)
    assert e(images(2, size, size, 3)).shape == (2, 5)
    assert "logvar" not in {layer.name for layer in e.layers}


@pytest.mark.parametrize("netE, size", [("resnet_256", 256), ("resnet_128", 128),
                                        ("conv_256", 256), ("conv_128", 128)])
def test_encoder_pools_an_8x8_map_at_the_reference_size(netE, size):
    # Where the reference's AvgPool2d(8) works, the global average pool is the same pool.
    e = define_bicycle_E(netE, nef=2)
    assert e.get_layer("pool").input.shape[1:3] == (None, None)
    probe = keras.Model(e.input, e.get_layer("pool").input)
    assert probe(images(1, size, size, 3)).shape[1:3] == (8, 8)


def test_encoder_is_per_example_and_resnet_blocks_follow_reference():
    e = define_bicycle_E("resnet_128", nef=4)
    x = images(2, 32, 32, 3)
    mu, logvar = e(x)
    mu0, logvar0 = e(x[:1])
    np.testing.assert_allclose(mu[:1], mu0, atol=1e-6)
    np.testing.assert_allclose(logvar[:1], logvar0, atol=1e-6)
    # Widths nef * min(4, n + 1) and the shortcut avg pool + 1x1 conv.
    assert [e.get_layer(f"block{n}_conv2").filters for n in (1, 2, 3)] == [8, 12, 16]
    assert e.get_layer("block2_shortcut_conv").kernel.shape == (1, 1, 8, 12)
    assert e.get_layer("block1_shortcut_pool").input is e.get_layer("conv1").output
    # With norm "none" the in-place LeakyReLU also rewrites the shortcut's input.
    e = define_bicycle_E("resnet_128", nef=4, norm="none")
    assert e.get_layer("block1_shortcut_pool").input is e.get_layer("block1_lrelu1").output


# --- Discriminator ----------------------------------------------------------------------

def test_multiscale_discriminator_outputs():
    d = define_bicycle_D(ndf=8)
    out = d(images(2, 64, 64, 3))
    assert isinstance(out, list) and [o.shape for o in out] == [(2, 6, 6, 1), (2, 2, 2, 1)]
    assert all(o.dtype == tf.float32 for o in out)
    # The second scale: a PatchGAN of half the width on the 3x3/2 average-pooled image.
    assert d.get_layer("scale0_conv1").filters == 8 and d.get_layer("scale1_conv1").filters == 4
    pool = d.get_layer("down1")
    assert isinstance(pool, AveragePooling2DExcludePad)
    assert (pool.pool_size, pool.strides, pool.padding) == (3, 2, 1)
    assert d.get_layer("scale1_conv1_pad").input is pool.output
    # The reference size: 30x30 and 14x14 patches; basic_128_multi has one layer less.
    assert [o.shape[1:3] for o in d(images(1, 256, 256, 3))] == [(30, 30), (14, 14)]
    d = define_bicycle_D("basic_128_multi", ndf=8, num_D=3)
    assert [o.shape[1:3] for o in d(images(1, 128, 128, 3))] == [(30, 30), (14, 14), (6, 6)]
    # num_D 1: the tensor itself, as the reference returns it.
    d = define_bicycle_D(ndf=8, num_D=1)
    assert d(images(2, 64, 64, 3)).shape == (2, 6, 6, 1)


@pytest.mark.parametrize("netD, num_D, size", [("basic_256_multi", 1, 24),
                                                ("basic_256_multi", 2, 47),
                                                ("basic_128_multi", 3, 45)])
def test_discriminator_min_size(netD, num_D, size):
    assert discriminator_min_size(netD, num_D) == size
    d = define_bicycle_D(netD, ndf=4, num_D=num_D)
    out = tf.nest.flatten(d(images(1, size, size + 1, 3)))
    assert min(o.shape[1] for o in out) == 1 and all(o.shape[-1] == 1 for o in out)


@pytest.mark.parametrize("netE", ["resnet_256", "conv_128"])
def test_encoder_min_size(netE):
    size = encoder_min_size(netE)
    assert size == (32 if netE == "resnet_256" else 16)
    e = define_bicycle_E(netE, nef=2)
    probe = keras.Model(e.input, e.get_layer("pool").input)
    assert probe(images(1, size, size, 3)).shape[1:3] == (1, 1)
    mu, logvar = e(images(1, size, size, 3))
    assert np.isfinite(mu.numpy()).all() and np.isfinite(logvar.numpy()).all()


def torch_avg_pool_exclude_pad(x, k=3, s=2, p=1):
    """numpy AvgPool2d(k, s, p, count_include_pad=False), NHWC."""
    n, h, w, c = x.shape
    out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(max(i * s - p, 0), min(i * s - p + k, h))
            cols = slice(max(j * s - p, 0), min(j * s - p + k, w))
            out[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("size", [(8, 8), (7, 10), (5, 5)])
def test_average_pooling_excludes_padding_like_pytorch(size):
    x = images(2, *size, 3, seed=3) + 2  # offset: counting a padded zero would show
    layer = AveragePooling2DExcludePad(3, 2, 1)
    expected = torch_avg_pool_exclude_pad(x)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-6)
    assert layer.compute_output_shape((None, *size, 3)) == (None, *expected.shape[1:])
    # Keras' "same" pooling puts the windows elsewhere at even sizes.
    if size[0] % 2 == 0:
        same = keras.layers.AveragePooling2D(3, 2, padding="same")(x).numpy()
        assert np.abs(same - expected).max() > 1e-3


# --- Layers, saving, errors ---------------------------------------------------------------

@pytest.mark.parametrize(
    "make_layer",
    [lambda: ConcatenateLatent(name="z_cat"),
     lambda: AveragePooling2DExcludePad(pool_size=5, strides=3, padding=2, name="pool")],
)
def test_layer_config_round_trip(make_layer):
    layer = make_layer()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_keras_save_and_load_round_trip(tmp_path):
    g = define_bicycle_G("unet_32", ngf=4, upsample="bilinear", name="G")
    d = define_bicycle_D(ndf=4, name="D")
    x, z = images(1, 32, 32, 3, seed=5), codes(1)
    for net, inputs in ((g, [x, z]), (d, images(1, 64, 64, 3))):
        path = str(tmp_path / f"{net.name}.keras")
        net.save(path)
        restored = keras.saving.load_model(path)
        for a, b in zip(tf.nest.flatten(restored(inputs)), tf.nest.flatten(net(inputs))):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        g = define_bicycle_G("unet_64", ngf=4)
        e = define_bicycle_E("resnet_128", nef=4)
        d = define_bicycle_D(ndf=4)
        out = g([images(1, 64, 64, 3), codes(1)])
        mu, logvar = e(out)
        logits = d(out)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == mu.dtype == logvar.dtype == tf.float32
    assert all(t.dtype == tf.float32 for t in logits)
    assert np.isfinite(out.numpy()).all() and np.isfinite(mu.numpy()).all()


def test_bad_names_and_options_raise_user_error():
    with pytest.raises(UserError, match="unet_256.*unet_32"):
        define_bicycle_G("resnet_9blocks")
    with pytest.raises(UserError, match="where_add.*all.*input"):
        define_bicycle_G(where_add="middle")
    with pytest.raises(UserError, match="upsample.*basic.*bilinear"):
        define_bicycle_G(upsample="nearest")
    with pytest.raises(UserError, match="relu.*lrelu.*elu"):
        define_bicycle_G(nl="gelu")
    with pytest.raises(UserError, match="nz"):
        define_bicycle_G(nz=0)
    with pytest.raises(UserError, match="batch.*instance.*none"):
        define_bicycle_E(norm="group")
    with pytest.raises(UserError, match="resnet_256.*conv_128"):
        define_bicycle_E("resnet_64")
    with pytest.raises(UserError, match="basic_256_multi.*basic_128_multi"):
        define_bicycle_D("basic_256")
    with pytest.raises(UserError, match="num_D"):
        define_bicycle_D(num_D=0)
    with pytest.raises(UserError, match="ndf >= 4"):
        define_bicycle_D(ndf=1, num_D=3)
    with pytest.raises(UserError, match="normal.*xavier"):
        define_bicycle_D(init_type="he")
