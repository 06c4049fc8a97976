"""Image history pool (Shrivastava et al. 2017), as CycleGAN's reference uses it.

The discriminators of CycleGAN-style methods are updated on a mix of the
newest fakes and fakes from earlier steps, which keeps them from forgetting
what older generators produced. The reference (`util/image_pool.py` of
pytorch-CycleGAN-and-pix2pix) keeps that history in a Python list; here it
lives in tf.Variables so that it works inside a compiled train step, under
XLA and under tf.distribute, and is saved in checkpoints.
"""

import tensorflow as tf

_RNG_ALG = "philox"  # Named, not "auto_select", which may pick by device.


def _components(variable):
    """The per-replica copies of a variable (just itself without a strategy)."""
    if isinstance(variable, tf.distribute.DistributedValues):
        return tuple(variable.values)
    return (variable,)


class ImagePool(tf.Module):
    """A history of `pool_size` past generated images, one pool per replica.

    `query(images)` goes through the batch one image after another, as the
    reference does, so a later image of the batch sees the pool as the
    earlier ones left it. For each image: while the pool holds fewer than
    `pool_size` images, the image is stored and returned; once it is full,
    with probability 0.5 a uniformly chosen stored image is returned and the
    new image takes its place, otherwise the new image is returned. With
    `pool_size` 0, `query` returns its input unchanged.

    The draws are stateless: a pure function of `seed`, the replica id and a
    call counter kept in a variable, so a run resumed from a checkpoint draws
    what an uninterrupted run would, and replicas draw differently.

    Under a `tf.distribute` strategy build the pool inside `strategy.scope()`
    and call `query` in replica context (a train step run by `fit` or
    `strategy.run`): each replica keeps its own pool of its own fakes, in
    ON_READ variables that are never synchronised. A checkpoint stores the
    pools of all local replicas stacked on a leading axis (images
    `[replicas, pool_size, H, W, C]`, fill level and counter `[replicas]`);
    restoring gives replica i the saved pool i, or pool `i % saved_replicas`
    when the replica count changed (e.g. a run saved under a 2-replica
    MirroredStrategy and resumed on one device continues with replica 0's
    pool). Under MultiWorkerMirroredStrategy only the chief's replicas are
    saved and every worker restores those. Asynchronous checkpointing is not
    supported, and `tf.saved_model.save` of a model holding a pool leaves the
    pool out (it is training state; checkpoints hold it).

    The pool stores images in `dtype` (float32 by default, so bfloat16 or
    float16 fakes round-trip exactly) and returns them in the dtype they came
    in. Gradients do not flow through returned images (the reference returns
    detached tensors too).

    Args:
        pool_size: how many past images the pool holds; 0 disables it.
        image_shape: (height, width, channels) of one image. When given, the
            pool is built right away; otherwise call `build(image_shape)`
            before the first `query` (a method does this in its
            `build_for_size`, inside the strategy scope).
        seed: integer seed of the draws. Give each pool of a model its own
            seed, or two pools fed the same way would draw alike.
        dtype: dtype the images are stored in.
        name: module name.
    """

    def __init__(self, pool_size=50, image_shape=None, seed=0, dtype=tf.float32,
                 name="image_pool"):
        super().__init__(name=name)
        if int(pool_size) < 0:
            raise ValueError(f"ImagePool: pool_size must be >= 0, got {pool_size}.")
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        self.dtype = tf.as_dtype(dtype)
        self.image_shape = None
        self._images = self._num_images = self._counter = None
        self._checkpoint_state = _PoolState(self)
        if image_shape is not None:
            self.build(image_shape)

    def get_config(self):
        return {"pool_size": self.pool_size,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                "seed": self.seed, "dtype": self.dtype.name, "name": self.name}

    @property
    def built(self):
        return self.image_shape is not None

    def build(self, image_shape):
        """Creates the variables for images of shape (height, width, channels)."""
        image_shape = tuple(int(d) for d in image_shape)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"ImagePool: image_shape must be (height, width, channels), "
                             f"got {image_shape}.")
        if self.built:
            if image_shape != self.image_shape:
                raise ValueError(f"ImagePool {self.name} is already built for images of "
                                 f"shape {self.image_shape}, not {image_shape}.")
            return
        self.image_shape = image_shape
        if self.pool_size == 0:
            return
        # ON_READ + NONE: every replica reads and writes its own copy and
        # nothing is ever all-reduced (each pool holds its replica's fakes).
        # Without a strategy these are plain variables.
        per_replica = dict(trainable=False,
                           synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.NONE)
        with self.name_scope:
            self._images = tf.Variable(
                tf.zeros((self.pool_size,) + image_shape, self.dtype), name="images",
                **per_replica)
            # int64 like the optimizers' step counters (TF pins int32 tensors
            # to host memory on GPUs).
            self._num_images = tf.Variable(tf.constant(0, tf.int64), name="num_images",
                                           **per_replica)
            self._counter = tf.Variable(tf.constant(0, tf.int64), name="counter",
                                        **per_replica)

    # -- the pool rule ------------------------------------------------------

    def draw(self, batch_size):
        """The uniform draws the next `query` of `batch_size` images will use.

        Returns a float32 [batch_size, 2] tensor: column 0 decides the swap
        (swap when > 0.5, as the reference's `random.uniform(0, 1) > 0.5`),
        column 1 picks the stored image, `floor(u * pool_size)`. It does not
        advance the counter; `query` does. Call it where `query` would run
        (same replica), e.g. to check the rule against a re-implementation.
        """
        self._check_ready()
        replica_id = _replica_id()
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, 0], tf.int64), tf.cast(replica_id, tf.int64),
            alg=_RNG_ALG)
        seed = tf.random.experimental.stateless_fold_in(seed, self._counter.read_value(),
                                                        alg=_RNG_ALG)
        # Philox floats differ between XLA and the TF kernels (TF 2.21, CPU)
        # while its integers agree: draw 24-bit integers and scale them, which
        # is exact in float32, so a compiled step draws what an eager one does.
        bits = tf.random.stateless_uniform(tf.stack([batch_size, 2]), seed, minval=0,
                                           maxval=1 << 24, dtype=tf.int32, alg=_RNG_ALG)
        return tf.cast(bits, tf.float32) * (1.0 / (1 << 24))

    def query(self, images):
        """Returns a batch of images from the pool, updating it (see the class doc).

        Args:
            images: [batch, height, width, channels] newly generated images.

        Returns:
            A batch of the same shape and dtype as `images`.
        """
        if self.pool_size == 0:
            return images
        self._check_ready()
        images = tf.convert_to_tensor(images)
        if not images.shape[1:].is_compatible_with(self.image_shape) or images.shape.rank != 4:
            raise ValueError(f"ImagePool {self.name} holds images of shape "
                             f"{self.image_shape}; got a batch of shape {images.shape}.")
        new = tf.stop_gradient(tf.cast(images, self.dtype))
        batch_size = tf.shape(new)[0]
        draws = self.draw(batch_size)
        size = tf.constant(self.pool_size, tf.int32)
        swap_index = tf.minimum(tf.cast(draws[:, 1] * self.pool_size, tf.int32), size - 1)

        # One image after another: the reference's order, where an image may
        # return one stored earlier in the same batch. Scatters on static
        # shapes, no Python branching on values, so XLA compiles it.
        def body(i, pool, num_images, out):
            image = new[i]
            filling = num_images < size
            swap = tf.logical_and(tf.logical_not(filling), draws[i, 0] > 0.5)
            slot = tf.where(filling, num_images, swap_index[i])
            stored = pool[slot]
            pool = tf.tensor_scatter_nd_update(
                pool, [[slot]], [tf.where(tf.logical_or(filling, swap), image, stored)])
            out = tf.tensor_scatter_nd_update(out, [[i]], [tf.where(swap, stored, image)])
            return i + 1, pool, num_images + tf.cast(filling, tf.int32), out

        _, pool, num_images, out = tf.while_loop(
            lambda i, *_: i < batch_size, body,
            (tf.constant(0), self._images.read_value(),
             tf.cast(self._num_images.read_value(), tf.int32), tf.zeros_like(new)))
        self._images.assign(pool)
        self._num_images.assign(tf.cast(num_images, tf.int64))
        self._counter.assign_add(1)
        return tf.cast(out, images.dtype)

    # -- inspection ---------------------------------------------------------

    def state(self):
        """{"images", "num_images", "counter"}: every local replica's state, stacked.

        Call it outside `strategy.run` (or without a strategy, where the
        leading axis has length 1). This is also what a checkpoint saves.
        """
        if self.pool_size == 0 or not self.built:
            return {}
        return {name: tf.stack([c.read_value() for c in _components(var)])
                for name, var in self._state_variables().items()}

    def _state_variables(self):
        return {"images": self._images, "num_images": self._num_images,
                "counter": self._counter}

    def _check_ready(self):
        if not self.built:
            raise ValueError(f"ImagePool {self.name} is not built: pass image_shape or call "
                             f"build((height, width, channels)) first.")
        strategy = tf.distribute.get_strategy()
        if (tf.distribute.has_strategy()
                and not strategy.extended.variable_created_in_scope(self._images)):
            raise ValueError(f"ImagePool {self.name} was built outside the current "
                             f"tf.distribute strategy's scope; its replicas would share one "
                             f"pool. Build it inside strategy.scope().")

    # -- checkpointing -------------------------------------------------------
    # The variables are not checkpoint children: the default saver of an
    # ON_READ variable saves one cross-replica aggregate (and with
    # aggregation NONE cannot save at all), which would lose all pools but
    # one. A `_PoolState` child saves every replica's copy itself, stacked.
    # It is a child in checkpoints only: a SavedModel is for inference, the
    # pool is training state, and its variables are not in the exported graph.

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        if save_type != "checkpoint" or self.pool_size == 0:
            return {}
        return {"state": self._checkpoint_state}


class _PoolState(tf.__internal__.tracking.Trackable):
    """The checkpointed form of an ImagePool: all local replicas' state, stacked."""

    def __init__(self, pool):
        self._pool = pool

    def _serialize_to_tensors(self):
        return self._pool.state()

    def _restore_from_tensors(self, restored_tensors):
        pool = self._pool
        if not pool.built:
            raise ValueError(f"ImagePool {pool.name} must be built before a checkpoint is "
                             f"restored into it (the method's build_for_size does that).")
        saved_images = restored_tensors["images"]
        expected = (pool.pool_size,) + pool.image_shape
        if saved_images.shape.rank is not None and tuple(saved_images.shape[1:]) != expected:
            raise ValueError(f"ImagePool {pool.name}: the checkpoint holds a pool of shape "
                             f"{tuple(saved_images.shape[1:])}, this pool has {expected}.")
        ops = []
        for name, var in pool._state_variables().items():
            saved = restored_tensors[name]
            for i, component in enumerate(_components(var)):
                # A different replica count: replica i takes saved pool i mod saved.
                ops.append(component.assign(saved[i % tf.shape(saved)[0]]))
        return tf.group(ops)


def _replica_id():
    context = tf.distribute.get_replica_context()
    if context is None:
        raise ValueError("ImagePool.query runs per replica: call it inside the train step "
                         "(strategy.run), not in the strategy's cross-replica context.")
    return context.replica_id_in_sync_group
