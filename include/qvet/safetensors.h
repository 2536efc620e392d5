/* safetensors: reader (memory-mapped file or a caller's buffer, every header field validated)
 * and writer. Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the data; offsets are relative to the data. */
#ifndef QVET_SAFETENSORS_H
#define QVET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/fileio.h"
#include "qvet/tensor.h"

typedef struct {
    char *name;
    qv_tensor t;          /* view into the mapped data */
    uint64_t begin, end;  /* data_offsets */
} qv_st_entry;

typedef struct {
    char *path;           /* for messages; "<memory>" for buffers */
    qv_mmap_t map;        /* when opened from a file */
    const unsigned char *base; size_t size;
    qv_st_entry *entries; int n_entries; /* sorted by name */
    char **meta_keys; char **meta_values; int n_meta;
} qv_st_file;

/* Opens and validates: header length within file, JSON object, known dtypes, shapes
 * non-negative and not overflowing, end-begin == numel*dtype size, offsets within the data,
 * no overlapping tensors, metadata values strings. Messages name the path and tensor. */
qv_status qv_st_open(const char *path, qv_st_file **out);
/* Same over a caller-owned buffer that must outlive the file object. */
qv_status qv_st_open_buffer(const void *buf, size_t size, const char *label, qv_st_file **out);
void qv_st_close(qv_st_file *f);
/* Views are aligned for their dtype: a tensor stored at a misaligned address (an unpadded
 * header from an old writer) is copied once into an aligned buffer owned by the file. Returns
 * how many tensors of f were copied that way (0 for files qvet or the reference writes). */
int qv_st_misaligned_copies(const qv_st_file *f);
const qv_st_entry *qv_st_find(const qv_st_file *f, const char *name);
const char *qv_st_meta(const qv_st_file *f, const char *key); /* NULL if absent */

/* A set of files: one model.safetensors, or the shards listed in model.safetensors.index.json. */
typedef struct {
    qv_st_file **files; int n_files;
} qv_st_set;
qv_status qv_st_set_open_dir(const char *dir, qv_st_set **out);
void qv_st_set_close(qv_st_set *s);
/* Finds a tensor across the set; *file_out (optional) receives the file's path for messages. */
/* Wraps one opened file into a set (takes ownership of f, also on failure). */
qv_status qv_st_set_from_file(qv_st_file *f, qv_st_set **out);
const qv_st_entry *qv_st_set_find(const qv_st_set *s, const char *name, const char **file_out);

/* Writer: add tensors (data copied), optional metadata, then write atomically to a path or into
 * a malloc'd buffer. The header is padded with spaces so the data starts on an 8-byte boundary;
 * tensors are stored back to back (the reference reader rejects gaps) ordered by decreasing
 * dtype size, then name, so every tensor is aligned for its dtype. Same tensors -> same bytes,
 * whatever the order of the add calls. */
typedef struct qv_st_writer qv_st_writer;
qv_st_writer *qv_st_writer_new(void);
qv_status qv_st_writer_add(qv_st_writer *w, const char *name, qv_dtype dt, int ndim,
                           const int64_t *shape, const void *data); /* data copied */
qv_status qv_st_writer_meta(qv_st_writer *w, const char *key, const char *value);
qv_status qv_st_writer_write(qv_st_writer *w, const char *path);
qv_status qv_st_writer_to_buffer(qv_st_writer *w, unsigned char **buf, size_t *size);
void qv_st_writer_free(qv_st_writer *w);

#endif
