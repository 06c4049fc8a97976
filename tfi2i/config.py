"""Run configuration: library defaults < method defaults < method preset < dataset preset
< named preset (--preset) < flags.

A run config is one flat dict. It is written as `config.json` in the run
directory before training starts, and it is the whole truth about a run:
resuming, exporting and evaluating read it back.

Every key is declared once, as an `Option`: the training platform's options
below (`PLATFORM_OPTIONS`), a method's in its class (`options`). Flags,
defaults, value checks and the resume rule all derive from the declarations.
"""

import importlib.resources
import json
import os
import re

from tfi2i.errors import UserError
from tfi2i.options import Option, check_values, defaults

# The names of the data pipeline's modes, repeated here so that this module
# loads without TensorFlow; tests/test_options.py checks they agree.
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
STRATEGIES = ("auto", "mirrored", "multiworker", "one_device", "default")
EVAL_METRICS = ("psnr", "ssim", "l1", "fid", "kid", "seg")
# Metrics that compare each output with its own target: paired data only.
PAIRED_METRICS = ("psnr", "ssim", "l1", "seg")
LR_POLICIES = ("linear", "step", "cosine", "constant")
OPTIMIZERS = ("adam", "rmsprop")

# Shared with methods that need them (channels, which way the data go).
DIRECTION = Option("direction", str, "AtoB", "Translate A to B or B to A.",
                   choices=("AtoB", "BtoA"))
INPUT_NC = Option("input_nc", int, 3, "Channels of the input domain (1 gray or 3 RGB).",
                  choices=(1, 3))
OUTPUT_NC = Option("output_nc", int, 3, "Channels of the output domain (1 gray or 3 RGB).",
                   choices=(1, 3))

_Resumable = dict(resumable=True)

# Options of the training platform, shared by every method.
PLATFORM_OPTIONS = (
    Option("method", str, "pix2pix", "Translation method."),
    Option("preset", str, None, "A named variant of the method, from the \"presets\" of its "
           "configs/<method>.json (e.g. cyclegan's ablations: gan_only, cycle_only, "
           "gan_forward_cycle, gan_backward_cycle). It applies over the dataset's preset; "
           "flags still win."),
    Option("dataset", str, None, "Named dataset (see the README), downloaded into --cache_dir."),
    Option("data_dir", str, None, "A local dataset folder with train/ and test/ (or val/) "
           "subfolders, or trainA/ trainB/ for unpaired data.", must_exist=True, **_Resumable),
    Option("cache_dir", str, None, "Where named datasets are downloaded "
           "(default $TFI2I_CACHE or ~/.cache/tfi2i).", **_Resumable),
    Option("run_dir", str, None, "Where checkpoints, logs, samples and config.json go "
           "(default runs/<method>_<dataset>)."),
    Option("tfds_data_dir", str, None, "Where TensorFlow Datasets keeps tfds: datasets "
           "(default: TFDS's own, ~/tensorflow_datasets).", **_Resumable),
    # Data.
    Option("unpaired", bool, False, "Read a paired dataset (AB images, or A/ and B/ folders) as "
           "two unpaired domains, for unpaired methods."),
    DIRECTION,
    Option("preprocess", str, "resize_and_crop", "Training-time jitter, as in the reference.",
           choices=PREPROCESS_MODES),
    Option("load_size", int, 286, "Scale images to this size before cropping.", min=1),
    Option("crop_size", int, 256, "Then crop to this size (also the test-time size).", min=1),
    Option("batch_size", int, 1, "Global batch size, over all replicas.", min=1),
    INPUT_NC,
    OUTPUT_NC,
    Option("cache_data", bool, False, "Cache decoded images in memory.", **_Resumable),
    Option("skip_bad_images", bool, False, "Skip unreadable images with a warning instead of "
           "stopping.", **_Resumable),
    Option("exif_orientation", bool, True, "Turn photos upright by their EXIF orientation tag "
           "(phones set it); --noexif_orientation reads the pixels as stored, as the reference "
           "loader does."),
    Option("seed", int, 0, "Seed of initialisation, shuffling and jitter.", min=0),
    # Optimisation.
    Option("n_epochs", int, 100, "Epochs at the initial learning rate.", min=0, **_Resumable),
    Option("n_epochs_decay", int, 100, "Epochs of decay to zero (lr_policy linear/cosine).",
           min=0, **_Resumable),
    Option("max_steps", int, None, "Stop after this many steps in all (for smoke runs).", min=1,
           **_Resumable),
    Option("optimizer", str, "adam", "Optimizer of every network group: adam (beta1, beta2) "
           "or rmsprop (rho 0.9, no momentum: tf.compat.v1's RMSProp, which WGAN-style "
           "critics use).", choices=OPTIMIZERS),
    Option("lr", float, 0.0002, "Initial learning rate.", min=0.0),
    Option("beta1", float, 0.5, "Adam beta1.", min=0.0, max=1.0),
    Option("beta2", float, 0.999, "Adam beta2.", min=0.0, max=1.0),
    Option("weight_decay", float, 0.0, "L2 weight decay as in PyTorch's optimizers: "
           "weight_decay * w is added to every gradient (coupled, not AdamW's decoupled "
           "decay).", min=0.0),
    Option("ema_decay", float, 0.0, "Exponential moving average of the generators' weights, "
           "decay per update (e.g. 0.999); exports, translate, eval and --eval_metrics use "
           "the average instead of the last weights. 0: off.", min=0.0, max=0.99999),
    Option("lr_policy", str, "linear", "Learning-rate policy.", choices=LR_POLICIES),
    Option("lr_decay_iters", int, 50, "For --lr_policy=step: epochs between x0.1.", min=1),
    Option("lr_decay_steps", int, None, "For --lr_policy=step: optimizer steps between decays, "
           "instead of --lr_decay_iters epochs (UNIT's and MUNIT's reference: 100000).", min=1),
    Option("lr_decay_gamma", float, 0.1, "For --lr_policy=step: the factor of each decay "
           "(UNIT's and MUNIT's reference: 0.5).", min=0.0, max=1.0),
    # The run.
    Option("save_every_steps", int, 1000, "Checkpoint every N steps (and at epoch ends).",
           min=1, **_Resumable),
    Option("keep_checkpoints", int, 3, "Checkpoints kept.", min=1, **_Resumable),
    Option("log_every_steps", int, 100, "TensorBoard scalars every N steps.", min=1,
           **_Resumable),
    Option("sample_every_steps", int, 500, "Sample image grids every N steps.", min=1,
           **_Resumable),
    Option("val_split", str, None, "Split for validation (default: val if present, else test)."),
    Option("val_batches", int, 50, "Validation batches per evaluation.", min=1, **_Resumable),
    Option("validation_freq", int, 1, "Validate every N epochs.", min=1, **_Resumable),
    Option("eval_metrics", list, [], "Also score the validation split with these tfi2i.metrics, "
           "logged to TensorBoard.", choices=EVAL_METRICS, **_Resumable),
    Option("eval_every_epochs", int, 1, "Run --eval_metrics every N epochs.", min=1,
           **_Resumable),
    Option("best_metric", str, None, "Keep the checkpoint with the best value of this metric "
           "(one of --eval_metrics) in RUN/best/.", choices=EVAL_METRICS, **_Resumable),
    Option("segmenter", str, None, "Segmenter for --eval_metrics=seg (a .keras file or "
           "SavedModel; default: the facades segmenter in the cache).", must_exist=True,
           **_Resumable),
    Option("strategy", str, "auto", "Distribution: auto = MirroredStrategy with several GPUs.",
           choices=STRATEGIES, **_Resumable),
    Option("mixed_precision", bool, False, "float16 compute on GPU, bfloat16 on CPU."),
    Option("jit_compile", bool, False, "Compile the train step with XLA.", **_Resumable),
    Option("deterministic", bool, False, "Deterministic ops (slower; exact resume)."),
    Option("profile_steps", list, [], "Trace these steps with the TensorFlow profiler, "
           "FIRST,LAST (global steps, e.g. 20,24), into RUN/logs/plugins/profile: op-level "
           "time, for TensorBoard's Profile tab (pip install tensorboard-plugin-profile).",
           **_Resumable),
)


def run_options(method_class):
    """Every option of a run of `method_class`: the platform's, then the method's."""
    names = {o.name for o in PLATFORM_OPTIONS}
    return PLATFORM_OPTIONS + tuple(o for o in method_class.options if o.name not in names)


def load_preset(method):
    """The JSON preset of `method` ({"defaults": ..., "datasets": ...})."""
    try:
        text = importlib.resources.files("tfi2i.configs").joinpath(f"{method}.json").read_text()
    except FileNotFoundError:
        return {"defaults": {}, "datasets": {}, "presets": {}}
    preset = json.loads(text)
    # Keys starting with "_" are notes (sources, remarks), not options.
    return {"defaults": _settings(preset.get("defaults", {})),
            **{section: {name: _settings(values)
                         for name, values in preset.get(section, {}).items()
                         if not name.startswith("_")}
               for section in ("datasets", "presets")}}


def _settings(values):
    return {k: v for k, v in values.items() if not k.startswith("_")}


def resolve_config(method, dataset=None, overrides=None):
    """The full, checked config of a run.

    Args:
        method: a name registered in `tfi2i.methods`.
        dataset: a named dataset whose preset applies (e.g. `facades`), or None.
        overrides: explicitly set options (flags); None values are ignored.

    Returns:
        A flat dict with every option of the platform and of the method.

    Raises:
        UserError: an unknown method or option, an invalid value, or options
            that do not fit together (e.g. a crop size the generator cannot take).
    """
    from tfi2i.methods import METHODS, get_method  # Here to keep `import tfi2i.config` light.

    cls = get_method(method)
    options = run_options(cls)
    known = {o.name for o in options}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in overrides:
        if key not in known:
            owners = sorted(name for name, c in METHODS.items()
                            if key in {o.name for o in c.options})
            if owners:
                raise UserError(f"--{key} is an option of {', '.join(owners)}, not of {method}.")
            raise UserError(f"Unknown option {key!r} for method {method!r}. Known: "
                            f"{', '.join(sorted(known))}.")
    preset = load_preset(method)
    config = defaults(options)
    config.update(preset["defaults"])
    if dataset and dataset in preset["datasets"]:
        config.update(preset["datasets"][dataset])
    variant = overrides.get("preset")
    if variant is not None:
        if variant not in preset["presets"]:
            raise UserError(f"--preset={variant} is not a preset of {method}; "
                            + (f"its presets: {', '.join(sorted(preset['presets']))}."
                               if preset["presets"] else "it has none."))
        config.update(preset["presets"][variant])
    config.update({"method": method, "dataset": dataset})
    config.update(overrides)
    config = check_values(options, config)
    check_platform_config(config)
    cls.check_config(config)
    return config


def check_platform_config(config):
    """Checks the platform's options that depend on each other.

    Raises:
        UserError: options that do not fit together, naming them and the fix.
    """
    from tfi2i.data.pipeline import check_load_and_crop  # The pipeline's own rule.
    check_load_and_crop(config["preprocess"], config["load_size"], config["crop_size"])
    if config["n_epochs"] + config["n_epochs_decay"] < 1:
        raise UserError("--n_epochs plus --n_epochs_decay must be at least 1 (they are 0).")
    if config["deterministic"] and config["jit_compile"]:
        raise UserError("--deterministic and --jit_compile exclude each other: Keras runs "
                        "without XLA when op determinism is on. Choose one.")
    profile = config.get("profile_steps") or []
    if profile and not (len(profile) == 2 and all(str(s).isdigit() for s in profile)
                        and 1 <= int(profile[0]) <= int(profile[1])):
        raise UserError(f"--profile_steps={','.join(map(str, profile))} must be FIRST,LAST: "
                        "two step numbers from 1 up, FIRST <= LAST (e.g. --profile_steps=20,24).")
    best = config.get("best_metric")
    if best and best not in config["eval_metrics"]:
        raise UserError(f"--best_metric={best} is not among --eval_metrics="
                        f"{','.join(config['eval_metrics']) or '(none)'}: add it there.")
    dataset = config.get("dataset")
    if dataset and not config.get("data_dir"):
        from tfi2i.data import dataset_names
        if dataset not in dataset_names() and not dataset.startswith("tfds:"):
            raise UserError(f"--dataset={dataset} is not a dataset tfi2i knows: use one of "
                            f"{', '.join(dataset_names())}, tfds:NAME, or --data_dir=FOLDER.")


# key=value pairs separated by commas; a comma only separates where a new
# `name=` follows, so JSON values may contain commas ([1,2], {"a":1,"b":2}).
_HPARAM_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)")


def parse_hparams(text):
    """`"key=value,key=value"` (or a list of such strings) -> dict.

    Values are JSON where they parse, else strings.
    """
    pieces = [text] if isinstance(text, str) else list(text)
    options = {}
    for piece in pieces:
        for pair in _HPARAM_SPLIT.split(piece) if piece.strip() else []:
            key, sep, value = pair.strip().partition("=")
            if not sep or not key:
                raise UserError(f"--hparams entry {pair!r} is not key=value.")
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
    return options


def resumable_keys(method_class):
    """The options a resumed run of `method_class` may change."""
    return {o.name for o in run_options(method_class) if o.resumable}


def merge_for_resume(saved, requested, explicit_keys):
    """Config of a resumed run: the saved one, with the changes a resume allows.

    Args:
        saved: config.json of the run directory.
        requested: the config resolved from this invocation.
        explicit_keys: options the user set explicitly this time.

    Raises:
        UserError: an explicitly set option that defines the model or the data
            differs from the saved run.
    """
    from tfi2i.methods import get_method

    allowed = resumable_keys(get_method(saved["method"]))
    # Options added to the library after the run was saved take today's resolved value.
    merged = {**requested, **saved}
    for key in explicit_keys:
        if requested.get(key) == saved.get(key):
            continue
        if key not in allowed:
            raise UserError(
                f"The run in {saved.get('run_dir')!r} was trained with {key}={saved.get(key)!r}; "
                f"this command sets {key}={requested.get(key)!r}. Use a new --run_dir for a new "
                f"run, or drop --{key} to continue the old one.")
        merged[key] = requested[key]
    return merged


def read_config(run_dir):
    """The config.json of a run directory, or a UserError saying what is missing."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise UserError(f"{run_dir!r} is not a tfi2i run directory: it has no config.json. "
                        "Pass the --run_dir of a tfi2i-train run.")
    with open(path) as f:
        return json.load(f)
