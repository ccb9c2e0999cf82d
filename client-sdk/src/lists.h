/*
 * lists.h - lists and status (lists.c). The public half (fs_list_*,
 * fs_status_get) is in fieldsync.h; this is the sync's way to record its
 * outcome for fs_status_get (meta "last_ok", "last_err") and to take part
 * in cancellation (fs_sync_cancel, also here).
 *
 * Layer: operations (over outbox). Each function runs its own transaction.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_LISTS_H
#define FIELDSYNC_SDK_LISTS_H

#include <stdatomic.h>

#include "base.h"

/* Records the outcome of a sync for fs_status_get(). msg may be NULL. */
struct sdk_welcome_facts;
/* welcome (may be NULL): the Welcome facts to keep (sdk_welcome_put), in the
 * same transaction, so that keeping them costs no commit of its own. */
fs_err sdk_sync_record(fs_store *s, fs_err err, const char *msg,
                       const struct sdk_welcome_facts *welcome);

/*
 * A sync begins on s: returns the store's cancel flag (fs_sync_cancel sets
 * it; valid until close), cleared when no other sync runs. Pair with
 * sdk_sync_leave, which clears it when the last running sync ends.
 */
const atomic_bool *sdk_sync_enter(fs_store *s);
void sdk_sync_leave(fs_store *s);

#endif
