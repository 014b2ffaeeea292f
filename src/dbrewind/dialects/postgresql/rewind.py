"""The rewind and the baseline layers, seen from the client: one statement each.

The server side is ``rewind.sql`` and ``lifecycle.sql`` (see :mod:`.tracking`).
Here: the calls, reading their rows into a :class:`RewindResult`, the replica
role a rewinding connection may keep, and the ``VACUUM`` of what rewinds leave dead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import DbrewindError
from ..base import RewindResult
from ._sql import TRACKING_SCHEMA, _qualified, _query, logger

__all__ = [
    "VACUUM_AFTER",
    "_POP_RAW",
    "_PUSH_SQL",
    "_REWIND_RAW",
    "_call_rewinding",
    "_reset_role_on_checkin",
    "_vacuum_when_due",
]


VACUUM_AFTER = 2000
"""Dead rows (estimated) the rewinds leave in a table before dbrewind vacuums it."""
_MARKS = "\x00marks"
"""The churn key of dbrewind's own marks table (no table key can hold a NUL)."""

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


def _vacuum_when_due(
    conn: Connection,
    result: RewindResult,
    churn: dict[str, int],
    parts: Callable[[str], tuple[str, str]],
) -> None:
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
    for key, count in result.deleted.items():
        if key not in result.truncated:
            churn[key] = churn.get(key, 0) + max(count, 1) * 2  # the old version, and ours
    # the marks are read by every tracked write: keep them denser (every ~500 rewinds)
    churn[_MARKS] = churn.get(_MARKS, 0) + 4 * len(result.tables)
    due = sorted(key for key, dead in churn.items() if dead >= VACUUM_AFTER)
    if not due or not getattr(conn.connection.dbapi_connection, "autocommit", False):
        return
    names = ", ".join(
        _qualified(TRACKING_SCHEMA, "marks") if key == _MARKS else _qualified(*parts(key))
        for key in due
    )
    try:
        _query(conn, f"VACUUM {names}")
    except DBAPIError as exc:  # a table dropped since: no matter
        logger.debug("dbrewind: VACUUM %s failed: %s", names, exc)
    for key in due:
        churn.pop(key, None)


def _call_rewinding(
    conn: Connection,
    sql: str,
    params: tuple[object, ...],
    doing: str,
    translate: Callable[[BaseException, Connection, str], DbrewindError],
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
        raise translate(exc, conn, doing) from exc
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
