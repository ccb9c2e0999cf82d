/*
 * records: the record table, the feed index and former scopes (data layer).
 *
 * Tables (declared here, opened by schema.c):
 *   records        key(collection, id) -> the record frame: which siblings
 *                  are stored sealed, then the packed RecordState (scope,
 *                  the record's current seq and ALL its siblings: Record
 *                  values with their version vectors). key = [u8 len(collection)]
 *                  [collection][id] (fsk_record_key, fieldsync/keys.h), so
 *                  no byte of an id can be confused with the separator.
 *   feed           u64 BE seq -> key(collection, id). Exactly one entry per
 *                  record, at its latest seq: a write deletes the entry at
 *                  the old seq. Pull is a walk from since_seq + 1.
 *   former_scopes  key(collection, id) -> "scope\n" lines: the scopes a
 *                  record was in before it moved (PROTOCOL.md §5 `revoked`).
 *
 * Sealing: with a keyring on the store (store_set_keyring), every sibling
 * payload is sealed on the way in and opened on the way out, with the data
 * key fss_dek_for() names and the AAD fss_record_aad() (collection NUL id),
 * both from the shared core (fieldsync/seal.h). A write seals only the
 * siblings that are new: one stored sealed under the same version keeps its
 * sealed bytes (records_rewrite seals everything anew). An empty or
 * over-long collection or id is FSD_INVALID (never truncated into another
 * key).
 *
 * The record frame (issue 11, break 10): whether a payload is sealed is
 * stored beside it, never read from the bytes a client sent, so a payload
 * that begins with the sealed-value header (0xFE 'K') is just data:
 *   [0x00][0x01 format][varint n][ceil(n/8) bytes: bit i = sibling i sealed]
 *   [packed RecordState with n siblings]
 * Rows of the old release are a bare packed RecordState (its first byte is
 * a protobuf tag, never 0x00) and are read as they were written: a payload
 * of such a row is sealed when it begins with the header AND the store has
 * a keyring (a store with a key store never starts without its master key,
 * daemon_check_start; a --dev store never had one). The one case this rule
 * cannot tell: an old --dev store, later given a master key, holding a
 * payload that begins 0xFE 'K'; that record is unreadable (below) until
 * written again. Every write stores the frame.
 *
 * Unreadable records (issue 11, break 5): a record whose row does not
 * decode or whose sealed payload does not open (a purged data key after a
 * restore, damage) is FSD_CORRUPT from records_get and is skipped by the
 * feed scan (counted in fieldsync_records_unreadable_total, logged by
 * collection/id), never failing a page.
 *
 * Ownership: a RecordState returned here is the caller's (records_free).
 * Writes only in the writer's transaction (or an admin process's).
 */
#ifndef FIELDSYNCD_RECORDS_H
#define FIELDSYNCD_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "store.h"

typedef Fieldsync__V1__RecordState fs_record_state;

extern const store_table records_table;
extern const store_table records_feed_table;
extern const store_table records_former_scopes_table;

/* On FSD_OK *out is an unpacked RecordState the caller frees with
 * records_free(). FSD_NOTFOUND, or FSD_CORRUPT when it does not decode or
 * open. */
fsd_err records_get(store_txn *t, const char *collection, const char *id, fs_record_state **out);
/* Writes rs (its seq already set) and moves the record to rs->seq in the feed.
 * A sibling of rs with the version of a stored sibling IS that sibling (the
 * merge rule: an equal version with another value is INVALID, never
 * written), so its stored sealed bytes are kept rather than sealed again. */
fsd_err records_put(store_txn *t, const fs_record_state *rs, uint64_t old_seq);
/* Writes rs again in place (same seq, the feed untouched): re-sealing it
 * after its data key was replaced. */
fsd_err records_rewrite(store_txn *t, const fs_record_state *rs);
/* The record's scope, seq and purge mark without opening its payloads. */
fsd_err records_head(store_txn *t, const char *collection, const char *id,
                     char scope[FSP_SCOPE_MAX + 1], uint64_t *seq, bool *purged);
void records_free(fs_record_state *rs);

/*
 * Feed iteration: calls fn for each record with seq > since, ascending, until
 * fn says FEED_STOP or the feed ends. rs comes decoded but NOT opened (its
 * sealed payloads as stored), so fn filters on scope and heads first and
 * opens only what it takes: records_feed_open(t, rs, it). fn owns rs from
 * the call on (it keeps it or frees it with records_free), whatever it
 * answers. A record that cannot be decoded (or a feed entry whose record is
 * gone) never reaches fn: it is skipped, counted and logged. *last is the
 * seq of the last record fn took or skipped, unreadable ones included
 * (since when none). *more tells whether records remain after *last.
 */
typedef enum {
	FEED_TAKE = 0, /* taken: go on */
	FEED_SKIP,     /* not for this reader: go on (it still counts as read) */
	FEED_STOP,     /* the page is full: stop before this record */
} feed_verdict;
typedef struct records_feed_item records_feed_item; /* what fn needs to open rs */
typedef feed_verdict (*records_feed_fn)(void *arg, store_txn *t, fs_record_state *rs,
                                        const records_feed_item *it);
fsd_err records_feed_scan(store_txn *t, uint64_t since, records_feed_fn fn, void *arg,
                          uint64_t *last, bool *more);
/* Opens rs's sealed payloads in place (rs and it as fn got them, during the
 * call). FSD_OK, or FSD_CORRUPT: the record cannot be opened (counted in
 * fieldsync_records_unreadable_total and logged by collection/id): skip it. */
fsd_err records_feed_open(store_txn *t, fs_record_state *rs, const records_feed_item *it);

/* Remembers that the record was in scope before it moved. */
fsd_err records_former_scope_add(store_txn *t, const char *collection, const char *id,
                                 const char *scope);
/* True when one of the record's former scopes is in the given set. */
bool records_former_scope_any(store_txn *t, const char *collection, const char *id,
                              bool (*granted)(const void *arg, const char *scope), const void *arg);

/*
 * Verification (fieldsyncd verify), in the caller's read transaction, with
 * the keyring of t's store (none: sealed payloads are counted not_checked;
 * fns->encrypted says the store has a key store, for old rows, above):
 *   - every record decodes and is stored under its own key (fsk_record_key);
 *   - every payload opens (FSS_MALFORMED with a keyring does not);
 *   - the feed holds each record exactly once, at the record's seq, and
 *     each entry points at a stored record.
 * Each problem goes to fns->problem: who names the record ("record
 * note/n-1", key bytes that do not print as '?') or the feed entry ("feed
 * entry at seq 7"), what says what is wrong; never payload content.
 * fns->record (may be NULL) sees every record that decodes under its own
 * key; false means out of memory and stops the check (FSD_NOMEM).
 * fns->payload (may be NULL) sees every live sibling's payload, opened,
 * that could be opened; name is "collection/id". The views are valid for
 * the call only. *n: the counts and the highest seq seen (records and
 * feed), to compare with store_last_seq(). FSD_OK when the walk finished
 * (problems or not), else why it could not.
 */
typedef struct records_check_fns {
	void (*problem)(void *arg, const char *who, const char *what);
	bool (*record)(void *arg, const fs_record_state *rs);
	void (*payload)(void *arg, const fs_record_state *rs, const char *name, const uint8_t *p,
	                size_t len);
	void *arg;
	bool encrypted; /* the store has a key store (DATA_DIR/keys) */
} records_check_fns;
typedef struct records_check_counts {
	size_t records, feed_entries, payloads, not_checked;
	size_t unreadable; /* records that do not decode or whose payloads do not open */
	uint64_t max_seq;
} records_check_counts;
fsd_err records_check(store_txn *t, const records_check_fns *fns, records_check_counts *n);

/* Calls fn for every record that decodes, as stored: payloads are NOT
 * opened (sealed ones stay sealed; read versions, authors and names only),
 * until fn says false. Rows that do not decode are passed over (verify
 * reports them). rs is valid for the call only. */
fsd_err records_scan_stored(store_txn *t, bool (*fn)(void *arg, const fs_record_state *rs),
                            void *arg);

/* Calls fn for every record with a live payload stored in clear (by the
 * frame; an old row: one without the sealed header), until fn says false.
 * *n: how many were found. */
fsd_err records_clear_scan(store_txn *t,
                           bool (*fn)(void *arg, const char *collection, const char *id), void *arg,
                           size_t *n);

#endif
