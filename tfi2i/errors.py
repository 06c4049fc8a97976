"""Errors a user can cause and fix.

Anything raised as `UserError` is printed by the command-line tools as one
message, without a traceback: the message must name the thing that is wrong
(a path, a flag, a dataset) and say what to do about it.
"""


class UserError(ValueError):
    """A problem with the user's input, named and with its fix in the message."""
