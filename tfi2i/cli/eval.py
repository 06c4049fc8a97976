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

Folders are read with their sub-folders, as training data are (a sub-folder named like a
split, e.g. train/, is an error), in the formats training reads (JPEG, PNG, BMP, GIF, WebP,
TIFF), turned upright by their EXIF orientation (--noexif_orientation: as stored, as the
reference FID code reads them). An unreadable file stops the run, named;
--skip_bad_images leaves such files out with a warning. KID: when both sets are no larger
than --kid_subset_size every subset is the whole of both sets, so KID is computed once
and kid_std is n/a (null in the JSON), with kid_note saying why.

A multimodal model's diversity: K translations of each of the first --diversity_inputs
inputs (a new code each), and the mean pairwise distance of the K, in pixels (L1 as a
fraction of the range) and in Inception features (see tfi2i.metrics.diversity). A model
with one output per input scores 0:

    tfi2i-eval --model=runs/bicycle_facades --data_dir=../shared/data/facades \
        --metrics=fid,diversity --num_samples=10

FID/KID need the FID Inception weights: `tfi2i-eval --fetch_weights` (or
`python -m tfi2i.metrics.weights --fetch`) downloads and verifies them once.
"""

import dataclasses
import json
import math
import os

import numpy as np

from tfi2i.cli.common import quiet_absl_logging, run_main
from tfi2i.errors import UserError
from tfi2i.options import Option

ALL_METRICS = ("fid", "kid", "psnr", "ssim", "l1", "seg", "diversity")
PAIRED_METRICS = ("psnr", "ssim", "l1")
_HALVES = ("none", "left", "right")

OPTIONS = (
    Option("real_dir", str, None, "Folder of real (reference) images.", must_exist=True),
    Option("fake_dir", str, None, "Folder of generated images to score against --real_dir.",
           must_exist=True),
    Option("real_half", str, "none", "Take this half of each --real_dir image (side-by-side AB "
           "files).", choices=_HALVES),
    Option("fake_half", str, "none", "Take this half of each --fake_dir image.", choices=_HALVES),
    Option("label_dir", str, None, "Folder mode, metric seg: colour label maps, paired with "
           "--fake_dir files by name.", must_exist=True),
    Option("label_half", str, "none", "Take this half of each --label_dir image.",
           choices=_HALVES),
    Option("model", str, None, "A run directory, an export directory or a .tflite file.",
           must_exist=True),
    Option("data_dir", str, None, "Dataset folder for --model (see --help).", must_exist=True),
    Option("split", str, "test", "Split of --data_dir to translate and score."),
    Option("direction", str, None, "Translation direction (default: the model's config, else "
           "AtoB).", choices=("AtoB", "BtoA")),
    Option("metrics", list, ["fid", "kid", "psnr", "ssim", "l1"], "Metrics to compute.",
           choices=ALL_METRICS),
    Option("num_samples", int, 10, "metric diversity: translations (codes) per input.",
           min=2),
    Option("diversity_inputs", int, 50, "metric diversity: how many inputs (the split's "
           "first).", min=1),
    Option("diversity_spaces", list, ["pixel", "inception"], "metric diversity: where "
           "distances are measured (inception needs the FID weights).",
           choices=("pixel", "inception")),
    Option("seed", int, None, "Seeds a multimodal model's codes (default: a new draw)."),
    Option("batch_size", int, 16, "Images per forward pass.", min=1),
    Option("fid_weights", str, None, "FID Inception weights file (default: $TFI2I_FID_WEIGHTS, "
           "else the cache)."),
    Option("fetch_weights", bool, False, "Download and verify the FID weights first (to "
           "--fid_weights or the default path); alone, only that."),
    Option("kid_subsets", int, 100, "KID: number of random subsets.", min=1),
    Option("kid_subset_size", int, 1000, "KID: subset size (capped at the set sizes).", min=2),
    Option("segmenter", str, None, "metric seg: a .keras file or SavedModel (default: the "
           "facades segmenter in the cache).", must_exist=True),
    Option("seg_palette", str, "facades", "metric seg: colours of the label maps.",
           choices=("facades", "cityscapes")),
    Option("save_dir", str, None, "Model mode: also write the translations here (PNG)."),
    Option("json_out", str, None, "Also write the JSON result to this file."),
    Option("cache", bool, True, "Cache Inception features of folders (keyed by file names, "
           "sizes and mtimes)."),
    Option("skip_bad_images", bool, False, "Leave out image files that cannot be read, with a "
           "warning naming them, instead of stopping at the first."),
    Option("exif_orientation", bool, True, "Turn photos upright by their EXIF orientation tag, "
           "as training and translation do; --noexif_orientation reads the pixels as stored, "
           "as the reference FID code does."),
)


def check(args, explicit):
    """Checks which options go together, before anything is loaded."""
    folder_mode = args.real_dir or args.fake_dir
    model_mode = args.model or args.data_dir
    if folder_mode and model_mode:
        raise UserError("Pass either --real_dir/--fake_dir or --model/--data_dir, not both.")
    if not args.metrics:
        raise UserError(f"--metrics is empty: choose from {','.join(ALL_METRICS)}.")
    if folder_mode and (not args.fake_dir or (not args.real_dir and args.metrics != ["seg"])):
        raise UserError("--real_dir and --fake_dir go together (only --metrics=seg works "
                        "without --real_dir; see --help).")
    if model_mode and not (args.model and args.data_dir):
        raise UserError("--model and --data_dir go together (see --help).")
    if folder_mode and "diversity" in args.metrics:
        raise UserError("--metrics=diversity translates each input several times: it needs "
                        "--model and --data_dir, not folders.")
    if not (folder_mode or model_mode or args.fetch_weights):
        raise UserError("Nothing to evaluate: pass --real_dir and --fake_dir, or --model and "
                        "--data_dir (see --help).")


@dataclasses.dataclass(frozen=True)
class ScoreOptions:
    """How the scores are computed, in both modes; the fields are the flags of the same names.

    Attributes:
        fid_weights: FID Inception weights file (None: `$TFI2I_FID_WEIGHTS`, else the cache).
        batch_size: images per forward pass (translation and Inception).
        kid_subsets, kid_subset_size: KID's random subsets.
        cache: cache the Inception features of folders.
        segmenter: metric seg: a .keras file or SavedModel (None: the cached facades one).
        seg_palette: metric seg: the label maps' colours ("facades" or "cityscapes").
        skip_bad_images: leave unreadable image files out (with a warning) instead of raising.
        exif_orientation: turn photos upright by their EXIF orientation tag.
        num_samples, diversity_inputs, diversity_spaces: metric diversity (see the flags).
    """
    fid_weights: str | None = None
    batch_size: int = 16
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cache: bool = True
    segmenter: str | None = None
    seg_palette: str = "facades"
    skip_bad_images: bool = False
    exif_orientation: bool = True
    num_samples: int = 10
    diversity_inputs: int = 50
    diversity_spaces: tuple = ("pixel", "inception")


def _half(value):
    return None if value in (None, "none") else value


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def pair_by_name(fake_paths, other_paths, what, fake_root=None, other_root=None):
    """Pairs (fake, other) by file stem; every fake must find its partner.

    With the folders the paths are in (`fake_root`, `other_root`), by the path below
    the folder without extension: outputs of `tfi2i-translate` keep their inputs'
    sub-folders.
    """
    def key(path, root):
        return _stem(path) if root is None else os.path.splitext(os.path.relpath(path, root))[0]

    others = {key(p, other_root): p for p in other_paths}
    missing = [os.path.relpath(p, fake_root) if fake_root else os.path.basename(p)
               for p in fake_paths if key(p, fake_root) not in others]
    if missing:
        raise UserError(f"{len(missing)} generated images have no {what} of the same name "
                        f"(e.g. {missing[:3]}); name them alike to pair them.")
    return [(p, others[key(p, fake_root)]) for p in fake_paths]


def folder_images(folder, options):
    """The usable images of `folder` and its sub-folders, as training data are listed.

    Every file's header is checked up front: an unreadable one stops the run with its
    name, or with `options.skip_bad_images` is left out with a warning.
    """
    from tfi2i.data.decode import check_images
    from tfi2i.metrics.fid import FeatureExtractor

    return [info.path for info in check_images(
        FeatureExtractor.folder_images(folder), folder, options.skip_bad_images,
        options.exif_orientation)]


def _load(path, half, exif_orientation=True):
    from tfi2i.metrics.fid import decode_image_file

    return decode_image_file(path, _half(half), exif_orientation).numpy()


def _segmentation(options):
    """(a SegmentationScore, the label-map decoder) for metric seg."""
    from tfi2i.metrics import segmentation

    label_maps = segmentation.LabelMaps(options.seg_palette)
    segmenter = segmentation.load_segmenter(options.segmenter)
    score = segmentation.SegmentationScore(segmenter, label_maps.num_classes, label_maps.classes)
    return score, label_maps


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


def _feature_extractor(options):
    from tfi2i.metrics.fid import FeatureExtractor

    return FeatureExtractor(weights=options.fid_weights, batch_size=options.batch_size)


def _fid_kid(metrics, real, fake, options):
    from tfi2i.metrics import fid as fid_lib

    out = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    if "fid" in metrics:
        out["fid"] = fid_lib.fid_from_features(real, fake)
    if "kid" in metrics:
        # kid_std is None when both sets fit in one subset: no spread to estimate.
        out["kid"], out["kid_std"] = fid_lib.kid_from_features(
            real, fake, options.kid_subsets, options.kid_subset_size)
        note = fid_lib.kid_spread_note(real.shape[0], fake.shape[0], options.kid_subset_size)
        if note:
            out["kid_note"] = note
    return out


def evaluate_folders(metrics, fake_dir, real_dir=None, real_half=None, fake_half=None,
                     label_dir=None, label_half=None, options=ScoreOptions()):
    """Scores of the images in `fake_dir` against `real_dir` (and `label_dir` for seg).

    Args:
        metrics: names from `ALL_METRICS`.
        fake_dir: the generated images.
        real_dir: the real images (None only for seg alone). Paired metrics pair files by
            name without extension.
        real_half, fake_half, label_half: "left" or "right" takes that half of each image
            (side-by-side AB files); None (or "none") the whole image.
        label_dir: metric seg: colour label maps, paired with `fake_dir` files by name.
        options: a `ScoreOptions`.

    Returns:
        {name: value}, with `real` and `fake` the folders.
    """
    from tfi2i.metrics import image as image_lib

    results = {"real": real_dir, "fake": fake_dir}  # real is None for seg only
    real_half, fake_half = _half(real_half), _half(fake_half)
    exif = options.exif_orientation
    fake_paths = folder_images(fake_dir, options)
    if "fid" in metrics or "kid" in metrics:
        extractor = _feature_extractor(options)
        real = extractor.from_folder(real_dir, real_half, cache=options.cache,
                                     skip_bad_images=options.skip_bad_images,
                                     exif_orientation=exif)
        fake = extractor.from_folder(fake_dir, fake_half, cache=options.cache,
                                     skip_bad_images=options.skip_bad_images,
                                     exif_orientation=exif)
        results.update(_fid_kid(metrics, real, fake, options))
    if any(m in metrics for m in PAIRED_METRICS):
        pairs = pair_by_name(fake_paths, folder_images(real_dir, options), "real image",
                             fake_dir, real_dir)
        means = image_lib.PairedMeans(max_val=255.0)
        for fake_path, real_path in pairs:
            a, b = _load(fake_path, fake_half, exif), _load(real_path, real_half, exif)
            if a.shape != b.shape:
                raise UserError(f"{fake_path} is {a.shape[1]}x{a.shape[0]} but {real_path} "
                                f"is {b.shape[1]}x{b.shape[0]}; paired metrics need equal "
                                f"sizes (--real_half/--fake_half?).")
            means.update(a[None], b[None])
        results.update(_paired_results(metrics, means))
        results["n_pairs"] = len(pairs)
    if "seg" in metrics:
        if not label_dir:
            raise UserError("--metrics=seg in folder mode needs --label_dir (colour label "
                            "maps named like the --fake_dir files).")
        score, decode = _segmentation(options)
        for fake_path, label_path in pair_by_name(fake_paths, folder_images(label_dir, options),
                                                  "label map", fake_dir, label_dir):
            labels = decode(_load(label_path, label_half, exif))
            score.update(_load(fake_path, fake_half, exif)[None], labels[None])
        results.update(_seg_results(score))
    return results


def _diversity(translate, inputs, options, extractor):
    """{diversity_<space>, diversity_<space>_std, diversity_k, diversity_inputs}: K
    translations of each input, a new code each (0 for a model with one output per input)."""
    from tfi2i.metrics.diversity import mean_pairwise_distance

    k = options.num_samples
    sample_sets = []
    for start in range(0, len(inputs), options.batch_size):
        chunk = inputs[start:start + options.batch_size]
        samples = [translate(chunk) for _ in range(k)]
        sample_sets += [np.stack([np.asarray(s[i]) for s in samples]) for i in range(len(chunk))]
    results = {"diversity_k": k, "diversity_inputs": len(sample_sets)}
    for space in options.diversity_spaces:
        score = mean_pairwise_distance(sample_sets, space=space,
                                       extractor=extractor if space == "inception" else None)
        results[f"diversity_{space}"] = score["diversity"]
        results[f"diversity_{space}_std"] = score["diversity_std"]
    return results


def load_translator(path, seed=None):
    """`tfi2i.load(path)` (the export package's loader), imported only when needed."""
    try:
        import tfi2i

        load = getattr(tfi2i, "load", None)
        if load is None:
            from tfi2i.export import load
    except ImportError as error:
        raise UserError(f"--model needs tfi2i's export package (tfi2i.load), which is not "
                        f"available in this install: {error}") from error
    return load(path, seed=seed)


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


def evaluate_model(metrics, translator, data_dir, split="test", direction=None, save_dir=None,
                   options=ScoreOptions()):
    """Translate a split of `data_dir` with `translator` and score the translations.

    Args:
        metrics: names from `ALL_METRICS`.
        translator: what `tfi2i.load` returns: `translate(uint8 images[, direction])` ->
            uint8 images, with optional `config` and `directions`.
        data_dir: the dataset root; `split` holds AB files (paired) or `splitA`/`splitB`
            folders (unpaired: FID/KID only).
        direction: "AtoB" or "BtoA" (None: the translator's config, else AtoB).
        save_dir: also write the translations here (PNG), if given.
        options: a `ScoreOptions`.

    Returns:
        {name: value}, with the data_dir, split and direction used.
    """
    from tfi2i.metrics import image as image_lib

    exif = options.exif_orientation
    config = getattr(translator, "config", None) or {}
    direction = direction or config.get("direction") or "AtoB"
    directions = getattr(translator, "directions", [])
    net_direction = direction if direction in directions else None
    kind, where = find_split(data_dir, split)
    results = {"data_dir": data_dir, "split": split, "direction": direction}
    want_fid = "fid" in metrics or "kid" in metrics
    want_diversity = "diversity" in metrics
    extractor = (_feature_extractor(options) if want_fid or (
        want_diversity and "inception" in options.diversity_spaces) else None)
    diversity_inputs = []
    batch_size = options.batch_size
    fake_features = []

    def translate(inputs):
        if net_direction:
            return translator.translate(inputs, direction=net_direction)
        return translator.translate(inputs)

    if kind == "unpaired":
        skipped = [m for m in metrics if m in PAIRED_METRICS or m == "seg"]
        if skipped:
            print(f"note: {skipped} need paired data; {data_dir} is unpaired, skipped.")
        source, target = where if direction == "AtoB" else where[::-1]
        paths = folder_images(source, options)
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            inputs = [_load(p, None, exif) for p in chunk]
            diversity_inputs += inputs[:options.diversity_inputs - len(diversity_inputs)]
            outputs = translate(inputs)
            if want_fid:
                fake_features.append(extractor.from_images(outputs))
            if save_dir:
                _save(outputs, chunk, save_dir)
        if want_fid:
            real = extractor.from_folder(target, None, cache=options.cache,
                                         skip_bad_images=options.skip_bad_images,
                                         exif_orientation=exif)
            results.update(_fid_kid(metrics, real, np.concatenate(fake_features), options))
        if want_diversity:
            results.update(_diversity(translate, diversity_inputs, options, extractor))
        return results

    # Paired AB files: A = left half, B = right half.
    input_half, target_half = ("left", "right") if direction == "AtoB" else ("right", "left")
    paths = folder_images(where, options)
    means = image_lib.PairedMeans(max_val=255.0)
    want_paired = any(m in metrics for m in PAIRED_METRICS)
    seg = decode = None
    if "seg" in metrics:
        seg, decode = _segmentation(options)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        inputs = [_load(p, input_half, exif) for p in chunk]
        targets = [_load(p, target_half, exif) for p in chunk]
        diversity_inputs += inputs[:options.diversity_inputs - len(diversity_inputs)]
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
        if save_dir:
            _save(outputs, chunk, save_dir)
    if want_paired:
        results.update(_paired_results(metrics, means))
    results["n_pairs"] = len(paths)
    if want_fid:
        real = extractor.from_folder(where, target_half, cache=options.cache,
                                     skip_bad_images=options.skip_bad_images,
                                     exif_orientation=exif)
        results.update(_fid_kid(metrics, real, np.concatenate(fake_features), options))
    if seg is not None:
        results.update(_seg_results(seg))
    if want_diversity:
        results.update(_diversity(translate, diversity_inputs, options, extractor))
    return results


def format_table(results):
    """The scalar results as an aligned two-column table."""
    rows = [(k, v) for k, v in results.items()
            if isinstance(v, (int, float, str)) or (k == "kid_std" and v is None)]
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        if key == "kid_std" and value is None:
            value = "n/a (see kid_note)"
        elif isinstance(value, float):
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


def main(args, explicit):
    quiet_absl_logging()
    if args.fetch_weights:
        from tfi2i.metrics.weights import fetch_fid_weights

        path = fetch_fid_weights(args.fid_weights)
        print(f"FID Inception weights OK: {path}")
        if not (args.real_dir or args.fake_dir or args.model):
            return
    metrics = args.metrics
    options = ScoreOptions(fid_weights=args.fid_weights, batch_size=args.batch_size,
                           kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                           cache=args.cache, segmenter=args.segmenter,
                           seg_palette=args.seg_palette, skip_bad_images=args.skip_bad_images,
                           exif_orientation=args.exif_orientation,
                           num_samples=args.num_samples, diversity_inputs=args.diversity_inputs,
                           diversity_spaces=tuple(args.diversity_spaces))
    if args.fake_dir:
        results = evaluate_folders(metrics, args.fake_dir, args.real_dir,
                                   real_half=args.real_half, fake_half=args.fake_half,
                                   label_dir=args.label_dir, label_half=args.label_half,
                                   options=options)
    else:
        translator = load_translator(args.model, args.seed)
        results = {"model": args.model, **evaluate_model(
            metrics, translator, args.data_dir, split=args.split, direction=args.direction,
            save_dir=args.save_dir, options=options)}
    results["kid_scale"] = "raw" if "kid" in results else results.get("kid_scale")
    # kid_std stays when None: JSON null, "n/a" in the table (see kid_note).
    results = {k: v for k, v in results.items() if v is not None or k == "kid_std"}
    print(format_table(results))
    line = json.dumps(json_safe(results), allow_nan=False)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(line + "\n")
    print(line)


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check)


if __name__ == "__main__":
    run()
