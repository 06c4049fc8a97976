"""Training-speed benchmark: one JSON line per configuration.

    python scripts/benchmark.py --method=pix2pix --image_size=256 --batch_size=1 --steps=10

Times `fit` steps of the method at full network size on in-memory tensors
(so the number is the model's step, not the input pipeline), after two warm-up
steps that trace and compile. Prints method, image size, batch, steps/s,
images/s, the median step time, peak RSS (and peak GPU memory on a GPU), and
the flags used.
"""

import json
import resource
import statistics
import time

import keras
import tensorflow as tf
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "pix2pix", "Method to benchmark.")
flags.DEFINE_integer("image_size", 256, "Square image size.")
flags.DEFINE_integer("batch_size", 1, "Global batch size.")
flags.DEFINE_integer("steps", 10, "Timed steps.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, XLA compilation).")
flags.DEFINE_bool("mixed_precision", False, "float16 on GPU, bfloat16 on CPU.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
flags.DEFINE_string("strategy", "auto", "Distribution strategy.")
flags.DEFINE_string("hparams", "", "Method options as key=value pairs (JSON values), e.g. netG=unet_128,ngf=32.")


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of each training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def main(argv):
    del argv
    from tfi2i.config import parse_hparams, resolve_config
    from tfi2i.training.trainer import _set_precision_and_determinism, build_compiled_model
    from tfi2i.training.strategy import get_strategy

    overrides = {"crop_size": FLAGS.image_size, "batch_size": FLAGS.batch_size,
                 "mixed_precision": FLAGS.mixed_precision, "jit_compile": FLAGS.jit_compile,
                 "strategy": FLAGS.strategy}
    overrides.update(parse_hparams(FLAGS.hparams))
    config = resolve_config(FLAGS.method, None, overrides)
    _set_precision_and_determinism(config)
    strategy = get_strategy(config["strategy"])
    model, _ = build_compiled_model(config, steps_per_epoch=1000, strategy=strategy)

    size, batch = FLAGS.image_size, FLAGS.batch_size
    x = tf.random.uniform([batch, size, size, config["input_nc"]], -1.0, 1.0)
    y = tf.random.uniform([batch, size, size, config["output_nc"]], -1.0, 1.0)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=FLAGS.warmup, epochs=1, verbose=0)
    timer = StepTimer()
    model.fit(data, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0, callbacks=[timer])

    median = statistics.median(timer.times)
    total = sum(timer.times)
    result = {
        "method": FLAGS.method, "image_size": size, "batch_size": batch,
        "steps_per_sec": round(len(timer.times) / total, 4),
        "images_per_sec": round(len(timer.times) * batch / total, 4),
        "step_time_median_s": round(median, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": FLAGS.mixed_precision, "jit_compile": FLAGS.jit_compile,
        "netG": config.get("netG"), "netD": config.get("netD"), "norm": config.get("norm"),
        "steps": FLAGS.steps,
    }
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        result["peak_gpu_mb"] = round(info["peak"] / 2**20, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
