#!/usr/bin/env bash
# ab_durable.sh - alternate durable_put_8c runs of several coordinator
# builds (and Redis appendfsync always) in one loop, so drift on a shared
# machine hits them alike; how docs/PERFORMANCE.md compared each change
# with the build before it.
#   tests/bench/ab_durable.sh ROUNDS SYSTEM...
#   SYSTEM: redis, lmdb, or the path of a dotdbd binary (its build's own
#   tests/bench/bench_dotdb drives it when there is one: builds of
#   different protocol versions each need their own client)
#   SECS=3 (seconds per run), RECORDS=100000
# Needs `bash scripts/bench.sh --quick --only load` run once (it installs
# the peers and builds build-bench/).  Each DotDB run restarts its
# coordinator and prints ops/s, p50 and p99 in µs, then the coordinator's
# grouping counters from `dotdb stats`.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:?usage: ab_durable.sh ROUNDS SYSTEM...}; shift
(($# > 0)) || { echo "ab_durable.sh: name at least one system" >&2; exit 2; }
B=build-bench/tests/bench
secs=${SECS:-3} records=${RECORDS:-100000}
T=$(mktemp -d "${TMPDIR:-/tmp}/dotdb-ab.XXXXXX")
rp=""
cleanup() {
  for d in "$T"/d*; do [[ -d $d ]] && build-bench/dotdb --db "$d" coordinator stop >/dev/null 2>&1; done
  [[ -n $rp ]] && { kill "$rp" 2>/dev/null; wait "$rp" 2>/dev/null || true; }
  rm -rf "$T"
}
trap cleanup EXIT
client_for() { # the bench_dotdb built with coordinator $1, else ours
  local c
  c="$(dirname "$1")/tests/bench/bench_dotdb"
  [[ -x $c ]] && echo "$c" || echo "$B/bench_dotdb"
}
mkdir -p "$T/redis"
redis-server --port 0 --unixsocket "$T/redis/s" --unixsocketperm 700 --dir "$T/redis" \
  --appendonly yes --appendfsync everysec --save "" --daemonize no --logfile "$T/redis/log" &
rp=$!
for _ in $(seq 200); do [[ -S $T/redis/s ]] && break; sleep 0.05; done
# every coordinator build gets its own data directory, loaded by itself, so
# that none writes into WAL space another one prepared
i=0
for m in "$@"; do
  i=$((i + 1))
  [[ $m == redis ]] && continue
  if [[ $m == lmdb ]]; then
    "$B/bench_lmdb" --workload load --dir "$T/l" --records "$records" >/dev/null
    continue
  fi
  "$(client_for "$m")" --workload load --dir "$T/d$i" --records "$records" --coordinator "$m" >/dev/null
  build-bench/dotdb --db "$T/d$i" coordinator stop >/dev/null 2>&1 || true
done
"$B/bench_redis" --workload load --dir "$T/r" --records "$records" --socket "$T/redis/s" >/dev/null
for _ in $(seq "$rounds"); do
  i=0
  for m in "$@"; do
    i=$((i + 1))
    if [[ $m == redis ]]; then
      out=$("$B/bench_redis" --workload durable_put_8c --dir "$T/r" --records "$records" \
              --seconds "$secs" --socket "$T/redis/s" | grep '^RESULT')
      st=""
    elif [[ $m == lmdb ]]; then
      out=$("$B/bench_lmdb" --workload durable_put_8c --dir "$T/l" --records "$records" \
              --seconds "$secs" | grep '^RESULT')
      st=""
    else
      build-bench/dotdb --db "$T/d$i" coordinator stop >/dev/null 2>&1 || true
      out=$("$(client_for "$m")" --workload durable_put_8c --dir "$T/d$i" --records "$records" \
              --seconds "$secs" --coordinator "$m" | grep '^RESULT')
      st=$(build-bench/dotdb --db "$T/d$i" stats 2>/dev/null |
             grep -o '"batches":[0-9]*,"fsyncs":[0-9]*\(,"fsyncs_inline":[0-9]*,"fsync_inline_avg_us":[0-9]*\)\?\(,"gathers":[0-9]*,"gather_avg_us":[0-9]*,"turnaround_avg_us":[0-9]*\)\?' || true)
    fi
    echo "$m: $(awk '{print $4, $5, $6}' <<<"$out") $st"
  done
done
