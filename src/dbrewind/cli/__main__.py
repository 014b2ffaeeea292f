"""``python -m dbrewind.cli``: the ``dbrewind`` command without its console script."""

from __future__ import annotations

import sys

from . import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
