"""Result pages: the report's HTML, its images, the study merge and the study page in a browser.

One small report (two tiny pix2pix runs, five paired test images, two per page) is
built once per module; the tests read it. The browser test drives the system's
Chromium (Debian's `chromium` package) with Playwright, and skips when either is
missing.
"""

import json
import math
import os
import re
import shutil
from html.parser import HTMLParser

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import write_ab_dataset, write_unpaired_dataset
from tfi2i.cli import report as report_cli
from tfi2i.cli.common import parse_args
from tfi2i.errors import UserError
from tfi2i.report import format_markdown, merge_results, wilson_interval, write_merged
from tfi2i.report import write_report

# The system's Chromium (Debian's `chromium` package; .ci/run installs it where it can).
CHROMIUM = (os.environ.get("TFI2I_CHROMIUM") or shutil.which("chromium")
            or "/usr/bin/chromium")
N_TEST = 5


def make_run(run_dir, data_dir, seed, method="pix2pix", **overrides):
    """A run directory as training leaves it (untrained weights suffice here)."""
    from tfi2i.config import resolve_config
    from tfi2i.methods import get_method

    options = {"netG": "unet_32"} if method == "pix2pix" else {"netG": "resnet_6blocks"}
    config = resolve_config(method, None, {
        **options, "ngf": 8, "ndf": 8, "load_size": 32, "crop_size": 32,
        "init_type": "kaiming", "data_dir": str(data_dir), "run_dir": str(run_dir),
        "seed": seed, **overrides})
    keras.utils.set_random_seed(seed)
    model = get_method(method).from_run_config(config)
    model.build_for_size(32, 32)
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               os.path.join(run_dir, "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=7)
    return str(run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_runs")
    data = write_ab_dataset(root / "data", splits=(("train", 2), ("test", N_TEST)))
    first = make_run(root / "run_a", data, seed=1)
    second = make_run(root / "run_b", data, seed=2)
    with open(os.path.join(first, "eval.json"), "w") as f:
        json.dump({"fid": 12.5, "kid": 0.0125, "data_dir": data, "seg_classes": ["a"]}, f)
    return root, data, [first, second]


@pytest.fixture(scope="module")
def report(runs):
    root, _, run_dirs = runs
    out = root / "report"
    summary = write_report(run_dirs, out, labels=["A & co", "B"], per_page=2, thumb_size=16,
                           progress=None)
    return out, summary


class Links(HTMLParser):
    """Every href and src of a page, and the rows of its output table."""

    def __init__(self):
        super().__init__()
        self.links, self.rows, self._row = [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "tr":
            self._row = []
            self.rows.append(self._row)
        if tag in ("a", "img") and self._row is not None:
            self._row.append((tag, attrs.get("href") or attrs.get("src")))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None


def parse(path):
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# -- the index pages ---------------------------------------------------------------------

def test_report_links_images_and_pages(report):
    out, summary = report
    pages = ["index.html", "page-2.html", "page-3.html"]  # 5 inputs, 2 per page
    assert summary["pages"] == pages
    assert sorted(p.name for p in out.glob("*.html")) == sorted(pages + ["study.html"])
    shown = []
    for name in pages + ["study.html"]:
        text = (out / name).read_text(encoding="utf-8")
        # Offline: nothing is fetched from anywhere but the report folder.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), name
        assert "@import" not in text and "url(" not in text, name
        parser = parse(out / name)
        for link in parser.links:
            assert not link.startswith(("http:", "https:", "//", "/")), (name, link)
            target = link.split("#")[0].split("?")[0]
            if target:
                assert (out / target).is_file(), (name, link)
        if name == "study.html":
            continue
        assert set(pages) - {name} <= set(parser.links), name  # Every other page is linked.
        assert "study.html" in parser.links
        # Grid rows: each image cell is a thumbnail linking to its full-size image.
        rows = [r for r in parser.rows if any(t == "img" for t, _ in r)]
        for row in rows:
            pairs = list(zip(row[::2], row[1::2]))
            assert [t for t, _ in row] == ["a", "img"] * 4, row  # input, A, B, target
            for (_, full), (_, thumb) in pairs:
                assert full.startswith("images/") and thumb == "thumbs/" + full[7:]
                with Image.open(out / thumb) as t_image, Image.open(out / full) as f_image:
                    assert max(t_image.size) <= 16 and f_image.size == (32, 32)
            shown.append([full for (_, full), _ in pairs])
    # Every input once, in order, with both runs' outputs and its target.
    names = [f"{i:04d}_{i:03d}" for i in range(N_TEST)]
    keys = [r["key"] for r in summary["runs"]]
    assert shown == [[f"images/input/{n}.png"] + [f"images/{k}/{n}.png" for k in keys]
                     + [f"images/target/{n}.png"] for n in names]
    index = (out / "index.html").read_text(encoding="utf-8")
    # The configs (the label escaped, the option that differs shown) and metrics at the top.
    assert "A &amp; co" in index and "<th>seed</th>" in index
    assert "eval.fid" in index and "12.5" in index and "eval.data_dir" not in index
    assert "ckpt-7" in index and summary["runs"][0]["step"] == 7
    assert not list(out.rglob(".tmp-*"))  # Atomic writes leave nothing behind.


def test_images_are_the_inputs_targets_and_each_runs_translations(runs, report):
    from tfi2i.export import load

    _, data, run_dirs = runs
    out, summary = report
    for i, input_file in enumerate(summary["inputs"]):
        ab = read_png(os.path.join(data, "test", f"{i:03d}.png"))
        np.testing.assert_array_equal(read_png(out / input_file), ab[:, :32])
        np.testing.assert_array_equal(read_png(out / summary["targets"][i]), ab[:, 32:])
    assert summary["reals"] == summary["targets"]  # Paired data: the study's real images.
    for run_dir, run in zip(run_dirs, summary["runs"]):
        translator = load(run_dir)
        inputs = [read_png(out / f) for f in summary["inputs"]]
        expected = translator.translate(inputs)
        outputs = [read_png(out / f) for f in run["outputs"]]
        for got, want, x in zip(outputs, expected, inputs):
            np.testing.assert_array_equal(got, want)
            assert np.abs(got.astype(int) - x).mean() > 5  # A translation, not the input.
    a, b = (read_png(out / summary["runs"][k]["outputs"][0]) for k in (0, 1))
    assert np.abs(a.astype(int) - b).mean() > 1  # Two different generators.


def copy_run(source, target, **changes):
    shutil.copytree(source, target)
    with open(os.path.join(target, "config.json")) as f:
        config = json.load(f)
    config.update(changes)
    with open(os.path.join(target, "config.json"), "w") as f:
        json.dump(config, f)
    return str(target)


def test_runs_must_share_their_test_inputs(runs, tmp_path):
    root, data, (first, _) = runs
    other = copy_run(first, tmp_path / "btoa", direction="BtoA")
    with pytest.raises(UserError, match="direction is AtoB .* but BtoA"):
        write_report([first, other], tmp_path / "out", progress=None)
    moved = write_ab_dataset(tmp_path / "other_data", splits=(("test", 2),))
    elsewhere = copy_run(first, tmp_path / "elsewhere", data_dir=moved)
    with pytest.raises(UserError, match="different data"):
        write_report([first, elsewhere], tmp_path / "out", progress=None)
    # One generator each (pix2pix): the AtoB run cannot be shown BtoA.
    with pytest.raises(UserError, match=r"no BtoA generator \(it has AtoB\)"):
        write_report([first, other], tmp_path / "out", direction="BtoA", progress=None)
    with pytest.raises(UserError, match="inside the run"):
        write_report([first], os.path.join(first, "report"), progress=None)
    with pytest.raises(UserError, match="not a run directory"):
        write_report([data], tmp_path / "out", progress=None)


def test_command_line_on_unpaired_data_the_other_way(runs, tmp_path):
    """A CycleGAN run on unpaired data shown BtoA: its second generator, no targets."""
    from tfi2i.export import load

    _, _, (first, second) = runs
    data = write_unpaired_dataset(tmp_path / "unpaired", counts=(("testA", 3), ("testB", 2)))
    cyclegan = make_run(tmp_path / "cyclegan", data, seed=3, method="cyclegan")
    out = tmp_path / "report"
    options = [f"--data_dir={data}", f"--output={out}", "--direction=BtoA",
               "--study_mode=single", "--study_exposure_ms=0", "--thumb_size=8"]
    # Runs as plain arguments, before and between the flags.
    args, _ = parse_args(report_cli.OPTIONS, [first, *options, second], check=report_cli.check,
                         positional="runs")
    assert args.runs == [first, second]
    args, explicit = parse_args(report_cli.OPTIONS, [*options, cyclegan],
                                check=report_cli.check, positional="runs")
    report_cli.main(args, explicit)
    summary = json.loads((out / "report.json").read_text())
    assert summary["direction"] == "BtoA"
    assert not summary["paired"] and summary["targets"] is None
    assert len(summary["inputs"]) == 2 and len(summary["reals"]) == 3
    # Inputs: testB; real images: testA (the target domain), in file order.
    for i, image in enumerate(summary["inputs"]):
        np.testing.assert_array_equal(read_png(out / image), read_png(
            os.path.join(data, "testB", f"testB_{i:03d}.png")))
    for i, real in enumerate(summary["reals"]):
        np.testing.assert_array_equal(read_png(out / real), read_png(
            os.path.join(data, "testA", f"testA_{i:03d}.png")))
    translator = load(cyclegan)
    for image, output in zip(summary["inputs"], summary["runs"][0]["outputs"]):
        np.testing.assert_array_equal(read_png(out / output), translator.translate(
            read_png(out / image), "BtoA"))
        assert np.abs(read_png(out / output).astype(int) - translator.translate(
            read_png(out / image), "AtoB")).max() > 0
    index = parse(out / "index.html")
    assert not any("images/target" in link for link in index.links)
    assert "<th>target</th>" not in (out / "index.html").read_text()
    assert "shown: its BtoA generator" in (out / "index.html").read_text()
    page = (out / "study.html").read_text()
    embedded = json.loads(re.search(r'id="study-data">(.*?)</script>', page).group(1))
    assert embedded["defaults"] == {"mode": "single", "exposure_ms": 0, "trials": 20,
                                    "practice": 5}
    assert [r["src"] for r in embedded["reals"]] == summary["reals"]
    assert [f["src"] for f in embedded["fakes"]] == summary["runs"][0]["outputs"]


# -- the study merge ----------------------------------------------------------------------

def test_wilson_interval_matches_a_hand_computation():
    # 3 of 10 by hand, in the other textbook form of the interval:
    # (k + z^2/2) / (n + z^2) -/+ z sqrt(n) / (n + z^2) * sqrt(p (1 - p) + z^2 / 4n)
    # = 4.920729 / 13.841459 -/+ 1.959964 * 3.162278 / 13.841459 * sqrt(0.21 + 0.096036)
    # = 0.355506 -/+ 0.247715, i.e. (0.1078, 0.6032) as tables of the Wilson interval give.
    z2 = 1.959963984540054 ** 2
    centre = (3 + z2 / 2) / (10 + z2)
    half = 1.959963984540054 * math.sqrt(10) / (10 + z2) * math.sqrt(0.21 + z2 / 40)
    low, high = wilson_interval(3, 10)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.1078, 0.6032), abs=5e-5)
    # k = 0: the interval is [0, z^2 / (n + z^2)]; k = n: [n / (n + z^2), 1].
    assert wilson_interval(0, 5) == pytest.approx((0.0, z2 / (5 + z2)), abs=1e-12)
    assert wilson_interval(5, 5) == pytest.approx((5 / (5 + z2), 1.0), abs=1e-12)
    assert wilson_interval(0, 0) == (None, None)


def result_file(path, session, trials, study="s1", methods=("a", "b")):
    data = {"format": "tfi2i-study/1", "study": study, "session": session,
            "methods": [{"key": m, "label": m.upper()} for m in methods], "trials": trials}
    with open(path, "w") as f:
        json.dump(data, f)
    return str(path)


def side(method, fake_side, choice, practice=False):
    return {"mode": "side_by_side", "method": method, "fake_side": fake_side,
            "choice": choice, "fooled": choice == fake_side, "practice": practice}


def single(method, shown, choice):
    t = {"mode": "single", "method": method if shown == "fake" else None, "shown": shown,
         "choice": choice, "practice": False}
    t["fooled" if shown == "fake" else "judged_real"] = choice == "real"
    return t


def test_merge_pools_files_per_method_with_wilson_intervals(tmp_path):
    # Participant 1: method a fooled 2 of 4 (one practice trial and one unanswered trial
    # do not count), b 0 of 1. Participant 2: a 1 of 2; one-at-a-time: b 1 of 2, and
    # real images judged real 2 of 3.
    p1 = result_file(tmp_path / "p1.json", "one", [
        side("a", "left", "left"), side("a", "right", "left"), side("a", "left", "right"),
        side("a", "right", "right"), side("b", "left", "right"),
        side("a", "left", "left", practice=True),
        {"mode": "side_by_side", "method": "a", "fake_side": "left", "practice": False}])
    p2 = result_file(tmp_path / "p2.json", "two", [
        side("a", "left", "left"), side("a", "left", "right"),
        single("b", "fake", "real"), single("b", "fake", "fake"),
        single(None, "real", "real"), single(None, "real", "fake"),
        single(None, "real", "real")])
    merged = merge_results([p1, p2])
    rows = {(r["method"], r["mode"]): r for r in merged["rows"]}
    assert set(rows) == {("A", "side_by_side"), ("B", "side_by_side"), ("B", "single")}
    expected = {("A", "side_by_side"): (6, 3, 2), ("B", "side_by_side"): (1, 0, 1),
                ("B", "single"): (2, 1, 1)}
    for key, (trials, fooled, participants) in expected.items():
        row = rows[key]
        assert (row["trials"], row["fooled"], row["participants"]) == (
            trials, fooled, participants)
        assert row["rate"] == fooled / trials
        assert (row["ci_low"], row["ci_high"]) == wilson_interval(fooled, trials)
    # 3 of 6: the Wilson interval (0.1876, 0.8124), symmetric about 1/2.
    assert rows[("A", "side_by_side")]["ci_low"] == pytest.approx(0.18761, abs=1e-5)
    assert rows[("A", "side_by_side")]["ci_high"] == pytest.approx(0.81239, abs=1e-5)
    [control] = merged["real_control"]
    assert (control["trials"], control["fooled"], control["mode"]) == (3, 2, "single")
    assert "Wilson" in merged["interval"]
    table = format_markdown(merged)
    assert "| A | side by side | 2 | 6 | 3 | 50.0% | 18.8% – 81.2% |" in table
    assert "real images (control: judged real) | one at a time | 1 | 3 | 2 | 66.7%" in table

    # The command line: files and folders, as plain arguments; writes .md and .json.
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(p2, folder / "p2.json")
    args, explicit = parse_args(report_cli.MERGE_OPTIONS,
                                [p1, str(folder), f"--output={tmp_path / 'table.md'}"],
                                check=report_cli.check_merge, positional="results")
    report_cli.main_merge(args, explicit)
    assert (tmp_path / "table.md").read_text() == table
    assert json.loads((tmp_path / "table.json").read_text()) == json.loads(json.dumps(merged))


def test_merge_rejects_bad_files(tmp_path):
    good = result_file(tmp_path / "good.json", "one", [side("a", "left", "left")])
    again = result_file(tmp_path / "again.json", "one", [side("a", "left", "right")])
    with pytest.raises(UserError, match="same session"):
        merge_results([good, again])
    other = result_file(tmp_path / "other.json", "two", [side("a", "left", "left")],
                        study="s2")
    with pytest.raises(UserError, match="different study pages"):
        merge_results([good, other])
    forged = side("a", "left", "right")
    forged["fooled"] = True
    with pytest.raises(UserError, match="trial 0 records True"):
        merge_results([result_file(tmp_path / "forged.json", "three", [forged])])
    unknown = result_file(tmp_path / "unknown.json", "four", [side("zz", "left", "left")])
    with pytest.raises(UserError, match="'zz'"):
        merge_results([unknown])
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="not a tfi2i study result"):
        merge_results([str(tmp_path / "junk.json")])
    md, js = write_merged(merge_results([good]), str(tmp_path / "t"))
    assert md.endswith("t.md") and os.path.isfile(js)


# -- the study page in a real browser -------------------------------------------------------

def browser_missing():
    """Why the browser test cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return ("playwright is not installed (pip install playwright; the test drives the "
                "system's Chromium, no browser download)")
    if not os.path.isfile(CHROMIUM):
        return (f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set "
                "TFI2I_CHROMIUM to its executable)")
    return None


def start_session(page, url):
    page.goto(url)
    page.click("#start")


def answer_trials(page, answer, key_presses=False):
    """Answers the study's remaining trials by `answer(trial, sources)`.

    Returns:
        [(progress text, image sources, choice)] in order.
    """
    done = []
    while True:
        page.wait_for_selector("body[data-ready='1'], body[data-done='1']")
        if page.get_attribute("body", "data-done") == "1":
            return done
        images = page.eval_on_selector_all(
            "#stage .slot:not([hidden]) img",
            "els => els.map(e => [e.getAttribute('src'), e.naturalWidth, e.complete])")
        assert images and all(w > 0 and ok for _, w, ok in images), images  # They appear.
        progress = page.inner_text("#progress")
        trial = page.get_attribute("body", "data-trial")
        sources = [src for src, _, _ in images]
        choice = answer(int(trial), sources)
        if key_presses:
            page.keyboard.press({"left": "ArrowLeft", "right": "ArrowRight", "real": "r",
                                 "fake": "f"}[choice])
        elif choice in ("left", "right"):
            page.click(f"#slot-{choice}")
        else:
            page.click(f"#choose-{choice}")
        page.wait_for_function(f"document.body.dataset.trial !== '{trial}' || "
                               "document.body.dataset.done === '1'")
        done.append((progress, sources, choice))


def method_of(src, keys):
    folder = src.split("/")[1]
    return folder if folder in keys else None


def downloaded(page, tmp_path, name):
    with page.expect_download() as info:
        page.click("#download")
    path = tmp_path / name
    info.value.save_as(path)
    return json.loads(path.read_text()), str(path)


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_study_page_records_clicks_and_tallies_them(report, tmp_path):
    from playwright.sync_api import sync_playwright

    out, summary = report
    keys = [r["key"] for r in summary["runs"]]
    url = (out / "study.html").as_uri()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page(accept_downloads=True)

            # Side by side, 1 practice trial, every fake.
            start_session(page, url + "?mode=side_by_side&exposure_ms=400&practice=1&trials=0"
                          "&seed=3")
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text("#progress") == "Practice 1 of 1"
            # The images vanish after the exposure time; the answer still counts.
            page.wait_for_selector("#slot-left.hidden-image", timeout=5000)
            page.click("#slot-left")
            trials = answer_trials(page, lambda i, s: "left" if i % 2 else "right")
            expected = {k: [0, 0] for k in keys}
            for progress, sources, choice in trials:
                assert progress.startswith("Trial ")
                picked = sources[0] if choice == "left" else sources[1]
                fake = [s for s in sources if method_of(s, keys)]
                assert len(fake) == 1 and len(sources) == 2
                expected[method_of(fake[0], keys)][0] += 1
                expected[method_of(fake[0], keys)][1] += picked == fake[0]
            assert sum(n for n, _ in expected.values()) == 2 * N_TEST  # trials=0: every fake
            assert 0 < sum(k for _, k in expected.values()) < 2 * N_TEST
            shown = {k: [int(page.inner_text(f"tr[data-method='{k}'] td:nth-child({c})"))
                         for c in (2, 3)] for k in keys}
            assert shown == expected
            result, path = downloaded(page, tmp_path, "side.json")
            assert result["mode"] == "side_by_side" and result["exposure_ms"] == 400
            assert result["trials"][0]["practice"] and result["trials"][0]["choice"] == "left"
            recorded = result["trials"][1:]
            assert [t["choice"] for t in recorded] == [c for _, _, c in trials]
            assert [[t["fake"], t["real"]][::1 if t["fake_side"] == "left" else -1]
                    for t in recorded] == [s for _, s, _ in trials]
            assert {k: [v["trials"], v["fooled"]] for k, v in result["tally"]["methods"].items()
                    } == expected
            merged = merge_results([path])
            labels = {r["key"]: r["label"] for r in summary["runs"]}
            assert {r["method"]: [r["trials"], r["fooled"]] for r in merged["rows"]} == {
                labels[k]: v for k, v in expected.items()}

            # One at a time, answered with the keyboard: fakes and real controls.
            start_session(page, url + "?mode=single&exposure_ms=0&practice=0&trials=2")
            answers = answer_trials(page, lambda i, s: "real" if i % 2 == 0 else "fake",
                                    key_presses=True)
            assert len(answers) == 2 * 2 + 2  # 2 per method, as many real images as a method
            result, _ = downloaded(page, tmp_path, "single.json")
            fooled = {k: 0 for k in keys}
            control = 0
            for (_, [src], choice), t in zip(answers, result["trials"]):
                assert t["choice"] == choice and (t.get("fake") or t.get("real")) == src
                if method_of(src, keys):
                    fooled[method_of(src, keys)] += choice == "real"
                else:
                    control += choice == "real"
            assert {k: v["fooled"] for k, v in result["tally"]["methods"].items()} == fooled
            assert result["tally"]["real_control"]["judged_real"] == control
            assert int(page.inner_text("tr[data-method='real'] td:nth-child(3)")) == control
        finally:
            chromium.close()
