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
// it is in (prefill of n rows vs decode of 1). NV = 1/2/4/8 for C <= 256/1024/4096/larger, T the
// chunks per thread rounded up to a warp (a power of two below 32): K = 4096 -> 256 threads x 2
// chunks, K = 14336 -> 448 x 4. A row is thus spread over up to 1024 threads of one SM, so small
// M pays one load round trip and a few reductions, not a 256-thread loop over the row.
// Numerics: exactly those of the kernels this replaced (NUMERICS.md A8, --fmad=false, IEEE ops in
// the reference's order; header comment of fused_quant.cu).

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
    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(h[i]);
        v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
}

// Standalone A8 (o_proj input): v = x.
struct SrcF16 {
    const __half *x;
    template <bool VEC> __device__ void load(size_t m, int c, int K, float *v) const
    {
        const __half *p = x + m * K + (size_t)c * kChunk;
        if (VEC) h8_to_f(__ldg(reinterpret_cast<const uint4 *>(p)), v);
        else
            for (int e = 0; e < kChunk; e++) v[e] = c * kChunk + e < K ? __half2float(p[e]) : 0.0f;
    }
    template <int NV> __device__ void post(float (&)[NV][kChunk], int, int, int, size_t, bool, int, double *) const {}
};

// v = g / (1 + expf(-g)) * u: the reference's expression and order (qv_ref_silu_mul_rows), the
// same as the _f16 kernel's. Not cheapened on purpose: expf and the IEEE division are what the
// tie rule's derivation (docs/bounds.md) assumes.
__device__ __forceinline__ float silu_mul_a8(float g, float u)
{
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

struct SrcSilu {
    const __half *gu;
    template <bool VEC> __device__ void load(size_t m, int c, int I, float *v) const
    {
        const __half *g = gu + m * 2 * I + (size_t)c * kChunk, *u = g + I;
        float fg[kChunk], fu[kChunk];
        if (VEC) {
            h8_to_f(__ldg(reinterpret_cast<const uint4 *>(g)), fg);
            h8_to_f(__ldg(reinterpret_cast<const uint4 *>(u)), fu);
        } else {
            for (int e = 0; e < kChunk; e++) {
                bool in = c * kChunk + e < I;
                fg[e] = in ? __half2float(g[e]) : 0.0f, fu[e] = in ? __half2float(u[e]) : 0.0f;
            }
        }
        for (int e = 0; e < kChunk; e++) v[e] = c * kChunk + e < I ? silu_mul_a8(fg[e], fu[e]) : 0.0f;
    }
    template <int NV> __device__ void post(float (&)[NV][kChunk], int, int, int, size_t, bool, int, double *) const {}
};

// RMSNorm: load keeps x; post takes the FP64 sum of squares over the group, r = 1/sqrt(ms + eps),
// then v = w * (x * r) with w read after the reduction (not held beside x: registers).
struct SrcRms {
    const float *x, *w;
    float eps;
    template <bool VEC> __device__ void load(size_t m, int c, int K, float *v) const
    {
        const float *p = x + m * K + (size_t)c * kChunk;
        if (VEC) {
            float4 a = __ldg(reinterpret_cast<const float4 *>(p)), b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
            v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
        } else {
            for (int e = 0; e < kChunk; e++) v[e] = c * kChunk + e < K ? p[e] : 0.0f;
        }
    }
    template <int NV>
    __device__ void post(float (&v)[NV][kChunk], int t, int T, int C, size_t, bool live, int K, double *redd) const
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
            float wc[kChunk];
            load_w(c, K, wc);
#pragma unroll
            for (int e = 0; e < kChunk; e++) v[j][e] = __fmul_rn(wc[e], __fmul_rn(v[j][e], r));
        }
    }
    __device__ void load_w(int c, int K, float *wc) const
    {
        const float *p = w + (size_t)c * kChunk;
        if (c * kChunk + kChunk <= K && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
            float4 a = __ldg(reinterpret_cast<const float4 *>(p)), b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
            wc[0] = a.x, wc[1] = a.y, wc[2] = a.z, wc[3] = a.w, wc[4] = b.x, wc[5] = b.y, wc[6] = b.z, wc[7] = b.w;
        } else {
            for (int e = 0; e < kChunk; e++) wc[e] = c * kChunk + e < K ? p[e] : 0.0f;
        }
    }
};

template <int NV, bool VEC, typename Src>
__global__ void __launch_bounds__(NV <= 2 ? 512 : kMaxBlock) a8_rows_kernel(Src src, int M, int K, int T, int8_t *q, float *s_a,
                                                            int32_t *rowsum)
{
    __shared__ double redd[kMaxBlock / 32];
    __shared__ float redf[kMaxBlock / 32];
    __shared__ int redi[kMaxBlock / 32];
    const int t = threadIdx.x % T, C = (K + kChunk - 1) / kChunk;
    const size_t m = (size_t)blockIdx.x * (blockDim.x / T) + threadIdx.x / T;
    const bool live = m < (size_t)M;
    float v[NV][kChunk];
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = t + j * T;
        if (live && c < C) src.template load<VEC>(m, c, K, v[j]);
        else
            for (int e = 0; e < kChunk; e++) v[j][e] = 0.0f;
    }
    src.template post<NV>(v, t, T, C, m, live, K, redd);

    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; j++)
#pragma unroll
        for (int e = 0; e < kChunk; e++) amax = fmaxf(amax, fabsf(v[j][e]));
    amax = group_reduce(amax, T, redf, MaxF());
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
    sum = group_reduce(sum, T, redi, AddI());
    if (live && t == 0) {
        s_a[m] = amax == 0.0f ? 1.0f : __fdiv_rn(amax, 127.0f);
        if (rowsum) rowsum[m] = sum;
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
    c.nv = C <= 256 ? 1 : C <= 1024 ? 2 : C <= 4096 ? 4 : 8;
    int per = (C + c.nv - 1) / c.nv;
    if (per >= 32) c.T = (per + 31) / 32 * 32;
    else
        for (c.T = 1; c.T < per; c.T *= 2) {}
    c.rows = c.T >= 256 ? 1 : 256 / c.T;
    return c;
}

inline bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

template <int NV, bool VEC, typename Src>
qv_status launch_nv(const Cfg &c, Src src, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, cudaStream_t s)
{
    unsigned blocks = (unsigned)((M + c.rows - 1) / c.rows);
    a8_rows_kernel<NV, VEC, Src><<<blocks, c.T * c.rows, 0, s>>>(src, M, K, c.T, q, s_a, rowsum);
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
