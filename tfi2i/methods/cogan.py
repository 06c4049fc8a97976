"""CoGAN baseline: coupled GANs that generate both domains from one noise vector.

Liu, Tuzel. "Coupled Generative Adversarial Networks", NIPS 2016; as the CycleGAN paper
(Zhu et al. 2017, section 5.1.2) uses it for unpaired translation.

Two GANs, one per domain, trained on unpaired data with the plain GAN objective:

    min_{G_A, G_B} max_{D_A, D_B}  L_GAN(G_A, D_A) + L_GAN(G_B, D_B),
    G_A(z), G_B(z) from ONE z ~ p(z)

and coupled only by weight sharing: the generators share their first layers (the
high-level structure of the image, decoded from z), the discriminators their last ones.
Sharing, not a loss, makes G_A(z) and G_B(z) the "same" scene in two domains. Nothing in
the objective pairs an input with an output; translation A -> B finds the z whose domain-A
image reconstructs the input and decodes it in domain B (the CoGAN and CycleGAN papers):

    z* = argmin_z |G_A(z) - a|_1,    translation = G_B(z*)

by `inversion_steps` gradient steps on z (Adam by default; the papers do not state the
optimizer or the step count: ours are 100 Adam steps of learning rate 0.05 from one
fixed-seed draw of the prior, keeping the best z seen; see `tfi2i.nets.cogan.invert`).
Measured on a small trained model (16 px blobs, z_dim 8): the held-out L1 goes from 0.284
at z0 to 0.094 / 0.078 / 0.074 / 0.072 after 25 / 50 / 100 / 200 Adam steps of 0.05
(0.3: 0.079 after 25, 0.071 after 200); plain gradient descent stalls near 0.15.

Paper vs reference code vs here (the paper and the authors' Caffe/PyTorch code are
recalled, not re-read here):
- Nets: DCGAN-style transposed convolutions from a 4 x 4 start with batch norm, tanh output
  (`tfi2i.nets.cogan`). The paper's nets use PReLU in both G and D; here G uses ReLU and D
  LeakyReLU 0.2, DCGAN's layout, which the CycleGAN paper's baseline does not specify.
- Sharing: the paper shares all generator layers but the last one and all discriminator
  layers but the first (its best setting for digits); `g_unshared_layers` and
  `d_unshared_layers` (default 1) set how many each domain keeps of its own.
- z: 100-dimensional, uniform in [-1, 1] (the paper; the PyTorch code draws N(0, 1):
  `z_dist=normal`).
- Loss: the vanilla (sigmoid cross-entropy) GAN of the paper; lsgan, hinge and wgangp are
  accepted. Each D loss is real + fake, not halved (the CoGAN code; CycleGAN halves it).
- Order: one update of both generators (the "g" group: the shared trunk and both heads),
  then one of both discriminators (the "d" group) on the fakes of the same forward pass, the
  order of CycleGAN's step (the CoGAN code updates D first). One z batch per step, drawn
  from a stateless generator seeded by (--seed, step), so a resumed run draws what an
  uninterrupted one would, and under MirroredStrategy each replica takes its rows of the
  global batch's draw (so two replicas equal one device).
- Both D's see their real and fake batches separately; the CoGAN code runs the shared
  layers once on both domains' batches concatenated (batch-norm statistics then mix the
  domains).
- Settings (configs/cogan.json): Adam 2e-4, betas (0.5, 0.999) (the paper), batch 64 (the
  PyTorch code; the paper says 128: recalled) and a constant learning rate.

The generators make crop_size x crop_size images only (a power of 2, >= 16). Translation
takes images of any size: they are resized to crop_size, inverted, and the result resized
back (bilinear, antialiased), so `size_divisor` is 1. Translation is slow next to a
feed-forward generator: each image costs `inversion_steps` forward and backward passes of
G_A.
"""

import types

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_GP, NDF, NGF, NORM
from tfi2i.methods.registry import register
from tfi2i.nets.cogan import (INVERSION_OPTIMIZERS, Z_DISTRIBUTIONS, check_cogan_size,
                              check_unshared, cogan_discriminators, cogan_generators,
                              latent_translator, sample_z)
from tfi2i.options import Option

_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")
# The image size is part of the architecture: the generators make crop_size images only.
_CROP_SIZE = next(o for o in PLATFORM_OPTIONS if o.name == "crop_size")


@register("cogan")
@keras.saving.register_keras_serializable(package="tfi2i")
class CoGAN(TranslationModel):
    """CoGAN as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes unpaired (A, B) batches in [-1, 1] of crop_size x crop_size images. As in
    CycleGAN, `direction` acts on the data: G_A makes the batch's first domain. `ngf` is the
    width of the generators' last hidden layer and `ndf` of the discriminators' first
    (DCGAN's convention; both double per resolution step, up to 8 x).

    Networks: `G_shared` (z -> features), `G_A_head`, `G_B_head`, and the generators `G_A`,
    `G_B` made of them; `D_A_head`, `D_B_head`, `D_shared` and `D_A`, `D_B`. `generators`
    is {direction: A -> B translator, reverse: B -> A translator}, keras Models on images
    of any size that run the latent inversion inside their graph (so they trace, export and
    serve like any generator).

    Logged per step: G_A, G_B (adversarial terms), g_loss = G_A + G_B, D_A, D_B (real +
    fake, + lambda_gp * gp with wgangp), d_loss = D_A + D_B (and gp_A, gp_B). Validation:
    rec_A = |G_A(z*) - a|_1 after inverting a (how well the coupled generator reaches real
    images, which bounds the translation), rec_B the same for b.
    """

    paired = False
    bidirectional = True
    optimizer_groups = ("g", "d")
    # Read by tfi2i-export (measured: the converter stops at ReluGrad, BroadcastGradientArgs
    # and the stateless random ops, none of them TFLite builtins).
    tflite_unsupported = (
        "cogan translates by gradient steps on the noise z inside the graph (the latent "
        "inversion), and the gradient ops that needs (ReluGrad, BroadcastGradientArgs) are not "
        "TFLite builtins; export a SavedModel (--format=savedmodel, the default) instead.")
    options = (
        INPUT_NC, OUTPUT_NC, _CROP_SIZE,
        Option("z_dim", int, 100, "Length of the noise vector z that both generators decode.",
               min=1),
        Option("z_dist", str, "uniform", "Prior of z: uniform in [-1, 1] (the paper) or "
               "normal N(0, 1) (the PyTorch code).", choices=Z_DISTRIBUTIONS),
        NGF, NDF, NORM, INIT_TYPE, INIT_GAIN,
        Option("g_unshared_layers", int, 1, "Last generator layers each domain has of its own "
               "(1: only the layer that makes pixels, the paper's); the others are shared.",
               min=1),
        Option("d_unshared_layers", int, 1, "First discriminator layers each domain has of "
               "its own (1: only the first convolution, the paper's); the rest and the logit "
               "are shared.", min=1),
        GAN_MODE.with_default("vanilla"),
        LAMBDA_GP,
        Option("inversion_steps", int, 100, "Gradient steps on z per translated image (0: "
               "the fixed start z0).", min=0),
        Option("inversion_lr", float, 0.05, "Step size of the inversion (Adam's learning "
               "rate, or plain gradient descent's on the per-pixel mean L1).", min=0.0),
        Option("inversion_optimizer", str, "adam", "Optimizer of the inversion: adam or gd "
               "(plain gradient descent).", choices=INVERSION_OPTIMIZERS),
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        nets = dict(norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain)
        g = cogan_generators(hp.crop_size, hp.z_dim, hp.input_nc, hp.output_nc, hp.ngf,
                             hp.g_unshared_layers, **nets)
        d = cogan_discriminators(hp.crop_size, hp.input_nc, hp.output_nc, hp.ndf,
                                 hp.d_unshared_layers, **nets)
        self.G_shared, self.G_A_head, self.G_B_head = g["shared"], g["head_A"], g["head_B"]
        self.G_A, self.G_B = g["G_A"], g["G_B"]
        self.D_A_head, self.D_B_head, self.D_shared = d["head_A"], d["head_B"], d["shared"]
        self.D_A, self.D_B = d["D_A"], d["D_B"]
        # The translators only read the generators' variables: kept out of Keras's tracking
        # (and so out of checkpoints), made on first use.
        self._untracked = types.SimpleNamespace(translators=None)
        names = ["G_A", "G_B", "g_loss", "D_A", "D_B", "d_loss"] + (
            ["gp_A", "gp_B"] if hp.gan_mode == "wgangp" else [])
        self.train_names = names
        self.test_names = ["rec_A", "rec_B"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names + self.test_names}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan":
            raise UserError("--gan_mode=wgan does not fit cogan, which has no weight "
                            "clipping: use vanilla, lsgan, hinge or wgangp.")
        check_cogan_size(options["crop_size"])
        check_unshared(options["crop_size"], options["g_unshared_layers"],
                       options["d_unshared_layers"])

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["preprocess"] in ("scale_width", "none"):
            raise UserError(
                f"--preprocess={config['preprocess']} gives training images of varying "
                f"sizes, but cogan's nets make and judge --crop_size={config['crop_size']} "
                "images only: use a cropping mode (resize_and_crop, crop, "
                "scale_width_and_crop).")

    def group_variables(self, group):
        nets = {"g": (self.G_shared, self.G_A_head, self.G_B_head),
                "d": (self.D_A_head, self.D_B_head, self.D_shared)}[group]
        return [v for net in nets for v in net.trainable_variables]

    # -- translation --------------------------------------------------------

    def translator(self, source):
        """The translator from domain `source` ("A" or "B") to the other one."""
        if self._untracked.translators is None:
            hp = self.hp
            inversion = dict(z_dim=hp.z_dim, steps=hp.inversion_steps, lr=hp.inversion_lr,
                             optimizer=hp.inversion_optimizer, z_dist=hp.z_dist, seed=hp.seed)
            self._untracked.translators = {
                "A": latent_translator(self.G_A, self.G_B, hp.crop_size, hp.input_nc,
                                       "cogan_A_to_B", **inversion),
                "B": latent_translator(self.G_B, self.G_A, hp.crop_size, hp.output_nc,
                                       "cogan_B_to_A", **inversion)}
        return self._untracked.translators[source]

    def inversion(self, source):
        """The `LatentTranslator` layer of `translator(source)` (its `invert`, `resized`)."""
        return self.translator(source).layers[-1]

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`): G_B(z*), z* inverting G_A."""
        return self.translator("A")(inputs)

    # -- building -----------------------------------------------------------

    def build_for_size(self, height, width):
        """Checks the size; the nets are built with the model (crop_size is theirs)."""
        size = self.hp.crop_size
        if (height, width) != (size, size):
            raise UserError(f"cogan's nets were made for {size} x {size} images "
                            f"(--crop_size={size}); got {height} x {width}.")
        self.built = True

    # -- the objective ------------------------------------------------------

    def noise(self, batch_size):
        """This step's z for this replica: its rows of one draw for the global batch."""
        context = tf.distribute.get_replica_context()
        replicas, replica = 1, 0
        if context is not None:
            replicas, replica = context.num_replicas_in_sync, context.replica_id_in_sync_group
        step = tf.cast(self.optimizers["g"].iterations, tf.int64)
        # Offset by one: seed (s, 0) is the inversion's start.
        seed = tf.stack([tf.constant(self.hp.seed, tf.int64), step + 1])
        z = sample_z([batch_size * replicas, self.hp.z_dim], self.hp.z_dist, seed)
        start = tf.cast(replica, tf.int32) * batch_size
        return z[start:start + batch_size]

    def generate(self, z, training=True):
        """(G_A(z), G_B(z)), the shared trunk run once."""
        features = self.G_shared(z, training=training)
        return (tf.cast(self.G_A_head(features, training=training), tf.float32),
                tf.cast(self.G_B_head(features, training=training), tf.float32))

    def generator_losses(self, z, training=True):
        """({G_A, G_B, g_loss}: [batch] tensors, (fake_A, fake_B))."""
        gan = lambda logits: losses.gan_loss(self.hp.gan_mode, logits, True,
                                             for_discriminator=False)
        fake_A, fake_B = self.generate(z, training=training)
        terms = {"G_A": gan(self.D_A(fake_A, training=training)),
                 "G_B": gan(self.D_B(fake_B, training=training))}
        terms["g_loss"] = terms["G_A"] + terms["G_B"]
        return terms, (fake_A, fake_B)

    def discriminator_losses(self, real_A, real_B, fake_A, fake_B):
        """{D_A, D_B, d_loss} (and gp_A, gp_B): each D's real + fake loss."""
        return self.both_ways_discriminator_losses(real_A, real_B, fake_A, fake_B, halve=False)

    def train_step(self, data):
        real_A, real_B = data
        z = self.noise(tf.shape(real_A)[0])
        with tf.GradientTape() as g_tape:
            g_terms, (fake_A, fake_B) = self.generator_losses(z)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        with tf.GradientTape() as d_tape:
            d_terms = self.discriminator_losses(real_A, real_B, tf.stop_gradient(fake_A),
                                                tf.stop_gradient(fake_B))
            d_scalar = self.average(d_terms["d_loss"])
        self.apply("d", d_tape, d_scalar)
        return self._update_trackers({**g_terms, **d_terms})

    def test_step(self, data):
        real_A, real_B = data
        values = {}
        for name, source, real in (("rec_A", "A", real_A), ("rec_B", "B", real_B)):
            layer = self.inversion(source)
            values[name] = layer.invert(layer.resized(real))["rec"]
        return self._update_trackers(values)

    # -- hooks for the trainer and the exporter ------------------------------

    @property
    def generators(self):
        return self.both_ways(self.translator("A"), self.translator("B"))

    @property
    def size_divisor(self):
        # The translators resize any input to crop_size themselves.
        return 1

    def sample_images(self, batch):
        """Rows a | G_A(z*) | G_B(z*) (z* inverts a), b | G_B(z*) | G_A(z*), and pairs
        G_A(z) | G_B(z) | gray for fixed random z (what the coupling makes of noise)."""
        real_A, real_B = batch
        n = tf.minimum(tf.shape(real_A)[0], tf.shape(real_B)[0])
        rows = []
        for source, real, same, other in (("A", real_A, self.G_A, self.G_B),
                                          ("B", real_B, self.G_B, self.G_A)):
            layer = self.inversion(source)
            real = layer.resized(real)[:n]
            z = layer.invert(real)["z"]
            rows.append([real, same(z, training=False), other(z, training=False)])
        z = sample_z(tf.stack([n, self.hp.z_dim]), self.hp.z_dist,
                     tf.constant([self.hp.seed, -1], tf.int64))
        fake_A = self.G_A(z, training=False)
        rows.append([fake_A, self.G_B(z, training=False), tf.zeros_like(fake_A)])
        return self.image_grid(rows)
