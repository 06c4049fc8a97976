"""DTN: the Domain Transfer Network, one direction S -> T.

Taigman, Polyak, Wolf. "Unsupervised Cross-Domain Image Generation", ICLR 2017.

    f   a feature extractor pretrained on the source domain S (digits: a digit
        classifier), frozen afterwards
    g   a decoder; the translation is G = g o f
    D   a three-way discriminator: D_1 "generated from a source sample",
        D_2 "generated from a target sample", D_3 "a real target sample"

    L_D     = -E_x log D_1(g(f(x))) - E_t log D_2(g(f(t))) - E_t log D_3(t)
    L_GANG  = -E_x log D_3(g(f(x))) - E_t log D_3(g(f(t)))
    L_CONST = E_x |f(x) - f(g(f(x)))|^2           (f-constancy)
    L_TID   = E_t |t - g(f(t))|^2                  (identity on target samples)
    L_G     = L_GANG + alpha L_CONST + beta L_TID + gamma L_TV

with x from S and t from T; digits: alpha = beta = 15, gamma = 0 (paper,
section 5.1). The squared distances are means over the feature / pixel
elements, as the reference's `tf.reduce_mean(tf.square(...))`.

Paper (defaults) vs the authors' code (yunjey/domain-transfer-network, the
reference the issue names; options where they differ):

- D: three-way softmax, as above (paper; `d_mode=three_way`). The reference
  has a binary sigmoid D, fakes of either kind labelled 0 and real targets 1
  (`d_mode=binary`).
- f: frozen in the second phase, weights and batch-norm statistics (paper).
  The reference also trains f on the f-constancy loss now and then; not
  reproduced (the issue asks for f frozen).
- Update schedule: the reference's, per training step: on a source batch one
  D update on its source term then six G updates on the source terms
  (GAN + alpha L_CONST + gamma L_TV); on a target batch two D updates on the
  target terms then four G updates on the target terms (GAN + beta L_TID +
  gamma L_TV): `schedule=reference`, the default. Each update recomputes its
  forward pass, as the reference's separate `sess.run` calls do. The paper
  gives no schedule; `schedule=1:1` is one D update on L_D and one G update on
  L_G per step. D and G each have one Adam (the reference keeps separate
  Adam states for its source-side and target-side updates).
- Architectures (the reference's; the paper describes the same four-block
  shapes): f = 3 x [3x3 stride-2 conv, batch norm, ReLU] with 64, 128, 256
  filters, then a 4x4 valid conv to 128 features, batch norm and tanh
  ([N, 1, 1, 128] for 32 x 32 inputs); the pretraining classifier adds a 1x1
  conv to 10 logits. g = a 4x4 valid transposed conv to 4x4x512, two 3x3
  stride-2 transposed convs (256, 128), each with batch norm and ReLU, and a
  3x3 stride-2 transposed conv to output_nc channels with tanh (32 x 32).
  D = 3x3 stride-2 convs with 128 (ReLU, then batch norm and ReLU), 256 and
  512 filters (batch norm, ReLU), then a 4x4 valid conv to 3 logits (1 with
  d_mode=binary). Batch norm as slim's: momentum 0.95, epsilon 1e-3
  (synchronized across replicas, so a distributed batch normalises as one); Glorot
  uniform (Xavier) initialisation. `nef`, `ngf`, `ndf` scale the widths
  (f: 1, 2, 4, 2 x nef; g: 8, 4, 2 x ngf; D: 2, 4, 8 x ndf; 64 each is the
  reference).
- f reads source images (input_nc channels). Where g's output or a target
  image has other channels (SVHN -> MNIST: 3 -> 1), it is converted for f as
  the reference does: gray repeated to RGB (or RGB to its luma).

The two phases run in one training run. Phase 1, the first `pretrain_steps`
steps, trains f and its classifier head on the source labels (softmax cross
entropy; the "f" optimizer, Adam as the reference's pretraining) and nothing
else. Phase 2, every later step, trains g and D with f frozen. The phase
follows the model's step counter (`step`, in checkpoints), so a resumed run
continues in the phase it was in, and f pretrained in phase 1 is the one
phase 2 uses. `fit` data are ((source, label), target) batches: `labels=True`
in `tfi2i.data.unpaired_dataset` (e.g. `--dataset=mnist2usps`). `fit`
switches phase between two compiled steps (the phase is not a `tf.cond`
inside one step: Keras optimizers cannot update inside a conditional under
MirroredStrategy), checked on the host before each call, so with
steps_per_execution > 1 the switch comes at the first call that starts at or
after `pretrain_steps`.

The translation works on 32 x 32 images (the nets' fixed size); the exported
generator translates any multiple of 32 as independent 32 x 32 blocks, and
exports pad other sizes (reflect) to a multiple of 32. Digits should be
resized to 32 x 32 first (the training data are), not padded.
"""

import keras
import tensorflow as tf

from tfi2i.config import DIRECTION, INPUT_NC, OUTPUT_NC
from tfi2i.errors import UserError
from tfi2i.methods.base import TranslationModel
from tfi2i.methods.options import NDF, NEF, NGF
from tfi2i.methods.registry import register
from tfi2i.options import Option

IMAGE_SIZE = 32  # The reference nets take and give 32 x 32 images.
NUM_CLASSES = 10
# D's classes (d_mode=three_way), in the paper's order D_1, D_2, D_3.
FAKE_FROM_SOURCE, FAKE_FROM_TARGET, REAL_TARGET = 0, 1, 2
_LUMA = (0.299, 0.587, 0.114)

D_MODES = ("three_way", "binary")
SCHEDULES = ("reference", "1:1")


def _bn(name):
    # slim.batch_norm as the reference configures it: decay 0.95, epsilon 1e-3.
    # Synchronized: under tf.distribute the batch statistics are those of the
    # global batch, as on the reference's one GPU (no change on one device).
    return keras.layers.BatchNormalization(momentum=0.95, epsilon=1e-3, synchronized=True,
                                           name=name)


def _conv(filters, kernel, name, padding="same", strides=2):
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                               kernel_initializer=keras.initializers.GlorotUniform(), name=name)


def _deconv(filters, kernel, name, padding="same"):
    return keras.layers.Conv2DTranspose(filters, kernel, strides=2, padding=padding,
                                        kernel_initializer=keras.initializers.GlorotUniform(),
                                        name=name)


def define_f(input_nc=3, nef=64, name="f"):
    """The reference's content extractor: [N, 32, 32, input_nc] -> [N, 1, 1, 2 * nef] in (-1, 1)."""
    x = inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, input_nc))
    for i, mult in enumerate((1, 2, 4), 1):
        x = _conv(nef * mult, 3, f"conv{i}")(x)
        x = keras.layers.ReLU()(_bn(f"bn{i}")(x))
    x = _conv(nef * 2, 4, "conv4", padding="valid", strides=1)(x)
    x = keras.layers.Activation("tanh")(_bn("bn4")(x))
    return keras.Model(inputs, x, name=name)


def define_classifier_head(features=128, name="f_head"):
    """The pretraining head on f: a 1x1 conv to 10 logits, flattened."""
    x = inputs = keras.Input((1, 1, features))
    x = _conv(NUM_CLASSES, 1, "out", padding="valid", strides=1)(x)
    return keras.Model(inputs, keras.layers.Flatten()(x), name=name)


def define_g(output_nc=1, ngf=64, features=128, name="g"):
    """The reference's generator: [N, 1, 1, features] -> [N, 32, 32, output_nc] in (-1, 1)."""
    x = inputs = keras.Input((1, 1, features))
    x = _deconv(ngf * 8, 4, "conv_transpose1", padding="valid")(x)
    x = keras.layers.ReLU()(_bn("bn1")(x))
    for i, mult in ((2, 4), (3, 2)):
        x = _deconv(ngf * mult, 3, f"conv_transpose{i}")(x)
        x = keras.layers.ReLU()(_bn(f"bn{i}")(x))
    x = _deconv(output_nc, 3, "conv_transpose4")(x)
    return keras.Model(inputs, keras.layers.Activation("tanh")(x), name=name)


def define_d(input_nc=1, ndf=64, outputs=3, name="D"):
    """The reference's discriminator: [N, 32, 32, input_nc] -> [N, outputs] logits."""
    x = inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, input_nc))
    # The reference's first layer: conv, ReLU, then batch norm with ReLU.
    x = keras.layers.ReLU()(_conv(ndf * 2, 3, "conv1")(x))
    x = keras.layers.ReLU()(_bn("bn1")(x))
    for i, mult in ((2, 4), (3, 8)):
        x = _conv(ndf * mult, 3, f"conv{i}")(x)
        x = keras.layers.ReLU()(_bn(f"bn{i}")(x))
    x = _conv(outputs, 4, "conv4", padding="valid", strides=1)(x)
    return keras.Model(inputs, keras.layers.Flatten()(x), name=name)


@keras.saving.register_keras_serializable(package="tfi2i")
class ToBlocks(keras.layers.Layer):
    """[N, H, W, C] with H, W multiples of `block` -> [N * H/block * W/block, block, block, C]."""

    def __init__(self, block=IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x):
        b = self.block
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1] // b, b, shape[2] // b, b, shape[3]])
        x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
        return tf.reshape(x, [-1, b, b, shape[3]])

    def compute_output_shape(self, input_shape):
        return (None, self.block, self.block, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package="tfi2i")
class FromBlocks(keras.layers.Layer):
    """Undoes `ToBlocks`: (blocks, the original images) -> [N, H, W, blocks' C]."""

    def __init__(self, block=IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, inputs):
        blocks, like = inputs
        b = self.block
        shape = tf.shape(like)
        channels = tf.shape(blocks)[-1]
        x = tf.reshape(blocks, [shape[0], shape[1] // b, shape[2] // b, b, b, channels])
        x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
        return tf.reshape(x, [shape[0], shape[1], shape[2], channels])

    def compute_output_shape(self, input_shapes):
        blocks, like = input_shapes
        return (like[0], like[1], like[2], blocks[-1])

    def get_config(self):
        return {**super().get_config(), "block": self.block}


def blockwise_generator(f, g, input_nc, name="G"):
    """G = g o f on images whose sides are multiples of 32, one 32 x 32 block at a time."""
    images = keras.Input((None, None, input_nc))
    blocks = ToBlocks(IMAGE_SIZE)(images)
    out = g(f(blocks))
    return keras.Model(images, FromBlocks(IMAGE_SIZE)([out, images]), name=name)


def to_channels(images, channels):
    """Gray -> RGB (repeated, as the reference's grayscale_to_rgb) or RGB -> luma."""
    have = images.shape[-1]
    if have == channels:
        return images
    if channels == 3:
        return tf.repeat(images, 3, axis=-1)
    return tf.reduce_sum(images * tf.constant(_LUMA, images.dtype), axis=-1, keepdims=True)


def _mean_square(x, y):
    """Per-example mean of (x - y)^2 over all other axes."""
    d = tf.cast(x, tf.float32) - tf.cast(y, tf.float32)
    return tf.reduce_mean(tf.reshape(tf.square(d), [tf.shape(d)[0], -1]), axis=1)


def total_variation(images):
    """Per-example anisotropic total variation, mean absolute neighbour difference."""
    images = tf.cast(images, tf.float32)
    dh = tf.abs(images[:, 1:] - images[:, :-1])
    dw = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    return (tf.reduce_mean(tf.reshape(dh, [tf.shape(images)[0], -1]), axis=1)
            + tf.reduce_mean(tf.reshape(dw, [tf.shape(images)[0], -1]), axis=1))


@register("dtn")
@keras.saving.register_keras_serializable(package="tfi2i")
class DTN(TranslationModel):
    """DTN as a Keras model: `compile(f_optimizer, d_optimizer, g_optimizer)`, then `fit`.

    `fit` takes ((source, label), target) batches in [-1, 1] (see the module
    docstring): source images with input_nc channels and their int class
    labels, unrelated target images with output_nc channels. Calling the
    model translates source images with G = g o f.

    Logged per step (`train_names`, by phase). Phase 1: f_loss (cross
    entropy), f_accuracy. Phase 2: D_src, D_trg (the D loss terms of source
    fakes, and of target fakes plus real targets), G_src, G_trg (the
    adversarial terms of G), const (L_CONST), tid (L_TID), tv (L_TV), and
    the totals d_loss, g_loss; the distances are unweighted, the totals
    weighted, and the values are those of the step's last update of each
    kind. Validation (`test_names`): f_accuracy (the classifier on source
    samples), const and tid.
    """

    paired = False
    # The trainer's data are ((source, label), target) batches.
    source_labels = True
    # "f" first would make the step count stop after phase 1: `step` is the
    # model's own counter instead (one per train step, both phases).
    optimizer_groups = ("f", "d", "g")
    options = (
        INPUT_NC, OUTPUT_NC,
        NEF,
        NGF.with_default(64), NDF.with_default(64),
        Option("alpha", float, 15.0, "Weight of the f-constancy loss |f(x) - f(g(f(x)))|^2.",
               min=0.0),
        Option("beta", float, 15.0, "Weight of the target identity loss |t - g(f(t))|^2.",
               min=0.0),
        Option("gamma", float, 0.0, "Weight of the total variation of generated images "
               "(0 for digits).", min=0.0),
        Option("pretrain_steps", int, 20000, "Phase 1: train steps that pretrain f as a "
               "classifier of the source labels before g and D train.", min=0),
        Option("d_mode", str, "three_way", "Discriminator: three_way (paper: fake from source, "
               "fake from target, real target) or binary (reference code: fake vs real).",
               choices=D_MODES),
        Option("schedule", str, "reference", "Updates per step: reference (source side D x1, "
               "G x6; target side D x2, G x4) or 1:1 (one D, one G update).",
               choices=SCHEDULES),
        DIRECTION,
    )

    def __init__(self, **options):
        super().__init__(**options)
        hp = self.hp
        self.f = define_f(hp.input_nc, hp.nef)
        self.f_head = define_classifier_head(hp.nef * 2)
        self.g = define_g(hp.output_nc, hp.ngf, hp.nef * 2)
        self.D = define_d(hp.output_nc, hp.ndf, 3 if hp.d_mode == "three_way" else 1)
        self.G = blockwise_generator(self.f, self.g, hp.input_nc)
        # The train-step counter: `step`, and the phase. ONLY_FIRST_REPLICA:
        # every replica adds 1 per step, the variable counts steps.
        self.train_counter = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="train_counter",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.pretrain_names = ["f_loss", "f_accuracy"]
        self.translate_names = ["D_src", "D_trg", "G_src", "G_trg", "const", "tid", "tv",
                                "d_loss", "g_loss"]
        self.test_names = ["f_accuracy", "const", "tid"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in dict.fromkeys(
            self.pretrain_names + self.translate_names + self.test_names)}

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["crop_size"] != IMAGE_SIZE:
            raise UserError(f"--crop_size={config['crop_size']}: DTN's nets take {IMAGE_SIZE} x "
                            f"{IMAGE_SIZE} images; use --crop_size={IMAGE_SIZE} (and "
                            f"--load_size={IMAGE_SIZE} to resize without cropping).")
        if config["preprocess"] not in ("resize_and_crop", "crop"):
            raise UserError(f"--preprocess={config['preprocess']} gives images of other sizes "
                            f"than {IMAGE_SIZE} x {IMAGE_SIZE}: use resize_and_crop.")
        if config.get("eval_metrics"):
            raise UserError("--eval_metrics: DTN is scored with a digit classifier of the "
                            "target domain (scripts/digit_classifier.py), not with "
                            f"{', '.join(config['eval_metrics'])}; leave --eval_metrics empty.")

    @property
    def step(self):
        """Global training step: the model's own counter (phase 1 and 2 alike)."""
        return self.train_counter

    @property
    def in_pretraining(self):
        """Whether the next training step is a phase-1 (classifier) step."""
        return int(self.train_counter.numpy()) < self.hp.pretrain_steps

    @property
    def train_names(self):
        return self.pretrain_names if self.in_pretraining else self.translate_names

    def group_variables(self, group):
        nets = {"f": (self.f, self.f_head), "d": (self.D,), "g": (self.g,)}[group]
        return [v for net in nets for v in net.trainable_variables]

    # -- translation ------------------------------------------------------

    def call(self, inputs, training=False):
        """Translates source images (sides multiples of 32) with G = g o f."""
        return tf.cast(self.G(inputs, training=False), tf.float32)

    def classify(self, images, training=False):
        """Logits [N, 10] of f's classifier head on source images."""
        return self.f_head(self.f(images, training=training), training=training)

    def build_for_size(self, height, width):
        if (height, width) != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"DTN trains on {IMAGE_SIZE} x {IMAGE_SIZE} images, not "
                            f"{width} x {height}: use --crop_size={IMAGE_SIZE}.")
        hp = self.hp
        source = tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, hp.input_nc])
        self.classify(source)
        self.G(source)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        self.D(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, self.hp.output_nc]), training=False)

    # -- the objective ------------------------------------------------------

    def features(self, images):
        """f of images of either domain, frozen (inference mode, no gradient to f)."""
        return self.f(to_channels(images, self.hp.input_nc), training=False)

    def d_loss_terms(self, logits, kind):
        """D's per-example loss of logits for images of `kind` (0, 1 or 2, see above)."""
        if self.hp.d_mode == "three_way":
            labels = tf.fill([tf.shape(logits)[0]], kind)
            return tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=tf.cast(logits, tf.float32))
        target = tf.fill(tf.shape(logits), 1.0 if kind == REAL_TARGET else 0.0)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=target, logits=tf.cast(logits, tf.float32)), axis=1)

    def source_g_terms(self, fx):
        """G's source-side terms from f(x): GAN (fake judged real), const, tv; per example."""
        hp = self.hp
        fake = self.g(fx, training=True)
        terms = {"G_src": self.d_loss_terms(self.D(fake, training=True), REAL_TARGET),
                 "const": _mean_square(fx, self.features(fake)),
                 "tv": total_variation(fake) if hp.gamma > 0 else tf.zeros_like(fx[:, 0, 0, 0])}
        terms["g_src"] = terms["G_src"] + hp.alpha * terms["const"] + hp.gamma * terms["tv"]
        return terms

    def target_g_terms(self, t, ft):
        """G's target-side terms from t and f(t): GAN, tid, tv; per example."""
        hp = self.hp
        fake = self.g(ft, training=True)
        tv = total_variation(fake) if hp.gamma > 0 else tf.zeros_like(ft[:, 0, 0, 0])
        terms = {"G_trg": self.d_loss_terms(self.D(fake, training=True), REAL_TARGET),
                 "tid": _mean_square(t, fake), "tv_trg": tv}
        terms["g_trg"] = terms["G_trg"] + hp.beta * terms["tid"] + hp.gamma * tv
        return terms

    def source_d_terms(self, fx):
        """D's source-side term: g(f(x)) is class FAKE_FROM_SOURCE; per example."""
        fake = tf.stop_gradient(self.g(fx, training=True))
        return self.d_loss_terms(self.D(fake, training=True), FAKE_FROM_SOURCE)

    def target_d_terms(self, t, ft):
        """D's target-side terms: g(f(t)) is FAKE_FROM_TARGET, t is REAL_TARGET; per example."""
        fake = tf.stop_gradient(self.g(ft, training=True))
        return (self.d_loss_terms(self.D(fake, training=True), FAKE_FROM_TARGET)
                + self.d_loss_terms(self.D(t, training=True), REAL_TARGET))

    def _update(self, group, loss_fn, total):
        """One gradient step of `group` on loss_fn()[total]; returns loss_fn()'s terms."""
        with tf.GradientTape() as tape:
            terms = loss_fn()
            scalar = self.average(terms[total])
        self.apply(group, tape, scalar)
        return terms

    def pretrain_step(self, data):
        """Phase 1: one update of f and its head on the source labels."""
        (x, labels), _ = data
        labels = tf.cast(labels, tf.int32)

        def loss():
            logits = self.classify(x, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=tf.cast(logits, tf.float32))
            correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                              tf.float32)
            return {"f_loss": ce, "f_accuracy": correct}

        terms = self._update("f", loss, "f_loss")
        self.train_counter.assign_add(1)
        return self._update_trackers(terms)

    def translate_step(self, data):
        """Phase 2: D and g updates in the order of `schedule`, f frozen."""
        (x, _), t = data
        fx = self.features(x)
        ft = self.features(t)
        def source_d():
            return {"D_src": self.source_d_terms(fx)}

        def target_d():
            return {"D_trg": self.target_d_terms(t, ft)}

        def source_g():
            return self.source_g_terms(fx)

        def target_g():
            return self.target_g_terms(t, ft)

        def summed(first, second, keys):
            terms = {**first(), **second()}
            return {**terms, "total": terms[keys[0]] + terms[keys[1]]}

        if self.hp.schedule == "reference":
            d = self._update("d", source_d, "D_src")
            for _ in range(6):
                g = self._update("g", source_g, "g_src")
            for _ in range(2):
                d.update(self._update("d", target_d, "D_trg"))
            for _ in range(4):
                g.update(self._update("g", target_g, "g_trg"))
        else:
            d = self._update("d", lambda: summed(source_d, target_d, ("D_src", "D_trg")), "total")
            g = self._update("g", lambda: summed(source_g, target_g, ("g_src", "g_trg")), "total")
        self.train_counter.assign_add(1)
        return self._update_trackers({
            "D_src": d["D_src"], "D_trg": d["D_trg"], "G_src": g["G_src"], "G_trg": g["G_trg"],
            "const": g["const"], "tid": g["tid"], "tv": g["tv"] + g["tv_trg"],
            "d_loss": d["D_src"] + d["D_trg"], "g_loss": g["g_src"] + g["g_trg"]})

    def train_step(self, data):
        """One step of the current phase (eager or single-device graph use; `fit` dispatches)."""
        if tf.executing_eagerly():
            return self.pretrain_step(data) if self.in_pretraining else self.translate_step(data)
        # Both branches must give the same logs: the union, zeros where absent.
        names = dict.fromkeys(self.pretrain_names + self.translate_names)

        def run(step):
            def branch():
                logs = step(data)
                return {n: logs.get(n, tf.constant(0.0)) for n in names}
            return branch
        return tf.cond(self.train_counter < self.hp.pretrain_steps, run(self.pretrain_step),
                       run(self.translate_step))

    def make_train_function(self, force=False):
        """Two compiled steps, one per phase; the phase is read before each call."""
        if self.train_function is not None and not force:
            return self.train_function
        # Keras's own wrapping (distribution, XLA, steps_per_execution) of each step.
        pretrain = self._make_function(self.pretrain_step)
        translate = self._make_function(self.translate_step)

        def train_function(iterator):
            return pretrain(iterator) if self.in_pretraining else translate(iterator)

        self.train_function = train_function
        return train_function

    def test_step(self, data):
        (x, labels), t = data
        logits = self.classify(x)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                   tf.cast(labels, tf.int32)), tf.float32)
        fx = self.features(x)
        return self._update_trackers({
            "f_accuracy": correct,
            "const": _mean_square(fx, self.features(self.g(fx, training=False))),
            "tid": _mean_square(t, self.g(self.features(t), training=False)),
        })

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def generators(self):
        return {self.hp.direction: self.G}

    @property
    def size_divisor(self):
        return IMAGE_SIZE

    def sample_images(self, batch):
        """Rows: source | G(source), then target | g(f(target)) (the identity mapping)."""
        (x, _), t = batch
        return self.image_grid([[x, self.G(x)], [t, self.g(self.features(t), training=False)]])
