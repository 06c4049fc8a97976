"""Keras callbacks of a training run: checkpoints, TensorBoard, sample images."""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tfi2i.files import atomic_path


def _lr_of(optimizer):
    lr = optimizer.learning_rate
    return float(lr(optimizer.iterations) if callable(lr) else lr)


class StepCheckpoint(keras.callbacks.Callback):
    """Saves the run every `every_steps` steps and at each epoch's end.

    The step is the model's global step (restored on resume), so saving is
    aligned to the run, not to one `fit` call.
    """

    def __init__(self, checkpointer, epoch_var, every_steps, steps_per_epoch):
        super().__init__()
        self.checkpointer = checkpointer
        self.epoch_var = epoch_var
        self.every_steps = max(int(every_steps), 1)
        self.steps_per_epoch = steps_per_epoch
        self.last_saved = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step % self.every_steps == 0 or step % self.steps_per_epoch == 0:
            self.save(step)

    def save(self, step):
        if step == self.last_saved:
            return
        self.epoch_var.assign(step // self.steps_per_epoch)
        self.checkpointer.save(step)
        self.last_saved = step

    def on_train_end(self, logs=None):
        self.save(int(self.model.step.numpy()))


class TrainingLogger(keras.callbacks.Callback):
    """TensorBoard scalars (losses, LR, steps/s), validation metrics, image grids.

    Image grids of a fixed batch (rows from the method's `sample_images`) go to
    TensorBoard and, as PNG files, to `samples_dir`.

    Args:
        log_dir: TensorBoard directory.
        samples_dir: where `step_XXXXXXXX.png` grids are written.
        sample_batch: a fixed (input, target) batch to translate.
        log_every_steps, sample_every_steps: intervals, in global steps.
    """

    def __init__(self, log_dir, samples_dir, sample_batch, log_every_steps=100,
                 sample_every_steps=500):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.samples_dir = samples_dir
        self.sample_batch = sample_batch
        self.log_every_steps = max(int(log_every_steps), 1)
        self.sample_every_steps = max(int(sample_every_steps), 1)
        self._t0 = None
        self._s0 = None

    def on_train_begin(self, logs=None):
        self._t0, self._s0 = time.perf_counter(), int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step % self.log_every_steps == 0:
            now = time.perf_counter()
            steps_per_sec = (step - self._s0) / max(now - self._t0, 1e-9)
            self._t0, self._s0 = now, step
            with self.writer.as_default(step=step):
                for name in self.model.train_names:
                    tf.summary.scalar(f"train/{name}", self.model.trackers[name].result())
                for group, opt in self.model.optimizers.items():
                    tf.summary.scalar(f"lr/{group}", _lr_of(opt))
                tf.summary.scalar("speed/steps_per_sec", steps_per_sec)
        if step % self.sample_every_steps == 0:
            self.write_samples(step)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.step.numpy())
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                if name.startswith("val_"):
                    tf.summary.scalar(f"val/{name[4:]}", value)
            tf.summary.scalar("epoch", epoch + 1)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.write_samples(int(self.model.step.numpy()))
        self.writer.flush()

    def write_samples(self, step):
        grid = self.model.sample_images(self.sample_batch)
        grid = tf.cast(tf.round((tf.clip_by_value(grid, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        with self.writer.as_default(step=step):
            # The method's sample_images says what the columns are (pix2pix:
            # input | output | target; CycleGAN: real | translated | reconstructed).
            tf.summary.image("samples", grid, max_outputs=8)
        rows = np.concatenate(list(grid.numpy()), axis=0)
        path = os.path.join(self.samples_dir, f"step_{step:08d}.png")
        # PIL picks the format from the temporary name, which ends in `.png` too.
        with atomic_path(path) as tmp:
            Image.fromarray(rows).save(tmp)


class Profiler(keras.callbacks.Callback):
    """Traces global steps `first` to `last` with the TensorFlow profiler into `log_dir`.

    The trace (op-level time on every device, the input pipeline, the host) is what
    TensorBoard's Profile tab shows (it needs `pip install tensorboard-plugin-profile`).
    Steps before `first` warm up: the first step of a run traces and compiles.

    Args:
        log_dir: TensorBoard directory; the trace goes to `log_dir/plugins/profile/<time>/`.
        first, last: the global steps (counted from 1) to trace, inclusive.
    """

    def __init__(self, log_dir, first, last):
        super().__init__()
        self.log_dir, self.first, self.last = log_dir, int(first), int(last)
        self._active = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self._active and self.first <= int(self.model.step.numpy()) + 1 <= self.last:
            tf.profiler.experimental.start(self.log_dir)
            self._active = True

    def on_train_batch_end(self, batch, logs=None):
        if self._active and int(self.model.step.numpy()) >= self.last:
            self._stop()

    def on_train_end(self, logs=None):
        self._stop()

    def _stop(self):
        if self._active:
            tf.profiler.experimental.stop()
            self._active = False
            logging.info("Profiler trace written to %s/plugins/profile", self.log_dir)


class StepsPerSecond(keras.callbacks.Callback):
    """Adds `steps_per_sec` to the logs at each epoch's end (shown by the progress bar)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["steps_per_sec"] = self._steps / max(time.perf_counter() - self._t0, 1e-9)
