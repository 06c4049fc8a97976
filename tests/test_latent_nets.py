"""Tests of tfi2i.nets.latent: the UNIT / MUNIT / DRIT building blocks.

Parameter counts of the full-size MUNIT generator and discriminator are derived BY HAND here,
layer by layer from the reference's `networks.py` structure. (They also equal what the
reference's own classes count under torch 2.13: AdaINGen 15,026,187, MsImageDis 8,271,171,
checked once outside the repo, whose code stays out of it.) Everything else runs at tiny sizes
(dim 8, 32 px). `test_munit_nets_match_torch_live` compares outputs with a torch
re-implementation and runs only where a Python with torch is found ($TFI2I_TORCH_PYTHON).
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.nets import latent
from tfi2i.nets.bicycle import AveragePooling2DExcludePad
from tfi2i.nets.latent import AdaptiveInstanceNormalization, LayerNorm2D, SpectralNormalization


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def images(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def conv(k, cin, cout):
    """Parameters of a k x k conv with bias (MUNIT's Conv2dBlock always has one)."""
    return k * k * cin * cout + cout


def linear(cin, cout):
    return cin * cout + cout


# --- Parameter counts, derived by hand from the reference structure ---------------------------

def test_munit_generator_parameter_count_by_hand():
    # MUNIT AdaINGen, configs/edges2shoes: dim 64, style_dim 8, n_downsample 2, n_res 4,
    # mlp_dim 256, RGB. Instance norm has no parameters (its running stats are buffers).
    style = (conv(7, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256) + 2 * conv(4, 256, 256)
             + conv(1, 256, 8))
    content = conv(7, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256) + 4 * 2 * conv(3, 256, 256)
    n_adain = 4 * 2 * 2 * 256  # 4 blocks x 2 AdaIN layers x (mean, std) x 256 channels
    mlp = linear(8, 256) + linear(256, 256) + linear(256, n_adain)
    decoder = (4 * 2 * conv(3, 256, 256)
               + conv(5, 256, 128) + 2 * 128  # + LayerNorm gamma, beta
               + conv(5, 128, 64) + 2 * 64
               + conv(7, 64, 3))
    se, ce, de = latent.style_encoder(), latent.content_encoder(), latent.decoder()
    assert latent.num_adain_params(de) == n_adain == 4096
    assert trainable_count(se) == style == 2_764_936
    assert trainable_count(ce) == content == 5_385_856
    assert trainable_count(de) == decoder + mlp == 6_875_395
    assert style + content + decoder + mlp == 15_026_187


def test_msimagedis_parameter_count_by_hand():
    # MUNIT/UNIT MsImageDis: dim 64, n_layer 4, 3 scales, norm none, RGB.
    one_scale = (conv(4, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256) + conv(4, 256, 512)
                 + conv(1, 512, 1))
    d = latent.multiscale_discriminator()
    assert trainable_count(d) == 3 * one_scale == 8_271_171
    keras.backend.clear_session()


def test_drit_encoders_and_content_discriminator_counts_by_hand():
    # DRIT E_attr_concat (one domain): ndf 64, 4 stages, max 4x, nz 8, no norm.
    def basic(cin, cout):
        return conv(3, cin, cin) + conv(3, cin, cout) + conv(1, cin, cout)
    attr = (conv(4, 3, 64) + basic(64, 128) + basic(128, 192) + basic(192, 256)
            + 2 * linear(256, 8))
    assert trainable_count(latent.attribute_encoder()) == attr
    # Dis_content: 3 x conv7 256->256, conv4 256->256, conv1 256->1.
    dis = 3 * conv(7, 256, 256) + conv(4, 256, 256) + conv(1, 256, 1)
    assert trainable_count(latent.content_discriminator()) == dis
    # E_content (one domain, plus the shared block): conv7 3->64, two k3 downsamplings,
    # 3 own + 1 shared residual blocks.
    shared = latent.res_blocks(1, 256, noise_stddev=1.0)
    enc = latent.content_encoder(n_res=3, down_kernel=3, first_norm="none",
                                 first_activation="lrelu", lrelu_slope=0.01, shared=shared)
    assert trainable_count(enc) == (conv(7, 3, 64) + conv(3, 64, 128) + conv(3, 128, 256)
                                    + 4 * 2 * conv(3, 256, 256))
    # G_concat (one domain, with the shared block): channels 256 + 8 through the residual
    # blocks, then (264 + 8) -> 136 and (136 + 8) -> 72 transposed convs with LayerNorm, and
    # a 1x1 transposed conv (72 + 8) -> 3.
    dec = latent.drit_decoder()
    assert trainable_count(dec) == (2 * conv(3, 256, 256) + 3 * 2 * conv(3, 264, 264)
                                    + conv(3, 272, 136) + 2 * 136 + conv(3, 144, 72) + 2 * 72
                                    + conv(1, 80, 3))
    keras.backend.clear_session()


# --- Blocks and shapes -----------------------------------------------------------------------

def test_conv2d_block_options():
    x = keras.Input(shape=(None, None, 3))
    y = latent.conv2d_block(x, 4, 3, 1, 1, norm="layer", activation="lrelu", pad_type="zero",
                            name="b")
    m = keras.Model(x, y)
    names = [layer.name for layer in m.layers]
    assert names[1:] == ["b_pad", "b_conv", "b_norm", "b_act"]
    assert isinstance(m.get_layer("b_pad"), keras.layers.ZeroPadding2D)
    assert isinstance(m.get_layer("b_norm"), LayerNorm2D)
    assert m.get_layer("b_act").negative_slope == pytest.approx(0.2)
    assert m.get_layer("b_conv").use_bias
    out = m(images(2, 8, 8, 3)).numpy()
    assert out.shape == (2, 8, 8, 4) and out.min() < 0  # leaky: negatives survive
    with pytest.raises(UserError, match="normalization"):
        latent.conv2d_block(x, 4, 3, norm="batchy")
    with pytest.raises(UserError, match="activation"):
        latent.conv2d_block(x, 4, 3, activation="gelu")


def test_shapes_at_tiny_size():
    x = images(2, 32, 32, 3)
    enc = latent.content_encoder(dim=8)
    content = enc(x).numpy()
    assert content.shape == (2, 8, 8, 32)
    style = latent.style_encoder(dim=8)(x).numpy()
    assert style.shape == (2, 8)
    dec = latent.decoder(dim=32, mlp_dim=16)
    out = dec([content, style]).numpy()
    assert out.shape == (2, 32, 32, 3) and np.abs(out).max() <= 1
    unit_dec = latent.decoder(dim=32, res_norm="instance")
    assert len(unit_dec.inputs) == 1 and unit_dec(content).shape == (2, 32, 32, 3)
    mu, logvar = latent.attribute_encoder(ndf=8)(x)
    assert mu.shape == logvar.shape == (2, 8)
    assert latent.content_discriminator(input_nc=32, ndf=8, n_layers=1, kernel_size=3)(
        content).shape == (2, 1)
    z = images(2, 8, seed=23)
    drit = latent.drit_decoder(dim=32, n_res=1)
    assert drit([content, z]).shape == (2, 32, 32, 3)
    assert np.abs(drit([content, z]).numpy() - drit([content, -z]).numpy()).max() > 1e-4
    outs = latent.multiscale_discriminator(dim=8, n_layer=3)(x)
    assert [o.shape for o in outs] == [(2, 4, 4, 1), (2, 2, 2, 1), (2, 1, 1, 1)]


def test_layer_norm_matches_munit_formula():
    x = images(2, 5, 4, 3, seed=1) * 3 + 1
    layer = LayerNorm2D()
    y = layer(x).numpy()
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    assert np.all((gamma >= 0) & (gamma <= 1)) and np.all(beta == 0)
    flat = x.reshape(2, -1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, ddof=1)[:, None, None, None]  # unbiased, as torch.Tensor.std
    np.testing.assert_allclose(y, (x - mean) / (std + 1e-5) * gamma + beta, atol=1e-5)
    # DRIT's variant: F.layer_norm (biased variance inside the sqrt), gamma 1.
    y2 = LayerNorm2D(munit_std=False)(x).numpy()
    var = flat.var(1)[:, None, None, None]
    np.testing.assert_allclose(y2, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def test_average_pooling_excludes_padding_like_pytorch():
    x = images(1, 6, 5, 2, seed=2)
    y = AveragePooling2DExcludePad(3, 2, 1)(x).numpy()
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=np.nan)
    expected = np.empty((1, 3, 3, 2), "float32")
    for i in range(3):
        for j in range(3):
            expected[0, i, j] = np.nanmean(padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3], axis=(0, 1))
    assert y.shape == (1, 3, 3, 2)
    np.testing.assert_allclose(y, expected, atol=1e-6)


# --- Weight sharing ----------------------------------------------------------------------------

def test_shared_blocks_are_one_set_of_variables_and_train_together():
    shared = latent.res_blocks(1, 16, name="shared")
    enc_a = latent.content_encoder(dim=8, n_downsample=1, n_res=1, shared=shared, name="E_a")
    enc_b = latent.content_encoder(dim=8, n_downsample=1, n_res=1, shared=shared, name="E_b")
    ids_a = {id(v) for v in enc_a.trainable_variables}
    ids_b = {id(v) for v in enc_b.trainable_variables}
    shared_ids = {id(v) for v in shared.trainable_variables}
    assert shared_ids and ids_a & ids_b == shared_ids
    assert len(ids_a | ids_b) == len(ids_a) + len(ids_b) - len(shared_ids)

    x_a, x_b = images(2, 16, 16, 3, seed=3), images(2, 16, 16, 3, seed=4)
    before_b = enc_b(x_b).numpy()
    own_b = [v.numpy() for v in enc_b.trainable_variables if id(v) not in shared_ids]
    shared_before = [v.numpy() for v in shared.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(enc_a(x_a) - 1.0))
    grads = tape.gradient(loss, enc_a.trainable_variables)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, enc_a.trainable_variables))
    # A's step moved the shared variables, hence B's encoder, but none of B's own.
    assert all(np.abs(v.numpy() - b).max() > 0
               for v, b in zip(shared.trainable_variables, shared_before)
               if "kernel" in v.path)
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(
        [v for v in enc_b.trainable_variables if id(v) not in shared_ids], own_b))
    assert np.abs(enc_b(x_b).numpy() - before_b).max() > 1e-4


def test_drit_shared_noise_only_in_training():
    shared = latent.res_blocks(1, 16, noise_stddev=1.0, name="share_noise")
    enc = latent.content_encoder(dim=8, n_downsample=1, n_res=0, shared=shared)
    x = images(1, 8, 8, 3, seed=24)
    np.testing.assert_array_equal(enc(x, training=False).numpy(), enc(x, training=False).numpy())
    noisy = enc(x, training=True).numpy() - enc(x, training=False).numpy()
    assert 0.5 < noisy.std() < 1.5  # stddev 1 noise added


def test_shared_decoder_bottom():
    shared = latent.res_blocks(1, 16, name="shared_dec")
    dec_a = latent.decoder(dim=16, n_upsample=1, n_res=1, res_norm="instance", shared=shared,
                           name="G_a")
    dec_b = latent.decoder(dim=16, n_upsample=1, n_res=1, res_norm="instance", shared=shared,
                           name="G_b")
    common = {id(v) for v in dec_a.trainable_variables} & {id(v) for v in dec_b.trainable_variables}
    assert common == {id(v) for v in shared.trainable_variables}


# --- AdaIN and its parameter routing -------------------------------------------------------------

def test_adain_layer_normalises_with_given_slice():
    x = images(2, 4, 3, 5, seed=5) * 2 + 0.5
    params = images(2, 30, seed=6)
    y = AdaptiveInstanceNormalization(offset=10)([x, params]).numpy()
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    mean, std = params[:, 10:15], params[:, 15:20]
    expected = (x - mu) / np.sqrt(var + 1e-5) * std[:, None, None] + mean[:, None, None]
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert not AdaptiveInstanceNormalization().weights


def test_adain_routing_from_mlp_output():
    dim, n_res = 8, 2
    dec = latent.decoder(dim=dim, n_upsample=1, n_res=n_res, style_dim=4, mlp_dim=6)
    layers = latent.adain_layers(dec)
    assert len(layers) == 2 * n_res
    assert [layer.offset for layer in layers] == [2 * dim * k for k in range(2 * n_res)]
    n_params = latent.num_adain_params(dec)
    assert n_params == dec.get_layer("mlp_fc3").units == 2 * dim * 2 * n_res
    # Make the MLP output known values: zero kernel, chosen bias (the same for every example).
    known = np.random.default_rng(7).normal(1.0, 0.5, n_params).astype("float32")
    last = dec.get_layer("mlp_fc3")
    last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
    last.bias.assign(known)
    probe = keras.Model(dec.inputs, [t for layer in layers for t in (layer.input[0], layer.output)])
    results = probe([images(2, 4, 4, dim, seed=8), images(2, 4, seed=9)])
    for k in range(2 * n_res):
        x, y = results[2 * k].numpy(), results[2 * k + 1].numpy()
        mean = known[2 * dim * k:2 * dim * k + dim]
        std = known[2 * dim * k + dim:2 * dim * (k + 1)]
        mu = x.mean(axis=(1, 2), keepdims=True)
        var = x.var(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * std + mean, atol=1e-4)
        # ...and not with any other layer's slice.
        other = known[2 * dim * ((k + 1) % (2 * n_res)):][:dim]
        assert not np.allclose(y, (x - mu) / np.sqrt(var + 1e-5) * std + other, atol=1e-2)


def test_style_changes_decoder_output():
    dec = latent.decoder(dim=8, n_upsample=1, n_res=1, style_dim=4, mlp_dim=8)
    content = images(1, 4, 4, 8, seed=10)
    a = dec([content, images(1, 4, seed=11)]).numpy()
    b = dec([content, images(1, 4, seed=12)]).numpy()
    assert np.abs(a - b).max() > 1e-3


# --- Spectral normalisation ----------------------------------------------------------------------

def test_spectral_norm_one_power_iteration_matches_numpy():
    layer = SpectralNormalization(keras.layers.Conv2D(4, 3, padding="valid"))
    x = images(2, 6, 6, 3, seed=13)
    layer(x)  # build
    kernel = layer.layer.kernel.numpy()
    u0 = layer.u.numpy()
    w = kernel.reshape(-1, 4).T  # (out, kh*kw*in)
    v = w.T @ u0
    v /= np.linalg.norm(v)
    u = w @ v
    u /= np.linalg.norm(u)
    sigma = u @ w @ v
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(layer.u.numpy(), u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.v.numpy(), v, rtol=1e-5, atol=1e-6)
    expected = tf.nn.conv2d(x, kernel / sigma, 1, "VALID").numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    # Inference: sigma from the stored u, v, which do not move; the kernel itself is untouched.
    u_stored = layer.u.numpy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u_stored)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)


def test_spectral_norm_converges_and_backpropagates_through_sigma():
    layer = SpectralNormalization(keras.layers.Dense(5), power_iterations=1)
    x = images(3, 7, seed=14)
    layer(x)
    # A kernel with singular values 3, 1.5, ...: power iteration gains 4x a step.
    rng = np.random.default_rng(14)
    q1, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    q2, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    layer.layer.kernel.assign((q1[:, :5] * [3.0, 1.5, 1.0, 0.5, 0.2]) @ q2.T)
    for _ in range(20):
        layer(x, training=True)
    w = layer.normalized_kernel().numpy()
    assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-4)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True))
    grad = tape.gradient(loss, layer.layer.kernel).numpy()
    # With sigma held constant the gradient would be x^T 1 / sigma, rank one.
    assert np.linalg.matrix_rank(grad, tol=1e-5) > 1
    assert len(layer.trainable_weights) == 2  # kernel and bias; u, v are not trained


def test_keras_spectral_normalization_leaves_inference_unnormalised():
    # Why latent.SpectralNormalization exists: Keras' wrapper overwrites the kernel in training
    # and uses whatever the optimiser left there in inference.
    layer = keras.layers.SpectralNormalization(keras.layers.Dense(5))
    x = images(3, 7, seed=15)
    layer(x)
    rng = np.random.default_rng(15)
    q1, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    q2, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    layer.layer.kernel.assign((q1[:, :5] * [3.0, 1.5, 1.0, 0.5, 0.2]) @ q2.T)
    for _ in range(30):
        layer(x, training=True)
    layer.layer.kernel.assign(layer.layer.kernel * 3.0)  # an optimiser step, exaggerated
    w = layer.layer.kernel.numpy()
    y = layer(x, training=False).numpy()
    np.testing.assert_allclose(y, x @ w + layer.layer.bias.numpy(), atol=1e-5)
    assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(3.0, rel=0.01)
    ours = SpectralNormalization(keras.layers.Dense(5))
    ours(x)
    ours.layer.kernel.assign(w)
    for _ in range(30):
        ours(x, training=True)
    ours.layer.kernel.assign(ours.layer.kernel * 3.0)
    w = ours.normalized_kernel(training=False).numpy()
    assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_in_the_nets():
    d = latent.multiscale_discriminator(dim=8, n_layer=2, num_scales=2, spectral_norm=True)
    plain = latent.multiscale_discriminator(dim=8, n_layer=2, num_scales=2)
    assert trainable_count(d) == trainable_count(plain)
    assert sum(isinstance(layer, SpectralNormalization) for layer in d.layers) == 2 * 3
    x = images(2, 16, 16, 3, seed=16)
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_mean(o) for o in d(x, training=True))
    grads = tape.gradient(loss, d.trainable_variables)
    assert all(g is not None for g in grads)
    g = latent.decoder(dim=8, n_upsample=1, n_res=1, style_dim=4, mlp_dim=8, spectral_norm=True)
    assert g([images(1, 4, 4, 8), images(1, 4)], training=True).shape == (1, 8, 8, 3)


# --- Saving --------------------------------------------------------------------------------------

def test_keras_save_round_trip(tmp_path):
    dec = latent.decoder(dim=8, n_upsample=1, n_res=1, style_dim=4, mlp_dim=8)
    d = latent.multiscale_discriminator(dim=8, n_layer=2, num_scales=2, spectral_norm=True)
    inputs = [images(1, 4, 4, 8, seed=17), images(1, 4, seed=18)]
    x = images(1, 16, 16, 3, seed=19)
    d(x, training=True)  # move u, v off their initial values
    for model, args in [(dec, inputs), (d, x)]:
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        for a, b in zip(tf.nest.flatten(model(args)), tf.nest.flatten(loaded(args))):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_spectral_norm_under_mirrored_strategy(mirrored_strategy):
    # u and v are assigned inside the replica context: they need an aggregation, and both
    # replicas must end with the single-device values.
    x = images(4, 8, 8, 3, seed=20)
    with mirrored_strategy.scope():
        layer = SpectralNormalization(keras.layers.Conv2D(4, 3), name="sn_mirrored")
        layer.build((None, 8, 8, 3))
    u0 = layer.u.numpy()
    kernel = layer.layer.kernel.numpy()

    @tf.function
    def step(batch):
        return layer(batch, training=True)

    dist = mirrored_strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4))
    out = mirrored_strategy.run(step, args=(next(iter(dist)),))
    got = np.concatenate([t.numpy() for t in mirrored_strategy.experimental_local_results(out)])
    w = kernel.reshape(-1, 4).T
    v = w.T @ u0
    v /= np.linalg.norm(v)
    u = w @ v
    u /= np.linalg.norm(u)
    np.testing.assert_allclose(got, tf.nn.conv2d(x, kernel / (u @ w @ v), 1, "VALID").numpy(),
                               rtol=1e-4, atol=1e-5)
    for replica_u in mirrored_strategy.experimental_local_results(layer.u):
        np.testing.assert_allclose(replica_u.numpy(), u, rtol=1e-5, atol=1e-6)


# --- Parity with torch (skipped without it) -------------------------------------------------------

# A torch re-implementation of MUNIT's Conv2dBlock, ResBlock, LayerNorm, AdaIN (+ MLP routing),
# StyleEncoder, ContentEncoder, Decoder and MsImageDis at tiny sizes, written from the reference's
# structure with torch's own ops (F.instance_norm, Tensor.std, AvgPool2d(count_include_pad=False),
# nn.Upsample). Its parameters are keyed by our Keras layer names; default torch init (random
# biases too), LayerNorm offsets random, so every parameter matters.
TORCH_PROGRAM = r"""
import sys, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
W, ADAIN, PREFIX = {}, [], ['']
class LN(nn.Module):
    def __init__(s, c):
        super().__init__(); s.gamma = nn.Parameter(torch.rand(c)); s.beta = nn.Parameter(0.1 * torch.randn(c))
    def forward(s, x):
        flat = x.flatten(1); m = flat.mean(1).view(-1, 1, 1, 1); sd = flat.std(1).view(-1, 1, 1, 1)
        return (x - m) / (sd + 1e-5) * s.gamma.view(1, -1, 1, 1) + s.beta.view(1, -1, 1, 1)
class AdaIN(nn.Module):
    def __init__(s, c):
        super().__init__(); s.c = c; s.p = None
    def forward(s, x):
        return (F.instance_norm(x, eps=1e-5) * s.p[:, s.c:, None, None] + s.p[:, :s.c, None, None])
def block(name, cin, cout, k, st, p, norm, act):
    conv = nn.Conv2d(cin, cout, k, st); W[PREFIX[0] + name + '_conv'] = conv
    layers = [nn.ReflectionPad2d(p), conv]
    if norm == 'in': layers.append(nn.InstanceNorm2d(cout))
    if norm == 'ln': n = LN(cout); W[PREFIX[0] + name + '_norm'] = n; layers.append(n)
    if norm == 'adain': n = AdaIN(cout); ADAIN.append(n); layers.append(n)
    layers += {'relu': [nn.ReLU()], 'lrelu': [nn.LeakyReLU(0.2)], 'tanh': [nn.Tanh()], 'none': []}[act]
    return nn.Sequential(*layers)
class Res(nn.Module):
    def __init__(s, name, c, norm):
        super().__init__()
        s.m = nn.Sequential(block(name + '_1', c, c, 3, 1, 1, norm, 'relu'), block(name + '_2', c, c, 3, 1, 1, norm, 'none'))
    def forward(s, x): return x + s.m(x)
def linear(name, cin, cout):
    fc = nn.Linear(cin, cout); W[PREFIX[0] + name] = fc; return fc
PREFIX[0] = 'style/'
style = nn.Sequential(block('in', 3, 8, 7, 1, 3, 'none', 'relu'), block('down1', 8, 16, 4, 2, 1, 'none', 'relu'),
    block('down2', 16, 32, 4, 2, 1, 'none', 'relu'), block('down3', 32, 32, 4, 2, 1, 'none', 'relu'),
    block('down4', 32, 32, 4, 2, 1, 'none', 'relu'), nn.AdaptiveAvgPool2d(1))
style_conv = nn.Conv2d(32, 8, 1); W['style/style_conv'] = style_conv
PREFIX[0] = 'content/'
content = nn.Sequential(block('in', 3, 8, 7, 1, 3, 'in', 'relu'), block('down1', 8, 16, 4, 2, 1, 'in', 'relu'),
    block('down2', 16, 32, 4, 2, 1, 'in', 'relu'), Res('res1', 32, 'in'), Res('res2', 32, 'in'))
PREFIX[0] = 'decoder/'
mlp = nn.Sequential(linear('mlp_fc1', 8, 16), nn.ReLU(), linear('mlp_fc2', 16, 16), nn.ReLU(), linear('mlp_fc3', 16, 4 * 2 * 32))
dec = nn.Sequential(Res('res1', 32, 'adain'), Res('res2', 32, 'adain'), nn.Upsample(scale_factor=2),
    block('up1', 32, 16, 5, 1, 2, 'ln', 'relu'), nn.Upsample(scale_factor=2), block('up2', 16, 8, 5, 1, 2, 'ln', 'relu'),
    block('out', 8, 3, 7, 1, 3, 'none', 'tanh'))
PREFIX[0] = 'dis/'
scales = []
for s in range(3):
    last = nn.Conv2d(32, 1, 1); W[f'dis/s{s}_logits'] = last
    scales.append(nn.Sequential(block(f's{s}_conv1', 3, 8, 4, 2, 1, 'none', 'lrelu'),
        block(f's{s}_conv2', 8, 16, 4, 2, 1, 'none', 'lrelu'), block(f's{s}_conv3', 16, 32, 4, 2, 1, 'none', 'lrelu'), last))
pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
data = np.load(sys.argv[1])
x = torch.from_numpy(data['x']).permute(0, 3, 1, 2); s = torch.from_numpy(data['s'])
out = {}
with torch.no_grad():
    out['style'] = style_conv(style(x)).flatten(1).numpy()
    c = content(x); out['content'] = c.permute(0, 2, 3, 1).numpy()
    params = mlp(s); offset = 0
    for a in ADAIN:
        a.p = params[:, offset:offset + 2 * a.c]; offset += 2 * a.c
    out['decoded'] = dec(c).permute(0, 2, 3, 1).numpy()
    y = x
    for i, net in enumerate(scales):
        out[f'dis{i}'] = net(y).permute(0, 2, 3, 1).numpy(); y = pool(y)
for name, m in W.items():
    if isinstance(m, LN):
        out[name + ':gamma'] = m.gamma.detach().numpy(); out[name + ':beta'] = m.beta.detach().numpy()
    else:
        w = m.weight.detach().numpy()
        out[name + ':kernel'] = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
        out[name + ':bias'] = m.bias.detach().numpy()
np.savez(sys.argv[2], **out)
"""


def _torch_python():
    """A Python with torch: $TFI2I_TORCH_PYTHON, or this one if it has torch."""
    if os.environ.get("TFI2I_TORCH_PYTHON"):
        return os.environ["TFI2I_TORCH_PYTHON"]
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return None


def test_munit_nets_match_torch_live(tmp_path):
    python = _torch_python()
    if python is None:
        pytest.skip("torch not importable here and $TFI2I_TORCH_PYTHON not set")
    x, s = images(2, 32, 32, 3, seed=21), images(2, 8, seed=22)
    np.savez(tmp_path / "in.npz", x=x, s=s)
    script = tmp_path / "munit_torch.py"
    script.write_text(TORCH_PROGRAM)
    subprocess.run([python, str(script), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                   check=True, timeout=300)
    ref = np.load(tmp_path / "out.npz")
    nets = {"style": latent.style_encoder(dim=8),
            "content": latent.content_encoder(dim=8, n_res=2),
            "decoder": latent.decoder(dim=32, n_res=2, mlp_dim=16),
            "dis": latent.multiscale_discriminator(dim=8, n_layer=3)}
    loaded = 0
    for key in ref.files:
        if ":" not in key:
            continue
        net, rest = key.split("/", 1)
        layer_name, weight = rest.split(":")
        getattr(nets[net].get_layer(layer_name), weight).assign(ref[key])
        loaded += int(ref[key].size)
    assert loaded == sum(trainable_count(n) for n in nets.values())
    content = nets["content"](x).numpy()
    ours = {"style": nets["style"](x), "content": content,
            "decoded": nets["decoder"]([ref["content"], s])}
    ours.update({f"dis{i}": out for i, out in enumerate(nets["dis"](x))})
    # Max difference relative to each output's spread (the coarsest D's logits vary ~1e-4).
    # Measured: <= 2e-4 (dis2), 3e-6 (content), 0 .. 4e-6 elsewhere.
    diffs = {k: float(np.abs(np.asarray(v) - ref[k]).max() / ref[k].std()) for k, v in ours.items()}
    print("torch parity, max abs diff / std:", {k: f"{v:.2g}" for k, v in diffs.items()})
    assert max(diffs.values()) < 2e-3, diffs
