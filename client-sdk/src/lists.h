/*
 * lists.h - lists and status (lists.c). The public half (fs_list_*,
 * fs_status_get) is in fieldsync.h; this is the sync's way to record its
 * outcome for fs_status_get (meta "last_ok", "last_err").
 *
 * Layer: operations (over outbox). Each function runs its own transaction.
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_LISTS_H
#define FIELDSYNC_SDK_LISTS_H

#include "base.h"

/* Records the outcome of a sync for fs_status_get(). msg may be NULL. */
fs_err sdk_sync_record(fs_store *s, fs_err err, const char *msg);

#endif
