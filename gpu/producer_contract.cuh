// The row producers' one shape contract (gpu/fused_quant.cu: A8; gpu/fused_f16.cu: FP16/BF16):
// at least one row of at least one element, rows at most 48 Ki elements (the widest row any
// producer takes; include/qvet/gpu_kernels.h). Checked at entry, before any device work.
#pragma once

#include "qv_cuda_check.h"

constexpr int qv_producer_max_k = 48 * 1024;

static inline qv_status qv_producer_check_mk(const char *what, int M, int K)
{
    if (M < 1 || K < 1 || K > qv_producer_max_k)
        return qv_fail(QV_ERR_USAGE, "%s: rows %d and width %d must be >= 1 (width <= %d)", what, M, K,
                       qv_producer_max_k);
    return QV_OK;
}
