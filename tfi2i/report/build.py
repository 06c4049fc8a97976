"""`write_report`: the whole report folder from run directories."""

import dataclasses
import os
import re

from tfi2i.errors import UserError
from tfi2i.files import write_json_atomic
from tfi2i.report import pages, runs as runs_lib, study


@dataclasses.dataclass(frozen=True)
class StudyDefaults:
    """The study page's defaults (a participant, or the page's URL, can change them).

    Attributes:
        mode: "side_by_side" (a real and a generated image, which is real?) or
            "single" (one image, real or fake?).
        exposure_ms: how long the images show before they vanish; 0 = until
            the participant answers. The papers' studies used 1000.
        trials_per_method: generated images per method (0 = all of them).
        practice: practice trials first, with feedback, not counted.
    """
    mode: str = "side_by_side"
    exposure_ms: int = 1000
    trials_per_method: int = 20
    practice: int = 5


def write_report(run_dirs, output, labels=None, data_dir=None, split="test", direction=None,
                 checkpoint="latest", per_page=50, max_images=None, thumb_size=128,
                 batch_size=4, title=None, study_defaults=StudyDefaults(), extra_metrics=None,
                 progress=print):
    """Writes a report folder: index pages, the study page, images and report.json.

    Args:
        run_dirs: run directories (tfi2i-train's --run_dir), in column order.
        output: the report folder (created; files of an earlier report there
            are replaced).
        labels: the runs' names on the pages (default: their folder names).
        data_dir: translate the test split of this dataset folder instead of
            each run's own data.
        split: the split to translate.
        direction: translate this way with every run (runs with two generators,
            e.g. CycleGAN's, have both); default: each run's own direction.
        checkpoint: "latest" or "best" (RUN/best/, kept by --best_metric).
        per_page: test inputs per index page.
        max_images: only the first this many test inputs (file order).
        thumb_size: the thumbnails' longest side, in pixels.
        batch_size: images per call of a generator.
        title: the pages' title (default: the runs' labels).
        study_defaults: a `StudyDefaults`.
        extra_metrics: {run_dir: {name: number}} shown besides what the run
            directories hold (e.g. a comparison's scores).
        progress: called with one line per step (None: quiet).

    Returns:
        The report's summary (also written to OUTPUT/report.json).

    Raises:
        UserError: bad runs, runs that do not share their test inputs, or an
            output folder that is one of the runs or inside one.
    """
    say = progress or (lambda line: None)
    output = os.fspath(output)
    out_real = os.path.realpath(output)
    for run_dir in run_dirs:
        run_real = os.path.realpath(run_dir)
        if out_real == run_real or out_real.startswith(run_real + os.sep):
            raise UserError(f"--output={output} is inside the run {run_dir}; write the report "
                            "elsewhere, e.g. reports/NAME.")
    runs = runs_lib.read_runs(list(run_dirs), labels, checkpoint)
    extra = {os.path.realpath(k): v for k, v in (extra_metrics or {}).items()}
    for run in runs:
        run.metrics.update(extra.get(os.path.realpath(run.path), {}))
    data = runs_lib.report_data(runs, data_dir, split, direction)
    # Every generator first: a run that cannot translate stops the report before any work.
    translators = {run.key: runs_lib.load_translator(run, batch_size) for run in runs}
    say(f"Test inputs: {data.description}")
    os.makedirs(output, exist_ok=True)
    images = runs_lib.write_test_images(data, output, max_images)
    if not images.names:
        raise UserError(f"The {split} split of {data.root} has no images to translate.")
    outputs = {}
    for run in runs:
        say(f"Translating {len(images.names)} images with {run.label} "
            f"({os.path.basename(run.checkpoint)})")
        outputs[run.key] = runs_lib.translate_run(run, translators[run.key], images, output)
    every_image = images.inputs + (images.targets or []) + [
        f for run in runs for f in outputs[run.key]]
    for image in every_image:
        runs_lib.write_thumbnail(os.path.join(output, image),
                                 os.path.join(output, pages.thumb_path(image)), thumb_size)
    title = title or "tfi2i report: " + ", ".join(r.label for r in runs)
    study_data = study.study_data(title, runs, outputs, images.reals,
                                  mode=study_defaults.mode,
                                  exposure_ms=study_defaults.exposure_ms,
                                  trials_per_method=study_defaults.trials_per_method,
                                  practice=study_defaults.practice)
    study.write_study_page(os.path.join(output, "study.html"), study_data)
    written = pages.write_index_pages(output, title, data.description, runs, images, outputs,
                                      per_page, study_file="study.html")
    _remove_stale_pages(output, written)
    summary = {
        "title": title, "data": data.description, "split": split,
        "direction": data.config["direction"], "paired": data.paired,
        "pages": written, "study_page": "study.html", "study": study_data["study"],
        "inputs": images.inputs, "targets": images.targets, "reals": images.reals,
        "runs": [{"label": r.label, "key": r.key, "run_dir": r.path,
                  "checkpoint": r.checkpoint, "step": r.step, "metrics": r.metrics,
                  "outputs": outputs[r.key]} for r in runs]}
    write_json_atomic(os.path.join(output, "report.json"), summary)
    say(f"Report: {os.path.join(output, 'index.html')} ({len(written)} pages); study: "
        f"{os.path.join(output, 'study.html')}")
    return summary


def _remove_stale_pages(output, written):
    """Removes page-N.html files of an earlier, longer report in the same folder."""
    for name in os.listdir(output):
        if re.fullmatch(r"page-\d+\.html", name) and name not in written:
            os.remove(os.path.join(output, name))
