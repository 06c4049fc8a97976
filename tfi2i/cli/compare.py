"""tfi2i-compare: train several methods (or presets) alike and score them side by side.

    tfi2i-compare --runs=cyclegan,cyclegan:gan_only,cyclegan:cycle_only,pix2pix \\
        --data_dir=../shared/data/facades --directions=BtoA,AtoB --crop_size=128 \\
        --max_steps=2000 --output=compare/facades

Each entry of --runs is a method, or `method:preset` (a named preset of the method, e.g.
CycleGAN's ablations). Every entry trains on the same data for the same --max_steps at
--crop_size (`OUTPUT/runs/<entry>`); a run that already exists there is reused (resumed to
the budget, or taken as it is when it has reached it). Methods that translate both ways
(CycleGAN and the like) train once and are scored in both directions (their two
generators); one-way methods (pix2pix, the paired upper bound; SimGAN) train one run per
direction. Paired data are read as two unpaired domains for the
unpaired methods, so they never see a pair.

Scoring is one protocol for every entry: the test split at --crop_size (bicubic resize, as
the test-time pipeline), translated and saved as PNG under OUTPUT/images/<direction>/<entry>/,
then FID and KID against the real images of the target domain (OUTPUT/images/<direction>/
target/, the standard FID Inception weights), beside the untranslated inputs' scores (the
row "input (untranslated)": the baseline every method must beat). With --metrics=seg, the
translations of --seg_direction (whose inputs are label maps, facades: BtoA) also get the
FCN-score (the facades segmenter of `tfi2i-eval --metrics=seg`).

Writes OUTPUT/table.md (one row per entry, one column group per direction),
OUTPUT/table.json (every number, with each run's directory and key options) and, per
direction, the result pages of `tfi2i-report` (OUTPUT/report/<direction>/index.html: input |
each entry's output | target, and study.html, the real-vs-fake study).
"""

import os
import re

import numpy as np

from tfi2i.cli.common import run_main
from tfi2i.errors import UserError
from tfi2i.files import atomic_path, write_json_atomic
from tfi2i.options import Option

DIRECTIONS = ("AtoB", "BtoA")
BASELINE = "input (untranslated)"

OPTIONS = (
    Option("runs", list, None, "Entries to compare: method or method:preset, e.g. "
           "cyclegan,cyclegan:gan_only,pix2pix.", required=True),
    Option("dataset", str, None, "A named dataset (see tfi2i-train)."),
    Option("data_dir", str, None, "A dataset folder (paired AB files, or trainA/ trainB/ ...).",
           must_exist=True),
    Option("output", str, None, "Where the runs, images and tables go.", required=True),
    Option("directions", list, ["AtoB", "BtoA"], "Directions to score; unpaired methods "
           "train with the first as their data direction.", choices=DIRECTIONS),
    Option("max_steps", int, None, "Training steps of every run (the shared budget).",
           min=1, required=True),
    Option("crop_size", int, 128, "Training crop and test-time size of every run.", min=1),
    Option("load_size", int, None, "Training resize before the crop (default: crop_size * "
           "286 / 256, the reference's jitter ratio).", min=1),
    Option("hparams", str, None, "More options for every run, key=value pairs (platform "
           "options, or options all entries' methods have), e.g. ngf=32,lr_policy=constant."),
    Option("split", str, "test", "The split to translate and score."),
    Option("metrics", list, ["fid", "kid"], "Scores of each direction.",
           choices=("fid", "kid", "seg")),
    Option("seg_direction", str, None, "metric seg: the direction whose inputs are label maps "
           "(facades: BtoA).", choices=DIRECTIONS),
    Option("fid_weights", str, None, "FID Inception weights file (default: "
           "$TFI2I_FID_WEIGHTS, else the cache)."),
    Option("segmenter", str, None, "metric seg: a .keras file or SavedModel (default: the "
           "facades segmenter in the cache).", must_exist=True),
)


def check(args, explicit):
    if bool(args.dataset) == bool(args.data_dir):
        raise UserError("Pass one of --dataset and --data_dir.")
    if "seg" in args.metrics and not args.seg_direction:
        raise UserError("--metrics=seg needs --seg_direction, the direction whose inputs are "
                        "label maps (facades: BtoA).")
    if len(set(args.runs)) != len(args.runs):
        raise UserError(f"--runs lists an entry twice: {','.join(args.runs)}.")
    for entry in args.runs:
        parse_entry(entry)


def parse_entry(entry):
    """"method" or "method:preset" -> (method, preset or None), checked against the registry."""
    from tfi2i.config import load_preset
    from tfi2i.methods import get_method

    method, _, preset = entry.partition(":")
    get_method(method)
    if preset and preset not in load_preset(method)["presets"]:
        presets = sorted(load_preset(method)["presets"])
        raise UserError(f"--runs entry {entry!r}: {preset!r} is not a preset of {method} "
                        f"({', '.join(presets) if presets else 'it has none'}).")
    return method, preset or None


def entry_name(entry):
    """A folder name for an entry: cyclegan:gan_only -> cyclegan_gan_only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", entry)


def plan_runs(args):
    """[(entry, run name, method, preset, train direction, scored directions)], in order.

    A method that translates both ways trains once (data direction: the first of
    --directions) and is scored in every direction; a one-way method (pix2pix, SimGAN,
    DTN) trains once per direction.
    """
    from tfi2i.methods import get_method

    plan = []
    for entry in args.runs:
        method, preset = parse_entry(entry)
        if not get_method(method).bidirectional:
            for direction in args.directions:
                plan.append((entry, f"{entry_name(entry)}_{direction}", method, preset,
                             direction, [direction]))
        else:
            plan.append((entry, entry_name(entry), method, preset, args.directions[0],
                         list(args.directions)))
    return plan


def run_config(args, method, preset, direction, run_dir):
    """The resolved config of one run of the comparison."""
    from tfi2i.config import parse_hparams, resolve_config
    from tfi2i.data import has_split
    from tfi2i.methods import get_method

    overrides = dict(parse_hparams(args.hparams) if args.hparams else {})
    overrides.update(preset=preset, data_dir=args.data_dir, direction=direction,
                     crop_size=args.crop_size, max_steps=args.max_steps, run_dir=run_dir,
                     load_size=args.load_size or round(args.crop_size * 286 / 256))
    root = args.data_dir
    if root and not get_method(method).paired and not has_split(root, "train", paired=False):
        overrides["unpaired"] = True  # Paired files, read as two domains.
    return resolve_config(method, args.dataset, overrides)


def test_images(root, split, size):
    """{"A": (names, uint8 images), "B": ...}: each domain of the split once, at size x size.

    Paired AB files give both halves of each file (named alike); unpaired folders their
    own images. Read by the test-time pipeline (bicubic resize, no crop).
    """
    from tfi2i.data import has_split, make_dataset, scan_unpaired

    unpaired = not has_split(root, split, paired=False)
    examples = scan_unpaired(root, split, unpaired=unpaired)
    data = make_dataset(root, split, paired=False, unpaired=unpaired, training=False,
                        batch_size=8, load_size=size, crop_size=size, direction="AtoB")
    a, b = [], []
    for batch_a, batch_b in data:
        a.append(batch_a.numpy())
        b.append(batch_b.numpy())
    out = {}
    # The shorter domain wraps round in the stream: take each image once.
    for key, domain, batches in (("A", examples.a, a), ("B", examples.b, b)):
        images = np.concatenate(batches)[:len(domain)]
        names = [os.path.splitext(os.path.basename(p))[0] for p in domain.paths]
        out[key] = (names, to_uint8(images))
    return out


def to_uint8(images):
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def save_images(folder, names, images):
    """Writes images as NAME.png, each atomically."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for name, image in zip(names, images):
        if image.shape[-1] == 1:
            image = image[..., 0]
        with atomic_path(os.path.join(folder, name + ".png")) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")


def translate_all(generator, images, batch_size=8):
    """uint8 images through a [-1, 1] generator, in batches -> uint8 images."""
    import tensorflow as tf

    outputs = []
    for start in range(0, len(images), batch_size):
        x = tf.constant(images[start:start + batch_size], tf.float32) / 127.5 - 1.0
        outputs.append(to_uint8(tf.cast(generator(x, training=False), tf.float32).numpy()))
    return np.concatenate(outputs)


def score(args, folder, target_dir, label_dir=None):
    """The --metrics of the images in `folder` against `target_dir` (and seg on label_dir)."""
    from tfi2i.cli.eval import ScoreOptions, evaluate_folders

    options = ScoreOptions(fid_weights=args.fid_weights, segmenter=args.segmenter)
    results = {}
    fid_kid = [m for m in args.metrics if m in ("fid", "kid")]
    if fid_kid:
        results.update(evaluate_folders(fid_kid, folder, target_dir, options=options))
    if label_dir:
        seg = evaluate_folders(["seg"], folder, label_dir=label_dir, options=options)
        results.update({k: v for k, v in seg.items() if k.startswith("seg_")})
    return {k: v for k, v in results.items() if k not in ("real", "fake")}


def markdown_table(rows, directions, metrics):
    """One row per entry, one column group (FID, KID, seg) per direction."""
    columns = []
    for direction in directions:
        for metric in metrics:
            columns.append((direction, metric))
    header = "| entry | " + " | ".join(f"{d} {m.upper() if m != 'seg' else 'seg class IoU'}"
                                       for d, m in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    keys = {"fid": "fid", "kid": "kid", "seg": "seg_class_iou"}
    for name, scores in rows.items():
        cells = []
        for direction, metric in columns:
            value = scores.get(direction, {}).get(keys[metric])
            cells.append("" if value is None else f"{value:.4g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_report(args, direction, runs, rows):
    """OUTPUT/report/<direction>/: the side-by-side pages and the real-vs-fake study."""
    from tfi2i.report.build import write_report

    names = [name for name, run in runs.items() if direction in rows[run["entry"]]
             and rows[run["entry"]][direction].get("run") == name]
    if not names:
        return
    run_dirs = [runs[name]["run_dir"] for name in names]
    scores = {runs[name]["run_dir"]: {k: v for k, v in rows[runs[name]["entry"]][direction].items()
                                      if isinstance(v, (int, float))} for name in names}
    write_report(run_dirs, os.path.join(args.output, "report", direction),
                 labels=[runs[name]["entry"] for name in names], direction=direction,
                 split=args.split, extra_metrics=scores, progress=None,
                 title=f"tfi2i-compare, {direction}")


def compare(args):
    """Trains, translates and scores every entry; returns the table as a dict."""
    from tfi2i.data import resolve_dataset
    from tfi2i.training.trainer import train

    root = resolve_dataset(args.dataset, args.data_dir)
    if not isinstance(root, str):
        raise UserError("tfi2i-compare reads folders; a tfds: dataset is not supported here.")
    images_dir = os.path.join(args.output, "images")
    domains = test_images(root, args.split, args.crop_size)
    rows, runs = {BASELINE: {}}, {}
    for direction in args.directions:
        source, target = ("A", "B") if direction == "AtoB" else ("B", "A")
        names, inputs = domains[source]
        save_images(os.path.join(images_dir, direction, "input"), names, inputs)
        save_images(os.path.join(images_dir, direction, "target"), *domains[target])

    def dirs(direction):
        base = os.path.join(images_dir, direction)
        label = (os.path.join(base, "input")
                 if "seg" in args.metrics and direction == args.seg_direction else None)
        return os.path.join(base, "target"), label

    for direction in args.directions:
        rows[BASELINE][direction] = score(args, os.path.join(images_dir, direction, "input"),
                                          *dirs(direction))
    for entry, name, method, preset, train_direction, scored in plan_runs(args):
        run_dir = os.path.join(args.output, "runs", name)
        config = run_config(args, method, preset, train_direction, run_dir)
        print(f"== {name}: training to step {args.max_steps} in {run_dir}", flush=True)
        # --max_steps is this command's budget: an existing run continues to it (its saved
        # max_steps would otherwise win on resume).
        model = train(config, explicit_keys=("max_steps",))
        if model.ema is not None:
            model.ema.copy_to_weights()  # Scored as exported: the averaged generators.
        runs[name] = {"entry": entry, "run_dir": run_dir, "method": method, "preset": preset,
                      "steps": int(model.step.numpy()),
                      "options": {k: config[k] for k in model.option_names()}}
        row = rows.setdefault(entry, {})
        for direction in scored:
            source = "A" if direction == "AtoB" else "B"
            folder = os.path.join(images_dir, direction, name)
            names, inputs = domains[source]
            save_images(folder, names, translate_all(model.generators[direction], inputs))
            row[direction] = {**score(args, folder, *dirs(direction)), "run": name}
        del model
    for direction in args.directions:
        _write_report(args, direction, runs, rows)
    table = {"data": root, "split": args.split, "size": args.crop_size,
             "max_steps": args.max_steps, "directions": list(args.directions),
             "metrics": list(args.metrics), "runs": runs, "scores": rows}
    write_json_atomic(os.path.join(args.output, "table.json"), table)
    text = (f"Test split `{args.split}` of {root} at {args.crop_size} px, {args.max_steps} "
            "training steps per run.\n\n" + markdown_table(rows, args.directions, args.metrics))
    with atomic_path(os.path.join(args.output, "table.md")) as tmp, open(tmp, "w") as f:
        f.write(text)
    return table, text


def main(args, explicit):
    from tfi2i.cli.common import quiet_absl_logging

    quiet_absl_logging()
    _, text = compare(args)
    print(text)
    print(f"Wrote {os.path.join(args.output, 'table.md')} and table.json.")


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check)


if __name__ == "__main__":
    run()
