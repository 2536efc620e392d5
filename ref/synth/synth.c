/* The built-in synthetic Llama (include/qvet/synth.h). Deterministic: every tensor draws from
 * its own splitmix64 stream seeded by (seed, tensor name), so a tensor does not depend on the
 * order of generation. The outlier structure (docs/synthetic.md):
 *  1. massive residual channels: a few hidden channels carry a large signed constant in every
 *     token's embedding (~40x the typical magnitude), as real LLMs' residual streams do; the
 *     norms' weights on them are small (0.25), as trained models learn;
 *  2. heavy-tailed weights: Student-t (4 dof) entries with log-normal row scales;
 *  3. outlier key channels: per KV head, two RoPE pairs (j, j + d/2) of W_k rows are scaled up
 *     x12 and the matching W_q rows of the group's query heads down /12, so q.k keeps its
 *     scale while the keys' magnitudes concentrate in those channels (SmoothAttention's target);
 *  4. outlier MLP neurons: a few intermediate neurons have x4 gate and up rows, so the
 *     down_proj input (silu(g)*u) has channels ~16x the rest (smoothing's target). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qvet/fileio.h"
#include "qvet/fp16.h"
#include "qvet/safetensors.h"
#include "qvet/synth.h"

typedef struct {
    int hidden, inter, layers, heads, kv_heads, head_dim, vocab, max_pos;
    double rope_theta;
    int llama3_rope;
} synth_shape;

static const synth_shape qv_synth_shapes[] = {
    [QV_SYNTH_TINY] = {256, 768, 4, 8, 2, 32, 512, 2048, 10000.0, 0},
    [QV_SYNTH_SMALL] = {512, 1536, 6, 8, 2, 64, 512, 4096, 10000.0, 0},
    /* Llama-3-8B layer shapes (qkv 6144x4096, o 4096x4096, gate/up 14336x4096, down
     * 4096x14336), two layers, small vocabulary: for kernel shape coverage */
    [QV_SYNTH_LLAMA3_8B_SHAPE] = {4096, 14336, 2, 32, 8, 128, 512, 8192, 500000.0, 1},
};

static const char *qv_synth_names[] = {"tiny", "small", "llama3-8b-shape"};

int qv_synth_preset_from_name(const char *name, qv_synth_preset *p)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, qv_synth_names[i]) == 0) {
            *p = (qv_synth_preset)i;
            return 0;
        }
    return -1;
}

const char *qv_synth_preset_name(qv_synth_preset p)
{
    return (unsigned)p < 3 ? qv_synth_names[p] : "?";
}

/* ---- deterministic random streams ---- */
typedef struct { uint64_t s; } rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng_t *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53; }

static double rng_normal(rng_t *r)
{
    return sqrt(-2.0 * log(rng_uniform(r))) * cos(6.283185307179586 * rng_uniform(r));
}

/* Student-t with 4 degrees of freedom, scaled to unit variance (var of t4 is 2). A chi-square
 * with 4 dof is the sum of two exponentials with mean 2, i.e. -2 ln(U1 U2): one log instead
 * of four normals. */
static double rng_t4(rng_t *r)
{
    double z = rng_normal(r);
    double c = -2.0 * log(rng_uniform(r) * rng_uniform(r));
    return z / sqrt(c / 4.0) / sqrt(2.0);
}

static rng_t stream(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a over the name, mixed with the seed */
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    rng_t r = {h};
    rng_next(&r);
    return r;
}

/* ---- tensor builders ---- */
typedef struct {
    qv_st_writer *w;
    qv_fp16 *buf;
    qv_status st;
} builder;

static void emit(builder *b, const char *name, const float *x, int rows, int cols)
{
    if (b->st != QV_OK) return;
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++) b->buf[i] = qv_fp32_to_fp16(x[i]);
    int64_t shape[2] = {rows, cols};
    b->st = qv_st_writer_add(b->w, name, QV_F16, rows == 1 ? 1 : 2, rows == 1 ? shape + 1 : shape, b->buf);
}

/* Heavy-tailed [rows, cols] matrix with std `std` and log-normal row scales. */
static void fill_linear(float *x, int rows, int cols, double std, uint64_t seed, const char *name)
{
    rng_t r = stream(seed, name);
    for (int i = 0; i < rows; i++) {
        double row_scale = exp(0.3 * rng_normal(&r) - 0.045); /* E[scale^2] ~ 1 */
        for (int j = 0; j < cols; j++) x[(size_t)i * cols + j] = (float)(std * row_scale * rng_t4(&r));
    }
}

/* The massive channels: fixed per seed, away from each other. */
static void massive_channels(const synth_shape *s, uint64_t seed, int ch[2])
{
    rng_t r = stream(seed, "massive-channels");
    ch[0] = (int)(rng_next(&r) % (uint64_t)(s->hidden / 2));
    ch[1] = s->hidden / 2 + (int)(rng_next(&r) % (uint64_t)(s->hidden / 2));
}

static char *config_json(const synth_shape *s)
{
    char rope[256] = "";
    if (s->llama3_rope)
        snprintf(rope, sizeof rope,
                 "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                 "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192},\n");
    char *out = malloc(2048);
    if (!out) return NULL;
    snprintf(out, 2048,
             "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-05,\n"
             "  \"rope_theta\": %.1f,\n%s  \"tie_word_embeddings\": false,\n  \"attention_bias\": false,\n"
             "  \"mlp_bias\": false,\n  \"hidden_act\": \"silu\",\n  \"bos_token_id\": 0,\n  \"eos_token_id\": 1,\n"
             "  \"torch_dtype\": \"float16\",\n  \"qvet_synthetic\": true\n}\n",
             s->hidden, s->inter, s->layers, s->heads, s->kv_heads, s->head_dim, s->vocab, s->max_pos,
             s->rope_theta, rope);
    return out;
}

qv_status qv_synth_build(qv_synth_preset p, uint64_t seed, qv_synth_files *out)
{
    memset(out, 0, sizeof *out);
    if ((unsigned)p > QV_SYNTH_LLAMA3_8B_SHAPE) return qv_fail(QV_ERR_USAGE, "unknown synthetic preset %d", (int)p);
    const synth_shape *s = &qv_synth_shapes[p];
    const int H = s->hidden, I = s->inter, D = s->head_dim, NH = s->heads, NKV = s->kv_heads, V = s->vocab;
    size_t maxn = (size_t)I * (size_t)H;
    if ((size_t)V * H > maxn) maxn = (size_t)V * H;
    float *x = malloc(maxn * sizeof(float));
    builder b = {qv_st_writer_new(), malloc(maxn * sizeof(qv_fp16)), QV_OK};
    if (!x || !b.w || !b.buf) {
        free(x); free(b.buf); qv_st_writer_free(b.w);
        return qv_fail(QV_ERR_NOMEM, "out of memory building the synthetic model");
    }
    int mc[2];
    massive_channels(s, seed, mc);
    const double resid = 1.0 / sqrt(2.0 * s->layers); /* keeps the residual stream's growth tame */
    char name[128];

    /* embeddings: unit-variance rows plus the massive channels' signed constants */
    {
        rng_t r = stream(seed, "model.embed_tokens.weight");
        for (int v = 0; v < V; v++)
            for (int j = 0; j < H; j++) x[(size_t)v * H + j] = (float)rng_normal(&r);
        for (int v = 0; v < V; v++) {
            x[(size_t)v * H + mc[0]] = (float)(40.0 + 2.0 * rng_normal(&r));
            x[(size_t)v * H + mc[1]] = (float)(-32.0 + 2.0 * rng_normal(&r));
        }
        emit(&b, "model.embed_tokens.weight", x, V, H);
    }
    for (int l = 0; l < s->layers && b.st == QV_OK; l++) {
        const double sd = 1.0 / sqrt((double)H);
        /* norms: around 1, small on the massive channels */
        for (int which = 0; which < 2; which++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, which ? "post_attention_layernorm" : "input_layernorm");
            rng_t r = stream(seed, name);
            for (int j = 0; j < H; j++) x[j] = (float)(1.0 + 0.1 * rng_normal(&r));
            x[mc[0]] = x[mc[1]] = 0.25f;
            emit(&b, name, x, 1, H);
        }
        /* key outlier channels: two RoPE pairs per KV head */
        int kch[64][2];
        {
            snprintf(name, sizeof name, "model.layers.%d.key-outliers", l);
            rng_t r = stream(seed, name);
            for (int g = 0; g < NKV; g++) {
                kch[g][0] = (int)(rng_next(&r) % (uint64_t)(D / 2));
                kch[g][1] = (kch[g][0] + 1 + (int)(rng_next(&r) % (uint64_t)(D / 2 - 1))) % (D / 2);
            }
        }
        const float kboost = 12.0f;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", l);
        fill_linear(x, NH * D, H, sd, seed, name);
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / NKV);
            for (int t = 0; t < 2; t++)
                for (int half = 0; half < 2; half++) {
                    int row = h * D + kch[g][t] + half * D / 2;
                    for (int j = 0; j < H; j++) x[(size_t)row * H + j] /= kboost;
                }
        }
        emit(&b, name, x, NH * D, H);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj.weight", l);
        fill_linear(x, NKV * D, H, sd, seed, name);
        for (int g = 0; g < NKV; g++)
            for (int t = 0; t < 2; t++)
                for (int half = 0; half < 2; half++) {
                    int row = g * D + kch[g][t] + half * D / 2;
                    for (int j = 0; j < H; j++) x[(size_t)row * H + j] *= kboost;
                }
        emit(&b, name, x, NKV * D, H);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj.weight", l);
        fill_linear(x, NKV * D, H, sd, seed, name);
        emit(&b, name, x, NKV * D, H);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        fill_linear(x, H, NH * D, resid / sqrt((double)NH * D), seed, name);
        emit(&b, name, x, H, NH * D);
        /* MLP with a few outlier neurons */
        int on[3];
        {
            snprintf(name, sizeof name, "model.layers.%d.mlp-outliers", l);
            rng_t r = stream(seed, name);
            for (int t = 0; t < 3; t++) on[t] = (int)(rng_next(&r) % (uint64_t)I);
        }
        for (int which = 0; which < 2; which++) {
            snprintf(name, sizeof name, "model.layers.%d.mlp.%s_proj.weight", l, which ? "up" : "gate");
            fill_linear(x, I, H, sd, seed, name);
            for (int t = 0; t < 3; t++)
                for (int j = 0; j < H; j++) x[(size_t)on[t] * H + j] *= 4.0f;
            emit(&b, name, x, I, H);
        }
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        fill_linear(x, H, I, resid / sqrt((double)I), seed, name);
        emit(&b, name, x, H, I);
    }
    if (b.st == QV_OK) {
        rng_t r = stream(seed, "model.norm.weight");
        for (int j = 0; j < H; j++) x[j] = (float)(1.0 + 0.1 * rng_normal(&r));
        x[mc[0]] = x[mc[1]] = 0.25f;
        emit(&b, "model.norm.weight", x, 1, H);
        /* LM head: a little sharper than 1/sqrt(H) so the next-token distributions are peaked */
        fill_linear(x, V, H, 3.0 / sqrt((double)H), seed, "lm_head.weight");
        emit(&b, "lm_head.weight", x, V, H);
    }
    free(x);
    free(b.buf);
    char meta[64];
    snprintf(meta, sizeof meta, "%llu", (unsigned long long)seed);
    if (b.st == QV_OK) b.st = qv_st_writer_meta(b.w, "qvet_synthetic_preset", qv_synth_names[p]);
    if (b.st == QV_OK) b.st = qv_st_writer_meta(b.w, "qvet_synthetic_seed", meta);
    if (b.st == QV_OK) b.st = qv_st_writer_to_buffer(b.w, &out->safetensors, &out->safetensors_size);
    qv_st_writer_free(b.w);
    if (b.st != QV_OK) return b.st;
    out->config_json = config_json(s);
    qv_status st = qv_synth_tokenizer_json(V, &out->tokenizer_json);
    if (st != QV_OK || !out->config_json) {
        qv_synth_files_free(out);
        return st != QV_OK ? st : qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    return QV_OK;
}

void qv_synth_files_free(qv_synth_files *f)
{
    free(f->config_json);
    free(f->safetensors);
    free(f->tokenizer_json);
    memset(f, 0, sizeof *f);
}

qv_status qv_synth_write(qv_synth_preset p, uint64_t seed, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && !qv_is_dir(dir))
        return qv_fail(QV_ERR_IO, "%s: cannot create folder", dir);
    qv_synth_files f;
    QV_TRY(qv_synth_build(p, seed, &f));
    const char *names[3] = {"config.json", "model.safetensors", "tokenizer.json"};
    const void *data[3] = {f.config_json, f.safetensors, f.tokenizer_json};
    size_t size[3] = {strlen(f.config_json), f.safetensors_size, strlen(f.tokenizer_json)};
    qv_status st = QV_OK;
    for (int i = 0; i < 3 && st == QV_OK; i++) {
        char *path = qv_path_join(dir, names[i]);
        st = path ? qv_write_file_atomic(path, data[i], size[i]) : QV_ERR_NOMEM;
        free(path);
    }
    qv_synth_files_free(&f);
    return st;
}

qv_status qv_synth_open(qv_synth_preset p, uint64_t seed, qv_model **out)
{
    qv_synth_files f;
    QV_TRY(qv_synth_build(p, seed, &f));
    char label[96];
    snprintf(label, sizeof label, "<synthetic:%s:%llu>", qv_synth_names[p], (unsigned long long)seed);
    return qv_model_open_buffers(label, f.config_json, f.safetensors, f.safetensors_size, f.tokenizer_json, out);
}
