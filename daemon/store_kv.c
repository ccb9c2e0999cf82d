/*
 * store_kv: the store's table operations (store_kv_*, store_meta_*), its
 * stats, and the read-only looks at an environment that another process
 * may hold (store_env_in_use, store_copy_env: backup) (storage layer; see
 * store.h). Transactions, opening and storage health are store.c's; both
 * share store_impl.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_impl.h"

fsd_err
store_kv_get(store_txn *t, const store_table *tb, const void *key, size_t klen, const void **val,
             size_t *vlen)
{
	MDB_val k = {klen, (void *)key}, v;
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	if (rc == 0)
		rc = mdb_get(t->txn, dbi, &k, &v);
	if (rc != 0)
		return map_rc(rc);
	*val = v.mv_data;
	*vlen = v.mv_size;
	return FSD_OK;
}

fsd_err
store_kv_put(store_txn *t, const store_table *tb, const void *key, size_t klen, const void *val,
             size_t vlen, bool append)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	return map_rc(rc != 0 ? rc : mdb_put(t->txn, dbi, &k, &v, append ? MDB_APPEND : 0));
}

fsd_err
store_kv_add(store_txn *t, const store_table *tb, const void *key, size_t klen, const void *val,
             size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	if (rc == 0)
		rc = mdb_put(t->txn, dbi, &k, &v, MDB_NOOVERWRITE);
	return rc == MDB_KEYEXIST ? FSD_EXISTS : map_rc(rc);
}

fsd_err
store_kv_reserve(store_txn *t, const store_table *tb, const void *key, size_t klen, size_t vlen,
                 void **val)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, NULL};
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	if (rc == 0)
		rc = mdb_put(t->txn, dbi, &k, &v, MDB_RESERVE);
	*val = rc == 0 ? v.mv_data : NULL;
	return map_rc(rc);
}

fsd_err
store_kv_count(store_txn *t, const store_table *tb, uint64_t *n)
{
	MDB_stat st;
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	if (rc == 0)
		rc = mdb_stat(t->txn, dbi, &st);
	*n = rc == 0 ? st.ms_entries : 0;
	return map_rc(rc);
}

fsd_err
store_kv_del(store_txn *t, const store_table *tb, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	return map_rc(rc != 0 ? rc : mdb_del(t->txn, dbi, &k, NULL));
}

fsd_err
store_kv_scan(store_txn *t, const store_table *tb, const void *from, size_t flen,
              const void *prefix, size_t plen, store_kv_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = {flen, (void *)from}, v;
	MDB_dbi dbi;
	int rc = table_dbi(t->s, tb, &dbi);
	if (rc == 0)
		rc = mdb_cursor_open(t->txn, dbi, &cur);
	if (rc != 0)
		return map_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, flen ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		if (!fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? FSD_OK : map_rc(rc);
}

uint64_t
store_meta_u64(store_txn *t, const char *name)
{
	uint64_t v = 0;
	if (!t->s->plain)
		meta_get_u64(t->txn, t->s->meta, name, &v);
	return v;
}

fsd_err
store_meta_set_u64(store_txn *t, const char *name, uint64_t v)
{
	if (t->s->plain)
		return FSD_INVALID;
	return map_rc(meta_put_u64(t->txn, t->s->meta, name, v));
}

void
store_stats(store *s, uint64_t *map_size, uint64_t *used, uint32_t *readers)
{
	MDB_envinfo info;
	MDB_stat st;
	pthread_rwlock_rdlock(&s->grow_lock);
	if (s->env != NULL && mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
		*map_size = info.me_mapsize;
		*used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
		*readers = info.me_numreaders;
	}
	pthread_rwlock_unlock(&s->grow_lock);
}

/* ---- hot copies (backup) ------------------------------------------------------ */

/* The environment in dir opened read-only (no lock taken beyond a reader
 * slot, nothing created): for a copy or a look while the daemon runs. */
static int
env_open_ro(const char *dir, MDB_env **env)
{
	int rc;
	*env = NULL;
	if ((rc = mdb_env_create(env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(*env, STORE_TABLES_MAX)) != 0 ||
	    (rc = mdb_env_set_maxreaders(*env, 256)) != 0 ||
	    (rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

fsd_err
store_env_in_use(const char *dir, uint64_t *bytes)
{
	MDB_env *env = NULL;
	MDB_envinfo info;
	MDB_stat st;
	int rc = env_open_ro(dir, &env);
	*bytes = 0;
	if (rc == 0 && (rc = mdb_env_info(env, &info)) == 0 && (rc = mdb_env_stat(env, &st)) == 0)
		*bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	if (env != NULL)
		mdb_env_close(env);
	if (rc != 0)
		log_event(LOG_ERROR, "cannot read the store", LS("dir", dir),
		          LS("error", mdb_strerror(rc)), NULL);
	return rc == ENOENT ? FSD_NOTFOUND : map_rc(rc);
}

fsd_err
store_copy_env(const char *dir, int fd, bool compact)
{
	MDB_env *env = NULL;
	int rc = env_open_ro(dir, &env);
	/* The daemon may have grown the map since we opened it: adopt and retry
	 * (the copy's read txn is begun before anything is written). */
	for (int tries = 0; rc == 0 && tries < 4; tries++) {
		rc = mdb_env_copyfd2(env, fd, compact ? MDB_CP_COMPACT : 0);
		if (rc != MDB_MAP_RESIZED || mdb_env_set_mapsize(env, 0) != 0)
			break;
	}
	if (env != NULL)
		mdb_env_close(env);
	if (rc != 0)
		log_event(LOG_ERROR, "the copy of the store failed", LS("dir", dir),
		          LS("error", mdb_strerror(rc)), NULL);
	return rc == ENOENT ? FSD_NOTFOUND : map_rc(rc);
}

fsd_err
store_env_scan(const char *dir, store_kv_fn fn, void *arg)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	int rc = env_open_ro(dir, &env);
	if (rc == 0 && (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0 &&
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) == 0 &&
	    (rc = mdb_cursor_open(txn, dbi, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (!fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
				break;
		mdb_cursor_close(cur);
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	if (rc == ENOENT)
		return FSD_NOTFOUND;
	return rc == 0 || rc == MDB_NOTFOUND ? FSD_OK : map_rc(rc);
}
