"""BicycleGAN: each loss term and weight against a direct computation (the KL summed as the
reference sums it), the latent regression reaching G but not E, the update order, each step
updating only its own group, fit and validation, the multimodal interface, exact resume
through the trainer, MirroredStrategy == one device, and a small learning test.

Tiny nets (unet_32, ngf/nef/ndf 8, resnet_128 E, basic_128_multi Ds) on 32 px images: the
smallest the reference's nets take (E needs 16 px, 2-scale Ds with n_layer 2 need 23 px).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS, BicycleGAN

from conftest import smooth_image, write_ab_dataset

TINY = dict(netG="unet_32", ngf=8, nef=8, ndf=8, netE="resnet_128", n_layer=2,
            use_dropout=False)  # the reference scripts' dropout (default) draws per replica
# For the compiled steps (tracing them is most of these tests' time): one-scale Ds, conv E.
LIGHT = dict(TINY, num_scales=1, netE="conv_128")
SIZE = 32
GROUPS = {"g": "G", "e": "E", "d": "D", "d2": "D2"}


def images(seed, n=4, size=SIZE):
    rng = np.random.default_rng(seed)
    x = np.stack([smooth_image(rng, (size, size)) for _ in range(n)])
    return tf.constant(x.astype(np.float32) / 127.5 - 1.0)


def make(lrs=None, init_seed=0, **options):
    """A tiny BicycleGAN compiled with plain SGD, lrs {group: lr} (0 freezes a group)."""
    keras.utils.set_random_seed(init_seed)
    model = BicycleGAN(**{**TINY, **options})
    lrs = lrs or {}
    model.compile(**{f"{g}_optimizer": keras.optimizers.SGD(lrs.get(g, 0.0))
                     for g in model.optimizer_groups})
    model.build_for_size(SIZE, SIZE)
    return model


def step(model, a, b):
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def snapshot(model):
    return {g: [v.numpy().copy() for v in model.group_variables(g)]
            for g in model.optimizer_groups}


def changed(model, before, group):
    now = model.group_variables(group)
    assert len(now) == len(before[group])
    return any(not np.array_equal(x, v.numpy()) for x, v in zip(before[group], now))


# Hand-written terms in NumPy (float64), independent of tfi2i.losses.
def np_(x):
    return np.asarray(x, np.float64)


def per_example_mean(x):
    x = np_(x)
    return x.reshape(x.shape[0], -1).mean(axis=1)


def lsgan_multiscale(outputs, target):
    """The reference's GANLoss on a multi-scale D: the sum over scales of MSE to target."""
    return sum(per_example_mean((np_(o) - target) ** 2) for o in outputs)


# -- options and presets ------------------------------------------------------------------


def test_defaults_presets_and_option_errors():
    model = BicycleGAN()
    hp = model.hp
    assert METHODS["bicycle_gan"] is BicycleGAN and model.paired
    assert model.optimizer_groups == ("g", "e", "d", "d2")
    assert (hp.netG, hp.netE, hp.n_layer, hp.num_scales, hp.nz, hp.norm, hp.init_type,
            hp.init_gain, hp.gan_mode, hp.where_add, hp.upsample, hp.nl) == (
        "unet_256", "resnet_256", 3, 2, 8, "instance", "xavier", 0.02, "lsgan", "all",
        "basic", "relu")
    assert (hp.lambda_L1, hp.lambda_gan, hp.lambda_gan2, hp.lambda_z, hp.lambda_kl) == (
        10.0, 1.0, 1.0, 0.5, 0.01)
    assert not (hp.use_same_D or hp.conditional_D) and hp.use_dropout
    assert model.latent_dim == 8 and model.size_divisor == 256
    config = resolve_config("bicycle_gan", "facades")
    assert (config["batch_size"], config["direction"], config["load_size"],
            config["crop_size"], config["lr"], config["beta1"], config["n_epochs"],
            config["n_epochs_decay"]) == (2, "BtoA", 286, 256, 2e-4, 0.5, 200, 200)
    assert resolve_config("bicycle_gan", "edges2shoes")["input_nc"] == 1

    with pytest.raises(UserError, match="not a BicycleGAN generator"):
        BicycleGAN(netG="resnet_9blocks")
    with pytest.raises(UserError, match="n_layer=4"):
        BicycleGAN(n_layer=4)
    with pytest.raises(UserError, match="wgangp"):
        BicycleGAN(gan_mode="wgangp")
    with pytest.raises(UserError, match="batch_size=3.*even"):
        resolve_config("bicycle_gan", None, {"batch_size": 3})
    # 32 px crops fit unet_32 but not the default 2-scale basic_256_multi D (47 px).
    with pytest.raises(UserError, match="crop_size=32 is too small.*at least 47"):
        resolve_config("bicycle_gan", None, dict(netG="unet_32", load_size=36, crop_size=32))
    assert resolve_config("bicycle_gan", None, dict(TINY, load_size=36, crop_size=32))


def test_get_config_round_trip():
    model = BicycleGAN(**TINY, lambda_z=0.25, use_same_D=True, direction="BtoA", seed=3)
    again = BicycleGAN.from_config(model.get_config())
    assert again.hparams == model.hparams and again.hp.lambda_z == 0.25
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, BicycleGAN) and restored.hparams == model.hparams


# -- the objective ---------------------------------------------------------------------------


WEIGHTS = dict(lambda_L1=3.0, lambda_gan=2.0, lambda_gan2=0.7, lambda_z=1.5, lambda_kl=4.0)


def test_each_term_and_weight_and_the_update_order():
    """Batch 4: halves of 2, so the KL's sum over the half batch shows (init_gain 1 and
    lambda_kl 4 make it large enough to tell from a mean). G and E step before D (a D update
    first would change G's adversarial terms), D on the fakes made before that G step."""
    a, b = images(1), images(2)
    model = make(lrs=dict(g=0.5, e=0.5, d=2.0, d2=2.0), init_gain=1.0, **WEIGHTS)
    eps, z = (x.numpy() for x in model.draw_codes(2))  # this step's draws
    z_t = tf.constant(z)
    A1, B1, B2 = a[0::2], b[0::2], b[1::2]
    mu, logvar = (np_(x) for x in model.E(B1))
    z_encoded = mu + eps * np.exp(0.5 * logvar)
    fake_enc = model.G([A1, tf.constant(z_encoded, tf.float32)]).numpy()
    fake_rand = model.G([A1, z_t]).numpy()
    mu2 = np_(model.E(fake_rand)[0])
    kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)  # reference form
    expected = {
        "G_GAN": lsgan_multiscale(model.D(fake_enc), 1.0),
        "G_GAN2": lsgan_multiscale(model.D2(fake_rand), 1.0),
        "G_L1": per_example_mean(np.abs(fake_enc - np_(B1))),
        "z_L1": per_example_mean(np.abs(mu2 - z)),
        "kl": kl,
        "D": lsgan_multiscale(model.D(B1), 1.0) + lsgan_multiscale(model.D(fake_enc), 0.0),
        "D2": lsgan_multiscale(model.D2(B2), 1.0) + lsgan_multiscale(model.D2(fake_rand), 0.0),
    }
    means = {k: v.mean() for k, v in expected.items()}
    # The reference's loss_G: KL summed over the half batch (2 pairs), the rest means.
    means["e_loss"] = (2.0 * means["G_GAN"] + 0.7 * means["G_GAN2"] + 3.0 * means["G_L1"]
                       + 4.0 * kl.sum())
    means["g_loss"] = means["e_loss"] + 1.5 * means["z_L1"]
    # A per-example mean (or the mean over nz) would be off by far more than the tolerance.
    assert 4.0 * (kl.sum() - kl.mean()) > 1e-3 * means["e_loss"] and abs(kl[0] - kl[1]) > 1e-4
    assert min(v.min() for v in expected.values()) > 1e-3

    logs = step(model, a, b)
    assert set(logs) == set(model.train_names)
    for name, value in means.items():
        assert logs[name] == pytest.approx(value, rel=2e-5), name
    assert [int(model.optimizers[g].iterations) for g in GROUPS] == [1, 1, 1, 1]
    assert int(model.step) == 1
    # The step moved D and G enough that the other order would have shown.
    assert abs(lsgan_multiscale(model.D(fake_enc), 1.0).mean() - means["G_GAN"]) > 1e-3
    new_fake = model.G([A1, tf.constant(z_encoded, tf.float32)]).numpy()
    assert np.abs(new_fake - fake_enc).max() > 1e-3


def test_latent_regression_updates_G_but_not_E():
    a, b = images(3), images(4)
    lrs = dict(g=0.5, e=0.5)
    with_z = make(lrs=lrs, init_gain=0.5, lambda_z=5.0)
    without = make(lrs=lrs, init_gain=0.5, lambda_z=0.0)
    without.set_weights(with_z.get_weights())
    # The regression does depend on E's weights (E encodes G's output): a method that
    # stepped E on it would move E.
    eps, z = with_z.draw_codes(2)
    with tf.GradientTape() as tape:
        terms, _ = with_z.losses_of(a, b, eps, z)
        loss = tf.reduce_mean(terms["z_L1"])
    grads = tape.gradient(loss, with_z.group_variables("e"))
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads if g is not None) > 1e-4
    for model in (with_z, without):
        step(model, a, b)
    for x, y in zip(with_z.group_variables("e"), without.group_variables("e")):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(x.numpy(), y.numpy(), atol=1e-6) for x, y in zip(
        with_z.group_variables("g"), without.group_variables("g")))


def test_each_step_updates_only_its_own_group():
    model = make()
    ids = {g: {id(v) for v in model.group_variables(g)} for g in GROUPS}
    for g, net in GROUPS.items():
        assert ids[g] == {id(v) for v in getattr(model, net).trainable_variables}
        assert all(not ids[g] & ids[h] for h in GROUPS if h != g)
    a, b = images(5), images(6)
    for moving in (("g", "e"), ("d", "d2")):
        model = make(lrs={g: 0.1 for g in moving})
        before = snapshot(model)
        step(model, a, b)
        for g in GROUPS:
            assert changed(model, before, g) == (g in moving), (moving, g)


def test_one_conditional_D_for_both_branches():
    a, b = images(7), images(8)
    model = make(lrs=dict(d=0.1), use_same_D=True, conditional_D=True)
    assert model.D2 is None and model.group_variables("d2") == []
    assert model.D.inputs[0].shape[-1] == 6  # (A, B) pairs
    eps, z = model.draw_codes(2)
    terms, imgs = model.losses_of(a, b, eps, z)
    A1, A2 = a[0::2], a[1::2]
    pair = lambda x, y: tf.concat([x, y], -1)
    d2 = (lsgan_multiscale(model.D(pair(A2, b[1::2])), 1.0)
          + lsgan_multiscale(model.D(pair(A1, imgs["fake_B_random"])), 0.0))
    np.testing.assert_allclose(terms["G_GAN2"].numpy(), lsgan_multiscale(
        model.D(pair(A1, imgs["fake_B_random"])), 1.0), rtol=1e-5)
    before = snapshot(model)
    logs = step(model, a, b)
    assert logs["D2"] == pytest.approx(d2.mean(), rel=1e-5)
    assert changed(model, before, "d") and not changed(model, before, "g")


def test_a_zero_weight_leaves_its_discriminator_untrained():
    model = make(lrs=dict(d=0.1, d2=0.1), lambda_gan2=0.0)
    before = snapshot(model)
    logs = step(model, images(1), images(2))
    assert changed(model, before, "d") and not changed(model, before, "d2")
    assert logs["G_GAN2"] == logs["D2"] == 0.0
    assert int(model.d2_optimizer.iterations) == 0


def test_odd_batch_is_refused():
    model = make()
    with pytest.raises(UserError, match="even batch"):
        model.train_step((images(1, n=3), images(2, n=3)))


# -- fit on one device and on two replicas, the multimodal interface ----------------------


@pytest.fixture(scope="module")
def fitted(mirrored_strategy):
    """One SGD step of `fit` on a global batch of 4, on one device and on two replicas of 2
    (one pair per branch each), from the same weights."""
    a, b = images(20), images(21)
    data = tf.data.Dataset.from_tensors((a, b))
    sgd = lambda: keras.optimizers.SGD(0.1)  # Adam's first step would hide a 2x scale
    opts = lambda m: {f"{g}_optimizer": sgd() for g in m.optimizer_groups}
    hp = dict(LIGHT, init_gain=0.5)  # a KL large enough for its batch-sum scale to show

    keras.utils.set_random_seed(1)
    single = BicycleGAN(**hp)
    single.compile(**opts(single))
    single.build_for_size(SIZE, SIZE)
    init = [w.numpy() for w in single.weights]
    before = snapshot(single)
    with mirrored_strategy.scope():
        mirrored = BicycleGAN(**hp)
        mirrored.compile(**opts(mirrored))
        mirrored.build_for_size(SIZE, SIZE)
    mirrored.set_weights(init)
    logs_single = single.fit(data, verbose=0).history
    logs_mirrored = mirrored.fit(data, verbose=0).history
    return dict(single=single, mirrored=mirrored, init=init, before=before,
                logs_single=logs_single, logs_mirrored=logs_mirrored)


def test_mirrored_step_equals_single_device_step(fitted):
    single, mirrored = fitted["single"], fitted["mirrored"]
    moved = 0.0
    for x, y, w0 in zip(single.weights, mirrored.weights, fitted["init"]):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5)
        moved = max(moved, float(np.abs(x.numpy() - w0).max()))
    assert moved > 1e-2
    for key in ("g_loss", "e_loss", "kl", "z_L1", "D", "D2"):
        assert fitted["logs_mirrored"][key][0] == pytest.approx(
            fitted["logs_single"][key][0], rel=1e-5), key


def test_fit_validation_and_the_multimodal_interface(fitted):
    model = fitted["single"]
    assert int(model.step) == 1
    assert all(changed(model, fitted["before"], g) for g in GROUPS)
    for key in model.train_names:
        assert np.isfinite(fitted["logs_single"][key][0]), key
    # Validation: the reconstruction from the target's own code, and fixed random codes.
    val_a, val_b = images(12, n=2), images(13, n=2)
    model.reset_metrics()
    logs = {k: float(v) for k, v in model.test_step((val_a, val_b)).items()}
    z = model._fixed_codes(2)
    mu = model.E(val_b)[0]
    fake = model.G([val_a, z]).numpy()
    expected = {"l1_encoded": np.abs(model.G([val_a, mu]).numpy() - val_b).mean(),
                "l1_random": np.abs(fake - val_b).mean(),
                "z_recovery": np.abs(model.E(fake)[0].numpy() - z).mean()}
    assert set(logs) == set(model.test_names)
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-4), key

    # code_generators: G itself; the same z gives the same output, another z another one.
    code_G = model.code_generators["AtoB"]
    assert list(model.code_generators) == ["AtoB"] and code_G is model.G
    assert model.latent_dim == 8
    z1, z2 = tf.random.normal([2, 8], seed=1), tf.random.normal([2, 8], seed=2)
    out1 = code_G([val_a, z1]).numpy()
    np.testing.assert_array_equal(out1, code_G([val_a, z1]).numpy())
    assert np.abs(out1 - code_G([val_a, z2]).numpy()).mean() > 1e-3
    # generators draw a code per call; style_encoders give mu of E (no sampling).
    sampling = model.generators["AtoB"]
    first, second = sampling(val_a).numpy(), sampling(val_a).numpy()
    assert first.shape == (2, SIZE, SIZE, 3) and np.abs(first - second).mean() > 1e-4
    codes = model.style_encoders["AtoB"](val_b)
    assert codes.shape == (2, 8)
    np.testing.assert_allclose(codes.numpy(), mu.numpy(), atol=1e-6)
    assert model.style_encoders["AtoB"] is model.style_encoders["AtoB"]
    grid = model.sample_images((val_a, val_b)).numpy()
    assert grid.shape == (2, SIZE, 6 * SIZE, 3)
    np.testing.assert_allclose(grid[:, :, 2 * SIZE:3 * SIZE], val_b.numpy())


# -- the platform: exact resume -------------------------------------------------------------


class StepLosses(keras.callbacks.Callback):
    """Per-step losses from the Mean trackers' running totals."""

    NAMES = ("g_loss", "e_loss", "z_L1", "kl", "D", "D2")

    def on_epoch_begin(self, epoch, logs=None):
        self._last = dict.fromkeys(self.NAMES, 0.0)
        self.values = getattr(self, "values", {})

    def on_train_batch_end(self, batch, logs=None):
        row = {}
        for name in self.NAMES:
            total = float(self.model.trackers[name].total.numpy())
            row[name], self._last[name] = total - self._last[name], total
        self.values[int(self.model.step.numpy())] = row


def test_resume_continues_the_same_run(tmp_path):
    """6 steps straight (2 epochs of 3), against 2 steps then a resume mid-epoch to 6: the
    same z and eps draws (the stateless per-step codes), losses and weights. No test split:
    no validation to trace."""
    from tfi2i.training.trainer import train

    data = write_ab_dataset(tmp_path / "ab", splits=(("train", 6),))

    def config(run, **extra):
        options = dict(LIGHT, data_dir=data, run_dir=str(tmp_path / run), load_size=36,
                       crop_size=32, n_epochs=1, n_epochs_decay=1, save_every_steps=100,
                       log_every_steps=1, sample_every_steps=100, val_batches=1,
                       deterministic=True, seed=5, **extra)
        return resolve_config("bicycle_gan", None, options)

    full, part = StepLosses(), StepLosses()
    m_full = train(config("full"), extra_callbacks=[full])
    train(config("part", max_steps=2))
    m_part = train(config("part"), explicit_keys={"max_steps"}, extra_callbacks=[part])
    assert int(m_full.step) == int(m_part.step) == 6
    assert sorted(part.values) == [3, 4, 5, 6]
    for s in (3, 4, 5, 6):
        for name in StepLosses.NAMES:
            assert part.values[s][name] == pytest.approx(full.values[s][name], rel=1e-5,
                                                         abs=1e-7), (s, name)
    for x, y in zip(m_full.weights, m_part.weights):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-6)


# -- learning ------------------------------------------------------------------------------


@pytest.mark.slow
def test_learns_the_paired_mapping(tmp_path):
    """Colour -> gray pairs: after 150 steps, outputs with random codes are closer to the
    held-out targets than the untrained model's and than the inputs themselves."""
    from learning import assert_learned, heldout_l1, identity

    from tfi2i.data import paired_dataset

    root = write_ab_dataset(tmp_path / "ab", splits=(("train", 16), ("test", 4)), seed=3)
    train_ds = paired_dataset(root, "train", load_size=36, crop_size=32, batch_size=2,
                              training=True, seed=0, epochs=19).take(150)
    val = paired_dataset(root, "test", load_size=32, crop_size=32, batch_size=4,
                         training=False)
    keras.utils.set_random_seed(0)
    model = BicycleGAN(**LIGHT)
    adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5)
    model.compile(g_optimizer=adam(), e_optimizer=adam(), d_optimizer=adam(),
                  d2_optimizer=adam())
    model.build_for_size(SIZE, SIZE)
    scores = {"untrained": heldout_l1(model.translate, val), "identity": heldout_l1(identity, val)}
    model.fit(train_ds, verbose=0)
    scores["trained"] = heldout_l1(model.translate, val)
    assert_learned("held-out L1 (random z)", scores, untrained=0.4, identity=0.3)
