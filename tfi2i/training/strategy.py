"""Choosing a tf.distribute strategy from `--strategy`."""

import os

import tensorflow as tf

from tfi2i.errors import UserError

STRATEGIES = ("auto", "mirrored", "multiworker", "one_device", "default")


def get_strategy(name="auto"):
    """Returns the strategy for `name`.

    Args:
        name: `auto` (MirroredStrategy when there are several GPUs, else the
            default strategy), `mirrored` (all local GPUs, or all logical CPU
            devices when there is no GPU), `multiworker`
            (MultiWorkerMirroredStrategy; TF_CONFIG names the cluster),
            `one_device`, or `default`.
    """
    if name == "multiworker":
        # First, before anything initialises the TF runtime: collective ops
        # must be configured at program start.
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy=multiworker needs the TF_CONFIG environment variable "
                            "describing the cluster (see the README, 'Several machines').")
        return tf.distribute.MultiWorkerMirroredStrategy()
    # Physical, not logical, devices: listing logical ones starts the runtime.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "default":
        return tf.distribute.get_strategy()
    raise UserError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def worker_info(strategy):
    """(is_chief, task_id) of this process, as the strategy sees it; (True, 0) on one machine.

    The chief is the worker that checkpoints (`extended.should_checkpoint`): the "chief" task
    if TF_CONFIG names one, else worker 0. The strategy worked that out from its cluster
    resolver when it was created, so it is asked rather than TF_CONFIG read again.
    """
    is_chief = bool(strategy.extended.should_checkpoint)
    resolver = strategy.cluster_resolver
    task_id = getattr(resolver, "task_id", None) if resolver is not None else None
    return is_chief, int(task_id or 0)
