/* Quantized models and their checkpoint: RTN quantization is NUMERICS.md's quantizer packed into
 * the kernels' layout; write -> open is bit exact for every format; every corruption of a
 * checkpoint is rejected by `qvet info --quantized` with exit 2 and a message naming the tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/qmodel.h"
#include "qvet/qoq.h"
#include "qvet/safetensors.h"
#include "qvet/synth.h"

/* qv_test_tmpdir() returns a fresh malloc'd name per call: keep one per process */
static const char *tmpdir(void)
{
    static char d[256]; /* mkdtemp names are short; small enough that callers' buffers hold them */
    if (!d[0]) {
        char *t = qv_test_tmpdir();
        snprintf(d, sizeof d, "%s", t);
        free(t);
    }
    return d;
}

static qv_model *synth(void)
{
    qv_model *m = NULL;
    ck_assert_msg(qv_synth_open(QV_SYNTH_TINY, 1, &m) == QV_OK, "%s", qv_last_error());
    return m;
}

static size_t lin_bytes(const qv_qlinear *l, int which)
{
    size_t N = (size_t)l->N, K = (size_t)l->K;
    switch (which) {
    case 0: return l->fmt == QV_QFMT_W8A8 ? N * K : N * K / 2;
    case 1: return l->s0 ? N * 2 : 0;
    case 2: return l->s1 ? N * K / 128 : 0;
    case 3: return l->sz1 ? N * K / 128 : 0;
    case 4: return l->scale ? N * 2 : 0;
    case 5: return l->szero ? N * 2 : 0;
    default: return l->bias ? N * 4 : 0;
    }
}

static const void *lin_ptr(const qv_qlinear *l, int which)
{
    const void *p[] = {l->qweight, l->s0, l->s1, l->sz1, l->scale, l->szero, l->bias};
    return p[which];
}

static void assert_fp_equal(const qv_tensor *a, const qv_tensor *b, const char *what)
{
    int64_t n = qv_tensor_numel(a);
    ck_assert_int_eq(n, qv_tensor_numel(b));
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    ck_assert(qv_tensor_to_f32(a, x) == QV_OK && qv_tensor_to_f32(b, y) == QV_OK);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(qv_fp32_to_fp16(x[i]) == qv_fp32_to_fp16(y[i]), "%s[%lld] differs", what, (long long)i);
    free(x);
    free(y);
}

/* RTN g128 is exactly qv_quant_w4g128_ref on the model's FP32 weights, packed. */
START_TEST(rtn_g128_is_the_reference_quantizer_packed)
{
    qv_model *m = synth();
    qv_qmodel *qm = NULL;
    ck_assert_msg(qv_qmodel_quantize_rtn(m, QV_QFMT_W4A8_G128, 4, &qm) == QV_OK, "%s", qv_last_error());
    const qv_tensor *t = &m->layers[1].w_down;
    int N = (int)t->shape[0], K = (int)t->shape[1], G = K / 128;
    float *W = malloc(sizeof(float) * (size_t)N * K);
    ck_assert(qv_tensor_to_f32(t, W) == QV_OK);
    uint8_t *u = malloc((size_t)N * K), *s1 = malloc((size_t)N * G), *z = malloc((size_t)N * G),
            *sz1 = malloc((size_t)N * G), *u2 = malloc((size_t)N * K), *s12 = malloc((size_t)N * G),
            *sz12 = malloc((size_t)N * G);
    qv_fp16 *s0 = malloc(sizeof(qv_fp16) * (size_t)N);
    ck_assert(qv_quant_w4g128_ref(W, N, K, QV_QOQ_PROTECT, u, s0, s1, z, sz1) == QV_OK);
    const qv_qlinear *l = qv_qmodel_linear(qm, 1, QV_QL_DOWN);
    ck_assert_int_eq(l->N, N);
    ck_assert_int_eq(l->K, K);
    ck_assert(qv_qlinear_unpack(l, u2, s12, sz12) == QV_OK);
    ck_assert_int_eq(memcmp(u, u2, (size_t)N * K), 0);
    ck_assert_int_eq(memcmp(s1, s12, (size_t)N * G), 0);
    ck_assert_int_eq(memcmp(sz1, sz12, (size_t)N * G), 0);
    ck_assert_int_eq(memcmp(s0, l->s0, sizeof(qv_fp16) * (size_t)N), 0);
    ck_assert_msg(qv_qlinear_check(l, "rtn") == QV_OK, "%s", qv_last_error());
    free(W), free(u), free(s1), free(z), free(sz1), free(u2), free(s12), free(sz12), free(s0);
    qv_qmodel_close(qm);
    qv_model_close(m);
}
END_TEST

/* Per-channel clip ratios shrink the scale by the ratio (up to FP16 rounding). */
START_TEST(clip_ratio_scales_the_range)
{
    int N = 32, K = 128;
    float *W = malloc(sizeof(float) * N * K), *clip = malloc(sizeof(float) * N);
    qv_test_rng r = {7};
    for (int i = 0; i < N * K; i++) W[i] = (float)qv_test_normal(&r);
    for (int n = 0; n < N; n++) clip[n] = 0.5f;
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        qv_qlinear a, b;
        ck_assert(qv_qlinear_quantize(W, N, K, (qv_qformat)f, NULL, NULL, &a) == QV_OK);
        ck_assert(qv_qlinear_quantize(W, N, K, (qv_qformat)f, clip, NULL, &b) == QV_OK);
        for (int n = 0; n < N; n++) {
            float sa = qv_fp16_to_fp32(f == QV_QFMT_W4A8_G128 ? a.s0[n] : a.scale[n]);
            float sb = qv_fp16_to_fp32(f == QV_QFMT_W4A8_G128 ? b.s0[n] : b.scale[n]);
            ck_assert_msg(fabsf(sb - 0.5f * sa) <= 0.001f * sa, "format %d channel %d: %g vs %g", f, n, sb, sa);
        }
        ck_assert(qv_qlinear_check(&b, "clipped") == QV_OK);
        qv_qlinear_free(&a);
        qv_qlinear_free(&b);
    }
    clip[3] = 1.5f;
    qv_qlinear c;
    ck_assert_int_eq(qv_qlinear_quantize(W, N, K, QV_QFMT_W8A8, clip, NULL, &c), QV_ERR_INPUT);
    free(W);
    free(clip);
}
END_TEST

static char *write_ckpt(qv_qformat fmt, int kv, const char *name, qv_qmodel **keep)
{
    qv_model *m = synth();
    qv_qmodel *qm = NULL;
    ck_assert_msg(qv_qmodel_quantize_rtn(m, fmt, kv, &qm) == QV_OK, "%s", qv_last_error());
    char *path = malloc(512);
    snprintf(path, 512, "%s/%s", tmpdir(), name);
    ck_assert_msg(qv_qmodel_write(qm, path) == QV_OK, "%s", qv_last_error());
    if (keep) {
        *keep = qm;
    } else {
        qv_qmodel_close(qm);
        qv_model_close(m);
    }
    return path;
}

/* write -> open: every array of every linear, the FP parts and the metadata are identical. */
START_TEST(checkpoint_round_trip_is_bit_exact)
{
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        qv_qmodel *a = NULL, *b = NULL;
        char *path = write_ckpt((qv_qformat)f, f == QV_QFMT_W8A8 ? 16 : 4, "rt.safetensors", &a);
        ck_assert_msg(qv_qmodel_open(path, &b) == QV_OK, "%s", qv_last_error());
        ck_assert_int_eq(b->meta.fmt, f);
        ck_assert_int_eq(b->meta.kv_bits, a->meta.kv_bits);
        ck_assert_int_eq(b->meta.group_size, f == QV_QFMT_W4A8_G128 ? 128 : 0);
        ck_assert_str_eq(b->meta.method, "rtn");
        ck_assert_int_eq(b->n_layers, a->n_layers);
        for (int i = 0; i < a->n_layers * QV_QL_COUNT; i++)
            for (int w = 0; w < 7; w++) {
                size_t n = lin_bytes(&a->lin[i], w);
                ck_assert_int_eq(n, lin_bytes(&b->lin[i], w));
                if (n) ck_assert_msg(memcmp(lin_ptr(&a->lin[i], w), lin_ptr(&b->lin[i], w), n) == 0, "linear %d array %d", i, w);
            }
        const qv_model *ma = a->model, *mb = b->model;
        ck_assert_int_eq(memcmp(&ma->cfg.hidden_size, &mb->cfg.hidden_size, sizeof(int) * 8), 0);
        assert_fp_equal(&ma->embed, &mb->embed, "embed");
        assert_fp_equal(&ma->lm_head, &mb->lm_head, "lm_head");
        assert_fp_equal(&ma->final_norm, &mb->final_norm, "norm");
        for (int l = 0; l < ma->cfg.num_layers; l++) {
            assert_fp_equal(&ma->layers[l].input_norm, &mb->layers[l].input_norm, "input_norm");
            assert_fp_equal(&ma->layers[l].post_norm, &mb->layers[l].post_norm, "post_norm");
        }
        ck_assert_ptr_nonnull(mb->tok);
        qv_model *orig = a->model;
        qv_qmodel_close(a);
        qv_model_close(orig);
        qv_qmodel_close(b);
        unlink(path);
        free(path);
    }
}
END_TEST

/* ---- corruption: byte patches of a good file, and rewritten tensors ---- */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_int_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* File offset of tensor `name`'s first byte. */
static size_t data_offset(const char *path, const char *name)
{
    qv_st_file *f = NULL;
    ck_assert(qv_st_open(path, &f) == QV_OK);
    const qv_st_entry *e = qv_st_find(f, name);
    ck_assert_ptr_nonnull(e);
    size_t off = (size_t)((const unsigned char *)e->t.data - f->base);
    qv_st_close(f);
    return off;
}

static void expect_rejected(const char *path, const char *needle)
{
    char args[1024], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "info --quantized '%s'", path);
    int rc = qv_test_run_qvet(args, &out, &err);
    printf("rejected (%s): %s", needle, err);
    ck_assert_msg(rc == 2, "exit %d for %s, stderr: %s", rc, needle, err);
    ck_assert_msg(strstr(err, needle) != NULL, "stderr lacks '%s': %s", needle, err);
    free(out);
    free(err);
}

static void patch(const char *good, const char *bad, const char *tensor, size_t at, const void *bytes, size_t n)
{
    size_t size;
    unsigned char *b = slurp(good, &size);
    memcpy(b + data_offset(good, tensor) + at, bytes, n);
    spit(bad, b, size);
    free(b);
}

START_TEST(corrupt_g128_checkpoints_are_rejected)
{
    char *good = write_ckpt(QV_QFMT_W4A8_G128, 4, "good.safetensors", NULL);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir());
    char *out = NULL, *err = NULL, args[700];
    snprintf(args, sizeof args, "info --quantized '%s'", good);
    ck_assert_int_eq(qv_test_run_qvet(args, &out, &err), 0);
    ck_assert_msg(strstr(out, "format                   w4a8-g128") && strstr(out, "kv_bits                  4"), "%s", out);
    free(out);
    free(err);

    const char *s1 = "model.layers.2.mlp.up_proj.s1", *sz1 = "model.layers.2.mlp.up_proj.sz1";
    size_t size;
    unsigned char *g = slurp(good, &size);
    unsigned char a = g[data_offset(good, s1) + 5];
    free(g);
    unsigned char v = 0;
    patch(good, bad, s1, 5, &v, 1);
    expect_rejected(bad, "model.layers.2.mlp.up_proj.s1");
    v = 17;
    patch(good, bad, s1, 5, &v, 1);
    expect_rejected(bad, "has s1 = 17");
    v = a > 1 ? (unsigned char)(a + 1) : 16; /* not a multiple of s1, or above 15*s1 when s1 = 1 */
    patch(good, bad, sz1, 5, &v, 1);
    expect_rejected(bad, "model.layers.2.mlp.up_proj.sz1");
    /* a flipped byte of s1 into a legal but wrong value: codes then dequantize outside INT8 */
    v = 16;
    unsigned char z = 0;
    patch(good, bad, s1, 0, &v, 1);
    {
        size_t n2;
        unsigned char *b = slurp(bad, &n2);
        b[data_offset(good, sz1)] = z;
        spit(bad, b, n2);
        free(b);
    }
    expect_rejected(bad, "up_proj.qweight");
    qv_fp16 nan = 0x7e00;
    patch(good, bad, "model.layers.0.self_attn.q_proj.s0", 2, &nan, 2);
    expect_rejected(bad, "q_proj.s0: NaN");
    patch(good, bad, "model.norm.weight", 2, &nan, 2);
    expect_rejected(bad, "model.norm.weight");
    /* truncated */
    g = slurp(good, &size);
    spit(bad, g, size - 1000);
    free(g);
    expect_rejected(bad, "bad.safetensors");
    unlink(bad);
    unlink(good);
    free(good);
}
END_TEST

/* Rewrites the good file with tensor `name` replaced (or dropped when data is NULL), or with the
 * "qvet" metadata replaced. */
static void rewrite(const char *good, const char *bad, const char *name, qv_dtype dt, int ndim, const int64_t *shape,
                    const void *data, const char *qvet_meta)
{
    qv_st_file *f = NULL;
    ck_assert(qv_st_open(good, &f) == QV_OK);
    qv_st_writer *w = qv_st_writer_new();
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        if (name && strcmp(e->name, name) == 0) {
            if (data) ck_assert(qv_st_writer_add(w, name, dt, ndim, shape, data) == QV_OK);
            continue;
        }
        ck_assert(qv_st_writer_add(w, e->name, e->t.dtype, e->t.ndim, e->t.shape, e->t.data) == QV_OK);
    }
    for (int i = 0; i < f->n_meta; i++) {
        const char *v = f->meta_values[i];
        if (qvet_meta && strcmp(f->meta_keys[i], "qvet") == 0) v = qvet_meta;
        ck_assert(qv_st_writer_meta(w, f->meta_keys[i], v) == QV_OK);
    }
    ck_assert(qv_st_writer_write(w, bad) == QV_OK);
    qv_st_writer_free(w);
    qv_st_close(f);
}

START_TEST(mismatched_checkpoints_are_rejected)
{
    char *good = write_ckpt(QV_QFMT_W4A8_CHN, 4, "goodc.safetensors", NULL);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/badc.safetensors", tmpdir());
    static qv_fp16 buf[1 << 18];
    int64_t sh[2] = {383, 0};
    rewrite(good, bad, "model.layers.1.self_attn.o_proj.scale", QV_F16, 1, sh, buf, NULL);
    expect_rejected(bad, "o_proj.scale': shape [383]");
    rewrite(good, bad, "model.layers.1.mlp.gate_proj.szero", 0, 0, NULL, NULL, NULL);
    expect_rejected(bad, "missing tensor 'model.layers.1.mlp.gate_proj.szero'");
    int64_t wrong[2] = {384, 192};
    rewrite(good, bad, "model.layers.0.mlp.down_proj.qweight", QV_I8, 2, wrong, buf, NULL);
    expect_rejected(bad, "down_proj.qweight': dtype I8");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL,
            "{\"format_version\":2,\"format\":\"w4a8-chn\",\"group_size\":0,\"kv_bits\":4}");
    expect_rejected(bad, "format version 2 is not supported");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL,
            "{\"format_version\":1,\"format\":\"w4a8-g128\",\"group_size\":128,\"kv_bits\":4}");
    expect_rejected(bad, "missing tensor");
    /* per-channel: a scaled zero that no zero point in [0, 15] produces, a NaN and a zero scale */
    size_t size;
    unsigned char *g = slurp(good, &size);
    size_t so = data_offset(good, "model.layers.3.self_attn.v_proj.scale");
    size_t zo = data_offset(good, "model.layers.3.self_attn.v_proj.szero");
    qv_fp16 s;
    memcpy(&s, g + so, 2);
    qv_fp16 z16 = qv_fp32_to_fp16(qv_fp16_to_fp32(s) * 16.0f);
    memcpy(g + zo, &z16, 2);
    spit(bad, g, size);
    expect_rejected(bad, "v_proj.szero: channel 0");
    qv_fp16 half = qv_fp32_to_fp16(qv_fp16_to_fp32(s) * 2.5f);
    memcpy(g + zo, &half, 2);
    spit(bad, g, size);
    expect_rejected(bad, "not fp16(scale * z)");
    free(g);
    qv_fp16 nan = 0x7e00, zero = 0;
    patch(good, bad, "model.layers.3.self_attn.v_proj.scale", 0, &nan, 2);
    expect_rejected(bad, "v_proj.scale: NaN");
    patch(good, bad, "model.layers.3.self_attn.v_proj.scale", 0, &zero, 2);
    expect_rejected(bad, "must be > 0");
    unlink(bad);
    unlink(good);
    free(good);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qmodel");
    TCase *tc = tcase_create("qmodel");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rtn_g128_is_the_reference_quantizer_packed);
    tcase_add_test(tc, clip_ratio_scales_the_range);
    tcase_add_test(tc, checkpoint_round_trip_is_bit_exact);
    tcase_add_test(tc, corrupt_g128_checkpoints_are_rejected);
    tcase_add_test(tc, mismatched_checkpoints_are_rejected);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
