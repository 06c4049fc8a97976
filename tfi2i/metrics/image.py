"""Paired image metrics: PSNR, SSIM, L1 (tf.image).

Data range: every function takes the images' range as `max_val` and expects values in
[0, max_val]: 255 for uint8 images, 1.0 for floats in [0, 1]. Images in [-1, 1] (the
networks' range) must be mapped first with `from_signed()`; PSNR and SSIM change when the
range is wrong (SSIM's constants are (0.01 max_val)^2 and (0.03 max_val)^2). L1 is reported
as a fraction of the range (mean |a - b| / max_val, in [0, 1]), so it is the same number for
uint8 and [0, 1] inputs. PSNR is in dB; identical images give +inf.

SSIM is tf.image.ssim: 11x11 Gaussian window, sigma 1.5, averaged over pixels and channels
(images must be at least 11 px on each side).
"""

import numpy as np
import tensorflow as tf


def from_signed(images):
    """Map images from [-1, 1] to [0, 1] (float32), clipping."""
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) / 2.0, 0.0, 1.0)


def _pair(a, b):
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    if a.shape.rank == 3:
        a, b = a[None], b[None]
    a.shape.assert_is_compatible_with(b.shape)
    return a, b


def psnr(a, b, max_val=255.0):
    """Per-image PSNR in dB of `[N, H, W, C]` (or `[H, W, C]`) images in [0, max_val]."""
    a, b = _pair(a, b)
    return tf.image.psnr(a, b, max_val=max_val)


def ssim(a, b, max_val=255.0):
    """Per-image SSIM of images in [0, max_val]."""
    a, b = _pair(a, b)
    return tf.image.ssim(a, b, max_val=max_val)


def l1(a, b, max_val=255.0):
    """Per-image mean absolute error as a fraction of the range (in [0, 1])."""
    a, b = _pair(a, b)
    return tf.reduce_mean(tf.abs(a - b), axis=[1, 2, 3]) / max_val


def paired_scores(a, b, max_val=255.0):
    """Mean PSNR, SSIM and L1 over a batch of image pairs; dict of floats.

    PSNR is averaged over images with finite values (identical pairs give +inf and are
    counted in `psnr_inf`), as averaging in an infinity would hide every other image.
    """
    p = psnr(a, b, max_val).numpy()
    finite = np.isfinite(p)
    return {
        "psnr": float(p[finite].mean()) if finite.any() else float("inf"),
        "psnr_inf": int((~finite).sum()),
        "ssim": float(tf.reduce_mean(ssim(a, b, max_val))),
        "l1": float(tf.reduce_mean(l1(a, b, max_val))),
    }


class PairedMeans:
    """Running means of per-image PSNR, SSIM and L1 over batches (for streaming test sets)."""

    def __init__(self, max_val=255.0):
        self.max_val = max_val
        self.sums = {"psnr": 0.0, "ssim": 0.0, "l1": 0.0}
        self.count = 0
        self.psnr_count = 0
        self.psnr_inf = 0

    def update(self, a, b):
        """Add a batch of pairs."""
        p = psnr(a, b, self.max_val).numpy()
        finite = np.isfinite(p)
        self.sums["psnr"] += float(p[finite].sum())
        self.psnr_count += int(finite.sum())
        self.psnr_inf += int((~finite).sum())
        self.sums["ssim"] += float(tf.reduce_sum(ssim(a, b, self.max_val)))
        self.sums["l1"] += float(tf.reduce_sum(l1(a, b, self.max_val)))
        self.count += len(p)

    def result(self):
        """Means so far; dict like `paired_scores`."""
        if not self.count:
            return {}
        return {
            "psnr": self.sums["psnr"] / self.psnr_count if self.psnr_count else float("inf"),
            "psnr_inf": self.psnr_inf,
            "ssim": self.sums["ssim"] / self.count,
            "l1": self.sums["l1"] / self.count,
        }
