"""The paired input pipeline: image pairs -> batches of (input, target) in [-1, 1].

The training stream is indexed by global step, so that a run resumed from a
checkpoint mid-epoch sees exactly the batches an uninterrupted run would have:

    slot s = step * batch_size + k  (k-th example of the step's batch)
    epoch  = s // (steps_per_epoch * batch_size)
    index  = shuffle_epoch((s mod (steps_per_epoch * batch_size)) mod n)

`shuffle_epoch` is a pseudorandom permutation of the n examples keyed by
(seed, epoch) that is computed per element (`index_shuffle`), never
materialised; the last batch of an epoch wraps round to the start of the
epoch's order, so every batch is full (fixed shapes for XLA and
tf.distribute). Random crop and flip are stateless ops keyed by (seed, s). The
dataset is `Dataset.range` over the slots from `start_step`: skipping steps
decodes nothing, and the cardinality is known.

Preprocessing follows the pix2pix/CycleGAN reference (`get_transform`), with
one bicubic, antialiased resize (as PIL's) and the same crop and flip for both
images of a pair:
    resize_and_crop       resize to load_size x load_size, random crop crop_size
    crop                  random crop crop_size from the image as it is
    scale_width           resize to width load_size, height
                          max(load_size * h // w, crop_size)
    scale_width_and_crop  scale_width, then random crop crop_size
    none                  round height and width to multiples of size_divisor
then a random horizontal flip. Sizes that are not crops are rounded to
multiples of size_divisor (the reference's `__make_power_2`) in the same resize.

Test and validation (`training=False`) resize as training does, with crop_size
in place of load_size, and never crop or flip: resize_and_crop gives crop_size
x crop_size; scale_width(_and_crop) scales to width crop_size, keeping the
aspect ratio; crop and none keep the image's own scale. They go through the
examples once, in file order, keeping a last partial batch.
"""

import math

import numpy as np
import tensorflow as tf

from tfi2i.data.decode import decode_image
from tfi2i.data.sources import scan_paired
from tfi2i.errors import UserError

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
DIRECTIONS = ("AtoB", "BtoA")

# Above this, cache=True refuses: the decoded images are a constant of the
# tf.data graph, and graphs serialise to protocol buffers of at most 2 GiB.
CACHE_LIMIT_BYTES = 1 << 30


def steps_per_epoch(num_examples, batch_size):
    """Training steps in one epoch: every example once, the last batch filled up."""
    return math.ceil(num_examples / batch_size)


def paired_dataset(root, split="train", direction="AtoB", preprocess="resize_and_crop",
                   load_size=286, crop_size=256, batch_size=1, seed=0, training=True,
                   epochs=1, start_step=0, size_divisor=1, cache=False,
                   skip_bad_images=False):
    """Batches of (input, target) image pairs from a dataset folder.

    Args:
        root: the dataset folder (see `resolve_dataset`).
        split: the split's folder name, e.g. "train", "test", "val".
        direction: "AtoB" (input A, target B) or "BtoA".
        preprocess: one of `PREPROCESS_MODES` (see the module docstring).
        load_size: the size images are resized to before cropping.
        crop_size: the size of random crops, and of test images.
        batch_size: the global batch size.
        seed: the seed of the order and of the random crops and flips.
        training: True for the shuffled, augmented, step-indexed training
            stream; False for one pass in file order without augmentation.
        epochs: training only: the stream ends after this many epochs.
        start_step: training only: the global step of the first batch.
        size_divisor: non-crop output sizes are rounded to multiples of this
            (the generator's stride); crop_size must be a multiple of it.
        cache: keep the decoded images in memory instead of decoding each
            time (they are stored as 8-bit; at most `CACHE_LIMIT_BYTES`).
        skip_bad_images: leave unusable files out with a warning instead of
            raising (pass the same value to `num_examples`).

    Returns:
        A `tf.data.Dataset` of (input, target) tuples, each float32
        [batch, H, W, 3] in [-1, 1]. For training it holds the batches of
        global steps [start_step, epochs * steps_per_epoch), all full; for
        test, ceil(n / batch_size) batches.

    Raises:
        UserError: bad options, or bad data (see `scan_paired`).
    """
    _check_options(direction, preprocess, load_size, crop_size, batch_size, epochs,
                   size_divisor, training)
    examples = scan_paired(root, split, skip_bad_images)
    geometry = _Geometry(preprocess, load_size, crop_size, size_divisor, training)
    out_shape = _check_sizes(examples, geometry, batch_size)
    targets = tf.constant([geometry.resize_target(h, w) for h, w in examples.sizes], tf.int32)
    load = _cached_loader(examples) if cache else _file_loader(examples)
    swap = direction == "BtoA"
    n = len(examples)

    def finish(pair):
        pair.set_shape([*out_shape, 6])
        a, b = pair[..., :3] * 2.0 - 1.0, pair[..., 3:] * 2.0 - 1.0
        return (b, a) if swap else (a, b)

    if training:
        total_steps = epochs * steps_per_epoch(n, batch_size)
        if not 0 <= start_step <= total_steps:
            raise UserError(f"start_step {start_step} is outside the run's {total_steps} steps "
                            f"({epochs} epochs of {steps_per_epoch(n, batch_size)}).")
        slots_per_epoch = steps_per_epoch(n, batch_size) * batch_size
        key = tf.constant(seed, tf.int64)

        def example(slot):
            epoch = slot // slots_per_epoch
            position = slot % slots_per_epoch % n
            index = tf.random.experimental.index_shuffle(
                position, seed=tf.stack([key, epoch]), max_index=tf.constant(n - 1, tf.int64))
            pair = _resize(load(index), targets[index])
            draws = tf.random.stateless_uniform([3], seed=tf.stack([key, slot]))
            return finish(geometry.augment(pair, draws))

        ds = tf.data.Dataset.range(start_step * batch_size, total_steps * batch_size)
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = tf.data.Dataset.range(n).map(lambda i: finish(_resize(load(i), targets[i])),
                                          num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
    options = tf.data.Options()
    options.deterministic = True
    # The source is a range of indices, not files: shard the elements.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _check_options(direction, preprocess, load_size, crop_size, batch_size, epochs,
                   size_divisor, training):
    if direction not in DIRECTIONS:
        raise UserError(f"Unknown direction {direction!r}: use AtoB or BtoA.")
    if preprocess not in PREPROCESS_MODES:
        raise UserError(f"Unknown preprocess mode {preprocess!r}: use one of "
                        f"{', '.join(PREPROCESS_MODES)}.")
    for name, value in (("batch_size", batch_size), ("crop_size", crop_size),
                        ("load_size", load_size), ("size_divisor", size_divisor),
                        ("epochs", epochs)):
        if int(value) != value or value < 1:
            raise UserError(f"{name} must be a positive whole number, not {value!r}.")
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
        raise UserError(f"load_size ({load_size}) must be at least crop_size ({crop_size}) "
                        f"with preprocess={preprocess}.")
    crops = preprocess == "resize_and_crop" or (training and preprocess.endswith("crop"))
    if crops and crop_size % size_divisor:
        raise UserError(f"crop_size {crop_size} is not a multiple of {size_divisor}, which the "
                        f"generator needs; use e.g. crop_size="
                        f"{max(size_divisor, round(crop_size / size_divisor) * size_divisor)}.")


class _Geometry:
    """Where each preprocessing mode resizes and whether it crops."""

    def __init__(self, mode, load_size, crop_size, size_divisor, training):
        self.mode, self.load_size, self.crop_size = mode, load_size, crop_size
        self.size_divisor, self.training = size_divisor, training
        self.crops = training and mode.endswith("crop")

    def resize_target(self, height, width):
        """(height, width) an image is resized to, before any crop."""
        size = self.load_size if self.training else self.crop_size
        if self.mode == "resize_and_crop":
            height = width = size
        elif self.mode.startswith("scale_width"):
            # The reference keeps the height >= crop_size so a crop fits; at
            # test time nothing is cropped, so the aspect ratio is kept.
            floor = self.crop_size if self.training else 1
            height, width = max(size * height // width, floor), size
        if self.crops:
            return height, width
        return self._round(height), self._round(width)

    def output_size(self, height, width):
        """(height, width) of the preprocessed image."""
        if self.crops:
            return self.crop_size, self.crop_size
        return self.resize_target(height, width)

    def _round(self, x):
        # As the reference's __make_power_2: round half to even, like tf.round.
        return max(self.size_divisor, round(x / self.size_divisor) * self.size_divisor)

    def augment(self, pair, draws):
        """Random crop (if the mode crops) and flip, from three uniform draws."""
        if self.crops:
            shape = tf.shape(pair)
            top = tf.cast(draws[0] * tf.cast(shape[0] - self.crop_size + 1, tf.float32), tf.int32)
            left = tf.cast(draws[1] * tf.cast(shape[1] - self.crop_size + 1, tf.float32),
                           tf.int32)
            pair = pair[top:top + self.crop_size, left:left + self.crop_size]
        return tf.cond(draws[2] > 0.5, lambda: tf.reverse(pair, axis=[1]), lambda: pair)


def _check_sizes(examples, geometry, batch_size):
    """Checks images fit the mode; returns the static output (H, W), or Nones."""
    if geometry.crops and geometry.mode == "crop":
        small = [(p, s) for p, s in zip(examples.a_paths, examples.sizes)
                 if min(s) < geometry.crop_size]
        if small:
            path, (h, w) = small[0]
            raise UserError(f"{len(small)} images in {examples.description} are smaller than "
                            f"crop_size {geometry.crop_size}, e.g. {path} ({w}x{h} per image); "
                            "use a smaller crop_size or preprocess=resize_and_crop.")
    sizes = {}
    for path, (h, w) in zip(examples.a_paths, examples.sizes):
        sizes.setdefault(geometry.output_size(h, w), path)
    if len(sizes) == 1:
        return next(iter(sizes))
    if batch_size > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise UserError(f"With preprocess={geometry.mode}, images of {examples.description} come "
                        f"out in different sizes ({p1}: {s1[1]}x{s1[0]}, {p2}: {s2[1]}x{s2[0]}), "
                        "which cannot be batched: use batch_size=1, or a mode that makes every "
                        "image the same size (resize_and_crop).")
    return None, None


def _resize(pair, target):
    """Bicubic resize as PIL's (antialiased), skipped when the size is already right."""
    def resize():
        resized = tf.image.resize(pair, target, method="bicubic", antialias=True)
        return tf.clip_by_value(resized, 0.0, 1.0)  # Bicubic overshoots; PIL clips to uint8.
    same = tf.reduce_all(tf.shape(pair)[:2] == target)
    return tf.cond(same, lambda: pair, resize)


def _file_loader(examples):
    """index -> the pair decoded from its file(s): float32 [H, W, 6] in [0, 1]."""
    a_paths = tf.constant(examples.a_paths)
    b_paths = tf.constant(examples.b_paths)

    def load(index, dtype=tf.float32):
        a = decode_image(tf.io.read_file(a_paths[index]), dtype)
        if examples.layout == "ab":
            half = tf.shape(a)[1] // 2
            return tf.concat([a[:, :half], a[:, half:2 * half]], axis=-1)
        return tf.concat([a, decode_image(tf.io.read_file(b_paths[index]), dtype)], axis=-1)

    return load


_decoded = {}


def _cached_loader(examples):
    """index -> the pair from an in-memory copy of all decoded pairs (uint8).

    The pairs are decoded once per process and kept in one flat buffer with
    offsets, which works for images of different sizes.
    """
    sizes = np.array(examples.sizes, np.int64)
    lengths = sizes[:, 0] * sizes[:, 1] * 6
    if lengths.sum() > CACHE_LIMIT_BYTES:
        raise UserError(f"cache=True would keep {lengths.sum() / 2**30:.1f} GiB of decoded images "
                        f"of {examples.description} in memory, more than the "
                        f"{CACHE_LIMIT_BYTES / 2**30:.0f} GiB it allows: turn the cache off "
                        "(--nocache_data).")
    if examples not in _decoded:
        load_file = _file_loader(examples)
        pairs = tf.data.Dataset.range(len(examples)).map(
            lambda i: tf.reshape(load_file(i, tf.uint8), [-1]),
            num_parallel_calls=tf.data.AUTOTUNE)
        _decoded[examples] = tf.constant(np.concatenate(list(pairs.as_numpy_iterator())))
    buffer = _decoded[examples]
    offsets = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
    shapes = tf.constant(np.concatenate([sizes, np.full([len(sizes), 1], 6)], axis=1), tf.int64)

    def load(index):
        flat = buffer[offsets[index]:offsets[index] + tf.reduce_prod(shapes[index])]
        # As decoding straight to float32 does for JPEG; for PNG that differs
        # in the last bit of the float32.
        return tf.image.convert_image_dtype(tf.reshape(flat, shapes[index]), tf.float32)

    return load
