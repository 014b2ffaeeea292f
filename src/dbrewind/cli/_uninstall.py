"""``uninstall``: remove dbrewind's tracking objects from a test database nobody holds."""

from __future__ import annotations

from typing import Any

from ..rewinder import Rewinder
from ._console import FINDINGS, OK, Console
from ._survey import held_by

__all__ = ["uninstall"]


def uninstall(rewinder: Rewinder, console: Console, *, force: bool) -> tuple[int, dict[str, Any]]:
    """Remove the tracking (the user's tables and rows stay); exit 1 when refused.

    Unless ``force``: only from a database the safety guard accepts, and only while
    holding its lease (taken here, as a run takes it), so that no run starts on it
    halfway through.
    """
    url, dialect = rewinder.url, rewinder.dialect
    shown = url.display()
    report: dict[str, Any] = {"removed": False, "was_installed": None, "refused": None}
    if not force:
        rewinder.ensure_safe("remove dbrewind's tracking from")
    lease = None if url.is_memory else dialect.acquire_lock(url, "lease", wait=0)
    try:
        if lease is None and not url.is_memory and not force:
            holder = held_by(rewinder, console) or "another run"
            report["refused"] = (
                f"a test run holds {shown} ({holder}); removing its tracking now would let its "
                "writes leak. Let the run finish, or pass --force."
            )
            console.line(f"refused:    {report['refused']}")
            return FINDINGS, report
        with rewinder.connection() as conn:
            installed = dialect.is_installed(conn)
        report["was_installed"] = installed
        if not installed:
            console.line(f"nothing to remove: no dbrewind tracking in {shown}")
            return OK, report
        rewinder.uninstall()
    finally:
        if lease is not None:
            lease.release()
    report["removed"] = True
    console.line(f"removed dbrewind tracking from {shown}")
    return OK, report
