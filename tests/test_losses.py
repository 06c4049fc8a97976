import numpy as np
import pytest
import tensorflow as tf

from tfi2i import losses
from tfi2i.errors import UserError


def _np_sigmoid_ce(logits, label):
    return np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "wgangp", "hinge"])
def test_gan_loss_matches_formulas(mode):
    logits = np.array([[[[0.5], [-1.0]], [[2.0], [0.0]]],
                       [[[-0.3], [1.5]], [[-2.0], [0.7]]]], np.float32)  # [2, 2, 2, 1]
    real = losses.gan_loss(mode, logits, True).numpy()
    fake = losses.gan_loss(mode, logits, False).numpy()
    per = lambda x: x.reshape(2, -1).mean(axis=1)
    expected = {
        "vanilla": (per(_np_sigmoid_ce(logits, 1.0)), per(_np_sigmoid_ce(logits, 0.0))),
        "lsgan": (per((logits - 1) ** 2), per(logits ** 2)),
        "wgangp": (per(-logits), per(logits)),
        "hinge": (per(np.maximum(0, 1 - logits)), per(np.maximum(0, 1 + logits))),
    }[mode]
    assert real.shape == (2,)
    np.testing.assert_allclose(real, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fake, expected[1], rtol=1e-5, atol=1e-6)


def test_hinge_generator_loss_is_negative_score():
    logits = tf.constant([[1.0, 3.0], [-2.0, 0.0]])
    g = losses.gan_loss("hinge", logits, True, for_discriminator=False).numpy()
    np.testing.assert_allclose(g, [-2.0, 1.0])


def test_gradient_penalty_of_linear_critic():
    # D(x) = sum(w * x): its gradient is w everywhere, so the penalty is (|w| - 1)^2.
    w = tf.constant(np.full((1, 4, 4, 3), 0.1, np.float32))
    critic = lambda x, training=True: tf.reduce_sum(w * x, axis=[1, 2, 3])
    real = tf.random.uniform([2, 4, 4, 3])
    fake = tf.random.uniform([2, 4, 4, 3])
    gp = losses.gradient_penalty(critic, real, fake).numpy()
    expected = (np.sqrt(48 * 0.01) - 1.0) ** 2
    np.testing.assert_allclose(gp, [expected, expected], rtol=1e-4)


def test_reconstruction_losses_and_unknown_names():
    x, y = tf.zeros([2, 2, 2, 1]), tf.fill([2, 2, 2, 1], 0.5)
    np.testing.assert_allclose(losses.reconstruction_loss("l1")(x, y), [0.5, 0.5])
    np.testing.assert_allclose(losses.reconstruction_loss("l2")(x, y), [0.25, 0.25])
    with pytest.raises(UserError, match="l3"):
        losses.reconstruction_loss("l3")
    with pytest.raises(UserError, match="gan_mode"):
        losses.check_gan_mode("wasserstein")


# -- MMD between feature statistics, against direct NumPy computations -----------------

def _np_samples(features):
    f = np.asarray(features, np.float64)
    return f.reshape(-1, f.shape[-1])


def _np_mmd2(x, y, kernel):
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("kernel", ["gaussian", "linear", "gram"])
def test_mmd_loss_matches_a_direct_numpy_computation(kernel):
    rng = np.random.default_rng(0)
    # Two maps of different widths; real and fake batches of different sizes.
    real = [rng.normal(size=(3, 4, 4, 5)), rng.normal(1.0, 2.0, size=(3, 2, 2, 8))]
    fake = [rng.normal(0.5, 1.0, size=(2, 4, 4, 5)), rng.normal(size=(2, 2, 2, 8))]
    expected = 0.0
    for r, f in zip(real, fake):
        x, y = _np_samples(r), _np_samples(f)
        c = x.shape[1]
        if kernel == "gaussian":
            def k(a, b):
                d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / c
                return sum(np.exp(-d2 / (2 * s * s)) for s in losses.MMD_BANDWIDTHS)
        elif kernel == "linear":
            k = lambda a, b: a @ b.T / c
        else:
            k = lambda a, b: (a @ b.T / c) ** 2
        expected += _np_mmd2(x, y, k)
    got = losses.mmd_loss([tf.constant(r, tf.float32) for r in real],
                          [tf.constant(f, tf.float32) for f in fake], kernel=kernel).numpy()
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)


def test_mmd_loss_is_zero_for_equal_sets_and_refuses_unknown_kernels():
    x = [tf.random.normal([2, 3, 3, 4], seed=1)]
    for kernel in losses.MMD_KERNELS:
        assert float(losses.mmd_loss(x, x, kernel=kernel)[0]) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(UserError, match="Unknown MMD kernel 'rbf'"):
        losses.mmd_loss(x, x, kernel="rbf")


def test_feature_matching_loss_matches_a_direct_numpy_computation():
    """DiscoGAN's feature matching: per map, the mean over its elements of the squared
    difference of the real and fake batch means; summed over the maps; one value per fake."""
    rng = np.random.default_rng(0)
    real = [rng.normal(size=(3, 4, 4, 2)).astype(np.float32),
            rng.normal(size=(3, 2, 2, 5)).astype(np.float32)]
    fake = [rng.normal(1.0, 2.0, size=(2, 4, 4, 2)).astype(np.float32),
            rng.normal(size=(2, 2, 2, 5)).astype(np.float32)]
    expected = sum(((r.astype(np.float64).mean(0) - f.astype(np.float64).mean(0)) ** 2).mean()
                   for r, f in zip(real, fake))
    loss = losses.feature_matching_loss(real, fake).numpy()
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Batch means, not per-example distances: shuffling the fakes' batch changes nothing,
    # and equal means score 0 however different the examples.
    np.testing.assert_allclose(losses.feature_matching_loss(real, [f[::-1] for f in fake]),
                               loss, rtol=1e-6)
    flipped = [np.concatenate([r, 2 * r.mean(0, keepdims=True) - r]) for r in real]
    assert float(losses.feature_matching_loss(real, flipped)[0]) == pytest.approx(0, abs=1e-10)
    with pytest.raises(ValueError, match="as many real as fake"):
        losses.feature_matching_loss(real, fake[:1])


def test_kl_divergence_sum_and_mean_match_the_closed_form():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(3, 8)), rng.normal(size=(3, 8)) * 0.5
    # KL(N(mu, s^2) || N(0, 1)) per dimension = log(1/s) + (s^2 + mu^2) / 2 - 1/2.
    s2 = np.exp(logvar)
    per_dim = -0.5 * logvar + 0.5 * (s2 + mu ** 2) - 0.5
    np.testing.assert_allclose(losses.kl_divergence(mu, logvar, "sum").numpy(),
                               per_dim.sum(1), rtol=1e-5)
    np.testing.assert_allclose(losses.kl_divergence(mu, logvar, "mean").numpy(),
                               per_dim.mean(1), rtol=1e-5)
    zero = np.zeros((2, 4))
    np.testing.assert_allclose(losses.kl_divergence(zero, zero).numpy(), [0.0, 0.0])
    with pytest.raises(UserError, match="KL reduction"):
        losses.kl_divergence(mu, logvar, "batch")


def test_latent_l2_and_regression():
    mu = np.array([[1.0, -2.0], [0.0, 3.0]])
    np.testing.assert_allclose(losses.latent_l2(mu).numpy(), [2.5, 4.5])
    np.testing.assert_allclose(losses.latent_regression_loss(mu, np.zeros((2, 2))).numpy(),
                               [1.5, 1.5])


def test_mode_seeking_loss_is_the_inverse_ratio_of_batch_mean_distances():
    rng = np.random.default_rng(1)
    f1, f2 = rng.uniform(-1, 1, (2, 4, 4, 3)), rng.uniform(-1, 1, (2, 4, 4, 3))
    z1, z2 = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
    ratio = np.abs(f1 - f2).mean() / np.abs(z1 - z2).mean()
    out = losses.mode_seeking_loss(f1, f2, z1, z2).numpy()
    np.testing.assert_allclose(out, [1 / (ratio + 1e-5)] * 2, rtol=1e-5)
    # Outputs that spread further apart for the same codes cost less.
    assert losses.mode_seeking_loss(f1, 3 * f2, z1, z2).numpy()[0] < out[0]


@pytest.mark.parametrize("gan_mode", ["lsgan", "wgangp"])
def test_discriminator_loss_is_real_plus_fake_halved_or_not_with_the_penalty(gan_mode):
    import keras

    D = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    rng = np.random.default_rng(0)
    real = tf.constant(rng.normal(size=(3, 2, 2, 1)), tf.float32)
    fake = tf.constant(rng.normal(size=(3, 2, 2, 1)), tf.float32)
    both = (losses.gan_loss(gan_mode, D(real), True) + losses.gan_loss(gan_mode, D(fake), False))
    halved, gp = losses.discriminator_loss(gan_mode, D, real, fake, lambda_gp=2.0)
    summed, _ = losses.discriminator_loss(gan_mode, D, real, fake, lambda_gp=2.0, halve=False)
    if gan_mode == "wgangp":
        # A linear critic's gradient norm is its weight norm, the same at every interpolate.
        np.testing.assert_allclose(gp.numpy(), losses.gradient_penalty(D, real, fake).numpy())
        both_gp = 2.0 * gp.numpy()
    else:
        assert gp is None
        both_gp = 0.0
    np.testing.assert_allclose(halved.numpy(), 0.5 * both.numpy() + both_gp, rtol=1e-5)
    np.testing.assert_allclose(summed.numpy(), both.numpy() + both_gp, rtol=1e-5)
