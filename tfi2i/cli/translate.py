"""tfi2i-translate: translate an image or a folder of images of any size.

    tfi2i-translate --model=runs/pix2pix_facades --input=photos/ --output=out/
    tfi2i-translate --model=export/facades --input=label.png --output=out/
    tfi2i-translate --model=export/horse2zebra --direction=BtoA --input=zebras/ --output=out/

--model is a run directory, an export directory (its highest version) or a
.tflite file. Folders are searched recursively; outputs keep the inputs'
names, relative paths and sizes. Images larger than --tile_size are
translated in overlapping tiles blended without seams. Unreadable files are
skipped and counted.
"""

import os

from absl import flags, logging

from tfi2i.cli.common import run_main
from tfi2i.errors import UserError

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "A run directory, an export directory or a .tflite file.")
flags.DEFINE_string("input", None, "An image file or a folder of images (searched recursively).")
flags.DEFINE_string("output", None, "The folder to write translated images to.")
flags.DEFINE_string("direction", None, "Which generator, e.g. AtoB or BtoA (default: the "
                    "model's first).")
flags.DEFINE_string("checkpoint", None, "For a run directory: a checkpoint (default latest).")
flags.DEFINE_integer("batch_size", 4, "Images (or tiles) per call of the net.")
flags.DEFINE_integer("tile_size", 1024, "Images with a side above this are tiled.")
flags.DEFINE_integer("tile_overlap", 64, "Overlap of neighbouring tiles, in pixels.")


def main(argv):
    # TensorFlow's INFO lines (tracing, saving, converting) would bury the report.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments {' '.join(argv[1:])}; options are --flags.")
    for name in ("model", "input", "output"):
        if not FLAGS[name].value:
            raise UserError(f"--{name} is required (see --help).")
    source = os.path.realpath(FLAGS.input)
    if os.path.isdir(source) and os.path.realpath(FLAGS.output) == source:
        raise UserError(f"--output {FLAGS.output} is the input folder: the outputs would "
                        f"overwrite the images. Choose another folder.")

    from tfi2i.export import load, translate_files

    translator = load(FLAGS.model, checkpoint=FLAGS.checkpoint, batch_size=FLAGS.batch_size,
                      tile_size=FLAGS.tile_size, tile_overlap=FLAGS.tile_overlap)
    done, skipped = translate_files(translator, FLAGS.input, FLAGS.output, FLAGS.direction)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    print(f"Translated {done} images into {FLAGS.output}; skipped {len(skipped)} unreadable "
          f"files.")
    if not done:
        raise UserError(f"None of the images in {FLAGS.input} could be read.")


def run():
    """Console-script entry point."""
    run_main(main)


if __name__ == "__main__":
    run()
