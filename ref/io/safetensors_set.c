/* A model's weight files: one model.safetensors, or the shards named by
 * model.safetensors.index.json ({"weight_map": {"tensor": "shard file", ...}}). Every tensor of
 * the weight map must be in the shard it names; a tensor may not live in two shards. */
#include "qvet/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ref/io/json_util.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void qv_st_set_close(qv_st_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) qv_st_close(s->files[i]);
    free(s->files);
    free(s);
}

static qv_status set_add(qv_st_set *s, const char *path)
{
    qv_st_file *f = NULL;
    QV_TRY(qv_st_open(path, &f));
    s->files[s->n_files++] = f;
    return QV_OK;
}

static int plain_file_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static qv_status open_index(qv_st_set *s, const char *dir, const char *ipath)
{
    char *text = NULL;
    size_t len = 0;
    QV_TRY(qv_read_file(ipath, (size_t)100 << 20, &text, &len));
    qv_status st = QV_OK;
    cJSON *root = NULL;
    char **shards = NULL;
    int n_shards = 0;
    long bad = qv_utf8_first_invalid((const unsigned char *)text, len);
    if (bad >= 0) {
        st = qv_fail(QV_ERR_INPUT, "%s: not valid UTF-8 (byte %ld)", ipath, bad);
        goto done;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line, col;
        qv_json_line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        st = qv_fail(QV_ERR_INPUT, "%s: not valid JSON (error near line %d, column %d)", ipath, line, col);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        st = qv_fail(QV_ERR_INPUT, "%s: must be a JSON object with a \"weight_map\" object", ipath);
        goto done;
    }
    int n = cJSON_GetArraySize(wm);
    if (n == 0) {
        st = qv_fail(QV_ERR_INPUT, "%s: \"weight_map\" is empty", ipath);
        goto done;
    }
    shards = qv_calloc((size_t)n, sizeof(char *));
    if (!shards) { st = QV_ERR_NOMEM; goto done; }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            st = qv_fail(QV_ERR_INPUT, "%s: weight_map['%s'] must be a file name string, got %s", ipath, e->string,
                         qv_json_type_name(e));
            goto done;
        }
        if (!plain_file_name(e->valuestring)) {
            st = qv_fail(QV_ERR_INPUT, "%s: weight_map['%s'] = '%s': shard names must be plain file names in %s",
                         ipath, e->string, e->valuestring, dir);
            goto done;
        }
        shards[n_shards++] = e->valuestring; /* borrowed from the tree */
    }
    qsort(shards, (size_t)n_shards, sizeof(char *), cmp_str);
    int u = 0;
    for (int i = 0; i < n_shards; i++)
        if (u == 0 || strcmp(shards[u - 1], shards[i]) != 0) shards[u++] = shards[i];
    n_shards = u;
    s->files = qv_calloc((size_t)n_shards, sizeof(qv_st_file *));
    if (!s->files) { st = QV_ERR_NOMEM; goto done; }
    for (int i = 0; i < n_shards; i++) {
        char *p = qv_path_join(dir, shards[i]);
        if (!p) { st = QV_ERR_NOMEM; goto done; }
        if (!qv_path_exists(p)) {
            const char *who = "";
            for (const cJSON *e = wm->child; e; e = e->next)
                if (strcmp(e->valuestring, shards[i]) == 0) { who = e->string; break; }
            st = qv_fail(QV_ERR_INPUT, "%s: shard '%s' (holding tensor '%s') is missing: %s does not exist", ipath,
                         shards[i], who, p);
            free(p);
            goto done;
        }
        st = set_add(s, p);
        free(p);
        if (st != QV_OK) goto done;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        const qv_st_file *f = NULL;
        for (int i = 0; i < s->n_files; i++)
            if (strcmp(shards[i], e->valuestring) == 0) f = s->files[i];
        if (!qv_st_find(f, e->string)) {
            st = qv_fail(QV_ERR_INPUT, "%s: tensor '%s' is not in its shard %s (as %s says)", f ? f->path : "?",
                         e->string, e->valuestring, ipath);
            goto done;
        }
    }
    for (int i = 0; i < s->n_files; i++)
        for (int k = 0; k < s->files[i]->n_entries; k++)
            for (int j = i + 1; j < s->n_files; j++)
                if (qv_st_find(s->files[j], s->files[i]->entries[k].name)) {
                    st = qv_fail(QV_ERR_INPUT, "tensor '%s' is in two shards: %s and %s",
                                 s->files[i]->entries[k].name, s->files[i]->path, s->files[j]->path);
                    goto done;
                }
done:
    free(shards);
    cJSON_Delete(root);
    free(text);
    return st;
}

qv_status qv_st_set_open_dir(const char *dir, qv_st_set **out)
{
    *out = NULL;
    if (!qv_is_dir(dir)) return qv_fail(QV_ERR_IO, "%s: not a directory", dir);
    qv_st_set *s = qv_calloc(1, sizeof *s);
    if (!s) return QV_ERR_NOMEM;
    char *ipath = qv_path_join(dir, "model.safetensors.index.json");
    char *spath = qv_path_join(dir, "model.safetensors");
    qv_status st;
    if (!ipath || !spath) st = QV_ERR_NOMEM;
    else if (qv_path_exists(ipath)) st = open_index(s, dir, ipath);
    else if (qv_path_exists(spath)) {
        s->files = qv_calloc(1, sizeof(qv_st_file *));
        st = s->files ? set_add(s, spath) : QV_ERR_NOMEM;
    } else
        st = qv_fail(QV_ERR_INPUT, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(ipath);
    free(spath);
    if (st != QV_OK) {
        qv_st_set_close(s);
        return st;
    }
    *out = s;
    return QV_OK;
}

qv_status qv_st_set_from_file(qv_st_file *f, qv_st_set **out)
{
    *out = NULL;
    qv_st_set *s = qv_calloc(1, sizeof *s);
    if (!s || !(s->files = qv_calloc(1, sizeof(qv_st_file *)))) {
        free(s);
        qv_st_close(f);
        return QV_ERR_NOMEM;
    }
    s->files[0] = f;
    s->n_files = 1;
    *out = s;
    return QV_OK;
}

const qv_st_entry *qv_st_set_find(const qv_st_set *s, const char *name, const char **file_out)
{
    for (int i = 0; s && i < s->n_files; i++) {
        const qv_st_entry *e = qv_st_find(s->files[i], name);
        if (e) {
            if (file_out) *file_out = s->files[i]->path;
            return e;
        }
    }
    return NULL;
}
