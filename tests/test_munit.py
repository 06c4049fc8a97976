"""MUNIT: the reference nets and settings, each loss term and weight, the update order, the
style's route through AdaIN, the multimodal interface, fit, resume, MirroredStrategy and the
improved recipe (hinge, spectral norm, two learning rates, EMA)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS, MUNIT
from tfi2i.nets.latent import SpectralNormalization

from conftest import smooth_domain

# 2 scales of 2 layers: 32 px images leave the coarsest scale 4 x 4.
TINY = dict(ngf=8, ndf=8, mlp_dim=16, n_res=1, n_layer=2, num_scales=2)
SIZE = 32
G_NETS = ("enc_c_A", "enc_s_A", "dec_A", "enc_c_B", "enc_s_B", "dec_B")
D_NETS = ("D_A", "D_B")


def domain(seed, n=2, size=SIZE):
    return smooth_domain(seed, n, size)


def make(g_lr=0.0, d_lr=0.0, init_seed=0, **options):
    """A tiny MUNIT compiled with SGD (a learning rate of 0 freezes a group)."""
    keras.utils.set_random_seed(init_seed)
    model = MUNIT(**{**TINY, **options})
    model.compile(g_optimizer=keras.optimizers.SGD(g_lr), d_optimizer=keras.optimizers.SGD(d_lr))
    model.build_for_size(SIZE, SIZE)
    return model


def step(model, a, b):
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def snapshot(net):
    return [w.numpy().copy() for w in net.weights]


def changed(net, before):
    return any(not np.array_equal(w0, w.numpy()) for w0, w in zip(before, net.weights))


def count(*nets):
    return int(sum(np.prod(w.shape) for net in nets for w in net.trainable_weights))


# NumPy versions of the terms, independent of tfi2i.losses.
def l1(x, y):
    d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    return d.reshape(d.shape[0], -1).mean(axis=1)


def scales(outputs, f):
    """Per-example sum over a multi-scale D's outputs of the mean of f(map)."""
    return sum(f(np.asarray(o, np.float64)).reshape(o.shape[0], -1).mean(axis=1)
               for o in outputs)


GAN = {"lsgan": dict(g=lambda o: (o - 1) ** 2, real=lambda o: (o - 1) ** 2, fake=lambda o: o ** 2),
       "hinge": dict(g=lambda o: -o, real=lambda o: np.maximum(0, 1 - o),
                     fake=lambda o: np.maximum(0, 1 + o))}


# -- the nets and the settings ---------------------------------------------------------------


def test_reference_nets_and_settings():
    from tfi2i.training.schedules import make_schedule

    assert METHODS["munit"] is MUNIT
    model = MUNIT()
    hp = model.hp
    assert (hp.ngf, hp.ndf, hp.style_dim, hp.mlp_dim, hp.n_downsample, hp.n_res, hp.n_layer,
            hp.num_scales, hp.gan_mode, hp.spectral_norm) == (
        64, 64, 8, 256, 2, 4, 4, 3, "lsgan", False)
    assert (hp.lambda_gan, hp.lambda_recon, hp.lambda_style, hp.lambda_content,
            hp.lambda_cycle) == (1.0, 10.0, 1.0, 1.0, 0.0)
    model.build_for_size(64, 64)  # full-size nets, small images: nothing is trained
    # AdaINGen (content + style encoder + decoder with its MLP) and MsImageDis of the reference.
    assert count(model.enc_c_A, model.enc_s_A, model.dec_A) == 15_026_187
    assert count(model.enc_c_B, model.enc_s_B, model.dec_B) == 15_026_187
    assert count(model.D_A) == count(model.D_B) == 8_271_171
    assert model.size_divisor == 4 and model.latent_dim == 8

    config = resolve_config("munit", None)
    assert (config["lr"], config["beta1"], config["beta2"], config["weight_decay"],
            config["batch_size"], config["crop_size"], config["max_steps"]) == (
        1e-4, 0.5, 0.999, 1e-4, 1, 256, 1_000_000)
    # Halved every 100k steps.
    schedule = make_schedule(config["lr_policy"], config["lr"], 400, config["n_epochs"],
                             config["n_epochs_decay"], config["lr_decay_iters"],
                             config["lr_decay_steps"], config["lr_decay_gamma"])
    rates = [float(schedule(s)) for s in (0, 99_999, 100_000, 250_000)]
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 5e-5, 2.5e-5], rtol=1e-6)


def test_option_errors_are_clear():
    with pytest.raises(UserError, match="gan_mode=wgangp"):
        MUNIT(gan_mode="wgangp")
    with pytest.raises(UserError, match="n_res=0"):
        MUNIT(n_res=0)
    with pytest.raises(UserError, match="coarsest scale needs 64 px"):
        resolve_config("munit", None, {"crop_size": 32, "load_size": 36})
    assert resolve_config("munit", None, {"crop_size": 32, "load_size": 36, "num_scales": 2,
                                          "n_layer": 3})
    with pytest.raises(UserError, match="crop_size=66 is not a multiple of 4"):
        resolve_config("munit", None, {"crop_size": 66, "load_size": 70})


def test_get_config_round_trip():
    model = MUNIT(**TINY, lambda_style=3.0, direction="BtoA", gan_mode="hinge", d_lr=4e-4)
    again = MUNIT.from_config(model.get_config())
    assert again.hparams == model.hparams and again.hp.lambda_style == 3.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, MUNIT) and restored.hparams == model.hparams


# -- the objective ------------------------------------------------------------------------------


@pytest.mark.parametrize("gan_mode", ["lsgan", "hinge"])
def test_each_term_and_weight(gan_mode):
    weights = dict(lambda_gan=1.5, lambda_recon=7.0, lambda_style=2.0, lambda_content=3.0,
                   lambda_cycle=4.0)
    model = make(gan_mode=gan_mode, **weights)
    a, b = domain(1), domain(2)
    rng = np.random.default_rng(3)
    s_A, s_B = (tf.constant(rng.normal(size=(2, 8)), tf.float32) for _ in range(2))
    m, f = model, GAN[gan_mode]
    c_A, sp_A = m.enc_c_A(a), m.enc_s_A(a)
    c_B, sp_B = m.enc_c_B(b), m.enc_s_B(b)
    x_BA, x_AB = m.dec_A([c_B, s_A]), m.dec_B([c_A, s_B])
    expected = {
        "recon_x_A": l1(m.dec_A([c_A, sp_A]), a),
        "recon_x_B": l1(m.dec_B([c_B, sp_B]), b),
        "recon_s_A": l1(m.enc_s_A(x_BA), s_A),       # the style of a translation into A
        "recon_s_B": l1(m.enc_s_B(x_AB), s_B),
        "recon_c_A": l1(m.enc_c_B(x_AB), c_A),       # a's content, through domain B
        "recon_c_B": l1(m.enc_c_A(x_BA), c_B),
        "cycle_A": l1(m.dec_A([m.enc_c_B(x_AB), sp_A]), a),
        "cycle_B": l1(m.dec_B([m.enc_c_A(x_BA), sp_B]), b),
        "adv_A": scales(m.D_A(x_BA), f["g"]),
        "adv_B": scales(m.D_B(x_AB), f["g"]),
    }
    expected["g_loss"] = (1.5 * (expected["adv_A"] + expected["adv_B"])
                          + 7.0 * (expected["recon_x_A"] + expected["recon_x_B"])
                          + 2.0 * (expected["recon_s_A"] + expected["recon_s_B"])
                          + 3.0 * (expected["recon_c_A"] + expected["recon_c_B"])
                          + 4.0 * (expected["cycle_A"] + expected["cycle_B"]))
    terms, _ = model.generator_losses(a, b, s_A, s_B)
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name].numpy(), value, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert np.abs(value).min() > 1e-4, name
    # D: fake + real, summed over scales, not halved; d_loss weighted by lambda_gan.
    d_expected = {"D_A": scales(m.D_A(x_BA), f["fake"]) + scales(m.D_A(a), f["real"]),
                  "D_B": scales(m.D_B(x_AB), f["fake"]) + scales(m.D_B(b), f["real"])}
    d_expected["d_loss"] = 1.5 * (d_expected["D_A"] + d_expected["D_B"])
    d_terms = model.discriminator_losses(a, b, s_A, s_B)
    for name, value in d_expected.items():
        np.testing.assert_allclose(d_terms[name].numpy(), value, rtol=1e-5, err_msg=name)
    # The cycle is off by default: zero, and not computed.
    off = make(gan_mode=gan_mode)
    terms, images = off.generator_losses(a, b, s_A, s_B)
    assert "x_ABA" not in images and float(tf.reduce_max(terms["cycle_A"])) == 0.0


def test_D_steps_first_then_G_with_the_steps_styles():
    a, b = domain(4), domain(5)
    # G frozen, D learning fast: G's adversarial terms of the step must be those of the
    # discriminators after their update (train.py: dis_update, then gen_update).
    model = make(d_lr=2.0)
    d_styles, g_styles = model.step_styles(2)  # what the step will draw (step 0)
    d_before = model.discriminator_losses(a, b, *d_styles)
    g_before, _ = model.generator_losses(a, b, *g_styles)
    logs = step(model, a, b)
    g_after, _ = model.generator_losses(a, b, *g_styles)
    for name in ("D_A", "D_B", "d_loss"):
        np.testing.assert_allclose(logs[name], d_before[name].numpy().mean(), rtol=1e-5)
    for name in ("adv_A", "adv_B", "recon_x_A", "recon_s_B", "recon_c_A", "g_loss"):
        np.testing.assert_allclose(logs[name], g_after[name].numpy().mean(), rtol=1e-5)
    assert abs(g_after["adv_A"].numpy().mean() - g_before["adv_A"].numpy().mean()) > 1e-3
    # D and G draw their own styles, and each step new ones.
    assert not np.allclose(d_styles[0], g_styles[0])
    next_d, _ = model.step_styles(2)
    assert int(model.step.numpy()) == 1 and not np.allclose(next_d[0], d_styles[0])


def test_each_step_updates_only_its_group():
    model = make(g_lr=0.1)
    g = {id(v) for v in model.group_variables("g")}
    d = {id(v) for v in model.group_variables("d")}
    assert not g & d and g | d == {id(v) for v in model.trainable_variables}
    a, b = domain(6), domain(7)
    before = {n: snapshot(getattr(model, n)) for n in G_NETS + D_NETS}
    step(model, a, b)
    for name in G_NETS:  # every generator net gets a gradient, the style encoders too
        assert changed(getattr(model, name), before[name]), name
    for name in D_NETS:
        assert not changed(getattr(model, name), before[name]), name

    model = make(d_lr=0.1)
    before = {n: snapshot(getattr(model, n)) for n in G_NETS + D_NETS}
    step(model, a, b)
    for name in D_NETS:
        assert changed(getattr(model, name), before[name]), name
    for name in G_NETS:
        assert not changed(getattr(model, name), before[name]), name

    # lambda_gan 0: no D update at all, and step still counts G updates.
    model = make(g_lr=0.1, d_lr=0.1, lambda_gan=0.0)
    logs = step(model, a, b)
    assert int(model.d_optimizer.iterations.numpy()) == 0 and int(model.step.numpy()) == 1
    assert logs["d_loss"] == 0.0


# -- the multimodal interface and the style's route ------------------------------------------


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_code_generators_style_encoders_and_sampling(direction):
    model = make(direction=direction)
    reverse = {"AtoB": "BtoA", "BtoA": "AtoB"}[direction]
    a, b = domain(8), domain(9)
    codes = model.code_generators
    assert list(codes) == [direction, reverse] == list(model.generators)
    assert list(model.style_encoders) == [direction, reverse]
    # Forward: a's content, B's decoder; the style comes from B's style encoder (the target).
    s = tf.constant(np.random.default_rng(0).normal(size=(2, 8)), tf.float32)
    np.testing.assert_allclose(codes[direction]([a, s]).numpy(),
                               model.dec_B([model.enc_c_A(a), s]).numpy(), atol=1e-6)
    np.testing.assert_allclose(codes[reverse]([b, s]).numpy(),
                               model.dec_A([model.enc_c_B(b), s]).numpy(), atol=1e-6)
    assert model.style_encoders[direction] is model.enc_s_B
    assert model.style_encoders[reverse] is model.enc_s_A
    assert model.style_encoders[direction](b).shape == (2, 8)
    # Another style, another output; each call of a sampling generator draws anew.
    other = codes[direction]([a, -s]).numpy()
    assert np.abs(other - codes[direction]([a, s]).numpy()).max() > 1e-3
    sampled = model.generators[direction]
    assert np.abs(sampled(a).numpy() - sampled(a).numpy()).max() > 1e-3
    assert model.translate(a).shape == (2, SIZE, SIZE, 3)


def test_the_style_enters_only_through_the_adain_parameters():
    model = make()
    a = domain(10)
    G = model.code_generators["AtoB"]
    s1, s2 = (tf.constant(np.random.default_rng(i).normal(size=(2, 8)), tf.float32)
              for i in (1, 2))
    assert np.abs(G([a, s1]).numpy() - G([a, s2]).numpy()).max() > 1e-3
    # The MLP's last layer makes the AdaIN parameters; with its kernel zero they are its bias
    # whatever the style, and the output no longer depends on the style at all.
    last = model.dec_B.get_layer("mlp_fc3")
    last.kernel.assign(tf.zeros_like(last.kernel))
    np.testing.assert_array_equal(G([a, s1]).numpy(), G([a, s2]).numpy())


# -- fit, the trainer, resume ---------------------------------------------------------------


def test_fit_trains_every_net_and_validates():
    keras.utils.set_random_seed(0)
    model = MUNIT(**TINY)
    model.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    model.build_for_size(SIZE, SIZE)
    before = {n: snapshot(getattr(model, n)) for n in G_NETS + D_NETS}
    train = tf.data.Dataset.from_tensor_slices((domain(11, 4), domain(12, 4))).batch(2)
    val_a, val_b = domain(13), domain(14)
    history = model.fit(train, validation_data=tf.data.Dataset.from_tensors((val_a, val_b)),
                        verbose=0)
    assert int(model.step.numpy()) == 2
    for name, weights in before.items():
        assert changed(getattr(model, name), weights), name
    (s,) = model.display_styles(2)
    expected = {
        "val_recon_x_A": l1(model.dec_A([model.enc_c_A(val_a), model.enc_s_A(val_a)]), val_a),
        "val_recon_x_B": l1(model.dec_B([model.enc_c_B(val_b), model.enc_s_B(val_b)]), val_b),
        "val_l1_AtoB": l1(model.dec_B([model.enc_c_A(val_a), s]), val_a),
        "val_l1_BtoA": l1(model.dec_A([model.enc_c_B(val_b), s]), val_b)}
    for key, value in expected.items():
        np.testing.assert_allclose(history.history[key][-1], value.mean(), rtol=1e-4,
                                   err_msg=key)
    for key in model.train_names:
        assert np.isfinite(history.history[key][-1]), key
    grid = model.sample_images((val_a, val_b)).numpy()
    assert grid.shape == (4, SIZE, 5 * SIZE, 3)  # real | recon | 3 styles; A rows, B rows
    np.testing.assert_allclose(grid[0, :, 2 * SIZE:3 * SIZE],
                               model.dec_B([model.enc_c_A(val_a), s])[0].numpy(), atol=1e-6)


def _improved(init_seed=0):
    """A tiny MUNIT of the improved preset, built and compiled as the trainer does."""
    from tfi2i.training.trainer import build_compiled_model

    config = resolve_config("munit", None, {"preset": "improved", "crop_size": SIZE,
                                            "load_size": 36, **TINY})
    keras.utils.set_random_seed(init_seed)
    model, epoch = build_compiled_model(config, 10, tf.distribute.get_strategy())
    return model, epoch, config


def test_improved_preset_resumes_exactly(tmp_path):
    """The improved recipe (SN + hinge + D lr 4e-4 / G 1e-4 + EMA) built by the trainer's
    `build_compiled_model`; 2 steps uninterrupted against 1 step, a checkpoint of the run
    (`make_checkpoint`), a fresh model restored from it, 1 more step: the same losses, weights,
    SN vectors and averages (the styles are drawn by seed and step, not by a state)."""
    from tfi2i.files import write_json_atomic
    from tfi2i.training.checkpoints import make_checkpoint, restore_run

    batches = [(domain(30 + i), domain(40 + i)) for i in range(2)]
    full, _, config = _improved()
    assert (full.hp.gan_mode, full.hp.spectral_norm, full.ema is not None) == ("hinge", True, True)
    assert float(full.g_optimizer.learning_rate) == pytest.approx(1e-4)
    assert float(full.d_optimizer.learning_rate) == pytest.approx(4e-4)
    for net in ("enc_c_A", "enc_s_B", "dec_A", "D_B"):
        assert any(isinstance(layer, SpectralNormalization)
                   for layer in getattr(full, net)._flatten_layers()), net
    init = [w.numpy() for w in full.weights]
    start = [v.numpy() for v in full.group_variables("g")]
    full_logs = [step(full, *batches[0])]
    # The average covers all six generator nets (the style encoders too) and moved by 0.999.
    assert len(full.ema.averages) == len(full.group_variables("g"))
    for s, v, average in zip(start, full.group_variables("g"), full.ema.averages):
        np.testing.assert_allclose(average.numpy(), 0.999 * s + 0.001 * v.numpy(), rtol=1e-5,
                                   atol=1e-8)
    assert any(not np.allclose(s, v.numpy()) for s, v in zip(start, full.group_variables("g")))
    full_logs += [step(full, *batch) for batch in batches[1:]]

    part, epoch, _ = _improved()  # the same seed: the same initial weights and averages
    for w, w0 in zip(part.weights, init):
        np.testing.assert_array_equal(w.numpy(), w0)
    step(part, *batches[0])
    run = tmp_path / "run"
    make_checkpoint(part, epoch).save(str(run / "checkpoints" / "ckpt"))
    write_json_atomic(str(run / "config.json"), config)
    resumed, epoch, _ = _improved(init_seed=7)  # other initial weights, SN vectors, averages
    make_checkpoint(resumed, epoch).restore(
        tf.train.latest_checkpoint(str(run / "checkpoints"))).assert_existing_objects_matched()
    assert int(resumed.step.numpy()) == 1
    resumed_logs = [step(resumed, *batch) for batch in batches[1:]]
    for want, got in zip(full_logs[1:], resumed_logs):
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    for x, y in zip(full.weights, resumed.weights):  # nets and SN u, v
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-6, err_msg=x.path)
    for x, y in zip(full.ema.averages, resumed.ema.averages):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-7)
    # Restored for inference: every generator net holds its average, not its last weights.
    restored, _ = restore_run(str(run))
    for average, v in zip(part.ema.averages, restored.group_variables("g")):
        np.testing.assert_allclose(v.numpy(), average.numpy(), rtol=1e-6)
    assert any(not np.allclose(v.numpy(), raw.numpy()) for v, raw in
               zip(restored.enc_s_A.trainable_variables, part.enc_s_A.trainable_variables))


# -- distribution ---------------------------------------------------------------------------


def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    """One step on 2 replicas of 1 image each equals one step on the batch of 2 (run eagerly:
    the step is the same code as in `fit`, and tracing it twice would take most of a minute)."""
    a, b = domain(20), domain(21)
    sgd = lambda: keras.optimizers.SGD(0.1)  # Adam's first step would hide a 2x loss scale
    keras.utils.set_random_seed(1)
    single = MUNIT(**TINY)
    single.compile(g_optimizer=sgd(), d_optimizer=sgd())
    single.build_for_size(SIZE, SIZE)
    init = [w.numpy() for w in single.weights]
    with mirrored_strategy.scope():
        mirrored = MUNIT(**TINY)
        mirrored.compile(g_optimizer=sgd(), d_optimizer=sgd())
        mirrored.build_for_size(SIZE, SIZE)
    mirrored.set_weights(init)
    logs_single = step(single, a, b)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((a, b)))))
    assert [x.shape[0] for x in mirrored_strategy.experimental_local_results(batch[0])] == [1, 1]
    out = mirrored_strategy.run(mirrored.train_step, args=(batch,))
    # Each replica's trackers hold its own example's values: their mean is the batch's.
    logs_mirrored = {k: float(np.mean(mirrored_strategy.experimental_local_results(v)))
                     for k, v in out.items()}
    moved = 0.0
    for x, y, w0 in zip(single.weights, mirrored.weights, init):
        # atol: conv biases before an instance norm get a gradient that is 0 up to rounding.
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)
        moved = max(moved, float(np.abs(x.numpy() - w0).max()))
    assert moved > 1e-2
    for key in ("g_loss", "d_loss", "recon_s_A", "adv_B"):
        np.testing.assert_allclose(logs_mirrored[key], logs_single[key], rtol=1e-5)


# -- learning -------------------------------------------------------------------------------

LEARNING_STEPS = 100


@pytest.mark.slow
def test_munit_learns_to_decolourise_from_unpaired_data(tmp_path):
    """Unpaired colour -> gray on the sample set (tests/test_learning.py's CycleGAN task),
    LEARNING_STEPS steps at 32 px, held-out colour crops. Measured with init seeds 0, 1, 2:

    - random-style translations are gray: their chroma (the std across the 3 channels of a
      pixel, averaged) falls from 0.19-0.32 (untrained) and 0.36 (the colour inputs) to
      0.020-0.032;
    - reference-guided translations, with the styles of the real held-out gray crops, move
      towards those crops' colour statistics (test_learning's `colour_statistics` distance:
      0.72 untranslated, 0.46-0.91 untrained, 0.26-0.52 trained).

    What 100 steps do not give yet is the content: the reference-guided translation's L1 to
    each crop's own gray version was 0.30-0.38, against 0.33 for the colour crop itself
    (measured, not asserted); CycleGAN's learning test needs 400 steps for that, more than
    this file's time budget.
    """
    from learning import assert_learned, identity
    from tfi2i.data import resolve_dataset, unpaired_dataset

    def colour_statistics(images):  # as tests/test_learning.py's: 7 numbers
        pixels = np.asarray(images, np.float64).reshape(-1, 3)
        return np.concatenate([pixels.mean(0), pixels.std(0), [chroma(images)]])

    def chroma(images):
        return float(np.asarray(images, np.float64).std(axis=-1).mean())

    root = resolve_dataset("sample", cache_dir=str(tmp_path / "cache"))
    kinds = dict(unpaired=True, direction="BtoA")  # domain A: colour, domain B: gray
    val = unpaired_dataset(root, "test", crop_size=32, batch_size=8, training=False, **kinds)
    colour = tf.concat([a for a, _ in val], 0)
    gray = tf.concat([b for _, b in val], 0)
    target = colour_statistics(gray)

    def guided(model):  # G_B(E^c_A(colour), E^s_B(gray)): the reference's styles
        style = model.style_encoders["BtoA"](gray)
        return model.code_generators["BtoA"]([colour, style]).numpy()

    def distance(images):
        return float(np.linalg.norm(colour_statistics(images) - target))

    keras.utils.set_random_seed(0)
    model = MUNIT(**TINY, direction="BtoA")
    model.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    model.build_for_size(32, 32)
    grayness = {"untrained": chroma(model.translate(colour)), "identity": chroma(identity(colour))}
    scores = {"untrained": distance(guided(model)), "identity": distance(colour)}
    train = unpaired_dataset(root, "train", load_size=36, crop_size=32, batch_size=1, seed=0,
                             epochs=4, **kinds).take(LEARNING_STEPS)
    model.fit(train, verbose=0)
    grayness["trained"] = chroma(model.translate(colour))
    scores["trained"] = distance(guided(model))
    assert_learned(f"held-out chroma of random-style translations after {LEARNING_STEPS} "
                   "steps", grayness, untrained=0.3, identity=0.3)
    assert_learned(f"held-out colour-statistics distance of reference-guided translations "
                   f"after {LEARNING_STEPS} steps", scores, identity=0.8)
