// Tiled prefill variant of the tensor-core KV4 attention kernel (issue 8: "prefill attention,
// causal, flash-style tiling"). The one-row kernel (attn_kv4_mma.cu, whose header explains the
// loads, the two MMA passes and the record layout) runs one block per (record, KV head, row), so a
// prefill of T tokens loads and converts every K/V sub-chunk of a record up to T times. Here a block
// handles (record, KV head, tile of TQ = 4 or 2 consecutive rows): the rows of the tile that share
// a cache slot (a "group": a prefill's tile is one group, except where it straddles two sequences)
// stream the record's sub-chunks through the same ring ONCE, and the conversion of the codes (the
// dominant cost) is shared: pass 1 puts the group's rows side by side in the B columns (column
// t*G + g = row t's head g: one n8 tile holds 8/G rows for G < 8, G = 8 a row per tile), pass 2 runs
// each A fragment against one n8 tile per row. Rows of other slots form the next group of the
// same block (correct for any rows; slower than the one-row kernel when every row has its own
// slot, so the caller only asks for this kernel with a prefill hint).
//
// Bit-identity with the one-row kernel (the point of qvet: test_gpu_engines compares prefill with
// decode bit for bit; test_gpu_kernels compares the two kernels' outputs). mma.sync computes every
// C element from its A row, its own B column and its own accumulator element only; so a column's
// result is the one-row kernel's as long as that column's B values, the A rows, the accumulator's
// history and the k order are the same. Per row t of a group this kernel keeps:
//  - the record boundaries (c0 = c * rec_len, n_t = min(rec, ctx_t - c0)), the warp's positions of
//    each sub-chunk (w0 = warp * kPosWarp) and the 16-position steps; the A fragments are built by
//    the same code from the same codes (positions the group loads past a row's n_t are real codes
//    instead of stale ones: finite either way, and masked as below);
//  - pass 1: q's fragments and sum(q) of each (row, head) column built exactly as the one-row
//    kernel builds its column for that head (same permutation, same summation order and shuffles);
//    each 16-position step starts from a zero accumulator, so the extra steps the group runs for
//    its longest row change nothing for the shorter rows; a score is stored only for J < n_t, by
//    the same formula;
//  - softmax: head_softmax (attn_common.cuh), the one-row kernel's code, per (row, head) with n_t;
//  - pass 2: the accumulators are per row, and row t's MMAs run only at the steps the one-row
//    kernel runs for it (J0 + base < n_t: the same skip, not an MMA with zero B, which would add
//    +0 products and could only differ by the sign of a zero); inside a step the B values are the
//    one-row kernel's (masked positions select 0, never multiply), the MMA order per accumulator is
//    the same (tile i in order; G = 8: hi then lo), and sum p_j mn_j is summed in the same order;
//  - the cross-warp reduction and record write: the one-row kernel's code, per row, in row order.
// So each row's record (O, M, L) is bit-identical to the one-row kernel's, and the combine kernel
// (unchanged) gives bit-identical outputs. A (row, head) sits in another column of the n8 tile than
// in the one-row kernel (G = 1: rows in columns 0..3; the one-row kernel's head is column 0): the
// only hardware assumption is the column independence of mma.sync above (each D element its own
// dot product; nothing couples the columns), which test_gpu_kernels checks on the device by
// comparing the two kernels' outputs bit for bit.
//
// Cost: shared memory holds the scores of TQ * G columns (TQ = 4, G = 8: ~170 KB) and pass 2 holds
// TQ x 32 accumulators per thread: TQ = 4 ~240 registers, one block (8 warps) per SM; TQ = 2 128
// registers, two blocks per SM where the shared memory allows. qv_gpu_attention takes 2 (measured
// faster on the H200: attn_paged.cu) where it fits the device's opt-in limit, else (sm_89 at G = 8)
// the one-row kernel; QV_ATTN_TILE_ROWS=4 asks for 4 where it fits (qv_attn::kv4_tiled_rows).
#include <atomic>

#include "attn_kv4_mma.cuh"

namespace qv_attn {
namespace {

// TQ (rows per tile) is 4 or 2: 4 shares each conversion among more rows; 2 halves the registers
// (128: two blocks per SM) and the scores' shared memory (fits sm_80 at G = 8, sm_89 at G = 4)
template <int G, int TQ> constexpr size_t tiled_smem_bytes()
{
    return 2 * sizeof(Buf) + sizeof(float) * TQ * G * kSld + sizeof(Groups);
}

// a[i] for a run-time i in [0, N) without local memory (the arrays stay in registers)
template <int N> __device__ __forceinline__ int pick(const int (&a)[N], int i)
{
    int v = a[0];
#pragma unroll
    for (int k = 1; k < N; k++)
        if (i == k) v = a[k];
    return v;
}

template <int G, int TQ, bool BULK>
__global__ void __launch_bounds__(NW * 32, TQ == 2 ? 2 : 1) attn_kv4_tiled_kernel(AttnParams p, int R)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    if (BULK) return; // never launched below sm_90 (use_bulk); keeps the instantiation trivial
#endif
    constexpr int NCOL = TQ * G, NT = (NCOL + 7) / 8; // pass 1's columns and n8 tiles
    constexpr int NPART = kNPart<G>; // as the one-row kernel
    extern __shared__ __align__(16) uint8_t dsm[];
    Buf *buf = reinterpret_cast<Buf *>(dsm);
    float(*S)[kSld] = reinterpret_cast<float(*)[kSld]>(dsm + 2 * sizeof(Buf)); // [row t * G + head g]
    Groups &gr = *reinterpret_cast<Groups *>(dsm + 2 * sizeof(Buf) + sizeof(float) * NCOL * kSld);
    float(*red)[8][kRld] = reinterpret_cast<float(*)[8][kRld]>(dsm); // after pass 2: the dead ring
    __shared__ float redmn[NW][G];
    __shared__ __align__(8) uint64_t bars[2];
    const int kvh = blockIdx.y, c = blockIdx.x, rec = p.rec_len, c0 = c * rec, r0 = blockIdx.z * TQ;
#ifdef QV_MUTANTS
    const bool gqa_mut = QV_DMUT(gqa_map);
#else
    const bool gqa_mut = false;
#endif
    (void)gqa_mut; // QV_QHEAD reads it in QV_MUTANTS builds only
    // the tile's rows; `pending`: those with positions in this record (the one-row kernel returns for
    // the others: the combine kernel never reads their record)
    int rslot[TQ], rctx[TQ];
    unsigned pending = 0;
#pragma unroll
    for (int t = 0; t < TQ; t++) {
        rslot[t] = -1, rctx[t] = 0;
        if (r0 + t < R) {
            int ctx = p.row_ctx[r0 + t];
#ifdef QV_MUTANTS
            if (QV_DMUT(causal_off_by_one) && ctx < p.max_ctx) ctx++; // planted bug, as the one-row kernel
#endif
            rslot[t] = p.row_slot[r0 + t], rctx[t] = ctx;
            if (c0 < ctx) pending |= 1u << t;
        }
    }
    if (!pending) return;
    if (BULK && threadIdx.x == 0) mbar_init(&bars[0]), mbar_init(&bars[1]); // published by the group's barrier
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tq = lane % 4;
    const int w0 = warp * kPosWarp;
    const int hc = G == 8 ? gid : gid % G, pc = G == 8 ? 0 : gid / G; // pass 2's column (one-row kernel's)
    const bool col_live = hc < G && pc < NPART;
    int ib = 0; // ring items of the earlier groups (the buffers and mbarrier phases run on)
    while (pending) {
        // this group: the rows still to do with the first one's slot; n_t = 0 for the others
        const int slot = pick(rslot, __ffs(pending) - 1);
        int nr[TQ], nmax = 0;
#pragma unroll
        for (int t = 0; t < TQ; t++) {
            nr[t] = (pending >> t & 1u) && rslot[t] == slot ? min(rec, rctx[t] - c0) : 0;
            if (nr[t] > 0) pending &= ~(1u << t);
            nmax = max(nmax, nr[t]);
        }
        const int nsub = (nmax + kSub - 1) / kSub;
        load_groups(p, gr, slot, kvh, c0, rec);
        __syncthreads();
        stage_issue<BULK>(p, buf, bars, gr, nmax, nsub, 0, ib);
        stage_issue<BULK>(p, buf, bars, gr, nmax, nsub, 1, ib);

        // q fragments of each n8 tile T: lane's column 8T + gid = (row t, head g), built as the
        // one-row kernel builds its column for head g (zero for columns of no live row)
        uint32_t qb[NT][8][2];
        float qs0[NT], qs1[NT];
#pragma unroll
        for (int T = 0; T < NT; T++) {
            const int col = 8 * T + gid, t = col / G, g = col % G;
            const float qsum = q_fragments(col < NCOL && pick(nr, t) > 0,
                                           p.q + ((size_t)(r0 + t) * p.nh + QV_QHEAD(kvh, g)) * HD, tq, qb[T]);
            qs0[T] = __shfl_sync(0xffffffffu, qsum, (8 * tq) & 31);
            qs1[T] = __shfl_sync(0xffffffffu, qsum, (8 * tq + 4) & 31);
        }

        // ---- pass 1: scores of all the group's columns from one conversion of each K step
        for (int sub = 0; sub < nsub; sub++) {
            stage_wait<BULK>(bars, ib + sub);
            const Buf &b = buf[(ib + sub) & 1];
            const int J0 = sub * kSub;
#pragma unroll
            for (int st = 0; st < kSteps; st++) {
                const int base = w0 + 16 * st;
                if (J0 + base >= nmax) break;
                const uint4 k0 = *(const uint4 *)&b.codes[(base + gid) * 64 + 16 * tq];
                const uint4 k1 = *(const uint4 *)&b.codes[(base + gid + 8) * 64 + 16 * tq];
                const uint32_t wa[4] = {k0.x, k0.y, k0.z, k0.w}, wb[4] = {k1.x, k1.y, k1.z, k1.w};
                float acc[NT][4];
#pragma unroll
                for (int T = 0; T < NT; T++) acc[T][0] = acc[T][1] = acc[T][2] = acc[T][3] = 0.0f;
#pragma unroll
                for (int s = 0; s < 8; s++) {
                    const int sh = 8 * (s % 2);
                    const uint32_t a[4] = {nib_f16x2(wa[s / 2], sh), nib_f16x2(wb[s / 2], sh), nib_f16x2(wa[s / 2], sh + 4),
                                           nib_f16x2(wb[s / 2], sh + 4)};
#pragma unroll
                    for (int T = 0; T < NT; T++) mma_f16(acc[T], a, qb[T][s][0], qb[T][s][1]);
                }
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int j = base + gid + 8 * h, J = J0 + j;
                    if (J >= nmax) continue;
                    const float sv = __half2float(b.s[j]);
                    const float mv = QV_DMUT(kv4_min_dropped) ? 0.0f : __half2float(b.mn[j]); // planted bug: min dropped
#pragma unroll
                    for (int T = 0; T < NT; T++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int col = 8 * T + 2 * tq + e;
                            if (col < NCOL && J < pick(nr, col / G))
                                S[col][J] = __fmul_rn(__fadd_rn(__fmul_rn(sv, acc[T][2 * h + e]), __fmul_rn(mv, e ? qs1[T] : qs0[T])),
                                                      p.scale);
                        }
                }
            }
            __syncthreads(); // this buffer is free
            stage_issue<BULK>(p, buf, bars, gr, nmax, nsub, sub + 2, ib);
        }
        // softmax per (row, head) of the group
        for (int k = warp; k < NCOL; k += NW) {
            const int t = k / G, g = k % G, n = pick(nr, t);
            if (n > 0) head_softmax(p, S[k], n, ((size_t)(r0 + t) * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c);
        }
        __syncthreads();

        // ---- pass 2: P.V, each V step converted once for the group's rows (one n8 tile per row)
        float acc[TQ][8][4];
        float pmn[TQ];
#pragma unroll
        for (int t = 0; t < TQ; t++) {
            pmn[t] = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) acc[t][i][0] = acc[t][i][1] = acc[t][i][2] = acc[t][i][3] = 0.0f;
        }
        for (int sub = 0; sub < nsub; sub++) {
            const int it = nsub + sub;
            stage_wait<BULK>(bars, ib + it);
            const Buf &b = buf[(ib + it) & 1];
            const int J0 = sub * kSub;
#pragma unroll
            for (int st = 0; st < kSteps; st++) {
                const int base = w0 + 16 * st;
                if (J0 + base >= nmax) break;
                uint32_t bh[TQ][2], bl[TQ][2];
                uint2 vc[4];
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int j = base + 8 * h + 2 * tq, J = J0 + j;
                    vc[2 * h] = *(const uint2 *)&b.codes[j * 64 + 8 * gid];
                    vc[2 * h + 1] = *(const uint2 *)&b.codes[(j + 1) * 64 + 8 * gid];
                    float2 sv = __half22float2(*(const __half2 *)&b.s[j]), mv = __half22float2(*(const __half2 *)&b.mn[j]);
                    if (QV_DMUT(kv4_min_dropped)) mv = make_float2(0.0f, 0.0f);
#pragma unroll
                    for (int t = 0; t < TQ; t++) {
                        bh[t][h] = bl[t][h] = 0u;
                        if (J0 + base >= nr[t]) continue; // the one-row kernel skips this step for row t
                        __nv_bfloat16 yh[2], yl[2];
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            float pj = (col_live && J + e < nr[t]) ? S[t * G + hc][J + e] : 0.0f;
                            // masked positions: select, never multiply (their s/mn words may be stale)
                            float x = pj != 0.0f ? __fmul_rn(pj, e ? sv.y : sv.x) : 0.0f;
                            if (pj != 0.0f && pc == 0) pmn[t] = __fadd_rn(pmn[t], __fmul_rn(pj, e ? mv.y : mv.x));
                            pv_parts<G>(x, pc, yh[e], yl[e]);
                        }
                        bh[t][h] = pack_bf16(yh[0], yh[1]);
                        if (G == 8) bl[t][h] = pack_bf16(yl[0], yl[1]);
                    }
                }
                uint32_t x01[4], x23[4];
                pv_pairs(vc, x01, x23);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    uint32_t a[4];
                    pv_a(x01, x23, i, a);
#pragma unroll
                    for (int t = 0; t < TQ; t++) {
                        if (J0 + base >= nr[t]) continue; // warp-uniform: the MMA's lanes agree
                        mma_bf16(acc[t][i], a, bh[t][0], bh[t][1]);
                        if (G == 8) mma_bf16(acc[t][i], a, bl[t][0], bl[t][1]);
                    }
                }
            }
            __syncthreads(); // this buffer is free
            stage_issue<BULK>(p, buf, bars, gr, nmax, nsub, it + 2, ib);
        }
        // per row: the one-row kernel's cross-warp reduction and record write
#pragma unroll
        for (int t = 0; t < TQ; t++) {
            if (nr[t] == 0) continue; // block-uniform
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    red[warp][2 * tq + e][16 * gid + i] = acc[t][i][e];
                    red[warp][2 * tq + e][16 * gid + 8 + i] = acc[t][i][2 + e];
                }
            float pm = pmn[t];
            pm = __fadd_rn(pm, __shfl_xor_sync(0xffffffffu, pm, 1));
            pm = __fadd_rn(pm, __shfl_xor_sync(0xffffffffu, pm, 2));
            if (tq == 0 && col_live && pc == 0) redmn[warp][hc] = pm;
            __syncthreads();
            constexpr int kCols = G == 8 ? 1 : NPART;
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
                p.O[(((size_t)(r0 + t) * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c) * HD + d] = __fadd_rn(s, m);
            }
            __syncthreads(); // red and redmn are free (the next row, or the next group's ring)
        }
        ib += 2 * nsub;
    }
}

template <int G, int TQ, bool BULK> qv_status launch_tiled_gb(const AttnParams &p, int R, cudaStream_t s)
{
    static std::atomic<int> opted{-1}; // the opt-in above 48 KB, once per process and device
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (opted.load(std::memory_order_relaxed) != dev) {
        QV_CUDA_TRY(cudaFuncSetAttribute(attn_kv4_tiled_kernel<G, TQ, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)tiled_smem_bytes<G, TQ>()));
        opted.store(dev, std::memory_order_relaxed);
    }
    dim3 grid(p.n_chunks, p.nkv, (R + TQ - 1) / TQ);
    attn_kv4_tiled_kernel<G, TQ, BULK><<<grid, NW * 32, tiled_smem_bytes<G, TQ>(), s>>>(p, R);
    return QV_OK;
}

template <int G, int TQ> qv_status launch_tiled_g(const AttnParams &p, int R, cudaStream_t s)
{
    return use_bulk() ? launch_tiled_gb<G, TQ, true>(p, R, s) : launch_tiled_gb<G, TQ, false>(p, R, s);
}

// dynamic + static shared memory of the instantiation the device would run, against its opt-in limit
template <int G, int TQ> bool fits()
{
    int dev = 0, optin = 0;
    cudaFuncAttributes fa;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaFuncGetAttributes(&fa, use_bulk() ? attn_kv4_tiled_kernel<G, TQ, true> : attn_kv4_tiled_kernel<G, TQ, false>) !=
            cudaSuccess)
        return (void)cudaGetLastError(), false;
    return tiled_smem_bytes<G, TQ>() + fa.sharedSizeBytes <= (size_t)optin;
}

template <int G> int tile_rows_g(int want)
{
    if (want == 4 && fits<G, 4>()) return 4;
    return fits<G, 2>() ? 2 : 0;
}

} // namespace

int kv4_tiled_rows(int G, int want)
{
    switch (G) {
    case 1: return tile_rows_g<1>(want);
    case 2: return tile_rows_g<2>(want);
    case 4: return tile_rows_g<4>(want);
    case 8: return tile_rows_g<8>(want);
    default: return 0;
    }
}

qv_status launch_kv4_tiled(int G, int TQ, const AttnParams &p, int R, cudaStream_t s)
{
    if (TQ != 2 && TQ != 4) return qv_fail(QV_ERR_INTERNAL, "attention (KV4 tiled prefill): %d rows per tile", TQ);
    qv_status st;
    switch (G) {
    case 1: st = TQ == 4 ? launch_tiled_g<1, 4>(p, R, s) : launch_tiled_g<1, 2>(p, R, s); break;
    case 2: st = TQ == 4 ? launch_tiled_g<2, 4>(p, R, s) : launch_tiled_g<2, 2>(p, R, s); break;
    case 4: st = TQ == 4 ? launch_tiled_g<4, 4>(p, R, s) : launch_tiled_g<4, 2>(p, R, s); break;
    case 8: st = TQ == 4 ? launch_tiled_g<8, 4>(p, R, s) : launch_tiled_g<8, 2>(p, R, s); break;
    default: return qv_fail(QV_ERR_UNSUPPORTED, "attention (KV4 tiled prefill): GQA group %d not in {1,2,4,8}", G);
    }
    if (st != QV_OK) return st;
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

} // namespace qv_attn
