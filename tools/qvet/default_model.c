/* The model every command uses when --model is not given: the built-in synthetic Llama
 * (preset tiny, seed 0), built in memory (docs/synthetic.md). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/synth.h"

qv_status qv_cli_default_model(qv_model **out)
{
    return qv_synth_open(QV_SYNTH_TINY, 0, out);
}

qv_status qv_cli_default_tokenizer(qv_tok **tok)
{
    *tok = NULL;
    char *json = NULL;
    QV_TRY(qv_synth_tokenizer_json(512, &json));
    qv_status st = qv_tok_load_json(json, strlen(json), "<synthetic:tiny:0>/tokenizer.json", tok);
    free(json);
    return st;
}
