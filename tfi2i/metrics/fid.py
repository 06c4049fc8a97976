"""FID and KID from FID Inception features, and streaming feature extraction with a cache.

- FID (Heusel et al. 2017): ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), with S the
  covariance (ddof 1) of the 2048-d pool features. The trace of the matrix square root is
  computed without `scipy.linalg.sqrtm` (slow, and it returns complex noise for the singular
  covariances of small sets): from features it is the nuclear norm of Xc1 Xc2^T /
  sqrt((n1 - 1)(n2 - 1)) (Xc: centred features), exact and cheap when sets are smaller than
  2048; from covariances it is sum(sqrt(eig(S1^(1/2) S2 S1^(1/2)))), a symmetric PSD
  eigenproblem.
- KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets. Reported on the raw scale (the
  papers' tables often show KID x 100 or x 1000; we never rescale).

Images are fed as [0, 255] values; see `inception.py` for the preprocessing.
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from tfi2i.data.decode import check_images, decode_image, list_images
from tfi2i.errors import UserError
from tfi2i.files import atomic_path, default_cache_dir

# Bumped when anything changes the features of a given file (decoding, resize, network).
# 2: EXIF orientation honoured (by default), sub-folders read, TIFF decoded.
FEATURE_CACHE_VERSION = 2


def _as_features(features, name):
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise UserError(f"{name}: need at least 2 feature vectors [N, D], got shape "
                        f"{features.shape}")
    return features


def feature_statistics(features):
    """Mean and covariance (ddof 1, float64) of `[N, D]` features."""
    features = _as_features(features, "features")
    return features.mean(0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """FID from two (mean, covariance) pairs; float."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    value = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def fid_from_features(features1, features2):
    """FID between two feature sets `[N1, D]`, `[N2, D]`; float (0 for identical sets)."""
    x = _as_features(features1, "features1")
    y = _as_features(features2, "features2")
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    if y.shape[1] != d:
        raise UserError(f"feature sizes differ: {d} vs {y.shape[1]}")
    if min(n1, n2) >= d:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y))
    xc, yc = x - x.mean(0), y - y.mean(0)
    # tr((S1 S2)^(1/2)) = nuclear norm of Xc Yc^T / sqrt((n1-1)(n2-1)): the non-zero
    # eigenvalues of S1 S2 are the squared singular values of that n1 x n2 matrix.
    singular = np.linalg.svd(xc @ yc.T, compute_uv=False)
    trace_sqrt = singular.sum() / np.sqrt((n1 - 1) * (n2 - 1))
    trace1 = np.sum(xc * xc) / (n1 - 1)
    trace2 = np.sum(yc * yc) / (n2 - 1)
    value = np.sum((x.mean(0) - y.mean(0)) ** 2) + trace1 + trace2 - 2 * trace_sqrt
    return float(max(value, 0.0))


def polynomial_mmd2_unbiased(x, y):
    """Unbiased MMD^2 of two equal-size sets with k(a, b) = (a.b / d + 1)^3."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid_from_features(features1, features2, num_subsets=100, subset_size=1000, seed=0):
    """KID between two feature sets, raw scale.

    Each of `num_subsets` rounds draws `m = min(subset_size, N1, N2)` rows without
    replacement from each set (first from set 1, then set 2, with
    `np.random.default_rng(seed)`) and computes the unbiased polynomial-kernel MMD^2.
    When both sets are no larger than `subset_size`, every round would draw both
    whole sets and give the same number: the MMD^2 of the whole sets is computed
    once, and there is no spread over subsets to report.

    Returns:
        (mean, std) over the subsets, floats; std is None when both sets fit in one
        subset (see above; `kid_spread_note` says so in words). The mean can be
        slightly negative for sets from the same distribution: the estimate is unbiased.
    """
    x = _as_features(features1, "features1")
    y = _as_features(features2, "features2")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m == x.shape[0] and m == y.shape[0]:
        return polynomial_mmd2_unbiased(x, y), None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        values.append(polynomial_mmd2_unbiased(xs, ys))
    return float(np.mean(values)), float(np.std(values))


def kid_spread_note(n1, n2, subset_size):
    """What KID's std means for sets of n1 and n2 images, or None when it is the usual spread."""
    m = min(subset_size, n1, n2)
    if m == n1 and m == n2:
        return (f"no spread: both sets ({n1} and {n2} images) fit in one subset of "
                f"{subset_size}, so KID is one estimate on the whole sets (a smaller "
                "--kid_subset_size gives a spread over subsets)")
    if m < subset_size:
        small = "real" if m == n1 else "generated"
        return (f"subsets of {m} images (the whole {small} set, fewer than the "
                f"{subset_size} asked): the std is the spread over subsets of the larger set "
                "only")
    return None


def crop_half(image, half):
    """Take the left or right half of a side-by-side pair (pix2pix "AB" files); None: all."""
    if half in (None, "", "none"):
        return image
    if half not in ("left", "right"):
        raise UserError(f"half must be left, right or none, not {half!r}")
    width = tf.shape(image)[1] // 2
    return image[:, :width] if half == "left" else image[:, width: 2 * width]


def decode_image_file(path, half=None, exif_orientation=True):
    """Read one image file as uint8 `[H, W, 3]` (tf ops, usable in tf.data).

    JPEGs are decoded exactly as PIL does, as the reference FID implementations read them;
    photos are turned upright by their EXIF orientation unless `exif_orientation` is
    False (the reference implementations read the pixels as stored).
    """
    return crop_half(decode_image(tf.io.read_file(path), tf.uint8, exif_orientation), half)


def _find_unreadable(paths):
    for path in paths:
        try:
            decode_image_file(path)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            return path, error.message
    return None, None


class FeatureExtractor:
    """FID Inception features of images, arrays, tf.data datasets or folders.

    Args:
        weights: path of `default_1.pt`; None: `$TFI2I_FID_WEIGHTS` or the cache.
        batch_size: images per forward pass.
        model: an already built FID Inception model (tests reuse one).
    """

    def __init__(self, weights=None, batch_size=32, model=None):
        self.weights = weights
        self.batch_size = batch_size
        self._model = model
        self._given_model = model is not None
        self._forward = None

    @property
    def model(self):
        """The Keras FID Inception model, built (and its weights read) on first use."""
        if self._model is None:
            from tfi2i.metrics.inception import build_fid_inception

            self._model = build_fid_inception(self.weights)
        return self._model

    def _call(self, batch):
        if self._forward is None:
            model = self.model
            self._forward = tf.function(
                lambda x: model(x, training=False), reduce_retracing=True)
        return self._forward(tf.cast(batch, tf.float32)).numpy()

    def from_dataset(self, dataset):
        """Features `[N, 2048]` of a tf.data dataset of batches `[B, H, W, 3]` in [0, 255]."""
        out = [self._call(batch) for batch in dataset]
        if not out:
            raise UserError("no images to compute features of")
        return np.concatenate(out)

    def from_images(self, images):
        """Features of an array (or list) of `[H, W, 3]` images with values in [0, 255]."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            dataset = tf.data.Dataset.from_tensor_slices(images).batch(self.batch_size)
        else:
            # Mixed sizes: resize each to 299 first so they batch.
            from tfi2i.metrics.inception import resize_like_tf1

            images = [resize_like_tf1(np.asarray(i, np.float32)[None])[0] for i in images]
            dataset = tf.data.Dataset.from_tensor_slices(tf.stack(images)).batch(self.batch_size)
        return self.from_dataset(dataset)

    def folder_dataset(self, paths, half=None, exif_orientation=True):
        """tf.data pipeline: decode, crop a half, resize to 299 (TF1 bilinear), batch."""
        from tfi2i.metrics.inception import resize_like_tf1

        def load(path):
            image = tf.cast(decode_image_file(path, half, exif_orientation), tf.float32)
            return resize_like_tf1(image[None])[0]

        return (tf.data.Dataset.from_tensor_slices(paths)
                .map(load, num_parallel_calls=tf.data.AUTOTUNE)
                .batch(self.batch_size)
                .prefetch(2))

    def _weights_key(self):
        from tfi2i.metrics import weights as weights_lib

        if self._given_model:
            # The caller's model: identify it by object, so its features are never mixed
            # with another network's in the cache.
            return f"model-{id(self._model)}"
        path = weights_lib.fid_weights_path(self.weights)
        stat = os.stat(path)
        return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]

    def folder_cache_key(self, folder, half=None, paths=None, exif_orientation=True):
        """Cache key: file paths (below `folder`), sizes and mtimes, the half, the EXIF
        option, the weights file, the version.

        Args:
            paths: the files whose features are cached (default: `folder_images`).
        """
        entries = []
        for path in self.folder_images(folder) if paths is None else paths:
            stat = os.stat(path)
            entries.append([os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns])
        record = {"version": FEATURE_CACHE_VERSION, "folder": os.path.abspath(folder),
                  "half": half or "none", "files": entries, "weights": self._weights_key(),
                  "exif_orientation": bool(exif_orientation)}
        return hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()

    @staticmethod
    def folder_images(folder):
        """The images of a folder that are scored: with sub-folders, as training data are read
        (`tfi2i.data.list_images`; a sub-folder named like a split is an error)."""
        return list_images(folder, recursive=True, refuse_splits=True)

    def from_folder(self, folder, half=None, cache=True, skip_bad_images=False,
                    exif_orientation=True):
        """Features of every image in `folder` and its sub-folders (in listing order), cached.

        Every file's header is checked first (`tfi2i.data.decode.check_images`).

        Args:
            folder: a folder of images.
            half: "left"/"right" takes that half of side-by-side pairs; None the whole image.
            cache: reuse/write `<cache>/fid_features/<key>.npy`; the key changes whenever a
                file is added, removed or modified (size or mtime), or the weights change.
            skip_bad_images: leave unreadable files out with a warning instead of raising.
            exif_orientation: turn photos upright by their EXIF orientation tag.

        Raises:
            UserError: an unreadable file (unless skipped), or no usable one.
        """
        paths = [info.path for info in check_images(
            self.folder_images(folder), folder, skip_bad_images, exif_orientation)]
        cache_path = None
        if cache:
            key = self.folder_cache_key(folder, half, paths, exif_orientation)
            cache_path = str(default_cache_dir() / "fid_features" / (key + ".npy"))
            if os.path.isfile(cache_path):
                return np.load(cache_path)
        try:
            features = self.from_dataset(self.folder_dataset(paths, half, exif_orientation))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            bad, message = _find_unreadable(paths)
            if bad is None:
                raise
            raise UserError(f"cannot decode image {bad}: {message}. Remove or replace "
                            f"it.") from error
        if cache_path:
            # Through a file object: np.save given a name would append ".npy" to it.
            with atomic_path(cache_path) as tmp, open(tmp, "wb") as f:
                np.save(f, features)
        return features


def fid_kid_folders(real_dir, fake_dir, real_half=None, fake_half=None, extractor=None,
                    kid_subsets=100, kid_subset_size=1000, cache=True):
    """FID and KID (mean, std) between two image folders; returns a dict.

    `kid_std` is None, and `kid_note` says why, when both folders fit in one KID subset.
    """
    extractor = extractor or FeatureExtractor()
    real = extractor.from_folder(real_dir, real_half, cache=cache)
    fake = extractor.from_folder(fake_dir, fake_half, cache=cache)
    kid, kid_std = kid_from_features(real, fake, kid_subsets, kid_subset_size)
    result = {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std,
              "n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    note = kid_spread_note(real.shape[0], fake.shape[0], kid_subset_size)
    if note:
        result["kid_note"] = note
    return result
