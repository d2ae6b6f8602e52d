/* cbor_event.c - the libcbor streaming callbacks that record one item into a struct cbor_event. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cbor_event.h"

#include <stdbool.h>

#define EV(t) (((struct cbor_event *)ctx)->type = (t))
#define EVU(t, v) (EV(t), ((struct cbor_event *)ctx)->u = (v))
static void on_u8(void *ctx, uint8_t v) { EVU(EV_UINT, v); }
static void on_u16(void *ctx, uint16_t v) { EVU(EV_UINT, v); }
static void on_u32(void *ctx, uint32_t v) { EVU(EV_UINT, v); }
static void on_u64(void *ctx, uint64_t v) { EVU(EV_UINT, v); }
static void on_n8(void *ctx, uint8_t v) { EVU(EV_NEGINT, v); }
static void on_n16(void *ctx, uint16_t v) { EVU(EV_NEGINT, v); }
static void on_n32(void *ctx, uint32_t v) { EVU(EV_NEGINT, v); }
static void on_n64(void *ctx, uint64_t v) { EVU(EV_NEGINT, v); }
static void on_f4(void *ctx, float v) { EV(EV_FLOAT); ((struct cbor_event *)ctx)->d = v; }
static void on_f8(void *ctx, double v) { EV(EV_FLOAT); ((struct cbor_event *)ctx)->d = v; }
static void on_string(void *ctx, cbor_data s, size_t len) {
        EV(EV_STRING);
        ((struct cbor_event *)ctx)->s = s;
        ((struct cbor_event *)ctx)->len = len;
}
static void on_bytes(void *ctx, cbor_data s, size_t len) {
        EV(EV_BYTES);
        ((struct cbor_event *)ctx)->s = s;
        ((struct cbor_event *)ctx)->len = len;
}
static void on_string_start(void *ctx) { EV(EV_STRING_START); }
static void on_bytes_start(void *ctx) { EV(EV_BYTES_START); }
static void on_array(void *ctx, size_t n) { EVU(EV_ARRAY, n); }
static void on_array_indef(void *ctx) { EV(EV_ARRAY_INDEF); }
static void on_map(void *ctx, size_t n) { EVU(EV_MAP, n); }
static void on_map_indef(void *ctx) { EV(EV_MAP_INDEF); }
static void on_tag(void *ctx, uint64_t v) { EVU(EV_TAG, v); }
static void on_simple(void *ctx) { EV(EV_SIMPLE); }
static void on_bool(void *ctx, bool v) { (void)v; EV(EV_BOOL); }
static void on_break(void *ctx) { EV(EV_BREAK); }
#undef EV
#undef EVU

const struct cbor_callbacks tg_cbor_event_callbacks = {
        .uint8 = on_u8, .uint16 = on_u16, .uint32 = on_u32, .uint64 = on_u64,
        .negint8 = on_n8, .negint16 = on_n16, .negint32 = on_n32,
        .negint64 = on_n64,
        .byte_string_start = on_bytes_start, .byte_string = on_bytes,
        .string = on_string, .string_start = on_string_start,
        .indef_array_start = on_array_indef, .array_start = on_array,
        .indef_map_start = on_map_indef, .map_start = on_map,
        .tag = on_tag,
        .float2 = on_f4, .float4 = on_f4, .float8 = on_f8,
        .undefined = on_simple, .null = on_simple, .boolean = on_bool,
        .indef_break = on_break,
};
