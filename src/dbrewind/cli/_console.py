"""Where the commands write: the report on stdout (text or one JSON document), progress
and errors on stderr, and never a password in any of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..exceptions import DbrewindError

__all__ = ["ERROR", "FINDINGS", "INTERRUPTED", "OK", "Console", "error_text", "secrets_of"]

OK = 0
"""Done, and nothing to report."""
FINDINGS = 1
"""Done, and something needs attention (dirty tables, a refusal, something left to drop)."""
ERROR = 2
"""Usage error, bad URL, or the database could not be reached or read."""
INTERRUPTED = 130
"""Interrupted (Ctrl-C, SIGTERM); a bench's scratch database was dropped all the same."""

_MASK = "***"


def secrets_of(url: str) -> list[str]:
    """The password of ``url`` and any secret in its query, decoded and percent-encoded
    (as the URL's text has it, and as a driver may quote it), for masking."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    found = [parsed.password] if isinstance(parsed.password, str) else []
    for key, value in parsed.query.items():
        if key.lower() in {"password", "passwd", "sslpassword"}:
            found += [value] if isinstance(value, str) else list(value)
    try:
        raw = urlsplit(url).password  # as typed: still percent-encoded
    except ValueError:
        raw = None
    forms = {raw} if raw else set()
    for secret in found:
        forms |= {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    return sorted(form for form in forms if form)


def error_text(exc: BaseException) -> str:
    """What an error says: a dbrewind error's message, or the first line of what a
    driver or SQLAlchemy said, after the error's type."""
    if isinstance(exc, DbrewindError):
        return str(exc)
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class Console:
    """The streams of one command: ``out`` for its report, ``err`` for progress and errors.

    Text that comes from a driver or a server (an error's message, the holder of a
    lease, a session's description) goes through :meth:`mask` where the command gets
    it, before it is put in the report: any form of the URL's password in it is shown
    as ``***``. What dbrewind writes itself (its URLs, already shown with ``***``,
    table and database names, figures) is printed as it is.
    """

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        *,
        secrets: Iterable[str] = (),
        as_json: bool = False,
        quiet: bool = False,
    ) -> None:
        self.out = out
        self.err = err
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self.as_json = as_json
        self.quiet = quiet
        self._transient = False

    def _hide(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        return text

    def mask(self, text: str, *keep: str) -> str:
        """``text`` from a driver or a server with the URL's password shown as ``***``,
        whatever its length. The parts of it equal to one of ``keep`` (texts dbrewind
        wrote into the message: a URL's display, a database's name) are left as they
        are, unless that would leave a password showing across their edge."""
        if not self.secrets or not text:
            return text
        kept = sorted({k for k in keep if k}, key=len, reverse=True)
        if not kept:
            return self._hide(text)
        parts = re.split("(" + "|".join(map(re.escape, kept)) + ")", text)
        masked = "".join(part if n % 2 else self._hide(part) for n, part in enumerate(parts))
        inside = parts[1::2]
        for secret in self.secrets:
            if masked.count(secret) > sum(part.count(secret) for part in inside):
                return self._hide(text)
        return masked

    def line(self, text: str = "") -> None:
        """One line of the human-readable report on stdout (nothing under ``--json``)."""
        if not self.as_json:
            self.out.write(text + "\n")

    def document(self, report: dict[str, Any]) -> None:
        """The report as one JSON document on stdout."""
        self.out.write(json.dumps(report, indent=2) + "\n")
        self.out.flush()

    def progress(self, text: str, *, transient: bool = False) -> None:
        """Progress on stderr; ``transient`` lines overwrite each other on a terminal
        (elsewhere each is a line of its own)."""
        if self.quiet:
            return
        tty = bool(getattr(self.err, "isatty", lambda: False)())
        if tty and transient:
            self.err.write("\r\x1b[K" + text)
            self._transient = True
        else:
            if self._transient:
                self.err.write("\r\x1b[K")
                self._transient = False
            self.err.write(f"dbrewind: {text}\n")
        self.err.flush()

    def error(self, text: str) -> None:
        """``dbrewind: error: <text>`` on stderr, on a line of its own."""
        if self._transient:
            self.err.write("\n")
            self._transient = False
        self.err.write(f"dbrewind: error: {text}\n")
        self.err.flush()

    def warning(self, text: str) -> None:
        """``dbrewind: warning: <text>`` on stderr."""
        if self._transient:
            self.err.write("\n")
            self._transient = False
        self.err.write(f"dbrewind: warning: {text}\n")
        self.err.flush()
