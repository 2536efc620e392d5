/* The built-in synthetic model's pieces, for commands run without --model. Placeholder until the
 * synthetic Llama lands: it says so instead of inventing a tokenizer. */
#include "cli.h"

qv_status qv_cli_default_tokenizer(qv_tok **tok)
{
    *tok = NULL;
    return qv_fail(QV_ERR_UNSUPPORTED, "built-in synthetic model not available yet: give --model DIR or --tokenizer FILE");
}
