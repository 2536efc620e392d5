/* libFuzzer: tokenizer.json loading, then encode and decode of a short mixed-script text. */
#include "fz_util.h"
#include "qvet/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_tok *tok = NULL;
    if (qv_tok_load_json((const char *)data, size, "<fuzz>/tokenizer.json", &tok) != QV_OK) return 0;
    static const char text[] = "Hello  world!\n\tcaf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 123 <s></s> \xf0\x9f\x98\x80 'll";
    int32_t *ids = NULL;
    size_t n = 0;
    if (qv_tok_encode(tok, text, sizeof text - 1, 1, &ids, &n) == QV_OK) {
        char *out = NULL;
        size_t len = 0;
        if (qv_tok_decode(tok, ids, n, &out, &len) == QV_OK) free(out);
        free(ids);
    }
    qv_tok_free(tok);
    return 0;
}
