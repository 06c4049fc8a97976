"""Choosing a tf.distribute strategy from `--strategy`."""

import json
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
    """(is_chief, task_id) of this process; (True, 0) outside multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True, 0
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    # With no explicit chief, worker 0 acts as chief.
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                        and "chief" not in cluster)
    return is_chief, task_id
