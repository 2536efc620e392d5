/* Fused kernels and attention of a build without CUDA (include/qvet/gpu_kernels.h): every entry
 * answers QV_ERR_UNSUPPORTED, "no GPU". */
#include "qvet/gpu_kernels.h"

#define QV_NOGPU_K(what) return qv_fail(QV_ERR_UNSUPPORTED, "%s: no GPU (qvet was built without CUDA)", what)

qv_status qv_gpu_quant_a8(const uint16_t *x, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, void *stream)
{
    (void)x; (void)M; (void)K; (void)q; (void)s_a; (void)rowsum; (void)stream;
    QV_NOGPU_K("quant_a8");
}
qv_status qv_gpu_rmsnorm_a8(const float *x, const float *w, float eps, int M, int K, int8_t *q, float *s_a,
                            int32_t *rowsum, void *stream)
{
    (void)x; (void)w; (void)eps; (void)M; (void)K; (void)q; (void)s_a; (void)rowsum; (void)stream;
    QV_NOGPU_K("rmsnorm_a8");
}
qv_status qv_gpu_rmsnorm_f16(const float *x, const float *w, float eps, int M, int K, uint16_t *y, void *stream)
{
    (void)x; (void)w; (void)eps; (void)M; (void)K; (void)y; (void)stream;
    QV_NOGPU_K("rmsnorm_f16");
}
qv_status qv_gpu_silu_mul_a8(const uint16_t *gu, int M, int I, int8_t *q, float *s_a, int32_t *rowsum, void *stream)
{
    (void)gu; (void)M; (void)I; (void)q; (void)s_a; (void)rowsum; (void)stream;
    QV_NOGPU_K("silu_mul_a8");
}
qv_status qv_gpu_silu_mul_f16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    (void)gu; (void)M; (void)I; (void)y; (void)stream;
    QV_NOGPU_K("silu_mul_f16");
}
qv_status qv_gpu_rmsnorm_bf16(const float *x, const float *w, float eps, int M, int K, uint16_t *y, void *stream)
{
    (void)x; (void)w; (void)eps; (void)M; (void)K; (void)y; (void)stream;
    QV_NOGPU_K("rmsnorm_bf16");
}
qv_status qv_gpu_silu_mul_bf16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    (void)gu; (void)M; (void)I; (void)y; (void)stream;
    QV_NOGPU_K("silu_mul_bf16");
}
size_t qv_gpu_kv_page_bytes(qv_kv_fmt fmt, int n_kv_heads, int head_dim, int page_size)
{
    size_t hp = (size_t)n_kv_heads * (size_t)page_size;
    return fmt != QV_KV_FMT_KV4 ? hp * (size_t)head_dim * 2 : hp * (size_t)(head_dim / 2) + hp * 4;
}
qv_status qv_gpu_rope_kv_write(const uint16_t *qkv, int T, int nh, const int32_t *pos, const int32_t *slot,
                               const float *cos_t, const float *sin_t, uint16_t *q_out, uint16_t *k_out,
                               uint16_t *v_out, const qv_gpu_kv_cache *cache, void *stream)
{
    (void)qkv; (void)T; (void)nh; (void)pos; (void)slot; (void)cos_t; (void)sin_t; (void)q_out; (void)k_out;
    (void)v_out; (void)cache; (void)stream;
    QV_NOGPU_K("rope_kv_write");
}
size_t qv_gpu_attn_ws_bytes(int R, int nh, int head_dim, int max_ctx)
{
    size_t nc = (size_t)(max_ctx + QV_ATTN_CHUNK - 1) / QV_ATTN_CHUNK;
    return (size_t)R * (size_t)nh * nc * ((size_t)head_dim + 2) * sizeof(float);
}
int qv_gpu_attention_uses_mma(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache)
{
    (void)a, (void)cache;
    return 0;
}

int qv_gpu_attention_uses_tiled(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache)
{
    (void)a, (void)cache;
    return 0;
}

qv_status qv_gpu_attention(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache, void *stream)
{
    (void)a; (void)cache; (void)stream;
    QV_NOGPU_K("attention");
}
qv_status qv_bench_attn(const char *json_path)
{
    (void)json_path;
    QV_NOGPU_K("bench_attn");
}
qv_status qv_bench_attn_into(struct cJSON *root, const char *filter)
{
    (void)root; (void)filter;
    QV_NOGPU_K("bench_attn");
}
int qv_gpu_a8_variant_count(void) { return 1; }
const char *qv_gpu_a8_variant_name(int i) { return i == 0 ? "default" : NULL; }
