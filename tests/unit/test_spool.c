/* test_spool.c - CUnit tests of the spool: round trip, rolls, release, reopen, torn tails, damage, limits, fsync, threads, full disk. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "spool.h"

#define HDR TG_SPOOL_RECORD_HEADER
#define BIG (TG_SPOOL_TOPIC_MAX + (2u << 20))

static unsigned char *rbuf;   /* read buffer, BIG bytes */
static unsigned char *pbuf;   /* payload scratch, BIG bytes */
static char tmpl_dir[64];

/* ---- helpers ----------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* Message number id: its topic (0..120 bytes) and payload bytes derive from
 * id alone, so a reader can check what it gets without a copy. */
static size_t make_topic(uint64_t id, char *topic) {
        uint64_t s = id * 0x9E3779B97F4A7C15ull + 7;
        size_t n = (size_t)(xorshift(&s) % 121), i;

        for (i = 0; i < n; i++)
                topic[i] = (char)('a' + xorshift(&s) % 26);
        if (n > 4)
                topic[n / 2] = '/';
        return n;
}

static void make_payload(uint64_t id, unsigned char *p, size_t len) {
        uint64_t s = id * 0xD1B54A32D192ED03ull + 11;
        size_t i;

        for (i = 0; i < len; i++)
                p[i] = (unsigned char)xorshift(&s);
}

static int append_msg(tg_spool_t *sp, uint64_t id, size_t len, uint64_t *seq) {
        char topic[128];
        size_t tlen = make_topic(id, topic);

        make_payload(id, pbuf, len);
        return tg_spool_append(sp, topic, tlen, pbuf, len, (int64_t)id * 1000 - 5, seq);
}

/* 1 if rec is message id with a payload of len bytes. */
static int is_msg(const struct tg_spool_record *rec, uint64_t id, size_t len) {
        char topic[128];
        size_t tlen = make_topic(id, topic);

        if (rec->topic_len != tlen || rec->len != len || rec->arrival_ms != (int64_t)id * 1000 - 5)
                return 0;
        if (tlen && memcmp(rec->topic, topic, tlen))
                return 0;
        make_payload(id, pbuf, len);
        return !len || !memcmp(rec->payload, pbuf, len);
}

static void make_dir(char *out, size_t size) {
        snprintf(out, size, "%s", tmpl_dir);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(out));
}

static void rm_rf(const char *path) {
        struct dirent *de;
        DIR *d = opendir(path);

        if (d) {
                while ((de = readdir(d))) {
                        char sub[512];

                        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                                continue;
                        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                        if (de->d_type == DT_DIR)
                                rm_rf(sub);
                        else
                                unlink(sub);
                }
                closedir(d);
        }
        rmdir(path);
}

static struct tg_spool_conf conf_of(const char *dir, size_t segment_bytes, uint64_t max_bytes,
                                    enum tg_spool_fsync fsync) {
        struct tg_spool_conf c = {
                .dir = dir,
                .segment_bytes = segment_bytes,
                .max_bytes = max_bytes,
                .fsync = fsync,
                .fsync_interval_ms = 1000,
        };
        return c;
}

static tg_spool_t *must_open(const struct tg_spool_conf *c) {
        char err[256] = "";
        tg_spool_t *sp = tg_spool_open(c, err, sizeof(err));

        if (!sp)
                fprintf(stderr, "\nopen failed: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
        return sp;
}

static struct tg_spool_counters counters(tg_spool_t *sp) {
        struct tg_spool_counters k;

        tg_spool_counters(sp, &k);
        return k;
}

static off_t file_size(const char *dir, const char *name) {
        char path[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return stat(path, &st) ? -1 : st.st_size;
}

static void unlink_in(const char *dir, const char *name) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        unlink(path);
}

static void seg_file(char *out, size_t size, uint64_t first) {
        snprintf(out, size, "%020" PRIu64 ".seg", first);
}

/* The names of dir's segment files, sorted, separated by spaces. */
static void list_segs(const char *dir, char *out, size_t size) {
        char names[64][32];
        struct dirent *de;
        int n = 0, i, j;
        DIR *d = opendir(dir);

        out[0] = '\0';
        if (!d)
                return;
        while ((de = readdir(d)) && n < 64)
                if (strstr(de->d_name, ".seg") && strlen(de->d_name) < sizeof(names[0]))
                        memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
        closedir(d);
        for (i = 1; i < n; i++)
                for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                        char t[32];

                        memcpy(t, names[j], sizeof(t));
                        memcpy(names[j], names[j - 1], sizeof(t));
                        memcpy(names[j - 1], t, sizeof(t));
                }
        for (i = 0; i < n; i++) {
                size_t len = strlen(out);

                snprintf(out + len, size - len, "%s%s", i ? " " : "", names[i]);
        }
}

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(write(fd, p, n) == (ssize_t)n);
        close(fd);
}

static unsigned char *read_file(const char *dir, const char *name, size_t *n) {
        off_t size = file_size(dir, name);
        char path[512];
        unsigned char *p;
        int fd;

        CU_ASSERT_FATAL(size >= 0);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        p = malloc((size_t)size + 1);
        fd = open(path, O_RDONLY);
        CU_ASSERT_FATAL(p && fd >= 0);
        CU_ASSERT_FATAL(read(fd, p, (size_t)size) == (ssize_t)size);
        close(fd);
        *n = (size_t)size;
        return p;
}

/* Where each record went: the test's own model of the roll rule. */
struct placed {
        uint64_t seg, off, size, len;
};

/* Append n messages 1..n (message id == seq) with payload lengths from
 * lens[] (or 100), recording where each landed. */
static void fill(tg_spool_t *sp, size_t segment_bytes, uint64_t n, const size_t *lens,
                 struct placed *where) {
        uint64_t i, seg = tg_spool_next_seq(sp), used = counters(sp).bytes;

        for (i = 1; i <= n; i++) {
                char topic[128];
                size_t len = lens ? lens[i - 1] : 100;
                uint64_t size = HDR + make_topic(i, topic) + len, seq = 0;

                if (used && used + size > segment_bytes) {
                        seg = i;
                        used = 0;
                }
                CU_ASSERT_EQUAL_FATAL(append_msg(sp, i, len, &seq), 0);
                CU_ASSERT_EQUAL_FATAL(seq, i);
                if (where)
                        where[i] = (struct placed){seg, used, size, len};
                used += size;
        }
}

/* Read everything from cursor 1 on; ids[] gets the seqs read. Returns the count. */
static uint64_t read_all(tg_spool_t *sp, uint64_t *ids, uint64_t max, const struct placed *where) {
        struct tg_spool_record rec;
        uint64_t cursor = 1, n = 0;
        int r;

        while ((r = tg_spool_read(sp, &cursor, &rec, rbuf, BIG)) == 0) {
                CU_ASSERT_EQUAL(cursor, rec.seq + 1);
                if (where)
                        CU_ASSERT(is_msg(&rec, rec.seq, where[rec.seq].len));
                if (n < max)
                        ids[n] = rec.seq;
                n++;
        }
        CU_ASSERT_EQUAL(r, -EAGAIN);
        return n;
}

/* The encoding documented in spool.c, written independently. */
static size_t encode(unsigned char *p, uint64_t seq, int64_t arrival, const char *topic,
                     size_t tlen, const void *payload, size_t len) {
        uint32_t crc;
        int i;

        memcpy(p, "TGSP", 4);
        p[4] = 1;
        p[5] = 0;
        p[6] = (unsigned char)tlen;
        p[7] = (unsigned char)(tlen >> 8);
        for (i = 0; i < 4; i++) {
                p[8 + i] = (unsigned char)((HDR + tlen + len) >> (8 * i));
                p[12 + i] = (unsigned char)(len >> (8 * i));
        }
        for (i = 0; i < 8; i++) {
                p[16 + i] = (unsigned char)(seq >> (8 * i));
                p[24 + i] = (unsigned char)((uint64_t)arrival >> (8 * i));
        }
        crc = (uint32_t)crc32(0, p, 32);
        for (i = 0; i < 4; i++)
                p[32 + i] = (unsigned char)(crc >> (8 * i));
        crc = (uint32_t)crc32(0, p, 36);
        if (tlen)
                crc = (uint32_t)crc32(crc, (const unsigned char *)topic, (uInt)tlen);
        if (len)
                crc = (uint32_t)crc32(crc, payload, (uInt)len);
        for (i = 0; i < 4; i++)
                p[36 + i] = (unsigned char)(crc >> (8 * i));
        if (tlen)
                memcpy(p + HDR, topic, tlen);
        if (len)
                memcpy(p + HDR + tlen, payload, len);
        return HDR + tlen + len;
}

/* ---- tests ------------------------------------------------------------- */

/* The bytes on disk are exactly the documented format. */
static void test_format(void) {
        char dir[64], name[32];
        struct tg_spool_conf c;
        unsigned char want[256], *got;
        size_t n, wn;
        tg_spool_t *sp;
        uint64_t seq;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_append(sp, "a/b", 3, "hello", 5, -1234567, &seq), 0);
        CU_ASSERT_EQUAL(seq, 1);
        CU_ASSERT_EQUAL(tg_spool_append(sp, "", 0, NULL, 0, INT64_MAX, &seq), 0);
        CU_ASSERT_EQUAL(seq, 2);
        tg_spool_close(sp);
        wn = encode(want, 1, -1234567, "a/b", 3, "hello", 5);
        wn += encode(want + wn, 2, INT64_MAX, "", 0, NULL, 0);
        seg_file(name, sizeof(name), 1);
        got = read_file(dir, name, &n);
        CU_ASSERT_EQUAL(n, wn);
        CU_ASSERT(n == wn && !memcmp(got, want, n));
        free(got);
        rm_rf(dir);
}

/* ---- version 2: records with a properties block ------------------------ */

/* A version 2 record as spool.c's table describes it, written here from the
 * table: the block between topic and payload, its length what total_len
 * leaves, record_crc over header, topic, block, payload in that order. */
static size_t encode_props(unsigned char *p, uint64_t seq, int64_t arrival, const char *topic,
                           size_t tlen, const void *props, size_t plen, const void *payload,
                           size_t len) {
        uint32_t crc;
        int i;

        memcpy(p, "TGSP", 4);
        p[4] = 2;
        p[5] = 0;
        p[6] = (unsigned char)tlen;
        p[7] = (unsigned char)(tlen >> 8);
        for (i = 0; i < 4; i++) {
                p[8 + i] = (unsigned char)((HDR + tlen + plen + len) >> (8 * i));
                p[12 + i] = (unsigned char)(len >> (8 * i));
        }
        for (i = 0; i < 8; i++) {
                p[16 + i] = (unsigned char)(seq >> (8 * i));
                p[24 + i] = (unsigned char)((uint64_t)arrival >> (8 * i));
        }
        crc = (uint32_t)crc32(0, p, 32);
        for (i = 0; i < 4; i++)
                p[32 + i] = (unsigned char)(crc >> (8 * i));
        crc = (uint32_t)crc32(0, p, 36);
        crc = (uint32_t)crc32(crc, (const unsigned char *)topic, (uInt)tlen);
        crc = (uint32_t)crc32(crc, props, (uInt)plen);
        crc = (uint32_t)crc32(crc, payload, (uInt)len);
        for (i = 0; i < 4; i++)
                p[36 + i] = (unsigned char)(crc >> (8 * i));
        memcpy(p + HDR, topic, tlen);
        memcpy(p + HDR + tlen, props, plen);
        memcpy(p + HDR + tlen + plen, payload, len);
        return HDR + tlen + plen + len;
}

/* Bytes on disk: a message without properties is the version 1 record of
 * old, byte for byte (no cost); one with properties is version 2. */
static void test_props_format(void) {
        char dir[64], name[32];
        struct tg_spool_conf c;
        unsigned char want[512], *got;
        size_t n, wn;
        tg_spool_t *sp;
        uint64_t seq;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "a/b", 3, NULL, 0, "hello", 5, 77, &seq), 0);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "a/b", 3, "\x05\x03\x00\x01\x00k", 6, "hi",
                                              2, 78, &seq), 0);
        CU_ASSERT_EQUAL(seq, 2);
        tg_spool_close(sp);
        wn = encode(want, 1, 77, "a/b", 3, "hello", 5);
        wn += encode_props(want + wn, 2, 78, "a/b", 3, "\x05\x03\x00\x01\x00k", 6, "hi", 2);
        seg_file(name, sizeof(name), 1);
        got = read_file(dir, name, &n);
        CU_ASSERT_EQUAL(n, wn);
        CU_ASSERT(n == wn && !memcmp(got, want, n));
        free(got);
        rm_rf(dir);
}

/* Records of both versions mixed, some written by hand as an older gateway
 * wrote them, read back across a reopen with their blocks intact. */
static void test_props_round_trip(void) {
        enum { N = 400 };
        unsigned char props[TG_SPOOL_PROPS_MAX];
        char dir[64], name[32], topic[128];
        struct tg_spool_record rec;
        struct tg_spool_conf c;
        unsigned char *old;
        tg_spool_t *sp;
        uint64_t i, cursor = 1, seq;
        size_t n;

        make_dir(dir, sizeof(dir));
        /* segment 1: three version 1 records, as the spool wrote them before
         * version 2 existed */
        old = malloc(4096);
        n = encode(old, 1, 10, "old/1", 5, "p1", 2);
        n += encode(old + n, 2, 11, "old/2", 5, "", 0);
        n += encode(old + n, 3, 12, "old/3", 5, "p333", 4);
        seg_file(name, sizeof(name), 1);
        write_file(dir, name, old, n);
        free(old);
        c = conf_of(dir, 16384, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        for (i = 4; i < 4 + N; i++) {
                size_t tlen = make_topic(i, topic), plen = i % 3 ? (size_t)(i * 37 % 3000) + 1 : 0;

                make_payload(i, pbuf, (size_t)(i % 200));
                make_payload(i + 1000000, props, plen);
                CU_ASSERT_EQUAL(tg_spool_append_props(sp, topic, tlen, props, plen, pbuf,
                                                      (size_t)(i % 200), (int64_t)i * 1000 - 5,
                                                      &seq), 0);
                CU_ASSERT_EQUAL(seq, i);
        }
        tg_spool_close(sp);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 4 + N);
        for (i = 1; i < 4 + N; i++) {
                CU_ASSERT_EQUAL_FATAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
                CU_ASSERT_EQUAL(rec.seq, i);
                if (i < 4) {
                        CU_ASSERT(rec.props == NULL && rec.props_len == 0);
                        CU_ASSERT(rec.topic_len == 5 && !memcmp(rec.topic, "old/", 4));
                        CU_ASSERT_EQUAL(rec.len, i == 1 ? 2u : i == 2 ? 0u : 4u);
                        continue;
                }
                {
                        size_t tlen = make_topic(i, topic),
                               plen = i % 3 ? (size_t)(i * 37 % 3000) + 1 : 0;

                        make_payload(i + 1000000, props, plen);
                        CU_ASSERT(rec.topic_len == tlen && !memcmp(rec.topic, topic, tlen));
                        CU_ASSERT_EQUAL(rec.props_len, plen);
                        CU_ASSERT(plen ? rec.props && !memcmp(rec.props, props, plen)
                                       : rec.props == NULL);
                        CU_ASSERT(is_msg(&rec, i, (size_t)(i % 200)));
                }
        }
        CU_ASSERT_EQUAL(counters(sp).corrupt_records, 0);
        tg_spool_close(sp);
        rm_rf(dir);
}

/* record_crc covers the block: one flipped bit in it sets exactly that
 * record aside; a version 1 record claiming a block, or a version 2 record
 * without one, is a bad header. Too large a block is refused. */
static void test_props_crc(void) {
        char dir[64], name[32];
        struct tg_spool_record rec;
        struct tg_spool_conf c;
        unsigned char *bytes;
        tg_spool_t *sp;
        uint64_t cursor = 1, seq;
        size_t n, at;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "t", 1, "\x02\x01\x00x", 4, "a", 1, 1, &seq),
                        0);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "t", 1, "\x02\x01\x00y", 4, "b", 1, 2, &seq),
                        0);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "t", 1, "\x02\x01\x00z", 4, "c", 1, 3, &seq),
                        0);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "t", 1, pbuf, TG_SPOOL_PROPS_MAX + 1, "c", 1,
                                              3, &seq), -EMSGSIZE);
        CU_ASSERT_EQUAL(tg_spool_append_props(sp, "t", 1, NULL, 3, "c", 1, 3, &seq), -EINVAL);
        tg_spool_close(sp);
        seg_file(name, sizeof(name), 1);
        bytes = read_file(dir, name, &n);
        at = HDR + 1 + 4 + 1; /* record 2 starts after record 1 */
        bytes[at + HDR + 1 + 3] ^= 0x01; /* its block's value byte */
        write_file(dir, name, bytes, n);
        free(bytes);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT(rec.seq == 1 && rec.props_len == 4 && !memcmp(rec.props, "\x02\x01\x00x", 4));
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT(rec.seq == 3 && rec.props_len == 4 && !memcmp(rec.props, "\x02\x01\x00z", 4));
        CU_ASSERT_EQUAL(counters(sp).corrupt_records, 1);
        tg_spool_close(sp);
        rm_rf(dir);
}

static void test_round_trip(void) {
        enum { N = 3000 };
        static size_t lens[N];
        static struct placed where[N + 1];
        static uint64_t ids[N];
        struct tg_spool_record rec;
        struct tg_spool_counters k;
        struct tg_spool_conf c;
        uint64_t s = 42, i, cursor, seq;
        char dir[64];
        tg_spool_t *sp;

        for (i = 0; i < N; i++)
                lens[i] = (size_t)(xorshift(&s) % 3000);
        lens[9] = 0;                     /* empty payload */
        lens[99] = 65536;                /* 64 KiB: topic + payload above the copy buffer */
        lens[199] = 65536 - 200;         /* just inside it */
        lens[299] = (1u << 20) + 12345;  /* larger than a segment and the read-ahead */
        lens[300] = 5;                   /* and then small again */
        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, (uint64_t)1 << 30, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 1);
        CU_ASSERT_EQUAL(tg_spool_first_seq(sp), 1);
        cursor = 1;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), -EAGAIN);
        CU_ASSERT_EQUAL(tg_spool_wait(sp, 1, 0), 0);
        fill(sp, c.segment_bytes, N, lens, where);
        CU_ASSERT_EQUAL(tg_spool_wait(sp, N, 0), 1);
        CU_ASSERT_EQUAL(tg_spool_wait(sp, N + 1, 10), 0);
        CU_ASSERT_EQUAL(read_all(sp, ids, N, where), N);
        for (i = 0; i < N; i++)
                CU_ASSERT_EQUAL(ids[i], i + 1);

        /* Reading from the middle, and going back. */
        cursor = 2500;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT_EQUAL(rec.seq, 2500);
        cursor = 7;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT_EQUAL(rec.seq, 7);
        CU_ASSERT(is_msg(&rec, 7, lens[6]));

        /* Too small a buffer: cursor unchanged, size reported. */
        cursor = 100;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, 1000), -ENOBUFS);
        CU_ASSERT_EQUAL(cursor, 100);
        CU_ASSERT_EQUAL(rec.seq, 100);
        CU_ASSERT_EQUAL(rec.len, 65536);
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, rec.topic_len + rec.len), 0);
        CU_ASSERT(is_msg(&rec, 100, 65536));
        CU_ASSERT_EQUAL(cursor, 101);

        /* Refused sizes write nothing. */
        CU_ASSERT_EQUAL(tg_spool_append(sp, "t", 65536, pbuf, 1, 0, &seq), -EMSGSIZE);
        CU_ASSERT_EQUAL(tg_spool_append(sp, "t", 1, pbuf, TG_SPOOL_PAYLOAD_MAX + 1, 0, &seq),
                        -EMSGSIZE);
        CU_ASSERT_EQUAL(tg_spool_append(sp, NULL, 1, pbuf, 1, 0, &seq), -EINVAL);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.appended, N);
        CU_ASSERT_EQUAL(k.read, N + 3);
        CU_ASSERT_EQUAL(k.corrupt_records, 0);
        CU_ASSERT_EQUAL(k.bytes, k.appended_bytes);
        CU_ASSERT_EQUAL(k.records_pending, N);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), N + 1);
        tg_spool_close(sp);
        rm_rf(dir);
}

static void test_roll_and_names(void) {
        static struct placed where[101];
        struct tg_spool_conf c;
        char dir[64], names[512], corrupt[96];
        struct stat st;
        tg_spool_t *sp;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 1 << 20, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        fill(sp, c.segment_bytes, 100, NULL, where);
        list_segs(dir, names, sizeof(names));
        /* The model in fill() rolled at the same records as the spool. */
        {
                char want[512] = "", one[32];
                uint64_t i, last = 0;

                for (i = 1; i <= 100; i++) {
                        if (where[i].seg == last)
                                continue;
                        last = where[i].seg;
                        seg_file(one, sizeof(one), last);
                        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
                                 *want ? " " : "", one);
                }
                CU_ASSERT_STRING_EQUAL(names, want);
                CU_ASSERT(where[100].seg > 1);
                CU_ASSERT_EQUAL(counters(sp).segments_created, (uint64_t)(strlen(want) + 1) / 25);
                for (i = 1; i < 100; i++)
                        if (where[i + 1].seg != where[i].seg) {
                                seg_file(one, sizeof(one), where[i].seg);
                                CU_ASSERT_EQUAL(file_size(dir, one),
                                                (off_t)(where[i].off + where[i].size));
                                CU_ASSERT(file_size(dir, one) <= 4096);
                        }
        }
        snprintf(corrupt, sizeof(corrupt), "%s/corrupt", dir);
        CU_ASSERT(stat(corrupt, &st) == 0 && S_ISDIR(st.st_mode));
        tg_spool_close(sp);
        rm_rf(dir);
}

static void test_release(void) {
        static struct placed where[201];
        struct tg_spool_record rec;
        struct tg_spool_counters k;
        struct tg_spool_conf c;
        uint64_t segs[16], cursor, i;
        char dir[64], names[1024], one[32];
        int nsegs = 0, j;
        tg_spool_t *sp;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 1 << 20, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        fill(sp, c.segment_bytes, 200, NULL, where);
        for (i = 1; i <= 200; i++)
                if (!nsegs || segs[nsegs - 1] != where[i].seg)
                        segs[nsegs++] = where[i].seg;
        CU_ASSERT_FATAL(nsegs >= 5);

        /* One short of the end of segment 0: nothing goes. */
        tg_spool_release(sp, segs[1] - 2);
        list_segs(dir, names, sizeof(names));
        seg_file(one, sizeof(one), segs[0]);
        CU_ASSERT_PTR_NOT_NULL(strstr(names, one));
        CU_ASSERT_EQUAL(counters(sp).segments_deleted, 0);
        CU_ASSERT_EQUAL(tg_spool_first_seq(sp), 1);

        /* Exactly its last record: it goes, the next stays. */
        tg_spool_release(sp, segs[1] - 1);
        CU_ASSERT_EQUAL(file_size(dir, one), -1);
        seg_file(one, sizeof(one), segs[1]);
        CU_ASSERT(file_size(dir, one) > 0);
        CU_ASSERT_EQUAL(tg_spool_first_seq(sp), segs[1]);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.segments_deleted, 1);
        CU_ASSERT_EQUAL(k.records_pending, 200 - (segs[1] - 1));

        /* Into the middle of segment 3: segments 1 and 2 go. */
        tg_spool_release(sp, segs[3] + 1);
        for (j = 0; j < nsegs; j++) {
                seg_file(one, sizeof(one), segs[j]);
                CU_ASSERT_EQUAL(file_size(dir, one) > 0, j >= 3);
        }
        CU_ASSERT_EQUAL(counters(sp).records_pending, 200 - (segs[3] + 1));
        /* A reader behind the release point gets the first record left. */
        cursor = 1;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT_EQUAL(rec.seq, segs[3]);

        /* Everything: only the segment being written stays. */
        tg_spool_release(sp, UINT64_MAX);
        list_segs(dir, names, sizeof(names));
        seg_file(one, sizeof(one), segs[nsegs - 1]);
        CU_ASSERT_STRING_EQUAL(names, one);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.segments_deleted, (uint64_t)nsegs - 1);
        /* The segment being written is allocated whole up front. */
        CU_ASSERT_EQUAL(k.allocated_bytes, (uint64_t)file_size(dir, one));
        CU_ASSERT_EQUAL(k.allocated_bytes, c.segment_bytes);
        CU_ASSERT(k.bytes > 0 && k.bytes <= k.allocated_bytes);
        CU_ASSERT_EQUAL(k.records_pending, 0);
        /* Still readable: nothing is deleted while being written. */
        cursor = 200;
        CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
        CU_ASSERT(is_msg(&rec, 200, 100));
        tg_spool_close(sp);
        rm_rf(dir);
}

static void test_reopen(void) {
        static struct placed where[301];
        static uint64_t ids[400];
        struct tg_spool_conf c;
        tg_spool_t *sp;
        char dir[64], err[256];
        uint64_t i, seq;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 8192, 1 << 24, TG_SPOOL_FSYNC_INTERVAL);
        sp = must_open(&c);
        fill(sp, c.segment_bytes, 150, NULL, where);
        /* A second process cannot open the same directory. */
        CU_ASSERT_PTR_NULL(tg_spool_open(&c, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "in use"));
        tg_spool_close(sp);

        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 151);
        CU_ASSERT_EQUAL(tg_spool_first_seq(sp), 1);
        CU_ASSERT_EQUAL(counters(sp).torn_tail_bytes, 0);
        CU_ASSERT_EQUAL(read_all(sp, ids, 400, where), 150);
        for (i = 151; i <= 300; i++) {
                CU_ASSERT_EQUAL(append_msg(sp, i, 100, &seq), 0);
                CU_ASSERT_EQUAL(seq, i);
                where[i].len = 100;
        }
        tg_spool_close(sp);

        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 301);
        CU_ASSERT_EQUAL(read_all(sp, ids, 400, where), 300);
        for (i = 0; i < 300; i++)
                CU_ASSERT_EQUAL(ids[i], i + 1);
        /* Released up to the end, then reopened: numbering still continues. */
        tg_spool_release(sp, 300);
        tg_spool_close(sp);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 301);
        CU_ASSERT_EQUAL(append_msg(sp, 301, 3, &seq), 0);
        CU_ASSERT_EQUAL(seq, 301);
        tg_spool_close(sp);

        /* seq_floor lifts the numbering; reading skips the gap. */
        c.seq_floor = 1000;
        sp = must_open(&c);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), 1000);
        CU_ASSERT_EQUAL(append_msg(sp, 1000, 3, &seq), 0);
        CU_ASSERT_EQUAL(seq, 1000);
        {
                struct tg_spool_record rec;
                uint64_t cursor = 302;

                CU_ASSERT_EQUAL(tg_spool_wait(sp, 302, 0), 1);
                CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
                CU_ASSERT_EQUAL(rec.seq, 1000);
                CU_ASSERT(is_msg(&rec, 1000, 3));
        }
        tg_spool_close(sp);
        rm_rf(dir);
}

/* Cut the last segment at every offset inside its last record. */
static void test_torn_tail(void) {
        enum { N = 10 };
        static struct placed where[N + 2];
        static const size_t lens[N] = {10, 0, 300, 70000, 5, 1, 2, 3, 4, 250};
        struct tg_spool_conf c;
        struct tg_spool_counters k;
        uint64_t cut, start, end, ids[N + 2], seq, i;
        unsigned char *orig;
        size_t size;
        char dir[64], name[32], tail[128];
        tg_spool_t *sp;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_ALWAYS);
        sp = must_open(&c);
        fill(sp, c.segment_bytes, N, lens, where);
        tg_spool_close(sp);
        seg_file(name, sizeof(name), 1);
        orig = read_file(dir, name, &size);
        start = where[N].off;
        end = start + where[N].size;
        CU_ASSERT_EQUAL_FATAL(end, size);

        for (cut = start + 1; cut < end; cut++) {
                /* Zeros at the end are a segment's unused allocation, not
                 * part of a torn record. */
                uint64_t nz = cut;

                while (nz > start && !orig[nz - 1])
                        nz--;
                write_file(dir, name, orig, (size_t)cut);
                sp = must_open(&c);
                k = counters(sp);
                CU_ASSERT_EQUAL(k.torn_tail_bytes, nz - start);
                CU_ASSERT_EQUAL(k.torn_tails, nz > start);
                CU_ASSERT_EQUAL(k.bytes, start);
                CU_ASSERT_EQUAL(tg_spool_next_seq(sp), N);
                /* Cut, then allocated whole again for the appends to come. */
                CU_ASSERT_EQUAL(file_size(dir, name), (off_t)c.segment_bytes);
                CU_ASSERT_EQUAL(read_all(sp, ids, N + 2, where), N - 1);
                for (i = 0; i < N - 1; i++)
                        CU_ASSERT_EQUAL(ids[i], i + 1);
                CU_ASSERT_EQUAL(append_msg(sp, N, 250, &seq), 0);
                CU_ASSERT_EQUAL(seq, N);
                CU_ASSERT_EQUAL(read_all(sp, ids, N + 2, where), N);
                CU_ASSERT_EQUAL(counters(sp).corrupt_records, 0);
                tg_spool_close(sp);
                /* Sealed at close: the unused allocation is given back. */
                CU_ASSERT_EQUAL(file_size(dir, name), (off_t)end);
                /* What was cut is kept for inspection. */
                snprintf(tail, sizeof(tail), "corrupt/%s-%" PRIu64 ".tail", "00000000000000000001",
                         start);
                CU_ASSERT_EQUAL(file_size(dir, tail), nz > start ? (off_t)(nz - start) : -1);
                unlink_in(dir, tail);
        }

        /* A power loss that kept the size and the header but not the rest:
         * the header is the torn tail, the zeros after it are not. */
        memset(orig + start + HDR, 0, (size_t)(end - start - HDR));
        write_file(dir, name, orig, size);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(counters(sp).torn_tail_bytes, HDR);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), N);
        tg_spool_close(sp);
        free(orig);
        rm_rf(dir);
}

/* Damage a record in a segment, read everything back. */
static void check_damage(size_t segment_bytes, uint64_t n, uint64_t victim, long at,
                         const char *what) {
        static struct placed where[200];
        static uint64_t ids[200];
        struct tg_spool_counters k;
        struct tg_spool_conf c;
        unsigned char *bytes;
        char dir[64], name[32], aside[128], logpath[96], line[512];
        uint64_t i, j, seq;
        size_t size;
        tg_spool_t *sp;
        FILE *f;
        int warned = 0;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, segment_bytes, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        fill(sp, segment_bytes, n, NULL, where);
        tg_spool_close(sp);
        seg_file(name, sizeof(name), where[victim].seg);
        bytes = read_file(dir, name, &size);
        /* at < 0 counts from the record's end: -1 is its last payload byte */
        bytes[where[victim].off + (at < 0 ? where[victim].size - (uint64_t)-at : (uint64_t)at)] ^= 0x10;
        write_file(dir, name, bytes, size);

        snprintf(logpath, sizeof(logpath), "%s.log", dir);
        tg_log_open(logpath);
        tg_log_set_level(TG_LOG_WARN);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(counters(sp).torn_tail_bytes, 0);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), n + 1);
        /* Twice: the second pass does not count or log it again. */
        for (j = 0; j < 2; j++) {
                CU_ASSERT_EQUAL(read_all(sp, ids, 200, where), n - 1);
                for (i = 0; i < n - 1; i++)
                        CU_ASSERT_EQUAL(ids[i], i + 1 + (i + 1 >= victim));
        }
        k = counters(sp);
        if (k.corrupt_records != 1 || k.corrupt_bytes != where[victim].size)
                fprintf(stderr, "\n%s: corrupt_records %" PRIu64 " bytes %" PRIu64 "\n", what,
                        k.corrupt_records, k.corrupt_bytes);
        CU_ASSERT_EQUAL(k.corrupt_records, 1);
        CU_ASSERT_EQUAL(k.corrupt_bytes, where[victim].size);
        /* Appends go on after damage. */
        CU_ASSERT_EQUAL(append_msg(sp, n + 1, 100, &seq), 0);
        CU_ASSERT_EQUAL(seq, n + 1);
        tg_spool_close(sp);
        tg_log_open(NULL);
        tg_log_set_level(TG_LOG_ERROR);
        f = fopen(logpath, "r");
        while (f && fgets(line, sizeof(line), f))
                warned += strstr(line, "set aside") != NULL;
        if (f)
                fclose(f);
        unlink(logpath);
        CU_ASSERT_EQUAL(warned, 1);

        /* Set aside: exactly the record's bytes, damage included. */
        snprintf(aside, sizeof(aside), "corrupt/%020" PRIu64 "-%" PRIu64 ".bin",
                 where[victim].seg, where[victim].off);
        CU_ASSERT_EQUAL(file_size(dir, aside), (off_t)where[victim].size);
        {
                size_t an;
                unsigned char *a = read_file(dir, aside, &an);

                CU_ASSERT(an == where[victim].size &&
                          !memcmp(a, bytes + where[victim].off, an));
                free(a);
        }
        free(bytes);
        rm_rf(dir);
}

static void test_bit_flips(void) {
        /* One segment; record 10 of 20: 40 bytes of header, a topic of
         * 0..120 bytes, 100 of payload. */
        check_damage(1 << 20, 20, 10, 0, "magic");
        check_damage(1 << 20, 20, 10, 5, "flags");
        check_damage(1 << 20, 20, 10, 9, "total_len");
        check_damage(1 << 20, 20, 10, 13, "payload_len");
        check_damage(1 << 20, 20, 10, 17, "seq");
        check_damage(1 << 20, 20, 10, 26, "arrival");
        check_damage(1 << 20, 20, 10, 33, "header_crc");
        check_damage(1 << 20, 20, 10, 38, "record_crc");
        check_damage(1 << 20, 20, 10, HDR + 1, "topic or payload");
        check_damage(1 << 20, 20, 10, -1, "last payload byte");
        check_damage(1 << 20, 20, 10, -50, "payload");
        /* Several segments: the middle of a sealed one, and the last record
         * of a sealed one (damage at its end is not a torn tail). */
        check_damage(4096, 120, 12, 9, "sealed total_len");
        check_damage(4096, 120, 12, -30, "sealed payload");
}

static void test_sealed_tail_damage(void) {
        static struct placed where[121];
        uint64_t i, victim = 0;
        char dir[64];
        struct tg_spool_conf c;
        tg_spool_t *sp;

        /* Find the last record of the first segment, then damage it. */
        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        fill(sp, 4096, 120, NULL, where);
        tg_spool_close(sp);
        rm_rf(dir);
        for (i = 1; i < 120 && !victim; i++)
                if (where[i + 1].seg != where[i].seg)
                        victim = i;
        CU_ASSERT_FATAL(victim > 0);
        check_damage(4096, 120, victim, 11, "last record of a sealed segment, header");
        check_damage(4096, 120, victim, -7, "last record of a sealed segment, payload");
}

/* Garbage named as segments: opening and reading never crash. */
static void test_garbage(void) {
        static unsigned char junk[40000];
        struct tg_spool_record rec;
        struct tg_spool_conf c;
        char dir[64], name[32];
        uint64_t s = 7, cursor, seq;
        int iter;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        for (iter = 0; iter < 400; iter++) {
                size_t n = (size_t)(xorshift(&s) % sizeof(junk)), i;
                int file, k;
                tg_spool_t *sp;

                if (iter % 5 == 0)
                        n %= 64; /* shorter than a header, or barely longer */
                for (i = 0; i < n; i++)
                        junk[i] = (unsigned char)xorshift(&s);
                /* Sprinkle magics, headers that verify with wild lengths, and
                 * whole records, so every path of the parser runs. */
                for (k = 0; n > 600 && k < 20; k++) {
                        size_t at = (size_t)(xorshift(&s) % (n - 300));
                        uint64_t seq_in = xorshift(&s) % 200;

                        switch (xorshift(&s) % 3) {
                        case 0:
                                memcpy(junk + at, "TGSP", 4);
                                break;
                        case 1:
                                encode(junk + at, seq_in, 0, "x", 1, rbuf, 100);
                                junk[at + 8] ^= (unsigned char)xorshift(&s); /* header CRC then fails */
                                break;
                        default:
                                encode(pbuf, seq_in, 0, "x", 1, junk, (size_t)(xorshift(&s) % 200));
                                memcpy(junk + at, pbuf, 250);
                                break;
                        }
                }
                for (file = 0; file < 2; file++) {
                        seg_file(name, sizeof(name), file ? 100 : 1);
                        write_file(dir, name, junk + (file ? n / 2 : 0), file ? n - n / 2 : n / 2);
                }
                sp = must_open(&c);
                cursor = 0;
                for (k = 0; k < 1000 && tg_spool_read(sp, &cursor, &rec, rbuf, BIG) == 0; k++)
                        CU_ASSERT(rec.seq >= 1 && rec.seq < tg_spool_next_seq(sp));
                CU_ASSERT(tg_spool_next_seq(sp) >= 100);
                CU_ASSERT_EQUAL(tg_spool_append(sp, "ok", 2, "fine", 4, 1, &seq), 0);
                cursor = seq;
                CU_ASSERT_EQUAL(tg_spool_read(sp, &cursor, &rec, rbuf, BIG), 0);
                CU_ASSERT(rec.seq == seq && rec.len == 4 && !memcmp(rec.payload, "fine", 4));
                tg_spool_close(sp);
                rm_rf(dir);
                CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
        }
        rm_rf(dir);
}

static void test_max_bytes(void) {
        struct tg_spool_counters k, k2;
        struct tg_spool_conf c;
        uint64_t i, seq, first_full = 0;
        char dir[64], names[1024], names2[1024];
        tg_spool_t *sp;
        int r = 0;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 3 * 4096, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        for (i = 1; i < 1000 && !r; i++)
                if ((r = append_msg(sp, i, 100, &seq)))
                        first_full = i;
        CU_ASSERT_EQUAL_FATAL(r, -ENOSPC);
        k = counters(sp);
        CU_ASSERT(k.bytes <= c.max_bytes);
        CU_ASSERT_EQUAL(k.full_refusals, 1);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), first_full);
        list_segs(dir, names, sizeof(names));
        /* Refused again: nothing written, nothing counted but the refusal. */
        CU_ASSERT_EQUAL(append_msg(sp, first_full, 100, &seq), -ENOSPC);
        k2 = counters(sp);
        list_segs(dir, names2, sizeof(names2));
        CU_ASSERT_STRING_EQUAL(names, names2);
        CU_ASSERT_EQUAL(k2.bytes, k.bytes);
        CU_ASSERT_EQUAL(k2.appended, k.appended);
        CU_ASSERT_EQUAL(k2.full_refusals, 2);
        /* Released: room again. */
        tg_spool_release(sp, first_full - 1);
        CU_ASSERT(counters(sp).bytes < k.bytes);
        CU_ASSERT_EQUAL(append_msg(sp, first_full, 100, &seq), 0);
        CU_ASSERT_EQUAL(seq, first_full);
        tg_spool_close(sp);
        rm_rf(dir);
}

static int64_t fake_now;

static int64_t fake_clock_now(void *opaque) {
        (void)opaque;
        return fake_now;
}

static const struct tg_clock fake_clock = {.now_ms = fake_clock_now};

static void test_fsync_policies(void) {
        struct tg_spool_conf c;
        char dir[64];
        tg_spool_t *sp;
        uint64_t i, seq;

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_ALWAYS);
        sp = must_open(&c);
        CU_ASSERT_EQUAL(counters(sp).dir_fsyncs, 1); /* the new segment's entry */
        for (i = 1; i <= 10; i++)
                CU_ASSERT_EQUAL(append_msg(sp, i, 100, &seq), 0);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 10);
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 10);
        tg_spool_close(sp);
        rm_rf(dir);

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, 1 << 24, TG_SPOOL_FSYNC_INTERVAL);
        c.fsync_interval_ms = 1000000;
        c.clock = &fake_clock;
        fake_now = 5000;
        sp = must_open(&c);
        for (i = 1; i <= 10; i++) {
                fake_now += 100;
                CU_ASSERT_EQUAL(append_msg(sp, i, 100, &seq), 0);
        }
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 0);
        fake_now = 5000 + 999999;
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 0);
        fake_now = 5000 + 1000000;
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 1);
        tg_spool_tick(sp); /* nothing new to sync */
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 1);
        fake_now += 1;
        CU_ASSERT_EQUAL(append_msg(sp, 11, 100, &seq), 0);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 1);
        /* Due again: appends never sync under INTERVAL (the callback must
         * not wait for the disk); the next tick does. */
        fake_now += 1000000;
        CU_ASSERT_EQUAL(append_msg(sp, 12, 100, &seq), 0);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 1);
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 2);
        CU_ASSERT_EQUAL(tg_spool_sync(sp), 0); /* clean: nothing to do */
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 2);
        tg_spool_close(sp);
        rm_rf(dir);

        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 4096, 1 << 24, TG_SPOOL_FSYNC_NEVER);
        sp = must_open(&c);
        for (i = 1; i <= 100; i++) /* rolls too */
                CU_ASSERT_EQUAL(append_msg(sp, i, 100, &seq), 0);
        tg_spool_tick(sp);
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 0);
        CU_ASSERT_EQUAL(counters(sp).dir_fsyncs, 0);
        CU_ASSERT(counters(sp).segments_created > 1);
        CU_ASSERT_EQUAL(tg_spool_sync(sp), 0); /* explicit: syncs whatever the policy */
        CU_ASSERT_EQUAL(counters(sp).fsyncs, 1);
        tg_spool_close(sp);
        rm_rf(dir);
}

/* ---- a writer and a reader at once ------------------------------------- */

struct race {
        tg_spool_t *sp;
        uint64_t n;
        int write_errors, read_errors, order_errors, content_errors;
        uint64_t got;
};

static void race_payload(uint64_t i, unsigned char *p, size_t *len) {
        uint64_t h = i * 0x9E3779B97F4A7C15ull;
        size_t k;

        *len = 8 + (size_t)(i % 24);
        for (k = 0; k < 8; k++)
                p[k] = (unsigned char)(i >> (8 * k));
        for (k = 8; k < *len; k++)
                p[k] = (unsigned char)(h >> (k % 8 * 8)) ^ (unsigned char)k;
}

static void *race_writer(void *arg) {
        struct race *r = arg;
        unsigned char p[32];
        char topic[16];
        uint64_t i, seq;
        size_t len;

        for (i = 1; i <= r->n; i++) {
                int tl = snprintf(topic, sizeof(topic), "t/%u", (unsigned)(i % 16));

                race_payload(i, p, &len);
                if (tg_spool_append(r->sp, topic, (size_t)tl, p, len, (int64_t)i, &seq) || seq != i)
                        r->write_errors++;
        }
        return NULL;
}

static void *race_reader(void *arg) {
        struct race *r = arg;
        static unsigned char buf[4096];
        struct tg_spool_record rec;
        uint64_t cursor = 1;

        while (r->got < r->n) {
                unsigned char p[32];
                char topic[16];
                size_t len;
                int tl, rc = tg_spool_read(r->sp, &cursor, &rec, buf, sizeof(buf));

                if (rc == -EAGAIN) {
                        if (!tg_spool_wait(r->sp, cursor, 2000) &&
                            tg_spool_read(r->sp, &cursor, &rec, buf, sizeof(buf)) == -EAGAIN) {
                                r->read_errors++; /* two seconds without progress */
                                return NULL;
                        }
                        continue;
                }
                if (rc) {
                        r->read_errors++;
                        return NULL;
                }
                if (rec.seq != r->got + 1)
                        r->order_errors++;
                race_payload(rec.seq, p, &len);
                tl = snprintf(topic, sizeof(topic), "t/%u", (unsigned)(rec.seq % 16));
                if (rec.len != len || memcmp(rec.payload, p, len) || rec.topic_len != (size_t)tl ||
                    memcmp(rec.topic, topic, (size_t)tl) || rec.arrival_ms != (int64_t)rec.seq)
                        r->content_errors++;
                r->got++;
                if (r->got % 25000 == 0)
                        tg_spool_release(r->sp, rec.seq); /* deletes while the writer rolls */
        }
        return NULL;
}

static void test_writer_reader_threads(void) {
        struct race r = {.n = 500000};
        struct tg_spool_counters k;
        struct tg_spool_conf c;
        pthread_t w, rd;
        char dir[64];
        const char *env = getenv("TG_SPOOL_RACE_RECORDS");

        if (env)
                r.n = strtoull(env, NULL, 10);
        make_dir(dir, sizeof(dir));
        c = conf_of(dir, 1 << 20, (uint64_t)1 << 30, TG_SPOOL_FSYNC_NEVER);
        r.sp = must_open(&c);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&rd, NULL, race_reader, &r), 0);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w, NULL, race_writer, &r), 0);
        pthread_join(w, NULL);
        pthread_join(rd, NULL);
        CU_ASSERT_EQUAL(r.write_errors, 0);
        CU_ASSERT_EQUAL(r.read_errors, 0);
        CU_ASSERT_EQUAL(r.order_errors, 0);
        CU_ASSERT_EQUAL(r.content_errors, 0);
        CU_ASSERT_EQUAL(r.got, r.n);
        k = counters(r.sp);
        CU_ASSERT_EQUAL(k.appended, r.n);
        CU_ASSERT_EQUAL(k.read, r.n);
        CU_ASSERT(k.segments_deleted > 0);
        CU_ASSERT_EQUAL(k.corrupt_records, 0);
        tg_spool_close(r.sp);
        rm_rf(dir);
}

/* ---- a full disk ------------------------------------------------------- */

/*
 * A full file system. Segments are allocated whole when they start, so an
 * append inside one never fails for space; a segment that cannot start is
 * an -ENOSPC refusal that writes nothing. Space comes back either from
 * outside or from releasing what the spool holds, even its last segment,
 * with no new space needed to free space.
 */
static void test_disk_full(void) {
        struct tg_spool_counters k;
        struct tg_spool_conf c;
        char base[64], dir[96], filler[96], name[32];
        uint64_t i, seq, n = 0, n2 = 0;
        int mounted, r = 0, fd;
        tg_spool_t *sp;

        make_dir(base, sizeof(base));
        mounted = mount("tmpfs", base, "tmpfs", 0, "size=1m") == 0;
        snprintf(dir, sizeof(dir), "%s/spool", base);
        snprintf(filler, sizeof(filler), "%s/filler", base);
        c = conf_of(dir, 4 << 20, 64 << 20, TG_SPOOL_FSYNC_ALWAYS);
        if (mounted) {
                /* Some space that can be given back later. */
                memset(pbuf, 0xee, 128 << 10);
                fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_FATAL(write(fd, pbuf, 128 << 10) == 128 << 10);
                close(fd);
        } else {
                /* No tmpfs (not root): max_bytes stands in for the disk. */
                fprintf(stderr, "\n(tmpfs mount failed: %s; using max_bytes)\n", strerror(errno));
                c.segment_bytes = 256 << 10;
                c.max_bytes = 900 << 10;
        }
        /* A segment larger than the free space: sized to what is free. */
        sp = must_open(&c);
        k = counters(sp);
        CU_ASSERT(k.allocated_bytes > 0 && k.allocated_bytes < (1 << 20));
        for (i = 1; i < 4000 && !r; i++) {
                if (!(r = append_msg(sp, i, 1000, &seq)))
                        n = i;
        }
        CU_ASSERT_EQUAL(r, -ENOSPC);
        CU_ASSERT_FATAL(n > 10);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.write_errors, 0);
        CU_ASSERT(k.full_refusals >= 1);
        CU_ASSERT_EQUAL(k.appended, n);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), n + 1);
        CU_ASSERT_EQUAL(tg_spool_writable(sp), 0);
        /* Sealed: the file ends at the last whole record. */
        seg_file(name, sizeof(name), 1);
        CU_ASSERT_EQUAL(file_size(dir, name), (off_t)k.bytes);
        CU_ASSERT_EQUAL(append_msg(sp, n + 1, 1000, &seq), -ENOSPC);
        CU_ASSERT_EQUAL(file_size(dir, name), (off_t)k.bytes);
        CU_ASSERT_EQUAL(counters(sp).appended, n);

        /* Space returns from outside: appends work again. */
        if (mounted) {
                unlink(filler);
                CU_ASSERT_EQUAL(append_msg(sp, n + 1, 1000, &seq), 0);
                CU_ASSERT_EQUAL(seq, n + 1);
                n++;
                for (r = 0, i = n + 1; i < 8000 && !r; i++)
                        if (!(r = append_msg(sp, i, 1000, &seq)))
                                n = i;
                CU_ASSERT_EQUAL(r, -ENOSPC);
        }
        /* Everything confirmed: releasing it frees the space, the last
         * (sealed) segment included, and appends go on by themselves. */
        tg_spool_release(sp, n);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.allocated_bytes, 0);
        CU_ASSERT_EQUAL(k.records_pending, 0);
        CU_ASSERT_EQUAL(append_msg(sp, n + 1, 1000, &seq), 0);
        CU_ASSERT_EQUAL(seq, n + 1);
        CU_ASSERT_EQUAL(tg_spool_writable(sp), 1);
        for (r = 0, i = n + 2; i < n + 100 && !r; i++)
                if (!(r = append_msg(sp, i, 1000, &seq)))
                        n2 = i;
        CU_ASSERT_EQUAL(n2, n + 99);
        tg_spool_close(sp);

        sp = must_open(&c);
        k = counters(sp);
        CU_ASSERT_EQUAL(k.torn_tail_bytes, 0);
        CU_ASSERT_EQUAL(tg_spool_next_seq(sp), n2 + 1);
        {
                struct tg_spool_record rec;
                uint64_t cursor = 1, got = 0;

                while (tg_spool_read(sp, &cursor, &rec, rbuf, BIG) == 0) {
                        CU_ASSERT(rec.seq == n + 1 + got && is_msg(&rec, rec.seq, 1000));
                        got++;
                }
                CU_ASSERT_EQUAL(got, n2 - n);
        }
        tg_spool_close(sp);
        rm_rf(dir);
        if (mounted)
                umount(base);
        rm_rf(base);
}

int main(void) {
        static const struct {
                const char *name;
                void (*fn)(void);
        } tests[] = {
                {"record bytes match the documented format", test_format},
                {"round trip: random topics and payloads, 0 B to 1 MiB", test_round_trip},
                {"properties: version 1 unchanged without, version 2 with", test_props_format},
                {"properties: old records and both versions read back", test_props_round_trip},
                {"properties: covered by the CRC, bounded", test_props_crc},
                {"segment roll and file names", test_roll_and_names},
                {"release deletes exactly the released sealed segments", test_release},
                {"reopen continues seq and reads everything back", test_reopen},
                {"torn tail cut at every offset of the last record", test_torn_tail},
                {"bit flips in header, lengths, CRCs, payload are set aside", test_bit_flips},
                {"damage in the last record of a sealed segment", test_sealed_tail_damage},
                {"garbage segment files", test_garbage},
                {"max_bytes: -ENOSPC, nothing written, release frees", test_max_bytes},
                {"fsync counts per policy", test_fsync_policies},
                {"writer and reader threads, 500000 records", test_writer_reader_threads},
                {"full disk: refused whole, recovers from outside and by release", test_disk_full},
        };
        const char *tmp = getenv("TMPDIR");
        CU_pSuite suite;
        unsigned failed;
        size_t i;

        snprintf(tmpl_dir, sizeof(tmpl_dir), "%s/tg-spool-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        tg_log_set_level(TG_LOG_ERROR); /* damage is expected here; check_damage reads warnings */
        rbuf = malloc(BIG);
        pbuf = malloc(BIG);
        if (!rbuf || !pbuf || CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        suite = CU_add_suite("spool", NULL, NULL);
        for (i = 0; suite && i < sizeof(tests) / sizeof(*tests); i++)
                if (!CU_add_test(suite, tests[i].name, tests[i].fn))
                        suite = NULL;
        if (!suite) {
                CU_cleanup_registry();
                return 1;
        }
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        free(rbuf);
        free(pbuf);
        return failed ? 1 : 0;
}
