"""The names of the ways dbrewind isolates a test, shared by every place that names them.

The pytest plugin's terminal summary, ``dbrewind bench --json`` and the README
use these values, and a test checks that they agree.
"""

from __future__ import annotations

import enum

__all__ = ["Strategy"]


class Strategy(str, enum.Enum):
    """How a test was isolated; the value is the name users read (``str(s)`` gives it too)."""

    ROLLBACK = "rollback"
    """The test ran inside one outer transaction that is rolled back at its end
    (``db``, ``db_session``, ``async_db_session``, the library's sandboxes)."""

    CLEAN = "clean"
    """The test committed for real, and the tables it wrote were put back to the
    baseline after it (``transactional_db``, ``transactional=True``, a
    ``clean_db_urls`` suite's databases, :class:`~dbrewind.Rewinder`)."""

    SAFETY_NET = "safety net"
    """The test asked for no database: only the safety net's check after it, which
    follows every test, covered it (and rewound whatever it committed)."""

    def __str__(self) -> str:
        return self.value
