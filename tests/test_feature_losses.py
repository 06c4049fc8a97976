"""--feature_loss=fm|mmd in pix2pix, CycleGAN, SimGAN and BiGAN: the term, its weight, who it
trains."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i import losses
from tfi2i.methods import BiGAN, CycleGAN, Pix2Pix, SimGAN
from tfi2i.methods.bigan import pair
from tfi2i.nets import define_D, with_features

SIZE = 32


def images(seed, n=2, channels=3):
    return tf.random.stateless_uniform([n, SIZE, SIZE, channels], [seed, 0], -1.0, 1.0)


def test_with_features_shares_the_discriminators_weights():
    D = define_D("basic", 3, 8, norm="instance")
    DF = with_features(D)
    x = images(0)
    logits, features = DF(x)
    np.testing.assert_allclose(logits.numpy(), D(x).numpy(), rtol=1e-6, atol=1e-6)
    assert [f.shape[-1] for f in features] == [8, 16, 32, 64]  # the four LeakyReLUs
    assert {id(v) for v in DF.weights} == {id(v) for v in D.weights}


@pytest.mark.parametrize("feature_loss, kernel", [("fm", "gaussian"), ("mmd", "gaussian"),
                                                  ("mmd", "gram")])
def test_pix2pix_feature_term_has_its_weight_and_trains_G_only(feature_loss, kernel):
    keras.utils.set_random_seed(0)
    model = Pix2Pix(netG="unet_32", ngf=8, ndf=8, feature_loss=feature_loss, mmd_kernel=kernel,
                    lambda_feature=3.0)
    # A D learning rate of 0: D's weights stay, so the term can be recomputed after the step.
    model.compile(g_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    model.build_for_size(SIZE, SIZE)
    a, b = images(1), images(2)
    model.reset_metrics()
    logs = {k: float(v) for k, v in model.train_step((a, b)).items()}
    fake = model.G(a, training=True)
    _, ff = model.D_features(tf.concat([a, fake], -1), training=True)
    _, rf = model.D_features(tf.concat([a, b], -1), training=True)
    expected = float(losses.feature_loss(feature_loss, rf, ff, kernel)[0])
    assert logs["g_feat"] == pytest.approx(expected, rel=1e-3)
    assert logs["g_feat"] > 0
    assert logs["g_loss"] == pytest.approx(
        logs["g_gan"] + 100 * logs["g_l1"] + 3.0 * logs["g_feat"], rel=1e-5)


def test_pix2pix_without_feature_loss_has_no_term():
    model = Pix2Pix(netG="unet_32", ngf=8, ndf=8)
    assert "g_feat" not in model.train_names and not hasattr(model, "D_features")


def test_cyclegan_feature_terms_pull_each_generator_through_its_own_D(tmp_path):
    keras.utils.set_random_seed(0)
    model = CycleGAN(netG="resnet_6blocks", ngf=8, ndf=8, feature_loss="fm", lambda_feature=2.0,
                     lambda_identity=0.0)
    model.compile(g_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    model.build_for_size(SIZE, SIZE)
    a, b = images(3), images(4)
    terms, imgs = model.generator_losses(a, b)
    _, fake_B_features = model.D_B_features(imgs["fake_B"], training=True)
    _, real_B_features = model.D_B_features(b, training=True)
    expected = losses.feature_matching_loss(real_B_features, fake_B_features)
    np.testing.assert_allclose(terms["feat_A"].numpy(), expected.numpy(), rtol=1e-4)
    base = (terms["G_A"] + terms["G_B"] + 10 * terms["cycle_A"] + 10 * terms["cycle_B"])
    np.testing.assert_allclose(terms["g_loss"].numpy(),
                               (base + 2.0 * (terms["feat_A"] + terms["feat_B"])).numpy(),
                               rtol=1e-5)
    # feat_A reaches G_A and not the discriminators (they are the G step's fixed judges).
    with tf.GradientTape() as tape:
        terms, _ = model.generator_losses(a, b)
        feat = tf.reduce_sum(terms["feat_A"])
    grads = tape.gradient(feat, model.G_A.trainable_variables + model.D_B.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
               for g in grads[:len(model.G_A.trainable_variables)])
    # The checkpoint holds the D once, whichever model refers to it.
    ckpt = tf.train.Checkpoint(model=model)
    path = ckpt.save(str(tmp_path / "ckpt"))
    before = [v.numpy().copy() for v in model.D_B.weights]
    for v in model.D_B.weights:
        v.assign(tf.zeros_like(v))
    ckpt.restore(path)
    for x, v in zip(before, model.D_B.weights):
        np.testing.assert_array_equal(x, v.numpy())


def _grads_reach(loss_fn, variables):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(loss_fn())
    grads = tape.gradient(loss, variables)
    return any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("feature_loss", ["fm", "mmd"])
def test_simgan_feature_term_of_the_fake_against_real_b(feature_loss):
    keras.utils.set_random_seed(0)
    model = SimGAN(netG="resnet_6blocks", ngf=8, ndf=8, feature_loss=feature_loss,
                   lambda_feature=3.0, lambda_reg=4.0)
    model.build_for_size(SIZE, SIZE)
    a, b = images(5), images(6)
    terms, fake = model.generator_losses(a, b)
    _, ff = model.D_features(fake, training=True)
    _, rf = model.D_features(b, training=True)
    np.testing.assert_allclose(terms["feat"].numpy(),
                               losses.feature_loss(feature_loss, rf, ff).numpy(), rtol=1e-4)
    assert float(terms["feat"][0]) > 0
    np.testing.assert_allclose(terms["g_loss"].numpy(),
                               (terms["G"] + 4.0 * terms["reg"] + 3.0 * terms["feat"]).numpy(),
                               rtol=1e-5)
    assert _grads_reach(lambda: model.generator_losses(a, b)[0]["feat"],
                        model.G.trainable_variables)
    assert "feat" not in SimGAN(netG="resnet_6blocks", ngf=8, ndf=8).train_names


def test_bigan_feature_term_pulls_both_pairs_together():
    keras.utils.set_random_seed(0)
    model = BiGAN(netG="resnet_6blocks", ngf=8, ndf=8, feature_loss="fm", lambda_feature=2.0)
    model.build_for_size(SIZE, SIZE)
    a, b = images(7), images(8)
    terms, pairs = model.generator_losses(a, b)
    np.testing.assert_allclose(pairs["fake"].numpy(),
                               pair(model.G(a, training=True), a).numpy(), rtol=1e-5, atol=1e-6)
    _, ff = model.D_features(pairs["fake"], training=True)
    _, rf = model.D_features(pairs["real"], training=True)
    np.testing.assert_allclose(terms["feat"].numpy(),
                               losses.feature_matching_loss(rf, ff).numpy(), rtol=1e-4)
    np.testing.assert_allclose(terms["g_loss"].numpy(),
                               (terms["G"] + terms["E"] + 2.0 * terms["feat"]).numpy(), rtol=1e-5)
    feat = lambda: model.generator_losses(a, b)[0]["feat"]
    # Through the generated pair to G, through the data pair to E.
    assert _grads_reach(feat, model.G.trainable_variables)
    assert _grads_reach(feat, model.E.trainable_variables)
