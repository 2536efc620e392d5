// qv_bench_gemm (qvet bench): qvet's three GEMM kernels vs cuBLAS FP16 (cublasGemmEx) and
// cuBLASLt INT8 (INT32 out), plus a device-to-device copy for the bandwidth ceiling, all in
// one run on one device, at the Llama-3-8B layer shapes and M in {1,16,64,256,1024,4096,8192}.
// Method (../.library/device/METHOD.md): warm-up launches, then 3 timed batches of n launches
// between CUDA events (n sized to >= ~2 ms a batch), median of the batch means. Weights rotate
// through R copies with R * bytes >= 2 * L2, so each launch reads its weights from HBM, not L2
// (activations are not rotated: in a model they were just written by the previous kernel).
// Inputs are random (never zeros). Reported: time, TOP/s (2*M*N*K / t), weight-stream GB/s
// (weight bytes / t) and its ratio to the copy bandwidth (read + write bytes / t).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <string>
#include <algorithm>

#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cJSON.h>

#include "qv_cuda_check.h"
#include "bench_filter.h"

extern "C" {
#include "qvet/gpu_gemm.h"
}

namespace {

__global__ void fill_random(uint8_t *p, size_t n, uint32_t seed, int mode)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
        if (mode == 0) p[i] = (uint8_t)h;                                   // any byte
        else if (mode == 1) p[i] = (uint8_t)((int)(h % 255u) - 127);         // int8 in [-127,127]
        else if (mode == 2) p[i] = (uint8_t)(1 + h % 16u);                   // s1 in 1..16
        else if (mode == 3) p[i] = (uint8_t)(8 * (1 + h % 16u) > 240 ? 240 : 8 * (1 + h % 16u)); // sz1
        else if (mode == 4) { // fp16 in [-1, 1) (pairs of bytes: write whole halves)
            if (i % 2 == 0 && i + 1 < n) {
                __half v = __float2half(((int)(h % 2048u) - 1024) / 1024.0f);
                memcpy(p + i, &v, 2);
            }
        } else p[i] = 0x3c; // mode 5: every float = 0x3c3c3c3c ~ 0.0115, a small positive scale
    }
}

qv_status dev_fill(void *p, size_t n, uint32_t seed, int mode)
{
    fill_random<<<1024, 256>>>(static_cast<uint8_t *>(p), n, seed, mode);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

struct Timer {
    cudaEvent_t a, b;
};

// Median over 3 batches of the mean time (ms) of one launch; `fn(i)` launches on buffer set i.
template <class F> qv_status time_ms(F fn, int nbuf, double *out)
{
    cudaEvent_t a, b;
    QV_CUDA_TRY(cudaEventCreate(&a));
    QV_CUDA_TRY(cudaEventCreate(&b));
    int it = 0;
    for (int w = 0; w < 3; w++) QV_TRY(fn(it++ % nbuf));
    QV_CUDA_TRY(cudaEventRecord(a));
    QV_TRY(fn(it++ % nbuf));
    QV_CUDA_TRY(cudaEventRecord(b));
    QV_CUDA_TRY(cudaEventSynchronize(b));
    float est = 0;
    QV_CUDA_TRY(cudaEventElapsedTime(&est, a, b));
    int n = (int)std::min(500.0, std::max(10.0, 2.0 / std::max(est, 1e-4f)));
    double t[3];
    for (int rep = 0; rep < 3; rep++) {
        QV_CUDA_TRY(cudaEventRecord(a));
        for (int i = 0; i < n; i++) QV_TRY(fn(it++ % nbuf));
        QV_CUDA_TRY(cudaEventRecord(b));
        QV_CUDA_TRY(cudaEventSynchronize(b));
        float ms = 0;
        QV_CUDA_TRY(cudaEventElapsedTime(&ms, a, b));
        t[rep] = ms / n;
    }
    std::sort(t, t + 3);
    *out = t[1];
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return QV_OK;
}

struct Layer {
    const char *name;
    int N, K;
};

} // namespace

extern "C" qv_status qv_bench_gemm(const char *json_path, const char *filter)
{
    const Layer layers[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
    const int Ms[] = {1, 16, 64, 256, 1024, 4096, 8192};
    // QV_BENCH_GEMM_W4ONLY=1: time the two W4 kernels only (baselines and W8A8 null in the JSON):
    // a second run under another QV_GEMM_VARIANT in the same call, at half the device time
    const char *w4e = getenv("QV_BENCH_GEMM_W4ONLY");
    const bool w4_only = w4e && *w4e == '1';
    const int MMAX = 8192;
    cudaDeviceProp prop;
    QV_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
    const double l2 = prop.l2CacheSize;

    cublasHandle_t cb;
    cublasLtHandle_t lt;
    QV_CUBLAS_TRY(cublasCreate(&cb));
    QV_CUBLAS_TRY(cublasLtCreate(&lt));
    size_t ws_bytes = 64u << 20;
    void *ws = nullptr;
    QV_CUDA_TRY(cudaMalloc(&ws, ws_bytes));

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", prop.name);
    cJSON_AddNumberToObject(root, "sm_count", prop.multiProcessorCount);
    cJSON_AddNumberToObject(root, "l2_bytes", l2);

    // ---- copy bandwidth ceiling: 1 GiB device-to-device, read + write bytes counted ----
    double copy_gbs = 0;
    {
        size_t n = 1u << 30;
        void *s = nullptr, *d = nullptr;
        QV_CUDA_TRY(cudaMalloc(&s, n));
        QV_CUDA_TRY(cudaMalloc(&d, n));
        QV_TRY(dev_fill(s, n, 1, 0));
        double ms = 0;
        QV_TRY(time_ms([&](int) -> qv_status { QV_CUDA_TRY(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice)); return QV_OK; }, 1, &ms));
        copy_gbs = 2.0 * n / (ms * 1e-3) / 1e9;
        cudaFree(s);
        cudaFree(d);
    }
    cJSON_AddNumberToObject(root, "copy_GBps_rw", copy_gbs);
    printf("device: %s, %d SMs, L2 %.0f MB; d2d copy %.0f GB/s (read+write)\n", prop.name, prop.multiProcessorCount,
           l2 / 1e6, copy_gbs);
    printf("%-8s %5s | %8s %8s | %8s %8s %8s | %s\n", "layer", "M", "fp16 TF", "int8 TOP", "w8a8", "w4chn", "w4g128",
           "TOP/s; M<=16: w4 weight GB/s / copy");

    cJSON *rows = cJSON_AddArrayToObject(root, "results");
    for (const Layer &L : layers) {
        const int N = L.N, K = L.K;
        const size_t nk = (size_t)N * K;
        // rotation counts so that each kernel's weight working set is >= 2 x L2
        auto rot = [&](size_t bytes) { return (int)std::max<size_t>(2, (size_t)std::ceil(2.0 * l2 / bytes)); };
        const int R16 = rot(nk * 2), R8 = rot(nk), R4 = rot(nk / 2);
        std::vector<void *> w16(R16), w8(R8), w4(R4);
        for (int i = 0; i < R16; i++) { QV_CUDA_TRY(cudaMalloc(&w16[i], nk * 2)); QV_TRY(dev_fill(w16[i], nk * 2, 100 + i, 4)); }
        for (int i = 0; i < R8; i++) { QV_CUDA_TRY(cudaMalloc(&w8[i], nk)); QV_TRY(dev_fill(w8[i], nk, 200 + i, 1)); }
        for (int i = 0; i < R4; i++) { QV_CUDA_TRY(cudaMalloc(&w4[i], nk / 2)); QV_TRY(dev_fill(w4[i], nk / 2, 300 + i, 0)); }
        void *x8, *x16, *sa, *rs, *sw, *sz, *s1, *sz1, *y, *c32, *sat;
        QV_CUDA_TRY(cudaMalloc(&x8, (size_t)MMAX * K));
        QV_CUDA_TRY(cudaMalloc(&x16, (size_t)MMAX * K * 2));
        QV_CUDA_TRY(cudaMalloc(&sa, MMAX * 4));
        QV_CUDA_TRY(cudaMalloc(&rs, MMAX * 4));
        QV_CUDA_TRY(cudaMalloc(&sw, N * 2));
        QV_CUDA_TRY(cudaMalloc(&sz, N * 2));
        QV_CUDA_TRY(cudaMalloc(&s1, nk / 128));
        QV_CUDA_TRY(cudaMalloc(&sz1, nk / 128));
        QV_CUDA_TRY(cudaMalloc(&y, (size_t)MMAX * N * 2));
        QV_CUDA_TRY(cudaMalloc(&c32, (size_t)MMAX * N * 4));
        QV_CUDA_TRY(cudaMalloc(&sat, 4));
        QV_TRY(dev_fill(x8, (size_t)MMAX * K, 7, 1));
        QV_TRY(dev_fill(x16, (size_t)MMAX * K * 2, 8, 4));
        QV_TRY(dev_fill(sa, MMAX * 4, 9, 5)); // 0x3c3c3c3c: a small positive float
        QV_TRY(dev_fill(rs, MMAX * 4, 10, 1));
        QV_TRY(dev_fill(sw, N * 2, 11, 4));
        QV_TRY(dev_fill(sz, N * 2, 12, 4));
        QV_TRY(dev_fill(s1, nk / 128, 13, 2));
        QV_TRY(dev_fill(sz1, nk / 128, 14, 3));
        QV_CUDA_TRY(cudaMemset(sat, 0, 4));

        for (int M : Ms) {
            char tag[96];
            snprintf(tag, sizeof tag, "%s M=%d", L.name, M);
            if (!qv_bench_keep(tag, filter)) continue;
            const double ops = 2.0 * M * N * K;
            double t_f16 = NAN, t_i8 = NAN, t_w8 = NAN, t_chn = NAN, t_g = NAN;
            // cuBLAS FP16: y[M,N] = x[M,K] . W[N,K]^T, column-major view: C(NxM) = W^T(op) . X
            const float one = 1.0f, zero = 0.0f;
            if (!w4_only) QV_TRY(time_ms([&](int i) -> qv_status {
                QV_CUBLAS_TRY(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w16[i], CUDA_R_16F, K, x16,
                                           CUDA_R_16F, K, &zero, y, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT));
                return QV_OK;
            }, R16, &t_f16));
            // cuBLASLt INT8 -> INT32
            if (!w4_only) {
                cublasLtMatmulDesc_t op;
                cublasLtMatrixLayout_t la, lb, lc;
                QV_CUBLAS_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
                cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
                QV_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
                QV_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
                QV_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, K, N, K));
                QV_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, K, M, K));
                QV_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, N, M, N));
                cublasLtMatmulPreference_t pref;
                QV_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
                QV_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                   &ws_bytes, sizeof ws_bytes));
                cublasLtMatmulHeuristicResult_t h;
                int nres = 0;
                cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &h, &nres);
                if (hs == CUBLAS_STATUS_SUCCESS && nres > 0) {
                    const int32_t ione = 1, izero = 0;
                    QV_TRY(time_ms([&](int i) -> qv_status {
                        QV_CUBLAS_TRY(cublasLtMatmul(lt, op, &ione, w8[i], la, x8, lb, &izero, c32, lc, c32, lc,
                                                     &h.algo, ws, ws_bytes, 0));
                        return QV_OK;
                    }, R8, &t_i8));
                }
                cublasLtMatmulPreferenceDestroy(pref);
                cublasLtMatrixLayoutDestroy(la);
                cublasLtMatrixLayoutDestroy(lb);
                cublasLtMatrixLayoutDestroy(lc);
                cublasLtMatmulDescDestroy(op);
            }
            if (!w4_only) QV_TRY(time_ms([&](int i) -> qv_status {
                return qv_gpu_w8a8_gemm((const int8_t *)x8, (const float *)sa, (const int8_t *)w8[i],
                                        (const uint16_t *)sw, (uint16_t *)y, (unsigned *)sat, M, N, K, nullptr);
            }, R8, &t_w8));
            QV_TRY(time_ms([&](int i) -> qv_status {
                return qv_gpu_w4a8_chn_gemm((const int8_t *)x8, (const float *)sa, (const int32_t *)rs,
                                            (const uint8_t *)w4[i], (const uint16_t *)sw, (const uint16_t *)sz,
                                            (uint16_t *)y, (unsigned *)sat, M, N, K, nullptr);
            }, R4, &t_chn));
            QV_TRY(time_ms([&](int i) -> qv_status {
                return qv_gpu_w4a8_g128_gemm((const int8_t *)x8, (const float *)sa, (const uint8_t *)w4[i],
                                             (const uint16_t *)sw, (const uint8_t *)s1, (const uint8_t *)sz1,
                                             (uint16_t *)y, (unsigned *)sat, M, N, K, 128, nullptr);
            }, R4, &t_g));
            QV_CUDA_TRY(cudaDeviceSynchronize());
            auto top = [&](double ms) { return ops / (ms * 1e-3) / 1e12; };
            auto gbs = [&](double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; };
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "layer", L.name);
            cJSON_AddNumberToObject(r, "M", M);
            cJSON_AddNumberToObject(r, "N", N);
            cJSON_AddNumberToObject(r, "K", K);
            const char *names[5] = {"cublas_fp16", "cublaslt_int8", "qvet_w8a8", "qvet_w4a8_chn", "qvet_w4a8_g128"};
            const double ts[5] = {t_f16, t_i8, t_w8, t_chn, t_g};
            const double wb[5] = {nk * 2.0, (double)nk, (double)nk, nk / 2.0, nk / 2.0 + nk / 64.0};
            for (int i = 0; i < 5; i++) {
                cJSON *o = cJSON_AddObjectToObject(r, names[i]);
                if (std::isnan(ts[i])) { cJSON_AddNullToObject(o, "ms"); continue; }
                cJSON_AddNumberToObject(o, "ms", ts[i]);
                cJSON_AddNumberToObject(o, "TOPs", top(ts[i]));
                cJSON_AddNumberToObject(o, "weight_GBps", gbs(wb[i], ts[i]));
                cJSON_AddNumberToObject(o, "weight_GBps_over_copy", gbs(wb[i], ts[i]) / copy_gbs);
            }
            cJSON_AddItemToArray(rows, r);
            char extra[96] = "";
            if (M <= 16)
                snprintf(extra, sizeof extra, "chn %.0f GB/s (%.0f%%), g128 %.0f%%", gbs(wb[3], t_chn),
                         100 * gbs(wb[3], t_chn) / copy_gbs, 100 * gbs(wb[4], t_g) / copy_gbs);
            printf("%-8s %5d | %8.1f %8.1f | %8.1f %8.1f %8.1f | %s\n", L.name, M, top(t_f16), top(t_i8), top(t_w8),
                   top(t_chn), top(t_g), extra);
            fflush(stdout);
        }
        for (void *p : w16) cudaFree(p);
        for (void *p : w8) cudaFree(p);
        for (void *p : w4) cudaFree(p);
        for (void *p : {x8, x16, sa, rs, sw, sz, s1, sz1, y, c32, sat}) cudaFree(p);
    }
    cudaFree(ws);
    cublasLtDestroy(lt);
    cublasDestroy(cb);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = json_path ? fopen(json_path, "w") : nullptr;
    if (!f) {
        free(txt);
        return qv_fail(QV_ERR_IO, "bench: cannot write %s", json_path ? json_path : "(null)");
    }
    fputs(txt, f);
    fclose(f);
    free(txt);
    return QV_OK;
}
