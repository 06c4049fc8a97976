"""tfi2i-train: train a translation method.

    tfi2i-train --method=pix2pix --dataset=facades
    tfi2i-train --method=pix2pix --data_dir=path/to/facades --direction=BtoA \
        --crop_size=128 --load_size=143 --netG=unet_128 --n_epochs=1 --n_epochs_decay=0

Options left unset take the method's preset for the dataset (configs/), then
the library defaults. Re-running the same command on the same --run_dir
continues the run from its latest checkpoint.
"""

from absl import flags

from tfi2i.config import parse_hparams, resolve_config
from tfi2i.cli.common import run_main
from tfi2i.errors import UserError

FLAGS = flags.FLAGS

# Flags default to None so that "not given" falls through to the presets;
# the help text states the library default.
flags.DEFINE_string("method", "pix2pix", "Translation method (pix2pix).")
flags.DEFINE_string("dataset", None, "Named dataset: sample, facades, cityscapes, maps, "
                    "edges2shoes, edges2handbags, night2day. Downloaded into --cache_dir.")
flags.DEFINE_string("data_dir", None, "A local dataset folder with train/ and test/ (or val/) "
                    "subfolders, in pix2pix AB layout or with A/ and B/ folders.")
flags.DEFINE_string("cache_dir", None, "Where named datasets are downloaded "
                    "(default $TFI2I_CACHE or ~/.cache/tfi2i).")
flags.DEFINE_string("run_dir", None, "Where checkpoints, logs, samples and config.json go "
                    "(default runs/<method>_<dataset>).")
flags.DEFINE_bool("resume", True, "Continue the run found in --run_dir. --noresume refuses to "
                  "touch a run directory that already holds checkpoints.")
flags.DEFINE_list("hparams", [], "More method options as key=value pairs (JSON values), for "
                  "options without a flag of their own, e.g. --hparams=lambda_gp=5.0.")

# Data.
flags.DEFINE_enum("direction", None, ["AtoB", "BtoA"], "Translate A to B or B to A (AtoB).")
flags.DEFINE_enum("preprocess", None, ["resize_and_crop", "crop", "scale_width",
                                       "scale_width_and_crop", "none"],
                  "Training-time jitter, as in the reference (resize_and_crop).")
flags.DEFINE_integer("load_size", None, "Scale images to this size before cropping (286).")
flags.DEFINE_integer("crop_size", None, "Then crop to this size (256).")
flags.DEFINE_integer("batch_size", None, "Global batch size, over all replicas (1).")
flags.DEFINE_integer("input_nc", None, "Input channels (3).")
flags.DEFINE_integer("output_nc", None, "Output channels (3).")
flags.DEFINE_bool("cache_data", None, "Cache decoded images in memory (False).")
flags.DEFINE_bool("skip_bad_images", None, "Skip unreadable images with a warning instead of "
                  "stopping (False).")
flags.DEFINE_integer("seed", None, "Seed of initialisation, shuffling and jitter (0).")

# Networks and losses.
flags.DEFINE_string("netG", None, "Generator: unet_256, unet_128, unet_64, unet_32, "
                    "resnet_9blocks, resnet_6blocks (unet_256).")
flags.DEFINE_string("netD", None, "Discriminator: basic (70x70 PatchGAN), n_layers, pixel.")
flags.DEFINE_integer("ngf", None, "Generator filters in the first layer (64).")
flags.DEFINE_integer("ndf", None, "Discriminator filters in the first layer (64).")
flags.DEFINE_integer("n_layers_D", None, "Discriminator depth for --netD=n_layers (3).")
flags.DEFINE_enum("norm", None, ["batch", "sync_batch", "instance", "none"],
                  "Normalization (pix2pix: batch).")
flags.DEFINE_bool("use_dropout", None, "Dropout in the generator (pix2pix: True).")
flags.DEFINE_enum("init_type", None, ["normal", "xavier", "kaiming", "orthogonal"],
                  "Weight initialisation (normal).")
flags.DEFINE_float("init_gain", None, "Scale of the initialisation (0.02).")
flags.DEFINE_enum("gan_mode", None, ["vanilla", "lsgan", "wgangp", "hinge"],
                  "Adversarial loss (pix2pix: vanilla).")
flags.DEFINE_float("lambda_L1", None, "Weight of the L1 loss (pix2pix: 100).")
flags.DEFINE_bool("test_time_noise", None, "Run G in training mode at test time, as the "
                  "pix2pix paper does (dropout on, batch statistics) (False).")

# Optimisation.
flags.DEFINE_integer("n_epochs", None, "Epochs at the initial learning rate (100).")
flags.DEFINE_integer("n_epochs_decay", None, "Epochs of linear decay to zero (100).")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps in all (for smoke runs).")
flags.DEFINE_float("lr", None, "Initial Adam learning rate (0.0002).")
flags.DEFINE_float("beta1", None, "Adam beta1 (0.5).")
flags.DEFINE_float("beta2", None, "Adam beta2 (0.999).")
flags.DEFINE_enum("lr_policy", None, ["linear", "step", "cosine", "constant"],
                  "Learning-rate policy (linear).")
flags.DEFINE_integer("lr_decay_iters", None, "For --lr_policy=step: epochs between x0.1 (50).")

# Run.
flags.DEFINE_integer("save_every_steps", None, "Checkpoint every N steps (and at epoch ends) "
                     "(1000).")
flags.DEFINE_integer("keep_checkpoints", None, "Checkpoints kept (3).")
flags.DEFINE_integer("log_every_steps", None, "TensorBoard scalars every N steps (100).")
flags.DEFINE_integer("sample_every_steps", None, "Sample image grids every N steps (500).")
flags.DEFINE_string("val_split", None, "Split for validation (val if present, else test).")
flags.DEFINE_integer("val_batches", None, "Validation batches per evaluation (50).")
flags.DEFINE_integer("validation_freq", None, "Validate every N epochs (1).")
flags.DEFINE_list("eval_metrics", None, "Also score the validation split with these "
                  "tfi2i.metrics (psnr, ssim, l1, fid, kid, seg), logged to TensorBoard ([]).")
flags.DEFINE_integer("eval_every_epochs", None, "Run --eval_metrics every N epochs (1).")
flags.DEFINE_string("best_metric", None, "Keep the checkpoint with the best value of this "
                    "metric (e.g. fid, psnr) in RUN/best/ (none).")
flags.DEFINE_string("segmenter", None, "Segmenter for --eval_metrics=seg (a .keras file or "
                    "SavedModel; default: the facades segmenter in the cache).")
flags.DEFINE_enum("strategy", None, ["auto", "mirrored", "multiworker", "one_device",
                                     "default"],
                  "Distribution: auto = MirroredStrategy with several GPUs (auto).")
flags.DEFINE_bool("mixed_precision", None, "float16 compute on GPU, bfloat16 on CPU (False).")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA (False).")
flags.DEFINE_bool("deterministic", None, "Deterministic ops (slower; exact resume) (False).")

_OPTION_FLAGS = [
    "direction", "preprocess", "load_size", "crop_size", "batch_size", "input_nc", "output_nc",
    "cache_data", "skip_bad_images", "seed", "netG", "netD", "ngf", "ndf", "n_layers_D", "norm",
    "use_dropout", "init_type", "init_gain", "gan_mode", "lambda_L1", "test_time_noise",
    "n_epochs", "n_epochs_decay", "max_steps", "lr", "beta1", "beta2", "lr_policy",
    "lr_decay_iters", "save_every_steps", "keep_checkpoints", "log_every_steps",
    "sample_every_steps", "val_split", "val_batches", "validation_freq", "eval_metrics",
    "eval_every_epochs", "best_metric", "segmenter", "strategy",
    "mixed_precision", "jit_compile", "deterministic",
]


def _explicit_options():
    """The options the user set on the command line, as a dict."""
    options = {}
    for name in ("data_dir", "cache_dir", "run_dir", *[f for f in _OPTION_FLAGS]):
        if FLAGS[name].present:
            options[name] = FLAGS[name].value
    options.update(parse_hparams(FLAGS.hparams))
    return options




def main(argv):
    from tfi2i.training.trainer import train  # Imports TF: after flag parsing.
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments {argv[1:]}; options are --flags (see --helpfull).")
    if not FLAGS.dataset and not FLAGS.data_dir:
        raise UserError("Say what to train on: --dataset=NAME (e.g. --dataset=sample) or "
                        "--data_dir=FOLDER.")
    options = _explicit_options()
    config = resolve_config(FLAGS.method, FLAGS.dataset, options)
    train(config, explicit_keys=set(options), resume=FLAGS.resume)


def run():
    run_main(main)


if __name__ == "__main__":
    run()
