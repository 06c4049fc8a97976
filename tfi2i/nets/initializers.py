"""Weight initialisation of the reference nets (`init_weights` of the pix2pix/CycleGAN code).

The reference initialises every convolution and transposed convolution kernel with one of
four schemes, sets their biases to 0, and draws batch-norm scales from N(1, gain) with
offsets 0, whatever the scheme. PyTorch and Keras agree on the fans of both kinds of
convolution kernel (including the transposed convolution's, whose "fan_in" is its number
of output channels times the kernel area in both), so the variance-scaling schemes match.

Each call returns a NEW initializer. Keras gives an unseeded initializer a fixed seed when it
is created, so one instance shared by several layers gives them identical weights: build one
per layer.
"""

import keras

from tfi2i.errors import UserError

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def kernel_initializer(init_type="normal", gain=0.02, seed=None):
    """Returns a new initializer for a convolution kernel.

    Args:
        init_type: `"normal"`: N(0, gain); `"xavier"`: Glorot normal scaled by `gain`
            (std = gain * sqrt(2 / (fan_in + fan_out))); `"kaiming"`: He normal, fan_in
            (std = sqrt(2 / fan_in); like the reference it ignores `gain`);
            `"orthogonal"`: orthogonal matrix times `gain`.
        gain: the scale described above (the reference's `init_gain`, default 0.02).
        seed: optional integer seed, for reproducible weights.

    Returns:
        A `keras.initializers.Initializer`.

    Raises:
        UserError: for an unknown `init_type`.
    """
    if init_type == "normal":
        return keras.initializers.RandomNormal(mean=0.0, stddev=gain, seed=seed)
    if init_type == "xavier":
        # The PyTorch versions are plain (untruncated) normals; Keras' GlorotNormal and
        # HeNormal are truncated, so spell them out with VarianceScaling.
        return keras.initializers.VarianceScaling(
            scale=gain**2, mode="fan_avg", distribution="untruncated_normal", seed=seed
        )
    if init_type == "kaiming":
        return keras.initializers.VarianceScaling(
            scale=2.0, mode="fan_in", distribution="untruncated_normal", seed=seed
        )
    if init_type == "orthogonal":
        return keras.initializers.Orthogonal(gain=gain, seed=seed)
    raise UserError(
        f"Unknown weight initialisation {init_type!r}: use one of {', '.join(INIT_TYPES)}."
    )


def check_init_type(init_type):
    """Raises UserError unless `init_type` is one of INIT_TYPES."""
    if init_type not in INIT_TYPES:
        kernel_initializer(init_type)


def gamma_initializer(gain=0.02, seed=None):
    """Returns a new initializer for a batch-norm scale: N(1, gain), as in the reference."""
    return keras.initializers.RandomNormal(mean=1.0, stddev=gain, seed=seed)
