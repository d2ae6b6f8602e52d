/* codec_json.c - JSON readings in (a one-pass fast path, else cJSON over a thread-local arena) and JSON text out. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "codec.h"
#include "double_text.h"
#include "window.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * cJSON allocates every node with malloc. To keep the per-reading path free
 * of allocation, cJSON's hooks point at a bump arena owned by the calling
 * thread: it is reset before each parse and never freed node by node. The
 * hooks are process-wide, so a thread without an active arena (a test tool
 * using cJSON for something else) falls through to malloc/free, and free
 * recognises arena pointers by address.
 */
#define ARENA_SIZE (TG_PAYLOAD_MAX * 8)

struct arena {
        size_t used;
        int active;
        int exhausted; /* an allocation failed during this parse */
        _Alignas(max_align_t) unsigned char mem[ARENA_SIZE];
        char text[TG_PAYLOAD_MAX]; /* a payload with its NUL escapes rewritten */
};

static __thread struct arena *tls_arena;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static pthread_key_t arena_key; /* frees a thread's arena when it exits */

static void *arena_malloc(size_t n) {
        struct arena *a = tls_arena;
        size_t off;

        if (!a || !a->active)
                return malloc(n);
        off = (a->used + (_Alignof(max_align_t) - 1)) &
              ~(size_t)(_Alignof(max_align_t) - 1);
        if (off > ARENA_SIZE || n > ARENA_SIZE - off) {
                a->exhausted = 1; /* cJSON fails the parse: reported as too large */
                return NULL;
        }
        a->used = off + n;
        return a->mem + off;
}

static void arena_free(void *p) {
        struct arena *a = tls_arena;

        if (a && (unsigned char *)p >= a->mem &&
            (unsigned char *)p < a->mem + ARENA_SIZE)
                return;
        free(p);
}

static void hooks_install(void) {
        cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};

        pthread_key_create(&arena_key, free);
        cJSON_InitHooks(&hooks);
}

/* The arena itself is allocated once per thread, on that thread's first
 * JSON payload; it is small enough to keep for the thread's life. */
static struct arena *arena_get(void) {
        pthread_once(&hooks_once, hooks_install);
        if (!tls_arena && (tls_arena = calloc(1, sizeof(*tls_arena))))
                pthread_setspecific(arena_key, tls_arena);
        return tls_arena;
}

/* One member of the payload object, from cJSON's tree or from the fast
 * path below. Strings are borrowed and not NUL-terminated; from cJSON their
 * length is strlen()'s, whole since rewrite_nul_escapes(). */
enum member_type { MEMBER_OTHER, MEMBER_STRING, MEMBER_NUMBER };

struct member {
        const char *key;
        size_t klen;
        enum member_type type;
        const char *str;
        size_t slen;
        double num;
};

static enum tg_decode_err member_ts(const struct member *m,
                                    const struct tg_decode_opts *o, int64_t *out) {
        if (o->ts_unit == TG_TS_UNIT_RFC3339) {
                if (m->type != MEMBER_STRING)
                        return TG_DECODE_INVALID_TS;
                return tg_ts_from_rfc3339(m->str, m->slen, out);
        }
        if (m->type != MEMBER_NUMBER)
                return TG_DECODE_INVALID_TS;
        return tg_ts_from_double(m->num, o->ts_unit, out);
}

static int key_is(const struct member *m, const char *want, size_t want_len) {
        return want && m->klen == want_len && !memcmp(m->key, want, want_len);
}

/* Why member @p m is refused, tg_reading_add_field() having said @p r (0:
 * a field past max_fields): off the common path, so that the refusals add
 * nothing to the fast path's member loop. */
static enum tg_decode_err __attribute__((noinline, cold))
member_refused(const struct member *m, int r) {
        if (r == -EEXIST)
                return tg_decode_duplicate("member", m->key, m->klen);
        if (r == -ENOSPC || r == 0)
                return TG_DECODE_TOO_MANY_FIELDS;
        return TG_DECODE_BAD_FIELD_NAME;
}

/* The member is the id, the timestamp, a field, or ignored. A second id
 * or timestamp member is refused whatever its value; a field only when it
 * is a field again (a number, kept): members nobody reads are not
 * compared, so the check costs nothing beyond the field lookup that
 * tg_reading_add_field() makes anyway. Only the first refusal counts, so
 * have_id and have_ts say whether an id or timestamp member came before. */
static enum tg_decode_err member_to_reading(const struct member *m,
                                            const struct tg_decode_opts *o,
                                            const struct tg_decode_keys *k,
                                            struct tg_reading *out, int *have_id,
                                            int *have_ts) {
        enum tg_decode_err err;

        if (key_is(m, k->id, k->id_len)) {
                if (__builtin_expect(*have_id, 0))
                        return member_refused(m, -EEXIST);
                if (m->type != MEMBER_STRING || m->slen > o->max_id ||
                    tg_reading_set_sensor(out, m->str, m->slen))
                        return TG_DECODE_BAD_ID;
                *have_id = 1;
        } else if (key_is(m, k->ts, k->ts_len)) {
                if (__builtin_expect(*have_ts, 0))
                        return member_refused(m, -EEXIST);
                if ((err = member_ts(m, o, &out->ts_ms)))
                        return err;
                *have_ts = 1;
        } else if (m->type == MEMBER_NUMBER && tg_decode_keep_field(o, m->key, m->klen)) {
                int r;

                if (!isfinite(m->num))
                        return TG_DECODE_NON_FINITE;
                r = tg_reading_add_field(out, m->key, m->klen, m->num);
                if (__builtin_expect(r != 0 || out->nfields > o->max_fields, 0))
                        return member_refused(m, r);
        }
        return TG_DECODE_OK;
}

static enum tg_decode_err json_to_reading(const cJSON *root,
                                          const struct tg_decode_opts *o,
                                          struct tg_reading *out) {
        const cJSON *it;
        enum tg_decode_err err;
        int have_id = 0, have_ts = 0;
        struct tg_decode_keys k;

        if (!cJSON_IsObject(root))
                return TG_DECODE_WRONG_TYPE;
        tg_decode_keys_init(&k, o);

        cJSON_ArrayForEach(it, root) {
                struct member m = {.key = it->string, .klen = strlen(it->string)};

                if (cJSON_IsString(it)) {
                        m.type = MEMBER_STRING;
                        m.str = it->valuestring;
                        m.slen = strlen(it->valuestring);
                } else if (cJSON_IsNumber(it)) {
                        m.type = MEMBER_NUMBER;
                        m.num = it->valuedouble;
                }
                if ((err = member_to_reading(&m, o, &k, out, &have_id, &have_ts)))
                        return err;
        }
        return tg_decode_finish(o, out, have_id, have_ts);
}

/*
 * The fast path. Nearly every payload is a flat object in plain RFC 8259
 * syntax: this reads those in one pass, without cJSON's tree, its copies
 * and its strtod, and with numbers from double_text.c (exact, as strtod).
 * Whatever is not plain goes to the cJSON path unchanged, which therefore
 * decides every refusal: an escape or control byte in a string, a nested
 * value, a number beyond the exact converter or longer than 63 bytes (all
 * that upstream cJSON 1.7.15 hands to strtod; Debian's, patched for
 * CVE-2023-26819, reads on), white space other than JSON's four, a limit
 * of the prescan reached, a syntax error, more than FAST_MEMBERS_MAX
 * members (cJSON could then run out of arena). What is accepted here cJSON
 * accepts too, as the same members in the same order, so the result and
 * the reading are the same either way (test_codec.c and the JSON fuzzer
 * compare both on every input).
 */
#define FAST_MEMBERS_MAX 256
#define CJSON_NUMBER_MAX 63 /* upstream cJSON 1.7.15 copies no more to strtod */

static int json_ws(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes a plain string holds as they are: not '"', '\\' or a control byte. */
static const unsigned char plain_byte[256] = {
        [0x20 ... 0x21] = 1, /* '"' is 0x22 */
        [0x23 ... 0x5b] = 1, /* '\\' is 0x5c */
        [0x5d ... 0xff] = 1,
};

/* A string from p[*i] (the opening quote); its bytes without quotes. */
static int fast_string(const char *p, size_t len, size_t *i, size_t max,
                       const char **s, size_t *slen) {
        size_t start = *i + 1, j = start;

        while (j < len && plain_byte[(unsigned char)p[j]])
                j++;
        if (j == len || p[j] != '"' || j - start > max)
                return -1; /* unterminated, an escape, a control byte, too long */
        *s = p + start;
        *slen = j - start;
        *i = j + 1;
        return 0;
}

/* @return 1 with *result set, or 0: not plain, decide with cJSON. */
static int fast_decode(const char *p, size_t len, const struct tg_decode_opts *o,
                       struct tg_reading *out, enum tg_decode_err *result) {
        enum tg_decode_err err = TG_DECODE_OK; /* the first member's refusal */
        int have_id = 0, have_ts = 0;
        size_t i = 0, members = 0;
        struct tg_decode_keys k;

#define SKIP_WS()                                                              \
        do {                                                                   \
                while (i < len && json_ws(p[i]))                               \
                        i++;                                                   \
        } while (0)

        if (o->max_depth < 1)
                return 0;
        tg_decode_keys_init(&k, o);
        SKIP_WS();
        if (i == len || p[i] != '{')
                return 0;
        i++;
        SKIP_WS();
        if (i < len && p[i] == '}') {
                i++;
        } else {
                for (;;) {
                        struct member m = {.type = MEMBER_OTHER};
                        size_t n;
                        int exact;

                        if (++members > FAST_MEMBERS_MAX || i == len || p[i] != '"' ||
                            fast_string(p, len, &i, o->max_string, &m.key, &m.klen))
                                return 0;
                        SKIP_WS();
                        if (i == len || p[i] != ':')
                                return 0;
                        i++;
                        SKIP_WS();
                        if (i == len)
                                return 0;
                        if (p[i] == '"') {
                                if (fast_string(p, len, &i, o->max_string, &m.str, &m.slen))
                                        return 0;
                                m.type = MEMBER_STRING;
                        } else if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
                                n = tg_json_number_scan(p + i, len - i, &m.num, &exact);
                                if (!n || !exact || n > CJSON_NUMBER_MAX)
                                        return 0;
                                i += n;
                                m.type = MEMBER_NUMBER;
                        } else if (len - i >= 4 && !memcmp(p + i, "true", 4)) {
                                i += 4;
                        } else if (len - i >= 5 && !memcmp(p + i, "false", 5)) {
                                i += 5;
                        } else if (len - i >= 4 && !memcmp(p + i, "null", 4)) {
                                i += 4;
                        } else {
                                return 0; /* a container, or not JSON */
                        }
                        if (!err)
                                err = member_to_reading(&m, o, &k, out, &have_id, &have_ts);
                        SKIP_WS();
                        if (i < len && p[i] == ',') {
                                i++;
                                SKIP_WS();
                                continue;
                        }
                        if (i < len && p[i] == '}') {
                                i++;
                                break;
                        }
                        return 0;
                }
        }
        SKIP_WS();
        if (i != len)
                return 0;
#undef SKIP_WS
        *result = err ? err : tg_decode_finish(o, out, have_id, have_ts);
        return 1;
}

/* cJSON has no depth limit of its own below 1000, and it copies every
 * string: nesting and string lengths are measured first, in one pass,
 * before any parse work. *nul is set when a string holds an escaped NUL. */
static enum tg_decode_err json_prescan(const char *p, size_t len,
                                       const struct tg_decode_opts *o, int *nul) {
        size_t depth = 0, i, str_start = 0;
        int in_string = 0;

        *nul = 0;
        for (i = 0; i < len; i++) {
                char c = p[i];

                if (in_string) {
                        if (c == '\\') {
                                if (len - i >= 6 && !memcmp(p + i + 1, "u0000", 5))
                                        *nul = 1;
                                i++;
                        } else if (c == '"') {
                                in_string = 0;
                                if (i - str_start > o->max_string)
                                        return TG_DECODE_STRING_TOO_LONG;
                        }
                } else if (c == '"') {
                        in_string = 1;
                        str_start = i + 1;
                } else if (c == '{' || c == '[') {
                        if (++depth > o->max_depth)
                                return TG_DECODE_TOO_DEEP;
                } else if ((c == '}' || c == ']') && depth) {
                        depth--;
                }
        }
        return TG_DECODE_OK;
}

/*
 * cJSON ends its strings at a NUL, so a string holding an escaped NUL
 * would reach the decoders cut short: "node-1\u0000x" as "node-1". Such
 * escapes are rewritten, in a copy, to the byte 0xff before the parse.
 * Like NUL, 0xff is never valid text (tg_text_valid() refuses both) and
 * matches no id, timestamp or label key; it decodes to one byte as NUL
 * does; and it ends no C string. So an id, field name, unit or timestamp
 * holding one is refused as it is from CBOR holding a NUL, and strings
 * nobody reads are unaffected.
 * @return the length of the copy in @p dst.
 */
static size_t rewrite_nul_escapes(const char *p, size_t len, char *dst) {
        size_t i, o = 0;
        int in_string = 0;

        for (i = 0; i < len; i++) {
                char c = p[i];

                if (in_string && c == '\\') {
                        if (len - i >= 6 && !memcmp(p + i + 1, "u0000", 5)) {
                                dst[o++] = (char)0xff;
                                i += 5;
                                continue;
                        }
                        dst[o++] = c;
                        if (++i < len)
                                dst[o++] = p[i];
                        continue;
                }
                if (c == '"')
                        in_string = !in_string;
                dst[o++] = c;
        }
        return o;
}

cJSON *tg_json_parse_arena(const char *text, size_t len, enum tg_decode_err *err);
void tg_json_arena_release(void);

static int only_white_space(const char *p, const char *end) {
        for (; p < end; p++)
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                        return 0;
        return 1;
}

/*
 * The prescan with @p opts' limits, then cJSON into the calling thread's
 * arena, with the check that nothing but white space follows the value.
 * The tree stays valid until tg_json_arena_release(), on the same thread,
 * which every caller makes before its next parse.
 * @return the root, or NULL with *err saying why (the arena then ended).
 */
static cJSON *arena_parse(const char *text, size_t len,
                          const struct tg_decode_opts *opts, enum tg_decode_err *err) {
        const char *parse_end = NULL;
        struct arena *a;
        cJSON *root;
        int nul;

        if ((*err = json_prescan(text, len, opts, &nul)))
                return NULL;
        if (!(a = arena_get())) {
                *err = TG_DECODE_TOO_LARGE;
                return NULL;
        }
        if (nul) {
                len = rewrite_nul_escapes(text, len, a->text);
                text = a->text;
        }
        a->used = 0;
        a->exhausted = 0;
        a->active = 1;
        root = cJSON_ParseWithLengthOpts(text, len, &parse_end, 0);
        if (!root)
                *err = a->exhausted ? TG_DECODE_TOO_LARGE : TG_DECODE_NOT_DECODABLE;
        else if (!parse_end || !only_white_space(parse_end, text + len))
                *err = TG_DECODE_NOT_DECODABLE; /* a second value or garbage after it */
        if (*err) {
                tg_json_arena_release();
                return NULL;
        }
        return root;
}

/* The payload through the prescan and cJSON; @p out is clear. */
static enum tg_decode_err decode_cjson(const char *text, size_t len,
                                       const struct tg_decode_opts *opts,
                                       struct tg_reading *out) {
        enum tg_decode_err err;
        cJSON *root;

        if (!(root = arena_parse(text, len, opts, &err)))
                return err;
        err = json_to_reading(root, opts, out);
        tg_json_arena_release();
        return err;
}

enum tg_decode_err tg_decode_json_ex(const void *payload, size_t len,
                                     const struct tg_decode_opts *opts,
                                     struct tg_reading *out) {
        enum tg_decode_err err;

        tg_reading_clear(out);
        if (len > opts->max_payload || len > TG_PAYLOAD_MAX)
                return TG_DECODE_TOO_LARGE;
        if (fast_decode(payload, len, opts, out, &err))
                return err;
        tg_reading_clear(out); /* the fast path may have begun filling it */
        return decode_cjson(payload, len, opts, out);
}

enum tg_decode_err tg_decode_json_cjson_ex(const void *payload, size_t len,
                                           const struct tg_decode_opts *opts,
                                           struct tg_reading *out) {
        tg_reading_clear(out);
        if (len > opts->max_payload || len > TG_PAYLOAD_MAX)
                return TG_DECODE_TOO_LARGE;
        return decode_cjson(payload, len, opts, out);
}

/*
 * For the other JSON codecs (SenML): parse @p text into the calling thread's
 * arena with tg_decode_json()'s default size and depth limits and its
 * trailing-text check; string limits are the caller's to apply. The tree
 * stays valid until tg_json_arena_release(), which the caller makes on the
 * same thread before its next parse.
 * @return the root, or NULL with *err saying why.
 */
cJSON *tg_json_parse_arena(const char *text, size_t len,
                           enum tg_decode_err *err) {
        *err = TG_DECODE_TOO_LARGE;
        if (len > TG_PAYLOAD_MAX)
                return NULL;
        return arena_parse(text, len, &tg_decode_defaults, err);
}

/** @brief End the calling thread's arena parse: its tree is gone. */
void tg_json_arena_release(void) {
        if (tls_arena) {
                tls_arena->active = 0;
                tls_arena->used = 0;
        }
}

size_t tg_json_put_string(char *buf, size_t cap, const char *s, size_t len) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0, i;

#define PUT(c)                                                                 \
        do {                                                                   \
                if (o + 1 >= cap)                                              \
                        return 0;                                              \
                buf[o++] = (c);                                                \
        } while (0)

        PUT('"');
        for (i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '"' || c == '\\') {
                        PUT('\\');
                        PUT((char)c);
                } else if (c < 0x20) {
                        PUT('\\');
                        PUT('u');
                        PUT('0');
                        PUT('0');
                        PUT(hex[c >> 4]);
                        PUT(hex[c & 0xf]);
                } else {
                        PUT((char)c);
                }
        }
        PUT('"');
#undef PUT
        buf[o] = '\0';
        return o;
}

size_t tg_json_put_double(char *buf, size_t cap, double v) {
        char text[TG_DOUBLE_TEXT_MAX + 1];
        size_t n = tg_double_format(v, text);

        if (!n) {
                memcpy(text, "null", 5); /* NaN and infinities have no JSON */
                n = 4;
        }
        if (n >= cap)
                return 0;
        memcpy(buf, text, n + 1);
        return n;
}

void tg_jw_init(struct tg_jw *w, char *buf, size_t cap) {
        w->buf = buf;
        w->cap = cap;
        w->len = 0;
        w->overflow = cap == 0;
        if (cap)
                buf[0] = '\0';
}

size_t tg_jw_finish(const struct tg_jw *w) {
        return w->overflow ? 0 : w->len;
}

void tg_jw_raw(struct tg_jw *w, const char *s) {
        size_t n = strlen(s);

        if (w->overflow || w->len + n >= w->cap) {
                w->overflow = 1;
                return;
        }
        memcpy(w->buf + w->len, s, n + 1);
        w->len += n;
}

void tg_jw_string(struct tg_jw *w, const char *s, size_t len) {
        size_t n;

        if (w->overflow)
                return;
        n = tg_json_put_string(w->buf + w->len, w->cap - w->len, s, len);
        if (!n)
                w->overflow = 1;
        w->len += n;
}

void tg_jw_double(struct tg_jw *w, double v) {
        size_t n;

        if (w->overflow)
                return;
        n = tg_json_put_double(w->buf + w->len, w->cap - w->len, v);
        if (!n)
                w->overflow = 1;
        w->len += n;
}

void tg_jw_int(struct tg_jw *w, int64_t v) {
        char tmp[24];

        snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
        tg_jw_raw(w, tmp);
}

void tg_jw_field_stats(struct tg_jw *w, const struct tg_field_stats *f) {
        static const char *const names[] = {",\"min\":", ",\"max\":", ",\"mean\":",
                                            ",\"sum\":", ",\"stddev\":", ",\"first\":",
                                            ",\"last\":"};
        const double v[] = {f->min, f->max, f->mean, f->sum, tg_field_stats_stddev(f),
                            f->first, f->last};
        int overflow = 0;
        size_t i;

        tg_jw_raw(w, "{\"count\":");
        tg_jw_int(w, f->count);
        for (i = 0; i < sizeof(v) / sizeof(*v); i++) {
                tg_jw_raw(w, names[i]);
                tg_jw_double(w, v[i]); /* null when not finite */
                overflow |= !isfinite(v[i]);
        }
        tg_jw_raw(w, overflow ? ",\"overflow\":true}" : "}");
}

/* The reading as a JSON object without its closing brace: flat
 * ({"sensor":..,"ts":..,"temperature":..}) or @p nested, the raw record's
 * ({"sensor":..,"ts":..,"fields":{..}[,"units":{..}]). */
static void put_reading(struct tg_jw *w, const struct tg_reading *r, int nested) {
        uint16_t i;

        tg_jw_raw(w, "{\"sensor\":");
        tg_jw_string(w, r->sensor, r->sensor_len);
        tg_jw_raw(w, ",\"ts\":");
        tg_jw_int(w, r->ts_ms);
        tg_jw_raw(w, nested ? ",\"fields\":{" : r->nfields ? "," : "");
        for (i = 0; i < r->nfields; i++) {
                if (i)
                        tg_jw_raw(w, ",");
                tg_jw_string(w, r->fields[i].name, r->fields[i].name_len);
                tg_jw_raw(w, ":");
                tg_jw_double(w, r->fields[i].value);
        }
        if (nested) {
                int any = 0;

                tg_jw_raw(w, "}");
                /* Units, when the payload had them (SenML): {"temperature":"Cel"} */
                for (i = 0; i < r->nfields; i++) {
                        if (!r->fields[i].unit[0])
                                continue;
                        tg_jw_raw(w, any++ ? "," : ",\"units\":{");
                        tg_jw_string(w, r->fields[i].name, r->fields[i].name_len);
                        tg_jw_raw(w, ":");
                        tg_jw_string(w, r->fields[i].unit, strlen(r->fields[i].unit));
                }
                if (any)
                        tg_jw_raw(w, "}");
        }
}

void tg_jw_raw_record_open(struct tg_jw *w, const struct tg_reading *r) {
        put_reading(w, r, 1);
}

static size_t encode_json(const struct tg_reading *r, char *buf, size_t cap,
                          int nested) {
        struct tg_jw w;

        tg_jw_init(&w, buf, cap);
        put_reading(&w, r, nested);
        tg_jw_raw(&w, "}");
        return tg_jw_finish(&w);
}

size_t tg_encode_json(const struct tg_reading *r, char *buf, size_t cap) {
        return encode_json(r, buf, cap, 0);
}

size_t tg_encode_raw_record(const struct tg_reading *r, char *buf, size_t cap) {
        return encode_json(r, buf, cap, 1);
}
