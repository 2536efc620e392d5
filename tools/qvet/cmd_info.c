/* qvet info: a model's config, exact parameter count, tensors, files; or a safetensors
 * checkpoint's metadata and tensors. Opening the model is the check: every validation of
 * ref/io runs, and any failure is reported with exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "qvet/tokenizer.h"
#include "qvet/fileio.h"
#include "qvet/model.h"
#include "qvet/qmodel.h"
#include "qvet/safetensors.h"

/* 18880896 -> "18,880,896" */
static const char *thousands(long long v, char *buf, size_t n)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", v < 0 ? -v : v);
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && o + 1 < n) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

typedef struct {
    long long tensors[QV_DTYPE_COUNT], elements[QV_DTYPE_COUNT];
    long long n_tensors, bytes;
} tally;

static void tally_file(tally *t, const qv_st_file *f)
{
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        t->tensors[e->t.dtype]++;
        t->elements[e->t.dtype] += qv_tensor_numel(&e->t);
        t->n_tensors++;
        t->bytes += (long long)(e->end - e->begin);
    }
}

static void print_tally(const tally *t)
{
    char a[32], b[32];
    for (int d = 0; d < QV_DTYPE_COUNT; d++)
        if (t->tensors[d])
            printf("  %-5s %s tensors, %s elements\n", qv_dtype_name((qv_dtype)d), thousands(t->tensors[d], a, sizeof a),
                   thousands(t->elements[d], b, sizeof b));
}

static void print_tensors(const qv_st_file *f, int with_file)
{
    char sh[128];
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        printf("  %-56s %-5s %s%s%s\n", e->name, qv_dtype_name(e->t.dtype), qv_shape_str(&e->t, sh, sizeof sh),
               with_file ? "  " : "", with_file ? f->path : "");
    }
}

static cJSON *json_tensors(const qv_st_file *f, cJSON *arr)
{
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "dtype", qv_dtype_name(e->t.dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < e->t.ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->t.shape[d]));
        cJSON_AddStringToObject(o, "file", f->path);
        cJSON *off = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)e->begin));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)e->end));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void json_tally(cJSON *root, const tally *t)
{
    cJSON_AddNumberToObject(root, "n_tensors", (double)t->n_tensors);
    cJSON_AddNumberToObject(root, "tensor_bytes", (double)t->bytes);
    cJSON *d = cJSON_AddObjectToObject(root, "dtypes");
    for (int k = 0; k < QV_DTYPE_COUNT; k++)
        if (t->tensors[k]) {
            cJSON *o = cJSON_AddObjectToObject(d, qv_dtype_name((qv_dtype)k));
            cJSON_AddNumberToObject(o, "tensors", (double)t->tensors[k]);
            cJSON_AddNumberToObject(o, "elements", (double)t->elements[k]);
        }
}

static qv_status write_json(const char *path, cJSON *root)
{
    char *text = cJSON_Print(root);
    if (!text) return qv_fail(QV_ERR_NOMEM, "out of memory printing JSON");
    size_t n = strlen(text);
    text[n] = '\n'; /* replace the NUL: the file ends with a newline */
    qv_status st = qv_write_file_atomic(path, text, n + 1);
    free(text);
    return st;
}

static const char *rope_desc(const qv_config *c, char *buf, size_t n)
{
    if (c->rope_type == QV_ROPE_LLAMA3)
        snprintf(buf, n, "llama3 (factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %d)",
                 c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_max_pos);
    else if (c->rope_type == QV_ROPE_LINEAR)
        snprintf(buf, n, "linear (factor %g)", c->rope_factor);
    else
        snprintf(buf, n, "none");
    return buf;
}

static int info_model(qv_model *m, int list, const char *json)
{
    const qv_config *c = &m->cfg;
    char a[32], b[32], r[256];
    tally t = {0};
    for (int i = 0; i < m->weights->n_files; i++) tally_file(&t, m->weights->files[i]);
    printf("model: %s\n", m->dir);
    printf("config: %s\n", m->config_path);
    printf("  model_type               %s\n", c->model_type);
    printf("  hidden_size              %d\n", c->hidden_size);
    printf("  intermediate_size        %d\n", c->intermediate_size);
    printf("  num_hidden_layers        %d\n", c->num_layers);
    printf("  num_attention_heads      %d\n", c->num_heads);
    printf("  num_key_value_heads      %d\n", c->num_kv_heads);
    printf("  head_dim                 %d\n", c->head_dim);
    printf("  vocab_size               %d\n", c->vocab_size);
    printf("  max_position_embeddings  %d\n", c->max_position_embeddings);
    printf("  rms_norm_eps             %g\n", (double)c->rms_norm_eps);
    printf("  rope_theta               %g\n", c->rope_theta);
    printf("  rope_scaling             %s\n", rope_desc(c, r, sizeof r));
    printf("  tie_word_embeddings      %s\n", c->tie_word_embeddings ? "true" : "false");
    printf("  attention_bias           q/k/v %s, o %s\n", c->attention_bias ? "yes" : "no", c->o_bias ? "yes" : "no");
    printf("  mlp_bias                 %s\n", c->mlp_bias ? "true" : "false");
    printf("  torch_dtype              %s\n", qv_dtype_name(c->torch_dtype));
    printf("  bos_token_id             %d\n", c->bos_token_id);
    printf("  eos_token_id             %d\n", c->eos_token_id);
    printf("parameters: %s\n", thousands(m->n_params, a, sizeof a));
    printf("tensors: %s (%s used by the model), %s bytes\n", thousands(t.n_tensors, a, sizeof a),
           thousands(m->n_used_tensors, r, sizeof r), thousands(t.bytes, b, sizeof b));
    print_tally(&t);
    printf("files:\n");
    for (int i = 0; i < m->weights->n_files; i++)
        printf("  %s (%s bytes)\n", m->weights->files[i]->path,
               thousands((long long)m->weights->files[i]->size, a, sizeof a));
    printf("tokenizer: %s", m->tokenizer_path ? m->tokenizer_path : m->tokenizer_json ? "(in memory)" : "none");
    if (m->tok)
        printf(" (%d ids, bos %d, eos %d)", (int)qv_tok_vocab_size(m->tok), (int)qv_tok_bos_id(m->tok),
               (int)qv_tok_eos_id(m->tok));
    printf("\n");
    if (list) {
        printf("tensor list (name dtype shape%s):\n", m->weights->n_files > 1 ? " file" : "");
        for (int i = 0; i < m->weights->n_files; i++) print_tensors(m->weights->files[i], m->weights->n_files > 1);
    }
    if (!json) return QV_EXIT_OK;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", m->dir);
    cJSON_AddStringToObject(root, "config_path", m->config_path);
    cJSON *jc = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(jc, "model_type", c->model_type);
    cJSON_AddNumberToObject(jc, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(jc, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(jc, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(jc, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(jc, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(jc, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(jc, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(jc, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(jc, "rms_norm_eps", (double)c->rms_norm_eps);
    cJSON_AddNumberToObject(jc, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(jc, "rope_type",
                            c->rope_type == QV_ROPE_LLAMA3 ? "llama3" : c->rope_type == QV_ROPE_LINEAR ? "linear" : "default");
    if (c->rope_type != QV_ROPE_DEFAULT) cJSON_AddNumberToObject(jc, "rope_factor", c->rope_factor);
    if (c->rope_type == QV_ROPE_LLAMA3) {
        cJSON_AddNumberToObject(jc, "rope_low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(jc, "rope_high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(jc, "rope_original_max_position_embeddings", c->rope_original_max_pos);
    }
    cJSON_AddBoolToObject(jc, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(jc, "attention_bias", c->attention_bias);
    cJSON_AddBoolToObject(jc, "o_bias", c->o_bias);
    cJSON_AddBoolToObject(jc, "mlp_bias", c->mlp_bias);
    cJSON_AddStringToObject(jc, "torch_dtype", qv_dtype_name(c->torch_dtype));
    cJSON_AddNumberToObject(jc, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(jc, "eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(root, "n_params", (double)m->n_params);
    cJSON_AddNumberToObject(root, "n_used_tensors", m->n_used_tensors);
    json_tally(root, &t);
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    for (int i = 0; i < m->weights->n_files; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", m->weights->files[i]->path);
        cJSON_AddNumberToObject(o, "bytes", (double)m->weights->files[i]->size);
        cJSON_AddItemToArray(files, o);
    }
    if (m->tokenizer_path) cJSON_AddStringToObject(root, "tokenizer", m->tokenizer_path);
    else cJSON_AddNullToObject(root, "tokenizer");
    if (m->tok) cJSON_AddNumberToObject(root, "tokenizer_ids", qv_tok_vocab_size(m->tok));
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < m->weights->n_files; i++) json_tensors(m->weights->files[i], arr);
    qv_status st = write_json(json, root);
    cJSON_Delete(root);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}

static int info_checkpoint(const char *path, const char *json)
{
    qv_st_file *f = NULL;
    qv_status st = qv_st_open(path, &f);
    if (st != QV_OK) return qv_cli_report(st);
    char a[32], b[32];
    tally t = {0};
    tally_file(&t, f);
    /* A qvet quantized checkpoint is opened as the engines open it: every check runs. */
    qv_qmodel *qm = NULL;
    if (qv_st_meta(f, "qvet") && (st = qv_qmodel_open(path, &qm)) != QV_OK) {
        qv_st_close(f);
        return qv_cli_report(st);
    }
    printf("checkpoint: %s (%s bytes)\n", f->path, thousands((long long)f->size, a, sizeof a));
    if (qm) {
        const qv_qmodel_meta *q = &qm->meta;
        const qv_config *c = &qm->model->cfg;
        printf("qvet quantized checkpoint (all checks passed):\n");
        printf("  format_version           %d\n", q->format_version);
        printf("  format                   %s\n", qv_qformat_name(q->fmt));
        printf("  group_size               %d\n", q->group_size);
        printf("  kv_bits                  %d\n", q->kv_bits);
        printf("  method                   %s\n", q->method);
        printf("  transforms               %s\n", q->transforms_json);
        printf("  calibration text hash    %s%s%s%s\n", q->calib_hash[0] ? q->calib_hash : "none",
               q->calib_hash_algo[0] ? " (" : "", q->calib_hash_algo, q->calib_hash_algo[0] ? ")" : "");
        printf("  calibration samples      %ld x %d tokens\n", q->calib_samples, q->calib_seqlen);
        printf("  qvet_version             %s\n", q->qvet_version);
        printf("  model                    %s, %d layers, hidden %d, heads %d/%d, vocab %d\n", c->model_type,
               c->num_layers, c->hidden_size, c->num_heads, c->num_kv_heads, c->vocab_size);
        printf("  tokenizer                %s\n", qm->model->tok ? "embedded" : "none");
    }
    printf("metadata: %d entries\n", f->n_meta);
    for (int i = 0; i < f->n_meta; i++) {
        const char *v = f->meta_values[i];
        size_t n = strlen(v);
        if (n > 200) printf("  %s = %.120s... (%zu characters)\n", f->meta_keys[i], v, n);
        else printf("  %s = %s\n", f->meta_keys[i], v);
    }
    printf("tensors: %s, %s bytes\n", thousands(t.n_tensors, a, sizeof a), thousands(t.bytes, b, sizeof b));
    print_tally(&t);
    printf("tensor list (name dtype shape):\n");
    print_tensors(f, 0);
    int rc = QV_EXIT_OK;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "checkpoint", f->path);
        cJSON_AddNumberToObject(root, "bytes", (double)f->size);
        if (qm) {
            char *mj = qv_qmodel_meta_json(&qm->meta);
            cJSON *q = mj ? cJSON_Parse(mj) : NULL;
            free(mj);
            if (q) cJSON_AddItemToObject(root, "qvet", q);
        }
        cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
        for (int i = 0; i < f->n_meta; i++) cJSON_AddStringToObject(meta, f->meta_keys[i], f->meta_values[i]);
        json_tally(root, &t);
        json_tensors(f, cJSON_AddArrayToObject(root, "tensors"));
        st = write_json(json, root);
        cJSON_Delete(root);
        if (st != QV_OK) rc = qv_cli_report(st);
    }
    qv_qmodel_close(qm);
    qv_st_close(f);
    return rc;
}

int qv_cmd_info(int argc, char **argv)
{
    const char *model = NULL, *quant = NULL, *json = NULL;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tensors") == 0) list = 1;
        else if (strcmp(a, "--model") == 0 || strcmp(a, "--quantized") == 0 || strcmp(a, "--json") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') return qv_cli_usage_error("info", "%s needs a value", a);
            const char *v = argv[++i];
            if (a[2] == 'm') model = v;
            else if (a[2] == 'q') quant = v;
            else json = v;
        } else
            return qv_cli_usage_error("info", "unknown argument '%s'", a);
    }
    if (model && quant) return qv_cli_usage_error("info", "give --model or --quantized, not both");
    if (quant) return info_checkpoint(quant, json);
    qv_model *m = NULL;
    qv_status st = model ? qv_model_open(model, &m) : qv_cli_default_model(&m);
    if (st != QV_OK) return qv_cli_report(st);
    int rc = info_model(m, list, json);
    qv_model_close(m);
    return rc;
}
