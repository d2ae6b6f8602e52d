/* ledger.h - the delivery ledger: which spooled messages Kafka has fully confirmed, shared only through atomics. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_LEDGER_H
#define TG_LEDGER_H

#include <stdint.h>

/*
 * Every Kafka record carries the spool sequence number of the message it
 * came from (its tag). A message is done when the forwarder has finished
 * with it and every record it produced is confirmed or has failed; done
 * messages are counted by outcome strictly in sequence order, and
 * everything below confirmed_next is done.
 *
 * Threads. The forwarder (the one thread that processes spooled messages)
 * calls begin/produced/unproduced/end/skip_to/advance; delivery reports
 * call delivered, on whichever thread polls the sink; anyone reads
 * confirmed and counts. One 32-bit atomic per message in flight is all
 * they share: no lock, no wake-up.
 */

/** Messages in flight at most (begun and not yet confirmed). */
#define TG_LEDGER_RING (1u << 18)

/** What became of a message: bits, since a delivery failure reported on
 *  the polling thread may meet the forwarder's verdict. */
enum {
        TG_OUTCOME_FORWARDED = 1u, /**< at least one raw record */
        TG_OUTCOME_REFUSED = 2u,   /**< no valid reading: dead-lettered */
        TG_OUTCOME_FAILED = 4u,    /**< a record could not be produced or delivered */
        TG_OUTCOME_SKIPPED = 8u,   /**< never read: dropped by spool.full, or corrupt */
};

/** Done messages by outcome, and where the done run ends. */
struct tg_ledger_counts {
        uint64_t forwarded, dead_lettered, failed, skipped;
        uint64_t confirmed_next; /**< every sequence below is done */
};

typedef struct tg_ledger tg_ledger_t;

/** @brief A ledger whose first message will be @p next. @return NULL when out of memory. */
tg_ledger_t *tg_ledger_new(uint64_t next);

/** @brief Free; NULL is accepted. */
void tg_ledger_destroy(tg_ledger_t *l);

/** @brief Before anything was tracked: the first message will be @p next
 *         (known once the checkpoint is restored and the spool opened). */
void tg_ledger_start_at(tg_ledger_t *l, uint64_t next);

/** @brief Forwarder: messages from the next unbegun one up to @p seq - 1
 *         will never be read (set aside as corrupt, or dropped): done, skipped. */
void tg_ledger_skip_to(tg_ledger_t *l, uint64_t seq);

/** @brief Forwarder: message @p seq (the next unbegun, after skip_to) is in work. */
void tg_ledger_begin(tg_ledger_t *l, uint64_t seq);

/** @brief Forwarder: one more record of @p seq handed to the sink, or one
 *         that the sink then refused after all (unproduced). */
void tg_ledger_produced(tg_ledger_t *l, uint64_t seq);
void tg_ledger_unproduced(tg_ledger_t *l, uint64_t seq);

/** @brief Forwarder: finished with @p seq; @p outcome is TG_OUTCOME_* bits. */
void tg_ledger_end(tg_ledger_t *l, uint64_t seq, unsigned outcome);

/** @brief Any thread: a record of @p seq confirmed (@p ok) or failed for good. */
void tg_ledger_delivered(tg_ledger_t *l, uint64_t seq, int ok);

/**
 * @brief Forwarder: count the messages that are done, in order, and
 *        publish the counts. @return confirmed_next.
 */
uint64_t tg_ledger_advance(tg_ledger_t *l);

/** @brief The next message begin expects (everything below was begun). */
uint64_t tg_ledger_next(const tg_ledger_t *l);

/** @brief Any thread: every sequence below this is done. */
uint64_t tg_ledger_confirmed(const tg_ledger_t *l);

/** @brief Forwarder: 1 when no more messages may begin until some are confirmed. */
int tg_ledger_full(const tg_ledger_t *l);

/** @brief Any thread: the counts as last published by advance, one consistent set. */
void tg_ledger_counts(tg_ledger_t *l, struct tg_ledger_counts *out);

#endif
