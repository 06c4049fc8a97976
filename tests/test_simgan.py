"""The SimGAN-style and feature-loss baselines: the objective, its weights, who trains."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import SimGAN

SIZE = 32


def images(seed, n=2):
    return tf.random.stateless_uniform([n, SIZE, SIZE, 3], [seed, 0], -1.0, 1.0)


def make(g_lr=0.0, d_lr=0.0, **options):
    keras.utils.set_random_seed(0)
    model = SimGAN(netG="resnet_6blocks", ngf=8, ndf=8, **options)
    model.compile(g_optimizer=keras.optimizers.SGD(g_lr), d_optimizer=keras.optimizers.SGD(d_lr))
    model.build_for_size(SIZE, SIZE)
    return model


def step(model, a, b):
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def test_pixel_objective_terms_and_weights():
    model = make(lambda_reg=4.0, lambda_gan=0.5)
    a, b = images(1), images(2)
    logs = step(model, a, b)   # learning rates 0: the nets are unchanged by the step
    fake = model.G(a, training=True)
    reg = np.abs(fake.numpy() - a.numpy()).mean()
    gan = ((model.D(fake, training=True).numpy() - 1.0) ** 2).mean()     # LSGAN, G's side
    assert logs["reg"] == pytest.approx(reg, rel=1e-4)
    assert logs["G"] == pytest.approx(gan, rel=1e-4)
    assert logs["g_loss"] == pytest.approx(0.5 * gan + 4.0 * reg, rel=1e-4)
    assert logs["d_loss"] == pytest.approx(logs["D"])


def test_each_step_updates_only_its_group_and_D_sees_the_pool():
    model = make(g_lr=0.1, d_lr=0.1, pool_size=3)
    g0 = [v.numpy().copy() for v in model.G.trainable_variables]
    d0 = [v.numpy().copy() for v in model.D.trainable_variables]
    step(model, images(1), images(2))
    assert any(not np.array_equal(x, v.numpy()) for x, v in zip(g0, model.G.trainable_variables))
    assert any(not np.array_equal(x, v.numpy()) for x, v in zip(d0, model.D.trainable_variables))
    assert model.fake_pool.state()["num_images"].numpy().tolist() == [2]


def test_features_regularization_uses_frozen_inception_features_outside_checkpoints(tmp_path):
    pytest.importorskip("scipy")
    from tfi2i.metrics.weights import fid_weights_path
    try:
        fid_weights_path()
    except UserError as error:
        pytest.skip(f"FID weights not fetched: {error}")
    model = make(g_lr=0.1, regularization="features")
    a, b = images(3), images(4)
    g0 = [v.numpy() for v in model.G.trainable_variables]
    # A traced step, as fit runs it: the gradient goes through Inception's resize to 299.
    model.reset_metrics()
    logs = {k: float(v) for k, v in tf.function(model.train_step)((a, b)).items()}
    assert logs["reg"] > 0
    assert any(not np.allclose(w, v.numpy()) for w, v in zip(g0, model.G.trainable_variables))
    phi = model._frozen.phi
    assert tuple(phi(a).shape) == (2, 35, 35, 288)
    # Frozen and untracked: neither trained nor saved with the model.
    assert len(model.trainable_variables) == len(model.G.trainable_variables) + len(
        model.D.trainable_variables)
    names = [name for name, _ in tf.train.list_variables(
        tf.train.Checkpoint(model=model).save(str(tmp_path / "c")))]
    assert not any("mixed" in name for name in names)


def test_presets_and_errors():
    config = resolve_config("simgan", None, {"preset": "features"})
    assert config["regularization"] == "features" and config["netG"] == "resnet_9blocks"
    with pytest.raises(UserError, match="pool_size"):   # the pool holds fixed-size images
        resolve_config("simgan", None, {"preprocess": "none"})
    with pytest.raises(UserError, match="wgan does not fit simgan"):
        SimGAN(gan_mode="wgan")
