"""TensorFlow Datasets as a source of unpaired domains.

A TFDS dataset is named with the prefix `tfds:` wherever a dataset is named:
    tfds:cycle_gan/horse2zebra    one builder with splits <split>A and <split>B
                                  (every cycle_gan config): its two domains
    tfds:mnist+svhn_cropped       two builders, one domain each (A the first),
                                  each read at <split>; `tfds:mnist+tfds:svhn_cropped`
                                  means the same
A builder's images are its `image` feature, or its only image feature.

The images are read once per process through `as_dataset` with their decoding
skipped: the pipeline gets the encoded files TFDS stores (PNG or JPEG) and
decodes, resizes and jitters them exactly as files from a folder.
"""

import io
from dataclasses import dataclass
from pathlib import Path

from absl import logging
from PIL import Image

from tfi2i.data.domains import DomainImages, UnpairedExamples
from tfi2i.errors import UserError

TFDS_PREFIX = "tfds:"
TFDS_CATALOG = "https://www.tensorflow.org/datasets/catalog/overview"


@dataclass(frozen=True)
class TfdsDataset:
    """A dataset root that is one or two TFDS datasets (see the module docstring).

    Attributes:
        names: one TFDS name with A/B splits, or two names (domain A, domain B).
        data_dir: TFDS's data folder (--tfds_data_dir); None for TFDS's default
            (`$TFDS_DATA_DIR`, else ~/tensorflow_datasets).
    """
    names: tuple
    data_dir: str | None = None

    def __str__(self):
        return TFDS_PREFIX + "+".join(self.names)


def is_tfds(root):
    """Whether a dataset root names TFDS data (a `TfdsDataset` or a "tfds:..." string)."""
    return isinstance(root, TfdsDataset) or (isinstance(root, str)
                                             and root.startswith(TFDS_PREFIX))


def parse_tfds(name, data_dir=None):
    """"tfds:NAME" or "tfds:NAME_A+NAME_B" -> a `TfdsDataset` (returned as is if it is one).

    Args:
        name: the dataset name, with its `tfds:` prefix.
        data_dir: TFDS's data folder, or None for TFDS's default.

    Raises:
        UserError: a name that is not of this form.
    """
    if isinstance(name, TfdsDataset):
        return name
    parts = tuple(p.strip().removeprefix(TFDS_PREFIX) for p in
                  name.removeprefix(TFDS_PREFIX).split("+"))
    if len(parts) > 2 or not all(parts):
        raise UserError(f"Cannot read the TFDS dataset name {name!r}: write tfds:NAME (a dataset "
                        "with A/B splits, e.g. tfds:cycle_gan/horse2zebra) or tfds:NAME+NAME "
                        "(one domain each, e.g. tfds:mnist+svhn_cropped).")
    return TfdsDataset(parts, str(Path(data_dir).expanduser()) if data_dir else None)


def prepare_tfds(dataset):
    """Checks the names and downloads and prepares what is not there yet.

    Args:
        dataset: a `TfdsDataset`.

    Returns:
        `dataset`.

    Raises:
        UserError: an unknown name, no image feature, one name that is one
            domain, or a failed download (the message says how to prepare the
            data by hand).
    """
    for name in dataset.names:
        _image_feature(_builder(name, dataset.data_dir), name)
    _domain_splits(dataset, "train")  # Fails now, not at the first batch, for a lone domain.
    return dataset


def tfds_has_split(dataset, split):
    """Whether the TFDS dataset has the split (True where TFDS does not know its splits)."""
    dataset = parse_tfds(dataset)
    for name, tfds_split in _domain_splits(dataset, split):
        known = list(_builder(name, dataset.data_dir).info.splits.keys())
        if known and tfds_split not in known:
            return False
    return True


_scans = {}


def scan_tfds(dataset, split):
    """Reads the two domains of a split of a TFDS dataset.

    Args:
        dataset: a `TfdsDataset` or a "tfds:..." name.
        split: the split, e.g. "train": the splits <split>A and <split>B of a
            dataset with A/B splits, else <split> of each of the two datasets.

    Returns:
        An `UnpairedExamples` whose `DomainImages` hold the encoded images.

    Raises:
        UserError: a bad name, a failed download, a missing or empty split.
    """
    dataset = parse_tfds(dataset)
    domains = [_read_domain(name, dataset.data_dir, tfds_split)
               for name, tfds_split in _domain_splits(dataset, split)]
    return UnpairedExamples(*domains)


def _domain_splits(dataset, split):
    """[(name, TFDS split) of domain A, and of domain B]."""
    if len(dataset.names) == 2:
        return [(dataset.names[0], split), (dataset.names[1], split)]
    name = dataset.names[0]
    builder = _builder(name, dataset.data_dir)
    # cycle_gan is named because TFDS only knows a builder's splits once prepared.
    if builder.name == "cycle_gan" or {f"{split}A", f"{split}B"} <= set(builder.info.splits):
        return [(name, f"{split}A"), (name, f"{split}B")]
    raise UserError(f"The TFDS dataset {name!r} is one image domain (it has no {split}A and "
                    f"{split}B splits); unpaired data needs two: name a second dataset, e.g. "
                    f"--dataset=tfds:{name}+svhn_cropped.")


_builders = {}


def _builder(name, data_dir):
    """The prepared TFDS builder of `name`, created once per process."""
    key = (name, data_dir)
    if key not in _builders:
        import tensorflow_datasets as tfds  # Takes a second or two: only when TFDS is used.
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except ValueError as e:  # DatasetNotFoundError, or an unknown config.
            raise UserError(f"Unknown TFDS dataset {name!r} ({str(e).splitlines()[0]}). "
                            f"The names are listed at {TFDS_CATALOG}.") from None
        if not builder.is_prepared():
            _download_and_prepare(builder, name, data_dir)
        _builders[key] = builder
    return _builders[key]


def _download_and_prepare(builder, name, data_dir):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    logging.info("Downloading and preparing TFDS dataset %s into %s", name, builder.data_dir)
    try:
        builder.download_and_prepare()
    # Offline: requests' ConnectionError (an OSError) after TFDS's retries. A builder
    # that needs a manual download signals it with an AssertionError.
    except (OSError, tfds.download.DownloadError, NonMatchingChecksumError, AssertionError) as e:
        where = data_dir or "DIR"
        raise UserError(
            f"Could not download and prepare the TFDS dataset {name!r} into "
            f"{builder.data_dir}: {type(e).__name__}: {e}\n"
            f"To set it up by hand, on a machine with internet access run\n"
            f"    tfds build {name} --data_dir=DIR\n"
            f"then copy DIR to this machine and pass --tfds_data_dir={where} (the folder that "
            f"holds {builder.name}/). Or use --data_dir=FOLDER with trainA/ and trainB/ image "
            "folders.") from e


def _image_feature(builder, name):
    """The name of the builder's image feature."""
    import tensorflow_datasets as tfds
    features = builder.info.features
    images = [key for key, feature in features.items()
              if isinstance(feature, tfds.features.Image)]
    if "image" in images:
        return "image"
    if len(images) == 1:
        return images[0]
    raise UserError(f"The TFDS dataset {name!r} has "
                    f"{'several image features' if images else 'no image feature'} "
                    f"(its features: {', '.join(features.keys())}); it needs one, named "
                    "`image` if several.")


def _read_domain(name, data_dir, split):
    """The encoded images of one TFDS split, as a `DomainImages`."""
    key = (name, data_dir, split)
    if key not in _scans:
        import tensorflow_datasets as tfds
        builder = _builder(name, data_dir)
        known = list(builder.info.splits.keys())
        if known and split not in known:
            raise UserError(f"The TFDS dataset {name!r} has no split {split!r}; its splits: "
                            f"{', '.join(known)}.")
        feature = _image_feature(builder, name)
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={feature: tfds.decode.SkipDecoding()})
        encoded = tuple(ds.map(lambda example: example[feature]).as_numpy_iterator())
        description = f"tfds:{name} split {split}"
        if not encoded:
            raise UserError(f"{description} holds no images.")
        paths = tuple(f"{description} example {i}" for i in range(len(encoded)))
        sizes = tuple(_encoded_size(data, path) for data, path in zip(encoded, paths))
        _scans[key] = DomainImages(description, paths, sizes, encoded=encoded)
    return _scans[key]


def _encoded_size(data, path):
    """(height, width) of an encoded image, from its header."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception as e:  # PIL raises many types for bad data; all mean "unreadable".
        raise UserError(f"{path} cannot be decoded ({type(e).__name__}: {e}).") from None
    return height, width
