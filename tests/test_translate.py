"""Translating any size: reflect padding, tiling without seams, files and folders, CLIs."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfi2i.errors import UserError
from tfi2i.export import Translator, load, translate_files
from tfi2i.export.savedmodel import keras_reference
from tfi2i.export.translator import center_crop, keras_net, reflect_pad, write_image
from tfi2i.nets import define_G

FLOWERS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                       "iphone2dslr_flower", "testA")


def smooth_images(count, height, width, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 5, 7, 3)).astype(np.float32)
    return np.clip(tf.image.resize(coarse, (height, width), "bicubic").numpy(), 0, 255).astype(
        np.uint8)


def conv_net(kernel_size, layers=2, seed=0):
    """A net of stride-1 convolutions: shift-equivariant away from its zero padding."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = inputs
    for _ in range(layers - 1):
        x = keras.layers.Conv2D(8, kernel_size, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(3, kernel_size, padding="same", activation="tanh")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(0)
    return define_G("unet_32", 3, 3, ngf=8, norm="batch", use_dropout=True, init_type="kaiming")


# -- padding ---------------------------------------------------------------------

@pytest.mark.parametrize("size,padded", [((5, 7), (9, 12)), ((3, 2), (20, 17)), ((1, 4), (4, 8))])
def test_reflect_pad_is_numpys_reflect_centred_and_crops_back(size, padded):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype(np.float32)
    (h, w), (hp, wp) = size, padded
    expected = x
    for axis, (n, target) in enumerate(zip(size, padded), start=1):
        pads = [(0, 0)] * 4
        pads[axis] = ((target - n) // 2, target - n - (target - n) // 2)
        # numpy reflects repeatedly when the pad exceeds the size; a 1 px axis repeats.
        expected = np.pad(expected, pads, mode="reflect" if n > 1 else "edge")
    y = reflect_pad(tf.constant(x), hp, wp).numpy()
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(center_crop(y, h, w), x)


# -- the translator ----------------------------------------------------------------

def test_any_size_matches_keras_and_keeps_structure(unet):
    translator = Translator({"AtoB": keras_net(unet)}, 32, batch_size=2)
    images = [smooth_images(1, h, w, seed=i)[0] for i, (h, w) in
              enumerate([(37, 45), (32, 32), (50, 20), (36, 44), (5, 3)])]
    outputs = translator.translate(images)
    for image, output in zip(images, outputs):
        assert output.shape == image.shape and output.dtype == np.uint8
        expected = (keras_reference(unet, image[None], 32)[0] + 1) * 127.5
        assert np.abs(output - expected).max() <= 0.501
    batch = smooth_images(3, 40, 24)
    assert translator.translate(batch).shape == batch.shape
    floats = translator.translate(batch[0] / 127.5 - 1.0)
    assert floats.dtype == np.float32 and floats.shape == batch[0].shape
    with pytest.raises(UserError, match="Unknown direction"):
        translator.translate(batch, "BtoA")
    with pytest.raises(UserError, match="shape"):
        translator.translate(np.zeros((4,), np.uint8))
    with pytest.raises(UserError, match="4 channels; this model takes 3"):
        translator.translate(np.zeros((8, 8, 4), np.uint8))


def test_tiling_a_pointwise_net_equals_untiled():
    net = keras_net(conv_net(1))
    image = smooth_images(1, 150, 111)[0]
    whole = Translator({"x": net}, 4, tile_size=1024).translate(image / 127.5 - 1.0)
    tiled = Translator({"x": net}, 4, tile_size=48, tile_overlap=12).translate(
        image / 127.5 - 1.0)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def seam_score(tiled, whole):
    """Largest mean step, across any row or column, of the difference tiled - untiled.

    A seam is a line where the difference jumps; content the two share cancels.
    """
    diff = (tiled - whole).mean(axis=-1)
    return max(np.abs(np.diff(diff, axis=0)).mean(axis=1).max(),
               np.abs(np.diff(diff, axis=1)).mean(axis=0).max())


def tile_three_ways(net, divisor, image):
    """(untiled, blended tiles, abutting tiles) outputs of one image."""
    whole = Translator({"x": net}, divisor, tile_size=1024).translate(image)
    blended, hard = [Translator({"x": net}, divisor, tile_size=96, tile_overlap=overlap,
                                batch_size=8).translate(image) for overlap in (32, 0)]
    return whole, blended, hard


def test_tiling_a_local_net_matches_untiled_within_tolerance():
    # Receptive field 17 px: tiles agree with the whole image except within 8 px
    # of a tile edge, which the blending weights down.
    image = smooth_images(1, 300, 260, seed=1)[0] / 127.5 - 1.0
    whole, blended, hard = tile_three_ways(keras_net(conv_net(5, layers=4)), 4, image)
    assert blended.shape == whole.shape
    assert np.abs(blended - whole).max() < 0.02
    assert np.abs(blended - whole).mean() < 1e-3
    assert np.abs(hard - whole).max() > 0.05  # the test can tell


def test_tiling_leaves_no_seam():
    image = smooth_images(1, 300, 260, seed=2)[0] / 127.5 - 1.0
    whole, blended, hard = tile_three_ways(keras_net(conv_net(7, layers=4)), 4, image)
    # Abutting tiles show seams; overlapping, blended ones don't.
    assert seam_score(hard, whole) > 5 * seam_score(blended, whole)
    natural_step = np.abs(np.diff(whole.mean(-1), axis=1)).mean(axis=0).max()
    assert seam_score(blended, whole) < 0.1 * natural_step


def test_tiling_a_unet_leaves_no_seam():
    # The default (reference) initialisation: outputs vary smoothly, like a trained net's.
    keras.utils.set_random_seed(5)
    G = define_G("unet_32", 3, 3, ngf=8, norm="batch")
    image = smooth_images(1, 300, 260, seed=3)[0] / 127.5 - 1.0
    whole, blended, hard = tile_three_ways(keras_net(G), 32, image)
    assert seam_score(hard, whole) > 10 * seam_score(blended, whole)
    assert np.abs(blended - whole).mean() < 0.05 * np.abs(whole).mean()


def test_bad_tile_options_are_user_errors(unet):
    with pytest.raises(UserError, match="tile_overlap"):
        Translator({"x": keras_net(unet)}, 32, tile_size=64, tile_overlap=32)


# -- files and folders -------------------------------------------------------------

@pytest.fixture()
def mixed_folder(tmp_path):
    """Photos of mixed sizes in nested folders, plus a corrupt image and a non-image."""
    folder = tmp_path / "in"
    (folder / "sub" / "deeper").mkdir(parents=True)
    if os.path.isdir(FLOWERS):
        sizes = {}
        for name in sorted(os.listdir(FLOWERS)):
            with Image.open(os.path.join(FLOWERS, name)) as image:
                sizes.setdefault(image.size, name)
        # Three different sizes, 360x480 and 360x270 among them.
        picks = list(sizes.values())[:3]
        for pick, sub in zip(picks, [".", "sub", "sub/deeper"]):
            shutil.copy(os.path.join(FLOWERS, pick), folder / sub / pick)
    else:
        for path, (h, w) in zip(["a.jpg", "sub/b.jpg", "sub/deeper/c.png"],
                                [(360, 480), (360, 270), (101, 67)]):
            Image.fromarray(smooth_images(1, h, w)[0]).save(folder / path)
    (folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def relative_images(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)


def test_translate_files_keeps_names_paths_and_sizes(unet, mixed_folder, tmp_path):
    translator = Translator({"AtoB": keras_net(unet)}, 32, tile_size=512, batch_size=2)
    done, skipped = translate_files(translator, mixed_folder, tmp_path / "out", progress=False)
    assert done == 3 and [name for name, _ in skipped] == [os.path.join("sub", "broken.jpg")]
    inputs = [p for p in relative_images(mixed_folder) if p.endswith((".jpg", ".png"))
              and "broken" not in p]
    assert relative_images(tmp_path / "out") == inputs
    sizes = set()
    for name in inputs:
        with Image.open(mixed_folder / name) as a, Image.open(tmp_path / "out" / name) as b:
            assert a.size == b.size
            sizes.add(a.size)
    assert len(sizes) == 3


def test_translate_files_errors(unet, tmp_path):
    translator = Translator({"AtoB": keras_net(unet)}, 32)
    with pytest.raises(UserError, match="does not exist"):
        translate_files(translator, tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No images"):
        translate_files(translator, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UserError, match="neither a run directory"):
        load(tmp_path / "empty")


# -- run directory, CLIs -------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A pix2pix run directory as training leaves it (untrained weights suffice)."""
    from tfi2i.config import resolve_config
    from tfi2i.methods import get_method

    run = tmp_path_factory.mktemp("runs") / "pix2pix_tiny"
    config = resolve_config("pix2pix", None, {
        "netG": "unet_32", "ngf": 8, "ndf": 8, "crop_size": 32, "direction": "BtoA",
        "init_type": "kaiming", "run_dir": str(run)})
    keras.utils.set_random_seed(4)
    model = get_method("pix2pix").from_run_config(config)
    model.build_for_size(32, 32)
    os.makedirs(run / "checkpoints")
    (run / "config.json").write_text(json.dumps(config))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), run / "checkpoints",
                                         max_to_keep=1, checkpoint_name="ckpt")
    manager.save(checkpoint_number=1)
    return run, model


def test_load_a_run_directory(run_dir):
    run, model = run_dir
    translator = load(run)
    assert translator.directions == ["BtoA"]
    image = smooth_images(1, 40, 50)[0]
    expected = (keras_reference(model.G, image[None], 32)[0] + 1) * 127.5
    assert np.abs(translator.translate(image) - expected).max() <= 0.501


def cli(module, *flags):
    return subprocess.run([sys.executable, "-m", f"tfi2i.cli.{module}", *flags],
                          capture_output=True, text=True)


def test_export_and_translate_command_lines(run_dir, mixed_folder, tmp_path):
    run, model = run_dir
    export_dir = tmp_path / "export" / "tiny"
    result = cli("export", f"--run_dir={run}", f"--output={export_dir}",
                 "--format=savedmodel,tflite", "--quantize=float16,dynamic")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "translate_bytes: max abs diff" in result.stdout
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert {"BtoA_float16.tflite", "BtoA_dynamic.tflite"} <= set(os.listdir(export_dir / "tflite"))

    out = tmp_path / "out"
    result = cli("translate", f"--model={export_dir}", f"--input={mixed_folder}",
                 f"--output={out}", "--batch_size=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Translated 3 images" in result.stdout and "skipped 1" in result.stdout
    # Each file holds the translation of its own input by the exported BtoA generator:
    # what translator.translate gives, and within rounding of the Keras generator the
    # export came from.
    translator = load(export_dir)
    assert translator.directions == ["BtoA"]
    names = relative_images(out)
    assert len(names) == 3
    for name in names:
        with Image.open(mixed_folder / name) as a, Image.open(out / name) as b:
            assert a.size == b.size
            image, written = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
        expected = translator.translate(image)
        keras_output = (keras_reference(model.G, image[None], 32)[0] + 1) * 127.5
        assert np.abs(expected - keras_output).max() <= 0.501, name
        # The same pixels, except where the other process's float rounding flipped a
        # grey level; a JPEG output went through the same encoder, which spreads such a
        # flip over its 8x8 block (measured: 0.08% of values, by <= 4).
        if name.endswith(".png"):
            diff = np.abs(written.astype(int) - expected)
            assert (diff > 0).mean() < 0.005 and diff.max() <= 1, (name, (diff > 0).mean())
        else:
            write_image(str(tmp_path / "reference" / name), expected)
            with Image.open(tmp_path / "reference" / name) as reference:
                diff = np.abs(written.astype(int) - np.asarray(reference))
            assert (diff > 0).mean() < 0.005 and diff.max() <= 8, (name, (diff > 0).mean())
        assert np.abs(written.astype(int) - image).mean() > 10, name  # not the input

    # A user error is one line, without a traceback.
    result = cli("translate", f"--model={tmp_path / 'nope'}", f"--input={mixed_folder}",
                 f"--output={out}")
    assert result.returncode == 2
    assert f"error: --model={tmp_path / 'nope'} is invalid" in result.stderr
    assert "Traceback" not in result.stderr
