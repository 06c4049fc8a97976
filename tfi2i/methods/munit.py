"""MUNIT: multimodal unsupervised image-to-image translation.

Huang, Liu, Belongie, Kautz. "Multimodal Unsupervised Image-to-Image Translation", ECCV 2018;
the authors' code NVlabs/MUNIT (trainers.py `MUNIT_Trainer`, networks.py, train.py,
configs/edges2handbags_folder.yaml).

Each domain has a content encoder E^c, a style encoder E^s and a decoder G whose residual
blocks take AdaIN parameters from an MLP on the style code. A -> B translation is
G_B(E^c_A(a), s_B) with s_B ~ N(0, I) (random style) or s_B = E^s_B(b') of a reference image
b' (reference-guided). With c_A, s'_A = E^c_A(a), E^s_A(a) (and the same for b), styles
s_A, s_B ~ N(0, I) and the translations x_BA = G_A(c_B, s_A), x_AB = G_B(c_A, s_B):

    L_G = lambda_gan     * (L_GAN(D_A, x_BA) + L_GAN(D_B, x_AB))
        + lambda_recon   * (|G_A(c_A, s'_A) - a|_1 + |G_B(c_B, s'_B) - b|_1)
        + lambda_style   * (|E^s_A(x_BA) - s_A|_1 + |E^s_B(x_AB) - s_B|_1)
        + lambda_content * (|E^c_B(x_AB) - c_A|_1 + |E^c_A(x_BA) - c_B|_1)
        + lambda_cycle   * (|G_A(E^c_B(x_AB), s'_A) - a|_1 + |G_B(E^c_A(x_BA), s'_B) - b|_1)
    L_D = lambda_gan * (L_D(D_A; a, x_BA) + L_D(D_B; b, x_AB))

|.|_1 is the mean absolute difference (the reference's `recon_criterion`). Every adversarial
term is summed over the discriminator's scales, each scale's map averaged (`MsImageDis`); a
discriminator's loss is its real plus its fake term, not halved. The content reconstruction
pulls both ways: c_A is not held constant (the reference does not detach it).

Defaults are the reference's configs (edges2handbags_folder.yaml, the paper's values): style
code 8, generator width 64, 2 downsamplings, 4 residual blocks, MLP 256 wide (3 layers),
3-scale discriminators of 4 layers, width 64, no norm, LeakyReLU 0.2, reflect padding, LSGAN;
weights GAN 1, image 10, style 1, content 1, cycle 0 (`recon_x_cyc_w`, the "explicit style
augmented cycle" of the paper's appendix, 0 in edges2handbags_folder.yaml);
kaiming initialisation in the generators, N(0, 0.02) in the discriminators. The platform
options in configs/munit.json: Adam 1e-4 (0.5, 0.999), weight decay 1e-4 (coupled, as
PyTorch's Adam), the learning rate halved every 100k steps (`--lr_policy=step
--lr_decay_steps=100000 --lr_decay_gamma=0.5`), batch 1, 256 px crops, 1M steps.

Not built: the domain-invariant perceptual loss (`vgg_w`: 0 in edges2handbags_folder.yaml,
meant for images of 512 px and more; it needs VGG-16 weights, which nothing here provides).
The style-augmented cycle (`lambda_cycle`) is built. A reference quirk not reproduced: its
content encoders' instance norm keeps running statistics used in `eval()` mode
(tfi2i.nets.latent says why ours always normalises per instance).

The improved recipe (`--preset=improved`, from NVlabs/imaginaire's MUNIT configs): hinge
loss, spectral normalisation of every conv and linear layer in G and D, D learning rate 4e-4
against G's 1e-4 (`--d_lr`), constant learning rates, and the exported / evaluated
generators are the exponential moving average of all six generator nets (`--ema_decay` 0.999;
configs/munit.json says why not imaginaire's 0.9999). The preset keeps the reference's weight
decay (imaginaire has none: add --weight_decay=0). Imaginaire's other changes (pre-activation
blocks, orthogonal init, its own patch discriminator, batch 16) are not made: the preset
changes the training, not the nets.
"""

import functools

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (GAN_MODE, LAMBDA_CYCLE, LAMBDA_GAN, LAMBDA_RECON, N_DOWNSAMPLE,
                                   N_LAYER, N_RES, NDF, NGF, NUM_SCALES)
from tfi2i.methods.registry import register
from tfi2i.nets import latent
from tfi2i.options import Option

# The run's --seed: it seeds the step's style draws (`step_normal`), so that a resumed run
# and a run on several replicas draw what an uninterrupted one-device run would.
_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")

STYLE_DIM = Option("style_dim", int, 8, "Length of the style code; its prior is N(0, I) "
                   "(MUNIT's style_dim).", min=1)
MLP_DIM = Option("mlp_dim", int, 256, "Width of the MLP that maps a style code to the "
                 "decoder's AdaIN parameters.", min=1)
SPECTRAL_NORM = Option("spectral_norm", bool, False, "Spectral normalisation of every conv "
                       "and linear layer of the generators and discriminators.")
D_LR = Option("d_lr", float, None, "Learning rate of the discriminators (default: --lr).",
              min=0.0)

_GAN_MODES = ("lsgan", "vanilla", "hinge")


@register("munit")
@keras.saving.register_keras_serializable(package="tfi2i")
class MUNIT(TranslationModel):
    """MUNIT as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes unpaired (A, B) batches in [-1, 1]. As in CycleGAN, `direction` acts on the
    data: the batch's first element is the method's domain A. Networks: `enc_c_A`, `enc_s_A`,
    `dec_A` (domain A's content encoder, style encoder, decoder), the same for B, and the
    multi-scale discriminators `D_A`, `D_B` judging domains A and B.

    Multimodal interface: `latent_dim` is `style_dim`; `code_generators` are
    {direction: [image, style] -> dec_B(enc_c_A(image), style), reverse: [image, style] ->
    dec_A(enc_c_B(image), style)}; `generators` draw the style from N(0, I) in the graph;
    `style_encoders` give the style of a reference image of each direction's target domain
    (enc_s_B for the forward direction, enc_s_A for the reverse).

    One training step, in the order of the reference's train.py: the styles of the step are
    drawn first (four of them: the D update and the G update draw their own, as
    `dis_update` and `gen_update` do), then one update of both discriminators (the "d"
    group) on translations of the current generators, then one update of all six generator
    networks (the "g" group) against the updated discriminators. `step` counts G updates.
    With lambda_gan 0 the discriminators are not updated.

    Logged (`train_names`): D_A, D_B (each D's real + fake loss, summed over scales), adv_A,
    adv_B (the generators' adversarial terms on x_BA and x_AB), recon_x_A, recon_x_B,
    recon_s_A, recon_s_B, recon_c_A, recon_c_B, cycle_A, cycle_B (0 when lambda_cycle is 0),
    all unweighted, and the weighted totals g_loss and d_loss. Validation (`test_names`):
    recon_x_A, recon_x_B and l1_AtoB, l1_BtoA (how far the translations moved their inputs,
    with fixed styles drawn from the run's seed, so that epochs compare).
    """

    paired = False
    bidirectional = True
    optimizer_groups = ("g", "d")
    options = (
        INPUT_NC, OUTPUT_NC,
        NGF, NDF, STYLE_DIM, MLP_DIM, N_DOWNSAMPLE, N_RES, N_LAYER, NUM_SCALES, SPECTRAL_NORM,
        GAN_MODE.with_default("lsgan"),
        LAMBDA_GAN,
        LAMBDA_RECON,
        Option("lambda_style", float, 1.0, "Weight of the style reconstruction "
               "|E^s_A(G_A(c_B, s_A)) - s_A| and its twin (recon_s_w).", min=0.0),
        Option("lambda_content", float, 1.0, "Weight of the content reconstruction "
               "|E^c_A(G_A(c_B, s_A)) - c_B| and its twin (recon_c_w).", min=0.0),
        # MUNIT's style-augmented cycle |G_A(E^c_B(x_AB), E^s_A(a)) - a|: off in its configs.
        LAMBDA_CYCLE.with_default(0.0),
        D_LR,
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        sn = hp.spectral_norm
        content_dim = hp.ngf * 2 ** hp.n_downsample
        for name, channels in (("A", hp.input_nc), ("B", hp.output_nc)):
            setattr(self, f"enc_c_{name}", latent.content_encoder(
                channels, hp.ngf, hp.n_downsample, hp.n_res, norm="instance",
                activation="relu", pad_type="reflect", spectral_norm=sn,
                init_type="kaiming", name=f"enc_c_{name}"))
            setattr(self, f"enc_s_{name}", latent.style_encoder(
                channels, hp.ngf, hp.style_dim, n_downsample=4, norm="none",
                activation="relu", pad_type="reflect", spectral_norm=sn, init_type="kaiming",
                name=f"enc_s_{name}"))
            setattr(self, f"dec_{name}", latent.decoder(
                channels, content_dim, hp.n_downsample, hp.n_res, res_norm="adain",
                style_dim=hp.style_dim, mlp_dim=hp.mlp_dim, mlp_blocks=3, activation="relu",
                pad_type="reflect", spectral_norm=sn, init_type="kaiming", name=f"dec_{name}"))
            setattr(self, f"D_{name}", latent.multiscale_discriminator(
                channels, hp.ndf, hp.n_layer, hp.num_scales, norm="none", activation="lrelu",
                pad_type="reflect", spectral_norm=sn, init_type="normal", init_gain=0.02,
                name=f"D_{name}"))
        # [image, style] -> image, both ways. Kept out of Keras's attribute tracking: they
        # hold the encoders' and decoders' variables, which the model tracks already.
        self.__dict__["_G_AB"] = self._code_generator(self.enc_c_A, self.dec_B, hp.input_nc,
                                                       "G_AB")
        self.__dict__["_G_BA"] = self._code_generator(self.enc_c_B, self.dec_A, hp.output_nc,
                                                       "G_BA")
        names = ["D_A", "D_B", "adv_A", "adv_B", "recon_x_A", "recon_x_B", "recon_s_A",
                 "recon_s_B", "recon_c_A", "recon_c_B", "cycle_A", "cycle_B", "g_loss",
                 "d_loss"]
        self.train_names = names
        self.test_names = ["recon_x_A", "recon_x_B", "l1_AtoB", "l1_BtoA"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(names + self.test_names)}

    def _code_generator(self, encoder, decoder, channels, name):
        image = keras.Input(shape=(None, None, channels), name="images")
        style = keras.Input(shape=(self.hp.style_dim,), name="codes")
        return keras.Model([image, style], decoder([encoder(image), style]), name=name)

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] not in _GAN_MODES:
            raise UserError(f"--gan_mode={options['gan_mode']} does not fit munit: use "
                            f"{', '.join(_GAN_MODES)} (lsgan is the reference's, hinge the "
                            "improved recipe's, vanilla its nsgan).")
        if options["n_res"] < 1:
            raise UserError("--n_res=0 leaves munit's decoders without AdaIN blocks, the only "
                            "way the style enters: use --n_res=1 or more (4 in the reference).")

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        divisor = 2 ** config["n_downsample"]
        crop = config["crop_size"]
        if config["preprocess"] in ("resize_and_crop", "crop", "scale_width_and_crop") \
                and crop % divisor:
            raise UserError(f"--crop_size={crop} is not a multiple of {divisor}, which "
                            f"--n_downsample={config['n_downsample']} needs: use "
                            f"--crop_size={max(divisor, round(crop / divisor) * divisor)}.")
        # The coarsest scale must still leave the discriminator a pixel.
        smallest = latent.multiscale_min_size(config["n_layer"], config["num_scales"])
        if crop < smallest:
            raise UserError(f"--crop_size={crop} is too small for discriminators of "
                            f"--n_layer={config['n_layer']} at --num_scales="
                            f"{config['num_scales']} (their coarsest scale needs {smallest} px): "
                            "use a larger crop, or fewer --num_scales or --n_layer.")

    def group_variables(self, group):
        nets = {"g": (self.enc_c_A, self.enc_s_A, self.dec_A, self.enc_c_B, self.enc_s_B,
                      self.dec_B),
                "d": (self.D_A, self.D_B)}[group]
        seen, variables = set(), []
        for net in nets:
            for v in net.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v)
        return variables

    def average_generator_weights(self, decay):
        """The moving average of every generator network, style encoders included (they give
        the styles of reference-guided translation), as imaginaire averages its whole G."""
        from tfi2i.training.ema import WeightAverage

        return WeightAverage(self.group_variables("g"), decay, name="generator_average")

    # -- translation ------------------------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`) with a style drawn from N(0, I)."""
        styles = tf.random.normal([tf.shape(inputs)[0], self.hp.style_dim])
        return tf.cast(self.dec_B([self.enc_c_A(inputs, training=training), styles],
                                  training=training), tf.float32)

    def build_for_size(self, height, width):
        hp = self.hp
        for name, channels in (("A", hp.input_nc), ("B", hp.output_nc)):
            x = tf.zeros([1, height, width, channels])
            content = getattr(self, f"enc_c_{name}")(x, training=False)
            getattr(self, f"enc_s_{name}")(x, training=False)
            getattr(self, f"dec_{name}")([content, tf.zeros([1, hp.style_dim])], training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        self.D_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.D_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------------------------

    def encode(self, domain, images, training=True):
        """(content, style) of images of `domain` ("A" or "B")."""
        return (getattr(self, f"enc_c_{domain}")(images, training=training),
                getattr(self, f"enc_s_{domain}")(images, training=training))

    def decode(self, domain, content, style, training=True):
        """Images of `domain` from a content code and a style code."""
        return tf.cast(getattr(self, f"dec_{domain}")([content, style], training=training),
                       tf.float32)

    def generator_losses(self, real_A, real_B, s_A, s_B, training=True):
        """The generators' objective, per example (the reference's `gen_update`).

        Args:
            real_A, real_B: unpaired batches of the two domains.
            s_A, s_B: [batch, style_dim] random styles of domains A and B.
            training: the mode the networks run in.

        Returns:
            (terms, images): terms maps adv_A, adv_B, recon_x_A, recon_x_B, recon_s_A,
            recon_s_B, recon_c_A, recon_c_B, cycle_A, cycle_B and g_loss to [batch] tensors;
            images maps x_A_recon, x_B_recon, x_BA, x_AB (and x_ABA, x_BAB with the cycle on).
        """
        hp = self.hp
        gan = functools.partial(losses.multiscale_gan_loss, hp.gan_mode)
        c_A, s_A_prime = self.encode("A", real_A, training)
        c_B, s_B_prime = self.encode("B", real_B, training)
        x_A_recon = self.decode("A", c_A, s_A_prime, training)
        x_B_recon = self.decode("B", c_B, s_B_prime, training)
        x_BA = self.decode("A", c_B, s_A, training)
        x_AB = self.decode("B", c_A, s_B, training)
        c_B_recon, s_A_recon = self.encode("A", x_BA, training)
        c_A_recon, s_B_recon = self.encode("B", x_AB, training)
        images = {"x_A_recon": x_A_recon, "x_B_recon": x_B_recon, "x_BA": x_BA, "x_AB": x_AB}
        terms = {
            "recon_x_A": losses.l1_loss(x_A_recon, real_A),
            "recon_x_B": losses.l1_loss(x_B_recon, real_B),
            "recon_s_A": losses.l1_loss(s_A_recon, s_A),
            "recon_s_B": losses.l1_loss(s_B_recon, s_B),
            "recon_c_A": losses.l1_loss(c_A_recon, c_A),
            "recon_c_B": losses.l1_loss(c_B_recon, c_B),
            "adv_A": gan(self.D_A(x_BA, training=training), True, False),
            "adv_B": gan(self.D_B(x_AB, training=training), True, False),
        }
        if hp.lambda_cycle > 0:
            images["x_ABA"] = self.decode("A", c_A_recon, s_A_prime, training)
            images["x_BAB"] = self.decode("B", c_B_recon, s_B_prime, training)
            terms["cycle_A"] = losses.l1_loss(images["x_ABA"], real_A)
            terms["cycle_B"] = losses.l1_loss(images["x_BAB"], real_B)
        else:
            terms["cycle_A"] = terms["cycle_B"] = tf.zeros_like(terms["recon_x_A"])
        terms["g_loss"] = (hp.lambda_gan * (terms["adv_A"] + terms["adv_B"])
                           + hp.lambda_recon * (terms["recon_x_A"] + terms["recon_x_B"])
                           + hp.lambda_style * (terms["recon_s_A"] + terms["recon_s_B"])
                           + hp.lambda_content * (terms["recon_c_A"] + terms["recon_c_B"])
                           + hp.lambda_cycle * (terms["cycle_A"] + terms["cycle_B"]))
        return terms, images

    def discriminator_losses(self, real_A, real_B, s_A, s_B, training=True):
        """The discriminators' objective, per example (the reference's `dis_update`).

        The translations x_BA = G_A(c_B, s_A) and x_AB = G_B(c_A, s_B) of the current
        generators, held constant. Returns {D_A, D_B, d_loss}: each D's fake + real loss
        summed over its scales; d_loss = lambda_gan * (D_A + D_B), as the reference weighs it.
        """
        hp = self.hp
        gan = functools.partial(losses.multiscale_gan_loss, hp.gan_mode)
        c_A = self.enc_c_A(real_A, training=training)
        c_B = self.enc_c_B(real_B, training=training)
        x_BA = tf.stop_gradient(self.decode("A", c_B, s_A, training))
        x_AB = tf.stop_gradient(self.decode("B", c_A, s_B, training))
        terms = {}
        for name, D, real, fake in (("A", self.D_A, real_A, x_BA), ("B", self.D_B, real_B, x_AB)):
            terms[f"D_{name}"] = (
                gan(D(fake, training=training), False, True)
                + gan(D(real, training=training), True, True))
        terms["d_loss"] = hp.lambda_gan * (terms["D_A"] + terms["D_B"])
        return terms

    def step_styles(self, batch_size):
        """The step's random styles: (D's s_A, s_B), (G's s_A, s_B), [batch, style_dim] each."""
        shape = [self.hp.style_dim]
        draws = [self.step_normal(batch_size, shape, stream) for stream in range(4)]
        return tuple(draws[:2]), tuple(draws[2:])

    def train_step(self, data):
        real_A, real_B = data
        # All of the step's randomness first, before `step` moves.
        d_styles, g_styles = self.step_styles(tf.shape(real_A)[0])
        d_terms = {}
        if self.hp.lambda_gan > 0:
            with tf.GradientTape() as d_tape:
                d_terms = self.discriminator_losses(real_A, real_B, *d_styles)
                d_scalar = self.average(d_terms["d_loss"])
            self.apply("d", d_tape, d_scalar)
        with tf.GradientTape() as g_tape:
            g_terms, _ = self.generator_losses(real_A, real_B, *g_styles)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        if not d_terms:
            zero = tf.zeros_like(g_terms["g_loss"])
            d_terms = {"D_A": zero, "D_B": zero, "d_loss": zero}
        return self._update_trackers({**d_terms, **g_terms})

    def display_styles(self, batch_size, count=1):
        """Fixed styles for validation and sample grids (the reference's `self.s_a`, `self.s_b`,
        drawn once): `count` tensors [batch_size, style_dim], from the run's seed."""
        seed = tf.constant([self.hp.seed, 104729], tf.int64)
        draw = tf.random.stateless_normal([count, batch_size, self.hp.style_dim], seed)
        return [draw[i] for i in range(count)]

    def test_step(self, data):
        real_A, real_B = data
        (s,) = self.display_styles(tf.shape(real_A)[0])
        c_A, s_A_prime = self.encode("A", real_A, False)
        c_B, s_B_prime = self.encode("B", real_B, False)
        return self._update_trackers({
            "recon_x_A": losses.l1_loss(self.decode("A", c_A, s_A_prime, False), real_A),
            "recon_x_B": losses.l1_loss(self.decode("B", c_B, s_B_prime, False), real_B),
            "l1_AtoB": losses.l1_loss(self.decode("B", c_A, s, False), real_A),
            "l1_BtoA": losses.l1_loss(self.decode("A", c_B, s, False), real_B),
        })

    # -- hooks for the trainer and the exporter ----------------------------------------------

    @property
    def latent_dim(self):
        return self.hp.style_dim

    @property
    def code_generators(self):
        return self.both_ways(self._G_AB, self._G_BA)

    @property
    def generators(self):
        return self.sampling_generators(self.code_generators)

    @property
    def style_encoders(self):
        return self.both_ways(self.enc_s_B, self.enc_s_A)

    @property
    def size_divisor(self):
        return 2 ** self.hp.n_downsample

    def sample_images(self, batch):
        """Rows real | reconstructed | 3 translations (3 fixed styles): A rows, then B rows."""
        real_A, real_B = batch
        c_A, s_A_prime = self.encode("A", real_A, False)
        c_B, s_B_prime = self.encode("B", real_B, False)
        row_A = [real_A, self.decode("A", c_A, s_A_prime, False)] + [
            self.decode("B", c_A, s, False) for s in self.display_styles(tf.shape(real_A)[0], 3)]
        row_B = [real_B, self.decode("B", c_B, s_B_prime, False)] + [
            self.decode("A", c_B, s, False) for s in self.display_styles(tf.shape(real_B)[0], 3)]
        return self.image_grid([row_A, row_B])
