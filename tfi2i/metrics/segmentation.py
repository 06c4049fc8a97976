"""Segmentation score ("FCN-score", pix2pix section 4.2) on facades and Cityscapes.

The protocol: a segmentation network trained on real photos labels the generated photos; the
better the translation, the more its labels agree with the ground truth the photos were
generated from. The same network on the real test photos gives the upper bound.

- Labels come as colour maps (the right half "B" of the pix2pix facades files). They are
  decoded to class ids by nearest palette colour, with the JPEG-smeared edge pixels (up to
  ~80 RGB units off at region edges, nearly none in region interiors) filled by the majority
  of their confidently decoded neighbours (`decode_label_map`).
- Scores (from one confusion matrix accumulated over the whole set, rows = truth):
  per-pixel accuracy, mean per-class accuracy, mean class IoU, as in pix2pix's
  `scripts/eval_cityscapes/evaluate.py`. Per-class values are NaN for classes that do not
  occur (no true pixels for accuracy; no true or predicted pixels for IoU) and the means skip
  them; when every class occurs in the set this equals the pix2pix script.
- Segmenters: a `.keras` file or a SavedModel taking images `[N, H, W, 3]` (float32 in
  [0, 255], or uint8) and returning per-class scores `[N, h, w, C]` (logits or
  probabilities). Images are resized to the model's input size when it is fixed; scores are
  resized bilinearly to the label size before the argmax. For Cityscapes, bring a segmenter
  trained on the Cityscapes train ids (`CITYSCAPES_PALETTE`).
- Facades segmenter: `train_facades_segmenter` (also
  `python -m tfi2i.metrics.segmentation --data_dir ../shared/data/facades`) trains a small
  U-Net on facades/train photos at 128 px and writes `<cache>/segmenters/facades_128.keras`.
  Measured (60 epochs, seed 0, 11 min on a shared 2-core CPU): the real facades/test photos
  score pixel acc 0.638, class acc 0.414, class IoU 0.308, the upper bound for translations.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.files import atomic_path

# CMP Facade Database classes (Tylecek & Sara 2013), in label-id order 0..11 (the CMP ids
# 1..12). The pix2pix facades label maps draw the ids with evenly spaced colours of the jet
# colour map (dark blue = background ... dark red = shop). The palette below was measured from
# facades/train (median colour of region interiors of each cluster, `derive_palette`). The
# names assume the ids run along jet in CMP order, which the maps agree with (dark red =
# shop fronts at the bottom, red = pillars, light blue = windows) but no spec was read.
FACADES_CLASSES = ("background", "facade", "window", "door", "cornice", "sill", "balcony",
                   "blind", "deco", "molding", "pillar", "shop")
FACADES_PALETTE = np.array([
    (0, 0, 222), (0, 48, 255), (0, 128, 255), (1, 207, 255), (32, 255, 224), (112, 254, 142),
    (192, 255, 63), (255, 240, 1), (255, 159, 0), (255, 80, 0), (253, 0, 0), (174, 0, 1),
], np.uint8)

# Cityscapes train ids 0..18 and their colours (cityscapesScripts' labels.py).
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
], np.uint8)

# Colours of Cityscapes classes outside the 19 train ids (unlabeled, dynamic, ground, parking,
# rail track, guard rail, bridge, tunnel, caravan, trailer): decoded as IGNORE_LABEL.
CITYSCAPES_VOID_COLOURS = np.array([
    (0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140), (180, 165, 180),
    (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110),
], np.uint8)

IGNORE_LABEL = 255

# name -> (class names, palette, void colours or None)
PALETTES = {"facades": (FACADES_CLASSES, FACADES_PALETTE, None),
            "cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, CITYSCAPES_VOID_COLOURS)}

FACADES_SEGMENTER_SIZE = 128


class LabelMaps:
    """Colour label maps -> class ids, with a named palette or an array of class colours.

    The one palette lookup of the FCN-score: the evaluator and `tfi2i-eval` both decode with it.

    Args:
        palette: a name in `PALETTES` ("facades", "cityscapes"), or class colours `[C, 3]`
            (no class names, no void colours).

    Attributes:
        classes: class names, or None for an array palette.
        palette: the class colours `[C, 3]`.
        void_colours: colours decoded as `IGNORE_LABEL`, or None.
        num_classes: C.
    """

    def __init__(self, palette="facades"):
        if isinstance(palette, str):
            if palette not in PALETTES:
                raise UserError(f"palette {palette!r}: choose from {sorted(PALETTES)}")
            self.classes, self.palette, self.void_colours = PALETTES[palette]
        else:
            self.classes, self.palette, self.void_colours = None, np.asarray(palette), None
        self.num_classes = len(self.palette)

    def __call__(self, colours):
        """Class ids (int32 numpy `[..., H, W]`) of colour maps `[..., H, W, 3]` in [0, 255]."""
        return decode_label_map(colours, self.palette, self.void_colours).numpy()


def decode_label_map(colours, palette=FACADES_PALETTE, void_colours=None, confident=25.0,
                     window=3, passes=3):
    """Class ids `[..., H, W]` (int32) of colour label maps `[..., H, W, 3]`.

    Each pixel takes its nearest palette colour. JPEG's chroma subsampling smears colours over
    2-4 px at region edges, where a blend of two classes can lie nearest to a third (blue +
    red -> "background" dark blue). So pixels farther than `confident` from every palette
    colour instead take the majority class of the confident pixels in a `window` box,
    repeated `passes` times to reach the middle of wide edge bands. On dense synthetic label
    maps saved as JPEG (4:2:0, quality 75-95) this decodes 97-98% of pixels right, against
    89-93% for nearest colour alone. Pixels decoded as one of `void_colours` (classes not
    scored) get `IGNORE_LABEL`.
    """
    colours = tf.cast(colours, tf.float32)
    batched = colours.shape.rank == 4
    if not batched:
        colours = colours[None]
    num_classes = len(palette)
    if void_colours is not None and len(void_colours):
        palette = np.concatenate([np.asarray(palette), np.asarray(void_colours)])
    palette = tf.constant(np.asarray(palette), tf.float32)
    distances = tf.norm(colours[..., None, :] - palette, axis=-1)
    labels = tf.argmin(distances, axis=-1, output_type=tf.int32)
    sure = tf.reduce_min(distances, axis=-1) < confident
    for _ in range(passes):
        votes = tf.nn.avg_pool2d(
            tf.one_hot(labels, palette.shape[0]) * tf.cast(sure, tf.float32)[..., None],
            window, 1, "SAME")
        fill = tf.logical_and(tf.logical_not(sure), tf.reduce_sum(votes, -1) > 0)
        labels = tf.where(fill, tf.argmax(votes, -1, output_type=tf.int32), labels)
        sure = tf.logical_or(sure, fill)
    labels = tf.where(labels >= num_classes, IGNORE_LABEL, labels)
    return labels if batched else labels[0]


def derive_palette(label_images, initial, iterations=10, window=7, max_variance=20.0,
                   max_pixels=None, seed=0):
    """Refine palette colours from label maps: k-means on region-interior pixels.

    Interior pixels (variance below `max_variance` in a `window` box in every channel) are
    free of JPEG edge noise; each colour becomes the median of the pixels nearest to it.
    Used to measure `FACADES_PALETTE` (all 400 train maps, 10 iterations); kept so anyone can
    re-check it. `max_pixels` subsamples the interior pixels (randomly, `seed`) for speed.

    Returns:
        (palette uint8 [K, 3], interior pixel count per colour).
    """
    from scipy.ndimage import uniform_filter

    pixels = []
    for image in label_images:
        image = np.asarray(image, np.float64)
        keep = np.ones(image.shape[:2], bool)
        for c in range(3):
            mean = uniform_filter(image[..., c], window)
            keep &= uniform_filter(image[..., c] ** 2, window) - mean ** 2 < max_variance
        pixels.append(image[keep])
    pixels = np.concatenate(pixels)
    if max_pixels and len(pixels) > max_pixels:
        pixels = pixels[np.random.default_rng(seed).choice(len(pixels), max_pixels, False)]
    centres = np.asarray(initial, np.float64)
    for _ in range(iterations):
        nearest = ((pixels[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.array([np.median(pixels[nearest == k], 0) if np.any(nearest == k)
                            else centres[k] for k in range(len(centres))])
    return np.round(centres).astype(np.uint8), np.bincount(nearest, minlength=len(centres))


def confusion_matrix(true, pred, num_classes, ignore_label=IGNORE_LABEL):
    """`[C, C]` int64 counts, rows = true class, columns = predicted; `ignore_label` skipped."""
    true = np.asarray(true).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"label and prediction sizes differ: {true.shape} vs {pred.shape}")
    keep = (true != ignore_label) & (true >= 0) & (true < num_classes)
    true, pred = true[keep], pred[keep]
    if np.any((pred < 0) | (pred >= num_classes)):
        raise ValueError(f"predicted class ids outside [0, {num_classes})")
    return np.bincount(true * num_classes + pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def scores_from_confusion(matrix, class_names=None):
    """Per-pixel accuracy, mean class accuracy, mean class IoU (+ per-class lists).

    NaN marks a class with nothing to score (see the module docstring); the means skip them.
    """
    matrix = np.asarray(matrix, np.float64)
    diagonal = np.diag(matrix)
    true_count, pred_count = matrix.sum(1), matrix.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_acc = np.where(true_count > 0, diagonal / true_count, np.nan)
        union = true_count + pred_count - diagonal
        class_iou = np.where(union > 0, diagonal / union, np.nan)
    total = matrix.sum()
    scores = {
        "pixel_acc": float(diagonal.sum() / total) if total else float("nan"),
        "class_acc": float(np.nanmean(class_acc)) if np.any(true_count > 0) else float("nan"),
        "class_iou": float(np.nanmean(class_iou)) if np.any(union > 0) else float("nan"),
        "per_class_acc": [float(v) for v in class_acc],
        "per_class_iou": [float(v) for v in class_iou],
    }
    if class_names is not None:
        scores["classes"] = list(class_names)
    return scores


class Segmenter:
    """A segmentation model behind one call: uint8/float images -> class ids.

    Args:
        model: a Keras model, or a path to a `.keras` file or a SavedModel folder.
    """

    def __init__(self, model):
        self.path = model if isinstance(model, (str, os.PathLike)) else None
        self.input_size = None
        self.input_dtype = tf.float32
        if self.path is None:
            self._fn = lambda x: model(x, training=False)
            self._set_input_size(model.inputs[0].shape)
        elif str(self.path).endswith(".keras"):
            if not os.path.isfile(self.path):
                raise UserError(f"segmenter {self.path} does not exist")
            keras_model = keras.models.load_model(self.path, compile=False)
            self._fn = lambda x: keras_model(x, training=False)
            self._set_input_size(keras_model.inputs[0].shape)
        else:
            self._load_saved_model(str(self.path))

    def _set_input_size(self, shape):
        if shape is not None and len(shape) == 4 and shape[1] and shape[2]:
            self.input_size = (int(shape[1]), int(shape[2]))

    def _load_saved_model(self, path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise UserError(f"segmenter {path} is neither a .keras file nor a SavedModel "
                            f"folder (no saved_model.pb)")
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise UserError(f"SavedModel {path} has no serving_default signature")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise UserError(f"SavedModel {path}: serving_default must take one image "
                            f"tensor, it takes {sorted(inputs)}")
        (name, spec), = inputs.items()
        self.input_dtype = spec.dtype
        self._set_input_size(spec.shape)

        def call(x):
            outputs = signature(**{name: tf.cast(x, spec.dtype)})
            if len(outputs) != 1:
                raise UserError(f"SavedModel {path}: serving_default must return one "
                                f"score tensor, it returns {sorted(outputs)}")
            return next(iter(outputs.values()))

        self._loaded = loaded  # keep the variables alive
        self._fn = call

    def predict(self, images, label_size=None):
        """Class ids `[N, h, w]` of images `[N, H, W, 3]` in [0, 255].

        Args:
            images: uint8 or float images.
            label_size: (h, w) of the labels to compare with; default the image size.
        """
        images = tf.cast(images, tf.float32)
        label_size = label_size or tuple(images.shape[1:3])
        if self.input_size and tuple(images.shape[1:3]) != self.input_size:
            images = tf.image.resize(images, self.input_size, antialias=True)
        if self.input_dtype == tf.uint8:
            images = tf.cast(tf.round(tf.clip_by_value(images, 0, 255)), tf.uint8)
        scores = tf.cast(self._fn(images), tf.float32)
        if tuple(scores.shape[1:3]) != tuple(label_size):
            scores = tf.image.resize(scores, label_size, method="bilinear")
        return tf.argmax(scores, axis=-1, output_type=tf.int32).numpy()


class SegmentationScore:
    """Accumulates a confusion matrix over batches of (images, true class ids)."""

    def __init__(self, segmenter, num_classes, class_names=None):
        self.segmenter = segmenter
        self.num_classes = num_classes
        self.class_names = class_names
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, images, label_ids):
        """Segment `images` [N, H, W, 3] and count against `label_ids` [N, h, w]."""
        label_ids = np.asarray(label_ids)
        pred = self.segmenter.predict(images, label_ids.shape[1:3])
        self.matrix += confusion_matrix(label_ids, pred, self.num_classes)

    def result(self):
        """Scores of everything seen so far (`scores_from_confusion`)."""
        return scores_from_confusion(self.matrix, self.class_names)


def default_facades_segmenter_path():
    """`<cache>/segmenters/facades_128.keras`."""
    from tfi2i.files import default_cache_dir

    return str(default_cache_dir() / "segmenters" / f"facades_{FACADES_SEGMENTER_SIZE}.keras")


TRAIN_COMMAND = "python -m tfi2i.metrics.segmentation --data_dir ../shared/data/facades"


def load_segmenter(path=None):
    """A `Segmenter` from a path; None: the trained facades segmenter in the cache."""
    path = path or default_facades_segmenter_path()
    if not os.path.exists(path):
        raise UserError(f"segmenter {path} not found. For facades, train it (a few minutes "
                        f"on CPU) with:\n    {TRAIN_COMMAND}\nor pass --segmenter=PATH "
                        f"(a .keras file or a SavedModel folder).")
    return Segmenter(path)


def load_ab_split(folder, size=None):
    """Photos (A, left) and label ids (B, right, decoded) of a pix2pix facades split.

    Returns:
        (photos uint8 [N, H, W, 3], label ids int32 [N, H, W], file names); with `size`,
        photos are resized (area) and labels decoded then resized by nearest neighbour.
    """
    from tfi2i.data.decode import list_images
    from tfi2i.metrics.fid import decode_image_file

    photos, labels, names = [], [], []
    for path in list_images(folder):
        photo = decode_image_file(path, "left")
        label = decode_label_map(decode_image_file(path, "right"))
        if size:
            photo = tf.cast(tf.round(tf.image.resize(photo, (size, size), "area")), tf.uint8)
            label = tf.image.resize(label[..., None], (size, size), "nearest")[..., 0]
        photos.append(photo.numpy())
        labels.append(label.numpy())
        names.append(os.path.basename(path))
    return np.stack(photos), np.stack(labels), names


def _conv_bn_relu(x, filters, strides=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def build_facades_segmenter(size=FACADES_SEGMENTER_SIZE, num_classes=len(FACADES_CLASSES),
                            width=24):
    """A small U-Net: images [N, size, size, 3] in [0, 255] -> logits [N, size, size, C].

    It works at half resolution (a strided stem, logits upsampled bilinearly at the end) to
    keep CPU training to minutes; four scales (size/2 .. size/16) give the context to tell a
    window from a door. Only standard Keras layers, so the `.keras` file loads without tfi2i.
    """
    images = keras.Input((size, size, 3), name="images")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(images)
    x = _conv_bn_relu(x, width, strides=2)
    skips = []
    for filters in (width, 2 * width, 4 * width):
        x = _conv_bn_relu(x, filters)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
        x = _conv_bn_relu(x, min(2 * filters, 4 * width))
    x = _conv_bn_relu(x, 4 * width)
    for filters, skip in zip((2 * width, width, width), reversed(skips)):
        x = keras.layers.UpSampling2D(interpolation="bilinear")(x)
        x = keras.layers.Concatenate()([x, skip])
        x = _conv_bn_relu(x, filters)
    x = keras.layers.Conv2D(num_classes, 1)(x)
    logits = keras.layers.UpSampling2D(interpolation="bilinear", name="logits")(x)
    return keras.Model(images, logits, name="facades_segmenter")


def _augment(photo, label, seed):
    # The same random flip and crop for photo and label: a scale jitter (1.0-1.25) then a crop
    # back to size, bilinear for the photo, nearest for the labels so they stay class ids.
    size = photo.shape[0]
    scale = tf.random.stateless_uniform([], seed, 1.0, 1.25)
    new = tf.cast(tf.round(scale * size), tf.int32)
    photo = tf.image.resize(tf.cast(photo, tf.float32), (new, new), "bilinear")
    label = tf.image.resize(tf.cast(label[..., None], tf.float32), (new, new), "nearest")
    stacked = tf.concat([photo, label], -1)
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed + 1)
    stacked = tf.image.stateless_random_crop(stacked, (size, size, 4), seed + 2)
    return stacked[..., :3], tf.cast(stacked[..., 3], tf.int32)


def train_facades_segmenter(data_dir, out_path=None, size=FACADES_SEGMENTER_SIZE, epochs=60,
                            batch_size=16, val_count=40, seed=0, log=print):
    """Train the facades segmenter on facades/train photos and save it.

    Args:
        data_dir: the facades folder (with `train/`), or the train folder itself.
        out_path: `.keras` path; default `default_facades_segmenter_path()`. Written atomically.
        val_count: the last `val_count` train files (sorted) are held out to monitor
            training; facades/test stays untouched for reported figures.

    Returns:
        (model, dict of validation scores).
    """
    train_dir = os.path.join(data_dir, "train")
    if not os.path.isdir(train_dir):
        train_dir = data_dir
    out_path = out_path or default_facades_segmenter_path()
    keras.utils.set_random_seed(seed)
    photos, labels, _ = load_ab_split(train_dir, size)
    if len(photos) <= val_count:
        raise UserError(f"{train_dir}: {len(photos)} images, need more than {val_count}")
    train = (photos[:-val_count], labels[:-val_count])
    val = (photos[-val_count:], labels[-val_count:])
    dataset = (tf.data.Dataset.from_tensor_slices(train)
               .shuffle(len(train[0]), seed=seed)
               .enumerate()
               .map(lambda i, pair: _augment(pair[0], pair[1], tf.stack([tf.cast(i, tf.int32),
                                                                          seed])),
                    num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size)
               .prefetch(2))
    model = build_facades_segmenter(size)
    steps = epochs * int(np.ceil(len(train[0]) / batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.time()
    for epoch in range(epochs):
        history = model.fit(dataset, epochs=1, verbose=0)
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            score = SegmentationScore(Segmenter(model), len(FACADES_CLASSES))
            score.update(val[0], val[1])
            r = score.result()
            log(f"epoch {epoch + 1}/{epochs} loss {history.history['loss'][-1]:.3f} "
                f"val pixel_acc {r['pixel_acc']:.3f} class_acc {r['class_acc']:.3f} "
                f"class_iou {r['class_iou']:.3f} ({time.time() - start:.0f} s)")
    # The temporary name keeps the `.keras` ending Keras requires.
    with atomic_path(out_path) as tmp:
        model.save(tmp)
    log(f"saved {out_path}")
    score = SegmentationScore(Segmenter(model), len(FACADES_CLASSES), FACADES_CLASSES)
    score.update(val[0], val[1])
    return model, score.result()


def score_facades_photos(segmenter, folder, batch_size=16):
    """Scores of the real photos of a facades split (the upper bound of the protocol)."""
    photos, labels, _ = load_ab_split(folder)
    score = SegmentationScore(segmenter, len(FACADES_CLASSES), FACADES_CLASSES)
    for i in range(0, len(photos), batch_size):
        score.update(photos[i: i + batch_size], labels[i: i + batch_size])
    return score.result()


def main(argv=None):
    """Train the facades segmenter, then print the scores of the real test photos."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data_dir", required=True, help="facades folder with train/ (test/)")
    parser.add_argument("--out", help="output .keras (default: the cache)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model, val_scores = train_facades_segmenter(
            args.data_dir, args.out, epochs=args.epochs, batch_size=args.batch_size,
            seed=args.seed)
        result = {"val (held-out train files)": val_scores}
        test_dir = os.path.join(args.data_dir, "test")
        if os.path.isdir(test_dir):
            result["test photos"] = score_facades_photos(Segmenter(model), test_dir)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for split, scores in result.items():
        print(f"{split}: pixel_acc {scores['pixel_acc']:.3f} class_acc "
              f"{scores['class_acc']:.3f} class_iou {scores['class_iou']:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
