"""TFLite export of generators, checked with the LiteRT interpreter against Keras.

Every variant has the same interface, so that callers need not know how it
was quantized: float32 images [N, H, W, C] in [-1, 1] -> float32 [N, H, W, C'],
with H and W free (resize the input tensor) but multiples of the net's size
divisor; `tfi2i.load("x.tflite")` pads and crops for you. Decoding, padding
and encoding stay outside the .tflite: image codecs would need the Flex
delegate.

Quantization (`quantize`):
    none      float32 weights and activations.
    float16   float16 weights, float32 compute: half the size, error ~1e-3.
    dynamic   int8 weights, activations quantized on the fly: a quarter of the
              size, but its transposed convolutions run 20-50x slower on CPU.
    int8      int8 weights and activations calibrated on sample images; float
              input and output (quantize/dequantize inside).
"""

import json
import os
import time
import warnings

import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.data.decode import list_images
from tfi2i.export.translator import (TFLiteNet, config_beside, keras_code_net, keras_net,
                                     read_image, round_up)
from tfi2i.files import atomic_path

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# File names say the precision; "none" means float32.
FILE_TAGS = {"none": "float32", "float16": "float16", "dynamic": "dynamic", "int8": "int8"}
# Allowed max and mean abs diff against Keras, in [-1, 1] units, measured on
# 256 px real images (see export/README.md for the figures). Quantized
# variants are judged by the mean: a few saturated pixels are expected.
TOLERANCES = {
    "none": {"max_abs_diff": 1e-3},
    "float16": {"max_abs_diff": 0.05, "mean_abs_diff": 5e-3},
    "dynamic": {"mean_abs_diff": 0.05},
    "int8": {"mean_abs_diff": 0.1},
}


def convert(generator, quantize="none", calibration_images=None):
    """Converts a Keras generator to a .tflite flatbuffer (bytes).

    Args:
        generator: a keras.Model on float32 [N, H, W, C] in [-1, 1], or a multimodal
            method's code generator on [images, codes [N, latent_dim]] (the file then takes
            both inputs: the app draws the codes, from N(0, I) or a style).
        quantize: one of QUANTIZATIONS.
        calibration_images: float32 [N, H, W, C] in [-1, 1], required for int8.
    """
    if quantize not in QUANTIZATIONS:
        raise UserError(f"Unknown quantization {quantize!r}; use one of "
                        f"{', '.join(QUANTIZATIONS)}.")
    channels = generator.inputs[0].shape[-1]
    image_spec = tf.TensorSpec([None, None, None, channels], tf.float32, name="images")

    # Batch, height and width stay dynamic: the interpreter resizes its input.
    if len(generator.inputs) == 2:
        latent_dim = generator.inputs[1].shape[-1]

        @tf.function(input_signature=[image_spec, tf.TensorSpec([None, latent_dim], tf.float32,
                                                                name="codes")])
        def translate(images, codes):
            return {"images": generator([images, codes], training=False)}

        calibration_codes = np.random.default_rng(0).standard_normal(
            (len(calibration_images) if calibration_images is not None else 0, latent_dim))
        representative = lambda: ([x[None], z[None].astype(np.float32)]
                                  for x, z in zip(calibration_images, calibration_codes))
    else:
        @tf.function(input_signature=[image_spec])
        def translate(images):
            return {"images": generator(images, training=False)}

        representative = lambda: ([x[None]] for x in calibration_images)

    # The tf.function, not the Keras model, as the trackable object: with the
    # model the converter silently leaves the weights out (NaN outputs).
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [translate.get_concrete_function()], translate)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise UserError("int8 quantization needs calibration images of the input domain; "
                            "pass --sample_images=FOLDER (e.g. the training inputs).")
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        # int8 keeps float inputs on purpose; the converter warns about it.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        return converter.convert()


def load_sample_images(folder, size, channels=3, count=None):
    """Up to `count` images of `folder` as float32 [N, size, size, C] in [-1, 1].

    Each image is resized so its shorter side is `size`, then centre-cropped.
    """
    from PIL import Image

    try:
        paths = list_images(folder, recursive=True)
    except UserError as e:
        raise UserError(f"{e} (--sample_images)") from None
    images = []
    for path in paths[:count]:
        image = Image.fromarray(np.squeeze(read_image(path, channels)))
        scale = size / min(image.size)
        width = max(size, round(image.width * scale))
        height = max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BICUBIC)
        left, top = (width - size) // 2, (height - size) // 2
        array = np.asarray(image.crop((left, top, left + size, top + size)), np.float32)
        images.append(array.reshape(size, size, channels) / 127.5 - 1.0)
    return np.stack(images)


def synthetic_images(count, size, channels=3, seed=0):
    """Smooth random float32 images [count, size, size, C] in [-1, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (count, 8, 8, channels)).astype(np.float32)
    return np.clip(tf.image.resize(coarse, (size, size), method="bicubic").numpy(), -1, 1)


def compare(tflite_path, generator, images):
    """Max and mean abs diff of a .tflite against Keras, and both latencies per image.

    Images go through one at a time (batch 1), as on a device; latencies are
    medians over the images, after one warm-up call each.
    """
    tflite_net = TFLiteNet(tflite_path)
    if len(generator.inputs) == 2:  # a code generator, compared on fixed codes
        codes = np.random.default_rng(0).standard_normal(
            (len(images), generator.inputs[1].shape[-1])).astype(np.float32)
        keras_call = keras_code_net(generator)
        reference = generator([images, codes], training=False).numpy()
    else:
        codes = None
        keras_call = keras_net(generator)
        reference = generator(images, training=False).numpy()
    outputs, tflite_times, keras_times = [], [], []
    for net, times in [(tflite_net, tflite_times), (keras_call, keras_times)]:
        for i, image in enumerate(images):
            args = (image[None],) if codes is None else (image[None], codes[i:i + 1])
            if i == 0:
                net(*args)  # warm-up
            start = time.perf_counter()
            output = np.asarray(net(*args))
            times.append(time.perf_counter() - start)
            if net is tflite_net:
                outputs.append(output[0])
    diff = np.abs(np.stack(outputs) - reference)
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "latency_s": float(np.median(tflite_times)),
            "keras_latency_s": float(np.median(keras_times))}


def export_tflite(generators, size_divisor, config, output_dir, quantize=("float16",),
                  sample_images=None, verify=True, verify_count=4, code_generators=None):
    """Writes each generator as .tflite files under `output_dir/tflite/`, checked.

    Files are named `<generator>_<float32|float16|dynamic|int8>.tflite`; the
    config.json beside them holds the run config and, under `export`, the
    size divisor and each file's direction, quantization, size, and error and
    latency against Keras.

    Args:
        generators: ordered {name: keras.Model}, as for `export_generators`.
        size_divisor: what input sizes must be multiples of.
        config: the run's resolved config.
        output_dir: the model's base path, e.g. export/facades.
        quantize: QUANTIZATIONS to write.
        sample_images: {generator name: float32 [N, S, S, C] in [-1, 1]} of
            real input-domain images (see `load_sample_images`). The first
            `verify_count` verify; the others (all, if there are no others)
            calibrate int8. A generator without them is verified on smooth
            random images of the run's crop_size, and cannot be int8.
        verify: compare each file to Keras and fail above TOLERANCES.
        verify_count: images each file is verified on.
        code_generators: a multimodal method's {name: keras.Model([images, codes])}: those
            names are converted with their code as a second input, `codes` [N, latent_dim].

    Returns:
        The `export` section written to config.json.

    Raises:
        VerificationError: a file differs from Keras beyond its tolerance.
    """
    from tfi2i.export.savedmodel import VerificationError

    quantize = list(quantize)
    unknown = [q for q in quantize if q not in QUANTIZATIONS]
    if unknown:
        raise UserError(f"Unknown --quantize {', '.join(unknown)}; use any of "
                        f"{', '.join(QUANTIZATIONS)}.")
    sample_images = sample_images or {}
    if "int8" in quantize:
        missing = [name for name in generators if name not in sample_images]
        if missing:
            raise UserError(f"int8 quantization needs calibration images of the input domain "
                            f"of {', '.join(missing)}; pass --sample_images=FOLDER.")
    size = round_up(int(config.get("crop_size", 256)), size_divisor)
    folder = os.path.join(os.fspath(output_dir), "tflite")
    os.makedirs(folder, exist_ok=True)
    info = config_beside(folder).get("export", {})
    info.update({"format": "tflite", "size_divisor": int(size_divisor),
                 "tensorflow": tf.__version__})
    files = info.setdefault("files", {})

    code_generators = dict(code_generators or {})
    for name, generator in generators.items():
        generator = code_generators.get(name, generator)
        channels = generator.inputs[0].shape[-1]
        images = sample_images.get(name)
        real = images is not None
        if not real:
            images = synthetic_images(verify_count, size, channels)
        check = images[:verify_count]
        calibration = images[verify_count:] if len(images) > verify_count else images
        for q in quantize:
            filename = f"{name}_{FILE_TAGS[q]}.tflite"
            path = os.path.join(folder, filename)
            data = convert(generator, q, calibration if real else None)
            entry = {"direction": name, "quantize": q, "bytes": len(data),
                     "input": f"float32 [N, H, W, {channels}] in [-1, 1], H and W multiples "
                              f"of {size_divisor}"}
            if name in code_generators:
                entry["latent_dim"] = int(generator.inputs[1].shape[-1])
                entry["input"] += f"; codes float32 [N, {entry['latent_dim']}], N(0, I)"
            # Checked under a temporary name and renamed only when it passed: a file that
            # fails never replaces the one (verified) that config.json describes.
            with atomic_path(path) as unverified:
                with open(unverified, "wb") as f:
                    f.write(data)
                if verify:
                    entry.update(compare(unverified, generator, check))
                    entry["verified_on"] = (f"{len(check)} {check.shape[1]}x{check.shape[2]} "
                                            f"{'real' if real else 'synthetic'} images")
                    for metric, limit in TOLERANCES[q].items():
                        if not entry[metric] <= limit:
                            raise VerificationError(
                                f"{filename} differs from the Keras generator: {metric} "
                                f"{entry[metric]:.3g} > {limit} ({q}); {path} was not "
                                "written.")
            files[filename] = entry
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump({**config, "export": info}, f, indent=2, sort_keys=True)
    return info

