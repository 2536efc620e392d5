// The A8 producers' kernels (issue 8 bandwidth goal), included by fused_quant.cu only (its entry
// points qv_gpu_quant_a8 / rmsnorm_a8 / silu_mul_a8 launch them through a8rows::launch).
// Design: a row of K values is cut into 8-element chunks (C = ceil(K/8)); a group of T threads
// owns one row and thread t holds chunks t, t + T, ..., t + (NV-1)T in registers (NV a template
// constant, so the row never goes through shared memory and every load of a thread is issued
// before the first use). Chunk loads are 16-byte vectors (FP32 row: two, FP16 row: one, SiLU:
// one gate + one up) and the codes leave as one 8-byte store per chunk, when K % 8 == 0 and the
// pointers are aligned; otherwise the same kernel reads and writes element by element (the
// "scalar" instantiation; same arithmetic). Two or three group reductions (RMSNorm's FP64 sum of
// squares, amax, the INT32 row sum): warp shuffles, then, for groups of several warps, one
// shared-memory slot per warp read back in a fixed order. Groups narrower than 256 threads are
// packed several rows per block.
// T and NV depend on K only, never on M: RMSNorm's FP64 sum is order-dependent, and gpu-qoq's
// "exact" consistency test (test_gpu_engines) needs a row's codes to be the same whatever batch
// it is in (prefill of n rows vs decode of 1). NV = 1/2/4/8 for C <= 256/2048/4096/larger, T the
// chunks per thread rounded up to a warp (a power of two below 32): K = 4096 -> 256 threads x 2
// chunks, K = 14336 -> 896 x 2. A row is thus spread over up to 1024 threads of one SM, so small
// M pays one load round trip and a few reductions, not a 256-thread loop over the row.
// Large M (NV <= 2): the grid is capped at the resident blocks and each block loops over its rows,
// loading row i+1 while it reduces and quantizes row i (kernel comment below); M only decides
// which block handles a row, never how a row is computed.
// Numerics: exactly those of the kernels this replaced (NUMERICS.md A8, --fmad=false, IEEE ops in
// the reference's order; header comment of fused_quant.cu).

#include <atomic>

namespace {
namespace a8rows {

constexpr int kChunk = 8;
constexpr int kMaxBlock = 1024;

// Sum / max over the T threads of a row group, every thread of the group gets the result. All
// threads of the block must call it (dead rows too). Cross-warp partials are combined in warp
// order, so the FP64 sum has a fixed order for a given T.
template <typename V, typename Op>
__device__ __forceinline__ V group_reduce(V v, int T, V *red, Op op)
{
    for (int o = (T < 32 ? T : 32) / 2; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (T <= 32) return v;
    int w = threadIdx.x / 32, nw = T / 32, g0 = w - w % nw;
    if (threadIdx.x % 32 == 0) red[w] = v;
    __syncthreads();
    v = red[g0];
    for (int i = 1; i < nw; i++) v = op(v, red[g0 + i]);
    return v;
}

struct MaxF { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct AddI { __device__ int operator()(int a, int b) const { return a + b; } };
struct AddD { __device__ double operator()(double a, double b) const { return a + b; } };

__device__ __forceinline__ void h8_to_f(uint4 r, float *v)
{
    const __half2 *h = reinterpret_cast<const __half2 *>(&r);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(h[i]);
        v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
}

// One chunk's raw input as loaded (two 16-byte registers' worth; an FP16 row uses a only).
// Zero bits decode to 0.0f everywhere, and every source maps all-zero input to v = 0, so padding,
// chunks past the row and dead rows are simply zero raws.
struct Raw {
    uint4 a, b;
};

__device__ __forceinline__ uint4 ld16(const void *p) { return __ldg(reinterpret_cast<const uint4 *>(p)); }

// The element path: the first n items at p (fewer than a vector's at the row's end; n <= 0:
// none), zero-padded and packed as a 16-byte vector load would have them.
template <typename U>
__device__ __forceinline__ uint4 ld_items(const U *p, int n)
{
    constexpr int per = 4 / sizeof(U); // items per 32-bit word
    uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < 4 * per; i++)
        if (i < n) w[i / per] |= (uint32_t)p[i] << (32 / per * (i % per));
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// Standalone A8 (o_proj input): v = x.
struct SrcF16 {
    const __half *x;
    template <bool VEC> __device__ void fetch(size_t m, int c, int K, Raw &r) const
    {
        const __half *p = x + m * K + (size_t)c * kChunk;
        if (VEC) r.a = ld16(p);
        else r.a = ld_items(reinterpret_cast<const uint16_t *>(p), K - c * kChunk);
    }
    __device__ void expand(const Raw &r, float *v) const { h8_to_f(r.a, v); }
    template <int NV> __device__ void post(float (&)[NV][kChunk], int, int, int, bool, int, double *) const {}
};

// v = g / (1 + expf(-g)) * u: the reference's expression and order (qv_ref_silu_mul_rows), the
// same as the _f16 kernel's. Not cheapened on purpose: expf and the IEEE division are what the
// tie rule's derivation (docs/bounds.md) assumes. g = u = 0 (padding) gives 0.
__device__ __forceinline__ float silu_mul_a8(float g, float u)
{
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

struct SrcSilu {
    const __half *gu;
    template <bool VEC> __device__ void fetch(size_t m, int c, int I, Raw &r) const
    {
        const __half *g = gu + m * 2 * I + (size_t)c * kChunk, *u = g + I;
        if (VEC) {
            r.a = ld16(g), r.b = ld16(u);
        } else {
            r.a = ld_items(reinterpret_cast<const uint16_t *>(g), I - c * kChunk);
            r.b = ld_items(reinterpret_cast<const uint16_t *>(u), I - c * kChunk);
        }
    }
    __device__ void expand(const Raw &r, float *v) const
    {
        float fg[kChunk], fu[kChunk];
        h8_to_f(r.a, fg);
        h8_to_f(r.b, fu);
#pragma unroll
        for (int e = 0; e < kChunk; e++) v[e] = silu_mul_a8(fg[e], fu[e]);
    }
    template <int NV> __device__ void post(float (&)[NV][kChunk], int, int, int, bool, int, double *) const {}
};

// RMSNorm: the raw chunk is x; post takes the FP64 sum of squares over the group, r = 1/sqrt(ms +
// eps), then v = w * (x * r) with w read after the reduction (not held beside x: registers; w is
// shared by every row, so it is an L1/L2 hit).
struct SrcRms {
    const float *x, *w;
    float eps;
    template <bool VEC> __device__ void fetch(size_t m, int c, int K, Raw &r) const
    {
        const float *p = x + m * K + (size_t)c * kChunk;
        if (VEC) {
            r.a = ld16(p), r.b = ld16(p + 4);
        } else {
            const uint32_t *b = reinterpret_cast<const uint32_t *>(p);
            r.a = ld_items(b, K - c * kChunk), r.b = ld_items(b + 4, K - c * kChunk - 4);
        }
    }
    __device__ void expand(const Raw &r, float *v) const
    {
        const uint32_t *b = reinterpret_cast<const uint32_t *>(&r);
#pragma unroll
        for (int e = 0; e < kChunk; e++) v[e] = __uint_as_float(b[e]);
    }
    template <int NV>
    __device__ void post(float (&v)[NV][kChunk], int t, int T, int C, bool live, int K, double *redd) const
    {
        double ss = 0.0; // padding and dead rows hold 0: adds nothing
#pragma unroll
        for (int j = 0; j < NV; j++)
#pragma unroll
            for (int e = 0; e < kChunk; e++) ss += (double)v[j][e] * (double)v[j][e];
        ss = group_reduce(ss, T, redd, AddD());
        float ms = (float)(ss / K);
        float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = t + j * T;
            if (!live || c >= C) continue;
            const float *p = w + (size_t)c * kChunk;
            Raw wr;
            if (c * kChunk + kChunk <= K && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
                wr.a = ld16(p), wr.b = ld16(p + 4);
            } else {
                const uint32_t *b = reinterpret_cast<const uint32_t *>(p);
                wr.a = ld_items(b, K - c * kChunk), wr.b = ld_items(b + 4, K - c * kChunk - 4);
            }
            float wc[kChunk];
            expand(wr, wc);
#pragma unroll
            for (int e = 0; e < kChunk; e++) v[j][e] = __fmul_rn(wc[e], __fmul_rn(v[j][e], r));
        }
    }
};

template <int NV, bool VEC, typename Src>
__device__ __forceinline__ void fetch_row(const Src &src, Raw (&raw)[NV], size_t m, int M, int K, int t, int T, int C)
{
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = t + j * T;
        if (m < (size_t)M && c < C) src.template fetch<VEC>(m, c, K, raw[j]);
        else raw[j].a = raw[j].b = make_uint4(0, 0, 0, 0);
    }
}

// Rows base + g, base + stride + g, ... (stride = gridDim.x * rows per block): the launcher caps
// the grid at what is resident, and with PF each group issues the loads of its next row before
// it even expands the current one (two rows of loads in flight), so memory stays busy while the
// SM computes (SiLU's expf + division cost about as much as its bytes). The reduction slots alternate
// between two sets per iteration: a set is rewritten only after the next iteration's barrier.
template <int NV, bool VEC, bool PF, typename Src>
__global__ void __launch_bounds__(kMaxBlock) a8_rows_kernel(Src src, int M, int K, int T, int8_t *q, float *s_a,
                                                            int32_t *rowsum)
{
    __shared__ double redd[2][kMaxBlock / 32];
    __shared__ float redf[2][kMaxBlock / 32];
    __shared__ int redi[2][kMaxBlock / 32];
    const int t = threadIdx.x % T, C = (K + kChunk - 1) / kChunk, R = blockDim.x / T, g = threadIdx.x / T;
    const size_t stride = (size_t)gridDim.x * R;
    Raw cur[NV];
    size_t base = (size_t)blockIdx.x * R; // uniform over the block: every thread runs every iteration
    if (PF) fetch_row<NV, VEC>(src, cur, base + g, M, K, t, T, C);
    for (int it = 0; base < (size_t)M; base += stride, it ^= 1) {
        const size_t m = base + g;
        const bool live = m < (size_t)M;
        Raw nxt[NV]; // PF: the next row's loads go out before this row is touched
        if (PF) fetch_row<NV, VEC>(src, nxt, m + stride, M, K, t, T, C);
        else fetch_row<NV, VEC>(src, cur, m, M, K, t, T, C);
        float v[NV][kChunk];
#pragma unroll
        for (int j = 0; j < NV; j++) src.expand(cur[j], v[j]);
        if (PF) {
#pragma unroll
            for (int j = 0; j < NV; j++) cur[j] = nxt[j];
        }
        src.template post<NV>(v, t, T, C, live, K, redd[it]);

        float amax = 0.0f;
#pragma unroll
        for (int j = 0; j < NV; j++)
#pragma unroll
            for (int e = 0; e < kChunk; e++) amax = fmaxf(amax, fabsf(v[j][e]));
        amax = group_reduce(amax, T, redf[it], MaxF());
        // amax == 0: inv = 0 makes every code 0 (0 * 0), the rule's all-zero row, without a branch
        float inv = amax == 0.0f ? 0.0f : __fdiv_rn(127.0f, amax);
        int sum = 0;
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = t + j * T;
            uint32_t packed[2] = {0, 0};
#pragma unroll
            for (int e = 0; e < kChunk; e++) {
                int k = __float2int_rn(__fmul_rn(v[j][e], inv));
                k = k < -127 ? -127 : k > 127 ? 127 : k;
                sum += k;
                packed[e / 4] |= (uint32_t)(uint8_t)(int8_t)k << (8 * (e % 4));
            }
            if (!live || c >= C) continue;
            int8_t *p = q + m * K + (size_t)c * kChunk;
            if (VEC) *reinterpret_cast<uint2 *>(p) = make_uint2(packed[0], packed[1]);
            else
                for (int e = 0; e < kChunk && c * kChunk + e < K; e++) p[e] = (int8_t)(packed[e / 4] >> (8 * (e % 4)));
        }
        sum = group_reduce(sum, T, redi[it], AddI());
        if (live && t == 0) {
            s_a[m] = amax == 0.0f ? 1.0f : __fdiv_rn(amax, 127.0f);
            if (rowsum) rowsum[m] = sum;
        }
    }
}

struct Cfg {
    int nv, T, rows; // chunks per thread, threads per row, rows per block
};

// K only (see the header: a row's result must not depend on M).
inline Cfg cfg_for(int K)
{
    int C = (K + kChunk - 1) / kChunk;
    Cfg c;
    c.nv = C <= 256 ? 1 : C <= 2048 ? 2 : C <= 4096 ? 4 : 8;
    int per = (C + c.nv - 1) / c.nv;
    if (per >= 32) c.T = (per + 31) / 32 * 32;
    else
        for (c.T = 1; c.T < per; c.T *= 2) {}
    c.rows = c.T >= 256 ? 1 : 256 / c.T;
    return c;
}

inline bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// Blocks resident on the whole current device for this kernel and block size (0: unknown).
// Cached per kernel, device (first 8) and block size: the query is host work on every large
// launch otherwise, and a few microseconds matter next to a ~5 us kernel.
template <int NV, bool VEC, typename Src> // not the kernel's pointer type: that is shared by all NV/VEC
int resident_blocks(int threads)
{
    auto kernel = a8_rows_kernel<NV, VEC, true, Src>;
    static std::atomic<int> cache[8][kMaxBlock / 32 + 1];
    int dev = 0, sms = 0, per_sm = 0;
    // a failed query only costs the cap; clear it so the launch check does not report it
    if (cudaGetDevice(&dev) != cudaSuccess) return (void)cudaGetLastError(), 0;
    bool cacheable = dev >= 0 && dev < 8 && threads % 32 == 0 && threads <= kMaxBlock;
    if (cacheable) {
        int v = cache[dev][threads / 32].load(std::memory_order_relaxed);
        if (v > 0) return v;
    }
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess)
        return (void)cudaGetLastError(), 0;
    if (cacheable) cache[dev][threads / 32].store(sms * per_sm, std::memory_order_relaxed);
    return sms * per_sm;
}

template <int NV, bool VEC, typename Src>
qv_status launch_nv(const Cfg &c, Src src, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, cudaStream_t s)
{
    // prefetching doubles the chunks a thread holds: only where they fit in registers (NV <= 2:
    // K <= 16384); wider rows get one block per row group, scheduled by the hardware
    constexpr bool PF = NV <= 2;
    auto kernel = a8_rows_kernel<NV, VEC, PF, Src>;
    size_t blocks = ((size_t)M + c.rows - 1) / c.rows;
    if constexpr (PF) {
        if (blocks > 128) { // small M: one iteration per block, no occupancy query on the latency path
            int cap = resident_blocks<NV, VEC, Src>(c.T * c.rows);
            if (cap > 0 && blocks > (size_t)cap) blocks = (size_t)cap;
        }
    }
    kernel<<<(unsigned)blocks, c.T * c.rows, 0, s>>>(src, M, K, c.T, q, s_a, rowsum);
    return QV_OK;
}

template <bool VEC, typename Src>
qv_status launch_vec(const Cfg &c, Src src, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, cudaStream_t s)
{
    switch (c.nv) {
    case 1: return launch_nv<1, VEC>(c, src, M, K, q, s_a, rowsum, s);
    case 2: return launch_nv<2, VEC>(c, src, M, K, q, s_a, rowsum, s);
    case 4: return launch_nv<4, VEC>(c, src, M, K, q, s_a, rowsum, s);
    default: return launch_nv<8, VEC>(c, src, M, K, q, s_a, rowsum, s);
    }
}

// vec: the caller's verdict on its input pointers (16-byte aligned rows); K % 8 and the codes'
// 8-byte alignment are checked here.
template <typename Src>
qv_status launch(const char *what, Src src, bool vec, int M, int K, int8_t *q, float *s_a, int32_t *rowsum,
                 cudaStream_t s)
{
    Cfg c = cfg_for(K);
    vec = vec && K % kChunk == 0 && aligned(q, 8);
    qv_status st = vec ? launch_vec<true>(c, src, M, K, q, s_a, rowsum, s) : launch_vec<false>(c, src, M, K, q, s_a, rowsum, s);
    if (st != QV_OK) return st;
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return qv_fail(QV_ERR_CUDA, "%s: launch (M %d, K %d): %s", what, M, K, cudaGetErrorString(e));
    return QV_OK;
}

} // namespace a8rows
} // namespace
