/* ledger.c - per-message record counts in a ring of atomics, counted by outcome in sequence order. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "ledger.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/*
 * One 32-bit word per message, at seq % TG_LEDGER_RING: the low 28 bits
 * count its records not yet confirmed, plus one while the forwarder is
 * still working on it; the high 4 bits are its TG_OUTCOME_* bits. A
 * message is done when the count is 0. The ring is reused only for
 * sequences more than TG_LEDGER_RING past confirmed_next, which
 * tg_ledger_full() forbids.
 */
#define COUNT_MASK 0x0fffffffu
#define OUTCOME_SHIFT 28

struct tg_ledger {
        _Atomic uint32_t *slot;
        uint64_t next;                  /* forwarder: next sequence to begin */
        _Atomic uint64_t confirmed_next;
        struct tg_ledger_counts mine;   /* forwarder's own */
        pthread_mutex_t pub_lock;       /* the published copy: one lock per advance */
        struct tg_ledger_counts pub;
};

tg_ledger_t *tg_ledger_new(uint64_t next) {
        tg_ledger_t *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        if (!(l->slot = calloc(TG_LEDGER_RING, sizeof(*l->slot)))) {
                free(l);
                return NULL;
        }
        pthread_mutex_init(&l->pub_lock, NULL);
        tg_ledger_start_at(l, next);
        return l;
}

void tg_ledger_start_at(tg_ledger_t *l, uint64_t next) {
        l->next = next;
        atomic_store(&l->confirmed_next, next);
        l->mine.confirmed_next = l->pub.confirmed_next = next;
}

void tg_ledger_destroy(tg_ledger_t *l) {
        if (!l)
                return;
        pthread_mutex_destroy(&l->pub_lock);
        free(l->slot);
        free(l);
}

static _Atomic uint32_t *slot_of(tg_ledger_t *l, uint64_t seq) {
        return &l->slot[seq % TG_LEDGER_RING];
}

void tg_ledger_skip_to(tg_ledger_t *l, uint64_t seq) {
        for (; l->next < seq; l->next++)
                atomic_store(slot_of(l, l->next), TG_OUTCOME_SKIPPED << OUTCOME_SHIFT);
}

void tg_ledger_begin(tg_ledger_t *l, uint64_t seq) {
        tg_ledger_skip_to(l, seq);
        atomic_store(slot_of(l, seq), 1); /* in work */
        l->next = seq + 1;
}

void tg_ledger_produced(tg_ledger_t *l, uint64_t seq) {
        atomic_fetch_add_explicit(slot_of(l, seq), 1, memory_order_relaxed);
}

void tg_ledger_unproduced(tg_ledger_t *l, uint64_t seq) {
        atomic_fetch_sub_explicit(slot_of(l, seq), 1, memory_order_relaxed);
}

void tg_ledger_end(tg_ledger_t *l, uint64_t seq, unsigned outcome) {
        atomic_fetch_or(slot_of(l, seq), (uint32_t)outcome << OUTCOME_SHIFT);
        atomic_fetch_sub_explicit(slot_of(l, seq), 1, memory_order_release);
}

void tg_ledger_delivered(tg_ledger_t *l, uint64_t seq, int ok) {
        if (!ok)
                atomic_fetch_or(slot_of(l, seq), TG_OUTCOME_FAILED << OUTCOME_SHIFT);
        atomic_fetch_sub_explicit(slot_of(l, seq), 1, memory_order_release);
}

uint64_t tg_ledger_advance(tg_ledger_t *l) {
        uint64_t conf = l->mine.confirmed_next;
        uint32_t v;

        while (conf < l->next &&
               !((v = atomic_load_explicit(slot_of(l, conf), memory_order_acquire)) &
                 COUNT_MASK)) {
                unsigned o = v >> OUTCOME_SHIFT;

                if (o & TG_OUTCOME_FAILED)
                        l->mine.failed++;
                else if (o & TG_OUTCOME_FORWARDED)
                        l->mine.forwarded++;
                else if (o & TG_OUTCOME_REFUSED)
                        l->mine.dead_lettered++;
                else
                        l->mine.skipped++;
                conf++;
        }
        if (conf != l->mine.confirmed_next) {
                l->mine.confirmed_next = conf;
                pthread_mutex_lock(&l->pub_lock);
                l->pub = l->mine;
                pthread_mutex_unlock(&l->pub_lock);
                atomic_store(&l->confirmed_next, conf);
        }
        return conf;
}

uint64_t tg_ledger_next(const tg_ledger_t *l) {
        return l->next;
}

uint64_t tg_ledger_confirmed(const tg_ledger_t *l) {
        return atomic_load(&((tg_ledger_t *)l)->confirmed_next);
}

int tg_ledger_full(const tg_ledger_t *l) {
        return l->next - l->mine.confirmed_next >= TG_LEDGER_RING - 1;
}

void tg_ledger_counts(tg_ledger_t *l, struct tg_ledger_counts *out) {
        pthread_mutex_lock(&l->pub_lock);
        *out = l->pub;
        pthread_mutex_unlock(&l->pub_lock);
}
