"""Training-speed benchmark: one JSON line per configuration, or a table beside PyTorch's.

    python scripts/benchmark.py --method=pix2pix --image_size=256 --batch_size=1 --steps=10

Times `fit` steps of the method at full network size on in-memory tensors
(so the number is the model's step, not the input pipeline), after two warm-up
steps that trace and compile. Prints method, image size, batch, steps/s,
images/s, the median step time, the trainable parameter count, peak RSS (and peak
GPU memory on a GPU), and the flags used.

    python scripts/benchmark.py --compare_torch --torch_python=/work/torchvenv/bin/python

times each of --cases (default: pix2pix 256 px batch 1 and 128 px batch 4, CycleGAN 128 and
256 px batch 1) with each of --flag_sets (fp32, bf16 = --mixed_precision, xla =
--jit_compile), and the PyTorch reference's step (scripts/torch_reference_bench.py, run by
--torch_python, a Python with torch) on the same nets, and prints a Markdown table of the
median step times and their ratios. Every measurement is its own process, one after the
other. The parameter counts of both sides must be equal (else exit status 1): the same
architecture, or the ratio means nothing. Measure on a quiet machine: the 1-minute load
average is printed with the table, and a competing process slows the two sides unequally.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
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
flags.DEFINE_string("data_dir", None, "Also time the method's training input pipeline alone on "
                    "this dataset (decode, jitter, batch), in images/s beside the step's.")
flags.DEFINE_integer("pipeline_batches", 100, "Batches timed with --data_dir (after 10 warm-up).")
flags.DEFINE_bool("compare_torch", False, "Time --cases x --flag_sets and the PyTorch reference; print a table.")
flags.DEFINE_string("torch_python", os.environ.get("TFI2I_TORCH_PYTHON"),
                    "A Python with torch, for --compare_torch (default $TFI2I_TORCH_PYTHON).")
flags.DEFINE_list("cases", ["pix2pix:256:1", "pix2pix:128:4:netG=unet_128", "cyclegan:128:1",
                            "cyclegan:256:1"],
                  "For --compare_torch: method:image_size:batch_size[:hparams with ; between pairs].")
flags.DEFINE_list("flag_sets", ["fp32", "bf16", "xla"],
                  "For --compare_torch: tfi2i runs per case; fp32, bf16 (--mixed_precision), xla (--jit_compile), bf16+xla.")

# The options the reference's step needs, passed to torch_reference_bench.py as flags.
_TORCH_OPTIONS = ("netG", "netD", "n_layers_D", "norm", "ngf", "ndf", "use_dropout", "gan_mode",
                  "input_nc", "output_nc", "lambda_L1", "lambda_A", "lambda_B",
                  "lambda_identity", "pool_size", "lr", "beta1")
_FLAG_SETS = {"fp32": [], "bf16": ["--mixed_precision"], "xla": ["--jit_compile"],
              "bf16+xla": ["--mixed_precision", "--jit_compile"]}


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of each training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def _time_pipeline(config, model):
    """Images/s of the method's training input pipeline on --data_dir, run alone."""
    from tfi2i import data as tfi2i_data
    from tfi2i.training.trainer import pipeline_options

    options = pipeline_options(config, type(model), model.size_divisor)
    data = tfi2i_data.make_dataset(FLAGS.data_dir, "train", batch_size=config["batch_size"],
                                   seed=0, training=True, epochs=1000, **options)
    iterator = iter(data)
    for _ in range(10):
        next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        next(iterator)
    return FLAGS.pipeline_batches * config["batch_size"] / (time.perf_counter() - start)


def _last_json(command):
    """Runs `command`; its last stdout line, parsed (exits with its stderr on failure)."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"benchmark: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def compare_torch():
    """Every case with every flag set, and the reference; prints the table, returns 0 or 1."""
    if not FLAGS.torch_python or not os.path.exists(FLAGS.torch_python):
        sys.exit("benchmark: --compare_torch needs --torch_python (or $TFI2I_TORCH_PYTHON): a "
                 "Python with torch, e.g. python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/"
                 "pip install torch numpy pillow --index-url https://download.pytorch.org/whl/cpu"
                 f" (got {FLAGS.torch_python!r})")
    unknown = set(FLAGS.flag_sets) - set(_FLAG_SETS)
    if unknown:
        sys.exit(f"benchmark: unknown --flag_sets {sorted(unknown)}; choose from {sorted(_FLAG_SETS)}")
    load = os.getloadavg()[0]
    here = os.path.dirname(os.path.abspath(__file__))
    common = [f"--steps={FLAGS.steps}", f"--warmup={FLAGS.warmup}"]
    rows, status = [], 0
    for case in FLAGS.cases:
        method, size, batch, *rest = case.split(":")
        hparams = rest[0].replace(";", ",") if rest else ""
        shape = [f"--method={method}", f"--image_size={size}", f"--batch_size={batch}"]
        tf_results = {}
        for name in FLAGS.flag_sets:
            tf_results[name] = _last_json([sys.executable, os.path.join(here, "benchmark.py")]
                                          + shape + common + [f"--hparams={hparams}"]
                                          + _FLAG_SETS[name])
        options = next(iter(tf_results.values()))["reference_options"]
        torch_flags = [f"--{key}={str(value).lower() if isinstance(value, bool) else value}"
                       for key, value in options.items()]
        ref = _last_json([FLAGS.torch_python, os.path.join(here, "torch_reference_bench.py")]
                         + shape + common + torch_flags)
        ours = next(iter(tf_results.values()))["params"]
        if ours != ref["params"]:
            status = 1
        rows.append((case, ref, tf_results, ours))

    header = ["method", "size", "batch", "params (tfi2i / torch)", "torch fp32 s"]
    for name in FLAGS.flag_sets:
        header += [f"tfi2i {name} s", f"{name} / torch"]
    print(f"1-minute load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; median of {FLAGS.steps} "
          f"steps after {FLAGS.warmup} warm-up; torch {rows[0][1]['torch'] if rows else '-'}, "
          f"{rows[0][1]['threads'] if rows else '-'} threads")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for case, ref, tf_results, ours in rows:
        first = next(iter(tf_results.values()))
        cells = [first["method"], str(first["image_size"]), str(first["batch_size"]),
                 f"{ours:,} / {ref['params']:,}" + ("" if ours == ref["params"] else " DIFFER"),
                 f"{ref['step_time_median_s']:.3f}"]
        for name in FLAGS.flag_sets:
            t = tf_results[name]["step_time_median_s"]
            cells += [f"{t:.3f}", f"{t / ref['step_time_median_s']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if status:
        print("benchmark: parameter counts differ: not the same architecture.", file=sys.stderr)
    return status


def main(argv):
    del argv
    if FLAGS.compare_torch:
        sys.exit(compare_torch())
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
    pipeline_ips = _time_pipeline(config, model) if FLAGS.data_dir else None
    x = tf.random.uniform([batch, size, size, config["input_nc"]], -1.0, 1.0)
    y = tf.random.uniform([batch, size, size, config["output_nc"]], -1.0, 1.0)
    if getattr(type(model), "source_labels", False):  # DTN: ((source, class labels), target)
        x = (x, tf.zeros([batch], tf.int64))
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=FLAGS.warmup, epochs=1, verbose=0)
    timer = StepTimer()
    model.fit(data, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0, callbacks=[timer])

    median = statistics.median(timer.times)
    total = sum(timer.times)
    result = {
        "framework": "tensorflow", "method": FLAGS.method, "image_size": size, "batch_size": batch,
        "steps_per_sec": round(len(timer.times) / total, 4),
        "images_per_sec": round(len(timer.times) * batch / total, 4),
        "step_time_median_s": round(median, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": FLAGS.mixed_precision, "jit_compile": FLAGS.jit_compile,
        "netG": config.get("netG"), "netD": config.get("netD"), "norm": config.get("norm"),
        "steps": FLAGS.steps,
        "params": int(sum(int(tf.size(w)) for w in model.trainable_weights)),
        "reference_options": {key: config[key] for key in _TORCH_OPTIONS if key in config},
    }
    if pipeline_ips is not None:
        result["pipeline_images_per_sec"] = round(pipeline_ips, 2)
        result["pipeline_over_step"] = round(pipeline_ips / result["images_per_sec"], 1)
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        result["peak_gpu_mb"] = round(info["peak"] / 2**20, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
