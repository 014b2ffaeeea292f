"""PostgreSQL: statement-level tracking triggers and a one-round-trip server-side rewind.

Everything dbrewind installs lives in its own schema, ``dbrewind``:

``dbrewind.marks(tbl text)``
    One row per table written since the last rewind. No unique key: the
    trigger inserts a mark only when its snapshot sees none, so two
    transactions writing the same table never wait on each other (at worst
    both insert a mark). A mark written in a transaction that rolls back
    vanishes with it.
``dbrewind.mark()``
    The one trigger function, fired ``BEFORE INSERT OR UPDATE OR DELETE OR
    TRUNCATE .. FOR EACH STATEMENT`` on every user table and on every
    partition (a statement aimed straight at a partition fires only the
    partition's triggers); the table key is the trigger argument. After
    marking, it sets the transaction-local setting ``dbrewind.seen_<n>``,
    and the trigger's ``WHEN`` skips the call while that is set: a
    transaction pays for tracking once per table, not once per statement
    (2,000 single-row inserts cost one mark). The setting is reverted on
    commit, rollback and rollback to a savepoint, just as the mark is.
    ``BEFORE`` rather than ``AFTER``: the trigger runs at once instead of
    being queued for the statement's end, which makes tracking nearly free;
    a statement that then fails takes its mark along when it rolls back.
``dbrewind.tables``
    One row per tracked table, found by its qualified name (``target``) and
    its oid (``relid``, to notice it was dropped and created again): delete
    order, precomputed delete / restore SQL, the tables referencing it.
``dbrewind.table_sql``
    What only a push and a table created again need, kept out of the
    rewind's way (it reads ``dbrewind.tables`` on every call): per tracked
    table its kind, restored columns, copy SQL, and the ``CREATE TRIGGER``
    statements that track it, exactly as the install ran them.
``dbrewind.sequences``
    The baseline value of each sequence a tracked table draws from, with the
    column that draws from it (a table created again owns new sequences).
``dbrewind."b_<n>"``, ``dbrewind."b_<n>_<depth>"``
    Baseline copies of the tables that held rows when tracking was
    installed, and when a baseline layer was pushed.
``dbrewind.state(key text, value text)``
    Key/value state recorded with the installation (``write_state``).
``dbrewind.layers``, ``dbrewind.layer_sequences``
    Baseline layers: per depth and table, the restore SQL and the sequence
    values the table had below the layer, and the layer's own copy.
``dbrewind.rewind(truncate text[], reset_sequences boolean, ..)``
    Reads the marks and puts the dirty tables back, all in the one statement
    that calls it. It runs with ``session_replication_role = replica`` (no FK
    checks, no user triggers) when the role may set it, and otherwise deletes
    children first, taking along the tables that reference a dirty one. A
    tracked table dropped and created again under its name is tracked again
    (``dbrewind.track_again``) and rewound, or reported dropped when its
    baseline rows no longer fit.
``dbrewind.push_baseline(..)``, ``dbrewind.pop_baseline(..)``
    Push a baseline layer (the dirty tables' rows become their baseline) and
    pop layers again (then rewind); each runs as one statement.
``dbrewind.reset_moved_sequences()``
    Puts back every tracked sequence that moved (the rollback sandbox).
``dbrewind_ddl`` (event trigger, superuser only)
    Marks DDL that creates, drops or renames tables, so the rewind compares
    the table list with the baseline's only after such DDL. Without it, the
    rewind compares on every call (a catalog query).

Locks (:meth:`PostgreSQLDialect.acquire_lock`) are session-level advisory
locks ``pg_try_advisory_lock(ns, key)`` held on a connection of their own to
the server's ``postgres`` database; nothing is installed for them.

The package, by concern:

``_sql``       the names of dbrewind's objects, SQL quoting, running generated
               SQL, and reading the ``.sql`` files (their placeholders)
``tracking``   what the installation runs, rendered as SQL (pure functions;
               the static SQL is in ``install.sql``, ``mark.sql``,
               ``lifecycle.sql``, ``rewind.sql`` and ``mark_ddl.sql``)
``catalog``    the catalog queries: the user's tables, the facts an install
               needs, the installation's state
``rewind``     calling the rewind and the baseline layers, and vacuuming
``databases``  advisory locks, and asyncpg's connect options
``errors``     what the server's errors mean
``server``     the server's version and settings, the sessions on a database
``sandbox``    :class:`PostgreSQLSandboxOps`, the rollback sandbox's specifics
``dialect``    :class:`PostgreSQLDialect`, the interface, delegating to the above
"""

from __future__ import annotations

from ._sql import CREATED_COMMENT, TRACKING_SCHEMA
from .databases import _lock_key as _lock_key
from .dialect import PostgreSQLDialect
from .sandbox import PostgreSQLSandboxOps as PostgreSQLSandboxOps

__all__ = ["CREATED_COMMENT", "TRACKING_SCHEMA", "PostgreSQLDialect"]
