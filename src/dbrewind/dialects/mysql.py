"""MySQL / MariaDB: row triggers, an append-only marks table, one stored procedure.

How tracking works here (MariaDB 10.11, MySQL 8):

* Every user table gets three ``AFTER INSERT/UPDATE/DELETE ... FOR EACH ROW``
  triggers. A trigger appends the table's name to ``dbrewind_marks`` at most
  once per statement: it remembers the statement's start time
  (``@@timestamp``, in microseconds: constant within a statement, different
  between statements, and cheaper per row than ``NOW(6)``) in a session
  variable of its own, so a 2,000-row ``INSERT`` writes one mark. The marks
  table has no unique key and the trigger reads nothing, so two transactions
  writing the same table never wait on each other for their marks.
* ``install`` copies each non-empty table into ``dbrewind_b_<name>`` (the
  baseline), records row counts and ``AUTO_INCREMENT`` values, and generates
  the procedure ``dbrewind_rewind``. One ``CALL`` then does the whole rewind:
  it compares the schema's table list with the baseline's, probes seeded
  tables for a ``TRUNCATE`` (see below), reads the marks, returns at once when
  there are none, and otherwise, with
  ``FOREIGN_KEY_CHECKS=0`` (so order and cycles do not matter), deletes each
  dirty table and re-inserts its baseline rows in one transaction (which also
  deletes the marks, so a rewind without DDL costs one commit). A table whose
  counter moved needs DDL: one with an empty baseline and counter 1 is
  ``TRUNCATE``d inside the ``CALL`` (cheaper than ``DELETE`` + ``ALTER``), as
  are tables dbrewind learned are large. Any other gets ``ALTER TABLE ..
  AUTO_INCREMENT`` back to its baseline value; on dbrewind's own connection
  that runs after the ``CALL`` returned, on a second connection that holds
  ``LOCK TABLES .. WRITE`` on those tables until it is done (the ``ALTER``
  costs more than the rest of the rewind; see ``_CounterReset``).
* The check that runs after every test (nothing dirty) is one statement
  inside the ``CALL``: the table list's signature from
  ``information_schema.TABLES`` (names only, no table is opened), the
  ``TRUNCATE`` probe and the newest mark; a clean database answers with no
  result set. The ``information_schema`` scan is most of that cost. Global
  status counters (``Com_create_table`` ..) would be a cheaper "no DDL
  happened" signal in principle, but on MariaDB 10.11 reading them
  (``information_schema.GLOBAL_STATUS``) evaluates every engine's status
  function and costs more than the scan it would skip, so there is none.
* Foreign-key actions (``ON DELETE CASCADE``, ``SET NULL``, ``ON UPDATE ..``)
  do not fire triggers in MySQL/MariaDB, so a dirty table also makes dirty
  every table its cascades can reach.

Known limits, by the database's design:

* ``TRUNCATE`` fires no trigger. A truncated table whose baseline has rows is
  found empty by a cheap probe at each rewind and restored. A truncated table
  whose baseline is empty lost nothing but, when its counter was above 1, its
  counter value; that is not detected (reading every table's counter costs
  ~2.6 ms for 100 tables, more than the rewind itself), nor is a ``TRUNCATE``
  in a test that also created or dropped a table. ``--dbrewind-verify``
  reports what is left.
* A session that freezes time with ``SET timestamp = ..`` makes
  ``@@timestamp`` constant across statements; a mark rolled back in such a
  session is not written again until the time changes.
"""

from __future__ import annotations

import json
import math
import queue
import re
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError

from .._url import DatabaseURL
from ..exceptions import (
    ConfigurationError,
    DbrewindError,
    LockTimeoutError,
    NotPreparedError,
    SchemaChangedError,
)
from .base import (
    LOCK_ADVICE,
    Capabilities,
    Dialect,
    ForeignKey,
    RewindResult,
    SchemaInfo,
    Table,
    describe_sessions,
    describe_wait,
    server_connection,
    short_name,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CREATED_COMMENT", "MARKS_TABLE", "PREFIX", "REWIND_PROCEDURE", "MySQLDialect"]

PREFIX = "dbrewind_"
"""Every tracking object's name starts with this; user tables with it are ignored."""
MARKS_TABLE = "dbrewind_marks"
TABLES_TABLE = "dbrewind_tables"
CASCADE_TABLE = "dbrewind_cascade"
META_TABLE = "dbrewind_meta"
"""MySQL (no schema comments): holds the creation mark; survives :meth:`uninstall`."""
REWIND_PROCEDURE = "dbrewind_rewind"
RESET_PROCEDURE = "dbrewind_reset_counters"
"""Runs the DDL that puts ``AUTO_INCREMENT`` counters back (called by the rewind, or in the
background under ``LOCK TABLES``: see :class:`_CounterReset`)."""
CREATED_COMMENT = "dbrewind test database"
"""``CREATE DATABASE .. COMMENT`` text marking a database dbrewind created (MariaDB)."""

_PAUSE_VAR = "@dbrewind_paused"
_SIMPLE = re.compile(r"[A-Za-z0-9_ $#@.,:;!?()+\-*/=<>\[\]{}|~^%&]*")
_DEFINER = re.compile(r"\s+DEFINER\s*=\s*(`[^`]*`|'[^']*'|[^@\s]+)@(`[^`]*`|'[^']*'|\S+)", re.I)
_SCHEMA_CHANGED_ERRNOS = {1054, 1146}  # unknown column, table doesn't exist
_MISSING_ERRNOS = {1305}  # procedure does not exist
_LOCK_WAIT_TIMEOUT = 1205  # row lock (innodb_lock_wait_timeout) or metadata lock
_OPEN_TRANSACTIONS_SQL = (
    "SELECT t.trx_mysql_thread_id, COALESCE(p.COMMAND, ''), "
    "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(COALESCE(t.trx_query, ''), 120) "
    "FROM information_schema.INNODB_TRX t "
    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
    "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() "
    "AND (p.DB IS NULL OR p.DB = DATABASE()) "
    "ORDER BY t.trx_started LIMIT 5"
)


def _ident(name: str) -> str:
    """Backtick-quote an identifier (the same rule SQLAlchemy's MySQL preparer applies)."""
    return "`" + name.replace("`", "``") + "`"


def _sql(
    conn: Connection, statement: str, params: tuple[Any, ...] | None = None
) -> CursorResult[Unpack[tuple[Any, ...]]]:
    """Run driver-level SQL; without ``params``, a ``%`` in it stays a literal ``%``."""
    if params is None:
        # the MySQL drivers always %-format the statement (paramstyle "format")
        return conn.exec_driver_sql(statement.replace("%", "%%"))
    return conn.exec_driver_sql(statement, params)


def _lit(value: str) -> str:
    """A string literal that reads the same under any ``sql_mode``.

    Plain names become ``'name'``; anything with a quote or a backslash (whose
    meaning depends on ``NO_BACKSLASH_ESCAPES``) becomes a hex literal.
    """
    if _SIMPLE.fullmatch(value) and "'" not in value:
        return f"'{value}'"
    return f"_utf8mb4 X'{value.encode().hex()}'"


def _errno(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__


def _open_transactions(conn: Connection) -> str:
    """Other sessions with an InnoDB transaction open (needs the PROCESS privilege)."""
    return describe_sessions(
        lambda: [
            f"id {thread}, {command or 'unknown state'}, transaction open for {seconds} s"
            + (f", running: {query!r}" if query else "")
            for thread, command, seconds, query in _sql(conn, _OPEN_TRANSACTIONS_SQL)
        ]
    )


def _is_mariadb(conn: Connection) -> bool:
    return bool(getattr(conn.dialect, "is_mariadb", False))


def _keys_blob(keys: Sequence[str]) -> bytes:
    """Keys as NUL-separated bytes (NUL cannot occur in a MySQL identifier)."""
    if not keys:
        return b""
    return b"\0" + b"\0".join(k.encode() for k in keys) + b"\0"


class MySQLDialect(Dialect):
    """MariaDB 10.11 and MySQL 8: tables of ``DATABASE()``, keys are table names."""

    name = "mysql"
    capabilities = Capabilities(
        transactional_ddl=False,
        statement_triggers=False,
        truncate_trigger=False,
        implicit_commits=True,
        server_side_rewind=True,
        deferrable_constraints=False,
        concurrent_writers=True,
        returning=False,
    )

    #: Run the DDL that puts ``AUTO_INCREMENT`` counters back after :meth:`rewind`
    #: returns, on a second connection that holds ``LOCK TABLES .. WRITE`` on those
    #: tables until it is done (see :class:`_CounterReset`). False runs it inside
    #: the rewind's ``CALL``.
    background_counter_reset = True

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        super().__init__(schemas=schemas)
        self._counters = _CounterReset()

    # ----------------------------------------------------------- introspection
    def inspect(self, conn: Connection) -> SchemaInfo:
        """Base tables of the current database (not views, not ``dbrewind_*``), FKs, counters."""
        names = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
                    "AND TABLE_NAME NOT LIKE 'dbrewind\\_%' ORDER BY TABLE_NAME"
                )
            )
        ]
        columns: dict[str, list[str]] = {n: [] for n in names}
        auto: set[str] = set()
        for table, column, extra in conn.execute(
            text(
                "SELECT TABLE_NAME, COLUMN_NAME, COALESCE(EXTRA, '') "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION"
            )
        ):
            if table not in columns:
                continue
            flags = extra.upper()
            if "AUTO_INCREMENT" in flags:
                auto.add(table)
            if "VIRTUAL GENERATED" in flags or "STORED GENERATED" in flags:
                continue
            if "PERSISTENT GENERATED" in flags or flags.startswith("ROW "):
                continue
            columns[table].append(column)
        fks = [
            ForeignKey(child=child, parent=parent, name=fk_name, on_delete=rule)
            for child, parent, fk_name, rule in conn.execute(
                text(
                    "SELECT TABLE_NAME, REFERENCED_TABLE_NAME, CONSTRAINT_NAME, DELETE_RULE "
                    "FROM information_schema.REFERENTIAL_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = DATABASE() "
                    "AND UNIQUE_CONSTRAINT_SCHEMA = DATABASE() "
                    "ORDER BY TABLE_NAME, CONSTRAINT_NAME"
                )
            )
            if child in columns and parent in columns
        ]
        tables = {
            n: Table(key=n, name=n, columns=tuple(columns[n]), auto_increment=n in auto)
            for n in names
        }
        return SchemaInfo(tables=tables, foreign_keys=tuple(fks))

    # ---------------------------------------------------------------- tracking
    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Drop any earlier installation, capture the baseline, create triggers and procedure."""
        try:
            self._install(conn, schema)
        except DBAPIError as exc:
            raise DbrewindError(
                f"Installing dbrewind tracking in database {self._database(conn)!r} failed: "
                f"{_first_line(exc)}. Fix the cause and prepare again; "
                "`dbrewind uninstall URL` removes a partial installation."
            ) from exc

    def _install(self, conn: Connection, schema: SchemaInfo) -> None:
        self._counters.wait()
        self._drop_objects(conn)
        tables = [schema.tables[k] for k in sorted(schema.tables)]
        _sql(
            conn,
            f"CREATE TABLE {_ident(MARKS_TABLE)} ("
            "`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "`tbl` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
            ") ENGINE=InnoDB "
            "COMMENT='dbrewind change tracking; remove with: dbrewind uninstall URL'",
        )
        _sql(
            conn,
            f"CREATE TABLE {_ident(TABLES_TABLE)} ("
            "`tbl` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
            "`baseline_copy` VARCHAR(64) NULL, `baseline_rows` BIGINT NOT NULL, "
            "`auto_increment` BIGINT UNSIGNED NULL) ENGINE=InnoDB",
        )
        _sql(
            conn,
            f"CREATE TABLE {_ident(CASCADE_TABLE)} ("
            "`parent` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
            "`child` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
            "PRIMARY KEY (`parent`, `child`)) ENGINE=InnoDB",
        )
        counts = self._row_counts(conn, [t.name for t in tables])
        if not _is_mariadb(conn):
            # MySQL 8 caches information_schema.TABLES.AUTO_INCREMENT for a day by default
            _sql(conn, "SET SESSION information_schema_stats_expiry = 0")
        counters = self._auto_increments(conn)
        plans: list[_TablePlan] = []
        for index, table in enumerate(tables, start=1):
            copy = None
            if counts[table.name] > 0:
                copy = short_name(PREFIX + "b_", table.name)
                cols = ", ".join(_ident(c) for c in table.columns)
                _sql(
                    conn,
                    f"CREATE TABLE {_ident(copy)} ENGINE=InnoDB AS "
                    f"SELECT {cols} FROM {_ident(table.name)}",
                )
            plans.append(
                _TablePlan(
                    index=index,
                    table=table,
                    copy=copy,
                    rows=counts[table.name],
                    counter=counters.get(table.name) if table.auto_increment else None,
                )
            )
        if plans:
            conn.execute(
                text(
                    f"INSERT INTO {_ident(TABLES_TABLE)} "
                    "(`tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) "
                    "VALUES (:t, :c, :r, :a)"
                ),
                [{"t": p.table.key, "c": p.copy, "r": p.rows, "a": p.counter} for p in plans],
            )
        cascades = self._cascades(conn, schema)
        if cascades:
            conn.execute(
                text(f"INSERT INTO {_ident(CASCADE_TABLE)} (`parent`, `child`) VALUES (:p, :c)"),
                [{"p": p, "c": c} for p, c in cascades],
            )
        _run_batches(conn, [[(st, None) for st in _trigger_sql(p.table)] for p in plans])
        count, checksum = self._signature(conn)
        for statement in _procedure_sql(plans, count, checksum, mariadb=_is_mariadb(conn)):
            _sql(conn, statement)

    @staticmethod
    def _row_counts(conn: Connection, names: Sequence[str]) -> dict[str, int]:
        return _row_counts(conn, names)

    @staticmethod
    def _auto_increments(conn: Connection) -> dict[str, int]:
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL"
            )
        )
        return {name: int(value) for name, value in rows}

    @staticmethod
    def _signature(conn: Connection) -> tuple[int, int]:
        """Count and CRC32 sum of the user's table and view names (as the procedure does)."""
        row = _sql(conn, _SIGNATURE_SQL).one()
        return int(row[0]), int(row[1])

    @staticmethod
    def _cascades(conn: Connection, schema: SchemaInfo) -> list[tuple[str, str]]:
        """(parent, descendant) pairs: writes to parent may change descendant without a trigger."""
        edges: dict[str, set[str]] = {}
        for child, parent in conn.execute(
            text(
                "SELECT TABLE_NAME, REFERENCED_TABLE_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() AND UNIQUE_CONSTRAINT_SCHEMA = DATABASE() "
                "AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') "
                "OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))"
            )
        ):
            if child in schema.tables and parent in schema.tables and child != parent:
                edges.setdefault(parent, set()).add(child)
        pairs: list[tuple[str, str]] = []
        for parent in sorted(edges):
            seen: set[str] = set()
            todo = list(edges[parent])
            while todo:
                node = todo.pop()
                if node in seen or node == parent:
                    continue
                seen.add(node)
                todo.extend(edges.get(node, ()))
            pairs.extend((parent, child) for child in sorted(seen))
        return pairs

    def uninstall(self, conn: Connection) -> None:
        """Drop every ``dbrewind_`` trigger, routine and table (except MySQL's creation mark)."""
        self._counters.wait()
        self._drop_objects(conn)

    def _drop_objects(self, conn: Connection) -> None:
        by_table: dict[str, list[tuple[str, tuple[Any, ...] | None]]] = {}
        for name, table in conn.execute(
            text(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'dbrewind\\_%'"
            )
        ).all():
            by_table.setdefault(table, []).append((f"DROP TRIGGER IF EXISTS {_ident(name)}", None))
        _run_batches(conn, list(by_table.values()))
        for name, kind in conn.execute(
            text(
                "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME LIKE 'dbrewind\\_%'"
            )
        ).all():
            _sql(conn, f"DROP {kind} IF EXISTS {_ident(name)}")
        names = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'dbrewind\\_%' "
                    "AND TABLE_NAME <> :meta"
                ),
                {"meta": META_TABLE},
            )
        ]
        if names:
            _sql(conn, f"DROP TABLE IF EXISTS {', '.join(_ident(n) for n in names)}")

    def is_installed(self, conn: Connection) -> bool:
        """The marks table and the rewind procedure both exist."""
        row = conn.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :marks), "
                "(SELECT COUNT(*) FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME = :proc "
                "AND ROUTINE_TYPE = 'PROCEDURE')"
            ),
            {"marks": MARKS_TABLE, "proc": REWIND_PROCEDURE},
        ).one()
        return bool(row[0]) and bool(row[1])

    def dirty_tables(self, conn: Connection) -> list[str]:
        """Marked tables, plus the tables their FK cascades reach (cascades fire no trigger)."""
        try:
            rows = _sql(
                conn,
                f"SELECT m.`tbl` FROM {_ident(MARKS_TABLE)} m UNION "
                f"SELECT c.`child` FROM {_ident(CASCADE_TABLE)} c "
                f"JOIN {_ident(MARKS_TABLE)} m ON m.`tbl` = c.`parent`",
            ).all()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        return sorted(row[0] for row in rows)

    def tracked_tables(self, conn: Connection) -> list[str]:
        """Tables recorded in the installation's baseline."""
        try:
            rows = _sql(conn, f"SELECT `tbl` FROM {_ident(TABLES_TABLE)} ORDER BY `tbl`").all()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        return [row[0] for row in rows]

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

    def rewind(
        self,
        conn: Connection,
        *,
        truncate: frozenset[str] = frozenset(),
        reset_sequences: bool = True,
    ) -> RewindResult:
        """One ``CALL dbrewind_rewind(..)``; a second one only when tables were created/dropped.

        With :attr:`background_counter_reset` on dbrewind's own (``AUTOCOMMIT``)
        connection, the DDL that puts ``AUTO_INCREMENT`` counters back runs
        after this returns, behind a table lock: see :class:`_CounterReset`.
        """
        self._counters.wait()
        blob = _keys_blob(sorted(truncate))
        row = self._call(conn, blob, b"", reset_sequences, check=True)
        if row[0] != "schema":
            return self._finish(conn, row)
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

    def _translate(self, exc: DBAPIError, conn: Connection) -> DbrewindError:
        errno = _errno(exc)
        database = self._database(conn)
        if errno in _MISSING_ERRNOS or (
            errno == 1146 and PREFIX in str(exc.orig) and "dbrewind_b_" not in str(exc.orig)
        ):
            return NotPreparedError(
                f"dbrewind tracking is not installed in database {database!r}: "
                f"{_first_line(exc)}. Prepare it once (Rewinder.prepare) before tests run."
            )
        if errno == _LOCK_WAIT_TIMEOUT:
            return LockTimeoutError(
                f"Rewinding database {database!r} waited {describe_wait(self.lock_timeout)} "
                f"for a lock that another session holds ({_first_line(exc)}); the tables "
                f"stay marked, so the next rewind does them again. {_open_transactions(conn)} "
                + LOCK_ADVICE
            )
        if errno in _SCHEMA_CHANGED_ERRNOS:
            return SchemaChangedError(
                f"A table of database {database!r} changed shape during the test, so its "
                f"baseline rows no longer fit: {_first_line(exc)}. Undo the schema change in "
                "the test's teardown, or prepare the database again."
            )
        return DbrewindError(
            f"dbrewind failed on database {database!r}: {_first_line(exc)}. "
            "Run `dbrewind doctor URL` to see the tracking state."
        )

    @staticmethod
    def _database(conn: Connection) -> str:
        try:
            return str(_sql(conn, "SELECT DATABASE()").scalar() or "")
        except DBAPIError:  # pragma: no cover - the connection itself is broken
            return "?"

    # ---------------------------------------------------------------- databases
    @staticmethod
    def _server(url: DatabaseURL) -> Engine:
        # URL.set ignores None; an empty name makes the driver connect to no database
        return create_engine(url.sync_url().set(database=""), isolation_level="AUTOCOMMIT")

    def _server_connection(self, url: DatabaseURL) -> AbstractContextManager[Connection]:
        return server_connection(self._server(url), "MySQL/MariaDB server", url)

    def database_exists(self, url: DatabaseURL) -> bool:
        """Looks the name up in ``information_schema.SCHEMATA``."""
        with self._server_connection(url) as conn:
            return (
                conn.execute(
                    text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :n"),
                    {"n": url.database},
                ).first()
                is not None
            )

    def create_database(self, url: DatabaseURL, *, template: DatabaseURL | None = None) -> None:
        """``CREATE DATABASE``, then (with ``template``) a copy of its tables, rows,
        views, triggers and routines; the new database carries dbrewind's mark."""
        name = url.database
        with self._server_connection(url) as conn:
            charset = ""
            if template is not None:
                row = conn.execute(
                    text(
                        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                        "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :n"
                    ),
                    {"n": template.database},
                ).first()
                if row is None:
                    raise ConfigurationError(
                        f"Cannot copy database {template.database!r} ({template.display()}): "
                        "it does not exist. Prepare the template database first."
                    )
                charset = f" CHARACTER SET {row[0]} COLLATE {row[1]}"
            comment = f" COMMENT {_lit(CREATED_COMMENT)}" if _is_mariadb(conn) else ""
            try:
                _sql(conn, f"CREATE DATABASE {_ident(name)}{charset}{comment}")
            except DBAPIError as exc:
                if _errno(exc) == 1007:
                    raise DbrewindError(
                        f"Cannot create database {name!r} ({url.display()}): it already exists. "
                        "Drop it first (Rewinder.drop / prepare(recreate=True)) or use it as is."
                    ) from exc
                raise DbrewindError(
                    f"Cannot create database {name!r} ({url.display()}): {_first_line(exc)}"
                ) from exc
        failure: DBAPIError | None = None
        engine = create_engine(url.sync_url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if not _is_mariadb(conn):
                    self.mark_created(conn)
                if template is not None:
                    _copy_schema(conn, template.database)
        except DBAPIError as exc:
            failure = exc
        finally:
            engine.dispose()
        if failure is not None:
            self.drop_database(url)
            source = f"copying database {template.database!r} into" if template else "setting up"
            raise DbrewindError(
                f"Creating database {name!r} ({url.display()}) failed while {source} it: "
                f"{_first_line(failure)}. The partial database was dropped; check the "
                "template's objects with SHOW CREATE."
            ) from failure

    def drop_database(self, url: DatabaseURL) -> None:
        """End other sessions using the database (they would block it), then drop it."""
        with self._server_connection(url) as conn:
            sessions = conn.execute(
                text(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = :n AND ID <> CONNECTION_ID()"
                ),
                {"n": url.database},
            ).all()
            for (session,) in sessions:
                # it may have ended on its own meanwhile
                with suppress(DBAPIError):
                    _sql(conn, f"KILL CONNECTION {int(session)}")
            try:
                _sql(conn, f"DROP DATABASE IF EXISTS {_ident(url.database)}")
            except DBAPIError as exc:
                raise DbrewindError(
                    f"Cannot drop database {url.database!r} ({url.display()}): "
                    f"{_first_line(exc)}. Close the sessions that use it and retry."
                ) from exc

    def created_by_dbrewind(self, conn: Connection) -> bool:
        """MariaDB: the schema comment says so; MySQL: ``dbrewind_meta`` holds the mark."""
        if _is_mariadb(conn):
            comment = _sql(
                conn,
                "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME = DATABASE()",
            ).scalar()
            if comment == CREATED_COMMENT:
                return True
        exists = conn.execute(
            text(
                "SELECT 1 FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": META_TABLE},
        ).first()
        if exists is None:
            return False
        value = conn.execute(
            text(f"SELECT `value` FROM {_ident(META_TABLE)} WHERE `name` = 'created'")
        ).scalar()
        return value == CREATED_COMMENT

    def mark_created(self, conn: Connection) -> None:
        """``ALTER DATABASE .. COMMENT`` on MariaDB; a ``dbrewind_meta`` row on MySQL."""
        database = self._database(conn)
        if _is_mariadb(conn):
            _sql(conn, f"ALTER DATABASE {_ident(database)} COMMENT {_lit(CREATED_COMMENT)}")
            return
        _sql(
            conn,
            f"CREATE TABLE IF NOT EXISTS {_ident(META_TABLE)} "
            "(`name` VARCHAR(64) NOT NULL PRIMARY KEY, `value` TEXT NOT NULL) ENGINE=InnoDB",
        )
        conn.execute(
            text(f"REPLACE INTO {_ident(META_TABLE)} (`name`, `value`) VALUES ('created', :v)"),
            {"v": CREATED_COMMENT},
        )


# ------------------------------------------------------------------ generated SQL

_DDL_WORKERS = 4
"""Connections that create/drop triggers at once: trigger DDL waits on file syncs,
so a few sessions overlap them (measured 1.3-1.9x faster for 180 triggers)."""


def _run_batches(
    conn: Connection, batches: Sequence[Sequence[tuple[str, tuple[Any, ...] | None]]]
) -> None:
    """Run each batch's statements in order on one session; batches spread over sessions.

    ``conn`` runs a share itself; the other shares run on short-lived
    ``AUTOCOMMIT`` connections of ``conn``'s engine. The first driver error is
    raised after every session has stopped.
    """
    batches = [b for b in batches if b]
    workers = min(_DDL_WORKERS, len(batches) // 8 + 1)
    if workers <= 1:
        for batch in batches:
            for statement, params in batch:
                _sql(conn, statement, params)
        return
    shares = [batches[i::workers] for i in range(workers)]
    errors: list[BaseException] = []

    def run(share: Sequence[Sequence[tuple[str, tuple[Any, ...] | None]]], own: bool) -> None:
        try:
            if own:
                target = conn
            else:
                target = conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                for batch in share:
                    if errors:
                        return
                    for statement, params in batch:
                        _sql(target, statement, params)
            finally:
                if not own:
                    target.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(share, False)) for share in shares[1:]]
    for thread in threads:
        thread.start()
    run(shares[0], True)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# Names only (views included): asking for TABLE_TYPE makes the server open every
# table, which costs 3x as much on each rewind.
_SIGNATURE_COLUMNS = "COUNT(*), COALESCE(SUM(CRC32(TABLE_NAME)), 0)"
_SIGNATURE_FROM = (
    "FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'dbrewind\\_%'"
)
_SIGNATURE_SQL = f"SELECT {_SIGNATURE_COLUMNS} {_SIGNATURE_FROM}"
_CALL_SQL = f"CALL {_ident(REWIND_PROCEDURE)}(%s, %s, %s, %s, %s, %s)"
_RESET_SQL = f"CALL {_ident(RESET_PROCEDURE)}(%s)"
_CLEAR_MARKS_SQL = f"DELETE FROM {_ident(MARKS_TABLE)} WHERE `id` <= %s"


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
        except BaseException:
            self._discard()
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


class _TablePlan:
    """What the rewind procedure knows about one tracked table."""

    __slots__ = ("copy", "counter", "index", "rows", "table")

    def __init__(
        self, *, index: int, table: Table, copy: str | None, rows: int, counter: int | None
    ) -> None:
        self.index = index
        self.table = table
        self.copy = copy
        self.rows = rows
        self.counter = counter

    @property
    def restore(self) -> str:
        """``INSERT .. SELECT`` of the baseline rows, or nothing for an empty baseline."""
        if self.copy is None:
            return ""
        cols = ", ".join(_ident(c) for c in self.table.columns)
        return (
            f"INSERT INTO {_ident(self.table.name)} ({cols}) "
            f"SELECT {cols} FROM {_ident(self.copy)};"
        )

    @property
    def read_counter(self) -> str:
        return (
            "SELECT `AUTO_INCREMENT` INTO v_ai FROM information_schema.`TABLES` "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {_lit(self.table.name)};"
        )


def _trigger_sql(table: Table) -> list[str]:
    var = "@" + _ident(short_name(PREFIX + "v_", table.key))
    statements = []
    for event, tag in (("INSERT", "i"), ("UPDATE", "u"), ("DELETE", "d")):
        trigger = short_name(f"{PREFIX}{tag}_", table.key)
        statements.append(
            f"CREATE TRIGGER {_ident(trigger)} AFTER {event} ON {_ident(table.name)} "
            "FOR EACH ROW BEGIN "
            f"IF {_PAUSE_VAR} IS NULL AND NOT ({var} <=> @@timestamp) THEN "
            f"INSERT INTO {_ident(MARKS_TABLE)} (`tbl`) VALUES ({_lit(table.key)}); "
            f"SET {var} = @@timestamp; "
            "END IF; END"
        )
    return statements


def _check_sql(plans: Sequence[_TablePlan], count: int, checksum: int) -> str:
    """The check that runs on every rewind, as ONE statement: table list, ``TRUNCATE`` probe, marks.

    One ``SELECT`` reads the signature of the table list (count and CRC32 sum
    of the names, compared with the baseline's ``count``/``checksum``), the
    newest mark, and whether any seeded table is empty: the trace a
    ``TRUNCATE`` (which fires no trigger) leaves. Any other way of emptying a
    table fires a trigger, and a write after the ``TRUNCATE`` marks the table
    itself, so "a table whose baseline has rows is empty" is the whole signal.
    The probes are non-locking ``EXISTS`` reads (one index dive each); the
    per-table marks are written only when one hits. A seeded table that was
    dropped or renamed makes the statement fail with error 1146, which the
    block turns into "schema changed" (the signature differs then anyway).

    A change of the table list leaves ``v_schema`` set and nothing else done.
    """
    marks = _ident(MARKS_TABLE)
    seeded = [p for p in plans if p.rows > 0]
    empty = [f"NOT EXISTS (SELECT 1 FROM {_ident(p.table.name)})" for p in seeded]
    columns = f"{_SIGNATURE_COLUMNS}, (SELECT MAX(`id`) FROM {marks})"
    into = "v_count, v_sum, v_max"
    if empty:
        columns += f", {' OR '.join(empty)}"
        into += ", v_emptied"
    compare = f"SET v_schema = v_count <> {count} OR v_sum <> {checksum};"
    read = f"SELECT {columns} INTO {into} {_SIGNATURE_FROM};"
    if not seeded:
        return f"{read} {compare}"
    fill = [
        f"IF {test} THEN INSERT INTO {marks} (`tbl`) VALUES ({_lit(p.table.key)}); END IF;"
        for p, test in zip(seeded, empty, strict=True)
    ]
    return (
        f"BEGIN DECLARE EXIT HANDLER FOR 1146 SET v_schema = TRUE; {read} {compare} END; "
        f"IF v_emptied AND NOT v_schema THEN {' '.join(fill)} "
        f"SELECT MAX(`id`) INTO v_max FROM {marks}; END IF;"
    )


def _procedure_sql(
    plans: Sequence[_TablePlan], count: int, checksum: int, *, mariadb: bool = True
) -> list[str]:
    """The counter-reset and rewind procedures, with static branches per tracked table.

    ``p_truncate``/``p_skip``: NUL-separated table keys to empty with TRUNCATE /
    to leave alone (dropped); ``p_reset``: put counters back; ``p_check``:
    compare the table list with the baseline first (status ``schema`` when it
    differs, before anything is changed); ``p_defer``: leave the DDL that puts
    counters back to the caller (status ``deferred``, with the DDL tokens for
    ``dbrewind_reset_counters``, the ``LOCK TABLES`` list and the newest mark
    the rewind covered; the marks stay until the DDL is done). Returns one row:
    status, a JSON array of ``[key, deleted rows or -1 when truncated]``, then
    those three. On MySQL 8 the procedures first turn off the cache of
    ``information_schema`` table statistics, which would otherwise hide counter
    changes.
    """
    dml: list[str] = []
    ddl: list[str] = []
    for plan in plans:
        key = _lit(plan.table.key)
        name = _ident(plan.table.name)
        moved = ""
        if plan.counter is not None:
            moved = (
                f"IF p_reset THEN {plan.read_counter} "
                f"SET v_moved = NOT (v_ai <=> {plan.counter}); END IF; "
            )
        may_truncate = "TRUE" if plan.counter is None else "p_reset"
        cheap_truncate = ""
        if plan.counter == 1 and plan.rows == 0:
            # in the CALL, also when deferring: TRUNCATE costs less than ALTER, and it
            # must not run in the background (see _CounterReset)
            cheap_truncate = "IF v_moved THEN SET v_trunc = TRUE; END IF; "
        alter = ""
        if plan.counter is not None:
            # ALTER .. AUTO_INCREMENT keeps the definition: safe to run in the background,
            # behind LOCK TABLES .. WRITE on the table (see _CounterReset)
            alter = (
                "IF v_moved THEN IF p_defer THEN "
                f"SET v_bg = CONCAT(v_bg, 'A{plan.index},'), "
                f"v_lock = CONCAT(v_lock, {_lit(', ' + name + ' WRITE')}); "
                f"ELSE SET v_ddl = CONCAT(v_ddl, 'A{plan.index},'); END IF; END IF; "
            )
        dml.append(
            f"WHEN {key} THEN SET v_moved = FALSE; {moved}"
            f"SET v_trunc = INSTR(p_truncate, CONCAT(X'00', v_tbl, X'00')) > 0 "
            f"AND {may_truncate}; {cheap_truncate}"
            f"IF v_trunc THEN SET v_ddl = CONCAT(v_ddl, 'T{plan.index},'); "
            "SET v_out = CONCAT(v_out, ',[', JSON_QUOTE(v_tbl), ',-1]'); "
            f"ELSE DELETE FROM {name}; "
            "SET v_out = CONCAT(v_out, ',[', JSON_QUOTE(v_tbl), ',', ROW_COUNT(), ']'); "
            f"{plan.restore} {alter}END IF;"
        )
        fix_counter = ""
        if plan.counter is not None and plan.rows > 0:
            # a counter table is truncated only when counters are reset (p_reset)
            fix_counter = (
                f"{plan.read_counter} IF NOT (v_ai <=> {plan.counter}) THEN "
                f"ALTER TABLE {name} AUTO_INCREMENT = {plan.counter}; END IF; "
            )
        ddl.append(f"WHEN 'T{plan.index}' THEN TRUNCATE TABLE {name}; {plan.restore} {fix_counter}")
        if plan.counter is not None:
            ddl.append(
                f"WHEN 'A{plan.index}' THEN ALTER TABLE {name} AUTO_INCREMENT = {plan.counter};"
            )
    dml_case = "CASE v_tbl " + " ".join(dml) + " ELSE BEGIN END; END CASE;" if dml else "BEGIN END;"
    ddl_case = "CASE v_tok " + " ".join(ddl) + " ELSE BEGIN END; END CASE;" if ddl else "BEGIN END;"
    marks = _ident(MARKS_TABLE)
    check = _check_sql(plans, count, checksum)
    stats = "" if mariadb else "SET SESSION information_schema_stats_expiry = 0;"
    reset = f"""
CREATE PROCEDURE {_ident(RESET_PROCEDURE)}(IN p_ddl LONGTEXT)
    MODIFIES SQL DATA
    COMMENT 'dbrewind: put AUTO_INCREMENT counters back after a rewind'
BEGIN
  DECLARE v_ai BIGINT UNSIGNED;
  DECLARE v_tok VARCHAR(32);
  DECLARE v_ddl LONGTEXT DEFAULT p_ddl;
  DECLARE v_fk INT DEFAULT @@SESSION.FOREIGN_KEY_CHECKS;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    SET FOREIGN_KEY_CHECKS = v_fk;
    SET {_PAUSE_VAR} = NULL;
    RESIGNAL;
  END;

  {stats}
  SET {_PAUSE_VAR} = 1, FOREIGN_KEY_CHECKS = 0;
  WHILE v_ddl <> '' DO
    SET v_tok = SUBSTRING_INDEX(v_ddl, ',', 1);
    SET v_ddl = SUBSTRING(v_ddl, LENGTH(v_tok) + 2);
    {ddl_case}
  END WHILE;
  SET FOREIGN_KEY_CHECKS = v_fk, {_PAUSE_VAR} = NULL;
END
"""
    rewind = f"""
CREATE PROCEDURE {_ident(REWIND_PROCEDURE)}(
    IN p_truncate LONGBLOB, IN p_skip LONGBLOB, IN p_reset BOOLEAN, IN p_check BOOLEAN,
    IN p_defer BOOLEAN, IN p_lock_timeout INT)
    MODIFIES SQL DATA
    COMMENT 'dbrewind: put dirty tables back to the baseline'
proc: BEGIN
  DECLARE v_max BIGINT UNSIGNED;
  DECLARE v_count BIGINT;
  DECLARE v_sum BIGINT;
  DECLARE v_ai BIGINT UNSIGNED;
  DECLARE v_moved BOOLEAN DEFAULT FALSE;
  DECLARE v_trunc BOOLEAN DEFAULT FALSE;
  DECLARE v_done BOOLEAN DEFAULT FALSE;
  DECLARE v_late BOOLEAN DEFAULT FALSE;
  DECLARE v_emptied BOOLEAN DEFAULT FALSE;
  DECLARE v_schema BOOLEAN DEFAULT FALSE;
  DECLARE v_fk INT DEFAULT @@SESSION.FOREIGN_KEY_CHECKS;
  DECLARE v_lwt BIGINT DEFAULT @@SESSION.lock_wait_timeout;
  DECLARE v_ilwt BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
  DECLARE v_tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
  DECLARE v_out LONGTEXT DEFAULT '';
  DECLARE v_ddl LONGTEXT DEFAULT '';
  DECLARE v_bg LONGTEXT DEFAULT '';
  DECLARE v_lock LONGTEXT DEFAULT '';
  DECLARE v_cur CURSOR FOR
    SELECT m.`tbl` FROM {marks} m WHERE m.`id` <= v_max
    UNION
    SELECT c.`child` FROM {_ident(CASCADE_TABLE)} c
      JOIN {marks} m ON m.`tbl` = c.`parent` WHERE m.`id` <= v_max;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET FOREIGN_KEY_CHECKS = v_fk, lock_wait_timeout = v_lwt, innodb_lock_wait_timeout = v_ilwt;
    SET {_PAUSE_VAR} = NULL;
    RESIGNAL;
  END;

  {stats}
  IF p_check THEN
    {check}
    IF v_schema THEN
      SELECT 'schema' AS status, NULL AS tables, NULL AS ddl, NULL AS locks, NULL AS upto;
      LEAVE proc;
    END IF;
  ELSE
    SELECT MAX(`id`) INTO v_max FROM {marks};
  END IF;
  IF v_max IS NULL THEN
    LEAVE proc;
  END IF;

  SET {_PAUSE_VAR} = 1, FOREIGN_KEY_CHECKS = 0;
  IF p_lock_timeout > 0 THEN  -- a lock a leaked transaction holds: fail, not hang
    SET SESSION lock_wait_timeout = p_lock_timeout,
        innodb_lock_wait_timeout = p_lock_timeout;
  END IF;
  START TRANSACTION;
  OPEN v_cur;
  tables: LOOP
    FETCH v_cur INTO v_tbl;
    IF v_done THEN
      LEAVE tables;
    END IF;
    IF INSTR(p_skip, CONCAT(X'00', v_tbl, X'00')) > 0 THEN
      ITERATE tables;
    END IF;
    {dml_case}
  END LOOP;
  CLOSE v_cur;
  SET v_late = v_ddl <> '' OR v_bg <> '';
  IF NOT v_late THEN
    DELETE FROM {marks} WHERE `id` <= v_max;
  END IF;
  COMMIT;
  SET FOREIGN_KEY_CHECKS = v_fk, {_PAUSE_VAR} = NULL;

  IF v_ddl <> '' THEN
    CALL {_ident(RESET_PROCEDURE)}(v_ddl);
  END IF;
  SET SESSION lock_wait_timeout = v_lwt, innodb_lock_wait_timeout = v_ilwt;
  IF v_bg <> '' THEN
    -- the caller locks these tables and runs the ALTERs on a second connection
    SELECT 'deferred' AS status, CONCAT('[', SUBSTRING(v_out, 2), ']') AS tables,
           v_bg AS ddl, SUBSTRING(v_lock, 3) AS locks, v_max AS upto;
    LEAVE proc;
  END IF;
  IF v_late THEN
    DELETE FROM {marks} WHERE `id` <= v_max;
  END IF;
  SELECT 'ok' AS status, CONCAT('[', SUBSTRING(v_out, 2), ']') AS tables,
         NULL AS ddl, NULL AS locks, NULL AS upto;
END proc
"""
    return [reset, rewind]


# ------------------------------------------------------------------ schema copy


def _row_counts(
    conn: Connection, names: Sequence[str], schema: str | None = None
) -> dict[str, int]:
    """Row counts of ``names`` (in ``schema`` or the current database), one query per 200."""
    prefix = f"{_ident(schema)}." if schema is not None else ""
    counts: dict[str, int] = {}
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        sql = " UNION ALL ".join(
            f"SELECT {i}, COUNT(*) FROM {prefix}{_ident(n)}" for i, n in enumerate(chunk)
        )
        for i, count in _sql(conn, sql):
            counts[chunk[int(i)]] = int(count)
    return counts


def _copy_schema(conn: Connection, source: str) -> None:
    """Copy tables (with rows and counters), views, triggers and routines of ``source``
    into the connected (new, empty) database."""
    src = _ident(source)
    mode = _sql(conn, "SELECT @@SESSION.sql_mode").scalar()
    _sql(conn, "SET FOREIGN_KEY_CHECKS = 0")
    try:
        objects = conn.execute(
            text(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :s ORDER BY TABLE_NAME"
            ),
            {"s": source},
        ).all()
        tables = [n for n, kind in objects if kind in ("BASE TABLE", "SYSTEM VERSIONED")]
        views = [n for n, kind in objects if kind == "VIEW"]
        columns: dict[str, list[str]] = {}
        for table, column, extra in conn.execute(
            text(
                "SELECT TABLE_NAME, COLUMN_NAME, COALESCE(EXTRA, '') "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :s "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ),
            {"s": source},
        ):
            flags = extra.upper()
            if "GENERATED" in flags and "DEFAULT_GENERATED" not in flags:
                continue
            if flags.startswith("ROW "):
                continue
            columns.setdefault(table, []).append(column)
        for table in tables:
            create = _sql(conn, f"SHOW CREATE TABLE {src}.{_ident(table)}").one()[1]
            _sql(conn, create)
        if tables:
            counts = _row_counts(conn, tables, source)
            for table in tables:
                if counts[table] and columns.get(table):
                    cols = ", ".join(_ident(c) for c in columns[table])
                    _sql(
                        conn,
                        f"INSERT INTO {_ident(table)} ({cols}) "
                        f"SELECT {cols} FROM {src}.{_ident(table)}",
                    )
        _copy_views(conn, source, views)
        # per table, in ACTION_ORDER: several triggers on one event keep their order
        triggers: dict[str, list[tuple[str, tuple[Any, ...] | None]]] = {}
        for name, timing, event, table, body, sql_mode in conn.execute(
            text(
                "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, "
                "ACTION_STATEMENT, SQL_MODE FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = :s ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
            ),
            {"s": source},
        ).all():
            triggers.setdefault(table, []).append(("SET SESSION sql_mode = %s", (sql_mode,)))
            triggers[table].append(
                (
                    f"CREATE TRIGGER {_ident(name)} {timing} {event} ON {_ident(table)} "
                    f"FOR EACH ROW {body}",
                    None,
                )
            )
        _run_batches(conn, list(triggers.values()))
        for name, kind in conn.execute(
            text(
                "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = :s ORDER BY ROUTINE_NAME"
            ),
            {"s": source},
        ).all():
            row = _sql(conn, f"SHOW CREATE {kind} {src}.{_ident(name)}").one()
            sql_mode, create = row[1], row[2]
            _sql(conn, "SET SESSION sql_mode = %s", (sql_mode,))
            _sql(conn, _DEFINER.sub("", create, count=1))
    finally:
        _sql(conn, "SET SESSION sql_mode = %s", (mode,))
        _sql(conn, "SET FOREIGN_KEY_CHECKS = 1")


def _copy_views(conn: Connection, source: str, views: Sequence[str]) -> None:
    """Create views in dependency order: retry the ones that name a view not made yet."""
    statements: Mapping[str, str] = {
        view: _DEFINER.sub(
            "",
            _sql(conn, f"SHOW CREATE VIEW {_ident(source)}.{_ident(view)}").one()[1],
            count=1,
        ).replace(f"{_ident(source)}.", "")
        for view in views
    }
    pending = dict(statements)
    while pending:
        failed: dict[str, str] = {}
        last: DBAPIError | None = None
        for view, statement in pending.items():
            try:
                _sql(conn, statement)
            except DBAPIError as exc:
                failed[view] = statement
                last = exc
        if len(failed) == len(pending) and last is not None:
            raise last
        pending = failed
