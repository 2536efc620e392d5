/* Differential tests of the GPU fused kernels and paged attention (issue 8) against their CPU
 * references (include/qvet/kernels_ref.h, ref/qoq's A8 and KV4):
 *   - standalone A8 (identical FP16 inputs): codes, s_a, row sums bit-exact;
 *   - RMSNorm + A8 and SiLU*mul + A8 (the kernel computes v itself): a code may differ only by one
 *     and only where the reference's pre-rounding value is within QV_A8_PRE_REL of the boundary
 *     (NUMERICS.md tie rule; ties counted and printed); s_a within the same relative bound; the
 *     row sum equals the sum of the kernel's own codes exactly; FP16 variants within 1/2 FP16 ulp
 *     plus the same relative bound;
 *   - RoPE + cache write: q/k/v FP16 bit-exact vs ref-fp32's rope; KV4 pages (codes, s, mn) and FP16
 *     pages byte-identical to qv_kv4_write_token's (whole pool compared, so stray writes fail);
 *   - attention: every output element within the derived bound of qv_ref_attention_row (FP64 on
 *     the same cache values), decode rows of ragged contexts 1, P-1, P, P+1, many pages, more than
 *     one chunk; prefill rows (causal) in kv4 mode and in serve mode (fresh FP16 K/V after a
 *     cached prefix); KV4 and FP16 caches; head_dim 64 (GQA 3) and 128 (GQA 4). Rows on the
 *     tensor-core KV4 kernel run twice, one row per block and on the tiled prefill variant: the
 *     two outputs must be bit-identical (first differing row/head/element reported).
 *   - BF16 (gpu-fp16 --dtype bf16): rmsnorm_bf16 / silu_mul_bf16 within the FP16 bound re-derived
 *     for BF16's unit roundoff 2^-8; rope_kv_write with a BF16 cache (q/k/v and pages) bit-exact
 *     vs qv_ref_rope_qkv_dt; attention over BF16 pages within qv_ref_attention_row_dt's bound; the
 *     engine's elementwise ops (embed, residual add with rounding, bias add) bit-exact in both types.
 * A8 variants (QV_A8_VARIANT, gpu/fused_a8_rows.cuh): the default checked against the reference on
 * shapes where blocks loop over many rows; QV_A8_ALL_VARIANTS=1 runs every variant there (each
 * bit-identical to the default) and the three producer tests once per variant (reference rule +
 * bit-identical to the default). Only with it, because the variants are bench knobs and one of them
 * (since removed) hung on the H200: a default run must not depend on them.
 * The CPU-only part (tie rule, bound sanity) runs everywhere; without a GPU the GPU part prints
 * "SKIP gpu: no device" and the program exits 77. QV_GPU_KERNELS_SMALL=1: fewer/smaller cases
 * (compute-sanitizer). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fp16.h"
#include "qvet/gpu.h"
#include "qvet/gpu_kernels.h"
#include "qvet/gpu_mem.h"
#include "qvet/kcases.h"
#include "qvet/kernels_ref.h"
#include "qvet/qoq.h"
#ifdef QV_CUDA
#include "gpu/engine_ops.h" /* the engine's elementwise ops (not a public API; only with CUDA) */
#endif

static int small_run(void) { return getenv("QV_GPU_KERNELS_SMALL") != NULL; }

static void *dev(size_t bytes)
{
    void *p = NULL;
    ck_assert_msg(qv_gpu_alloc(&p, bytes, "test") == QV_OK, "%s", qv_last_error());
    return p;
}
static void up(void *d, const void *h, size_t n) { ck_assert_msg(qv_gpu_upload(d, h, n) == QV_OK, "%s", qv_last_error()); }
static void down(void *h, const void *d, size_t n)
{
    ck_assert_msg(qv_gpu_sync() == QV_OK, "%s", qv_last_error());
    ck_assert_msg(qv_gpu_download(h, d, n) == QV_OK, "%s", qv_last_error());
}
#define OK(call) ck_assert_msg((call) == QV_OK, "%s", qv_last_error())

/* ---------------------------------------------------------------- CPU-only part */

START_TEST(tie_rule_accepts_only_neighbours_near_the_boundary)
{
    ck_assert_int_eq(qv_ref_a8_code_check(5, 5, 5.2f, QV_A8_PRE_REL), 0);
    ck_assert_int_eq(qv_ref_a8_code_check(6, 5, 5.5f, QV_A8_PRE_REL), 1);        /* exactly on it */
    ck_assert_int_eq(qv_ref_a8_code_check(6, 5, 5.4999995f, QV_A8_PRE_REL), 1);  /* 1 ulp below */
    ck_assert_int_eq(qv_ref_a8_code_check(6, 5, 5.49f, QV_A8_PRE_REL), -1);      /* far from it */
    ck_assert_int_eq(qv_ref_a8_code_check(7, 5, 5.5f, QV_A8_PRE_REL), -1);       /* two apart */
    ck_assert_int_eq(qv_ref_a8_code_check(-6, -5, -5.5f, QV_A8_PRE_REL), 1);
}
END_TEST

/* The shared A8 checks (kcase_fused_check.c) accept the reference's own outputs and reject a
 * code moved by one away from a boundary, a wrong row sum and (exact) a wrong s_a bit. */
START_TEST(fused_a8_checks_reject_planted_errors)
{
    enum { M = 3, K = 40 };
    float v[M * K], sa[M];
    int8_t q[M * K];
    int32_t rs[M];
    for (int i = 0; i < M * K; i++) v[i] = (float)((i * 37) % 23) * 0.37f - 4.0f;
    OK(qv_ref_a8_with_pre(v, M, K, q, sa, rs, NULL));
    qv_kfused_result r;
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_exact(M, K, v, q, sa, rs, &r));
    ck_assert(r.ok && r.n == M * K);
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_ties(M, K, v, q, sa, rs, &r));
    ck_assert(r.ok && r.ties == 0);
    q[5] = (int8_t)(q[5] + (q[5] < 0 ? 1 : -1)), rs[0] += q[5] < 0 ? 1 : -1; /* a code off by one, the sum kept consistent */
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_ties(M, K, v, q, sa, rs, &r));
    ck_assert_msg(!r.ok && r.code_bad == 1, "code off by one not flagged: %ld", r.code_bad);
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_exact(M, K, v, q, sa, rs, &r));
    ck_assert(!r.ok && r.code_bad == 1 && r.rowsum_bad == 1);
    OK(qv_ref_a8_with_pre(v, M, K, q, sa, rs, NULL));
    rs[2] += 1;
    sa[1] = nextafterf(sa[1], 0.0f);
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_exact(M, K, v, q, sa, rs, &r));
    ck_assert(!r.ok && r.rowsum_bad == 1 && r.sa_bad == 1 && r.first[0]);
    memset(&r, 0, sizeof r);
    OK(qv_kfused_check_a8_ties(M, K, v, q, sa, rs, &r));
    ck_assert(!r.ok && r.rowsum_bad == 1 && r.sa_bad == 0); /* one ulp of s_a is within the tie rule's bound */
}
END_TEST

START_TEST(attention_reference_bound_is_tight_but_positive)
{
    /* one position: softmax weight 1, out = v exactly; the bound is only the FP16 output rounding */
    float q[2 * 64], K[64], V[64];
    for (int i = 0; i < 128; i++) q[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 64; i++) K[i] = 0.25f * (float)(i % 5), V[i] = (float)i - 30.0f;
    double out[128], b[128];
    qv_ref_attention_row(q, K, V, 1, 2, 1, 64, 0.125f, out, b);
    for (int i = 0; i < 128; i++) {
        ck_assert(fabs(out[i] - V[i % 64]) < 1e-12);
        ck_assert(b[i] > 0 && b[i] < 1e-3 * (fabs(V[i % 64]) + 1));
    }
}
END_TEST

/* ---------------------------------------------------------------- A8 producers */

static long g_ties, g_codes;

static void fill_f16(qv_test_rng *r, uint16_t *h, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) h[i] = qv_fp32_to_fp16((float)qv_test_normal(r) * scale);
}

static void fill_16(qv_test_rng *r, qv_dtype16 t, uint16_t *h, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) h[i] = qv_fp32_to_dtype16(t, (float)qv_test_normal(r) * scale);
}

/* The 16-bit type a cache format implies for rope_kv_write / attention (gpu_kernels.h). */
static qv_dtype16 fmt_dt(qv_kv_fmt f) { return f == QV_KV_FMT_BF16 ? QV_DTYPE_BF16 : QV_DTYPE_FP16; }
static const char *fmt_name(qv_kv_fmt f) { return f == QV_KV_FMT_KV4 ? "kv4" : f == QV_KV_FMT_FP16 ? "fp16" : "bf16"; }

/* QV_A8_ALL_VARIANTS=1: the A8 producer tests run once per QV_A8_VARIANT (gpu/fused_a8_rows.cuh:
 * staged / register / one-pass paths, depths, threads per row, the rounding trick), each pass
 * checked against the reference as usual and, after the first (the default), against the
 * default's outputs bit for bit; otherwise one pass with the environment as it is. */
static int a8_passes(void)
{
    const char *e = getenv("QV_A8_ALL_VARIANTS");
    return e && strcmp(e, "1") == 0 ? qv_gpu_a8_variant_count() : 1;
}

/* selects pass i's variant (all passes: QV_A8_VARIANT set; one pass: left alone); its name */
static const char *a8_variant(int i, int passes)
{
    if (passes == 1) {
        const char *e = getenv("QV_A8_VARIANT");
        return e && *e ? e : "default";
    }
    const char *n = qv_gpu_a8_variant_name(i);
    ck_assert_msg(n != NULL, "A8 variant %d has no name", i);
    setenv("QV_A8_VARIANT", n, 1);
    return n;
}

static void a8_variants_done(int passes)
{
    if (passes > 1) unsetenv("QV_A8_VARIANT");
}

typedef struct {
    int8_t *q;
    float *sa;
    int32_t *rs;
} a8_out;

/* pass 0 keeps its outputs in *first; a later pass must equal them exactly (codes, s_a bits, row
 * sums): the variants change how rows are scheduled, never what is computed. */
static void a8_same(int pass, const char *what, const char *var, int M, int K, const int8_t *q, const float *sa,
                    const int32_t *rs, a8_out *first)
{
    size_t MK = (size_t)M * K;
    if (pass == 0) {
        first->q = malloc(MK), first->sa = malloc(M * 4), first->rs = malloc(M * 4);
        memcpy(first->q, q, MK), memcpy(first->sa, sa, M * 4), memcpy(first->rs, rs, M * 4);
        return;
    }
    for (size_t i = 0; i < MK; i++)
        ck_assert_msg(q[i] == first->q[i], "%s M=%d K=%d variant %s: code %zu (row %zu, column %zu) is %d, the default's %d",
                      what, M, K, var, i, i / K, i % K, q[i], first->q[i]);
    for (int m = 0; m < M; m++) {
        ck_assert_msg(memcmp(&sa[m], &first->sa[m], 4) == 0, "%s M=%d K=%d variant %s: s_a[%d] %.9g, the default's %.9g",
                      what, M, K, var, m, (double)sa[m], (double)first->sa[m]);
        ck_assert_msg(rs[m] == first->rs[m], "%s M=%d K=%d variant %s: rowsum[%d] %d, the default's %d", what, M, K, var,
                      m, (int)rs[m], (int)first->rs[m]);
    }
}

static void a8_out_free(a8_out *f)
{
    free(f->q), free(f->sa), free(f->rs);
    memset(f, 0, sizeof *f);
}

START_TEST(quant_a8_is_bit_exact)
{
    /* beyond the model shapes, the kernel's edges (fused_a8_rows.cuh): K % 8 != 0 (element path),
     * K = 4096 + 8 (one thread holds a lone extra chunk), tiny K (several rows per warp, dead rows
     * in the last block), K at the contract's maximum (8 chunks per thread), and M beyond what is
     * resident on an H100/H200 (132 SMs), so the blocks loop over rows with the next row prefetched */
    static const int shapes[][2] = {{1, 64}, {3, 4096}, {17, 1000}, {5, 14336}, {1, 4104}, {3, 4100},
                                    {2, 7}, {300, 64}, {1, 49152}, {1800, 4096}, {2500, 1000}};
    const size_t n_shapes = sizeof shapes / sizeof shapes[0];
    qv_test_rng r = {11};
    for (size_t si = 0; si < 2 * n_shapes; si++) {
        /* second pass: x and q one element off 16-byte alignment (the element path) */
        int M = shapes[si % n_shapes][0], K = shapes[si % n_shapes][1], off = si >= n_shapes;
        size_t MK = (size_t)M * K;
        uint16_t *x = malloc(MK * 2);
        float *xf = malloc(MK * 4), *gsa = malloc(M * 4);
        int8_t *gq = malloc(MK);
        int32_t *grs = malloc(M * 4);
        fill_f16(&r, x, MK, 3.0f);
        if (M > 2) { /* an all-zero row and a constant row */
            for (int k = 0; k < K; k++) x[k] = 0, x[K + k] = qv_fp32_to_fp16(-2.5f);
        }
        for (size_t i = 0; i < MK; i++) xf[i] = qv_fp16_to_fp32(x[i]);
        void *dx = dev(MK * 2 + 16), *dq = dev(MK + 16), *dsa = dev(M * 4), *drs = dev(M * 4);
        uint16_t *dxo = (uint16_t *)dx + off;
        int8_t *dqo = (int8_t *)dq + off;
        up(dxo, x, MK * 2);
        a8_out first = {0};
        const int passes = a8_passes();
        for (int pass = 0; pass < passes; pass++) {
            const char *var = a8_variant(pass, passes);
            OK(qv_gpu_memset(dq, 0x55, MK + 16));
            OK(qv_gpu_quant_a8(dxo, M, K, dqo, dsa, drs, NULL));
            down(gq, dqo, MK);
            down(gsa, dsa, M * 4);
            down(grs, drs, M * 4);
            qv_kfused_result res; /* the rule `qvet kernels` applies (evals/kernels/kcase_fused_check.c) */
            memset(&res, 0, sizeof res);
            OK(qv_kfused_check_a8_exact(M, K, xf, gq, gsa, grs, &res));
            ck_assert_msg(res.ok, "quant_a8 M=%d K=%d off %d variant %s: %ld codes, %ld s_a, %ld rowsums differ; first: %s", M,
                          K, off, var, res.code_bad, res.sa_bad, res.rowsum_bad, res.first);
            int8_t guard[16]; /* no stray code writes past the last row (nor before the first, off 1) */
            down(guard, (int8_t *)dq + MK + off, 16 - off);
            for (int i = 0; i < 16 - off; i++)
                ck_assert_msg(guard[i] == 0x55, "quant_a8 M=%d K=%d variant %s: write past the end", M, K, var);
            if (off) {
                down(guard, dq, 1);
                ck_assert_msg(guard[0] == 0x55, "quant_a8 M=%d K=%d variant %s: write before the start", M, K, var);
            }
            a8_same(pass, "quant_a8", var, M, K, gq, gsa, grs, &first);
        }
        a8_variants_done(passes);
        a8_out_free(&first);
        qv_gpu_free(dx), qv_gpu_free(dq), qv_gpu_free(dsa), qv_gpu_free(drs);
        free(x), free(xf), free(gsa), free(gq), free(grs);
    }
}
END_TEST

/* Compares a fused producer's A8 outputs with the reference's under the tie rule (the check
 * `qvet kernels` applies: evals/kernels/kcase_fused_check.c). */
static void check_a8_v(const char *what, const char *var, int M, int K, const float *v, const int8_t *gq,
                       const float *gsa, const int32_t *grs)
{
    qv_kfused_result res;
    memset(&res, 0, sizeof res);
    OK(qv_kfused_check_a8_ties(M, K, v, gq, gsa, grs, &res));
    ck_assert_msg(res.ok, "%s M=%d K=%d variant %s: %ld codes beyond the tie rule, %ld s_a beyond the bound, %ld row sums "
                  "not the codes' sum; first: %s", what, M, K, var, res.code_bad, res.sa_bad, res.rowsum_bad, res.first);
    g_ties += res.ties;
    g_codes += res.n;
    printf("%s M=%d K=%d variant %s: %ld codes, %ld ties\n", what, M, K, var, res.n, res.ties);
}


static void check_f16(const char *what, size_t n, const float *v, const uint16_t *g)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)qv_fp16_to_fp32(g[i]) - v[i]);
        ck_assert_msg(d <= (ldexp(1, -11) + QV_A8_PRE_REL) * fabs(v[i]) + ldexp(1, -25), "%s: element %zu %.9g vs %.9g",
                      what, i, (double)qv_fp16_to_fp32(g[i]), (double)v[i]);
    }
}

START_TEST(rmsnorm_a8_codes_match_up_to_ties)
{
    /* model shapes, then the kernel's edges (as quant_a8's); the last pass: x one float off
     * 16-byte alignment (the element path) */
    static const int shapes[][2] = {{1, 384}, {7, 4096}, {33, 1000}, {2, 14336}, {1, 4104}, {5, 4100},
                                    {300, 64}, {2, 12}, {1, 49152}, {1500, 4096}, {3, 4096}};
    const size_t n_shapes = sizeof shapes / sizeof shapes[0];
    qv_test_rng r = {21};
    for (size_t si = 0; si < n_shapes; si++) {
        int M = shapes[si][0], K = shapes[si][1], off = si == n_shapes - 1;
        size_t MK = (size_t)M * K;
        float *x = malloc(MK * 4), *w = malloc(K * 4), *y = malloc(MK * 4), *gsa = malloc(M * 4);
        int8_t *gq = malloc(MK);
        int32_t *grs = malloc(M * 4);
        uint16_t *gy = malloc(MK * 2);
        for (size_t i = 0; i < MK; i++) x[i] = (float)qv_test_normal(&r) * (i % 97 == 3 ? 40.0f : 1.0f);
        for (int k = 0; k < K; k++) w[k] = (float)(0.5 + qv_test_uniform(&r));
        if (M > 2) memset(x, 0, K * 4); /* all-zero row: codes 0, s_a 1 */
        qv_ref_rmsnorm_rows(x, w, 1e-5f, M, K, y);
        void *dx = dev(MK * 4 + 16), *dw = dev(K * 4), *dq = dev(MK), *dsa = dev(M * 4), *drs = dev(M * 4),
             *dy = dev(MK * 2);
        float *dxo = (float *)dx + off;
        up(dxo, x, MK * 4);
        up(dw, w, K * 4);
        a8_out first = {0};
        const int passes = a8_passes();
        for (int pass = 0; pass < passes; pass++) {
            const char *var = a8_variant(pass, passes);
            OK(qv_gpu_memset(dq, 0x55, MK));
            OK(qv_gpu_rmsnorm_a8(dxo, dw, 1e-5f, M, K, dq, dsa, drs, NULL));
            down(gq, dq, MK);
            down(gsa, dsa, M * 4);
            down(grs, drs, M * 4);
            check_a8_v("rmsnorm_a8", var, M, K, y, gq, gsa, grs);
            a8_same(pass, "rmsnorm_a8", var, M, K, gq, gsa, grs, &first);
        }
        a8_variants_done(passes);
        a8_out_free(&first);
        OK(qv_gpu_rmsnorm_f16(dxo, dw, 1e-5f, M, K, dy, NULL));
        down(gy, dy, MK * 2);
        check_f16("rmsnorm_f16", MK, y, gy);
        qv_gpu_free(dx), qv_gpu_free(dw), qv_gpu_free(dq), qv_gpu_free(dsa), qv_gpu_free(drs), qv_gpu_free(dy);
        free(x), free(w), free(y), free(gsa), free(gq), free(grs), free(gy);
    }
}
END_TEST

START_TEST(silu_mul_a8_codes_match_up_to_ties)
{
    /* model shapes, then the kernel's edges (as quant_a8's); the last pass: gate|up one half off
     * 16-byte alignment (the element path) */
    static const int shapes[][2] = {{1, 1024}, {9, 14336}, {40, 1000}, {1, 14344}, {3, 1004}, {300, 64}, {2, 5},
                                    {300, 14336}, {4, 1024}};
    const size_t n_shapes = sizeof shapes / sizeof shapes[0];
    qv_test_rng r = {31};
    for (size_t si = 0; si < n_shapes; si++) {
        int M = shapes[si][0], I = shapes[si][1], off = si == n_shapes - 1;
        size_t MI = (size_t)M * I;
        uint16_t *gu = malloc(MI * 4), *gy = malloc(MI * 2);
        float *y = malloc(MI * 4), *gsa = malloc(M * 4);
        int8_t *gq = malloc(MI);
        int32_t *grs = malloc(M * 4);
        fill_f16(&r, gu, MI * 2, 4.0f);
        qv_ref_silu_mul_rows(gu, M, I, y);
        void *dgu = dev(MI * 4 + 16), *dq = dev(MI), *dsa = dev(M * 4), *drs = dev(M * 4), *dy = dev(MI * 2);
        uint16_t *dguo = (uint16_t *)dgu + off;
        up(dguo, gu, MI * 4);
        a8_out first = {0};
        const int passes = a8_passes();
        for (int pass = 0; pass < passes; pass++) {
            const char *var = a8_variant(pass, passes);
            OK(qv_gpu_memset(dq, 0x55, MI));
            OK(qv_gpu_silu_mul_a8(dguo, M, I, dq, dsa, drs, NULL));
            down(gq, dq, MI);
            down(gsa, dsa, M * 4);
            down(grs, drs, M * 4);
            check_a8_v("silu_mul_a8", var, M, I, y, gq, gsa, grs);
            a8_same(pass, "silu_mul_a8", var, M, I, gq, gsa, grs, &first);
        }
        a8_variants_done(passes);
        a8_out_free(&first);
        OK(qv_gpu_silu_mul_f16(dguo, M, I, dy, NULL));
        down(gy, dy, MI * 2);
        check_f16("silu_mul_f16", MI, y, gy);
        qv_gpu_free(dgu), qv_gpu_free(dq), qv_gpu_free(dsa), qv_gpu_free(drs), qv_gpu_free(dy);
        free(gu), free(gy), free(y), free(gsa), free(gq), free(grs);
    }
    printf("A8 producers: %ld codes, %ld ties (tie rule, rel bound %.3g)\n", g_codes, g_ties, QV_A8_PRE_REL);
}
END_TEST

/* Every QV_A8_VARIANT on shapes where a block loops over many rows (the staged path's ring of
 * depth + 1 slots wraps several times; 132 SMs): outputs bit-identical to the default's, and the
 * default's within the reference's rule. Always all variants (cheap); small run: fewer rows. */
START_TEST(a8_variants_agree_on_long_row_loops)
{
    const char *prev = getenv("QV_A8_VARIANT");
    char *keep = prev ? strdup(prev) : NULL;
    const int n_var = a8_passes(), sm = small_run(); /* 1: the default only (or QV_A8_VARIANT as set) */
    /* kind (0 quant, 1 rmsnorm, 2 silu), M, K */
    /* K = 8192: 512 threads per row (70B-class hidden size), the configuration a staged variant
     * hung in on the H200 (stop 16): with QV_A8_ALL_VARIANTS=1 it runs every variant there */
    const int shapes[][3] = {{0, sm ? 1300 : 6000, 4096}, {0, sm ? 1300 : 20000, 64}, {1, sm ? 1300 : 5000, 4096},
                             {1, sm ? 600 : 3000, 1000}, {2, sm ? 400 : 1500, 14336}, {0, sm ? 600 : 3000, 8192},
                             {1, sm ? 600 : 2000, 8192}};
    const char *names[] = {"quant_a8", "rmsnorm_a8", "silu_mul_a8"};
    qv_test_rng r = {41};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int kind = shapes[si][0], M = shapes[si][1], K = shapes[si][2];
        const size_t MK = (size_t)M * K;
        const size_t in_elems = kind == 2 ? 2 * MK : MK; /* silu: gate | up */
        uint16_t *h16 = malloc(in_elems * 2);
        float *x = malloc(MK * 4), *w = malloc(K * 4), *y = malloc(MK * 4), *gsa = malloc(M * 4);
        int8_t *gq = malloc(MK);
        int32_t *grs = malloc(M * 4);
        if (kind == 1) {
            for (size_t i = 0; i < MK; i++) x[i] = (float)qv_test_normal(&r) * (i % 89 == 5 ? 30.0f : 1.0f);
            for (int k = 0; k < K; k++) w[k] = (float)(0.5 + qv_test_uniform(&r));
            memset(x + (size_t)(M / 2) * K, 0, K * 4); /* an all-zero row mid-way */
            qv_ref_rmsnorm_rows(x, w, 1e-5f, M, K, y);
        } else {
            fill_f16(&r, h16, in_elems, kind == 2 ? 4.0f : 3.0f);
            if (kind == 2) qv_ref_silu_mul_rows(h16, M, K, y);
            else
                for (size_t i = 0; i < MK; i++) y[i] = qv_fp16_to_fp32(h16[i]);
        }
        void *din = dev(kind == 1 ? MK * 4 : in_elems * 2), *dw = dev(K * 4), *dq = dev(MK), *dsa = dev(M * 4),
             *drs = dev(M * 4);
        if (kind == 1) up(din, x, MK * 4), up(dw, w, K * 4);
        else up(din, h16, in_elems * 2);
        a8_out first = {0};
        for (int v = 0; v < n_var; v++) {
            const char *var = n_var > 1 ? qv_gpu_a8_variant_name(v) : (keep && *keep ? keep : "default");
            if (n_var > 1) setenv("QV_A8_VARIANT", var, 1);
            printf("%s M=%d K=%d variant %s: run\n", names[kind], M, K, var); /* names the case a device fault hits */
            fflush(stdout);
            OK(qv_gpu_memset(dq, 0x55, MK));
            if (kind == 0) OK(qv_gpu_quant_a8(din, M, K, dq, dsa, drs, NULL));
            else if (kind == 1) OK(qv_gpu_rmsnorm_a8(din, dw, 1e-5f, M, K, dq, dsa, drs, NULL));
            else OK(qv_gpu_silu_mul_a8(din, M, K, dq, dsa, drs, NULL));
            down(gq, dq, MK);
            down(gsa, dsa, M * 4);
            down(grs, drs, M * 4);
            if (v == 0) {
                if (kind == 0) {
                    qv_kfused_result res;
                    memset(&res, 0, sizeof res);
                    OK(qv_kfused_check_a8_exact(M, K, y, gq, gsa, grs, &res));
                    ck_assert_msg(res.ok, "quant_a8 M=%d K=%d variant %s: %ld codes, %ld s_a, %ld rowsums differ; first: %s", M,
                                  K, var, res.code_bad, res.sa_bad, res.rowsum_bad, res.first);
                } else {
                    check_a8_v(names[kind], var, M, K, y, gq, gsa, grs);
                }
            }
            a8_same(v, names[kind], var, M, K, gq, gsa, grs, &first);
        }
        a8_out_free(&first);
        printf("%s M=%d K=%d: %d variants bit-identical\n", names[kind], M, K, n_var);
        qv_gpu_free(din), qv_gpu_free(dw), qv_gpu_free(dq), qv_gpu_free(dsa), qv_gpu_free(drs);
        free(h16), free(x), free(w), free(y), free(gsa), free(gq), free(grs);
    }
    if (keep) setenv("QV_A8_VARIANT", keep, 1);
    else unsetenv("QV_A8_VARIANT");
    free(keep);
}
END_TEST

/* A 16-bit producer's output g (type t) vs the reference's FP32 value v: the kernel's own value is
 * within QV_A8_PRE_REL of v (docs/bounds.md, the A8 producers' derivation), then rounded to t:
 * |g - v| <= u_t (1 + PRE)|v| + PRE |v| + sub_t (u_t: 2^-8 for BF16). Returns how many g differ
 * from rn_t(v) (printed: a few where the two values straddle a rounding boundary). */
static int within16(qv_dtype16 t, float v, uint16_t g)
{
    double u = qv_dtype16_u(t), d = fabs((double)qv_dtype16_to_fp32(t, g) - v);
    return d <= (u * (1 + QV_A8_PRE_REL) + QV_A8_PRE_REL) * fabs(v) + qv_dtype16_sub(t);
}

static long check_16(qv_dtype16 t, const char *what, size_t n, const float *v, const uint16_t *g)
{
    long flips = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(within16(t, v[i], g[i]), "%s: element %zu %.9g vs %.9g", what, i,
                      (double)qv_dtype16_to_fp32(t, g[i]), (double)v[i]);
        flips += g[i] != qv_fp32_to_dtype16(t, v[i]);
    }
    return flips;
}

/* The BF16 producer bound has teeth (CPU): values a few FP32 ulps (<= the derivation's 32u) off the
 * reference, rounded to BF16 by RNE, pass; the same values truncated to BF16, or rounded to FP16
 * and stored in a BF16 buffer, fail for many elements. */
START_TEST(bf16_producer_bound_catches_wrong_rounding)
{
    qv_test_rng r = {17};
    long trunc_bad = 0, fp16_bad = 0, n = 20000;
    for (long i = 0; i < n; i++) {
        float v = (float)qv_test_normal(&r) * 3.0f;
        float vg = v * (float)(1.0 + 24.0 * QV_U32 * (qv_test_uniform(&r) - 0.5)); /* the kernel's own value */
        uint32_t bits;
        memcpy(&bits, &vg, 4);
        ck_assert(within16(QV_DTYPE_BF16, v, qv_fp32_to_bf16(vg)));
        trunc_bad += !within16(QV_DTYPE_BF16, v, (uint16_t)(bits >> 16));
        fp16_bad += !within16(QV_DTYPE_BF16, v, qv_fp32_to_fp16(vg));
    }
    ck_assert_msg(trunc_bad > n / 10 && fp16_bad > n / 2, "truncation: %ld, FP16 bits: %ld of %ld flagged", trunc_bad,
                  fp16_bad, n);
}
END_TEST

START_TEST(bf16_producers_within_bound)
{
    static const int shapes[][2] = {{1, 384}, {7, 4096}, {33, 1000}, {2, 14336}};
    qv_test_rng r = {23};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], K = shapes[si][1];
        size_t MK = (size_t)M * K;
        /* RMSNorm: FP32 residual rows (BF16 values, as gpu-fp16 bf16 holds them) -> BF16 */
        float *x = malloc(MK * 4), *w = malloc(K * 4), *y = malloc(MK * 4);
        uint16_t *gy = malloc(MK * 2), *gu = malloc(MK * 4);
        for (size_t i = 0; i < MK; i++) x[i] = qv_round_bf16((float)qv_test_normal(&r) * (i % 97 == 3 ? 40.0f : 1.0f));
        for (int k = 0; k < K; k++) w[k] = (float)(0.5 + qv_test_uniform(&r));
        if (M > 2) memset(x, 0, K * 4); /* all-zero row: y = 0 */
        qv_ref_rmsnorm_rows(x, w, 1e-5f, M, K, y);
        void *dx = dev(MK * 4), *dw = dev(K * 4), *dy = dev(MK * 2), *dgu = dev(MK * 4);
        up(dx, x, MK * 4);
        up(dw, w, K * 4);
        OK(qv_gpu_rmsnorm_bf16(dx, dw, 1e-5f, M, K, dy, NULL));
        down(gy, dy, MK * 2);
        long f1 = check_16(QV_DTYPE_BF16, "rmsnorm_bf16", MK, y, gy);
        /* SiLU*mul: gate|up BF16 [M, 2K] -> BF16 [M, K] */
        fill_16(&r, QV_DTYPE_BF16, gu, MK * 2, 4.0f);
        qv_ref_silu_mul_rows_dt(QV_DTYPE_BF16, gu, M, K, y);
        up(dgu, gu, MK * 4);
        OK(qv_gpu_silu_mul_bf16(dgu, M, K, dy, NULL));
        down(gy, dy, MK * 2);
        long f2 = check_16(QV_DTYPE_BF16, "silu_mul_bf16", MK, y, gy);
        printf("bf16 producers M=%d K=%d: rmsnorm %ld, silu_mul %ld of %zu differ from rn_bf16(ref)\n", M, K, f1, f2, MK);
        qv_gpu_free(dx), qv_gpu_free(dw), qv_gpu_free(dy), qv_gpu_free(dgu);
        free(x), free(w), free(y), free(gy), free(gu);
    }
}
END_TEST

#ifdef QV_CUDA
/* embed, residual add (with and without rounding) and bias add: one FP32 op and one rounding to
 * the type each, so bit-exact vs the CPU in both types; ties planted (x = 1 + k ulp, y = half an
 * ulp of the sum's type) so a rounding other than RNE fails. */
START_TEST(engine_elementwise_ops_are_bit_exact)
{
    qv_test_rng r = {29};
    for (int ti = 0; ti < 2; ti++) {
        qv_dtype16 t = ti ? QV_DTYPE_BF16 : QV_DTYPE_FP16;
        int V = 50, H = 264, T = 9, M = 7;
        size_t n = (size_t)T * H;
        uint16_t *tab = malloc((size_t)V * H * 2), *y = malloc(n * 2), *gy = malloc(n * 2);
        int32_t tok[9] = {0, 49, 3, 3, 17, 25, 1, 48, 0};
        float *x = malloc(n * 4), *gx = malloc(n * 4), *ref = malloc(n * 4), *b = malloc(H * 4);
        fill_16(&r, t, tab, (size_t)V * H, 2.0f);
        fill_16(&r, t, y, n, 1.0f);
        for (size_t i = 0; i < n; i++) x[i] = qv_dtype16_to_fp32(t, qv_fp32_to_dtype16(t, (float)qv_test_normal(&r) * 3.0f));
        double hu = qv_dtype16_u(t); /* half an ulp of [1, 2) */
        for (int k = 0; k < 8; k++) { /* x in [1, 2) at an even / odd ulp, y = +-half an ulp: ties */
            x[k] = (float)(1.0 + 2 * hu * k);
            y[k] = qv_fp32_to_dtype16(t, (float)(k % 3 == 2 ? -hu : hu));
        }
        for (int k = 0; k < H; k++) b[k] = (float)qv_test_normal(&r);
        void *dtab = dev((size_t)V * H * 2), *dtok = dev(sizeof tok), *dx = dev(n * 4), *dy = dev(n * 2), *db = dev(H * 4);
        up(dtab, tab, (size_t)V * H * 2), up(dtok, tok, sizeof tok), up(db, b, H * 4);
        /* embed */
        OK(qv_gpu_embed_rows(t, dtab, dtok, T, H, dx));
        down(gx, dx, n * 4);
        for (size_t i = 0; i < n; i++) ref[i] = qv_dtype16_to_fp32(t, tab[(size_t)tok[i / H] * H + i % H]);
        ck_assert_msg(memcmp(ref, gx, n * 4) == 0, "embed_rows %s differs", qv_dtype16_name(t));
        /* residual add, rounded and not */
        for (int rnd = 0; rnd < 2; rnd++) {
            up(dx, x, n * 4), up(dy, y, n * 2);
            OK(qv_gpu_residual_add(t, dx, dy, n, rnd));
            down(gx, dx, n * 4);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) {
                float v = x[i] + qv_dtype16_to_fp32(t, y[i]);
                ref[i] = rnd ? qv_dtype16_to_fp32(t, qv_fp32_to_dtype16(t, v)) : v;
                bad += memcmp(&ref[i], &gx[i], 4) != 0;
            }
            ck_assert_msg(bad == 0, "residual_add %s round %d: %zu of %zu differ", qv_dtype16_name(t), rnd, bad, n);
        }
        /* bias add on [M, H] */
        up(dy, y, (size_t)M * H * 2);
        OK(qv_gpu_bias_add(t, dy, db, M, H));
        down(gy, dy, (size_t)M * H * 2);
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)M * H; i++)
            bad += gy[i] != qv_fp32_to_dtype16(t, qv_dtype16_to_fp32(t, y[i]) + b[i % H]);
        ck_assert_msg(bad == 0, "bias_add %s: %zu of %d differ", qv_dtype16_name(t), bad, M * H);
        printf("engine ops %s: embed, residual add (x2), bias add bit-exact\n", qv_dtype16_name(t));
        qv_gpu_free(dtab), qv_gpu_free(dtok), qv_gpu_free(dx), qv_gpu_free(dy), qv_gpu_free(db);
        free(tab), free(y), free(gy), free(x), free(gx), free(ref), free(b);
    }
}
END_TEST
#endif

/* ---------------------------------------------------------------- RoPE + cache, attention */

typedef struct {
    int nh, nkv, hd, P, n_slots, max_pages, n_pages;
    qv_kv_fmt fmt;
    size_t PB;
    int32_t *pt;   /* [n_slots][max_pages], a shuffled page assignment */
    uint8_t *pool; /* host image: [n_pages][2][PB] */
} kvsetup;

static void kv_init(kvsetup *s, qv_kv_fmt fmt, int nh, int nkv, int hd, int P, int n_slots, int max_ctx, qv_test_rng *r)
{
    memset(s, 0, sizeof *s);
    s->fmt = fmt, s->nh = nh, s->nkv = nkv, s->hd = hd, s->P = P, s->n_slots = n_slots;
    s->max_pages = (max_ctx + P - 1) / P;
    s->n_pages = s->max_pages * n_slots;
    s->PB = qv_gpu_kv_page_bytes(fmt, nkv, hd, P);
    s->pt = malloc(sizeof(int32_t) * (size_t)s->n_pages);
    for (int i = 0; i < s->n_pages; i++) s->pt[i] = i;
    for (int i = s->n_pages - 1; i > 0; i--) { /* pages of a sequence are not contiguous */
        int j = (int)(qv_test_next(r) % (uint64_t)(i + 1)), t = s->pt[i];
        s->pt[i] = s->pt[j], s->pt[j] = t;
    }
    s->pool = calloc((size_t)s->n_pages * 2, s->PB);
}

/* The reference cache write of one token's FP16 K and V (head-major [nkv][hd]). */
static void kv_write_ref(kvsetup *s, int slot, int pos, const uint16_t *k, const uint16_t *v)
{
    int page = s->pt[slot * s->max_pages + pos / s->P], e = pos % s->P;
    for (int isv = 0; isv < 2; isv++) {
        const uint16_t *x = isv ? v : k;
        uint8_t *base = s->pool + ((size_t)page * 2 + isv) * s->PB;
        if (s->fmt != QV_KV_FMT_KV4) { /* FP16 / BF16 pages: the 16-bit words */
            for (int h = 0; h < s->nkv; h++)
                memcpy(base + (((size_t)h * s->P + e) * s->hd) * 2, x + (size_t)h * s->hd, (size_t)s->hd * 2);
        } else {
            float xf[1024];
            for (int i = 0; i < s->nkv * s->hd; i++) xf[i] = qv_fp16_to_fp32(x[i]);
            qv_kv4_geom g = {s->nkv, s->hd, s->P};
            /* qv_kv4_write_token addresses token e of a one-page buffer */
            OK(qv_kv4_write_token(base, 1, g, e, xf, 0));
        }
    }
}

/* The values the kernel reads for (slot, pos): [nkv][hd] FP32. */
/* u*s + |mn| of each element (KV4 only): the tensor-core kernel's error magnitudes */
static void kv_mag_ref(const kvsetup *s, int slot, int pos, int isv, float *out)
{
    int page = s->pt[slot * s->max_pages + pos / s->P], e = pos % s->P;
    qv_kv4_geom g = {s->nkv, s->hd, s->P};
    OK(qv_kv4_read_token_mag(s->pool + ((size_t)page * 2 + isv) * s->PB, 1, g, e, out));
}

static void kv_read_ref(const kvsetup *s, int slot, int pos, int isv, float *out)
{
    int page = s->pt[slot * s->max_pages + pos / s->P], e = pos % s->P;
    const uint8_t *base = s->pool + ((size_t)page * 2 + isv) * s->PB;
    if (s->fmt != QV_KV_FMT_KV4) {
        for (int h = 0; h < s->nkv; h++)
            for (int i = 0; i < s->hd; i++) {
                const uint8_t *b = base + (((size_t)h * s->P + e) * s->hd + i) * 2;
                out[h * s->hd + i] = qv_dtype16_to_fp32(fmt_dt(s->fmt), (uint16_t)(b[0] | b[1] << 8));
            }
    } else {
        qv_kv4_geom g = {s->nkv, s->hd, s->P};
        OK(qv_kv4_read_token(base, 1, g, e, out, 0));
    }
}

START_TEST(rope_kv_write_is_bit_exact)
{
    qv_test_rng r = {41};
    for (int fmt = 0; fmt < 3; fmt++) /* KV4, FP16, BF16 (with BF16 qkv/q/k/v) */
        for (int hdi = 0; hdi < 2; hdi++) {
            qv_dtype16 dt = fmt_dt((qv_kv_fmt)fmt);
            int hd = hdi ? 128 : 64, nh = hdi ? 8 : 6, nkv = 2, P = 16, n_slots = 3, max_ctx = 80;
            kvsetup s;
            kv_init(&s, (qv_kv_fmt)fmt, nh, nkv, hd, P, n_slots, max_ctx, &r);
            qv_config c;
            memset(&c, 0, sizeof c);
            c.head_dim = hd, c.rope_theta = 500000.0, c.rope_type = QV_ROPE_DEFAULT;
            float *ct = malloc(sizeof(float) * max_ctx * hd / 2), *st = malloc(sizeof(float) * max_ctx * hd / 2);
            OK(qv_ref_rope_table(&c, max_ctx, ct, st));
            /* tokens: every position of slot 0 and 1, a few of slot 2 (incl. page edges); the
             * first tokens of a slot are constant vectors (zero-range rule) */
            int T = 0, W = (nh + 2 * nkv) * hd;
            int32_t pos[200], slot[200];
            for (int sl = 0; sl < 2; sl++)
                for (int p = 0; p < max_ctx; p++) slot[T] = sl, pos[T++] = p;
            int extra[] = {0, 15, 16, 17, 79};
            for (int i = 0; i < 5; i++) slot[T] = 2, pos[T++] = extra[i];
            uint16_t *qkv = malloc((size_t)T * W * 2), *q = malloc((size_t)T * nh * hd * 2),
                     *k = malloc((size_t)T * nkv * hd * 2), *v = malloc((size_t)T * nkv * hd * 2);
            fill_16(&r, dt, qkv, (size_t)T * W, 2.0f);
            for (int i = 0; i < W; i++) qkv[i] = qv_fp32_to_dtype16(dt, 0.75f); /* token 0: constant */
            for (int t = 0; t < T; t++) {
                qv_ref_rope_qkv_dt(dt, qkv + (size_t)t * W, nh, nkv, hd, ct + (size_t)pos[t] * hd / 2, st + (size_t)pos[t] * hd / 2,
                                q + (size_t)t * nh * hd, k + (size_t)t * nkv * hd, v + (size_t)t * nkv * hd);
                kv_write_ref(&s, slot[t], pos[t], k + (size_t)t * nkv * hd, v + (size_t)t * nkv * hd);
            }
            void *dqkv = dev((size_t)T * W * 2), *dq = dev((size_t)T * nh * hd * 2), *dk = dev((size_t)T * nkv * hd * 2),
                 *dv = dev((size_t)T * nkv * hd * 2), *dpos = dev(T * 4), *dslot = dev(T * 4), *dct = dev(max_ctx * hd * 2),
                 *dst = dev(max_ctx * hd * 2), *dpt = dev(s.n_pages * 4), *dpool = dev(s.n_pages * 2 * s.PB);
            up(dqkv, qkv, (size_t)T * W * 2);
            up(dpos, pos, T * 4), up(dslot, slot, T * 4);
            up(dct, ct, max_ctx * hd * 2), up(dst, st, max_ctx * hd * 2);
            up(dpt, s.pt, s.n_pages * 4);
            OK(qv_gpu_memset(dpool, 0, s.n_pages * 2 * s.PB));
            qv_gpu_kv_cache cache = {s.fmt, nkv, hd, P, s.max_pages, dpt, dpool};
            OK(qv_gpu_rope_kv_write(dqkv, T, nh, dpos, dslot, dct, dst, dq, dk, dv, &cache, NULL));
            uint16_t *gq = malloc((size_t)T * nh * hd * 2), *gk = malloc((size_t)T * nkv * hd * 2), *gv = malloc((size_t)T * nkv * hd * 2);
            uint8_t *gpool = malloc(s.n_pages * 2 * s.PB);
            down(gq, dq, (size_t)T * nh * hd * 2);
            down(gk, dk, (size_t)T * nkv * hd * 2);
            down(gv, dv, (size_t)T * nkv * hd * 2);
            down(gpool, dpool, s.n_pages * 2 * s.PB);
            ck_assert_msg(memcmp(q, gq, (size_t)T * nh * hd * 2) == 0, "rope q differs (hd %d)", hd);
            ck_assert_msg(memcmp(k, gk, (size_t)T * nkv * hd * 2) == 0, "rope k differs (hd %d)", hd);
            ck_assert_msg(memcmp(v, gv, (size_t)T * nkv * hd * 2) == 0, "v differs (hd %d)", hd);
            size_t diff = 0;
            for (size_t i = 0; i < s.n_pages * 2 * s.PB; i++) diff += gpool[i] != s.pool[i];
            ck_assert_msg(diff == 0, "%s cache pool: %zu bytes differ (hd %d)", fmt_name((qv_kv_fmt)fmt), diff, hd);
            printf("rope_kv_write %s hd=%d: %d tokens, q/k/v and %zu pool bytes bit-exact\n", fmt_name((qv_kv_fmt)fmt), hd, T,
                   s.n_pages * 2 * s.PB);
            void *all[] = {dqkv, dq, dk, dv, dpos, dslot, dct, dst, dpt, dpool};
            for (int i = 0; i < 10; i++) qv_gpu_free(all[i]);
            free(qkv), free(q), free(k), free(v), free(gq), free(gk), free(gv), free(gpool), free(ct), free(st);
            free(s.pt), free(s.pool);
        }
}
END_TEST

static double g_worst_ratio;
static long g_attn_elems;
static int g_mma_cases, g_tiled_cases;

/* The tiled prefill kernel's output (tiled) against the one-row kernel's (rows) on the same inputs:
 * every element bit-identical (gpu/attn_kv4_tiled.cu's header argues why); on failure the count of
 * differing elements and the first one's row (sequence, position), head and element. */
static void tiled_vs_rows(const uint16_t *tiled, const uint16_t *rows, int R, int nh, int hd, int n_seq, const int *ctx,
                          const int *start, int G, int tq)
{
    size_t n = (size_t)R * nh * hd, diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (tiled[i] != rows[i] && diff++ == 0) first = i;
    if (diff == 0) return;
    int row = (int)(first / ((size_t)nh * hd)), h = (int)(first / hd % nh), el = (int)(first % hd), seq = 0, r = row;
    while (seq < n_seq && r >= ctx[seq] - start[seq]) r -= ctx[seq] - start[seq], seq++;
    ck_assert_msg(0, "attention kv4 G=%d: tiled prefill kernel (%d rows per tile) differs from the one-row kernel in %zu of %zu "
                     "elements; first: row %d (seq %d pos %d; tile %d, its row %d), head %d elem %d: tiled 0x%04x rows 0x%04x",
                  G, tq, diff, n, row, seq, seq < n_seq ? start[seq] + r : -1, row / tq, row % tq, h, el, tiled[first], rows[first]);
}

/* rows: decode rows (one per sequence, ctx[i]) or, with prefill, rows for positions
 * start[i] .. ctx[i]-1 of each sequence; serve: those positions come from fresh FP16 K/V. */
static void attn_case(qv_kv_fmt fmt, int hd, int nh, int nkv, int n_seq, const int *ctx, const int *start, int serve,
                      uint64_t seed)
{
    qv_test_rng r = {seed};
    int P = 16, max_ctx = 1;
    for (int i = 0; i < n_seq; i++) max_ctx = ctx[i] > max_ctx ? ctx[i] : max_ctx;
    kvsetup s;
    kv_init(&s, fmt, nh, nkv, hd, P, n_seq, max_ctx, &r);
    int D = nkv * hd;
    qv_dtype16 dt = fmt_dt(fmt); /* q, K/V, fresh K/V and out: BF16 with a BF16 cache, else FP16 */
    /* per sequence its K/V (FP16), all positions */
    uint16_t **K = malloc(sizeof(void *) * n_seq), **V = malloc(sizeof(void *) * n_seq);
    int R = 0, Tf = 0;
    for (int i = 0; i < n_seq; i++) {
        K[i] = malloc((size_t)ctx[i] * D * 2), V[i] = malloc((size_t)ctx[i] * D * 2);
        fill_16(&r, dt, K[i], (size_t)ctx[i] * D, 1.0f);
        fill_16(&r, dt, V[i], (size_t)ctx[i] * D, 1.0f);
        for (int p = 0; p < ctx[i]; p++) {
            if (p % 37 == 5) /* constant vectors: KV4's zero-range rule inside attention */
                for (int j = 0; j < D; j++) K[i][(size_t)p * D + j] = qv_fp32_to_dtype16(dt, 0.5f);
            kv_write_ref(&s, i, p, K[i] + (size_t)p * D, V[i] + (size_t)p * D);
        }
        R += ctx[i] - start[i];
        if (serve) Tf += ctx[i] - start[i];
    }
    int32_t *rslot = malloc(R * 4), *rctx = malloc(R * 4), *rfs = malloc(R * 4), *rfi = malloc(R * 4);
    uint16_t *q = malloc((size_t)R * nh * hd * 2), *fk = malloc((size_t)(Tf + 1) * D * 2), *fv = malloc((size_t)(Tf + 1) * D * 2);
    fill_16(&r, dt, q, (size_t)R * nh * hd, 1.5f);
    int row = 0, f = 0;
    for (int i = 0; i < n_seq; i++) {
        int f0 = f;
        for (int p = start[i]; p < ctx[i]; p++, row++) {
            rslot[row] = i, rctx[row] = p + 1;
            rfs[row] = serve ? start[i] : 1 << 30;
            rfi[row] = f0;
            if (serve) {
                memcpy(fk + (size_t)f * D, K[i] + (size_t)p * D, D * 2);
                memcpy(fv + (size_t)f * D, V[i] + (size_t)p * D, D * 2);
                f++;
            }
        }
    }
    float scale = (float)pow((double)hd, -0.5);
    void *dq = dev((size_t)R * nh * hd * 2), *dout = dev((size_t)R * nh * hd * 2), *dslot = dev(R * 4), *dctx = dev(R * 4),
         *dfs = dev(R * 4), *dfi = dev(R * 4), *dfk = dev((size_t)(Tf + 1) * D * 2), *dfv = dev((size_t)(Tf + 1) * D * 2),
         *dpt = dev(s.n_pages * 4), *dpool = dev(s.n_pages * 2 * s.PB);
    size_t wsb = qv_gpu_attn_ws_bytes(R, nh, hd, max_ctx);
    void *dws = dev(wsb);
    up(dq, q, (size_t)R * nh * hd * 2);
    up(dslot, rslot, R * 4), up(dctx, rctx, R * 4), up(dfs, rfs, R * 4), up(dfi, rfi, R * 4);
    up(dfk, fk, (size_t)(Tf + 1) * D * 2), up(dfv, fv, (size_t)(Tf + 1) * D * 2);
    up(dpt, s.pt, s.n_pages * 4), up(dpool, s.pool, s.n_pages * 2 * s.PB);
    OK(qv_gpu_memset(dout, 0xff, (size_t)R * nh * hd * 2)); /* NaN poison: an unwritten element fails */
    qv_gpu_kv_cache cache = {fmt, nkv, hd, P, s.max_pages, dpt, dpool};
    /* no fresh K/V unless serve (the API's "NULL when no row reads fresh positions") */
    qv_gpu_attn_args a = {R, nh, dq, dslot, dctx, dfs, dfi, serve ? dfk : NULL, serve ? dfv : NULL, scale, max_ctx, dout, dws, wsb, 0};
    int mma = qv_gpu_attention_uses_mma(&a, &cache), tiled = 0;
    uint16_t *go = malloc((size_t)R * nh * hd * 2);
    if (mma) {
        /* the tensor-core rows both ways: one row per block (QV_ATTN_PREFILL=rows), then the tiled
         * prefill kernel (the prefill hint; decode rows too: one slot per row, groups of one row),
         * bit-identical; the checks below then run on the tiled output */
        uint16_t *gr = malloc((size_t)R * nh * hd * 2);
        a.prefill = 1;
        setenv("QV_ATTN_PREFILL", "rows", 1);
        OK(qv_gpu_attention(&a, &cache, NULL));
        down(gr, dout, (size_t)R * nh * hd * 2);
        setenv("QV_ATTN_PREFILL", "tiled", 1);
        tiled = qv_gpu_attention_uses_tiled(&a, &cache);
        OK(qv_gpu_memset(dout, 0xff, (size_t)R * nh * hd * 2));
        OK(qv_gpu_attention(&a, &cache, NULL));
        unsetenv("QV_ATTN_PREFILL");
        down(go, dout, (size_t)R * nh * hd * 2);
        tiled_vs_rows(go, gr, R, nh, hd, n_seq, ctx, start, nh / nkv, tiled ? tiled : 1);
        free(gr);
    } else {
        OK(qv_gpu_attention(&a, &cache, NULL));
        down(go, dout, (size_t)R * nh * hd * 2);
    }
    /* reference per row */
    float *Kf = malloc(sizeof(float) * (size_t)max_ctx * D), *Vf = malloc(sizeof(float) * (size_t)max_ctx * D),
          *qf = malloc(sizeof(float) * nh * hd), *Km = malloc(sizeof(float) * (size_t)max_ctx * D),
          *Vm = malloc(sizeof(float) * (size_t)max_ctx * D);
    qv_attn_err_model em;
    qv_attn_err_model_kv4_mma(hd, &em);
    em.Kmag = Km, em.Vmag = Vm;
    double *o = malloc(sizeof(double) * nh * hd), *b = malloc(sizeof(double) * nh * hd), worst = 0, se = 0, ss = 0;
    row = 0;
    for (int i = 0; i < n_seq; i++)
        /* a position's values depend on (sequence, t) only: the rows of a sequence read each once */
        for (int p = start[i], have = 0; p < ctx[i]; have = ++p, row++) {
            for (int t = have; t <= p; t++) {
                if (serve && t >= start[i]) { /* fresh FP16 values */
                    for (int j = 0; j < D; j++) {
                        Kf[(size_t)t * D + j] = qv_dtype16_to_fp32(dt, K[i][(size_t)t * D + j]);
                        Vf[(size_t)t * D + j] = qv_dtype16_to_fp32(dt, V[i][(size_t)t * D + j]);
                    }
                } else {
                    kv_read_ref(&s, i, t, 0, Kf + (size_t)t * D);
                    kv_read_ref(&s, i, t, 1, Vf + (size_t)t * D);
                    if (mma) kv_mag_ref(&s, i, t, 0, Km + (size_t)t * D), kv_mag_ref(&s, i, t, 1, Vm + (size_t)t * D);
                }
            }
            for (int j = 0; j < nh * hd; j++) qf[j] = qv_dtype16_to_fp32(dt, q[(size_t)row * nh * hd + j]);
            if (mma) qv_ref_attention_row_m(qf, Kf, Vf, p + 1, nh, nkv, hd, scale, &em, o, b); /* KV4 only: FP16 out */
            else qv_ref_attention_row_dt(dt, qf, Kf, Vf, p + 1, nh, nkv, hd, scale, o, b);
            for (int j = 0; j < nh * hd; j++) {
                double g = qv_dtype16_to_fp32(dt, go[(size_t)row * nh * hd + j]), d = fabs(g - o[j]);
                ck_assert_msg(d <= b[j], "attention %s hd=%d seq %d pos %d elem %d: %.9g vs %.9g (bound %.3g)",
                              fmt_name(fmt), hd, i, p, j, g, o[j], b[j]);
                if (d / b[j] > worst) worst = d / b[j];
                se += d * d, ss += o[j] * o[j];
            }
        }
    g_attn_elems += (long)R * nh * hd;
    if (worst > g_worst_ratio) g_worst_ratio = worst;
    printf("attention %s%s%s hd=%d G=%d seqs=%d rows=%d max_ctx=%d: max err/bound %.3f, NMSE %.3g\n", fmt_name(fmt),
           serve ? " serve" : "",
           !mma ? "" : tiled == 4 ? " (tensor-core kernel; tiled, 4 rows, == rows bit for bit)"
                     : tiled == 2 ? " (tensor-core kernel; tiled, 2 rows, == rows bit for bit)"
                                  : " (tensor-core kernel; the tiled variant does not fit this device)",
           hd, nh / nkv, n_seq, R, max_ctx, worst, ss > 0 ? se / ss : 0.0);
    /* Aggregate check (docs/bounds.md "NMSE ceiling"): the element bounds above use worst-case
     * arithmetic models (the tensor-core one is ~25x loose in practice), so a precision bug far
     * above the real arithmetic error can hide under them. The output rounding alone gives
     * |e| <= u16 |o| (u16 = 2^-11 FP16, 2^-8 BF16), i.e. NMSE <= u16^2; a correct kernel's
     * arithmetic error is orders of magnitude below it, so the NMSE of a case must stay under
     * u16^2. (Measured: FP16 <= 4.3e-8 of 2.4e-7; P*s rounded to BF16 only: 1.7e-5 to 3.3e-5.) */
    double u16 = fmt == QV_KV_FMT_BF16 ? ldexp(1.0, -8) : ldexp(1.0, -11);
    ck_assert_msg(ss == 0 || se / ss <= u16 * u16, "attention %s hd=%d: NMSE %.3g above the output rounding's ceiling %.3g",
                  fmt_name(fmt), hd, se / ss, u16 * u16);
    if (mma) g_mma_cases++;
    if (tiled) g_tiled_cases++;
    void *all[] = {dq, dout, dslot, dctx, dfs, dfi, dfk, dfv, dpt, dpool, dws};
    for (int i = 0; i < 11; i++) qv_gpu_free(all[i]);
    for (int i = 0; i < n_seq; i++) free(K[i]), free(V[i]);
    free(K), free(V), free(rslot), free(rctx), free(rfs), free(rfi), free(q), free(fk), free(fv), free(go), free(Kf),
        free(Vf), free(qf), free(Km), free(Vm), free(o), free(b), free(s.pt), free(s.pool);
}

START_TEST(decode_attention_within_bound_across_page_edges)
{
    int big = small_run() ? 300 : 1000;
    int ctx[] = {1, 15, 16, 17, 83, 256, 257, big}, zero[8] = {0};
    int start[8];
    for (int i = 0; i < 8; i++) start[i] = ctx[i] - 1; /* decode: one row at the last position */
    for (int fmt = 0; fmt < 2; fmt++) {
        attn_case((qv_kv_fmt)fmt, 64, 6, 2, 8, ctx, start, 0, 51 + fmt);
        attn_case((qv_kv_fmt)fmt, 128, 32, 8, small_run() ? 3 : 8, ctx, start, 0, 61 + fmt);
        attn_case((qv_kv_fmt)fmt, 32, 8, 2, small_run() ? 3 : 8, ctx, start, 0, 81 + fmt); /* synthetic tiny: hd 32, G 4 */
    }
    /* the tensor-core KV4 kernel (hd 128) at every GQA group it takes, then the same inputs on the
     * general kernel (QV_ATTN_VARIANT=chunk) */
    int n8 = small_run() ? 3 : 8, ctx_m[] = {257, 1, 83, 16, 17, 15, 256, big}, start_m[8];
    for (int i = 0; i < 8; i++) start_m[i] = ctx_m[i] - 1; /* small runs still cross warps and chunks */
    attn_case(QV_KV_FMT_KV4, 128, 8, 8, n8, ctx_m, start_m, 0, 91);   /* G 1 */
    attn_case(QV_KV_FMT_KV4, 128, 16, 8, n8, ctx_m, start_m, 0, 92);  /* G 2 */
    attn_case(QV_KV_FMT_KV4, 128, 32, 4, n8, ctx_m, start_m, 0, 93);  /* G 8 */
    if (qv_gpu_device_count() > 0) ck_assert_msg(g_mma_cases >= 4, "the tensor-core kernel ran %d cases", g_mma_cases);
    setenv("QV_ATTN_VARIANT", "chunk", 1);
    int before = g_mma_cases;
    attn_case(QV_KV_FMT_KV4, 128, 32, 8, n8, ctx_m, start_m, 0, 61);
    ck_assert_msg(g_mma_cases == before, "QV_ATTN_VARIANT=chunk still ran the tensor-core kernel");
    unsetenv("QV_ATTN_VARIANT");
    (void)zero;
}
END_TEST

START_TEST(prefill_attention_within_bound_both_modes)
{
    int ctx[] = {40, 17, 300}, start_kv4[] = {0, 0, 0}, start_serve[] = {16, 0, 250};
    int n = small_run() ? 2 : 3;
    attn_case(QV_KV_FMT_KV4, 64, 6, 2, n, ctx, start_kv4, 0, 71);      /* kv4: all from the cache */
    attn_case(QV_KV_FMT_KV4, 64, 6, 2, n, ctx, start_serve, 1, 72);    /* serve: fresh new tokens */
    attn_case(QV_KV_FMT_KV4, 128, 32, 8, n, ctx, start_serve, 1, 73);
    attn_case(QV_KV_FMT_FP16, 128, 32, 8, n, ctx, start_kv4, 0, 74);
    attn_case(QV_KV_FMT_KV4, 128, 32, 8, n, ctx, start_kv4, 0, 76);    /* kv4 prefill rows: tensor-core kernel */
    attn_case(QV_KV_FMT_KV4, 32, 8, 2, n, ctx, start_serve, 1, 75);
    printf("attention: %ld elements, worst err/bound %.3f\n", g_attn_elems, g_worst_ratio);
}
END_TEST

/* The tiled prefill variant of the tensor-core kernel (gpu/attn_kv4_tiled.cu, tiles of 4 rows with
 * QV_ATTN_TILE_ROWS=4, then of 2, the default):
 * runs of T = 1, 15, 16, 17, 100 rows (tiles straddle sequences, so a tile holds rows of two
 * slots), contexts crossing the 1024-position record (and, with QV_ATTN_SPAN=1, several 256-position
 * records), G = 1, 2, 4, 8, pages of 16. attn_case requires every row bit-identical to the one-row
 * kernel and within the bound. */
START_TEST(prefill_tiled_matches_rows)
{
    int ctx[] = {1, 15, 40, 1027, 1100}, start[] = {0, 0, 24, 1010, 1000};
    int before = g_tiled_cases;
    /* tiles of 4 rows (where they fit) on all five runs, then tiles of 2 on the first four (T = 100
     * at ~1050 positions is most of the CPU reference's time: ~60 ms per row at 32 heads) */
    for (int pass = 0; pass < 2; pass++) {
        int n = small_run() ? 3 : pass ? 4 : 5;
        if (pass) unsetenv("QV_ATTN_TILE_ROWS");
        else setenv("QV_ATTN_TILE_ROWS", "4", 1);
        attn_case(QV_KV_FMT_KV4, 128, 8, 8, n, ctx, start, 0, 111);  /* G 1 */
        attn_case(QV_KV_FMT_KV4, 128, 16, 8, n, ctx, start, 0, 112); /* G 2 */
        attn_case(QV_KV_FMT_KV4, 128, 32, 8, n, ctx, start, 0, 113); /* G 4 */
        attn_case(QV_KV_FMT_KV4, 128, 32, 4, n, ctx, start, 0, 114); /* G 8 */
    }
    unsetenv("QV_ATTN_TILE_ROWS");
    setenv("QV_ATTN_SPAN", "1", 1);
    attn_case(QV_KV_FMT_KV4, 128, 32, 8, small_run() ? 3 : 5, ctx, start, 0, 115); /* G 4, records of 256 */
    unsetenv("QV_ATTN_SPAN");
    printf("tiled prefill: %d of 9 cases ran the tiled kernel (bit-identical to the one-row kernel)\n", g_tiled_cases - before);
    /* tiles of 2 fit every sm_80+ device at G <= 4 (~70 KB; G 8 ~100 KB) */
    if (qv_gpu_device_count() > 0) ck_assert_msg(g_tiled_cases - before >= 4, "the tiled kernel ran %d cases", g_tiled_cases - before);
}
END_TEST

/* gpu-fp16 --dtype bf16's attention: BF16 pages, q and output; decode rows across page edges and
 * chunks, causal prefill rows, and (kernel coverage: the fresh path over T = BF16) serve rows. */
START_TEST(bf16_attention_within_bound)
{
    int big = small_run() ? 300 : 1000;
    int ctx[] = {1, 15, 16, 17, 83, 256, 257, big}, start[8];
    for (int i = 0; i < 8; i++) start[i] = ctx[i] - 1;
    attn_case(QV_KV_FMT_BF16, 64, 6, 2, 8, ctx, start, 0, 101);
    attn_case(QV_KV_FMT_BF16, 128, 32, 8, small_run() ? 3 : 8, ctx, start, 0, 102);
    attn_case(QV_KV_FMT_BF16, 32, 8, 2, small_run() ? 3 : 8, ctx, start, 0, 103);
    int pctx[] = {40, 17, 300}, p0[] = {0, 0, 0}, pserve[] = {16, 0, 250};
    int n = small_run() ? 2 : 3;
    attn_case(QV_KV_FMT_BF16, 64, 6, 2, n, pctx, p0, 0, 104);
    attn_case(QV_KV_FMT_BF16, 32, 8, 2, n, pctx, pserve, 1, 105);
    printf("attention (all so far): %ld elements, worst err/bound %.3f\n", g_attn_elems, g_worst_ratio);
}
END_TEST

static Suite *cpu_suite(void)
{
    Suite *s = suite_create("gpu_kernels_cpu");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, tie_rule_accepts_only_neighbours_near_the_boundary);
    tcase_add_test(tc, attention_reference_bound_is_tight_but_positive);
    tcase_add_test(tc, fused_a8_checks_reject_planted_errors);
    tcase_add_test(tc, bf16_producer_bound_catches_wrong_rounding);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *gpu_suite(void)
{
    Suite *s = suite_create("gpu_kernels");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, quant_a8_is_bit_exact);
    tcase_add_test(tc, rmsnorm_a8_codes_match_up_to_ties);
    tcase_add_test(tc, silu_mul_a8_codes_match_up_to_ties);
    tcase_add_test(tc, a8_variants_agree_on_long_row_loops);
    tcase_add_test(tc, rope_kv_write_is_bit_exact);
    tcase_add_test(tc, decode_attention_within_bound_across_page_edges);
    tcase_add_test(tc, prefill_attention_within_bound_both_modes);
    tcase_add_test(tc, prefill_tiled_matches_rows);
    tcase_add_test(tc, bf16_producers_within_bound);
#ifdef QV_CUDA
    tcase_add_test(tc, engine_elementwise_ops_are_bit_exact);
#endif
    tcase_add_test(tc, bf16_attention_within_bound);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = qv_test_main(cpu_suite());
    if (rc != 0) return rc;
    if (qv_gpu_device_count() == 0) {
        printf("SKIP gpu: no device (%s)\n", qv_gpu_describe());
        return QV_TEST_SKIP;
    }
    printf("device: %s\n", qv_gpu_describe());
    return qv_test_main(gpu_suite());
}
