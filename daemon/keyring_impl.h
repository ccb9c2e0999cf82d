/*
 * keyring_impl: the keyring's private contract between keyring.c and
 * keyring_erase.c; no other file includes it (storage layer; see keyring.h).
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

/* The key store's one table: the environment's unnamed one (keyring.c). */
extern const store_table ks_deks_table;

/* keyring.c: the master key named `id`, or NULL when it was not given. */
const fsc_master *ks_master_by_id(const keyring *k, const char *id);

/* keyring_erase.c: makes DATA_DIR/keys, opens erase.lock, finishes an
 * erasure a crash left unfinished, and opens the live key store once.
 * On failure err says why; the caller closes k. */
fsd_err ks_open_files(keyring *k, const char *data_dir, char *err, size_t errlen);

/* keyring_erase.c: begin/end one key-store operation (see the contract). */
fsd_err ks_enter(keyring *k);
void ks_leave(keyring *k);

/* keyring_erase.c: opens `in` with a retired key of `name` (a re-key that
 * did not finish); true when one opened it (*out, *out_len as fss_open). */
bool ks_open_with_retired(keyring *k, const char *name, const void *aad, size_t aad_len,
                          const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

#endif
