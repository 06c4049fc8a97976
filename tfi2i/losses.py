"""Losses of the image-to-image translation family.

Every function returns a **per-example** loss of shape [batch]. Methods turn
those into a scalar with `tf.nn.compute_average_loss(..., global_batch_size)`,
which is what keeps gradients right under `tf.distribute` (gradients are
summed across replicas, so each replica must divide by the global batch).
"""

import tensorflow as tf

from tfi2i.errors import UserError

GAN_MODES = ("vanilla", "lsgan", "wgan", "wgangp", "hinge")


def _per_example_mean(x):
    """Mean over every axis but the batch axis."""
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def check_gan_mode(gan_mode):
    """Raises `UserError` unless `gan_mode` is one of `GAN_MODES`."""
    if gan_mode not in GAN_MODES:
        raise UserError(
            f"Unknown gan_mode {gan_mode!r}; choose one of {', '.join(GAN_MODES)}.")
    return gan_mode


def gan_loss(gan_mode, logits, target_is_real, for_discriminator=True):
    """Adversarial loss of discriminator outputs, as in the reference `GANLoss`.

    Args:
        gan_mode: "vanilla" (sigmoid cross-entropy, the pix2pix paper),
            "lsgan" (least squares, CycleGAN), "wgan" / "wgangp" (Wasserstein
            critic; clipping or gradient penalty is the method's job), or
            "hinge".
        logits: raw discriminator outputs, [batch, ...] (a PatchGAN map or a
            vector).
        target_is_real: whether these outputs should be judged real.
        for_discriminator: the hinge loss differs for D and G; the other modes
            do not care.

    Returns:
        Per-example loss, shape [batch].
    """
    logits = tf.cast(logits, tf.float32)
    if gan_mode == "vanilla":
        labels = tf.ones_like(logits) if target_is_real else tf.zeros_like(logits)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    elif gan_mode == "lsgan":
        loss = tf.square(logits - (1.0 if target_is_real else 0.0))
    elif gan_mode in ("wgan", "wgangp"):
        loss = -logits if target_is_real else logits
    elif gan_mode == "hinge":
        if not for_discriminator:
            # G maximises D's score of its fakes.
            loss = -logits
        elif target_is_real:
            loss = tf.nn.relu(1.0 - logits)
        else:
            loss = tf.nn.relu(1.0 + logits)
    else:
        check_gan_mode(gan_mode)
    return _per_example_mean(loss)


def gradient_penalty(discriminator, real, fake, condition=None, target_norm=1.0):
    """WGAN-GP penalty (Gulrajani et al. 2017) on random interpolates.

    Args:
        discriminator: callable taking a [batch, H, W, C] tensor.
        real, fake: images, same shape.
        condition: optional tensor concatenated in front of the interpolate on
            the channel axis (pix2pix's conditional D sees (x, y)).
        target_norm: the gradient norm the penalty pulls towards.

    Returns:
        Per-example (||grad||_2 - target_norm)^2, shape [batch].
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    alpha = tf.random.uniform([tf.shape(real)[0], 1, 1, 1])
    interpolates = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        d_input = interpolates if condition is None else tf.concat(
            [tf.cast(condition, tf.float32), interpolates], axis=-1)
        scores = tf.cast(discriminator(d_input, training=True), tf.float32)
    grads = tape.gradient(scores, interpolates)
    norms = tf.sqrt(tf.reduce_sum(tf.square(
        tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1) + 1e-16)
    return tf.square(norms - target_norm)


def l1_loss(x, y):
    """Per-example mean absolute error."""
    return _per_example_mean(tf.abs(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)))


def l2_loss(x, y):
    """Per-example mean squared error."""
    return _per_example_mean(tf.square(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)))


RECONSTRUCTION_LOSSES = {"l1": l1_loss, "l2": l2_loss}


def reconstruction_loss(kind):
    """Returns `l1_loss` or `l2_loss` by name."""
    if kind not in RECONSTRUCTION_LOSSES:
        raise UserError(
            f"Unknown reconstruction loss {kind!r}; choose one of "
            f"{', '.join(RECONSTRUCTION_LOSSES)}.")
    return RECONSTRUCTION_LOSSES[kind]
