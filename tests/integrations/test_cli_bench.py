"""``dbrewind bench``: the strategies timed on a scratch database with the schema of the one
named, which is never written; the scratch database dropped whatever happens."""

from __future__ import annotations

import hashlib
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from conftest import drop_database, make_database
from dbrewind import DbrewindError, Rewinder, Strategy, parse_url
from dbrewind.provision.naming import stem
from helpers.cli import dbrewind, in_process, start
from helpers.runs import databases_named


def _prepare(url: URL) -> None:
    """Two tables (child -> parent) with baseline rows, tracked; then a row committed
    after the baseline, so the database is dirty as a run may leave it."""
    with Rewinder(url) as rewinder:
        rewinder.prepare(
            lambda c: [
                c.execute(text(sql))
                for sql in (
                    "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)",
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                    "parent_id INTEGER NOT NULL REFERENCES parent (id))",
                    "INSERT INTO parent (id, name) VALUES (1, 'kept'), (2, 'kept too')",
                    "INSERT INTO child (id, parent_id) VALUES (10, 1)",
                )
            ]
        )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO parent (id, name) VALUES (3, 'dirty')"))
    finally:
        engine.dispose()


def _snapshot(backend: str, url: URL, engine: Engine) -> object:
    """What the database holds: every row of both tables, its dirty tables, its tables;
    for SQLite the file's bytes too."""
    with engine.connect() as conn:
        rows = {
            table: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}")))
            for table in ("parent", "child")
        }
    with Rewinder(url) as rewinder, rewinder.connection() as conn:
        found = rewinder.dialect.installation(conn)
    digest = None
    if backend == "sqlite":
        digest = hashlib.sha256(Path(str(url.database)).read_bytes()).hexdigest()
    return rows, found.dirty, found.tracked, found.created, digest


def _scratch_left(backend: str, url: URL) -> list[str]:
    where = Path(str(url.database)).parent if backend == "sqlite" else None
    return databases_named(backend, f"{stem(Rewinder(url).url)}_bench_", where)


def test_bench_json_times_every_strategy_on_a_scratch_copy_and_never_touches_the_data(
    backend: str, db_url: URL, engine: Engine
) -> None:
    _prepare(db_url)
    before = _snapshot(backend, db_url, engine)

    ran = dbrewind("bench", db_url, "--rounds", "3", "--json")

    assert ran.code == 0, ran.both
    report = ran.json  # stdout is the JSON document and nothing else
    assert report["command"] == "bench"
    assert report["exit_code"] == 0
    assert set(report["strategies"]) == {strategy.value for strategy in Strategy}
    assert report["strategies"]["rollback"]["begin_rollback_ms"] > 0
    assert report["strategies"]["safety net"]["check_ms"] > 0
    clean = report["strategies"]["clean"]
    assert {key.rpartition(".")[2] for key in clean["tables_ms"]} == {"parent", "child"}
    assert clean["one_table_ms"] > 0
    assert clean["all_tables_ms"] > 0
    assert report["recommendation"] == Strategy.ROLLBACK.value
    assert report["advice"]
    assert report["tables"] == 2
    assert report["rounds"] == 3
    assert "_bench_" in report["scratch"]["database"]
    assert report["scratch"]["dropped"] is True
    # the progress went to stderr
    assert "dbrewind: creating the scratch database" in ran.err
    assert "dbrewind: dropped the scratch database" in ran.err
    # the database itself: the same rows, still dirty (bench rewound nothing there)
    assert _snapshot(backend, db_url, engine) == before
    assert _scratch_left(backend, db_url) == []


def test_bench_text_says_where_it_measured_and_recommends_with_the_figures(
    db_url: URL, engine: Engine
) -> None:
    _prepare(db_url)
    ran = dbrewind("bench", db_url, "--rounds", "3", "--quiet")
    assert ran.code == 0, ran.both
    assert ran.err == ""
    out = ran.out
    assert "measured on:            " in out
    assert "(its 2 tables, no rows; dropped after)" in out
    assert "BEGIN; ROLLBACK:" in out
    assert "clean check, no writes:" in out
    assert "rewind, 1 table:" in out
    assert "median over 2 tables" in out
    assert "rewind, all tables:" in out
    assert "recommendation:         rollback: " in out
    assert " ms " in out.split("recommendation:")[1]


def test_bench_needs_no_tracking_and_installs_none(
    backend: str, db_url: URL, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lonely (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO lonely (id) VALUES (1)"))

    ran = in_process("bench", db_url, "--rounds", "2", "--json")

    assert ran.code == 0, ran.both
    tables = ran.json["strategies"]["clean"]["tables_ms"]
    assert [key.rpartition(".")[2] for key in tables] == ["lonely"]
    with engine.connect() as conn:
        assert Rewinder(db_url).dialect.is_installed(conn) is False
        assert conn.execute(text("SELECT id FROM lonely")).scalars().all() == [1]
    assert _scratch_left(backend, db_url) == []


def test_bench_of_a_database_without_tables_exits_1(db_url: URL, engine: Engine) -> None:
    with engine.connect():
        pass  # SQLite: the file exists now
    ran = in_process("bench", db_url, "--json")
    assert ran.code == 1, ran.both
    assert ran.json["tables"] == 0
    assert ran.json["strategies"] is None


_OPTIONS = {
    "sqlite": {"timeout": "5"},
    "postgresql": {"connect_timeout": "10"},
    "mysql": {"connect_timeout": "10"},
}
"""A harmless query option per backend, for a URL that has one."""


def test_bench_names_its_scratch_database_without_the_urls_query(
    backend: str, db_url: URL, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lonely (id INTEGER PRIMARY KEY)"))

    ran = in_process(
        "bench", db_url.update_query_dict(_OPTIONS[backend]), "--rounds", "1", "--json"
    )

    assert ran.code == 0, ran.both
    name = ran.json["scratch"]["database"]
    suffix = r"\.db" if backend == "sqlite" else ""
    assert re.fullmatch(rf"{re.escape(stem(parse_url(db_url)))}_bench_[0-9a-f]{{8}}{suffix}", name)
    assert f"dropped the scratch database {name}\n" in ran.err
    assert _scratch_left(backend, db_url) == []


def test_bench_says_so_when_it_could_not_drop_its_scratch_database(
    backend: str, db_url: URL, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lonely (id INTEGER PRIMARY KEY)"))
    dialect = type(Rewinder(db_url).dialect)
    drop = dialect.drop_database

    def refusing(self: object, url: object) -> None:
        if "_bench_" in str(getattr(url, "database", "")):
            raise DbrewindError("the server would not drop it")
        drop(self, url)

    monkeypatch.setattr(dialect, "drop_database", refusing)
    ran = in_process("bench", db_url, "--rounds", "1")
    said = in_process("bench", db_url, "--rounds", "1", "--json")
    monkeypatch.undo()
    left = _scratch_left(backend, db_url)  # dropped with db_url (SQLite: with tmp_path)

    assert ran.code == 2, ran.both
    assert "(its 1 tables, no rows; NOT dropped: see the warning)" in ran.out, ran.out
    assert "dropped after" not in ran.out
    assert "could not drop the scratch database " in ran.err
    assert "the server would not drop it" in ran.err
    assert said.code == 2, said.both
    assert said.json["scratch"]["dropped"] is False
    assert len(left) == 2, left


def test_bench_refuses_a_database_that_is_not_a_test_database(backend: str, tmp_path: Path) -> None:
    url = make_database(backend, tmp_path, f"dbrewind_{uuid.uuid4().hex[:8]}_prod")
    try:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        engine.dispose()
        ran = dbrewind("bench", url, "--json")
        left = _scratch_left(backend, url)
    finally:
        drop_database(backend, url)
    assert ran.code == 1, ran.both
    assert ran.json["error"]["type"] == "UnsafeDatabaseError"
    assert "DBREWIND_ALLOW" in ran.json["error"]["message"]
    assert ran.err.startswith("dbrewind: error: Refusing to benchmark beside")
    assert left == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_bench_drops_its_scratch_database_and_exits_130(
    backend: str, db_url: URL, sig: signal.Signals
) -> None:
    _prepare(db_url)
    proc = start("bench", db_url, "--rounds", "10000000")
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if "timing BEGIN; ROLLBACK" in line or not line:
            break
    assert any("creating the scratch database" in line for line in seen), seen
    during = _scratch_left(backend, db_url)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never left running to slow every later test
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, "".join(seen) + err
    assert len(during) == 1, during
    assert "dropped the scratch database" in err
    assert "dbrewind: error: interrupted" in err
    assert _scratch_left(backend, db_url) == []
    assert out == ""


def test_bench_copies_the_tables_of_every_schema_it_is_told_to_track(
    backend: str, db_url: URL, engine: Engine
) -> None:
    if backend != "postgresql":
        pytest.skip("--schema names PostgreSQL schemas; elsewhere a database is one schema")
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA billing"))
        conn.execute(text('CREATE TABLE "Users" (id serial PRIMARY KEY, email text UNIQUE)'))
        conn.execute(
            text(
                "CREATE TABLE billing.invoice (id bigint GENERATED ALWAYS AS IDENTITY "
                'PRIMARY KEY, user_id int REFERENCES "Users" (id), '
                "parent_id bigint REFERENCES billing.invoice (id))"
            )
        )

    ran = in_process(
        "bench", db_url, "--schema", "public", "--schema", "billing", "--rounds", "2", "--json"
    )

    assert ran.code == 0, ran.both
    assert ran.json["tables"] == 2
    assert set(ran.json["strategies"]["clean"]["tables_ms"]) == {"public.Users", "billing.invoice"}
    assert _scratch_left(backend, db_url) == []
