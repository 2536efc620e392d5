/* `qvet kernels --check`: one case = load its tensors, recompute, compare
 * (include/qvet/kcheck.h). */
#include <string.h>

#include "kcheck_internal.h"

qv_status qv_kcheck_run(const qv_kcheck_set *s, const qv_kcheck_case *c, qv_kcheck_result *r)
{
    memset(r, 0, sizeof *r);
    qv_kc_tensors ts;
    QV_TRY(qv_kc_load(s, c, &ts));
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        qv_kc_free(&ts);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = c->op == QV_KC_A8_QUANT ? qv_kc_check_a8(c, &ts, r, j)
                 : c->op == QV_KC_KV4_QUANT ? qv_kc_check_kv4(c, &ts, r, j)
                 : c->op == QV_KC_RMSNORM_A8 || c->op == QV_KC_SILU_MUL_A8 ? qv_kc_check_fused(c, &ts, r, j)
                                            : qv_kc_check_gemm(c, &ts, r, j);
    qv_kc_free(&ts);
    if (st != QV_OK) {
        cJSON_Delete(j);
        return st;
    }
    r->json = j;
    return QV_OK;
}
