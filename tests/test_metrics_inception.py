"""Tests of the FID Inception network and FID on real images.

The parameter count needs nothing; the rest needs the FID weights (`python -m
tfi2i.metrics.weights --fetch`, which CI runs first) and skips with that reason when they are
absent, and real facades from ../shared/data.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfi2i.errors import UserError
from tfi2i.metrics import fid as fid_lib
from tfi2i.metrics import inception
from tfi2i.metrics import weights as weights_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACADES_TEST = os.path.join(os.path.dirname(REPO), "shared", "data", "facades", "test")
REFERENCE = os.path.join(REPO, "tests", "data", "fid_torch_reference.npz")


def _weights_or_skip():
    try:
        return weights_lib.fid_weights_path()
    except UserError:
        pytest.skip(f"FID weights absent; fetch them with: {weights_lib.FETCH_COMMAND}")


def _facades_or_skip():
    if not os.path.isdir(FACADES_TEST):
        pytest.skip(f"real facades not found at {FACADES_TEST}")
    return FACADES_TEST


def _reference_script():
    spec = importlib.util.spec_from_file_location(
        "fid_torch_reference", os.path.join(REPO, "scripts", "fid_torch_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_count_and_feature_shape():
    model = inception.build_fid_inception(weights=False)
    assert model.count_params() == inception.PARAMETER_COUNT == 21_802_784
    assert model.output_shape == (None, 2048)
    # Any input size: resized to 299 inside.
    assert model(np.zeros((1, 64, 80, 3), np.float32)).shape == (1, 2048)


def test_foreign_weights_files_are_refused_clearly(tmp_path):
    import pickle
    import zipfile

    model = inception.build_fid_inception(weights=False)
    not_zip = tmp_path / "a.pt"
    not_zip.write_bytes(b"junk")
    other = tmp_path / "b.pt"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"net": None}, protocol=2))
    for path in (not_zip, other):
        with pytest.raises(UserError, match=r"weights --fetch"):
            inception.load_fid_weights(model, str(path))


@pytest.fixture(scope="module")
def extractor():
    path = _weights_or_skip()
    return fid_lib.FeatureExtractor(weights=path, batch_size=10,
                                    model=inception.build_fid_inception(path))


def test_features_match_torch_reference(extractor):
    """Parity with torch.jit.load(default_1.pt), as saved by scripts/fid_torch_reference.py."""
    folder = _facades_or_skip()
    reference = np.load(REFERENCE)
    script = _reference_script()
    names = list(reference["names"])
    assert names == script.list_images(folder, len(names))
    images = [script.load_image(os.path.join(folder, n), str(reference["half"])) for n in names]
    networks_only = extractor.from_images(np.stack([script.pad_to_299(i) for i in images]))
    # Measured: 6.4e-6 (networks only) and 2.0e-5 (full pipeline) on features up to ~4.8.
    assert np.abs(networks_only - reference["features_299"]).max() < 1e-4
    # The folder pipeline (tf.data JPEG decode, crop, TF1 resize to 299) against torch's.
    paths = [os.path.join(folder, n) for n in names]
    streamed = extractor.from_dataset(extractor.folder_dataset(paths, str(reference["half"])))
    assert np.abs(streamed - reference["features"]).max() < 1e-4


def _torch_python():
    """A Python with torch: $TFI2I_TORCH_PYTHON, or this one if it has torch."""
    if os.environ.get("TFI2I_TORCH_PYTHON"):
        return os.environ["TFI2I_TORCH_PYTHON"]
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return None


def test_features_match_torch_live(extractor, tmp_path):
    """Runs torch itself (reference script) on 20 real images and compares."""
    python = _torch_python()
    if python is None:
        pytest.skip("torch not importable here and $TFI2I_TORCH_PYTHON not set (the stored "
                    "reference is compared by test_features_match_torch_reference)")
    folder = _facades_or_skip()
    out = tmp_path / "ref.npz"
    subprocess.run([python, os.path.join(REPO, "scripts", "fid_torch_reference.py"),
                    "--weights", weights_lib.fid_weights_path(), "--images", folder,
                    "--half", "left", "--count", "20", "--out", str(out)], check=True,
                   timeout=600)
    reference = np.load(out)
    script = _reference_script()
    images = [script.load_image(os.path.join(folder, n), "left") for n in reference["names"]]
    diff = np.abs(extractor.from_images(np.stack(images)) - reference["features"]).max()
    print(f"torch parity, max abs diff over 20 images: {diff:.3g}")
    assert diff < 1e-4


@pytest.fixture(scope="module")
def facades_photos():
    folder = _facades_or_skip()
    script = _reference_script()
    return np.stack([script.load_image(os.path.join(folder, n), "left")
                     for n in script.list_images(folder, 30)])


def _blur(images, sigma):
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(i.astype(np.float32), (sigma, sigma, 0)) for i in images])


def test_fid_rises_monotonically_with_blur(extractor, facades_photos):
    real = extractor.from_images(facades_photos)
    assert fid_lib.fid_from_features(real, real) == pytest.approx(0.0, abs=1e-6)
    blurred = [extractor.from_images(_blur(facades_photos, s)) for s in (0.5, 1.5, 3.0)]
    fids = [fid_lib.fid_from_features(real, b) for b in blurred]
    kids = [fid_lib.kid_from_features(real, b)[0] for b in blurred]
    print("FID, KID at blur sigma 0.5, 1.5, 3:", fids, kids)
    assert 0 < fids[0] < fids[1] < fids[2]
    assert kids[0] < kids[1] < kids[2]


def test_folder_features_cached_and_fid_of_folder_with_itself(extractor, facades_photos,
                                                              tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("TFI2I_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(facades_photos[:12]):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    first = extractor.from_folder(str(folder))
    assert first.shape == (12, 2048)
    np.testing.assert_allclose(first, extractor.from_images(facades_photos[:12]), atol=1e-4)
    result = fid_lib.fid_kid_folders(str(folder), str(folder), extractor=extractor)
    assert result["fid"] == pytest.approx(0.0, abs=1e-6)
    # Second call: from the cache, without running the network.
    monkeypatch.setattr(extractor, "from_dataset", lambda *a: pytest.fail("cache missed"))
    np.testing.assert_array_equal(extractor.from_folder(str(folder)), first)
    # Touching a file changes the key.
    os.utime(folder / "00.png", ns=(1, 1))
    with pytest.raises(pytest.fail.Exception, match="cache missed"):
        extractor.from_folder(str(folder))


def test_unreadable_image_is_named(extractor, tmp_path, monkeypatch):
    monkeypatch.setenv("TFI2I_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "bad"
    folder.mkdir()
    tf.io.write_file(str(folder / "a.png"), tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="b.jpg"):
        extractor.from_folder(str(folder))


def test_evaluator_fid_kid_and_segmentation(extractor, facades_photos):
    import keras

    from tfi2i.metrics import segmentation as seg
    from tfi2i.metrics.evaluator import Evaluator

    photos = facades_photos[:6, ::4, ::4].astype(np.float32) / 127.5 - 1  # 64 px
    labels = seg.FACADES_PALETTE[np.arange(6 * 64 * 64).reshape(6, 64, 64) // 64 % 12]
    inputs = labels.astype(np.float32) / 127.5 - 1
    data = tf.data.Dataset.from_tensor_slices((inputs, photos)).batch(3)
    # A segmenter that reads the class back from the colour, so the score is known: it sees
    # the translations, which here are the label maps themselves.
    palette = tf.constant(seg.FACADES_PALETTE, tf.float32)
    scores = keras.layers.Lambda(lambda x: -tf.norm(x[..., None, :] - palette, axis=-1))
    segmenter = seg.Segmenter(keras.Sequential([keras.Input((None, None, 3)), scores]))
    evaluator = Evaluator(data, metrics=("fid", "kid", "seg", "l1"), segmenter=segmenter,
                          fid_extractor=extractor)
    results = evaluator(lambda x: x)
    assert results["seg_pixel_acc"] == pytest.approx(1.0)
    assert results["fid"] > 100 and results["l1"] > 0.1  # label maps are no photos
    same = Evaluator(tf.data.Dataset.from_tensor_slices((photos, photos)).batch(6),
                     metrics=("fid",), fid_extractor=extractor)(lambda x: x)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)


def test_diversity_in_inception_feature_space(extractor, facades_photos):
    from tfi2i.metrics.diversity import mean_pairwise_distance

    small = facades_photos[:3, ::4, ::4]
    same = mean_pairwise_distance([np.stack([small[0]] * 3)], space="inception",
                                  extractor=extractor)
    assert same["diversity"] == pytest.approx(0.0, abs=1e-3) and same["space"] == "inception"
    varied = mean_pairwise_distance([small], space="inception", extractor=extractor)
    assert varied["diversity"] > 1.0
