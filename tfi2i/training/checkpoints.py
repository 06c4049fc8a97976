"""Training-state checkpoints of a run directory, and restoring a run.

A checkpoint holds the method's networks (and anything else it tracks, such
as image pools), the random state of its dropout layers, every optimizer (its step count drives the LR schedule, so
the schedule position comes back with it) and the epoch. tf.train's
CheckpointManager writes the data files first and then replaces the small
`checkpoint` index file atomically, so a crash mid-save leaves the previous
checkpoint as the latest one: nothing half-written is ever restored.
"""

import os
import shutil

import tensorflow as tf

from tfi2i.config import read_config
from tfi2i.errors import UserError


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, "checkpoints")


def make_checkpoint(model, epoch):
    """A tf.train.Checkpoint of everything a run needs to resume."""
    optimizers = {f"{g}_optimizer": opt for g, opt in model.optimizers.items()}
    # Keras keeps dropout's random state in SeedGenerator variables that the
    # object graph below `model` does not reach; without them a resumed run
    # draws other dropout masks than an uninterrupted one.
    rng_states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    return tf.train.Checkpoint(model=model, epoch=epoch, rng_states=rng_states, **optimizers)


class RunCheckpointer:
    """Saves and restores a run's checkpoints (chief writes; other workers to scratch).

    Under MultiWorkerMirroredStrategy every worker must take part in a save;
    only the chief's copy is kept, the others write to a temporary folder
    that is removed right after.
    """

    def __init__(self, model, epoch, run_dir, keep=3, is_chief=True, task_id=0):
        self.checkpoint = make_checkpoint(model, epoch)
        self.is_chief = is_chief
        directory = checkpoint_dir(run_dir)
        if not is_chief:
            directory = os.path.join(run_dir, ".worker_tmp", f"worker_{task_id}")
        self.directory = directory
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  checkpoint_name="ckpt")
        # The chief's manager also reads the latest checkpoint for every worker.
        self.read_manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir(run_dir), max_to_keep=keep, checkpoint_name="ckpt") \
            if not is_chief else self.manager

    def restore_latest(self):
        """Restores the latest checkpoint; returns its path or None for a new run."""
        path = self.read_manager.latest_checkpoint
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step):
        path = self.manager.save(checkpoint_number=int(step))
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)
            try:  # The shared scratch parent, once the last worker's folder is gone.
                os.rmdir(os.path.dirname(self.directory))
            except OSError:
                pass
        return path


def restore_run(run_dir, checkpoint=None):
    """Rebuilds a trained method from its run directory.

    Args:
        run_dir: the `--run_dir` of a tfi2i-train run.
        checkpoint: a checkpoint path (`RUN/checkpoints/ckpt-1200`), or
            "best" for the one `--best_metric` kept in RUN/best/; default the
            latest one.

    Returns:
        (model, config): the method with restored weights (optimizers are not
        restored; with --ema_decay the generators hold their averaged weights)
        and the run's config dict.
    """
    from tfi2i.methods import get_method  # Methods import nets; keep this module light.

    config = read_config(run_dir)
    if checkpoint == "best":
        path = tf.train.latest_checkpoint(os.path.join(run_dir, "best"))
        if not path:
            raise UserError(f"{run_dir!r} has no best checkpoint: train with --eval_metrics "
                            "and --best_metric to keep one.")
    else:
        path = checkpoint or tf.train.latest_checkpoint(checkpoint_dir(run_dir))
    if not path:
        raise UserError(f"The run directory {run_dir!r} has no checkpoint yet. Train first, "
                        "or pass --checkpoint.")
    if not tf.io.gfile.exists(path + ".index"):
        raise UserError(f"Checkpoint {path!r} does not exist. List {checkpoint_dir(run_dir)!r} "
                        "for the available ones.")
    model = get_method(config["method"]).from_run_config(config)
    size = config.get("crop_size", 256)
    model.build_for_size(size, size)
    if config.get("ema_decay"):
        model.ema = model.average_generator_weights(config["ema_decay"])
    tf.train.Checkpoint(model=model).read(path).expect_partial().assert_existing_objects_matched()
    if config.get("ema_decay"):
        model.ema.copy_to_weights()  # Inference uses the averaged generators.
    return model, config
