"""SimGAN-style and feature-loss baselines: one GAN whose output must stay close to its input.

Shrivastava, Pfister, Tuzel, Susskind, Wang, Webb. "Learning from Simulated and Unsupervised
Images through Adversarial Training", CVPR 2017; as the CycleGAN paper (Zhu et al. 2017,
section 5.1.2) uses it for unpaired translation:

    L = lambda_gan * L_GAN(G, D) + lambda_reg * |phi(G(a)) - phi(a)|_1
        [+ lambda_feature * (--feature_loss of G(a) against b in D's hidden features)]

G translates domain A to B; D judges domain B (real b against G(a)), updated from a history
of past fakes (SimGAN's "history of refined images", the image pool CycleGAN took from it).
phi is the identity for `regularization=pixel` (SimGAN's self-regularization: the CycleGAN
paper's "SimGAN" baseline) and a feature map for `regularization=features` (the paper's
"Feature loss + GAN" baseline, with VGG-16 features). VGG weights cannot be fetched where
tfi2i is built, so phi here is the FID Inception network's `mixed_2` block (35 x 35 x 288 on
the 299 px resize, the standard FID weights tfi2i already loads), and the L1 distance is a
mean over its elements. Say so when comparing with the paper's numbers.

The networks are CycleGAN's (ResNet generator, 70x70 PatchGAN, instance norm, LSGAN), so that
the comparison with CycleGAN changes the objective only, as in the paper. Options the paper
does not state are ours: lambda_reg 10 (the cycle weight of CycleGAN).
"""

import types

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (FEATURE_OPTIONS, GAN_MODE, INIT_GAIN, INIT_TYPE,
                                   LAMBDA_GAN, LAMBDA_GP, N_LAYERS_D, NDF, NETD, NETG, NGF,
                                   NORM, POOL_SIZE, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import check_size, define_D, define_G, size_divisor, with_features
from tfi2i.options import Option
from tfi2i.training.pool import ImagePool

_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")
# The FID Inception block whose activations are the "features" distance.
FEATURE_LAYER = "layers__mixed_2__concat"


def inception_features(weights=None):
    """phi for regularization=features: FID Inception up to `mixed_2`, frozen.

    Takes images in [-1, 1] (RGB), returns [batch, 35, 35, 288] float32 activations.
    """
    from tfi2i.metrics.inception import build_fid_inception

    inception = build_fid_inception(weights)
    trunk = keras.Model(inception.inputs, inception.get_layer(FEATURE_LAYER).output,
                        name="inception_mixed_2")
    trunk.trainable = False

    def phi(images):
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:
            images = tf.repeat(images, 3, axis=-1)
        return tf.cast(trunk((images + 1.0) * 127.5, training=False), tf.float32)

    return phi


@register("simgan")
@keras.saving.register_keras_serializable(package="tfi2i")
class SimGAN(TranslationModel):
    """The SimGAN-style baseline as a Keras model: `compile(g_optimizer, d_optimizer)`, `fit`.

    `fit` takes unpaired (A, B) batches in [-1, 1], like CycleGAN. One training step: G's
    update on lambda_gan * GAN + lambda_reg * regularization, then D's on real b and a fake
    from the pool (its loss halved), both on the fakes of the same forward pass.

    Logged per step: G (adversarial term), reg (the plain distance |phi(G(a)) - phi(a)|_1),
    g_loss (the weighted sum), D and d_loss. Validation: l1_AtoB = |G(a) - a|_1.

    `regularization=features` builds the FID Inception network (the standard weights must be
    in the cache: `python -m tfi2i.metrics.weights --fetch`); it is frozen and kept out of
    checkpoints and exports.
    """

    paired = False
    optimizer_groups = ("g", "d")
    options = (
        NETG.with_default("resnet_9blocks"), NETD, INPUT_NC, OUTPUT_NC, NGF, NDF, N_LAYERS_D,
        NORM.with_default("instance"), USE_DROPOUT.with_default(False), INIT_TYPE, INIT_GAIN,
        GAN_MODE.with_default("lsgan"),
        Option("regularization", str, "pixel", "What must stay close to the input: pixel "
               "(SimGAN's self-regularization) or features (FID Inception mixed_2 "
               "activations: the CycleGAN paper's feature loss + GAN baseline).",
               choices=("pixel", "features")),
        Option("lambda_reg", float, 10.0, "Weight of the regularization term.", min=0.0),
        LAMBDA_GAN,
        *FEATURE_OPTIONS,
        POOL_SIZE,
        LAMBDA_GP,
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        nets = dict(norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain)
        self.G = define_G(hp.netG, hp.input_nc, hp.output_nc, hp.ngf,
                          use_dropout=hp.use_dropout, name="G", **nets)
        self.D = define_D(hp.netD, hp.output_nc, hp.ndf, n_layers_D=hp.n_layers_D, name="D",
                          **nets)
        if hp.feature_loss != "none":
            # The same D, also returning its hidden features (no copied weights).
            self.D_features = with_features(self.D)
        self.fake_pool = ImagePool(hp.pool_size, seed=hp.seed, name="fake_pool")
        # The frozen feature net stays out of Keras's tracking (not in checkpoints).
        self._frozen = types.SimpleNamespace(phi=None)
        names = (["G", "reg"] + (["feat"] if hp.feature_loss != "none" else [])
                 + ["g_loss", "D", "d_loss"] + (["gp"] if hp.gan_mode == "wgangp" else []))
        self.train_names = names
        self.test_names = ["l1_AtoB"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names + self.test_names}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan":
            raise UserError("--gan_mode=wgan does not fit simgan, which has no weight "
                            "clipping: use lsgan, vanilla, wgangp or hinge.")

    def group_variables(self, group):
        return {"g": self.G, "d": self.D}[group].trainable_variables

    def call(self, inputs, training=False):
        return tf.cast(self.G(inputs, training=training), tf.float32)

    def build_for_size(self, height, width):
        check_size(self.hp.netG, height, width)
        self.G(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.build_discriminators(height, width)
        self.fake_pool.build((height, width, self.hp.output_nc))
        self.built = True

    def build_discriminators(self, height, width):
        self.D(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    def phi(self, images):
        """The regularization's view of images: the pixels, or Inception features."""
        if self.hp.regularization == "pixel":
            return images
        if self._frozen.phi is None:
            self._frozen.phi = inception_features()
        return self._frozen.phi(images)

    def generator_losses(self, real_A, real_B, training=True):
        """({G, reg, g_loss} (and feat with a feature_loss): [batch] tensors, fake_B).

        feat is the --feature_loss of G(a) against real b in D's hidden features.
        """
        hp = self.hp
        fake_B = self.G(real_A, training=training)
        terms = {}
        if hp.feature_loss == "none":
            logits = self.D(fake_B, training=training)
        else:
            logits, fake_features = self.D_features(fake_B, training=training)
            _, real_features = self.D_features(real_B, training=training)
            terms["feat"] = losses.feature_loss(hp.feature_loss, real_features, fake_features,
                                                hp.mmd_kernel)
        terms["G"] = losses.gan_loss(hp.gan_mode, logits, True, for_discriminator=False)
        # Pixels: 1-channel and 3-channel domains broadcast against each other.
        terms["reg"] = losses.l1_loss(self.phi(fake_B), self.phi(real_A))
        terms["g_loss"] = hp.lambda_gan * terms["G"] + hp.lambda_reg * terms["reg"]
        if hp.feature_loss != "none":
            terms["g_loss"] += hp.lambda_feature * terms["feat"]
        return terms, fake_B

    def train_step(self, data):
        real_A, real_B = data
        with tf.GradientTape() as g_tape:
            g_terms, fake_B = self.generator_losses(real_A, real_B)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        if self.hp.lambda_gan == 0 and self.hp.feature_loss == "none":
            return self._update_trackers(g_terms)  # Nothing needs D.
        fake = self.fake_pool.query(tf.stop_gradient(fake_B))
        with tf.GradientTape() as d_tape:
            d_loss, gp = losses.discriminator_loss(self.hp.gan_mode, self.D, real_B, fake,
                                                   lambda_gp=self.hp.lambda_gp)
            d_terms = {"D": d_loss, "d_loss": d_loss, **({"gp": gp} if gp is not None else {})}
            d_scalar = self.average(d_terms["d_loss"])
        self.apply("d", d_tape, d_scalar)
        return self._update_trackers({**g_terms, **d_terms})

    def test_step(self, data):
        real_A, _ = data
        return self._update_trackers(
            {"l1_AtoB": losses.l1_loss(self.G(real_A, training=False), real_A)})

    @property
    def generators(self):
        return {self.hp.direction: self.G}

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    def sample_images(self, batch):
        """Rows a | G(a) | a b-image of the other domain (what G should look like)."""
        real_A, real_B = batch
        fake_B = self.G(real_A, training=False)
        n = tf.minimum(tf.shape(real_A)[0], tf.shape(real_B)[0])
        return self.image_grid([[real_A[:n], fake_B[:n], real_B[:n]]])
