"""UNIT: the reference nets and settings, the shared blocks, each loss term and weight, the
update order (D first), who trains, fit/validation/samples, one output per input, the
config round trip, exact resume, MirroredStrategy, and a small learning test."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import smooth_domain
from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS, UNIT

SIZE = 16
# 2 scales of 3 layers take 16 px images (the default 3 x 4 need 64).
TINY = dict(ngf=8, ndf=8, n_res=2, n_shared=1, num_scales=2, n_layer=3)


def domain(seed, n=2, size=SIZE, channels=3):
    """n smooth images in [-1, 1], float32 [n, size, size, channels]."""
    return smooth_domain(seed, n, size, channels)


def make(d_lr=0.0, g_lr=0.0, init_seed=0, size=SIZE, weight_decay=0.0, **options):
    """A tiny UNIT compiled with plain SGD (a learning rate of 0 freezes a group)."""
    keras.utils.set_random_seed(init_seed)
    model = UNIT(**{**TINY, **options})
    model.compile(d_optimizer=keras.optimizers.SGD(d_lr), g_optimizer=keras.optimizers.SGD(g_lr),
                  weight_decay=weight_decay)
    model.build_for_size(size, size)
    return model


def step(model, a, b):
    """One training step, eagerly; returns this step's logs as floats."""
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def ids(variables):
    return {id(v) for v in variables}


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def moved(variables, before):
    return [not np.array_equal(x, v.numpy()) for x, v in zip(before, variables)]


def count(net):
    return int(sum(np.prod(w.shape) for w in net.trainable_weights))


# Hand-written terms, in NumPy, independent of tfi2i.losses.
def np_mean(x):
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], -1).mean(axis=1)


def l1(x, y):
    return np_mean(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))


def lsgan(D, images, target):
    """LSGAN of a multi-scale D: per example, the sum over scales of the mean squared error."""
    return sum(np_mean((np.asarray(out, np.float64) - target) ** 2) for out in D(images))


# -- the nets and the settings --------------------------------------------------------------


def test_reference_nets_settings_and_registration():
    model = UNIT()
    hp = model.hp
    assert (hp.ngf, hp.ndf, hp.n_downsample, hp.n_res, hp.n_shared, hp.num_scales,
            hp.n_layer, hp.gan_mode) == (64, 64, 2, 4, 1, 3, 4, "lsgan")
    assert (hp.lambda_gan, hp.lambda_recon, hp.lambda_kl, hp.lambda_cycle,
            hp.lambda_cycle_kl) == (1.0, 10.0, 0.01, 10.0, 0.01)
    assert METHODS["unit"] is UNIT and model.paired is False and model.bidirectional
    assert model.optimizer_groups == ("d", "g")  # the reference's dis_update, then gen_update
    assert model.latent_dim == 0 and model.code_generators == {} and model.style_encoders == {}
    model.build_for_size(64, 64)  # full-size nets, small images: nothing is trained
    # By hand (the 2018 code's VAEGen and MsImageDis, dim 64): encoder c7s1-64 9,472 + down
    # 131,200 + 524,544 + 4 res blocks x 1,180,160 (the last one the shared block); decoder
    # 4 x 1,180,160 (the first shared) + up 819,328 + 256 (layer norm) + 204,864 + 128 +
    # c7s1-3 9,411; D 3 scales x (3,136 + 131,200 + 524,544 + 2,097,664 + 513).
    assert count(model.enc_A) == count(model.enc_B) == 5_385_856
    assert count(model.dec_A) == count(model.dec_B) == 5_754_627
    assert count(model.enc_shared) == count(model.dec_shared) == 1_180_160
    assert count(model.D_A) == count(model.D_B) == 8_271_171
    assert len(model.D_A.outputs) == 3
    assert model.size_divisor == 4

    config = resolve_config("unit", None)
    assert (config["lr"], config["beta1"], config["beta2"], config["weight_decay"],
            config["batch_size"], config["lr_policy"], config["lr_decay_steps"],
            config["lr_decay_gamma"], config["load_size"], config["crop_size"]) == (
        1e-4, 0.5, 0.999, 1e-4, 1, "step", 100_000, 0.5, 256, 256)
    from tfi2i.training.schedules import make_schedule
    schedule = make_schedule(config["lr_policy"], config["lr"], 7, config["n_epochs"],
                             config["n_epochs_decay"], config["lr_decay_iters"],
                             config["lr_decay_steps"], config["lr_decay_gamma"])
    rates = [float(schedule(s)) for s in (0, 99_999, 100_000, 199_999, 200_000)]
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5], rtol=1e-6)


def test_option_errors_are_clear():
    with pytest.raises(UserError, match="gan_mode=wgangp does not fit unit"):
        UNIT(gan_mode="wgangp")
    with pytest.raises(UserError, match="n_shared=5 is more than the --n_res=4"):
        UNIT(n_shared=5)
    with pytest.raises(UserError, match="crop_size=66 .* multiples of 4: use --crop_size=64"):
        resolve_config("unit", None, {"crop_size": 66})
    with pytest.raises(UserError, match="crop_size=32 is too small .* need 64 px"):
        resolve_config("unit", None, {"crop_size": 32, "load_size": 36})
    assert resolve_config("unit", None, {"crop_size": 32, "load_size": 36, "num_scales": 2})
    with pytest.raises(UserError, match="at least 16 px, got 8x8"):
        UNIT(**TINY).build_for_size(8, 8)


@pytest.mark.parametrize("n_shared", [1, 0])
def test_shared_blocks_are_one_set_of_variables(n_shared):
    """The shared blocks are the only variables the two domains' nets have in common, and a
    gradient step on a loss of domain A alone changes what domain B's encoder computes."""
    model = make(g_lr=0.5, n_shared=n_shared)
    common_enc = ids(model.enc_A.trainable_variables) & ids(model.enc_B.trainable_variables)
    common_dec = ids(model.dec_A.trainable_variables) & ids(model.dec_B.trainable_variables)
    if n_shared:
        assert common_enc == ids(model.enc_shared.trainable_variables) and common_enc
        assert common_dec == ids(model.dec_shared.trainable_variables) and common_dec
        assert not common_enc & common_dec
        # One residual block each: 2 convs with kernels and biases.
        assert len(model.enc_shared.trainable_variables) == 4
    else:
        assert model.enc_shared is None and not common_enc and not common_dec
    g = model.group_variables("g")
    assert len(g) == len(ids(g))  # each shared variable once in the optimizer's list

    a, b = domain(1), domain(2)
    code_B = model.enc_B(b).numpy()
    own_B = [v for v in model.enc_B.trainable_variables if id(v) not in common_enc]
    own_before = snapshot(own_B)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model.dec_A(model.enc_A(a)) - a))
    model.apply("g", tape, loss)
    assert not any(moved(own_B, own_before))       # enc_B's own layers: no gradient
    change = float(np.abs(model.enc_B(b).numpy() - code_B).max())
    if n_shared:
        assert change > 1e-3, change                 # through the shared block
    else:
        assert change == 0.0


# -- the objective ----------------------------------------------------------------------------


WEIGHTS = dict(lambda_gan=2.0, lambda_recon=3.0, lambda_kl=0.5, lambda_cycle=5.0,
               lambda_cycle_kl=0.25)


def test_each_generator_term_and_weight_by_hand():
    a, b = domain(3), domain(4)
    model = make(**WEIGHTS)
    noise = model.step_noise(a, b)
    # The draws: N(0, 1), one per stream, shaped like the codes (8 * 4 channels at 1/4 size).
    assert set(noise) == {"d_A", "d_B", "z_A", "z_B", "z_A_cycle", "z_B_cycle"}
    for value in noise.values():
        assert value.shape == (2, SIZE // 4, SIZE // 4, 32)
    everything = np.concatenate([v.numpy().ravel() for v in noise.values()])
    assert abs(everything.mean()) < 0.05 and abs(everything.std() - 1.0) < 0.05
    assert not np.allclose(noise["z_A"], noise["d_A"])

    n = {k: v.numpy() for k, v in noise.items()}
    h_A, h_B = model.enc_A(a).numpy(), model.enc_B(b).numpy()
    z_A, z_B = h_A + n["z_A"], h_B + n["z_B"]
    fake_A, fake_B = model.dec_A(z_B).numpy(), model.dec_B(z_A).numpy()
    h_A_cycle, h_B_cycle = model.enc_B(fake_B).numpy(), model.enc_A(fake_A).numpy()
    expected = {
        "gan_A": lsgan(model.D_A, fake_A, 1.0),
        "gan_B": lsgan(model.D_B, fake_B, 1.0),
        "recon_A": l1(model.dec_A(z_A), a),
        "recon_B": l1(model.dec_B(z_B), b),
        "kl_A": np_mean(h_A ** 2),            # of the mean code, not of z
        "kl_B": np_mean(h_B ** 2),
        "cycle_A": l1(model.dec_A(h_A_cycle + n["z_A_cycle"]), a),
        "cycle_B": l1(model.dec_B(h_B_cycle + n["z_B_cycle"]), b),
        "kl_cycle_A": np_mean(h_A_cycle ** 2),
        "kl_cycle_B": np_mean(h_B_cycle ** 2),
    }
    e = expected
    expected["g_loss"] = (2.0 * (e["gan_A"] + e["gan_B"]) + 3.0 * (e["recon_A"] + e["recon_B"])
                          + 0.5 * (e["kl_A"] + e["kl_B"]) + 5.0 * (e["cycle_A"] + e["cycle_B"])
                          + 0.25 * (e["kl_cycle_A"] + e["kl_cycle_B"]))
    terms, _ = model.generator_losses(a, b, noise)
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name].numpy(), value, rtol=2e-5, err_msg=name)
        assert value.min() > 1e-4, name
    # The noise is in the reconstruction: without it the term differs.
    zero = {k: tf.zeros_like(v) for k, v in noise.items()}
    assert abs(float(model.generator_losses(a, b, zero)[0]["recon_A"][0])
               - expected["recon_A"][0]) > 1e-4

    # Without the cycle weight the cycle is neither in the loss nor computed.
    model.hp.lambda_cycle = 0.0
    try:
        terms, images = model.generator_losses(a, b, noise)
    finally:
        model.hp.lambda_cycle = 5.0
    assert "cycle_A" not in images and float(tf.reduce_max(terms["cycle_A"])) == 0.0
    np.testing.assert_allclose(terms["g_loss"].numpy(),
                               expected["g_loss"] - 5.0 * (e["cycle_A"] + e["cycle_B"]),
                               rtol=2e-5)


def test_D_steps_first_then_G_against_the_updated_D():
    """One train step: D's terms are those of the D before the step, on fakes made with the
    step's D noise (not halved, times lambda_gan); then G's adversarial terms are those of
    the UPDATED D (G is frozen here, so they can be recomputed after the step)."""
    a, b = domain(5), domain(6)
    model = make(d_lr=2.0, lambda_gan=2.0)
    noise = model.step_noise(a, b)
    n = {k: v.numpy() for k, v in noise.items()}
    fake_A = model.dec_A(model.enc_B(b).numpy() + n["d_B"]).numpy()
    fake_B = model.dec_B(model.enc_A(a).numpy() + n["d_A"]).numpy()
    d_A = lsgan(model.D_A, a, 1.0) + lsgan(model.D_A, fake_A, 0.0)
    d_B = lsgan(model.D_B, b, 1.0) + lsgan(model.D_B, fake_B, 0.0)
    g_old, _ = model.generator_losses(a, b, noise)
    logs = step(model, a, b)
    np.testing.assert_allclose(logs["D_A"], d_A.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["D_B"], d_B.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["d_loss"], 2.0 * (d_A.mean() + d_B.mean()), rtol=1e-5)
    g_new, _ = model.generator_losses(a, b, noise)
    for name in ("gan_A", "gan_B", "g_loss", "recon_A", "cycle_B", "kl_cycle_A"):
        np.testing.assert_allclose(logs[name], float(tf.reduce_mean(g_new[name])), rtol=1e-5,
                                   err_msg=name)
    # The D step moved D's judgement enough for the check above to tell the orders apart.
    assert abs(float(tf.reduce_mean(g_old["gan_A"])) - logs["gan_A"]) > 1e-3
    assert [int(o.iterations.numpy()) for o in (model.d_optimizer, model.g_optimizer)] == [1, 1]
    assert int(model.step.numpy()) == 1


def test_each_step_updates_only_its_own_group():
    model = make(g_lr=0.1)  # D's learning rate 0: only the G step could move D
    g, d = model.group_variables("g"), model.group_variables("d")
    assert not ids(g) & ids(d)
    assert ids(g) | ids(d) == ids(model.trainable_variables)
    assert ids(d) == ids(model.D_A.trainable_variables + model.D_B.trainable_variables)
    a, b = domain(7), domain(8)
    before = snapshot(g), snapshot(d)
    step(model, a, b)
    # Every G variable moves (the shared blocks included), no D variable.
    assert all(moved(g, before[0])) and not any(moved(d, before[1]))

    model = make(d_lr=0.1)  # G's learning rate 0: only the D step could move G
    g, d = model.group_variables("g"), model.group_variables("d")
    before = snapshot(g), snapshot(d)
    step(model, a, b)
    assert all(moved(d, before[1])) and not any(moved(g, before[0]))


def test_the_reference_nsgan_trains():
    model = make(d_lr=0.01, g_lr=0.01, gan_mode="vanilla")
    logs = step(model, domain(1), domain(2))
    assert set(logs) == set(model.train_names) and all(np.isfinite(v) for v in logs.values())


# -- fit, translation, hooks, checkpoints --------------------------------------------------------


def test_fit_validation_samples_and_one_output_per_input():
    keras.utils.set_random_seed(0)
    model = UNIT(**TINY, direction="BtoA")
    adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5)
    model.compile(d_optimizer=adam(), g_optimizer=adam(), weight_decay=1e-4)
    model.build_for_size(SIZE, SIZE)
    model.run_eagerly = True  # the arithmetic; tracing costs more (the learning test traces)
    before = {n: snapshot(getattr(model, n).trainable_variables)
              for n in ("enc_A", "enc_B", "dec_A", "dec_B", "D_A", "D_B")}
    train = tf.data.Dataset.from_tensor_slices((domain(10, 4), domain(11, 4))).batch(2)
    val_a, val_b = domain(12), domain(13)
    history = model.fit(train, validation_data=tf.data.Dataset.from_tensors((val_a, val_b)),
                        verbose=0)
    assert int(model.step.numpy()) == 2
    for name, values in before.items():
        assert all(moved(getattr(model, name).trainable_variables, values)), name
    for key in model.train_names + ["val_" + n for n in model.test_names]:
        assert np.isfinite(history.history[key][-1]), key

    # Translation: the other domain's decoder on the mean code, no noise, so one output
    # per input (UNIT's diversity is zero); generators named by the data's direction.
    assert list(model.generators) == ["BtoA", "AtoB"]
    assert model.generators["BtoA"] is model.G_AtoB and model.generators["AtoB"] is model.G_BtoA
    first, second = model.translate(val_a).numpy(), model.translate(val_a).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, model.dec_B(model.enc_A(val_a)).numpy(), atol=1e-6)
    np.testing.assert_allclose(model.G_BtoA(val_b).numpy(),
                               model.dec_A(model.enc_B(val_b)).numpy(), atol=1e-6)
    fake_B, fake_A = first, model.G_BtoA(val_b).numpy()
    expected = {"val_cycle_A": l1(model.G_BtoA(fake_B), val_a).mean(),
                "val_cycle_B": l1(model.G_AtoB(fake_A), val_b).mean(),
                "val_recon_A": l1(model.dec_A(model.enc_A(val_a)), val_a).mean(),
                "val_recon_B": l1(model.dec_B(model.enc_B(val_b)), val_b).mean(),
                "val_l1_AtoB": l1(fake_B, val_a).mean(), "val_l1_BtoA": l1(fake_A, val_b).mean()}
    for key, value in expected.items():
        np.testing.assert_allclose(history.history[key][-1], value, rtol=1e-4, err_msg=key)

    # Samples: A rows then B rows, real | translated | cycled | reconstructed.
    grid = model.sample_images((val_a, val_b)).numpy()
    assert grid.shape == (4, SIZE, 4 * SIZE, 3)
    np.testing.assert_allclose(grid[0, :, :SIZE], val_a[0].numpy())
    np.testing.assert_allclose(grid[0, :, SIZE:2 * SIZE], fake_B[0], atol=1e-6)
    np.testing.assert_allclose(grid[2, :, SIZE:2 * SIZE], fake_A[0], atol=1e-6)


def test_get_config_round_trip():
    model = UNIT(**TINY, lambda_cycle_kl=0.5, gan_mode="hinge", direction="BtoA", seed=3)
    again = UNIT.from_config(model.get_config())
    assert again.hparams == model.hparams and again.hp.lambda_cycle_kl == 0.5
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, UNIT) and restored.hparams == model.hparams


def test_resume_continues_the_same_run(tmp_path):
    """A step, a checkpoint, a fresh model of other weights restored from it: the next step
    is the same (the noise is drawn from the step count, the optimizers' moments and the weight
    decay are restored)."""
    from tfi2i.training.checkpoints import make_checkpoint

    a, b = domain(14), domain(15)

    def fresh(init_seed):
        keras.utils.set_random_seed(init_seed)
        model = UNIT(**TINY)
        adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5)
        model.compile(d_optimizer=adam(), g_optimizer=adam(), weight_decay=1e-4)
        model.build_for_size(SIZE, SIZE)
        return model

    model = fresh(0)
    noise_0 = model.step_noise(a, b)["z_A"].numpy()
    step(model, a, b)
    path = make_checkpoint(model, tf.Variable(0, dtype=tf.int64)).save(str(tmp_path / "ckpt"))
    again = fresh(1)
    make_checkpoint(again, tf.Variable(0, dtype=tf.int64)).restore(
        path).assert_existing_objects_matched()
    assert int(again.step.numpy()) == 1
    for x, y in zip(model.weights, again.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
    first, second = step(model, a, b), step(again, a, b)
    assert first == pytest.approx(second, rel=1e-6)
    for x, y in zip(model.weights, again.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=x.path)
    # The noise is the step's: step 0's and step 2's differ.
    assert np.abs(again.step_noise(a, b)["z_A"].numpy() - noise_0).max() > 1.0


def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    a, b = domain(20), domain(21)
    data = tf.data.Dataset.from_tensors((a, b))
    # Plain SGD: a wrong loss scale would show in the update (Adam's first step hides it).
    sgd = lambda: keras.optimizers.SGD(0.1)
    keras.utils.set_random_seed(1)
    single = UNIT(**TINY)
    single.compile(d_optimizer=sgd(), g_optimizer=sgd(), weight_decay=1e-4)
    single.build_for_size(SIZE, SIZE)
    init = [w.numpy() for w in single.weights]
    with mirrored_strategy.scope():
        mirrored = UNIT(**TINY)
        mirrored.compile(d_optimizer=sgd(), g_optimizer=sgd(), weight_decay=1e-4)
        mirrored.build_for_size(SIZE, SIZE)
    mirrored.set_weights(init)
    single.run_eagerly = mirrored.run_eagerly = True  # the arithmetic; tracing costs more
    logs_single = single.fit(data, validation_data=data, verbose=0).history
    logs_mirrored = mirrored.fit(data, validation_data=data, verbose=0).history
    change = 0.0
    for x, y, w0 in zip(single.weights, mirrored.weights, init):
        # atol: conv biases before an instance norm get a gradient that is 0 up to rounding.
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)
        change = max(change, float(np.abs(x.numpy() - w0).max()))
    assert change > 1e-2
    for key in ("g_loss", "d_loss", "gan_A", "recon_B", "kl_cycle_A", "val_cycle_A"):
        np.testing.assert_allclose(logs_mirrored[key][0], logs_single[key][0], rtol=1e-5,
                                   err_msg=key)


# -- learning -------------------------------------------------------------------------------


def blobs(rng, n, size=16):
    """n images of one yellow Gaussian blob (sigma 2.5 px) at a random place on black."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = rng.uniform(3, size - 3, (n, 2))
    blob = np.exp(-((yy[None] - centre[:, 0, None, None]) ** 2
                    + (xx[None] - centre[:, 1, None, None]) ** 2) / (2 * 2.5 ** 2))
    return (-1 + blob[..., None] * (np.array([1.0, 0.8, -0.6]) + 1)).astype(np.float32)


@pytest.mark.slow
def test_learns_to_translate_between_unpaired_domains():
    """Unpaired blob images (A) and negatives of other blob images (B), 16 px: the held-out
    translation of an image is closer to ITS negative than the untrained model's output, the
    untranslated input and the negatives of the other held-out images."""
    from learning import assert_learned, heldout_l1

    rng = np.random.default_rng(0)
    size = 16
    train_a, train_b, held = blobs(rng, 256, size), -blobs(rng, 256, size), blobs(rng, 16, size)
    val = [(tf.constant(held), tf.constant(-held))]
    shuffled = [(tf.constant(held), tf.constant(-np.roll(held, 1, axis=0)))]
    keras.utils.set_random_seed(0)
    model = UNIT(ngf=8, ndf=8, n_res=2, n_shared=1, num_scales=2, n_layer=3)
    adam = lambda: keras.optimizers.Adam(2e-3, beta_1=0.5)
    model.compile(d_optimizer=adam(), g_optimizer=adam())
    model.build_for_size(size, size)
    scores = {"untrained": heldout_l1(model.translate, val),
              "untranslated": heldout_l1(lambda x: x, val)}
    data = tf.data.Dataset.from_tensor_slices((train_a, train_b)).shuffle(256, seed=0)
    model.fit(data.repeat().batch(8).take(80), verbose=0)
    scores["trained"] = heldout_l1(model.translate, val)
    scores["others' negatives"] = heldout_l1(model.translate, shuffled)
    assert_learned("held-out L1 to the input's negative", scores, untrained=0.5,
                   untranslated=0.3, **{"others' negatives": 0.8})

