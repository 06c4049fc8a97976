"""What a report shows of its runs: configs, metrics, the shared test inputs and the outputs.

A run directory (written by tfi2i-train) holds `config.json`, `checkpoints/`, and
perhaps metrics: `best/best.json` (training's `--best_metric`) and any other JSON
object of numbers in the run directory itself, such as the one
`tfi2i-eval --model=RUN ... --json_out=RUN/eval.json` writes.

The test inputs are the test split of the runs' data, read by the data pipeline
exactly as validation during training reads it (`make_dataset(training=False)`:
resized to crop_size for resize_and_crop, never cropped or flipped), so each
run translates images at the scale it was trained at. Every run of one report
must read the same inputs; the runs' generators translate them through the
`Translator` that `tfi2i-translate` uses.
"""

import dataclasses
import json
import os
import re

import numpy as np
from absl import logging

from tfi2i.errors import UserError
from tfi2i.files import atomic_path

# Config keys that say how a run was kept, not what it is: left out of the
# "differing options" rows of the report.
HOUSEKEEPING_KEYS = frozenset({
    "run_dir", "cache_dir", "tfds_data_dir", "save_every_steps", "keep_checkpoints",
    "log_every_steps", "sample_every_steps", "val_batches", "validation_freq",
    "eval_every_epochs", "cache_data", "strategy", "skip_bad_images", "size_divisor"})

# The options that decide which test images a run sees, and at which size.
_TEST_GEOMETRY = ("direction", "preprocess", "crop_size", "input_nc", "output_nc")


@dataclasses.dataclass
class Run:
    """One run of a report.

    Attributes:
        path: the run directory.
        label: its name on the pages (unique in the report).
        key: its folder name under images/ (unique, file-name safe).
        config: its config.json.
        metrics: {name: number} found in the run directory.
        checkpoint: the checkpoint path the outputs come from.
        direction: the direction the report translates (set by `report_data`).
    """
    path: str
    label: str
    key: str
    config: dict
    metrics: dict
    checkpoint: str
    direction: str | None = None

    @property
    def step(self):
        """The training step of the checkpoint (ckpt-<step>), or None."""
        match = re.search(r"-(\d+)$", self.checkpoint)
        return int(match.group(1)) if match else None


def safe_name(text, limit=60):
    """`text` as a file-name safe name: letters, digits, `_`, `-` and `.` only."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "x"
    return name[:limit]


def read_runs(paths, labels=None, checkpoint="latest"):
    """The `Run`s of run directories, checked.

    Args:
        paths: run directories (config.json and checkpoints/).
        labels: their names on the pages (default: the folders' names, made
            unique).
        checkpoint: "latest", or "best" for the checkpoint `--best_metric`
            kept in RUN/best/.

    Raises:
        UserError: a path that is not a run directory or has no checkpoint, the
            same run twice, or a wrong number of labels.
    """
    import tensorflow as tf

    from tfi2i.config import read_config

    if not paths:
        raise UserError("No runs given: pass run directories, e.g. tfi2i-report runs/a runs/b "
                        "--output=report/.")
    if labels and len(labels) != len(paths):
        raise UserError(f"--labels has {len(labels)} names for {len(paths)} runs; give one "
                        "per run, in the same order.")
    real = [os.path.realpath(p) for p in paths]
    for i, path in enumerate(real):
        if path in real[:i]:
            raise UserError(f"The run {paths[i]} is given twice; list each run once.")
    runs, keys = [], set()
    for i, path in enumerate(paths):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UserError(f"{path} is not a run directory (no config.json); pass the "
                            "--run_dir of a tfi2i-train run.")
        config = read_config(path)
        folder = os.path.join(path, "best" if checkpoint == "best" else "checkpoints")
        ckpt = tf.train.latest_checkpoint(folder)
        if not ckpt:
            what = ("no best checkpoint (train with --eval_metrics and --best_metric)"
                    if checkpoint == "best" else "no checkpoint yet (train it first)")
            raise UserError(f"The run {path} has {what}.")
        label = labels[i] if labels else os.path.basename(os.path.normpath(path))
        key = safe_name(label)
        while key in keys or key in ("input", "target", "real"):
            key += f"_{i}"
        keys.add(key)
        runs.append(Run(path, label, key, config, read_metrics(path), ckpt))
    seen = [r.label for r in runs]
    if len(set(seen)) != len(seen):
        # Same folder names in different places: the parent makes them distinct.
        for run in runs:
            if seen.count(run.label) > 1:
                run.label = os.path.join(os.path.basename(os.path.dirname(
                    os.path.abspath(run.path))), run.label)
    return runs


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_metrics(run_dir):
    """{"<file>.<key>": number} of the JSON metric files in a run directory.

    Reads RUN/*.json except config.json (e.g. `tfi2i-eval --json_out=RUN/eval.json`)
    and RUN/best/best.json. Entries that are not numbers (paths, per-class lists)
    are left out; a file that is not a JSON object is skipped with a warning.
    """
    files = sorted(n for n in os.listdir(run_dir)
                   if n.endswith(".json") and n != "config.json" and not n.startswith("."))
    paths = [os.path.join(run_dir, n) for n in files]
    best = os.path.join(run_dir, "best", "best.json")
    if os.path.isfile(best):
        paths.append(best)
    metrics = {}
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            logging.warning("Skipping %s: not readable JSON (%s).", path, e)
            continue
        if not isinstance(data, dict):
            logging.warning("Skipping %s: not a JSON object of metrics.", path)
            continue
        prefix = os.path.splitext(os.path.basename(path))[0]
        for key, value in data.items():
            if _number(value):
                metrics[f"{prefix}.{key}"] = value
    return metrics


def differing_keys(configs):
    """Config keys whose values differ between runs (housekeeping left out), sorted."""
    keys = sorted({k for c in configs for k in c} - HOUSEKEEPING_KEYS)
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


# -- the shared test inputs -------------------------------------------------------------

@dataclasses.dataclass
class ReportData:
    """Where a report's test inputs come from: one dataset split, read one way.

    Attributes:
        root: the dataset (a folder, or a TFDS/digits dataset object).
        split: the split's name.
        config: the run config the pipeline options come from.
        paired: True when the split has pairs (each input has its target).
    """
    root: object
    split: str
    config: dict
    paired: bool

    @property
    def description(self):
        c = self.config
        kind = "paired: input and target" if self.paired else "unpaired: no targets"
        return (f"{self.root}, split {self.split}, {c['direction']} ({kind}), "
                f"preprocess {c['preprocess']}, crop_size {c['crop_size']}")


def _identity(root):
    return os.path.realpath(root) if isinstance(root, str) else str(root)


def _test_config(config, direction):
    """The config as the report reads data for it: `direction` (if given) swaps the domains."""
    if not direction or direction == config.get("direction"):
        return config
    return {**config, "direction": direction, "input_nc": config.get("output_nc", 3),
            "output_nc": config.get("input_nc", 3)}


def _geometry(config):
    values = {k: config.get(k) for k in _TEST_GEOMETRY}
    if values["preprocess"] in ("crop", "none"):
        values["crop_size"] = None  # Test images keep their own scale: crop_size is unused.
    return values


def _is_paired(root, split, run):
    """Whether the split has pairs: AB images, or A and B files matched by name.

    Decided by the data, not the method: an unpaired method's run on paired data
    (--unpaired) still gets a target column. Unpaired folders (<split>A/, <split>B/)
    whose files all match by name read as pairs too.
    """
    from tfi2i.data import scan_paired, scan_unpaired

    try:
        scan_paired(root, split)
        return True
    except UserError as paired_error:
        try:
            scan_unpaired(root, split)
            return False
        except UserError as unpaired_error:
            raise UserError(f"Run {run.path}: the {split!r} split of {root} is neither paired "
                            f"({paired_error}) nor unpaired ({unpaired_error}).") from None


def report_data(runs, data_dir=None, split="test", direction=None):
    """The one `ReportData` of all runs; an error if they do not share their test inputs.

    Sets each run's `direction`.

    Args:
        runs: `Run`s.
        data_dir: read this dataset folder instead of each run's own data.
        split: the split to translate.
        direction: translate this way with every run (a run with two generators,
            e.g. CycleGAN, has both ways); default each run's own direction.

    Raises:
        UserError: the runs' data, direction or test-time size differ, or the
            data cannot be read.
    """
    from tfi2i.data import resolve_dataset

    first, first_root = None, None
    for run in runs:
        c = _test_config(run.config, direction)
        run.direction = c["direction"]
        try:
            root = resolve_dataset(c.get("dataset"), data_dir or c.get("data_dir"),
                                   c.get("cache_dir"), tfds_data_dir=c.get("tfds_data_dir"))
        except UserError as e:
            raise UserError(f"Run {run.path}: its data cannot be found ({e}); pass --data_dir "
                            "to point the report at the dataset.") from None
        if first is None:
            first, first_root, first_config = run, root, c
            continue
        if _identity(root) != _identity(first_root):
            raise UserError(f"The runs read different data: {first.path} {first_root}, "
                            f"{run.path} {root}. A report compares outputs of the same test "
                            "inputs: report runs of one dataset (or pass --data_dir).")
        a, b = _geometry(first_config), _geometry(c)
        for key in _TEST_GEOMETRY:
            if a[key] != b[key]:
                raise UserError(f"The runs read the test inputs differently: {key} is "
                                f"{a[key]} in {first.path} but {b[key]} in {run.path}. A "
                                "report compares outputs of the same test inputs: report "
                                f"runs with the same {key}.")
    return ReportData(first_root, split, first_config, _is_paired(first_root, split, first))


def _source_names(data, limit):
    from tfi2i.data import scan_paired, scan_unpaired

    if data.paired:
        examples = scan_paired(data.root, data.split)
        return [os.path.splitext(os.path.basename(p))[0] for p in examples.a_paths[:limit]], None
    domains = scan_unpaired(data.root, data.split)
    source, target = ((domains.b, domains.a) if data.config["direction"] == "BtoA"
                      else (domains.a, domains.b))
    stems = [os.path.splitext(os.path.basename(str(p)))[0] for p in source.paths[:limit]]
    return stems, len(target) if limit is None else min(len(target), limit)


def to_uint8(images):
    """[-1, 1] floats -> uint8 as tfi2i's translator rounds them."""
    from tfi2i.export.translator import to_uint8 as translator_uint8

    return translator_uint8(images)


def write_png(path, image):
    """Writes uint8 [H, W, C] (C = 1 or 3) as a PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_thumbnail(source, path, size):
    """A copy of the image file `source` scaled down to fit `size` x `size` (never up)."""
    from PIL import Image

    with Image.open(source) as image:
        image.load()
        if max(image.size) > size:
            scale = size / max(image.size)
            image = image.resize((max(1, round(image.width * scale)),
                                  max(1, round(image.height * scale))), Image.LANCZOS)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")


@dataclasses.dataclass
class ReportImages:
    """The test images written for a report (paths relative to the report folder).

    Attributes:
        names: one name per input, `<index>_<file stem>`, also the output names.
        inputs: the input image files.
        targets: the target image files (paired data), else None.
        reals: the target domain's test images: the "real" side of the study.
    """
    names: list
    inputs: list
    targets: list | None
    reals: list


def write_test_images(data, out_dir, max_images=None):
    """Writes the test inputs (and targets, or the target domain's images) as PNGs.

    Inputs go to images/input/, targets to images/target/ (paired data), the
    target domain's test images to images/real/ (unpaired data).

    Returns:
        A `ReportImages`.
    """
    from tfi2i.data import make_dataset

    c = data.config
    stems, n_reals = _source_names(data, max_images)
    names = [f"{i:04d}_{safe_name(s)}" for i, s in enumerate(stems)]
    # size_divisor 1: the test images at the run's test-time size; the translator pads
    # them to what each generator needs and crops back.
    ds = make_dataset(data.root, data.split, paired=data.paired, direction=c["direction"],
                      preprocess=c["preprocess"], load_size=c["load_size"],
                      crop_size=c["crop_size"], batch_size=1, training=False, size_divisor=1,
                      input_nc=c["input_nc"], output_nc=c["output_nc"])
    count = len(names) if data.paired else max(len(names), n_reals)
    inputs, others = [], []
    for i, (source, other) in enumerate(ds.take(count).as_numpy_iterator()):
        if i < len(names):
            inputs.append(f"images/input/{names[i]}.png")
            write_png(os.path.join(out_dir, inputs[-1]), to_uint8(source[0]))
        if data.paired:
            others.append(f"images/target/{names[i]}.png")
        elif i < n_reals:
            others.append(f"images/real/{i:04d}.png")
        else:
            continue
        write_png(os.path.join(out_dir, others[-1]), to_uint8(other[0]))
    return ReportImages(names, inputs, others if data.paired else None, others)


def load_translator(run, batch_size=4):
    """The run's `Translator` (`tfi2i.export.load`, what tfi2i-translate uses), checked.

    Raises:
        UserError: the run has no generator for `run.direction`.
    """
    from tfi2i.export import load

    translator = load(run.path, checkpoint=run.checkpoint, batch_size=batch_size)
    direction = run.direction or run.config.get("direction")
    if direction not in translator.directions:
        raise UserError(f"The run {run.path} has no {direction} generator (it has "
                        f"{', '.join(translator.directions)}); leave it out of a {direction} "
                        "report, or choose another --direction.")
    return translator


def translate_run(run, translator, images, out_dir):
    """Translates the report's inputs with a run's generator into images/<run key>/.

    Args:
        run: the `Run`; its `direction` picks the generator.
        translator: its `load_translator`.
        images: the `ReportImages`.
        out_dir: the report folder.

    Returns:
        The output files, relative to `out_dir`, one per input.
    """
    from tfi2i.export.translator import read_image

    direction = run.direction or run.config.get("direction")
    outputs = []
    chunk = translator.batch_size * 4
    for start in range(0, len(images.inputs), chunk):
        files = images.inputs[start:start + chunk]
        batch = [read_image(os.path.join(out_dir, f), translator.input_nc) for f in files]
        for name, result in zip(images.names[start:start + chunk],
                                translator.translate(batch, direction)):
            outputs.append(f"images/{run.key}/{name}.png")
            write_png(os.path.join(out_dir, outputs[-1]), result)
    return outputs
