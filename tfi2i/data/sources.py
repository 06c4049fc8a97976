"""Where data comes from: dataset names and folders -> lists of checked images.

Paired data: a dataset root holds one entry per split, in one of two layouts:
    AB images:   root/<split>/*.jpg|png|..., each image A (left) | B (right)
    A/B folders: root/<split>/A/ + root/<split>/B/, or root/<split>A/ + root/<split>B/,
                 an A file paired with the B file of the same name less extension
                 (and the same sub-folder).
The layout is decided per split from what is there; a split that looks like both
is an error rather than a guess.

Image folders are read with their sub-folders, as the reference's `make_dataset`
(os.walk) reads them: AB images in root/<split>/ and below (unless it holds A/ and
B/), a domain's images in root/<split>A/ and below. A sub-folder named like a split
(train, test, val, trainA, ...) inside one is an error, not read: it would mix that
split's images into this one's.

Unpaired data: root/<split>A/ + root/<split>B/ (the CycleGAN release layout), two
domains whose files have nothing to do with each other (any names, counts and
sizes). With `unpaired=True` (--unpaired) a paired split is read as two domains
instead: the left and right halves of its AB images, or its A and B folders.
TFDS datasets (`tfds:...`, see `tfds_source`) and the digits sets (`mnist2usps`,
..., see `digits`, with their labels) are unpaired domains too.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tfi2i.data import digits, download, sample, tfds_source
from tfi2i.data.decode import (IMAGE_EXTENSIONS, holds_images, inspect_image, is_image_file,
                               list_images, report_bad)
from tfi2i.data.domains import DomainImages, UnpairedExamples
from tfi2i.data.registry import DATASETS
from tfi2i.errors import UserError


def resolve_dataset(dataset=None, data_dir=None, cache_dir=None, mirror=None,
                    tfds_data_dir=None):
    """Returns the root (a folder holding train/, test/, ...; or TFDS data) of the data to use.

    Args:
        dataset: `sample`, a name in `DATASETS` (downloaded on first use), a
            TFDS name (`tfds:cycle_gan/horse2zebra`, `tfds:mnist+svhn_cropped`;
            see `tfds_source`), or None. Only names the data when `data_dir`
            is given too.
        data_dir: a local dataset folder; takes precedence over downloading.
            If it has no split folders but a `<dataset>/` subfolder (where an
            archive was extracted), that subfolder is used.
        cache_dir: where downloads and the sample dataset are kept (default
            `$TFI2I_CACHE`, else `~/.cache/tfi2i`).
        mirror: a base URL to download named datasets from (default
            `$TFI2I_DATASET_MIRROR`, else the official servers).
        tfds_data_dir: TFDS's data folder for `tfds:` names (default
            `$TFDS_DATA_DIR`, else ~/tensorflow_datasets).

    Returns:
        The folder as a str, or for TFDS a `TfdsDataset` (downloaded and
        prepared), or for the digits sets (`mnist2usps`, `usps2mnist`,
        `svhn2mnist`; see `digits`) a `DigitsDataset`, which every function
        here takes as a root.

    Raises:
        UserError: no data given, an unknown name, a missing folder, or a
            failed download.
    """
    if dataset in digits.DIGITS_DATASETS:
        return digits.resolve_digits(dataset, data_dir, cache_dir, mirror, tfds_data_dir)
    if data_dir:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"The data folder {root} does not exist (--data_dir).")
        if dataset and not _has_split(root):
            # The archive's own folder name too: cyclegan/facades unpacks to facades/.
            names = [dataset] + ([DATASETS[dataset].folder] if dataset in DATASETS else [])
            root = next((root / n for n in names if _has_split(root / n)), root)
        return str(root)
    if not dataset:
        raise UserError("No data given: set --dataset to one of " + ", ".join(dataset_names())
                        + ", or tfds:NAME, or --data_dir to a folder with train/ and test/ "
                        "(or trainA/, trainB/, testA/, testB/) subfolders.")
    if dataset == "sample":
        return str(sample.build_sample(cache_dir))
    if dataset in DATASETS:
        return str(download.fetch_dataset(dataset, cache_dir, mirror))
    if tfds_source.is_tfds(dataset):
        return tfds_source.prepare_tfds(tfds_source.parse_tfds(dataset, tfds_data_dir))
    raise UserError(f"Unknown dataset {dataset!r}. Named datasets: {', '.join(dataset_names())}; "
                    "TensorFlow Datasets as tfds:NAME (e.g. tfds:cycle_gan/horse2zebra). For "
                    "your own images use --data_dir=FOLDER (train/ and test/ subfolders of AB "
                    "images, or of A/ and B/ folders; unpaired: trainA/, trainB/, testA/, "
                    "testB/).")


def dataset_names():
    """All names `resolve_dataset` accepts."""
    return ["sample", *DATASETS, *digits.DIGITS_DATASETS]


def _has_split(folder):
    return folder.is_dir() and any(
        (folder / s).is_dir() or (folder / f"{s}A").is_dir() for s in ("train", "test", "val"))


@dataclass(frozen=True)
class PairedExamples:
    """The checked, usable image pairs of one split, in file-name order.

    Attributes:
        description: the split's folder(s), for messages.
        layout: "ab" (one image per pair, A left | B right) or "folders".
        a_paths, b_paths: the files of A and B; the same file for "ab".
        sizes: (height, width) of each pair's A (= B) image.
    """
    description: str
    layout: str
    a_paths: tuple
    b_paths: tuple
    sizes: tuple

    def __len__(self):
        return len(self.a_paths)


def num_examples(root, split, skip_bad_images=False, paired=True, unpaired=False,
                 exif_orientation=True):
    """The number of examples in an epoch of `root`'s `split`.

    Paired: the usable image pairs. Unpaired: max(|A|, |B|) of the usable
    images of the two domains. Pass the same `skip_bad_images` and `unpaired`
    as to the pipeline: skipped files do not count.

    Args:
        root: the dataset (see `resolve_dataset`).
        split: the split's name, e.g. "train".
        skip_bad_images: leave unusable files out instead of raising.
        paired: True for paired data, False for two unpaired domains.
        unpaired: unpaired only: read a paired split as two domains.
        exif_orientation: as for the pipeline (the count does not depend on it;
            the same value reuses the pipeline's scan).

    Raises:
        UserError: as `scan_paired` or `scan_unpaired`.
    """
    if paired:
        return len(scan_paired(root, split, skip_bad_images, exif_orientation))
    return len(scan_unpaired(root, split, skip_bad_images, unpaired, exif_orientation))


def has_split(root, split, paired=True, unpaired=False):
    """Whether `root` has the split at all, so a caller can skip a missing test split.

    A split that is there but broken (e.g. testA/ without testB/, or no
    images) counts as there: reading it then raises an error saying what is
    wrong.

    Args:
        root: the dataset (see `resolve_dataset`).
        split: the split's name, e.g. "test".
        paired: True for paired data, False for two unpaired domains.
        unpaired: unpaired only: a paired split read as two domains counts.
    """
    if tfds_source.is_tfds(root):
        return not paired and tfds_source.tfds_has_split(root, split)
    if digits.is_digits(root):
        return not paired and digits.digits_has_split(root, split)
    root = Path(root)
    split_dirs = [root / f"{split}A", root / f"{split}B"]
    if paired or unpaired:
        split_dirs.append(root / split)
    return any(d.is_dir() for d in split_dirs)


_scans = {}


def scan_paired(root, split, skip_bad_images=False, exif_orientation=True):
    """Finds and checks the image pairs of one split.

    Every file's header is read (in threads; a few seconds for 50k files). The
    result is remembered until a folder's modification time changes, so the
    trainer can ask for the same split repeatedly.

    Args:
        root: the dataset folder.
        split: the split's name, e.g. "train".
        skip_bad_images: leave unusable files out with a warning instead of
            raising.
        exif_orientation: sizes as decoded upright (see `decode_image`).

    Returns:
        A `PairedExamples` with at least one pair.

    Raises:
        UserError: the split is missing, empty or ambiguous; or a file cannot
            be used (cannot be decoded; an AB image not twice as wide as high;
            an A file without a B file or vice versa; A and B of different
            sizes) and `skip_bad_images` is False; or `root` is TFDS data,
            which is unpaired.
    """
    if tfds_source.is_tfds(root) or digits.is_digits(root):
        raise UserError(f"{root} is read as two unpaired domains; a paired method needs paired "
                        "data: use --data_dir with paired images, or an unpaired method.")
    layout, folders = _find_layout(Path(root), split)
    key = (layout, tuple(str(f.resolve()) for f in folders),
           tuple(os.stat(f).st_mtime_ns for f in folders), skip_bad_images, exif_orientation)
    if key not in _scans:
        if layout == "ab":
            _scans[key] = _scan_ab(folders[0], skip_bad_images, exif_orientation)
        else:
            _scans[key] = _scan_folders(*folders, skip_bad_images, exif_orientation)
    return _scans[key]


def scan_unpaired(root, split, skip_bad_images=False, unpaired=False, exif_orientation=True):
    """Finds and checks the images of the two domains of one split.

    Every file's header is read, and the result remembered, as `scan_paired`
    does.

    Args:
        root: the dataset folder, or TFDS data (a "tfds:..." name or a
            `TfdsDataset`).
        split: the split's name, e.g. "train".
        skip_bad_images: leave unusable files out with a warning instead of
            raising.
        unpaired: when there are no <split>A/ and <split>B/ folders, read the
            paired split (AB images: their left and right halves; or its A/
            and B/ folders) as two domains.
        exif_orientation: sizes as decoded upright (see `decode_image`).

    Returns:
        An `UnpairedExamples` with at least one image in each domain.

    Raises:
        UserError: the split is missing (the message says what is there), a
            domain folder is missing or holds no usable image, or a file
            cannot be used and `skip_bad_images` is False.
    """
    if tfds_source.is_tfds(root):
        return tfds_source.scan_tfds(root, split)
    if digits.is_digits(root):
        return digits.scan_digits(root, split)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"The dataset folder {root} does not exist.")
    has_domains = (root / f"{split}A").is_dir() or (root / f"{split}B").is_dir()
    if has_domains or not unpaired:
        layout, folders = "folders", _domain_folders(root, split)
    else:
        layout, folders = _find_layout(root, split)
    if layout == "ab":
        # Checks each is twice as wide as high.
        pairs = scan_paired(root, split, skip_bad_images, exif_orientation)
        return UnpairedExamples(
            DomainImages(f"{pairs.description} (left halves)", pairs.a_paths, pairs.sizes, "left"),
            DomainImages(f"{pairs.description} (right halves)", pairs.b_paths, pairs.sizes,
                         "right"))
    return UnpairedExamples(*[_scan_domain(f, skip_bad_images, exif_orientation)
                              for f in folders])


def _domain_folders(root, split):
    """[<split>A, <split>B] of an unpaired dataset folder, or an error saying what is there."""
    a, b = root / f"{split}A", root / f"{split}B"
    if a.is_dir() and b.is_dir():
        return [a, b]
    if a.is_dir() or b.is_dir():
        have, missing = (a, b) if a.is_dir() else (b, a)
        raise UserError(f"{have} has no partner folder {missing}: unpaired data needs both "
                        f"domains, {a.name}/ and {b.name}/.")
    if (root / split).is_dir():
        raise UserError(f"{root} has no {a.name}/ and {b.name}/ folders (unpaired data: one "
                        f"folder of images per domain) but a paired split {root / split}/: to "
                        "read its pairs as two unpaired domains, set unpaired=True (--unpaired).")
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise UserError(f"{root} has no split {split!r}: unpaired data needs {a}/ and {b}/, one "
                    f"folder of images per domain. Folders there: "
                    f"{', '.join(present) or 'none'}.")


def _scan_domain(folder, skip_bad_images, exif_orientation=True):
    """The usable images of one domain folder (and its sub-folders), as a `DomainImages`."""
    key = ("domain", str(folder.resolve()), os.stat(folder).st_mtime_ns, skip_bad_images,
           exif_orientation)
    if key not in _scans:
        infos = _inspect_all(_list_images(folder), exif_orientation)
        report_bad(str(folder), len(infos),
                    [(i.path, i.problem) for i in infos if i.problem], skip_bad_images)
        good = [i for i in infos if not i.problem]
        _scans[key] = DomainImages(str(folder), tuple(i.path for i in good),
                                   tuple((i.height, i.width) for i in good))
    return _scans[key]


def _find_layout(root, split):
    """Decides a split's layout: ("ab", [folder]) or ("folders", [A, B])."""
    if not root.is_dir():
        raise UserError(f"The dataset folder {root} does not exist.")
    split_dir = root / split
    candidates = []
    for a, b in ((split_dir / "A", split_dir / "B"), (root / f"{split}A", root / f"{split}B")):
        if a.is_dir() and b.is_dir():
            candidates.append(("folders", [a, b]))
        elif a.is_dir() or b.is_dir():
            have, missing = (a, b) if a.is_dir() else (b, a)
            raise UserError(f"{have} has no partner folder {missing}: paired data in separate "
                            "folders needs both A and B.")
    # AB images in the split folder, or (without A/ and B/) in its sub-folders.
    if split_dir.is_dir() and (any(is_image_file(n) for n in os.listdir(split_dir))
                               or (not candidates and holds_images(split_dir))):
        candidates.append(("ab", [split_dir]))
    if len(candidates) > 1:
        where = " and ".join(
            "AB images in " + str(f[0]) if kind == "ab" else f"A/B folders {f[0]} + {f[1]}"
            for kind, f in candidates)
        raise UserError(f"Split {split!r} of {root} is ambiguous: it has {where}. "
                        "Keep one layout and move the other away.")
    if candidates:
        return candidates[0]
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise UserError(f"{root} has no split {split!r}: expected {split_dir}/ with AB images, "
                        f"{split_dir}/A/ + {split_dir}/B/, or {root / split}A/ + "
                        f"{root / split}B/. Folders there: {present or 'none'}.")
    others = sorted(n for n in os.listdir(split_dir) if not n.startswith("."))[:5]
    raise UserError(f"{split_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
                    + (f"; it has: {', '.join(others)}" if others else "; it is empty") + ".")


def _list_images(folder):
    # Sub-folders too, as the reference's make_dataset (os.walk); not another split's.
    return list_images(folder, recursive=True, refuse_splits=True)


def _inspect_all(paths, exif_orientation=True):
    with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda p: inspect_image(p, exif_orientation), paths))


def _scan_ab(folder, skip_bad_images, exif_orientation=True):
    infos = _inspect_all(_list_images(folder), exif_orientation)
    good, bad = [], []
    for info in infos:
        problem = info.problem
        if problem is None and info.width != 2 * info.height:
            problem = (f"is {info.width}x{info.height}; an AB image must be twice as wide as "
                       "high (A left, B right). For other shapes use separate A/ and B/ folders")
        if problem:
            bad.append((info.path, problem))
        else:
            good.append(info)
    report_bad(str(folder), len(infos), bad, skip_bad_images)
    paths = tuple(i.path for i in good)
    return PairedExamples(str(folder), "ab", paths, paths,
                          tuple((i.height, i.width // 2) for i in good))


def _scan_folders(a_dir, b_dir, skip_bad_images, exif_orientation=True):
    a_files = _by_stem(_list_images(a_dir), a_dir)
    b_files = _by_stem(_list_images(b_dir), b_dir)
    bad = [(a_files[s], f"has no partner in {b_dir} (pairs are matched by file name "
            "without extension, and sub-folder)") for s in a_files if s not in b_files]
    bad += [(b_files[s], f"has no partner in {a_dir} (pairs are matched by file name "
             "without extension, and sub-folder)") for s in b_files if s not in a_files]
    stems = sorted(s for s in a_files if s in b_files)
    a_infos = _inspect_all([a_files[s] for s in stems], exif_orientation)
    b_infos = _inspect_all([b_files[s] for s in stems], exif_orientation)
    good = []
    for a, b in zip(a_infos, b_infos):
        if a.problem or b.problem:
            bad += [(i.path, i.problem) for i in (a, b) if i.problem]
        elif (a.width, a.height) != (b.width, b.height):
            bad.append((b.path, f"is {b.width}x{b.height} but its partner {a.path} is "
                        f"{a.width}x{a.height}; paired images must have the same size"))
        else:
            good.append((a, b))
    report_bad(f"{a_dir} + {b_dir}", len(a_files) + len(b_files), bad, skip_bad_images)
    return PairedExamples(f"{a_dir} + {b_dir}", "folders", tuple(a.path for a, _ in good),
                          tuple(b.path for _, b in good),
                          tuple((a.height, a.width) for a, _ in good))


def _by_stem(paths, folder):
    """{path below `folder` without extension: path}: A and B files pair by it."""
    files = {}
    for path in paths:
        stem = str(Path(os.path.relpath(path, folder)).with_suffix(""))
        if stem in files:
            raise UserError(f"{files[stem]} and {path} have the same name without extension, so "
                            "it is unclear which one to pair; rename or remove one.")
        files[stem] = path
    return files

