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
* Baseline layers (``push_baseline`` / ``pop_baseline``) live in the database:
  a push copies each dirty table into ``dbrewind_b<depth>_<name>``, keeps the
  table's previous ``dbrewind_tables`` row in ``dbrewind_layers`` and points
  ``dbrewind_tables`` at the new copy; a pop puts the rows of the layers above
  the target back. Both regenerate the two procedures from ``dbrewind_tables``
  (the procedures embed each table's copy, row count and counter as static
  branches), so the per-test rewind costs what it cost before. The steps are
  ordered so that a crash leaves a layer the next ``pop_baseline`` finds and
  finishes (see :meth:`MySQLDialect.pop_baseline`).
* Locks (``acquire_lock``) are ``GET_LOCK`` named
  ``dbrewind:<purpose>:<database>`` (hashed when longer than 64 characters or
  not lower case), held on a connection of their own to the server.

Objects, all named ``dbrewind_*`` (user tables with that prefix are ignored):

* ``dbrewind_i_*``, ``dbrewind_u_*``, ``dbrewind_d_*``: the three triggers on
  each tracked table;
* ``dbrewind_marks``: the append-only marks;
* ``dbrewind_tables``: each tracked table's current baseline (copy, row count,
  ``AUTO_INCREMENT`` value);
* ``dbrewind_cascade``: which tables FK cascades reach from which;
* ``dbrewind_signature``: the table list's signature at install (the rewind
  checks it; a regenerated procedure embeds the same one);
* ``dbrewind_state``: key/value state recorded with the installation
  (``write_state``);
* ``dbrewind_layers``: the baseline layers pushed above the install's own;
* ``dbrewind_b_*`` (the install's) and ``dbrewind_b<depth>_*`` (a layer's):
  copies of the baseline rows of tables that had rows;
* the procedures ``dbrewind_rewind`` and ``dbrewind_reset_counters``;
* ``dbrewind_meta`` (MySQL only, no schema comments): the creation mark of a
  database dbrewind created; it survives ``uninstall``.

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
* A table dropped and created again under its name *during* a test is not seen
  by the per-test rewind: the table list's signature is unchanged, and seeing
  that its triggers are gone would cost an ``information_schema.TRIGGERS`` read
  on every rewind (~8 ms for 100 tables, several times the whole check). Its
  writes are not marked from then on (a seeded one found empty is still
  refilled by the ``TRUNCATE`` probe). :meth:`MySQLDialect.installation`
  reports it (``untracked``), so the lifecycle reinstalls; within one run,
  prepare again after such a test.
* :attr:`Installation.dirty` is what the marks say, like ``dirty_tables``: a
  seeded table a ``TRUNCATE`` emptied is not in it (no trigger fired), but
  :meth:`MySQLDialect.push_baseline` probes for it and captures it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import math
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import NullPool, text
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError

from .._url import DatabaseURL
from ..exceptions import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DatabaseCreationError,
    DatabaseDropError,
    DatabaseNotFoundError,
    DbrewindError,
    LeaseError,
    LockTimeoutError,
    NotPreparedError,
    SchemaChangedError,
    ServerUnreachableError,
    WrongServerError,
)
from .base import (
    CONNECT_TIMEOUT,
    LOCK_ADVICE,
    Capabilities,
    Dialect,
    ForeignKey,
    Installation,
    Lock,
    OuterTransaction,
    RewindResult,
    SandboxOps,
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
STATE_TABLE = "dbrewind_state"
"""Key/value state of the installation (:meth:`MySQLDialect.write_state`)."""
LAYERS_TABLE = "dbrewind_layers"
"""Per pushed layer and table: the table's ``dbrewind_tables`` row before the push."""
SIGNATURE_TABLE = "dbrewind_signature"
"""One row: the table list's signature at install, which the rewind compares with."""
REWIND_PROCEDURE = "dbrewind_rewind"
RESET_PROCEDURE = "dbrewind_reset_counters"
"""Runs the DDL that puts ``AUTO_INCREMENT`` counters back (called by the rewind, or in the
background under ``LOCK TABLES``: see :class:`_CounterReset`)."""
CREATED_COMMENT = "dbrewind test database"
"""``CREATE DATABASE .. COMMENT`` text marking a database dbrewind created (MariaDB)."""

_PAUSE_VAR = "@dbrewind_paused"
_STATE_KEY_LENGTH = 255
_LOCK_NAME_LIMIT = 64
"""``GET_LOCK`` names: at most 64 characters on MySQL 8 (MariaDB takes longer ones)."""
_LOCK_MAX_WAIT = 31_536_000
"""A year: the longest ``GET_LOCK`` wait (MariaDB returns NULL for a negative one), and the
lock connection's ``wait_timeout``, so the server does not end an idle lease."""
_COPY_DEPTH = re.compile(r"dbrewind_b([0-9]*)_")
_TRIGGER_TAGS = ("i", "u", "d")
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


# Connecting: server (1xxx) and client (2xxx) error numbers, by what they mean.
_LOST_DURING_QUERY = 2013  # "Lost connection to MySQL server during query"
_CONNECT_CODES: dict[int, type[ConnectionFailedError]] = {
    1044: AuthenticationError,  # access denied for user to database
    1045: AuthenticationError,  # access denied for user (using password: YES/NO)
    1129: AuthenticationError,  # host blocked because of many connection errors
    1130: AuthenticationError,  # host is not allowed to connect
    1251: AuthenticationError,  # client does not support the authentication protocol
    1698: AuthenticationError,  # access denied (unix_socket / auth plugin)
    2059: AuthenticationError,  # authentication plugin cannot be loaded
    1049: DatabaseNotFoundError,  # unknown database
    2002: ServerUnreachableError,  # can't connect through the socket
    2003: ServerUnreachableError,  # can't connect to the server (refused, timed out)
    2005: ServerUnreachableError,  # unknown server host
    2007: WrongServerError,  # protocol mismatch
    2012: WrongServerError,  # error in server handshake
    2027: WrongServerError,  # malformed packet
}


def _errno(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


_ASYNC_DRIVERS = ("aiomysql", "asyncmy")
_DRIVERS = ("pymysql", "mysqldb", *_ASYNC_DRIVERS)


def _autocommit_engine(url: DatabaseURL) -> Engine:
    """A short-lived engine of dbrewind's own, for creating and dropping databases."""
    from .engines import make_engine

    return make_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


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


class _Baseline(NamedTuple):
    """One table's baseline, as a ``dbrewind_tables`` (or ``dbrewind_layers``) row holds it."""

    copy: str | None
    """The table holding the baseline rows; None when the baseline is empty."""
    rows: int
    counter: int | None
    """``AUTO_INCREMENT`` value; None for a table without a counter."""


def _copy_name(depth: int, key: str) -> str:
    """The baseline copy of table ``key`` at layer ``depth`` (0: the install's)."""
    return short_name(f"{PREFIX}b{depth or ''}_", key)


def _copy_sql(copy: str, table: Table) -> str:
    cols = ", ".join(_ident(c) for c in table.columns)
    return f"CREATE TABLE {_ident(copy)} ENGINE=InnoDB AS SELECT {cols} FROM {_ident(table.name)}"


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """One transaction on ``conn``, committed at the end, rolled back on an error.

    On dbrewind's ``AUTOCOMMIT`` connection with ``START TRANSACTION`` /
    ``COMMIT`` statements; on any other with the connection's own.
    """
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return
    _sql(conn, "START TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(DBAPIError):
            _sql(conn, "ROLLBACK")
        raise
    _sql(conn, "COMMIT")


def _lock_name(purpose: str, database: str) -> str:
    """``dbrewind:<purpose>:<database>``, hashed to fit ``GET_LOCK``'s 64 characters.

    Whether lock names compare without regard to case differs (MariaDB 10.11
    tells ``App`` from ``app``, though its manual says it does not), so a name
    that is not all lower case is hashed too: two locks on every server.
    """
    name = f"dbrewind:{purpose}:{database}"
    if len(name) <= _LOCK_NAME_LIMIT and name == name.lower():
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name.lower()[: _LOCK_NAME_LIMIT - len(digest) - 1]}:{digest}"


class _MySQLLock(Lock):
    """A ``GET_LOCK`` lock, held by a DB-API connection of its own (no pool)."""

    def __init__(self, name: str, raw: Any, holder: str) -> None:
        self.name = name
        self._raw = raw
        self._holder = holder

    def __repr__(self) -> str:
        state = "released" if self._raw is None else "held"
        return f"<MySQL lock {self.name!r} on {self._holder}, {state}>"

    def release(self) -> None:
        """``RELEASE_LOCK``, then close the connection (which would release it anyway)."""
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            with suppress(Exception):  # the session is gone: so is its lock
                cursor = raw.cursor()
                try:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
                    cursor.fetchall()
                finally:
                    cursor.close()
        finally:
            with suppress(Exception):
                raw.close()


_SANDBOX_GUARD = ("SAVEPOINT `dbrewind_guard`", "ROLLBACK TO SAVEPOINT `dbrewind_guard`")


class MySQLSandboxOps(SandboxOps):
    """The rollback sandbox on MySQL/MariaDB (PyMySQL, mysqlclient, aiomysql, asyncmy):
    some statements commit implicitly, and a guard savepoint shows the ones no check saw."""

    identifier_quote = "`"
    ended_because = "MySQL/MariaDB commits implicitly before and after some statements"
    refused_because = (
        "MySQL/MariaDB commits implicitly before and after DDL, TRUNCATE, LOCK TABLES and "
        "similar statements"
    )

    def begin(self, raw: Any, run: Callable[[str], None]) -> OuterTransaction:
        """``START TRANSACTION`` and the guard savepoint."""
        run("START TRANSACTION")
        # implicit commits that no check saw (a procedure's DDL) remove this savepoint
        run(_SANDBOX_GUARD[0])
        return OuterTransaction(explicit=True)

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """The server status flag the driver keeps (PyMySQL, aiomysql: ``server_status``)."""
        if hasattr(driver, "server_status"):
            return lambda: bool(driver.server_status & 1)  # SERVER_STATUS_IN_TRANS
        return None

    def outer_lost(self, run: Callable[[str], None]) -> bool:
        """Rolling back to the guard savepoint fails with error 1305 once an implicit
        commit removed it."""
        try:
            run(_SANDBOX_GUARD[1])
        except Exception as exc:
            if not self.savepoint_missing(exc):
                raise
            return True
        return False

    def savepoint_missing(self, error: BaseException) -> bool:
        """MySQL error 1305: the savepoint is gone (an implicit commit removed it)."""
        args: tuple[Any, ...] = getattr(error, "args", ())
        return bool(args) and args[0] == 1305


class MySQLDialect(Dialect):
    """MariaDB 10.11 and MySQL 8: tables of ``DATABASE()``, keys are table names."""

    name = "mysql"
    sandbox = MySQLSandboxOps()
    url_scheme = "mysql+pymysql"
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
    name_limit = 64  # MySQL and MariaDB database names: up to 64 characters
    sees_recreated_tables = False  # rewinds compare table names only: see schema_stamp

    #: Run the DDL that puts ``AUTO_INCREMENT`` counters back after :meth:`rewind`
    #: returns, on a second connection that holds ``LOCK TABLES .. WRITE`` on those
    #: tables until it is done (see :class:`_CounterReset`). False runs it inside
    #: the rewind's ``CALL``.
    background_counter_reset = True

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        super().__init__(schemas=schemas)
        self._counters = _CounterReset()
        self._stamp_pattern: str | None = None

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
        """Drop any earlier installation, capture the baseline, create triggers and procedures.

        The state (``dbrewind_state``) and the layers (``dbrewind_layers``) start empty.
        """
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
        name = "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        baseline = (
            "`baseline_copy` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, "
            "`baseline_rows` BIGINT NOT NULL, `auto_increment` BIGINT UNSIGNED NULL"
        )
        for statement in (
            f"CREATE TABLE {_ident(MARKS_TABLE)} ("
            f"`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, `tbl` {name}"
            ") ENGINE=InnoDB "
            "COMMENT='dbrewind change tracking; remove with: dbrewind uninstall URL'",
            f"CREATE TABLE {_ident(TABLES_TABLE)} (`tbl` {name} PRIMARY KEY, {baseline}) "
            "ENGINE=InnoDB",
            f"CREATE TABLE {_ident(CASCADE_TABLE)} (`parent` {name}, `child` {name}, "
            "PRIMARY KEY (`parent`, `child`)) ENGINE=InnoDB",
            f"CREATE TABLE {_ident(SIGNATURE_TABLE)} (`tables` BIGINT NOT NULL, "
            "`checksum` BIGINT NOT NULL) ENGINE=InnoDB",
            f"CREATE TABLE {_ident(STATE_TABLE)} ("
            f"`key` VARCHAR({_STATE_KEY_LENGTH}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
            "NOT NULL PRIMARY KEY, "
            "`value` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL) ENGINE=InnoDB",
            f"CREATE TABLE {_ident(LAYERS_TABLE)} (`depth` INT UNSIGNED NOT NULL, "
            f"`tbl` {name}, {baseline}, PRIMARY KEY (`depth`, `tbl`)) ENGINE=InnoDB",
        ):
            _sql(conn, statement)
        self._stats_expiry(conn)
        counts = self._row_counts(conn, [t.name for t in tables])
        counters = self._auto_increments(conn)
        rows: list[dict[str, Any]] = []
        for table in tables:
            copy = None
            if counts[table.name] > 0:
                copy = _copy_name(0, table.key)
                _sql(conn, _copy_sql(copy, table))
            counter = counters.get(table.name) if table.auto_increment else None
            rows.append({"t": table.key, "c": copy, "r": counts[table.name], "a": counter})
        if rows:
            conn.execute(
                text(
                    f"INSERT INTO {_ident(TABLES_TABLE)} "
                    "(`tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) "
                    "VALUES (:t, :c, :r, :a)"
                ),
                rows,
            )
        cascades = self._cascades(conn, schema)
        if cascades:
            conn.execute(
                text(f"INSERT INTO {_ident(CASCADE_TABLE)} (`parent`, `child`) VALUES (:p, :c)"),
                [{"p": p, "c": c} for p, c in cascades],
            )
        _run_batches(conn, [[(st, None) for st in _trigger_sql(t)] for t in tables])
        count, checksum = self._signature(conn)
        _sql(
            conn,
            f"INSERT INTO {_ident(SIGNATURE_TABLE)} (`tables`, `checksum`) VALUES (%s, %s)",
            (count, checksum),
        )
        self._create_procedures(conn, schema, replace=False)

    def _baseline(self, conn: Connection) -> dict[str, _Baseline]:
        """Each tracked table's current baseline, as ``dbrewind_tables`` holds it."""
        rows = _sql(
            conn,
            "SELECT `tbl`, `baseline_copy`, `baseline_rows`, `auto_increment` "
            f"FROM {_ident(TABLES_TABLE)}",
        ).all()
        return {
            tbl: _Baseline(copy, int(count), None if counter is None else int(counter))
            for tbl, copy, count, counter in rows
        }

    def _create_procedures(
        self,
        conn: Connection,
        schema: SchemaInfo,
        *,
        overrides: Mapping[str, _Baseline] | None = None,
        replace: bool = True,
    ) -> None:
        """(Re)create ``dbrewind_rewind`` and ``dbrewind_reset_counters`` from the database.

        The one code path for :meth:`install`, :meth:`push_baseline` and
        :meth:`pop_baseline`: each tracked table's plan (baseline copy, row
        count, counter) comes from ``dbrewind_tables`` with ``overrides``
        applied, its columns from ``schema`` (:meth:`inspect`), and the table
        list's signature from ``dbrewind_signature`` (the install's, so a table
        created since is still reported). ``replace``: MariaDB swaps each
        procedure in one statement (``CREATE OR REPLACE``); MySQL 8 has none,
        so it drops it first.
        """
        baseline = self._baseline(conn)
        baseline.update(overrides or {})
        self._require_tables(conn, baseline, schema, "the rewind procedure cannot be generated")
        plans = [
            _TablePlan(
                index=index,
                table=schema.tables[key],
                copy=baseline[key].copy,
                rows=baseline[key].rows,
                counter=baseline[key].counter,
            )
            for index, key in enumerate(sorted(baseline), start=1)
        ]
        row = _sql(conn, f"SELECT `tables`, `checksum` FROM {_ident(SIGNATURE_TABLE)}").one()
        mariadb = _is_mariadb(conn)
        statements = _procedure_sql(
            plans, int(row[0]), int(row[1]), mariadb=mariadb, replace=replace and mariadb
        )
        names = (RESET_PROCEDURE, REWIND_PROCEDURE)
        for procedure, statement in zip(names, statements, strict=True):
            if replace and not mariadb:
                _sql(conn, f"DROP PROCEDURE IF EXISTS {_ident(procedure)}")
            _sql(conn, statement)

    @staticmethod
    def _stats_expiry(conn: Connection) -> None:
        if not _is_mariadb(conn):
            # MySQL 8 caches information_schema.TABLES.AUTO_INCREMENT for a day by default
            _sql(conn, "SET SESSION information_schema_stats_expiry = 0")

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

    def schema_stamp(self, conn: Connection) -> str | None:
        """Count and sum of the InnoDB table ids of the database's tables.

        A dropped, created or recreated table changes it (so does a ``TRUNCATE``,
        which makes a new table), writing rows does not. One dictionary read,
        about 0.3 ms for 100 tables: cheap enough after a committing test, unlike
        ``information_schema.TRIGGERS`` (about 11 ms). None when the server does
        not show InnoDB's dictionary.
        """
        view = "INNODB_SYS_TABLES" if _is_mariadb(conn) else "INNODB_TABLES"
        if self._stamp_pattern is None:
            # InnoDB names tables "<database>/<table>", both in the file-name encoding
            # ("db'x" is "db@0027x"); "!" escapes LIKE's wildcards
            database = self._database_file_name(conn)
            self._stamp_pattern = "".join("!" + c if c in "!_%" else c for c in database) + "/%"
        pattern = self._stamp_pattern
        try:
            row = _sql(
                conn,
                f"SELECT COUNT(*), COALESCE(SUM(TABLE_ID), 0) FROM information_schema.{view} "
                "WHERE NAME LIKE %s ESCAPE '!'",
                (pattern,),
            ).one()
        except DBAPIError:
            return None
        return f"{int(row[0])}:{int(row[1])}"

    def end_open_transactions(self, conn: Connection) -> list[str]:
        """``KILL`` each other session whose default database is this one and that has an
        InnoDB transaction open (needs the PROCESS privilege to see them)."""
        ended = []
        try:
            rows = _sql(conn, _OPEN_TRANSACTIONS_SQL.replace("p.DB IS NULL OR ", "")).all()
            for thread, command, seconds, query in rows:
                _sql(conn, f"KILL {int(thread)}")
                ended.append(
                    f"id {thread}, {command or 'unknown state'}, transaction open for {seconds} s"
                    + (f", running: {query!r}" if query else "")
                )
        except DBAPIError:
            pass
        return ended

    def columns_stamp(self, conn: Connection) -> str | None:
        """Count and checksum of the database's columns in InnoDB's dictionary (one read,
        like :meth:`schema_stamp`: ``information_schema.COLUMNS`` is much slower)."""
        mariadb = _is_mariadb(conn)
        tables = "INNODB_SYS_TABLES" if mariadb else "INNODB_TABLES"
        columns = "INNODB_SYS_COLUMNS" if mariadb else "INNODB_COLUMNS"
        if self._stamp_pattern is None:
            self.schema_stamp(conn)
        try:
            row = _sql(
                conn,
                "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(':', c.TABLE_ID, c.NAME, c.POS, "
                f"c.MTYPE, c.PRTYPE, c.LEN))), 0) FROM information_schema.{columns} c "
                f"JOIN information_schema.{tables} t ON t.TABLE_ID = c.TABLE_ID "
                "WHERE t.NAME LIKE %s ESCAPE '!'",
                (self._stamp_pattern,),
            ).one()
        except DBAPIError:
            return None
        return f"{int(row[0])}:{int(row[1])}"

    def retrack(self, conn: Connection, keys: Sequence[str]) -> RewindResult:
        """Recreate the tracking triggers of ``keys``, then rewind them to their baseline."""
        if not keys:
            return RewindResult()
        schema = self.inspect(conn)
        batches: list[list[tuple[str, tuple[Any, ...] | None]]] = []
        for key in keys:
            table = schema.tables.get(key)
            if table is None:
                continue
            statements = [f"DROP TRIGGER IF EXISTS {_ident(n)}" for n in _trigger_names(key)]
            statements += _trigger_sql(table)
            batches.append([(statement, None) for statement in statements])
        _run_batches(conn, batches)
        self.mark_dirty(conn, list(keys))
        result = self.rewind(conn)
        result.recreated_tables = tuple(sorted(keys))
        return result

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
            errno == 1146 and PREFIX in str(exc.orig) and not _COPY_DEPTH.search(str(exc.orig))
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

    @classmethod
    def _database_file_name(cls, conn: Connection) -> str:
        """The database's name as the server spells it in file names (and InnoDB's
        dictionary): ASCII letters, digits and ``_`` as they are, the rest ``@xxxx``."""
        try:
            encoded = _sql(
                conn, "SELECT CAST(CONVERT(DATABASE() USING filename) AS BINARY)"
            ).scalar()
        except DBAPIError:  # a server without the filename character set
            return cls._database(conn)
        return bytes(encoded or b"").decode("ascii", "replace")

    @staticmethod
    def _database(conn: Connection) -> str:
        try:
            return str(_sql(conn, "SELECT DATABASE()").scalar() or "")
        except DBAPIError:  # pragma: no cover - the connection itself is broken
            return "?"

    # ------------------------------------------------------------- connecting
    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """The client or server error number (pymysql, mysqlclient, aiomysql, asyncmy all
        put it first in ``args``); else the driver's message, then the base's OS errors."""
        args = getattr(error, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        said = str(error).lower()
        if code == _LOST_DURING_QUERY:
            # at connect time: the port took the connection, but no server greeting came
            # (a MySQL server sends one at once; PostgreSQL waits for the client to speak)
            return WrongServerError
        kind = _CONNECT_CODES.get(code) if code is not None else None
        if kind is not None:
            return kind
        if "packet sequence number wrong" in said or "malformed packet" in said:
            return WrongServerError
        return super().connect_failure(error)

    def insert_defaults_sql(self, table_sql: str) -> str:
        """``INSERT INTO t () VALUES ()``: MySQL has no ``DEFAULT VALUES``."""
        return f"INSERT INTO {table_sql} () VALUES ()"

    def connect_defaults(self, driver: str) -> dict[str, object]:
        """A bounded wait for the TCP connect (aiomysql's default is 60 s): 10 s, unless
        the URL says; :meth:`open_connection` bounds the greeting the same."""
        return {"connect_timeout": CONNECT_TIMEOUT} if driver in _DRIVERS else {}

    def open_connection(
        self,
        driver: str,
        connect: Callable[..., Any],
        cargs: Sequence[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """The drivers' ``connect_timeout`` bounds only the TCP connect; the server's
        greeting is then awaited with no limit. A port where a server of another kind
        waits for the client to speak first (PostgreSQL does, until its 60 s
        ``authentication_timeout``) would hold the run that long: the whole handshake
        gets the URL's ``connect_timeout`` (default ``CONNECT_TIMEOUT`` seconds), and the
        connection's queries keep the URL's ``read_timeout`` (none unless it sets one)."""
        seconds = float(cparams.get("connect_timeout") or CONNECT_TIMEOUT)
        if driver == "pymysql" and "read_timeout" not in cparams:
            conn = connect(*cargs, **{**cparams, "read_timeout": seconds})
            # PyMySQL applies this attribute to the socket before each read
            conn._read_timeout = None
            return conn
        if driver in _ASYNC_DRIVERS and "async_creator_fn" not in cparams:
            opener = importlib.import_module(driver).connect

            async def bounded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await asyncio.wait_for(opener(*args, **kwargs), seconds)
                except TimeoutError:
                    raise TimeoutError(f"no server greeting within {seconds:g} s") from None

            return connect(*cargs, **{**cparams, "async_creator_fn": bounded})
        return connect(*cargs, **cparams)

    # ---------------------------------------------------------------- databases
    @staticmethod
    def _server(url: DatabaseURL) -> Engine:
        # an empty name makes the driver connect to no database
        return _autocommit_engine(url.with_database(""))

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
                    raise DatabaseCreationError(
                        f"Cannot create database {name!r} ({url.display()}): it already exists. "
                        "Drop it first (Rewinder.drop / prepare(recreate=True)) or use it as is."
                    ) from exc
                raise DatabaseCreationError(
                    f"Cannot create database {name!r} ({url.display()}): {_first_line(exc)}"
                ) from exc
        failure: Exception | None = None
        engine = _autocommit_engine(url)
        try:
            with engine.connect() as conn:
                if not _is_mariadb(conn):
                    self.mark_created(conn)
                if template is not None:
                    _copy_schema(conn, template.database)
        except (DBAPIError, ConnectionFailedError) as exc:
            failure = exc
        finally:
            engine.dispose()
        if failure is not None:
            self.drop_database(url)
            source = f"copying database {template.database!r} into" if template else "setting up"
            raise DatabaseCreationError(
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
                raise DatabaseDropError(
                    f"Cannot drop database {url.database!r} ({url.display()}): "
                    f"{_first_line(exc)}. Close the sessions that use it and retry."
                ) from exc

    def connected_database(self, conn: Connection) -> str:
        """``DATABASE()``: an ``init_command`` (``USE ..``) or a proxy may differ from the URL."""
        return str(conn.exec_driver_sql("SELECT DATABASE()").scalar() or "")

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

    # ------------------------------------------------------------- lifecycle
    def installation(self, conn: Connection) -> Installation:
        """What is installed and how it matches the database now, by table name: one query.

        One ``UNION ALL`` reads the catalog (tables with their type, ``dbrewind_``
        triggers and routines) and dbrewind's own tables (tracked tables,
        marks with the cascades they reach, state, layer depth); when one of
        those tables is missing the query fails, and that is the answer too
        (not installed). ``untracked``: a tracked table that exists but lacks
        one of its three triggers (dropped and created again); ``missing``: no
        base table of that name; ``created``: user base tables not tracked.
        """
        try:
            rows = _sql(conn, _INSTALLATION_SQL).all()
        except DBAPIError as exc:
            if _errno(exc) in _NOT_INSTALLED_ERRNOS:
                return Installation(installed=False)
            raise self._translate(exc, conn) from exc
        tables: set[str] = set()
        triggers: dict[str, set[str]] = {}
        routines: set[tuple[str, str]] = set()
        tracked: set[str] = set()
        dirty: set[str] = set()
        state: dict[str, str] = {}
        depth = 0
        for kind, name, detail, number in rows:
            if kind == "T" and detail == "BASE TABLE" and number:
                tables.add(name)
            elif kind == "G":
                triggers.setdefault(name, set()).add(detail)
            elif kind == "R":
                routines.add((name, detail))
            elif kind == "B":
                tracked.add(name)
            elif kind == "D":
                dirty.add(name)
            elif kind == "S":
                state[name] = detail
            elif kind == "L":
                depth = int(number or 0)
        if not {(REWIND_PROCEDURE, "PROCEDURE"), (RESET_PROCEDURE, "PROCEDURE")} <= routines:
            return Installation(installed=False)
        return Installation(
            installed=True,
            state=state,
            tracked=tuple(sorted(tracked)),
            untracked=tuple(
                sorted(
                    key
                    for key in tracked & tables
                    if not set(_trigger_names(key)) <= triggers.get(key, set())
                )
            ),
            missing=tuple(sorted(tracked - tables)),
            created=tuple(sorted(tables - tracked)),
            dirty=tuple(sorted(dirty)),
            depth=depth,
        )

    def write_state(self, conn: Connection, values: Mapping[str, str]) -> None:
        """One ``REPLACE INTO dbrewind_state`` of every pair: upserted together, committed."""
        items = sorted(values.items())
        for key, value in items:
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigurationError(
                    f"write_state({{{key!r}: {value!r}}}): keys and values are strings; "
                    "convert the value with str() or json.dumps()."
                )
            if not 0 < len(key) <= _STATE_KEY_LENGTH:
                raise ConfigurationError(
                    f"write_state: the key {key[:40]!r}{'...' if len(key) > 40 else ''} has "
                    f"{len(key)} characters; a state key has 1 to {_STATE_KEY_LENGTH}."
                )
        state = _ident(STATE_TABLE)
        try:
            if not items:  # nothing to write, but the installation must be there
                _sql(conn, f"SELECT 1 FROM {state} LIMIT 0").all()
                return
            placeholders = ", ".join(["(%s, %s)"] * len(items))
            params = tuple(part for item in items for part in item)
            _sql(conn, f"REPLACE INTO {state} (`key`, `value`) VALUES {placeholders}", params)
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def push_baseline(self, conn: Connection) -> tuple[str, ...]:
        """Make the dirty tables' current rows and counters their baseline, one layer up.

        The dirty tables are the marked ones, the tables their FK cascades
        reach, and seeded tables found empty (a ``TRUNCATE``, which fires no
        trigger). In this order, for layer ``d`` (the current depth + 1):

        1. drop copies of layers ``>= d`` a crashed push or pop left (DDL);
        2. copy each dirty table with rows into ``dbrewind_b<d>_<name>`` and read
           its row count and ``AUTO_INCREMENT`` value (DDL);
        3. one transaction: the tables' current ``dbrewind_tables`` rows go into
           ``dbrewind_layers`` at depth ``d``, ``dbrewind_tables`` points at the
           new copies, and the marks read in step 1 are deleted;
        4. regenerate the two procedures from ``dbrewind_tables`` (DDL).

        A crash before 3 commits leaves only unreferenced copies (the next push,
        pop or install drops them) and the tables still marked. A crash after
        it leaves layer ``d`` recorded with the procedures still at ``d - 1``:
        :attr:`Installation.depth` says ``d``, so the next run pops it, and
        :meth:`pop_baseline` regenerates the procedures before anything else.
        """
        self._counters.wait()
        try:
            return self._push(conn)
        except DBAPIError as exc:
            raise self._step_error(
                conn,
                exc,
                "Pushing a baseline layer",
                "No layer was added unless Installation.depth says so; the tables stay "
                "marked, and pop_baseline() or a new prepare puts everything back.",
            ) from exc

    def _push(self, conn: Connection) -> tuple[str, ...]:
        try:
            baseline = self._baseline(conn)
            marked = _sql(conn, _MARKED_SQL).all()
            depth = self._depth(conn)
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        upto = max((int(row[1]) for row in marked), default=None)
        dirty = {row[0] for row in marked if row[0] in baseline}
        schema = self.inspect(conn)
        self._require_tables(conn, baseline, schema, "no baseline layer can be pushed")
        seeded = sorted(k for k, b in baseline.items() if b.rows > 0 and k not in dirty)
        dirty.update(_empty_tables(conn, seeded))
        if not dirty:
            return ()
        keys = sorted(dirty)
        layer = depth + 1
        self._drop_copies(conn, above=depth)
        self._stats_expiry(conn)
        counts = _row_counts(conn, keys)
        counters = self._auto_increments(conn)
        captured: dict[str, _Baseline] = {}
        for key in keys:
            table = schema.tables[key]
            copy = None
            if counts[key] > 0:
                copy = _copy_name(layer, key)
                _sql(conn, _copy_sql(copy, table))
            counter = counters.get(key) if table.auto_increment else None
            captured[key] = _Baseline(copy, counts[key], counter)
        with _transaction(conn):
            _sql(
                conn,
                f"INSERT INTO {_ident(LAYERS_TABLE)} "
                "(`depth`, `tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s)"] * len(keys)),
                tuple(v for key in keys for v in (layer, key, *baseline[key])),
            )
            self._write_baseline(conn, captured)
            if upto is not None:
                _sql(conn, _CLEAR_MARKS_SQL, (upto,))
        self._create_procedures(conn, schema)
        return tuple(keys)

    def pop_baseline(
        self, conn: Connection, depth: int, *, reset_sequences: bool = True
    ) -> RewindResult:
        """Drop the layers above ``depth``, then rewind: every table they captured is dirty.

        For each table captured above ``depth`` the baseline to go back to is
        the row its lowest such layer saved (the highest layers' rows are
        superseded). In this order:

        1. mark those tables dirty (committed);
        2. regenerate the two procedures with those baselines (DDL);
        3. one transaction: ``dbrewind_tables`` gets those rows back and the
           layers above ``depth`` are deleted;
        4. drop the layers' copies (DDL), then :meth:`rewind`.

        The layers stay recorded until everything they need is in place, so a
        crash before 3 commits leaves :attr:`Installation.depth` unchanged and the
        next ``pop_baseline`` does it all again (each step is idempotent); a
        crash after it leaves unreferenced copies (dropped by the next push,
        pop or install) and marked tables (the next rewind restores them).
        MySQL 8 has no ``CREATE OR REPLACE PROCEDURE``: a crash between its
        ``DROP PROCEDURE`` and ``CREATE`` leaves the installation incomplete
        (``Installation.installed`` is false), to be installed again.
        """
        self._counters.wait()
        try:
            current = self._depth(conn)
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= current:
            raise ConfigurationError(
                f"pop_baseline(depth={depth!r}) on database {self._database(conn)!r}: "
                f"{current} layer(s) are pushed there, so give a depth from 0 to {current}."
            )
        if depth < current:
            try:
                self._pop(conn, depth)
            except DBAPIError as exc:
                raise self._step_error(
                    conn,
                    exc,
                    f"Popping the baseline layers above depth {depth}",
                    "The layers stay recorded until the pop is complete: call "
                    "pop_baseline() again, or prepare the database again.",
                ) from exc
        return self.rewind(conn, reset_sequences=reset_sequences)

    def _pop(self, conn: Connection, depth: int) -> None:
        rows = _sql(
            conn,
            "SELECT `tbl`, `baseline_copy`, `baseline_rows`, `auto_increment` "
            f"FROM {_ident(LAYERS_TABLE)} WHERE `depth` > %s ORDER BY `depth` DESC",
            (depth,),
        ).all()
        restored: dict[str, _Baseline] = {}
        for tbl, copy, count, counter in rows:  # the lowest layer's row is the last one
            restored[tbl] = _Baseline(copy, int(count), None if counter is None else int(counter))
        schema = self.inspect(conn)
        tracked = {**self._baseline(conn), **restored}
        self._require_tables(conn, tracked, schema, "the baseline layers cannot be popped")
        self.mark_dirty(conn, sorted(restored))
        self._create_procedures(conn, schema, overrides=restored)
        with _transaction(conn):
            self._write_baseline(conn, restored)
            _sql(conn, f"DELETE FROM {_ident(LAYERS_TABLE)} WHERE `depth` > %s", (depth,))
        self._drop_copies(conn, above=depth)

    def _depth(self, conn: Connection) -> int:
        """Layers pushed: the highest depth in ``dbrewind_layers`` (0 with none)."""
        sql = f"SELECT COALESCE(MAX(`depth`), 0) FROM {_ident(LAYERS_TABLE)}"
        return int(_sql(conn, sql).scalar_one())

    @staticmethod
    def _write_baseline(conn: Connection, baselines: Mapping[str, _Baseline]) -> None:
        """Set the ``dbrewind_tables`` rows of ``baselines`` (one statement)."""
        if not baselines:
            return
        keys = sorted(baselines)
        _sql(
            conn,
            f"REPLACE INTO {_ident(TABLES_TABLE)} "
            "(`tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) VALUES "
            + ", ".join(["(%s, %s, %s, %s)"] * len(keys)),
            tuple(v for key in keys for v in (key, *baselines[key])),
        )

    def _require_tables(
        self, conn: Connection, keys: Mapping[str, object], schema: SchemaInfo, so: str
    ) -> None:
        """Raise :class:`SchemaChangedError` when a table of ``keys`` is not in ``schema``."""
        gone = sorted(k for k in keys if k not in schema.tables)
        if gone:
            raise SchemaChangedError(
                f"Table(s) {', '.join(repr(k) for k in gone)} of the baseline no longer exist in "
                f"database {self._database(conn)!r}, so {so}. Create them again, or prepare "
                "the database again (Rewinder.prepare())."
            )

    @staticmethod
    def _drop_copies(conn: Connection, *, above: int) -> None:
        """Drop the baseline copies of every layer above ``above`` (referenced or left over)."""
        names = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'dbrewind\\_b%'"
                )
            )
        ]
        doomed = sorted(
            name
            for name in names
            if (match := _COPY_DEPTH.match(name)) and match[1] and int(match[1]) > above
        )
        if doomed:
            _sql(conn, f"DROP TABLE IF EXISTS {', '.join(_ident(n) for n in doomed)}")

    def _step_error(
        self, conn: Connection, exc: DBAPIError, doing: str, after: str
    ) -> DbrewindError:
        """A driver error of a push or pop: lock waits and missing tracking keep their type."""
        translated = self._translate(exc, conn)
        if isinstance(translated, NotPreparedError | LockTimeoutError):
            return translated
        return DbrewindError(
            f"{doing} in database {self._database(conn)!r} failed: {_first_line(exc)}. {after}"
        )

    # -------------------------------------------------------------------- locks
    def acquire_lock(self, url: DatabaseURL, purpose: str, *, wait: float) -> Lock | None:
        """``GET_LOCK('dbrewind:<purpose>:<database>', wait)`` on a server connection of its own.

        The connection (no database selected, out of any pool) stays open
        until :meth:`Lock.release`; its ``wait_timeout`` is raised to a year so
        the server does not end an idle lease. MariaDB waits fractions of a
        second; MySQL 8 whole ones (``wait`` rounded up; 0 tries once).
        """
        if (
            isinstance(wait, bool)
            or not isinstance(wait, int | float)
            or math.isnan(wait)
            or wait < 0
        ):
            raise ConfigurationError(
                f"acquire_lock({purpose!r}, wait={wait!r}) for {url.display()}: give the "
                "seconds to wait, 0 to try once."
            )
        name = _lock_name(purpose, url.database)
        raw, mariadb = self._lock_connection(url)
        seconds: float = min(float(wait), _LOCK_MAX_WAIT)
        if not mariadb:
            seconds = math.ceil(seconds)
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(f"SET SESSION wait_timeout = {_LOCK_MAX_WAIT}")
                cursor.execute("SELECT GET_LOCK(%s, %s)", (name, seconds))
                got = cursor.fetchone()[0]
            finally:
                cursor.close()
        except BaseException as exc:
            with suppress(Exception):
                raw.close()
            if isinstance(exc, Exception) and not isinstance(exc, DbrewindError):
                raise LeaseError(
                    f"Taking the lock {name!r} on the server of {url.display()} failed: "
                    f"{_first_line(exc)}. Check that the server runs and the URL's user "
                    "may connect."
                ) from exc
            raise
        if got == 1:
            return _MySQLLock(name, raw, url.display())
        with suppress(Exception):
            raw.close()
        if got is None:
            raise LeaseError(
                f"GET_LOCK({name!r}) on the server of {url.display()} returned NULL: the "
                "server refused it (its session was killed, or it ran out of memory). Retry."
            )
        return None

    def _lock_connection(self, url: DatabaseURL) -> tuple[Any, bool]:
        """A DB-API connection to the server (no database), detached from any pool,
        and whether the server is MariaDB."""
        engine = self._server(url)
        try:
            try:
                raw: Any = engine.raw_connection()
            except engine.dialect.loaded_dbapi.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConnectionFailedError(
                    f"Cannot connect to the MySQL/MariaDB server of {url.display()}: {first}. "
                    "Check that the server runs and that the URL's host, port and "
                    "credentials are right."
                ) from exc
            raw.detach()  # closed by Lock.release, never returned to a pool
            return raw, bool(getattr(engine.dialect, "is_mariadb", False))
        finally:
            engine.dispose()

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """``IS_USED_LOCK`` → the holder's connection id, with its user and client address
        from ``information_schema.PROCESSLIST`` and its process id where
        ``performance_schema`` has the driver's connection attributes."""
        name = _lock_name(purpose, url.database)
        with self._server_connection(url) as conn:
            row = conn.execute(
                text(
                    "SELECT l.id, p.USER, p.HOST FROM (SELECT IS_USED_LOCK(:n) AS id) l "
                    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id"
                ),
                {"n": name},
            ).one()
            if row[0] is None:
                return None
            holder = f"connection {int(row[0])}"
            if row[1] is not None:
                holder += f" of {row[1]} from {row[2]}"
            pid = None
            with suppress(DBAPIError):  # performance_schema may be off or not readable
                pid = conn.execute(
                    text(
                        "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs "
                        "WHERE PROCESSLIST_ID = :i AND ATTR_NAME = '_pid'"
                    ),
                    {"i": int(row[0])},
                ).scalar()
            return holder + (f", pid {pid}" if pid else "")

    def list_databases(self, url: DatabaseURL, prefix: str) -> list[str]:
        """``information_schema.SCHEMATA`` names starting with ``prefix`` (compared exactly,
        in Python: the catalog's collation ignores case and ``LIKE`` treats ``_`` as a wildcard)."""
        with self._server_connection(url) as conn:
            names = [
                row[0]
                for row in conn.execute(text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"))
            ]
        return sorted(name for name in names if name.startswith(prefix))


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


def _bin(column: str) -> str:
    """A catalog column as ``utf8mb4_bin``: one collation for every branch of a ``UNION``
    (the catalog's is utf8mb3, case-insensitive on MariaDB)."""
    return f"CONVERT({column} USING utf8mb4) COLLATE utf8mb4_bin"


_MARKED_SQL = (
    "SELECT x.`tbl`, MAX(x.`id`) FROM ("
    f"SELECT m.`tbl`, m.`id` FROM {_ident(MARKS_TABLE)} m UNION ALL "
    f"SELECT c.`child`, m.`id` FROM {_ident(CASCADE_TABLE)} c "
    f"JOIN {_ident(MARKS_TABLE)} m ON m.`tbl` = c.`parent`) x GROUP BY x.`tbl`"
)
"""Marked tables and the tables their cascades reach, each with its newest mark."""
_INSTALLATION_SQL = (
    f"SELECT 'T', {_bin('TABLE_NAME')}, {_bin('TABLE_TYPE')}, "
    "TABLE_NAME NOT LIKE 'dbrewind\\_%' "
    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
    f"UNION ALL SELECT 'G', {_bin('EVENT_OBJECT_TABLE')}, {_bin('TRIGGER_NAME')}, NULL "
    "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
    "AND TRIGGER_NAME LIKE 'dbrewind\\_%' "
    f"UNION ALL SELECT 'R', {_bin('ROUTINE_NAME')}, {_bin('ROUTINE_TYPE')}, NULL "
    "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() "
    "AND ROUTINE_NAME LIKE 'dbrewind\\_%' "
    f"UNION ALL SELECT 'B', `tbl`, NULL, NULL FROM {_ident(TABLES_TABLE)} "
    f"UNION ALL SELECT 'D', d.`tbl`, NULL, NULL FROM (SELECT m.`tbl` FROM {_ident(MARKS_TABLE)} m "
    f"UNION SELECT c.`child` FROM {_ident(CASCADE_TABLE)} c "
    f"JOIN {_ident(MARKS_TABLE)} m ON m.`tbl` = c.`parent`) d "
    f"UNION ALL SELECT 'S', `key`, `value`, NULL FROM {_ident(STATE_TABLE)} "
    f"UNION ALL SELECT 'L', NULL, NULL, MAX(`depth`) FROM {_ident(LAYERS_TABLE)} "
    f"UNION ALL SELECT 'X', NULL, NULL, COUNT(*) FROM {_ident(SIGNATURE_TABLE)}"
)
"""Everything :meth:`MySQLDialect.installation` reads, in one statement. A missing
tracking table fails it (error 1146): then nothing (complete) is installed."""
_NOT_INSTALLED_ERRNOS = {1054, 1146}  # unknown column (an older layout), no such table


def _empty_tables(conn: Connection, names: Sequence[str]) -> list[str]:
    """Which of ``names`` hold no rows: one non-locking ``EXISTS`` probe each, 200 a query."""
    empty: list[str] = []
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        probes = ", ".join(f"NOT EXISTS (SELECT 1 FROM {_ident(n)})" for n in chunk)
        row = _sql(conn, f"SELECT {probes}").one()
        empty.extend(n for n, hit in zip(chunk, row, strict=True) if hit)
    return empty


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


def _trigger_names(key: str) -> tuple[str, ...]:
    """The tracking triggers of table ``key``: after insert, update, delete."""
    return tuple(short_name(f"{PREFIX}{tag}_", key) for tag in _TRIGGER_TAGS)


def _trigger_sql(table: Table) -> list[str]:
    var = "@" + _ident(short_name(PREFIX + "v_", table.key))
    statements = []
    events = ("INSERT", "UPDATE", "DELETE")
    for event, trigger in zip(events, _trigger_names(table.key), strict=True):
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
    plans: Sequence[_TablePlan],
    count: int,
    checksum: int,
    *,
    mariadb: bool = True,
    replace: bool = False,
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
    changes. ``replace``: ``CREATE OR REPLACE`` (MariaDB only). Returns the
    counter-reset procedure first (the rewind procedure calls it).
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
    create = "CREATE OR REPLACE PROCEDURE" if replace else "CREATE PROCEDURE"
    reset = f"""
{create} {_ident(RESET_PROCEDURE)}(IN p_ddl LONGTEXT)
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
{create} {_ident(REWIND_PROCEDURE)}(
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
            _copy_counters(conn, source)
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


def _copy_counters(conn: Connection, source: str) -> None:
    """Set each copied table's ``AUTO_INCREMENT`` to the value it has in ``source``.

    InnoDB reserves counter values for an ``INSERT .. SELECT`` in batches, so a
    copy's counter can run ahead of the template's (a clone's first insert
    into a table with one row got id 3, not 2). ``ALTER TABLE .. AUTO_INCREMENT``
    puts it back (InnoDB never sets it below the largest id + 1); only tables
    whose counter differs pay for the DDL.
    """
    if not _is_mariadb(conn):
        # MySQL 8 caches information_schema.TABLES.AUTO_INCREMENT for a day by default
        _sql(conn, "SET SESSION information_schema_stats_expiry = 0")
    wanted: dict[str, int] = {}
    have: dict[str, int] = {}
    for here, table, counter in conn.execute(
        text(
            "SELECT TABLE_SCHEMA = DATABASE(), TABLE_NAME, AUTO_INCREMENT "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (:s, DATABASE()) "
            "AND AUTO_INCREMENT IS NOT NULL"
        ),
        {"s": source},
    ):
        (have if here else wanted)[table] = int(counter)
    for table in sorted(wanted):
        if table in have and have[table] != wanted[table]:
            _sql(conn, f"ALTER TABLE {_ident(table)} AUTO_INCREMENT = {wanted[table]}")


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
