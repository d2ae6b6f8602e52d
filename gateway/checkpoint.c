/* checkpoint.c - window snapshots written only behind Kafka's confirmations, and the spool released behind them. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "checkpoint.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Free space segments leave on the state disk: twice the last state (a
 * new one is written beside the old, then renamed over it) and a margin. */
#define RESERVE_MARGIN ((uint64_t)256 << 10)

struct tg_checkpoint {
        char path[4200];
        char next_path[4200];     /* a snapshot waiting for its confirmations */
        int64_t interval_ms, next_ms;
        int memory;
        int pending;              /* next_path holds the state at snap_pos */
        uint64_t snap_pos;
        uint64_t pos;             /* the last checkpoint covers messages up to here */
        _Atomic uint64_t written, rejected;
};

tg_checkpoint_t *tg_checkpoint_new(const char *state_dir, int64_t interval_ms, int memory) {
        tg_checkpoint_t *cp = calloc(1, sizeof(*cp));

        if (!cp)
                return NULL;
        snprintf(cp->path, sizeof(cp->path), "%s/windows.state", state_dir);
        snprintf(cp->next_path, sizeof(cp->next_path), "%s/windows.state.next", state_dir);
        cp->interval_ms = interval_ms;
        cp->memory = memory;
        return cp;
}

void tg_checkpoint_destroy(tg_checkpoint_t *cp) {
        free(cp);
}

/* The window state file's attachment is the compressors' state; a file
 * without one (or no compressors configured) restores them empty. */
static int restore_downsample(void *opaque, const void *p, size_t len, char *errstr,
                              size_t errstr_size) {
        return opaque ? tg_downsample_restore(opaque, p, len, errstr, errstr_size) : 0;
}

/* Windows and compressors to @p path, as one snapshot: one file, one rename.
 * The compressors' state (only when forward.mode keeps any) is copied to a
 * buffer first; the windows' is streamed. With @p spool, segments are first
 * made to leave room for this file and the next, so that a full disk never
 * keeps the spool from being released. */
static int save(const char *path, tg_window_engine_t *engine, tg_downsample_t *ds,
                uint64_t position, tg_spool_t *spool) {
        void *att = NULL;
        size_t att_len = 0;
        int r;

        if (ds && (r = tg_downsample_snapshot(ds, &att, &att_len)))
                return r;
        if (spool)
                tg_spool_set_reserve(spool, 2 * (tg_window_engine_state_bytes(engine) +
                                                 (att ? 4 + att_len : 0)) +
                                                    RESERVE_MARGIN);
        r = tg_window_engine_save_with(engine, path, position, att, att_len, NULL);
        free(att);
        return r;
}

uint64_t tg_checkpoint_restore(tg_checkpoint_t *cp, tg_window_engine_t *engine,
                               tg_downsample_t *ds) {
        uint64_t position = 0;
        char err[256];
        int r = tg_window_engine_load_with(engine, cp->path, &position, restore_downsample, ds,
                                           err, sizeof(err));

        if (r == 0)
                tg_info("restored open windows from %s (spool position %llu)", cp->path,
                        (unsigned long long)position);
        else if (r == -ENOENT)
                tg_info("no window state at %s: starting with no open windows", cp->path);
        else if (r == -EINVAL)
                tg_warn("window state %s not used (%s): starting with no open windows",
                        cp->path, err);
        else
                tg_warn("window state %s not readable (%s): starting with no open windows",
                        cp->path, strerror(-r));
        if (r && r != -ENOENT)
                atomic_fetch_add(&cp->rejected, 1);
        /* A state file saved at a clean stop in memory mode covers no spool. */
        if (r || cp->memory)
                position = 0;
        /* A snapshot Kafka had not confirmed before a crash is never used. */
        unlink(cp->next_path);
        cp->pos = position;
        return position;
}

/* A snapshot goes to disk at once, as windows.state.next, and becomes
 * windows.state by a rename once Kafka has confirmed everything it covers:
 * it is never held in memory, which for 10 000 sensors would be 3 MB more
 * resident memory every interval. A crash in between leaves the previous
 * windows.state, consistent with the spool that is still kept. */
void tg_checkpoint_step(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                        tg_spool_t *spool,
                        uint64_t processed_next, uint64_t confirmed_next, int force,
                        int64_t now_ms) {
        int r;

        if (cp->memory) {
                /* No checkpoints: confirmed messages simply leave the spool. */
                if (confirmed_next - 1 > cp->pos) {
                        cp->pos = confirmed_next - 1;
                        tg_spool_release(spool, cp->pos);
                }
                return;
        }
        if (!cp->pending && processed_next - 1 > cp->pos && (force || now_ms >= cp->next_ms)) {
                cp->snap_pos = processed_next - 1;
                cp->next_ms = now_ms + cp->interval_ms;
                r = save(cp->next_path, engine, ds, cp->snap_pos, spool);
                if (r) {
                        tg_err("checkpoint %s: %s; the spool is kept", cp->next_path,
                               strerror(-r));
                        return;
                }
                cp->pending = 1;
        }
        if (!cp->pending || confirmed_next <= cp->snap_pos)
                return;
        cp->pending = 0;
        r = tg_window_state_rename(cp->next_path, cp->path);
        if (r) {
                tg_err("checkpoint %s: %s; the spool is kept", cp->path, strerror(-r));
                return;
        }
        cp->pos = cp->snap_pos;
        atomic_fetch_add(&cp->written, 1);
        tg_spool_release(spool, cp->pos);
}

void tg_checkpoint_final(tg_checkpoint_t *cp, tg_window_engine_t *engine, tg_downsample_t *ds,
                         tg_spool_t *spool,
                         uint64_t processed_next, uint64_t confirmed_next, int unconfirmed) {
        int r;

        /* A snapshot Kafka has not confirmed yet is dropped: the final
         * one covers more. Then twice: the first snapshots everything
         * processed, the second makes it the state if Kafka confirmed all
         * of it. */
        cp->pending = 0;
        tg_checkpoint_step(cp, engine, ds, spool, processed_next, confirmed_next, 1, 0);
        tg_checkpoint_step(cp, engine, ds, spool, processed_next, confirmed_next, 1, 0);
        if (cp->memory) {
                if ((r = save(cp->path, engine, ds, 0, NULL)))
                        tg_err("cannot save open windows to %s: %s; they are lost", cp->path,
                               strerror(-r));
                else
                        tg_info("saved open windows to %s", cp->path);
        } else if (cp->pos + 1 == processed_next) {
                tg_info("checkpoint at spool position %llu: nothing to replay",
                        (unsigned long long)cp->pos);
        } else {
                tg_warn("%d Kafka record(s) unconfirmed: spool messages after %llu stay on "
                        "disk and are forwarded at the next start",
                        unconfirmed, (unsigned long long)cp->pos);
        }
}

uint64_t tg_checkpoint_position(const tg_checkpoint_t *cp) {
        return cp->pos;
}

void tg_checkpoint_counts(const tg_checkpoint_t *cp, uint64_t *written, uint64_t *rejected) {
        *written = atomic_load(&((tg_checkpoint_t *)cp)->written);
        *rejected = atomic_load(&((tg_checkpoint_t *)cp)->rejected);
}
