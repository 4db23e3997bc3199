#!/usr/bin/env bash
# The crash matrix: kill -9 of the coordinator at random points of a mixed
# multi-process workload (writers committing 4-document transactions, a
# process creating and dropping collections, back-to-back checkpoints and
# compactions, readers checking their snapshots, clients killed in the
# middle of a snapshot, a batch and a cursor), then a restart and a check of
# the recovered state against the writers' own record of acknowledgements.
# See tests/crash/crash_matrix.c for what is checked.
#
#   scripts/crash.sh [KILL_POINTS] [SEED]      default 200 kill points
#
# CI runs 20 kill points through ctest (test crash_matrix).
set -euo pipefail
cd "$(dirname "$0")/.."
points=${1:-200}
seed=${2:-$(date +%s)}
[[ $points =~ ^[1-9][0-9]*$ ]] || { echo "crash.sh: KILL_POINTS must be a positive integer" >&2; exit 2; }
scripts/setup.sh
build=${BUILD_DIR:-build-crash}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target dotdbd crash_matrix >/dev/null
echo "crash.sh: $points kill points, seed $seed"
"$build/tests/crash_matrix" --dotdbd "$build/dotdbd" --rounds "$points" --seed "$seed"

# Simulated power loss: every I/O call of a short workload as a crash
# point, in the drop, garbage and mixed modes (CI samples every ~40th).
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target test_powerloss dotdb_powerloss >/dev/null
echo "crash.sh: power loss at every I/O call of the workload"
set -o pipefail
DOTDB_POWERLOSS_STEP=1 "$build/tests/test_powerloss" --jobs 1 --verbose 2>&1 | grep -E "power loss|Synthesis|FAIL|Assert|^\[----\] "
