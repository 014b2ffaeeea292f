"""What the catalogs say: the user's tables, the facts an install needs, the installation.

The queries of :meth:`PostgreSQLDialect.inspect`, :meth:`~PostgreSQLDialect.install`
(before it renders its script, see :mod:`.tracking`),
:meth:`~PostgreSQLDialect.installation` and the small reads and writes of the
tracking tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ...exceptions import SchemaChangedError
from ..base import ForeignKey, SchemaInfo, Table
from ._sql import (
    _DDL_MARK,
    _EVENT_TRIGGER,
    _TRIGGER,
    TRACKING_SCHEMA,
    _lit,
    _qualified,
    _query,
)
from .tracking import _from, _InstallFacts, _target

__all__ = [
    "_DIRTY_SQL",
    "_INSTALLATION_SQL",
    "_INSTALLED_SQL",
    "_MARK_SQL",
    "_NO_DDL_SQL",
    "_RECEIPT_SQL",
    "_STATE_SQL",
    "_TRACKED_SQL",
    "_inspect",
    "_install_facts",
    "_is_superuser",
]


_NO_DDL_SQL = (
    f"SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = {_lit(_EVENT_TRIGGER)} "
    f"AND evtenabled <> 'D') AND NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks "
    f"WHERE tbl = {_lit(_DDL_MARK)})"
)
"""True when the event trigger is on and has seen no DDL since the last rewind."""

_RECEIPT_SQL = (
    f"SELECT NOT EXISTS (SELECT 1 FROM {TRACKING_SCHEMA}.marks) AND EXISTS (SELECT 1 FROM "
    f"pg_event_trigger WHERE evtname = {_lit(_EVENT_TRIGGER)} AND evtenabled <> 'D')"
)
"""True when nothing is marked (no tracked write, no DDL) and the event trigger that
marks DDL is on: a rewind would find nothing to do."""


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


_INSTALL_TABLES_SQL = text(
    """
    SELECT k.key, c.oid, c.relkind
    FROM unnest(CAST(:keys AS text[]), CAST(:targets AS text[])) AS k(key, target)
    JOIN pg_class c ON c.oid = to_regclass(k.target)
    """
)
"""Oid and kind of each table to install, found by its qualified name."""
_REFERENCED_FROM_OUTSIDE_SQL = text(
    """
    SELECT k.key, true
    FROM unnest(CAST(:keys AS text[]), CAST(:oids AS oid[])) AS k(key, oid)
    WHERE EXISTS (SELECT 1 FROM pg_constraint con
                  WHERE con.contype = 'f' AND con.confrelid = k.oid
                    AND con.conparentid = 0
                    AND NOT con.conrelid = ANY(CAST(:oids AS oid[])))
    """
)
"""The tables a foreign key of a table outside the installation references."""


def _is_superuser(conn: Connection) -> bool:
    """Whether the role is a superuser (it may create event triggers)."""
    return bool(
        conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    )


def _inspect(conn: Connection, user_schemas: Sequence[str]) -> SchemaInfo:
    """Tables (``r``/``p``, never partitions, views or foreign tables) of the user schemas."""
    rows = conn.execute(_TABLES_SQL, {"schemas": list(user_schemas)}).all()
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


def _install_facts(conn: Connection, schema: SchemaInfo) -> _InstallFacts:
    """Oids, kinds and outside references of ``schema``'s tables as they are now, which
    of them hold rows, and their sequences' values; in the caller's transaction."""
    order = schema.delete_order()
    found = conn.execute(
        _INSTALL_TABLES_SQL,
        {"keys": order, "targets": [_target(schema.tables[k]) for k in order]},
    ).all()
    info = {key: (oid, kind) for key, oid, kind in found}
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
            _REFERENCED_FROM_OUTSIDE_SQL,
            {"keys": list(info), "oids": all_oids},
        )
    }
    # Which tables hold rows (one round trip), and sequence values.
    non_empty: set[str] = set()
    if order:
        probe = " UNION ALL ".join(
            f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {_from(schema.tables[k], info)})"
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

    return _InstallFacts(
        info=info,
        external=external,
        non_empty=non_empty,
        seq_values=seq_values,
        seq_columns=seq_columns,
    )
