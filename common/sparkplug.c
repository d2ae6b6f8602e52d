/* sparkplug.c - the Sparkplug B input: topics, payloads, births, aliases and deaths, in memory fixed at start-up. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "sparkplug.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "keyed_hash.h"
#include "sparkplug_b.pb-c.h"

/*
 * Memory (docs/sparkplug.md 8), all allocated by tg_sparkplug_new():
 *
 *   entities[max_nodes]      edge nodes and devices, by id "G/N" or "G/N/D";
 *                            a free slot has id_len 0 and is on the free
 *                            list (through .next). An entry that is not
 *                            alive (never born, voided, dead) is on the LRU
 *                            list, least recently seen first; a full table
 *                            takes its head (a node with its devices) for a
 *                            new id. Live entries are on no list and never
 *                            taken. A node lists its devices (dev_*), so a
 *                            birth or death touches only them.
 *   ent_buckets[2^k]         chains of entities by SipHash of the id
 *   metrics[max_metrics]     one per metric a BIRTH named: alias, datatype,
 *                            where its name is in the pool; listed per
 *                            owner, freed when the owner is born again or
 *                            dies
 *   names[name_bytes]        the metrics' names: a buddy allocator of 16,
 *                            32, 64 and 128-byte blocks (free lists per
 *                            size, a bitmap of free blocks' starts), so
 *                            short names take little and freed blocks merge
 *   alias_buckets, name_buckets   chains of metrics by SipHash of
 *                            (owner, alias) and (owner, name)
 *   arena                    the unpacked payload (protobuf-c's allocator
 *                            bumps a pointer in it) and the message's
 *                            per-metric and per-reading work, reset at each
 *                            message
 *
 * The hash key is random per process, as the window engine's: the ids and
 * names are chosen by devices, and a fixed hash would let them be chosen
 * to share a chain.
 */

#define NONE UINT32_MAX
#define NAME_MAX_SP 127           /* longest metric name remembered */
#define NAME_POOL_DEFAULT 32      /* name pool bytes per metric when not set */
#define NAME_UNKNOWN 0xff
#define DT_CLAMP 0xff           /* datatypes stored in a byte */
#define NS "spBv1.0/"

typedef Tumblegate__Sparkplug__Payload Payload;
typedef Tumblegate__Sparkplug__Payload__Metric Metric;
#define VC(x) TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__VALUE_##x

struct entity {
        uint32_t next;            /* bucket chain; the free list */
        uint32_t node;            /* a device's node; a node's own index */
        uint32_t metrics;         /* its metrics' list */
        uint32_t nmetrics;
        uint32_t lru_prev, lru_next; /* not alive: the LRU list */
        uint32_t dev_first;       /* a node: its devices */
        uint32_t dev_prev, dev_next; /* a device: its node's list */
        uint8_t is_device, born, has_seq, seq, has_bdseq, overflow;
        uint16_t id_len;
        uint64_t bdseq;
        int64_t last_rebirth_ms;  /* INT64_MIN: never */
        char id[TG_SENSOR_ID_MAX + 1];
};

struct metric {
        uint32_t owner;           /* NONE: free */
        uint32_t next_owner;      /* the owner's list, or the free list */
        uint32_t next_alias, next_name;
        uint64_t alias;
        uint32_t name_off;        /* its name in the pool */
        uint8_t datatype;         /* DT_CLAMP: any past the specification's */
        uint8_t has_alias;
        uint8_t name_len;         /* NAME_UNKNOWN: none remembered (too long or not text) */
};

/* One metric of the message in work. */
struct minfo {
        const char *name;         /* resolved: the message's or the birth's; NULL if unknown */
        size_t name_len;
        uint32_t datatype;
        uint32_t group;           /* NONE: in no record (a control metric of a death) */
        uint32_t next;            /* next metric of the same group */
        double value;
        uint8_t numeric;          /* value is a field's */
        uint8_t unknown_alias;
};

/* One reading of the message in work: a sensor at an event time. */
struct group {
        const char *sensor;
        uint16_t sensor_len;
        uint16_t nfields;
        uint8_t from_arrival;
        int64_t ts;
        uint32_t first, last;     /* its metrics */
        uint32_t field[TG_READING_FIELDS_MAX];
};

struct tg_sparkplug {
        struct tg_sparkplug_conf conf;
        unsigned char key[TG_HASH_KEY_BYTES];

        struct entity *entities;
        uint32_t nentities;       /* in use */
        uint32_t ent_free;        /* free slots, through .next */
        uint32_t lru_head, lru_tail; /* not alive, least recently seen first */
        uint32_t *ent_buckets;
        uint32_t ent_mask;

        unsigned char *names;     /* the name pool */
        size_t names_size;
        uint8_t *name_map;        /* a bit per 16-byte unit: a free block starts there */
        uint32_t name_free[4];    /* free blocks of 16 << k bytes, by unit */

        struct metric *metrics;
        uint32_t metric_free, nmetrics;
        uint32_t *alias_buckets, *name_buckets;
        uint32_t metric_mask;

        unsigned char *arena;
        size_t arena_size, arena_used;
        int arena_exhausted;
        ProtobufCAllocator alloc;

        /* the message in work */
        Payload *payload;
        enum tg_sp_type type;
        const struct entity *owner; /* whose metrics these are */
        struct minfo *mi;
        struct group *groups;
        size_t ngroups, cursor;
        char group_name[64], node_name[64], device_name[64];
        size_t group_len, node_len, device_len;
        int has_device;
        int64_t arrival_ms;
        int has_bdseq;            /* an NDEATH's bdSeq, for its record */
        uint64_t bdseq;

        /* every node's rebirth requests in the current second (5.5) */
        int64_t rebirth_second;
        uint32_t rebirths_in_second;

        struct tg_sp_counters c;
        size_t memory;
};

static const char *const type_names[TG_SP__TYPES] = {
        "NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH", "NCMD", "DCMD", "STATE",
};

static const char *const reason_names[TG_SP__REASONS] = {
        [TG_SP_OK] = "ok",
        [TG_SP_BAD_TOPIC] = "sparkplug_bad_topic",
        [TG_SP_NOT_DECODABLE] = "not_decodable",
        [TG_SP_TOO_LARGE] = "too_large",
        [TG_SP_NO_BIRTH] = "sparkplug_no_birth",
        [TG_SP_UNKNOWN_ALIAS] = "sparkplug_unknown_alias",
        [TG_SP_SEQ_GAP] = "sparkplug_seq_gap",
        [TG_SP_BDSEQ_MISMATCH] = "sparkplug_bdseq_mismatch",
        [TG_SP_TABLE_FULL] = "sparkplug_table_full",
};

static const char *const reason_messages[TG_SP__REASONS] = {
        [TG_SP_OK] = "",
        [TG_SP_BAD_TOPIC] = "the topic is not spBv1.0/<group>/<type>/<edge node>[/<device>]",
        [TG_SP_NOT_DECODABLE] = "the payload is not a Sparkplug B protobuf payload",
        [TG_SP_TOO_LARGE] = "the payload is over limits.payload or its decoded form over "
                            "the decoder's memory",
        [TG_SP_NO_BIRTH] = "no birth certificate seen for this edge node or device",
        [TG_SP_UNKNOWN_ALIAS] = "a metric's alias was not named by the birth certificate",
        [TG_SP_SEQ_GAP] = "the seq is not the previous message's + 1 (mod 256)",
        [TG_SP_BDSEQ_MISMATCH] = "the death certificate's bdSeq is not the current birth's: "
                                 "a stale will",
        [TG_SP_TABLE_FULL] = "no room in the table (sparkplug.max_nodes, sparkplug.max_metrics)",
};

static const char *const datatype_names[] = {
        "Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
        "UInt64", "Float", "Double", "Boolean", "String", "DateTime", "Text", "UUID",
        "DataSet", "Bytes", "File", "Template", "PropertySet", "PropertySetList",
        "Int8Array", "Int16Array", "Int32Array", "Int64Array", "UInt8Array",
        "UInt16Array", "UInt32Array", "UInt64Array", "FloatArray", "DoubleArray",
        "BooleanArray", "StringArray", "DateTimeArray",
};

enum {
        DT_UNKNOWN = 0, DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_UINT8, DT_UINT16,
        DT_UINT32, DT_UINT64, DT_FLOAT, DT_DOUBLE, DT_BOOLEAN, DT_STRING, DT_DATETIME,
        DT_TEXT, DT_UUID,
};

const char *tg_sp_type_name(enum tg_sp_type t) {
        return (unsigned)t < TG_SP__TYPES ? type_names[t] : "unknown";
}

const char *tg_sp_reason_name(enum tg_sp_reason r) {
        return (unsigned)r < TG_SP__REASONS ? reason_names[r] : "unknown";
}

const char *tg_sp_reason_message(enum tg_sp_reason r) {
        return (unsigned)r < TG_SP__REASONS ? reason_messages[r] : "";
}

const char *tg_sp_datatype_name(uint32_t dt) {
        return dt < sizeof(datatype_names) / sizeof(*datatype_names) ? datatype_names[dt]
                                                                      : "Unknown";
}

/* --- the arena: protobuf-c's allocator ---------------------------------- */

static void *arena_alloc(void *opaque, size_t size) {
        tg_sparkplug_t *sp = opaque;
        size_t at = (sp->arena_used + 15) & ~(size_t)15;

        if (size > sp->arena_size || at > sp->arena_size - size) {
                sp->arena_exhausted = 1;
                return NULL;
        }
        sp->arena_used = at + size;
        return sp->arena + at;
}

static void arena_free(void *opaque, void *p) {
        (void)opaque; /* the whole arena is reset at the next message */
        (void)p;
}

/* --- tables ------------------------------------------------------------- */

static uint32_t pow2_at_least(uint64_t n) {
        uint32_t p = 16;

        while (p < n && p < (1u << 30))
                p <<= 1;
        return p;
}

static uint64_t hash_pair(const tg_sparkplug_t *sp, uint32_t owner, const void *p, size_t len) {
        unsigned char buf[4 + NAME_MAX_SP + 1];

        memcpy(buf, &owner, 4);
        memcpy(buf + 4, p, len);
        return tg_hash_keyed(sp->key, buf, 4 + len);
}

static uint32_t entity_find(const tg_sparkplug_t *sp, const char *id, size_t len) {
        uint32_t i = sp->ent_buckets[tg_hash_keyed(sp->key, id, len) & sp->ent_mask];

        for (; i != NONE; i = sp->entities[i].next)
                if (sp->entities[i].id_len == len && !memcmp(sp->entities[i].id, id, len))
                        return i;
        return NONE;
}

/* --- the LRU list of entries that are not alive ------------------------- */

static void lru_remove(tg_sparkplug_t *sp, uint32_t i) {
        struct entity *e = &sp->entities[i];

        if (e->lru_prev != NONE)
                sp->entities[e->lru_prev].lru_next = e->lru_next;
        else
                sp->lru_head = e->lru_next;
        if (e->lru_next != NONE)
                sp->entities[e->lru_next].lru_prev = e->lru_prev;
        else
                sp->lru_tail = e->lru_prev;
        e->lru_prev = e->lru_next = NONE;
}

static void lru_append(tg_sparkplug_t *sp, uint32_t i) {
        struct entity *e = &sp->entities[i];

        e->lru_next = NONE;
        e->lru_prev = sp->lru_tail;
        if (sp->lru_tail != NONE)
                sp->entities[sp->lru_tail].lru_next = i;
        else
                sp->lru_head = i;
        sp->lru_tail = i;
}

/* Entry @p i was named by a message: if not alive, it is now the most
 * recently seen. */
static void entity_seen(tg_sparkplug_t *sp, uint32_t i) {
        if (i == NONE || sp->entities[i].born || sp->lru_tail == i)
                return;
        lru_remove(sp, i);
        lru_append(sp, i);
}

/* Alive (born) or not: on the LRU list exactly when not. */
static void set_born(tg_sparkplug_t *sp, uint32_t i, int born) {
        struct entity *e = &sp->entities[i];

        if (!born == !e->born) {
                if (!born)
                        entity_seen(sp, i);
                return;
        }
        e->born = (uint8_t)!!born;
        if (born)
                lru_remove(sp, i);
        else
                lru_append(sp, i);
}

/* --- the name pool: a buddy allocator of 16 << k bytes, k = 0..3 --------- */

#define UNIT 16u
#define ORDERS 4

struct fblock { /* at the start of a free block */
        uint32_t prev, next;      /* units; NONE */
        uint8_t order;
};

static struct fblock *fb(const tg_sparkplug_t *sp, uint32_t u) {
        return (struct fblock *)(void *)(sp->names + (size_t)u * UNIT);
}

static int map_get(const tg_sparkplug_t *sp, uint32_t u) {
        return sp->name_map[u >> 3] >> (u & 7) & 1;
}

static void map_set(tg_sparkplug_t *sp, uint32_t u, int v) {
        if (v)
                sp->name_map[u >> 3] |= (uint8_t)(1u << (u & 7));
        else
                sp->name_map[u >> 3] &= (uint8_t) ~(1u << (u & 7));
}

static void pool_push(tg_sparkplug_t *sp, uint32_t u, unsigned k) {
        struct fblock *b = fb(sp, u);

        b->order = (uint8_t)k;
        b->prev = NONE;
        b->next = sp->name_free[k];
        if (b->next != NONE)
                fb(sp, b->next)->prev = u;
        sp->name_free[k] = u;
        map_set(sp, u, 1);
}

static void pool_unlink(tg_sparkplug_t *sp, uint32_t u) {
        struct fblock *b = fb(sp, u);

        if (b->prev != NONE)
                fb(sp, b->prev)->next = b->next;
        else
                sp->name_free[b->order] = b->next;
        if (b->next != NONE)
                fb(sp, b->next)->prev = b->prev;
        map_set(sp, u, 0);
}

static unsigned pool_order(size_t len) {
        unsigned k = 0;

        while ((size_t)UNIT << k < len)
                k++;
        return k;
}

/* Room for a name of @p len (1..128) bytes. @return 0, or -ENOSPC. */
static int pool_alloc(tg_sparkplug_t *sp, size_t len, uint32_t *off) {
        unsigned k = pool_order(len), j = k;
        uint32_t u;

        while (j < ORDERS && sp->name_free[j] == NONE)
                j++;
        if (j == ORDERS)
                return -ENOSPC;
        u = sp->name_free[j];
        pool_unlink(sp, u);
        while (j > k) { /* split: the upper half stays free */
                j--;
                pool_push(sp, u + (1u << j), j);
        }
        *off = u * UNIT;
        return 0;
}

static void pool_free(tg_sparkplug_t *sp, uint32_t off, size_t len) {
        unsigned k = pool_order(len);
        uint32_t u = off / UNIT;

        for (; k + 1 < ORDERS; k++) {
                uint32_t buddy = u ^ (1u << k);

                if (!map_get(sp, buddy) || fb(sp, buddy)->order != k)
                        break;
                pool_unlink(sp, buddy);
                u &= ~(1u << k);
        }
        pool_push(sp, u, k);
}

static const char *name_of(const tg_sparkplug_t *sp, const struct metric *m) {
        return (const char *)sp->names + m->name_off;
}

static void chain_unlink(uint32_t *head, struct metric *m, uint32_t i, int by_alias) {
        uint32_t *p = head;

        while (*p != NONE && *p != i)
                p = by_alias ? &m[*p].next_alias : &m[*p].next_name;
        if (*p == i)
                *p = by_alias ? m[i].next_alias : m[i].next_name;
}

/* Forget every metric entity @p ei's birth named. */
static void metrics_free(tg_sparkplug_t *sp, uint32_t ei) {
        struct entity *e = &sp->entities[ei];
        uint32_t i = e->metrics, next;

        for (; i != NONE; i = next) {
                struct metric *m = &sp->metrics[i];

                next = m->next_owner;
                if (m->has_alias)
                        chain_unlink(&sp->alias_buckets[hash_pair(sp, ei, &m->alias, 8) &
                                                        sp->metric_mask],
                                     sp->metrics, i, 1);
                if (m->name_len != NAME_UNKNOWN) {
                        chain_unlink(&sp->name_buckets[hash_pair(sp, ei, name_of(sp, m),
                                                                 m->name_len) &
                                                       sp->metric_mask],
                                     sp->metrics, i, 0);
                        if (m->name_len)
                                pool_free(sp, m->name_off, m->name_len);
                }
                m->owner = NONE;
                m->next_owner = sp->metric_free;
                sp->metric_free = i;
                sp->nmetrics--;
        }
        e->metrics = NONE;
        e->nmetrics = 0;
        e->overflow = 0;
}

/* --- entries ------------------------------------------------------------ */

/* Give slot @p i back: out of its chain, its node's list, the LRU list. */
static void entity_free(tg_sparkplug_t *sp, uint32_t i) {
        struct entity *e = &sp->entities[i];
        uint32_t *p = &sp->ent_buckets[tg_hash_keyed(sp->key, e->id, e->id_len) & sp->ent_mask];

        metrics_free(sp, i);
        while (*p != NONE && *p != i)
                p = &sp->entities[*p].next;
        if (*p == i)
                *p = e->next;
        if (e->is_device) {
                struct entity *n = &sp->entities[e->node];

                if (e->dev_prev != NONE)
                        sp->entities[e->dev_prev].dev_next = e->dev_next;
                else
                        n->dev_first = e->dev_next;
                if (e->dev_next != NONE)
                        sp->entities[e->dev_next].dev_prev = e->dev_prev;
        }
        if (!e->born)
                lru_remove(sp, i);
        e->id_len = 0;
        e->next = sp->ent_free;
        sp->ent_free = i;
        sp->nentities--;
}

/* The least recently seen entry that is not alive, and a node's devices
 * with it (none of them is alive: a device lives only while its node does). */
static void evict(tg_sparkplug_t *sp) {
        uint32_t i = sp->lru_head;
        struct entity *e = &sp->entities[i];

        if (!e->is_device)
                while (e->dev_first != NONE) {
                        entity_free(sp, e->dev_first);
                        sp->c.evictions++;
                }
        entity_free(sp, i);
        sp->c.evictions++;
}

/* A new entry, not alive (on the LRU list, most recent), for @p id; a
 * device's under node @p node (alive). @return NONE when every entry is. */
static uint32_t entity_add(tg_sparkplug_t *sp, const char *id, size_t len, uint32_t node) {
        uint32_t b, i;
        struct entity *e;

        if (sp->ent_free == NONE && sp->lru_head != NONE)
                evict(sp);
        if ((i = sp->ent_free) == NONE)
                return NONE;
        e = &sp->entities[i];
        sp->ent_free = e->next;
        sp->nentities++;
        b = (uint32_t)(tg_hash_keyed(sp->key, id, len) & sp->ent_mask);
        memset(e, 0, sizeof(*e));
        memcpy(e->id, id, len);
        e->id[len] = '\0';
        e->id_len = (uint16_t)len;
        e->node = node == NONE ? i : node;
        e->metrics = NONE;
        e->dev_first = e->dev_prev = e->dev_next = NONE;
        e->last_rebirth_ms = INT64_MIN;
        e->next = sp->ent_buckets[b];
        sp->ent_buckets[b] = i;
        if (node != NONE) {
                struct entity *n = &sp->entities[node];

                e->is_device = 1;
                e->dev_next = n->dev_first;
                if (n->dev_first != NONE)
                        sp->entities[n->dev_first].dev_prev = i;
                n->dev_first = i;
        }
        lru_append(sp, i);
        return i;
}

/* A node's devices are not alive any more, and forget their metrics. */
static void devices_void(tg_sparkplug_t *sp, uint32_t ni) {
        uint32_t d;

        for (d = sp->entities[ni].dev_first; d != NONE; d = sp->entities[d].dev_next) {
                set_born(sp, d, 0);
                metrics_free(sp, d);
        }
}

static uint32_t metric_by_alias(const tg_sparkplug_t *sp, uint32_t ei, uint64_t alias) {
        uint32_t i = sp->alias_buckets[hash_pair(sp, ei, &alias, 8) & sp->metric_mask];

        for (; i != NONE; i = sp->metrics[i].next_alias)
                if (sp->metrics[i].owner == ei && sp->metrics[i].alias == alias)
                        return i;
        return NONE;
}

static uint32_t metric_by_name(const tg_sparkplug_t *sp, uint32_t ei, const char *name,
                               size_t len) {
        uint32_t i;

        if (len > NAME_MAX_SP)
                return NONE;
        i = sp->name_buckets[hash_pair(sp, ei, name, len) & sp->metric_mask];
        for (; i != NONE; i = sp->metrics[i].next_name)
                if (sp->metrics[i].owner == ei && sp->metrics[i].name_len == len &&
                    !memcmp(name_of(sp, &sp->metrics[i]), name, len))
                        return i;
        return NONE;
}

/* Remember a metric a birth named. @return 0, or -ENOSPC (no entry, or no
 * room for its name). */
static int metric_add(tg_sparkplug_t *sp, uint32_t ei, const char *name, size_t name_len,
                      int has_alias, uint64_t alias, uint32_t datatype) {
        struct entity *e = &sp->entities[ei];
        int named = name && name_len <= NAME_MAX_SP && tg_text_valid(name, name_len);
        uint8_t dt = datatype > DT_CLAMP ? DT_CLAMP : (uint8_t)datatype;
        uint32_t i = NONE, off = 0;
        struct metric *m;

        /* A birth naming a metric twice: the later one holds. */
        if (has_alias)
                i = metric_by_alias(sp, ei, alias);
        if (i == NONE && named)
                i = metric_by_name(sp, ei, name, name_len);
        if (i != NONE) {
                m = &sp->metrics[i];
                m->datatype = dt;
                return 0;
        }
        if (!named && !has_alias)
                return 0; /* nothing to find it by */
        if ((i = sp->metric_free) == NONE)
                return -ENOSPC;
        if (named && name_len && pool_alloc(sp, name_len, &off))
                return -ENOSPC;
        m = &sp->metrics[i];
        sp->metric_free = m->next_owner;
        sp->nmetrics++;
        m->owner = ei;
        m->next_owner = e->metrics;
        e->metrics = i;
        e->nmetrics++;
        m->datatype = dt;
        m->has_alias = (uint8_t)!!has_alias;
        m->alias = has_alias ? alias : 0;
        m->next_alias = m->next_name = NONE;
        m->name_off = off;
        if (named) {
                uint32_t b = (uint32_t)(hash_pair(sp, ei, name, name_len) & sp->metric_mask);

                memcpy(sp->names + off, name, name_len);
                m->name_len = (uint8_t)name_len;
                m->next_name = sp->name_buckets[b];
                sp->name_buckets[b] = i;
        } else {
                m->name_len = NAME_UNKNOWN;
        }
        if (has_alias) {
                uint32_t b = (uint32_t)(hash_pair(sp, ei, &alias, 8) & sp->metric_mask);

                m->next_alias = sp->alias_buckets[b];
                sp->alias_buckets[b] = i;
        }
        return 0;
}

static void tables_clear(tg_sparkplug_t *sp) {
        uint32_t i, u, units = (uint32_t)(sp->names_size / UNIT);

        memset(sp->ent_buckets, 0xff, ((size_t)sp->ent_mask + 1) * sizeof(uint32_t));
        memset(sp->alias_buckets, 0xff, ((size_t)sp->metric_mask + 1) * sizeof(uint32_t));
        memset(sp->name_buckets, 0xff, ((size_t)sp->metric_mask + 1) * sizeof(uint32_t));
        sp->nentities = 0;
        for (i = 0; i < sp->conf.max_nodes; i++) {
                sp->entities[i].id_len = 0;
                sp->entities[i].next = i + 1 < sp->conf.max_nodes ? i + 1 : NONE;
        }
        sp->ent_free = 0;
        sp->lru_head = sp->lru_tail = NONE;
        for (i = 0; i < sp->conf.max_metrics; i++) {
                sp->metrics[i].owner = NONE;
                sp->metrics[i].next_owner = i + 1 < sp->conf.max_metrics ? i + 1 : NONE;
        }
        sp->metric_free = sp->conf.max_metrics ? 0 : NONE;
        sp->nmetrics = 0;
        /* The pool: every 128-byte block free, in address order. */
        memset(sp->name_map, 0, ((size_t)units + 7) / 8);
        for (i = 0; i < ORDERS; i++)
                sp->name_free[i] = NONE;
        for (u = units; u >= 1u << (ORDERS - 1);) {
                u -= 1u << (ORDERS - 1);
                pool_push(sp, u, ORDERS - 1);
        }
}

tg_sparkplug_t *tg_sparkplug_new(const struct tg_sparkplug_conf *conf, char *errstr,
                                 size_t errstr_size) {
        tg_sparkplug_t *sp;
        size_t eb, mb;

        if (!conf->max_nodes || !conf->max_metrics || conf->max_nodes > (1u << 24) ||
            conf->max_metrics > (1u << 26) || conf->name_bytes > ((size_t)1 << 32)) {
                snprintf(errstr, errstr_size,
                         "sparkplug.max_nodes, sparkplug.max_metrics and sparkplug.name_bytes: "
                         "1..2^24, 1..2^26 and 0..2^32");
                return NULL;
        }
        if (!(sp = calloc(1, sizeof(*sp)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        sp->conf = *conf;
        if (!sp->conf.max_payload)
                sp->conf.max_payload = TG_PAYLOAD_MAX;
        sp->arena_size = conf->arena_bytes ? conf->arena_bytes : 32 * sp->conf.max_payload;
        if (!conf->arena_bytes && sp->arena_size < ((size_t)1 << 20))
                sp->arena_size = (size_t)1 << 20;
        sp->ent_mask = pow2_at_least(2 * (uint64_t)conf->max_nodes) - 1;
        sp->metric_mask = pow2_at_least(conf->max_metrics) - 1;
        /* The names: 0 is NAME_POOL_DEFAULT bytes a metric, in whole 128-byte blocks. */
        sp->names_size = conf->name_bytes ? conf->name_bytes
                                          : (size_t)conf->max_metrics * NAME_POOL_DEFAULT;
        sp->names_size = (sp->names_size + 127) / 128 * 128;
        eb = ((size_t)sp->ent_mask + 1) * sizeof(uint32_t);
        mb = ((size_t)sp->metric_mask + 1) * sizeof(uint32_t);
        sp->entities = calloc(conf->max_nodes, sizeof(*sp->entities));
        sp->ent_buckets = malloc(eb);
        sp->metrics = calloc(conf->max_metrics, sizeof(*sp->metrics));
        sp->alias_buckets = malloc(mb);
        sp->name_buckets = malloc(mb);
        sp->arena = malloc(sp->arena_size);
        sp->names = malloc(sp->names_size);
        sp->name_map = malloc(sp->names_size / UNIT / 8 + 1);
        if (!sp->entities || !sp->ent_buckets || !sp->metrics || !sp->alias_buckets ||
            !sp->name_buckets || !sp->arena || !sp->names || !sp->name_map) {
                snprintf(errstr, errstr_size, "out of memory for the Sparkplug tables");
                tg_sparkplug_destroy(sp);
                return NULL;
        }
        if (tg_hash_key_random(sp->key)) {
                snprintf(errstr, errstr_size, "no random hash key (getrandom)");
                tg_sparkplug_destroy(sp);
                return NULL;
        }
        sp->memory = sizeof(*sp) + conf->max_nodes * sizeof(*sp->entities) + eb +
                     conf->max_metrics * sizeof(*sp->metrics) + 2 * mb + sp->names_size +
                     sp->names_size / UNIT / 8 + 1 + sp->arena_size;
        sp->alloc.alloc = arena_alloc;
        sp->alloc.free = arena_free;
        sp->alloc.allocator_data = sp;
        tables_clear(sp);
        return sp;
}

void tg_sparkplug_destroy(tg_sparkplug_t *sp) {
        if (!sp)
                return;
        free(sp->entities);
        free(sp->ent_buckets);
        free(sp->metrics);
        free(sp->alias_buckets);
        free(sp->name_buckets);
        free(sp->arena);
        free(sp->names);
        free(sp->name_map);
        free(sp);
}

size_t tg_sparkplug_memory(const tg_sparkplug_t *sp) {
        return sp->memory;
}

size_t tg_sparkplug_name_bytes(const tg_sparkplug_t *sp) {
        return sp->names_size;
}

int tg_sparkplug_set_hash_key(tg_sparkplug_t *sp, const unsigned char key[16]) {
        if (sp->nentities)
                return -EBUSY;
        memcpy(sp->key, key, TG_HASH_KEY_BYTES);
        return 0;
}

/* --- topics ------------------------------------------------------------- */

static int level_ok(const char *s, size_t n) {
        return n && n < 64 && !memchr(s, '+', n) && !memchr(s, '#', n) && tg_text_valid(s, n);
}

/* spBv1.0/G/TYPE/N[/D] or spBv1.0/STATE/H. @return 0 or -1. */
static int parse_topic(tg_sparkplug_t *sp, const char *topic) {
        const char *lv[5];
        size_t ln[5], n = 0;
        const char *p;
        int t;

        if (strncmp(topic, NS, strlen(NS)))
                return -1;
        p = topic + strlen(NS);
        for (;;) {
                const char *slash = strchr(p, '/');

                if (n == 5)
                        return -1;
                lv[n] = p;
                ln[n] = slash ? (size_t)(slash - p) : strlen(p);
                n++;
                if (!slash)
                        break;
                p = slash + 1;
        }
        if (n == 2 && ln[0] == 5 && !memcmp(lv[0], "STATE", 5)) {
                sp->type = TG_SP_STATE;
                return 0;
        }
        if (n < 3)
                return -1;
        for (t = 0; t < TG_SP_STATE; t++)
                if (ln[1] == strlen(type_names[t]) && !memcmp(lv[1], type_names[t], ln[1]))
                        break;
        if (t == TG_SP_STATE)
                return -1;
        sp->type = (enum tg_sp_type)t;
        sp->has_device = t == TG_SP_DBIRTH || t == TG_SP_DDATA || t == TG_SP_DDEATH ||
                         t == TG_SP_DCMD;
        if (n != (size_t)(sp->has_device ? 4 : 3))
                return -1;
        if (!level_ok(lv[0], ln[0]) || !level_ok(lv[2], ln[2]) ||
            (sp->has_device && !level_ok(lv[3], ln[3])))
                return -1;
        memcpy(sp->group_name, lv[0], ln[0]);
        sp->group_len = ln[0];
        memcpy(sp->node_name, lv[2], ln[2]);
        sp->node_len = ln[2];
        sp->device_len = 0;
        if (sp->has_device) {
                memcpy(sp->device_name, lv[3], ln[3]);
                sp->device_len = ln[3];
        }
        return 0;
}

/* --- values ------------------------------------------------------------- */

/* The metric's value as a field's, when it is a number the datatype says it is. */
static int numeric_value(const Metric *m, uint32_t dt, double *out) {
        uint64_t v;

        if (m->has_is_null && m->is_null)
                return 0;
        switch (dt) {
        case DT_INT8: case DT_INT16: case DT_INT32: case DT_INT64:
        case DT_UINT8: case DT_UINT16: case DT_UINT32: case DT_UINT64:
                if (m->value_case == VC(INT_VALUE))
                        v = m->int_value;
                else if (m->value_case == VC(LONG_VALUE))
                        v = m->long_value;
                else
                        return 0;
                switch (dt) {
                case DT_INT8: *out = (int8_t)(uint8_t)v; break;
                case DT_INT16: *out = (int16_t)(uint16_t)v; break;
                case DT_INT32: *out = (int32_t)(uint32_t)v; break;
                case DT_INT64: *out = (double)(int64_t)v; break;
                case DT_UINT8: *out = (uint8_t)v; break;
                case DT_UINT16: *out = (uint16_t)v; break;
                case DT_UINT32: *out = (uint32_t)v; break;
                default: *out = (double)v; break;
                }
                return 1;
        case DT_FLOAT:
        case DT_DOUBLE:
                if (m->value_case == VC(FLOAT_VALUE))
                        *out = m->float_value;
                else if (m->value_case == VC(DOUBLE_VALUE))
                        *out = m->double_value;
                else
                        return 0;
                return *out - *out == 0; /* finite */
        case DT_BOOLEAN:
                if (m->value_case != VC(BOOLEAN_VALUE))
                        return 0;
                *out = m->boolean_value ? 1.0 : 0.0;
                return 1;
        default:
                return 0;
        }
}

/* Control metrics a node sends about itself, never fields (6.3). */
static int is_control(const char *name, size_t len) {
        return (len == 5 && !memcmp(name, "bdSeq", 5)) ||
               (len >= 13 && !memcmp(name, "Node Control/", 13)) ||
               (len >= 15 && !memcmp(name, "Device Control/", 15));
}

static int64_t ts_of(uint64_t t) {
        return t > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* --- one message -------------------------------------------------------- */

/* The message's first anomaly names its dead letter; later ones are counted
 * by their callers only. */
static void __attribute__((format(printf, 3, 0)))
vnote(struct tg_sp_message *out, enum tg_sp_reason r, const char *fmt, va_list ap) {
        if (out->reason == TG_SP_OK) {
                out->reason = r;
                vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
        }
}

static enum tg_sp_reason __attribute__((format(printf, 3, 4)))
note(struct tg_sp_message *out, enum tg_sp_reason r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vnote(out, r, fmt, ap);
        va_end(ap);
        return r;
}

static enum tg_sp_reason __attribute__((format(printf, 4, 5)))
refuse(tg_sparkplug_t *sp, struct tg_sp_message *out, enum tg_sp_reason r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vnote(out, r, fmt, ap);
        va_end(ap);
        out->refused = 1;
        sp->c.anomalies[out->reason]++;
        sp->payload = NULL;
        return out->reason;
}

/* A rebirth of node @p ni, if the rate limit lets one go now. */
static void want_rebirth(tg_sparkplug_t *sp, uint32_t ni, int64_t now,
                         struct tg_sp_message *out) {
        struct entity *n;

        if (sp->conf.rebirth_interval_ms < 0 || out->rebirth)
                return;
        if (ni == NONE) {
                sp->c.rebirths_limited++; /* no room to remember the request */
                return;
        }
        n = &sp->entities[ni];
        if (n->last_rebirth_ms != INT64_MIN && now >= n->last_rebirth_ms &&
            now - n->last_rebirth_ms < sp->conf.rebirth_interval_ms) {
                sp->c.rebirths_limited++;
                return;
        }
        /* All nodes together, too: a flood of made-up node ids must not
         * make the gateway flood the broker with requests. */
        if (now / 1000 != sp->rebirth_second) {
                sp->rebirth_second = now / 1000;
                sp->rebirths_in_second = 0;
        }
        if (sp->rebirths_in_second >= TG_SP_REBIRTHS_PER_S) {
                sp->c.rebirths_limited++;
                return;
        }
        sp->rebirths_in_second++;
        n->last_rebirth_ms = now;
        out->rebirth = 1;
        snprintf(out->rebirth_topic, sizeof(out->rebirth_topic), NS "%.*s/NCMD/%.*s",
                 (int)sp->group_len, sp->group_name, (int)sp->node_len, sp->node_name);
        sp->c.rebirths_requested++;
}

/* The seq check (6.2) against node @p n; NDEATH has none. */
static void check_seq(tg_sparkplug_t *sp, struct entity *n, uint32_t ni, int64_t now,
                      struct tg_sp_message *out) {
        const Payload *p = sp->payload;

        if (!p->has_seq)
                return;
        if (n->has_seq && (p->seq > 255 || p->seq != (uint64_t)((n->seq + 1) & 255))) {
                char what[64];

                snprintf(what, sizeof(what), "%u, got %llu", (n->seq + 1) & 255,
                         (unsigned long long)p->seq);
                note(out, TG_SP_SEQ_GAP, "seq gap: expected %s", what);
                want_rebirth(sp, ni, now, out);
        }
        n->has_seq = 1;
        n->seq = (uint8_t)(p->seq & 255);
}

static int find_bdseq(const Payload *p, uint64_t *out) {
        size_t i;

        for (i = 0; i < p->n_metrics; i++) {
                const Metric *m = p->metrics[i];

                if (m->name && !strcmp(m->name, "bdSeq")) {
                        if (m->value_case == VC(LONG_VALUE))
                                *out = m->long_value;
                        else if (m->value_case == VC(INT_VALUE))
                                *out = m->int_value;
                        else
                                return 0;
                        return 1;
                }
        }
        return 0;
}

/* The id "G/N" or "G/N/D" into @p id (TG_SENSOR_ID_MAX + 1 bytes), once
 * per message: copied, not printed. @return its length, 0 if too long. */
static size_t make_id(const tg_sparkplug_t *sp, int device, char *id) {
        size_t n = sp->group_len + 1 + sp->node_len + (device ? 1 + sp->device_len : 0);

        if (n > TG_SENSOR_ID_MAX)
                return 0;
        memcpy(id, sp->group_name, sp->group_len);
        id[sp->group_len] = '/';
        memcpy(id + sp->group_len + 1, sp->node_name, sp->node_len);
        if (device) {
                id[sp->group_len + 1 + sp->node_len] = '/';
                memcpy(id + sp->group_len + 2 + sp->node_len, sp->device_name, sp->device_len);
        }
        id[n] = '\0';
        return n;
}

/* Births name their metrics: remember them for @p ei. */
static void remember_metrics(tg_sparkplug_t *sp, uint32_t ei, struct tg_sp_message *out) {
        const Payload *p = sp->payload;
        size_t i;

        metrics_free(sp, ei);
        for (i = 0; i < p->n_metrics; i++) {
                const Metric *m = p->metrics[i];

                if (metric_add(sp, ei, m->name, m->name ? strlen(m->name) : 0, m->has_alias,
                               m->alias, m->has_datatype ? m->datatype : DT_UNKNOWN)) {
                        sp->entities[ei].overflow = 1;
                        note(out, TG_SP_TABLE_FULL,
                             "%s: no room for its metrics (sparkplug.max_metrics)",
                             sp->entities[ei].id);
                }
        }
}

/* A slot of the message's open-addressed table of readings by key. */
struct gslot {
        uint32_t group; /* NONE: empty */
};

/* The message's work memory, from the arena, before any state changes:
 * a payload whose work does not fit is refused as too_large. */
static int plan(tg_sparkplug_t *sp) {
        size_t m = sp->payload->n_metrics ? sp->payload->n_metrics : 1;

        sp->mi = arena_alloc(sp, m * sizeof(*sp->mi));
        sp->groups = arena_alloc(sp, m * sizeof(*sp->groups));
        sp->ngroups = 0;
        sp->cursor = 0;
        return sp->mi && sp->groups ? 0 : -1;
}

/* (Re)allocated per message in plan(): kept here for place(). */
struct place_ctx {
        struct gslot *tab;
        size_t cap;
        char *names;
};

static uint32_t group_for(tg_sparkplug_t *sp, struct place_ctx *pc, const char *sensor,
                          size_t len, int64_t ts, int from_arrival, int want_field) {
        unsigned char key[TG_SENSOR_ID_MAX + 8];
        uint64_t h;
        size_t b;
        struct group *g;

        memcpy(key, sensor, len);
        memcpy(key + len, &ts, 8);
        h = tg_hash_keyed(sp->key, key, len + 8);
        for (b = h & (pc->cap - 1);; b = (b + 1) & (pc->cap - 1)) {
                uint32_t gi = pc->tab[b].group;

                if (gi == NONE)
                        break;
                g = &sp->groups[gi];
                if (g->ts == ts && g->sensor_len == len && !memcmp(g->sensor, sensor, len)) {
                        if (want_field && g->nfields == TG_READING_FIELDS_MAX)
                                break; /* full: a new reading of the same key */
                        return gi;
                }
        }
        /* A new group; a full one's slot points to its successor. */
        {
                uint32_t gi = (uint32_t)sp->ngroups++;

                g = &sp->groups[gi];
                g->sensor = sensor;
                g->sensor_len = (uint16_t)len;
                g->ts = ts;
                g->from_arrival = (uint8_t)from_arrival;
                g->nfields = 0;
                g->first = g->last = NONE;
                pc->tab[b].group = gi;
                return gi;
        }
}

static void group_append(tg_sparkplug_t *sp, uint32_t gi, uint32_t mi) {
        struct group *g = &sp->groups[gi];

        sp->mi[mi].group = gi;
        sp->mi[mi].next = NONE;
        if (g->last == NONE)
                g->first = mi;
        else
                sp->mi[g->last].next = mi;
        g->last = mi;
}

/* Every metric of the message to its reading; @p owner NONE: no state. */
static void place(tg_sparkplug_t *sp, struct place_ctx *pc, uint32_t owner,
                  struct tg_sp_message *out, int64_t arrival_ms) {
        const Payload *p = sp->payload;
        const struct entity *e = owner != NONE ? &sp->entities[owner] : NULL;
        char base[TG_SENSOR_ID_MAX + 1];
        size_t blen = make_id(sp, sp->has_device, base), i;

        for (i = 0; i < p->n_metrics; i++) {
                const Metric *m = p->metrics[i];
                struct minfo *x = &sp->mi[i];
                uint32_t k = NONE, gi;
                int64_t ts;
                int from_arrival = 0;
                const char *sensor = e ? e->id : base;
                size_t slen = e ? e->id_len : blen;

                memset(x, 0, sizeof(*x));
                x->group = NONE;
                x->datatype = m->has_datatype ? m->datatype : DT_UNKNOWN;
                if (m->name) {
                        x->name = m->name;
                        x->name_len = strlen(m->name);
                        if (e && !m->has_datatype)
                                k = metric_by_name(sp, owner, x->name, x->name_len);
                } else if (m->has_alias && e) {
                        k = metric_by_alias(sp, owner, m->alias);
                        if (k == NONE) {
                                char a[24];

                                x->unknown_alias = 1;
                                snprintf(a, sizeof(a), "%llu", (unsigned long long)m->alias);
                                note(out, e->overflow ? TG_SP_TABLE_FULL : TG_SP_UNKNOWN_ALIAS,
                                     "unknown alias %s", a);
                        }
                }
                if (k != NONE) {
                        const struct metric *r = &sp->metrics[k];

                        if (!x->name && r->name_len != NAME_UNKNOWN) {
                                x->name = name_of(sp, r);
                                x->name_len = r->name_len;
                        }
                        if (!m->has_datatype)
                                x->datatype = r->datatype;
                }
                if (m->has_timestamp)
                        ts = ts_of(m->timestamp);
                else if (p->has_timestamp)
                        ts = ts_of(p->timestamp);
                else {
                        ts = arrival_ms;
                        from_arrival = 1;
                }
                x->numeric = (uint8_t)numeric_value(m, x->datatype, &x->value);
                if (x->numeric && (!x->name || !x->name_len || !tg_text_valid(x->name, x->name_len) ||
                                   is_control(x->name, x->name_len)))
                        x->numeric = 0;
                if (sp->conf.sensor_per_metric) {
                        /* Each metric its own sensor, numeric or not; one
                         * whose name cannot make an id stays the device's. */
                        char *s = pc->names + i * (TG_SENSOR_ID_MAX + 1);

                        if (x->name && x->name_len && slen + 1 + x->name_len <= TG_SENSOR_ID_MAX &&
                            tg_text_valid(x->name, x->name_len)) {
                                memcpy(s, sensor, slen);
                                s[slen] = '/';
                                memcpy(s + slen + 1, x->name, x->name_len);
                                sensor = s;
                                slen += 1 + x->name_len;
                        } else if (x->numeric) {
                                x->numeric = 0;
                                sp->c.names_too_long++;
                        }
                } else if (x->numeric && x->name_len > TG_FIELD_NAME_MAX) {
                        x->numeric = 0;
                        sp->c.names_too_long++;
                }
                gi = group_for(sp, pc, sensor, slen, ts, from_arrival, x->numeric);
                if (x->numeric) {
                        struct group *g = &sp->groups[gi];
                        const char *fname = sp->conf.sensor_per_metric ? "value" : x->name;
                        size_t flen = sp->conf.sensor_per_metric ? 5 : x->name_len;
                        uint16_t f;

                        for (f = 0; f < g->nfields; f++) {
                                const struct minfo *o = &sp->mi[g->field[f]];
                                const char *on = sp->conf.sensor_per_metric ? "value" : o->name;
                                size_t ol = sp->conf.sensor_per_metric ? 5 : o->name_len;

                                if (ol == flen && !memcmp(on, fname, flen))
                                        break;
                        }
                        if (f < g->nfields)
                                x->numeric = 0; /* the same field twice at one time */
                        else
                                g->field[g->nfields++] = (uint32_t)i;
                }
                if (!x->numeric) {
                        out->metrics_raw_only++;
                        sp->c.metrics_raw_only++;
                }
                group_append(sp, gi, (uint32_t)i);
        }
        out->readings = sp->ngroups;
}

enum tg_sp_reason tg_sparkplug_decode(tg_sparkplug_t *sp, const char *topic,
                                      const void *payload, size_t len, int64_t arrival_ms,
                                      struct tg_sp_message *out) {
        struct place_ctx pc;
        char id[TG_SENSOR_ID_MAX + 1];
        size_t idlen, cap = 16;
        uint32_t ni, di, owner;
        struct entity *n, *d;
        enum tg_sp_type t;

        memset(out, 0, sizeof(*out));
        sp->payload = NULL;
        sp->ngroups = sp->cursor = 0;
        sp->arena_used = 0;
        sp->arena_exhausted = 0;
        out->ts_ms = sp->arrival_ms = arrival_ms;
        if (parse_topic(sp, topic)) {
                out->type = TG_SP_STATE; /* counted nowhere as a type */
                note(out, TG_SP_BAD_TOPIC, "topic %.80s is not a Sparkplug B topic", topic);
                out->refused = 1;
                sp->c.anomalies[TG_SP_BAD_TOPIC]++;
                return out->reason;
        }
        t = out->type = sp->type;
        sp->c.messages[t]++;
        if (t == TG_SP_STATE || t == TG_SP_NCMD || t == TG_SP_DCMD)
                return TG_SP_OK; /* ignored, counted */
        if (!(idlen = make_id(sp, sp->has_device, id)))
                return refuse(sp, out, TG_SP_BAD_TOPIC,
                              "%s: group/node/device longer than a sensor id (64 bytes)",
                              type_names[t]);
        if (len > sp->conf.max_payload)
                return refuse(sp, out, TG_SP_TOO_LARGE, "%s payload over limits.payload",
                              type_names[t]);
        sp->payload = tumblegate__sparkplug__payload__unpack(&sp->alloc, len, payload);
        if (!sp->payload)
                return refuse(sp, out, sp->arena_exhausted ? TG_SP_TOO_LARGE : TG_SP_NOT_DECODABLE,
                              "%s payload not decodable", type_names[t]);
        if (sp->payload->has_timestamp)
                out->ts_ms = ts_of(sp->payload->timestamp);
        /* The work's memory before any state changes. */
        while (cap < 2 * sp->payload->n_metrics)
                cap <<= 1;
        pc.cap = cap;
        if (plan(sp) || !(pc.tab = arena_alloc(sp, cap * sizeof(*pc.tab))) ||
            (sp->conf.sensor_per_metric &&
             !(pc.names = arena_alloc(sp, (sp->payload->n_metrics + 1) * (TG_SENSOR_ID_MAX + 1)))))
                return refuse(sp, out, TG_SP_TOO_LARGE, "%s: decoded payload over the arena",
                              type_names[t]);
        if (!sp->conf.sensor_per_metric)
                pc.names = NULL;
        memset(pc.tab, 0xff, cap * sizeof(*pc.tab));

        /* The node: its entry, created by its birth (or to remember a rebirth request). */
        {
                char nid[TG_SENSOR_ID_MAX + 1];
                size_t nlen = make_id(sp, 0, nid);

                ni = entity_find(sp, nid, nlen);
                if (ni != NONE)
                        entity_seen(sp, ni);
                else if (t != TG_SP_NDEATH)
                        ni = entity_add(sp, nid, nlen, NONE);
        }
        n = ni != NONE ? &sp->entities[ni] : NULL;
        switch (t) {
        case TG_SP_NBIRTH: {
                if (!n)
                        return refuse(sp, out, TG_SP_TABLE_FULL,
                                      "%s: no room for the edge node (sparkplug.max_nodes)", id);
                /* A new birth voids what the node and its devices said before. */
                devices_void(sp, ni);
                set_born(sp, ni, 1);
                n->has_seq = (uint8_t)(sp->payload->has_seq && sp->payload->seq <= 255);
                n->seq = (uint8_t)sp->payload->seq;
                n->has_bdseq = (uint8_t)find_bdseq(sp->payload, &n->bdseq);
                remember_metrics(sp, ni, out);
                owner = ni;
                break;
        }
        case TG_SP_NDATA:
                if (!n || !n->born) {
                        want_rebirth(sp, ni, arrival_ms, out);
                        return refuse(sp, out, TG_SP_NO_BIRTH, "NDATA from %s before its NBIRTH",
                                      id);
                }
                check_seq(sp, n, ni, arrival_ms, out);
                owner = ni;
                break;
        case TG_SP_NDEATH: {
                uint64_t bd = 0;

                if (!n || !n->born)
                        return refuse(sp, out, TG_SP_NO_BIRTH, "NDEATH of %s, which is not alive",
                                      id);
                sp->has_bdseq = find_bdseq(sp->payload, &bd);
                sp->bdseq = bd;
                if (n->has_bdseq && sp->has_bdseq && bd != n->bdseq)
                        return refuse(sp, out, TG_SP_BDSEQ_MISMATCH,
                                      "NDEATH of %s with another birth's bdSeq: a stale will", id);
                /* The node first on the LRU list, then its devices: the
                 * node, taken, takes them with it. */
                set_born(sp, ni, 0);
                devices_void(sp, ni);
                n->has_seq = 0;
                metrics_free(sp, ni);
                out->death = 1;
                memcpy(out->death_id, n->id, n->id_len + 1u);
                out->death_id_len = n->id_len;
                sp->payload->n_metrics = 0; /* its bdSeq is in the death record */
                owner = NONE;
                break;
        }
        case TG_SP_DBIRTH:
        case TG_SP_DDATA:
        case TG_SP_DDEATH:
                if (!n || !n->born) {
                        want_rebirth(sp, ni, arrival_ms, out);
                        return refuse(sp, out, TG_SP_NO_BIRTH, "%s before its node's NBIRTH",
                                      type_names[t]);
                }
                di = entity_find(sp, id, idlen);
                if (di != NONE)
                        entity_seen(sp, di);
                else if (t == TG_SP_DBIRTH &&
                         (di = entity_add(sp, id, idlen, ni)) == NONE)
                        return refuse(sp, out, TG_SP_TABLE_FULL,
                                      "%s: no room for the device (sparkplug.max_nodes)", id);
                d = di != NONE ? &sp->entities[di] : NULL;
                if (t != TG_SP_DBIRTH && (!d || !d->born)) {
                        check_seq(sp, n, ni, arrival_ms, out);
                        want_rebirth(sp, ni, arrival_ms, out);
                        out->reason = TG_SP_OK; /* no_birth prevails over a gap */
                        return refuse(sp, out, TG_SP_NO_BIRTH, "%s before its DBIRTH",
                                      type_names[t]);
                }
                check_seq(sp, n, ni, arrival_ms, out);
                if (t == TG_SP_DBIRTH) {
                        set_born(sp, di, 1);
                        remember_metrics(sp, di, out);
                } else if (t == TG_SP_DDEATH) {
                        set_born(sp, di, 0);
                        metrics_free(sp, di);
                        out->death = 1;
                        memcpy(out->death_id, d->id, d->id_len + 1u);
                        out->death_id_len = d->id_len;
                        sp->payload->n_metrics = 0;
                }
                owner = t == TG_SP_DDEATH ? NONE : di;
                break;
        default:
                return TG_SP_OK;
        }
        place(sp, &pc, owner, out, arrival_ms);
        if (out->reason == TG_SP_UNKNOWN_ALIAS)
                want_rebirth(sp, ni, arrival_ms, out);
        if (out->reason != TG_SP_OK)
                sp->c.anomalies[out->reason]++;
        return out->reason;
}

size_t tg_sparkplug_readings(tg_sparkplug_t *sp, struct tg_reading *r, size_t cap,
                             size_t *first) {
        size_t k = 0;

        *first = sp->cursor;
        for (; k < cap && sp->cursor < sp->ngroups; k++, sp->cursor++) {
                const struct group *g = &sp->groups[sp->cursor];
                struct tg_reading *o = &r[k];
                uint16_t f;

                tg_reading_clear(o);
                memcpy(o->sensor, g->sensor, g->sensor_len);
                o->sensor[g->sensor_len] = '\0';
                o->sensor_len = g->sensor_len;
                o->ts_ms = g->ts;
                o->ts_from_arrival = g->from_arrival;
                for (f = 0; f < g->nfields; f++) {
                        const struct minfo *x = &sp->mi[g->field[f]];
                        struct tg_field *fl = &o->fields[f];

                        if (sp->conf.sensor_per_metric) {
                                memcpy(fl->name, "value", 6);
                                fl->name_len = 5;
                        } else {
                                memcpy(fl->name, x->name, x->name_len);
                                fl->name[x->name_len] = '\0';
                                fl->name_len = (uint8_t)x->name_len;
                        }
                        fl->unit[0] = '\0';
                        fl->value = x->value;
                }
                o->nfields = g->nfields;
        }
        return k;
}

/* --- records ------------------------------------------------------------ */

static void put_context(const tg_sparkplug_t *sp, struct tg_jw *w) {
        tg_jw_raw(w, "\"sparkplug\":{\"group\":");
        tg_jw_string(w, sp->group_name, sp->group_len);
        tg_jw_raw(w, ",\"node\":");
        tg_jw_string(w, sp->node_name, sp->node_len);
        if (sp->has_device) {
                tg_jw_raw(w, ",\"device\":");
                tg_jw_string(w, sp->device_name, sp->device_len);
        }
        tg_jw_raw(w, ",\"message\":\"");
        tg_jw_raw(w, type_names[sp->type]);
        tg_jw_raw(w, "\"");
}

static void put_value(struct tg_jw *w, const Metric *m, uint32_t dt) {
        if ((m->has_is_null && m->is_null) || m->value_case == VC(_NOT_SET)) {
                tg_jw_raw(w, "null");
                return;
        }
        switch (m->value_case) {
        case VC(INT_VALUE):
        case VC(LONG_VALUE): {
                uint64_t v = m->value_case == VC(INT_VALUE) ? m->int_value : m->long_value;
                char t[24];

                switch (dt) {
                case DT_INT8: tg_jw_int(w, (int8_t)(uint8_t)v); return;
                case DT_INT16: tg_jw_int(w, (int16_t)(uint16_t)v); return;
                case DT_INT32: tg_jw_int(w, (int32_t)(uint32_t)v); return;
                case DT_INT64: tg_jw_int(w, (int64_t)v); return;
                default:
                        snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
                        tg_jw_raw(w, t);
                        return;
                }
        }
        case VC(FLOAT_VALUE):
                tg_jw_double(w, m->float_value);
                return;
        case VC(DOUBLE_VALUE):
                tg_jw_double(w, m->double_value);
                return;
        case VC(BOOLEAN_VALUE):
                tg_jw_raw(w, m->boolean_value ? "true" : "false");
                return;
        case VC(STRING_VALUE): {
                size_t n = strlen(m->string_value);

                if (tg_text_valid(m->string_value, n) || !n)
                        tg_jw_string(w, m->string_value, n);
                else
                        tg_jw_raw(w, "null");
                return;
        }
        case VC(BYTES_VALUE): {
                /* base64 of the bytes, written in place */
                size_t b64 = sodium_base64_ENCODED_LEN(m->bytes_value.len,
                                                       sodium_base64_VARIANT_ORIGINAL);

                if (w->overflow || w->len + b64 + 2 >= w->cap) {
                        tg_jw_raw(w, "\"");
                        w->overflow = 1;
                        return;
                }
                tg_jw_raw(w, "\"");
                sodium_bin2base64(w->buf + w->len, b64, m->bytes_value.data, m->bytes_value.len,
                                  sodium_base64_VARIANT_ORIGINAL);
                w->len += b64 - 1;
                tg_jw_raw(w, "\"");
                return;
        }
        default:
                tg_jw_raw(w, "null"); /* DataSet, Template, extensions */
                return;
        }
}

size_t tg_sparkplug_raw_record(const tg_sparkplug_t *sp, size_t i, const struct tg_reading *r,
                               char *buf, size_t cap) {
        const struct group *g;
        struct tg_jw w;
        uint32_t k;

        if (!sp->payload || i >= sp->ngroups)
                return 0;
        g = &sp->groups[i];
        tg_jw_init(&w, buf, cap);
        tg_jw_raw_record_open(&w, r); /* the raw record of every format (7.1) */
        tg_jw_raw(&w, ",");
        put_context(sp, &w);
        if (sp->payload->has_seq) {
                tg_jw_raw(&w, ",\"seq\":");
                tg_jw_int(&w, (int64_t)(sp->payload->seq > INT64_MAX ? INT64_MAX
                                                                       : sp->payload->seq));
        }
        tg_jw_raw(&w, ",\"metrics\":[");
        for (k = g->first; k != NONE; k = sp->mi[k].next) {
                const struct minfo *x = &sp->mi[k];
                const Metric *m = sp->payload->metrics[k];

                if (k != g->first)
                        tg_jw_raw(&w, ",");
                tg_jw_raw(&w, "{");
                if (x->name && tg_text_valid(x->name, x->name_len)) {
                        tg_jw_raw(&w, "\"name\":");
                        tg_jw_string(&w, x->name, x->name_len);
                        tg_jw_raw(&w, ",");
                }
                if (m->has_alias) {
                        char a[24];

                        snprintf(a, sizeof(a), "%llu", (unsigned long long)m->alias);
                        tg_jw_raw(&w, "\"alias\":");
                        tg_jw_raw(&w, a);
                        tg_jw_raw(&w, ",");
                }
                if (x->unknown_alias)
                        tg_jw_raw(&w, "\"unknown_alias\":true,");
                tg_jw_raw(&w, "\"datatype\":\"");
                tg_jw_raw(&w, tg_sp_datatype_name(x->datatype));
                tg_jw_raw(&w, "\",\"value\":");
                put_value(&w, m, x->datatype);
                if (m->has_is_historical && m->is_historical)
                        tg_jw_raw(&w, ",\"historical\":true");
                tg_jw_raw(&w, "}");
        }
        tg_jw_raw(&w, "]}}");
        return tg_jw_finish(&w);
}

size_t tg_sparkplug_death_record(const tg_sparkplug_t *sp, const char *sensor, size_t len,
                                 char *buf, size_t cap) {
        struct tg_jw w;
        if (!sp->payload)
                return 0;
        tg_jw_init(&w, buf, cap);
        tg_jw_raw(&w, "{\"sensor\":");
        tg_jw_string(&w, sensor, len);
        tg_jw_raw(&w, ",\"ts\":");
        tg_jw_int(&w, sp->payload->has_timestamp ? ts_of(sp->payload->timestamp) : sp->arrival_ms);
        tg_jw_raw(&w, ",");
        put_context(sp, &w);
        if (sp->type == TG_SP_NDEATH && sp->has_bdseq) {
                char t[24];

                snprintf(t, sizeof(t), "%llu", (unsigned long long)sp->bdseq);
                tg_jw_raw(&w, ",\"bdSeq\":");
                tg_jw_raw(&w, t);
        }
        if (sp->type == TG_SP_DDEATH && sp->payload->has_seq) {
                tg_jw_raw(&w, ",\"seq\":");
                tg_jw_int(&w, (int64_t)(sp->payload->seq & 0x7fffffffffffffffULL));
        }
        tg_jw_raw(&w, "}}");
        return tg_jw_finish(&w);
}

size_t tg_sparkplug_rebirth_payload(int64_t now_ms, uint8_t *buf, size_t cap) {
        Payload p = TUMBLEGATE__SPARKPLUG__PAYLOAD__INIT;
        Metric m = TUMBLEGATE__SPARKPLUG__PAYLOAD__METRIC__INIT;
        Metric *ms[1] = {&m};

        m.name = (char *)"Node Control/Rebirth";
        m.has_datatype = 1;
        m.datatype = DT_BOOLEAN;
        m.value_case = VC(BOOLEAN_VALUE);
        m.boolean_value = 1;
        p.has_timestamp = now_ms > 0;
        p.timestamp = (uint64_t)now_ms;
        p.n_metrics = 1;
        p.metrics = ms;
        if (tumblegate__sparkplug__payload__get_packed_size(&p) > cap)
                return 0;
        return tumblegate__sparkplug__payload__pack(&p, buf);
}

void tg_sparkplug_counters(const tg_sparkplug_t *sp, struct tg_sp_counters *out) {
        *out = sp->c;
        out->nodes = sp->nentities;
        out->metrics = sp->nmetrics;
}

/* --- state -------------------------------------------------------------- */

/*
 * Snapshot (little-endian as the host; the window file it rides in is
 * checked by CRC and read on the machine that wrote it):
 *   "TGSPSTAT" u32 version u32 nentities
 *   per entity: u16 id_len, id, u8 is_device born has_seq seq has_bdseq
 *               overflow, u32 node (its place in this list), u64 bdseq,
 *               i64 last_rebirth_ms, u32 nmetrics, then per metric:
 *               u8 has_alias, u64 alias, u32 datatype, u8 name_len
 *               (0xff: none), name
 *
 * The live entries come first, then those not alive from the least to the
 * most recently seen: a restore rebuilds the LRU list from that order.
 * Version 1 as c31feb5 wrote it (entries in the order they were taken,
 * which the LRU list then follows): the bytes mean the same, so the files
 * of either read in the other.
 */
#define SNAP_MAGIC "TGSPSTAT"
#define SNAP_VERSION 1u

static size_t metric_bytes(const struct metric *m) {
        return 1 + 8 + 4 + 1 + (m->name_len == NAME_UNKNOWN ? 0 : m->name_len);
}

/* The entries in the snapshot's order into @p order; @return how many. */
static uint32_t snapshot_order(const tg_sparkplug_t *sp, uint32_t *order) {
        uint32_t i, n = 0;

        for (i = 0; i < sp->conf.max_nodes; i++)
                if (sp->entities[i].id_len && sp->entities[i].born)
                        order[n++] = i;
        for (i = sp->lru_head; i != NONE; i = sp->entities[i].lru_next)
                order[n++] = i;
        return n;
}

int tg_sparkplug_snapshot(const tg_sparkplug_t *sp, void **buf, size_t *len) {
        size_t n = 16, off = 0, block, end;
        uint32_t i, k, count, *order, *place;
        unsigned char *p;

        order = malloc((size_t)sp->conf.max_nodes * sizeof(*order));
        place = malloc((size_t)sp->conf.max_nodes * sizeof(*place));
        if (!order || !place) {
                free(order);
                free(place);
                return -ENOMEM;
        }
        count = snapshot_order(sp, order);
        for (i = 0; i < count; i++) {
                const struct entity *e = &sp->entities[order[i]];

                place[order[i]] = i;
                n += 2 + e->id_len + 6 + 4 + 8 + 8 + 4;
                for (k = e->metrics; k != NONE; k = sp->metrics[k].next_owner)
                        n += metric_bytes(&sp->metrics[k]);
        }
        if (!(p = malloc(n))) {
                free(order);
                free(place);
                return -ENOMEM;
        }
#define PUT(src, k) (memcpy(p + off, (src), (k)), off += (k))
        PUT(SNAP_MAGIC, 8);
        {
                uint32_t v = SNAP_VERSION;

                PUT(&v, 4);
                PUT(&count, 4);
        }
        for (i = 0; i < count; i++) {
                const struct entity *e = &sp->entities[order[i]];
                uint8_t b[6] = {e->is_device, e->born, e->has_seq, e->seq, e->has_bdseq,
                                e->overflow};
                uint32_t node = place[e->node];

                PUT(&e->id_len, 2);
                PUT(e->id, e->id_len);
                PUT(b, 6);
                PUT(&node, 4);
                PUT(&e->bdseq, 8);
                PUT(&e->last_rebirth_ms, 8);
                PUT(&e->nmetrics, 4);
                /* The owner's list is newest first and a restore adds to
                 * its front: written from the block's end backwards, the
                 * metrics come back in the same order. */
                block = 0;
                for (k = e->metrics; k != NONE; k = sp->metrics[k].next_owner)
                        block += metric_bytes(&sp->metrics[k]);
                end = off + block;
                for (k = e->metrics; k != NONE; k = sp->metrics[k].next_owner) {
                        const struct metric *m = &sp->metrics[k];
                        uint32_t dt = m->datatype;
                        size_t save = off;

                        end -= metric_bytes(m);
                        off = end;
                        PUT(&m->has_alias, 1);
                        PUT(&m->alias, 8);
                        PUT(&dt, 4);
                        PUT(&m->name_len, 1);
                        if (m->name_len != NAME_UNKNOWN)
                                PUT(name_of(sp, m), m->name_len);
                        off = save;
                }
                off += block;
        }
#undef PUT
        free(order);
        free(place);
        *buf = p;
        *len = off;
        return 0;
}

static int restore_fail(tg_sparkplug_t *sp, char *errstr, size_t errstr_size, const char *why) {
        tables_clear(sp);
        snprintf(errstr, errstr_size, "Sparkplug state %s", why);
        return -EINVAL;
}

int tg_sparkplug_restore(tg_sparkplug_t *sp, const void *buf, size_t len, char *errstr,
                         size_t errstr_size) {
        const unsigned char *p = buf;
        size_t off = 16;
        uint32_t version, n, i, k;

        tables_clear(sp);
        sp->payload = NULL;
        if (!len)
                return 0;
        if (len < 16 || memcmp(p, SNAP_MAGIC, 8))
                return restore_fail(sp, errstr, errstr_size, "not recognised");
        memcpy(&version, p + 8, 4);
        memcpy(&n, p + 12, 4);
        if (version != SNAP_VERSION)
                return restore_fail(sp, errstr, errstr_size, "of another version");
        if (n > sp->conf.max_nodes)
                return restore_fail(sp, errstr, errstr_size,
                                    "holds more edge nodes and devices than sparkplug.max_nodes");
#define GET(dst, k)                                                                    \
        do {                                                                           \
                if ((k) > len - off)                                                   \
                        return restore_fail(sp, errstr, errstr_size, "truncated");    \
                memcpy((dst), p + off, (k));                                           \
                off += (k);                                                            \
        } while (0)
        /* Entry i takes slot i (the free list is in order after a clear);
         * nodes and lists are linked once all are read. */
        for (i = 0; i < n; i++) {
                uint16_t idl;
                uint8_t b[6];
                uint32_t node, nm, ei;
                char id[TG_SENSOR_ID_MAX + 1];
                struct entity *e;

                GET(&idl, 2);
                if (!idl || idl > TG_SENSOR_ID_MAX)
                        return restore_fail(sp, errstr, errstr_size, "corrupt");
                GET(id, idl);
                if (entity_find(sp, id, idl) != NONE)
                        return restore_fail(sp, errstr, errstr_size, "corrupt");
                ei = entity_add(sp, id, idl, NONE);
                e = &sp->entities[ei];
                lru_remove(sp, ei); /* the lists below */
                GET(b, 6);
                GET(&node, 4);
                if (node >= n || (!b[0] && node != i))
                        return restore_fail(sp, errstr, errstr_size, "corrupt");
                e->is_device = b[0];
                e->born = b[1];
                e->has_seq = b[2];
                e->seq = b[3];
                e->has_bdseq = b[4];
                e->overflow = b[5];
                e->node = node;
                GET(&e->bdseq, 8);
                GET(&e->last_rebirth_ms, 8);
                GET(&nm, 4);
                for (k = 0; k < nm; k++) {
                        uint8_t has_alias, nl;
                        uint64_t alias;
                        uint32_t dt;
                        char name[NAME_MAX_SP + 1];

                        GET(&has_alias, 1);
                        GET(&alias, 8);
                        GET(&dt, 4);
                        GET(&nl, 1);
                        if (nl != NAME_UNKNOWN) {
                                if (nl > NAME_MAX_SP)
                                        return restore_fail(sp, errstr, errstr_size, "corrupt");
                                GET(name, nl);
                        }
                        if (metric_add(sp, ei, nl == NAME_UNKNOWN ? NULL : name,
                                       nl == NAME_UNKNOWN ? 0 : nl, has_alias, alias, dt))
                                return restore_fail(sp, errstr, errstr_size,
                                                    "holds more metrics or metric names than "
                                                    "sparkplug.max_metrics, "
                                                    "sparkplug.name_bytes");
                }
        }
#undef GET
        if (off != len)
                return restore_fail(sp, errstr, errstr_size, "has trailing bytes");
        /* A device under a node, alive only while its node is; the LRU list
         * in the order written. */
        for (i = 0; i < n; i++) {
                struct entity *e = &sp->entities[i];

                if (e->is_device) {
                        struct entity *nd = &sp->entities[e->node];

                        if (nd->is_device || (e->born && !nd->born))
                                return restore_fail(sp, errstr, errstr_size, "corrupt");
                        e->dev_prev = NONE;
                        e->dev_next = nd->dev_first;
                        if (nd->dev_first != NONE)
                                sp->entities[nd->dev_first].dev_prev = i;
                        nd->dev_first = i;
                }
                if (!e->born)
                        lru_append(sp, i);
        }
        return 0;
}
