"""An exponential moving average of the generators' weights (`--ema_decay`).

GAN generators' weights wander from update to update; an average over the last updates
generates better images than the last weights do (Yazici et al. 2019, "The unusual
effectiveness of averaging in GAN training"; Karras et al.'s progressive GAN and StyleGAN;
MUNIT's improved recipe in NVIDIA imaginaire). With `--ema_decay=d` every update of a
generator weight w also moves its average:

    w_avg <- d * w_avg + (1 - d) * w

starting from the initial weights. The averages are checkpointed with the run (a resume
continues them exactly); exports, tfi2i-translate, tfi2i-eval, tfi2i-compare and the
training-time --eval_metrics use them instead of the raw weights. Training itself (and its
validation losses and sample grids) runs on the raw weights, as in the references.

Only trainable weights are averaged; normalisation statistics (batch norm's moving mean and
variance) are used as they are, as imaginaire does for its buffers by default.
"""

import contextlib

import keras
import tensorflow as tf


def generator_variables(model):
    """The trainable variables of `model.generators`, each once, in a stable order."""
    seen, variables = set(), []
    for generator in model.generators.values():
        for v in generator.trainable_variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    return variables


class WeightAverage(tf.Module):
    """Moving averages of some variables, updated with theirs.

    Create it inside the distribution strategy's scope of the variables (mirrored averages
    of mirrored weights). Its variables are tf.Module children: a `tf.train.Checkpoint`
    that holds it saves and restores them.

    Args:
        variables: the variables to average (their current values are the start).
        decay: weight of the old average per update, in [0, 1).
    """

    def __init__(self, variables, decay, name="weight_average"):
        super().__init__(name=name)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self._sources = list(variables)
        with self.name_scope:
            self.averages = [
                tf.Variable(tf.convert_to_tensor(v), trainable=False,
                            name=v.path.replace("/", "_").replace(":", "_"))
                for v in self._sources]
        self._index = {id(v): i for i, v in enumerate(self._sources)}

    def update(self, variables):
        """Moves the averages of those of `variables` this object averages.

        Call it right after the optimizer updated `variables`; it works in a replica
        context too, through the strategy's `update`, as the optimizers' own updates do,
        so mirrored copies stay equal.
        """
        pairs = [(self.averages[self._index[id(v)]], v) for v in variables
                 if id(v) in self._index]
        if not pairs:
            return
        keep = self.decay

        def move(strategy, pairs):
            for average, v in pairs:
                strategy.extended.update(
                    average, lambda a, w: a.assign(keep * a + (1.0 - keep) * tf.cast(w, a.dtype)),
                    args=(v.value if isinstance(v, keras.Variable) else v,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            move, tf.distribute.get_strategy(), pairs)

    def copy_to_weights(self):
        """Overwrites the averaged variables with their averages (for inference)."""
        for average, v in zip(self.averages, self._sources):
            v.assign(tf.cast(average, v.dtype))

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the variables hold their averages; their own values after."""
        raw = [tf.identity(v) for v in self._sources]
        self.copy_to_weights()
        try:
            yield
        finally:
            for v, value in zip(self._sources, raw):
                v.assign(value)
