"""DiscoGAN: unpaired translation by discovering cross-domain relations.

Kim, Cha, Kim, Lee, Kim. "Learning to Discover Cross-Domain Relations with
Generative Adversarial Networks", ICML 2017; the authors' code is
SKTBrain/DiscoGAN (`discogan/image_translation.py`, `discogan/model.py`).

G_AB translates domain A to B, G_BA B to A; D_A judges domain A, D_B domain B
(the reference's generator_B is our G_AB, its generator_A our G_BA). Per
direction, with r the curriculum rate:

    L_G_AB = (gan_weight * GAN(D_B(G_AB(a))) + fm_weight * FM(D_B; b, G_AB(a))) * (1 - r)
             + r * MSE(G_BA(G_AB(a)), a)
    L_G_BA = the same with A and B swapped;      L_G = L_G_AB + L_G_BA
    L_D = D_A + D_B, each (BCE(real) + BCE(fake)) / 2

What comes from where:
- Paper: two generators coupled by reconstruction, both directions, 64 x 64
  images; G an encoder-decoder of 4x4 convolutions (LeakyReLU) and 4x4
  transposed convolutions (ReLU), D the encoder plus one more 4x4
  convolution and a sigmoid; batch norm; Adam. The paper writes the objective
  as the plain sum of the GAN and reconstruction losses (any distance for
  the reconstruction). That objective is reachable with `gan_weight=1
  fm_weight=0 rate_before=0.5 rate_after=0.5` (half of the plain sum).
- Reference code, and our defaults wherever the paper is silent (the method
  card ../shared/METHODS.md lists them as DiscoGAN's): the 0.1 GAN + 0.9
  feature-matching mix, the curriculum (r = `rate_before` 0.01 for the first
  `curriculum_steps` 10k iterations, then `rate_after` 0.5), the MSE
  reconstruction, images in [0, 1], batch 64, Adam 2e-4 (0.5, 0.999) with
  PyTorch's coupled weight decay 1e-5 (configs/discogan.json), and the update
  schedule: one iteration updates either the discriminators (on iterations
  0, 3, 6, ...: `d_every` 3) or the generators (on the others), never both.
  `g_on_d_steps=True` also updates the generators on the discriminators'
  iterations (with `d_every=1` the usual one-G-one-D step).
- Ours: weights N(0, 0.02) (the reference leaves PyTorch's default init); the
  discriminators return logits and the loss applies the sigmoid (the same
  function, computed stably); the platform's random horizontal flip stays
  on (the reference resizes to 64 and does not flip; configs/discogan.json
  sets load_size = crop_size = 64, so nothing is cropped); translations at
  test time use the batch norms' moving statistics (what exports compute),
  while the reference never leaves training mode, so its test images use the
  test batch's statistics. Each generator runs twice per step (on real
  images and on the other generator's fakes), so its moving statistics mix
  both inputs, as the reference's running statistics do.

Images are in [0, 1] at the networks' boundary (sigmoid outputs), as in the
reference, while the data pipeline, exports and `tfi2i-translate` speak
[-1, 1]. The conversion lives in one place, the model's `to_unit` and
`to_signed` layers: `train_step` converts the real images once with
`to_unit` and computes every loss in [0, 1] (the MSE is the reference's);
`generators` (what export and translate use), `call`, `translate` and
`sample_images` go through `translators`, the nets wrapped between
`to_unit` and `to_signed`, which take and return [-1, 1].

The schedule counts iterations on `iteration`, a variable of the model saved
in its checkpoints, and the model's `step` is that counter: one train step is
one step, whichever group it updated, so the curriculum switch and the D/G
turn continue where they were after a resume. Both are decided inside the
compiled train step (tf.cond on the counter). The optimizers' own
`iterations` count their updates (G: 2 of every 3 steps by default), and an
LR schedule runs on those, so the defaults keep `lr_policy=constant`, as the
reference trains.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import INIT_GAIN, INIT_TYPE, NDF, NGF, NORM
from tfi2i.methods.registry import register
from tfi2i.nets.discogan import (DISCOGAN_SIZE_DIVISOR, check_discogan_size,
                                 discogan_discriminator, discogan_generator)
from tfi2i.options import Option


@register("discogan")
@keras.saving.register_keras_serializable(package="tfi2i")
class DiscoGAN(TranslationModel):
    """DiscoGAN as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes a dataset of unpaired (A, B) batches in [-1, 1] (e.g.
    `tfi2i.data.unpaired_dataset(...)`). Domain A has `input_nc` channels,
    domain B `output_nc`. As in CycleGAN, `direction` acts on the data: with
    BtoA the dataset's B images are the method's domain A, so G_AB always
    translates the first element of a batch, and `generators` is
    {direction: G_AB, the reverse: G_BA}, both taking and returning [-1, 1].

    One train step computes every term (as the reference's iteration does)
    and updates one group: the discriminators ("d") on the steps where
    `step % d_every == 0`, else the generators ("g"); with `g_on_d_steps`
    the generators are updated on every step, before the discriminators.

    Logged per step (`train_names`): GAN_AB, GAN_BA (the generators'
    adversarial BCE terms), FM_AB, FM_BA (feature matching against D_B and
    D_A), rec_A = MSE(G_BA(G_AB(a)), a), rec_B, D_A, D_B (halved BCE),
    g_loss, d_loss and rate (the curriculum's r this step); every term plain,
    in [0, 1] image units, unweighted. Validation (`test_names`): rec_A,
    rec_B, and l1_AtoB, l1_BtoA (how far each translation moved its input, in
    [-1, 1] units like the other methods' validation).
    """

    paired = False
    bidirectional = True
    # g first: model.step is overridden (the iteration counter), but the
    # generators are the group a user thinks of first.
    optimizer_groups = ("g", "d")
    options = (
        INPUT_NC, OUTPUT_NC, NGF, NDF,
        NORM.with_default("batch"), INIT_TYPE, INIT_GAIN,
        Option("gan_weight", float, 0.1, "Weight of the adversarial term inside the GAN part "
               "of each generator's loss (reference 0.1).", min=0.0),
        Option("fm_weight", float, 0.9, "Weight of the feature-matching term inside the GAN "
               "part of each generator's loss (reference 0.9).", min=0.0),
        Option("rate_before", float, 0.01, "Curriculum rate r before --curriculum_steps: the "
               "loss is (GAN part) * (1 - r) + r * reconstruction (reference starting_rate).",
               min=0.0, max=1.0),
        Option("rate_after", float, 0.5, "Curriculum rate r from --curriculum_steps on "
               "(reference default_rate).", min=0.0, max=1.0),
        Option("curriculum_steps", int, 10000, "Steps run at --rate_before before switching "
               "to --rate_after (reference gan_curriculum).", min=0),
        Option("d_every", int, 3, "The discriminators are updated on steps where step % "
               "d_every == 0, the generators on the others (reference update_interval).",
               min=1),
        Option("g_on_d_steps", bool, False, "Also update the generators on the "
               "discriminators' steps (then every step); the reference does not."),
        Option("rec_loss", str, "l2", "Reconstruction distance: l2 (MSE, the reference) or "
               "l1.", choices=tuple(losses.RECONSTRUCTION_LOSSES)),
        DIRECTION,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        nets = dict(init_type=hp.init_type, init_gain=hp.init_gain, norm=hp.norm)
        self.G_AB = discogan_generator(hp.input_nc, hp.output_nc, hp.ngf, name="G_AB", **nets)
        self.G_BA = discogan_generator(hp.output_nc, hp.input_nc, hp.ngf, name="G_BA", **nets)
        self.D_A = discogan_discriminator(hp.input_nc, hp.ndf, name="D_A", **nets)
        self.D_B = discogan_discriminator(hp.output_nc, hp.ndf, name="D_B", **nets)
        # The one place where [-1, 1] and [0, 1] meet. float32: under a mixed
        # policy the output of a translator stays full precision.
        self.to_unit = keras.layers.Rescaling(0.5, offset=0.5, dtype="float32", name="to_unit")
        self.to_signed = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32",
                                                name="to_signed")
        self.translator_AB = self._translator(self.G_AB, hp.input_nc, "translator_AB")
        self.translator_BA = self._translator(self.G_BA, hp.output_nc, "translator_BA")
        # Iterations done: the schedule's clock and the run's step (see the
        # module docstring). ONLY_FIRST_REPLICA, like an optimizer's
        # iterations, so replicas can add to it in a train step.
        self.iteration = keras.Variable(0, dtype="int64", trainable=False,
                                        aggregation="only_first_replica", name="iteration")

        self.train_names = ["GAN_AB", "GAN_BA", "FM_AB", "FM_BA", "rec_A", "rec_B", "D_A",
                            "D_B", "g_loss", "d_loss", "rate"]
        self.test_names = ["rec_A", "rec_B", "l1_AtoB", "l1_BtoA"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(self.train_names + self.test_names)}

    def _translator(self, net, channels, name):
        """`net` between the range conversions: [-1, 1] in, [-1, 1] out."""
        inputs = keras.Input(shape=(None, None, channels), name="image")
        return keras.Model(inputs, self.to_signed(net(self.to_unit(inputs))), name=name)

    @classmethod
    def check_options(cls, options):
        if options["d_every"] == 1 and not options["g_on_d_steps"]:
            raise UserError("--d_every=1 makes every step a discriminator step, so the "
                            "generators would never train: set --g_on_d_steps=true (one G and "
                            "one D update per step) or --d_every=2 or more.")
        if options["rate_before"] == 1.0 and options["rate_after"] == 1.0:
            raise UserError("--rate_before=1 and --rate_after=1 leave no adversarial term "
                            "in the generators' loss: use rates below 1 (the reference's are "
                            "0.01 and 0.5).")

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["preprocess"] in ("resize_and_crop", "crop", "scale_width_and_crop"):
            check_discogan_size(config["crop_size"], config["crop_size"])

    def group_variables(self, group):
        nets = {"g": (self.G_AB, self.G_BA), "d": (self.D_A, self.D_B)}[group]
        return [v for net in nets for v in net.trainable_variables]

    @property
    def step(self):
        """Train steps done (either group's), restored with the model on resume."""
        return self.iteration

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`): [-1, 1] in and out."""
        return self.translator_AB(inputs, training=training)

    # -- building ---------------------------------------------------------

    def build_for_size(self, height, width):
        check_discogan_size(height, width)
        self.translator_AB(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.translator_BA(tf.zeros([1, height, width, self.hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        self.D_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.D_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------

    def rate(self, step):
        """The curriculum rate r at `step` (steps done before this one, as the reference's
        `iters`): rate_before while step < curriculum_steps, then rate_after."""
        hp = self.hp
        return tf.where(tf.cast(step, tf.int64) < hp.curriculum_steps,
                        tf.constant(hp.rate_before, tf.float32),
                        tf.constant(hp.rate_after, tf.float32))

    def objective(self, real_A, real_B, rate, training=True):
        """Every term of one iteration, per example, on images in [0, 1].

        As in the reference, one forward pass serves both objectives: each D
        sees the real batch and the fake batch (separate calls, so separate
        batch-norm statistics); the generators' adversarial and
        feature-matching terms and the discriminators' losses come from those
        outputs.

        Args:
            real_A, real_B: unpaired batches in [0, 1].
            rate: the curriculum rate r (a scalar).
            training: the mode the networks run in.

        Returns:
            {name: [batch] tensor} for every name in `train_names`.
        """
        hp = self.hp
        rec = losses.reconstruction_loss(hp.rec_loss)
        fake_B = self.G_AB(real_A, training=training)
        fake_A = self.G_BA(real_B, training=training)
        rec_A = self.G_BA(fake_B, training=training)
        rec_B = self.G_AB(fake_A, training=training)
        logit_real_A, *feat_real_A = self.D_A(real_A, training=training)
        logit_fake_A, *feat_fake_A = self.D_A(fake_A, training=training)
        logit_real_B, *feat_real_B = self.D_B(real_B, training=training)
        logit_fake_B, *feat_fake_B = self.D_B(fake_B, training=training)
        bce = lambda logits, real: losses.gan_loss("vanilla", logits, real)
        terms = {
            "GAN_AB": bce(logit_fake_B, True),
            "GAN_BA": bce(logit_fake_A, True),
            "FM_AB": losses.feature_matching_loss(feat_real_B, feat_fake_B),
            "FM_BA": losses.feature_matching_loss(feat_real_A, feat_fake_A),
            "rec_A": rec(rec_A, real_A),
            "rec_B": rec(rec_B, real_B),
            "D_A": 0.5 * (bce(logit_real_A, True) + bce(logit_fake_A, False)),
            "D_B": 0.5 * (bce(logit_real_B, True) + bce(logit_fake_B, False)),
        }
        gan = lambda d: hp.gan_weight * terms[f"GAN_{d}"] + hp.fm_weight * terms[f"FM_{d}"]
        # The reference's gen_loss_A_total (A -> B -> A) and gen_loss_B_total.
        total_A = gan("AB") * (1.0 - rate) + rate * terms["rec_A"]
        total_B = gan("BA") * (1.0 - rate) + rate * terms["rec_B"]
        terms["g_loss"] = total_A + total_B
        terms["d_loss"] = terms["D_A"] + terms["D_B"]
        terms["rate"] = tf.fill(tf.shape(terms["rec_A"]), rate)
        return terms

    def _update(self, groups, real_A, real_B, rate):
        """One forward pass, then a gradient step of each group in `groups`."""
        with tf.GradientTape(persistent=len(groups) > 1) as tape:
            terms = self.objective(real_A, real_B, rate)
            scalars = {g: self.average(terms[f"{g}_loss"]) for g in groups}
        for group in groups:
            self.apply(group, tape, scalars[group])
        return terms

    def _update_masked(self, turns, real_A, real_B, rate):
        """`_update` of both groups, then each group whose turn it is not is put back.

        Under a multi-replica strategy. There a tf.cond cannot hold the update: the
        optimizers' gradient all-reduce and variable updates (and synchronized batch
        norm) are `merge_call`s, which TensorFlow refuses inside a control-flow branch.
        So both groups step, and the group whose turn it is not gets its variables and
        its optimizer's state (slots, iteration count) back, exactly: the same result
        as not stepping, at the price of one more backward pass and update.

        Args:
            turns: {group: scalar bool tensor}, whether the group steps now.
        """
        saved = {}
        for group in self.optimizer_groups:
            variables = self.group_variables(group) + list(self.optimizers[group].variables)
            saved[group] = (variables, [tf.identity(v.value) for v in variables])
        terms = self._update(self.optimizer_groups, real_A, real_B, rate)

        def put_back(strategy, turn, variables, old):
            keep = lambda var, before, on: var.assign(tf.where(on, var, before))
            for var, before in zip(variables, old):
                strategy.extended.update(var.value if hasattr(var, "value") else var, keep,
                                         args=(before, turn), group=False)

        context = tf.distribute.get_replica_context()
        for group, (variables, old) in saved.items():
            context.merge_call(put_back, args=(turns[group], variables, old))
        return terms

    def train_step(self, data):
        real_A, real_B = (self.to_unit(x) for x in data)
        hp = self.hp
        step = self.iteration.value
        rate = self.rate(step)
        d_turn = tf.equal(step % hp.d_every, 0)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            g_turn = tf.logical_or(tf.logical_not(d_turn), hp.g_on_d_steps)
            terms = self._update_masked({"g": g_turn, "d": d_turn}, real_A, real_B, rate)
        else:
            on_d_turn = ("g", "d") if hp.g_on_d_steps else ("d",)
            terms = tf.cond(d_turn,
                            lambda: self._update(on_d_turn, real_A, real_B, rate),
                            lambda: self._update(("g",), real_A, real_B, rate))
        self.iteration.assign_add(1)
        return self._update_trackers(terms)

    def test_step(self, data):
        real_A, real_B = data
        distance = losses.reconstruction_loss(self.hp.rec_loss)
        # The reconstruction on DiscoGAN's own [0, 1] scale, as its training loss.
        rec = lambda x, y: distance(self.to_unit(x), self.to_unit(y))
        return self._update_trackers(self.both_ways_validation(
            self.translator_AB, self.translator_BA, real_A, real_B, rec=rec))

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def generators(self):
        return self.both_ways(self.translator_AB, self.translator_BA)

    @property
    def size_divisor(self):
        return DISCOGAN_SIZE_DIVISOR

    def sample_images(self, batch):
        """Rows real | translated | reconstructed, in [-1, 1]: A rows, then B rows."""
        real_A, real_B = batch
        fake_B = self.translator_AB(real_A, training=False)
        fake_A = self.translator_BA(real_B, training=False)
        row_A = [real_A, fake_B, self.translator_BA(fake_B, training=False)]
        row_B = [real_B, fake_A, self.translator_AB(fake_A, training=False)]
        return self.image_grid([row_A, row_B])
