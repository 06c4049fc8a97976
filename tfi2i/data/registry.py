"""The named datasets: the official pix2pix and CycleGAN archives.

pix2pix: each archive `<name>.tar.gz` holds one folder `<name>/` with split
folders of "AB" images (A left, B right); the name is the --dataset name.

CycleGAN: each archive `<name>.zip` holds one folder `<name>/` with the
unpaired domains trainA/, trainB/, testA/, testB/. Their --dataset names are
`cyclegan/<name>`; the ones that do not clash with a pix2pix name can also be
named plainly (`horse2zebra`), while `facades`, `maps` and `cityscapes` are
the pix2pix (paired) sets and `cyclegan/facades` etc. the CycleGAN ones.

The paper's per-dataset training settings (epochs, batch size, direction) live
in configs/, not here.

Sizes and checksums are recorded only where a published figure could be found;
nobody here can download the archives to compute them. Where one is None the
download is checked against the other figure and the Content-Length header, and
the extracted archive is checked for its structure (`<name>/train/`, or
`<name>/trainA/` and `<name>/trainB/`, with images). The CycleGAN archives'
sizes and SHA-256 digests are the ones TensorFlow Datasets records for the same
URLs (tensorflow_datasets/url_checksums/cycle_gan.txt).
"""

from dataclasses import dataclass

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
CYCLEGAN_BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
CYCLEGAN_PREFIX = "cyclegan/"


@dataclass(frozen=True)
class DatasetSpec:
    """One downloadable dataset archive.

    Attributes:
        name: the --dataset name, and the dataset's folder in the cache
            (`<cache>/<name>`, e.g. `<cache>/cyclegan/horse2zebra`).
        description: what the images are.
        size: the archive's size in bytes, or None when unknown.
        sha256: the archive's SHA-256 hex digest, or None when unknown.
        base_url: the folder URL the archive is served from.
        archive_format: "tar.gz" or "zip".
        unpaired: True for the CycleGAN layout (trainA/, trainB/, ...), False
            for paired split folders (train/, ...).
    """
    name: str
    description: str
    size: int | None = None
    sha256: str | None = None
    base_url: str = PIX2PIX_BASE_URL
    archive_format: str = "tar.gz"
    unpaired: bool = False

    @property
    def folder(self):
        """The archive's file stem and top folder, e.g. `facades` for `cyclegan/facades`."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def archive_name(self):
        """The archive's file name, e.g. `facades.tar.gz`."""
        return f"{self.folder}.{self.archive_format}"

    @property
    def train_folders(self):
        """The folders an extracted dataset must have: train/, or trainA/ and trainB/."""
        return ("trainA", "trainB") if self.unpaired else ("train",)

    def is_extracted_in(self, folder):
        """Whether `folder` holds this dataset's training folders (an extracted copy)."""
        return all((folder / name).is_dir() for name in self.train_folders)

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


def _cyclegan(name, description, size, sha256):
    return DatasetSpec(CYCLEGAN_PREFIX + name, description, size, sha256,
                       base_url=CYCLEGAN_BASE_URL, archive_format="zip", unpaired=True)


CYCLEGAN_DATASETS = {spec.name: spec for spec in (
    _cyclegan("apple2orange", "ImageNet apples (A) and oranges (B)", 78456409,
              "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8"),
    _cyclegan("summer2winter_yosemite", "Flickr photos of Yosemite in summer (A) and winter (B)",
              132640856, "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9"),
    _cyclegan("horse2zebra", "ImageNet horses (A) and zebras (B)", 116867962,
              "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1"),
    _cyclegan("monet2photo", "Monet paintings (A) and Flickr landscape photos (B)", 305231073,
              "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04"),
    _cyclegan("cezanne2photo", "Cezanne paintings (A) and Flickr landscape photos (B)",
              279885071, "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff"),
    _cyclegan("ukiyoe2photo", "Ukiyo-e prints (A) and Flickr landscape photos (B)", 292946532,
              "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08"),
    _cyclegan("vangogh2photo", "Van Gogh paintings (A) and Flickr landscape photos (B)",
              306590349, "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff"),
    _cyclegan("maps", "Google Maps aerial photos (A) and map tiles (B), unpaired", 1476754427,
              "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e"),
    # The authors withdrew this archive for licence reasons (TFDS 3.0.0 dropped it too);
    # if the server no longer serves it, prepare the data from cityscapes-dataset.com.
    _cyclegan("cityscapes", "Cityscapes street photos (A) and label maps (B), unpaired",
              279601602, "d2f6910fd056c1ee9873777ae838e7ac4a2c833598ae62a04188e5ab2f4ea036"),
    _cyclegan("facades", "CMP Facades photos (A) and label maps (B), unpaired", 35135868,
              "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0"),
    _cyclegan("iphone2dslr_flower", "Flower photos from iPhones (A) and DSLRs (B)", 339964458,
              "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113"),
)}
DATASETS.update(CYCLEGAN_DATASETS)
# The plain names of the CycleGAN sets that do not clash with a pix2pix set.
DATASETS.update({spec.folder: spec for spec in CYCLEGAN_DATASETS.values()
                 if spec.folder not in DATASETS})
