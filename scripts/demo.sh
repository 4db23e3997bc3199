#!/usr/bin/env bash
# Install dependencies, build DotDB, start a coordinator on ./dotdb-data,
# run every CLI command on a small example, show the output, stop.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDOTDB_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "built: build/dotdbd build/dotdb build/libdotdb-shm.so build/libdotdb-shm.a"

DB=./dotdb-data
dotdb() { build/dotdb --db "$DB" "$@"; }
show() { printf '\n$ dotdb %s\n' "$*"; dotdb "$@"; }
# Shown even though it fails: the exit status is printed instead of stopping.
show_fail() { printf '\n$ dotdb %s\n' "$*"; set +e; dotdb "$@"; echo "(exit status $?)"; set -e; }

if [[ $(build/dotdb --db "$DB" coordinator status 2>/dev/null) == *'"running":true'* ]]; then
  dotdb coordinator stop >/dev/null
fi
trap 'dotdb coordinator stop >/dev/null 2>&1 || true' EXIT

show coordinator start
show coordinator status
dotdb delete-collection users >/dev/null 2>&1 || true
dotdb delete-collection archive >/dev/null 2>&1 || true
show create-collection users
show put users '{"id": "user_123", "name": "Alice Johnson", "email": "alice@example.com", "age": 30, "preferences": {"theme": "dark", "notifications": true}, "tags": ["developer", "admin"]}'
show put users '{"name": "Bob Smith", "email": "bob@example.com", "age": 25, "preferences": {"theme": "light", "notifications": false}, "tags": ["developer"]}'
show put users '{"id": "user_789", "name": "Carol White", "age": 41, "preferences": {"theme": "dark", "notifications": false}, "tags": ["manager"]}'
show get users user_123
show update users user_123 '{"name": "Alice Johnson", "email": "alice@example.com", "age": 31, "preferences": {"theme": "dark", "notifications": true}, "tags": ["developer", "admin"]}'
show get users user_123
show find users age 31
show find users tags developer
show find users '{"preferences.theme": "dark"}'
show count users
show count users '{"tags": "developer"}'
show find users '{"age": {"$gt": 26}}' --sort '{"age": -1}' --project '{"name": 1, "age": 1}'
show find users '{"$or": [{"tags": "manager"}, {"preferences.notifications": true}]}' --project '{"name": 1}'
show find users '{"age": {"$gt": 26}}' --explain
show update users user_123 '{"$inc": {"age": 1}, "$addToSet": {"tags": "lead"}, "$currentDate": {"updated": true}}'
show get users user_123
show update-many users '{"tags": "developer"}' '{"$set": {"team": "platform"}}'
show update users user_999 '{"$set": {"name": "Dan Brown", "age": 35}}' --upsert
show aggregate users '[{"$group": {"_id": "$preferences.theme", "users": {"$sum": 1}, "avg_age": {"$avg": "$age"}}}, {"$sort": {"_id": 1}}]'
show aggregate users '[{"$unwind": "$tags"}, {"$sortByCount": "$tags"}]'
show delete-many users '{"name": {"$regex": "^dan", "$options": "i"}}'
show_fail find users '{"age": {"$gtx": 3}}'
show_fail update users user_123 '{"$inc": {"name": 1}}'
show list users --limit 2
show collections
printf '{"id":"a1","event":"login","user":"user_123"}\n{"id":"a2","event":"logout","user":"user_123"}\n' > "$DB/../demo-archive.jsonl"
show import archive "$DB/../demo-archive.jsonl"
rm -f "$DB/../demo-archive.jsonl"
show export archive
show delete users user_789
show_fail get users user_789
show_fail put users '{"name": "broken"'
show stats users
show delete-collection archive
show collections
show coordinator stop
trap - EXIT
echo
echo "demo finished: the data stays in $DB (remove it with: rm -rf $DB)"
