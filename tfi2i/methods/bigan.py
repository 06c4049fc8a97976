"""BiGAN / ALI baseline: a generator and an encoder trained against one discriminator of pairs.

Donahue, Kraehenbuehl, Darrell. "Adversarial Feature Learning", ICLR 2017 (BiGAN), and
Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky, Courville. "Adversarially Learned
Inference", ICLR 2017 (ALI); as the CycleGAN paper (Zhu et al. 2017, section 5.1.2) uses them
for unpaired translation: "Though originally designed for mapping a latent vector z to an
image x, we implemented the same objective for mapping a source image x to a target image y."

So the code space is domain A itself. Names here, against the papers' and the issue's:

- G: A -> B is BiGAN's generator (code z = a, image x = G(a)), ALI's decoder G_x;
- E: B -> A is BiGAN's encoder (E(b) is the code of image b), ALI's encoder G_z;
- D judges (image, code) pairs: the "data" pair (b, E(b)) against the "generated" pair
  (G(a), a); its input is the channel concatenation [image, code] (output_nc + input_nc
  channels), as pix2pix's conditional D sees [input, output].

The issue's "translation = G_B(E_A(x))" reads E_A as the encoder of an A image into the code
space and G_B as the generator of B images: with the code space being domain A, E_A is the
identity and G_B is G, so A -> B is G(a) and B -> A is E(b) (`generators` exports both).

    min_{G,E} max_D  E_b[log D(b, E(b))] + E_a[log(1 - D(G(a), a))]

D minimises the halved loss (the reference convention of pix2pix and CycleGAN)
0.5 * (L_GAN(D(b, E(b)), real) + L_GAN(D(G(a), a), fake)); G and E together minimise the
same loss with the labels swapped, the non-saturating form BiGAN trains with:
L_GAN(D(G(a), a), real) + L_GAN(D(b, E(b)), fake) (logged as G and E). There is no
reconstruction term: at the optimum E inverts G (BiGAN's theorem), which is what the
validation numbers rec_A = |E(G(a)) - a|_1 and rec_B = |G(E(b)) - b|_1 watch.

Choices, ours where the papers do not fix them for images-as-codes:
- The networks are CycleGAN's (ResNet generators for G and E, 70x70 PatchGAN, instance norm),
  so that the comparison with CycleGAN changes the objective only, as in the paper; the
  PatchGAN judges local (image, code) patches, not whole pairs.
- gan_mode vanilla (BiGAN's and ALI's cross-entropy); lsgan, hinge and wgangp work too (with
  wgangp the penalty is on interpolates of the whole pair, image and code). wgan is refused:
  there is no weight clipping.
- No image history pool: both of D's pairs carry a network output (E(b) in the data pair,
  G(a) in the generated one), so a pool of past generated pairs alone would let D tell the
  pairs apart by their age rather than by their joint distribution; BiGAN and ALI use none.
- One train step: one update of G and E together (one optimizer, the "g" group, as BiGAN's
  joint generator/encoder update), then one of D (the "d" group) on the pairs of the same
  forward pass, made before the G/E update (CycleGAN's order). There is no lambda_gan: the
  adversarial loss is the whole objective, and its weight would only be a learning rate.
- `--feature_loss=fm|mmd` adds lambda_feature * the distance between the generated and the
  data pairs in D's hidden features (logged as feat); it reaches G through the generated
  pair and E through the data pair.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (FEATURE_OPTIONS, GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_GP,
                                   N_LAYERS_D, NDF, NETD, NETG, NGF, NORM, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import check_size, define_D, define_G, size_divisor, with_features

_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")


def pair(image, code):
    """D's input: the (image, code) pair as one tensor, [image, code] on the channel axis."""
    return tf.concat([tf.cast(image, tf.float32), tf.cast(code, tf.float32)], axis=-1)


@register("bigan")
@keras.saving.register_keras_serializable(package="tfi2i")
class BiGAN(TranslationModel):
    """The BiGAN/ALI baseline as a Keras model: `compile(g_optimizer, d_optimizer)`, `fit`.

    `fit` takes unpaired (A, B) batches in [-1, 1], like CycleGAN; `direction` acts on the
    data as there (with BtoA the dataset's B images are the method's domain A, the codes).
    Calling the model runs G (A -> B); `generators` is {direction: G, reverse: E}.

    Logged per step (`train_names`): G = L_GAN(D(G(a), a), real) and E = L_GAN(D(b, E(b)),
    fake) (the generator's and the encoder's adversarial terms), g_loss = G + E, D (the
    halved D loss, plus lambda_gp * gp with wgangp) and d_loss = D. Validation
    (`test_names`): rec_A = |E(G(a)) - a|_1, rec_B = |G(E(b)) - b|_1 (how far E inverts
    G) and l1_AtoB = |G(a) - a|_1, l1_BtoA = |E(b) - b|_1 (how far each translation moved
    its input).
    """

    paired = False
    bidirectional = True
    # G and E share one optimizer (BiGAN's joint update), D has the other; "g" first, so
    # that one train step is one step.
    optimizer_groups = ("g", "d")
    options = (
        NETG.with_default("resnet_9blocks"), NETD, INPUT_NC, OUTPUT_NC, NGF, NDF, N_LAYERS_D,
        NORM.with_default("instance"), USE_DROPOUT.with_default(False), INIT_TYPE, INIT_GAIN,
        GAN_MODE.with_default("vanilla"),
        *FEATURE_OPTIONS,
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
        self.E = define_G(hp.netG, hp.output_nc, hp.input_nc, hp.ngf,
                          use_dropout=hp.use_dropout, name="E", **nets)
        # One D of (image, code) pairs: a B image beside an A code.
        self.D = define_D(hp.netD, hp.output_nc + hp.input_nc, hp.ndf, n_layers_D=hp.n_layers_D,
                          name="D", **nets)
        if hp.feature_loss != "none":
            # The same D, also returning its hidden features (no copied weights).
            self.D_features = with_features(self.D)
        names = (["G", "E"] + (["feat"] if hp.feature_loss != "none" else [])
                 + ["g_loss", "D", "d_loss"] + (["gp"] if hp.gan_mode == "wgangp" else []))
        self.train_names = names
        self.test_names = ["rec_A", "rec_B", "l1_AtoB", "l1_BtoA"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names + self.test_names}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan":
            raise UserError("--gan_mode=wgan does not fit bigan, which has no weight "
                            "clipping: use vanilla, lsgan, hinge or wgangp.")

    def group_variables(self, group):
        nets = {"g": (self.G, self.E), "d": (self.D,)}[group]
        return [v for net in nets for v in net.trainable_variables]

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`) with G."""
        return tf.cast(self.G(inputs, training=training), tf.float32)

    # -- building ---------------------------------------------------------

    def build_for_size(self, height, width):
        """Creates every variable for height x width images."""
        check_size(self.hp.netG, height, width)
        self.G(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.E(tf.zeros([1, height, width, self.hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        self.D(tf.zeros([1, height, width, self.hp.output_nc + self.hp.input_nc]),
               training=False)

    # -- the objective ------------------------------------------------------

    def _fool(self, logits, target_is_real):
        """G's and E's side of the loss: D's label for the pair swapped, non-saturating."""
        if self.hp.gan_mode == "hinge":
            # The hinge loss's generator form, -D, for the pair D should call real; +D for
            # the one it should call fake (tfi2i.losses has the first only).
            return losses.gan_loss("wgan", logits, target_is_real)
        return losses.gan_loss(self.hp.gan_mode, logits, target_is_real,
                               for_discriminator=False)

    def generator_losses(self, real_A, real_B, training=True):
        """G's and E's objective, per example.

        Returns:
            (terms, pairs): terms maps G, E (the adversarial terms of the generated and the
            data pair) and g_loss = G + E to [batch] tensors; pairs maps fake (G(a), a)
            and real (b, E(b)), D's inputs.
        """
        fake_B = self.G(real_A, training=training)
        code_B = self.E(real_B, training=training)
        pairs = {"fake": pair(fake_B, real_A), "real": pair(real_B, code_B)}
        hp = self.hp
        if hp.feature_loss == "none":
            fake_logits = self.D(pairs["fake"], training=training)
            real_logits = self.D(pairs["real"], training=training)
        else:
            fake_logits, fake_features = self.D_features(pairs["fake"], training=training)
            real_logits, real_features = self.D_features(pairs["real"], training=training)
        terms = {"G": self._fool(fake_logits, True), "E": self._fool(real_logits, False)}
        terms["g_loss"] = terms["G"] + terms["E"]
        if hp.feature_loss != "none":
            terms["feat"] = losses.feature_loss(hp.feature_loss, real_features, fake_features,
                                                hp.mmd_kernel)
            terms["g_loss"] += hp.lambda_feature * terms["feat"]
        return terms, pairs

    def discriminator_losses(self, real_pair, fake_pair):
        """D's objective, per example: {D, d_loss} (and gp with wgangp), halved."""
        d_loss, gp = losses.discriminator_loss(self.hp.gan_mode, self.D, real_pair, fake_pair,
                                               lambda_gp=self.hp.lambda_gp)
        return {"D": d_loss, "d_loss": d_loss, **({"gp": gp} if gp is not None else {})}

    def train_step(self, data):
        real_A, real_B = data
        # 1. G and E, one update. D runs inside the tape, but only G's and E's variables
        # are in the "g" group's gradient.
        with tf.GradientTape() as g_tape:
            g_terms, pairs = self.generator_losses(real_A, real_B)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        # 2. D, one update, on the pairs made before the G/E update.
        real_pair = tf.stop_gradient(pairs["real"])
        fake_pair = tf.stop_gradient(pairs["fake"])
        with tf.GradientTape() as d_tape:
            d_terms = self.discriminator_losses(real_pair, fake_pair)
            d_scalar = self.average(d_terms["d_loss"])
        self.apply("d", d_tape, d_scalar)
        return self._update_trackers({**g_terms, **d_terms})

    def test_step(self, data):
        real_A, real_B = data
        return self._update_trackers(
            self.both_ways_validation(self.G, self.E, real_A, real_B))

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def generators(self):
        return self.both_ways(self.G, self.E)

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    def sample_images(self, batch):
        """Rows a | G(a) | E(G(a)), then b | E(b) | G(E(b)): translation and inversion."""
        real_A, real_B = batch
        fake_B = self.G(real_A, training=False)
        code_B = self.E(real_B, training=False)
        return self.image_grid([[real_A, fake_B, self.E(fake_B, training=False)],
                                [real_B, code_B, self.G(code_B, training=False)]])
