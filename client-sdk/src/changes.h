/*
 * changes.h - the store's change feed (changes.c): a local change counter
 * (meta "change_seq", u64 LE) and two tables kept in the transaction of
 * every write to `records`:
 *
 *   changes      u64 BE seq -> [u8 remote][u8 fs_change_kind][record key]
 *   change_keys  record key -> u64 BE seq of its latest entry in `changes`
 *
 * so a record has at most one entry, at its latest change, and the feed
 * is bounded by the number of records ever held. The public half
 * (fs_changes_since, fs_changes_free, fs_change_seq) is in fieldsync.h.
 *
 * Layer: data (over db). Functions that take an MDB_txn never end it.
 * Threads: as every store file (db.h).
 */
#ifndef FIELDSYNC_SDK_CHANGES_H
#define FIELDSYNC_SDK_CHANGES_H

#include "db.h"

/* Opens (flags MDB_CREATE: creates) the two tables into s. */
int sdk_changes_open(fs_store *s, MDB_txn *t, unsigned flags);

/* Notes a change of the record at key (fsk_record_key) in t: the counter
 * moves by one and the record's older entry, if any, goes. */
int sdk_change_note(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen, bool remote,
                    fs_change_kind kind);

/* The counter in t (0: no change yet). */
int sdk_change_seq_get(fs_store *s, MDB_txn *t, uint64_t *seq);

#endif
