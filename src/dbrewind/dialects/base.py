"""The one small interface every database module implements.

A dialect knows one database's SQL: how to list the user's tables and foreign
keys, how to install change tracking and capture the baseline, how to rewind
the dirty tables, and how to create, clone and drop databases.

Conventions every implementation follows:

* Methods that take a :class:`~sqlalchemy.engine.Connection` receive it in
  ``AUTOCOMMIT`` mode and manage their own transactions (``BEGIN``/``COMMIT``
  statements, or one server-side routine that runs as a single statement),
  because the cheapest number of round trips differs per database.
* Every identifier in generated SQL is quoted with :func:`quote`; mixed case,
  reserved words, spaces and names at the length limit all work.
* Tracking objects never take a generic name in the user's namespace:
  PostgreSQL keeps them in the ``dbrewind`` schema; MySQL and SQLite use a
  ``dbrewind_`` prefix, shortened with a hash to stay within identifier limits.
* ``install`` is idempotent: it replaces whatever an earlier (possibly
  crashed) installation left behind, and never captures a baseline from
  marked-dirty data without the caller's say (the caller rewinds first).
"""

from __future__ import annotations

import errno
import hashlib
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError

from .._url import Backend, DatabaseURL
from ..exceptions import ConnectionFailedError, ServerUnreachableError

__all__ = [
    "Capabilities",
    "Dialect",
    "ForeignKey",
    "Installation",
    "LoadedColumn",
    "Lock",
    "LockWait",
    "OuterTransaction",
    "RewindResult",
    "SandboxOps",
    "SchemaInfo",
    "ServerReport",
    "Table",
    "quote",
    "server_connection",
    "short_name",
]


CONNECT_TIMEOUT = 10
"""Seconds a connect waits for the server by default (the URL's own timeout wins)."""

_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ENOENT}
)
"""An OS error while connecting that means nothing answers there (ENOENT: no Unix socket)."""


@dataclass(frozen=True)
class Installation:
    """What dbrewind's tracking in a database covers, against the database as it is now.

    Tables are compared by name (never by OID or internal id): a table that was
    dropped and created again under its name is :attr:`untracked`, not gone.
    """

    installed: bool
    """Tracking objects (marks, baseline, rewind routine) are present."""
    state: Mapping[str, str] = field(default_factory=dict)
    """Key/value state recorded with the installation (:meth:`Dialect.write_state`)."""
    tracked: tuple[str, ...] = ()
    """Keys of the tables in the installation's baseline, sorted."""
    untracked: tuple[str, ...] = ()
    """Tracked keys whose table exists by name but lost its tracking triggers
    (it was dropped and created again), sorted."""
    missing: tuple[str, ...] = ()
    """Tracked keys for which no table of that name exists any more, sorted."""
    created: tuple[str, ...] = ()
    """User tables that exist but are not tracked (created after the install), sorted."""
    dirty: tuple[str, ...] = ()
    """Tracked tables with committed writes since the last rewind or push, sorted
    (on MySQL/MariaDB with the tables their FK cascades reach)."""
    depth: int = 0
    """Baseline layers pushed (:meth:`Dialect.push_baseline`) above the install's own."""

    @property
    def intact(self) -> bool:
        """Installed, and it covers exactly the user tables there are, each still tracked."""
        return self.installed and not (self.untracked or self.missing or self.created)


class Lock(ABC):
    """A server-wide named lock held on a connection (or file) of its own.

    It is released by :meth:`release` or by the death of the process that holds
    it (the server drops the session; the kernel drops the file lock), so a
    crashed run never leaves it behind.
    """

    name: str

    @abstractmethod
    def release(self) -> None:
        """Release the lock and close what holds it; idempotent."""


@dataclass(frozen=True)
class Capabilities:
    """What a database can do, for choosing strategies and skipping tests by feature."""

    transactional_ddl: bool
    """DDL (``CREATE TABLE``) can be rolled back."""
    statement_triggers: bool
    """Triggers can fire once per statement (else once per row)."""
    truncate_trigger: bool
    """``TRUNCATE`` fires a trigger (so it is tracked)."""
    implicit_commits: bool
    """Some statements (DDL, ``TRUNCATE``, ``LOCK TABLES``) commit the open transaction."""
    server_side_rewind: bool
    """The rewind runs as one server-side routine: a single round trip."""
    deferrable_constraints: bool
    """Constraints can be ``DEFERRABLE INITIALLY DEFERRED`` (checked at commit)."""
    concurrent_writers: bool
    """Two connections can hold write transactions at once."""
    savepoints: bool = True
    select_for_update: bool = True
    returning: bool = True


@dataclass(frozen=True)
class Table:
    """One user table, as the tracking and rewind code needs it."""

    key: str
    """Identity used in marks and results: ``schema.name`` on PostgreSQL, ``name`` elsewhere."""
    name: str
    schema: str | None = None
    columns: tuple[str, ...] = ()
    """Columns a baseline restore inserts, in table order (generated columns left out)."""
    identity_always: bool = False
    """PostgreSQL: a ``GENERATED ALWAYS`` identity column.

    A baseline restore then needs ``OVERRIDING SYSTEM VALUE``."""
    sequences: tuple[str, ...] = ()
    """PostgreSQL: qualified, quoted names of sequences the table's columns draw from."""
    auto_increment: bool = False
    """MySQL/SQLite: the table has an AUTO_INCREMENT / AUTOINCREMENT counter."""
    partitions: tuple[str, ...] = ()
    """PostgreSQL: quoted qualified names of partitions (tracked, cleaned through the parent)."""


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from ``child`` to ``parent`` (table keys); self-references allowed."""

    child: str
    parent: str
    name: str = ""
    on_delete: str = "NO ACTION"


@dataclass(frozen=True)
class SchemaInfo:
    """The user's tables and the foreign-key graph between them."""

    tables: Mapping[str, Table]
    foreign_keys: tuple[ForeignKey, ...] = ()

    def referencing(self, key: str) -> set[str]:
        """Keys of tables with a foreign key to ``key`` (not counting ``key`` itself)."""
        return {fk.child for fk in self.foreign_keys if fk.parent == key and fk.child != key}

    def delete_order(self, keys: Iterable[str] | None = None) -> list[str]:
        """``keys`` ordered children first, so deleting in this order is FK-safe.

        Cycles (including self-references) are kept together; within a cycle
        the order is by name, and the caller must relax FK checks (or defer
        them) for the cycle to be deleted.
        """
        from .._graph import children_first

        wanted = set(self.tables if keys is None else keys)
        edges = [(fk.child, fk.parent) for fk in self.foreign_keys]
        return [k for k in children_first(sorted(self.tables), edges) if k in wanted]

    def insert_order(self, keys: Iterable[str] | None = None) -> list[str]:
        """``keys`` ordered parents first: FK-safe order for re-inserting rows."""
        return list(reversed(self.delete_order(keys)))


@dataclass
class RewindResult:
    """What one rewind did."""

    tables: tuple[str, ...] = ()
    """Keys of the tables that were dirty and were put back to the baseline."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows removed per table (``-1`` when truncated: the count is unknown)."""
    truncated: frozenset[str] = frozenset()
    created_tables: tuple[str, ...] = ()
    """Tables that exist now but not in the baseline (created by the test)."""
    dropped_tables: tuple[str, ...] = ()
    """Tables of the baseline that no longer exist (dropped by the test)."""
    recreated_tables: tuple[str, ...] = ()
    """Tables of the baseline that were dropped and created again under the same name:
    their tracking is back and their baseline rows were restored (they are in
    :attr:`tables` too)."""
    seconds: float = 0.0
    """Wall time the rewind took, filled in by :class:`dbrewind.Rewinder`."""

    @property
    def clean(self) -> bool:
        """True when nothing needed rewinding and no table appeared or vanished."""
        return not (self.tables or self.created_tables or self.dropped_tables)


LOCK_ADVICE = (
    "Usually a test left a connection open inside a transaction: commit or roll it back and "
    "close it in the test's teardown. Rewinder(lock_timeout=...) sets the limit."
)
"""The end of every :class:`~dbrewind.exceptions.LockTimeoutError` message."""


def describe_sessions(read: Callable[[], Sequence[str]]) -> str:
    """The other sessions with a transaction open, one description each from ``read``,
    as a sentence for a :class:`~dbrewind.exceptions.LockTimeoutError` message."""
    try:
        sessions = read()
    except Exception:  # the message is a courtesy; never mask the error it explains
        return ""
    if not sessions:
        return "No other session has a transaction open now."
    return f"Sessions with a transaction open on it: {'; '.join(sessions)}."


def describe_wait(seconds: float | None) -> str:
    """How long a rewind waited for a lock, for an error message."""
    if seconds is None:
        return "longer than the server's own lock timeout"
    return f"more than {seconds:g} s"


def quote(conn: Connection, name: str) -> str:
    """Quote one identifier for ``conn``'s database, always (not only when needed)."""
    return conn.dialect.identifier_preparer.quote_identifier(name)


def short_name(prefix: str, name: str, limit: int = 64) -> str:
    """A tracking-object name: ``prefix`` + a readable part of ``name`` + a hash, within ``limit``.

    The hash keeps names unique when long table names share a prefix.
    """
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    readable = "".join(ch if ch.isalnum() else "_" for ch in name.lower())
    room = limit - len(prefix) - len(digest) - 1
    return f"{prefix}{readable[: max(room, 0)]}_{digest}"


@contextmanager
def server_connection(engine: Engine, server: str, url: DatabaseURL) -> Iterator[Connection]:
    """A connection from a short-lived server-level ``engine``, which is disposed after.

    A failed connect becomes a :class:`~dbrewind.exceptions.ConnectionFailedError`
    naming ``server`` (e.g. "PostgreSQL server") and the URL, with what to check
    (:func:`dbrewind.dialects.engines.connect_error`); another refusal a :class:`DbrewindError`.
    """
    from .engines import connect_error

    try:
        try:
            conn = engine.connect()
        except Exception as exc:
            # an engine of dbrewind's names its own URL: name the server and the user's URL
            cause = exc.__cause__ if isinstance(exc, ConnectionFailedError) else exc
            failure = connect_error(url, cause or exc, server=server)
            if failure is not None:
                raise failure from getattr(exc, "orig", None) or exc
            if not isinstance(exc, OperationalError):
                raise
            first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            raise ConnectionFailedError(
                f"Cannot connect to the {server} of {url.display()}: {first}. Check that the "
                "server runs and that the URL's host, port and credentials are right."
            ) from exc
        with conn:
            yield conn
    finally:
        engine.dispose()


@dataclass(frozen=True)
class OuterTransaction:
    """How :meth:`SandboxOps.begin` opened a rollback sandbox's outer transaction."""

    explicit: bool
    """Opened by a statement (``BEGIN``), so a ``ROLLBACK`` statement ends it; else the
    driver opens it with the first statement and its ``rollback()`` ends it."""
    restore: Callable[[], None] | None = None
    """Puts back what opening it changed on the connection (SQLite's isolation level),
    before the connection goes back to its pool; None when nothing changed."""
    guarded: bool = False
    """A guard savepoint was set under everything the test does: the sandbox asks
    :meth:`SandboxOps.outer_lost` at the end whether it is still there."""


class SandboxOps:
    """What the rollback sandbox (:mod:`dbrewind.sandbox.state`) does differently per
    database, on the sandbox's one real DB-API connection.

    ``raw`` is that connection as SQLAlchemy's pool holds it (for asyncio drivers,
    SQLAlchemy's adapter) and ``driver`` the driver's own connection under it (the
    same object for sync drivers). ``run`` runs one statement on ``raw``. This
    base is right for a database where an error leaves the transaction usable
    and no statement commits implicitly; each dialect's subclass adds its own.
    One instance per dialect class (:attr:`Dialect.sandbox`), holding no state.
    """

    statement_guard: ClassVar[bool] = False
    """Whether a failed statement aborts the whole transaction (PostgreSQL), so a
    statement must run under a savepoint of its own to be undone alone."""
    identifier_quote: ClassVar[str] = '"'
    """The character that quotes an identifier (a savepoint's name)."""
    ended_because: ClassVar[str] = "the statement ended the transaction"
    """Why a statement that ended the outer transaction did, for the error message."""
    refused_because: ClassVar[str] = (
        "the database commits implicitly before and after such statements"
    )
    """Why a statement that would commit implicitly is refused, for the error message
    (only where :attr:`Capabilities.implicit_commits`)."""

    def quote(self, name: str) -> str:
        """``name`` quoted as an identifier, always."""
        q = self.identifier_quote
        return q + name.replace(q, q + q) + q

    def autocommit(self, raw: Any, driver: Any) -> bool:
        """Whether the connection was in autocommit mode (the engine's isolation level)."""
        value = getattr(raw, "autocommit", False)
        if not callable(value):
            return bool(value)
        for obj in (raw, driver):  # MySQL drivers: autocommit(value) sets, get_autocommit() reads
            getter = getattr(obj, "get_autocommit", None)
            if getter is not None:
                return bool(getter())
        return False

    def isolation_autocommit(self, level: Any) -> bool:
        """Whether the isolation level a connection was given means autocommit."""
        return str(level).upper().replace("_", " ") == "AUTOCOMMIT"

    def begin(self, raw: Any, run: Callable[[str], None]) -> OuterTransaction:
        """Open the outer transaction on ``raw``: with ``BEGIN`` when the connection is in
        autocommit mode, else the driver opens it with the first statement."""
        if getattr(raw, "autocommit", False):
            run("BEGIN")
            return OuterTransaction(explicit=True)
        return OuterTransaction(explicit=False)

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """A check that ``driver``'s connection is inside a transaction, from the
        driver's own state (no round trip); None when the driver cannot say."""
        return None

    #: ``(SAVEPOINT .., RELEASE SAVEPOINT ..)`` run around a statement that may commit
    #: and begin again unseen (:func:`dbrewind._sql.may_commit_unseen`) when the outer
    #: transaction has no guard savepoint: a failed release shows the commit.
    unseen_commit_check: ClassVar[tuple[str, str] | None] = None

    def outer_lost(self, run: Callable[[str], None]) -> bool:
        """Whether a round trip shows that the outer transaction ended although the
        probe saw it open; raises what the check raised when it failed otherwise.
        Here: no check, no round trip (False)."""
        return False

    def savepoint_missing(self, error: BaseException) -> bool:
        """Whether ``error`` says the savepoint it named does not exist because the
        transaction that held it ended."""
        return False

    def error_aborts(self, driver: Any, error: BaseException) -> bool:
        """Whether the failed statement's ``error`` left the transaction aborted: no
        statement runs until a rollback to a savepoint. Here: never."""
        return False

    def check_deferred(
        self,
        driver: Any,
        run: Callable[[str], None],
        before_rollback: str | None,
        then: str | None = None,
    ) -> tuple[BaseException | None, bool, Any]:
        """Check deferred constraints as ``COMMIT`` would, at the end of a sandbox that
        wrote, running ``before_rollback`` first when given.

        Returns the integrity error a ``COMMIT`` would raise (or None), whether the
        outer transaction was rolled back with the check, and, when it was and
        ``then`` was given, the value of the query ``then`` run after the rollback in
        the same round trip (else ``NotImplemented``). Here: nothing to check and
        nothing run.
        """
        return None, False, NotImplemented

    def rollback_with(self, driver: Any, then: str) -> Any:
        """Roll the outer transaction back (when one is open) and run the one-value query
        ``then`` in the same round trip; its value (None when ``then`` failed after
        the rollback). ``NotImplemented`` where the driver cannot send both at once:
        the sandbox then rolls back as usual. Here: never."""
        return NotImplemented

    def blocked_by_write_lock(self, error: BaseException) -> bool:
        """Whether ``error`` means another connection holds the database's one write
        lock (a database that allows one writer at a time). Here: never."""
        return False

    def session_id(self, driver: Any) -> int | None:
        """The server's id of ``driver``'s session (PostgreSQL's backend pid, MySQL's
        thread id), from the driver's own state (no round trip); None where there is
        no server or the driver cannot say."""
        return None


@dataclass(frozen=True)
class LockWait:
    """Another session's statement waiting for a lock a given session holds."""

    session: int
    """The waiting session's id on the server."""
    query: str
    """What it runs (cut to a few hundred characters)."""
    seconds: float
    """How long it has waited."""


@dataclass(frozen=True)
class ServerReport:
    """What the server a database lives on says of itself (``dbrewind doctor``)."""

    version: str
    """The server's name and version (SQLite: the library's)."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Settings that bear on how fast tests and dbrewind's work are, by name, as the
    server shows them."""
    notes: tuple[str, ...] = ()
    """Advice on those settings: what a throwaway test server could run with instead."""


@dataclass(frozen=True)
class LoadedColumn:
    """A column test data gave values for (:meth:`Dialect.advance_sequences`)."""

    name: str
    sql: str
    """The name quoted for a :func:`~sqlalchemy.text` statement."""
    info: Mapping[str, Any]
    """SQLAlchemy's inspector column info (``type``, ``default``, ``identity``)."""


class Dialect(ABC):
    """One database's SQL for dbrewind, for one :class:`~dbrewind.Rewinder`.

    Subclasses hold nothing beyond their options, except where a rewind leaves
    work running in the background (MySQL): :meth:`settle` waits for it and
    :meth:`close` releases what it holds.
    """

    name: ClassVar[Backend]
    capabilities: ClassVar[Capabilities]
    sandbox: ClassVar[SandboxOps]
    """How the rollback sandbox drives this database's connection."""
    name_limit: ClassVar[int] = 63
    """Longest database name the server accepts (SQLite: a file name, kept well below 255)."""
    sees_recreated_tables: ClassVar[bool] = True
    """Every :meth:`rewind` notices a tracked table that was dropped and created again, and
    tracks it again (PostgreSQL, SQLite). Where not (MySQL), :meth:`schema_stamp` tells
    when to look and :meth:`retrack` mends it."""
    cheap_counter_reset: ClassVar[bool] = True
    """Putting a dirty table's sequence / counter back costs about what its rows do
    (PostgreSQL ``setval``, SQLite's ``sqlite_sequence``), so ``reset_sequences="auto"``
    does it after every rewind. False where it is DDL (MySQL/MariaDB ``ALTER TABLE ..
    AUTO_INCREMENT``, 1.4-2.5 ms a table): ``auto`` then does it only for the tests that
    ask (see :class:`~dbrewind.Rewinder`)."""

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        #: PostgreSQL: schemas whose tables are the user's (default: ``public``).
        self.schemas = schemas
        #: Seconds a rewind waits for a lock another session holds before it raises
        #: :class:`~dbrewind.exceptions.LockTimeoutError` (None: no limit).
        self.lock_timeout: float | None = 10.0

    # ------------------------------------------------------------- connecting
    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """What a failed attempt to connect means, read from the driver's own ``error``.

        The kind of :class:`~dbrewind.exceptions.ConnectionFailedError` to raise
        instead, or None when ``error`` says nothing about the connection (it then
        propagates as it is). Called only by :func:`dbrewind.dialects.engines.connect_error`.
        This base reads the operating system's errors (refused, unknown host,
        timed out); each server dialect adds its driver's codes and messages.
        """
        if isinstance(error, (ConnectionRefusedError, socket.gaierror, TimeoutError)):
            return ServerUnreachableError
        if isinstance(error, OSError) and error.errno in _UNREACHABLE_ERRNOS:
            return ServerUnreachableError
        return None

    # ----------------------------------------------------------- introspection
    @abstractmethod
    def inspect(self, conn: Connection) -> SchemaInfo:
        """The user's tables (never views, never dbrewind's own), FKs and counters."""

    # ---------------------------------------------------------------- tracking
    @abstractmethod
    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Install tracking triggers, capture the baseline, create the rewind routine.

        Idempotent: replaces any earlier installation. The baseline is what
        the tables hold now (rows and counter values); marks start empty.
        """

    @abstractmethod
    def uninstall(self, conn: Connection) -> None:
        """Remove every tracking object (triggers, marks, baseline copies, routines)."""

    @abstractmethod
    def is_installed(self, conn: Connection) -> bool:
        """Whether tracking objects are present in this database."""

    @abstractmethod
    def dirty_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables marked dirty since the last rewind, sorted."""

    @abstractmethod
    def rewind(
        self,
        conn: Connection,
        *,
        truncate: frozenset[str] = frozenset(),
        reset_sequences: bool = True,
    ) -> RewindResult:
        """Put every dirty table back to the baseline and clear the marks.

        ``truncate`` names tables to empty with ``TRUNCATE`` rather than
        ``DELETE`` (the caller learns which tables are large). Sequences /
        counters of the dirty tables go back to their baseline values when
        ``reset_sequences``. When nothing is dirty this costs one round trip.
        """

    def quick_state(self, conn: Connection) -> tuple[bool, object] | None:
        """One cheap read for a caller that also compares schema stamps after a test:
        (nothing is marked, a value that moves whenever DDL may have run), or None where
        the dialect has no such value (then the caller looks at the stamps each time).

        Nothing marked and the same value as before a check that found everything as
        it should be: nothing was written, truncated, created, dropped or altered since
        (MySQL/MariaDB: the server's count of DDL statements).
        """
        return None

    def settle(self) -> None:  # noqa: B027 - optional hook, a no-op here
        """Wait for work a previous :meth:`rewind` left running; raise its error, if any.

        :class:`~dbrewind.Rewinder` calls this before each use of its
        connection. Nothing to wait for here; see the MySQL dialect.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op here
        """Finish background work (its errors are dropped) and release its connections."""

    def repair(self, engine: Engine, error: BaseException) -> str | None:
        """Put right a fault of the server that made one of dbrewind's statements fail.

        ``error`` is what dbrewind's own work on ``engine``'s database raised
        (its cause chain included). When it is the mark of a fault this
        dialect knows and can clear (MariaDB's table cache holding triggers a
        killed connection left half-read), clear it on a connection of
        ``engine``'s and say what was done; :meth:`dbrewind.Rewinder.call`
        then runs the work once more. None: nothing known, ``error`` stands.
        """
        return None

    def sandbox_rollback_sql(self) -> str | None:
        """SQL the rollback sandbox runs in its outer transaction just before rolling back.

        For state a rollback does not undo: PostgreSQL sequences advance even
        in a transaction that rolls back, so its dialect puts back every
        tracked sequence that moved from its baseline (``setval`` is not
        transactional and sticks). ``None`` when nothing is needed. The sandbox runs it only
        when the test wrote and tracking is installed (a Rewinder was given).
        """
        return None

    def block_begin_sql(self, conn: Connection) -> str:
        """Statements (``;``-separated, no parameters) a rollback block may send with its
        ``BEGIN``, in the same round trip, so that the tracking triggers do no work
        inside it: what the block writes is rolled back with it, marks included
        (PostgreSQL: every tracked table marked as seen for the transaction). Read
        once per database through ``conn``, dbrewind's own; empty when there is
        nothing to send (the triggers then mark as they always do)."""
        return ""

    def sandbox_receipt_sql(self) -> str | None:
        """A query the rollback sandbox runs right after its rollback, in the same round
        trip where the driver allows (:meth:`SandboxOps.rollback_with`): true when
        :meth:`rewind` would find nothing to do, so the safety net's check after a
        sandboxed test costs no round trip of its own. It must be true only when
        nothing outside the sandbox left the database dirty. ``None`` when the
        dialect has no such query (the check then runs as usual).
        """
        return None

    def restore_counters(self, conn: Connection) -> None:
        """Put back every tracked counter that moved without a mark (at the end of a run).

        A write that was rolled back marks nothing but may still have moved a
        counter: PostgreSQL sequences never roll back, and a MySQL/MariaDB
        insert uses up its ``AUTO_INCREMENT`` value. Per test that is left as
        it is (the sandbox's trade-off); once a run ends, the database goes back
        to its baseline counters too. By default: the :meth:`sandbox_rollback_sql`.
        """
        sql = self.sandbox_rollback_sql()
        if sql is not None:
            conn.exec_driver_sql(sql)

    @abstractmethod
    def tracked_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables the current installation tracks (its baseline's tables)."""

    @abstractmethod
    def mark_dirty(self, conn: Connection, keys: Sequence[str]) -> None:
        """Mark tracked tables dirty (committed), as a write to them would."""

    def split_key(self, key: str) -> tuple[str | None, str]:
        """The schema (``None``: the database's only one) and the table name of a table key."""
        return None, key

    def drop_table(self, conn: Connection, key: str) -> None:
        """``DROP TABLE`` the table ``key`` names (one a test created), whatever its name holds.

        Run on the driver without parameters: a ``:name`` in the name is no bind
        parameter, and the quoting's doubled ``%`` (format paramstyles) reaches the
        server as one.
        """
        schema, name = self.split_key(key)
        target = quote(conn, name)
        if schema is not None:
            target = f"{quote(conn, schema)}.{target}"
        conn.exec_driver_sql(f"DROP TABLE {target}")

    # ---------------------------------------------------------------- databases
    @abstractmethod
    def database_exists(self, url: DatabaseURL) -> bool:
        """Whether the database named by ``url`` exists (connects to the server, not to it)."""

    @abstractmethod
    def create_database(self, url: DatabaseURL, *, template: DatabaseURL | None = None) -> None:
        """Create the database, as a copy of ``template`` when given, marked as dbrewind's.

        PostgreSQL clones with ``CREATE DATABASE .. TEMPLATE``, MySQL copies
        the schema (tables, rows, triggers, routines), SQLite copies the file.
        """

    @abstractmethod
    def drop_database(self, url: DatabaseURL) -> None:
        """Drop the database if it exists (closing other sessions where needed)."""

    @abstractmethod
    def created_by_dbrewind(self, conn: Connection) -> bool:
        """Whether the connected database carries dbrewind's creation mark."""

    # --------------------------------------------------------------- test data
    def insert_defaults_sql(self, table_sql: str) -> str:
        """An INSERT of one row that takes every column's default (``table_sql`` quoted)."""
        return f"INSERT INTO {table_sql} DEFAULT VALUES"

    def identity_override(self) -> str:
        """What an INSERT giving values for an always-generated identity column needs
        between its column list and ``VALUES`` (``""``: nothing)."""
        return ""

    def advance_sequences(  # noqa: B027 - a hook most databases need nothing from
        self, conn: Connection, table_sql: str, columns: Sequence[LoadedColumn]
    ) -> None:
        """After rows were inserted into ``table_sql`` with explicit values for
        ``columns``, move the counters behind them past the largest value. Nothing
        here: MySQL and SQLite move their counters themselves."""

    def connect_defaults(self, driver: str) -> dict[str, object]:
        """Connect arguments dbrewind's engines use unless the URL's query sets them:
        a bounded wait for a server that does not answer, a lock wait for SQLite."""
        return {}

    def open_connection(
        self,
        driver: str,
        connect: Callable[..., Any],
        cargs: Sequence[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """Open one DB-API connection of dbrewind's engines: ``connect(*cargs, **cparams)``.

        ``driver`` is SQLAlchemy's name for it (``pymysql``, ``asyncpg``, ``pysqlite``).
        A dialect overrides this to bound a wait its driver leaves unbounded, to give
        the driver a URL option in the type it needs, or to check at once what the
        driver only finds out on the first statement. Called only by
        :func:`dbrewind.dialects.engines.translate_connect_errors`, whose caller turns what
        this raises into a :class:`~dbrewind.exceptions.ConnectionFailedError`.
        """
        return connect(*cargs, **cparams)

    def driver_socket(self, dbapi_connection: Any) -> int | None:
        """The file descriptor of the socket a synchronous DB-API connection of this
        database talks over, from the driver's own state; None where there is none
        (a file database) or the driver does not say. dbrewind's engines look there
        for a closed connection before they ping the server
        (:func:`dbrewind.dialects.engines.make_engine`)."""
        return None

    #: Whether connecting to a database that does not exist creates it (SQLite
    #: makes an empty file): then :meth:`database_exists` is asked first.
    connect_creates_database: ClassVar[bool] = False

    #: Whether a database is a file (SQLite) rather than a database on a server: no
    #: server closes a connection while it waits in a pool.
    databases_are_files: ClassVar[bool] = False

    #: Whether a schema is another database on the same server (MySQL, MariaDB:
    #: ``shop.orders`` is table ``orders`` of database ``shop``), which neither the
    #: safety guard nor the rewind of the connection's own database sees.
    schemas_are_databases: ClassVar[bool] = False

    #: The URL scheme, with the synchronous driver dbrewind uses for its own work, of
    #: the URLs :meth:`connect_params_url` builds.
    url_scheme: ClassVar[str] = ""

    def connect_params_url(self, database: str, params: Mapping[str, Any]) -> URL:
        """The URL of the database a driver's connect arguments reach, as peewee's
        database objects hold them: ``database`` (else the ``dbname`` or ``db``
        argument), ``user``, ``password`` (or ``passwd``), ``host`` and ``port``."""
        port = params.get("port")
        return URL.create(
            self.url_scheme,
            username=params.get("user"),
            password=params.get("password", params.get("passwd")),
            host=params.get("host"),
            port=int(port) if port is not None else None,
            database=database or params.get("dbname") or params.get("db"),
        )

    def base_name(self, url: DatabaseURL) -> str:
        """The name the lifecycle derives the names of ``url``'s templates and clones
        from: the database's name (SQLite: the file's name without its suffix)."""
        return url.database

    def sibling(self, url: DatabaseURL, name: str) -> DatabaseURL:
        """The database called ``name`` beside ``url``'s: on the same server, with the
        same credentials (SQLite: a file in the same directory, with the same suffix)."""
        return url.with_database(name)

    def identity(self, url: DatabaseURL) -> tuple[str, str, int | None, str]:
        """The full identity of the database ``url`` names: backend, host (default
        ``localhost``), port, name (SQLite: the resolved file)."""
        return (url.backend, url.url.host or "localhost", url.url.port, url.database)

    @abstractmethod
    def connected_database(self, conn: Connection) -> str:
        """The name of the database the connection actually reached, as the server
        reports it (SQLite: the main file's path, ``""`` in memory) — not the URL's
        text, which a proxy, a connection option or a driver default may override."""

    def reaches(self, url: DatabaseURL, reached: str) -> bool:
        """Whether ``reached`` (from :meth:`connected_database`) is the database ``url`` names."""
        return reached == url.database

    @abstractmethod
    def mark_created(self, conn: Connection) -> None:
        """Record on the connected database that dbrewind created it (and may write to it)."""

    # ------------------------------------------------------------- lifecycle
    # What the one lifecycle (dbrewind.provision) needs to trust nothing a
    # previous run left: read the installation by name, record state with it,
    # stack baselines for fixture scopes, and lease databases across processes.

    def installation(self, conn: Connection) -> Installation:
        """What is installed here and how it matches the database now, by table name.

        Read-only, a few catalog queries. ``Installation(installed=False)`` when
        there is no (complete) installation.
        """
        raise NotImplementedError

    def write_state(self, conn: Connection, values: Mapping[str, str]) -> None:
        """Record ``values`` (upserted by key) in the installation's state; committed.

        The state belongs to the installation: :meth:`install` starts it empty,
        :meth:`uninstall` removes it, and a clone made from a template carries
        the template's. Raises :class:`~dbrewind.exceptions.NotPreparedError`
        when tracking is not installed.
        """
        raise NotImplementedError

    def push_baseline(self, conn: Connection) -> tuple[str, ...]:
        """Make what the dirty tables hold now their baseline, one layer above the current.

        For rows a fixture of a wider scope committed: every dirty table's
        current rows and its sequence / counter values become its baseline;
        its previous baseline is kept at the new depth; its marks are cleared.
        Stored in the database (a crashed run's layers are found by the next
        one). Returns the keys captured, sorted; ``()`` when nothing was dirty,
        and then no layer is added (:attr:`Installation.depth` is unchanged).
        """
        raise NotImplementedError

    def pop_baseline(
        self, conn: Connection, depth: int, *, reset_sequences: bool = True
    ) -> RewindResult:
        """Drop the layers above ``depth`` and rewind to the baseline of layer ``depth``.

        Every table captured in a dropped layer gets the baseline it had at
        ``depth`` back (rows, sequences / counters), and every dirty table is
        rewound as :meth:`rewind` does; the result lists them all.
        ``0 <= depth <=`` the current depth; ``depth`` equal to the current one
        is a plain rewind.
        """
        raise NotImplementedError

    def acquire_lock(self, url: DatabaseURL, purpose: str, *, wait: float) -> Lock | None:
        """Take the lock named ``purpose`` for the database of ``url``, server-wide.

        PostgreSQL: an advisory lock on the server's maintenance database;
        MySQL/MariaDB: ``GET_LOCK``; SQLite: ``flock`` on a file beside the
        database file. Held on a connection (or file) of its own, so dbrewind's
        other connections may be closed, killed or reconnected meanwhile.
        ``wait``: seconds to wait for it (0: try once). ``None`` when another
        session holds it (and still does after ``wait``). Locks of the same
        ``purpose`` on two databases, and of two purposes on one, are independent.
        """
        raise NotImplementedError

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """Who holds the lock (e.g. ``"pid 4242 on 10.0.0.5, dbrewind 4242@ci-3"``), or None."""
        raise NotImplementedError

    def schema_stamp(self, conn: Connection) -> str | None:
        """A cheap stamp that changes when a table is dropped, created or recreated.

        Only where rewinds do not notice recreated tables themselves
        (:attr:`sees_recreated_tables` is False); None elsewhere, or when the
        server cannot say.
        """
        return None

    def end_open_transactions(self, conn: Connection) -> list[str]:
        """End the database's other sessions that have a transaction open; one description
        of each session ended (empty where the database cannot end another session).

        Only for a database dbrewind made and leases (a clone): every session on
        it is the run's own, and one left inside a transaction blocks the rewind.
        """
        return []

    def lock_waits(self, conn: Connection, session: int) -> list[LockWait]:
        """The statements of other sessions on ``conn``'s database that wait for a lock
        ``session`` holds; empty where the server cannot say (SQLite has no server)."""
        return []

    def cancel_statement(self, conn: Connection, session: int) -> None:  # noqa: B027
        """Cancel the statement ``session`` runs, leaving the session itself open (its
        client sees an error). Nothing here: a database without sessions to cancel."""

    def columns_stamp(self, conn: Connection) -> str | None:
        """A cheap stamp of the user tables' columns that changes when one is altered
        (a column added, dropped, renamed or retyped), for a test that committed DDL.

        Writing rows leaves it; other schema changes may move it too (it only
        says when to compare the schema in full). None when the database cannot
        say cheaply.
        """
        return None

    def retrack(self, conn: Connection, keys: Sequence[str]) -> RewindResult:
        """Give the tracked tables ``keys`` (dropped and created again under their names)
        their tracking back, and rewind them to their baseline. By default the rewind
        does both (see :attr:`sees_recreated_tables`)."""
        return self.rewind(conn)

    def list_databases(self, url: DatabaseURL, prefix: str) -> list[str]:
        """Names of the databases beside ``url``'s whose name starts with ``prefix``, sorted.

        SQLite: database file paths in the directory of ``url``'s file whose
        file name starts with ``prefix`` (companion and lock files left out).
        """
        raise NotImplementedError

    def sessions(self, url: DatabaseURL) -> list[str]:
        """The sessions connected to the database ``url`` names, one description each
        (who, from where, doing what), read from the server; dbrewind's server-level
        connections (its locks) are not among them. Empty here: a database without a
        server that lists its sessions (a SQLite file)."""
        return []

    def server_report(self, conn: Connection) -> ServerReport:
        """The server's version and the settings of it that bear on test speed, with
        advice on them; read-only, on ``conn`` (dbrewind's own)."""
        return ServerReport(version="")
