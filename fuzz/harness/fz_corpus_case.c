/* libFuzzer: the overflow-fuzz corpus format (qvet fuzz replay / the gate read these files);
 * an accepted case is also run, so the checks see any shape the parser lets through. */
#include "fz_util.h"
#include "qvet/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_fz_case c;
    /* shapes bounded so that each execution stays short (the parser's checks are the same) */
    if (qv_fz_case_from_json_limit((const char *)data, size, "<fuzz>", 1L << 16, &c) != QV_OK) return 0;
    long work = c.kind == QV_FZ_GEMM ? (long)c.M * c.N * c.K : 0;
    if (work <= (1L << 20)) {
        int failed = 0;
        char why[256];
        (void)qv_fz_check(&c, QV_KB_CPU_EMUL, &failed, why, sizeof why);
    }
    qv_fz_case_free(&c);
    return 0;
}
