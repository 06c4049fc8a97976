"""DualGAN: unsupervised dual learning for image-to-image translation.

Yi, Zhang, Tan, Gong. "DualGAN: Unsupervised Dual Learning for
Image-to-Image Translation", ICCV 2017.

    l_d(A) = D_A(G_B(b)) - D_A(a)            l_d(B) = D_B(G_A(a)) - D_B(b)
    l_g    = lambda_A * |a - G_B(G_A(a))|_1 + lambda_B * |b - G_A(G_B(b))|_1
             - D_A(G_B(b)) - D_B(G_A(a))

G_A translates domain A to B (the paper's primal G_A: U -> V), G_B
translates B to A (its dual G_B). As in tfi2i's CycleGAN, D_A judges domain
A (real a against G_B(b)) and D_B judges domain B (real b against G_A(a)).
The paper names its critics after the generator they judge: its D_A judges
G_A's outputs (domain V), so the paper's D_A is our D_B and its D_B our D_A;
the authors' code does the same (its A_d_net judges A2B). lambda_A is the
paper's lambda_U (the reconstruction of a), lambda_B its lambda_V.

Defaults follow the paper (section 3 and the card in METHODS.md):

- U-Net generators (pix2pix's, batch norm, dropout 0.5 in the decoder
  blocks next to the innermost one: the paper's noise z) and 70x70
  PatchGAN critics without a sigmoid (their logits are the scores);
- Wasserstein critics with weight clipping (`gan_mode=wgan`,
  `clip_value=0.01`) and `n_critic=2` critic updates per generator update
  (the paper gives 2-4; 2 is its cheapest setting);
- RMSProp (rho 0.9, no momentum), lr 5e-5, batch 1 (the paper: 1-4), a
  constant learning rate; 45 epochs (the code's README runs; the paper
  gives no count): platform settings, set in configs/dualgan.json;
- lambda_A = lambda_B = 100: the paper sets them "within [100, 1000]"
  depending on the task (a natural-image domain takes the smaller weight);
  100 is the low end, for every task alike (we have no per-task values).

Options, not defaults:

- `gan_mode=wgangp`: a gradient penalty (`lambda_gp`) instead of clipping;
  no weight is clipped then. The penalty is computed through the critic's
  normalisation layers as they are: with batch norm and a batch larger than
  1 the examples of a batch mix (WGAN-GP advises no batch norm in critics:
  `--norm=instance`).
- The authors' TensorFlow code (github.com/duxingren14/DualGAN, model.py):
  sigmoid cross-entropy critics and one critic update then two generator
  updates on the same batch, lambda 20 (main.py's default and its README's
  runs), 256 px, RMSProp 5e-5 with decay 0.9:
  `--gan_mode=vanilla --n_critic=1 --g_steps=2 --lambda_A=20 --lambda_B=20`.
  Its critic losses are not halved, like ours. Its batch norm always runs in
  training mode and its dropout stays on at test time; here evaluation and
  exports use running statistics and no dropout (deterministic outputs).
- Any other `gan_mode` (lsgan, hinge) also trains; clipping is for wgan only.

One training step (`train_step`, all inside the one compiled function: the
critic and generator loops are unrolled Python loops, traced once):

1. Both generators run forward (`fake_B = G_A(a)`, `fake_A = G_B(b)`).
2. `n_critic` updates of D_A and D_B together (the "d" group), all on this
   step's batch and these fakes (the reference feeds one batch to all of a
   step's updates; the paper's algorithm draws a fresh batch per critic
   update, which a larger --batch_size approaches). With wgan, after each
   update every trainable critic variable is clipped to
   [-clip_value, clip_value]: conv kernels, biases and the normalisation
   layers' scales and offsets, as the WGAN reference clips every parameter
   of its critic. Batch norm's moving statistics are not parameters and are
   not clipped.
3. `g_steps` updates of G_A and G_B together (the "g" group), each against
   the critics as they are after step 2. The first reuses step 1's forward
   pass (the generators have not changed since); later ones run them again.

So one step is n_critic updates of the "d" optimizer and g_steps of the "g"
optimizer. `step` counts training steps (g iterations // g_steps). A
learning-rate schedule runs on each optimizer's own update count, so a
decaying `lr_policy` decays the critics' rate n_critic times (and the
generators' g_steps times) faster than the steps; the default policy is
constant, as in the paper.

Logged per step (`train_names`): D_A, D_B (the critic losses of the step's
last critic update, before that update), G_A, G_B (adversarial terms of the
last generator update), rec_A = |G_B(G_A(a)) - a|_1, rec_B (plain L1, not
weighted), g_loss (the weighted sum), d_loss = D_A + D_B, and gp_A, gp_B
with wgangp. For a Wasserstein critic, -D_A estimates the distance between
real and translated A images. Validation reports rec_A, rec_B and
l1_AtoB = |G_A(a) - a|_1, l1_BtoA = |G_B(b) - b|_1.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_A, LAMBDA_B, LAMBDA_GP,
                                   N_LAYERS_D, NDF, NETD, NETG, NGF, NORM, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import check_size, define_D, define_G, size_divisor
from tfi2i.options import Option

@register("dualgan")
@keras.saving.register_keras_serializable(package="tfi2i")
class DualGAN(TranslationModel):
    """DualGAN as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes a dataset of unpaired (A, B) batches in [-1, 1], e.g.
    `tfi2i.data.unpaired_dataset(...)`. Domain A has `input_nc` channels,
    domain B `output_nc`. As in CycleGAN, `direction` acts on the data (with
    BtoA the dataset's B images are the method's domain A), calling the model
    runs G_A, and `generators` names the generators by the data's direction:
    {direction: G_A, the reverse: G_B}, G_A first (the default of exports).
    The update schedule, the clipping and what is logged are described in
    the module docstring (`tfi2i.methods.dualgan`).
    """

    paired = False
    bidirectional = True
    # Generators first: `step` counts the generators' updates (per g_steps).
    optimizer_groups = ("g", "d")
    options = (
        NETG.with_default("unet_256"), NETD, INPUT_NC, OUTPUT_NC, NGF, NDF, N_LAYERS_D,
        NORM.with_default("batch"), USE_DROPOUT.with_default(True), INIT_TYPE, INIT_GAIN,
        GAN_MODE.with_default("wgan"),
        LAMBDA_A.with_default(100.0),
        LAMBDA_B.with_default(100.0),
        Option("clip_value", float, 0.01, "WGAN weight clipping (--gan_mode=wgan): every "
               "trainable critic variable is clipped to [-clip_value, clip_value] after each "
               "critic update.", min=0.0),
        Option("n_critic", int, 2, "Critic updates per training step, before the generator "
               "update(s); unrolled in the compiled step.", min=1, max=20),
        Option("g_steps", int, 1, "Generator updates per training step, after the critic "
               "updates (the DualGAN code: 2, with --n_critic=1).", min=1, max=20),
        LAMBDA_GP,
        DIRECTION,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        nets = dict(norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain)
        self.G_A = define_G(hp.netG, hp.input_nc, hp.output_nc, hp.ngf,
                            use_dropout=hp.use_dropout, name="G_A", **nets)
        self.G_B = define_G(hp.netG, hp.output_nc, hp.input_nc, hp.ngf,
                            use_dropout=hp.use_dropout, name="G_B", **nets)
        # Each critic judges images of its own domain; logits, no sigmoid.
        self.D_A = define_D(hp.netD, hp.input_nc, hp.ndf, n_layers_D=hp.n_layers_D, name="D_A",
                            **nets)
        self.D_B = define_D(hp.netD, hp.output_nc, hp.ndf, n_layers_D=hp.n_layers_D, name="D_B",
                            **nets)
        names = ["D_A", "G_A", "rec_A", "D_B", "G_B", "rec_B", "g_loss", "d_loss"]
        if hp.gan_mode == "wgangp":
            names += ["gp_A", "gp_B"]
        self.train_names = names
        self.test_names = ["rec_A", "rec_B", "l1_AtoB", "l1_BtoA"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(names + self.test_names)}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan" and options["clip_value"] <= 0:
            raise UserError("--gan_mode=wgan needs weight clipping to keep its critics "
                            "Lipschitz, but --clip_value=0: set --clip_value=0.01 (the paper), "
                            "or use --gan_mode=wgangp.")

    @property
    def clips(self):
        """Whether the critics' weights are clipped after each critic update."""
        return self.hp.gan_mode == "wgan"

    def group_variables(self, group):
        nets = {"g": (self.G_A, self.G_B), "d": (self.D_A, self.D_B)}[group]
        return [v for net in nets for v in net.trainable_variables]

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`) with G_A."""
        return tf.cast(self.G_A(inputs, training=training), tf.float32)

    # -- building ---------------------------------------------------------

    def build_for_size(self, height, width):
        """Creates every variable for height x width images."""
        check_size(self.hp.netG, height, width)
        self.G_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.G_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        self.D_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.D_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------

    def translations(self, real_A, real_B, training=True):
        """{fake_B: G_A(a), fake_A: G_B(b)}."""
        return {"fake_B": self.G_A(real_A, training=training),
                "fake_A": self.G_B(real_B, training=training)}

    def generator_losses(self, real_A, real_B, images=None, training=True):
        """The generators' objective l_g, per example.

        Args:
            real_A, real_B: unpaired batches of the two domains.
            images: `translations(real_A, real_B)` already computed, or None.
            training: the mode the networks run in.

        Returns:
            {G_A, G_B (adversarial), rec_A, rec_B (plain L1), g_loss (the
            weighted sum)}, each [batch].
        """
        hp = self.hp
        images = images or self.translations(real_A, real_B, training)
        fake_A, fake_B = images["fake_A"], images["fake_B"]
        gan = lambda logits: losses.gan_loss(hp.gan_mode, logits, True, for_discriminator=False)
        terms = {
            "G_A": gan(self.D_B(fake_B, training=training)),
            "G_B": gan(self.D_A(fake_A, training=training)),
            "rec_A": losses.l1_loss(self.G_B(fake_B, training=training), real_A),
            "rec_B": losses.l1_loss(self.G_A(fake_A, training=training), real_B),
        }
        terms["g_loss"] = (terms["G_A"] + terms["G_B"]
                           + hp.lambda_A * terms["rec_A"] + hp.lambda_B * terms["rec_B"])
        return terms

    def discriminator_losses(self, real_A, real_B, fake_A, fake_B):
        """The critics' objective l_d, per example (real and fake terms summed, not halved).

        Returns:
            {D_A, D_B, d_loss} (and gp_A, gp_B with wgangp, included in D_A, D_B
            with their weight lambda_gp).
        """
        return self.both_ways_discriminator_losses(real_A, real_B, fake_A, fake_B, halve=False)

    def clip_critics(self):
        """Clips every trainable critic variable to [-clip_value, clip_value].

        Works in a replica context too: the assignments go through the
        strategy's `update` (as the optimizers' own updates do), so mirrored
        copies stay equal.
        """
        c = self.hp.clip_value
        variables = [v.value if isinstance(v, keras.Variable) else v
                     for v in self.group_variables("d")]

        def clip(strategy, variables):
            for v in variables:
                strategy.extended.update(
                    v, lambda x: x.assign(tf.clip_by_value(x, -c, c)), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            clip, tf.distribute.get_strategy(), variables)

    def train_step(self, data):
        real_A, real_B = data
        hp = self.hp
        d_terms = g_terms = None
        for g_step in range(hp.g_steps):
            with tf.GradientTape() as g_tape:
                images = self.translations(real_A, real_B)
                if g_step == 0:
                    # The critics learn first, on these fakes; the tape is
                    # paused, so the G update below sees only its own terms.
                    with g_tape.stop_recording():
                        fake_A = tf.stop_gradient(images["fake_A"])
                        fake_B = tf.stop_gradient(images["fake_B"])
                        for _ in range(hp.n_critic):
                            with tf.GradientTape() as d_tape:
                                d_terms = self.discriminator_losses(real_A, real_B, fake_A,
                                                                    fake_B)
                                d_scalar = self.average(d_terms["d_loss"])
                            self.apply("d", d_tape, d_scalar)
                            if self.clips:
                                self.clip_critics()
                g_terms = self.generator_losses(real_A, real_B, images)
                g_scalar = self.average(g_terms["g_loss"])
            self.apply("g", g_tape, g_scalar)
        return self._update_trackers({**d_terms, **g_terms})

    def test_step(self, data):
        real_A, real_B = data
        return self._update_trackers(
            self.both_ways_validation(self.G_A, self.G_B, real_A, real_B))

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def step(self):
        """Training steps done: the generators' updates over g_steps per step."""
        return self.optimizers["g"].iterations // self.hp.g_steps

    @property
    def generators(self):
        return self.both_ways(self.G_A, self.G_B)

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    def sample_images(self, batch):
        """Rows real | translated | reconstructed: A rows, then B rows (gray shown as RGB)."""
        real_A, real_B = batch
        fake_B = self.G_A(real_A, training=False)
        fake_A = self.G_B(real_B, training=False)
        return self.image_grid([[real_A, fake_B, self.G_B(fake_B, training=False)],
                                [real_B, fake_A, self.G_A(fake_A, training=False)]])
