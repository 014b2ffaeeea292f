"""Installing and removing the tracking objects, and reading back what is installed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import ConfigurationError, DbrewindError
from ..base import Installation, SchemaInfo
from ._sql import (
    _STATE_KEY_LENGTH,
    CASCADE_TABLE,
    LAYERS_TABLE,
    MARKS_TABLE,
    META_TABLE,
    RESET_PROCEDURE,
    REWIND_PROCEDURE,
    SIGNATURE_TABLE,
    STATE_TABLE,
    TABLES_TABLE,
    _errno,
    _first_line,
    _ident,
    _is_mariadb,
    _run_batches,
    _sql,
)
from .rewind import _Rewinding
from .tracking import (
    _INSTALLATION_SQL,
    _NOT_INSTALLED_ERRNOS,
    _Baseline,
    _copy_name,
    _copy_sql,
    _procedure_sql,
    _TablePlan,
    _trigger_names,
    _trigger_sql,
)

__all__ = ["_Installing"]


class _Installing(_Rewinding):
    """``install``, ``uninstall``, ``installation`` and the installation's state."""

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
