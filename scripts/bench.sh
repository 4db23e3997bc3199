#!/usr/bin/env bash
# DotDB against LMDB, SQLite and Redis, in one run, on this machine.
#
#   scripts/bench.sh [--quick] [--json FILE] [--only WORKLOAD] [--records N]
#                    [--seconds S] [--rounds R] [--chart FILE] [--docs]
#
#   --quick        100,000 records and 3 rounds of 1 s per timed workload
#                  (default: 1,000,000 records, 3 rounds of 3 s)
#   --records N    records loaded (overrides --quick's count)
#   --seconds S    duration of each round of a timed workload
#   --rounds R     rounds of each timed workload (default 3): every system
#                  runs once per round, the order rotating, and the round
#                  with the median ops/s is reported, so that a stall of
#                  this (shared, virtual) machine during one system's run
#                  does not decide a ratio; `load` runs R rounds too, each
#                  into an empty store
#   --only W       run W only (after `load`, which everything else needs)
#   --json FILE    write {"records", "machine", "results": [...]} to FILE
#   --chart FILE   draw the DotDB/peer ratios (gnuplot PNG) into FILE;
#                  with --docs, docs/bench-ratios.png (a plain run leaves docs/ alone)
#   --docs         also refresh docs/bench-results.json, the chart, the
#                  tables between the bench markers of docs/PERFORMANCE.md
#                  and the chart's caption (date, machine) in README.md
#
# What it does: installs the peers when missing (scripts/setup.sh --bench:
# liblmdb-dev libsqlite3-dev redis-server libhiredis-dev gnuplot-nox), builds
# a Release build with -DDOTDB_BENCH=ON in build-bench/, starts Redis on a
# Unix socket in a temporary directory (appendonly yes), runs every workload
# on every system that supports it (tests/bench/runner.c describes them),
# rotating the order of the systems from one workload and round to the
# next so drift hits all alike, prints ops/s, p50 and p99 and the ratio of
# DotDB to each peer, and checks the targets of docs/PERFORMANCE.md.  Redis and the DotDB
# coordinator are stopped and the temporary directory removed on any exit.
# Works as root in CI (CI=true): no service manager is used or needed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

records="" seconds="" rounds=3 quick=0 json="" only="" chart="" docs=0
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --records) records=${2:?--records needs a number}; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --only) only=${2:?--only needs a workload}; shift ;;
    --json) json=${2:?--json needs a file}; shift ;;
    --chart) chart=${2:?--chart needs a file}; shift ;;
    --docs) docs=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -z $records ]]; then records=$((quick ? 100000 : 1000000)); fi
if [[ -z $seconds ]]; then seconds=$((quick ? 1 : 3)); fi
[[ $records =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --records must be a positive integer" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "bench.sh: --rounds must be an integer from 1 to 99" >&2; exit 2; }

all_workloads=(load shm_bytes_per_doc disk_bytes restart point_read_1p point_read_2p get_json_1p scan_filter group_by
               put_1c pipelined_put ycsb_a ycsb_b ycsb_c ycsb_f durable_put_8c)
if [[ -n $only ]]; then
  [[ " ${all_workloads[*]} " == *" $only "* ]] || { echo "bench.sh: unknown workload $only (one of: ${all_workloads[*]})" >&2; exit 2; }
  if [[ $only == load ]]; then workloads=(load); else workloads=(load "$only"); fi
else
  workloads=("${all_workloads[@]}")
fi
if ((docs)) && [[ -n $only ]]; then echo "bench.sh: --docs needs every workload (no --only)" >&2; exit 2; fi
if ((docs)); then json=${json:-docs/bench-results.json}; fi
if [[ -z $chart && $docs == 1 ]]; then chart=docs/bench-ratios.png; fi
systems=(dotdb lmdb sqlite redis)

# ---- peers and build --------------------------------------------------------
bash scripts/setup.sh --bench
build=build-bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDOTDB_BENCH=ON -DDOTDB_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target dotdbd dotdb bench_dotdb bench_lmdb bench_sqlite bench_redis ack_wake >/dev/null
bin=$root/$build/tests/bench

# ---- temporary directory, Redis, cleanup -----------------------------------
tmp=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/dotdb-bench.XXXXXX")
redis_pid=""
cleanup() {
  local st=$?
  set +e
  if [[ -d $tmp/dotdb ]]; then "$root/$build/dotdb" --db "$tmp/dotdb" coordinator stop >/dev/null 2>&1; fi
  if [[ -n $redis_pid ]]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  if [[ -n ${BENCH_KEEP:-} ]]; then echo "bench: kept $tmp (BENCH_KEEP)" >&2; else rm -rf "$tmp"; fi
  exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/redis"
sock=$tmp/redis/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$tmp/redis" \
  --appendonly yes --appendfsync everysec --save "" --daemonize no \
  --logfile "$tmp/redis/redis.log" &
redis_pid=$!
for _ in $(seq 200); do
  [[ -S $sock ]] && redis-cli -s "$sock" ping >/dev/null 2>&1 && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis/redis.log" >&2; echo "bench.sh: redis-server did not start" >&2; exit 1; }
  sleep 0.05
done

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
fstype=$(df --output=fstype "$tmp" 2>/dev/null | tail -1 || echo "?")
cpu=${cpu//\"/}
machine="${cpu:-unknown CPU}, $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Linux $(uname -r), $fstype"
date_utc=$(date -u +%Y-%m-%d)
echo "bench: $records records, $rounds rounds of ${seconds}s per timed workload (the median round reported), $machine"
echo "bench: peers: redis $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/'), sqlite $(pkg-config --modversion sqlite3), lmdb $(pkg-config --modversion lmdb), hiredis $(pkg-config --modversion hiredis)"

# ---- the runs ---------------------------------------------------------------
runs=$tmp/runs.txt results=$tmp/results.txt
: >"$runs"
failed=0
i=0
# A load round after the first starts from an empty store, as the first did.
empty_store() {
  case $1 in
    dotdb)
      "$root/$build/dotdb" --db "$tmp/dotdb" coordinator stop >/dev/null 2>&1 || true
      rm -rf "$tmp/dotdb" ;;
    redis) redis-cli -s "$sock" flushall >/dev/null ;;
    *) rm -rf "${tmp:?}/$1" ;;
  esac
}
for w in "${workloads[@]}"; do
  case $w in # measured once: a size, a start-up
    shm_bytes_per_doc|disk_bytes|restart) n=1 ;;
    *) n=$rounds ;; # load too: each round from empty, the median kept
  esac
  for ((r = 0; r < n; r++)); do
    for ((j = 0; j < ${#systems[@]}; j++)); do
      s=${systems[$(((i + j) % ${#systems[@]}))]}
      if [[ $w == load ]] && ((r > 0)); then empty_store "$s"; fi
      args=(--workload "$w" --dir "$tmp/$s" --records "$records" --seconds "$seconds")
      case $s in
        dotdb) args+=(--coordinator "$root/$build/dotdbd") ;;
        redis) args+=(--socket "$sock") ;;
      esac
      if out=$("$bin/bench_$s" "${args[@]}"); then
        grep '^RESULT ' <<<"$out" >>"$runs" || true
        ((r > 0)) || grep '^SKIP ' <<<"$out" | sed 's/^SKIP /bench: skipped: /' >&2 || true
      else
        echo "bench: FAILED: bench_$s --workload $w" >&2
        failed=1
      fi
    done
    i=$((i + 1))
  done
done
# Of the rounds of one workload on one system, the one with the median
# ops/s (the lower middle one of an even number), first-seen order kept.
awk '$1 == "RESULT" {
  k = $2 SUBSEP $3
  if (!(k in n)) order[++nk] = k
  line[k, ++n[k]] = $0; ops[k, n[k]] = $4 + 0
}
END {
  for (q = 1; q <= nk; q++) {
    k = order[q]; m = n[k]
    for (a = 1; a <= m; a++) idx[a] = a
    for (a = 2; a <= m; a++)  # insertion sort of the rounds by ops/s
      for (b = a; b > 1 && ops[k, idx[b - 1]] > ops[k, idx[b]]; b--) { t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t }
    print line[k, idx[int((m + 1) / 2)]]
  }
}' "$runs" >"$results"

# ---- table, targets, JSON -----------------------------------------------------
report=$tmp/report.md
awk -v records="$records" '
function fmt(x) { return x == "null" ? "-" : x }
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "-" }
$1 == "RESULT" {
  w = $2; s = $3
  if (!(w in seen)) { order[++nw] = w; seen[w] = 1 }
  ops[w, s] = $4; p50[w, s] = $5; p99[w, s] = $6; have[w, s] = 1
  extra = $0; sub(/^[^{]*/, "", extra); ex[w, s] = extra
}
function exnum(w, s, key,   e, p) {
  e = ex[w, s]; p = index(e, "\"" key "\":")
  if (!p) return ""
  e = substr(e, p + length(key) + 3); sub(/[,}].*/, "", e); return e
}
function exstr(w, s, key,   e, p) {
  e = ex[w, s]; p = index(e, "\"" key "\":\"")
  if (!p) return ""
  e = substr(e, p + length(key) + 4); sub(/".*/, "", e); return e
}
function target(w, peer, want, label,   r) {
  if (!have[w, "dotdb"] || !have[w, peer]) { printf "| %s | %s | - | >= %s | not measured |\n", w, label, want; return }
  r = ops[w, "dotdb"] / ops[w, peer]
  printf "| %s | %s | %.2f | >= %s | %s |\n", w, label, r, want, (r >= want ? "met" : "**missed**")
}
END {
  n = split("dotdb lmdb sqlite redis", sys, " ")
  print "| workload | system | ops/s | p50 µs | p99 µs | DotDB / system |"
  print "|---|---|---:|---:|---:|---:|"
  for (k = 1; k <= nw; k++) {
    w = order[k]
    for (m = 1; m <= n; m++) {
      s = sys[m]
      if (!have[w, s]) continue
      if (w == "shm_bytes_per_doc") {
        printf "| %s | %s | %s B/doc (JSON %s B) | - | - | %s× JSON |\n", w, s, exnum(w, s, "bytes_per_doc"), exnum(w, s, "json_bytes_per_doc"), exnum(w, s, "ratio_to_json")
        continue
      }
      if (w == "disk_bytes") {
        d = exnum(w, "dotdb", "bytes") + 0; b = exnum(w, s, "bytes") + 0
        printf "| %s | %s | %s B/doc on disk | - | - | %s (DotDB bytes / system bytes) |\n", w, s, exnum(w, s, "bytes_per_doc"), (b > 0 && d > 0 ? sprintf("%.2f", d / b) : "-")
        continue
      }
      printf "| %s | %s | %.0f | %s | %s | %s |\n", w, s, ops[w, s], fmt(p50[w, s]), fmt(p99[w, s]), (s == "dotdb" ? "1.00" : ratio(ops[w, "dotdb"], ops[w, s]))
    }
  }
  print ""
  print "| target | compared with | ratio | wanted | status |"
  print "|---|---|---:|---:|---|"
  target("point_read_1p", "lmdb", 1.5, "LMDB")
  if (have["point_read_2p", "dotdb"] && have["point_read_1p", "dotdb"]) {
    r = ops["point_read_2p", "dotdb"] / ops["point_read_1p", "dotdb"]
    printf "| point_read_2p | DotDB point_read_1p | %.2f | >= 1.8 | %s |\n", r, (r >= 1.8 ? "met" : "**missed**")
  } else print "| point_read_2p | DotDB point_read_1p | - | >= 1.8 | not measured |"
  target("get_json_1p", "sqlite", 3, "SQLite")
  target("load", "sqlite", 1.5, "SQLite")
  target("durable_put_8c", "redis", 1.0, "Redis appendfsync always")
  target("durable_put_8c", "sqlite", 3, "SQLite synchronous FULL")
  target("durable_put_8c", "lmdb", 10, "LMDB default sync")
  target("pipelined_put", "redis", 0.5, "Redis SET, 8 clients, 16 in flight")
  target("scan_filter", "sqlite", 5, "SQLite json_extract")
  target("group_by", "sqlite", 8, "SQLite json_extract")
  if (have["shm_bytes_per_doc", "dotdb"]) {
    r = exnum("shm_bytes_per_doc", "dotdb", "ratio_to_json") + 0
    printf "| shm_bytes_per_doc | JSON text size | %.2f | <= 1.3 | %s |\n", r, (r <= 1.3 ? "met" : "**missed**")
  } else print "| shm_bytes_per_doc | JSON text size | - | <= 1.3 | not measured |"
  if (have["put_1c", "dotdb"] && have["put_1c", "redis"])
    printf "| put_1c (no target: the single-client floor) | Redis -P 1 -c 1 | %.2f | - | floor |\n", ops["put_1c", "dotdb"] / ops["put_1c", "redis"]
  # the same answers from every system that ran a query
  for (k = 1; k <= nw; k++) {
    w = order[k]; c = ""
    for (m = 1; m <= n; m++) {
      s = sys[m]; v = exstr(w, s, "check")
      if (!have[w, s] || v == "") continue
      if (c == "") c = v
      else if (v != c) printf "\nWARNING: %s: %s answered %s, another system %s\n", w, s, v, c
    }
  }
}' "$results" >"$report"
echo
cat "$report"

if [[ -n $json ]]; then
  mkdir -p "$(dirname "$json")"
  {
    printf '{"records": %s, "seconds": %s, "rounds": %s, "date": "%s", "machine": "%s", "results": [\n' \
      "$records" "$seconds" "$rounds" "$date_utc" "$machine"
    awk '$1 == "RESULT" {
      extra = $0; sub(/^[^{]*/, "", extra); sub(/^\{/, "", extra); sub(/\}$/, "", extra)
      printf "%s  {\"workload\": \"%s\", \"system\": \"%s\", \"ops_per_sec\": %s, \"p50_us\": %s, \"p99_us\": %s%s%s}",
        (n++ ? ",\n" : ""), $2, $3, $4, $5, $6, (extra == "" ? "" : ", "), extra
    } END { print "" }' "$results"
    printf ']}\n'
  } >"$json"
  echo "bench: wrote $json"
fi

if [[ -n $chart ]]; then
  dat=$tmp/ratios.dat
  # One row per workload: label (with its target), the three ratios, and
  # the target of each ratio (NaN: none), drawn as a marker on its bar.
  awk '$1 == "RESULT" { ops[$2, $3] = $4; if (!($2 in seen)) { order[++n] = $2; seen[$2] = 1 } }
    END {
      split("lmdb sqlite redis", peer, " ")
      label["load"] = ">=1.5x SQLite"; want["load", 2] = 1.5
      label["point_read_1p"] = ">=1.5x LMDB"; want["point_read_1p", 1] = 1.5
      label["point_read_2p"] = ">=1.8x own 1p"
      label["get_json_1p"] = ">=3x SQLite"; want["get_json_1p", 2] = 3
      label["scan_filter"] = ">=5x SQLite"; want["scan_filter", 2] = 5
      label["group_by"] = ">=8x SQLite"; want["group_by", 2] = 8
      label["pipelined_put"] = ">=0.5x Redis"; want["pipelined_put", 3] = 0.5
      label["put_1c"] = "no target"
      label["durable_put_8c"] = ">=1x Redis,\\n3x SQLite, 10x LMDB"
      want["durable_put_8c", 1] = 10; want["durable_put_8c", 2] = 3; want["durable_put_8c", 3] = 1
      for (k = 1; k <= n; k++) {
        w = order[k]
        if (w == "shm_bytes_per_doc" || w == "disk_bytes" || !((w, "dotdb") in ops)) continue
        line = "\"" w (w in label ? "\\n(" label[w] ")" : "") "\""; any = 0
        for (m = 1; m <= 3; m++) {
          if (((w, peer[m]) in ops) && ops[w, peer[m]] > 0) { line = line " " ops[w, "dotdb"] / ops[w, peer[m]]; any = 1 }
          else line = line " NaN"
        }
        for (m = 1; m <= 3; m++)
          line = line " " (((w, m) in want) && ((w, peer[m]) in ops) ? want[w, m] : "NaN")
        if (any) print line
      }
    }' "$results" >"$dat"
  mkdir -p "$(dirname "$chart")"
  gnuplot <<EOF
set terminal pngcairo size 1200,600 font "DejaVu Sans,10" noenhanced
set output "$chart"
set title "DotDB throughput / peer throughput, same run ($records records, $date_utc)\n$machine"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.01:1000]
set ylabel "ratio (log scale; > 1: DotDB faster)"
set grid ytics
set xtics rotate by -35 nomirror
set bmargin 9
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
# clusters sit at x = 0, 1, ...; with three bars and gap 1 the bars are at -0.25, 0, +0.25
plot "$dat" using 2:xtic(1) title "vs LMDB" lc rgb "#4e79a7", \
     "" using 3 title "vs SQLite" lc rgb "#f28e2b", \
     "" using 4 title "vs Redis" lc rgb "#e15759", \
     "" using (\$0 - 0.25):5 with points pt 11 ps 2 lc rgb "black" title "target (the bar should reach it)", \
     "" using (\$0):6 with points pt 11 ps 2 lc rgb "black" notitle, \
     "" using (\$0 + 0.25):7 with points pt 11 ps 2 lc rgb "black" notitle
EOF
  echo "bench: drew $chart"
fi

if ((docs)); then
  perf=docs/PERFORMANCE.md
  if grep -q '<!-- bench:begin -->' "$perf" && grep -q '<!-- bench:end -->' "$perf"; then
    {
      sed -n '1,/<!-- bench:begin -->/p' "$perf"
      echo
      echo "Run of $date_utc on $machine; $records records, the median of $rounds rounds of ${seconds} s per timed workload"
      echo "(\`scripts/bench.sh $( ((quick)) && echo --quick) --docs\`)."
      echo
      cat "$report"
      echo
      sed -n '/<!-- bench:end -->/,$p' "$perf"
    } >"$tmp/perf.md"
    cp "$tmp/perf.md" "$perf"
    echo "bench: updated $perf"
  else
    echo "bench: $perf has no <!-- bench:begin --> / <!-- bench:end --> markers; not updated" >&2
  fi
  readme=README.md
  if grep -q '<!-- bench-chart:begin -->' "$readme" && grep -q '<!-- bench-chart:end -->' "$readme"; then
    {
      sed -n '1,/<!-- bench-chart:begin -->/p' "$readme"
      echo "![DotDB throughput divided by each peer's, same run](docs/bench-ratios.png)"
      echo
      echo "DotDB / peer throughput ratios measured on $date_utc on $machine, $records records"
      echo "(\`scripts/bench.sh $( ((quick)) && echo --quick) --docs\`; > 1 means DotDB is faster). Figures, targets,"
      echo "method and what each optimisation changed: [docs/PERFORMANCE.md](docs/PERFORMANCE.md)."
      sed -n '/<!-- bench-chart:end -->/,$p' "$readme"
    } >"$tmp/readme.md"
    cp "$tmp/readme.md" "$readme"
    echo "bench: updated $readme"
  else
    echo "bench: $readme has no <!-- bench-chart:begin --> / <!-- bench-chart:end --> markers; not updated" >&2
  fi
fi
exit $failed
