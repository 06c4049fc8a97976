"""Shared test set-up: two logical CPU devices, quiet TF, small datasets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

# Two logical CPUs so MirroredStrategy has two replicas on a CPU-only
# machine. This must happen before TF initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:
    pass  # Already initialised by an earlier import; mirrored tests check the count.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def smooth_image(rng, size, channels=3):
    """A smooth random colour field (sums of low-frequency waves), uint8."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, channels))
    for c in range(channels):
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.5, 3, size=3)
            img[..., c] += np.sin(2 * np.pi * (fx * xx + fy * yy) + phase * 6)
    img = (img - img.min()) / (img.max() - img.min() + 1e-9)
    return (img * 255).astype(np.uint8)


def smooth_domain(seed, n, size, channels=3):
    """n smooth images of one domain in [-1, 1]: float32 [n, size, size, channels]."""
    rng = np.random.default_rng(seed)
    images = np.stack([smooth_image(rng, (size, size), channels) for _ in range(n)])
    return tf.constant(images.astype(np.float32) / 127.5 - 1.0)


def write_ab_dataset(root, splits=(("train", 8), ("test", 4)), size=32, seed=0):
    """A tiny pix2pix AB dataset: A = a smooth colour image, B = its grayscale."""
    rng = np.random.default_rng(seed)
    for split, count in splits:
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            a = smooth_image(rng, (size, size))
            b = np.repeat(a.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(
                os.path.join(folder, f"{i:03d}.png"))
    return str(root)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one MirroredStrategy over the two logical CPUs, for the whole test session.

    A second MirroredStrategy over the same devices in one process reuses the
    first one's collective instance keys, and their all-reduces then clash
    ("Shape mismatch in the collective instance"), also across test modules.
    """
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs 2 logical CPU devices (set up in conftest before TF starts)")
    return tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])


@pytest.fixture
def ab_dataset(tmp_path):
    return write_ab_dataset(tmp_path / "data")


def tiny_run_config(data_dir, run_dir, **overrides):
    """A resolved pix2pix run config small enough for CPU tests (32 px, ngf 8,
    deterministic ops), as tests/test_training.py's runs use."""
    from tfi2i.config import resolve_config

    options = dict(netG="unet_32", ngf=8, ndf=8, data_dir=str(data_dir), run_dir=str(run_dir),
                   load_size=36, crop_size=32, batch_size=2, n_epochs=1, n_epochs_decay=1,
                   save_every_steps=2, log_every_steps=1, sample_every_steps=2,
                   deterministic=True)
    options.update(overrides)
    return resolve_config("pix2pix", None, options)


def write_unpaired_dataset(root, counts=(("trainA", 5), ("trainB", 3), ("testA", 2),
                                         ("testB", 3)), sizes=((32, 32),), seed=0):
    """A tiny CycleGAN-layout dataset: smooth colour images in <split>A/ and <split>B/.

    Args:
        root: the dataset folder to write.
        counts: (folder, number of images) pairs.
        sizes: (height, width) of the images, used in turn (several give mixed sizes).
        seed: the images' random seed.
    """
    rng = np.random.default_rng(seed)
    for folder, count in counts:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for i in range(count):
            image = smooth_image(rng, sizes[i % len(sizes)])
            Image.fromarray(image).save(os.path.join(root, folder, f"{folder}_{i:03d}.png"))
    return str(root)


# -- the command-line apps, as subprocesses (tests of the CLI round trips) ------------------

CLI_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def start_cli(module, *args):
    """Starts `python -m tfi2i.cli.<module> ARGS` in the repository; returns the Popen."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", f"tfi2i.cli.{module}", *args], env=CLI_ENV,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_cli(proc, timeout=300):
    """Waits for a `start_cli` process; asserts it succeeded; returns its stdout."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def read_pngs(folder):
    """(sorted file names, uint8 RGB array [N, H, W, 3]) of the PNGs in a folder."""
    import glob

    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    return [os.path.basename(p) for p in files], np.stack(
        [np.asarray(Image.open(p).convert("RGB")) for p in files])
