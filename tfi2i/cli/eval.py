"""tfi2i-eval: score translations with FID/KID, PSNR/SSIM/L1 and the FCN-score.

Two folders (any translations, e.g. from another implementation):

    tfi2i-eval --real_dir=photos/ --fake_dir=outputs/ --metrics=fid,kid
    tfi2i-eval --real_dir=../shared/data/facades/test --real_half=left \\
        --fake_dir=../shared/data/facades/train --fake_half=left --metrics=fid,kid

A model on a dataset's test split (a run directory, an export or a .tflite file):

    tfi2i-eval --model=runs/pix2pix_facades --data_dir=../shared/data/facades \\
        --metrics=fid,kid,psnr,ssim,l1,seg

Paired datasets hold side-by-side "AB" files in <data_dir>/<split>/ (A left, B right; the
input half follows --direction, default the model's config); unpaired ones hold
<data_dir>/<split>A and <split>B. Paired metrics (psnr, ssim, l1) pair files by name (stem);
`seg` needs label maps: the translation inputs in model mode (label -> photo), --label_dir in
folder mode. Prints a table, then one JSON line with every number.

FID/KID need the FID Inception weights: `tfi2i-eval --fetch_weights` (or
`python -m tfi2i.metrics.weights --fetch`) downloads and verifies them once.
"""

import json
import math
import os

import numpy as np
from absl import flags

from tfi2i.cli.common import run_main
from tfi2i.errors import UserError

FLAGS = flags.FLAGS

ALL_METRICS = ("fid", "kid", "psnr", "ssim", "l1", "seg")
PAIRED_METRICS = ("psnr", "ssim", "l1")

flags.DEFINE_string("real_dir", None, "Folder of real (reference) images.")
flags.DEFINE_string("fake_dir", None, "Folder of generated images to score against --real_dir.")
flags.DEFINE_enum("real_half", "none", ["none", "left", "right"],
                  "Take this half of each --real_dir image (side-by-side AB files).")
flags.DEFINE_enum("fake_half", "none", ["none", "left", "right"],
                  "Take this half of each --fake_dir image.")
flags.DEFINE_string("label_dir", None, "Folder mode, metric seg: colour label maps, paired "
                    "with --fake_dir files by name.")
flags.DEFINE_enum("label_half", "none", ["none", "left", "right"],
                  "Take this half of each --label_dir image.")
flags.DEFINE_string("model", None, "A run directory, an export directory or a .tflite file.")
flags.DEFINE_string("data_dir", None, "Dataset folder for --model (see --help).")
flags.DEFINE_string("split", "test", "Split of --data_dir to translate and score.")
flags.DEFINE_enum("direction", None, ["AtoB", "BtoA"],
                  "Translation direction (default: the model's config, else AtoB).")
flags.DEFINE_string("metrics", "fid,kid,psnr,ssim,l1",
                    f"Comma-separated, from {','.join(ALL_METRICS)}.")
flags.DEFINE_integer("batch_size", 16, "Images per forward pass.")
flags.DEFINE_string("fid_weights", None, "FID Inception weights file (default: "
                    "$TFI2I_FID_WEIGHTS, else the cache).")
flags.DEFINE_bool("fetch_weights", False, "Download and verify the FID weights first (to "
                  "--fid_weights or the default path); alone, only that.")
flags.DEFINE_integer("kid_subsets", 100, "KID: number of random subsets.")
flags.DEFINE_integer("kid_subset_size", 1000, "KID: subset size (capped at the set sizes).")
flags.DEFINE_string("segmenter", None, "metric seg: a .keras file or SavedModel (default: "
                    "the facades segmenter in the cache).")
flags.DEFINE_enum("seg_palette", "facades", ["facades", "cityscapes"],
                  "metric seg: colours of the label maps.")
flags.DEFINE_string("save_dir", None, "Model mode: also write the translations here (PNG).")
flags.DEFINE_string("json_out", None, "Also write the JSON result to this file.")
flags.DEFINE_bool("cache", True, "Cache Inception features of folders (keyed by file names, "
                  "sizes and mtimes).")


def parse_metrics(text):
    """Metric names from a comma-separated flag value, validated."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown or not names:
        raise UserError(f"--metrics={text}: unknown {unknown}; choose from "
                        f"{','.join(ALL_METRICS)}")
    return names


def _half(value):
    return None if value == "none" else value


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def pair_by_name(fake_paths, other_paths, what):
    """Pairs (fake, other) by file stem; every fake must find its partner."""
    others = {_stem(p): p for p in other_paths}
    missing = [os.path.basename(p) for p in fake_paths if _stem(p) not in others]
    if missing:
        raise UserError(f"{len(missing)} generated images have no {what} of the same name "
                        f"(e.g. {missing[:3]}); name them alike to pair them.")
    return [(p, others[_stem(p)]) for p in fake_paths]


def _load(path, half):
    from tfi2i.metrics.fid import decode_image_file

    return decode_image_file(path, half).numpy()


def _segmentation(palette_name, segmenter_path):
    from tfi2i.metrics import segmentation
    from tfi2i.metrics.segmentation import decode_label_map

    classes, palette, void = segmentation.PALETTES[palette_name]
    segmenter = segmentation.load_segmenter(segmenter_path)
    score = segmentation.SegmentationScore(segmenter, len(classes), classes)
    return score, lambda colours: decode_label_map(colours, palette, void).numpy()


def _seg_results(score):
    r = score.result()
    return {"seg_pixel_acc": r["pixel_acc"], "seg_class_acc": r["class_acc"],
            "seg_class_iou": r["class_iou"], "seg_per_class_acc": r["per_class_acc"],
            "seg_per_class_iou": r["per_class_iou"], "seg_classes": r["classes"]}


def _paired_results(metrics, means):
    scores = means.result()
    out = {m: scores[m] for m in PAIRED_METRICS if m in metrics}
    if "psnr" in metrics and scores["psnr_inf"]:
        # Identical pairs have infinite PSNR; the mean is over the others.
        out["psnr_inf"] = scores["psnr_inf"]
    return out


def _feature_extractor():
    from tfi2i.metrics.fid import FeatureExtractor

    return FeatureExtractor(weights=FLAGS.fid_weights, batch_size=FLAGS.batch_size)


def _fid_kid(metrics, real, fake):
    from tfi2i.metrics import fid as fid_lib

    out = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    if "fid" in metrics:
        out["fid"] = fid_lib.fid_from_features(real, fake)
    if "kid" in metrics:
        out["kid"], out["kid_std"] = fid_lib.kid_from_features(
            real, fake, FLAGS.kid_subsets, FLAGS.kid_subset_size)
    return out


def evaluate_folders(metrics):
    """Scores of --fake_dir against --real_dir (and --label_dir for seg)."""
    from tfi2i.metrics import image as image_lib
    from tfi2i.metrics.fid import list_images

    results = {"real": FLAGS.real_dir, "fake": FLAGS.fake_dir}  # real is None for seg only
    real_half, fake_half = _half(FLAGS.real_half), _half(FLAGS.fake_half)
    fake_paths = list_images(FLAGS.fake_dir)
    if "fid" in metrics or "kid" in metrics:
        extractor = _feature_extractor()
        real = extractor.from_folder(FLAGS.real_dir, real_half, cache=FLAGS.cache)
        fake = extractor.from_folder(FLAGS.fake_dir, fake_half, cache=FLAGS.cache)
        results.update(_fid_kid(metrics, real, fake))
    if any(m in metrics for m in PAIRED_METRICS):
        pairs = pair_by_name(fake_paths, list_images(FLAGS.real_dir), "real image")
        means = image_lib.PairedMeans(max_val=255.0)
        for fake_path, real_path in pairs:
            a, b = _load(fake_path, fake_half), _load(real_path, real_half)
            if a.shape != b.shape:
                raise UserError(f"{fake_path} is {a.shape[1]}x{a.shape[0]} but {real_path} "
                                f"is {b.shape[1]}x{b.shape[0]}; paired metrics need equal "
                                f"sizes (--real_half/--fake_half?).")
            means.update(a[None], b[None])
        results.update(_paired_results(metrics, means))
        results["n_pairs"] = len(pairs)
    if "seg" in metrics:
        if not FLAGS.label_dir:
            raise UserError("--metrics=seg in folder mode needs --label_dir (colour label "
                            "maps named like the --fake_dir files).")
        score, decode = _segmentation(FLAGS.seg_palette, FLAGS.segmenter)
        for fake_path, label_path in pair_by_name(fake_paths, list_images(FLAGS.label_dir),
                                                  "label map"):
            labels = decode(_load(label_path, _half(FLAGS.label_half)))
            score.update(_load(fake_path, fake_half)[None], labels[None])
        results.update(_seg_results(score))
    return results


def load_translator(path):
    """`tfi2i.load(path)` (the export package's loader), imported only when needed."""
    try:
        import tfi2i

        load = getattr(tfi2i, "load", None)
        if load is None:
            from tfi2i.export import load
    except ImportError as error:
        raise UserError(f"--model needs tfi2i's export package (tfi2i.load), which is not "
                        f"available in this install: {error}") from error
    return load(path)


def find_split(data_dir, split):
    """("paired", folder) or ("unpaired", (folder_a, folder_b)) for a dataset split."""
    if not data_dir or not os.path.isdir(data_dir):
        raise UserError(f"--data_dir {data_dir} is not a folder")
    a, b = os.path.join(data_dir, split + "A"), os.path.join(data_dir, split + "B")
    if os.path.isdir(a) and os.path.isdir(b):
        return "unpaired", (a, b)
    folder = os.path.join(data_dir, split)
    if os.path.isdir(folder):
        return "paired", folder
    raise UserError(f"{data_dir} has neither {split}/ (paired AB files) nor {split}A/ and "
                    f"{split}B/ (unpaired); pass the dataset root and --split.")


def _save(images, names, folder):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for image, name in zip(images, names):
        Image.fromarray(np.asarray(image, np.uint8)).save(
            os.path.join(folder, _stem(name) + ".png"))


def evaluate_model(metrics):
    """Translate the split of --data_dir with --model and score the translations."""
    from tfi2i.metrics import image as image_lib
    from tfi2i.metrics.fid import list_images

    translator = load_translator(FLAGS.model)
    config = getattr(translator, "config", None) or {}
    direction = FLAGS.direction or config.get("direction") or "AtoB"
    directions = getattr(translator, "directions", [])
    net_direction = direction if direction in directions else None
    kind, where = find_split(FLAGS.data_dir, FLAGS.split)
    results = {"model": FLAGS.model, "data_dir": FLAGS.data_dir, "split": FLAGS.split,
               "direction": direction}
    want_fid = "fid" in metrics or "kid" in metrics
    extractor = _feature_extractor() if want_fid else None
    fake_features = []

    def translate(inputs):
        if net_direction:
            return translator.translate(inputs, direction=net_direction)
        return translator.translate(inputs)

    if kind == "unpaired":
        skipped = [m for m in metrics if m in PAIRED_METRICS or m == "seg"]
        if skipped:
            print(f"note: {skipped} need paired data; {FLAGS.data_dir} is unpaired, skipped.")
        source, target = where if direction == "AtoB" else where[::-1]
        paths = list_images(source)
        for start in range(0, len(paths), FLAGS.batch_size):
            chunk = paths[start:start + FLAGS.batch_size]
            outputs = translate([_load(p, None) for p in chunk])
            if want_fid:
                fake_features.append(extractor.from_images(outputs))
            if FLAGS.save_dir:
                _save(outputs, chunk, FLAGS.save_dir)
        if want_fid:
            real = extractor.from_folder(target, None, cache=FLAGS.cache)
            results.update(_fid_kid(metrics, real, np.concatenate(fake_features)))
        return results

    # Paired AB files: A = left half, B = right half.
    input_half, target_half = ("left", "right") if direction == "AtoB" else ("right", "left")
    paths = list_images(where)
    means = image_lib.PairedMeans(max_val=255.0)
    want_paired = any(m in metrics for m in PAIRED_METRICS)
    seg = decode = None
    if "seg" in metrics:
        seg, decode = _segmentation(FLAGS.seg_palette, FLAGS.segmenter)
    for start in range(0, len(paths), FLAGS.batch_size):
        chunk = paths[start:start + FLAGS.batch_size]
        inputs = [_load(p, input_half) for p in chunk]
        targets = [_load(p, target_half) for p in chunk]
        outputs = [np.asarray(o) for o in translate(inputs)]
        for output, target in zip(outputs, targets):
            if output.shape != target.shape:
                raise UserError(f"translation of shape {output.shape} for a target of shape "
                                f"{target.shape}; is --direction right?")
            if want_paired:
                means.update(output[None], target[None])
        if want_fid:
            fake_features.append(extractor.from_images(outputs))
        if seg is not None:
            for output, image in zip(outputs, inputs):
                # Label -> photo: the input is the ground-truth label map of the output.
                seg.update(output[None], decode(image)[None])
        if FLAGS.save_dir:
            _save(outputs, chunk, FLAGS.save_dir)
    if want_paired:
        results.update(_paired_results(metrics, means))
    results["n_pairs"] = len(paths)
    if want_fid:
        real = extractor.from_folder(where, target_half, cache=FLAGS.cache)
        results.update(_fid_kid(metrics, real, np.concatenate(fake_features)))
    if seg is not None:
        results.update(_seg_results(seg))
    return results


def format_table(results):
    """The scalar results as an aligned two-column table."""
    rows = [(k, v) for k, v in results.items() if isinstance(v, (int, float, str))]
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        if isinstance(value, float):
            value = f"{value:.6g}" if math.isfinite(value) else str(value)
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)


def json_safe(value):
    """NaN and infinities become null: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def main(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments {' '.join(argv[1:])}; options are --flags.")
    folder_mode = FLAGS.real_dir or FLAGS.fake_dir
    model_mode = FLAGS.model or FLAGS.data_dir
    if FLAGS.fetch_weights:
        from tfi2i.metrics.weights import fetch_fid_weights

        path = fetch_fid_weights(FLAGS.fid_weights)
        print(f"FID Inception weights OK: {path}")
        if not (folder_mode or model_mode):
            return
    if folder_mode and model_mode:
        raise UserError("Pass either --real_dir/--fake_dir or --model/--data_dir, not both.")
    metrics = parse_metrics(FLAGS.metrics)
    if folder_mode:
        if not FLAGS.fake_dir or (not FLAGS.real_dir and metrics != ["seg"]):
            raise UserError("--real_dir and --fake_dir go together (only --metrics=seg "
                            "works without --real_dir; see --help).")
        results = evaluate_folders(metrics)
    elif model_mode:
        if not (FLAGS.model and FLAGS.data_dir):
            raise UserError("--model and --data_dir go together (see --help).")
        results = evaluate_model(metrics)
    else:
        raise UserError("Nothing to evaluate: pass --real_dir and --fake_dir, or --model and "
                        "--data_dir (see --help).")
    results["kid_scale"] = "raw" if "kid" in results else results.get("kid_scale")
    results = {k: v for k, v in results.items() if v is not None}
    print(format_table(results))
    line = json.dumps(json_safe(results), allow_nan=False)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            f.write(line + "\n")
    print(line)


def run():
    """Console-script entry point: absl.app.run(main), UserErrors as one line."""
    run_main(main)


if __name__ == "__main__":
    run()
