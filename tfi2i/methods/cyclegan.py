"""CycleGAN: unpaired image-to-image translation with cycle consistency.

Zhu, Park, Isola, Efros. "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017.

    L = lambda_gan * (L_GAN(G_A, D_B) + L_GAN(G_B, D_A))
        + lambda_A * |G_B(G_A(a)) - a|_1 + lambda_B * |G_A(G_B(b)) - b|_1
        + lambda_identity * (lambda_B * |G_A(b) - b|_1 + lambda_A * |G_B(a) - a|_1)
        [+ lambda_feature * (feature loss of D_B on b vs G_A(a) + of D_A on a vs G_B(b))]

G_A translates domain A to B, G_B translates B to A (the paper's G and F).
D_A judges domain A (real a against G_B(b)), D_B judges domain B (real b
against G_A(a)): the paper's D_X and D_Y. The reference code names its
discriminators the other way round (its netD_A judges domain B, next to
G_A): our D_A is its netD_B and our D_B its netD_A.

Defaults follow the paper and the authors' code: ResNet generators (9
blocks; 6 at 128 px), instance norm, no dropout, 70x70 PatchGANs, LSGAN,
lambda_A = lambda_B = 10, identity weight 0.5 (relative to the cycle
weights), discriminators updated from a history pool of 50 fakes each.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (FEATURE_OPTIONS, GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_A,
                                   LAMBDA_B, LAMBDA_GAN, LAMBDA_GP, N_LAYERS_D, NDF, NETD, NETG, NGF, NORM,
                                   POOL_SIZE, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import check_size, define_D, define_G, size_divisor, with_features
from tfi2i.options import Option
from tfi2i.training.pool import ImagePool

# The run's --seed, declared by the platform: it also seeds the image pools'
# draws, so that a resumed run draws what an uninterrupted one would.
_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")


@register("cyclegan")
@keras.saving.register_keras_serializable(package="tfi2i")
class CycleGAN(TranslationModel):
    """CycleGAN as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes a dataset of unpaired (A, B) batches in [-1, 1], e.g.
    `tfi2i.data.unpaired_dataset(...)`: the i-th A and the i-th B image of a
    batch have nothing to do with each other. Domain A has `input_nc`
    channels, domain B `output_nc`. As in the reference, `direction` acts on
    the data: with BtoA the dataset's B images are fed as the method's domain
    A, so G_A always translates the first element of a batch, and calling the
    model runs G_A. `generators` names them by the dataset's direction:
    {direction: G_A, the reverse: G_B}, G_A first (the default of exports).

    One training step, in the order of the reference's `optimize_parameters`:
    both generators' forward passes, one update of G_A and G_B together (one
    optimizer, the "g" group), then one update of D_A and D_B together (the
    "d" group) on fakes drawn from the image pools (`fake_A_pool` for D_A,
    `fake_B_pool` for D_B), each D loss halved. The fakes the D step sees are
    the ones made before the G update, as in the reference.

    Logged per step (`train_names`): D_A, D_B (the halved D losses), G_A,
    G_B (adversarial terms), cycle_A = |G_B(G_A(a)) - a|_1, cycle_B,
    idt_A = |G_A(b) - b|_1, idt_B = |G_B(a) - a|_1 (0 when the identity loss
    is off), and the totals g_loss and d_loss. Unlike the reference's logs,
    cycle_* and idt_* are the plain L1 distances, not multiplied by their
    weights, so that they compare with validation's val_cycle_A/val_cycle_B;
    g_loss is the weighted sum. Validation (`test_names`) reports cycle_A,
    cycle_B and l1_AtoB = |G_A(a) - a|_1, l1_BtoA = |G_B(b) - b|_1 (how far
    each translation moved its input).

    The identity loss needs G_A to take B images, so it needs
    input_nc == output_nc, as the reference asserts: with different channel
    counts set lambda_identity=0 (a UserError says so otherwise).
    """

    paired = False
    bidirectional = True
    # Both generators share one optimizer, both discriminators another
    # (the reference's itertools.chain of their parameters).
    optimizer_groups = ("g", "d")
    options = (
        NETG.with_default("resnet_9blocks"), NETD, INPUT_NC, OUTPUT_NC, NGF, NDF, N_LAYERS_D,
        NORM.with_default("instance"), USE_DROPOUT.with_default(False), INIT_TYPE, INIT_GAIN,
        GAN_MODE.with_default("lsgan"),
        LAMBDA_GAN,
        LAMBDA_A,
        LAMBDA_B,
        Option("lambda_identity", float, 0.5, "Weight of the identity loss, relative to the "
               "cycle weights: |G_A(b) - b| gets lambda_identity * lambda_B, |G_B(a) - a| "
               "lambda_identity * lambda_A. Needs input_nc == output_nc; 0 turns it off.",
               min=0.0),
        POOL_SIZE,
        LAMBDA_GP,
        *FEATURE_OPTIONS,
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        nets = dict(norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain)
        self.G_A = define_G(hp.netG, hp.input_nc, hp.output_nc, hp.ngf,
                            use_dropout=hp.use_dropout, name="G_A", **nets)
        self.G_B = define_G(hp.netG, hp.output_nc, hp.input_nc, hp.ngf,
                            use_dropout=hp.use_dropout, name="G_B", **nets)
        # Each D judges images of its own domain (no condition, unlike pix2pix).
        self.D_A = define_D(hp.netD, hp.input_nc, hp.ndf, n_layers_D=hp.n_layers_D, name="D_A",
                            **nets)
        self.D_B = define_D(hp.netD, hp.output_nc, hp.ndf, n_layers_D=hp.n_layers_D, name="D_B",
                            **nets)
        # Built (with static image shapes) in build_for_size. Attributes of
        # the model, so that checkpoints of the model hold their contents.
        self.fake_A_pool = ImagePool(hp.pool_size, seed=2 * hp.seed, name="fake_A_pool")
        self.fake_B_pool = ImagePool(hp.pool_size, seed=2 * hp.seed + 1, name="fake_B_pool")

        names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B",
                 "g_loss", "d_loss"]
        if hp.gan_mode == "wgangp":
            names += ["gp_A", "gp_B"]
        if hp.feature_loss != "none":
            # Each D with its hidden activations, on the D's own weights.
            self.D_A_features = with_features(self.D_A)
            self.D_B_features = with_features(self.D_B)
            names += ["feat_A", "feat_B"]
        self.train_names = names
        self.test_names = ["cycle_A", "cycle_B", "l1_AtoB", "l1_BtoA"]
        # cycle_A/cycle_B are one tracker each for training and validation:
        # fit resets every tracker before each epoch and before validating.
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(names + self.test_names)}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan":
            raise UserError("--gan_mode=wgan does not fit cyclegan, which has no weight "
                            "clipping: use lsgan, vanilla, wgangp or hinge.")
        if options["lambda_identity"] > 0 and options["input_nc"] != options["output_nc"]:
            raise UserError(
                f"--lambda_identity={options['lambda_identity']} needs domains with the same "
                f"number of channels (the identity loss feeds B images to G_A), but "
                f"--input_nc={options['input_nc']} and --output_nc={options['output_nc']}: "
                "set --lambda_identity=0.")

    def group_variables(self, group):
        nets = {"g": (self.G_A, self.G_B), "d": (self.D_A, self.D_B)}[group]
        return [v for net in nets for v in net.trainable_variables]

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`) with G_A."""
        return tf.cast(self.G_A(inputs, training=training), tf.float32)

    # -- building ---------------------------------------------------------

    def build_for_size(self, height, width):
        """Creates every variable, the image pools' included, for height x width images."""
        check_size(self.hp.netG, height, width)
        hp = self.hp
        self.G_A(tf.zeros([1, height, width, hp.input_nc]), training=False)
        self.G_B(tf.zeros([1, height, width, hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        # The pools hold fakes: G_B's (domain A) and G_A's (domain B).
        self.fake_A_pool.build((height, width, hp.input_nc))
        self.fake_B_pool.build((height, width, hp.output_nc))
        self.built = True

    def build_discriminators(self, height, width):
        self.D_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.D_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------

    def generator_losses(self, real_A, real_B, training=True):
        """The generators' objective, per example.

        Args:
            real_A, real_B: unpaired batches of the two domains.
            training: the mode the networks run in.

        Returns:
            (terms, images): terms maps G_A, G_B (adversarial), cycle_A,
            cycle_B, idt_A, idt_B (plain L1; zeros when lambda_identity is 0),
            feat_A, feat_B (with a feature_loss: G_A's and G_B's fakes against
            real images in the hidden features of D_B and D_A) and g_loss (the
            weighted sum) to [batch] tensors; images maps
            fake_A, fake_B, rec_A, rec_B (and idt_A, idt_B when on).
        """
        hp = self.hp
        gan = lambda logits: losses.gan_loss(hp.gan_mode, logits, True, for_discriminator=False)
        fake_B = self.G_A(real_A, training=training)
        rec_A = self.G_B(fake_B, training=training)
        fake_A = self.G_B(real_B, training=training)
        rec_B = self.G_A(fake_A, training=training)
        images = {"fake_A": fake_A, "fake_B": fake_B, "rec_A": rec_A, "rec_B": rec_B}
        terms = {
            "cycle_A": losses.l1_loss(rec_A, real_A),
            "cycle_B": losses.l1_loss(rec_B, real_B),
        }
        if hp.feature_loss == "none":
            terms["G_A"] = gan(self.D_B(fake_B, training=training))
            terms["G_B"] = gan(self.D_A(fake_A, training=training))
        else:
            # feat_A: G_A's fakes against real B in D_B's features; feat_B the reverse.
            for name, gan_name, D, real, fake in (
                    ("feat_A", "G_A", self.D_B_features, real_B, fake_B),
                    ("feat_B", "G_B", self.D_A_features, real_A, fake_A)):
                logits, fake_features = D(fake, training=training)
                _, real_features = D(real, training=training)
                terms[gan_name] = gan(logits)
                terms[name] = losses.feature_loss(hp.feature_loss, real_features,
                                                  fake_features, hp.mmd_kernel)
        if hp.lambda_identity > 0:
            # G_A should leave an image that is already in B as it is.
            images["idt_A"] = self.G_A(real_B, training=training)
            images["idt_B"] = self.G_B(real_A, training=training)
            terms["idt_A"] = losses.l1_loss(images["idt_A"], real_B)
            terms["idt_B"] = losses.l1_loss(images["idt_B"], real_A)
        else:
            terms["idt_A"] = terms["idt_B"] = tf.zeros_like(terms["cycle_A"])
        terms["g_loss"] = (hp.lambda_gan * (terms["G_A"] + terms["G_B"])
                           + hp.lambda_A * terms["cycle_A"] + hp.lambda_B * terms["cycle_B"]
                           + hp.lambda_identity * (hp.lambda_B * terms["idt_A"]
                                                   + hp.lambda_A * terms["idt_B"]))
        if hp.feature_loss != "none":
            terms["g_loss"] += hp.lambda_feature * (terms["feat_A"] + terms["feat_B"])
        return terms, images

    def discriminator_losses(self, real_A, real_B, fake_A, fake_B):
        """The discriminators' objective, per example, on the given (pooled) fakes.

        Returns:
            {D_A, D_B, d_loss} (and gp_A, gp_B with wgangp): each D's loss
            is halved, (real + fake) / 2, as in the reference; d_loss = D_A + D_B.
        """
        return self.both_ways_discriminator_losses(real_A, real_B, fake_A, fake_B)

    def train_step(self, data):
        real_A, real_B = data
        # 1. Both generators, one update. D runs inside the tape, but only G
        # variables are in the "g" group's gradient.
        with tf.GradientTape() as g_tape:
            g_terms, images = self.generator_losses(real_A, real_B)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        if self.hp.lambda_gan == 0:
            # Nothing learns from the discriminators: leave them untrained.
            return self._update_trackers(g_terms)
        # 2. Both discriminators, one update, on pooled fakes made before the
        # G update (the reference's order). Each replica queries its own pool.
        fake_A = self.fake_A_pool.query(tf.stop_gradient(images["fake_A"]))
        fake_B = self.fake_B_pool.query(tf.stop_gradient(images["fake_B"]))
        with tf.GradientTape() as d_tape:
            d_terms = self.discriminator_losses(real_A, real_B, fake_A, fake_B)
            d_scalar = self.average(d_terms["d_loss"])
        self.apply("d", d_tape, d_scalar)
        return self._update_trackers({**d_terms, **g_terms})

    def test_step(self, data):
        real_A, real_B = data
        return self._update_trackers(self.both_ways_validation(
            self.G_A, self.G_B, real_A, real_B, rec_names=("cycle_A", "cycle_B")))

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def generators(self):
        return self.both_ways(self.G_A, self.G_B)

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    def sample_images(self, batch):
        """Rows real | translated | reconstructed (| identity): A rows, then B rows.

        An A row is a, G_A(a), G_B(G_A(a)) and, with the identity loss on,
        G_B(a) (which should look like a); a B row the same with the roles
        swapped.
        """
        real_A, real_B = batch
        fake_B = self.G_A(real_A, training=False)
        fake_A = self.G_B(real_B, training=False)
        row_A = [real_A, fake_B, self.G_B(fake_B, training=False)]
        row_B = [real_B, fake_A, self.G_A(fake_A, training=False)]
        if self.hp.lambda_identity > 0:
            row_A.append(self.G_B(real_A, training=False))
            row_B.append(self.G_A(real_B, training=False))
        return self.image_grid([row_A, row_B])
