"""MySQL / MariaDB: row triggers, an append-only marks table, one stored procedure.

How tracking works here (MariaDB 10.11, MySQL 8):

* Every user table gets three ``AFTER INSERT/UPDATE/DELETE ... FOR EACH ROW``
  triggers. A trigger appends the table's name to ``dbrewind_marks`` at most
  once per statement: it remembers the statement's start time
  (``@@timestamp``, in microseconds: constant within a statement, different
  between statements, and cheaper per row than ``NOW(6)``) in a session
  variable of its own, so a 2,000-row ``INSERT`` writes one mark. The marks
  table has no unique key and the trigger reads nothing, so two transactions
  writing the same table never wait on each other for their marks.
* ``install`` copies each non-empty table into ``dbrewind_b_<name>`` (the
  baseline), records row counts and ``AUTO_INCREMENT`` values, and generates
  the procedure ``dbrewind_rewind``. One ``CALL`` then does the whole rewind:
  it compares the schema's table list with the baseline's, probes seeded
  tables for a ``TRUNCATE`` (see below), reads the marks, returns at once when
  there are none, and otherwise, with
  ``FOREIGN_KEY_CHECKS=0`` (so order and cycles do not matter), deletes each
  dirty table and re-inserts its baseline rows in one transaction (which also
  deletes the marks, so a rewind without DDL costs one commit). A table whose
  counter moved needs DDL: one with an empty baseline and counter 1 is
  ``TRUNCATE``d inside the ``CALL`` (cheaper than ``DELETE`` + ``ALTER``), as
  are tables dbrewind learned are large. Any other gets ``ALTER TABLE ..
  AUTO_INCREMENT`` back to its baseline value; on dbrewind's own connection
  that runs after the ``CALL`` returned, on a second connection that holds
  ``LOCK TABLES .. WRITE`` on those tables until it is done (the ``ALTER``
  costs more than the rest of the rewind; see ``_CounterReset``).
* The check that runs after every test (nothing dirty) is one statement
  inside the ``CALL``: the table list's signature from
  ``information_schema.TABLES`` (names only, no table is opened), the
  ``TRUNCATE`` probe and the newest mark; a clean database answers with no
  result set. The ``information_schema`` scan is most of that cost. Global
  status counters (``Com_create_table`` ..) would be a cheaper "no DDL
  happened" signal in principle, but on MariaDB 10.11 reading them
  (``information_schema.GLOBAL_STATUS``) evaluates every engine's status
  function and costs more than the scan it would skip, so there is none.
* Foreign-key actions (``ON DELETE CASCADE``, ``SET NULL``, ``ON UPDATE ..``)
  do not fire triggers in MySQL/MariaDB, so a dirty table also makes dirty
  every table its cascades can reach.
* Baseline layers (``push_baseline`` / ``pop_baseline``) live in the database:
  a push copies each dirty table into ``dbrewind_b<depth>_<name>``, keeps the
  table's previous ``dbrewind_tables`` row in ``dbrewind_layers`` and points
  ``dbrewind_tables`` at the new copy; a pop puts the rows of the layers above
  the target back. Both regenerate the two procedures from ``dbrewind_tables``
  (the procedures embed each table's copy, row count and counter as static
  branches), so the per-test rewind costs what it cost before. The steps are
  ordered so that a crash leaves a layer the next ``pop_baseline`` finds and
  finishes (see :meth:`MySQLDialect.pop_baseline`).
* Locks (``acquire_lock``) are ``GET_LOCK`` named
  ``dbrewind:<purpose>:<database>`` (hashed when longer than 64 characters or
  not lower case), held on a connection of their own to the server.

Objects, all named ``dbrewind_*`` (user tables with that prefix are ignored):

* ``dbrewind_i_*``, ``dbrewind_u_*``, ``dbrewind_d_*``: the three triggers on
  each tracked table;
* ``dbrewind_marks``: the append-only marks;
* ``dbrewind_tables``: each tracked table's current baseline (copy, row count,
  ``AUTO_INCREMENT`` value);
* ``dbrewind_cascade``: which tables FK cascades reach from which;
* ``dbrewind_signature``: the table list's signature at install (the rewind
  checks it; a regenerated procedure embeds the same one);
* ``dbrewind_state``: key/value state recorded with the installation
  (``write_state``);
* ``dbrewind_layers``: the baseline layers pushed above the install's own;
* ``dbrewind_b_*`` (the install's) and ``dbrewind_b<depth>_*`` (a layer's):
  copies of the baseline rows of tables that had rows;
* the procedures ``dbrewind_rewind`` and ``dbrewind_reset_counters``;
* ``dbrewind_meta`` (MySQL only, no schema comments): the creation mark of a
  database dbrewind created; it survives ``uninstall``.

Known limits, by the database's design:

* ``TRUNCATE`` fires no trigger. A truncated table whose baseline has rows is
  found empty by a cheap probe at each rewind and restored. A truncated table
  whose baseline is empty lost nothing but, when its counter was above 1, its
  counter value; that is not detected (reading every table's counter costs
  ~2.6 ms for 100 tables, more than the rewind itself), nor is a ``TRUNCATE``
  in a test that also created or dropped a table. ``--dbrewind-verify``
  reports what is left.
* A session that freezes time with ``SET timestamp = ..`` makes
  ``@@timestamp`` constant across statements; a mark rolled back in such a
  session is not written again until the time changes.
* A table dropped and created again under its name *during* a test is not seen
  by the per-test rewind: the table list's signature is unchanged, and seeing
  that its triggers are gone would cost an ``information_schema.TRIGGERS`` read
  on every rewind (~8 ms for 100 tables, several times the whole check). Its
  writes are not marked from then on (a seeded one found empty is still
  refilled by the ``TRUNCATE`` probe). :meth:`MySQLDialect.installation`
  reports it (``untracked``), so the lifecycle reinstalls; within one run,
  prepare again after such a test.
* :attr:`Installation.dirty` is what the marks say, like ``dirty_tables``: a
  seeded table a ``TRUNCATE`` emptied is not in it (no trigger fired), but
  :meth:`MySQLDialect.push_baseline` probes for it and captures it.

The code, by concern: :mod:`.dialect` (the class, put together from the parts
below), :mod:`.catalog`, :mod:`.rewind`, :mod:`.install`, :mod:`.layers`,
:mod:`.databases`, :mod:`.locks`, :mod:`.connect`, :mod:`.server`, :mod:`.sandbox`; the SQL is
generated by :mod:`.tracking` (with ``reset_counters.sql`` and ``rewind.sql``),
names and quoting are in :mod:`._sql`.
"""

from __future__ import annotations

from ..base import CONNECT_TIMEOUT as CONNECT_TIMEOUT
from ._sql import (
    CREATED_COMMENT,
    MARKS_TABLE,
    PREFIX,
    REWIND_PROCEDURE,
    VERSION_SQL,
    takes_returning,
)
from ._sql import RESET_PROCEDURE as RESET_PROCEDURE
from .databases import _copy_counters as _copy_counters
from .dialect import MySQLDialect
from .locks import _lock_name as _lock_name
from .sandbox import MySQLSandboxOps as MySQLSandboxOps

__all__ = [
    "CREATED_COMMENT",
    "MARKS_TABLE",
    "PREFIX",
    "REWIND_PROCEDURE",
    "VERSION_SQL",
    "MySQLDialect",
    "takes_returning",
]
