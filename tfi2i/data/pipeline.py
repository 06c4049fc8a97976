"""The input pipelines: image pairs, or two unpaired domains -> batches in [-1, 1].

Training streams are indexed by global step, so that a run resumed from a
checkpoint mid-epoch sees exactly the batches an uninterrupted run would have:

    slot s   = step * batch_size + k   (k-th example of the step's batch)
    epoch    = s // (steps_per_epoch * batch_size)
    position = (s mod (steps_per_epoch * batch_size)) mod n

where n is the number of examples in an epoch. Each list of images the stream
draws from (the pairs of a paired split, or one domain of an unpaired split)
has its own key and maps the position to an image with a pseudorandom
permutation (`index_shuffle`, computed per element, never materialised):

    paired:    n = the number of pairs; index = shuffle(position) keyed by
               (seed, epoch).
    unpaired:  n = max(|A|, |B|), as the reference's `unaligned_dataset.py`.
               Domain d of size n_d has its own key k_d (derived from the
               seed) and index_d = shuffle(position mod n_d) keyed by
               (k_d, epoch * ceil(n / n_d) + position // n_d): the larger
               domain is a permutation per epoch, as paired data; the smaller
               wraps round, with a fresh permutation on each pass. The
               reference draws B uniformly at random instead; permutations
               use every image of the smaller domain equally often.

The last batch of an epoch wraps round to the start of the epoch's order, so
every batch is full (fixed shapes for XLA and tf.distribute). Random crop and
flip are stateless ops keyed by (key, s): the same for both images of a pair,
independent for the two domains of unpaired data. The dataset is
`Dataset.range` over the slots from `start_step`: skipping steps decodes
nothing, and the cardinality is known.

Preprocessing follows the pix2pix/CycleGAN reference (`get_transform`), with
one bicubic, antialiased resize (as PIL's):
    resize_and_crop       resize to load_size x load_size, random crop crop_size
    crop                  random crop crop_size from the image as it is
    scale_width           resize to width load_size, height
                          max(load_size * h // w, crop_size)
    scale_width_and_crop  scale_width, then random crop crop_size
    none                  round height and width to multiples of size_divisor
then a random horizontal flip (not of digits: `DomainImages` with `flip` False,
see `tfi2i.data.digits`). Sizes that are not crops are rounded to
multiples of size_divisor (the reference's `__make_power_2`) in the same resize.
An input or output with 1 channel (`input_nc`/`output_nc`) is converted to
grayscale when loaded, with the ITU-R 601 luma weights of PIL's `convert("L")`.

Test and validation (`training=False`) resize as training does, with crop_size
in place of load_size, and never crop or flip: resize_and_crop gives crop_size
x crop_size; scale_width(_and_crop) scales to width crop_size, keeping the
aspect ratio; crop and none keep the image's own scale. They go through the
n examples once, in file order (a smaller domain wrapping round), keeping a
last partial batch.
"""

import hashlib
import math

import numpy as np
import tensorflow as tf

from tfi2i.data.decode import decode_image
from tfi2i.data.sources import scan_paired, scan_unpaired
from tfi2i.errors import UserError

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
DIRECTIONS = ("AtoB", "BtoA")
CHANNEL_COUNTS = (1, 3)

# Above this, cache=True refuses (and so do TFDS images, held encoded in
# memory): the images are a constant of the tf.data graph, and graphs
# serialise to protocol buffers of at most 2 GiB.
CACHE_LIMIT_BYTES = 1 << 30

# ITU-R 601-2 luma: the weights of PIL's convert("L"), which the reference's
# loader applies for input_nc/output_nc = 1.
_LUMA = (0.299, 0.587, 0.114)


def steps_per_epoch(num_examples, batch_size):
    """Training steps in one epoch: every example once, the last batch filled up.

    For unpaired data `num_examples` is max(|A|, |B|) (see `num_examples`).
    """
    return math.ceil(num_examples / batch_size)


def make_dataset(root, split="train", paired=True, unpaired=False, labels=False, **kwargs):
    """The one entry point for both kinds of data: `paired_dataset` or `unpaired_dataset`.

    Args:
        root: the dataset (see `resolve_dataset`).
        split: the split's name, e.g. "train", "test".
        paired: True for a paired method ((input, target) pairs), False for
            an unpaired one ((A, B) batches from two domains).
        unpaired: unpaired methods only: read a paired split (AB images, or
            A/ and B/ folders) as two unpaired domains.
        labels: unpaired only: ((A, A's class labels), B) batches (see
            `unpaired_dataset`), for methods that train on source labels (DTN).
        **kwargs: the options both pipelines share (direction, preprocess,
            load_size, crop_size, batch_size, seed, training, epochs,
            start_step, size_divisor, cache, skip_bad_images, input_nc,
            output_nc, exif_orientation).

    Returns:
        The `tf.data.Dataset` of the chosen pipeline.

    Raises:
        UserError: bad options or bad data; unpaired=True for a paired method.
    """
    if not paired:
        return unpaired_dataset(root, split, unpaired=unpaired, labels=labels, **kwargs)
    if labels:
        raise UserError("labels=True gives the class labels of an unpaired input domain; "
                        "paired data have none.")
    if unpaired:
        raise UserError("unpaired=True (--unpaired) reads paired data as two unpaired domains, "
                        "for unpaired methods; a paired method trains on the pairs: leave it "
                        "off.")
    return paired_dataset(root, split, **kwargs)


def paired_dataset(root, split="train", direction="AtoB", preprocess="resize_and_crop",
                   load_size=286, crop_size=256, batch_size=1, seed=0, training=True,
                   epochs=1, start_step=0, size_divisor=1, cache=False,
                   skip_bad_images=False, input_nc=3, output_nc=3, exif_orientation=True):
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
        input_nc: channels of the input: 3 (RGB) or 1 (grayscale).
        output_nc: channels of the target: 3 or 1.
        exif_orientation: turn photos upright by their EXIF orientation tag
            (see `decode_image`); False reads the pixels as stored, as the
            reference loader does.

    Returns:
        A `tf.data.Dataset` of (input, target) tuples, each float32
        [batch, H, W, input_nc or output_nc] in [-1, 1]. For training it holds
        the batches of global steps [start_step, epochs * steps_per_epoch),
        all full; for test, ceil(n / batch_size) batches.

    Raises:
        UserError: bad options, or bad data (see `scan_paired`).
    """
    _check_options(direction, preprocess, load_size, crop_size, batch_size, epochs,
                   size_divisor, training, input_nc, output_nc)
    examples = scan_paired(root, split, skip_bad_images, exif_orientation)
    geometry = _Geometry(preprocess, load_size, crop_size, size_divisor, training)
    a_nc, b_nc = _folder_channels(direction, input_nc, output_nc)
    load = _pair_loader(examples, exif_orientation)
    if cache:
        load = _cached_loader(examples, load, examples.sizes, 6)

    def load_pair(index):
        pair = load(index)
        if a_nc == b_nc == 3:
            return pair
        return tf.concat([_to_channels(pair[..., :3], a_nc), _to_channels(pair[..., 3:], b_nc)],
                         axis=-1)

    # Both images of a pair are one 6-channel image here: one resize, one crop, one flip.
    pairs = _Source(examples.description, examples.a_paths, examples.sizes, load_pair,
                    a_nc + b_nc, seed, geometry, batch_size)

    def finish(pair):
        a, b = pair[..., :a_nc], pair[..., a_nc:]
        return (b, a) if direction == "BtoA" else (a, b)

    return _stream([pairs], finish, batch_size, training, epochs, start_step)


def unpaired_dataset(root, split="train", preprocess="resize_and_crop", load_size=286,
                     crop_size=256, batch_size=1, seed=0, training=True, epochs=1, start_step=0,
                     size_divisor=1, cache=False, skip_bad_images=False, input_nc=3, output_nc=3,
                     unpaired=False, direction="AtoB", labels=False, exif_orientation=True):
    """Batches of (A, B) images from two unpaired domains.

    The domains come from `<split>A/` and `<split>B/` (the CycleGAN release
    layout), from TFDS (`tfds:cycle_gan/horse2zebra`, `tfds:mnist+svhn_cropped`),
    or, with `unpaired=True`, from a paired split read as two domains (see
    `scan_unpaired`). An epoch is max(|A|, |B|) examples; the two domains are
    shuffled independently (the smaller one wrapping round with a fresh
    permutation on each pass, where the reference draws it at random) and
    cropped and flipped independently. See the module docstring.

    Args:
        root: the dataset folder or TFDS dataset (see `resolve_dataset`).
        split: the split's name, e.g. "train", "test".
        preprocess: one of `PREPROCESS_MODES` (see the module docstring).
        load_size: the size images are resized to before cropping.
        crop_size: the size of random crops, and of test images.
        batch_size: the global batch size.
        seed: the seed of the orders and of the random crops and flips.
        training: True for the shuffled, augmented, step-indexed training
            stream; False for one pass in file order without augmentation.
        epochs: training only: the stream ends after this many epochs.
        start_step: training only: the global step of the first batch.
        size_divisor: non-crop output sizes are rounded to multiples of this
            (the generator's stride); crop_size must be a multiple of it.
        cache: keep the decoded images in memory (8-bit; at most
            `CACHE_LIMIT_BYTES` per domain).
        skip_bad_images: leave unusable files out with a warning instead of
            raising (pass the same value to `num_examples`).
        input_nc: channels of the input domain (A, or B with BtoA): 3 or 1.
        output_nc: channels of the other domain: 3 or 1.
        unpaired: read a paired split (AB images, or A/ and B/ folders) as
            two unpaired domains (--unpaired).
        direction: "AtoB", or "BtoA" to swap the domains: the first element
            is always the method's input domain.
        labels: yield ((input, label), target-domain) instead, with the
            input domain's int32 class labels [batch]; needs labelled data
            (the digits sets, `tfi2i.data.digits`).
        exif_orientation: turn photos upright by their EXIF orientation tag
            (see `decode_image`); False reads the pixels as stored, as the
            reference loader does. Images held encoded (TFDS) are used as stored.

    Returns:
        A `tf.data.Dataset` of (input, target-domain) tuples, float32
        [batch, H, W, input_nc] and [batch, H', W', output_nc] in [-1, 1].
        For training it holds the batches of global steps
        [start_step, epochs * steps_per_epoch), all full; for test,
        ceil(max(|A|, |B|) / batch_size) batches.

    Raises:
        UserError: bad options, or bad data (see `scan_unpaired`).
    """
    _check_options(direction, preprocess, load_size, crop_size, batch_size, epochs,
                   size_divisor, training, input_nc, output_nc)
    examples = scan_unpaired(root, split, skip_bad_images, unpaired, exif_orientation)
    geometry = _Geometry(preprocess, load_size, crop_size, size_divisor, training)
    a_nc, b_nc = _folder_channels(direction, input_nc, output_nc)
    labelled = examples.b if direction == "BtoA" else examples.a
    if labels and not getattr(labelled, "labels", None):
        raise UserError(f"{labelled.description} has no class labels, which this method needs "
                        "for its input domain: use a labelled dataset (mnist2usps, usps2mnist, "
                        "svhn2mnist).")
    domains = [_domain_source(images, channels, _domain_key(seed, name), cache, geometry,
                              batch_size, images.labels if labels and images is labelled else None,
                              exif_orientation)
               for images, channels, name in ((examples.a, a_nc, "A"), (examples.b, b_nc, "B"))]

    def finish(a, b):
        return (b, a) if direction == "BtoA" else (a, b)

    return _stream(domains, finish, batch_size, training, epochs, start_step)


def _check_options(direction, preprocess, load_size, crop_size, batch_size, epochs,
                   size_divisor, training, input_nc=3, output_nc=3):
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
    for name, value in (("input_nc", input_nc), ("output_nc", output_nc)):
        if value not in CHANNEL_COUNTS:
            raise UserError(f"{name} must be 1 (grayscale) or 3 (RGB), not {value!r} "
                            f"(--{name}).")
    check_load_and_crop(preprocess, load_size, crop_size)
    crops = preprocess == "resize_and_crop" or (training and preprocess.endswith("crop"))
    if crops and crop_size % size_divisor:
        raise UserError(f"crop_size {crop_size} is not a multiple of {size_divisor}, which the "
                        f"generator needs; use e.g. crop_size="
                        f"{max(size_divisor, round(crop_size / size_divisor) * size_divisor)}.")


def check_load_and_crop(preprocess, load_size, crop_size):
    """Raises UserError if a mode that scales, then crops, has load_size < crop_size."""
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
        raise UserError(f"--load_size={load_size} is smaller than --crop_size={crop_size}: with "
                        f"--preprocess={preprocess} images are scaled to load_size and then "
                        "cropped, so load_size must be at least crop_size.")


def _folder_channels(direction, input_nc, output_nc):
    """(channels of A, channels of B): the input is B with BtoA, as in the reference."""
    return (output_nc, input_nc) if direction == "BtoA" else (input_nc, output_nc)


def _domain_key(seed, domain):
    """The order-and-jitter key of one domain: fixed by the seed, unrelated to the other's."""
    digest = hashlib.sha256(f"tfi2i/{seed}/{domain}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # Below 2**56: a positive int64.


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

    def augment(self, image, draws, flip=True):
        """Random crop (if the mode crops) and flip (if `flip`), from three uniform draws."""
        if self.crops:
            shape = tf.shape(image)
            top = tf.cast(draws[0] * tf.cast(shape[0] - self.crop_size + 1, tf.float32), tf.int32)
            left = tf.cast(draws[1] * tf.cast(shape[1] - self.crop_size + 1, tf.float32),
                           tf.int32)
            image = image[top:top + self.crop_size, left:left + self.crop_size]
        if not flip:
            return image
        return tf.cond(draws[2] > 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)


class _Source:
    """One list of images a stream draws from: the pairs of a paired split, or one domain.

    Args:
        description: where the images are, for messages.
        names: a file name per image, for messages.
        sizes: (height, width) per image.
        load: index -> float32 [H, W, channels] in [0, 1].
        channels: the channels `load` gives.
        key: the key of this list's order and jitter.
        geometry: the `_Geometry`.
        batch_size: for the check that images of different sizes are not batched.
        labels: a class label per image, to yield (image, label); or None.
        flip: whether training mirrors images at random (not digits).
    """

    def __init__(self, description, names, sizes, load, channels, key, geometry, batch_size,
                 labels=None, flip=True):
        self.n, self.load, self.channels, self.geometry = len(sizes), load, channels, geometry
        self.flip = flip
        self.labels = None if labels is None else tf.constant(labels, tf.int32)
        self.key = tf.constant(key, tf.int64)
        self.out_shape = _check_sizes(description, names, sizes, geometry, batch_size)
        self.targets = tf.constant([geometry.resize_target(h, w) for h, w in sizes], tf.int32)

    def shuffled_index(self, epoch, position, epoch_length):
        """The image at `position` of `epoch` (see the module docstring)."""
        passes = -(-epoch_length // self.n)
        shuffle_round = epoch * passes + position // self.n
        return tf.random.experimental.index_shuffle(
            position % self.n, seed=tf.stack([self.key, shuffle_round]),
            max_index=tf.constant(self.n - 1, tf.int64))

    def example(self, index, slot=None):
        """Image `index` preprocessed, in [-1, 1]; jittered with the draws of `slot` if given."""
        image = _resize(self.load(index), self.targets[index])
        if slot is not None:
            draws = tf.random.stateless_uniform([3], seed=tf.stack([self.key, slot]))
            image = self.geometry.augment(image, draws, self.flip)
        image.set_shape([*self.out_shape, self.channels])
        if self.labels is not None:
            return image * 2.0 - 1.0, self.labels[index]
        return image * 2.0 - 1.0


def _stream(sources, finish, batch_size, training, epochs, start_step):
    """The dataset of `finish(*examples)`, one example from each source per slot."""
    n = max(source.n for source in sources)
    if training:
        total_steps = epochs * steps_per_epoch(n, batch_size)
        if not 0 <= start_step <= total_steps:
            raise UserError(f"start_step {start_step} is outside the run's {total_steps} steps "
                            f"({epochs} epochs of {steps_per_epoch(n, batch_size)}).")
        slots_per_epoch = steps_per_epoch(n, batch_size) * batch_size

        def example(slot):
            epoch = slot // slots_per_epoch
            position = slot % slots_per_epoch % n
            return finish(*[s.example(s.shuffled_index(epoch, position, n), slot)
                            for s in sources])

        ds = tf.data.Dataset.range(start_step * batch_size, total_steps * batch_size)
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = tf.data.Dataset.range(n).map(lambda i: finish(*[s.example(i % s.n) for s in sources]),
                                          num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
    options = tf.data.Options()
    options.deterministic = True
    # The source is a range of indices, not files: shard the elements.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _check_sizes(description, names, sizes, geometry, batch_size):
    """Checks images fit the mode; returns the static output (H, W), or Nones."""
    if geometry.crops and geometry.mode == "crop":
        small = [(p, s) for p, s in zip(names, sizes) if min(s) < geometry.crop_size]
        if small:
            path, (h, w) = small[0]
            raise UserError(f"{len(small)} images in {description} are smaller than "
                            f"crop_size {geometry.crop_size}, e.g. {path} ({w}x{h} per image); "
                            "use a smaller crop_size or preprocess=resize_and_crop.")
    out_sizes = {}
    for path, (h, w) in zip(names, sizes):
        out_sizes.setdefault(geometry.output_size(h, w), path)
    if len(out_sizes) == 1:
        return next(iter(out_sizes))
    if batch_size > 1:
        (s1, p1), (s2, p2) = list(out_sizes.items())[:2]
        raise UserError(f"With preprocess={geometry.mode}, images of {description} come "
                        f"out in different sizes ({p1}: {s1[1]}x{s1[0]}, {p2}: {s2[1]}x{s2[0]}), "
                        "which cannot be batched: use batch_size=1, or a mode that makes every "
                        "image the same size (resize_and_crop).")
    return None, None


def _resize(image, target):
    """Bicubic resize as PIL's (antialiased), skipped when the size is already right."""
    def resize():
        resized = tf.image.resize(image, target, method="bicubic", antialias=True)
        return tf.clip_by_value(resized, 0.0, 1.0)  # Bicubic overshoots; PIL clips to uint8.
    same = tf.reduce_all(tf.shape(image)[:2] == target)
    return tf.cond(same, lambda: image, resize)


def _to_channels(image, channels):
    """RGB [H, W, 3] -> itself (channels=3) or its luma [H, W, 1] (channels=1)."""
    if channels == 3:
        return image
    return tf.reduce_sum(image * tf.constant(_LUMA, image.dtype), axis=-1, keepdims=True)


def _pair_loader(examples, exif_orientation=True):
    """(index, dtype) -> the pair decoded from its file(s): [H, W, 6] in [0, 1] (float)."""
    a_paths = tf.constant(examples.a_paths)
    b_paths = tf.constant(examples.b_paths)

    def load(index, dtype=tf.float32):
        a = decode_image(tf.io.read_file(a_paths[index]), dtype, exif_orientation)
        if examples.layout == "ab":
            half = tf.shape(a)[1] // 2
            return tf.concat([a[:, :half], a[:, half:2 * half]], axis=-1)
        return tf.concat([a, decode_image(tf.io.read_file(b_paths[index]), dtype,
                                          exif_orientation)], axis=-1)

    return load


def _domain_source(images, channels, key, cache, geometry, batch_size, labels=None,
                   exif_orientation=True):
    """The `_Source` of one domain's images (`DomainImages`), yielding labels if given."""
    load = _domain_loader(images, exif_orientation)
    if cache:
        load = _cached_loader(images, load, images.sizes, 3)
    return _Source(images.description, images.paths, images.sizes,
                   lambda index: _to_channels(load(index), channels), channels, key, geometry,
                   batch_size, labels, getattr(images, "flip", True))


def _domain_loader(images, exif_orientation=True):
    """(index, dtype) -> one image of a domain: [H, W, 3] in [0, 1] (float).

    EXIF orientation applies to files; images held encoded (TFDS, digits) are the
    dataset's pixels as its builder stored them, and their sizes were read so.
    """
    exif_orientation = exif_orientation and images.encoded is None
    if images.encoded is None:
        paths = tf.constant(images.paths)

        def read(index):
            return tf.io.read_file(paths[index])
    else:
        size = sum(len(e) for e in images.encoded)
        if size > CACHE_LIMIT_BYTES:
            raise UserError(f"{images.description} holds {size / 2**30:.1f} GiB of encoded "
                            f"images, more than the {CACHE_LIMIT_BYTES / 2**30:.0f} GiB this "
                            "pipeline keeps in memory: write the images to folders (trainA/, "
                            "trainB/, ...) and use --data_dir.")
        contents = tf.constant(images.encoded)

        def read(index):
            return contents[index]

    def load(index, dtype=tf.float32):
        image = decode_image(read(index), dtype, exif_orientation)
        if images.half is None:
            return image
        half = tf.shape(image)[1] // 2
        return image[:, :half] if images.half == "left" else image[:, half:2 * half]

    return load


_decoded = {}


def _cached_loader(images, load_file, sizes, channels):
    """index -> an image from an in-memory copy of all decoded images (uint8).

    The images are decoded once per process (keyed by `images`, a hashable
    record of the files) and kept in one flat buffer with offsets, which works
    for images of different sizes.
    """
    sizes = np.array(sizes, np.int64)
    lengths = sizes[:, 0] * sizes[:, 1] * channels
    if lengths.sum() > CACHE_LIMIT_BYTES:
        raise UserError(f"cache=True would keep {lengths.sum() / 2**30:.1f} GiB of decoded images "
                        f"of {images.description} in memory, more than the "
                        f"{CACHE_LIMIT_BYTES / 2**30:.0f} GiB it allows: turn the cache off "
                        "(--nocache_data).")
    if images not in _decoded:
        decoded = tf.data.Dataset.range(len(sizes)).map(
            lambda i: tf.reshape(load_file(i, tf.uint8), [-1]),
            num_parallel_calls=tf.data.AUTOTUNE)
        _decoded[images] = tf.constant(np.concatenate(list(decoded.as_numpy_iterator())))
    buffer = _decoded[images]
    offsets = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
    shapes = tf.constant(np.concatenate([sizes, np.full([len(sizes), 1], channels)], axis=1),
                         tf.int64)

    def load(index):
        flat = buffer[offsets[index]:offsets[index] + tf.reduce_prod(shapes[index])]
        # As decoding straight to float32 does for JPEG; for PNG that differs
        # in the last bit of the float32.
        return tf.image.convert_image_dtype(tf.reshape(flat, shapes[index]), tf.float32)

    return load
