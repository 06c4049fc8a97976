"""pix2pix learns: a few hundred steps on real photographs beat not translating at all.

The pattern every method's learning test follows is in tests/learning.py.
"""

import keras
import numpy as np
import pytest

from learning import assert_learned, heldout_l1, identity
from tfi2i.data import paired_dataset, resolve_dataset
from tfi2i.export.tflite import convert
from tfi2i.export.translator import TFLiteNet
from tfi2i.methods import Pix2Pix

STEPS = 300


@pytest.fixture(scope="module")
def colourised(tmp_path_factory):
    """(scores, trained model, held-out dataset) of pix2pix trained STEPS steps."""
    # The built-in sample set: gray -> colour crops of real photographs, the
    # test crops from held-out regions.
    root = resolve_dataset("sample", cache_dir=str(tmp_path_factory.mktemp("cache")))
    keras.utils.set_random_seed(0)
    model = Pix2Pix(netG="unet_64", ngf=16, ndf=16)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.build_for_size(64, 64)
    val = paired_dataset(root, "test", crop_size=64, batch_size=8, training=False)
    scores = {"untrained": heldout_l1(model.translate, val),
              "identity": heldout_l1(identity, val)}
    train = paired_dataset(root, "train", load_size=72, crop_size=64, batch_size=4, seed=0,
                           epochs=100).take(STEPS)
    model.fit(train, verbose=0)
    scores["trained"] = heldout_l1(model.translate, val)
    return scores, model, val


@pytest.mark.slow
def test_pix2pix_learns_colourisation_on_the_sample_set(colourised):
    scores, model, val = colourised
    # The model's own metric and the helper agree (one held-out L1).
    assert model.evaluate(val, verbose=0, return_dict=True)["l1"] == pytest.approx(
        scores["trained"], rel=1e-4)
    # Untrained, G's output is near 0 everywhere: L1 ~ the mean |target| (~0.57).
    # Copying the gray input already scores ~0.33, better than 0.6 x untrained;
    # measured after 300 steps: 0.22-0.24, i.e. 0.68-0.72 x identity. Below 0.8 x
    # identity, the net colours the photographs rather than copying their gray.
    assert_learned(f"held-out L1 after {STEPS} steps", scores, untrained=0.6, identity=0.8)


@pytest.mark.slow
def test_quantized_tflite_of_a_trained_generator_stays_close(colourised, tmp_path):
    # A trained net's weights, not a random init, decide how much float16 and int8
    # weights cost. Measured on this net (held-out photos, [-1, 1] units):
    # float16 max 3.6e-4..4.5e-4, mean 4e-5..5e-5 (README: 4.4e-4 max on facades
    # at 256 px); dynamic-range int8 max 0.012, mean 1.4e-3..1.6e-3. The limits below
    # are 2-3x those, 10-50x tighter than the export's own check (TOLERANCES in
    # tfi2i.export.tflite).
    _, model, val = colourised
    images = np.concatenate([x.numpy() for x, _ in val])
    expected = model.G(images, training=False).numpy()
    limits = {"float16": (1e-3, 1.5e-4), "dynamic": (0.04, 5e-3)}
    for quantize, (max_limit, mean_limit) in limits.items():
        path = tmp_path / f"G_{quantize}.tflite"
        path.write_bytes(convert(model.G, quantize))
        net = TFLiteNet(path)
        outputs = np.concatenate([net(images[i:i + 8]) for i in range(0, len(images), 8)])
        diff = np.abs(outputs - expected)
        print(f"{quantize}: max abs diff {diff.max():.3g}, mean {diff.mean():.3g}")
        assert diff.max() < max_limit and diff.mean() < mean_limit, (
            quantize, float(diff.max()), float(diff.mean()))
    # The same outputs, not just any close numbers: float32 is exact to 1e-5.
    path = tmp_path / "G_float32.tflite"
    path.write_bytes(convert(model.G, "none"))
    assert np.abs(TFLiteNet(path)(images[:8]) - expected[:8]).max() < 1e-5
