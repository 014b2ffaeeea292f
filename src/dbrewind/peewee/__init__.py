"""A rollback sandbox for synchronous peewee tests, with dbrewind's safety net.

::

    from dbrewind.peewee import PeeweeSandbox

    with PeeweeSandbox(database):
        User.create(name="ada")
        with database.atomic():          # a savepoint, to any depth
            ...
        try:
            User.create(name="ada")      # IntegrityError: only this statement is undone
        except IntegrityError:
            pass
        assert User.select().count() == 1
    # everything above is rolled back; writes that escaped (another thread's
    # connection) were rewound by the safety net and reported in ``leaked``

The block runs inside one outer transaction on the current thread's
connection. Transactions the code under test opens become savepoints:
``database.atomic()``, ``transaction()``, ``savepoint()``, ``begin()`` /
``commit()`` / ``rollback()`` and raw ``BEGIN``/``COMMIT``/``ROLLBACK``
statements through ``database.execute_sql``. On PostgreSQL every statement
runs under its own savepoint, so a failing statement is undone alone and the
transaction stays usable (MySQL and SQLite undo a failing statement by
themselves). Statements that would end the outer transaction behind dbrewind's
back are refused: MySQL DDL, ``TRUNCATE`` and the other statements that commit
implicitly, and a change of autocommit, with
:class:`~dbrewind.exceptions.SandboxBrokenError` (as the SQLAlchemy sandbox
refuses them); two-phase commit with :class:`~dbrewind.exceptions.SandboxError`.

The safety net: the database is taken up through :mod:`dbrewind.provision`
(the pytest plugin's own when the URL is its): tracking is checked against
the tables as they are, by name, and installed again when the suite's setup
recreated them; the database as it is at the first block is the baseline.
After each block, any table a write outside the sandbox (another thread,
another connection) committed to is rewound and reported in
:attr:`PeeweeSandbox.leaked`. On a database that is not provably a test
database, or one another run holds, the sandbox runs without a safety net,
after one :class:`~dbrewind.SafetyNetWarning`.

The statement routing (:class:`SavepointRouter`) does no I/O and is shared
with :mod:`dbrewind.peewee_async`.
"""

from __future__ import annotations

from ..sandbox import LeakCallback
from .databases import (
    backend_of,
    close_rewinders,
    database_url,
    safety_net_database,
    tracking_rewinder,
)
from .router import Route, SavepointRouter
from .sandbox import PeeweeSandbox, SandboxOptions, TransactionTestCase

__all__ = [
    "LeakCallback",
    "PeeweeSandbox",
    "Route",
    "SandboxOptions",
    "SavepointRouter",
    "TransactionTestCase",
    "backend_of",
    "close_rewinders",
    "database_url",
    "safety_net_database",
    "tracking_rewinder",
]
