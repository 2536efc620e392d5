/* Files: read-only memory maps (weights are never copied), whole-file reads, and atomic writes
 * (temp file in the same folder + rename) so a report is either the old one or the new one,
 * never a partial one (CLI.md). */
#ifndef QVET_FILEIO_H
#define QVET_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "qvet/status.h"

typedef struct {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
    char *path;
} qv_mmap_t;

qv_status qv_mmap_open(const char *path, qv_mmap_t *m);
void qv_mmap_close(qv_mmap_t *m);

/* Reads a whole file into a NUL-terminated malloc'd buffer (refuses files over max_bytes). */
qv_status qv_read_file(const char *path, size_t max_bytes, char **out, size_t *out_size);

typedef struct {
    FILE *fp;
    char *path;
    char *tmp_path;
} qv_atomic_file;

qv_status qv_atomic_open(const char *path, qv_atomic_file *af);
/* Flushes, fsyncs and renames over the target; on any error the target is untouched. */
qv_status qv_atomic_commit(qv_atomic_file *af);
/* Removes the temp file; the target is untouched. Safe after commit (no-op). */
void qv_atomic_abort(qv_atomic_file *af);
qv_status qv_write_file_atomic(const char *path, const void *data, size_t size);

int qv_path_exists(const char *path);
int qv_is_dir(const char *path);
/* dir + "/" + name into a malloc'd string */
char *qv_path_join(const char *dir, const char *name);

#endif
