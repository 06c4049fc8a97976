"""tfi2i: image-to-image translation with GANs in TensorFlow/Keras.

    import tfi2i
    translator = tfi2i.load("runs/pix2pix_sample")   # a run dir, an export dir or a .tflite
    outputs = translator.translate(images)           # uint8 [N, H, W, 3], any H and W

Submodules: `tfi2i.data` (datasets and pipelines), `tfi2i.nets`, `tfi2i.losses`,
`tfi2i.methods` (one Keras model per method), `tfi2i.training`, `tfi2i.export`,
`tfi2i.metrics`.
"""

__version__ = "0.1.0"


def load(path, **kwargs):
    """A translator for a run dir, an export dir or a .tflite file (see `tfi2i.export.load`)."""
    # Imported here so that `import tfi2i` does not start TensorFlow.
    from tfi2i.export import load as _load
    return _load(path, **kwargs)
