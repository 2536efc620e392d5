/* The model every command uses when --model is not given: the built-in synthetic Llama
 * (preset tiny, seed 0), built in memory (docs/synthetic.md). */
#include "cli.h"
#include "qvet/synth.h"

qv_status qv_cli_default_model(qv_model **out)
{
    return qv_synth_open(QV_SYNTH_TINY, 0, out);
}
