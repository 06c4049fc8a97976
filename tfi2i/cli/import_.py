"""tfi2i-import: the authors' pretrained pix2pix/CycleGAN generators as tfi2i runs.

    tfi2i-import --pretrained=horse2zebra                  # -> runs/horse2zebra_pretrained
    tfi2i-import --pretrained=facades_label2photo --output=runs/facades_pretrained
    tfi2i-import --pth=checkpoints/mine/latest_net_G.pth --output=runs/mine

--pretrained downloads a released generator (the reference's download_*_model.sh files)
into the cache once; --pth converts any generator checkpoint of the reference code
(pytorch-CycleGAN-and-pix2pix: ResnetGenerator or UnetGenerator state dict, torch zip or
legacy format). The architecture is read from the file's keys and shapes; --netG, --norm,
--ngf, --input_nc, --output_nc and --use_dropout are checked against it when given. The file
is read without pickle.load: only tensors and state dicts, never code.

The result is a run directory (config.json, checkpoints/) that tfi2i-translate,
tfi2i-export and tfi2i-eval take like a trained run; config.json's `imported` section
records the file, its SHA-256, the method that trained it and the options.
"""

import os

from tfi2i.cli.common import quiet_absl_logging, run_main
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC
from tfi2i.errors import UserError
from tfi2i.methods.options import NETG, NGF, NORM, USE_DROPOUT
from tfi2i.options import Option
from tfi2i.pretrained.registry import MIRROR_ENV, pretrained_names

_FROM_FILE = "default: read from the file"

OPTIONS = (
    Option("pth", str, None, "A reference generator checkpoint (.pth state dict) to convert.",
           must_exist=True),
    Option("pretrained", str, None, "A released model to download and convert (e.g. "
           "horse2zebra, facades_label2photo).", choices=tuple(pretrained_names())),
    Option("output", str, None, "The run directory to create (default with --pretrained: "
           "runs/<name>_pretrained)."),
    Option("method", str, None, "The method that trained the file: pix2pix or cyclegan "
           "(default: --pretrained's, else U-Net pix2pix, ResNet cyclegan).",
           choices=("pix2pix", "cyclegan")),
    NETG.with_default(None),
    NORM.with_default(None),
    NGF.with_default(None),
    INPUT_NC.with_default(None),
    OUTPUT_NC.with_default(None),
    USE_DROPOUT.with_default(None),
    DIRECTION.with_default(None),
    Option("cache_dir", str, None, "Where --pretrained files are downloaded (default "
           "$TFI2I_CACHE or ~/.cache/tfi2i)."),
    Option("mirror", str, None, f"A base URL to download --pretrained files from, holding "
           f"pix2pix/ and cyclegan/ (default ${MIRROR_ENV}, else the authors' server)."),
    Option("timeout", int, 60, "Seconds to wait for the server at a time.", min=1),
)

_DEFAULT_TEXTS = {name: _FROM_FILE for name in
                  ("netG", "norm", "ngf", "input_nc", "output_nc")}
_DEFAULT_TEXTS["use_dropout"] = ("default: read from a ResNet file; for a U-Net, the method's "
                                 "(pix2pix on)")
_DEFAULT_TEXTS["direction"] = "default: --pretrained's, else AtoB"


def output_dir(args):
    """The run directory to write: --output, or runs/<name>_pretrained for --pretrained."""
    if args.output:
        return args.output
    return os.path.join("runs", f"{args.pretrained.replace('/', '_')}_pretrained")


def check(args, explicit):
    """Checks the options before anything is read or downloaded."""
    if bool(args.pth) == bool(args.pretrained):
        raise UserError("Give either --pth=FILE (a checkpoint to convert) or --pretrained=NAME "
                        "(a released model to download), not both or neither.")
    if args.pth and not args.output:
        raise UserError("--output is required with --pth: the run directory to create.")
    output = output_dir(args)
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise UserError(f"--output={output} exists and is not an empty folder; choose a new "
                        "run directory (or remove the old one).")
    if args.pth and os.path.isdir(args.pth):
        raise UserError(f"--pth={args.pth} is a folder; pass the .pth file (e.g. "
                        f"{os.path.join(args.pth, 'latest_net_G.pth')}).")


def main(args, explicit):
    quiet_absl_logging()
    from tfi2i.pretrained.convert import ARCHITECTURE_OPTIONS, import_checkpoint
    from tfi2i.pretrained.download import fetch_pretrained, get_spec

    spec, source = None, None
    path = args.pth
    if args.pretrained:
        spec = get_spec(args.pretrained)
        print(f"{spec.name}: {spec.description} ({spec.method}, dataset {spec.dataset}).")
        path, source = fetch_pretrained(spec.name, args.cache_dir, args.mirror, args.timeout)
        print(f"File: {path}")
    output = output_dir(args)
    architecture = {k: v for k, v in explicit.items() if k in ARCHITECTURE_OPTIONS}
    config, summary = import_checkpoint(path, output, architecture, method=args.method,
                                        direction=args.direction, source=source,
                                        pretrained=spec)
    options = summary["options"]
    print(f"Imported {os.path.basename(os.fspath(path))} ({summary['format']} torch format, "
          f"sha256 {config['imported']['sha256'][:12]}...) into {output}:")
    print(f"  {options['netG']} generator, ngf {options['ngf']}, {options['norm']} norm, "
          f"{options['input_nc']} -> {options['output_nc']} channels, "
          f"{summary['parameters'] / 1e6:.2f} M parameters; trained by {summary['method']}, "
          f"translates {summary['direction']}.")
    if summary["stripped_prefix"]:
        print(f"  Stripped the {summary['stripped_prefix']!r} key prefix (a DataParallel save).")
    if summary["ignored_keys"]:
        print(f"  Ignored {len(summary['ignored_keys'])} running-statistics keys the reference "
              f"does not use either (instance norm of torch < 0.4, num_batches_tracked).")
    print("  Runs in inference mode (batch norm running statistics, no dropout): the "
          "reference's test.py --eval.")
    print(f"Next: tfi2i-translate --model={output} --input=IMAGES --output=OUT\n"
          f"      tfi2i-export --run_dir={output} --output=export/{os.path.basename(output)}")


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check, default_texts=_DEFAULT_TEXTS)


if __name__ == "__main__":
    run()
