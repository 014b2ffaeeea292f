#!/usr/bin/env bash
# The whole test suite, against real SQLite, PostgreSQL and MariaDB.
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
bash "$root/scripts/services.sh"
cd "$root"
ruff check .
ruff format --check .
mypy
exec python -m pytest -n 2 "$@"
