"""pix2pix learns: a few hundred steps on real photographs lower held-out L1."""

import keras
import numpy as np
import pytest

from tfi2i.data import paired_dataset, resolve_dataset
from tfi2i.methods import Pix2Pix

STEPS = 300


def _val_l1(model, val):
    return float(np.mean([model.evaluate(val, verbose=0, return_dict=True)["l1"]]))


@pytest.mark.slow
def test_pix2pix_learns_colourisation_on_the_sample_set(tmp_path):
    # The built-in sample set: gray -> colour crops of real photographs, the
    # test crops from held-out regions.
    root = resolve_dataset("sample", cache_dir=str(tmp_path / "cache"))
    keras.utils.set_random_seed(0)
    model = Pix2Pix(netG="unet_64", ngf=16, ndf=16)
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.build_for_size(64, 64)
    val = paired_dataset(root, "test", crop_size=64, batch_size=8, training=False)
    before = _val_l1(model, val)
    train = paired_dataset(root, "train", load_size=72, crop_size=64, batch_size=4, seed=0,
                           epochs=100).take(STEPS)
    model.fit(train, verbose=0)
    after = _val_l1(model, val)
    print(f"held-out L1 before {before:.4f}, after {STEPS} steps {after:.4f}")
    # Untrained, G's output is near 0 everywhere: L1 ~ the mean |target|. After
    # training it must be at most 60% of that.
    assert after < 0.6 * before, (before, after)
