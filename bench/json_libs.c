/* json_libs.c - the same JSON reading decode with cJSON, cJSON over an arena, jansson and json-c: rate and allocations. */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The measurement behind the choice of JSON library. Each variant turns the
 * firmware simulator's payload (the 1024 payloads of codec_bench.c: ids
 * node-0000..node-1023, ts ~1.73e12, temperature/humidity/pressure with
 * 17-digit values) into a struct tg_reading the same way: parse the whole
 * text (trailing non-space refused), take "sensor" (string), "ts" (integral
 * number) and every other numeric member as a field, free the tree.
 *
 *   cjson         cJSON_ParseWithLengthOpts() over malloc, cJSON_Delete()
 *   cjson+arena   tg_decode_json(): cJSON over the thread's bump arena
 *                 (common/codec_json.c), plus its nesting pre-pass
 *   jansson       json_loadb(flags 0: EOF check on), json_decref()
 *   json-c        json_tokener_parse_ex() with one reused tokener, json_object_put()
 *
 * Every variant's output is first checked against the reading that was
 * encoded, bit for bit. Allocations are counted twice: through the library's
 * own hooks where it has them (cJSON_InitHooks, json_set_alloc_funcs; json-c
 * has none) and by this program's malloc/calloc/realloc, which wrap glibc's
 * and so see every library. Time is CPU time of this thread (per core).
 * Usage: json_libs [DECODES]   (default 5 000 000 per line)
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "payloads.h"
#include "reading.h"

/* jansson and json-c were not meant to share a translation unit: both
 * declare json_object, json_object_iter, json_type, json_object_get and
 * json_object_iter_next. json-c's clashing names are renamed while its
 * headers are read (types only, and two functions this file never calls);
 * both libraries version their symbols, and -ljansson comes first on the
 * link line, so json_object_iter_next binds to jansson's. */
#define json_object jsonc_object
#define json_object_iter jsonc_object_iter
#define json_type jsonc_type
#define json_object_get jsonc_object_get_unused
#define json_object_iter_next jsonc_object_iter_next_unused
#include <json-c/json.h>
typedef struct json_object jc_object;
typedef json_type jc_type;
#undef json_object
#undef json_object_iter
#undef json_type
#undef json_object_get
#undef json_object_iter_next
#include <jansson.h>

#define PAYLOADS 1024
#define PAYLOAD_CAP 512

/* --- counting every allocation of the process ---------------------------- */

/* glibc lets a program replace malloc (see "Replacing malloc" in its
 * manual); these forward to glibc's own allocator and count the calls.
 * Not under AddressSanitizer, which replaces malloc itself: there the
 * process-wide count reads 0 and only the hooks count. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_MALLOC 0
#endif
#endif
#ifndef COUNT_MALLOC
#define COUNT_MALLOC 1
#endif

static uint64_t proc_allocs, proc_bytes;

#if COUNT_MALLOC
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n) {
        proc_allocs++;
        proc_bytes += n;
        return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
        proc_allocs++;
        proc_bytes += n * size;
        return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
        proc_allocs++;
        proc_bytes += n;
        return __libc_realloc(p, n);
}

void free(void *p) {
        __libc_free(p);
}
#endif

/* --- counting through the libraries' hooks ------------------------------- */

static uint64_t hook_allocs;

static void *hook_malloc(size_t n) {
        hook_allocs++;
        return malloc(n);
}

static void hook_free(void *p) {
        free(p);
}

/* --- payloads (the same as codec_bench.c) -------------------------------- */

static struct tg_reading readings[PAYLOADS];
static char json[PAYLOADS][PAYLOAD_CAP];
static size_t json_len[PAYLOADS];

static void payloads_make(void) {
        unsigned i;

        bench_readings_make(readings, PAYLOADS);
        for (i = 0; i < PAYLOADS; i++) {
                struct tg_reading *r = &readings[i];

                json_len[i] = tg_encode_json(r, json[i], sizeof(json[i]));
                if (!json_len[i]) {
                        fprintf(stderr, "json_libs: payload %u does not fit\n", i);
                        exit(1);
                }
        }
}

/* --- shared rules: what a member becomes --------------------------------- */

static int only_white_space(const char *p, const char *end) {
        for (; p < end; p++)
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                        return 0;
        return 1;
}

static enum tg_decode_err double_to_ts(double d, int64_t *out) {
        if (!isfinite(d) || d != floor(d) || fabs(d) >= 9007199254740992.0)
                return TG_DECODE_INVALID_TS;
        *out = (int64_t)d;
        return TG_DECODE_OK;
}

static enum tg_decode_err add_number(struct tg_reading *out, const char *k,
                                     size_t klen, double v) {
        int r;

        if (!isfinite(v))
                return TG_DECODE_NON_FINITE;
        r = tg_reading_add_field(out, k, klen, v);
        if (r == -ENOSPC)
                return TG_DECODE_TOO_MANY_FIELDS;
        return r ? TG_DECODE_BAD_FIELD_NAME : TG_DECODE_OK;
}

static enum tg_decode_err finish(const struct tg_reading *out, int have_id,
                                 int have_ts) {
        if (!have_id)
                return TG_DECODE_MISSING_ID;
        if (!have_ts)
                return TG_DECODE_MISSING_TS;
        return out->nfields ? TG_DECODE_OK : TG_DECODE_NO_FIELDS;
}

/* --- cJSON over malloc ---------------------------------------------------- */

static enum tg_decode_err decode_cjson(const char *text, size_t len,
                                       struct tg_reading *out) {
        const char *end = NULL;
        const cJSON *it;
        cJSON *root;
        enum tg_decode_err err = TG_DECODE_OK;
        int have_id = 0, have_ts = 0;

        tg_reading_clear(out);
        root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (!root)
                return TG_DECODE_NOT_DECODABLE;
        if (!end || !only_white_space(end, text + len))
                err = TG_DECODE_NOT_DECODABLE;
        else if (!cJSON_IsObject(root))
                err = TG_DECODE_WRONG_TYPE;
        for (it = err ? NULL : root->child; it && !err; it = it->next) {
                const char *k = it->string;

                if (!strcmp(k, "sensor")) {
                        if (!cJSON_IsString(it) ||
                            tg_reading_set_sensor(out, it->valuestring, strlen(it->valuestring)))
                                err = TG_DECODE_BAD_ID;
                        have_id = 1;
                } else if (!strcmp(k, "ts")) {
                        err = cJSON_IsNumber(it) ? double_to_ts(it->valuedouble, &out->ts_ms)
                                                 : TG_DECODE_INVALID_TS;
                        have_ts = 1;
                } else if (cJSON_IsNumber(it)) {
                        err = add_number(out, k, strlen(k), it->valuedouble);
                }
        }
        cJSON_Delete(root);
        return err ? err : finish(out, have_id, have_ts);
}

static enum tg_decode_err decode_cjson_arena(const char *text, size_t len,
                                             struct tg_reading *out) {
        return tg_decode_json(text, len, out);
}

/* --- jansson -------------------------------------------------------------- */

static enum tg_decode_err decode_jansson(const char *text, size_t len,
                                         struct tg_reading *out) {
        json_error_t jerr;
        json_t *root, *v;
        const char *k;
        enum tg_decode_err err = TG_DECODE_OK;
        int have_id = 0, have_ts = 0;

        tg_reading_clear(out);
        root = json_loadb(text, len, 0, &jerr); /* EOF check on: trailing data refused */
        if (!root)
                return TG_DECODE_NOT_DECODABLE;
        if (!json_is_object(root)) {
                json_decref(root);
                return TG_DECODE_WRONG_TYPE;
        }
        json_object_foreach(root, k, v) {
                if (err)
                        break;
                if (!strcmp(k, "sensor")) {
                        if (!json_is_string(v) ||
                            tg_reading_set_sensor(out, json_string_value(v), json_string_length(v)))
                                err = TG_DECODE_BAD_ID;
                        have_id = 1;
                } else if (!strcmp(k, "ts")) {
                        if (json_is_integer(v))
                                out->ts_ms = json_integer_value(v);
                        else
                                err = json_is_real(v) ? double_to_ts(json_real_value(v), &out->ts_ms)
                                                      : TG_DECODE_INVALID_TS;
                        have_ts = 1;
                } else if (json_is_number(v)) {
                        err = add_number(out, k, strlen(k), json_number_value(v));
                }
        }
        json_decref(root);
        return err ? err : finish(out, have_id, have_ts);
}

/* --- json-c --------------------------------------------------------------- */

static struct json_tokener *jc_tok;

static enum tg_decode_err decode_json_c(const char *text, size_t len,
                                        struct tg_reading *out) {
        jc_object *root;
        struct lh_entry *e;
        enum tg_decode_err err = TG_DECODE_OK;
        int have_id = 0, have_ts = 0;

        tg_reading_clear(out);
        json_tokener_reset(jc_tok);
        root = json_tokener_parse_ex(jc_tok, text, (int)len);
        if (!root || json_tokener_get_error(jc_tok) != json_tokener_success) {
                json_object_put(root);
                return TG_DECODE_NOT_DECODABLE;
        }
        if (!only_white_space(text + json_tokener_get_parse_end(jc_tok), text + len))
                err = TG_DECODE_NOT_DECODABLE;
        else if (!json_object_is_type(root, json_type_object))
                err = TG_DECODE_WRONG_TYPE;
        /* What json_object_object_foreach() expands to, with our types. */
        for (e = err ? NULL : lh_table_head(json_object_get_object(root)); e && !err;
             e = lh_entry_next(e)) {
                const char *k = lh_entry_k(e);
                jc_object *v = (jc_object *)lh_entry_v(e);
                jc_type t = json_object_get_type(v);

                if (!strcmp(k, "sensor")) {
                        if (t != json_type_string ||
                            tg_reading_set_sensor(out, json_object_get_string(v),
                                                  (size_t)json_object_get_string_len(v)))
                                err = TG_DECODE_BAD_ID;
                        have_id = 1;
                } else if (!strcmp(k, "ts")) {
                        if (t == json_type_int)
                                out->ts_ms = json_object_get_int64(v);
                        else
                                err = t == json_type_double
                                              ? double_to_ts(json_object_get_double(v), &out->ts_ms)
                                              : TG_DECODE_INVALID_TS;
                        have_ts = 1;
                } else if (t == json_type_double || t == json_type_int) {
                        err = add_number(out, k, strlen(k), json_object_get_double(v));
                }
        }
        json_object_put(root);
        return err ? err : finish(out, have_id, have_ts);
}

/* --- the measurement ------------------------------------------------------ */

typedef enum tg_decode_err (*decode_fn)(const char *text, size_t len,
                                        struct tg_reading *out);

static double thread_cpu_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int same_reading(const struct tg_reading *a, const struct tg_reading *b) {
        uint16_t i;

        if (a->sensor_len != b->sensor_len || memcmp(a->sensor, b->sensor, a->sensor_len) ||
            a->ts_ms != b->ts_ms || a->nfields != b->nfields)
                return 0;
        for (i = 0; i < a->nfields; i++)
                if (strcmp(a->fields[i].name, b->fields[i].name) ||
                    memcmp(&a->fields[i].value, &b->fields[i].value, sizeof(double)))
                        return 0;
        return 1;
}

static volatile double sink;

/* @p hooked: the variant's allocations also pass through hook_malloc. */
static double bench(const char *name, decode_fn decode, int hooked, uint64_t n) {
        struct tg_reading r;
        double t0, t1, sum = 0, rate;
        uint64_t k, a0, b0, h0, allocs, bytes, hooks;
        unsigned i;

        for (i = 0; i < PAYLOADS; i++) { /* correctness, and warm-up */
                enum tg_decode_err err = decode(json[i], json_len[i], &r);

                if (err != TG_DECODE_OK || !same_reading(&r, &readings[i])) {
                        fprintf(stderr, "json_libs: %s: payload %u decoded wrong (%s)\n", name,
                                i, tg_decode_err_name(err));
                        exit(1);
                }
        }
        a0 = proc_allocs;
        b0 = proc_bytes;
        h0 = hook_allocs;
        t0 = thread_cpu_s();
        for (k = 0; k < n; k++) {
                i = (unsigned)(k % PAYLOADS);
                if (decode(json[i], json_len[i], &r) != TG_DECODE_OK) {
                        fprintf(stderr, "json_libs: %s: payload %u refused\n", name, i);
                        exit(1);
                }
                sum += r.fields[2].value;
        }
        t1 = thread_cpu_s();
        allocs = proc_allocs - a0;
        bytes = proc_bytes - b0;
        hooks = hook_allocs - h0;
        sink = sum;
        rate = n / (t1 - t0) / 1e6;
        printf("%-12s %9" PRIu64 " decodes  %7.3f s CPU  %5.2f M decodes/s/core  %5.0f ns/decode",
               name, n, t1 - t0, rate, (t1 - t0) / n * 1e9);
        if (COUNT_MALLOC)
                printf("  allocs/decode %5.2f", (double)allocs / n);
        else
                printf("  allocs/decode   n/a");
        if (hooked)
                printf(" (hook: %5.2f)", (double)hooks / n);
        else
                printf(" (hook:   n/a)");
        if (COUNT_MALLOC)
                printf("  %5.0f B allocated/decode", (double)bytes / n);
        putchar('\n');
        fflush(stdout);
        return rate;
}

int main(int argc, char **argv) {
        cJSON_Hooks counting = {.malloc_fn = hook_malloc, .free_fn = hook_free};
        double r_cjson, r_arena, r_jansson, r_jsonc, best;
        const char *best_name;
        uint64_t n = 5000000;

        if (argc > 1) {
                char *end;

                n = strtoull(argv[1], &end, 10);
                if (*end || n == 0 || argv[1][0] == '-') {
                        fprintf(stderr, "usage: %s [DECODES]\n", argv[0]);
                        return 2;
                }
        }
        payloads_make();
        jc_tok = json_tokener_new();
        if (!jc_tok) {
                fprintf(stderr, "json_libs: json_tokener_new failed\n");
                return 1;
        }
        json_set_alloc_funcs(hook_malloc, hook_free);
        printf("# cJSON %d.%d.%d, jansson %s, json-c %s; payload e.g. %.*s (%zu B)\n",
               CJSON_VERSION_MAJOR, CJSON_VERSION_MINOR, CJSON_VERSION_PATCH, JANSSON_VERSION,
               json_c_version(), (int)json_len[7], json[7], json_len[7]);

        /* Plain cJSON first: tg_decode_json() installs its own process-wide
         * cJSON hooks on first use, replacing these counting ones. */
        cJSON_InitHooks(&counting);
        r_cjson = bench("cjson", decode_cjson, 1, n);
        r_arena = bench("cjson+arena", decode_cjson_arena, 0, n);
        r_jansson = bench("jansson", decode_jansson, 1, n);
        r_jsonc = bench("json-c", decode_json_c, 0, n);
        json_tokener_free(jc_tok);

        best = r_cjson, best_name = "cjson";
        if (r_arena > best)
                best = r_arena, best_name = "cjson+arena";
        if (r_jansson > best)
                best = r_jansson, best_name = "jansson";
        if (r_jsonc > best)
                best = r_jsonc, best_name = "json-c";
        printf("# fastest: %s; relative to it: cjson %.2f, cjson+arena %.2f, jansson %.2f, json-c %.2f\n",
               best_name, r_cjson / best, r_arena / best, r_jansson / best, r_jsonc / best);
        return 0;
}
