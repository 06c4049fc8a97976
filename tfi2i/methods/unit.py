"""UNIT: unsupervised image-to-image translation with a shared latent space.

Liu, Breuel, Kautz. "Unsupervised Image-to-Image Translation Networks", NIPS 2017.

Two VAE-GANs, one per domain: E_A, G_A (here `enc_A`, `dec_A`) and E_B, G_B, whose codes
live in ONE latent space: the last layers of the encoders and the first layers of the
decoders are shared (the same variables), so that a code made by E_A decodes in domain B
by G_B. With z_a = E_A(a) + n, n ~ N(0, I) (the "reduced" VAE of the reference code: unit
variance, the encoder gives the mean only):

    L_G = lambda_gan * (|D_A(G_A(z_b)) - 1|^2 + |D_B(G_B(z_a)) - 1|^2)            (LSGAN)
        + lambda_recon * (|G_A(z_a) - a|_1 + |G_B(z_b) - b|_1)                   (VAE recon)
        + lambda_kl * (mean(E_A(a)^2) + mean(E_B(b)^2))                          (VAE "KL")
        + lambda_cycle * (|G_A(E_B(G_B(z_a)) + n') - a|_1 + |G_B(E_A(G_A(z_b)) + n'') - b|_1)
        + lambda_cycle_kl * (mean(E_B(G_B(z_a))^2) + mean(E_A(G_A(z_b))^2))
    L_D = lambda_gan * (D_A: |D_A(a) - 1|^2 + |D_A(G_A(z_b))|^2, and D_B the same)

each GAN term summed over the discriminators' scales, each squared error a mean over its
map. Translation A -> B is G_B(E_A(a)), the MEAN code without noise (the reference's
`forward` and test script): UNIT is unimodal, one output per input (`latent_dim` 0).

Paper vs reference code vs here:
- Weight sharing. The paper shares the encoders' last and the decoders' first layers (and
  the discriminators' last layers). The authors' 2017 code (read: `src/trainers/
  cocogan_nets.py` `COCOResGen2`, `cocogan_trainer.py`) shares `n_enc_shared_blk` residual
  blocks at the encoders' top (followed by its Gaussian noise layer, the reduced VAE) and
  `n_gen_shared_blk` at the decoders' bottom, and its `COCOSharedDis` the discriminators'
  last layers; it uses the vanilla GAN loss and other weights (`ll_direct_link_w`, ...).
  The 2018 PyTorch rewrite (the repository's current `trainer.py` `UNIT_Trainer`,
  `networks.py` `VAEGen`, configs `unit_*.yaml`; the trainer recalled, the configs read)
  shares NOTHING: two independent `VAEGen`s (mingyuliutw/UNIT#113). Here
  `n_shared` (default 1, as the issue and the paper ask) of each encoder's `n_res` residual
  blocks are its last blocks, and the same number the decoders' first ones, ONE model each
  (`enc_shared`, `dec_shared`) called by both domains' nets; `n_shared=0` is the 2018 code.
  The discriminators share nothing (the 2018 code).
- Everything else follows the 2018 code: encoder c7s1-64, 2 stride-2 4x4 convs, 4 residual
  blocks, instance norm, ReLU, reflect padding; decoder 4 residual blocks (instance norm),
  2 x (nearest upsampling, 5x5 conv, MUNIT's layer norm), c7s1 tanh
  (`tfi2i.nets.latent.content_encoder` / `decoder(res_norm="instance")`); generators
  initialised "kaiming" (He normal, fan in, biases 0); discriminators `MsImageDis`: 3 scales,
  4 stride-2 4x4 layers from 64 filters, no norm, LeakyReLU 0.2, N(0, 0.02) (its
  `weights_init('gaussian')`); LSGAN, D loss neither halved nor averaged over scales;
  weights GAN 1, reconstruction 10, KL 0.01, cycle 10, cycle KL 0.01 (`gan_w`, `recon_x_w`,
  `recon_kl_w`, `recon_x_cyc_w`, `recon_kl_cyc_w`); the KL is `mean(mu^2)`
  (`tfi2i.losses.latent_l2`), the paper's KL up to the factor 0.5 * code size.
- Settings (configs/unit.json): Adam 1e-4, betas (0.5, 0.999), weight decay 1e-4 (PyTorch's
  coupled L2, `--weight_decay`), batch 1, the learning rate halved every 100k iterations
  (`--lr_policy=step --lr_decay_steps=100000 --lr_decay_gamma=0.5`; each optimizer counts its
  own updates, one per train step), resize to 256 and crop 256 with flips. The reference
  trains 1M iterations (`max_iter`); set `--max_steps` for that.
- Update order: both references' train loops call `dis_update` then `gen_update` on
  each batch: the discriminators step first (the "d" group, on fakes of their own forward pass
  with their own noise), then the generators (the "g" group: both encoders, both decoders,
  the shared blocks) against the UPDATED discriminators. So `optimizer_groups` is
  ("d", "g") and `step` counts D updates (one per train step).
- Randomness: the six noise draws of a step (two for the D step's codes, four for the G
  step's: z_a, z_b and the two cycle codes) come from `step_normal` (seeded by `--seed`, the
  step and a stream number), drawn before the first update: a resumed run draws what an
  uninterrupted one would and replicas draw what one device does. The reference draws
  fresh noise per `encode` call alike.
- Not reproduced: the reference's VGG perceptual loss (`vgg_w`, 0 in its configs) and the
  "nsgan" name (here `--gan_mode=vanilla`).
- Limits named by the authors: unimodal (the Gaussian latent gives one output per input)
  and the saddle-point training instability of GANs.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (GAN_MODE, LAMBDA_CYCLE, LAMBDA_GAN, LAMBDA_KL, LAMBDA_RECON,
                                   N_DOWNSAMPLE, N_LAYER, N_RES, NDF, NGF, NUM_SCALES)
from tfi2i.methods.registry import register
from tfi2i.nets.latent import (content_encoder, decoder, multiscale_discriminator,
                               multiscale_min_size, res_blocks)
from tfi2i.options import Option

# The run's --seed: it seeds the step's noise draws (`step_normal`).
_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")

# The GAN losses a multi-scale discriminator's list of logit maps takes here (the WGAN
# variants need a critic with clipping or a penalty on one output).
_GAN_MODES = ("lsgan", "vanilla", "hinge")

# Noise streams of one step (`step_normal`'s `stream`).
_STREAMS = {"d_A": 0, "d_B": 1, "z_A": 2, "z_B": 3, "z_A_cycle": 4, "z_B_cycle": 5}


@register("unit")
@keras.saving.register_keras_serializable(package="tfi2i")
class UNIT(TranslationModel):
    """UNIT as a Keras model: `compile(d_optimizer, g_optimizer)`, then `fit`.

    `fit` takes unpaired (A, B) batches in [-1, 1]. As in CycleGAN, `direction` acts on the
    data: domain A is the batch's first element, and calling the model translates A -> B.

    Networks: `enc_A`, `enc_B` (content encoders, each ending in the shared blocks),
    `dec_A`, `dec_B` (decoders, each starting with the shared blocks), `enc_shared` and
    `dec_shared` (the shared residual blocks; None with n_shared 0), `D_A`, `D_B` (multi-scale
    discriminators of domain A and B), and the translators `G_AtoB` = dec_B(enc_A(.)) and
    `G_BtoA` = dec_A(enc_B(.)) (mean codes), which `generators` names by the data's
    direction.

    Logged per step (`train_names`), plain values (not multiplied by their weights):
    D_A, D_B (each D's loss, summed over scales), gan_A, gan_B (the generators' adversarial
    terms on the fakes of domain A and B), recon_A, recon_B, kl_A, kl_B, cycle_A, cycle_B,
    kl_cycle_A (of E_B(G_B(z_a)), the code of a's translation), kl_cycle_B, and the weighted
    totals g_loss and d_loss. Validation (`test_names`): cycle_A = |G_BtoA(G_AtoB(a)) - a|_1,
    cycle_B, recon_A = |dec_A(enc_A(a)) - a|_1, recon_B (mean codes), l1_AtoB =
    |G_AtoB(a) - a|_1, l1_BtoA.
    """

    paired = False
    bidirectional = True
    # D first: the reference's dis_update precedes gen_update (see the module docstring).
    optimizer_groups = ("d", "g")
    options = (
        INPUT_NC, OUTPUT_NC,
        NGF, NDF, N_DOWNSAMPLE, N_RES,
        Option("n_shared", int, 1, "Of each encoder's n_res residual blocks, the last n_shared "
               "are ONE set of layers both domains' encoders use, and as many first blocks of "
               "the decoders (the paper's and the 2017 code's weight sharing); 0 shares "
               "nothing (the 2018 PyTorch code).", min=0),
        NUM_SCALES, N_LAYER,
        GAN_MODE.with_default("lsgan"),
        LAMBDA_GAN, LAMBDA_RECON, LAMBDA_KL, LAMBDA_CYCLE,
        Option("lambda_cycle_kl", float, 0.01, "Weight of the KL term of the translated "
               "images' codes in the cycle (UNIT's recon_kl_cyc_w).", min=0.0),
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        code_dim = hp.ngf * 2 ** hp.n_downsample
        self.enc_shared = self.dec_shared = None
        if hp.n_shared:
            self.enc_shared = res_blocks(hp.n_shared, code_dim, name="enc_shared")
            self.dec_shared = res_blocks(hp.n_shared, code_dim, name="dec_shared")
        own = hp.n_res - hp.n_shared
        enc = dict(n_downsample=hp.n_downsample, n_res=own, init_type="kaiming",
                   shared=self.enc_shared)
        dec = dict(n_upsample=hp.n_downsample, n_res=own, res_norm="instance",
                   init_type="kaiming", shared=self.dec_shared)
        self.enc_A = content_encoder(hp.input_nc, hp.ngf, name="enc_A", **enc)
        self.enc_B = content_encoder(hp.output_nc, hp.ngf, name="enc_B", **enc)
        self.dec_A = decoder(hp.input_nc, code_dim, name="dec_A", **dec)
        self.dec_B = decoder(hp.output_nc, code_dim, name="dec_B", **dec)
        disc = dict(dim=hp.ndf, n_layer=hp.n_layer, num_scales=hp.num_scales, norm="none",
                    activation="lrelu", pad_type="reflect", init_type="normal", init_gain=0.02)
        self.D_A = multiscale_discriminator(hp.input_nc, name="D_A", **disc)
        self.D_B = multiscale_discriminator(hp.output_nc, name="D_B", **disc)
        self.G_AtoB = self._translator(self.enc_A, self.dec_B, hp.input_nc, "G_AtoB")
        self.G_BtoA = self._translator(self.enc_B, self.dec_A, hp.output_nc, "G_BtoA")

        self.train_names = ["D_A", "D_B", "gan_A", "gan_B", "recon_A", "recon_B", "kl_A", "kl_B",
                            "cycle_A", "cycle_B", "kl_cycle_A", "kl_cycle_B", "g_loss", "d_loss"]
        self.test_names = ["cycle_A", "cycle_B", "recon_A", "recon_B", "l1_AtoB", "l1_BtoA"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(self.train_names + self.test_names)}

    @staticmethod
    def _translator(encoder, dec, channels, name):
        """image -> dec(encoder(image)): translation with the mean code (no noise)."""
        images = keras.Input(shape=(None, None, channels), name="images")
        return keras.Model(images, dec(encoder(images)), name=name)

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] not in _GAN_MODES:
            raise UserError(f"--gan_mode={options['gan_mode']} does not fit unit, whose "
                            "multi-scale discriminators have neither weight clipping nor a "
                            f"gradient penalty: use {', '.join(_GAN_MODES)}.")
        if options["n_shared"] > options["n_res"]:
            raise UserError(f"--n_shared={options['n_shared']} is more than the "
                            f"--n_res={options['n_res']} residual blocks it is part of: set "
                            f"--n_shared to at most {options['n_res']}.")

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        crop, divisor = config["crop_size"], 2 ** config["n_downsample"]
        if crop % divisor:
            raise UserError(f"--crop_size={crop} does not fit unit's encoders "
                            f"(--n_downsample={config['n_downsample']}), which need sides that "
                            f"are multiples of {divisor}: use --crop_size="
                            f"{max(divisor, round(crop / divisor) * divisor)}.")
        smallest = multiscale_min_size(config["n_layer"], config["num_scales"])
        if crop < smallest:
            raise UserError(f"--crop_size={crop} is too small for unit's discriminators "
                            f"(--num_scales={config['num_scales']} of --n_layer="
                            f"{config['n_layer']} layers need {smallest} px): use --crop_size="
                            f"{smallest} or more, or fewer --num_scales.")

    def group_variables(self, group):
        if group == "d":
            nets = (self.D_A, self.D_B)
        else:
            # The shared blocks are in both encoders (decoders): each variable once.
            nets = (self.enc_A, self.enc_B, self.dec_A, self.dec_B)
        seen, variables = set(), []
        for net in nets:
            for v in net.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    variables.append(v)
        return variables

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`): G_B(E_A(a)), the mean code."""
        return tf.cast(self.G_AtoB(inputs, training=training), tf.float32)

    # -- building ---------------------------------------------------------

    def build_for_size(self, height, width):
        """Creates every variable, for height x width images."""
        divisor = self.size_divisor
        if height % divisor or width % divisor:
            raise UserError(f"unit needs image sides that are multiples of {divisor} "
                            f"(--n_downsample={self.hp.n_downsample}), got {height}x{width}.")
        hp = self.hp
        self.G_AtoB(tf.zeros([1, height, width, hp.input_nc]), training=False)
        self.G_BtoA(tf.zeros([1, height, width, hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        smallest = multiscale_min_size(self.hp.n_layer, self.hp.num_scales)
        if min(height, width) < smallest:
            raise UserError(f"unit's discriminators (--num_scales={self.hp.num_scales}, "
                            f"--n_layer={self.hp.n_layer}) need images of at least {smallest} "
                            f"px, got {height}x{width}.")
        self.D_A(tf.zeros([1, height, width, self.hp.input_nc]), training=False)
        self.D_B(tf.zeros([1, height, width, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------

    def step_noise(self, real_A, real_B):
        """The step's six noise draws (`step_normal`), shaped like the codes of the batches.

        Returns:
            {"d_A", "d_B"} (the D step's codes of a and b), {"z_A", "z_B"} (the G step's),
            {"z_A_cycle", "z_B_cycle"} (added to the codes of the translations,
            E_B(G_B(z_a)) and E_A(G_A(z_b))), each [batch, h, w, code channels].
        """
        hp = self.hp
        scale = 2 ** hp.n_downsample
        channels = hp.ngf * scale
        noise = {}
        for name, stream in _STREAMS.items():
            # z_A_cycle is the noise of a's cycle: a code of domain B's images, as big.
            images = real_A if name.startswith(("d_A", "z_A")) else real_B
            shape = tf.shape(images)
            noise[name] = self.step_normal(shape[0], tf.stack([
                shape[1] // scale, shape[2] // scale, channels]), stream)
        return noise

    def _gan(self, D, images, target_is_real, for_discriminator, training):
        """A GAN loss of a multi-scale D, per example: the sum over its scales."""
        return losses.multiscale_gan_loss(self.hp.gan_mode, D(images, training=training),
                                          target_is_real, for_discriminator)

    def generator_losses(self, real_A, real_B, noise, training=True):
        """The generators' objective, per example (the reference's `gen_update`).

        Args:
            real_A, real_B: unpaired batches of the two domains.
            noise: `step_noise`'s draws (z_A, z_B, z_A_cycle and z_B_cycle are used).
            training: the mode the networks run in.

        Returns:
            (terms, images): terms maps gan_A, gan_B, recon_A, recon_B, kl_A, kl_B,
            cycle_A, cycle_B (zeros when lambda_cycle is 0, not computed), kl_cycle_A,
            kl_cycle_B and the weighted g_loss to [batch] tensors; images maps recon_A,
            recon_B, fake_A (= G_A(z_b)), fake_B and, with the cycle on, cycle_A, cycle_B.
        """
        hp = self.hp
        h_A = self.enc_A(real_A, training=training)
        h_B = self.enc_B(real_B, training=training)
        z_A = h_A + tf.cast(noise["z_A"], h_A.dtype)
        z_B = h_B + tf.cast(noise["z_B"], h_B.dtype)
        images = {"recon_A": self.dec_A(z_A, training=training),
                  "recon_B": self.dec_B(z_B, training=training),
                  "fake_A": self.dec_A(z_B, training=training),
                  "fake_B": self.dec_B(z_A, training=training)}
        # The translations' codes: h_A_cycle is a's code after the trip through B.
        h_A_cycle = self.enc_B(images["fake_B"], training=training)
        h_B_cycle = self.enc_A(images["fake_A"], training=training)
        terms = {
            "gan_A": self._gan(self.D_A, images["fake_A"], True, False, training),
            "gan_B": self._gan(self.D_B, images["fake_B"], True, False, training),
            "recon_A": losses.l1_loss(images["recon_A"], real_A),
            "recon_B": losses.l1_loss(images["recon_B"], real_B),
            "kl_A": losses.latent_l2(h_A),
            "kl_B": losses.latent_l2(h_B),
            "kl_cycle_A": losses.latent_l2(h_A_cycle),
            "kl_cycle_B": losses.latent_l2(h_B_cycle),
        }
        if hp.lambda_cycle > 0:
            images["cycle_A"] = self.dec_A(
                h_A_cycle + tf.cast(noise["z_A_cycle"], h_A_cycle.dtype), training=training)
            images["cycle_B"] = self.dec_B(
                h_B_cycle + tf.cast(noise["z_B_cycle"], h_B_cycle.dtype), training=training)
            terms["cycle_A"] = losses.l1_loss(images["cycle_A"], real_A)
            terms["cycle_B"] = losses.l1_loss(images["cycle_B"], real_B)
        else:
            terms["cycle_A"] = terms["cycle_B"] = tf.zeros_like(terms["recon_A"])
        terms["g_loss"] = (hp.lambda_gan * (terms["gan_A"] + terms["gan_B"])
                           + hp.lambda_recon * (terms["recon_A"] + terms["recon_B"])
                           + hp.lambda_kl * (terms["kl_A"] + terms["kl_B"])
                           + hp.lambda_cycle * (terms["cycle_A"] + terms["cycle_B"])
                           + hp.lambda_cycle_kl * (terms["kl_cycle_A"] + terms["kl_cycle_B"]))
        return terms, images

    def discriminator_fakes(self, real_A, real_B, noise, training=True):
        """The D step's fakes (the reference's `dis_update`): G_A(E_B(b) + n), G_B(E_A(a) + n').

        Returns:
            (fake_A, fake_B), gradients stopped.
        """
        h_A = self.enc_A(real_A, training=training)
        h_B = self.enc_B(real_B, training=training)
        fake_A = self.dec_A(h_B + tf.cast(noise["d_B"], h_B.dtype), training=training)
        fake_B = self.dec_B(h_A + tf.cast(noise["d_A"], h_A.dtype), training=training)
        return tf.stop_gradient(fake_A), tf.stop_gradient(fake_B)

    def discriminator_losses(self, real_A, real_B, fake_A, fake_B):
        """The discriminators' objective, per example (the reference's `calc_dis_loss`).

        Returns:
            {D_A, D_B, d_loss}: D_A = sum over scales of the GAN loss of real a and of
            fake_A (not halved), D_B the same; d_loss = lambda_gan * (D_A + D_B).
        """
        terms = {}
        for name, D, real, fake in (("D_A", self.D_A, real_A, fake_A),
                                    ("D_B", self.D_B, real_B, fake_B)):
            terms[name] = (self._gan(D, real, True, True, True)
                           + self._gan(D, fake, False, True, True))
        terms["d_loss"] = self.hp.lambda_gan * (terms["D_A"] + terms["D_B"])
        return terms

    def train_step(self, data):
        real_A, real_B = data
        # Every draw first: `step` (the noise's seed) moves with the first update.
        noise = self.step_noise(real_A, real_B)
        # 1. Both discriminators, one update, on fakes of their own forward pass.
        fake_A, fake_B = self.discriminator_fakes(real_A, real_B, noise)
        with tf.GradientTape() as d_tape:
            d_terms = self.discriminator_losses(real_A, real_B, fake_A, fake_B)
            d_scalar = self.average(d_terms["d_loss"])
        self.apply("d", d_tape, d_scalar)
        # 2. The encoders and decoders, one update, against the updated discriminators.
        with tf.GradientTape() as g_tape:
            g_terms, _ = self.generator_losses(real_A, real_B, noise)
            g_scalar = self.average(g_terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        return self._update_trackers({**d_terms, **g_terms})

    def test_step(self, data):
        real_A, real_B = data
        values = self.both_ways_validation(self.G_AtoB, self.G_BtoA, real_A, real_B,
                                           rec_names=("cycle_A", "cycle_B"))
        values["recon_A"] = losses.l1_loss(
            self.dec_A(self.enc_A(real_A, training=False), training=False), real_A)
        values["recon_B"] = losses.l1_loss(
            self.dec_B(self.enc_B(real_B, training=False), training=False), real_B)
        return self._update_trackers(values)

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def generators(self):
        return self.both_ways(self.G_AtoB, self.G_BtoA)

    @property
    def size_divisor(self):
        return 2 ** self.hp.n_downsample

    def sample_images(self, batch):
        """Rows real | translated | cycled | reconstructed, mean codes: A rows, then B rows.

        An A row is a, G_B(E_A(a)), G_A(E_B(G_B(E_A(a)))) and G_A(E_A(a)); a B row the same
        with the roles swapped.
        """
        real_A, real_B = batch
        fake_B = self.G_AtoB(real_A, training=False)
        fake_A = self.G_BtoA(real_B, training=False)
        row_A = [real_A, fake_B, self.G_BtoA(fake_B, training=False),
                 self.dec_A(self.enc_A(real_A, training=False), training=False)]
        row_B = [real_B, fake_A, self.G_AtoB(fake_A, training=False),
                 self.dec_B(self.enc_B(real_B, training=False), training=False)]
        return self.image_grid([row_A, row_B])
