"""What an unpaired split is: two independent lists of images, one per domain.

Kept apart from `sources` (folders) and `tfds_source` (TensorFlow Datasets) so
that both can build them without importing each other.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DomainImages:
    """The checked, usable images of one domain, in file-name (or TFDS) order.

    Attributes:
        description: where the images are, for messages.
        paths: the image files; for TFDS, a name per example (for messages).
        sizes: (height, width) of each image, of its half for AB images.
        half: "left" or "right" to take that half of each (AB) image; None
            for the whole image.
        encoded: the encoded image files themselves (TFDS), or None to read
            `paths`.
    """
    description: str
    paths: tuple
    sizes: tuple
    half: str | None = None
    encoded: tuple | None = None

    def __len__(self):
        return len(self.paths)


@dataclass(frozen=True)
class UnpairedExamples:
    """The two domains of one unpaired split.

    An epoch has `len()` = max(|A|, |B|) examples, as the reference's
    `unaligned_dataset.py`: every image of the larger domain once, the smaller
    domain wrapping round.
    """
    a: DomainImages
    b: DomainImages

    def __len__(self):
        return max(len(self.a), len(self.b))
