#include "qv_test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qvet/fileio.h"
#include "qvet/gpu.h"

uint64_t qv_test_next(qv_test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double qv_test_uniform(qv_test_rng *r) { return (double)(qv_test_next(r) >> 11) * 0x1p-53; }

double qv_test_normal(qv_test_rng *r)
{
    double u1 = qv_test_uniform(r), u2 = qv_test_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

const char *qv_test_source_dir(void)
{
    const char *d = getenv("QV_SOURCE_DIR");
    return d && *d ? d : ".";
}

const char *qv_test_shared_dir(void)
{
    static char buf[4096];
    const char *d = getenv("QV_SHARED_DIR");
    if (d && *d && qv_is_dir(d)) return d;
    snprintf(buf, sizeof buf, "%s/../shared", qv_test_source_dir());
    return qv_is_dir(buf) ? buf : NULL;
}

const char *qv_test_qvet(void)
{
    const char *q = getenv("QVET");
    return q && *q ? q : "qvet";
}

static char *slurp(const char *path)
{
    char *s = NULL;
    if (qv_read_file(path, (size_t)1 << 30, &s, NULL) != QV_OK) return strdup("");
    return s;
}

int qv_test_run_qvet(const char *args, char **out, char **err)
{
    char *dir = qv_test_tmpdir();
    size_t n = strlen(args) + strlen(dir) * 2 + strlen(qv_test_qvet()) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "'%s' %s >%s/out 2>%s/err", qv_test_qvet(), args, dir, dir);
    int rc = system(cmd);
    int code = rc == -1 ? -1 : (WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc));
    char p[4096];
    snprintf(p, sizeof p, "%s/out", dir);
    if (out) *out = slurp(p);
    unlink(p);
    snprintf(p, sizeof p, "%s/err", dir);
    if (err) *err = slurp(p);
    unlink(p);
    rmdir(dir);
    free(dir);
    free(cmd);
    return code;
}

char *qv_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/qvet-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

int qv_test_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    /* Check forks a child per test by default; a CUDA context does not survive fork (the child
     * gets "initialization error"), so on a machine with a GPU the tests run in-process. */
    if (!getenv("CK_FORK") && qv_gpu_device_count() > 0) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
