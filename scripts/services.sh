#!/usr/bin/env bash
# Makes sure PostgreSQL and MariaDB run on 127.0.0.1 and accept the test users
# (postgres with trust auth; root with an empty password). Installs them with apt
# when the machine has neither. Exits non-zero, saying which, if one cannot be reached.
set -euo pipefail

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not become reachable on 127.0.0.1" >&2
  return 1
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing database servers with apt" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql mariadb-server >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
fi
if ! mysqladmin -uroot -h127.0.0.1 status >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi

wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
wait_for PostgreSQL-login psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1"
wait_for MariaDB mysqladmin -uroot -h127.0.0.1 status
