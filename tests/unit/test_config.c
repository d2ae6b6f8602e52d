/* test_config.c - CUnit tests of the option table, its setter, the YAML loader, validation and output. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tg_test.h"

/* --- helpers ------------------------------------------------------------ */

static const struct tg_option *opt(const char *name) {
        const struct tg_option *t;
        size_t n, i;

        t = tg_config_options(&n);
        for (i = 0; i < n; i++)
                if (!strcmp(t[i].name, name))
                        return &t[i];
        return NULL;
}

static int64_t ival(const struct tg_config *cfg, const struct tg_option *o) {
        return *(const int64_t *)((const char *)cfg + o->offset);
}

static const char *sval(const struct tg_config *cfg, const struct tg_option *o) {
        return *(char *const *)((const char *)cfg + o->offset);
}

static struct tg_config *new_config(void) {
        struct tg_config *cfg = tg_config_new();

        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        return cfg;
}

/* tg_config_set must refuse with -EINVAL and an error naming both the
 * origin and the key, leaving the option as it was. */
static void expect_refused(struct tg_config *cfg, const char *key,
                           const char *value, int line) {
        static const char origin[] = "gw.yaml:12";
        char err[512] = "";
        const struct tg_option *o = opt(key);
        int64_t before_i = 0;
        char before_s[256] = "";
        int r;

        if (o && (o->type == TG_OPT_INT || o->type == TG_OPT_DURATION))
                before_i = ival(cfg, o);
        else if (o)
                snprintf(before_s, sizeof(before_s), "%s", sval(cfg, o));
        r = tg_config_set(cfg, key, value, origin, err, sizeof(err));
        tg_check(r == -EINVAL && strstr(err, origin) && strstr(err, key), line,
                 "%s='%s': r %d, err '%s'", key, value, r, err);
        if (o && (o->type == TG_OPT_INT || o->type == TG_OPT_DURATION))
                tg_check(ival(cfg, o) == before_i, line, "%s changed by a refused set", key);
        else if (o)
                tg_check(!strcmp(sval(cfg, o), before_s), line,
                         "%s changed by a refused set", key);
}

#define EXPECT_REFUSED(cfg, key, value) expect_refused((cfg), (key), (value), __LINE__)

static void expect_int(struct tg_config *cfg, const char *key, const char *value,
                       int64_t want, int line) {
        char err[512] = "";
        const struct tg_option *o = opt(key);
        int r = tg_config_set(cfg, key, value, "--set", err, sizeof(err));

        tg_check(r == 0 && o && ival(cfg, o) == want, line,
                 "%s='%s': r %d, value %" PRId64 ", want %" PRId64 " (%s)", key, value,
                 r, o ? ival(cfg, o) : -1, want, err);
}

#define EXPECT_INT(cfg, key, value, want) expect_int((cfg), (key), (value), (want), __LINE__)

/* --- the table and its defaults ------------------------------------------ */


/* How many options of @p type the table has: the loops below must visit
 * each of them (and there must be some). */
static int count_type(enum tg_option_type type) {
        size_t n, i;
        const struct tg_option *t = tg_config_options(&n);
        int c = 0;

        for (i = 0; i < n; i++)
                c += t[i].type == type;
        return c;
}

static void test_table_is_sane(void) {
        const struct tg_option *t;
        size_t n, i, j;

        t = tg_config_options(&n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_FATAL(n >= 20);
        for (i = 0; i < n; i++) {
                tg_check(t[i].name && t[i].name[0] && t[i].def && t[i].doc && t[i].doc[0],
                         __LINE__, "row %zu incomplete", i);
                tg_check(t[i].offset + sizeof(int64_t) <= offsetof(struct tg_config, kafka_passthrough),
                         __LINE__, "%s: offset %zu", t[i].name, t[i].offset);
                if (t[i].type == TG_OPT_INT || t[i].type == TG_OPT_DURATION)
                        tg_check(t[i].min <= t[i].max, __LINE__, "%s: min > max", t[i].name);
                if (t[i].type == TG_OPT_ENUM)
                        tg_check(t[i].enum_values && t[i].enum_values[0], __LINE__,
                                 "%s: no values", t[i].name);
                for (j = 0; j < i; j++) {
                        tg_check(strcmp(t[i].name, t[j].name) != 0, __LINE__,
                                 "%s listed twice", t[i].name);
                        tg_check(t[i].offset != t[j].offset, __LINE__,
                                 "%s and %s share a field", t[i].name, t[j].name);
                }
        }
        tg_config_destroy(NULL); /* accepted */
}

static int enum_lists(const char *values, const char *v) {
        size_t n = strlen(v);
        const char *p = values;

        for (;;) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);

                if (len == n && !strncmp(p, v, n))
                        return 1;
                if (!bar)
                        return 0;
                p = bar + 1;
        }
}

static void test_defaults_match_table(void) {
        struct tg_config *cfg = new_config();
        const struct tg_option *t;
        size_t n, i;
        char err[512] = "";

        t = tg_config_options(&n);
        for (i = 0; i < n; i++) {
                const struct tg_option *o = &t[i];

                if (o->type == TG_OPT_STRING || o->type == TG_OPT_ENUM) {
                        const char *v = sval(cfg, o);

                        tg_check(v && !strcmp(v, o->def), __LINE__, "%s: '%s', def '%s'",
                                 o->name, v ? v : "(null)", o->def);
                        if (o->type == TG_OPT_ENUM)
                                tg_check(enum_lists(o->enum_values, o->def), __LINE__,
                                         "%s: default '%s' not in %s", o->name, o->def,
                                         o->enum_values);
                } else {
                        int64_t want;
                        char *end;

                        if (o->type == TG_OPT_INT) {
                                want = strtoll(o->def, &end, 10);
                                tg_check(end != o->def && !*end, __LINE__,
                                         "%s: default '%s' not an integer", o->name, o->def);
                        } else {
                                tg_check(tg_parse_duration_ms(o->def, &want) == 0, __LINE__,
                                         "%s: default '%s' not a duration", o->name, o->def);
                        }
                        tg_check(ival(cfg, o) == want, __LINE__,
                                 "%s: %" PRId64 ", def '%s'", o->name, ival(cfg, o), o->def);
                        tg_check(want >= o->min && want <= o->max, __LINE__,
                                 "%s: default out of its own range", o->name);
                }
        }
        /* a few spelled out, in case the table and parser agree on a mistake */
        CU_ASSERT_EQUAL(cfg->window_size_ms, 10000);
        CU_ASSERT_EQUAL(cfg->window_hop_ms, 0);
        CU_ASSERT_EQUAL(cfg->window_grace_ms, 2000);
        CU_ASSERT_EQUAL(cfg->window_max_future_ms, 300000);
        CU_ASSERT_EQUAL(cfg->mqtt_keepalive_ms, 30000);
        CU_ASSERT_EQUAL(cfg->mqtt_qos, 1);
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_format, "auto");
        CU_ASSERT_STRING_EQUAL(cfg->log_file, "");
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 0);

        CU_ASSERT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(err, "");
        tg_config_destroy(cfg);
}

static void test_configs_are_independent(void) {
        struct tg_config *a = new_config(), *b = new_config();
        char err[256];

        CU_ASSERT_EQUAL(tg_config_set(a, "mqtt.uri", "tcp://other:1", "--set", err,
                                      sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(a, "kafka.acks", "all", "--set", err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(a->mqtt_uri, "tcp://other:1");
        CU_ASSERT_STRING_EQUAL(b->mqtt_uri, "tcp://127.0.0.1:1883");
        CU_ASSERT_EQUAL(b->kafka_passthrough_cnt, 0);
        tg_config_destroy(a);
        tg_config_destroy(b);
}

/* --- tg_config_set ---------------------------------------------------------- */

static void test_set_unknown_key(void) {
        struct tg_config *cfg = new_config();
        char err[512];
        int r;

        EXPECT_REFUSED(cfg, "mqtt.nope", "1");
        EXPECT_REFUSED(cfg, "window", "1");
        EXPECT_REFUSED(cfg, "MQTT.URI", "x");
        EXPECT_REFUSED(cfg, "kafkax.acks", "1");
        r = tg_config_set(cfg, "bogus.key", "1", "--set", err, sizeof(err));
        CU_ASSERT_EQUAL(r, -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "--set"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bogus.key"));
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 0);
        tg_config_destroy(cfg);
}

static void test_set_int(void) {
        struct tg_config *cfg = new_config();
        const struct tg_option *t;
        size_t n, i, tested = 0;
        char v[32];
        static const char *const not_int[] = {
                "abc", "", "1.0", "1e0", "0x1", "1 ", "one", "1s", "--1",
                "99999999999999999999", "-99999999999999999999",
        };

        t = tg_config_options(&n);
        for (i = 0; i < n; i++) {
                const struct tg_option *o = &t[i];

                if (o->type != TG_OPT_INT)
                        continue;
                snprintf(v, sizeof(v), "%" PRId64, o->min);
                EXPECT_INT(cfg, o->name, v, o->min);
                snprintf(v, sizeof(v), "%" PRId64, o->max);
                EXPECT_INT(cfg, o->name, v, o->max);
                snprintf(v, sizeof(v), "%" PRId64, o->min - 1);
                EXPECT_REFUSED(cfg, o->name, v);
                snprintf(v, sizeof(v), "%" PRId64, o->max + 1);
                EXPECT_REFUSED(cfg, o->name, v);
                tested++;
        }
        CU_ASSERT(tested > 0 && (int)tested == count_type(TG_OPT_INT));
        for (i = 0; i < sizeof(not_int) / sizeof(*not_int); i++)
                EXPECT_REFUSED(cfg, "window.max_sensors", not_int[i]);
        EXPECT_INT(cfg, "window.max_sensors", "16777216", 16777216);
        EXPECT_REFUSED(cfg, "window.max_sensors", "16777217");
        EXPECT_INT(cfg, "mqtt.qos", "0", 0);
        EXPECT_REFUSED(cfg, "mqtt.qos", "2");
        EXPECT_REFUSED(cfg, "mqtt.qos", "-1");
        {
                char err[512];

                tg_config_set(cfg, "mqtt.qos", "x1", "cli", err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an integer"));
                tg_config_set(cfg, "mqtt.qos", "5", "cli", err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "[0, 1]"));
        }
        tg_config_destroy(cfg);
}

static void test_set_duration(void) {
        struct tg_config *cfg = new_config();
        const struct tg_option *t;
        size_t n, i, tested = 0;
        char v[40];
        static const char *const bad[] = {
                "-1s", "10x", "", "s", "ms", "9223372036854775807h", "1.5s", "10 s",
                "1d", "10S", "10sec", "0x10s", "10ms ", "1h30m", "-0.5s",
                "99999999999999999999",
        };

        EXPECT_INT(cfg, "window.size", "250ms", 250);
        EXPECT_INT(cfg, "window.size", "10s", 10000);
        EXPECT_INT(cfg, "window.size", "5m", 300000);
        EXPECT_INT(cfg, "window.size", "1h", 3600000);
        EXPECT_INT(cfg, "window.size", "1500", 1500);
        EXPECT_INT(cfg, "window.size", "24h", 86400000);
        EXPECT_REFUSED(cfg, "window.size", "0");    /* min 1 ms */
        EXPECT_REFUSED(cfg, "window.size", "25h");  /* max one day */
        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                EXPECT_REFUSED(cfg, "window.size", bad[i]);
        {
                char err[512];

                tg_config_set(cfg, "window.grace", "10x", "cli", err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a duration"));
                tg_config_set(cfg, "window.grace", "2d", "cli", err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "window.grace"));
                tg_config_set(cfg, "mqtt.keepalive", "500ms", "cli", err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
        }

        t = tg_config_options(&n);
        for (i = 0; i < n; i++) {
                const struct tg_option *o = &t[i];

                if (o->type != TG_OPT_DURATION)
                        continue;
                snprintf(v, sizeof(v), "%" PRId64 "ms", o->min);
                EXPECT_INT(cfg, o->name, v, o->min);
                snprintf(v, sizeof(v), "%" PRId64, o->max);
                EXPECT_INT(cfg, o->name, v, o->max);
                snprintf(v, sizeof(v), "%" PRId64 "ms", o->max + 1);
                EXPECT_REFUSED(cfg, o->name, v);
                snprintf(v, sizeof(v), "%" PRId64 "ms", o->min - 1);
                EXPECT_REFUSED(cfg, o->name, v);
                tested++;
        }
        CU_ASSERT(tested > 0 && (int)tested == count_type(TG_OPT_DURATION));
        tg_config_destroy(cfg);
}

static void test_set_enum(void) {
        struct tg_config *cfg = new_config();
        const struct tg_option *t;
        size_t n, i, tested = 0;

        t = tg_config_options(&n);
        for (i = 0; i < n; i++) {
                const struct tg_option *o = &t[i];
                char values[128], first[64], bad[80], err[512];
                char *tok, *save = NULL;
                int k;

                if (o->type != TG_OPT_ENUM)
                        continue;
                snprintf(values, sizeof(values), "%s", o->enum_values);
                first[0] = '\0';
                for (tok = strtok_r(values, "|", &save); tok;
                     tok = strtok_r(NULL, "|", &save)) {
                        CU_ASSERT_EQUAL(tg_config_set(cfg, o->name, tok, "--set", err,
                                                      sizeof(err)), 0);
                        CU_ASSERT_STRING_EQUAL(sval(cfg, o), tok);
                        if (!first[0])
                                snprintf(first, sizeof(first), "%s", tok);
                }
                EXPECT_REFUSED(cfg, o->name, "");
                EXPECT_REFUSED(cfg, o->name, "bogus");
                EXPECT_REFUSED(cfg, o->name, o->enum_values); /* "a|b|c" whole */
                snprintf(bad, sizeof(bad), "%sx", first);
                EXPECT_REFUSED(cfg, o->name, bad);
                snprintf(bad, sizeof(bad), "%s ", first);
                EXPECT_REFUSED(cfg, o->name, bad);
                snprintf(bad, sizeof(bad), "%.*s", (int)strlen(first) - 1, first);
                EXPECT_REFUSED(cfg, o->name, bad);
                snprintf(bad, sizeof(bad), "%s", first);
                for (k = 0; bad[k]; k++)
                        if (bad[k] >= 'a' && bad[k] <= 'z')
                                bad[k] = (char)(bad[k] - 'a' + 'A');
                EXPECT_REFUSED(cfg, o->name, bad);
                /* the error lists the accepted values */
                tg_config_set(cfg, o->name, "bogus", "--set", err, sizeof(err));
                tg_check(strstr(err, o->enum_values) != NULL, __LINE__,
                         "%s: error '%s' does not list %s", o->name, err, o->enum_values);
                tested++;
        }
        CU_ASSERT(tested > 0 && (int)tested == count_type(TG_OPT_ENUM));
        tg_config_destroy(cfg);
}

static void test_set_string(void) {
        struct tg_config *cfg = new_config();
        char err[256], *big = malloc(10001);

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.uri", "ssl://broker:8883", "--set",
                                      err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_uri, "ssl://broker:8883");
        CU_ASSERT_EQUAL(tg_config_set(cfg, "log.file", "", "--set", err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(cfg->log_file, "");
        memset(big, 'p', 10000);
        big[10000] = '\0';
        CU_ASSERT_EQUAL(tg_config_set(cfg, "state.dir", big, "--set", err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(cfg->state_dir, big);
        CU_ASSERT_PTR_NOT_EQUAL(cfg->state_dir, big); /* copied */
        free(big);
        tg_config_destroy(cfg);
}

static void test_set_passthrough(void) {
        struct tg_config *cfg = new_config();
        char err[512], key[64], val[16];
        int i;

        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.socket.timeout.ms", "1000", "--set",
                                      err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(cfg->kafka_passthrough_cnt, 1);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].key, "socket.timeout.ms");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].value, "1000");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].origin, "--set");
        /* the same key again replaces the value and the origin */
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.socket.timeout.ms", "2000",
                                      "gw.yaml:3", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 1);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].value, "2000");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].origin, "gw.yaml:3");
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.acks", "all", "--set", err,
                                      sizeof(err)), 0);
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 2);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[1].key, "acks");
        /* our own kafka.* options are options, not passthrough */
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.bootstrap.servers", "h:1,h:2",
                                      "--set", err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_bootstrap_servers, "h:1,h:2");
        EXPECT_REFUSED(cfg, "kafka.compression.type", "brotli");
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 2);
        /* an empty property name */
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.", "x", "gw.yaml:9", err,
                                      sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "gw.yaml:9"));
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, 2);

        /* room for TG_CONFIG_PASSTHROUGH_MAX, then refused; a known key
         * can still be overridden when full */
        for (i = 2; i < TG_CONFIG_PASSTHROUGH_MAX; i++) {
                snprintf(key, sizeof(key), "kafka.p%d", i);
                CU_ASSERT_EQUAL(tg_config_set(cfg, key, "v", "--set", err, sizeof(err)), 0);
        }
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, TG_CONFIG_PASSTHROUGH_MAX);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.one.too.many", "v", "--set", err,
                                      sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "kafka.one.too.many"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "--set"));
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, TG_CONFIG_PASSTHROUGH_MAX);
        snprintf(val, sizeof(val), "3000");
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.socket.timeout.ms", val, "--set", err,
                                      sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].value, "3000");
        CU_ASSERT_EQUAL(cfg->kafka_passthrough_cnt, TG_CONFIG_PASSTHROUGH_MAX);
        tg_config_destroy(cfg);
}

static void test_set_error_buffers(void) {
        struct tg_config *cfg = new_config();
        char small[16];

        /* no error buffer at all */
        CU_ASSERT_EQUAL(tg_config_set(cfg, "nope", "1", "--set", NULL, 0), -EINVAL);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.qos", "9", "--set", NULL, 0), -EINVAL);
        CU_ASSERT_EQUAL(cfg->mqtt_qos, 1);
        /* a short one is truncated, never overrun */
        memset(small, 0x5a, sizeof(small));
        CU_ASSERT_EQUAL(tg_config_set(cfg, "a.very.long.unknown.option.name", "1",
                                      "--set", small, 8), -EINVAL);
        CU_ASSERT_EQUAL(strlen(small), 7);
        CU_ASSERT_EQUAL((unsigned char)small[8], 0x5a);
        tg_config_destroy(cfg);
}

/* --- tg_parse_duration_ms ------------------------------------------------------ */

static void test_parse_duration(void) {
        static const struct {
                const char *s;
                int64_t ms;
        } good[] = {
                {"0", 0},
                {"0ms", 0},
                {"0s", 0},
                {"0h", 0},
                {"1", 1},
                {"250ms", 250},
                {"10s", 10000},
                {"5m", 300000},
                {"1h", 3600000},
                {"1500", 1500},
                {"007s", 7000},
                {"9223372036854775807", INT64_MAX},
                {"9223372036854775807ms", INT64_MAX},
                {"9223372036854775s", INT64_C(9223372036854775000)},
                {"153722867280912m", INT64_C(9223372036854720000)},
                {"2562047788015h", INT64_C(9223372036854000000)},
        };
        static const char *const bad[] = {
                "", "s", "ms", "-1", "-1s", "10x", "10 s", "1.5s", "1e3", "10S", "10MS",
                "1d", "10sec", "1h30m", "0x10", "9223372036854775808",
                "9223372036854776s", "153722867280913m", "2562047788016h",
                "9223372036854775807h", "99999999999999999999ms", "10ms ", "10s\n",
        };
        size_t i;

        for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
                int64_t v = -42;
                int r = tg_parse_duration_ms(good[i].s, &v);

                tg_check(r == 0 && v == good[i].ms, __LINE__, "'%s': r %d, %" PRId64
                         ", want %" PRId64, good[i].s, r, v, good[i].ms);
        }
        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                int64_t v = -42;
                int r = tg_parse_duration_ms(bad[i], &v);

                tg_check(r == -EINVAL && v == -42, __LINE__, "'%s': r %d, out %" PRId64,
                         bad[i], r, v);
        }
}

/* --- YAML ----------------------------------------------------------------- */

static char yaml_path[64];

/* Write @p text to a fresh temporary file and load it into @p cfg. */
static int load_yaml(struct tg_config *cfg, const char *text, char *err,
                     size_t errlen) {
        int fd, r;
        size_t len = strlen(text);

        snprintf(yaml_path, sizeof(yaml_path), "/tmp/tg_test_config_XXXXXX");
        fd = mkstemp(yaml_path);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
        close(fd);
        err[0] = '\0';
        r = tg_config_load_file(cfg, yaml_path, err, errlen);
        unlink(yaml_path);
        return r;
}

/* The file must be refused with "<path>:<line>: " and a message holding
 * @p needle. */
static void expect_yaml_error(const char *text, int want_line, const char *needle,
                              int line) {
        struct tg_config *cfg = new_config();
        char err[512], prefix[96];
        int r = load_yaml(cfg, text, err, sizeof(err));

        snprintf(prefix, sizeof(prefix), "%s:%d: ", yaml_path, want_line);
        tg_check(r == -EINVAL && !strncmp(err, prefix, strlen(prefix)) &&
                 strstr(err + strlen(prefix), needle) &&
                 !strstr(err + strlen(prefix), "line "), line,
                 "r %d, err '%s', want '%s...%s'", r, err, prefix, needle);
        tg_config_destroy(cfg);
}

#define EXPECT_YAML_ERROR(text, l, needle) expect_yaml_error((text), (l), (needle), __LINE__)

static void test_yaml_nested(void) {
        struct tg_config *cfg = new_config();
        char err[512];

        CU_ASSERT_EQUAL(load_yaml(cfg,
                                  "# gateway\n"
                                  "mqtt:\n"
                                  "  uri: ssl://broker:8883\n"
                                  "  qos: 0\n"
                                  "  format: cbor\n"
                                  "  keepalive: 10s\n"
                                  "window:\n"
                                  "  size: 5s\n"
                                  "  hop: 1s\n"
                                  "  close: global\n"
                                  "topics:\n"
                                  "  raw: r\n"
                                  "log:\n"
                                  "  level: debug\n"
                                  "state.dir: /srv/tg\n",
                                  err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(err, "");
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_uri, "ssl://broker:8883");
        CU_ASSERT_EQUAL(cfg->mqtt_qos, 0);
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_format, "cbor");
        CU_ASSERT_EQUAL(cfg->mqtt_keepalive_ms, 10000);
        CU_ASSERT_EQUAL(cfg->window_size_ms, 5000);
        CU_ASSERT_EQUAL(cfg->window_hop_ms, 1000);
        CU_ASSERT_STRING_EQUAL(cfg->window_close, "global");
        CU_ASSERT_STRING_EQUAL(cfg->topic_raw, "r");
        CU_ASSERT_STRING_EQUAL(cfg->topic_agg, "sensors.agg"); /* untouched */
        CU_ASSERT_STRING_EQUAL(cfg->log_level, "debug");
        CU_ASSERT_STRING_EQUAL(cfg->state_dir, "/srv/tg");
        CU_ASSERT_EQUAL(cfg->window_grace_ms, 2000);
        CU_ASSERT_EQUAL(tg_config_validate(cfg, err, sizeof(err)), 0);
        tg_config_destroy(cfg);

        /* flow style */
        cfg = new_config();
        CU_ASSERT_EQUAL(load_yaml(cfg, "window: {size: 5s}\nmqtt: {qos: 0, uri: \"tcp://x:1\"}\n",
                                  err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(cfg->window_size_ms, 5000);
        CU_ASSERT_EQUAL(cfg->window_hop_ms, 0);
        CU_ASSERT_EQUAL(cfg->mqtt_qos, 0);
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_uri, "tcp://x:1");
        tg_config_destroy(cfg);

        /* dotted paths at the top, mixed with nested ones */
        cfg = new_config();
        CU_ASSERT_EQUAL(load_yaml(cfg, "window.size: 20s\nwindow:\n  grace: 1s\n"
                                       "window.hop: 5s\n", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(cfg->window_size_ms, 20000);
        CU_ASSERT_EQUAL(cfg->window_grace_ms, 1000);
        CU_ASSERT_EQUAL(cfg->window_hop_ms, 5000);
        tg_config_destroy(cfg);
}

/* A key given twice is refused at its second line, naming the first: with
 * last-wins a forgotten line silently overrides the one being edited. */
static void expect_duplicate(const char *text, int line2, const char *key, int line1,
                             int line) {
        char needle[160];
        struct tg_config *cfg = new_config();
        char err[512];
        int r = load_yaml(cfg, text, err, sizeof(err));

        snprintf(needle, sizeof(needle), "%s:%d: %s: given twice, first at %s:%d", yaml_path,
                 line2, key, yaml_path, line1);
        tg_check(r == -EINVAL && strstr(err, needle), line, "r %d, err '%s', want '%s'", r,
                 err, needle);
        tg_config_destroy(cfg);
}

#define EXPECT_DUPLICATE(text, l2, key, l1) expect_duplicate((text), (l2), (key), (l1), __LINE__)

static void test_yaml_duplicate_keys(void) {
        struct tg_config *cfg;
        char err[512];

        EXPECT_DUPLICATE("window:\n  size: 5s\n  grace: 1s\n  size: 6s\n", 4, "window.size", 2);
        EXPECT_DUPLICATE("window.size: 5s\nmqtt:\n  qos: 0\nwindow.size: 6s\n", 4,
                         "window.size", 1);
        /* the same option spelled nested and dotted */
        EXPECT_DUPLICATE("window.size: 5s\nwindow:\n  size: 6s\n", 3, "window.size", 1);
        EXPECT_DUPLICATE("window:\n  grace: 1s\nwindow.grace: 3s\n", 3, "window.grace", 2);
        /* a mapping given twice at one level (YAML wants keys unique) */
        EXPECT_DUPLICATE("window:\n  size: 5s\nlog:\n  level: info\nwindow:\n  grace: 1s\n",
                         5, "window", 1);
        EXPECT_DUPLICATE("window: {size: 5s}\nwindow: {size: 5s}\n", 2, "window", 1);
        /* inside a subscription, and the list itself twice */
        EXPECT_DUPLICATE("subscriptions:\n  - topic: a/+\n    qos: 0\n    topic: b/+\n", 4,
                         "subscriptions.0.topic", 2);
        EXPECT_DUPLICATE("subscriptions:\n  - topic: a/+\n  - topic: b/+\n"
                         "    timestamp: {field: t, unit: s}\n    timestamp:\n      unit: ms\n",
                         5, "subscriptions.1.timestamp", 4);
        EXPECT_DUPLICATE("subscriptions:\n  - topic: a/+\nsubscriptions:\n  - topic: b/+\n", 3,
                         "subscriptions", 1);
        /* librdkafka's keys and lists */
        EXPECT_DUPLICATE("kafka:\n  acks: all\n  socket.timeout.ms: 5\n  acks: 1\n", 4,
                         "kafka.acks", 2);
        EXPECT_DUPLICATE("kafka:\n  socket.timeout.ms: 5\n  socket:\n    timeout.ms: 6\n", 4,
                         "kafka.socket.timeout.ms", 2);
        EXPECT_DUPLICATE("input:\n  fields: [a]\n  fields:\n    - b\n", 3, "input.fields", 2);

        /* the same key in different subscriptions is no duplicate */
        cfg = new_config();
        CU_ASSERT_EQUAL(load_yaml(cfg, "subscriptions:\n  - topic: a/+\n    qos: 0\n"
                                       "  - topic: b/+\n    qos: 0\n", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(cfg->nsubs, 2);
        tg_config_destroy(cfg);
}

static void test_yaml_kafka_keys_with_dots(void) {
        struct tg_config *cfg = new_config();
        char err[512], want_origin[96];

        CU_ASSERT_EQUAL(load_yaml(cfg,
                                  "kafka:\n"
                                  "  bootstrap.servers: \"h:1\"\n"
                                  "  \"socket.timeout.ms\": 1000\n"
                                  "  compression.type: zstd\n",
                                  err, sizeof(err)), 0);
        CU_ASSERT_STRING_EQUAL(err, "");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_bootstrap_servers, "h:1");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_compression, "zstd");
        CU_ASSERT_EQUAL_FATAL(cfg->kafka_passthrough_cnt, 1);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].key, "socket.timeout.ms");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].value, "1000");
        /* The origin is what the Kafka sink prints when librdkafka refuses
         * the property: it must say which file, like every config error. */
        snprintf(want_origin, sizeof(want_origin), "%s:3", yaml_path);
        tg_check(!strcmp(cfg->kafka_passthrough[0].origin, want_origin), __LINE__,
                 "passthrough origin '%s', want '%s'", cfg->kafka_passthrough[0].origin,
                 want_origin);
        tg_config_destroy(cfg);

        /* a deeper path joins with dots as well */
        cfg = new_config();
        CU_ASSERT_EQUAL(load_yaml(cfg, "kafka:\n  socket:\n    timeout.ms: 5\n  acks: all\n",
                                  err, sizeof(err)), 0);
        CU_ASSERT_EQUAL_FATAL(cfg->kafka_passthrough_cnt, 2);
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].key, "socket.timeout.ms");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[0].value, "5");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[1].key, "acks");
        CU_ASSERT_STRING_EQUAL(cfg->kafka_passthrough[1].value, "all");
        tg_config_destroy(cfg);
}

static void test_yaml_empty_files(void) {
        static const char *const texts[] = {
                "", "\n\n", "# only a comment\n", "# one\n   # two\n\n", "---\n",
        };
        size_t i;

        for (i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
                struct tg_config *cfg = new_config();
                char err[512];
                int r = load_yaml(cfg, texts[i], err, sizeof(err));

                tg_check(r == 0, __LINE__, "'%s': r %d, err '%s'", texts[i], r, err);
                CU_ASSERT_EQUAL(cfg->window_size_ms, 10000);
                CU_ASSERT_STRING_EQUAL(cfg->mqtt_uri, "tcp://127.0.0.1:1883");
                tg_config_destroy(cfg);
        }
}

static void test_yaml_errors(void) {
        struct tg_config *cfg;
        char err[512];

        /* syntax */
        EXPECT_YAML_ERROR("mqtt:\n  qos: 1\n  uri: a: b\n", 3, "YAML syntax");
        EXPECT_YAML_ERROR("window:\n  size: 1s\n\n hop: 2s\n", 4, "YAML syntax");
        EXPECT_YAML_ERROR("mqtt:\n  qos: 1\n\tbad: 2\n", 3, "YAML syntax");
        /* a bad value: the line of the value, the key and the reason */
        EXPECT_YAML_ERROR("mqtt:\n  uri: x\n\n  qos: 7\n", 4, "mqtt.qos: 7 is out of range");
        EXPECT_YAML_ERROR("# c\nwindow:\n  size: 10x\n", 3,
                          "window.size: '10x' is not a duration");
        EXPECT_YAML_ERROR("log: {level: loud}\n", 1, "log.level: 'loud' is not one of");
        EXPECT_YAML_ERROR("window:\n  max_fields:\n    17\n", 3, "window.max_fields");
        /* lists, block and flow */
        EXPECT_YAML_ERROR("mqtt:\n  topic:\n    - a\n    - b\n", 3,
                          "mqtt.topic: lists are not accepted");
        EXPECT_YAML_ERROR("mqtt:\n  qos: 1\n  topic: [a, b]\n", 3,
                          "mqtt.topic: lists are not accepted");
        /* unknown keys */
        EXPECT_YAML_ERROR("mqtt:\n  qos: 1\n  nope: 3\n", 3, "unknown option 'mqtt.nope'");
        EXPECT_YAML_ERROR("\n\nbogus: 1\n", 3, "unknown option 'bogus'");
        EXPECT_YAML_ERROR("bogus:\n  x: 1\n", 2, "unknown option 'bogus.x'");
        /* the top level */
        EXPECT_YAML_ERROR("hello\n", 1, "top level must be a mapping");
        EXPECT_YAML_ERROR("# c\n- a\n- b\n", 2, "top level must be a mapping");
        /* keys that are not scalars, aliases, nesting, long keys */
        EXPECT_YAML_ERROR("mqtt:\n  qos: 1\n? {a: 1}\n: 2\n", 3, "mapping cannot be a key");
        EXPECT_YAML_ERROR("window:\n  size: &s 5s\n  grace: *s\n", 3, "aliases");
        EXPECT_YAML_ERROR("a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n       h:\n"
                          "        i: 1\n", 9, "nested too deeply");
        {
                char text[300];

                snprintf(text, sizeof(text), "mqtt:\n  %s: 1\n", "k123456789"
                         "0123456789012345678901234567890123456789012345678901234567890123"
                         "4567890123456789012345678901234567890123456789012345678901234567");
                EXPECT_YAML_ERROR(text, 2, "key too long");
        }
        /* A list used as a key is refused, and the message must not name
         * whatever key came before it (it reads a stale or, for the first
         * key, uninitialised path buffer). */
        cfg = new_config();
        CU_ASSERT_EQUAL(load_yaml(cfg, "window:\n  size: 5s\n? [a, b]\n: 1\n", err,
                                  sizeof(err)), -EINVAL);
        tg_check(strstr(err, ":3: ") && !strstr(err, "window"), __LINE__,
                 "list as a key: '%s'", err);
        tg_config_destroy(cfg);

        /* a missing file */
        cfg = new_config();
        CU_ASSERT_EQUAL(tg_config_load_file(cfg, "/tmp/tg-test-no-such-dir/gw.yaml", err,
                                            sizeof(err)), -ENOENT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "/tmp/tg-test-no-such-dir/gw.yaml"));
        CU_ASSERT_EQUAL(tg_config_load_file(cfg, "/tmp/tg-test-no-such-dir/gw.yaml", NULL,
                                            0), -ENOENT);
        tg_config_destroy(cfg);
}

/* MQTT 3.1.1 §4.7 and §1.5.3: what a broker takes as a topic filter. A
 * filter it refuses makes mosquitto drop the connection as malformed. */
static void test_set_topic_filter(void) {
        static const char *const good[] = {
                "sensors/+/telemetry", "#", "+", "sensors/#", "/", "a//b", "+/+", "/+",
                "+/#", "$SYS/#", "sensors/\xc3\xbc/t", "a b/\xf0\x9f\x98\x80", "x",
        };
        static const struct {
                const char *filter, *why;
        } bad[] = {
                {"", "empty"},
                {"sensors/#/x", "'#'"},
                {"sensors#", "'#'"},
                {"sensors/a#", "'#'"},
                {"#/", "'#'"},
                {"a/#/", "'#'"},
                {"##", "'#'"},
                {"sensors/+x/t", "'+'"},
                {"sensors/x+/t", "'+'"},
                {"++", "'+'"},
                {"a/b+", "'+'"},
                {"+#", "'"},
                {"a/\xc3", "UTF-8"},             /* truncated sequence */
                {"\xc0\xaf", "UTF-8"},           /* overlong '/' */
                {"\xe0\x80\xaf", "UTF-8"},       /* overlong '/' */
                {"\xed\xa0\x80/x", "UTF-8"},     /* surrogate U+D800 */
                {"\xf4\x90\x80\x80", "UTF-8"},   /* beyond U+10FFFF */
                {"\x80", "UTF-8"},               /* a lone continuation byte */
                {"\xff", "UTF-8"},
                {"a\x01" "b", "control"},         /* U+0001 */
                {"a\tb", "control"},
                {"a\x7f", "control"},
                {"a\xc2\x80" "b", "control"},     /* U+0080 */
                {"\xef\xbf\xbf", "non-character"}, /* U+FFFF */
                {"\xef\xb7\x90", "non-character"}, /* U+FDD0 */
        };
        static const char *const keys[] = {"mqtt.topic", "subscriptions.0.topic",
                                           "subscriptions.7.topic"};
        struct tg_config *cfg = new_config();
        char err[512], *big = malloc(65537);
        size_t i, k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        for (i = 0; i < sizeof(good) / sizeof(*good); i++)
                for (k = 0; k < sizeof(keys) / sizeof(*keys); k++) {
                        int r = tg_config_set(cfg, keys[k], good[i], "--set", err,
                                              sizeof(err));

                        tg_check(r == 0, __LINE__, "%s='%s' refused: %s", keys[k], good[i],
                                 err);
                }
        tg_config_destroy(cfg);

        cfg = new_config();
        for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                for (k = 0; k < sizeof(keys) / sizeof(*keys); k++) {
                        int r = tg_config_set(cfg, keys[k], bad[i].filter, "gw.yaml:12", err,
                                              sizeof(err));

                        tg_check(r == -EINVAL && !strncmp(err, "gw.yaml:12: ", 12) &&
                                 strstr(err, keys[k]) && strstr(err, "topic filter") &&
                                 strstr(err, bad[i].why), __LINE__,
                                 "%s='%s': r %d, err '%s', want '%s'", keys[k], bad[i].filter,
                                 r, err, bad[i].why);
                }
                EXPECT_REFUSED(cfg, "mqtt.topic", bad[i].filter); /* and left as it was */
        }
        CU_ASSERT_EQUAL(cfg->nsubs, 0); /* no refused subscription was kept */
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_topic, "sensors/+/telemetry");

        /* at most 65535 bytes, the longest string MQTT can carry */
        memset(big, 'a', 65536);
        big[65535] = '\0';
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.topic", big, "--set", err, sizeof(err)), 0);
        big[65535] = 'a';
        big[65536] = '\0';
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.topic", big, "--set", err, sizeof(err)),
                        -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "65535"));
        CU_ASSERT(strlen(err) < 400); /* the message, not the 64 KiB value */
        free(big);
        tg_config_destroy(cfg);

        /* in a file: the line of the filter, the subscription's key */
        EXPECT_YAML_ERROR("subscriptions:\n  - topic: a/+\n  - topic: a/#/b\n    qos: 0\n", 3,
                          "subscriptions.1.topic: not a valid MQTT topic filter");
        EXPECT_YAML_ERROR("mqtt:\n  qos: 0\n  topic: 'sensors/#/x'\n", 3,
                          "mqtt.topic: not a valid MQTT topic filter");
        /* A YAML escape can put a NUL in a value; C strings would silently
         * cut it there, so it is refused, for every option. */
        EXPECT_YAML_ERROR("mqtt:\n  topic: \"sensors/\\0/x\"\n", 2, "mqtt.topic: contains a NUL");
        EXPECT_YAML_ERROR("topics:\n  raw: \"raw\\0x\"\n", 2, "topics.raw: contains a NUL");
}

/* --- validation ------------------------------------------------------------ */

/* A config with the defaults and then the NULL-ended key, value pairs @p kv. */
static struct tg_config *config_with(const char *const *kv) {
        struct tg_config *cfg = new_config();
        char err[512] = "";

        for (; kv[0]; kv += 2)
                CU_ASSERT_EQUAL_FATAL(tg_config_set(cfg, kv[0], kv[1], "t", err,
                                                    sizeof(err)), 0);
        return cfg;
}

static void expect_validate(const char *const *kv, int want_ok, const char *needle,
                            int line) {
        struct tg_config *cfg = config_with(kv);
        char err[512] = "";
        int r;

        r = tg_config_validate(cfg, err, sizeof(err));
        if (want_ok)
                tg_check(r == 0, line, "validate refused: r %d '%s'", r, err);
        else
                tg_check(r == -EINVAL && strstr(err, needle), line,
                         "validate: r %d '%s', want '%s'", r, err, needle);
        tg_config_destroy(cfg);
}

static void test_validate(void) {
#define V(ok, needle, ...)                                                     \
        do {                                                                   \
                static const char *const kv_[] = {__VA_ARGS__, NULL};          \
                expect_validate(kv_, (ok), (needle), __LINE__);                \
        } while (0)
        V(0, "window.hop", "window.size", "10s", "window.hop", "3s");
        V(0, "window.hop", "window.size", "5s", "window.hop", "10s");
        V(0, "window.hop", "window.size", "1000", "window.hop", "999");
        V(1, "", "window.size", "10s", "window.hop", "5s");
        V(1, "", "window.size", "10s", "window.hop", "10s");
        V(1, "", "window.size", "10s", "window.hop", "0");
        V(1, "", "window.size", "6400", "window.hop", "100");  /* 64 hops */
        V(0, "64", "window.size", "6500", "window.hop", "100"); /* 65 hops */
        V(0, "window.max_field_names", "window.max_fields", "8",
          "window.max_field_names", "7");
        V(0, "window.max_field_names", "window.max_fields", "16",
          "window.max_field_names", "1");
        V(1, "", "window.max_fields", "16", "window.max_field_names", "16");
        /* forward.* (docs/downsample.md 1.1, 1.3), top level and per subscription */
        V(1, "", "forward.mode", "swinging-door", "forward.deviation", "0.2",
          "forward.fields", "humidity=exception:2%:100,status=none");
        V(0, "forward: deviation '2%'", "forward.mode", "exception", "forward.deviation", "2%");
        V(1, "", "forward.deviation", "2%", "forward.span", "50");
        V(0, "forward: span", "forward.span", "-3");
        V(0, "humidity: mode 'often'", "forward.fields", "humidity=often");
        V(0, "subscriptions.1.forward: deviation 'x'", "subscriptions.0.topic", "a/+",
          "subscriptions.1.topic", "b/+", "subscriptions.1.forward.deviation", "x");
        V(1, "", "subscriptions.0.topic", "a/+", "subscriptions.0.forward.mode", "none",
          "subscriptions.0.forward.max_silence", "30s");
        V(0, "mqtt.client_id", "mqtt.client_id", "");
        V(0, "topics", "topics.raw", "");
        V(0, "topics", "topics.agg", "");
        V(0, "mqtt.tls", "mqtt.tls.ca_file", "/etc/ca.pem");
        V(1, "", "mqtt.uri", "ssl://127.0.0.1:8883", "mqtt.tls.ca_file", "/etc/ca.pem");
        V(1, "", "mqtt.uri", "mqtts://broker:8883", "mqtt.tls.cert_file", "/c.pem");
        V(0, "mqtt.tls.key_file", "mqtt.uri", "ssl://b:8883", "mqtt.tls.key_file", "/k.pem");
        V(0, "mqtt.password", "mqtt.password", "x");
        V(1, "", "mqtt.username", "u", "mqtt.password", "x");
        V(1, "", "metrics.listen", "");
        V(1, "", "metrics.listen", "[::1]:0");
        V(0, "metrics.listen", "metrics.listen", "9740");
        V(0, "metrics.listen", "metrics.listen", "127.0.0.1:http");
        V(0, "metrics.listen", "metrics.listen", "127.0.0.1:65536");
        V(0, "metrics.listen", "metrics.listen", "::1:9740");
        /* a topic: pattern that no topic of the filter can match: every
         * message would be refused (missing_id) */
        V(1, "", "mqtt.topic", "sensors/+/telemetry",
          "input.sensor_id", "topic:sensors/{sensor}/telemetry");
        V(1, "", "mqtt.topic", "sensors/+/telemetry", "input.sensor_id", "topic:+/{sensor}/+");
        V(1, "", "mqtt.topic", "sensors/#", "input.sensor_id", "topic:sensors/{sensor}/x/y");
        V(1, "", "mqtt.topic", "#", "input.sensor_id", "topic:{sensor}");
        V(1, "", "mqtt.topic", "a/#", "input.sensor_id", "topic:a/{sensor}");
        V(1, "", "mqtt.topic", "a/b/#", "input.sensor_id", "topic:a/{sensor}"); /* a/b */
        V(1, "", "mqtt.topic", "+/+", "input.sensor_id", "topic:{sensor}/b");
        V(0, "input.sensor_id: the pattern 'lab/{sensor}/json' matches no topic of "
             "mqtt.topic 'sensors/+/telemetry'",
          "mqtt.topic", "sensors/+/telemetry", "input.sensor_id", "topic:lab/{sensor}/json");
        V(0, "matches no topic", "mqtt.topic", "sensors/+/telemetry",
          "input.sensor_id", "topic:sensors/{sensor}");
        V(0, "matches no topic", "mqtt.topic", "sensors/+",
          "input.sensor_id", "topic:sensors/{sensor}/telemetry");
        V(0, "matches no topic", "mqtt.topic", "a/b/c/#", "input.sensor_id", "topic:a/{sensor}");
        V(0, "matches no topic", "mqtt.topic", "+/x", "input.sensor_id", "topic:$SYS/{sensor}");
        V(0, "matches no topic", "mqtt.topic", "#", "input.sensor_id", "topic:$SYS/{sensor}");
        V(1, "", "mqtt.topic", "$SYS/#", "input.sensor_id", "topic:$SYS/{sensor}");
        V(0, "subscriptions.1.sensor_id: the pattern 'sensors/{sensor}/telemetry' matches "
             "no topic of subscriptions.1.topic 'lab/+/json'",
          "input.sensor_id", "topic:sensors/{sensor}/telemetry",
          "subscriptions.0.topic", "sensors/+/telemetry", "subscriptions.1.topic", "lab/+/json");
        /* {sensor} is a whole level, as tg_topic_sensor() reads it */
        V(0, "{sensor} level", "input.sensor_id", "topic:sensors/x{sensor}/telemetry");
        V(0, "{sensor} level", "input.sensor_id", "topic:sensors/{sensor}x");
#undef V
}

static void test_parse_listen(void) {
        char host[64];
        int port = -1;

        CU_ASSERT_EQUAL(tg_parse_listen("127.0.0.1:9740", host, sizeof(host), &port), 0);
        CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
        CU_ASSERT_EQUAL(port, 9740);
        CU_ASSERT_EQUAL(tg_parse_listen(":0", host, sizeof(host), &port), 0);
        CU_ASSERT_STRING_EQUAL(host, "");
        CU_ASSERT_EQUAL(port, 0);
        CU_ASSERT_EQUAL(tg_parse_listen("[::1]:65535", host, sizeof(host), &port), 0);
        CU_ASSERT_STRING_EQUAL(host, "::1");
        CU_ASSERT_EQUAL(port, 65535);
        CU_ASSERT_EQUAL(tg_parse_listen("localhost:", host, sizeof(host), &port), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_listen("localhost:-1", host, sizeof(host), &port), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_listen("[::1:80", host, sizeof(host), &port), -EINVAL);
        CU_ASSERT_EQUAL(tg_parse_listen("a-very-long-host-name:80", host, 8, &port), -EINVAL);
}

/* --- ${ENV} in values -------------------------------------------------------- */

static void test_yaml_env(void) {
        struct tg_config *cfg = new_config();
        char err[512];

        setenv("TG_TEST_PASSWORD", "s3cr$t{x}", 1);
        setenv("TG_TEST_HOST", "broker.local", 1);
        setenv("TG_TEST_EMPTY", "", 1);
        CU_ASSERT_EQUAL(load_yaml(cfg,
                                  "mqtt:\n"
                                  "  uri: tcp://${TG_TEST_HOST}:1883\n"
                                  "  username: gw${TG_TEST_EMPTY}\n"
                                  "  password: ${TG_TEST_PASSWORD}\n"
                                  "topics:\n"
                                  "  raw: a$${b}${TG_TEST_EMPTY}$c\n"
                                  "input:\n"
                                  "  fields: ['${TG_TEST_HOST}', t]\n",
                                  err, sizeof(err)), 0);
        tg_check(!err[0], __LINE__, "%s", err);
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_uri, "tcp://broker.local:1883");
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_username, "gw");
        /* A value from the environment is not expanded again. */
        CU_ASSERT_STRING_EQUAL(cfg->mqtt_password, "s3cr$t{x}");
        CU_ASSERT_STRING_EQUAL(cfg->topic_raw, "a${b}$c");
        CU_ASSERT_STRING_EQUAL(cfg->input_fields, "broker.local,t");
        tg_config_destroy(cfg);

        unsetenv("TG_TEST_UNSET");
        EXPECT_YAML_ERROR("mqtt:\n  password: ${TG_TEST_UNSET}\n", 2,
                          "mqtt.password: environment variable TG_TEST_UNSET is not set");
        EXPECT_YAML_ERROR("mqtt:\n  password: ${TG_TEST_UNSET\n", 2, "without a closing");
        EXPECT_YAML_ERROR("mqtt:\n  password: x${}\n", 2, "bad variable name");
        EXPECT_YAML_ERROR("input:\n  fields: [a, '${TG_TEST_UNSET}']\n", 2,
                          "input.fields: environment variable TG_TEST_UNSET");
}

/* --- files the options name ---------------------------------------------------- */

static void expect_files(const char *const *kv, int want, const char *needle, int line) {
        struct tg_config *cfg = config_with(kv);
        char err[512] = "";
        int r;

        r = tg_config_check_files(cfg, err, sizeof(err));
        tg_check(r == want && (!needle || strstr(err, needle)), line,
                 "check_files: r %d '%s', want %d '%s'", r, err, want, needle ? needle : "");
        tg_config_destroy(cfg);
}

static void test_check_files(void) {
        char dir[] = "/tmp/tg_test_files_XXXXXX", ca[128], locked[128], sub[128],
             state[128], logf[128];
        int fd;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        snprintf(locked, sizeof(locked), "%s/locked.pem", dir);
        snprintf(sub, sizeof(sub), "%s/no/such/ca.pem", dir);
        snprintf(state, sizeof(state), "%s/state/a/b", dir);
        snprintf(logf, sizeof(logf), "%s/gw.log", dir);
        CU_ASSERT_FATAL((fd = open(ca, O_CREAT | O_WRONLY, 0600)) >= 0);
        close(fd);
        CU_ASSERT_FATAL((fd = open(locked, O_CREAT | O_WRONLY, 0000)) >= 0);
        close(fd);

#define F(want, needle, ...)                                                           do {                                                                                   static const char *kv_[] = {__VA_ARGS__, NULL};                                expect_files(kv_, (want), (needle), __LINE__);                         } while (0)
        {
                static const char *kv[] = {"state.dir", NULL, "mqtt.uri", "ssl://b:1",
                                           "mqtt.tls.ca_file", NULL, "log.file", NULL,
                                           "kafka.ssl.ca.location", NULL, NULL};

                kv[1] = state;
                kv[5] = ca;
                kv[7] = logf;
                kv[9] = ca;
                expect_files(kv, 0, NULL, __LINE__);
                kv[5] = sub;
                expect_files(kv, -ENOENT, "mqtt.tls.ca_file: ", __LINE__);
                kv[5] = dir;
                expect_files(kv, -EINVAL, "not a regular file", __LINE__);
                kv[5] = ca;
                kv[9] = sub;
                expect_files(kv, -ENOENT, "kafka.ssl.ca.location: ", __LINE__);
                kv[9] = "probe";
                expect_files(kv, 0, NULL, __LINE__);
                kv[7] = sub;
                expect_files(kv, -ENOENT, "log.file: ", __LINE__);
                kv[7] = logf;
                kv[1] = ca; /* a file where a directory should be */
                expect_files(kv, -ENOTDIR, "state.dir: ", __LINE__);
                if (geteuid() != 0) { /* root reads anything */
                        kv[1] = state;
                        kv[5] = locked;
                        expect_files(kv, -EACCES, "mqtt.tls.ca_file", __LINE__);
                }
        }
        F(0, NULL, "state.dir", "/tmp");
        F(0, NULL, "state.dir", "relative/does/not/exist"); /* made in the cwd */
#undef F
        unlink(ca);
        unlink(locked);
        rmdir(dir);
}

/* --- output ---------------------------------------------------------------- */

static char *capture_dump(const struct tg_config *cfg) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        tg_config_dump(cfg, f);
        fclose(f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        return text;
}

static int count_lines_starting(const char *text, const char *start) {
        const char *p = text;
        int n = 0;

        while (p && *p) {
                if (!strncmp(p, start, strlen(start)))
                        n++;
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return n;
}

static void test_dump_masks_secrets(void) {
        struct tg_config *cfg = new_config();
        const struct tg_option *t;
        size_t n, i;
        char err[256], *text;
        static const char *const secrets[][2] = {
                {"kafka.sasl.password", "hunter2-sasl"},
                {"kafka.ssl.key.password", "hunter2-key"},
                {"kafka.ssl.keystore.password", "hunter2-keystore"},
                {"kafka.sasl.oauthbearer.client.secret", "hunter2-oauth"},
                {"kafka.ssl.key.pem", "hunter2-pem"},
        };

        for (i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
                CU_ASSERT_EQUAL(tg_config_set(cfg, secrets[i][0], secrets[i][1], "--set",
                                              err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.socket.timeout.ms", "1234", "--set",
                                      err, sizeof(err)), 0);
        text = capture_dump(cfg);
        CU_ASSERT_PTR_NULL(strstr(text, "hunter2"));
        for (i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
                char line[128];

                snprintf(line, sizeof(line), "\n%s: \"***\"\n", secrets[i][0]);
                tg_check(strstr(text, line) != NULL, __LINE__, "%s not masked", secrets[i][0]);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nkafka.socket.timeout.ms: \"1234\"\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nwindow.size: 10000ms\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nmqtt.qos: 1\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "mqtt.uri: \"tcp://127.0.0.1:1883\"\n"));
        /* every option exactly once */
        t = tg_config_options(&n);
        for (i = 0; i < n; i++) {
                char start[80];

                snprintf(start, sizeof(start), "%s: ", t[i].name);
                tg_check(count_lines_starting(text, start) == 1, __LINE__,
                         "%s: %d lines", t[i].name, count_lines_starting(text, start));
        }
        free(text);
        tg_config_destroy(cfg);
}

/* The dump is YAML: loading it gives back the same configuration. */
static void expect_dump_round_trip(struct tg_config *cfg, int line) {
        struct tg_config *back = new_config();
        const struct tg_option *t;
        size_t n, i;
        char err[512];
        char *text = capture_dump(cfg);
        int r = load_yaml(back, text, err, sizeof(err)), same = 1;

        tg_check(r == 0, line, "dump does not load back (r %d, '%s'):\n%s", r, err, text);
        t = tg_config_options(&n);
        for (i = 0; r == 0 && i < n; i++) {
                if (t[i].type == TG_OPT_INT || t[i].type == TG_OPT_DURATION)
                        tg_check(ival(back, &t[i]) == ival(cfg, &t[i]), line,
                                 "%s: %" PRId64 " loaded back as %" PRId64, t[i].name,
                                 ival(cfg, &t[i]), ival(back, &t[i]));
                else
                        tg_check(!strcmp(sval(back, &t[i]), sval(cfg, &t[i])), line,
                                 "%s: '%s' loaded back as '%s'", t[i].name, sval(cfg, &t[i]),
                                 sval(back, &t[i]));
        }
        same = back->kafka_passthrough_cnt == cfg->kafka_passthrough_cnt;
        for (i = 0; r == 0 && same && i < cfg->kafka_passthrough_cnt; i++)
                same = !strcmp(back->kafka_passthrough[i].key, cfg->kafka_passthrough[i].key) &&
                       !strcmp(back->kafka_passthrough[i].value,
                               cfg->kafka_passthrough[i].value);
        tg_check(r != 0 || same, line, "kafka.* properties differ after a dump round trip");
        free(text);
        tg_config_destroy(back);
}

static void test_dump_round_trip(void) {
        struct tg_config *cfg = new_config();
        char err[256];

        expect_dump_round_trip(cfg, __LINE__);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "window.size", "5m", "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.topic", "a/#", "t", err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "kafka.acks", "all", "t", err, sizeof(err)), 0);
        expect_dump_round_trip(cfg, __LINE__);
        /* values that need escaping in a double-quoted YAML scalar: a
         * quote (the dump is not YAML any more) and a backslash (it loads
         * back as another value: "\n" is a newline) */
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.client_id", "gw \"edge\" 1", "t", err,
                                      sizeof(err)), 0);
        expect_dump_round_trip(cfg, __LINE__);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "mqtt.client_id", "gw-1", "t", err,
                                      sizeof(err)), 0);
        CU_ASSERT_EQUAL(tg_config_set(cfg, "state.dir", "C:\\new\\tg", "t", err,
                                      sizeof(err)), 0);
        expect_dump_round_trip(cfg, __LINE__);
        tg_config_destroy(cfg);
}

static void test_reference(void) {
        const struct tg_option *t;
        size_t n;
        char *text = NULL, *p, *nl;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        int rows = 0, lines = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        tg_config_reference(f);
        fclose(f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        t = tg_config_options(&n);
        {
                static const char head[] = "| option | type | default | description |\n"
                                           "|---|---|---|---|\n";

                CU_ASSERT_EQUAL(strncmp(text, head, strlen(head)), 0);
        }
        /* one row per option, in table order, each with four cells */
        for (p = text; *p; p = nl + 1) {
                int bars = 0;
                char *q;

                nl = strchr(p, '\n');
                CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
                lines++;
                if (lines <= 2)
                        continue;
                for (q = p; q < nl; q++)
                        bars += *q == '|';
                tg_check(bars == 5, __LINE__, "row with %d bars: %.*s", bars, (int)(nl - p), p);
                if ((size_t)rows < n) {
                        char want[96];

                        snprintf(want, sizeof(want), "| `%s` | ", t[rows].name);
                        tg_check(!strncmp(p, want, strlen(want)), __LINE__,
                                 "row %d: %.*s, want %s", rows, (int)(nl - p), p, t[rows].name);
                }
                rows++;
        }
        CU_ASSERT_EQUAL(rows, (int)n + TG_SUB__COUNT); /* then the subscription keys */
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "| `mqtt.format` | enum: auto, json, cbor, senml-json, senml-cbor, sparkplug | `auto` |"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "| `mqtt.qos` | integer 0..1 | `1` |"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "| `window.size` | duration | `10s` |"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "| `log.file` | string | `\"\"` |"));
        free(text);
}

/* Sparkplug's namespace is the topic filter when none is given for it. */
static void test_sparkplug_default_topic(void) {
        static const char *const top[] = {"mqtt.format", "sparkplug", NULL};
        static const char *const top_topic[] = {"mqtt.format", "sparkplug", "mqtt.topic",
                                                "spBv1.0/plant1/#", NULL};
        static const char *const listed[] = {"subscriptions.0.format", "sparkplug",
                                             "subscriptions.1.topic", "sensors/+/telemetry",
                                             NULL};
        static const char *const listed_bad[] = {"subscriptions.0.format", "json", NULL};
        struct tg_subscription subs[TG_SUBSCRIPTIONS_MAX];
        struct tg_config *cfg;

        cfg = config_with(top);
        CU_ASSERT_EQUAL_FATAL(tg_config_subscriptions(cfg, subs), 1);
        CU_ASSERT_STRING_EQUAL(subs[0].value[TG_SUB_TOPIC], "spBv1.0/#");
        CU_ASSERT_STRING_EQUAL(cfg->sp_sensor, "device");
        CU_ASSERT_STRING_EQUAL(cfg->sp_rebirth, "yes");
        CU_ASSERT_EQUAL(cfg->sp_rebirth_interval_ms, 5000);
        tg_config_destroy(cfg);
        cfg = config_with(top_topic);
        tg_config_subscriptions(cfg, subs);
        CU_ASSERT_STRING_EQUAL(subs[0].value[TG_SUB_TOPIC], "spBv1.0/plant1/#");
        tg_config_destroy(cfg);
        cfg = config_with(listed);
        CU_ASSERT_EQUAL_FATAL(tg_config_subscriptions(cfg, subs), 2);
        CU_ASSERT_STRING_EQUAL(subs[0].value[TG_SUB_TOPIC], "spBv1.0/#");
        CU_ASSERT_STRING_EQUAL(subs[1].value[TG_SUB_TOPIC], "sensors/+/telemetry");
        tg_config_destroy(cfg);
        expect_validate(listed, 1, NULL, __LINE__);
        expect_validate(listed_bad, 0, "no topic", __LINE__);
}

int main(void) {
        static const struct tg_test tests[] = {
                {"option table is consistent", test_table_is_sane},
                {"sparkplug: spBv1.0/# unless a topic is given", test_sparkplug_default_topic},
                {"defaults equal the table and validate", test_defaults_match_table},
                {"configs share nothing", test_configs_are_independent},
                {"set: unknown key", test_set_unknown_key},
                {"set: integers and their bounds", test_set_int},
                {"set: durations and their bounds", test_set_duration},
                {"set: enums", test_set_enum},
                {"set: strings", test_set_string},
                {"set: MQTT topic filters (MQTT 3.1.1 4.7)", test_set_topic_filter},
                {"set: kafka.* passthrough", test_set_passthrough},
                {"set: error buffers", test_set_error_buffers},
                {"tg_parse_duration_ms", test_parse_duration},
                {"YAML: nested, flow and dotted keys", test_yaml_nested},
                {"YAML: kafka keys with dots", test_yaml_kafka_keys_with_dots},
                {"YAML: empty and comment-only files", test_yaml_empty_files},
                {"YAML: errors name file and line", test_yaml_errors},
                {"YAML: a key given twice names both lines", test_yaml_duplicate_keys},
                {"validate: cross-option checks", test_validate},
                {"tg_parse_listen", test_parse_listen},
                {"YAML: ${ENV} in values", test_yaml_env},
                {"check_files: what the options name", test_check_files},
                {"dump: secrets masked, every option once", test_dump_masks_secrets},
                {"dump: loads back as the same config", test_dump_round_trip},
                {"reference: one row per option", test_reference},
        };

        return TG_TEST_RUN("config", tests);
}
