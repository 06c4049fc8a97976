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
