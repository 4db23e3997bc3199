#!/usr/bin/env bash
# Install dependencies, build with AddressSanitizer + UndefinedBehaviorSanitizer
# and -Werror, and run the whole test suite (unit, multi-process, crash and
# CLI tests) through ctest, which prints the summary line; then the lock-free
# stress program and the coordinator under ThreadSanitizer, the SPIN model of the protocol
# (scripts/model.sh), a short multi-process stress run (scripts/stress.sh), and
# the fuzz targets (clang + libFuzzer): every committed corpus input once,
# and a short fuzz of each.
#   scripts/test.sh            the whole suite
#   BUILD_DIR=... scripts/test.sh
#   FUZZ_SECONDS=N scripts/test.sh   fuzz each target N s (default 20; 0:
#                                    corpus replay only)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --fuzz
build=${BUILD_DIR:-build-test}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_SANITIZE=ON -DDOTDB_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

# halt_on_error keeps a sanitizer report from scrolling by unnoticed;
# detect_leaks stays on: every test process must free what it allocates.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
(cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 900) || status=1

# The lock-free snapshot/publish/reclaim protocol once more under
# ThreadSanitizer (threads on one mapping; TSan cannot see across processes).
tsan=${TSAN_BUILD_DIR:-build-tsan}
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_TSAN=ON -DDOTDB_WERROR=ON >/dev/null
cmake --build "$tsan" -j"$jobs" --target lockfree_stress >/dev/null
echo "ThreadSanitizer: lockfree_stress"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "$tsan/tests/lockfree_stress" 20000 || status=1
# ...and it must still catch a reclaim that ignores the reader slots.
if TSAN_OPTIONS=halt_on_error=1 "$tsan/tests/lockfree_stress" 20000 --bug ignore-slots >/dev/null 2>&1; then
  echo "FAIL: lockfree_stress --bug ignore-slots passed: the harness no longer catches early reclamation"
  status=1
else
  echo "PASS: lockfree_stress --bug ignore-slots fails, as it must"
fi

# put_many's parallel encoders (lib/read.c) under ThreadSanitizer.
cmake --build "$tsan" -j"$jobs" --target put_many_threads >/dev/null
echo "ThreadSanitizer: put_many_threads"
TSAN_OPTIONS=halt_on_error=1 "$tsan/tests/put_many_threads" "$PWD/$tsan/dotdbd" || status=1

# The coordinator itself under ThreadSanitizer (its loop thread, fsync
# workers, checkpoint writer and segment loaders) driving the multi-process
# tests and the crash matrix; any report is written to tsan_logs and fails
# the run (a SIGKILLed coordinator could not fail a test by its exit code).
cmake --build "$tsan" -j"$jobs" --target dotdbd >/dev/null
tsan_logs=$(mktemp -d "${TMPDIR:-/tmp}/dotdb-tsan.XXXXXX")
echo "ThreadSanitizer coordinator: test_multiprocess test_storage test_txn test_batches crash_matrix"
for t in test_multiprocess test_storage test_txn test_batches; do
  DOTDB_TEST_DOTDBD="$PWD/$tsan/dotdbd" TSAN_OPTIONS="halt_on_error=1:log_path=$tsan_logs/report" \
    "$build/tests/$t" --jobs 1 || status=1
done
TSAN_OPTIONS="halt_on_error=1:log_path=$tsan_logs/report" \
  "$build/tests/crash_matrix" --dotdbd "$PWD/$tsan/dotdbd" --rounds 10 --seed 7 || status=1
if compgen -G "$tsan_logs/report*" >/dev/null; then
  echo "FAIL: ThreadSanitizer reports from the coordinator:"; cat "$tsan_logs"/report*; status=1
else
  echo "PASS: no ThreadSanitizer report from the coordinator"
fi
rm -rf "$tsan_logs"

# The protocol model, checked exhaustively with SPIN, and its broken
# variants, each of which the checker must refute (docs/RELIABILITY.md).
bash scripts/model.sh || status=1

# Multi-process stress (16 readers, 3 writers, checksummed documents) on
# the sanitized build: 30 s in CI, 10 s otherwise; scripts/stress.sh alone
# runs 5 minutes.
stress_seconds=10
[[ "${CI:-}" == "true" ]] && stress_seconds=30
BUILD_DIR="$build" bash scripts/stress.sh "$stress_seconds" || status=1

# Benchmark smoke test: the drivers build and run (no timing threshold).
echo "Benchmark smoke: point_read_1p, 2000 records"
bash scripts/bench.sh --quick --only point_read_1p --records 2000 --seconds 0.2 || status=1
# Fuzzing: the regression replay of tests/fuzz/corpus/ plus FUZZ_SECONDS of
# fuzzing per target (7 targets: about 2.5 minutes, plus the clang build).
fuzz_seconds=${FUZZ_SECONDS:-20}
echo "Fuzzing: corpus replay + ${fuzz_seconds} s per target (scripts/fuzz.sh)"
FUZZ_BUILD_JOBS=$jobs bash scripts/fuzz.sh "$fuzz_seconds" || status=1
exit $status
