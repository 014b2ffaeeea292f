"""Fingerprints: what decides that a prepared template (or an installation) is still right.

* :func:`fingerprint` — the schema fingerprint of a setup: its callables'
  own fingerprints (or source and the metadata they refer to), the files it
  depends on, and dbrewind's dialect code. A template is reused exactly while
  it is unchanged.
* :func:`tracking_version` — the version of the tracking objects one dialect
  installs, from its code. An installation made by another dbrewind is
  reinstalled.
* :func:`schema_digest` — the tracked tables, their columns and foreign keys,
  by name: what the baseline was captured from.

File paths enter a fingerprint relative to the directory given, so a moved
checkout reuses its templates.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.schema import CreateIndex, CreateTable

from .._url import Backend
from ..dialects import SchemaInfo
from ..exceptions import ConfigurationError

__all__ = [
    "FINGERPRINT_VERSION",
    "fingerprint",
    "metadata_fingerprint",
    "schema_digest",
    "tracking_version",
]

FINGERPRINT_VERSION = "2"
"""Bumped when the layout of prepared templates changes, so old ones are rebuilt."""

_DIALECTS = Path(__file__).resolve().parent.parent / "dialects"


def metadata_fingerprint(metadata: MetaData, dialect: SADialect | None = None) -> str:
    """A digest of the DDL ``metadata`` would create (tables and indexes, sorted)."""
    if dialect is None:
        from sqlalchemy.dialects import sqlite

        dialect = sqlite.dialect()
    digest = hashlib.sha256()
    for table in sorted(metadata.tables.values(), key=lambda t: t.fullname):
        try:
            digest.update(str(CreateTable(table).compile(dialect=dialect)).encode())
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                digest.update(str(CreateIndex(index).compile(dialect=dialect)).encode())
        except Exception:  # a type this dialect cannot render: fall back to the repr
            digest.update(repr(table).encode())
    return digest.hexdigest()


def _metadata_in(obj: Any) -> MetaData | None:
    if isinstance(obj, MetaData):
        return obj
    candidate = getattr(obj, "metadata", None)
    if isinstance(candidate, MetaData):
        return candidate
    return None


def _callable_parts(setup: Any, dialect: SADialect | None) -> Iterator[bytes]:
    """What identifies one setup callable: its own fingerprint, or its source and the
    model metadata it refers to."""
    own = getattr(setup, "dbrewind_fingerprint", None)
    if callable(own):
        yield str(own()).encode()
        return
    func = inspect.unwrap(setup)
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    yield name.encode()
    target = func if inspect.isfunction(func) or inspect.ismethod(func) else type(func)
    try:
        yield inspect.getsource(target).encode()
    except (OSError, TypeError):
        yield repr(func).encode()
    if inspect.isfunction(func):
        try:
            refs = inspect.getclosurevars(func)
        except (TypeError, ValueError):
            return
        seen: set[int] = set()
        for value in (*refs.globals.values(), *refs.nonlocals.values()):
            metadata = _metadata_in(value)
            if metadata is not None and id(metadata) not in seen:
                seen.add(id(metadata))
                yield metadata_fingerprint(metadata, dialect).encode()


def fingerprint(
    setups: Iterable[Any],
    *,
    paths: Sequence[str | os.PathLike[str]] = (),
    root: str | os.PathLike[str] | None = None,
    extra: Iterable[str] = (),
    dialect: SADialect | None = None,
    backend: Backend | None = None,
) -> str:
    """The schema fingerprint: a hex digest of everything that decides what setup builds.

    It covers each setup callable (its ``dbrewind_fingerprint()`` when it has
    one, as the helpers in :mod:`dbrewind.setup` do; else its source code and
    the SQLAlchemy metadata it refers to), the contents of ``paths`` (files, or
    directories read recursively: migrations, SQL files, models; named by
    their path relative to ``root``, or to the path itself), ``extra`` strings
    (the database's name), and with ``backend`` the :func:`tracking_version`
    of its dialect, which decides the tracking objects a template carries.
    """
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    if backend is not None:
        # a dbrewind upgrade that changes the tracking objects must not reuse an old template
        digest.update(b"\0tracking\0" + backend.encode() + tracking_version(backend).encode())
    for item in extra:
        digest.update(b"\0extra\0" + item.encode())
    for setup in setups:
        digest.update(b"\0setup\0")
        for part in _callable_parts(setup, dialect):
            digest.update(part)
    for path in paths:
        base = Path(root) if root is not None else Path(path)
        for file in _files(Path(path)):
            digest.update(b"\0file\0" + _relative(file, base).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _relative(file: Path, base: Path) -> str:
    try:
        return file.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return file.name


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
        )
    raise ConfigurationError(
        f"The fingerprint path {str(path)!r} does not exist. Fix the path in "
        "dbrewind_fingerprint_paths (relative paths start at the pytest rootdir)."
    )


def tracking_version(backend: Backend) -> str:
    """A digest of the code that decides which tracking objects ``backend`` gets.

    The interface every dialect implements (``dialects/base.py``) and every file of
    the backend's own package (``dialects/<backend>/``: its modules and ``.sql`` files),
    each under its path inside ``dialects/``.
    """
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    for file in _files(_DIALECTS):
        inside = file.relative_to(_DIALECTS)
        if inside.parts in (("base.py",), (f"{backend}.py",)) or inside.parts[0] == backend:
            digest.update(inside.as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def schema_digest(schema: SchemaInfo) -> str:
    """A digest of the tables (by key), their columns in order, and their foreign keys."""
    digest = hashlib.sha256()
    for key in sorted(schema.tables):
        table = schema.tables[key]
        digest.update(repr((key, table.columns)).encode())
    for fk in sorted(schema.foreign_keys, key=lambda f: (f.child, f.parent, f.name)):
        digest.update(repr((fk.child, fk.parent, fk.name, fk.on_delete)).encode())
    return digest.hexdigest()[:16]
