// KV4 paged attention on tensor cores (issue 8's bandwidth goal): the rows whose every position
// comes from a KV4 cache (kv4 mode: decode and prefill), head_dim 128, GQA group G in {1,2,4,8},
// page size % 16 == 0. Chunk records (O, M, L) like the general kernel's in attn_paged.cu, but
// of a record length of 1024 positions (QV_ATTN_SPAN sub-chunks of 256), the same combine kernel,
// the same softmax (attn_common.cuh); the loads and the two dot products differ.
//
// Why: the FP32 kernel dequantizes every element (u*s + mn) and spends G multiply-adds per element
// per pass on CUDA cores: ~12-20 FP32 operations per 4-bit code, more than the code's memory time,
// so it ran at 11-13% of copy bandwidth on an H100. Factoring the per-token scale and minimum out
// of the sums,
//     q.k_j         = s_j * (q . u_j) + mn_j * sum(q)
//     sum_j p_j v_j = sum_j (p_j s_j) u_j + sum_j p_j mn_j,
// leaves two products of a small dense matrix with the raw 4-bit codes u (integers 0..15, exact in
// FP16 and BF16), which mma.sync m16n8k16 does after ~1.2-1.5 integer ops per code of conversion.
//
// Loads: a block (8 warps; one row, KV head and record of up to 4 sub-chunks of 256 positions,
// i.e. 1024: the per-block costs, page lookups, q fragments, the cross-warp reduction and the
// record write, were ~45% of the instructions at one 256-position chunk per block) streams the
// record's items, the sub-chunks' K then their V (codes, s, mn: ~17 KB each), through a ring of
// two shared-memory buffers filled by cp.async: item i + 2 is issued as soon as item i is consumed,
// so one item lands while the block computes on the other (and the first V items while the
// softmax runs). One page-table lookup per 16-position group, once per block.
// Pass 1 (scores), per warp and step of 16 positions: A = codes of the 16 positions (rows) x 16
// channels, B = q (the G query heads of this KV head as columns, FP16 as the engine holds it:
// exact; the n8 tile holds up to 8 heads, where q as the m16 operand left 12 of 16 rows empty at
// G = 4 and took twice the MMAs). Lane t reads the 16 code bytes [16*(t%4), +16) of positions
// t/4 and t/4 + 8; a k16 step takes two nibble pairs per register, so the channel order inside a
// k step is permuted; q's fragments are built with the same permutation (a permutation of the
// summation index leaves the dot product's terms as they were). Scores s_j*acc + mn_j*sum(q),
// times scale, go to shared memory (the record's scores).
// Softmax over the whole record (exact max), attn_common.cuh (expf, FP32 sums): unchanged.
// Pass 2 (P.V) as O^T = U^T (P*s)^T: A = codes of 16 positions x 16 channels (lane t/4 owns the
// 16 channels [16*(t/4), +16) of positions 2(t%4), +1, +8, +9: four 8-byte reads; a byte permute
// pairs two positions' nibbles of one channel; BF16 128 + u minus 128, exact), B = p_j*s_j (FP32)
// split into BF16 parts (hi, lo, and a third for G <= 2: |x - sum| <= 2^-16 |x| with two parts;
// BF16 keeps FP32's exponent range, so small weights do not underflow as they would in FP16).
// For G <= 4 the parts sit in the n8 tile's columns (column c = head c % G, part c / G: G = 4 uses
// all 8 columns with two parts) and one MMA per tile does them all; G = 8 fills the columns with
// heads and runs two MMAs (hi, lo). The pass-2 B fragment needs exactly the (head, position)
// pairs that pass 1's C fragment held, read back from shared memory. sum_j p_j mn_j is FP32 on
// CUDA cores; the parts' columns are added in FP32 in the final cross-warp reduction.
// Error (docs/bounds.md "Attention, tensor-core KV4 path"): the exact dequantized values u*s + mn
// are used (the reference rounds them twice in FP32: <= 2u relative to |u s| + |mn|); tensor-core
// FP32 accumulation is modelled as <= 17 * 2^-22 of the summed magnitudes per MMA step (products
// exact; truncating alignment to the largest term), so the bound of qv_ref_attention_row_m with
// qv_attn_err_model_kv4_mma's extra terms applies, with magnitudes |u s| + |mn| in place of |k|.
// Prefill: attn_kv4_tiled.cu (QV_ATTN_PREFILL=tiled, opt-in until run on a device) runs tiles of 4
// consecutive rows per block with these loads, conversions and per-row arithmetic
// (attn_kv4_mma.cuh, head_softmax), bit-identical per row; this kernel is the decode path and the
// default for prefill.
#include <atomic>

#include "attn_kv4_mma.cuh"

namespace qv_attn {
namespace {

template <int G, bool BULK>
__global__ void __launch_bounds__(NW * 32) attn_kv4_mma_kernel(AttnParams p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    if (BULK) return; // never launched below sm_90 (launch_g); keeps the instantiation trivial
#endif
    extern __shared__ __align__(16) uint8_t dsm[];
    Buf *buf = reinterpret_cast<Buf *>(dsm);
    float(*S)[kSld] = reinterpret_cast<float(*)[kSld]>(dsm + 2 * sizeof(Buf));
    Groups &gr = *reinterpret_cast<Groups *>(dsm + 2 * sizeof(Buf) + sizeof(float) * G * kSld);
    __shared__ float redmn[NW][G];
    __shared__ __align__(8) uint64_t bars[2]; // BULK: one mbarrier per ring buffer
    // pass 2's columns: G <= 4 packs the parts of p*s into the n8 tile's columns (column c = head
    // c % G, part c / G; NPART = min(8 / G, 3)), so one MMA per tile does all parts; G = 8 fills
    // the columns with heads and runs two MMAs (hi, lo)
    constexpr int NPART = kNPart<G>;
    // after pass 2 the ring is dead: the cross-warp P.V reduction reuses it, [warp][column][channel]
    float(*red)[8][kRld] = reinterpret_cast<float(*)[8][kRld]>(dsm);
    const int r = blockIdx.z, kvh = blockIdx.y, c = blockIdx.x, rec = p.rec_len;
    int ctx = p.row_ctx[r];
    const int c0 = c * rec;
#ifdef QV_MUTANTS
    if (QV_DMUT(causal_off_by_one) && ctx < p.max_ctx) ctx++; // planted bug: sees the next position
    const bool gqa_mut = QV_DMUT(gqa_map);
#else
    const bool gqa_mut = false;
#endif
    if (c0 >= ctx) return; // the combine kernel never reads this record
    const int n = min(rec, ctx - c0), nsub = (n + kSub - 1) / kSub;
    const int slot = p.row_slot[r];
    load_groups(p, gr, slot, kvh, c0, rec);
    if (BULK && threadIdx.x == 0) mbar_init(&bars[0]), mbar_init(&bars[1]);
    __syncthreads();
    stage_issue<BULK>(p, buf, bars, gr, n, nsub, 0);
    stage_issue<BULK>(p, buf, bars, gr, n, nsub, 1);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tq = lane % 4;
    const int w0 = warp * kPosWarp; // this warp's first position in a sub-chunk

    // q fragments (B, columns = heads g < G), built while the stage loads (see the header)
    uint32_t qb[8][2];
    const float qsum = q_fragments(gid < G, p.q + ((size_t)r * p.nh + QV_QHEAD(kvh, gid)) * HD, tq, qb);
    // sum(q) of the heads of this lane's C columns, 2tq and 2tq + 1 (held by the lanes gid = head)
    const float qs0 = __shfl_sync(0xffffffffu, qsum, (8 * tq) & 31), qs1 = __shfl_sync(0xffffffffu, qsum, (8 * tq + 4) & 31);

    // ---- pass 1: scores, one K sub-chunk per ring item. Rows past n hold stale shared memory:
    // their codes are still 0..15 (finite), and their scores are never stored.
    for (int sub = 0; sub < nsub; sub++) {
        stage_wait<BULK>(bars, sub);
        const Buf &b = buf[sub & 1];
        const int J0 = sub * kSub; // the sub-chunk's first position in the record
#pragma unroll
        for (int st = 0; st < kSteps; st++) {
            const int base = w0 + 16 * st;
            if (J0 + base >= n) break;
            // A = codes of positions base + gid (w0) and base + gid + 8 (w1), bytes [16 tq, +16)
            const uint4 k0 = *(const uint4 *)&b.codes[(base + gid) * 64 + 16 * tq];
            const uint4 k1 = *(const uint4 *)&b.codes[(base + gid + 8) * 64 + 16 * tq];
            const uint32_t wa[4] = {k0.x, k0.y, k0.z, k0.w}, wb[4] = {k1.x, k1.y, k1.z, k1.w};
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int s = 0; s < 8; s++) {
                const int sh = 8 * (s % 2);
                const uint32_t a[4] = {nib_f16x2(wa[s / 2], sh), nib_f16x2(wb[s / 2], sh), nib_f16x2(wa[s / 2], sh + 4),
                                       nib_f16x2(wb[s / 2], sh + 4)};
                mma_f16(acc, a, qb[s][0], qb[s][1]);
            }
            // C: (position base + gid, heads 2tq, 2tq + 1) in 0, 1; (base + gid + 8, ..) in 2, 3
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int j = base + gid + 8 * h, J = J0 + j;
                if (J >= n) continue;
                const float sv = __half2float(b.s[j]);
                const float mv = QV_DMUT(kv4_min_dropped) ? 0.0f : __half2float(b.mn[j]); // planted bug: min dropped
#pragma unroll
                for (int e = 0; e < 2; e++)
                    if (2 * tq + e < G)
                        S[2 * tq + e][J] = __fmul_rn(__fadd_rn(__fmul_rn(sv, acc[2 * h + e]), __fmul_rn(mv, e ? qs1 : qs0)), p.scale);
            }
        }
        __syncthreads(); // buf[sub & 1] is free
        stage_issue<BULK>(p, buf, bars, gr, n, nsub, sub + 2);
    }
    chunk_softmax<G, kSld, NW>(p, S, n, r, kvh, c, gqa_mut);

    // ---- pass 2: P.V, one V sub-chunk per ring item
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    // this lane's B column: head hc, part pc (G = 8: head gid, parts hi and lo in two MMAs)
    const int hc = G == 8 ? gid : gid % G, pc = G == 8 ? 0 : gid / G;
    const bool col_live = hc < G && pc < NPART;
    float pmn = 0.0f; // sum_j p_j mn_j for head hc over this lane's positions (part-0 lanes only)
    for (int sub = 0; sub < nsub; sub++) {
        const int it = nsub + sub;
        stage_wait<BULK>(bars, it);
        const Buf &b = buf[it & 1];
        const int J0 = sub * kSub;
#pragma unroll
        for (int st = 0; st < kSteps; st++) {
            const int base = w0 + 16 * st;
            if (J0 + base >= n) break;
            // B = parts of p_j s_j for column gid at positions 2tq, +1 (reg 0) and +8, +9 (reg 1)
            uint32_t bh[2], bl[2];
            uint2 vc[4]; // codes of positions 2tq, 2tq + 1, 2tq + 8, 2tq + 9: channels [16 gid, +16)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int j = base + 8 * h + 2 * tq, J = J0 + j;
                vc[2 * h] = *(const uint2 *)&b.codes[j * 64 + 8 * gid];
                vc[2 * h + 1] = *(const uint2 *)&b.codes[(j + 1) * 64 + 8 * gid];
                float2 sv = __half22float2(*(const __half2 *)&b.s[j]), mv = __half22float2(*(const __half2 *)&b.mn[j]);
                if (QV_DMUT(kv4_min_dropped)) mv = make_float2(0.0f, 0.0f);
                __nv_bfloat16 yh[2], yl[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float pj = (col_live && J + e < n) ? S[hc][J + e] : 0.0f;
                    // masked positions: select, never multiply (their s/mn words may be stale)
                    float x = pj != 0.0f ? __fmul_rn(pj, e ? sv.y : sv.x) : 0.0f;
                    if (pj != 0.0f && pc == 0) pmn = __fadd_rn(pmn, __fmul_rn(pj, e ? mv.y : mv.x));
                    pv_parts<G>(x, pc, yh[e], yl[e]);
                }
                bh[h] = pack_bf16(yh[0], yh[1]);
                if (G == 8) bl[h] = pack_bf16(yl[0], yl[1]);
            }
            uint32_t x01[4], x23[4];
            pv_pairs(vc, x01, x23);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                uint32_t a[4];
                pv_a(x01, x23, i, a);
                mma_bf16(acc[i], a, bh[0], bh[1]);
                if (G == 8) mma_bf16(acc[i], a, bl[0], bl[1]);
            }
        }
        __syncthreads(); // buf[it & 1] is free
        stage_issue<BULK>(p, buf, bars, gr, n, nsub, it + 2);
    }
    // C: acc[i] = O^T[channel 16 gid + i][column 2tq, 2tq + 1] (0, 1), [.. + 8 + i] (2, 3)
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            red[warp][2 * tq + e][16 * gid + i] = acc[i][e];
            red[warp][2 * tq + e][16 * gid + 8 + i] = acc[i][2 + e];
        }
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 1));
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 2));
    if (tq == 0 && col_live && pc == 0) redmn[warp][hc] = pmn;
    __syncthreads();
    constexpr int kCols = G == 8 ? 1 : NPART; // columns summed per head: its parts
    for (int k = threadIdx.x; k < G * HD; k += NW * 32) {
        int g = k / HD, d = k % HD;
        float s = red[0][g][d], m = redmn[0][g];
#pragma unroll
        for (int pt = 1; pt < kCols; pt++) s = __fadd_rn(s, red[0][g + G * pt][d]);
#pragma unroll
        for (int w = 1; w < NW; w++) {
            m = __fadd_rn(m, redmn[w][g]);
#pragma unroll
            for (int pt = 0; pt < kCols; pt++) s = __fadd_rn(s, red[w][g + G * pt][d]);
        }
        p.O[(((size_t)r * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c) * HD + d] = __fadd_rn(s, m);
    }
}


template <int G, bool BULK> qv_status launch_gb(dim3 grid, const AttnParams &p, cudaStream_t s)
{
    // above the 48 KB default: opt in once per process and device (the attribute belongs to the
    // function; a call for another device than the last one repeats it)
    static std::atomic<int> opted{-1};
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (opted.load(std::memory_order_relaxed) != dev) {
        QV_CUDA_TRY(cudaFuncSetAttribute(attn_kv4_mma_kernel<G, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem_bytes<G>()));
        opted.store(dev, std::memory_order_relaxed);
    }
    attn_kv4_mma_kernel<G, BULK><<<grid, NW * 32, smem_bytes<G>(), s>>>(p);
    return QV_OK;
}

template <int G> qv_status launch_g(dim3 grid, const AttnParams &p, cudaStream_t s)
{
    return use_bulk() ? launch_gb<G, true>(grid, p, s) : launch_gb<G, false>(grid, p, s);
}

} // namespace

qv_status launch_kv4_mma(int G, dim3 grid, const AttnParams &p, cudaStream_t s)
{
    qv_status st;
    switch (G) {
    case 1: st = launch_g<1>(grid, p, s); break;
    case 2: st = launch_g<2>(grid, p, s); break;
    case 4: st = launch_g<4>(grid, p, s); break;
    case 8: st = launch_g<8>(grid, p, s); break;
    default: return qv_fail(QV_ERR_UNSUPPORTED, "attention (KV4 tensor-core path): GQA group %d not in {1,2,4,8}", G);
    }
    if (st != QV_OK) return st;
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

} // namespace qv_attn
