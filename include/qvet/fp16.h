/* FP16 / BF16 <-> FP32 conversion, IEEE round-to-nearest-even, independent of the host's
 * rounding mode and of compiler support for _Float16. FP32 -> FP16 overflows to +-Inf as IEEE
 * does (the kernels' *saturating* conversion is qv_fp32_to_fp16_sat); NaN stays NaN (quiet). */
#ifndef QVET_FP16_H
#define QVET_FP16_H

#include <stdint.h>

typedef uint16_t qv_fp16; /* raw IEEE binary16 bits */
typedef uint16_t qv_bf16; /* raw bfloat16 bits */

/* The 16-bit float type of gpu-fp16's weights and activations (engine option `dtype`, CLI
 * `--dtype fp16|bf16`). Both are stored as raw 16-bit words; the type says how to read them. */
typedef enum { QV_DTYPE_FP16 = 0, QV_DTYPE_BF16 = 1 } qv_dtype16;
/* "fp16" / "bf16"; "?" for other values. */
const char *qv_dtype16_name(qv_dtype16 t);
/* 0 and sets *t for "fp16" / "bf16"; -1 otherwise. */
int qv_dtype16_parse(const char *s, qv_dtype16 *t);

float qv_fp16_to_fp32(qv_fp16 h);
qv_fp16 qv_fp32_to_fp16(float f);
/* As the GPU epilogues convert: finite values beyond +-65504 become +-65504 (NUMERICS.md). */
qv_fp16 qv_fp32_to_fp16_sat(float f);
float qv_bf16_to_fp32(qv_bf16 h);
qv_bf16 qv_fp32_to_bf16(float f);
/* fp32 value rounded through fp16 and back ("fp16(x)" in NUMERICS.md). */
float qv_round_fp16(float f);
/* fp32 value rounded through bf16 and back (RNE; NaN stays NaN, quiet; overflow to +-Inf). */
float qv_round_bf16(float f);
/* The 16-bit word of f in type t (RNE, IEEE overflow), and back. */
uint16_t qv_fp32_to_dtype16(qv_dtype16 t, float f);
float qv_dtype16_to_fp32(qv_dtype16 t, uint16_t h);

void qv_fp16_to_fp32_n(const qv_fp16 *src, float *dst, long n);
void qv_bf16_to_fp32_n(const qv_bf16 *src, float *dst, long n);
void qv_fp32_to_fp16_n(const float *src, qv_fp16 *dst, long n);

#endif
