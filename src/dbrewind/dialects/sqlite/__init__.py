"""SQLite: row-level tracking triggers, baseline copies in the same file, file-level databases.

What is tracked: every ordinary table and every ``WITHOUT ROWID`` table of the
``main`` schema. Views, SQLite's internal ``sqlite_*`` tables, dbrewind's own
``dbrewind_*`` tables, virtual tables (FTS, R*Tree, ...) and their shadow
tables are left alone: a virtual table's storage belongs to its module, and
rewriting the shadow tables behind the module's back could corrupt it.

Objects dbrewind adds to the database (all prefixed ``dbrewind_``):

* ``dbrewind_marks(tbl)``: one row per table written to since the last
  rewind. Three ``AFTER INSERT/UPDATE/DELETE ... FOR EACH ROW`` triggers per
  table (``dbrewind_i_*``, ``dbrewind_u_*``, ``dbrewind_d_*``) add the row.
  The trigger inserts only ``WHEN NOT EXISTS`` a mark, so after the first row
  a write costs one index probe. (``INSERT OR IGNORE`` in the trigger body
  would not do: SQLite lets the conflict clause of the statement that fired
  the trigger, e.g. ``INSERT OR ABORT``, override the one in the body.)
* ``dbrewind_b_*``: a copy of each table that held rows when tracking was
  installed (with the ``rowid`` for rowid tables, so rows come back with the
  same ``rowid`` and the next implicit id is what it was).
* ``dbrewind_tables``: the tracked tables, their baseline copy, the
  ``INSERT`` that restores it and the table's ``sqlite_sequence`` value
  (``AUTOINCREMENT`` counter) of the baseline in force.
* ``dbrewind_state``: the ``PRAGMA schema_version`` after install (and after
  each rewind or push that saw DDL), so a rewind can tell cheaply whether any
  DDL ran since.
* ``dbrewind_lifecycle(key, value)``: the text key/value state the lifecycle
  records with the installation (:meth:`SQLiteDialect.write_state`); no
  trigger watches it, so writing it dirties nothing.
* ``dbrewind_layers``: one row per table captured by a baseline layer
  (:meth:`SQLiteDialect.push_baseline`): its depth, the layer's own copy
  ``dbrewind_b<depth>_*`` of the table's rows, and the registry entry
  (copy, restore ``INSERT``, counter) that was in force below it, which
  :meth:`SQLiteDialect.pop_baseline` puts back.
* ``dbrewind_meta``: the mark saying dbrewind created the database (kept by
  :meth:`SQLiteDialect.uninstall`).

Beside the database file (never inside it, never deleted, and left alone by
:meth:`SQLiteDialect.drop_database`): ``<file>-dbrewind-<purpose>.lock``, the
files :meth:`SQLiteDialect.acquire_lock` takes an exclusive ``flock`` on, each
holding ``<pid>@<host>`` of its holder; when that directory cannot be written,
``dbrewind-locks/<hash>.lock`` in the system's temporary directory instead.

A rewind runs in one ``BEGIN IMMEDIATE ... COMMIT`` on dbrewind's own
connection with ``PRAGMA foreign_keys`` switched off for its duration (the
pragma cannot change inside a transaction, and is put back afterwards), so
the order of the deletes does not matter and ``ON DELETE CASCADE`` does not
fire. ``PRAGMA synchronous`` is off for the rewind too, so its commit does
not wait for the disk (over ten times faster on a file database); a power
cut during a rewind can cost the test database, never the application's
data, and the application's own connections keep their setting. The user's
own triggers on the tables being rewound are dropped and recreated inside
the same transaction, so they do not fire on the rewind's deletes and
re-inserts either. Pushing and popping a baseline layer run the same way,
each in one transaction, so a crash leaves the layers as they were.

An in-memory database lives only as long as its connection: dbrewind must
share the application's connection (a ``StaticPool`` engine given to
:class:`dbrewind.Rewinder` as ``engine=``). It always exists, cannot be
dropped or cloned, and is private to its process: its locks are always granted.

The package, by concern:

* :mod:`._sql` — the names of dbrewind's objects, quoting, the ``.sql``
  files, the transaction and error helpers the other modules share.
* :mod:`.catalog` — reading the schema: tables, columns, foreign keys,
  counters, and which triggers are the user's.
* :mod:`.tracking` — the install: the tables of ``install.sql``, the
  baseline copies and the triggers, whose SQL pure functions render
  (:func:`.tracking.trigger_sql`, :func:`.tracking.baseline_sql`).
* :mod:`.rewind` — rewinding, pushing and popping baseline layers.
* :mod:`.files` — databases as files: create, copy, drop, list, and the lock files.
* :mod:`.sandbox` — :class:`SQLiteSandboxOps`, the rollback sandbox's part.
* :mod:`.dialect` — :class:`SQLiteDialect`, which hands the work to the above.
"""

from __future__ import annotations

from ._sql import BASELINE_PREFIX as BASELINE_PREFIX
from ._sql import LAYERS as LAYERS
from ._sql import LIFECYCLE as LIFECYCLE
from ._sql import MARKS as MARKS
from ._sql import META as META
from ._sql import REGISTRY as REGISTRY
from ._sql import STATE as STATE
from ._sql import TRIGGER_PREFIXES as TRIGGER_PREFIXES
from .dialect import SQLiteDialect
from .sandbox import SQLiteSandboxOps as SQLiteSandboxOps

__all__ = ["SQLiteDialect"]
