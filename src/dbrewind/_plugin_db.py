"""One database as the pytest plugin manages it: template, per-worker clone, engines, checks."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ._plugin_config import DatabaseConfig
from ._template import file_lock, fingerprint, template_name, worker_name
from ._url import DatabaseURL
from .exceptions import DbrewindError
from .rewinder import Rewinder

__all__ = ["Baseline", "ManagedDatabase", "Stats", "TableState"]


def _sibling(url: DatabaseURL, name: str) -> DatabaseURL:
    """Another database next to ``url``: for SQLite a file in the same directory."""
    if url.backend == "sqlite":
        path = Path(url.database)
        return url.with_database(str(path.with_name(name + path.suffix)))
    return url.with_database(name)


def _stem(url: DatabaseURL) -> str:
    return Path(url.database).stem if url.backend == "sqlite" else url.database


class ManagedDatabase:
    """A test database prepared once per run from a cached template.

    ``prepare`` fingerprints the setup; under a file lock it builds the
    template ``<name>_tmpl_<fingerprint8>`` unless one with that fingerprint
    is already prepared (a warm start), then clones this process's database
    from it: ``<name>`` alone, ``<name>_gw0`` under pytest-xdist.
    """

    def __init__(
        self,
        config: DatabaseConfig,
        *,
        cache: Path,
        worker: str | None = None,
        rebuild: bool = False,
        fingerprint_paths: Sequence[Path] = (),
    ) -> None:
        self.config = config
        self.alias = config.alias
        self.cache = cache
        self.worker = worker
        self.rebuild = rebuild
        self.fingerprint_paths = tuple(fingerprint_paths)
        base = config.test
        self.url: DatabaseURL = (
            base
            if worker is None or base.is_memory
            else _sibling(base, worker_name(_stem(base), worker))
        )
        self.template: DatabaseURL | None = None
        self.fingerprint = ""
        self.built_template = False
        self.prepare_seconds = 0.0
        self._rewinder: Rewinder | None = None
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self.baseline: Baseline | None = None

    def __repr__(self) -> str:
        return f"ManagedDatabase({self.alias!r}, {self.url.display()!r})"

    # ---------------------------------------------------------------- prepare
    def prepare(self, setups: Sequence[Callable[[Connection], object]]) -> None:
        """Build or reuse the template, then clone this process's database from it.

        ``prepare_seconds`` is the database work; importing the driver (which
        any test that uses the database pays) happens before the clock starts.
        """
        self.url.sync_url().get_dialect().import_dbapi()
        started = time.perf_counter()
        if self.url.is_memory:
            self._rewinder = Rewinder(self.url, engine=self.engine)
            self._rewinder.prepare(list(setups))
            self.prepare_seconds = time.perf_counter() - started
            return
        base = self.config.test
        sa_dialect = base.sync_url().get_dialect()()
        self.fingerprint = fingerprint(
            setups,
            paths=self.fingerprint_paths,
            extra=[base.backend, _stem(base)],
            dialect=sa_dialect,
        )
        limit = 63 if base.backend != "sqlite" else 200
        self.template = _sibling(base, template_name(_stem(base), self.fingerprint, limit))
        lock = self.cache / f"{base.backend}-{_digest(base.display())}.lock"
        record = self.cache / f"{base.backend}-{_digest(self.url.display())}.clone"
        with file_lock(lock):
            if self.rebuild or not self._reuse_clone(record):
                self._ensure_template(setups)
                worker = Rewinder(self.url)
                try:
                    if worker.exists():
                        worker.drop()
                    worker.create(template=self.template)
                finally:
                    worker.close()
                self._rewinder = Rewinder(self.url)
                record.write_text(f"{self.template.database}\n{_schema_digest(self._rewinder)}\n")
        self.prepare_seconds = time.perf_counter() - started

    def _reuse_clone(self, record: Path) -> bool:
        """A warm start: keep this process's database from the last run when it was cloned
        from the current template, still carries tracking and has the same tables.

        Whatever a crashed run left committed is rewound first; anything
        unexpected (a table created or dropped, tracking gone) means a fresh clone.
        """
        assert self.template is not None
        try:
            template_db, digest = record.read_text().split("\n")[:2]
        except (OSError, ValueError):
            return False
        if template_db != self.template.database:
            return False
        rewinder = Rewinder(self.url)
        try:
            if self.url.backend == "sqlite" and not rewinder.exists():
                return False
            result = rewinder.rewind()
            if result.created_tables or _schema_digest(rewinder) != digest:
                return False
        except (DbrewindError, SQLAlchemyError):
            rewinder.close()
            return False
        self._rewinder = rewinder
        return True

    def _ensure_template(self, setups: Sequence[Callable[[Connection], object]]) -> None:
        assert self.template is not None
        record = self.cache / f"{self.config.backend}-{_stem(self.config.test)}.template"
        tmpl = Rewinder(self.template)
        try:
            ready = False
            if not self.rebuild and tmpl.exists():
                with tmpl.connection() as conn:
                    ready = tmpl.dialect.is_installed(conn)
            if not ready:
                tmpl.prepare(list(setups), recreate=True)
                self.built_template = True
        finally:
            tmpl.close()
        previous = record.read_text().strip() if record.exists() else ""
        if previous and previous != self.template.database:
            stale = Rewinder(_sibling(self.template, _stem_of_name(previous, self.template)))
            try:
                if stale.exists():
                    stale.drop()
            except Exception:  # another run may still use it; it is only a cache
                pass
            finally:
                stale.close()
        record.write_text(self.template.database + "\n")

    # ---------------------------------------------------------------- engines
    @property
    def rewinder(self) -> Rewinder:
        """The Rewinder of this process's test database (after :meth:`prepare`)."""
        if self._rewinder is None:
            raise RuntimeError(f"{self!r} is used before prepare()")
        return self._rewinder

    @property
    def engine(self) -> Engine:
        """The session's synchronous engine on the test database."""
        if self._engine is None:
            if self.url.is_memory:
                from sqlalchemy.pool import StaticPool

                self._engine = create_engine(
                    self.url.sync_url(),
                    poolclass=StaticPool,
                    connect_args={"check_same_thread": False},
                )
            else:
                self._engine = create_engine(self.url.sync_url())
        return self._engine

    @property
    def async_engine(self) -> AsyncEngine:
        """The session's AsyncEngine; it pools nothing, so it works from any event loop."""
        if self._async_engine is None:
            self._async_engine = create_async_engine(self.url.async_url(), poolclass=NullPool)
        return self._async_engine

    def close(self) -> None:
        """Dispose of dbrewind's own connection, then the engines."""
        if self._rewinder is not None:
            self._rewinder.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._async_engine is not None:
            # NullPool keeps no connection, so nothing awaits closing
            self._async_engine.sync_engine.dispose()
            self._async_engine = None

    # ----------------------------------------------------------------- verify
    def capture_baseline(self) -> None:
        """Record row counts and content checksums of every tracked table."""
        self.baseline = Baseline.capture(self.rewinder)

    def verify(self) -> list[str]:
        """Differences from the baseline, one message per table (empty when equal).

        After a difference, the state found becomes the reference, so only the
        test that caused a difference is blamed for it.
        """
        if self.baseline is None:
            self.capture_baseline()
            return []
        now = Baseline.capture(self.rewinder)
        problems = self.baseline.compare(now)
        if problems:
            self.baseline = now
        return problems


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _schema_digest(rewinder: Rewinder) -> str:
    """A digest of the tracked tables and their columns."""
    tables = sorted((key, t.columns) for key, t in rewinder.schema.tables.items())
    return _digest(repr(tables))


def _stem_of_name(name: str, like: DatabaseURL) -> str:
    return Path(name).stem if like.backend == "sqlite" else name


@dataclass(frozen=True)
class TableState:
    """One table's rows, as a count, a checksum and the rows themselves (sorted reprs)."""

    count: int
    checksum: str
    rows: tuple[str, ...]


@dataclass
class Baseline:
    """Contents of every tracked table, for ``--dbrewind-verify``."""

    tables: dict[str, TableState] = field(default_factory=dict)

    @classmethod
    def capture(cls, rewinder: Rewinder) -> Baseline:
        schema = rewinder.schema
        out: dict[str, TableState] = {}
        with rewinder.connection() as conn:
            prep = conn.dialect.identifier_preparer
            for key, table in schema.tables.items():
                name = prep.quote_identifier(table.name)
                if table.schema:
                    name = f"{prep.quote_identifier(table.schema)}.{name}"
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {name}")))
                digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
                out[key] = TableState(len(rows), digest, tuple(rows))
        return cls(out)

    def compare(self, now: Baseline) -> list[str]:
        problems: list[str] = []
        for key in sorted(set(self.tables) | set(now.tables)):
            before, after = self.tables.get(key), now.tables.get(key)
            if before is None:
                problems.append(f"table {key!r} exists now but not in the baseline")
                continue
            if after is None:
                problems.append(f"table {key!r} of the baseline is gone")
                continue
            if before.checksum == after.checksum:
                continue
            extra = Counter(after.rows) - Counter(before.rows)
            missing = Counter(before.rows) - Counter(after.rows)
            lines = [
                f"table {key!r}: {after.count} rows, baseline has {before.count} "
                f"(checksum {after.checksum[:8]} != {before.checksum[:8]})"
            ]
            lines += [f"    + {row}" for row in list(extra.elements())[:5]]
            lines += [f"    - {row}" for row in list(missing.elements())[:5]]
            problems.append("\n".join(lines))
        return problems


@dataclass
class TestRecord:
    """What isolating one test cost."""

    nodeid: str
    strategy: str
    seconds: float = 0.0
    tables: tuple[str, ...] = ()


@dataclass
class Stats:
    """Counts and timings for the terminal summary (merged across xdist workers)."""

    tests: list[TestRecord] = field(default_factory=list)
    prepare_seconds: float = 0.0
    templates_built: int = 0
    templates_reused: int = 0

    def add(self, record: TestRecord) -> None:
        self.tests.append(record)

    def to_json(self) -> dict[str, Any]:
        return {
            "tests": [[t.nodeid, t.strategy, t.seconds, list(t.tables)] for t in self.tests],
            "prepare_seconds": self.prepare_seconds,
            "templates_built": self.templates_built,
            "templates_reused": self.templates_reused,
        }

    def merge_json(self, data: dict[str, Any]) -> None:
        for nodeid, strategy, seconds, tables in data.get("tests", []):
            self.tests.append(TestRecord(nodeid, strategy, float(seconds), tuple(tables)))
        self.prepare_seconds += float(data.get("prepare_seconds", 0.0))
        self.templates_built += int(data.get("templates_built", 0))
        self.templates_reused += int(data.get("templates_reused", 0))

    def lines(self) -> list[str]:
        """The terminal summary, or nothing when no test used a database."""
        if not self.tests and not self.prepare_seconds:
            return []
        strategies = Counter(t.strategy for t in self.tests)
        total = sum(t.seconds for t in self.tests)
        out = [
            "strategies: "
            + ", ".join(f"{name} {count}" for name, count in sorted(strategies.items()))
            + f"; isolating took {total * 1000:.0f} ms in all"
            + f", preparing {self.prepare_seconds * 1000:.0f} ms"
            + f" (templates built {self.templates_built}, reused {self.templates_reused})"
        ]
        slowest = sorted((t for t in self.tests if t.seconds > 0), key=lambda t: -t.seconds)[:5]
        if slowest:
            out.append("slowest rewinds:")
            out += [
                f"  {t.seconds * 1000:8.1f} ms  {t.nodeid}  ({', '.join(t.tables) or '-'})"
                for t in slowest
            ]
        dirtied = Counter(table for t in self.tests for table in t.tables)
        if dirtied:
            out.append(
                "tables most often dirtied: "
                + ", ".join(f"{name} ({n})" for name, n in dirtied.most_common(5))
            )
        narrow = [t for t in self.tests if t.strategy == "transactional" and 0 < len(t.tables) <= 2]
        if narrow:
            out.append(
                f"hint: {len(narrow)} transactional tests touched only 1-2 tables; unless they "
                "need real commits (other connections, threads, SELECT ... FOR UPDATE), the "
                "rollback sandbox (db / db_session, no transactional=True) isolates them for "
                "two round trips."
            )
        return out
