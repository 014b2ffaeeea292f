"""The ``dbrewind`` command against real databases: doctor, status, uninstall, errors.

``bench`` is in test_cli_bench.py, ``clean`` in test_cli_clean.py. Most commands
run through the installed console script, as a user runs them; ``--json`` output
is parsed, and every exit status checked.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from conftest import SERVER_URLS, drop_database, make_database
from dbrewind import Rewinder, ServerUnreachableError, parse_url
from dbrewind.provision.fingerprint import tracking_version
from dbrewind.provision.naming import stem
from helpers.cli import SCRIPT, dbrewind, in_process

COMMANDS = ("doctor", "status", "bench", "clean", "uninstall")


def _create_parent_child(conn: object) -> None:
    for statement in (
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id))",
    ):
        conn.execute(text(statement))  # type: ignore[attr-defined]


@pytest.fixture
def prepared(db_url: URL) -> Rewinder:
    """``db_url`` with two tables (child -> parent), tracked; closed by the test."""
    rewinder = Rewinder(db_url)
    rewinder.prepare(_create_parent_child)
    return rewinder


def _table_names(keys: list[str]) -> set[str]:
    return {key.rpartition(".")[2] for key in keys}  # PostgreSQL's keys name the schema


# ------------------------------------------------------------------ doctor


def test_doctor_reports_tables_tracking_guard_server_and_a_dirty_table_and_exits_1(
    backend: str, db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    prepared.close()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (1)"))

    ran = dbrewind("doctor", db_url)

    assert ran.code == 1, ran.both
    out = ran.out
    assert f"backend:    {backend}" in out
    assert "tables:     2 (1 foreign keys)" in out
    assert "tracking:   installed" in out
    assert "parent" in out.split("dirty now:")[1].splitlines()[0]
    assert "test db:    yes: its name says test" in out
    assert "lease:      free" in out
    assert "server:     " in out
    assert "problem:    1 table(s) hold committed writes not rewound yet" in out

    said = dbrewind("doctor", db_url, "--json")
    assert said.code == 1, said.both
    report = said.json
    assert report["command"] == "doctor"
    assert report["exit_code"] == 1
    assert report["database"] == prepared.url.display()
    assert report["backend"] == backend
    assert report["exists"] is True
    assert report["guard"] == {
        "accepted": True,
        "reasons": ["its name says test"],
        "refusal": None,
    }
    assert _table_names(report["schema"]["tables"]) == {"parent", "child"}
    assert report["schema"]["foreign_keys"] == 1
    assert report["schema"]["fk_cycles"] == []
    assert report["tracking"]["installed"] is True
    assert report["tracking"]["intact"] is True
    assert report["tracking"]["current_version"] == tracking_version(prepared.url.backend)
    assert report["baseline"]["tables"] == 2
    assert report["baseline"]["layers"] == 0
    assert _table_names(report["dirty"]) == {"parent"}
    assert report["lease"] == {"held": False, "holder": None}
    assert report["server"]["version"]
    assert report["server"]["settings"]
    assert report["capabilities"]["savepoints"] is True
    assert len(report["problems"]) == 1
    assert "parent" in report["problems"][0]


def test_doctor_exits_0_once_the_dirty_table_is_rewound(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (1)"))
    prepared.rewind()
    prepared.close()

    ran = dbrewind("doctor", db_url, "--json")

    assert ran.code == 0, ran.both
    assert ran.json["dirty"] == []
    assert ran.json["problems"] == []


def test_doctor_names_the_settings_that_bear_on_speed_per_server(
    backend: str, db_url: URL, prepared: Rewinder
) -> None:
    prepared.close()
    settings = in_process("doctor", db_url, "--json").json["server"]["settings"]
    expected = {
        "postgresql": {"fsync", "synchronous_commit", "clone_strategy"},
        "mysql": {"innodb_flush_log_at_trx_commit", "sync_binlog"},
        "sqlite": {"journal_mode", "synchronous"},
    }[backend]
    assert expected <= set(settings), settings
    if backend == "postgresql":
        assert settings["clone_strategy"] in ("WAL_LOG", "FILE_COPY")


_DISK_NOTE = "every commit (a transactional test's, a rewind's) waits for the disk"


@pytest.mark.backends("postgresql")
def test_doctor_advises_on_postgresql_durability_only_when_commits_wait_for_the_disk(
    backend: str, db_url: URL, engine: Engine
) -> None:
    with engine.begin() as conn:
        fsync = conn.execute(text("SHOW fsync")).scalar()
        conn.execute(text(f'ALTER DATABASE "{db_url.database}" SET synchronous_commit = off'))
    unsynced = in_process("doctor", db_url, "--json").json["server"]
    with engine.begin() as conn:
        conn.execute(text(f'ALTER DATABASE "{db_url.database}" SET synchronous_commit = on'))
    synced = in_process("doctor", db_url, "--json").json["server"]

    assert unsynced["settings"]["synchronous_commit"] == "off"
    assert synced["settings"]["synchronous_commit"] == "on"
    assert not [n for n in unsynced["notes"] if _DISK_NOTE in n], unsynced  # commits do not wait
    # with fsync off nothing waits for the disk either
    assert bool([n for n in synced["notes"] if _DISK_NOTE in n]) == (fsync == "on"), synced


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("value", "name"), [(2, "FULL"), (3, "EXTRA")])
def test_doctor_names_sqlites_synchronous_level_as_it_is(
    backend: str, db_url: URL, engine: Engine, value: int, name: str
) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA synchronous = {value}")
        report = Rewinder(db_url).dialect.server_report(conn)
    assert report.settings["synchronous"] == str(value)
    assert [note.split(":")[0] for note in report.notes] == [f"synchronous={name}"], report.notes


def test_doctor_shows_a_foreign_key_cycle(backend: str, db_url: URL, engine: Engine) -> None:
    with engine.begin() as conn:
        if backend == "sqlite":  # no ALTER TABLE .. ADD FOREIGN KEY; forward references work
            conn.execute(
                text("CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b (id))")
            )
            conn.execute(
                text("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id))")
            )
        else:
            conn.execute(text("CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER)"))
            conn.execute(
                text("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id))")
            )
            conn.execute(text("ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id)"))

    ran = in_process("doctor", db_url)
    said = in_process("doctor", db_url, "--json").json

    assert ran.code == 0, ran.both  # not tracked yet: the first run installs it
    assert "FK cycles:" in ran.out
    assert [_table_names(cycle) for cycle in said["schema"]["fk_cycles"]] == [{"a", "b"}]
    assert said["tracking"]["installed"] is False


def test_doctor_on_a_missing_database_that_is_not_a_test_name_reports_the_refusal(
    backend: str, db_url: URL, tmp_path: Path
) -> None:
    if backend == "sqlite":
        missing = db_url.set(database=str(tmp_path / "dbrewind_nowhere_prod.db"))
    else:
        missing = db_url.set(database=f"dbrewind_{uuid.uuid4().hex[:8]}_prod")

    ran = dbrewind("doctor", missing)
    said = dbrewind("doctor", missing, "--json")

    assert ran.code == 1, ran.both
    assert "exists:     no" in ran.out
    assert "NOT provably a test database" in ran.out
    assert said.code == 1
    report = said.json
    assert report["exists"] is False
    assert report["guard"]["accepted"] is False
    assert "DBREWIND_ALLOW=" in report["guard"]["refusal"]
    assert report["schema"] is None
    assert report["tracking"] is None


def test_doctor_accepts_a_database_the_environment_allows(backend: str, tmp_path: Path) -> None:
    name = f"dbrewind_{uuid.uuid4().hex[:8]}_prod"
    url = make_database(backend, tmp_path, name)
    try:
        allowed = Path(str(url.database)).name
        ran = dbrewind("doctor", url, "--json", env={"DBREWIND_ALLOW": allowed})
        refused = dbrewind("doctor", url, "--json")
    finally:
        drop_database(backend, url)
    assert ran.code == 0, ran.both
    assert ran.json["guard"]["reasons"] == ["listed in DBREWIND_ALLOW"]
    assert refused.code == 1
    assert refused.json["guard"]["accepted"] is False


def test_doctor_says_when_tracking_no_longer_covers_the_tables(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    prepared.close()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE extra (id INTEGER PRIMARY KEY)"))
    ran = in_process("doctor", db_url)
    said = in_process("doctor", db_url, "--json").json
    assert ran.code == 1, ran.both
    assert "extra" in ran.out.split("out of date: not tracked: ")[1].splitlines()[0]
    assert "made by an older dbrewind or by hand" in ran.out
    assert _table_names(said["tracking"]["not_tracked"]) == {"extra"}
    assert said["tracking"]["intact"] is False
    assert said["tracking"]["up_to_date"] is None  # no version recorded: unknown


# ------------------------------------------------------------------ status


def test_status_lists_the_dirty_tables_with_exit_1_and_exit_0_when_clean(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (1)"))
        conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 1)"))

    dirty = dbrewind("status", db_url)
    dirty_json = dbrewind("status", db_url, "--json")
    prepared.rewind()
    prepared.close()
    clean = dbrewind("status", db_url, "--json")

    assert dirty.code == 1, dirty.both
    assert "dirty now:  " in dirty.out
    line = dirty.out.split("dirty now:")[1].splitlines()[0]
    assert "parent" in line
    assert "child" in line
    report = dirty_json.json
    assert report["command"] == "status"
    assert report["exit_code"] == 1
    assert report["tracking_installed"] is True
    assert _table_names(report["dirty"]) == {"parent", "child"}
    assert report["lease"] == {"held": False, "holder": None}
    assert clean.code == 0, clean.both
    assert clean.json["dirty"] == []
    assert clean.json["problems"] == []


def test_status_without_tracking_exits_1_and_says_so(db_url: URL, engine: Engine) -> None:
    with engine.connect():
        pass  # SQLite: the file exists now
    ran = in_process("status", db_url, "--json")
    assert ran.code == 1
    assert ran.json["tracking_installed"] is False
    assert "not installed" in ran.json["problems"][0]


@pytest.mark.parametrize("command", ["status", "bench", "uninstall"])
def test_a_command_on_a_database_that_does_not_exist_is_an_error_and_creates_nothing(
    backend: str, db_url: URL, tmp_path: Path, command: str
) -> None:
    name = f"dbrewind_{uuid.uuid4().hex[:8]}_test"
    if backend == "sqlite":
        missing = db_url.set(database=str(tmp_path / f"{name}.db"))
    else:
        missing = db_url.set(database=name)
    ran = dbrewind(command, missing, "--json")
    assert ran.code == 2, ran.both
    assert ran.json["error"]["type"] == "DatabaseNotFoundError"
    assert ran.err.startswith("dbrewind: error: ")
    assert not Rewinder(missing).exists()


# ------------------------------------------------------------------ leases, uninstall


def test_doctor_and_status_say_who_holds_the_database_and_uninstall_refuses_then(
    db_url: URL, prepared: Rewinder
) -> None:
    lease = prepared.dialect.acquire_lock(prepared.url, "lease", wait=0)
    assert lease is not None
    try:
        doctor = dbrewind("doctor", db_url)
        status = dbrewind("status", db_url, "--json")
        refused = dbrewind("uninstall", db_url, "--json")
        with prepared.connection() as conn:
            assert prepared.dialect.is_installed(conn)  # refused: still there
    finally:
        lease.release()
    assert doctor.code == 0, doctor.both
    assert "lease:      held by " in doctor.out
    assert status.code == 0, status.both
    assert status.json["lease"]["held"] is True
    assert status.json["lease"]["holder"]
    assert refused.code == 1
    assert "holds" in refused.json["refused"]
    assert refused.json["removed"] is False

    free = dbrewind("doctor", db_url)
    assert "lease:      free" in free.out
    removed = dbrewind("uninstall", db_url)
    assert removed.code == 0, removed.both
    assert "removed dbrewind tracking" in removed.out
    prepared.close()


def test_uninstall_removes_tracking_and_is_idempotent(
    db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    prepared.close()
    ran = dbrewind("uninstall", db_url, "--json")
    assert ran.code == 0, ran.both
    assert ran.json == {
        "command": "uninstall",
        "database": prepared.url.display(),
        "exit_code": 0,
        "removed": True,
        "was_installed": True,
        "refused": None,
    }
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (7)"))
    with engine.connect() as conn:
        assert Rewinder(db_url).dialect.is_installed(conn) is False
    again = dbrewind("uninstall", db_url)
    assert again.code == 0
    assert "nothing to remove" in again.out


def test_uninstall_refuses_a_database_that_is_not_a_test_database_and_touches_nothing(
    backend: str, tmp_path: Path
) -> None:
    url = make_database(backend, tmp_path, f"dbrewind_{uuid.uuid4().hex[:8]}_prod")
    try:
        engine = create_engine(url)
        with engine.connect():
            pass  # SQLite: the file exists now, made without dbrewind's creation mark
        engine.dispose()
        with Rewinder(url, allow=True) as rewinder:
            rewinder.prepare(_create_parent_child)
        refused = dbrewind("uninstall", url, "--json")
        with Rewinder(url, allow=True) as rewinder, rewinder.connection() as conn:
            kept = rewinder.dialect.is_installed(conn)
        forced = dbrewind("uninstall", url, "--force", "--json")
        with Rewinder(url, allow=True) as rewinder, rewinder.connection() as conn:
            removed = not rewinder.dialect.is_installed(conn)
    finally:
        drop_database(backend, url)
    assert refused.code == 1, refused.both
    assert refused.json["error"]["type"] == "UnsafeDatabaseError"
    message = refused.json["error"]["message"]
    assert message.startswith("Refusing to remove dbrewind's tracking from database "), message
    assert "DBREWIND_ALLOW=" in message
    assert kept is True
    assert forced.code == 0, forced.both
    assert forced.json["removed"] is True
    assert removed is True


def test_uninstall_holds_the_lease_while_it_removes_the_tracking(
    db_url: URL, prepared: Rewinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared.close()
    dialect = type(prepared.dialect)
    remove = dialect.uninstall
    run_could_start = []

    def removing(self: object, conn: object) -> None:
        lease = prepared.dialect.acquire_lock(prepared.url, "lease", wait=0)  # a run starting now
        run_could_start.append(lease is not None)
        if lease is not None:
            lease.release()
        remove(self, conn)

    monkeypatch.setattr(dialect, "uninstall", removing)
    ran = in_process("uninstall", db_url, "--json")

    assert ran.code == 0, ran.both
    assert ran.json["removed"] is True
    assert run_could_start == [False]
    lease = prepared.dialect.acquire_lock(prepared.url, "lease", wait=0)
    assert lease is not None  # released again
    lease.release()


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
        ran = dbrewind("doctor", suite_url)
        said = dbrewind("doctor", suite_url, "--json")
        status = dbrewind("status", suite_url, "--json")
    finally:
        Path(str(checkpoint) + ".go").write_text("")
        code, run_out = run.finish()
    assert code == 0, run_out
    assert ran.code == 1, ran.both  # the run's test committed a row: dirty now
    assert "template  " in ran.out
    assert "lease:      held by " in ran.out, ran.out
    report = said.json
    templates = [d for d in report["derived"] if d["kind"] == "template"]
    assert len(templates) == 1, report["derived"]
    assert "_tmpl_" in templates[0]["name"]
    assert templates[0]["made_by_dbrewind"] is True
    assert templates[0]["built"] > 0
    assert report["lease"]["held"] is True
    assert report["tracking"]["up_to_date"] is True
    assert report["tracking"]["released_cleanly"] is False  # held now
    assert "_tmpl_" in report["baseline"]["template"]
    assert _table_names(status.json["dirty"]) == {"order"}
    assert status.json["lease"]["held"] is True


# ------------------------------------------------------------------ errors, help, secrets


def test_help_lists_every_command_and_the_exit_statuses() -> None:
    ran = dbrewind("--help")
    assert ran.code == 0
    for command in COMMANDS:
        assert command in ran.out
    assert "exit status:" in ran.out
    assert "130" in ran.out
    assert "could not drop its scratch database" in " ".join(ran.out.split())
    for command in COMMANDS:
        sub = dbrewind(command, "--help")
        assert sub.code == 0
        assert "--json" in sub.out
        assert "exit status:" in sub.out
    status = " ".join(dbrewind("status", "--help").out.split())
    assert "Exit status 1 when tables are dirty, or tracking is not installed or out of date" in (
        status
    )


def test_bench_refuses_rounds_below_1_before_it_connects() -> None:
    for rounds in ("0", "-3", "many"):
        ran = dbrewind("bench", "--rounds", rounds, "postgresql://postgres@127.0.0.1:1/app_test")
        assert ran.code == 2, ran.both
        assert "argument --rounds: " in ran.err, ran.err
        assert "Cannot connect" not in ran.err, ran.err


def test_a_usage_error_exits_2() -> None:
    assert dbrewind().code == 2
    assert dbrewind("doctor").code == 2
    ran = dbrewind("frobnicate", "sqlite://")
    assert ran.code == 2
    assert "invalid choice" in ran.err


def test_python_dash_m_runs_the_same_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dbrewind.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "usage: dbrewind" in done.stdout
    assert SCRIPT.exists()


def test_a_bad_url_is_an_error_with_a_clear_message_in_text_and_json() -> None:
    for command in COMMANDS:
        ran = dbrewind(command, "oracle://scott:tiger-secret@h/x")
        assert ran.code == 2, ran.both
        assert ran.out == ""
        assert "Unsupported database 'oracle'" in ran.err
        assert "tiger" not in ran.both
        said = dbrewind(command, "oracle://scott:tiger-secret@h/x", "--json")
        assert said.code == 2
        assert said.json["command"] == command
        assert said.json["exit_code"] == 2
        assert said.json["error"]["type"] == "ConfigurationError"
        assert "tiger" not in said.both


@pytest.mark.parametrize(
    ("url", "server"),
    [
        pytest.param(
            "postgresql://postgres:pw-secret@127.0.0.1:1/app_test",
            "PostgreSQL server",
            id="postgresql",
        ),
        pytest.param(
            "mysql://root:pw-secret@127.0.0.1:1/app_test", "MySQL/MariaDB server", id="mysql"
        ),
    ],
)
def test_an_unreachable_server_is_exit_2_naming_what_to_check(url: str, server: str) -> None:
    rewinder = Rewinder(url)
    with pytest.raises(ServerUnreachableError) as info:
        rewinder.exists()
    assert f"Cannot connect to the {server}" in str(info.value)
    for command in ("doctor", "status"):
        ran = in_process(command, url, "--json")
        assert ran.code == 2
        assert ran.json["error"]["type"] == "ServerUnreachableError"
        assert "host and port are right" in ran.json["error"]["message"]
        assert "pw-secret" not in ran.both


def test_a_wrong_password_is_never_printed(backend: str, db_url: URL) -> None:
    if backend != "mysql":
        pytest.skip("the local PostgreSQL trusts every password, SQLite takes none")
    secret = "Wrong-Pass-" + uuid.uuid4().hex[:8]
    url = db_url.set(password=secret)
    for command in COMMANDS:
        for extra in ((), ("--json",)):
            ran = dbrewind(command, url, *extra)
            assert ran.code == 2, ran.both
            assert secret not in ran.both, ran.both
            assert "***" in ran.both


def test_a_password_in_the_url_appears_in_no_output_of_any_command(
    backend: str, db_url: URL, prepared: Rewinder, engine: Engine
) -> None:
    if backend != "postgresql":
        pytest.skip("the local PostgreSQL trusts any password: the commands run to the end")
    prepared.close()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO parent (id) VALUES (1)"))
    secret = "S3cret-" + uuid.uuid4().hex[:8]
    url = db_url.set(password=secret)
    seen = []
    for args in (
        ("doctor",),
        ("status",),
        ("bench", "--rounds", "2"),
        ("clean",),
        ("uninstall",),
    ):
        for extra in ((), ("--json",)):
            ran = dbrewind(*args, url, *extra)
            seen.append((args, ran.code))
            assert secret not in ran.both, (args, ran.both)
            assert "***" in ran.both, (args, ran.both)
    assert [code for _, code in seen] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0], seen


@pytest.mark.backends("postgresql")
def test_a_password_that_is_also_a_word_leaves_the_fields_dbrewind_writes_intact(
    backend: str, db_url: URL, engine: Engine
) -> None:
    """Password ``postgres``: ``postgresql``, the URL and the table ``postgres_runs`` are
    printed as they are (only a driver's or server's text is searched for it)."""
    role = f"dbrewind_{uuid.uuid4().hex[:8]}"
    admin = create_engine(SERVER_URLS["postgresql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'postgres'"))
    try:
        with Rewinder(db_url) as rewinder:
            rewinder.prepare(
                lambda c: c.execute(text("CREATE TABLE postgres_runs (id INTEGER PRIMARY KEY)"))
            )
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO postgres_runs (id) VALUES (1)"))
        url = db_url.set(username=role, password="postgres")
        doctor = dbrewind("doctor", url, "--json")
        status = dbrewind("status", url, "--json")
        said = dbrewind("status", url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()

    shown = parse_url(url).display()
    assert shown.startswith("postgresql"), shown
    assert f"{role}:***@" in shown, shown
    for ran in (doctor, status, said):
        assert ran.code == 1, ran.both
        assert ":postgres@" not in ran.both
    report = doctor.json
    assert report["database"] == shown
    assert report["backend"] == "postgresql"
    assert _table_names(report["schema"]["tables"]) == {"postgres_runs"}
    assert _table_names(report["dirty"]) == {"postgres_runs"}
    assert "postgres_runs" in report["problems"][0]
    assert status.json["database"] == shown
    assert _table_names(status.json["dirty"]) == {"postgres_runs"}
    assert said.out.startswith(f"database:   {shown}\n"), said.out
    assert "postgres_runs" in said.out.split("dirty now:")[1].splitlines()[0]


@pytest.mark.backends("postgresql")
@pytest.mark.parametrize(
    "secret", [f"p@ss:w/rd-{uuid.uuid4().hex[:6]}", "pw"], ids=["url-quoted", "short"]
)
def test_a_password_in_a_servers_text_is_masked_in_every_form_and_length(
    backend: str, db_url: URL, secret: str
) -> None:
    """A session whose application name carries the password, as typed and percent-encoded:
    clean's reason for keeping the database it is connected to shows neither."""
    clone = db_url.set(database=f"{stem(parse_url(db_url))}_r1")
    with Rewinder(clone, allow=True) as rewinder:
        rewinder.create()
    encoded = quote(secret, safe="")
    session = create_engine(clone, connect_args={"application_name": f"app {encoded} {secret}"})
    try:
        with session.connect():
            ran = dbrewind("clean", db_url.set(password=secret), "--json")
            said = dbrewind("clean", db_url.set(password=secret))
    finally:
        session.dispose()
    assert ran.code == 0, ran.both
    [kept] = ran.json["kept"]
    assert kept["reason"].startswith("in use: pid "), kept
    assert "(app *** ***)" in kept["reason"], kept
    assert "(app *** ***)" in said.out, said.out
    for shown in (ran.both, said.both):
        assert secret not in shown, shown
        assert encoded not in shown, shown
