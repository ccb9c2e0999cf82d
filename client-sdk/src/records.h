/*
 * records.h - the table `records` (records.c): key(collection, id) ->
 * packed RecordState with every current sibling, payloads sealed in an
 * encrypted store. The public half (fs_put, fs_delete, fs_resolve, fs_get,
 * fs_record_*) is in fieldsync.h.
 *
 * Layer: data. Both functions take the caller's transaction and never end
 * it. A RecordState handed out holds plaintext payloads and is the
 * caller's (fieldsync__v1__record_state__free_unpacked).
 *
 * Threads: an fs_store may be used from several threads at once (db.h);
 * a transaction belongs to the thread that began it.
 */
#ifndef FIELDSYNC_SDK_RECORDS_H
#define FIELDSYNC_SDK_RECORDS_H

#include "db.h"

/* Loads the record at key into *rs (NULL when absent), payloads opened.
 * MDB_CORRUPTED when it does not decode, RC_SEAL_BAD when it does not open. */
int sdk_record_load(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen,
                    sdk_record_state **rs);

/* Stores rs (packed) at key; in an encrypted store with every payload
 * sealed (rs itself, plaintext, is not changed). */
int sdk_record_save(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen,
                    const sdk_record_state *rs);

#endif
