#!/usr/bin/env bash
# Multi-process stress run of the lock-free read protocol
# (tests/stress/stress_mp.c): a coordinator, 16 reader processes and 3
# writer processes for SECONDS (default 300); every read verifies a
# checksum stored in the document, values never go backwards within or
# across snapshots, and at the end (and after a restart) every
# acknowledged write is there.  ThreadSanitizer cannot see across
# processes: this is the check that can.
#   scripts/stress.sh [SECONDS]
#   BUILD_DIR=build-test scripts/stress.sh 30   reuse an existing build
#                                               (scripts/test.sh: the ASan one)
#   STRESS_READERS=N STRESS_WRITERS=N           other process counts
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
build=${BUILD_DIR:-build-stress}
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  scripts/setup.sh
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_WERROR=ON >/dev/null
fi
# -j2 at most: the machine's two cores are shared.
cmake --build "$build" -j2 --target dotdb_stress >/dev/null
echo "Stress: ${STRESS_READERS:-16} readers, ${STRESS_WRITERS:-3} writers, ${seconds} s"
exec "$build/tests/dotdb_stress" --seconds "$seconds" --readers "${STRESS_READERS:-16}" \
  --writers "${STRESS_WRITERS:-3}"
