/* State of one `qvet kernels` matrix run, shared by cmd_kernels.c (the GEMM cases) and
 * cmd_kernels_extra.c (the attention and fused-producer cases): selection, JSON array, tallies. */
#ifndef QVET_KERNELS_RUN_H
#define QVET_KERNELS_RUN_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <cJSON.h>
#include <pcre2.h>
#include <stdint.h>

#include "qvet/kcases.h"

typedef struct {
    unsigned long long seed;
    int use_cpu, use_gpu; /* backends asked for */
    int gpu;              /* a device exists */
    pcre2_code *re;       /* --filter, or NULL */
    pcre2_match_data *md;
    cJSON *arr;           /* the "cases" array */
    long bit_exact;       /* passed, bit for bit */
    long bounded;         /* passed, within a derived bound (attention output; A8 codes under the tie rule) */
    long failed, errors, run;
    long skip_nodev;      /* gpu lines without a device */
    long skip_other;      /* skips with another reason (no CPU emulation, outside a GPU kernel's contract) */
    char first_fail[512]; /* the reproduce command of the first failure */
} qv_kernels_run;

/* FNV-1a of a case name: a case's seed is seed ^ hash(name), as in the gate. */
static inline uint64_t qv_kernels_name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* One line per (case, backend) for the attention cases ("attn/<qv_kattn_name>") and the fused
 * producers ("fused/<qv_kfused_name>"), added to k's array and tallies. */
void qv_kernels_run_attn(qv_kernels_run *k, const qv_kattn_case *c, int n);
void qv_kernels_run_fused(qv_kernels_run *k, const qv_kfused_case *c, int n);

#endif
