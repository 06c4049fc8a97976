"""CycleGAN: the reference nets, each loss term and its weight, the update order,
the image pools, fit, checkpoints, XLA and MirroredStrategy."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS, CycleGAN

from conftest import smooth_domain

TINY = dict(netG="resnet_6blocks", ngf=8, ndf=8)
SIZE = 32


def domain(seed, n=2, size=SIZE, channels=3):
    """n smooth images in [-1, 1], float32 [n, size, size, channels]."""
    return smooth_domain(seed, n, size, channels)


def make(g_lr=0.0, d_lr=0.0, size=SIZE, init_seed=0, **options):
    """A tiny CycleGAN, compiled with plain SGD (so a learning rate of 0 freezes a group)."""
    keras.utils.set_random_seed(init_seed)
    model = CycleGAN(**{**TINY, **options})
    model.compile(g_optimizer=keras.optimizers.SGD(g_lr),
                  d_optimizer=keras.optimizers.SGD(d_lr))
    model.build_for_size(size, size)
    return model


def step(model, a, b):
    """One training step, eagerly; returns its logs as floats (this step's values only)."""
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def snapshot(net):
    return [w.numpy().copy() for w in net.trainable_weights]


def changed(net, before):
    return any(not np.array_equal(w0, w.numpy()) for w0, w in zip(before, net.trainable_weights))


# Hand-written terms, in NumPy, independent of tfi2i.losses.
def np_mean(x):
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], -1).mean(axis=1)


def lsgan(logits, target):
    return np_mean((np.asarray(logits, np.float64) - target) ** 2)


def l1(x, y):
    return np_mean(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))


def count(net):
    return int(sum(np.prod(w.shape) for w in net.trainable_weights))


# -- the nets and the options --------------------------------------------------


def test_defaults_and_reference_parameter_counts():
    model = CycleGAN()
    hp = model.hp
    assert (hp.netG, hp.norm, hp.use_dropout, hp.gan_mode, hp.netD) == (
        "resnet_9blocks", "instance", False, "lsgan", "basic")
    assert (hp.lambda_A, hp.lambda_B, hp.lambda_identity, hp.pool_size) == (10.0, 10.0, 0.5, 50)
    assert model.paired is False and model.optimizer_groups == ("g", "d")
    assert METHODS["cyclegan"] is CycleGAN
    model.build_for_size(64, 64)  # full-size nets, small images: nothing is trained
    # Reference counts (METHODS.md): ResNet 9 blocks + instance norm, PatchGAN on 3 channels.
    assert count(model.G_A) == count(model.G_B) == 11_378_179
    assert count(model.D_A) == count(model.D_B) == 2_764_737
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.G_A.layers)
    assert model.size_divisor == 4

    six = CycleGAN(netG="resnet_6blocks")
    assert count(six.G_A) == 7_837_699
    out = six.G_A(tf.zeros([1, 128, 128, 3]))
    assert out.shape == (1, 128, 128, 3)


def test_option_errors_are_clear():
    with pytest.raises(UserError, match="gan_mode=wgan"):
        CycleGAN(gan_mode="wgan")
    with pytest.raises(UserError, match="lambda_identity"):
        CycleGAN(input_nc=1, output_nc=3)
    with pytest.raises(UserError, match="lambda_identity"):
        resolve_config("cyclegan", None, {"input_nc": 1})
    with pytest.raises(UserError, match="pool_size"):
        CycleGAN(pool_size=-1)
    assert CycleGAN(input_nc=1, output_nc=3, lambda_identity=0).hp.input_nc == 1
    # The pools hold fixed-size images: a mode with varying sizes is refused up front.
    with pytest.raises(UserError, match="pool_size"):
        resolve_config("cyclegan", None, {"preprocess": "scale_width"})
    assert resolve_config("cyclegan", None, {"preprocess": "none", "pool_size": 0})


def test_presets_and_run_config():
    config = resolve_config("cyclegan", "horse2zebra")
    assert (config["netG"], config["norm"], config["gan_mode"], config["crop_size"],
            config["load_size"], config["batch_size"], config["lr"], config["beta1"],
            config["n_epochs"], config["n_epochs_decay"]) == (
        "resnet_9blocks", "instance", "lsgan", 256, 286, 1, 2e-4, 0.5, 100, 100)
    for name in ("cyclegan/cityscapes", "cityscapes"):  # the paper's 128 px setting
        city = resolve_config("cyclegan", name)
        assert (city["crop_size"], city["netG"]) == (128, "resnet_6blocks")
    model = CycleGAN.from_run_config(dict(config, ngf=8, ndf=8, pool_size=7, seed=3))
    assert model.hp.pool_size == 7 and model.fake_A_pool.pool_size == 7
    # Each pool draws from its own seed, derived from the run's.
    assert {model.fake_A_pool.seed, model.fake_B_pool.seed} == {6, 7}


def test_ablation_presets_layer_over_the_dataset_and_under_flags(tmp_path):
    from tfi2i.training.trainer import default_run_dir
    config = resolve_config("cyclegan", "cityscapes", {"preset": "gan_forward_cycle"})
    assert (config["lambda_A"], config["lambda_B"], config["lambda_identity"]) == (10.0, 0.0, 0.0)
    assert config["crop_size"] == 128                       # the dataset's preset still applies
    assert config["preset"] == "gan_forward_cycle"          # recorded in config.json
    assert default_run_dir(config) == "runs/cyclegan_gan_forward_cycle_cityscapes"
    flags = resolve_config("cyclegan", None, {"preset": "gan_only", "lambda_identity": 0.5})
    assert (flags["lambda_A"], flags["lambda_identity"]) == (0.0, 0.5)
    with pytest.raises(UserError, match="not a preset of cyclegan; its presets: cycle_only"):
        resolve_config("cyclegan", None, {"preset": "gan_alone"})
    with pytest.raises(UserError, match="not a preset of pix2pix; it has none"):
        resolve_config("pix2pix", None, {"preset": "gan_only"})


def test_cycle_alone_has_no_adversarial_term_and_leaves_D_untrained():
    model = make(g_lr=0.1, d_lr=0.1, lambda_gan=0.0, lambda_identity=0.0)
    a, b = domain(0), domain(1)
    d0 = [v.numpy().copy() for v in model.group_variables("d")]
    logs = step(model, a, b)
    assert logs["g_loss"] == pytest.approx(10 * logs["cycle_A"] + 10 * logs["cycle_B"], rel=1e-5)
    assert int(model.d_optimizer.iterations.numpy()) == 0
    assert all(np.array_equal(x, v.numpy()) for x, v in zip(d0, model.group_variables("d")))


def test_get_config_round_trip():
    model = CycleGAN(**TINY, lambda_A=3.0, pool_size=5, direction="BtoA", gan_mode="hinge")
    again = CycleGAN.from_config(model.get_config())
    assert again.hparams == model.hparams and again.hp.lambda_A == 3.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, CycleGAN) and restored.hparams == model.hparams


# -- the objective ----------------------------------------------------------------


def test_generator_terms_weights_and_that_G_steps_before_D():
    a, b = domain(1), domain(2)
    # D learns fast: if D were updated before the G step (pix2pix's order),
    # the step's G terms would not be the ones computed here beforehand.
    model = make(g_lr=0.1, d_lr=5.0, lambda_identity=0.5)
    fake_B, fake_A = model.G_A(a).numpy(), model.G_B(b).numpy()
    expected = {
        "G_A": lsgan(model.D_B(fake_B), 1.0),
        "G_B": lsgan(model.D_A(fake_A), 1.0),
        "cycle_A": l1(model.G_B(fake_B), a),
        "cycle_B": l1(model.G_A(fake_A), b),
        "idt_A": l1(model.G_A(b), b),  # G_A leaves a B image as it is
        "idt_B": l1(model.G_B(a), a),
    }
    expected["g_loss"] = (expected["G_A"] + expected["G_B"] + 10 * expected["cycle_A"]
                          + 10 * expected["cycle_B"] + 0.5 * 10 * expected["idt_A"]
                          + 0.5 * 10 * expected["idt_B"])
    terms, _ = model.generator_losses(a, b)
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name].numpy(), value, rtol=1e-5, err_msg=name)
        assert value.min() > 0, name
    d_before = snapshot(model.D_A) + snapshot(model.D_B)
    logs = step(model, a, b)
    for name, value in expected.items():
        np.testing.assert_allclose(logs[name], value.mean(), rtol=1e-5, err_msg=name)
    assert changed(model.D_A, d_before[:len(model.D_A.trainable_weights)])

    # lambda_A weighs the A cycle and, times lambda_identity, G_B's identity term.
    same = make(lambda_identity=0.5)
    heavier = make(lambda_identity=0.5, lambda_A=20.0)
    heavier.set_weights(same.get_weights())
    base, _ = same.generator_losses(a, b)
    more, _ = heavier.generator_losses(a, b)
    np.testing.assert_allclose(
        (more["g_loss"] - base["g_loss"]).numpy(),
        (10.0 * base["cycle_A"] + 0.5 * 10.0 * base["idt_B"]).numpy(), rtol=1e-4)


def test_identity_off_is_zero_and_out_of_the_gradient():
    a, b = domain(1), domain(2)
    model = make(lambda_identity=0.0)
    terms, images = model.generator_losses(a, b)
    assert "idt_A" not in images and "idt_B" not in images  # G_A(b) is not even computed
    np.testing.assert_allclose(terms["g_loss"].numpy(), (
        terms["G_A"] + terms["G_B"] + 10 * terms["cycle_A"] + 10 * terms["cycle_B"]).numpy(),
        rtol=1e-6)
    logs = step(model, a, b)
    assert logs["idt_A"] == logs["idt_B"] == 0.0

    # G's gradient without identity differs from the one with it (same weights):
    # so the comparison above would see an identity term left in.
    on = make(lambda_identity=0.5)
    on.set_weights(model.get_weights())
    grads = []
    for m in (model, on):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(m.generator_losses(a, b)[0]["g_loss"])
        grads.append(tape.gradient(loss, m.group_variables("g")))
    assert any(not np.allclose(x.numpy(), y.numpy()) for x, y in zip(*grads))


def test_D_losses_halved_on_fakes_made_before_the_G_update():
    a, b = domain(3), domain(4)
    model = make(g_lr=0.5, d_lr=0.1, pool_size=0)
    fake_B, fake_A = model.G_A(a), model.G_B(b)
    d_A = 0.5 * (lsgan(model.D_A(a), 1.0) + lsgan(model.D_A(fake_A), 0.0))
    d_B = 0.5 * (lsgan(model.D_B(b), 1.0) + lsgan(model.D_B(fake_B), 0.0))
    g_before = snapshot(model.G_A)
    logs = step(model, a, b)
    assert changed(model.G_A, g_before)
    np.testing.assert_allclose(logs["D_A"], d_A.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["D_B"], d_B.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["d_loss"], d_A.mean() + d_B.mean(), rtol=1e-5)
    # The G update moved the fakes enough for the check above to tell them apart.
    moved = 0.5 * (lsgan(model.D_B(b), 1.0) + lsgan(model.D_B(model.G_A(a)), 0.0))
    assert abs(moved.mean() - d_B.mean()) > 1e-4


def test_D_sees_pooled_fakes():
    a, b = domain(5, n=1), domain(6, n=1)
    model = make(pool_size=2)  # learning rates 0: the current fakes stay the same
    # Fill both pools with flat images the generators never make.
    for pool, nc in ((model.fake_A_pool, 3), (model.fake_B_pool, 3)):
        for value in (0.7, -0.4):
            pool.query(tf.fill([1, SIZE, SIZE, nc], value))
    fake_B, fake_A = model.G_A(a).numpy(), model.G_B(b).numpy()
    seen = {"swap": 0, "keep": 0}
    for _ in range(30):
        expected, swaps = {}, {}
        for name, pool, D, real, fake in (("D_A", model.fake_A_pool, model.D_A, a, fake_A),
                                          ("D_B", model.fake_B_pool, model.D_B, b, fake_B)):
            u = pool.draw(1).numpy()[0]  # the draw the step's query will use
            stored = pool.state()["images"][0].numpy()
            index = min(int(np.float32(u[1]) * np.float32(2)), 1)
            swaps[name] = index if u[0] > 0.5 else None
            shown = fake if swaps[name] is None else stored[index:index + 1]
            expected[name] = 0.5 * (lsgan(D(real), 1.0) + lsgan(D(shown), 0.0))
        logs = step(model, a, b)
        for name, value in expected.items():
            np.testing.assert_allclose(logs[name], value.mean(), rtol=1e-5, err_msg=name)
        if swaps["D_B"] is not None:
            # The new fake took the returned image's place.
            np.testing.assert_allclose(
                model.fake_B_pool.state()["images"][0, swaps["D_B"]].numpy(), fake_B[0])
        seen["keep" if swaps["D_B"] is None else "swap"] += 1
        if seen["swap"] and seen["keep"]:
            break
    assert seen["swap"] and seen["keep"], seen


def test_each_step_updates_only_its_own_group():
    model = make(g_lr=0.1)  # D's learning rate 0: only a G step could move D
    g = {id(v) for v in model.group_variables("g")}
    d = {id(v) for v in model.group_variables("d")}
    assert not g & d
    assert g == {id(v) for v in model.G_A.trainable_variables + model.G_B.trainable_variables}
    assert d == {id(v) for v in model.D_A.trainable_variables + model.D_B.trainable_variables}
    a, b = domain(7), domain(8)
    before = {n: snapshot(getattr(model, n)) for n in ("G_A", "G_B", "D_A", "D_B")}
    step(model, a, b)
    assert changed(model.G_A, before["G_A"]) and changed(model.G_B, before["G_B"])
    assert not changed(model.D_A, before["D_A"]) and not changed(model.D_B, before["D_B"])

    model = make(d_lr=0.1)  # G's learning rate 0: only a D step could move G
    before = {n: snapshot(getattr(model, n)) for n in ("G_A", "G_B", "D_A", "D_B")}
    step(model, a, b)
    assert changed(model.D_A, before["D_A"]) and changed(model.D_B, before["D_B"])
    assert not changed(model.G_A, before["G_A"]) and not changed(model.G_B, before["G_B"])


@pytest.mark.parametrize("gan_mode", ["vanilla", "hinge", "wgangp"])
def test_other_gan_modes_train(gan_mode):
    model = make(g_lr=0.01, d_lr=0.01, gan_mode=gan_mode, netG="unet_32")
    logs = step(model, domain(1), domain(2))
    assert all(np.isfinite(v) for v in logs.values())
    assert ("gp_A" in logs and "gp_B" in logs) == (gan_mode == "wgangp")
    assert set(model.train_names) == set(logs)


# -- fit, hooks, checkpoints ----------------------------------------------------------


def _adam():
    return keras.optimizers.Adam(2e-4, beta_1=0.5)


def test_fit_updates_all_four_networks_and_validates():
    keras.utils.set_random_seed(0)
    model = CycleGAN(**TINY, pool_size=3)
    model.compile(g_optimizer=_adam(), d_optimizer=_adam())
    model.build_for_size(SIZE, SIZE)
    nets = ("G_A", "G_B", "D_A", "D_B")
    before = {n: snapshot(getattr(model, n)) for n in nets}
    train = tf.data.Dataset.from_tensor_slices((domain(10, 4), domain(11, 4))).batch(2)
    val_a, val_b = domain(12), domain(13)
    val = tf.data.Dataset.from_tensors((val_a, val_b))
    history = model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert int(model.step.numpy()) == 4
    for name in nets:
        assert changed(getattr(model, name), before[name]), name
    for key in model.train_names + ["val_" + n for n in model.test_names]:
        assert np.isfinite(history.history[key][-1]), key
    # The validation numbers are the cycle L1s of the held-out batch.
    fake_B, fake_A = model.G_A(val_a), model.G_B(val_b)
    expected = {"val_cycle_A": l1(model.G_B(fake_B), val_a).mean(),
                "val_cycle_B": l1(model.G_A(fake_A), val_b).mean(),
                "val_l1_AtoB": l1(fake_B, val_a).mean(), "val_l1_BtoA": l1(fake_A, val_b).mean()}
    for key, value in expected.items():
        np.testing.assert_allclose(history.history[key][-1], value, rtol=1e-4, err_msg=key)
    assert expected["val_l1_AtoB"] > 0.01  # the translation is not the identity
    # 4 fakes per pool, 3 slots: full.
    assert model.fake_A_pool.state()["num_images"].numpy().tolist() == [3]

    # Samples: A rows then B rows, real | translated | reconstructed | identity.
    grid = model.sample_images((val_a, val_b)).numpy()
    assert grid.shape == (4, SIZE, 4 * SIZE, 3)
    np.testing.assert_allclose(grid[0, :, :SIZE], val_a[0].numpy())
    np.testing.assert_allclose(grid[2, :, :SIZE], val_b[0].numpy())
    np.testing.assert_allclose(grid[0, :, SIZE:2 * SIZE], fake_B[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(grid[2, :, 3 * SIZE:], model.G_A(val_b)[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_generators_are_named_by_the_data_direction(direction):
    # direction swaps the data (the dataset's B is the method's A with BtoA),
    # so G_A always translates the batch's first element, named by the direction.
    model = make(direction=direction, netG="unet_32")
    reverse = {"AtoB": "BtoA", "BtoA": "AtoB"}[direction]
    assert list(model.generators) == [direction, reverse]
    assert model.generators[direction] is model.G_A and model.generators[reverse] is model.G_B
    x = domain(1)
    np.testing.assert_allclose(model(x).numpy(), model.G_A(x).numpy())
    np.testing.assert_allclose(model.translate(x).numpy(), model.G_A(x).numpy())


def test_gray_to_rgb_domains():
    keras.utils.set_random_seed(0)
    model = CycleGAN(**TINY, input_nc=1, output_nc=3, lambda_identity=0, pool_size=2)
    model.compile(g_optimizer=_adam(), d_optimizer=_adam())
    model.build_for_size(SIZE, SIZE)
    a, b = domain(1, channels=1), domain(2)
    history = model.fit(tf.data.Dataset.from_tensors((a, b)), validation_data=
                        tf.data.Dataset.from_tensors((a, b)), verbose=0)
    assert np.isfinite(history.history["g_loss"][0]) and np.isfinite(
        history.history["val_l1_AtoB"][0])
    assert model.G_A(a).shape[-1] == 3 and model.G_B(b).shape[-1] == 1
    assert model.D_A.input_shape[-1] == 1 and model.D_B.input_shape[-1] == 3
    grid = model.sample_images((a, b))
    assert grid.shape == (4, SIZE, 3 * SIZE, 3)
    # The gray A image is shown repeated on 3 channels.
    np.testing.assert_allclose(grid[0, :, :SIZE].numpy(), np.repeat(a[0].numpy(), 3, axis=-1))


def test_pools_are_in_the_checkpoint(tmp_path):
    a, b = domain(1, n=1), domain(2, n=1)
    model = make(g_lr=0.1, d_lr=0.1, pool_size=3)
    for _ in range(5):  # fills the pools and swaps in them
        step(model, a, b)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = {n: {k: v.numpy() for k, v in getattr(model, n).state().items()}
             for n in ("fake_A_pool", "fake_B_pool")}
    assert saved["fake_B_pool"]["num_images"].tolist() == [3]
    assert saved["fake_B_pool"]["counter"].tolist() == [5]

    again = make(pool_size=3, init_seed=1)  # other weights, same run seed (pool draws)
    tf.train.Checkpoint(model=again).restore(path).assert_existing_objects_matched()
    for name, state in saved.items():
        restored = getattr(again, name).state()
        for key, value in state.items():
            np.testing.assert_array_equal(restored[key].numpy(), value, err_msg=f"{name} {key}")
    for x, y in zip(again.weights, model.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    # And the pools draw on from there: the next step's D losses agree.
    first, second = step(model, a, b), step(again, a, b)
    np.testing.assert_allclose(second["D_B"], first["D_B"], rtol=1e-6)


# -- distribution --------------------------------------------------------------------------




def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    a, b = domain(20), domain(21)
    data = tf.data.Dataset.from_tensors((a, b))
    hp = dict(TINY, netG="unet_32", norm="instance", pool_size=4)
    # Plain SGD: a wrong loss scale (e.g. 2x from summing replicas' means)
    # shows in the update; Adam's first step is scale-invariant.
    sgd = lambda: keras.optimizers.SGD(0.1)

    keras.utils.set_random_seed(1)
    single = CycleGAN(**hp)
    single.compile(g_optimizer=sgd(), d_optimizer=sgd())
    single.build_for_size(SIZE, SIZE)
    init = [w.numpy() for w in single.weights]
    with mirrored_strategy.scope():
        mirrored = CycleGAN(**hp)
        mirrored.compile(g_optimizer=sgd(), d_optimizer=sgd())
        mirrored.build_for_size(SIZE, SIZE)
    mirrored.set_weights(init)

    logs_single = single.fit(data, verbose=0).history
    logs_mirrored = mirrored.fit(data, verbose=0).history
    moved = 0.0
    for x, y, w0 in zip(single.weights, mirrored.weights, init):
        # atol 1e-5: conv biases before an instance norm get a gradient that is
        # 0 up to rounding, and that rounding differs between the two runs
        # (about 1e-6 here); a wrong loss scale moves weights by far more.
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5)
        moved = max(moved, float(np.abs(x.numpy() - w0).max()))
    assert moved > 1e-2
    for key in ("g_loss", "d_loss", "D_A", "cycle_B"):
        np.testing.assert_allclose(logs_mirrored[key][0], logs_single[key][0], rtol=1e-5)
    # One pool per replica, each holding its own replica's fake.
    one = single.fake_B_pool.state()
    two = mirrored.fake_B_pool.state()
    assert one["num_images"].numpy().tolist() == [2]
    assert two["num_images"].numpy().tolist() == [1, 1]
    np.testing.assert_allclose(two["images"][0, 0].numpy(), one["images"][0, 0].numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(two["images"][1, 0].numpy(), one["images"][0, 1].numpy(),
                               atol=1e-5)
