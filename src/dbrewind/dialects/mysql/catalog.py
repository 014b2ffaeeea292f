"""What the MySQL dialect reads from the catalog, and how it reports driver errors.

:class:`_Catalog` is the root of the :class:`~dbrewind.dialects.mysql.MySQLDialect`
class chain: introspection, the table list's signature and stamps, the tracked
and dirty tables, and the translation of driver errors into dbrewind's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import DbrewindError, LockTimeoutError, NotPreparedError, SchemaChangedError
from ..base import LOCK_ADVICE, Dialect, ForeignKey, LockWait, SchemaInfo, Table, describe_wait
from ._sql import (
    _COPY_DEPTH,
    _LOCK_WAIT_TIMEOUT,
    _LOCK_WAITS_SQL,
    _MISSING_ERRNOS,
    _OPEN_TRANSACTIONS_SQL,
    _SCHEMA_CHANGED_ERRNOS,
    CASCADE_TABLE,
    MARKS_TABLE,
    PREFIX,
    TABLES_TABLE,
    _current_database,
    _errno,
    _first_line,
    _ident,
    _is_mariadb,
    _open_transactions,
    _row_counts,
    _sql,
)
from .tracking import _SIGNATURE_SQL

__all__ = ["_Catalog"]


class _Catalog(Dialect):
    """Introspection and catalog reads; the errors every other part raises."""

    _stamp_pattern: str | None

    def __init__(self, *, schemas: tuple[str, ...] = ()) -> None:
        super().__init__(schemas=schemas)
        self._stamp_pattern = None

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

    def lock_waits(self, conn: Connection, session: int) -> list[LockWait]:
        """InnoDB row-lock waits on a lock ``session`` holds (``INNODB_LOCK_WAITS``; needs
        the PROCESS privilege: without it, none are seen)."""
        try:
            rows = _sql(conn, _LOCK_WAITS_SQL.format(session=int(session))).all()
        except DBAPIError:
            return []
        return [LockWait(int(thread), query, float(seconds)) for thread, query, seconds in rows]

    def cancel_statement(self, conn: Connection, session: int) -> None:
        """``KILL QUERY``: the statement fails with error 1317; the session stays."""
        _sql(conn, f"KILL QUERY {int(session)}")

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
        return _current_database(conn)

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
