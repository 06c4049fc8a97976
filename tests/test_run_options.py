"""What the README promises about run options, each tested so that it fails if it breaks:
LR policies, test-time noise, deterministic runs, --noresume, which options a resume may
change, the best checkpoint and its export, FID during training."""

import json
import math
import os
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, tiny_run_config, write_ab_dataset
from tfi2i.errors import UserError
from tfi2i.export import load
from tfi2i.methods import get_method
from tfi2i.training.checkpoints import restore_run
from tfi2i.training.trainer import build_compiled_model, train

STEPS_PER_EPOCH = 4  # write_ab_dataset: 8 training pairs, batch 2

# The runs below: unet_64 at 64 px, the smallest U-Net with a dropout layer, so a run
# has all three random sources (initialisation, jitter, dropout). 4 steps = 1 epoch,
# scored (l1) at its end, which keeps RUN/best/.
RUN = dict(netG="unet_64", load_size=72, crop_size=64, max_steps=4, lr=1e-3,
           eval_metrics=["l1"], best_metric="l1")


def _cli(module, *flags):
    return subprocess.run([sys.executable, "-m", f"tfi2i.cli.{module}", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def _state(model):
    """Every variable of a trained model and its optimizers, as arrays."""
    variables = list(model.variables)
    for optimizer in model.optimizers.values():
        variables += list(optimizer.variables)
    return [v.numpy() for v in variables]


def _files(folder):
    """{relative path: (size, mtime)} of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory):
    """Two runs of one config in two run directories, and what they left."""
    root = tmp_path_factory.mktemp("options")
    data = write_ab_dataset(root / "data")
    probe = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    runs = []
    for name in ("a", "b"):
        model = train(tiny_run_config(data, root / name, **RUN))
        runs.append(types.SimpleNamespace(
            dir=root / name, step=int(model.step.numpy()), state=_state(model),
            output=model.G(probe, training=False).numpy()))
    return types.SimpleNamespace(root=root, data=data, probe=probe, runs=runs)


# -- --lr_policy ------------------------------------------------------------------------

# Epochs of STEPS_PER_EPOCH steps: n_epochs=2, n_epochs_decay=2, lr_decay_iters=1.
LR_FACTORS = {
    # The reference's schedulers, stepped per epoch there and per step here.
    "linear": {0: 1.0, 8: 1.0, 12: 0.5, 14: 0.25, 16: 0.0},
    "step": {0: 1.0, 3: 1.0, 4: 0.1, 7: 0.1, 8: 0.01, 12: 0.001},
    "cosine": {0: 1.0, 4: 0.5 * (1 + math.cos(math.pi / 4)), 8: 0.5, 12:
               0.5 * (1 + math.cos(3 * math.pi / 4)), 16: 0.0},
    "constant": {0: 1.0, 8: 1.0, 16: 1.0, 100: 1.0},
}


@pytest.mark.parametrize("policy", sorted(LR_FACTORS))
def test_lr_policy_gives_the_reference_rate_at_each_step(policy, ab_dataset, tmp_path):
    config = tiny_run_config(ab_dataset, tmp_path, lr=0.01, lr_policy=policy, n_epochs=2,
                             n_epochs_decay=2, lr_decay_iters=1)
    model, _ = build_compiled_model(config, STEPS_PER_EPOCH, tf.distribute.get_strategy())
    assert set(model.optimizers) == {"g", "d"}
    for step, factor in LR_FACTORS[policy].items():
        for group, optimizer in model.optimizers.items():
            optimizer.iterations.assign(step)
            assert float(optimizer.learning_rate) == pytest.approx(0.01 * factor, abs=1e-9), (
                policy, group, step)


# -- --test_time_noise ------------------------------------------------------------------

def test_test_time_noise_makes_translation_random_and_its_absence_deterministic(ab_dataset,
                                                                                tmp_path):
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)), tf.float32)
    for noise in (False, True):
        config = tiny_run_config(ab_dataset, tmp_path, netG="unet_64", crop_size=64,
                                 load_size=72, test_time_noise=noise)
        assert config["use_dropout"]  # pix2pix's default: the noise it means
        keras.utils.set_random_seed(0)
        model = get_method("pix2pix").from_run_config(config)
        model.build_for_size(64, 64)
        first, second = model.translate(x).numpy(), model.translate(x).numpy()
        if noise:
            # The paper's test mode: dropout on, so two calls differ.
            assert np.abs(first - second).mean() > 1e-3
        else:
            # Running statistics, no dropout: what export and evaluation compute.
            np.testing.assert_array_equal(first, second)
            np.testing.assert_array_equal(first, model.G(x, training=False).numpy())


# -- --deterministic ------------------------------------------------------------------------

def test_deterministic_runs_are_identical(twin_runs):
    a, b = twin_runs.runs
    assert a.step == b.step == 4
    assert len(a.state) == len(b.state)
    for x, y in zip(a.state, b.state):
        np.testing.assert_array_equal(x, y)
    # The same best epoch and score, to the bit.
    best = [json.loads((run.dir / "best" / "best.json").read_text()) for run in (a, b)]
    assert best[0] == best[1] and best[0]["step"] == 4
    from tensorflow.python.framework import config as tf_config  # no public getter
    if hasattr(tf_config, "is_op_determinism_enabled"):
        assert tf_config.is_op_determinism_enabled()


# -- resuming ---------------------------------------------------------------------------

def test_noresume_refuses_a_run_directory_with_checkpoints(twin_runs):
    run = twin_runs.runs[0].dir
    before = _files(run)
    result = _cli("train", "--method=pix2pix", f"--data_dir={twin_runs.data}", f"--run_dir={run}",
                  "--netG=unet_64", "--crop_size=64", "--load_size=72", "--noresume")
    assert result.returncode == 2, result.stderr[-2000:]
    assert str(run) in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert _files(run) == before  # nothing written, nothing removed


@pytest.mark.parametrize("option,value", [("load_size", 80), ("direction", "BtoA"),
                                          ("preprocess", "crop")])
def test_resume_refuses_a_changed_data_option(twin_runs, option, value):
    run = twin_runs.runs[0].dir
    before = _files(run)
    config = tiny_run_config(twin_runs.data, run, **dict(RUN, **{option: value}))
    with pytest.raises(UserError, match=f"{option}={value!r}"):
        train(config, explicit_keys={option})
    assert _files(run) == before


@pytest.fixture(scope="module")
def resumed_run(twin_runs):
    """A copy of run a, resumed with a larger --max_steps and without --eval_metrics:
    its latest checkpoint moves on (step 8), its best stays at step 4."""
    run = twin_runs.root / "resumed"
    shutil.copytree(twin_runs.runs[0].dir, run)
    options = {k: v for k, v in RUN.items() if k not in ("eval_metrics", "best_metric")}
    config = tiny_run_config(twin_runs.data, run, **dict(options, max_steps=8))
    model = train(config, explicit_keys={"max_steps", "eval_metrics"})
    return types.SimpleNamespace(dir=run, step=int(model.step.numpy()),
                                 output=model.G(twin_runs.probe, training=False).numpy())


def test_resume_accepts_a_resumable_option(twin_runs, resumed_run):
    assert resumed_run.step == 8
    saved = json.loads((resumed_run.dir / "config.json").read_text())
    assert saved["max_steps"] == 8 and saved["eval_metrics"] == []
    assert saved["load_size"] == 72 and saved["netG"] == "unet_64"
    assert tf.train.latest_checkpoint(str(resumed_run.dir / "checkpoints")).endswith("ckpt-8")
    # Training went on from the saved weights.
    assert np.abs(resumed_run.output - twin_runs.runs[0].output).mean() > 1e-3


def test_export_checkpoint_best_exports_the_best_weights(twin_runs, resumed_run, tmp_path):
    best = json.loads((resumed_run.dir / "best" / "best.json").read_text())
    assert best["step"] == 4  # the resumed steps were not scored
    result = _cli("export", f"--run_dir={resumed_run.dir}", "--checkpoint=best",
                  f"--output={tmp_path / 'best'}")
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = load(tmp_path / "best").translate(twin_runs.probe)
    # The weights of step 4 (run a's last, which its best checkpoint holds) ...
    assert np.abs(outputs - twin_runs.runs[0].output).max() < 1e-4
    # ... not the latest ones, step 8, which differ by far more than the tolerance.
    assert np.abs(outputs - resumed_run.output).mean() > 1e-3
    restored, _ = restore_run(str(resumed_run.dir), checkpoint="best")
    np.testing.assert_allclose(restored.G(twin_runs.probe, training=False).numpy(),
                               twin_runs.runs[0].output, atol=1e-6)


# -- --eval_metrics=fid -------------------------------------------------------------------

def test_fid_during_training_keeps_the_best_checkpoint(ab_dataset, tmp_path):
    from tfi2i.metrics import weights as weights_lib

    try:
        weights_lib.fid_weights_path()
    except UserError:
        pytest.skip(f"FID weights absent; fetch them with: {weights_lib.FETCH_COMMAND}")
    run = tmp_path / "run"
    model = train(tiny_run_config(ab_dataset, run, max_steps=4, eval_metrics=["fid", "l1"],
                                  best_metric="fid"))
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["epoch"] == 1 and best["step"] == 4
    assert np.isfinite(best["fid"]) and best["fid"] > 0 and np.isfinite(best["l1"])
    restored, _ = restore_run(str(run), checkpoint="best")
    x = tf.random.uniform([1, 32, 32, 3], -1, 1, seed=2)
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-6)
