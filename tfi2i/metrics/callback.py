"""A Keras callback that evaluates translations during training and keeps the best checkpoint."""

import keras
import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.files import atomic_path
from tfi2i.metrics import fid as fid_lib
from tfi2i.metrics import image as image_lib

# Which way is better for each metric (mode "auto").
LOWER_IS_BETTER = {"fid", "kid", "l1"}
HIGHER_IS_BETTER = {"psnr", "ssim", "seg_pixel_acc", "seg_class_acc", "seg_class_iou"}
KNOWN_METRICS = ("psnr", "ssim", "l1", "fid", "kid", "seg")


class EvaluationCallback(keras.callbacks.Callback):
    """Every N epochs: translate a validation set, score it, log it, keep the best weights.

    Args:
        val_data: a tf.data.Dataset (or any iterable) of `(input, target)` batches, float in
            [-1, 1]. Iterated once per evaluation, so keep it finite.
        metrics: any of "psnr", "ssim", "l1" (paired, see `tfi2i.metrics.image`; computed on
            [0, 1]), "fid", "kid" (outputs vs all targets; small sets bias FID upwards,
            compare runs on the same set only), "seg" (FCN-score; needs `segmenter`).
        every_n_epochs: evaluate after epochs N, 2N, ... (1-based).
        log_dir: TensorBoard folder; scalars `<prefix><metric>` at step = epoch (1-based).
        best_metric: a reported name without prefix ("fid", "psnr", "seg_class_iou", ...) to
            keep the best checkpoint by; None keeps none.
        mode: "min", "max" or "auto" (min for fid/kid/l1, max otherwise).
        save_best: where the best checkpoint goes: a callable `(model, epoch, results)` (e.g. a
            run's checkpoint writer), or a path ending in `.weights.h5` written with
            `model.save_weights` atomically (temp file + rename).
        translate: callable `(inputs) -> outputs` in [-1, 1]; default
            `self.model(inputs, training=False)`.
        segmenter: a `tfi2i.metrics.segmentation.Segmenter` for "seg".
        seg_labels: callable `(inputs, targets) -> class ids [N, H, W]`; default: the inputs
            decoded as colour label maps with `palette` (label -> photo translation).
        palette: "facades" or "cityscapes" (`segmentation.PALETTES`), or an array of class
            colours `[C, 3]`: the classes scored by "seg".
        fid_extractor: a `tfi2i.metrics.fid.FeatureExtractor` (default: built on first use).
        prefix: prefix of the names in `logs` and TensorBoard.

    The results are also written into the epoch's `logs` (`val_fid`, ...), so callbacks after
    this one in the list (EarlyStopping, ModelCheckpoint) can monitor them.
    """

    def __init__(self, val_data, metrics=("psnr", "ssim", "l1"), every_n_epochs=1, log_dir=None,
                 best_metric=None, mode="auto", save_best=None, translate=None, segmenter=None,
                 seg_labels=None, palette="facades", fid_extractor=None, prefix="val_"):
        super().__init__()
        unknown = set(metrics) - set(KNOWN_METRICS)
        if unknown:
            raise UserError(f"unknown metrics {sorted(unknown)}; choose from {KNOWN_METRICS}")
        if "seg" in metrics and segmenter is None:
            raise UserError("metric 'seg' needs a segmenter (tfi2i.metrics.segmentation."
                            "load_segmenter())")
        if every_n_epochs < 1:
            raise UserError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.val_data = val_data
        self.metrics = tuple(metrics)
        self.every_n_epochs = every_n_epochs
        self.log_dir = log_dir
        self.best_metric = best_metric
        if mode == "auto" and best_metric is not None:
            mode = "min" if best_metric in LOWER_IS_BETTER else "max"
        if mode not in ("min", "max", "auto"):
            raise UserError(f"mode must be min, max or auto, not {mode!r}")
        self.mode = mode
        self.save_best = save_best
        if isinstance(save_best, str) and not save_best.endswith(".weights.h5"):
            raise UserError(f"save_best path {save_best} must end in .weights.h5")
        self._translate = translate
        self.segmenter = segmenter
        self.seg_labels = seg_labels
        if isinstance(palette, str):
            from tfi2i.metrics.segmentation import PALETTES

            if palette not in PALETTES:
                raise UserError(f"palette {palette!r}: choose from {sorted(PALETTES)}")
            _, self.palette, self.void_colours = PALETTES[palette]
        else:
            self.palette, self.void_colours = np.asarray(palette), None
        self.fid_extractor = fid_extractor
        self.prefix = prefix
        self.best_value = None
        self.best_epoch = None
        self.history = []
        self._writer = None
        self._target_features = None

    def translate(self, inputs):
        """Outputs of the model for a batch of inputs, in [-1, 1]."""
        if self._translate is not None:
            return self._translate(inputs)
        return self.model(inputs, training=False)

    def _labels(self, inputs, targets):
        if self.seg_labels is not None:
            return np.asarray(self.seg_labels(inputs, targets))
        from tfi2i.metrics import segmentation

        return segmentation.decode_label_map(image_lib.from_signed(inputs) * 255.0,
                                             self.palette, self.void_colours).numpy()

    def evaluate(self):
        """Score the validation set now; returns `{metric: value}` (without prefix)."""
        paired = image_lib.PairedMeans(max_val=1.0)
        want_fid = "fid" in self.metrics or "kid" in self.metrics
        if want_fid and self.fid_extractor is None:
            self.fid_extractor = fid_lib.FeatureExtractor()
        seg = None
        if "seg" in self.metrics:
            from tfi2i.metrics.segmentation import SegmentationScore

            seg = SegmentationScore(self.segmenter, len(self.palette))
        fake_features, real_features = [], []
        for inputs, targets in self.val_data:
            outputs = image_lib.from_signed(self.translate(inputs))
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
                # Targets do not change between epochs: their features are computed once.
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

    def _improved(self, value):
        if self.best_value is None:
            return np.isfinite(value)
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def _save(self, epoch, results):
        if callable(self.save_best):
            self.save_best(self.model, epoch, results)
            return
        # The temporary name keeps the `.weights.h5` ending Keras requires.
        with atomic_path(self.save_best) as tmp:
            self.model.save_weights(tmp)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        results = self.evaluate()
        step = epoch + 1
        self.history.append({"epoch": step, **results})
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in results.items()})
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, value in results.items():
                    tf.summary.scalar(self.prefix + name, value, step=step)
            self._writer.flush()
        if self.best_metric is not None:
            if self.best_metric not in results:
                raise UserError(f"best_metric {self.best_metric!r} is not computed; "
                                f"metrics give {sorted(results)}")
            value = results[self.best_metric]
            if self._improved(value):
                self.best_value, self.best_epoch = value, step
                if self.save_best is not None:
                    self._save(step, results)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
