"""pix2pix: paired image-to-image translation with a conditional GAN.

Isola, Zhu, Zhou, Efros. "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017.

    G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 * L_L1(G)

D sees the input and an image together (x, y) or (x, G(x)) and judges
70x70 patches. Defaults follow the paper and the authors' code: U-Net 256
generator with batch norm and dropout, vanilla GAN loss, lambda_L1 = 100,
the D loss halved.
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.registry import register
from tfi2i.nets import define_D, define_G, size_divisor


@register("pix2pix")
@keras.saving.register_keras_serializable(package="tfi2i")
class Pix2Pix(TranslationModel):
    """pix2pix as a Keras model: `compile(g_optimizer, d_optimizer)`, then `fit`.

    `fit` takes a dataset of (input, target) image pairs in [-1, 1], e.g.
    `tfi2i.data.paired_dataset(...)`. Calling the model translates inputs.

    Args:
        netG: generator architecture (`unet_256`, `unet_128`, ...,
            `resnet_9blocks`, `resnet_6blocks`); see `tfi2i.nets.define_G`.
        netD: discriminator (`basic` = 70x70 PatchGAN, `n_layers`, `pixel`).
        input_nc, output_nc: channels of input and target images.
        ngf, ndf: widths of the first G and D layers.
        n_layers_D: depth of D when `netD="n_layers"`.
        norm: `batch`, `sync_batch`, `instance` or `none`.
        use_dropout: dropout 0.5 in the U-Net's inner decoder blocks, the
            paper's only source of noise.
        init_type, init_gain: weight initialisation (normal, 0.02).
        gan_mode: `vanilla` (paper), `lsgan`, `wgangp` or `hinge`.
        lambda_L1: weight of the L1 term (100 in the paper).
        lambda_gp: weight of the gradient penalty when `gan_mode="wgangp"`.
        test_time_noise: if True, `test_step` and translation run G in
            training mode, as the paper does (dropout on, batch norm with
            the test batch's statistics). Off by default: deterministic
            outputs with running statistics, which is what exports use.
            Note that Keras batch norm in training mode also moves its running
            statistics, so validating in this mode changes what an export of
            the same run computes.
        direction: which way the data were fed (`AtoB` or `BtoA`); it names
            the generator in exports.
    """

    paired = True
    optimizer_groups = ("g", "d")

    def __init__(self, netG="unet_256", netD="basic", input_nc=3, output_nc=3, ngf=64,
                 ndf=64, n_layers_D=3, norm="batch", use_dropout=True, init_type="normal",
                 init_gain=0.02, gan_mode="vanilla", lambda_L1=100.0, lambda_gp=10.0,
                 test_time_noise=False, direction="AtoB", **kwargs):
        hparams = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        super().__init__(hparams, **kwargs)
        self.gan_mode = losses.check_gan_mode(gan_mode)
        if gan_mode == "wgan":
            raise UserError("pix2pix supports gan_mode vanilla, lsgan, wgangp and hinge; "
                              "plain wgan needs weight clipping, which pix2pix does not do.")
        self.lambda_L1 = float(lambda_L1)
        self.lambda_gp = float(lambda_gp)
        self.test_time_noise = bool(test_time_noise)
        self.netG = netG
        self.direction = direction
        self.G = define_G(netG, input_nc, output_nc, ngf, norm=norm, use_dropout=use_dropout,
                          init_type=init_type, init_gain=init_gain, name="G")
        # Conditional D: it sees the input and the (real or generated) output.
        self.D = define_D(netD, input_nc + output_nc, ndf, n_layers_D=n_layers_D, norm=norm,
                          init_type=init_type, init_gain=init_gain, name="D")
        names = ["d_loss", "d_real", "d_fake", "g_loss", "g_gan", "g_l1"]
        if gan_mode == "wgangp":
            names.append("d_gp")
        self.train_names = names
        self.test_names = ["l1", "psnr", "ssim"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names + self.test_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def group_variables(self, group):
        return {"g": self.G, "d": self.D}[group].trainable_variables

    def call(self, inputs, training=False):
        return tf.cast(self.G(inputs, training=training), tf.float32)

    def build_discriminators(self, height, width):
        nc = self.hparams["input_nc"] + self.hparams["output_nc"]
        self.D(tf.zeros([1, height, width, nc]), training=False)

    def train_step(self, data):
        real_A, real_B = data
        with tf.GradientTape() as g_tape:
            fake_B = self(real_A, training=True)
            # D first, on a detached fake, then G against the updated D:
            # the order of the reference implementation.
            with g_tape.stop_recording():
                d_logs = self._train_D(real_A, real_B, tf.stop_gradient(fake_B))
            pred_fake = self.D(tf.concat([real_A, fake_B], axis=-1), training=True)
            g_gan = losses.gan_loss(self.gan_mode, pred_fake, True, for_discriminator=False)
            g_l1 = losses.l1_loss(fake_B, real_B)
            g_loss = g_gan + self.lambda_L1 * g_l1
            g_scalar = self.average(g_loss)
        self.apply("g", g_tape, g_scalar)
        return self._update_trackers({**d_logs, "g_loss": g_loss, "g_gan": g_gan, "g_l1": g_l1})

    def _train_D(self, real_A, real_B, fake_B):
        with tf.GradientTape() as d_tape:
            pred_real = self.D(tf.concat([real_A, real_B], axis=-1), training=True)
            pred_fake = self.D(tf.concat([real_A, fake_B], axis=-1), training=True)
            d_real = losses.gan_loss(self.gan_mode, pred_real, True)
            d_fake = losses.gan_loss(self.gan_mode, pred_fake, False)
            d_loss = 0.5 * (d_real + d_fake)
            logs = {"d_real": d_real, "d_fake": d_fake}
            if self.gan_mode == "wgangp":
                d_gp = losses.gradient_penalty(self.D, real_B, fake_B, condition=real_A)
                d_loss += self.lambda_gp * d_gp
                logs["d_gp"] = d_gp
            d_scalar = self.average(d_loss)
        self.apply("d", d_tape, d_scalar)
        return {"d_loss": d_loss, **logs}

    def test_step(self, data):
        real_A, real_B = data
        fake_B = self(real_A, training=self.test_time_noise)
        # PSNR/SSIM on [0, 1] images, the convention of tf.image and most papers.
        fake01, real01 = (fake_B + 1.0) / 2.0, (real_B + 1.0) / 2.0
        return self._update_trackers({
            "l1": losses.l1_loss(fake_B, real_B),
            "psnr": tf.image.psnr(fake01, real01, max_val=1.0),
            "ssim": tf.image.ssim(fake01, real01, max_val=1.0),
        })

    def translate(self, images):
        """Translates a batch of images in [-1, 1] (the paper's test mode if set)."""
        return self(images, training=self.test_time_noise)

    @property
    def generators(self):
        return {self.direction: self.G}

    @property
    def size_divisor(self):
        return size_divisor(self.netG)

    def sample_images(self, batch):
        real_A, real_B = batch
        fake_B = self.translate(real_A)
        return tf.concat([real_A, fake_B, real_B], axis=2)
