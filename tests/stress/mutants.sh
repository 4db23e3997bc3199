#!/usr/bin/env bash
# Deliberate bugs in the lock-free protocol, one at a time, in a copy of the
# source tree: each must make the ThreadSanitizer build of lockfree_stress
# fail (a TSan report or a failed document check).  Shows that the harness
# has teeth; not part of scripts/test.sh (one TSan rebuild per mutant, a few
# minutes in all).  The seq_cst -> release weakenings are not here: TSan
# does not model store buffering, so tests/model/protocol.pml (TSO_SLOT,
# TSO_COMMIT) is the check for those.
#   tests/stress/mutants.sh             every mutant
#   tests/stress/mutants.sh NAME...     only these
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dotdb-mutants-XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work")
batches=${MUTANT_BATCHES:-20000}

# name | file | original text | mutated text
mutants=(
  "slot-word-relaxed|shm/index.c|atomic_store_explicit(&t->slots[i], w, memory_order_release);|atomic_store_explicit(&t->slots[i], w, memory_order_relaxed);"
  "head-word-relaxed|shm/index.c|atomic_store_explicit(&t->slots[slot], w, memory_order_release);|atomic_store_explicit(&t->slots[slot], w, memory_order_relaxed);"
  "grown-table-relaxed|shm/index.c|atomic_store_explicit(&c->table_off, noff, memory_order_release);|atomic_store_explicit(&c->table_off, noff, memory_order_relaxed);"
  "catalog-relaxed|shm/index.c|atomic_store_explicit(&h->catalog_off, new_off, memory_order_release);|atomic_store_explicit(&h->catalog_off, new_off, memory_order_relaxed);"
  "reader-word-load-relaxed|shm/snap.h|uint64_t w = atomic_load_explicit(&((shm_table *)t)->slots[i], memory_order_acquire);|uint64_t w = atomic_load_explicit(\&((shm_table *)t)->slots[i], memory_order_relaxed);"
  "snapshot-end-relaxed|shm/readers.h|atomic_store_explicit(&s->snapshot_lsn, 0, memory_order_release);|atomic_store_explicit(&s->snapshot_lsn, 0, memory_order_relaxed);"
  "reclaim-at-equal-tag|shm/region.c|if (!(it->tag < min_active && it->tag < commit))|if (!(it->tag <= min_active \&\& it->tag < commit))"
  "retire-tag-too-old|shm/region.c|uint64_t tag = atomic_load_explicit(&region_header(r)->commit_lsn, memory_order_seq_cst);|uint64_t tag = atomic_load_explicit(\&region_header(r)->commit_lsn, memory_order_seq_cst) - 1;"
  "tombstone-removed-early|coordinator/engine.c|if (!(d->lsn <= min_active && d->lsn <= e->published))|if (!(d->lsn <= min_active + 1 \&\& d->lsn <= e->published))"
)

cmake -S "$work" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTDB_TSAN=ON -DDOTDB_WERROR=ON >/dev/null
caught=0
missed=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file from to <<<"$m"
  if (($# > 0)) && ! printf '%s\n' "$@" | grep -qx "$name"; then
    continue
  fi
  cp "$root/$file" "$work/$file"
  FROM="$from" TO="$to" python3 - "$work/$file" <<'EOF'
import os, sys
p = sys.argv[1]
s = open(p).read()
f, t = os.environ["FROM"], os.environ["TO"].replace("\\&", "&")
if s.count(f) != 1:
    sys.exit("mutant: %r found %d times in %s" % (f, s.count(f), p))
open(p, "w").write(s.replace(f, t))
EOF
  cmake --build "$work/build" -j2 --target lockfree_stress >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
  rc=0
  TSAN_OPTIONS=halt_on_error=1 timeout 600 "$work/build/tests/lockfree_stress" "$batches" >"$work/run.log" 2>&1 || rc=$?
  first=$(grep -m1 -E "WARNING: ThreadSanitizer|lockfree_stress: " "$work/run.log" || true)
  if ((rc != 0)); then
    printf 'PASS: %-26s caught (exit %d): %s\n' "$name" "$rc" "${first:-see the document checks}"
    caught=$((caught + 1))
  else
    printf 'FAIL: %-26s not caught\n' "$name"
    missed=$((missed + 1))
  fi
  cp "$root/$file" "$work/$file"
done
echo "mutants: $caught passed, $missed failed"
((missed == 0))
