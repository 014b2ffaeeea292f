"""``python -m dbrewind.cli``: the ``dbrewind`` command without its console script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
