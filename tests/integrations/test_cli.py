"""The ``dbrewind`` command against real databases."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from dbrewind import Rewinder, ServerUnreachableError, Strategy
from dbrewind.cli import main


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(args), out=out)
    return status, out.getvalue()


def _url(db_url: URL) -> str:
    return db_url.render_as_string(hide_password=False)


@pytest.fixture
def prepared(db_url: URL) -> Rewinder:
    rewinder = Rewinder(db_url)
    rewinder.prepare(
        lambda c: (
            c.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)")),
            c.execute(
                text(
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                    "parent_id INTEGER REFERENCES parent (id))"
                )
            ),
        )
    )
    return rewinder


def test_doctor_reports_tables_tracking_and_dirty_tables(
    backend: str, db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (1)"))

    status, out = _run("doctor", _url(db_url))

    assert status == 0
    assert f"backend:    {backend}" in out
    assert "tables:     2 (1 foreign keys)" in out
    assert "tracking:   installed" in out
    assert "dirty now:  " in out
    assert "parent" in out.split("dirty now:")[1].splitlines()[0]
    assert "its name says test" in out
    prepared.rewind()
    prepared.close()


def test_doctor_says_when_a_database_is_not_provably_a_test_database(
    backend: str, db_url: URL
) -> None:
    if backend == "sqlite":
        pytest.skip("a missing SQLite file is reported as missing, not as unsafe")
    status, out = _run("doctor", _url(db_url.set(database="dbrewind_nowhere_prod")))
    assert status == 0
    assert "exists:     no" in out


def test_bench_measures_floor_check_and_rewinds_and_leaves_the_baseline(
    backend: str, db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (7)"))
    prepared.install()  # the baseline now holds parent 7
    prepared.close()

    status, out = _run("bench", _url(db_url), "--rounds", "3")

    assert status == 0, out
    assert "BEGIN; ROLLBACK:" in out
    assert "clean check, no writes:" in out
    one = re.search(r"rewind, 1 table: +([\d.]+) ms .*median over 2 tables.*slowest: (.*)\)", out)
    assert one is not None, out
    assert float(one.group(1)) > 0
    assert "parent" in one.group(2)
    assert "child" in one.group(2)
    assert re.search(r"rewind, all tables: +[\d.]+ ms +\(2 tables\)", out), out
    assert "recommendation:" in out
    with engine.connect() as conn:  # every rewind put the baseline back
        assert conn.execute(text("SELECT id FROM parent")).scalars().all() == [7]
    with Rewinder(db_url) as check:
        assert check.dirty_tables() == []


def test_bench_without_tracking_says_what_to_do(db_url: URL) -> None:
    status, out = _run("bench", _url(db_url))
    assert status == 1
    assert "not installed" in out


def test_bench_json_gives_the_figures_by_strategy(db_url: URL, prepared: Rewinder) -> None:
    prepared.close()
    status, out = _run("bench", _url(db_url), "--rounds", "3", "--json")
    assert status == 0, out
    said = json.loads(out)
    assert set(said["strategies"]) == {strategy.value for strategy in Strategy}
    assert said["strategies"]["rollback"]["begin_rollback_ms"] > 0
    tables = {key.rpartition(".")[2] for key in said["strategies"]["clean"]["tables_ms"]}
    assert tables == {"parent", "child"}  # PostgreSQL's keys name the schema too
    assert said["strategies"]["safety net"]["check_ms"] > 0
    assert said["recommendation"] == Strategy.ROLLBACK
    with Rewinder(db_url) as check:
        assert check.dirty_tables() == []


def test_bench_json_without_tracking_is_json_too(db_url: URL) -> None:
    status, out = _run("bench", _url(db_url), "--json")
    assert status == 1
    assert "not installed" in json.loads(out)["error"]


def test_uninstall_removes_tracking_and_is_idempotent(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    prepared.close()
    status, out = _run("uninstall", _url(db_url))
    assert status == 0
    assert "removed dbrewind tracking" in out
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (7)"))
    with engine.connect() as conn:
        assert Rewinder(db_url).dialect.is_installed(conn) is False
    status, out = _run("uninstall", _url(db_url))
    assert status == 0
    assert "nothing to remove" in out


def test_a_bad_url_is_an_error_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = _run("doctor", "oracle://scott:tiger@h/x")
    assert status == 2
    err = capsys.readouterr().err
    assert "Unsupported database 'oracle'" in err
    assert "tiger" not in err


@pytest.mark.parametrize(
    ("url", "server"),
    [
        pytest.param(
            "postgresql://postgres:pw@127.0.0.1:1/app_test", "PostgreSQL server", id="postgresql"
        ),
        pytest.param("mysql://root:pw@127.0.0.1:1/app_test", "MySQL/MariaDB server", id="mysql"),
    ],
)
def test_an_unreachable_server_is_named_with_what_to_check(url: str, server: str) -> None:
    rewinder = Rewinder(url)
    with pytest.raises(ServerUnreachableError) as info:
        rewinder.exists()
    message = str(info.value)
    assert f"Cannot connect to the {server}" in message
    assert "host and port are right" in message
    assert "pw@" not in message


def test_doctor_says_who_holds_the_database_and_uninstall_refuses_then(
    db_url: URL, prepared: Rewinder
) -> None:
    lease = prepared.dialect.acquire_lock(prepared.url, "lease", wait=0)
    assert lease is not None
    try:
        status, out = _run("doctor", _url(db_url))
        assert status == 0
        assert "lease:      held by " in out
        status, _ = _run("uninstall", _url(db_url))
        assert status == 2
        with prepared.connection() as conn:
            assert prepared.dialect.is_installed(conn)  # refused: still there
    finally:
        lease.release()
    status, out = _run("doctor", _url(db_url))
    assert "lease:      free" in out
    status, out = _run("uninstall", _url(db_url))
    assert status == 0
    assert "removed dbrewind tracking" in out
    prepared.close()


def test_doctor_says_when_tracking_no_longer_covers_the_tables(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    prepared.close()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE extra (id INTEGER PRIMARY KEY)"))
    status, out = _run("doctor", _url(db_url))
    assert status == 0
    assert "out of date: not tracked: " in out
    assert "extra" in out.split("out of date:")[1].splitlines()[0]
    assert "made by an older dbrewind or by hand" in out


def test_doctor_lists_the_templates_a_run_made_and_who_leases_the_database(
    backend: str, suite_url: URL, tmp_path: Path
) -> None:
    from helpers.runs import pytest_args, start, wait_for_file
    from helpers.suites import write_suite

    suite = tmp_path / "suite"
    write_suite(suite)
    checkpoint = tmp_path / "checkpoint"
    run = start(
        suite,
        pytest_args(suite_url, "-k", "waits_for_the_other_run"),
        env={"SUITE_CHECKPOINT": str(checkpoint)},
    )
    try:
        wait_for_file(Path(str(checkpoint) + ".reached"), run)
        status, out = _run("doctor", _url(suite_url))
    finally:
        Path(str(checkpoint) + ".go").write_text("")
        code, run_out = run.finish()
    assert code == 0, run_out
    assert status == 0, out
    assert re.search(r"template  \S+_tmpl_[0-9a-f]{8}\S*: built \d+ (s|min) ago", out), out
    assert "lease:      held by " in out, out
