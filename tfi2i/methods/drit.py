"""DRIT with the DRIT++ mode-seeking term: disentangled, diverse unpaired translation.

Lee, Tseng, Huang, Singh, Yang. "Diverse Image-to-Image Translation via Disentangled
Representations", ECCV 2018; Lee, Tseng, Mao, Huang, Lu, Singh, Yang. "DRIT++: Diverse
Image-to-Image Translation via Disentangled Representations", IJCV 2020 (the mode-seeking
regularisation of Mao et al., "Mode Seeking GANs", CVPR 2019).

An image x of domain X is a content code c = E_c^X(x) (a feature map; the last residual block
of E_c^A and E_c^B is ONE set of layers, `E_c_share`, followed in training by N(0, 1) noise)
and an attribute code z (8-d; E_attr^X gives mu and logvar, z = mu + exp(logvar / 2) * eps).
G_X(c, z) decodes a content code with an attribute of X into an image of X (G_concat: z tiled
and concatenated at every stage; its first residual block `G_share` is also one set of layers
for both domains). A translation A -> B is G_B(E_c^A(a), z) with z from N(0, I) (many outputs
per input) or from E_attr^B of a reference image of B.

One iteration on an (a, b) batch, as HsinYingLee/DRIT src/model.py and train.py run it (with
MSGAN's DRIT-Mode-Seeking additions), on the "encoded" images a, b and the "random" images
a', b' (the reference's batch of 2: the first image of each domain is encoded, the second is
only a real image for the random-code discriminators):

    u = G_B(c_a, z_b), v = G_A(c_b, z_a)                      (first cross translation)
    a^ = G_A(E_c^B(u), z(E_attr^A(v))), b^ = G_B(E_c^A(v), z(E_attr^B(u)))   (second)
    L_EG = L_GAN(D_A, v) + L_GAN(D_B, u) + L_GAN^content(c_a) + L_GAN^content(c_b)
           + lambda_cycle * (|a^ - a| + |b^ - b|) + lambda_recon * (|G_A(c_a, z_a) - a| + ...)
           + lambda_kl * (KL(z_a) + KL(z_b)) + lambda_content_reg * (mean c_a^2 + mean c_b^2)
    L_G_alone = L_GAN(D_A2, G_A(c_b, z1)) + L_GAN(D_A2, G_A(c_b, z2)) + (the same for B)
           + lambda_latent * (|mu(E_attr^A(G_A(c_b, z1))) - z1| + ...)
           + lambda_ms * (1 / (mean|G_B(c_a, z2) - G_B(c_a, z1)| / mean|z2 - z1| + 1e-5) + ...)

z1, z2 ~ N(0, I). L_GAN is the reference's binary cross-entropy (vanilla GAN) summed over the
3 scales of each multi-scale discriminator; the content discriminator D_content tells c_a
(label 0) from c_b (label 1), and the encoders' content term pushes its output towards 0.5.
D_A2, D_B2 judge the random-code outputs against a', b' (both z1 and z2 outputs with the
mode-seeking term on; `lambda_ms=0` is DRIT without it: one random output, no second D term).

The update schedule (train.py, d_iter 3): iterations 1 and 2 of every 3 update D_content only
(on the content codes of a and b, `update_D_content`); iteration 3 runs the whole forward pass
above, updates D_A, D_A2, D_B, D_B2 and D_content (`update_D`), then, with the updated
discriminators, E_c + G + E_attr on L_EG and E_c + G again on L_G_alone (`update_EG`: both
gradients come from the one forward pass, the second update leaves E_attr alone). D_content's
gradient is clipped to global norm 5 (`clip_grad_norm_`, before the weight decay the
optimizer adds) and its learning rate is lr / 2.5. Every optimizer is Adam 1e-4 (0.5, 0.999)
with PyTorch's coupled weight decay 1e-4 (configs/drit.json).

Optimizer groups: "g" (E_c^A, E_c^B, G_A, G_B, the shared blocks once), "e_attr" (E_attr^A,
E_attr^B), "d" (D_A, D_A2, D_B, D_B2) and "d_content". The reference has one Adam per net;
Adam is per-parameter, so one per group is the same as long as a group's nets step equally
often, which they do ("g" twice per full iteration, E_attr once: hence its own group).

Step and learning-rate clock: `step` is the model's `iteration` counter, one per train step
whichever groups it updated, saved in checkpoints (resume continues the schedule). Every
group's learning-rate schedule is evaluated on that counter, not on its optimizer's own update
count (which runs at 1/3 (D), 2/3 (g) or 1 (D_content) per step), so `--lr_policy=linear` with
n_epochs 600 + n_epochs_decay 600 is the reference's `lambda` policy (constant for 600 epochs,
then linear to 0 at 1200), per step instead of per epoch.

Generalisations and what is not reproduced:
- Batches are read as consecutive pairs (x[0::2] encoded, x[1::2] random); the reference
  hard-codes `half_size = 1` and so only works as intended at batch 2 (its default). The
  batch size (per replica, too) must be even.
- Randomness: every draw of a train step (content noise, the attribute samples, z1, z2) is
  `step_normal` (stateless, from `--seed`, the step and a stream number), so a resumed run
  draws what an uninterrupted one does and two replicas what one device does; a content-only
  iteration draws the same content noise as a full one would (the same streams).
- train.py restarts its iteration count every epoch and makes the last two iterations of each
  epoch full ones (`it < len(train_loader) - 2`); here the schedule runs on the global step
  (full iterations at steps 3, 6, 9, ... counting from 1), whatever the epoch length.
- PyTorch 0.4's retained graph in `update_EG` computes the second gradient after the first
  update changed the weights in place; here both gradients are those of the forward pass's
  weights, which is what the code means.
- Under a multi-replica strategy the schedule cannot be a tf.cond around the updates (their
  all-reduces are merge_calls): every step runs the full iteration and the groups whose turn
  it is not get their weights and optimizer state back (as DiscoGAN does); the result is the
  same as one device's, at the cost of a full iteration per step.
- The reference's content discriminator asks for instance norm but never gets it (its
  `'norm' == 'Instance'` test); ours has none either. Its 7x7 blocks need content maps of at
  least 54x54 (216 px images); at smaller sizes set `content_d_layers` / `content_d_kernel`
  (e.g. 2 and 3 at 64 px), which `check_config` asks for.
- Losses are per example and averaged over the batch (of encoded images): the KL term is
  summed over the code's 8 dimensions (the reference's `torch.sum` over its batch of 1).
- DRIT's `gaussian_weights_init` leaves biases and linear layers at PyTorch's defaults; here
  every kernel is N(0, 0.02) and biases are 0 (tfi2i.nets.latent).
"""

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC, PLATFORM_OPTIONS
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import (INIT_GAIN, INIT_TYPE, LAMBDA_CYCLE, LAMBDA_KL, LAMBDA_RECON,
                                   N_LAYER, N_RES, NDF, NEF, NGF, NUM_SCALES, NZ)
from tfi2i.methods.registry import register
from tfi2i.nets.latent import (attribute_encoder, content_discriminator, content_encoder,
                               drit_decoder, multiscale_discriminator, res_blocks)
from tfi2i.options import Option

# The run's --seed: it seeds the step's noise draws (`step_normal`).
_SEED = next(o for o in PLATFORM_OPTIONS if o.name == "seed")

# Noise streams of one step (`step_normal`'s `stream`).
_STREAMS = {"content_a": 0, "content_b": 1, "attr_a": 2, "attr_b": 3, "z_random": 4,
            "z_random2": 5, "content_fake_a": 6, "content_fake_b": 7, "attr_recon_a": 8,
            "attr_recon_b": 9}
# Preprocessing modes whose training images are crops of crop_size.
_CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")
# Content encoders: two stride-2 convolutions; decoders: two x2 transposed convolutions.
_DIVISOR = 4


def _unique(variables):
    """Each variable once (the shared blocks are in two nets), in first-seen order."""
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _multiscale_fits(size, n_layer, num_scales):
    """Whether every scale of a multi-scale D keeps at least a 1x1 map on `size` px images."""
    for _ in range(num_scales):
        s = size
        for _ in range(n_layer):
            if s < 2:  # reflection padding of 1 needs 2 pixels
                return False
            s //= 2  # 4x4, stride 2, padding 1
        if s < 1:
            return False
        size = (size + 1) // 2  # AvgPool2d(3, 2, 1)
    return True


def _content_d_output(size, layers, kernel):
    """Side of D_content's last map on content codes of side `size` (< 1: too small)."""
    for _ in range(layers):
        if size < 2:
            return 0
        size = (size + 2 - kernel) // 2 + 1
        if size < 1:
            return 0
    return size - 3  # the 4x4 unpadded block


def _bce(logits, target):
    """Per-example mean sigmoid cross-entropy against a constant target (DRIT's BCE)."""
    logits = tf.cast(logits, tf.float32)
    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                   logits=logits)
    return tf.reduce_mean(tf.reshape(loss, [tf.shape(loss)[0], -1]), axis=1)


def _multiscale_bce(outputs, target):
    """DRIT's loss of a multi-scale D's outputs: the BCE of each scale, summed over scales."""
    return tf.add_n([_bce(o, target) for o in outputs])


def _judge(D, batches):
    """D's outputs (a list over scales) for each of `batches`, from one call on all of them
    (the discriminators have no normalisation: each image's output is its own)."""
    outputs = D(tf.concat(batches, 0), training=True)
    if not isinstance(outputs, (list, tuple)):  # a one-scale D returns its map alone
        outputs = [outputs]
    split = [tf.split(o, len(batches)) for o in outputs]
    return [[scale[i] for scale in split] for i in range(len(batches))]


@register("drit")
@keras.saving.register_keras_serializable(package="tfi2i")
class DRIT(TranslationModel):
    """DRIT / DRIT++ as a Keras model: `compile(g_optimizer, e_attr_optimizer, d_optimizer,
    d_content_optimizer)`, then `fit` on unpaired (A, B) batches in [-1, 1] (even batch sizes).

    As in CycleGAN, `direction` acts on the data: domain A is the batch's first element, and
    calling the model translates A -> B with an attribute code drawn from N(0, I).
    `code_generators` are {direction: [image, z] -> image} (content encoder of the source, the
    target's decoder), `generators` the same with z drawn inside, `style_encoders` the target
    domain's attribute means.

    Logged per step (`train_names`), plain values (not multiplied by their weights; the G
    and D terms only on full iterations): D_A, D_A2, D_B, D_B2 (each D's loss, summed over
    scales; D_A2 over both random outputs), D_content, gan_A, gan_B (adversarial terms of
    G_A(c_b, z_a) and G_B(c_a, z_b)), gan2_A, gan2_B (of the random-code outputs, on D_A2 and
    D_B2), gan_content_A, gan_content_B, cross_A = |a^ - a|_1, cross_B, self_A =
    |G_A(c_a, z_a) - a|_1, self_B, kl_A, kl_B (KL of the attribute codes, summed over their
    dimensions), content_reg_A, content_reg_B (mean squared content codes), latent_A =
    |mu(E_attr^A(G_A(c_b, z1))) - z1|_1, latent_B, ms_AB, ms_BA (mode-seeking terms; 0 with
    lambda_ms 0), and the weighted totals eg_loss, g_alone_loss, d_loss (the four image Ds).
    Validation (`test_names`), with attribute means and no noise: cross_A, cross_B, self_A,
    self_B.
    """

    paired = False
    bidirectional = True
    optimizer_groups = ("g", "e_attr", "d", "d_content")
    options = (
        INPUT_NC, OUTPUT_NC,
        NGF, NEF, NDF, NZ,
        N_RES.with_default(3),
        NUM_SCALES, N_LAYER,
        Option("content_d_layers", int, 3, "Strided blocks of DRIT's content discriminator "
               "(reflect pad 1, stride 2, content_d_kernel wide); the reference's 3 blocks of "
               "7x7 need images of 216 px or more.", min=1),
        Option("content_d_kernel", int, 7, "Kernel size of the content discriminator's "
               "strided blocks (DRIT: 7).", min=2),
        INIT_TYPE, INIT_GAIN,
        LAMBDA_CYCLE,
        LAMBDA_RECON,
        LAMBDA_KL,
        Option("lambda_latent", float, 10.0, "Weight of DRIT's latent regression "
               "|mu(E_attr(G(c, z))) - z|_1 of the random-code outputs (updates E_c and G).",
               min=0.0),
        Option("lambda_content_reg", float, 0.01, "Weight of DRIT's L2 regularisation of the "
               "content codes, mean(c^2).", min=0.0),
        Option("lambda_ms", float, 1.0, "Weight of the DRIT++ mode-seeking term "
               "1 / (mean|G(c, z2) - G(c, z1)| / mean|z2 - z1| + 1e-5); 0 is DRIT without it "
               "(one random-code output per domain).", min=0.0),
        Option("d_iter", int, 3, "DRIT's update ratio: steps where step % d_iter != 0 "
               "(counting from 1) update the content discriminator only; the others update "
               "every net.", min=1),
        Option("d_content_lr_ratio", float, 0.4, "Learning rate of the content "
               "discriminator, relative to --lr (DRIT: lr / 2.5).", min=0.0),
        Option("d_content_clip_norm", float, 5.0, "Global gradient-norm clipping of the "
               "content discriminator (DRIT: 5); 0 turns it off.", min=0.0),
        DIRECTION,
        _SEED,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        dim = 4 * hp.ngf  # the content code's channels (256 in DRIT)
        init = dict(init_type=hp.init_type, init_gain=hp.init_gain)
        # E_content: conv_share is ONE residual block both domains' encoders end with. Its
        # GaussianNoiseLayer is added in the train step from step_normal (no SeedGenerator).
        self.E_c_share = res_blocks(1, dim, name="E_c_share", **init)
        encoder = dict(dim=hp.ngf, n_downsample=2, n_res=hp.n_res, norm="instance",
                       activation="relu", pad_type="reflect", shared=self.E_c_share,
                       down_kernel=3, first_norm="none", first_activation="lrelu",
                       lrelu_slope=0.01, **init)
        self.E_c_A = content_encoder(hp.input_nc, name="E_c_A", **encoder)
        self.E_c_B = content_encoder(hp.output_nc, name="E_c_B", **encoder)
        # E_attr_concat, norm_layer None, LeakyReLU 0.2.
        attr = dict(ndf=hp.nef, n_blocks=4, max_mult=4, nz=hp.nz, norm="none",
                    activation="lrelu", lrelu_slope=0.2, pad_type="reflect", **init)
        self.E_attr_A = attribute_encoder(hp.input_nc, name="E_attr_A", **attr)
        self.E_attr_B = attribute_encoder(hp.output_nc, name="E_attr_B", **attr)
        # G_concat: dec_share is one residual block both decoders start with.
        self.G_share = res_blocks(1, dim, name="G_share", **init)
        self.G_A = drit_decoder(hp.input_nc, dim, hp.nz, hp.n_res, shared=self.G_share,
                                name="G_A", **init)
        self.G_B = drit_decoder(hp.output_nc, dim, hp.nz, hp.n_res, shared=self.G_share,
                                name="G_B", **init)
        # MultiScaleDis: ch 64, n_layer 4, 3 scales, no norm, reflect, LeakyReLU 0.01.
        dis = dict(dim=hp.ndf, n_layer=hp.n_layer, num_scales=hp.num_scales, norm="none",
                   activation="lrelu", pad_type="reflect", lrelu_slope=0.01, **init)
        self.D_A = multiscale_discriminator(hp.input_nc, name="D_A", **dis)
        self.D_A2 = multiscale_discriminator(hp.input_nc, name="D_A2", **dis)
        self.D_B = multiscale_discriminator(hp.output_nc, name="D_B", **dis)
        self.D_B2 = multiscale_discriminator(hp.output_nc, name="D_B2", **dis)
        self.D_content = content_discriminator(dim, dim, n_layers=hp.content_d_layers,
                                               kernel_size=hp.content_d_kernel, norm="none",
                                               lrelu_slope=0.01, pad_type="reflect", **init)
        # The multimodal interface: [image, z] -> image, and the attribute means.
        self.G_AtoB = self._code_generator(self.E_c_A, self.G_B, hp.input_nc, "G_AtoB")
        self.G_BtoA = self._code_generator(self.E_c_B, self.G_A, hp.output_nc, "G_BtoA")
        self.attr_mean_A = self._attribute_mean(self.E_attr_A, hp.input_nc, "attr_mean_A")
        self.attr_mean_B = self._attribute_mean(self.E_attr_B, hp.output_nc, "attr_mean_B")
        # Train steps done, whichever groups moved: `step`, the schedule's and the LR's clock.
        # ONLY_FIRST_REPLICA, like an optimizer's iterations, so replicas can add to it.
        self.iteration = keras.Variable(0, dtype="int64", trainable=False,
                                        aggregation="only_first_replica", name="iteration")

        self.d_names = ["D_A", "D_A2", "D_B", "D_B2", "d_loss"]
        self.g_names = ["gan_A", "gan_B", "gan_content_A", "gan_content_B", "cross_A",
                        "cross_B", "self_A", "self_B", "kl_A", "kl_B", "content_reg_A",
                        "content_reg_B", "eg_loss", "gan2_A", "gan2_B", "latent_A", "latent_B",
                        "ms_AB", "ms_BA", "g_alone_loss"]
        self.train_names = ["D_content"] + self.d_names + self.g_names
        self.test_names = ["cross_A", "cross_B", "self_A", "self_B"]
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in dict.fromkeys(self.train_names + self.test_names)}

    @staticmethod
    def _code_generator(encoder, decoder, channels, name):
        image = keras.Input(shape=(None, None, channels), name="images")
        z = keras.Input(shape=(int(decoder.inputs[1].shape[-1]),), name="codes")
        return keras.Model([image, z], decoder([encoder(image), z]), name=name)

    @staticmethod
    def _attribute_mean(encoder, channels, name):
        image = keras.Input(shape=(None, None, channels), name="images")
        mu, _ = encoder(image)
        return keras.Model(image, mu, name=name)

    # -- options and sizes ------------------------------------------------------------

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["batch_size"] % 2:
            raise UserError(f"--batch_size={config['batch_size']}: DRIT reads its batches as "
                            "pairs (an image to encode and one for the random-code "
                            "discriminators; the reference trains on 2): use an even batch "
                            "size (2 per replica under a multi-device strategy).")
        if config["preprocess"] in _CROPPING:
            cls.check_size(config["crop_size"], config)

    @staticmethod
    def check_size(size, options):
        """Raises UserError unless images of side `size` fit the nets of these `options`."""
        if size % _DIVISOR:
            raise UserError(f"--crop_size={size}: DRIT's encoders halve images twice and its "
                            f"decoders double them back, so sides must be multiples of "
                            f"{_DIVISOR}: use --crop_size={max(_DIVISOR, size // _DIVISOR * 4)}.")
        n_layer, num_scales = options["n_layer"], options["num_scales"]
        if not _multiscale_fits(size, n_layer, num_scales):
            raise UserError(f"--crop_size={size} is too small for the discriminators' "
                            f"--n_layer={n_layer} stride-2 blocks at --num_scales={num_scales} "
                            f"scales: use --crop_size={2 ** (n_layer + num_scales - 1)} or more, "
                            "or fewer layers or scales.")
        layers, kernel = options["content_d_layers"], options["content_d_kernel"]
        if _content_d_output(size // _DIVISOR, layers, kernel) < 1:
            fits = [(n, k) for n in (3, 2, 1) for k in (7, 5, 4, 3)
                    if _content_d_output(size // _DIVISOR, n, k) >= 1]
            hint = (f"e.g. --content_d_layers={fits[0][0]} --content_d_kernel={fits[0][1]}"
                    if fits else f"a --crop_size of 216 or more")
            raise UserError(f"--crop_size={size} gives {size // _DIVISOR}x{size // _DIVISOR} "
                            f"content codes, too small for the content discriminator's "
                            f"--content_d_layers={layers} blocks of --content_d_kernel={kernel} "
                            f"(the reference's 3 x 7 need 216 px): use {hint}.")

    def group_variables(self, group):
        nets = {"g": (self.E_c_A, self.E_c_B, self.G_A, self.G_B),
                "e_attr": (self.E_attr_A, self.E_attr_B),
                "d": (self.D_A, self.D_A2, self.D_B, self.D_B2),
                "d_content": (self.D_content,)}[group]
        return _unique(v for net in nets for v in net.trainable_variables)

    @property
    def step(self):
        """Train steps done (whatever they updated), restored with the model on resume."""
        return self.iteration

    def compile(self, jit_compile=False, weight_decay=0.0, ema_decay=0.0, **optimizers):
        """As `TranslationModel.compile`; then every group's learning rate runs on `step`.

        The optimizers come with the run's schedule (or a constant); each is re-pointed to
        evaluate it at the model's `iteration` (see the module docstring), D_content's times
        `d_content_lr_ratio`.
        """
        super().compile(jit_compile=jit_compile, weight_decay=weight_decay,
                        ema_decay=ema_decay, **optimizers)
        for group, optimizer in self.optimizers.items():
            inner = getattr(optimizer, "inner_optimizer", optimizer)
            scale = self.hp.d_content_lr_ratio if group == "d_content" else 1.0
            # Not the `learning_rate` setter: it would untrack a constant rate's variable
            # from the optimizer's variable list, which checkpoints refuse (a non-append
            # change of a tracked list). The variable stays, saved and unused.
            inner._learning_rate = self._clocked(inner._learning_rate, scale)

    def _clocked(self, rate, scale):
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            return lambda: tf.cast(rate(self.iteration), tf.float32) * scale
        value = float(keras.ops.convert_to_numpy(rate)) * scale
        return lambda: tf.constant(value, tf.float32)

    # -- translation ------------------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates domain A to B (the data's `direction`) with z drawn from N(0, I)."""
        z = tf.random.normal([tf.shape(inputs)[0], self.hp.nz])
        return tf.cast(self.G_AtoB([inputs, z], training=training), tf.float32)

    def build_for_size(self, height, width):
        hp = self.hp
        self.check_size(min(height, width), vars(hp))
        for name, channels in (("A", hp.input_nc), ("B", hp.output_nc)):
            x = tf.zeros([1, height, width, channels])
            content = getattr(self, f"E_c_{name}")(x, training=False)
            getattr(self, f"E_attr_{name}")(x, training=False)
            getattr(self, f"G_{name}")([content, tf.zeros([1, hp.nz])], training=False)
        self.D_content(content, training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        for name, channels in (("A", self.hp.input_nc), ("B", self.hp.output_nc)):
            x = tf.zeros([1, height, width, channels])
            getattr(self, f"D_{name}")(x, training=False)
            getattr(self, f"D_{name}2")(x, training=False)

    # -- the forward pass -------------------------------------------------------------

    def content(self, domain, images, stream):
        """E_c of `domain` plus the training noise of `stream` (DRIT's GaussianNoiseLayer)."""
        c = getattr(self, f"E_c_{domain}")(images, training=True)
        noise = self.step_normal(tf.shape(c)[0], tf.shape(c)[1:], stream)
        return c + tf.cast(noise, c.dtype)

    def attribute(self, domain, images, stream):
        """(z, mu, logvar) of E_attr of `domain`, z = mu + exp(logvar / 2) * eps(stream)."""
        mu, logvar = getattr(self, f"E_attr_{domain}")(images, training=True)
        mu, logvar = tf.cast(mu, tf.float32), tf.cast(logvar, tf.float32)
        eps = self.step_normal(tf.shape(mu)[0], [self.hp.nz], stream)
        return mu + tf.exp(0.5 * logvar) * eps, mu, logvar

    @staticmethod
    def split_pairs(images):
        """(encoded, random): the first and second image of each consecutive pair."""
        batch = images.shape[0]
        if batch is not None and batch % 2:
            raise UserError(f"DRIT got a batch of {batch} images per replica; it reads "
                            "batches as pairs: use an even --batch_size per replica.")
        return images[0::2], images[1::2]

    def forward(self, real_A, real_B):
        """DRIT's `forward()` (with the mode-seeking second code): every image and code.

        Returns:
            A dict of tensors named as in the reference: a, b (encoded halves), a_random,
            b_random, c_a, c_b, mu_a, logvar_a, mu_b, logvar_b, z_random (and z_random2),
            fake_A_encoded = G_A(c_b, z_a), fake_AA = G_A(c_a, z_a), fake_A_random =
            G_A(c_b, z_random) (and fake_A_random2), the same for B, fake_A_recon,
            fake_B_recon (the second cross translation), mu2_a, mu2_b (attribute means of the
            random-code outputs).
        """
        ms = self.hp.lambda_ms > 0
        a, a_random = self.split_pairs(real_A)
        b, b_random = self.split_pairs(real_B)
        n = tf.shape(a)[0]
        t = dict(a=a, b=b, a_random=a_random, b_random=b_random)
        t["c_a"] = self.content("A", a, _STREAMS["content_a"])
        t["c_b"] = self.content("B", b, _STREAMS["content_b"])
        z_a, t["mu_a"], t["logvar_a"] = self.attribute("A", a, _STREAMS["attr_a"])
        z_b, t["mu_b"], t["logvar_b"] = self.attribute("B", b, _STREAMS["attr_b"])
        codes = [self.step_normal(n, [self.hp.nz], _STREAMS["z_random"])]
        if ms:
            codes.append(self.step_normal(n, [self.hp.nz], _STREAMS["z_random2"]))
        t["z_random"] = codes[0]
        if ms:
            t["z_random2"] = codes[1]
        # First cross translation, batched like the reference's torch.cat (instance and layer
        # norms work per image, so this equals separate calls).
        c_a, c_b = t["c_a"], t["c_b"]
        for name, decoder, own, other, z_own in (("A", self.G_A, c_a, c_b, z_a),
                                                  ("B", self.G_B, c_b, c_a, z_b)):
            content = tf.concat([other, own] + [other] * len(codes), 0)
            z = tf.concat([z_own, z_own] + codes, 0)
            parts = tf.split(decoder([content, z], training=True), 2 + len(codes))
            t[f"fake_{name}_encoded"], t[f"fake_{name}{name}"] = parts[0], parts[1]
            t[f"fake_{name}_random"] = parts[2]
            if ms:
                t[f"fake_{name}_random2"] = parts[3]
        # Second cross translation: the content of a comes back from fake_B_encoded, its
        # attribute from fake_A_encoded.
        c_recon_b = self.content("A", t["fake_A_encoded"], _STREAMS["content_fake_a"])
        c_recon_a = self.content("B", t["fake_B_encoded"], _STREAMS["content_fake_b"])
        z_recon_a, _, _ = self.attribute("A", t["fake_A_encoded"], _STREAMS["attr_recon_a"])
        z_recon_b, _, _ = self.attribute("B", t["fake_B_encoded"], _STREAMS["attr_recon_b"])
        t["fake_A_recon"] = self.G_A([c_recon_a, z_recon_a], training=True)
        t["fake_B_recon"] = self.G_B([c_recon_b, z_recon_b], training=True)
        # Latent regression: the attribute means of the random-code outputs.
        t["mu2_a"] = tf.cast(self.E_attr_A(t["fake_A_random"], training=True)[0], tf.float32)
        t["mu2_b"] = tf.cast(self.E_attr_B(t["fake_B_random"], training=True)[0], tf.float32)
        return t

    # -- the objectives, per example (of the encoded half) ------------------------------

    def content_discriminator_loss(self, c_a, c_b):
        """`backward_contentD`: c_b labelled real (1), c_a fake (0), on detached codes."""
        fake, real = _judge(self.D_content, [tf.stop_gradient(c_a), tf.stop_gradient(c_b)])
        return _bce(real[0], 1.0) + _bce(fake[0], 0.0)

    def discriminator_losses(self, t):
        """`backward_D` of D_A, D_A2, D_B, D_B2 on detached fakes, and their sum d_loss."""
        def loss(D, real, fakes):
            real_out, *fake_outs = _judge(D, [real] + [tf.stop_gradient(f) for f in fakes])
            real_term = _multiscale_bce(real_out, 1.0)
            return tf.add_n([real_term + _multiscale_bce(out, 0.0) for out in fake_outs])

        ms = self.hp.lambda_ms > 0
        terms = {}
        for name in ("A", "B"):
            randoms = [t[f"fake_{name}_random"]] + ([t[f"fake_{name}_random2"]] if ms else [])
            terms[f"D_{name}"] = loss(getattr(self, f"D_{name}"), t[name.lower()],
                                      [t[f"fake_{name}_encoded"]])
            terms[f"D_{name}2"] = loss(getattr(self, f"D_{name}2"), t[f"{name.lower()}_random"],
                                       randoms)
        terms["d_loss"] = terms["D_A"] + terms["D_A2"] + terms["D_B"] + terms["D_B2"]
        return terms

    def encoder_generator_losses(self, t):
        """`backward_EG` and `backward_G_alone` (with the DRIT++ terms): per-example terms,
        eg_loss and g_alone_loss, computed with the discriminators as they are now."""
        hp = self.hp
        ms = hp.lambda_ms > 0
        content_a, content_b = _judge(self.D_content, [t["c_a"], t["c_b"]])
        terms = {
            "gan_content_A": _bce(content_a[0], 0.5),
            "gan_content_B": _bce(content_b[0], 0.5),
            "gan_A": _multiscale_bce(_judge(self.D_A, [t["fake_A_encoded"]])[0], 1.0),
            "gan_B": _multiscale_bce(_judge(self.D_B, [t["fake_B_encoded"]])[0], 1.0),
            "kl_A": losses.kl_divergence(t["mu_a"], t["logvar_a"], "sum"),
            "kl_B": losses.kl_divergence(t["mu_b"], t["logvar_b"], "sum"),
            "content_reg_A": losses.latent_l2(t["c_a"]),
            "content_reg_B": losses.latent_l2(t["c_b"]),
            "cross_A": losses.l1_loss(t["fake_A_recon"], t["a"]),
            "cross_B": losses.l1_loss(t["fake_B_recon"], t["b"]),
            "self_A": losses.l1_loss(t["fake_AA"], t["a"]),
            "self_B": losses.l1_loss(t["fake_BB"], t["b"]),
        }
        terms["eg_loss"] = (
            terms["gan_A"] + terms["gan_B"] + terms["gan_content_A"] + terms["gan_content_B"]
            + hp.lambda_recon * (terms["self_A"] + terms["self_B"])
            + hp.lambda_cycle * (terms["cross_A"] + terms["cross_B"])
            + hp.lambda_content_reg * (terms["content_reg_A"] + terms["content_reg_B"])
            + hp.lambda_kl * (terms["kl_A"] + terms["kl_B"]))
        zeros = tf.zeros_like(terms["gan_A"])
        for name in ("A", "B"):
            D2 = getattr(self, f"D_{name}2")
            randoms = [t[f"fake_{name}_random"]] + ([t[f"fake_{name}_random2"]] if ms else [])
            terms[f"gan2_{name}"] = tf.add_n([_multiscale_bce(out, 1.0)
                                              for out in _judge(D2, randoms)])
            terms[f"latent_{name}"] = losses.latent_regression_loss(
                t[f"mu2_{name.lower()}"], t["z_random"])
        for key, name in (("ms_AB", "B"), ("ms_BA", "A")):
            terms[key] = (losses.mode_seeking_loss(t[f"fake_{name}_random2"],
                                                   t[f"fake_{name}_random"], t["z_random2"],
                                                   t["z_random"]) if ms else zeros)
        terms["g_alone_loss"] = (
            terms["gan2_A"] + terms["gan2_B"]
            + hp.lambda_latent * (terms["latent_A"] + terms["latent_B"])
            + hp.lambda_ms * (terms["ms_AB"] + terms["ms_BA"]))
        return terms

    # -- updates ----------------------------------------------------------------------

    def update(self, groups, tape, loss, clip_norm=0.0):
        """One gradient of `loss` for the variables of `groups`, each group's optimizer
        applying its part, with PyTorch's order: [clip to global norm `clip_norm`], add
        weight_decay * w, step.

        Unlike `TranslationModel.apply` this is right under several replicas for clipping
        (the clipped gradient is the all-reduced one, as one device's) and weight decay (added
        once, not once per replica before the optimizer sums the replicas' gradients).
        """
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        scaled = any(isinstance(self.optimizers[g], keras.optimizers.LossScaleOptimizer)
                     for g in groups)
        # With loss scaling each optimizer has its own scale: one gradient per group.
        for batch in ([(g,) for g in groups] if scaled else [tuple(groups)]):
            optimizer = self.optimizers[batch[0]]
            scale = (tf.cast(optimizer.dynamic_scale, tf.float32)
                     if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else 1.0)
            variables = [self.group_variables(g) for g in batch]
            flat = [v for vs in variables for v in vs]
            # The scale as the loss's upstream gradient: the backward pass runs scaled.
            grads = tape.gradient(loss, flat, output_gradients=tf.cast(scale, loss.dtype))
            if clip_norm:
                if replicas > 1:
                    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
                grads, _ = tf.clip_by_global_norm(grads, clip_norm * scale)
                # The optimizer sums the replicas' (now equal) gradients again.
                grads = [g / replicas for g in grads]
            if getattr(self, "weight_decay", 0.0):
                decay = self.weight_decay / replicas
                grads = [None if g is None else g + decay * scale * tf.cast(v, g.dtype)
                         for g, v in zip(grads, flat)]
            start = 0
            for group, vs in zip(batch, variables):
                self.optimizers[group].apply(grads[start:start + len(vs)], vs)
                start += len(vs)
                if getattr(self, "ema", None) is not None:
                    self.ema.update(vs)

    def _update_content_discriminator(self, c_a, c_b):
        with tf.GradientTape() as tape:
            loss = self.content_discriminator_loss(c_a, c_b)
            scalar = self.average(loss)
        self.update(("d_content",), tape, scalar, clip_norm=self.hp.d_content_clip_norm)
        return loss

    def content_iteration(self, real_A, real_B):
        """`update_D_content`: the content codes of the encoded images, one D_content step."""
        a, _ = self.split_pairs(real_A)
        b, _ = self.split_pairs(real_B)
        c_a = self.content("A", a, _STREAMS["content_a"])
        c_b = self.content("B", b, _STREAMS["content_b"])
        d_content = self._update_content_discriminator(c_a, c_b)
        zeros = tf.zeros_like(d_content)
        return {"D_content": d_content, **{n: zeros for n in self.d_names + self.g_names}}

    def full_iteration(self, real_A, real_B):
        """`update_D` then `update_EG`, from one forward pass."""
        with tf.GradientTape(persistent=True) as tape:
            t = self.forward(real_A, real_B)
            with tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_terms = self.discriminator_losses(t)
                    d_scalar = self.average(d_terms["d_loss"])
                self.update(("d",), d_tape, d_scalar)
                d_content = self._update_content_discriminator(t["c_a"], t["c_b"])
            g_terms = self.encoder_generator_losses(t)
            eg = self.average(g_terms["eg_loss"])
            alone = self.average(g_terms["g_alone_loss"])
        self.update(("g", "e_attr"), tape, eg)
        self.update(("g",), tape, alone)
        del tape
        return {"D_content": d_content, **d_terms, **g_terms}

    def _full_iteration_masked(self, full, real_A, real_B):
        """`full_iteration`, then the groups other than d_content get their variables and
        optimizer state back unless `full` (see the module docstring: multi-replica)."""
        saved = []
        for group in ("g", "e_attr", "d"):
            variables = self.group_variables(group) + list(self.optimizers[group].variables)
            saved.append((variables, [tf.identity(v.value) for v in variables]))
        terms = self.full_iteration(real_A, real_B)

        def put_back(strategy, turn, variables, old):
            keep = lambda var, before, on: var.assign(tf.where(on, var, before))
            for var, before in zip(variables, old):
                strategy.extended.update(var.value if hasattr(var, "value") else var, keep,
                                         args=(before, turn), group=False)

        context = tf.distribute.get_replica_context()
        for variables, old in saved:
            context.merge_call(put_back, args=(full, variables, old))
        return terms

    def is_full_iteration(self, step):
        """Whether the step after `step` steps is a full one: (it + 1) % d_iter == 0."""
        return tf.equal((tf.cast(step, tf.int64) + 1) % self.hp.d_iter, 0)

    def train_step(self, data):
        real_A, real_B = data
        full = self.is_full_iteration(self.iteration.value)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            terms = self._full_iteration_masked(full, real_A, real_B)
        else:
            terms = tf.cond(full, lambda: self.full_iteration(real_A, real_B),
                            lambda: self.content_iteration(real_A, real_B))
        self.iteration.assign_add(1)
        # The G and D terms count only on full iterations.
        weight = tf.cast(full, tf.float32)
        for name in self.train_names:
            self.trackers[name].update_state(
                tf.reduce_mean(terms[name]), sample_weight=1.0 if name == "D_content" else weight)
        return {name: self.trackers[name].result() for name in self.train_names}

    def test_step(self, data):
        real_A, real_B = data
        ev = dict(training=False)
        c_a, c_b = self.E_c_A(real_A, **ev), self.E_c_B(real_B, **ev)
        mu_a, mu_b = self.attr_mean_A(real_A, **ev), self.attr_mean_B(real_B, **ev)
        u, v = self.G_B([c_a, mu_b], **ev), self.G_A([c_b, mu_a], **ev)
        rec_a = self.G_A([self.E_c_B(u, **ev), self.attr_mean_A(v, **ev)], **ev)
        rec_b = self.G_B([self.E_c_A(v, **ev), self.attr_mean_B(u, **ev)], **ev)
        return self._update_trackers({
            "cross_A": losses.l1_loss(rec_a, real_A), "cross_B": losses.l1_loss(rec_b, real_B),
            "self_A": losses.l1_loss(self.G_A([c_a, mu_a], **ev), real_A),
            "self_B": losses.l1_loss(self.G_B([c_b, mu_b], **ev), real_B)})

    # -- hooks for the trainer and the exporter ---------------------------------------

    @property
    def latent_dim(self):
        return self.hp.nz

    @property
    def code_generators(self):
        return self.both_ways(self.G_AtoB, self.G_BtoA)

    @property
    def generators(self):
        return self.sampling_generators(self.code_generators)

    @property
    def style_encoders(self):
        return self.both_ways(self.attr_mean_B, self.attr_mean_A)

    @property
    def size_divisor(self):
        return _DIVISOR

    def display_codes(self, count):
        """`count` fixed attribute codes (the same for every sample grid of a run)."""
        return tf.random.stateless_normal([count, self.hp.nz], seed=[self.hp.seed, 2018])

    def sample_images(self, batch):
        """Rows real | self-reconstruction | 3 translations (3 fixed codes): A, then B rows."""
        real_A, real_B = batch
        ev = dict(training=False)
        rows = []
        for real, own, translate, attr in ((real_A, self.G_A, self.G_AtoB, self.attr_mean_A),
                                           (real_B, self.G_B, self.G_BtoA, self.attr_mean_B)):
            n = tf.shape(real)[0]
            encoder = self.E_c_A if own is self.G_A else self.E_c_B
            row = [real, own([encoder(real, **ev), attr(real, **ev)], **ev)]
            for code in tf.unstack(self.display_codes(3)):
                row.append(translate([real, tf.tile(code[None], [n, 1])], **ev))
            rows.append(row)
        return self.image_grid(rows)
