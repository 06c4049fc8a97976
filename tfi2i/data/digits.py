"""Digit datasets with their labels: MNIST, USPS and SVHN as unpaired domains.

The named sets (`--dataset=NAME`), source domain first:
    mnist2usps    MNIST -> USPS (the classic small domain-transfer pair)
    usps2mnist    USPS -> MNIST
    svhn2mnist    SVHN -> MNIST, the DTN paper's digits task, through TensorFlow
                  Datasets (`svhn_cropped` and `mnist`)

A digits dataset is a root like a folder or a TFDS dataset (`DigitsDataset`):
`scan_digits` gives the same `UnpairedExamples` the pipeline reads from
folders, and the labels of each domain ride along (`LabelledDomainImages`),
so `unpaired_dataset(..., labels=True)` yields ((source, label), target)
batches for methods that need them (DTN's classifier pretraining).

Files, in `--data_dir` or in the cache (`<cache>/digits/`, downloaded on
first use from the official servers):
    MNIST   train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
            t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (idx format)
    USPS    usps.h5 (keys train/data, train/target, test/data, test/target;
            16 x 16 floats in [0, 1], flattened), or the LIBSVM files usps.bz2
            and usps.t.bz2 (the download; values in [-1, 1])

Splits. USPS: its own train (7,291) and test (2,007) split. MNIST: its own
train (60,000) and test (10,000) split when the train files are there. When
only the t10k files are (the copy in ../shared/data/digits), the 10,000 test
digits are carved into a fixed train/test split by index: digit i is test
when i % 5 == 4 (2,000 digits, spread evenly over the file, whose two halves
come from different writer populations) and train otherwise (8,000). The
carve-out is logged; nothing in the test split is ever in the train split.

Images are stored as 8-bit gray PNGs in memory (USPS floats are rounded to
1/255) and go through the ordinary pipeline: resized to `load_size`
(32 for DTN), bicubic and antialiased, and read with `input_nc`/`output_nc`
channels (1 gray, or 3 equal channels). SVHN is RGB; read with 1 channel it
becomes its luma. Training never flips digits (the pipeline's random mirror
is off for them); crops apply as set (DTN: load_size = crop_size = 32, none).
"""

import bz2
import gzip
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from absl import logging
from PIL import Image

from tfi2i.data import download, tfds_source
from tfi2i.data.domains import DomainImages, UnpairedExamples
from tfi2i.errors import UserError

# --dataset name -> (source domain, target domain).
DIGITS_DATASETS = {
    "mnist2usps": ("mnist", "usps"),
    "usps2mnist": ("usps", "mnist"),
    "svhn2mnist": ("svhn", "mnist"),
}
# Where the digits files are kept in the cache: one folder for all sets.
CACHE_FOLDER = "digits"
# Domains read through TensorFlow Datasets, by their TFDS names.
TFDS_NAMES = {"svhn": "svhn_cropped", "mnist": "mnist"}
# MNIST digits that go to the test split when only the t10k files exist.
CARVE_OUT_EVERY = 5


@dataclass(frozen=True)
class DigitsFile:
    """One downloadable file (duck-types the `DatasetSpec` fields `download` uses).

    Attributes:
        archive_name: the file's name on the server and in the cache.
        url: where it is downloaded from.
        size: bytes, or None when unknown.
        sha256: hex digest, or None when unknown.
        md5: hex digest, or None when unknown (USPS publishes only MD5s).
    """
    archive_name: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def name(self):
        return f"{CACHE_FOLDER}/{self.archive_name}"


MNIST_BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist"
USPS_BASE_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass"
# MNIST: the sizes and SHA-256 digests TensorFlow Datasets records for these URLs
# (t10k checked against the copy in ../shared/data/digits). USPS: the MD5 digests
# torchvision records for the LIBSVM files; sizes not published.
DIGITS_FILES = {f.archive_name: f for f in (
    DigitsFile("train-images-idx3-ubyte.gz", f"{MNIST_BASE_URL}/train-images-idx3-ubyte.gz",
               9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    DigitsFile("train-labels-idx1-ubyte.gz", f"{MNIST_BASE_URL}/train-labels-idx1-ubyte.gz",
               28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    DigitsFile("t10k-images-idx3-ubyte.gz", f"{MNIST_BASE_URL}/t10k-images-idx3-ubyte.gz",
               1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    DigitsFile("t10k-labels-idx1-ubyte.gz", f"{MNIST_BASE_URL}/t10k-labels-idx1-ubyte.gz",
               4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    DigitsFile("usps.bz2", f"{USPS_BASE_URL}/usps.bz2", md5="ec16c51db3855ca6c91edd34d0e9b197"),
    DigitsFile("usps.t.bz2", f"{USPS_BASE_URL}/usps.t.bz2",
               md5="8ea070ee2aca1ac39742fdd1ef5ed118"),
)}
_DOWNLOADS = {"mnist": [n for n in DIGITS_FILES if "ubyte" in n],
              "usps": ["usps.bz2", "usps.t.bz2"]}


@dataclass(frozen=True)
class DigitsDataset:
    """A dataset root that is a digits pair (see the module docstring).

    Attributes:
        name: the --dataset name, e.g. "mnist2usps".
        folder: where the MNIST/USPS files are; None for TFDS domains only.
        tfds_data_dir: TFDS's data folder for TFDS domains (None: TFDS's default).
    """
    name: str
    folder: str | None = None
    tfds_data_dir: str | None = None

    @property
    def domains(self):
        """(source, target) domain names."""
        return DIGITS_DATASETS[self.name]

    def __str__(self):
        return f"{self.name} ({self.folder or 'TFDS'})"


@dataclass(frozen=True)
class LabelledDomainImages(DomainImages):
    """`DomainImages` with a class label per image (`labels`, ints).

    `flip` False: training never mirrors these images (a mirrored 2 is no digit).
    """
    labels: tuple = ()
    flip: bool = False


def is_digits(root):
    """Whether a dataset root (or --dataset name) is a digits dataset."""
    return isinstance(root, DigitsDataset) or (isinstance(root, str) and root in DIGITS_DATASETS)


def resolve_digits(name, data_dir=None, cache_dir=None, mirror=None, tfds_data_dir=None):
    """The `DigitsDataset` of a named digits set, downloading its files if needed.

    Args:
        name: a key of `DIGITS_DATASETS`.
        data_dir: a folder holding the files (see the module docstring); no
            download then.
        cache_dir: where downloads go (`<cache>/digits/`).
        mirror: a base URL serving the files under their names, instead of
            the official servers (default `$TFI2I_DATASET_MIRROR`).
        tfds_data_dir: TFDS's data folder, for svhn2mnist.

    Raises:
        UserError: a missing folder or file, or a failed download (the message
            says how to set the files up by hand).
    """
    local = {d for d in DIGITS_DATASETS[name] if d != "svhn"} if name != "svhn2mnist" else set()
    if data_dir:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise UserError(f"The data folder {folder} does not exist (--data_dir).")
        root = DigitsDataset(name, str(folder), tfds_data_dir)
        for domain in local:
            _domain_files(folder, domain)  # Fails now, naming what is missing.
        return root
    if name == "svhn2mnist":
        root = DigitsDataset(name, None, tfds_data_dir)
        for domain in root.domains:
            # Downloads and prepares, or says how to do it by hand when offline.
            name = TFDS_NAMES[domain]
            tfds_source._image_feature(tfds_source._builder(name, tfds_data_dir), name)
        return root
    cache = Path(cache_dir).expanduser() if cache_dir else download.default_cache_dir()
    folder = cache / CACHE_FOLDER
    for domain in local:
        try:
            _domain_files(folder, domain)
            continue
        except UserError:
            pass
        for file_name in _DOWNLOADS[domain]:
            if not (folder / file_name).exists():
                _fetch(DIGITS_FILES[file_name], cache, folder, mirror)
    return DigitsDataset(name, str(folder), tfds_data_dir)


def _fetch(spec, cache, folder, mirror):
    mirror = mirror or os.environ.get(download.MIRROR_ENV)
    url = f"{mirror.rstrip('/')}/{spec.archive_name}" if mirror else spec.url
    cache.mkdir(parents=True, exist_ok=True)
    instructions = (f"To set it up by hand, download {spec.url} on a machine with internet "
                    f"access and put it in {folder}/ (or use --data_dir=FOLDER with the MNIST "
                    "idx files and usps.h5 or usps.bz2/usps.t.bz2). To download from a "
                    f"mirror, set ${download.MIRROR_ENV} to its base URL.")
    path = download.download_file(spec, url, cache, instructions)
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(path, folder / spec.archive_name)


# -- readers ------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path, ndim=None):
    """Reads an idx file (MNIST's format), gzip-compressed or not.

    Args:
        path: the file; `.gz` files are decompressed.
        ndim: the number of dimensions it must have (3 for images, 1 for
            labels), or None.

    Returns:
        A numpy array.

    Raises:
        UserError: naming the file: not gzip, a wrong magic number, or
            truncated (fewer bytes than its header announces).
    """
    path = str(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
        raise UserError(f"Cannot read the idx file {path}: {type(e).__name__}: {e} (truncated "
                        "or not gzip?). Download it again.") from None
    magic = data[:4]
    if (len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES
            or magic[3] < 1 or (ndim is not None and magic[3] != ndim)):
        expected = f"00 00 08 {ndim:02x}" if ndim else "00 00 <type> <ndim>"
        raise UserError(f"{path} is not an idx file of the expected kind: its magic number is "
                        f"{magic.hex(' ') or 'missing'}, expected {expected} (MNIST images: "
                        "00 00 08 03, labels: 00 00 08 01). Is it the right file?")
    dims_end = 4 + 4 * magic[3]
    if len(data) < dims_end:
        raise UserError(f"The idx file {path} is truncated: it ends inside its header.")
    shape = tuple(int.from_bytes(data[i:i + 4], "big") for i in range(4, dims_end, 4))
    dtype = np.dtype(_IDX_TYPES[magic[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - dims_end != expected:
        raise UserError(f"The idx file {path} is truncated or damaged: its header announces "
                        f"{shape} values ({expected} bytes) but {len(data) - dims_end} bytes "
                        "follow. Download it again.")
    return np.frombuffer(data, dtype, offset=dims_end).reshape(shape)


def read_usps_h5(path):
    """{split: (uint8 images [N, 16, 16], int labels [N])} from a usps.h5 file."""
    import h5py  # Only for USPS in HDF5.

    splits = {}
    try:
        with h5py.File(path, "r") as f:
            for split in ("train", "test"):
                data = np.asarray(f[f"{split}/data"], np.float32)
                labels = np.asarray(f[f"{split}/target"], np.int64)
                splits[split] = (_floats_to_uint8(data.reshape(-1, 16, 16)), labels)
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"Cannot read USPS from {path}: {type(e).__name__}: {e}. It must be an "
                        "HDF5 file with train/data, train/target, test/data and test/target "
                        "(16 x 16 digits, flattened, in [0, 1]).") from None
    return splits


def read_usps_libsvm(path):
    """(uint8 images [N, 16, 16], int labels [N]) from a LIBSVM usps(.t).bz2 file.

    Each line is `label index:value ...` with labels 1..10 (digit + 1),
    indices 1..256 and values in [-1, 1].
    """
    images, labels = [], []
    try:
        with bz2.open(path, "rt") as f:
            for number, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                pixels = np.full(256, -1.0, np.float32)
                for item in fields[1:]:
                    index, value = item.split(":")
                    pixels[int(index) - 1] = float(value)
                labels.append(int(float(fields[0])) - 1)
                images.append(pixels)
    except (OSError, EOFError, ValueError, IndexError) as e:
        raise UserError(f"Cannot read USPS from {path} (line {number if images else 1}): "
                        f"{type(e).__name__}: {e}. Download it again.") from None
    data = (np.stack(images) + 1.0) / 2.0
    return _floats_to_uint8(data.reshape(-1, 16, 16)), np.array(labels, np.int64)


def _floats_to_uint8(data):
    return np.clip(np.round(data * 255.0), 0, 255).astype(np.uint8)


def _first_existing(folder, names):
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _domain_files(folder, domain):
    """{what: path} of a domain's files in `folder`, or a UserError naming what is missing."""
    folder = Path(folder)
    if domain == "mnist":
        files = {f"{split}_{kind}": _first_existing(folder, [f"{prefix}-{kind}-idx{n}-ubyte{ext}"
                                                          for ext in (".gz", "")])
                 for split, prefix in (("train", "train"), ("test", "t10k"))
                 for kind, n in (("images", 3), ("labels", 1))}
        if files["test_images"] is None or files["test_labels"] is None:
            raise UserError(f"{folder} has no MNIST t10k-images-idx3-ubyte(.gz) and "
                            "t10k-labels-idx1-ubyte(.gz) files (with train-*-ubyte(.gz) for "
                            "MNIST's own train split). Put the idx files there, or use "
                            "--dataset without --data_dir to download them.")
        return files
    h5 = folder / "usps.h5"
    if h5.is_file():
        return {"h5": h5}
    if (folder / "usps.bz2").is_file() and (folder / "usps.t.bz2").is_file():
        return {"train": folder / "usps.bz2", "test": folder / "usps.t.bz2"}
    raise UserError(f"{folder} has no USPS data: put usps.h5 (HDF5) or usps.bz2 and usps.t.bz2 "
                    "(LIBSVM) there, or use --dataset without --data_dir to download them.")


_arrays = {}


def load_domain(root, domain, split):
    """(images uint8 [N, H, W] or [N, H, W, 3], labels int [N]) of one domain's split.

    Args:
        root: a `DigitsDataset`.
        domain: "mnist", "usps" or "svhn".
        split: "train" or "test".
    """
    if split not in ("train", "test"):
        raise UserError(f"Digits datasets have the splits train and test, not {split!r}.")
    key = (root.folder, root.tfds_data_dir, domain, split)
    if key not in _arrays:
        if root.folder is None or domain == "svhn":
            _arrays[key] = _load_tfds(TFDS_NAMES[domain], split, root.tfds_data_dir)
        elif domain == "mnist":
            _arrays[key] = _load_mnist(root.folder, split)
        else:
            _arrays[key] = _load_usps(root.folder, split)
    return _arrays[key]


def _load_mnist(folder, split):
    files = _domain_files(folder, "mnist")
    if files["train_images"] is not None and files["train_labels"] is not None:
        images = read_idx(files[f"{split}_images"], 3)
        labels = read_idx(files[f"{split}_labels"], 1)
    else:
        logging.info("%s has only MNIST's t10k files: using digits i %% %d != %d of them for "
                     "training and the others for testing.", folder, CARVE_OUT_EVERY,
                     CARVE_OUT_EVERY - 1)
        images = read_idx(files["test_images"], 3)
        labels = read_idx(files["test_labels"], 1)
        is_test = np.arange(len(images)) % CARVE_OUT_EVERY == CARVE_OUT_EVERY - 1
        keep = is_test if split == "test" else ~is_test
        images, labels = images[keep], labels[keep]
    if len(images) != len(labels):
        raise UserError(f"The MNIST {split} files in {folder} disagree: {len(images)} images but "
                        f"{len(labels)} labels.")
    return images, labels.astype(np.int64)


def _load_usps(folder, split):
    files = _domain_files(folder, "usps")
    if "h5" in files:
        return read_usps_h5(files["h5"])[split]
    return read_usps_libsvm(files[split])


def _load_tfds(name, split, data_dir):
    import tensorflow_datasets as tfds

    builder = tfds_source._builder(name, data_dir)  # Downloads, with the offline message.
    feature = tfds_source._image_feature(builder, name)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    images, labels = [], []
    for example in tfds.as_numpy(ds):
        images.append(example[feature])
        labels.append(example["label"])
    images = np.stack(images)
    if images.shape[-1] == 1:  # TFDS keeps a channel axis for gray images.
        images = images[..., 0]
    return images, np.array(labels, np.int64)


# -- as unpaired domains --------------------------------------------------------

_scans = {}


def scan_digits(root, split):
    """The two domains of a digits split, as `UnpairedExamples` of `LabelledDomainImages`.

    Args:
        root: a `DigitsDataset`.
        split: "train" or "test".
    """
    key = (root, split)
    if key not in _scans:
        domains = []
        for domain in root.domains:
            images, labels = load_domain(root, domain, split)
            description = f"{domain} {split} ({root.folder or 'TFDS'})"
            domains.append(LabelledDomainImages(
                description, tuple(f"{description} digit {i}" for i in range(len(images))),
                ((int(images.shape[1]), int(images.shape[2])),) * len(images),
                encoded=tuple(_png(image) for image in images),
                labels=tuple(int(label) for label in labels)))
        _scans[key] = UnpairedExamples(*domains)
    return _scans[key]


def digits_has_split(root, split):
    """Whether a digits dataset has `split` (train and test)."""
    return split in ("train", "test")


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def file_digest(path, algorithm="sha256"):
    """Hex digest of a file (for checking a local copy against `DIGITS_FILES`)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
