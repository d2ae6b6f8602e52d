/* msgprops.c - the MQTT 5 properties block: appended entry by entry, read back in order, turned into Kafka headers. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "msgprops.h"

#include <errno.h>
#include <string.h>

#define ENTRY_HDR 3 /* type, length */

void tg_msgprops_begin(struct tg_msgprops_builder *b, unsigned char *buf) {
        b->buf = buf;
        b->len = 0;
        b->nuser = 0;
}

int tg_msgprops_add(struct tg_msgprops_builder *b, enum tg_msgprop_type type,
                    const void *a, size_t alen, const void *v, size_t vlen) {
        size_t data = type == TG_MSGPROP_USER ? 2 + alen + vlen : alen;
        unsigned char *p;

        if (type == TG_MSGPROP_USER && (b->nuser >= TG_MSGPROPS_USER_MAX || alen > 0xffff))
                return -ENOSPC;
        if (data > 0xffff || b->len + ENTRY_HDR + data > TG_MSGPROPS_MAX)
                return -ENOSPC;
        p = b->buf + b->len;
        p[0] = (unsigned char)type;
        p[1] = (unsigned char)data;
        p[2] = (unsigned char)(data >> 8);
        p += ENTRY_HDR;
        if (type == TG_MSGPROP_USER) {
                p[0] = (unsigned char)alen;
                p[1] = (unsigned char)(alen >> 8);
                p += 2;
                b->nuser++;
        }
        if (alen)
                memcpy(p, a, alen);
        if (type == TG_MSGPROP_USER && vlen)
                memcpy(p + alen, v, vlen);
        b->len += ENTRY_HDR + data;
        return 0;
}

int tg_msgprops_add_expiry(struct tg_msgprops_builder *b, uint32_t seconds) {
        unsigned char le[4] = {(unsigned char)seconds, (unsigned char)(seconds >> 8),
                               (unsigned char)(seconds >> 16), (unsigned char)(seconds >> 24)};

        return tg_msgprops_add(b, TG_MSGPROP_EXPIRY, le, 4, NULL, 0);
}

int tg_msgprops_next(const void *block, size_t len, size_t *off, struct tg_msgprop *out) {
        const unsigned char *p = (const unsigned char *)block + *off;
        size_t data;

        if (*off >= len)
                return 0;
        if (len - *off < ENTRY_HDR)
                return -EINVAL;
        data = (size_t)p[1] | (size_t)p[2] << 8;
        if (len - *off - ENTRY_HDR < data)
                return -EINVAL;
        memset(out, 0, sizeof(*out));
        out->type = (enum tg_msgprop_type)p[0];
        out->value = (const char *)p + ENTRY_HDR;
        out->len = data;
        if (out->type == TG_MSGPROP_USER) {
                size_t kl;

                if (data < 2 || (kl = (size_t)p[3] | (size_t)p[4] << 8) > data - 2)
                        return -EINVAL;
                out->key = (const char *)p + ENTRY_HDR + 2;
                out->key_len = kl;
                out->value = out->key + kl;
                out->len = data - 2 - kl;
        } else if (out->type == TG_MSGPROP_EXPIRY) {
                if (data != 4)
                        return -EINVAL;
                out->expiry_s = (uint32_t)p[3] | (uint32_t)p[4] << 8 | (uint32_t)p[5] << 16 |
                                (uint32_t)p[6] << 24;
        }
        *off += ENTRY_HDR + data;
        return 1;
}

int tg_msgprops_expiry(const void *block, size_t len, uint32_t *seconds) {
        struct tg_msgprop e;
        size_t off = 0;

        while (tg_msgprops_next(block, len, &off, &e) == 1)
                if (e.type == TG_MSGPROP_EXPIRY) {
                        *seconds = e.expiry_s;
                        return 1;
                }
        return 0;
}

int tg_msgprops_user(const void *block, size_t len, const char *name, size_t name_len,
                     const char **value, size_t *value_len) {
        struct tg_msgprop e;
        size_t off = 0;

        while (tg_msgprops_next(block, len, &off, &e) == 1)
                if (e.type == TG_MSGPROP_USER && e.key_len == name_len &&
                    !memcmp(e.key, name, name_len)) {
                        *value = e.value;
                        *value_len = e.len;
                        return 1;
                }
        return 0;
}

size_t tg_msgprops_headers(const void *block, size_t len, struct tg_sink_header *h,
                           size_t hmax, char *names, size_t cap) {
        static const char user[] = "mqtt.user.";
        struct tg_msgprop e;
        size_t off = 0, n = 0, used = 0;

        while (n < hmax && tg_msgprops_next(block, len, &off, &e) == 1) {
                switch (e.type) {
                case TG_MSGPROP_CONTENT_TYPE:
                        h[n++] = (struct tg_sink_header){"mqtt.content_type", e.value, e.len};
                        break;
                case TG_MSGPROP_RESPONSE_TOPIC:
                        h[n++] = (struct tg_sink_header){"mqtt.response_topic", e.value, e.len};
                        break;
                case TG_MSGPROP_CORRELATION_DATA:
                        h[n++] = (struct tg_sink_header){"mqtt.correlation_data", e.value,
                                                         e.len};
                        break;
                case TG_MSGPROP_USER:
                        /* a key holding a NUL would cut the name: MQTT 5
                         * (1.5.4) forbids U+0000 in strings */
                        if (used + sizeof(user) + e.key_len > cap ||
                            memchr(e.key, '\0', e.key_len))
                                break;
                        memcpy(names + used, user, sizeof(user) - 1);
                        memcpy(names + used + sizeof(user) - 1, e.key, e.key_len);
                        names[used + sizeof(user) - 1 + e.key_len] = '\0';
                        h[n++] = (struct tg_sink_header){names + used, e.value, e.len};
                        used += sizeof(user) + e.key_len;
                        break;
                default:
                        break; /* the expiry is the gateway's, no header */
                }
        }
        return n;
}
