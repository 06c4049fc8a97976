"""pix2pix: paired image-to-image translation with a conditional GAN.

Isola, Zhu, Zhou, Efros. "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017.

    G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 * L_L1(G)
                          [+ lambda_feature * feature loss of D's hidden features]

D sees the input and an image together (x, y) or (x, G(x)) and judges
70x70 patches. Defaults follow the paper and the authors' code: U-Net 256
generator with batch norm and dropout, vanilla GAN loss, lambda_L1 = 100,
the D loss halved.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (FEATURE_OPTIONS, GAN_MODE, INIT_GAIN, INIT_TYPE, LAMBDA_GP,
                                   LAMBDA_L1, N_LAYERS_D, NDF, NETD, NETG, NGF, NORM, USE_DROPOUT)
from tfi2i.methods.registry import register
from tfi2i.nets import define_D, define_G, size_divisor, with_features
from tfi2i.options import Option


@register("pix2pix")
@keras.saving.register_keras_serializable(package="tfi2i")
class Pix2Pix(TranslationModel):
    """pix2pix as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes a dataset of (input, target) image pairs in [-1, 1], e.g.
    `tfi2i.data.paired_dataset(...)`. Calling the model translates inputs.

    The options (below) follow the paper and the authors' code. Two need a
    word: `use_dropout` is the paper's only source of noise; `test_time_noise`
    runs G in training mode at test time, as the paper does (dropout on, batch
    norm with the test batch's statistics). It is off by default: outputs are
    deterministic, with running statistics, which is what exports use. Keras
    batch norm in training mode also moves its running statistics, so
    validating in that mode changes what an export of the same run computes.
    """

    paired = True
    optimizer_groups = ("g", "d")
    options = (
        NETG.with_default("unet_256"), NETD, INPUT_NC, OUTPUT_NC, NGF, NDF, N_LAYERS_D,
        NORM.with_default("batch"), USE_DROPOUT.with_default(True), INIT_TYPE, INIT_GAIN,
        GAN_MODE.with_default("vanilla"),
        LAMBDA_L1,
        LAMBDA_GP,
        *FEATURE_OPTIONS,
        Option("test_time_noise", bool, False, "Run G in training mode at test time, as the "
               "paper does (dropout on, batch statistics)."),
        DIRECTION,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        self.G = define_G(hp.netG, hp.input_nc, hp.output_nc, hp.ngf, norm=hp.norm,
                          use_dropout=hp.use_dropout, init_type=hp.init_type,
                          init_gain=hp.init_gain, name="G")
        # Conditional D: it sees the input and the (real or generated) output.
        self.D = define_D(hp.netD, hp.input_nc + hp.output_nc, hp.ndf, n_layers_D=hp.n_layers_D,
                          norm=hp.norm, init_type=hp.init_type, init_gain=hp.init_gain,
                          name="D")
        names = ["d_loss", "d_real", "d_fake", "g_loss", "g_gan", "g_l1"]
        if hp.gan_mode == "wgangp":
            names.append("d_gp")
        if hp.feature_loss != "none":
            # D with its hidden activations, on D's own weights.
            self.D_features = with_features(self.D)
            names.append("g_feat")
        self.train_names = names
        self.test_names = ["l1", "psnr", "ssim"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names + self.test_names}

    @classmethod
    def check_options(cls, options):
        if options["gan_mode"] == "wgan":
            raise UserError("--gan_mode=wgan does not fit pix2pix, which has no weight clipping: "
                            "use vanilla, lsgan, wgangp or hinge.")

    def group_variables(self, group):
        return {"g": self.G, "d": self.D}[group].trainable_variables

    def call(self, inputs, training=False):
        return tf.cast(self.G(inputs, training=training), tf.float32)

    def build_discriminators(self, height, width):
        nc = self.hp.input_nc + self.hp.output_nc
        self.D(tf.zeros([1, height, width, nc]), training=False)

    def train_step(self, data):
        real_A, real_B = data
        with tf.GradientTape() as g_tape:
            fake_B = self(real_A, training=True)
            # D first, on a detached fake, then G against the updated D:
            # the order of the reference implementation.
            with g_tape.stop_recording():
                d_logs = self._train_D(real_A, real_B, tf.stop_gradient(fake_B))
            fake_pair = tf.concat([real_A, fake_B], axis=-1)
            terms = {}
            if self.hp.feature_loss == "none":
                pred_fake = self.D(fake_pair, training=True)
            else:
                pred_fake, fake_features = self.D_features(fake_pair, training=True)
                _, real_features = self.D_features(tf.concat([real_A, real_B], axis=-1),
                                                   training=True)
                terms["g_feat"] = losses.feature_loss(self.hp.feature_loss, real_features,
                                                      fake_features, self.hp.mmd_kernel)
            terms["g_gan"] = losses.gan_loss(self.hp.gan_mode, pred_fake, True,
                                             for_discriminator=False)
            terms["g_l1"] = losses.l1_loss(fake_B, real_B)
            terms["g_loss"] = terms["g_gan"] + self.hp.lambda_L1 * terms["g_l1"]
            if "g_feat" in terms:
                terms["g_loss"] += self.hp.lambda_feature * terms["g_feat"]
            g_scalar = self.average(terms["g_loss"])
        self.apply("g", g_tape, g_scalar)
        return self._update_trackers({**d_logs, **terms})

    def _train_D(self, real_A, real_B, fake_B):
        with tf.GradientTape() as d_tape:
            pred_real = self.D(tf.concat([real_A, real_B], axis=-1), training=True)
            pred_fake = self.D(tf.concat([real_A, fake_B], axis=-1), training=True)
            d_real = losses.gan_loss(self.hp.gan_mode, pred_real, True)
            d_fake = losses.gan_loss(self.hp.gan_mode, pred_fake, False)
            d_loss = 0.5 * (d_real + d_fake)
            logs = {"d_real": d_real, "d_fake": d_fake}
            if self.hp.gan_mode == "wgangp":
                d_gp = losses.gradient_penalty(self.D, real_B, fake_B, condition=real_A)
                d_loss += self.hp.lambda_gp * d_gp
                logs["d_gp"] = d_gp
            d_scalar = self.average(d_loss)
        self.apply("d", d_tape, d_scalar)
        return {"d_loss": d_loss, **logs}

    def test_step(self, data):
        real_A, real_B = data
        fake_B = self(real_A, training=self.hp.test_time_noise)
        # PSNR/SSIM on [0, 1] images, the convention of tf.image and most papers.
        fake01, real01 = (fake_B + 1.0) / 2.0, (real_B + 1.0) / 2.0
        return self._update_trackers({
            "l1": losses.l1_loss(fake_B, real_B),
            "psnr": tf.image.psnr(fake01, real01, max_val=1.0),
            "ssim": tf.image.ssim(fake01, real01, max_val=1.0),
        })

    def translate(self, images):
        """Translates a batch of images in [-1, 1] (the paper's test mode if set)."""
        return self(images, training=self.hp.test_time_noise)

    @property
    def generators(self):
        return {self.hp.direction: self.G}

    @property
    def size_divisor(self):
        return size_divisor(self.hp.netG)

    def sample_images(self, batch):
        real_A, real_B = batch
        return self.image_grid([[real_A, self.translate(real_A), real_B]])
