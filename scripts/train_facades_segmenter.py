"""Train the facades segmenter of the FCN-score protocol and score the real test photos.

    python scripts/train_facades_segmenter.py --data_dir ../shared/data/facades [--epochs 60]

Same as `python -m tfi2i.metrics.segmentation`: trains a small U-Net on facades/train photos
-> label maps at 128 px (the last 40 train files held out for monitoring), writes
`$TFI2I_CACHE/segmenters/facades_128.keras` (default cache `~/.cache/tfi2i`), which
`tfi2i-eval --metrics=seg` uses, then prints the scores of the real facades/test photos: the
upper bound for generated ones. See tfi2i/metrics/segmentation.py.
"""

import sys

from tfi2i.metrics.segmentation import main

if __name__ == "__main__":
    sys.exit(main())
