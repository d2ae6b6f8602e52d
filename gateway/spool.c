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
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"
#include "errstr.h"
#include "log.h"

/*
 * On-disk format: records of version 1 and 2.
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
 *     4   1  version     1: no properties; 2: a properties block follows the topic
 *     5   1  flags       0 (reserved)
 *     6   2  topic_len   <= 65535
 *     8   4  total_len   40 + topic_len + props_len + payload_len (props_len
 *                        0 in version 1, 1..65535 in version 2)
 *    12   4  payload_len <= 16 MiB
 *    16   8  seq         >= 1, increasing within and across segments
 *    24   8  arrival_ms  signed
 *    32   4  header_crc  CRC-32 (zlib's, crc32.h) of bytes 0..31
 *    36   4  record_crc  CRC-32 of bytes 0..35, then topic, then payload
 *    40      topic, then (version 2) the properties block, then payload
 *
 * Version 2 exists for MQTT 5 messages that carry properties (msgprops.h
 * describes the block; the spool only stores it). Its length is what
 * total_len leaves after topic and payload, so the header did not change
 * and header_crc covers it; record_crc covers the block like the rest. A
 * message without properties is written as a version 1 record, byte for
 * byte as before versions existed, so older spools read unchanged and the
 * common case costs nothing. (A gateway older than version 2 sets version 2
 * records aside as damaged: downgrade with an empty spool.)
 *
 * Two CRCs because they answer two questions. header_crc says whether the
 * lengths can be trusted: when only the payload is damaged, exactly that
 * record is skipped and the next one starts where total_len says. When the
 * header itself is damaged, nothing after it can be trusted, and the reader
 * resynchronises by scanning forward for the magic followed by a header
 * whose header_crc verifies. record_crc covers everything.
 *
 * Durability. A segment is allocated whole when it starts (posix_fallocate
 * of segment_bytes, less when the file system or max_bytes has less room)
 * and mapped into memory; an append copies its record into the mapping and
 * publishes the new end with an atomic store. No system call, no lock
 * another thread waits on, no wake-up: the record is in the kernel's page
 * cache when append returns, so a crash of the process loses nothing
 * appended, and since the blocks were allocated up front the copy cannot
 * fail for want of space (a full disk shows as a segment that cannot
 * start). The fsync policy decides what a power loss can take. When a
 * segment is sealed (the next record does not fit, or close) the unused
 * rest of its allocation is truncated away. A power loss or a crash in
 * the middle of a copy can leave the last segment with a torn tail: at
 * open, the bytes after the last record that verifies, up to the last
 * non-zero byte, are set aside and truncated; zeros there are the unused
 * allocation. Records are never rewritten; segments are deleted whole.
 *
 * Concurrency. `lock` guards the segment table, the sizes and the rarer
 * counters; it is held only for bookkeeping, never across I/O, and never
 * by an append that stays inside its segment. The appender owns the write
 * side under `append_lock` (taken by nobody else but the ticking thread's
 * interval fsync, briefly) and publishes a record through w_end and
 * next_seq only once it is completely copied (and synced, under ALWAYS);
 * the write segment changes only under `lock`, so a reader that holds it
 * sees w_end of the segment it looked up. The reader owns its own file
 * descriptor and read-ahead buffer under `read_lock` and reads with pread
 * (the same page cache), never past the committed end.
 */

#define HDR_SIZE TG_SPOOL_RECORD_HEADER
#define HDR_CRC_OFF 32
#define REC_CRC_OFF 36
#define VERSION 1          /* a record without properties */
#define VERSION_PROPS 2    /* with a properties block */
#define SCAN_BUF ((size_t)256 << 10) /* read-ahead of the reader and of the scan at open */
#define SEG_NAME_LEN 24              /* 20 digits + ".seg" */

static const unsigned char magic[4] = {'T', 'G', 'S', 'P'};

struct seg {
        uint64_t first_seq; /* from the file name */
        uint64_t end;       /* committed size: only whole records (and, sealed, any damage);
                               the write segment's is w_end */
        uint64_t size;      /* bytes allocated on disk: the file's size */
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
        uint32_t props_len;
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

        pthread_mutex_t lock;    /* the segment table, sizes, rarer counters */
        struct seg *segs;        /* in seq order; the last is being written if has_wseg */
        size_t nsegs, segs_cap;
        int has_wseg;            /* a segment is open for appends (not after a failed roll) */
        uint64_t allocated;      /* sum of segs[].size */
        uint64_t released;       /* highest upto given to release */
        struct tg_spool_counters counters;
        _Atomic uint64_t reserve; /* free space left to others when sizing segments */

        /* Published by the appender, read by anyone without the lock. */
        _Atomic uint64_t w_end;     /* committed end of the write segment */
        _Atomic uint64_t next_seq;
        _Atomic uint64_t last_seq;  /* highest committed seq, 0 if none */
        _Atomic uint64_t appended, appended_bytes, read;

        pthread_mutex_t append_lock; /* the write side */
        int wfd;                 /* -1: no write segment */
        unsigned char *wmap;     /* the write segment, mapped */
        uint64_t wcap;           /* its allocation */
        uint64_t wend;           /* == w_end, owned here */
        uint64_t wdropped;       /* the mapping's pages below this are dropped from RSS */
        int dirty;               /* written since the last fdatasync */
        int64_t last_sync_ms;

        pthread_mutex_t read_lock; /* the read side */
        int rfd;
        uint64_t rseg;           /* first_seq of the segment open on rfd */
        uint64_t roff;           /* read position in it ... */
        uint64_t rnext;          /* ... every valid record before roff has seq < rnext */
        struct scan rscan;
        uint64_t rep_seg, rep_off; /* damage before (rep_seg, rep_off) was reported */
};

static uint64_t seg_end(const tg_spool_t *sp, size_t i);

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


/* The CRC of a header's bytes 0..35 (what record_crc starts with), from its
 * header_crc: a CRC continues from the CRC of what it covered so far. */
static inline uint32_t header_crc_on(const unsigned char *h) {
        return tg_crc32(get32(h + HDR_CRC_OFF), h + HDR_CRC_OFF, 4);
}

/* Fill the header; record_crc covers it and the two body parts. */
static void encode_record(unsigned char *h, uint64_t seq, int64_t arrival_ms,
                          const void *topic, size_t topic_len, const void *props,
                          size_t props_len, const void *payload, size_t len) {
        uint32_t crc;

        memcpy(h, magic, 4);
        h[4] = props_len ? VERSION_PROPS : VERSION;
        h[5] = 0;
        put16(h + 6, (uint16_t)topic_len);
        put32(h + 8, (uint32_t)(HDR_SIZE + topic_len + props_len + len));
        put32(h + 12, (uint32_t)len);
        put64(h + 16, seq);
        put64(h + 24, (uint64_t)arrival_ms);
        put32(h + HDR_CRC_OFF, tg_crc32(0, h, HDR_CRC_OFF));
        crc = tg_crc32(header_crc_on(h), topic, topic_len);
        if (props_len)
                crc = tg_crc32(crc, props, props_len);
        crc = tg_crc32(crc, payload, len);
        put32(h + REC_CRC_OFF, crc);
}

/* 1 if p holds a header whose CRC verifies, whose lengths agree and whose
 * record fits in the @p avail bytes from its start. */
static int decode_header(const unsigned char *p, uint64_t avail, struct rec_hdr *h) {
        uint64_t fixed;

        if (memcmp(p, magic, 4) || (p[4] != VERSION && p[4] != VERSION_PROPS) || p[5] != 0)
                return 0;
        if (get32(p + HDR_CRC_OFF) != tg_crc32(0, p, HDR_CRC_OFF))
                return 0;
        h->topic_len = get16(p + 6);
        h->total_len = get32(p + 8);
        h->len = get32(p + 12);
        h->seq = get64(p + 16);
        h->arrival_ms = (int64_t)get64(p + 24);
        h->crc = get32(p + REC_CRC_OFF);
        fixed = (uint64_t)HDR_SIZE + h->topic_len + h->len;
        if (h->total_len < fixed)
                return 0;
        h->props_len = (uint32_t)(h->total_len - fixed);
        /* version 1: no block; version 2: a block of 1..TG_SPOOL_PROPS_MAX */
        if (p[4] == VERSION ? h->props_len != 0
                            : !h->props_len || h->props_len > TG_SPOOL_PROPS_MAX)
                return 0;
        return h->len <= TG_SPOOL_PAYLOAD_MAX && h->seq != 0 && h->total_len <= avail;
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
        uint32_t crc = header_crc_on(raw);
        uint64_t pos = off + HDR_SIZE, rem = h->total_len - HDR_SIZE;
        int r;

        while (rem) {
                size_t n = rem < s->cap ? (size_t)rem : s->cap;
                const unsigned char *p;

                if ((r = scan_get(s, pos, n, &p)))
                        return r;
                crc = tg_crc32(crc, p, n);
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

/* 1 for the errors of a file system (or quota, or file size limit) with
 * no room: the caller may try smaller, or wait for space. */
static int no_room(int err) {
        return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

/* Make a new directory entry durable (not under NEVER). */
static int sync_dir(tg_spool_t *sp) {
        if (sp->conf.fsync == TG_SPOOL_FSYNC_NEVER)
                return 0;
        if (fsync(sp->dfd))
                return -errno;
        pthread_mutex_lock(&sp->lock);
        sp->counters.dir_fsyncs++;
        pthread_mutex_unlock(&sp->lock);
        return 0;
}

/*
 * How many bytes a segment may allocate beyond @p have so that it can hold
 * @p need more: segment_bytes, or what is left under max_bytes, or what
 * the file system has free beyond the reserve, whichever is least; 0 when
 * that is less than @p need.
 */
static uint64_t room_for(tg_spool_t *sp, uint64_t have, uint64_t need) {
        uint64_t want = sp->conf.segment_bytes > have ? sp->conf.segment_bytes - have : 0;
        uint64_t left, reserve = atomic_load(&sp->reserve);
        struct statvfs vfs;

        if (want < need)
                want = need;
        pthread_mutex_lock(&sp->lock);
        left = sp->allocated < sp->conf.max_bytes ? sp->conf.max_bytes - sp->allocated : 0;
        pthread_mutex_unlock(&sp->lock);
        if (want > left)
                want = left;
        if (!fstatvfs(sp->dfd, &vfs)) {
                uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;

                left = avail > reserve ? avail - reserve : 0;
                if (want > left)
                        want = left;
        }
        return want >= need ? want : 0;
}

/* Allocate [0, *size) of fd, halving *size down to @p min when the file
 * system has less room than it said (quotas, file size limits). */
static int allocate(int fd, uint64_t *size, uint64_t min) {
        for (;;) {
                int r = posix_fallocate(fd, 0, (off_t)*size);

                if (!r)
                        return 0;
                if (!no_room(r) || *size <= min)
                        return -r;
                *size = *size / 2 > min ? *size / 2 : min;
        }
}

/* Map [0, size) of the write segment fd and make it the write segment,
 * with wend bytes already in it; append_lock held. */
static int map_write_segment(tg_spool_t *sp, int fd, uint64_t size, uint64_t wend) {
        void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (m == MAP_FAILED)
                return -errno;
        sp->wfd = fd;
        sp->wmap = m;
        sp->wcap = size;
        sp->wend = wend;
        sp->wdropped = 0;
        sp->dirty = 0;
        return 0;
}

/*
 * Start segment first_seq with room for at least @p need bytes;
 * append_lock held, no write segment. -ENOSPC when neither max_bytes nor
 * the file system leaves that much room: nothing is left behind.
 */
static int start_segment(tg_spool_t *sp, uint64_t first_seq, uint64_t need) {
        uint64_t size = room_for(sp, 0, need);
        char name[32];
        int fd, r;

        if (!size) {
                pthread_mutex_lock(&sp->lock);
                sp->counters.full_refusals++;
                pthread_mutex_unlock(&sp->lock);
                return -ENOSPC;
        }
        seg_name(name, sizeof(name), first_seq);
        fd = openat(sp->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0)
                return -errno;
        if ((r = allocate(fd, &size, need)) || (r = sync_dir(sp)) ||
            (r = map_write_segment(sp, fd, size, 0))) {
                close(fd);
                unlinkat(sp->dfd, name, 0);
                if (no_room(-r)) {
                        pthread_mutex_lock(&sp->lock);
                        sp->counters.full_refusals++;
                        pthread_mutex_unlock(&sp->lock);
                        r = -ENOSPC;
                }
                return r;
        }
        pthread_mutex_lock(&sp->lock);
        if (sp->nsegs == sp->segs_cap) {
                struct seg *n = realloc(sp->segs, sp->segs_cap * 2 * sizeof(*n));

                if (!n) {
                        pthread_mutex_unlock(&sp->lock);
                        munmap(sp->wmap, (size_t)sp->wcap);
                        close(fd);
                        unlinkat(sp->dfd, name, 0);
                        sp->wfd = -1;
                        return -ENOMEM;
                }
                sp->segs = n;
                sp->segs_cap *= 2;
        }
        sp->segs[sp->nsegs++] = (struct seg){.first_seq = first_seq, .size = size};
        sp->allocated += size;
        sp->has_wseg = 1;
        atomic_store(&sp->w_end, 0);
        sp->counters.segments_created++;
        pthread_mutex_unlock(&sp->lock);
        return 0;
}

/* An fdatasync's outcome @p r (0 or -errno) counted, and a failure logged. */
static void sync_counted(tg_spool_t *sp, int r) {
        pthread_mutex_lock(&sp->lock);
        if (r)
                sp->counters.fsync_errors++;
        else
                sp->counters.fsyncs++;
        pthread_mutex_unlock(&sp->lock);
        if (r)
                tg_err_limited("spool: fdatasync: %s", strerror(-r));
}

/* fdatasync the segment being written; append_lock held. The pages written
 * through the mapping are the file's page cache, so this covers them. */
static int sync_now(tg_spool_t *sp) {
        int r = 0;

        if (fdatasync(sp->wfd))
                r = -errno;
        sp->last_sync_ms = now_ms(sp);
        sync_counted(sp, r);
        if (!r)
                sp->dirty = 0;
        return r;
}

/*
 * Seal the write segment: sync it (unless NEVER: then the kernel writes it
 * back), give the unused allocation back, unmap; append_lock held. An
 * empty one is deleted, so its name is free for the next. After a power
 * loss a segment followed by another is whole.
 */
static void seal_segment(tg_spool_t *sp) {
        uint64_t size = sp->wcap;
        char name[32];

        if (sp->wfd < 0)
                return;
        if (sp->dirty && sp->conf.fsync != TG_SPOOL_FSYNC_NEVER)
                sync_now(sp);
        munmap(sp->wmap, (size_t)sp->wcap);
        sp->wmap = NULL;
        pthread_mutex_lock(&sp->lock);
        seg_name(name, sizeof(name), sp->segs[sp->nsegs - 1].first_seq);
        pthread_mutex_unlock(&sp->lock);
        if (!sp->wend) {
                unlinkat(sp->dfd, name, 0);
                size = 0;
        } else if (sp->wend < sp->wcap) {
                if (ftruncate(sp->wfd, (off_t)sp->wend))
                        tg_err("spool: cannot give back the unused end of %s/%s: %s",
                               sp->dir, name, strerror(errno));
                else
                        size = sp->wend;
        }
        close(sp->wfd);
        sp->wfd = -1;
        pthread_mutex_lock(&sp->lock);
        sp->allocated -= sp->wcap - size;
        if (size) {
                sp->segs[sp->nsegs - 1].end = sp->wend;
                sp->segs[sp->nsegs - 1].size = size;
        } else {
                sp->nsegs--;
        }
        sp->has_wseg = 0;
        pthread_mutex_unlock(&sp->lock);
}

/* Appends may go on in the last segment found at open, which holds @p end
 * bytes: allocate it up to a segment's size again and map it. 0, or 1
 * when it stays sealed (no room, or any error: the next append starts a
 * new segment). */
static int continue_segment(tg_spool_t *sp, uint64_t end) {
        uint64_t extra = room_for(sp, end, 1), size = end + extra;
        char name[32];
        int fd, r;

        seg_name(name, sizeof(name), sp->segs[sp->nsegs - 1].first_seq);
        if (!extra || (fd = openat(sp->dfd, name, O_RDWR | O_CLOEXEC)) < 0)
                return 1;
        if ((r = allocate(fd, &size, end + 1)) || (r = map_write_segment(sp, fd, size, end))) {
                if (ftruncate(fd, (off_t)end))
                        tg_warn("spool: %s/%s: %s", sp->dir, name, strerror(errno));
                close(fd);
                return 1;
        }
        sp->allocated += size - sp->segs[sp->nsegs - 1].size;
        sp->segs[sp->nsegs - 1].size = size;
        sp->has_wseg = 1;
        atomic_store(&sp->w_end, end);
        return 0;
}

/* The offset just past the last non-zero byte of [from, to), or from. */
static int last_nonzero(struct scan *s, uint64_t from, uint64_t to, uint64_t *out) {
        while (to > from) {
                size_t n = to - from < s->cap ? (size_t)(to - from) : s->cap;
                const unsigned char *p;
                int r;

                if ((r = scan_get(s, to - n, n, &p)))
                        return r;
                while (n && !p[n - 1])
                        n--, to--;
                if (n)
                        break;
        }
        *out = to;
        return 0;
}

/* Scan the segments found at open, cut the last one's torn tail, fill the
 * table. What follows the last record that verifies is either the unused
 * part of the segment's allocation (zeros) or, when anything there is not
 * zero, damage: in a sealed segment it is left for read to skip, at the
 * end of the last it is a torn tail, set aside and cut. */
static int load_segments(tg_spool_t *sp, const uint64_t *first, size_t n,
                         char *errstr, size_t errstr_size) {
        struct scan s = {.buf = sp->rscan.buf, .cap = sp->rscan.cap};
        uint64_t max_seq = 0;
        size_t i;

        for (i = 0; i < n; i++) {
                int last = i + 1 == n, fd, r;
                uint64_t hi = last ? UINT64_MAX : first[i + 1], data_end;
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
                if ((r = scan_segment(&s, (uint64_t)st.st_size, first[i], hi, &res)) ||
                    (r = last_nonzero(&s, res.good_end, (uint64_t)st.st_size, &data_end))) {
                        tg_errstr(errstr, errstr_size,
                               "spool: cannot read %s/%s: %s (move the file away to start without it)",
                               sp->dir, name, strerror(-r));
                        close(fd);
                        return -1;
                }
                if (data_end == res.good_end)
                        res.pending = res.pending_bytes = 0; /* only unused allocation */
                else
                        res.pending_bytes = data_end - res.good_end;
                if (!last) {
                        res.damaged += res.pending ? 1 : 0;
                        res.damaged_bytes += res.pending_bytes;
                        sp->segs[i].end = data_end;
                } else {
                        sp->segs[i].end = res.good_end;
                }
                sp->segs[i].first_seq = first[i];
                sp->segs[i].size = (uint64_t)st.st_size;
                sp->nsegs = i + 1;
                if (res.max_seq > max_seq)
                        max_seq = res.max_seq;
                if (res.damaged)
                        tg_info("spool: %s: %" PRIu64 " damaged region(s), %" PRIu64
                                " bytes; reading will skip them and set them aside",
                                name, res.damaged, res.damaged_bytes);
                if (last && data_end > res.good_end) {
                        uint64_t torn = data_end - res.good_end;

                        /* Kept for inspection: the same bytes could be a
                         * damaged last record rather than a torn one. */
                        r = set_aside(sp, &s, first[i], res.good_end, data_end, "tail", aside,
                                      sizeof(aside));
                        if (r)
                                tg_warn("spool: could not set aside the torn tail of %s: %s",
                                        name, strerror(-r));
                        tg_warn("spool: %s: cut a torn tail of %" PRIu64 " bytes at offset %" PRIu64
                                " (a record cut short by a crash or power loss)%s%s",
                                name, torn, res.good_end, r ? "" : "; copy in corrupt/",
                                r ? "" : aside);
                        sp->counters.torn_tails++;
                        sp->counters.torn_tail_bytes += torn;
                }
                if (last && (uint64_t)st.st_size > res.good_end) {
                        if (ftruncate(fd, (off_t)res.good_end) || fdatasync(fd)) {
                                tg_errstr(errstr, errstr_size,
                                       "spool: cannot cut the end off %s/%s: %s",
                                       sp->dir, name, strerror(errno));
                                close(fd);
                                return -1;
                        }
                        sp->segs[i].size = res.good_end;
                }
                sp->allocated += sp->segs[i].size;
                close(fd);
        }
        atomic_store(&sp->last_seq, max_seq);
        {
                uint64_t next = max_seq + 1;

                if (n && first[n - 1] > next)
                        next = first[n - 1];
                if (sp->conf.seq_floor > next)
                        next = sp->conf.seq_floor;
                atomic_store(&sp->next_seq, next);
        }
        return 0;
}

tg_spool_t *tg_spool_open(const struct tg_spool_conf *conf, char *errstr,
                          size_t errstr_size) {
        uint64_t *first = NULL, next;
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
        atomic_store(&sp->reserve, conf->reserve_bytes);
        pthread_mutex_init(&sp->lock, NULL);
        pthread_mutex_init(&sp->append_lock, NULL);
        pthread_mutex_init(&sp->read_lock, NULL);

        sp->dir = strdup(conf->dir);
        sp->rscan.buf = malloc(SCAN_BUF);
        sp->rscan.cap = SCAN_BUF;
        sp->conf.dir = sp->dir;
        if (!sp->dir || !sp->rscan.buf) {
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
        free(first);
        first = NULL;

        /* Appends go on in the last segment while it has room, else in a
         * new one named next_seq. An empty last segment named otherwise
         * (seq_floor) holds nothing and goes, so names stay exact. */
        next = atomic_load(&sp->next_seq);
        if (sp->nsegs && !sp->segs[sp->nsegs - 1].end &&
            sp->segs[sp->nsegs - 1].first_seq != next) {
                char name[32];

                seg_name(name, sizeof(name), sp->segs[sp->nsegs - 1].first_seq);
                unlinkat(sp->dfd, name, 0);
                sp->allocated -= sp->segs[--sp->nsegs].size;
        }
        if (sp->nsegs && sp->segs[sp->nsegs - 1].end < conf->segment_bytes)
                continue_segment(sp, sp->segs[sp->nsegs - 1].end);
        if (!sp->has_wseg && (r = start_segment(sp, next, HDR_SIZE))) {
                char name[32];

                seg_name(name, sizeof(name), next);
                if (r != -ENOSPC) {
                        tg_errstr(errstr, errstr_size, "spool: cannot create %s/%s: %s", sp->dir,
                               name, strerror(-r));
                        goto fail;
                }
                /* Not fatal: what the spool holds can still be forwarded
                 * and released, and appends start a segment once there is
                 * room. */
                tg_warn("spool: %s: no room for a new segment (max_bytes, or the file system "
                        "is full): appends are refused until there is", sp->dir);
        }
        sp->last_sync_ms = now_ms(sp);
        sp->rscan.fd = -1;
        tg_info("spool: %s: %zu segment(s), %" PRIu64 " bytes allocated, next seq %" PRIu64,
                sp->dir, sp->nsegs, sp->allocated, next);
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
                if (sp->dirty)
                        sync_now(sp); /* in every mode */
                seal_segment(sp);
        }
        if (sp->rfd >= 0)
                close(sp->rfd);
        if (sp->cfd >= 0)
                close(sp->cfd);
        if (sp->dfd >= 0)
                close(sp->dfd); /* drops the flock */
        pthread_mutex_destroy(&sp->read_lock);
        pthread_mutex_destroy(&sp->append_lock);
        pthread_mutex_destroy(&sp->lock);
        free(sp->segs);
        free(sp->rscan.buf);
        free(sp->dir);
        free(sp);
}

/* ---- append ------------------------------------------------------------ */

/* Written pages are dropped from the mapping in steps of this: they stay
 * in the page cache (dirty ones are written back as usual), so the
 * gateway's resident size does not grow with the segment. */
#define DROP_STEP ((uint64_t)1 << 20)

static void drop_written(tg_spool_t *sp) {
        static uint64_t page;
        uint64_t upto;

        if (!page)
                page = (uint64_t)sysconf(_SC_PAGESIZE);
        upto = sp->wend / page * page;
        if (upto > sp->wdropped &&
            !madvise(sp->wmap + sp->wdropped, (size_t)(upto - sp->wdropped), MADV_DONTNEED))
                sp->wdropped = upto;
}

int tg_spool_append(tg_spool_t *sp, const char *topic, size_t topic_len,
                    const void *payload, size_t len, int64_t arrival_ms,
                    uint64_t *seq) {
        return tg_spool_append_props(sp, topic, topic_len, NULL, 0, payload, len, arrival_ms,
                                     seq);
}

int tg_spool_append_props(tg_spool_t *sp, const char *topic, size_t topic_len,
                          const void *props, size_t props_len, const void *payload,
                          size_t len, int64_t arrival_ms, uint64_t *seq) {
        unsigned char *p;
        uint64_t s, total;
        int r;

        if (topic_len > TG_SPOOL_TOPIC_MAX || len > TG_SPOOL_PAYLOAD_MAX ||
            props_len > TG_SPOOL_PROPS_MAX)
                return -EMSGSIZE;
        if ((!topic && topic_len) || (!payload && len) || (!props && props_len))
                return -EINVAL;
        total = HDR_SIZE + topic_len + props_len + len;

        pthread_mutex_lock(&sp->append_lock);
        s = atomic_load_explicit(&sp->next_seq, memory_order_relaxed);
        if (sp->wfd < 0 || sp->wend + total > sp->wcap) {
                /* The record does not fit: the next segment starts with it
                 * (alone, when it is larger than segment_bytes). */
                seal_segment(sp);
                if ((r = start_segment(sp, s, total))) {
                        if (r != -ENOSPC) {
                                pthread_mutex_lock(&sp->lock);
                                sp->counters.write_errors++;
                                pthread_mutex_unlock(&sp->lock);
                                tg_err_limited("spool: cannot start segment %020" PRIu64 ".seg: %s", s,
                                       strerror(-r));
                        }
                        pthread_mutex_unlock(&sp->append_lock);
                        return r;
                }
        }
        p = sp->wmap + sp->wend;
        encode_record(p, s, arrival_ms, topic, topic_len, props, props_len, payload, len);
        if (topic_len)
                memcpy(p + HDR_SIZE, topic, topic_len);
        if (props_len)
                memcpy(p + HDR_SIZE + topic_len, props, props_len);
        if (len)
                memcpy(p + HDR_SIZE + topic_len + props_len, payload, len);
        sp->dirty = 1;
        if (sp->conf.fsync == TG_SPOOL_FSYNC_ALWAYS && (r = sync_now(sp))) {
                /* Not durable: refuse it, so the sender keeps its copy. */
                memset(p, 0, (size_t)total);
                pthread_mutex_unlock(&sp->append_lock);
                return r;
        }
        sp->wend += total;
        /* The sequence numbers before the bytes: a reader bounds the seqs it
         * takes from a segment by next_seq loaded after w_end, so a record
         * inside w_end must already be below next_seq; published the other
         * way round, a reader between the two stores set a whole record
         * aside as "sequence number out of place" (test_spool's writer and
         * reader threads, about 1 run in 20 under load). */
        atomic_store_explicit(&sp->last_seq, s, memory_order_relaxed);
        atomic_store_explicit(&sp->next_seq, s + 1, memory_order_release);
        atomic_store_explicit(&sp->w_end, sp->wend, memory_order_release);
        atomic_fetch_add_explicit(&sp->appended, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&sp->appended_bytes, total, memory_order_relaxed);
        if (sp->wend - sp->wdropped >= DROP_STEP)
                drop_written(sp);
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
        if (sp->wfd < 0 || !sp->dirty || sp->conf.fsync != TG_SPOOL_FSYNC_INTERVAL ||
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
        }
        sync_counted(sp, r);
}

int tg_spool_sync(tg_spool_t *sp) {
        int r = 0;

        pthread_mutex_lock(&sp->append_lock);
        if (sp->dirty && sp->wfd >= 0)
                r = sync_now(sp);
        pthread_mutex_unlock(&sp->append_lock);
        return r;
}

void tg_spool_set_reserve(tg_spool_t *sp, uint64_t bytes) {
        atomic_store(&sp->reserve, bytes);
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
                                                        .topic_len = h.topic_len, .len = h.len,
                                                        .props_len = h.props_len};
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
                if (tg_crc32(header_crc_on(raw), buf, body) != h.crc) {
                        skip_damage(sp, seg, off, off + h.total_len, "CRC mismatch");
                        continue;
                }
                rec->seq = h.seq;
                rec->arrival_ms = h.arrival_ms;
                rec->topic = buf;
                rec->topic_len = h.topic_len;
                rec->props = h.props_len ? (const char *)buf + h.topic_len : NULL;
                rec->props_len = h.props_len;
                rec->payload = (const char *)buf + h.topic_len + h.props_len;
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
                if (!sp->nsegs) { /* all released, and no room for a new one yet */
                        pthread_mutex_unlock(&sp->lock);
                        r = -EAGAIN;
                        break;
                }
                i = seg_index(sp, look);
                first = sp->segs[i].first_seq;
                end = seg_end(sp, i);
                last = i + 1 == sp->nsegs;
                hi = last ? atomic_load(&sp->next_seq) : sp->segs[i + 1].first_seq;
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
                atomic_fetch_add_explicit(&sp->read, 1, memory_order_relaxed);
        }
        return r;
}

/* A committed record with seq >= cursor is still on disk; lock held. */
static int has_record(const tg_spool_t *sp, uint64_t cursor) {
        uint64_t last = atomic_load(&sp->last_seq);

        return last && last >= cursor && sp->nsegs && last >= sp->segs[0].first_seq;
}

/* Appends wake nobody (that would be a system call per message), so this
 * looks every millisecond; it is for tests and tools, not the data path. */
int tg_spool_wait(tg_spool_t *sp, uint64_t cursor, int timeout_ms) {
        int64_t deadline = tg_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        int found;

        for (;;) {
                pthread_mutex_lock(&sp->lock);
                found = has_record(sp, cursor);
                pthread_mutex_unlock(&sp->lock);
                if (found || tg_monotonic_ms() >= deadline)
                        return found;
                usleep(1000);
        }
}

/* ---- release and state ------------------------------------------------- */

void tg_spool_release(tg_spool_t *sp, uint64_t upto) {
        for (;;) {
                uint64_t first;
                char name[32];

                pthread_mutex_lock(&sp->lock);
                if (upto > sp->released)
                        sp->released = upto;
                /* Segment 0 holds seqs below segment 1's name, or, when it
                 * is the last and sealed (a roll found no room), up to
                 * last_seq; the segment being written is never deleted. */
                if (!sp->nsegs || (sp->nsegs == 1 && sp->has_wseg) ||
                    (sp->nsegs >= 2 ? sp->segs[1].first_seq - 1 > upto
                                    : atomic_load(&sp->last_seq) > upto)) {
                        pthread_mutex_unlock(&sp->lock);
                        return;
                }
                first = sp->segs[0].first_seq;
                sp->allocated -= sp->segs[0].size;
                memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(*sp->segs));
                sp->nsegs--;
                sp->counters.segments_deleted++;
                pthread_mutex_unlock(&sp->lock);

                seg_name(name, sizeof(name), first);
                if (unlinkat(sp->dfd, name, 0) && errno != ENOENT)
                        tg_err("spool: cannot delete %s/%s: %s (its records will be read again after a restart)",
                               sp->dir, name, strerror(errno));
                /* An open descriptor would keep its blocks allocated. */
                pthread_mutex_lock(&sp->read_lock);
                if (sp->rfd >= 0 && sp->rseg == first) {
                        close(sp->rfd);
                        sp->rfd = -1;
                        sp->rseg = 0;
                }
                pthread_mutex_unlock(&sp->read_lock);
        }
}

uint64_t tg_spool_oldest_end(tg_spool_t *sp) {
        uint64_t v = 0;

        pthread_mutex_lock(&sp->lock);
        if (sp->nsegs >= 2)
                v = sp->segs[1].first_seq - 1;
        else if (sp->nsegs == 1 && !sp->has_wseg)
                v = atomic_load(&sp->last_seq);
        pthread_mutex_unlock(&sp->lock);
        return v;
}

uint64_t tg_spool_next_seq(const tg_spool_t *sp) {
        return atomic_load_explicit(&((tg_spool_t *)sp)->next_seq, memory_order_acquire);
}

/* Committed bytes of segment i; lock held. */
static uint64_t seg_end(const tg_spool_t *sp, size_t i) {
        return i + 1 == sp->nsegs && sp->has_wseg ? atomic_load(&((tg_spool_t *)sp)->w_end)
                                                  : sp->segs[i].end;
}

/* Lowest seq possibly on disk; lock held. */
static uint64_t first_seq_locked(const tg_spool_t *sp) {
        size_t i;

        for (i = 0; i < sp->nsegs; i++)
                if (seg_end(sp, i))
                        return sp->segs[i].first_seq;
        return atomic_load(&((tg_spool_t *)sp)->next_seq);
}

uint64_t tg_spool_first_seq(const tg_spool_t *sp) {
        tg_spool_t *m = (tg_spool_t *)sp;
        uint64_t v;

        pthread_mutex_lock(&m->lock);
        v = first_seq_locked(m);
        pthread_mutex_unlock(&m->lock);
        return v;
}

int tg_spool_writable(const tg_spool_t *sp) {
        tg_spool_t *m = (tg_spool_t *)sp;
        int v;

        pthread_mutex_lock(&m->lock);
        v = m->has_wseg;
        pthread_mutex_unlock(&m->lock);
        return v;
}

void tg_spool_counters(tg_spool_t *sp, struct tg_spool_counters *out) {
        uint64_t from, next, bytes = 0;
        size_t i;

        pthread_mutex_lock(&sp->lock);
        *out = sp->counters;
        for (i = 0; i < sp->nsegs; i++)
                bytes += seg_end(sp, i);
        out->bytes = bytes;
        out->allocated_bytes = sp->allocated;
        out->appended = atomic_load(&sp->appended);
        out->appended_bytes = atomic_load(&sp->appended_bytes);
        out->read = atomic_load(&sp->read);
        next = atomic_load(&sp->next_seq);
        from = first_seq_locked(sp);
        if (sp->released >= from)
                from = sp->released == UINT64_MAX ? UINT64_MAX : sp->released + 1;
        out->records_pending = next > from ? next - from : 0;
        pthread_mutex_unlock(&sp->lock);
}
