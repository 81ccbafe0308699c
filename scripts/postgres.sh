#!/usr/bin/env bash
# The local PostgreSQL the JDBC extraction tests run against: a real server from Debian's packages, in a
# git-ignored cluster (.pgdata/) listening on 127.0.0.1 only, on the project port ($NORTHSTAR_PG_PORT, 54329).
#
#   scripts/postgres.sh          install if missing, create the cluster if missing, start it if stopped
#   scripts/postgres.sh stop     stop this checkout's cluster
#
# Idempotent: when the server is already up it returns in well under a second. The bootstrap superuser is
# northstar / $NORTHSTAR_PG_PASSWORD (default "northstar"): a throw-away test login on loopback, not a secret.
# pg_stat_statements and auto_explain are preloaded (both off until a database or session turns them on), and
# the server log is JSON lines (log/*.json) so tests can see, per statement, what the extractor sent.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${NORTHSTAR_PG_PORT:-54329}"
data="${NORTHSTAR_PG_DATA:-$PWD/.pgdata}"
if [ -z "${NORTHSTAR_PG_DATA:-}" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 \
  && ! runuser -u postgres -- test -x "$PWD"; then
  # a checkout under a private folder (e.g. /root): keep the cluster where the postgres user can reach it
  data="/var/tmp/northstar-pgdata-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)"
fi
password="${NORTHSTAR_PG_PASSWORD:-northstar}"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {  # the server refuses to run as root: use the postgres system user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bin="$(find_bin)"
if [ -f "$data/PG_VERSION" ]; then bin="/usr/lib/postgresql/$(cat "$data/PG_VERSION")/bin"; fi

if [ "${1:-start}" = stop ]; then
  if [ -f "$data/postmaster.pid" ]; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop; fi
  exit 0
fi

if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "postgres: the PostgreSQL server is not installed; run as root, or: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "postgres: installing PostgreSQL from Debian apt ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bin="$(find_bin)"
  [ -x "$bin/initdb" ] || { echo "postgres: initdb not found under /usr/lib/postgresql/*/bin after install" >&2; exit 1; }
fi

pg_up() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; }
can_login() { PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$port" -U northstar -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

if pg_up; then
  if can_login; then exit 0; fi  # ours, or another checkout's cluster with the same test login: use it
  echo "postgres: port $port is taken by a server that does not accept the northstar test login;" \
    "stop it or set NORTHSTAR_PG_PORT to a free port" >&2
  exit 1
fi

if [ ! -f "$data/PG_VERSION" ]; then
  echo "postgres: creating a cluster in $data (port $port, 127.0.0.1 only) ..."
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  chmod 700 "$data"
  pwfile="$(mktemp)"
  printf '%s\n' "$password" >"$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  as_owner "$bin/initdb" -D "$data" -U northstar --pwfile="$pwfile" --auth-local=scram-sha-256 \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >>"$data/postgresql.conf" <<EOF

# --- Northstar test server (scripts/postgres.sh) ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 40
shared_buffers = 64MB
fsync = off                      # a throw-away test cluster: speed over durability
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
shared_preload_libraries = 'pg_stat_statements,auto_explain'
pg_stat_statements.track = top
logging_collector = on
log_destination = 'jsonlog'
log_directory = 'log'
log_filename = 'postgresql-%Y%m%d.log'
EOF
fi

echo "postgres: starting the server on 127.0.0.1:$port ..."
as_owner "$bin/pg_ctl" -D "$data" -l "$data/startup.log" -w -t 60 start >/dev/null || {
  echo "postgres: the server did not start; see $data/startup.log and $data/log/" >&2
  tail -n 20 "$data/startup.log" >&2 || true
  exit 1
}
can_login || { echo "postgres: started, but the northstar test login fails (see $data/log/)" >&2; exit 1; }
echo "postgres: ready on 127.0.0.1:$port (user northstar)"
