"""The report's index pages: static HTML, no scripts, nothing fetched from the network.

index.html is page 1, page-2.html ... the others. Every page has the runs'
configs and metrics at the top, links to every page and to the study page, and
one row per test input: input | each run's output | target, each a thumbnail
linking to the full-size image.
"""

import html
import json
import math
import os

from tfi2i.files import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.grid td { text-align: center; }
table.grid img { display: block; margin: auto; }
/* Tiny images (digits) are shown enlarged, pixel for pixel. */
table.grid img { min-width: 64px; image-rendering: pixelated; }
table.grid td.name { font-family: monospace; font-size: 0.85em; text-align: left; }
nav.pages a, nav.pages span { margin-right: 0.4em; }
nav.pages span.current { font-weight: bold; }
details pre { font-size: 0.8em; max-height: 30em; overflow: auto; background: #f7f7f7; }
.muted { color: #777; }
"""


def page_file(number):
    """The file name of page `number` (1-based)."""
    return "index.html" if number == 1 else f"page-{number}.html"


def _e(text):
    return html.escape(str(text), quote=True)


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "–" if value is None else str(value)


def _configs_table(runs, differing):
    rows = [("run directory", [r.path for r in runs]),
            ("method", [r.config.get("method") for r in runs]),
            ("preset", [r.config.get("preset") for r in runs]),
            ("data", [r.config.get("dataset") or r.config.get("data_dir") for r in runs]),
            ("direction", [r.config.get("direction") if r.direction in (
                None, r.config.get("direction")) else f"trained {r.config.get('direction')}; "
                f"shown: its {r.direction} generator" for r in runs]),
            ("crop_size", [r.config.get("crop_size") for r in runs]),
            ("checkpoint (step)", [os.path.basename(r.checkpoint) for r in runs])]
    shown = {"method", "preset", "dataset", "data_dir", "direction", "crop_size"}
    rows += [(key, [r.config.get(key) for r in runs]) for key in differing if key not in shown]
    out = ["<table class=\"configs\"><tr><th></th>"
           + "".join(f"<th>{_e(r.label)}</th>" for r in runs) + "</tr>"]
    for name, values in rows:
        out.append(f"<tr><th>{_e(name)}</th>"
                   + "".join(f"<td>{_e(_format(v))}</td>" for v in values) + "</tr>")
    out.append("</table>")
    details = "".join(
        f"<details><summary>{_e(r.label)}: full config.json</summary><pre>"
        f"{_e(json.dumps(r.config, indent=1, sort_keys=True))}</pre></details>" for r in runs)
    return "\n".join(out) + details


def _metrics_table(runs):
    names = sorted({k for r in runs for k in r.metrics})
    if not names:
        return ("<p class=\"muted\">No metrics in the run directories. "
                "<code>tfi2i-eval --model=RUN --data_dir=... --json_out=RUN/eval.json</code> "
                "writes one that reports pick up.</p>")
    out = ["<table class=\"metrics\"><tr><th>run</th>"
           + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"]
    for r in runs:
        out.append(f"<tr><th>{_e(r.label)}</th>" + "".join(
            f"<td class=\"num\">{_e(_format(r.metrics.get(n)))}</td>" for n in names) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _pager(number, count):
    """Links to the first, last and nearby pages, and previous/next."""
    if count == 1:
        return ""
    shown = sorted({1, count, *range(max(1, number - 3), min(count, number + 3) + 1)})
    parts = []
    if number > 1:
        parts.append(f"<a href=\"{page_file(number - 1)}\" rel=\"prev\">&larr; previous</a>")
    last = 0
    for n in shown:
        if n > last + 1:
            parts.append("<span>…</span>")
        parts.append(f"<span class=\"current\">{n}</span>" if n == number
                     else f"<a href=\"{page_file(n)}\">{n}</a>")
        last = n
    if number < count:
        parts.append(f"<a href=\"{page_file(number + 1)}\" rel=\"next\">next &rarr;</a>")
    return f"<nav class=\"pages\">Pages: {' '.join(parts)}</nav>"


def _cell(image, thumb, alt):
    return (f"<td><a href=\"{_e(image)}\"><img src=\"{_e(thumb)}\" alt=\"{_e(alt)}\" "
            "loading=\"lazy\"></a></td>")


def thumb_path(image):
    """The thumbnail file of an image file (both relative to the report folder)."""
    return "thumbs/" + image[len("images/"):]


def write_index_pages(out_dir, title, data_description, runs, images, outputs, per_page,
                      study_file=None):
    """Writes index.html and page-N.html; returns the page files written.

    Args:
        out_dir: the report folder.
        title: the pages' title.
        data_description: one line saying which data the inputs are.
        runs: the `Run`s, in column order.
        images: the `ReportImages`.
        outputs: {run key: [output files]}, one per input.
        per_page: rows per page.
        study_file: the study page to link to, or None.
    """
    from tfi2i.report.runs import differing_keys

    count = max(1, math.ceil(len(images.names) / per_page))
    header = (f"<h1>{_e(title)}</h1>\n<p>Test inputs: {_e(data_description)}; "
              f"{len(images.names)} images.")
    if study_file:
        header += (f" Perceptual study: <a href=\"{_e(study_file)}\">real or fake?</a> "
                   "(open it in a browser, alone; the results download as JSON).")
    header += "</p>\n<h2>Runs</h2>\n" + _configs_table(
        runs, differing_keys([r.config for r in runs]))
    header += "\n<h2>Metrics</h2>\n" + _metrics_table(runs)
    columns = (["#", "input"] + [r.label for r in runs]
               + (["target"] if images.targets is not None else []))
    written = []
    for number in range(1, count + 1):
        first = (number - 1) * per_page
        rows = []
        for i in range(first, min(first + per_page, len(images.names))):
            cells = [f"<td class=\"name\">{_e(images.names[i])}</td>",
                     _cell(images.inputs[i], thumb_path(images.inputs[i]), "input")]
            for run in runs:
                out = outputs[run.key][i]
                cells.append(_cell(out, thumb_path(out), f"{run.label} output"))
            if images.targets is not None:
                cells.append(_cell(images.targets[i], thumb_path(images.targets[i]), "target"))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        pager = _pager(number, count)
        body = (header + f"\n<h2>Outputs (page {number} of {count})</h2>\n" + pager
                + "\n<table class=\"grid\"><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns)
                + "</tr>\n" + "\n".join(rows) + "\n</table>\n" + pager)
        name = page_file(number)
        write_html(os.path.join(out_dir, name), f"{title} ({number}/{count})", body)
        written.append(name)
    return written


def write_html(path, title, body, head_extra=""):
    """Writes a self-contained HTML page (inline style), atomically."""
    text = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n{head_extra}</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
