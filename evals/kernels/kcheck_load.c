/* The tensors of a `qvet kernels --check` case: which role each op reads and writes, with its
 * dtype and shape in each layout (the tables of docs/byo.md, "Kernel level"), and their loading
 * with every check an input deserves (presence, dtype, shape, finite inputs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcheck_internal.h"
#include "qvet/fileio.h"
#include "qvet/qoq.h"
#include "qvet/safetensors.h"

#define ANYF QV_DTYPE_COUNT
#define END {NULL, QV_F32, "", 0, 0}
/* shared tails: the GEMM outputs */
#define GEMM_OUT {"acc", QV_I32, "MN", 1, 1}, {"y", QV_F16, "MN", 1, 0}, END

static const qv_kc_role w8a8_qvet[] = {{"x", QV_I8, "MK", 0, 0}, {"s_a", QV_F32, "M", 0, 0}, {"w", QV_I8, "NK", 0, 0},
                                       {"s_w", QV_F16, "N", 0, 0}, GEMM_OUT};
static const qv_kc_role w8a8_qs[] = {{"x", QV_I8, "MK", 0, 0}, {"s_a", QV_F16, "M", 0, 0}, {"w", QV_I8, "NK", 0, 0},
                                     {"s_w", QV_F16, "N", 0, 0}, GEMM_OUT};
#define CHN(SA, W, RS, RSDT, RSOPT) \
    {{"x", QV_I8, "MK", 0, 0}, {"s_a", SA, "M", 0, 0}, {RS, RSDT, "M", 0, RSOPT}, {"w", QV_U8, W, 0, 0}, \
     {"s_w", QV_F16, "N", 0, 0}, {"sz", QV_F16, "N", 0, 0}, GEMM_OUT}
static const qv_kc_role chn_qvet_p[] = CHN(QV_F32, "Nh", "rowsum", QV_I32, 1);
static const qv_kc_role chn_qvet_u[] = CHN(QV_F32, "NK", "rowsum", QV_I32, 1);
static const qv_kc_role chn_qs_p[] = CHN(QV_F16, "Nh", "a_ssum", QV_F16, 0);
static const qv_kc_role chn_qs_u[] = CHN(QV_F16, "NK", "a_ssum", QV_F16, 0);
#define G128(SA, W, GD, GDT, ZN) \
    {{"x", QV_I8, "MK", 0, 0}, {"s_a", SA, "M", 0, 0}, {"w", QV_U8, W, 0, 0}, {"s0", QV_F16, "N", 0, 0}, \
     {"s1", GDT, GD, 0, 0}, {ZN, GDT, GD, 0, 0}, GEMM_OUT}
static const qv_kc_role g128_qvet_p[] = G128(QV_F32, "Nh", "GN", QV_U8, "sz1");
static const qv_kc_role g128_qvet_u[] = G128(QV_F32, "NK", "NG", QV_U8, "sz1");
static const qv_kc_role g128_qs_p[] = G128(QV_F16, "Nh", "GN", QV_I8, "s2_zeros");
static const qv_kc_role g128_qs_u[] = G128(QV_F16, "NK", "NG", QV_I8, "s2_zeros");
static const qv_kc_role a8_qvet[] = {{"x", ANYF, "MK", 0, 0}, {"q", QV_I8, "MK", 1, 0}, {"s_a", QV_F32, "M", 1, 0},
                                     {"rowsum", QV_I32, "M", 1, 1}, END};
static const qv_kc_role a8_qs[] = {{"x", ANYF, "MK", 0, 0}, {"q", QV_I8, "MK", 1, 0}, {"s_a", QV_F16, "M", 1, 0},
                                   {"a_ssum", QV_F16, "M", 1, 1}, END};
static const qv_kc_role kv4_qvet[] = {{"x", ANYF, "THD", 0, 0}, {"codes", QV_U8, "THd", 1, 0},
                                      {"scales", QV_F16, "TH", 1, 0}, {"mins", QV_F16, "TH", 1, 0}, END};
static const qv_kc_role kv4_qs[] = {{"x", ANYF, "THD", 0, 0}, {"codes", QV_U8, "THd", 1, 0},
                                    {"scales", QV_F16, "TH", 1, 0}, {"zeros", QV_F16, "TH", 1, 0}, END};
/* Fused producers (qvet layout only): the A8 outputs of a8_quant after the values' own inputs.
 * SiLU*mul takes gate and up as two tensors or as one gate_up [M, 2I] (gate first, as qvet's GPU
 * kernel reads it); which one is present is checked when the case runs (kcheck_fused.c). */
#define A8_OUT {"q", QV_I8, "MK", 1, 0}, {"s_a", QV_F32, "M", 1, 0}, {"rowsum", QV_I32, "M", 1, 1}, END
static const qv_kc_role rmsnorm_a8[] = {{"x", ANYF, "MK", 0, 0}, {"w", ANYF, "K", 0, 0}, A8_OUT};
static const qv_kc_role silu_mul_a8[] = {{"gate", ANYF, "MK", 0, 1}, {"up", ANYF, "MK", 0, 1},
                                         {"gate_up", ANYF, "MJ", 0, 1}, A8_OUT};
static const qv_kc_role kv4_paged[] = {{"x", ANYF, "THD", 0, 0}, {"pages", QV_U8, "PB", 1, 0}, END};

const qv_kc_role *qv_kc_roles(const qv_kcheck_case *c)
{
    const int q = c->qserve, u = c->unpacked;
    switch (c->op) {
    case QV_KC_W8A8: return q ? w8a8_qs : w8a8_qvet;
    case QV_KC_W4A8_CHN: return q ? (u ? chn_qs_u : chn_qs_p) : (u ? chn_qvet_u : chn_qvet_p);
    case QV_KC_W4A8_G128: return q ? (u ? g128_qs_u : g128_qs_p) : (u ? g128_qvet_u : g128_qvet_p);
    case QV_KC_A8_QUANT: return q ? a8_qs : a8_qvet;
    case QV_KC_RMSNORM_A8: return rmsnorm_a8;
    case QV_KC_SILU_MUL_A8: return silu_mul_a8;
    default: return c->page ? kv4_paged : q ? kv4_qs : kv4_qvet;
    }
}

long qv_kc_dim(const qv_kcheck_case *c, char sym)
{
    switch (sym) {
    case 'M': return c->M;
    case 'N': return c->N;
    case 'K': return c->K;
    case 'J': return 2L * c->K; /* silu_mul_a8's gate_up: [M, 2I] with I stored in K */
    case 'h': return c->K / 2;
    case 'G': return c->K / QV_QOQ_GROUP;
    case 'T': return c->T;
    case 'H': return c->H;
    case 'D': return c->D;
    case 'd': return c->D / 2;
    case 'P': return c->page ? (c->T + c->page - 1) / c->page : 0;
    case 'B': {
        size_t b = 0;
        qv_kv4_geom g = {c->H, c->D, c->page};
        return c->page && qv_kv4_page_bytes(g, &b) == QV_OK ? (long)b : -1;
    }
    default: return -1;
    }
}

void qv_kc_free(qv_kc_tensors *ts)
{
    for (int i = 0; i < ts->n; i++) free(ts->t[i].data);
    memset(ts, 0, sizeof *ts);
}

const qv_kc_tensor *qv_kc_get(const qv_kc_tensors *ts, const char *role)
{
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].present && strcmp(ts->t[i].spec->role, role) == 0) return &ts->t[i];
    return NULL;
}

static void shape_want(const qv_kcheck_case *c, const char *dims, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; dims[i] && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%ld", i ? ", " : "", qv_kc_dim(c, dims[i]));
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* One role from an opened file. */
static qv_status load_one(const qv_kcheck_case *c, const qv_kcheck_map *m, const qv_st_file *f, qv_kc_tensor *t)
{
    const qv_kc_role *spec = t->spec;
    const char *fp = t->file;
    snprintf(t->name, sizeof t->name, "%s", m->name);
    const qv_st_entry *e = qv_st_find(f, m->name);
    if (!e) {
        if (spec->optional) return QV_OK;
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': no tensor '%s' (%s %s of %s)", fp, c->name, m->name,
                       spec->out ? "output" : "input", spec->role, qv_kcheck_op_name(c->op));
    }
    const qv_tensor *v = &e->t;
    int anyf = spec->dt == ANYF;
    if (anyf ? (v->dtype != QV_F32 && v->dtype != QV_F16 && v->dtype != QV_BF16) : v->dtype != spec->dt)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': tensor '%s' (%s) is %s, expected %s", fp, c->name, m->name,
                       spec->role, qv_dtype_name(v->dtype), anyf ? "F32, F16 or BF16" : qv_dtype_name(spec->dt));
    char want[96], got[96];
    shape_want(c, spec->dims, want, sizeof want);
    int nd = (int)strlen(spec->dims), same = v->ndim == nd;
    for (int i = 0; same && i < nd; i++) same = v->shape[i] == qv_kc_dim(c, spec->dims[i]);
    if (!same)
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': tensor '%s' (%s) has shape %s, the manifest's shape gives %s", fp,
                       c->name, m->name, spec->role, qv_shape_str(v, got, sizeof got), want);
    if (!spec->out) {
        int64_t bad = qv_tensor_first_nonfinite(v);
        if (bad >= 0)
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': input tensor '%s' (%s) element %lld is NaN or Inf", fp, c->name,
                           m->name, spec->role, (long long)bad);
    }
    t->numel = (long)qv_tensor_numel(v);
    t->dt = v->dtype;
    size_t esz = anyf ? sizeof(float) : qv_dtype_size(v->dtype);
    t->data = malloc((size_t)t->numel * esz + 1);
    if (!t->data) return qv_fail(QV_ERR_NOMEM, "%s: out of memory", fp);
    if (anyf) QV_TRY(qv_tensor_to_f32(v, t->data));
    else memcpy(t->data, v->data, (size_t)t->numel * esz);
    t->present = 1;
    return QV_OK;
}

qv_status qv_kc_load(const qv_kcheck_set *s, const qv_kcheck_case *c, qv_kc_tensors *ts)
{
    memset(ts, 0, sizeof *ts);
    const qv_kc_role *roles = qv_kc_roles(c);
    /* files opened once per case (a case usually keeps all its tensors in one file) */
    qv_st_file *open_f[QV_KC_MAX_ROLES] = {0};
    const char *open_name[QV_KC_MAX_ROLES] = {0};
    int n_open = 0;
    qv_status st = QV_OK;
    for (int i = 0; roles[i].role && st == QV_OK; i++) {
        const qv_kcheck_map *m = NULL;
        for (int j = 0; j < c->n_map; j++)
            if (strcmp(c->map[j].role, roles[i].role) == 0) m = &c->map[j];
        qv_kc_tensor *t = &ts->t[ts->n++];
        t->spec = &roles[i];
        if (!m) { /* cannot happen: the manifest parser maps every role */
            st = qv_fail(QV_ERR_INTERNAL, "case '%s': role %s not mapped", c->name, roles[i].role);
            break;
        }
        char *path = qv_path_join(s->dir, m->file);
        if (!path) {
            st = qv_fail(QV_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(t->file, sizeof t->file, "%s", path);
        free(path);
        qv_st_file *f = NULL;
        for (int j = 0; j < n_open; j++)
            if (strcmp(open_name[j], m->file) == 0) f = open_f[j];
        if (!f) {
            if (!qv_path_exists(t->file)) {
                st = qv_fail(QV_ERR_INPUT, "%s: case '%s': no such file (tensor role %s)", t->file, c->name, m->role);
                break;
            }
            st = qv_st_open(t->file, &f);
            if (st != QV_OK) {
                st = qv_fail_prefix(st == QV_ERR_IO ? QV_ERR_IO : QV_ERR_INPUT, "case '%s'", c->name);
                break;
            }
            open_f[n_open] = f;
            open_name[n_open++] = m->file;
        }
        st = load_one(c, m, f, t);
    }
    for (int j = 0; j < n_open; j++) qv_st_close(open_f[j]);
    if (st != QV_OK) qv_kc_free(ts);
    return st;
}
