"""The built-in `sample` dataset: colourising grayscale photographs.

A small real paired dataset that needs no network, so that a first training run
works anywhere. It is derived at run time from photographs bundled with
scikit-image (`skimage.data`) and written in the pix2pix AB layout under
`<cache>/sample/{train,test}`: each PNG is 512x256, A (left) the grayscale
version of a 256x256 crop, B (right) the colour crop. AtoB is colourisation.

Crops are taken on a grid (every half window) at four window sizes (0.5, 0.65,
0.8 and 1.0 times the image's short side, at least 256 px) and resized to
256x256, so scale varies: 114 train and 32 test pairs. Train and test come from
different photographs:

    train: astronaut, chelsea, rocket, hubble_deep_field, immunohistochemistry
    test:  coffee

Licences, as scikit-image's docstrings for these images state them:
    astronaut: Eileen Collins, NASA; public domain ("no known copyright restrictions").
    chelsea: Stefan van der Walt; CC0.
    coffee: Rachel Michetti (courtesy of Pikolo Espresso Bar); CC0.
    rocket: DSCOVR launch on Falcon 9, SpaceX; released into the public domain.
    hubble_deep_field: Hubble eXtreme Deep Field, NASA; public domain.
    immunohistochemistry: CMMI; "no known copyright restrictions".
(stereo_motorcycle is left out: scikit-image states no licence for it.)
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tfi2i.data.download import default_cache_dir

# Bump when the generated images change, so stale caches are rebuilt.
SAMPLE_VERSION = "2"
CROP = 256
TRAIN_IMAGES = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
TEST_IMAGES = ("coffee",)


def build_sample(cache_dir=None):
    """Returns the folder of the `sample` dataset, generating it on first use.

    Generated once into a temporary folder and renamed into place, so an
    interrupted run leaves no half-written dataset; later calls reuse it.

    Args:
        cache_dir: the cache folder (default `default_cache_dir()`).

    Returns:
        The path of `<cache>/sample`, holding `train/` and `test/`.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root = cache / "sample"
    if _is_current(root):
        return root
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".sample-"))
    try:
        for split, names in (("train", TRAIN_IMAGES), ("test", TEST_IMAGES)):
            folder = staging / split
            folder.mkdir()
            for name in names:
                for i, pair in enumerate(_pairs(_photo(name))):
                    Image.fromarray(pair).save(folder / f"{name}_{i:03d}.png", compress_level=1)
        (staging / "VERSION").write_text(SAMPLE_VERSION)
        if root.exists():
            shutil.rmtree(root)  # An older version.
        try:
            os.rename(staging, root)
        except OSError:
            if not _is_current(root):  # Not a concurrent build that finished first.
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _is_current(root):
    version = root / "VERSION"
    return version.is_file() and version.read_text().strip() == SAMPLE_VERSION


def _photo(name):
    import skimage.data  # Imported here: it is slow to import and only this needs it.
    image = getattr(skimage.data, name)()
    return np.asarray(image, dtype=np.uint8)


def _pairs(photo):
    """Yields AB pairs (uint8 [256, 512, 3]) from crops of one photo."""
    height, width = photo.shape[:2]
    short = min(height, width)
    windows = sorted({max(CROP, round(f * short)) for f in (0.5, 0.65, 0.8, 1.0)})
    for size in windows:
        for top in _positions(height, size):
            for left in _positions(width, size):
                crop = Image.fromarray(photo[top:top + size, left:left + size])
                colour = crop.resize((CROP, CROP), Image.BICUBIC)
                gray = colour.convert("L").convert("RGB")
                yield np.concatenate([np.asarray(gray), np.asarray(colour)], axis=1)


def _positions(extent, size):
    """Window offsets every half window, the last one flush with the far edge."""
    offsets = list(range(0, extent - size, size // 2)) + [extent - size]
    return sorted(set(offsets))
