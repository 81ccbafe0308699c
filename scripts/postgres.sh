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
# wal_level is logical, so Debezium can read changes through the pgoutput plugin (docs/postgres.md, CDC); a
# cluster made before that is switched over (ALTER SYSTEM) and restarted once.
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
sql() { PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$port" -U northstar -d postgres -Atq "$@"; }

# Logical decoding (Debezium, pgoutput). wal_level only changes at a restart; ALTER SYSTEM writes
# postgresql.auto.conf of whichever cluster answers on the port (ours or another checkout's), and it overrides
# postgresql.conf. One query when it is already right.
ensure_logical() {
  [ "$(sql -c 'show wal_level')" = logical ] && return 0
  echo "postgres: setting wal_level = logical (for CDC with Debezium) and restarting the server ..."
  sql -c "alter system set wal_level = logical" -c "alter system set max_replication_slots = 20" \
    -c "alter system set max_wal_senders = 20" -c "alter system set max_slot_wal_keep_size = '1GB'"
  local dir
  dir="$(sql -c 'show data_directory')"
  as_owner "$bin/pg_ctl" -D "$dir" -m fast -w -t 60 -l "$dir/startup.log" restart >/dev/null
  [ "$(sql -c 'show wal_level')" = logical ] || { echo "postgres: wal_level is still not logical" >&2; exit 1; }
}

if pg_up; then
  if can_login; then ensure_logical; exit 0; fi  # ours, or another checkout's cluster with the same test login
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
wal_level = logical              # logical decoding: Debezium reads changes with pgoutput (CDC tests)
max_replication_slots = 20       # one slot per CDC test database, with room for concurrent test runs
max_wal_senders = 20
max_slot_wal_keep_size = 1GB     # a slot a crashed test left behind is invalidated before it fills the disk
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
ensure_logical  # a cluster created before wal_level = logical was written into its postgresql.conf
echo "postgres: ready on 127.0.0.1:$port (user northstar)"
