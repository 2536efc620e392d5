// Fused row producers (issue 8): RMSNorm + A8, SiLU*mul + A8, standalone A8 (gpu-fp16's 16-bit
// producers, FP16 and BF16, are gpu/fused_f16.cu).
// What: the A8 producers keep each row in registers, spread over up to 1024 threads (kernels and
// design: fused_a8_rows.cuh; at large M the next rows stream into a per-thread shared-memory ring
// by cp.async): the row is read from global memory once and the codes written once (memory-bound:
// the benchmark reports it against the D2D copy). QV_A8_VARIANT: see fused_a8_rows.cuh.
// Numerics (NUMERICS.md, A8): inv = 127/amax, q = clamp(rne(v*inv), -127, 127) (__float2int_rn),
// s_a = amax/127 (IEEE division), rowsum = exact INT32 sum of the codes; all-zero row: codes 0,
// s_a = 1. The file is compiled with --fmad=false and every product/sum below is a plain
// IEEE-rounded op in the reference's order, so given the same v the codes are bit-identical.
// RMSNorm's sum of squares is accumulated in FP64 (as ref-fp32 does): its order differs from the
// reference's sequential loop, but the FP64 error (~K*2^-53) rarely moves the FP32 rounding of
// the mean; the test counts the rare code that differs under NUMERICS.md's tie rule.
// SiLU uses expf (CUDA: <= 2 ulp), the reference glibc's expf: v may differ by a few ulp, again
// counted as ties when a code differs. Reference: include/qvet/kernels_ref.h.
#include <cuda_fp16.h>

#include "producer_contract.cuh"
#include "qv_cuda_check.h"
#ifdef QV_MUTANTS
extern "C" {
#include "qvet/mutant.h"
}
#endif

extern "C" {
#include "qvet/gpu_kernels.h"
}

namespace {

#ifdef QV_MUTANTS
// The planted bug engine_a8_token (QV_MUTANTS builds only; gpu-qoq's counterpart of ref-qoq's):
// row t's A8 scale replaced by row t-1's after the producer ran. One thread: a bug, not a path.
__global__ void mut_shift_scales(float *s_a, int M)
{
    for (int t = M - 1; t > 0; t--) s_a[t] = s_a[t - 1];
}
#endif

// After an A8 producer: nothing, except in a mutants build with engine_a8_token selected.
qv_status a8_scales_done(float *s_a, int M, cudaStream_t s)
{
#ifdef QV_MUTANTS
    if (QV_MUT(engine_a8_token)) {
        mut_shift_scales<<<1, 1, 0, s>>>(s_a, M);
        QV_CUDA_TRY(cudaGetLastError());
    }
#else
    (void)s_a, (void)M, (void)s;
#endif
    return QV_OK;
}

} // namespace

#include "fused_a8_rows.cuh"

extern "C" qv_status qv_gpu_quant_a8(const uint16_t *x, int M, int K, int8_t *q, float *s_a, int32_t *rowsum,
                                     void *stream)
{
    QV_TRY(qv_producer_check_mk("quant_a8", M, K));
    QV_TRY(a8rows::launch("quant_a8", a8rows::kQuant, a8rows::SrcF16{(const __half *)x}, a8rows::aligned(x, 16), M, K, q, s_a,
                          rowsum, (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" qv_status qv_gpu_rmsnorm_a8(const float *x, const float *w, float eps, int M, int K, int8_t *q,
                                       float *s_a, int32_t *rowsum, void *stream)
{
    QV_TRY(qv_producer_check_mk("rmsnorm_a8", M, K));
    QV_TRY(a8rows::launch("rmsnorm_a8", a8rows::kRms, a8rows::SrcRms{x, w, eps}, a8rows::aligned(x, 16), M, K, q, s_a, rowsum,
                          (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" qv_status qv_gpu_silu_mul_a8(const uint16_t *gu, int M, int I, int8_t *q, float *s_a, int32_t *rowsum,
                                        void *stream)
{
    QV_TRY(qv_producer_check_mk("silu_mul_a8", M, I));
    QV_TRY(a8rows::launch("silu_mul_a8", a8rows::kSilu, a8rows::SrcSilu{(const __half *)gu}, a8rows::aligned(gu, 16), M, I, q, s_a,
                          rowsum, (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" int qv_gpu_a8_variant_count(void) { return a8rows::kNumVariants; }

extern "C" const char *qv_gpu_a8_variant_name(int i)
{
    return i >= 0 && i < a8rows::kNumVariants ? a8rows::kVariants[i].name : nullptr;
}
