"""Image files: which files are images, decoding to float32 RGB, the cheap up-front check.

`list_images` is the one listing of image files: the data pipeline, `tfi2i-translate`,
`tfi2i-export --sample_images` and `tfi2i-eval` all call it, so they read the same files
from a folder (`IMAGE_EXTENSIONS` in any case, hidden files skipped).

Decoding inside the input pipeline uses TensorFlow's decoders, so it runs in the
tf.data graph, in parallel and without the GIL. PIL only reads headers up front
(`inspect_image`): that is fast enough for tens of thousands of files, and it
finds the files that TF would fail on before training starts, where the error
can name the file instead of surfacing as a TF traceback mid-run.
"""

import os
from dataclasses import dataclass

import tensorflow as tf
from PIL import Image

from tfi2i.errors import UserError

# The formats `decode_image` reads at every dtype (TF has no TIFF decoder), and the file
# extensions that name them: the one set every listing of image files uses.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# How many bytes at the end of a file to look at for its format's end marker.
_TAIL_BYTES = 64


@dataclass(frozen=True)
class ImageInfo:
    """What the header of one image file says.

    Attributes:
        path: the file.
        width, height: its size in pixels (0 when unreadable).
        problem: why the pipeline cannot use it, or None when it can.
    """
    path: str
    width: int
    height: int
    problem: str | None = None


def is_image_file(name):
    """Whether a file name is an image's: one of `IMAGE_EXTENSIONS` (any case), not hidden.

    Hidden names (a leading ".") are skipped: macOS writes `._photo.jpg` resource forks
    beside every file copied to a foreign disk, and they are not images.
    """
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_images(folder, recursive=False):
    """The image files in `folder`, sorted: the one listing data, translate and eval use.

    A file counts when `is_image_file` says so (`IMAGE_EXTENSIONS` in any case, e.g.
    `photo.JPG`; no hidden files). Folders whose names end like images do not count.

    Args:
        folder: the folder (str or os.PathLike).
        recursive: also search sub-folders (hidden ones skipped). Each folder's files
            come before its sub-folders' files, all sorted by name.

    Returns:
        A non-empty list of paths (str), `folder` joined with the path below it.

    Raises:
        UserError: `folder` is not a folder, or holds no image file.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise UserError(f"The image folder {folder} is a file, not a folder."
                        if os.path.exists(folder) else
                        f"The image folder {folder} does not exist.")
    found = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as e:
            raise UserError(f"Cannot list the image folder {current}: {e.strerror}.") from None
        found += [e.path for e in entries if e.is_file() and is_image_file(e.name)]
        if recursive:
            # Reversed onto a stack: the sub-folders are then visited in sorted order.
            # Symbolic links to folders are not followed, as os.walk does not: no cycles.
            pending += [e.path for e in reversed(entries)
                        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    if not found:
        raise UserError(f"No images in {folder}: it holds no {', '.join(IMAGE_EXTENSIONS)} "
                        f"files{' (sub-folders searched too)' if recursive else ''}.")
    return found


def inspect_image(path):
    """Reads the header of an image file and says whether TF can decode it.

    Cheap: PIL reads the header, and the last bytes of the file are checked for
    the format's end marker. Only a file whose end marker is missing (likely
    truncated) is decoded in full, with the same TF decoder the pipeline uses.

    Returns:
        An `ImageInfo`; its `problem` is None for a usable file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            f.seek(0)
            with Image.open(f) as im:
                fmt, mode, (width, height) = im.format, im.mode, im.size
            end = f.seek(0, os.SEEK_END)
            f.seek(max(0, end - _TAIL_BYTES))
            tail = f.read()
    except Exception as e:  # PIL raises many types for bad data; all mean "unreadable".
        return ImageInfo(path, 0, 0, f"cannot be decoded ({type(e).__name__}: {e})")
    if fmt not in SUPPORTED_FORMATS:
        return ImageInfo(path, width, height,
                         f"is a {fmt} image; supported are {', '.join(SUPPORTED_FORMATS)} "
                         "(convert it, e.g. to PNG)")
    if fmt == "BMP" and mode not in ("RGB", "RGBA", "L"):
        # TF reads palette BMPs as gray palette indices and rejects 1/4-bit ones.
        return ImageInfo(path, width, height,
                         f"is a palette BMP (mode {mode}), which TensorFlow decodes wrongly "
                         "(convert it to PNG)")
    if width < 1 or height < 1:
        return ImageInfo(path, width, height, "is empty (0 pixels)")
    if not _ends_complete(fmt, head, tail, end):
        problem = _tf_decode_problem(path)
        if problem:
            return ImageInfo(path, width, height, f"is truncated or corrupt ({problem})")
    return ImageInfo(path, width, height)


def _ends_complete(fmt, head, tail, size):
    """Whether a file ends the way a complete file of its format ends."""
    if fmt == "JPEG":
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
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        return e.message.splitlines()[-1]
    return None


def _is_webp(contents):
    """Whether encoded bytes are a WebP file ("RIFF", 4 size bytes, "WEBP")."""
    # Padded, so that substr within the first 12 bytes is valid for any length.
    head = tf.strings.join([tf.strings.substr(contents, 0, 12), "\0" * 12])
    return tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                          tf.equal(tf.strings.substr(head, 8, 4), "WEBP"))


def decode_image(contents, dtype=tf.float32):
    """Decodes JPEG, PNG (8 or 16 bit), BMP, GIF or WebP bytes to RGB, JPEGs as PIL does.

    Grayscale becomes three equal channels; an alpha channel is dropped (as PIL's
    `convert("RGB")` does); a GIF gives its first frame.

    Args:
        contents: a scalar string tensor, the encoded file.
        dtype: tf.float32 for values in [0, 1], or tf.uint8 for [0, 255].

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

    def other():
        return tf.cond(_is_webp(contents), webp, lambda: tf.io.decode_image(
            contents, channels=3, dtype=dtype, expand_animations=False))

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def load_image(path):
    """Reads and decodes one image file to float32 RGB in [-1, 1], shape [H, W, 3]."""
    return decode_image(tf.io.read_file(path)) * 2.0 - 1.0
