"""``doctor`` and ``status``: what dbrewind sees in a database, read without writing.

Each command gathers a report (a dict of JSON types: what ``--json`` prints) and
renders the text from that same report, so the two never say different things.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .._graph import strongly_connected
from .._url import DatabaseURL
from ..dialects import Dialect, Installation, SchemaInfo
from ..exceptions import DbrewindError, UnsafeDatabaseError
from ..provision.fingerprint import tracking_version
from ..provision.naming import DerivedKind, derived_kind, sibling, stem
from ..provision.target import BUILT, CLEAN, FINGERPRINT, ORIGIN, VERSION
from ..rewinder import Rewinder
from ._console import FINDINGS, OK, Console

__all__ = ["derived_databases", "derived_names", "doctor", "held_by", "status"]


# ------------------------------------------------------------------ gathering


def held_by(rewinder: Rewinder, console: Console) -> str | None:
    """Who holds the lease of ``rewinder``'s database (a run, as the server describes
    it: masked), or None."""
    if rewinder.url.is_memory:
        return None
    holder = rewinder.dialect.lock_holder(rewinder.url, "lease")
    return None if holder is None else console.mask(holder)


def derived_names(url: DatabaseURL, dialect: Dialect) -> list[tuple[str, DerivedKind]]:
    """The databases on ``url``'s server (beside its file, on SQLite) whose names the
    lifecycle derives from ``url``'s, with their kind. SQLite: by file name without its
    suffix, and only files with the suffix of ``url``'s (those dbrewind makes; the name
    of another would lead to a file of its own)."""
    base = stem(url)
    suffix = Path(url.database).suffix
    found = []
    for entry in dialect.list_databases(url, base[: max(1, dialect.name_limit - 40)]):
        if dialect.databases_are_files and Path(entry).suffix != suffix:
            continue
        name = Path(entry).stem if dialect.databases_are_files else entry
        kind = derived_kind(base, name, dialect.name_limit)
        if kind is not None:
            found.append((name, kind))
    return found


def derived_databases(
    rewinder: Rewinder, console: Console, *, details: bool
) -> list[dict[str, Any]]:
    """The templates, clones and bench scratch databases of ``rewinder``'s database,
    sorted by name: ``name``, ``kind`` and ``lease_holder``; with ``details`` also
    ``made_by_dbrewind`` and ``built`` (seconds since the epoch, or None). What cannot
    be read of one of them is None."""
    url, dialect = rewinder.url, rewinder.dialect
    if url.is_memory:
        return []
    try:
        names = derived_names(url, dialect)
    except (DbrewindError, SQLAlchemyError):
        return []
    found = []
    for name, kind in names:
        other = sibling(url, name)
        item: dict[str, Any] = {
            "name": Path(other.database).name if dialect.databases_are_files else name,
            "kind": kind,
            "lease_holder": None,
        }
        if details:
            item.update(made_by_dbrewind=None, built=None)
        try:
            if kind != "template":
                holder = dialect.lock_holder(other, "lease")
                item["lease_holder"] = None if holder is None else console.mask(holder)
            if details:
                with Rewinder(other, allow=True) as derived, derived.connection() as conn:
                    item["made_by_dbrewind"] = derived.dialect.created_by_dbrewind(conn)
                    built = derived.dialect.installation(conn).state.get(BUILT)
                item["built"] = float(built) if built else None
        except (DbrewindError, SQLAlchemyError, ValueError):
            pass  # not prepared, of an older dbrewind, or unreadable: shown as unknown
        found.append(item)
    return sorted(found, key=lambda item: str(item["name"]))


def _guard(rewinder: Rewinder) -> dict[str, Any]:
    reasons = rewinder.test_database_reasons()
    refusal = None
    try:
        rewinder.ensure_safe("write to")
    except UnsafeDatabaseError as exc:
        refusal = str(exc)
    return {"accepted": not refusal, "reasons": reasons, "refusal": refusal}


def _schema(schema: SchemaInfo) -> dict[str, Any]:
    edges = [(fk.child, fk.parent) for fk in schema.foreign_keys]
    cycles = [c for c in strongly_connected(sorted(schema.tables), edges) if len(c) > 1]
    return {
        "tables": sorted(schema.tables),
        "foreign_keys": len(schema.foreign_keys),
        "fk_cycles": [list(c) for c in cycles],
        "self_references": sorted(
            {fk.child for fk in schema.foreign_keys if fk.child == fk.parent}
        ),
    }


def _tracking(rewinder: Rewinder, found: Installation) -> dict[str, Any]:
    state = found.state
    current = tracking_version(rewinder.url.backend)
    released = {"1": True, "0": False}.get(state.get(CLEAN, ""))
    return {
        "installed": found.installed,
        "version": state.get(VERSION),
        "current_version": current,
        "up_to_date": (state.get(VERSION) == current) if VERSION in state else None,
        "intact": found.intact,
        "released_cleanly": released if found.installed else None,
        "not_tracked": list(found.created),
        "recreated_untracked": list(found.untracked),
        "gone": list(found.missing),
    }


def _baseline(found: Installation) -> dict[str, Any] | None:
    if not found.installed:
        return None
    state = found.state
    built = state.get(BUILT)
    try:
        when = float(built) if built else None
    except ValueError:
        when = None
    return {
        "tables": len(found.tracked),
        "layers": found.depth,
        "template": state.get(ORIGIN),
        "fingerprint": state.get(FINGERPRINT),
        "built": when,
    }


def _plan(rewinder: Rewinder) -> str:
    plan = (
        "rollback sandbox per test (fastest); tests that need real commits use the clean "
        "strategy, which rewinds only the dirty tables"
    )
    if rewinder.dialect.capabilities.implicit_commits:
        plan += (
            "; DDL/TRUNCATE/LOCK TABLES in a test commit implicitly: mark such tests transactional"
        )
    return plan


def _tracking_problems(tracking: dict[str, Any], dirty: list[str]) -> list[str]:
    problems = []
    if dirty:
        problems.append(
            f"{len(dirty)} table(s) hold committed writes not rewound yet: {', '.join(dirty)}"
        )
    if tracking["installed"] and (not tracking["intact"] or tracking["up_to_date"] is False):
        problems.append("tracking is out of date; the next run installs it again")
    return problems


def doctor(rewinder: Rewinder, console: Console) -> tuple[int, dict[str, Any]]:
    """Everything dbrewind sees in the database; exit 1 when it finds a problem."""
    url, dialect = rewinder.url, rewinder.dialect
    caps = dialect.capabilities
    report: dict[str, Any] = {
        "backend": url.backend,
        "driver": url.sync_url().get_driver_name(),
        "exists": rewinder.exists(),
        "guard": None,
        "schema": None,
        "tracking": None,
        "baseline": None,
        "dirty": None,
        "lease": None,
        "derived": derived_databases(rewinder, console, details=True),
        "server": None,
        "capabilities": {name: getattr(caps, name) for name in caps.__dataclass_fields__},
        "plan": _plan(rewinder),
        "problems": [],
    }
    problems: list[str] = report["problems"]
    report["guard"] = guard = _guard(rewinder)
    if not guard["accepted"]:
        problems.append("dbrewind refuses to write to this database (see guard)")
    if report["exists"]:
        with rewinder.connection() as conn:
            schema = dialect.inspect(conn)
            found = dialect.installation(conn)
            server = dialect.server_report(conn)
        report["schema"] = _schema(schema)
        report["tracking"] = tracking = _tracking(rewinder, found)
        report["baseline"] = _baseline(found)
        report["dirty"] = dirty = list(found.dirty) if found.installed else []
        holder = held_by(rewinder, console)
        report["lease"] = {"held": holder is not None, "holder": holder}
        report["server"] = {
            "version": server.version,
            "settings": dict(server.settings),
            "notes": list(server.notes),
        }
        problems += _tracking_problems(tracking, dirty)
    _render_doctor(report, url.display(), console)
    return (FINDINGS if problems else OK), report


def status(rewinder: Rewinder, console: Console) -> tuple[int, dict[str, Any]]:
    """Dirty tables and leases now; exit 1 when tables are dirty or nothing is tracked."""
    with rewinder.connection() as conn:  # a database that is not there fails here
        found = rewinder.dialect.installation(conn)
    holder = held_by(rewinder, console)
    dirty = list(found.dirty) if found.installed else []
    tracking = _tracking(rewinder, found)
    problems = _tracking_problems(tracking, dirty)
    if not found.installed:
        problems.append("dbrewind tracking is not installed: nothing says which tables are dirty")
    report: dict[str, Any] = {
        "tracking_installed": found.installed,
        "dirty": dirty,
        "lease": {"held": holder is not None, "holder": holder},
        "derived": derived_databases(rewinder, console, details=False),
        "problems": problems,
    }
    console.line(f"database:   {rewinder.url.display()}")
    console.line(f"tracking:   {'installed' if found.installed else 'not installed'}")
    if found.installed:
        console.line(f"dirty now:  {', '.join(dirty) if dirty else 'none'}")
    console.line(f"lease:      {_lease_text(report['lease'])}")
    _render_derived(report["derived"], console)
    _render_problems(problems, console)
    return (FINDINGS if problems else OK), report


# ------------------------------------------------------------------ rendering


def _lease_text(lease: dict[str, Any]) -> str:
    return f"held by {lease['holder']}" if lease["held"] else "free (no run uses it now)"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _render_derived(derived: list[dict[str, Any]], console: Console) -> None:
    if not derived:
        return
    console.line(f"derived:    {len(derived)} database(s) made from it")
    now = time.time()
    for item in derived:
        parts = []
        built = item.get("built")
        if built and item["kind"] == "template":
            parts.append(f"built {_age(now - built)} ago")
        elif built:
            parts.append(f"of a template built {_age(now - built)} ago")
        if item.get("made_by_dbrewind") is False:
            parts.append("NOT made by dbrewind")
        if item["lease_holder"]:
            parts.append(f"leased by {item['lease_holder']}")
        elif item["kind"] != "template":
            parts.append("free")
        shown = f": {', '.join(parts)}" if parts else ""
        console.line(f"  {item['kind']:8}  {item['name']}{shown}")


def _render_problems(problems: list[str], console: Console) -> None:
    for problem in problems:
        console.line(f"problem:    {problem}")


def _tracking_text(tracking: dict[str, Any]) -> str:
    if not tracking["installed"]:
        return "not installed (the first run installs it)"
    version = tracking["version"]
    if version is None:
        made = "made by an older dbrewind or by hand"
    elif tracking["up_to_date"]:
        made = f"version {version}"
    else:
        made = f"version {version}, this dbrewind installs {tracking['current_version']}"
    released = {
        True: "last run released it cleanly",
        False: "in use, or its last run died",
        None: "never held by a run",
    }[tracking["released_cleanly"]]
    return f"installed ({made}; {released})"


def _render_doctor(report: dict[str, Any], shown: str, console: Console) -> None:
    line = console.line
    line(f"database:   {shown}")
    line(f"backend:    {report['backend']} (sync driver {report['driver']})")
    line(f"exists:     {'yes' if report['exists'] else 'no'}")
    guard = report["guard"]
    if guard["accepted"]:
        line(f"test db:    yes: {', '.join(guard['reasons'])}")
    else:
        line("test db:    NOT provably a test database: dbrewind will refuse to write")
        line(f"            {guard['refusal']}")
    _render_derived(report["derived"], console)
    if not report["exists"]:
        line("next step:  prepare it (pytest does this on its first run, or Rewinder.prepare())")
    else:
        schema, tracking = report["schema"], report["tracking"]
        line(f"tables:     {len(schema['tables'])} ({schema['foreign_keys']} foreign keys)")
        if schema["fk_cycles"]:
            line(f"FK cycles:  {'; '.join(' -> '.join(c) for c in schema['fk_cycles'])}")
        if schema["self_references"]:
            line(f"self-refs:  {', '.join(schema['self_references'])}")
        line(f"tracking:   {_tracking_text(tracking)}")
        drift = [
            f"{label}: {', '.join(tracking[key])}"
            for key, label in (
                ("recreated_untracked", "recreated without tracking"),
                ("gone", "gone"),
                ("not_tracked", "not tracked"),
            )
            if tracking[key]
        ]
        if drift:
            line(f"out of date: {'; '.join(drift)}; the next run installs it again")
        baseline = report["baseline"]
        if baseline is not None:
            source = f", from template {baseline['template']}" if baseline["template"] else ""
            layers = baseline["layers"]
            above = f"; {layers} layer(s) of a wider fixture scope above it" if layers else ""
            line(f"baseline:   {baseline['tables']} table(s){source}{above}")
            line(f"dirty now:  {', '.join(report['dirty']) or 'none'}")
        line(f"lease:      {_lease_text(report['lease'])}")
        server = report["server"]
        settings = ", ".join(f"{k}={v}" for k, v in server["settings"].items())
        line(f"server:     {server['version']}" + (f" ({settings})" if settings else ""))
        for note in server["notes"]:
            line(f"  note:     {note}")
    flags = ", ".join(f"{name}={value}" for name, value in report["capabilities"].items())
    line(f"features:   {flags}")
    line(f"would do:   {report['plan']}")
    _render_problems(report["problems"], console)
