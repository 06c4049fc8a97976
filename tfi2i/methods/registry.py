"""Maps `--method` names to method classes."""

from tfi2i.errors import UserError

METHODS = {}


def register(name):
    """Class decorator: makes a method available as `--method=name`."""
    def decorator(cls):
        METHODS[name] = cls
        cls.method_name = name
        return cls
    return decorator


def get_method(name):
    """The method class registered as `name`, or a UserError listing the known ones."""
    if name not in METHODS:
        raise UserError(f"Unknown method {name!r}; available: {', '.join(sorted(METHODS))}.")
    return METHODS[name]
