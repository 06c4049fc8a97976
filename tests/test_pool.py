"""The image history pool: its rule, its order, checkpoints, XLA and MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfi2i.training.pool import ImagePool

SHAPE = (2, 3, 1)  # One tiny image: height, width, channels.


def images(values, shape=SHAPE):
    """A batch whose image k is filled with values[k], so images are easy to tell apart."""
    return tf.constant(np.array(values, np.float32)[:, None, None, None]
                       * np.ones((1,) + shape, np.float32))


def labels(batch):
    """The value each image of a batch is filled with (inverse of `images`)."""
    batch = np.asarray(batch)
    assert np.all(batch == batch[:, :1, :1, :1]), "an image got mixed with another"
    return batch[:, 0, 0, 0].tolist()


def reference_query(pool, pool_size, batch, draws):
    """The reference's ImagePool.query in NumPy, driven by given uniform draws.

    `pool` is a Python list (mutated); draws[k] = (u_swap, u_index) for image k.
    """
    out = []
    for image, (u_swap, u_index) in zip(batch, draws):
        if len(pool) < pool_size:
            pool.append(image)
            out.append(image)
        elif u_swap > 0.5:
            j = min(int(u_index * pool_size), pool_size - 1)
            out.append(pool[j])
            pool[j] = image
        else:
            out.append(image)
    return out


class Holder(keras.Model):
    """A tiny method-like model with a pool attribute, as a GAN method holds one."""

    def __init__(self, pool_size=3, seed=7):
        super().__init__()
        self.net = keras.layers.Dense(2)
        self.pool = ImagePool(pool_size, seed=seed)

    def build_for_size(self, height, width):
        self(tf.zeros([1, 2]))
        self.pool.build((height, width, 1))

    def call(self, x):
        return self.net(x)


def test_fill_rule_returns_and_stores_first_images_in_order():
    pool = ImagePool(4, SHAPE)
    assert pool.state()["num_images"].numpy().tolist() == [0]
    out = pool.query(images([1.0]))
    assert labels(out) == [1.0]
    out = pool.query(images([2.0, 3.0, 4.0]))
    assert labels(out) == [2.0, 3.0, 4.0]
    state = pool.state()
    assert labels(state["images"][0]) == [1.0, 2.0, 3.0, 4.0]
    assert state["num_images"].numpy().tolist() == [4]
    assert state["counter"].numpy().tolist() == [2]


def test_swap_rule_matches_numpy_reference_with_seeded_draws():
    pool_size = 3
    pool = ImagePool(pool_size, SHAPE, seed=11)
    ref_pool = []
    swaps = keeps = 0
    next_label = 1.0
    for batch_size in [1, 2, 1, 3, 2, 1, 4, 1, 2, 3, 1, 1, 2, 4, 1, 3]:
        batch = [next_label + k for k in range(batch_size)]
        next_label += batch_size
        draws = pool.draw(batch_size).numpy()
        full_before = len(ref_pool)
        expected = reference_query(ref_pool, pool_size, batch, draws)
        out = pool.query(images(batch))
        assert labels(out) == expected
        assert labels(pool.state()["images"][0])[:len(ref_pool)] == ref_pool
        # Count which branches the draws exercised once the pool was full.
        for k, (u_swap, _) in enumerate(draws):
            if full_before + k >= pool_size:
                swaps += u_swap > 0.5
                keeps += u_swap <= 0.5
    assert swaps >= 5 and keeps >= 5, (swaps, keeps)
    # The draws are roughly fair coins and spread over the pool.
    many = ImagePool(50, SHAPE, seed=1).draw(4000).numpy()
    assert 0.45 < np.mean(many[:, 0] > 0.5) < 0.55
    assert len(set(np.minimum((many[:, 1] * 50).astype(int), 49))) == 50


def test_batch_is_processed_image_after_image():
    # Find a seed whose draws swap the 2nd and 3rd image of the first batch:
    # with pool_size 1, image a fills the pool, b returns a and takes its
    # place, c returns b. Processing the batch against the pool as it was
    # before the batch (empty) would give a, b, c and keep a or c.
    for seed in range(200):
        pool = ImagePool(1, SHAPE, seed=seed)
        draws = pool.draw(3).numpy()
        if draws[1, 0] > 0.5 and draws[2, 0] > 0.5:
            break
    else:
        pytest.fail("no seed in 0..199 swaps twice")
    out = pool.query(images([1.0, 2.0, 3.0]))
    assert labels(out) == [1.0, 1.0, 2.0]
    assert labels(pool.state()["images"][0]) == [3.0]


def test_pool_size_zero_passes_images_through():
    pool = ImagePool(0, SHAPE)
    batch = images([1.0, 2.0])
    assert pool.query(batch) is batch
    assert pool.variables == () and pool.state() == {}


def test_pool_size_zero_checkpoints(tmp_path):
    holder = Holder(pool_size=0)
    holder.build_for_size(*SHAPE[:2])
    path = tf.train.Checkpoint(model=holder).save(str(tmp_path / "ckpt"))
    again = Holder(pool_size=0)
    again.build_for_size(*SHAPE[:2])
    tf.train.Checkpoint(model=again).restore(path).assert_existing_objects_matched()


def test_mixed_precision_images_keep_their_dtype_and_values():
    pool = ImagePool(1, SHAPE, seed=0)
    first = tf.cast(images([1.5]), tf.bfloat16)
    assert pool.query(first).dtype == tf.bfloat16
    assert pool.state()["images"].dtype == tf.float32
    # Query until a swap returns the stored image: exact, in bfloat16.
    for k in range(20):
        swap = pool.draw(1).numpy()[0, 0] > 0.5
        stored = labels(pool.state()["images"][0])
        out = pool.query(tf.cast(images([2.0 + k]), tf.bfloat16))
        assert out.dtype == tf.bfloat16
        assert labels(tf.cast(out, tf.float32)) == (stored if swap else [2.0 + k])


def test_bad_shapes_and_unbuilt_pool_raise_clear_errors():
    with pytest.raises(ValueError, match="not built"):
        ImagePool(3).query(images([1.0]))
    with pytest.raises(ValueError, match="holds images of shape"):
        ImagePool(3, SHAPE).query(images([1.0], shape=(4, 4, 1)))
    pool = ImagePool(3, SHAPE)
    with pytest.raises(ValueError, match="already built"):
        pool.build((4, 4, 1))


def test_checkpoint_round_trip_as_model_attribute(tmp_path):
    model = Holder(pool_size=3, seed=5)
    model.build_for_size(*SHAPE[:2])
    for k in range(4):
        model.pool.query(images([2.0 * k + 1, 2.0 * k + 2]))
    saved = {k: v.numpy() for k, v in model.pool.state().items()}
    assert saved["num_images"].tolist() == [3] and saved["counter"].tolist() == [4]
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    keys = dict(tf.train.list_variables(path))
    assert keys["model/pool/state/.ATTRIBUTES/images"] == [1, 3] + list(SHAPE)

    restored = Holder(pool_size=3, seed=5)
    restored.build_for_size(*SHAPE[:2])
    assert restored.pool.state()["num_images"].numpy().tolist() == [0]
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    for name, value in restored.pool.state().items():
        np.testing.assert_array_equal(value.numpy(), saved[name], err_msg=name)
    # The resumed pool continues with the draws of the uninterrupted one.
    for k in range(6):
        batch = images([100.0 + k])
        assert labels(restored.pool.query(batch)) == labels(model.pool.query(batch))


def test_saved_model_of_a_model_holding_a_pool_leaves_the_pool_out(tmp_path):
    model = Holder(pool_size=3)
    model.build_for_size(*SHAPE[:2])
    model.pool.query(images([1.0]))
    tf.saved_model.save(model, str(tmp_path / "sm"))
    saved = [name for name, _ in tf.train.list_variables(str(tmp_path / "sm" / "variables" / "variables"))]
    assert any(name.startswith("net/") for name in saved), saved
    assert not any("pool" in name for name in saved), saved


def test_works_in_xla_compiled_function_like_eager():
    eager = ImagePool(3, SHAPE, seed=2)
    compiled = ImagePool(3, SHAPE, seed=2)
    query = tf.function(compiled.query, jit_compile=True)
    # Really compiled by XLA, not silently run as a plain graph.
    assert "HloModule" in query.experimental_get_compiler_ir(images([0.0, 0.0]))()
    for k in range(8):
        batch = images([10.0 * k + 1, 10.0 * k + 2])
        assert labels(query(batch)) == labels(eager.query(batch))
    for name, value in eager.state().items():
        np.testing.assert_array_equal(compiled.state()[name].numpy(), value.numpy(),
                                      err_msg=name)


# -- MirroredStrategy over the two logical CPUs of conftest -------------------



def replica_images(strategy, step):
    """Per replica a batch of 2: replica r's images are 100 * (r + 1) + ..."""
    def value_fn(ctx):
        r = ctx.replica_id_in_sync_group
        return images([100.0 * (r + 1) + 2 * step, 100.0 * (r + 1) + 2 * step + 1])
    return strategy.experimental_distribute_values_from_function(value_fn)


def per_replica(strategy, values):
    return [labels(v) for v in strategy.experimental_local_results(values)]


def test_mirrored_strategy_keeps_one_pool_per_replica(mirrored_strategy, tmp_path):
    strategy = mirrored_strategy
    with strategy.scope():
        model = Holder(pool_size=4, seed=3)
        model.build_for_size(*SHAPE[:2])

    @tf.function
    def step(batch):
        return strategy.run(lambda x: (model.pool.draw(2), model.pool.query(x)), (batch,))

    replica_refs = [[], []]
    for k in range(6):
        draws, out = step(replica_images(strategy, k))
        draws = [d.numpy() for d in strategy.experimental_local_results(draws)]
        out = per_replica(strategy, out)
        for r in range(2):
            batch = labels(strategy.experimental_local_results(replica_images(strategy, k))[r])
            assert out[r] == reference_query(replica_refs[r], 4, batch, draws[r])
    assert not np.allclose(draws[0], draws[1]), "the replicas draw alike"
    state = model.pool.state()
    assert state["num_images"].numpy().tolist() == [4, 4]
    assert state["counter"].numpy().tolist() == [6, 6]
    for r in range(2):
        pool_labels = labels(state["images"][r])
        assert pool_labels == replica_refs[r]
        # Each replica's pool holds only its own replica's fakes.
        assert all(100 * (r + 1) <= v < 100 * (r + 2) for v in pool_labels), pool_labels

    # A checkpoint holds both replicas' pools; resuming under the same strategy
    # gives each replica its own back and continues with the same draws.
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    assert dict(tf.train.list_variables(path))["model/pool/state/.ATTRIBUTES/images"] == \
        [2, 4] + list(SHAPE)
    with strategy.scope():
        resumed = Holder(pool_size=4, seed=3)
        resumed.build_for_size(*SHAPE[:2])
    tf.train.Checkpoint(model=resumed).restore(path).assert_consumed()
    for name, value in resumed.pool.state().items():
        np.testing.assert_array_equal(value.numpy(), state[name].numpy(), err_msg=name)

    @tf.function
    def resumed_step(batch):
        return strategy.run(resumed.pool.query, (batch,))

    for k in range(6, 10):
        assert per_replica(strategy, resumed_step(replica_images(strategy, k))) == \
            per_replica(strategy, step(replica_images(strategy, k))[1])

    # Resumed without a strategy (one replica), the pool is replica 0's.
    single = Holder(pool_size=4, seed=3)
    single.build_for_size(*SHAPE[:2])
    tf.train.Checkpoint(model=single).restore(path).assert_consumed()
    assert labels(single.pool.state()["images"][0]) == labels(state["images"][0])


def test_pool_built_outside_the_strategy_scope_is_refused(mirrored_strategy):
    strategy = mirrored_strategy
    pool = ImagePool(2, SHAPE)
    with pytest.raises(ValueError, match="outside the current tf.distribute strategy"):
        strategy.run(tf.function(pool.query), (images([1.0]),))
