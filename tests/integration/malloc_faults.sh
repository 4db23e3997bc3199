#!/usr/bin/env bash
# Allocation failures in the coordinator: tests/fault/failmalloc.c makes
# the N-th heap allocation after a trigger fail (once, or from then on),
# for N = 0, 1, 2, ... while a client puts, counts, updates and
# checkpoints, until the operations complete without the fault firing.
# Each time: the coordinator must stay up (no crash, no abort), the
# failed operation gets an error, and once allocations work again every
# operation works; after a restart every acknowledged write is there.
# Runs a coordinator built without sanitizers (their allocator cannot be
# replaced), in build-plain/ unless DOTDB_PLAIN_BUILD says where.
#   usage: malloc_faults.sh DOTDB DOTDBD   (both ignored: the plain build is used)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pb=${DOTDB_PLAIN_BUILD:-$root/build-plain}
cmake -S "$root" -B "$pb" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_WERROR=ON >/dev/null || exit 1
cmake --build "$pb" -j2 --target dotdbd dotdb dotdb_failmalloc >/dev/null || exit 1
DOTDB=$pb/dotdb
DOTDBD=$pb/dotdbd
SHIM=$pb/tests/libdotdb_failmalloc.so
TMP=$(mktemp -d /tmp/dotdb-malloc-XXXXXX)
DB=$TMP/db
CTL=$TMP/ctl
pid=""
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$TMP"' EXIT
cli() { timeout 5 "$DOTDB" --db "$DB" --no-autostart "$@"; }  # a hang is a failure too
start() {  # $1: 1 = under the shim
  if [[ $1 == 1 ]]; then
    DOTDB_MALLOC_CTL=$CTL LD_PRELOAD=$SHIM "$DOTDBD" --db "$DB" --foreground 2>>"$TMP/dotdbd.log" &
  else
    "$DOTDBD" --db "$DB" --foreground 2>>"$TMP/dotdbd.log" &
  fi
  pid=$!
  for _ in $(seq 200); do cli collections >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "FAIL - the coordinator did not start"; cat "$TMP/dotdbd.log"; exit 1
}
passed=0 failed=0 runs=0 fired_total=0
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
acked=()
start 1
cli put users '{"id":"seed","v":0}' >/dev/null || { echo "FAIL - first put"; exit 1; }
acked+=(seed)
for mode in once persistent; do
  count=1; [[ $mode == persistent ]] && count=0
  for n in $(seq 0 400); do
    rm -f "$CTL.fired"
    echo "$n $count" >"$CTL"
    id="$mode-$n"
    put_rc=0; cli put users "{\"id\":\"$id\",\"v\":$n,\"tags\":[\"a\",\"b\"]}" >/dev/null 2>"$TMP/err" || put_rc=$?
    cli count users '{"v":{"$gte":0}}' >/dev/null 2>&1
    cli update-many users "{\"id\":\"$id\"}" '{"$inc":{"v":1000}}' >/dev/null 2>&1
    (( n % 10 == 0 )) && cli checkpoint >/dev/null 2>&1
    rm -f "$CTL"
    runs=$((runs + 1))
    fired=0; [[ -f $CTL.fired ]] && fired=$(wc -c <"$CTL.fired")
    fired_total=$((fired_total + fired))
    if ! kill -0 "$pid" 2>/dev/null; then
      fail "$mode N=$n: the coordinator died on a failed allocation"; tail -5 "$TMP/dotdbd.log"; break 2
    fi
    if [[ $put_rc -eq 0 ]]; then
      acked+=("$id")
    elif ! grep -q "dotdb: " "$TMP/err"; then
      fail "$mode N=$n: the failed put has no message"
    fi
    # allocations work again: so must every operation
    if cli put users "{\"id\":\"after-$id\",\"v\":1}" >/dev/null 2>"$TMP/err"; then
      acked+=("after-$id")
    else
      fail "$mode N=$n: a put after the fault failed: $(cat "$TMP/err")"
    fi
    [[ $fired -eq 0 ]] && break
  done
done
cli coordinator stop >/dev/null
wait "$pid"; st=$?; pid=""
[[ $st -eq 0 ]] || fail "clean stop after the faults: exit status $st"
start 0
missing=0
for id in "${acked[@]}"; do cli get users "$id" >/dev/null 2>&1 || { missing=$((missing + 1)); fail "acknowledged $id lost"; }; done
cli coordinator stop >/dev/null; wait "$pid"; pid=""
[[ $failed -eq 0 ]] && passed=1
echo "malloc_faults: $runs runs, $fired_total allocations failed, ${#acked[@]} acknowledged writes checked, $missing lost"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
