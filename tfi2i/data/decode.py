"""Image files: which files are images, decoding to float32 RGB, the cheap up-front check.

`list_images` is the one listing of image files: the data pipeline, `tfi2i-translate`,
`tfi2i-export --sample_images` and `tfi2i-eval` all call it, so they read the same files
from a folder (`IMAGE_EXTENSIONS` in any case, hidden files skipped), and say how many
other files they leave out. `decode_image` is the one decoder: the same formats, the same
pixels, and the same EXIF orientation everywhere.

Decoding inside the input pipeline uses TensorFlow's decoders, so it runs in the
tf.data graph, in parallel and without the GIL; only TIFF, which TensorFlow cannot
decode, goes through PIL (in a `tf.numpy_function`). PIL only reads headers up front
(`inspect_image`): that is fast enough for tens of thousands of files, and it
finds the files that TF would fail on before training starts, where the error
can name the file instead of surfacing as a TF traceback mid-run.

EXIF orientation: phones store photos as the sensor saw them and record in an EXIF
tag how to turn them upright; TensorFlow's decoders ignore the tag. `decode_image`
reads it (from a JPEG's APP1 segment, a PNG's eXIf chunk, a WebP's EXIF chunk or a
TIFF's first IFD, parsed with TF string ops) and turns the image upright, as PIL's
`ImageOps.exif_transpose` does, unless `exif_orientation=False`. The pix2pix/CycleGAN
reference loader (`Image.open(path).convert("RGB")`) ignores the tag: set
exif_orientation False (--noexif_orientation) for parity with it.
"""

import collections
import os
import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tfi2i.errors import UserError

# The formats `decode_image` reads at every dtype, and the file extensions that name them:
# the one set every listing of image files uses. PIL calls a JPEG with a multi-picture
# (MPF) segment, as some phones write, "MPO"; it is a JPEG to every decoder.
SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Sub-folders with these names are splits of a dataset (see `tfi2i.data.sources`): a
# recursive listing of training or evaluation images refuses to mix them in.
SPLIT_FOLDER = re.compile(r"^(train|test|val)[AB]?$")

# How many bytes at the end of a file to look at for its format's end marker.
_TAIL_BYTES = 64
# Files that are not images, named in the warning of a listing.
_EXAMPLES = 3

# EXIF's Orientation tag, and how far the parser looks for it.
_ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 64     # JPEG segments or PNG/WebP chunks walked before giving up.
_MAX_IFD_ENTRIES = 64  # Entries of the first IFD searched for the tag.


@dataclass(frozen=True)
class ImageInfo:
    """What the header of one image file says.

    Attributes:
        path: the file.
        width, height: its size in pixels as decoded: upright (width and height
            swapped for orientations 5-8) unless inspected with
            exif_orientation=False; 0 when unreadable.
        problem: why the pipeline cannot use it, or None when it can.
        orientation: its EXIF orientation, 1 (as stored) to 8; 1 without a tag.
    """
    path: str
    width: int
    height: int
    problem: str | None = None
    orientation: int = 1


def is_image_file(name):
    """Whether a file name is an image's: one of `IMAGE_EXTENSIONS` (any case), not hidden.

    Hidden names (a leading ".") are skipped: macOS writes `._photo.jpg` resource forks
    beside every file copied to a foreign disk, and they are not images.
    """
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_images(folder, recursive=False, refuse_splits=False, report=True):
    """The image files in `folder`, sorted: the one listing data, translate and eval use.

    A file counts when `is_image_file` says so (`IMAGE_EXTENSIONS` in any case, e.g.
    `photo.JPG`; no hidden files). Folders whose names end like images do not count.
    Other files (`photo.heic`, `notes.txt`) are left out, and said so once per folder in
    a warning with their count and a few names.

    Args:
        folder: the folder (str or os.PathLike).
        recursive: also search sub-folders (hidden ones skipped; symbolic links to
            folders not followed), as the reference's `make_dataset` walks data
            folders. Each folder's files come before its sub-folders' files, all
            sorted by name.
        refuse_splits: with `recursive`, raise on a sub-folder named like a
            dataset split (train, test, val, trainA, ...): a folder of training or
            evaluation images holding another split would mix the splits.
        report: warn about the files left out.

    Returns:
        A non-empty list of paths (str), `folder` joined with the path below it.

    Raises:
        UserError: `folder` is not a folder, holds no image file, or (with
            `refuse_splits`) holds a split folder.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise UserError(f"The image folder {folder} is a file, not a folder."
                        if os.path.exists(folder) else
                        f"The image folder {folder} does not exist.")
    found, others = [], []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as e:
            raise UserError(f"Cannot list the image folder {current}: {e.strerror}.") from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            (found if is_image_file(entry.name) else others).append(entry.path)
        if recursive:
            subfolders = [e for e in entries
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
            splits = [e.path for e in subfolders if SPLIT_FOLDER.match(e.name)]
            if refuse_splits and splits:
                raise UserError(
                    f"{splits[0]} is named like a dataset split, inside the image folder "
                    f"{folder}, whose sub-folders are read too: its images would be mixed "
                    "into this one's. Pass the split's own folder, or move or rename it.")
            # Reversed onto a stack: the sub-folders are then visited in sorted order.
            pending += [e.path for e in reversed(subfolders)]
    if not found:
        raise UserError(f"No images in {folder}: it holds no {', '.join(IMAGE_EXTENSIONS)} "
                        f"files{' (sub-folders searched too)' if recursive else ''}"
                        + (f"; it has {_describe_others(folder, others)}" if others else "")
                        + ".")
    if report and others:
        _warn_once(folder, recursive, others)
    return found


_warned = set()


def _describe_others(folder, others):
    """'3 other files (2 .heic, 1 .txt), e.g. a.heic, ...'."""
    kinds = collections.Counter(os.path.splitext(p)[1].lower() or "no extension"
                                for p in others)
    names = ", ".join(os.path.relpath(p, folder) for p in others[:_EXAMPLES])
    return (f"{len(others)} other file{'s' if len(others) > 1 else ''} ("
            + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + f"), e.g. {names}")


def _warn_once(folder, recursive, others):
    key = (os.path.abspath(folder), recursive, len(others))
    if key in _warned:
        return
    _warned.add(key)
    logging.warning("%s holds %s, which are not read: images are %s files (convert others, "
                    "e.g. to PNG).", folder, _describe_others(folder, others),
                    "/".join(e.lstrip(".") for e in IMAGE_EXTENSIONS))


def holds_images(folder):
    """Whether `folder` or a (non-hidden) sub-folder of it holds an image file."""
    pending = [os.fspath(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_file() and is_image_file(entry.name):
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except OSError:
            continue
    return False


def inspect_image(path, exif_orientation=True):
    """Reads the header of an image file and says whether it can be decoded.

    Cheap: PIL reads the header, and the last bytes of the file are checked for
    the format's end marker. Only a file whose end marker is missing (likely
    truncated) is decoded in full, with the same TF decoder the pipeline uses;
    TIFF files, which have none, are decoded by PIL in full.

    Args:
        path: the file.
        exif_orientation: report the size upright (see `decode_image`).

    Returns:
        An `ImageInfo`; its `problem` is None for a usable file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            f.seek(0)
            with Image.open(f) as im:
                fmt, mode, (width, height) = im.format, im.mode, _stored_size(im)
                orientation = _pil_orientation(im)
                if fmt == "TIFF":
                    im.load()  # No end marker to check: decode it (rare, and small sets).
            end = f.seek(0, os.SEEK_END)
            f.seek(max(0, end - _TAIL_BYTES))
            tail = f.read()
    except Exception as e:  # PIL raises many types for bad data; all mean "unreadable".
        return ImageInfo(path, 0, 0, f"cannot be decoded ({type(e).__name__}: {e})")
    if exif_orientation and orientation >= 5:
        width, height = height, width
    if fmt not in SUPPORTED_FORMATS:
        return ImageInfo(path, width, height,
                         f"is a {fmt} image; supported are "
                         f"{', '.join(f for f in SUPPORTED_FORMATS if f != 'MPO')} "
                         "(convert it, e.g. to PNG)", orientation)
    if fmt == "BMP" and mode not in ("RGB", "RGBA", "L"):
        # TF reads palette BMPs as gray palette indices and rejects 1/4-bit ones.
        return ImageInfo(path, width, height,
                         f"is a palette BMP (mode {mode}), which TensorFlow decodes wrongly "
                         "(convert it to PNG)", orientation)
    if width < 1 or height < 1:
        return ImageInfo(path, width, height, "is empty (0 pixels)", orientation)
    if fmt != "TIFF" and not _ends_complete(fmt, head, tail, end):
        problem = _tf_decode_problem(path)
        if problem:
            return ImageInfo(path, width, height, f"is truncated or corrupt ({problem})",
                             orientation)
    return ImageInfo(path, width, height, None, orientation)


def _stored_size(image):
    """(width, height) of the pixels as stored (recent Pillow reports TIFFs' upright)."""
    if image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        return tags.get(256, image.size[0]), tags.get(257, image.size[1])
    return image.size


def _pil_orientation(image):
    """The EXIF orientation PIL reads (1 when absent or invalid), as `decode_image` reads it."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # A damaged EXIF block: decode_image ignores it too.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _ends_complete(fmt, head, tail, size):
    """Whether a file ends the way a complete file of its format ends."""
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" in tail
    if fmt == "PNG":
        return b"IEND" in tail
    if fmt == "GIF":
        return tail.rstrip(b"\x00").endswith(b";")
    if fmt == "WEBP":  # RIFF: the size of what follows the first 8 bytes.
        return size >= 8 + int.from_bytes(head[4:8], "little")
    return size >= int.from_bytes(head[2:6], "little")  # BMP: file size in its header.


def _tf_decode_problem(path):
    try:
        decode_image(tf.io.read_file(path), tf.uint8)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        return e.message.splitlines()[-1]
    return None


def check_images(paths, where, skip_bad_images=False, exif_orientation=True):
    """Inspects image files up front; the usable ones, or an error naming the others.

    Args:
        paths: the files.
        where: what they are (a folder), for messages.
        skip_bad_images: leave unusable files out with a warning instead of raising.
        exif_orientation: as `inspect_image`.

    Returns:
        The `ImageInfo`s of the usable files, in order.

    Raises:
        UserError: a file cannot be used and `skip_bad_images` is False, or none can.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
        infos = list(pool.map(lambda p: inspect_image(p, exif_orientation), paths))
    bad = [(i.path, i.problem) for i in infos if i.problem]
    report_bad(where, len(infos), bad, skip_bad_images)
    return [i for i in infos if not i.problem]


# Bad files listed in one message; the rest are counted.
_LIST_AT_MOST = 10


def report_bad(where, total, bad, skip_bad_images, flag="--skip_bad_images"):
    """Raises for unusable files `[(path, problem)]`, or warns when skipping them."""
    if not bad:
        return
    listed = "\n".join(f"  {path}: {problem}" for path, problem in bad[:_LIST_AT_MOST])
    more = f"\n  ... and {len(bad) - _LIST_AT_MOST} more" if len(bad) > _LIST_AT_MOST else ""
    if skip_bad_images and len(bad) < total:
        logging.warning("Skipping %d of %d image files in %s that cannot be used:\n%s%s",
                        len(bad), total, where, listed, more)
        return
    if skip_bad_images:
        raise UserError(f"None of the {total} image files in {where} can be used:\n{listed}{more}")
    raise UserError(f"{len(bad)} of {total} image files in {where} cannot be used:\n"
                    f"{listed}{more}\nFix or remove them, or set {flag} to leave them out.")


# --- Decoding ------------------------------------------------------------------------


def _padded(contents, n):
    """The first `n` bytes of `contents`, zero-padded: substr within them is always valid."""
    return tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, n), b"\0" * n]),
                             0, n)


def _is_webp(contents):
    """Whether encoded bytes are a WebP file ("RIFF", 4 size bytes, "WEBP")."""
    head = _padded(contents, 12)
    return tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
                          tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"))


def _is_tiff(contents):
    head = tf.strings.substr(_padded(contents, 4), 0, 4)
    return tf.logical_or(tf.equal(head, b"II*\0"), tf.equal(head, b"MM\0*"))


def _read(contents, position, n):
    """`n` bytes of `contents` from `position` (a string tensor), zero-padded past the end."""
    position = tf.clip_by_value(tf.cast(position, tf.int32), 0, tf.strings.length(contents))
    return _padded(tf.strings.substr(contents, position, n), n)


def _numbers(data, dtype, little):
    """`data` (a string tensor) as unsigned numbers of `dtype`, in the byte order chosen."""
    return tf.cast(tf.where(little, tf.io.decode_raw(data, dtype, little_endian=True),
                            tf.io.decode_raw(data, dtype, little_endian=False)), tf.int32)


# Explicit TF control flow throughout: AutoGraph would only slow tracing down.
@tf.autograph.experimental.do_not_convert
def _exif_start(contents):
    """The offset of the TIFF header holding the EXIF tags of an encoded image, or -1.

    JPEG: after "Exif\\0\\0" (the APP1 segment's identifier, within the first 128 KiB,
    where the segments before the image data are). PNG: after "eXIf" (the chunk's type,
    within the first MiB: it comes before the image data). WebP: after "EXIF" (the
    chunk's fourcc and size; anywhere, it usually follows the image data), skipping an
    APP1 identifier some writers put there. TIFF: the file itself. One string search and
    no loop, in few ops: a walk over the segments in TF ops cost ~15 ms per image in
    tf.data. A stray match is caught by the TIFF header check of `exif_orientation_of`
    (the file then counts as untagged).
    """
    head = _padded(contents, 12)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(tf.strings.substr(head, 0, 8), b"\x89PNG\r\n\x1a\n")
    is_webp = _is_webp(contents)
    marker = tf.where(is_jpeg, b"Exif\0\0", tf.where(is_png, b"eXIf", b"EXIF"))
    after = tf.where(is_jpeg, 6, tf.where(is_png, 4, 8))
    limit = tf.where(is_jpeg, 1 << 17, tf.where(is_png, 1 << 20, tf.strings.length(contents)))
    parts = tf.strings.split(tf.strings.substr(contents, 0, limit), sep=marker, maxsplit=1)
    found = tf.strings.length(parts[0]) + after
    app1 = is_webp & tf.equal(_read(contents, found, 6), b"Exif\0\0")
    found += tf.where(app1, 6, 0)
    searched = (is_jpeg | is_png | is_webp) & (tf.size(parts) > 1)
    return tf.where(_is_tiff(contents), 0, tf.where(searched, found, -1))


# Explicit TF control flow throughout: AutoGraph would only slow tracing down.
@tf.autograph.experimental.do_not_convert
def exif_orientation_of(contents):
    """The EXIF orientation of an encoded image (int32 scalar, 1..8; 1 without a valid tag).

    Reads the Orientation tag (0x0112, type SHORT) of the first IFD, as PIL's
    `Image.getexif()` does, with TF string ops only.
    """
    start = _exif_start(contents)
    header = _read(contents, start, 8)
    little = tf.equal(tf.strings.substr(header, 0, 4), b"II*\0")
    big = tf.equal(tf.strings.substr(header, 0, 4), b"MM\0*")
    ifd = start + _numbers(tf.strings.substr(header, 4, 4), tf.int32, little)[0]
    # The entry count (2 bytes), then 12-byte entries: tag, type (2 bytes each), count (4),
    # value (4; a SHORT in its first 2): as 16-bit words, 6 per entry.
    words = _numbers(_read(contents, ifd, 2 + 12 * _MAX_IFD_ENTRIES), tf.uint16, little)
    entries = tf.reshape(words[1:], [_MAX_IFD_ENTRIES, 6])
    wanted = ((tf.range(_MAX_IFD_ENTRIES) < words[0]) & tf.equal(entries[:, 0], _ORIENTATION_TAG)
              & tf.equal(entries[:, 1], 3))  # SHORT
    value = tf.reduce_max(tf.where(wanted, entries[:, 4], 0))
    valid = (start >= 0) & (little | big) & (value >= 1) & (value <= 8)
    return tf.where(valid, value, 1)


def apply_orientation(image, orientation):
    """Turns an [H, W, C] image upright by its EXIF orientation, as PIL's `exif_transpose`.

    Orientation o: transpose if o >= 5, then reverse the rows if o is 3, 4, 7 or 8 and
    the columns if o is 2, 3, 6 or 7 (a computed permutation and axes: one branch for
    every turn, and none taken for an untagged image).
    """
    o = tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8)

    def turn():
        perm = tf.where(o >= 5, tf.constant([1, 0, 2]), tf.constant([0, 1, 2]))
        flips = tf.stack([tf.reduce_any(tf.equal(o, [3, 4, 7, 8])),
                          tf.reduce_any(tf.equal(o, [2, 3, 6, 7]))])
        return tf.reverse(tf.transpose(image, perm), tf.boolean_mask(tf.constant([0, 1]), flips))

    # Most images have no tag: no copies for them.
    return tf.cond(o == 1, lambda: tf.identity(image), turn)


# The EXIF orientations as numpy index operations on [H, W, C] (see `apply_orientation`).
_ORIENT_NUMPY = {
    1: lambda x: x, 2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1],
    4: lambda x: x[::-1], 5: lambda x: x.transpose(1, 0, 2),
    6: lambda x: x.transpose(1, 0, 2)[:, ::-1], 7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda x: x.transpose(1, 0, 2)[::-1],
}


def _decode_with_pil(contents):
    """An encoded image TF cannot decode (TIFF), via PIL: uint16 [H, W, 3] (8 bits x 257).

    The pixels as stored: recent Pillow turns TIFFs upright while loading them (and
    drops the tag), which is undone here so that `decode_image` applies the
    orientation, or not, as for every other format.
    """
    import io

    if isinstance(contents, np.ndarray):  # Eagerly a 0-d object array; in a graph, bytes.
        contents = contents.item()
    with Image.open(io.BytesIO(contents)) as image:
        before = _pil_orientation(image)
        image.load()
        turned = before != 1 and _pil_orientation(image) == 1
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            pixels = np.repeat(np.asarray(image, np.uint16)[..., None], 3, axis=2)
        else:
            pixels = np.asarray(image.convert("RGB"), np.uint16) * np.uint16(257)
    if turned:  # Back to the stored pixels: 6 and 8 undo each other, the rest themselves.
        pixels = _ORIENT_NUMPY[{6: 8, 8: 6}.get(before, before)](pixels)
    return np.ascontiguousarray(pixels)


# Explicit TF control flow throughout: AutoGraph would only slow tracing down.
@tf.autograph.experimental.do_not_convert
def decode_image(contents, dtype=tf.float32, exif_orientation=True):
    """Decodes JPEG, PNG (8 or 16 bit), BMP, GIF, WebP or TIFF bytes to RGB, as PIL does.

    Grayscale becomes three equal channels; an alpha channel is dropped (as PIL's
    `convert("RGB")` does); a GIF gives its first frame, a TIFF its first page.

    Args:
        contents: a scalar string tensor, the encoded file.
        dtype: tf.float32 for values in [0, 1], or tf.uint8 for [0, 255].
        exif_orientation: turn the image upright by its EXIF orientation tag (see
            the module docstring); False keeps the pixels as stored, as the
            reference loader does.

    Returns:
        A [H, W, 3] tensor of `dtype`.
    """
    def jpeg():
        # TF's default JPEG IDCT (INTEGER_FAST) differs from PIL/libjpeg's by up to 18
        # levels per pixel on facades, enough to move FID; the reference implementations
        # decode with PIL, which INTEGER_ACCURATE matches bit for bit.
        image = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
        # The same conversion tf.io.decode_image applies to a JPEG (checked bit for bit
        # for uint8, uint16 and float32).
        return tf.image.convert_image_dtype(image, dtype)

    def webp():
        # TF decodes WebP only to uint8 (8 bits per channel is all WebP holds anyway).
        image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.image.convert_image_dtype(image, dtype)

    def tiff():
        image = tf.numpy_function(_decode_with_pil, [contents], tf.uint16, stateful=False)
        image.set_shape([None, None, 3])
        return tf.image.convert_image_dtype(image, dtype)

    def other():
        return tf.io.decode_image(contents, channels=3, dtype=dtype, expand_animations=False)

    image = tf.case([(tf.io.is_jpeg(contents), jpeg), (_is_webp(contents), webp),
                     (_is_tiff(contents), tiff)], default=other)
    if exif_orientation:
        image = apply_orientation(image, exif_orientation_of(contents))
    image.set_shape([None, None, 3])
    return image


def load_image(path, exif_orientation=True):
    """Reads and decodes one image file to float32 RGB in [-1, 1], shape [H, W, 3]."""
    return decode_image(tf.io.read_file(path), exif_orientation=exif_orientation) * 2.0 - 1.0


def read_image(path, exif_orientation=True):
    """One image file as a uint8 numpy array [H, W, 3], decoded as the pipeline decodes it.

    Raises:
        UserError: the file cannot be used (the reason from `inspect_image`).
    """
    info = inspect_image(path, exif_orientation)
    if info.problem:
        raise UserError(f"{path} {info.problem}.")
    try:
        return decode_image(tf.io.read_file(path), tf.uint8, exif_orientation).numpy()
    except tf.errors.OpError as e:
        raise UserError(f"{path} cannot be decoded ({e.message.splitlines()[-1]}).") from None
