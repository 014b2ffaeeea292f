"""SQLite: the dialect, in :mod:`.dialect` (to be split by concern)."""

from __future__ import annotations

from .dialect import META as META
from .dialect import SQLiteDialect
from .dialect import SQLiteSandboxOps as SQLiteSandboxOps

__all__ = ["SQLiteDialect"]
