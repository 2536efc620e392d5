// The A8 producers' kernels (issue 8 bandwidth goal), included by fused_quant.cu only (its entry
// points qv_gpu_quant_a8 / rmsnorm_a8 / silu_mul_a8 launch them through a8rows::launch).
// Design: a row of K values is cut into 8-element chunks (C = ceil(K/8)); a group of T threads
// owns one row and thread t holds chunks t, t + T, ..., t + (NV-1)T in registers (NV a template
// constant, so the row never needs a block-wide exchange). Chunk loads are 16-byte vectors (FP32
// row: two, FP16 row: one, SiLU: one gate + one up) and the codes leave as one 8-byte store per
// chunk, when K % 8 == 0 and the pointers are aligned; otherwise the same kernel reads and writes
// element by element (the "scalar" instantiation; same arithmetic). Two or three group
// reductions (RMSNorm's FP64 sum of squares, amax, the INT32 row sum): warp shuffles, then, for
// groups of several warps, one shared-memory slot per warp, read back one slot per lane and
// combined by a second butterfly (a fixed order for a given T). Groups narrower than 256 threads
// are packed several rows per block.
// T and NV depend on K only, never on M: RMSNorm's FP64 sum is order-dependent, and gpu-qoq's
// "exact" consistency test (test_gpu_engines) needs a row's codes to be the same whatever batch
// it is in (prefill of n rows vs decode of 1). NV = 1/2/4/8 for C <= 256/2048/4096/larger, T the
// chunks per thread rounded up to a warp (a power of two below 32): K = 4096 -> 256 threads x 2
// chunks, K = 14336 -> 896 x 2. Every path below (staged, register prefetch, one row per block,
// scalar) runs the same per-element arithmetic and the same reductions for that (T, NV), so which
// path M selects never changes a bit. The QV_A8_VARIANT knob may change T and NV for quant_a8 and
// silu_mul_a8 only (their reductions are max and an integer sum: order-free), never for RMSNorm.
//
// Large M, how the bytes stay in flight (measured before: 48-52% of copy with one row prefetched
// into registers; a block of up to 1024 threads holds one row between barriers, so an SM had only
// ~1-4 rows' loads outstanding, in bursts). The "staged" path (vector rows, NV <= 4; opt-in,
// QV_A8_VARIANT=staged and the stage* / wide* variants, until measured: kVariants below): the
// grid is capped at the resident blocks, each block loops over its rows, and each thread copies
// ITS OWN chunks of the next D rows into a shared-memory ring with cp.async (16 bytes each,
// D = depth, D + 1 slots). A thread reads back only what it copied itself, so the ring needs no
// barrier: cp.async.wait_group makes a thread's own copies visible to it. Row i+D's copy goes into
// the slot row i-1 used (D + 1 slots), which this thread finished reading (and used) before row
// i-1's reduction barriers, so no read of a slot can race the copy that refills it. D rows are thus in
// flight while row i is computed, without holding them in registers (the register budget of a
// 1024-thread block is 64 per thread).
// Small M (<= 128 blocks): one row group per block, register loads, no occupancy query (the
// launch is the floor there).
// The A8 tail: q = clamp(rne(v * inv)) is __float2int_rn (an F2I: the conversion unit, 16 lanes
// per clock per SM, shared with expf's ex2 and the division's rcp), or, where the thread's values
// are all finite and inv is finite, the exact equivalent y = v*inv + 1.5*2^23 (|v*inv| < 128, so
// the FP32 sum rounds v*inv to the nearest integer, ties to even, into the low mantissa bits):
// the code is y's low byte and the row sum is the sum of y's bits less 0x4B400000 per element.
// Any NaN or inf among a thread's values, or inv = inf (amax below ~3.7e-37), takes the F2I path.
// Numerics: exactly those of the kernels this replaced (NUMERICS.md A8, --fmad=false, IEEE ops in
// the reference's order; header comment of fused_quant.cu).
//
// QV_A8_VARIANT (a bench/test knob, read at every launch; not API): a name from kVariants below
// (or its index); unset or "default": the default. An unknown name is a usage error.

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace {
namespace a8rows {

constexpr int kChunk = 8;
constexpr int kMaxBlock = 1024;
constexpr int kMaxDepth = 3;

struct MaxF { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct AddI { __device__ int operator()(int a, int b) const { return a + b; } };
struct AddD { __device__ double operator()(double a, double b) const { return a + b; } };

// Sum / max over the T threads of a row group, every thread of the group gets the result. All
// threads of the block must call it (dead rows too). The warps' partials are read back one per
// lane (lanes past the group's warps hold id, which changes nothing: x + 0.0 = x for the sums of
// squares, which are >= 0; max(x, 0) = x for magnitudes) and combined by a butterfly: one fixed
// order for a given T, and 5 shuffles instead of T/32 shared loads per thread.
// gr: the group's shape, computed once per kernel (no integer division per reduction).
struct Grp {
    int T;  // threads per row group (a power of two <= 32, or a multiple of 32)
    int nw; // warps per group (T > 32)
    int w0; // the group's first warp in the block (T > 32)
};

template <typename V, typename Op>
__device__ __forceinline__ V group_reduce(V v, const Grp &gr, V *red, Op op, V id)
{
    for (int o = (gr.T < 32 ? gr.T : 32) / 2; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (gr.T <= 32) return v;
    const int lane = threadIdx.x % 32;
    if (lane == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    v = lane < gr.nw ? red[gr.w0 + lane] : id;
#pragma unroll
    for (int o = 16; o; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// max that returns NaN when either input is NaN (fmaxf ignores NaN): tells whether a thread's
// values are all finite at the cost of the max the amax needs anyway.
__device__ __forceinline__ float fmax_nan(float a, float b)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return (a != a || b != b) ? __int_as_float(0x7fffffff) : fmaxf(a, b);
#endif
}

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

// cp.async of 16 bytes global -> shared, L1 bypassed (each byte is read once).
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// wait until at most n groups are pending (n = depth - 1 < kMaxDepth; uniform over the block)
__device__ __forceinline__ void cp_async_wait_dyn(int n)
{
    if (n <= 0) cp_async_wait<0>();
    else if (n == 1) cp_async_wait<1>();
    else cp_async_wait<2>();
}

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

// A source: kParts 16-byte parts per chunk (part(): the vector path's address of each), fetch
// (registers), expand (raw -> v), post (RMSNorm's row-wide step; a no-op elsewhere).
// Standalone A8 (o_proj input): v = x.
struct SrcF16 {
    static constexpr int kParts = 1;
    static constexpr bool kHasW = false;
    const __half *x;
    __device__ const void *part(size_t m, int c, int K, int) const { return x + m * K + (size_t)c * kChunk; }
    template <bool VEC> __device__ void fetch(size_t m, int c, int K, Raw &r) const
    {
        const __half *p = x + m * K + (size_t)c * kChunk;
        if (VEC) r.a = ld16(p);
        else r.a = ld_items(reinterpret_cast<const uint16_t *>(p), K - c * kChunk);
    }
    __device__ void expand(const Raw &r, float *v) const { h8_to_f(r.a, v); }
    template <int NV, bool WREG>
    __device__ void post(float (&)[NV][kChunk], const Raw *, int, const Grp &, int, bool, int, double *) const {}
};

// v = g / (1 + expf(-g)) * u: the reference's expression and order (qv_ref_silu_mul_rows), the
// same as the _f16 kernel's. Not cheapened on purpose: expf and the IEEE division are what the
// tie rule's derivation (docs/bounds.md) assumes. g = u = 0 (padding) gives 0.
__device__ __forceinline__ float silu_mul_a8(float g, float u)
{
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

struct SrcSilu {
    static constexpr int kParts = 2;
    static constexpr bool kHasW = false;
    const __half *gu;
    __device__ const void *part(size_t m, int c, int I, int p) const
    {
        return gu + m * 2 * I + (size_t)c * kChunk + (p ? I : 0);
    }
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
    template <int NV, bool WREG>
    __device__ void post(float (&)[NV][kChunk], const Raw *, int, const Grp &, int, bool, int, double *) const {}
};

// RMSNorm: the raw chunk is x; post takes the FP64 sum of squares over the group, r = 1/sqrt(ms +
// eps), then v = w * (x * r). w is shared by every row and a thread's chunks are the same in every
// row: with WREG (staged path, NV <= 2, registers to spare) the thread's w chunks are loaded once
// per kernel (wc); otherwise read after the reduction (an L1/L2 hit).
struct SrcRms {
    static constexpr int kParts = 2;
    static constexpr bool kHasW = true;
    const float *x, *w;
    float eps;
    __device__ const void *part(size_t m, int c, int K, int p) const { return x + m * K + (size_t)c * kChunk + 4 * p; }
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
    // chunk c of w (c < C), vector or element path
    __device__ Raw wchunk(int c, int K) const
    {
        const float *p = w + (size_t)c * kChunk;
        Raw wr;
        if (c * kChunk + kChunk <= K && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
            wr.a = ld16(p), wr.b = ld16(p + 4);
        } else {
            const uint32_t *b = reinterpret_cast<const uint32_t *>(p);
            wr.a = ld_items(b, K - c * kChunk), wr.b = ld_items(b + 4, K - c * kChunk - 4);
        }
        return wr;
    }
    template <int NV, bool WREG>
    __device__ void post(float (&v)[NV][kChunk], const Raw *wcache, int t, const Grp &gr, int C, bool live, int K,
                         double *redd) const
    {
        double ss = 0.0; // padding and dead rows hold 0: adds nothing
#pragma unroll
        for (int j = 0; j < NV; j++)
#pragma unroll
            for (int e = 0; e < kChunk; e++) ss += (double)v[j][e] * (double)v[j][e];
        ss = group_reduce(ss, gr, redd, AddD(), 0.0);
        float ms = (float)(ss / K);
        float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = t + j * gr.T;
            if (!live || c >= C) continue;
            float wc[kChunk];
            if (WREG) expand(wcache[j], wc);
            else expand(wchunk(c, K), wc);
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

struct Args {
    int M, K, T;
    int depth; // staged path: rows in flight per group (1..kMaxDepth)
    int magic; // 1: the exact FP32 rounding trick where it applies (header), 0: always F2I
    int8_t *q;
    float *s_a;
    int32_t *rowsum;
};

// How a block gets its rows' raw chunks.
enum Mode {
    kOnce = 0,   // one pass per row group, register loads (grid = all row groups, or a loop without prefetch)
    kRegPf = 1,  // loop over rows, the next row's loads issued into registers before this row is expanded
    kStaged = 2, // loop over rows, the next `depth` rows copied by cp.async into a shared-memory ring
};

// The A8 tail of one row: amax, codes (stored), s_a and the row sum.
template <int NV, bool VEC>
__device__ __forceinline__ void a8_tail(float (&v)[NV][kChunk], const Args &a, int t, const Grp &gr, int C, size_t m,
                                        bool live, float *redf, int *redi)
{
    // thread-local |v| max, NaN-propagating: finite <=> no NaN and no inf here (NaN compares false)
    float lmn = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; j++)
#pragma unroll
        for (int e = 0; e < kChunk; e++) lmn = fmax_nan(lmn, fabsf(v[j][e]));
    const bool clean = lmn < __int_as_float(0x7f800000);
    float lm = lmn;
    if (lmn != lmn) { // a NaN: the rule's amax ignores it (fmaxf)
        lm = 0.0f;
#pragma unroll
        for (int j = 0; j < NV; j++)
#pragma unroll
            for (int e = 0; e < kChunk; e++) lm = fmaxf(lm, fabsf(v[j][e]));
    }
    const float amax = group_reduce(lm, gr, redf, MaxF(), 0.0f);
    // amax == 0: inv = 0 makes every code 0 (0 * 0), the rule's all-zero row, without a branch
    const float inv = amax == 0.0f ? 0.0f : __fdiv_rn(127.0f, amax);
    int sum = 0;
    if (a.magic && clean && inv < __int_as_float(0x7f800000)) {
        // |v| <= lm <= amax, inv = 127/amax: |v*inv| <= 127(1 + 2^-24)^2 < 128, so y = v*inv +
        // 1.5*2^23 lies in [2^23, 2^24) (ulp 1) and equals 1.5*2^23 + rne(v*inv) exactly, the tie
        // to even being the same (1.5*2^23 is even); |rne| <= 127, so the clamp is a no-op.
        uint32_t usum = 0;
#pragma unroll
        for (int j = 0; j < NV; j++) {
            const int c = t + j * gr.T;
            uint32_t b[kChunk];
#pragma unroll
            for (int e = 0; e < kChunk; e++) {
                b[e] = __float_as_uint(__fadd_rn(__fmul_rn(v[j][e], inv), 12582912.0f));
                usum += b[e];
            }
            // the low byte of b is the code (two's complement): gather the 8 low bytes
            const uint32_t lo = __byte_perm(__byte_perm(b[0], b[1], 0x0040), __byte_perm(b[2], b[3], 0x0040), 0x5410);
            const uint32_t hi = __byte_perm(__byte_perm(b[4], b[5], 0x0040), __byte_perm(b[6], b[7], 0x0040), 0x5410);
            if (!live || c >= C) continue;
            int8_t *p = a.q + m * a.K + (size_t)c * kChunk;
            if (VEC) *reinterpret_cast<uint2 *>(p) = make_uint2(lo, hi);
            else {
                const uint32_t pk[2] = {lo, hi};
                for (int e = 0; e < kChunk && c * kChunk + e < a.K; e++) p[e] = (int8_t)(pk[e / 4] >> (8 * (e % 4)));
            }
        }
        sum = (int)(usum - (uint32_t)(NV * kChunk) * 0x4B400000u); // exact: mod 2^32, |sum| < 2^31
    } else {
#pragma unroll
        for (int j = 0; j < NV; j++) {
            const int c = t + j * gr.T;
            uint32_t packed[2] = {0, 0};
#pragma unroll
            for (int e = 0; e < kChunk; e++) {
                int k = __float2int_rn(__fmul_rn(v[j][e], inv));
                k = k < -127 ? -127 : k > 127 ? 127 : k;
                sum += k;
                packed[e / 4] |= (uint32_t)(uint8_t)(int8_t)k << (8 * (e % 4));
            }
            if (!live || c >= C) continue;
            int8_t *p = a.q + m * a.K + (size_t)c * kChunk;
            if (VEC) *reinterpret_cast<uint2 *>(p) = make_uint2(packed[0], packed[1]);
            else
                for (int e = 0; e < kChunk && c * kChunk + e < a.K; e++) p[e] = (int8_t)(packed[e / 4] >> (8 * (e % 4)));
        }
    }
    sum = group_reduce(sum, gr, redi, AddI(), 0);
    if (live && t == 0) {
        a.s_a[m] = amax == 0.0f ? 1.0f : __fdiv_rn(amax, 127.0f);
        if (a.rowsum) a.rowsum[m] = sum;
    }
}

// kStaged: this thread's chunks of its row in iteration `it` into ring slot `sl` (= it % (depth +
// 1), kept by the caller), as one cp.async group (empty for a dead row: the wait counts groups, so
// every iteration commits one)
template <int NV, typename Src>
__device__ __forceinline__ void stage_issue(const Src &src, uint4 *ring, int it, int sl, const Args &a, size_t base0,
                                            size_t stride, int g, int t, int C)
{
    const size_t m = base0 + (size_t)it * stride + g;
    uint4 *slot = ring + (size_t)sl * NV * Src::kParts * blockDim.x + threadIdx.x;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int c = t + j * a.T;
        if (m < (size_t)a.M && c < C)
#pragma unroll
            for (int p = 0; p < Src::kParts; p++)
                cp_async16(slot + (size_t)(j * Src::kParts + p) * blockDim.x, src.part(m, c, a.K, p));
    }
    cp_async_commit();
}

// Rows base + g, base + stride + g, ... (stride = gridDim.x * rows per block; kOnce with the full
// grid runs one iteration). The launcher caps the grid at what is resident for kRegPf / kStaged.
// The loop bound is uniform over the block: every thread runs every iteration (the barriers).
template <int NV, bool VEC, int MODE, typename Src>
__global__ void __launch_bounds__(kMaxBlock) a8_rows_kernel(Src src, Args a)
{
    static_assert(MODE != kStaged || VEC, "the staged path copies whole 16-byte parts");
    // One slot per warp and reduction: a slot is rewritten only after another reduction's barrier,
    // which every thread reaches after reading it (sum of squares -> amax -> row sum -> the next
    // row's first), so one set suffices (SiLU: 256 bytes, no FP64 slots), which lets two 448-thread
    // SiLU blocks with 2 x 56 KB rings share an SM (wide1).
    __shared__ double redd[kMaxBlock / 32];
    __shared__ float redf[kMaxBlock / 32];
    __shared__ int redi[kMaxBlock / 32];
    extern __shared__ uint4 ring[]; // kStaged: [slot][NV][kParts][blockDim.x]
    const int M = a.M, K = a.K, T = a.T;
    const int t = threadIdx.x % T, C = (K + kChunk - 1) / kChunk, R = blockDim.x / T, g = threadIdx.x / T;
    const size_t stride = (size_t)gridDim.x * R, base0 = (size_t)blockIdx.x * R;
    const Grp gr = {T, T / 32, g * (T / 32)};
    constexpr bool WREG = Src::kHasW && MODE == kStaged && NV <= 2;
    Raw wc[WREG ? NV : 1];
    if constexpr (WREG) {
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = t + j * T;
            if (c < C) wc[j] = src.wchunk(c, K);
        }
    }
    Raw cur[NV];
    if constexpr (MODE == kStaged)
        for (int d = 0; d < a.depth; d++) stage_issue<NV>(src, ring, d, d, a, base0, stride, g, t, C);
    if constexpr (MODE == kRegPf) fetch_row<NV, VEC>(src, cur, base0 + g, M, K, t, T, C);
    int it = 0, sl = 0; // sl: iteration it's ring slot, it % (depth + 1), without a division
    for (size_t base = base0; base < (size_t)M; base += stride, it++, sl = sl == a.depth ? 0 : sl + 1) {
        const size_t m = base + g;
        const bool live = m < (size_t)M;
        Raw nxt[MODE == kRegPf ? NV : 1]; // kRegPf: the next row's loads go out before this row is touched
        if constexpr (MODE == kStaged) {
            cp_async_wait_dyn(a.depth - 1); // this iteration's group (the oldest) has landed
            const uint4 *slot = ring + (size_t)sl * NV * Src::kParts * blockDim.x + threadIdx.x;
#pragma unroll
            for (int j = 0; j < NV; j++) {
                const int c = t + j * T;
                if (live && c < C) {
                    cur[j].a = slot[(size_t)(j * Src::kParts) * blockDim.x];
                    cur[j].b = Src::kParts > 1 ? slot[(size_t)(j * Src::kParts + 1) * blockDim.x] : make_uint4(0, 0, 0, 0);
                } else {
                    cur[j].a = cur[j].b = make_uint4(0, 0, 0, 0);
                }
            }
            // row it + depth into iteration it-1's slot, (it + depth) % (depth + 1) (header)
            stage_issue<NV>(src, ring, it + a.depth, sl == 0 ? a.depth : sl - 1, a, base0, stride, g, t, C);
        } else if constexpr (MODE == kRegPf) {
            fetch_row<NV, VEC>(src, nxt, m + stride, M, K, t, T, C);
        } else {
            fetch_row<NV, VEC>(src, cur, m, M, K, t, T, C);
        }
        float v[NV][kChunk];
#pragma unroll
        for (int j = 0; j < NV; j++) src.expand(cur[j], v[j]);
        if constexpr (MODE == kRegPf) {
#pragma unroll
            for (int j = 0; j < NV; j++) cur[j] = nxt[j];
        }
        src.template post<NV, WREG>(v, wc, t, gr, C, live, K, redd);
        a8_tail<NV, VEC>(v, a, t, gr, C, m, live, redf, redi);
    }
    if constexpr (MODE == kStaged) cp_async_wait<0>(); // no copy outlives the block (dead rows' groups are empty)
}

// ---- configurations and the QV_A8_VARIANT knob

enum Kind { kQuant = 0, kSilu = 1, kRms = 2 };

struct Variant {
    const char *name;
    int mode;      // large M, vector rows: kStaged, kRegPf or kOnce (small M and scalar rows: see launch_nv)
    int depth;     // kStaged: rows in flight
    int nv_shift;  // chunks per thread x 2^shift (quant_a8 / silu_mul_a8 only; RMSNorm keeps its T, NV)
    int magic;     // the exact FP32 rounding trick (1) or always F2I (0)
};

// What each should do (large M; the bench sweep measures them, the test proves them equal):
//   default  (pick_variant) RMSNorm: `reg`; quant_a8 and silu_mul_a8: `wide1` at large M (more
//            than 128 blocks of the `reg` shape), else `reg`. From the H200 sweep of stop 17 (% of
//            copy at M = 4096 / 16384): quant K = 4096 reg 68 / 83, wide1 78 / 88; silu I = 14336
//            reg 63 / 67, wide1 66 / 71; RMSNorm K = 4096 reg 62 / 75, every staged variant 40-50
//            (RMSNorm keeps its T, NV, so its staged rows are 256 threads of 2 chunks: the ring's
//            bookkeeping costs more than its in-flight rows gain). Small M stays on `reg`'s shape
//            (one row per block: the launch is the floor there, wide1 was not measured there).
//            Every variant gives the same bits (quant and silu reductions are max and an integer
//            sum: order-free), so which M picks which shape changes no result.
//   staged   the shared-memory ring, 2 rows in flight per row group (header), F2I avoided.
//   orig     the previous kernel's shape: one row prefetched into registers, F2I (a baseline; the
//            new cross-warp reduction step is shared by all variants).
//   reg      orig + the rounding trick: what the trick alone buys.
//   stage1/3 staged with 1 / 3 rows in flight: where in-flight bytes stop mattering.
//   wide     2x chunks per thread, half the threads per row: fewer warps per reduction, more
//            independent work per thread (silu I = 14336: 448 x 4; quant K = 4096: 128 x 4, 2 rows/block).
//   wide1    wide with 1 row in flight per block: SiLU I = 14336's ring is 2 x 56 KB, so two
//            448-thread blocks share an SM (228 KB: fits with SiLU's 256 B of static shared memory
//            + 1 KB reserved per block), independent barriers, 2 rows in flight per SM.
//   (a `narrow` variant, half the chunks per thread, 512 x 1 for quant K = 4096, hung the
//   long-row-loop test on the H200 in its first device run, stop 16; removed, not debugged)
//   f2i      default without the rounding trick.
//   once     no loop: one block per row group, the hardware schedules blocks (no occupancy cap).
// RMSNorm ignores nv_shift (its FP64 order is fixed by T, NV): there wide = default, wide1 =
// stage1.
constexpr bool cstr_eq(const char *a, const char *b) { return *a == *b && (!*a || cstr_eq(a + 1, b + 1)); }

constexpr Variant kVariants[] = {
    {"default", kRegPf, 0, 0, 1},  {"orig", kRegPf, 0, 0, 0},  {"reg", kRegPf, 0, 0, 1},
    {"staged", kStaged, 2, 0, 1},
    {"stage1", kStaged, 1, 0, 1},  {"stage3", kStaged, 3, 0, 1}, {"wide", kStaged, 2, 1, 1},
    {"wide1", kStaged, 1, 1, 1},   {"f2i", kStaged, 2, 0, 0},
    {"once", kOnce, 0, 0, 1},
};
constexpr int kNumVariants = (int)(sizeof kVariants / sizeof kVariants[0]);

// QV_A8_VARIANT -> index (0: unset/empty), -1: unknown
inline int variant_from_env()
{
    const char *e = getenv("QV_A8_VARIANT"); // per launch: the bench and the test switch it
    if (!e || !*e) return 0;
    for (int i = 0; i < kNumVariants; i++)
        if (strcmp(e, kVariants[i].name) == 0) return i;
    char *end = nullptr;
    long i = strtol(e, &end, 10);
    return *end == 0 && i >= 0 && i < kNumVariants ? (int)i : -1;
}

struct Cfg {
    int nv, T, rows; // chunks per thread, threads per row, rows per block
    int mode, depth, magic;
};

// T for NV chunks per thread: the chunks per thread rounded up to a warp (a power of two below 32)
inline int threads_for(int C, int nv)
{
    int per = (C + nv - 1) / nv, T;
    if (per >= 32) return (per + 31) / 32 * 32;
    for (T = 1; T < per; T *= 2) {}
    return T;
}

// (T, NV) from K only (see the header: a row's result must not depend on M); the variant may
// change them for quant/silu only, whose results do not depend on them.
inline Cfg cfg_for(int K, Kind kind, const Variant &var)
{
    const int C = (K + kChunk - 1) / kChunk;
    Cfg c;
    c.nv = C <= 256 ? 1 : C <= 2048 ? 2 : C <= 4096 ? 4 : 8;
    if (kind != kRms && var.nv_shift) {
        int nv = var.nv_shift > 0 ? c.nv << var.nv_shift : c.nv >> -var.nv_shift;
        if (nv >= 1 && nv <= 8 && threads_for(C, nv) <= kMaxBlock) c.nv = nv;
    }
    c.T = threads_for(C, c.nv);
    c.rows = c.T >= 256 ? 1 : 256 / c.T;
    c.mode = var.mode, c.depth = var.depth, c.magic = var.magic;
    return c;
}

constexpr int variant_index(const char *name, int i = 0)
{
    return i >= kNumVariants ? -1 : cstr_eq(kVariants[i].name, name) ? i : variant_index(name, i + 1);
}

// QV_A8_VARIANT's index -> the configuration to run; 0 (unset, "default"): the default (kVariants'
// comment): `wide1` for quant_a8 / silu_mul_a8 when `reg`'s shape would need more than 128 blocks
// (the large-M path), else `reg`.
inline const Variant &pick_variant(int vi, Kind kind, int M, int K)
{
    constexpr int kReg = variant_index("reg"), kWide1 = variant_index("wide1");
    static_assert(kReg >= 0 && kWide1 >= 0, "kVariants lost an entry the default uses");
    if (vi) return kVariants[vi];
    const Cfg d = cfg_for(K, kind, kVariants[kReg]);
    return kind != kRms && ((size_t)M + d.rows - 1) / d.rows > 128 ? kVariants[kWide1] : kVariants[kReg];
}

inline bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// Per kernel instantiation, device (first 8): blocks resident on the whole device for a block
// size and ring depth (0: unknown), and the largest dynamic shared memory it may use. Cached: the
// queries are host work on every large launch otherwise, and a few microseconds matter next to a
// ~5 us kernel.
template <int NV, bool VEC, int MODE, typename Src> // not the kernel's pointer type: shared by all NV/VEC
struct KernelInfo {
    static constexpr auto kernel = a8_rows_kernel<NV, VEC, MODE, Src>;
    static inline std::atomic<int> resident[8][kMaxBlock / 32 + 1][kMaxDepth + 1];
    static inline std::atomic<int> max_dyn[8]; // 0: not yet set; -1: the queries failed

    // the dynamic shared memory ceiling of this kernel on the current device (0 on failure)
    static int dyn_limit(int dev)
    {
        if (dev < 0 || dev >= 8) return 0;
        int v = max_dyn[dev].load(std::memory_order_relaxed);
        if (v) return v > 0 ? v : 0;
        int optin = 0;
        cudaFuncAttributes fa;
        if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
            cudaFuncGetAttributes(&fa, kernel) != cudaSuccess ||
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin - (int)fa.sharedSizeBytes) !=
                cudaSuccess ||
            cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared) !=
                cudaSuccess) {
            (void)cudaGetLastError(); // a failed query only costs the staged path; the launch check must not see it
            max_dyn[dev].store(-1, std::memory_order_relaxed);
            return 0;
        }
        v = optin - (int)fa.sharedSizeBytes;
        max_dyn[dev].store(v, std::memory_order_relaxed);
        return v;
    }

    static int resident_blocks(int dev, int threads, int depth, size_t smem)
    {
        int sms = 0, per_sm = 0;
        bool cacheable = dev >= 0 && dev < 8 && threads % 32 == 0 && threads <= kMaxBlock && depth <= kMaxDepth;
        if (cacheable) {
            int v = resident[dev][threads / 32][depth].load(std::memory_order_relaxed);
            if (v > 0) return v;
        }
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess)
            return (void)cudaGetLastError(), 0;
        if (cacheable) resident[dev][threads / 32][depth].store(sms * per_sm, std::memory_order_relaxed);
        return sms * per_sm;
    }
};

template <int NV, bool VEC, int MODE, typename Src>
void launch_mode(const Cfg &c, Src src, Args a, size_t blocks, bool big, int dev, cudaStream_t s)
{
    using KI = KernelInfo<NV, VEC, MODE, Src>;
    const int threads = c.T * c.rows;
    if (MODE != kOnce && big) { // loops over rows: cap at what is resident (more blocks would only queue)
        int cap = KI::resident_blocks(dev, threads, 0, 0);
        if (cap > 0 && blocks > (size_t)cap) blocks = (size_t)cap;
    }
    KI::kernel<<<(unsigned)blocks, threads, 0, s>>>(src, a);
}

// kStaged if it fits (true: launched), else false (the caller takes the register path)
template <int NV, typename Src>
bool launch_staged(const Cfg &c, Src src, Args a, size_t blocks, int dev, cudaStream_t s)
{
    if constexpr (NV > 4) {
        return false; // 8 chunks x 8 floats of v leave no room: register path
    } else {
        using KI = KernelInfo<NV, true, kStaged, Src>;
        const int threads = c.T * c.rows;
        const size_t slot = (size_t)NV * Src::kParts * threads * 16;
        const int lim = KI::dyn_limit(dev);
        int depth = c.depth < 1 ? 1 : c.depth > kMaxDepth ? kMaxDepth : c.depth;
        while (depth > 0 && (size_t)(depth + 1) * slot > (size_t)lim) depth--; // smaller devices: shallower
        if (depth == 0) return false;
        const size_t smem = (size_t)(depth + 1) * slot;
        int cap = KI::resident_blocks(dev, threads, depth, smem);
        if (cap > 0 && blocks > (size_t)cap) blocks = (size_t)cap;
        a.depth = depth;
        KI::kernel<<<(unsigned)blocks, threads, smem, s>>>(src, a);
        return true;
    }
}

template <int NV, bool VEC, typename Src>
void launch_nv(const Cfg &c, Src src, Args a, cudaStream_t s)
{
    size_t blocks = ((size_t)a.M + c.rows - 1) / c.rows;
    // small M: one iteration per block, no occupancy query on the latency path
    const bool big = blocks > 128;
    int dev = 0;
    if (big && cudaGetDevice(&dev) != cudaSuccess) (void)cudaGetLastError(), dev = -1;
    if constexpr (VEC)
        if (big && c.mode == kStaged && launch_staged<NV>(c, src, a, blocks, dev, s)) return;
    // register paths: one row prefetched when the chunks fit twice in registers (NV <= 2, K <= 16384)
    if constexpr (NV <= 2) {
        // (small M: one iteration per block, the prefetch finds nothing: the kernel of before)
        if (!big || c.mode != kOnce) return launch_mode<NV, VEC, kRegPf>(c, src, a, blocks, big, dev, s);
    }
    launch_mode<NV, VEC, kOnce>(c, src, a, blocks, big, dev, s);
}

template <bool VEC, typename Src>
void launch_vec(const Cfg &c, Src src, Args a, cudaStream_t s)
{
    switch (c.nv) {
    case 1: return launch_nv<1, VEC>(c, src, a, s);
    case 2: return launch_nv<2, VEC>(c, src, a, s);
    case 4: return launch_nv<4, VEC>(c, src, a, s);
    default: return launch_nv<8, VEC>(c, src, a, s);
    }
}

// vec: the caller's verdict on its input pointers (16-byte aligned rows); K % 8 and the codes'
// 8-byte alignment are checked here.
template <typename Src>
qv_status launch(const char *what, Kind kind, Src src, bool vec, int M, int K, int8_t *q, float *s_a,
                 int32_t *rowsum, cudaStream_t s)
{
    const int vi = variant_from_env();
    if (vi < 0) return qv_fail(QV_ERR_USAGE, "%s: QV_A8_VARIANT=%s is not a variant (qv_gpu_a8_variant_name)", what, getenv("QV_A8_VARIANT"));
    const Variant &var = pick_variant(vi, kind, M, K);
    const Cfg c = cfg_for(K, kind, var);
    const Args a = {M, K, c.T, c.depth, c.magic, q, s_a, rowsum};
    vec = vec && K % kChunk == 0 && aligned(q, 8);
    if (vec) launch_vec<true>(c, src, a, s);
    else launch_vec<false>(c, src, a, s);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return qv_fail(QV_ERR_CUDA, "%s: launch (M %d, K %d, A8 variant %s): %s", what, M, K, var.name,
                       cudaGetErrorString(e));
    return QV_OK;
}

} // namespace a8rows
} // namespace
