"""--ema_decay: the moving average of the generators' weights (tfi2i/training/ema.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods.pix2pix import Pix2Pix
from tfi2i.training.checkpoints import restore_run
from tfi2i.training.ema import WeightAverage
from tfi2i.training.trainer import train

from conftest import tiny_run_config

# Instance norm: batch statistics would differ between replicas.
TINY = dict(netG="unet_32", ngf=8, ndf=8, use_dropout=False, norm="instance")


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    y = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    return x, y


def _pix2pix(ema_decay, weights=None):
    keras.utils.set_random_seed(3)
    model = Pix2Pix(**TINY)
    model.build_for_size(32, 32)
    if weights is not None:
        model.set_weights(weights)
    model.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5),
                  ema_decay=ema_decay)
    return model


def test_average_moves_by_the_formula_and_only_for_its_variables():
    a = keras.Variable(np.array([1.0, 2.0], np.float32))
    b = keras.Variable(np.array([5.0], np.float32))
    average = WeightAverage([a], decay=0.9)
    a.assign([3.0, 2.0])
    average.update([a, b])  # b is not averaged: ignored.
    np.testing.assert_allclose(average.averages[0].numpy(), [0.9 * 1 + 0.1 * 3, 2.0], rtol=1e-6)
    a.assign([0.0, 0.0])
    average.update([a])
    np.testing.assert_allclose(average.averages[0].numpy(),
                               [0.9 * 1.2, 0.9 * 2.0], rtol=1e-6)
    assert len(average.averages) == 1
    with average.swapped():
        np.testing.assert_allclose(a.numpy(), [1.08, 1.8], rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), [0.0, 0.0])  # Back to the raw weights.
    with pytest.raises(ValueError, match="decay"):
        WeightAverage([a], decay=1.0)


def test_a_train_step_averages_the_generator_not_the_discriminator():
    model = _pix2pix(ema_decay=0.75)
    g0 = [v.numpy() for v in model.G.trainable_variables]
    model.fit(tf.data.Dataset.from_tensors(_batch()), verbose=0)
    assert len(model.ema.averages) == len(model.G.trainable_variables)
    moved = 0
    for start, now, average in zip(g0, model.G.trainable_variables, model.ema.averages):
        np.testing.assert_allclose(average.numpy(), 0.75 * start + 0.25 * now.numpy(),
                                   rtol=1e-5, atol=1e-7)
        moved += not np.allclose(start, now.numpy())
    assert moved > 0
    d_ids = {id(v) for v in model.D.trainable_variables}
    assert not d_ids & {id(v) for v in model.ema._sources}
    # Off: nothing is averaged or tracked.
    assert _pix2pix(ema_decay=0.0).ema is None


def test_mirrored_average_equals_single_device(mirrored_strategy):
    data = tf.data.Dataset.from_tensors(_batch())
    single = _pix2pix(ema_decay=0.5)
    init = single.get_weights()
    single.fit(data, verbose=0)
    with mirrored_strategy.scope():
        mirrored = _pix2pix(ema_decay=0.5, weights=init)
    mirrored.fit(mirrored_strategy.experimental_distribute_dataset(data), verbose=0)
    for a, b in zip(single.ema.averages, mirrored.ema.averages):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        for local in mirrored_strategy.experimental_local_results(b):
            np.testing.assert_allclose(local.numpy(), b.numpy())


def test_resume_continues_the_average_and_inference_uses_it(ab_dataset, tmp_path):
    def config(run, steps):
        return tiny_run_config(ab_dataset, tmp_path / run, max_steps=steps, ema_decay=0.9,
                               sample_every_steps=100)

    full = train(config("full", 4))
    train(config("part", 2))
    part = train(config("part", 4), explicit_keys={"max_steps"})
    for a, b in zip(full.ema.averages, part.ema.averages):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # The run's generator for export/translate/eval holds the averages, not the
    # last weights (which the training model still has).
    restored, _ = restore_run(str(tmp_path / "full"))
    for average, v, raw in zip(full.ema.averages, restored.G.trainable_variables,
                               full.G.trainable_variables):
        np.testing.assert_allclose(v.numpy(), average.numpy(), rtol=1e-6)
    assert any(not np.allclose(v.numpy(), raw.numpy())
               for v, raw in zip(restored.G.trainable_variables, full.G.trainable_variables))


def test_option_range():
    with pytest.raises(UserError, match="ema_decay"):
        resolve_config("pix2pix", None, {"ema_decay": 1.0})
