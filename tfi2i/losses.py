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


def multiscale_gan_loss(gan_mode, outputs, target_is_real, for_discriminator=True):
    """`gan_loss` of a multi-scale discriminator's outputs, per example: the sum over its
    scales (MUNIT's and UNIT's `MsImageDis`, BicycleGAN's `D_NLayersMulti` losses).

    Args:
        outputs: the discriminator's list of logit maps, one per scale (or one map).
    """
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return tf.add_n([gan_loss(gan_mode, logits, target_is_real, for_discriminator)
                     for logits in outputs])


def discriminator_loss(gan_mode, discriminator, real, fake, lambda_gp=10.0, halve=True):
    """One discriminator's loss, per example, and its gradient penalty.

    L_GAN(D(real), real) + L_GAN(D(fake), fake), halved as the pix2pix/CycleGAN reference
    does (`halve=False`: summed, as WGAN critics and CoGAN's code); with gan_mode wgangp
    plus lambda_gp * the gradient penalty on interpolates of real and fake.

    Returns:
        (loss, gp): [batch] tensors; gp is None unless gan_mode is wgangp.
    """
    d_real = gan_loss(gan_mode, discriminator(real, training=True), True)
    d_fake = gan_loss(gan_mode, discriminator(fake, training=True), False)
    loss = 0.5 * (d_real + d_fake) if halve else d_real + d_fake
    gp = None
    if gan_mode == "wgangp":
        gp = gradient_penalty(discriminator, real, fake)
        loss += lambda_gp * gp
    return loss, gp


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


def _global_batch_mean(x):
    """Mean over the batch axis, over the global batch under a tf.distribute strategy.

    Each replica sums its own examples; `all_reduce` (differentiable: its gradient is the
    all-reduce of the gradients) adds the replicas' sums and counts, so every replica sees
    the mean of the whole batch, as one device would.
    """
    x = tf.cast(x, tf.float32)
    total = tf.reduce_sum(x, axis=0)
    count = tf.cast(tf.shape(x)[0], tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        total, count = context.all_reduce("sum", [total, count])
    return total / count


def feature_matching_loss(real_features, fake_features):
    """Feature matching on batch means, as DiscoGAN's reference code computes it.

    For each pair of feature maps (a discriminator's intermediate activations on real and
    on generated images, [batch, ...] each): the mean squared difference between the batch
    mean of the real features and the batch mean of the fake ones, averaged over the
    feature map's elements; then summed over the maps. That is the reference's
    `get_fm_loss`: `HingeEmbeddingLoss(l2, ones)` of `l2 = (real.mean(0) -
    fake.mean(0))**2` is just the mean of `l2` (the hinge only acts on targets -1), so the
    distance is a squared L2 (MSE) between batch means, not an L1 and not a norm.

    The loss belongs to the batch, not to single examples: it is returned as that value
    for every example, so that `tf.nn.compute_average_loss` (sum / global batch) gives it
    back. Under a tf.distribute strategy the batch means are taken over the global batch.

    Args:
        real_features, fake_features: equally long lists of tensors; the i-th real and fake
            maps have the same shape except possibly the batch size.

    Returns:
        Shape [batch of fake_features]: the loss, repeated.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"feature_matching_loss needs as many real as fake feature maps "
                         f"(at least one); got {len(real_features)} and {len(fake_features)}.")
    loss = 0.0
    for real, fake in zip(real_features, fake_features):
        loss += tf.reduce_mean(tf.square(_global_batch_mean(real) - _global_batch_mean(fake)))
    return tf.fill([tf.shape(fake_features[0])[0]], loss)


# Bandwidths of the Gaussian-kernel MMD, in units of the per-channel RMS distance (see
# `mmd_loss`): a sum of kernels covers distances from about a tenth to ten times typical.
MMD_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
MMD_KERNELS = ("gaussian", "linear", "gram")


def _feature_vectors(features):
    """[batch, ..., C] -> [batch * positions, C]: every position's feature vector a sample."""
    features = tf.cast(features, tf.float32)
    return tf.reshape(features, [-1, tf.shape(features)[-1]])


def _gaussian_mmd2(x, y, bandwidths):
    """Biased MMD^2 estimate between sample sets x [n, C] and y [m, C]."""
    channels = tf.cast(tf.shape(x)[1], tf.float32)

    def kernel(a, b):
        # Squared distances per channel, so that bandwidths do not depend on the width.
        d2 = (tf.reduce_sum(a * a, 1)[:, None] + tf.reduce_sum(b * b, 1)[None, :]
              - 2.0 * tf.matmul(a, b, transpose_b=True))
        d2 = tf.maximum(d2, 0.0) / channels
        return tf.add_n([tf.exp(-d2 / (2.0 * s * s)) for s in bandwidths])

    return (tf.reduce_mean(kernel(x, x)) + tf.reduce_mean(kernel(y, y))
            - 2.0 * tf.reduce_mean(kernel(x, y)))


def _subsample(x, max_samples):
    n = tf.shape(x)[0]
    return tf.cond(n > max_samples,
                   lambda: tf.gather(x, tf.random.shuffle(tf.range(n))[:max_samples]),
                   lambda: x)


def mmd_loss(real_features, fake_features, kernel="gaussian", bandwidths=MMD_BANDWIDTHS,
             max_samples=1024):
    """Maximum mean discrepancy between real and generated feature statistics.

    The samples are the feature vectors at every position of a feature map, pooled over
    the batch: a [batch, H, W, C] map gives batch * H * W samples of C numbers, for the
    real images and for the fakes. Per map, then summed over the maps:

    - "gaussian": the biased MMD^2 estimate with a sum of Gaussian kernels
      k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2 C)) over `bandwidths` s (distances per
      channel, so that one set of bandwidths fits narrow and wide layers); it compares
      every moment of the two distributions (MMD GAN, Li et al. 2017). At most
      `max_samples` random samples of each set enter (the kernel matrices grow with the
      square).
    - "linear": k(a, b) = a.b / C, so MMD^2 = |mean(a) - mean(b)|^2 / C: the first moments,
      which is feature matching (Salimans et al. 2016) of the per-channel means.
    - "gram": k(a, b) = (a.b / C)^2, so MMD^2 = |E[a a^T] - E[b b^T]|_F^2 / C^2: the second
      moments, the Gram-matrix (style) loss, which Li et al. 2017 ("Demystifying Neural
      Style Transfer") showed is this polynomial-kernel MMD.

    "linear" and "gram" are moments, taken over the global batch under a tf.distribute
    strategy; "gaussian" compares each replica's own samples (its pairwise kernel does not
    split into per-replica sums).

    Like `feature_matching_loss`, the loss belongs to the batch: it is returned repeated
    for every example of the fakes.

    Args:
        real_features, fake_features: equally long lists of [batch, ..., C] tensors (e.g. a
            discriminator's activations on real and on generated images).
        kernel: one of `MMD_KERNELS`.
        bandwidths: the Gaussian kernel's bandwidths.
        max_samples: the Gaussian kernel's cap on samples per set.

    Returns:
        Shape [batch of fake_features]: the loss, repeated.
    """
    if kernel not in MMD_KERNELS:
        raise UserError(f"Unknown MMD kernel {kernel!r}; choose one of "
                        f"{', '.join(MMD_KERNELS)}.")
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"mmd_loss needs as many real as fake feature maps (at least one); "
                         f"got {len(real_features)} and {len(fake_features)}.")
    loss = 0.0
    for real, fake in zip(real_features, fake_features):
        x, y = _feature_vectors(real), _feature_vectors(fake)
        channels = tf.cast(tf.shape(x)[1], tf.float32)
        if kernel == "gaussian":
            loss += _gaussian_mmd2(_subsample(x, max_samples), _subsample(y, max_samples),
                                   bandwidths)
            continue
        # Moments per example (over its positions), then over the global batch.
        def moments(features):
            features = tf.cast(features, tf.float32)
            batch = tf.shape(features)[0]
            v = tf.reshape(features, [batch, -1, tf.shape(features)[-1]])
            if kernel == "linear":
                return _global_batch_mean(tf.reduce_mean(v, axis=1)) / tf.sqrt(channels)
            gram = tf.matmul(v, v, transpose_a=True) / tf.cast(tf.shape(v)[1], tf.float32)
            return _global_batch_mean(gram) / channels

        loss += tf.reduce_sum(tf.square(moments(real) - moments(fake)))
    return tf.fill([tf.shape(fake_features[0])[0]], loss)


FEATURE_LOSSES = ("fm", "mmd")


def feature_loss(kind, real_features, fake_features, mmd_kernel="gaussian"):
    """`feature_matching_loss` ("fm") or `mmd_loss` ("mmd", with `mmd_kernel`) by name."""
    if kind == "fm":
        return feature_matching_loss(real_features, fake_features)
    if kind == "mmd":
        return mmd_loss(real_features, fake_features, kernel=mmd_kernel)
    raise UserError(f"Unknown feature loss {kind!r}; choose one of {', '.join(FEATURE_LOSSES)}.")


# -- latent codes (multimodal and shared-latent methods) -----------------------------------

KL_REDUCTIONS = ("sum", "mean")


def kl_divergence(mu, logvar, reduction="sum"):
    """Per-example KL(N(mu, exp(logvar)) || N(0, I)) of an encoder's Gaussian code.

    0.5 * (mu^2 + exp(logvar) - 1 - logvar), reduced over the code's dimensions:

    - "sum": the textbook KL, as BicycleGAN's and DRIT's reference code compute it (their
      `torch.sum(kl_element).mul_(-0.5)`). The references also sum over the batch; a method
      that keeps that scale multiplies the batch mean by its batch size.
    - "mean": the mean over the dimensions (the code-size-independent form).

    Args:
        mu, logvar: [batch, ...] the encoder's mean and log-variance.
        reduction: "sum" or "mean".
    """
    if reduction not in KL_REDUCTIONS:
        raise UserError(f"Unknown KL reduction {reduction!r}; choose one of "
                        f"{', '.join(KL_REDUCTIONS)}.")
    mu, logvar = tf.cast(mu, tf.float32), tf.cast(logvar, tf.float32)
    element = 0.5 * (tf.square(mu) + tf.exp(logvar) - 1.0 - logvar)
    element = tf.reshape(element, [tf.shape(element)[0], -1])
    return tf.reduce_sum(element, axis=1) if reduction == "sum" else tf.reduce_mean(element, 1)


def latent_l2(mu):
    """Per-example mean of mu^2: UNIT's "KL" term, its encoders' code having unit variance.

    UNIT's reference (`_compute_kl`: `torch.mean(torch.pow(mu, 2))`) samples z = mu + n,
    n ~ N(0, I), so the KL to N(0, I) is 0.5 * sum(mu^2); the code takes the mean instead of
    the half-sum, and so does this.
    """
    return _per_example_mean(tf.square(tf.cast(mu, tf.float32)))


def latent_regression_loss(z_predicted, z):
    """Per-example mean |E(G(x, z)) - z|: BicycleGAN's cLR-GAN latent regression."""
    return l1_loss(z_predicted, z)


def mode_seeking_loss(fake_1, fake_2, z_1, z_2, eps=1e-5):
    """Mode seeking (MSGAN, Mao et al. 2019; the DRIT++ term): 1 / (d_images / d_codes + eps).

    d_images = mean |fake_1 - fake_2| and d_codes = mean |z_1 - z_2|, each over the whole
    (global) batch as DRIT++'s reference computes them (`torch.mean` of the batch); two
    outputs of one input from different codes should differ as much as their codes do, so
    the loss falls as they spread. Returned as that value for every example, like
    `feature_matching_loss`.
    """
    d_images = tf.reduce_mean(_global_batch_mean(
        tf.abs(tf.cast(fake_1, tf.float32) - tf.cast(fake_2, tf.float32))))
    d_codes = tf.reduce_mean(_global_batch_mean(
        tf.abs(tf.cast(z_1, tf.float32) - tf.cast(z_2, tf.float32))))
    return tf.fill([tf.shape(fake_1)[0]], 1.0 / (d_images / d_codes + eps))
