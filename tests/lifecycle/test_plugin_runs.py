"""The pytest plugin across sequences of whole runs, on every backend.

Each test writes an inner suite and runs it several times against one test
database, the way a user's afternoon goes: run, run again, change the schema,
run from another directory, run with ``-n 2``, run twice at once (runs killed
half-way are in tests/reliability/test_test_faults.py). After every run the
database is compared with its baseline: rows, counters and dbrewind's tracking.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from helpers.runs import databases_named, pytest_args, start, wait_for_file
from helpers.suites import assert_at_baseline, run_suite, sibling, write_suite


def test_every_run_of_a_sequence_passes_and_leaves_the_database_at_its_baseline(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_suite(project)

    first = run_suite(project, suite_url)
    assert "templates built 1, reused 0" in first
    assert_at_baseline(suite_url)

    again = run_suite(project, suite_url)  # the warm start: nothing built or cloned
    assert "templates built 0, reused 1" in again
    assert_at_baseline(suite_url)

    write_suite(project, version=2)  # the setup's schema changed: a new template
    changed = run_suite(project, suite_url)
    assert "templates built 1, reused 0" in changed
    assert_at_baseline(suite_url, version=2)

    moved = tmp_path / "elsewhere" / "checkout"  # another directory, the same database
    shutil.copytree(project, moved)
    elsewhere = run_suite(moved, suite_url)
    assert "templates built 0, reused 1" in elsewhere
    assert_at_baseline(suite_url, version=2)

    run_suite(moved, suite_url, "-n", "2")
    stem = Path(str(suite_url.database)).stem
    for worker in ("gw0", "gw1"):
        assert_at_baseline(sibling(suite_url, f"{stem}_{worker}"), version=2)

    for seed in (1, 2):  # any order
        code, out = start(project, pytest_args(suite_url, seed=seed)).finish()
        assert code == 0, out
        assert_at_baseline(suite_url, version=2)


def test_a_new_sqlite_directory_works_on_its_first_run(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_suite(project)
    for folder in ("first", "second"):
        url = make_url(f"sqlite:///{tmp_path / folder / 'app_test.db'}")
        run_suite(project, url)
        assert_at_baseline(url)


def test_two_runs_at_once_each_work_on_their_own_database(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_suite(project)
    run_suite(project, suite_url)  # a warm template, as on a second afternoon

    checkpoint = tmp_path / "first"
    first = start(project, pytest_args(suite_url), env={"SUITE_CHECKPOINT": str(checkpoint)})
    wait_for_file(Path(str(checkpoint) + ".reached"), first)
    # the first run holds the database and waits; the second one runs meanwhile
    code, second = start(project, pytest_args(suite_url, "-v")).finish()  # with its header
    Path(str(checkpoint) + ".go").write_text("")
    first_code, first_out = first.finish()
    assert code == 0, second
    assert first_code == 0, first_out
    stem = Path(str(suite_url.database)).stem
    header = [line for line in second.splitlines() if line.startswith("dbrewind: ")]
    assert any(
        "is in use by another run, so this run works on its own clone" in line
        and (f"{stem}_r1" in line)
        for line in header
    ), second  # said in the run's header, before any test
    assert_at_baseline(suite_url)
    assert_at_baseline(sibling(suite_url, f"{stem}_r1"))


def test_shards_started_at_once_all_pass(tmp_path: Path, suite_url: URL, backend: str) -> None:
    project = tmp_path / "project"
    write_suite(project)
    shards = [
        start(project, pytest_args(suite_url, "-k", selection), env={"SUITE_PAUSE": "0.2"})
        for selection in ("commits", "sandbox", "commits and 1", "not commits")
    ]
    for shard in shards:
        code, out = shard.finish()
        assert code == 0, out
    assert_at_baseline(suite_url)
    stem = Path(str(suite_url.database)).stem
    where = Path(str(suite_url.database)).parent if backend == "sqlite" else None
    clones = databases_named(backend, f"{stem}_r", where)
    assert clones, "four shards at once must have used clones of their own"
    for name in clones:
        assert_at_baseline(sibling(suite_url, Path(name).stem))


def test_two_runs_at_once_under_xdist_do_not_share_workers_databases(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_suite(project)
    runs = [
        start(project, pytest_args(suite_url, "-n", "2"), env={"SUITE_PAUSE": "0.3"})
        for _ in range(2)
    ]
    for run in runs:
        code, out = run.finish()
        assert code == 0, out
    stem = Path(str(suite_url.database)).stem
    where = Path(str(suite_url.database)).parent if backend == "sqlite" else None
    used = {Path(name).stem for name in databases_named(backend, f"{stem}_gw", where)}
    # each worker's own database; the second run's workers took copies of their own
    # (``_r1``) unless the first run's had finished before they started (a loaded machine)
    assert {f"{stem}_gw0", f"{stem}_gw1"} <= used, used
    assert used <= {f"{stem}_{w}{r}" for w in ("gw0", "gw1") for r in ("", "_r1")}, used
    for name in sorted(used):
        assert_at_baseline(sibling(suite_url, name))
