"""Public names: the canonical classes and the older names kept as aliases of them."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

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
    from dbrewind import sandbox
    from dbrewind.sandbox import state

    assert "SandboxState" in state.__all__
    assert not hasattr(state, "Core")
    assert sandbox.SandboxState is state.SandboxState


# ------------------------------------------------------------- the error tree

SRC = Path(__file__).resolve().parents[2] / "src" / "dbrewind"


def _made_in_src() -> set[str]:
    """Names the library instantiates (``X(...)``: raised, returned to be raised, warned)
    or hands out as the kind of error to raise (``return X``, ``{code: X}``, ``(X, ...)``),
    outside the module that defines them."""
    made: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.name == "exceptions.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                made.add(node.func.id)
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Name):
                made.add(node.value.id)
            elif isinstance(node, ast.Dict):
                made.update(v.id for v in node.values if isinstance(v, ast.Name))
            elif isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Name):
                made.add(node.elts[0].id)
    return made


def _tree() -> dict[str, str | None]:
    """The hierarchy pictured in ``dbrewind.exceptions``' docstring: each class's parent."""
    import dbrewind.exceptions as exceptions

    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (exceptions.__doc__ or "").splitlines():
        found = re.match(r"^(\s*)(?:\+-- )?(\w+(?:Error|Warning))\b", line.replace("|", " "))
        if found is None:
            continue
        column = len(found.group(1))
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[found.group(2)] = stack[-1][1] if stack else None
        stack.append((column, found.group(2)))
    return parents


def test_every_exported_error_and_warning_is_raised_by_the_library() -> None:
    import dbrewind.exceptions as exceptions

    made = _made_in_src()
    never = sorted(set(exceptions.__all__) - made)
    # a family's base (ProvisionError) need not be raised itself: its members are
    families = {
        name
        for name in never
        if any(
            issubclass(getattr(exceptions, other), getattr(exceptions, name))
            for other in made & set(exceptions.__all__) - {name}
        )
    }
    assert sorted(set(never) - families) == [], f"exported but never raised: {never}"
    assert families <= {"ProvisionError"}


def test_the_docstring_pictures_the_whole_hierarchy_as_it_is() -> None:
    import dbrewind
    import dbrewind.exceptions as exceptions

    tree = _tree()
    assert sorted(tree) == sorted(exceptions.__all__)
    for name, parent in tree.items():
        cls = getattr(exceptions, name)
        if parent is None:
            assert cls.__bases__[0] in (Exception, UserWarning), name
        else:
            assert cls.__bases__[0] is getattr(exceptions, parent), name
    assert set(exceptions.__all__) <= set(dbrewind.__all__)


def test_new_errors_keep_their_family() -> None:
    from dbrewind import (
        DatabaseCreationError,
        DatabaseDropError,
        DbrewindError,
        LeakError,
        LeaseError,
        ProvisionError,
        VerificationError,
    )

    for cls in (DatabaseCreationError, DatabaseDropError, LeaseError):
        assert issubclass(cls, ProvisionError)
    assert issubclass(ProvisionError, DbrewindError)
    assert issubclass(LeakError, DbrewindError)
    assert issubclass(VerificationError, AssertionError)
