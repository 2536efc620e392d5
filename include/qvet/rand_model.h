/* Random-weight Llama models built in memory (no files): for engine tests and benchmarks of
 * any shape. Weights are drawn from a seeded generator, stored in the requested dtype. */
#ifndef QVET_RAND_MODEL_H
#define QVET_RAND_MODEL_H

#include <stdint.h>

#include "qvet/model.h"

typedef struct {
    int hidden, inter, layers, heads, kv_heads, head_dim, vocab, max_pos;
    qv_dtype dtype;      /* F32, F16 or BF16 */
    int tied;            /* lm_head is the embed view */
    int qkv_bias;        /* q/k/v biases */
    qv_rope_type rope;   /* llama3: factor 8, low 1, high 4, original max_pos / 4 */
    double rope_theta;
    uint64_t seed;
} qv_rand_model_spec;

/* Linear weights ~ N(0, 1/in), embeddings ~ N(0, 1), norms 1 + N(0, 0.1^2), biases N(0, 0.1^2):
 * activations stay O(1) through the depth, as in trained models. */
qv_status qv_rand_model_create(const qv_rand_model_spec *s, qv_model **out);
void qv_rand_model_free(qv_model *m);

#endif
