"""Tests of tfi2i-import: reference (PyTorch) generator checkpoints as tfi2i runs.

The fixtures in tests/data/torch were made once with torch by scripts/make_torch_fixtures.py
(reference ResnetGenerator / UnetGenerator with the reference's key names, random weights,
saved in torch's zip and legacy formats, and their outputs on a crop of a facades photo).
Nothing here needs torch; downloads go to an http.server on 127.0.0.1.
"""

import collections
import functools
import http.server
import json
import os
import pickle
import shutil
import socket
import sys
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from tfi2i import torchfile
from tfi2i.cli import import_ as import_cli
from tfi2i.cli.common import parse_args
from tfi2i.errors import UserError
from tfi2i.pretrained import convert
from tfi2i.pretrained.download import fetch_pretrained
from tfi2i.pretrained.registry import (CYCLEGAN_MODELS, PIX2PIX_MODELS, PRETRAINED,
                                       pretrained_names)

from conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "data", "torch")
INFO = json.load(open(os.path.join(FIXTURES, "fixtures.json")))
# Float32 parity with torch, on outputs in [-1, 1].
TOLERANCE = 1e-5


def fixture(name):
    return os.path.join(FIXTURES, name)


def torch_input():
    """The fixtures' input image: uint8 [64, 64, 3], and as float in [-1, 1]."""
    image = np.load(fixture("input.npy"))
    return image, image.astype(np.float32) / 127.5 - 1.0


def run_import(argv):
    """tfi2i-import in this process: the CLI's parsing, checks and main."""
    args, explicit = parse_args(import_cli.OPTIONS, argv, check=import_cli.check)
    import_cli.main(args, explicit)
    return args


# -- reading torch files --------------------------------------------------------------------

def test_both_formats_hold_the_same_tensors_and_the_quirks():
    zipped = torchfile.load_state_dict(fixture("resnet_zip.pth"))
    legacy = torchfile.load_state_dict(fixture("resnet_legacy.pth"))
    assert torchfile.is_zip_format(fixture("resnet_zip.pth"))
    assert not torchfile.is_zip_format(fixture("resnet_legacy.pth"))
    assert list(zipped) == list(legacy)[:len(zipped)]
    for key, value in zipped.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, legacy[key])
    # The legacy file carries the instance-norm statistics of torch < 0.4 checkpoints.
    extra = set(legacy) - set(zipped)
    assert "model.2.running_mean" in extra and "model.2.num_batches_tracked" in extra
    assert legacy["model.2.num_batches_tracked"].dtype == np.int64
    # The U-Net's zip file is a DataParallel save: every key starts with module.
    unet = torchfile.load_state_dict(fixture("unet_zip.pth"))
    assert all(k.startswith("module.model.model.") for k in unet)
    stripped, prefix = convert.strip_data_parallel_prefix(unet)
    assert prefix == "module."
    plain = torchfile.load_state_dict(fixture("unet_legacy.pth"))
    assert list(stripped) == list(plain)


def test_the_architecture_is_read_off_the_keys():
    for name, options in INFO["nets"].items():
        for fmt in ("zip", "legacy"):
            state, _ = convert.read_checkpoint(fixture(f"{name}_{fmt}.pth"))
            described = convert.describe_state_dict(state)
            expected = dict(options)
            if name == "unet":
                expected["use_dropout"] = None  # Dropout leaves no key in a U-Net.
            assert described == expected, (name, fmt)


@pytest.mark.parametrize("name, fmt", [("resnet", "zip"), ("resnet", "legacy"),
                                       ("unet", "zip"), ("unet", "legacy")])
def test_converted_generator_matches_torch(name, fmt):
    from tfi2i.nets import define_G

    options = INFO["nets"][name]
    state, _ = convert.read_checkpoint(fixture(f"{name}_{fmt}.pth"))
    generator = define_G(options["netG"], options["input_nc"], options["output_nc"],
                         options["ngf"], norm=options["norm"],
                         use_dropout=options["use_dropout"])
    ignored = convert.load_reference_weights(generator, state, options["netG"],
                                             options["norm"], options["use_dropout"])
    _, x = torch_input()
    y = generator(x[None], training=False).numpy()[0]
    expected = np.load(fixture(f"{name}.npy"))
    assert np.abs(y - expected).max() < TOLERANCE
    assert expected.std() > 0.1  # Outputs with structure, not a constant.
    if name == "resnet" and fmt == "legacy":
        # 2 + 2 * 6 + 2 instance norms, 3 statistics each, all dropped.
        assert len(ignored) == 17 * 3
    if name == "unet":
        assert all(k.endswith("num_batches_tracked") for k in ignored) and ignored


def test_options_that_contradict_the_file_are_refused():
    state, _ = convert.read_checkpoint(fixture("resnet_zip.pth"))
    described = convert.describe_state_dict(state)
    with pytest.raises(UserError, match="--netG=resnet_9blocks does not match.*resnet_6blocks"):
        convert.resolve_options(described, {"netG": "resnet_9blocks"}, {})
    with pytest.raises(UserError, match="--norm=batch .*norm=instance"):
        convert.resolve_options(described, {"norm": "batch"}, {})
    # A U-Net's dropout is not in the file: the user's word (or the default) decides.
    unet, _ = convert.read_checkpoint(fixture("unet_legacy.pth"))
    options = convert.resolve_options(convert.describe_state_dict(unet), {"use_dropout": False},
                                      {"use_dropout": True})
    assert options["use_dropout"] is False
    # A generator of another shape: the first tensor that does not fit is named.
    from tfi2i.nets import define_G
    wide = define_G("resnet_6blocks", ngf=4, norm="instance")
    with pytest.raises(UserError, match=r"model\.1\.weight has shape \(2, 3, 7, 7\).*"
                                        r"\(4, 3, 7, 7\)"):
        convert.load_reference_weights(wide, state, "resnet_6blocks", "instance")
    with pytest.raises(UserError, match="not those of a reference ResnetGenerator"):
        convert.describe_state_dict({"conv.weight": np.zeros((1, 1, 3, 3), np.float32)})


# -- refusing malicious files ---------------------------------------------------------------

class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _legacy_file(path, payload):
    """A legacy-format torch file (magic, version, sys info, object, keys) around `payload`."""
    with open(path, "wb") as f:
        for obj in (torchfile.LEGACY_MAGIC_NUMBER, torchfile.LEGACY_PROTOCOL_VERSION,
                    {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        f.write(pickle.dumps(payload, protocol=2))
        pickle.dump([], f, protocol=2)


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, fmt):
    marker = tmp_path / "pwned"
    payload = {"model.1.weight": _Evil(os.system, f"touch {marker}")}
    # The payload is real: the standard unpickler runs it.
    pickle.loads(pickle.dumps(payload, protocol=2))
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.pth"
    if fmt == "legacy":
        _legacy_file(path, payload)
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("evil/data.pkl", pickle.dumps(payload, protocol=2))
            z.writestr("evil/version", "3\n")
    with pytest.raises(UserError, match=r"Cannot read .*evil\.pth.*refusing to load "
                                        r"(posix|os)\.system"):
        run_import([f"--pth={path}", f"--output={tmp_path / 'run'}"])
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_pickled_model_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "model.pth"

    class Net:
        pass

    class Pickler(pickle.Pickler):
        # torch.save(model) records each module class's source as a "module" persistent id.
        def persistent_id(self, obj):
            return ("module", "Net", "net.py", "class Net: ...") if obj is Net else None

    with open(path, "wb") as f:
        for obj in (torchfile.LEGACY_MAGIC_NUMBER, torchfile.LEGACY_PROTOCOL_VERSION, {}):
            pickle.dump(obj, f, protocol=2)
        Pickler(f, protocol=2).dump([Net])
    with pytest.raises(pickle.UnpicklingError, match="whole model.*state_dict"):
        torchfile.load_state_dict(path)


def test_legacy_views_gpu_storages_and_torch_0_3_tensors(tmp_path, monkeypatch):
    """What old checkpoints may hold: torch 0.3's _rebuild_tensor, storages saved from the
    GPU (torch.cuda.FloatStorage) and tensors on views of a shared storage."""
    import types

    cuda, utils = types.ModuleType("torch.cuda"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor(*args):
        raise AssertionError("never called while pickling")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch.cuda", "FloatStorage"
    _rebuild_tensor.__module__, _rebuild_tensor.__qualname__ = "torch._utils", "_rebuild_tensor"
    cuda.FloatStorage, utils._rebuild_tensor = FloatStorage, _rebuild_tensor
    fake = {"torch": types.ModuleType("torch"), "torch.cuda": cuda, "torch._utils": utils}
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    storage = np.arange(12, dtype=np.float32)

    class Tensor:  # A tensor on the view [offset, offset + numel) of storage "7".
        def __init__(self, view, size, stride):
            self.view, self.args = view, (0, size, stride)

        def __reduce__(self):
            return _rebuild_tensor, (("storage", self.view),) + self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and obj and obj[0] == "storage":
                offset, numel = obj[1]
                return ("storage", FloatStorage, "7", "cuda:0", 12, (f"7_{offset}", offset,
                                                                     numel))
            return None

    path = tmp_path / "old.pth"
    with open(path, "wb") as f:
        for obj in (torchfile.LEGACY_MAGIC_NUMBER, torchfile.LEGACY_PROTOCOL_VERSION,
                    {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        state = collections.OrderedDict(weight=Tensor((2, 6), (2, 3), (3, 1)),
                                        bias=Tensor((8, 4), (4,), (1,)))
        Pickler(f, protocol=2).dump(state)
        pickle.dump(["7"], f, protocol=2)
        f.write(np.int64(12).tobytes() + storage.tobytes())
    for name in fake:
        monkeypatch.delitem(sys.modules, name)  # The loader must not need them.
    loaded = torchfile.load_state_dict(path)
    np.testing.assert_array_equal(loaded["weight"], storage[2:8].reshape(2, 3))
    np.testing.assert_array_equal(loaded["bias"], storage[8:12])


def test_truncated_or_foreign_files_are_reported(tmp_path):
    data = open(fixture("resnet_legacy.pth"), "rb").read()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:-100])
    with pytest.raises(pickle.UnpicklingError, match="ends inside storage"):
        torchfile.load_state_dict(path)
    path.write_bytes(b"GIF89a, not a checkpoint")
    with pytest.raises(UserError, match="Cannot read .*cut.pth.*not a torch file"):
        convert.read_checkpoint(path)


# -- the run directory: translate, export, serve, eval ----------------------------------------

def test_imported_run_translates_exports_and_serves_the_torch_numbers(tmp_path, capsys):
    import tfi2i
    from tfi2i.cli import eval as eval_cli
    from tfi2i.cli import export as export_cli
    from tfi2i.cli import translate as translate_cli
    from tfi2i.export.savedmodel import _run_with_session_loader

    run = tmp_path / "run"
    # unet_zip: batch norm statistics, dropout layers, a DataParallel key prefix.
    run_import([f"--pth={fixture('unet_zip.pth')}", f"--output={run}", "--direction=BtoA",
                "--netG=unet_64", "--norm=batch"])
    printed = capsys.readouterr().out
    assert "unet_64 generator, ngf 2, batch norm" in printed and "'module.'" in printed
    config = json.load(open(run / "config.json"))
    imported = config["imported"]
    assert imported["sha256"] == convert.file_sha256(fixture("unet_zip.pth"))
    assert imported["method"] == "pix2pix" and imported["torch_format"] == "zip"
    assert imported["reference_options"] == {**INFO["nets"]["unet"]}
    assert imported["stripped_prefix"] == "module."
    assert config["method"] == "pix2pix" and config["direction"] == "BtoA"
    image, x = torch_input()
    expected = np.load(fixture("unet.npy"))

    # tfi2i.load / tfi2i-translate restore the run like a trained one.
    translator = tfi2i.load(str(run))
    assert translator.directions == ["BtoA"]
    assert np.abs(translator.translate(x) - expected).max() < TOLERANCE
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(image).save(inputs / "a.png")
    translate_cli.main(*parse_args(translate_cli.OPTIONS, [
        f"--model={run}", f"--input={inputs}", f"--output={tmp_path / 'out'}"]))
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"), np.float32)
    assert np.abs(written - np.clip(np.round((expected + 1) * 127.5), 0, 255)).max() <= 1

    # tfi2i-export, then TF Serving's (session) loader serves the torch numbers.
    export_cli.main(*parse_args(export_cli.OPTIONS, [
        f"--run_dir={run}", f"--output={tmp_path / 'export'}", "--noverify"],
        check=export_cli.check))
    served = _run_with_session_loader(str(tmp_path / "export" / "1"), {
        "translate_float": {"images": x[None]}, "serving_default": {"images": image[None]}})
    assert np.abs(served["translate_float"][0] - expected).max() < TOLERANCE
    assert np.abs(served["serving_default"][0].astype(np.float32)
                  - np.clip(np.round((expected + 1) * 127.5), 0, 255)).max() <= 1
    exported = json.load(open(tmp_path / "export" / "1" / "config.json"))
    assert exported["imported"]["sha256"] == imported["sha256"]

    # tfi2i-eval --model on a paired split whose targets are the torch outputs.
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    target = np.clip(np.round((expected + 1) * 127.5), 0, 255).astype(np.uint8)
    # Direction BtoA: the input is the right half (B), the target the left (A).
    Image.fromarray(np.concatenate([target, image], axis=1)).save(data / "0.png")
    results = eval_cli.evaluate_model(["l1", "psnr"], translator, str(tmp_path / "data"))
    assert results["direction"] == "BtoA" and results["n_pairs"] == 1
    assert results["psnr"] > 45  # Identical up to rounding.

    # Training on it is refused: it has no discriminator or optimizer state to resume.
    from tfi2i.training.trainer import prepare_run_config
    with pytest.raises(UserError, match="imported by tfi2i-import"):
        prepare_run_config(dict(config, run_dir=str(run)))


# -- --pretrained: registry and download ------------------------------------------------------

def test_registry_has_the_released_models_with_the_reference_urls():
    issue = {"pix2pix": ["facades_label2photo", "sat2map", "map2sat", "edges2shoes",
                         "edges2handbags", "day2night"],
             "cyclegan": ["horse2zebra", "zebra2horse", "apple2orange", "orange2apple",
                          "summer2winter_yosemite", "winter2summer_yosemite", "monet2photo",
                          "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh",
                          "sat2map", "map2sat", "facades_photo2label", "facades_label2photo",
                          "iphone2dslr_flower", "cityscapes_photo2label",
                          "cityscapes_label2photo"]}
    assert sorted(PIX2PIX_MODELS) == sorted(issue["pix2pix"])
    assert sorted(CYCLEGAN_MODELS) == sorted(f"cyclegan/{n}" for n in issue["cyclegan"])
    assert PRETRAINED["sat2map"].method == "pix2pix"  # Plain clashing names are pix2pix's.
    assert PRETRAINED["horse2zebra"] is PRETRAINED["cyclegan/horse2zebra"]
    assert PRETRAINED["cyclegan/sat2map"].url() == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/sat2map.pth")
    assert PRETRAINED["facades_label2photo"].url() == (
        "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth")
    assert PRETRAINED["facades_label2photo"].direction == "BtoA"
    from tfi2i.data import DATASETS
    for name in pretrained_names():
        assert PRETRAINED[name].dataset in DATASETS, name


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_pretrained_gives_a_clear_message(tmp_path):
    port = _closed_port()
    with pytest.raises(UserError) as error:
        run_import(["--pretrained=horse2zebra", f"--mirror=http://127.0.0.1:{port}",
                    f"--cache_dir={tmp_path / 'cache'}", f"--output={tmp_path / 'run'}"])
    message = str(error.value)
    # The dataset downloader's message, naming the model, the URL and the reason ...
    assert message.startswith(f"Could not download pretrained model 'cyclegan/horse2zebra' "
                              f"from http://127.0.0.1:{port}/cyclegan/horse2zebra.pth: ")
    assert "Connection refused" in message.splitlines()[0]
    # ... then how to do it by hand.
    target = tmp_path / "cache" / "pretrained" / "cyclegan" / "horse2zebra.pth"
    assert f"curl -L -o {target} http://127.0.0.1:{port}/cyclegan/horse2zebra.pth" in message
    assert "--pth=FILE" in message and "TFI2I_PRETRAINED_MIRROR" in message
    assert not (tmp_path / "run").exists()
    leftovers = [f for _, _, files in os.walk(tmp_path / "cache") for f in files]
    assert leftovers == []


def test_pretrained_downloads_once_and_imports(tmp_path, capsys):
    served = tmp_path / "served"
    (served / "cyclegan").mkdir(parents=True)
    # The server's horse2zebra.pth: the small ResNet fixture, legacy format like the release.
    shutil.copy(fixture("resnet_legacy.pth"), served / "cyclegan" / "horse2zebra.pth")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    mirror = f"http://127.0.0.1:{httpd.server_address[1]}"
    cache = tmp_path / "cache"
    try:
        run_import(["--pretrained=horse2zebra", f"--mirror={mirror}", f"--cache_dir={cache}",
                    f"--output={tmp_path / 'run'}"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    cached = cache / "pretrained" / "cyclegan" / "horse2zebra.pth"
    assert cached.read_bytes() == open(fixture("resnet_legacy.pth"), "rb").read()
    assert sorted(os.listdir(cache / "downloads")) == []  # No .part left behind.
    config = json.load(open(tmp_path / "run" / "config.json"))
    imported = config["imported"]
    assert imported["pretrained"] == "cyclegan/horse2zebra"
    assert imported["source"] == f"{mirror}/cyclegan/horse2zebra.pth"
    assert imported["method"] == "cyclegan" and imported["dataset"] == "horse2zebra"
    assert imported["ignored_keys"]["count"] == 51 and config["direction"] == "AtoB"
    assert config["use_dropout"] is False and config["norm"] == "instance"
    assert "horses to zebras" in capsys.readouterr().out
    import tfi2i
    _, x = torch_input()
    out = tfi2i.load(str(tmp_path / "run")).translate(x)
    assert np.abs(out - np.load(fixture("resnet.npy"))).max() < TOLERANCE
    # The server is gone: the cached file is used without the network.
    path, url = fetch_pretrained("horse2zebra", cache,
                                 mirror=f"http://127.0.0.1:{_closed_port()}")
    assert path == cached


def test_command_line_checks(tmp_path):
    with pytest.raises(UserError, match="either --pth=FILE .* or --pretrained=NAME"):
        parse_args(import_cli.OPTIONS, [], check=import_cli.check)
    with pytest.raises(UserError, match="--output is required with --pth"):
        parse_args(import_cli.OPTIONS, [f"--pth={fixture('unet_zip.pth')}"],
                   check=import_cli.check)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not an empty folder"):
        parse_args(import_cli.OPTIONS, [f"--pth={fixture('unet_zip.pth')}",
                                        f"--output={tmp_path / 'taken'}"],
                   check=import_cli.check)
    args, _ = parse_args(import_cli.OPTIONS, ["--pretrained=cyclegan/sat2map"],
                         check=import_cli.check)
    assert import_cli.output_dir(args) == os.path.join("runs", "cyclegan_sat2map_pretrained")
