"""The rewind: one ``CALL`` of ``dbrewind_rewind``, and the counters put back behind it.

:class:`_Rewinding` runs the procedure, reads its answer, marks and re-tracks
tables; :class:`_CounterReset` runs the ``AUTO_INCREMENT`` DDL the rewind leaves
to a second connection, behind ``LOCK TABLES .. WRITE``.
"""

from __future__ import annotations

import json
import math
import queue
import threading
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ...exceptions import DbrewindError, _chain
from ..base import RewindResult
from ._sql import (
    MARKS_TABLE,
    TABLES_TABLE,
    _errno,
    _first_line,
    _ident,
    _is_mariadb,
    _lit,
    _run_batches,
    _sql,
)
from .catalog import _Catalog
from .tracking import (
    _CALL_SQL,
    _CLEAR_MARKS_SQL,
    _QUICK_SQL,
    _RESET_SQL,
    _keys_blob,
    _trigger_names,
    _trigger_sql,
)

__all__ = ["_Rewinding"]

_BODY_ERROR = 1064  # ER_PARSE_ERROR, also how a stored trigger's failed parse is reported
_NO_PRIVILEGE = 1227  # ER_SPECIFIC_ACCESS_DENIED_ERROR: FLUSH needs RELOAD


def _half_read_triggers(error: BaseException) -> str | None:
    """The server's words, when ``error`` or what caused it is a cached table's failed
    trigger parse; else None."""
    for current in _chain(error):
        args: tuple[Any, ...] = getattr(getattr(current, "orig", None) or current, "args", ())
        if len(args) >= 2 and args[0] == _BODY_ERROR and "has an error in its body" in str(args[1]):
            return str(args[1])
    return None


class _Rewinding(_Catalog):
    """The per-test rewind, marks, and re-tracking of recreated tables."""

    #: Run the DDL that puts ``AUTO_INCREMENT`` counters back after :meth:`rewind`
    #: returns, on a second connection that holds ``LOCK TABLES .. WRITE`` on those
    #: tables until it is done (see :class:`_CounterReset`). False runs it inside
    #: the rewind's ``CALL``.
    background_counter_reset = True

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        super().__init__(schemas=schemas)
        self._counters = _CounterReset()
        self._ddl_seen: int | None = None
        """The server's DDL count (see :func:`quick_state`) read just before the last check
        that found the table list as the baseline has it; None: none yet."""
        self._quick_ok = True
        """False once the quick read failed (a server without the status table): every
        rewind then does the full check."""

    def retrack(self, conn: Connection, keys: Sequence[str]) -> RewindResult:
        """Recreate the tracking triggers of ``keys``, then rewind them to their baseline."""
        if not keys:
            return RewindResult()
        self._retrigger(conn, keys)
        self.mark_dirty(conn, list(keys))
        result = self.rewind(conn)
        result.recreated_tables = tuple(sorted(keys))
        return result

    def _retrigger(self, conn: Connection, keys: Sequence[str] | None = None) -> None:
        """Drop and create again the tracking triggers of the tables ``keys`` (None: all)."""
        schema = self.inspect(conn)
        batches: list[list[tuple[str, tuple[Any, ...] | None]]] = []
        for key in schema.tables if keys is None else keys:
            table = schema.tables.get(key)
            if table is None:
                continue
            statements = [f"DROP TRIGGER IF EXISTS {_ident(n)}" for n in _trigger_names(key)]
            statements += _trigger_sql(table)
            batches.append([(statement, None) for statement in statements])
        _run_batches(conn, batches)

    def repair(self, engine: Engine, error: BaseException) -> str | None:
        """Clear table definitions whose triggers the server cached half-read.

        MariaDB (10.11 measured) has a fault: a connection killed while it
        opens a table and parses that table's triggers can leave the half-parsed
        triggers in the table cache, and every later statement handed that
        cached table fails with error 1064, "Unknown trigger has an error in
        its body: 'Query was empty'" (or a syntax error quoting part of a body
        that is fine). Killing connections between tests makes it likely; a
        workload under load hit it about once in 70 kills. Reading the
        triggers again clears it: ``FLUSH TABLES`` of the database's tables,
        or, for an account without the RELOAD privilege, creating dbrewind's
        own triggers again (DDL on a table drops its cached definitions).
        """
        said = _half_read_triggers(error)
        if said is None:
            return None
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            tables = [
                str(row[0])
                for row in _sql(
                    conn,
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
                )
            ]
            before = int(_sql(conn, "SELECT @@SESSION.lock_wait_timeout").scalar_one())
            try:
                if self._lock_seconds():  # FLUSH waits for the tables' users, as a rewind does
                    _sql(conn, f"SET SESSION lock_wait_timeout = {self._lock_seconds()}")
                if tables:  # (an empty list would flush the whole server)
                    _sql(conn, "FLUSH TABLES " + ", ".join(_ident(t) for t in tables))
                how = "flushed the database's tables from the server's table cache"
            except DBAPIError as exc:
                if _errno(exc) != _NO_PRIVILEGE:
                    raise self._translate(exc, conn) from exc
                self._retrigger(conn)
                how = "created its triggers again (this account may not FLUSH TABLES)"
            finally:
                _sql(conn, f"SET SESSION lock_wait_timeout = {before}")
        return (
            f"the server handed out a table whose triggers a killed connection had left "
            f'half-read ("{said}", a MariaDB fault); dbrewind {how} and carried on'
        )

    def restore_counters(self, conn: Connection) -> None:
        """Rewind every tracked table whose ``AUTO_INCREMENT`` moved from its baseline.

        Rolled-back inserts (the rollback sandbox's) use up counter values and
        mark nothing. One catalog read finds them; only those pay for the DDL.
        """
        self._stats_expiry(conn)
        moved = [
            row[0]
            for row in _sql(
                conn,
                f"SELECT t.`tbl` FROM {_ident(TABLES_TABLE)} t "
                "JOIN information_schema.TABLES i ON i.TABLE_SCHEMA = DATABASE() "
                "AND i.TABLE_NAME = t.`tbl` "
                "WHERE t.`auto_increment` IS NOT NULL AND i.AUTO_INCREMENT IS NOT NULL "
                "AND i.AUTO_INCREMENT <> t.`auto_increment`",
            )
        ]
        if moved:
            self.mark_dirty(conn, moved)
            self.rewind(conn)
            self.settle()

    def mark_dirty(self, conn: Connection, keys: Sequence[str]) -> None:
        """Append a mark per key to ``dbrewind_marks``."""
        if not keys:
            return
        values = ", ".join(f"({_lit(k)})" for k in keys)
        try:
            _sql(conn, f"INSERT INTO {_ident(MARKS_TABLE)} (`tbl`) VALUES {values}")
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def settle(self) -> None:
        """Wait until the counters a previous rewind left to the background are back."""
        self._counters.wait()

    def close(self) -> None:
        """Let a background counter reset finish; close its connection."""
        self._counters.close()

    def quick_state(self, conn: Connection) -> tuple[bool, int | None] | None:
        """One plain ``SELECT``: (nothing is marked, the server's DDL count), or None when
        the server cannot say (no status table to read).

        The count is of every ``ALTER``/``CREATE``/``DROP``/``RENAME TABLE``,
        ``TRUNCATE``, index, trigger and ``DROP DATABASE`` statement the server has
        run, in any session and database (``Com_*`` in
        ``information_schema.GLOBAL_STATUS``; MySQL 8: ``performance_schema``).
        MariaDB has no DDL triggers, and every catalog read that would show a
        change costs more (the table list's scan, InnoDB's dictionary); this read is
        one round trip whatever the schema's size. Another database's DDL moves
        the count too: then the full check runs, as it would without this.
        """
        if not self._quick_ok:
            return None
        sql = _QUICK_SQL[_is_mariadb(conn)]
        raw = conn.connection.dbapi_connection
        try:
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                assert raw is not None
                cursor = raw.cursor()
                try:
                    cursor.execute(sql)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            else:
                row = _sql(conn, sql).one()
        except (DBAPIError, conn.dialect.loaded_dbapi.Error) as exc:
            error = exc.orig if isinstance(exc, DBAPIError) else exc
            if conn.dialect.is_disconnect(error, raw, None):  # type: ignore[arg-type]
                raise  # Rewinder.call reconnects
            if MARKS_TABLE not in str(error):  # no status table here: full checks from now on
                self._quick_ok = False
            return None  # (no marks table: the CALL says it is not prepared)
        assert row is not None
        mark, count = row[0], row[1]
        return mark is None, None if count is None else int(count)

    def rewind(
        self,
        conn: Connection,
        *,
        truncate: frozenset[str] = frozenset(),
        reset_sequences: bool = True,
    ) -> RewindResult:
        """One cheap read (:meth:`quick_state`), then one ``CALL dbrewind_rewind(..)`` when
        something is marked or DDL ran; a second ``CALL`` only when tables were created or
        dropped.

        Nothing marked and no DDL statement on the server since the last full check:
        nothing to do, after one round trip. Marked tables and no DDL: the ``CALL``
        skips its check of the table list (the table list's scan and the
        ``TRUNCATE`` probe). With :attr:`background_counter_reset` on dbrewind's own
        (``AUTOCOMMIT``) connection, the DDL that puts ``AUTO_INCREMENT`` counters
        back runs after this returns, behind a table lock: see :class:`_CounterReset`.
        """
        self._counters.wait()
        state = self.quick_state(conn)
        count = None if state is None else state[1]
        unchanged = count is not None and count == self._ddl_seen
        if state is not None and state[0] and unchanged:
            return RewindResult()
        blob = _keys_blob(sorted(truncate))
        row = self._call(conn, blob, b"", reset_sequences, check=not unchanged)
        if row[0] != "schema":
            self._ddl_seen = count
            return self._finish(conn, row)
        self._ddl_seen = None
        created, dropped = self._schema_changes(conn)
        row = self._call(conn, blob, _keys_blob(dropped), reset_sequences, check=False)
        result = self._finish(conn, row)
        result.created_tables = tuple(created)
        result.dropped_tables = tuple(dropped)
        return result

    def _lock_seconds(self) -> int:
        """``lock_timeout`` as the whole seconds MySQL takes; 0 leaves the server's."""
        if self.lock_timeout is None:
            return 0
        return max(1, math.ceil(self.lock_timeout))

    def _finish(self, conn: Connection, row: Sequence[Any]) -> RewindResult:
        result = self._result(str(row[1] or "[]"))
        if row[0] == "deferred":
            try:
                self._counters.start(
                    conn.engine, str(row[3]), str(row[2]), int(row[4]), self._lock_seconds()
                )
            except conn.dialect.loaded_dbapi.Error as exc:
                raise self._driver_error(conn, "LOCK TABLES", None, exc) from exc
        return result

    def _driver_error(
        self, conn: Connection, statement: str, params: Any, exc: Exception
    ) -> BaseException:
        """A dbrewind error for a bare driver error (raised on the driver's own cursor)."""
        wrapped = DBAPIError.instance(statement, params, exc, conn.dialect.loaded_dbapi.Error)
        if not isinstance(wrapped, DBAPIError):  # pragma: no cover - not a driver error
            return exc
        return self._translate(wrapped, conn)

    def _call(
        self, conn: Connection, truncate: bytes, skip: bytes, reset: bool, *, check: bool
    ) -> Sequence[Any]:
        """Run the procedure; a clean database answers with no result set at all."""
        autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        defer = autocommit and self.background_counter_reset
        params = (truncate, skip, int(reset), int(check), int(defer), self._lock_seconds())
        if not autocommit:
            try:
                result = _sql(conn, _CALL_SQL, params)
                row = result.one() if result.returns_rows else None
            except DBAPIError as exc:
                raise self._translate(exc, conn) from exc
        else:
            # Straight on the driver's cursor: this runs after every test, and the
            # statement layer would add a third to the cost of the round trip.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(_CALL_SQL, params)
                    row = cursor.fetchone() if cursor.description else None
                    while cursor.nextset():
                        pass
                finally:
                    cursor.close()
            except conn.dialect.loaded_dbapi.Error as exc:
                if conn.dialect.is_disconnect(exc, raw, None):
                    conn.invalidate(exc)
                raise self._driver_error(conn, _CALL_SQL, params, exc) from exc
        if row is None:
            return ("ok", "[]", None, None, None)
        return tuple(row)

    @staticmethod
    def _result(payload: str) -> RewindResult:
        entries: list[list[Any]] = json.loads(payload)
        deleted: dict[str, int] = {}
        truncated: set[str] = set()
        for key, count in entries:
            deleted[key] = int(count)
            if int(count) < 0:
                truncated.add(key)
        return RewindResult(
            tables=tuple(sorted(deleted)), deleted=deleted, truncated=frozenset(truncated)
        )

    def _schema_changes(self, conn: Connection) -> tuple[list[str], list[str]]:
        now = {
            row[0]
            for row in conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
                    "AND TABLE_NAME NOT LIKE 'dbrewind\\_%'"
                )
            )
        }
        baseline = set(self.tracked_tables(conn))
        return sorted(now - baseline), sorted(baseline - now)


class _CounterReset:
    """Puts ``AUTO_INCREMENT`` counters back on a second connection, after the rewind returned.

    InnoDB lowers a counter only by DDL (``ALTER TABLE .. AUTO_INCREMENT``,
    ``TRUNCATE``), 1-2.5 ms a table on MariaDB, several times the rest of a
    rewind. A table with baseline rows needs an ``ALTER``; the rewind deletes
    and restores its rows, commits, and leaves the ``ALTER`` to this:
    :meth:`start` takes ``LOCK TABLES .. WRITE`` on those tables (one round
    trip, before the rewind returns), and a worker thread runs
    ``dbrewind_reset_counters`` under that lock, unlocks, then deletes the marks
    the rewind covered. Until then no other session can read or write those
    tables, so nothing ever sees a counter that is not back yet; a test waits
    only when it touches such a table before the ``ALTER`` is done. (Only
    ``ALTER``: a ``TRUNCATE`` gives the table a new definition, and a
    transaction whose snapshot is older would fail on it with error 1412; the
    ``TRUNCATE`` of an empty table runs inside the rewind's ``CALL``.)
    The marks stay until the DDL succeeded: after a failure or a crash the
    tables are still marked, and the next rewind does them again.
    """

    def __init__(self) -> None:
        self._raw: Any = None
        self._jobs: queue.SimpleQueue[tuple[Any, str, str, int] | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._error: tuple[str, BaseException] | None = None
        self._lock_seconds = 0

    def start(self, engine: Engine, locks: str, ddl: str, upto: int, lock_seconds: int) -> None:
        """Lock ``locks`` now; put their counters back (``ddl`` tokens) in the background.

        ``lock_seconds``: how long to wait for the locks (0: the server's default).
        The previous job is done: :meth:`MySQLDialect.rewind` waited for it first.
        """
        assert self._idle.is_set(), "a counter reset is still running"
        reused = self._raw is not None
        if self._raw is None:
            raw: Any = engine.raw_connection()
            raw.detach()  # its session settings must not go back to the pool
            self._raw = raw
            raw.dbapi_connection.autocommit(True)
            self._lock_seconds = 0
        cursor = self._raw.cursor()
        try:
            if lock_seconds != self._lock_seconds:
                cursor.execute(f"SET SESSION lock_wait_timeout = {int(lock_seconds) or 'DEFAULT'}")
                self._lock_seconds = lock_seconds
            cursor.execute(f"LOCK TABLES {locks}")  # no parameters: no %-formatting
        except BaseException as exc:
            self._discard()
            if reused and engine.dialect.is_disconnect(exc, None, None):  # type: ignore[arg-type]
                # the server closed it while it sat idle (a restart, a KILL): once more
                self.start(engine, locks, ddl, upto, lock_seconds)
                return
            raise
        finally:
            cursor.close()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="dbrewind-counter-reset", daemon=True
            )
            self._thread.start()
        self._idle.clear()
        self._jobs.put((self._raw, locks.replace(" WRITE", ""), ddl, upto))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            raw, tables, ddl, upto = job
            try:
                cursor = raw.cursor()
                try:
                    try:
                        cursor.execute(_RESET_SQL, (ddl,))
                        while cursor.nextset():
                            pass
                    finally:
                        cursor.execute("UNLOCK TABLES")
                    cursor.execute(_CLEAR_MARKS_SQL, (upto,))
                finally:
                    cursor.close()
            except BaseException as exc:  # reported by wait(), in the caller's thread
                self._error = (tables, exc)
                with suppress(Exception):
                    raw.invalidate()  # closing the session releases its locks
                self._raw = None
            finally:
                self._idle.set()

    def wait(self) -> None:
        """Block until the background reset is done; raise its error (once)."""
        self._idle.wait()
        if self._error is not None:
            tables, exc = self._error
            self._error = None
            raise DbrewindError(
                f"Putting the AUTO_INCREMENT counters of {tables} back after the previous "
                f"rewind failed: {_first_line(exc)}. Those tables are still marked dirty, so "
                "the next rewind does them again; `dbrewind doctor URL` shows the tracking state."
            ) from exc

    def _discard(self) -> None:
        if self._raw is not None:
            with suppress(Exception):
                self._raw.invalidate()
            self._raw = None

    def close(self) -> None:
        """Wait for the background reset (dropping its error), stop the thread, close up."""
        with suppress(DbrewindError):
            self.wait()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._raw is not None:
            with suppress(Exception):
                self._raw.close()
            self._raw = None
