"""Real-vs-fake studies: the study page, and merging the participants' result files.

The stand-in for the perceptual studies of pix2pix and CycleGAN (Amazon Mechanical
Turk "real vs fake"): a participant sees a real image and a generated one side by
side, in random order, for a set time (the papers: 1 s, then the images vanish and
the participant answers without a time limit) or until they answer, and clicks the
one they think is real. In the one-at-a-time variant they see a single image, real
or generated, and answer "real" or "fake"; real images are shown as often as each
method's, as a control. Practice trials first (with feedback, as in the papers)
are recorded but not counted.

The page is one static HTML file with its script inline; it needs no server and
nothing from the network. At the end it shows each method's fooling rate and
offers the choices as a JSON file (format "tfi2i-study/1") to download.
`merge_results` pools several participants' files into one table per method:
trials, fooled, fooling rate and its 95% Wilson score interval.

Fooled means: side by side, the participant picked the generated image as the
real one; one at a time, they called a generated image real.
"""

import hashlib
import html
import json
import math
import os

from tfi2i.errors import UserError

FORMAT = "tfi2i-study/1"
MODES = ("side_by_side", "single")
MODE_NAMES = {"side_by_side": "side by side", "single": "one at a time"}
# The 97.5th percentile of the standard normal distribution: a two-sided 95% interval.
Z_95 = 1.959963984540054
INTERVAL = "Wilson score interval, 95% (z = 1.96)"


def wilson_interval(successes, trials, z=Z_95):
    """The Wilson score interval of a binomial proportion, (low, high); (None, None) for 0 trials.

    low, high = (p + z^2 / 2n -/+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n),
    with p = successes / trials. Unlike p -/+ z sqrt(p (1 - p) / n) it stays in
    [0, 1] and is not zero-width at 0 or n successes.
    """
    if trials == 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def study_id(methods, fakes, reals):
    """A short id of a study: the same methods and images give the same id."""
    text = json.dumps([methods, fakes, reals], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_data(title, runs, outputs, reals, mode="side_by_side", exposure_ms=1000,
               trials_per_method=20, practice=5):
    """The data the study page embeds.

    Args:
        title: shown on the page.
        runs: the `Run`s (their labels name the methods).
        outputs: {run key: [output files]} (relative to the report folder).
        reals: the real images (files relative to the report folder).
        mode, exposure_ms, trials_per_method, practice: the page's defaults
            (the participant, or the URL, can change them).
    """
    methods = [{"key": r.key, "label": r.label} for r in runs]
    fakes = [{"method": r.key, "src": src} for r in runs for src in outputs[r.key]]
    return {"format": FORMAT, "title": title,
            "study": study_id(methods, [f["src"] for f in fakes], list(reals)),
            "methods": methods, "fakes": fakes, "reals": [{"src": s} for s in reals],
            "defaults": {"mode": mode, "exposure_ms": int(exposure_ms),
                         "trials": int(trials_per_method), "practice": int(practice)}}


_STYLE = """
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
#setup label { display: block; margin: 0.6em 0; }
#stage { display: flex; gap: 24px; margin: 1em 0; min-height: 260px; }
.slot { width: 260px; height: 260px; padding: 0; border: 2px solid #aaa; background: #888;
        cursor: pointer; display: flex; align-items: center; justify-content: center; }
.slot img { max-width: 256px; max-height: 256px; width: 256px; height: 256px;
            object-fit: contain; }
.slot.hidden-image img { visibility: hidden; }
.slot:focus { outline: 3px solid #4a90d9; }
#single-buttons button { font-size: 1.2em; margin-right: 1em; padding: 0.4em 1.2em; }
#feedback { min-height: 1.5em; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; }
textarea { width: 100%; height: 10em; font-family: monospace; font-size: 0.8em; }
"""

_BODY = """
<h1>Real or fake?</h1>
<p>Study: {title} &middot; <a href="index.html">the report</a></p>
<section id="setup">
  <p>Some of the images you will see are photographs (real), others were made by a computer
  (fake). In each trial the images appear briefly and then disappear; answer as well as you
  can, there is no time limit for answering.
  <b>Side by side</b>: one image is real and one is fake: click the one you think is
  <b>real</b> (or press &larr; / &rarr;).
  <b>One at a time</b>: say whether the image is <b>real</b> or <b>fake</b>
  (or press R / F). The first trials are practice: they show whether you were right and do
  not count.</p>
  <label>Your name or ID (optional, goes into the result file)
    <input id="participant" autocomplete="off"></label>
  <label>Presentation
    <select id="mode">
      <option value="side_by_side">side by side: which one is real?</option>
      <option value="single">one at a time: real or fake?</option>
    </select></label>
  <label>Show each image for (ms; 0 = until you answer)
    <input id="exposure" type="number" min="0" step="100"></label>
  <label>Trials per method (0 = every generated image)
    <input id="trials" type="number" min="0"></label>
  <label>Practice trials (with feedback, not counted)
    <input id="practice" type="number" min="0"></label>
  <button id="start" type="button">Start</button>
</section>
<section id="trial" hidden>
  <p id="progress"></p>
  <p id="prompt"></p>
  <div id="stage">
    <button class="slot" id="slot-left" type="button" data-choice="left">
      <img id="img-left" alt="first image"></button>
    <button class="slot" id="slot-right" type="button" data-choice="right">
      <img id="img-right" alt="second image"></button>
  </div>
  <div id="single-buttons" hidden>
    <button id="choose-real" type="button" data-choice="real">Real (R)</button>
    <button id="choose-fake" type="button" data-choice="fake">Fake (F)</button>
  </div>
  <p id="feedback"></p>
</section>
<section id="done" hidden>
  <h2>Results</h2>
  <p>Fooling rate: the share of trials in which a generated image was taken for the real
  one, with its 95% Wilson score interval.</p>
  <table id="tally"></table>
  <p><a id="download" href="#">Download your results (JSON)</a>: send the file to the
  person running the study; <code>tfi2i-study-merge</code> pools everyone's files.</p>
  <textarea id="result-json" readonly></textarea>
</section>
"""

_SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("study-data").textContent);
const Z = 1.959963984540054;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);

function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(list, rand) {
  const out = list.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function wilson(k, n) {
  if (n === 0) return [null, null];
  const p = k / n, d = 1 + Z * Z / n;
  const centre = (p + Z * Z / (2 * n)) / d;
  const half = Z * Math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / d;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function setting(name, fallback) {
  const value = params.get(name);
  return value === null ? fallback : value;
}

$("mode").value = setting("mode", DATA.defaults.mode);
$("exposure").value = setting("exposure_ms", DATA.defaults.exposure_ms);
$("trials").value = setting("trials", DATA.defaults.trials);
$("practice").value = setting("practice", DATA.defaults.practice);
$("participant").value = setting("participant", "");

let state = null;

// A cycle through the shuffled list, reshuffled on each pass: every item is used
// about equally often.
function cycler(list, rand) {
  let order = [], i = 0;
  return function () {
    if (i >= order.length) { order = shuffled(list, rand); i = 0; }
    return order[i++];
  };
}

function buildTrials(settings, rand) {
  const trials = [];
  for (const m of DATA.methods) {
    const fakes = shuffled(DATA.fakes.filter((f) => f.method === m.key), rand);
    const n = settings.trials > 0 ? Math.min(settings.trials, fakes.length) : fakes.length;
    for (let i = 0; i < n; i++) trials.push({method: m.key, fake: fakes[i].src});
  }
  const nReal = Math.round(trials.length / Math.max(1, DATA.methods.length));
  const nextReal = cycler(DATA.reals.map((r) => r.src), rand);
  if (settings.mode === "single") {
    for (let i = 0; i < nReal; i++) trials.push({method: null, real: nextReal()});
  }
  const main = shuffled(trials, rand);
  const nextPractice = cycler(trials, rand);
  const practice = [];
  for (let i = 0; i < settings.practice && trials.length; i++) {
    practice.push(Object.assign({}, nextPractice(), {practice: true}));
  }
  const all = practice.concat(main.map((t) => Object.assign({}, t, {practice: false})));
  for (const t of all) {
    t.mode = settings.mode;
    if (settings.mode === "side_by_side") {
      t.real = nextReal();
      t.fake_side = rand() < 0.5 ? "left" : "right";
    } else {
      t.shown = t.fake ? "fake" : "real";
    }
  }
  return all;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot load " + src));
    img.src = src;
  });
}

function start() {
  const seed = Number(params.get("seed") || Math.floor(Math.random() * 4294967296));
  const settings = {
    mode: $("mode").value === "single" ? "single" : "side_by_side",
    exposure_ms: Math.max(0, Number($("exposure").value) || 0),
    trials: Math.max(0, Math.floor(Number($("trials").value) || 0)),
    practice: Math.max(0, Math.floor(Number($("practice").value) || 0)),
  };
  state = {
    settings, seed, trials: buildTrials(settings, mulberry32(seed)), index: -1,
    participant: $("participant").value.trim(), started: new Date().toISOString(),
    session: Math.random().toString(36).slice(2) + Date.now().toString(36),
    accepting: false, timer: null, shownAt: 0, errors: [],
  };
  $("setup").hidden = true;
  $("trial").hidden = false;
  const single = settings.mode === "single";
  $("single-buttons").hidden = !single;
  $("slot-right").hidden = single;
  $("prompt").textContent = single ? "Is this image real or fake?"
                                   : "Which image is real? Click it.";
  next();
}

function next() {
  state.index += 1;
  document.body.dataset.ready = "0";
  $("feedback").textContent = "";
  if (state.index >= state.trials.length) { finish(); return; }
  const t = state.trials[state.index];
  const nPractice = state.trials.filter((x) => x.practice).length;
  $("progress").textContent = t.practice
    ? `Practice ${state.index + 1} of ${nPractice}`
    : `Trial ${state.index - nPractice + 1} of ${state.trials.length - nPractice}`;
  let sources;
  if (t.mode === "side_by_side") {
    sources = t.fake_side === "left" ? [t.fake, t.real] : [t.real, t.fake];
  } else {
    sources = [t.fake || t.real];
  }
  for (const id of ["slot-left", "slot-right"]) $(id).classList.add("hidden-image");
  Promise.all(sources.map(loadImage)).then(() => {
    $("img-left").src = sources[0];
    if (sources.length > 1) $("img-right").src = sources[1];
    return Promise.all([$("img-left").decode(),
                        sources.length > 1 ? $("img-right").decode() : null]);
  }).then(show, (error) => {
    state.errors.push({index: state.index, error: String(error)});
    t.error = String(error);
    next();
  });
}

function show() {
  for (const id of ["slot-left", "slot-right"]) $(id).classList.remove("hidden-image");
  state.shownAt = performance.now();
  state.accepting = true;
  document.body.dataset.trial = String(state.index);
  document.body.dataset.ready = "1";
  const exposure = state.settings.exposure_ms;
  if (exposure > 0) {
    state.timer = setTimeout(() => {
      for (const id of ["slot-left", "slot-right"]) $(id).classList.add("hidden-image");
    }, exposure);
  }
}

function respond(choice) {
  if (!state || !state.accepting) return;
  const t = state.trials[state.index];
  if (t.mode === "side_by_side" && choice !== "left" && choice !== "right") return;
  if (t.mode === "single" && choice !== "real" && choice !== "fake") return;
  state.accepting = false;
  clearTimeout(state.timer);
  t.choice = choice;
  t.response_ms = Math.round(performance.now() - state.shownAt);
  if (t.mode === "side_by_side") {
    t.fooled = choice === t.fake_side;
  } else if (t.shown === "fake") {
    t.fooled = choice === "real";
  } else {
    t.judged_real = choice === "real";
  }
  const correct = t.mode === "side_by_side" ? !t.fooled
                                            : (choice === "real") === (t.shown === "real");
  document.body.dataset.ready = "0";
  if (t.practice) {
    $("feedback").textContent = correct ? "Right." : "Wrong: that was " +
      (t.mode === "side_by_side" ? "the fake." : (t.shown === "real" ? "real." : "fake."));
    setTimeout(next, 900);
  } else {
    setTimeout(next, 150);
  }
}

function tally(trials) {
  const rows = {};
  for (const m of DATA.methods) rows[m.key] = {label: m.label, trials: 0, fooled: 0};
  const control = {trials: 0, judged_real: 0};
  for (const t of trials) {
    if (t.practice || t.choice === undefined) continue;
    if (t.method === null) {
      control.trials += 1;
      control.judged_real += t.judged_real ? 1 : 0;
    } else {
      rows[t.method].trials += 1;
      rows[t.method].fooled += t.fooled ? 1 : 0;
    }
  }
  for (const r of Object.values(rows).concat([control])) {
    const k = r.fooled !== undefined ? r.fooled : r.judged_real;
    r.rate = r.trials ? k / r.trials : null;
    [r.ci_low, r.ci_high] = wilson(k, r.trials);
  }
  return {methods: rows, real_control: control};
}

function percent(x) { return x === null ? "–" : (100 * x).toFixed(1) + "%"; }

function finish() {
  $("trial").hidden = true;
  $("done").hidden = false;
  const counts = tally(state.trials);
  const rows = ["<tr><th>method</th><th>trials</th><th>fooled</th><th>fooling rate</th>" +
                "<th>95% CI (Wilson)</th></tr>"];
  const cell = (x) => `<td class="num">${x}</td>`;
  for (const m of DATA.methods) {
    const r = counts.methods[m.key];
    const label = m.label.replace(/[&<>"]/g, (c) => "&#" + c.charCodeAt(0) + ";");
    rows.push(`<tr data-method="${m.key}"><td>${label}</td>` + cell(r.trials) +
              cell(r.fooled) + cell(percent(r.rate)) +
              cell(r.trials ? percent(r.ci_low) + " – " + percent(r.ci_high) : "–") + "</tr>");
  }
  const c = counts.real_control;
  if (state.settings.mode === "single") {
    rows.push(`<tr data-method="real"><td>real images (control): judged real</td>` +
              cell(c.trials) + cell(c.judged_real) + cell(percent(c.rate)) +
              cell(c.trials ? percent(c.ci_low) + " – " + percent(c.ci_high) : "–") + "</tr>");
  }
  $("tally").innerHTML = rows.join("");
  const result = {
    format: DATA.format, study: DATA.study, title: DATA.title, session: state.session,
    participant: state.participant, mode: state.settings.mode,
    exposure_ms: state.settings.exposure_ms, practice: state.settings.practice,
    trials_per_method: state.settings.trials, seed: state.seed, started: state.started,
    finished: new Date().toISOString(), user_agent: navigator.userAgent,
    methods: DATA.methods, trials: state.trials, tally: counts, errors: state.errors,
  };
  const text = JSON.stringify(result, null, 1);
  $("result-json").value = text;
  const link = $("download");
  link.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  const who = (state.participant || "anonymous").replace(/[^A-Za-z0-9_-]+/g, "_");
  link.download = `study-${DATA.study}-${who}-${state.session}.json`;
  document.body.dataset.done = "1";
}

$("start").addEventListener("click", start);
for (const id of ["slot-left", "slot-right", "choose-real", "choose-fake"]) {
  $(id).addEventListener("click", (event) => respond(event.currentTarget.dataset.choice));
}
document.addEventListener("keydown", (event) => {
  if (!state || !state.accepting) return;
  const keys = {ArrowLeft: "left", ArrowRight: "right", r: "real", R: "real",
                f: "fake", F: "fake"};
  if (keys[event.key]) respond(keys[event.key]);
});
"""


def write_study_page(path, data):
    """Writes the study page (one self-contained HTML file), atomically.

    Args:
        path: the page's file, in the report folder (image paths are relative
            to it).
        data: `study_data(...)`.
    """
    from tfi2i.files import atomic_path

    # "</" cannot end the inline script: JSON allows "<\/".
    embedded = json.dumps(data, indent=None).replace("</", "<\\/")
    text = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>Real or fake? {html.escape(data['title'])}</title>\n"
            f"<style>{_STYLE}</style>\n</head>\n<body>\n"
            + _BODY.replace("{title}", html.escape(data["title"]))
            + f"\n<script type=\"application/json\" id=\"study-data\">{embedded}</script>\n"
            f"<script>{_SCRIPT}</script>\n</body>\n</html>\n")
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


# -- merging participants' files -------------------------------------------------------

def _fail(path, why):
    raise UserError(f"{path} is not a tfi2i study result: {why}. Use the JSON files the "
                    "study page's download link writes.")


def _check_trial(path, i, t):
    """(method or None, mode, fooled or judged_real) of one answered trial, recomputed."""
    mode = t.get("mode")
    choice = t.get("choice")
    if mode == "side_by_side":
        if t.get("fake_side") not in ("left", "right") or choice not in ("left", "right"):
            _fail(path, f"trial {i} lacks fake_side/choice left or right")
        value = choice == t["fake_side"]
        recorded = t.get("fooled")
    elif mode == "single":
        if t.get("shown") not in ("fake", "real") or choice not in ("real", "fake"):
            _fail(path, f"trial {i} lacks shown/choice real or fake")
        value = choice == "real"
        recorded = t.get("fooled") if t["shown"] == "fake" else t.get("judged_real")
    else:
        _fail(path, f"trial {i} has mode {mode!r}, not one of {', '.join(MODES)}")
    if recorded is not None and recorded != value:
        _fail(path, f"trial {i} records {recorded} but its choice says {value}")
    method = t.get("method")
    if mode == "single" and t["shown"] == "real":
        method = None
    elif not isinstance(method, str):
        _fail(path, f"trial {i} names no method")
    return method, mode, value


def load_result(path):
    """One participant's result file, checked.

    Returns:
        A dict with "study", "session", "labels" ({key: label}) and "answers":
        [(method key, or None for a real control; mode; fooled, or judged
        real)] of the answered, non-practice trials.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise UserError(f"Cannot read the study result {path}: {e}.") from None
    except ValueError as e:
        _fail(path, f"not JSON ({e})")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        _fail(path, f"its \"format\" is not {FORMAT!r}")
    if not isinstance(data.get("trials"), list) or not isinstance(data.get("methods"), list):
        _fail(path, "it has no trials or methods list")
    labels = {m.get("key"): m.get("label") for m in data["methods"] if isinstance(m, dict)}
    answers = []
    for i, t in enumerate(data["trials"]):
        if not isinstance(t, dict):
            _fail(path, f"trial {i} is not an object")
        if t.get("practice") or t.get("choice") is None:
            continue  # Practice, or not answered (an image that failed to load).
        method, mode, value = _check_trial(path, i, t)
        if method is not None and method not in labels:
            _fail(path, f"trial {i} names the method {method!r}, which it does not list")
        answers.append((method, mode, value))
    return {"study": data.get("study"), "session": data.get("session"), "labels": labels,
            "answers": answers}


def merge_results(paths):
    """Pools participants' study results into one table: rows per (method, presentation).

    Args:
        paths: result files downloaded from one study page.

    Returns:
        {"interval", "study", "files", "rows": [{"method", "mode", "participants",
        "trials", "fooled", "rate", "ci_low", "ci_high"}], "real_control": [...]}:
        rate = fooled / trials; a real control row (one-at-a-time mode) counts
        real images judged real in its "fooled" column.

    Raises:
        UserError: a file that is not a study result, the same session twice, or
            files of different studies.
    """
    if not paths:
        raise UserError("No study results given: pass the JSON files participants downloaded.")
    results = [load_result(p) for p in paths]
    studies = {}
    for path, r in zip(paths, results):
        studies.setdefault(r["study"], []).append(path)
    if len(studies) > 1:
        listed = "; ".join(f"{s}: {', '.join(map(str, ps))}" for s, ps in studies.items())
        raise UserError(f"The files come from different study pages ({listed}). Merge the "
                        "files of one study (one report) at a time.")
    sessions = {}
    for path, r in zip(paths, results):
        if r["session"] in sessions:
            raise UserError(f"{path} and {sessions[r['session']]} are the same session (the "
                            "same file twice?); give each participant's file once.")
        sessions[r["session"]] = path
    labels, order = {}, []
    for r in results:
        for key, label in r["labels"].items():
            if key not in labels:
                labels[key] = label
                order.append(key)
    rows, control = {}, {}
    for r in results:
        for method, mode, value in r["answers"]:
            table = control if method is None else rows
            row = table.setdefault((method, mode), {"trials": 0, "fooled": 0,
                                                    "sessions": set()})
            row["trials"] += 1
            row["fooled"] += int(value)
            row["sessions"].add(r["session"])

    def finish(method, mode, row):
        low, high = wilson_interval(row["fooled"], row["trials"])
        out = {"mode": mode, "participants": len(row["sessions"]), "trials": row["trials"],
               "fooled": row["fooled"], "rate": row["fooled"] / row["trials"],
               "ci_low": low, "ci_high": high}
        return out if method is None else {"method": labels[method], **out}

    method_rows = [finish(m, mode, rows[(m, mode)]) for m in order for mode in MODES
                   if (m, mode) in rows]
    control_rows = [finish(None, mode, control[(None, mode)]) for mode in MODES
                    if (None, mode) in control]
    return {"interval": INTERVAL, "study": next(iter(studies)), "files": len(paths),
            "rows": method_rows, "real_control": control_rows}


def _pct(x):
    return f"{100 * x:.1f}%"


def format_markdown(merged):
    """The merged table as Markdown."""
    lines = [f"Real-vs-fake study {merged['study']}: {merged['files']} result files. "
             "Fooling rate = share of trials in which the generated image was taken for real; "
             f"CI: {merged['interval']}.", "",
             "| method | presentation | participants | trials | fooled | fooling rate | "
             "95% CI (Wilson) |", "|---|---|--:|--:|--:|--:|---|"]
    for r in merged["rows"]:
        lines.append(f"| {r['method']} | {MODE_NAMES[r['mode']]} | {r['participants']} | "
                     f"{r['trials']} | {r['fooled']} | {_pct(r['rate'])} | "
                     f"{_pct(r['ci_low'])} – {_pct(r['ci_high'])} |")
    for r in merged["real_control"]:
        lines.append(f"| real images (control: judged real) | {MODE_NAMES[r['mode']]} | "
                     f"{r['participants']} | {r['trials']} | {r['fooled']} | "
                     f"{_pct(r['rate'])} | {_pct(r['ci_low'])} – {_pct(r['ci_high'])} |")
    if not merged["rows"]:
        lines.append("| (no answered trials) | | | | | | |")
    return "\n".join(lines) + "\n"


def write_merged(merged, output):
    """Writes OUTPUT.md and OUTPUT.json (an .md or .json ending of `output` is dropped)."""
    from tfi2i.files import atomic_path, write_json_atomic

    base = output[:-len(".md")] if output.endswith(".md") else output
    base = base[:-len(".json")] if base.endswith(".json") else base
    with atomic_path(base + ".md") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(format_markdown(merged))
    write_json_atomic(base + ".json", merged)
    return base + ".md", base + ".json"


def results_folder_files(folder):
    """The study result files (*.json) in a folder, sorted."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".json"))
