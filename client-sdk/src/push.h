/*
 * push.h - change sets (push.c): the table `inflight` (u64 BE key ->
 * packed PushRequest, exactly the bytes sent) and what the sync does with
 * it: make a change set from the outbox, find the ones still in flight,
 * apply the daemon's answer. The state machine is in the note atop store.c.
 *
 * Layer: operations (over outbox and seal). Each function runs its own durable
 * transaction and holds none across calls, so the app keeps writing while
 * a sync waits on the network. Bytes handed out are malloc'd and the
 * caller's; they hold plaintext payloads (what is sent to the daemon).
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_PUSH_H
#define FIELDSYNC_SDK_PUSH_H

#include "base.h"

/* Number of outbox entries waiting to be pushed (not parked). */
fs_err sdk_pending_count(fs_store *s, uint64_t *n);

/*
 * The next change set already sent (in flight) after *key, in the order they
 * were made: sets *key and *bytes (malloc'd packed PushRequest, caller frees).
 * FS_ERR_NOT_FOUND when there is none left. A set of an encrypted store
 * that no longer opens (its DEK destroyed) is dropped and its changes
 * requeued on the way.
 */
fs_err sdk_inflight_next(fs_store *s, uint64_t *key, uint8_t **bytes, size_t *len);

/*
 * Makes a new change set from outbox entries not yet in one: at most max
 * changes and about budget bytes (at least one change). Gives it a fresh
 * changeset_id, stores it as in flight and marks its entries, in one
 * durable transaction. FS_ERR_NOT_FOUND when nothing is waiting.
 */
fs_err sdk_push_prepare(fs_store *s, size_t max, size_t budget, uint64_t *key, uint8_t **bytes,
                        size_t *len);

typedef struct sdk_push_outcome {
	uint64_t acked, conflicts, parked;
	uint64_t requeued; /* to be pushed again: requeued, solo or DEFERRED */
} sdk_push_outcome;

/*
 * Applies the daemon's PushReply to in-flight change set `key` (request
 * `req`, results already checked to match it): acknowledged changes leave
 * the outbox unless the record was written again since (versions differ),
 * REJECTED ones are parked or requeued (see push.c), "DEFERRED:" ones
 * are kept DEFERRED for after the next pull, and the change set
 * stops being in flight. One durable transaction.
 */
fs_err sdk_push_done(fs_store *s, uint64_t key, const sdk_push_request *req,
                     const sdk_push_reply *rep, sdk_push_outcome *o);

/*
 * The daemon refused the whole request with Error `code` (MALFORMED,
 * INVALID, TOO_LARGE): nothing was applied. A single change is parked with
 * "CODE: message"; several are requeued to be pushed one per change set.
 */
fs_err sdk_push_refused(fs_store *s, uint64_t key, const sdk_push_request *req, const char *code,
                        const char *message, sdk_push_outcome *o);

/*
 * The daemon's answer shows it did not read change set `key` (a PushReply
 * with no result for a set of changes: a daemon rolled back to a release
 * without compressed pushes reads changes_zstd as an empty set, applies
 * that and keeps the empty answer under the set's changeset_id, so a
 * resend would never get another). Drops the set and puts its changes
 * that are still in the outbox back to PENDING in no change set, in one
 * durable transaction: the next sdk_push_prepare puts them in a set with
 * a NEW changeset_id. Nothing is lost; nothing is applied twice (a change
 * the daemon did apply comes back DUPLICATE or OBSOLETE).
 */
fs_err sdk_push_requeue(fs_store *s, uint64_t key);

#endif
