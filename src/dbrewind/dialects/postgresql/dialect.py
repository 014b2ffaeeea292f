"""The :class:`PostgreSQLDialect`: the :class:`Dialect` interface, each method short,
delegating to the package's modules (see the package docstring for the objects
it installs)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from sqlalchemy import NullPool, text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from ..._url import Backend, DatabaseURL
from ...exceptions import (
    ConfigurationError,
    ConnectionFailedError,
    DatabaseCreationError,
    DatabaseDropError,
    DbrewindError,
)
from ..base import (
    CONNECT_TIMEOUT,
    Capabilities,
    Dialect,
    Installation,
    LoadedColumn,
    Lock,
    LockWait,
    RewindResult,
    SandboxOps,
    SchemaInfo,
    ServerReport,
    server_connection,
)
from . import catalog, databases, errors, rewind, server, tracking
from ._sql import (
    _OBJECT_IN_USE,
    CREATED_COMMENT,
    TRACKING_SCHEMA,
    _driver_state,
    _ident,
    _lit,
    _run_script,
    _transaction,
)
from .sandbox import PostgreSQLSandboxOps

__all__ = ["PostgreSQLDialect"]


class PostgreSQLDialect(Dialect):
    """PostgreSQL 12+ (tested on 15): see the module docstring for the objects it installs."""

    name: ClassVar[Backend] = "postgresql"
    sandbox: ClassVar[SandboxOps] = PostgreSQLSandboxOps()
    url_scheme: ClassVar[str] = "postgresql+psycopg"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=True,
        statement_triggers=True,
        truncate_trigger=True,
        implicit_commits=False,
        server_side_rewind=True,
        deferrable_constraints=True,
        concurrent_writers=True,
    )

    #: Seconds ``create_database`` keeps retrying while the template is in use.
    template_wait = 5.0

    #: Leave ``session_replication_role = replica`` on the rewinding connection
    #: (see :meth:`rewind`); False sets it for each rewind statement only.
    keep_replica = True

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        super().__init__(schemas=schemas)
        self._churn: dict[str, int] = {}
        """Dead rows the rewinds left per table key since its last ``VACUUM``."""

    @property
    def user_schemas(self) -> tuple[str, ...]:
        """Schemas whose tables are the user's (``public`` unless told otherwise)."""
        return tuple(s for s in (self.schemas or ("public",)) if s != TRACKING_SCHEMA)

    def split_key(self, key: str) -> tuple[str | None, str]:
        """Keys are ``<schema>.<table>``, split after the longest tracked schema they start
        with: a schema's name may hold a ``.`` too."""
        for schema in sorted(self.user_schemas, key=len, reverse=True):
            if key.startswith(schema + "."):
                return schema, key[len(schema) + 1 :]
        schema, _, name = key.partition(".")
        return schema, name

    # ----------------------------------------------------------- introspection
    def inspect(self, conn: Connection) -> SchemaInfo:
        """Tables (``r``/``p``, never partitions, views or foreign tables) of the user schemas."""
        return catalog._inspect(conn, self.user_schemas)

    # ---------------------------------------------------------------- tracking
    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Replace any earlier installation; track ``schema``'s tables; capture the baseline.

        Runs in one transaction. The event trigger is created only when the
        role is a superuser; otherwise the rewind compares table lists itself.
        """
        superuser = catalog._is_superuser(conn)
        with _transaction(conn):
            facts = catalog._install_facts(conn, schema)
            script = tracking._install_script(schema, facts, self.user_schemas, superuser)
            _run_script(conn, script)

    def uninstall(self, conn: Connection) -> None:
        """Drop the ``dbrewind`` schema (its functions take the triggers on user tables along)."""
        with _transaction(conn):
            _run_script(conn, tracking._drop_script())

    def is_installed(self, conn: Connection) -> bool:
        """Whether every object of this version's installation exists.

        An installation an older dbrewind made (without the state or layer
        tables, say) counts as not installed, so it is installed again.
        """
        return bool(conn.execute(catalog._INSTALLED_SQL).scalar())

    def dirty_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables with a committed mark, sorted."""
        try:
            return [row[0] for row in conn.execute(catalog._DIRTY_SQL)]
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def tracked_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables in the installation's baseline."""
        try:
            return [row[0] for row in conn.execute(catalog._TRACKED_SQL)]
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def mark_dirty(self, conn: Connection, keys: Sequence[str]) -> None:
        """One ``INSERT`` into ``dbrewind.marks``, committed."""
        try:
            conn.execute(catalog._MARK_SQL, {"keys": list(keys)})
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def rewind(
        self,
        conn: Connection,
        *,
        truncate: frozenset[str] = frozenset(),
        reset_sequences: bool = True,
    ) -> RewindResult:
        """One ``SELECT`` of ``dbrewind.rewind(..)``: the whole rewind is one statement.

        With :attr:`keep_replica` the connection keeps
        ``session_replication_role = replica`` after the first rewind that
        had work to do (FK checks and user triggers off on it), which saves
        re-planning on every later rewind; the role is reset when the
        connection goes back to its pool. Give it dbrewind's own connection.

        A tracked table dropped and created again under its name gets its
        tracking back and is rewound (:attr:`RewindResult.recreated_tables`),
        or is reported in :attr:`RewindResult.dropped_tables` when its
        baseline rows no longer fit it (a column they need is gone, or
        changed type, or a new ``NOT NULL`` column has no default).
        """
        keep = self.keep_replica
        if keep:
            rewind._reset_role_on_checkin(conn)
        if self._receipt(conn):
            return RewindResult()  # nothing marked: one plain read, not the function
        result = self._call_rewinding(
            conn,
            rewind._REWIND_RAW,
            (sorted(truncate), reset_sequences, keep, self._lock_timeout_ms()),
        )
        if result.tables:
            self._vacuum_when_due(conn, result)
        return result

    def _vacuum_when_due(self, conn: Connection, result: RewindResult) -> None:
        """``VACUUM`` the tables whose rewinds left enough dead rows
        (:func:`dbrewind.dialects.postgresql.rewind._vacuum_when_due` says why)."""
        rewind._vacuum_when_due(conn, result, self._churn, self._parts)

    def _parts(self, key: str) -> tuple[str, str]:
        schema, name = self.split_key(key)
        return schema or "public", name

    def _lock_timeout_ms(self) -> str | None:
        if self.lock_timeout is None:
            return None
        return f"{max(1, round(self.lock_timeout * 1000))}ms"

    def _call_rewinding(
        self,
        conn: Connection,
        sql: str,
        params: tuple[object, ...],
        doing: str = "Rewinding",
    ) -> RewindResult:
        return rewind._call_rewinding(conn, sql, params, doing, self._translate)

    def sandbox_rollback_sql(self) -> str | None:
        """Put back every tracked sequence that moved (``setval`` outlives the rollback)."""
        return f"SELECT {TRACKING_SCHEMA}.reset_moved_sequences()"

    def quick_state(self, conn: Connection) -> tuple[bool, object] | None:
        """The receipt (:meth:`sandbox_receipt_sql`) on the driver's cursor: nothing is
        marked, and the event trigger that marks every DDL statement is on. The DDL
        value is a constant while nothing is marked, and None once something is: here
        DDL leaves a mark like a write, so a mark may be DDL."""
        clean = self._receipt(conn)
        return clean, "marks" if clean else None

    def _receipt(self, conn: Connection) -> bool:
        """Whether a rewind would find nothing to do, in one plain read (False when it
        cannot say: the full rewind then runs, and reports what is wrong)."""
        raw = conn.connection.dbapi_connection
        if raw is None:
            return False
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(catalog._RECEIPT_SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except conn.dialect.loaded_dbapi.Error:
            return False  # (the rewind's own call reports it, and a lost connection)
        return bool(row and row[0])

    def block_begin_sql(self, conn: Connection) -> str:
        """``SET LOCAL dbrewind.seen_<n> = '1'`` for every tracked table: the statement
        triggers see their table marked already for the transaction (utility
        statements with constants: no table is read in the block's round trip)."""
        from ._sql import _SEEN_PREFIX

        ords = [
            int(row[0]) for row in conn.exec_driver_sql(f"SELECT ord FROM {TRACKING_SCHEMA}.tables")
        ]
        return "; ".join(f"SET LOCAL {_SEEN_PREFIX}{n} = '1'" for n in sorted(ords))

    def sandbox_receipt_sql(self) -> str | None:
        """No mark (no tracked table written, no DDL), and the event trigger that marks DDL
        is on: :meth:`rewind` would return at once (catalog's ``_NO_DDL_SQL``, plus the
        marks of writes)."""
        return catalog._RECEIPT_SQL

    # ------------------------------------------------------------- lifecycle
    def installation(self, conn: Connection) -> Installation:
        """Two catalog queries: is every object there, then one query for all the rest.

        Tracked tables are found by their qualified names (``to_regclass``),
        never by the oids recorded at install: ``missing`` when no table has
        the name, ``untracked`` when the table of that name has no
        ``dbrewind_track`` trigger (it was dropped and created again);
        ``created`` are the tables of the user schemas that are not tracked.
        """
        try:
            if not conn.execute(catalog._INSTALLED_SQL).scalar():
                return Installation(installed=False)
            row = conn.execute(
                catalog._INSTALLATION_SQL, {"schemas": list(self.user_schemas)}
            ).one()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        keys, values, tracked, untracked, missing, created, dirty, depth = row
        return Installation(
            installed=True,
            state=dict(zip(keys, values, strict=True)),
            tracked=tuple(sorted(tracked)),
            untracked=tuple(sorted(untracked)),
            missing=tuple(sorted(missing)),
            created=tuple(sorted(created)),
            dirty=tuple(sorted(dirty)),
            depth=int(depth),
        )

    def write_state(self, conn: Connection, values: Mapping[str, str]) -> None:
        """One upsert into ``dbrewind.state``, committed."""
        try:
            conn.execute(
                catalog._STATE_SQL, {"keys": list(values), "values": list(values.values())}
            )
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def push_baseline(self, conn: Connection) -> tuple[str, ...]:
        """One ``SELECT`` of ``dbrewind.push_baseline()``, a single statement (all or nothing).

        Per dirty table, ``dbrewind.layers`` keeps its restore SQL and
        ``dbrewind.layer_sequences`` its sequence values at the new depth;
        its rows are copied into ``dbrewind."b_<n>_<depth>"`` (no copy when
        it is empty), which its restore SQL then reads; ``dbrewind.sequences``
        takes its sequences' current values; its marks are cleared.
        """
        try:
            keys = [
                row[0]
                for row in conn.execute(rewind._PUSH_SQL, {"lock_timeout": self._lock_timeout_ms()})
            ]
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise self._translate(exc, conn, "Pushing a baseline layer onto") from exc
        return tuple(sorted(keys))

    def pop_baseline(
        self, conn: Connection, depth: int, *, reset_sequences: bool = True
    ) -> RewindResult:
        """One ``SELECT`` of ``dbrewind.pop_baseline(depth)``: the layers go and the rewind
        runs in the same statement (all or nothing)."""
        if depth < 0:
            raise ConfigurationError(
                f"pop_baseline(depth={depth}) on "
                f"{conn.engine.url.render_as_string(hide_password=True)}: the "
                "depth is a layer number, 0 (the installation's baseline) or more."
            )
        return self._call_rewinding(
            conn,
            rewind._POP_RAW,
            (depth, [], reset_sequences, self._lock_timeout_ms()),
            "Popping baseline layers of",
        )

    def _translate(
        self, exc: BaseException, conn: Connection, doing: str = "Rewinding"
    ) -> DbrewindError:
        """A dbrewind error for a SQLAlchemy ``DBAPIError`` or a bare driver error.

        ``doing`` starts the sentence of a lock timeout (e.g. "Pushing a baseline layer onto").
        """
        return errors._translate(exc, conn, doing, self.lock_timeout)

    # ------------------------------------------------------------- connecting
    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """asyncpg's SQLSTATE when it has one; else libpq's message (psycopg, psycopg2 and
        asyncpg's own connection errors carry no code), then the base's OS errors."""
        return errors._connect_failure(error) or super().connect_failure(error)

    # ---------------------------------------------------------------- databases
    def _server(self, url: DatabaseURL, application_name: str = "dbrewind") -> Engine:
        from ..engines import make_engine

        return make_engine(
            url.with_database("postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"application_name": application_name},
        )

    def _server_connection(
        self, url: DatabaseURL, application_name: str = "dbrewind"
    ) -> AbstractContextManager[Connection]:
        server = "PostgreSQL server (through its 'postgres' database)"
        return server_connection(self._server(url, application_name), server, url)

    # -------------------------------------------------------------------- locks
    def acquire_lock(self, url: DatabaseURL, purpose: str, *, wait: float) -> Lock | None:
        """``pg_try_advisory_lock(ns, key)`` on a connection of its own to ``postgres``.

        ``ns`` is dbrewind's constant, ``key`` a stable 31-bit hash of
        ``purpose:database``. The connection's ``application_name`` is
        ``dbrewind lock <pid>@<host>`` (what :meth:`lock_holder` shows); it is
        detached from any pool and held until :meth:`Lock.release`, or until
        the process dies and the server ends its session. Tries every
        50 ms until ``wait`` seconds have passed.
        """
        return databases._acquire_lock(self._server_connection, url, purpose, wait)

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """The session holding the lock, from ``pg_locks`` and ``pg_stat_activity``.

        E.g. ``"pid 4242 on 10.0.0.5, dbrewind lock 4242@ci-3"`` (``on a local
        socket`` for a Unix-socket session); a role that may not see another
        role's sessions gets what it may see, at least ``"pid 4242"``.
        """
        return databases._lock_holder(self._server_connection, url, purpose)

    def end_open_transactions(self, conn: Connection) -> list[str]:
        """``pg_terminate_backend`` for each other session of this database inside a transaction."""
        ended = []
        for pid, state, seconds, query in conn.execute(errors._OPEN_TRANSACTIONS_SQL).all():
            if conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                ended.append(
                    f"pid {pid}, {state or 'unknown state'} for {seconds} s, "
                    f"last statement: {query!r}"
                )
        return ended

    def lock_waits(self, conn: Connection, session: int) -> list[LockWait]:
        """Sessions of this database waiting on a lock ``session`` holds (``pg_blocking_pids``)."""
        rows = conn.execute(errors._LOCK_WAITS_SQL, {"pid": session}).all()
        return [LockWait(int(pid), query, float(seconds)) for pid, query, seconds in rows]

    def cancel_statement(self, conn: Connection, session: int) -> None:
        """``pg_cancel_backend``: the statement fails with "canceling statement due to user
        request"; the session stays."""
        conn.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": session})

    def columns_stamp(self, conn: Connection) -> str | None:
        """Count and hash sum of the user schemas' table columns (``pg_attribute``).

        None, without reading the catalog, when the ``dbrewind_ddl`` event
        trigger is on and left no ``!ddl`` mark: no ``ALTER TABLE`` ran since the
        last rewind (one index lookup instead of a scan of every column).
        """
        quiet = conn.exec_driver_sql(catalog._NO_DDL_SQL).scalar()
        if quiet:
            return None
        row = conn.execute(
            text(
                """
                SELECT count(*), coalesce(sum(hashtext(concat_ws(':', a.attrelid, a.attname,
                       a.attnum, a.atttypid, a.atttypmod, a.attnotnull))), 0)
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p')
                  AND a.attnum > 0 AND NOT a.attisdropped
                """
            ),
            {"schemas": list(self.user_schemas)},
        ).one()
        return f"{int(row[0])}:{int(row[1])}"

    def list_databases(self, url: DatabaseURL, prefix: str) -> list[str]:
        """Names in ``pg_database`` starting with ``prefix`` (compared literally), sorted."""
        with self._server_connection(url) as conn:
            names = [
                row[0] for row in conn.execute(databases._LIST_DATABASES_SQL, {"prefix": prefix})
            ]
        return sorted(names)

    def sessions(self, url: DatabaseURL) -> list[str]:
        """``pg_stat_activity`` of the database, read from ``postgres``: pid, role, client,
        application and state of each session (dbrewind's locks live on ``postgres``)."""
        with self._server_connection(url) as conn:
            rows = conn.execute(server._SESSIONS_SQL, {"name": url.database}).all()
        return [server._describe_session(tuple(row)) for row in rows]

    def server_report(self, conn: Connection) -> ServerReport:
        """The version, ``fsync``, ``synchronous_commit``, ``full_page_writes`` and a few
        more, and the strategy templates are cloned with (``WAL_LOG`` from 15)."""
        return server._server_report(conn)

    def database_exists(self, url: DatabaseURL) -> bool:
        """Look the name up in ``pg_database`` from the server's ``postgres`` database."""
        with self._server_connection(url) as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
        return found is not None

    def create_database(self, url: DatabaseURL, *, template: DatabaseURL | None = None) -> None:
        """``CREATE DATABASE`` (``TEMPLATE`` when cloning), then mark it as dbrewind's.

        A template must have no other sessions: dbrewind's own idle ones
        (``application_name`` starting with ``dbrewind``) are ended; others are
        waited for up to :attr:`template_wait` seconds.
        """
        name = _ident(url.database)
        sql = f"CREATE DATABASE {name}"
        if template is not None:
            sql += f" TEMPLATE {_ident(template.database)}"
        with self._server_connection(url) as conn:
            deadline = time.monotonic() + self.template_wait
            while True:
                if template is not None:
                    conn.execute(
                        text(
                            """
                            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                            WHERE datname = :name AND pid <> pg_backend_pid()
                              AND state = 'idle' AND application_name LIKE 'dbrewind%'
                            """
                        ),
                        {"name": template.database},
                    )
                try:
                    _run_script(conn, sql)
                    break
                except Exception as exc:
                    state = _driver_state(exc)
                    if state == _OBJECT_IN_USE and time.monotonic() < deadline:
                        time.sleep(0.1)
                        continue
                    raise self._create_error(url, template, exc) from exc
            _run_script(conn, f"COMMENT ON DATABASE {name} IS {_lit(CREATED_COMMENT)}")

    def _create_error(
        self, url: DatabaseURL, template: DatabaseURL | None, exc: Exception
    ) -> DatabaseCreationError:
        first = str(exc).strip().splitlines()[0]
        if template is not None and _driver_state(exc) == _OBJECT_IN_USE:
            return DatabaseCreationError(
                f"Cannot clone {template.database!r} into {url.database!r} on "
                f"{url.display()}: {first}. Close the other sessions on the template "
                f"(see pg_stat_activity WHERE datname = {template.database!r}) and retry."
            )
        return DatabaseCreationError(
            f"Cannot create database {url.database!r} on {url.display()}: {first}"
        )

    def drop_database(self, url: DatabaseURL) -> None:
        """``DROP DATABASE IF EXISTS .. WITH (FORCE)``: other sessions are ended."""
        with self._server_connection(url) as conn:
            try:
                _run_script(conn, f"DROP DATABASE IF EXISTS {_ident(url.database)} WITH (FORCE)")
            except Exception as exc:
                first = str(exc).strip().splitlines()[0]
                raise DatabaseDropError(
                    f"Cannot drop database {url.database!r} on {url.display()}: {first}. "
                    "The role needs to own the database (or be a superuser)."
                ) from exc

    def created_by_dbrewind(self, conn: Connection) -> bool:
        """Whether the database's comment is dbrewind's creation mark."""
        comment = conn.execute(
            text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            )
        ).scalar()
        return comment == CREATED_COMMENT

    def connect_params_url(self, database: str, params: Mapping[str, Any]) -> URL:
        """A ``database`` that is a connection URI (libpq takes one as the name) is the URL."""
        if database.startswith(("postgresql://", "postgres://")):
            return make_url(database).set(drivername=self.url_scheme)
        return super().connect_params_url(database, params)

    def identity_override(self) -> str:
        """``OVERRIDING SYSTEM VALUE``: a ``GENERATED ALWAYS`` column refuses values otherwise."""
        return " OVERRIDING SYSTEM VALUE"

    def advance_sequences(
        self, conn: Connection, table_sql: str, columns: Sequence[LoadedColumn]
    ) -> None:
        """``setval`` each integer column's sequence (identity or ``nextval`` default)
        to the table's largest value, so the next generated one does not collide."""
        for column in columns:
            info = column.info
            if not isinstance(info["type"], sqltypes.Integer):
                continue
            if not info.get("identity") and "nextval(" not in str(info.get("default") or ""):
                continue  # no sequence behind this column
            col_sql = column.sql
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:table, :column), "
                    f"COALESCE(MAX({col_sql}), 1), MAX({col_sql}) IS NOT NULL) FROM {table_sql}"
                ),
                {"table": table_sql.replace("\\:", ":"), "column": column.name},
            )

    def connect_defaults(self, driver: str) -> dict[str, object]:
        """libpq waits forever for a server that never answers, asyncpg 60 s: 10 s,
        unless the URL says."""
        if driver == "asyncpg":
            return {"timeout": CONNECT_TIMEOUT}
        if driver in ("psycopg", "psycopg2", "psycopg_async"):
            return {"connect_timeout": CONNECT_TIMEOUT}
        return {}

    def open_connection(
        self,
        driver: str,
        connect: Callable[..., Any],
        cargs: Sequence[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """asyncpg takes ``timeout`` and ``command_timeout`` as numbers, and SQLAlchemy
        hands it the URL's text (``?timeout=2``): they are read as seconds here."""
        if driver == "asyncpg":
            cparams = {**cparams}
            for option in databases._ASYNCPG_SECONDS:
                if isinstance(cparams.get(option), str):
                    cparams[option] = databases._seconds(option, cparams[option])
        return connect(*cargs, **cparams)

    def driver_socket(self, dbapi_connection: Any) -> int | None:
        """psycopg's ``pgconn.socket``, psycopg2's ``fileno()``; asyncpg's transport's,
        unless asyncpg knows it is closed (its event loop reads the socket)."""
        conn = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
        try:
            pgconn = getattr(conn, "pgconn", None)
            if pgconn is not None:
                return int(pgconn.socket)
            is_closed = getattr(conn, "is_closed", None)
            if callable(is_closed):
                transport = getattr(conn, "_transport", None)
                if is_closed() or transport is None:
                    return None
                return int(transport.get_extra_info("socket").fileno())
            fileno = getattr(conn, "fileno", None)
            return int(fileno()) if callable(fileno) else None
        except Exception:  # closed, or a driver of another shape: the ping finds out
            return None

    def connected_database(self, conn: Connection) -> str:
        """``current_database()``: a ``dbname`` option or a proxy may differ from the URL."""
        return str(conn.exec_driver_sql("SELECT current_database()").scalar_one())

    def mark_created(self, conn: Connection) -> None:
        """``COMMENT ON DATABASE <current> IS 'dbrewind test database'``."""
        name = conn.execute(text("SELECT current_database()")).scalar_one()
        _run_script(conn, f"COMMENT ON DATABASE {_ident(name)} IS {_lit(CREATED_COMMENT)}")
