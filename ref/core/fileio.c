/* Memory maps, whole-file reads and atomic writes (include/qvet/fileio.h). */
#include "qvet/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

qv_status qv_mmap_open(const char *path, qv_mmap_t *m)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qv_fail(QV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qv_fail(QV_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return qv_fail(QV_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    m->path = strdup(path);
    if (!m->path) {
        qv_mmap_close(m);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    return QV_OK;
}

void qv_mmap_close(qv_mmap_t *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

qv_status qv_read_file(const char *path, size_t max_bytes, char **out, size_t *out_size)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return qv_fail(QV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return qv_fail(QV_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(fp);
        return qv_fail(QV_ERR_INPUT, "%s: file of %lld bytes exceeds the limit of %zu bytes", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
    }
    if (n && fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return qv_fail(QV_ERR_IO, "%s: read error", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *out = buf;
    if (out_size) *out_size = n;
    return QV_OK;
}

qv_status qv_atomic_open(const char *path, qv_atomic_file *af)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp_path = malloc(n);
    if (!af->path || !af->tmp_path) {
        qv_atomic_abort(af);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    snprintf(af->tmp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        qv_status st = qv_fail(QV_ERR_IO, "%s: cannot create temp file: %s", path, strerror(errno));
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof *af);
        return st;
    }
    fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        qv_atomic_abort(af);
        return qv_fail(QV_ERR_IO, "%s: fdopen failed", path);
    }
    return QV_OK;
}

qv_status qv_atomic_commit(qv_atomic_file *af)
{
    if (!af->fp) return qv_fail(QV_ERR_INTERNAL, "atomic file not open");
    int bad = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
    bad |= fclose(af->fp) != 0;
    af->fp = NULL;
    if (bad) {
        qv_status st = qv_fail(QV_ERR_IO, "%s: write failed", af->path);
        qv_atomic_abort(af);
        return st;
    }
    if (rename(af->tmp_path, af->path) != 0) {
        qv_status st = qv_fail(QV_ERR_IO, "%s: rename failed: %s", af->path, strerror(errno));
        qv_atomic_abort(af);
        return st;
    }
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return QV_OK;
}

void qv_atomic_abort(qv_atomic_file *af)
{
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

qv_status qv_write_file_atomic(const char *path, const void *data, size_t size)
{
    qv_atomic_file af;
    QV_TRY(qv_atomic_open(path, &af));
    if (size && fwrite(data, 1, size, af.fp) != size) {
        qv_atomic_abort(&af);
        return qv_fail(QV_ERR_IO, "%s: write failed", path);
    }
    return qv_atomic_commit(&af);
}

int qv_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int qv_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *qv_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) {
        qv_fail(QV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}
