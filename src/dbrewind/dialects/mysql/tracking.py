"""The tracking objects as SQL: triggers, the rewind check and the two procedures.

Pure functions of the tracked tables' plans (:class:`_TablePlan`): nothing here
talks to a server, so the generated SQL can be read and tested without one. The
procedures' fixed parts are ``reset_counters.sql`` and ``rewind.sql`` beside this
module; the per-table branches are generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import NamedTuple

from ..base import Table, short_name
from ._sql import (
    _PAUSE_VAR,
    _TRIGGER_TAGS,
    CASCADE_TABLE,
    LAYERS_TABLE,
    MARKS_TABLE,
    PREFIX,
    RESET_PROCEDURE,
    REWIND_PROCEDURE,
    SIGNATURE_TABLE,
    STATE_TABLE,
    TABLES_TABLE,
    _ident,
    _lit,
)

__all__ = [
    "_CALL_SQL",
    "_CLEAR_MARKS_SQL",
    "_INSTALLATION_SQL",
    "_MARKED_SQL",
    "_NOT_INSTALLED_ERRNOS",
    "_QUICK_SQL",
    "_RESET_SQL",
    "_SIGNATURE_SQL",
    "_Baseline",
    "_TablePlan",
    "_copy_name",
    "_copy_sql",
    "_keys_blob",
    "_procedure_sql",
    "_trigger_names",
    "_trigger_sql",
]


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

_DDL_STATEMENTS = (
    "ALTER_TABLE",
    "CREATE_INDEX",
    "CREATE_TABLE",
    "CREATE_TRIGGER",
    "DROP_DB",
    "DROP_INDEX",
    "DROP_TABLE",
    "DROP_TRIGGER",
    "RENAME_TABLE",
    "TRUNCATE",
)
"""The statement kinds that can change what a rewind must know of the tables (their list,
columns, definitions, triggers, a ``TRUNCATE``'s emptied rows), as the server counts them
(``Com_<kind>``: every such statement of every session, any engine, inside stored
routines and prepared statements too; temporary tables are not counted)."""


def _quick_sql(status_table: str) -> str:
    names = ", ".join(f"'COM_{name}'" for name in _DDL_STATEMENTS)
    return (
        f"SELECT (SELECT MAX(`id`) FROM {_ident(MARKS_TABLE)}), "
        f"(SELECT SUM(VARIABLE_VALUE) FROM {status_table} WHERE VARIABLE_NAME IN ({names}))"
    )


_QUICK_SQL = {
    True: _quick_sql("information_schema.GLOBAL_STATUS"),  # MariaDB
    False: _quick_sql("performance_schema.global_status"),  # MySQL 8
}
"""One cheap read, the first step of every rewind: the newest mark, and how many DDL
statements the server has run (all sessions, all databases) since it started. No mark and
the same count as before the last full check: nothing was written, truncated, created,
dropped or altered since."""


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
    fill = {
        "create": create,
        "reset": _ident(RESET_PROCEDURE),
        "rewind": _ident(REWIND_PROCEDURE),
        "marks": marks,
        "cascade": _ident(CASCADE_TABLE),
        "pause": _PAUSE_VAR,
        "stats": stats,
        "check": check,
        "dml_case": dml_case,
        "ddl_case": ddl_case,
    }
    reset = "\n" + _template("reset_counters.sql").format_map(fill)
    rewind = "\n" + _template("rewind.sql").format_map(fill)
    return [reset, rewind]


def _template(name: str) -> str:
    """A procedure's fixed text from the ``.sql`` file ``name`` beside this module, without
    the file's header (its comment lines up to the first blank line)."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8").split("\n\n", 1)[1]
