/*
 * The tablet's local store, on LMDB: its lifecycle (fs_store_create,
 * fs_store_open, fs_store_close, fs_store_rekey), the LMDB environment and
 * its table handles, and the meta values read at open.
 *
 * The store's jobs, one file each, low to high (no file calls a higher one):
 *
 *   db.c         the private struct fs_store (db.h), error mapping,
 *                transactions, the check of record names, the meta table
 *   seal.c       encryption of values: DEKs in `keys`, sealing and
 *                opening payloads with them, rewrapping for a rekey
 *   credstore.c  the credential in meta (its secret sealed when encrypted)
 *   records.c    the one local write (put, delete, resolve) and fs_get
 *   outbox.c     the outbox entry format, counts, retry, settling one entry
 *   push.c       change sets: prepare, in flight, done, refused
 *   pull.c       applying pulled pages, the checkpoint, erasure on purge
 *   lists.c      lists (collection, conflicts, failed) and status
 *   store.c      lifecycle (this file)
 *   migrate.c    fs_store_migrate: a plain store encrypted in place
 *
 * Every format the daemon writes too is the shared core's (proto/), called
 * directly and never copied here: record keys, collection prefixes and
 * integers (fieldsync/keys.h: fsk_*), DEK names, the AAD and the
 * sealed-value frame (fieldsync/seal.h: fss_*), UUIDs (fieldsync/crypto.h:
 * fsc_uuid).
 *
 * Layer: operations (over db, seal and credstore). The fs_store it
 * hands out is the app's until fs_store_close, which wipes the store key.
 *
 * NOTES ON THE DESIGN OF THE STORE
 *
 * One LMDB environment in the store directory (data.mdb, lock.mdb, mode
 * 0600 in a 0700 directory), opened with MDB_NOTLS (read transactions are
 * not tied to a thread) and without MDB_NOSYNC: every write transaction is
 * fsync'ed before the call that made it returns. Named databases:
 *
 *   meta      "schema"     -> u32 LE SDK_SCHEMA; any other value is refused
 *                             (FS_ERR_VERSION), never guessed at
 *             "replica"    -> 36-byte UUID text, made by fs_store_create from
 *                             fsc_uuid (OpenSSL RAND_bytes); never changed,
 *                             never reused
 *             "scope"      -> the default scope for new records
 *             "checkpoint" -> u64 LE, last_seq of the last applied PullReply
 *             "cs_next"    -> u64 LE, the key of the next in-flight change set
 *             "last_ok"    -> i64 LE, wall clock ms of the last good sync
 *             "last_err"   -> [u32 LE fs_err][i64 LE ms][message text]
 *             "credential" -> the store's credential as compact JSON, without
 *                             its secret (absent: none; credstore.c)
 *             "credential_secret" -> its Z85 secret key (40 bytes; sealed in
 *                             an encrypted store)
 *             "welcome"    -> what the last Welcome offered (sdk_welcome_put):
 *                             [u32 LE encodings][u32 LE max_window][u32 LE
 *                             max_changes][u64 LE max_message_bytes], then
 *                             endpoint, server key and generation, each [u8
 *                             len][bytes]; absent, short or another daemon's:
 *                             the next sync waits for Welcome as a first one
 *   records   key(collection, id) -> packed fieldsync.v1.RecordState: the
 *             scope and ALL current siblings (Records with versions). One
 *             sibling unless in conflict. key = [u8 len(collection)]
 *             [collection][id] (fsk_record_key), so a collection is a key
 *             prefix (fsk_record_prefix).
 *   outbox    key(collection, id) -> [u8 state][u8 n][changeset_id: n bytes]
 *             [u16 LE m][reason: m bytes][packed Record]. At most ONE entry
 *             per record: the latest local value, whose version dominates
 *             every earlier local value, so pushing it alone is enough.
 *             changeset_id is empty until the entry is put in a change set.
 *   changes, change_keys   the change feed (changes.h): u64 BE local
 *             change counter -> [remote][kind][record key], and record key
 *             -> its latest counter; meta "change_seq" is the counter
 *   case_contacts, contact_cases   contacts by case (caseindex.h)
 *             (these four are created at open in a store made by an SDK
 *             that predates them, and the index is built then)
 *   inflight  u64 BE key (fsk_put_be64) -> packed PushRequest, exactly the bytes sent (its
 *             changeset_id inside). A change set lives here from the moment
 *             it is made until a reply (or a request-level refusal) is
 *             applied, so a retry resends the same id and the same changes.
 *
 * Outbox entry states and the functions that move them:
 *
 *   (none) --write_value (records.c)--> PENDING, no id
 *   PENDING/SOLO, no id --sdk_push_prepare (push.c)--> same state, id = new
 *       change set
 *   with id --sdk_push_done, acknowledged, same version--> deleted
 *   with id --sdk_push_done, REJECTED--> PARKED (reason) or PENDING/SOLO, no id
 *   with id --sdk_push_refused--> PARKED (one change) or SOLO (several)
 *       (both settle each entry through sdk_outbox_settle, outbox.c)
 *   any --write_value (a new local edit)--> PENDING, no id: a new version that
 *       is not in any change set; an ack of the older version compares
 *       versions and leaves it alone, so an edit made during a sync survives
 *   PARKED --fs_retry_failed (outbox.c)--> PENDING, no id
 *   any --sdk_pull_apply (pull.c) of a purged/revoked record--> deleted
 *
 * SOLO entries are pushed one per change set: used after the daemon refused
 * a multi-change set without saying which change was at fault.
 *
 * Invariants: an outbox entry's record is always one of the record's
 * siblings or dominated by one; the checkpoint and the records of a
 * PullReply page move in the same transaction, so a crash re-pulls a page
 * (pulling is idempotent) but never skips one.
 *
 * ENCRYPTED STORES (fs_store_create_ex with a key)
 *
 * The same layout, with "schema" = 2 (so an SDK that predates encryption
 * refuses the store instead of reading ciphertext as data), and:
 *
 *   meta      "encryption" -> u8 1: AES-256-GCM envelope encryption
 *             "key_check"  -> fsc_wrap(store key, store DEK): opening the
 *                             store unwraps it, which proves the key (and
 *                             its id) right: FS_ERR_KEY_WRONG otherwise
 *   keys      DEK name -> fsc_wrap(store key, DEK). Names as the daemon's
 *             keyring (fss_dek_for): "c:<case_id>" for a case and its
 *             contacts (a contact's case is its payload's case_id,
 *             fsp_contact_case_id), "r:<collection>/<id>" for every other
 *             record (and a contact without a valid case id)
 *
 * Every non-empty payload - of every sibling in `records`, of the Record in
 * an `outbox` entry, of every change of an `inflight` PushRequest - is
 * stored as [0xFE 'K'][u8 name length][DEK name][fsc_seal output] with AAD
 * "<collection>\0<id>" (taken from the LMDB key for records and outbox),
 * the daemon's format: the core's fss_seal and fss_open (fieldsync/seal.h),
 * called from seal.c. A non-empty payload that is not a well-formed sealed
 * value (plain, or FSS_MALFORMED) counts as one whose DEK is gone
 * (RC_SEAL_BAD): reading its record is FS_ERR_CORRUPT, its outbox entry is
 * not pushed, its in-flight set is requeued. Payloads are plaintext only
 * in memory: sdk_record_load and the push functions open them,
 * sdk_record_save and write_value seal them. Ids, scopes, versions and
 * the outbox bookkeeping stay in clear.
 *
 * A DEK is created (and wrapped) in the write transaction that first seals
 * with it, so a sealed value and its key are committed together. A purged
 * record's "r:" key is destroyed with it; a purged case destroys "c:<id>"
 * and with it every record and outbox entry sealed under that key (its
 * contacts). A revoked record loses its "r:" key only. An in-flight set
 * that no longer opens (its DEK destroyed) is dropped and its changes
 * requeued: the daemon answers a repeat DUPLICATE, so nothing is applied
 * twice. fs_store_rekey re-wraps every DEK and the key check in one
 * transaction. The credential's secret key ("credential_secret") is sealed
 * with the store DEK.
 *
 * LMDB copies pages on write and does not wipe freed pages: until a freed
 * page is reused, data.mdb can still hold an older wrapped DEK (after a
 * purge) or a DEK wrapped by the old store key (after a rekey). Neither is
 * plaintext, and neither opens without the store key that wrapped it: to
 * make a purge final against a copy of the files, rekey and destroy the old
 * key.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caseindex.h"
#include "changes.h"
#include "credstore.h"
#include "db.h"
#include "fieldsync/crypto.h"
#include "fieldsync/keys.h"
#include "migrate.h"
#include "seal.h"

#define SDK_SCHEMA 1u     /* a plain store */
#define SDK_SCHEMA_ENC 2u /* an encrypted store */
/* The most the store may grow to: LMDB maps it whole, so it must fit the
 * address space. 4 GiB where size_t has 64 bits; 512 MiB on 32-bit ABIs
 * (armeabi-v7a, armhf), where a larger map may not find the room. */
#if SIZE_MAX > 0xffffffffu
#define MAP_SIZE ((size_t)4 << 30)
#else
#define MAP_SIZE ((size_t)512 << 20)
#endif

/* ---- the store key ------------------------------------------------------ */

/* A store key id: 1..FSC_KEY_ID_MAX of [A-Za-z0-9._-] (fsc_master_parse's rule). */
static bool
key_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > FSC_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* The key of opts into *m. *has false (and FS_OK) when opts carry no key. */
fs_err
sdk_store_opts_key(const fs_store_opts *o, fsc_master *m, bool *has)
{
	*has = false;
	if (o != NULL && o->key == NULL && o->key_provider != NULL) {
		uint8_t key[FS_STORE_KEY_LEN];
		char id[65] = "";
		fs_err e = o->key_provider(o->key_provider_arg, key, id);
		id[64] = '\0';
		if (e == FS_OK && !key_id_ok(id))
			e = FS_ERR_INVALID;
		if (e == FS_OK) {
			memcpy(m->key, key, FSC_KEY_LEN);
			snprintf(m->id, sizeof(m->id), "%s", id);
			*has = true;
		}
		fsc_cleanse(key, sizeof(key));
		return e;
	}
	if (o == NULL || (o->key == NULL && o->key_len == 0 && o->key_id == NULL))
		return FS_OK;
	if (o->key == NULL || o->key_len != FS_STORE_KEY_LEN || !key_id_ok(o->key_id))
		return FS_ERR_INVALID;
	memcpy(m->key, o->key, FSC_KEY_LEN);
	snprintf(m->id, sizeof(m->id), "%s", o->key_id);
	*has = true;
	return FS_OK;
}

/* ---- open, create, close ------------------------------------------------ */

/*
 * Physical erasure: a purge deletes through LMDB, which keeps the bytes in
 * free pages; pull.c makes DIR/erase.pending durable before such a page
 * commits. When it is there, the store is copied with its live pages only
 * (MDB_CP_COMPACT) to data.mdb.new, fsynced, lock.mdb is dropped (it
 * belongs to the old file), the copy renamed over data.mdb, the directory
 * fsynced, and the marker removed. A crash anywhere leaves either the old
 * file (and the marker: redone at the next open) or the new one. It runs
 * with flock(LOCK_EX) on DIR/erase.lock, which every open handle holds
 * LOCK_SH, so only when no handle of any process has the store open: at
 * fs_store_close of the last handle, or at the next fs_store_open.
 * FIELDSYNC_TEST_CRASH_AT=sdk-erase-marked|sdk-compact-copied|
 * sdk-compact-renamed makes the process _exit there (crash tests).
 */

bool
sdk_fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

/* Test hook: FIELDSYNC_TEST_CRASH_AT=<point> makes the process _exit(86)
 * at that point of a compaction (the crash tests' kill -9). Harmless
 * unless the variable names one of these points. */
static void
crash_point(const char *point)
{
	const char *at = getenv("FIELDSYNC_TEST_CRASH_AT");
	if (at != NULL && strcmp(at, point) == 0)
		_exit(86);
}

static void
compact_if_marked(const char *dir, int lockfd)
{
	char marker[4200], tmp[4200], data[4200], lock[4200];
	MDB_env *env = NULL;
	snprintf(marker, sizeof(marker), "%s/erase.pending", dir);
	if (access(marker, F_OK) != 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s/data.mdb.new", dir);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && sdk_store_env_open(dir, &env) == FS_OK &&
	          mdb_env_copyfd2(env, fd, MDB_CP_COMPACT) == MDB_SUCCESS && fsync(fd) == 0;
	if (env != NULL)
		mdb_env_close(env);
	if (fd >= 0)
		close(fd);
	if (ok)
		crash_point("sdk-compact-copied");
	ok = ok && (unlink(lock) == 0 || errno == ENOENT) && rename(tmp, data) == 0 &&
	     sdk_fsync_path(dir, O_RDONLY | O_DIRECTORY);
	if (ok)
		crash_point("sdk-compact-renamed");
	if (ok && unlink(marker) == 0)
		sdk_fsync_path(dir, O_RDONLY | O_DIRECTORY);
	if (!ok)
		unlink(tmp);
	flock(lockfd, LOCK_UN);
}

/* Opens DIR/erase.lock, finishes an erasure's compaction that is owed,
 * and holds LOCK_SH for the handle's life. */
static fs_err
lock_open(fs_store *s, const char *dir)
{
	char path[4200];
	if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir))
		return FS_ERR_INVALID;
	snprintf(path, sizeof(path), "%s/erase.lock", dir);
	if ((s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return errno == ENOENT ? FS_ERR_NOT_FOUND : FS_ERR_IO;
	compact_if_marked(dir, s->lockfd);
	while (flock(s->lockfd, LOCK_SH) != 0)
		if (errno != EINTR)
			return FS_ERR_IO;
	return FS_OK;
}

fs_err
sdk_store_env_open(const char *dir, MDB_env **out)
{
	MDB_env *env = NULL;
	int rc = mdb_env_create(&env);
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((rc = mdb_env_set_maxdbs(env, 16)) != MDB_SUCCESS ||
	    (rc = mdb_env_set_mapsize(env, MAP_SIZE)) != MDB_SUCCESS ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != MDB_SUCCESS) {
		mdb_env_close(env);
		return sdk_map_rc(rc);
	}
	*out = env;
	return FS_OK;
}

int
sdk_store_dbis_open(fs_store *s, MDB_txn *t, unsigned flags)
{
	int rc;
	if ((rc = mdb_dbi_open(t, "meta", flags, &s->meta)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "records", flags, &s->records)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "outbox", flags, &s->outbox)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "inflight", flags, &s->inflight)) != MDB_SUCCESS)
		return rc;
	return MDB_SUCCESS;
}

/* The tables a newer SDK added: the change feed and the case index. */
static int
extra_dbis_open(fs_store *s, MDB_txn *t, unsigned flags)
{
	int rc = sdk_changes_open(s, t, flags);
	if (rc == MDB_SUCCESS)
		rc = sdk_caseidx_open(s, t, flags);
	return rc;
}

/*
 * A store made by an SDK before the change feed and the case index: both
 * tables are made and the index is built from `records`, in one write
 * transaction. The feed starts empty (the store's past is not replayed).
 */
static fs_err
extra_dbis_create(fs_store *s)
{
	MDB_txn *t = NULL;
	int rc;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((rc = extra_dbis_open(s, t, MDB_CREATE)) != MDB_SUCCESS ||
	    (rc = sdk_caseidx_build(s, t)) != MDB_SUCCESS) {
		mdb_txn_abort(t);
		return sdk_map_rc(rc);
	}
	return sdk_txn_commit(&t);
}

/* A text value of 1..max bytes that must be there, into buf (max + 1 bytes);
 * FS_ERR_CORRUPT when it is absent or out of bounds. */
static fs_err
meta_text(fs_store *s, MDB_txn *t, const char *name, char *buf, size_t max)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc != MDB_SUCCESS)
		return rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : sdk_map_rc(rc);
	if (d.mv_size == 0 || d.mv_size > max)
		return FS_ERR_CORRUPT;
	memcpy(buf, d.mv_data, d.mv_size);
	buf[d.mv_size] = '\0';
	return FS_OK;
}

/* Reads schema, replica, scope and whether the store is encrypted into s. */
fs_err
sdk_store_load_meta(fs_store *s, MDB_txn *t)
{
	MDB_val k, d;
	k.mv_data = "schema";
	k.mv_size = 6;
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_NOTFOUND)
		return FS_ERR_NOT_FOUND;
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if (d.mv_size != 4)
		return FS_ERR_CORRUPT;
	const uint8_t *p = d.mv_data;
	uint32_t schema = fsk_get_le32(p);
	if (schema != SDK_SCHEMA && schema != SDK_SCHEMA_ENC)
		return FS_ERR_VERSION;
	k.mv_data = "encryption";
	k.mv_size = 10;
	rc = mdb_get(t, s->meta, &k, &d);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return sdk_map_rc(rc);
	s->encrypted = rc == MDB_SUCCESS;
	if (s->encrypted != (schema == SDK_SCHEMA_ENC))
		return FS_ERR_CORRUPT; /* never guess which one is right */
	if (s->encrypted && (d.mv_size != 1 || ((const uint8_t *)d.mv_data)[0] != 1))
		return FS_ERR_VERSION; /* a scheme this SDK does not know */
	fs_err err = meta_text(s, t, "replica", s->replica, FSP_REPLICA_MAX);
	if (err == FS_OK)
		err = meta_text(s, t, "scope", s->scope, FSP_SCOPE_MAX);
	if (err == FS_OK && !fsp_scope_valid(s->scope))
		err = FS_ERR_CORRUPT;
	return err;
}

/*
 * Proves the key in s->master right for an encrypted store: unwraps the key
 * check into s->store_dek. FS_ERR_KEY_WRONG when it does not unwrap.
 */
static fs_err
key_check(fs_store *s, MDB_txn *t)
{
	MDB_val k = {9, "key_check"}, d;
	char id[FSC_KEY_ID_MAX + 1];
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc != MDB_SUCCESS)
		return rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : sdk_map_rc(rc);
	if (!fsc_wrapped_key_id(d.mv_data, d.mv_size, id))
		return FS_ERR_CORRUPT;
	if (strcmp(id, s->master.id) != 0)
		return FS_ERR_KEY_WRONG;
	return fsc_unwrap(&s->master, d.mv_data, d.mv_size, s->store_dek) ? FS_OK
	                                                                  : FS_ERR_KEY_WRONG;
}

bool
sdk_store_has_data_file(const char *dir)
{
	char path[4096];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path))
		return false;
	return stat(path, &st) == 0;
}

fs_err
fs_store_create_ex(const char *dir, const fs_store_opts *o, fs_store **out)
{
	fs_store *s = NULL;
	MDB_txn *t = NULL;
	fs_err err;
	int rc;
	bool keyed = false;
	fsc_master m;
	const fs_credential *cred = o ? o->credential : NULL;
	const char *scope = o && o->default_scope ? o->default_scope : NULL;

	memset(&m, 0, sizeof(m));
	if (dir == NULL || out == NULL)
		return FS_ERR_INVALID;
	if ((err = sdk_store_opts_key(o, &m, &keyed)) != FS_OK)
		goto out;
	if (cred != NULL && (cred->n_scopes == 0 || cred->scopes == NULL)) {
		err = FS_ERR_INVALID;
		goto out;
	}
	if (scope == NULL)
		scope = cred != NULL ? cred->scopes[0] : "default";
	if (scope == NULL || !fsp_scope_valid(scope)) {
		err = FS_ERR_INVALID;
		goto out;
	}
	if (cred != NULL) { /* a default scope the credential does not grant is a mistake */
		bool granted = false;
		for (size_t i = 0; i < cred->n_scopes; i++)
			granted |= cred->scopes[i] != NULL && strcmp(cred->scopes[i], scope) == 0;
		if (!granted) {
			err = FS_ERR_INVALID;
			goto out;
		}
	}
	if (cred != NULL && !keyed) { /* a credential's store is always encrypted */
		err = FS_ERR_KEY_REQUIRED;
		goto out;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = errno == ENOENT ? FS_ERR_NOT_FOUND : FS_ERR_IO;
		goto out;
	}
	if (sdk_store_has_data_file(dir)) {
		err = FS_ERR_EXISTS;
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	s->lockfd = -1;
	if ((err = lock_open(s, dir)) != FS_OK || (err = sdk_store_env_open(dir, &s->env)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = sdk_store_dbis_open(s, t, MDB_CREATE)) != MDB_SUCCESS ||
	    (rc = extra_dbis_open(s, t, MDB_CREATE)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	err = sdk_store_load_meta(s, t);
	if (err == FS_OK) { /* another process won the race */
		err = FS_ERR_EXISTS;
		goto out;
	}
	if (err != FS_ERR_NOT_FOUND)
		goto out;
	uint8_t schema[4];
	fsk_put_le32(schema, keyed ? SDK_SCHEMA_ENC : SDK_SCHEMA);
	if (!fsc_uuid(s->replica)) {
		err = FS_ERR_IO;
		goto out;
	}
	snprintf(s->scope, sizeof(s->scope), "%s", scope);
	if ((rc = sdk_meta_put(s, t, "schema", schema, 4)) != MDB_SUCCESS ||
	    (rc = sdk_meta_put(s, t, "replica", s->replica, strlen(s->replica))) != MDB_SUCCESS ||
	    (rc = sdk_meta_put(s, t, "scope", s->scope, strlen(s->scope))) != MDB_SUCCESS ||
	    (rc = sdk_meta_put_u64(s, t, "checkpoint", 0)) != MDB_SUCCESS ||
	    (rc = sdk_meta_put_u64(s, t, "cs_next", 1)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (keyed) {
		uint8_t one = 1, *w = NULL;
		size_t wl = 0;
		s->encrypted = true;
		s->master = m;
		if (!fsc_new_key(s->store_dek) || !fsc_wrap(&s->master, s->store_dek, &w, &wl)) {
			err = FS_ERR_IO;
			goto out;
		}
		rc = mdb_dbi_open(t, "keys", MDB_CREATE, &s->keys);
		if (rc == MDB_SUCCESS)
			rc = sdk_meta_put(s, t, "encryption", &one, 1);
		if (rc == MDB_SUCCESS)
			rc = sdk_meta_put(s, t, "key_check", w, wl);
		free(w);
		if (rc != MDB_SUCCESS) {
			err = sdk_map_rc(rc);
			goto out;
		}
	}
	if (cred != NULL && (err = sdk_cred_put(s, t, cred)) != FS_OK)
		goto out;
	err = sdk_txn_commit(&t);
out:
	sdk_txn_abort(&t);
	if (err != FS_OK)
		fs_store_close(&s);
	fsc_cleanse(&m, sizeof(m));
	*out = s;
	return err;
}

fs_err
fs_store_create(const char *dir, const char *default_scope, fs_store **out)
{
	fs_store_opts o;
	memset(&o, 0, sizeof(o));
	o.default_scope = default_scope;
	return fs_store_create_ex(dir, &o, out);
}

fs_err
fs_store_open_ex(const char *dir, const fs_store_opts *o, fs_store **out)
{
	fs_store *s = NULL;
	MDB_txn *t = NULL;
	fs_err err;
	int rc;
	bool keyed = false;

	if (dir == NULL || out == NULL)
		return FS_ERR_INVALID;
	if (!sdk_store_has_data_file(dir))
		return FS_ERR_NOT_FOUND;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return FS_ERR_NOMEM;
	s->lockfd = -1;
	if ((err = sdk_store_opts_key(o, &s->master, &keyed)) != FS_OK)
		goto out;
	if ((err = lock_open(s, dir)) != FS_OK || (err = sdk_store_env_open(dir, &s->env)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	rc = sdk_store_dbis_open(s, t, 0);
	if (rc == MDB_NOTFOUND) { /* created but never initialised */
		err = FS_ERR_NOT_FOUND;
		goto out;
	}
	if (rc != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_store_load_meta(s, t)) != FS_OK)
		goto out;
	if (s->encrypted && !keyed) {
		err = FS_ERR_KEY_REQUIRED;
		goto out;
	}
	if (!s->encrypted && keyed) {
		err = FS_ERR_NOT_ENCRYPTED;
		goto out;
	}
	if (!s->encrypted) { /* an older SDK's plain store with a secret key in it */
		MDB_val ck = {17, "credential_secret"}, cd;
		if ((rc = mdb_get(t, s->meta, &ck, &cd)) == MDB_SUCCESS) {
			err = FS_ERR_PLAIN_CREDENTIAL;
			goto out;
		}
		if (rc != MDB_NOTFOUND) {
			err = sdk_map_rc(rc);
			goto out;
		}
	}
	if (s->encrypted) {
		if ((rc = mdb_dbi_open(t, "keys", 0, &s->keys)) != MDB_SUCCESS) {
			err = rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : sdk_map_rc(rc);
			goto out;
		}
		if ((err = key_check(s, t)) != FS_OK)
			goto out;
	}
	rc = extra_dbis_open(s, t, 0);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = sdk_map_rc(rc);
		goto out;
	}
	/* DBI handles opened in a read txn stay valid once it commits. */
	err = sdk_txn_commit(&t);
	if (err == FS_OK && rc == MDB_NOTFOUND)
		err = extra_dbis_create(s);
out:
	sdk_txn_abort(&t);
	if (err != FS_OK)
		fs_store_close(&s);
	*out = s;
	return err;
}

fs_err
fs_store_open(const char *dir, fs_store **out)
{
	return fs_store_open_ex(dir, NULL, out);
}

void
fs_store_close(fs_store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	fs_store *s = *sp;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lockfd >= 0) { /* the last handle makes a purge physical */
		flock(s->lockfd, LOCK_UN);
		compact_if_marked(s->dir, s->lockfd);
		close(s->lockfd);
	}
	fsc_cleanse(*sp, sizeof(**sp)); /* the store key and the store DEK */
	free(*sp);
	*sp = NULL;
}

const char *
fs_store_replica_id(const fs_store *s)
{
	return s->replica;
}

const char *
fs_store_default_scope(const fs_store *s)
{
	return s->scope;
}

bool
fs_store_encrypted(const fs_store *s)
{
	return s != NULL && s->encrypted;
}

fs_err
fs_store_rekey(fs_store *s, const uint8_t *key, size_t key_len, const char *key_id)
{
	MDB_txn *t = NULL;
	fsc_master nm;
	uint8_t *w = NULL;
	size_t wl = 0;
	fs_err err;
	int rc;
	bool keyed = false;
	fs_store_opts o;

	memset(&nm, 0, sizeof(nm));
	memset(&o, 0, sizeof(o));
	o.key = key;
	o.key_len = key_len;
	o.key_id = key_id;
	if (s == NULL || key == NULL)
		return FS_ERR_INVALID;
	if ((err = sdk_store_opts_key(&o, &nm, &keyed)) != FS_OK)
		goto out;
	if (!s->encrypted) {
		err = FS_ERR_NOT_ENCRYPTED;
		goto out;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_dek_rewrap_all(s, t, &nm)) != FS_OK)
		goto out;
	if (!fsc_wrap(&nm, s->store_dek, &w, &wl)) {
		err = FS_ERR_IO;
		goto out;
	}
	if ((rc = sdk_meta_put(s, t, "key_check", w, wl)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_txn_commit(&t)) == FS_OK)
		s->master = nm;
out:
	sdk_txn_abort(&t);
	free(w);
	fsc_cleanse(&nm, sizeof(nm));
	return err;
}

/* ---- the last Welcome (sync.c's one-flight start) ------------------------ */

#define WELCOME_HEAD 20

static size_t
welcome_pack(const sdk_welcome_facts *f, uint8_t *b)
{
	const char *str[3] = {f->endpoint, f->server_key, f->generation};
	size_t n = WELCOME_HEAD;
	fsk_put_le32(b, f->encodings);
	fsk_put_le32(b + 4, f->max_window);
	fsk_put_le32(b + 8, f->max_changes);
	fsk_put_le64(b + 12, f->max_message_bytes);
	for (int i = 0; i < 3; i++) {
		size_t l = strlen(str[i]);
		b[n++] = (uint8_t)l;
		memcpy(b + n, str[i], l);
		n += l;
	}
	return n;
}

/* Decodes a stored value into f; false when it is not one we wrote. */
static bool
welcome_unpack(const uint8_t *b, size_t len, sdk_welcome_facts *f)
{
	char *str[3] = {f->endpoint, f->server_key, f->generation};
	size_t cap[3] = {sizeof(f->endpoint), sizeof(f->server_key), sizeof(f->generation)};
	size_t n = WELCOME_HEAD;
	if (len < WELCOME_HEAD)
		return false;
	f->encodings = fsk_get_le32(b);
	f->max_window = fsk_get_le32(b + 4);
	f->max_changes = fsk_get_le32(b + 8);
	f->max_message_bytes = fsk_get_le64(b + 12);
	for (int i = 0; i < 3; i++) {
		if (n >= len || b[n] >= cap[i] || len - n - 1 < b[n])
			return false;
		memcpy(str[i], b + n + 1, b[n]);
		str[i][b[n]] = '\0';
		n += 1 + (size_t)b[n];
	}
	return n == len;
}

fs_err
sdk_welcome_load(fs_store *s, const char *endpoint, const char *server_key, sdk_welcome_facts *f)
{
	MDB_txn *t = NULL;
	MDB_val k = {7, "welcome"}, d;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = mdb_get(t, s->meta, &k, &d);
	bool ok = rc == MDB_SUCCESS && welcome_unpack(d.mv_data, d.mv_size, f);
	sdk_txn_abort(&t);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return sdk_map_rc(rc);
	if (!ok || strcmp(f->endpoint, endpoint) != 0 ||
	    strcmp(f->server_key, server_key != NULL ? server_key : "") != 0)
		return FS_ERR_NOT_FOUND;
	return FS_OK;
}

int
sdk_welcome_put(fs_store *s, MDB_txn *t, const sdk_welcome_facts *f)
{
	uint8_t b[WELCOME_HEAD + 3 + sizeof(f->endpoint) + sizeof(f->server_key) +
	          sizeof(f->generation)];
	MDB_val k = {7, "welcome"}, d;
	if (strlen(f->endpoint) >= sizeof(f->endpoint) ||
	    strlen(f->server_key) >= sizeof(f->server_key) ||
	    strlen(f->generation) >= sizeof(f->generation))
		return EINVAL;
	size_t n = welcome_pack(f, b);
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_SUCCESS && d.mv_size == n && memcmp(d.mv_data, b, n) == 0)
		return MDB_SUCCESS; /* unchanged: nothing written */
	return sdk_meta_put(s, t, "welcome", b, n);
}
