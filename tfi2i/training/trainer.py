"""The training run behind `tfi2i-train`: config -> data -> method -> fit.

`train(config)` is what the command line calls, and it is `model.fit` under
the hood, with the run directory around it: config.json, checkpoints that
resume mid-epoch, TensorBoard logs and sample images.

    RUN/config.json      the resolved config (the whole truth about the run)
    RUN/checkpoints/     tf.train checkpoints: nets, optimizers, epoch
    RUN/logs/            TensorBoard events
    RUN/samples/         PNG grids, input | output | target
"""

import math
import os
import re

import keras
import tensorflow as tf
from absl import logging

from tfi2i import data as tfi2i_data
from tfi2i.config import merge_for_resume, read_config
from tfi2i.errors import UserError
from tfi2i.files import write_json_atomic
from tfi2i.methods import get_method
from tfi2i.training import callbacks as cb
from tfi2i.training.checkpoints import RunCheckpointer, checkpoint_dir, make_checkpoint
from tfi2i.training.optimizers import FusedAdam
from tfi2i.training.schedules import make_schedule
from tfi2i.training.strategy import get_strategy, worker_info


def default_run_dir(config):
    """runs/<method>[_<preset>]_<dataset or data folder>, one folder even for cyclegan/facades."""
    source = config.get("dataset") or os.path.basename(os.path.normpath(config["data_dir"] or "data"))
    name = "_".join(filter(None, (config["method"], config.get("preset"), source)))
    return os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]+", "_", name))


def prepare_run_config(config, explicit_keys=(), resume=True):
    """Decides the run directory and, for a resumed run, reconciles the configs."""
    config = dict(config)
    config["run_dir"] = config.get("run_dir") or default_run_dir(config)
    run_dir = config["run_dir"]
    has_checkpoint = tf.train.latest_checkpoint(checkpoint_dir(run_dir)) is not None
    if has_checkpoint and not resume:
        raise UserError(f"{run_dir!r} already holds a run. Pass --resume to continue it, or "
                        "choose a new --run_dir.")
    if os.path.exists(os.path.join(run_dir, "config.json")) and has_checkpoint:
        saved = read_config(run_dir)
        if "imported" in saved:
            raise UserError(f"{run_dir!r} holds a generator imported by tfi2i-import from "
                            f"{saved['imported'].get('file')}, without the discriminator and "
                            "optimizer state training needs: translate, export or evaluate "
                            "it, or train in a new --run_dir.")
        saved["run_dir"] = run_dir
        config = merge_for_resume(saved, config, explicit_keys)
    return config


def _optimizer(config, schedule):
    if config["optimizer"] == "rmsprop":
        # tf.compat.v1.train.RMSPropOptimizer's decay and momentum (the
        # DualGAN code's optimizer); Keras starts its mean square at 0, TF1 at 1.
        opt = keras.optimizers.RMSprop(schedule, rho=0.9, momentum=0.0)
    else:
        opt = FusedAdam(schedule, beta_1=config["beta1"], beta_2=config["beta2"])
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def build_compiled_model(config, steps_per_epoch, strategy):
    """The method, built and compiled inside the strategy's scope."""
    cls = get_method(config["method"])
    with strategy.scope():
        model = cls.from_run_config(config)
        size = config["crop_size"]
        model.build_for_size(size, size)
        opts = {}
        for group in cls.optimizer_groups:
            # A method may declare an own learning rate for a group: `<group>_lr` (MUNIT's d_lr).
            lr = config["lr"] if config.get(f"{group}_lr") is None else config[f"{group}_lr"]
            schedule = make_schedule(config["lr_policy"], lr, steps_per_epoch,
                                     config["n_epochs"], config["n_epochs_decay"],
                                     config["lr_decay_iters"], config["lr_decay_steps"],
                                     config["lr_decay_gamma"])
            opts[f"{group}_optimizer"] = _optimizer(config, schedule)
        model.compile(jit_compile=bool(config["jit_compile"]),
                      weight_decay=config["weight_decay"], ema_decay=config["ema_decay"],
                      **opts)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    return model, epoch


def _set_precision_and_determinism(config):
    keras.utils.set_random_seed(int(config["seed"]))
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    else:
        # Op determinism is process-wide and has no public switch back; left on by an
        # earlier run in the same process, it would also make Keras drop jit_compile.
        from tensorflow.python.framework import config as tf_config
        tf_config.disable_op_determinism()
    if config["mixed_precision"]:
        # float16 needs a GPU to be fast; bfloat16 is the CPU's half type.
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
    else:
        keras.mixed_precision.set_global_policy("float32")


def pipeline_options(config, cls, size_divisor):
    """The `tfi2i.data.make_dataset` options of a run of method `cls` (all but split, batch)."""
    return dict(direction=config["direction"], preprocess=config["preprocess"],
                load_size=config["load_size"], crop_size=config["crop_size"],
                size_divisor=size_divisor, input_nc=config["input_nc"],
                output_nc=config["output_nc"], skip_bad_images=config["skip_bad_images"],
                exif_orientation=config["exif_orientation"],
                labels=getattr(cls, "source_labels", False), paired=cls.paired,
                unpaired=config["unpaired"])


def _val_split(config, root, paired):
    """The validation split: --val_split, else val or test where present; None without one."""
    kinds = dict(paired=paired, unpaired=config["unpaired"])
    if config.get("val_split"):
        return config["val_split"]
    for split in ("val", "test"):
        if tfi2i_data.has_split(root, split, **kinds):
            return split
    logging.warning("%s has no val or test split: training without validation.", root)
    return None


def train(config, explicit_keys=(), resume=True, extra_callbacks=()):
    """Trains one run; returns the trained model.

    Args:
        config: a resolved config (`tfi2i.config.resolve_config`).
        explicit_keys: options the user set explicitly; on resume they are
            checked against the saved config.
        resume: continue the run found in `run_dir`, if any.
        extra_callbacks: more Keras callbacks for `fit`.
    """
    strategy = get_strategy(config["strategy"])  # First: multi-worker needs a fresh runtime.
    config = prepare_run_config(config, explicit_keys, resume)
    run_dir = config["run_dir"]
    _set_precision_and_determinism(config)
    is_chief, task_id = worker_info(strategy)
    cls = get_method(config["method"])
    # Paired methods read (input, target) pairs; unpaired ones two domains.
    kinds = dict(paired=cls.paired, unpaired=config["unpaired"])

    root = tfi2i_data.resolve_dataset(config.get("dataset"), config.get("data_dir"),
                                      config.get("cache_dir"), tfds_data_dir=config["tfds_data_dir"])
    n_train = tfi2i_data.num_examples(root, "train", skip_bad_images=config["skip_bad_images"],
                                      exif_orientation=config["exif_orientation"], **kinds)
    batch = int(config["batch_size"])
    # The data stream's own epoch arithmetic, so epochs here and there agree.
    steps_per_epoch = tfi2i_data.steps_per_epoch(n_train, batch)
    n_epochs_total = int(config["n_epochs"]) + int(config["n_epochs_decay"])
    total_steps = steps_per_epoch * n_epochs_total
    if config.get("max_steps"):
        total_steps = min(total_steps, int(config["max_steps"]))

    model, epoch_var = build_compiled_model(config, steps_per_epoch, strategy)
    config["size_divisor"] = model.size_divisor
    if is_chief:
        write_json_atomic(os.path.join(run_dir, "config.json"), config)

    checkpointer = RunCheckpointer(model, epoch_var, run_dir, keep=config["keep_checkpoints"],
                                   is_chief=is_chief, task_id=task_id)
    restored = checkpointer.restore_latest()
    start = int(model.step.numpy())
    if restored:
        logging.info("Resuming %s from %s (step %d, epoch %d).", run_dir, restored, start,
                     start // steps_per_epoch)
    if start >= total_steps:
        logging.info("%s is already trained to step %d.", run_dir, start)
        return model

    data_options = pipeline_options(config, cls, model.size_divisor)

    def train_data(first, last):
        ds = tfi2i_data.make_dataset(root, "train", batch_size=batch, seed=config["seed"],
                                       training=True, epochs=n_epochs_total, start_step=first,
                                       cache=config["cache_data"], **data_options)
        return ds.take(last - first)

    val_split = _val_split(config, root, cls.paired)
    val_data = None
    if val_split:
        val_data = tfi2i_data.make_dataset(root, val_split, batch_size=batch, training=False,
                                           **data_options).take(config["val_batches"])
    sample_source = val_data if val_data is not None else train_data(0, 1)
    sample_batch = next(iter(sample_source.unbatch().batch(4).take(1)))

    callbacks = [cb.StepCheckpoint(checkpointer, epoch_var, config["save_every_steps"],
                                   steps_per_epoch), cb.StepsPerSecond()]
    if is_chief:
        callbacks.append(cb.TrainingLogger(os.path.join(run_dir, "logs"),
                                           os.path.join(run_dir, "samples"), sample_batch,
                                           config["log_every_steps"],
                                           config["sample_every_steps"]))
        if config.get("profile_steps"):
            callbacks.append(cb.Profiler(os.path.join(run_dir, "logs"),
                                         *config["profile_steps"]))
    if config.get("eval_metrics") and val_data is not None:
        callbacks.append(_evaluation_callback(config, model, epoch_var, val_data, is_chief))
    callbacks.extend(extra_callbacks)

    # fit's epochs are the run's epochs. A run resumed mid-epoch first
    # finishes that epoch with a short fit, so later epochs line up.
    for first, last in _epoch_segments(start, total_steps, steps_per_epoch):
        seg_epoch = first // steps_per_epoch
        # A segment is the rest of one epoch, whole epochs, or a last partial epoch.
        seg_steps = min(last - first, steps_per_epoch)
        model.fit(train_data(first, last), initial_epoch=seg_epoch,
                  epochs=seg_epoch + math.ceil((last - first) / seg_steps),
                  steps_per_epoch=seg_steps, validation_data=val_data,
                  validation_freq=config["validation_freq"], callbacks=callbacks, shuffle=False,
                  verbose=1 if is_chief else 0)
    logging.info("Trained %s to step %d.", run_dir, int(model.step.numpy()))
    if is_chief:
        print(f"Run directory: {run_dir}")
    return model


def _evaluation_callback(config, model, epoch_var, val_data, is_chief):
    """`--eval_metrics` every `--eval_every_epochs`; the best checkpoint goes to RUN/best/."""
    # Imported here: FID pulls in the Inception net.
    from tfi2i.metrics.callback import EvaluationCallback
    from tfi2i.metrics.evaluator import Evaluator

    run_dir = config["run_dir"]
    best = tf.train.CheckpointManager(make_checkpoint(model, epoch_var),
                                      os.path.join(run_dir, "best"), max_to_keep=1,
                                      checkpoint_name="ckpt")

    def save_best(model, epoch, results):
        if is_chief:
            best.save(checkpoint_number=int(model.step.numpy()))
            write_json_atomic(os.path.join(run_dir, "best", "best.json"),
                              {"epoch": epoch, "step": int(model.step.numpy()),
                               **{k: float(v) for k, v in results.items()}})

    segmenter = None
    if "seg" in config["eval_metrics"]:
        from tfi2i.metrics.segmentation import load_segmenter
        segmenter = load_segmenter(config.get("segmenter"))
    evaluator = Evaluator(val_data, metrics=config["eval_metrics"], segmenter=segmenter)

    def translate(images):
        if model.ema is None:
            return model.translate(images)
        with model.ema.swapped():  # Scored as exported: the averaged generators.
            return model.translate(images)

    return EvaluationCallback(
        evaluator, translate=translate, every_n_epochs=config["eval_every_epochs"],
        log_dir=os.path.join(run_dir, "logs") if is_chief else None,
        best_metric=config.get("best_metric"), save_best=save_best)


def _epoch_segments(start, stop, steps_per_epoch):
    """Splits steps [start, stop) into: the rest of a started epoch, whole
    epochs, and a last partial epoch, so each `fit` call has a fixed
    steps_per_epoch."""
    segments = []
    if start % steps_per_epoch:
        end = min(stop, (start // steps_per_epoch + 1) * steps_per_epoch)
        segments.append((start, end))
        start = end
    whole_end = start + (stop - start) // steps_per_epoch * steps_per_epoch
    if whole_end > start:
        segments.append((start, whole_end))
        start = whole_end
    if stop > start:
        segments.append((start, stop))
    return segments
