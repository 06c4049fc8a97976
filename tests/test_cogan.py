"""The CoGAN baseline: shared weights, the objective and its weights, who trains, the latent
inversion that translates, fit/resume, MirroredStrategy, and the command-line round trip."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import (finish_cli, read_pngs, smooth_domain, smooth_image, start_cli,
                      write_unpaired_dataset)
from tfi2i.config import resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS, CoGAN

SIZE = 16
TINY = dict(crop_size=SIZE, ngf=8, ndf=8, z_dim=8, inversion_steps=10)


def domain(seed, n=4, size=SIZE, channels=3):
    return smooth_domain(seed, n, size, channels)


def make(g_lr=0.0, d_lr=0.0, init_seed=0, **options):
    """A tiny CoGAN compiled with SGD (a learning rate of 0 freezes a group)."""
    keras.utils.set_random_seed(init_seed)
    model = CoGAN(**{**TINY, **options})
    model.compile(g_optimizer=keras.optimizers.SGD(g_lr), d_optimizer=keras.optimizers.SGD(d_lr))
    model.build_for_size(model.hp.crop_size, model.hp.crop_size)
    return model


def step(model, a, b):
    model.reset_metrics()
    return {k: float(v) for k, v in model.train_step((a, b)).items()}


def ids(variables):
    return [id(v) for v in variables]


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def changed(variables, before):
    return [not np.array_equal(x, v.numpy()) for x, v in zip(before, variables)]


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64)).reshape(len(x), -1).mean(axis=1)


# -- the nets -------------------------------------------------------------------------------


@pytest.mark.parametrize("g_unshared, d_unshared", [(1, 1), (2, 3)])
def test_shared_layers_are_one_set_of_variables(g_unshared, d_unshared):
    model = make(crop_size=32, g_unshared_layers=g_unshared, d_unshared_layers=d_unshared)
    assert METHODS["cogan"] is CoGAN and model.paired is False
    shared, head_A, head_B = (ids(n.trainable_variables) for n in
                              (model.G_shared, model.G_A_head, model.G_B_head))
    # G_A is the shared trunk then its head; G_B the same trunk (the very variables) then its.
    assert ids(model.G_A.trainable_variables) == shared + head_A
    assert ids(model.G_B.trainable_variables) == shared + head_B
    assert set(ids(model.G_A.trainable_variables)) & set(ids(model.G_B.trainable_variables)) \
        == set(shared)
    assert not set(head_A) & set(head_B)
    d_shared = ids(model.D_shared.trainable_variables)
    assert ids(model.D_A.trainable_variables) == ids(model.D_A_head.trainable_variables) + d_shared
    assert set(ids(model.D_A.trainable_variables)) & set(ids(model.D_B.trainable_variables)) \
        == set(d_shared)
    # Layer counts: 32 px has 4 layers per net; the heads hold the unshared ones.
    kernels = lambda net: [v for v in net.trainable_variables if v.path.endswith("kernel")]
    assert (len(kernels(model.G_A_head)), len(kernels(model.G_shared))) == (g_unshared,
                                                                           4 - g_unshared)
    assert (len(kernels(model.D_A_head)), len(kernels(model.D_shared))) == (d_unshared,
                                                                           4 - d_unshared)
    assert len(ids(model.weights)) == len(set(ids(model.weights)))  # each variable once
    z = tf.random.uniform([2, 8], -1, 1)
    assert model.G_A(z).shape == (2, 32, 32, 3) and model.D_B(model.G_B(z)).shape == (2, 1)
    # The groups are exactly the nets' variables.
    assert set(ids(model.group_variables("g"))) == set(shared + head_A + head_B)
    assert set(ids(model.group_variables("d"))) == set(
        d_shared + ids(model.D_A_head.trainable_variables)
        + ids(model.D_B_head.trainable_variables))


def test_dcgan_layout_and_parameter_counts_at_64_px():
    """ngf = ndf = 64, z 100, 64 px: G 100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64
    (shared) -> 64x64x3 (each domain); D 3 -> 64 (each domain) -> 128 -> 256 -> 512 -> 1
    (shared); kernels 4x4, no bias before a batch norm (its scale and offset instead)."""
    model = CoGAN(crop_size=64)
    count = lambda net: int(sum(np.prod(v.shape) for v in net.trainable_variables))
    assert count(model.G_shared) == 16 * (100 * 512 + 512 * 256 + 256 * 128 + 128 * 64) + 2 * (
        512 + 256 + 128 + 64)
    assert count(model.G_A_head) == count(model.G_B_head) == 16 * 64 * 3 + 3
    assert count(model.D_A_head) == 16 * 3 * 64 + 64
    assert count(model.D_shared) == 16 * (64 * 128 + 128 * 256 + 256 * 512 + 512) + 1 + 2 * (
        128 + 256 + 512)
    z = tf.zeros([1, 100])
    assert model.G_shared(z).shape == (1, 32, 32, 64) and model.G_B(z).shape == (1, 64, 64, 3)
    assert float(tf.reduce_max(tf.abs(model.G_A(tf.ones([1, 100]) * 50)))) <= 1.0   # tanh
    assert model.size_divisor == 1


def test_a_gradient_of_domain_A_moves_what_domain_B_uses():
    model = make()
    z = tf.random.uniform([2, 8], -1, 1, seed=1)
    before_B = model.G_B(z, training=False).numpy()
    head_B, shared = snapshot(model.G_B_head.trainable_variables), snapshot(
        model.G_shared.trainable_variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model.G_A(z, training=False) - 0.5))
    variables = model.G_A.trainable_variables
    keras.optimizers.SGD(1.0).apply(tape.gradient(loss, variables), variables)
    assert all(changed(model.G_shared.trainable_variables, shared))
    assert not any(changed(model.G_B_head.trainable_variables, head_B))
    # G_B's own head did not change, yet its images did: through the shared trunk.
    assert np.abs(model.G_B(z, training=False).numpy() - before_B).max() > 1e-4


def test_option_errors_are_clear():
    with pytest.raises(UserError, match=r"--crop_size=24 does not fit cogan.*--crop_size=32"):
        CoGAN(crop_size=24)
    with pytest.raises(UserError, match=r"--crop_size=8 .*--crop_size=16"):
        CoGAN(crop_size=8)
    with pytest.raises(UserError, match="gan_mode=wgan does not fit cogan"):
        CoGAN(**TINY, gan_mode="wgan")
    with pytest.raises(UserError, match="g_unshared_layers=3: at --crop_size=16 .* 1 to 2"):
        CoGAN(**TINY, g_unshared_layers=3)
    with pytest.raises(UserError, match="d_unshared_layers"):
        resolve_config("cogan", None, {"crop_size": 16, "load_size": 16,
                                       "d_unshared_layers": 5})
    with pytest.raises(UserError, match="preprocess=none"):
        resolve_config("cogan", None, {"preprocess": "none"})
    with pytest.raises(UserError, match="made for 16 x 16"):
        make().build_for_size(32, 32)
    config = resolve_config("cogan", None)
    assert (config["batch_size"], config["lr_policy"], config["lr"], config["beta1"],
            config["z_dim"], config["z_dist"], config["gan_mode"]) == (
        64, "constant", 2e-4, 0.5, 100, "uniform", "vanilla")
    model = CoGAN(**TINY, direction="BtoA", gan_mode="hinge", z_dist="normal")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(again, CoGAN) and again.hparams == model.hparams


# -- the objective ------------------------------------------------------------------------


def test_loss_terms_by_hand_and_the_gradient_penalty_weight():
    model = make()   # learning rates 0: the nets are unchanged by the step
    a, b = domain(1), domain(2)
    z = model.noise(4)   # the step's draw (step 0)
    fake_A, fake_B = model.G_A(z, training=True), model.G_B(z, training=True)
    logit = lambda D, x: D(x, training=True).numpy()
    expected = {"G_A": softplus(-logit(model.D_A, fake_A)),
                "G_B": softplus(-logit(model.D_B, fake_B)),
                "D_A": softplus(-logit(model.D_A, a)) + softplus(logit(model.D_A, fake_A)),
                "D_B": softplus(-logit(model.D_B, b)) + softplus(logit(model.D_B, fake_B))}
    expected["g_loss"] = expected["G_A"] + expected["G_B"]
    expected["d_loss"] = expected["D_A"] + expected["D_B"]
    logs = step(model, a, b)
    assert set(logs) == set(model.train_names) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(logs[name], value.mean(), rtol=1e-5, err_msg=name)

    gp = make(gan_mode="wgangp", lambda_gp=3.0)
    z = gp.noise(4)
    fake_A = gp.G_A(z, training=True)
    critic = lambda x: gp.D_A(x, training=True).numpy().mean()
    logs = step(gp, a, b)
    assert logs["gp_A"] > 0
    np.testing.assert_allclose(logs["D_A"], -critic(a) + critic(fake_A) + 3.0 * logs["gp_A"],
                               rtol=1e-4)
    np.testing.assert_allclose(logs["g_loss"], logs["G_A"] + logs["G_B"], rtol=1e-6)
    np.testing.assert_allclose(logs["G_A"], -critic(fake_A), rtol=1e-4)


@pytest.mark.parametrize("gan_mode", ["lsgan", "hinge"])
def test_other_gan_modes(gan_mode):
    model = make(g_lr=0.01, d_lr=0.01, gan_mode=gan_mode)
    a, b = domain(1), domain(2)
    z = model.noise(4)
    d_fake = model.D_B(model.G_B(z, training=True), training=True).numpy()
    logs = step(model, a, b)
    want = ((d_fake - 1) ** 2).mean() if gan_mode == "lsgan" else -d_fake.mean()
    np.testing.assert_allclose(logs["G_B"], want, rtol=1e-4)


def test_each_step_updates_only_its_group_and_z_follows_the_step():
    a, b = domain(3), domain(4)
    for lr, moves, stays in (((0.1, 0.0), "g", "d"), ((0.0, 0.1), "d", "g")):
        model = make(*lr)
        before = {g: snapshot(model.group_variables(g)) for g in ("g", "d")}
        z0 = model.noise(4).numpy()
        step(model, a, b)
        assert all(changed(model.group_variables(moves), before[moves])), moves
        assert not any(changed(model.group_variables(stays), before[stays])), stays
        # A new draw each step, a function of the seed and the step only.
        assert not np.allclose(model.noise(4).numpy(), z0)
        np.testing.assert_array_equal(make().noise(4).numpy(), z0)


# -- translation --------------------------------------------------------------------------


def test_inversion_reduces_the_reconstruction_error_and_translates_with_G_B():
    model = make(inversion_steps=40, inversion_lr=0.1)
    # Images G_A can make exactly, so that the inversion has somewhere to go.
    z_true = tf.random.stateless_uniform([3, 8], [7, 7], -1, 1)
    a = model.G_A(z_true, training=False)
    layer = model.inversion("A")
    result = layer.invert(a, with_start=True)
    rec0, rec = result["rec0"].numpy(), result["rec"].numpy()
    np.testing.assert_allclose(result["z0"].numpy(), np.repeat(result["z0"][:1].numpy(), 3, 0))
    assert np.all(rec < 0.5 * rec0), (rec0, rec)
    np.testing.assert_allclose(rec, np.abs(model.G_A(result["z"]) - a).mean(axis=(1, 2, 3)),
                               rtol=1e-5)
    assert np.abs(result["z"].numpy()).max() <= 1.0   # the uniform prior's box
    # The translation is G_B(z*), through the exported generator, in a traced function too.
    translate = model.generators["AtoB"]
    expected = model.G_B(result["z"], training=False).numpy()
    np.testing.assert_allclose(translate(a).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(model.translate(a).numpy(), expected, atol=1e-5)
    traced = tf.function(lambda x: translate(x, training=False),
                         input_signature=[tf.TensorSpec([None, None, None, 3])])
    np.testing.assert_allclose(traced(a).numpy(), expected, atol=1e-5)
    # An image's translation does not depend on its batch.
    np.testing.assert_allclose(translate(a[1:2]).numpy()[0], expected[1], atol=1e-5)
    # Zero steps: z0 itself. Other sizes: resized in and out.
    zero = make(inversion_steps=0).inversion("A").invert(a, with_start=True)
    np.testing.assert_allclose(zero["rec"].numpy(), zero["rec0"].numpy())
    assert translate(tf.zeros([2, 20, 28, 3])).shape == (2, 20, 28, 3)
    assert list(model.generators) == ["AtoB", "BtoA"]
    assert list(make(direction="BtoA").generators) == ["BtoA", "AtoB"]
    gd = make(inversion_steps=40, inversion_lr=2000.0, inversion_optimizer="gd")
    gd_result = gd.inversion("A").invert(a, with_start=True)
    assert np.all(gd_result["rec"].numpy() < 0.8 * gd_result["rec0"].numpy())


def test_gray_domain_samples_and_validation():
    model = make(input_nc=1, g_lr=0.01, d_lr=0.01)
    a, b = domain(5, channels=1), domain(6)
    assert model.generators["AtoB"](a).shape == (4, SIZE, SIZE, 3)
    assert model.generators["BtoA"](b).shape == (4, SIZE, SIZE, 1)
    grid = model.sample_images((a, b[:3])).numpy()
    assert grid.shape == (9, SIZE, 3 * SIZE, 3)
    np.testing.assert_allclose(grid[0, :, :SIZE], np.repeat(a[0].numpy(), 3, axis=-1))
    z_b = model.inversion("B").invert(b[:3])["z"]
    np.testing.assert_allclose(grid[3, :, 2 * SIZE:], np.repeat(
        model.G_A(z_b, training=False)[0].numpy(), 3, axis=-1), atol=1e-5)
    assert np.all(grid[6:, :, 2 * SIZE:] == 0)
    step(model, a, b)
    model.reset_metrics()
    logs = model.test_step((a, b))
    expected = model.inversion("A").invert(a)["rec"].numpy().mean()
    np.testing.assert_allclose(float(logs["rec_A"]), expected, rtol=1e-5)
    assert int(model.step.numpy()) == 1


# -- checkpoints and distribution ---------------------------------------------------------


def test_resume_continues_the_same_run(tmp_path):
    from tfi2i.training.checkpoints import make_checkpoint

    a, b = domain(7), domain(8)
    adam = lambda: keras.optimizers.Adam(1e-3, beta_1=0.5)
    def fresh(init_seed):
        keras.utils.set_random_seed(init_seed)
        model = CoGAN(**TINY)
        model.compile(g_optimizer=adam(), d_optimizer=adam())
        model.build_for_size(SIZE, SIZE)
        return model
    model = fresh(0)
    for _ in range(2):
        step(model, a, b)
    epoch = tf.Variable(0, dtype=tf.int64)
    path = make_checkpoint(model, epoch).save(str(tmp_path / "ckpt"))
    again = fresh(1)
    make_checkpoint(again, tf.Variable(0, dtype=tf.int64)).restore(
        path).assert_existing_objects_matched()
    assert int(again.step.numpy()) == 2
    for x, y in zip(model.weights, again.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
    first, second = step(model, a, b), step(again, a, b)
    assert first == pytest.approx(second, rel=1e-6)
    for x, y in zip(model.weights, again.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=x.path)


def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    a, b = domain(9), domain(10)
    data = tf.data.Dataset.from_tensors((a, b))
    # sync_batch: batch statistics over the global batch, as on one device; plain SGD shows
    # a wrong loss scale (Adam's first step would hide it).
    hp = dict(TINY, norm="sync_batch")
    keras.utils.set_random_seed(1)
    single = CoGAN(**hp)
    single.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    single.build_for_size(SIZE, SIZE)
    init = [w.numpy() for w in single.weights]
    with mirrored_strategy.scope():
        mirrored = CoGAN(**hp)
        mirrored.compile(g_optimizer=keras.optimizers.SGD(0.1),
                         d_optimizer=keras.optimizers.SGD(0.1))
        mirrored.build_for_size(SIZE, SIZE)
    mirrored.set_weights(init)
    single.run_eagerly = mirrored.run_eagerly = True   # The arithmetic; tracing costs more.
    # Through fit, validation included (the inversion under the strategy too).
    logs_single = single.fit(data, validation_data=data, verbose=0).history
    logs_mirrored = mirrored.fit(data, validation_data=data, verbose=0).history
    moved = 0.0
    for x, y, w0 in zip(single.weights, mirrored.weights, init):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)
        moved = max(moved, float(np.abs(x.numpy() - w0).max()))
    assert moved > 1e-3
    for key in ("g_loss", "d_loss", "G_A", "D_B", "val_rec_A", "val_rec_B"):
        np.testing.assert_allclose(logs_mirrored[key][0], logs_single[key][0], rtol=1e-5)


# -- the command line -----------------------------------------------------------------------


def test_cli_train_export_translate(tmp_path):
    data = write_unpaired_dataset(tmp_path / "data", counts=(("trainA", 4), ("trainB", 4),
                                                            ("testA", 2), ("testB", 2)))
    run, export = tmp_path / "run", tmp_path / "export"
    finish_cli(start_cli("train", "--method=cogan", f"--data_dir={data}", f"--run_dir={run}",
                         "--crop_size=16", "--load_size=18", "--ngf=4", "--ndf=4", "--z_dim=8",
                         "--batch_size=2", "--max_steps=2", "--inversion_steps=5",
                         "--save_every_steps=2", "--sample_every_steps=2", "--val_batches=1"))
    sample = read_pngs(run / "samples")[1][-1]
    assert sample.shape == (3 * 2 * 16, 3 * 16, 3)   # rows a, b, random z for 2 images
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):   # odd sizes: resized to 16 px for the inversion and back
        Image.fromarray(smooth_image(rng, (20, 27))).save(inputs / f"{i}.png")
    exporter = start_cli("export", f"--run_dir={run}", f"--output={export}")
    # Meanwhile, here: the run itself through tfi2i-translate's loader, and TFLite's refusal.
    from tfi2i.cli import export as export_cli
    from tfi2i.export import load, translate_files
    assert translate_files(load(str(run)), str(inputs), str(tmp_path / "out_run"), "BtoA",
                           progress=False) == (2, [])
    tflite = types.SimpleNamespace(run_dir=str(run), checkpoint=None, format=["tflite"],
                                   output=str(tmp_path / "tfl"))
    with pytest.raises(UserError, match="--format=tflite: cogan translates by gradient steps"):
        export_cli.export(tflite)
    assert not (tmp_path / "tfl").exists()
    out = finish_cli(exporter)
    assert "translate_float_BtoA: max abs diff vs Keras" in out
    finish_cli(start_cli("translate", f"--model={export}", f"--input={inputs}",
                         f"--output={tmp_path / 'out_export'}", "--direction=BtoA"))
    names, run_images = read_pngs(tmp_path / "out_run")
    assert names == ["0.png", "1.png"] and run_images.shape == (2, 20, 27, 3)
    _, export_images = read_pngs(tmp_path / "out_export")
    assert np.abs(run_images.astype(int) - export_images.astype(int)).max() <= 1


# -- learning -------------------------------------------------------------------------------


def blobs(rng, n):
    """n 16 px images of one yellow Gaussian blob (sigma 2.5 px) at a random place on black."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    centre = rng.uniform(3, SIZE - 3, (n, 2))
    blob = np.exp(-((yy[None] - centre[:, 0, None, None]) ** 2
                    + (xx[None] - centre[:, 1, None, None]) ** 2) / (2 * 2.5 ** 2))
    return (-1 + blob[..., None] * (np.array([1.0, 0.8, -0.6]) + 1)).astype(np.float32)


@pytest.mark.slow
def test_learns_the_coupled_domains():
    """200 steps on unpaired blob images (A) and negatives of other blob images (B): the
    inversion reaches held-out A images, and the translation of a held-out image is ITS
    negative (the blob in the same place): closer to it than to the negatives of the other
    held-out images, the untrained model's output and the untranslated input.

    Measured (one run, 2 busy cores): reconstruction 0.85 -> 0.13; L1 to the own negative
    0.85 untrained, 1.70 untranslated, 0.32 to the others' negatives, 0.15 trained."""
    from learning import assert_learned, heldout_l1

    rng = np.random.default_rng(0)
    train_a, train_b, held = blobs(rng, 200), -blobs(rng, 200), blobs(rng, 16)
    val = [(tf.constant(held), tf.constant(-held))]
    shuffled = [(tf.constant(held), tf.constant(-np.roll(held, 1, axis=0)))]
    keras.utils.set_random_seed(0)
    model = CoGAN(**{**TINY, "ngf": 16, "ndf": 16, "inversion_steps": 50,
                     "inversion_lr": 0.1})
    adam = lambda: keras.optimizers.Adam(2e-3, beta_1=0.5)
    model.compile(g_optimizer=adam(), d_optimizer=adam())
    model.build_for_size(SIZE, SIZE)
    rec = lambda: float(model.inversion("A").invert(held)["rec"].numpy().mean())
    recs = {"untrained": rec()}
    scores = {"untrained": heldout_l1(model.translate, val),
              "untranslated": heldout_l1(lambda x: x, val)}
    data = tf.data.Dataset.from_tensor_slices((train_a, train_b)).shuffle(200, seed=0)
    model.fit(data.repeat().batch(16).take(200), verbose=0)
    recs["trained"] = rec()
    scores["trained"] = heldout_l1(model.translate, val)
    scores["others' negatives"] = heldout_l1(model.translate, shuffled)
    assert_learned("held-out reconstruction L1 of the inversion", recs, untrained=0.4)
    assert_learned("held-out L1 to the input's negative", scores, untrained=0.4,
                   untranslated=0.2, **{"others' negatives": 0.7})
