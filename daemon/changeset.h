/*
 * changeset: applies one change set inside the writer's write transaction
 * (logic layer).
 *
 * For each change: load the stored record, refuse what must not be merged
 * (a purged record, a record in a scope the peer was not granted, a reused
 * dot), merge (fsp_merge), store the result at a new seq, note it for the
 * reminders and count open conflicts (meta "conflicts_open"). A set is
 * atomic: it runs in a nested transaction that a rejected change aborts
 * alone. A retried changeset_id gets its stored reply and changes nothing.
 *
 * Threads: the writer's thread, inside its write transaction.
 */
#ifndef FIELDSYNCD_CHANGESET_H
#define FIELDSYNCD_CHANGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "peer.h"
#include "reminders.h"
#include "store.h"
#include "validate.h"

/* What became of one change set; exactly one of stored, packed, rejected
 * or oom is set when changeset_apply returns FSD_OK. */
typedef struct changeset_outcome {
	const uint8_t *stored; /* a retry: the stored reply (valid while the txn is) */
	size_t stored_len;
	uint8_t *packed; /* applied: the new PushReply, packed (owned) */
	size_t packed_len;
	fs_push_reply *rejected; /* rejected: every result REJECTED (owned) */
	bool oom;                /* no reply could be built for this set alone */
	uint8_t m_result;        /* metric_changeset_result, counted after the commit */
	uint32_t m_changes[5];   /* changes by metric_change_result */
} changeset_outcome;

/*
 * Applies p for peer in a nested transaction of parent (rem notes the
 * records it writes). Returns an error only for failures that doom the
 * whole round (map full, I/O, out of memory); a rejected set is FSD_OK
 * with o->rejected.
 */
fsd_err changeset_apply(store_txn *parent, reminders *rem, const config *c, const peer_auth *peer,
                        const fs_push_request *p, changeset_outcome *o);
void changeset_outcome_free(changeset_outcome *o);
/* Records with more than one sibling now (meta "conflicts_open", kept by
 * changeset_apply in the same transactions), for /metrics. */
uint64_t changeset_conflicts_open(store_txn *t);

#endif
