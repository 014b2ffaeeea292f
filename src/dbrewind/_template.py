"""Prepared templates: the schema fingerprint, template names and a cross-process file lock.

A prepared template is a database that holds the result of the user's setup
(schema, reference rows) with dbrewind's tracking installed. Test databases
are cloned from it; it is kept between runs and reused while the fingerprint
of what built it is unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.schema import CreateIndex, CreateTable

from .exceptions import ConfigurationError

__all__ = [
    "FINGERPRINT_VERSION",
    "file_lock",
    "fingerprint",
    "metadata_fingerprint",
    "template_name",
    "worker_name",
]

FINGERPRINT_VERSION = "1"
"""Bumped when the layout of prepared templates changes, so old ones are rebuilt."""


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
    extra: Iterable[str] = (),
    dialect: SADialect | None = None,
) -> str:
    """The schema fingerprint: a hex digest of everything that decides what setup builds.

    It covers each setup callable (its ``dbrewind_fingerprint()`` when it has
    one, as the helpers in :mod:`dbrewind.setup` do; else its source code and
    the SQLAlchemy metadata it refers to), the contents of ``paths`` (files, or
    directories read recursively: migrations, SQL files, models) and ``extra``
    strings (the backend, dbrewind's layout version), and dbrewind's own
    dialect code, which decides the tracking objects installed in a template.
    """
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    # The tracking objects a template carries come from the dialect code: a
    # dbrewind upgrade that changes them must not reuse an old template.
    for file in _files(Path(__file__).with_name("dialects")):
        if file.suffix == ".py":
            digest.update(b"\0tracking\0" + file.name.encode() + b"\0" + file.read_bytes())
    for item in extra:
        digest.update(b"\0extra\0" + item.encode())
    for setup in setups:
        digest.update(b"\0setup\0")
        for part in _callable_parts(setup, dialect):
            digest.update(part)
    for path in paths:
        for file in _files(Path(path)):
            digest.update(b"\0file\0" + str(file).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


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


def template_name(database: str, fp: str, limit: int = 63) -> str:
    """``<database>_tmpl_<fingerprint8>``, shortened (with a hash) to fit ``limit``."""
    suffix = f"_tmpl_{fp[:8]}"
    return _fit(database, suffix, limit)


def worker_name(database: str, worker: str, limit: int = 63) -> str:
    """``<database>_<worker>`` (``app_test_gw0``), shortened (with a hash) to fit ``limit``."""
    return _fit(database, f"_{worker}", limit)


def _fit(database: str, suffix: str, limit: int) -> str:
    if len(database) + len(suffix) <= limit:
        return database + suffix
    digest = hashlib.sha1(database.encode()).hexdigest()[:6]
    room = limit - len(suffix) - len(digest) - 1
    return f"{database[:room]}_{digest}{suffix}"


@contextmanager
def file_lock(path: str | os.PathLike[str], *, timeout: float = 600.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes.

    Uses ``fcntl.flock``: the lock goes away with the process, so a crashed
    run never leaves a stale lock. Raises :class:`ConfigurationError` when
    the lock is not obtained within ``timeout`` seconds.
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigurationError(
                        f"Timed out after {timeout:.0f}s waiting for the lock {str(lock_path)!r} "
                        "held by another test process preparing the database. If no other "
                        "run is active, delete that file."
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
