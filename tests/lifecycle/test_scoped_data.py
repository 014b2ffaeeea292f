"""module_db_session / class_db_session: data made once per scope, every test starting from it.

An expensive fixture (a login, a hashed password) is made once per module or
class; each test of the scope sees its rows whatever an earlier test did (a
sandboxed commit, a real DELETE under the clean strategy), the next scope
does not see them, and the database is at its baseline after every run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sqlalchemy.engine import URL

from helpers.runs import observe, pytest_args, start

CONFTEST = """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def dbrewind_setup():
    def schema(conn):
        conn.execute(text(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(80) UNIQUE)"
        ))
        conn.execute(text("INSERT INTO users (id, email) VALUES (1, 'seed@example.com')"))

    return schema


def emails(conn):
    return conn.execute(text("SELECT email FROM users ORDER BY id")).scalars().all()
"""

TESTS_MODULE = """
import pytest
from sqlalchemy import text

from conftest import emails

MADE = []


@pytest.fixture(scope="module")
def admin(module_db_session):
    MADE.append("admin")  # the expensive part: once for the module
    module_db_session.execute(
        text("INSERT INTO users (id, email) VALUES (2, 'admin@example.com')")
    )
    return "admin@example.com"  # not committed here: dbrewind keeps it for the module


def test_1_sees_the_admin_and_commits_in_its_sandbox(db_session, admin):
    assert emails(db_session) == ["seed@example.com", admin]
    db_session.execute(text("INSERT INTO users (id, email) VALUES (3, 'one@example.com')"))
    db_session.commit()


@pytest.mark.dbrewind(transactional=True)
def test_2_a_clean_test_sees_it_and_deletes_for_real(transactional_db, admin):
    assert emails(transactional_db) == ["seed@example.com", admin]
    transactional_db.execute(text("DELETE FROM users"))
    transactional_db.commit()


def test_3_starts_from_the_module_state(db, admin):
    assert emails(db) == ["seed@example.com", admin]
    assert MADE == ["admin"]


class TestAClassOnTop:
    @pytest.fixture(scope="class")
    @classmethod
    def editor(cls, class_db_session, admin):
        class_db_session.execute(
            text("INSERT INTO users (id, email) VALUES (4, 'editor@example.com')")
        )
        class_db_session.commit()
        return "editor@example.com"

    def test_a(self, db, admin, editor):
        assert emails(db) == ["seed@example.com", admin, editor]
        db.execute(text("DELETE FROM users WHERE id = 4"))

    def test_b(self, db, admin, editor):
        assert emails(db) == ["seed@example.com", admin, editor]


def test_4_after_the_class(db, admin):
    assert emails(db) == ["seed@example.com", admin]
"""

TESTS_OTHER = """
from conftest import emails


def test_another_module_sees_only_the_baseline(db):
    assert emails(db) == ["seed@example.com"]
"""

TESTS_ASYNC = """
import pytest
import pytest_asyncio
from sqlalchemy import text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def async_admin(module_async_db_session):
    await module_async_db_session.execute(
        text("INSERT INTO users (id, email) VALUES (5, 'async-admin@example.com')")
    )
    await module_async_db_session.commit()
    return "async-admin@example.com"


async def emails(session):
    return (await session.execute(text("SELECT email FROM users ORDER BY id"))).scalars().all()


@pytest.mark.asyncio(loop_scope="module")
async def test_async_1(async_db_session, async_admin):
    assert await emails(async_db_session) == ["seed@example.com", async_admin]
    await async_db_session.execute(text("DELETE FROM users"))
    await async_db_session.commit()


@pytest.mark.asyncio(loop_scope="module")
async def test_async_2(async_db_session, async_admin):
    assert await emails(async_db_session) == ["seed@example.com", async_admin]
"""


def _project(where: Path) -> None:
    where.mkdir()
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_a_module.py").write_text(textwrap.dedent(TESTS_MODULE))
    (where / "test_b_other.py").write_text(textwrap.dedent(TESTS_OTHER))
    (where / "test_c_async.py").write_text(textwrap.dedent(TESTS_ASYNC))
    (where / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_scoped_data_is_made_once_and_every_test_starts_from_it(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    _project(project)
    # the third: every test's database compared with what its scope keeps (a layer kept
    # or rewound is the new reference)
    for args in ((), ("-p", "no:randomly", "--dbrewind-strict"), ("--dbrewind-verify",)):
        code, out = start(project, pytest_args(suite_url, *args)).finish()
        assert code == 0, out
        assert "9 passed" in out, out
        seen = observe(suite_url, ["users"])
        assert [row[1] for row in seen.rows["users"]] == ["seed@example.com"], seen.rows
        assert seen.at_rest, seen.tracking
