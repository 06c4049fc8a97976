"""Image data: named datasets, local folders, TFDS, decoding and the input pipelines.

    root = resolve_dataset("facades")            # or data_dir=...; "sample" needs no network
    ds = paired_dataset(root, "train", direction="BtoA", batch_size=1, epochs=200)
    n = num_examples(root, "train")

    root = resolve_dataset("horse2zebra")        # or "tfds:cycle_gan/horse2zebra"
    ds = unpaired_dataset(root, "train", batch_size=1, epochs=200)
    n = num_examples(root, "train", paired=False)    # max(|A|, |B|)

    ds = make_dataset(root, "train", paired=False, batch_size=1)   # either kind
    if not has_split(root, "test", paired=False): ...               # skip validation
"""

from tfi2i.data.decode import (IMAGE_EXTENSIONS, decode_image, inspect_image, list_images,
                               load_image)
from tfi2i.data.download import default_cache_dir, fetch_dataset, safe_extract
from tfi2i.data.domains import DomainImages, UnpairedExamples
from tfi2i.data.pipeline import (CHANNEL_COUNTS, DIRECTIONS, PREPROCESS_MODES, make_dataset,
                                 paired_dataset, steps_per_epoch, unpaired_dataset)
from tfi2i.data.registry import CYCLEGAN_DATASETS, DATASETS, DatasetSpec
from tfi2i.data.sample import build_sample
from tfi2i.data.sources import (PairedExamples, dataset_names, has_split, num_examples,
                                resolve_dataset, scan_paired, scan_unpaired)
from tfi2i.data.tfds_source import TfdsDataset, is_tfds, parse_tfds, scan_tfds

__all__ = [
    "CHANNEL_COUNTS", "CYCLEGAN_DATASETS", "DATASETS", "DIRECTIONS", "DatasetSpec",
    "DomainImages", "IMAGE_EXTENSIONS", "PREPROCESS_MODES", "PairedExamples", "TfdsDataset",
    "UnpairedExamples", "build_sample", "dataset_names", "decode_image", "default_cache_dir",
    "fetch_dataset", "has_split", "inspect_image", "is_tfds", "list_images", "load_image",
    "make_dataset", "num_examples", "paired_dataset", "parse_tfds", "resolve_dataset",
    "safe_extract", "scan_paired", "scan_tfds", "scan_unpaired", "steps_per_epoch",
    "unpaired_dataset",
]
