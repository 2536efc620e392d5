/* A Hugging Face Llama-family model: config.json, safetensors weights (memory-mapped, in their
 * stored dtype), tokenizer.json. Loading validates everything against the config (shapes,
 * missing tensors, dtypes, NaN/Inf) and fails with a message naming the file and tensor. */
#ifndef QVET_MODEL_H
#define QVET_MODEL_H

#include "qvet/safetensors.h"
#include "qvet/tensor.h"

typedef enum { QV_ROPE_DEFAULT = 0, QV_ROPE_LLAMA3, QV_ROPE_LINEAR } qv_rope_type;

typedef struct {
    char model_type[32];   /* "llama", "mistral", "qwen2", ... */
    int hidden_size;
    int intermediate_size;
    int num_layers;        /* num_hidden_layers */
    int num_heads;         /* num_attention_heads */
    int num_kv_heads;      /* num_key_value_heads (defaults to num_heads) */
    int head_dim;          /* head_dim (defaults to hidden_size / num_heads) */
    int vocab_size;
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    qv_rope_type rope_type;            /* rope_scaling / rope_parameters */
    double rope_factor;                /* llama3 / linear */
    double rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int rope_original_max_pos;         /* llama3: original_max_position_embeddings */
    int tie_word_embeddings;
    int attention_bias;    /* q/k/v biases (Qwen2 has them without the flag) */
    int o_bias;            /* o_proj bias present */
    int mlp_bias;
    qv_dtype torch_dtype;  /* F16 / BF16 / F32 */
    int bos_token_id, eos_token_id; /* -1 if absent */
} qv_config;

/* Parses config.json text; `path` is used in messages. Unknown fields are ignored; missing
 * required ones, wrong types, absurd values (<= 0, head_dim*heads inconsistent, > 1<<24) fail. */
qv_status qv_config_parse(const char *json, size_t len, const char *path, qv_config *cfg);
qv_status qv_config_load(const char *path, qv_config *cfg);

typedef struct {
    /* [out, in] as stored (HF layout); views into the mapped safetensors */
    qv_tensor wq, wk, wv, wo, w_gate, w_up, w_down;
    qv_tensor bq, bk, bv, bo;        /* .data == NULL when absent */
    qv_tensor input_norm, post_norm; /* [hidden] */
} qv_layer_weights;

struct qv_tok; /* include/qvet/tokenizer.h */

typedef struct {
    char *dir;                 /* folder it was loaded from, or "<synthetic:PRESET:SEED>" */
    qv_config cfg;
    qv_tensor embed;           /* [vocab, hidden] */
    qv_tensor final_norm;      /* [hidden] */
    qv_tensor lm_head;         /* [vocab, hidden]; the embed view when tied */
    qv_layer_weights *layers;  /* cfg.num_layers */
    qv_st_set *weights;
    struct qv_tok *tok;        /* NULL if the folder has no tokenizer.json; owned */
    void *owned;               /* buffers owned by the model (synthetic) */
    long long n_params;        /* unique parameters (tied lm_head counted once) */
    /* Where the tokenizer comes from (the tokenizer loader reads one of them): tokenizer.json
     * text handed to qv_model_open_buffers (owned), or the folder's tokenizer.json path
     * (owned). Both NULL: the model has no tokenizer. */
    char *tokenizer_json;
    char *tokenizer_path;
    char *config_path;         /* for messages: DIR/config.json or LABEL/config.json */
    int n_used_tensors;        /* tensors bound above (tied lm_head counted once) */
} qv_model;

/* Opens a HF folder. */
qv_status qv_model_open(const char *dir, qv_model **out);
/* Opens from in-memory files (the built-in synthetic model); takes ownership of the buffers. */
qv_status qv_model_open_buffers(const char *label, char *config_json, unsigned char *st_buf,
                                size_t st_size, char *tokenizer_json, qv_model **out);
void qv_model_close(qv_model *m);

#endif
