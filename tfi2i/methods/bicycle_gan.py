"""BicycleGAN: multimodal paired image-to-image translation.

Zhu, Zhang, Pathak, Darrell, Efros, Wang, Shechtman. "Toward Multimodal Image-to-Image
Translation", NIPS 2017.

A generator G(A, z) with a latent code z, an encoder E(B) -> (mu, logvar), and two
objectives trained together on one batch, split in two (the reference's batch 2: one image
each):

    cVAE-GAN (B -> z -> B):  z = mu + eps * exp(logvar / 2),  (mu, logvar) = E(B)
        lambda_gan * L_GAN(G(A, z), D) + lambda_L1 * |G(A, z) - B|_1
        + lambda_kl * KL(N(mu, exp(logvar)) || N(0, I))
    cLR-GAN (z -> B -> z):  z ~ N(0, I)
        lambda_gan2 * L_GAN(G(A, z), D2) + lambda_z * |mu(E(G(A, z))) - z|_1

Followed: the authors' code (junyanz/BicycleGAN, `models/bicycle_gan_model.py`,
`options/base_options.py` and `train_options.py`, read for this file), which the paper's
description matches:

- The batch. The reference takes the first half of the batch as the encoded pairs (A1, B1)
  and the second half as the random ones (A2, B2). Both fakes are made from A1:
  fake_B_encoded = G(A1, z_encoded) and fake_B_random = G(A1, z_random); the second half
  only gives D2 its real images B2 (and A2 with conditional_D). Here the halves are the
  even and the odd examples of each replica's batch, which is the same split for the
  reference's batch 2 and lets two replicas of 2 examples compute exactly what one device
  does on the same batch of 4 (contiguous halves would not). The batch per replica must be
  even (the reference asserts an even batch).
- Losses (reference `backward_EG`, `backward_G_alone`, `backward_D`): LSGAN; each
  discriminator has `num_scales` scales (PatchGANs on the image and its average-pooled
  copies), and an adversarial loss is the sum over scales of each map's mean. L1 and the
  latent regression are means (over pixels, and over the nz dimensions). The KL is summed
  over the code's dimensions *and over the half batch* (`torch.sum`), so with batches larger
  than 2 its weight grows with the batch size, as in the reference; at batch 2 it is the
  per-example KL. The latent regression uses mu of E(G(A1, z_random)), no sampling. The D
  losses are real + fake, not halved (unlike pix2pix/CycleGAN).
- Updates (`optimize_parameters`: forward, `update_G_and_E`, then `update_D`). One forward
  pass; then G and E step once each: E on the cVAE-GAN terms and G's adversarial terms
  (`loss_G`: GAN + GAN2 + L1 + KL), G on those plus lambda_z * the latent regression. The
  regression reaches G through E (E runs on G's output) but E's weights do not get its
  gradient: the reference backprops it with E's `requires_grad` off. Then D steps on
  (real B1, detached fake_B_encoded) and D2 on (real B2, detached fake_B_random), the fakes
  of that same forward pass, made before the G update. Four optimizers, as the reference:
  groups "g", "e", "d", "d2" (Adam 2e-4, beta1 0.5, the platform's defaults).
- Two discriminators (reference `use_same_D` False): D judges the cVAE-GAN's fakes, D2 the
  cLR-GAN's. With `use_same_D` one D judges both (its loss is the sum of both branches',
  one update), and the "d2" group is empty. D is unconditional (it sees output images
  only) unless `conditional_D`, which feeds it (A, B) pairs as pix2pix's D.
- A weight of 0 switches its term off as in the reference: lambda_gan 0 (lambda_gan2 0)
  leaves D (D2) untrained, lambda_z 0 skips E(G(A, z_random)).
- Nets (`tfi2i.nets.bicycle`): U-Net G with z tiled and concatenated at every level
  (`where_add` "all"), ResNet E, multi-scale PatchGANs; instance norm, xavier init (gain
  0.02), nz 8. The reference's netD names are two settings here: basic_256_multi is
  `n_layer` 3 (the default) and basic_128_multi `n_layer` 2, each with `num_scales` 2 (its
  num_Ds). D2 is built like D (the reference's netD2 has netD's default and no script sets
  it apart).
- Dropout. Every training script of the reference passes --use_dropout (its option default
  is off), so it is on here by default. Its masks come from Keras' seed generators, which
  the checkpoint holds (a resumed run draws the same masks), but which two replicas draw
  differently from one device: with `--use_dropout=false` every random draw of the step is
  stateless (`step_normal`) and a mirrored run computes what a single device does.
- Not carried over: the reference's `wgangp` mode (its BicycleGAN step never adds the
  gradient penalty, so wgan and wgangp are refused); its single-scale netD basic_256 is
  `num_scales` 1. G's variants (`where_add`, `upsample`, `nl`) are options, as there.
- Settings (configs/bicycle_gan.json): batch 2; the rest (resize 286 -> crop 256, Adam 2e-4
  / 0.5, 100 + 100 epochs with linear decay) are the platform's defaults and the
  reference's. Each optimizer counts one update per train step, so the schedule counts
  train steps.

Inference: G(A, z) with z ~ N(0, I) (`generators`, drawn in the graph), a given z
(`code_generators`), or z = mu(E(B)) of a reference image B of the target domain
(`style_encoders`: the reference's `test(encode=True)` uses mu, no sampling).
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_GAN, LAMBDA_KL,
                                   LAMBDA_L1, N_LAYER, NDF, NEF, NETG, NGF, NORM, NUM_SCALES,
                                   NZ, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import size_divisor
from tfi2i.nets.bicycle import (BICYCLE_ENCODERS, BICYCLE_GENERATORS, NONLINEARITIES,
                                UPSAMPLE_TYPES, WHERE_ADD, define_bicycle_E, define_bicycle_G,
                                discriminator_min_size, encoder_min_size, multiscale_patchgan)
from tfi2i.options import Option

# The run's --seed: it seeds every draw of z and eps (`step_normal`).
_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")
# The reference's netD names, by the number of stride-2 convolutions of each scale.
_REFERENCE_D = {3: "basic_256_multi", 2: "basic_128_multi"}
_CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")


@register("bicycle_gan")
@keras.saving.register_keras_serializable(package="tfi2i")
class BicycleGAN(TranslationModel):
    """BicycleGAN as a Keras model: `compile(g_optimizer, e_optimizer, d_optimizer,
    d2_optimizer)`, then `fit`.

    `fit` takes (input, target) pairs in [-1, 1] (e.g. `tfi2i.data.paired_dataset(...)`) in
    batches of an even size per replica (2 in the reference). Calling the model translates
    inputs with a code drawn from N(0, I) for each image.

    Networks: `G` ([image, z] -> image), `E` (image of the target domain -> (mu, logvar)),
    `D` (judges the cVAE-GAN's fakes), `D2` (the cLR-GAN's; None with use_same_D).

    Logged per step (`train_names`): G_GAN, G_GAN2 (adversarial terms of G), G_L1 =
    |G(A1, z_encoded) - B1|_1, z_L1 = |mu(E(G(A1, z_random))) - z_random|_1, kl (the
    per-example KL, summed over nz), D, D2 (real + fake, summed over scales), e_loss (the
    weighted objective E steps on, the reference's loss_G) and g_loss (G's: e_loss +
    lambda_z * z_L1). Terms are plain, unweighted values; the totals are weighted.
    Validation (`test_names`): l1_encoded = |G(A, mu(E(B))) - B|_1 (reconstruction from the
    target's own code), l1_random = |G(A, z) - B|_1 with fixed draws z, and z_recovery =
    |mu(E(G(A, z))) - z|_1.
    """

    paired = True
    # "g" first: one train step is one G update (`step`).
    optimizer_groups = ("g", "e", "d", "d2")
    options = (
        NETG.with_default("unet_256"),
        Option("netE", str, "resnet_256", "BicycleGAN's encoder E: resnet_256 / resnet_128 "
               "(E_ResNet, 5 / 4 blocks) or conv_256 / conv_128 (E_NLayers).",
               choices=BICYCLE_ENCODERS),
        N_LAYER.with_default(3), NUM_SCALES.with_default(2),
        INPUT_NC, OUTPUT_NC, NZ, NGF, NEF, NDF,
        NORM.with_default("instance"),
        Option("nl", str, "relu", "Non-linearity of BicycleGAN's U-Net decoder.",
               choices=NONLINEARITIES),
        Option("where_add", str, "all", "Where BicycleGAN's G takes z: all (every encoder "
               "level) or input (with the image only).", choices=WHERE_ADD),
        Option("upsample", str, "basic", "Upsampling of BicycleGAN's G: basic (transposed "
               "conv) or bilinear (bilinear x2, reflection pad, 3x3 conv).",
               choices=UPSAMPLE_TYPES),
        USE_DROPOUT.with_default(True),
        INIT_TYPE.with_default("xavier"), INIT_GAIN,
        GAN_MODE.with_default("lsgan"),
        Option("conditional_D", bool, False, "BicycleGAN's discriminators see (input, output) "
               "pairs instead of outputs alone."),
        Option("use_same_D", bool, False, "One discriminator for both BicycleGAN branches "
               "(the reference's default: two, D and D2)."),
        LAMBDA_L1.with_default(10.0),
        LAMBDA_GAN,
        Option("lambda_gan2", float, 1.0, "Weight of the cLR-GAN's adversarial term, "
               "D2(G(A, z_random)) (BicycleGAN's lambda_GAN2); 0 leaves D2 untrained.",
               min=0.0),
        Option("lambda_z", float, 0.5, "Weight of the latent regression |E(G(A, z)) - z|_1 "
               "(updates G only).", min=0.0),
        LAMBDA_KL,
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        self.G = define_bicycle_G(hp.netG, hp.input_nc, hp.output_nc, hp.nz, hp.ngf,
                                  norm=hp.norm, nl=hp.nl, use_dropout=hp.use_dropout,
                                  where_add=hp.where_add, upsample=hp.upsample,
                                  init_type=hp.init_type, init_gain=hp.init_gain, name="G")
        self.E = define_bicycle_E(hp.netE, hp.output_nc, hp.nz, hp.nef, norm=hp.norm,
                                  vae_like=True, init_type=hp.init_type,
                                  init_gain=hp.init_gain, name="E")
        d_nc = hp.input_nc + hp.output_nc if hp.conditional_D else hp.output_nc
        nets = dict(norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain)
        self.D = multiscale_patchgan(d_nc, hp.ndf, hp.n_layer, hp.num_scales, name="D", **nets)
        self.D2 = None if hp.use_same_D else multiscale_patchgan(
            d_nc, hp.ndf, hp.n_layer, hp.num_scales, name="D2", **nets)
        self.train_names = ["G_GAN", "G_GAN2", "G_L1", "z_L1", "kl", "D", "D2", "e_loss",
                            "g_loss"]
        self.test_names = ["l1_encoded", "l1_random", "z_recovery"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in self.train_names + self.test_names}

    @classmethod
    def check_options(cls, options):
        if options["netG"] not in BICYCLE_GENERATORS:
            raise UserError(f"--netG={options['netG']} is not a BicycleGAN generator: use one "
                            f"of {', '.join(BICYCLE_GENERATORS)} (U-Nets that take z).")
        if options["n_layer"] not in _REFERENCE_D:
            raise UserError(f"--n_layer={options['n_layer']}: BicycleGAN's discriminators "
                            "are the reference's basic_256_multi (--n_layer=3) or "
                            "basic_128_multi (--n_layer=2).")
        if options["gan_mode"] in ("wgan", "wgangp"):
            raise UserError(f"--gan_mode={options['gan_mode']} does not fit bicycle_gan, "
                            "which has no weight clipping or gradient penalty: use lsgan, "
                            "vanilla or hinge.")

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["batch_size"] % 2:
            raise UserError(f"--batch_size={config['batch_size']}: bicycle_gan splits each "
                            "batch into its cVAE-GAN and cLR-GAN halves, so it must be even "
                            "(2 in the reference; an even number per replica).")
        if config["preprocess"] in _CROPPING:
            cls._check_min_size(config, config["crop_size"], "--crop_size")

    @staticmethod
    def _check_min_size(options, size, what):
        needs = {f"--netE={options['netE']}": encoder_min_size(options["netE"]),
                 f"--n_layer={options['n_layer']} --num_scales={options['num_scales']}":
                     discriminator_min_size(_REFERENCE_D[options["n_layer"]],
                                            options["num_scales"])}
        for name, least in needs.items():
            if size < least:
                raise UserError(f"{what}={size} is too small for {name}, which needs images "
                                f"of at least {least} px: use larger images, or smaller nets "
                                "(--netE=resnet_128, --n_layer=2, fewer --num_scales).")

    def group_variables(self, group):
        net = {"g": self.G, "e": self.E, "d": self.D, "d2": self.D2}[group]
        return [] if net is None else net.trainable_variables

    # -- building and translating -------------------------------------------

    def build_for_size(self, height, width):
        """Creates every variable for height x width images (G, E, D and D2)."""
        hp = self.hp
        divisor = self.size_divisor
        if height % divisor or width % divisor:
            raise UserError(f"{height}x{width} images do not fit --netG={hp.netG}: sides must "
                            f"be multiples of {divisor}.")
        self._check_min_size(self.hparams, min(height, width), "image size")
        self.G([tf.zeros([1, height, width, hp.input_nc]), tf.zeros([1, hp.nz])],
               training=False)
        self.E(tf.zeros([1, height, width, hp.output_nc]), training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        hp = self.hp
        d_nc = hp.input_nc + hp.output_nc if hp.conditional_D else hp.output_nc
        for D in (self.D, self.D2):
            if D is not None:
                D(tf.zeros([1, height, width, d_nc]), training=False)

    def call(self, inputs, training=False):
        """Translates inputs, each with its own code drawn from N(0, I)."""
        z = tf.random.normal([tf.shape(inputs)[0], self.hp.nz])
        return tf.cast(self.G([inputs, z], training=training), tf.float32)

    @property
    def latent_dim(self):
        return self.hp.nz

    @property
    def code_generators(self):
        return {self.hp.direction: self.G}

    @property
    def generators(self):
        return self.sampling_generators(self.code_generators)

    @property
    def style_encoders(self):
        """{direction: image of the target domain -> mu(E(image))}, the reference's
        `test(encode=True)` code (the mean, no sampling)."""
        if getattr(self, "_mu_encoder", None) is None:
            # Out of Keras' attribute tracking: it holds E's variables, which E already does.
            self.__dict__["_mu_encoder"] = keras.Model(self.E.inputs, self.E.outputs[0],
                                                       name="E_mu")
        return {self.hp.direction: self._mu_encoder}

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    # -- the objective -----------------------------------------------------------

    def _pair(self, a, b):
        """What a discriminator sees: b, or (a, b) with conditional_D."""
        return tf.concat([a, b], axis=-1) if self.hp.conditional_D else b

    def _gan(self, D, images, target_is_real, for_discriminator=True):
        """Per-example adversarial loss of a multi-scale D: the sum over its scales."""
        return losses.multiscale_gan_loss(self.hp.gan_mode, D(images, training=True),
                                          target_is_real, for_discriminator)

    @staticmethod
    def split(images):
        """(encoded half, random half) of a replica's batch: its even and odd examples."""
        return images[0::2], images[1::2]

    def draw_codes(self, half):
        """This step's eps (for z_encoded) and z_random, [half, nz] each (stateless)."""
        nz = self.hp.nz
        return self.step_normal(half, [nz], stream=0), self.step_normal(half, [nz], stream=1)

    def losses_of(self, real_A, real_B, eps, z_random, training=True):
        """The generator-side objective of one batch, per example of the encoded half.

        Args:
            real_A, real_B: the replica's batch (even size).
            eps, z_random: [batch / 2, nz] draws (`draw_codes`).
            training: the mode the networks run in.

        Returns:
            (terms, images): terms maps G_GAN, G_GAN2, G_L1, z_L1, kl, e_loss and g_loss to
            [batch / 2] tensors (zeros for a term whose weight is 0); images maps the halves
            (A1, B1, A2, B2), z_encoded, mu, logvar, fake_B_encoded and fake_B_random.
        """
        hp = self.hp
        A1, A2 = self.split(real_A)
        B1, B2 = self.split(real_B)
        mu, logvar = self.E(B1, training=training)
        z_encoded = mu + eps * tf.exp(0.5 * logvar)
        fake_B_encoded = tf.cast(self.G([A1, z_encoded], training=training), tf.float32)
        fake_B_random = tf.cast(self.G([A1, z_random], training=training), tf.float32)
        zeros = tf.zeros(tf.shape(A1)[:1])
        terms = {}
        terms["G_GAN"] = (self._gan(self.D, self._pair(A1, fake_B_encoded), True, False)
                          if hp.lambda_gan > 0 else zeros)
        D2 = self.D if hp.use_same_D else self.D2
        terms["G_GAN2"] = (self._gan(D2, self._pair(A1, fake_B_random), True, False)
                           if hp.lambda_gan2 > 0 else zeros)
        terms["kl"] = losses.kl_divergence(mu, logvar, reduction="sum")
        terms["G_L1"] = losses.l1_loss(fake_B_encoded, B1)
        if hp.lambda_z > 0:
            mu2, _ = self.E(fake_B_random, training=training)
            terms["z_L1"] = losses.latent_regression_loss(mu2, z_random)
        else:
            terms["z_L1"] = zeros
        # The reference sums the KL over the half batch: x (global half batch) per example,
        # which `average` (a mean over the global half batch) turns back into that sum.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        half_batch = tf.cast(tf.shape(A1)[0] * replicas, tf.float32)
        terms["e_loss"] = (hp.lambda_gan * terms["G_GAN"] + hp.lambda_gan2 * terms["G_GAN2"]
                           + hp.lambda_L1 * terms["G_L1"]
                           + hp.lambda_kl * half_batch * terms["kl"])
        terms["g_loss"] = terms["e_loss"] + hp.lambda_z * terms["z_L1"]
        images = dict(A1=A1, A2=A2, B1=B1, B2=B2, z_encoded=z_encoded, mu=mu, logvar=logvar,
                      fake_B_encoded=fake_B_encoded, fake_B_random=fake_B_random)
        return terms, images

    def discriminator_losses(self, images):
        """{D, D2}: per-example real + fake losses (summed over scales) on detached fakes.

        D judges B1 against fake_B_encoded; D2 judges B2 against fake_B_random (with
        use_same_D, D does both and D2 reports the second). Zeros for a branch whose weight
        is 0.
        """
        hp = self.hp
        A1, A2, B1, B2 = (images[k] for k in ("A1", "A2", "B1", "B2"))
        zeros = tf.zeros(tf.shape(A1)[:1])

        def loss(D, real_A, real, fake):
            fake = tf.stop_gradient(fake)
            return (self._gan(D, self._pair(real_A, real), True)
                    + self._gan(D, self._pair(A1, fake), False))

        D2 = self.D if hp.use_same_D else self.D2
        return {
            "D": loss(self.D, A1, B1, images["fake_B_encoded"]) if hp.lambda_gan > 0
            else zeros,
            "D2": loss(D2, A2, B2, images["fake_B_random"]) if hp.lambda_gan2 > 0 else zeros,
        }

    def train_step(self, data):
        real_A, real_B = data
        hp = self.hp
        batch = real_A.shape[0]
        if batch is not None and batch % 2:
            raise UserError(f"bicycle_gan got a batch of {batch} on one replica: it splits "
                            "each replica's batch in two halves, so use an even batch per "
                            "replica (--batch_size a multiple of 2 x replicas).")
        half = tf.shape(real_A)[0] // 2
        # Every draw of the step, before any update (`step` counts G's updates).
        eps, z_random = self.draw_codes(half)

        # 1. G and E, one update each (the reference's update_G_and_E).
        with tf.GradientTape(persistent=True) as tape:
            terms, images = self.losses_of(real_A, real_B, eps, z_random)
            g_scalar = self.average(terms["g_loss"])
            # E steps on the terms before the latent regression, which reaches G only.
            e_scalar = self.average(terms["e_loss"])
        self.apply("g", tape, g_scalar)
        self.apply("e", tape, e_scalar)
        del tape

        # 2. D and D2 on this forward pass's fakes (the reference's update_D).
        train_d = hp.lambda_gan > 0 or (hp.use_same_D and hp.lambda_gan2 > 0)
        train_d2 = not hp.use_same_D and hp.lambda_gan2 > 0
        if train_d or train_d2:
            with tf.GradientTape(persistent=True) as d_tape:
                d_terms = self.discriminator_losses(images)
                d_scalar = self.average(d_terms["D"] + (d_terms["D2"] if hp.use_same_D
                                                        else 0.0))
                d2_scalar = self.average(d_terms["D2"])
            if train_d:
                self.apply("d", d_tape, d_scalar)
            if train_d2:
                self.apply("d2", d_tape, d2_scalar)
            del d_tape
        else:
            zeros = tf.zeros_like(terms["kl"])
            d_terms = {"D": zeros, "D2": zeros}
        return self._update_trackers({**terms, **d_terms})

    def _fixed_codes(self, n):
        """Codes for validation and samples: the same every evaluation (stateless, --seed)."""
        return tf.random.stateless_normal([n, self.hp.nz], seed=[self.hp.seed, 1])

    def test_step(self, data):
        real_A, real_B = data
        z = self._fixed_codes(tf.shape(real_A)[0])
        mu, _ = self.E(real_B, training=False)
        fake_encoded = tf.cast(self.G([real_A, mu], training=False), tf.float32)
        fake_random = tf.cast(self.G([real_A, z], training=False), tf.float32)
        recovered, _ = self.E(fake_random, training=False)
        return self._update_trackers({
            "l1_encoded": losses.l1_loss(fake_encoded, real_B),
            "l1_random": losses.l1_loss(fake_random, real_B),
            "z_recovery": losses.latent_regression_loss(recovered, z),
        })

    def translate(self, images):
        """Translates images in [-1, 1], each with a code drawn from N(0, I)."""
        return self(images, training=False)

    def sample_images(self, batch):
        """Rows input | G(A, mu(E(B))) | target | G(A, z) for three fixed codes z."""
        real_A, real_B = batch
        n = tf.shape(real_A)[0]
        mu, _ = self.E(real_B, training=False)
        row = [real_A, self.G([real_A, mu], training=False), real_B]
        for k in range(3):
            z = tf.random.stateless_normal([n, self.hp.nz], seed=[self.hp.seed, 2 + k])
            row.append(self.G([real_A, z], training=False))
        return self.image_grid([row])
