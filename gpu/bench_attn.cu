// qv_bench_attn (bench/bench_gpu_attn.c): KV4 decode attention vs the FP16-KV decode attention
// (same kernel, FP16 pages) and vs a device-to-device copy, plus the fused RMSNorm+A8 and
// SiLU*mul+A8 producers and the standalone A8 (quant_a8), all in one run on one device.
// Method (device METHOD.md): warm-up launches, then 3 timed batches between CUDA events, median
// of the batch means. Effective bandwidth = bytes the kernel must move / time: KV4 attention reads
// per sequence ctx * nkv * 2 * (hd/2 + 4) bytes (codes + FP16 s, mn, K and V) plus q and writes
// the output; FP16 attention ctx * nkv * 2 * hd * 2. The copy moves read + write bytes. Caches are
// rotated through copies totalling >= 256 MiB per case, far above L2, so they stream from HBM. The
// KV4 cache is measured on the kernel qv_gpu_attention picks (the tensor-core one for these shapes)
// and, same run, on the general kernel (QV_ATTN_VARIANT=chunk).
// qv_bench_attn_into adds the "attention" and "fused" arrays to a caller's JSON object (`qvet bench`
// puts them next to the GEMM results); each row has a "name" ("attn_kv4 batch=64 ctx=4096",
// "rmsnorm_a8 K=4096 M=1024") that `qvet bench --filter` selects on (a POSIX ERE searched in the
// name, bench_filter.h). Each producer row also
// has copy_same_bytes_GBps: a D2D copy moving the same read + write bytes (small sizes sit in L2,
// as the producer's own input does; the goal stays relative to the 1 GiB copy, copy_GBps).
// "attention_prefill": one sequence's prefill of 4096 tokens (row "attn_kv4_prefill tokens=4096") on
// the tensor-core kernel one row per block vs its tiled prefill variant (QV_ATTN_PREFILL), the
// speed-up and whether the two outputs are bit-identical.
// QV_BENCH_A8_SWEEP=1 adds "fused_a8_sweep": every QV_A8_VARIANT of each producer at M = 4096 and
// 16384 (rows "silu_mul_a8 I=14336 M=4096 variant=stage1" with the keys of "fused" plus "variant").
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cJSON.h>
#include <cuda_runtime.h>

#include "qv_cuda_check.h"
#include "bench_filter.h"

extern "C" {
#include "qvet/fileio.h"
#include "qvet/fp16.h"
#include "qvet/gpu_kernels.h"
}

namespace {

template <typename F>
qv_status time_it(F fn, double *sec)
{
    cudaEvent_t a, b;
    QV_CUDA_TRY(cudaEventCreate(&a));
    QV_CUDA_TRY(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) QV_TRY(fn());
    QV_CUDA_TRY(cudaEventRecord(a));
    QV_TRY(fn());
    QV_CUDA_TRY(cudaEventRecord(b));
    QV_CUDA_TRY(cudaEventSynchronize(b));
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    int n = std::max(3, std::min(2000, (int)(2.0 / std::max(ms, 1e-3f))));
    std::vector<double> t;
    for (int rep = 0; rep < 3; rep++) {
        QV_CUDA_TRY(cudaEventRecord(a));
        for (int i = 0; i < n; i++) QV_TRY(fn());
        QV_CUDA_TRY(cudaEventRecord(b));
        QV_CUDA_TRY(cudaEventSynchronize(b));
        cudaEventElapsedTime(&ms, a, b);
        t.push_back(ms * 1e-3 / n);
    }
    std::sort(t.begin(), t.end());
    *sec = t[1];
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

struct Dev {
    void *p = nullptr;
    ~Dev() { if (p) cudaFree(p); }
};

qv_status dalloc(Dev &d, size_t n)
{
    QV_CUDA_TRY(cudaMalloc(&d.p, n ? n : 1));
    QV_CUDA_TRY(cudaMemset(d.p, 0x3c, n ? n : 1)); // FP16 0x3c3c ~ 1.06; KV4 codes 12/3: finite everywhere
    return QV_OK;
}

qv_status attn_case(qv_kv_fmt fmt, int B, int ctx, double *sec, double *bytes)
{
    const int nh = 32, nkv = 8, hd = 128, P = 16;
    int max_pages = (ctx + P - 1) / P, n_pages = B * max_pages;
    size_t PB = qv_gpu_kv_page_bytes(fmt, nkv, hd, P), pool_bytes = (size_t)n_pages * 2 * PB;
    // rotate through copies of the cache so that the working set is >= 256 MiB: a small cache would
    // otherwise be served from the 50 MB L2 after the first launch and measure cache, not HBM
    int n_rep = (int)std::min<size_t>(64, std::max<size_t>(1, (((size_t)256 << 20) + pool_bytes - 1) / pool_bytes));
    Dev pool, pt, q, out, ws, rs, rc, rf, ri;
    QV_TRY(dalloc(pool, pool_bytes * n_rep));
    std::vector<int32_t> h(n_pages);
    for (int i = 0; i < n_pages; i++) h[i] = i;
    QV_TRY(dalloc(pt, h.size() * 4));
    QV_CUDA_TRY(cudaMemcpy(pt.p, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    std::vector<int32_t> slot(B), cx(B, ctx), fs(B, 1 << 30), fi(B, 0);
    for (int i = 0; i < B; i++) slot[i] = i;
    QV_TRY(dalloc(rs, B * 4)); QV_TRY(dalloc(rc, B * 4)); QV_TRY(dalloc(rf, B * 4)); QV_TRY(dalloc(ri, B * 4));
    QV_CUDA_TRY(cudaMemcpy(rs.p, slot.data(), B * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(rc.p, cx.data(), B * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(rf.p, fs.data(), B * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(ri.p, fi.data(), B * 4, cudaMemcpyHostToDevice));
    QV_TRY(dalloc(q, (size_t)B * nh * hd * 2));
    QV_TRY(dalloc(out, (size_t)B * nh * hd * 2));
    size_t wsb = qv_gpu_attn_ws_bytes(B, nh, hd, ctx);
    QV_TRY(dalloc(ws, wsb));
    qv_gpu_kv_cache c = {fmt, nkv, hd, P, max_pages, (const int32_t *)pt.p, (uint8_t *)pool.p};
    qv_gpu_attn_args a = {B, nh, (const uint16_t *)q.p, (const int32_t *)rs.p, (const int32_t *)rc.p,
                          (const int32_t *)rf.p, (const int32_t *)ri.p, nullptr, nullptr, 0.08838834764831845f, ctx,
                          (uint16_t *)out.p, ws.p, wsb, 0};
    int rep = 0;
    QV_TRY(time_it([&] {
        c.pool = (uint8_t *)pool.p + (size_t)(rep++ % n_rep) * pool_bytes;
        return qv_gpu_attention(&a, &c, nullptr);
    }, sec));
    double per_tok = fmt == QV_KV_FMT_KV4 ? 2.0 * (hd / 2 + 4) : 2.0 * hd * 2;
    *bytes = (double)B * nkv * ctx * per_tok + 2.0 * B * nh * hd * 2;
    return QV_OK;
}

// Prefill of one sequence of T tokens (rows ctx = 1 .. T, 32 q / 8 KV heads, d 128, pages of 16) on
// the tensor-core KV4 kernel, one row per block (QV_ATTN_PREFILL=rows) vs the tiled prefill kernel
// with tiles of 4 and of 2 rows (QV_ATTN_TILE_ROWS=2): times t[0..2], the tile sizes that ran
// (ran[1..2]; 0: did not fit, the one-row kernel ran) and whether each tiled output is bit-identical
// to the one-row kernel's (random codes, scales and q). The cache (T = 4096: 4.5 MB) stays in L2, as
// a prefill's freshly written cache does: this measures the kernels' work.
qv_status prefill_case(int T, double t[3], int ran[3], int identical[3])
{
    const int nh = 32, nkv = 8, hd = 128, P = 16, max_pages = (T + P - 1) / P;
    size_t PB = qv_gpu_kv_page_bytes(QV_KV_FMT_KV4, nkv, hd, P), pool_bytes = (size_t)max_pages * 2 * PB;
    Dev pool, pt, q, out, ws, rs, rc, rf, ri;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&x] { x ^= x << 13, x ^= x >> 7, x ^= x << 17; return x; };
    std::vector<uint8_t> hp(pool_bytes);
    for (size_t i = 0; i < pool_bytes; i++) hp[i] = (uint8_t)next();
    for (int pg = 0; pg < 2 * max_pages; pg++) { // s in [0.01, 0.1), mn in [-0.8, 0): finite FP16 scales
        uint16_t *sm = (uint16_t *)(hp.data() + (size_t)pg * PB + (size_t)nkv * P * hd / 2);
        for (int i = 0; i < nkv * P; i++) {
            sm[i] = qv_fp32_to_fp16(0.01f + 0.09f * (float)(next() % 1000) / 1000.0f);
            sm[nkv * P + i] = qv_fp32_to_fp16(-0.8f * (float)(next() % 1000) / 1000.0f);
        }
    }
    QV_TRY(dalloc(pool, pool_bytes));
    QV_CUDA_TRY(cudaMemcpy(pool.p, hp.data(), pool_bytes, cudaMemcpyHostToDevice));
    std::vector<int32_t> h(max_pages), slot(T, 0), cx(T), fs(T, 1 << 30), fi(T, 0);
    for (int i = 0; i < max_pages; i++) h[i] = i;
    for (int i = 0; i < T; i++) cx[i] = i + 1;
    std::vector<uint16_t> hq((size_t)T * nh * hd);
    for (auto &v : hq) v = qv_fp32_to_fp16((float)(next() % 2001) / 1000.0f - 1.0f);
    QV_TRY(dalloc(pt, h.size() * 4));
    QV_TRY(dalloc(rs, T * 4)); QV_TRY(dalloc(rc, T * 4)); QV_TRY(dalloc(rf, T * 4)); QV_TRY(dalloc(ri, T * 4));
    QV_TRY(dalloc(q, hq.size() * 2));
    QV_CUDA_TRY(cudaMemcpy(pt.p, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(rs.p, slot.data(), T * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(rc.p, cx.data(), T * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(rf.p, fs.data(), T * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(ri.p, fi.data(), T * 4, cudaMemcpyHostToDevice));
    QV_CUDA_TRY(cudaMemcpy(q.p, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice));
    size_t ob = (size_t)T * nh * hd * 2, wsb = qv_gpu_attn_ws_bytes(T, nh, hd, T);
    QV_TRY(dalloc(out, ob));
    QV_TRY(dalloc(ws, wsb));
    qv_gpu_kv_cache c = {QV_KV_FMT_KV4, nkv, hd, P, max_pages, (const int32_t *)pt.p, (uint8_t *)pool.p};
    qv_gpu_attn_args a = {T, nh, (const uint16_t *)q.p, (const int32_t *)rs.p, (const int32_t *)rc.p,
                          (const int32_t *)rf.p, (const int32_t *)ri.p, nullptr, nullptr, 0.08838834764831845f, T,
                          (uint16_t *)out.p, ws.p, wsb, 1};
    std::vector<uint16_t> o[3] = {std::vector<uint16_t>(ob / 2), std::vector<uint16_t>(ob / 2), std::vector<uint16_t>(ob / 2)};
    const char *knobs[2] = {"QV_ATTN_PREFILL", "QV_ATTN_TILE_ROWS"};
    std::string prev[2];
    bool had[2];
    for (int k = 0; k < 2; k++) {
        const char *e = getenv(knobs[k]);
        had[k] = e != nullptr, prev[k] = e ? e : "";
    }
    qv_status st = QV_OK;
    for (int v = 0; v < 3 && st == QV_OK; v++) {
        setenv("QV_ATTN_PREFILL", v ? "tiled" : "rows", 1);
        setenv("QV_ATTN_TILE_ROWS", v == 2 ? "2" : "4", 1);
        ran[v] = qv_gpu_attention_uses_tiled(&a, &c);
        st = time_it([&] { return qv_gpu_attention(&a, &c, nullptr); }, &t[v]);
        if (st == QV_OK && cudaMemcpy(o[v].data(), out.p, ob, cudaMemcpyDeviceToHost) != cudaSuccess)
            st = qv_fail(QV_ERR_CUDA, "bench prefill: download: %s", cudaGetErrorString(cudaGetLastError()));
        identical[v] = st == QV_OK && memcmp(o[0].data(), o[v].data(), ob) == 0;
    }
    for (int k = 0; k < 2; k++) {
        if (had[k]) setenv(knobs[k], prev[k].c_str(), 1);
        else unsetenv(knobs[k]);
    }
    return st;
}

} // namespace

namespace {
const int kAttnCases[][2] = {{1, 4096}, {16, 1024}, {64, 1024}, {64, 4096}, {256, 1024}};
const int kRows[] = {1, 16, 64, 256, 1024, 4096};
const char *const kFusedNames[] = {"rmsnorm_a8 K=4096", "silu_mul_a8 I=14336", "quant_a8 K=4096"};
bool keep(const char *name, const char *filter) { return qv_bench_keep(name, filter); }
} // namespace

extern "C" qv_status qv_bench_attn_into(cJSON *root, const char *filter)
{
    cudaDeviceProp prop;
    QV_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
    cJSON *arr = cJSON_AddArrayToObject(root, "attention"), *fz = cJSON_AddArrayToObject(root, "fused");
    if (!cJSON_GetObjectItemCaseSensitive(root, "device")) cJSON_AddStringToObject(root, "device", prop.name);
    // QV_BENCH_ATTN_ONLY=i: only attention case i, no producers (profiling one case under ncu)
    const char *only = getenv("QV_BENCH_ATTN_ONLY");
    char name[64];
    const int n_attn = (int)(sizeof kAttnCases / sizeof *kAttnCases);
    auto attn_selected = [&](int i) { // names case i into `name`
        snprintf(name, sizeof name, "attn_kv4 batch=%d ctx=%d", kAttnCases[i][0], kAttnCases[i][1]);
        return keep(name, filter) && (!only || atoi(only) == i);
    };
    int n_sel = 0;
    for (int i = 0; i < n_attn; i++) n_sel += attn_selected(i);
    const char *kPrefillName = "attn_kv4_prefill tokens=4096";
    const bool prefill_sel = keep(kPrefillName, filter) && !only;
    n_sel += prefill_sel;
    for (int which = 0; which < 3 && !only; which++)
        for (int M : kRows) {
            snprintf(name, sizeof name, "%s M=%d", kFusedNames[which], M);
            n_sel += keep(name, filter);
        }
    const char *sweep_on = getenv("QV_BENCH_A8_SWEEP");
    if (sweep_on && strcmp(sweep_on, "1") == 0 && !only) n_sel++; // the variant sweep (filtered per row below)
    if (n_sel == 0) return QV_OK; // nothing selected: no copy measurement either
    // copy bandwidth: 1 GiB D2D
    size_t cb = (size_t)1 << 30;
    Dev src, dst;
    QV_TRY(dalloc(src, cb));
    QV_TRY(dalloc(dst, cb));
    double tc = 0;
    QV_TRY(time_it([&]() -> qv_status { QV_CUDA_TRY(cudaMemcpyAsync(dst.p, src.p, cb, cudaMemcpyDeviceToDevice)); return QV_OK; }, &tc));
    double copy_bw = 2.0 * cb / tc;
    cJSON_AddNumberToObject(root, "copy_GBps", copy_bw / 1e9);
    printf("D2D copy: %.0f GB/s (read + write)\n", copy_bw / 1e9);
    printf("%-14s %10s %10s %9s %12s %10s %10s %9s\n", "batch,ctx", "kv4 us", "kv4 GB/s", "kv4/copy", "kv4 chunk us",
           "fp16 us", "fp16 GB/s", "speedup");
    for (int i = 0; i < n_attn; i++) {
        if (!attn_selected(i)) continue;
        const int *cs = kAttnCases[i];
        double t4, b4, t16, b16, t4c, b4c;
        QV_TRY(attn_case(QV_KV_FMT_KV4, cs[0], cs[1], &t4, &b4));
        setenv("QV_ATTN_VARIANT", "chunk", 1); // the general FP32 kernel on the same KV4 cache
        qv_status stc = attn_case(QV_KV_FMT_KV4, cs[0], cs[1], &t4c, &b4c);
        unsetenv("QV_ATTN_VARIANT");
        QV_TRY(stc);
        QV_TRY(attn_case(QV_KV_FMT_FP16, cs[0], cs[1], &t16, &b16));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "batch", cs[0]);
        cJSON_AddNumberToObject(o, "context", cs[1]);
        cJSON_AddNumberToObject(o, "kv4_us", t4 * 1e6);
        cJSON_AddNumberToObject(o, "kv4_bytes", b4);
        cJSON_AddNumberToObject(o, "kv4_GBps", b4 / t4 / 1e9);
        cJSON_AddNumberToObject(o, "kv4_frac_copy", b4 / t4 / copy_bw);
        cJSON_AddNumberToObject(o, "kv4_chunk_kernel_us", t4c * 1e6);
        cJSON_AddNumberToObject(o, "fp16_us", t16 * 1e6);
        cJSON_AddNumberToObject(o, "fp16_GBps", b16 / t16 / 1e9);
        cJSON_AddNumberToObject(o, "speedup_kv4_over_fp16", t16 / t4);
        cJSON_AddItemToArray(arr, o);
        printf("%4d,%-9d %10.1f %10.0f %8.0f%% %12.1f %10.1f %10.0f %8.2fx\n", cs[0], cs[1], t4 * 1e6, b4 / t4 / 1e9,
               100 * b4 / t4 / copy_bw, t4c * 1e6, t16 * 1e6, b16 / t16 / 1e9, t16 / t4);
    }
    if (prefill_sel) { // one sequence's prefill: one row per block vs the tiled kernel
        double t[3] = {0, 0, 0};
        int ran[3] = {0, 0, 0}, same[3] = {0, 0, 0};
        QV_TRY(prefill_case(4096, t, ran, same));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", kPrefillName);
        cJSON_AddNumberToObject(o, "tokens", 4096);
        cJSON_AddNumberToObject(o, "rows_us", t[0] * 1e6);
        cJSON_AddNumberToObject(o, "tiled4_us", t[1] * 1e6);
        cJSON_AddNumberToObject(o, "tiled2_us", t[2] * 1e6);
        cJSON_AddNumberToObject(o, "speedup_tiled4_over_rows", t[0] / t[1]);
        cJSON_AddNumberToObject(o, "speedup_tiled2_over_rows", t[0] / t[2]);
        cJSON_AddNumberToObject(o, "tiled4_rows_per_tile_ran", ran[1]); // 0: did not fit, one-row kernel
        cJSON_AddNumberToObject(o, "tiled2_rows_per_tile_ran", ran[2]);
        cJSON_AddBoolToObject(o, "bit_identical", same[1] && same[2]);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "attention_prefill"), o);
        printf("prefill 4096 tokens (kv4, 32/8 heads, d 128): rows %.1f us; tiled-4 %.1f us (%.2fx, ran %d rows/tile); tiled-2 "
               "%.1f us (%.2fx, ran %d rows/tile); outputs %s\n", t[0] * 1e6, t[1] * 1e6, t[0] / t[1], ran[1], t[2] * 1e6,
               t[0] / t[2], ran[2], same[1] && same[2] ? "bit-identical" : "DIFFER");
    }
    // fused producers
    if (only) return QV_OK;
    // one producer case: buffers for (which, M), then each variant in `variants` (nullptr: the
    // knob as the caller's environment has it) timed; a D2D copy of the same read + write bytes
    // (what a kernel of that size can reach: small cases sit in L2) is timed once per case
    struct Meas {
        double t = 0, bytes = 0;
    };
    auto producer = [&](int which, int M, const char *const *variants, int n_var, Meas *out, double *t_same) -> qv_status {
        int K = which == 1 ? 14336 : 4096;
        Dev x, w, q, sa, rsum;
        // fp32 row, fp16 gate|up (2 x I halves), or the fp16 row of quant_a8
        size_t in = which == 2 ? (size_t)M * K * 2 : (size_t)M * K * 4;
        QV_TRY(dalloc(x, in));
        QV_TRY(dalloc(w, K * 4));
        QV_TRY(dalloc(q, (size_t)M * K));
        QV_TRY(dalloc(sa, M * 4));
        QV_TRY(dalloc(rsum, M * 4));
        std::vector<float> ones(K, 1.0f); // w = 1.0
        QV_CUDA_TRY(cudaMemcpy(w.p, ones.data(), K * 4, cudaMemcpyHostToDevice));
        double bytes = (double)in + (double)M * K + 8.0 * M + (which == 0 ? 4.0 * K : 0.0);
        for (int v = 0; v < n_var; v++) {
            const char *prev = getenv("QV_A8_VARIANT");
            std::string keep_prev = prev ? prev : "";
            if (variants) setenv("QV_A8_VARIANT", variants[v], 1);
            double t = 0;
            qv_status st;
            if (which == 0)
                st = time_it([&] { return qv_gpu_rmsnorm_a8((const float *)x.p, (const float *)w.p, 1e-5f, M, K,
                                                            (int8_t *)q.p, (float *)sa.p, (int32_t *)rsum.p, nullptr); }, &t);
            else if (which == 1)
                st = time_it([&] { return qv_gpu_silu_mul_a8((const uint16_t *)x.p, M, K, (int8_t *)q.p, (float *)sa.p,
                                                             (int32_t *)rsum.p, nullptr); }, &t);
            else
                st = time_it([&] { return qv_gpu_quant_a8((const uint16_t *)x.p, M, K, (int8_t *)q.p, (float *)sa.p,
                                                          (int32_t *)rsum.p, nullptr); }, &t);
            if (variants) {
                if (prev) setenv("QV_A8_VARIANT", keep_prev.c_str(), 1);
                else unsetenv("QV_A8_VARIANT");
            }
            QV_TRY(st);
            out[v] = {t, bytes};
        }
        size_t half = (size_t)(bytes / 2); // read + write = the producer's bytes
        QV_TRY(time_it([&]() -> qv_status { QV_CUDA_TRY(cudaMemcpyAsync(dst.p, src.p, half, cudaMemcpyDeviceToDevice)); return QV_OK; },
                       t_same));
        return QV_OK;
    };
    auto row = [&](cJSON *o, const Meas &m, double t_same) {
        cJSON_AddNumberToObject(o, "us", m.t * 1e6);
        cJSON_AddNumberToObject(o, "GBps", m.bytes / m.t / 1e9);
        cJSON_AddNumberToObject(o, "frac_copy", m.bytes / m.t / copy_bw);
        cJSON_AddNumberToObject(o, "copy_same_bytes_GBps", m.bytes / t_same / 1e9);
    };
    printf("%-22s %6s %10s %10s %9s %14s\n", "kernel", "M", "us", "GB/s", "of copy", "copy same GB/s");
    for (int which = 0; which < 3; which++)
        for (int M : kRows) {
            snprintf(name, sizeof name, "%s M=%d", kFusedNames[which], M);
            if (!keep(name, filter)) continue;
            Meas m = {0, 0};
            double t_same = 0;
            QV_TRY(producer(which, M, nullptr, 1, &m, &t_same));
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", name);
            cJSON_AddStringToObject(o, "kernel", kFusedNames[which]);
            cJSON_AddNumberToObject(o, "M", M);
            row(o, m, t_same);
            cJSON_AddItemToArray(fz, o);
            printf("%-22s %6d %10.1f %10.0f %8.0f%% %14.0f\n", kFusedNames[which], M, m.t * 1e6, m.bytes / m.t / 1e9,
                   100 * m.bytes / m.t / copy_bw, m.bytes / t_same / 1e9);
        }
    // QV_BENCH_A8_SWEEP=1: every QV_A8_VARIANT at M = 4096 and 16384 ("fused_a8_sweep" rows, named
    // "<kernel> M=<M> variant=<name>", so the filter selects them too)
    const char *sweep = getenv("QV_BENCH_A8_SWEEP");
    if (!sweep || strcmp(sweep, "1") != 0) return QV_OK;
    const int n_var = qv_gpu_a8_variant_count();
    std::vector<const char *> vnames(n_var);
    for (int v = 0; v < n_var; v++) vnames[v] = qv_gpu_a8_variant_name(v);
    cJSON *sw = cJSON_AddArrayToObject(root, "fused_a8_sweep");
    printf("A8 producer variants (QV_A8_VARIANT; %% of the 1 GiB copy, and the same-size copy):\n");
    printf("%-22s %6s %-8s %10s %10s %9s %14s\n", "kernel", "M", "variant", "us", "GB/s", "of copy", "copy same GB/s");
    for (int which = 0; which < 3; which++)
        for (int M : {4096, 16384}) {
            bool any = false;
            for (int v = 0; v < n_var; v++) {
                snprintf(name, sizeof name, "%s M=%d variant=%s", kFusedNames[which], M, vnames[v]);
                any = any || keep(name, filter);
            }
            if (!any) continue;
            std::vector<Meas> ms(n_var);
            double t_same = 0;
            QV_TRY(producer(which, M, vnames.data(), n_var, ms.data(), &t_same));
            for (int v = 0; v < n_var; v++) {
                snprintf(name, sizeof name, "%s M=%d variant=%s", kFusedNames[which], M, vnames[v]);
                if (!keep(name, filter)) continue;
                const Meas &m = ms[v];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", name);
                cJSON_AddStringToObject(o, "kernel", kFusedNames[which]);
                cJSON_AddStringToObject(o, "variant", vnames[v]);
                cJSON_AddNumberToObject(o, "M", M);
                row(o, m, t_same);
                cJSON_AddItemToArray(sw, o);
                printf("%-22s %6d %-8s %10.1f %10.0f %8.0f%% %14.0f\n", kFusedNames[which], M, vnames[v], m.t * 1e6,
                       m.bytes / m.t / 1e9, 100 * m.bytes / m.t / copy_bw, m.bytes / t_same / 1e9);
            }
        }
    return QV_OK;
}

extern "C" qv_status qv_bench_attn(const char *json_path)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return qv_fail(QV_ERR_NOMEM, "bench_attn: out of memory");
    qv_status st = qv_bench_attn_into(root, NULL);
    char *txt = st == QV_OK ? cJSON_Print(root) : nullptr;
    cJSON_Delete(root);
    if (st != QV_OK) return st;
    if (!txt) return qv_fail(QV_ERR_NOMEM, "bench_attn: out of memory");
    st = qv_write_file_atomic(json_path, txt, strlen(txt));
    free(txt);
    return st;
}
