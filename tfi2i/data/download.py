"""Downloading and unpacking the named dataset archives into a local cache.

Layout of the cache (default `$TFI2I_CACHE`, else `~/.cache/tfi2i`):
    <cache>/<name>/train/...   an extracted dataset, ready to use
    <cache>/downloads/         archives while they download (deleted once extracted)

Every step that can be interrupted writes to a temporary name and renames when
done, so a folder `<cache>/<name>/train` only exists complete, and a later call
reuses it without touching the network. Someone without internet access can
produce the same folder by hand (the error message says how).
"""

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from absl import logging

from tfi2i.data.decode import is_image_file
from tfi2i.data.registry import DATASETS
from tfi2i.errors import UserError
from tfi2i.files import atomic_path

CACHE_ENV = "TFI2I_CACHE"
MIRROR_ENV = "TFI2I_DATASET_MIRROR"
_CHUNK = 1 << 20


def default_cache_dir():
    """The cache folder: `$TFI2I_CACHE` if set, else `~/.cache/tfi2i`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tfi2i").expanduser()


def fetch_dataset(name, cache_dir=None, mirror=None, timeout=60):
    """Returns the folder of a named dataset, downloading it on first use.

    Args:
        name: a key of `DATASETS`.
        cache_dir: the cache folder (default `default_cache_dir()`).
        mirror: a base URL to download from instead of the official server;
            default `$TFI2I_DATASET_MIRROR`.
        timeout: seconds to wait for the server at a time.

    Returns:
        The path of `<cache>/<name>`, which holds the split folders.

    Raises:
        UserError: the download or its verification failed, or the archive is
            unsafe or not shaped like a pix2pix dataset; the message says how to
            set the dataset up by hand.
    """
    spec = DATASETS[name]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / name
    if (target / "train").is_dir():
        return target
    if target.exists():
        raise UserError(f"{target} exists but holds no train/ folder (an unfinished manual "
                        "set-up?): remove it, or finish extracting the archive there.")
    url = spec.url(mirror or os.environ.get(MIRROR_ENV))
    cache.mkdir(parents=True, exist_ok=True)
    archive = _download(spec, url, cache, timeout)
    try:
        _unpack(spec, archive, cache)
    finally:
        archive.unlink(missing_ok=True)
    return target


def manual_instructions(spec, url, cache):
    """How to set a dataset up without this module's download."""
    return (f"To set it up by hand, download {url} on a machine with internet access and "
            f"extract it into {cache}, so that {cache / spec.name / 'train'} exists:\n"
            f"    curl -LO {url}\n"
            f"    tar -xzf {spec.archive_name} -C {cache}\n"
            f"or use --data_dir=FOLDER with a folder that holds train/ and test/ subfolders. "
            f"To download from a mirror, set ${MIRROR_ENV} to its base URL.")


def _download(spec, url, cache, timeout):
    """Downloads `url` into <cache>/downloads and verifies it; returns the path."""
    final = cache / "downloads" / spec.archive_name
    logging.info("Downloading dataset %s from %s", spec.name, url)
    digest = hashlib.sha256()
    received = 0
    # Any error below deletes the .part file; only a verified archive gets the final name.
    with atomic_path(final, suffix=".part") as part:
        try:
            with open(part, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                announced = resp.headers.get("Content-Length")
                announced = int(announced) if announced and announced.isdigit() else None
                total = spec.size or announced
                next_report = 0.1
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if total and received >= next_report * total:
                        logging.info("  %s: %d%% of %.1f MB", spec.name,
                                     100 * received // total, total / 1e6)
                        next_report += 0.1
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            # HTTPError's own text has the status code; URLError's reason is the useful part.
            reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            raise UserError(f"Could not download dataset {spec.name!r} from {url}: {reason}.\n"
                            + manual_instructions(spec, url, cache)) from e
        problem = None
        if announced is not None and received != announced:
            problem = f"the download stopped after {received} of {announced} bytes"
        elif spec.size is not None and received != spec.size:
            problem = f"it has {received} bytes where {spec.size} were expected"
        elif spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            problem = f"its SHA-256 is {digest.hexdigest()}, expected {spec.sha256}"
        if problem:
            raise UserError(f"The download of dataset {spec.name!r} from {url} is damaged: "
                            f"{problem}. It was deleted; try again.\n"
                            + manual_instructions(spec, url, cache))
    return final


def _unpack(spec, archive, cache):
    """Extracts `archive` safely and moves its dataset folder to <cache>/<name>."""
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{spec.name}.extract-"))
    try:
        try:
            safe_extract(archive, staging)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise UserError(f"The archive of dataset {spec.name!r} ({archive}) is corrupt: "
                            f"{e}. Delete it and try again.") from e
        folder = staging / spec.name
        train = folder / "train"
        if not train.is_dir() or not any(is_image_file(n) for n in os.listdir(train)):
            found = sorted(p.name for p in staging.iterdir())
            raise UserError(f"The archive of dataset {spec.name!r} does not hold the expected "
                            f"{spec.name}/train/ folder of images (its top level: {found}). "
                            "Is the mirror serving the right file?")
        try:
            os.rename(folder, cache / spec.name)
        except OSError:
            # Another process finished the same dataset first: keep theirs.
            if not (cache / spec.name / "train").is_dir():
                raise UserError(f"Could not move the extracted dataset to {cache / spec.name}; "
                                "is the cache folder writable?") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive, target):
    """Extracts a tar archive into `target`, refusing members that could escape it.

    Refused: absolute paths, `..` components, links pointing outside `target`,
    and anything but files, folders and links (devices, FIFOs). On top of these
    checks, tarfile's "data" filter strips permissions and ownership.

    Raises:
        UserError: naming the first unsafe member; nothing after it is extracted.
    """
    target = Path(target).resolve()
    # The "data" filter exists from Python 3.10.12 / 3.11.4; the checks here do not need it.
    data_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:  # Streams: one pass over a multi-GB archive.
            problem = _unsafe(member, target)
            if problem:
                raise UserError(f"Refusing to extract {archive}: its member {member.name!r} "
                                f"{problem}. The archive is not a dataset this library made "
                                "or downloads; check where it came from.")
            try:
                tar.extract(member, target, **data_filter)
            except tarfile.FilterError as e:
                raise UserError(f"Refusing to extract {archive}: {e}.") from e


def _unsafe(member, target):
    """Why extracting `member` into `target` would be unsafe, or None."""
    name = member.name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and parts[0].endswith(":")):
        return "has an absolute path"
    if ".." in parts:
        return "has a '..' path component"
    if member.issym() or member.islnk():
        base = target / PurePosixPath(name).parent if member.issym() else target
        resolved = (base / member.linkname).resolve()
        if resolved != target and target not in resolved.parents:
            return f"is a link to {member.linkname!r}, outside the extraction folder"
    elif not (member.isfile() or member.isdir()):
        return "is a device, FIFO or other special file"
    return None
