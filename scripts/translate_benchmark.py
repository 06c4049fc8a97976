"""Translation speed: images/s of tfi2i-translate through a run, its SavedModel and its .tflite.

    python scripts/translate_benchmark.py --run_dir=runs/facades --count=32 --size=256

Exports the run (SavedModel, and float16 .tflite unless --notflite) into a temporary folder,
writes --count PNG images of --size px (smooth random images, or crops of --images), and
prints one JSON line:

- `keras_eager_ips`: the Keras generator called eagerly, one image at a time (what a user
  writing `generator(image[None])` gets); `savedmodel_ips`: the exported `translate_float`
  signature one image at a time, and `savedmodel_speedup` their ratio;
- `translate_<model>_ips` for model in run, savedmodel, tflite: `translate_files` on the
  folder (decode, batches of --batch_size, encode, as tfi2i-translate does), load time
  apart (`load_<model>_s`).

Each figure is the best of --repeats passes after one warm-up pass (first calls trace).
"""

import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A training run (config.json, checkpoints/).", required=True)
flags.DEFINE_string("images", None, "A folder of images to crop the inputs from (default: "
                    "smooth random images).")
flags.DEFINE_integer("count", 32, "Images to translate.")
flags.DEFINE_integer("size", 256, "Their side, px.")
flags.DEFINE_integer("batch_size", 4, "tfi2i-translate's --batch_size.")
flags.DEFINE_integer("repeats", 3, "Timed passes; the best is reported.")
flags.DEFINE_bool("tflite", True, "Also export and time a float16 .tflite.")


def _best(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _write_inputs(folder, count, size, channels):
    from PIL import Image

    from tfi2i.data.decode import list_images
    from tfi2i.export.translator import read_image

    rng = np.random.default_rng(0)
    sources = list_images(FLAGS.images, recursive=True) if FLAGS.images else []
    for i in range(count):
        if sources:
            image = read_image(sources[i % len(sources)], channels)
            image = np.asarray(Image.fromarray(image.squeeze()).resize((size, size)))
        else:
            coarse = rng.uniform(0, 255, (size // 32, size // 32, channels)).astype(np.uint8)
            image = np.asarray(Image.fromarray(coarse.squeeze()).resize((size, size),
                                                                        Image.BICUBIC))
        Image.fromarray(image.squeeze()).save(os.path.join(folder, f"{i:04d}.png"))


def main(argv):
    del argv
    import tensorflow as tf

    from tfi2i.export import export_run, export_tflite, load, translate_files
    from tfi2i.export.translator import find_savedmodel
    from tfi2i.training.checkpoints import restore_run

    model, config = restore_run(FLAGS.run_dir, None)
    direction, generator = next(iter(model.generators.items()))
    channels = int(generator.inputs[0].shape[-1])
    result = {"run_dir": FLAGS.run_dir, "direction": direction, "size": FLAGS.size,
              "count": FLAGS.count, "batch_size": FLAGS.batch_size,
              "threads": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(inputs)
        _write_inputs(inputs, FLAGS.count, FLAGS.size, channels)
        export_dir = os.path.join(tmp, "export")
        export_run(FLAGS.run_dir, export_dir)
        models = {"run": FLAGS.run_dir, "savedmodel": export_dir}
        if FLAGS.tflite:
            export_tflite(model.generators, model.size_divisor, config, export_dir,
                          quantize=("float16",))
            models["tflite"] = os.path.join(export_dir, "tflite", f"{direction}_float16.tflite")

        # One image at a time: Keras eager vs the exported signature.
        images = tf.random.uniform([FLAGS.count, FLAGS.size, FLAGS.size, channels], -1, 1)
        eager = _best(lambda: [generator(images[i:i + 1], training=False)
                               for i in range(FLAGS.count)], FLAGS.repeats)
        loaded = tf.saved_model.load(find_savedmodel(export_dir))
        signature = loaded.signatures["translate_float"]
        exported = _best(lambda: [signature(images=images[i:i + 1])
                                  for i in range(FLAGS.count)], FLAGS.repeats)
        result.update(keras_eager_ips=round(FLAGS.count / eager, 3),
                      savedmodel_ips=round(FLAGS.count / exported, 3),
                      savedmodel_speedup=round(eager / exported, 2))

        for name, path in models.items():
            start = time.perf_counter()
            translator = load(path, batch_size=FLAGS.batch_size)
            result[f"load_{name}_s"] = round(time.perf_counter() - start, 2)
            seconds = _best(lambda: translate_files(translator, inputs, outputs, direction,
                                                    progress=False), FLAGS.repeats)
            result[f"translate_{name}_ips"] = round(FLAGS.count / seconds, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
