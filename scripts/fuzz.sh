#!/usr/bin/env bash
# Build the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan +
# libFuzzer) into build-fuzz/ and run each of them.
#
#   scripts/fuzz.sh [SECONDS]   replay each target's committed corpus once,
#                               then fuzz it for SECONDS (default 60)
#   scripts/fuzz.sh 0           replay only (the regression mode: every
#                               committed input run once, -runs=0)
#   FUZZ_TARGETS="fuzz_wal fuzz_config" scripts/fuzz.sh 30   some targets only
#   FUZZ_BUILD_DIR=...          build directory (default build-fuzz)
#
# The committed corpus (tests/fuzz/corpus/<target>/) is never written by a
# run: each target fuzzes a temporary copy, so the corpus grows only by
# hand.  Per target the script prints the replay verdict, the runs, runs per
# second, coverage and how many new inputs the run found; it exits non-zero
# if any target crashed, leaked, hit a sanitizer report or failed one of its
# oracles (FUZZ_CHECK), in the replay or in the fuzzing.  Logs:
# build-fuzz/fuzz-logs/<target>.log; crash inputs: build-fuzz/fuzz-artifacts/.
#
# When a target finds a crash (procedure; every crash input becomes a
# regression input):
#   1. Reproduce it: build-fuzz/tests/fuzz/<target> build-fuzz/fuzz-artifacts/<target>-crash-<sha>
#      (FUZZ_DEBUG=1 makes fuzz_wal say what it built).  Optionally shrink
#      it: <target> -minimize_crash=1 -runs=20000 -exact_artifact_path=/tmp/min <crash file>
#   2. Fix the bug in the library / coordinator code (keep the fix minimal;
#      if the harness was wrong, fix the harness) until step 1 runs clean.
#   3. Add the input to the corpus under a name that says what it found:
#        cp <crash file> tests/fuzz/corpus/<target>/regression-<what>
#      and commit it together with the fix, naming the bug in the message.
#   4. `scripts/fuzz.sh 0` replays every corpus, regression inputs included;
#      scripts/test.sh runs that replay plus a short fuzz of every target.
# Seed inputs (seed-*) come from tests/fuzz/gen_corpus.c (run by hand:
# build-fuzz/tests/fuzz/gen_corpus tests/fuzz/corpus).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
build=${FUZZ_BUILD_DIR:-build-fuzz}
all_targets="fuzz_codec fuzz_json fuzz_query fuzz_engine fuzz_wal fuzz_segment fuzz_config"
targets=${FUZZ_TARGETS:-$all_targets}

# Inputs longer than this are not generated (per target: what a unit of its
# format needs; WAL and segment inputs hold several records or blocks).
max_len() {
  case "$1" in
    fuzz_engine) echo 8192 ;;
    fuzz_wal | fuzz_segment) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found: run scripts/setup.sh --fuzz" >&2
  exit 1
fi
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
  >"$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz: clang cannot link libFuzzer (install libclang-rt-14-dev: scripts/setup.sh --fuzz)" >&2
  cat "$probe/err" >&2
  rm -rf "$probe"
  exit 1
fi
rm -rf "$probe"

jobs=${FUZZ_BUILD_JOBS:-2}
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_FUZZ=ON \
  -DDOTDB_TESTS=OFF -DDOTDB_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs" --target dotdb_fuzz_all >/dev/null

logs="$build/fuzz-logs"
artifacts="$build/fuzz-artifacts"
mkdir -p "$logs" "$artifacts"
# tmpfs when there is one: the WAL and segment targets fsync on every input.
if [[ -d /dev/shm && -w /dev/shm ]]; then work=$(mktemp -d -p /dev/shm dotdb-fuzz.XXXXXX); else work=$(mktemp -d); fi
trap 'rm -rf "$work"' EXIT
# Harness files (WAL and segment directories) go under the work directory,
# so a target that aborts leaves nothing behind.
mkdir -p "$work/tmp"
export FUZZ_TMPDIR="$work/tmp"
# detect_leaks: every error path must free what it built.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

status=0
printf '%-13s %-7s %-7s %10s %9s %6s %s\n' target replay fuzz runs exec/s cov "corpus (seeds -> after)"
for t in $targets; do
  bin="$build/tests/fuzz/$t"
  corpus="tests/fuzz/corpus/$t"
  log="$logs/$t.log"
  len=$(max_len "$t")
  [[ -x "$bin" && -d "$corpus" ]] || { echo "fuzz: no target or corpus for $t" >&2; status=1; continue; }
  seeds=$(find "$corpus" -type f | wc -l)
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")

  replay=ok
  if ! "$bin" -runs=0 -max_len="$len" -timeout=25 "$corpus" >"$log" 2>&1; then
    replay=FAILED
    status=1
  fi
  fuzz=-
  runs=- rate=- cov=- after=-
  if ((seconds > 0)); then
    mkdir -p "$work/$t"
    cp "$corpus"/* "$work/$t"/
    fuzz=ok
    if ! "$bin" -max_total_time="$seconds" -max_len="$len" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=512 \
      "${dict[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$work/$t" >>"$log" 2>&1; then
      fuzz=CRASHED
      status=1
    fi
    runs=$(stat_of number_of_executed_units "$log")
    rate=$(stat_of average_exec_per_sec "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    after=$(find "$work/$t" -type f | wc -l)
  fi
  printf '%-13s %-7s %-7s %10s %9s %6s %s -> %s\n' "$t" "$replay" "$fuzz" "${runs:--}" \
    "${rate:--}" "${cov:--}" "$seeds" "$after"
  if [[ $replay != ok || $fuzz == CRASHED ]]; then
    grep -E 'ERROR|SUMMARY|fuzz oracle failed|runtime error|Test unit written' "$log" | head -5 | sed 's/^/    /'
  fi
done
if ((status != 0)); then
  echo "fuzz: FAILED (logs in $logs, inputs in $artifacts; see the top of scripts/fuzz.sh)"
else
  echo "fuzz: all targets clean"
fi
exit $status
