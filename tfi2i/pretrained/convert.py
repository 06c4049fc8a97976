"""Reference generator checkpoints -> tfi2i generators and run directories.

A checkpoint of the reference (pytorch-CycleGAN-and-pix2pix) is the state dict of one
`ResnetGenerator` or `UnetGenerator`. tfi2i's generators (`tfi2i.nets.define_G`) have the
same layers, parameters and padding arithmetic, so converting is renaming and transposing:

- Conv2d weight (out, in, kh, kw) -> Keras Conv2D kernel (kh, kw, in, out);
- ConvTranspose2d weight (in, out, kh, kw) -> Keras Conv2DTranspose kernel (kh, kw, out, in),
  no spatial flip: both are the adjoint of the same cross-correlation;
- BatchNorm2d weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
  moving_variance (both normalise with var + 1e-5);
- reflection pads, ReLUs and tanh have no parameters; padding semantics (zero padding 1 of
  the stride-2 convs, ConvTranspose2d's padding 1 with output_padding 1 in the ResNet)
  are emulated by tfi2i's `conv2d` / `conv2d_transpose` exactly; the parity test on torch
  outputs (tests/test_import.py) checks all of it to 1e-5.

Checkpoint quirks handled (and recorded in the run's config.json):

- Instance-norm running statistics: checkpoints saved by torch < 0.4 (the era of the
  first released CycleGAN models) carry `running_mean` and `running_var` buffers of every
  InstanceNorm2d, and 0.4.1 added `num_batches_tracked`. The reference's nets use
  InstanceNorm2d(affine=False, track_running_stats=False), which has none and normalises
  each image with its own statistics, so its loader deletes these keys before loading
  (`BaseModel.__patch_instance_norm_state_dict` in models/base_model.py). We drop them too,
  and only at instance-norm positions; batch norm's `num_batches_tracked` is not a weight
  either and is dropped.
- The `module.` prefix of a model saved while wrapped in `nn.DataParallel` (the reference
  saves `net.module.state_dict()`, but other code saving its nets does not): stripped when
  every key has it.
- The state dict's `_metadata` attribute (module versions) is ignored.

Everything else must match: every tensor of the file has one place in the generator with the
expected shape, and every generator weight gets one tensor; anything else is a UserError
naming the key, so a file of another architecture never loads half-way.
"""

import hashlib
import os
import re
import shutil
import tempfile

import numpy as np

from tfi2i.errors import UserError

_UNET_NAMES = {8: "unet_256", 7: "unet_128", 6: "unet_64", 5: "unet_32"}
_RESNET_NAMES = {9: "resnet_9blocks", 6: "resnet_6blocks"}
INSTANCE_NORM_STAT_KEYS = ("running_mean", "running_var", "num_batches_tracked")
DATA_PARALLEL_PREFIX = "module."
ARCHITECTURE_OPTIONS = ("netG", "ngf", "norm", "input_nc", "output_nc", "use_dropout")


# -- reading the architecture off the keys --------------------------------------------------

def strip_data_parallel_prefix(state):
    """(state without a `module.` prefix on every key, the prefix stripped or None)."""
    if state and all(k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        return {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}, DATA_PARALLEL_PREFIX
    return dict(state), None


def _shape(state, key):
    return tuple(state[key].shape) if key in state else None


def _unet_prefixes(state):
    """The key prefix of every U-Net level, outermost first (`model.model.`, ...)."""
    prefixes = ["model.model."]
    prefix = "model.model.1.model."
    # A middle block: [LeakyReLU, downconv, downnorm?, submodule, ...]: its submodule is
    # at index 3 and holds a downconv at its own index 1.
    while f"{prefix}1.weight" in state:
        prefixes.append(prefix)
        if f"{prefix}3.model.1.weight" not in state:
            break  # The innermost block: [LeakyReLU, downconv, ReLU, upconv, upnorm].
        prefix = f"{prefix}3.model."
    return prefixes


def describe_state_dict(state):
    """The generator a reference state dict holds, read from its keys and shapes.

    Args:
        state: {key: array} with the reference's key names (no `module.` prefix).

    Returns:
        {"netG", "ngf", "norm", "input_nc", "output_nc", "use_dropout"}; `use_dropout` is
        None for a U-Net, whose dropout layers have no parameters and leave no trace.

    Raises:
        UserError: the keys are not those of a reference ResNet or U-Net generator.
    """
    first = _shape(state, "model.1.weight")
    if first is not None and len(first) == 4 and first[2:] == (7, 7):
        blocks = sorted(int(m.group(1)) for k in state
                        if (m := re.fullmatch(r"model\.(\d+)\.conv_block\.1\.weight", k)))
        n = len(blocks)
        if blocks != list(range(10, 10 + n)):
            raise UserError(f"The checkpoint's residual blocks are numbered {blocks}, not "
                            "model.10, model.11, ... as in the reference's ResnetGenerator.")
        if n not in _RESNET_NAMES:
            raise UserError(f"The checkpoint is a ResNet generator with {n} residual blocks; "
                            f"tfi2i builds {', '.join(_RESNET_NAMES.values())}.")
        last = _shape(state, f"model.{17 + n}.weight")
        if last is None:
            raise UserError(f"The checkpoint has {n} residual blocks but no output conv "
                            f"model.{17 + n}.weight: not a reference ResnetGenerator.")
        if "model.2.weight" in state:
            norm = "batch"
        else:
            norm = "instance" if "model.1.bias" in state else "none"
        return {"netG": _RESNET_NAMES[n], "ngf": first[0], "norm": norm,
                "input_nc": first[1], "output_nc": last[0],
                # Dropout sits between the block's two convs and shifts the second to .6.
                "use_dropout": "model.10.conv_block.6.weight" in state}
    outer = _shape(state, "model.model.0.weight")
    if outer is not None and len(outer) == 4 and outer[2:] == (4, 4):
        levels = len(_unet_prefixes(state))
        if levels not in _UNET_NAMES:
            raise UserError(f"The checkpoint is a U-Net with {levels} levels; tfi2i builds "
                            f"{', '.join(_UNET_NAMES.values())} (5 to 8 downsamplings).")
        up = _shape(state, "model.model.3.weight")
        if up is None:
            raise UserError("The checkpoint's U-Net has no outermost upconv "
                            "model.model.3.weight: not a reference UnetGenerator.")
        if "model.model.1.model.2.weight" in state:
            norm = "batch"
        else:
            norm = "instance" if "model.model.0.bias" in state else "none"
        return {"netG": _UNET_NAMES[levels], "ngf": outer[0], "norm": norm,
                "input_nc": outer[1], "output_nc": up[1], "use_dropout": None}
    shown = ", ".join(list(state)[:4])
    raise UserError(f"The checkpoint's keys ({shown}, ...) are not those of a reference "
                    "ResnetGenerator (model.1.weight, ...) or UnetGenerator "
                    "(model.model.0.weight, ...): is it a generator of "
                    "pytorch-CycleGAN-and-pix2pix?")


# -- the key map ----------------------------------------------------------------------------

def layer_map(netG, norm):
    """[(Keras layer name, torch module prefix, kind)] for a reference generator.

    kind: "conv", "convT" or "norm" (a norm entry only for batch norm, which has weights).
    """
    has_norm = norm in ("batch", "sync_batch")
    entries = []

    def add(layer, prefix, kind):
        if kind != "norm" or has_norm:
            entries.append((layer, prefix, kind))

    if netG.startswith("resnet"):
        n = int(netG.split("_")[1].replace("blocks", ""))
        add("in_conv", "model.1", "conv")
        add("in_norm", "model.2", "norm")
        add("down1_conv", "model.4", "conv")
        add("down1_norm", "model.5", "norm")
        add("down2_conv", "model.7", "conv")
        add("down2_norm", "model.8", "norm")
        for b in range(1, n + 1):
            entries.append(("res_block", f"model.{9 + b}", b))  # Resolved with dropout.
        add("up1_conv", f"model.{10 + n}", "convT")
        add("up1_norm", f"model.{11 + n}", "norm")
        add("up2_conv", f"model.{13 + n}", "convT")
        add("up2_norm", f"model.{14 + n}", "norm")
        add("out_conv", f"model.{17 + n}", "conv")
        return entries
    num_downs = {v: k for k, v in _UNET_NAMES.items()}[netG]
    prefixes = ["model.model."]
    for _ in range(2, num_downs + 1):
        prefixes.append(prefixes[-1] + ("1.model." if len(prefixes) == 1 else "3.model."))
    add("down1_conv", prefixes[0] + "0", "conv")
    add("up1_conv", prefixes[0] + "3", "convT")
    for level in range(2, num_downs):
        p = prefixes[level - 1]
        add(f"down{level}_conv", p + "1", "conv")
        add(f"down{level}_norm", p + "2", "norm")
        add(f"up{level}_conv", p + "5", "convT")
        add(f"up{level}_norm", p + "6", "norm")
    p = prefixes[num_downs - 1]
    add(f"down{num_downs}_conv", p + "1", "conv")
    add(f"up{num_downs}_conv", p + "3", "convT")
    add(f"up{num_downs}_norm", p + "4", "norm")
    return entries


def _resolve_blocks(entries, norm, use_dropout):
    """Expands the ResNet's block entries: conv_block.1/.2 and .5/.6 (.6/.7 with dropout)."""
    has_norm = norm in ("batch", "sync_batch")
    second = 6 if use_dropout else 5
    out = []
    for layer, prefix, kind in entries:
        if layer != "res_block":
            out.append((layer, prefix, kind))
            continue
        b = kind
        out.append((f"res{b}_conv1", f"{prefix}.conv_block.1", "conv"))
        if has_norm:
            out.append((f"res{b}_norm1", f"{prefix}.conv_block.2", "norm"))
        out.append((f"res{b}_conv2", f"{prefix}.conv_block.{second}", "conv"))
        if has_norm:
            out.append((f"res{b}_norm2", f"{prefix}.conv_block.{second + 1}", "norm"))
    return out


def instance_norm_prefixes(netG, norm, use_dropout):
    """Module prefixes of the reference's norm layers (where instance-norm stats may sit)."""
    if norm != "instance":
        return set()
    entries = _resolve_blocks(layer_map(netG, "batch"), "batch", use_dropout)
    return {prefix for _, prefix, kind in entries if kind == "norm"}


def _torch_layout(kind, keras_shape):
    """The torch shape of a Keras kernel of `kind` (for error messages)."""
    if kind in ("conv", "convT"):
        kh, kw, a, b = keras_shape
        return (b, a, kh, kw)
    return keras_shape


def load_reference_weights(generator, state, netG, norm, use_dropout=False):
    """Copies a reference state dict into a tfi2i generator built with the same options.

    Args:
        generator: `tfi2i.nets.define_G(netG, ..., norm=norm, use_dropout=use_dropout)`.
        state: {key: numpy array}, reference key names (no `module.` prefix).
        netG, norm, use_dropout: the generator's options.

    Returns:
        The list of keys dropped as checkpoint quirks (instance-norm statistics, batch
        norm's num_batches_tracked).

    Raises:
        UserError: a key without a place, a place without a key, or a shape mismatch.
    """
    entries = _resolve_blocks(layer_map(netG, norm), norm, use_dropout)
    remaining = dict(state)
    ignored = []
    for prefix in sorted(instance_norm_prefixes(netG, norm, use_dropout)):
        for stat in INSTANCE_NORM_STAT_KEYS:
            if f"{prefix}.{stat}" in remaining:
                del remaining[f"{prefix}.{stat}"]
                ignored.append(f"{prefix}.{stat}")
    assigned = set()
    for layer_name, prefix, kind in entries:
        layer = generator.get_layer(layer_name)
        if kind == "norm":
            pairs = [(layer.gamma, "weight", None), (layer.beta, "bias", None),
                     (layer.moving_mean, "running_mean", None),
                     (layer.moving_variance, "running_var", None)]
            if f"{prefix}.num_batches_tracked" in remaining:
                del remaining[f"{prefix}.num_batches_tracked"]
                ignored.append(f"{prefix}.num_batches_tracked")
        else:
            pairs = [(layer.kernel, "weight", (2, 3, 1, 0))]
            if layer.use_bias:
                pairs.append((layer.bias, "bias", None))
        for variable, suffix, axes in pairs:
            key = f"{prefix}.{suffix}"
            if key not in remaining:
                raise UserError(f"The checkpoint has no {key}, which the {netG} generator's "
                                f"layer {layer_name} needs (norm={norm}): check --netG and "
                                "--norm against the file.")
            value = np.asarray(remaining.pop(key), np.float32)
            if axes is not None:
                value = value.transpose(axes)
            if tuple(value.shape) != tuple(variable.shape):
                expected = _torch_layout(kind, tuple(variable.shape)) if axes else \
                    tuple(variable.shape)
                raise UserError(f"The checkpoint's {key} has shape {tuple(state[key].shape)} "
                                f"where the {netG} generator expects {expected}: check --ngf, "
                                "--input_nc and --output_nc against the file.")
            variable.assign(value)
            assigned.add(id(variable))
    if remaining:
        shown = ", ".join(sorted(remaining)[:6])
        raise UserError(f"The checkpoint has {len(remaining)} tensors that a {netG} generator "
                        f"with norm={norm} has no place for ({shown}): is --netG or --norm "
                        "wrong for this file?")
    missed = [v.path for v in generator.weights if id(v) not in assigned]
    if missed:  # A layer the map does not cover: a bug of this module, not of the file.
        raise RuntimeError(f"generator weights left unassigned: {missed[:6]}")
    return ignored


# -- options ----------------------------------------------------------------------------------

def resolve_options(described, explicit, defaults):
    """The generator's options: the file's, checked against what the user said.

    Args:
        described: `describe_state_dict` of the file.
        explicit: options the user gave (flags); each must agree with the file.
        defaults: values for what the file cannot tell (a U-Net's `use_dropout`).

    Raises:
        UserError: an explicit option that contradicts the file.
    """
    options = {}
    for name in ARCHITECTURE_OPTIONS:
        found = described.get(name)
        given = explicit.get(name)
        if given is not None and found is not None and given != found:
            raise UserError(
                f"--{name}={given} does not match the checkpoint, which holds a "
                f"{described['netG']} generator with ngf={described['ngf']}, "
                f"norm={described['norm']}, input_nc={described['input_nc']}, "
                f"output_nc={described['output_nc']}"
                + ("" if described["use_dropout"] is None
                   else f", use_dropout={described['use_dropout']}")
                + f": drop --{name} or pass --{name}={found}.")
        if found is not None:
            options[name] = found
        elif given is not None:
            options[name] = given
        else:
            options[name] = defaults[name]
    return options


def guess_method(netG):
    """The method a reference generator most likely comes from: U-Net pix2pix, ResNet CycleGAN."""
    return "pix2pix" if netG.startswith("unet") else "cyclegan"


# -- the run directory ------------------------------------------------------------------------

def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path):
    """(state dict without quirks of naming, notes) of a reference checkpoint file."""
    from tfi2i import torchfile

    try:
        state = torchfile.load_state_dict(path)
    except Exception as e:  # noqa: BLE001 (a damaged or foreign file raises many types)
        # Nothing from the file ran: the restricted unpickler refuses before calling.
        raise UserError(f"Cannot read {path} as a PyTorch state dict: {e}.") from None
    state, prefix = strip_data_parallel_prefix(state)
    notes = {"format": "zip" if torchfile.is_zip_format(path) else "legacy",
             "stripped_prefix": prefix}
    return state, notes


def import_checkpoint(path, output, explicit=None, method=None, direction=None,
                      source=None, pretrained=None, crop_size=256):
    """Converts a reference generator checkpoint into a tfi2i run directory.

    The run is a `pix2pix` run (tfi2i's method with one generator, which translate, export
    and eval rebuild from config.json) whose generator holds the checkpoint's weights. Its
    discriminator is an untrained placeholder (netD pixel, ndf 1: a few dozen weights),
    there because a run's checkpoint holds the whole method; the release has no
    discriminator. config.json's `imported` section says where the weights came from.

    Args:
        path: the checkpoint file (torch zip or legacy format).
        output: the run directory to create (must not exist, or be empty).
        explicit: architecture options the user gave (see `ARCHITECTURE_OPTIONS`); each is
            checked against the file.
        method: "pix2pix" or "cyclegan", the training that produced the file; default
            from the architecture (U-Net: pix2pix, ResNet: cyclegan).
        direction: the direction the generator translates its dataset (AtoB, BtoA).
        source: where the file came from (a URL), recorded beside its path.
        pretrained: a `tfi2i.pretrained.registry.PretrainedSpec`, for --pretrained.
        crop_size: the run's crop size (the size it is built at; translation pads any
            size to the generator's divisor).

    Returns:
        (config, summary): the run's config (as written) and a dict of what was done.
    """
    import keras
    import tensorflow as tf

    from tfi2i.config import resolve_config
    from tfi2i.files import write_json_atomic
    from tfi2i.methods import get_method

    output = os.fspath(output)
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise UserError(f"--output {output} exists and is not an empty folder; choose a new "
                        "run directory.")
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    state, notes = read_checkpoint(path)
    described = describe_state_dict(state)
    method = method or (pretrained.method if pretrained else guess_method(described["netG"]))
    defaults = {"use_dropout": pretrained.use_dropout if pretrained else method == "pix2pix"}
    options = resolve_options(described, explicit, defaults)
    direction = direction or (pretrained.direction if pretrained else "AtoB")

    overrides = {**options, "netD": "pixel", "ndf": 1, "direction": direction,
                 "run_dir": output, "crop_size": crop_size, "load_size": crop_size,
                 "preprocess": "resize_and_crop", "test_time_noise": False}
    config = resolve_config("pix2pix", None, overrides)
    keras.utils.set_random_seed(config["seed"])
    model = get_method("pix2pix").from_run_config(config)
    model.build_for_size(crop_size, crop_size)
    ignored = load_reference_weights(model.G, state, options["netG"], options["norm"],
                                     options["use_dropout"] or False)

    config["imported"] = {
        "file": os.path.abspath(os.fspath(path)),
        "source": source or os.path.abspath(os.fspath(path)),
        "sha256": file_sha256(path),
        "bytes": os.path.getsize(path),
        "torch_format": notes["format"],
        "method": method,
        "pretrained": pretrained.name if pretrained else None,
        "dataset": pretrained.dataset if pretrained else None,
        "reference_options": options,
        "stripped_prefix": notes["stripped_prefix"],
        # Counted, not listed: a resnet_9blocks of torch < 0.4 has 69 of them.
        "ignored_keys": {"count": len(ignored), "examples": ignored[:3],
                         "why": "running statistics the reference's nets do not use "
                                "(instance norm of torch < 0.4; num_batches_tracked)"},
        "parameters": int(sum(np.prod(v.shape) for v in model.G.weights)),
        "test_mode": "inference: batch norm with its running statistics, dropout off (the "
                     "reference's test.py --eval; its default test runs pix2pix generators "
                     "in training mode)",
        "discriminator": "untrained placeholder (netD pixel, ndf 1): the release has none",
    }

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    # Written beside the target and renamed into place: no half-written run directory.
    work = tempfile.mkdtemp(prefix=".tmp-import-", dir=parent)
    try:
        checkpoint = tf.train.Checkpoint(model=model)
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(work, "checkpoints"),
                                             max_to_keep=1, checkpoint_name="ckpt")
        manager.save(checkpoint_number=0)
        write_json_atomic(os.path.join(work, "config.json"), config)
        if os.path.isdir(output):
            os.rmdir(output)  # Empty, checked above.
        os.replace(work, output)
        os.chmod(output, 0o755)  # mkdtemp made it private.
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {"options": options, "method": method, "direction": direction,
               "ignored_keys": ignored, **notes,
               "parameters": config["imported"]["parameters"]}
    return config, summary
