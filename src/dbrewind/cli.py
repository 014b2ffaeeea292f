"""The ``dbrewind`` command: ``doctor``, ``bench`` and ``uninstall`` for one database URL."""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from ._graph import strongly_connected
from ._strategy import Strategy
from .dialects import Installation
from .exceptions import DbrewindError
from .provision.fingerprint import tracking_version
from .rewinder import Rewinder

__all__ = ["main"]


def _doctor(rewinder: Rewinder, out: TextIO) -> int:
    url = rewinder.url
    caps = rewinder.dialect.capabilities
    print(f"database:   {url.display()}", file=out)
    print(f"backend:    {url.backend} (sync driver {url.sync_url().get_driver_name()})", file=out)
    exists = rewinder.exists()
    print(f"exists:     {'yes' if exists else 'no'}", file=out)
    _derived(rewinder, out)
    if not exists:
        print(
            "next step:  prepare it (pytest does this on first run, or Rewinder.prepare()).",
            file=out,
        )
        return 0
    reasons = rewinder.test_database_reasons()
    verdict = (
        ", ".join(reasons)
        if reasons
        else "NOT provably a test database: dbrewind will refuse to write"
    )
    print(f"test db:    {verdict}", file=out)
    with rewinder.connection() as conn:
        schema = rewinder.dialect.inspect(conn)
        found = rewinder.dialect.installation(conn)
        installed = found.installed
        dirty = list(found.dirty)
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
    print(f"tracking:   {_tracking_line(rewinder, found)}", file=out)
    if installed:
        print(f"dirty now:  {', '.join(dirty) if dirty else 'none'}", file=out)
        if not found.intact:
            print(f"out of date: {_drift(found)}; the next run installs it again", file=out)
        if found.depth:
            print(f"layers:     {found.depth} (rows of a wider fixture scope, kept)", file=out)
    holder = _holder(rewinder)
    print(f"lease:      {f'held by {holder}' if holder else 'free (no run uses it now)'}", file=out)
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


def _median_ms(
    fn: Callable[[], object], rounds: int, *, setup: Callable[[], object] | None = None
) -> float:
    """Median milliseconds of ``fn`` over ``rounds`` calls, each after an untimed ``setup``."""
    samples = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _bench(rewinder: Rewinder, out: TextIO, rounds: int, *, as_json: bool = False) -> int:
    """Measure the strategies on ``rewinder``'s database; print them (``as_json``: one
    JSON object whose ``strategies`` keys are :class:`~dbrewind.Strategy` values)."""
    rewinder.ensure_safe("benchmark")
    with rewinder.connection() as conn:
        if not rewinder.dialect.is_installed(conn):
            message = (
                f"dbrewind tracking is not installed in {rewinder.url.display()}; run your test "
                "suite once (or Rewinder.prepare()) first, then bench."
            )
            if as_json:
                message = json.dumps({"database": rewinder.url.display(), "error": message})
            print(message, file=out)
            return 1
        tracked = rewinder.dialect.tracked_tables(conn)
    rewinder.rewind()  # start from the baseline
    with rewinder.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Both statements sent, on the driver's cursor: a DB-API rollback() with
        # nothing executed sends nothing on some drivers (psycopg).
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

        def begin_rollback() -> None:
            cursor.execute("BEGIN")
            cursor.execute("ROLLBACK")

        try:
            floor = _median_ms(begin_rollback, rounds)
        finally:
            cursor.close()
    check = _median_ms(rewinder.rewind, rounds)

    def rewind_all_the_way() -> None:
        rewinder.rewind()
        rewinder.dialect.settle()  # MySQL: until the counters are back too

    # Each table marked dirty alone, then all of them: what the clean strategy
    # costs after a test that wrote them (row work; the test's writes not counted).
    each = max(1, min(5, rounds))
    per_table: dict[str, float] = {}
    for key in tracked:
        per_table[key] = _median_ms(
            rewind_all_the_way, each, setup=functools.partial(rewinder.mark_dirty, key)
        )
    every = _median_ms(
        rewind_all_the_way, each, setup=functools.partial(rewinder.mark_dirty, *tracked)
    )
    if as_json:
        _bench_json(rewinder, out, floor, check, per_table, every)
        return 0

    print(f"database:               {rewinder.url.display()}", file=out)
    print(f"BEGIN; ROLLBACK:        {floor:.3f} ms  (the rollback sandbox's floor)", file=out)
    print(
        f"clean check, no writes: {check:.3f} ms  ({check / floor:.1f}x the floor; the safety net)",
        file=out,
    )
    if not tracked:
        print("rewind:                 no tables tracked", file=out)
        return 0
    one = statistics.median(per_table.values())
    tables = f"{len(tracked)} table{'s' if len(tracked) != 1 else ''}"
    detail = f"median over {tables}, each rewound alone"
    if len(tracked) > 1:
        slowest = sorted(per_table.items(), key=lambda kv: kv[1], reverse=True)[:3]
        detail += "; slowest: " + ", ".join(f"{k} {ms:.3f} ms" for k, ms in slowest)
    ratio = f"{one / floor:.1f}x the floor"
    print(f"rewind, 1 table:        {one:.3f} ms  ({ratio}; {detail})", file=out)
    print(f"rewind, all tables:     {every:.3f} ms  ({tables})", file=out)
    if one <= 3 * floor:
        advice = (
            "use the rollback sandbox (`db`, `db_session`) by default; a test that must "
            f"commit (`transactional_db`) costs about {one:.3f} ms a table it writes here, "
            "not much more, so use it wherever real commits make a test simpler."
        )
    else:
        advice = (
            "use the rollback sandbox (`db`, `db_session`) by default and `transactional_db` "
            f"only for tests that must commit: each table such a test writes costs about "
            f"{one:.3f} ms to rewind here, {one / floor:.0f}x the sandbox's floor."
        )
    print(f"recommendation:         {advice}", file=out)
    return 0


def _bench_json(
    rewinder: Rewinder,
    out: TextIO,
    floor: float,
    check: float,
    per_table: dict[str, float],
    every: float,
) -> None:
    """``bench --json``: the figures by strategy, in milliseconds."""
    clean: dict[str, object] | None = None
    if per_table:
        clean = {
            "one_table_ms": statistics.median(per_table.values()),
            "all_tables_ms": every,
            "tables_ms": per_table,
        }
    report = {
        "database": rewinder.url.display(),
        "strategies": {
            Strategy.ROLLBACK.value: {"begin_rollback_ms": floor},
            Strategy.CLEAN.value: clean,
            Strategy.SAFETY_NET.value: {"check_ms": check},
        },
        "recommendation": Strategy.ROLLBACK.value,
    }
    print(json.dumps(report, indent=2), file=out)


def _tracking_line(rewinder: Rewinder, found: Installation) -> str:
    if not found.installed:
        return "not installed"
    state = found.state
    current = tracking_version(rewinder.url.backend)
    version = state.get("version")
    if version is None:
        made = "made by an older dbrewind or by hand"
    elif version == current:
        made = f"version {version}"
    else:
        made = f"version {version}, this dbrewind installs {current}"
    clean = {"1": "last run released it cleanly", "0": "in use, or its last run died"}
    return f"installed ({made}; {clean.get(state.get('clean', ''), 'never held by a run')})"


def _drift(found: Installation) -> str:
    parts = []
    if found.untracked:
        parts.append(f"recreated without tracking: {', '.join(found.untracked)}")
    if found.missing:
        parts.append(f"gone: {', '.join(found.missing)}")
    if found.created:
        parts.append(f"not tracked: {', '.join(found.created)}")
    return "; ".join(parts)


def _derived(rewinder: Rewinder, out: TextIO) -> None:
    """The templates and clones dbrewind made from this database: kind, age, lease holder."""
    url = rewinder.url
    if url.is_memory:
        return
    from .provision.naming import sibling, stem, template_prefix
    from .provision.target import BUILT

    base = stem(url)
    files = rewinder.dialect.databases_are_files  # listed as paths: the names are their stems
    try:
        listed = rewinder.dialect.list_databases(url, base + "_")
    except DbrewindError:
        return
    names = [Path(n).stem if files else n for n in listed]
    names = [n for n in names if n != base]
    if not names:
        return
    print(f"derived:    {len(names)} database(s) made from it", file=out)
    now = time.time()
    for name in names:
        other = sibling(url, name)
        shown = other.display().rsplit("/", 1)[-1]
        kind = "template" if stem(other).startswith(template_prefix(base)) else "clone"
        age = "age unknown"
        try:
            with Rewinder(other, allow=True) as derived, derived.connection() as conn:
                built = derived.dialect.installation(conn).state.get(BUILT)
            if built:
                age = f"built {_age(now - float(built))} ago"
            elif kind == "clone":
                age = "cloned from a template"
        except (DbrewindError, ValueError):
            age = "unreadable (not prepared, or of an older dbrewind)"
        holder = None if kind == "template" else _holder(Rewinder(other, allow=True))
        lease = f", leased by {holder}" if holder else ""
        print(f"  {kind:8}  {shown}: {age}{lease}", file=out)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _holder(rewinder: Rewinder) -> str | None:
    if rewinder.url.is_memory:
        return None
    return rewinder.dialect.lock_holder(rewinder.url, "lease")


def _uninstall(rewinder: Rewinder, out: TextIO, *, force: bool = False) -> int:
    holder = _holder(rewinder)
    if holder and not force:
        print(
            f"dbrewind: error: a test run holds {rewinder.url.display()} ({holder}); removing "
            "its tracking now would let its writes leak. Let the run finish, or pass --force.",
            file=sys.stderr,
        )
        return 2
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
            cmd.add_argument(
                "--json", action="store_true", help="print the figures as one JSON object"
            )
        if name == "uninstall":
            cmd.add_argument(
                "--force", action="store_true", help="even while a test run holds the database"
            )
    args = parser.parse_args(argv)
    try:
        with Rewinder(args.url, schemas=args.schema) as rewinder:
            if args.command == "doctor":
                return _doctor(rewinder, out)
            if args.command == "bench":
                return _bench(rewinder, out, args.rounds, as_json=args.json)
            return _uninstall(rewinder, out, force=args.force)
    except DbrewindError as exc:
        print(f"dbrewind: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
