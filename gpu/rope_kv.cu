// RoPE + KV cache write (issue 8): one warp per (token, head) over q, k and v heads of the fused
// QKV projection output (FP16 [T, (nh + 2 nkv) * hd]).
// What: q and k are rotated in Llama's rotate-half layout (channel i pairs with i + hd/2) with
// cos/sin taken from FP32 tables computed on the host by the reference's own code
// (qv_ref_rope_table), so the rotation is the same IEEE expression as ref-fp32's rope():
// out[i] = a*c + (-b)*s, out[i+hd/2] = b*c + a*s (--fmad=false: no fused multiply-add). The
// results are rounded to FP16 (the cached K, NUMERICS.md "KV cache"), written to q_out/k_out/v_out
// and into the paged cache: FP16 as is, or KV4 by qv_kv4_quant_ref's formula (mn = min, s =
// fp16((max - mn)/15), zero s -> 1 with codes 0, u = clamp(rne((x - mn)/s), 0, 15), two codes a
// byte, low nibble first; s and mn FP16 beside the page's codes). Identical FP16 inputs give
// bit-identical codes, s and mn. The warp stages the head's hd values in shared memory so each
// lane can pack adjacent code pairs. Reference: qv_ref_rope_kv (include/qvet/kernels_ref.h).
// BF16 cache (gpu-fp16 --dtype bf16): the same kernel over T = __nv_bfloat16 (gpu/f16_types.cuh):
// qkv read as BF16, q/k rounded to BF16, the BF16 pages written like the FP16 ones.
#include <cuda_fp16.h>

#include "f16_types.cuh"

#include "qv_cuda_check.h"
#include "qv_mutant_dev.cuh"

extern "C" {
#include "qvet/gpu_kernels.h"
}

namespace {

constexpr int kWarps = 4;
constexpr int kMaxHd = 256;

// T: the 16-bit type of qkv, q/k/v and a 16-bit cache (KV4 pages: always FP16 s and mn, T = __half)
template <typename T>
__global__ void rope_kv_kernel(const T *qkv, int T_, int nh, int nkv, int hd, const int32_t *pos,
                               const int32_t *slot, const float *cos_t, const float *sin_t, T *q_out,
                               T *k_out, T *v_out, qv_kv_fmt fmt, int P, int max_pages,
                               const int32_t *page_table, uint8_t *pool, size_t page_bytes)
{
    __shared__ float buf[kWarps][kMaxHd];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int heads = nh + 2 * nkv;
    long idx = (long)blockIdx.x * kWarps + warp;
    if (idx >= (long)T_ * heads) return;
    int t = (int)(idx / heads), hh = (int)(idx % heads), half = hd / 2;
    const T *x = qkv + (size_t)t * heads * hd + (size_t)hh * hd;
    float *b = buf[warp];
    int p = pos[t];
    if (hh < nh + nkv) { // q or k: rotate
        const float *ct = cos_t + (size_t)p * half, *st = sin_t + (size_t)p * half;
        for (int i = lane; i < half; i += 32) {
            float a = qv_f16t<T>::to_f(x[i]), bb = qv_f16t<T>::to_f(x[i + half]), c = ct[i], s = st[i];
            float o0 = __fadd_rn(__fmul_rn(a, c), __fmul_rn(-bb, s));
            float o1 = __fadd_rn(__fmul_rn(bb, c), __fmul_rn(a, s));
            b[i] = qv_round16<T>(o0);
            b[i + half] = qv_round16<T>(o1);
        }
    } else {
        for (int i = lane; i < hd; i += 32) b[i] = qv_f16t<T>::to_f(x[i]);
    }
    __syncwarp();
    T *dst;
    if (hh < nh) dst = q_out + (size_t)t * nh * hd + (size_t)hh * hd;
    else if (hh < nh + nkv) dst = k_out + (size_t)t * nkv * hd + (size_t)(hh - nh) * hd;
    else dst = v_out + (size_t)t * nkv * hd + (size_t)(hh - nh - nkv) * hd;
    for (int i = lane; i < hd; i += 32) dst[i] = qv_f16t<T>::rn(b[i]); // b holds T values: exact
    if (hh < nh) return;

    int isv = hh >= nh + nkv, kvh = isv ? hh - nh - nkv : hh - nh;
    int page = page_table[(size_t)slot[t] * max_pages + p / P], e = p % P;
    uint8_t *base = pool + ((size_t)page * 2 + isv) * page_bytes;
    if (fmt != QV_KV_FMT_KV4) { // FP16 or BF16 pages
        T *c = (T *)base + ((size_t)kvh * P + e) * hd;
        for (int i = lane; i < hd; i += 32) c[i] = qv_f16t<T>::rn(b[i]);
        return;
    }
    float lo = b[0], hi = b[0];
    for (int i = lane; i < hd; i += 32) {
        lo = fminf(lo, b[i]);
        hi = fmaxf(hi, b[i]);
    }
    for (int o = 16; o; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
    float sc = __half2float(__float2half_rn(__fdiv_rn(__fsub_rn(hi, lo), 15.0f)));
    int zero = sc == 0.0f;
    if (zero) sc = 1.0f;
    uint8_t *codes = base + ((size_t)kvh * P + e) * (hd / 2);
    for (int j = lane; j < half; j += 32) {
        int c0 = 0, c1 = 0;
        if (!zero) {
#ifdef QV_MUTANTS
            if (QV_DMUT(kv4_round_away)) { // planted bug: ties rounded away from zero
                c0 = (int)roundf(__fdiv_rn(__fsub_rn(b[2 * j], lo), sc));
                c1 = (int)roundf(__fdiv_rn(__fsub_rn(b[2 * j + 1], lo), sc));
            } else
#endif
            {
                c0 = __float2int_rn(__fdiv_rn(__fsub_rn(b[2 * j], lo), sc));
                c1 = __float2int_rn(__fdiv_rn(__fsub_rn(b[2 * j + 1], lo), sc));
            }
            c0 = c0 < 0 ? 0 : c0 > 15 ? 15 : c0;
            c1 = c1 < 0 ? 0 : c1 > 15 ? 15 : c1;
        }
        codes[j] = (uint8_t)(c0 | c1 << 4);
    }
    if (lane == 0) {
        size_t sidx = (size_t)kvh * P + e, codes_bytes = (size_t)nkv * P * (hd / 2);
        __half *sp = (__half *)(base + codes_bytes), *mp = sp + (size_t)nkv * P;
        sp[sidx] = __float2half_rn(sc);
        mp[sidx] = __float2half_rn(lo); // lo is an FP16 value: exact
    }
}

} // namespace

extern "C" size_t qv_gpu_kv_page_bytes(qv_kv_fmt fmt, int n_kv_heads, int head_dim, int page_size)
{
    size_t hp = (size_t)n_kv_heads * (size_t)page_size;
    return fmt != QV_KV_FMT_KV4 ? hp * (size_t)head_dim * 2 : hp * (size_t)(head_dim / 2) + hp * 4;
}

extern "C" qv_status qv_gpu_rope_kv_write(const uint16_t *qkv, int T, int nh, const int32_t *pos, const int32_t *slot,
                                          const float *cos_t, const float *sin_t, uint16_t *q_out, uint16_t *k_out,
                                          uint16_t *v_out, const qv_gpu_kv_cache *c, void *stream)
{
    if (T < 1 || nh < 1 || c->n_kv_heads < 1 || c->head_dim < 2 || c->head_dim % 2 || c->head_dim > kMaxHd ||
        c->page_size < 1 || c->max_pages < 1)
        return qv_fail(QV_ERR_USAGE, "rope_kv_write: bad shape (tokens %d, heads %d/%d, head_dim %d (even, <= %d), "
                       "page %d, max_pages %d)", T, nh, c->n_kv_heads, c->head_dim, kMaxHd, c->page_size, c->max_pages);
    QV_DMUT_SYNC();
    long warps = (long)T * (nh + 2 * c->n_kv_heads);
    unsigned blocks = (unsigned)((warps + kWarps - 1) / kWarps);
    size_t pb = qv_gpu_kv_page_bytes(c->fmt, c->n_kv_heads, c->head_dim, c->page_size);
    if (c->fmt == QV_KV_FMT_BF16)
        rope_kv_kernel<__nv_bfloat16><<<blocks, kWarps * 32, 0, (cudaStream_t)stream>>>(
            (const __nv_bfloat16 *)qkv, T, nh, c->n_kv_heads, c->head_dim, pos, slot, cos_t, sin_t,
            (__nv_bfloat16 *)q_out, (__nv_bfloat16 *)k_out, (__nv_bfloat16 *)v_out, c->fmt, c->page_size, c->max_pages,
            c->page_table, c->pool, pb);
    else
        rope_kv_kernel<__half><<<blocks, kWarps * 32, 0, (cudaStream_t)stream>>>(
            (const __half *)qkv, T, nh, c->n_kv_heads, c->head_dim, pos, slot, cos_t, sin_t, (__half *)q_out,
            (__half *)k_out, (__half *)v_out, c->fmt, c->page_size, c->max_pages, c->page_table, c->pool, pb);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}
