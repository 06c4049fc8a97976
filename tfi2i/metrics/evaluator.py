"""Scoring translations of a validation set: a translate function in, a dict of scores out.

    evaluator = Evaluator(val_data, metrics=("psnr", "ssim", "l1", "fid"))
    scores = evaluator(model.translate)          # {"psnr": ..., "ssim": ..., "l1": ..., "fid": ...}

No Keras callback, no TensorBoard, no checkpoints: `tfi2i.metrics.callback.EvaluationCallback`
decides when to call an evaluator during training and what to do with the scores.
"""

import numpy as np

from tfi2i.errors import UserError
from tfi2i.metrics import fid as fid_lib
from tfi2i.metrics import image as image_lib

KNOWN_METRICS = ("psnr", "ssim", "l1", "fid", "kid", "seg")
# Which way is better for each score an evaluator reports.
LOWER_IS_BETTER = {"fid", "kid", "l1"}
HIGHER_IS_BETTER = {"psnr", "ssim", "seg_pixel_acc", "seg_class_acc", "seg_class_iou"}


def check_metrics(metrics, segmenter=None):
    """Raises UserError for unknown metric names, or "seg" without a segmenter."""
    unknown = set(metrics) - set(KNOWN_METRICS)
    if unknown:
        raise UserError(f"unknown metrics {sorted(unknown)}; choose from {KNOWN_METRICS}")
    if "seg" in metrics and segmenter is None:
        raise UserError("metric 'seg' needs a segmenter (tfi2i.metrics.segmentation."
                        "load_segmenter())")


def result_names(metrics):
    """The names an evaluator of `metrics` reports ("seg" gives three)."""
    names = []
    for metric in metrics:
        names += (["seg_pixel_acc", "seg_class_acc", "seg_class_iou"] if metric == "seg"
                  else [metric])
    return names


class Evaluator:
    """Scores a translate function on a fixed validation set.

    Args:
        data: a tf.data.Dataset (or any iterable) of `(input, target)` batches, float in
            [-1, 1]. Iterated once per call, so keep it finite.
        metrics: any of "psnr", "ssim", "l1" (paired, see `tfi2i.metrics.image`; computed on
            [0, 1]), "fid", "kid" (outputs vs all targets; small sets bias FID upwards,
            compare runs on the same set only), "seg" (FCN-score; needs `segmenter`).
        segmenter: a `tfi2i.metrics.segmentation.Segmenter` for "seg".
        seg_labels: callable `(inputs, targets) -> class ids [N, H, W]`; default: the inputs
            decoded as colour label maps with `palette` (label -> photo translation).
        palette: what "seg" scores: a `segmentation.LabelMaps`, or its argument (a palette
            name or class colours `[C, 3]`).
        fid_extractor: a `tfi2i.metrics.fid.FeatureExtractor` (default: built on first use).

    Calling it with `translate` (`inputs -> outputs` in [-1, 1]) returns `{name: value}`:
    the paired metrics, "fid", "kid" (the mean over subsets), and "seg_pixel_acc",
    "seg_class_acc", "seg_class_iou" for "seg". The targets' FID features are computed on
    the first call only: the validation targets do not change between calls.
    """

    def __init__(self, data, metrics=("psnr", "ssim", "l1"), segmenter=None, seg_labels=None,
                 palette="facades", fid_extractor=None):
        check_metrics(metrics, segmenter)
        self.data = data
        self.metrics = tuple(metrics)
        self.segmenter = segmenter
        self.seg_labels = seg_labels
        self.label_maps = None
        if "seg" in self.metrics:
            from tfi2i.metrics.segmentation import LabelMaps

            self.label_maps = palette if isinstance(palette, LabelMaps) else LabelMaps(palette)
        self.fid_extractor = fid_extractor
        self._target_features = None

    @property
    def names(self):
        """The names of the scores a call returns."""
        return result_names(self.metrics)

    def _labels(self, inputs, targets):
        if self.seg_labels is not None:
            return np.asarray(self.seg_labels(inputs, targets))
        return self.label_maps(image_lib.from_signed(inputs) * 255.0)

    def __call__(self, translate):
        """Translate every input with `translate`, score the outputs; `{name: value}`."""
        paired = image_lib.PairedMeans(max_val=1.0)
        want_fid = "fid" in self.metrics or "kid" in self.metrics
        if want_fid and self.fid_extractor is None:
            self.fid_extractor = fid_lib.FeatureExtractor()
        seg = None
        if "seg" in self.metrics:
            from tfi2i.metrics.segmentation import SegmentationScore

            seg = SegmentationScore(self.segmenter, self.label_maps.num_classes)
        fake_features, real_features = [], []
        for inputs, targets in self.data:
            outputs = image_lib.from_signed(translate(inputs))
            targets01 = image_lib.from_signed(targets)
            paired.update(outputs, targets01)
            if want_fid:
                fake_features.append(self.fid_extractor.from_images(outputs.numpy() * 255.0))
                if self._target_features is None:
                    real_features.append(
                        self.fid_extractor.from_images(targets01.numpy() * 255.0))
            if seg is not None:
                seg.update(outputs * 255.0, self._labels(inputs, targets))
        results = {}
        scores = paired.result()
        for name in ("psnr", "ssim", "l1"):
            if name in self.metrics and scores:
                results[name] = scores[name]
        if want_fid:
            if self._target_features is None:
                self._target_features = np.concatenate(real_features)
            fake = np.concatenate(fake_features)
            if "fid" in self.metrics:
                results["fid"] = fid_lib.fid_from_features(self._target_features, fake)
            if "kid" in self.metrics:
                results["kid"] = fid_lib.kid_from_features(self._target_features, fake)[0]
        if seg is not None:
            r = seg.result()
            results.update(seg_pixel_acc=r["pixel_acc"], seg_class_acc=r["class_acc"],
                           seg_class_iou=r["class_iou"])
        return results
