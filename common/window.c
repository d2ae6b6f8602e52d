/* window.c - the window engine: sensor table, per-sensor window rings, Welford statistics, state file. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "crc32.h"
#include "errstr.h"
#include "keyed_hash.h"

/*
 * The specification is docs/windows.md; section numbers below refer to it.
 *
 * Memory layout, all allocated in tg_window_engine_new():
 *
 *   index[]    open-addressing hash of sensor ids: buckets of (hash, position
 *              in sensors[]), so a probe compares hashes without leaving the
 *              bucket (capacity: a power of two at least twice max_sensors,
 *              so probes stay short; pos EMPTY marks an empty bucket)
 *   sensors[]  max_sensors entries of one cache line each: what a reading
 *              reads and writes, and the first bytes of the id
 *   cold[]     the rest of each sensor: its full id, late counts, oldest
 *              open window; touched when a window opens or closes, by late
 *              readings and by ids longer than ID_HEAD
 *   lru[]      the arrival-ordered list's links, apart, because relinking a
 *              sensor touches two others
 *   slots      max_sensors rings of ring_len window slots; a slot is a
 *              16-byte header followed by reserved_fields field statistics
 *              (3 by default: 256 bytes, 4 cache lines, all a reading of 3
 *              fields touches)
 *   wide[]     when reserved_fields < max_fields: per slot, the wide block
 *              holding the window's fields past reserved_fields, or EMPTY
 *   wide_pool  wide_windows blocks of max_fields - reserved_fields field
 *              statistics, shared by every sensor; a free block's first
 *              field holds the next free block's index
 *   updated[]  update mode only: each slot's last running result
 *
 * Sensors mostly send a few fields, the same ones every time: reserving
 * max_fields in every slot cost 2.2 KB per sensor for statistics that stay
 * empty. Now a sensor costs about 760 bytes with the defaults, and a few wide
 * sensors still get up to max_fields. At 10 000 sensors these are 7.6 MB,
 * still far more than a core's L2: a reading of a sensor last seen 10 000
 * readings ago finds none of its lines in L1 or L2. The layout keeps the
 * lines a reading needs to 1 bucket + 1 sensor line + the slot's lines for
 * its fields (+ wide[] and a wide block for fields past the reserved ones).
 *
 * A sensor's window starting at `start` lives in slot (start / H) mod
 * ring_len of its ring. ring_len = W / H + ceil(G / H) is every window that
 * can be open at once (7.3): after a reading, the close mark is at least
 * floor((WM - G) / H)·H, so open windows start in (that - W, floor(WM / H)·H],
 * which holds at most W / H + ceil(G / H) multiples of H. A live window is
 * thus never overwritten, and walking the ring forward from the oldest open
 * slot visits the open windows in start order.
 *
 * Sensors in use are also on a doubly linked list in order of last
 * arrival, most recent first: its tail is the eviction candidate (7.2).
 */

#define EMPTY UINT32_MAX
#define CACHE_LINE 64
#define ID_HEAD 28               /* id bytes kept in the sensor's hot line */

struct bucket {
        uint32_t hash;
        uint32_t pos;            /* EMPTY: a free bucket */
};

/* One cache line: everything a reading of a known sensor reads or writes
 * unless it is late or opens or closes a window. */
struct sensor {
        int64_t watermark;       /* max event time seen (3.1) */
        int64_t next_mark_wm;    /* the watermark at which the close mark next moves */
        int64_t close_mark;      /* every window with end <= close_mark is closed (3.3) */
        int64_t last_arrival_ms; /* engine clock at the last reading (5.2) */
        uint16_t nopen;          /* open slots in the ring */
        uint8_t in_use;
        uint8_t id_len;
        char id_head[ID_HEAD];   /* the id's first bytes, zero-padded */
} __attribute__((aligned(CACHE_LINE)));

struct sensor_cold {
        char id[TG_SENSOR_ID_MAX + 1];
        int64_t oldest_open;     /* start of the oldest open window, if nopen */
        uint64_t late_total;
        uint64_t late_since_final;
};

struct lru_link {
        uint32_t prev, next;
};

struct slot {
        int64_t start;
        uint32_t count;
        uint16_t nfields;        /* not a char type: its stores would alias everything */
        uint8_t open;
        uint8_t dirty;           /* gained readings since the last update */
        struct tg_field_stats fields[]; /* max_fields */
};

struct field_name {
        char name[TG_FIELD_NAME_MAX + 1];
        uint8_t len;
};

struct tg_window_engine {
        struct tg_window_conf conf;
        const struct tg_clock *clock;
        tg_window_emit_fn *emit;
        void *opaque;
        int64_t now;             /* wall clock as of the last tick (1.3) */

        uint32_t ring_len;
        uint32_t windows_per_reading; /* W / H */
        size_t slot_size;
        uint32_t reserved;       /* fields in a slot: min(reserved_fields, max_fields) */
        uint32_t wide_len;       /* fields in a wide block: max_fields - reserved */
        uint32_t wide_free;      /* first free wide block, or EMPTY */
        uint32_t *wide;          /* per slot: its wide block, or EMPTY; NULL if wide_len 0 */
        struct tg_field_stats *wide_pool;
        /* The last window start a reading asked for and its ring position,
         * which is the same for every sensor: readings of all sensors
         * arrive with nearly the same event times, so this spares the
         * 64-bit divisions, and the slot's address is known as soon as the
         * sensor's position is. */
        int64_t ring_start;
        uint32_t ring_start_pos;
        uint32_t slot_prefetch;  /* bytes of a slot worth fetching ahead: up to 4 lines */

        struct bucket *index;
        uint32_t index_mask;
        struct sensor *sensors;
        struct sensor_cold *cold;
        struct lru_link *lru;
        uint32_t high_water;     /* sensors[0..high_water) have been used */
        uint32_t *free_stack;
        uint32_t nfree;
        uint32_t lru_head, lru_tail;
        unsigned char *slots;
        int64_t *updated;        /* update mode: per slot, INT64_MIN until the first */

        struct field_name *field_names;
        uint32_t nfield_names;
        /* Per field position, the name the previous reading had there and
         * its id: devices send the same fields in the same order. */
        struct field_hint {
                char name[TG_FIELD_NAME_MAX];
                uint32_t mask;   /* bit i set for each of the name's bytes */
                uint32_t id;
                uint8_t len;     /* 0: none yet (names are never empty) */
        } field_hint[TG_READING_FIELDS_MAX];

        int64_t global_watermark;
        struct tg_window_counters counters;
        size_t memory;
        size_t sensor_bytes;     /* what one sensor costs (tg_window_engine_sensor_bytes) */
        unsigned char hash_key[TG_HASH_KEY_BYTES]; /* hash_id()'s, random per engine */
        /* A window with a wide block is handed to the emit callback from
         * here, its fields in one array. */
        struct tg_field_stats emit_fields[TG_READING_FIELDS_MAX];
};

_Static_assert(sizeof(struct sensor) == CACHE_LINE, "a sensor's hot part is one cache line");
_Static_assert(sizeof(struct slot) == 16, "slot header");
_Static_assert(TG_WINDOW_HASH_KEY_BYTES == TG_HASH_KEY_BYTES, "hash key size");

/* Floor division: window boundaries for negative timestamps round down. */
static inline int64_t floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;

        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t align_down(int64_t t, int64_t step) {
        return floor_div(t, step) * step;
}

static inline size_t slot_index(const tg_window_engine_t *e, uint32_t sensor, uint32_t i) {
        return (size_t)sensor * e->ring_len + i;
}

static inline struct slot *slot_at(const tg_window_engine_t *e, uint32_t sensor,
                                   uint32_t i) {
        return (struct slot *)(e->slots + slot_index(e, sensor, i) * e->slot_size);
}

/* The slot's number in slots[] (and wide[], updated[]). */
static inline size_t slot_number(const tg_window_engine_t *e, const struct slot *sl) {
        return (size_t)((const unsigned char *)sl - e->slots) / e->slot_size;
}

/* Field j (< max_fields) of the window in slot @p sl, number @p si: in the
 * slot, or past reserved in its wide block (which it must have). */
static inline struct tg_field_stats *slot_field(const tg_window_engine_t *e, struct slot *sl,
                                                size_t si, uint32_t j) {
        if (j < e->reserved)
                return &sl->fields[j];
        return &e->wide_pool[(size_t)e->wide[si] * e->wide_len + (j - e->reserved)];
}

static inline uint32_t ring_pos(const tg_window_engine_t *e, int64_t start) {
        int64_t m = floor_div(start, e->conf.hop_ms) % (int64_t)e->ring_len;

        return (uint32_t)(m < 0 ? m + e->ring_len : m);
}

/* --- ids and names: hashed and compared a word at a time ---------------- */

static inline uint64_t load64(const char *p) {
        uint64_t v;

        memcpy(&v, p, 8);
        return v;
}

static inline uint64_t load32(const char *p) {
        uint32_t v;

        memcpy(&v, p, 4);
        return v;
}

/* Byte-string equality of two buffers of @p len bytes, reading no byte
 * outside them: 8-byte words, the last one overlapping the one before. */
static inline int bytes_equal(const char *a, const char *b, size_t len) {
        size_t i;

        if (len >= 8) {
                for (i = 0; i + 8 < len; i += 8)
                        if (load64(a + i) != load64(b + i))
                                return 0;
                return load64(a + len - 8) == load64(b + len - 8);
        }
        if (len >= 4)
                return load32(a) == load32(b) && load32(a + len - 4) == load32(b + len - 4);
        /* 1..3 bytes: positions 0, len / 2 and len - 1 cover them all */
        return !len || (a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1]);
}

/* The sensor table's hash: SipHash-2-4 under the engine's random key
 * (keyed_hash.h), so that devices cannot choose ids that share a bucket
 * (issue 13). The buckets take its low bits. */
static inline uint32_t hash_id(const tg_window_engine_t *e, const char *s, size_t len) {
        return (uint32_t)tg_hash_keyed(e->hash_key, s, len);
}

/* Bit i set for each byte i of a name of @p len bytes. */
static inline uint32_t name_mask(size_t len) {
        return len >= 32 ? UINT32_MAX : (1u << len) - 1;
}

/* Equality of two field names of @p len (1..TG_FIELD_NAME_MAX) bytes held
 * in buffers of at least TG_FIELD_NAME_MAX bytes, whatever follows the
 * name in them; @p mask is name_mask(len). With SSE2: two 16-byte compares. */
static inline int name_equal(const char *a, const char *b, size_t len, uint32_t mask) {
#if defined(__SSE2__) && TG_FIELD_NAME_MAX == 32
        __m128i lo = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)a),
                                    _mm_loadu_si128((const __m128i *)b));
        __m128i hi = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(a + 16)),
                                    _mm_loadu_si128((const __m128i *)(b + 16)));
        uint32_t same = (uint32_t)_mm_movemask_epi8(lo) |
                        (uint32_t)_mm_movemask_epi8(hi) << 16;

        (void)len;
        return (same & mask) == mask;
#else
        (void)mask;
        return bytes_equal(a, b, len);
#endif
}

static inline int sensor_is(const tg_window_engine_t *e, uint32_t pos, const char *id,
                            size_t len) {
        const struct sensor *s = &e->sensors[pos];

        if (s->id_len != len)
                return 0;
        if (len <= ID_HEAD)
                return bytes_equal(s->id_head, id, len);
        return bytes_equal(s->id_head, id, ID_HEAD) &&
               bytes_equal(e->cold[pos].id + ID_HEAD, id + ID_HEAD, len - ID_HEAD);
}

/* The window slots are the bulk of the engine's memory and are touched in
 * no predictable order, one sensor after another: with 4 KiB pages nearly
 * every reading would also miss the TLB. Large tables are therefore mapped
 * with transparent huge pages where the kernel offers them (madvise mode).
 * Every table starts on a cache line. */
#define HUGE_MIN ((size_t)2 << 20)

static void *big_calloc(size_t size) {
        void *p;

        if (size < HUGE_MIN) {
                if (posix_memalign(&p, CACHE_LINE, size ? size : 1))
                        return NULL;
                return memset(p, 0, size);
        }
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, size, MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
        return p;
}

static void big_free(void *p, size_t size) {
        if (!p)
                return;
        if (size < HUGE_MIN)
                free(p);
        else
                munmap(p, size);
}

static size_t slots_bytes(const tg_window_engine_t *e) {
        return (size_t)e->conf.max_sensors * e->ring_len * e->slot_size;
}

static size_t sensors_bytes(const tg_window_engine_t *e) {
        return (size_t)e->conf.max_sensors * sizeof(*e->sensors);
}

static size_t index_bytes(const tg_window_engine_t *e) {
        return ((size_t)e->index_mask + 1) * sizeof(*e->index);
}

static size_t wide_bytes(const tg_window_engine_t *e) {
        return e->wide_len ? (size_t)e->conf.max_sensors * e->ring_len * sizeof(*e->wide) : 0;
}

static size_t wide_pool_bytes(const tg_window_engine_t *e) {
        return (size_t)e->conf.wide_windows * e->wide_len * sizeof(*e->wide_pool);
}

/* Every slot without a wide block, every block free. */
static void wide_clear(tg_window_engine_t *e) {
        size_t i, n = wide_bytes(e) / sizeof(*e->wide);
        uint32_t b;

        for (i = 0; i < n; i++)
                e->wide[i] = EMPTY;
        e->wide_free = EMPTY;
        for (b = e->wide_pool ? e->conf.wide_windows : 0; b-- > 0;) {
                e->wide_pool[(size_t)b * e->wide_len].field = e->wide_free;
                e->wide_free = b;
        }
}

/* The wide block of slot @p si goes back to the pool. */
static inline void wide_release(tg_window_engine_t *e, size_t si) {
        uint32_t b;

        if (!e->wide || (b = e->wide[si]) == EMPTY)
                return;
        e->wide_pool[(size_t)b * e->wide_len].field = e->wide_free;
        e->wide_free = b;
        e->wide[si] = EMPTY;
}

static size_t updated_bytes(const tg_window_engine_t *e) {
        return e->conf.update_interval_ms > 0
                       ? (size_t)e->conf.max_sensors * e->ring_len * sizeof(*e->updated)
                       : 0;
}

static void index_clear(tg_window_engine_t *e) {
        uint32_t b;

        for (b = 0; b <= e->index_mask; b++)
                e->index[b] = (struct bucket){.hash = 0, .pos = EMPTY};
}

tg_window_engine_t *tg_window_engine_new(const struct tg_window_conf *conf,
                                         const struct tg_clock *clock,
                                         tg_window_emit_fn *emit, void *opaque,
                                         char *errstr, size_t errstr_size) {
        tg_window_engine_t *e;
        size_t index_cap = 2, nslots;
        int r;

        if (conf->size_ms <= 0 || conf->size_ms > TG_DURATION_MAX) {
                tg_errstr(errstr, errstr_size,
                       "window size must be 1..%lld ms", (long long)TG_DURATION_MAX);
                return NULL;
        }
        if (conf->hop_ms <= 0 || conf->hop_ms > conf->size_ms ||
            conf->size_ms % conf->hop_ms) {
                tg_errstr(errstr, errstr_size,
                       "window hop must divide the window size (%lld ms)",
                       (long long)conf->size_ms);
                return NULL;
        }
        if (conf->size_ms / conf->hop_ms > 64) {
                tg_errstr(errstr, errstr_size,
                       "window size / hop must be at most %d", 64);
                return NULL;
        }
        if (conf->grace_ms < 0 || conf->grace_ms > TG_DURATION_MAX ||
            conf->idle_timeout_ms < 0 || conf->idle_timeout_ms > TG_DURATION_MAX ||
            conf->max_future_ms < 0 || conf->max_future_ms > TG_DURATION_MAX ||
            conf->evict_after_ms < 0 || conf->evict_after_ms > TG_DURATION_MAX ||
            conf->update_interval_ms < 0 || conf->update_interval_ms > TG_DURATION_MAX) {
                tg_errstr(errstr, errstr_size,
                       "grace, idle timeout, max future, evict after and update "
                       "interval must be 0..%lld ms", (long long)TG_DURATION_MAX);
                return NULL;
        }
        if (conf->grace_ms / conf->hop_ms > 4096) {
                tg_errstr(errstr, errstr_size,
                       "grace may span at most %d hops: the window ring would be too large",
                       4096);
                return NULL;
        }
        if (conf->max_sensors == 0 || conf->max_sensors > (1u << 24) ||
            conf->max_fields == 0 || conf->max_fields > TG_READING_FIELDS_MAX ||
            conf->max_field_names < conf->max_fields ||
            conf->max_field_names > 4096) {
                tg_errstr(errstr, errstr_size,
                       "sensor table 1..16777216, fields per window 1..%lld, "
                       "field names fields..4096", (long long)TG_READING_FIELDS_MAX);
                return NULL;
        }

        if (!(e = calloc(1, sizeof(*e)))) {
                tg_errstr(errstr, errstr_size, "out of memory (%lld bytes)",
                       (long long)sizeof(*e));
                return NULL;
        }
        if ((r = tg_hash_key_random(e->hash_key)) < 0) {
                tg_errstr(errstr, errstr_size, "no random key for the sensor table's hash: "
                          "getrandom: %s", strerror(-r));
                free(e);
                return NULL;
        }
        e->conf = *conf;
        e->clock = clock;
        e->emit = emit;
        e->opaque = opaque;
        e->now = tg_clock_now(clock);
        /* at most 64 + 4097: the sensor's 16-bit positions hold it */
        e->ring_len = (uint32_t)(conf->size_ms / conf->hop_ms +
                                 (conf->grace_ms + conf->hop_ms - 1) / conf->hop_ms);
        e->windows_per_reading = (uint32_t)(conf->size_ms / conf->hop_ms);
        e->reserved = conf->reserved_fields && conf->reserved_fields < conf->max_fields
                              ? conf->reserved_fields
                              : conf->max_fields;
        e->wide_len = conf->wide_windows ? conf->max_fields - e->reserved : 0;
        e->slot_size = (sizeof(struct slot) + e->reserved * sizeof(struct tg_field_stats) +
                        CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
        e->slot_prefetch = (uint32_t)(e->slot_size < 4 * CACHE_LINE ? e->slot_size
                                                                      : 4 * CACHE_LINE);
        while (index_cap < 2 * (size_t)conf->max_sensors)
                index_cap <<= 1;
        e->index_mask = (uint32_t)(index_cap - 1);
        nslots = (size_t)conf->max_sensors * e->ring_len;
        e->global_watermark = INT64_MIN;
        e->lru_head = e->lru_tail = EMPTY;
        e->ring_start = 0;
        e->ring_start_pos = 0;

        e->index = big_calloc(index_bytes(e));
        e->sensors = big_calloc(sensors_bytes(e));
        e->cold = calloc(conf->max_sensors, sizeof(*e->cold));
        e->lru = calloc(conf->max_sensors, sizeof(*e->lru));
        e->free_stack = malloc(conf->max_sensors * sizeof(*e->free_stack));
        e->slots = big_calloc(slots_bytes(e));
        if (updated_bytes(e))
                e->updated = big_calloc(updated_bytes(e));
        if (e->wide_len) {
                e->wide = big_calloc(wide_bytes(e));
                e->wide_pool = big_calloc(wide_pool_bytes(e));
        }
        e->field_names = calloc(conf->max_field_names, sizeof(*e->field_names));
        e->memory = sizeof(*e) + index_bytes(e) + sensors_bytes(e) +
                    conf->max_sensors * (sizeof(*e->cold) + sizeof(*e->lru) +
                                         sizeof(*e->free_stack)) +
                    nslots * e->slot_size + updated_bytes(e) + wide_bytes(e) +
                    wide_pool_bytes(e) + conf->max_field_names * sizeof(*e->field_names);
        e->sensor_bytes = (e->memory - sizeof(*e) -
                           conf->max_field_names * sizeof(*e->field_names)) /
                          conf->max_sensors;
        if (!e->index || !e->sensors || !e->cold || !e->lru || !e->free_stack ||
            !e->slots || (updated_bytes(e) && !e->updated) || !e->field_names ||
            (e->wide_len && (!e->wide || !e->wide_pool))) {
                tg_errstr(errstr, errstr_size,
                       "out of memory: the window engine needs %lld bytes; "
                       "lower window.max_sensors, window.reserved_fields or "
                       "window.wide_windows",
                       (long long)e->memory);
                tg_window_engine_destroy(e);
                return NULL;
        }
        index_clear(e);
        wide_clear(e);
        return e;
}

void tg_window_engine_destroy(tg_window_engine_t *e) {
        if (!e)
                return;
        big_free(e->index, index_bytes(e));
        big_free(e->sensors, sensors_bytes(e));
        free(e->cold);
        free(e->lru);
        free(e->free_stack);
        big_free(e->slots, slots_bytes(e));
        big_free(e->updated, updated_bytes(e));
        big_free(e->wide, wide_bytes(e));
        big_free(e->wide_pool, wide_pool_bytes(e));
        free(e->field_names);
        free(e);
}

/* --- the arrival-ordered list ------------------------------------------ */

static void lru_unlink(tg_window_engine_t *e, uint32_t pos) {
        struct lru_link *l = &e->lru[pos];

        if (l->prev != EMPTY)
                e->lru[l->prev].next = l->next;
        else
                e->lru_head = l->next;
        if (l->next != EMPTY)
                e->lru[l->next].prev = l->prev;
        else
                e->lru_tail = l->prev;
}

static void lru_push_front(tg_window_engine_t *e, uint32_t pos) {
        struct lru_link *l = &e->lru[pos];

        l->prev = EMPTY;
        l->next = e->lru_head;
        if (e->lru_head != EMPTY)
                e->lru[e->lru_head].prev = pos;
        e->lru_head = pos;
        if (e->lru_tail == EMPTY)
                e->lru_tail = pos;
}

/* --- the sensor table --------------------------------------------------- */

/* The bucket holding @p id, or the empty bucket ending its probe. */
static inline uint32_t index_bucket(const tg_window_engine_t *e, const char *id,
                                    size_t len, uint32_t hash) {
        uint32_t b = hash & e->index_mask;

        for (;; b = (b + 1) & e->index_mask) {
                const struct bucket *bk = &e->index[b];

                if (bk->pos == EMPTY ||
                    (bk->hash == hash && sensor_is(e, bk->pos, id, len)))
                        return b;
        }
}

/* The bucket of the sensor at @p pos, which is in the table. */
static uint32_t index_bucket_of(const tg_window_engine_t *e, uint32_t pos, uint32_t hash) {
        uint32_t b = hash & e->index_mask;

        while (e->index[b].pos != pos)
                b = (b + 1) & e->index_mask;
        return b;
}

/* Linear probing deletion without tombstones: shift back every later entry
 * of the cluster that the hole would otherwise cut off from its home. */
static void index_remove(tg_window_engine_t *e, uint32_t hole) {
        uint32_t j = hole;

        for (;;) {
                uint32_t home;

                j = (j + 1) & e->index_mask;
                if (e->index[j].pos == EMPTY)
                        break;
                home = e->index[j].hash & e->index_mask;
                /* Move j into the hole unless its home lies cyclically in (hole, j]. */
                if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
                        e->index[hole] = e->index[j];
                        hole = j;
                }
        }
        e->index[hole].pos = EMPTY;
}

static void sensor_close_until(tg_window_engine_t *e, uint32_t pos, int64_t mark);

/* 7.2: when the table is full, the least recently active sensor goes if it
 * has been silent for evict_after_ms; its open windows are emitted first. */
static int sensor_evict_one(tg_window_engine_t *e) {
        uint32_t pos = e->lru_tail;
        struct sensor *s;

        if (!e->conf.evict_after_ms || pos == EMPTY)
                return 0;
        s = &e->sensors[pos];
        if (e->now - s->last_arrival_ms < e->conf.evict_after_ms)
                return 0;
        sensor_close_until(e, pos, INT64_MAX);
        index_remove(e, index_bucket_of(e, pos, hash_id(e, e->cold[pos].id, s->id_len)));
        lru_unlink(e, pos);
        s->in_use = 0;
        e->free_stack[e->nfree++] = pos;
        e->counters.sensors_active--;
        e->counters.evicted++;
        return 1;
}

/* Put @p id in the table at bucket @p b (the empty one its probe ended
 * at); EMPTY if the table is full and nobody can be evicted. */
static uint32_t sensor_insert(tg_window_engine_t *e, const char *id, size_t len,
                              uint32_t hash, uint32_t b) {
        struct sensor_cold *c;
        struct sensor *s;
        uint32_t pos;

        if (e->nfree == 0 && e->high_water == e->conf.max_sensors) {
                if (!sensor_evict_one(e))
                        return EMPTY;
                b = index_bucket(e, id, len, hash); /* the table moved */
        }
        pos = e->nfree ? e->free_stack[--e->nfree] : e->high_water++;
        e->index[b] = (struct bucket){.hash = hash, .pos = pos};
        s = &e->sensors[pos];
        c = &e->cold[pos];
        memset(s, 0, sizeof(*s));
        memcpy(s->id_head, id, len < ID_HEAD ? len : ID_HEAD);
        s->in_use = 1;
        s->id_len = (uint8_t)len;
        s->watermark = INT64_MIN;
        s->close_mark = INT64_MIN;
        s->last_arrival_ms = e->now;
        s->next_mark_wm = INT64_MIN;
        memcpy(c->id, id, len);
        c->id[len] = '\0';
        c->late_total = 0;
        c->late_since_final = 0;
        lru_push_front(e, pos);
        e->counters.sensors_active++;
        return pos;
}

/* Position of @p id (of hash_id() @p hash) in sensors[], inserting it if
 * @p create; EMPTY if absent, or if the table is full and nobody can be
 * evicted. */
static inline uint32_t sensor_find_hashed(tg_window_engine_t *e, const char *id, size_t len,
                                          uint32_t hash, int create) {
        uint32_t b = index_bucket(e, id, len, hash);

        if (e->index[b].pos != EMPTY)
                return e->index[b].pos;
        if (!create)
                return EMPTY;
        return sensor_insert(e, id, len, hash, b);
}

static uint32_t sensor_find(tg_window_engine_t *e, const char *id, size_t len, int create) {
        return sensor_find_hashed(e, id, len, hash_id(e, id, len), create);
}

static uint32_t field_intern(tg_window_engine_t *e, const char *name, size_t len) {
        uint32_t i;

        for (i = 0; i < e->nfield_names; i++)
                if (e->field_names[i].len == len &&
                    name_equal(e->field_names[i].name, name, len, name_mask(len)))
                        return i;
        if (e->nfield_names == e->conf.max_field_names)
                return EMPTY;
        memcpy(e->field_names[i].name, name, len);
        e->field_names[i].name[len] = '\0';
        e->field_names[i].len = (uint8_t)len;
        return e->nfield_names++;
}

const char *tg_window_field_name(const tg_window_engine_t *e, uint32_t field) {
        return field < e->nfield_names ? e->field_names[field].name : "?";
}

/* --- emitting ------------------------------------------------------------ */

static void slot_emit(tg_window_engine_t *e, uint32_t pos, struct slot *sl,
                      int final) {
        struct sensor *s = &e->sensors[pos];
        struct sensor_cold *c = &e->cold[pos];
        size_t si = slot_number(e, sl);
        struct tg_window_result res = {
                .sensor = c->id,
                .sensor_len = s->id_len,
                .start = sl->start,
                .end = sl->start + e->conf.size_ms,
                .count = sl->count,
                .final = final,
                .late = final ? c->late_since_final : 0,
                .nfields = sl->nfields,
                .fields = sl->fields,
        };

        if (sl->nfields > e->reserved) {
                uint32_t j;

                for (j = 0; j < sl->nfields; j++)
                        e->emit_fields[j] = *slot_field(e, sl, si, j);
                res.fields = e->emit_fields;
        }
        if (e->emit)
                e->emit(e->opaque, &res);
        if (!final) {
                e->counters.updates_emitted++;
                return;
        }
        c->late_since_final = 0;
        wide_release(e, si);
        sl->open = 0;
        s->nopen--;
        if (res.end > s->close_mark)
                s->close_mark = res.end;
        e->counters.windows_emitted++;
}

/* Ring position of the sensor's oldest open window (nopen > 0). */
static uint32_t oldest_pos(const tg_window_engine_t *e, uint32_t pos) {
        return ring_pos(e, e->cold[pos].oldest_open);
}

/* Recompute oldest_open after windows closed. */
static void sensor_rescan_oldest(tg_window_engine_t *e, uint32_t pos) {
        int64_t oldest = INT64_MAX;
        uint32_t i;

        if (!e->sensors[pos].nopen)
                return;
        for (i = 0; i < e->ring_len; i++) {
                const struct slot *sl = slot_at(e, pos, i);

                if (sl->open && sl->start < oldest)
                        oldest = sl->start;
        }
        e->cold[pos].oldest_open = oldest;
}

/* Emit final, in start order, the sensor's open windows ending at or
 * before @p mark (INT64_MAX: all of them), and raise the close mark. */
static void sensor_close_until(tg_window_engine_t *e, uint32_t pos,
                               int64_t mark) {
        struct sensor *s = &e->sensors[pos];

        if (s->nopen && e->cold[pos].oldest_open + e->conf.size_ms <= mark) {
                uint32_t i = oldest_pos(e, pos), n;

                for (n = 0; n < e->ring_len && s->nopen;
                     n++, i = i + 1 == e->ring_len ? 0 : i + 1) {
                        struct slot *sl = slot_at(e, pos, i);

                        if (!sl->open)
                                continue;
                        if (sl->start + e->conf.size_ms > mark)
                                break;
                        slot_emit(e, pos, sl, 1);
                }
                sensor_rescan_oldest(e, pos);
        }
        if (mark != INT64_MAX && mark > s->close_mark)
                s->close_mark = mark;
}

/* 3.4: the close mark a watermark implies, the last window boundary at or
 * before watermark - grace. */
static int64_t close_mark_for(const tg_window_engine_t *e, int64_t watermark) {
        if (watermark == INT64_MIN)
                return INT64_MIN;
        return align_down(watermark - e->conf.grace_ms, e->conf.hop_ms);
}

/* --- adding ------------------------------------------------------------- */

/*
 * 6.2: Welford's step where a double overflows: x - mean past the largest
 * double (values of both signs beyond about 9e307), or the sum of squared
 * deviations past it (values beyond about 1e154). The mean takes the form
 * mean + (x/n - mean/n), whose terms cannot overflow for n >= 2, and m2
 * moves to its wide form (window.h): deviations scaled by 2^-550 before
 * they are multiplied, the sum kept negated. Contributions too small to
 * show in a sum past 2^1024 are lost to that scaling, as they would be to
 * rounding. Never on the common path.
 */
static void __attribute__((noinline, cold)) stats_add_wide(struct tg_field_stats *st,
                                                           double x) {
        double n = st->count, mean = st->mean, delta = x - mean, next, d, e, wide;

        next = isfinite(delta) ? mean + delta / n : mean + (x / n - mean / n);
        d = ldexp(x, -TG_STATS_WIDE_HALF) - ldexp(mean, -TG_STATS_WIDE_HALF);
        e = ldexp(x, -TG_STATS_WIDE_HALF) - ldexp(next, -TG_STATS_WIDE_HALF);
        wide = st->m2 < 0 ? -st->m2 : ldexp(st->m2, -2 * TG_STATS_WIDE_HALF);
        st->m2 = -(wide + d * e); /* d and e have one sign: d * e >= 0 */
        st->mean = next;
}

/* 6.2: a value into a field the window already holds (count >= 1). */
static inline void stats_add(struct tg_field_stats *st, int64_t ts, double x) {
        double delta, mean, m2;

        st->count++;
        /* as `if (x < min) min = x`, NaN and signed zeros included, without a branch */
        st->min = x < st->min ? x : st->min;
        st->max = x > st->max ? x : st->max;
        st->sum += x;
        delta = x - st->mean;
        mean = st->mean + delta / st->count;
        m2 = st->m2 + delta * (x - mean);
        /* An overflow shows as an m2 that is not in [0, DBL_MAX] (x - mean
         * infinite makes it -infinity); m2 < 0 before means the wide form. */
        if (__builtin_expect(st->m2 < 0 || !(m2 >= 0 && m2 <= DBL_MAX), 0)) {
                stats_add_wide(st, x);
        } else {
                st->mean = mean;
                st->m2 = m2;
        }
        /* 6.2: ties keep the first added as "first" and the last as "last". */
        if (ts < st->first_ts) {
                st->first = x;
                st->first_ts = ts;
        }
        if (ts >= st->last_ts) {
                st->last = x;
                st->last_ts = ts;
        }
}

static inline void stats_first(struct tg_field_stats *st, uint32_t field, int64_t ts,
                               double x) {
        st->field = field;
        st->count = 1;
        st->min = st->max = st->sum = st->first = st->last = x;
        st->first_ts = st->last_ts = ts;
        st->mean = x;
        st->m2 = 0;
}

/* A field the window does not hold at the reading's position: find it, or
 * give it the next free place; the first past the reserved ones takes a
 * wide block (6.5). */
static void slot_add_other(tg_window_engine_t *e, struct slot *sl, size_t si, uint32_t f,
                           int64_t ts, double x) {
        uint32_t j;

        if (f == EMPTY)
                return; /* counted once per reading by the caller */
        for (j = 0; j < sl->nfields; j++) {
                struct tg_field_stats *st = slot_field(e, sl, si, j);

                if (st->field == f) {
                        stats_add(st, ts, x);
                        return;
                }
        }
        if (j == e->conf.max_fields || (j == e->reserved && e->wide_free == EMPTY)) {
                e->counters.fields_dropped++;
                if (j < e->conf.max_fields)
                        e->counters.wide_refused++;
                return;
        }
        if (j == e->reserved) {
                e->wide[si] = e->wide_free;
                e->wide_free = e->wide_pool[(size_t)e->wide_free * e->wide_len].field;
        }
        stats_first(slot_field(e, sl, si, j), f, ts, x);
        sl->nfields++;
}

static inline void slot_add(tg_window_engine_t *e, struct slot *sl, size_t si,
                            const struct tg_reading *r, const uint32_t *field_ids) {
        const int64_t ts = r->ts_ms;
        const uint16_t n = r->nfields;
        const uint32_t in_slot = sl->nfields < e->reserved ? sl->nfields : e->reserved;
        uint16_t i;

        for (i = 0; i < n; i++) {
                /* Usually the window holds the fields in the reading's order. */
                if (i < in_slot && sl->fields[i].field == field_ids[i])
                        stats_add(&sl->fields[i], ts, r->fields[i].value);
                else
                        slot_add_other(e, sl, si, field_ids[i], ts, r->fields[i].value);
        }
        sl->count++;
        sl->dirty = 1;
}

static inline void prefetch_slot(const tg_window_engine_t *e, uint32_t pos, uint32_t rp) {
        const char *sl = (const char *)slot_at(e, pos, rp);

        /* slot_prefetch is 2, 3 or 4 lines (a slot has at least two) */
        __builtin_prefetch(sl, 1);
        __builtin_prefetch(sl + CACHE_LINE, 1);
        if (e->slot_prefetch > 2 * CACHE_LINE)
                __builtin_prefetch(sl + 2 * CACHE_LINE, 1);
        if (e->slot_prefetch > 3 * CACHE_LINE)
                __builtin_prefetch(sl + 3 * CACHE_LINE, 1);
}

/* tg_window_engine_add() with the id's hash already computed. */
static inline enum tg_window_verdict add_reading(tg_window_engine_t *e,
                                                 const struct tg_reading *r,
                                                 uint32_t hash) {
        const int64_t W = e->conf.size_ms, H = e->conf.hop_ms;
        uint32_t field_ids[TG_READING_FIELDS_MAX];
        int64_t ts = r->ts_ms, start, newest, wm;
        uint64_t ahead;
        struct sensor *s;
        uint32_t pos, rp, unmatched = 0;
        uint16_t i;
        int late = 0;

        if (ts < TG_TS_MIN || ts > TG_TS_MAX) {
                e->counters.out_of_range++;
                return TG_WINDOW_OUT_OF_RANGE;
        }
        if (ts > e->now + e->conf.max_future_ms) {
                e->counters.future++;
                return TG_WINDOW_FUTURE;
        }
        /* The newest window containing ts, its start and ring position:
         * usually the one the previous reading asked for, or the next. */
        ahead = (uint64_t)ts - (uint64_t)e->ring_start; /* no overflow: unsigned */
        if (ahead < (uint64_t)H) {
                newest = e->ring_start;
                rp = e->ring_start_pos;
        } else {
                if (ahead < 2 * (uint64_t)H) {
                        newest = e->ring_start + H;
                        rp = e->ring_start_pos + 1 == e->ring_len ? 0 : e->ring_start_pos + 1;
                } else {
                        newest = align_down(ts, H);
                        rp = ring_pos(e, newest);
                }
                /* Follow time forward only: late readings do not move it. */
                if (newest > e->ring_start) {
                        e->ring_start = newest;
                        e->ring_start_pos = rp;
                }
        }
        /* While the sensor's bucket is on its way, match the field names
         * with the previous reading's, which only reads: a name that does
         * not match is interned below, if the reading gets into the table. */
        __builtin_prefetch(&e->index[hash & e->index_mask]);
        for (i = 0; i < r->nfields; i++) {
                const struct tg_field *f = &r->fields[i];
                const struct field_hint *h = &e->field_hint[i];

                if (h->len == f->name_len && name_equal(h->name, f->name, h->len, h->mask))
                        field_ids[i] = h->id;
                else
                        unmatched |= 1u << i;
        }
        pos = sensor_find_hashed(e, r->sensor, r->sensor_len, hash, 1);
        if (pos == EMPTY) {
                e->counters.table_full++;
                return TG_WINDOW_TABLE_FULL;
        }
        /* Start fetching the newest slot's lines (header and the first
         * fields) while the sensor's line is on its way. */
        prefetch_slot(e, pos, rp);
        s = &e->sensors[pos];
        /* The clock moves at ticks only, so the arrival list needs a move
         * once per tick per sensor, not once per reading: a sensor keeps
         * its place among those sharing its last_arrival (7.2). */
        if (s->last_arrival_ms != e->now) {
                s->last_arrival_ms = e->now;
                if (e->lru_head != pos) {
                        lru_unlink(e, pos);
                        lru_push_front(e, pos);
                }
        }
        if (ts > s->watermark)
                s->watermark = ts;
        if (ts > e->global_watermark)
                e->global_watermark = ts;
        wm = e->conf.close == TG_CLOSE_GLOBAL ? e->global_watermark : s->watermark;
        if (wm >= s->next_mark_wm) {
                /* 3.4; below next_mark_wm the mark would not move. */
                int64_t mark = close_mark_for(e, wm);

                s->next_mark_wm = mark + H + e->conf.grace_ms;
                sensor_close_until(e, pos, mark);
        }

        /* 6.5: names are interned once the reading reached the table. */
        for (i = 0; unmatched; i++, unmatched >>= 1) {
                const struct tg_field *f = &r->fields[i];
                struct field_hint *h = &e->field_hint[i];

                if (!(unmatched & 1))
                        continue;
                field_ids[i] = field_intern(e, f->name, f->name_len);
                if (field_ids[i] == EMPTY) {
                        e->counters.fields_dropped++;
                        continue;
                }
                memcpy(h->name, f->name, f->name_len);
                h->len = f->name_len;
                h->mask = name_mask(f->name_len);
                h->id = field_ids[i];
        }


        /* 2.3 / 4.1: every window containing ts, oldest first; ring
         * positions step with the starts. (ring_len >= W / H, so one
         * subtraction brings the first position into range.) */
        rp = rp + 1 + e->ring_len - e->windows_per_reading;
        if (rp >= e->ring_len)
                rp -= e->ring_len;
        for (start = newest - W + H; start <= newest;
             start += H, rp = rp + 1 == e->ring_len ? 0 : rp + 1) {
                struct slot *sl;

                if (start + W <= s->close_mark) {
                        late = 1;
                        continue;
                }
                sl = slot_at(e, pos, rp);
                if (sl->open && sl->start != start) {
                        if (sl->start > start) {
                                late = 1; /* cannot happen with ring_len as sized */
                                continue;
                        }
                        slot_emit(e, pos, sl, 1); /* 7.3 */
                        sensor_rescan_oldest(e, pos);
                }
                if (!sl->open) {
                        sl->open = 1;
                        sl->start = start;
                        sl->count = 0;
                        sl->nfields = 0;
                        if (e->updated)
                                e->updated[slot_index(e, pos, rp)] = INT64_MIN;
                        if (!s->nopen++ || start < e->cold[pos].oldest_open)
                                e->cold[pos].oldest_open = start;
                }
                slot_add(e, sl, slot_index(e, pos, rp), r, field_ids);
        }
        if (late) {
                e->cold[pos].late_total++;
                e->cold[pos].late_since_final++;
                e->counters.late++;
                return TG_WINDOW_LATE;
        }
        e->counters.accepted++;
        return TG_WINDOW_ACCEPTED;
}

enum tg_window_verdict tg_window_engine_add(tg_window_engine_t *e,
                                            const struct tg_reading *r) {
        return add_reading(e, r, hash_id(e, r->sensor, r->sensor_len));
}

/*
 * A batch is added reading by reading, exactly as by tg_window_engine_add(),
 * with the memory of the readings ahead fetched meanwhile, in two stages:
 * BATCH_AHEAD readings before its turn, a reading's hash is computed and its
 * bucket's line requested; half as many before, the bucket is read and the
 * sensor's line and its newest slot's first lines are requested. Those stages
 * only read, and what they read is a guess (the readings in between may
 * insert, evict and move time): each reading still looks itself up in turn.
 */
#define BATCH_AHEAD 8            /* a power of two */

static inline void prefetch_reading(const tg_window_engine_t *e,
                                    const struct tg_reading *r, uint32_t hash) {
        const struct bucket *bk = &e->index[hash & e->index_mask];
        uint64_t ahead = (uint64_t)r->ts_ms - (uint64_t)e->ring_start;
        uint64_t H = (uint64_t)e->conf.hop_ms;
        uint32_t pos = bk->pos, rp;

        if (pos == EMPTY || bk->hash != hash)
                return; /* new, or not in its home bucket: no guess */
        __builtin_prefetch(&e->sensors[pos], 1);
        if (ahead >= 2 * H)
                return;
        rp = e->ring_start_pos + (ahead >= H);
        prefetch_slot(e, pos, rp == e->ring_len ? 0 : rp);
}

void tg_window_engine_add_batch(tg_window_engine_t *e, const struct tg_reading *r,
                                size_t n, enum tg_window_verdict *verdicts) {
        uint32_t hash[BATCH_AHEAD];
        size_t i, j;

        for (j = 0; j < n && j < BATCH_AHEAD; j++) {
                hash[j] = hash_id(e, r[j].sensor, r[j].sensor_len);
                __builtin_prefetch(&e->index[hash[j] & e->index_mask]);
        }
        for (j = 0; j < n && j < BATCH_AHEAD / 2; j++)
                prefetch_reading(e, &r[j], hash[j]);
        for (i = 0; i < n; i++) {
                uint32_t h = hash[i % BATCH_AHEAD];
                enum tg_window_verdict v;

                j = i + BATCH_AHEAD / 2;
                if (j < n)
                        prefetch_reading(e, &r[j], hash[j % BATCH_AHEAD]);
                j = i + BATCH_AHEAD;
                if (j < n) {
                        hash[j % BATCH_AHEAD] = hash_id(e, r[j].sensor, r[j].sensor_len);
                        __builtin_prefetch(&e->index[hash[j % BATCH_AHEAD] & e->index_mask]);
                }
                v = add_reading(e, &r[i], h);
                if (verdicts)
                        verdicts[i] = v;
        }
}

/* --- ticks --------------------------------------------------------------- */

/* 5.4: running results of changed open windows, in start order. */
static void sensor_emit_updates(tg_window_engine_t *e, uint32_t pos) {
        struct sensor *s = &e->sensors[pos];
        uint32_t i = oldest_pos(e, pos), n, seen = 0;

        for (n = 0; n < e->ring_len && seen < s->nopen;
             n++, i = i + 1 == e->ring_len ? 0 : i + 1) {
                struct slot *sl = slot_at(e, pos, i);
                int64_t *updated = &e->updated[slot_index(e, pos, i)];

                if (!sl->open)
                        continue;
                seen++;
                if (!sl->dirty || (*updated != INT64_MIN &&
                                   e->now - *updated < e->conf.update_interval_ms))
                        continue;
                slot_emit(e, pos, sl, 0);
                sl->dirty = 0;
                *updated = e->now;
        }
}

void tg_window_engine_tick(tg_window_engine_t *e) {
        int64_t global_mark;
        uint32_t pos;

        e->now = tg_clock_now(e->clock);
        global_mark = close_mark_for(e, e->global_watermark);
        for (pos = 0; pos < e->high_water; pos++) {
                struct sensor *s = &e->sensors[pos];

                if (!s->in_use || !s->nopen)
                        continue;
                if (e->conf.close == TG_CLOSE_GLOBAL)
                        sensor_close_until(e, pos, global_mark);
                if (s->nopen && e->conf.idle_timeout_ms > 0 &&
                    e->now - s->last_arrival_ms >= e->conf.idle_timeout_ms) {
                        sensor_close_until(e, pos, INT64_MAX);
                        e->counters.idle_closes++;
                }
                if (s->nopen && e->conf.update_interval_ms > 0)
                        sensor_emit_updates(e, pos);
        }
}

void tg_window_engine_touch_all(tg_window_engine_t *e) {
        uint32_t pos;

        e->now = tg_clock_now(e->clock);
        for (pos = 0; pos < e->high_water; pos++)
                if (e->sensors[pos].in_use)
                        e->sensors[pos].last_arrival_ms = e->now;
}

void tg_window_engine_flush(tg_window_engine_t *e) {
        uint32_t pos;

        for (pos = 0; pos < e->high_water; pos++)
                if (e->sensors[pos].in_use)
                        sensor_close_until(e, pos, INT64_MAX);
}

/* 5.5: a death certificate closes a sensor's windows at once, as the idle
 * timeout would: every open window is emitted final now, whatever the
 * watermark. The sensor stays in the table (its watermark and close mark
 * too), so a reading that follows is judged as any other. O(table) for a
 * prefix: deaths are rare. */
static int id_matches(const tg_window_engine_t *e, uint32_t pos, const char *id, size_t len,
                      int prefix) {
        const struct sensor *s = &e->sensors[pos];

        if (!prefix || s->id_len <= len)
                return sensor_is(e, pos, id, len);
        return e->cold[pos].id[len] == '/' && !memcmp(e->cold[pos].id, id, len);
}

uint32_t tg_window_engine_close_sensors(tg_window_engine_t *e, const char *id, size_t len,
                                        int prefix) {
        uint32_t pos, n = 0;

        if (!prefix) {
                pos = e->index[index_bucket(e, id, len, hash_id(e, id, len))].pos;
                if (pos == EMPTY)
                        return 0;
                if (e->sensors[pos].nopen) {
                        sensor_close_until(e, pos, INT64_MAX);
                        e->counters.death_closes++;
                        n++;
                }
                return n;
        }
        for (pos = 0; pos < e->high_water; pos++) {
                if (!e->sensors[pos].in_use || !e->sensors[pos].nopen ||
                    !id_matches(e, pos, id, len, 1))
                        continue;
                sensor_close_until(e, pos, INT64_MAX);
                e->counters.death_closes++;
                n++;
        }
        return n;
}

int tg_window_engine_set_hash_key(tg_window_engine_t *e,
                                  const unsigned char key[TG_WINDOW_HASH_KEY_BYTES]) {
        if (e->counters.sensors_active)
                return -EBUSY; /* the index holds hashes of the old key */
        memcpy(e->hash_key, key, TG_HASH_KEY_BYTES);
        return 0;
}

uint32_t tg_window_engine_id_hash(const tg_window_engine_t *e, const char *id, size_t len) {
        return hash_id(e, id, len);
}

int64_t tg_window_engine_sensor_late(const tg_window_engine_t *e, const char *id,
                                     size_t len) {
        uint32_t b = index_bucket(e, id, len, hash_id(e, id, len));

        return e->index[b].pos == EMPTY ? -1 : (int64_t)e->cold[e->index[b].pos].late_total;
}

int tg_window_engine_sensor_info(const tg_window_engine_t *e, const char *id, size_t len,
                                 struct tg_window_sensor_info *out) {
        uint32_t pos = e->index[index_bucket(e, id, len, hash_id(e, id, len))].pos, i;
        const struct slot *newest = NULL;
        size_t newest_i = 0;

        if (pos == EMPTY)
                return -ENOENT;
        out->watermark = e->sensors[pos].watermark;
        out->last_arrival_ms = e->sensors[pos].last_arrival_ms;
        out->late = e->cold[pos].late_total;
        out->open = e->sensors[pos].nopen;
        out->has_value = 0;
        for (i = 0; i < e->ring_len; i++) {
                const struct slot *sl = slot_at(e, pos, i);

                if (sl->open && sl->nfields && (!newest || sl->start > newest->start)) {
                        newest = sl;
                        newest_i = slot_index(e, pos, i);
                }
        }
        if (newest) {
                const struct tg_field_stats *f =
                        slot_field(e, (struct slot *)newest, newest_i, 0);

                out->has_value = 1;
                out->field = f->field;
                out->value = f->last;
        }
        return 0;
}

void tg_window_engine_counters(const tg_window_engine_t *e,
                               struct tg_window_counters *out) {
        *out = e->counters;
}

size_t tg_window_engine_memory(const tg_window_engine_t *e) {
        return e->memory;
}

size_t tg_window_engine_sensor_bytes(const tg_window_engine_t *e) {
        return e->sensor_bytes;
}

/*
 * State file, version 1. Native byte order: the file never leaves the
 * machine that wrote it.
 *
 *   header  "TGWSTATE" u32 version, u32 flags (STATE_ATTACHED or 0)
 *           i64 W, H, u32 max_fields, u32 nfield_names, u32 nsensors,
 *           i64 global_watermark, u64 position (the caller's: the spool
 *           sequence the state covers)
 *   names   nfield_names x (u8 len, bytes)
 *   sensors nsensors x (u16 id_len, bytes, i64 watermark, i64 close_mark,
 *           u64 late_total, u64 late_since_final, u32 nopen, nopen x (i64 start, u32 count, u32 nfields,
 *           nfields x struct tg_field_stats))
 *   attach  flags & STATE_ATTACHED only: u32 length, bytes: another module's
 *           state that must cover the same input (the raw-forwarding
 *           compressors', docs/downsample.md 5.1), opaque here
 *   trailer u32 CRC-32 of everything before it
 */
#define STATE_MAGIC "TGWSTATE"
#define STATE_VERSION 1u
#define STATE_ATTACHED 1u

/* The state file is written through this buffer and never built whole in
 * memory: a checkpoint of 10 000 sensors (3 MB) costs the process no more
 * resident memory than these 32 KiB on the writer's stack. */
#define WBUF_SIZE (32u << 10)

struct wbuf {
        int fd;                   /* -1: bytes only counted */
        int err;                  /* the first failure's -errno */
        uint64_t total;           /* bytes written */
        uint32_t crc;             /* of everything flushed so far */
        size_t len;               /* bytes waiting in buf */
        unsigned char buf[WBUF_SIZE];
};

static void wwrite(struct wbuf *b, const void *src, size_t n) {
        const char *p = src;

        b->total += n;
        if (b->fd < 0)
                return;
        while (n && !b->err) {
                ssize_t w = write(b->fd, p, n);

                if (w < 0) {
                        if (errno != EINTR)
                                b->err = -errno;
                        continue;
                }
                p += w;
                n -= (size_t)w;
        }
}

static void wflush(struct wbuf *b) {
        b->crc = tg_crc32(b->crc, b->buf, b->len);
        wwrite(b, b->buf, b->len);
        b->len = 0;
}

static void wput(struct wbuf *b, const void *src, size_t n) {
        const unsigned char *p = src;

        while (n) {
                size_t k = WBUF_SIZE - b->len;

                if (k > n)
                        k = n;
                memcpy(b->buf + b->len, p, k);
                b->len += k;
                p += k;
                n -= k;
                if (b->len == WBUF_SIZE)
                        wflush(b);
        }
}

#define WPUT(b, v) wput((b), &(v), sizeof(v))

/* The state in the format above, to @p fd (or only counted, with -1),
 * @p attachment appended when not NULL; its size in @p bytes. */
static int state_write(const tg_window_engine_t *e, int fd, uint64_t position,
                       const void *attachment, size_t attachment_len, uint64_t *bytes) {
        struct wbuf b;
        uint32_t u32, pos, i, nsensors;

        if (attachment_len > UINT32_MAX)
                return -EFBIG;
        b.fd = fd;
        b.err = 0;
        b.total = 0;
        b.crc = 0;
        b.len = 0;
        wput(&b, STATE_MAGIC, 8);
        u32 = STATE_VERSION;
        WPUT(&b, u32);
        u32 = attachment ? STATE_ATTACHED : 0;
        WPUT(&b, u32);
        WPUT(&b, e->conf.size_ms);
        WPUT(&b, e->conf.hop_ms);
        WPUT(&b, e->conf.max_fields);
        WPUT(&b, e->nfield_names);
        nsensors = e->counters.sensors_active;
        WPUT(&b, nsensors);
        WPUT(&b, e->global_watermark);
        WPUT(&b, position);
        for (i = 0; i < e->nfield_names; i++) {
                WPUT(&b, e->field_names[i].len);
                wput(&b, e->field_names[i].name, e->field_names[i].len);
        }
        for (pos = 0; pos < e->high_water && !b.err; pos++) {
                const struct sensor *s = &e->sensors[pos];
                const struct sensor_cold *c = &e->cold[pos];
                uint16_t id_len = s->id_len;
                uint32_t nopen = s->nopen;

                if (!s->in_use)
                        continue;
                WPUT(&b, id_len);
                wput(&b, c->id, s->id_len);
                WPUT(&b, s->watermark);
                WPUT(&b, s->close_mark);
                WPUT(&b, c->late_total);
                WPUT(&b, c->late_since_final);
                WPUT(&b, nopen);
                for (i = 0; i < e->ring_len; i++) {
                        struct slot *sl = slot_at(e, pos, i);

                        if (!sl->open)
                                continue;
                        uint32_t j;

                        WPUT(&b, sl->start);
                        WPUT(&b, sl->count);
                        WPUT(&b, sl->nfields);
                        for (j = 0; j < sl->nfields; j++)
                                wput(&b, slot_field(e, sl, slot_index(e, pos, i), j),
                                     sizeof(struct tg_field_stats));
                }
        }
        if (attachment) {
                u32 = (uint32_t)attachment_len;
                WPUT(&b, u32);
                wput(&b, attachment, attachment_len);
        }
        wflush(&b);
        wwrite(&b, &b.crc, sizeof(b.crc));
        if (bytes)
                *bytes = b.total;
        return b.err;
}

uint64_t tg_window_engine_state_bytes(const tg_window_engine_t *e) {
        uint64_t bytes = 0;

        state_write(e, -1, 0, NULL, 0, &bytes);
        return bytes;
}

/* Makes a rename in @p path's directory durable. */
static int sync_dir_of(const char *path) {
        char dir[4096];
        const char *slash = strrchr(path, '/');
        int fd, r = 0;

        if (!slash)
                snprintf(dir, sizeof(dir), ".");
        else
                snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
        if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return -errno;
        if (fsync(fd))
                r = -errno;
        close(fd);
        return r;
}

int tg_window_engine_save(const tg_window_engine_t *e, const char *path,
                          uint64_t position, uint64_t *bytes) {
        return tg_window_engine_save_with(e, path, position, NULL, 0, bytes);
}

int tg_window_engine_save_with(const tg_window_engine_t *e, const char *path,
                               uint64_t position, const void *attachment,
                               size_t attachment_len, uint64_t *bytes) {
        char tmp[4096];
        int fd, r;

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
                return -errno;
        r = state_write(e, fd, position, attachment, attachment_len, bytes);
        if (!r && fsync(fd))
                r = -errno;
        if (close(fd) && !r)
                r = -errno;
        if (!r && rename(tmp, path))
                r = -errno;
        if (r)
                unlink(tmp);
        else
                r = sync_dir_of(path);
        return r;
}

int tg_window_state_rename(const char *from, const char *to) {
        if (rename(from, to))
                return -errno;
        return sync_dir_of(to);
}

struct rbuf {
        const unsigned char *p;
        size_t len, off;
        int short_read;
};

static void rget(struct rbuf *b, void *dst, size_t n) {
        if (b->short_read || n > b->len - b->off) {
                b->short_read = 1;
                memset(dst, 0, n);
                return;
        }
        memcpy(dst, b->p + b->off, n);
        b->off += n;
}

#define RGET(b, v) rget((b), &(v), sizeof(v))

static void engine_reset(tg_window_engine_t *e) {
        index_clear(e);
        wide_clear(e);
        memset(e->slots, 0, slots_bytes(e));
        memset(e->sensors, 0, sensors_bytes(e));
        memset(e->cold, 0, (size_t)e->conf.max_sensors * sizeof(*e->cold));
        memset(e->lru, 0, (size_t)e->conf.max_sensors * sizeof(*e->lru));
        e->high_water = 0;
        e->nfree = 0;
        e->lru_head = e->lru_tail = EMPTY;
        e->nfield_names = 0;
        memset(e->field_hint, 0, sizeof(e->field_hint));
        e->global_watermark = INT64_MIN;
        e->counters.sensors_active = 0;
}

static int load_fail(tg_window_engine_t *e, char *errstr, size_t size,
                     const char *why) {
        if (errstr && size)
                snprintf(errstr, size, "%s", why);
        engine_reset(e);
        return -EINVAL;
}

int tg_window_engine_load(tg_window_engine_t *e, const char *path,
                          uint64_t *position, char *errstr, size_t errstr_size) {
        return tg_window_engine_load_with(e, path, position, NULL, NULL, errstr, errstr_size);
}

int tg_window_engine_load_with(tg_window_engine_t *e, const char *path, uint64_t *position,
                               tg_window_attachment_fn *attached, void *opaque,
                               char *errstr, size_t errstr_size) {
        unsigned char *data;
        uint32_t attachment_len = 0;
        size_t attachment_off = 0;
        struct rbuf b;
        struct stat sb;
        char magic[8];
        uint32_t version, flags, max_fields, nnames, nsens, i, pos, crc;
        int64_t W, H, gwm;
        uint64_t saved_position;
        size_t size;
        int fd, r;

        /* Mapped, not read into a buffer: its pages leave with the mapping. */
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return -errno;
        if (fstat(fd, &sb)) {
                close(fd);
                return load_fail(e, errstr, errstr_size, "cannot read the file");
        }
        if (sb.st_size < 12) {
                close(fd);
                return load_fail(e, errstr, errstr_size, "file truncated or unreadable");
        }
        size = (size_t)sb.st_size;
        data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (data == MAP_FAILED)
                return load_fail(e, errstr, errstr_size, "file truncated or unreadable");

        memcpy(&crc, data + size - 4, 4);
        if (tg_crc32(0, data, (size_t)(size - 4)) != crc) {
                munmap(data, size);
                return load_fail(e, errstr, errstr_size, "CRC mismatch: file corrupt");
        }

        engine_reset(e);
        b = (struct rbuf){.p = data, .len = (size_t)size - 4};
        rget(&b, magic, 8);
        RGET(&b, version);
        RGET(&b, flags);
        if (memcmp(magic, STATE_MAGIC, 8) || version != STATE_VERSION) {
                munmap(data, size);
                return load_fail(e, errstr, errstr_size,
                                 "not a window state file of version 1");
        }
        RGET(&b, W);
        RGET(&b, H);
        RGET(&b, max_fields);
        RGET(&b, nnames);
        RGET(&b, nsens);
        RGET(&b, gwm);
        RGET(&b, saved_position);
        if (W != e->conf.size_ms || H != e->conf.hop_ms ||
            max_fields != e->conf.max_fields) {
                munmap(data, size);
                return load_fail(e, errstr, errstr_size,
                                 "written with another window size, hop or "
                                 "window.max_fields");
        }
        if (nnames > e->conf.max_field_names || nsens > e->conf.max_sensors) {
                munmap(data, size);
                return load_fail(e, errstr, errstr_size,
                                 "more sensors or field names than this "
                                 "configuration holds");
        }
        for (i = 0; i < nnames; i++) {
                uint8_t len;
                char name[256];

                RGET(&b, len);
                rget(&b, name, len);
                if (b.short_read || len == 0 || len > TG_FIELD_NAME_MAX ||
                    field_intern(e, name, len) != i) {
                        munmap(data, size);
                        return load_fail(e, errstr, errstr_size,
                                         "bad field name table");
                }
        }
        for (i = 0; i < nsens; i++) {
                uint16_t id_len;
                uint32_t nopen, k;
                char id[TG_SENSOR_ID_MAX + 1];
                struct sensor *s;

                RGET(&b, id_len);
                if (id_len == 0 || id_len > TG_SENSOR_ID_MAX) {
                        munmap(data, size);
                        return load_fail(e, errstr, errstr_size, "bad sensor id");
                }
                rget(&b, id, id_len);
                pos = sensor_find(e, id, id_len, 0);
                if (pos != EMPTY || b.short_read ||
                    (pos = sensor_find(e, id, id_len, 1)) == EMPTY) {
                        munmap(data, size);
                        return load_fail(e, errstr, errstr_size,
                                         "duplicate or unplaceable sensor");
                }
                s = &e->sensors[pos];
                RGET(&b, s->watermark);
                RGET(&b, s->close_mark);
                RGET(&b, e->cold[pos].late_total);
                RGET(&b, e->cold[pos].late_since_final);
                RGET(&b, nopen);
                if (nopen > e->ring_len) {
                        munmap(data, size);
                        return load_fail(e, errstr, errstr_size, "bad window count");
                }
                for (k = 0; k < nopen; k++) {
                        int64_t start;
                        struct slot *sl;
                        uint32_t nfields;
                        size_t si;

                        RGET(&b, start);
                        if (start < TG_TS_MIN - TG_DURATION_MAX || start > TG_TS_MAX) {
                                munmap(data, size);
                                return load_fail(e, errstr, errstr_size,
                                                 "window start out of range");
                        }
                        sl = slot_at(e, pos, ring_pos(e, start));
                        if (sl->open) {
                                munmap(data, size);
                                return load_fail(e, errstr, errstr_size,
                                                 "two windows in one slot");
                        }
                        sl->start = start;
                        RGET(&b, sl->count);
                        RGET(&b, sl->nfields);
                        if (sl->nfields > e->conf.max_fields) {
                                munmap(data, size);
                                return load_fail(e, errstr, errstr_size,
                                                 "bad field count");
                        }
                        si = slot_index(e, pos, ring_pos(e, start));
                        nfields = sl->nfields;
                        if (nfields > e->reserved) {
                                /* its fields past the reserved ones need a
                                 * wide block; without one they are dropped */
                                if (e->wide_free == EMPTY) {
                                        sl->nfields = (uint16_t)e->reserved;
                                        e->counters.fields_dropped += nfields - e->reserved;
                                        e->counters.wide_refused += nfields - e->reserved;
                                } else {
                                        e->wide[si] = e->wide_free;
                                        e->wide_free = e->wide_pool[(size_t)e->wide_free *
                                                                    e->wide_len].field;
                                }
                        }
                        for (r = 0; r < (int)nfields; r++) {
                                struct tg_field_stats st;

                                RGET(&b, st);
                                if (st.field >= nnames) {
                                        munmap(data, size);
                                        return load_fail(e, errstr, errstr_size,
                                                         "bad field reference");
                                }
                                if (r < (int)sl->nfields)
                                        *slot_field(e, sl, si, (uint32_t)r) = st;
                        }
                        sl->open = 1;
                        sl->dirty = 1;
                        if (e->updated)
                                e->updated[slot_index(e, pos, ring_pos(e, start))] = INT64_MIN;
                        s->nopen++;
                }
                sensor_rescan_oldest(e, pos);
        }
        if (flags & STATE_ATTACHED) {
                RGET(&b, attachment_len);
                attachment_off = b.off;
                if (attachment_len > b.len - b.off)
                        b.short_read = 1;
                else
                        b.off += attachment_len;
        }
        if (b.short_read || b.off != b.len) {
                munmap(data, size);
                return load_fail(e, errstr, errstr_size, "length mismatch");
        }
        /* A file without an attachment restores the other module empty. */
        if (attached && attached(opaque, attachment_len ? data + attachment_off : NULL,
                                 attachment_len, errstr, errstr_size)) {
                munmap(data, size);
                engine_reset(e);
                return -EINVAL;
        }
        e->global_watermark = gwm;
        if (position)
                *position = saved_position;
        munmap(data, size);
        return 0;
}
