#!/usr/bin/env bash
# The coordinator under valgrind (memcheck): start, load, queries, an
# update-many, a checkpoint, a restart that loads the checkpoint, a clean
# stop.  Fails on any memory error or a definite leak in dotdbd.  The
# sanitizer build cannot run under valgrind, so this builds its own plain
# dotdbd (DOTDB_PLAIN_BUILD, default build-plain) unless told where
# one is with DOTDBD_PLAIN.
#   usage: valgrind_coordinator.sh DOTDB DOTDBD
set -uo pipefail
DOTDB=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind_coordinator: valgrind is missing (scripts/setup.sh installs it)"; exit 1; }
DOTDBD=${DOTDBD_PLAIN:-}
if [[ -z $DOTDBD ]]; then
  vb=${DOTDB_PLAIN_BUILD:-$root/build-plain}   # shared with malloc_faults.sh
  cmake -S "$root" -B "$vb" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_WERROR=ON >/dev/null || exit 1
  cmake --build "$vb" -j2 --target dotdbd dotdb >/dev/null || exit 1
  DOTDBD=$vb/dotdbd
  DOTDB=$vb/dotdb
fi
TMP=$(mktemp -d /tmp/dotdb-vg-XXXXXX)
DB=$TMP/db
trap 'rm -rf "$TMP"' EXIT
failed=0
run_under_valgrind() {   # $1: label; then the client commands run while it serves
  local label=$1; shift
  valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      --track-fds=no --log-file="$TMP/vg-$label.log" "$DOTDBD" --db "$DB" --foreground 2>/dev/null &
  local pid=$!
  for _ in $(seq 600); do "$DOTDB" --db "$DB" --no-autostart collections >/dev/null 2>&1 && break; sleep 0.1; done
  "$@"
  "$DOTDB" --db "$DB" --no-autostart coordinator stop >/dev/null
  wait "$pid"; local st=$?
  # the summary line proves valgrind ran the coordinator to its end
  if [[ $st -ne 0 ]] || ! grep -q "ERROR SUMMARY: 0 errors" "$TMP/vg-$label.log" ||
     grep -q "definitely lost: [1-9]" "$TMP/vg-$label.log"; then
    echo "FAIL - $label: valgrind (exit $st)"; cat "$TMP/vg-$label.log"; failed=$((failed + 1))
  else
    echo "ok   - $label: valgrind clean"
  fi
}
workload() {
  for i in $(seq 1 300); do echo "{\"id\":\"u$i\",\"age\":$((i % 80)),\"city\":\"c$((i % 5))\",\"tags\":[\"t$((i % 3))\"]}"; done >"$TMP/users.jsonl"
  "$DOTDB" --db "$DB" --no-autostart import users "$TMP/users.jsonl" >/dev/null
  "$DOTDB" --db "$DB" --no-autostart count users '{"age":{"$gt":25}}' >/dev/null
  "$DOTDB" --db "$DB" --no-autostart find users '{"tags":"t1"}' --sort '{"age":-1}' --limit 5 >/dev/null
  "$DOTDB" --db "$DB" --no-autostart aggregate users '[{"$group":{"_id":"$city","n":{"$sum":1}}}]' >/dev/null
  "$DOTDB" --db "$DB" --no-autostart update-many users '{"age":{"$lt":10}}' '{"$inc":{"age":1}}' >/dev/null
  "$DOTDB" --db "$DB" --no-autostart delete users u1 >/dev/null
  "$DOTDB" --db "$DB" --no-autostart checkpoint >/dev/null
  "$DOTDB" --db "$DB" --no-autostart put other '{"id":"x"}' >/dev/null
}
reload() {
  local n
  n=$("$DOTDB" --db "$DB" --no-autostart count users)
  [[ $n == 299 ]] || { echo "FAIL - restart: count $n, want 299"; failed=$((failed + 1)); }
  "$DOTDB" --db "$DB" --no-autostart compact >/dev/null
}
run_under_valgrind "start-load-query-checkpoint-stop" workload
run_under_valgrind "restart-from-checkpoint-compact-stop" reload
echo "$((2 - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
