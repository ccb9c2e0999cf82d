/*
 * keyring_erase: physical erasure of the key store: the erase.pending marker,
 * the erase.lock flock, the compact-copy-and-rename, recovery at open, and a
 * re-key's retired keys (storage layer; see keyring.h, keyring_impl.h).
 */

/*
 * NOTES ON ERASURE
 *
 * ERASURE IS PHYSICAL. LMDB does not erase: a deleted entry stays in a freed
 * page until that page is reused. So keyring_destroy, after deleting the
 * DEK, compacts the key store: a copy of the live pages only
 * (store_copy_env with MDB_CP_COMPACT) is written to keys/data.mdb.new and
 * fsynced, keys/lock.mdb is dropped (the next opener makes a fresh one for
 * the new file: the old one's reader table and txnid belong to the old
 * file), the copy is renamed over keys/data.mdb and the directory fsynced.
 * The old file's inode is then unlinked (see docs/security.md for what a
 * filesystem keeps of it).
 *
 * Processes share the key store, so every operation holds flock(LOCK_SH)
 * on keys/erase.lock and first checks that the environment it has open is
 * the live data.mdb (by inode; after another process's compaction it
 * reopens); the compaction holds LOCK_EX, so no operation, and so no new
 * DEK, can land in the old file after the copy began.
 *
 * Crash safety (kill -9 anywhere): keys/erase.pending is made durable
 * before the DEK is deleted and removed after the rename; keyring_open finds
 * it and redoes the compaction before anything reads a key. Until the
 * rename the old file is intact (live keys never lost); the copy is fsynced
 * before it replaces it; rename is atomic. Cost: one copy of the live keys
 * per erasure (O(keys), ~100 bytes each), see docs/security.md.
 * FIELDSYNC_TEST_CRASH_AT=<point> _exits at a named point (crash tests).
 *
 * A re-key (a single contact's purge: its case's key must change) must not
 * destroy the old key before the re-sealed data commits: keyring_retire
 * moves it to a retired slot (RETIRED name \001 token), values that do not
 * open with a name's DEK are tried with its retired keys, and
 * keyring_destroy_retired removes them (and compacts) once the data
 * committed; purge_recover decides after a crash (purge.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fieldsync/crypto.h"
#include "fieldsync/seal.h"
#include "keyring.h"
#include "keyring_impl.h"
#include "log.h"

fsd_err
keyring_compact(keyring *k)
{
	pthread_mutex_lock(&k->mu);
	fsd_err rc = ks_compact_locked(k);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

fsd_err
keyring_retire(keyring *k, const char *name, uint64_t token)
{
	char slot[FSS_NAME_MAX + 40];
	store_txn *t = NULL;
	const void *val;
	size_t vl, sl = ks_retired_key(slot, sizeof(slot), name, token, false);
	fsd_err rc;
	if (sl == 0)
		return FSD_INVALID;
	if ((rc = ks_enter(k)) != FSD_OK)
		return rc;
	if ((rc = store_write_begin(k->keys, &t)) == FSD_OK) {
		rc = store_kv_get(t, &ks_deks_table, name, strlen(name), &val, &vl);
		if (rc == FSD_OK) {
			uint8_t *copy = malloc(vl);
			if (copy == NULL)
				rc = FSD_NOMEM;
			else {
				memcpy(copy, val, vl);
				rc = store_kv_put(t, &ks_deks_table, slot, sl, copy, vl, false);
				free(copy);
			}
			if (rc == FSD_OK)
				rc = store_kv_del(t, &ks_deks_table, name, strlen(name));
		} else if (rc == FSD_NOTFOUND)
			rc = FSD_OK; /* nothing to retire */
		if (rc == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
	}
	ks_leave(k);
	if (rc == FSD_OK)
		ks_crash_point("rekey-retired");
	return rc;
}

struct slot_list {
	char (*keys)[FSS_NAME_MAX + 40];
	size_t *lens;
	size_t n, cap;
	bool oom;
};

static bool
collect_slot(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct slot_list *l = arg;
	(void)val;
	(void)vlen;
	if (klen >= sizeof(*l->keys))
		return true;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *a = realloc(l->keys, cap * sizeof(*l->keys));
		if (a != NULL)
			l->keys = a;
		void *b = realloc(l->lens, cap * sizeof(*l->lens));
		if (b != NULL)
			l->lens = b;
		if (a == NULL || b == NULL) {
			l->oom = true;
			return false;
		}
		l->cap = cap;
	}
	memcpy(l->keys[l->n], key, klen);
	l->keys[l->n][klen] = '\0';
	l->lens[l->n++] = klen;
	return true;
}

fsd_err
keyring_destroy_retired(keyring *k, const char *name)
{
	char prefix[FSS_NAME_MAX + 40];
	struct slot_list l = {0};
	store_txn *t = NULL;
	size_t pl = ks_retired_key(prefix, sizeof(prefix), name, 0, true);
	fsd_err rc;
	if (pl == 0)
		return FSD_INVALID;
	if ((rc = ks_enter(k)) != FSD_OK)
		return rc;
	if (!ks_mark_erase_pending(k)) {
		ks_leave(k);
		return FSD_IO;
	}
	if ((rc = store_write_begin(k->keys, &t)) == FSD_OK) {
		rc = store_kv_scan(t, &ks_deks_table, prefix, pl, prefix, pl, collect_slot, &l);
		if (rc == FSD_OK && l.oom)
			rc = FSD_NOMEM;
		for (size_t i = 0; rc == FSD_OK && i < l.n; i++)
			rc = store_kv_del(t, &ks_deks_table, l.keys[i], l.lens[i]);
		if (rc == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
	}
	flock(k->lockfd, LOCK_UN);
	if (rc == FSD_OK)
		rc = ks_compact_locked(k);
	pthread_mutex_unlock(&k->mu);
	free(l.keys);
	free(l.lens);
	return rc;
}

fsd_err
keyring_retired(keyring *k, keyring_retired_fn fn, void *arg)
{
	struct slot_list l = {0};
	store_txn *t = NULL;
	fsd_err rc = ks_enter(k);
	if (rc != FSD_OK)
		return rc;
	if ((rc = store_read_begin(k->keys, &t)) == FSD_OK) {
		rc = store_kv_scan(t, &ks_deks_table, RETIRED, strlen(RETIRED), RETIRED,
		                   strlen(RETIRED), collect_slot, &l);
		store_read_end(&t);
	}
	ks_leave(k);
	if (rc == FSD_OK && l.oom)
		rc = FSD_NOMEM;
	for (size_t i = 0; rc == FSD_OK && i < l.n; i++) {
		char *name = l.keys[i] + strlen(RETIRED), *sep = strrchr(name, '\001');
		if (sep == NULL)
			continue;
		*sep = '\0';
		uint64_t token = strtoull(sep + 1, NULL, 16);
		if (!fn(arg, name, token))
			break;
	}
	free(l.keys);
	free(l.lens);
	return rc;
}

/* Deletes DEK `name` (the marker first) and compacts: the deleted entry
 * stays in LMDB's free pages until the file is replaced. */
fsd_err
keyring_destroy(keyring *k, const char *name)
{
	store_txn *t = NULL;
	fsd_err rc = ks_enter(k);
	if (rc != FSD_OK)
		return rc;
	if (!ks_mark_erase_pending(k)) {
		ks_leave(k);
		return FSD_IO;
	}
	if ((rc = store_write_begin(k->keys, &t)) == FSD_OK) {
		rc = store_kv_del(t, &ks_deks_table, name, strlen(name));
		if (rc == FSD_NOTFOUND)
			rc = FSD_OK;
		if (rc == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
	}
	flock(k->lockfd, LOCK_UN);
	if (rc == FSD_OK) {
		ks_crash_point("erase-deleted");
		rc = ks_compact_locked(k);
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}
