"""Where tfi2i keeps files, and writing files atomically.

`default_cache_dir` is the one cache folder (datasets, FID weights and features, segmenters).

Atomic writes go through a temporary name in the same folder, then a rename. A reader
(another process, a resumed run, a concurrent evaluation) then sees either the old file or
the whole new one, never a half-written file, and an interrupted write leaves no partial
file under the real name.
"""

import contextlib
import json
import os
import secrets
from pathlib import Path

CACHE_ENV = "TFI2I_CACHE"


def default_cache_dir():
    """The cache folder: `$TFI2I_CACHE` if set, else `~/.cache/tfi2i` (not created here).

    Returns:
        A `pathlib.Path`, with `~` expanded.
    """
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tfi2i").expanduser()


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path to write, and renames it onto `path` on success.

    The temporary file lies in `path`'s folder (created if missing), so the
    final `os.replace` is an atomic rename on the same file system. Its name
    is `.tmp-<pid>-<random>-<basename><suffix>`: it ends with `path`'s own
    name, so writers that read the format from the extension (Keras'
    `.weights.h5` and `.keras`, PIL's `.png`) still work, unless `suffix`
    says otherwise (e.g. ".part" for a download in progress). The file is not
    created here: the caller's writer creates it, with the usual permissions.

    If the block raises, the temporary file is removed and `path` is left as
    it was.

    Args:
        path: the destination file (str or os.PathLike).
        suffix: appended to the temporary name.

    Yields:
        The temporary path, a str.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(
        folder, f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{os.path.basename(path)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        # After a successful replace the temporary name is gone; otherwise it is debris.
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_json_atomic(path, data):
    """Writes `data` as indented, key-sorted JSON to `path`, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
