/* libFuzzer: the gate's thresholds file (qv_gate_config_parse, `qvet gate --config`). */
#include "fz_util.h"
#include "qvet/gate_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_gate_config c;
    if (qv_gate_config_parse((const char *)data, size, "<fuzz>/gate.json", &c) == QV_OK) {
        /* an accepted config gives the model check a token count it can allocate for */
        if (c.model_tokens < 2 || c.model_tokens > 4096 || !c.doc) __builtin_trap();
        qv_gate_config_free(&c);
    }
    return 0;
}
