/* The GPU engines of a build without CUDA (gpu/engine_gpu.c with CUDA): registered by name so that
 * "gpu-fp16" / "gpu-qoq" are known engines, and opening one answers QV_ERR_UNSUPPORTED, "no GPU". */
#include "qvet/engine.h"

static qv_status open_fp16(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    (void)m, (void)o, (void)out;
    return qv_fail(QV_ERR_UNSUPPORTED, "gpu-fp16: no GPU (qvet was built without CUDA)");
}

static qv_status open_qoq(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    (void)m, (void)o, (void)out;
    return qv_fail(QV_ERR_UNSUPPORTED, "gpu-qoq: no GPU (qvet was built without CUDA)");
}

const qv_engine_vtable qv_gpu_fp16_vtable = {"gpu-fp16", open_fp16, NULL, NULL, NULL, NULL};
const qv_engine_vtable qv_gpu_qoq_vtable = {"gpu-qoq", open_qoq, NULL, NULL, NULL, NULL};
