/*
 * store: the daemon's LMDB environment (storage layer). See store.h.
 *
 * NOTES ON THE DESIGN OF THE STORE
 *
 * One LMDB environment under --data-dir (data.mdb, lock.mdb), opened with
 * MDB_NOTLS so a read transaction is not tied to a thread, and without
 * MDB_NOSYNC: a commit that returns has been fsync'ed, and only then is a
 * change set acknowledged (PROTOCOL.md §4).
 *
 * The store owns one table itself:
 *   meta       "schema"    -> u32 LE, STORE_SCHEMA; a store written by another
 *                             schema is refused at start-up, never guessed at
 *              "server_id" -> 36-byte UUID text, made when the store is created
 *                             (fsc_uuid: no randomness, no store)
 *              "generation" -> 36-byte UUID text (PROTOCOL.md §7): made with the
 *                             store, made anew by store_new_generation (a
 *                             restore); a store written by release 1 has none
 *                             and gets one at its first open by this build
 *              "seq"       -> u64 LE (fsk_put_le64), the last feed position
 *                             handed out
 *              "health_probe" -> u64 LE, counted up by the probe commit after a
 *                             storage failure (store_read_begin), nothing else
 *              other names -> u64 LE counters, each owned by one module
 *                             (store_meta_*): "reply_age" (replies.c, made
 *                             with the store so a new store's bytes stay as
 *                             they were), "event_seq" and "published_seq"
 *                             (events.c), "audit_seq" (audit.c),
 *                             "conflicts_open" (changeset.c), "rem:R:S"
 *                             (reminders.c).
 * Every other table is declared by the module that owns its layout, which
 * documents it (records.c: records, feed, former_scopes; replies.c:
 * replies, reply_age; caseindex.c: case_contacts; reminders.c: reminders,
 * timers; events.c: events; registry.c: devices, device_names; audit.c:
 * audit; keyring.c: keys) and is opened by name (schema.c lists them).
 *
 * Transactions and their transitions:
 *   store_read_begin/store_read_end   any thread; holds `grow_lock` shared.
 *   store_write_begin                 the writer thread only; reads meta.seq.
 *   store_nested_begin                a child of the write txn: one change set,
 *                                     aborted alone when the set is rejected.
 *   store_commit                      writes meta.seq if it moved; for the top
 *                                     txn this is the durable commit.
 *   store_grow                        MDB_MAP_FULL: the writer aborts, takes
 *                                     `grow_lock` exclusively (no reader may be
 *                                     open, LMDB's rule for mdb_env_set_mapsize),
 *                                     doubles the map and retries the batch.
 *   store_copy_env                    a backup: LMDB's (compacting) copy of an
 *                                     environment opened read-only, in one
 *                                     read txn beside the running writer.
 * A commit that fails with ENOSPC, EDQUOT, EFBIG, or EIO (LMDB's word for a
 * short write) while the disk has next to no space left or data.mdb is at
 * RLIMIT_FSIZE (commit_rc), is FSD_NOSPACE ("storage is full"); any other
 * EIO is FSD_IO ("storage write failed"). Nothing was acknowledged: LMDB
 * rolled the transaction back (the meta page was never written), and
 * callers answer BUSY (full) or UNAVAILABLE (a failed write). The daemon
 * goes on serving reads and retries writes as they come.
 *
 * Storage failures (store_health; deploy/README.md, "When storage fails"):
 * a failed top-level commit marks the store failing, and /readyz says 503
 * while any store of the process is. A failed write of LMDB's meta page (a
 * commit's last) stops the environment (MDB_PANIC: every later txn fails,
 * reads too) until it is reopened. The thread that writes s does that,
 * holding no txn of s: store_write_begin before it begins, and
 * store_read_begin (the idle writer reads once a second), which then proves
 * the disk with a commit of its own (meta "health_probe"; a plain
 * environment: a forced sync) at most once a second, so /readyz turns 200
 * again with no push coming. A reopen takes `grow_lock` exclusively and
 * waits for no write txn (`writes_open`). Nothing uncommitted is
 * acknowledged: the failed commit returned its error and LMDB rolled it
 * back; the reopened environment is the last committed one, forced to disk
 * before use. A failure that does not stop LMDB (an fsync) leaves it
 * usable: the next commit that succeeds clears the state.
 *
 * The single-writer lock (store_lock_dir and the rest) is store_lock.c's;
 * the table operations (store_kv_*, store_meta_*), the stats and the
 * read-only looks and hot copies (store_copy_env) are store_kv.c's, on
 * the private header store_impl.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fieldsync/crypto.h"
#include "fieldsync/keys.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_impl.h"
#include "sys.h"

#define STORE_SCHEMA 1u

/* Every store of the process that is failing, for /readyz (store_health). */
static atomic_int g_failing;
static pthread_mutex_t g_why_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_why[160];
/* The store this thread writes (set by store_write_begin): recovery runs there. */
static _Thread_local store *tl_writes;

fsd_err
map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return FSD_OK;
	case MDB_NOTFOUND:
		return FSD_NOTFOUND;
	case MDB_MAP_FULL:
		return FSD_FULL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return FSD_NOSPACE;
	case EIO: /* a commit's EIO may still be a full disk: commit_rc looks */
		return FSD_IO;
	default:
		return FSD_ERROR;
	}
}

/* Marks s failing (logged when that is news), with a reason for /readyz.
 * A full map is not a failure: the writer grows it and retries. */
static void
mark_failing(store *s, bool panicked, int rc)
{
	if (rc == MDB_MAP_FULL)
		return;
	bool was_panicked = panicked && atomic_exchange(&s->panicked, true);
	pthread_mutex_lock(&g_why_lock);
	snprintf(g_why, sizeof(g_why), "storage failing: %s (%s); writes are refused until %s",
	         panicked ? "LMDB stopped the environment after a failed write" : "a commit failed",
	         mdb_strerror(rc), panicked ? "it is reopened" : "a commit succeeds");
	pthread_mutex_unlock(&g_why_lock);
	if (!atomic_exchange(&s->failing, true)) {
		metrics_set(METRIC_STORAGE_FAILING, 0, atomic_fetch_add(&g_failing, 1) + 1);
		log_event(LOG_ERROR,
		          "storage failing: nothing is acknowledged until a commit succeeds",
		          LS("error", mdb_strerror(rc)), LI("panic", panicked), NULL);
	} else if (panicked && !was_panicked) {
		log_event(LOG_ERROR, "storage failing: the environment must be reopened",
		          LS("error", mdb_strerror(rc)), NULL);
	}
}

static void
mark_healthy(store *s)
{
	if (atomic_exchange(&s->failing, false)) {
		metrics_set(METRIC_STORAGE_FAILING, 0, atomic_fetch_sub(&g_failing, 1) - 1);
		log_event(LOG_WARN, "storage recovered: commits succeed again", NULL);
	}
}

int
meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	*out = 0;
	if (rc == MDB_SUCCESS && v.mv_size == 8)
		*out = fsk_get_le64(v.mv_data);
	return rc;
}

int
meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
	uint8_t b[8];
	MDB_val k = {strlen(name), (void *)name}, v = {8, b};
	fsk_put_le64(b, val);
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Writes a new generation (a fresh UUID) into meta and s. */
static int
put_generation(store *s, MDB_txn *txn)
{
	char id[FSC_UUID_LEN + 1];
	if (!fsc_uuid(id)) {
		log_event(LOG_ERROR, "no randomness for the store generation", NULL);
		return EIO;
	}
	MDB_val k = {10, "generation"}, v = {FSC_UUID_LEN, id};
	int rc = mdb_put(txn, s->meta, &k, &v, 0);
	if (rc == 0)
		memcpy(s->generation, id, sizeof(id));
	return rc;
}

/* Creates or checks the meta entries; runs once in store_open. */
static int
store_init_meta(store *s, MDB_txn *txn)
{
	MDB_val k = {6, "schema"}, v;
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint32_t schema = STORE_SCHEMA;
		uint8_t sb[4];
		char id[FSC_UUID_LEN + 1];
		MDB_val sv = {4, sb};
		fsk_put_le32(sb, schema);
		if (!fsc_uuid(id)) { /* no randomness: no store with a guessable id */
			log_event(LOG_ERROR, "no randomness for the server id", NULL);
			return EIO;
		}
		MDB_val ik = {9, "server_id"}, iv = {FSC_UUID_LEN, id};
		if ((rc = mdb_put(txn, s->meta, &k, &sv, 0)) != 0 ||
		    (rc = mdb_put(txn, s->meta, &ik, &iv, 0)) != 0 ||
		    (rc = meta_put_u64(txn, s->meta, "seq", 0)) != 0 ||
		    (rc = meta_put_u64(txn, s->meta, "reply_age", 0)) != 0 ||
		    (rc = put_generation(s, txn)) != 0)
			return rc;
		log_event(LOG_INFO, "store created", LS("server_id", id), LU("schema", schema),
		          NULL);
	} else if (rc != MDB_SUCCESS) {
		return rc;
	} else {
		uint32_t schema = 0;
		if (v.mv_size == 4)
			schema = fsk_get_le32(v.mv_data);
		if (schema != STORE_SCHEMA) {
			log_event(LOG_ERROR, "store schema not supported by this fieldsyncd",
			          LU("schema", schema), LU("expected", STORE_SCHEMA), NULL);
			return EINVAL;
		}
	}
	MDB_val ik = {9, "server_id"}, iv;
	if ((rc = mdb_get(txn, s->meta, &ik, &iv)) != 0)
		return rc;
	if (iv.mv_size >= sizeof(s->server_id))
		return EINVAL;
	memcpy(s->server_id, iv.mv_data, iv.mv_size);
	s->server_id[iv.mv_size] = '\0';
	MDB_val gk = {10, "generation"}, gv;
	rc = mdb_get(txn, s->meta, &gk, &gv);
	if (rc == MDB_NOTFOUND) { /* written by release 1: its first generation */
		if ((rc = put_generation(s, txn)) != 0)
			return rc;
		log_event(LOG_INFO, "the store had no generation (release 1): gave it one",
		          LS("generation", s->generation), NULL);
		return 0;
	}
	if (rc != 0)
		return rc;
	if (gv.mv_size >= sizeof(s->generation))
		return EINVAL;
	memcpy(s->generation, gv.mv_data, gv.mv_size);
	s->generation[gv.mv_size] = '\0';
	return 0;
}

/* The dbi of table tb, or -1 (logged) when it was not opened. */
int
table_dbi(store *s, const store_table *tb, MDB_dbi *out)
{
	for (size_t i = 0; i < s->n_tables; i++)
		if (s->table[i] == tb) {
			*out = s->dbi[i];
			return 0;
		}
	log_event(LOG_ERROR, "a table that was not opened", LS("table", tb->name), NULL);
	return EINVAL;
}

/* Creates and opens the LMDB environment of s->dir as store_open_with
 * does (flags, map size, stale readers cleared). */
static int
env_create_open(store *s, MDB_env **out)
{
	MDB_env *env = NULL;
	int rc, dead = 0;
	*out = NULL;
	/* A plain environment keeps LMDB's defaults, as the keyring always had. */
	if ((rc = mdb_env_create(&env)) != 0)
		return rc;
	if ((!s->plain && ((rc = mdb_env_set_maxdbs(env, 24)) != 0 ||
	                   (rc = mdb_env_set_maxreaders(env, 256)) != 0)) ||
	    /* An existing, larger map keeps its size: LMDB adopts the file's size. */
	    (rc = mdb_env_set_mapsize(env, s->map_size)) != 0 ||
	    (rc = mdb_env_open(env, s->dir, MDB_NOTLS, 0600)) != 0) {
		mdb_env_close(env);
		return rc;
	}
	MDB_envinfo info;
	mdb_env_info(env, &info);
	if (info.me_mapsize > s->map_size)
		s->map_size = info.me_mapsize;
	/* Readers left by a killed process would pin old pages forever. */
	if ((rc = mdb_reader_check(env, &dead)) != 0) {
		mdb_env_close(env);
		return rc;
	}
	if (dead > 0)
		log_event(LOG_WARN, "cleared stale LMDB readers", LI("count", dead), NULL);
	*out = env;
	return 0;
}

store *
store_open_with(const char *dir, uint64_t map_size, uint64_t map_size_max,
                const store_table *const *tables, unsigned flags)
{
	store *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	if (s == NULL)
		return NULL;
	pthread_rwlock_init(&s->grow_lock, NULL);
	s->map_size = map_size;
	s->map_size_max = map_size_max;
	s->plain = (flags & STORE_PLAIN) != 0;
	if ((s->dir = strdup(dir)) == NULL)
		goto fail;
	if (sys_mkdir_p(dir) != FSD_OK) {
		log_event(LOG_ERROR, "cannot create data directory", LS("dir", dir),
		          LS("error", strerror(errno)), NULL);
		goto fail;
	}
	if ((rc = env_create_open(s, &s->env)) != 0)
		goto lmdb_fail;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto lmdb_fail;
	if (!s->plain && ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	                  (rc = store_init_meta(s, txn)) != 0))
		goto lmdb_fail;
	for (size_t i = 0; tables != NULL && tables[i] != NULL; i++) {
		if (s->n_tables == STORE_TABLES_MAX) {
			rc = EINVAL;
			goto lmdb_fail;
		}
		/* name NULL: the environment's unnamed table (it always exists) */
		if ((rc = mdb_dbi_open(txn, tables[i]->name, tables[i]->name ? MDB_CREATE : 0,
		                       &s->dbi[s->n_tables])) != 0)
			goto lmdb_fail;
		s->table[s->n_tables++] = tables[i];
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto lmdb_fail;
	if (!s->plain)
		log_event(LOG_INFO, "store open", LS("dir", dir), LU("map_size", s->map_size),
		          LS("server_id", s->server_id), NULL);
	return s;

lmdb_fail:
	log_event(LOG_ERROR, "cannot open the store", LS("dir", dir), LS("error", mdb_strerror(rc)),
	          NULL);
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	store_close(&s);
	return NULL;
}

static void adopt_map_size(store *s);

/* Whether LMDB has stopped the environment (MDB_PANIC). Holds grow_lock
 * shared, or exclusively by the caller. */
static bool
env_panicked(store *s)
{
	MDB_txn *t = NULL;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc == 0)
		mdb_txn_abort(t);
	return rc == MDB_PANIC;
}

/*
 * After MDB_PANIC: closes the environment and opens it again, its tables
 * by the same names, and syncs it. Only with no transaction of s open in
 * this process: `grow_lock` taken exclusively (tried for a short while, so
 * a thread that holds a read transaction itself never waits on itself) and
 * no write transaction begun. True when s has a usable environment again.
 */
static bool
store_reopen(store *s)
{
	bool locked = false;
	for (int i = 0; i < 100 && !locked; i++) {
		locked = pthread_rwlock_trywrlock(&s->grow_lock) == 0;
		if (!locked)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	if (!locked)
		return false;
	if (atomic_load(&s->writes_open) > 0 || !atomic_load(&s->panicked)) {
		pthread_rwlock_unlock(&s->grow_lock);
		return !atomic_load(&s->panicked);
	}
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi meta = 0, dbi[STORE_TABLES_MAX];
	if (s->env != NULL)
		mdb_env_close(s->env); /* nothing of it is in use: the lock and writes_open */
	s->env = NULL;
	int rc = env_create_open(s, &env);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == 0 && !s->plain)
		rc = mdb_dbi_open(txn, "meta", 0, &meta);
	for (size_t i = 0; rc == 0 && i < s->n_tables; i++)
		rc = mdb_dbi_open(txn, s->table[i]->name, 0, &dbi[i]);
	if (rc == 0) {
		rc = mdb_txn_commit(txn); /* keeps the handles */
		txn = NULL;
	}
	if (rc == 0)
		rc = mdb_env_sync(env, 1); /* what it shows is on the disk before it is used */
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (rc == 0) {
		s->env = env;
		s->meta = meta;
		memcpy(s->dbi, dbi, s->n_tables * sizeof(dbi[0]));
		atomic_store(&s->panicked, false);
	} else if (env != NULL) {
		mdb_env_close(env);
	}
	pthread_rwlock_unlock(&s->grow_lock);
	if (rc != 0) {
		log_event(LOG_ERROR, "storage failing: the environment could not be reopened",
		          LS("dir", s->dir), LS("error", mdb_strerror(rc)), NULL);
		return false;
	}
	metrics_inc(METRIC_STORAGE_REOPENS_TOTAL, 0, 1);
	log_event(LOG_WARN, "storage: the environment was reopened after a failed write",
	          LS("dir", s->dir), NULL);
	return true;
}

/*
 * The writer thread's probe while s is failing, at most once a second:
 * reopen when panicked, then one commit of its own (a plain environment: a
 * forced sync); on success s is healthy again. Runs with no transaction of
 * s open on this thread.
 */
static void
store_recover(store *s)
{
	int64_t now = clock_mono_ms();
	if (now - s->last_probe_ms < 1000)
		return;
	s->last_probe_ms = now;
	if (atomic_load(&s->panicked) && !store_reopen(s))
		return;
	int rc;
	bool panicked = false;
	pthread_rwlock_rdlock(&s->grow_lock);
	if (s->plain) {
		rc = mdb_env_sync(s->env, 1);
	} else {
		MDB_txn *txn = NULL;
		uint64_t n = 0;
		atomic_fetch_add(&s->writes_open, 1);
		rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc == 0) {
			meta_get_u64(txn, s->meta, "health_probe", &n);
			rc = meta_put_u64(txn, s->meta, "health_probe", n + 1);
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		}
		atomic_fetch_sub(&s->writes_open, 1);
	}
	if (rc != 0)
		panicked = rc == MDB_PANIC || env_panicked(s);
	pthread_rwlock_unlock(&s->grow_lock);
	if (rc == MDB_MAP_RESIZED) { /* another process grew the map: the next probe */
		adopt_map_size(s);
		return;
	}
	if (rc == 0)
		mark_healthy(s);
	else
		mark_failing(s, panicked, rc);
}

void
store_close(store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	store *s = *sp;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (atomic_load(&s->failing))
		metrics_set(METRIC_STORAGE_FAILING, 0, atomic_fetch_sub(&g_failing, 1) - 1);
	if (tl_writes == s)
		tl_writes = NULL;
	pthread_rwlock_destroy(&s->grow_lock);
	free(s->dir);
	free(s);
	*sp = NULL;
}

bool
store_healthy(store *s)
{
	return !atomic_load(&s->failing);
}

/* Set once by the keyring: a data key that is there does not open. */
static atomic_bool g_keys_failing;
static _Thread_local unsigned tl_keys_failures;

unsigned
store_keys_failures_here(void)
{
	return tl_keys_failures;
}

void
store_note_keys_failing(void)
{
	tl_keys_failures++;
	if (!atomic_exchange(&g_keys_failing, true))
		log_event(LOG_ERROR,
		          "a data key in the key store does not open with the master keys given: "
		          "not ready until restarted with the right master key",
		          NULL);
}

bool
store_health(char *why, size_t len)
{
	if (atomic_load(&g_keys_failing)) {
		snprintf(why, len,
		         "key store failing: a data key does not open with the master keys given; "
		         "records it seals cannot be served (restart with the right master key)");
		return false;
	}
	if (atomic_load(&g_failing) == 0)
		return true;
	pthread_mutex_lock(&g_why_lock);
	snprintf(why, len, "%s", g_why);
	pthread_mutex_unlock(&g_why_lock);
	return false;
}

const char *
store_server_id(const store *s)
{
	return s->server_id;
}

const char *
store_generation(const store *s)
{
	return s->generation;
}

fsd_err
store_new_generation(store *s)
{
	MDB_txn *txn = NULL;
	char old[sizeof(s->generation)];
	int rc;
	if (s->plain)
		return FSD_INVALID;
	memcpy(old, s->generation, sizeof(old));
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return map_rc(rc);
	if ((rc = put_generation(s, txn)) != 0) {
		mdb_txn_abort(txn);
		memcpy(s->generation, old, sizeof(old));
		return map_rc(rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		memcpy(s->generation, old, sizeof(old));
		return map_rc(rc);
	}
	log_event(LOG_INFO, "new store generation", LS("generation", s->generation),
	          LS("previous", old), NULL);
	return FSD_OK;
}

/* Another process (an admin command) grew the map: adopt its size. */
static void
adopt_map_size(store *s)
{
	MDB_envinfo info;
	pthread_rwlock_wrlock(&s->grow_lock);
	if (s->env != NULL && mdb_env_set_mapsize(s->env, 0) == 0 &&
	    mdb_env_info(s->env, &info) == 0)
		s->map_size = info.me_mapsize;
	pthread_rwlock_unlock(&s->grow_lock);
}

fsd_err
store_read_begin(store *s, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return FSD_ERROR;
	/* the writer thread between rounds (inside a round, its write txn is open) */
	if (tl_writes == s && atomic_load(&s->failing) && atomic_load(&s->writes_open) == 0)
		store_recover(s);
	pthread_rwlock_rdlock(&s->grow_lock);
	rc = s->env != NULL ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn) : MDB_PANIC;
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->grow_lock);
		adopt_map_size(s);
		pthread_rwlock_rdlock(&s->grow_lock);
		rc = s->env != NULL ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn) : MDB_PANIC;
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->grow_lock);
		free(t);
		if (rc == MDB_PANIC)
			mark_failing(s, true, rc);
		log_event(LOG_ERROR, "read transaction failed", LS("error", mdb_strerror(rc)),
		          NULL);
		return map_rc(rc);
	}
	t->s = s;
	if (!s->plain)
		meta_get_u64(t->txn, s->meta, "seq", &t->seq);
	*out = t;
	return FSD_OK;
}

void
store_read_end(store_txn **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	mdb_txn_abort((*tp)->txn);
	pthread_rwlock_unlock(&(*tp)->s->grow_lock);
	free(*tp);
	*tp = NULL;
}

fsd_err
store_write_begin(store *s, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return FSD_ERROR;
	tl_writes = s;
	if (atomic_load(&s->panicked)) /* LMDB stopped it: reopen before anything else */
		store_reopen(s);
	/* counted before the environment is looked at: a reopen waits for it */
	pthread_rwlock_rdlock(&s->grow_lock);
	atomic_fetch_add(&s->writes_open, 1);
	MDB_env *env = s->env;
	pthread_rwlock_unlock(&s->grow_lock);
	rc = env != NULL ? mdb_txn_begin(env, NULL, 0, &t->txn) : MDB_PANIC;
	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(s);
		rc = mdb_txn_begin(env, NULL, 0, &t->txn);
	}
	if (rc != 0) {
		atomic_fetch_sub(&s->writes_open, 1);
		free(t);
		if (rc == MDB_PANIC)
			mark_failing(s, true, rc);
		log_event(LOG_ERROR, "write transaction failed", LS("error", mdb_strerror(rc)),
		          NULL);
		return map_rc(rc);
	}
	t->s = s;
	t->write = true;
	if (!s->plain)
		meta_get_u64(t->txn, s->meta, "seq", &t->seq);
	*out = t;
	return FSD_OK;
}

fsd_err
store_nested_begin(store_txn *parent, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return FSD_ERROR;
	if ((rc = mdb_txn_begin(parent->s->env, parent->txn, 0, &t->txn)) != 0) {
		free(t);
		return map_rc(rc);
	}
	t->s = parent->s;
	t->parent = parent;
	t->write = true;
	t->seq = parent->seq;
	*out = t;
	return FSD_OK;
}

/* LMDB reports a short write as EIO: the disk (or the file size limit)
 * filled up mid-write. A commit's EIO is FSD_NOSPACE when the file system
 * has next to no space left or data.mdb has reached RLIMIT_FSIZE; any other
 * EIO is a failed write (FSD_IO). */
static fsd_err
commit_rc(const store *s, int rc)
{
	char p[700];
	struct statvfs vs;
	struct stat st;
	struct rlimit rl;
	if (rc != EIO)
		return map_rc(rc);
	if (statvfs(s->dir, &vs) == 0 && (uint64_t)vs.f_bavail * vs.f_frsize < (16u << 20))
		return FSD_NOSPACE;
	snprintf(p, sizeof(p), "%s/data.mdb", s->dir);
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    stat(p, &st) == 0 && (uint64_t)st.st_size + (1u << 20) >= (uint64_t)rl.rlim_cur)
		return FSD_NOSPACE;
	return FSD_IO;
}

fsd_err
store_commit(store_txn **tp)
{
	store_txn *t = *tp;
	store *s = t->s;
	int rc = 0;
	if (t->seq_dirty)
		rc = meta_put_u64(t->txn, s->meta, "seq", t->seq);
	if (rc != 0) {
		mdb_txn_abort(t->txn);
	} else {
		rc = mdb_txn_commit(t->txn);
		if (rc == 0 && t->parent != NULL) {
			t->parent->seq = t->seq;
			if (t->seq_dirty) /* written inside the child, now part of the parent */
				t->parent->seq_dirty = false;
		}
	}
	if (t->parent == NULL && t->write) {
		if (rc != 0) {
			log_event(commit_rc(s, rc) == FSD_NOSPACE ? LOG_WARN : LOG_ERROR,
			          "commit failed", LS("error", mdb_strerror(rc)), NULL);
			pthread_rwlock_rdlock(&s->grow_lock);
			bool panicked = env_panicked(s);
			pthread_rwlock_unlock(&s->grow_lock);
			mark_failing(s, panicked, rc);
		} else if (atomic_load(&s->failing) && !atomic_load(&s->panicked)) {
			mark_healthy(s);
		}
		atomic_fetch_sub(&s->writes_open, 1);
	}
	fsd_err out = commit_rc(s, rc);
	free(t);
	*tp = NULL;
	return out;
}

void
store_abort(store_txn **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	store_txn *t = *tp;
	mdb_txn_abort(t->txn);
	if (t->parent == NULL && t->write)
		atomic_fetch_sub(&t->s->writes_open, 1);
	free(t);
	*tp = NULL;
}

fsd_err
store_grow(store *s)
{
	uint64_t want = s->map_size * 2;
	int rc;
	if (s->map_size >= s->map_size_max)
		return FSD_FULL;
	if (want > s->map_size_max)
		want = s->map_size_max;
	pthread_rwlock_wrlock(&s->grow_lock);
	rc = s->env != NULL ? mdb_env_set_mapsize(s->env, want) : MDB_PANIC;
	pthread_rwlock_unlock(&s->grow_lock);
	if (rc != 0) {
		log_event(LOG_ERROR, "map resize failed", LS("error", mdb_strerror(rc)), NULL);
		return FSD_ERROR;
	}
	log_event(LOG_INFO, "map grown", LU("from", s->map_size), LU("to", want), NULL);
	s->map_size = want;
	return FSD_OK;
}

store *
store_txn_store(store_txn *t)
{
	return t->s;
}

void
store_set_keyring(store *s, struct keyring *k)
{
	s->kr = k;
}

struct keyring *
store_keyring(const store *s)
{
	return s->kr;
}

uint64_t
store_last_seq(store_txn *t)
{
	return t->seq;
}

uint64_t
store_next_seq(store_txn *t)
{
	t->seq_dirty = true;
	return ++t->seq;
}
