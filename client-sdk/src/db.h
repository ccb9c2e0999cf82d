/*
 * db.h - the local store's private struct and the LMDB primitives (db.c)
 * shared by the store files (store.c, seal.c, credstore.c, records.c,
 * outbox.c, push.c, pull.c, lists.c). The public lifecycle (fs_store_open,
 * _create, _close, _rekey: store.c) is in fieldsync.h; the on-disk layout
 * and the outbox state machine are in the design note atop store.c.
 *
 * Layer: db, the bottom of the store. Only the store files include this
 * header and <lmdb.h>; sync.c and watch.c never do.
 *
 * Contract:
 * - struct fs_store is owned by the app (fs_store_open .. fs_store_close);
 *   its table handles stay valid until close. The store key and the store
 *   DEK live in it and are wiped at close.
 * - Functions that take an MDB_txn never begin, commit or abort it: the
 *   caller owns the transaction. MDB_val data they hand out is valid until
 *   the end of that transaction.
 * - Functions returning int return an LMDB code, an errno, or RC_SEAL_BAD /
 *   RC_CRYPTO; sdk_map_rc turns any of them into an fs_err at the edge of
 *   the public API, so no LMDB code leaks out.
 * - Threads: one fs_store may be used from several threads at once
 *   (fieldsync.h). Its fields are set at open and only read afterwards
 *   (fs_store_rekey swaps the store key once its transaction commits); every
 *   call runs in transactions of its own (MDB_NOTLS: a read transaction is
 *   not tied to a thread) and LMDB serialises the write transactions.
 */
#ifndef FIELDSYNC_SDK_DB_H
#define FIELDSYNC_SDK_DB_H

#include <lmdb.h>
#include <stdatomic.h>

#include "base.h"
#include "fieldsync/crypto.h"

/* Our own return codes next to LMDB's and errno's. */
#define RC_SEAL_BAD (-31900) /* a sealed value does not open (or its DEK is gone) */
#define RC_CRYPTO (-31901)   /* sealing failed: no randomness, OpenSSL error */

struct fs_store {
	MDB_env *env;
	MDB_dbi meta, records, outbox, inflight, keys; /* keys: encrypted stores only */
	/* The change feed (changes.c) and the contacts-by-case index
	 * (caseindex.c); created at open in a store made by an older SDK. */
	MDB_dbi changes, change_keys, case_contacts, contact_cases;
	atomic_int syncs_running; /* fs_sync calls in progress (sync.c) */
	atomic_bool cancel;       /* fs_sync_cancel: stop them; cleared when the last ends */
	char replica[FSP_REPLICA_MAX + 1];
	char scope[FSP_SCOPE_MAX + 1];
	bool encrypted;
	fsc_master master;              /* the store key; wiped at close */
	uint8_t store_dek[FSC_KEY_LEN]; /* seals the credential's secret; wiped at close */
	int lockfd;                     /* DIR/erase.lock, LOCK_SH while open (store.c) */
	char dir[4096];                 /* the store directory (erase.pending lives there) */
};

/* LMDB, errno and RC_* codes stop here. */
fs_err sdk_map_rc(int rc);

/* ---- transactions ------------------------------------------------------- */

/* Commits *t (durable once it returns FS_OK) and sets *t to NULL: the
 * transaction is gone either way. */
fs_err sdk_txn_commit(MDB_txn **t);

/* Aborts *t unless it is NULL, and sets it to NULL. */
void sdk_txn_abort(MDB_txn **t);

/* ---- names ------------------------------------------------------------- */

/*
 * A valid collection name and an id of 1..FSP_ID_MAX bytes: what the SDK
 * accepts from the app and from the wire. The keys of `records` and
 * `outbox` are the core's record keys (fsk_record_key, keys.h), which
 * such names always fit.
 */
bool sdk_names_valid(const char *collection, const char *id);

/* ---- the meta table ------------------------------------------------------ */

/* A u64 LE counter (fsk_get_le64); 0 when absent, MDB_CORRUPTED when not 8 bytes. */
int sdk_meta_get_u64(fs_store *s, MDB_txn *t, const char *name, uint64_t *v);
int sdk_meta_put(fs_store *s, MDB_txn *t, const char *name, const void *data, size_t len);
int sdk_meta_put_u64(fs_store *s, MDB_txn *t, const char *name, uint64_t v);

/*
 * What the last Welcome of one daemon offered (store.c, meta "welcome"),
 * so the next sync with the SAME daemon (endpoint and pinned server key)
 * may send its first change sets and Pull before Welcome comes (sync.c).
 */
typedef struct sdk_welcome_facts {
	uint32_t encodings, max_window, max_changes;
	uint64_t max_message_bytes;
	char endpoint[256], server_key[64], generation[72];
} sdk_welcome_facts;

/* Loads the facts kept for endpoint/server_key (NULL: clear text):
 * FS_ERR_NOT_FOUND when none, or they were another daemon's. */
fs_err sdk_welcome_load(fs_store *s, const char *endpoint, const char *server_key,
                        sdk_welcome_facts *f);
/* Keeps f inside the caller's write transaction (sdk_sync_record: with the
 * sync's outcome); nothing is written when unchanged. An LMDB code, EINVAL
 * for facts too long. */
int sdk_welcome_put(fs_store *s, MDB_txn *t, const sdk_welcome_facts *f);

#endif
