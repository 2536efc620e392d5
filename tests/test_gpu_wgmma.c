/* Device test of the sm_90a wgmma GEMM path (gpu/sm90a/gemm_wgmma.cu, QV_GEMM_VARIANT=wgmma), written
 * to DIAGNOSE on the first device run, not only to pass or fail:
 *  1. the self-test: the kernel on one known problem under every candidate shared-memory layout /
 *     descriptor interpretation, one line each (bit-exact or the mismatch count and the first
 *     wrong element), and the candidate chosen for this device;
 *  2. the full kernel (through the public _acc entries, QV_GEMM_VARIANT=wgmma) on a few shapes of
 *     both W4 formats, both kernels (QV_WGMMA_PIPE 0 and 1; the verdict is the one the path uses),
 *     split-K off and by the rule, INT32 accumulators against the CPU reference: mismatch count, the first
 *     mismatches with (m, n, got, want), and which n % 32 (channel inside the packed tile) and
 *     m % 16 (token inside an 8-token pair of accumulator rows) residues are wrong: a wrong
 *     A-fragment mapping shows as channel residues, a wrong descriptor as token residues;
 *     plus a check that the wgmma kernel actually ran (launch counter);
 *  3. the FP16 entries on the same shapes through the kernel-case runner (epilogue bit-exact,
 *     saturation counts), as tests/test_gpu_gemm.c does for every family.
 * Every case is printed (and flushed; stdout is line-buffered) before its launch, and the probe
 * traces its launches on stderr (QV_WGMMA_TRACE=1): a run killed by a timeout or a fault shows
 * where it was.
 *  4. the warp-specialized kernel (gpu/sm90a/gemm_wgmma_ws.cu, QV_GEMM_VARIANT=wgmma_ws) on the
 *     same _acc shapes (split-K off and by the rule) and FP16 cases, reported the same way, where
 *     it is usable (the self-test chose the 128-byte-swizzle layout it hard-codes); its launch
 *     counter is checked, and the register-A kernel's must not move.
 * Skips with exit 77: no GPU ("SKIP gpu: no device"), or a GPU where the path does not apply
 * ("SKIP wgmma: ..."; not sm_90, or not built). */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/gpu_mem.h"
#include "qvet/kcases.h"
#include "qvet/qoq.h"

static const int shapes[][3] = {
    {128, 256, 256},   /* one block, two stages: the self-test's shape, through the public entry */
    {64, 128, 1024},   /* half a token tile, half a channel tile */
    {200, 288, 384},   /* token tail, a 32-channel tail block of a second channel tile */
    {300, 1056, 1152}, /* several tiles both ways, 9 stages */
    {513, 512, 2048},  /* a 1-token last tile */
};
static const int nshapes = (int)(sizeof shapes / sizeof *shapes);
static int g_chosen = -2; /* the self-test's choice (main) */
static int g_pipe = 1;     /* the pipeline the path uses (main: "pipelined: yes|no"; forced layout: 1) */

/* one shape of one format: 0 ok, 1 mismatch or wrong path. pipe: the QV_WGMMA_PIPE in force
 * (printed), or -1: the warp-specialized kernel (QV_GEMM_VARIANT=wgmma_ws set by the caller) */
static int check_acc(int g128, int M, int N, int K, uint64_t seed, int pipe)
{
    const int ws = pipe < 0;
    qv_test_rng rng = {seed};
    const size_t MK = (size_t)M * K, NK = (size_t)N * K, MN = (size_t)M * N, NG = (size_t)N * (K / 128);
    int8_t *x = malloc(MK), *w8 = malloc(NK);
    uint8_t *u = malloc(NK), *pk = malloc(NK / 2), *s1 = malloc(NG + 1), *sz1 = malloc(NG + 1);
    uint8_t *s1p = malloc(NG + 1), *sz1p = malloc(NG + 1);
    int32_t *want = malloc(MN * 4), *got = malloc(MN * 4);
    ck_assert(x && w8 && u && pk && s1 && sz1 && s1p && sz1p && want && got);
    for (size_t i = 0; i < MK; i++) x[i] = (int8_t)((int)(qv_test_next(&rng) % 255) - 127);
    for (size_t i = 0; i < NK; i++) u[i] = (uint8_t)(qv_test_next(&rng) % 16);
    for (size_t i = 0; i < NG; i++) { /* s1 <= 8, z <= 15: (u - z) * s1 stays in [-120, 120] */
        s1[i] = (uint8_t)(1 + qv_test_next(&rng) % 8);
        sz1[i] = (uint8_t)(s1[i] * (qv_test_next(&rng) % 16));
    }
    ck_assert_int_eq(qv_w4_pack(u, N, K, pk), QV_OK);
    if (g128) {
        ck_assert_int_eq(qv_w4g128_dequant_ref(u, s1, sz1, N, K, w8), QV_OK);
        ck_assert_int_eq(qv_gemm_acc_s8s8(x, w8, M, N, K, QV_QOQ_G128_KMAX, want, QV_GEMM_BLAS), QV_OK);
        ck_assert_int_eq(qv_w4g128_pack_groupbytes(s1, N, K, s1p), QV_OK);
        ck_assert_int_eq(qv_w4g128_pack_groupbytes(sz1, N, K, sz1p), QV_OK);
    } else {
        ck_assert_int_eq(qv_gemm_acc_s8u4(x, u, M, N, K, want, QV_GEMM_BLAS), QV_OK);
    }
    void *dx, *dw, *ds1, *dsz1, *dacc;
    ck_assert_int_eq(qv_gpu_alloc(&dx, MK, "x"), QV_OK);
    ck_assert_int_eq(qv_gpu_alloc(&dw, NK / 2, "w4"), QV_OK);
    ck_assert_int_eq(qv_gpu_alloc(&ds1, NG + 4, "s1"), QV_OK);
    ck_assert_int_eq(qv_gpu_alloc(&dsz1, NG + 4, "sz1"), QV_OK);
    ck_assert_int_eq(qv_gpu_alloc(&dacc, MN * 4, "acc"), QV_OK);
    ck_assert_int_eq(qv_gpu_upload(dx, x, MK), QV_OK);
    ck_assert_int_eq(qv_gpu_upload(dw, pk, NK / 2), QV_OK);
    if (g128) {
        ck_assert_int_eq(qv_gpu_upload(ds1, s1p, NG), QV_OK);
        ck_assert_int_eq(qv_gpu_upload(dsz1, sz1p, NG), QV_OK);
    }
    ck_assert_int_eq(qv_gpu_memset(dacc, 0x5A, MN * 4), QV_OK); /* poison */
    unsigned long l0, l1;
    const char *fmt = g128 ? "g128" : "chn";
    /* the case is named before its launch (and flushed): a run killed by a timeout or ended by a
     * fault still shows which launch it was in */
    if (ws) printf("%-4s M=%-4d N=%-5d K=%-5d WS: ", fmt, M, N, K);
    else printf("%-4s M=%-4d N=%-5d K=%-5d PIPE %d: ", fmt, M, N, K, pipe);
    fflush(stdout);
    unsigned long o0, o1; /* the other kernel's counter: must not move */
    if (ws) qv_gpu_gemm_wgmma_ws_stats(&l0), qv_gpu_gemm_wgmma_stats(&o0);
    else qv_gpu_gemm_wgmma_stats(&l0), qv_gpu_gemm_wgmma_ws_stats(&o0);
    qv_status st = g128 ? qv_gpu_w4a8_g128_gemm_acc(dx, dw, ds1, dsz1, dacc, M, N, K, 128, NULL)
                        : qv_gpu_w4a8_chn_gemm_acc(dx, dw, dacc, M, N, K, NULL);
    ck_assert_msg(st == QV_OK, "launch: %s", qv_last_error());
    ck_assert_msg(qv_gpu_sync() == QV_OK, "kernel: %s", qv_last_error());
    if (ws) qv_gpu_gemm_wgmma_ws_stats(&l1), qv_gpu_gemm_wgmma_stats(&o1);
    else qv_gpu_gemm_wgmma_stats(&l1), qv_gpu_gemm_wgmma_ws_stats(&o1);
    ck_assert_int_eq(qv_gpu_download(got, dacc, MN * 4), QV_OK);

    long bad = 0;
    uint32_t nres = 0, mres = 0; /* bit r: some mismatch at n % 32 == r / m % 16 == r */
    int shown = 0;
    printf("%s launches %lu: ", ws ? "wgmma_ws" : "wgmma", l1 - l0);
    for (size_t i = 0; i < MN; i++)
        if (got[i] != want[i]) bad++;
    printf("%s (%ld of %zu accumulators wrong)\n", bad ? "MISMATCH" : "bit-exact", bad, MN);
    for (size_t i = 0; i < MN && bad; i++)
        if (got[i] != want[i]) {
            const long m = (long)(i / N), n = (long)(i % N);
            nres |= 1u << (n % 32);
            mres |= 1u << (m % 16);
            if (shown++ < 6) printf("    m=%ld n=%ld (tile row %ld, col %ld): got %d want %d\n", m, n, m % 128, n % 256, got[i], want[i]);
        }
    if (bad) printf("    wrong residues: n %% 32 mask 0x%08x, m %% 16 mask 0x%04x\n", nres, mres);
    if (l1 - l0 != 1) printf("    PATH: expected 1 %s launch, saw %lu\n", ws ? "wgmma_ws" : "wgmma", l1 - l0);
    if (o1 != o0) printf("    PATH: %lu launches of the %s kernel\n", o1 - o0, ws ? "register-A wgmma" : "wgmma_ws");
    qv_gpu_free(dx), qv_gpu_free(dw), qv_gpu_free(ds1), qv_gpu_free(dsz1), qv_gpu_free(dacc);
    free(x), free(w8), free(u), free(pk), free(s1), free(sz1), free(s1p), free(sz1p), free(want), free(got);
    return bad || l1 - l0 != 1 || o1 != o0;
}

START_TEST(wgmma_self_test)
{
    char rep[8192];
    int chosen = -2;
    ck_assert_msg(qv_gpu_wgmma_probe(rep, sizeof rep, &chosen) == QV_OK, "probe: %s", qv_last_error());
    printf("%s", rep);
    ck_assert_msg(chosen >= 0, "no layout candidate is bit-exact: the wgmma path is off on this device");
}
END_TEST

START_TEST(wgmma_acc_bit_exact)
{
    setenv("QV_GEMM_VARIANT", "wgmma", 1);
    if (g_chosen < 0 && !getenv("QV_WGMMA_LAYOUT")) {
        printf("(no candidate passed the self-test: the shapes below run candidate 0 for the diagnosis)\n");
        setenv("QV_WGMMA_LAYOUT", "0", 1);
    }
    int failed[2] = {0, 0};
    /* both kernels (QV_WGMMA_PIPE=0: wait_group 0; 1: double-buffered A, wait_group 1), whatever
     * the self-test chose: a difference between them is a diagnosis in itself. Only the one the
     * path uses (g_pipe) decides the verdict. QV_WGMMA_SPLIT=0: every shape unsplit; then the
     * split-K rule (most of these shapes have too few tiles to fill the SMs, so their K is
     * sliced: the fix-up path) */
    const char *pe = getenv("QV_WGMMA_PIPE"); /* set to 0 by the caller: PIPE 1 is not run at all */
    const int npipes = pe && *pe == '0' ? 1 : 2;
    for (int pipe = 0; pipe < npipes; pipe++) {
        setenv("QV_WGMMA_PIPE", pipe ? "1" : "0", 1);
        for (int sp = 0; sp < 2; sp++) {
            if (sp == 0) setenv("QV_WGMMA_SPLIT", "0", 1);
            else unsetenv("QV_WGMMA_SPLIT");
            printf("-- PIPE %d, split-K %s\n", pipe, sp ? "by the rule" : "off");
            for (int g = 0; g < 2; g++)
                for (int i = 0; i < nshapes; i++)
                    failed[pipe] += check_acc(g, shapes[i][0], shapes[i][1], shapes[i][2], 7001 + (uint64_t)i, pipe);
        }
    }
    if (npipes == 2) unsetenv("QV_WGMMA_PIPE");
    unsetenv("QV_GEMM_VARIANT");
    printf("wgmma _acc cases: PIPE 0 %d failed of %d, PIPE 1 %d failed of %d (the path uses PIPE %d)\n", failed[0],
           4 * nshapes, failed[1], 4 * nshapes, g_pipe);
    if (g_chosen < 0) unsetenv("QV_WGMMA_LAYOUT");
    ck_assert_int_eq(failed[g_pipe], 0);
}
END_TEST

/* The FP16 entries through the kernel-case runner for every shape and both W4 formats under
 * QV_GEMM_VARIANT=variant; a case counts as failed unless bit-exact and the kernel counted by
 * stats ran for both its entries (_acc and FP16). Returns the failures. */
static int fp16_cases(const char *variant, const char *tag, void (*stats)(unsigned long *))
{
    setenv("QV_GEMM_VARIANT", variant, 1);
    int failed = 0;
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < nshapes; i++) {
            qv_kcase c = {g ? QV_KK_W4A8_G128 : QV_KK_W4A8_CHN, QV_KV_RANDOM, shapes[i][0], shapes[i][1], shapes[i][2]};
            char name[160];
            qv_kcase_name(&c, name, sizeof name);
            qv_kresult r;
            unsigned long l0, l1;
            stats(&l0);
            printf("%s%-*s ", tag, 44 - (int)strlen(tag), name); /* named before its launches (see check_acc) */
            fflush(stdout);
            ck_assert_msg(qv_kcase_run(&c, QV_KB_GPU, 9001 + (uint64_t)i, &r) == QV_OK, "%s: %s", name, qv_last_error());
            stats(&l1);
            printf("%s launches %lu  acc: %s  out: %s  sat %ld/%ld  %s\n", variant, l1 - l0,
                   r.acc_mismatch ? "MISMATCH" : "bit-exact", r.out_mismatch ? "MISMATCH" : "bit-exact", r.sat_got,
                   r.sat_ref, r.ok ? "OK" : "FAIL");
            if (!r.ok && r.first >= 0)
                printf("    first mismatch m=%ld n=%ld: acc gpu %d ref %d, y gpu 0x%04x ref 0x%04x\n", r.first / c.N,
                       r.first % c.N, r.first_acc_got, r.first_acc_ref, r.first_out_got, r.first_out_ref);
            if (!r.ok || l1 - l0 < 2) failed++;
        }
    unsetenv("QV_GEMM_VARIANT");
    printf("%s fp16 cases: %d failed of %d\n", variant, failed, 2 * nshapes);
    return failed;
}

START_TEST(wgmma_fp16_bit_exact)
{
    ck_assert_int_eq(fp16_cases("wgmma", "", qv_gpu_gemm_wgmma_stats), 0);
}
END_TEST

/* the warp-specialized kernel on the same shapes: INT32 (split-K off, then by the rule) */
START_TEST(wgmma_ws_acc_bit_exact)
{
    if (!qv_gpu_gemm_wgmma_ws_usable()) {
        printf("wgmma_ws: not usable on this device (the self-test chose no 128-byte-swizzle layout): not run\n");
        return;
    }
    setenv("QV_GEMM_VARIANT", "wgmma_ws", 1);
    int failed = 0;
    for (int sp = 0; sp < 2; sp++) {
        if (sp == 0) setenv("QV_WGMMA_SPLIT", "0", 1);
        else unsetenv("QV_WGMMA_SPLIT");
        printf("-- wgmma_ws, split-K %s\n", sp ? "by the rule" : "off");
        for (int g = 0; g < 2; g++)
            for (int i = 0; i < nshapes; i++)
                failed += check_acc(g, shapes[i][0], shapes[i][1], shapes[i][2], 7001 + (uint64_t)i, -1);
    }
    unsetenv("QV_GEMM_VARIANT");
    printf("wgmma_ws _acc cases: %d failed of %d\n", failed, 4 * nshapes);
    ck_assert_int_eq(failed, 0);
}
END_TEST

START_TEST(wgmma_ws_fp16_bit_exact)
{
    if (!qv_gpu_gemm_wgmma_ws_usable()) return; /* said once above */
    ck_assert_int_eq(fp16_cases("wgmma_ws", "ws ", qv_gpu_gemm_wgmma_ws_stats), 0);
}
END_TEST

int main(void)
{
    /* line-buffered even into a file (the run script redirects it): a run killed by `timeout`
     * keeps every line printed so far; the probe's per-launch trace goes to stderr */
    setvbuf(stdout, NULL, _IOLBF, 0);
    setenv("QV_WGMMA_TRACE", "1", 0);
    if (qv_gpu_device_count() == 0) {
        printf("SKIP gpu: no device (%s)\n", qv_gpu_describe());
        return QV_TEST_SKIP;
    }
    printf("device: %s\n", qv_gpu_describe());
    static char rep[8192];
    int chosen = -2;
    if (qv_gpu_wgmma_probe(rep, sizeof rep, &chosen) != QV_OK) {
        printf("%swgmma probe failed: %s\n", rep, qv_last_error());
        return 1;
    }
    g_chosen = chosen;
    /* the path's pipeline: QV_WGMMA_PIPE if set, else the self-test's (a forced layout: PIPE 1) */
    const char *pe = getenv("QV_WGMMA_PIPE");
    g_pipe = pe && *pe ? *pe == '1' : chosen < 0 || strstr(rep, "pipelined: yes") ? 1 : 0;
    if (chosen == -2) {
        printf("SKIP wgmma: %s", rep);
        return QV_TEST_SKIP;
    }
    Suite *s = suite_create("gpu_wgmma");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, wgmma_self_test);
    tcase_add_test(tc, wgmma_acc_bit_exact);
    tcase_add_test(tc, wgmma_fp16_bit_exact);
    tcase_add_test(tc, wgmma_ws_acc_bit_exact);
    tcase_add_test(tc, wgmma_ws_fp16_bit_exact);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
