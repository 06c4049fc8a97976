"""SavedModel export of a method's generators, served unchanged by TF Serving.

Layout (what TF Serving's `model_base_path` expects):

    export/NAME/<version>/saved_model.pb, variables/, config.json

`config.json` is the run's resolved config plus an `export` section naming the
signatures of each generator and the verification results.

Signatures of the first (default) generator:

    serving_default   images: uint8 [N, H, W, C]    -> images: uint8 [N, H, W, C']
    translate_bytes   image_bytes: string [N]       -> image_bytes: string [N] (PNG)
                      (JPEG or PNG, any sizes, mixed)
    translate_float   images: float32 [N, H, W, C]  -> images: float32 [N, H, W, C']
                      in [-1, 1]

H and W are free: the signature reflect-pads to the net's size divisor and
crops back. The `_bytes` suffix makes TF Serving's REST API send and return
these values as {"b64": ...}. With several generators (CycleGAN's AtoB and
BtoA), every generator also gets its own set: `AtoB`, `translate_bytes_AtoB`,
`translate_float_AtoB`, `BtoA`, ...

Bad requests (wrong rank or channels, empty batch, bytes that are not a JPEG
or PNG) fail with an InvalidArgumentError naming the problem; the server
process is unaffected.
"""

import json
import os
import re
import tempfile

import numpy as np
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.export.serving import TENSOR_NAMES
from tfi2i.export.translator import center_crop, reflect_pad, round_up

# Default tolerance of `translate_float` against Keras, in [-1, 1] units; the
# uint8 and PNG outputs may differ by one grey level where rounding flips.
FLOAT_TOLERANCE = 1e-4
UINT8_TOLERANCE = 1

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class VerificationError(RuntimeError):
    """The exported model does not reproduce the Keras generator."""


KINDS = ("uint8", "bytes", "float")
# A multimodal generator's signatures with a client-given code, and with a style image.
CODE_KINDS = ("code_uint8", "code_float")
STYLE_KINDS = ("style_uint8", "style_float", "style_code")
DEFAULT_KEYS = {"uint8": "serving_default", "bytes": "translate_bytes", "float": "translate_float",
                "code_uint8": "translate_code", "code_float": "translate_float_code",
                "style_uint8": "translate_style", "style_float": "translate_float_style",
                "style_code": "style_code"}


def signature_keys(generator_names, code_names=(), style_names=()):
    """{signature key: (generator name, kind)} for generators in default-first order.

    The first generator serves the default keys. With several generators each
    also gets keys of its own: its name for uint8 images, and
    `translate_bytes_<name>`, `translate_float_<name>` (and for a multimodal one
    `translate_code_<name>`, `translate_float_code_<name>`, ...). The generators in
    `code_names` also get the code kinds, those in `style_names` the style kinds.
    """
    names = list(generator_names)

    def kinds(name):
        return (KINDS + (CODE_KINDS if name in code_names else ())
                + (STYLE_KINDS if name in style_names else ()))

    keys = {DEFAULT_KEYS[kind]: (names[0], kind) for kind in kinds(names[0])}
    if len(names) > 1:
        for name in names:
            for kind in kinds(name):
                keys[name if kind == "uint8" else f"{DEFAULT_KEYS[kind]}_{name}"] = (name, kind)
    return keys


def generator_keys(generator_names, code_names=(), style_names=()):
    """{generator name: {kind: signature key}}, the generator's own keys where it has them."""
    table = {}
    for key, (name, kind) in signature_keys(generator_names, code_names, style_names).items():
        # Later entries are the generator's own names; they win over the defaults.
        table.setdefault(name, {})[kind] = key
    return table


def _to_float(images):
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _to_uint8(images):
    # Round, as `translator.to_uint8` does, so both paths give the same pixels.
    return tf.saturate_cast(tf.round((images + 1.0) * 127.5), tf.uint8)


def _check_batch(images, channels, what):
    """Runtime checks of a signature's image batch, with messages for the client.

    The signature's input shape is left fully unknown on purpose: with a
    static [None, None, None, 3] these checks would be folded away, and a bad
    request would fail deep inside a convolution instead. For the same reason
    the static shape the net needs comes from a reshape, not `tf.ensure_shape`,
    whose shape grappler propagates back to the input, dropping the checks.
    """
    shape = tf.shape(images)
    is_batch = tf.equal(tf.size(shape), 4)
    # Ops without data dependencies run in any order: every check holds when an
    # earlier one failed, and indexing is padded so that it cannot fail.
    dims = tf.concat([shape, tf.ones([4], tf.int32)], 0)[:4]
    checks = [
        (is_batch, f"expected a batch of images [N, H, W, {channels}]"),
        (~is_batch | tf.equal(dims[3], channels), f"images must have {channels} channels"),
        (~is_batch | (dims[0] > 0), "empty batch; send at least one image"),
        (~is_batch | (dims[1] * dims[2] > 0), "images must be at least 1x1 pixels"),
    ]
    asserts = [tf.debugging.Assert(ok, [f"{what}: {message}; got shape", shape], summarize=8)
               for ok, message in checks]
    with tf.control_dependencies(asserts):
        return tf.reshape(images, tf.stack([dims[0], dims[1], dims[2], channels]))


class ServingModule(tf.Module):
    """The generators' signature functions, with their variables tracked once.

    The module tracks the variables themselves, not the Keras models: a
    tf.Module holding a Keras 3 model loads with `tf.saved_model.load` but not
    with the session loader of TF Serving and `saved_model_cli run`
    ("Could not find variable"); `keras.export.ExportArchive` works there but
    stores every variable twice.
    """

    def __init__(self, generators, size_divisor, code_generators=None, style_encoders=None):
        super().__init__()
        self.size_divisor = int(size_divisor)
        self.code_generators = dict(code_generators or {})
        self.style_encoders = dict(style_encoders or {})
        seen, variables = set(), []
        nets = [*generators.values(), *self.code_generators.values(),
                *self.style_encoders.values()]
        for net in nets:
            for v in net.variables:
                # Generators may share layers (UNIT's shared latent space).
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v.value)
        self.generator_variables = variables
        self._functions = {name: self._functions_of(name, g) for name, g in generators.items()}

    def signatures(self):
        """{signature key: concrete function} for `tf.saved_model.save`."""
        return {key: self._functions[name][kind]
                for key, (name, kind) in signature_keys(
                    self._functions, self.code_generators, self.style_encoders).items()}

    def _functions_of(self, name, generator):
        in_nc = generator.inputs[0].shape[-1]
        divisor = self.size_divisor

        def translate(x, codes=None):
            # A multimodal generator's `generator` draws its code inside (SampleCode);
            # with codes given, its code generator runs instead.
            shape = tf.shape(x)
            height, width = shape[1], shape[2]
            padded = reflect_pad(x, round_up(height, divisor), round_up(width, divisor))
            if codes is None:
                outputs = generator(padded, training=False)
            else:
                outputs = self.code_generators[name]([padded, codes], training=False)
            return center_crop(outputs, height, width)

        # The argument names are the signatures' input names (serving.TENSOR_NAMES).
        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
        def translate_float(images):
            images = _check_batch(images, in_nc, f"{name} (float)")
            return {TENSOR_NAMES["float"]: translate(images)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8)])
        def translate_uint8(images):
            images = _check_batch(images, in_nc, f"{name} (uint8)")
            return {TENSOR_NAMES["uint8"]: _to_uint8(translate(_to_float(images)))}

        def translate_one(data):
            is_image = tf.logical_or(tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC),
                                     tf.equal(tf.strings.substr(data, 0, 3), _JPEG_MAGIC))
            ok = tf.debugging.Assert(
                is_image, [f"{name} (bytes): an element of image_bytes is not a JPEG or PNG "
                           "image; send the encoded file's bytes (base64 in REST's b64)"])
            with tf.control_dependencies([ok]):
                image = tf.io.decode_image(data, channels=in_nc, expand_animations=False)
            image = tf.reshape(image, tf.concat([tf.shape(image)[:2], [in_nc]], 0))
            return tf.io.encode_png(_to_uint8(translate(_to_float(image[None])))[0])

        @tf.function(input_signature=[tf.TensorSpec(None, tf.string)])
        def translate_bytes(image_bytes):
            shape = tf.shape(image_bytes)
            is_vector = tf.equal(tf.size(shape), 1)
            checks = [
                tf.debugging.Assert(is_vector, [
                    f"{name} (bytes): expected a vector [N] of encoded images; got shape", shape],
                    summarize=8),
                tf.debugging.Assert(~is_vector | (tf.size(image_bytes) > 0), [
                    f"{name} (bytes): empty batch; send at least one image"]),
            ]
            with tf.control_dependencies(checks):
                image_bytes = tf.reshape(image_bytes, [-1])
            # One image at a time: a batch may mix sizes.
            outputs = tf.map_fn(translate_one, image_bytes, fn_output_signature=tf.string)
            return {TENSOR_NAMES["bytes"]: outputs}

        functions = {"uint8": translate_uint8.get_concrete_function(),
                     "bytes": translate_bytes.get_concrete_function(),
                     "float": translate_float.get_concrete_function()}
        if name in self.code_generators:
            functions.update(self._code_functions(name, in_nc, translate))
        if name in self.style_encoders:
            functions.update(self._style_functions(name, in_nc, translate))
        return functions

    def _code_functions(self, name, in_nc, translate):
        """The `code_*` signatures: images and the client's codes [N or 1, latent_dim]."""
        dim = self.code_generators[name].inputs[1].shape[-1]

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32),
                                      tf.TensorSpec(None, tf.float32)])
        def translate_float_code(images, codes):
            images = _check_batch(images, in_nc, f"{name} (float, code)")
            return {"images": translate(images, _check_codes(codes, images, dim, name))}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8),
                                      tf.TensorSpec(None, tf.float32)])
        def translate_code(images, codes):
            images = _check_batch(images, in_nc, f"{name} (uint8, code)")
            codes = _check_codes(codes, images, dim, name)
            return {"images": _to_uint8(translate(_to_float(images), codes))}

        return {"code_uint8": translate_code.get_concrete_function(),
                "code_float": translate_float_code.get_concrete_function()}

    def _style_functions(self, name, in_nc, translate):
        """The `style_*` signatures: a style image's code (of the target domain), and
        images translated with the styles of style images [N or 1, h, w, C']."""
        encoder = self.style_encoders[name]
        style_nc = encoder.inputs[0].shape[-1]

        def encode(style_images):
            return encoder(style_images, training=False)

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
        def style_code(style_images):
            style_images = _check_batch(style_images, style_nc, f"{name} (style_images)")
            return {"codes": encode(style_images)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32),
                                      tf.TensorSpec(None, tf.float32)])
        def translate_float_style(images, style_images):
            images = _check_batch(images, in_nc, f"{name} (float, style)")
            style_images = _check_batch(style_images, style_nc, f"{name} (style_images)")
            codes = _check_codes(encode(style_images), images, None, name, "style_images")
            return {"images": translate(images, codes)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8),
                                      tf.TensorSpec(None, tf.uint8)])
        def translate_style(images, style_images):
            images = _check_batch(images, in_nc, f"{name} (uint8, style)")
            style_images = _check_batch(style_images, style_nc, f"{name} (style_images)")
            codes = _check_codes(encode(_to_float(style_images)), images, None, name,
                                 "style_images")
            return {"images": _to_uint8(translate(_to_float(images), codes))}

        return {"style_uint8": translate_style.get_concrete_function(),
                "style_float": translate_float_style.get_concrete_function(),
                "style_code": style_code.get_concrete_function()}


def _check_codes(codes, images, dim, name, what="codes"):
    """Codes [N or 1, dim] for a batch of N images, checked at run time, broadcast to N."""
    static_dim = dim if dim is not None else codes.shape[-1]
    shape = tf.shape(codes)
    count = tf.shape(images)[0]
    is_matrix = tf.equal(tf.size(shape), 2)
    dims = tf.concat([shape, tf.ones([2], tf.int32)], 0)[:2]
    checks = [(is_matrix, f"expected {what} [N, latent_dim]")]
    if dim is not None:
        checks.append((~is_matrix | tf.equal(dims[1], dim), f"codes must have {dim} values"))
    checks.append((~is_matrix | tf.equal(dims[0], count) | tf.equal(dims[0], 1),
                   f"give one entry of {what} per image, or one for all"))
    asserts = [tf.debugging.Assert(ok, [f"{name}: {message}; got shape", shape, "for images",
                                        tf.shape(images)], summarize=8)
               for ok, message in checks]
    with tf.control_dependencies(asserts):
        codes = tf.reshape(codes, tf.stack([dims[0], dims[1]]))
    # A reshape, not tf.ensure_shape (see _check_batch), gives the static width the
    # code generator's dense layers need.
    return tf.reshape(tf.broadcast_to(codes, tf.stack([count, dims[1]])), [-1, static_dim])


def _check_generators(generators, size_divisor):
    if not generators:
        raise ValueError("export needs at least one generator.")
    for name in generators:
        # Clients tell a signature's kind by its name (serving.signature_kind).
        if (not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)
                or name.startswith(("translate_", "style_code")) or name == "serving_default"):
            raise ValueError(f"Generator name {name!r} cannot name a signature; use letters, "
                             f"digits and underscores, not starting with translate_ or "
                             f"style_code.")
    if int(size_divisor) < 1:
        raise ValueError(f"size_divisor must be a positive integer, got {size_divisor}.")
    return dict(generators)


def next_version(output_dir):
    """1 + the highest integer version under `output_dir` (1 if there is none)."""
    if not os.path.isdir(output_dir):
        return 1
    versions = [int(n) for n in os.listdir(output_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def keras_weights_bytes(generators):
    """Bytes of the generators' variables, each counted once."""
    unique = {id(v): v for g in generators.values() for v in g.variables}
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in unique.values())


def directory_bytes(path):
    """Total size of the files under `path`."""
    return sum(os.path.getsize(os.path.join(folder, f))
               for folder, _, files in os.walk(path) for f in files)


def export_generators(generators, size_divisor, config, output_dir, version=None, verify=True,
                      tolerance=FLOAT_TOLERANCE, code_generators=None, style_encoders=None):
    """Exports generators as a SavedModel to `output_dir/<version>/`, verified.

    The model is written and verified in a temporary folder beside the
    versions and renamed into place only when it passed, so a TF Serving
    instance watching `output_dir` never loads a broken or half-written one.

    Args:
        generators: ordered {name: keras.Model}, e.g. {"AtoB": G}; the first
            serves `serving_default`. Each takes float32 [N, H, W, C] in [-1, 1]
            with H, W multiples of `size_divisor`.
        size_divisor: what the generators' input sizes must be multiples of.
        config: the run's resolved config, written to config.json.
        output_dir: the model's base path, e.g. export/facades.
        version: integer version; default one above the highest present.
        verify: reload with TF Serving's loader and compare every signature to Keras.
        tolerance: max abs diff allowed for `translate_float` ([-1, 1] units).
        code_generators: a multimodal method's {name: keras.Model([images, codes])} (its
            `generators` draw the code inside): adds the `*_code` signatures.
        style_encoders: {name: keras.Model(style images) -> codes}: adds the `*_style`
            and `style_code*` signatures.

    Returns:
        A report dict: path, version, signatures, sizes and (if verified) the
        max abs diff of every signature.

    Raises:
        VerificationError: a signature differs from Keras beyond the tolerance.
    """
    generators = _check_generators(generators, size_divisor)
    output_dir = os.fspath(output_dir)
    version = next_version(output_dir) if version is None else int(version)
    final_dir = os.path.join(output_dir, str(version))
    if os.path.exists(final_dir):
        raise UserError(f"{final_dir} already exists; export as a new version (leave out "
                        f"--version) or remove it.")
    os.makedirs(output_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=output_dir)

    code_generators, style_encoders = dict(code_generators or {}), dict(style_encoders or {})
    module = ServingModule(generators, size_divisor, code_generators, style_encoders)
    tf.saved_model.save(module, work_dir, signatures=module.signatures())
    report = {
        "format": "savedmodel",
        "version": version,
        "size_divisor": int(size_divisor),
        "generators": generator_keys(generators, code_generators, style_encoders),
        # config.json is written with sorted keys: the default (serving_default's) by name.
        "default": next(iter(generators)),
        "signatures": sorted(module.signatures()),
        "variables_bytes": directory_bytes(os.path.join(work_dir, "variables")),
        "keras_weights_bytes": keras_weights_bytes(
            {**generators, **{f"code_{k}": v for k, v in code_generators.items()},
             **{f"style_{k}": v for k, v in style_encoders.items()}}),
        "tensorflow": tf.__version__,
    }
    if code_generators:
        report["latent_dim"] = int(next(iter(code_generators.values())).inputs[1].shape[-1])
        report["sampled"] = sorted(key for key, (name, kind) in signature_keys(
            generators, code_generators, style_encoders).items()
            if name in code_generators and kind in KINDS)
    if verify:
        report["max_abs_diff"] = verify_savedmodel(work_dir, generators, size_divisor, tolerance,
                                                   code_generators, style_encoders)
    with open(os.path.join(work_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump({**config, "export": report}, f, indent=2, sort_keys=True)
    os.replace(work_dir, final_dir)
    # mkdtemp made it private; TF Serving often runs as another user.
    os.chmod(final_dir, 0o755)
    return {"path": final_dir, **report}


def export_run(run_dir, output_dir, checkpoint=None, **kwargs):
    """`export_generators` for a training run directory (its latest or given checkpoint)."""
    from tfi2i.training.checkpoints import restore_run

    model, config = restore_run(run_dir, checkpoint)
    return export_generators(model.generators, model.size_divisor, config, output_dir,
                             code_generators=model.code_generators,
                             style_encoders=model.style_encoders, **kwargs)


def test_batch(channels, size_divisor, count=2, seed=0):
    """Smooth random uint8 images [count, H, W, channels] whose size needs padding."""
    base = round_up(24, size_divisor)
    height, width = base - 3, base + 5
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 6, 8, channels)).astype(np.float32)
    smooth = tf.image.resize(coarse, (height, width), method="bicubic").numpy()
    return np.clip(smooth, 0, 255).astype(np.uint8)


def keras_reference(generator, images, size_divisor, codes=None):
    """The generator's float output for uint8 or float images, padded and cropped as exported
    (a code generator's with `codes`)."""
    x = tf.convert_to_tensor(images)
    x = _to_float(x) if x.dtype == tf.uint8 else x
    height, width = x.shape[1], x.shape[2]
    padded = reflect_pad(x, round_up(height, size_divisor), round_up(width, size_divisor))
    inputs = padded if codes is None else [padded, tf.constant(codes)]
    return center_crop(generator(inputs, training=False), height, width).numpy()


def verify_savedmodel(export_dir, generators, size_divisor, tolerance=FLOAT_TOLERANCE,
                      code_generators=None, style_encoders=None):
    """Runs every signature through TF Serving's (session) loader and compares to Keras.

    A multimodal generator's signatures without a code draw it in the graph: they are
    checked for their output's shape and range, and for drawing anew (two runs differ);
    its `*_code` and `*_style` signatures are compared to the Keras code generator (and
    style encoder) on fixed codes and style images.

    Returns:
        {signature key: max abs diff} of the deterministic signatures: [-1, 1] units for
        the float ones and codes, grey levels for the uint8 and PNG outputs.

    Raises:
        VerificationError: above `tolerance` (float) or one grey level (uint8, PNG), or a
            sampled signature that does not vary or has the wrong shape.
    """
    code_generators, style_encoders = dict(code_generators or {}), dict(style_encoders or {})
    rng = np.random.default_rng(0)
    feeds, expected = {}, {}
    for name, generator in generators.items():
        images = test_batch(generator.inputs[0].shape[-1], size_divisor)
        floats = images.astype(np.float32) / 127.5 - 1.0
        feeds[name] = {"uint8": {"images": images}, "float": {"images": floats},
                       "bytes": {"image_bytes": np.array(
                           [tf.io.encode_png(i).numpy() for i in images], object)}}
        if name in code_generators:
            code_generator = code_generators[name]
            codes = rng.standard_normal(
                (len(images), code_generator.inputs[1].shape[-1])).astype(np.float32)
            expected[name] = {"code": keras_reference(code_generator, images, size_divisor,
                                                      codes)}
            feeds[name]["code_uint8"] = {"images": images, "codes": codes}
            feeds[name]["code_float"] = {"images": floats, "codes": codes}
            if name in style_encoders:
                style = test_batch(style_encoders[name].inputs[0].shape[-1], size_divisor,
                                   seed=1)
                style_floats = style.astype(np.float32) / 127.5 - 1.0
                style_codes = style_encoders[name](style_floats, training=False).numpy()
                expected[name]["style_code"] = style_codes
                expected[name]["style"] = keras_reference(code_generator, images, size_divisor,
                                                          style_codes)
                feeds[name]["style_uint8"] = {"images": images, "style_images": style}
                feeds[name]["style_float"] = {"images": floats, "style_images": style_floats}
                feeds[name]["style_code"] = {"style_images": style_floats}
        else:
            expected[name] = {"plain": keras_reference(generator, images, size_divisor)}
    keys = signature_keys(generators, code_generators, style_encoders)
    cases = {key: feeds[name][kind] for key, (name, kind) in keys.items()}
    sampled = [key for key, (name, kind) in keys.items()
               if name in code_generators and kind in KINDS]
    # The second run is in the same session, as in a server: a new session may restart
    # a seeded random op's sequence.
    outputs = _run_with_session_loader(export_dir, cases, repeat=sampled)
    again = {key: outputs.pop(f"{key}#2") for key in sampled}
    diffs = {}
    for key, (name, kind) in keys.items():
        output = outputs[key]
        if kind == "bytes":
            output = np.stack([tf.io.decode_png(data).numpy() for data in output])
            if key in again:
                again[key] = np.stack([tf.io.decode_png(data).numpy() for data in again[key]])
        if key in again:  # drawn in the graph: shape, range, and a new draw each run
            reference_shape = expected[name]["code"].shape
            low, high = (-1, 1) if kind == "float" else (0, 255)
            problem = None
            if output.shape != reference_shape:
                problem = f"has shape {output.shape}, expected {reference_shape}"
            elif output.min() < low - 1e-6 or output.max() > high + 1e-6:
                problem = f"is outside [{low}, {high}]"
            elif np.array_equal(output, again[key]):
                problem = "gave the same output twice: it does not draw its code"
            if problem:
                raise VerificationError(f"Signature {key} of {export_dir} {problem}; the "
                                        f"export is kept in {export_dir} for inspection but "
                                        f"was not published as a version.")
            continue
        if kind == "style_code":
            reference, limit = expected[name]["style_code"], tolerance
            diffs[key] = float(np.abs(output - reference).max())
        else:
            reference = expected[name][{"code_uint8": "code", "code_float": "code",
                                        "style_uint8": "style", "style_float": "style"}.get(
                                            kind, "plain")]
            if kind.endswith("float"):
                diffs[key] = float(np.abs(output - reference).max())
                limit = tolerance
            else:
                reference = np.clip(np.round((reference + 1.0) * 127.5), 0, 255)
                diffs[key] = float(np.abs(output.astype(np.float32) - reference).max())
                limit = UINT8_TOLERANCE
        if not diffs[key] <= limit:
            raise VerificationError(
                f"Signature {key} of {export_dir} differs from the Keras generator by "
                f"{diffs[key]:.3g} (tolerance {limit}); the export is kept in {export_dir} for "
                f"inspection but was not published as a version.")
    return diffs


def _run_with_session_loader(export_dir, cases, repeat=()):
    """{signature key: outputs} for {key: {input name: value}}, through the TF1 session
    loader TF Serving uses; the keys in `repeat` run twice, the second's under "key#2"."""
    results = {}
    logger = tf.get_logger()
    level = logger.level
    # The TF1 loader is deprecated for TF2 code, but it is what TF Serving runs.
    logger.setLevel("ERROR")
    try:
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            meta_graph = tf.compat.v1.saved_model.load(session, [tf.saved_model.SERVING],
                                                       export_dir)
            runs = [(key, key) for key in cases] + [(f"{key}#2", key) for key in repeat]
            for name, key in runs:
                signature = meta_graph.signature_def[key]
                (output_info,) = signature.outputs.values()
                results[name] = session.run(output_info.name, {
                    signature.inputs[input_name].name: value
                    for input_name, value in cases[key].items()})
    finally:
        logger.setLevel(level)
    return results
