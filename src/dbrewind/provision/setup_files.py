"""The project files a setup ran: part of what decides that its template is still right.

A setup's fingerprint covers its own code, the metadata it names and the
files it declares; it cannot see that ``init_db()`` in ``app/core/db.py``,
which the setup calls, changed. While a template is built, :func:`files_run`
notes every Python file under the project's root whose code ran (or was
imported) during the setup; their digests are kept with the template
(:func:`digests`), and the next run rebuilds it when one of them changed
(:func:`changed`), saying which.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["changed", "digests", "files_run"]

_TEST_FILES = ("conftest.py",)


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths.get(key, "") for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    found.add(str(Path(__file__).resolve().parents[1]))  # dbrewind itself
    return tuple(sorted(p for p in found if p))


@contextmanager
def files_run(root: Path) -> Iterator[list[Path]]:
    """Collect, into the list yielded, the project files under ``root`` whose code ran
    in the block (installed packages, dbrewind, conftest and test modules left out:
    the setup's own source is in its fingerprint already)."""
    seen: set[str] = set()
    modules = set(sys.modules)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen.add(frame.f_code.co_filename)

    found: list[Path] = []
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield found
    finally:
        sys.setprofile(previous)
        for name in set(sys.modules) - modules:
            filename = getattr(sys.modules.get(name), "__file__", None)
            if filename:
                seen.add(filename)
        found += _project_files(seen, root)


def _project_files(filenames: set[str], root: Path) -> list[Path]:
    root = root.resolve()
    libraries = _library_roots()
    out: set[Path] = set()
    for filename in filenames:
        if not filename.endswith(".py") or filename.startswith(libraries):
            continue
        path = Path(filename)
        if path.name in _TEST_FILES or path.name.startswith("test_"):
            continue
        try:
            resolved = path.resolve()
            resolved.relative_to(root)
        except (OSError, ValueError):
            continue
        if resolved.is_file() and not resolved.as_posix().startswith(libraries):
            out.add(resolved)
    return sorted(out)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def digests(files: list[Path], root: Path) -> str:
    """``files`` with their digests, relative to ``root``, as text to keep in the state."""
    root = root.resolve()
    return json.dumps({p.relative_to(root).as_posix(): _digest(p) for p in files}, sort_keys=True)


def changed(recorded: str | None, root: Path) -> list[str]:
    """The files of a :func:`digests` text whose contents differ now (or are gone)."""
    if not recorded:
        return []
    try:
        files: dict[str, str] = json.loads(recorded)
    except ValueError:
        return []
    root = root.resolve()
    return sorted(rel for rel, digest in files.items() if _digest(root / rel) != digest)
