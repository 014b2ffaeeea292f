"""The :class:`PostgreSQLDialect` (see the package docstring for the objects it installs)."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, ClassVar

from sqlalchemy import NullPool, event, text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from ..._url import Backend, DatabaseURL
from ...exceptions import (
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
from ..base import (
    CONNECT_TIMEOUT,
    LOCK_ADVICE,
    Capabilities,
    Dialect,
    ForeignKey,
    Installation,
    LoadedColumn,
    Lock,
    RewindResult,
    SandboxOps,
    SchemaInfo,
    Table,
    describe_sessions,
    describe_wait,
    server_connection,
)

__all__ = ["CREATED_COMMENT", "TRACKING_SCHEMA", "PostgreSQLDialect"]

TRACKING_SCHEMA = "dbrewind"
"""The schema that holds every tracking object."""

CREATED_COMMENT = "dbrewind test database"
"""``COMMENT ON DATABASE`` text marking a database dbrewind created."""

# Connecting: SQLSTATEs (asyncpg gives them), and libpq's / asyncpg's messages
# (lower case) when a connect fails before the server sent a code.
_AUTH_STATES = frozenset({"28000", "28P01"})  # invalid authorization / password
_NO_DATABASE_STATE = "3D000"  # invalid_catalog_name
_CONNECT_PHRASES: tuple[tuple[type[ConnectionFailedError], tuple[str, ...]], ...] = (
    (DatabaseNotFoundError, ('fatal:  database "',)),
    (
        AuthenticationError,
        (
            "password authentication failed",
            "authentication failed for user",
            "no pg_hba.conf entry",
            "no password supplied",
            'fatal:  role "',
        ),
    ),
    (
        WrongServerError,
        (
            "invalid response to ssl negotiation",
            "rejected ssl upgrade",
            "expected authentication request from server",
            "server closed the connection unexpectedly",
            "unexpected message from server",
        ),
    ),
    (
        ServerUnreachableError,
        (
            "connection refused",
            "timeout expired",
            "timed out",
            "could not translate host name",
            "failed to resolve host",
            "name or service not known",
            "no route to host",
            "network is unreachable",
            "no such file or directory",
            "the database system is starting up",
            "the database system is shutting down",
        ),
    ),
)

_TRIGGER = "dbrewind_track"
_EVENT_TRIGGER = "dbrewind_ddl"
_SEEN_PREFIX = "dbrewind.seen_"
"""Transaction-local settings ``dbrewind.seen_<n>``: table n was marked in this transaction."""
_DDL_MARK = "!ddl"
"""The mark the event trigger leaves after DDL; marks starting with ``!`` are not tables."""
_EXTERNAL = "!external"
_OWN_DDL = "dbrewind.own_ddl"
"""Transaction-local setting: the DDL running now is dbrewind's own (no ``!ddl`` mark)."""
_DDL_TAGS = (
    "CREATE TABLE",
    "CREATE TABLE AS",
    "SELECT INTO",
    "DROP TABLE",
    "ALTER TABLE",
    "CREATE SCHEMA",
    "DROP SCHEMA",
    "DROP OWNED",
)
# SQLSTATEs translated at the boundary.
_UNDEFINED = {"42P01", "42883", "3F000"}  # undefined table / function / schema
_FK_VIOLATION = "23503"
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
_OBJECT_IN_USE = "55006"

_LOCK_NAMESPACE = 0x64627277  # "dbrw": the first int4 of every dbrewind advisory lock
"""``classid`` of dbrewind's advisory locks (``pg_try_advisory_lock(ns, key)``)."""
_LOCK_POLL = 0.05
"""Seconds between two tries of a lock that another session holds."""


def _lit(value: str) -> str:
    """A SQL string literal that reads the same whatever ``standard_conforming_strings`` is:
    one holding a backslash is an escape string, ``E'..'``, with the backslash doubled."""
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


logger = logging.getLogger("dbrewind")

_ASYNCPG_SECONDS = ("timeout", "command_timeout")
"""asyncpg's connect options that are seconds (a URL gives them as text)."""


def _seconds(option: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigurationError(
            f"The URL option {option}={value!r} is not a number of seconds. "
            f"Write it as {option}=10 or {option}=2.5."
        )
    return seconds


VACUUM_AFTER = 2000
"""Dead rows (estimated) the rewinds leave in a table before dbrewind vacuums it."""
_MARKS = "\x00marks"
"""The churn key of dbrewind's own marks table (no table key can hold a NUL)."""

_NO_DDL_SQL = (
    f"SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = {_lit(_EVENT_TRIGGER)} "
    f"AND evtenabled <> 'D') AND NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks "
    f"WHERE tbl = {_lit(_DDL_MARK)})"
)
"""True when the event trigger is on and has seen no DDL since the last rewind."""


def _ident(name: str) -> str:
    """A double-quoted identifier, always quoted."""
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_ident(schema)}.{_ident(name)}"


def _text_array(values: Sequence[str]) -> str:
    if not values:
        return "'{}'::text[]"
    return "ARRAY[" + ", ".join(_lit(v) for v in values) + "]::text[]"


def _driver_state(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg (``sqlstate``) or psycopg2 (``pgcode``) error."""
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


_OPEN_TRANSACTIONS_SQL = text(
    """
    SELECT pid, coalesce(state, ''), EXTRACT(EPOCH FROM now() - xact_start)::bigint,
           left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 120)
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
    ORDER BY xact_start
    LIMIT 5
    """
)


def _open_transactions(conn: Connection) -> str:
    """The database's other sessions with a transaction open, for an error message."""
    return describe_sessions(
        lambda: [
            f"pid {pid}, {state or 'unknown state'} for {seconds} s, last statement: {query!r}"
            for pid, state, seconds, query in conn.execute(_OPEN_TRANSACTIONS_SQL)
        ]
    )


def _run_script(conn: Connection, sql: str) -> None:
    """Run several statements in one round trip, bypassing parameter parsing.

    Generated SQL embeds user identifiers, which may contain ``%`` or ``:``;
    without parameters the driver sends the text as it is.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _query(conn: Connection, sql: str) -> Any:
    """Rows of one generated query without parameters; a ``%`` in it stays a literal ``%``.

    SQLAlchemy hands the driver an empty parameter list, and psycopg (like
    psycopg2) then reads ``%`` as the start of a placeholder.
    """
    return conn.exec_driver_sql(sql.replace("%", "%%"))


def _lock_key(purpose: str, database: str) -> int:
    """The second int4 of the advisory lock ``purpose`` on ``database``: stable, 31 bits."""
    digest = hashlib.sha1(f"{purpose}:{database}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class _AdvisoryLock(Lock):
    """A session-level advisory lock, held by the open connection in ``stack``."""

    def __init__(self, name: str, stack: ExitStack) -> None:
        self.name = name
        self._stack: ExitStack | None = stack

    def __repr__(self) -> str:
        state = "held" if self._stack is not None else "released"
        return f"<PostgreSQL advisory lock {self.name!r}, {state}>"

    def release(self) -> None:
        """Close the connection: the server drops the session's advisory locks with it."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


_REPLICA_INFO = "dbrewind_replica_role"


def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    """Give a connection back to the pool with the role it had before dbrewind's rewinds."""
    if not record.info.pop(_REPLICA_INFO, False) or dbapi_connection is None:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT current_setting('session_replication_role')")
            (role,) = cursor.fetchone()
            if role == "replica":
                cursor.execute("RESET session_replication_role")
        finally:
            cursor.close()
        dbapi_connection.commit()
    except Exception:
        # Never hand out a connection that may still skip FK checks.
        record.invalidate()


def _reset_role_on_checkin(conn: Connection) -> None:
    """Note that ``conn`` may keep the replica role; reset it when it returns to the pool."""
    conn.connection.info[_REPLICA_INFO] = True
    if not event.contains(conn.engine, "checkin", _on_checkin):
        event.listen(conn.engine, "checkin", _on_checkin)


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """``BEGIN`` .. ``COMMIT`` on an AUTOCOMMIT connection; ``ROLLBACK`` on error."""
    conn.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


_MARK_FUNCTION = f"""
CREATE FUNCTION {TRACKING_SCHEMA}.mark() RETURNS trigger
LANGUAGE plpgsql AS $mark$
BEGIN
    INSERT INTO {TRACKING_SCHEMA}.marks (tbl)
    SELECT TG_ARGV[0]
    WHERE NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks WHERE tbl = TG_ARGV[0]);
    -- Transaction-local: reverted at commit, rollback and rollback to savepoint,
    -- exactly like the mark itself; the trigger's WHEN skips later statements.
    PERFORM set_config(TG_ARGV[1], '1', true);
    RETURN NULL;
END
$mark$;
"""

_DDL_FUNCTION = f"""
CREATE FUNCTION {TRACKING_SCHEMA}.mark_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $ddl$
BEGIN
    IF coalesce(current_setting({_lit(_OWN_DDL)}, true), '') <> '' THEN
        RETURN;  -- a baseline copy that push_baseline / pop_baseline makes or drops
    END IF;
    INSERT INTO {TRACKING_SCHEMA}.marks (tbl)
    SELECT {_lit(_DDL_MARK)}
    WHERE NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks WHERE tbl = {_lit(_DDL_MARK)});
END
$ddl$;
CREATE EVENT TRIGGER {_EVENT_TRIGGER} ON ddl_command_end
    WHEN TAG IN ({", ".join(_lit(t) for t in _DDL_TAGS)})
    EXECUTE FUNCTION {TRACKING_SCHEMA}.mark_ddl();
"""


def _rewind_function(schemas: Sequence[str], always_compare: bool) -> str:
    """The server-side rewind; ``always_compare`` when no event trigger reports DDL.

    Changing ``session_replication_role`` flushes the session's plan cache,
    so every statement this function runs is planned again after a toggle.
    ``keep_replica`` leaves the role at ``replica`` for the session instead
    (dbrewind's own connection, which no user code shares), so later rewinds
    reuse their plans; otherwise the role is set for the statement only and
    restored.

    The table list is compared by name: a tracked table whose name now
    points at another table (dropped and created again) is ``back``: it is
    tracked again by ``track_again`` and rewound with the dirty tables, or,
    when its baseline rows no longer fit, reported ``dropped`` like a table
    that is gone. Either way it is never reported ``created``.
    """
    s = TRACKING_SCHEMA
    # The schema names are spelt inside the body: its dollar quote must not occur in them.
    tag = "$rewind$"
    while any(tag in schema for schema in schemas):
        tag = tag[:-1] + "_$"
    if always_compare:
        quick_exit = ""
        compare = "true"
    else:
        quick_exit = "IF marked IS NULL THEN RETURN; END IF;"
        compare = f"{_lit(_DDL_MARK)} = ANY(marked)"
    return f"""
CREATE FUNCTION {s}.rewind(
    truncate text[] DEFAULT '{{}}',
    reset_sequences boolean DEFAULT true,
    keep_replica boolean DEFAULT false,
    lock_timeout text DEFAULT NULL
)
RETURNS TABLE (table_key text, rows_deleted bigint, outcome text)
LANGUAGE plpgsql AS {tag}
#variable_conflict use_column
DECLARE
    marked text[];
    dirty text[];
    grown text[];
    changed text[];
    gone text[];
    born text[];
    back text[];
    back_oids oid[];
    trunc text[];
    kept text[];
    old_role text;
    t record;
    n bigint;
BEGIN
    SELECT array_agg(DISTINCT m.tbl) INTO marked FROM {s}.marks m;
    {quick_exit}
    -- Initialised here, not in DECLARE: nothing dirty costs no more than the check above.
    marked := coalesce(marked, '{{}}');
    gone := '{{}}';
    born := '{{}}';
    back := '{{}}';
    back_oids := '{{}}';

    IF {compare} THEN
        -- The same two queries as when tables are only ever dropped or created...
        SELECT array_agg(k.key ORDER BY k.key) INTO changed
        FROM {s}.tables k WHERE to_regclass(k.target) IS DISTINCT FROM k.relid;
        SELECT coalesce(array_agg(nm.nspname || '.' || c.relname ORDER BY 1), '{{}}') INTO born
        FROM pg_class c JOIN pg_namespace nm ON nm.oid = c.relnamespace
        WHERE nm.nspname = ANY({_text_array(schemas)})
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM {s}.tables k WHERE k.relid = c.oid);
        IF changed IS NOT NULL THEN
            -- ...then, by name: gone when no table has the name any more, back when
            -- another table has it (not created, then); a tracked table renamed away
            -- is created under its new name.
            SELECT coalesce(array_agg(k.key ORDER BY k.key) FILTER (WHERE c.oid IS NULL), '{{}}'),
                   coalesce(array_agg(k.key ORDER BY k.key) FILTER (WHERE c.oid IS NOT NULL),
                            '{{}}'),
                   coalesce(array_agg(c.oid ORDER BY k.key) FILTER (WHERE c.oid IS NOT NULL),
                            '{{}}')
            INTO gone, back, back_oids
            FROM {s}.tables k
            LEFT JOIN pg_class c ON c.oid = to_regclass(k.target) AND c.relkind IN ('r', 'p')
            WHERE k.key = ANY(changed);
            SELECT coalesce(array_agg(x.key ORDER BY x.key), '{{}}') INTO born FROM (
                SELECT nm.nspname || '.' || c.relname AS key
                FROM pg_class c JOIN pg_namespace nm ON nm.oid = c.relnamespace
                WHERE nm.nspname = ANY({_text_array(schemas)})
                  AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND NOT c.oid = ANY(back_oids)
                  AND NOT EXISTS (SELECT 1 FROM {s}.tables k
                                  WHERE k.relid = c.oid AND NOT k.key = ANY(changed))
            ) x;
        END IF;
    END IF;

    IF cardinality(back) > 0 THEN  -- rewound like a dirty table
        marked := marked || back;
    END IF;
    SELECT array_agg(k.key) INTO dirty
    FROM {s}.tables k WHERE k.key = ANY(marked) AND NOT k.key = ANY(gone);

    IF dirty IS NOT NULL THEN
        -- A test database need not wait for its WAL flush: a crash loses only the rewind.
        PERFORM set_config('synchronous_commit', 'off', true);
        IF lock_timeout IS NOT NULL THEN  -- a lock a leaked transaction holds: fail, not hang
            PERFORM set_config('lock_timeout', lock_timeout, true);
        END IF;
        old_role := current_setting('session_replication_role');
        IF old_role = 'replica' THEN
            NULL;
        ELSIF has_parameter_privilege('session_replication_role', 'SET') THEN
            PERFORM set_config('session_replication_role', 'replica', NOT keep_replica);
        ELSE
            -- FK checks stay on: take along every table that references a
            -- dirty one; deletes go children first, restores parents first.
            old_role := NULL;
            LOOP
                SELECT array_agg(DISTINCT r.x) INTO grown FROM (
                    SELECT unnest(dirty) AS x
                    UNION SELECT unnest(k.referenced_by) FROM {s}.tables k WHERE k.key = ANY(dirty)
                ) r
                WHERE EXISTS (SELECT 1 FROM {s}.tables k WHERE k.key = r.x)
                  AND NOT r.x = ANY(gone);
                EXIT WHEN cardinality(grown) = cardinality(dirty);
                dirty := grown;
            END LOOP;
            SET CONSTRAINTS ALL DEFERRED;
        END IF;

        -- Tables created again under their name: tracking back first, each on its own,
        -- so one whose baseline no longer fits is reported and the rest still rewound.
        IF cardinality(back) > 0 THEN
            FOR t IN SELECT b.key, b.oid FROM unnest(back, back_oids) AS b(key, oid) LOOP
                BEGIN
                    PERFORM {s}.track_again(t.key, t.oid);
                EXCEPTION
                    WHEN lock_not_available OR query_canceled THEN RAISE;
                    WHEN OTHERS THEN
                        gone := gone || t.key;
                        back := array_remove(back, t.key);
                        dirty := array_remove(dirty, t.key);
                END;
            END LOOP;
        END IF;

        -- TRUNCATE only tables whose referencing tables are all truncated with them.
        IF cardinality(truncate) > 0 THEN
            SELECT coalesce(array_agg(k.key), '{{}}') INTO trunc FROM {s}.tables k
            WHERE k.key = ANY(dirty) AND k.key = ANY(truncate);
            LOOP
                SELECT coalesce(array_agg(k.key), '{{}}') INTO kept FROM {s}.tables k
                WHERE k.key = ANY(trunc) AND k.referenced_by <@ trunc;
                EXIT WHEN cardinality(kept) = cardinality(trunc);
                trunc := kept;
            END LOOP;
            IF cardinality(trunc) > 0 THEN
                EXECUTE 'TRUNCATE ' || (SELECT string_agg(k.truncate_target, ', ')
                                        FROM {s}.tables k WHERE k.key = ANY(trunc));
            END IF;
        ELSE
            trunc := '{{}}';
        END IF;

        FOR t IN SELECT k.key, k.delete_sql, k.key = ANY(trunc) AS truncated
                 FROM {s}.tables k WHERE k.key = ANY(dirty) ORDER BY k.ord LOOP
            IF t.truncated THEN
                table_key := t.key; rows_deleted := -1; outcome := 'truncated';
            ELSE
                EXECUTE t.delete_sql;
                GET DIAGNOSTICS n = ROW_COUNT;
                table_key := t.key; rows_deleted := n; outcome := 'deleted';
            END IF;
            RETURN NEXT;
        END LOOP;

        FOR t IN SELECT k.restore_sql FROM {s}.tables k
                 WHERE k.key = ANY(dirty) AND k.restore_sql IS NOT NULL
                 ORDER BY k.ord DESC LOOP
            EXECUTE t.restore_sql;
        END LOOP;
        -- Static SQL (a cached plan), not EXECUTE: this runs on every rewind.
        IF reset_sequences THEN
            PERFORM setval(q.seq, q.value, q.called)
            FROM {s}.sequences q WHERE q.key = ANY(dirty);
        END IF;

        IF old_role IS NOT NULL AND old_role <> 'replica' AND NOT keep_replica THEN
            PERFORM set_config('session_replication_role', old_role, true);
        END IF;
    END IF;

    -- Keep the DDL mark while the table list differs from the baseline's,
    -- so every rewind reports the difference until it is resolved.
    DELETE FROM {s}.marks m
    WHERE (m.tbl = ANY(marked) OR m.tbl = ANY(dirty))
      AND NOT (m.tbl = {_lit(_DDL_MARK)} AND cardinality(gone) + cardinality(born) > 0);

    IF cardinality(gone) + cardinality(born) + cardinality(back) > 0 THEN
        RETURN QUERY
            SELECT g.key, 0::bigint, 'dropped' FROM unnest(gone) AS g(key)
            UNION ALL
            SELECT b.key, 0::bigint, 'created' FROM unnest(born) AS b(key)
            UNION ALL
            SELECT r.key, 0::bigint, 'recreated' FROM unnest(back) AS r(key);
    END IF;
END
{tag};
"""


_LIFECYCLE_FUNCTIONS = f"""
CREATE FUNCTION {TRACKING_SCHEMA}.track_again(table_key text, new_relid oid) RETURNS void
LANGUAGE plpgsql AS $again$
-- The tracked table table_key was dropped and created again as new_relid:
-- give it its tracking triggers back and point its baseline at it, or raise
-- (the caller reports it dropped) when the baseline rows no longer fit it.
DECLARE
    t record;
    q record;
    stmt text;
    kind "char";
    candidates oid[];
    chosen oid;
BEGIN
    SELECT k.target, k.restore_sql, x.kind, x.columns, x.track_sql INTO STRICT t
    FROM {TRACKING_SCHEMA}.tables k JOIN {TRACKING_SCHEMA}.table_sql x ON x.key = k.key
    WHERE k.key = table_key;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = new_relid;
    IF kind IS DISTINCT FROM t.kind THEN
        RAISE EXCEPTION 'dbrewind: % was created again as another kind of relation', t.target;
    END IF;
    IF t.restore_sql IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = new_relid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
          AND NOT a.attname::text = ANY(t.columns)
    ) THEN
        RAISE EXCEPTION 'dbrewind: % has a NOT NULL column its baseline rows lack', t.target;
    END IF;
    -- Partitions attached again may still carry their trigger.
    FOR q IN SELECT tg.tgrelid::regclass AS rel FROM pg_trigger tg
             WHERE tg.tgname = {_lit(_TRIGGER)}
               AND (tg.tgrelid = new_relid
                    OR tg.tgrelid IN (SELECT p.relid FROM pg_partition_tree(new_relid) p)) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', {_lit(_TRIGGER)}, q.rel);
    END LOOP;
    FOREACH stmt IN ARRAY t.track_sql LOOP
        EXECUTE stmt;
    END LOOP;
    IF t.restore_sql IS NOT NULL THEN  -- parsed and planned, inserts nothing: columns and types
        EXECUTE t.restore_sql || ' LIMIT 0';
    END IF;
    -- The sequences the new table's columns draw from (a new table owns new sequences).
    FOR q IN SELECT * FROM {TRACKING_SCHEMA}.sequences s WHERE s.key = table_key LOOP
        SELECT array_agg(DISTINCT r.seqid) INTO candidates
        FROM (
            SELECT d.objid AS seqid
            FROM pg_depend d
            JOIN pg_attribute a ON a.attrelid = new_relid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.deptype IN ('a', 'i') AND d.refobjid = new_relid AND a.attname = q.col
            UNION
            SELECT d.refobjid
            FROM pg_attrdef ad
            JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
            JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                            AND d.refclassid = 'pg_class'::regclass
            WHERE ad.adrelid = new_relid AND a.attname = q.col
        ) r
        JOIN pg_class sc ON sc.oid = r.seqid AND sc.relkind = 'S';
        chosen := CASE
            WHEN q.seq::oid = ANY(candidates) THEN q.seq::oid
            WHEN to_regclass(q.seq_name)::oid = ANY(candidates) THEN to_regclass(q.seq_name)::oid
            WHEN cardinality(candidates) = 1 THEN candidates[1]
        END;
        IF chosen IS NULL THEN
            RAISE EXCEPTION 'dbrewind: column % of % draws from no sequence now', q.col, t.target;
        END IF;
        UPDATE {TRACKING_SCHEMA}.sequences s
        SET seq = chosen::regclass,
            seq_name = (SELECT format('%I.%I', sn.nspname, sc.relname)
                        FROM pg_class sc JOIN pg_namespace sn ON sn.oid = sc.relnamespace
                        WHERE sc.oid = chosen)
        WHERE s.ref = q.ref;
    END LOOP;
    UPDATE {TRACKING_SCHEMA}.tables k SET relid = new_relid WHERE k.key = table_key;
END
$again$;

CREATE FUNCTION {TRACKING_SCHEMA}.push_baseline(lock_timeout text DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql AS $push$
-- The dirty tables' rows and sequence values become their baseline, one layer up.
DECLARE
    captured text[];
    stale text;
    layer integer;
    t record;
    q record;
    has_rows boolean;
    copy_name text;
    last_value bigint;
    is_called boolean;
BEGIN
    IF lock_timeout IS NOT NULL THEN
        PERFORM set_config('lock_timeout', lock_timeout, true);
    END IF;
    LOCK TABLE {TRACKING_SCHEMA}.layers IN SHARE ROW EXCLUSIVE MODE;  -- one push or pop at a time
    PERFORM set_config({_lit(_OWN_DDL)}, 'on', true);
    SELECT array_agg(k.key ORDER BY k.key) INTO captured FROM {TRACKING_SCHEMA}.tables k
    WHERE EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks m WHERE m.tbl = k.key);
    IF captured IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(k.key, ', ' ORDER BY k.key) INTO stale FROM {TRACKING_SCHEMA}.tables k
    WHERE k.key = ANY(captured) AND to_regclass(k.target) IS DISTINCT FROM k.relid;
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'dbrewind cannot push a baseline layer: table(s) % were dropped or '
            'created again since the last rewind. Rewind first (Rewinder.rewind()), or '
            'install tracking again.', stale;
    END IF;
    SELECT coalesce(max(l.depth), 0) + 1 INTO layer FROM {TRACKING_SCHEMA}.layers l;
    FOR t IN SELECT k.key, k.ord, k.truncate_target, k.restore_sql, x.copy_sql, x.restore_head
             FROM {TRACKING_SCHEMA}.tables k JOIN {TRACKING_SCHEMA}.table_sql x ON x.key = k.key
             WHERE k.key = ANY(captured) ORDER BY k.ord LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', t.truncate_target) INTO has_rows;
        copy_name := NULL;
        IF has_rows THEN
            copy_name := format('{TRACKING_SCHEMA}.%I', 'b_' || t.ord || '_' || layer);
            EXECUTE format('CREATE TABLE %s AS %s', copy_name, t.copy_sql);
        END IF;
        INSERT INTO {TRACKING_SCHEMA}.layers (depth, key, restore_sql, copy_table)
        VALUES (layer, t.key, t.restore_sql, copy_name);
        INSERT INTO {TRACKING_SCHEMA}.layer_sequences (depth, ref, value, called)
        SELECT layer, s.ref, s.value, s.called FROM {TRACKING_SCHEMA}.sequences s
        WHERE s.key = t.key;
        UPDATE {TRACKING_SCHEMA}.tables k SET restore_sql = t.restore_head || copy_name
        WHERE k.key = t.key;
        FOR q IN SELECT s.ref, s.seq FROM {TRACKING_SCHEMA}.sequences s WHERE s.key = t.key LOOP
            EXECUTE format('SELECT last_value, is_called FROM %s', q.seq)
            INTO last_value, is_called;
            UPDATE {TRACKING_SCHEMA}.sequences s SET value = last_value, called = is_called
            WHERE s.ref = q.ref;
        END LOOP;
        RETURN NEXT t.key;
    END LOOP;
    DELETE FROM {TRACKING_SCHEMA}.marks m WHERE m.tbl = ANY(captured);
    PERFORM set_config({_lit(_OWN_DDL)}, '', true);
END
$push$;

CREATE FUNCTION {TRACKING_SCHEMA}.pop_baseline(
    to_depth integer,
    truncate text[] DEFAULT '{{}}',
    reset_sequences boolean DEFAULT true,
    lock_timeout text DEFAULT NULL
)
RETURNS TABLE (table_key text, rows_deleted bigint, outcome text)
LANGUAGE plpgsql AS $pop$
-- Layers above to_depth go, highest first: each table gets back the baseline
-- it had below the layer and is marked dirty; then one rewind puts them back.
#variable_conflict use_column
DECLARE
    top integer;
    l record;
BEGIN
    IF lock_timeout IS NOT NULL THEN
        PERFORM set_config('lock_timeout', lock_timeout, true);
    END IF;
    LOCK TABLE {TRACKING_SCHEMA}.layers IN SHARE ROW EXCLUSIVE MODE;
    PERFORM set_config({_lit(_OWN_DDL)}, 'on', true);
    SELECT coalesce(max(x.depth), 0) INTO top FROM {TRACKING_SCHEMA}.layers x;
    IF to_depth IS NULL OR to_depth < 0 OR to_depth > top THEN
        RAISE EXCEPTION 'dbrewind cannot pop to baseline layer %: the database has layers 0 to %. '
            'Pass a depth in that range (Installation.depth is the current one).', to_depth, top;
    END IF;
    FOR l IN SELECT x.* FROM {TRACKING_SCHEMA}.layers x
             WHERE x.depth > to_depth ORDER BY x.depth DESC, x.key LOOP
        UPDATE {TRACKING_SCHEMA}.tables k SET restore_sql = l.restore_sql WHERE k.key = l.key;
        UPDATE {TRACKING_SCHEMA}.sequences s SET value = p.value, called = p.called
        FROM {TRACKING_SCHEMA}.layer_sequences p
        WHERE p.depth = l.depth AND p.ref = s.ref AND s.key = l.key;
        IF l.copy_table IS NOT NULL THEN
            EXECUTE 'DROP TABLE IF EXISTS ' || l.copy_table;
        END IF;
        INSERT INTO {TRACKING_SCHEMA}.marks (tbl)
        SELECT l.key WHERE NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks m WHERE m.tbl = l.key);
    END LOOP;
    DELETE FROM {TRACKING_SCHEMA}.layer_sequences p WHERE p.depth > to_depth;
    DELETE FROM {TRACKING_SCHEMA}.layers x WHERE x.depth > to_depth;
    PERFORM set_config({_lit(_OWN_DDL)}, '', true);
    RETURN QUERY SELECT r.table_key, r.rows_deleted, r.outcome
                 FROM {TRACKING_SCHEMA}.rewind(truncate, reset_sequences, false, lock_timeout) r;
END
$pop$;
"""


_TABLES_SQL = text(
    """
    SELECT c.oid, n.nspname, c.relname, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(CAST(:schemas AS text[]))
      AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    ORDER BY n.nspname, c.relname
    """
)

_COLUMNS_SQL = text(
    """
    SELECT a.attrelid, a.attname, a.attidentity
    FROM pg_attribute a
    WHERE a.attrelid = ANY(CAST(:oids AS oid[])) AND a.attnum > 0
      AND NOT a.attisdropped AND a.attgenerated = ''
    ORDER BY a.attrelid, a.attnum
    """
)

_PARTITIONS_SQL = text(
    """
    SELECT p.root, n.nspname, c.relname
    FROM (
        SELECT root, (pg_partition_tree(root)).relid AS relid
        FROM unnest(CAST(:oids AS oid[])) AS root
    ) p
    JOIN pg_class c ON c.oid = p.relid AND c.relkind IN ('r', 'p')
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE p.relid <> p.root
    ORDER BY p.root, n.nspname, c.relname
    """
)

_FOREIGN_KEYS_SQL = text(
    """
    SELECT con.conname, con.conrelid, con.confrelid, con.confdeltype
    FROM pg_constraint con
    WHERE con.contype = 'f' AND con.conparentid = 0
      AND (con.conrelid = ANY(CAST(:oids AS oid[])) OR con.confrelid = ANY(CAST(:oids AS oid[])))
    ORDER BY con.conname
    """
)

_ON_DELETE = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}

_SEQUENCE_COLUMNS_SQL = text(
    """
    SELECT r.relid, sn.nspname, s.relname, a.attname
    FROM (
        SELECT d.refobjid AS relid, d.objid AS seqid, d.refobjsubid AS attnum
        FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') AND d.refobjid = ANY(CAST(:oids AS oid[]))
        UNION
        SELECT ad.adrelid, d.refobjid, ad.adnum
        FROM pg_attrdef ad
        JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE ad.adrelid = ANY(CAST(:oids AS oid[]))
    ) r
    JOIN pg_class s ON s.oid = r.seqid AND s.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_attribute a ON a.attrelid = r.relid AND a.attnum = r.attnum
    ORDER BY r.relid, sn.nspname, s.relname, r.attnum
    """
)
"""Which column of a tracked table draws from each of its sequences (the first, if several)."""

_REWIND_RAW = (
    f"SELECT table_key, rows_deleted, outcome "
    f"FROM {TRACKING_SCHEMA}.rewind(CAST(%s AS text[]), %s, %s, %s)"
)
"""The rewind call in the driver's own (``format``) parameter style."""
_POP_RAW = (
    f"SELECT table_key, rows_deleted, outcome "
    f"FROM {TRACKING_SCHEMA}.pop_baseline(%s, CAST(%s AS text[]), %s, %s)"
)
_PUSH_SQL = text(f"SELECT k FROM {TRACKING_SCHEMA}.push_baseline(:lock_timeout) AS k")
_DIRTY_SQL = text(
    # marks of tracked tables only: a schema's name may start with the "!" of "!ddl"
    f"SELECT DISTINCT m.tbl FROM {TRACKING_SCHEMA}.marks m "
    f"WHERE EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.tables k WHERE k.key = m.tbl) ORDER BY 1"
)
_TRACKED_SQL = text(f"SELECT key FROM {TRACKING_SCHEMA}.tables ORDER BY key")
_MARK_SQL = text(
    f"INSERT INTO {TRACKING_SCHEMA}.marks (tbl) "
    f"SELECT DISTINCT k FROM unnest(CAST(:keys AS text[])) AS k "
    f"WHERE NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks m WHERE m.tbl = k)"
)
_STATE_SQL = text(
    f"INSERT INTO {TRACKING_SCHEMA}.state (key, value) "
    "SELECT k, v FROM unnest(CAST(:keys AS text[]), CAST(:values AS text[])) AS u(k, v) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)
_INSTALLED_OBJECTS = (
    *(
        f"to_regclass('{TRACKING_SCHEMA}.{name}')"
        for name in (
            "marks",
            "tables",
            "table_sql",
            "sequences",
            "state",
            "layers",
            "layer_sequences",
        )
    ),
    *(
        f"to_regprocedure('{TRACKING_SCHEMA}.{signature}')"
        for signature in (
            "mark()",
            "rewind(text[], boolean, boolean, text)",
            "track_again(text, oid)",
            "push_baseline(text)",
            "pop_baseline(integer, text[], boolean, text)",
            "reset_moved_sequences()",
        )
    ),
)
_INSTALLED_SQL = text(
    "SELECT " + " AND ".join(f"{probe} IS NOT NULL" for probe in _INSTALLED_OBJECTS)
)
"""Every object of this version's installation exists (an older dbrewind's lacks some)."""
_INSTALLATION_SQL = text(
    f"""
    WITH k AS (
        SELECT k.key, c.oid
        FROM {TRACKING_SCHEMA}.tables k
        LEFT JOIN pg_class c ON c.oid = to_regclass(k.target) AND c.relkind IN ('r', 'p')
    )
    SELECT
        (SELECT coalesce(array_agg(s.key ORDER BY s.key), '{{}}') FROM {TRACKING_SCHEMA}.state s),
        (SELECT coalesce(array_agg(s.value ORDER BY s.key), '{{}}')
         FROM {TRACKING_SCHEMA}.state s),
        (SELECT coalesce(array_agg(k.key), '{{}}') FROM k),
        (SELECT coalesce(array_agg(k.key), '{{}}') FROM k
         WHERE k.oid IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM pg_trigger tg
             WHERE tg.tgrelid = k.oid AND tg.tgname = {_lit(_TRIGGER)}
               AND tg.tgfoid = '{TRACKING_SCHEMA}.mark()'::regprocedure)),
        (SELECT coalesce(array_agg(k.key), '{{}}') FROM k WHERE k.oid IS NULL),
        (SELECT coalesce(array_agg(u.key), '{{}}') FROM (
             SELECT n.nspname || '.' || c.relname AS key
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(CAST(:schemas AS text[]))
               AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ) u WHERE NOT EXISTS (SELECT 1 FROM k WHERE k.key = u.key)),
        (SELECT coalesce(array_agg(DISTINCT m.tbl), '{{}}') FROM {TRACKING_SCHEMA}.marks m
         WHERE EXISTS (SELECT 1 FROM k WHERE k.key = m.tbl)),
        (SELECT coalesce(max(l.depth), 0) FROM {TRACKING_SCHEMA}.layers l)
    """
)
"""Everything :meth:`PostgreSQLDialect.installation` reports, by table name, in one query."""
_LOCK_HOLDER_SQL = text(
    """
    SELECT l.pid,
           CASE WHEN a.client_port = -1 THEN 'a local socket' ELSE host(a.client_addr) END,
           a.application_name
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid)
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    ORDER BY l.pid
    """
)
_LIST_DATABASES_SQL = text(
    "SELECT datname FROM pg_database WHERE starts_with(datname::text, CAST(:prefix AS text))"
)


def _psycopg_info(driver: Any) -> Any:
    """psycopg's ``ConnectionInfo`` (``transaction_status``) of ``driver``, or None (asyncpg)."""
    info = getattr(driver, "info", None)
    if info is not None and hasattr(info, "transaction_status"):
        return info
    return None


class PostgreSQLSandboxOps(SandboxOps):
    """The rollback sandbox on PostgreSQL (psycopg, psycopg2, asyncpg): an error aborts
    the transaction, and deferred constraints are checked before the rollback."""

    statement_guard: ClassVar[bool] = True

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """psycopg's ``info.transaction_status`` (not IDLE), asyncpg's ``is_in_transaction()``."""
        info = _psycopg_info(driver)
        if info is not None:
            return lambda: info.transaction_status != 0  # IDLE
        if hasattr(driver, "is_in_transaction"):
            return driver.is_in_transaction  # type: ignore[no-any-return]
        return None

    def error_aborts(self, driver: Any, error: BaseException) -> bool:
        """psycopg: the transaction status is INERROR; other drivers: the error carries
        a SQLSTATE (the server raised it)."""
        info = _psycopg_info(driver)
        if info is not None:
            return bool(info.transaction_status == 3)  # INERROR
        return bool(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None))

    def check_deferred(
        self, driver: Any, run: Callable[[str], None], before_rollback: str | None
    ) -> tuple[BaseException | None, bool]:
        """``SET CONSTRAINTS ALL IMMEDIATE``; with psycopg, ``before_rollback``, the check
        and the ``ROLLBACK`` in one round trip."""
        rolled_back = False
        try:
            if _psycopg_info(driver) is not None:  # psycopg: all of it and the rollback in one trip
                prologue = f"{before_rollback}; " if before_rollback else ""
                run(f"{prologue}SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK")
                rolled_back = True
            else:  # one statement per call (asyncpg prepares what it runs)
                if before_rollback:
                    run(before_rollback)
                run("SET CONSTRAINTS ALL IMMEDIATE")
        except Exception as exc:
            state = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
            if state.startswith("23"):  # integrity constraint violation
                return exc, rolled_back
        return None, rolled_back


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
        rows = conn.execute(_TABLES_SQL, {"schemas": list(self.user_schemas)}).all()
        keys: dict[int, str] = {}
        names: dict[int, tuple[str, str]] = {}
        for oid, schema, name, _kind in rows:
            keys[oid] = f"{schema}.{name}"
            names[oid] = (schema, name)
        oids = list(keys)
        columns: dict[int, list[str]] = defaultdict(list)
        identity_always: set[int] = set()
        sequences: dict[int, list[str]] = defaultdict(list)
        partitions: dict[int, list[str]] = defaultdict(list)
        foreign_keys: list[ForeignKey] = []
        if oids:
            for relid, column, identity in conn.execute(_COLUMNS_SQL, {"oids": oids}):
                columns[relid].append(column)
                if identity == "a":
                    identity_always.add(relid)
            for relid, schema, name, _column in conn.execute(_SEQUENCE_COLUMNS_SQL, {"oids": oids}):
                qualified = _qualified(schema, name)
                if qualified not in sequences[relid]:  # one sequence may feed two columns
                    sequences[relid].append(qualified)
            partitioned = [oid for oid, *_rest, kind in rows if kind == "p"]
            if partitioned:
                for root, schema, name in conn.execute(_PARTITIONS_SQL, {"oids": partitioned}):
                    partitions[root].append(_qualified(schema, name))
            for conname, child, parent, deltype in conn.execute(_FOREIGN_KEYS_SQL, {"oids": oids}):
                if child in keys and parent in keys:
                    foreign_keys.append(
                        ForeignKey(
                            child=keys[child],
                            parent=keys[parent],
                            name=conname,
                            on_delete=_ON_DELETE.get(deltype, "NO ACTION"),
                        )
                    )
        tables = {
            keys[oid]: Table(
                key=keys[oid],
                name=names[oid][1],
                schema=names[oid][0],
                columns=tuple(columns[oid]),
                identity_always=oid in identity_always,
                sequences=tuple(sequences[oid]),
                partitions=tuple(partitions[oid]),
            )
            for oid in oids
        }
        return SchemaInfo(tables=tables, foreign_keys=tuple(foreign_keys))

    # ---------------------------------------------------------------- tracking
    def _drop_script(self) -> str:
        return (
            f"DROP EVENT TRIGGER IF EXISTS {_EVENT_TRIGGER};\n"
            f"DROP SCHEMA IF EXISTS {TRACKING_SCHEMA} CASCADE;\n"
        )

    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Replace any earlier installation; track ``schema``'s tables; capture the baseline.

        Runs in one transaction. The event trigger is created only when the
        role is a superuser; otherwise the rewind compares table lists itself.
        """
        s = TRACKING_SCHEMA
        superuser = bool(
            conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
        )
        order = schema.delete_order()
        with _transaction(conn):
            # Oids, kinds and outside references of the tables as they are now.
            facts = conn.execute(
                text(
                    """
                    SELECT k.key, c.oid, c.relkind
                    FROM unnest(CAST(:keys AS text[]), CAST(:targets AS text[])) AS k(key, target)
                    JOIN pg_class c ON c.oid = to_regclass(k.target)
                    """
                ),
                {"keys": order, "targets": [self._target(schema.tables[k]) for k in order]},
            ).all()
            info = {key: (oid, kind) for key, oid, kind in facts}
            missing = [k for k in order if k not in info]
            if missing:
                raise SchemaChangedError(
                    f"Table(s) {', '.join(map(repr, missing))} vanished while dbrewind was "
                    "installing tracking. Make sure nothing else changes the schema during "
                    "Rewinder.prepare(), then prepare again."
                )
            all_oids = [oid for oid, _kind in info.values()]
            external = {
                key
                for key, _ext in conn.execute(
                    text(
                        """
                        SELECT k.key, true
                        FROM unnest(CAST(:keys AS text[]), CAST(:oids AS oid[])) AS k(key, oid)
                        WHERE EXISTS (SELECT 1 FROM pg_constraint con
                                      WHERE con.contype = 'f' AND con.confrelid = k.oid
                                        AND con.conparentid = 0
                                        AND NOT con.conrelid = ANY(CAST(:oids AS oid[])))
                        """
                    ),
                    {"keys": list(info), "oids": all_oids},
                )
            }
            # Which tables hold rows (one round trip), and sequence values.
            non_empty: set[str] = set()
            if order:
                probe = " UNION ALL ".join(
                    f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {self._from(schema.tables[k], info)})"
                    for i, k in enumerate(order)
                )
                non_empty = {order[i] for (i,) in _query(conn, probe)}
            seq_names = sorted({q for k in order for q in schema.tables[k].sequences})
            seq_values: dict[str, tuple[int, bool]] = {}
            seq_columns: dict[tuple[int, str], str] = {}
            if seq_names:
                probe = " UNION ALL ".join(
                    f"SELECT {i}, last_value, is_called FROM {q}" for i, q in enumerate(seq_names)
                )
                for i, last, called in _query(conn, probe):
                    seq_values[seq_names[i]] = (int(last), bool(called))
                for relid, seq_schema, seq_name, column in conn.execute(
                    _SEQUENCE_COLUMNS_SQL, {"oids": all_oids}
                ):
                    seq_columns.setdefault((relid, _qualified(seq_schema, seq_name)), column)

            script = [self._drop_script()]
            script.append(
                f"""
CREATE SCHEMA {s};
COMMENT ON SCHEMA {s} IS 'dbrewind change tracking; remove with: dbrewind uninstall URL';
CREATE TABLE {s}.marks (tbl text NOT NULL);
CREATE TABLE {s}.tables (
    key text PRIMARY KEY,
    ord integer NOT NULL,
    relid oid NOT NULL,
    target text NOT NULL,
    truncate_target text NOT NULL,
    referenced_by text[] NOT NULL,
    delete_sql text NOT NULL,
    restore_sql text
);
CREATE TABLE {s}.table_sql (
    key text PRIMARY KEY,
    kind "char" NOT NULL,
    columns text[] NOT NULL,
    copy_sql text NOT NULL,
    restore_head text NOT NULL,
    track_sql text[] NOT NULL
);
CREATE TABLE {s}.sequences (
    ref integer PRIMARY KEY,
    key text NOT NULL,
    col text,
    seq regclass NOT NULL,
    seq_name text NOT NULL,
    value bigint NOT NULL,
    called boolean NOT NULL
);
CREATE TABLE {s}.state (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {s}.layers (
    depth integer NOT NULL,
    key text NOT NULL,
    restore_sql text,
    copy_table text,
    PRIMARY KEY (depth, key)
);
CREATE TABLE {s}.layer_sequences (
    depth integer NOT NULL,
    ref integer NOT NULL,
    value bigint NOT NULL,
    called boolean NOT NULL,
    PRIMARY KEY (depth, ref)
);
GRANT USAGE ON SCHEMA {s} TO PUBLIC;
GRANT SELECT, INSERT ON {s}.marks TO PUBLIC;
{_MARK_FUNCTION}
CREATE FUNCTION {s}.reset_moved_sequences() RETURNS void
LANGUAGE sql AS $reset$
    -- every tracked sequence that moved from its baseline value: a write rolled
    -- back to a savepoint takes its mark along, but not what it drew from a sequence
    SELECT setval(q.seq, q.value, q.called) FROM {s}.sequences q
    WHERE pg_sequence_last_value(q.seq)
          IS DISTINCT FROM (CASE WHEN q.called THEN q.value END);
$reset$;
{_LIFECYCLE_FUNCTIONS}
"""
            )
            rows: list[str] = []
            sql_rows: list[str] = []
            seq_rows: list[str] = []
            for ord_, key in enumerate(order):
                table = schema.tables[key]
                oid, kind = info[key]
                target = self._target(table)
                only = "" if kind == "p" else "ONLY "
                seen = _lit(f"{_SEEN_PREFIX}{ord_}")
                track_sql = [
                    f"CREATE TRIGGER {_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
                    f"ON {tracked} FOR EACH STATEMENT "
                    f"WHEN (coalesce(current_setting({seen}, true), '') = '') "
                    f"EXECUTE FUNCTION {s}.mark({_lit(key)}, {seen})"
                    for tracked in (target, *table.partitions)
                ]
                script.extend(f"{statement};" for statement in track_sql)
                cols = ", ".join(_ident(c) for c in table.columns)
                overriding = " OVERRIDING SYSTEM VALUE" if table.identity_always else ""
                copy_sql = f"SELECT {cols} FROM {only}{target}"
                restore_head = f"INSERT INTO {target} ({cols}){overriding} SELECT {cols} FROM "
                restore_sql = None
                if key in non_empty:
                    copy = f'{s}."b_{ord_}"'
                    script.append(f"CREATE TABLE {copy} AS {copy_sql};")
                    restore_sql = restore_head + copy
                for q in table.sequences:
                    column = seq_columns.get((oid, q))
                    value, called = seq_values[q]
                    seq_rows.append(
                        f"({len(seq_rows)}, {_lit(key)}, "
                        f"{'NULL' if column is None else _lit(column)}, {_lit(q)}::regclass, "
                        f"{_lit(q)}, {value}, {'true' if called else 'false'})"
                    )
                delete_sql = f"DELETE FROM {only}{target}"
                referenced_by = sorted(schema.referencing(key))
                if key in external:
                    referenced_by.append(_EXTERNAL)
                rows.append(
                    "("
                    + ", ".join(
                        [
                            _lit(key),
                            str(ord_),
                            str(oid),
                            _lit(target),
                            _lit(only + target),
                            _text_array(referenced_by),
                            _lit(delete_sql),
                            "NULL" if restore_sql is None else _lit(restore_sql),
                        ]
                    )
                    + ")"
                )
                sql_rows.append(
                    "("
                    + ", ".join(
                        [
                            _lit(key),
                            _lit(kind),
                            _text_array(table.columns),
                            _lit(copy_sql),
                            _lit(restore_head),
                            _text_array(track_sql),
                        ]
                    )
                    + ")"
                )
            if rows:
                script.append(f"INSERT INTO {s}.tables VALUES\n" + ",\n".join(rows) + ";")
                script.append(f"INSERT INTO {s}.table_sql VALUES\n" + ",\n".join(sql_rows) + ";")
            if seq_rows:
                script.append(f"INSERT INTO {s}.sequences VALUES\n" + ",\n".join(seq_rows) + ";")
            script.append(_rewind_function(self.user_schemas, not superuser))
            if superuser:
                script.append(_DDL_FUNCTION)
            _run_script(conn, "\n".join(script))

    @staticmethod
    def _target(table: Table) -> str:
        return _qualified(table.schema or "public", table.name)

    def _from(self, table: Table, info: dict[str, tuple[int, str]]) -> str:
        kind = info[table.key][1]
        return ("" if kind == "p" else "ONLY ") + self._target(table)

    def uninstall(self, conn: Connection) -> None:
        """Drop the ``dbrewind`` schema (its functions take the triggers on user tables along)."""
        with _transaction(conn):
            _run_script(conn, self._drop_script())

    def is_installed(self, conn: Connection) -> bool:
        """Whether every object of this version's installation exists.

        An installation an older dbrewind made (without the state or layer
        tables, say) counts as not installed, so it is installed again.
        """
        return bool(conn.execute(_INSTALLED_SQL).scalar())

    def dirty_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables with a committed mark, sorted."""
        try:
            return [row[0] for row in conn.execute(_DIRTY_SQL)]
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def tracked_tables(self, conn: Connection) -> list[str]:
        """Keys of the tables in the installation's baseline."""
        try:
            return [row[0] for row in conn.execute(_TRACKED_SQL)]
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc

    def mark_dirty(self, conn: Connection, keys: Sequence[str]) -> None:
        """One ``INSERT`` into ``dbrewind.marks``, committed."""
        try:
            conn.execute(_MARK_SQL, {"keys": list(keys)})
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
            _reset_role_on_checkin(conn)
        result = self._call_rewinding(
            conn, _REWIND_RAW, (sorted(truncate), reset_sequences, keep, self._lock_timeout_ms())
        )
        if result.tables:
            self._vacuum_when_due(conn, result)
        return result

    def _vacuum_when_due(self, conn: Connection, result: RewindResult) -> None:
        """``VACUUM`` the tables whose rewinds left :data:`VACUUM_AFTER` dead rows.

        Every rewind deletes rows (what the test wrote, the baseline rows it
        changed) and the marks it read: dead tuples that only ``VACUUM``
        reclaims. A suite rewinds the same few tables thousands of times, far
        faster than autovacuum visits them (and CI servers often run with
        autovacuum off), so scans of those tables, the test's own included,
        grow slower test after test. dbrewind vacuums what it made dead: a few
        milliseconds every few hundred rewinds. Needs an autocommit connection
        (dbrewind's own); any error is left to autovacuum.
        """
        churn = self._churn
        for key, count in result.deleted.items():
            if key not in result.truncated:
                churn[key] = churn.get(key, 0) + max(count, 1) * 2  # the old version, and ours
        # the marks are read by every tracked write: keep them denser (every ~500 rewinds)
        churn[_MARKS] = churn.get(_MARKS, 0) + 4 * len(result.tables)
        due = sorted(key for key, dead in churn.items() if dead >= VACUUM_AFTER)
        if not due or not getattr(conn.connection.dbapi_connection, "autocommit", False):
            return
        names = ", ".join(
            _qualified(TRACKING_SCHEMA, "marks") if key == _MARKS else _qualified(*self._parts(key))
            for key in due
        )
        try:
            _query(conn, f"VACUUM {names}")
        except DBAPIError as exc:  # a table dropped since: no matter
            logger.debug("dbrewind: VACUUM %s failed: %s", names, exc)
        for key in due:
            churn.pop(key, None)

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
        """Run a function returning rewind rows, straight on the driver's cursor.

        The rewind runs after every test, and the SQLAlchemy statement layer
        would double the cost of its one round trip.
        """
        raw = conn.connection.dbapi_connection
        assert raw is not None
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except conn.dialect.loaded_dbapi.Error as exc:
            if getattr(raw, "closed", False):
                conn.invalidate(exc)
            raise self._translate(exc, conn, doing) from exc
        if not rows:
            return RewindResult()
        tables: list[str] = []
        deleted: dict[str, int] = {}
        truncated: set[str] = set()
        created: list[str] = []
        dropped: list[str] = []
        recreated: list[str] = []
        for key, count, outcome in rows:
            if outcome == "created":
                created.append(key)
            elif outcome == "dropped":
                dropped.append(key)
            elif outcome == "recreated":
                recreated.append(key)  # its rows came back in a 'deleted' row of its own
            else:
                tables.append(key)
                deleted[key] = int(count)
                if outcome == "truncated":
                    truncated.add(key)
        return RewindResult(
            tables=tuple(sorted(tables)),
            deleted=deleted,
            truncated=frozenset(truncated),
            created_tables=tuple(created),
            dropped_tables=tuple(dropped),
            recreated_tables=tuple(recreated),
        )

    def sandbox_rollback_sql(self) -> str | None:
        """Put back every tracked sequence that moved (``setval`` outlives the rollback)."""
        return f"SELECT {TRACKING_SCHEMA}.reset_moved_sequences()"

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
            if not conn.execute(_INSTALLED_SQL).scalar():
                return Installation(installed=False)
            row = conn.execute(_INSTALLATION_SQL, {"schemas": list(self.user_schemas)}).one()
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
            conn.execute(_STATE_SQL, {"keys": list(values), "values": list(values.values())})
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
                row[0] for row in conn.execute(_PUSH_SQL, {"lock_timeout": self._lock_timeout_ms()})
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
            _POP_RAW,
            (depth, [], reset_sequences, self._lock_timeout_ms()),
            "Popping baseline layers of",
        )

    def _translate(
        self, exc: BaseException, conn: Connection, doing: str = "Rewinding"
    ) -> DbrewindError:
        """A dbrewind error for a SQLAlchemy ``DBAPIError`` or a bare driver error.

        ``doing`` starts the sentence of a lock timeout (e.g. "Pushing a baseline layer onto").
        """
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        state = _driver_state(orig) if orig is not None else None
        where = conn.engine.url.render_as_string(hide_password=True)
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        if state in _UNDEFINED:
            return NotPreparedError(
                f"dbrewind tracking is not installed in {where} ({first}). "
                "Call Rewinder.prepare() (or install()) once before tests run."
            )
        if state == _LOCK_NOT_AVAILABLE:
            return LockTimeoutError(
                f"{doing} {where} waited {describe_wait(self.lock_timeout)} for a lock that "
                f"another session holds ({first}); nothing was changed. "
                f"{_open_transactions(conn)} {LOCK_ADVICE}"
            )
        if state == _FK_VIOLATION:
            return DbrewindError(
                f"Rewinding {where} hit a foreign key ({first}). The database role may not "
                "set session_replication_role, so the rewind had to keep FK checks on, and "
                "a cycle of foreign keys blocks it. Run as a superuser, or grant it with: "
                "GRANT SET ON PARAMETER session_replication_role TO <role>; "
                "or declare the foreign keys DEFERRABLE."
            )
        return DbrewindError(f"dbrewind failed on {where}: {first}")

    # ------------------------------------------------------------- connecting
    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """asyncpg's SQLSTATE when it has one; else libpq's message (psycopg, psycopg2 and
        asyncpg's own connection errors carry no code), then the base's OS errors."""
        state = getattr(error, "sqlstate", None)
        if state in _AUTH_STATES:
            return AuthenticationError
        if state == _NO_DATABASE_STATE:
            return DatabaseNotFoundError
        said = str(error).lower()
        for kind, phrases in _CONNECT_PHRASES:
            if any(phrase in said for phrase in phrases):
                return kind
        return super().connect_failure(error)

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
        key = _lock_key(purpose, url.database)
        holder = f"dbrewind lock {os.getpid()}@{socket.gethostname()}"
        stack = ExitStack()
        try:
            conn = stack.enter_context(self._server_connection(url, holder))
            conn.connection.detach()  # never back to a pool: closed by release()
            deadline = time.monotonic() + max(0.0, wait)
            while True:
                taken = conn.exec_driver_sql(
                    f"SELECT pg_try_advisory_lock({_LOCK_NAMESPACE}, {key})"
                ).scalar()
                if taken:
                    return _AdvisoryLock(f"{purpose}:{url.database}", stack)
                left = deadline - time.monotonic()
                if left <= 0:
                    stack.close()
                    return None
                time.sleep(min(_LOCK_POLL, left))
        except DBAPIError as exc:
            stack.close()
            raise LeaseError(
                f"Cannot take dbrewind's {purpose!r} lock for {url.display()}: "
                f"{(str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]}"
            ) from exc
        except BaseException:
            stack.close()
            raise

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """The session holding the lock, from ``pg_locks`` and ``pg_stat_activity``.

        E.g. ``"pid 4242 on 10.0.0.5, dbrewind lock 4242@ci-3"`` (``on a local
        socket`` for a Unix-socket session); a role that may not see another
        role's sessions gets what it may see, at least ``"pid 4242"``.
        """
        key = _lock_key(purpose, url.database)
        with self._server_connection(url) as conn:
            row = conn.execute(_LOCK_HOLDER_SQL, {"ns": _LOCK_NAMESPACE, "key": key}).first()
        if row is None:
            return None
        pid, where, application = row  # both NULL when the role may not see the session
        return (
            f"pid {pid}"
            + (f" on {where}" if where else "")
            + (f", {application}" if application else "")
        )

    def end_open_transactions(self, conn: Connection) -> list[str]:
        """``pg_terminate_backend`` for each other session of this database inside a transaction."""
        ended = []
        for pid, state, seconds, query in conn.execute(_OPEN_TRANSACTIONS_SQL).all():
            if conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                ended.append(
                    f"pid {pid}, {state or 'unknown state'} for {seconds} s, "
                    f"last statement: {query!r}"
                )
        return ended

    def columns_stamp(self, conn: Connection) -> str | None:
        """Count and hash sum of the user schemas' table columns (``pg_attribute``).

        None, without reading the catalog, when the ``dbrewind_ddl`` event
        trigger is on and left no ``!ddl`` mark: no ``ALTER TABLE`` ran since the
        last rewind (one index lookup instead of a scan of every column).
        """
        quiet = conn.exec_driver_sql(_NO_DDL_SQL).scalar()
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
            names = [row[0] for row in conn.execute(_LIST_DATABASES_SQL, {"prefix": prefix})]
        return sorted(names)

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
            for option in _ASYNCPG_SECONDS:
                if isinstance(cparams.get(option), str):
                    cparams[option] = _seconds(option, cparams[option])
        return connect(*cargs, **cparams)

    def connected_database(self, conn: Connection) -> str:
        """``current_database()``: a ``dbname`` option or a proxy may differ from the URL."""
        return str(conn.exec_driver_sql("SELECT current_database()").scalar_one())

    def mark_created(self, conn: Connection) -> None:
        """``COMMENT ON DATABASE <current> IS 'dbrewind test database'``."""
        name = conn.execute(text("SELECT current_database()")).scalar_one()
        _run_script(conn, f"COMMENT ON DATABASE {_ident(name)} IS {_lit(CREATED_COMMENT)}")
