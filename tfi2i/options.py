"""Options, each declared once: name, type, default, allowed values, help.

An `Option` is the single declaration from which everything about one setting
derives: the command-line flag (its type and `--helpfull` text), the default
of a run config, the check of a value (type, choices, range) before any work
starts, and whether a resumed run may change it. The training platform's
options are in `tfi2i.config`; a method declares its own in its class
(`TranslationModel.options`), so a new method never edits the CLI.

Pure Python: importing this module does not load TensorFlow.
"""

import dataclasses
import os

from tfi2i.errors import UserError

_TYPES = (bool, int, float, str, list)


@dataclasses.dataclass(frozen=True)
class Option:
    """The declaration of one option.

    Args:
        name: the option's name, also its flag (`--name`) and config key.
        type: bool, int, float, str or list (a list of strings; on the command
            line, comma-separated).
        default: the value when nobody sets it. None means "not set", and then
            None is an allowed value.
        help: one line for `--helpfull` and the docs; the default is added.
        choices: the allowed values (for a list: of each item), or None.
        min, max: the allowed range of a number (inclusive), or None.
        resumable: whether a resumed run may change it. Options that define
            the model or the data must not change, and are False.
        must_exist: the value is a path that must exist.
        required: a command cannot run without it (its default is None).
    """
    name: str
    type: type
    default: object
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    resumable: bool = False
    must_exist: bool = False
    required: bool = False

    def __post_init__(self):
        if self.type not in _TYPES:
            raise TypeError(f"Option {self.name}: type must be one of {_TYPES}.")
        if self.default is not None:
            self.check(self.default)  # A declaration whose default is invalid is a bug.

    def with_default(self, default):
        """The same option with another default (a method's own choice)."""
        return dataclasses.replace(self, default=default)

    def check(self, value):
        """Returns `value` converted to this option's type, or raises UserError.

        Accepts what flags, JSON presets and Python callers give: e.g. 2 for a
        float, 3.0 for an int, "a,b" for a list.
        """
        if value is None:
            if self.required:
                raise UserError(f"--{self.name} is required: {self.help}")
            if self.default is None:
                return None
            self._fail(value, "it must be set")
        value = self._convert(value)
        if self.choices is not None:
            items = value if self.type is list else [value]
            bad = [v for v in items if v not in self.choices]
            if bad:
                self._fail(value, f"{bad[0]!r} is not one of {', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            self._fail(value, f"it must be at least {self.min}")
        if self.max is not None and value > self.max:
            self._fail(value, f"it must be at most {self.max}")
        if self.must_exist and not os.path.exists(os.path.expanduser(value)):
            self._fail(value, "no such file or folder")
        return value

    def _convert(self, value):
        kind = self.type
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            self._fail(value, "it must be true or false")
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                self._fail(value, "it must be a whole number")
            try:
                number = float(value)
            except ValueError:
                self._fail(value, "it must be a whole number")
            if not number.is_integer():
                self._fail(value, "it must be a whole number")
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                self._fail(value, "it must be a number")
            try:
                return float(value)
            except (TypeError, ValueError):
                self._fail(value, "it must be a number")
        if kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
            self._fail(value, "it must be a list of names")
        if not isinstance(value, str):
            self._fail(value, "it must be a string")
        return value

    def _fail(self, value, why):
        shown = ",".join(value) if isinstance(value, list) else value
        raise UserError(f"--{self.name}={shown} is invalid: {why}. {self.help}")

    def describe_default(self):
        """The default as the command line would spell it."""
        if isinstance(self.default, list):
            return ",".join(self.default) or "none"
        return "none" if self.default is None else str(self.default)


def check_values(options, values):
    """Checks and converts `values` against the declared `options`.

    Args:
        options: an iterable of `Option`.
        values: {name: value}; names must be declared.

    Returns:
        A new dict of converted values.

    Raises:
        UserError: an undeclared name or an invalid value.
    """
    declared = {o.name: o for o in options}
    checked = {}
    for name, value in values.items():
        if name not in declared:
            raise UserError(f"Unknown option {name!r}. Known: {', '.join(sorted(declared))}.")
        checked[name] = declared[name].check(value)
    return checked


def defaults(options):
    """{name: default} of the declared options."""
    return {o.name: o.default for o in options}


def merge_declarations(groups):
    """One declaration per name from several groups of options.

    The same option may appear in several groups (a method reusing a shared
    declaration, perhaps with its own default); it must agree in everything
    but the default.

    Args:
        groups: an iterable of (owner, options) pairs, e.g. ("cyclegan", ...).

    Returns:
        {name: (option, {owner: default})}, in first-seen order.
    """
    merged = {}
    for owner, options in groups:
        for option in options:
            if option.name not in merged:
                merged[option.name] = (option, {})
            first, owner_defaults = merged[option.name]
            if dataclasses.replace(option, default=None) != dataclasses.replace(first,
                                                                                  default=None):
                raise TypeError(f"Option {option.name!r} of {owner} is declared differently "
                                "elsewhere; reuse one declaration.")
            owner_defaults[owner] = option.default
    return merged
