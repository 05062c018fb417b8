#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the test suite.
#   scripts/pg.sh start DIR PORT   initdb (if needed) and start; socket in DIR/run
#   scripts/pg.sh stop  DIR PORT   fast stop, by data directory
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# "postgres" system user, which owns DIR.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}
port=${3:?port}
# PostgreSQL runs in its data directory: a relative socket path would break.
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" stop -m fast >/dev/null
  fi
  rm -rf "$dir"
  mkdir -p "$dir/run"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
  as_owner "$bindir/initdb" -D "$dir/data" -U cebus --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # Durable settings (fsync stays on) so the suite exercises the real commit path.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir/run -c listen_addresses='' -c max_connections=300 -c shared_buffers=128MB" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql ready: host=$dir/run port=$port user=cebus"
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: $0 start|stop DIR PORT" >&2; exit 2 ;;
esac
