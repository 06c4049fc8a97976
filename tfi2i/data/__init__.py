"""Paired image data: named datasets, local folders, decoding and the input pipeline.

    root = resolve_dataset("facades")            # or data_dir=...; "sample" needs no network
    ds = paired_dataset(root, "train", direction="BtoA", batch_size=1, epochs=200)
    n = num_examples(root, "train")
"""

from tfi2i.data.decode import decode_image, inspect_image, load_image
from tfi2i.data.download import default_cache_dir, fetch_dataset, safe_extract
from tfi2i.data.pipeline import DIRECTIONS, PREPROCESS_MODES, paired_dataset, steps_per_epoch
from tfi2i.data.registry import DATASETS, DatasetSpec
from tfi2i.data.sample import build_sample
from tfi2i.data.sources import (PairedExamples, dataset_names, num_examples, resolve_dataset,
                                scan_paired)

__all__ = [
    "DATASETS", "DIRECTIONS", "DatasetSpec", "PREPROCESS_MODES", "PairedExamples",
    "build_sample", "dataset_names", "decode_image", "default_cache_dir", "fetch_dataset",
    "inspect_image", "load_image", "num_examples", "paired_dataset", "resolve_dataset",
    "safe_extract", "scan_paired", "steps_per_epoch",
]
