"""Scores a DTN run the way the paper does: a digit classifier of the target domain.

    python scripts/digit_classifier.py --dataset=mnist2usps \
        --data_dir=../shared/data/digits --run_dir=runs/dtn_mnist2usps

1. Trains a small CNN on the target domain's train split (USPS train for
   mnist2usps) and reports its accuracy on the target test split.
2. Reports its accuracy on the source domain's test split (a) as it is and
   (b) translated by the run's generator (MNIST test -> USPS-like digits).
   A DTN that transfers the domain while keeping each digit's identity
   raises (b) above (a).

Images are prepared as the training pipeline prepares them: 8-bit digits,
resized to 32 x 32 (bicubic, antialiased, clipped), gray, in [-1, 1]. The
source test split never took part in training: for MNIST from its t10k
files only it is the fixed carve-out of `tfi2i.data.digits` (digits
i % 5 == 4). The classifier is trained without augmentation (the usual
source-only baseline), seeded, and saved to --classifier (reused if there).
Prints one JSON line with the figures.
"""

import json
import os
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("dataset", "mnist2usps", "mnist2usps, usps2mnist or svhn2mnist.")
flags.DEFINE_string("data_dir", None, "The digits folder (see tfi2i.data.digits); default: "
                    "download into the cache.")
flags.DEFINE_string("run_dir", None, "The DTN run to score; without it only the classifier "
                    "and the untranslated figure are reported.")
flags.DEFINE_string("checkpoint", None, "A checkpoint of the run (default: its latest).")
flags.DEFINE_string("classifier", None, "Where the target classifier is kept (.keras); "
                    "default <cache>/digits/classifier_<target>.keras.")
flags.DEFINE_integer("epochs", 15, "Classifier training epochs.")
flags.DEFINE_integer("seed", 0, "Classifier seed.")
FLAGS = flags.FLAGS

SIZE = 32


def prepare(images, channels=1):
    """uint8 digits [N, H, W(, 3)] -> float32 [N, 32, 32, channels] in [-1, 1], as the pipeline."""
    import tensorflow as tf

    x = images.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 3 and channels == 1:
        x = np.sum(x * np.array([0.299, 0.587, 0.114], np.float32), axis=-1, keepdims=True)
    out = []
    for start in range(0, len(x), 1000):
        batch = tf.constant(x[start:start + 1000])
        if batch.shape[1:3] != (SIZE, SIZE):
            batch = tf.clip_by_value(tf.image.resize(batch, (SIZE, SIZE), method="bicubic",
                                                     antialias=True), 0.0, 1.0)
        out.append(batch.numpy())
    x = np.concatenate(out) * 2.0 - 1.0
    return np.repeat(x, 3, axis=-1) if channels == 3 and x.shape[-1] == 1 else x


def make_classifier():
    """A small digit CNN: two conv blocks, a dense layer, dropout, 10 logits."""
    import keras

    return keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10),
    ], name="digit_classifier")


def accuracy(classifier, images, labels):
    logits = classifier.predict(images, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == labels))


def main(_):
    import keras
    import tensorflow as tf

    from tfi2i.data import digits
    from tfi2i.data.download import default_cache_dir

    root = digits.resolve_digits(FLAGS.dataset, FLAGS.data_dir)
    source, target = root.domains
    t_train, t_train_labels = digits.load_domain(root, target, "train")
    t_test, t_test_labels = digits.load_domain(root, target, "test")
    s_test, s_test_labels = digits.load_domain(root, source, "test")
    report = {"dataset": FLAGS.dataset, "source_test": len(s_test), "target_train": len(t_train),
              "target_test": len(t_test)}

    path = FLAGS.classifier or str(default_cache_dir() / "digits" / f"classifier_{target}.keras")
    if os.path.exists(path):
        classifier = keras.models.load_model(path)
        report["classifier"] = f"loaded {path}"
    else:
        keras.utils.set_random_seed(FLAGS.seed)
        classifier = make_classifier()
        classifier.compile(keras.optimizers.Adam(1e-3),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=["accuracy"])
        start = time.time()
        classifier.fit(prepare(t_train), t_train_labels, batch_size=64, epochs=FLAGS.epochs,
                       verbose=2)
        report["classifier_train_s"] = round(time.time() - start, 1)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        classifier.save(path)
        report["classifier"] = f"trained, saved to {path}"
    report["classifier_target_test_accuracy"] = accuracy(classifier, prepare(t_test),
                                                         t_test_labels)
    report["untranslated_source_test_accuracy"] = accuracy(classifier, prepare(s_test),
                                                           s_test_labels)
    if FLAGS.run_dir:
        from tfi2i.training.checkpoints import restore_run

        model, config = restore_run(FLAGS.run_dir, FLAGS.checkpoint)
        source_images = prepare(s_test, config["input_nc"])
        translated = np.concatenate([model.translate(tf.constant(source_images[i:i + 500]))
                                     .numpy() for i in range(0, len(source_images), 500)])
        if translated.shape[-1] == 3:
            translated = np.sum(translated * np.array([0.299, 0.587, 0.114], np.float32),
                                axis=-1, keepdims=True)
        report["run_dir"] = FLAGS.run_dir
        report["run_step"] = int(model.step.numpy())
        report["translated_source_test_accuracy"] = accuracy(classifier, translated,
                                                             s_test_labels)
        # f's own accuracy on the source test digits (phase 1's classifier).
        logits = model.classify(tf.constant(source_images)).numpy()
        report["f_source_test_accuracy"] = float(np.mean(np.argmax(logits, -1) == s_test_labels))
    print(json.dumps(report))


if __name__ == "__main__":
    app.run(main)
