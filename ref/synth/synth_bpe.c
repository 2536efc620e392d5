/* A deterministic byte-level BPE trainer for the synthetic model's tokenizer.json (Llama-3
 * style: the Llama-3 pre-tokenizer regex, then the GPT-2 byte->unicode map, merges by rank).
 * Training pre-splits words with a simple rule (letters, digits, other, whitespace, each with
 * an optional leading space); that only decides which merges are learnt, and any merge list is
 * a valid BPE, so it need not equal the regex used when encoding. Ties between equally frequent
 * pairs go to the smaller (left id, right id) so the result never depends on hash order. */
#include <cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/synth.h"

extern const char qv_synth_training_text[];

#define QV_SYNTH_NSPECIAL 2
#define QV_SYNTH_BYTE0 QV_SYNTH_NSPECIAL

static const char *qv_llama3_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* GPT-2's byte -> unicode code point map: printable bytes map to themselves, the rest to 256+n. */
static unsigned byte_to_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256 + n;
}

static size_t put_utf8(unsigned cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2; /* code points here are < 0x800 */
}

typedef struct { int *ids; int n; int count; } word_t;
typedef struct { int a, b; } pair_t;

static int char_class(unsigned char c)
{
    if (isalpha(c) || c >= 0x80) return 1;
    if (isdigit(c)) return 2;
    if (isspace(c)) return 3;
    return 4;
}

/* Splits the text into words and counts them (linear search: the text is a few KB). */
static int split_words(const char *text, word_t **out)
{
    int cap = 256, n = 0;
    word_t *w = calloc((size_t)cap, sizeof *w);
    size_t len = strlen(text), i = 0;
    while (i < len && w) {
        size_t j = i;
        if (text[j] == ' ' && j + 1 < len && char_class((unsigned char)text[j + 1]) != 3) j++;
        int cls = char_class((unsigned char)text[j]);
        while (j < len && char_class((unsigned char)text[j]) == cls) j++;
        int wl = (int)(j - i);
        int found = -1;
        for (int k = 0; k < n && found < 0; k++) {
            if (w[k].n != wl) continue;
            int same = 1;
            for (int t = 0; t < wl && same; t++) same = w[k].ids[t] == QV_SYNTH_BYTE0 + (unsigned char)text[i + t];
            if (same) found = k;
        }
        if (found >= 0) {
            w[found].count++;
        } else {
            if (n == cap) {
                cap *= 2;
                word_t *nw = realloc(w, (size_t)cap * sizeof *w);
                if (!nw) break;
                w = nw;
            }
            w[n].ids = malloc((size_t)wl * sizeof(int));
            for (int t = 0; t < wl; t++) w[n].ids[t] = QV_SYNTH_BYTE0 + (unsigned char)text[i + t];
            w[n].n = wl;
            w[n].count = 1;
            n++;
        }
        i = j;
    }
    *out = w;
    return n;
}

qv_status qv_synth_tokenizer_json(int vocab_size, char **out)
{
    *out = NULL;
    if (vocab_size < QV_SYNTH_BYTE0 + 256 || vocab_size > 4096)
        return qv_fail(QV_ERR_USAGE, "synthetic vocab size %d outside [258, 4096]", vocab_size);
    /* token strings (byte-unicode form), indexed by id */
    char **tok = calloc((size_t)vocab_size, sizeof *tok);
    pair_t *merges = calloc((size_t)vocab_size, sizeof *merges);
    word_t *words = NULL;
    int nw = split_words(qv_synth_training_text, &words);
    if (!tok || !merges || !words) {
        free(tok); free(merges); free(words);
        return qv_fail(QV_ERR_NOMEM, "out of memory building the synthetic tokenizer");
    }
    tok[0] = strdup("<|begin_of_text|>");
    tok[1] = strdup("<|end_of_text|>");
    for (unsigned b = 0; b < 256; b++) {
        char buf[4] = {0};
        put_utf8(byte_to_cp(b), buf);
        tok[QV_SYNTH_BYTE0 + b] = strdup(buf);
    }
    int nv = QV_SYNTH_BYTE0 + 256, nm = 0;
    /* pair counts in a dense table over the final vocab: vocab_size^2 ints (<= 64 MB at 4096) */
    int *cnt = malloc((size_t)vocab_size * (size_t)vocab_size * sizeof(int));
    while (cnt && nv < vocab_size && nm < vocab_size) {
        memset(cnt, 0, (size_t)nv * (size_t)vocab_size * sizeof(int));
        for (int k = 0; k < nw; k++)
            for (int t = 0; t + 1 < words[k].n; t++)
                cnt[(size_t)words[k].ids[t] * (size_t)vocab_size + (size_t)words[k].ids[t + 1]] += words[k].count;
        int best = 1, ba = -1, bb = -1; /* a pair must occur at least twice to be merged */
        for (int a = 0; a < nv; a++)
            for (int b = 0; b < nv; b++) {
                int c = cnt[(size_t)a * (size_t)vocab_size + (size_t)b];
                if (c > best) { best = c; ba = a; bb = b; }
            }
        if (ba < 0) break;
        size_t la = strlen(tok[ba]), lb = strlen(tok[bb]);
        char *joined = malloc(la + lb + 1);
        memcpy(joined, tok[ba], la);
        memcpy(joined + la, tok[bb], lb + 1);
        /* two merge paths can spell the same string ("a"+"bc", "ab"+"c"): one id per string */
        int id = -1;
        for (int t = QV_SYNTH_BYTE0; t < nv && id < 0; t++)
            if (strcmp(tok[t], joined) == 0) id = t;
        if (id < 0) {
            id = nv++;
            tok[id] = joined;
        } else {
            free(joined);
        }
        merges[nm].a = ba;
        merges[nm].b = bb;
        nm++;
        for (int k = 0; k < nw; k++) { /* apply the merge to every word */
            int o = 0;
            for (int t = 0; t < words[k].n; t++) {
                if (t + 1 < words[k].n && words[k].ids[t] == ba && words[k].ids[t + 1] == bb) {
                    words[k].ids[o++] = id;
                    t++;
                } else {
                    words[k].ids[o++] = words[k].ids[t];
                }
            }
            words[k].n = o;
        }
    }
    free(cnt);
    /* pad the vocabulary with unreachable filler tokens if the text ran out of pairs, so the
     * embedding has exactly vocab_size rows that all have a token string */
    for (int id = nv; id < vocab_size; id++) {
        char buf[32];
        snprintf(buf, sizeof buf, "<|reserved_%d|>", id);
        tok[id] = strdup(buf);
    }

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int id = 0; id < vocab_size; id++) {
        if (id >= QV_SYNTH_NSPECIAL && id < nv) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", id);
        cJSON_AddStringToObject(a, "content", tok[id]);
        cJSON_AddBoolToObject(a, "single_word", 0);
        cJSON_AddBoolToObject(a, "lstrip", 0);
        cJSON_AddBoolToObject(a, "rstrip", 0);
        cJSON_AddBoolToObject(a, "normalized", 0);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", qv_llama3_regex);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddItemToArray(pres, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(pres, bl);
    /* post-processor: BOS in front of a single sequence (add_special_tokens=True) */
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single");
    cJSON *st = cJSON_CreateObject(), *sti = cJSON_AddObjectToObject(st, "SpecialToken");
    cJSON_AddStringToObject(sti, "id", tok[0]);
    cJSON_AddNumberToObject(sti, "type_id", 0);
    cJSON_AddItemToArray(single, st);
    cJSON *sq = cJSON_CreateObject(), *sqi = cJSON_AddObjectToObject(sq, "Sequence");
    cJSON_AddStringToObject(sqi, "id", "A");
    cJSON_AddNumberToObject(sqi, "type_id", 0);
    cJSON_AddItemToArray(single, sq);
    cJSON_AddItemToObject(post, "pair", cJSON_Duplicate(single, 1));
    cJSON *sts = cJSON_AddObjectToObject(post, "special_tokens");
    cJSON *bos = cJSON_AddObjectToObject(sts, tok[0]);
    cJSON_AddStringToObject(bos, "id", tok[0]);
    cJSON *ids = cJSON_AddArrayToObject(bos, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(0));
    cJSON *toks = cJSON_AddArrayToObject(bos, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(tok[0]));
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int id = 0; id < vocab_size; id++) cJSON_AddNumberToObject(vocab, tok[id], id);
    cJSON *mj = cJSON_AddArrayToObject(model, "merges");
    for (int k = 0; k < nm; k++) {
        size_t la = strlen(tok[merges[k].a]), lb = strlen(tok[merges[k].b]);
        char *m = malloc(la + lb + 2);
        memcpy(m, tok[merges[k].a], la);
        m[la] = ' ';
        memcpy(m + la + 1, tok[merges[k].b], lb + 1);
        cJSON_AddItemToArray(mj, cJSON_CreateString(m));
        free(m);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    for (int id = 0; id < vocab_size; id++) free(tok[id]);
    for (int k = 0; k < nw; k++) free(words[k].ids);
    free(tok);
    free(merges);
    free(words);
    if (!json) return qv_fail(QV_ERR_NOMEM, "out of memory printing the synthetic tokenizer");
    *out = json;
    return QV_OK;
}
