"""``python -m blinameta``: the command line."""

from __future__ import annotations

import sys

from blinameta.cli import main

if __name__ == "__main__":  # pragma: no branch
    sys.exit(main())
