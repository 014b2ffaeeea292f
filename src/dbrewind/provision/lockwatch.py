"""Waits on a sandbox's locks: found within seconds, ended, and named.

A rollback sandbox holds the locks of everything the test wrote until the
test ends. A connection outside the sandbox (the application's own engine, a
thread's, a subprocess's) that touches the same rows waits for the end of
the test — while the test waits for it: the run hangs. :class:`LockWatch`
looks for such waits once a test has run for :attr:`LockWatch.limit`
seconds, from one background thread per database that sleeps until then (a
test that ends sooner costs nothing but two assignments); a statement found
waiting that long on the sandbox's session is cancelled on the server, so
the test goes on and fails, and what was found is kept for the failure's
message.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from .._url import DatabaseURL
from ..dialects import Dialect, LockWait
from ..dialects.engines import make_engine

__all__ = ["DEFAULT_LIMIT", "PLUGIN_FIX", "LockWatch", "Watched"]

logger = logging.getLogger("dbrewind")

DEFAULT_LIMIT = 3.0
"""Seconds a statement may wait on a sandbox's lock before it is cancelled."""
POLL = 0.5
"""Seconds between two looks while a test runs past the limit."""
PLUGIN_FIX = (
    "route that connection's engine into the sandbox (ini dbrewind_engines = "
    "package.module:engine, or use the db_engine / async_db_engine fixtures), or use "
    "transactional_db, whose commits are real."
)
"""What the failure tells the user to do, unless the entry point says otherwise."""


@dataclass
class Watched:
    """One sandbox session watched during one test."""

    session: int
    what: str
    fix: str = PLUGIN_FIX
    started: float = field(default_factory=time.monotonic)
    found: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


class LockWatch:
    """Watches one database for statements that wait on the current sandbox's locks.

    :meth:`watch` before the test, :meth:`unwatch` after it (what was found, as
    messages); :meth:`close` at the end of the run.
    """

    def __init__(self, url: DatabaseURL, dialect: Dialect, limit: float = DEFAULT_LIMIT) -> None:
        self.url = url
        self.dialect = dialect
        self.limit = limit
        self._current: Watched | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._closed = False
        self._broken = False

    def watch(self, session: int | None, what: str, fix: str = PLUGIN_FIX) -> Watched | None:
        """Start watching ``session`` (the sandbox's session id on the server); ``what``
        names the sandbox in the failure's message, ``fix`` ends it."""
        if session is None or self._closed or self._broken:
            return None
        watched = Watched(session, what, fix)
        self._current = watched
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="dbrewind-lock-watch", daemon=True
            )
            self._thread.start()
        # no wake-up per test: the thread looks at the current watch at least every
        # ``limit`` seconds, which is as soon as a wait can be long enough to matter
        return watched

    def unwatch(self, watched: Watched | None) -> list[str]:
        """Stop watching; the waits found and ended while it was watched."""
        if watched is None:
            return []
        if self._current is watched:
            self._current = None
        return watched.found

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._closed = True
        self._current = None
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
        self._drop_engine()

    # --------------------------------------------------------- the thread
    def _run(self) -> None:
        while not self._closed:
            watched = self._current
            if watched is None:
                self._wake.wait(self.limit)
                self._wake.clear()
                continue
            due = watched.started + self.limit - time.monotonic()
            if due > 0:
                self._wake.wait(due)
                self._wake.clear()
                continue
            try:
                self._look(watched)
            except Exception as exc:  # a watch must never break a run
                logger.debug("lock watch on %s failed: %s", self.url.display(), exc)
                self._drop_engine()
            self._wake.wait(POLL)
            self._wake.clear()

    def _look(self, watched: Watched) -> None:
        if self._engine is None:
            self._engine = make_engine(self.url, isolation_level="AUTOCOMMIT", pool_size=1)
        with self._engine.connect() as conn:
            for wait in self.dialect.lock_waits(conn, watched.session):
                if wait.seconds < self.limit or wait.session in watched.seen:
                    continue
                if self._current is not watched:
                    return  # the test ended meanwhile: its locks are gone
                # kept before the cancel: the cancelled statement's error may end the
                # test, and its unwatch, before the cancel returns here
                message = self._message(watched, wait)
                watched.seen.add(wait.session)
                watched.found.append(message)
                try:
                    self.dialect.cancel_statement(conn, wait.session)
                except BaseException:
                    watched.found.remove(message)  # not cancelled: look again next time
                    watched.seen.discard(wait.session)
                    raise

    def _drop_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _message(self, watched: Watched, wait: LockWait) -> str:
        return (
            f"a connection outside the test's sandbox (session {wait.session} on "
            f"{self.url.display()}) waited {wait.seconds:.1f} s for a lock the sandbox "
            f"(session {watched.session}, {watched.what}) holds until the test ends, "
            f"running: {wait.query!r}. It would have waited for the end of the test while "
            "the test waited for it; dbrewind cancelled that statement. Writes the sandbox "
            f"has not committed block every other connection: {watched.fix}"
        )
