"""Quiet start-up for the command-line apps: no TensorFlow C++ noise on a normal run.

A newcomer's first `tfi2i-train` would otherwise open with a screen of lines that
say nothing is wrong: oneDNN and cpu_feature_guard notices, "Could not find cuda
drivers", `failed call to cuInit` on a machine without a GPU, grappler's
`remapper failed` and the checkpoint saver's INFO lines. `quiet_tensorflow_startup`
runs when the `tfi2i.cli` package is imported, before any command imports
TensorFlow, and unless the user asked otherwise:

- sets TF_CPP_MIN_LOG_LEVEL=3 (C++ errors too: TensorFlow raises a real error as
  a Python exception with its message; the C++ log lines of that level are the
  cuInit/remapper noise), and
- while TensorFlow is imported, filters the INFO lines its libraries print while
  loading, before any log level applies (they ignore TF_CPP_MIN_LOG_LEVEL);
  every other line is passed through at once.

A TF_CPP_MIN_LOG_LEVEL the user set, or --verbosity (-v) on the command line,
leaves everything as TensorFlow prints it. `tfi2i.cli.common.run_main` does the
Python side (TensorFlow's INFO logging) after the flags are parsed.
"""

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import threading

# Whether the user set the C++ log level (before this module sets it).
USER_SET_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ

# What TensorFlow's libraries print while loading, before any log level applies.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|I\d{4} [\d:.]+ +\d+ \S+:\d+\] .*|To enable the following "
    r"instructions: .*in other operations, rebuild TensorFlow with the appropriate compiler "
    r"flags\.)$")


def verbosity_requested(argv):
    """Whether the command line sets absl's --verbosity (or -v)."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg.split("=", 1)[0].lstrip("-") in ("verbosity", "v") and arg.startswith("-"):
            return True
    return False


def wants_quiet(argv=None, environ=None):
    """Whether to quiet TensorFlow: neither TF_CPP_MIN_LOG_LEVEL set nor --verbosity given."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    return "TF_CPP_MIN_LOG_LEVEL" not in environ and not verbosity_requested(argv)


def quiet_tensorflow_startup(argv=None):
    """Sets TensorFlow's C++ log level and filters its load-time lines (see the module doc).

    Does nothing if the user set TF_CPP_MIN_LOG_LEVEL or --verbosity, or if
    TensorFlow is already imported (too late for either).

    Returns:
        Whether it quieted anything.
    """
    if "tensorflow" in sys.modules or not wants_quiet(argv):
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if not any(isinstance(f, _FilterTensorflowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FilterTensorflowImport())
    return True


class _FilterTensorflowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual, and wraps its first import in `_filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # Once: the first import loads the libraries.
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteringLoader(spec.loader)
        return spec


class _FilteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _filtered_stderr():
            self.loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self.loader, name)


class _filtered_stderr:
    """Sends file descriptor 2 through a pipe; a thread passes on every line but `_NOISE`.

    Lines are passed on as they come, so a message printed just before a crash
    (e.g. a CPU without the instructions TensorFlow needs) still reaches the user.
    """

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.thread = threading.Thread(target=self._forward, args=(read_end,), daemon=True)
        self.thread.start()
        return self

    def _forward(self, read_end):
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _NOISE.match(line.decode("utf-8", "replace").rstrip("\r\n")):
                    os.write(self.saved, line)

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # Closes the pipe's last write end held here: the thread ends.
        self.thread.join(timeout=5)
        if not self.thread.is_alive():  # Else something kept a copy of the pipe: leave it be.
            os.close(self.saved)
        return False


# Libraries whose INFO lines through absl are dropped by `DropLibraryInfo`.
_LIBRARIES = ("tensorflow", "keras", "tensorflow_datasets")


class DropLibraryInfo(logging.Filter):
    """A logging filter: drops INFO (and DEBUG) records logged from TensorFlow's or Keras's
    own files through absl, keeping warnings and errors, and every record of tfi2i's."""

    def filter(self, record):
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.pathname.startswith(folder) for folder in _library_folders())


def _library_folders():
    folders = []
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        if getattr(module, "__file__", None):
            folders.append(os.path.dirname(module.__file__) + os.sep)
    return folders
