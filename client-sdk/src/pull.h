/*
 * pull.h - applying the daemon's feed (pull.c): PullReply pages merged
 * into `records` with the shared merge rule, and the pull checkpoint (meta
 * "checkpoint").
 *
 * Layer: operations (over records, outbox and seal). Each function runs its own
 * durable transaction; the checkpoint and the records of a page move in
 * the same one, so a crash re-pulls a page but never skips one.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_PULL_H
#define FIELDSYNC_SDK_PULL_H

#include "base.h"

/* The pull checkpoint: last_seq of the last page applied (0: none). */
fs_err sdk_checkpoint_get(fs_store *s, uint64_t *seq);

/* Merges one PullReply page into the store and moves the checkpoint to its
 * last_seq, in one durable transaction. Bad records from the wire are
 * skipped (sdk_pull_apply_checked counts them); *applied (may be NULL) counts the records that changed. */
fs_err sdk_pull_apply(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied);

/* sdk_pull_apply that also says how the change counter moved: from *from
 * to *to (either may be NULL), for fs_sync_opts.on_page. */
fs_err sdk_pull_apply_page(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied,
                           uint64_t *from, uint64_t *to);

/* sdk_pull_apply_page that also counts in *refused (may be NULL) the
 * records of the page refused by the strict checks (protocol.md §2): not
 * stored, the rest of the page applied, the checkpoint moved past them;
 * fs_last_error_detail() says why the last one was refused. */
fs_err sdk_pull_apply_checked(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied,
                              uint64_t *from, uint64_t *to, uint64_t *refused);

#endif
