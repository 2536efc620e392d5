/* safetensors reader/writer: bit-exact round trips for every dtype, deterministic output,
 * aligned back-to-back layout, metadata, sharded sets, misaligned files and reader errors. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/safetensors.h"

static void fill_random(qv_test_rng *r, unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)qv_test_next(r);
}

static void write_raw(const char *path, const char *header, size_t pad_to, const void *data, size_t n)
{
    size_t hl = strlen(header);
    size_t padded = hl < pad_to ? pad_to : hl;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fwrite(len, 1, 8, fp);
    fwrite(header, 1, hl, fp);
    for (size_t i = hl; i < padded; i++) fputc(' ', fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

/* Every dtype, for a matrix, a scalar and an empty tensor: random bit patterns (NaN payloads
 * included) come back byte for byte, from a buffer and from a file. */
START_TEST(round_trip_every_dtype_bit_exact)
{
    qv_test_rng r = {20240601};
    qv_st_writer *w = qv_st_writer_new();
    unsigned char *want[QV_DTYPE_COUNT];
    int64_t shape[2] = {3, 5}, empty[2] = {0, 4};
    unsigned char scalar[8];
    fill_random(&r, scalar, sizeof scalar);
    char name[64];
    for (int d = 0; d < QV_DTYPE_COUNT; d++) {
        size_t n = 15 * qv_dtype_size((qv_dtype)d);
        want[d] = malloc(n);
        fill_random(&r, want[d], n);
        snprintf(name, sizeof name, "m.%s", qv_dtype_name((qv_dtype)d));
        ck_assert_int_eq(qv_st_writer_add(w, name, (qv_dtype)d, 2, shape, want[d]), QV_OK);
        snprintf(name, sizeof name, "s.%s", qv_dtype_name((qv_dtype)d));
        ck_assert_int_eq(qv_st_writer_add(w, name, (qv_dtype)d, 0, NULL, scalar), QV_OK);
        snprintf(name, sizeof name, "z.%s", qv_dtype_name((qv_dtype)d));
        ck_assert_int_eq(qv_st_writer_add(w, name, (qv_dtype)d, 2, empty, NULL), QV_OK);
    }
    unsigned char *buf;
    size_t size;
    ck_assert_int_eq(qv_st_writer_to_buffer(w, &buf, &size), QV_OK);
    char *dir = qv_test_tmpdir();
    char *path = qv_path_join(dir, "rt.safetensors");
    ck_assert_int_eq(qv_st_writer_write(w, path), QV_OK);
    for (int src = 0; src < 2; src++) {
        qv_st_file *f = NULL;
        qv_status st = src == 0 ? qv_st_open_buffer(buf, size, "<buf>", &f) : qv_st_open(path, &f);
        ck_assert_msg(st == QV_OK, "%s", qv_last_error());
        ck_assert_int_eq(f->n_entries, 3 * QV_DTYPE_COUNT);
        ck_assert_int_eq(qv_st_misaligned_copies(f), 0);
        for (int d = 0; d < QV_DTYPE_COUNT; d++) {
            size_t es = qv_dtype_size((qv_dtype)d);
            snprintf(name, sizeof name, "m.%s", qv_dtype_name((qv_dtype)d));
            const qv_st_entry *e = qv_st_find(f, name);
            ck_assert_ptr_nonnull(e);
            ck_assert_int_eq(e->t.dtype, d);
            ck_assert_int_eq(e->t.ndim, 2);
            ck_assert_int_eq(e->t.shape[0], 3);
            ck_assert_int_eq(e->t.shape[1], 5);
            ck_assert_int_eq(e->t.stride[0], 5);
            ck_assert_int_eq(memcmp(e->t.data, want[d], 15 * es), 0);
            snprintf(name, sizeof name, "s.%s", qv_dtype_name((qv_dtype)d));
            e = qv_st_find(f, name);
            ck_assert_ptr_nonnull(e);
            ck_assert_int_eq(e->t.ndim, 0);
            ck_assert_int_eq(memcmp(e->t.data, scalar, es), 0);
            snprintf(name, sizeof name, "z.%s", qv_dtype_name((qv_dtype)d));
            e = qv_st_find(f, name);
            ck_assert_ptr_nonnull(e);
            ck_assert_int_eq(qv_tensor_numel(&e->t), 0);
            ck_assert_int_eq(e->t.shape[1], 4);
        }
        ck_assert_ptr_null(qv_st_find(f, "absent"));
        qv_st_close(f);
    }
    /* the file holds exactly the buffer's bytes */
    char *file;
    size_t fsize;
    ck_assert_int_eq(qv_read_file(path, 1 << 20, &file, &fsize), QV_OK);
    ck_assert_uint_eq(fsize, size);
    ck_assert_int_eq(memcmp(file, buf, size), 0);
    free(file);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    free(buf);
    for (int d = 0; d < QV_DTYPE_COUNT; d++) free(want[d]);
    qv_st_writer_free(w);
}
END_TEST

static unsigned char *write_set(const int *order, int n, size_t *size)
{
    static const char *names[] = {"b.f16", "a.i8", "c.f32", "d.bf16", "e.u8"};
    static const qv_dtype dts[] = {QV_F16, QV_I8, QV_F32, QV_BF16, QV_U8};
    qv_st_writer *w = qv_st_writer_new();
    int64_t shape[1] = {7};
    unsigned char data[64];
    for (int i = 0; i < 64; i++) data[i] = (unsigned char)(i * 37 + 11);
    ck_assert_int_eq(qv_st_writer_meta(w, "zeta", "last"), QV_OK);
    for (int i = 0; i < n; i++) ck_assert_int_eq(qv_st_writer_add(w, names[order[i]], dts[order[i]], 1, shape, data), QV_OK);
    ck_assert_int_eq(qv_st_writer_meta(w, "alpha", "first"), QV_OK);
    unsigned char *buf;
    ck_assert_int_eq(qv_st_writer_to_buffer(w, &buf, size), QV_OK);
    qv_st_writer_free(w);
    return buf;
}

/* Same tensors and metadata in any add order -> the same bytes. */
START_TEST(writer_output_independent_of_add_order)
{
    int fwd[] = {0, 1, 2, 3, 4}, rev[] = {4, 3, 2, 1, 0}, mix[] = {2, 0, 4, 1, 3};
    size_t s1, s2, s3;
    unsigned char *a = write_set(fwd, 5, &s1), *b = write_set(rev, 5, &s2), *c = write_set(mix, 5, &s3);
    ck_assert_uint_eq(s1, s2);
    ck_assert_uint_eq(s1, s3);
    ck_assert_int_eq(memcmp(a, b, s1), 0);
    ck_assert_int_eq(memcmp(a, c, s1), 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* Data starts on 8 bytes; tensors are back to back (no gaps: the reference reader rejects them)
 * covering the whole data section, and each is aligned for its dtype. */
START_TEST(writer_layout_aligned_and_contiguous)
{
    int fwd[] = {0, 1, 2, 3, 4};
    size_t size;
    unsigned char *buf = write_set(fwd, 5, &size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    ck_assert_uint_eq((8 + n) % 8, 0);
    qv_st_file *f;
    ck_assert_int_eq(qv_st_open_buffer(buf, size, "<buf>", &f), QV_OK);
    uint64_t covered = 0;
    /* walk in storage order: repeatedly take the entry starting at `covered` */
    for (int k = 0; k < f->n_entries; k++) {
        const qv_st_entry *next = NULL;
        for (int i = 0; i < f->n_entries; i++)
            if (f->entries[i].begin == covered) next = &f->entries[i];
        ck_assert_msg(next != NULL, "gap at data offset %llu", (unsigned long long)covered);
        ck_assert_uint_eq((uintptr_t)next->t.data % qv_dtype_size(next->t.dtype), 0);
        covered = next->end;
    }
    ck_assert_uint_eq(covered, size - 8 - n);
    /* metadata came back, keys as given */
    ck_assert_str_eq(qv_st_meta(f, "alpha"), "first");
    ck_assert_str_eq(qv_st_meta(f, "zeta"), "last");
    ck_assert_ptr_null(qv_st_meta(f, "beta"));
    qv_st_close(f);
    free(buf);
}
END_TEST

START_TEST(metadata_round_trip_escapes_and_unicode)
{
    const char *keys[] = {"quote\"d", "back\\slash", "new\nline", "tab\tand\x01ctl", "日本語 ✓", "format"};
    const char *vals[] = {"v\"1", "C:\\path", "line1\nline2", "\x1f", "😀 emoji", "pt"};
    qv_st_writer *w = qv_st_writer_new();
    for (int i = 0; i < 6; i++) ck_assert_int_eq(qv_st_writer_meta(w, keys[i], vals[i]), QV_OK);
    ck_assert_int_eq(qv_st_writer_meta(w, "format", "qvet"), QV_OK); /* replaces */
    unsigned char *buf;
    size_t size;
    ck_assert_int_eq(qv_st_writer_to_buffer(w, &buf, &size), QV_OK);
    qv_st_file *f;
    ck_assert_msg(qv_st_open_buffer(buf, size, "<buf>", &f) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(f->n_meta, 6);
    ck_assert_int_eq(f->n_entries, 0);
    for (int i = 0; i < 5; i++) ck_assert_str_eq(qv_st_meta(f, keys[i]), vals[i]);
    ck_assert_str_eq(qv_st_meta(f, "format"), "qvet");
    qv_st_close(f);
    free(buf);
    qv_st_writer_free(w);
}
END_TEST

START_TEST(writer_rejects_bad_names_and_duplicates)
{
    qv_st_writer *w = qv_st_writer_new();
    int64_t shape[1] = {2}, neg[1] = {-1};
    float x[2] = {1, 2};
    ck_assert_int_eq(qv_st_writer_add(w, "a", QV_F32, 1, shape, x), QV_OK);
    ck_assert_int_eq(qv_st_writer_add(w, "a", QV_F32, 1, shape, x), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "'a' added twice"));
    ck_assert_int_eq(qv_st_writer_add(w, "__metadata__", QV_F32, 1, shape, x), QV_ERR_INPUT);
    ck_assert_int_eq(qv_st_writer_add(w, "", QV_F32, 1, shape, x), QV_ERR_INPUT);
    ck_assert_int_eq(qv_st_writer_add(w, "n", QV_F32, 1, neg, x), QV_ERR_INPUT);
    ck_assert_int_eq(qv_st_writer_add(w, "bad\xff", QV_F32, 1, shape, x), QV_ERR_INPUT);
    qv_st_writer_free(w);
}
END_TEST

/* Two shards + index: every tensor is found, with the shard it lives in. */
START_TEST(sharded_set_finds_every_tensor_in_its_shard)
{
    char *dir = qv_test_tmpdir();
    int64_t shape[1] = {4};
    float v[4] = {1, 2, 3, 4};
    const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int s = 0; s < 2; s++) {
        qv_st_writer *w = qv_st_writer_new();
        char name[32];
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "t%d", s * 3 + i);
            v[0] = (float)(s * 3 + i);
            ck_assert_int_eq(qv_st_writer_add(w, name, QV_F32, 1, shape, v), QV_OK);
        }
        char *p = qv_path_join(dir, shard[s]);
        ck_assert_int_eq(qv_st_writer_write(w, p), QV_OK);
        free(p);
        qv_st_writer_free(w);
    }
    char *ip = qv_path_join(dir, "model.safetensors.index.json");
    const char *idx = "{\"metadata\": {\"total_size\": 96}, \"weight_map\": {"
                      "\"t0\": \"model-00001-of-00002.safetensors\", \"t1\": \"model-00001-of-00002.safetensors\","
                      "\"t2\": \"model-00001-of-00002.safetensors\", \"t3\": \"model-00002-of-00002.safetensors\","
                      "\"t4\": \"model-00002-of-00002.safetensors\", \"t5\": \"model-00002-of-00002.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, idx, strlen(idx)), QV_OK);
    qv_st_set *set;
    ck_assert_msg(qv_st_set_open_dir(dir, &set) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(set->n_files, 2);
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        const char *file = NULL;
        const qv_st_entry *e = qv_st_set_find(set, name, &file);
        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_nonnull(strstr(file, shard[i / 3]));
        ck_assert(((const float *)e->t.data)[0] == (float)i);
    }
    ck_assert_ptr_null(qv_st_set_find(set, "t6", NULL));
    qv_st_set_close(set);

    /* a weight map naming a tensor its shard lacks */
    const char *bad = "{\"weight_map\": {\"t0\": \"model-00002-of-00002.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, bad, strlen(bad)), QV_OK);
    ck_assert_int_eq(qv_st_set_open_dir(dir, &set), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "model-00002-of-00002.safetensors") &&
                  strstr(qv_last_error(), "'t0' is not in its shard"), "%s", qv_last_error());
    /* a path escaping the folder */
    const char *esc = "{\"weight_map\": {\"t0\": \"../model-00001-of-00002.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, esc, strlen(esc)), QV_OK);
    ck_assert_int_eq(qv_st_set_open_dir(dir, &set), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "plain file names"), "%s", qv_last_error());
    for (int s = 0; s < 2; s++) {
        char *p = qv_path_join(dir, shard[s]);
        unlink(p);
        free(p);
    }
    unlink(ip);
    free(ip);
    rmdir(dir);
    free(dir);
}
END_TEST

/* A tensor named in two shards is refused. */
START_TEST(sharded_set_rejects_tensor_in_two_shards)
{
    char *dir = qv_test_tmpdir();
    int64_t shape[1] = {2};
    float v[2] = {1, 2};
    const char *shard[2] = {"a.safetensors", "b.safetensors"};
    for (int s = 0; s < 2; s++) {
        qv_st_writer *w = qv_st_writer_new();
        ck_assert_int_eq(qv_st_writer_add(w, "same", QV_F32, 1, shape, v), QV_OK);
        char *p = qv_path_join(dir, shard[s]);
        ck_assert_int_eq(qv_st_writer_write(w, p), QV_OK);
        free(p);
        qv_st_writer_free(w);
    }
    char *ip = qv_path_join(dir, "model.safetensors.index.json");
    const char *idx = "{\"weight_map\": {\"same\": \"a.safetensors\", \"other\": \"b.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, idx, strlen(idx)), QV_OK);
    qv_st_set *set;
    ck_assert_int_eq(qv_st_set_open_dir(dir, &set), QV_ERR_INPUT);
    /* 'other' is listed for b but b lacks it */
    ck_assert_msg(strstr(qv_last_error(), "'other' is not in its shard"), "%s", qv_last_error());
    const char *idx4 = "{\"weight_map\": {\"same\": \"a.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, idx4, strlen(idx4)), QV_OK);
    /* only a is opened: fine */
    ck_assert_int_eq(qv_st_set_open_dir(dir, &set), QV_OK);
    qv_st_set_close(set);
    /* both shards opened (via a second listed name present in b): duplicate detected */
    qv_st_writer *w = qv_st_writer_new();
    ck_assert_int_eq(qv_st_writer_add(w, "same", QV_F32, 1, shape, v), QV_OK);
    ck_assert_int_eq(qv_st_writer_add(w, "extra", QV_F32, 1, shape, v), QV_OK);
    char *pb = qv_path_join(dir, "b.safetensors");
    ck_assert_int_eq(qv_st_writer_write(w, pb), QV_OK);
    qv_st_writer_free(w);
    const char *idx5 = "{\"weight_map\": {\"same\": \"a.safetensors\", \"extra\": \"b.safetensors\"}}";
    ck_assert_int_eq(qv_write_file_atomic(ip, idx5, strlen(idx5)), QV_OK);
    ck_assert_int_eq(qv_st_set_open_dir(dir, &set), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "'same' is in two shards"), "%s", qv_last_error());
    unlink(pb);
    free(pb);
    char *pa = qv_path_join(dir, "a.safetensors");
    unlink(pa);
    free(pa);
    unlink(ip);
    free(ip);
    rmdir(dir);
    free(dir);
}
END_TEST

/* An unpadded header puts an F32 tensor at an odd address: the view is an aligned copy with
 * the same values. */
START_TEST(misaligned_tensor_gets_aligned_copy)
{
    char *dir = qv_test_tmpdir();
    char *p = qv_path_join(dir, "odd.safetensors");
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    ck_assert_uint_ne((8 + strlen(hdr)) % 4, 0); /* the point of the test */
    float v[3] = {1.5f, -2.25f, 3e-8f};
    write_raw(p, hdr, 0, v, sizeof v);
    qv_st_file *f;
    ck_assert_msg(qv_st_open(p, &f) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(qv_st_misaligned_copies(f), 1);
    const qv_st_entry *e = qv_st_find(f, "x");
    ck_assert_uint_eq((uintptr_t)e->t.data % 4, 0);
    ck_assert_int_eq(memcmp(e->t.data, v, sizeof v), 0);
    qv_st_close(f);
    unlink(p);
    free(p);
    rmdir(dir);
    free(dir);
}
END_TEST

/* Library-level errors that the CLI suite does not reach in the same form. */
START_TEST(reader_errors_name_file_and_problem)
{
    struct { const char *hdr; const char *want; } cases[] = {
        {"{\"__metadata__\": {\"k\": 1}}", "__metadata__ key 'k' must be a string"},
        {"{\"__metadata__\": [1]}", "__metadata__ must be an object"},
        {"{\"__metadata__\": {}, \"__metadata__\": {}}", "__metadata__ appears twice"},
        {"{} x", "trailing bytes"},
        {"{\"a\": {\"dtype\": \"BOOL\", \"shape\": [1], \"data_offsets\": [0, 1]}}", "dtype BOOL is not supported"},
        {"{\"a\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 1]}}", "\"dtype\" must be a string"},
        {"{\"a\": {\"dtype\": \"U8\", \"shape\": 1, \"data_offsets\": [0, 1]}}", "\"shape\" must be an array"},
        {"{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", "rank 9 exceeds"},
        {"{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, -1]}}", "two non-negative integers"},
        {"{\"a\": {\"dtype\": \"U8\", \"shape\": [\"1\"], \"data_offsets\": [0, 1]}}", "shape[0] must be a non-negative integer"},
    };
    unsigned char data[8] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t hl = strlen(cases[i].hdr);
        unsigned char *buf = calloc(1, 8 + hl + sizeof data);
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
        memcpy(buf + 8, cases[i].hdr, hl);
        memcpy(buf + 8 + hl, data, sizeof data);
        qv_st_file *f = NULL;
        qv_status st = qv_st_open_buffer(buf, 8 + hl + sizeof data, "case.safetensors", &f);
        ck_assert_msg(st != QV_OK, "case %zu accepted", i);
        ck_assert_msg(strstr(qv_last_error(), "case.safetensors") && strstr(qv_last_error(), cases[i].want),
                      "case %zu: '%s' lacks '%s'", i, qv_last_error(), cases[i].want);
        ck_assert_ptr_null(f);
        free(buf);
    }
    /* an empty header object is a valid file with no tensors; so is a zero-size tensor */
    const char *ok = "{\"e\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [0, 0]}}";
    unsigned char buf[256] = {0};
    size_t hl = strlen(ok);
    buf[0] = (unsigned char)hl;
    memcpy(buf + 8, ok, hl);
    qv_st_file *f;
    ck_assert_msg(qv_st_open_buffer(buf, 8 + hl, "ok", &f) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(f->n_entries, 1);
    qv_st_close(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("io");
    tcase_add_test(tc, round_trip_every_dtype_bit_exact);
    tcase_add_test(tc, writer_output_independent_of_add_order);
    tcase_add_test(tc, writer_layout_aligned_and_contiguous);
    tcase_add_test(tc, metadata_round_trip_escapes_and_unicode);
    tcase_add_test(tc, writer_rejects_bad_names_and_duplicates);
    tcase_add_test(tc, sharded_set_finds_every_tensor_in_its_shard);
    tcase_add_test(tc, sharded_set_rejects_tensor_in_two_shards);
    tcase_add_test(tc, misaligned_tensor_gets_aligned_copy);
    tcase_add_test(tc, reader_errors_name_file_and_problem);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
