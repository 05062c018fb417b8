#!/usr/bin/env bash
# `make bench`: the benchmark suite against a throwaway PostgreSQL and cebusd.
#   scripts/bench.sh BUILD_DIR
# Starts PostgreSQL (scripts/pg.sh: durable defaults, fsync on) on its own
# port and socket directory, starts cebusd on 127.0.0.1:0, creates a tenant,
# a key and a bus with the cebus CLI, then runs cebus-bench: pg-insert
# (1 and 8 clients, batch 100), ingest (batch 1, 10, 100), latency
# (1000 events/s, plain and durable), match (1, 100, 10000 patterns) and
# durable (a backlog of 100,000 events acked by 1 and 8 consumers). Prints a table and
# stops everything it started, by pid and data directory.
#
# Environment (all optional):
#   BENCH_SECONDS     length of each throughput run (default 5)
#   BENCH_CLIENTS     ingest and large pg-insert client threads (default 8)
#   BENCH_PG_PORT     port of the throwaway PostgreSQL (default 55471)
#   BENCH_DIR         work directory (default: a new one under /tmp, removed)
#   BENCH_INGEST_ARGS extra arguments for every ingest run (e.g. --shared-client)
#   BENCH_ONLY        the subcommands to run, space-separated (default: all)
#   BENCH_DURABLE_EVENTS backlog of each durable run (default 100000)
set -euo pipefail

build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build="$root/$build" ;; esac
seconds=${BENCH_SECONDS:-5}
clients=${BENCH_CLIENTS:-8}
pg_port=${BENCH_PG_PORT:-55471}
ingest_args=${BENCH_INGEST_ARGS:-}
only=${BENCH_ONLY:-}
durable_events=${BENCH_DURABLE_EVENTS:-100000}

for bin in cebusd cebus cebus-bench; do
  [ -x "$build/$bin" ] || {
    echo "bench.sh: $build/$bin not found; build first (make build)" >&2
    exit 1
  }
done

if [ -n "${BENCH_DIR:-}" ]; then
  work=$BENCH_DIR
  keep_work=1
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/cebus-bench.XXXXXX)
  keep_work=0
fi
# The postgres user must reach its data directory below $work.
chmod 755 "$work"
pgdir=$work/pg
cebusd_pid=
pg_started=0

cleanup() {
  local rc=$?
  if [ -n "$cebusd_pid" ] && kill -0 "$cebusd_pid" 2>/dev/null; then
    kill -TERM "$cebusd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$cebusd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$cebusd_pid" 2>/dev/null || true
    wait "$cebusd_pid" 2>/dev/null || true
  fi
  if [ "$pg_started" = 1 ]; then
    "$root/scripts/pg.sh" stop "$pgdir" "$pg_port" || true
  fi
  if [ "$rc" != 0 ]; then
    echo "bench.sh: failed (exit $rc); cebusd log: $work/cebusd.log" >&2
    [ -f "$work/cebusd.log" ] && tail -n 20 "$work/cebusd.log" >&2
  fi
  if [ "$keep_work" = 0 ] && [ "$rc" = 0 ]; then
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
echo "bench.sh: machine: $(nproc) cores, $cpu_model, $mem RAM"
echo "bench.sh: cebus $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "bench.sh: load average before: $(loadavg)"

"$root/scripts/pg.sh" start "$pgdir" "$pg_port" >/dev/null
pg_started=1
db_url="host=$pgdir/run port=$pg_port user=cebus dbname=postgres"
# shellcheck disable=SC2012 # as in pg.sh
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
echo "bench.sh: $("$pg_bin/postgres" --version), port $pg_port, data in $pgdir"

admin_key="cb_admin_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CEBUS_DATABASE_URL="$db_url" CEBUS_ADMIN_KEY="$admin_key" CEBUS_LOG_LEVEL=warn \
  "$build/cebusd" --listen 127.0.0.1:0 --metrics-listen off >"$work/cebusd.out" 2>"$work/cebusd.log" &
cebusd_pid=$!
addr=
for _ in $(seq 1 300); do
  addr=$(sed -n 's/^cebusd: listening on \(.*\)$/\1/p' "$work/cebusd.out" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$cebusd_pid" 2>/dev/null || { echo "bench.sh: cebusd exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "bench.sh: cebusd did not report its address in 30 s" >&2; exit 1; }
echo "bench.sh: cebusd listening on $addr (pid $cebusd_pid)"

cli() { "$build/cebus" --addr "$addr" "$@"; }
cli --key "$admin_key" tenant create bench >/dev/null
# The benchmarks measure the server, not the tenant's quota: the highest
# rates SetQuota accepts (README.md, Quotas).
cli --key "$admin_key" quota set bench --events-per-second 10000000 \
  --bytes-per-second 4000000000 >/dev/null
key=$(cli --key "$admin_key" key create --tenant bench --role tenant-admin \
        --description cebus-bench 2>/dev/null | head -n1)
[ -n "$key" ] || { echo "bench.sh: could not create an API key" >&2; exit 1; }
cli --key "$key" bus create ingest >/dev/null
cli --key "$key" bus create latency >/dev/null
cli --key "$key" bus create durable >/dev/null

results=$work/results.txt
: >"$results"
failed=0
# Runs one benchmark. A failed one is reported and the suite goes on; the
# script exits 1 at the end.
run() {
  case " ${only:-$1} " in *" $1 "*) ;; *) return 0 ;; esac
  # The command as run, quoted; the throwaway key is shown as $KEY.
  { printf '+ cebus-bench'; printf ' %q' "$@"; echo; } | sed "s/$key/\$KEY/g"
  if ! "$build/cebus-bench" "$@" | tee -a "$results"; then
    echo "bench.sh: FAILED: cebus-bench $1" >&2
    failed=1
  fi
}

run pg-insert --url "$db_url" --clients 1 --batch 100 --seconds "$seconds"
run pg-insert --url "$db_url" --clients "$clients" --batch 100 --seconds "$seconds"
for batch in 1 10 100; do
  # shellcheck disable=SC2086 # ingest_args is a list of words
  run ingest --addr "$addr" --key "$key" --bus ingest --clients "$clients" --batch "$batch" \
    --seconds "$seconds" $ingest_args
done
run latency --addr "$addr" --key "$key" --bus latency --rate 1000 --seconds "$seconds"
run latency --addr "$addr" --key "$key" --bus latency --rate 1000 --seconds "$seconds" --durable
for rules in 1 100 10000; do
  run match --rules "$rules" --seconds 3
done
for consumers in 1 8; do
  run durable --addr "$addr" --key "$key" --bus durable --events "$durable_events" \
    --consumers "$consumers"
done

echo "bench.sh: load average after: $(loadavg)"

# The table, from the key=value lines.
echo
echo "==== cebus-bench summary ===="
awk -v clients="$clients" '
function kv(key,   n, i, parts, p) {
  n = split($0, parts, " ")
  for (i = 1; i <= n; i++) {
    split(parts[i], p, "=")
    if (p[1] == key) return p[2]
  }
  return ""
}
/^bench=pg-insert/ {
  if (kv("clients") + 0 > 1) ceiling = kv("rows_per_s")
  printf "%-36s %9s rows/s    stmt p50 %9s us  p99 %9s us\n",
    "pg-insert " kv("clients") " client(s), batch " kv("batch"),
    kv("rows_per_s"), kv("stmt_p50_us"), kv("stmt_p99_us")
}
/^bench=ingest/ {
  if (kv("batch") + 0 == 100) ingest100 = kv("events_per_s")
  printf "%-36s %9s events/s  call p50 %9s us  p99 %9s us  errors %d\n",
    "ingest " kv("clients") " clients, batch " kv("batch"),
    kv("events_per_s"), kv("call_p50_us"), kv("call_p99_us"), kv("errors") + kv("rejected")
}
/^bench=latency/ {
  printf "%-36s p50 %s us  p90 %s us  p99 %s us  max %s us  (%s of %s received)\n",
    (kv("durable") == 1 ? "durable " : "") "latency " kv("rate") "/s (achieved " \
      kv("achieved_rate") "/s)",
    kv("p50_us"), kv("p90_us"), kv("p99_us"), kv("max_us"), kv("received"), kv("sent")
}
/^bench=match/ {
  printf "%-36s %9s events/s  (%s per CPU-second; protobuf-c decode alone %s/s, match alone %s/s)\n",
    "match " kv("rules") " pattern(s)",
    kv("events_per_s"), kv("events_per_cpu_s"), kv("decode_only_per_s"), kv("match_only_per_s")
}
/^bench=durable/ {
  printf "%-36s %9s events/s  (%s events, %s redelivered, %s acks in %s calls)\n",
    "durable " kv("consumers") " consumer(s), in-flight " kv("in_flight"),
    kv("events_per_s"), kv("events"), kv("redeliveries"), kv("acks"), kv("ack_calls")
}
END {
  if (ceiling > 0 && ingest100 != "")
    printf "ingest batch 100 / pg-insert %d clients: %.2f of the raw insert ceiling\n",
      clients, ingest100 / ceiling
}' "$results"
if [ "$failed" != 0 ]; then
  echo "bench.sh: some benchmarks failed (see above)" >&2
  exit 1
fi
