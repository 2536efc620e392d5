/* Parsing the pipeline components of tokenizer.json: normalizer, pre_tokenizer, decoder,
 * post_processor. A component (or an option of one) that is not implemented is refused with
 * QV_ERR_UNSUPPORTED naming it: tokenizing without it would give ids that differ from the
 * library's. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* The pattern the ByteLevel pre-tokenizer splits with when use_regex is true (GPT-2's). */
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *type_of(const qv_tok *t, const cJSON *j, const char *where, qv_status *st)
{
    const cJSON *ty = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    if (!cJSON_IsString(ty)) {
        *st = qv_fail(QV_ERR_INPUT, "%s: %s is not an object with a string \"type\"", t->label, where);
        return NULL;
    }
    *st = QV_OK;
    return ty->valuestring;
}

static qv_status dup_str(const qv_tok *t, const cJSON *v, const char *where, char **out, size_t *len)
{
    if (!cJSON_IsString(v)) return qv_fail(QV_ERR_INPUT, "%s: %s is missing or not a string", t->label, where);
    *len = strlen(v->valuestring);
    *out = strdup(v->valuestring);
    return *out ? QV_OK : qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
}

static int opt_bool(const cJSON *o, const char *key, int dflt, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) *ok = 0;
    return cJSON_IsTrue(v);
}

/* Replace's pattern: only {"String": s}; a Regex pattern is refused. */
static qv_status string_pattern(const qv_tok *t, const cJSON *j, const char *where, char **out, size_t *len)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    if (cJSON_IsObject(p) && cJSON_GetObjectItemCaseSensitive(p, "Regex"))
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: %s with a Regex pattern is not supported", t->label, where);
    QV_TRY(dup_str(t, cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL, where, out, len));
    if (!*len) {
        free(*out); /* the empty string was allocated (leak found by fuzz/harness/fz_tokenizer.c) */
        *out = NULL;
        return qv_fail(QV_ERR_INPUT, "%s: %s has an empty pattern", t->label, where);
    }
    return QV_OK;
}

qv_status qv_tok_compile(const qv_tok *t, const char *pattern, size_t len, int literal, pcre2_code **re,
                         pcre2_match_data **md)
{
    int err;
    PCRE2_SIZE erroff;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* UCP is not allowed with LITERAL */
    *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &erroff, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: pre_tokenizer pattern '%.*s' does not compile with PCRE2 at offset %zu: %s",
                       t->label, (int)len, pattern, (size_t)erroff, (char *)msg);
    }
    /* JIT is an optimisation only: without it (unsupported CPU, SELinux) matching is the same */
    pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
    *md = pcre2_match_data_create_from_pattern(*re, NULL);
    if (!*md) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    return QV_OK;
}

static qv_status prepend_scheme(const qv_tok *t, const cJSON *j, const char *where, int *scheme)
{
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
    if (ps && !cJSON_IsNull(ps)) {
        if (!cJSON_IsString(ps)) return qv_fail(QV_ERR_INPUT, "%s: %s.prepend_scheme is not a string", t->label, where);
        if (!strcmp(ps->valuestring, "always")) *scheme = QV_PREPEND_ALWAYS;
        else if (!strcmp(ps->valuestring, "first")) *scheme = QV_PREPEND_FIRST;
        else if (!strcmp(ps->valuestring, "never")) *scheme = QV_PREPEND_NEVER;
        else return qv_fail(QV_ERR_INPUT, "%s: %s.prepend_scheme '%s' is not always/first/never", t->label, where,
                            ps->valuestring);
        return QV_OK;
    }
    /* older files: add_prefix_space (default true) */
    int ok = 1;
    *scheme = opt_bool(j, "add_prefix_space", 1, &ok) ? QV_PREPEND_ALWAYS : QV_PREPEND_NEVER;
    return ok ? QV_OK : qv_fail(QV_ERR_INPUT, "%s: %s.add_prefix_space is not a boolean", t->label, where);
}

static qv_status metaspace_repl(const qv_tok *t, const cJSON *j, const char *where, char *repl, size_t *len)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
    if (!cJSON_IsString(r)) return qv_fail(QV_ERR_INPUT, "%s: %s.replacement is not a string", t->label, where);
    size_t n = strlen(r->valuestring);
    if (n == 0 || n != (size_t)qv_utf8_len((unsigned char)r->valuestring[0]) ||
        qv_utf8_valid_prefix((const unsigned char *)r->valuestring, n) != n)
        return qv_fail(QV_ERR_INPUT, "%s: %s.replacement must be one character", t->label, where);
    memcpy(repl, r->valuestring, n);
    *len = n;
    return QV_OK;
}

/* ---------------- normalizer ---------------- */

static qv_status add_norm(qv_tok *t, const cJSON *j, int depth)
{
    qv_status st;
    const char *ty = type_of(t, j, "normalizer", &st);
    if (!ty) return st;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(l)) return qv_fail(QV_ERR_INPUT, "%s: normalizer Sequence has no normalizers array", t->label);
        if (depth > 8) return qv_fail(QV_ERR_INPUT, "%s: normalizer Sequences nested too deep", t->label);
        for (const cJSON *c = l->child; c; c = c->next) QV_TRY(add_norm(t, c, depth + 1));
        return QV_OK;
    }
    qv_norm_step s = {0};
    if (!strcmp(ty, "Prepend")) {
        s.kind = QV_NORM_PREPEND;
        QV_TRY(dup_str(t, cJSON_GetObjectItemCaseSensitive(j, "prepend"), "normalizer Prepend.prepend", &s.a, &s.alen));
    } else if (!strcmp(ty, "Replace")) {
        s.kind = QV_NORM_REPLACE;
        QV_TRY(string_pattern(t, j, "normalizer Replace", &s.a, &s.alen));
        qv_status st2 = dup_str(t, cJSON_GetObjectItemCaseSensitive(j, "content"), "normalizer Replace.content", &s.b, &s.blen);
        if (st2 != QV_OK) {
            free(s.a);
            return st2;
        }
    } else if (!strcmp(ty, "NFC")) {
        s.kind = QV_NORM_NFC;
    } else {
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported", t->label, ty);
    }
    qv_norm_step *n = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *n);
    if (!n) {
        free(s.a);
        free(s.b);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    }
    t->norm = n;
    t->norm[t->n_norm++] = s;
    return QV_OK;
}

qv_status qv_tok_parse_normalizer(qv_tok *t, const cJSON *j)
{
    return !j || cJSON_IsNull(j) ? QV_OK : add_norm(t, j, 0);
}

/* ---------------- pre-tokenizer ---------------- */

static qv_status push_pre(qv_tok *t, qv_pre_step *s)
{
    qv_pre_step *n = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *n);
    if (!n) {
        pcre2_match_data_free(s->md);
        pcre2_code_free(s->re);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    }
    t->pre = n;
    t->pre[t->n_pre++] = *s;
    return QV_OK;
}

static qv_status add_pre(qv_tok *t, const cJSON *j, int depth)
{
    qv_status st;
    const char *ty = type_of(t, j, "pre_tokenizer", &st);
    if (!ty) return st;
    int ok = 1;
    qv_pre_step s = {0};
    if (!strcmp(ty, "Sequence")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(l)) return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Sequence has no pretokenizers array", t->label);
        if (depth > 8) return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Sequences nested too deep", t->label);
        for (const cJSON *c = l->child; c; c = c->next) QV_TRY(add_pre(t, c, depth + 1));
        return QV_OK;
    }
    if (!strcmp(ty, "Split")) {
        s.kind = QV_PRE_SPLIT;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const cJSON *re = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
        const cJSON *str = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
        const cJSON *pat = re ? re : str;
        if (!cJSON_IsString(pat) || !*pat->valuestring)
            return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Split.pattern is not {\"Regex\": s} or {\"String\": s}", t->label);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "behavior");
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        s.behavior = -1;
        for (int i = 0; i < 5 && cJSON_IsString(b); i++)
            if (!strcmp(b->valuestring, names[i])) s.behavior = i;
        if (s.behavior < 0)
            return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Split.behavior is not one of Removed, Isolated, "
                           "MergedWithPrevious, MergedWithNext, Contiguous", t->label);
        s.invert = opt_bool(j, "invert", 0, &ok);
        if (!ok) return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Split.invert is not a boolean", t->label);
        QV_TRY(qv_tok_compile(t, pat->valuestring, strlen(pat->valuestring), pat == str, &s.re, &s.md));
    } else if (!strcmp(ty, "ByteLevel")) {
        s.kind = QV_PRE_BYTELEVEL;
        s.add_prefix_space = opt_bool(j, "add_prefix_space", 1, &ok);
        int use_regex = opt_bool(j, "use_regex", 1, &ok);
        if (!ok) return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer ByteLevel options must be booleans", t->label);
        if (use_regex) QV_TRY(qv_tok_compile(t, gpt2_pattern, sizeof gpt2_pattern - 1, 0, &s.re, &s.md));
    } else if (!strcmp(ty, "Metaspace")) {
        s.kind = QV_PRE_METASPACE;
        QV_TRY(metaspace_repl(t, j, "pre_tokenizer Metaspace", s.repl, &s.repl_len));
        QV_TRY(prepend_scheme(t, j, "pre_tokenizer Metaspace", &s.prepend_scheme));
        s.split = opt_bool(j, "split", 1, &ok);
        if (!ok) return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer Metaspace.split is not a boolean", t->label);
    } else {
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported", t->label, ty);
    }
    return push_pre(t, &s);
}

qv_status qv_tok_parse_pretok(qv_tok *t, const cJSON *j)
{
    return !j || cJSON_IsNull(j) ? QV_OK : add_pre(t, j, 0);
}

/* ---------------- decoder ---------------- */

static qv_status add_dec(qv_tok *t, const cJSON *j, int depth)
{
    qv_status st;
    const char *ty = type_of(t, j, "decoder", &st);
    if (!ty) return st;
    qv_dec_step s = {0};
    if (!strcmp(ty, "Sequence")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(l)) return qv_fail(QV_ERR_INPUT, "%s: decoder Sequence has no decoders array", t->label);
        if (depth > 8) return qv_fail(QV_ERR_INPUT, "%s: decoder Sequences nested too deep", t->label);
        for (const cJSON *c = l->child; c; c = c->next) QV_TRY(add_dec(t, c, depth + 1));
        return QV_OK;
    }
    if (!strcmp(ty, "ByteLevel")) s.kind = QV_DEC_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) s.kind = QV_DEC_BYTEFALLBACK;
    else if (!strcmp(ty, "Fuse")) s.kind = QV_DEC_FUSE;
    else if (!strcmp(ty, "Replace")) {
        s.kind = QV_DEC_REPLACE;
        QV_TRY(string_pattern(t, j, "decoder Replace", &s.a, &s.alen));
        st = dup_str(t, cJSON_GetObjectItemCaseSensitive(j, "content"), "decoder Replace.content", &s.b, &s.blen);
        if (st != QV_OK) {
            free(s.a);
            return st;
        }
    } else if (!strcmp(ty, "Strip")) {
        s.kind = QV_DEC_STRIP;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "start"), *b = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || b->valuedouble < 0 ||
            a->valuedouble > 1e6 || b->valuedouble > 1e6)
            return qv_fail(QV_ERR_INPUT, "%s: decoder Strip.start/stop are not non-negative integers", t->label);
        s.start = (int)a->valuedouble;
        s.stop = (int)b->valuedouble;
        QV_TRY(dup_str(t, cJSON_GetObjectItemCaseSensitive(j, "content"), "decoder Strip.content", &s.a, &s.alen));
        if (s.alen != 1) {
            free(s.a);
            return qv_fail(QV_ERR_UNSUPPORTED, "%s: decoder Strip.content other than one ASCII character is not supported",
                           t->label);
        }
    } else if (!strcmp(ty, "Metaspace")) {
        s.kind = QV_DEC_METASPACE;
        char repl[8];
        size_t rl;
        QV_TRY(metaspace_repl(t, j, "decoder Metaspace", repl, &rl));
        QV_TRY(prepend_scheme(t, j, "decoder Metaspace", &s.prepend_scheme));
        s.a = malloc(rl + 1);
        if (!s.a) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
        memcpy(s.a, repl, rl);
        s.a[rl] = '\0';
        s.alen = rl;
    } else {
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported", t->label, ty);
    }
    qv_dec_step *n = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *n);
    if (!n) {
        free(s.a);
        free(s.b);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", t->label);
    }
    t->dec = n;
    t->dec[t->n_dec++] = s;
    return QV_OK;
}

qv_status qv_tok_parse_decoder(qv_tok *t, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return QV_OK;
    t->has_decoder = 1;
    return add_dec(t, j, 0);
}

/* ---------------- post-processor: where add_bos puts what ---------------- */

static qv_status template_ids(qv_tok *t, const cJSON *j, const char *tok_name, int32_t *ids, int *n, int max)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    const cJSON *e = cJSON_IsObject(sp) ? cJSON_GetObjectItemCaseSensitive(sp, tok_name) : NULL;
    const cJSON *l = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "ids") : NULL;
    if (!cJSON_IsArray(l))
        return qv_fail(QV_ERR_INPUT, "%s: post_processor template names '%s' but special_tokens has no ids for it",
                       t->label, tok_name);
    for (const cJSON *c = l->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble >= t->n_ids)
            return qv_fail(QV_ERR_INPUT, "%s: post_processor special token '%s' has an id outside the vocab", t->label,
                           tok_name);
        if (*n >= max)
            return qv_fail(QV_ERR_UNSUPPORTED, "%s: post_processor adds more than %d special tokens", t->label, max);
        ids[(*n)++] = (int32_t)c->valuedouble;
    }
    return QV_OK;
}

static qv_status add_post(qv_tok *t, const cJSON *j, int depth)
{
    qv_status st;
    const char *ty = type_of(t, j, "post_processor", &st);
    if (!ty) return st;
    if (!strcmp(ty, "ByteLevel")) return QV_OK; /* adjusts offsets only */
    if (!strcmp(ty, "Sequence")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(l)) return qv_fail(QV_ERR_INPUT, "%s: post_processor Sequence has no processors array", t->label);
        if (depth > 8) return qv_fail(QV_ERR_INPUT, "%s: post_processor Sequences nested too deep", t->label);
        for (const cJSON *c = l->child; c; c = c->next) QV_TRY(add_post(t, c, depth + 1));
        return QV_OK;
    }
    if (strcmp(ty, "TemplateProcessing") != 0)
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: post_processor '%s' is not supported", t->label, ty);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    if (!cJSON_IsArray(single)) return qv_fail(QV_ERR_INPUT, "%s: TemplateProcessing.single is not an array", t->label);
    int seen_a = 0;
    int32_t suffix[8];
    int n_suffix = 0;
    for (const cJSON *p = single->child; p; p = p->next) {
        const cJSON *spt = cJSON_GetObjectItemCaseSensitive(p, "SpecialToken");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "Sequence");
        if (cJSON_IsObject(seq)) {
            seen_a = 1;
        } else if (cJSON_IsObject(spt) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(spt, "id"))) {
            const char *name = cJSON_GetObjectItemCaseSensitive(spt, "id")->valuestring;
            if (seen_a) QV_TRY(template_ids(t, j, name, suffix, &n_suffix, 8));
            else QV_TRY(template_ids(t, j, name, t->bos, &t->n_bos, 8));
        } else {
            return qv_fail(QV_ERR_INPUT, "%s: TemplateProcessing.single has an item that is neither SpecialToken nor Sequence",
                           t->label);
        }
    }
    if (n_suffix) t->eos = suffix[0];
    return QV_OK;
}

qv_status qv_tok_parse_post(qv_tok *t, const cJSON *j)
{
    return !j || cJSON_IsNull(j) ? QV_OK : add_post(t, j, 0);
}
