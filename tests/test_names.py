"""Public names: the canonical classes and the older names kept as aliases of them."""

from __future__ import annotations

import importlib

import pytest

ALIASES = [
    # (module, canonical name, older name kept)
    ("dbrewind.peewee", "PeeweeSandbox", "TransactionTestCase"),
    ("dbrewind.peewee_async", "AsyncPeeweeSandbox", "TransactionTestCase"),
    ("dbrewind.testing", "DatabaseAssertions", "DatabaseTestCase"),
    ("dbrewind.testing", "SyncDatabaseAssertions", "SyncDatabaseTestCase"),
    ("dbrewind.testing", "AsyncDatabaseAssertions", "AsyncDatabaseTestCase"),
]


@pytest.mark.parametrize(("module", "name", "alias"), ALIASES)
def test_older_name_is_the_canonical_class(module: str, name: str, alias: str) -> None:
    if module.startswith("dbrewind.peewee"):
        pytest.importorskip("peewee_async" if module.endswith("async") else "peewee")
    mod = importlib.import_module(module)
    assert getattr(mod, alias) is getattr(mod, name)
    assert getattr(mod, name).__name__ == name
    assert name in mod.__all__
    assert alias in mod.__all__
    exec(f"from {module} import {alias}", {})  # the old import path keeps working


def test_peewee_sandbox_reprs_use_the_canonical_names() -> None:
    peewee = pytest.importorskip("peewee")
    from dbrewind.peewee import PeeweeSandbox, TransactionTestCase

    database = peewee.SqliteDatabase(":memory:")
    assert repr(PeeweeSandbox(database)).startswith("PeeweeSandbox(")
    assert repr(TransactionTestCase(database)).startswith("PeeweeSandbox(")
    peewee_async = pytest.importorskip("peewee_async")
    from dbrewind.peewee_async import AsyncPeeweeSandbox

    aio = peewee_async.SqliteDatabase(":memory:")
    assert repr(AsyncPeeweeSandbox(aio)).startswith("AsyncPeeweeSandbox(")


def test_database_assertions_picks_the_flavour_under_both_names() -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from dbrewind.testing import DatabaseAssertions, DatabaseTestCase, SyncDatabaseAssertions

    with Session(create_engine("sqlite://")) as session:
        assert type(DatabaseAssertions(session)) is SyncDatabaseAssertions
        assert type(DatabaseTestCase(session)) is SyncDatabaseAssertions


def test_sandbox_state_is_the_sandbox_machinerys_state() -> None:
    from dbrewind import _sandbox_core, sandbox

    assert "SandboxState" in _sandbox_core.__all__
    assert not hasattr(_sandbox_core, "Core")
    assert sandbox.SandboxState is _sandbox_core.SandboxState
