"""Run configuration: library defaults < method preset < dataset preset < flags.

A run config is one flat dict. It is written as `config.json` in the run
directory before training starts, and it is the whole truth about a run:
resuming, exporting and evaluating read it back.
"""

import importlib.resources
import json
import os

from tfi2i.errors import UserError

# Options of the training platform, shared by every method. Method
# hyper-parameters (netG, lambda_L1, ...) come from the method's preset and
# its constructor.
BASE_DEFAULTS = {
    "method": "pix2pix",
    "dataset": None,
    "data_dir": None,
    "cache_dir": None,
    "run_dir": None,
    "direction": "AtoB",
    "preprocess": "resize_and_crop",
    "load_size": 286,
    "crop_size": 256,
    "batch_size": 1,
    "input_nc": 3,
    "output_nc": 3,
    "cache_data": False,
    "skip_bad_images": False,
    "seed": 0,
    "n_epochs": 100,
    "n_epochs_decay": 100,
    "max_steps": None,
    "lr": 0.0002,
    "beta1": 0.5,
    "beta2": 0.999,
    "lr_policy": "linear",
    "lr_decay_iters": 50,
    "save_every_steps": 1000,
    "keep_checkpoints": 3,
    "log_every_steps": 100,
    "sample_every_steps": 500,
    "val_split": None,
    "val_batches": 50,
    "validation_freq": 1,
    "eval_metrics": [],
    "eval_every_epochs": 1,
    "best_metric": None,
    "segmenter": None,
    "strategy": "auto",
    "mixed_precision": False,
    "jit_compile": False,
    "deterministic": False,
}

# Keys a resumed run may change; everything else must match the saved config.
RESUMABLE_KEYS = {
    "n_epochs", "n_epochs_decay", "max_steps", "save_every_steps", "keep_checkpoints",
    "log_every_steps", "sample_every_steps", "val_batches", "validation_freq", "strategy",
    "jit_compile", "cache_data", "data_dir", "cache_dir", "skip_bad_images",
    "eval_metrics", "eval_every_epochs", "best_metric", "segmenter",
}


def load_preset(method):
    """The JSON preset of `method` ({"defaults": ..., "datasets": ...})."""
    try:
        text = importlib.resources.files("tfi2i.configs").joinpath(f"{method}.json").read_text()
    except FileNotFoundError:
        return {"defaults": {}, "datasets": {}}
    return json.loads(text)


def resolve_config(method, dataset=None, overrides=None):
    """The full config of a run.

    Args:
        method: a name registered in `tfi2i.methods`.
        dataset: a named dataset whose preset applies (e.g. `facades`), or None.
        overrides: explicitly set options (flags); None values are ignored.

    Returns:
        A flat dict with every option of the platform and of the method.
    """
    from tfi2i.methods import get_method  # Here to keep `import tfi2i.config` light.

    cls = get_method(method)
    preset = load_preset(method)
    config = dict(BASE_DEFAULTS)
    config.update({k: v for k, v in preset.get("defaults", {}).items() if not k.startswith("_")})
    if dataset and dataset in preset.get("datasets", {}):
        config.update(preset["datasets"][dataset])
    config.update({"method": method, "dataset": dataset})
    known = set(config) | set(cls.init_arg_names())
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in known:
            raise UserError(f"Unknown option {key!r} for method {method!r}. Known: "
                            f"{', '.join(sorted(known))}.")
        config[key] = value
    return config


def parse_hparams(pairs):
    """`["key=value", ...]` -> dict; values are JSON where they parse, else strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--hparams entry {pair!r} is not key=value.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


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
    merged = dict(saved)
    for key in explicit_keys:
        if requested.get(key) == saved.get(key):
            continue
        if key not in RESUMABLE_KEYS:
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
