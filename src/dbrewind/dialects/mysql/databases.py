"""Databases on the server: exists, create (a copy of a template), drop, list, creation mark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..._url import DatabaseURL
from ...exceptions import (
    ConfigurationError,
    ConnectionFailedError,
    DatabaseCreationError,
    DatabaseDropError,
)
from ..base import Dialect, server_connection
from ._sql import (
    _DEFINER,
    CREATED_COMMENT,
    META_TABLE,
    _autocommit_engine,
    _current_database,
    _errno,
    _first_line,
    _ident,
    _is_mariadb,
    _lit,
    _row_counts,
    _run_batches,
    _sql,
)

__all__ = ["_Databases", "_copy_counters", "_server", "_server_connection"]


def _server(url: DatabaseURL) -> Engine:
    # an empty name makes the driver connect to no database
    return _autocommit_engine(url.with_database(""))


def _server_connection(url: DatabaseURL) -> AbstractContextManager[Connection]:
    return server_connection(_server(url), "MySQL/MariaDB server", url)


class _Databases(Dialect):
    """The databases of a server: what ``prepare`` creates, copies and drops."""

    def database_exists(self, url: DatabaseURL) -> bool:
        """Looks the name up in ``information_schema.SCHEMATA``."""
        with _server_connection(url) as conn:
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
        with _server_connection(url) as conn:
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
        with _server_connection(url) as conn:
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
        database = _current_database(conn)
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

    def list_databases(self, url: DatabaseURL, prefix: str) -> list[str]:
        """``information_schema.SCHEMATA`` names starting with ``prefix`` (compared exactly,
        in Python: the catalog's collation ignores case and ``LIKE`` treats ``_`` as a wildcard)."""
        with _server_connection(url) as conn:
            names = [
                row[0]
                for row in conn.execute(text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"))
            ]
        return sorted(name for name in names if name.startswith(prefix))


# ------------------------------------------------------------------ schema copy


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
