"""What the tfi2i command-line apps share: flags from option declarations, one-line errors.

Each command declares its options once (`tfi2i.options.Option`); the absl
flags, `--helpfull`, the defaults and the value checks derive from them:

    OPTIONS = (Option("input", str, None, "An image file or folder.", required=True), ...)

    def main(args, explicit):   # args: every option's value; explicit: those given
        ...

    def run():
        run_main(main, OPTIONS)

`parse_args(OPTIONS, argv)` does the same parsing and checking without running
anything (tests walk every option with it).
"""

import sys
import types

from absl import app, flags, logging

from tfi2i.errors import UserError
from tfi2i.options import check_values, defaults

FLAGS = flags.FLAGS

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string, list: flags.DEFINE_list}


def define_flags(options, flag_values=FLAGS, default_texts=None):
    """Defines one absl flag per option, typed as declared and defaulting to None.

    None means "not given", so that presets can fill the gap; the help text
    states the default (or, with `default_texts`, e.g. each method's).
    """
    for option in options:
        default = (default_texts or {}).get(option.name, f"default: {option.describe_default()}")
        help_text = f"{option.help} ({default})"
        if option.type is str and option.choices:
            flags.DEFINE_enum(option.name, None, list(option.choices), help_text,
                              flag_values=flag_values)
        else:
            _DEFINE[option.type](option.name, None, help_text, flag_values=flag_values)


def explicit_values(options, flag_values=FLAGS):
    """{name: value} of the options given on the command line, checked."""
    given = {o.name: flag_values[o.name].value for o in options if flag_values[o.name].present}
    return check_values(options, given)


def parse_args(options, argv, flag_values=None, check=None, positional=None):
    """Parses and checks a command line against declared options; runs nothing.

    Args:
        options: the command's `Option`s.
        argv: the arguments without the program name.
        flag_values: an absl FlagValues to define the flags in (default: a
            fresh one).
        check: the command's own check of the values, `check(args, explicit)`.
        positional: the name of a list option that takes the arguments that
            are not flags (`tfi2i-report RUN1 RUN2` = `--runs=RUN1,RUN2`);
            None: such arguments are an error.

    Returns:
        (args, explicit): a namespace with every option's value (defaults
        filled in) and the dict of the options given explicitly.

    Raises:
        UserError: a flag that does not parse, an invalid value, a missing
            required option, or a failed `check`.
    """
    if flag_values is None:
        flag_values = flags.FlagValues()
        define_flags(options, flag_values)
    try:
        rest = flag_values(["prog", *argv])
    except flags.Error as e:
        raise UserError(_one_line(e)) from None
    return _checked_args(options, rest, flag_values, check, positional)


def _checked_args(options, rest, flag_values, check, positional=None):
    if len(rest) > 1 and positional is None:
        raise UserError(f"Unexpected arguments {' '.join(rest[1:])}; options are --flags "
                        "(see --helpfull).")
    explicit = explicit_values(options, flag_values)
    if len(rest) > 1:
        if positional in explicit:
            raise UserError(f"Give the {positional} either as arguments or as --{positional}, "
                            "not both.")
        explicit.update(check_values(options, {positional: rest[1:]}))
    values = {**defaults(options), **explicit}
    for option in options:
        option.check(values[option.name])  # Required options are None here when missing.
    args = types.SimpleNamespace(**values)
    if check is not None:
        check(args, explicit)
    return args, explicit


def _one_line(error):
    return " ".join(str(error).split())


def run_main(main, options, check=None, default_texts=None, positional=None):
    """Runs a command: flags from `options`, then `main(args, explicit)`.

    A bad flag or a UserError prints one line `error: ...` on stderr and exits
    with status 2, without a traceback. `positional` names the list option that
    takes the arguments that are not flags (see `parse_args`).
    """
    define_flags(options, FLAGS, default_texts)

    def parse(argv):
        try:
            return FLAGS(argv)
        except flags.Error as e:
            _fail(_one_line(e))

    def guarded(argv):
        quiet_tensorflow_logging()
        try:
            args, explicit = _checked_args(options, argv, FLAGS, check, positional)
            return main(args, explicit)
        except UserError as e:
            _fail(e)

    app.run(guarded, flags_parser=parse)


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def quiet_tensorflow_logging():
    """Hides TensorFlow's Python INFO lines (e.g. the checkpoint saver's), as `tfi2i.cli.quiet`
    hides its C++ ones: unless the user set --verbosity or TF_CPP_MIN_LOG_LEVEL.

    tfi2i's own absl INFO lines (the trainer's "Trained ... to step N") stay.
    """
    import logging as python_logging

    from tfi2i.cli import quiet

    if not FLAGS["verbosity"].present and not quiet.USER_SET_LOG_LEVEL:
        python_logging.getLogger("tensorflow").setLevel(python_logging.WARNING)
        # Some TF modules (the checkpoint saver) log through absl itself, as tfi2i does.
        absl_logger = python_logging.getLogger("absl")
        if not any(isinstance(f, quiet.DropLibraryInfo) for f in absl_logger.filters):
            absl_logger.addFilter(quiet.DropLibraryInfo())


def quiet_absl_logging():
    """Shows absl warnings and errors only, unless the user set --verbosity.

    TensorFlow's INFO lines (tracing, saving, converting) would bury a command's report.
    """
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
