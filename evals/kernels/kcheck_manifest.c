/* DIR/manifest.json of `qvet kernels --check` (docs/byo.md "Kernel level"): parsed strictly, so
 * that a typo (an unknown key, a role the op does not have) is an input error naming the
 * manifest and the case, never a silently skipped check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcheck_internal.h"
#include "qvet/fileio.h"
#include "qvet/qoq.h"
#include "ref/io/json_util.h"

#define KC_SCHEMA "qvet.kernel-check/1"

static const char *op_names[QV_KC_OP_COUNT] = {"w8a8",      "w4a8_chn",   "w4a8_g128",  "a8_quant",
                                               "kv4_quant", "rmsnorm_a8", "silu_mul_a8"};

const char *qv_kcheck_op_name(qv_kcheck_op op) { return (unsigned)op < QV_KC_OP_COUNT ? op_names[op] : "?"; }

static int is_gemm(qv_kcheck_op op) { return op <= QV_KC_W4A8_G128; }
static int is_fused(qv_kcheck_op op) { return op == QV_KC_RMSNORM_A8 || op == QV_KC_SILU_MUL_A8; }

/* A relative path inside DIR: no absolute path, no "..", so a manifest cannot point elsewhere. */
static int safe_rel_path(const char *p)
{
    if (!*p || p[0] == '/') return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
        if (!e) break;
        s = e + 1;
    }
    return 1;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n + 1 > cap) return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* A shape entry: integer in [lo, hi]. */
static qv_status shape_int(const char *mp, const char *cn, const cJSON *shape, const char *key, long lo, long hi,
                           int required, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(shape, key);
    if (!v) {
        if (!required) return QV_OK;
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': shape needs \"%s\"", mp, cn, key);
    }
    uint64_t x;
    if (qv_json_get_u53(v, &x) != 0 || (long)x < lo || (long)x > hi)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': shape \"%s\" must be an integer in [%ld, %ld]", mp, cn, key,
                       lo, hi);
    *out = (int)x;
    return QV_OK;
}

/* Shape rules of each op: what the reference functions and the packed layout accept. */
static qv_status parse_shape(const char *mp, qv_kcheck_case *c, const cJSON *shape)
{
    const char *cn = c->name;
    if (!cJSON_IsObject(shape)) return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"shape\" must be an object", mp, cn);
    static const char *gemm_keys[] = {"M", "N", "K", NULL}, *a8_keys[] = {"M", "K", NULL},
                      *kv4_keys[] = {"T", "H", "D", "page_size", NULL}, *silu_keys[] = {"M", "I", NULL};
    const char **keys = is_gemm(c->op)                                            ? gemm_keys
                        : c->op == QV_KC_A8_QUANT || c->op == QV_KC_RMSNORM_A8 ? a8_keys
                        : c->op == QV_KC_SILU_MUL_A8                          ? silu_keys
                                                                              : kv4_keys;
    for (const cJSON *e = shape->child; e; e = e->next) {
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= strcmp(e->string, keys[i]) == 0;
        if (!known) return qv_fail(QV_ERR_INPUT, "%s: case '%s': shape key \"%s\" does not apply to %s", mp, cn,
                                   e->string, qv_kcheck_op_name(c->op));
    }
    if (c->op == QV_KC_KV4_QUANT) {
        QV_TRY(shape_int(mp, cn, shape, "T", 1, 1 << 20, 1, &c->T));
        QV_TRY(shape_int(mp, cn, shape, "H", 1, 1024, 1, &c->H));
        QV_TRY(shape_int(mp, cn, shape, "D", 2, 4096, 1, &c->D));
        QV_TRY(shape_int(mp, cn, shape, "page_size", 1, 1 << 16, 0, &c->page));
        if (c->D % 2) return qv_fail(QV_ERR_INPUT, "%s: case '%s': head_dim D=%d must be even", mp, cn, c->D);
        return QV_OK;
    }
    QV_TRY(shape_int(mp, cn, shape, "M", 1, 65536, 1, &c->M));
    /* silu_mul_a8's row length is the intermediate size I (its input gate_up is [M, 2I]) */
    QV_TRY(shape_int(mp, cn, shape, c->op == QV_KC_SILU_MUL_A8 ? "I" : "K", 1, 262144, 1, &c->K));
    if (c->op == QV_KC_A8_QUANT || is_fused(c->op)) return QV_OK;
    QV_TRY(shape_int(mp, cn, shape, "N", 1, 262144, 1, &c->N));
    int kmax = c->op == QV_KC_W8A8 ? QV_QOQ_W8_KMAX : c->op == QV_KC_W4A8_CHN ? QV_QOQ_PC_KMAX : QV_QOQ_G128_KMAX;
    int kmul = c->op == QV_KC_W4A8_G128 ? QV_QOQ_GROUP : QV_QOQ_TILE;
    if (c->K % kmul || c->K > kmax)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': %s needs K a multiple of %d and at most %d, not %d", mp, cn,
                       qv_kcheck_op_name(c->op), kmul, kmax, c->K);
    if (c->op != QV_KC_W8A8 && !c->unpacked && c->N % QV_QOQ_TILE)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': packed W4 weights need N a multiple of 32, not %d "
                       "(docs/layout.md; \"weights\": \"unpacked\" has no such rule)", mp, cn, c->N);
    return QV_OK;
}

/* "tensors": {"role": "name"} or {"role": {"file": F, "name": N}}; roles the op lacks are errors. */
static qv_status parse_tensors(const char *mp, qv_kcheck_case *c, const char *deffile, const cJSON *tens)
{
    const qv_kc_role *roles = qv_kc_roles(c);
    for (int i = 0; roles[i].role; i++) {
        qv_kcheck_map *m = &c->map[c->n_map++];
        copy_str(m->role, sizeof m->role, roles[i].role);
        copy_str(m->name, sizeof m->name, roles[i].role);
        if (deffile && copy_str(m->file, sizeof m->file, deffile) != 0)
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': file name too long", mp, c->name);
    }
    if (tens && !cJSON_IsObject(tens))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"tensors\" must be an object role -> name", mp, c->name);
    for (const cJSON *e = tens ? tens->child : NULL; e; e = e->next) {
        qv_kcheck_map *m = NULL;
        for (int i = 0; i < c->n_map; i++)
            if (strcmp(c->map[i].role, e->string) == 0) m = &c->map[i];
        if (!m) {
            char list[256] = "";
            for (int i = 0; roles[i].role; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", roles[i].role);
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': %s (layout %s) has no tensor role \"%s\" (roles: %s)", mp,
                           c->name, qv_kcheck_op_name(c->op), c->qserve ? "qserve" : "qvet", e->string, list);
        }
        const cJSON *f = NULL, *n = e; /* object form: the name defaults to the role */
        if (cJSON_IsObject(e)) {
            f = cJSON_GetObjectItemCaseSensitive(e, "file");
            n = cJSON_GetObjectItemCaseSensitive(e, "name");
        }
        if ((!cJSON_IsObject(e) && !cJSON_IsString(e)) || (n && !cJSON_IsString(n)) || (f && !cJSON_IsString(f)) ||
            (n && copy_str(m->name, sizeof m->name, n->valuestring)) ||
            (f && copy_str(m->file, sizeof m->file, f->valuestring)))
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': tensor role \"%s\": expected a tensor name or "
                           "{\"file\": ..., \"name\": ...} (strings)", mp, c->name, m->role);
    }
    for (int i = 0; i < c->n_map; i++) {
        if (!c->map[i].file[0])
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': no file for tensor role \"%s\" (give the case a \"file\" "
                           "or the role a {\"file\", \"name\"})", mp, c->name, c->map[i].role);
        if (!safe_rel_path(c->map[i].file))
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': file '%s' must be a relative path inside the directory",
                           mp, c->name, c->map[i].file);
    }
    return QV_OK;
}

/* "eps" (rmsnorm_a8, required: the checker cannot know the model's, and a wrong default would only
 * show in s_a) and "sumsq" ("fp32", the default: FP32 in any order; "fp64": the kernel declares an
 * FP64 sum of squares, which tightens s_a's bound). */
static qv_status parse_fused_fields(const char *mp, qv_kcheck_case *c, const cJSON *e)
{
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(e, "eps"), *ss = cJSON_GetObjectItemCaseSensitive(e, "sumsq");
    if (c->op != QV_KC_RMSNORM_A8) {
        if (eps || ss)
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"%s\" applies to rmsnorm_a8 only", mp, c->name,
                           eps ? "eps" : "sumsq");
        return QV_OK;
    }
    if (!eps) return qv_fail(QV_ERR_INPUT, "%s: case '%s': rmsnorm_a8 needs \"eps\" (the kernel's epsilon)", mp, c->name);
    /* FP32 as the kernel holds it must be a normal positive number: 0 makes an all-zero row 0/0 */
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble >= 0x1p-126 && eps->valuedouble <= 1.0))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"eps\" must be a number in [2^-126, 1]", mp, c->name);
    c->eps = eps->valuedouble;
    if (ss && (!cJSON_IsString(ss) || (strcmp(ss->valuestring, "fp32") && strcmp(ss->valuestring, "fp64"))))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"sumsq\" is \"fp32\" or \"fp64\"", mp, c->name);
    c->sumsq_fp64 = ss && strcmp(ss->valuestring, "fp64") == 0;
    return QV_OK;
}

static qv_status parse_case(const char *mp, int idx, const cJSON *e, qv_kcheck_case *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "case %d", idx);
    if (!cJSON_IsObject(e)) return qv_fail(QV_ERR_INPUT, "%s: case %d: expected an object", mp, idx);
    static const char *keys[] = {"name", "op", "layout", "weights", "shape", "file", "tensors", "note", "eps", "sumsq",
                                 NULL};
    for (const cJSON *k = e->child; k; k = k->next) {
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= strcmp(k->string, keys[i]) == 0;
        if (!known) return qv_fail(QV_ERR_INPUT, "%s: case %d: unknown key \"%s\"", mp, idx, k->string);
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"), *op = cJSON_GetObjectItemCaseSensitive(e, "op"),
                *lay = cJSON_GetObjectItemCaseSensitive(e, "layout"), *wts = cJSON_GetObjectItemCaseSensitive(e, "weights"),
                *file = cJSON_GetObjectItemCaseSensitive(e, "file");
    if (name && (!cJSON_IsString(name) || !name->valuestring[0] || copy_str(c->name, sizeof c->name, name->valuestring)))
        return qv_fail(QV_ERR_INPUT, "%s: case %d: \"name\" must be a non-empty string (< 128 bytes)", mp, idx);
    if (!cJSON_IsString(op)) return qv_fail(QV_ERR_INPUT, "%s: case '%s': needs \"op\"", mp, c->name);
    c->op = QV_KC_OP_COUNT;
    for (int i = 0; i < QV_KC_OP_COUNT; i++)
        if (strcmp(op->valuestring, op_names[i]) == 0) c->op = (qv_kcheck_op)i;
    if (c->op == QV_KC_OP_COUNT)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': unknown op \"%s\" (known: w8a8, w4a8_chn, w4a8_g128, a8_quant, "
                       "kv4_quant, rmsnorm_a8, silu_mul_a8)", mp, c->name, op->valuestring);
    if (lay && (!cJSON_IsString(lay) || (strcmp(lay->valuestring, "qvet") && strcmp(lay->valuestring, "qserve"))))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"layout\" is \"qvet\" or \"qserve\"", mp, c->name);
    c->qserve = lay && strcmp(lay->valuestring, "qserve") == 0;
    if (c->qserve && is_fused(c->op))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': %s has no \"qserve\" layout (QServe's fused producers compute "
                       "another function, docs/byo.md: check their A8 step as a8_quant on the dumped FP16 values)",
                       mp, c->name, qv_kcheck_op_name(c->op));
    QV_TRY(parse_fused_fields(mp, c, e));
    if (wts) {
        if (c->op == QV_KC_W8A8 || !is_gemm(c->op))
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"weights\" applies to the W4 GEMMs only", mp, c->name);
        if (!cJSON_IsString(wts) || (strcmp(wts->valuestring, "packed") && strcmp(wts->valuestring, "unpacked")))
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"weights\" is \"packed\" or \"unpacked\"", mp, c->name);
        c->unpacked = strcmp(wts->valuestring, "unpacked") == 0;
    }
    if (file && !cJSON_IsString(file)) return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"file\" must be a string", mp, c->name);
    QV_TRY(parse_shape(mp, c, cJSON_GetObjectItemCaseSensitive(e, "shape")));
    return parse_tensors(mp, c, file ? file->valuestring : NULL, cJSON_GetObjectItemCaseSensitive(e, "tensors"));
}

void qv_kcheck_close(qv_kcheck_set *s)
{
    if (!s) return;
    free(s->dir);
    free(s->manifest_path);
    free(s->cases);
    free(s);
}

qv_status qv_kcheck_open(const char *dir, qv_kcheck_set **out)
{
    *out = NULL;
    if (!qv_is_dir(dir)) return qv_fail(QV_ERR_INPUT, "%s: not a directory (kernels --check wants DIR/manifest.json)", dir);
    qv_kcheck_set *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir)) || !(s->manifest_path = qv_path_join(dir, "manifest.json"))) {
        qv_kcheck_close(s);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    const char *mp = s->manifest_path;
    char *text = NULL;
    size_t len = 0;
    qv_status st = qv_read_file(mp, 4u << 20, &text, &len);
    if (st != QV_OK) {
        qv_kcheck_close(s);
        return st;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line = 0, col = 0;
        qv_json_line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        free(text);
        st = qv_fail(QV_ERR_INPUT, "%s: not valid JSON (line %d, column %d)", mp, line, col);
        qv_kcheck_close(s);
        return st;
    }
    free(text);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema"),
                *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, KC_SCHEMA) != 0)
        st = qv_fail(QV_ERR_INPUT, "%s: \"schema\" must be \"%s\"%s%s", mp, KC_SCHEMA,
                     cJSON_IsString(schema) ? ", not " : " (missing)", cJSON_IsString(schema) ? schema->valuestring : "");
    else if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) < 1)
        st = qv_fail(QV_ERR_INPUT, "%s: \"cases\" must be a non-empty array", mp);
    else if (cJSON_GetArraySize(cases) > 10000)
        st = qv_fail(QV_ERR_INPUT, "%s: more than 10000 cases", mp);
    if (st == QV_OK) {
        s->n_cases = cJSON_GetArraySize(cases);
        s->cases = calloc((size_t)s->n_cases, sizeof *s->cases);
        if (!s->cases) st = qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    int i = 0;
    for (const cJSON *e = st == QV_OK ? cases->child : NULL; e && st == QV_OK; e = e->next, i++) {
        st = parse_case(mp, i, e, &s->cases[i]);
        for (int j = 0; st == QV_OK && j < i; j++)
            if (strcmp(s->cases[j].name, s->cases[i].name) == 0)
                st = qv_fail(QV_ERR_INPUT, "%s: case name '%s' used twice (cases %d and %d)", mp, s->cases[i].name, j, i);
    }
    cJSON_Delete(root);
    if (st != QV_OK) {
        qv_kcheck_close(s);
        return st;
    }
    *out = s;
    return QV_OK;
}
