/*
 * keyring_impl: the keyring's private contract: keystore.c below,
 * keyring.c and keyring_erase.c on top of it; no other file includes it
 * (storage layer; see keyring.h).
 */

/*
 * Contract: keyring.c owns the master keys, the data keys and sealed
 * values; keyring_erase.c the key store's files (erase.lock, erase.pending,
 * the compaction, recovery at open) and a re-key's retired keys. Every
 * key-store operation runs between ks_enter and ks_leave (the mutex,
 * flock(LOCK_SH) on keys/erase.lock, k->keys open on the live
 * keys/data.mdb); a compaction takes LOCK_EX with the mutex held and no
 * operation open. k->masters[0] is the current master key.
 */
#ifndef FIELDSYNCD_KEYRING_IMPL_H
#define FIELDSYNCD_KEYRING_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "fieldsync/crypto.h"
#include "store.h"

/* keyring.h's handle (not included here: the checker sees a circle). */
typedef struct keyring keyring;

#define MASTERS_MAX 8

struct keyring {
	fsc_master masters[MASTERS_MAX]; /* first: the page is DONTDUMP, mlocked */
	size_t n_masters;
	pthread_mutex_t mu; /* one key-store operation at a time in this process */
	store *keys;        /* DATA_DIR/keys: the wrapped DEKs, in its unnamed table */
	ino_t ino;          /* the inode of keys/data.mdb that `keys` has open */
	int lockfd;         /* keys/erase.lock: shared per operation, exclusive to compact */
	char dir[600];      /* DATA_DIR/keys */
};

/* ---- keystore.c ----------------------------------------------------------- */

/* The key store's one table: the environment's unnamed one. */
extern const store_table ks_deks_table;

/* The master key named `id`, or NULL when it was not given. */
const fsc_master *ks_master_by_id(const keyring *k, const char *id);

/* Makes DATA_DIR/keys, opens erase.lock, finishes an
 * erasure a crash left unfinished, and opens the live key store once.
 * On failure err says why; the caller closes k. */
fsd_err ks_open_files(keyring *k, const char *data_dir, char *err, size_t errlen);

/* Begin/end one key-store operation (see the contract). */
fsd_err ks_enter(keyring *k);
void ks_leave(keyring *k);

/* Opens `in` with a retired key of `name` (a re-key that
 * did not finish); true when one opened it (*out, *out_len as fss_open). */
bool ks_open_with_retired(keyring *k, const char *name, const void *aad, size_t aad_len,
                          const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* Compacts the key store (k->mu held, no operation open): copy, rename, fsync. */
fsd_err ks_compact_locked(keyring *k);
/* Makes keys/erase.pending durable before a DEK is deleted. */
bool ks_mark_erase_pending(keyring *k);
/* Retired slots are RETIRED name \001 token: no DEK name starts with a control byte. */
#define RETIRED "\001retired\001"
/* The retired slot of `name` with token (prefix_only: every token's prefix). */
size_t ks_retired_key(char *out, size_t cap, const char *name, uint64_t token, bool prefix_only);
/* Test hook: FIELDSYNC_TEST_CRASH_AT=<point> _exits at that point. */
void ks_crash_point(const char *point);

#endif
