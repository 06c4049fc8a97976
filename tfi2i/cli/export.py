"""tfi2i-export: a trained run's generators as a SavedModel for TF Serving, or as TFLite.

    tfi2i-export --run_dir=runs/pix2pix_facades --output=export/facades
    tfi2i-export --run_dir=runs/pix2pix_facades --output=export/facades \
        --format=tflite --quantize=float16,dynamic,int8

A SavedModel goes to OUTPUT/<version>/ (one above the highest present), TFLite
files to OUTPUT/tflite/. Every export is reloaded and compared with the Keras
generator before the command succeeds; the differences are printed.
"""

import os

from tfi2i.cli.common import quiet_absl_logging, run_main
from tfi2i.errors import UserError
from tfi2i.options import Option

FORMATS = ("savedmodel", "tflite")
QUANTIZE = ("none", "float16", "dynamic", "int8")

OPTIONS = (
    Option("run_dir", str, None, "The training run to export (config.json, checkpoints/).",
           required=True, must_exist=True),
    Option("checkpoint", str, None, "A checkpoint of the run, e.g. RUN/checkpoints/ckpt-1000, "
           "or best (default: the latest)."),
    Option("output", str, None, "The model's base path (default export/<run name>)."),
    Option("format", list, ["savedmodel"], "savedmodel and/or tflite.", choices=FORMATS),
    Option("version", int, None, "SavedModel version (default: one above the highest in "
           "--output).", min=1),
    Option("quantize", list, ["float16"], "TFLite variants: any of none (float32), float16, "
           "dynamic (int8 weights), int8 (needs sample images).", choices=QUANTIZE),
    Option("sample_images", list, [], "Folders of input-domain images, to calibrate int8 and "
           "verify TFLite on real images: FOLDER for the default generator, or NAME=FOLDER per "
           "generator (e.g. AtoB=data/trainA,BtoA=data/trainB). Default: the run's training "
           "inputs, when its data can be read."),
    Option("calibration_count", int, 64, "Sample images used to calibrate int8.", min=1),
    Option("verify_count", int, 4, "Sample images each TFLite file is checked on.", min=1),
    Option("verify", bool, True, "Reload every export and compare it with Keras."),
    Option("tolerance", float, 1e-4, "Max abs diff allowed between translate_float and Keras "
           "([-1, 1] units).", min=0.0),
)


def check(args, explicit):
    """Checks the options before the run is loaded."""
    from tfi2i.config import read_config
    read_config(args.run_dir)  # A clear error if it is not a run directory.
    if not args.format:
        raise UserError("--format is empty: give savedmodel and/or tflite.")
    for item in args.sample_images:
        folder = item.rpartition("=")[2]
        if not os.path.isdir(folder):
            raise UserError(f"--sample_images={item}: {folder} is not a folder.")


def main(args, explicit):
    from tfi2i.export import VerificationError

    try:
        export(args)
    except VerificationError as e:
        # Nothing was published; the message says what differs and where it is kept.
        raise UserError(f"{e} (--tolerance sets the limit of the float signature.)") from None


def export(args):
    """Writes and verifies the exports `args` ask for, printing what was written."""
    quiet_absl_logging()
    from tfi2i.export import export_generators
    from tfi2i.export.serving import signature_kind
    from tfi2i.export.tflite import FILE_TAGS, export_tflite
    from tfi2i.training.checkpoints import restore_run

    model, config = restore_run(args.run_dir, args.checkpoint)
    # A method whose translation TFLite cannot hold says why (before anything is written).
    if "tflite" in args.format and getattr(model, "tflite_unsupported", None):
        raise UserError(f"--format=tflite: {model.tflite_unsupported}")
    generators, divisor = model.generators, model.size_divisor
    output = args.output or os.path.join(
        "export", os.path.basename(os.path.normpath(args.run_dir)))

    if "savedmodel" in args.format:
        report = export_generators(generators, divisor, config, output, version=args.version,
                                   verify=args.verify, tolerance=args.tolerance,
                                   code_generators=model.code_generators,
                                   style_encoders=model.style_encoders)
        print(f"SavedModel: {report['path']}")
        print(f"  signatures: {', '.join(report['signatures'])}")
        print(f"  variables: {report['variables_bytes'] / 1e6:.1f} MB "
              f"(Keras weights {report['keras_weights_bytes'] / 1e6:.1f} MB)")
        for key, diff in report.get("max_abs_diff", {}).items():
            unit = "" if signature_kind(key) == "float" else " grey levels"
            print(f"  {key}: max abs diff vs Keras {diff:.3g}{unit}")
        for key in report.get("sampled", []) if args.verify else []:
            print(f"  {key}: draws its code in the graph (checked: shape, range, new draws)")

    if "tflite" in args.format:
        samples = sample_images(args.sample_images, generators, divisor, config,
                                args.verify_count + args.calibration_count)
        info = export_tflite(generators, divisor, config, output, quantize=args.quantize,
                             sample_images=samples, verify=args.verify,
                             verify_count=args.verify_count,
                             code_generators=model.code_generators)
        print(f"TFLite: {os.path.join(output, 'tflite')}")
        for name in generators:
            for q in args.quantize:
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

    Generators are named by the data direction they translate (AtoB, BtoA).
    """
    import numpy as np

    if direction not in ("AtoB", "BtoA"):
        return None
    from tfi2i.data import make_dataset, resolve_dataset
    from tfi2i.methods import get_method

    try:
        root = resolve_dataset(config.get("dataset"), config.get("data_dir"),
                               config.get("cache_dir"), tfds_data_dir=config.get("tfds_data_dir"))
        forward = direction == config.get("direction", "AtoB")
        nc = config.get("input_nc", 3) if forward else config.get("output_nc", 3)
        dataset = make_dataset(root, "train", paired=get_method(config["method"]).paired,
                               unpaired=config.get("unpaired", False), direction=direction,
                               load_size=size, crop_size=size, batch_size=1, training=False,
                               size_divisor=divisor, input_nc=nc, output_nc=nc)
        return np.concatenate([inputs.numpy() for inputs, _ in dataset.take(count)])
    except UserError as e:
        print(f"Training data not readable ({e}); TFLite is verified on synthetic images.")
        return None


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check)


if __name__ == "__main__":
    run()
