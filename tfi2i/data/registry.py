"""The named paired datasets: the official pix2pix archives.

Each archive `<name>.tar.gz` holds one folder `<name>/` with split folders of
"AB" images (A left, B right). The paper's per-dataset training settings
(epochs, batch size, direction) live in configs/, not here.

Sizes and checksums are recorded only where a published figure could be found;
nobody here can download the archives to compute them. Where one is None the
download is checked against the other figure and the Content-Length header, and
the extracted archive is checked for its structure (`<name>/train/` with
images).
"""

from dataclasses import dataclass

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"


@dataclass(frozen=True)
class DatasetSpec:
    """One downloadable dataset archive.

    Attributes:
        name: the --dataset name; also the archive's file stem and top folder.
        description: what the images are.
        size: the archive's size in bytes, or None when unknown.
        sha256: the archive's SHA-256 hex digest, or None when unknown.
        base_url: the folder URL the archive is served from.
    """
    name: str
    description: str
    size: int | None = None
    sha256: str | None = None
    base_url: str = PIX2PIX_BASE_URL

    @property
    def archive_name(self):
        """The archive's file name, e.g. `facades.tar.gz`."""
        return f"{self.name}.tar.gz"

    def url(self, base_url=None):
        """The archive's URL, served from `base_url` (a mirror) if given."""
        return f"{(base_url or self.base_url).rstrip('/')}/{self.archive_name}"


DATASETS = {spec.name: spec for spec in (
    # 30168306 bytes: `Length: 30168306` / `saved [30168306/30168306]` in a wget log
    # of this URL (2022-03-21) kept in a public notebook; the same log lists the
    # archive's folders facades/{train,test,val}/. SHA-256 not published.
    DatasetSpec("facades", "CMP Facades: photo (A, left) | label map (B, right)",
                size=30168306),
    # Directory index of the server: 99M (rounded, so not usable). Size and
    # SHA-256 unknown.
    DatasetSpec("cityscapes", "Cityscapes street photos and their label maps"),
    # 250242400 bytes: `Length: 250242400` / `saved [250242400/250242400]` in a wget
    # log of this URL (2023-06-14) kept in a public notebook. SHA-256 not published.
    DatasetSpec("maps", "Google Maps aerial photos and map tiles", size=250242400),
    # Directory index: 2.0G (rounded). Size and SHA-256 unknown.
    DatasetSpec("edges2shoes", "UT Zappos50K shoe photos and their edge maps"),
    # Directory index: 8.0G (rounded). Size and SHA-256 unknown.
    DatasetSpec("edges2handbags", "Amazon handbag photos (iGAN) and their edge maps"),
    # Directory index: 1.9G (rounded). Size and SHA-256 unknown.
    DatasetSpec("night2day", "Transient Attributes webcam scenes at night and by day"),
)}
