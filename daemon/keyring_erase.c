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

static const store_table *const deks_tables[] = {&ks_deks_table, NULL};

/* ---- the key store's files: shared/exclusive lock, compaction ------------- */

/* Test hook: FIELDSYNC_TEST_CRASH_AT=<point> makes the process _exit(86)
 * at that point of an erasure (the crash tests' kill -9). Always compiled;
 * harmless unless the variable names a point. */
static void
crash_point(const char *point)
{
	const char *at = getenv("FIELDSYNC_TEST_CRASH_AT");
	if (at != NULL && strcmp(at, point) == 0)
		_exit(86);
}

static void
ks_path(const keyring *k, const char *file, char out[700])
{
	snprintf(out, 700, "%s/%s", k->dir, file);
}

static bool
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

static ino_t
data_ino(const keyring *k)
{
	char p[700];
	struct stat st;
	ks_path(k, "data.mdb", p);
	return stat(p, &st) == 0 ? st.st_ino : 0;
}

/* Begins one key-store operation: the mutex, the shared lock (no
 * compaction swaps the file meanwhile), and the environment of the file
 * that is live now (another process may have compacted it). */
fsd_err
ks_enter(keyring *k)
{
	pthread_mutex_lock(&k->mu);
	while (flock(k->lockfd, LOCK_SH) != 0)
		if (errno != EINTR) {
			pthread_mutex_unlock(&k->mu);
			return FSD_IO;
		}
	ino_t now = data_ino(k);
	if (k->keys != NULL && (now == 0 || now != k->ino))
		store_close(&k->keys); /* replaced by a compaction: open the new one */
	if (k->keys == NULL) {
		k->keys = store_open_with(k->dir, 1ULL << 30, 1ULL << 30, deks_tables, STORE_PLAIN);
		k->ino = data_ino(k);
	}
	if (k->keys == NULL) {
		flock(k->lockfd, LOCK_UN);
		pthread_mutex_unlock(&k->mu);
		return FSD_IO;
	}
	return FSD_OK;
}

void
ks_leave(keyring *k)
{
	flock(k->lockfd, LOCK_UN);
	pthread_mutex_unlock(&k->mu);
}

/*
 * Compaction (see the design note): with the exclusive lock, copy the live
 * keys (MDB_CP_COMPACT: live pages only) to data.mdb.new, fsync it, drop
 * lock.mdb (the next opener starts a fresh one for the new file), rename
 * the copy over data.mdb, fsync the directory, then remove the marker.
 * Called with the mutex held and no operation open.
 */
static fsd_err
ks_compact_locked(keyring *k)
{
	char marker[700], tmp[700], data[700], lock[700];
	fsd_err rc = FSD_IO;
	ks_path(k, "erase.pending", marker);
	ks_path(k, "data.mdb.new", tmp);
	ks_path(k, "data.mdb", data);
	ks_path(k, "lock.mdb", lock);
	while (flock(k->lockfd, LOCK_EX) != 0)
		if (errno != EINTR)
			return FSD_IO;
	store_close(&k->keys);
	crash_point("compact-locked");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	rc = store_copy_env(k->dir, fd, true);
	if (rc == FSD_OK && fsync(fd) != 0)
		rc = FSD_IO;
	close(fd);
	if (rc != FSD_OK) {
		unlink(tmp);
		goto out;
	}
	crash_point("compact-copied");
	rc = FSD_IO;
	if (unlink(lock) != 0 && errno != ENOENT)
		goto out;
	crash_point("compact-lock-dropped");
	if (rename(tmp, data) != 0 || !fsync_dir(k->dir))
		goto out;
	crash_point("compact-renamed");
	if (unlink(marker) != 0 && errno != ENOENT)
		goto out;
	rc = fsync_dir(k->dir) ? FSD_OK : FSD_IO;
out:
	flock(k->lockfd, LOCK_UN);
	if (rc != FSD_OK)
		log_event(LOG_ERROR,
		          "the key store's compaction failed; it is redone at the next start",
		          LS("dir", k->dir), NULL);
	return rc;
}

/* The marker that an erasure's compaction is owed: durable before a key
 * is deleted, removed when the compacted file is in place. */
static bool
mark_erase_pending(keyring *k)
{
	char marker[700];
	ks_path(k, "erase.pending", marker);
	int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	bool ok = fsync(fd) == 0;
	close(fd);
	return ok && fsync_dir(k->dir);
}

fsd_err
keyring_compact(keyring *k)
{
	pthread_mutex_lock(&k->mu);
	fsd_err rc = ks_compact_locked(k);
	pthread_mutex_unlock(&k->mu);
	return rc;
}

/* The key store's files at open: DATA_DIR/keys, erase.lock, and an erasure
 * that crashed before its compaction finished, finished before anything
 * reads a key; then the live environment, opened once. */
fsd_err
ks_open_files(keyring *k, const char *data_dir, char *err, size_t errlen)
{
	char lockp[700], marker[700];
	fsd_err rc;

	snprintf(k->dir, sizeof(k->dir), "%s/keys", data_dir);
	if (mkdir(k->dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", k->dir, strerror(errno));
		return FSD_IO;
	}
	ks_path(k, "erase.lock", lockp);
	k->lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (k->lockfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", lockp, strerror(errno));
		return FSD_IO;
	}
	/* an erasure that crashed before its compaction finished: finish it
	 * before anything reads a key */
	ks_path(k, "erase.pending", marker);
	if (access(marker, F_OK) == 0) {
		log_event(LOG_WARN, "an erasure did not finish its compaction: finishing it",
		          LS("dir", k->dir), NULL);
		if (keyring_compact(k) != FSD_OK) {
			snprintf(err, errlen, "cannot finish the compaction of the key store %s",
			         k->dir);
			return FSD_IO;
		}
	}
	if ((rc = ks_enter(k)) != FSD_OK) {
		snprintf(err, errlen, "cannot open the key store %s (the log says why)", k->dir);
		return rc;
	}
	ks_leave(k);
	return FSD_OK;
}

/* ---- retired keys: a re-key's old key until the re-sealed data commits ---- */

#define RETIRED "\001retired\001" /* no DEK name starts with a control byte */

/* The key of a retired slot: RETIRED name \001 token(16 hex). */
static size_t
retired_key(char *out, size_t cap, const char *name, uint64_t token, bool prefix_only)
{
	int n = prefix_only ? snprintf(out, cap, RETIRED "%s\001", name)
	                    : snprintf(out, cap, RETIRED "%s\001%016llx", name,
	                               (unsigned long long)token);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

struct retired_walk {
	const keyring *k;
	const void *aad;
	size_t aad_len;
	const uint8_t *in;
	size_t len;
	uint8_t **out;
	size_t *out_len;
	bool opened;
};

static bool
try_retired(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct retired_walk *w = arg;
	char id[FSC_KEY_ID_MAX + 1];
	uint8_t dek[FSC_KEY_LEN];
	(void)key;
	(void)klen;
	const fsc_master *m = fsc_wrapped_key_id(val, vlen, id) ? ks_master_by_id(w->k, id) : NULL;
	if (m != NULL && fsc_unwrap(m, val, vlen, dek)) {
		w->opened = fss_open(dek, w->aad, w->aad_len, w->in, w->len, w->out, w->out_len);
		fsc_cleanse(dek, sizeof(dek));
	}
	return !w->opened;
}

bool
ks_open_with_retired(keyring *k, const char *name, const void *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	char prefix[FSS_NAME_MAX + 40];
	store_txn *t = NULL;
	struct retired_walk w = {k, aad, aad_len, in, len, out, out_len, false};
	size_t pl = retired_key(prefix, sizeof(prefix), name, 0, true);
	if (pl == 0 || ks_enter(k) != FSD_OK)
		return false;
	if (store_read_begin(k->keys, &t) == FSD_OK) {
		store_kv_scan(t, &ks_deks_table, prefix, pl, prefix, pl, try_retired, &w);
		store_read_end(&t);
	}
	ks_leave(k);
	return w.opened;
}

fsd_err
keyring_retire(keyring *k, const char *name, uint64_t token)
{
	char slot[FSS_NAME_MAX + 40];
	store_txn *t = NULL;
	const void *val;
	size_t vl, sl = retired_key(slot, sizeof(slot), name, token, false);
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
		crash_point("rekey-retired");
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
	size_t pl = retired_key(prefix, sizeof(prefix), name, 0, true);
	fsd_err rc;
	if (pl == 0)
		return FSD_INVALID;
	if ((rc = ks_enter(k)) != FSD_OK)
		return rc;
	if (!mark_erase_pending(k)) {
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
	if (!mark_erase_pending(k)) {
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
		crash_point("erase-deleted");
		rc = ks_compact_locked(k);
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}
