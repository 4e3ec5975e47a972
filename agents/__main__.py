"""``python -m agents``: the ``drum-env`` command (:func:`agents.cli.main`)."""

import sys

from agents.cli import main

if __name__ == "__main__":
    sys.exit(main())
