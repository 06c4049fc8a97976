"""What the tfi2i command-line apps share: turning UserError into one clear line."""

import sys

from absl import app

from tfi2i.errors import UserError


def run_main(main):
    """absl.app.run(main), printing a UserError as `error: ...` and exiting 2."""
    def guarded(argv):
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    app.run(guarded)
