/* intake.c - taking MQTT messages: spooled before the acknowledgement, redeliveries recognised, a full spool held. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "intake.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "keyed_hash.h"
#include "ledger.h"
#include "log.h"

/* Spooled messages remembered for redeliveries: a broker may resend many
 * thousands after a crash (16 500 seen in test_kill_while_appending). The
 * last RECENT_MAX, exactly: a ring of keys in arrival order, indexed by an
 * open-addressing table of twice as many slots (1 MiB in all). */
#define RECENT_MAX (1u << 16)
#define RECENT_SLOTS (2 * RECENT_MAX)
/* durability memory: records in the sink beyond which messages go to the
 * spool instead (Kafka down or slow), and below which, once the spool is
 * drained, they are handled directly again; at most these, and a fraction
 * of what the sink holds. A crash loses at most the high-water mark. */
#define MEMORY_QUEUE_HIGH 50000
#define MEMORY_QUEUE_LOW 1000

struct tg_intake {
        struct tg_intake_conf conf;
        int high, low;

        /* Messages spooled most recently, to know a broker's redelivery
         * (DUP flag) of one already in the spool: after a crash, the broker
         * resends what it had sent but saw no PUBACK for. A key is a
         * keyed hash of the topic and the payload (recent_keyof()), never 0.
         * The table holds ring index + 1 (0: empty), linear probing. MQTT
         * thread only. */
        unsigned char hash_key[TG_HASH_KEY_BYTES]; /* random per process */
        uint64_t recent[RECENT_MAX];
        uint32_t recent_slot[RECENT_SLOTS];
        uint32_t recent_next;      /* ring position of the next key */
        int recent_full;           /* the ring has wrapped */

        /* Counting a message and appending it happen under count_lock, so
         * that a reader sees both at one instant. Never held across a
         * wait. */
        pthread_mutex_t count_lock;
        struct tg_intake_counts c;

        _Atomic int held;       /* waiting for spool space */
        _Atomic int resumed;    /* ... and just stopped waiting */

        /* durability memory: who has the worker. While spooling, the
         * forwarder; else the MQTT thread, which takes it with a trylock
         * and spools when it cannot. busy tells the forwarder that the
         * MQTT thread is between looking at spooling and appending. */
        _Atomic int spooling;
        _Atomic int busy;
        _Atomic int kafka_behind; /* spooling because the sink was full (logged) */
};

/* SipHash-2-4 under the intake's random key of the topic's and the
 * payload's own SipHashes: both are device-chosen, and with a public
 * function (they were CRCs) a device could fill one slot's probe run, or
 * make a new message pass for a redelivery of another (issue 13). */
static uint64_t recent_keyof(const tg_intake_t *in, const char *topic, size_t topic_len,
                             const void *payload, size_t len) {
        uint64_t parts[2] = {tg_hash_keyed(in->hash_key, topic, topic_len),
                             tg_hash_keyed(in->hash_key, payload, len)};
        uint64_t k = tg_hash_keyed(in->hash_key, parts, sizeof(parts));

        return k ? k : 1;
}

static uint32_t recent_home(uint64_t k) {
        return (uint32_t)((k * 0xff51afd7ed558ccdull) >> 40) & (RECENT_SLOTS - 1);
}

/* Take ring entry r out of the table, shifting the probe run back so that
 * no later entry is cut off from its home slot. */
static void recent_unindex(tg_intake_t *in, uint32_t r) {
        uint32_t i = recent_home(in->recent[r]), j;

        while (in->recent_slot[i] != r + 1)
                i = (i + 1) & (RECENT_SLOTS - 1);
        for (j = i;;) {
                uint32_t h;

                j = (j + 1) & (RECENT_SLOTS - 1);
                if (!in->recent_slot[j])
                        break;
                h = recent_home(in->recent[in->recent_slot[j] - 1]);
                /* j's entry may fill the hole at i unless its home lies in (i, j]. */
                if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
                        in->recent_slot[i] = in->recent_slot[j];
                        i = j;
                }
        }
        in->recent_slot[i] = 0;
}

static void recent_add(tg_intake_t *in, const char *topic, size_t topic_len,
                       const void *payload, size_t len) {
        uint32_t r = in->recent_next, i;

        if (in->recent_full)
                recent_unindex(in, r); /* the oldest goes */
        in->recent[r] = recent_keyof(in, topic, topic_len, payload, len);
        for (i = recent_home(in->recent[r]); in->recent_slot[i]; i = (i + 1) & (RECENT_SLOTS - 1))
                ;
        in->recent_slot[i] = r + 1;
        in->recent_next = (r + 1) % RECENT_MAX;
        in->recent_full |= in->recent_next == 0;
}

static int recent_has(const tg_intake_t *in, const char *topic, size_t topic_len,
                      const void *payload, size_t len) {
        uint64_t k = recent_keyof(in, topic, topic_len, payload, len);
        uint32_t i;

        for (i = recent_home(k); in->recent_slot[i]; i = (i + 1) & (RECENT_SLOTS - 1))
                if (in->recent[in->recent_slot[i] - 1] == k)
                        return 1;
        return 0;
}

tg_intake_t *tg_intake_new(const struct tg_intake_conf *conf) {
        tg_intake_t *in = calloc(1, sizeof(*in));
        uint64_t next, cur;
        void *buf;
        int r;

        if (!in)
                return NULL;
        if ((r = tg_hash_key_random(in->hash_key)) < 0) {
                tg_err("intake: no random key for the redelivery index: getrandom: %s",
                       strerror(-r));
                free(in);
                return NULL;
        }
        in->conf = *conf;
        pthread_mutex_init(&in->count_lock, NULL);
        in->high = conf->sink->capacity / 2 < MEMORY_QUEUE_HIGH ? conf->sink->capacity / 2
                                                                 : MEMORY_QUEUE_HIGH;
        in->low = conf->sink->capacity / 10 < MEMORY_QUEUE_LOW ? conf->sink->capacity / 10
                                                                : MEMORY_QUEUE_LOW;
        /* Whatever a crash left in the spool goes out first. */
        next = tg_spool_next_seq(conf->spool);
        cur = tg_spool_first_seq(conf->spool);
        atomic_store(&in->spooling, conf->memory && cur < next);
        in->c.next_seq = next;
        /* Remember the spool's tail for redeliveries after a crash. */
        if (next > RECENT_MAX && cur < next - RECENT_MAX)
                cur = next - RECENT_MAX;
        if ((buf = malloc(TG_SPOOL_TOPIC_MAX + TG_SPOOL_PROPS_MAX + TG_PAYLOAD_MAX + 2))) {
                struct tg_spool_record rec;

                while (cur < next && tg_spool_read(conf->spool, &cur, &rec, buf,
                                                   TG_SPOOL_TOPIC_MAX + TG_SPOOL_PROPS_MAX +
                                                           TG_PAYLOAD_MAX + 2) == 0)
                        recent_add(in, rec.topic, rec.topic_len, rec.payload, rec.len);
                free(buf);
        }
        return in;
}

void tg_intake_destroy(tg_intake_t *in) {
        if (!in)
                return;
        pthread_mutex_destroy(&in->count_lock);
        free(in);
}

/* A message taken but not kept: counted with what became of it. */
static void count_taken(tg_intake_t *in, size_t sub, uint64_t *what) {
        pthread_mutex_lock(&in->count_lock);
        in->c.received[sub]++;
        (*what)++;
        pthread_mutex_unlock(&in->count_lock);
}

/* durability memory: handle the message here when the worker is free and
 * Kafka keeps up. 1 when handled. */
static int take_direct(tg_intake_t *in, size_t sub, const char *topic, const void *props,
                       size_t props_len, const void *payload, size_t len, int64_t arrival_ms) {
        const struct tg_sink *s = in->conf.sink;
        unsigned o;

        if (atomic_load(&in->spooling))
                return 0;
        if (s->in_flight(s->ctx) >= in->high) {
                atomic_store(&in->spooling, 1);
                tg_intake_kafka_behind(in);
                return 0;
        }
        /* The forwarder has it (spooled work, or a tick while we were quiet):
         * this one goes to the spool, behind what is there. */
        if (pthread_mutex_trylock(in->conf.worker_lock)) {
                atomic_store(&in->spooling, 1);
                return 0;
        }
        if (atomic_load(&in->spooling)) {
                pthread_mutex_unlock(in->conf.worker_lock);
                return 0;
        }
        /* Not from the spool: done once handed to the sink. The periodic
         * work is ours too while we hold the worker. */
        o = tg_worker_process(in->conf.worker, sub, topic, props, props_len, payload, len,
                              arrival_ms, 0, 0);
        tg_worker_tick(in->conf.worker, tg_monotonic_ms(), 0);
        pthread_mutex_unlock(in->conf.worker_lock);
        pthread_mutex_lock(&in->count_lock);
        in->c.received[sub]++;
        if (o & TG_OUTCOME_FAILED)
                in->c.direct_failed++;
        else if (o & TG_OUTCOME_FORWARDED)
                in->c.direct_forwarded++;
        else
                in->c.direct_dead_lettered++;
        pthread_mutex_unlock(&in->count_lock);
        return 1;
}

void tg_intake_try_direct(tg_intake_t *in, uint64_t processed_next) {
        const struct tg_sink *s = in->conf.sink;

        if (!atomic_load(&in->spooling) || s->in_flight(s->ctx) >= in->low)
                return;
        /* Give the MQTT thread the worker back only if no append is under
         * way and everything spooled is processed; seen in this order, an
         * append that starts after the check finds spooling 0 (and the
         * worker held until the caller lets it go). */
        atomic_store(&in->spooling, 0);
        if (atomic_load(&in->busy) || processed_next < tg_spool_next_seq(in->conf.spool)) {
                atomic_store(&in->spooling, 1);
                return;
        }
        if (atomic_exchange(&in->kafka_behind, 0))
                tg_info("spool drained: handling messages directly again");
}

void tg_intake_kafka_behind(tg_intake_t *in) {
        if (!atomic_exchange(&in->kafka_behind, 1))
                tg_warn("Kafka is not keeping up: spooling messages until it does "
                        "(durability memory)");
}

int tg_intake_queue_high(const tg_intake_t *in) {
        return in->high;
}

static int spool_full(int r) {
        return r == -ENOSPC || r == -EFBIG || r == -EIO || r == -EDQUOT;
}

int tg_intake_take(tg_intake_t *in, const char *topic, size_t topic_len,
                   const void *props, size_t props_len, const void *payload, size_t len,
                   int qos, int dup) {
        int64_t arrival_ms = tg_clock_now(in->conf.clock);
        size_t sub = tg_worker_sub_index(in->conf.worker, topic);
        int waited = 0, r;

        if (in->conf.memory) {
                atomic_store(&in->busy, 1);
                if (take_direct(in, sub, topic, props, props_len, payload, len, arrival_ms)) {
                        atomic_store(&in->busy, 0);
                        return 0;
                }
        }
        /* A payload over the decoders' limit is dead-lettered as too large;
         * only its first TG_PAYLOAD_MAX + 1 bytes are kept for that. */
        if (len > TG_PAYLOAD_MAX + 1)
                len = TG_PAYLOAD_MAX + 1;
        if (dup && recent_has(in, topic, topic_len, payload, len)) {
                count_taken(in, sub, &in->c.redeliveries);
                tg_dbg("mqtt %s: redelivery of a message already spooled", topic);
                atomic_store(&in->busy, 0);
                return 0;
        }
        /* Safe before Paho acknowledges: when the spool is full (bound or
         * disk), hold the callback and so the acks; the broker keeps the
         * persistent session's queue meanwhile. */
        for (;;) {
                pthread_mutex_lock(&in->count_lock);
                r = tg_spool_append_props(in->conf.spool, topic, topic_len, props, props_len,
                                          payload, len, arrival_ms, NULL);
                if (!r) {
                        in->c.received[sub]++;
                        in->c.next_seq = tg_spool_next_seq(in->conf.spool);
                }
                pthread_mutex_unlock(&in->count_lock);
                if (!spool_full(r))
                        break;
                if (in->conf.drop_oldest) {
                        uint64_t end = tg_spool_oldest_end(in->conf.spool);
                        uint64_t first = tg_spool_first_seq(in->conf.spool);

                        if (end >= first) {
                                /* spool.full: drop-oldest: the oldest segment
                                 * goes, forwarded or not. */
                                tg_spool_release(in->conf.spool, end);
                                pthread_mutex_lock(&in->count_lock);
                                in->c.spool_dropped += end - first + 1;
                                pthread_mutex_unlock(&in->count_lock);
                                tg_err("spool full: dropped spooled messages %llu..%llu "
                                       "(spool.full: drop-oldest)",
                                       (unsigned long long)first, (unsigned long long)end);
                                continue;
                        }
                }
                if (!waited++) {
                        atomic_store(&in->held, 1);
                        pthread_mutex_lock(&in->count_lock);
                        in->c.spool_full_waits++;
                        pthread_mutex_unlock(&in->count_lock);
                        tg_warn("spool full (%s): not acknowledging MQTT messages "
                                "until space returns", strerror(-r));
                }
                if (*in->conf.stop) {
                        count_taken(in, sub, &in->c.lost);
                        tg_err_limited("mqtt %s: stopping while the spool is full: this "
                               "message is acknowledged but not kept", topic);
                        atomic_store(&in->busy, 0);
                        return -ECANCELED;
                }
                usleep(50 * 1000);
        }
        atomic_store(&in->busy, 0);
        if (r) {
                count_taken(in, sub, &in->c.lost);
                tg_err_limited("mqtt %s: cannot spool a message of %zu bytes: %s", topic, len,
                       strerror(-r));
                return r;
        }
        if (waited) {
                atomic_store(&in->held, 0);
                atomic_store(&in->resumed, 1);
                tg_info("spool has room again: acknowledging MQTT messages");
        }
        if (qos > 0)
                recent_add(in, topic, topic_len, payload, len);
        return 0;
}

void tg_intake_counts(tg_intake_t *in, struct tg_intake_counts *out) {
        pthread_mutex_lock(&in->count_lock);
        *out = in->c;
        pthread_mutex_unlock(&in->count_lock);
}

int tg_intake_held(const tg_intake_t *in) {
        return atomic_load(&((tg_intake_t *)in)->held);
}

int tg_intake_resumed(tg_intake_t *in) {
        return atomic_exchange(&in->resumed, 0);
}
