/* Shared helpers of the libFuzzer harnesses (fuzz/harness/, docs/fuzz.md). */
#ifndef QV_FZ_UTIL_H
#define QV_FZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes the input to a per-process temp file (for readers that take a path); returns its path
 * (static buffer) or NULL. */
static inline const char *qv_fz_tmpfile(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/qvet-fuzz-%ld%s", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return NULL;
    }
    return fclose(f) == 0 ? path : NULL;
}

#endif
