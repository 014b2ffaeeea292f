"""Where the commands write: the report on stdout (text or one JSON document), progress
and errors on stderr, and never a password in any of them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["ERROR", "FINDINGS", "INTERRUPTED", "OK", "Console", "secrets_of"]

OK = 0
"""Done, and nothing to report."""
FINDINGS = 1
"""Done, and something needs attention (dirty tables, a refusal, something left to drop)."""
ERROR = 2
"""Usage error, bad URL, or the database could not be reached or read."""
INTERRUPTED = 130
"""Interrupted (Ctrl-C, SIGTERM); a bench's scratch database was dropped all the same."""

_MASK = "***"
_SHORTEST_SECRET = 4
"""Shorter secrets are not masked in free text (they would mask ordinary words); the
URLs dbrewind prints hide every password whatever its length."""


def secrets_of(url: str) -> list[str]:
    """The password of ``url`` and any secret in its query, as given (for masking)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    found = [parsed.password] if isinstance(parsed.password, str) else []
    for key, value in parsed.query.items():
        if key.lower() in {"password", "passwd", "sslpassword"}:
            found += [value] if isinstance(value, str) else list(value)
    return [s for s in found if len(s) >= _SHORTEST_SECRET]


class Console:
    """The streams of one command: ``out`` for its report, ``err`` for progress and errors.

    Every text goes through :meth:`_mask` on its way out: a password of the URL that
    some message might carry (a driver's, a server's) is shown as ``***``.
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

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        return text

    def line(self, text: str = "") -> None:
        """One line of the human-readable report on stdout (nothing under ``--json``)."""
        if not self.as_json:
            self.out.write(self._mask(text) + "\n")

    def document(self, report: dict[str, Any]) -> None:
        """The report as one JSON document on stdout (its texts masked before they are
        encoded: JSON would escape a password's quotes or accents past recognition)."""
        self.out.write(json.dumps(self._masked(report), indent=2) + "\n")
        self.out.flush()

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._mask(value)
        if isinstance(value, dict):
            return {self._mask(str(k)): self._masked(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._masked(v) for v in value]
        return value

    def progress(self, text: str, *, transient: bool = False) -> None:
        """Progress on stderr; ``transient`` lines overwrite each other on a terminal
        (elsewhere each is a line of its own)."""
        if self.quiet:
            return
        tty = bool(getattr(self.err, "isatty", lambda: False)())
        text = self._mask(text)
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
        self.err.write(f"dbrewind: error: {self._mask(text)}\n")
        self.err.flush()

    def warning(self, text: str) -> None:
        """``dbrewind: warning: <text>`` on stderr."""
        if self._transient:
            self.err.write("\n")
            self._transient = False
        self.err.write(f"dbrewind: warning: {self._mask(text)}\n")
        self.err.flush()
