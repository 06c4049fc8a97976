"""Translating images of any size: reflect padding, tiling with blending, `load`.

A generator only accepts heights and widths that are multiples of its size
divisor (256 for a U-Net 256, 4 for a ResNet generator). `Translator` pads
each image (reflect, centred) up to the next multiple, runs the net and crops
back, so outputs always have their inputs' size. Images larger than
`tile_size` are cut into overlapping tiles that are translated in batches and
blended with weights that ramp down towards each tile's border, so no seam
shows where tiles meet.

`load(path)` returns a `Translator` for a run directory, an export directory
(SavedModel) or a `.tflite` file.
"""

import concurrent.futures
import math
import os

import numpy as np
import tensorflow as tf

from tfi2i.config import read_config
from tfi2i.data.decode import IMAGE_EXTENSIONS, list_images
from tfi2i.errors import UserError


# -- padding ----------------------------------------------------------------

def round_up(size, divisor):
    """The smallest multiple of `divisor` that is >= `size`."""
    return -(-size // divisor) * divisor


def _reflect_indices(size, padded_size):
    """Source indices that reflect-pad an axis of `size` to `padded_size`, centred.

    Computed as a gather rather than `tf.pad(mode="REFLECT")`, which cannot pad
    by more than the axis length minus one: a 100 px image padded to 256 needs
    repeated reflection.
    """
    before = (padded_size - size) // 2
    positions = tf.range(padded_size) - before
    # Reflection without repeating the edge has period 2 * (size - 1); a 1 px
    # axis has nothing to reflect, so it repeats.
    period = tf.maximum(2 * (size - 1), 1)
    positions = tf.math.floormod(positions, period)
    return tf.where(positions >= size, period - positions, positions)


def reflect_pad(images, height, width):
    """Reflect-pads [N, H, W, C] images, centred, to [N, height, width, C]."""
    shape = tf.shape(images)
    images = tf.gather(images, _reflect_indices(shape[1], height), axis=1)
    return tf.gather(images, _reflect_indices(shape[2], width), axis=2)


def center_crop(images, height, width):
    """Undoes `reflect_pad`: the centred [height, width] window of [N, H, W, C] images."""
    shape = tf.shape(images)
    top = (shape[1] - height) // 2
    left = (shape[2] - width) // 2
    return images[:, top:top + height, left:left + width, :]


# -- tiling -----------------------------------------------------------------

def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size `tile` covering [0, length), overlapping by >= `overlap`."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [int(round(s)) for s in np.linspace(0, length - tile, count)]


def blend_window(tile, overlap):
    """1-D blending weights of a tile: a raised-cosine ramp over `overlap` pixels at both ends.

    The ramp is near zero at the tile's edge, where the net saw zero padding
    instead of the neighbouring pixels, and never exactly zero, so pixels
    covered by a single tile (at the image border) keep their value after
    normalisation.
    """
    position = np.arange(tile, dtype=np.float64) + 0.5
    ramp = np.sin(0.5 * np.pi * np.minimum(1.0, np.minimum(position, tile - position)
                                           / max(overlap, 1))) ** 2
    return ramp.astype(np.float32)


# -- the translator ----------------------------------------------------------

class Translator:
    """Translates images of any size with a method's generator(s).

    Args:
        nets: ordered {direction: fn}; each fn maps float32 [N, h, w, C] in
            [-1, 1], h and w multiples of `size_divisor`, to float32 [N, h, w, C']
            in [-1, 1]. The first direction is the default.
        size_divisor: what the nets' input height and width must be multiples of.
        config: the run's resolved config; its `input_nc` (default 3) is the
            channel count images must have.
        tile_size: images with a side above this are translated in tiles of
            this size (rounded up to a multiple of `size_divisor`); bounds memory.
        tile_overlap: minimum overlap of neighbouring tiles, in pixels; the
            blending ramp is this long.
        batch_size: images (or tiles) per call of the net.
        code_nets: for a multimodal model, {direction: fn(images, codes [N, latent_dim]) ->
            images}: these directions translate with codes (given, or drawn from N(0, I) by
            this translator's generator, one per image, shared by its tiles).
        style_nets: {direction: fn(images) -> codes}: the code of a reference image of the
            direction's target domain (MUNIT, DRIT, BicycleGAN's encoder).
        latent_dim: the codes' length (with `code_nets`).
        seed: seeds the codes this translator draws (None: fresh entropy).
    """

    def __init__(self, nets, size_divisor, config=None, tile_size=1024, tile_overlap=64,
                 batch_size=4, code_nets=None, style_nets=None, latent_dim=0, seed=None):
        if not nets:
            raise ValueError("Translator needs at least one net.")
        self.nets = dict(nets)
        self.code_nets = dict(code_nets or {})
        self.style_nets = dict(style_nets or {})
        self._latent_dim = int(latent_dim)
        self.rng = np.random.default_rng(seed)
        if self.code_nets and self._latent_dim < 1:
            raise ValueError("A Translator with code_nets needs latent_dim >= 1.")
        self.size_divisor = int(size_divisor)
        self.config = dict(config or {})
        self.tile_size = round_up(int(tile_size), self.size_divisor)
        self.tile_overlap = int(tile_overlap)
        self.batch_size = int(batch_size)
        if not 0 <= self.tile_overlap < self.tile_size // 2:
            raise UserError(f"tile_overlap={tile_overlap} must be >= 0 and less than half "
                            f"the tile size ({self.tile_size}); lower it or raise tile_size.")
        if self.batch_size < 1:
            raise UserError(f"batch_size={batch_size} must be at least 1.")

    @property
    def input_nc(self):
        """Channels of the images this translator takes."""
        return int(self.config.get("input_nc", 3))

    @property
    def directions(self):
        """The directions this translator can run, the default first."""
        return list(self.nets)

    @property
    def latent_dim(self):
        """Length of a code of the multimodal directions (0: one output per input)."""
        return self._latent_dim if self.code_nets else 0

    def translate(self, images, direction=None, codes=None):
        """Translates images of any size.

        Args:
            images: one image [H, W, C], a batch [N, H, W, C] or a list of
                images of different sizes. uint8 images are in [0, 255] and give
                uint8 outputs; floating-point images are taken to be in [-1, 1]
                and give float32 outputs. A 2-D array is a one-channel image.
            direction: which net to use (see `directions`); default the first.
            codes: for a multimodal direction, [latent_dim] (one code for every image) or
                [N, latent_dim] (one per image); default a fresh draw from N(0, I) per image.

        Returns:
            The translated images in the same structure and sizes as `images`.
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            if not len(images):
                return images
            return np.stack(self._translate_list(list(images), direction, codes))
        if isinstance(images, (list, tuple)):
            return self._translate_list(list(images), direction, codes)
        return self._translate_list([images], direction, codes)[0]

    def sample(self, images, num_samples, direction=None, codes=None):
        """`num_samples` translations of each image, each with its own code.

        Args:
            images: as for `translate`, a list or a batch.
            num_samples: outputs per image (each a new draw, unless `codes` is given).
            codes: optional [num_samples, latent_dim]: sample k of every image uses code k.

        Returns:
            A list over samples of `translate`'s result for `images`.
        """
        direction = self._direction(direction)
        if direction not in self.code_nets:
            raise UserError(f"Direction {direction} of this model makes one output per input: "
                            "several samples need a multimodal model (bicycle_gan, munit, "
                            "drit).")
        if codes is not None and len(codes) != num_samples:
            raise UserError(f"{len(codes)} codes for {num_samples} samples; give one per sample.")
        return [self.translate(images, direction, None if codes is None else codes[k])
                for k in range(num_samples)]

    def style_codes(self, style_images, direction=None):
        """Codes [M, latent_dim] of reference images of the direction's target domain."""
        direction = self._direction(direction)
        if direction not in self.style_nets:
            raise UserError(f"Direction {direction} of this model cannot take a style image; "
                            "style images need a model with a style or attribute encoder "
                            "(munit, drit, bicycle_gan) loaded from a run or a SavedModel "
                            "(a .tflite file holds the generator only).")
        return np.concatenate([np.asarray(self.style_nets[direction](self._to_float(
            image, self.output_nc)[None])) for image in style_images], 0)

    def _direction(self, direction):
        direction = direction or self.directions[0]
        if direction not in self.nets:
            raise UserError(f"Unknown direction {direction!r}; this model has "
                            f"{', '.join(self.directions)}.")
        return direction

    def _net(self, direction, codes, count):
        """fn(batch, indices of its images) for `direction` (codes bound per image)."""
        direction = self._direction(direction)
        if direction not in self.code_nets:
            if codes is not None:
                raise UserError(f"Direction {direction} of this model takes no code; leave "
                                "codes (--seed, --style_image) out.")
            net = self.nets[direction]
            return lambda batch, indices: net(batch)
        dim = self.latent_dim
        if codes is None:
            codes = self.rng.standard_normal((count, dim)).astype(np.float32)
        codes = np.asarray(codes, np.float32)
        if codes.ndim == 1:
            codes = np.broadcast_to(codes, (count, codes.shape[0]))
        if codes.shape != (count, dim):
            raise UserError(f"codes must be [{dim}] or [{count}, {dim}] for {count} images; "
                            f"got shape {codes.shape}.")
        net = self.code_nets[direction]
        return lambda batch, indices: net(batch, tf.constant(codes[list(indices)]))

    def _translate_list(self, images, direction=None, codes=None):
        net = self._net(direction, codes, len(images))
        arrays = [self._to_float(image) for image in images]
        results = [None] * len(arrays)
        # Images that need no tiling are batched with others of the same padded size.
        groups = {}
        for i, x in enumerate(arrays):
            h, w = x.shape[:2]
            if max(h, w) > self.tile_size:
                results[i] = self._translate_tiled(x, lambda tiles, i=i: net(
                    tiles, [i] * len(tiles)))
            else:
                key = (round_up(h, self.size_divisor), round_up(w, self.size_divisor))
                groups.setdefault(key, []).append(i)
        for (hp, wp), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = tf.concat([reflect_pad(arrays[i][None], hp, wp) for i in chunk], 0)
                outputs = np.asarray(net(batch, chunk))
                for i, out in zip(chunk, outputs):
                    h, w = arrays[i].shape[:2]
                    results[i] = np.asarray(center_crop(out[None], h, w))[0]
        return [self._from_float(y, image) for y, image in zip(results, images)]

    def _translate_tiled(self, x, net):
        """Translates one large [H, W, C] float image tile by tile and blends the tiles."""
        h, w = x.shape[:2]
        # Padded as for an untiled call, so the image borders look the same to
        # the net; an axis no longer than a tile is not split.
        canvas_h, canvas_w = round_up(h, self.size_divisor), round_up(w, self.size_divisor)
        tile_h, tile_w = min(self.tile_size, canvas_h), min(self.tile_size, canvas_w)
        padded = reflect_pad(x[None], canvas_h, canvas_w)[0].numpy()
        window = (blend_window(tile_h, self.tile_overlap)[:, None]
                  * blend_window(tile_w, self.tile_overlap)[None, :])[..., None]
        boxes = [(top, left)
                 for top in tile_starts(canvas_h, tile_h, self.tile_overlap)
                 for left in tile_starts(canvas_w, tile_w, self.tile_overlap)]
        total, weight = None, np.zeros((canvas_h, canvas_w, 1), np.float32)
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start:start + self.batch_size]
            tiles = np.stack([padded[t:t + tile_h, l:l + tile_w] for t, l in chunk])
            outputs = np.asarray(net(tf.constant(tiles)))
            if total is None:
                total = np.zeros((canvas_h, canvas_w, outputs.shape[-1]), np.float32)
            for (t, l), out in zip(chunk, outputs):
                total[t:t + tile_h, l:l + tile_w] += out * window
                weight[t:t + tile_h, l:l + tile_w] += window
        return np.asarray(center_crop((total / weight)[None], h, w))[0]

    @property
    def output_nc(self):
        """Channels of the images this translator makes (and of style images)."""
        return int(self.config.get("output_nc", 3))

    def _to_float(self, image, channels=None):
        channels = channels or self.input_nc
        x = np.asarray(image)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise UserError(f"Expected an image [H, W, C] (or a batch [N, H, W, C]); "
                            f"got an array of shape {x.shape}.")
        if x.shape[-1] != channels:
            raise UserError(f"Images have {x.shape[-1]} channels; this model takes "
                            f"{channels}.")
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 127.5 - 1.0
        if np.issubdtype(x.dtype, np.floating):
            return x.astype(np.float32)
        raise UserError(f"Images must be uint8 in [0, 255] or float in [-1, 1]; got {x.dtype}.")

    @staticmethod
    def _from_float(y, image):
        if np.asarray(image).dtype == np.uint8:
            return to_uint8(y)
        return y.astype(np.float32)


def to_uint8(images):
    """float images in [-1, 1] -> uint8 in [0, 255], rounded (as the SavedModel does)."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# -- backends -----------------------------------------------------------------

def keras_net(generator):
    """A `Translator` net from a Keras generator, run in inference mode, traced once."""
    channels = generator.inputs[0].shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def net(images):
        return generator(images, training=False)

    return net


def keras_code_net(generator):
    """A `Translator` code net from a Keras generator taking [images, codes]."""
    channels, dim = generator.inputs[0].shape[-1], generator.inputs[1].shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32),
                                  tf.TensorSpec([None, dim], tf.float32)])
    def net(images, codes):
        return generator([images, codes], training=False)

    return net


def keras_style_net(encoder):
    """A `Translator` style net from a Keras style encoder (images -> codes)."""
    channels = encoder.inputs[0].shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def net(images):
        return encoder(images, training=False)

    return net


def savedmodel_net(signature):
    """A `Translator` net from a loaded `translate_float*` signature (or `_code` one)."""
    def net(images, codes=None):
        inputs = {"images": tf.convert_to_tensor(images, tf.float32)}
        if codes is not None:
            inputs["codes"] = tf.convert_to_tensor(codes, tf.float32)
        return signature(**inputs)["images"]
    return net


def savedmodel_style_net(signature):
    """A `Translator` style net from a loaded `style_code*` signature."""
    def net(images):
        return signature(style_images=tf.convert_to_tensor(images, tf.float32))["codes"]
    return net


class TFLiteNet:
    """A `Translator` net from a `.tflite` file, resizing its inputs to each batch's shape.

    A multimodal generator's file also takes `codes` [N, latent_dim] (see
    `tfi2i.export.tflite.convert`): call it with (images, codes).
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = str(path)
        self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        details = self.interpreter.get_input_details()
        codes = [d["index"] for d in details if "codes" in d["name"]]
        self._input = next(d["index"] for d in details if d["index"] not in codes)
        self._codes = codes[0] if codes else None
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shapes = None

    def __call__(self, images, codes=None):
        feeds = {self._input: np.asarray(images, np.float32)}
        if (codes is None) != (self._codes is None):
            raise UserError(f"{self.path} takes " + ("images and codes" if self._codes
                                                      is not None else "images only") + ".")
        if codes is not None:
            feeds[self._codes] = np.asarray(codes, np.float32)
        shapes = {index: value.shape for index, value in feeds.items()}
        if shapes != self._shapes:
            for index, shape in shapes.items():
                self.interpreter.resize_tensor_input(index, shape)
            self.interpreter.allocate_tensors()
            self._shapes = shapes
        for index, value in feeds.items():
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)


# -- files --------------------------------------------------------------------

def input_images(path):
    """The images to translate: `path` itself (a file) or `tfi2i.data.list_images` of a folder.

    The folder is searched recursively, with the same rules as the data pipeline (the
    extensions of `IMAGE_EXTENSIONS` in any case, no hidden files or folders).

    Returns:
        (root, relative paths): outputs keep the relative paths under root.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.dirname(path), [os.path.basename(path)]
    if not os.path.isdir(path):
        raise UserError(f"Input {path} does not exist; pass an image file or a folder of images.")
    return path, [os.path.relpath(p, path) for p in list_images(path, recursive=True)]


def read_image(path, channels=3, exif_orientation=True):
    """An image file as uint8 [H, W, channels], decoded as training data are.

    `tfi2i.data.decode.read_image`: the same formats and pixels, upright by the EXIF
    orientation unless `exif_orientation` is False. One channel is PIL's
    `convert("L")` of the RGB image, as the reference's.
    """
    from tfi2i.data.decode import read_image as decode_file

    array = decode_file(path, exif_orientation)
    if channels == 1:
        from PIL import Image

        return np.asarray(Image.fromarray(array).convert("L"))[..., None]
    return array


def write_image(path, image):
    """Writes uint8 [H, W, C] to `path`, in the format its extension names."""
    from PIL import Image

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image = image[..., 0] if image.shape[-1] == 1 else image
    options = {"quality": 95} if path.lower().endswith((".jpg", ".jpeg")) else {}
    Image.fromarray(image).save(path, **options)


def sample_name(name, k, num_samples):
    """The file name of sample k of `num_samples` of input `name`: a.png -> a_sample3.png."""
    stem, ext = os.path.splitext(name)
    return f"{stem}_sample{k:0{len(str(num_samples - 1))}d}{ext}"


def translate_files(translator, input_path, output_dir, direction=None, progress=True,
                    exif_orientation=True, num_samples=1, codes=None):
    """Translates an image file or a folder (recursively) into `output_dir`.

    Outputs keep their inputs' names and relative paths. Files that cannot be
    read are skipped and reported. Inputs are turned upright by their EXIF
    orientation unless `exif_orientation` is False.

    A multimodal direction takes `codes` ([latent_dim]: every image's, e.g. a style
    image's), or draws one per image from the translator's seeded generator; with
    `num_samples` > 1 each image gets that many outputs, `a.png` -> `a_sample0.png`, ...

    Returns:
        (number translated, list of (relative path, reason) for skipped files).
    """
    import keras

    root, names = input_images(input_path)
    # An output folder inside the input folder: don't translate earlier outputs.
    output_real = os.path.realpath(output_dir)
    names = [n for n in names if not os.path.realpath(os.path.join(root, n)).startswith(
        output_real + os.sep)]
    if not names:
        raise UserError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {input_path}.")
    channels = translator.input_nc
    bar = keras.utils.Progbar(len(names), unit_name="image") if progress else None
    done, skipped = 0, []
    # A few batches' worth of files at a time: bounded memory, and images of
    # the same padded size still share batches. Threads decode the next chunk and
    # encode the last one's outputs while the net runs (PIL and TF release the GIL),
    # so the net does not wait on file I/O.
    chunk_size = translator.batch_size * 4
    chunks = [names[start:start + chunk_size] for start in range(0, len(names), chunk_size)]

    def read(name):
        try:
            return read_image(os.path.join(root, name), channels, exif_orientation), None
        except UserError as e:
            return None, str(e)

    with concurrent.futures.ThreadPoolExecutor(2) as readers, \
            concurrent.futures.ThreadPoolExecutor(2) as writers:
        reads = [readers.submit(read, name) for name in chunks[0]]
        writes = []
        for index, names_in_chunk in enumerate(chunks):
            results = [future.result() for future in reads]
            if index + 1 < len(chunks):
                reads = [readers.submit(read, name) for name in chunks[index + 1]]
            chunk, images = [], []
            for name, (image, error) in zip(names_in_chunk, results):
                if error is None:
                    chunk.append(name)
                    images.append(image)
                else:
                    skipped.append((name, error))
            jobs = []
            if images and num_samples > 1:
                samples = translator.sample(images, num_samples, direction)
                jobs = [(sample_name(name, k, num_samples), output)
                        for k, outputs in enumerate(samples)
                        for name, output in zip(chunk, outputs)]
            elif images:
                jobs = list(zip(chunk, translator.translate(images, direction, codes)))
            # At most two chunks of outputs in memory: wait for the one before.
            for future in writes:
                future.result()
            writes = [writers.submit(write_image, os.path.join(output_dir, name), output)
                      for name, output in jobs]
            done += len(chunk)
            if bar:
                bar.add(len(names_in_chunk))
        for future in writes:
            future.result()
    return done, skipped


# -- load -----------------------------------------------------------------------

def find_savedmodel(path):
    """The SavedModel directory for `path`: itself, or its highest integer version."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(name) for name in os.listdir(path) if name.isdigit()
                and os.path.isfile(os.path.join(path, name, "saved_model.pb"))]
    if not versions:
        return None
    return os.path.join(path, str(max(versions)))


def load(path, checkpoint=None, seed=None, **translator_args):
    """A `Translator` for a run directory, an export directory or a `.tflite` file.

    Args:
        path: a run directory (config.json and checkpoints/, written by
            training), an export directory (`export/NAME`, whose highest
            integer version is used, or `export/NAME/<version>`), or a
            `.tflite` file written by `tfi2i-export --format=tflite`.
        checkpoint: for a run directory, a checkpoint path (default: latest).
        seed: seeds the codes a multimodal model's translator draws (`Translator`).
        **translator_args: `tile_size`, `tile_overlap`, `batch_size` of
            `Translator`.
    """
    path = os.fspath(path)
    translator_args["seed"] = seed
    if not os.path.exists(path):
        raise UserError(f"Model path {path} does not exist; pass a run directory, an export "
                        f"directory or a .tflite file.")
    if path.endswith(".tflite"):
        return _load_tflite(path, translator_args)
    if not os.path.isdir(path):
        raise UserError(f"Model path {path} is a file but not a .tflite model; pass a run "
                        f"directory, an export directory or a .tflite file.")
    savedmodel_dir = find_savedmodel(path)
    if savedmodel_dir:
        return _load_savedmodel(savedmodel_dir, translator_args)
    if os.path.isfile(os.path.join(path, "config.json")):
        return _load_run(path, checkpoint, translator_args)
    raise UserError(f"{path} is neither a run directory (config.json, checkpoints/) nor an "
                    f"export directory (<version>/saved_model.pb); point --model at one.")


def _load_run(run_dir, checkpoint, translator_args):
    # Imported here: training pulls in methods, nets and data, which export does not need.
    from tfi2i.training.checkpoints import restore_run

    model, config = restore_run(run_dir, checkpoint)
    nets = {name: keras_net(g) for name, g in model.generators.items()}
    return Translator(nets, model.size_divisor, config,
                      code_nets={name: keras_code_net(g)
                                 for name, g in model.code_generators.items()},
                      style_nets={name: keras_style_net(e)
                                  for name, e in model.style_encoders.items()},
                      latent_dim=model.latent_dim, **translator_args)


def config_beside(folder):
    """The config.json in `folder` (by `tfi2i.config.read_config`), or {} if there is none."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        return {}
    return read_config(folder)


def _load_savedmodel(savedmodel_dir, translator_args):
    config = config_beside(savedmodel_dir)
    info = config.get("export")
    if not info:
        raise UserError(f"{savedmodel_dir} has no tfi2i config.json with an 'export' section; "
                        f"it was not written by tfi2i-export. Re-export it from its run.")
    loaded = tf.saved_model.load(savedmodel_dir)
    # The default direction first (serving_default's); exports older than the "default"
    # key fall back to the run's direction.
    default = info.get("default", config.get("direction"))
    names = sorted(info["generators"], key=lambda name: name != default)
    keys = info["generators"]
    nets = {name: savedmodel_net(loaded.signatures[keys[name]["float"]]) for name in names}
    code_nets = {name: savedmodel_net(loaded.signatures[keys[name]["code_float"]])
                 for name in names if "code_float" in keys[name]}
    style_nets = {name: savedmodel_style_net(loaded.signatures[keys[name]["style_code"]])
                  for name in names if "style_code" in keys[name]}
    translator = Translator(nets, info["size_divisor"], config, code_nets=code_nets,
                            style_nets=style_nets, latent_dim=info.get("latent_dim", 0),
                            **translator_args)
    translator.loaded = loaded  # keeps the signatures' variables alive
    return translator


def _load_tflite(path, translator_args):
    config = config_beside(os.path.dirname(path))
    info = config.get("export", {})
    model = info.get("files", {}).get(os.path.basename(path))
    if not model:
        raise UserError(f"{path} is not listed in the config.json beside it; use a .tflite "
                        f"file written by tfi2i-export --format=tflite, with its config.json.")
    net = TFLiteNet(path)
    if "latent_dim" in model:  # a multimodal generator: the translator draws the codes
        return Translator({model["direction"]: net}, info["size_divisor"], config,
                          code_nets={model["direction"]: net},
                          latent_dim=model["latent_dim"], **translator_args)
    return Translator({model["direction"]: net}, info["size_divisor"], config,
                      **translator_args)
