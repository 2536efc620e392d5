/* qv_kernel_plugin: the C ABI through which a shared library brings its own implementation of
 * qvet's GEMM kernels, so that `qvet kernels --plugin LIB` and `qvet gate --plugin LIB` run the
 * whole case matrix (and the overflow corpus) against it with the exactness rules qvet's own
 * kernels meet. docs/byo.md section 6 has a minimal plugin and the commands.
 *
 * This header is self-contained plain C (C99 or later, or C++): a plugin needs nothing else from
 * qvet to build. Export one function, qv_kernel_plugin_register (below), from a shared library.
 *
 * ---- The contract of every op ----
 * The ops are the three GEMMs of include/qvet/gpu_gemm.h with the same operands, layouts and
 * numerics, but on HOST memory (a GPU implementation copies in and out itself):
 *   x      [M, K] int8   activation codes in [-127, 127], row-major
 *   sa     [M]    float  per-token activation scale s_a
 *   rowsum [M]    int32  sum_k x[m, k] (per-channel W4: the zero-point correction operand)
 *   w8     [N, K] int8   W8A8 weights, row-major
 *   w4     N*K/2 bytes   UINT4 codes in QServe's compute-aware reorder (docs/layout.md): 32x32
 *                        tiles of 512 bytes, tile (n/32, k/32) at byte ((n/32)*(K/32) + k/32)*512;
 *                        inside it, with n%32 = 16a + 8b + c and k%32 = 16d + 4e + f, the code
 *                        sits at byte 64c + 16e + 8d + 4b + f, low nibble if a == 0, else high
 *   sw, sz [N]    fp16   per-channel scale s_w and scaled zero sz = fp16(s_w * z) (IEEE binary16
 *                        bits in a uint16_t); W8A8 uses sw only
 *   s0     [N]    fp16   g128 level-1 scale
 *   s1,sz1 [K/128][N] u8 g128 level-2 scale (1..16) and scaled zero z*s1, group-major, and inside
 *                        each block of 32 channels position 4c + j holds channel 8j + c (c < 8)
 *   y      [M, N] fp16   output bits
 *   acc    [M, N] int32  the debug entries (_acc): the INT32 accumulators, no epilogue
 * Integer part (bit-exact): g128 dequantizes w8' = u*s1 - sz1 (always in [-128, 127] for qvet's
 * inputs); acc[m][n] = sum_k x[m][k] * w[n][k] with w = w8 (W8A8), u (per channel) or w8' (g128).
 * Epilogue (bit-exact: FP32, round to nearest even, each operation rounded, no fused multiply-add
 * -- compile with -ffp-contract=off or equivalent):
 *   W8A8, g128:  v = (sa[m] * float(s[n])) * (float)acc         with s = sw (W8A8) or s0 (g128)
 *   per channel: v = sa[m] * (float(sw[n]) * (float)acc - float(sz[n]) * (float)rowsum[m])
 * Output: y = fp16(v) rounded to nearest even, except that a finite v beyond the FP16 range is
 * written as +-65504 (0x7bff / 0xfbff); *n_sat (set to 0 by qvet before the call) must be
 * increased by the number of outputs with |v| > 65504: an overflow is a finding qvet counts, and
 * the count must match the reference's.
 * Shapes qvet passes (those the GPU kernels accept): M >= 1; N % 8 == 0 (W4: N % 32 == 0);
 * K >= 32, K % 32 == 0 (g128: K % 128 == 0 and group == 128); K small enough that no INT32
 * accumulator overflows (qvet/qoq.h QV_QOQ_*_KMAX).
 *
 * ---- Ownership, memory, threading ----
 * - Every array is allocated by qvet for the duration of one call, 64-byte aligned, exactly as
 *   large as its shape says (reading past the end is a bug ASan builds will catch). Inputs are
 *   const: qvet checks after each call that they are unchanged. Outputs are poisoned before the
 *   call (acc 0xA5 bytes, y 0xFFFF = NaN), so an element left unwritten is a mismatch. Do not keep
 *   a pointer after returning.
 * - The qv_kernel_plugin struct is qvet's; the plugin fills it in during registration. The strings
 *   and the ctx it points to belong to the plugin and must stay valid until destroy(ctx) returns
 *   (called once, before the library is closed; may be NULL). When the registered abi_version is not
 *   qvet's, qvet cannot trust the struct's layout and does not call destroy: check
 *   host_abi_version before allocating anything. (No name or no op: destroy is called.)
 * - qvet calls register once after dlopen, then the ops one at a time from that same thread,
 *   never concurrently; a plugin needs no locking, and may use threads of its own inside a call.
 *
 * ---- Errors ----
 * Each function returns QV_KP_OK (0) or one of the QV_KP_ERR_* codes, and on error writes a
 * NUL-terminated message (at most err_cap bytes including the NUL; err_cap >= 256) into err. A
 * failing op makes its case an ERROR line (the run fails, exit 1), never a crash of qvet; a
 * failing register, a wrong abi_version, a NULL name or no op at all make qvet exit 2 naming the
 * library. An op left NULL is not implemented: its cases are reported as skipped. A kernel may
 * implement its GEMM without the _acc entry (only the outputs are compared) or the reverse. */
#ifndef QVET_KERNEL_PLUGIN_H
#define QVET_KERNEL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the struct, a signature or the contract above changes. */
#define QV_KERNEL_PLUGIN_ABI_VERSION 1u
/* The symbol qvet looks up with dlsym. */
#define QV_KERNEL_PLUGIN_ENTRY "qv_kernel_plugin_register"

enum {
    QV_KP_OK = 0,
    QV_KP_ERR_ARGS = 1,     /* arguments outside what the plugin accepts */
    QV_KP_ERR_NOMEM = 2,    /* allocation failed */
    QV_KP_ERR_DEVICE = 3,   /* the device or runtime under the plugin failed */
    QV_KP_ERR_INTERNAL = 4, /* anything else */
    QV_KP_ERR_ABI = 5       /* register only: the plugin cannot serve host_abi_version */
};

typedef struct qv_kernel_plugin {
    uint32_t abi_version; /* set to QV_KERNEL_PLUGIN_ABI_VERSION */
    const char *name;     /* short name printed in every case line, e.g. "acme-triton-0.3" */
    void *ctx;            /* passed back to every op and to destroy; may be NULL */

    int (*w8a8_gemm)(void *ctx, const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw,
                     uint16_t *y, uint32_t *n_sat, int M, int N, int K, char *err, size_t err_cap);
    int (*w8a8_gemm_acc)(void *ctx, const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K,
                         char *err, size_t err_cap);

    int (*w4a8_chn_gemm)(void *ctx, const int8_t *x, const float *sa, const int32_t *rowsum, const uint8_t *w4,
                         const uint16_t *sw, const uint16_t *sz, uint16_t *y, uint32_t *n_sat, int M, int N,
                         int K, char *err, size_t err_cap);
    int (*w4a8_chn_gemm_acc)(void *ctx, const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N, int K,
                             char *err, size_t err_cap);

    int (*w4a8_g128_gemm)(void *ctx, const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                          const uint8_t *s1, const uint8_t *sz1, uint16_t *y, uint32_t *n_sat, int M, int N,
                          int K, int group, char *err, size_t err_cap);
    int (*w4a8_g128_gemm_acc)(void *ctx, const int8_t *x, const uint8_t *w4, const uint8_t *s1,
                              const uint8_t *sz1, int32_t *acc, int M, int N, int K, int group, char *err,
                              size_t err_cap);

    void (*destroy)(void *ctx);
} qv_kernel_plugin;

/* The entry point the library exports. qvet zeroes *plugin and calls it once; the plugin fills
 * it in (abi_version first) and returns QV_KP_OK, or an error code and a message in err.
 * host_abi_version is the qvet side's QV_KERNEL_PLUGIN_ABI_VERSION: a plugin that cannot serve it
 * returns QV_KP_ERR_ABI. */
typedef int (*qv_kernel_plugin_register_fn)(uint32_t host_abi_version, qv_kernel_plugin *plugin, char *err,
                                            size_t err_cap);

#if defined(__GNUC__) || defined(__clang__)
#define QV_KP_EXPORT __attribute__((visibility("default")))
#else
#define QV_KP_EXPORT
#endif

QV_KP_EXPORT int qv_kernel_plugin_register(uint32_t host_abi_version, qv_kernel_plugin *plugin, char *err,
                                           size_t err_cap);

#ifdef __cplusplus
}
#endif

#endif
