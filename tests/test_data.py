"""Tests of tfi2i.data: decoding, layouts, preprocessing, the step-indexed stream,
bad inputs and the built-in sample dataset."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfi2i.data import (inspect_image, load_image, num_examples, paired_dataset,
                        resolve_dataset, steps_per_epoch)
from tfi2i.data.sample import build_sample
from tfi2i.errors import UserError

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data")


def _save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def _noise(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _flat(value, h, w):
    return np.full((h, w, 3), value, np.uint8)


def _to_unit(x):
    return (np.asarray(x) + 1.0) / 2.0


def _batches(ds):
    return [(a.numpy(), b.numpy()) for a, b in ds]


def _ids(ds):
    """Example ids of a stream of flat images whose value is 10 * id (A half)."""
    return [int(round(v)) for a, _ in ds for v in _to_unit(a[:, 0, 0, 0]) * 255 / 10]


def _id_dataset(root, n, size=8, split="train"):
    """n AB images; A of example i is flat 10 * i, B flat 255 - 10 * i."""
    for i in range(n):
        _save(root / split / f"{i:02d}.png",
              np.concatenate([_flat(10 * i, size, size), _flat(255 - 10 * i, size, size)], 1))
    return str(root)


# --- Decoding ---------------------------------------------------------------

def test_decode_formats_give_rgb_in_minus_one_one(tmp_path):
    rng = np.random.default_rng(0)
    rgb = _noise(rng, 6, 9)
    expect = rgb / 255.0 * 2 - 1
    for name, kwargs in (("a.png", {}), ("a.bmp", {})):
        out = load_image(_save(tmp_path / name, rgb, **kwargs)).numpy()
        assert out.shape == (6, 9, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, expect, atol=1e-6, err_msg=name)

    # JPEG decodes bit for bit as PIL does (the reference loader), on a smooth image
    # and on noise with chroma subsampling. TF's default IDCT is off by up to 7 grey
    # levels on these very files (3 on the gradient), so this tells the decoders apart.
    smooth = np.broadcast_to(np.linspace(40, 200, 16)[None, :, None], (16, 16, 3)).astype(np.uint8)
    for name, image in (("a.jpg", smooth), ("n.jpg", _noise(np.random.default_rng(7), 24, 40))):
        path = _save(tmp_path / name, image, quality=95)
        out = load_image(path).numpy()
        with Image.open(path) as decoded:
            pil = np.asarray(decoded.convert("RGB"))
        assert np.abs(pil.astype(int) - image).max() > 0, name  # lossy: PIL's own decode
        np.testing.assert_array_equal(np.round((out + 1.0) * 127.5), pil, err_msg=name)
        np.testing.assert_allclose(out, pil / 255.0 * 2 - 1, atol=1e-6, err_msg=name)

    # GIF: first frame, through its palette (few colours, so exact).
    few = np.repeat(np.repeat(rng.integers(0, 4, (2, 3)), 3, 0), 3, 1)
    colours = np.array([[255, 0, 0], [0, 128, 255], [10, 200, 30], [250, 250, 5]], np.uint8)
    frame = colours[few]
    out = load_image(_save(tmp_path / "a.gif", frame)).numpy()
    np.testing.assert_allclose(out, frame / 255.0 * 2 - 1, atol=1e-6)

    # Grayscale: three equal channels.
    gray = rgb[..., 0]
    out = load_image(_save(tmp_path / "g.png", gray)).numpy()
    np.testing.assert_allclose(out, np.repeat(gray[..., None], 3, 2) / 255.0 * 2 - 1, atol=1e-6)

    # RGBA: alpha dropped, colour kept as is (PIL's convert("RGB")), also where alpha is 0.
    alpha = rng.integers(0, 256, (6, 9, 1), dtype=np.uint8)
    alpha[0, 0] = 0
    rgba = np.concatenate([rgb, alpha], -1)
    out = load_image(_save(tmp_path / "t.png", rgba)).numpy()
    np.testing.assert_allclose(out, expect, atol=1e-6)

    # 16-bit PNG keeps 16-bit precision.
    g16 = (rng.integers(0, 255, (6, 9)) * 257 + 100).astype(np.uint16)
    out = load_image(_save(tmp_path / "d.png", g16)).numpy()
    np.testing.assert_allclose(out[..., 1], g16 / 65535.0 * 2 - 1, atol=1e-6)
    assert np.abs(out[..., 0] - (np.round(g16 / 257) / 255 * 2 - 1)).max() > 1e-4


def test_inspect_image_finds_files_tf_cannot_use(tmp_path):
    rng = np.random.default_rng(1)
    good = _save(tmp_path / "good.jpg", _noise(rng, 64, 48))
    assert inspect_image(good).problem is None
    assert (inspect_image(good).width, inspect_image(good).height) == (48, 64)
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    assert "cannot be decoded" in inspect_image(str(tmp_path / "junk.png")).problem
    data = open(good, "rb").read()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert "truncated" in inspect_image(str(tmp_path / "cut.jpg")).problem
    ppm = _save(tmp_path / "x.png", _noise(rng, 4, 4), format="PPM")
    assert "PPM" in inspect_image(ppm).problem
    palette_bmp = str(tmp_path / "p.bmp")
    Image.fromarray(_noise(rng, 4, 4)).convert("P").save(palette_bmp)
    assert "palette BMP" in inspect_image(palette_bmp).problem


# --- Layouts, split and direction -------------------------------------------

def test_ab_split_and_direction(tmp_path):
    root = _id_dataset(tmp_path, 3, size=16)
    for direction, (inp, tgt) in (("AtoB", (20, 235)), ("BtoA", (235, 20))):
        ds = paired_dataset(root, "train", direction=direction, training=False, crop_size=16,
                            batch_size=3)
        a, b = _batches(ds)[0]
        assert a.shape == b.shape == (3, 16, 16, 3)
        np.testing.assert_allclose(_to_unit(a[2]) * 255, inp, atol=1e-3)
        np.testing.assert_allclose(_to_unit(b[2]) * 255, tgt, atol=1e-3)


@pytest.mark.parametrize("layout", ["inside", "beside"])
def test_a_b_folders_are_matched_by_stem(tmp_path, layout):
    a_dir, b_dir = ((tmp_path / "train" / "A", tmp_path / "train" / "B") if layout == "inside"
                    else (tmp_path / "trainA", tmp_path / "trainB"))
    # B files have other extensions and are written in another order.
    for stem, value in (("x", 30), ("y", 60), ("z", 90)):
        _save(a_dir / f"{stem}.png", _flat(value, 8, 8))
    for stem, value in (("z", 91), ("x", 31), ("y", 61)):
        _save(b_dir / f"{stem}.bmp", _flat(value, 8, 8))
    assert num_examples(tmp_path, "train") == 3
    a, b = _batches(paired_dataset(tmp_path, "train", training=False, crop_size=8,
                                   batch_size=3))[0]
    np.testing.assert_allclose(_to_unit(a[:, 0, 0, 0]) * 255, [30, 60, 90], atol=1e-3)
    np.testing.assert_allclose(_to_unit(b[:, 0, 0, 0]) * 255, [31, 61, 91], atol=1e-3)


def test_ambiguous_layout_is_an_error(tmp_path):
    _id_dataset(tmp_path, 2)
    _save(tmp_path / "train" / "A" / "1.png", _flat(0, 8, 8))
    _save(tmp_path / "train" / "B" / "1.png", _flat(0, 8, 8))
    with pytest.raises(UserError, match="ambiguous"):
        num_examples(tmp_path, "train")


def test_same_crop_and_flip_for_both_halves(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(4):
        half = _noise(rng, 24, 24)
        _save(tmp_path / "train" / f"{i}.png", np.concatenate([half, half], 1))
    for preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        ds = paired_dataset(tmp_path, "train", preprocess=preprocess, load_size=30, crop_size=16,
                            batch_size=2, epochs=3)
        for a, b in _batches(ds):
            assert a.shape == (2, 16, 16, 3)
            np.testing.assert_array_equal(a, b)


def test_crop_and_flip_are_random_windows_of_the_image(tmp_path):
    rng = np.random.default_rng(3)
    half = _noise(rng, 20, 20)
    _save(tmp_path / "train" / "0.png", np.concatenate([half, half], 1))
    ds = paired_dataset(tmp_path, "train", preprocess="crop", crop_size=12, epochs=40)

    def window(top, left, flip):
        crop = half[top:top + 12, left:left + 12]
        return crop[:, ::-1] if flip else crop

    windows = set()
    for a, _ in _batches(ds):
        crop = np.round(_to_unit(a[0]) * 255).astype(np.uint8)
        found = [(top, left, flip) for top in range(9) for left in range(9) for flip in (0, 1)
                 if np.array_equal(crop, window(top, left, flip))]
        assert found, "output is not a window of the image"
        windows.add(found[0])
    assert len({w[:2] for w in windows}) > 5
    assert {w[2] for w in windows} == {0, 1}


def test_resize_matches_pil_bicubic(tmp_path):
    rng = np.random.default_rng(4)
    smooth = np.asarray(Image.fromarray(_noise(rng, 12, 12)).resize((40, 40), Image.BICUBIC))
    _save(tmp_path / "test" / "0.png", np.concatenate([smooth, smooth], 1))
    for size in (24, 56):
        a, _ = _batches(paired_dataset(tmp_path, "test", training=False, crop_size=size))[0]
        ours = _to_unit(a[0]) * 255
        pil = np.asarray(Image.fromarray(smooth).resize((size, size), Image.BICUBIC), np.float64)
        assert np.abs(ours - pil).mean() < 0.6 and np.abs(ours - pil).max() < 4, size


def test_preprocess_modes_give_reference_sizes(tmp_path):
    # Separate folders allow non-square images: 30 high, 50 wide.
    rng = np.random.default_rng(5)
    for i in range(2):
        _save(tmp_path / "train" / "A" / f"{i}.png", _noise(rng, 30, 50))
        _save(tmp_path / "train" / "B" / f"{i}.png", _noise(rng, 30, 50))

    def shape(**kwargs):
        return _batches(paired_dataset(tmp_path, "train", **kwargs).take(1))[0][0].shape[1:3]

    # Reference: width load_size, height max(load_size * h // w, crop_size).
    assert shape(preprocess="scale_width", load_size=40, crop_size=16) == (24, 40)
    assert shape(preprocess="scale_width", load_size=40, crop_size=28) == (28, 40)
    assert shape(preprocess="scale_width_and_crop", load_size=40, crop_size=16) == (16, 16)
    assert shape(preprocess="none") == (30, 50)
    # round(30 / 8) * 8 = 32, round(50 / 8) * 8 = 48.
    assert shape(preprocess="none", size_divisor=8) == (32, 48)
    # Test time: width crop_size, aspect kept; crop and none keep the scale.
    assert shape(preprocess="scale_width", crop_size=20, training=False) == (12, 20)
    # 50 / 4 = 12.5 rounds to 12, half to even, as the reference's Python round.
    assert shape(preprocess="crop", crop_size=16, size_divisor=4, training=False) == (32, 48)
    with pytest.raises(UserError, match="smaller than crop_size"):
        paired_dataset(tmp_path, "train", preprocess="crop", crop_size=32)
    with pytest.raises(UserError, match="not a multiple"):
        paired_dataset(tmp_path, "train", crop_size=20, size_divisor=8)
    with pytest.raises(UserError, match="Unknown preprocess"):
        paired_dataset(tmp_path, "train", preprocess="resize")


def test_different_output_sizes_cannot_be_batched(tmp_path):
    _save(tmp_path / "test" / "A" / "0.png", _flat(0, 8, 8))
    _save(tmp_path / "test" / "B" / "0.png", _flat(0, 8, 8))
    _save(tmp_path / "test" / "A" / "1.png", _flat(0, 12, 8))
    _save(tmp_path / "test" / "B" / "1.png", _flat(0, 12, 8))
    with pytest.raises(UserError, match="cannot be batched"):
        paired_dataset(tmp_path, "test", preprocess="none", batch_size=2)
    shapes = [a.shape for a, _ in _batches(paired_dataset(tmp_path, "test", preprocess="none",
                                                          training=False))]
    assert shapes == [(1, 8, 8, 3), (1, 12, 8, 3)]


# --- The step-indexed training stream ---------------------------------------

def test_epochs_cover_all_examples_with_full_batches(tmp_path):
    root = _id_dataset(tmp_path, 7)
    ds = paired_dataset(root, "train", batch_size=3, epochs=2, preprocess="none")
    assert steps_per_epoch(7, 3) == 3
    assert ds.cardinality().numpy() == 6
    assert ds.element_spec[0].shape == (3, 8, 8, 3)
    ids = _ids(_batches(ds))
    first, second = ids[:9], ids[9:]
    for epoch in (first, second):
        assert sorted(epoch[:7]) == list(range(7))
        assert epoch[7:] == epoch[:2]  # The last batch wraps to the epoch's start.
    assert first[:7] != second[:7]


def test_resume_from_a_step_gives_the_same_batches(tmp_path):
    rng = np.random.default_rng(6)
    for i in range(5):
        _save(tmp_path / "train" / f"{i}.png", _noise(rng, 20, 40))
    options = dict(batch_size=2, epochs=3, load_size=24, crop_size=16, seed=7)
    full = _batches(paired_dataset(tmp_path, "train", **options))
    assert len(full) == 9
    for start in (1, 4, 8, 9):
        resumed = paired_dataset(tmp_path, "train", start_step=start, **options)
        assert resumed.cardinality().numpy() == 9 - start
        for (a0, b0), (a1, b1) in zip(full[start:], _batches(resumed), strict=True):
            np.testing.assert_array_equal(a0, a1)
            np.testing.assert_array_equal(b0, b1)
    again = _batches(paired_dataset(tmp_path, "train", **options))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(full, again))
    other = _batches(paired_dataset(tmp_path, "train", **{**options, "seed": 8}))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(full, other))
    cached = _batches(paired_dataset(tmp_path, "train", cache=True, **options))
    for (a0, b0), (a1, b1) in zip(full, cached, strict=True):
        np.testing.assert_allclose(a0, a1, atol=1e-5)
        np.testing.assert_allclose(b0, b1, atol=1e-5)
    with pytest.raises(UserError, match="start_step"):
        paired_dataset(tmp_path, "train", start_step=10, **options)


def test_orders_of_epochs_and_seeds_differ(tmp_path):
    root = _id_dataset(tmp_path, 12)
    ids = _ids(_batches(paired_dataset(root, "train", batch_size=4, epochs=3, seed=1)))
    epochs = [ids[i * 12:(i + 1) * 12] for i in range(3)]
    assert all(sorted(e) == list(range(12)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3
    assert epochs[0] != list(range(12))
    other = _ids(_batches(paired_dataset(root, "train", batch_size=4, epochs=1, seed=2)))
    assert other != epochs[0]


# --- Test split ---------------------------------------------------------------

def test_test_split_is_one_pass_in_file_order_without_jitter(tmp_path):
    root = _id_dataset(tmp_path, 5, size=20, split="test")
    ds = paired_dataset(root, "test", training=False, batch_size=2, load_size=30, crop_size=16)
    batches = _batches(ds)
    assert ds.cardinality().numpy() == 3
    assert [a.shape for a, _ in batches] == [(2, 16, 16, 3), (2, 16, 16, 3), (1, 16, 16, 3)]
    assert _ids(batches) == [0, 1, 2, 3, 4]
    rng = np.random.default_rng(7)
    half = _noise(rng, 20, 20)
    _save(tmp_path / "test" / "05.png", np.concatenate([half, half], 1))
    runs = [_batches(paired_dataset(root, "test", training=False, crop_size=16, seed=s))[-1]
            for s in (0, 1)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    resized = tf.image.resize(half / 255.0, (16, 16), "bicubic", antialias=True)
    np.testing.assert_allclose(_to_unit(runs[0][0][0]), np.clip(resized, 0, 1), atol=1e-5)


# --- Bad inputs ---------------------------------------------------------------

def test_bad_files_raise_naming_the_file(tmp_path):
    root = _id_dataset(tmp_path, 3)
    (tmp_path / "train" / "zz_junk.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(UserError, match="zz_junk.jpg.*cannot be decoded"):
        num_examples(root, "train")
    os.remove(tmp_path / "train" / "zz_junk.jpg")
    _save(tmp_path / "train" / "wide.png", _flat(0, 8, 24))
    with pytest.raises(UserError, match=r"wide.png: is 24x8; an AB image must be twice"):
        paired_dataset(root, "train")


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        num_examples(tmp_path / "nowhere", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="holds no images.*empty"):
        num_examples(tmp_path, "train")
    (tmp_path / "train" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="holds no images.*notes.txt"):
        num_examples(tmp_path, "train")
    with pytest.raises(UserError, match="has no split 'test'.*train"):
        num_examples(tmp_path, "test")
    (tmp_path / "valA").mkdir()
    with pytest.raises(UserError, match="valA has no partner folder.*valB"):
        num_examples(tmp_path, "val")


def test_unmatched_and_mismatched_pairs(tmp_path):
    for stem in ("1", "2"):
        _save(tmp_path / "train" / "A" / f"{stem}.png", _flat(0, 8, 8))
        _save(tmp_path / "train" / "B" / f"{stem}.png", _flat(0, 8, 8))
    _save(tmp_path / "train" / "A" / "lonely.png", _flat(0, 8, 8))
    with pytest.raises(UserError, match=r"A/lonely.png: has no partner in .*B"):
        num_examples(tmp_path, "train")
    os.remove(tmp_path / "train" / "A" / "lonely.png")
    _save(tmp_path / "train" / "B" / "2.png", _flat(0, 9, 8))
    with pytest.raises(UserError, match=r"B/2.png: is 8x9 but its partner"):
        num_examples(tmp_path, "train")


def test_skip_bad_images_skips_and_counts(tmp_path, caplog):
    root = _id_dataset(tmp_path, 4)
    (tmp_path / "train" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnonsense")
    _save(tmp_path / "train" / "square.png", _flat(0, 8, 8))
    with caplog.at_level(logging.WARNING):
        assert num_examples(root, "train", skip_bad_images=True) == 4
    assert "Skipping 2 of 6" in caplog.text and "bad.png" in caplog.text
    ids = _ids(_batches(paired_dataset(root, "train", batch_size=4, preprocess="none",
                                       skip_bad_images=True)))
    assert sorted(ids) == [0, 1, 2, 3]
    with pytest.raises(UserError, match="2 of 6 image files"):
        num_examples(root, "train")
    for i in range(4):
        os.remove(tmp_path / "train" / f"{i:02d}.png")
    with pytest.raises(UserError, match="None of the 2"):
        num_examples(root, "train", skip_bad_images=True)


def test_resolve_dataset_errors_and_data_dir(tmp_path):
    with pytest.raises(UserError, match="No data given"):
        resolve_dataset()
    with pytest.raises(UserError, match="Unknown dataset 'nope'.*facades"):
        resolve_dataset("nope", cache_dir=tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        resolve_dataset(data_dir=tmp_path / "missing")
    _id_dataset(tmp_path / "facades", 2)
    assert resolve_dataset(data_dir=tmp_path / "facades") == str(tmp_path / "facades")
    # A folder an archive was extracted into: its <name>/ subfolder is used.
    assert resolve_dataset("facades", data_dir=tmp_path) == str(tmp_path / "facades")


# --- The sample dataset and the real data ------------------------------------

def test_sample_dataset_is_real_and_split_disjoint(tmp_path):
    root = resolve_dataset("sample", cache_dir=tmp_path)
    assert root == str(tmp_path / "sample")
    n_train, n_test = num_examples(root, "train"), num_examples(root, "test")
    assert 100 <= n_train <= 200 and 20 <= n_test <= 40
    hashes = {}
    for split in ("train", "test"):
        for name in sorted(os.listdir(os.path.join(root, split))):
            ab = np.asarray(Image.open(os.path.join(root, split, name)))
            assert ab.shape == (256, 512, 3)
            gray, colour = ab[:, :256].astype(float), ab[:, 256:].astype(float)
            assert colour.std() > 10  # Photo content, not a constant image.
            assert np.array_equal(gray[..., 0], gray[..., 1])
            luma = colour @ [0.299, 0.587, 0.114]
            assert np.abs(luma - gray[..., 0]).mean() < 1.5
            hashes.setdefault(split, set()).add(colour.tobytes())
    assert not hashes["train"] & hashes["test"]
    assert len(hashes["train"]) == n_train
    mtime = os.stat(os.path.join(root, "train")).st_mtime_ns
    assert build_sample(tmp_path) == tmp_path / "sample"
    assert os.stat(os.path.join(root, "train")).st_mtime_ns == mtime  # Reused, not rebuilt.
    a, b = _batches(paired_dataset(root, "train", batch_size=2).take(1))[0]
    assert a.shape == (2, 256, 256, 3)
    assert np.allclose(a[..., 0], a[..., 2]) and not np.allclose(b[..., 0], b[..., 2])


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "facades")),
                    reason="../shared/data/facades is not present")
def test_real_facades():
    root = os.path.join(SHARED_DATA, "facades")
    assert num_examples(root, "train") == 400 and num_examples(root, "test") == 106
    ds = paired_dataset(root, "train", direction="BtoA", batch_size=2, epochs=1)
    assert ds.cardinality().numpy() == 200
    labels, photo = _batches(ds.take(1))[0]
    assert labels.shape == photo.shape == (2, 256, 256, 3)
    assert -1.0 <= labels.min() and labels.max() <= 1.0
    test = paired_dataset(root, "test", training=False, batch_size=8)
    assert test.cardinality().numpy() == 14
