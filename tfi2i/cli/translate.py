"""tfi2i-translate: translate an image or a folder of images of any size.

    tfi2i-translate --model=runs/pix2pix_facades --input=photos/ --output=out/
    tfi2i-translate --model=export/facades --input=label.png --output=out/
    tfi2i-translate --model=export/horse2zebra --direction=BtoA --input=zebras/ --output=out/

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


def main(args, explicit):
    quiet_absl_logging()

    from tfi2i.export import load, translate_files

    translator = load(args.model, checkpoint=args.checkpoint, batch_size=args.batch_size,
                      tile_size=args.tile_size, tile_overlap=args.tile_overlap)
    done, skipped = translate_files(translator, args.input, args.output, args.direction,
                                    exif_orientation=args.exif_orientation)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    print(f"Translated {done} images into {args.output}; skipped {len(skipped)} unreadable "
          f"files.")
    if not done:
        raise UserError(f"None of the images in {args.input} could be read.")


def run():
    """Console-script entry point."""
    run_main(main, OPTIONS, check=check)


if __name__ == "__main__":
    run()
