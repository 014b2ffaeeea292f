"""A bare install: the plugin costs nothing at load, and sync work needs no async extras.

pytest loads the plugin in every run of every project where dbrewind is
installed. It must import neither SQLAlchemy nor a driver until a test asks
for a database, and the sync fixtures must work where ``greenlet`` (which
SQLAlchemy's asyncio support runs on) is not installed; asking for an async
fixture there says which extra to install. ``scripts/bare_install_check.sh``
proves the same on a real ``pip install dbrewind`` in a fresh virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.runs import pytest_args, start

SUITE = """
import sqlalchemy as sa

metadata = sa.MetaData()
notes = sa.Table("notes", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("body", sa.String(50)))


def test_sandbox(db_session, db_assert):
    db_session.execute(notes.insert().values(body="x"))
    db_session.commit()
    db_assert.assert_database_count("notes", 1)


def test_commits(transactional_db):
    transactional_db.execute(notes.insert().values(body="y"))
    transactional_db.commit()
    assert transactional_db.scalar(sa.select(sa.func.count()).select_from(notes)) == 1


def test_the_next_test_sees_none(db):
    assert db.scalar(sa.select(sa.func.count()).select_from(notes)) == 0
"""

CONFTEST = """
import pytest
from test_notes import metadata

@pytest.fixture(scope="session")
def dbrewind_setup():
    return metadata.create_all
"""

ASYNC = """
import pytest

@pytest.mark.asyncio
async def test_async(async_db_session):
    pass
"""


def test_loading_the_plugin_imports_no_sqlalchemy() -> None:
    code = (
        "import sys, pytest, dbrewind.pytest_plugin; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'psycopg', 'pymysql', 'asyncpg', 'aiomysql', 'greenlet', 'peewee')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def without_greenlet(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import greenlet`` fails, as after a bare install."""
    shim = tmp_path / "shim" / "greenlet"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'greenlet'\")\n")
    path = os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path}


def test_the_sync_fixtures_work_without_greenlet(
    tmp_path: Path, without_greenlet: dict[str, str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_notes.py").write_text(textwrap.dedent(SUITE))
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    for _ in range(2):  # the second run reuses the template
        code, out = start(project, pytest_args(None), env=without_greenlet).finish()
        assert code == 0, out
        assert "3 passed" in out, out
    assert "templates built 0, reused 1" in out, out


def test_an_async_fixture_without_greenlet_names_the_extra_to_install(
    tmp_path: Path, without_greenlet: dict[str, str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_async.py").write_text(textwrap.dedent(ASYNC))
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    code, out = start(project, pytest_args(None), env=without_greenlet).finish()
    assert code == 1, out
    assert "1 error" in out, out
    assert "needs the 'greenlet' package" in out, out
    assert "pip install 'dbrewind[sqlite]'" in out, out
