#!/usr/bin/env bash
#
# cli_test.sh - end-to-end tests of the dotdb command-line tool.
#
#   bash cli_test.sh PATH_TO_dotdb PATH_TO_dotdbd
#
# Runs the real CLI against a real coordinator in a fresh mktemp -d data
# directory, checking each command's stdout, stderr and exit code, bad
# input included.  The coordinators it started are stopped on exit (trap).
# Prints one line per check and a final "N passed, M failed"; exits
# non-zero if anything failed.
#
# Exit codes under test: 0 ok, 1 error, 2 usage, 3 not found,
# 4 no coordinator, 5 invalid input.

set -u

if [ $# -ne 2 ]; then
    echo "usage: bash $0 PATH_TO_dotdb PATH_TO_dotdbd" >&2
    exit 2
fi
DOTDB=$(realpath "$1")
DOTDBD=$(realpath "$2")
# autostart looks next to the CLI first; this makes the pair explicit
export DOTDB_COORDINATOR="$DOTDBD"
unset DOTDB_DIR

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dotdb-cli-test.XXXXXX")
DB="$TMP/db"
EMPTY_DB="$TMP/never-started"
CFG_DB="$TMP/configured"
PASSED=0
FAILED=0

cleanup() {
    "$DOTDB" --db "$DB" coordinator stop >/dev/null 2>&1
    "$DOTDB" --db "$CFG_DB" coordinator stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

# ---- helpers ----------------------------------------------------------------

# run CMD...: runs it, leaving stdout in $OUT, stderr in $ERR, status in $RC.
run() {
    "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    RC=$?
    OUT=$(cat "$TMP/stdout")
    ERR=$(cat "$TMP/stderr")
}

# db ARGS...: the CLI on the test database.
db() {
    run "$DOTDB" --db "$DB" "$@"
}

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   - $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL - $1: $2"
    echo "       stdout: ${OUT:0:300}"
    echo "       stderr: ${ERR:0:300}"
}

# expect NAME RC [STDOUT]: last run exited RC (and printed exactly STDOUT).
expect() {
    if [ "$RC" != "$2" ]; then
        fail "$1" "exit $RC, expected $2"
    elif [ $# -ge 3 ] && [ "$OUT" != "$3" ]; then
        fail "$1" "stdout differs, expected: $3"
    else
        pass "$1"
    fi
}

# expect_err NAME RC TEXT: exited RC and stderr contains TEXT.
expect_err() {
    if [ "$RC" != "$2" ]; then
        fail "$1" "exit $RC, expected $2"
    elif [[ "$ERR" != *"$3"* ]]; then
        fail "$1" "stderr lacks: $3"
    else
        pass "$1"
    fi
}

# expect_match NAME RC REGEX: exited RC and stdout matches REGEX.
expect_match() {
    if [ "$RC" != "$2" ]; then
        fail "$1" "exit $RC, expected $2"
    elif ! [[ "$OUT" =~ $3 ]]; then
        fail "$1" "stdout does not match: $3"
    else
        pass "$1"
    fi
}

# expect_lines NAME N: stdout has exactly N lines.
expect_lines() {
    local n=0
    [ -n "$OUT" ] && n=$(printf '%s\n' "$OUT" | wc -l)
    if [ "$n" -eq "$2" ]; then
        pass "$1"
    else
        fail "$1" "$n lines on stdout, expected $2"
    fi
}

# expect_count NAME COLL N: the collection holds exactly N documents.
expect_count() {
    db count "$2"
    expect "$1" 0 "$3"
}

# ---- usage, help, exit 2 -------------------------------------------------

run "$DOTDB" --help
expect_err "--help exits 0" 0 ""
[[ "$OUT" == *"Exit codes"* ]] && pass "--help documents exit codes" || fail "--help documents exit codes" "no 'Exit codes' section"
run "$DOTDB" put --help
expect_match "put --help prints its usage" 0 "usage: dotdb .*put C JSON"
run "$DOTDB" --version
expect_match "--version" 0 "^dotdb [0-9]"
run "$DOTDB" --db "$DB" frob
expect_err "unknown command exits 2" 2 'unknown command "frob" (see dotdb --help)'
run "$DOTDB" --frob collections
expect_err "unknown global option exits 2" 2 'unknown option "--frob"'
run "$DOTDB"
expect_err "no command exits 2" 2 "no command"
db get users
expect_err "get with one argument exits 2 with usage" 2 "usage: dotdb"
db put users '{}' extra
expect_err "put with three arguments exits 2" 2 "usage: dotdb"
db list users --limit abc
expect_err "bad --limit exits 2" 2 "--limit"
db list users --limit -1
expect_err "negative --limit exits 2" 2 "--limit"
db get users x --frob
expect_err "unknown command option exits 2" 2 'unknown option "--frob"'
db coordinator frob
expect_err "unknown coordinator action exits 2" 2 "frob"

# ---- coordinator -----------------------------------------------------------

run "$DOTDB" --db "$EMPTY_DB" --no-autostart collections
expect_err "--no-autostart without a coordinator exits 4" 4 "dotdb: "
run "$DOTDB" --db "$EMPTY_DB" coordinator status
expect "status without a coordinator exits 4" 4 '{"running":false}'

db coordinator start
expect_match "coordinator start" 0 '^\{"running":true,"pid":[0-9]+\}$'
db coordinator status
expect_match "coordinator status while running" 0 '^\{"running":true,"pid":[0-9]+\}$'
PID=$(printf '%s' "$OUT" | sed 's/.*"pid":\([0-9]*\).*/\1/')

run timeout 20 "$DOTDBD" --db "$DB" --foreground
if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [[ "$ERR" == *"$PID"* ]]; then
    pass "second dotdbd on the same directory fails naming pid $PID"
else
    fail "second dotdbd on the same directory fails naming pid $PID" "exit $RC"
fi
db coordinator start
expect_err "coordinator start while running exits 1" 1 "$PID"

# ---- collections ---------------------------------------------------------

db create-collection users
expect "create-collection" 0 ""
db create-collection users
expect_err "create-collection twice exits 1" 1 "dotdb: create-collection: "
db collections
expect_match "collections prints a JSON array" 0 '^\[.*"users".*\]$'

LONG_NAME=$(printf 'a%.0s' $(seq 1 65))
OK_NAME=$(printf 'b%.0s' $(seq 1 64))
for name in "../x" "" "$LONG_NAME" ".hidden" "a/b"; do
    db create-collection "$name"
    expect_err "create-collection \"${name:0:12}\" is rejected with exit 5" 5 "dotdb: "
    db put "$name" '{"a":1}'
    expect_err "put into \"${name:0:12}\" is rejected with exit 5" 5 "dotdb: "
done
db create-collection "$OK_NAME"
expect "a 64-character collection name is accepted" 0 ""
db collections
[[ "$OUT" != *"$LONG_NAME"* && "$OUT" != *'..'* ]] && pass "no bad collection was created" || fail "no bad collection was created" "$OUT"

# ---- documents ---------------------------------------------------------------

db put users '{"id":"alice","name":"Alice","age":30,"tags":["a","b"],"prefs":{"theme":"dark"}}'
expect "put with id prints it" 0 '{"id":"alice"}'
db put users '{"name":"Bob","age":25}'
expect_match "put without id prints a generated id" 0 '^\{"id":"[^"]{24}"\}$'
BOB=$(printf '%s' "$OUT" | sed 's/{"id":"\(.*\)"}/\1/')
printf '{"id":"carol",\r\n "name":"Carol", "age": 30}\n' >"$TMP/carol.json"
db put users "@$TMP/carol.json"
expect "put @FILE" 0 '{"id":"carol"}'
db put users '{"id":"we\"ird\\id","name":"Q"}'
expect "put escapes the printed id" 0 '{"id":"we\"ird\\id"}'
db delete users 'we"ird\id'
expect "delete an id with quotes" 0 ""

db get users alice
expect_match "get prints the document on one line" 0 '^\{.*"id":"alice".*"name":"Alice".*\}$'
expect_lines "get prints one line" 1
db get users "$BOB"
expect_match "get a generated id" 0 '"name":"Bob"'
db get users carol
expect_lines "a multi-line @FILE document comes back on one line" 1
db get users nobody
expect_err "get a missing document exits 3" 3 'dotdb: get: document "nobody" not found in collection "users"'
db get nocoll x
expect_err "get from a missing collection exits 3" 3 "dotdb: get: "

db update users alice '{"name":"Alice","age":31,"tags":["a","b"],"prefs":{"theme":"dark"}}'
expect "update" 0 ""
db get users alice
expect_match "update replaced the document" 0 '"age":31'
db update users alice '{"id":"bob","name":"Alice"}'
expect_err "update with a different id in the document exits 5" 5 "dotdb: update: "
db update users nobody '{"name":"N"}'
expect_err "update a missing document exits 3" 3 'not found'
db update users alice '{"name":'
expect_err "update with malformed JSON exits 5" 5 "dotdb: update: "

expect_count "three documents so far" users 3

# ---- bad input: exit 5, nothing stored -------------------------------------

db put users '{"name":'
expect_err "put malformed JSON exits 5" 5 "dotdb: put: "
db put users 'not json at all'
expect_err "put non-JSON exits 5" 5 "dotdb: put: "
db put users '[1,2]'
expect_err "put a JSON array exits 5" 5 "dotdb: put: "
db put users '{"id":5,"name":"five"}'
expect_err "put a non-string id exits 5" 5 "dotdb: put: "
db put users '{"id":"","name":"empty"}'
expect_err "put an empty id exits 5" 5 "dotdb: put: "
awk 'BEGIN {
    x = sprintf("%1024s", ""); gsub(/ /, "x", x)
    printf "{\"id\":\"big\",\"s\":\""
    for (i = 0; i < 17 * 1024; i++) printf "%s", x
    printf "\"}\n"
}' >"$TMP/big.json"
db put users "@$TMP/big.json"
expect_err "put a 17 MiB document exits 5" 5 "dotdb: put: "
DEEP=$(awk 'BEGIN { for (i = 0; i < 150; i++) printf "{\"a\":"; printf "1"; for (i = 0; i < 150; i++) printf "}" }')
db put users "$DEEP"
expect_err "put a document nested 150 deep exits 5" 5 "dotdb: put: "
db put users "@$TMP/does-not-exist.json"
expect_err "put @FILE that does not exist exits 1" 1 "does-not-exist.json"
expect_count "bad input stored nothing" users 3

# ---- queries -------------------------------------------------------------------

db find users age 30
expect_match "find FIELD VALUE with a number" 0 '"id":"carol"'
expect_lines "find age 30 matches one" 1
db find users name Alice
expect_match "find FIELD VALUE with a bare string" 0 '"id":"alice"'
db find users name '"Alice"'
expect_match "find FIELD VALUE with a JSON string" 0 '"id":"alice"'
db find users '{"name":"Bob"}'
expect_match "find FILTER_JSON" 0 '"name":"Bob"'
db find users prefs.theme dark
expect_match "find on a dotted field" 0 '"id":"alice"'
db find users tags b
expect_match "find a value inside an array" 0 '"id":"alice"'
db find users name Nobody
expect "find without matches prints nothing" 0 ""
db find users
expect_lines "find without a filter prints every document" 3
db find users --limit 2
expect_lines "find --limit 2" 2
db find users --skip 1
expect_lines "find --skip 1" 2
db find users --limit 0
expect_lines "find --limit 0 prints nothing" 0
db find users name
expect_err "find with a non-object filter exits 2" 2 "dotdb: find: "
db find users '{"name":'
expect_err "find with a malformed filter exits 5" 5 "dotdb: find: "
db find nocoll name x
expect_err "find in a missing collection exits 3" 3 "dotdb: find: "

db count users
expect "count" 0 "3"
db count users '{"age":30}'
expect "count FILTER_JSON" 0 "1"
db count users name Bob
expect "count FIELD VALUE" 0 "1"

# ---- the query language ----------------------------------------------------

db find users '{"age":{"$gt":25}}' --sort '{"age":1}' --project '{"name":1}'
expect "find with \$gt, --sort and --project" 0 '{"id":"carol","name":"Carol"}
{"id":"alice","name":"Alice"}'
db find users '{"$or":[{"name":"Bob"},{"tags":{"$all":["a","b"]}}]}' --sort '{"name":-1}' --project '{"id":0,"name":1}'
expect "find with \$or, \$all and a descending sort" 0 '{"name":"Bob"}
{"name":"Alice"}'
db find users '{"name":{"$regex":"^al","$options":"i"}}' --project '{"name":1}'
expect "find with a case-insensitive \$regex" 0 '{"id":"alice","name":"Alice"}'
printf '{"age":1}\n' >"$TMP/sort.json"
db find users '{}' --sort "@$TMP/sort.json" --skip 1 --limit 1 --project '{"age":1}'
expect "find --sort @FILE --skip --limit" 0 '{"id":"carol","age":30}'
db find users '{"age":{"$gt":25}}' --explain
expect_match "find --explain states a full scan" 0 '"plan":"COLLSCAN".*"examined":3,"returned":2'
db find users '{"id":"alice"}' --explain
expect_match "find --explain by id uses the primary index" 0 '"plan":"IDLOOKUP"'
db find users '{"age":{"$gtx":1}}'
expect_err "an unknown operator is named, exit 5" 5 '$gtx'
db find users '{}' --sort '{"age":0}'
expect_err "a bad sort is refused" 5 "sort"
db find users '{}' --frob
expect_err "an unknown find option exits 2" 2 '--frob'
db count users '{"tags":{"$size":2}}'
expect "count with \$size" 0 "1"

db update users alice '{"$inc":{"age":1},"$push":{"tags":"c"}}'
expect "update with operators" 0 ""
db get users alice
expect "operators applied" 0 '{"id":"alice","name":"Alice","age":32,"tags":["a","b","c"],"prefs":{"theme":"dark"}}'
db update users alice '{"$inc":{"name":1}}'
expect_err "\$inc on a string exits 5 and names it" 5 '$inc'
db update users alice '{"$set":{"id":"x"}}'
expect_err "an update may not change the id" 5 'id'
db get users alice
expect_match "failed updates changed nothing" 0 '"age":32,'
db update users nobody '{"$set":{"a":1}}'
expect_err "update of a missing document exits 3" 3 "not found"
db update users dora '{"$set":{"name":"Dora","age":22}}' --upsert
expect "update --upsert inserts" 0 '{"upserted":true}'
db update-many users '{"age":{"$lt":30}}' '{"$set":{"young":true}}'
expect "update-many reports matched and modified" 0 '{"matched":2,"modified":2}'
db update-many users '{"age":{"$lt":30}}' '{"$set":{"young":true}}'
expect "update-many that changes nothing" 0 '{"matched":2,"modified":0}'
db count users '{"young":true}'
expect "update-many applied" 0 "2"
db aggregate users '[{"$match":{"age":{"$exists":true}}},{"$group":{"_id":"$young","n":{"$sum":1},"oldest":{"$max":"$age"}}},{"$sort":{"_id":1}}]'
expect "aggregate with \$match, \$group and \$sort" 0 '{"_id":null,"n":2,"oldest":32}
{"_id":true,"n":2,"oldest":25}'
db aggregate users '[{"$unwind":"$tags"},{"$count":"tags"}]'
expect "aggregate with \$unwind and \$count" 0 '{"tags":3}'
db aggregate users '[{"$frob":{}}]'
expect_err "an unknown stage is named" 5 '$frob'
db delete-many users '{"young":true}'
expect "delete-many reports the count" 0 '{"deleted":2}'
db count users
expect "delete-many deleted them" 0 "2"
db put users '{"name":"Bob","age":25}'
expect_match "put Bob back" 0 '"id"'
db delete users dora
expect_err "dora went with delete-many" 3 "not found"

db list users
expect_lines "list prints every document" 3
db list users --limit 1
expect_lines "list --limit 1" 1
db list users --limit=2
expect_lines "list --limit=2" 2

db stats
expect_match "stats" 0 '^\{.*\}$'
db stats users
expect_match "stats C" 0 '^\{.*"documents":3.*\}$'

# ---- import / export -------------------------------------------------------------

db create-collection imp
cat >"$TMP/bad.jsonl" <<'EOF'
{"id":"i1","n":1}
{"id":"i2","n":2}
{"id":"i3","n":
{"id":"i4","n":4}
{"id":"i5","n":5}
EOF
db import imp "$TMP/bad.jsonl"
expect_err "import with a bad line 3 names line 3" 5 "import: line 3:"
expect_count "nothing of the failed batch was stored" imp 0

# CRLF, blank lines, leading spaces and a last line without a newline
printf '{"id":"g1","n":1}\r\n\r\n  {"id":"g2","n":2}\n\n{"id":"g3","s":"x y"}' >"$TMP/good.jsonl"
db import imp "$TMP/good.jsonl"
expect "import CRLF, blank lines, no final newline" 0 '{"imported":3}'
expect_count "imported documents are stored" imp 3
printf '{"id":"s1"}\n{"id":"s2"}\n' | "$DOTDB" --db "$DB" import imp - >"$TMP/stdout" 2>"$TMP/stderr"
RC=$? OUT=$(cat "$TMP/stdout") ERR=$(cat "$TMP/stderr")
expect "import from stdin" 0 '{"imported":2}'
printf '{"id":"n1"}\n[{"id":"n2"}]\n' >"$TMP/array.jsonl"
db import imp "$TMP/array.jsonl"
expect_err "import rejects a line that is not an object" 5 "line 2"
db import imp "$TMP/missing.jsonl"
expect_err "import of a missing file exits 1" 1 "missing.jsonl"

# a large import spans several batches; the failure is in the third one
# (documents of ~300 bytes: the export below must overflow a pipe buffer)
awk 'BEGIN { pad = sprintf("%280s", ""); gsub(/ /, "p", pad)
             for (i = 1; i <= 2500; i++) printf "{\"id\":\"b%d\",\"n\":%d,\"pad\":\"%s\"}\n", i, i, pad
             print "{\"id\":\"bad\",\"n\":" }' >"$TMP/many.jsonl"
db create-collection many
db import many "$TMP/many.jsonl"
expect_err "import failing in a later batch names its line" 5 "import: line 2501:"
[[ "$OUT" == '{"imported":2000}' ]] && pass "import reports what was stored" || fail "import reports what was stored" "$OUT"
expect_count "batches before the failure stay stored" many 2000

db export users
expect_lines "export prints every document" 3
"$DOTDB" --db "$DB" export users >"$TMP/users.jsonl"
db import users_copy "$TMP/users.jsonl"
expect "import the export into another collection" 0 '{"imported":3}'
"$DOTDB" --db "$DB" export users | sort >"$TMP/a.jsonl"
"$DOTDB" --db "$DB" export users_copy | sort >"$TMP/b.jsonl"
if [ -s "$TMP/a.jsonl" ] && cmp -s "$TMP/a.jsonl" "$TMP/b.jsonl"; then
    pass "export | import round trip gives the same documents"
else
    OUT=$(diff "$TMP/a.jsonl" "$TMP/b.jsonl" | head -5) ERR=""
    fail "export | import round trip gives the same documents" "exports differ"
fi
"$DOTDB" --db "$DB" export many 2>"$TMP/stderr" | true
RC=${PIPESTATUS[0]} OUT="" ERR=$(cat "$TMP/stderr")
expect "export into a closed pipe stops with exit 1, quietly" 1 ""
[ -z "$ERR" ] && pass "a closed pipe is not reported as an error message" || fail "a closed pipe is not reported as an error message" "stderr not empty"

"$DOTDB" --db "$DB" get users carol >/dev/full 2>"$TMP/stderr"
RC=$? OUT="" ERR=$(cat "$TMP/stderr")
expect_err "a full stdout is an error" 1 "write error on standard output"
"$DOTDB" --db "$DB" collections >&- 2>"$TMP/stderr"
RC=$? OUT="" ERR=$(cat "$TMP/stderr")
expect_err "a closed stdout is an error" 1 "standard output is closed"

# ---- deletes ---------------------------------------------------------------------

db delete users alice
expect "delete" 0 ""
db get users alice
expect_err "a deleted document is gone" 3 "not found"
db delete users alice
expect_err "delete a missing document exits 3" 3 'document "alice" not found in collection "users"'
db delete-collection users_copy
expect "delete-collection" 0 ""
db delete-collection users_copy
expect_err "delete-collection twice exits 3" 3 "dotdb: delete-collection: "
db collections
[[ "$OUT" != *users_copy* ]] && pass "a deleted collection is not listed" || fail "a deleted collection is not listed" "$OUT"

# ---- data directory from the environment ------------------------------------

(cd "$TMP" && DOTDB_DIR="$DB" "$DOTDB" count users) >"$TMP/stdout" 2>"$TMP/stderr"
RC=$? OUT=$(cat "$TMP/stdout") ERR=$(cat "$TMP/stderr")
expect "DOTDB_DIR selects the data directory" 0 "2"

# ---- --config -----------------------------------------------------------------

printf '{"storage": {"sync_mode": "normal"}}\n' >"$TMP/config.json"
run "$DOTDB" --db "$CFG_DB" --config "$TMP/config.json" stats
expect_match "--config applies to the coordinator a command starts" 0 '"sync_mode":"normal"'
run "$DOTDB" --db "$TMP/cfg-missing" --config "$TMP/no-such-config.json" collections
if [ "$RC" -ne 0 ] && [[ "$ERR" == *no-such-config.json* ]]; then
    pass "a missing --config file is reported"
else
    fail "a missing --config file is reported" "exit $RC"
fi

# ---- stop ------------------------------------------------------------------------

db coordinator stop
expect "coordinator stop" 0 '{"running":false}'
db coordinator status
expect "status after stop exits 4" 4 '{"running":false}'
db --no-autostart count users
expect_err "--no-autostart after stop exits 4" 4 ""
db coordinator stop
expect_err "stop without a coordinator exits 4" 4 "no coordinator"
db count users
expect "autostart restarts the coordinator and the data survived" 0 "2"

# ---- storage: checkpoint, compact, check, backup, restore, recover ------------------

db checkpoint
expect_match "checkpoint prints its LSN" 0 '"checkpoint_lsn":[0-9]+'
db compact users
expect_match "compact C rewrites it" 0 '"collections_written":1'
db compact no_such
expect_err "compact of an unknown collection exits 3" 3 'does not exist'
db check
expect_match "check of an intact database exits 0" 0 'OK: [0-9]+ segments'
db backup "$TMP/bk1"
expect_match "backup prints a summary" 0 '"backup":"'
db backup "$TMP/bk1"
expect_err "backup into a non-empty directory exits 1" 1 'not empty'
db backup
expect_err "backup without DEST is a usage error" 2 'wrong number of arguments'
run "$DOTDB" restore "$TMP/bk1" --db "$TMP/restored"
expect_match "restore SRC --db DIR copies and checks" 0 'OK: [0-9]+ segments'
run "$DOTDB" --db "$TMP/restored" count users
expect "the restored database holds the documents" 0 "2"
run "$DOTDB" --db "$TMP/restored" coordinator stop
run "$DOTDB" restore "$TMP/bk1" --db "$TMP/restored"
expect_err "restore into a non-empty directory fails" 1 'not empty'
run "$DOTDB" restore "$TMP/no-such-backup" --db "$TMP/r2"
expect_err "restore of a missing backup fails" 1 'not a DotDB backup'
db recover
expect_err "recover refuses while the coordinator runs" 1 'stop it first'

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
