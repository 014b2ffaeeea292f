"""What tracking installs, rendered as SQL: pure functions, no server needed.

The static SQL lives in ``.sql`` files beside this module, each with a header
naming its placeholders (see :func:`._sql._render` for the rules):

``install.sql``
    The tracking schema, its tables, ``dbrewind.reset_moved_sequences()``,
    and (through placeholders) ``mark.sql`` and ``lifecycle.sql``.
``mark.sql``
    ``dbrewind.mark()``, the trigger function on every tracked table.
``lifecycle.sql``
    ``dbrewind.track_again``, ``dbrewind.push_baseline``, ``dbrewind.pop_baseline``.
``rewind.sql``
    ``dbrewind.rewind``, rendered per installation by :func:`_rewind_function`.
``mark_ddl.sql``
    ``dbrewind.mark_ddl()`` and the ``dbrewind_ddl`` event trigger (superuser only).

:func:`_install_script` puts them together with what depends on the tables:
their ``CREATE TRIGGER`` statements, baseline copies, and the rows of
``dbrewind.tables``, ``dbrewind.table_sql`` and ``dbrewind.sequences``. What it
needs to know of the server (oids, kinds, which tables hold rows, sequence
values) comes in an :class:`_InstallFacts`, which :mod:`.catalog` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..base import SchemaInfo, Table
from ._sql import (
    _DDL_MARK,
    _DDL_TAGS,
    _EVENT_TRIGGER,
    _EXTERNAL,
    _OWN_DDL,
    _SEEN_PREFIX,
    _TRIGGER,
    TRACKING_SCHEMA,
    _ident,
    _lit,
    _qualified,
    _render,
    _text_array,
)

__all__ = [
    "_DDL_FUNCTION",
    "_LIFECYCLE_FUNCTIONS",
    "_MARK_FUNCTION",
    "_InstallFacts",
    "_drop_script",
    "_from",
    "_install_script",
    "_rewind_function",
    "_target",
]

_MARK_FUNCTION = "\n" + _render("mark.sql", schema=TRACKING_SCHEMA)

_DDL_FUNCTION = "\n" + _render(
    "mark_ddl.sql",
    schema=TRACKING_SCHEMA,
    own_ddl=_lit(_OWN_DDL),
    ddl_mark=_lit(_DDL_MARK),
    event_trigger=_EVENT_TRIGGER,
    ddl_tags=", ".join(_lit(t) for t in _DDL_TAGS),
)

_LIFECYCLE_FUNCTIONS = "\n" + _render(
    "lifecycle.sql", schema=TRACKING_SCHEMA, own_ddl=_lit(_OWN_DDL), trigger=_lit(_TRIGGER)
)


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
    return "\n" + _render(
        "rewind.sql",
        schema=s,
        tag=tag,
        quick_exit=quick_exit,
        compare=compare,
        schemas=_text_array(schemas),
        ddl_mark=_lit(_DDL_MARK),
    )


def _drop_script() -> str:
    return (
        f"DROP EVENT TRIGGER IF EXISTS {_EVENT_TRIGGER};\n"
        f"DROP SCHEMA IF EXISTS {TRACKING_SCHEMA} CASCADE;\n"
    )


def _target(table: Table) -> str:
    return _qualified(table.schema or "public", table.name)


def _from(table: Table, info: dict[str, tuple[int, str]]) -> str:
    kind = info[table.key][1]
    return ("" if kind == "p" else "ONLY ") + _target(table)


@dataclass(frozen=True)
class _InstallFacts:
    """What :func:`_install_script` needs to know of the tables as they are now."""

    info: dict[str, tuple[int, str]]
    """Per table key, its oid and ``relkind``."""
    external: set[str] = field(default_factory=set)
    """Keys of the tables a foreign key of an untracked table references."""
    non_empty: set[str] = field(default_factory=set)
    """Keys of the tables that hold rows (they get a baseline copy)."""
    seq_values: dict[str, tuple[int, bool]] = field(default_factory=dict)
    """Per qualified sequence name, its ``last_value`` and ``is_called``."""
    seq_columns: dict[tuple[int, str], str] = field(default_factory=dict)
    """Per (table oid, qualified sequence name), the column that draws from it."""


def _install_script(
    schema: SchemaInfo,
    facts: _InstallFacts,
    user_schemas: Sequence[str],
    superuser: bool,
) -> str:
    """The whole installation as one script: drop any earlier one, create the
    objects, track ``schema``'s tables and copy their baseline rows.

    The event trigger is created only for a ``superuser``; otherwise the
    rewind compares table lists itself.
    """
    s = TRACKING_SCHEMA
    order = schema.delete_order()
    info = facts.info
    script = [_drop_script()]
    script.append(
        "\n"
        + _render(
            "install.sql",
            schema=s,
            mark_function=_MARK_FUNCTION,
            lifecycle_functions=_LIFECYCLE_FUNCTIONS,
        )
    )
    rows: list[str] = []
    sql_rows: list[str] = []
    seq_rows: list[str] = []
    for ord_, key in enumerate(order):
        table = schema.tables[key]
        oid, kind = info[key]
        target = _target(table)
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
        if key in facts.non_empty:
            copy = f'{s}."b_{ord_}"'
            script.append(f"CREATE TABLE {copy} AS {copy_sql};")
            restore_sql = restore_head + copy
        for q in table.sequences:
            column = facts.seq_columns.get((oid, q))
            value, called = facts.seq_values[q]
            seq_rows.append(
                f"({len(seq_rows)}, {_lit(key)}, "
                f"{'NULL' if column is None else _lit(column)}, {_lit(q)}::regclass, "
                f"{_lit(q)}, {value}, {'true' if called else 'false'})"
            )
        delete_sql = f"DELETE FROM {only}{target}"
        referenced_by = sorted(schema.referencing(key))
        if key in facts.external:
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
    script.append(_rewind_function(user_schemas, not superuser))
    if superuser:
        script.append(_DDL_FUNCTION)
    return "\n".join(script)
