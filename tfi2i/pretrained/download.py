"""Downloading the released generators into the cache.

    <cache>/pretrained/pix2pix/<name>.pth
    <cache>/pretrained/cyclegan/<name>.pth

The download itself is the dataset downloader's (`tfi2i.data.download.download_file`): to a
`.part` file, checked against Content-Length (and the size or SHA-256 where known), renamed
only when complete, with the same message when the server cannot be reached. A file in the
cache is used without touching the network; putting it there by hand works the same.
"""

import os
from pathlib import Path

from tfi2i.data.download import download_file
from tfi2i.errors import UserError
from tfi2i.files import default_cache_dir
from tfi2i.pretrained.registry import MIRROR_ENV, PRETRAINED, pretrained_names


def get_spec(name):
    """The `PretrainedSpec` of a --pretrained name, or a UserError listing the names."""
    if name not in PRETRAINED:
        raise UserError(f"--pretrained={name} is not a released model tfi2i knows: use one of "
                        f"{', '.join(pretrained_names())}, or --pth=FILE.")
    return PRETRAINED[name]


def manual_instructions(spec, url, target):
    """How to get the file without this module's download."""
    return (f"To set it up by hand, download {url} on a machine with internet access and put "
            f"it at {target}:\n"
            f"    curl -L -o {target} {url}\n"
            f"or convert a copy you have with --pth=FILE. To download from a mirror, set "
            f"${MIRROR_ENV} (or --mirror) to a base URL holding pix2pix/ and cyclegan/.")


def fetch_pretrained(name, cache_dir=None, mirror=None, timeout=60):
    """The cached file of a released generator, downloaded on first use.

    Args:
        name: a --pretrained name (see `tfi2i.pretrained.registry.PRETRAINED`).
        cache_dir: the cache folder (default `$TFI2I_CACHE` or ~/.cache/tfi2i).
        mirror: a base URL to download from instead of the authors' server (its
            pix2pix/<name>.pth and cyclegan/<name>.pth); default `$TFI2I_PRETRAINED_MIRROR`.
        timeout: seconds to wait for the server at a time.

    Returns:
        (path, url): the file in the cache, and the URL it comes (or came) from.

    Raises:
        UserError: unknown name, or the download failed (with how to do it by hand).
    """
    spec = get_spec(name)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = spec.cache_path(cache)
    url = spec.url(mirror or os.environ.get(MIRROR_ENV))
    if target.is_file():
        return target, url
    cache.mkdir(parents=True, exist_ok=True)
    downloaded = download_file(spec, url, cache, manual_instructions(spec, url, target),
                               timeout)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(downloaded, target)  # Same file system: atomic.
    return target, url
