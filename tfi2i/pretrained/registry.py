"""The authors' released generators: pix2pix and CycleGAN checkpoints by name.

URLs as in the reference's scripts/download_pix2pix_model.sh and
scripts/download_cyclegan_model.sh (junyanz/pytorch-CycleGAN-and-pix2pix):

    http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/<name>.pth
    http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/<name>.pth

Each file is one generator's state dict (`latest_net_G.pth` in the reference's layout). Names
follow the dataset registry's rule: the pix2pix models have plain names; every CycleGAN model
is also `cyclegan/<name>`, and the CycleGAN models whose plain name is a pix2pix model's
(sat2map, map2sat, facades_label2photo) are only `cyclegan/<name>`.

What the reference tests them with (README and scripts/test_*.sh):

- CycleGAN: `test.py --model test --no_dropout` with the defaults netG resnet_9blocks,
  norm instance, ngf 64: one generator, no dropout, instance norm (which has no running
  statistics, so train and eval mode agree).
- pix2pix: `test.py --model pix2pix --netG unet_256 --norm batch` (dropout on, the pix2pix
  default; facades with --direction BtoA), without `--eval`: the reference's test runs the
  generator in training mode, i.e. batch norm with the statistics of the test image (batch
  size 1) and dropout active. tfi2i runs generators in inference mode (running statistics,
  no dropout), which is the reference's `test.py --eval`. Outputs differ from the default
  reference test by that choice; they are deterministic and what exports serve.

The architecture itself (netG, ngf, norm, channels, and dropout for ResNets) is read from
the file's keys and shapes by `tfi2i.pretrained.convert.describe_state_dict`, so an entry here
only says what the file cannot: which method trained it (and so the U-Net's dropout),
the dataset and the direction of that dataset it translates (A -> B is AtoB).
Directions follow the datasets' X2Y names (A is X), as tfi2i's dataset registry describes
their folders; the reference scripts do not state them except facades (BtoA).

No sizes or checksums are published for these files, except one size noted below; the
download is checked against the Content-Length header, and the converter checks that every
tensor of the file has the place and shape the generator expects.
"""

from dataclasses import dataclass

PIX2PIX_MODELS_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
CYCLEGAN_MODELS_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
MIRROR_ENV = "TFI2I_PRETRAINED_MIRROR"
CYCLEGAN_PREFIX = "cyclegan/"


@dataclass(frozen=True)
class PretrainedSpec:
    """One released generator.

    Attributes:
        name: the --pretrained name (e.g. `horse2zebra`, `cyclegan/sat2map`).
        method: "pix2pix" or "cyclegan": the training that produced it.
        dataset: the tfi2i --dataset it was trained on.
        direction: which way it translates that dataset (AtoB or BtoA).
        description: what it does.
        size: the file's size in bytes where a figure was found, else None.
        sha256: its SHA-256 where known, else None.
        listed: whether the reference's download script lists it.
    """
    name: str
    method: str
    dataset: str
    direction: str
    description: str
    size: int | None = None
    sha256: str | None = None
    listed: bool = True

    @property
    def file_stem(self):
        """The file's name on the server without `.pth`, e.g. `sat2map` for cyclegan/sat2map."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def base_url(self):
        return PIX2PIX_MODELS_URL if self.method == "pix2pix" else CYCLEGAN_MODELS_URL

    def url(self, mirror=None):
        """The file's URL, from `mirror` (a base URL holding pix2pix/ and cyclegan/) if given."""
        if mirror:
            return f"{mirror.rstrip('/')}/{self.method}/{self.file_stem}.pth"
        return f"{self.base_url}/{self.file_stem}.pth"

    @property
    def kind(self):
        """What download errors call it."""
        return "pretrained model"

    @property
    def archive_name(self):
        """Its name while it downloads (in <cache>/downloads/), unique across both sets."""
        return f"pretrained-{self.method}-{self.file_stem}.pth"

    def cache_path(self, cache):
        """Where the downloaded file is kept: <cache>/pretrained/<method>/<stem>.pth."""
        return cache / "pretrained" / self.method / f"{self.file_stem}.pth"

    @property
    def default_netG(self):
        """The reference's generator for this method (the file's keys decide in the end)."""
        return "unet_256" if self.method == "pix2pix" else "resnet_9blocks"

    @property
    def use_dropout(self):
        """Dropout in the generator: the reference's default for the method.

        pix2pix trains with dropout (no `--no_dropout`); the released CycleGAN models are
        tested with `--no_dropout`. Inference mode leaves dropout off either way; it matters
        only to fine-tuning, and to the ResNet's key names (which the converter checks).
        """
        return self.method == "pix2pix"


def _pix2pix(name, dataset, direction, description, size=None, listed=True):
    return PretrainedSpec(name, "pix2pix", dataset, direction, description, size=size,
                          listed=listed)


def _cyclegan(name, dataset, direction, description):
    return PretrainedSpec(CYCLEGAN_PREFIX + name, "cyclegan", dataset, direction, description)


PIX2PIX_MODELS = {spec.name: spec for spec in (
    # The facades archive holds photo (A) | label (B); the reference tests it with BtoA.
    _pix2pix("facades_label2photo", "facades", "BtoA", "facade label maps to photos"),
    # 217704720 bytes: `Length: 217704720 (208M)` in a wget log of this URL (2023-06-14)
    # kept in a public notebook; it is a unet_256 with ngf 64 and batch norm (54.4 M floats).
    _pix2pix("sat2map", "maps", "AtoB", "aerial photos to map tiles", size=217704720),
    _pix2pix("map2sat", "maps", "BtoA", "map tiles to aerial photos"),
    _pix2pix("edges2shoes", "edges2shoes", "AtoB", "edge maps to shoe photos"),
    # The night2day archive holds night (A) | day (B) by its name.
    _pix2pix("day2night", "night2day", "BtoA", "daytime scenes to night"),
    # Named by the issue that asked for these; the reference's download script does not list
    # it, so the server may not have it (a 404 then says so).
    _pix2pix("edges2handbags", "edges2handbags", "AtoB", "edge maps to handbag photos",
             listed=False),
)}

CYCLEGAN_MODELS = {spec.name: spec for spec in (
    _cyclegan("horse2zebra", "horse2zebra", "AtoB", "horses to zebras"),
    _cyclegan("zebra2horse", "horse2zebra", "BtoA", "zebras to horses"),
    _cyclegan("apple2orange", "apple2orange", "AtoB", "apples to oranges"),
    _cyclegan("orange2apple", "apple2orange", "BtoA", "oranges to apples"),
    _cyclegan("summer2winter_yosemite", "summer2winter_yosemite", "AtoB",
              "Yosemite in summer to winter"),
    _cyclegan("winter2summer_yosemite", "summer2winter_yosemite", "BtoA",
              "Yosemite in winter to summer"),
    _cyclegan("monet2photo", "monet2photo", "AtoB", "Monet paintings to photos"),
    # The style_* models are the photo -> painting generators (G_B) of <artist>2photo.
    _cyclegan("style_monet", "monet2photo", "BtoA", "photos to Monet paintings"),
    _cyclegan("style_cezanne", "cezanne2photo", "BtoA", "photos to Cezanne paintings"),
    _cyclegan("style_ukiyoe", "ukiyoe2photo", "BtoA", "photos to Ukiyo-e prints"),
    _cyclegan("style_vangogh", "vangogh2photo", "BtoA", "photos to Van Gogh paintings"),
    _cyclegan("sat2map", "cyclegan/maps", "AtoB", "aerial photos to map tiles (unpaired)"),
    _cyclegan("map2sat", "cyclegan/maps", "BtoA", "map tiles to aerial photos (unpaired)"),
    _cyclegan("facades_photo2label", "cyclegan/facades", "AtoB",
              "facade photos to label maps (unpaired)"),
    _cyclegan("facades_label2photo", "cyclegan/facades", "BtoA",
              "facade label maps to photos (unpaired)"),
    _cyclegan("iphone2dslr_flower", "iphone2dslr_flower", "AtoB",
              "iPhone flower photos to DSLR-like shallow depth of field"),
    _cyclegan("cityscapes_photo2label", "cyclegan/cityscapes", "AtoB",
              "street photos to label maps (unpaired)"),
    _cyclegan("cityscapes_label2photo", "cyclegan/cityscapes", "BtoA",
              "label maps to street photos (unpaired)"),
)}

PRETRAINED = {**PIX2PIX_MODELS, **CYCLEGAN_MODELS}
# The plain names of the CycleGAN models that do not clash with a pix2pix model.
PRETRAINED.update({spec.file_stem: spec for spec in CYCLEGAN_MODELS.values()
                   if spec.file_stem not in PIX2PIX_MODELS})


def pretrained_names():
    """The --pretrained names, sorted (plain names and cyclegan/ names)."""
    return sorted(PRETRAINED)
