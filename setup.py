"""tfi2i: image-to-image translation with GANs in TensorFlow/Keras."""

from setuptools import find_packages, setup

setup(
    name="tfi2i",
    version="0.1.0",
    description="Image-to-image translation GANs (pix2pix, CycleGAN, ...) for TensorFlow/Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfi2i", "tfi2i.*"]) + ["tfi2i.configs"],
    # The presets live in the top-level configs/ folder and install as tfi2i.configs.
    package_dir={"tfi2i.configs": "configs"},
    package_data={"tfi2i.configs": ["*.json"]},
    install_requires=[
        # TF 2.21 with Keras 3. The full wheel, not tensorflow-cpu: the TF Serving client
        # (tensorflow-serving-api) depends on it and would pull it in beside tensorflow-cpu.
        "tensorflow>=2.21,<2.22",
        "keras>=3.10",
        "absl-py",
        # TF 2.21 no longer installs tensorboard; tf.summary needs it.
        "tensorboard>=2.21,<2.22",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets' download_and_prepare imports it without declaring it.
        "importlib_resources",
        "numpy",
        # USPS digits in HDF5 (usps.h5); TensorFlow installs it too, tfi2i reads it directly.
        "h5py",
        # FID's matrix algebra and the segmentation score's palette fitting.
        "scipy",
        "pillow",
        # The built-in `sample` dataset is derived from scikit-image's bundled photographs.
        "scikit-image",
        # TFLite interpreter (tf.lite.Interpreter is deprecated).
        "ai-edge-litert",
    ],
    extras_require={
        # The serving client too, so its gRPC example is tested against a real PredictionService.
        # playwright drives the system's Chromium in the study page's browser test.
        "test": ["pytest", "pytest-xdist", "tensorflow-serving-api>=2.21,<2.22", "playwright"],
        "serving": ["tensorflow-serving-api>=2.21,<2.22"],
    },
    entry_points={
        "console_scripts": [
            "tfi2i-train=tfi2i.cli.train:run",
            "tfi2i-translate=tfi2i.cli.translate:run",
            "tfi2i-export=tfi2i.cli.export:run",
            "tfi2i-eval=tfi2i.cli.eval:run",
            "tfi2i-compare=tfi2i.cli.compare:run",
            "tfi2i-import=tfi2i.cli.import_:run",
            "tfi2i-report=tfi2i.cli.report:run",
            "tfi2i-study-merge=tfi2i.cli.report:run_merge",
        ],
    },
)
