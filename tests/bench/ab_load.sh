#!/usr/bin/env bash
# ab_load.sh - alternate `load` runs of several DotDB builds in one loop,
# each into a fresh data directory, so drift on a shared machine hits them
# alike; how docs/PERFORMANCE.md compared each load change with the build
# before it.
#   tests/bench/ab_load.sh ROUNDS BUILD_DIR...
#   BUILD_DIR: a Release build with -DDOTDB_BENCH=ON (its dotdbd and
#   tests/bench/bench_dotdb are used together), e.g. build-bench of this
#   tree and of a `git worktree` at the commit before
#   RECORDS=1000000
# Prints one line per build: the documents/s of every round, then the
# median.
set -euo pipefail
rounds=${1:?usage: ab_load.sh ROUNDS BUILD_DIR...}; shift
(($# > 0)) || { echo "ab_load.sh: name at least one build directory" >&2; exit 2; }
records=${RECORDS:-1000000}
for b in "$@"; do
  [[ -x $b/dotdbd && -x $b/tests/bench/bench_dotdb ]] ||
    { echo "ab_load.sh: $b has no dotdbd and tests/bench/bench_dotdb" >&2; exit 2; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/dotdb-abload.XXXXXX")
cleanup() {
  for d in "$T"/d*; do [[ -d $d ]] && "$1/dotdb" --db "$d" coordinator stop >/dev/null 2>&1; done
  rm -rf "$T"
}
trap 'cleanup "$1"' EXIT
declare -A runs
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < $#; i++)); do
    b=${*:i+1:1}
    d=$T/d$r.$i
    out=$(DOTDB_COORDINATOR="$b/dotdbd" "$b/tests/bench/bench_dotdb" --workload load --dir "$d" \
      --records "$records")
    v=$(awk '$1 == "RESULT" {printf "%.0f", $4}' <<<"$out")
    [[ -n $v ]] || { echo "ab_load.sh: $b gave no result: $out" >&2; exit 1; }
    "$b/dotdb" --db "$d" coordinator stop >/dev/null 2>&1 || true
    rm -rf "$d"
    runs[$i]="${runs[$i]:-} $v"
  done
done
for ((i = 0; i < $#; i++)); do
  # shellcheck disable=SC2086 # the word list is the runs
  med=$(printf '%s\n' ${runs[$i]} | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  echo "${*:i+1:1}:${runs[$i]}  median $med"
done
