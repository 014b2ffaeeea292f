#!/usr/bin/env bash
# The main job: the example application's test suite under dbrewind's pytest plugin.
# SQLite by default; point it elsewhere with DBREWIND_URL (e.g. postgresql://postgres@127.0.0.1/bookshop_test).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root/examples"
exec python -m pytest "$@"
