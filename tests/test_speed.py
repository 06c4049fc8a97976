"""The speed work's pieces: the fused Adam update, the profiler option, the benchmarks' plumbing."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.training.optimizers import FusedAdam
from tfi2i.training.trainer import train

from conftest import REPO, tiny_run_config, write_ab_dataset


def _adam_run(cls, w0, grads, strategy=None):
    """`w0` after Adam updates with `grads` (under `strategy`: each replica half of each)."""
    schedule = keras.optimizers.schedules.PolynomialDecay(1e-2, 10, 1e-3)
    scope = strategy.scope() if strategy else tf.name_scope("single")
    with scope:
        w = keras.Variable(w0)
        opt = cls(schedule, beta_1=0.5, beta_2=0.9, epsilon=1e-7)
        opt.build([w])

    @tf.function
    def step(g):
        if strategy is None:
            opt.apply_gradients([(g, w)])
            return

        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            # Replica gradients sum to g (the optimizer all-reduces with SUM).
            share = g * (0.25 if ctx.replica_id_in_sync_group == 0 else 0.75)
            opt.apply_gradients([(share, w)])
        strategy.run(replica_fn)

    for g in grads:
        step(tf.constant(g))
    return np.asarray(w.numpy() if strategy is None else w.value.numpy()), opt


def test_fused_adam_is_keras_adam(tmp_path):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 5)).astype("float32")
    grads = [rng.normal(size=(6, 5)).astype("float32") for _ in range(6)]
    expected, keras_opt = _adam_run(keras.optimizers.Adam, w0, grads)
    got, fused = _adam_run(FusedAdam, w0, grads)
    assert np.abs(expected - w0).max() > 1e-2  # the updates did move the weights
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Same state (step, momenta, velocities): a run checkpointed with Keras' Adam resumes
    # with the fused one.
    path = tf.train.Checkpoint(opt=keras_opt).write(str(tmp_path / "ckpt"))
    with tf.name_scope("restored"):
        w = keras.Variable(w0)
        restored = FusedAdam(keras.optimizers.schedules.PolynomialDecay(1e-2, 10, 1e-3))
        restored.build([w])
    tf.train.Checkpoint(opt=restored).read(path).assert_existing_objects_matched()
    for a, b in zip(restored.variables, keras_opt.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fused_adam_takes_sparse_gradients():
    results = []
    for cls in (keras.optimizers.Adam, FusedAdam):
        w = keras.Variable(np.arange(6, dtype="float32").reshape(3, 2))
        opt = cls(0.1)
        for _ in range(2):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.gather(w.value, [0, 2]) ** 2)
            grad = tape.gradient(loss, w.value)
            assert isinstance(grad, tf.IndexedSlices)
            opt.apply_gradients([(grad, w)])
        results.append(w.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=0, atol=1e-6)
    assert (results[1][1] == [2, 3]).all() and (results[1][0] != [0, 1]).any()


def test_fused_adam_under_mirrored_strategy(mirrored_strategy):
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(3)]
    expected, _ = _adam_run(keras.optimizers.Adam, w0, grads)
    got, _ = _adam_run(FusedAdam, w0, grads, strategy=mirrored_strategy)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_training_uses_the_fused_update(tmp_path):
    from tfi2i.training.trainer import build_compiled_model

    config = tiny_run_config(write_ab_dataset(tmp_path / "data"), tmp_path / "run")
    model, _ = build_compiled_model(config, steps_per_epoch=4,
                                    strategy=tf.distribute.get_strategy())
    assert all(type(opt) is FusedAdam for opt in model.optimizers.values())


def test_profile_steps_writes_a_trace(tmp_path):
    config = tiny_run_config(write_ab_dataset(tmp_path / "data"), tmp_path / "run",
                             max_steps=3, deterministic=False, profile_steps=["2", "3"])
    train(config)
    traces = glob.glob(str(tmp_path / "run" / "logs" / "plugins" / "profile" / "*" /
                           "*.xplane.pb"))
    assert len(traces) == 1, traces
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(traces[0], "rb") as f:
        space.ParseFromString(f.read())
    names = {m.name for plane in space.planes for m in plane.event_metadata.values()}
    # Op-level events of the train step: the generator's convolutions and the fused update.
    assert any("ResourceApplyAdam" in name for name in names)
    assert any("Conv2D" in name for name in names)


@pytest.mark.parametrize("value", ["3,2", "0,2", "2", "a,b", "1,2,3"])
def test_profile_steps_must_be_first_last(tmp_path, value):
    with pytest.raises(UserError, match="--profile_steps=.*FIRST,LAST"):
        resolve_config("pix2pix", None, {"data_dir": str(tmp_path), "profile_steps": value})


def test_compare_torch_refuses_different_architectures(tmp_path):
    """The table's plumbing, with a stand-in 'torch' that reports another parameter count."""
    fake = tmp_path / "fake_python"
    fake.write_text("#!/bin/sh\necho '" + json.dumps({
        "framework": "torch", "torch": "stand-in", "threads": 2, "method": "pix2pix",
        "image_size": 32, "batch_size": 1, "step_time_median_s": 0.5, "params": 1}) + "'\n")
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "benchmark.py"), "--compare_torch",
         f"--torch_python={fake}", "--cases=pix2pix:32:1:netG=unet_32;ngf=4;ndf=4",
         "--flag_sets=fp32", "--steps=1", "--warmup=1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    row = [line for line in done.stdout.splitlines() if line.startswith("| pix2pix")]
    assert len(row) == 1, done.stdout
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[:3] == ["pix2pix", "32", "1"]
    assert cells[3].endswith("/ 1 DIFFER"), cells
    assert cells[4] == "0.500"
    assert float(cells[5]) > 0 and cells[6] == f"{float(cells[5]) / 0.5:.2f}x"
    assert "parameter counts differ" in done.stderr


def test_benchmark_times_the_input_pipeline(tmp_path):
    """--data_dir: the method's training pipeline alone, in images/s beside the step's."""
    data = write_ab_dataset(tmp_path / "data", splits=(("train", 4), ("test", 1)))
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "benchmark.py"), "--method=pix2pix",
         "--image_size=32", "--batch_size=2", "--hparams=netG=unet_32,ngf=4,ndf=4,load_size=36",
         f"--data_dir={data}", "--pipeline_batches=5", "--steps=1", "--warmup=1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pipeline_images_per_sec"] > 0
    assert result["pipeline_over_step"] == pytest.approx(
        result["pipeline_images_per_sec"] / result["images_per_sec"], rel=0.01, abs=0.1)
