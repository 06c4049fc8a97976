"""tfi2i-train: train a translation method.

    tfi2i-train --method=pix2pix --dataset=facades
    tfi2i-train --method=pix2pix --data_dir=path/to/facades --direction=BtoA \
        --crop_size=128 --load_size=143 --netG=unet_128 --n_epochs=1 --n_epochs_decay=0

Options left unset take the method's preset for the dataset (configs/), then
the method's and the library's defaults. Re-running the same command on the
same --run_dir continues the run from its latest checkpoint.

The flags are the platform's options (tfi2i.config.PLATFORM_OPTIONS) and
every registered method's (`options` of its class): a new method brings its
flags with it.
"""

from tfi2i.cli.common import run_main
from tfi2i.config import PLATFORM_OPTIONS, parse_hparams, resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS
from tfi2i.options import Option, merge_declarations

# Options of the command itself, not of a run.
COMMAND_OPTIONS = (
    Option("resume", bool, True, "Continue the run found in --run_dir. --noresume refuses to "
           "touch a run directory that already holds checkpoints."),
    Option("hparams", str, None, "More method options as key=value pairs (JSON values), "
           "e.g. --hparams=lambda_gp=5.0,gan_mode=hinge."),
)


def _declarations():
    """All flags: the platform's options, each method's, the command's; with defaults per method."""
    groups = [("platform", PLATFORM_OPTIONS)]
    groups += [(name, cls.options) for name, cls in sorted(METHODS.items())]
    groups.append(("command", COMMAND_OPTIONS))
    merged = merge_declarations(groups)
    method = merged["method"][0]
    merged["method"] = (Option(method.name, str, method.default, method.help,
                               choices=tuple(sorted(METHODS))), merged["method"][1])
    options = tuple(option for option, _ in merged.values())
    # Method options whose default differs between methods say so in --helpfull.
    texts = {}
    for name, (option, owners) in merged.items():
        per_method = {m: v for m, v in owners.items() if m in METHODS}
        if len({repr(v) for v in per_method.values()}) > 1:
            texts[name] = "; ".join(f"{m}: {option.with_default(v).describe_default()}"
                                    for m, v in per_method.items())
    return options, texts


OPTIONS, DEFAULT_TEXTS = _declarations()


def check(args, explicit):
    """Resolves and checks the run config before anything is loaded or trained."""
    if not args.dataset and not args.data_dir:
        raise UserError("Say what to train on: --dataset=NAME (e.g. --dataset=sample) or "
                        "--data_dir=FOLDER.")
    args.config = resolve_config(args.method, args.dataset, run_overrides(explicit))


def run_overrides(explicit):
    """The run options set on the command line (flags and --hparams)."""
    overrides = {k: v for k, v in explicit.items() if k not in ("resume", "hparams")}
    overrides.update(parse_hparams(explicit.get("hparams") or ""))
    return overrides


def main(args, explicit):
    from tfi2i.training.trainer import train  # Imports the training stack: after the checks.
    train(args.config, explicit_keys=set(run_overrides(explicit)), resume=args.resume)


def run():
    run_main(main, OPTIONS, check=check, default_texts=DEFAULT_TEXTS)


if __name__ == "__main__":
    run()
