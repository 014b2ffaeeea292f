#!/usr/bin/env bash
# Proves that a bare `pip install dbrewind` (no extras) works: in a fresh venv of its
# own (never .venv), with dbrewind installed from this checkout (not editable, no
# extras) plus pytest, it checks that
#   0. importing the plugin imports no SQLAlchemy;
#   a. a project whose tests use no database passes, with no dbrewind error;
#   b. the sync fixtures (db, db_session, transactional_db, db_assert) work on the
#      default SQLite database, twice in a row (the second run reuses the template);
#   c. an async test asking for async_db_session fails cleanly: without an async test
#      runner naming pytest-asyncio/anyio, with pytest-asyncio naming dbrewind[sqlite]
#      (no greenlet, no aiosqlite) -- never a crash at plugin load.
# Exits non-zero, saying which check failed and why; removes its temp dirs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
started=$(date +%s)

work="$(mktemp -d "${TMPDIR:-/tmp}/dbrewind-bare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
venv="$work/venv"
out="$work/out.txt"

# Nothing from the caller's environment may configure dbrewind or pytest here.
unset DBREWIND_URL DBREWIND_ALLOW PYTEST_ADDOPTS PYTEST_PLUGINS PYTHONPATH VIRTUAL_ENV || true

step() { echo "bare-install: $*"; }
shown() { # a line of pytest's output without its "E   " prefix
  local line=${1#E}
  echo "${line#"${line%%[! ]*}"}"
}
fail() {
  echo "bare-install check FAILED: $1" >&2
  if [ -s "$out" ]; then
    echo "----- output -----" >&2
    cat "$out" >&2
    echo "------------------" >&2
  fi
  exit 1
}

# run_pytest DIR ARGS...: pytest in DIR, output in $out, exit code in $rc
run_pytest() {
  local dir=$1
  shift
  rc=0
  (cd "$dir" && "$venv/bin/python" -m pytest -p no:cacheprovider "$@") >"$out" 2>&1 || rc=$?
}

# the plugin must have loaded cleanly: no internal error, no broken plugin or conftest
assert_loaded() { # what
  if grep -qE "INTERNALERROR|PluginValidationError|ImportError while loading|Error while loading" "$out"; then
    fail "$1: pytest or the dbrewind plugin crashed at load"
  fi
  grep -qE "^plugins: .*dbrewind-" "$out" || fail "$1: pytest's 'plugins:' line has no dbrewind: the plugin did not load"
}

step "creating a fresh venv with $("$python" --version 2>&1)"
"$python" -m venv "$venv" >"$out" 2>&1 || fail "python3 -m venv failed (is python3-venv installed?)"
step "pip install $root (no extras, not editable) + pytest"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$root" pytest >"$out" 2>&1 ||
  fail "pip install of dbrewind (no extras) + pytest failed"
: >"$out"

installed="$("$venv/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null)"
echo "$installed" | grep -qi "^dbrewind==" || fail "dbrewind is not in the venv after pip install"
# every extra's packages stay out, so what follows really is the bare install
for extra_pkg in aiosqlite psycopg asyncpg pymysql aiomysql peewee alembic; do
  if echo "$installed" | grep -qi "^$extra_pkg=="; then
    fail "a bare install brought in $extra_pkg, which belongs to an extra"
  fi
done
if echo "$installed" | grep -qi "^greenlet=="; then
  step "note: greenlet came with SQLAlchemy on this platform"
fi
location="$("$venv/bin/python" -c 'import dbrewind, os; print(os.path.dirname(dbrewind.__file__))')"
case "$location" in
  "$venv"/*) ;;
  *) fail "dbrewind is imported from $location, not from the fresh venv (an editable install?)" ;;
esac

# 0 -------------------------------------------------------------------------------
step "0. importing the plugin imports no SQLAlchemy"
(cd "$work" && "$venv/bin/python" -c "import dbrewind.pytest_plugin, sys; assert not [m for m in sys.modules if m.startswith('sqlalchemy')]") >"$out" 2>&1 ||
  fail "0: 'import dbrewind.pytest_plugin' imported SQLAlchemy (or failed)"

# a -------------------------------------------------------------------------------
step "a. a project whose tests use no database"
plain="$work/plain"
mkdir "$plain"
printf '[pytest]\n' >"$plain/pytest.ini"
cat >"$plain/test_plain.py" <<'EOF'
import pytest


def test_arithmetic():
    assert 1 + 1 == 2


def test_tmp_path(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert (tmp_path / "f.txt").read_text() == "x"


@pytest.fixture
def value():
    return 42


def test_fixture(value):
    assert value == 42


@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n > 0


class TestClass:
    def test_method(self):
        assert "dbrewind"
EOF
run_pytest "$plain" -rA
[ "$rc" -eq 0 ] || fail "a: the plain project's tests did not pass (pytest exit $rc)"
assert_loaded a
grep -qE "7 passed" "$out" || fail "a: expected '7 passed'"
if grep -i "dbrewind" "$out" | grep -v "^dbrewind: " | grep -qiE "error|warning|fail"; then
  fail "a: dbrewind printed an error or warning in a project that uses no database"
fi
if grep -q -- "- dbrewind -" "$out"; then
  fail "a: a dbrewind summary appeared although no test used a database"
fi
if grep -q "^dbrewind: " "$out"; then
  fail "a: the header names a database although no test uses one"
fi
if [ -e "$plain/.dbrewind/test.db" ]; then
  fail "a: dbrewind created its SQLite database although no test asked for it"
fi

# b -------------------------------------------------------------------------------
step "b. the sync fixtures on the default SQLite database, two runs"
sync="$work/sync"
mkdir "$sync"
printf '[pytest]\n' >"$sync/pytest.ini"
cat >"$sync/conftest.py" <<'EOF'
import pytest
import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(100), nullable=False),
)


def create_schema(conn):
    metadata.create_all(conn)
    conn.execute(users.insert().values(email="seed@example.test"))


@pytest.fixture(scope="session")
def dbrewind_setup():
    return create_schema
EOF
cat >"$sync/test_sync.py" <<'EOF'
import sqlalchemy as sa
from conftest import users


def count(conn):
    return conn.scalar(sa.select(sa.func.count()).select_from(users))


def test_db_rollback(db):
    db.execute(users.insert().values(email="a@example.test"))
    db.commit()  # a savepoint inside the sandbox
    assert count(db) == 2


def test_db_session_sees_baseline_only(db_session):
    assert db_session.scalar(sa.select(sa.func.count()).select_from(users)) == 1
    db_session.execute(users.insert().values(email="b@example.test"))
    db_session.commit()


def test_transactional_db_commits(transactional_db):
    transactional_db.execute(users.insert().values(email="c@example.test"))
    transactional_db.commit()
    assert count(transactional_db) == 2


def test_db_assert(db_session, db_assert):
    db_assert.assert_database_has("users", {"email": "seed@example.test"})
    db_assert.assert_database_count("users", 1)


def test_after_everything(db):
    assert count(db) == 1
EOF
# the order matters (the last test checks the earlier ones were undone): no pytest-randomly here
run_pytest "$sync" -p no:randomly
[ "$rc" -eq 0 ] || fail "b: the first run of the sync fixtures failed (pytest exit $rc)"
assert_loaded b
grep -qE "5 passed" "$out" || fail "b: expected '5 passed' in the first run"
grep -qE "^dbrewind: sqlite:///.*\(default: no dbrewind_url is set\)" "$out" ||
  fail "b: the header does not name the default SQLite database the tests use"
grep -q "templates built 1" "$out" || fail "b: the first run's summary does not say 'templates built 1'"
first_summary="$(grep "^strategies:" "$out")"
run_pytest "$sync" -p no:randomly
[ "$rc" -eq 0 ] || fail "b: the second run of the sync fixtures failed (pytest exit $rc)"
grep -qE "5 passed" "$out" || fail "b: expected '5 passed' in the second run"
grep -q "templates built 0, reused 1" "$out" ||
  fail "b: the second run did not reuse the prepared template (expected 'templates built 0, reused 1')"
second_summary="$(grep "^strategies:" "$out")"
step "   run 1: $first_summary"
step "   run 2: $second_summary"

# c -------------------------------------------------------------------------------
step "c. async_db_session on SQLite without the extra"
async="$work/async"
mkdir "$async"
printf '[pytest]\n' >"$async/pytest.ini"
cat >"$async/test_async.py" <<'EOF'
import pytest


@pytest.mark.asyncio
async def test_async_session(async_db_session):
    assert async_db_session is not None
EOF
# c1: no async test runner at all: dbrewind names the runners to install
run_pytest "$async" -rA -W ignore::pytest.PytestUnknownMarkWarning
[ "$rc" -eq 1 ] || fail "c1: expected the async test to fail (pytest exit 1), got exit $rc"
assert_loaded c1
grep -qE "(1 failed|1 error)" "$out" || fail "c1: the async test was not reported as failed"
grep -qE "[Ii]nstall.*pytest-asyncio" "$out" ||
  fail "c1: the failure does not say to install pytest-asyncio (or anyio)"
said="$(grep -m1 -E "^E .*[Ii]nstall.*pytest-asyncio" "$out" || grep -m1 -E "[Ii]nstall.*pytest-asyncio" "$out")"
step "   c1 says: $(shown "$said")"
# c2: with pytest-asyncio (the user's async test runner, not a dbrewind extra)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check pytest-asyncio >"$out" 2>&1 ||
  fail "c2: pip install pytest-asyncio failed"
after="$("$venv/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null)"
for pkg in aiosqlite greenlet; do
  if echo "$after" | grep -qi "^$pkg==" && ! echo "$installed" | grep -qi "^$pkg=="; then
    fail "c2: pytest-asyncio brought in $pkg: the check would prove nothing"
  fi
done
run_pytest "$async" -rA
[ "$rc" -eq 1 ] || fail "c2: expected the async test to fail (pytest exit 1), got exit $rc"
assert_loaded c2
grep -qE "(1 failed|1 error)" "$out" || fail "c2: the async test was not reported as failed"
grep -q "dbrewind\[sqlite\]" "$out" ||
  fail "c2: the failure does not name the extra to install (dbrewind[sqlite])"
said="$(grep -m1 -E "^E .*dbrewind\[sqlite\]" "$out" || grep -m1 "dbrewind\[sqlite\]" "$out")"
step "   c2 says: $(shown "$said")"

: >"$out"
step "all checks passed in $(($(date +%s) - started)) s"
