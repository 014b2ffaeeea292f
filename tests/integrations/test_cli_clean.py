"""``dbrewind clean``: a dry run lists, ``--yes`` drops, and only ever the templates, clones
and scratch databases dbrewind made that nobody holds or uses."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS, drop_database, make_database
from dbrewind import Rewinder, parse_url
from dbrewind.provision.naming import stem
from helpers.cli import dbrewind, in_process
from helpers.runs import databases_named, pytest_args, start, wait_for_file
from helpers.suites import run_suite, sibling, write_suite


def _where(backend: str, url: URL) -> Path | None:
    return Path(str(url.database)).parent if backend == "sqlite" else None


def _name(backend: str, name: str) -> str:
    """How clean names the database ``name``: SQLite by its file's name."""
    return f"{name}.db" if backend == "sqlite" else name


def _existing(backend: str, url: URL) -> list[str]:
    base = stem(parse_url(url))
    return databases_named(backend, base, _where(backend, url))


def _made_by_dbrewind(url: URL, *, template: URL | None = None) -> None:
    """Create ``url``'s database as dbrewind does (carrying its creation mark)."""
    with Rewinder(url, allow=True) as rewinder:
        rewinder.create(template=None if template is None else parse_url(template))


def _made_by_hand(backend: str, url: URL) -> None:
    """Create ``url``'s database without dbrewind: no creation mark."""
    if backend == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            conn.execute("CREATE TABLE precious (id INTEGER PRIMARY KEY)")
        return
    make_database(backend, Path("."), str(url.database))


def _touch(url: URL) -> None:
    """Connect to ``url`` once (a SQLite file exists afterwards)."""
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _by_name(items: list[dict[str, str]]) -> dict[str, str]:
    return {item["name"]: item["kind"] for item in items}


def test_clean_lists_then_drops_only_the_unheld_databases_dbrewind_made_from_it(
    backend: str, suite_url: URL, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    write_suite(suite)
    checkpoint = tmp_path / "checkpoint"
    held_run = start(
        suite,
        pytest_args(suite_url, "-k", "waits_for_the_other_run"),
        env={"SUITE_CHECKPOINT": str(checkpoint)},
    )
    try:
        wait_for_file(Path(str(checkpoint) + ".reached"), held_run)
        # a second run while the first holds the database: it works on a clone, _r1
        run_suite(suite, suite_url, "-k", "sandbox")
        base = stem(parse_url(suite_url))
        doctor = dbrewind("doctor", suite_url, "--json").json
        [template] = [d["name"] for d in doctor["derived"] if d["kind"] == "template"]
        template_url = sibling(suite_url, template.removesuffix(".db"))
        leased_url = sibling(suite_url, f"{base}_r2")  # a clone another run holds
        _made_by_dbrewind(leased_url, template=template_url)
        foreign_url = sibling(suite_url, f"{base}_r3")  # a clone's name, made by someone else
        _made_by_hand(backend, foreign_url)
        unrelated_url = sibling(suite_url, f"{base}_keep")  # no name dbrewind gives
        _made_by_hand(backend, unrelated_url)
        dialect = Rewinder(suite_url).dialect
        lease = dialect.acquire_lock(parse_url(leased_url), "lease", wait=0)
        assert lease is not None
        try:
            everything = _existing(backend, suite_url)
            dry = dbrewind("clean", suite_url)
            dry_json = dbrewind("clean", suite_url, "--json")
            after_dry = _existing(backend, suite_url)
            applied = dbrewind("clean", suite_url, "--yes", "--json")
            after = _existing(backend, suite_url)
        finally:
            lease.release()
    finally:
        Path(str(checkpoint) + ".go").write_text("")
        code, out = held_run.finish()
    assert code == 0, out

    r1, r2, r3 = (_name(backend, f"{base}_r{n}") for n in (1, 2, 3))
    assert dry.code == 1, dry.both
    assert f"would drop: template  {template}" in dry.out
    assert f"would drop: clone     {r1}" in dry.out
    assert f"kept:       clone     {r2}: leased by " in dry.out
    assert f"kept:       clone     {r3}: not made by dbrewind" in dry.out
    assert "_keep" not in dry.out
    assert "--yes" in dry.out
    report = dry_json.json
    assert report["command"] == "clean"
    assert report["exit_code"] == 1
    assert report["applied"] is False
    assert _by_name(report["drop"]) == {template: "template", r1: "clone"}
    assert _by_name(report["kept"]) == {r2: "clone", r3: "clone"}
    assert report["failed"] == []
    assert after_dry == everything  # a dry run drops nothing

    assert applied.code == 0, applied.both
    assert applied.json["applied"] is True
    assert _by_name(applied.json["drop"]) == {template: "template", r1: "clone"}
    assert sorted(set(everything) - set(after)) == sorted([template, r1])
    # the database the URL names (held by the first run) and the others are all there
    assert _name(backend, base) in after
    assert {r2, r3, _name(backend, f"{base}_keep")} <= set(after)

    # released, the clone is dropped by the next clean; then nothing is left to drop
    assert _by_name(dbrewind("clean", suite_url, "--yes", "--json").json["drop"]) == {r2: "clone"}
    done = dbrewind("clean", suite_url)
    assert done.code == 0, done.both
    assert f"kept:       clone     {r3}: not made by dbrewind" in done.out
    assert _name(backend, base) in _existing(backend, suite_url)


def test_clean_leaves_a_template_alone_while_a_run_builds_or_clones_one(
    backend: str, db_url: URL
) -> None:
    base = stem(parse_url(db_url))
    template = sibling(db_url, f"{base}_tmpl_0123abcd")
    scratch = sibling(db_url, f"{base}_bench_89abcdef")  # a killed bench's
    _made_by_dbrewind(template)
    _made_by_dbrewind(scratch)
    dialect = Rewinder(db_url).dialect
    build = dialect.acquire_lock(parse_url(db_url), "build", wait=0)
    assert build is not None
    try:
        during = in_process("clean", db_url, "--yes", "--json")
    finally:
        build.release()
    after = in_process("clean", db_url, "--yes", "--json")

    assert during.code == 0, during.both
    assert _by_name(during.json["drop"]) == {_name(backend, f"{base}_bench_89abcdef"): "scratch"}
    [kept] = during.json["kept"]
    assert kept["kind"] == "template"
    assert "a run builds or clones a template now" in kept["reason"]
    assert _by_name(after.json["drop"]) == {_name(backend, f"{base}_tmpl_0123abcd"): "template"}
    left = _existing(backend, db_url)
    assert not [name for name in left if "_tmpl_" in name or "_bench_" in name], left


def test_clean_never_drops_a_database_a_session_is_connected_to(backend: str, db_url: URL) -> None:
    if Rewinder(db_url).dialect.databases_are_files:
        pytest.skip("a SQLite file has no sessions a server lists: its lease is what runs hold")
    base = stem(parse_url(db_url))
    clone = sibling(db_url, f"{base}_r1")
    _made_by_dbrewind(clone)
    engine = create_engine(clone)
    try:
        with engine.connect():
            in_use = dbrewind("clean", db_url, "--yes", "--json")
            still = _existing(backend, db_url)
    finally:
        engine.dispose()
    free = dbrewind("clean", db_url, "--yes", "--json")

    assert in_use.code == 0, in_use.both
    assert in_use.json["drop"] == []
    [kept] = in_use.json["kept"]
    assert kept["name"] == f"{base}_r1"
    assert kept["reason"].startswith("in use: ")
    assert f"{base}_r1" in still
    assert _by_name(free.json["drop"]) == {f"{base}_r1": "clone"}


def test_clean_of_a_database_with_nothing_derived_exits_0(db_url: URL) -> None:
    ran = dbrewind("clean", db_url)
    assert ran.code == 0, ran.both
    assert "nothing:" in ran.out
    said = dbrewind("clean", db_url, "--json")
    assert said.json == {
        "command": "clean",
        "database": parse_url(db_url).display(),
        "exit_code": 0,
        "applied": False,
        "drop": [],
        "kept": [],
        "failed": [],
    }


@contextlib.contextmanager
def _unreadable(backend: str, db_url: URL, clone: URL) -> Iterator[URL]:
    """Make ``clone`` a database dbrewind cannot read the creation mark of (reading it
    raises the driver's error, not dbrewind's); yields the URL to run the commands with.

    SQLite and MySQL: a ``dbrewind_meta`` table without its columns. PostgreSQL: a
    role that may not connect to it (and that owns the other databases it makes)."""
    if backend != "postgresql":
        _made_by_hand(backend, clone)
        engine = create_engine(clone)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE dbrewind_meta (x INTEGER)"))
        finally:
            engine.dispose()
        yield db_url
        return
    role = f"dbrewind_{uuid.uuid4().hex[:8]}"
    admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        _made_by_dbrewind(clone)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN CREATEDB"))
            conn.execute(text(f'REVOKE CONNECT ON DATABASE "{clone.database}" FROM PUBLIC'))
        yield db_url.set(username=role)
    finally:
        base = stem(parse_url(db_url))
        for name in _existing(backend, db_url):
            if name != base:
                drop_database(backend, db_url.set(database=name))
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_a_database_clean_cannot_read_is_kept_and_the_others_are_still_dropped(
    backend: str, db_url: URL
) -> None:
    _touch(db_url)  # SQLite: the file exists now
    base = stem(parse_url(db_url))
    with _unreadable(backend, db_url, sibling(db_url, f"{base}_r1")) as url:
        _made_by_dbrewind(sibling(url, f"{base}_r2"))  # by the role that runs clean
        doctor = dbrewind("doctor", url, "--json")
        applied = dbrewind("clean", url, "--yes", "--json")
        after = _existing(backend, db_url)

    r1, r2 = _name(backend, f"{base}_r1"), _name(backend, f"{base}_r2")
    assert doctor.code == 0, doctor.both
    derived = {item["name"]: item for item in doctor.json["derived"]}
    assert derived[r1]["made_by_dbrewind"] is None  # unknown
    assert derived[r2]["made_by_dbrewind"] is True
    assert applied.code == 0, applied.both
    assert _by_name(applied.json["drop"]) == {r2: "clone"}
    [kept] = applied.json["kept"]
    assert kept["name"] == r1
    assert kept["reason"].startswith("cannot be read ("), kept
    assert applied.json["failed"] == []
    assert r1 in after
    assert r2 not in after


def test_clean_keeps_a_database_whose_connection_reaches_another_one(
    backend: str, db_url: URL, tmp_path: Path
) -> None:
    """The mark read through a connection that landed elsewhere (a connection option, a
    symbolic link) says nothing of the database clean would drop."""
    base = stem(parse_url(db_url))
    clone = sibling(db_url, f"{base}_r1")
    if backend == "sqlite":
        _touch(db_url)
        (tmp_path / "elsewhere").mkdir()
        marked = make_url(f"sqlite:///{tmp_path / 'elsewhere' / 'marked_test.db'}")
        _made_by_dbrewind(marked)
        Path(str(clone.database)).symlink_to(str(marked.database))
        url = db_url
    else:
        marked = sibling(db_url, f"{base}_marked")  # no name clean derives; dropped with it
        _made_by_dbrewind(marked)
        _made_by_hand(backend, clone)
        option = "dbname" if backend == "postgresql" else "init_command"
        value = marked.database if backend == "postgresql" else f"USE {marked.database}"
        url = db_url.update_query_dict({option: str(value)})

    dry = dbrewind("clean", url, "--json")

    assert dry.code == 0, dry.both
    assert dry.json["drop"] == []
    [kept] = dry.json["kept"]
    assert kept["name"] == _name(backend, f"{base}_r1")
    assert kept["reason"].startswith("cannot be read (the connection reached the database "), kept
    assert _name(backend, f"{base}_r1") in _existing(backend, db_url)


def test_commands_that_read_create_no_sqlite_file_beside_one_of_another_suffix(
    tmp_path: Path,
) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'dbrewind_files_test.db'}")
    _touch(url)
    other = tmp_path / "dbrewind_files_test_r1.sqlite"  # a clone's name, another suffix
    _made_by_dbrewind(make_url(f"sqlite:///{other}"))

    doctor = dbrewind("doctor", url, "--json")
    status = dbrewind("status", url, "--json")
    dry = dbrewind("clean", url, "--json")
    applied = dbrewind("clean", url, "--yes", "--json")

    assert list(tmp_path.glob("dbrewind_files_test_r1.db*")) == []  # nor its lock files
    assert other.exists()
    assert doctor.json["derived"] == []
    assert status.json["derived"] == []
    for ran in (dry, applied):
        assert ran.code == 0, ran.both
        assert (ran.json["drop"], ran.json["kept"], ran.json["failed"]) == ([], [], [])


@pytest.mark.backends("postgresql")
def test_the_sessions_on_a_postgresql_database_are_its_clients_not_the_servers_workers(
    backend: str, db_url: URL
) -> None:
    """A parallel query's worker is on the database too, in pg_stat_activity: not a session."""
    engine = create_engine(db_url)
    admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    errors: list[BaseException] = []

    def parallel_sleep() -> None:
        try:
            with engine.connect() as conn:
                version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
                forced = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
                conn.execute(text(f"SET {forced} = on"))
                conn.execute(text("SET max_parallel_workers_per_gather = 1"))
                conn.execute(text("SELECT pg_sleep(4)"))
        except BaseException as exc:  # seen by the test below
            errors.append(exc)

    query = threading.Thread(target=parallel_sleep)
    query.start()
    try:
        kinds: list[str] = []
        deadline = time.monotonic() + 3
        while "parallel worker" not in kinds and time.monotonic() < deadline:
            with admin.connect() as conn:
                kinds = [
                    str(kind)
                    for (kind,) in conn.execute(
                        text("SELECT backend_type FROM pg_stat_activity WHERE datname = :n"),
                        {"n": db_url.database},
                    )
                ]
            time.sleep(0.05)
        sessions = Rewinder(db_url).dialect.sessions(parse_url(db_url))
    finally:
        query.join()
        engine.dispose()
        admin.dispose()
    assert not errors, errors
    assert sorted(kinds) == ["client backend", "parallel worker"], kinds
    assert len(sessions) == 1, sessions
    assert sessions[0].startswith("pid "), sessions


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app_test_tmpl_0123abcd", "template"),
        ("app_test_bench_89abcdef", "scratch"),
        ("app_test_r1", "clone"),
        ("app_test_r31", "clone"),
        ("app_test_gw0", "clone"),
        ("app_test_gw12_r3", "clone"),
        ("app_test", None),
        ("app_test_r0", None),
        ("app_test_r32", None),
        ("app_test_r1_old", None),
        ("app_test_tmpl_0123abc", None),
        ("app_test_tmpl_0123ABCD", None),
        ("app_test2_r1", None),
        ("other_test_r1", None),
    ],
)
def test_clean_knows_the_names_dbrewind_derives_and_no_others(name: str, kind: str | None) -> None:
    from dbrewind.provision.naming import derived_kind

    assert derived_kind("app_test", name) == kind


def test_clean_knows_the_derived_names_of_a_long_name_its_hash_shortened() -> None:
    from dbrewind.provision.naming import derived_kind, fit, scratch_name, template_name

    base = "a_rather_long_test_database_name_" + "x" * 40
    worker = fit(base, "_gw3", 63)
    assert derived_kind(base, template_name(base, "0123abcd" * 5)) == "template"
    assert derived_kind(base, scratch_name(base, "89abcdef")) == "scratch"
    assert derived_kind(base, worker) == "clone"
    assert derived_kind(base, fit(worker, "_r2", 63)) == "clone"
    assert derived_kind(base, fit(base, "_r2", 63)) == "clone"
    assert derived_kind(base, fit("another_" + base, "_r2", 63)) is None
