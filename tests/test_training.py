"""pix2pix end to end: fit from Python, the trainer, resume, distribution."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import parse_hparams, resolve_config
from tfi2i.data import paired_dataset
from tfi2i.errors import UserError
from tfi2i.methods import Pix2Pix
from tfi2i.training.checkpoints import restore_run
from tfi2i.training.trainer import train

from conftest import REPO, write_ab_dataset

TINY = dict(netG="unet_32", ngf=8, ndf=8)


def tiny_config(data_dir, run_dir, **overrides):
    """A run config small enough for CPU tests (32 px, ngf 8, deterministic ops)."""
    options = dict(TINY, data_dir=data_dir, run_dir=str(run_dir), load_size=36, crop_size=32,
                   batch_size=2, n_epochs=1, n_epochs_decay=1, save_every_steps=2,
                   log_every_steps=1, sample_every_steps=2, deterministic=True)
    options.update(overrides)
    return resolve_config("pix2pix", None, options)


def _adam():
    return keras.optimizers.Adam(2e-4, beta_1=0.5)


def test_fit_from_python_updates_both_networks(ab_dataset):
    ds = paired_dataset(ab_dataset, "train", load_size=36, crop_size=32, batch_size=2)
    model = Pix2Pix(**TINY)
    model.compile(g_optimizer=_adam(), d_optimizer=_adam())
    model.build_for_size(32, 32)
    g0 = [w.numpy().copy() for w in model.G.trainable_weights]
    d0 = [w.numpy().copy() for w in model.D.trainable_weights]
    val = paired_dataset(ab_dataset, "test", crop_size=32, batch_size=2, training=False)
    history = model.fit(ds, validation_data=val, verbose=0)
    for key in ("d_loss", "g_loss", "g_gan", "g_l1", "val_l1", "val_psnr", "val_ssim"):
        assert np.isfinite(history.history[key][0]), key
    assert int(model.step.numpy()) == 4  # 8 examples / batch 2
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(g0, model.G.trainable_weights))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(d0, model.D.trainable_weights))
    out = model.translate(tf.zeros([1, 32, 32, 3]))
    assert out.shape == (1, 32, 32, 3) and float(tf.reduce_max(tf.abs(out))) <= 1.0


def test_compile_requires_one_optimizer_per_network():
    model = Pix2Pix(**TINY)
    with pytest.raises(TypeError, match="d_optimizer"):
        model.compile(g_optimizer=_adam())


def test_weight_decay_is_pytorch_l2_added_to_every_gradient():
    # A loss with zero gradient isolates the decay: SGD then moves each
    # variable by -lr * weight_decay * w, PyTorch's coupled L2 (not AdamW's).
    model = Pix2Pix(**TINY)
    model.compile(g_optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5),
                  weight_decay=0.1)
    model.build_for_size(32, 32)
    before = [v.numpy().copy() for v in model.group_variables("d")]
    with tf.GradientTape() as tape:
        loss = tf.add_n([0.0 * tf.reduce_sum(v) for v in model.group_variables("d")])
    model.apply("d", tape, loss)
    for b, v in zip(before, model.group_variables("d")):
        np.testing.assert_allclose(v.numpy(), b * (1 - 0.5 * 0.1), rtol=1e-6, atol=1e-7)


def test_weight_decay_is_applied_once_across_replicas(mirrored_strategy):
    # Each replica's gradient is summed with the others': a decay added in full on each
    # replica would act num_replicas times.
    with mirrored_strategy.scope():
        model = Pix2Pix(**TINY)
        model.compile(g_optimizer=keras.optimizers.SGD(0.5),
                      d_optimizer=keras.optimizers.SGD(0.5), weight_decay=0.1)
        model.build_for_size(32, 32)
    before = [v.numpy().copy() for v in model.group_variables("d")]

    @tf.function
    def step():
        def replica_step():
            with tf.GradientTape() as tape:
                loss = tf.add_n([0.0 * tf.reduce_sum(v) for v in model.group_variables("d")])
            model.apply("d", tape, loss)
        mirrored_strategy.run(replica_step)

    step()
    assert mirrored_strategy.num_replicas_in_sync == 2
    for b, v in zip(before, model.group_variables("d")):
        np.testing.assert_allclose(v.numpy(), b * (1 - 0.5 * 0.1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam),
                                       ("rmsprop", keras.optimizers.RMSprop)])
def test_optimizer_option_builds_that_optimizer_for_every_group(ab_dataset, tmp_path, name, cls):
    from tfi2i.training.trainer import build_compiled_model
    config = tiny_config(ab_dataset, tmp_path, optimizer=name, weight_decay=1e-5, lr=5e-5)
    model, _ = build_compiled_model(config, 4, tf.distribute.get_strategy())
    for group in model.optimizer_groups:
        assert isinstance(model.optimizers[group], cls)
        assert float(model.optimizers[group].learning_rate) == pytest.approx(5e-5)
    assert model.weight_decay == 1e-5


def test_config_precedence_and_unknown_options():
    config = resolve_config("pix2pix", "facades", {"batch_size": 8})
    assert config["direction"] == "BtoA"          # dataset preset
    assert config["lambda_L1"] == 100.0            # method preset
    assert config["batch_size"] == 8               # flag beats preset
    assert config["netG"] == "unet_256" and config["gan_mode"] == "vanilla"
    with pytest.raises(UserError, match="lambda_typo"):
        resolve_config("pix2pix", None, {"lambda_typo": 1})
    with pytest.raises(UserError, match="cyclegan2"):
        resolve_config("cyclegan2", None, {})
    assert parse_hparams(["lambda_gp=5", "gan_mode=hinge", "use_dropout=false"]) == {
        "lambda_gp": 5, "gan_mode": "hinge", "use_dropout": False}
    with pytest.raises(UserError, match="key=value"):
        parse_hparams(["lambda_gp"])


class StepLosses(keras.callbacks.Callback):
    """Per-step g_l1 and d_loss, recovered from the Mean trackers' running totals."""

    def __init__(self):
        super().__init__()
        self.values = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._last = {n: 0.0 for n in ("g_l1", "d_loss")}

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        row = {}
        for name in self._last:
            total = float(self.model.trackers[name].total.numpy())
            row[name] = total - self._last[name]
            self._last[name] = total
        self.values[step] = row


def test_resume_continues_the_same_run(ab_dataset, tmp_path):
    # 8 examples, batch 2 -> 4 steps an epoch; 2 epochs -> 8 steps. Stop at 3
    # (mid-epoch), resume to the end, and compare with one uninterrupted run.
    full, part = StepLosses(), StepLosses()
    m_full = train(tiny_config(ab_dataset, tmp_path / "full"), extra_callbacks=[full])
    cfg = tiny_config(ab_dataset, tmp_path / "part", max_steps=3)
    stopped = train(cfg)
    # Still in the constant phase of the linear policy (epoch 1 of 1 + 1 decay).
    assert float(stopped.g_optimizer.learning_rate) == pytest.approx(2e-4)
    ckpts = sorted(glob.glob(str(tmp_path / "part" / "checkpoints" / "ckpt-*.index")))
    assert ckpts, "no checkpoint written"
    m_part = train(tiny_config(ab_dataset, tmp_path / "part"), explicit_keys={"max_steps"},
                   extra_callbacks=[part])
    assert int(m_part.step.numpy()) == int(m_full.step.numpy()) == 8
    assert sorted(part.values) == [4, 5, 6, 7, 8]
    for step in (4, 5, 6, 7, 8):
        for name in ("g_l1", "d_loss"):
            assert part.values[step][name] == pytest.approx(full.values[step][name], rel=1e-5), \
                (step, name)
    for a, b in zip(m_full.G.weights + m_full.D.weights, m_part.G.weights + m_part.D.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # The schedule position came back with the optimizer: the linear decay
    # over epoch 2 has reached 0.
    assert float(m_part.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert float(m_part.d_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_run_dir_contents_and_restore(ab_dataset, tmp_path):
    run = tmp_path / "run"
    model = train(tiny_config(ab_dataset, run, max_steps=4))
    with open(run / "config.json") as f:
        saved = json.load(f)
    assert saved["netG"] == "unet_32" and saved["run_dir"] == str(run)
    assert glob.glob(str(run / "logs" / "events.out.tfevents.*"))
    assert glob.glob(str(run / "samples" / "step_*.png"))
    assert os.path.exists(run / "checkpoints" / "checkpoint")
    restored, config = restore_run(str(run))
    x = tf.random.uniform([1, 32, 32, 3], -1, 1)
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-6)
    assert list(restored.generators) == ["AtoB"] and restored.size_divisor == 32


def test_resume_refuses_a_changed_model(ab_dataset, tmp_path):
    train(tiny_config(ab_dataset, tmp_path / "run", max_steps=2))
    changed = tiny_config(ab_dataset, tmp_path / "run", ngf=16)
    with pytest.raises(UserError, match="ngf"):
        train(changed, explicit_keys={"ngf"})
    with pytest.raises(UserError, match="--resume"):
        train(tiny_config(ab_dataset, tmp_path / "run"), resume=False)




@pytest.mark.parametrize("norm", ["instance", "sync_batch"])
def test_mirrored_step_equals_single_device_step(norm, mirrored_strategy):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    y = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    data = tf.data.Dataset.from_tensors((x, y))
    hp = dict(TINY, norm=norm, use_dropout=False)
    # Plain SGD: the update is proportional to the gradient, so a wrong loss
    # scale (e.g. 2x from summing replicas' means) shows. Adam's first step is
    # scale-invariant and would hide it.
    sgd = lambda: keras.optimizers.SGD(0.5)

    keras.utils.set_random_seed(1)
    single = Pix2Pix(**hp)
    single.compile(g_optimizer=sgd(), d_optimizer=sgd())
    single.build_for_size(32, 32)
    init = [w.numpy() for w in single.weights]

    with mirrored_strategy.scope():
        mirrored = Pix2Pix(**hp)
        mirrored.compile(g_optimizer=sgd(), d_optimizer=sgd())
        mirrored.build_for_size(32, 32)
    mirrored.set_weights(init)

    single.fit(data, verbose=0)
    mirrored.fit(data, verbose=0)
    moved = 0.0
    for a, b, w0 in zip(single.weights, mirrored.weights, init):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(a.numpy() - w0).max()))
    assert moved > 1e-3  # the step did update the weights


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The multi-worker run and its single-process reference: the same options, SGD instead
# of Adam (Adam's steps are nearly scale-invariant: a 2x loss-scale bug would not show),
# no dropout (each replica would draw its own masks).
_SGD_RUN = textwrap.dedent("""
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from tfi2i.config import resolve_config
    from tfi2i.training import trainer

    def run(options, out):
        strategies, get_strategy, optimizer = [], trainer.get_strategy, trainer._optimizer
        trainer.get_strategy = lambda name: strategies.append(get_strategy(name)) or strategies[-1]
        trainer._optimizer = lambda config, schedule: keras.optimizers.SGD(schedule)

        class InitialWeights(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if not hasattr(self, "weights"):
                    self.weights = [w.numpy() for w in self.model.weights]

        initial = InitialWeights()
        try:
            model = trainer.train(resolve_config("pix2pix", None, options),
                                  extra_callbacks=[initial])
        finally:  # This also runs inside the pytest process.
            trainer.get_strategy, trainer._optimizer = get_strategy, optimizer
        assert isinstance(model.g_optimizer, keras.optimizers.SGD), model.g_optimizer
        np.savez(out, *initial.weights, *[w.numpy() for w in model.weights],
                 step=int(model.step.numpy()), replicas=strategies[0].num_replicas_in_sync,
                 multiworker=isinstance(strategies[0],
                                        tf.distribute.MultiWorkerMirroredStrategy))

    if __name__ == "__main__":
        run(json.loads(sys.argv[1]), sys.argv[2])
""")


def _sgd_run_result(path):
    """(initial weights, final weights, step, replicas, multiworker) saved by _SGD_RUN."""
    saved = np.load(path)
    arrays = [saved[f"arr_{i}"] for i in range(len(saved.files) - 3)]
    half = len(arrays) // 2
    return (arrays[:half], arrays[half:], int(saved["step"]), int(saved["replicas"]),
            bool(saved["multiworker"]))


def test_multiworker_step_equals_single_process_step(ab_dataset, tmp_path):
    # Two worker processes, one CPU replica each: batch 2 is one example per worker.
    options = dict(TINY, data_dir=ab_dataset, load_size=36, crop_size=32, batch_size=2,
                   max_steps=3, norm="instance", use_dropout=False, save_every_steps=2,
                   lr=0.01, deterministic=True)
    ports = [_free_port(), _free_port()]
    # Each worker gets its own run directory, so that anything in the second one was
    # written by the non-chief worker (in real use they share one).
    run_dirs = [tmp_path / "run", tmp_path / "run_worker1"]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        out = str(tmp_path / f"w{index}.npz")
        worker_options = dict(options, strategy="multiworker", run_dir=str(run_dirs[index]))
        procs.append((subprocess.Popen(
            [sys.executable, "-c", _SGD_RUN, json.dumps(worker_options), out], env=env,
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out))
    # Meanwhile, the reference: one process, one device, the same global batch.
    namespace = {}
    exec(compile(_SGD_RUN, "_SGD_RUN", "exec"), namespace)
    namespace["run"](dict(options, strategy="default", run_dir=str(tmp_path / "single")),
                     str(tmp_path / "single.npz"))
    for proc, _ in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output.decode()[-3000:]

    init, single, step, replicas, multiworker = _sgd_run_result(tmp_path / "single.npz")
    assert (step, replicas, multiworker) == (3, 1, False)
    moved = max(float(np.abs(b - a).max()) for a, b in zip(init, single))
    assert moved > 1e-2  # the steps did update the weights
    for _, out in procs:
        w_init, w_final, step, replicas, multiworker = _sgd_run_result(out)
        assert (step, replicas, multiworker) == (3, 2, True)
        for a, b in zip(w_init, init):
            np.testing.assert_array_equal(a, b)
        # The same update as one device on the whole batch (measured: within 2.4e-7,
        # steps moved weights by 0.13). A loss summed instead of averaged over the
        # replicas, or one replica's gradient alone, is 2x or half of it (a 2x loss
        # scale: off by 0.32).
        for a, b in zip(w_final, single):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * moved)
    assert glob.glob(str(run_dirs[0] / "checkpoints" / "ckpt-*.index"))
    assert os.path.exists(run_dirs[0] / "config.json")
    assert glob.glob(str(run_dirs[0] / "logs" / "events.out.tfevents.*"))
    # The non-chief worker took part in saving but left nothing behind.
    left = [os.path.join(d, n) for d, dirs, files in os.walk(run_dirs[1]) for n in dirs + files]
    assert left == [], left


def test_cli_trains_and_reports_bad_input(ab_dataset, tmp_path):
    run = tmp_path / "cli_run"
    cmd = [sys.executable, "-m", "tfi2i.cli.train", "--method=pix2pix",
           f"--data_dir={ab_dataset}", f"--run_dir={run}", "--netG=unet_32", "--ngf=8",
           "--ndf=8", "--load_size=36", "--crop_size=32", "--batch_size=2", "--max_steps=2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert os.path.exists(run / "config.json")
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-2")

    bad = subprocess.run([sys.executable, "-m", "tfi2i.cli.train", "--method=nosuch",
                          f"--data_dir={ab_dataset}"], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2
    assert "--method=nosuch" in bad.stderr and "pix2pix" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "tfi2i.cli.train",
                              f"--data_dir={tmp_path / 'nowhere'}", f"--run_dir={tmp_path / 'r2'}"],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("option", ["jit_compile", "mixed_precision"])
def test_xla_and_mixed_precision_train(ab_dataset, tmp_path, option):
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = train(tiny_config(ab_dataset, tmp_path / option, max_steps=2,
                                      deterministic=False, **{option: True}))
        if option == "jit_compile":
            # Keras falls back to plain graph mode with only a warning (e.g. when op
            # determinism was left on by an earlier run in this process).
            assert not [w for w in caught if "jit_compile" in str(w.message)]
            assert model.jit_compile is True
        if option == "mixed_precision":
            # bfloat16 compute on CPU; variables and outputs stay float32.
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            assert any(layer.compute_dtype == "bfloat16" for layer in model.G.layers)
        assert model.G.weights[0].dtype == "float32"
        assert int(model.step.numpy()) == 2
        assert all(np.isfinite(w.numpy()).all() for w in model.G.weights)
        out = model(tf.zeros([1, 32, 32, 3]))
        assert out.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_eval_metrics_keep_the_best_checkpoint(ab_dataset, tmp_path):
    run = tmp_path / "run"
    model = train(tiny_config(ab_dataset, run, eval_metrics=["psnr", "l1"],
                              best_metric="psnr"))
    with open(run / "best" / "best.json") as f:
        best = json.load(f)
    assert best["epoch"] in (1, 2) and np.isfinite(best["psnr"])
    restored, _ = restore_run(str(run), checkpoint="best")
    if best["epoch"] == 2:  # the best is the last: same weights as the model
        x = tf.random.uniform([1, 32, 32, 3], -1, 1)
        np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-6)
    shutil.rmtree(run / "best")
    with pytest.raises(UserError, match="best checkpoint"):
        restore_run(str(run), checkpoint="best")


def test_benchmark_prints_one_json_line():
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--image_size=32", "--steps=2", "--warmup=1",
         "--hparams=netG=unet_32,ngf=8,ndf=8"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["method"] == "pix2pix" and result["image_size"] == 32 and result["steps"] == 2
    assert result["steps_per_sec"] > 0 and result["peak_rss_mb"] > 0 and result["netG"] == "unet_32"
