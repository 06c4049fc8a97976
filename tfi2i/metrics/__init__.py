"""Evaluation: FID/KID with the standard Inception weights, PSNR/SSIM/L1, FCN-score, diversity.

    fetch_fid_weights, fid_weights_path      the FID Inception weights (weights.py)
    build_fid_inception                      the FID Inception net in Keras (inception.py)
    FeatureExtractor                         2048-d features of arrays / datasets / folders
    fid_from_features, kid_from_features     FID, KID (raw scale) from features (fid.py)
    fid_kid_folders                          FID and KID of two image folders
    psnr, ssim, l1, paired_scores            paired metrics, data range explicit (image.py)
    Segmenter, load_segmenter, ...           FCN-score protocol (segmentation.py)
    mean_pairwise_distance                   diversity: mean pairwise distance of K samples
    diversity_of_translator                  the same for a stochastic translator
    Evaluator                                a translate fn + validation data -> {metric: value}
    EvaluationCallback                       runs an Evaluator every N epochs: logs, best weights

Command line: `tfi2i-eval` (tfi2i/cli/eval.py); weights: `python -m tfi2i.metrics.weights --fetch`.
"""

import importlib

# Names are imported on first use (PEP 562): `python -m tfi2i.metrics.weights --fetch` then
# runs without loading TensorFlow, and runpy does not see the module imported twice.
_EXPORTS = {
    "EvaluationCallback": "callback",
    "Evaluator": "evaluator",
    "diversity_of_translator": "diversity",
    "mean_pairwise_distance": "diversity",
    "FeatureExtractor": "fid",
    "fid_from_features": "fid",
    "fid_kid_folders": "fid",
    "frechet_distance": "fid",
    "kid_from_features": "fid",
    "l1": "image",
    "paired_scores": "image",
    "psnr": "image",
    "ssim": "image",
    "build_fid_inception": "inception",
    "CITYSCAPES_PALETTE": "segmentation",
    "FACADES_CLASSES": "segmentation",
    "FACADES_PALETTE": "segmentation",
    "Segmenter": "segmentation",
    "confusion_matrix": "segmentation",
    "decode_label_map": "segmentation",
    "load_segmenter": "segmentation",
    "scores_from_confusion": "segmentation",
    "fetch_fid_weights": "weights",
    "fid_weights_path": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tfi2i.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tfi2i.metrics' has no attribute {name!r}")
