/*
 * The daemon's LMDB store.
 *
 * NOTES ON THE DESIGN OF THE STORE
 *
 * One LMDB environment under --data-dir (data.mdb, lock.mdb), opened with
 * MDB_NOTLS so a read transaction is not tied to a thread, and without
 * MDB_NOSYNC: a commit that returns has been fsync'ed, and only then is a
 * change set acknowledged (PROTOCOL.md §4). Named databases:
 *
 *   meta       "schema"    -> u32 LE, STORE_SCHEMA; a store written by another
 *                             schema is refused at start-up, never guessed at
 *              "server_id" -> 36-byte UUID text, made when the store is created
 *              "seq"       -> u64 LE, the last feed position handed out
 *              "reply_age" -> u64 LE, the age counter of stored replies
 *   records    key(collection, id) -> packed RecordState: scope, the record's
 *              current seq and ALL its siblings (Record values with their
 *              version vectors). key = [u8 len(collection)][collection][id],
 *              so no byte of an id can be confused with the separator.
 *   feed       u64 BE seq -> key(collection, id). Exactly one entry per record,
 *              at its latest seq: a write deletes the entry at the old seq.
 *              Pull is a cursor walk from since_seq + 1.
 *   replies    changeset_id -> [u64 BE age][packed PushReply]
 *   reply_age  u64 BE age -> changeset_id. When more than `keep` replies are
 *              stored, the oldest are deleted in the same transaction. A retry
 *              older than that is merged again, which the version vectors make
 *              harmless (DUPLICATE/OBSOLETE), only its reply is then not
 *              byte-identical.
 *   case_contacts, reminders, timers, events: tables whose layout belongs to
 *              reminders.c (its design note), reached through store_kv_*.
 *              meta also holds "event_seq" and "published_seq" for them.
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
 * A commit that fails with ENOSPC, EDQUOT, EFBIG or EIO (LMDB's word for a
 * short write, which is how a disk filling up mid-write shows) is
 * STORE_NOSPACE: nothing was acknowledged, LMDB rolled the transaction back
 * (the meta page was never written), and callers answer BUSY. The daemon
 * goes on serving reads and retries writes as they come.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define STORE_SCHEMA 1u
#define KEY_MAX (1 + FSP_COLLECTION_MAX + FSP_ID_MAX)

static const char *const table_names[STORE_T_COUNT] = {
	"case_contacts", "reminders", "timers", "events", "devices", "device_names",
	"keys", "former_scopes", "audit",
};

struct store {
	keyring *kr; /* NULL: values are stored as they are (--dev without a key) */
	MDB_env *env;
	MDB_dbi meta, records, feed, replies, reply_age;
	MDB_dbi tables[STORE_T_COUNT];
	pthread_rwlock_t grow_lock;
	uint64_t map_size, map_size_max;
	char server_id[40];
};

struct store_txn {
	store *s;
	MDB_txn *txn;
	store_txn *parent;
	bool write;
	uint64_t seq;     /* last seq handed out as seen by this txn */
	bool seq_dirty;
};

static store_rc
map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_MAP_FULL:
		return STORE_FULL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
	case EIO: /* LMDB reports a short write (the disk filled up mid-write) as EIO */
		return STORE_NOSPACE;
	default:
		return STORE_ERROR;
	}
}

void
store_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t
store_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static size_t
record_key(uint8_t *key, const char *collection, const char *id)
{
	size_t cl = strlen(collection), il = strlen(id);
	if (cl > FSP_COLLECTION_MAX)
		cl = FSP_COLLECTION_MAX;
	if (il > FSP_ID_MAX)
		il = FSP_ID_MAX;
	key[0] = (uint8_t)cl;
	memcpy(key + 1, collection, cl);
	memcpy(key + 1 + cl, id, il);
	return 1 + cl + il;
}

static int
meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	*out = 0;
	if (rc == MDB_SUCCESS && v.mv_size == 8)
		memcpy(out, v.mv_data, 8); /* LE hosts only; checked in store_open */
	return rc;
}

static int
meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
	MDB_val k = {strlen(name), (void *)name}, v = {8, &val};
	return mdb_put(txn, dbi, &k, &v, 0);
}

static void
make_uuid(char out[37])
{
	uint8_t b[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
		/* No urandom: fall back to time and pid, still unique enough for an id. */
		uint64_t t = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32);
		for (int i = 0; i < 16; i++)
			b[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
	}
	if (fd >= 0)
		close(fd);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	         b[12], b[13], b[14], b[15]);
}

/* Creates or checks the meta entries; runs once in store_open. */
static int
store_init_meta(store *s, MDB_txn *txn)
{
	MDB_val k = {6, "schema"}, v;
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint32_t schema = STORE_SCHEMA;
		char id[37];
		MDB_val sv = {4, &schema};
		make_uuid(id);
		MDB_val ik = {9, "server_id"}, iv = {36, id};
		if ((rc = mdb_put(txn, s->meta, &k, &sv, 0)) != 0 ||
		    (rc = mdb_put(txn, s->meta, &ik, &iv, 0)) != 0 ||
		    (rc = meta_put_u64(txn, s->meta, "seq", 0)) != 0 ||
		    (rc = meta_put_u64(txn, s->meta, "reply_age", 0)) != 0)
			return rc;
		log_event(LOG_INFO, "store created", LS("server_id", id), LU("schema", schema), NULL);
	} else if (rc != MDB_SUCCESS) {
		return rc;
	} else {
		uint32_t schema = 0;
		if (v.mv_size == 4)
			memcpy(&schema, v.mv_data, 4);
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
	return 0;
}

static int
mkdir_p(const char *path)
{
	char buf[512];
	size_t l = strlen(path);
	if (l == 0 || l >= sizeof(buf))
		return ENAMETOOLONG;
	memcpy(buf, path, l + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		return errno;
	return 0;
}

store *
store_open(const char *dir, uint64_t map_size, uint64_t map_size_max)
{
	store *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc, dead = 0;
	const uint16_t probe = 1;

	if (s == NULL)
		return NULL;
	if (*(const uint8_t *)&probe != 1) {
		log_event(LOG_ERROR, "fieldsyncd stores little-endian counters; this host is big-endian", NULL);
		free(s);
		return NULL;
	}
	pthread_rwlock_init(&s->grow_lock, NULL);
	s->map_size = map_size;
	s->map_size_max = map_size_max;
	if ((rc = mkdir_p(dir)) != 0) {
		log_event(LOG_ERROR, "cannot create data directory", LS("dir", dir),
		          LS("error", strerror(rc)), NULL);
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 24)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, 256)) != 0)
		goto lmdb_fail;
	/* An existing, larger map keeps its size: LMDB adopts the file's size. */
	if ((rc = mdb_env_set_mapsize(s->env, map_size)) != 0)
		goto lmdb_fail;
	if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0)
		goto lmdb_fail;
	{
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		if (info.me_mapsize > s->map_size)
			s->map_size = info.me_mapsize;
	}
	/* Readers left by a killed process would pin old pages forever. */
	if ((rc = mdb_reader_check(s->env, &dead)) != 0)
		goto lmdb_fail;
	if (dead > 0)
		log_event(LOG_WARN, "cleared stale LMDB readers", LI("count", dead), NULL);

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto lmdb_fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "records", MDB_CREATE, &s->records)) != 0 ||
	    (rc = mdb_dbi_open(txn, "feed", MDB_CREATE, &s->feed)) != 0 ||
	    (rc = mdb_dbi_open(txn, "replies", MDB_CREATE, &s->replies)) != 0 ||
	    (rc = mdb_dbi_open(txn, "reply_age", MDB_CREATE, &s->reply_age)) != 0 ||
	    (rc = store_init_meta(s, txn)) != 0)
		goto lmdb_fail;
	for (int i = 0; i < STORE_T_COUNT; i++)
		if ((rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &s->tables[i])) != 0)
			goto lmdb_fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto lmdb_fail;
	log_event(LOG_INFO, "store open", LS("dir", dir), LU("map_size", s->map_size),
	          LS("server_id", s->server_id), NULL);
	return s;

lmdb_fail:
	log_event(LOG_ERROR, "cannot open the store", LS("dir", dir),
	          LS("error", mdb_strerror(rc)), NULL);
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	store_close(&s);
	return NULL;
}

void
store_close(store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	store *s = *sp;
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->grow_lock);
	free(s);
	*sp = NULL;
}

const char *
store_server_id(const store *s)
{
	return s->server_id;
}

/* Another process (an admin command) grew the map: adopt its size. */
static void
adopt_map_size(store *s)
{
	MDB_envinfo info;
	pthread_rwlock_wrlock(&s->grow_lock);
	if (mdb_env_set_mapsize(s->env, 0) == 0 && mdb_env_info(s->env, &info) == 0)
		s->map_size = info.me_mapsize;
	pthread_rwlock_unlock(&s->grow_lock);
}

store_rc
store_read_begin(store *s, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return STORE_ERROR;
	pthread_rwlock_rdlock(&s->grow_lock);
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->grow_lock);
		adopt_map_size(s);
		pthread_rwlock_rdlock(&s->grow_lock);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->grow_lock);
		free(t);
		log_event(LOG_ERROR, "read transaction failed", LS("error", mdb_strerror(rc)), NULL);
		return map_rc(rc);
	}
	t->s = s;
	meta_get_u64(t->txn, s->meta, "seq", &t->seq);
	*out = t;
	return STORE_OK;
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

store_rc
store_write_begin(store *s, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return STORE_ERROR;
	rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(s);
		rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
	}
	if (rc != 0) {
		free(t);
		log_event(LOG_ERROR, "write transaction failed", LS("error", mdb_strerror(rc)), NULL);
		return map_rc(rc);
	}
	t->s = s;
	t->write = true;
	meta_get_u64(t->txn, s->meta, "seq", &t->seq);
	*out = t;
	return STORE_OK;
}

store_rc
store_nested_begin(store_txn *parent, store_txn **out)
{
	store_txn *t = calloc(1, sizeof(*t));
	int rc;
	*out = NULL;
	if (t == NULL)
		return STORE_ERROR;
	if ((rc = mdb_txn_begin(parent->s->env, parent->txn, 0, &t->txn)) != 0) {
		free(t);
		return map_rc(rc);
	}
	t->s = parent->s;
	t->parent = parent;
	t->write = true;
	t->seq = parent->seq;
	*out = t;
	return STORE_OK;
}

store_rc
store_commit(store_txn **tp)
{
	store_txn *t = *tp;
	int rc = 0;
	if (t->seq_dirty)
		rc = meta_put_u64(t->txn, t->s->meta, "seq", t->seq);
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
	if (rc != 0 && t->parent == NULL)
		log_event(map_rc(rc) == STORE_NOSPACE ? LOG_WARN : LOG_ERROR, "commit failed",
		          LS("error", mdb_strerror(rc)), NULL);
	free(t);
	*tp = NULL;
	return map_rc(rc);
}

void
store_abort(store_txn **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	mdb_txn_abort((*tp)->txn);
	free(*tp);
	*tp = NULL;
}

store_rc
store_grow(store *s)
{
	uint64_t want = s->map_size * 2;
	int rc;
	if (s->map_size >= s->map_size_max)
		return STORE_FULL;
	if (want > s->map_size_max)
		want = s->map_size_max;
	pthread_rwlock_wrlock(&s->grow_lock);
	rc = mdb_env_set_mapsize(s->env, want);
	pthread_rwlock_unlock(&s->grow_lock);
	if (rc != 0) {
		log_event(LOG_ERROR, "map resize failed", LS("error", mdb_strerror(rc)), NULL);
		return STORE_ERROR;
	}
	log_event(LOG_INFO, "map grown", LU("from", s->map_size), LU("to", want), NULL);
	s->map_size = want;
	return STORE_OK;
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

/* The AAD that binds a record's sealed payloads to it: collection NUL id. */
static size_t
record_aad(char *aad, size_t cap, const char *collection, const char *id)
{
	int n = snprintf(aad, cap, "%s%c%s", collection, 0, id);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Opens every sealed sibling payload of rs in place. */
static store_rc
open_payloads(store *s, fs_record_state *rs)
{
	char aad[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 2];
	size_t al = record_aad(aad, sizeof(aad), rs->collection, rs->id);
	for (size_t i = 0; i < rs->n_siblings; i++) {
		ProtobufCBinaryData *p = &rs->siblings[i]->payload;
		uint8_t *plain = NULL;
		size_t pl = 0;
		int r = keyring_open_value(s->kr, aad, al, p->data, p->len, &plain, &pl);
		if (r == KEYRING_PLAIN)
			continue;
		if (r != KEYRING_OPENED) {
			log_event(LOG_ERROR, r == KEYRING_NO_KEY ? "a value's data key is gone (purged?)"
			                                         : "a sealed value does not verify",
			          LS("collection", rs->collection), LS("id", rs->id), NULL);
			return STORE_CORRUPT;
		}
		free(p->data);
		p->data = plain;
		p->len = pl;
	}
	return STORE_OK;
}

static store_rc
unpack_state(store *s, const MDB_val *v, fs_record_state **out)
{
	*out = fieldsync__v1__record_state__unpack(NULL, v->mv_size, v->mv_data);
	if (*out == NULL) {
		log_event(LOG_ERROR, "stored record does not decode", LU("bytes", v->mv_size), NULL);
		return STORE_CORRUPT;
	}
	store_rc rc = open_payloads(s, *out);
	if (rc != STORE_OK) {
		store_record_free(*out);
		*out = NULL;
	}
	return rc;
}

void
store_set_keyring(store *s, keyring *k)
{
	s->kr = k;
}

keyring *
store_keyring(const store *s)
{
	return s->kr;
}

store_rc
store_seal(store_txn *t, const char *name, const void *aad, size_t aad_len, const uint8_t *in,
           size_t len, uint8_t **out, size_t *out_len)
{
	if (t->s->kr == NULL) {
		*out = malloc(len ? len : 1);
		if (*out == NULL)
			return STORE_ERROR;
		memcpy(*out, in, len);
		*out_len = len;
		return STORE_OK;
	}
	return keyring_seal(t->s->kr, name, aad, aad_len, in, len, out, out_len) ? STORE_OK
	                                                                       : STORE_ERROR;
}

store_rc
store_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in, size_t len,
             uint8_t **out, size_t *out_len)
{
	int r = keyring_open_value(t->s->kr, aad, aad_len, in, len, out, out_len);
	if (r == KEYRING_OPENED)
		return STORE_OK;
	if (r != KEYRING_PLAIN)
		return STORE_CORRUPT;
	*out = malloc(len ? len : 1);
	if (*out == NULL)
		return STORE_ERROR;
	memcpy(*out, in, len);
	*out_len = len;
	return STORE_OK;
}

store_rc
store_record_get(store_txn *t, const char *collection, const char *id, fs_record_state **out)
{
	uint8_t key[KEY_MAX];
	MDB_val k = {record_key(key, collection, id), key}, v;
	int rc = mdb_get(t->txn, t->s->records, &k, &v);
	*out = NULL;
	if (rc != 0)
		return map_rc(rc);
	return unpack_state(t->s, &v, out);
}

static store_rc record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq,
                             bool feed);

store_rc
store_record_put(store_txn *t, const fs_record_state *rs, uint64_t old_seq)
{
	return record_write(t, rs, old_seq, true);
}

store_rc
store_record_rewrite(store_txn *t, const fs_record_state *rs)
{
	return record_write(t, rs, 0, false);
}

/* Seals rs's payloads (with a keyring) and writes it; moves it in the feed
 * from old_seq to rs->seq when feed is set. */
static store_rc
record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq, bool feed)
{
	uint8_t key[KEY_MAX], seqb[8];
	MDB_val k = {record_key(key, rs->collection, rs->id), key}, v, fk = {8, seqb};
	int rc;
	store_rc src = STORE_OK;
	fs_record_state sealed_rs;
	fsp_record *copies = NULL, **ptrs = NULL;

	if (t->s->kr != NULL && rs->n_siblings > 0) { /* seal every payload on the way in */
		char aad[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 2], name[300];
		size_t al = record_aad(aad, sizeof(aad), rs->collection, rs->id);
		copies = calloc(rs->n_siblings, sizeof(*copies));
		ptrs = calloc(rs->n_siblings, sizeof(*ptrs));
		if (copies == NULL || ptrs == NULL) {
			src = STORE_ERROR;
			goto out;
		}
		sealed_rs = *rs;
		sealed_rs.siblings = ptrs;
		for (size_t i = 0; i < rs->n_siblings; i++) {
			const fsp_record *r = rs->siblings[i];
			copies[i] = *r;
			ptrs[i] = &copies[i];
			copies[i].payload.data = NULL;
			copies[i].payload.len = 0;
			if (r->payload.len == 0)
				continue;
			keyring_dek_name(rs->collection, rs->id, r->payload.data, r->payload.len, name,
			                 sizeof(name));
			if (!keyring_seal(t->s->kr, name, aad, al, r->payload.data, r->payload.len,
			                  &copies[i].payload.data, &copies[i].payload.len)) {
				src = STORE_ERROR;
				goto out;
			}
		}
		rs = &sealed_rs;
	}

	/* Reserve the value in place and pack straight into the map. */
	v.mv_size = fieldsync__v1__record_state__get_packed_size(rs);
	if ((rc = mdb_put(t->txn, t->s->records, &k, &v, MDB_RESERVE)) != 0) {
		src = map_rc(rc);
		goto out;
	}
	fieldsync__v1__record_state__pack(rs, v.mv_data);
	if (!feed)
		goto out;

	if (old_seq != 0) {
		store_put_be64(seqb, old_seq);
		rc = mdb_del(t->txn, t->s->feed, &fk, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			src = map_rc(rc);
			goto out;
		}
	}
	/* Seqs only grow, so the feed is append-only: MDB_APPEND skips the search. */
	store_put_be64(seqb, rs->seq);
	MDB_val fv = {k.mv_size, key};
	src = map_rc(mdb_put(t->txn, t->s->feed, &fk, &fv, MDB_APPEND));
out:
	if (copies != NULL)
		for (size_t i = 0; i < rs->n_siblings; i++)
			free(copies[i].payload.data);
	free(copies);
	free(ptrs);
	return src;
}

store_rc
store_record_head(store_txn *t, const char *collection, const char *id,
                  char scope[FSP_SCOPE_MAX + 1], uint64_t *seq, bool *purged)
{
	uint8_t key[KEY_MAX];
	MDB_val k = {record_key(key, collection, id), key}, v;
	int rc = mdb_get(t->txn, t->s->records, &k, &v);
	if (rc != 0)
		return map_rc(rc);
	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, v.mv_size, v.mv_data);
	if (rs == NULL)
		return STORE_CORRUPT;
	snprintf(scope, FSP_SCOPE_MAX + 1, "%s", rs->scope);
	*seq = rs->seq;
	*purged = rs->purged;
	fieldsync__v1__record_state__free_unpacked(rs, NULL);
	return STORE_OK;
}

void
store_record_free(fs_record_state *rs)
{
	if (rs != NULL)
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
}

store_rc
store_feed_scan(store_txn *t, uint64_t since, store_feed_fn fn, void *arg, uint64_t *last,
                bool *more)
{
	MDB_cursor *cur = NULL;
	uint8_t seqb[8];
	MDB_val k = {8, seqb}, v;
	store_rc ret = STORE_OK;
	int rc;

	*last = since;
	*more = false;
	if (since == UINT64_MAX)
		return STORE_OK;
	store_put_be64(seqb, since + 1);
	if ((rc = mdb_cursor_open(t->txn, t->s->feed, &cur)) != 0)
		return map_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		MDB_val rv;
		fs_record_state *rs;
		uint64_t seq = k.mv_size == 8 ? store_get_be64(k.mv_data) : 0;
		int grc = mdb_get(t->txn, t->s->records, &v, &rv);
		if (grc != 0) {
			log_event(LOG_ERROR, "feed points at a missing record", LU("seq", seq), NULL);
			ret = STORE_CORRUPT;
			break;
		}
		if ((ret = unpack_state(t->s, &rv, &rs)) != STORE_OK)
			break;
		if (fn(arg, t, rs) == FEED_STOP) {
			*more = true;
			break;
		}
		*last = seq;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		ret = map_rc(rc);
	mdb_cursor_close(cur);
	return ret;
}

/* The former scopes of a record: "scope\n" lines under its record key. */
store_rc
store_former_scope_add(store_txn *t, const char *collection, const char *id, const char *scope)
{
	uint8_t key[KEY_MAX];
	char buf[64 * (FSP_SCOPE_MAX + 1)];
	MDB_val k = {record_key(key, collection, id), key}, v;
	size_t have = 0, sl = strlen(scope);
	int rc = mdb_get(t->txn, t->s->tables[STORE_T_FORMER_SCOPES], &k, &v);

	if (rc == 0) {
		have = v.mv_size < sizeof(buf) ? v.mv_size : sizeof(buf);
		memcpy(buf, v.mv_data, have);
		for (size_t i = 0; i < have;) { /* already listed? */
			const char *nl = memchr(buf + i, '\n', have - i);
			size_t l = nl ? (size_t)(nl - (buf + i)) : have - i;
			if (l == sl && memcmp(buf + i, scope, sl) == 0)
				return STORE_OK;
			i += l + 1;
		}
	} else if (rc != MDB_NOTFOUND) {
		return map_rc(rc);
	}
	if (have + sl + 1 > sizeof(buf))
		return STORE_OK; /* 64 moves: the oldest ones are enough to say "revoked" */
	memcpy(buf + have, scope, sl);
	buf[have + sl] = '\n';
	v.mv_size = have + sl + 1;
	v.mv_data = buf;
	return map_rc(mdb_put(t->txn, t->s->tables[STORE_T_FORMER_SCOPES], &k, &v, 0));
}

bool
store_former_scope_any(store_txn *t, const char *collection, const char *id,
                       bool (*granted)(const void *arg, const char *scope), const void *arg)
{
	uint8_t key[KEY_MAX];
	MDB_val k = {record_key(key, collection, id), key}, v;
	if (mdb_get(t->txn, t->s->tables[STORE_T_FORMER_SCOPES], &k, &v) != 0)
		return false;
	const char *p = v.mv_data;
	for (size_t i = 0; i < v.mv_size;) {
		const char *nl = memchr(p + i, '\n', v.mv_size - i);
		size_t l = nl ? (size_t)(nl - (p + i)) : v.mv_size - i;
		char scope[FSP_SCOPE_MAX + 1];
		if (l <= FSP_SCOPE_MAX) {
			memcpy(scope, p + i, l);
			scope[l] = '\0';
			if (granted(arg, scope))
				return true;
		}
		i += l + 1;
	}
	return false;
}

store_rc
store_reply_get(store_txn *t, const char *changeset_id, const uint8_t **data, size_t *len)
{
	MDB_val k = {strlen(changeset_id), (void *)changeset_id}, v;
	int rc = mdb_get(t->txn, t->s->replies, &k, &v);
	if (rc != 0)
		return map_rc(rc);
	if (v.mv_size < 8)
		return STORE_CORRUPT;
	*data = (const uint8_t *)v.mv_data + 8;
	*len = v.mv_size - 8;
	return STORE_OK;
}

store_rc
store_reply_put(store_txn *t, const char *changeset_id, const uint8_t *data, size_t len,
                uint64_t keep)
{
	MDB_val k = {strlen(changeset_id), (void *)changeset_id}, v, ak, av;
	uint8_t ageb[8];
	uint64_t age;
	MDB_stat st;
	int rc;

	meta_get_u64(t->txn, t->s->meta, "reply_age", &age);
	age++;
	if ((rc = meta_put_u64(t->txn, t->s->meta, "reply_age", age)) != 0)
		return map_rc(rc);
	store_put_be64(ageb, age);
	v.mv_size = len + 8;
	if ((rc = mdb_put(t->txn, t->s->replies, &k, &v, MDB_RESERVE)) != 0)
		return map_rc(rc);
	memcpy(v.mv_data, ageb, 8);
	memcpy((uint8_t *)v.mv_data + 8, data, len);
	ak.mv_size = 8;
	ak.mv_data = ageb;
	if ((rc = mdb_put(t->txn, t->s->reply_age, &ak, &k, 0)) != 0)
		return map_rc(rc);

	/* Keep at most `keep` replies: drop the oldest. */
	if ((rc = mdb_stat(t->txn, t->s->reply_age, &st)) != 0)
		return map_rc(rc);
	if (st.ms_entries > keep) {
		MDB_cursor *cur;
		size_t extra = st.ms_entries - keep;
		if ((rc = mdb_cursor_open(t->txn, t->s->reply_age, &cur)) != 0)
			return map_rc(rc);
		while (extra-- > 0 && (rc = mdb_cursor_get(cur, &ak, &av, MDB_FIRST)) == 0) {
			char id[256];
			MDB_val idv = {av.mv_size < sizeof(id) ? av.mv_size : sizeof(id), id};
			memcpy(id, av.mv_data, idv.mv_size);
			if ((rc = mdb_del(t->txn, t->s->replies, &idv, NULL)) != 0 && rc != MDB_NOTFOUND)
				break;
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
		}
		mdb_cursor_close(cur);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return map_rc(rc);
	}
	return STORE_OK;
}

store_rc
store_kv_get(store_txn *t, store_table tb, const void *key, size_t klen, const void **val,
             size_t *vlen)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(t->txn, t->s->tables[tb], &k, &v);
	if (rc != 0)
		return map_rc(rc);
	*val = v.mv_data;
	*vlen = v.mv_size;
	return STORE_OK;
}

store_rc
store_kv_put(store_txn *t, store_table tb, const void *key, size_t klen, const void *val,
             size_t vlen, bool append)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	return map_rc(mdb_put(t->txn, t->s->tables[tb], &k, &v, append ? MDB_APPEND : 0));
}

store_rc
store_kv_del(store_txn *t, store_table tb, const void *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};
	return map_rc(mdb_del(t->txn, t->s->tables[tb], &k, NULL));
}

store_rc
store_kv_scan(store_txn *t, store_table tb, const void *from, size_t flen, const void *prefix,
              size_t plen, store_kv_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = {flen, (void *)from}, v;
	int rc = mdb_cursor_open(t->txn, t->s->tables[tb], &cur);
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
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : map_rc(rc);
}

uint64_t
store_meta_u64(store_txn *t, const char *name)
{
	uint64_t v = 0;
	meta_get_u64(t->txn, t->s->meta, name, &v);
	return v;
}

store_rc
store_meta_set_u64(store_txn *t, const char *name, uint64_t v)
{
	return map_rc(meta_put_u64(t->txn, t->s->meta, name, v));
}

void
store_stats(store *s, uint64_t *map_size, uint64_t *used, uint32_t *readers)
{
	MDB_envinfo info;
	MDB_stat st;
	pthread_rwlock_rdlock(&s->grow_lock);
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
		*map_size = info.me_mapsize;
		*used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
		*readers = info.me_numreaders;
	}
	pthread_rwlock_unlock(&s->grow_lock);
}
