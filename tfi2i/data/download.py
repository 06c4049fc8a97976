"""Downloading and unpacking the named dataset archives into a local cache.

Layout of the cache (default `$TFI2I_CACHE`, else `~/.cache/tfi2i`):
    <cache>/<name>/train/...             an extracted pix2pix dataset, ready to use
    <cache>/cyclegan/<name>/trainA/...   an extracted CycleGAN dataset (trainA/, trainB/, ...)
    <cache>/downloads/                   archives while they download (deleted once extracted)

Every step that can be interrupted writes to a temporary name and renames when
done, so a dataset folder only exists complete, and a later call reuses it
without touching the network. Someone without internet access can produce the
same folder by hand (the error message says how).

Archives (tar.gz and zip) are extracted member by member, refusing absolute
paths, `..` components, links that leave the extraction folder (tar; zip
archives may hold no links at all) and special files.
"""

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from absl import logging

from tfi2i.data.decode import is_image_file
from tfi2i.data.registry import DATASETS
from tfi2i.errors import UserError
# The cache folder is shared with the FID weights and features: one definition, in files.
from tfi2i.files import CACHE_ENV, atomic_path, default_cache_dir  # noqa: F401 (re-exported)

MIRROR_ENV = "TFI2I_DATASET_MIRROR"
_CHUNK = 1 << 20


def fetch_dataset(name, cache_dir=None, mirror=None, timeout=60):
    """Returns the folder of a named dataset, downloading it on first use.

    Args:
        name: a key of `DATASETS`.
        cache_dir: the cache folder (default `default_cache_dir()`).
        mirror: a base URL to download from instead of the official server;
            default `$TFI2I_DATASET_MIRROR`.
        timeout: seconds to wait for the server at a time.

    Returns:
        The path of `<cache>/<spec.name>` (e.g. `<cache>/cyclegan/horse2zebra`
        for `horse2zebra`), which holds the split folders.

    Raises:
        UserError: the download or its verification failed, or the archive is
            unsafe or not shaped like the dataset; the message says how to set
            the dataset up by hand.
    """
    spec = DATASETS[name]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / spec.name
    if spec.is_extracted_in(target):
        return target
    if target.exists():
        raise UserError(f"{target} exists but holds no {_folders(spec)} folder (an unfinished "
                        "manual set-up?): remove it, or finish extracting the archive there.")
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
    into = (cache / spec.name).parent  # The archive holds <folder>/: cyclegan/ sets go one down.
    extract = (f"unzip -q {spec.archive_name} -d {into}" if spec.archive_format == "zip"
               else f"tar -xzf {spec.archive_name} -C {into}")
    splits = "trainA/, trainB/, testA/ and testB/" if spec.unpaired else "train/ and test/"
    return (f"To set it up by hand, download {url} on a machine with internet access and "
            f"extract it into {into}, so that {cache / spec.name / spec.train_folders[0]} "
            f"exists:\n"
            f"    curl -LO {url}\n"
            f"    {extract}\n"
            f"or use --data_dir=FOLDER with a folder that holds {splits} subfolders. "
            f"To download from a mirror, set ${MIRROR_ENV} to its base URL.")


def _folders(spec):
    return " and ".join(f"{f}/" for f in spec.train_folders)


def _download(spec, url, cache, timeout):
    """Downloads `url` into <cache>/downloads and verifies it; returns the path."""
    return download_file(spec, url, cache, manual_instructions(spec, url, cache), timeout)


def download_file(spec, url, cache, instructions, timeout=60):
    """Downloads `url` into <cache>/downloads/<spec.archive_name>, verified; returns the path.

    Args:
        spec: has `name`, `archive_name`, `size` and `sha256` (None when
            unknown), and optionally `md5`: a `DatasetSpec`, or a single
            file's record (`tfi2i.data.digits.DigitsFile`).
        url: where to download from.
        cache: the cache folder.
        instructions: how to set the file up by hand, appended to errors.
        timeout: seconds to wait for the server at a time.

    Raises:
        UserError: the download failed or does not match the size or digests.
    """
    final = cache / "downloads" / spec.archive_name
    # What messages call the file: "dataset" unless the record says (a pretrained model).
    kind = getattr(spec, "kind", "dataset")
    logging.info("Downloading %s %s from %s", kind, spec.name, url)
    digest = hashlib.sha256()
    md5 = hashlib.md5() if getattr(spec, "md5", None) else None
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
                    if md5:
                        md5.update(chunk)
                    received += len(chunk)
                    if total and received >= next_report * total:
                        logging.info("  %s: %d%% of %.1f MB", spec.name,
                                     100 * received // total, total / 1e6)
                        next_report += 0.1
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            # HTTPError's own text has the status code; URLError's reason is the useful part.
            reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            raise UserError(f"Could not download {kind} {spec.name!r} from {url}: {reason}.\n"
                            + instructions) from e
        problem = None
        if announced is not None and received != announced:
            problem = f"the download stopped after {received} of {announced} bytes"
        elif spec.size is not None and received != spec.size:
            problem = f"it has {received} bytes where {spec.size} were expected"
        elif spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            problem = f"its SHA-256 is {digest.hexdigest()}, expected {spec.sha256}"
        elif md5 is not None and md5.hexdigest() != spec.md5:
            problem = f"its MD5 is {md5.hexdigest()}, expected {spec.md5}"
        if problem:
            raise UserError(f"The download of {kind} {spec.name!r} from {url} is damaged: "
                            f"{problem}. It was deleted; try again.\n" + instructions)
    return final


def _unpack(spec, archive, cache):
    """Extracts `archive` safely and moves its dataset folder to <cache>/<name>."""
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{spec.folder}.extract-"))
    destination = cache / spec.name
    try:
        try:
            safe_extract(archive, staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise UserError(f"The archive of dataset {spec.name!r} ({archive}) is corrupt: "
                            f"{e}. Delete it and try again.") from e
        folder = staging / spec.folder
        for name in spec.train_folders:
            train = folder / name
            if not train.is_dir() or not any(is_image_file(n) for n in os.listdir(train)):
                found = sorted(p.name for p in staging.iterdir())
                raise UserError(f"The archive of dataset {spec.name!r} does not hold the "
                                f"expected {spec.folder}/{name}/ folder of images (its top "
                                f"level: {found}). Is the mirror serving the right file?")
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(folder, destination)
        except OSError:
            # Another process finished the same dataset first: keep theirs.
            if not spec.is_extracted_in(destination):
                raise UserError(f"Could not move the extracted dataset to {destination}; "
                                "is the cache folder writable?") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive, target):
    """Extracts a tar or zip archive into `target`, refusing members that could escape it.

    Refused: absolute paths, `..` components, links pointing outside `target`
    (tar; a zip archive may hold no links at all, since zipfile would write
    them as files), and anything but files, folders and links (devices,
    FIFOs). On top of these checks, tarfile's "data" filter strips permissions
    and ownership; zipfile sets none.

    Args:
        archive: a `.zip` file, or a tar archive (any compression).
        target: the folder to extract into.

    Raises:
        UserError: naming the first unsafe member; nothing after it is extracted.
    """
    target = Path(target).resolve()
    if str(archive).endswith(".zip"):
        _safe_extract_zip(archive, target)
        return
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


def _safe_extract_zip(archive, target):
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            problem = _unsafe_zip(member)
            if problem:
                raise UserError(f"Refusing to extract {archive}: its member {member.filename!r} "
                                f"{problem}. The archive is not a dataset this library made "
                                "or downloads; check where it came from.")
            zf.extract(member, target)


def _unsafe_zip(member):
    """Why extracting the zip member would be unsafe, or None."""
    problem = _unsafe_name(member.filename)
    if problem:
        return problem
    # The Unix file type, where the tool that wrote the archive set one (0 otherwise).
    kind = stat.S_IFMT(member.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a device, FIFO or other special file"
    return None


def _unsafe_name(name):
    """Why a member's path could leave the extraction folder, or None."""
    name = name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and parts[0].endswith(":")):
        return "has an absolute path"
    if ".." in parts:
        return "has a '..' path component"
    return None


def _unsafe(member, target):
    """Why extracting the tar `member` into `target` would be unsafe, or None."""
    problem = _unsafe_name(member.name)
    if problem:
        return problem
    name = member.name.replace("\\", "/")
    if member.issym() or member.islnk():
        base = target / PurePosixPath(name).parent if member.issym() else target
        resolved = (base / member.linkname).resolve()
        if resolved != target and target not in resolved.parents:
            return f"is a link to {member.linkname!r}, outside the extraction folder"
    elif not (member.isfile() or member.isdir()):
        return "is a device, FIFO or other special file"
    return None
