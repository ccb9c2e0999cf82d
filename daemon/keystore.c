/*
 * keystore: the key store's files under the keyring (storage layer; see
 * keyring_impl.h for the contract): the wrapped-DEK table, the master key
 * by id, erase.lock (shared per operation, exclusive to compact),
 * erase.pending and the compact-copy-and-rename, recovery at open, and a
 * re-key's retired keys. keyring.c and keyring_erase.c build on it; it
 * calls neither (the design note on erasure is keyring_erase.c's).
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
#include "keyring_impl.h"
#include "log.h"

const store_table ks_deks_table = {NULL};

const fsc_master *
ks_master_by_id(const keyring *k, const char *id)
{
	for (size_t i = 0; i < k->n_masters; i++)
		if (strcmp(k->masters[i].id, id) == 0)
			return &k->masters[i];
	return NULL;
}

static const store_table *const deks_tables[] = {&ks_deks_table, NULL};

/* ---- the key store's files: shared/exclusive lock, compaction ------------- */

/* Test hook: FIELDSYNC_TEST_CRASH_AT=<point> makes the process _exit(86)
 * at that point of an erasure (the crash tests' kill -9). Always compiled;
 * harmless unless the variable names a point. */
void
ks_crash_point(const char *point)
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
fsd_err
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
	ks_crash_point("compact-locked");
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
	ks_crash_point("compact-copied");
	rc = FSD_IO;
	if (unlink(lock) != 0 && errno != ENOENT)
		goto out;
	ks_crash_point("compact-lock-dropped");
	if (rename(tmp, data) != 0 || !fsync_dir(k->dir))
		goto out;
	ks_crash_point("compact-renamed");
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
bool
ks_mark_erase_pending(keyring *k)
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
		pthread_mutex_lock(&k->mu);
		rc = ks_compact_locked(k);
		pthread_mutex_unlock(&k->mu);
		if (rc != FSD_OK) {
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

/* The key of a retired slot: RETIRED name \001 token(16 hex). */
size_t
ks_retired_key(char *out, size_t cap, const char *name, uint64_t token, bool prefix_only)
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
	size_t pl = ks_retired_key(prefix, sizeof(prefix), name, 0, true);
	if (pl == 0 || ks_enter(k) != FSD_OK)
		return false;
	if (store_read_begin(k->keys, &t) == FSD_OK) {
		store_kv_scan(t, &ks_deks_table, prefix, pl, prefix, pl, try_retired, &w);
		store_read_end(&t);
	}
	ks_leave(k);
	return w.opened;
}
