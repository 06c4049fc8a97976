"""One of each helper (issue 11): the image listing that data, translate, export and eval share,
the cache folder, the config reader, the strategy's chief, pdist diversity, instance norm on
GroupNormalization, and the evaluator behind the evaluation callback and tfi2i-eval."""

import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfi2i.errors import UserError

# A folder with every case the one listing must agree on: upper- and mixed-case extensions,
# WebP, a TIFF (decoded through PIL), hidden files (macOS "._" forks), files that are not
# images, a folder named like an image, and a hidden and a normal sub-folder.
LISTED = ["B.JPG", "a.png", "c.Jpeg", "d.webp", "e.bmp", "f.gif", "x.tif"]
NOT_LISTED = [".hidden.png", "._a.png", "notes.txt", "README"]
SUB_LISTED = [os.path.join("sub", "g.PNG")]


def _image(path, value, size=(16, 32)):
    """A flat image of grey `value`, height size[0], width size[1], in the format of its name."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF"}.get(ext)
    kwargs = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt == "JPEG" else {}
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path, format=fmt, **kwargs)


@pytest.fixture
def odd_folder(tmp_path):
    """LISTED files valued 10, 20, ... in listing order; the rest must never be read."""
    folder = tmp_path / "images"
    for i, name in enumerate(LISTED):
        _image(str(folder / name), 10 * (i + 1))
    for name in NOT_LISTED:
        if name.endswith((".png", ".tif")):
            _image(str(folder / name), 255)
        else:
            (folder / name).write_text("not an image")
    (folder / "dir.png").mkdir()
    _image(str(folder / "sub" / "g.PNG"), 200)
    _image(str(folder / ".git" / "h.png"), 255)
    return folder


def test_one_listing_with_odd_extensions_and_hidden_files(odd_folder):
    import tfi2i.data
    from tfi2i.data import IMAGE_EXTENSIONS, list_images

    assert tfi2i.data.list_images is list_images
    names = [os.path.relpath(p, odd_folder) for p in list_images(odd_folder)]
    assert names == LISTED
    recursive = [os.path.relpath(p, odd_folder) for p in list_images(odd_folder, recursive=True)]
    assert recursive == LISTED + SUB_LISTED
    assert ".tif" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    with pytest.raises(UserError, match="No images in .*empty"):
        os.mkdir(odd_folder / "empty")
        list_images(odd_folder / "empty")
    with pytest.raises(UserError, match="does not exist"):
        list_images(odd_folder / "missing")
    with pytest.raises(UserError, match="a.png is a file, not a folder"):
        list_images(odd_folder / "a.png")


def test_no_other_copies_of_the_listing():
    """The modules that had their own extension set and listing use the one in tfi2i.data."""
    from tfi2i.data import decode
    from tfi2i.export import translator
    from tfi2i.metrics import fid

    for module in (fid, translator):
        assert getattr(module, "IMAGE_EXTENSIONS", decode.IMAGE_EXTENSIONS) \
            is decode.IMAGE_EXTENSIONS
        assert getattr(module, "list_images", decode.list_images) is decode.list_images
    assert not hasattr(translator, "read_config") or translator.read_config.__module__ == \
        "tfi2i.config"


def test_data_translate_export_and_fid_read_the_same_files(odd_folder, tmp_path):
    from tfi2i.data import scan_paired
    from tfi2i.export import Translator, translate_files
    from tfi2i.export.tflite import load_sample_images
    from tfi2i.metrics.fid import FeatureExtractor

    # Data: the folder as the train split of AB images (16 wide, 8 high), sub-folders too.
    scanned = scan_paired(odd_folder.parent, odd_folder.name)
    assert [os.path.relpath(p, odd_folder) for p in scanned.a_paths] == LISTED + SUB_LISTED
    # Translate: an identity net writes one output per input, recursively, same names.
    done, skipped = translate_files(Translator({"AtoB": lambda x: x}, 1), odd_folder,
                                    tmp_path / "out", progress=False)
    assert (done, skipped) == (len(LISTED + SUB_LISTED), [])
    written = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "out")
                     for d, _, files in os.walk(tmp_path / "out") for f in files)
    assert written == sorted(LISTED + SUB_LISTED)
    # Export's int8 calibration images: the same files, in the same order.
    samples = load_sample_images(odd_folder, 4)
    expected = [10 * (i + 1) for i in range(len(LISTED))] + [200]
    np.testing.assert_allclose((samples[:, 0, 0, 0] + 1) * 127.5, expected, atol=0.6)
    # FID: a stand-in network whose features are each image's mean colour, in file order.
    mean_colour = keras.Sequential([keras.Input((299, 299, 3)),
                                    keras.layers.GlobalAveragePooling2D()])
    features = FeatureExtractor(model=mean_colour, batch_size=4).from_folder(odd_folder,
                                                                               cache=False)
    np.testing.assert_allclose(features[:, 0], expected, atol=0.6)


def test_webp_decodes_at_every_dtype_and_passes_the_header_check(tmp_path):
    from tfi2i.data.decode import decode_image, inspect_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 10, 3), np.uint8)
    path = str(tmp_path / "x.webp")
    Image.fromarray(pixels).save(path, format="WEBP", lossless=True)
    contents = tf.io.read_file(path)
    np.testing.assert_array_equal(decode_image(contents, tf.uint8).numpy(), pixels)
    np.testing.assert_allclose(decode_image(contents).numpy(), pixels / 255.0, atol=1e-7)
    info = inspect_image(path)
    assert (info.width, info.height, info.problem) == (10, 6, None)
    data = open(path, "rb").read()
    truncated = tmp_path / "cut.webp"
    truncated.write_bytes(data[: len(data) // 2])
    assert inspect_image(str(truncated)).problem
    # Short non-WebP strings do not trip the WebP check.
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    np.testing.assert_array_equal(decode_image(tf.constant(png.getvalue()), tf.uint8), pixels)


def test_one_cache_folder(monkeypatch, tmp_path):
    from tfi2i import data, files
    from tfi2i.data import download
    from tfi2i.metrics import segmentation, weights

    monkeypatch.setenv("TFI2I_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TFI2I_FID_WEIGHTS", raising=False)
    assert data.default_cache_dir is files.default_cache_dir
    assert download.default_cache_dir is files.default_cache_dir
    assert files.default_cache_dir() == tmp_path / "cache"
    assert weights.default_fid_weights_path() == str(tmp_path / "cache" / "fid" / "default_1.pt")
    assert segmentation.default_facades_segmenter_path().startswith(
        str(tmp_path / "cache" / "segmenters"))
    assert not hasattr(weights, "cache_dir")


def test_one_config_reader(tmp_path):
    """Export and translate read config.json through tfi2i.config.read_config."""
    from tfi2i.config import read_config
    from tfi2i.export.translator import config_beside

    assert config_beside(str(tmp_path)) == {}
    (tmp_path / "config.json").write_text('{"export": {"size_divisor": 4}}')
    assert config_beside(str(tmp_path)) == read_config(str(tmp_path)) == {
        "export": {"size_divisor": 4}}


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_worker_info_asks_the_strategy_for_the_chief(tmp_path):
    """A cluster with an explicit chief: the chief checkpoints, worker 0 does not.

    (Without a chief, worker 0 is the chief: tests/test_training.py's multi-worker run.)
    """
    import json
    import subprocess
    import sys

    from tfi2i.training.strategy import get_strategy, worker_info

    assert worker_info(get_strategy("default")) == (True, 0)
    chief, worker = (f"127.0.0.1:{p}" for p in _free_ports(2))
    script = ("import sys, tensorflow as tf\n"
              "from tfi2i.training.strategy import get_strategy, worker_info\n"
              "strategy = get_strategy('multiworker')\n"
              "print('INFO', *worker_info(strategy), strategy.num_replicas_in_sync)\n"
              # A collective, so that neither process leaves before the other has joined.
              "strategy.reduce('SUM', strategy.run(lambda: tf.constant(1.0)), axis=None)\n")
    procs = {}
    for task_type in ("chief", "worker"):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps({
            "cluster": {"chief": [chief], "worker": [worker]},
            "task": {"type": task_type, "index": 0}}))
        procs[task_type] = subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            cwd=os.path.join(os.path.dirname(__file__), ".."))
    lines = {}
    try:
        for task_type, proc in procs.items():
            output, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, output[-3000:]
            lines[task_type] = [line for line in output.splitlines() if line.startswith("INFO")]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert lines == {"chief": ["INFO True 0 2"], "worker": ["INFO False 0 2"]}


def test_eval_folder_mode_lists_the_same_files_without_flags(odd_folder, tmp_path):
    """tfi2i-eval's helpers take their options as arguments: no flag parsing here."""
    import shutil

    from tfi2i.cli.eval import ScoreOptions, evaluate_folders

    fake = tmp_path / "fake"
    shutil.copytree(odd_folder, fake)
    # Shift every listed image (sub-folders too) by +5 grey levels; unlisted files would
    # break the pairing.
    values = [10 * (i + 1) for i in range(len(LISTED))] + [200]
    for name, value in zip(LISTED + SUB_LISTED, values):
        _image(str(fake / name), value + 5)
    results = evaluate_folders(["l1", "psnr"], str(fake), str(odd_folder),
                               real_half="left", fake_half="left", options=ScoreOptions())
    assert results["n_pairs"] == len(LISTED + SUB_LISTED)
    assert results["l1"] == pytest.approx(5 / 255, abs=1e-3)
    # The halves are arguments too: a left half (16x16) does not pair with a whole image.
    with pytest.raises(UserError, match="equal sizes"):
        evaluate_folders(["l1"], str(fake), str(odd_folder), real_half="left")


def test_eval_model_mode_takes_a_translator_and_options(tmp_path):
    from tfi2i.cli.eval import ScoreOptions, evaluate_model

    test_dir = tmp_path / "data" / "test"
    os.makedirs(test_dir)
    for i in range(3):
        # AB files: A (left) grey 40 i + 20, B (right) grey 40 i + 30; SSIM needs 11+ px.
        image = np.concatenate([np.full((16, 16, 3), 40 * i + 20, np.uint8),
                                np.full((16, 16, 3), 40 * i + 30, np.uint8)], axis=1)
        Image.fromarray(image).save(test_dir / f"{i}.png")

    class AddTen:
        """AtoB adds 10 grey levels: exact on this data, wrong the other way round."""
        config = {"direction": "AtoB"}
        directions = ["AtoB"]
        batches = []

        def translate(self, images, direction=None):
            self.batches.append(len(images))
            return [np.clip(np.asarray(i, int) + 10, 0, 255).astype(np.uint8) for i in images]

    translator = AddTen()
    results = evaluate_model(["l1"], translator, str(tmp_path / "data"),
                             options=ScoreOptions(batch_size=2))
    assert results["direction"] == "AtoB" and results["n_pairs"] == 3
    assert results["l1"] == 0.0 and translator.batches == [2, 1]
    results = evaluate_model(["l1"], translator, str(tmp_path / "data"), direction="BtoA",
                             save_dir=str(tmp_path / "out"))
    assert results["l1"] == pytest.approx(20 / 255, abs=1e-6)
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png", "2.png"]


def test_evaluator_is_pure_and_the_callback_runs_it(tmp_path):
    from tfi2i.metrics import segmentation as seg
    from tfi2i.metrics.callback import EvaluationCallback
    from tfi2i.metrics.evaluator import Evaluator

    rng = np.random.default_rng(0)
    targets = rng.uniform(-0.8, 0.8, (4, 16, 16, 3)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((targets[..., ::-1].copy(), targets)).batch(2)
    evaluator = Evaluator(data, metrics=("l1", "psnr", "seg"),
                          segmenter=_colour_segmenter(seg.FACADES_PALETTE))
    assert evaluator.names == ["l1", "psnr", "seg_pixel_acc", "seg_class_acc", "seg_class_iou"]
    same = evaluator(lambda x: x[..., ::-1])
    assert same["l1"] == pytest.approx(0.0, abs=1e-7) and same["psnr"] > 100
    assert evaluator(lambda x: x[..., ::-1]) == same  # no state that changes the scores
    assert evaluator(lambda x: x)["l1"] > 0.1
    # Label -> photo: identity outputs are the label maps, decoded back to the same classes.
    ids = np.arange(4 * 16 * 16).reshape(4, 16, 16) % 12
    labels = seg.FACADES_PALETTE[ids].astype(np.float32) / 127.5 - 1
    label_data = tf.data.Dataset.from_tensor_slices((labels, labels)).batch(2)
    scores = Evaluator(label_data, metrics=("seg",), segmenter=_colour_segmenter(
        seg.FACADES_PALETTE))(lambda x: x)
    assert scores["seg_pixel_acc"] == pytest.approx(1.0)
    # The callback: when (every 2nd epoch), logs, and the best epoch, with any evaluator.
    calls = iter([3.0, 1.0, 2.0])
    callback = EvaluationCallback(lambda translate: {"l1": next(calls)}, every_n_epochs=2,
                                  log_dir=str(tmp_path / "tb"), best_metric="l1",
                                  translate=lambda x: x)
    for epoch in range(6):
        logs = {}
        callback.on_epoch_end(epoch, logs)
        assert ("val_l1" in logs) == (epoch % 2 == 1)
    callback.on_train_end()
    assert [h["epoch"] for h in callback.history] == [2, 4, 6]
    assert (callback.mode, callback.best_epoch, callback.best_value) == ("min", 4, 1.0)
    assert os.listdir(tmp_path / "tb")
    with pytest.raises(UserError, match="best_metric 'fid' is not computed"):
        EvaluationCallback(evaluator, best_metric="fid")


def _colour_segmenter(palette):
    """A segmenter that reads the class back from the colour of [0, 255] images."""
    from tfi2i.metrics.segmentation import Segmenter

    colours = tf.constant(palette, tf.float32)
    scores = keras.layers.Lambda(lambda x: -tf.norm(x[..., None, :] - colours, axis=-1))
    return Segmenter(keras.Sequential([keras.Input((None, None, 3)), scores]))


def test_label_maps_is_the_one_palette_lookup():
    from tfi2i.metrics.segmentation import CITYSCAPES_PALETTE, IGNORE_LABEL, LabelMaps

    maps = LabelMaps("cityscapes")
    assert maps.num_classes == 19 and maps.classes[0] == "road"
    # A 4x4 map: left half "building" (id 2), right half a void colour (not scored).
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[:, :2], colours[:, 2:] = CITYSCAPES_PALETTE[2], maps.void_colours[0]
    ids = maps(colours)
    assert (ids[:, :2] == 2).all() and (ids[:, 2:] == IGNORE_LABEL).all()
    assert LabelMaps(CITYSCAPES_PALETTE[:3]).num_classes == 3
    with pytest.raises(UserError, match="palette 'nope'"):
        LabelMaps("nope")


def test_diversity_uses_pdist_and_matches_brute_force():
    from tfi2i.metrics import diversity

    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, (5, 6, 7, 3)).astype(np.uint8)
    x = samples.reshape(5, -1).astype(np.float64) / 255
    brute = np.mean([np.abs(x[i] - x[j]).mean() for i in range(5) for j in range(i + 1, 5)])
    assert diversity.pairwise_pixel_l1(samples) == pytest.approx(brute, rel=1e-12)
    features = rng.normal(size=(4, 32))
    brute = np.mean([np.linalg.norm(features[i] - features[j])
                     for i in range(4) for j in range(i + 1, 4)])
    assert diversity.pairwise_feature_l2(features) == pytest.approx(brute, rel=1e-12)
    assert diversity.pairwise_feature_l2(np.ones((3, 8))) == 0.0
    with pytest.raises(UserError, match="at least 2"):
        diversity.pairwise_pixel_l1(samples[:1])


def test_instance_norm_is_keras_group_normalization():
    from tfi2i.nets import InstanceNormalization, define_G

    layer = InstanceNormalization()
    assert isinstance(layer, keras.layers.GroupNormalization)
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 4)).astype(np.float32) * 3 + 2
    y = layer(x).numpy()
    assert layer.groups == 4 and layer.epsilon == 1e-5 and layer.weights == []
    np.testing.assert_allclose(y.mean((1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var((1, 2)), x.var((1, 2)) / (x.var((1, 2)) + 1e-5), rtol=1e-4)
    affine = InstanceNormalization(affine=True)
    affine.build((None, 8, 8, 3))
    assert [w.path.split("/")[-1] for w in affine.weights] == ["gamma", "beta"]
    # Its config is ours (GroupNormalization's groups/center/scale follow from it).
    assert set(affine.get_config()) >= {"epsilon", "affine", "gamma_initializer"}
    assert "groups" not in affine.get_config()
    # Mixed precision: float16 in and out, statistics in float32 (no overflow at 1e3 scale).
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        out = InstanceNormalization()(tf.constant(x * 1000, tf.float16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float16 and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), y, atol=2e-2)
    # Parameter counts stay the reference's (also pinned in tests/test_nets.py).
    g = define_G("resnet_6blocks", 3, 3, ngf=8, norm="instance")
    assert any(isinstance(lay, InstanceNormalization) for lay in g.layers)
