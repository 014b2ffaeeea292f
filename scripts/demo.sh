#!/usr/bin/env bash
# The main job: the example shop's test suite (examples/shop) under dbrewind's pytest plugin.
# SQLite by default; point it elsewhere with DBREWIND_URL or --dbrewind-url
# (postgresql://postgres@127.0.0.1/shop_test, mysql+pymysql://root@127.0.0.1/shop_test).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root/examples/shop"
exec python -m pytest "$@"
