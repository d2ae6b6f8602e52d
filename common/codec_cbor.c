/* codec_cbor.c - CBOR readings in and out with libcbor's streaming API (no allocation). */
/* SPDX-License-Identifier: Apache-2.0 */
#include "codec.h"

#include <cbor.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cbor_event.h"

/* The items come one at a time from cbor_event.h; tg_decode_cbor_ex()
 * walks the structure with a small explicit stack. */

/* An open container: a definite one counts down its remaining items (a map
 * has two per entry), an indefinite one (remaining == -1) ends at a break. */
struct frame {
        int64_t remaining;
        int is_map;
        enum ev_type chunks; /* indefinite string: the only item type allowed in it */
};

enum key_kind { KEY_NONE, KEY_SENSOR, KEY_TS, KEY_FIELD, KEY_OTHER };

/* Why tg_reading_add_field() result @p r (or a reading past max_fields, r
 * being 0) refuses a field: out of the common path. */
static enum tg_decode_err __attribute__((noinline, cold)) field_refused(int r) {
        if (r == -EEXIST)
                return TG_DECODE_DUPLICATE_MEMBER; /* the caller names the member */
        if (r == -ENOSPC || r == 0)
                return TG_DECODE_TOO_MANY_FIELDS;
        return TG_DECODE_BAD_FIELD_NAME;
}

/* The refusal of the member @p key: a duplicate's detail names it. Keeping
 * the key for this in the caller, whose loop holds it anyway, spares
 * top_value() two saved registers. */
static enum tg_decode_err __attribute__((noinline, cold))
member_refused(enum tg_decode_err err, const char *key, size_t klen) {
        return err == TG_DECODE_DUPLICATE_MEMBER ? tg_decode_duplicate("member", key, klen)
                                                 : err;
}

/* The id and the timestamp members a payload gave (a set of SEEN_*). */
enum { SEEN_ID = 1, SEEN_TS = 2 };

/* The value of a top-level member of kind @p kind into @p out, its kind
 * added to @p seen. A refusal for a duplicate leaves naming the member to
 * the caller (member_refused()). Only the first refusal counts: after one,
 * @p seen no longer matters, so it is set before the work that may refuse
 * (a pointer kept across a call would cost two saved registers here). */
static enum tg_decode_err top_value(struct tg_reading *out,
                                    const struct tg_decode_opts *o,
                                    enum key_kind kind, const char *key,
                                    size_t klen, const struct cbor_event *ev,
                                    unsigned *seen) {
        enum tg_decode_err err;
        double v;
        int r;

        if (kind == KEY_SENSOR) {
                if (*seen & SEEN_ID) /* the fast path's check; the walk's is at the key */
                        return TG_DECODE_DUPLICATE_MEMBER;
                *seen |= SEEN_ID;
                if (ev->type != EV_STRING || ev->len > o->max_id ||
                    tg_reading_set_sensor(out, (const char *)ev->s, ev->len))
                        return TG_DECODE_BAD_ID;
                return TG_DECODE_OK;
        }
        if (kind == KEY_TS) {
                if (*seen & SEEN_TS)
                        return TG_DECODE_DUPLICATE_MEMBER;
                *seen |= SEEN_TS;
                if (o->ts_unit == TG_TS_UNIT_RFC3339) {
                        if (ev->type != EV_STRING)
                                return TG_DECODE_INVALID_TS;
                        err = tg_ts_from_rfc3339((const char *)ev->s, ev->len,
                                                 &out->ts_ms);
                } else if (ev->type == EV_NEGINT || (ev->type == EV_UINT &&
                                                     ev->u > INT64_MAX)) {
                        /* -1 or less, or 2^63 or more: no unit makes that a
                         * time between 1970 and 9999 */
                        err = TG_DECODE_TS_OUT_OF_RANGE;
                } else if (ev->type == EV_UINT) {
                        err = tg_ts_from_int((int64_t)ev->u, o->ts_unit, &out->ts_ms);
                } else if (ev->type == EV_FLOAT) {
                        err = tg_ts_from_double(ev->d, o->ts_unit, &out->ts_ms);
                } else {
                        err = TG_DECODE_INVALID_TS;
                }
                return err;
        }
        if (kind != KEY_FIELD)
                return TG_DECODE_OK;
        if (ev->type == EV_UINT)
                v = (double)ev->u;
        else if (ev->type == EV_NEGINT)
                v = -1.0 - (double)ev->u;
        else if (ev->type == EV_FLOAT)
                v = ev->d;
        else
                return TG_DECODE_OK; /* not numeric: ignored */
        if (!isfinite(v))
                return TG_DECODE_NON_FINITE;
        r = tg_reading_add_field(out, key, klen, v);
        if (__builtin_expect(r != 0 || out->nfields > o->max_fields, 0))
                return field_refused(r);
        return TG_DECODE_OK;
}

static enum key_kind key_kind(const struct tg_decode_keys *k,
                              const struct tg_decode_opts *o, const char *key,
                              size_t klen) {
        if (k->id && klen == k->id_len && !memcmp(key, k->id, klen))
                return KEY_SENSOR;
        if (k->ts && klen == k->ts_len && !memcmp(key, k->ts, klen))
                return KEY_TS;
        return tg_decode_keep_field(o, key, klen) ? KEY_FIELD : KEY_OTHER;
}

/* A second id or timestamp key is refused at the key, before its value is
 * read, whatever it is (an array, say). The general walk checks here; the
 * fast path, which reads scalar values only and nothing between a key and
 * its value can refuse, in top_value(): both refuse the same payloads. A
 * field given twice is found when its value is added (top_value()). Only
 * the first refusal counts, so @p seen says whether such a key came before. */
static inline int key_repeated(enum key_kind kind, unsigned seen) {
        return (kind == KEY_SENSOR && (seen & SEEN_ID)) || (kind == KEY_TS && (seen & SEEN_TS));
}

/*
 * The fast path: a definite map of definite text keys and scalar values,
 * the shape every device library writes. Its item heads are read here, a
 * byte or a few at a time, rather than through one cbor_stream_decode()
 * call and callback per item: for the simulator's payload those calls were
 * a third of the decode. libcbor still decides everything else: any other
 * item (a tag, a container or indefinite item, a break, a key that is not
 * text, a simple value other than false, true, null and undefined, a
 * reserved head, a string over the limit or cut short, trailing bytes)
 * returns 0 and the general walk starts over from the first byte. The
 * general walk reports the first refusal in item order, so refusals here,
 * made at the same item, are the ones it would make; test_codec.c and the
 * CBOR fuzzer compare the two on every input.
 */

/* The head at p[*pos]: major type, and the argument of additional
 * information 0..27 (a value, a length or a count).
 * @return 0 with *pos past the head, or -1: indefinite or reserved
 *         (28..31), or cut short. */
static inline int read_head(const unsigned char *p, size_t len, size_t *pos,
                            unsigned *major, unsigned *ai, uint64_t *arg) {
        size_t i = *pos, n;
        uint64_t v;

        if (i >= len)
                return -1;
        *major = p[i] >> 5;
        *ai = p[i] & 0x1f;
        i++;
        if (*ai < 24) {
                *arg = *ai;
                *pos = i;
                return 0;
        }
        if (*ai > 27)
                return -1;
        n = (size_t)1 << (*ai - 24); /* 1, 2, 4 or 8 bytes, big-endian */
        if (n > len - i)
                return -1;
        for (v = 0; n > 0; n--)
                v = v << 8 | p[i++];
        *arg = v;
        *pos = i;
        return 0;
}

/* IEEE 754 half precision (RFC 8949 appendix D); every half is exact as a
 * double. */
static double half_to_double(uint16_t h) {
        unsigned exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
        double v;

        if (exp == 0)
                v = ldexp(mant, -24);
        else if (exp != 31)
                v = ldexp(mant + 1024, (int)exp - 25);
        else
                v = mant == 0 ? INFINITY : NAN;
        return h & 0x8000 ? -v : v;
}

/* @return 1 with *result set, or 0: decide with the general walk. */
static int fast_decode(const unsigned char *p, size_t len, const struct tg_decode_opts *o,
                       struct tg_reading *out, enum tg_decode_err *result) {
        struct tg_decode_keys k;
        unsigned major, ai;
        uint64_t n, arg;
        size_t pos = 0;
        unsigned seen = 0;
        enum tg_decode_err err;

        if (o->max_depth < 1)
                return 0;
        if (read_head(p, len, &pos, &major, &ai, &n) || major != 5)
                return 0;
        tg_decode_keys_init(&k, o);
        for (; n > 0; n--) {
                struct cbor_event ev;
                enum key_kind kind;
                const char *key;
                size_t klen;

                if (read_head(p, len, &pos, &major, &ai, &arg) || major != 3 ||
                    arg > o->max_string || arg > len - pos)
                        return 0;
                key = (const char *)p + pos;
                klen = (size_t)arg;
                pos += klen;
                kind = key_kind(&k, o, key, klen);

                if (read_head(p, len, &pos, &major, &ai, &arg))
                        return 0;
                switch (major) {
                case 0:
                        ev.type = EV_UINT;
                        ev.u = arg;
                        break;
                case 1:
                        ev.type = EV_NEGINT;
                        ev.u = arg;
                        break;
                case 2:
                case 3:
                        if (arg > o->max_string || arg > len - pos)
                                return 0;
                        ev.type = major == 3 ? EV_STRING : EV_BYTES;
                        ev.s = p + pos;
                        ev.len = (size_t)arg;
                        pos += ev.len;
                        break;
                case 7:
                        if (ai == 20 || ai == 21) {
                                ev.type = EV_BOOL;
                        } else if (ai == 22 || ai == 23) {
                                ev.type = EV_SIMPLE; /* null, undefined */
                        } else if (ai == 25) {
                                ev.type = EV_FLOAT;
                                ev.d = half_to_double((uint16_t)arg);
                        } else if (ai == 26) {
                                uint32_t bits = (uint32_t)arg;
                                float f;

                                memcpy(&f, &bits, sizeof(f));
                                ev.type = EV_FLOAT;
                                ev.d = f;
                        } else if (ai == 27) {
                                memcpy(&ev.d, &arg, sizeof(ev.d));
                                ev.type = EV_FLOAT;
                        } else {
                                return 0;
                        }
                        break;
                default:
                        return 0; /* an array, a map or a tag */
                }
                err = top_value(out, o, kind, key, klen, &ev, &seen);
                if (err) {
                        *result = member_refused(err, key, klen);
                        return 1;
                }
        }
        if (pos != len)
                return 0;
        *result = tg_decode_finish(o, out, seen & SEEN_ID, seen & SEEN_TS);
        return 1;
}

/* The general walk, after the fast path when @p fast. */
static enum tg_decode_err decode_cbor(const void *payload, size_t len,
                                      const struct tg_decode_opts *opts,
                                      struct tg_reading *out, int fast) {
        const unsigned char *p = payload;
        struct frame stack[TG_DEPTH_MAX];
        int depth = 0, started = 0;
        unsigned seen = 0;
        int expect_key = 1;
        enum key_kind kind = KEY_NONE;
        const char *key = NULL;
        size_t klen = 0, pos = 0;
        enum tg_decode_err err;
        struct tg_decode_keys k;

        tg_reading_clear(out);
        if (len > opts->max_payload || len > TG_PAYLOAD_MAX)
                return TG_DECODE_TOO_LARGE;
        if (fast && fast_decode(p, len, opts, out, &err))
                return err;
        tg_reading_clear(out); /* the fast path may have begun filling it */
        tg_decode_keys_init(&k, opts);

        while (pos < len) {
                struct cbor_event ev = {.type = EV_NONE};
                struct cbor_decoder_result res;
                int completes = 0; /* this event completes one item */

                res = cbor_stream_decode(p + pos, len - pos, &tg_cbor_event_callbacks,
                                         &ev);
                if (res.status != CBOR_DECODER_FINISHED || res.read == 0)
                        return TG_DECODE_NOT_DECODABLE;
                pos += res.read;
                if ((ev.type == EV_STRING || ev.type == EV_BYTES) &&
                    ev.len > opts->max_string)
                        return TG_DECODE_STRING_TOO_LONG;

                if (!started) {
                        if (ev.type == EV_BREAK)
                                return TG_DECODE_NOT_DECODABLE;
                        if (ev.type == EV_TAG)
                                continue; /* e.g. self-described CBOR, 55799 */
                        if (ev.type != EV_MAP && ev.type != EV_MAP_INDEF)
                                return TG_DECODE_WRONG_TYPE;
                        started = 1;
                }

                /* An indefinite string holds definite strings of its own
                 * kind and nothing else. */
                if (depth > 0 && stack[depth - 1].chunks != EV_NONE &&
                    ev.type != stack[depth - 1].chunks && ev.type != EV_BREAK)
                        return TG_DECODE_NOT_DECODABLE;

                switch (ev.type) {
                case EV_TAG:
                        continue; /* a prefix of the next item */
                case EV_MAP:
                case EV_MAP_INDEF:
                case EV_ARRAY:
                case EV_ARRAY_INDEF:
                case EV_STRING_START:
                case EV_BYTES_START:
                        if (depth == 1 && expect_key)
                                return TG_DECODE_WRONG_TYPE;
                        if (depth == 1 && (kind == KEY_SENSOR))
                                return TG_DECODE_BAD_ID;
                        if (depth == 1 && (kind == KEY_TS))
                                return TG_DECODE_INVALID_TS;
                        if (depth == TG_DEPTH_MAX || (size_t)depth >= opts->max_depth)
                                return TG_DECODE_TOO_DEEP;
                        stack[depth].is_map = ev.type == EV_MAP ||
                                              ev.type == EV_MAP_INDEF;
                        stack[depth].chunks = ev.type == EV_STRING_START ? EV_STRING
                                              : ev.type == EV_BYTES_START ? EV_BYTES
                                                                          : EV_NONE;
                        if (ev.type == EV_MAP)
                                stack[depth].remaining =
                                        ev.u > INT64_MAX / 2 ? INT64_MAX
                                                             : 2 * (int64_t)ev.u;
                        else if (ev.type == EV_ARRAY)
                                stack[depth].remaining =
                                        ev.u > INT64_MAX ? INT64_MAX
                                                         : (int64_t)ev.u;
                        else
                                stack[depth].remaining = -1;
                        depth++;
                        if (stack[depth - 1].remaining == 0) {
                                depth--;
                                completes = 1;
                        }
                        break;
                case EV_BREAK:
                        if (depth == 0 || stack[depth - 1].remaining != -1)
                                return TG_DECODE_NOT_DECODABLE;
                        if (depth == 1 && !expect_key)
                                return TG_DECODE_NOT_DECODABLE; /* key without value */
                        depth--;
                        completes = 1;
                        break;
                default:
                        if (depth == 0)
                                return TG_DECODE_NOT_DECODABLE;
                        if (depth == 1) {
                                if (expect_key) {
                                        if (ev.type != EV_STRING)
                                                return TG_DECODE_WRONG_TYPE;
                                        key = (const char *)ev.s;
                                        klen = ev.len;
                                        kind = key_kind(&k, opts, key, klen);
                                        if (key_repeated(kind, seen))
                                                return tg_decode_duplicate("member", key,
                                                                           klen);
                                } else {
                                        err = top_value(out, opts, kind, key, klen, &ev,
                                                        &seen);
                                        if (err)
                                                return member_refused(err, key, klen);
                                }
                        }
                        completes = 1;
                        break;
                }

                /* Count completed items up the stack; a definite container
                 * whose last item completed is itself complete. */
                while (completes) {
                        completes = 0;
                        if (depth == 0)
                                break;
                        if (depth == 1)
                                expect_key = !expect_key;
                        if (stack[depth - 1].remaining > 0 &&
                            --stack[depth - 1].remaining == 0) {
                                depth--;
                                completes = 1;
                        }
                }
                if (depth == 0)
                        break; /* the top-level map is complete */
        }

        if (!started || depth != 0)
                return TG_DECODE_NOT_DECODABLE;
        if (pos != len)
                return TG_DECODE_NOT_DECODABLE; /* trailing bytes */
        return tg_decode_finish(opts, out, seen & SEEN_ID, seen & SEEN_TS);
}

enum tg_decode_err tg_decode_cbor_ex(const void *payload, size_t len,
                                     const struct tg_decode_opts *opts,
                                     struct tg_reading *out) {
        return decode_cbor(payload, len, opts, out, 1);
}

enum tg_decode_err tg_decode_cbor_general_ex(const void *payload, size_t len,
                                             const struct tg_decode_opts *opts,
                                             struct tg_reading *out) {
        return decode_cbor(payload, len, opts, out, 0);
}

size_t tg_encode_cbor(const struct tg_reading *r, uint8_t *buf, size_t cap) {
        size_t o = 0, n;
        uint16_t i;


        TG_CBOR_PUT(cbor_encode_map_start(2 + (size_t)r->nfields, buf + o, cap - o));
        TG_CBOR_PUT(cbor_encode_string_start(6, buf + o, cap - o));
        TG_CBOR_PUT_BYTES("sensor", 6);
        TG_CBOR_PUT(cbor_encode_string_start(r->sensor_len, buf + o, cap - o));
        TG_CBOR_PUT_BYTES(r->sensor, r->sensor_len);
        TG_CBOR_PUT(cbor_encode_string_start(2, buf + o, cap - o));
        TG_CBOR_PUT_BYTES("ts", 2);
        if (r->ts_ms >= 0)
                TG_CBOR_PUT(cbor_encode_uint((uint64_t)r->ts_ms, buf + o, cap - o));
        else
                TG_CBOR_PUT(cbor_encode_negint((uint64_t)(-1 - r->ts_ms), buf + o,
                                       cap - o));
        for (i = 0; i < r->nfields; i++) {
                const struct tg_field *f = &r->fields[i];

                TG_CBOR_PUT(cbor_encode_string_start(f->name_len, buf + o, cap - o));
                TG_CBOR_PUT_BYTES(f->name, f->name_len);
                TG_CBOR_PUT(cbor_encode_double(f->value, buf + o, cap - o));
        }
        return o;
}
