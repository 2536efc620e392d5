// Host launch code of qvet's GEMM kernels (the device code is in gemm_mma_core.cuh and the
// three policy headers). Checks the shape contract (gemm_contract.h) and pointers at entry,
// picks a tile configuration by M, launches, and turns CUDA errors into qv_status.
//
// Tile configurations (named constants). Two families, chosen by shape from same-run H100
// measurements (docs/gpu-gemm.md):
//  "wide" (large layers: N*K >= 32 Mi, i.e. gate_up 28672x4096 and down 4096x14336), with
//  split-K across blocks when the output tiles alone cannot fill the SMs (gridDim.z;
//  gemm_mma_core.cuh: exact INT32 partials in a per-stream workspace, the last block of each
//  tile sums them and runs the epilogue):
//   CfgDecode  (M <= 16):   BM 16,  BN 64,  BK 256, 1x1 warps x 4-way K split, 4 stages:
//              64 channels per block halve the L2 re-reads of x of BN 32; split-K gives down
//              (N 4096, K 14336) 4 blocks per SM of >= 24 KB of weights in flight each.
//   CfgSmall   (M <= 64):   BM 64,  BN 128, BK 128, 2x2 warps x 2-way K split, 4 stages: BN 128
//              cuts the L2 re-reads of x to the size of the weights (BN 32 read x 4x that).
//   CfgMedium  (M <= 256):  BM 128, BN 128, BK 64,  2x4 warps (warp tile 64x32), 4 stages,
//              8 warps, registers capped at 128 so 2 blocks (16 warps) fit per SM.
//  "narrow" (qkv, o and smaller), issue 7's first tiles with split-K limited to K slices of at
//  least 2048 (measured: the wide tiles with short slices lost to these there; these with the
//  limited split beat them unsplit by 1.1-1.35x at M = 1-256):
//   LegDecode (M <= 16) 16x32x256 1x1x4 warps; LegSmall (M <= 64) 64x32x128 2x1x2 warps;
//   LegMedium (M <= 256) 128x64x64 2x2 warps.
//  M > 256, every layer: CfgMedium (8 warps, 64x32 warp tiles; measured >= the 4-warp
//  128x128 CfgLarge of the first version at M = 1024 and 8192 within noise).
//  M <= 16 (qvg::kDecodeMaxM), every layer: the decode kernel (gemm_decode.cuh): warps stream
//  their weights from global memory into registers, x staged per block, K sliced across blocks
//  so that the grid fills the resident block slots in one wave (launch_decode below).
// QV_GEMM_VARIANT (read at every launch; a benchmark and test knob, not part of the API):
//  nodecode   = the shape rule without the decode kernel (the tiled kernels at M <= 16: the
//               default before it, for same-run comparisons);
//  decodesplit= the shape rule, decode kernel sliced to one batch per block (tests: every small
//               shape goes through its split-K fix-up and through K warps without work);
//  legacy     = issue 7's first version everywhere (no split, CfgLarge for M > 256);
//  wide       = the wide family for every shape (so small test shapes exercise split-K);
//  narrowsplit= the narrow family for every shape, split with no slice limit (tests);
//  nosplit    = the shape rule without split-K on narrow layers (the first call's default);
//  decode64   = the shape rule with the decode kernel up to M = 64 (MT 32 / 64 for M = 17..64:
//               several m16 tiles per weight batch; gemm_decode.cuh), every format;
//  wgmma      = the shape rule with the sm_90a warpgroup-MMA kernel (gpu/sm90a/gemm_wgmma.cu) for
//               the W4 formats at M >= 64 where it applies (sm_90 device, image loads, a shared-
//               memory layout passed its self-test), else exactly the shape rule. The default
//               uses it on the shapes where it was measured faster (wgmma_by_default below).
//  wgmma_ws   = the same with the warp-specialized sm_90a kernel (gpu/sm90a/gemm_wgmma_ws.cu:
//               a producer warpgroup dequantizes into a shared-memory ring, two consumer
//               warpgroups issue wgmma with both operands in shared memory) where it applies (as
//               wgmma, and the self-test chose the 128-byte-swizzle layout it hard-codes), else
//               exactly the shape rule (never the register-A wgmma kernel). Opt-in only: never
//               run on a device yet (docs/gpu-gemm.md).
// wide, narrowsplit, nosplit and legacy keep the tiled kernels at M <= 16 too (their split-K
// paths stay tested).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#ifdef QV_MUTANTS
#include <vector>
#endif

#include "qv_cuda_check.h"
#include "gemm_w8a8.cuh"
#include "gemm_w4a8_chn.cuh"
#include "gemm_w4a8_g128.cuh"
#include "gemm_decode.cuh"
#ifdef QV_HAVE_WGMMA
#include "gemm_wgmma.h"
#endif
#include <type_traits>

extern "C" {
#include "qvet/gpu_gemm.h"
#include "gemm_contract.h"
#ifdef QV_MUTANTS
#include "qvet/qoq.h"
#endif
}

namespace {

using CfgDecode = qvg::Cfg<16, 64, 256, 1, 1, 4, 4>;
using CfgSmall = qvg::Cfg<64, 128, 128, 2, 2, 2, 4>;
using CfgMedium = qvg::Cfg<128, 128, 64, 2, 4, 1, 4>;
using CfgLarge = qvg::Cfg<128, 128, 64, 2, 2, 1, 4>;
using LegDecode = qvg::Cfg<16, 32, 256, 1, 1, 4, 4>;
using LegSmall = qvg::Cfg<64, 32, 128, 2, 1, 2, 4>;
using LegMedium = qvg::Cfg<128, 64, 64, 2, 2, 1, 4>;

int sm_count();

// The default rule's use of the sm_90a wgmma path (W4 formats, M >= kWgMinM), from the H200 run of
// stop 17 (docs/gpu-gemm.md: every Llama-3-8B layer at M = 64..8192, both kernels in one call).
// wgmma (one 128 x 256 tile per block, one block per SM) won wherever its unsplit tiles number at
// least 0.8 x the SMs (o M=1024: 128 tiles, 1.51x / 1.97x; gate_up M=64: 112 tiles, g128 1.49x)
// and lost below that even with split-K (down M=256: 32 tiles, 0.86x; qkv M=256: 48, 0.59x). The
// one exception is per-channel at M = 64 (gate_up: 0.96x): half of each 128-row tile is padding,
// and the mma.sync per-channel kernel has no level-2 dequantization to lose, so per-channel also
// needs M >= one full tile of rows.
bool wgmma_by_default(bool g128, int M, int N)
{
    const long tiles = (long)((N + qvg::kWgBC - 1) / qvg::kWgBC) * ((M + qvg::kWgBT - 1) / qvg::kWgBT);
    return M >= qvg::kWgMinM && 5 * tiles >= 4L * sm_count() && (g128 || M >= qvg::kWgBT);
}

enum Variant {
    V_DEFAULT = 0, V_LEGACY, V_WIDE, V_NARROWSPLIT, V_NOSPLIT, V_NODECODE, V_DECODESPLIT, V_WGMMA, V_DECODE64, V_WGMMA_WS
};
Variant variant()
{
    const char *e = getenv("QV_GEMM_VARIANT");
    if (!e) return V_DEFAULT;
    static const struct {
        const char *name;
        Variant v;
    } names[] = {{"legacy", V_LEGACY},     {"wide", V_WIDE},         {"narrowsplit", V_NARROWSPLIT},
                 {"nosplit", V_NOSPLIT},   {"nodecode", V_NODECODE}, {"decodesplit", V_DECODESPLIT},
                 {"wgmma", V_WGMMA},       {"decode64", V_DECODE64}, {"wgmma_ws", V_WGMMA_WS}};
    for (const auto &n : names)
        if (!strcmp(e, n.name)) return n.v;
    return V_DEFAULT;
}

// Split-K workspace, one per (device, stream): launches on one stream run in order, so they can
// share it; different streams never do. Grows on demand (after synchronizing that stream).
// Not usable inside CUDA graph capture on first use (it allocates).
struct Workspace {
    int dev;
    cudaStream_t st;
    int32_t *ws;
    size_t ws_bytes;
    unsigned int *cnt;
    size_t cnt_n;
};
std::mutex g_ws_mu;
Workspace g_ws[32];
int g_ws_n = 0;

qv_status workspace_get(cudaStream_t st, size_t ws_bytes, size_t cnt_n, int32_t **ws, unsigned int **cnt)
{
    std::lock_guard<std::mutex> lock(g_ws_mu);
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    Workspace *w = nullptr;
    for (int i = 0; i < g_ws_n; i++)
        if (g_ws[i].dev == dev && g_ws[i].st == st) w = &g_ws[i];
    if (!w) {
        if (g_ws_n == (int)(sizeof g_ws / sizeof *g_ws))
            return qv_fail(QV_ERR_UNSUPPORTED, "gemm: split-K workspaces for more than %d streams", g_ws_n);
        w = &g_ws[g_ws_n++];
        *w = Workspace{dev, st, nullptr, 0, nullptr, 0};
    }
    if (w->ws_bytes < ws_bytes || w->cnt_n < cnt_n) {
        QV_CUDA_TRY(cudaStreamSynchronize(st)); // the old buffers may be in use by queued launches
        if (w->ws_bytes < ws_bytes) {
            size_t nb = std::max(ws_bytes, (size_t)8 << 20);
            cudaFree(w->ws);
            w->ws = nullptr;
            w->ws_bytes = 0;
            QV_CUDA_TRY(cudaMalloc(&w->ws, nb));
            w->ws_bytes = nb;
        }
        if (w->cnt_n < cnt_n) {
            size_t nc = std::max(cnt_n, (size_t)16384);
            cudaFree(w->cnt);
            w->cnt = nullptr;
            w->cnt_n = 0;
            QV_CUDA_TRY(cudaMalloc(&w->cnt, nc * sizeof(unsigned int)));
            QV_CUDA_TRY(cudaMemsetAsync(w->cnt, 0, nc * sizeof(unsigned int), st));
            w->cnt_n = nc;
        }
    }
    *ws = w->ws;
    *cnt = w->cnt;
    return QV_OK;
}

int sm_count()
{
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            n <= 0)
            n = 132;
    }
    return n;
}

constexpr size_t kMaxWsBytes = (size_t)64 << 20;
constexpr int kMaxSplit = 16;

// allow_split: split K across blocks when the tiles cannot fill the resident block slots;
// min_slice_k (elements, 0 = none): no K slice shorter than this.
template <class C, class P, bool ACC>
qv_status launch_cfg(qvg::Params p, cudaStream_t st, bool allow_split, int min_slice_k = 0)
{
    constexpr int smem = qvg::Smem<C, P>::BYTES;
    auto kern = qvg::gemm_kernel<C, P, ACC>;
    static int blocks_per_sm = 0; // per instantiation
    if (!blocks_per_sm) {
        QV_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        int b = 0;
        QV_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kern, C::THREADS, smem));
        blocks_per_sm = b > 0 ? b : 1;
    }
    dim3 grid((p.N + C::BN - 1) / C::BN, (p.M + C::BM - 1) / C::BM, 1);
    if (grid.y > 65535u) return qv_fail(QV_ERR_USAGE, "gemm: M=%d needs more than 65535 row tiles", p.M);
    const int KT = (p.K + C::BK - 1) / C::BK;
    p.ktps = KT;
    const long tiles = (long)grid.x * grid.y;
    const long slots = (long)blocks_per_sm * sm_count();
    if (allow_split && tiles < slots && KT > 1) {
        // as many K slices as make the grid fill the resident block slots (rounded), each slice
        // at least one stage; bounded by kMaxSplit and the workspace cap
        long s = (slots + tiles / 2) / tiles;
        s = std::min<long>(std::min<long>(s, kMaxSplit), KT);
        if (min_slice_k > 0) s = std::min<long>(s, std::max<long>(1, (long)KT * C::BK / min_slice_k));
        while (s > 1 && (size_t)s * p.M * p.N * 4 > kMaxWsBytes) s--;
        if (s > 1) {
            p.ktps = (KT + (int)s - 1) / (int)s;
            grid.z = (KT + p.ktps - 1) / p.ktps; // every slice non-empty
        }
    }
    if (grid.z > 1) QV_TRY(workspace_get(st, (size_t)grid.z * p.M * p.N * 4, (size_t)tiles, &p.ws, &p.cnt));
    kern<<<grid, C::THREADS, smem, st>>>(p);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

#ifdef QV_HAVE_WGMMA
// Split-K for the wgmma kernel (one block of 8 warps per SM): when its block tiles cannot fill
// the SMs (M <= 256 on the 4096-channel layers: 16-32 tiles for 132 SMs), K is sliced as for the
// tiled kernels (launch_cfg): about one wave of blocks, each slice >= 2 stages, <= kMaxSplit
// slices, workspace <= kMaxWsBytes. QV_WGMMA_SPLIT=0 turns it off (tests: both paths).
qv_status wgmma_split(qvg::Params &p, cudaStream_t st)
{
    const char *e = getenv("QV_WGMMA_SPLIT");
    const long tiles = (long)((p.N + qvg::kWgBC - 1) / qvg::kWgBC) * ((p.M + qvg::kWgBT - 1) / qvg::kWgBT);
    const int KT = (p.K + qvg::kWgBK - 1) / qvg::kWgBK;
    const long slots = sm_count();
    p.ktps = KT;
    if ((e && *e == '0') || tiles >= slots || KT < 4) return QV_OK;
    long s = (slots + tiles / 2) / tiles;
    s = std::min<long>(std::min<long>(s, kMaxSplit), KT / 2);
    while (s > 1 && (size_t)s * p.M * p.N * 4 > kMaxWsBytes) s--;
    if (s <= 1) return QV_OK;
    p.ktps = (KT + (int)s - 1) / (int)s;
    s = (KT + p.ktps - 1) / p.ktps; // every slice non-empty
    if (s > 1) QV_TRY(workspace_get(st, (size_t)s * p.M * p.N * 4, (size_t)tiles, &p.ws, &p.cnt));
    return QV_OK;
}
#endif

std::atomic<unsigned long> g_dec_launches{0}, g_dec_split{0}; // qv_gpu_gemm_decode_stats

// The decode kernel (M <= 16). K is cut into batches (Dec<P>::KG: 128 for W4, 64 for W8A8) and
// the batches into gridDim.z slices of p.ktps: as many slices as fill the resident block slots
// in one wave (a second, partial wave would be a tail of few blocks), at least about one batch
// per K warp, and enough that a slice's staged x fits kDecStageMax. max_split: one batch per
// slice (tests). *done = false (nothing launched) when the workspace would exceed its cap.
template <class P, int MT, bool ACC>
qv_status launch_decode(qvg::Params p, cudaStream_t st, bool max_split, bool *done)
{
    using S = qvg::DecSmem<P, MT>;
    auto kern = qvg::gemm_decode_kernel<P, MT, ACC>;
    constexpr int smem_max = S::bytes(S::MAX_BATCHES);
    static int blocks_per_sm = 0; // per instantiation
    if (!blocks_per_sm) {
        QV_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_max));
        int b = 0;
        QV_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kern, qvg::kDecThreads, smem_max));
        blocks_per_sm = b > 0 ? b : 1;
    }
    *done = false;
    const long cols = (p.N + qvg::kDecBN - 1) / qvg::kDecBN;
    const long kgall = (p.K + qvg::Dec<P>::KG - 1) / qvg::Dec<P>::KG;
    long s = kgall;
    if (!max_split) {
        s = std::max<long>(1, (long)blocks_per_sm * sm_count() / cols);
        s = std::min<long>(s, (kgall + qvg::kDecWK - 1) / qvg::kDecWK);
    }
    s = std::max<long>(s, (kgall + S::MAX_BATCHES - 1) / S::MAX_BATCHES);
    p.ktps = (int)((kgall + s - 1) / s);
    s = (kgall + p.ktps - 1) / p.ktps; // every slice non-empty
    if (s > 65535 || (size_t)s * p.M * p.N * 4 > kMaxWsBytes) return QV_OK;
    dim3 grid((unsigned)cols, 1, (unsigned)s);
    if (s > 1) QV_TRY(workspace_get(st, (size_t)s * p.M * p.N * 4, (size_t)cols, &p.ws, &p.cnt));
    kern<<<grid, qvg::kDecThreads, S::bytes(p.ktps), st>>>(p);
    QV_CUDA_TRY(cudaGetLastError());
    g_dec_launches++;
    if (s > 1) g_dec_split++;
    *done = true;
    return QV_OK;
}

template <class P, bool ACC> qv_status launch(const qvg::Params &p, void *stream)
{
    QV_DMUT_SYNC(); // QV_MUTANTS builds: the planted-bug selection to this file's kernels
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    const Variant v = variant();
#ifdef QV_HAVE_WGMMA
    if constexpr (!std::is_same<P, qvg::PolicyW8A8>::value) {
        constexpr bool g128 = std::is_same<P, qvg::PolicyW4G128>::value;
        if ((v == V_WGMMA && p.M >= qvg::kWgMinM) || (v == V_DEFAULT && wgmma_by_default(g128, p.M, p.N))) {
            const qvg::WgFormat fmt = g128 ? qvg::kWgG128 : qvg::kWgChn;
            bool ok = false, done = false;
            QV_TRY(qvg::wgmma_ready(&ok)); // else (not applicable here) the rule below
            if (ok) {
                qvg::Params q = p;
                QV_TRY(wgmma_split(q, st));
                QV_TRY(qvg::wgmma_gemm(q, fmt, ACC, st, &done));
                if (done) return QV_OK;
            }
        }
        if (v == V_WGMMA_WS && p.M >= qvg::kWgMinM) { // opt-in only: the default rule never comes here
            const qvg::WgFormat fmt = g128 ? qvg::kWgG128 : qvg::kWgChn;
            bool ok = false, done = false;
            QV_TRY(qvg::wgmma_ws_ready(&ok)); // else (not applicable here) the rule below
            if (ok) {
                qvg::Params q = p;
                QV_TRY(wgmma_split(q, st)); // one block per SM, same tile and stage: same split rule
                QV_TRY(qvg::wgmma_ws_gemm(q, fmt, ACC, st, &done));
                if (done) return QV_OK;
            }
        }
    }
#endif
    if ((v == V_DEFAULT || v == V_DECODESPLIT || v == V_WGMMA || v == V_WGMMA_WS) && p.M <= qvg::kDecodeMaxM) {
        bool done = false;
        if (p.M <= 8) QV_TRY((launch_decode<P, 8, ACC>(p, st, v == V_DECODESPLIT, &done)));
        else QV_TRY((launch_decode<P, 16, ACC>(p, st, v == V_DECODESPLIT, &done)));
        if (done) return QV_OK; // else (workspace cap) the tiled kernels below
    }
    if (v == V_DECODE64 && p.M <= qvg::kDecodeWideMaxM) {
        bool done = false;
        if (p.M <= 8) QV_TRY((launch_decode<P, 8, ACC>(p, st, false, &done)));
        else if (p.M <= 16) QV_TRY((launch_decode<P, 16, ACC>(p, st, false, &done)));
        else if (p.M <= 32) QV_TRY((launch_decode<P, 32, ACC>(p, st, false, &done)));
        else QV_TRY((launch_decode<P, 64, ACC>(p, st, false, &done)));
        if (done) return QV_OK;
    }
    if (v == V_LEGACY) {
        if (p.M <= 16) return launch_cfg<LegDecode, P, ACC>(p, st, false);
        if (p.M <= 64) return launch_cfg<LegSmall, P, ACC>(p, st, false);
        if (p.M <= 256) return launch_cfg<LegMedium, P, ACC>(p, st, false);
        return launch_cfg<CfgLarge, P, ACC>(p, st, false);
    }
    if (p.M > 256) return launch_cfg<CfgMedium, P, ACC>(p, st, false);
    const bool wide = v == V_WIDE || (v != V_NARROWSPLIT && (long)p.N * p.K >= (32L << 20));
    if (wide) {
        if (p.M <= 16) return launch_cfg<CfgDecode, P, ACC>(p, st, true);
        if (p.M <= 64) return launch_cfg<CfgSmall, P, ACC>(p, st, true);
        return launch_cfg<CfgMedium, P, ACC>(p, st, true);
    }
    const bool sp = v != V_NOSPLIT;
    const int min_slice = v == V_NARROWSPLIT ? 0 : 2048;
    if (p.M <= 16) return launch_cfg<LegDecode, P, ACC>(p, st, sp, min_slice);
    if (p.M <= 64) return launch_cfg<LegSmall, P, ACC>(p, st, sp, min_slice);
    return launch_cfg<LegMedium, P, ACC>(p, st, sp, min_slice);
}

qvg::Params make_params(const int8_t *x, const void *w, int M, int N, int K)
{
    qvg::Params p{};
    p.x = x;
    p.w = static_cast<const uint8_t *>(w);
    p.M = M;
    p.N = N;
    p.K = K;
    return p;
}

#define QV_PTR(kind, p, align) QV_TRY(qv_gemm_check_ptr(kind, p, #p, align))

#ifdef QV_MUTANTS
// The planted bug reorder_twice (QV_MUTANTS builds only): the kernel is handed weights packed
// twice (the packed bytes, read as row-major codes, packed again), as the CPU emulation's mutant:
// a layout bug of the weight path, done on a host copy, never on the caller's buffer.
struct MutW4 {
    uint8_t *d = nullptr;
    ~MutW4()
    {
        if (d) cudaDeviceSynchronize(), cudaFree(d); // the launch that reads it is asynchronous
    }
};
qv_status mut_reorder_twice(const uint8_t *&w4, int N, int K, MutW4 &tmp)
{
    if (!QV_MUT(reorder_twice)) return QV_OK;
    const size_t nk = (size_t)N * K, nb = nk / 2;
    std::vector<uint8_t> pk(nb), u(nk), pk2(nb + 1);
    QV_CUDA_TRY(cudaMemcpy(pk.data(), w4, nb, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < nk; i++) u[i] = (uint8_t)((pk[i / 2] >> (4 * (i % 2))) & 15u);
    QV_TRY(qv_w4_pack(u.data(), N, K, pk2.data()));
    QV_CUDA_TRY(cudaMalloc(&tmp.d, nb));
    QV_CUDA_TRY(cudaMemcpy(tmp.d, pk2.data(), nb, cudaMemcpyHostToDevice));
    w4 = tmp.d;
    return QV_OK;
}
#define QV_MUT_W4(w4, N, K) \
    MutW4 mut_w4_;          \
    QV_TRY(mut_reorder_twice(w4, N, K, mut_w4_))
#else
#define QV_MUT_W4(w4, N, K) ((void)0)
#endif

} // namespace

extern "C" qv_status qv_gpu_w8a8_gemm(const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw,
                                      uint16_t *y, unsigned int *d_sat, int M, int N, int K, void *stream)
{
    const int k = QV_GEMM_W8A8;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w8, 16); QV_PTR(k, sa, 4); QV_PTR(k, sw, 2); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    qvg::Params p = make_params(x, w8, M, N, K);
    p.sa = sa;
    p.sw = reinterpret_cast<const __half *>(sw);
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW8A8, false>(p, stream);
}

extern "C" qv_status qv_gpu_w8a8_gemm_acc(const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K,
                                          void *stream)
{
    const int k = QV_GEMM_W8A8;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w8, 16); QV_PTR(k, acc, 8);
    qvg::Params p = make_params(x, w8, M, N, K);
    p.acc = acc;
    return launch<qvg::PolicyW8A8, true>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_chn_gemm(const int8_t *x, const float *sa, const int32_t *rowsum,
                                          const uint8_t *w4, const uint16_t *sw, const uint16_t *sz, uint16_t *y,
                                          unsigned int *d_sat, int M, int N, int K, void *stream)
{
    const int k = QV_GEMM_W4A8_CHN;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, sa, 4); QV_PTR(k, rowsum, 4); QV_PTR(k, sw, 2);
    QV_PTR(k, sz, 2); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    QV_MUT_W4(w4, N, K);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.sa = sa;
    p.rowsum = rowsum;
    p.sw = reinterpret_cast<const __half *>(sw);
    p.sz = reinterpret_cast<const __half *>(sz);
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW4Chn, false>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_chn_gemm_acc(const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N,
                                              int K, void *stream)
{
    const int k = QV_GEMM_W4A8_CHN;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, acc, 8);
    QV_MUT_W4(w4, N, K);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.acc = acc;
    return launch<qvg::PolicyW4Chn, true>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_g128_gemm(const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                                           const uint8_t *s1, const uint8_t *sz1, uint16_t *y, unsigned int *d_sat,
                                           int M, int N, int K, int group, void *stream)
{
    const int k = QV_GEMM_W4A8_G128;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, group));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, sa, 4); QV_PTR(k, s0, 2); QV_PTR(k, s1, 1);
    QV_PTR(k, sz1, 1); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    QV_MUT_W4(w4, N, K);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.sa = sa;
    p.sw = reinterpret_cast<const __half *>(s0);
    p.s1 = s1;
    p.sz1 = sz1;
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW4G128, false>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_g128_gemm_acc(const int8_t *x, const uint8_t *w4, const uint8_t *s1,
                                               const uint8_t *sz1, int32_t *acc, int M, int N, int K, int group,
                                               void *stream)
{
    const int k = QV_GEMM_W4A8_G128;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, group));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, s1, 1); QV_PTR(k, sz1, 1); QV_PTR(k, acc, 8);
    QV_MUT_W4(w4, N, K);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.s1 = s1;
    p.sz1 = sz1;
    p.acc = acc;
    return launch<qvg::PolicyW4G128, true>(p, stream);
}

extern "C" void qv_gpu_gemm_decode_stats(unsigned long *launches, unsigned long *split)
{
    if (launches) *launches = g_dec_launches.load();
    if (split) *split = g_dec_split.load();
}

extern "C" void qv_gpu_gemm_wgmma_stats(unsigned long *launches)
{
#ifdef QV_HAVE_WGMMA
    if (launches) *launches = qvg::wgmma_launches();
#else
    if (launches) *launches = 0;
#endif
}

extern "C" void qv_gpu_gemm_wgmma_ws_stats(unsigned long *launches)
{
#ifdef QV_HAVE_WGMMA
    if (launches) *launches = qvg::wgmma_ws_launches();
#else
    if (launches) *launches = 0;
#endif
}

extern "C" int qv_gpu_gemm_wgmma_ws_usable(void)
{
#ifdef QV_HAVE_WGMMA
    bool ok = false;
    if (qvg::wgmma_ws_ready(&ok) != QV_OK) return (void)qv_clear_error(), 0;
    return ok;
#else
    return 0;
#endif
}

extern "C" int qv_gpu_gemm_default_wgmma(int g128, int M, int N)
{
#ifdef QV_HAVE_WGMMA
    bool ok = false;
    if (!wgmma_by_default(g128 != 0, M, N) || qvg::wgmma_ready(&ok) != QV_OK) return (void)qv_clear_error(), 0;
    return ok;
#else
    (void)g128, (void)M, (void)N;
    return 0;
#endif
}

extern "C" qv_status qv_gpu_wgmma_probe(char *report, size_t n, int *chosen)
{
    if (!report || !chosen) return qv_fail(QV_ERR_USAGE, "qv_gpu_wgmma_probe: NULL argument");
#ifdef QV_HAVE_WGMMA
    return qvg::wgmma_probe_report(report, n, chosen);
#else
    *chosen = -2;
    snprintf(report, n, "wgmma path not built (the CUDA compiler has no sm_90a)\n");
    return QV_OK;
#endif
}
