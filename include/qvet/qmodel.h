/* A quantized model (QoQ formats of NUMERICS.md) and its checkpoint file (docs/checkpoint.md).
 *
 * A qv_qmodel is an FP16 qv_model for the parts that stay in floating point (embeddings, RMSNorm
 * weights, LM head, config, tokenizer; after calibration transforms these may differ from the
 * original model's: rotated embeddings / lm_head, norms folded to 1) plus, per layer, the seven
 * linear layers q, k, v, o, gate, up, down in one of three formats:
 *
 *   w4a8-g128  packed UINT4 codes (qv_w4_pack layout) + FP16 s0 [N] + UINT8 s1 and sz1 per group
 *              of 128 along K, stored as the kernel loads them (qv_w4g128_pack_groupbytes)
 *   w4a8-chn   packed UINT4 codes + FP16 s_w [N] + FP16 scaled zero sz = fp16(s_w*z) [N]
 *   w8a8       INT8 [N][K] + FP16 s_w [N]
 *
 * plus an optional bias per linear (FP16 values, kept as FP32), the KV cache format (4 or 16
 * bits) and metadata. Every array is owned by the qv_qmodel. */
#ifndef QVET_QMODEL_H
#define QVET_QMODEL_H

#include <stdint.h>

#include "qvet/fp16.h"
#include "qvet/model.h"
#include "qvet/status.h"

#define QV_QMODEL_FORMAT_VERSION 1

typedef enum { QV_QFMT_W4A8_G128 = 0, QV_QFMT_W4A8_CHN, QV_QFMT_W8A8, QV_QFMT_COUNT } qv_qformat;
/* "w4a8-g128", "w4a8-chn", "w8a8" */
const char *qv_qformat_name(qv_qformat f);
/* QV_ERR_USAGE naming the accepted spellings when s is none of them. */
qv_status qv_qformat_parse(const char *s, qv_qformat *f);

/* The seven linear layers of a block, in checkpoint order. */
typedef enum { QV_QL_Q = 0, QV_QL_K, QV_QL_V, QV_QL_O, QV_QL_GATE, QV_QL_UP, QV_QL_DOWN, QV_QL_COUNT } qv_qlinear_id;
/* HF module name: "self_attn.q_proj", ..., "mlp.down_proj" */
const char *qv_qlinear_module(qv_qlinear_id id);

typedef struct {
    int N, K;           /* output channels, input channels (weight [N][K]) */
    qv_qformat fmt;
    uint8_t *qweight;   /* W4: packed N*K/2 bytes; w8a8: INT8 [N][K] (as bytes) */
    qv_fp16 *s0;        /* g128: level-1 scale [N] */
    uint8_t *s1, *sz1;  /* g128: packed group bytes [K/128][N] each */
    qv_fp16 *scale;     /* chn: s_w [N]; w8a8: s_w [N] */
    qv_fp16 *szero;     /* chn: sz [N] */
    float *bias;        /* [N] FP16 values, or NULL */
} qv_qlinear;

typedef struct {
    int format_version;
    qv_qformat fmt;
    int group_size;            /* 128 for g128, 0 otherwise */
    int kv_bits;               /* 4 or 16 */
    char *transforms_json;     /* JSON object: transforms applied with their parameters ("{}": none) */
    char calib_hash[40];       /* hex digest of the calibration text ("" for none) */
    char calib_hash_algo[16];  /* e.g. "fnv1a64" ("" for none) */
    long calib_samples;        /* calibration sequences (0 for none) */
    int calib_seqlen;          /* tokens per calibration sequence (0 for none) */
    char qvet_version[32];     /* qvet that wrote it */
    char method[32];           /* "rtn" or "qoq" */
} qv_qmodel_meta;

typedef struct {
    qv_model *model;           /* FP parts; linear weights may be absent (checkpoint) */
    int owns_model;            /* 1: closed with the qmodel */
    int n_layers;
    qv_qlinear *lin;           /* [n_layers * QV_QL_COUNT], lin[l * QV_QL_COUNT + id] */
    qv_qmodel_meta meta;
    char *path;                /* checkpoint path, or NULL when built in memory */
    unsigned char *fp_buf;     /* safetensors buffer behind an owned in-memory model (private) */
} qv_qmodel;

static inline qv_qlinear *qv_qmodel_linear(qv_qmodel *qm, int layer, qv_qlinear_id id)
{
    return &qm->lin[(size_t)layer * QV_QL_COUNT + id];
}

void qv_qmodel_close(qv_qmodel *qm);

/* Quantizes one [N][K] FP32 weight into `fmt` by NUMERICS.md's round-to-nearest rules.
 * clip (may be NULL): per output channel ratio in (0, 1]: the channel's range used for the scale
 * is multiplied by it (g128: level-1 max|w|; chn: lo and hi; w8a8: max|w|), values outside the
 * clipped range saturate at the end codes. A caller wanting another clipping granularity passes
 * pre-clipped weights. bias (may be NULL): [N], rounded to FP16. Shapes: N % 32 == 0 and
 * K % 32 == 0 for W4 (g128 also K % 128 == 0). */
qv_status qv_qlinear_quantize(const float *W, int N, int K, qv_qformat fmt, const float *clip,
                              const float *bias, qv_qlinear *out);
void qv_qlinear_free(qv_qlinear *l);
/* Dequantized FP32 weights [N][K] (what the integer GEMM multiplies, times its scales):
 * g128 s0*(u*s1 - sz1); chn s_w*u - sz (FP32); w8a8 s_w*w8. For ablations and tests. */
qv_status qv_qlinear_dequant(const qv_qlinear *l, float *W);
/* The logical arrays the integer GEMMs (ref/qoq) take: u [N][K] codes (W4), s1/sz1 [N][K/128]
 * (g128). Caller-allocated; unused pointers may be NULL. */
qv_status qv_qlinear_unpack(const qv_qlinear *l, uint8_t *u, uint8_t *s1, uint8_t *sz1);
/* Every range check of a loaded linear (checkpoint rules, docs/checkpoint.md); `what` names it. */
qv_status qv_qlinear_check(const qv_qlinear *l, const char *what);

/* Plain round-to-nearest quantization of every linear layer of `model` (no calibration). The
 * qmodel refers to `model` (not owned: it must outlive the qmodel). kv_bits: 4 or 16. */
qv_status qv_qmodel_quantize_rtn(const qv_model *model, qv_qformat fmt, int kv_bits,
                                 qv_qmodel **out);

/* What calibration (quant/) hands over: FP32 weights after its transforms. Any FP part left NULL
 * is taken from `base` (the original model). Per linear (index l * QV_QL_COUNT + id): W required;
 * bias and clip optional (arrays may be NULL, entries may be NULL). lm_head NULL and base tied:
 * stays tied to the (possibly replaced) embeddings. */
typedef struct {
    const float *embed;               /* [vocab][hidden] */
    const float *lm_head;             /* [vocab][hidden] */
    const float *final_norm;          /* [hidden] */
    const float *const *input_norm;   /* [L] of [hidden] */
    const float *const *post_norm;    /* [L] of [hidden] */
    const float *const *W;            /* [L * 7] of [N][K] */
    const float *const *bias;         /* [L * 7] of [N] */
    const float *const *clip;         /* [L * 7] of [N] per-channel ratios */
} qv_qmodel_fp32_src;

/* Builds a qmodel that owns its FP parts (copied as FP16). meta may be NULL (then method "qoq",
 * no transforms recorded); its strings are copied; fmt/kv_bits/group_size/version are set here. */
qv_status qv_qmodel_from_fp32(const qv_model *base, const qv_qmodel_fp32_src *src, qv_qformat fmt,
                              int kv_bits, const qv_qmodel_meta *meta, qv_qmodel **out);

/* Checkpoint: one safetensors file, written atomically (docs/checkpoint.md). */
qv_status qv_qmodel_write(const qv_qmodel *qm, const char *path);
/* Opens and checks everything; QV_ERR_INPUT naming the file and tensor when anything is wrong. */
qv_status qv_qmodel_open(const char *path, qv_qmodel **out);

/* 64-bit FNV-1a of a text, as 16 hex digits (the calibration text hash of the metadata). */
void qv_qmodel_hash_text(const void *data, size_t n, char out[17]);
/* The metadata as the JSON text stored under "qvet" (malloc'd). */
char *qv_qmodel_meta_json(const qv_qmodel_meta *m);
/* Parses the "qvet" metadata text (NUL-terminated; NULL: the entry is absent) of the checkpoint
 * at path (named in messages). On QV_OK the caller frees m->transforms_json (NULL otherwise). */
qv_status qv_qmodel_meta_parse(const char *text, const char *path, qv_qmodel_meta *m);

#endif
