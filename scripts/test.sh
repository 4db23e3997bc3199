#!/usr/bin/env bash
# Install dependencies, build with AddressSanitizer + UndefinedBehaviorSanitizer
# and -Werror, and run the whole test suite (unit, multi-process, crash and
# CLI tests) through ctest, which prints the summary line.
#   scripts/test.sh            the whole suite
#   BUILD_DIR=... scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
build=${BUILD_DIR:-build-test}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_SANITIZE=ON -DDOTDB_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

# halt_on_error keeps a sanitizer report from scrolling by unnoticed;
# detect_leaks stays on: every test process must free what it allocates.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
cd "$build"
ctest --output-on-failure -j"$jobs" --timeout 900
