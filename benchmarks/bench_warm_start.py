"""Warm start: a second pytest run reuses the prepared template instead of running the setup.

A suite whose schema setup takes 5 s (it sleeps, then creates its tables) is
run cold (template built), then warm several times (same fingerprint: the
template and the test database are reused). The plugin's own summary line
(``preparing N ms``) gives the session-start cost; the target is a warm start
under 0.5 s on each database::

    python benchmarks/bench_warm_start.py [--backends postgresql,mysql,sqlite] [--rounds 3]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

from _common import base_parser, selected_backends

from dbrewind import Rewinder

SETUP_SECONDS = 5
TARGET_MS = 500.0

SCHEMA = f"""
import time
import sqlalchemy as sa

metadata = sa.MetaData()
items = sa.Table("items", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(50)))

def setup(conn):
    time.sleep({SETUP_SECONDS})
    metadata.create_all(conn)
"""

TESTS = """
import sqlalchemy as sa
from schema import items

def test_insert(db):
    db.execute(items.insert().values(name="a"))
    assert db.scalar(sa.select(sa.func.count()).select_from(items)) == 1

def test_empty(db):
    assert db.scalar(sa.select(sa.func.count()).select_from(items)) == 0
"""

SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/{name}",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/{name}",
}


def _prepare_ms(output: str) -> float:
    match = re.search(r"preparing (\d+) ms", output)
    if match is None:
        raise SystemExit("no dbrewind summary in the run's output:\n" + output)
    return float(match.group(1))


def _run(project: Path, url: str) -> float:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--dbrewind-url={url}"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(project)},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the inner suite failed:\n{proc.stdout}\n{proc.stderr}")
    return _prepare_ms(proc.stdout)


def _cleanup(url: str) -> None:
    """Drop the test database and its templates (names start with the test database's)."""
    from sqlalchemy import create_engine, text

    rewinder = Rewinder(url)
    backend, base = rewinder.url.backend, rewinder.url.database
    rewinder.close()
    if backend == "sqlite":
        return
    server = rewinder.url.with_database("postgres" if backend == "postgresql" else "")
    engine = create_engine(server.sync_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                names = conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                    {"p": base + "%"},
                ).scalars()
                for name in list(names):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                names = conn.execute(
                    text(
                        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME LIKE :p"
                    ),
                    {"p": base + "%"},
                ).scalars()
                for name in list(names):
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()


def main() -> int:
    parser = base_parser(__doc__ or "", default_rounds=3)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    rows = []
    failed = False
    for backend in selected_backends(args.backends):
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            name = f"dbrewind_warm_{uuid.uuid4().hex[:8]}_test"
            (project / "schema.py").write_text(textwrap.dedent(SCHEMA))
            (project / "conftest.py").write_text(
                "import pytest\nimport schema\n\n"
                "@pytest.fixture(scope='session')\n"
                "def dbrewind_setup():\n    return schema.setup\n"
            )
            (project / "test_inner.py").write_text(textwrap.dedent(TESTS))
            (project / "pytest.ini").write_text("[pytest]\n")
            if backend == "sqlite":
                url = f"sqlite:///{project / (name + '.db')}"
            else:
                url = SERVERS[backend].format(name=name)
            try:
                cold = _run(project, url)
                warm = [_run(project, url) for _ in range(rounds)]
            finally:
                _cleanup(url)
        median = statistics.median(warm)
        ok = median < TARGET_MS
        failed |= not ok
        rows.append((backend, cold, median, ok))
    print(f"### Warm start, setup taking {SETUP_SECONDS} s ({rounds} warm runs)\n")
    print("| backend | cold start ms | warm start ms (median) | target | result |")
    print("|---|---:|---:|---:|---|")
    for backend, cold, median, ok in rows:
        verdict = "PASS" if ok else "FAIL"
        print(f"| {backend} | {cold:.0f} | {median:.0f} | < {TARGET_MS:.0f} | {verdict} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
