/* Loading tokenizer.json: the BPE model (vocab, merges, options) and the added tokens. The
 * pipeline components are parsed in tok_parse.c. Every error names the file (t->label) and the
 * JSON field at fault. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/fileio.h"
#include "tok_internal.h"

/* tokenizer.json files of real models are a few MB; 1 GiB is a sanity bound, not a target */
#define QV_TOK_MAX_FILE ((size_t)1 << 30)

static int get_bool(const cJSON *o, const char *key, int dflt, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 1;
    }
    if (!cJSON_IsBool(v)) return 0;
    *out = cJSON_IsTrue(v);
    return 1;
}

/* An integral JSON number in [0, 2^31 - 1). */
static int get_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0) || d != (double)(int64_t)d) return 0;
    *out = (int32_t)d;
    return 1;
}

static qv_status set_id_str(qv_tok *t, int32_t id, const char *s, size_t len)
{
    if (id >= t->n_ids) return qv_fail(QV_ERR_INTERNAL, "%s: id %d beyond the id table", t->label, id);
    free(t->id_str[id]);
    t->id_str[id] = malloc(len + 1);
    if (!t->id_str[id]) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    memcpy(t->id_str[id], s, len);
    t->id_str[id][len] = '\0';
    t->id_len[id] = (uint32_t)len;
    return QV_OK;
}

static qv_status lookup(const qv_tok *t, const char *s, size_t len, int32_t *id)
{
    int64_t v;
    if (!qv_smap_get(&t->vocab, s, len, &v)) return QV_ERR_INPUT;
    *id = (int32_t)v;
    return QV_OK;
}

static qv_status parse_merges(qv_tok *t, const cJSON *merges)
{
    if (!merges || cJSON_IsNull(merges)) return QV_OK;
    if (!cJSON_IsArray(merges)) return qv_fail(QV_ERR_INPUT, "%s: model.merges is not an array", t->label);
    int64_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(m)) {
            /* the older form "left right": exactly one space separates the two tokens */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return qv_fail(QV_ERR_INPUT, "%s: model.merges[%lld] \"%s\" is not two tokens separated by one space",
                               t->label, (long long)rank, s);
            a = s, alen = (size_t)(sp - s), b = sp + 1, blen = strlen(sp + 1);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, alen = strlen(a);
            b = m->child->next->valuestring, blen = strlen(b);
        } else {
            return qv_fail(QV_ERR_INPUT, "%s: model.merges[%lld] is neither \"a b\" nor [\"a\", \"b\"]", t->label,
                           (long long)rank);
        }
        int32_t ia, ib, im;
        if (lookup(t, a, alen, &ia) != QV_OK || lookup(t, b, blen, &ib) != QV_OK)
            return qv_fail(QV_ERR_INPUT, "%s: model.merges[%lld] names a token not in the vocab: '%.*s' '%.*s'",
                           t->label, (long long)rank, (int)alen, a, (int)blen, b);
        char *cat = malloc(alen + blen + 1);
        if (!cat) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
        memcpy(cat, a, alen);
        memcpy(cat + alen, b, blen);
        qv_status st = lookup(t, cat, alen + blen, &im);
        free(cat);
        if (st != QV_OK)
            return qv_fail(QV_ERR_INPUT, "%s: model.merges[%lld]: the merged token '%.*s%.*s' is not in the vocab",
                           t->label, (long long)rank, (int)alen, a, (int)blen, b);
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        int64_t old;
        if (qv_umap_get(&t->merges, key, &old)) continue; /* a repeated pair keeps its first (best) rank */
        QV_TRY(qv_umap_put(&t->merges, key, rank << 32 | (uint32_t)im));
    }
    return QV_OK;
}

static qv_status parse_model(qv_tok *t, const cJSON *model, const cJSON *added)
{
    if (!cJSON_IsObject(model)) return qv_fail(QV_ERR_INPUT, "%s: no \"model\" object", t->label);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !cJSON_IsString(type)) return qv_fail(QV_ERR_INPUT, "%s: model.type is not a string", t->label);
    if (type && strcmp(type->valuestring, "BPE") != 0)
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE)", t->label, type->valuestring);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return qv_fail(QV_ERR_INPUT, "%s: model.vocab is missing or not an object", t->label);
    if (!type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: model has no type and no merges: not a BPE model", t->label);

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: model.dropout is set: BPE dropout is random, not supported", t->label);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !*v->valuestring))
            return qv_fail(QV_ERR_UNSUPPORTED, "%s: model.%s is not supported", t->label, affixes[i]);
    }
    if (!get_bool(model, "byte_fallback", 0, &t->byte_fallback) || !get_bool(model, "fuse_unk", 0, &t->fuse_unk) ||
        !get_bool(model, "ignore_merges", 0, &t->ignore_merges))
        return qv_fail(QV_ERR_INPUT, "%s: model.byte_fallback / fuse_unk / ignore_merges must be booleans", t->label);

    /* ids: the largest over the vocab and the added tokens sizes the id table */
    int32_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!get_id(e, &id))
            return qv_fail(QV_ERR_INPUT, "%s: model.vocab['%s'] is not a non-negative integer id", t->label, e->string);
        if (id > max_id) max_id = id;
    }
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return qv_fail(QV_ERR_INPUT, "%s: added_tokens is not an array", t->label);
    int n_added = added && cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    t->added = calloc((size_t)n_added + 1, sizeof *t->added);
    if (!t->added) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    int k = 0;
    for (const cJSON *a = n_added ? added->child : NULL; a; a = a->next, k++) {
        qv_added_tok *at = &t->added[k];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsObject(a) || !get_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &at->id) || !cJSON_IsString(c) ||
            !get_bool(a, "single_word", 0, &at->single_word) || !get_bool(a, "lstrip", 0, &at->lstrip) ||
            !get_bool(a, "rstrip", 0, &at->rstrip) || !get_bool(a, "normalized", 1, &at->normalized) ||
            !get_bool(a, "special", 0, &at->special))
            return qv_fail(QV_ERR_INPUT, "%s: added_tokens[%d] needs an integer id, a string content and boolean flags",
                           t->label, k);
        if (!*c->valuestring) return qv_fail(QV_ERR_INPUT, "%s: added_tokens[%d] has an empty content", t->label, k);
        at->len = strlen(c->valuestring);
        at->content = malloc(at->len + 1);
        if (!at->content) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
        memcpy(at->content, c->valuestring, at->len + 1);
        if (at->id > max_id) max_id = at->id;
        t->n_added = k + 1;
    }
    if (max_id < 0) return qv_fail(QV_ERR_INPUT, "%s: model.vocab is empty", t->label);
    /* The id table spans 0..max_id (17 bytes an id): one entry with a huge id in a small file
     * would cost gigabytes (fz_tokenizer: id 1.9e8 in a 400-token vocab, 3 GB and 27 s). Real
     * vocabularies are dense, so a table more than twice the tokens plus 65536 is refused. */
    int64_t n_tokens = cJSON_GetArraySize(vocab) + (int64_t)t->n_added;
    if ((int64_t)max_id + 1 > 2 * n_tokens + 65536)
        return qv_fail(QV_ERR_INPUT, "%s: ids reach %d but there are only %lld tokens (at most 2 x tokens + 65536 ids)",
                       t->label, max_id, (long long)n_tokens);

    t->n_ids = max_id + 1;
    t->id_str = calloc((size_t)t->n_ids, sizeof *t->id_str);
    t->id_len = calloc((size_t)t->n_ids, sizeof *t->id_len);
    t->is_byte_tok = calloc((size_t)t->n_ids, 1);
    if (!t->id_str || !t->id_len || !t->is_byte_tok) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = 0;
        get_id(e, &id);
        size_t len = strlen(e->string);
        if (t->id_str[id])
            return qv_fail(QV_ERR_INPUT, "%s: model.vocab: id %d is given to both '%s' and '%s'", t->label, id,
                           t->id_str[id], e->string);
        if (qv_smap_get(&t->vocab, e->string, len, NULL))
            return qv_fail(QV_ERR_INPUT, "%s: model.vocab: token '%s' appears twice", t->label, e->string);
        QV_TRY(qv_smap_put(&t->vocab, e->string, len, id));
        QV_TRY(set_id_str(t, id, e->string, len));
    }
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        int32_t id;
        if (lookup(t, name, 6, &id) == QV_OK) {
            t->byte_tok[i] = id;
            t->is_byte_tok[id] = (uint8_t)(1 + i);
        }
    }
    /* added tokens take their id, over a vocab entry of the same content */
    for (int i = 0; i < t->n_added; i++) {
        qv_added_tok *at = &t->added[i];
        if (t->id_str[at->id] && (t->id_len[at->id] != at->len || memcmp(t->id_str[at->id], at->content, at->len)))
            return qv_fail(QV_ERR_INPUT, "%s: added_tokens: id %d is '%s' but the vocab gives it to '%s'", t->label,
                           at->id, at->content, t->id_str[at->id]);
        QV_TRY(qv_smap_put(&t->vocab, at->content, at->len, at->id));
        QV_TRY(set_id_str(t, at->id, at->content, at->len));
    }

    t->unk_id = -1;
    v = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return qv_fail(QV_ERR_INPUT, "%s: model.unk_token is not a string", t->label);
        if (lookup(t, v->valuestring, strlen(v->valuestring), &t->unk_id) != QV_OK)
            return qv_fail(QV_ERR_INPUT, "%s: model.unk_token '%s' is not in the vocab", t->label, v->valuestring);
    }
    return parse_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"));
}

static const char *const end_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};

static qv_status load(qv_tok *t, const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return qv_fail(QV_ERR_INPUT, "%s: not valid JSON (parse error near byte %zu)", t->label, at);
    }
    qv_status st = QV_OK;
    if (!cJSON_IsObject(root)) {
        st = qv_fail(QV_ERR_INPUT, "%s: top level is not a JSON object", t->label);
        goto out;
    }
    st = parse_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"),
                     cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (st == QV_OK) st = qv_tok_parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (st == QV_OK) st = qv_tok_parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (st == QV_OK) st = qv_tok_parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    if (st == QV_OK) st = qv_tok_parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (st != QV_OK) goto out;
    /* tokens marked normalized are matched in normalized text: normalize their content once */
    for (int i = 0; i < t->n_added && t->n_norm; i++) {
        qv_added_tok *at = &t->added[i];
        if (!at->normalized) continue;
        qv_tbuf b = {0};
        st = qv_tok_normalize(t, at->content, at->len, &b);
        if (st != QV_OK) {
            free(b.p);
            goto out;
        }
        free(at->content);
        at->content = b.p;
        at->len = b.n;
    }
    /* single_word checks the characters around a match against Unicode's word class, as the
     * library's regex \w: Alphabetic, marks, decimal digits, connector punctuation, ZWNJ/ZWJ */
    for (int i = 0; i < t->n_added && st == QV_OK && !t->word_re; i++)
        if (t->added[i].single_word) {
            static const char word_class[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
            st = qv_tok_compile(t, word_class, sizeof word_class - 1, 0, &t->word_re, &t->word_md);
        }
    if (st != QV_OK) goto out;
    for (int i = 0; i < t->n_added; i++)
        t->added_first[(unsigned char)t->added[i].content[0]] |= (uint8_t)(t->added[i].normalized ? 2 : 1);
    if (t->eos < 0)
        for (int i = 0; end_names[i] && t->eos < 0; i++)
            for (int k = 0; k < t->n_added; k++)
                if (t->added[k].special && strcmp(t->id_str[t->added[k].id], end_names[i]) == 0) t->eos = t->added[k].id;
out:
    cJSON_Delete(root);
    return st;
}

qv_status qv_tok_load_json(const char *text, size_t len, const char *label, qv_tok **out)
{
    *out = NULL;
    qv_tok *t = calloc(1, sizeof *t);
    if (!t) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
    t->label = strdup(label ? label : "tokenizer.json");
    t->eos = -1;
    t->unk_id = -1;
    if (!t->label) {
        free(t);
        return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
    }
    qv_status st = load(t, text, len);
    if (st != QV_OK) {
        qv_tok_free(t);
        return st;
    }
    *out = t;
    return QV_OK;
}

qv_status qv_tok_load_file(const char *path, qv_tok **out)
{
    *out = NULL;
    char *text;
    size_t len;
    QV_TRY(qv_read_file(path, QV_TOK_MAX_FILE, &text, &len));
    qv_status st = qv_tok_load_json(text, len, path, out);
    free(text);
    return st;
}

void qv_tok_free(qv_tok *t)
{
    if (!t) return;
    for (int32_t i = 0; t->id_str && i < t->n_ids; i++) free(t->id_str[i]);
    free(t->id_str);
    free(t->id_len);
    free(t->is_byte_tok);
    qv_smap_free(&t->vocab);
    qv_umap_free(&t->merges);
    for (int i = 0; t->added && i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_match_data_free(t->pre[i].md);
        pcre2_code_free(t->pre[i].re);
    }
    free(t->pre);
    pcre2_match_data_free(t->word_md);
    pcre2_code_free(t->word_re);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    qv_smap_free(&t->cache);
    free(t->cache_ids.p);
    free(t->label);
    free(t);
}

int32_t qv_tok_vocab_size(const qv_tok *t) { return t->n_ids; }
int32_t qv_tok_bos_id(const qv_tok *t) { return t->n_bos ? t->bos[0] : -1; }
int32_t qv_tok_eos_id(const qv_tok *t) { return t->eos; }

int qv_tok_is_special(const qv_tok *t, int32_t id)
{
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) return t->added[k].special != 0;
    return 0;
}

const char *qv_tok_token_str(const qv_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids ? t->id_str[id] : NULL;
}
