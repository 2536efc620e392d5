/* Loading an external kernel implementation through the qv_kernel_plugin ABI
 * (include/qvet/kernel_plugin.h): dlopen, dlsym of the entry, registration, and the checks that
 * make every malformed plugin an input error naming the library (exit 2), never a crash later. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kcase_internal.h"

struct qv_kplugin {
    void *dl;
    qv_kernel_plugin api;
    char path[1024];
    char name[80]; /* the plugin's name, printable characters only (it goes into every line) */
};

static const char *kp_code_name(int rc)
{
    switch (rc) {
    case QV_KP_ERR_ARGS: return "QV_KP_ERR_ARGS";
    case QV_KP_ERR_NOMEM: return "QV_KP_ERR_NOMEM";
    case QV_KP_ERR_DEVICE: return "QV_KP_ERR_DEVICE";
    case QV_KP_ERR_INTERNAL: return "QV_KP_ERR_INTERNAL";
    case QV_KP_ERR_ABI: return "QV_KP_ERR_ABI";
    default: return "unknown code";
    }
}

const char *qv_kplugin_code_name(int rc) { return kp_code_name(rc); }

static qv_status load_fail(qv_kplugin *p, qv_status st)
{
    if (p->dl) dlclose(p->dl);
    free(p);
    return st;
}

qv_status qv_kplugin_load(const char *path, qv_kplugin **out)
{
    *out = NULL;
    if (!path || !*path) return qv_fail(QV_ERR_USAGE, "--plugin: empty library path");
    qv_kplugin *p = calloc(1, sizeof *p);
    if (!p) return qv_fail(QV_ERR_NOMEM, "out of memory");
    /* a bare name would make dlopen search LD_LIBRARY_PATH and the system directories: load
     * exactly the file the user named instead */
    snprintf(p->path, sizeof p->path, "%s%s", strchr(path, '/') ? "" : "./", path);
    struct stat sb;
    if (stat(p->path, &sb) != 0)
        return load_fail(p, qv_fail(QV_ERR_IO, "%s: plugin library: %s", path, strerror(errno)));
    if (!S_ISREG(sb.st_mode)) return load_fail(p, qv_fail(QV_ERR_IO, "%s: plugin library: not a regular file", path));
    dlerror();
    p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) return load_fail(p, qv_fail(QV_ERR_INPUT, "%s: cannot load the plugin: %s", path, dlerror()));
    dlerror();
    void *sym = dlsym(p->dl, QV_KERNEL_PLUGIN_ENTRY);
    if (!sym) {
        const char *e = dlerror();
        return load_fail(p, qv_fail(QV_ERR_INPUT, "%s: no symbol '%s' (%s): not a qvet kernel plugin, or the entry "
                                                  "is not exported (include/qvet/kernel_plugin.h)",
                                    path, QV_KERNEL_PLUGIN_ENTRY, e ? e : "dlsym returned NULL"));
    }
    qv_kernel_plugin_register_fn reg;
    memcpy(&reg, &sym, sizeof reg); /* POSIX: dlsym's object pointer holds the function's address */
    char err[512] = "";
    memset(&p->api, 0, sizeof p->api);
    int rc = reg(QV_KERNEL_PLUGIN_ABI_VERSION, &p->api, err, sizeof err);
    err[sizeof err - 1] = 0;
    if (rc != QV_KP_OK)
        return load_fail(p, qv_fail(QV_ERR_INPUT, "%s: %s failed with %d (%s): %s", path, QV_KERNEL_PLUGIN_ENTRY, rc,
                                    kp_code_name(rc), err[0] ? err : "no message"));
    /* past this check the struct's layout is known, so destroy may be called */
    if (p->api.abi_version != QV_KERNEL_PLUGIN_ABI_VERSION)
        return load_fail(p, qv_fail(QV_ERR_INPUT, "%s: plugin ABI version %u, this qvet speaks version %u: rebuild the "
                                                  "plugin against this qvet's include/qvet/kernel_plugin.h",
                                    path, (unsigned)p->api.abi_version, (unsigned)QV_KERNEL_PLUGIN_ABI_VERSION));
    qv_status st = QV_OK;
    if (!p->api.name || !p->api.name[0])
        st = qv_fail(QV_ERR_INPUT, "%s: the plugin sets no name", path);
    int nops = 0;
    for (int k = 0; k < QV_KK_COUNT; k++) nops += qv_kplugin_ops(p, (qv_kkernel)k) != 0;
    if (st == QV_OK && nops == 0)
        st = qv_fail(QV_ERR_INPUT, "%s: plugin '%s' implements no op (every function pointer is NULL)", path, p->api.name);
    if (st != QV_OK) {
        if (p->api.destroy) p->api.destroy(p->api.ctx);
        return load_fail(p, st);
    }
    size_t j = 0;
    for (const char *s = p->api.name; *s && j + 1 < sizeof p->name; s++)
        p->name[j++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    p->name[j] = 0;
    *out = p;
    return QV_OK;
}

void qv_kplugin_close(qv_kplugin *p)
{
    if (!p) return;
    if (p->api.destroy) p->api.destroy(p->api.ctx);
    dlclose(p->dl);
    free(p);
}

const char *qv_kplugin_name(const qv_kplugin *p) { return p ? p->name : ""; }
const char *qv_kplugin_path(const qv_kplugin *p) { return p ? p->path : ""; }
const qv_kernel_plugin *qv_kplugin_api(const qv_kplugin *p) { return &p->api; }

int qv_kplugin_ops(const qv_kplugin *p, qv_kkernel k)
{
    const qv_kernel_plugin *a = &p->api;
    switch (k) {
    case QV_KK_W8A8: return (a->w8a8_gemm ? 1 : 0) | (a->w8a8_gemm_acc ? 2 : 0);
    case QV_KK_W4A8_CHN: return (a->w4a8_chn_gemm ? 1 : 0) | (a->w4a8_chn_gemm_acc ? 2 : 0);
    case QV_KK_W4A8_G128: return (a->w4a8_g128_gemm ? 1 : 0) | (a->w4a8_g128_gemm_acc ? 2 : 0);
    default: return 0;
    }
}
