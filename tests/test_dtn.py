"""Tests of DTN: the reference nets' shapes, the two phases (f frozen in phase 2, the
phase kept across a resume), the three-way D labels, each loss term and its weight, the
update schedule, distribution, and the command line from training to translation."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, SHARED_DATA
from learning import assert_learned, heldout_l1
from test_digits import write_digits
from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import DTN
from tfi2i.methods.dtn import FAKE_FROM_SOURCE, FAKE_FROM_TARGET, REAL_TARGET, total_variation
from tfi2i.training.checkpoints import make_checkpoint, restore_run

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
TINY = dict(nef=4, ngf=2, ndf=2, input_nc=1, output_nc=1)


def _model(optimizer=lambda: keras.optimizers.SGD(0.1), **options):
    model = DTN(**{**TINY, **options})
    model.build_for_size(32, 32)
    model.compile(**{f"{g}_optimizer": optimizer() for g in model.optimizer_groups})
    return model


def _batch(seed=0, n=4, source_nc=1, target_nc=1):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(-1, 1, (n, 32, 32, source_nc)), tf.float32)
    t = tf.constant(rng.uniform(-1, 1, (n, 32, 32, target_nc)), tf.float32)
    return (x, tf.constant(rng.integers(0, 10, n), tf.int32)), t


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


# -- architecture -------------------------------------------------------------------------------

def test_reference_shapes_and_parameter_counts():
    model = DTN(input_nc=3, output_nc=1)  # SVHN -> MNIST, the reference widths
    model.build_for_size(32, 32)
    assert model.f.output_shape == (None, 1, 1, 128)
    assert model.f_head.output_shape == (None, 10)
    assert model.g.output_shape == (None, 32, 32, 1)
    assert model.D.output_shape == (None, 3)
    conv = lambda k, i, o: k * k * i * o + o  # noqa: E731
    bn = lambda c: 4 * c  # noqa: E731 (gamma, beta, moving mean and variance)
    assert model.f.count_params() == (conv(3, 3, 64) + bn(64) + conv(3, 64, 128) + bn(128)
                                      + conv(3, 128, 256) + bn(256) + conv(4, 256, 128)
                                      + bn(128))
    assert model.f_head.count_params() == conv(1, 128, 10)
    assert model.g.count_params() == (conv(4, 128, 512) + bn(512) + conv(3, 512, 256) + bn(256)
                                      + conv(3, 256, 128) + bn(128) + conv(3, 128, 1))
    assert model.D.count_params() == (conv(3, 1, 128) + bn(128) + conv(3, 128, 256) + bn(256)
                                      + conv(3, 256, 512) + bn(512) + conv(4, 512, 3))
    assert DTN(d_mode="binary").D.output_shape == (None, 1)
    # G = g o f translates 32 x 32 blocks; sides that are multiples of 32 tile.
    x = tf.random.uniform([2, 64, 96, 3], -1, 1)
    y = model(x)
    assert y.shape == (2, 64, 96, 1)
    np.testing.assert_allclose(y[:, 32:64, 64:96], model(x[:, 32:64, 64:96]), atol=1e-5)
    assert model.generators == {"AtoB": model.G} and model.size_divisor == 32


def test_config_round_trip_and_checks():
    model = DTN(**TINY, alpha=2.0, schedule="1:1", d_mode="binary", pretrain_steps=7)
    clone = DTN.from_config(model.get_config())
    assert clone.hparams == model.hparams
    with pytest.raises(UserError, match="crop_size=64.*32 x 32"):
        resolve_config("dtn", "mnist2usps", {"crop_size": 64, "load_size": 64})
    with pytest.raises(UserError, match="--schedule=2:1 is invalid"):
        resolve_config("dtn", "mnist2usps", {"schedule": "2:1"})
    with pytest.raises(UserError, match="eval_metrics.*digit classifier"):
        resolve_config("dtn", "mnist2usps", {"eval_metrics": "fid"})


# -- the two phases ---------------------------------------------------------------------------

def test_phase_1_trains_only_f_then_phase_2_keeps_f_frozen():
    model = _model(pretrain_steps=1)
    f_vars = model.f.variables + model.f_head.variables   # weights and BN statistics
    others = model.g.variables + model.D.variables
    f0, o0 = _values(f_vars), _values(others)
    assert model.in_pretraining and model.train_names == ["f_loss", "f_accuracy"]
    logs = model.train_step(_batch(0))
    assert set(logs) == {"f_loss", "f_accuracy"}
    assert all(_changed(f0, model.f.trainable_variables + model.f_head.trainable_variables))
    assert not any(_changed(o0, others))
    f1, o1 = _values(f_vars), _values(others)
    assert not model.in_pretraining
    logs = model.train_step(_batch(1))
    assert {"D_src", "D_trg", "G_src", "G_trg", "const", "tid", "d_loss", "g_loss"} <= set(logs)
    assert not any(_changed(f1, f_vars)), "f changed in phase 2"
    assert all(_changed(o1, model.g.trainable_variables + model.D.trainable_variables))
    assert int(model.step.numpy()) == 2
    assert int(model.f_optimizer.iterations.numpy()) == 1


def test_update_schedule_counts_through_fit():
    batches = [_batch(i) for i in range(2)]
    data = tf.data.Dataset.from_tensor_slices(tuple(
        tf.nest.map_structure(lambda *xs: tf.stack(xs), *batches)))
    model = _model(pretrain_steps=1)   # schedule=reference
    model.run_eagerly = True   # The counts, not the compilation (tested by the CLI run).
    model.fit(data, epochs=1, verbose=0)
    assert int(model.step.numpy()) == 2
    counts = {g: int(o.iterations.numpy()) for g, o in model.optimizers.items()}
    # Phase 1: one f update. Phase 2: D x1 + G x6 (source), D x2 + G x4 (target).
    assert counts == {"f": 1, "d": 3, "g": 10}
    plain = _model(pretrain_steps=0, schedule="1:1")
    plain.train_step(batches[0])
    assert {g: int(o.iterations.numpy()) for g, o in plain.optimizers.items()} == \
        {"f": 0, "d": 1, "g": 1}


def test_resume_keeps_the_phase(tmp_path):
    model = _model(pretrain_steps=2)
    epoch = tf.Variable(0, dtype=tf.int64)
    model.train_step(_batch(0))
    path = make_checkpoint(model, epoch).save(str(tmp_path / "ckpt"))
    resumed = _model(pretrain_steps=2)
    make_checkpoint(resumed, tf.Variable(0, dtype=tf.int64)).restore(path).assert_consumed()
    assert int(resumed.step.numpy()) == 1 and resumed.in_pretraining
    resumed.train_step(_batch(1))   # the last phase-1 step
    assert not resumed.in_pretraining
    f_before = _values(resumed.f.variables)
    resumed.train_step(_batch(2))
    assert not any(_changed(f_before, resumed.f.variables))


# -- the objective ----------------------------------------------------------------------------

def _ce(logits, label):
    logits = np.asarray(logits, np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -log_softmax[:, label]


def _bce(logits, target):
    z = np.asarray(logits, np.float64)[:, 0]
    return np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))


def test_three_way_discriminator_labels_by_hand():
    model = _model(pretrain_steps=0)
    (x, _), t = _batch(3)
    fx, ft = model.features(x), model.features(t)
    # BN in training mode uses each call's batch statistics: the same calls here give
    # the same logits as inside the loss functions.
    fake_s = model.g(fx, training=True)
    fake_t = model.g(ft, training=True)
    logits_s = model.D(fake_s, training=True).numpy()
    logits_t = model.D(fake_t, training=True).numpy()
    logits_r = model.D(t, training=True).numpy()
    assert (FAKE_FROM_SOURCE, FAKE_FROM_TARGET, REAL_TARGET) == (0, 1, 2)
    np.testing.assert_allclose(model.source_d_terms(fx), _ce(logits_s, 0), rtol=1e-5)
    np.testing.assert_allclose(model.target_d_terms(t, ft),
                               _ce(logits_t, 1) + _ce(logits_r, 2), rtol=1e-5)
    # G wants both kinds of fakes judged real targets.
    np.testing.assert_allclose(model.source_g_terms(fx)["G_src"], _ce(logits_s, 2), rtol=1e-5)
    np.testing.assert_allclose(model.target_g_terms(t, ft)["G_trg"], _ce(logits_t, 2),
                               rtol=1e-5)
    # The reference's binary D: every fake 0, real targets 1.
    binary = _model(pretrain_steps=0, d_mode="binary")
    fx, ft = binary.features(x), binary.features(t)
    ls = binary.D(binary.g(fx, training=True), training=True).numpy()
    lt = binary.D(binary.g(ft, training=True), training=True).numpy()
    lr = binary.D(t, training=True).numpy()
    np.testing.assert_allclose(binary.source_d_terms(fx), _bce(ls, 0), rtol=1e-5)
    np.testing.assert_allclose(binary.target_d_terms(t, ft), _bce(lt, 0) + _bce(lr, 1),
                               rtol=1e-5)
    np.testing.assert_allclose(binary.source_g_terms(fx)["G_src"], _bce(ls, 1), rtol=1e-5)


def test_each_loss_term_with_its_weight():
    alpha, beta, gamma = 2.0, 3.0, 0.5
    model = _model(pretrain_steps=0, alpha=alpha, beta=beta, gamma=gamma, input_nc=3)
    (x, _), t = _batch(4, source_nc=3)
    fx, ft = model.features(x), model.features(t)
    # f reads gray targets and g's gray output repeated to RGB (the reference's rule).
    np.testing.assert_allclose(ft, model.f(tf.repeat(t, 3, axis=-1)), atol=1e-6)
    fake_s = model.g(fx, training=True)
    fake_t = model.g(ft, training=True)
    const = np.mean((fx.numpy() - model.f(tf.repeat(fake_s, 3, -1)).numpy()) ** 2, axis=(1, 2, 3))
    tid = np.mean((t.numpy() - fake_t.numpy()) ** 2, axis=(1, 2, 3))
    img = fake_s.numpy()
    tv = (np.abs(np.diff(img, axis=1)).mean(axis=(1, 2, 3))
          + np.abs(np.diff(img, axis=2)).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(total_variation(fake_s), tv, rtol=1e-5)
    src = model.source_g_terms(fx)
    np.testing.assert_allclose(src["const"], const, rtol=1e-4)
    np.testing.assert_allclose(src["tv"], tv, rtol=1e-5)
    np.testing.assert_allclose(src["g_src"], src["G_src"] + alpha * const + gamma * tv, rtol=1e-5)
    trg = model.target_g_terms(t, ft)
    np.testing.assert_allclose(trg["tid"], tid, rtol=1e-5)
    np.testing.assert_allclose(trg["g_trg"], trg["G_trg"] + beta * tid + gamma * trg["tv_trg"],
                               rtol=1e-5)
    # gamma 0 (digits) leaves the TV term out.
    plain = _model(pretrain_steps=0)
    (x, _), _ = _batch(5)
    assert np.all(plain.source_g_terms(plain.features(x))["tv"].numpy() == 0)


# -- distribution -----------------------------------------------------------------------------

def test_mirrored_equals_one_device(mirrored_strategy):
    """One phase-1 and one phase-2 step (1:1) through fit; SGD, which shows a 2x loss scale."""
    batches = [_batch(10 + i, n=4) for i in range(2)]

    def run(strategy):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            model = _model(pretrain_steps=1, schedule="1:1")
        model.run_eagerly = True   # Equivalence of the arithmetic; tracing costs minutes here.
        data = tf.data.Dataset.from_tensor_slices(tuple(
            tf.nest.map_structure(lambda *xs: tf.concat(xs, 0), *batches))).batch(4)
        model.fit(data, epochs=1, verbose=0)
        return model

    single = run(tf.distribute.get_strategy())
    mirrored = run(mirrored_strategy)
    assert int(mirrored.step.numpy()) == 2
    for a, b in zip(single.variables, mirrored.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.path)


# -- the command line -------------------------------------------------------------------------

def _cli(module, *args):
    return subprocess.Popen([sys.executable, "-m", f"tfi2i.cli.{module}", *args], env=ENV,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_cli_train_resume_export_translate(tmp_path):
    data = write_digits(tmp_path / "digits", n_test=20)
    run, export = tmp_path / "run", tmp_path / "export"
    args = ["--method=dtn", "--dataset=mnist2usps", f"--data_dir={data}", f"--run_dir={run}",
            "--nef=4", "--ngf=2", "--ndf=2", "--batch_size=4", "--pretrain_steps=2",
            "--schedule=1:1", "--save_every_steps=1", "--sample_every_steps=1",
            "--val_batches=1"]
    _finish(_cli("train", *args, "--max_steps=1"))
    model, config = restore_run(str(run))
    assert int(model.step.numpy()) == 1 and model.in_pretraining
    assert (config["input_nc"], config["output_nc"], config["load_size"]) == (1, 1, 32)
    _finish(_cli("train", *args, "--max_steps=3", "--resume"))
    path = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert path.endswith("ckpt-3")
    iterations = {name.split("/")[0]: int(tf.train.load_checkpoint(path).get_tensor(name))
                  for name, _ in tf.train.list_variables(path)
                  if name.endswith("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")}
    # Two phase-1 steps (one before, one after the resume), then one phase-2 step.
    assert iterations == {"f_optimizer": 2, "d_optimizer": 1, "g_optimizer": 1}
    sample = np.asarray(Image.open(sorted(glob.glob(str(run / "samples" / "*.png")))[-1]))
    assert sample.shape == (4 * 2 * 32, 2 * 32, 3)   # source | G(source), target | g(f(target))

    # Export, and translate 28 x 28 MNIST-like PNGs from the run and from the export.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(inputs / f"{i}.png")
    exporter = _cli("export", f"--run_dir={run}", f"--output={export}")
    from_run = _cli("translate", f"--model={run}", f"--input={inputs}",
                    f"--output={tmp_path / 'out_run'}")
    _finish(exporter)
    from_export = _cli("translate", f"--model={export}", f"--input={inputs}",
                       f"--output={tmp_path / 'out_export'}")
    with open(export / "1" / "config.json") as f:
        assert set(json.load(f)["export"]["generators"]) == {"AtoB"}
    model, _ = restore_run(str(run))
    x = np.asarray(Image.open(inputs / "0.png"), np.float32)[None, :, :, None] / 127.5 - 1
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    want = np.round((model(padded).numpy()[0, 2:30, 2:30, 0] + 1) * 127.5)
    for proc, out in ((from_run, "out_run"), (from_export, "out_export")):
        _finish(proc)
        got = np.asarray(Image.open(tmp_path / out / "0.png").convert("L"), np.float64)
        assert got.shape == (28, 28)
        assert np.abs(got - want).max() <= 1, out


# -- learning -------------------------------------------------------------------------------

DIGITS = os.path.join(SHARED_DATA, "digits")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(DIGITS), reason="../shared/data/digits is not present")
def test_learns_on_real_digits():
    """100 phase-1 and 200 phase-2 steps (1:1, tiny nets, Adam 1e-3 to learn fast) on
    MNIST -> USPS: f learns to classify held-out MNIST digits; g learns the identity
    mapping of held-out USPS digits; and the translated MNIST digits' mean image moves
    towards the USPS mean image (USPS digits fill their frame, MNIST's do not), away
    from where the untranslated digits and the untrained model's outputs are."""
    from tfi2i.data import make_dataset, resolve_dataset

    keras.utils.set_random_seed(0)
    root = resolve_dataset("mnist2usps", data_dir=DIGITS)
    options = dict(paired=False, labels=True, load_size=32, crop_size=32, input_nc=1,
                   output_nc=1)
    val = list(make_dataset(root, "test", batch_size=100, training=False, **options).take(4))
    sources = tf.concat([x for (x, _), _ in val], 0)
    targets = tf.concat([t for _, t in val], 0)
    mean_target = tf.reduce_mean(targets, 0)
    model = _model(lambda: keras.optimizers.Adam(1e-3, beta_1=0.9), nef=8, ngf=8, ndf=4,
                   pretrain_steps=100, schedule="1:1")

    def scores():
        accuracy = np.mean([np.mean(np.argmax(model.classify(x), -1) == y.numpy())
                            for (x, y), _ in val])
        tid = heldout_l1(lambda t: model.g(model.features(t), training=False),
                         [(t, t) for _, t in val])
        return accuracy, tid, _mean_image_l1(model(sources), mean_target)

    untrained = scores()
    train = make_dataset(root, "train", batch_size=32, seed=0, epochs=1, **options)
    model.fit(train.take(300), epochs=1, verbose=0)
    trained = scores()
    assert_learned("held-out MNIST accuracy of f", {"untrained": untrained[0],
                                                    "trained": trained[0]},
                   higher_is_better=True, untrained=4.0)
    assert_learned("held-out USPS identity L1 of g(f(t))",
                   {"untrained": untrained[1], "trained": trained[1]}, untrained=0.85)
    assert_learned("L1 of the mean translated MNIST digit to the mean USPS digit", {
        "untrained": untrained[2], "untranslated": _mean_image_l1(sources, mean_target),
        # 0.85 and 0.92 of untranslated in two runs (threads make runs differ): the margin
        # says "closer to USPS than MNIST is", with room for that spread.
        "trained": trained[2]}, untrained=0.8, untranslated=0.96)


def _mean_image_l1(images, mean_target):
    return float(tf.reduce_mean(tf.abs(tf.reduce_mean(images, 0) - mean_target)))
