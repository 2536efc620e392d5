/* libFuzzer: the quantized checkpoint reader (qv_qmodel_open: safetensors, "qvet" and "config"
 * metadata, every linear's shapes and range checks) on a temp file holding the input. */
#include "fz_util.h"
#include "qvet/qmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = qv_fz_tmpfile(data, size, ".qckpt");
    if (!path) return 0;
    qv_qmodel *qm = NULL;
    if (qv_qmodel_open(path, &qm) == QV_OK) qv_qmodel_close(qm);
    unlink(path);
    return 0;
}
