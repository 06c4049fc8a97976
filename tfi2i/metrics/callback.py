"""A Keras callback that runs an evaluator during training and keeps the best checkpoint.

What is scored and how is the evaluator's business (`tfi2i.metrics.evaluator.Evaluator`);
this callback decides when (every N epochs), where the scores go (the epoch's logs,
TensorBoard) and which epoch was best.

    evaluator = Evaluator(val_data, metrics=("psnr", "fid"))
    callback = EvaluationCallback(evaluator, every_n_epochs=5, log_dir="run/logs",
                                  best_metric="fid", save_best="run/best.weights.h5")
"""

import keras
import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.files import atomic_path
from tfi2i.metrics.evaluator import LOWER_IS_BETTER


class EvaluationCallback(keras.callbacks.Callback):
    """Every N epochs: score the model with `evaluator`, log the scores, keep the best weights.

    Args:
        evaluator: callable `(translate) -> {name: value}`, e.g. an `Evaluator`.
        translate: callable `(inputs) -> outputs` in [-1, 1] passed to the evaluator;
            default `self.model(inputs, training=False)`.
        every_n_epochs: evaluate after epochs N, 2N, ... (1-based).
        log_dir: TensorBoard folder; scalars `<prefix><name>` at step = epoch (1-based).
        best_metric: a reported name without prefix ("fid", "psnr", "seg_class_iou", ...) to
            keep the best checkpoint by; None keeps none.
        mode: "min", "max" or "auto" (min for fid/kid/l1, max otherwise).
        save_best: where the best checkpoint goes: a callable `(model, epoch, results)` (e.g. a
            run's checkpoint writer), or a path ending in `.weights.h5` written with
            `model.save_weights` atomically (temp file + rename).
        prefix: prefix of the names in `logs` and TensorBoard.

    The results are also written into the epoch's `logs` (`val_fid`, ...), so callbacks after
    this one in the list (EarlyStopping, ModelCheckpoint) can monitor them. `history` holds
    `{"epoch": epoch, **results}` per evaluation.
    """

    def __init__(self, evaluator, translate=None, every_n_epochs=1, log_dir=None,
                 best_metric=None, mode="auto", save_best=None, prefix="val_"):
        super().__init__()
        if every_n_epochs < 1:
            raise UserError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        names = getattr(evaluator, "names", None)
        if best_metric is not None and names is not None and best_metric not in names:
            raise UserError(f"best_metric {best_metric!r} is not computed; the metrics give "
                            f"{sorted(names)}")
        if mode == "auto" and best_metric is not None:
            mode = "min" if best_metric in LOWER_IS_BETTER else "max"
        if mode not in ("min", "max", "auto"):
            raise UserError(f"mode must be min, max or auto, not {mode!r}")
        if isinstance(save_best, str) and not save_best.endswith(".weights.h5"):
            raise UserError(f"save_best path {save_best} must end in .weights.h5")
        self.evaluator = evaluator
        self._translate = translate
        self.every_n_epochs = every_n_epochs
        self.log_dir = log_dir
        self.best_metric = best_metric
        self.mode = mode
        self.save_best = save_best
        self.prefix = prefix
        self.best_value = None
        self.best_epoch = None
        self.history = []
        self._writer = None

    def translate(self, inputs):
        """Outputs of the model for a batch of inputs, in [-1, 1]."""
        if self._translate is not None:
            return self._translate(inputs)
        return self.model(inputs, training=False)

    def evaluate(self):
        """Score the model now; returns `{name: value}` (without prefix)."""
        return self.evaluator(self.translate)

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

    def _log(self, step, results):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for name, value in results.items():
                tf.summary.scalar(self.prefix + name, value, step=step)
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        results = self.evaluate()
        step = epoch + 1
        self.history.append({"epoch": step, **results})
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in results.items()})
        if self.log_dir:
            self._log(step, results)
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
