/* libFuzzer: the safetensors reader over a buffer (every header field validated, then every
 * tensor's bytes read through its view so ASan sees any view past the data). */
#include "fz_util.h"
#include "qvet/safetensors.h"
#include "qvet/tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_st_file *f = NULL;
    if (qv_st_open_buffer(data, size, "<fuzz>", &f) != QV_OK) return 0;
    unsigned sum = 0;
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        size_t n = (size_t)(e->end - e->begin);
        const unsigned char *p = e->t.data;
        for (size_t k = 0; p && k < n; k++) sum += p[k];
        if (qv_st_find(f, e->name) != e) __builtin_trap(); /* sorted lookup finds every entry */
    }
    for (int i = 0; i < f->n_meta; i++) sum += (unsigned)strlen(f->meta_values[i]);
    (void)qv_st_meta(f, "format");
    qv_st_close(f);
    return (int)(sum & 0);
}
