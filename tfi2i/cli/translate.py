"""tfi2i-translate: translate an image or a folder of images of any size.

    tfi2i-translate --model=runs/pix2pix_facades --input=photos/ --output=out/
    tfi2i-translate --model=export/facades --input=label.png --output=out/
    tfi2i-translate --model=export/horse2zebra --direction=BtoA --input=zebras/ --output=out/

A multimodal model (bicycle_gan, munit, drit) draws a code per image; make it
reproducible with --seed, write several outputs per input with --num_samples
(a.png -> a_sample0.png, a_sample1.png, ...), or take the code of a reference
image of the target domain with --style_image:

    tfi2i-translate --model=runs/bicycle_facades --input=labels/ --output=out/ \
        --num_samples=10 --seed=0
    tfi2i-translate --model=export/munit --input=photos/ --output=out/ --style_image=ref.jpg

--model is a run directory, an export directory (its highest version) or a
.tflite file. Folders are searched recursively; outputs keep the inputs'
names, relative paths and sizes. The formats are those of training data
(JPEG, PNG, BMP, GIF, WebP, TIFF), decoded the same way and turned upright by
their EXIF orientation (--noexif_orientation: as stored); other files are
counted in a warning. Images larger than --tile_size are translated in
overlapping tiles blended without seams. Unreadable files are skipped and
counted.
"""

import os

from tfi2i.cli.common import quiet_absl_logging, run_main
from tfi2i.errors import UserError
from tfi2i.options import Option

OPTIONS = (
    Option("model", str, None, "A run directory, an export directory or a .tflite file.",
           required=True, must_exist=True),
    Option("input", str, None, "An image file or a folder of images (searched recursively).",
           required=True, must_exist=True),
    Option("output", str, None, "The folder to write translated images to.", required=True),
    Option("direction", str, None, "Which generator, e.g. AtoB or BtoA (default: the model's "
           "first)."),
    Option("checkpoint", str, None, "For a run directory: a checkpoint (default latest)."),
    Option("batch_size", int, 4, "Images (or tiles) per call of the net.", min=1),
    Option("tile_size", int, 1024, "Images with a side above this are tiled.", min=1),
    Option("tile_overlap", int, 64, "Overlap of neighbouring tiles, in pixels.", min=0),
    Option("num_samples", int, 1, "Outputs per input of a multimodal model, each with its "
           "own code (files NAME_sample<k>.EXT).", min=1),
    Option("style_image", str, None, "A multimodal model's code from this image of the target "
           "domain (its style or attribute), for every input.", must_exist=True),
    Option("seed", int, None, "Seeds a multimodal model's codes: the same seed, inputs and "
           "order give the same outputs (default: a new draw each run)."),
    Option("exif_orientation", bool, True, "Turn photos upright by their EXIF orientation tag "
           "first; --noexif_orientation translates the pixels as stored (as the reference "
           "loader reads them)."),
)


def check(args, explicit):
    """Checks the options that depend on each other, before anything is loaded."""
    source = os.path.realpath(args.input)
    if os.path.isdir(source) and os.path.realpath(args.output) == source:
        raise UserError(f"--output={args.output} is the input folder: the outputs would "
                        "overwrite the images. Choose another folder.")
    if args.style_image and args.num_samples > 1:
        raise UserError("--style_image fixes the code, so every sample would be the same; "
                        "leave out --num_samples or --style_image.")
    if args.style_image and os.path.isdir(args.style_image):
        raise UserError(f"--style_image={args.style_image} is a folder; give one image file.")


def main(args, explicit):
    quiet_absl_logging()

    from tfi2i.export import load, translate_files

    from tfi2i.export.translator import read_image

    translator = load(args.model, checkpoint=args.checkpoint, batch_size=args.batch_size,
                      tile_size=args.tile_size, tile_overlap=args.tile_overlap, seed=args.seed)
    direction = args.direction or translator.directions[0]
    multimodal = direction in translator.code_nets
    if not multimodal and (args.num_samples > 1 or args.style_image or args.seed is not None):
        raise UserError(f"--num_samples, --style_image and --seed are for multimodal models "
                        f"(bicycle_gan, munit, drit); {args.model} translates {direction} "
                        f"with one output per input.")
    codes = None
    if args.style_image:
        style = read_image(args.style_image, translator.output_nc, args.exif_orientation)
        codes = translator.style_codes([style], direction)[0]
    done, skipped = translate_files(translator, args.input, args.output, direction,
                                    exif_orientation=args.exif_orientation,
                                    num_samples=args.num_samples, codes=codes)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    samples = f" ({args.num_samples} samples each)" if args.num_samples > 1 else ""
    print(f"Translated {done} images{samples} into {args.output}; skipped {len(skipped)} "
          f"unreadable files.")
    if not done:
        raise UserError(f"None of the images in {args.input} could be read.")


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check)


if __name__ == "__main__":
    run()
