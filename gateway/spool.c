/* spool.c - the spool: segment files of CRC-checked records, appended once, read in order, deleted when released. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "errstr.h"
#include "log.h"

/*
 * On-disk format, version 1.
 *
 * dir/NNNNNNNNNNNNNNNNNNNN.seg  a segment: records back to back, nothing
 *                               else (no file header). The name is the
 *                               first seq the segment may hold, 20 decimal
 *                               digits, so names sort in seq order. Every
 *                               record of segment i has first(i) <= seq <
 *                               first(i + 1).
 * dir/corrupt/S-O.bin           bytes of segment S from offset O that read
 *                               skipped as damaged (bad header or CRC)
 * dir/corrupt/S-O.tail          a torn tail cut off the last segment at open
 *
 * A record, all integers little-endian, written explicitly byte by byte:
 *
 *   off size
 *     0   4  magic       "TGSP" (0x54 0x47 0x53 0x50)
 *     4   1  version     1
 *     5   1  flags       0 (reserved)
 *     6   2  topic_len   <= 65535
 *     8   4  total_len   40 + topic_len + payload_len
 *    12   4  payload_len <= 16 MiB
 *    16   8  seq         >= 1, increasing within and across segments
 *    24   8  arrival_ms  signed
 *    32   4  header_crc  zlib crc32 of bytes 0..31
 *    36   4  record_crc  zlib crc32 of bytes 0..35, then topic, then payload
 *    40      topic, then payload
 *
 * Two CRCs because they answer two questions. header_crc says whether the
 * lengths can be trusted: when only the payload is damaged, exactly that
 * record is skipped and the next one starts where total_len says. When the
 * header itself is damaged, nothing after it can be trusted, and the reader
 * resynchronises by scanning forward for the magic followed by a header
 * whose header_crc verifies. record_crc covers everything.
 *
 * Durability. Each append is one pwritev(2) at the segment's end, so a
 * crash of the process loses nothing appended (the kernel has it) and a
 * record is never interleaved with another. A power loss can leave the last
 * segment with a torn tail: at open, everything after the last record that
 * verifies is set aside and truncated. A failed write (full disk) is
 * truncated back at once, so no half record stays in the file.
 * Records are never rewritten; segments are deleted whole.
 *
 * Concurrency. `lock` guards the segment table, the committed end of each
 * segment, the sequence numbers and the counters; it is held only for
 * bookkeeping, never across I/O. The appender owns the write side under
 * `append_lock` and publishes a record (end, next_seq) only once it is
 * completely written (and synced, under ALWAYS). The reader owns its own
 * file descriptor and read-ahead buffer under `read_lock`, takes a snapshot
 * of the committed end, and never reads past it.
 */

#define HDR_SIZE TG_SPOOL_RECORD_HEADER
#define HDR_CRC_OFF 32
#define REC_CRC_OFF 36
#define VERSION 1
#define WBUF_BODY ((size_t)64 << 10) /* topic + payload copied into one buffer up to this */
#define SCAN_BUF ((size_t)256 << 10) /* read-ahead of the reader and of the scan at open */
#define SEG_NAME_LEN 24              /* 20 digits + ".seg" */

static const unsigned char magic[4] = {'T', 'G', 'S', 'P'};

struct seg {
        uint64_t first_seq; /* from the file name */
        uint64_t end;       /* committed size: only whole records (and, sealed, any damage) */
};

/* A window of a file read ahead into a buffer; never reads at or past limit. */
struct scan {
        int fd;
        unsigned char *buf;
        size_t cap;
        uint64_t base; /* file offset of buf[0] */
        size_t len;    /* valid bytes in buf */
        uint64_t limit;
};

struct rec_hdr {
        uint16_t topic_len;
        uint32_t total_len, len;
        uint64_t seq;
        int64_t arrival_ms;
        uint32_t crc;
};

struct tg_spool {
        struct tg_spool_conf conf;
        char *dir;
        int dfd;                 /* the directory: flock, fsync, openat */
        int cfd;                 /* dir/corrupt */

        pthread_mutex_t lock;    /* everything down to counters */
        pthread_cond_t appended;
        struct seg *segs;        /* in seq order; the last is being written */
        size_t nsegs, segs_cap;
        uint64_t bytes;
        uint64_t next_seq;
        uint64_t last_seq;       /* highest committed seq, 0 if none */
        uint64_t released;       /* highest upto given to release */
        struct tg_spool_counters counters;

        pthread_mutex_t append_lock; /* the write side */
        int wfd;
        uint64_t wend;           /* == segs[nsegs - 1].end */
        int dirty;               /* written since the last fdatasync */
        int tail_dirty;          /* a failed write could not be truncated away */
        int64_t last_sync_ms;
        unsigned char *wbuf;     /* HDR_SIZE + WBUF_BODY */

        pthread_mutex_t read_lock; /* the read side */
        int rfd;
        uint64_t rseg;           /* first_seq of the segment open on rfd */
        uint64_t roff;           /* read position in it ... */
        uint64_t rnext;          /* ... every valid record before roff has seq < rnext */
        struct scan rscan;
        uint64_t rep_seg, rep_off; /* damage before (rep_seg, rep_off) was reported */
};

/* ---- encoding ---------------------------------------------------------- */

static inline void put16(unsigned char *p, uint16_t v) {
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
}

static inline void put32(unsigned char *p, uint32_t v) {
        put16(p, (uint16_t)v);
        put16(p + 2, (uint16_t)(v >> 16));
}

static inline void put64(unsigned char *p, uint64_t v) {
        put32(p, (uint32_t)v);
        put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t get16(const unsigned char *p) {
        return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const unsigned char *p) {
        return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static inline uint64_t get64(const unsigned char *p) {
        return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* zlib's crc32() returns 0 for a NULL buffer whatever the running value. */
static uint32_t crc_more(uint32_t crc, const void *p, size_t n) {
        return n ? (uint32_t)crc32(crc, p, (uInt)n) : crc;
}

/* Fill the header; record_crc covers it and the two body parts. */
static void encode_record(unsigned char *h, uint64_t seq, int64_t arrival_ms,
                          const void *topic, size_t topic_len, const void *payload,
                          size_t len) {
        uint32_t crc;

        memcpy(h, magic, 4);
        h[4] = VERSION;
        h[5] = 0;
        put16(h + 6, (uint16_t)topic_len);
        put32(h + 8, (uint32_t)(HDR_SIZE + topic_len + len));
        put32(h + 12, (uint32_t)len);
        put64(h + 16, seq);
        put64(h + 24, (uint64_t)arrival_ms);
        put32(h + HDR_CRC_OFF, crc_more(0, h, HDR_CRC_OFF));
        crc = crc_more(0, h, REC_CRC_OFF);
        crc = crc_more(crc, topic, topic_len);
        crc = crc_more(crc, payload, len);
        put32(h + REC_CRC_OFF, crc);
}

/* 1 if p holds a header whose CRC verifies, whose lengths agree and whose
 * record fits in the @p avail bytes from its start. */
static int decode_header(const unsigned char *p, uint64_t avail, struct rec_hdr *h) {
        if (memcmp(p, magic, 4) || p[4] != VERSION || p[5] != 0)
                return 0;
        if (get32(p + HDR_CRC_OFF) != crc_more(0, p, HDR_CRC_OFF))
                return 0;
        h->topic_len = get16(p + 6);
        h->total_len = get32(p + 8);
        h->len = get32(p + 12);
        h->seq = get64(p + 16);
        h->arrival_ms = (int64_t)get64(p + 24);
        h->crc = get32(p + REC_CRC_OFF);
        return h->len <= TG_SPOOL_PAYLOAD_MAX && h->seq != 0 &&
               h->total_len == HDR_SIZE + h->topic_len + h->len &&
               h->total_len <= avail;
}

static void seg_name(char *out, size_t size, uint64_t first_seq) {
        snprintf(out, size, "%020" PRIu64 ".seg", first_seq);
}

/* 1 and *first_seq for a segment file name, else 0. */
static int parse_seg_name(const char *name, uint64_t *first_seq) {
        uint64_t v = 0;
        int i;

        if (strlen(name) != SEG_NAME_LEN || strcmp(name + 20, ".seg"))
                return 0;
        for (i = 0; i < 20; i++) {
                unsigned d = (unsigned)(name[i] - '0');

                if (d > 9 || v > (UINT64_MAX - d) / 10)
                        return 0;
                v = v * 10 + d;
        }
        *first_seq = v;
        return 1;
}

/* ---- reading files ----------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
        size_t got = 0;

        while (got < n) {
                ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -EIO; /* shorter than its committed size */
                got += (size_t)r;
        }
        return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t r = write(fd, (const char *)buf + done, n - done);

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)r;
        }
        return 0;
}

static void scan_reset(struct scan *s, int fd, uint64_t limit) {
        s->fd = fd;
        s->base = 0;
        s->len = 0;
        s->limit = limit;
}

/* Point *p at file bytes [off, off + n); n <= cap and off + n <= limit. Bytes
 * below the limit never change (the spool does not rewrite), so what was
 * read ahead stays valid when the limit grows. */
static int scan_get(struct scan *s, uint64_t off, size_t n, const unsigned char **p) {
        size_t want, got = 0;

        if (off >= s->base && off - s->base <= s->len && n <= s->len - (off - s->base)) {
                *p = s->buf + (off - s->base);
                return 0;
        }
        if (n > s->cap || off > s->limit || n > s->limit - off)
                return -EINVAL;
        want = s->limit - off < s->cap ? (size_t)(s->limit - off) : s->cap;
        s->len = 0;
        while (got < want) {
                ssize_t r = pread(s->fd, s->buf + got, want - got, (off_t)(off + got));

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        break;
                got += (size_t)r;
        }
        s->base = off;
        s->len = got;
        if (got < n)
                return -EIO;
        *p = s->buf;
        return 0;
}

/* The offset of the next verifying header in [from, end), or end. */
static int find_header(struct scan *s, uint64_t from, uint64_t end, uint64_t *next) {
        uint64_t pos = from;
        struct rec_hdr h;
        int r;

        while (pos < end && end - pos >= HDR_SIZE) {
                size_t n = end - pos < s->cap ? (size_t)(end - pos) : s->cap;
                const unsigned char *p, *q;
                uint64_t at;

                if ((r = scan_get(s, pos, n, &p)))
                        return r;
                for (q = p; (q = memchr(q, magic[0], (size_t)(p + n - q))); q++)
                        if ((size_t)(p + n - q) < 4 || !memcmp(q, magic, 4))
                                break;
                if (!q || (size_t)(p + n - q) < 4) {
                        pos += n - 3; /* a magic may straddle the chunk end */
                        continue;
                }
                at = pos + (uint64_t)(q - p);
                if (end - at < HDR_SIZE)
                        break;
                if ((r = scan_get(s, at, HDR_SIZE, &p)))
                        return r;
                if (decode_header(p, end - at, &h)) {
                        *next = at;
                        return 0;
                }
                pos = at + 1;
        }
        *next = end;
        return 0;
}

/* 1 if the record at off (header h, raw header bytes raw) verifies. */
static int verify_record(struct scan *s, uint64_t off, const unsigned char *raw,
                         const struct rec_hdr *h) {
        uint32_t crc = crc_more(0, raw, REC_CRC_OFF);
        uint64_t pos = off + HDR_SIZE, rem = h->total_len - HDR_SIZE;
        int r;

        while (rem) {
                size_t n = rem < s->cap ? (size_t)rem : s->cap;
                const unsigned char *p;

                if ((r = scan_get(s, pos, n, &p)))
                        return r;
                crc = crc_more(crc, p, n);
                pos += n;
                rem -= n;
        }
        return crc == h->crc;
}

/* Copy [from, to) of the scanned file to dir/corrupt/<seg>-<from>.<ext>. An
 * existing file of that name was set aside by an earlier run: kept. */
static int set_aside(tg_spool_t *sp, struct scan *s, uint64_t seg, uint64_t from,
                     uint64_t to, const char *ext, char *name, size_t name_size) {
        int fd, r = 0;

        snprintf(name, name_size, "%020" PRIu64 "-%" PRIu64 ".%s", seg, from, ext);
        fd = openat(sp->cfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0)
                return errno == EEXIST ? 0 : -errno;
        while (!r && from < to) {
                size_t n = to - from < s->cap ? (size_t)(to - from) : s->cap;
                const unsigned char *p;

                if (!(r = scan_get(s, from, n, &p)))
                        r = write_full(fd, p, n);
                from += n;
        }
        if (close(fd) && !r)
                r = -errno;
        return r;
}

/* ---- open -------------------------------------------------------------- */

struct seg_scan {
        uint64_t good_end;       /* end of the last record that verifies */
        uint64_t max_seq;        /* its seq, 0 if none */
        uint64_t records;
        uint64_t damaged, damaged_bytes; /* regions before good_end */
        uint64_t pending, pending_bytes; /* regions after it */
};

/* Walk a whole segment, checking every record, as read would. */
static int scan_segment(struct scan *s, uint64_t size, uint64_t lo, uint64_t hi,
                        struct seg_scan *out) {
        uint64_t off = 0;
        int r;

        memset(out, 0, sizeof(*out));
        while (off < size) {
                unsigned char raw[HDR_SIZE];
                const unsigned char *p;
                struct rec_hdr h;
                uint64_t next;

                if (size - off < HDR_SIZE) {
                        out->pending++;
                        out->pending_bytes += size - off;
                        break;
                }
                if ((r = scan_get(s, off, HDR_SIZE, &p)))
                        return r;
                memcpy(raw, p, HDR_SIZE);
                if (!decode_header(raw, size - off, &h)) {
                        if ((r = find_header(s, off + 1, size, &next)))
                                return r;
                } else if (h.seq < lo || h.seq >= hi ||
                           (r = verify_record(s, off, raw, &h)) == 0) {
                        next = off + h.total_len;
                } else if (r < 0) {
                        return r;
                } else {
                        out->damaged += out->pending;
                        out->damaged_bytes += out->pending_bytes;
                        out->pending = out->pending_bytes = 0;
                        out->records++;
                        out->max_seq = h.seq;
                        off = out->good_end = off + h.total_len;
                        continue;
                }
                out->pending++;
                out->pending_bytes += next - off;
                off = next;
        }
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

/* The first seqs of every segment in the directory, sorted. */
static int list_segments(tg_spool_t *sp, uint64_t **out, size_t *n) {
        uint64_t *v = NULL, first;
        size_t cap = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        *n = 0;
        if ((fd = openat(sp->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return -errno;
        if (!(d = fdopendir(fd))) {
                close(fd);
                return -errno;
        }
        while ((de = readdir(d))) {
                if (!parse_seg_name(de->d_name, &first))
                        continue;
                if (*n == cap) {
                        uint64_t *nv;

                        cap = cap ? cap * 2 : 64;
                        if (!(nv = realloc(v, cap * sizeof(*v)))) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = nv;
                }
                v[(*n)++] = first;
        }
        closedir(d);
        if (*n)
                qsort(v, *n, sizeof(*v), cmp_u64);
        *out = v;
        return 0;
}

static int mkdir_p(const char *path) {
        char tmp[PATH_MAX];
        size_t n = strlen(path);
        char *p;

        if (!n || n >= sizeof(tmp))
                return -ENAMETOOLONG;
        memcpy(tmp, path, n + 1);
        for (p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(tmp, 0750) && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, 0750) && errno != EEXIST)
                return -errno;
        return 0;
}

static int64_t now_ms(const tg_spool_t *sp) {
        return sp->conf.clock ? tg_clock_now(sp->conf.clock) : tg_monotonic_ms();
}

/* Create segment first_seq and make its directory entry durable. */
static int create_segment(tg_spool_t *sp, uint64_t first_seq) {
        char name[32];
        int fd;

        seg_name(name, sizeof(name), first_seq);
        fd = openat(sp->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if (sp->conf.fsync != TG_SPOOL_FSYNC_NEVER) {
                if (fsync(sp->dfd)) {
                        int r = -errno;

                        close(fd);
                        unlinkat(sp->dfd, name, 0);
                        return r;
                }
                pthread_mutex_lock(&sp->lock);
                sp->counters.dir_fsyncs++;
                pthread_mutex_unlock(&sp->lock);
        }
        return fd;
}

/* Scan the segments found at open, cut the last one's torn tail, fill the
 * table. */
static int load_segments(tg_spool_t *sp, const uint64_t *first, size_t n,
                         char *errstr, size_t errstr_size) {
        struct scan s = {.buf = sp->rscan.buf, .cap = sp->rscan.cap};
        uint64_t max_seq = 0;
        size_t i;

        for (i = 0; i < n; i++) {
                int last = i + 1 == n, fd, r;
                uint64_t hi = last ? UINT64_MAX : first[i + 1];
                struct seg_scan res;
                char name[32], aside[64];
                struct stat st;

                seg_name(name, sizeof(name), first[i]);
                fd = openat(sp->dfd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st)) {
                        tg_errstr(errstr, errstr_size, "spool: cannot open %s/%s: %s",
                               sp->dir, name, strerror(errno));
                        if (fd >= 0)
                                close(fd);
                        return -1;
                }
                scan_reset(&s, fd, (uint64_t)st.st_size);
                if ((r = scan_segment(&s, (uint64_t)st.st_size, first[i], hi, &res))) {
                        tg_errstr(errstr, errstr_size,
                               "spool: cannot read %s/%s: %s (move the file away to start without it)",
                               sp->dir, name, strerror(-r));
                        close(fd);
                        return -1;
                }
                if (!last) {
                        res.damaged += res.pending;
                        res.damaged_bytes += res.pending_bytes;
                        sp->segs[i].end = (uint64_t)st.st_size;
                } else {
                        sp->segs[i].end = res.good_end;
                }
                sp->segs[i].first_seq = first[i];
                sp->nsegs = i + 1;
                sp->bytes += sp->segs[i].end;
                if (res.max_seq > max_seq)
                        max_seq = res.max_seq;
                if (res.damaged)
                        tg_info("spool: %s: %" PRIu64 " damaged region(s), %" PRIu64
                                " bytes; reading will skip them and set them aside",
                                name, res.damaged, res.damaged_bytes);
                if (last && (uint64_t)st.st_size > res.good_end) {
                        uint64_t torn = (uint64_t)st.st_size - res.good_end;

                        /* Kept for inspection: the same bytes could be a
                         * damaged last record rather than a torn one. */
                        r = set_aside(sp, &s, first[i], res.good_end, (uint64_t)st.st_size,
                                      "tail", aside, sizeof(aside));
                        if (r)
                                tg_warn("spool: could not set aside the torn tail of %s: %s",
                                        name, strerror(-r));
                        if (ftruncate(fd, (off_t)res.good_end) || fdatasync(fd)) {
                                tg_errstr(errstr, errstr_size,
                                       "spool: cannot cut the torn tail off %s/%s: %s",
                                       sp->dir, name, strerror(errno));
                                close(fd);
                                return -1;
                        }
                        tg_warn("spool: %s: cut a torn tail of %" PRIu64 " bytes at offset %" PRIu64
                                " (a record cut short by a crash or power loss)%s%s",
                                name, torn, res.good_end, r ? "" : "; copy in corrupt/",
                                r ? "" : aside);
                        sp->counters.torn_tails++;
                        sp->counters.torn_tail_bytes += torn;
                }
                if (last) {
                        sp->wfd = fd;
                        sp->wend = res.good_end;
                } else {
                        close(fd);
                }
        }
        sp->last_seq = max_seq;
        sp->next_seq = max_seq + 1;
        if (n && first[n - 1] > sp->next_seq)
                sp->next_seq = first[n - 1];
        if (sp->conf.seq_floor > sp->next_seq)
                sp->next_seq = sp->conf.seq_floor;
        return 0;
}

tg_spool_t *tg_spool_open(const struct tg_spool_conf *conf, char *errstr,
                          size_t errstr_size) {
        pthread_condattr_t ca;
        uint64_t *first = NULL;
        size_t n = 0, extra;
        tg_spool_t *sp;
        int r;

        if (!conf || !conf->dir || !*conf->dir) {
                tg_errstr(errstr, errstr_size, "spool: no directory given");
                return NULL;
        }
        if (conf->segment_bytes < 4096 || conf->segment_bytes > ((size_t)1 << 30)) {
                tg_errstr(errstr, errstr_size,
                       "spool: segment_bytes %zu out of range [4096, 1 GiB]", conf->segment_bytes);
                return NULL;
        }
        if (conf->max_bytes < conf->segment_bytes) {
                tg_errstr(errstr, errstr_size,
                       "spool: max_bytes %" PRIu64 " is less than segment_bytes %zu",
                       conf->max_bytes, conf->segment_bytes);
                return NULL;
        }
        if (conf->fsync > TG_SPOOL_FSYNC_ALWAYS ||
            (conf->fsync == TG_SPOOL_FSYNC_INTERVAL && conf->fsync_interval_ms <= 0)) {
                tg_errstr(errstr, errstr_size,
                       "spool: bad fsync policy %d (interval %" PRId64 " ms; must be > 0)",
                       (int)conf->fsync, conf->fsync_interval_ms);
                return NULL;
        }
        if (!(sp = calloc(1, sizeof(*sp)))) {
                tg_errstr(errstr, errstr_size, "spool: out of memory");
                return NULL;
        }
        sp->conf = *conf;
        sp->dfd = sp->cfd = sp->wfd = sp->rfd = -1;
        pthread_mutex_init(&sp->lock, NULL);
        pthread_mutex_init(&sp->append_lock, NULL);
        pthread_mutex_init(&sp->read_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&sp->appended, &ca);
        pthread_condattr_destroy(&ca);

        sp->dir = strdup(conf->dir);
        sp->wbuf = malloc(HDR_SIZE + WBUF_BODY);
        sp->rscan.buf = malloc(SCAN_BUF);
        sp->rscan.cap = SCAN_BUF;
        sp->conf.dir = sp->dir;
        if (!sp->dir || !sp->wbuf || !sp->rscan.buf) {
                tg_errstr(errstr, errstr_size, "spool: out of memory");
                goto fail;
        }
        if ((r = mkdir_p(sp->dir))) {
                tg_errstr(errstr, errstr_size, "spool: cannot create %s: %s", sp->dir, strerror(-r));
                goto fail;
        }
        if ((sp->dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                tg_errstr(errstr, errstr_size, "spool: cannot open %s: %s", sp->dir, strerror(errno));
                goto fail;
        }
        if (flock(sp->dfd, LOCK_EX | LOCK_NB)) {
                tg_errstr(errstr, errstr_size, "spool: %s: %s", sp->dir,
                       errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
                goto fail;
        }
        if ((mkdirat(sp->dfd, "corrupt", 0750) && errno != EEXIST) ||
            (sp->cfd = openat(sp->dfd, "corrupt", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                tg_errstr(errstr, errstr_size, "spool: cannot create %s/corrupt: %s", sp->dir,
                       strerror(errno));
                goto fail;
        }
        if ((r = list_segments(sp, &first, &n))) {
                tg_errstr(errstr, errstr_size, "spool: cannot list %s: %s", sp->dir, strerror(-r));
                goto fail;
        }
        /* Room for every segment max_bytes allows (a big record can seal a
         * small segment, hence twice), so rolling rarely reallocates. */
        extra = conf->max_bytes / conf->segment_bytes;
        sp->segs_cap = n + 16 + (extra > 65536 ? 65536 : (size_t)extra * 2);
        if (!(sp->segs = calloc(sp->segs_cap, sizeof(*sp->segs)))) {
                tg_errstr(errstr, errstr_size, "spool: out of memory");
                goto fail;
        }
        if (load_segments(sp, first, n, errstr, errstr_size))
                goto fail;
        /* Write into a fresh segment when there is none, or when the last is
         * empty but named below next_seq (seq_floor), so names stay exact. */
        if (!n || (sp->wend == 0 && first[n - 1] != sp->next_seq)) {
                if (sp->wfd >= 0)
                        close(sp->wfd);
                if ((sp->wfd = create_segment(sp, sp->next_seq)) < 0) {
                        char name[32];

                        seg_name(name, sizeof(name), sp->next_seq);
                        tg_errstr(errstr, errstr_size, "spool: cannot create %s/%s: %s", sp->dir,
                               name, strerror(-sp->wfd));
                        goto fail;
                }
                sp->segs[sp->nsegs].first_seq = sp->next_seq;
                sp->segs[sp->nsegs].end = 0;
                sp->nsegs++;
                sp->wend = 0;
                sp->counters.segments_created++;
        }
        free(first);
        first = NULL;
        sp->last_sync_ms = now_ms(sp);
        sp->rscan.fd = -1;
        tg_info("spool: %s: %zu segment(s), %" PRIu64 " bytes, next seq %" PRIu64,
                sp->dir, sp->nsegs, sp->bytes, sp->next_seq);
        if (sp->bytes > conf->max_bytes)
                tg_warn("spool: %s holds %" PRIu64 " bytes, more than max_bytes %" PRIu64
                        ": appends are refused until segments are released",
                        sp->dir, sp->bytes, conf->max_bytes);
        return sp;
fail:
        free(first);
        tg_spool_close(sp);
        return NULL;
}

void tg_spool_close(tg_spool_t *sp) {
        if (!sp)
                return;
        if (sp->wfd >= 0) {
                if (sp->dirty && fdatasync(sp->wfd))
                        tg_err("spool: fdatasync at close: %s", strerror(errno));
                close(sp->wfd);
        }
        if (sp->rfd >= 0)
                close(sp->rfd);
        if (sp->cfd >= 0)
                close(sp->cfd);
        if (sp->dfd >= 0)
                close(sp->dfd); /* drops the flock */
        pthread_cond_destroy(&sp->appended);
        pthread_mutex_destroy(&sp->read_lock);
        pthread_mutex_destroy(&sp->append_lock);
        pthread_mutex_destroy(&sp->lock);
        free(sp->segs);
        free(sp->rscan.buf);
        free(sp->wbuf);
        free(sp->dir);
        free(sp);
}

/* ---- append ------------------------------------------------------------ */

/* fdatasync the segment being written; append_lock held. */
static int sync_now(tg_spool_t *sp) {
        int r = 0;

        if (fdatasync(sp->wfd))
                r = -errno;
        sp->last_sync_ms = now_ms(sp);
        pthread_mutex_lock(&sp->lock);
        if (r)
                sp->counters.fsync_errors++;
        else
                sp->counters.fsyncs++;
        pthread_mutex_unlock(&sp->lock);
        if (r)
                tg_err_limited("spool: fdatasync: %s", strerror(-r));
        else
                sp->dirty = 0;
        return r;
}

/* Seal the segment being written and start segment first_seq. */
static int roll(tg_spool_t *sp, uint64_t first_seq) {
        int fd;

        pthread_mutex_lock(&sp->lock);
        if (sp->nsegs == sp->segs_cap) {
                struct seg *n = realloc(sp->segs, sp->segs_cap * 2 * sizeof(*n));

                if (!n) {
                        pthread_mutex_unlock(&sp->lock);
                        return -ENOMEM;
                }
                sp->segs = n;
                sp->segs_cap *= 2;
        }
        pthread_mutex_unlock(&sp->lock);
        /* The sealed segment's data first, then the new entry: after a power
         * loss a segment followed by another is whole. A failed sync is
         * logged and counted; the data is still in the kernel. */
        if (sp->dirty && sp->conf.fsync != TG_SPOOL_FSYNC_NEVER)
                sync_now(sp);
        if ((fd = create_segment(sp, first_seq)) < 0) {
                tg_err_limited("spool: cannot create segment %020" PRIu64 ".seg: %s", first_seq,
                       strerror(-fd));
                return fd;
        }
        close(sp->wfd);
        sp->wfd = fd;
        sp->wend = 0;
        sp->dirty = 0;
        pthread_mutex_lock(&sp->lock);
        sp->segs[sp->nsegs].first_seq = first_seq;
        sp->segs[sp->nsegs].end = 0;
        sp->nsegs++;
        sp->counters.segments_created++;
        pthread_mutex_unlock(&sp->lock);
        return 0;
}

/* Take the end of the segment back to the last whole record. */
static void truncate_back(tg_spool_t *sp) {
        if (ftruncate(sp->wfd, (off_t)sp->wend)) {
                sp->tail_dirty = 1;
                tg_err_limited("spool: cannot truncate a failed write away: %s", strerror(errno));
        } else {
                sp->tail_dirty = 0;
        }
}

static int write_record(tg_spool_t *sp, struct iovec *iov, int iovcnt) {
        uint64_t off = sp->wend;

        while (iovcnt) {
                ssize_t n = pwritev(sp->wfd, iov, iovcnt, (off_t)off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                off += (uint64_t)n;
                while (iovcnt && (size_t)n >= iov->iov_len) {
                        n -= (ssize_t)iov->iov_len;
                        iov++;
                        iovcnt--;
                }
                if (iovcnt) {
                        iov->iov_base = (char *)iov->iov_base + n;
                        iov->iov_len -= (size_t)n;
                }
        }
        return 0;
}

int tg_spool_append(tg_spool_t *sp, const char *topic, size_t topic_len,
                    const void *payload, size_t len, int64_t arrival_ms,
                    uint64_t *seq) {
        struct iovec iov[3];
        uint64_t s, total;
        int iovcnt, r, full;

        if (topic_len > TG_SPOOL_TOPIC_MAX || len > TG_SPOOL_PAYLOAD_MAX)
                return -EMSGSIZE;
        if ((!topic && topic_len) || (!payload && len))
                return -EINVAL;
        total = HDR_SIZE + topic_len + len;

        pthread_mutex_lock(&sp->append_lock);
        if (sp->tail_dirty) {
                truncate_back(sp);
                if (sp->tail_dirty) {
                        pthread_mutex_unlock(&sp->append_lock);
                        return -EIO;
                }
        }
        /* Only this side adds bytes, so the check holds until the commit. */
        pthread_mutex_lock(&sp->lock);
        full = sp->bytes + total > sp->conf.max_bytes;
        if (full)
                sp->counters.full_refusals++;
        s = sp->next_seq;
        pthread_mutex_unlock(&sp->lock);
        if (full) {
                pthread_mutex_unlock(&sp->append_lock);
                return -ENOSPC;
        }
        if (sp->wend > 0 && sp->wend + total > sp->conf.segment_bytes &&
            (r = roll(sp, s))) {
                pthread_mutex_unlock(&sp->append_lock);
                return r;
        }

        encode_record(sp->wbuf, s, arrival_ms, topic, topic_len, payload, len);
        if (topic_len + len <= WBUF_BODY) {
                if (topic_len)
                        memcpy(sp->wbuf + HDR_SIZE, topic, topic_len);
                if (len)
                        memcpy(sp->wbuf + HDR_SIZE + topic_len, payload, len);
                iov[0] = (struct iovec){sp->wbuf, (size_t)total};
                iovcnt = 1;
        } else {
                iov[0] = (struct iovec){sp->wbuf, HDR_SIZE};
                iov[1] = (struct iovec){(void *)topic, topic_len};
                iov[2] = (struct iovec){(void *)payload, len};
                iovcnt = 3;
        }
        if ((r = write_record(sp, iov, iovcnt))) {
                truncate_back(sp);
                pthread_mutex_lock(&sp->lock);
                sp->counters.write_errors++;
                pthread_mutex_unlock(&sp->lock);
                pthread_mutex_unlock(&sp->append_lock);
                return r;
        }
        sp->dirty = 1;
        if (sp->conf.fsync == TG_SPOOL_FSYNC_ALWAYS && (r = sync_now(sp))) {
                /* Not durable: refuse it, so the sender keeps its copy. */
                truncate_back(sp);
                pthread_mutex_unlock(&sp->append_lock);
                return r;
        }

        sp->wend += total;
        pthread_mutex_lock(&sp->lock);
        sp->segs[sp->nsegs - 1].end = sp->wend;
        sp->bytes += total;
        sp->next_seq = s + 1;
        sp->last_seq = s;
        sp->counters.appended++;
        sp->counters.appended_bytes += total;
        pthread_cond_broadcast(&sp->appended);
        pthread_mutex_unlock(&sp->lock);

        pthread_mutex_unlock(&sp->append_lock);
        if (seq)
                *seq = s;
        return 0;
}

/* The interval's fdatasync runs here, on the caller's ticking thread and on
 * a duplicate of the descriptor, without the append lock: appends (the MQTT
 * callback, which holds the acks) never wait for the disk under INTERVAL. */
void tg_spool_tick(tg_spool_t *sp) {
        int fd, r = 0;

        pthread_mutex_lock(&sp->append_lock);
        if (!sp->dirty || sp->conf.fsync != TG_SPOOL_FSYNC_INTERVAL ||
            now_ms(sp) - sp->last_sync_ms < sp->conf.fsync_interval_ms) {
                pthread_mutex_unlock(&sp->append_lock);
                return;
        }
        fd = dup(sp->wfd);
        sp->dirty = 0;
        sp->last_sync_ms = now_ms(sp);
        pthread_mutex_unlock(&sp->append_lock);

        if (fd < 0 || fdatasync(fd))
                r = -errno;
        if (fd >= 0)
                close(fd);
        if (r) {
                pthread_mutex_lock(&sp->append_lock);
                sp->dirty = 1; /* try again at the next tick */
                pthread_mutex_unlock(&sp->append_lock);
                tg_err_limited("spool: fdatasync: %s", strerror(-r));
        }
        pthread_mutex_lock(&sp->lock);
        if (r)
                sp->counters.fsync_errors++;
        else
                sp->counters.fsyncs++;
        pthread_mutex_unlock(&sp->lock);
}

int tg_spool_sync(tg_spool_t *sp) {
        int r = 0;

        pthread_mutex_lock(&sp->append_lock);
        if (sp->dirty)
                r = sync_now(sp);
        pthread_mutex_unlock(&sp->append_lock);
        return r;
}

/* ---- read -------------------------------------------------------------- */

/* Skip damaged bytes [from, to) of segment seg: set them aside, count and
 * log them, unless this process did so already. */
static void skip_damage(tg_spool_t *sp, uint64_t seg, uint64_t from, uint64_t to,
                        const char *why) {
        char name[64];
        int r;

        sp->roff = to;
        if (seg < sp->rep_seg || (seg == sp->rep_seg && from < sp->rep_off))
                return;
        sp->rep_seg = seg;
        sp->rep_off = to;
        r = set_aside(sp, &sp->rscan, seg, from, to, "bin", name, sizeof(name));
        pthread_mutex_lock(&sp->lock);
        sp->counters.corrupt_records++;
        sp->counters.corrupt_bytes += to - from;
        pthread_mutex_unlock(&sp->lock);
        if (r)
                tg_warn("spool: segment %020" PRIu64 " offset %" PRIu64 ": %" PRIu64
                        " damaged bytes (%s) skipped; could not set them aside: %s",
                        seg, from, to - from, why, strerror(-r));
        else
                tg_warn("spool: segment %020" PRIu64 " offset %" PRIu64 ": %" PRIu64
                        " damaged bytes (%s) skipped and set aside as corrupt/%s",
                        seg, from, to - from, why, name);
}

/* Read on in the open segment [roff, end) for the first valid record with
 * seq >= want; -EAGAIN at the end. */
static int read_segment(tg_spool_t *sp, uint64_t end, uint64_t hi, uint64_t want,
                        struct tg_spool_record *rec, void *buf, size_t cap) {
        struct scan *s = &sp->rscan;
        uint64_t seg = sp->rseg;
        int r;

        while (sp->roff < end) {
                uint64_t off = sp->roff, next;
                unsigned char raw[HDR_SIZE];
                const unsigned char *p;
                struct rec_hdr h;
                size_t body;

                if (end - off < HDR_SIZE) {
                        skip_damage(sp, seg, off, end, "cut-off record");
                        continue;
                }
                if ((r = scan_get(s, off, HDR_SIZE, &p)))
                        return r;
                memcpy(raw, p, HDR_SIZE);
                if (!decode_header(raw, end - off, &h)) {
                        if ((r = find_header(s, off + 1, end, &next)))
                                return r;
                        skip_damage(sp, seg, off, next, "bad header");
                        continue;
                }
                if (h.seq < seg || h.seq >= hi) {
                        skip_damage(sp, seg, off, off + h.total_len, "sequence number out of place");
                        continue;
                }
                if (h.seq < want) {
                        sp->roff = off + h.total_len;
                        continue;
                }
                body = (size_t)h.total_len - HDR_SIZE;
                if (body > cap) {
                        *rec = (struct tg_spool_record){.seq = h.seq, .arrival_ms = h.arrival_ms,
                                                        .topic_len = h.topic_len, .len = h.len};
                        return -ENOBUFS;
                }
                if (h.total_len <= s->cap) {
                        if ((r = scan_get(s, off, h.total_len, &p)))
                                return r;
                        if (body)
                                memcpy(buf, p + HDR_SIZE, body);
                } else if ((r = pread_full(s->fd, buf, body, off + HDR_SIZE))) {
                        return r;
                }
                if (crc_more(crc_more(0, raw, REC_CRC_OFF), buf, body) != h.crc) {
                        skip_damage(sp, seg, off, off + h.total_len, "CRC mismatch");
                        continue;
                }
                rec->seq = h.seq;
                rec->arrival_ms = h.arrival_ms;
                rec->topic = buf;
                rec->topic_len = h.topic_len;
                rec->payload = (const char *)buf + h.topic_len;
                rec->len = h.len;
                sp->roff = off + h.total_len;
                sp->rnext = h.seq + 1;
                return 0;
        }
        return -EAGAIN;
}

/* Index of the segment that would hold seq: the last with first_seq <= seq. */
static size_t seg_index(const tg_spool_t *sp, uint64_t seq) {
        size_t lo = 0, hi = sp->nsegs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (sp->segs[mid].first_seq <= seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo ? lo - 1 : 0;
}

int tg_spool_read(tg_spool_t *sp, uint64_t *cursor, struct tg_spool_record *rec,
                  void *buf, size_t cap) {
        uint64_t want = *cursor, look = *cursor;
        int r;

        pthread_mutex_lock(&sp->read_lock);
        for (;;) {
                uint64_t first, end, hi;
                int last;
                size_t i;

                pthread_mutex_lock(&sp->lock);
                i = seg_index(sp, look);
                first = sp->segs[i].first_seq;
                end = sp->segs[i].end;
                last = i + 1 == sp->nsegs;
                hi = last ? sp->next_seq : sp->segs[i + 1].first_seq;
                pthread_mutex_unlock(&sp->lock);

                if (sp->rfd < 0 || sp->rseg != first) {
                        char name[32];

                        if (sp->rfd >= 0)
                                close(sp->rfd);
                        seg_name(name, sizeof(name), first);
                        sp->rfd = openat(sp->dfd, name, O_RDONLY | O_CLOEXEC);
                        if (sp->rfd < 0) {
                                r = -errno;
                                sp->rseg = 0;
                                if (r == -ENOENT) {
                                        int gone;

                                        pthread_mutex_lock(&sp->lock);
                                        gone = sp->nsegs && sp->segs[0].first_seq > first;
                                        pthread_mutex_unlock(&sp->lock);
                                        if (gone)
                                                continue; /* released meanwhile */
                                        if (!last) {
                                                tg_err("spool: segment %s vanished; its records are lost",
                                                       name);
                                                look = hi;
                                                continue;
                                        }
                                }
                                tg_err("spool: cannot open %s: %s", name, strerror(-r));
                                break;
                        }
                        sp->rseg = first;
                        sp->roff = 0;
                        sp->rnext = 0;
                        scan_reset(&sp->rscan, sp->rfd, end);
                }
                if (sp->rnext > want)
                        sp->roff = 0; /* going back: read the segment again from its start */
                sp->rnext = want;
                sp->rscan.limit = end;
                r = read_segment(sp, end, hi, want, rec, buf, cap);
                if (r != -EAGAIN || last)
                        break;
                look = hi;
        }
        pthread_mutex_unlock(&sp->read_lock);
        if (!r) {
                *cursor = rec->seq + 1;
                pthread_mutex_lock(&sp->lock);
                sp->counters.read++;
                pthread_mutex_unlock(&sp->lock);
        }
        return r;
}

/* A committed record with seq >= cursor is still on disk; lock held. */
static int has_record(const tg_spool_t *sp, uint64_t cursor) {
        return sp->last_seq && sp->last_seq >= cursor && sp->last_seq >= sp->segs[0].first_seq;
}

int tg_spool_wait(tg_spool_t *sp, uint64_t cursor, int timeout_ms) {
        struct timespec deadline;
        int found;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        if (timeout_ms > 0) {
                deadline.tv_sec += timeout_ms / 1000;
                deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
        }
        pthread_mutex_lock(&sp->lock);
        while (!(found = has_record(sp, cursor)) && timeout_ms > 0)
                if (pthread_cond_timedwait(&sp->appended, &sp->lock, &deadline) == ETIMEDOUT) {
                        found = has_record(sp, cursor);
                        break;
                }
        pthread_mutex_unlock(&sp->lock);
        return found;
}

/* ---- release and state ------------------------------------------------- */

void tg_spool_release(tg_spool_t *sp, uint64_t upto) {
        for (;;) {
                uint64_t first;
                char name[32];

                pthread_mutex_lock(&sp->lock);
                if (upto > sp->released)
                        sp->released = upto;
                /* Segment 0 holds seqs below segment 1's name; the last
                 * segment, being written, is never deleted. */
                if (sp->nsegs < 2 || sp->segs[1].first_seq - 1 > upto) {
                        pthread_mutex_unlock(&sp->lock);
                        return;
                }
                first = sp->segs[0].first_seq;
                sp->bytes -= sp->segs[0].end;
                memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(*sp->segs));
                sp->nsegs--;
                sp->counters.segments_deleted++;
                pthread_mutex_unlock(&sp->lock);

                seg_name(name, sizeof(name), first);
                if (unlinkat(sp->dfd, name, 0) && errno != ENOENT)
                        tg_err("spool: cannot delete %s/%s: %s (its records will be read again after a restart)",
                               sp->dir, name, strerror(errno));
        }
}

uint64_t tg_spool_oldest_end(tg_spool_t *sp) {
        uint64_t v = 0;

        pthread_mutex_lock(&sp->lock);
        if (sp->nsegs >= 2)
                v = sp->segs[1].first_seq - 1;
        pthread_mutex_unlock(&sp->lock);
        return v;
}

uint64_t tg_spool_next_seq(const tg_spool_t *sp) {
        tg_spool_t *m = (tg_spool_t *)sp; /* the lock is not part of the value */
        uint64_t v;

        pthread_mutex_lock(&m->lock);
        v = m->next_seq;
        pthread_mutex_unlock(&m->lock);
        return v;
}

/* Lowest seq possibly on disk; lock held. */
static uint64_t first_seq_locked(const tg_spool_t *sp) {
        size_t i;

        for (i = 0; i < sp->nsegs; i++)
                if (sp->segs[i].end)
                        return sp->segs[i].first_seq;
        return sp->next_seq;
}

uint64_t tg_spool_first_seq(const tg_spool_t *sp) {
        tg_spool_t *m = (tg_spool_t *)sp;
        uint64_t v;

        pthread_mutex_lock(&m->lock);
        v = first_seq_locked(m);
        pthread_mutex_unlock(&m->lock);
        return v;
}

void tg_spool_counters(tg_spool_t *sp, struct tg_spool_counters *out) {
        uint64_t from;

        pthread_mutex_lock(&sp->lock);
        *out = sp->counters;
        out->bytes = sp->bytes;
        from = first_seq_locked(sp);
        if (sp->released >= from)
                from = sp->released == UINT64_MAX ? UINT64_MAX : sp->released + 1;
        out->records_pending = sp->next_seq > from ? sp->next_seq - from : 0;
        pthread_mutex_unlock(&sp->lock);
}
