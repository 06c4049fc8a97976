"""FID/KID of a run's translations beside the untranslated inputs', on one protocol.

    python scripts/translation_fid.py --run_dir=runs/cyclegan_facades \
        --data_dir=../shared/data/facades --direction=BtoA --size=128

Reads the test split as the test-time pipeline does (each image resized to --size,
bicubic), translates the inputs with the run's default generator, and scores against the
split's targets with the standard FID Inception weights: FID and KID of the translations,
and of the untranslated inputs (the baseline a method must beat). Images are rounded to
8 bits first, as saved outputs would be. KID draws subsets of half the set (at most 1000). Paired folders (AB images, A/ B/) give
input/target pairs; for unpaired folders (testA/ testB/) the other domain is the target.
Prints one JSON line.
"""

import json

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "The training run.", required=True)
flags.DEFINE_string("data_dir", None, "The dataset folder.", required=True)
flags.DEFINE_string("split", "test", "The split to score.")
flags.DEFINE_enum("direction", "AtoB", ["AtoB", "BtoA"], "Which half is the input.")
flags.DEFINE_integer("size", 128, "Test-time size (the pipeline's crop_size).")
flags.DEFINE_string("checkpoint", None, "A checkpoint of the run (default latest).")


def _uint8(images):
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5)


def main(argv):
    del argv
    from tfi2i.data import has_split, make_dataset
    from tfi2i.metrics import FeatureExtractor, fid_from_features, kid_from_features
    from tensorflow.train import latest_checkpoint
    from tfi2i.training.checkpoints import checkpoint_dir, restore_run

    model, config = restore_run(FLAGS.run_dir, FLAGS.checkpoint)
    paired = has_split(FLAGS.data_dir, FLAGS.split, paired=True)
    data = make_dataset(FLAGS.data_dir, FLAGS.split, paired=paired, direction=FLAGS.direction,
                        crop_size=FLAGS.size, load_size=FLAGS.size, batch_size=8,
                        training=False, size_divisor=model.size_divisor)
    inputs, outputs, targets = [], [], []
    for x, y in data:
        inputs.append(_uint8(x.numpy()))
        outputs.append(_uint8(model.translate(x).numpy()))
        targets.append(_uint8(y.numpy()))
    inputs, outputs, targets = (np.concatenate(a) for a in (inputs, outputs, targets))
    extractor = FeatureExtractor()
    f_in, f_out, f_real = (extractor.from_images(a) for a in (inputs, outputs, targets))
    # Subsets of half the set: with subsets as large as the set, every draw is the
    # whole set and the spread says nothing.
    subset = min(1000, len(inputs) // 2)
    kid, kid_std = kid_from_features(f_out, f_real, subset_size=subset)
    kid_in, _ = kid_from_features(f_in, f_real, subset_size=subset)
    print(json.dumps({
        "run_dir": FLAGS.run_dir, "checkpoint": FLAGS.checkpoint or latest_checkpoint(
            checkpoint_dir(FLAGS.run_dir)),
        "n": len(inputs), "size": FLAGS.size, "direction": FLAGS.direction,
        "fid_translated": round(fid_from_features(f_out, f_real), 2),
        "fid_untranslated": round(fid_from_features(f_in, f_real), 2),
        "kid_translated": round(kid, 5), "kid_translated_std": round(kid_std, 5),
        "kid_untranslated": round(kid_in, 5), "kid_subset_size": subset}))


if __name__ == "__main__":
    app.run(main)
