"""The ``dbrewind`` command: ``doctor``, ``bench`` and ``uninstall`` for one database URL."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from ._graph import strongly_connected
from .exceptions import DbrewindError
from .rewinder import Rewinder

__all__ = ["main"]


def _doctor(rewinder: Rewinder, out: TextIO) -> int:
    url = rewinder.url
    caps = rewinder.dialect.capabilities
    print(f"database:   {url.display()}", file=out)
    print(f"backend:    {url.backend} (sync driver {url.sync_url().get_driver_name()})", file=out)
    reasons = []
    if url.name_says_test():
        reasons.append("its name says test")
    if rewinder.allow:
        reasons.append("allowed explicitly")
    exists = rewinder.exists()
    print(f"exists:     {'yes' if exists else 'no'}", file=out)
    if not exists:
        print(
            "next step:  prepare it (pytest does this on first run, or Rewinder.prepare()).",
            file=out,
        )
        return 0
    if rewinder.is_test_database() and not reasons:
        reasons.append("dbrewind created it")
    verdict = (
        ", ".join(reasons)
        if reasons
        else "NOT provably a test database: dbrewind will refuse to write"
    )
    print(f"test db:    {verdict}", file=out)
    with rewinder.connection() as conn:
        schema = rewinder.dialect.inspect(conn)
        installed = rewinder.dialect.is_installed(conn)
        dirty = rewinder.dialect.dirty_tables(conn) if installed else []
    cycles = [
        c
        for c in strongly_connected(
            sorted(schema.tables), [(fk.child, fk.parent) for fk in schema.foreign_keys]
        )
        if len(c) > 1
    ]
    self_refs = sorted({fk.child for fk in schema.foreign_keys if fk.child == fk.parent})
    print(f"tables:     {len(schema.tables)} ({len(schema.foreign_keys)} foreign keys)", file=out)
    if cycles:
        print(f"FK cycles:  {'; '.join(' -> '.join(c) for c in cycles)}", file=out)
    if self_refs:
        print(f"self-refs:  {', '.join(self_refs)}", file=out)
    print(f"tracking:   {'installed' if installed else 'not installed'}", file=out)
    if installed:
        print(f"dirty now:  {', '.join(dirty) if dirty else 'none'}", file=out)
    flags = ", ".join(f"{name}={getattr(caps, name)}" for name in caps.__dataclass_fields__)
    print(f"features:   {flags}", file=out)
    plan = (
        "rollback sandbox per test (fastest); tests that need real commits use the clean "
        "strategy, which rewinds only dirty tables"
    )
    if caps.implicit_commits:
        plan += (
            "; DDL/TRUNCATE/LOCK TABLES in a test commit implicitly: mark such tests transactional"
        )
    print(f"would do:   {plan}", file=out)
    return 0


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _bench(rewinder: Rewinder, out: TextIO, rounds: int) -> int:
    rewinder.ensure_safe("benchmark")
    with rewinder.connection() as conn:
        if not rewinder.dialect.is_installed(conn):
            print(
                f"dbrewind tracking is not installed in {rewinder.url.display()}; run your test "
                "suite once (or Rewinder.prepare()) first, then bench.",
                file=out,
            )
            return 1
    with rewinder.engine.connect() as conn:

        def begin_rollback() -> None:
            conn.begin().rollback()

        floor = _median_ms(begin_rollback, rounds)
    check = _median_ms(rewinder.rewind, rounds)
    print(f"database:               {rewinder.url.display()}", file=out)
    print(f"BEGIN; ROLLBACK:        {floor:.3f} ms  (the rollback sandbox's floor)", file=out)
    print(
        f"clean check, no writes: {check:.3f} ms  ({check / floor:.1f}x the floor; the safety net)",
        file=out,
    )
    print(
        "recommendation:         use the rollback sandbox (`db`, `db_session`) by default and "
        "`transactional_db` only for tests that must commit; the safety net's check costs "
        f"{check:.3f} ms a test.",
        file=out,
    )
    return 0


def _uninstall(rewinder: Rewinder, out: TextIO) -> int:
    with rewinder.connection() as conn:
        installed = rewinder.dialect.is_installed(conn)
    if not installed:
        print(f"nothing to remove: no dbrewind tracking in {rewinder.url.display()}", file=out)
        return 0
    rewinder.uninstall()
    print(f"removed dbrewind tracking from {rewinder.url.display()}", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``dbrewind`` command; returns the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="dbrewind", description="Inspect, measure and clean up dbrewind test databases."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("doctor", "show what dbrewind sees in a database and what it would do"),
        ("bench", "measure the isolation strategies on a prepared test database"),
        ("uninstall", "remove dbrewind's tracking objects from a database"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("url", help="database URL, e.g. postgresql://postgres@127.0.0.1/app_test")
        cmd.add_argument("--schema", action="append", default=[], help="PostgreSQL schema to track")
        if name == "bench":
            cmd.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        with Rewinder(args.url, schemas=args.schema) as rewinder:
            if args.command == "doctor":
                return _doctor(rewinder, out)
            if args.command == "bench":
                return _bench(rewinder, out, args.rounds)
            return _uninstall(rewinder, out)
    except DbrewindError as exc:
        print(f"dbrewind: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
