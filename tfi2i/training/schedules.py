"""Learning-rate policies of the reference code, as step-based Keras schedules.

The reference steps its schedulers once per epoch; ours take the optimizer's
step count, so they resume exactly from a checkpoint and change smoothly
within an epoch. Epoch arguments are converted with `steps_per_epoch`.
"""

import keras
import tensorflow as tf

from tfi2i.errors import UserError

LR_POLICIES = ("linear", "step", "cosine", "constant")


@keras.saving.register_keras_serializable(package="tfi2i")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant for `constant_steps`, then linear to 0 over `decay_steps`.

    Args:
        initial_learning_rate: the rate during the constant phase.
        constant_steps: steps at the full rate (n_epochs * steps_per_epoch).
        decay_steps: steps of the linear decay (n_epochs_decay * steps_per_epoch).
    """

    def __init__(self, initial_learning_rate, constant_steps, decay_steps):
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        past = tf.maximum(0.0, step - self.constant_steps)
        factor = 1.0 - past / float(max(self.decay_steps, 1))
        return self.initial_learning_rate * tf.clip_by_value(factor, 0.0, 1.0)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "constant_steps": self.constant_steps, "decay_steps": self.decay_steps}


def make_schedule(lr_policy, lr, steps_per_epoch, n_epochs, n_epochs_decay, lr_decay_iters=50,
                  lr_decay_steps=None, lr_decay_gamma=0.1):
    """The schedule for `--lr_policy`.

    Args:
        lr_policy: `linear` (constant for n_epochs, then linear to 0 over
            n_epochs_decay: the pix2pix/CycleGAN default), `step` (x0.1
            every lr_decay_iters epochs), `cosine` (cosine to 0 over all
            epochs), or `constant`.
        lr: initial learning rate.
        steps_per_epoch: optimizer steps in one epoch.
        n_epochs, n_epochs_decay, lr_decay_iters: in epochs, as in the reference.
        lr_decay_steps: `step` decays every this many optimizer steps instead of every
            lr_decay_iters epochs (UNIT/MUNIT's `step_size` in iterations).
        lr_decay_gamma: `step`'s factor per decay (0.1; UNIT/MUNIT's `gamma` 0.5).
    """
    total = steps_per_epoch * (n_epochs + n_epochs_decay)
    if lr_policy == "linear":
        return LinearDecay(lr, steps_per_epoch * n_epochs, steps_per_epoch * n_epochs_decay)
    if lr_policy == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=lr_decay_steps or steps_per_epoch * lr_decay_iters,
            decay_rate=lr_decay_gamma, staircase=True)
    if lr_policy == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total, 1))
    if lr_policy == "constant":
        return lr
    raise UserError(f"Unknown lr_policy {lr_policy!r}; choose one of {', '.join(LR_POLICIES)}.")
