"""Tests of the digits data: MNIST idx and USPS readers (h5 and LIBSVM), the named
sets mnist2usps / usps2mnist / svhn2mnist, labels through the pipeline, the t10k
carve-out, no flips, downloads against a loopback server, and bad files."""

import bz2
import functools
import gzip
import hashlib
import http.server
import os
import socket
import tempfile
import threading

import h5py
import numpy as np
import pytest
import requests
import tensorflow_datasets as tfds

from conftest import SHARED_DATA
from tfi2i.config import resolve_config
from tfi2i.data import digits, has_split, make_dataset, num_examples, resolve_dataset
from tfi2i.errors import UserError

DIGITS = os.path.join(SHARED_DATA, "digits")


def _digit_images(labels, size):
    """Flat digits whose grey level names their label (20 * label + 10), with one
    bright pixel at the top left so that a mirror image shows."""
    images = np.repeat((20 * np.asarray(labels) + 10).astype(np.uint8)[:, None, None], size,
                       axis=1).repeat(size, axis=2)
    images[:, :size // 4, :size // 4] = 255
    return images


def write_idx(path, array, magic=None, truncate=0):
    """An idx file (gzip when the name ends in .gz) of a uint8 array."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) if magic is None else magic
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    data = data[:len(data) - truncate]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)
    return str(path)


def write_mnist(folder, n_test=10, n_train=0, gz=True):
    ext = ".gz" if gz else ""
    os.makedirs(folder, exist_ok=True)
    for prefix, n, offset in (("t10k", n_test, 0), ("train", n_train, 3)):
        if n:
            labels = (np.arange(n) + offset) % 10
            write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"),
                      _digit_images(labels, 28))
            write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
    return str(folder)


def write_usps_h5(folder, n_train=6, n_test=4):
    os.makedirs(folder, exist_ok=True)
    with h5py.File(os.path.join(folder, "usps.h5"), "w") as f:
        for split, n, offset in (("train", n_train, 5), ("test", n_test, 1)):
            labels = (np.arange(n) + offset) % 10
            f[f"{split}/data"] = _digit_images(labels, 16).reshape(n, -1) / 255.0
            f[f"{split}/target"] = labels
    return str(folder)


def write_digits(folder, n_test=10, n_train=0):
    """A tiny digits folder: MNIST idx.gz files and usps.h5, as ../shared/data/digits."""
    write_mnist(folder, n_test, n_train)
    return write_usps_h5(folder)


def _usps_libsvm(labels):
    lines = []
    for label, image in zip(labels, _digit_images(labels, 16)):
        values = image.reshape(-1) / 255.0 * 2 - 1
        lines.append(f"{label + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(values)))
    return bz2.compress(("\n".join(lines) + "\n").encode())


# --- readers and bad files -----------------------------------------------------

def test_read_idx_plain_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("x-idx3-ubyte", "x-idx3-ubyte.gz"):
        np.testing.assert_array_equal(digits.read_idx(write_idx(tmp_path / name, array), 3),
                                      array)


def test_truncated_idx_file_names_the_file(tmp_path):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)), truncate=5)
    with pytest.raises(UserError, match=f"{path} is truncated.*Download it again"):
        digits.read_idx(path, 3)
    # A gzip stream cut short, not just short data inside it.
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes(open(path, "rb").read()[:40])
    with pytest.raises(UserError, match=f"Cannot read the idx file {cut}"):
        digits.read_idx(cut, 3)


def test_wrong_magic_number_names_the_file(tmp_path):
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4), magic=b"\x00\x00\x08\x03")
    with pytest.raises(UserError, match=f"{path} is not an idx file.*00 00 08 03.*"
                                        "expected 00 00 08 01"):
        digits.read_idx(path, 1)
    junk = tmp_path / "junk-idx3-ubyte"
    junk.write_bytes(b"PK\x03\x04 something else")
    with pytest.raises(UserError, match=f"{junk} is not an idx file"):
        digits.read_idx(junk, 3)


def test_usps_readers_agree(tmp_path):
    write_usps_h5(tmp_path)
    h5 = digits.read_usps_h5(tmp_path / "usps.h5")
    (tmp_path / "usps.bz2").write_bytes(_usps_libsvm(h5["train"][1]))
    images, labels = digits.read_usps_libsvm(tmp_path / "usps.bz2")
    np.testing.assert_array_equal(labels, h5["train"][1])
    np.testing.assert_array_equal(images, h5["train"][0])
    assert images.shape == (6, 16, 16) and images.dtype == np.uint8
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="Cannot read USPS from .*bad.h5"):
        digits.read_usps_h5(tmp_path / "bad.h5")


# --- named sets through the pipeline -------------------------------------------

def test_t10k_carve_out_is_disjoint_and_keeps_labels(tmp_path):
    folder = write_digits(tmp_path / "d", n_test=20)
    root = resolve_dataset("mnist2usps", data_dir=folder)
    assert isinstance(root, digits.DigitsDataset) and root.domains == ("mnist", "usps")
    train, train_labels = digits.load_domain(root, "mnist", "train")
    test, test_labels = digits.load_domain(root, "mnist", "test")
    assert (len(train), len(test)) == (16, 4)
    # Digit i is test when i % 5 == 4: labels i % 10.
    np.testing.assert_array_equal(test_labels, [4, 9, 4, 9])
    np.testing.assert_array_equal(train_labels, [i % 10 for i in range(20) if i % 5 != 4])
    assert num_examples(root, "train", paired=False) == 16   # max(16 MNIST, 6 USPS)
    assert has_split(root, "test", paired=False) and not has_split(root, "val", paired=False)


def test_mnist_train_files_are_used_when_present(tmp_path):
    root = resolve_dataset("mnist2usps", data_dir=write_digits(tmp_path / "d", 10, n_train=7))
    images, labels = digits.load_domain(root, "mnist", "train")
    np.testing.assert_array_equal(labels, (np.arange(7) + 3) % 10)
    assert len(digits.load_domain(root, "mnist", "test")[0]) == 10


def test_labelled_batches_32px_gray_or_rgb_never_flipped(tmp_path):
    root = resolve_dataset("mnist2usps", data_dir=write_digits(tmp_path / "d", n_test=20))
    options = dict(paired=False, load_size=32, crop_size=32, batch_size=4, epochs=3, labels=True,
                   input_nc=1, output_nc=1)
    seen = 0
    for (x, label), t in make_dataset(root, "train", **options):
        assert x.shape == (4, 32, 32, 1) and t.shape == (4, 32, 32, 1)
        # The grey level (away from the bright corner) names the label.
        grey = (x.numpy()[:, 20, 20, 0] + 1) * 127.5
        np.testing.assert_allclose(grey, 20 * label.numpy() + 10, atol=1.5)
        # The bright corner stays top left: no mirrored digits.
        assert (x.numpy()[:, 2, 2, 0] > 0.9).all() and (x.numpy()[:, 2, 29, 0] < 0.5).all()
        assert (t.numpy()[:, 2, 2, 0] > 0.9).all() and (t.numpy()[:, 2, 29, 0] < 0.5).all()
        seen += 1
    assert seen == 12
    (x, label), t = next(iter(make_dataset(root, "test", **dict(options, input_nc=3),
                                           training=False)))
    assert x.shape == (4, 32, 32, 3) and np.ptp(x.numpy(), axis=-1).max() < 1e-6
    # usps2mnist: USPS is the labelled source.
    back = resolve_dataset("usps2mnist", data_dir=str(tmp_path / "d"))
    (x, label), t = next(iter(make_dataset(back, "test", **options, training=False)))
    np.testing.assert_array_equal(label.numpy(), [1, 2, 3, 4])
    # Without labels the same data serve any unpaired method.
    x, t = next(iter(make_dataset(root, "train", **dict(options, labels=False))))
    assert x.shape == (4, 32, 32, 1)


def test_missing_files_and_unlabelled_data_say_what_to_do(tmp_path):
    write_mnist(tmp_path / "m")
    with pytest.raises(UserError, match="no USPS data: put usps.h5"):
        resolve_dataset("mnist2usps", data_dir=str(tmp_path / "m"))
    write_usps_h5(tmp_path / "u")
    with pytest.raises(UserError, match="no MNIST t10k-images-idx3-ubyte"):
        resolve_dataset("usps2mnist", data_dir=str(tmp_path / "u"))
    with pytest.raises(UserError, match="has no class labels"):
        make_dataset(str(_unpaired_folder(tmp_path / "f")), "train", paired=False, labels=True,
                     load_size=32, crop_size=32)
    with pytest.raises(UserError, match="paired data have none"):
        make_dataset(str(tmp_path), "train", labels=True)


def _unpaired_folder(root):
    from conftest import write_unpaired_dataset
    return write_unpaired_dataset(root)


def test_named_sets_are_known_to_the_config(tmp_path):
    for name in digits.DIGITS_DATASETS:
        config = resolve_config("dtn", name)
        assert config["crop_size"] == 32 and config["batch_size"] == 100
    assert resolve_config("dtn", "svhn2mnist")["input_nc"] == 3


# --- downloads ----------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def _serve_digits(served, monkeypatch, damage=None):
    """Serves tiny MNIST and USPS files and records their digests as the official ones."""
    write_mnist(served, n_test=10, n_train=5)
    (served / "usps.bz2").write_bytes(_usps_libsvm(np.arange(6) % 10))
    (served / "usps.t.bz2").write_bytes(_usps_libsvm(np.arange(3) % 10))
    files = {}
    for name, spec in digits.DIGITS_FILES.items():
        data = (served / name).read_bytes()
        files[name] = digits.DigitsFile(
            name, spec.url, len(data) if spec.size else None,
            hashlib.sha256(data).hexdigest() if spec.sha256 else None,
            hashlib.md5(data).hexdigest() if spec.md5 else None)
    if damage:
        files[damage] = digits.DigitsFile(damage, files[damage].url, md5="0" * 32)
    monkeypatch.setattr(digits, "DIGITS_FILES", files)


def test_download_from_a_mirror_then_offline_reuse(tmp_path, server, monkeypatch):
    url, served = server
    _serve_digits(served, monkeypatch)
    root = resolve_dataset("mnist2usps", cache_dir=str(tmp_path / "cache"), mirror=url)
    assert root.folder == str(tmp_path / "cache" / "digits")
    assert len(digits.load_domain(root, "mnist", "train")[0]) == 5   # the real train files
    assert len(digits.load_domain(root, "usps", "test")[0]) == 3     # LIBSVM
    # Everything is in the cache now: no server needed.
    again = digits.resolve_digits("usps2mnist", cache_dir=str(tmp_path / "cache"),
                                  mirror="http://127.0.0.1:9")
    assert again.folder == root.folder


def test_damaged_download_and_offline_messages(tmp_path, server, monkeypatch):
    url, served = server
    _serve_digits(served, monkeypatch, damage="usps.t.bz2")
    with pytest.raises(UserError, match="usps.t.bz2.*damaged: its MD5 is"):
        resolve_dataset("mnist2usps", cache_dir=str(tmp_path / "cache"), mirror=url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(UserError, match="(?s)Could not download dataset 'digits/.*put it in .*"
                                        "digits/ \\(or use --data_dir"):
        resolve_dataset("usps2mnist", cache_dir=str(tmp_path / "other"), mirror=closed)


def test_svhn2mnist_through_tfds_with_labels(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with tfds.testing.mock_data(num_examples=4):
        root = resolve_dataset("svhn2mnist", tfds_data_dir=str(tmp_path / "tfds"))
        (x, label), t = next(iter(make_dataset(root, "train", paired=False, labels=True,
                                               load_size=32, crop_size=32, batch_size=4,
                                               input_nc=3, output_nc=1)))
        assert x.shape == (4, 32, 32, 3) and t.shape == (4, 32, 32, 1)
        assert label.dtype.name == "int32" and ((label >= 0) & (label < 10)).numpy().all()


def test_svhn2mnist_offline_says_what_to_do(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'ufldl.stanford.edu'")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(UserError, match="Could not download and prepare the TFDS dataset "
                                        "'svhn_cropped'") as error:
        resolve_dataset("svhn2mnist", tfds_data_dir=str(tmp_path / "tfds"))
    assert "tfds build svhn_cropped --data_dir=DIR" in str(error.value)


# --- the real copy ------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir(DIGITS), reason="../shared/data/digits is not present")
def test_real_digits_folder():
    root = resolve_dataset("mnist2usps", data_dir=DIGITS)
    assert digits.file_digest(os.path.join(DIGITS, "t10k-images-idx3-ubyte.gz")) == \
        digits.DIGITS_FILES["t10k-images-idx3-ubyte.gz"].sha256
    assert num_examples(root, "train", paired=False) == 8000   # MNIST carve-out vs USPS 7291
    assert num_examples(root, "test", paired=False) == 2007    # USPS test vs MNIST 2000
    images, labels = digits.load_domain(root, "usps", "train")
    assert images.shape == (7291, 16, 16) and set(labels.tolist()) == set(range(10))
