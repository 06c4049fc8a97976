"""What every translation method shares: the Keras plumbing, not the objective.

A method file subclasses `TranslationModel`, builds its networks in
`__init__`, and writes `train_step` / `test_step` so they read like the
paper's objective. This base class gives it:

- `average(per_example_loss)`: the scalar loss, scaled by the *global* batch
  size so gradients are right under `tf.distribute` (they are summed across
  replicas);
- its options, declared once as `options` and checked in `__init__`;
- `from_run_config(config)`: builds the method from a flat run config (the
  CLI's resolved flags), taking the keys it declares;
- `get_config()`, so `.keras` saving and `clone` work;
- the hooks the trainer and the exporter use: `step`, `generators`,
  `size_divisor`, `sample_images`, `build_for_size`.
"""

import types

import keras
import tensorflow as tf

from tfi2i import losses
from tfi2i.config import PAIRED_METRICS
from tfi2i.errors import UserError
from tfi2i.methods.options import check_crop_fits_generator, check_pool_fits_preprocess
from tfi2i.options import check_values, defaults

# Keyword arguments that belong to keras.Model, not to the method.
_KERAS_KWARGS = ("name", "trainable", "dtype")


class TranslationModel(keras.Model):
    """Base class of the methods in `tfi2i.methods`.

    Subclasses set:
        options: the method's hyper-parameters, a tuple of `tfi2i.options.Option`
            (each declared once: the constructor, the CLI flags, the run config
            and the docs all derive from it). The constructor takes them as
            keyword arguments; the method reads the checked values from
            `self.hp` (e.g. `self.hp.lambda_L1`).
        paired: whether `fit` data are aligned (input, target) pairs.
        bidirectional: whether one run translates both ways (its `generators`
            are `both_ways(...)`: CycleGAN's G_A and G_B); otherwise it
            translates its data's direction only.
        optimizer_groups: names of the network groups with their own
            optimizer, in the order `compile()` takes them, e.g. ("g", "d")
            for `compile(g_optimizer=..., d_optimizer=...)`.
    """

    options = ()
    paired = True
    bidirectional = False
    optimizer_groups = ("g", "d")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The options, listed in the class docstring (help(), the docs).
        if cls.options and cls.__doc__ and "\n    Options:\n" not in cls.__doc__:
            lines = [f"        {o.name} ({o.type.__name__}, default {o.describe_default()}): "
                     f"{o.help}" for o in cls.options]
            cls.__doc__ = cls.__doc__.rstrip() + "\n\n    Options:\n" + "\n".join(lines) + "\n"

    def __init__(self, **kwargs):
        keras_kwargs = {k: kwargs.pop(k) for k in _KERAS_KWARGS if k in kwargs}
        super().__init__(**keras_kwargs)
        # The checked hyper-parameters, all of them (defaults filled in).
        self.hparams = {**defaults(self.options), **check_values(self.options, kwargs)}
        self.hp = types.SimpleNamespace(**self.hparams)
        self.check_options(self.hparams)

    # -- construction -----------------------------------------------------

    @classmethod
    def option_names(cls):
        """The names of the hyper-parameters this method takes."""
        return [o.name for o in cls.options]

    @classmethod
    def from_run_config(cls, config):
        """Builds the method from a flat run config, taking the keys it declares."""
        names = set(cls.option_names())
        return cls(**{k: v for k, v in config.items() if k in names})

    @classmethod
    def check_options(cls, options):
        """Checks the method's own options that depend on each other.

        Args:
            options: at least the method's options, checked one by one.

        Raises:
            UserError: naming the options and the fix.
        """

    @classmethod
    def check_config(cls, config):
        """Checks a resolved run config for options that do not fit together.

        The base class checks that the crop size fits the generator (for a
        method with a `netG` option) and that training images fit its image
        pools (with a `pool_size` option); a method adds its own rules.

        Raises:
            UserError: naming the options and the fix.
        """
        cls.check_options(config)
        if config.get("unpaired") and cls.paired:
            raise UserError(f"--unpaired reads paired data as two unpaired domains, for unpaired "
                            f"methods; {cls.method_name} trains on the pairs: leave it off.")
        paired_metrics = [m for m in config.get("eval_metrics", []) if m in PAIRED_METRICS]
        if paired_metrics and not cls.paired:
            raise UserError(f"--eval_metrics={','.join(config['eval_metrics'])}: "
                            f"{', '.join(paired_metrics)} compare an output with its own target, "
                            f"which unpaired data ({cls.method_name}) does not have; use fid "
                            "or kid.")
        if "netG" in cls.option_names():
            check_crop_fits_generator(config)
        if "pool_size" in cls.option_names():
            check_pool_fits_preprocess(config)

    def get_config(self):
        config = super().get_config()
        config.update(self.hparams)
        return config

    @classmethod
    def from_config(cls, config):
        names = set(cls.option_names()) | set(_KERAS_KWARGS)
        return cls(**{k: v for k, v in config.items() if k in names})

    def translate(self, images):
        """Translates a batch of source-domain images in [-1, 1]: `call` in inference mode
        (the evaluation callback's and `tfi2i.metrics`' entry point)."""
        return self(images, training=False)

    def build_for_size(self, height, width):
        """Creates every variable by running one step's worth of forward passes."""
        dummy = tf.zeros([1, height, width, self.hparams.get("input_nc", 3)])
        self(dummy, training=False)
        self.build_discriminators(height, width)
        self.built = True

    def build_discriminators(self, height, width):
        """Creates the discriminators' variables (a method overrides it)."""

    def compile(self, jit_compile=False, weight_decay=0.0, ema_decay=0.0, **optimizers):
        """Takes one optimizer per network group, e.g. g_optimizer, d_optimizer.

        Args:
            jit_compile: compile the train step with XLA.
            ema_decay: with a value > 0, keeps a moving average of the generators'
                weights, moved after each of their updates (`average_generator_weights`).
            weight_decay: L2 weight decay the way PyTorch's optimizers apply it
                (the papers' reference code): `weight_decay * w` is added to
                the gradient of every trainable variable, before the
                optimizer's own update. Keras optimizers' `weight_decay`
                argument is AdamW's decoupled decay instead, which is not what
                the references train with.
            **optimizers: `<group>_optimizer` for each of `optimizer_groups`.
        """
        expected = {f"{g}_optimizer" for g in self.optimizer_groups}
        if set(optimizers) != expected:
            raise TypeError(f"{type(self).__name__}.compile() takes "
                            f"{', '.join(sorted(expected))}; got {', '.join(sorted(optimizers))}.")
        # optimizer=None: a bare compile() would create an unused RMSprop.
        super().compile(optimizer=None, jit_compile=jit_compile)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
        self.weight_decay = float(weight_decay)
        self.optimizers = {}
        for group in self.optimizer_groups:
            opt = optimizers[f"{group}_optimizer"]
            # Built here, inside the strategy scope, or fit under
            # MirroredStrategy fails in graph mode.
            opt.build(self.group_variables(group))
            setattr(self, f"{group}_optimizer", opt)
            self.optimizers[group] = opt
        self.ema = self.average_generator_weights(ema_decay) if ema_decay else None

    def group_variables(self, group):
        """Trainable variables updated by the optimizer of `group`."""
        raise NotImplementedError

    def average_generator_weights(self, decay):
        """A `WeightAverage` of the generators' trainable weights (`--ema_decay`).

        Call it once the networks are built, in the strategy scope they were built in;
        the model tracks it, so checkpoints hold the averages.
        """
        from tfi2i.training.ema import WeightAverage, generator_variables

        return WeightAverage(generator_variables(self), decay, name="generator_average")

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's TF trainer "symbolically builds" a model made under a
        # strategy at the start of fit/evaluate, peeking at one batch and
        # reducing it with strategy.reduce(axis=None), which fails under
        # MultiWorkerMirroredStrategy (Keras 3.15: "Attempt to convert a value
        # (PerReplica...)"). There is nothing to build: the networks are built
        # by build_for_size and the optimizers in compile().
        return

    # -- helpers for train_step ------------------------------------------

    @staticmethod
    def average(per_example_loss):
        """Scalar loss from per-example losses, right under tf.distribute."""
        per_example_loss = tf.cast(per_example_loss, tf.float32)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        global_batch = tf.shape(per_example_loss)[0] * replicas
        return tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch)

    def apply(self, group, tape, loss):
        """Gradient step of one network group (with loss scaling when mixed precision)."""
        opt = self.optimizers[group]
        variables = self.group_variables(group)
        scaled = isinstance(opt, keras.optimizers.LossScaleOptimizer)
        if scaled:
            loss = opt.scale_loss(loss)
        grads = tape.gradient(loss, variables)
        if getattr(self, "weight_decay", 0.0):
            # The replicas' gradients are summed and (mixed precision) unscaled after this:
            # each replica adds its share of the decay, at the loss's scale, so the update
            # gets weight_decay * w once, as on one device.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            factor = self.weight_decay / replicas
            if scaled:
                factor = factor * tf.cast(opt.dynamic_scale, tf.float32)
            grads = [None if g is None else g + tf.cast(factor, g.dtype) * tf.cast(v, g.dtype)
                     for g, v in zip(grads, variables)]
        opt.apply(grads, variables)
        if getattr(self, "ema", None) is not None:
            self.ema.update(variables)

    @staticmethod
    def image_grid(rows):
        """Sample grids: each row a list of image batches shown side by side.

        Args:
            rows: lists of [batch, H, W, 1 or 3] images in [-1, 1], e.g.
                [[real_A, fake_B, rec_A], [real_B, fake_A, rec_B]]; the images of
                one row have the same height.

        Returns:
            [batch * len(rows), H, W * columns, 3] float32: the rows stacked, gray
            images repeated to RGB (what TensorBoard and the PNG writer take).
        """
        def rgb(image):
            image = tf.cast(image, tf.float32)
            return tf.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image

        return tf.concat([tf.concat([rgb(image) for image in row], axis=2) for row in rows],
                         axis=0)

    @property
    def metrics(self):
        """The Mean trackers (`trackers`), which fit resets each epoch and logs."""
        return list(self.trackers.values())

    def _update_trackers(self, values):
        """Updates the Mean trackers; returns their results, the step's logs."""
        for name, value in values.items():
            self.trackers[name].update_state(tf.reduce_mean(value))
        results = {name: self.trackers[name].result() for name in values}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces multi-worker step outputs with reduce("MEAN", axis=0),
            # which fails on scalars (Keras 3.15): give them an axis to reduce.
            results = {name: tf.reshape(v, [1]) for name, v in results.items()}
        return results

    # -- hooks for the trainer and the exporter ----------------------------

    @property
    def step(self):
        """Global training step: the first optimizer's update count."""
        return self.optimizers[self.optimizer_groups[0]].iterations

    @property
    def generators(self):
        """Ordered {name: generator} to export; the first one is the default."""
        raise NotImplementedError

    def both_ways(self, forward, backward):
        """`generators` of a method that translates both ways: {the data's direction:
        forward (its A -> B), the reverse direction: backward (B -> A)}."""
        reverse = {"AtoB": "BtoA", "BtoA": "AtoB"}[self.hp.direction]
        return {self.hp.direction: forward, reverse: backward}

    def both_ways_discriminator_losses(self, real_A, real_B, fake_A, fake_B, halve=True):
        """{D_A, D_B, d_loss} (and gp_A, gp_B with wgangp) of a two-way method, per example.

        D_A judges domain A (real a against fake_A), D_B domain B; each loss is
        `losses.discriminator_loss` (halved unless `halve=False`, with lambda_gp * gp
        included); d_loss = D_A + D_B.
        """
        hp = self.hp
        terms = {}
        for name, D, real, fake in (("A", self.D_A, real_A, fake_A),
                                    ("B", self.D_B, real_B, fake_B)):
            terms[f"D_{name}"], gp = losses.discriminator_loss(
                hp.gan_mode, D, real, fake, lambda_gp=hp.lambda_gp, halve=halve)
            if gp is not None:
                terms[f"gp_{name}"] = gp
        terms["d_loss"] = terms["D_A"] + terms["D_B"]
        return terms

    def both_ways_validation(self, forward, backward, real_A, real_B,
                             rec_names=("rec_A", "rec_B"), rec=None):
        """Validation numbers of a two-way method, per example.

        rec_A = rec(backward(forward(a)), a) and rec_B = rec(forward(backward(b)), b) (the
        round trips; `rec` default L1), l1_AtoB = |forward(a) - a|_1 and l1_BtoA =
        |backward(b) - b|_1 (how far each translation moved its input; a 1-channel domain
        broadcasts against a 3-channel one).
        """
        rec = rec or losses.l1_loss
        fake_B = forward(real_A, training=False)
        fake_A = backward(real_B, training=False)
        return {rec_names[0]: rec(backward(fake_B, training=False), real_A),
                rec_names[1]: rec(forward(fake_A, training=False), real_B),
                "l1_AtoB": losses.l1_loss(fake_B, real_A),
                "l1_BtoA": losses.l1_loss(fake_A, real_B)}

    # -- multimodal methods (BicycleGAN, MUNIT, DRIT) -----------------------------

    @property
    def latent_dim(self):
        """Length of the code an output depends on besides its input (0: one output per input).

        A multimodal method returns its nz / style_dim here; its codes' prior is N(0, I).
        """
        return 0

    @property
    def code_generators(self):
        """{direction: keras.Model([images, codes]) -> images}, codes [N, latent_dim].

        A multimodal method's generators with the code as an input (`tfi2i-translate
        --num_samples/--seed`, the export's `*_code` signatures); its `generators` are
        `sampling_generators(code_generators)`. Empty for a one-output method.
        """
        return {}

    @property
    def style_encoders(self):
        """{direction: keras.Model(images) -> codes [N, latent_dim]}: the code of a reference
        image of the direction's *target* domain (MUNIT's style, DRIT's attribute: the mean, no
        sampling), for reference-guided translation (`--style_image`, the `*_style`
        signatures). Empty for a method without one."""
        return {}

    def sampling_generators(self, code_generators):
        """`generators` of a multimodal method: image -> image, each call drawing its codes
        from N(0, I) inside the graph (what compare, the evaluation callback and the export's
        default signatures run). Built once per method and cached."""
        if getattr(self, "_sampling_generators", None) is None:
            from tfi2i.nets.latent import sampling_generator

            # Kept out of Keras's attribute tracking (the models hold the code generators'
            # variables already): checkpoints must not depend on whether this ran.
            self.__dict__["_sampling_generators"] = {
                direction: sampling_generator(generator, self.latent_dim)
                for direction, generator in code_generators.items()}
        return dict(self._sampling_generators)

    def step_normal(self, batch_size, shape, stream=0):
        """N(0, I) noise of this train step for this replica: [batch_size, *shape].

        One draw for the *global* batch, seeded by (the method's `seed` option, or 0; the
        step; `stream`), of which each replica takes its rows: a resumed run draws what an
        uninterrupted one would, and two replicas draw what one device does on the same global
        batch. `stream` (a small int) tells apart the draws of one step. Draw before the step's
        first update: `step` counts updates.
        """
        context = tf.distribute.get_replica_context()
        replicas, replica = 1, 0
        if context is not None:
            replicas, replica = context.num_replicas_in_sync, context.replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([getattr(self.hp, "seed", 0), 7919], tf.int64),
            tf.cast(self.step, tf.int64))
        seed = tf.random.experimental.stateless_fold_in(seed, int(stream))
        draw = tf.random.stateless_normal(tf.concat([[batch_size * replicas], shape], 0), seed)
        start = tf.cast(replica, tf.int32) * batch_size
        return draw[start:start + batch_size]

    @property
    def size_divisor(self):
        """Input height and width must be multiples of this."""
        raise NotImplementedError

    def sample_images(self, batch):
        """Image rows (input | output | target) in [-1, 1] for TensorBoard and PNGs."""
        raise NotImplementedError
