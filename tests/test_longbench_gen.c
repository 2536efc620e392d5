/* LongBench with engines: pred.py's prompt building (template, middle truncation, chat wrapping
 * and its no-chat tasks), decoding without special tokens, greedy generation (stop ids, min
 * length, context limit), qvet's synthetic tasks and the per-task summary.
 *
 * Provenance of the expected values: pred.py (THUDM/LongBench commit 2e00731, LongBench/pred.py)
 * read by hand. The tokenizer here is a hand-written byte-level BPE without merges, so every
 * character is one token and every expected id list is written out by hand. Generation runs on a
 * scripted engine whose next token is a fixed function of the last one. Synthetic tasks are
 * checked by re-parsing the generated context independently (labels, distinct paragraphs,
 * key-value lines). Summary figures are computed by hand from the item scores of LongBench's
 * metrics (retrieval_score: matching numbers / numbers found). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/eval_longbench.h"

/* ---- a one-character-per-token tokenizer: ids 0 "<s>" (BOS, special), 1 "</s>" (special),
 * then 'a'..'z' = 2..27, 'Ġ' (space) = 28, '{' 29, '}' 30, digits '0'..'9' = 31..40, '.' 41 ---- */
static qv_tok *char_tok(void)
{
    char vocab[2048];
    int n = snprintf(vocab, sizeof vocab, "\"<s>\": 0, \"</s>\": 1");
    for (int c = 0; c < 26; c++) n += snprintf(vocab + n, sizeof vocab - (size_t)n, ", \"%c\": %d", 'a' + c, 2 + c);
    n += snprintf(vocab + n, sizeof vocab - (size_t)n, ", \"\\u0120\": 28, \"{\": 29, \"}\": 30");
    for (int d = 0; d < 10; d++) n += snprintf(vocab + n, sizeof vocab - (size_t)n, ", \"%d\": %d", d, 31 + d);
    n += snprintf(vocab + n, sizeof vocab - (size_t)n, ", \".\": 41");
    char json[8192];
    snprintf(json, sizeof json,
             "{\"version\": \"1.0\", \"added_tokens\": ["
             "{\"id\": 0, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},"
             "{\"id\": 1, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}],"
             "\"normalizer\": null,"
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false},"
             "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
             " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\","
             " \"ids\": [0], \"tokens\": [\"<s>\"]}}},"
             "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},"
             "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null,"
             " \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,"
             " \"vocab\": {%s}, \"merges\": []}}",
             vocab);
    qv_tok *t = NULL;
    ck_assert_msg(qv_tok_load_json(json, strlen(json), "char_tok", &t) == QV_OK, "%s", qv_last_error());
    return t;
}

static void expect_ids(const int32_t *got, size_t n, const int32_t *want, size_t wn)
{
    ck_assert_uint_eq(n, wn);
    for (size_t i = 0; i < n; i++) ck_assert_msg(got[i] == want[i], "id %zu: got %d want %d", i, got[i], want[i]);
}

#define L(c) (2 + ((c) - 'a'))

START_TEST(char_tokenizer_is_one_token_per_character)
{
    qv_tok *t = char_tok();
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(qv_tok_encode(t, "ab c", 4, 1, &ids, &n), QV_OK);
    int32_t want[] = {0, L('a'), L('b'), 28, L('c')};
    expect_ids(ids, n, want, 5);
    free(ids);
    qv_tok_free(t);
}
END_TEST

START_TEST(no_chat_tasks_are_pred_py_list)
{
    /* pred.py: if dataset not in ["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"] */
    const char *yes[] = {"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"};
    const char *no[] = {"narrativeqa", "qasper", "hotpotqa", "gov_report", "passage_count", "passage_retrieval_en",
                        "qvet_kv_retrieval", "multi_news"};
    for (size_t i = 0; i < 6; i++) ck_assert_msg(qv_lb_task_no_chat(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < 8; i++) ck_assert_msg(!qv_lb_task_no_chat(no[i]), "%s", no[i]);
}
END_TEST

START_TEST(prompt_fills_template_with_strings_and_integers)
{
    qv_tok *t = char_tok();
    cJSON *s = cJSON_Parse("{\"context\": \"ab\", \"input\": \"c\", \"length\": 12, \"answers\": [\"x\"], \"all_classes\": null}");
    qv_lb_prompt_opts o = {.tok = t, .max_length = 100};
    int32_t *ids;
    size_t n, nf;
    int tr;
    /* "{context} {input}{length}" -> "ab c12" (str(12)); literal braces via {{ }} */
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context} {input}{length}{{}}", s, &ids, &n, &nf, &tr), QV_OK);
    int32_t want[] = {0, L('a'), L('b'), 28, L('c'), 32, 33, 29, 30};
    expect_ids(ids, n, want, 9);
    ck_assert_int_eq(tr, 0);
    ck_assert_uint_eq(nf, 9);
    free(ids);
    /* a list field is not offered: the template fails as Python's KeyError would name it */
    ck_assert_int_ne(qv_lb_build_prompt(&o, "hotpotqa", "{answers}", s, &ids, &n, &nf, &tr), QV_OK);
    cJSON_Delete(s);
    qv_tok_free(t);
}
END_TEST

START_TEST(middle_truncation_keeps_first_and_last_half_and_drops_bos_in_the_text)
{
    qv_tok *t = char_tok();
    cJSON *s = cJSON_Parse("{\"context\": \"abcdefghij\", \"input\": \"\"}");
    /* tokenized with BOS: [<s> a b c d e f g h i j] = 11 > max_length 6; half = 3:
     * decode([<s> a b], skip_special) = "ab", decode([h i j]) = "hij"; "abhij" tokenized with BOS */
    qv_lb_prompt_opts o = {.tok = t, .max_length = 6};
    int32_t *ids;
    size_t n, nf;
    int tr;
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context}", s, &ids, &n, &nf, &tr), QV_OK);
    int32_t want[] = {0, L('a'), L('b'), L('h'), L('i'), L('j')};
    expect_ids(ids, n, want, 6);
    ck_assert_int_eq(tr, 1);
    ck_assert_uint_eq(nf, 11);
    free(ids);
    /* odd max_length 7: half = int(7/2) = 3, the same cut */
    o.max_length = 7;
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context}", s, &ids, &n, &nf, &tr), QV_OK);
    expect_ids(ids, n, want, 6);
    free(ids);
    /* exactly max_length tokens: untouched */
    o.max_length = 11;
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context}", s, &ids, &n, &nf, &tr), QV_OK);
    ck_assert_uint_eq(n, 11);
    ck_assert_int_eq(tr, 0);
    free(ids);
    cJSON_Delete(s);
    qv_tok_free(t);
}
END_TEST

START_TEST(chat_wrap_after_truncation_except_no_chat_tasks)
{
    qv_tok *t = char_tok();
    cJSON *s = cJSON_Parse("{\"context\": \"abcdefghij\"}");
    qv_lb_prompt_opts o = {.tok = t, .max_length = 6, .chat = "x{prompt}y"};
    int32_t *ids;
    size_t n, nf;
    int tr;
    /* pred.py truncates first, then build_chat: "x" + "abhij" + "y", tokenized with BOS; the
     * result may exceed max_length (pred.py does not cut again) */
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context}", s, &ids, &n, &nf, &tr), QV_OK);
    int32_t want[] = {0, L('x'), L('a'), L('b'), L('h'), L('i'), L('j'), L('y')};
    expect_ids(ids, n, want, 8);
    free(ids);
    /* trec is a no-chat task */
    ck_assert_int_eq(qv_lb_build_prompt(&o, "trec", "{context}", s, &ids, &n, &nf, &tr), QV_OK);
    int32_t want2[] = {0, L('a'), L('b'), L('h'), L('i'), L('j')};
    expect_ids(ids, n, want2, 6);
    free(ids);
    o.chat = "no placeholder";
    ck_assert_int_eq(qv_lb_build_prompt(&o, "hotpotqa", "{context}", s, &ids, &n, &nf, &tr), QV_ERR_USAGE);
    cJSON_Delete(s);
    qv_tok_free(t);
}
END_TEST

START_TEST(decode_skips_special_tokens)
{
    qv_tok *t = char_tok();
    int32_t ids[] = {0, L('a'), 1, 28, L('b'), 1};
    char *s;
    ck_assert_int_eq(qv_lb_decode_skip_special(t, ids, 6, 0, &s), QV_OK);
    ck_assert_str_eq(s, "a b");
    free(s);
    /* clean_up_tokenization_spaces: "a { ." -> "a {." */
    int32_t ids2[] = {L('a'), 28, 29, 28, 41};
    ck_assert_int_eq(qv_lb_decode_skip_special(t, ids2, 5, 1, &s), QV_OK);
    ck_assert_str_eq(s, "a {.");
    free(s);
    ck_assert_int_eq(qv_lb_decode_skip_special(t, ids2, 5, 0, &s), QV_OK);
    ck_assert_str_eq(s, "a { .");
    free(s);
    ck_assert_int_eq(qv_tok_is_special(t, 0), 1);
    ck_assert_int_eq(qv_tok_is_special(t, 1), 1);
    ck_assert_int_eq(qv_tok_is_special(t, L('a')), 0);
    qv_tok_free(t);
}
END_TEST

START_TEST(clean_up_tokenization_is_transformers_replace_chain)
{
    /* transformers' clean_up_tokenization: the ten str.replace calls, in order */
    struct { const char *in, *out; } c[] = {
        {"Hello , world . Yes ? No ! ", "Hello, world. Yes? No! "},
        {"it ' s", "it's"},                        /* " ' " -> "'" */
        {"do n't , I 'm , he 's , we 've , they 're", "don't, I'm, he's, we've, they're"},
        {"a  .", "a ."},                           /* one space removed per match */
        {" . .", ".."},                            /* " ." twice, non-overlapping */
        {"x ' 's", "x''s"},                        /* " ' " first, then no " 's" is left */
        {"", ""},
        {"no change", "no change"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *s = strdup(c[i].in);
        qv_lb_clean_up_tokenization(s);
        ck_assert_msg(!strcmp(s, c[i].out), "'%s' -> '%s', want '%s'", c[i].in, s, c[i].out);
        free(s);
    }
}
END_TEST

/* ---- a scripted engine: next token = last + 1 (mod V); after token 3, logits 7 and 9 tie ---- */
enum { SV = 16 };
typedef struct {
    qv_engine base;
    int32_t last[64];
} script_engine;

static qv_status se_open(const qv_model *m, const qv_engine_opts *o, qv_engine **out);
static void se_close(qv_engine *e)
{
    qv_engine_base_free(e);
    free(e);
}
static qv_status se_seq_init(qv_engine *e, int slot)
{
    ((script_engine *)e)->last[slot] = -1;
    return QV_OK;
}
static void se_seq_release(qv_engine *e, int slot) { (void)e, (void)slot; }
static qv_status se_forward(qv_engine *e, const qv_engine_batch *b, float *logits)
{
    script_engine *s = (script_engine *)e;
    for (int i = 0; i < b->n_seqs; i++) {
        int32_t t = b->tokens[i][b->n_tokens[i] - 1];
        s->last[b->seqs[i]] = t;
        if (!logits) continue;
        float *row = logits + (size_t)i * SV; /* last_n == 1 in these tests */
        for (int v = 0; v < SV; v++) row[v] = 0;
        if (t == 3) row[9] = row[7] = 2; /* torch.argmax: the first maximum, 7 */
        else row[(t + 1) % SV] = 2;
    }
    return QV_OK;
}
static const qv_engine_vtable se_vt = {"script", se_open, se_close, se_seq_init, se_seq_release, se_forward};
static qv_status se_open(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    script_engine *s = calloc(1, sizeof *s);
    qv_engine_base_init(&s->base, &se_vt, m, o);
    *out = &s->base;
    return QV_OK;
}

START_TEST(greedy_generation_stops_limits_and_ties)
{
    static qv_model m;
    m.cfg.vocab_size = SV;
    m.cfg.max_position_embeddings = 8;
    qv_engine_opts eo;
    qv_engine_opts_init(&eo);
    qv_engine *e;
    ck_assert_int_eq(se_open(&m, &eo, &e), QV_OK);
    qv_seq_id s;
    ck_assert_int_eq(qv_engine_seq_create(e, 1, &s), QV_OK);
    float logits[SV];
    int32_t prompt[] = {0, 1, 2, 3}, out[8];
    int n, stop;
    /* no stop: 3 -> 7 (tie 7/9), then 8, 9, 10, 11; the last token is not fed back */
    qv_lb_gen_opts g = {.max_new = 5};
    ck_assert_int_eq(qv_lb_generate(e, s, prompt, 4, &g, logits, out, &n, &stop), QV_OK);
    int32_t w1[] = {7, 8, 9, 10, 11};
    expect_ids(out, (size_t)n, w1, 5);
    ck_assert_int_eq(stop, QV_LB_STOP_MAX);
    ck_assert_int_eq(qv_engine_seq_len(e, s), 4 + 4);
    /* stop id 9: kept in the output (HF's generate output holds it), generation ends */
    int32_t st9 = 9;
    g.stop = &st9, g.n_stop = 1;
    ck_assert_int_eq(qv_lb_generate(e, s, prompt, 4, &g, logits, out, &n, &stop), QV_OK);
    int32_t w2[] = {7, 8, 9};
    expect_ids(out, (size_t)n, w2, 3);
    ck_assert_int_eq(stop, QV_LB_STOP_EOS);
    /* min_new 1 (samsum's min_length = context + 1): stop id 7 gets -inf at the first step,
     * so 9 (the other maximum) is taken, then 10, 11 */
    int32_t st7 = 7;
    g.stop = &st7, g.min_new = 1, g.max_new = 3;
    ck_assert_int_eq(qv_lb_generate(e, s, prompt, 4, &g, logits, out, &n, &stop), QV_OK);
    int32_t w3[] = {9, 10, 11};
    expect_ids(out, (size_t)n, w3, 3);
    /* 4 prompt + 6 new - 1 fed back = 9 positions > max_position_embeddings 8 */
    g = (qv_lb_gen_opts){.max_new = 6};
    ck_assert_int_eq(qv_lb_generate(e, s, prompt, 4, &g, logits, out, &n, &stop), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "--max-length"));
    g.max_new = 5; /* exactly 8 positions: fine */
    ck_assert_int_eq(qv_lb_generate(e, s, prompt, 4, &g, logits, out, &n, &stop), QV_OK);
    qv_engine_close(e);
}
END_TEST

/* ---- synthetic tasks ---- */

/* 120 distinct paragraphs of 30 words ("p<k>x0 q<k>x1 ..."), 5 short ones (filtered: < 25
 * words) and a second copy of all 120 (dropped: a repeat would make counts and retrieval
 * answers ambiguous), lines broken and indented inside paragraphs; then 400 distinct 6-letter
 * words for the kv task */
static char *corpus(void)
{
    size_t cap = 1 << 20, n = 0;
    char *c = malloc(cap);
    for (int k = 0; k < 245; k++) {
        int id = k < 120 ? k : k - 125;
        if (k >= 120 && k < 125) {
            n += (size_t)snprintf(c + n, cap - n, "short para %d here\n\n\n", k);
            continue;
        }
        for (int j = 0; j < 30; j++) n += (size_t)snprintf(c + n, cap - n, "%s%c%dx%d", j ? (j % 7 ? " " : "\n  ") : "", 'p' + (j % 3), id, j);
        n += (size_t)snprintf(c + n, cap - n, ".\n\n");
    }
    /* words for the kv task: 'alpha'..: 5-10 letters; build 400 distinct ones */
    for (int k = 0; k < 400; k++) {
        char w[11];
        int x = k;
        for (int j = 0; j < 6; j++) w[j] = (char)('a' + (x % 26)), x /= 26; /* base 26: distinct */
        w[6] = 0;
        n += (size_t)snprintf(c + n, cap - n, "%s%s", w, k % 10 == 9 ? "\n" : " ");
    }
    c[n] = 0;
    return c;
}

static int words_of(const char *s)
{
    int w = 0, in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t';
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

/* the context's "Paragraph i: text" blocks, in order; returns their count */
static int split_blocks(const char *ctx, char **blk, int cap)
{
    int k = 0;
    const char *p = ctx;
    while (*p && k < cap) {
        char lab[32];
        snprintf(lab, sizeof lab, "Paragraph %d: ", k + 1);
        ck_assert_msg(!strncmp(p, lab, strlen(lab)), "block %d does not start with '%s': %.40s", k, lab, p);
        p += strlen(lab);
        const char *e = strstr(p, "\n\nParagraph ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        blk[k++] = strndup(p, l);
        p += l + (e ? 2 : 0);
    }
    return k;
}

static const char *sget(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuestring; }

START_TEST(synthetic_retrieval_answer_is_the_paragraph_holding_the_excerpt)
{
    char *c = corpus();
    qv_lb_syn_opts o = {.samples = 6, .words = 200, .seed = 7};
    cJSON **it;
    size_t n;
    ck_assert_int_eq(qv_lb_syn_build("qvet_passage_retrieval", c, strlen(c), "corpus", &o, &it, &n), QV_OK);
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++) {
        char *blk[64];
        int nb = split_blocks(sget(it[i], "context"), blk, 64);
        ck_assert_int_ge(nb, 3);
        /* 200 words of 30-word paragraphs: paragraphs are added until >= 200 words -> 7 */
        ck_assert_int_eq(nb, 7);
        const char *in = sget(it[i], "input");
        ck_assert_int_eq(words_of(in), 16);
        int holder = 0, holders = 0;
        for (int b = 0; b < nb; b++)
            if (strstr(blk[b], in)) holder = b + 1, holders++;
        ck_assert_int_eq(holders, 1);
        char want[32];
        snprintf(want, sizeof want, "Paragraph %d", holder);
        ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(it[i], "answers"), 0)->valuestring, want);
        /* LongBench's "length": words of input + context + answers: 16 + 7 * 30 + 2 */
        ck_assert_int_eq(cJSON_GetObjectItem(it[i], "length")->valueint, words_of(in) + words_of(sget(it[i], "context")) + 2);
        ck_assert_int_eq(cJSON_GetObjectItem(it[i], "length")->valueint, 16 + 7 * (30 + 2) + 2);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(it[i], "all_classes")));
        for (int b = 0; b < nb; b++) free(blk[b]);
    }
    qv_lb_jsonl_free(it, n);
    free(c);
}
END_TEST

START_TEST(synthetic_count_answer_is_the_number_of_distinct_paragraphs)
{
    char *c = corpus();
    qv_lb_syn_opts o = {.samples = 10, .words = 300, .seed = 3};
    cJSON **it;
    size_t n;
    ck_assert_int_eq(qv_lb_syn_build("qvet_passage_count", c, strlen(c), "corpus", &o, &it, &n), QV_OK);
    int some_dup = 0;
    for (size_t i = 0; i < n; i++) {
        char *blk[64];
        int nb = split_blocks(sget(it[i], "context"), blk, 64), distinct = 0;
        for (int b = 0; b < nb; b++) {
            int seen = 0;
            for (int q = 0; q < b; q++) seen |= !strcmp(blk[q], blk[b]);
            distinct += !seen;
        }
        some_dup |= distinct < nb;
        char want[16];
        snprintf(want, sizeof want, "%d", distinct);
        ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(it[i], "answers"), 0)->valuestring, want);
        ck_assert_str_eq(sget(it[i], "input"), "");
        for (int b = 0; b < nb; b++) free(blk[b]);
    }
    ck_assert_msg(some_dup, "no sample repeats a paragraph in 10");
    qv_lb_jsonl_free(it, n);
    free(c);
}
END_TEST

START_TEST(synthetic_kv_answer_is_the_value_of_the_asked_key)
{
    char *c = corpus();
    qv_lb_syn_opts o = {.samples = 5, .words = 60, .seed = 11};
    cJSON **it;
    size_t n;
    ck_assert_int_eq(qv_lb_syn_build("qvet_kv_retrieval", c, strlen(c), "corpus", &o, &it, &n), QV_OK);
    for (size_t i = 0; i < n; i++) {
        char *ctx = strdup(sget(it[i], "context"));
        const char *key = sget(it[i], "input"), *val = cJSON_GetArrayItem(cJSON_GetObjectItem(it[i], "answers"), 0)->valuestring;
        int lines = 0, hits = 0;
        for (char *sv, *ln = strtok_r(ctx, "\n", &sv); ln; ln = strtok_r(NULL, "\n", &sv), lines++) {
            char *colon = strstr(ln, ": ");
            ck_assert_ptr_nonnull(colon);
            *colon = 0;
            if (!strcmp(ln, key)) {
                hits++;
                ck_assert_str_eq(colon + 2, val);
            }
        }
        ck_assert_int_eq(lines, 10); /* words / 6 pairs */
        ck_assert_int_eq(hits, 1);
        free(ctx);
    }
    qv_lb_jsonl_free(it, n);
    free(c);
}
END_TEST

START_TEST(synthetic_samples_depend_only_on_seed_task_and_index)
{
    char *c = corpus();
    for (int t = 0; t < QV_LB_SYN_NTASKS; t++) {
        qv_lb_syn_opts a = {.samples = 3, .words = 120, .seed = 5}, b = a, d = a;
        b.samples = 5;
        d.seed = 6;
        cJSON **ia, **ib, **id;
        size_t na, nb, nd;
        ck_assert_int_eq(qv_lb_syn_build(qv_lb_syn_tasks[t], c, strlen(c), "c", &a, &ia, &na), QV_OK);
        ck_assert_int_eq(qv_lb_syn_build(qv_lb_syn_tasks[t], c, strlen(c), "c", &b, &ib, &nb), QV_OK);
        ck_assert_int_eq(qv_lb_syn_build(qv_lb_syn_tasks[t], c, strlen(c), "c", &d, &id, &nd), QV_OK);
        int differ = 0;
        for (size_t i = 0; i < na; i++) {
            ck_assert_msg(cJSON_Compare(ia[i], ib[i], 1), "%s sample %zu changes with --samples", qv_lb_syn_tasks[t], i);
            differ |= strcmp(sget(ia[i], "context"), sget(id[i], "context")) != 0;
        }
        ck_assert_msg(differ, "%s: another seed gives the same samples", qv_lb_syn_tasks[t]);
        qv_lb_jsonl_free(ia, na), qv_lb_jsonl_free(ib, nb), qv_lb_jsonl_free(id, nd);
    }
    free(c);
}
END_TEST

START_TEST(synthetic_corpus_too_small_is_input_error_naming_it)
{
    const char *tiny = "one short paragraph.\n\nanother one.\n";
    qv_lb_syn_opts o = {.samples = 1, .words = 100, .seed = 1};
    cJSON **it;
    size_t n;
    ck_assert_int_eq(qv_lb_syn_build("qvet_passage_retrieval", tiny, strlen(tiny), "tiny.txt", &o, &it, &n), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "tiny.txt"));
    ck_assert_int_eq(qv_lb_syn_build("qvet_kv_retrieval", tiny, strlen(tiny), "tiny.txt", &o, &it, &n), QV_ERR_INPUT);
    ck_assert_int_eq(qv_lb_syn_build("passage_count", tiny, strlen(tiny), "tiny.txt", &o, &it, &n), QV_ERR_USAGE);
}
END_TEST

/* ---- summary ---- */

static qv_lb_result mk(int task, int index, const char *pr, const char *pc, const char *answer, double length, int agree,
                       int ng)
{
    qv_lb_result r = {.task = task, .index = index, .length = length, .agree = agree};
    r.pred[0] = strdup(pr), r.pred[1] = strdup(pc);
    r.n_gen[0] = r.n_gen[1] = ng;
    r.answers = cJSON_CreateArray();
    cJSON_AddItemToArray(r.answers, cJSON_CreateString(answer));
    r.all_classes = cJSON_CreateNull();
    return r;
}

START_TEST(summary_scores_deltas_buckets_and_agreement_by_hand)
{
    /* retrieval_score = (numbers equal to the paragraph's) / (numbers in the prediction):
     *   sample 0: R "Paragraph 3" -> 1,  C "3 or 4" -> 0.5
     *   sample 1: R "2" -> 0,            C "2" -> 0 (identical)
     *   sample 2: R "5" -> 1,            C "5 5" -> 1
     * scorer(): R round(100*2/3, 2) = 66.67, C round(100*1.5/3, 2) = 50.0, delta -16.67.
     * items C - R (points): -50, 0, 0: mean -16.667, sd 28.868, se 16.667, CI -16.667 -+ 32.667.
     * lengths 100, 5000, 9000 -> one sample per bucket: buckets R 100, 0, 100; C 50, 0, 100.
     * identical 1/3; item_equal 2/3; token agreement (1/4 + 2/2 + 1/2) / 3 = 0.58333 */
    qv_lb_result r[3] = {mk(0, 2, "5", "5 5", "Paragraph 5", 9000, 1, 2), mk(0, 0, "Paragraph 3", "3 or 4", "Paragraph 3", 100, 1, 4),
                         mk(0, 1, "2", "2", "Paragraph 1", 5000, 2, 2)};
    const char *tasks[] = {"passage_retrieval_en"};
    cJSON *s;
    double items[3][2];
    ck_assert_int_eq(qv_lb_summary_json(r, 3, tasks, 1, &s, items), QV_OK);
    const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "tasks"), "passage_retrieval_en");
    ck_assert_double_eq(cJSON_GetObjectItem(t, "ref")->valuedouble, 66.67);
    ck_assert_double_eq(cJSON_GetObjectItem(t, "cand")->valuedouble, 50.0);
    ck_assert_double_eq(cJSON_GetObjectItem(t, "delta")->valuedouble, -16.67);
    const cJSON *di = cJSON_GetObjectItem(t, "delta_items");
    ck_assert_double_eq_tol(cJSON_GetObjectItem(di, "mean")->valuedouble, -50.0 / 3, 1e-9);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(di, "lo")->valuedouble, -50.0 / 3 - 1.96 * 50.0 / 3, 1e-9);
    const cJSON *b = cJSON_GetObjectItem(t, "buckets");
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "0-4k"), "cand")->valuedouble, 50.0);
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "4-8k"), "ref")->valuedouble, 0.0);
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "8k+"), "cand")->valuedouble, 100.0);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(t, "identical")->valuedouble, 1.0 / 3, 1e-12);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(t, "item_equal")->valuedouble, 2.0 / 3, 1e-12);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(t, "token_agreement")->valuedouble, (0.25 + 1 + 0.5) / 3, 1e-12);
    /* item scores written back in the caller's order */
    ck_assert_double_eq(items[0][1], 1.0);
    ck_assert_double_eq(items[1][1], 0.5);
    ck_assert_double_eq(items[2][0], 0.0);
    cJSON_Delete(s);
    for (int i = 0; i < 3; i++) qv_lb_result_free(&r[i]);
}
END_TEST

START_TEST(summary_uses_last_samples_all_classes_and_first_line)
{
    /* trec: classification with the LAST sample's all_classes (eval.py); first line only.
     * sample 0 classes [A] but sample 1's [A, B] serve both: pred "A\nB" -> first line "A" -> 1;
     * sample 1 pred "B" truth "B" -> 1 */
    qv_lb_result r[2] = {mk(0, 0, "A\nB", "x", "A", NAN, 0, 1), mk(0, 1, "B", "B", "B", NAN, 1, 1)};
    cJSON_Delete(r[0].all_classes);
    r[0].all_classes = cJSON_Parse("[\"A\"]");
    cJSON_Delete(r[1].all_classes);
    r[1].all_classes = cJSON_Parse("[\"A\", \"B\"]");
    const char *tasks[] = {"trec"};
    cJSON *s;
    ck_assert_int_eq(qv_lb_summary_json(r, 2, tasks, 1, &s, NULL), QV_OK);
    const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "tasks"), "trec");
    ck_assert_double_eq(cJSON_GetObjectItem(t, "ref")->valuedouble, 100.0);
    ck_assert_double_eq(cJSON_GetObjectItem(t, "cand")->valuedouble, 50.0);
    ck_assert_ptr_null(cJSON_GetObjectItem(t, "buckets")); /* no length: no LongBench-E buckets */
    cJSON_Delete(s);
    /* a Chinese task is refused, never scored approximately */
    const char *zh[] = {"lsht"};
    ck_assert_int_eq(qv_lb_summary_json(r, 2, zh, 1, &s, NULL), QV_ERR_UNSUPPORTED);
    for (int i = 0; i < 2; i++) qv_lb_result_free(&r[i]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("longbench_gen");
    TCase *p = tcase_create("prompt");
    tcase_add_test(p, char_tokenizer_is_one_token_per_character);
    tcase_add_test(p, no_chat_tasks_are_pred_py_list);
    tcase_add_test(p, prompt_fills_template_with_strings_and_integers);
    tcase_add_test(p, middle_truncation_keeps_first_and_last_half_and_drops_bos_in_the_text);
    tcase_add_test(p, chat_wrap_after_truncation_except_no_chat_tasks);
    tcase_add_test(p, decode_skips_special_tokens);
    tcase_add_test(p, clean_up_tokenization_is_transformers_replace_chain);
    suite_add_tcase(s, p);
    TCase *g = tcase_create("generate");
    tcase_add_test(g, greedy_generation_stops_limits_and_ties);
    suite_add_tcase(s, g);
    TCase *y = tcase_create("synthetic");
    tcase_add_test(y, synthetic_retrieval_answer_is_the_paragraph_holding_the_excerpt);
    tcase_add_test(y, synthetic_count_answer_is_the_number_of_distinct_paragraphs);
    tcase_add_test(y, synthetic_kv_answer_is_the_value_of_the_asked_key);
    tcase_add_test(y, synthetic_samples_depend_only_on_seed_task_and_index);
    tcase_add_test(y, synthetic_corpus_too_small_is_input_error_naming_it);
    suite_add_tcase(s, y);
    TCase *m = tcase_create("summary");
    tcase_add_test(m, summary_scores_deltas_buckets_and_agreement_by_hand);
    tcase_add_test(m, summary_uses_last_samples_all_classes_and_first_line);
    suite_add_tcase(s, m);
    return s;
}

int main(void) { return qv_test_main(suite()); }
