"""The ``dbrewind`` command: look at, measure and tidy up test databases.

::

    dbrewind doctor URL      what dbrewind sees there and what it would do
    dbrewind status URL      dirty tables and leases, now
    dbrewind bench URL       the strategies timed on a scratch copy of its schema
    dbrewind clean URL       its unused templates, clones and scratch databases (dry run)
    dbrewind uninstall URL   remove dbrewind's tracking objects from it

``URL`` is a SQLAlchemy database URL (``postgresql://postgres@127.0.0.1/app_test``,
``mysql://root@127.0.0.1/app_test``, ``sqlite:///app_test.db``); an async driver is
fine. No command writes to a database but ``uninstall`` (its tracking objects only)
and ``clean --yes`` (which drops only databases dbrewind made: see :mod:`._clean`);
``bench`` works on a scratch database of its own beside the URL's, always dropped.

Exit status
-----------
* ``0`` — done, nothing to report.
* ``1`` — done, and something needs attention: ``doctor`` found a problem (tables
  dirty, tracking out of date, the safety guard refuses the database); ``status``
  found dirty tables or no tracking; ``bench`` was refused by the guard, or found
  no tables; ``clean`` (dry run) would drop something, or (``--yes``) a drop
  failed; ``uninstall`` was refused because a run holds the database or the
  guard refuses it.
* ``2`` — usage error, bad URL, the server or database could not be reached or
  read, or bench could not drop its scratch database.
* ``130`` — interrupted (Ctrl-C, SIGTERM); bench dropped its scratch database first.

JSON (``--json``)
-----------------
Every command prints one JSON document on stdout and nothing else there
(progress and errors go to stderr). Every document has ``command``, ``database``
(the URL with its password hidden, or ``null`` when it could not be parsed) and
``exit_code``; a failed command has ``error`` (``{"type", "message"}``) instead of
its own keys. Times are milliseconds, instants seconds since the epoch. The
command's own keys:

* ``doctor``: ``backend``, ``driver``, ``exists``, ``guard`` (``accepted``,
  ``reasons``, ``refusal``), ``schema`` (``tables``, ``foreign_keys``, ``fk_cycles``,
  ``self_references``), ``tracking`` (``installed``, ``version``,
  ``current_version``, ``up_to_date`` (``null`` when the installation records no
  version), ``intact``, ``released_cleanly``, ``not_tracked``,
  ``recreated_untracked``, ``gone``), ``baseline`` (``tables``,
  ``layers``, ``template``, ``fingerprint``, ``built``), ``dirty``, ``lease``
  (``held``, ``holder``), ``derived`` (each ``name``, ``kind``: ``template`` |
  ``clone`` | ``scratch``, ``lease_holder``, ``made_by_dbrewind``, ``built``),
  ``server`` (``version``, ``settings``, ``notes``), ``capabilities``, ``plan``,
  ``problems``. Keys about the database's contents are ``null`` when it does not exist.
* ``status``: ``tracking_installed``, ``dirty``, ``lease``, ``derived`` (``name``,
  ``kind``, ``lease_holder``), ``problems``.
* ``bench``: ``scratch`` (``database``, ``dropped``), ``tables``, ``rounds``,
  ``strategies`` keyed by :class:`~dbrewind.Strategy` value (``rollback``:
  ``begin_rollback_ms``; ``clean``: ``one_table_ms``, ``all_tables_ms``,
  ``tables_ms``, ``slowest``; ``safety net``: ``check_ms``), ``recommendation`` (a
  strategy), ``advice``.
* ``clean``: ``applied``, ``drop`` (dropped, or that would be: ``name``, ``kind``),
  ``kept`` (``name``, ``kind``, ``reason``), ``failed`` (``name``, ``kind``, ``error``).
* ``uninstall``: ``removed``, ``was_installed``, ``refused``.

A password in the URL is never printed: URLs are shown with ``***``, and in any
text a driver or server returns (an error's message, a lease holder, a session)
the password, also percent-encoded, is shown as ``***`` whatever its length (a
very short one hides the same letters elsewhere in that text too). Names and
fields dbrewind writes itself are never altered.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from .._url import parse_url
from ..exceptions import DatabaseNotFoundError, DbrewindError, UnsafeDatabaseError
from ..rewinder import Rewinder
from ._bench import bench
from ._clean import clean
from ._console import ERROR, FINDINGS, INTERRUPTED, Console, error_text, secrets_of
from ._survey import doctor, status
from ._uninstall import uninstall

__all__ = ["main"]

Command = Callable[[Rewinder, Console, argparse.Namespace], "tuple[int, dict[str, Any]]"]

_DESCRIPTION = """\
Inspect, measure and tidy up dbrewind's test databases.

examples:
  dbrewind doctor postgresql://postgres@127.0.0.1/app_test
  dbrewind status --json sqlite:///tests/app_test.db
  dbrewind bench mysql://root@127.0.0.1/app_test
  dbrewind clean postgresql://postgres@127.0.0.1/app_test        (a dry run)
  dbrewind clean --yes postgresql://postgres@127.0.0.1/app_test
"""

_EPILOG = """\
exit status:
  0    done, nothing to report
  1    done, something needs attention: problems found (doctor), dirty tables or no
       tracking (status), refused by the safety guard or no tables (bench), something
       to drop (clean's dry run) or a drop that failed (clean --yes), refused because
       a run holds the database or by the safety guard (uninstall)
  2    usage error, bad URL, server or database unreachable or unreadable, or bench
       could not drop its scratch database
  130  interrupted (Ctrl-C); bench drops its scratch database first

--json prints one JSON document on stdout (progress and errors go to stderr), with
"command", "database" (password hidden) and "exit_code" in every one, "error"
when the command failed; the keys of each command are listed in the docstring
of dbrewind.cli (python -m pydoc dbrewind.cli). Passwords are never printed.
"""

_COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": (
        "show what dbrewind sees in a database and what it would do",
        "Tables, FK cycles, tracking (installed? which version? still covering every "
        "table?), baseline, dirty tables, leases, whether the safety guard accepts the "
        "database and why, its templates and clones, and the server's capabilities and "
        "the settings that bear on test speed. Reads only.",
    ),
    "status": (
        "show the dirty tables and who holds the database now",
        "The tables committed to since the last rewind, the run that leases the "
        "database (if any) and its templates and clones with theirs. Reads only. "
        "Exit status 1 when tables are dirty, or tracking is not installed or out of date.",
    ),
    "bench": (
        "time the strategies on a scratch copy of a database's schema",
        "Creates <name>_bench_<token> beside the database with the same tables and no "
        "rows, times BEGIN; ROLLBACK (the rollback sandbox), the safety net's check and "
        "the clean strategy's rewind of each table and of all of them there, recommends "
        "a strategy, and drops the scratch database (on errors and Ctrl-C too). The "
        "database itself is only read (its schema), never written.",
    ),
    "clean": (
        "drop unused templates, clones and scratch databases dbrewind made",
        "Lists the templates (<name>_tmpl_*), clones (<name>_r<n>, <name>_gw<n>) and "
        "bench scratch databases of the test database that dbrewind made, that no run "
        "leases and no session uses; with --yes, drops them. A dry run by default. "
        "Never drops the database the URL names, one dbrewind did not make, or one in use.",
    ),
    "uninstall": (
        "remove dbrewind's tracking objects from a database",
        "Drops the triggers, marks, baselines and routines dbrewind installed; the "
        "tables and their rows stay. Holds the database's lease meanwhile, as a run "
        "does. Refused (exit status 1) while a run holds the database, or when the "
        "safety guard cannot show it is a test database, unless --force.",
    ),
}


def _rounds(text: str) -> int:
    """``--rounds``: a whole number, 1 or more (refused before anything connects)."""
    try:
        rounds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if rounds < 1:
        raise argparse.ArgumentTypeError(f"{rounds}: give 1 or more")
    return rounds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbrewind",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, description) in _COMMANDS.items():
        cmd = sub.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 79),
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument(
            "url", metavar="URL", help="database URL, e.g. postgresql://postgres@127.0.0.1/app_test"
        )
        cmd.add_argument(
            "--json", action="store_true", help="print one JSON document on stdout (for scripts)"
        )
        cmd.add_argument(
            "--schema",
            action="append",
            default=[],
            metavar="NAME",
            help="PostgreSQL: a schema whose tables are tracked (default: public); repeatable",
        )
        if name == "bench":
            cmd.add_argument(
                "--rounds",
                type=_rounds,
                default=200,
                metavar="N",
                help="timings per figure (default: 200; each table's rewind: up to 5)",
            )
            cmd.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
        if name == "clean":
            cmd.add_argument(
                "--yes",
                "--apply",
                dest="apply",
                action="store_true",
                help="drop them (without it: list what would be dropped)",
            )
        if name == "uninstall":
            cmd.add_argument(
                "--force",
                action="store_true",
                help="even while a test run holds the database, or one the safety guard refuses",
            )
    return parser


def _existing(rewinder: Rewinder) -> Rewinder:
    """``rewinder``, once its database is known to exist (connecting to a SQLite file
    that does not would create it: a command that only reads must not)."""
    if not rewinder.exists():
        raise DatabaseNotFoundError(
            f"{rewinder.url.display()} does not exist. {DatabaseNotFoundError.advice}"
        )
    return rewinder


_RUN: dict[str, Command] = {
    "doctor": lambda r, c, a: doctor(r, c),
    "status": lambda r, c, a: status(_existing(r), c),
    "bench": lambda r, c, a: bench(_existing(r), c, a.rounds),
    "clean": lambda r, c, a: clean(r, c, apply=a.apply),
    "uninstall": lambda r, c, a: uninstall(_existing(r), c, force=a.force),
}


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks run."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``dbrewind`` command; returns the exit status."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else ERROR
    console = Console(
        out,
        sys.stderr,
        secrets=secrets_of(args.url),
        as_json=args.json,
        quiet=getattr(args, "quiet", False),
    )
    envelope: dict[str, Any] = {"command": args.command, "database": None, "exit_code": None}
    try:
        with _sigterm_raises():
            envelope["database"] = parse_url(args.url).display()
            with Rewinder(args.url, schemas=args.schema) as rewinder:
                code, report = _RUN[args.command](rewinder, console, args)
    except (KeyboardInterrupt, _Terminated):
        console.error("interrupted")
        code, report = INTERRUPTED, {"error": {"type": "Interrupted", "message": "interrupted"}}
    except UnsafeDatabaseError as exc:  # dbrewind's own words, no driver's
        console.error(str(exc))
        code, report = FINDINGS, {"error": {"type": type(exc).__name__, "message": str(exc)}}
    except (DbrewindError, SQLAlchemyError) as exc:
        # a driver's or server's words may be part of the message: masked, the URL aside
        message = console.mask(error_text(exc), envelope["database"] or "")
        console.error(message)
        code, report = ERROR, {"error": {"type": type(exc).__name__, "message": message}}
    if console.as_json:
        envelope["exit_code"] = code
        console.document({**envelope, **report})
    return code
