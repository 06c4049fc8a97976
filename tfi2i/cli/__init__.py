"""The command-line apps: tfi2i-train, tfi2i-translate, tfi2i-export, tfi2i-eval.

Every command imports this package first: it quiets TensorFlow's start-up before
anything imports TensorFlow (see `tfi2i.cli.quiet`), unless the user set
TF_CPP_MIN_LOG_LEVEL or --verbosity.
"""

from tfi2i.cli.quiet import quiet_tensorflow_startup

quiet_tensorflow_startup()
