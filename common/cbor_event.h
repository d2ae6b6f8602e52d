/* cbor_event.h - libcbor shared by the CBOR and SenML-CBOR codecs: the streaming decoder one item at a time, and encoding into a bounded buffer. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CBOR_EVENT_H
#define TG_CBOR_EVENT_H

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * cbor_load() builds a heap tree; cbor_stream_decode() instead calls back
 * once per item header (or whole definite string) and allocates nothing.
 * tg_cbor_event_callbacks only record that item into a struct cbor_event
 * (passed as the decode context); each decoder walks the structure itself.
 */
enum ev_type {
        EV_NONE,
        EV_UINT,
        EV_NEGINT, /* value is -1 - u */
        EV_FLOAT,
        EV_BOOL,
        EV_SIMPLE, /* null, undefined */
        EV_STRING,
        EV_STRING_START,
        EV_BYTES,
        EV_BYTES_START,
        EV_ARRAY,
        EV_ARRAY_INDEF,
        EV_MAP,
        EV_MAP_INDEF,
        EV_TAG,
        EV_BREAK,
};

struct cbor_event {
        enum ev_type type;
        uint64_t u;
        double d;
        const unsigned char *s;
        size_t len;
        int tagged;   /* tags came before the item ... */
        uint64_t tag; /* ... the innermost of them */
};

/** Callbacks for cbor_stream_decode() whose context is a struct cbor_event. */
extern const struct cbor_callbacks tg_cbor_event_callbacks;

/*
 * For encoders that write into buf[0..cap) at offset o (size_t locals buf,
 * cap, o and n): append what one libcbor encoder call wrote, or raw bytes,
 * and return 0 from the encoder when it does not fit.
 */
#define TG_CBOR_PUT(call)                                                      \
        do {                                                                   \
                if (!(n = (call)))                                             \
                        return 0;                                              \
                o += n;                                                        \
        } while (0)
#define TG_CBOR_PUT_BYTES(src, len)                                            \
        do {                                                                   \
                if ((len) > cap - o)                                           \
                        return 0;                                              \
                memcpy(buf + o, (src), (len));                                 \
                o += (len);                                                    \
        } while (0)

#endif
