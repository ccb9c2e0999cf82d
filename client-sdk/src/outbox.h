/*
 * outbox.h - the table `outbox` (outbox.c): at most one entry per record,
 * the latest local value waiting to be pushed, with its state (PENDING,
 * PARKED with a reason, SOLO: to be pushed alone, DEFERRED: the daemon
 * answered "DEFERRED:", pushed again after the next pull) and the changeset_id of
 * the change set it is in (empty until then). Format and state machine:
 * the design note atop store.c. fs_retry_failed is in fieldsync.h.
 *
 * Layer: data. Functions that take an MDB_txn never end it. A decoded
 * entry points into the MDB_val it came from: valid until the end of the
 * transaction and only until the entry is written again.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_OUTBOX_H
#define FIELDSYNC_SDK_OUTBOX_H

#include "db.h"

enum { OB_PENDING = 0, OB_PARKED = 1, OB_SOLO = 2, OB_DEFERRED = 3 };

/* An outbox entry, decoded. rec_bytes points into the value. */
typedef struct sdk_ob_entry {
	uint8_t state;
	char csid[256];
	char reason[SDK_REASON_MAX + 1];
	const uint8_t *rec_bytes;
	size_t rec_len;
} sdk_ob_entry;

/* Decodes an outbox value; false when it is not one we wrote. */
bool sdk_ob_decode(const MDB_val *d, sdk_ob_entry *e);

/* Writes an entry at key: state, changeset id (NULL: none), reason (NULL:
 * none; truncated to SDK_REASON_MAX) and the packed Record. rec must not
 * point into the entry being replaced. */
int sdk_ob_put(fs_store *s, MDB_txn *t, const MDB_val *key, uint8_t state, const char *csid,
               const char *reason, const uint8_t *rec, size_t rec_len);

/* Counts the entries waiting to be pushed and the parked ones. */
fs_err sdk_outbox_counts(fs_store *s, MDB_txn *t, uint64_t *pending, uint64_t *parked);

/* What the daemon's answer means for one change of a change set. */
typedef enum sdk_settle {
	SETTLE_ACK,     /* acknowledged: the entry goes (when still the same version) */
	SETTLE_PARK,    /* parked with its reason */
	SETTLE_REQUEUE, /* pending again, in no change set */
	SETTLE_SOLO,    /* pending again, to be pushed alone */
	SETTLE_DEFER,   /* kept, with its reason, until the next pull (DEFERRED) */
} sdk_settle;

/*
 * Settles the outbox entry of change r. Leaves the entry alone when a
 * newer local edit replaced it (versions differ): *touched false then.
 */
int sdk_outbox_settle(fs_store *s, MDB_txn *t, const fsp_record *r, sdk_settle action,
                      const char *reason, bool *touched);

/*
 * After a pull: every DEFERRED entry becomes PENDING again (the pull may
 * have brought the history the daemon was missing), in one durable
 * transaction. *n: how many (may be NULL). A DEFERRED entry is never
 * parked or dropped: it stays queued and counts as pending.
 */
fs_err sdk_outbox_undefer(fs_store *s, uint64_t *n);

#endif
