#!/usr/bin/env bash
# Check the model of the snapshot, publish and reclamation protocol
# (tests/model/protocol.pml) with the SPIN model checker:
#   - the protocol as built must pass an exhaustive search (no assertion
#     violation, no invalid end state, search completed), with 2 readers
#     taking 2 snapshots each, with a checkpoint pin, and on an x86-TSO
#     store-buffer model with the fences that seq_cst compiles to;
#   - each deliberately broken variant must fail: the checker has to find
#     a counterexample (shortest first: breadth-first search).
# Installs spin (scripts/setup.sh --model) when it is missing.
#   scripts/model.sh                  all runs (under a minute)
#   MODEL_TRAILS=DIR scripts/model.sh also keep each counterexample in DIR
set -euo pipefail
cd "$(dirname "$0")/.."

command -v spin >/dev/null || scripts/setup.sh --model
model=$PWD/tests/model/protocol.pml
work=$(mktemp -d /tmp/dotdb-model-XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
n_pass=0
n_fail=0

# build NAME SPIN-FLAGS... : generate and compile the verifier in $work/NAME
build() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  cp "$model" "$work/$name/protocol.pml"
  (cd "$work/$name" && spin -a "$@" protocol.pml >/dev/null)
}

# must_pass NAME SPIN-FLAGS... : exhaustive depth-first search, no error
must_pass() {
  local name=$1
  build "$@"
  local dir="$work/$name"
  (cd "$dir" && gcc -O2 -w -DSAFETY -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c)
  local t0=$SECONDS
  (cd "$dir" && ./pan -m200000 >out 2>&1) || true
  local states errors
  states=$(awk '/states, stored/ {print $1; exit}' "$dir/out")
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/out" | head -1)
  if [[ "$errors" == "0" ]] && ! grep -qE "MEMLIM|Search not completed|max search depth too small|out of memory" "$dir/out"; then
    printf 'PASS: %-34s exhaustive, %s states, %ss\n' "$name" "$states" $((SECONDS - t0))
    n_pass=$((n_pass + 1))
  else
    printf 'FAIL: %-34s must pass but did not:\n' "$name"
    grep -vE '^Depth=' "$dir/out" | head -20
    n_fail=$((n_fail + 1))
    status=1
  fi
}

# must_fail NAME SPIN-FLAGS... : the checker must find a counterexample
must_fail() {
  local name=$1
  build "$@"
  local dir="$work/$name"
  (cd "$dir" && gcc -O0 -w -DSAFETY -DBFS -DMEMLIM=4096 -o pan pan.c)
  (cd "$dir" && ./pan >out 2>&1) || true
  local what
  what=$(grep -m1 -E 'assertion violated|invalid end state' "$dir/out" | sed 's/^pan:1: //' || true)
  if grep -q "errors: 1" "$dir/out" && [[ -f "$dir/protocol.pml.trail" ]]; then
    printf 'PASS: %-34s caught: %s\n' "$name" "$what"
    n_pass=$((n_pass + 1))
    if [[ -n "${MODEL_TRAILS:-}" ]]; then
      mkdir -p "$MODEL_TRAILS"
      shift
      (cd "$dir" && spin -t -p "$@" protocol.pml) >"$MODEL_TRAILS/$name.txt" 2>&1 || true
    fi
  else
    printf 'FAIL: %-34s the checker found no counterexample\n' "$name"
    grep -vE '^Depth=' "$dir/out" | head -20
    n_fail=$((n_fail + 1))
    status=1
  fi
}

echo "SPIN: $(spin -V)"
# The protocol as built.
must_pass protocol-2readers-2snapshots -DNR=2 -DSNAPS=2
must_pass protocol-checkpoint-pin -DNR=1 -DSNAPS=2 -DCKPT
must_pass protocol-x86-tso-with-fences -DNR=2 -DSNAPS=1 -DTSO_SLOT -DTSO_COMMIT -DFENCE
# Deliberate bugs the checker must catch.
must_fail broken-no-validate -DNR=2 -DSNAPS=2 -DNO_VALIDATE
must_fail broken-slot-store-release -DNR=2 -DSNAPS=2 -DTSO_SLOT
must_fail broken-commit-store-release -DNR=2 -DSNAPS=2 -DTSO_COMMIT
must_fail broken-reclaim-at-equal-tag -DNR=2 -DSNAPS=2 -DRECLAIM_LE
must_fail broken-reclaim-ignores-pin -DNR=1 -DSNAPS=2 -DCKPT -DIGNORE_PIN
echo "model: $n_pass passed, $n_fail failed"
exit $status
