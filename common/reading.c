/* reading.c - filling the reading model with bounds checks. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "reading.h"

#include <errno.h>
#include <string.h>

/*
 * Ids, names and units go out as JSON text (raw records, aggregates) and
 * as Kafka keys: each must be UTF-8 as RFC 3629 defines it, without
 * overlong forms, surrogates or code points past U+10FFFF, and without NUL.
 * They are short and nearly always ASCII, which is checked 8 bytes at a time.
 */
int tg_text_valid(const char *text, size_t len) {
        const unsigned char *s = (const unsigned char *)text, *end;

        if (len == 0)
                return 1; /* text may be NULL then */
        for (end = s + len; s < end;) {
                unsigned char c = *s;
                size_t n;
                uint32_t cp;

                if (end - s >= 8) {
                        uint64_t w;

                        memcpy(&w, s, 8);
                        /* no byte >= 0x80, and none zero */
                        if (!(w & 0x8080808080808080ULL) &&
                            !((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL)) {
                                s += 8;
                                continue;
                        }
                }
                if (c < 0x80) {
                        if (c == 0)
                                return 0;
                        s++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return 0; /* a continuation byte, or 0xc0, 0xc1, 0xf5..0xff */
                }
                if ((size_t)(end - s) <= n)
                        return 0;
                for (s++; n > 0; n--, s++) {
                        if ((*s & 0xc0) != 0x80)
                                return 0;
                        cp = cp << 6 | (*s & 0x3f);
                }
                if ((c == 0xe0 && cp < 0x800) || (c == 0xf0 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return 0; /* overlong, a surrogate, past U+10FFFF */
        }
        return 1;
}

void tg_reading_clear(struct tg_reading *r) {
        r->sensor[0] = '\0';
        r->sensor_len = 0;
        r->ts_ms = 0;
        r->ts_from_arrival = 0;
        r->nfields = 0;
}

int tg_reading_set_sensor(struct tg_reading *r, const char *id, size_t len) {
        /* A NUL inside would make the id a different string to every
         * strlen-based consumer (logs, topic patterns, tools). */
        if (len > TG_SENSOR_ID_MAX)
                return -ENAMETOOLONG;
        if (len == 0 || !tg_text_valid(id, len))
                return -EINVAL;
        memcpy(r->sensor, id, len);
        r->sensor[len] = '\0';
        r->sensor_len = (uint16_t)len;
        return 0;
}

int tg_reading_prefix_sensor(struct tg_reading *r, const char *prefix, size_t len) {
        if (r->sensor_len + len > TG_SENSOR_ID_MAX)
                return -ENAMETOOLONG;
        memmove(r->sensor + len, r->sensor, r->sensor_len + 1u);
        memcpy(r->sensor, prefix, len);
        r->sensor_len = (uint16_t)(r->sensor_len + len);
        return 0;
}

int tg_reading_add_field(struct tg_reading *r, const char *name, size_t len,
                         double value) {
        uint16_t i;

        if (len > TG_FIELD_NAME_MAX)
                return -ENAMETOOLONG;
        if (len == 0 || !tg_text_valid(name, len))
                return -EINVAL;
        for (i = 0; i < r->nfields; i++) {
                if (r->fields[i].name_len == len &&
                    !memcmp(r->fields[i].name, name, len))
                        return -EEXIST;
        }
        if (r->nfields >= TG_READING_FIELDS_MAX)
                return -ENOSPC;
        memcpy(r->fields[i].name, name, len);
        r->fields[i].name[len] = '\0';
        r->fields[i].name_len = (uint8_t)len;
        r->fields[i].unit[0] = '\0';
        r->fields[i].value = value;
        r->nfields++;
        return 0;
}

int tg_reading_set_unit(struct tg_reading *r, uint16_t i, const char *unit,
                        size_t len) {
        if (i >= r->nfields)
                return -EINVAL;
        if (len > TG_UNIT_MAX)
                return -ENAMETOOLONG;
        if (!tg_text_valid(unit, len))
                return -EINVAL;
        memcpy(r->fields[i].unit, unit, len);
        r->fields[i].unit[len] = '\0';
        return 0;
}
