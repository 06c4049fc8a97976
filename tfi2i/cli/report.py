"""tfi2i-report: result pages to judge runs by eye, and a real-vs-fake study page.

    tfi2i-report runs/cyclegan_facades runs/cyclegan_gan_only_facades --output=report/
    tfi2i-report runs/a runs/b --labels=CycleGAN,GAN_alone --per_page=25 --output=report/
    tfi2i-report runs/pix2pix_facades --data_dir=../shared/data/facades --output=report/

Each run's generator translates the test split of the runs' data (or of --data_dir;
every run must read the same inputs: same data, direction and test-time size) with
the translator tfi2i-translate uses. The report folder holds index.html (page 1;
page-2.html, ...: per test input one row input | each run's output | target, the
targets where the data are paired; thumbnails link to the full-size images; the runs'
configs and metrics at the top), study.html (the real-vs-fake study) and
report.json. The pages are static HTML with nothing to fetch: open index.html from
disk, copy the folder anywhere, or zip it.

Metrics shown: the numbers of RUN/*.json (e.g. `tfi2i-eval --model=RUN ...
--json_out=RUN/eval.json`) and RUN/best/best.json.

study.html shows a real and a generated image side by side in random order (or one
image at a time) for --study_exposure_ms, then asks which is real; at the end it
shows each method's fooling rate and offers the answers as a JSON file. Pool the
files of several participants with:

    tfi2i-study-merge results/*.json --output=study_table     # study_table.md, .json
"""

import os

from tfi2i.cli.common import quiet_absl_logging, run_main
from tfi2i.errors import UserError
from tfi2i.options import Option

STUDY_MODES = ("side_by_side", "single")

OPTIONS = (
    Option("runs", list, None, "Run directories to compare (also as plain arguments).",
           required=True),
    Option("output", str, None, "The report folder to write.", required=True),
    Option("labels", list, None, "The runs' names on the pages, one per run (default: the "
           "run folders' names)."),
    Option("data_dir", str, None, "Translate the test split of this dataset folder instead of "
           "the runs' own data.", must_exist=True),
    Option("split", str, "test", "The split to translate."),
    Option("direction", str, None, "Translate this way with every run (runs with two "
           "generators, e.g. CycleGAN's, have both; default: each run's own direction).",
           choices=("AtoB", "BtoA")),
    Option("checkpoint", str, "latest", "Each run's latest checkpoint, or the best one "
           "(RUN/best/, kept by --best_metric).", choices=("latest", "best")),
    Option("per_page", int, 50, "Test inputs per index page.", min=1),
    Option("max_images", int, None, "Only the first N test inputs (in file order).", min=1),
    Option("thumb_size", int, 128, "Longest side of the thumbnails, in pixels.", min=8),
    Option("batch_size", int, 4, "Images per call of a generator.", min=1),
    Option("title", str, None, "The pages' title (default: the runs' names)."),
    Option("study_mode", str, "side_by_side", "The study page's default presentation: "
           "side_by_side (a real and a generated image: which is real?) or single (one "
           "image: real or fake?).", choices=STUDY_MODES),
    Option("study_exposure_ms", int, 1000, "How long the study shows the images before they "
           "vanish, in ms (the papers: 1000); 0 = until the participant answers.", min=0),
    Option("study_trials", int, 20, "Study trials per method (0 = every generated image).",
           min=0),
    Option("study_practice", int, 5, "Practice trials first, with feedback, not counted.",
           min=0),
)

MERGE_OPTIONS = (
    Option("results", list, None, "Study result files (JSON, from study.html's download "
           "link) or folders of them (also as plain arguments).", required=True),
    Option("output", str, None, "Also write the table to OUTPUT.md and OUTPUT.json."),
)


def check(args, explicit):
    """Checks the options that depend on each other, before anything is loaded."""
    if args.labels and len(args.labels) != len(args.runs):
        raise UserError(f"--labels has {len(args.labels)} names for {len(args.runs)} runs; "
                        "give one per run, in the same order.")
    for run in args.runs:
        if not os.path.isdir(run):
            raise UserError(f"The run {run} is not a folder; pass tfi2i-train run directories "
                            "(--runs or plain arguments).")


def main(args, explicit):
    quiet_absl_logging()

    from tfi2i.report import StudyDefaults, write_report

    write_report(args.runs, args.output, labels=args.labels, data_dir=args.data_dir,
                 split=args.split, direction=args.direction, checkpoint=args.checkpoint,
                 per_page=args.per_page, max_images=args.max_images, thumb_size=args.thumb_size,
                 batch_size=args.batch_size, title=args.title,
                 study_defaults=StudyDefaults(args.study_mode, args.study_exposure_ms,
                                              args.study_trials, args.study_practice))


def check_merge(args, explicit):
    """Every result is a file or a folder."""
    for path in args.results:
        if not os.path.exists(path):
            raise UserError(f"The study result {path} does not exist.")


def main_merge(args, explicit):
    from tfi2i.report.study import (format_markdown, merge_results, results_folder_files,
                                    write_merged)

    files = []
    for path in args.results:
        files.extend(results_folder_files(path) if os.path.isdir(path) else [path])
    merged = merge_results(files)
    print(format_markdown(merged), end="")
    if args.output:
        md, js = write_merged(merged, args.output)
        print(f"Wrote {md} and {js}.")


def run():
    """Console-script entry point of tfi2i-report."""
    run_main(main, OPTIONS, check=check, positional="runs")


def run_merge():
    """Console-script entry point of tfi2i-study-merge."""
    run_main(main_merge, MERGE_OPTIONS, check=check_merge, positional="results")


if __name__ == "__main__":
    run()
