/*
 * libfieldsync's private header: what store.c offers sync.c, and the
 * helpers shared by the modules. Nothing here is public; every symbol is
 * sdk_… so it cannot collide with the daemon's modules (tests link both).
 */
#ifndef FIELDSYNC_SDK_INTERNAL_H
#define FIELDSYNC_SDK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/fieldsync.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/sync.pb-c.h"

typedef Fieldsync__V1__RecordState sdk_record_state;
typedef Fieldsync__V1__PushRequest sdk_push_request;
typedef Fieldsync__V1__PushReply sdk_push_reply;
typedef Fieldsync__V1__PullReply sdk_pull_reply;

#define SDK_REASON_MAX 300  /* a parked change's reason, truncated */
#define SDK_PAYLOAD_MAX (16u << 20)

/* Milliseconds: wall clock (for records and status) and monotonic (deadlines). */
int64_t sdk_now_ms(void);
int64_t sdk_mono_ms(void);

/* 36-character random UUID (v4) text from getrandom(); false if no entropy. */
bool sdk_uuid(char out[37]);

/* ---- store.c: what the sync needs --------------------------------------- */

/* The pull checkpoint. */
fs_err sdk_checkpoint_get(fs_store *s, uint64_t *seq);

/* Number of outbox entries waiting to be pushed (not parked). */
fs_err sdk_pending_count(fs_store *s, uint64_t *n);

/*
 * The next change set already sent (in flight) after *key, in the order they
 * were made: sets *key and *bytes (malloc'd packed PushRequest, caller frees).
 * FS_ERR_NOT_FOUND when there is none left.
 */
fs_err sdk_inflight_next(fs_store *s, uint64_t *key, uint8_t **bytes, size_t *len);

/*
 * Makes a new change set from outbox entries not yet in one: at most max
 * changes and about budget bytes (at least one change). Gives it a fresh
 * changeset_id, stores it as in flight and marks its entries, in one
 * durable transaction. FS_ERR_NOT_FOUND when nothing is waiting.
 */
fs_err sdk_push_prepare(fs_store *s, size_t max, size_t budget, uint64_t *key,
                        uint8_t **bytes, size_t *len);

typedef struct sdk_push_outcome {
	uint64_t acked, conflicts, parked, requeued;
} sdk_push_outcome;

/*
 * Applies the daemon's PushReply to in-flight change set `key` (request
 * `req`, results already checked to match it): acknowledged changes leave
 * the outbox unless the record was written again since (versions differ),
 * REJECTED ones are parked or requeued (see store.c), and the change set
 * stops being in flight. One durable transaction.
 */
fs_err sdk_push_done(fs_store *s, uint64_t key, const sdk_push_request *req,
                     const sdk_push_reply *rep, sdk_push_outcome *o);

/*
 * The daemon refused the whole request with Error `code` (MALFORMED,
 * INVALID, TOO_LARGE): nothing was applied. A single change is parked with
 * "CODE: message"; several are requeued to be pushed one per change set.
 */
fs_err sdk_push_refused(fs_store *s, uint64_t key, const sdk_push_request *req,
                        const char *code, const char *message, sdk_push_outcome *o);

/* Merges one PullReply page into the store and moves the checkpoint to its
 * last_seq, in one durable transaction. Bad records from the wire are skipped. */
fs_err sdk_pull_apply(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied);

/* Records the outcome of a sync for fs_status(). msg may be NULL. */
fs_err sdk_sync_record(fs_store *s, fs_err err, const char *msg);

/* The store's credential WITH its secret key, for fs_sync(); caller frees
 * with fs_credential_free (which wipes it). FS_ERR_NOT_FOUND when none. */
fs_err sdk_store_credential_secret(fs_store *s, fs_credential **out);

/* ---- credential.c ------------------------------------------------------- */

#define SDK_Z85_KEY_LEN 40

/* Decodes a 40-character Z85 key to 32 bytes; false when it is not one. */
bool sdk_z85_key_decode(const char *text, uint8_t key[32]);

/* True when public_z85 is the CURVE public key of secret_z85 (or when this
 * libzmq cannot tell: no CURVE support). */
bool sdk_curve_pair_ok(const char *public_z85, const char *secret_z85);

/* Parses a stored credential (no client_secret_key member), validating it
 * like fs_credential_parse. */
fs_err sdk_credential_parse_public(const char *json, size_t len, fs_credential **out);

/* A deep copy; with_secret false leaves client_secret_key NULL. NULL on no memory. */
fs_credential *sdk_credential_dup(const fs_credential *c, bool with_secret);

/* The credential without its secret key as compact JSON; malloc'd, NULL on no memory. */
char *sdk_credential_public_json(const fs_credential *c);

/* ---- json.c ------------------------------------------------------------- */

/* Version text "a:1,b:2" into buf; truncated safely. */
void sdk_vv_text(const fsp_vv *v, char *buf, size_t len);

#endif
