/*
 * fuzz_segment.c - checkpoint segment block parsing (worker/segment.c):
 * seg_read on a file holding the input.
 *
 * Input: a flags byte, then the bytes of segment_001.db.  Flags:
 *   bit 0  fix checksums: the header's segment number and check, each
 *          block's check, and the trailer's totals and check, wherever the
 *          lengths leave room, so the fuzzer reaches the rules behind them;
 *   bit 1  with bit 0: a block whose codec byte is 1 (lz4) has its stored
 *          bytes lz4-compressed by the harness (raw_len / stored_len set to
 *          match), so the decompressed-record checks are reached;
 *   bit 2  pass the header's checkpoint and creation LSNs as the expected
 *          ones (else 0: not checked).
 *
 * Oracles:
 *   - seg_read with keep_going = 0 and = 1 agree: both succeed (and then
 *     return the same bytes, with no damage reported) or both fail;
 *   - on success the raw payload holds exactly info.docs records
 *     (seg_next_doc) covering all of its raw_len bytes, and info.raw_bytes
 *     equals it;
 *   - writing those documents again (seg_create / seg_add / seg_finish,
 *     lz4 or not) gives a segment that reads back to the same documents.
 */
#include <fcntl.h>
#include <lz4.h>
#include <stdint.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "buf.h"
#include "dotdb.h"
#include "fuzz_util.h"
#include "segment.h"

static void fix(const uint8_t *in, size_t n, int compress, dbuf *out)
{
    FUZZ_CHECK(dbuf_append(out, in, n < SEG_HDR_SIZE ? n : SEG_HDR_SIZE) == 0, "alloc");
    if (n >= 24)
        st_u64(out->data + 16, 1);
    if (n < SEG_HDR_SIZE)
        return;
    st_u64(out->data + 56, XXH64(out->data, 56, 0));
    size_t off = SEG_HDR_SIZE;
    uint32_t docs = 0, blocks = 0;
    while (n - off >= SEG_BLK_HDR_SIZE) {
        uint8_t h[SEG_BLK_HDR_SIZE];
        memcpy(h, in + off, sizeof h);
        uint32_t stored = ld_u32(h + 16);
        if (stored > n - off - SEG_BLK_HDR_SIZE)
            break;
        const uint8_t *body = in + off + SEG_BLK_HDR_SIZE;
        off += SEG_BLK_HDR_SIZE + stored;
        uint8_t *lz = NULL;
        if (ld_u32(h) == 0x444e4544u) { /* "DEND" */
            st_u32(h + 8, docs);
            st_u32(h + 12, blocks);
        } else {
            if (compress && h[4] == 1 && stored > 0) {
                int cap = LZ4_compressBound((int)stored);
                lz = malloc((size_t)cap);
                FUZZ_CHECK(lz != NULL, "alloc");
                int k = LZ4_compress_default((const char *)body, (char *)lz, (int)stored, cap);
                FUZZ_CHECK(k > 0, "lz4");
                st_u32(h + 12, stored);
                st_u32(h + 16, (uint32_t)k);
                stored = (uint32_t)k;
                body = lz;
            }
            docs += ld_u32(h + 8);
            blocks++;
        }
        XXH64_state_t xs;
        XXH64_reset(&xs, 0);
        XXH64_update(&xs, h, 24);
        XXH64_update(&xs, body, stored);
        st_u64(h + 24, XXH64_digest(&xs));
        FUZZ_CHECK(dbuf_append(out, h, sizeof h) == 0 && dbuf_append(out, body, stored) == 0,
                   "alloc");
        free(lz);
    }
    FUZZ_CHECK(dbuf_append(out, in + off, n - off) == 0, "alloc");
}

static int nbad;
static void on_bad(void *ctx, const char *m)
{
    (void)ctx;
    (void)m;
    nbad++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    dbuf file;
    dbuf_init(&file);
    if (flags & 1)
        fix(data + 1, size - 1, flags & 2, &file);
    else
        FUZZ_CHECK(dbuf_append(&file, data + 1, size - 1) == 0, "alloc");
    uint64_t ckpt = 0, create = 0;
    if ((flags & 4) && file.len >= 40) {
        ckpt = ld_u64(file.data + 24);
        create = ld_u64(file.data + 32);
    }

    char dir[512], path[600], err[1024];
    fuzz_mkdtemp(dir, sizeof dir, "seg");
    snprintf(path, sizeof path, "%s/segment_001.db", dir);
    fuzz_write_file(path, file.data, file.len);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_CHECK(dirfd >= 0, "open %s", dir);

    uint8_t *raw = NULL, *raw2 = NULL, *raw3 = NULL;
    size_t raw_len = 0, raw2_len = 0, raw3_len = 0;
    seg_info info, info2, info3;
    int rc = seg_read(dirfd, dir, 1, ckpt, create, 0, NULL, NULL, &raw, &raw_len, &info, err,
                      sizeof err);
    nbad = 0;
    int rc2 = seg_read(dirfd, dir, 1, ckpt, create, 1, on_bad, NULL, &raw2, &raw2_len, &info2,
                       err, sizeof err);
    FUZZ_CHECK((rc == DOTDB_OK) == (rc2 == DOTDB_OK), "keep_going changes the verdict: %d / %d",
               rc, rc2);
    if (rc != DOTDB_OK) {
        FUZZ_CHECK(raw == NULL && raw_len == 0, "failed read returned bytes");
        FUZZ_CHECK(rc == DOTDB_ECORRUPT || rc == DOTDB_EVERSION, "rc %d", rc);
        goto out;
    }
    FUZZ_CHECK(nbad == 0, "damage reported on a good segment");
    FUZZ_CHECK(raw_len == raw2_len && (raw_len == 0 || memcmp(raw, raw2, raw_len) == 0),
               "keep_going returned other bytes");
    FUZZ_CHECK(info.raw_bytes == raw_len, "raw_bytes %llu, raw_len %zu",
               (unsigned long long)info.raw_bytes, raw_len);
    size_t pos = 0;
    uint64_t count = 0;
    const uint8_t *doc;
    uint32_t dlen;
    while (seg_next_doc(raw, raw_len, &pos, &doc, &dlen))
        count++;
    FUZZ_CHECK(pos == raw_len && count == info.docs, "%llu records in %zu of %zu bytes, info %llu",
               (unsigned long long)count, pos, raw_len, (unsigned long long)info.docs);

    /* Write the documents again; they must read back the same. */
    seg_writer *w;
    rc = seg_create(dirfd, dir, 2, 7, 3, (flags & 2) ? SEG_CODEC_LZ4 : SEG_CODEC_NONE, &w, err,
                    sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "seg_create: %s", err);
    pos = 0;
    while (seg_next_doc(raw, raw_len, &pos, &doc, &dlen)) {
        rc = seg_add(w, doc, dlen, err, sizeof err);
        FUZZ_CHECK(rc == DOTDB_OK, "seg_add: %s", err);
    }
    rc = seg_finish(w, &info3, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "seg_finish: %s", err);
    rc = seg_read(dirfd, dir, 2, 7, 3, 0, NULL, NULL, &raw3, &raw3_len, &info3, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "a segment we wrote does not read back: %s", err);
    FUZZ_CHECK(info3.docs == info.docs && raw3_len == raw_len &&
                   (raw_len == 0 || memcmp(raw3, raw, raw_len) == 0),
               "rewritten segment holds other documents");
out:
    free(raw);
    free(raw2);
    free(raw3);
    close(dirfd);
    fuzz_rmtree(dir);
    dbuf_free(&file);
    return 0;
}
