/*
 * region.c - the data object on the coordinator's side: memfd creation,
 * sealing, growth without remapping, a size-class allocator and the retire
 * queue that defers frees until no snapshot can see a block (I7).
 *
 * Why the allocator's state is private: clients never allocate, and the
 * shared region is rebuilt from disk at every start (I5), so free lists in
 * shared memory would only be something a crash could leave inconsistent.
 */
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dotdb.h"

#define N_SMALL (REGION_SMALL_MAX / SHM_ALIGN) /* classes 16, 32, ... 4096 */
#define PAGE 4096u
#define N_PAGES 256u                           /* page-run classes up to 1 MiB */
#define GROW_STEP (2u * 1024u * 1024u)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

typedef struct offvec {
    uint64_t *v;
    size_t n, cap;
} offvec;

typedef struct retired {
    uint64_t tag;
    uint64_t off;
    uint64_t size;
    uint64_t aux;
    int kind;
} retired;

typedef struct bigblock {
    uint64_t off, size;
} bigblock;

/*
 * Growth ahead of need.  Backing and prefaulting the next doubling of a
 * large object is slow (256 MiB: posix_fallocate 74 ms, the prefault
 * 84 ms, measured in a 1M-document load), and on the loop thread it
 * stalled whichever batch needed the space.  So once the top passes three
 * quarters of the backed size, a thread backs and prefaults the next step
 * while allocation goes on below the old end; region_alloc adopts the
 * step once it is done, and waits for it only if it needs the space first.
 * The thread touches nothing but the descriptor, the mapping beyond the
 * backed end and the fields below.
 */
typedef struct grow_ahead {
    pthread_t th;
    int running;      /* started and not joined yet (loop thread only) */
    _Atomic int done; /* set by the thread when it has finished */
    int fd;
    uint8_t *base;
    uint64_t from, to; /* the bytes it backs */
    int err;           /* posix_fallocate's result, read after the join */
} grow_ahead;

struct shm_region {
    int fd;
    uint8_t *base;
    uint64_t size;     /* backed bytes */
    uint64_t max_size;
    uint64_t top;      /* first never-allocated byte */
    uint64_t in_use;
    offvec small[N_SMALL + 1];
    offvec pages[N_PAGES + 1];
    bigblock *big;
    size_t n_big, cap_big;
    retired *rq;       /* FIFO ring of retired items; tags never decrease */
    size_t rq_head, rq_len, rq_cap;
    uint64_t retired_bytes;
    grow_ahead ga;
};

static int vec_push(offvec *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        uint64_t *p = realloc(v->v, cap * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

/* Map the backed pages [from, to) of our mapping writable now, in one
 * call, rather than one page fault at a time while a batch is applied
 * (DESIGN §9: first touch costs microseconds).  posix_fallocate already
 * allocated the pages; this only fills our page table, so it costs no
 * memory.  Best effort: older kernels refuse the advice (EINVAL) and the
 * pages fault in on first use as before. */
static void prefault(shm_region *r, uint64_t from, uint64_t to)
{
    if (to > from)
        (void)madvise(r->base + from, to - from, MADV_POPULATE_WRITE);
}

static void seterr(char *err, size_t errlen, const char *what, int e)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
}

int region_create(uint64_t initial_size, uint64_t max_size, uint64_t epoch, shm_region **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    int rc = DOTDB_EOS;
    shm_region *r = calloc(1, sizeof *r);
    if (r == NULL)
        return DOTDB_ENOMEM;
    r->fd = -1;
    r->base = MAP_FAILED;
    initial_size = (initial_size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (initial_size < 2 * PAGE)
        initial_size = 2 * PAGE;
    if (max_size < initial_size)
        max_size = initial_size;

    r->fd = memfd_create("dotdb-data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd < 0) {
        seterr(err, errlen, "memfd_create", errno);
        goto fail;
    }
    /* posix_fallocate extends the size and reserves the pages, so running
     * out of memory shows up here as ENOSPC instead of a later SIGBUS (I4). */
    int e = posix_fallocate(r->fd, 0, (off_t)initial_size);
    if (e != 0) {
        seterr(err, errlen, "posix_fallocate of the shared data object", e);
        rc = (e == ENOSPC || e == ENOMEM) ? DOTDB_ENOSPC : DOTDB_EOS;
        goto fail;
    }
    r->base = mmap(NULL, max_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r->fd, 0);
    if (r->base == MAP_FAILED) {
        seterr(err, errlen, "mmap of the shared data object", errno);
        goto fail;
    }
    r->size = initial_size;
    r->max_size = max_size;
    r->top = SHM_HEADER_SIZE;
    prefault(r, 0, initial_size);

    shm_header *h = (shm_header *)r->base;
    h->magic = SHM_MAGIC;
    h->layout_version = SHM_LAYOUT_VERSION;
    h->header_size = SHM_HEADER_SIZE;
    h->epoch = epoch;
    h->max_size = max_size;
    h->coordinator_pid = (uint64_t)getpid();
    atomic_store_explicit(&h->size, initial_size, memory_order_release);
    atomic_store_explicit(&h->state, SHM_STATE_STARTING, memory_order_release);
    *out = r;
    return 0;
fail:
    region_destroy(r);
    return rc;
}

int region_seal(shm_region *r, char *err, size_t errlen)
{
    /* F_SEAL_SEAL too: otherwise a client holding the descriptor could add
     * F_SEAL_GROW and stop the coordinator from growing the object. */
    if (fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
        seterr(err, errlen, "sealing the shared data object", errno);
        return DOTDB_EOS;
    }
    return 0;
}

static void grow_join(shm_region *r);

void region_destroy(shm_region *r)
{
    if (r == NULL)
        return;
    grow_join(r);
    if (r->base != MAP_FAILED)
        munmap(r->base, r->max_size ? r->max_size : r->size);
    if (r->fd >= 0)
        close(r->fd);
    for (size_t i = 0; i <= N_SMALL; i++)
        free(r->small[i].v);
    for (size_t i = 0; i <= N_PAGES; i++)
        free(r->pages[i].v);
    free(r->big);
    free(r->rq);
    free(r);
}

uint8_t *region_base(shm_region *r) { return r->base; }
int region_fd(const shm_region *r) { return r->fd; }
shm_header *region_header(shm_region *r) { return (shm_header *)r->base; }

/* The size to grow to: double, at least need_top, in GROW_STEP steps, at
 * most max_size. */
static uint64_t grow_target(const shm_region *r, uint64_t need_top)
{
    uint64_t want = r->size * 2;
    if (want < need_top)
        want = need_top;
    want = (want + GROW_STEP - 1) & ~(uint64_t)(GROW_STEP - 1);
    return want > r->max_size ? r->max_size : want;
}

static void set_size(shm_region *r, uint64_t size)
{
    r->size = size;
    /* Pairs with nothing a reader needs (readers only follow published
     * offsets); kept for stats. */
    atomic_store_explicit(&region_header(r)->size, size, memory_order_release);
}

static void *grow_main(void *arg)
{
    grow_ahead *g = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the loop's */
    g->err = posix_fallocate(g->fd, (off_t)g->from, (off_t)(g->to - g->from));
    if (g->err == 0)
        (void)madvise(g->base + g->from, g->to - g->from, MADV_POPULATE_WRITE);
    atomic_store_explicit(&g->done, 1, memory_order_release);
    return NULL;
}

/* Start backing the next step in the background (best effort: without a
 * thread, region_grow does it when needed, as before). */
static void grow_start(shm_region *r)
{
    if (r->ga.running || r->size >= r->max_size)
        return;
    grow_ahead *g = &r->ga;
    g->fd = r->fd;
    g->base = r->base;
    g->from = r->size;
    g->to = grow_target(r, r->size);
    g->err = 0;
    atomic_store_explicit(&g->done, 0, memory_order_relaxed);
    if (pthread_create(&g->th, NULL, grow_main, g) == 0)
        g->running = 1;
}

/* Wait for the background step, if one runs, and use it if it worked. */
static void grow_join(shm_region *r)
{
    if (!r->ga.running)
        return;
    (void)pthread_join(r->ga.th, NULL);
    r->ga.running = 0;
    if (r->ga.err == 0 && r->ga.from == r->size)
        set_size(r, r->ga.to);
    /* else (ENOSPC and the like): region_grow tries again and reports it */
}

/* Back more of the object before any offset beyond the old end is used. */
static int region_grow(shm_region *r, uint64_t need_top)
{
    if (need_top > r->max_size)
        return DOTDB_ENOSPC;
    uint64_t want = grow_target(r, need_top);
    int e = posix_fallocate(r->fd, (off_t)r->size, (off_t)(want - r->size));
    if (e != 0 && want > need_top) {
        /* Doubling failed; try for just what this allocation needs. */
        want = (need_top + PAGE - 1) & ~(uint64_t)(PAGE - 1);
        e = posix_fallocate(r->fd, (off_t)r->size, (off_t)(want - r->size));
    }
    if (e != 0)
        return (e == ENOSPC || e == ENOMEM || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EOS;
    prefault(r, r->size, want);
    set_size(r, want);
    return 0;
}

static uint64_t take_big(shm_region *r, uint64_t size)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < r->n_big; i++)
        if (r->big[i].size >= size && (best == SIZE_MAX || r->big[i].size < r->big[best].size))
            best = i;
    if (best == SIZE_MAX)
        return 0;
    bigblock b = r->big[best];
    r->big[best] = r->big[--r->n_big];
    if (b.size > size)
        region_free(r, b.off + size, b.size - size);
    return b.off;
}

static uint64_t round_size(size_t n)
{
    if (n <= REGION_SMALL_MAX)
        return (n + SHM_ALIGN - 1) & ~(uint64_t)(SHM_ALIGN - 1);
    return (n + PAGE - 1) & ~(uint64_t)(PAGE - 1);
}

uint64_t region_alloc(shm_region *r, size_t n, int *rc)
{
    *rc = 0;
    if (n == 0)
        n = 1;
    if (n > r->max_size) {
        *rc = DOTDB_ENOSPC;
        return 0;
    }
    uint64_t size = round_size(n);
    uint64_t off = 0;
    int fresh = 0;
    if (size <= REGION_SMALL_MAX) {
        offvec *v = &r->small[size / SHM_ALIGN];
        if (v->n)
            off = v->v[--v->n];
    } else if (size / PAGE <= N_PAGES) {
        offvec *v = &r->pages[size / PAGE];
        if (v->n)
            off = v->v[--v->n];
    } else {
        off = take_big(r, size);
    }
    if (off == 0) {
        if (r->ga.running && atomic_load_explicit(&r->ga.done, memory_order_acquire))
            grow_join(r);
        if (r->top + size > r->size) {
            grow_join(r); /* the step under way, if any, may be enough */
            int grc = r->top + size > r->size ? region_grow(r, r->top + size) : 0;
            if (grc != 0) {
                *rc = grc;
                return 0;
            }
        }
        off = r->top;
        r->top += size;
        fresh = 1;
        if (r->top > r->size - r->size / 4)
            grow_start(r);
    }
    /* Bytes past the top were never written since posix_fallocate zeroed
     * them: only a reused block needs clearing (one pass over memory less
     * for every new version). */
    if (!fresh)
        memset(r->base + off, 0, size);
    r->in_use += size;
    return off;
}

void region_free(shm_region *r, uint64_t off, size_t n)
{
    if (off == 0)
        return;
    uint64_t size = round_size(n);
    r->in_use -= size <= r->in_use ? size : r->in_use;
    /* A failed push leaks the block: safe, never a double use. */
    if (size <= REGION_SMALL_MAX) {
        (void)vec_push(&r->small[size / SHM_ALIGN], off);
    } else if (size / PAGE <= N_PAGES) {
        (void)vec_push(&r->pages[size / PAGE], off);
    } else {
        if (r->n_big == r->cap_big) {
            size_t cap = r->cap_big ? r->cap_big * 2 : 16;
            bigblock *p = realloc(r->big, cap * sizeof *p);
            if (p == NULL)
                return;
            r->big = p;
            r->cap_big = cap;
        }
        r->big[r->n_big++] = (bigblock){off, size};
    }
}

int region_retire(shm_region *r, int kind, uint64_t off, size_t n, uint64_t aux)
{
    if (r->rq_len == r->rq_cap) {
        size_t cap = r->rq_cap ? r->rq_cap * 2 : 256;
        retired *q = malloc(cap * sizeof *q);
        if (q == NULL)
            return DOTDB_ENOMEM;
        for (size_t i = 0; i < r->rq_len; i++)
            q[i] = r->rq[(r->rq_head + i) % r->rq_cap];
        free(r->rq);
        r->rq = q;
        r->rq_head = 0;
        r->rq_cap = cap;
    }
    /* The tag is the LSN readers may hold right now; pairs with the
     * seq_cst publication in the commit path. */
    uint64_t tag = atomic_load_explicit(&region_header(r)->commit_lsn, memory_order_seq_cst);
    retired *it = &r->rq[(r->rq_head + r->rq_len) % r->rq_cap];
    *it = (retired){.tag = tag, .off = off, .size = n, .aux = aux, .kind = kind};
    r->rq_len++;
    r->retired_bytes += round_size(n);
    return 0;
}

size_t region_reclaim(shm_region *r, uint64_t min_active)
{
    uint64_t commit = atomic_load_explicit(&region_header(r)->commit_lsn, memory_order_seq_cst);
    size_t freed = 0;
    while (r->rq_len) {
        retired *it = &r->rq[r->rq_head];
        if (!(it->tag < min_active && it->tag < commit))
            break;
        if (it->kind == RETIRE_VERSION && it->aux) {
            shm_version *newer = region_ptr(r, it->aux);
            /* Only snapshots older than the newer version could follow this
             * link, and none is left. */
            if (atomic_load_explicit(&newer->prev_off, memory_order_relaxed) == it->off)
                atomic_store_explicit(&newer->prev_off, 0, memory_order_release);
        }
        region_free(r, it->off, it->size);
        r->retired_bytes -= round_size(it->size);
        r->rq_head = (r->rq_head + 1) % r->rq_cap;
        r->rq_len--;
        freed++;
    }
    return freed;
}

void region_get_stats(shm_region *r, region_stats *st)
{
    st->size = r->size;
    st->max_size = r->max_size;
    st->top = r->top;
    st->in_use = r->in_use;
    st->retired = r->retired_bytes;
    st->retired_items = r->rq_len;
}
