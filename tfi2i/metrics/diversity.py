"""Diversity of multimodal translations: mean pairwise distance of K samples per input.

No LPIPS (its weights are a torch download of their own). Two spaces, named in every result:

- "pixel": mean absolute difference of two samples, as a fraction of the data range (images
  in [0, max_val]; 0 = identical, 1 = black vs white everywhere). Sensitive to colour and
  layout changes, blind to whether they are plausible.
- "inception": Euclidean distance between FID Inception pool features (2048-d), closer to
  perceived content changes; needs the FID weights.

For each input, the distance is averaged over its K(K-1)/2 sample pairs; the score is the mean
over inputs (and the std over inputs).
"""

import numpy as np
from scipy.spatial.distance import pdist

from tfi2i.errors import UserError


def _at_least_two(x):
    if x.shape[0] < 2:
        raise UserError("diversity needs at least 2 samples per input")
    return x


def pairwise_pixel_l1(samples, max_val=255.0):
    """Mean pairwise L1 (fraction of range) of K samples `[K, H, W, C]` of one input."""
    x = _at_least_two(np.asarray(samples, np.float64).reshape(len(samples), -1))
    # pdist goes pair by pair in C: no K x K x pixels array (gigabytes for K = 10 at 256 px).
    return float(pdist(x, "cityblock").mean() / (x.shape[1] * max_val))


def pairwise_feature_l2(features):
    """Mean pairwise Euclidean distance of K feature vectors `[K, D]`."""
    return float(pdist(_at_least_two(np.asarray(features, np.float64)), "euclidean").mean())


def mean_pairwise_distance(sample_sets, space="pixel", max_val=255.0, extractor=None):
    """Mean pairwise distance of K samples, averaged over inputs.

    Args:
        sample_sets: iterable over inputs of `[K, H, W, 3]` samples (values in [0, max_val]),
            or an array `[N, K, H, W, 3]`.
        space: "pixel" or "inception" (see the module docstring).
        max_val: the images' range (255 for uint8).
        extractor: a `tfi2i.metrics.fid.FeatureExtractor` for "inception" (default: a new one).

    Returns:
        dict: `diversity` (mean over inputs), `diversity_std`, `space`, `num_inputs`, `k`.
    """
    if space not in ("pixel", "inception"):
        raise UserError(f"diversity space must be pixel or inception, not {space!r}")
    if space == "inception" and extractor is None:
        from tfi2i.metrics.fid import FeatureExtractor

        extractor = FeatureExtractor()
    values, k = [], None
    for samples in sample_sets:
        samples = np.asarray(samples)
        k = samples.shape[0]
        if space == "pixel":
            values.append(pairwise_pixel_l1(samples, max_val))
        else:
            features = extractor.from_images(samples.astype(np.float32) * (255.0 / max_val))
            values.append(pairwise_feature_l2(features))
    if not values:
        raise UserError("diversity: no inputs")
    return {"diversity": float(np.mean(values)), "diversity_std": float(np.std(values)),
            "space": space, "num_inputs": len(values), "k": k}


def diversity_of_translator(translate, inputs, k=10, space="pixel", extractor=None):
    """Diversity of a stochastic translator on each input.

    Args:
        translate: callable `(images uint8 [N, H, W, 3]) -> uint8 [N, H, W, 3]` that draws a new
            sample (latent code / noise) on every call, e.g. `tfi2i.load(path).translate`.
        inputs: uint8 `[N, H, W, 3]`.
        k: samples per input.
    """
    inputs = np.asarray(inputs)
    samples = np.stack([np.asarray(translate(inputs)) for _ in range(k)], axis=1)
    return mean_pairwise_distance(samples, space=space, extractor=extractor)
