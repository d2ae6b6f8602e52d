/* checkpoint.h - the window state tied to a spool position: restored at start, written once Kafka confirmed up to it. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include <stdint.h>

#include "downsample.h"
#include "sparkplug.h"
#include "spool.h"
#include "window.h"

/*
 * With durability disk, every interval the forwarder snapshots the window
 * engine together with the last spool sequence P it has processed; the
 * snapshot is written to state.dir/windows.state only once Kafka has
 * confirmed every message up to P, and only then is the spool released up
 * to P. After a crash the engine is restored from the file and the spool
 * replayed after P, so windows come out as in an uninterrupted run.
 *
 * With durability memory there are no checkpoints: confirmed messages
 * simply leave the spool, and the open windows are saved at a clean stop.
 *
 * The raw-forwarding compressors' state (@p ds, NULL when there are none)
 * and the Sparkplug decoder's (@p sp: births, aliases, seq; NULL when no
 * subscription reads Sparkplug) ride in the same file as the windows'
 * (docs/downsample.md 5.1, docs/sparkplug.md 7): one write, one rename, one
 * spool position for all.
 *
 * Owned by the forwarder thread; the counts are atomics anyone may read.
 */

typedef struct tg_checkpoint tg_checkpoint_t;

/**
 * @brief Checkpoints in @p state_dir every @p interval_ms (disk), or
 *        none (@p memory).
 * @return NULL when out of memory.
 */
tg_checkpoint_t *tg_checkpoint_new(const char *state_dir, int64_t interval_ms, int memory);

/** @brief Free; NULL is accepted. */
void tg_checkpoint_destroy(tg_checkpoint_t *cp);

/**
 * @brief Restore @p engine from the state file, if there is a usable one
 *        (logged either way). @return the spool position it covers; 0
 *        when there is none, or with durability memory.
 */
uint64_t tg_checkpoint_restore(tg_checkpoint_t *cp, tg_window_engine_t *engine,
                               tg_downsample_t *ds, tg_sparkplug_t *sp);

/**
 * @brief The forwarder's periodic step: snapshot when due (or @p force),
 *        write once @p confirmed_next has passed it, release the spool,
 *        and leave the state file room on the spool's disk.
 * @param processed_next every message below it has been processed.
 */
void tg_checkpoint_step(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                        tg_sparkplug_t *sp, tg_spool_t *spool,
                        uint64_t processed_next, uint64_t confirmed_next, int force,
                        int64_t now_ms);

/**
 * @brief At a clean stop, after the forwarder stopped and Kafka was
 *        flushed: the last checkpoint (disk) or the open windows (memory).
 */
void tg_checkpoint_final(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                         tg_sparkplug_t *sp, tg_spool_t *spool,
                         uint64_t processed_next, uint64_t confirmed_next, int unconfirmed);

/** @brief The spool position the last checkpoint covers. */
uint64_t tg_checkpoint_position(const tg_checkpoint_t *cp);

/** @brief Checkpoints written, and state files not used at start. */
void tg_checkpoint_counts(const tg_checkpoint_t *cp, uint64_t *written, uint64_t *rejected);

#endif
