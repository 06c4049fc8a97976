"""Image files -> float32 RGB in [-1, 1], and the cheap up-front check of a file.

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

# The formats TF decodes correctly: tf.io.decode_image also reads WebP, but
# only to uint8, and not TIFF at all.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

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
    """Whether a file name has one of the supported image extensions."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


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
            head = f.read(6)
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
    return size >= int.from_bytes(head[2:6], "little")  # BMP: file size in its header.


def _tf_decode_problem(path):
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        return e.message.splitlines()[-1]
    return None


def decode_image(contents, dtype=tf.float32):
    """Decodes JPEG, PNG (8 or 16 bit), BMP or GIF bytes to RGB, JPEGs exactly as PIL does.

    Grayscale becomes three equal channels; an alpha channel is dropped (as PIL's
    `convert("RGB")` does); a GIF gives its first frame. With tf.uint8, WebP is
    read too (TF decodes it only to uint8).

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

    def other():
        return tf.io.decode_image(contents, channels=3, dtype=dtype, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def load_image(path):
    """Reads and decodes one image file to float32 RGB in [-1, 1], shape [H, W, 3]."""
    return decode_image(tf.io.read_file(path)) * 2.0 - 1.0
