"""The codebase's layout: explicit ``__all__`` everywhere, and imports that only point down.

The layers, lowest first (a module imports its own layer and those below)::

    foundation   exceptions, _backends, _url, _graph, _context, _test_context, _asyncio, _setups,
                 _strategy
    dialects     dialects/: everything that differs per database, engines included
    sql          _sql/: the one splitter and statement classifier, on the dialects' syntax
    strategies   rewinder, sandbox/, data, testing, factories
    provision    provision/: lifecycle, templates, leases, fingerprints, verification;
                 setup (the ready-made setups, which know their fingerprints)
    integrations peewee, peewee_async, unittest, cli, bridges
    plugin       pytest_plugin/: the only code that imports pytest

No server needed: the source is read with :mod:`ast` (module-level and lazy imports
alike), and the public modules are imported.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import dbrewind

SRC = Path(dbrewind.__file__).parent

LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "exceptions",
        "_backends",
        "_url",
        "_graph",
        "_context",
        "_test_context",
        "_asyncio",
        "_setups",
        "_strategy",
    ),
    "dialects": ("dialects",),
    "sql": ("_sql",),
    "strategies": (
        "rewinder",
        "sandbox",
        "data",
        "testing",
        "factories",
    ),
    "provision": ("provision", "setup"),
    "integrations": ("peewee", "peewee_async", "unittest", "cli", "bridges"),
    "plugin": ("pytest_plugin",),
}
"""Each module's layer, by its first name below ``dbrewind`` (the package itself: top)."""

USER_FACING = (
    "dbrewind",
    "dbrewind.exceptions",
    "dbrewind.sandbox",
    "dbrewind.testing",
    "dbrewind.factories",
    "dbrewind.bridges",
    "dbrewind.data",
    "dbrewind.setup",
    "dbrewind.unittest",
    "dbrewind.peewee",
    "dbrewind.peewee_async",
    "dbrewind.provision",
    "dbrewind.dialects",
)
"""Modules users import from: every public name they define is in ``__all__``."""


def module_name(path: Path) -> str:
    parts = ["dbrewind", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer's rank; the package ``dbrewind`` itself is above all (it re-exports)."""
    first = module.split(".")[1] if "." in module else ""
    for rank, members in enumerate(LAYERS.values()):
        if first in members:
            return rank
    if module == "dbrewind":
        return len(LAYERS)
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every ``dbrewind`` module (or other top-level package) ``module`` imports, with
    the line: at module level, in functions and under ``TYPE_CHECKING`` alike."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
                names = [f"{target}.{alias.name}" for alias in node.names]
                # ``from . import x`` imports a module when x is one
                found += [(n, node.lineno) for n in names if n in MODULES] or [
                    (target, node.lineno)
                ]
            else:
                found.append((node.module or "", node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return found


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    """A module imports only its own layer and those below it (the package re-exports)."""
    rank = layer_of(module)
    upward = [
        f"{module}:{line} imports {target} ({list(LAYERS)[layer_of(target)]})"
        for target, line in imports_of(module)
        if target.startswith("dbrewind.") and layer_of(target) > rank
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_plugin_imports_pytest(module: str) -> None:
    if module.startswith("dbrewind.pytest_plugin"):
        return
    said = [line for target, line in imports_of(module) if target.split(".")[0] == "pytest"]
    assert not said, f"{module} imports pytest at lines {said}"


def test_dialects_import_only_the_foundation() -> None:
    """Per-database knowledge depends on nothing but the URL, the errors and the graph."""
    foundation = {f"dbrewind.{name}" for name in LAYERS["foundation"]}
    for module in MODULES:
        if not module.startswith("dbrewind.dialects"):
            continue
        for target, line in imports_of(module):
            top = ".".join(target.split(".")[:2])
            if target.startswith("dbrewind.") and top != "dbrewind.dialects":
                assert top in foundation, f"{module}:{line} imports {target}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_declares_all(module: str) -> None:
    """``__all__`` is a literal list of names that exist, without repeats."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    declared = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    assert len(declared) == 1, f"{module} declares __all__ {len(declared)} times"
    names = ast.literal_eval(declared[0])
    assert len(names) == len(set(names)), f"{module}.__all__ repeats a name"
    loaded = importlib.import_module(module)
    missing = [name for name in names if not hasattr(loaded, name)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("module", USER_FACING)
def test_public_definitions_are_exported(module: str) -> None:
    """In a module users import from, a public-looking class or function is in
    ``__all__``; what is not meant for them starts with an underscore."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    exported = set(importlib.import_module(module).__all__)
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and not node.name.startswith("_")
    ]
    unexported = [name for name in defined if name not in exported]
    assert not unexported, f"{module} defines public names outside __all__: {unexported}"
