"""Run the ``dbrewind`` command as a user does: the installed console script, in a process
of its own; or ``main()`` in this process where only the outcome matters."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from dbrewind.cli import main

__all__ = ["SCRIPT", "Ran", "dbrewind", "in_process", "start", "text_url"]

SCRIPT = Path(sys.executable).with_name("dbrewind")
"""The console script ``pip install`` made (``[project.scripts]``)."""


@dataclass(frozen=True)
class Ran:
    """One ``dbrewind`` command's exit status and what it wrote."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """stdout as the one JSON document ``--json`` promises (fails on anything else)."""
        return json.loads(self.out)

    @property
    def both(self) -> str:
        return self.out + self.err


def text_url(url: URL | str) -> str:
    """``url`` as the command line takes it: with its password."""
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("DBREWIND_ALLOW", None)
    environment.update(env or {})
    return environment


def dbrewind(*args: str | URL, env: dict[str, str] | None = None, timeout: float = 300) -> Ran:
    """``dbrewind <args>`` through the console script; waits for it."""
    done = subprocess.run(
        [str(SCRIPT), *(text_url(a) for a in args)],
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def _as_in_a_terminal() -> None:
    # A shell's background job (nohup, `cmd &`, a CI runner) inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt: give the command what a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str | URL) -> subprocess.Popen[str]:
    """``dbrewind <args>`` through the console script, without waiting (to interrupt it),
    with Ctrl-C's signal as a terminal delivers it."""
    return subprocess.Popen(
        [str(SCRIPT), *(text_url(a) for a in args)],
        env=_environment(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )


def in_process(*args: str | URL) -> Ran:
    """``dbrewind.cli.main([...])`` in this process (no interpreter start-up to pay)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([text_url(a) for a in args], out=out)
    return Ran(code, out.getvalue(), err.getvalue())
