"""Django's database test cases without Django, on SQLAlchemy.

::

    from dbrewind.unittest import TestCase, TransactionTestCase, skipUnlessDBFeature

    class BookTests(TestCase):
        database_url = "postgresql://postgres@127.0.0.1/shop_test"
        database_setup = metadata.create_all          # run once per process and URL
        fixtures = ["authors.json", "books.csv"]      # relative to this module's folder

        @classmethod
        def setUpTestData(cls):
            cls.ann = cls.db_class.execute(insert(authors).values(name="Ann")).inserted_primary_key

        def test_rename(self):
            self.db.execute(update(authors).values(name="Bo"))   # rolled back after the test

The two classes differ as Django's do:

:class:`TestCase`
    Each test runs inside dbrewind's rollback sandbox: everything the code
    under test does through the engine (``engine.connect()``,
    ``engine.begin()``, ``Session(engine)``) is routed onto one connection
    whose transaction is rolled back after the test; an application's
    ``COMMIT`` becomes a savepoint release. ``fixtures`` are loaded and
    ``setUpTestData`` runs once per class, inside the class's sandbox, and
    every test starts from that state; attributes ``setUpTestData`` sets are
    deep-copied for each test, so a test that changes them in memory does
    not affect the next. Fast; but code that needs a real commit (a second
    connection seeing the data, ``SELECT ... FOR UPDATE`` across sessions)
    cannot be tested here.
:class:`TransactionTestCase`
    Tests commit for real, on any number of connections. After each test the
    tables it wrote to are put back to the baseline by :class:`dbrewind.Rewinder`
    (only the dirty ones). ``fixtures`` are loaded (and committed) before each
    test.

Both get their database from :mod:`dbrewind.provision`, the lifecycle the
pytest plugin uses too: with ``database_url`` and ``database_setup`` the setup
runs once into a template and the tests run on a clone of it (reused by the
next run while the setup is unchanged, one per xdist worker, another when a
concurrent run holds it); with an ``engine``, its database is set up in
place; without a setup, the database is taken as it is. A write that escapes a
:class:`TestCase`'s sandbox is caught by change tracking and rewound (see
:attr:`TestCase.leaked`).

:class:`AsyncTestCase` is the :class:`unittest.IsolatedAsyncioTestCase`
flavour of :class:`TestCase` (each test in its own async rollback sandbox).
"""

from __future__ import annotations

from ._base import close_databases
from .cases import AsyncTestCase, TestCase, TransactionTestCase
from .features import skipIfDBFeature, skipUnlessDBFeature

__all__ = [
    "AsyncTestCase",
    "TestCase",
    "TransactionTestCase",
    "close_databases",
    "skipIfDBFeature",
    "skipUnlessDBFeature",
]
