/*
 * fuzz_util.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * A target's oracle failing is a bug as real as a crash: FUZZ_CHECK prints
 * what was expected and aborts, which libFuzzer reports as a crash and
 * saves the input.  Temporary directories go under $FUZZ_TMPDIR, else
 * /dev/shm (tmpfs: the fsyncs of the WAL and segment code cost nothing),
 * else /tmp.
 */
#ifndef DOTDB_FUZZ_UTIL_H
#define DOTDB_FUZZ_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: fuzz oracle failed: %s: ", __FILE__,        \
                    __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Create a fresh directory; the path goes to out (PATH_MAX-ish buffer). */
static inline void fuzz_mkdtemp(char *out, size_t cap, const char *tag)
{
    const char *base = getenv("FUZZ_TMPDIR");
    struct stat st;
    if (base == NULL || base[0] == '\0')
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(out, cap, "%s/dotdb-fuzz-%s-XXXXXX", base, tag);
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

/* Remove dir and everything in it, one level of subdirectories deep
 * (what the targets create). */
static inline void fuzz_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        char path[4096];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (unlink(path) != 0)
                fuzz_rmtree(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Write len bytes to path (created 0600, truncated).  Aborts on failure:
 * the harness, not the code under test, would be broken. */
static inline void fuzz_write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(p, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

#endif /* DOTDB_FUZZ_UTIL_H */
