/* test_msgprops.c - CUnit tests of the MQTT 5 properties block: entries back in order, bounds refused whole, Kafka headers. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "msgprops.h"
#include "tg_test.h"

static unsigned char buf[TG_MSGPROPS_MAX];

/* Entries come back as added, user properties with key and value apart. */
static void test_round_trip(void) {
        struct tg_msgprops_builder b;
        struct tg_msgprop e;
        size_t off = 0;
        uint32_t s = 0;
        const char *v;
        size_t vl;

        tg_msgprops_begin(&b, buf);
        CU_ASSERT_EQUAL(tg_msgprops_add_expiry(&b, 0x01020304u), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "k", 1, "", 0), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CORRELATION_DATA, "\0\xff", 2, NULL, 0), 0);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "", 0, "v", 1), 0);
        CU_ASSERT_EQUAL(b.len, 7u + 6u + 5u + 6u);
        CU_ASSERT_EQUAL(tg_msgprops_next(buf, b.len, &off, &e), 1);
        CU_ASSERT(e.type == TG_MSGPROP_EXPIRY && e.expiry_s == 0x01020304u);
        CU_ASSERT_EQUAL(tg_msgprops_next(buf, b.len, &off, &e), 1);
        CU_ASSERT(e.type == TG_MSGPROP_USER && e.key_len == 1 && e.key[0] == 'k' && e.len == 0);
        CU_ASSERT_EQUAL(tg_msgprops_next(buf, b.len, &off, &e), 1);
        CU_ASSERT(e.type == TG_MSGPROP_CORRELATION_DATA && e.len == 2 &&
                  !memcmp(e.value, "\0\xff", 2));
        CU_ASSERT_EQUAL(tg_msgprops_next(buf, b.len, &off, &e), 1);
        CU_ASSERT(e.type == TG_MSGPROP_USER && e.key_len == 0 && e.len == 1 && *e.value == 'v');
        CU_ASSERT_EQUAL(tg_msgprops_next(buf, b.len, &off, &e), 0);
        CU_ASSERT(tg_msgprops_expiry(buf, b.len, &s) && s == 0x01020304u);
        CU_ASSERT(tg_msgprops_user(buf, b.len, "k", 1, &v, &vl) && vl == 0);
        CU_ASSERT(!tg_msgprops_user(buf, b.len, "kk", 2, &v, &vl));
        CU_ASSERT(!tg_msgprops_expiry(buf, 0, &s));
        /* cut anywhere: malformed, never read past the end */
        for (size_t cut = 1; cut < b.len; cut++) {
                int r = 1;

                off = 0;
                while (r == 1)
                        r = tg_msgprops_next(buf, cut, &off, &e);
                CU_ASSERT(r == 0 || r == -EINVAL);
                CU_ASSERT(off <= cut);
        }
}

/* Past TG_MSGPROPS_USER_MAX user properties or TG_MSGPROPS_MAX bytes an
 * add is refused and leaves the block as it was (never a cut entry). */
static void test_bounds(void) {
        static char big[TG_MSGPROPS_MAX];
        struct tg_msgprops_builder b;
        size_t before;
        unsigned i;

        tg_msgprops_begin(&b, buf);
        for (i = 0; i < TG_MSGPROPS_USER_MAX; i++)
                CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "k", 1, "v", 1), 0);
        before = b.len;
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, "k", 1, "v", 1), -ENOSPC);
        CU_ASSERT_EQUAL(b.len, before);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CONTENT_TYPE, "x", 1, NULL, 0), 0);
        tg_msgprops_begin(&b, buf);
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CONTENT_TYPE, big, sizeof(big) - 3,
                                        NULL, 0), 0);
        CU_ASSERT_EQUAL(b.len, sizeof(big));
        CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_CONTENT_TYPE, "", 0, NULL, 0), -ENOSPC);
        CU_ASSERT_EQUAL(b.len, sizeof(big));
}

/* Headers in the block's order, repeats kept, the expiry not among them;
 * names "mqtt.user.<key>" NUL-terminated in the caller's storage. */
static void test_headers(void) {
        static char names[TG_MSGPROPS_NAMES_MAX];
        struct tg_sink_header h[TG_MSGPROPS_HEADERS_MAX];
        struct tg_msgprops_builder b;
        size_t n;
        unsigned i;

        tg_msgprops_begin(&b, buf);
        tg_msgprops_add_expiry(&b, 9);
        tg_msgprops_add(&b, TG_MSGPROP_USER, "site", 4, "a", 1);
        tg_msgprops_add(&b, TG_MSGPROP_CONTENT_TYPE, "text/csv", 8, NULL, 0);
        tg_msgprops_add(&b, TG_MSGPROP_RESPONSE_TOPIC, "r/1", 3, NULL, 0);
        tg_msgprops_add(&b, TG_MSGPROP_CORRELATION_DATA, "\x01\x00", 2, NULL, 0);
        tg_msgprops_add(&b, TG_MSGPROP_USER, "site", 4, "b", 1);
        tg_msgprops_add(&b, TG_MSGPROP_USER, "bad\0key", 7, "c", 1); /* MQTT 5 forbids NUL */
        n = tg_msgprops_headers(buf, b.len, h, TG_MSGPROPS_HEADERS_MAX, names, sizeof(names));
        CU_ASSERT_EQUAL_FATAL(n, 5);
        CU_ASSERT_STRING_EQUAL(h[0].name, "mqtt.user.site");
        CU_ASSERT(h[0].len == 1 && !memcmp(h[0].value, "a", 1));
        CU_ASSERT_STRING_EQUAL(h[1].name, "mqtt.content_type");
        CU_ASSERT(h[1].len == 8 && !memcmp(h[1].value, "text/csv", 8));
        CU_ASSERT_STRING_EQUAL(h[2].name, "mqtt.response_topic");
        CU_ASSERT_STRING_EQUAL(h[3].name, "mqtt.correlation_data");
        CU_ASSERT(h[3].len == 2 && !memcmp(h[3].value, "\x01\x00", 2));
        CU_ASSERT_STRING_EQUAL(h[4].name, "mqtt.user.site");
        CU_ASSERT(h[4].len == 1 && !memcmp(h[4].value, "b", 1));
        /* the most a block can hold fits the sizes the header promises */
        tg_msgprops_begin(&b, buf);
        for (i = 0; i < TG_MSGPROPS_USER_MAX; i++)
                CU_ASSERT_EQUAL(tg_msgprops_add(&b, TG_MSGPROP_USER, names, 200, "", 0), 0);
        memset(names, 'k', 200);
        tg_msgprops_begin(&b, buf);
        for (i = 0; i < TG_MSGPROPS_USER_MAX; i++)
                tg_msgprops_add(&b, TG_MSGPROP_USER, names, 200, "", 0);
        {
                static char out[TG_MSGPROPS_NAMES_MAX];

                n = tg_msgprops_headers(buf, b.len, h, TG_MSGPROPS_HEADERS_MAX, out,
                                        sizeof(out));
                CU_ASSERT_EQUAL(n, TG_MSGPROPS_USER_MAX);
                CU_ASSERT_EQUAL(strlen(h[n - 1].name), 210u);
        }
}

/* mqtt.receive_maximum: auto from the spool's size, bounded; a number; else refused. */
static void test_receive_maximum(void) {
        struct tg_config *cfg = tg_config_new();
        char err[256];

        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        CU_ASSERT_EQUAL(tg_config_receive_maximum(cfg), 1073741824 / 64 / (65536 + 296));
        CU_ASSERT_EQUAL(tg_config_set(cfg, "spool.max_bytes", "1048576", "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_receive_maximum(cfg), 16);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "spool.max_bytes", "1099511627776", "t", err,
                                      sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_receive_maximum(cfg), 1024);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.receive_maximum", "1", "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_receive_maximum(cfg), 1);
        CU_ASSERT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), 0);
        tg_config_set(cfg, "mqtt.receive_maximum", "65535", "t", err, sizeof(err));
        CU_ASSERT_EQUAL(tg_config_receive_maximum(cfg), 65535);
        tg_config_set(cfg, "mqtt.receive_maximum", "65536", "t", err, sizeof(err));
        CU_ASSERT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), -EINVAL);
        CU_ASSERT(strstr(err, "mqtt.receive_maximum") != NULL);
        tg_config_set(cfg, "mqtt.receive_maximum", "0", "t", err, sizeof(err));
        CU_ASSERT(tg_config_receive_maximum(cfg) < 0);
        tg_config_set(cfg, "mqtt.receive_maximum", "+5", "t", err, sizeof(err));
        CU_ASSERT(tg_config_receive_maximum(cfg) < 0);
        tg_config_set(cfg, "mqtt.receive_maximum", "5 ", "t", err, sizeof(err));
        CU_ASSERT(tg_config_receive_maximum(cfg) < 0);
        tg_config_destroy(cfg);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"entries read back in order; cut blocks refused", test_round_trip},
                {"bounds: refused whole, block unchanged", test_bounds},
                {"Kafka headers: order, repeats, names", test_headers},
                {"mqtt.receive_maximum: auto, numbers, refusals", test_receive_maximum},
        };

        return TG_TEST_RUN("msgprops", tests);
}
