"""tfi2i-export: a trained run's generators as a SavedModel for TF Serving, or as TFLite.

    tfi2i-export --run_dir=runs/pix2pix_facades --output=export/facades
    tfi2i-export --run_dir=runs/pix2pix_facades --output=export/facades \
        --format=tflite --quantize=float16,dynamic,int8

A SavedModel goes to OUTPUT/<version>/ (one above the highest present), TFLite
files to OUTPUT/tflite/. Every export is reloaded and compared with the Keras
generator before the command succeeds; the differences are printed.
"""

import os

from absl import flags, logging

from tfi2i.cli.common import run_main
from tfi2i.errors import UserError

FLAGS = flags.FLAGS

flags.DEFINE_string("run_dir", None, "The training run to export (config.json, checkpoints/).")
flags.DEFINE_string("checkpoint", None, "A checkpoint of the run, e.g. RUN/checkpoints/ckpt-1000 "
                    "(default: the latest).")
flags.DEFINE_string("output", None, "The model's base path (default export/<run name>).")
flags.DEFINE_list("format", ["savedmodel"], "savedmodel and/or tflite.")
flags.DEFINE_integer("version", None, "SavedModel version (default: one above the highest in "
                     "--output).")
flags.DEFINE_list("quantize", ["float16"], "TFLite variants: any of none (float32), float16, "
                  "dynamic (int8 weights), int8 (needs sample images).")
flags.DEFINE_list("sample_images", [], "Folders of input-domain images, to calibrate int8 and "
                  "verify TFLite on real images: FOLDER for the default generator, or "
                  "NAME=FOLDER per generator (e.g. AtoB=data/trainA,BtoA=data/trainB). "
                  "Default: the run's training inputs, when its data can be read.")
flags.DEFINE_integer("calibration_count", 64, "Sample images used to calibrate int8.")
flags.DEFINE_integer("verify_count", 4, "Sample images each TFLite file is checked on.")
flags.DEFINE_bool("verify", True, "Reload every export and compare it with Keras.")
flags.DEFINE_float("tolerance", 1e-4, "Max abs diff allowed between translate_float and Keras "
                   "([-1, 1] units).")

FORMATS = ("savedmodel", "tflite")


def main(argv):
    # TensorFlow's INFO lines (tracing, saving, converting) would bury the report.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments {' '.join(argv[1:])}; options are --flags.")
    if not FLAGS.run_dir:
        raise UserError("--run_dir is required: the training run whose generators to export.")
    unknown = [f for f in FLAGS.format if f not in FORMATS]
    if unknown or not FLAGS.format:
        raise UserError(f"--format takes savedmodel and/or tflite, not {','.join(FLAGS.format)}.")

    from tfi2i.export import export_generators
    from tfi2i.export.serving import signature_kind
    from tfi2i.export.tflite import FILE_TAGS, export_tflite
    from tfi2i.training.checkpoints import restore_run

    model, config = restore_run(FLAGS.run_dir, FLAGS.checkpoint)
    generators, divisor = model.generators, model.size_divisor
    output = FLAGS.output or os.path.join(
        "export", os.path.basename(os.path.normpath(FLAGS.run_dir)))

    if "savedmodel" in FLAGS.format:
        report = export_generators(generators, divisor, config, output, version=FLAGS.version,
                                   verify=FLAGS.verify, tolerance=FLAGS.tolerance)
        print(f"SavedModel: {report['path']}")
        print(f"  signatures: {', '.join(report['signatures'])}")
        print(f"  variables: {report['variables_bytes'] / 1e6:.1f} MB "
              f"(Keras weights {report['keras_weights_bytes'] / 1e6:.1f} MB)")
        for key, diff in report.get("max_abs_diff", {}).items():
            unit = "" if signature_kind(key) == "float" else " grey levels"
            print(f"  {key}: max abs diff vs Keras {diff:.3g}{unit}")

    if "tflite" in FLAGS.format:
        samples = sample_images(FLAGS.sample_images, generators, divisor, config,
                                FLAGS.verify_count + FLAGS.calibration_count)
        info = export_tflite(generators, divisor, config, output, quantize=FLAGS.quantize,
                             sample_images=samples, verify=FLAGS.verify,
                             verify_count=FLAGS.verify_count)
        print(f"TFLite: {os.path.join(output, 'tflite')}")
        for name in generators:
            for q in FLAGS.quantize:
                filename = f"{name}_{FILE_TAGS[q]}.tflite"
                print(f"  {describe_tflite(filename, info['files'][filename])}")


def describe_tflite(filename, entry):
    """One line on a .tflite file: size, and error and latency when verified."""
    text = f"{filename}: {entry['bytes'] / 1e6:.1f} MB"
    if "max_abs_diff" in entry:
        text += (f", max abs diff {entry['max_abs_diff']:.3g}, mean {entry['mean_abs_diff']:.3g}"
                 f", {entry['latency_s'] * 1e3:.1f} ms/image (Keras "
                 f"{entry['keras_latency_s'] * 1e3:.1f}) on {entry['verified_on']}")
    return text


def sample_images(items, generators, divisor, config, count):
    """{generator name: float32 images} from --sample_images or the run's training data."""
    from tfi2i.export.tflite import load_sample_images
    from tfi2i.export.translator import round_up

    size = round_up(int(config.get("crop_size", 256)), divisor)
    default = next(iter(generators))
    folders = {}
    for item in items:
        name, _, folder = item.rpartition("=")
        name = name or default
        if name not in generators:
            raise UserError(f"--sample_images names {name!r}; this run's generators are "
                            f"{', '.join(generators)}.")
        folders[name] = folder
    images = {}
    for name, generator in generators.items():
        channels = generator.inputs[0].shape[-1]
        if name in folders:
            images[name] = load_sample_images(folders[name], size, channels, count)
        else:
            found = training_inputs(config, name, size, divisor, count)
            if found is not None:
                images[name] = found
    return images


def training_inputs(config, direction, size, divisor, count):
    """Up to `count` training inputs of generator `direction`, or None when unreadable.

    Only for paired data, where the generator's name is the data direction.
    """
    import numpy as np

    if direction not in ("AtoB", "BtoA") or config.get("input_nc", 3) != 3:
        return None
    from tfi2i.data import paired_dataset, resolve_dataset

    try:
        root = resolve_dataset(config.get("dataset"), config.get("data_dir"),
                               config.get("cache_dir"))
        dataset = paired_dataset(root, "train", direction=direction, load_size=size,
                                 crop_size=size, batch_size=1, training=False,
                                 size_divisor=divisor)
        return np.concatenate([inputs.numpy() for inputs, _ in dataset.take(count)])
    except UserError as e:
        print(f"Training data not readable ({e}); TFLite is verified on synthetic images.")
        return None


def run():
    """Console-script entry point."""
    run_main(main)


if __name__ == "__main__":
    run()
