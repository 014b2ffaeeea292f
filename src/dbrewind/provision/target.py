"""What an entry point asks the lifecycle for (:class:`Target`), and the state it records.

The keys below are those of the state recorded with an installation
(:meth:`dbrewind.dialects.Dialect.write_state`): which tracking version and
schema it covers, which template it came from and with which fingerprint,
which process holds it and whether it was released cleanly.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from .._setups import SetupCallable
from .._url import DatabaseURL
from ..dialects import get_dialect

if TYPE_CHECKING:
    from ..rewinder import ResetSequences

__all__ = [
    "BUILT",
    "CLEAN",
    "COMPLETE",
    "FINGERPRINT",
    "HOLDER",
    "ORIGIN",
    "SCHEMA",
    "SETUP_FILES",
    "VERSION",
    "Target",
    "holder_name",
    "identity",
]

# Keys of the state recorded with an installation (Dialect.write_state).
VERSION = "version"
SCHEMA = "schema"
FINGERPRINT = "fingerprint"
ORIGIN = "origin"
HOLDER = "holder"
CLEAN = "clean"
COMPLETE = "complete"
BUILT = "built"
SETUP_FILES = "setup_files"


@dataclass(frozen=True)
class Target:
    """What an entry point needs: which database, built how."""

    url: DatabaseURL
    """The test database as configured (the plugin's derived ``<name>_test`` included)."""
    setups: tuple[SetupCallable, ...] | None = None
    """The schema setup; ``None``: the database is adopted as the user's setup left it."""
    clone: bool = False
    """Build a template from ``setups`` and work on a clone of it (else: in place)."""
    worker: str | None = None
    """The pytest-xdist worker id (``gw0``): clones get it in their name."""
    rebuild: bool = False
    """Rebuild the template although its fingerprint is unchanged."""
    fingerprint_paths: tuple[Path, ...] = ()
    fingerprint_root: Path | None = None
    schemas: tuple[str, ...] = ()
    """PostgreSQL schemas to track (default ``public``)."""
    allow: bool = False
    replace: bool = False
    """Replace a database found where a clone goes that dbrewind did not make and that
    holds tables (else that is refused, naming it)."""
    """Allow a database whose name does not say test (see :class:`~dbrewind.Rewinder`)."""
    reset_sequences: ResetSequences | bool = "auto"
    """When rewinds put counters back: ``auto``, ``always``, ``never`` (see
    :class:`~dbrewind.Rewinder`)."""
    lock_timeout: float | None = 10.0
    """Seconds a rewind waits for a lock another session holds (None: no limit)."""
    lock_wait: float | None = 3.0
    """Seconds another connection's statement may wait on a lock a sandbox holds before
    it is cancelled and the test fails (None: never; see :mod:`.lockwatch`)."""
    engine: Engine | None = field(default=None, compare=False)
    """An engine on ``url`` to share: required for an in-memory SQLite database."""
    origin: str = ""
    """The entry point asking (``pytest``, ``unittest``, ``peewee``, ``clean_db_urls``...)."""

    @property
    def mode(self) -> str:
        if self.setups is None:
            return "adopt"
        return "clone" if self.clone and not self.url.is_memory else "in place"


def identity(url: DatabaseURL) -> tuple[str, str, int | None, str]:
    """The full identity of a database: backend, host, port, name (SQLite: the resolved file)."""
    return get_dialect(url.backend).identity(url)


def holder_name() -> str:
    """This process, as the holder of a lease: ``<pid>@<host>``."""
    return f"{os.getpid()}@{socket.gethostname()}"
