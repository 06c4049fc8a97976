"""Tests of unpaired data: the CycleGAN folder layout, paired folders read as two domains,
TFDS, the step-indexed stream with two independent domains, channels and bad inputs."""

import logging
import os
import tempfile

import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds
from PIL import Image

from conftest import SHARED_DATA, write_unpaired_dataset
from tfi2i.data import (TfdsDataset, has_split, make_dataset, num_examples, paired_dataset,
                        resolve_dataset, steps_per_epoch, unpaired_dataset)
from tfi2i.errors import UserError


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def _flat(value, h, w):
    return np.full((h, w, 3), value, np.uint8)


def _noise(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _to_255(x):
    return (np.asarray(x) + 1.0) * 127.5


def _batches(ds):
    return [(a.numpy(), b.numpy()) for a, b in ds]


# Flat images identify themselves: image i of domain A has value 10 * i, of domain B
# 130 + 10 * i, whatever the crop, flip or resize.
def _id_domains(root, n_a, n_b, split="train", size=8):
    for i in range(n_a):
        _save(root / f"{split}A" / f"a{i:02d}.png", _flat(10 * i, size, size))
    for i in range(n_b):
        _save(root / f"{split}B" / f"b{i:02d}.png", _flat(130 + 10 * i, size, size))
    return str(root)


def _ids(batches):
    """([A ids], [B ids]) of a stream over `_id_domains` data."""
    a_ids = [int(round(v / 10)) for a, _ in batches for v in _to_255(a[:, 0, 0, 0])]
    b_ids = [int(round((v - 130) / 10)) for _, b in batches for v in _to_255(b[:, 0, 0, 0])]
    return a_ids, b_ids


# --- Shapes, ranges, channels -------------------------------------------------

def test_shapes_ranges_and_channel_counts(tmp_path):
    root = write_unpaired_dataset(tmp_path, sizes=((40, 48), (36, 30)))
    ds = unpaired_dataset(root, "train", load_size=36, crop_size=32, batch_size=2, epochs=2,
                          input_nc=1, output_nc=3)
    assert ds.element_spec[0].shape == (2, 32, 32, 1)
    assert ds.element_spec[1].shape == (2, 32, 32, 3)
    batches = _batches(ds)
    assert len(batches) == ds.cardinality().numpy() == 2 * steps_per_epoch(5, 2)
    for a, b in batches:
        assert a.dtype == b.dtype == np.float32
        assert -1.0 <= a.min() and a.max() <= 1.0 and -1.0 <= b.min() and b.max() <= 1.0
    assert max(a.max() - a.min() for a, _ in batches) > 0.5  # Content, not a constant.
    # BtoA: the first element is B, with input_nc channels.
    a, b = _batches(unpaired_dataset(root, "train", load_size=36, crop_size=32,
                                     direction="BtoA", input_nc=3, output_nc=1).take(1))[0]
    assert a.shape == (1, 32, 32, 3) and b.shape == (1, 32, 32, 1)


def test_grayscale_is_pil_luma_and_direction_swaps_domains(tmp_path):
    rng = np.random.default_rng(0)
    colour = _noise(rng, 12, 16)
    _save(tmp_path / "testA" / "0.png", colour)
    _save(tmp_path / "testB" / "0.png", _flat(200, 12, 16))
    options = dict(preprocess="none", training=False)
    gray, rgb = _batches(unpaired_dataset(tmp_path, "test", input_nc=1, **options))[0]
    pil = np.asarray(Image.fromarray(colour).convert("L"), np.float64)
    assert gray.shape == (1, 12, 16, 1) and rgb.shape == (1, 12, 16, 3)
    # PIL rounds to whole grey levels; the pipeline keeps the exact luma.
    assert np.abs(_to_255(gray[0, ..., 0]) - pil).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(_to_255(rgb), 200, atol=1e-3)
    b, a = _batches(unpaired_dataset(tmp_path, "test", direction="BtoA", output_nc=1,
                                     **options))[0]
    np.testing.assert_allclose(b, rgb, atol=1e-6)
    np.testing.assert_allclose(a, gray, atol=1e-6)


def test_paired_data_takes_channel_counts_too(tmp_path):
    rng = np.random.default_rng(1)
    half = _noise(rng, 8, 8)
    _save(tmp_path / "train" / "0.png", np.concatenate([half, _flat(90, 8, 8)], 1))
    a, b = _batches(make_dataset(tmp_path, "train", paired=True, preprocess="none",
                                 training=False, input_nc=1))[0]
    assert a.shape == (1, 8, 8, 1) and b.shape == (1, 8, 8, 3)
    pil = np.asarray(Image.fromarray(half).convert("L"), np.float64)
    assert np.abs(_to_255(a[0, ..., 0]) - pil).max() <= 0.5 + 1e-3
    with pytest.raises(UserError, match="input_nc must be 1 .* or 3 .*not 2"):
        make_dataset(tmp_path, "train", paired=True, input_nc=2)


# --- The step-indexed stream --------------------------------------------------

def test_domains_are_shuffled_independently(tmp_path):
    root = _id_domains(tmp_path, 12, 12)
    a_ids, b_ids = _ids(_batches(unpaired_dataset(root, "train", preprocess="none",
                                                  batch_size=4, epochs=2)))
    for epoch in range(2):
        a_epoch, b_epoch = a_ids[12 * epoch:12 * (epoch + 1)], b_ids[12 * epoch:12 * (epoch + 1)]
        assert sorted(a_epoch) == sorted(b_epoch) == list(range(12))
        assert a_epoch != b_epoch and a_epoch != list(range(12))
    assert a_ids[:12] != a_ids[12:] and b_ids[:12] != b_ids[12:]
    other = _ids(_batches(unpaired_dataset(root, "train", preprocess="none", batch_size=4,
                                           seed=1)))
    assert other[0] != a_ids[:12] and other[1] != b_ids[:12]


@pytest.mark.parametrize("n_a, n_b", [(7, 3), (3, 7)])
def test_epoch_is_the_larger_domain_once_the_smaller_wrapping(tmp_path, n_a, n_b):
    root = _id_domains(tmp_path, n_a, n_b)
    assert num_examples(root, "train", paired=False) == 7
    ds = unpaired_dataset(root, "train", preprocess="none", batch_size=2, epochs=3)
    assert ds.cardinality().numpy() == 3 * steps_per_epoch(7, 2) == 12
    a_ids, b_ids = _ids(_batches(ds))
    for epoch in range(3):
        for ids, n in ((a_ids, n_a), (b_ids, n_b)):
            slots = ids[8 * epoch:8 * (epoch + 1)]  # 4 steps of 2: 7 examples + 1 wrapped.
            if n == 7:
                assert sorted(slots[:7]) == list(range(7))
                assert slots[7] == slots[0]  # The last batch wraps to the epoch's start.
            else:  # Each full pass over the smaller domain is a permutation of it.
                assert sorted(slots[:3]) == sorted(slots[3:6]) == list(range(3))
    assert a_ids[:8] != a_ids[8:16]


def test_resume_mid_epoch_equals_the_uninterrupted_stream(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(5):
        _save(tmp_path / "trainA" / f"{i}.png", _noise(rng, 20, 28))
    for i in range(3):
        _save(tmp_path / "trainB" / f"{i}.png", _noise(rng, 24, 20))
    options = dict(batch_size=2, epochs=2, load_size=20, crop_size=16, seed=3)
    full = _batches(unpaired_dataset(tmp_path, "train", **options))
    assert len(full) == 6
    for start in (1, 3, 5, 6):
        resumed = _batches(unpaired_dataset(tmp_path, "train", start_step=start, **options))
        assert len(resumed) == 6 - start
        for (a0, b0), (a1, b1) in zip(full[start:], resumed, strict=True):
            np.testing.assert_array_equal(a0, a1)
            np.testing.assert_array_equal(b0, b1)
    cached = _batches(unpaired_dataset(tmp_path, "train", cache=True, **options))
    for (a0, b0), (a1, b1) in zip(full, cached, strict=True):
        np.testing.assert_allclose(a0, a1, atol=1e-5)
        np.testing.assert_allclose(b0, b1, atol=1e-5)
    with pytest.raises(UserError, match="start_step"):
        unpaired_dataset(tmp_path, "train", start_step=7, **options)


def test_crops_and_flips_are_independent_per_domain(tmp_path):
    rng = np.random.default_rng(4)
    image = _noise(rng, 20, 20)
    _save(tmp_path / "trainA" / "0.png", image)
    _save(tmp_path / "trainB" / "0.png", image)

    def window(crop):
        crop = np.round(_to_255(crop)).astype(np.uint8)
        found = [(top, left, flip) for top in range(9) for left in range(9) for flip in (0, 1)
                 if np.array_equal(crop, (lambda w: w[:, ::-1] if flip else w)(
                     image[top:top + 12, left:left + 12]))]
        assert found, "output is not a window of the image"
        return found[0]

    ds = unpaired_dataset(tmp_path, "train", preprocess="crop", crop_size=12, epochs=30)
    windows = [(window(a[0]), window(b[0])) for a, b in _batches(ds)]
    assert sum(wa != wb for wa, wb in windows) >= 25
    assert len({wa for wa, _ in windows}) > 5 and len({wb for _, wb in windows}) > 5
    assert {wa[2] for wa, _ in windows} == {0, 1} == {wb[2] for _, wb in windows}


def test_test_split_is_file_order_with_the_shorter_domain_wrapping(tmp_path):
    root = _id_domains(tmp_path, 5, 2, split="test", size=20)
    ds = unpaired_dataset(root, "test", training=False, batch_size=2, load_size=30,
                          crop_size=16)
    batches = _batches(ds)
    assert ds.cardinality().numpy() == 3
    assert [a.shape for a, _ in batches] == [(2, 16, 16, 3), (2, 16, 16, 3), (1, 16, 16, 3)]
    assert _ids(batches) == ([0, 1, 2, 3, 4], [0, 1, 0, 1, 0])
    assert num_examples(root, "test", paired=False) == 5


def test_mixed_sizes_with_batch_one(tmp_path):
    rng = np.random.default_rng(5)
    for i, (h, w) in enumerate(((20, 28), (24, 16), (20, 20))):
        _save(tmp_path / "testA" / f"{i}.png", _noise(rng, h, w))
    _save(tmp_path / "testB" / "0.png", _noise(rng, 12, 12))
    ds = unpaired_dataset(tmp_path, "test", preprocess="scale_width", crop_size=16,
                          training=False)
    assert [a.shape[1:3] for a, _ in _batches(ds)] == [(11, 16), (24, 16), (16, 16)]
    with pytest.raises(UserError, match=r"testA come out in different sizes.*batch_size=1"):
        unpaired_dataset(tmp_path, "test", preprocess="scale_width", crop_size=16,
                         training=False, batch_size=2)
    # Crops make one size again, so batches work.
    ds = unpaired_dataset(tmp_path, "test", preprocess="resize_and_crop", crop_size=16,
                          training=False, batch_size=2)
    assert [a.shape for a, _ in _batches(ds)] == [(2, 16, 16, 3), (1, 16, 16, 3)]


# --- Paired folders read as two domains (--unpaired) --------------------------

def test_ab_images_read_as_two_domains(tmp_path):
    for i in range(6):
        _save(tmp_path / "train" / f"{i}.png",
              np.concatenate([_flat(10 * i, 8, 8), _flat(130 + 10 * i, 8, 8)], 1))
    with pytest.raises(UserError, match="set unpaired=True"):
        unpaired_dataset(tmp_path, "train")
    assert num_examples(tmp_path, "train", paired=False, unpaired=True) == 6
    ds = make_dataset(tmp_path, "train", paired=False, unpaired=True, preprocess="none",
                      batch_size=3, epochs=2)
    assert ds.element_spec[0].shape == (3, 8, 8, 3)
    a_ids, b_ids = _ids(_batches(ds))
    assert sorted(a_ids[:6]) == sorted(b_ids[:6]) == list(range(6))
    assert a_ids != b_ids  # The pairs are broken up.
    with pytest.raises(UserError, match="paired method trains on the pairs"):
        make_dataset(tmp_path, "train", paired=True, unpaired=True)


def test_a_b_folders_read_as_two_domains_need_no_matching_names(tmp_path):
    for i in range(4):
        _save(tmp_path / "train" / "A" / f"x{i}.png", _flat(10 * i, 8, 8))
    for i in range(2):
        _save(tmp_path / "train" / "B" / f"y{i}.png", _flat(130 + 10 * i, 12, 8))
    assert num_examples(tmp_path, "train", paired=False, unpaired=True) == 4
    batches = _batches(unpaired_dataset(tmp_path, "train", preprocess="none", unpaired=True,
                                        training=False))
    assert _ids(batches) == ([0, 1, 2, 3], [0, 1, 0, 1])
    assert batches[0][1].shape == (1, 12, 8, 3)
    with pytest.raises(UserError, match="has no partner"):
        num_examples(tmp_path, "train")  # As paired data the names must match.


# --- Bad inputs ---------------------------------------------------------------

def test_missing_or_empty_domain(tmp_path):
    _id_domains(tmp_path, 3, 0)
    with pytest.raises(UserError, match=r"trainA has no partner folder .*trainB.*both domains"):
        num_examples(tmp_path, "train", paired=False)
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"No images in .*trainB"):
        unpaired_dataset(tmp_path, "train")
    with pytest.raises(UserError, match="does not exist"):
        num_examples(tmp_path / "nowhere", "train", paired=False)


def test_missing_test_split_is_reported(tmp_path):
    root = _id_domains(tmp_path, 3, 2)
    assert has_split(root, "train", paired=False)
    assert not has_split(root, "test", paired=False)
    assert not has_split(root, "test", paired=True)
    with pytest.raises(UserError, match=r"has no split 'test'.*testA.*trainA, trainB"):
        unpaired_dataset(root, "test", training=False)
    (tmp_path / "testB").mkdir()
    assert has_split(root, "test", paired=False)  # There, but broken: reading it says why.
    with pytest.raises(UserError, match="testB has no partner folder"):
        num_examples(root, "test", paired=False)


def test_unreadable_files_raise_or_are_skipped(tmp_path, caplog):
    root = _id_domains(tmp_path, 3, 2)
    (tmp_path / "trainB" / "zz_junk.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(UserError, match=r"(?s)1 of 3 image files in .*trainB.*zz_junk.jpg: "
                                        r"cannot be decoded.*skip_bad_images"):
        unpaired_dataset(root, "train")
    with caplog.at_level(logging.WARNING):
        assert num_examples(root, "train", skip_bad_images=True, paired=False) == 3
    assert "Skipping 1 of 3" in caplog.text
    ds = unpaired_dataset(root, "train", preprocess="none", skip_bad_images=True, epochs=2)
    assert sorted(set(_ids(_batches(ds))[1])) == [0, 1]


def test_bad_options(tmp_path):
    root = _id_domains(tmp_path, 2, 2)
    for name in ("input_nc", "output_nc"):
        with pytest.raises(UserError, match=f"{name} must be 1 .* or 3 .*not 4"):
            unpaired_dataset(root, "train", **{name: 4})
    with pytest.raises(UserError, match="Unknown direction"):
        unpaired_dataset(root, "train", direction="AtoC")
    with pytest.raises(UserError, match="smaller than crop_size"):
        unpaired_dataset(root, "train", preprocess="crop", crop_size=16)


# --- TensorFlow Datasets --------------------------------------------------------

@pytest.fixture
def tfds_tmp(tmp_path, monkeypatch):
    """A scratch TMPDIR: TFDS leaves empty tmp*tfds folders behind on every load."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return tmp_path / "tfds"


def test_tfds_cycle_gan_through_the_same_pipeline(tfds_tmp):
    with tfds.testing.mock_data(num_examples=5):
        root = resolve_dataset("tfds:cycle_gan/horse2zebra", tfds_data_dir=tfds_tmp)
        assert root == TfdsDataset(("cycle_gan/horse2zebra",), str(tfds_tmp))
        assert str(root) == "tfds:cycle_gan/horse2zebra"
        assert num_examples(root, "train", paired=False) == 5
        assert has_split(root, "test", paired=False) and not has_split(root, "test")
        options = dict(load_size=20, crop_size=16, batch_size=2, epochs=2, seed=1)
        ds = make_dataset(root, "train", paired=False, **options)
        assert ds.element_spec[0].shape == ds.element_spec[1].shape == (2, 16, 16, 3)
        full = _batches(ds)
        assert len(full) == 6
        for a, b in full:
            assert -1.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.1
        resumed = _batches(unpaired_dataset(root, "train", start_step=4, **options))
        for (a0, b0), (a1, b1) in zip(full[4:], resumed, strict=True):
            np.testing.assert_array_equal(a0, a1)
            np.testing.assert_array_equal(b0, b1)
        # The mock's images have random sizes: test time keeps them, batch 1.
        test = _batches(unpaired_dataset(root, "test", preprocess="none", training=False))
        assert len(test) == 5 and len({a.shape for a, _ in test}) > 1
        with pytest.raises(UserError, match="unpaired domains; a paired method"):
            paired_dataset(root, "train")
        with pytest.raises(UserError, match="unpaired domains; a paired method"):
            num_examples(root, "train")


def test_tfds_pair_of_single_domain_builders(tfds_tmp):
    with tfds.testing.mock_data(num_examples=4):
        root = resolve_dataset("tfds:mnist+tfds:svhn_cropped", tfds_data_dir=tfds_tmp)
        assert root.names == ("mnist", "svhn_cropped")
        a, b = _batches(unpaired_dataset(root, "train", load_size=32, crop_size=32,
                                         batch_size=4, input_nc=1).take(1))[0]
        assert a.shape == (4, 32, 32, 1) and b.shape == (4, 32, 32, 3)
        with pytest.raises(UserError, match="one image domain.*tfds:mnist\\+svhn_cropped"):
            resolve_dataset("tfds:mnist", tfds_data_dir=tfds_tmp)
        with pytest.raises(UserError, match="Unknown TFDS dataset 'no_such_set'"):
            resolve_dataset("tfds:no_such_set", tfds_data_dir=tfds_tmp)
        with pytest.raises(UserError, match="Cannot read the TFDS dataset name"):
            resolve_dataset("tfds:a+b+c")


def test_tfds_download_failure_says_what_to_do(tfds_tmp, monkeypatch):
    def offline(self, *args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'efrosgans.eecs.berkeley.edu'")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(UserError, match="Could not download and prepare the TFDS dataset "
                                        "'cycle_gan/facades'") as error:
        resolve_dataset("tfds:cycle_gan/facades", tfds_data_dir=tfds_tmp)
    message = str(error.value)
    assert "Failed to resolve" in message
    assert "tfds build cycle_gan/facades --data_dir=DIR" in message
    assert f"--tfds_data_dir={tfds_tmp}" in message


# --- Real data ------------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "iphone2dslr_flower")),
                    reason="../shared/data/iphone2dslr_flower is not present")
def test_real_iphone2dslr_flower():
    root = resolve_dataset(data_dir=os.path.join(SHARED_DATA, "iphone2dslr_flower"))
    assert num_examples(root, "train", paired=False) == 500
    assert num_examples(root, "test", paired=False) == 68
    ds = unpaired_dataset(root, "train", load_size=72, crop_size=64, batch_size=2, epochs=1)
    assert ds.cardinality().numpy() == 250
    a, b = _batches(ds.take(1))[0]
    assert a.shape == b.shape == (2, 64, 64, 3)
    assert -1.0 <= a.min() and b.max() <= 1.0 and a.std() > 0.05
    # Mixed sizes at batch 1: each test image keeps its aspect ratio.
    test = unpaired_dataset(root, "test", preprocess="scale_width", crop_size=64,
                            training=False)
    assert test.cardinality().numpy() == 68
    shapes = {a.shape[1:3] for a, _ in _batches(test.take(20))}
    assert len(shapes) > 1 and all(w == 64 for _, w in shapes)
