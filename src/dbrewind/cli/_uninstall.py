"""``uninstall``: remove dbrewind's tracking objects from a database, unless a run holds it."""

from __future__ import annotations

from typing import Any

from ..rewinder import Rewinder
from ._console import FINDINGS, OK, Console
from ._survey import held_by

__all__ = ["uninstall"]


def uninstall(rewinder: Rewinder, console: Console, *, force: bool) -> tuple[int, dict[str, Any]]:
    """Remove the tracking (the user's tables and rows stay); exit 1 when refused."""
    shown = rewinder.url.display()
    holder = held_by(rewinder, console)
    report: dict[str, Any] = {"removed": False, "was_installed": None, "refused": None}
    if holder and not force:
        report["refused"] = (
            f"a test run holds {shown} ({holder}); removing its tracking now would let its "
            "writes leak. Let the run finish, or pass --force."
        )
        console.line(f"refused:    {report['refused']}")
        return FINDINGS, report
    with rewinder.connection() as conn:
        installed = rewinder.dialect.is_installed(conn)
    report["was_installed"] = installed
    if not installed:
        console.line(f"nothing to remove: no dbrewind tracking in {shown}")
        return OK, report
    rewinder.uninstall()
    report["removed"] = True
    console.line(f"removed dbrewind tracking from {shown}")
    return OK, report
