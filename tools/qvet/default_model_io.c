/* Placeholder for the built-in synthetic model (the default of every --model): the synthetic
 * Llama is another part of the foundation; the lead replaces this file when it lands. */
#include "cli.h"

qv_status qv_cli_default_model(qv_model **out)
{
    *out = NULL;
    return qv_fail(QV_ERR_UNSUPPORTED, "built-in synthetic model not available yet (pass --model DIR)");
}
