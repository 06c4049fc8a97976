"""Day one with real images (issue 12, part 2): quiet commands, EXIF orientation, the same
formats and nested folders everywhere, tfi2i-eval's --skip_bad_images, and KID without a
fake spread."""

import io
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tfi2i.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, array, fmt=None, orientation=None, **kwargs):
    """Saves uint8 `array` as `path` (format from the name unless given), with an EXIF tag."""
    if isinstance(path, (str, os.PathLike)):
        os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    if fmt == "JPEG" or str(path).lower().endswith((".jpg", ".jpeg")):
        kwargs.setdefault("quality", 100)
    if fmt == "WEBP" or str(path).lower().endswith(".webp"):
        kwargs.setdefault("lossless", True)
    Image.fromarray(array).save(path, format=fmt, **kwargs)
    return str(path) if isinstance(path, (str, os.PathLike)) else path


def _gradient(h, w, seed=0):
    """An image whose every pixel differs from its mirror images and rotations."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1),
                     rng.integers(0, 256, (h, w))], axis=-1)
    return base.astype(np.uint8)


# --- Quiet runs --------------------------------------------------------------------

NOISE = ("cuInit", "remapper failed", "oneDNN", "cpu_feature_guard", "cudart_stub",
         "absl::InitializeLog", "functional_saver", "This TensorFlow binary is optimized")


def _env_without_log_level(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_a_command_run_prints_no_tensorflow_noise_and_eval_skips_bad_images(tmp_path):
    """One short tfi2i-eval run, as a newcomer starts it (no TF_CPP_MIN_LOG_LEVEL set)."""
    rng = np.random.default_rng(0)
    for folder in ("real", "fake"):
        for name in ("a.png", "b.jpg"):
            # 16 px: SSIM, which the paired metrics compute, needs 11.
            _write(tmp_path / folder / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    (tmp_path / "fake" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = [sys.executable, "-m", "tfi2i.cli.eval", f"--real_dir={tmp_path / 'real'}",
            f"--fake_dir={tmp_path / 'fake'}", "--metrics=psnr,l1"]
    result = subprocess.run(args + ["--skip_bad_images"], capture_output=True, text=True,
                            env=_env_without_log_level(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"n_pairs": 2' in result.stdout
    # The skipped file is named in a warning; nothing else reaches stderr.
    assert "c.png" in result.stderr and "Skipping 1 of 3" in result.stderr
    for noise in NOISE:
        assert noise not in result.stderr, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(("I0000", "E0000"))]
    # (Without --skip_bad_images, c.png stops the run: see the in-process test below.)


@pytest.mark.parametrize("env, argv, quiet", [
    ({}, ["tfi2i-train"], True),
    ({"TF_CPP_MIN_LOG_LEVEL": "0"}, ["tfi2i-train"], False),
    ({}, ["tfi2i-train", "--verbosity=1"], False),
    ({}, ["tfi2i-eval", "-v", "0"], False),
])
def test_the_user_log_level_or_verbosity_is_left_alone(env, argv, quiet):
    """In a fresh interpreter: what importing tfi2i.cli does to the environment."""
    code = ("import os, sys; sys.argv = %r; import tfi2i.cli, tfi2i.cli.quiet as q; "
            "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), "
            "any(type(f).__name__ == '_FilterTensorflowImport' for f in sys.meta_path))" % argv)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env_without_log_level(**env), timeout=60)
    assert result.returncode == 0, result.stderr
    level, hooked = result.stdout.split()
    assert level == ("3" if quiet else env.get("TF_CPP_MIN_LOG_LEVEL", "None"))
    assert hooked == str(quiet)


def test_noise_filters_keep_real_messages():
    from tfi2i.cli.quiet import _NOISE, DropLibraryInfo

    assert _NOISE.match("I0000 00:00:1796172804.123746   27796 port.cc:153] oneDNN custom "
                        "operations are on.")
    assert _NOISE.match("WARNING: All log messages before absl::InitializeLog() is called are "
                        "written to STDERR")
    for kept in ("F0000 00:00:1.2 1 cpu_feature_guard.cc:1] The TensorFlow library was "
                 "compiled to use AVX instructions", "E0000 00:00:1.2 1 x.cc:1] real error",
                 "Traceback (most recent call last):"):
        assert not _NOISE.match(kept)
    drop = DropLibraryInfo()
    tf_file = os.path.join(os.path.dirname(tf.__file__), "python", "checkpoint", "saver.py")

    def record(path, level):
        return logging.LogRecord("absl", level, path, 1, "m", None, None)

    assert not drop.filter(record(tf_file, logging.INFO))
    assert drop.filter(record(tf_file, logging.WARNING))
    assert drop.filter(record(os.path.join(REPO, "tfi2i", "training", "trainer.py"),
                              logging.INFO))


# --- EXIF orientation ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_decode_turns_every_orientation_upright_as_pil_exif_transpose(fmt):
    from tfi2i.data.decode import decode_image

    stored = _gradient(5, 7)
    for orientation in range(1, 9):
        buffer = io.BytesIO()
        _write(buffer, stored, fmt, orientation)
        data = buffer.getvalue()
        upright = decode_image(tf.constant(data), tf.uint8).numpy()
        raw = decode_image(tf.constant(data), tf.uint8, exif_orientation=False).numpy()
        with Image.open(io.BytesIO(data)) as image:
            reference = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        if fmt != "TIFF":  # Pillow turns TIFFs upright itself while loading them.
            with Image.open(io.BytesIO(data)) as image:
                np.testing.assert_array_equal(raw, np.asarray(image.convert("RGB")))
        np.testing.assert_array_equal(upright, reference, err_msg=f"orientation {orientation}")
        if fmt in ("PNG", "WEBP", "TIFF"):  # Lossless: the stored pixels exactly.
            np.testing.assert_array_equal(raw, stored)


@pytest.fixture
def rotated_photo(tmp_path):
    """A phone-style JPEG: pixels stored turned 90 degrees, tag 6 says turn them back."""
    yy, xx = np.mgrid[0:12, 0:20]
    # Smooth (JPEG keeps it within a few levels), and no two turns of it alike.
    upright = np.stack([yy * 20, xx * 12, 255 - (yy + xx) * 8], -1).astype(np.uint8)
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # 12 wide, 20 high on disk
    path = _write(tmp_path / "photo.jpg", stored, orientation=6, subsampling=0)
    return path, upright, stored


def test_rotated_jpeg_is_upright_in_data_translate_and_eval_unless_turned_off(
        rotated_photo, tmp_path):
    from tfi2i.cli import eval as eval_cli
    from tfi2i.config import resolve_config
    from tfi2i.data import inspect_image, unpaired_dataset
    from tfi2i.export.translator import read_image

    path, upright, stored = rotated_photo
    assert np.abs(read_image(path).astype(int) - upright).max() <= 6      # JPEG's loss
    assert read_image(path, exif_orientation=False).shape == stored.shape
    assert eval_cli._load(path, None).shape == upright.shape
    assert eval_cli._load(path, None, exif_orientation=False).shape == stored.shape
    info = inspect_image(path)
    assert (info.width, info.height, info.orientation) == (20, 12, 6)
    assert (inspect_image(path, exif_orientation=False).width) == 12
    # Training data: a domain of this one photo, at its own size (preprocess none).
    root = tmp_path / "data"
    for domain in ("trainA", "trainB"):
        os.makedirs(root / domain)
        os.link(path, root / domain / "photo.jpg")
    for exif, expected in ((True, upright), (False, stored)):
        batch, _ = next(iter(unpaired_dataset(str(root), "train", preprocess="none",
                                              training=False, exif_orientation=exif)))
        got = np.round((batch[0].numpy() + 1) * 127.5)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 6
    # The platform option, on by default, reaches the config (and so the trainer).
    assert resolve_config("pix2pix", None, {})["exif_orientation"] is True
    assert resolve_config("pix2pix", None, {"exif_orientation": False})[
        "exif_orientation"] is False


# --- One set of formats; nested folders ----------------------------------------------------

def _format_folder(folder):
    """One image per supported format, flat grey 10, 20, ..., plus files that are not read."""
    names = ["a.png", "b.jpg", "c.bmp", "d.gif", "e.webp", "f.tif", "g.TIFF"]
    for i, name in enumerate(names):
        _write(folder / name, np.full((8, 16, 3), 10 * (i + 1), np.uint8))
    (folder / "h.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (folder / "notes.txt").write_text("not an image")
    return names


def test_data_translate_and_eval_read_the_same_formats_and_report_others(tmp_path, caplog):
    from tfi2i.cli.eval import ScoreOptions, folder_images
    from tfi2i.data import scan_unpaired, unpaired_dataset
    from tfi2i.export.translator import input_images, read_image

    root = tmp_path / "data"
    names = _format_folder(root / "trainA")
    _format_folder(root / "trainB")
    with caplog.at_level(logging.WARNING):
        domain = scan_unpaired(str(root), "train").a
    assert [os.path.basename(p) for p in domain.paths] == names
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 other files (1 .heic, 1 .txt)" in warning and "h.heic" in warning
    _, translate_names = input_images(root / "trainA")
    assert translate_names == names
    assert [os.path.basename(p) for p in folder_images(root / "trainA", ScoreOptions())] == names
    # Every format decodes to its grey level, in the pipeline and in translation.
    batch, _ = next(iter(unpaired_dataset(str(root), "train", preprocess="none",
                                          training=False, batch_size=len(names))))
    levels = np.round((batch.numpy()[:, 0, 0, 0] + 1) * 127.5)
    np.testing.assert_allclose(levels, [10 * (i + 1) for i in range(len(names))], atol=1)
    assert read_image(str(root / "trainA" / "f.tif"))[0, 0, 0] == 60


def test_nested_folders_are_read_like_the_reference_and_splits_are_not_mixed(tmp_path):
    from tfi2i.cli.eval import ScoreOptions, evaluate_folders
    from tfi2i.data import scan_paired, scan_unpaired
    from tfi2i.export import Translator, translate_files

    def image(path, value, size=(8, 8)):
        return _write(path, np.full((*size, 3), value, np.uint8))

    root = tmp_path / "data"
    # Unpaired domains with sub-folders (e.g. one per flower species).
    image(root / "trainA" / "x.png", 1)
    image(root / "trainA" / "roses" / "r1.png", 2)
    image(root / "trainA" / "roses" / "deep" / "r2.png", 3)
    image(root / "trainB" / "tulips" / "t1.png", 4)
    domains = scan_unpaired(str(root), "train")
    assert [os.path.relpath(p, root / "trainA") for p in domains.a.paths] == [
        "x.png", os.path.join("roses", "r1.png"), os.path.join("roses", "deep", "r2.png")]
    assert len(domains.b) == 1
    # A split folder inside a domain folder would leak test images into training: refused.
    image(root / "trainA" / "test" / "leak.png", 5)
    with pytest.raises(UserError, match="named like a dataset split"):
        scan_unpaired(str(root), "train", skip_bad_images=True)
    # Paired AB images only in sub-folders of the split.
    image(root / "val" / "set1" / "p.png", 6, (8, 16))
    assert len(scan_paired(str(root), "val")) == 1
    # Paired A/B folders: files pair by their path below A/ and B/, not by name alone.
    for sub in ("s1", "s2"):  # 16 px: SSIM, which eval's paired metrics compute, needs 11.
        image(root / "test" / "A" / sub / "001.png", 7, (16, 16))
        image(root / "test" / "B" / sub / "001.jpg", 8, (16, 16))
    pairs = scan_paired(str(root), "test")
    assert [os.path.relpath(b, root / "test" / "B") for b in pairs.b_paths] == [
        os.path.join("s1", "001.jpg"), os.path.join("s2", "001.jpg")]
    # Translate keeps relative paths; eval pairs the outputs with the inputs by them.
    done, _ = translate_files(Translator({"AtoB": lambda x: x}, 1), root / "test" / "A",
                              tmp_path / "out", progress=False)
    assert done == 2 and os.path.isfile(tmp_path / "out" / "s2" / "001.png")
    scores = evaluate_folders(["l1"], str(tmp_path / "out"), str(root / "test" / "A"),
                              options=ScoreOptions())
    assert scores["n_pairs"] == 2 and scores["l1"] == pytest.approx(0.0, abs=1e-3)


# --- tfi2i-eval: bad images and KID on small sets --------------------------------------------

def test_eval_folders_skip_bad_images_in_fid_and_paired_metrics(tmp_path, monkeypatch):
    import keras

    from tfi2i.cli import eval as eval_cli
    from tfi2i.metrics.fid import FeatureExtractor

    mean_colour = keras.Sequential([keras.Input((299, 299, 3)),
                                    keras.layers.GlobalAveragePooling2D()])
    monkeypatch.setattr(eval_cli, "_feature_extractor",
                        lambda options: FeatureExtractor(model=mean_colour, batch_size=4))
    for i in range(4):  # 16 px: SSIM, which the paired metrics compute, needs 11.
        _write(tmp_path / "real" / f"{i}.png", np.full((16, 16, 3), 40 * i, np.uint8))
        _write(tmp_path / "fake" / f"{i}.png", np.full((16, 16, 3), 40 * i + 5, np.uint8))
    (tmp_path / "fake" / "9.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    metrics = ["fid", "kid", "l1"]
    with pytest.raises(UserError, match="9.jpg.*\n.*--skip_bad_images"):
        eval_cli.evaluate_folders(metrics, str(tmp_path / "fake"), str(tmp_path / "real"),
                                  options=eval_cli.ScoreOptions(cache=False))
    options = eval_cli.ScoreOptions(cache=False, skip_bad_images=True)
    scores = eval_cli.evaluate_folders(metrics, str(tmp_path / "fake"), str(tmp_path / "real"),
                                       options=options)
    assert (scores["n_real"], scores["n_fake"], scores["n_pairs"]) == (4, 4, 4)
    assert scores["l1"] == pytest.approx(5 / 255, abs=1e-6)
    # 4 images each, subsets of 1000 asked: one estimate, no spread, and the note says so.
    assert scores["kid_std"] is None and "no spread" in scores["kid_note"]
    table = eval_cli.format_table(scores)
    assert "kid_std" in table and "n/a" in table


def test_kid_spread_only_where_subsets_differ():
    from tfi2i.metrics import fid as fid_lib

    rng = np.random.default_rng(0)
    x, y = rng.random((30, 8)), rng.random((20, 8)) * 1.3
    # Both sets no larger than the subset: every draw would be both whole sets. One
    # estimate on the whole sets, and no std (it was ~1e-16, a spread only in looks).
    for subset_size in (20, 1000):
        assert fid_lib.kid_from_features(x[:20], y, 100, subset_size) == (
            fid_lib.polynomial_mmd2_unbiased(x[:20], y), None)
        assert "no spread" in fid_lib.kid_spread_note(20, 20, subset_size)
    # One set larger: subsets of it differ, so there is a spread, and the note says whose.
    _, std = fid_lib.kid_from_features(x, y, num_subsets=50, subset_size=1000)
    assert std > 1e-6
    assert "larger set only" in fid_lib.kid_spread_note(30, 20, 1000)
    # Subsets smaller than both sets: the usual spread, no note.
    _, std = fid_lib.kid_from_features(x, y, num_subsets=50, subset_size=10)
    assert std > 1e-6
    assert fid_lib.kid_spread_note(30, 20, 10) is None
