"""Many outputs per input: the export's code and style signatures, the translator's codes,
`tfi2i-translate --num_samples/--style_image/--seed` and `tfi2i-eval --metrics=diversity`.

The nets are BicycleGAN's (a U-Net taking [image, z] and the encoder E's mean), tiny.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.export import VerificationError, export_generators, load
from tfi2i.export import serving
from tfi2i.export.savedmodel import keras_reference, signature_keys, verify_savedmodel
from tfi2i.export.translator import Translator, keras_code_net, keras_net, keras_style_net
from tfi2i.nets import define_bicycle_E, define_bicycle_G
from tfi2i.nets.latent import sampling_generator

NZ = 4
CONFIG = {"method": "bicycle_gan", "input_nc": 3, "output_nc": 3, "direction": "BtoA"}


def multimodal_nets(seed=3):
    """({BtoA: sampling G}, {BtoA: code G}, {BtoA: style encoder}), tiny BicycleGAN nets."""
    keras.utils.set_random_seed(seed)
    G = define_bicycle_G("unet_32", nz=NZ, ngf=8, init_type="normal", init_gain=0.5)
    E = define_bicycle_E("resnet_128", nz=NZ, nef=8, init_type="normal", init_gain=0.5)
    mean = keras.Model(E.input, E.outputs[0], name="E_mean")
    return {"BtoA": sampling_generator(G, NZ)}, {"BtoA": G}, {"BtoA": mean}


def images(count, size=(29, 37), seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 5, 7, 3)).astype(np.float32)
    return np.clip(tf.image.resize(coarse, size, "bicubic").numpy(), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    generators, code_generators, style_encoders = multimodal_nets()
    base = tmp_path_factory.mktemp("export") / "bicycle"
    report = export_generators(generators, 32, CONFIG, base, code_generators=code_generators,
                               style_encoders=style_encoders)
    return generators, code_generators, style_encoders, base, report


def test_signatures_with_and_without_a_client_code(exported):
    _, code_generators, style_encoders, base, report = exported
    assert report["signatures"] == sorted([
        "serving_default", "translate_bytes", "translate_float", "translate_code",
        "translate_float_code", "translate_style", "translate_float_style", "style_code"])
    assert report["latent_dim"] == NZ
    # The ones drawing their code in the graph were checked for new draws, not compared.
    assert report["sampled"] == ["serving_default", "translate_bytes", "translate_float"]
    assert set(report["max_abs_diff"]) == {"translate_code", "translate_float_code",
                                           "translate_style", "translate_float_style",
                                           "style_code"}
    assert report["max_abs_diff"]["translate_float_code"] < 1e-4
    assert report["max_abs_diff"]["translate_code"] <= 1

    loaded = tf.saved_model.load(str(base / "1"))
    x = images(2).astype(np.float32) / 127.5 - 1
    G = code_generators["BtoA"]
    # A client's code decides the output: the same code, the same image; another, another.
    z = np.random.default_rng(1).standard_normal((1, NZ)).astype(np.float32)
    one = loaded.signatures["translate_float_code"](images=x, codes=z)["images"].numpy()
    again = loaded.signatures["translate_float_code"](images=x, codes=z)["images"].numpy()
    other = loaded.signatures["translate_float_code"](images=x, codes=-z)["images"].numpy()
    np.testing.assert_array_equal(one, again)
    assert np.abs(one - other).mean() > 1e-3
    # One code [1, nz] is every image's: it broadcasts over the batch.
    keras_out = keras_reference(G, x, 32, np.repeat(z, 2, 0))
    np.testing.assert_allclose(one, keras_out, atol=1e-4)
    # Without a code, each call draws: two calls on the same images differ.
    first = loaded.signatures["translate_float"](images=x)["images"].numpy()
    second = loaded.signatures["translate_float"](images=x)["images"].numpy()
    assert first.shape == x.shape and np.abs(first - second).mean() > 1e-3
    # A style image's code is E's mean, and translate_style uses it.
    style = images(1, (40, 40), seed=5).astype(np.float32) / 127.5 - 1
    code = loaded.signatures["style_code"](style_images=style)["codes"].numpy()
    np.testing.assert_allclose(code, style_encoders["BtoA"](style).numpy(), atol=1e-5)
    styled = loaded.signatures["translate_float_style"](images=x, style_images=style)
    np.testing.assert_allclose(
        styled["images"].numpy(),
        loaded.signatures["translate_float_code"](images=x, codes=code)["images"].numpy(),
        atol=1e-5)


def test_bad_codes_are_named(exported):
    *_, base, _ = exported
    loaded = tf.saved_model.load(str(base / "1"))
    x = images(2).astype(np.float32) / 127.5 - 1
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"codes must have {NZ} values"):
        loaded.signatures["translate_float_code"](images=x, codes=np.zeros((2, NZ + 1),
                                                                          np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry of codes per image"):
        loaded.signatures["translate_float_code"](images=x, codes=np.zeros((3, NZ), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected codes"):
        loaded.signatures["translate_float_code"](images=x, codes=np.zeros([NZ], np.float32))


def test_a_sampled_signature_that_does_not_draw_fails_verification(exported, tmp_path):
    generators, code_generators, style_encoders, base, _ = exported
    # Verified against a "generator" whose code is always zero: its signatures give the
    # same output twice, which the check of the sampled signatures must catch.
    G = code_generators["BtoA"]
    image = keras.Input((None, None, 3))
    zeros = keras.layers.Lambda(lambda t: tf.zeros([tf.shape(t)[0], NZ]),
                                output_shape=(NZ,))(image)
    fixed = keras.Model(image, G([image, zeros]))
    export_generators({"BtoA": fixed}, 32, CONFIG, tmp_path / "m", verify=False,
                      code_generators=code_generators)
    with pytest.raises(VerificationError, match="does not draw its code"):
        verify_savedmodel(str(tmp_path / "m" / "1"), {"BtoA": fixed}, 32,
                          code_generators=code_generators)


def test_signature_keys_of_two_multimodal_directions():
    keys = signature_keys(["AtoB", "BtoA"], code_names={"AtoB", "BtoA"}, style_names={"AtoB"})
    assert keys["translate_code"] == ("AtoB", "code_uint8")
    assert keys["translate_float_code_BtoA"] == ("BtoA", "code_float")
    assert keys["style_code_AtoB"] == ("AtoB", "style_code")
    assert "style_code_BtoA" not in keys and "translate_style_BtoA" not in keys
    for key, (_, kind) in keys.items():
        assert serving.signature_kind(key) == kind, key


def test_translator_codes_seed_tiles_and_styles(exported):
    _, code_generators, style_encoders, base, _ = exported
    G, E = code_generators["BtoA"], style_encoders["BtoA"]

    def translator(seed, **kwargs):
        return Translator({"BtoA": keras_net(sampling_generator(G, NZ))}, 32, CONFIG,
                          code_nets={"BtoA": keras_code_net(G)},
                          style_nets={"BtoA": keras_style_net(E)}, latent_dim=NZ, seed=seed,
                          **kwargs)

    batch = images(3)
    first = translator(7).sample(batch, 3)
    again = translator(7).sample(batch, 3)
    assert len(first) == 3 and first[0].shape == batch.shape and first[0].dtype == np.uint8
    for a, b in zip(first, again):  # the seed makes sampling reproducible
        np.testing.assert_array_equal(a, b)
    assert np.abs(first[0].astype(float) - first[1]).mean() > 1  # samples differ
    # A given code: every image translated with it, however the images are batched.
    z = np.linspace(-1, 1, NZ).astype(np.float32)
    whole = translator(0).translate(batch, codes=z)
    single = [translator(0, batch_size=1).translate(image, codes=z) for image in batch]
    np.testing.assert_array_equal(whole, np.stack(single))
    # A large image is tiled; its tiles share its code, so it matches the untiled output.
    big = images(1, (70, 90), seed=4)[0]
    untiled = translator(0).translate(big.astype(np.float32) / 127.5 - 1, codes=z)
    tiled = translator(0, tile_size=64, tile_overlap=8).translate(
        big.astype(np.float32) / 127.5 - 1, codes=z)
    assert np.abs(tiled - untiled).mean() < 0.1
    # Styles: the code of a reference image.
    style = images(1, (48, 48), seed=9)
    code = translator(0).style_codes(list(style))
    np.testing.assert_allclose(code, E(style.astype(np.float32) / 127.5 - 1).numpy(),
                               atol=1e-5)
    with pytest.raises(UserError, match=r"codes must be \[4\] or \[3, 4\]"):
        translator(0).translate(batch, codes=np.zeros((2, NZ)))

    # The SavedModel backend gives the Keras backend's pixels for the same codes.
    served = load(str(base), seed=7)
    assert served.latent_dim == NZ and served.style_nets
    np.testing.assert_allclose(served.translate(batch, codes=z).astype(float), whole, atol=1)
    np.testing.assert_allclose(served.style_codes(list(style)), code, atol=1e-5)


def test_one_output_models_refuse_samples_and_codes():
    from tfi2i.nets import define_G

    G = define_G("unet_32", 3, 3, ngf=8)
    translator = Translator({"AtoB": keras_net(G)}, 32, {})
    batch = images(1)
    with pytest.raises(UserError, match="one output per input"):
        translator.sample(batch, 2)
    with pytest.raises(UserError, match="takes no code"):
        translator.translate(batch, codes=np.zeros(4))
    with pytest.raises(UserError, match="cannot take a style image"):
        translator.style_codes(list(batch))


def test_tflite_takes_the_code_as_a_second_input(exported, tmp_path):
    from tfi2i.export.tflite import export_tflite

    generators, code_generators, _, _, _ = exported
    info = export_tflite(generators, 32, {**CONFIG, "crop_size": 32}, tmp_path,
                         quantize=("none",), verify=True, verify_count=2,
                         code_generators=code_generators)
    entry = info["files"]["BtoA_float32.tflite"]
    assert entry["latent_dim"] == NZ and entry["max_abs_diff"] < 1e-4, entry
    translator = load(str(tmp_path / "tflite" / "BtoA_float32.tflite"), seed=1)
    batch = images(2)
    z = np.linspace(-1, 1, NZ).astype(np.float32)
    expected = keras_reference(code_generators["BtoA"], batch, 32, np.stack([z, z]))
    out = translator.translate(batch.astype(np.float32) / 127.5 - 1, codes=z)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    first, second = translator.sample(batch, 2)
    assert np.abs(first.astype(float) - second).mean() > 1


# -- a BicycleGAN run directory through the command lines ------------------------------------


@pytest.fixture(scope="module")
def bicycle_run(tmp_path_factory):
    """A tiny bicycle_gan run directory as training leaves it (untrained weights suffice),
    and a folder of label maps to translate."""
    import os

    from PIL import Image

    from tfi2i.config import resolve_config
    from tfi2i.methods import get_method

    root = tmp_path_factory.mktemp("bicycle")
    run = root / "run"
    config = resolve_config("bicycle_gan", None, {
        "netG": "unet_32", "netE": "resnet_128", "ngf": 8, "nef": 8, "ndf": 8, "nz": NZ,
        "n_layer": 2, "num_scales": 1, "crop_size": 32, "load_size": 36, "direction": "BtoA",
        "init_type": "normal",
        "init_gain": 0.5, "run_dir": str(run)})
    keras.utils.set_random_seed(4)
    model = get_method("bicycle_gan").from_run_config(config)
    model.build_for_size(32, 32)
    os.makedirs(run / "checkpoints")
    (run / "config.json").write_text(json.dumps(config))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), run / "checkpoints",
                                         max_to_keep=1, checkpoint_name="ckpt")
    manager.save(checkpoint_number=1)
    inputs = root / "labels"
    inputs.mkdir()
    for i, image in enumerate(images(3, (30, 44), seed=11)):
        Image.fromarray(image).save(inputs / f"l{i}.png")
    Image.fromarray(images(1, (40, 40), seed=12)[0]).save(root / "style.png")
    return run, model, inputs, root / "style.png"


def translate_cli(*flags):
    from tfi2i.cli import translate
    from tfi2i.cli.common import parse_args

    translate.main(*parse_args(translate.OPTIONS, list(flags), check=translate.check))


def read_folder(folder):
    import os

    from PIL import Image

    return {name: np.asarray(Image.open(os.path.join(folder, name)))
            for name in sorted(os.listdir(folder))}


def test_translate_samples_seeds_and_styles_from_a_run_and_its_export(bicycle_run, tmp_path):
    from tfi2i.cli import export
    from tfi2i.cli.common import parse_args

    run, model, inputs, style = bicycle_run
    assert model.latent_dim == NZ and list(model.code_generators) == ["BtoA"]
    translate_cli(f"--model={run}", f"--input={inputs}", f"--output={tmp_path / 'a'}",
                  "--num_samples=3", "--seed=5")
    translate_cli(f"--model={run}", f"--input={inputs}", f"--output={tmp_path / 'b'}",
                  "--num_samples=3", "--seed=5", "--batch_size=1")
    a, b = read_folder(tmp_path / "a"), read_folder(tmp_path / "b")
    assert sorted(a) == [f"l{i}_sample{k}.png" for i in range(3) for k in range(3)]
    for name in a:  # the seed fixes the codes, whatever the batching
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].shape == (30, 44, 3)
    assert np.abs(a["l0_sample0.png"].astype(float) - a["l0_sample1.png"]).mean() > 1

    # A style image: its code (E's mean) for every input.
    translate_cli(f"--model={run}", f"--input={inputs}", f"--output={tmp_path / 's'}",
                  f"--style_image={style}")
    styled = read_folder(tmp_path / "s")
    translator = load(str(run))
    from tfi2i.export.translator import read_image

    code = translator.style_codes([read_image(str(style))])[0]
    for name, output in styled.items():
        expected = translator.translate(read_image(str(inputs / name)), codes=code)
        assert np.abs(output.astype(float) - expected).max() <= 1, name

    # The export serves the same codes: the SavedModel backend with the same seed writes
    # the run's pixels (within rounding).
    export.main(*parse_args(export.OPTIONS, [f"--run_dir={run}",
                                             f"--output={tmp_path / 'export'}"],
                            check=export.check))
    info = json.loads((tmp_path / "export" / "1" / "config.json").read_text())["export"]
    assert info["latent_dim"] == NZ and "translate_style" in info["signatures"]
    translate_cli(f"--model={tmp_path / 'export'}", f"--input={inputs}",
                  f"--output={tmp_path / 'c'}", "--num_samples=3", "--seed=5")
    for name, output in read_folder(tmp_path / "c").items():
        assert np.abs(output.astype(float) - a[name]).max() <= 1, name

    with pytest.raises(UserError, match="every sample would be the same"):
        translate_cli(f"--model={run}", f"--input={inputs}", f"--output={tmp_path / 'x'}",
                      f"--style_image={style}", "--num_samples=2")


def test_eval_diversity_of_a_multimodal_run(bicycle_run, tmp_path):
    from PIL import Image

    from tfi2i.cli import eval as eval_cli
    from tfi2i.cli.common import parse_args

    run, _, _, _ = bicycle_run
    test = tmp_path / "data" / "test"
    test.mkdir(parents=True)
    for i, image in enumerate(images(3, (32, 64), seed=21)):
        Image.fromarray(image).save(test / f"{i}.png")

    def diversity(*flags):
        out = tmp_path / "scores.json"
        eval_cli.main(*parse_args(eval_cli.OPTIONS, [
            f"--model={run}", f"--data_dir={tmp_path / 'data'}", "--metrics=diversity",
            "--diversity_spaces=pixel", f"--json_out={out}", *flags], check=eval_cli.check))
        return json.loads(out.read_text())

    scores = diversity("--num_samples=4", "--seed=1")
    assert scores["diversity_k"] == 4 and scores["diversity_inputs"] == 3
    assert scores["diversity_pixel"] > 0.005
    assert diversity("--num_samples=4", "--seed=1")["diversity_pixel"] == scores[
        "diversity_pixel"]


# The other latent methods, tiny (their test files' sizes): their export verifies every
# signature (the code and style ones against Keras, the drawing ones for new draws).
OTHER_METHODS = {
    "munit": dict(ngf=8, ndf=8, mlp_dim=16, n_res=1, n_layer=2, num_scales=2),
    "drit": dict(ngf=8, nef=8, ndf=8, n_res=1, n_layer=3, num_scales=1, content_d_layers=1,
                 content_d_kernel=3),
    "unit": dict(ngf=8, ndf=8, n_res=2, n_shared=1, num_scales=2, n_layer=3),
}


@pytest.mark.parametrize("method", sorted(OTHER_METHODS))
def test_each_latent_method_exports_its_ways(method, tmp_path):
    from tfi2i.methods import get_method

    keras.utils.set_random_seed(2)
    model = get_method(method)(direction="BtoA", **OTHER_METHODS[method])
    model.build_for_size(32, 32)
    report = export_generators(model.generators, model.size_divisor, {"method": method},
                               tmp_path / method, code_generators=model.code_generators,
                               style_encoders=model.style_encoders)
    keys = set(report["signatures"])
    if method == "unit":  # one output per input: the plain signatures of both directions
        assert model.latent_dim == 0 and "translate_code" not in keys
        assert {"serving_default", "AtoB", "BtoA", "translate_float_AtoB"} <= keys
        assert max(report["max_abs_diff"].values()) <= 1
        return
    assert report["latent_dim"] == model.latent_dim == 8
    for direction in ("AtoB", "BtoA"):
        assert {f"translate_code_{direction}", f"translate_float_style_{direction}",
                f"style_code_{direction}"} <= keys
        assert report["max_abs_diff"][f"translate_float_code_{direction}"] < 1e-4
        assert report["max_abs_diff"][f"translate_float_style_{direction}"] < 1e-4
    assert "translate_float_BtoA" in report["sampled"]
