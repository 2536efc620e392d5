/* libFuzzer: config.json parsing (qv_config_parse). */
#include "fz_util.h"
#include "qvet/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_config c;
    if (qv_config_parse((const char *)data, size, "<fuzz>/config.json", &c) == QV_OK) {
        /* an accepted config has the invariants the engines rely on */
        if (c.hidden_size <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 || c.num_layers <= 0 ||
            c.vocab_size <= 0)
            __builtin_trap();
    }
    return 0;
}
