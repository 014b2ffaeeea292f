"""``clean``: drop the templates, clones and bench scratch databases of one test database
that dbrewind made and nobody uses; a dry run unless told to drop.

What it may drop is narrow on purpose. A database is dropped only when all of:

* its name is one the lifecycle derives from the URL's database
  (:func:`dbrewind.provision.naming.derived_kind`: ``<name>_tmpl_<8 hex>``,
  ``<name>_gw<n>``, ``<name>_r<n>``, ``<name>_gw<n>_r<n>``, ``<name>_bench_<8 hex>``);
  the URL's database itself is never dropped;
* it carries dbrewind's creation mark (:meth:`Dialect.created_by_dbrewind
  <dbrewind.dialects.base.Dialect.created_by_dbrewind>`), read on a connection
  that reached that very database: a database of such a name that someone else
  made is left alone, and so is one whose mark cannot be read;
* no run holds it: its lease is taken here (and held while it is dropped), and a
  template is dropped only under the build lock of the test database, which runs
  hold while they build or clone a template;
* no session is connected to it (:meth:`Dialect.sessions
  <dbrewind.dialects.base.Dialect.sessions>`; SQLite files have no sessions to list:
  there the lease is what runs hold).

Leases are locks that end with the session or process holding them, so none is
ever left to drop; SQLite's lock files stay beside the database (see
:meth:`~dbrewind.dialects.base.Dialect.drop_database`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .._url import DatabaseURL
from ..dialects import Dialect, Lock
from ..exceptions import ConfigurationError, DbrewindError
from ..provision.naming import sibling
from ..rewinder import Rewinder
from ._console import FINDINGS, OK, Console, error_text
from ._survey import derived_names

__all__ = ["clean"]

_ORDER = {"scratch": 0, "clone": 1, "template": 2}
"""Clones before templates: a clone is what a run would clone a template for."""


def _made_by_dbrewind(url: DatabaseURL, console: Console) -> bool | str:
    """Whether dbrewind's creation mark is on ``url``'s database; what failed, when the
    question cannot be answered (it is then left alone): also when the connection
    reached another database (a connection option or a proxy sends it there), whose
    mark says nothing of this one."""
    try:
        with Rewinder(url, allow=True) as other, other.connection() as conn:
            reached = other.dialect.connected_database(conn)
            if not other.dialect.reaches(url, reached):
                return f"cannot be read (the connection reached the database {reached!r} instead)"
            return other.dialect.created_by_dbrewind(conn)
    except (DbrewindError, SQLAlchemyError) as exc:
        return f"cannot be read ({_said(exc, url, console)})"


def _said(exc: BaseException, url: DatabaseURL, console: Console) -> str:
    """What an error about ``url``'s database says, masked (its URL and name aside)."""
    return console.mask(error_text(exc), url.display(), url.database)


@contextlib.contextmanager
def _held(lock: Lock | None) -> Iterator[Lock | None]:
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


def _holder(dialect: Dialect, url: DatabaseURL, purpose: str, console: Console) -> str:
    holder = dialect.lock_holder(url, purpose)
    return "another run" if holder is None else console.mask(holder)


def _one(
    dialect: Dialect,
    url: DatabaseURL,
    other: DatabaseURL,
    kind: str,
    build: Lock | None,
    console: Console,
    *,
    apply: bool,
) -> tuple[str, str | None]:
    """What ``clean`` does with ``other``, derived from ``url``'s database: ``("drop",
    None)`` (dropped, or would be), ``("kept", reason)`` or ``("failed", error)``."""
    if kind == "template" and build is None:
        holder = _holder(dialect, url, "build", console)
        return "kept", f"a run builds or clones a template now ({holder})"
    lease = None if kind == "template" else dialect.acquire_lock(other, "lease", wait=0)
    with _held(lease):
        if kind != "template" and lease is None:
            return "kept", f"leased by {_holder(dialect, other, 'lease', console)}"
        # sessions first: the look at the mark below is a session of its own
        sessions = dialect.sessions(other)
        if sessions:
            more = f" and {len(sessions) - 1} more" if len(sessions) > 1 else ""
            return "kept", f"in use: {console.mask(sessions[0])}{more}"
        made = _made_by_dbrewind(other, console)
        if made is not True:
            return "kept", made if isinstance(made, str) else "not made by dbrewind"
        if not apply:
            return "drop", None
        try:
            dialect.drop_database(other)
        except (DbrewindError, SQLAlchemyError) as exc:
            return "failed", _said(exc, other, console)
        return "drop", None


def clean(rewinder: Rewinder, console: Console, *, apply: bool) -> tuple[int, dict[str, Any]]:
    """List (``apply``: drop) what dbrewind made from the database and nobody uses."""
    url, dialect = rewinder.url, rewinder.dialect
    if url.is_memory:
        raise ConfigurationError(
            f"{url.display()} is an in-memory database: dbrewind makes no templates or "
            "clones of one. Give clean the URL of the test database file or server database."
        )
    candidates = sorted((_ORDER[k], name, k) for name, k in derived_names(url, dialect))
    report: dict[str, Any] = {"applied": apply, "drop": [], "kept": [], "failed": []}
    templates = [c for c in candidates if c[2] == "template"]
    build = dialect.acquire_lock(url, "build", wait=0) if templates else None
    with _held(build):
        for _order, name, kind in candidates:
            other = sibling(url, name)
            item: dict[str, Any] = {
                "name": Path(other.database).name if dialect.databases_are_files else name,
                "kind": kind,
            }
            try:
                outcome, text = _one(dialect, url, other, kind, build, console, apply=apply)
            except (DbrewindError, SQLAlchemyError) as exc:  # one unreadable: the others go on
                outcome, text = "kept", f"cannot be read ({_said(exc, other, console)})"
            if outcome == "kept":
                item["reason"] = text
            elif outcome == "failed":
                item["error"] = text
            report[outcome].append(item)
            if outcome == "drop" and apply:
                console.progress(f"dropped {kind} {item['name']}")
    _render(report, url.display(), console)
    if apply:
        return (FINDINGS if report["failed"] else OK), report
    return (FINDINGS if report["drop"] else OK), report


def _render(report: dict[str, Any], shown: str, console: Console) -> None:
    line = console.line
    line(f"database:   {shown}")
    verb = "dropped" if report["applied"] else "would drop"
    if not (report["drop"] or report["kept"] or report["failed"]):
        line("nothing:    dbrewind made no templates, clones or scratch databases of it here")
        return
    for item in report["drop"]:
        line(f"{verb + ':':11} {item['kind']:8}  {item['name']}")
    for item in report["kept"]:
        line(f"{'kept:':11} {item['kind']:8}  {item['name']}: {item['reason']}")
    for item in report["failed"]:
        line(f"{'failed:':11} {item['kind']:8}  {item['name']}: {item['error']}")
    if report["drop"] and not report["applied"]:
        line("(a dry run: nothing was dropped; run again with --yes to drop them)")
