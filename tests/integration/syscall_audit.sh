#!/usr/bin/env bash
# Syscall audit: record the coordinator's file system calls (strace -f -y)
# during writes, WAL rotations, checkpoints and a collection drop, and
# check their order against what crash safety needs:
#   - every segment file is fdatasynced, and its directory fsynced, before
#     the manifest rename that makes it part of the database;
#   - the manifest's temporary file is fdatasynced before the rename, and
#     the system directory fsynced after it;
#   - WAL segments and old segment files are removed only after the new
#     manifest is durable (rename + directory fsync);
#   - a new collection directory is fsynced into its parent before the
#     manifest names it;
#   - a new WAL segment's directory entry is fsynced before any record is
#     written to it; metadata.json is replaced by tmp + fdatasync + rename
#     + directory fsync.
#   usage: syscall_audit.sh DOTDB DOTDBD
set -uo pipefail
DOTDB=$1
DOTDBD=$2
command -v strace >/dev/null || { echo "syscall_audit: strace is missing (scripts/setup.sh installs it)"; exit 1; }
TMP=$(mktemp -d /tmp/dotdb-audit-XXXXXX)
DB=$TMP/db
trap 'kill %1 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$DB/system"
printf '{"storage": {"segment_size": "1MB", "sync_mode": "full"}}\n' >"$DB/system/config.json"

# LeakSanitizer cannot run under ptrace: no leak check in this one
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -y -qq -o "$TMP/trace" \
    -e trace=openat,write,pwrite64,fdatasync,fsync,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat \
    "$DOTDBD" --db "$DB" --foreground 2>/dev/null &
for _ in $(seq 200); do "$DOTDB" --db "$DB" --no-autostart collections >/dev/null 2>&1 && break; sleep 0.05; done
pad=$(head -c 60000 /dev/zero | tr '\0' x)
for i in $(seq 1 40); do   # ~2.4 MB: the WAL rotates twice
  "$DOTDB" --db "$DB" --no-autostart put users "{\"id\":\"u$i\",\"pad\":\"$pad\"}" >/dev/null || exit 1
done
"$DOTDB" --db "$DB" --no-autostart put gone '{"id":"g"}' >/dev/null
"$DOTDB" --db "$DB" --no-autostart checkpoint >/dev/null || exit 1
"$DOTDB" --db "$DB" --no-autostart put users '{"id":"later"}' >/dev/null
"$DOTDB" --db "$DB" --no-autostart delete-collection gone >/dev/null
"$DOTDB" --db "$DB" --no-autostart compact >/dev/null || exit 1
"$DOTDB" --db "$DB" --no-autostart coordinator stop >/dev/null
wait

awk -v db="$DB" '
function path_of(s,   m) {   # the first <path> of a line
    if (match(s, /<[^>]*>/)) return substr(s, RSTART + 1, RLENGTH - 2)
    return ""
}
function arg_path(s, n,   rest, i, q) {  # the path of the n-th quoted name, under the fd before it
    rest = s
    for (i = 1; i <= n; i++) {
        if (!match(rest, /[0-9]+<[^>]*>, "[^"]*"/)) return ""
        q = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
    }
    sub(/^[0-9]+</, "", q); split(q, a, />, "/); sub(/"$/, "", a[2])
    return a[1] "/" a[2]
}
function dirname(p) { sub(/\/[^\/]*$/, "", p); return p }
function fail(msg) { print "FAIL - " msg; bad++ }
{ n = NR }
/fdatasync\(|fsync\(/ && / = 0/ { synced[path_of($0)] = NR; synced_at[path_of($0), NR] = 1 }
/openat\(/ && /O_CREAT/ && / = [0-9]+</ {
    p = arg_path($0, 1)
    if (p ~ /\/segment_[0-9]+\.db$/) { segs[++nsegs] = p; seg_line[p] = NR }
    if (p ~ /\/wal\/wal_[0-9]+\.log$/) { wals[++nwals] = p; wal_line[p] = NR }
}
/mkdirat\(/ && / = 0/ { p = arg_path($0, 1); if (p ~ /\/collections\/[^\/]+$/) { cdir[++ncdir] = p; cdir_line[p] = NR } }
/renameat/ && /"manifest.json.tmp"/ && / = 0/ { mrename[++nm] = NR }
/renameat/ && /"metadata.json.tmp"/ && / = 0/ { mdrename[++nmd] = NR; mdpath[nmd] = dirname(arg_path($0, 1)) }
/unlinkat\(/ && / = 0/ && !/AT_REMOVEDIR/ { p = arg_path($0, 1); if (p ~ /(wal_[0-9]+\.log|segment_[0-9]+\.db)$/) { unl[++nu] = p; unl_line[nu] = NR } }
/write\(|pwrite64\(/ { p = path_of($0); writes[p]++; if (writes[p] == 2) second_write[p] = NR }
{ line[NR] = $0 }
function first_sync_after(p, from,   i) { for (i = from + 1; i <= n; i++) if ((p, i) in synced_at) return i; return 0 }
END {
    if (nm < 2) fail("expected two manifest renames, saw " nm)
    for (k = 1; k <= nm; k++) {
        R = mrename[k]
        # the manifest tmp file synced before its rename, the directory after it
        tmp = db "/system/manifest.json.tmp"
        ok = 0; for (i = R - 1; i > 0 && i > (k > 1 ? mrename[k - 1] : 0); i--) if ((tmp, i) in synced_at) { ok = 1; break }
        if (!ok) fail("manifest.json.tmp not fdatasynced before rename " k)
        S = first_sync_after(db "/system", R)
        if (!S) fail("system directory not fsynced after manifest rename " k)
        else mdur[k] = S
        checked += 2
    }
    for (s = 1; s <= nsegs; s++) {
        p = segs[s]; L = seg_line[p]
        R = 0; for (k = 1; k <= nm; k++) if (mrename[k] > L) { R = mrename[k]; break }
        if (!R) { fail(p " created but never named by a manifest"); continue }
        F = first_sync_after(p, L)
        if (!F || F > R) fail(p " not fdatasynced before the manifest rename")
        D = first_sync_after(dirname(p), F)
        if (!D || D > R) fail(dirname(p) " not fsynced between " p "'"'"'s fdatasync and the manifest rename")
        checked += 2
    }
    for (c = 1; c <= ncdir; c++) {
        p = cdir[c]; L = cdir_line[p]
        R = 0; for (k = 1; k <= nm; k++) if (mrename[k] > L) { R = mrename[k]; break }
        D = first_sync_after(dirname(p), L)
        if (!D || (R && D > R)) fail("new collection directory " p " not fsynced into its parent before the manifest rename")
        checked++
    }
    for (w = 1; w <= nwals; w++) {
        p = wals[w]; L = wal_line[p]
        D = first_sync_after(dirname(p), L)
        if (!D) fail(p " created without a directory fsync")
        else if ((p in second_write) && second_write[p] < D) fail(p ": a record written before its directory entry was fsynced")
        checked++
    }
    for (u = 1; u <= nu; u++) {
        ok = 0; for (k = 1; k <= nm; k++) if (mdur[k] && mdur[k] < unl_line[u]) ok = 1
        if (!ok) fail(unl[u] " removed before any new manifest was durable")
        checked++
    }
    for (m = 1; m <= nmd; m++) {
        D = first_sync_after(mdpath[m], mdrename[m])
        if (!D) fail("metadata.json rename in " mdpath[m] " not followed by a directory fsync")
        checked++
    }
    if (nwals < 2) fail("expected WAL rotations, saw " nwals " segment creations")
    if (nu < 2) fail("expected WAL and segment removals, saw " nu)
    printf "syscall_audit: %d segment files, %d WAL segments, %d collection directories, %d manifest renames, %d removals; %d ordering checks\n", nsegs, nwals, ncdir, nm, nu, checked
    if (bad) { print checked - bad " passed, " bad " failed"; exit 1 }
    print checked " passed, 0 failed"
}' "$TMP/trace"
