/*
 * The tablet's local store, on LMDB.
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
 *                             getrandom(); never changed, never reused
 *             "scope"      -> the default scope for new records
 *             "checkpoint" -> u64 LE, last_seq of the last applied PullReply
 *             "cs_next"    -> u64 LE, the key of the next in-flight change set
 *             "last_ok"    -> i64 LE, wall clock ms of the last good sync
 *             "last_err"   -> [u32 LE fs_err][i64 LE ms][message text]
 *   records   key(collection, id) -> packed fieldsync.v1.RecordState: the
 *             scope and ALL current siblings (Records with versions). One
 *             sibling unless in conflict. key = [u8 len(collection)]
 *             [collection][id], so a collection is a key prefix.
 *   outbox    key(collection, id) -> [u8 state][u8 n][changeset_id: n bytes]
 *             [u16 LE m][reason: m bytes][packed Record]. At most ONE entry
 *             per record: the latest local value, whose version dominates
 *             every earlier local value, so pushing it alone is enough.
 *             changeset_id is empty until the entry is put in a change set.
 *   inflight  u64 BE key -> packed PushRequest, exactly the bytes sent (its
 *             changeset_id inside). A change set lives here from the moment
 *             it is made until a reply (or a request-level refusal) is
 *             applied, so a retry resends the same id and the same changes.
 *
 * Outbox entry states and the functions that move them:
 *
 *   (none) --write_value--> PENDING, no id
 *   PENDING/SOLO, no id --sdk_push_prepare--> same state, id = new change set
 *   with id --sdk_push_done, acknowledged, same version--> deleted
 *   with id --sdk_push_done, REJECTED--> PARKED (reason) or PENDING/SOLO, no id
 *   with id --sdk_push_refused--> PARKED (one change) or SOLO (several)
 *   any --write_value (a new local edit)--> PENDING, no id: a new version that
 *       is not in any change set; an ack of the older version compares
 *       versions and leaves it alone, so an edit made during a sync survives
 *   PARKED --fs_retry_failed--> PENDING, no id
 *   any --sdk_pull_apply of a purged/revoked record--> deleted
 *
 * SOLO entries are pushed one per change set: used after the daemon refused
 * a multi-change set without saying which change was at fault.
 *
 * Invariants: an outbox entry's record is always one of the record's
 * siblings or dominated by one; the checkpoint and the records of a
 * PullReply page move in the same transaction, so a crash re-pulls a page
 * (pulling is idempotent) but never skips one.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SDK_SCHEMA 1u
#define KEY_MAX (1 + FSP_COLLECTION_MAX + FSP_ID_MAX)
#define MAP_SIZE ((size_t)4 << 30)

enum { OB_PENDING = 0, OB_PARKED = 1, OB_SOLO = 2 };

struct fs_store {
	MDB_env *env;
	MDB_dbi meta, records, outbox, inflight;
	char replica[FSP_REPLICA_MAX + 1];
	char scope[FSP_SCOPE_MAX + 1];
};

struct fs_record {
	sdk_record_state *rs;
	char **versions;
};

/* ---- small helpers ------------------------------------------------------ */

int64_t
sdk_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
sdk_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
sdk_uuid(char out[37])
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		got += (size_t)n;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	         b[12], b[13], b[14], b[15]);
	return true;
}

/* LMDB and errno codes stop here. */
static fs_err
map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return FS_OK;
	case MDB_NOTFOUND:
		return FS_ERR_NOT_FOUND;
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return FS_ERR_FULL;
	case MDB_CORRUPTED:
	case MDB_INVALID:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
		return FS_ERR_CORRUPT;
	case ENOMEM:
		return FS_ERR_NOMEM;
	case ENOENT:
		return FS_ERR_NOT_FOUND;
	default:
		return FS_ERR_IO;
	}
}

const char *
fs_strerror(fs_err e)
{
	switch (e) {
	case FS_OK:
		return "success";
	case FS_ERR_INVALID:
		return "invalid argument";
	case FS_ERR_NOT_FOUND:
		return "not found";
	case FS_ERR_EXISTS:
		return "a store already exists there";
	case FS_ERR_NOMEM:
		return "out of memory";
	case FS_ERR_IO:
		return "the local store could not be read or written";
	case FS_ERR_CORRUPT:
		return "the local store holds data that does not decode";
	case FS_ERR_VERSION:
		return "the local store was written by an unknown schema version";
	case FS_ERR_FULL:
		return "the local store is full";
	case FS_ERR_TIMEOUT:
		return "no answer from the sync endpoint within the timeout";
	case FS_ERR_NETWORK:
		return "the sync endpoint cannot be used";
	case FS_ERR_PROTOCOL:
		return "the sync endpoint answered outside the protocol";
	case FS_ERR_BUSY:
		return "the daemon is busy or unavailable; retry later";
	case FS_ERR_REFUSED:
		return "the daemon refused the request";
	case FS_ERR_SERVER:
		return "the daemon reported an internal error";
	}
	return "unknown error";
}

static size_t
make_key(uint8_t *k, const char *collection, const char *id)
{
	size_t cl = strlen(collection), il = strlen(id);
	k[0] = (uint8_t)cl;
	memcpy(k + 1, collection, cl);
	memcpy(k + 1 + cl, id, il);
	return 1 + cl + il;
}

/* Splits a records/outbox key; false when it is not one we wrote. */
static bool
split_key(const MDB_val *k, char coll[FSP_COLLECTION_MAX + 1], char id[FSP_ID_MAX + 1])
{
	const uint8_t *p = k->mv_data;
	if (k->mv_size < 2)
		return false;
	size_t cl = p[0];
	if (cl == 0 || cl > FSP_COLLECTION_MAX || 1 + cl >= k->mv_size)
		return false;
	size_t il = k->mv_size - 1 - cl;
	if (il > FSP_ID_MAX)
		return false;
	memcpy(coll, p + 1, cl);
	coll[cl] = '\0';
	memcpy(id, p + 1 + cl, il);
	id[il] = '\0';
	return true;
}

static bool
names_valid(const char *collection, const char *id)
{
	size_t il;
	if (collection == NULL || id == NULL || !fsp_collection_valid(collection))
		return false;
	il = strlen(id);
	return il >= 1 && il <= FSP_ID_MAX;
}

static void
put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int
meta_get_u64(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t *v)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, dbi, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return MDB_SUCCESS;
	}
	if (rc != MDB_SUCCESS)
		return rc;
	if (d.mv_size != 8)
		return MDB_CORRUPTED;
	*v = get_u64le(d.mv_data);
	return MDB_SUCCESS;
}

static int
meta_put(MDB_txn *t, MDB_dbi dbi, const char *name, const void *data, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, d = {len, (void *)data};
	return mdb_put(t, dbi, &k, &d, 0);
}

static int
meta_put_u64(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t v)
{
	uint8_t b[8];
	put_u64le(b, v);
	return meta_put(t, dbi, name, b, sizeof(b));
}

/* ---- open, create, close ------------------------------------------------ */

static fs_err
env_open(const char *dir, MDB_env **out)
{
	MDB_env *env = NULL;
	int rc = mdb_env_create(&env);
	if (rc != MDB_SUCCESS)
		return map_rc(rc);
	if ((rc = mdb_env_set_maxdbs(env, 8)) != MDB_SUCCESS ||
	    (rc = mdb_env_set_mapsize(env, MAP_SIZE)) != MDB_SUCCESS ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != MDB_SUCCESS) {
		mdb_env_close(env);
		return map_rc(rc);
	}
	*out = env;
	return FS_OK;
}

static int
dbis_open(fs_store *s, MDB_txn *t, unsigned flags)
{
	int rc;
	if ((rc = mdb_dbi_open(t, "meta", flags, &s->meta)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "records", flags, &s->records)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "outbox", flags, &s->outbox)) != MDB_SUCCESS ||
	    (rc = mdb_dbi_open(t, "inflight", flags, &s->inflight)) != MDB_SUCCESS)
		return rc;
	return MDB_SUCCESS;
}

/* Reads schema, replica and scope into s. */
static fs_err
load_meta(fs_store *s, MDB_txn *t)
{
	MDB_val k, d;
	k.mv_data = "schema";
	k.mv_size = 6;
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_NOTFOUND)
		return FS_ERR_NOT_FOUND;
	if (rc != MDB_SUCCESS)
		return map_rc(rc);
	if (d.mv_size != 4)
		return FS_ERR_CORRUPT;
	const uint8_t *p = d.mv_data;
	uint32_t schema = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	                  (uint32_t)p[3] << 24;
	if (schema != SDK_SCHEMA)
		return FS_ERR_VERSION;
	k.mv_data = "replica";
	k.mv_size = 7;
	if ((rc = mdb_get(t, s->meta, &k, &d)) != MDB_SUCCESS)
		return rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : map_rc(rc);
	if (d.mv_size == 0 || d.mv_size > FSP_REPLICA_MAX)
		return FS_ERR_CORRUPT;
	memcpy(s->replica, d.mv_data, d.mv_size);
	s->replica[d.mv_size] = '\0';
	k.mv_data = "scope";
	k.mv_size = 5;
	if ((rc = mdb_get(t, s->meta, &k, &d)) != MDB_SUCCESS)
		return rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : map_rc(rc);
	if (d.mv_size == 0 || d.mv_size > FSP_SCOPE_MAX)
		return FS_ERR_CORRUPT;
	memcpy(s->scope, d.mv_data, d.mv_size);
	s->scope[d.mv_size] = '\0';
	if (!fsp_scope_valid(s->scope))
		return FS_ERR_CORRUPT;
	return FS_OK;
}

static bool
has_data_file(const char *dir)
{
	char path[4096];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path))
		return false;
	return stat(path, &st) == 0;
}

fs_err
fs_store_create(const char *dir, const char *default_scope, fs_store **out)
{
	fs_store *s = NULL;
	MDB_txn *t = NULL;
	fs_err err;
	int rc;
	const char *scope = default_scope ? default_scope : "default";

	if (dir == NULL || out == NULL || !fsp_scope_valid(scope))
		return FS_ERR_INVALID;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return errno == ENOENT ? FS_ERR_NOT_FOUND : FS_ERR_IO;
	if (has_data_file(dir))
		return FS_ERR_EXISTS;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return FS_ERR_NOMEM;
	if ((err = env_open(dir, &s->env)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = dbis_open(s, t, MDB_CREATE)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	err = load_meta(s, t);
	if (err == FS_OK) { /* another process won the race */
		err = FS_ERR_EXISTS;
		goto out;
	}
	if (err != FS_ERR_NOT_FOUND)
		goto out;
	uint8_t schema[4] = {SDK_SCHEMA & 0xff, 0, 0, 0};
	if (!sdk_uuid(s->replica)) {
		err = FS_ERR_IO;
		goto out;
	}
	snprintf(s->scope, sizeof(s->scope), "%s", scope);
	if ((rc = meta_put(t, s->meta, "schema", schema, 4)) != MDB_SUCCESS ||
	    (rc = meta_put(t, s->meta, "replica", s->replica, strlen(s->replica))) != MDB_SUCCESS ||
	    (rc = meta_put(t, s->meta, "scope", s->scope, strlen(s->scope))) != MDB_SUCCESS ||
	    (rc = meta_put_u64(t, s->meta, "checkpoint", 0)) != MDB_SUCCESS ||
	    (rc = meta_put_u64(t, s->meta, "cs_next", 1)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	rc = mdb_txn_commit(t);
	t = NULL;
	err = map_rc(rc);
out:
	if (t != NULL)
		mdb_txn_abort(t);
	if (err != FS_OK)
		fs_store_close(&s);
	*out = s;
	return err;
}

fs_err
fs_store_open(const char *dir, fs_store **out)
{
	fs_store *s = NULL;
	MDB_txn *t = NULL;
	fs_err err;
	int rc;

	if (dir == NULL || out == NULL)
		return FS_ERR_INVALID;
	if (!has_data_file(dir))
		return FS_ERR_NOT_FOUND;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return FS_ERR_NOMEM;
	if ((err = env_open(dir, &s->env)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	rc = dbis_open(s, t, 0);
	if (rc == MDB_NOTFOUND) { /* created but never initialised */
		err = FS_ERR_NOT_FOUND;
		goto out;
	}
	if (rc != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if ((err = load_meta(s, t)) != FS_OK)
		goto out;
	/* DBI handles opened in a read txn stay valid once it commits. */
	rc = mdb_txn_commit(t);
	t = NULL;
	err = map_rc(rc);
out:
	if (t != NULL)
		mdb_txn_abort(t);
	if (err != FS_OK)
		fs_store_close(&s);
	*out = s;
	return err;
}

void
fs_store_close(fs_store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	if ((*sp)->env != NULL)
		mdb_env_close((*sp)->env);
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

/* ---- records ------------------------------------------------------------ */

/* Loads the record at key into *rs (NULL when absent). */
static int
record_load(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen, sdk_record_state **rs)
{
	MDB_val k = {klen, (void *)key}, d;
	int rc = mdb_get(t, s->records, &k, &d);
	*rs = NULL;
	if (rc == MDB_NOTFOUND)
		return MDB_SUCCESS;
	if (rc != MDB_SUCCESS)
		return rc;
	*rs = fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
	if (*rs == NULL)
		return MDB_CORRUPTED;
	for (size_t i = 0; i < (*rs)->n_siblings; i++) {
		if ((*rs)->siblings[i]->version == NULL) {
			fieldsync__v1__record_state__free_unpacked(*rs, NULL);
			*rs = NULL;
			return MDB_CORRUPTED;
		}
	}
	return MDB_SUCCESS;
}

/* Stores rs (packed) at key. */
static int
record_save(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen,
            const sdk_record_state *rs)
{
	size_t n = fieldsync__v1__record_state__get_packed_size(rs);
	MDB_val k = {klen, (void *)key}, d = {n, NULL};
	int rc = mdb_put(t, s->records, &k, &d, MDB_RESERVE);
	if (rc != MDB_SUCCESS)
		return rc;
	fieldsync__v1__record_state__pack(rs, d.mv_data);
	return MDB_SUCCESS;
}

/* An outbox entry, decoded. rec points into `raw` after decode. */
typedef struct ob_entry {
	uint8_t state;
	char csid[256];
	char reason[SDK_REASON_MAX + 1];
	const uint8_t *rec_bytes;
	size_t rec_len;
} ob_entry;

static bool
ob_decode(const MDB_val *d, ob_entry *e)
{
	const uint8_t *p = d->mv_data;
	size_t n = d->mv_size, off = 0;
	if (n < 4)
		return false;
	e->state = p[off++];
	size_t cl = p[off++];
	if (off + cl + 2 > n)
		return false;
	memcpy(e->csid, p + off, cl);
	e->csid[cl] = '\0';
	off += cl;
	size_t rl = (size_t)p[off] | (size_t)p[off + 1] << 8;
	off += 2;
	if (off + rl > n || rl > SDK_REASON_MAX)
		return false;
	memcpy(e->reason, p + off, rl);
	e->reason[rl] = '\0';
	off += rl;
	e->rec_bytes = p + off;
	e->rec_len = n - off;
	return true;
}

static int
ob_put(fs_store *s, MDB_txn *t, const MDB_val *key, uint8_t state, const char *csid,
       const char *reason, const uint8_t *rec, size_t rec_len)
{
	size_t cl = csid ? strlen(csid) : 0, rl = reason ? strlen(reason) : 0;
	if (cl > 255)
		cl = 255;
	if (rl > SDK_REASON_MAX)
		rl = SDK_REASON_MAX;
	MDB_val d = {4 + cl + rl + rec_len, NULL};
	int rc = mdb_put(t, s->outbox, (MDB_val *)key, &d, MDB_RESERVE);
	if (rc != MDB_SUCCESS)
		return rc;
	uint8_t *p = d.mv_data;
	p[0] = state;
	p[1] = (uint8_t)cl;
	if (cl > 0)
		memcpy(p + 2, csid, cl);
	p[2 + cl] = (uint8_t)(rl & 0xff);
	p[3 + cl] = (uint8_t)(rl >> 8);
	if (rl > 0)
		memcpy(p + 4 + cl, reason, rl);
	if (rec_len > 0)
		memcpy(p + 4 + cl + rl, rec, rec_len);
	return MDB_SUCCESS;
}

/*
 * The one local write: a value (or tombstone) whose version is the join of
 * every sibling + 1 on this replica. must_exist: FS_ERR_NOT_FOUND unless
 * some sibling exists (must_live: a non-deleted one).
 */
static fs_err
write_value(fs_store *s, const char *collection, const char *id, const char *scope,
            bool deleted, const void *payload, size_t len, bool must_exist, bool must_live)
{
	uint8_t key[KEY_MAX], *rec_buf = NULL;
	size_t klen;
	MDB_txn *t = NULL;
	sdk_record_state *old = NULL;
	fsp_vv *joined = NULL, *next = NULL;
	fs_err err = FS_OK;
	char why[256];
	int rc;

	if (s == NULL || !names_valid(collection, id) || (scope && !fsp_scope_valid(scope)) ||
	    (len > 0 && payload == NULL) || len > SDK_PAYLOAD_MAX)
		return FS_ERR_INVALID;
	if (!deleted && fsp_collection_typed(collection) &&
	    !fsp_typed_check(collection, payload, len, why, sizeof(why)))
		return FS_ERR_INVALID;
	klen = make_key(key, collection, id);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = record_load(s, t, key, klen, &old)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if (must_exist) {
		bool live = false;
		for (size_t i = 0; old && i < old->n_siblings; i++)
			live |= !old->siblings[i]->deleted;
		if (old == NULL || old->n_siblings == 0 || (must_live && !live)) {
			err = FS_ERR_NOT_FOUND;
			goto out;
		}
	}
	if (old != NULL && old->n_siblings > 0) {
		const fsp_vv **vs = malloc(old->n_siblings * sizeof(*vs));
		bool ok = vs != NULL;
		for (size_t i = 0; ok && i < old->n_siblings; i++)
			vs[i] = old->siblings[i]->version;
		ok = ok && fsp_vv_join(vs, old->n_siblings, &joined);
		free(vs);
		if (!ok) {
			err = FS_ERR_NOMEM;
			goto out;
		}
	}
	if (!fsp_vv_increment(joined, s->replica, &next)) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	if (scope == NULL)
		scope = (old != NULL && fsp_scope_valid(old->scope)) ? old->scope : s->scope;

	fsp_record r = FIELDSYNC__V1__RECORD__INIT;
	r.collection = (char *)collection;
	r.id = (char *)id;
	r.scope = (char *)scope;
	r.version = next;
	r.deleted = deleted;
	if (!deleted) {
		r.payload.data = (uint8_t *)payload;
		r.payload.len = len;
	}
	r.modified_at_ms = sdk_now_ms();
	r.modified_by = s->replica;
	if (!fsp_record_check(&r, why, sizeof(why))) {
		err = FS_ERR_INVALID;
		goto out;
	}

	fsp_record *sib[1] = {&r};
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	rs.collection = r.collection;
	rs.id = r.id;
	rs.scope = r.scope;
	rs.seq = old ? old->seq : 0;
	rs.n_siblings = 1;
	rs.siblings = sib;
	if ((rc = record_save(s, t, key, klen, &rs)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	size_t rlen = fieldsync__v1__record__get_packed_size(&r);
	if ((rec_buf = malloc(rlen ? rlen : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	fieldsync__v1__record__pack(&r, rec_buf);
	MDB_val k = {klen, key};
	if ((rc = ob_put(s, t, &k, OB_PENDING, NULL, NULL, rec_buf, rlen)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	rc = mdb_txn_commit(t);
	t = NULL;
	err = map_rc(rc);
out:
	if (t != NULL)
		mdb_txn_abort(t);
	if (old != NULL)
		fieldsync__v1__record_state__free_unpacked(old, NULL);
	fsp_vv_free(joined);
	fsp_vv_free(next);
	free(rec_buf);
	return err;
}

fs_err
fs_put(fs_store *s, const char *collection, const char *id, const char *scope,
       const void *payload, size_t len)
{
	return write_value(s, collection, id, scope, false, payload, len, false, false);
}

fs_err
fs_delete(fs_store *s, const char *collection, const char *id)
{
	return write_value(s, collection, id, NULL, true, NULL, 0, true, true);
}

fs_err
fs_resolve(fs_store *s, const char *collection, const char *id, const void *payload,
           size_t len)
{
	return write_value(s, collection, id, NULL, false, payload, len, true, false);
}

fs_err
fs_get(fs_store *s, const char *collection, const char *id, fs_record **out)
{
	uint8_t key[KEY_MAX];
	MDB_txn *t = NULL;
	sdk_record_state *rs = NULL;
	fs_record *r = NULL;
	fs_err err = FS_OK;
	int rc;
	bool live = false;

	if (s == NULL || out == NULL || !names_valid(collection, id))
		return FS_ERR_INVALID;
	size_t klen = make_key(key, collection, id);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = record_load(s, t, key, klen, &rs)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	for (size_t i = 0; rs && i < rs->n_siblings; i++)
		live |= !rs->siblings[i]->deleted;
	if (!live) {
		err = FS_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	r->rs = rs;
	rs = NULL;
	if ((r->versions = calloc(r->rs->n_siblings, sizeof(char *))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->rs->n_siblings; i++) {
		const fsp_vv *v = r->rs->siblings[i]->version;
		size_t need = 1; /* "replica:counter," per dot, counters <= 20 digits */
		for (size_t j = 0; j < v->n_dots; j++)
			need += strlen(v->dots[j]->replica) + 22;
		if ((r->versions[i] = malloc(need)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		sdk_vv_text(v, r->versions[i], need);
	}
out:
	if (t != NULL)
		mdb_txn_abort(t);
	if (err != FS_OK)
		fs_record_free(&r);
	if (rs != NULL)
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
	if (err == FS_OK)
		*out = r;
	return err;
}

void
fs_record_free(fs_record **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	fs_record *r = *rp;
	if (r->versions != NULL && r->rs != NULL)
		for (size_t i = 0; i < r->rs->n_siblings; i++)
			free(r->versions[i]);
	free(r->versions);
	if (r->rs != NULL)
		fieldsync__v1__record_state__free_unpacked(r->rs, NULL);
	free(r);
	*rp = NULL;
}

const char *
fs_record_collection(const fs_record *r)
{
	return r->rs->collection;
}

const char *
fs_record_id(const fs_record *r)
{
	return r->rs->id;
}

const char *
fs_record_scope(const fs_record *r)
{
	return r->rs->scope;
}

size_t
fs_record_sibling_count(const fs_record *r)
{
	return r->rs->n_siblings;
}

void
fs_record_sibling(const fs_record *r, size_t i, fs_sibling *out)
{
	const fsp_record *x = r->rs->siblings[i];
	out->deleted = x->deleted;
	out->payload = x->payload.len ? x->payload.data : NULL;
	out->len = x->payload.len;
	out->version = r->versions[i];
	out->modified_at_ms = x->modified_at_ms;
	out->modified_by = x->modified_by ? x->modified_by : "";
}

/* ---- lists -------------------------------------------------------------- */

void
fs_list_free(fs_list **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	fs_list *l = *lp;
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->items[i].collection);
		free((char *)l->items[i].id);
		free((char *)l->items[i].scope);
		free((char *)l->items[i].reason);
	}
	free(l->items);
	free(l);
	*lp = NULL;
}

static bool
list_add(fs_list *l, size_t *cap, const char *coll, const char *id, const char *scope,
         size_t siblings, const char *reason)
{
	if (l->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		fs_list_item *it = realloc(l->items, nc * sizeof(*it));
		if (it == NULL)
			return false;
		l->items = it;
		*cap = nc;
	}
	fs_list_item *it = &l->items[l->n];
	memset(it, 0, sizeof(*it));
	it->collection = strdup(coll);
	it->id = strdup(id);
	it->scope = strdup(scope ? scope : "");
	it->reason = reason ? strdup(reason) : NULL;
	it->siblings = siblings;
	l->n++;
	return it->collection && it->id && it->scope && (reason == NULL || it->reason);
}

enum list_kind { LIST_COLLECTION, LIST_CONFLICTS, LIST_FAILED };

static fs_err
list_scan(fs_store *s, enum list_kind kind, const char *collection, fs_list **out)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	fs_list *l = NULL;
	size_t cap = 0;
	uint8_t prefix[1 + FSP_COLLECTION_MAX];
	size_t plen = 0;
	fs_err err = FS_OK;
	int rc;
	MDB_val k, d;
	MDB_cursor_op op = MDB_FIRST;

	if (s == NULL || out == NULL)
		return FS_ERR_INVALID;
	if (kind == LIST_COLLECTION) {
		if (collection == NULL || !fsp_collection_valid(collection))
			return FS_ERR_INVALID;
		plen = 1 + strlen(collection);
		prefix[0] = (uint8_t)(plen - 1);
		memcpy(prefix + 1, collection, plen - 1);
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return FS_ERR_NOMEM;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, kind == LIST_FAILED ? s->outbox : s->records, &c)) !=
	        MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if (plen > 0) {
		k.mv_size = plen;
		k.mv_data = prefix;
		op = MDB_SET_RANGE;
	}
	for (rc = mdb_cursor_get(c, &k, &d, op); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		if (plen > 0 && (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		if (!split_key(&k, coll, id))
			continue; /* not ours: skip rather than fail the listing */
		if (kind == LIST_FAILED) {
			ob_entry e;
			if (!ob_decode(&d, &e) || e.state != OB_PARKED)
				continue;
			if (!list_add(l, &cap, coll, id, NULL, 1, e.reason)) {
				err = FS_ERR_NOMEM;
				goto out;
			}
			continue;
		}
		sdk_record_state *rs = fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		if (rs == NULL)
			continue;
		bool live = false, keep;
		for (size_t i = 0; i < rs->n_siblings; i++)
			live |= !rs->siblings[i]->deleted;
		keep = kind == LIST_COLLECTION ? live : rs->n_siblings > 1;
		if (keep && !list_add(l, &cap, coll, id, rs->scope, rs->n_siblings, NULL)) {
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
			err = FS_ERR_NOMEM;
			goto out;
		}
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = map_rc(rc);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (t != NULL)
		mdb_txn_abort(t);
	if (err != FS_OK)
		fs_list_free(&l);
	else
		*out = l;
	return err;
}

fs_err
fs_list_collection(fs_store *s, const char *collection, fs_list **out)
{
	return list_scan(s, LIST_COLLECTION, collection, out);
}

fs_err
fs_list_conflicts(fs_store *s, fs_list **out)
{
	return list_scan(s, LIST_CONFLICTS, NULL, out);
}

fs_err
fs_list_failed(fs_store *s, fs_list **out)
{
	return list_scan(s, LIST_FAILED, NULL, out);
}

fs_err
fs_retry_failed(fs_store *s, size_t *n)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	size_t count = 0;
	fs_err err = FS_OK;
	int rc;

	if (s == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		ob_entry e;
		if (!ob_decode(&d, &e) || e.state != OB_PARKED)
			continue;
		/* the first byte is the state; the length does not change */
		uint8_t *copy = malloc(d.mv_size);
		if (copy == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(copy, d.mv_data, d.mv_size);
		copy[0] = OB_PENDING;
		MDB_val nd = {d.mv_size, copy};
		rc = mdb_cursor_put(c, &k, &nd, MDB_CURRENT);
		free(copy);
		if (rc != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
		count++;
	}
	if (rc != MDB_NOTFOUND) {
		err = map_rc(rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	rc = mdb_txn_commit(t);
	t = NULL;
	err = map_rc(rc);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (t != NULL)
		mdb_txn_abort(t);
	if (err == FS_OK && n != NULL)
		*n = count;
	return err;
}

/* ---- status ------------------------------------------------------------- */

static fs_err
outbox_counts(fs_store *s, MDB_txn *t, uint64_t *pending, uint64_t *parked)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, s->outbox, &c);
	*pending = *parked = 0;
	if (rc != MDB_SUCCESS)
		return map_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		const uint8_t *p = d.mv_data;
		if (d.mv_size > 0 && p[0] == OB_PARKED)
			(*parked)++;
		else
			(*pending)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? FS_OK : map_rc(rc);
}

fs_err
fs_status_get(fs_store *s, fs_status *out)
{
	MDB_txn *t = NULL;
	MDB_val k, d;
	fs_err err;
	int rc;
	fs_status st;

	if (s == NULL || out == NULL)
		return FS_ERR_INVALID;
	memset(&st, 0, sizeof(st));
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if ((err = outbox_counts(s, t, &st.pending, &st.failed)) != FS_OK)
		goto out;
	uint64_t v;
	if ((rc = meta_get_u64(t, s->meta, "checkpoint", &st.last_seq)) != MDB_SUCCESS ||
	    (rc = meta_get_u64(t, s->meta, "last_ok", &v)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	st.last_sync_ms = (int64_t)v;
	k.mv_data = "last_err";
	k.mv_size = 8;
	rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_SUCCESS && d.mv_size >= 12) {
		const uint8_t *p = d.mv_data;
		uint32_t code = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                (uint32_t)p[3] << 24;
		st.last_error = code <= FS_ERR_SERVER ? (fs_err)code : FS_ERR_CORRUPT;
		st.last_error_ms = (int64_t)get_u64le(p + 4);
		size_t ml = d.mv_size - 12;
		if (ml >= sizeof(st.last_error_msg))
			ml = sizeof(st.last_error_msg) - 1;
		memcpy(st.last_error_msg, p + 12, ml);
		st.last_error_msg[ml] = '\0';
	} else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = map_rc(rc);
		goto out;
	}
	err = FS_OK;
	*out = st;
out:
	if (t != NULL)
		mdb_txn_abort(t);
	return err;
}

fs_err
sdk_sync_record(fs_store *s, fs_err e, const char *msg)
{
	MDB_txn *t = NULL;
	int rc;
	fs_err err;
	int64_t now = sdk_now_ms();

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	if (e == FS_OK) {
		if ((rc = meta_put_u64(t, s->meta, "last_ok", (uint64_t)now)) != MDB_SUCCESS)
			goto fail;
		MDB_val k = {8, "last_err"};
		rc = mdb_del(t, s->meta, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			goto fail;
	} else {
		uint8_t buf[12 + 255];
		size_t ml = msg ? strlen(msg) : 0;
		if (ml > 255)
			ml = 255;
		for (int i = 0; i < 4; i++)
			buf[i] = (uint8_t)((uint32_t)e >> (8 * i));
		put_u64le(buf + 4, (uint64_t)now);
		if (ml)
			memcpy(buf + 12, msg, ml);
		if ((rc = meta_put(t, s->meta, "last_err", buf, 12 + ml)) != MDB_SUCCESS)
			goto fail;
	}
	rc = mdb_txn_commit(t);
	return map_rc(rc);
fail:
	err = map_rc(rc);
	mdb_txn_abort(t);
	return err;
}

fs_err
sdk_checkpoint_get(fs_store *s, uint64_t *seq)
{
	MDB_txn *t = NULL;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return map_rc(rc);
	rc = meta_get_u64(t, s->meta, "checkpoint", seq);
	mdb_txn_abort(t);
	return map_rc(rc);
}

fs_err
sdk_pending_count(fs_store *s, uint64_t *n)
{
	MDB_txn *t = NULL;
	uint64_t parked;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return map_rc(rc);
	fs_err err = outbox_counts(s, t, n, &parked);
	mdb_txn_abort(t);
	return err;
}

/* ---- push --------------------------------------------------------------- */

static void
put_u64be(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t
get_u64be(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

fs_err
sdk_inflight_next(fs_store *s, uint64_t *key, uint8_t **bytes, size_t *len)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k = {8, kb}, d;
	fs_err err;
	int rc;

	put_u64be(kb, *key + 1);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->inflight, &c)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
		if (k.mv_size == 8)
			break;
	if (rc != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if ((*bytes = malloc(d.mv_size ? d.mv_size : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	memcpy(*bytes, d.mv_data, d.mv_size);
	*len = d.mv_size;
	*key = get_u64be(k.mv_data);
	err = FS_OK;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (t != NULL)
		mdb_txn_abort(t);
	return err;
}

fs_err
sdk_push_prepare(fs_store *s, size_t max, size_t budget, uint64_t *key, uint8_t **bytes,
                 size_t *len)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	fs_err err = FS_OK;
	int rc;
	Fieldsync__V1__Change **changes = NULL;
	Fieldsync__V1__Change *chs = NULL;
	MDB_val *keys = NULL;
	uint8_t *keybuf = NULL;
	size_t n = 0, size = 0;
	bool solo = false;
	char csid[37];
	uint8_t *out = NULL;

	if (max == 0)
		max = 1;
	if ((changes = calloc(max, sizeof(*changes))) == NULL ||
	    (chs = calloc(max, sizeof(*chs))) == NULL || (keys = calloc(max, sizeof(*keys))) == NULL ||
	    (keybuf = malloc(max * KEY_MAX)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS && n < max && !solo;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		ob_entry e;
		if (!ob_decode(&d, &e) || e.state == OB_PARKED || e.csid[0] != '\0')
			continue;
		if (e.state == OB_SOLO && n > 0)
			continue;
		if (k.mv_size > KEY_MAX)
			continue;
		fsp_record *r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		if (r == NULL)
			continue; /* cannot be pushed; stays visible in status */
		size_t sz = fieldsync__v1__record__get_packed_size(r) + 16;
		if (n > 0 && size + sz > budget) {
			fieldsync__v1__record__free_unpacked(r, NULL);
			break;
		}
		fieldsync__v1__change__init(&chs[n]);
		chs[n].record = r;
		changes[n] = &chs[n];
		memcpy(keybuf + n * KEY_MAX, k.mv_data, k.mv_size);
		keys[n].mv_data = keybuf + n * KEY_MAX;
		keys[n].mv_size = k.mv_size;
		size += sz;
		n++;
		solo = e.state == OB_SOLO;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = map_rc(rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	if (n == 0) {
		err = FS_ERR_NOT_FOUND;
		goto out;
	}
	if (!sdk_uuid(csid)) {
		err = FS_ERR_IO;
		goto out;
	}
	/* mark the entries: same bytes, with the change set's id */
	for (size_t i = 0; i < n; i++) {
		ob_entry e;
		if ((rc = mdb_get(t, s->outbox, &keys[i], &d)) != MDB_SUCCESS || !ob_decode(&d, &e)) {
			err = rc != MDB_SUCCESS ? map_rc(rc) : FS_ERR_CORRUPT;
			goto out;
		}
		uint8_t *rec = malloc(e.rec_len ? e.rec_len : 1);
		if (rec == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(rec, e.rec_bytes, e.rec_len);
		rc = ob_put(s, t, &keys[i], e.state, csid, NULL, rec, e.rec_len);
		free(rec);
		if (rc != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
	}
	sdk_push_request req = FIELDSYNC__V1__PUSH_REQUEST__INIT;
	req.changeset_id = csid;
	req.n_changes = n;
	req.changes = changes;
	size_t plen = fieldsync__v1__push_request__get_packed_size(&req);
	if ((out = malloc(plen ? plen : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	fieldsync__v1__push_request__pack(&req, out);
	uint64_t next;
	uint8_t kb[8];
	if ((rc = meta_get_u64(t, s->meta, "cs_next", &next)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if (next == 0)
		next = 1;
	put_u64be(kb, next);
	MDB_val ik = {8, kb}, iv = {plen, out};
	if ((rc = mdb_put(t, s->inflight, &ik, &iv, 0)) != MDB_SUCCESS ||
	    (rc = meta_put_u64(t, s->meta, "cs_next", next + 1)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	rc = mdb_txn_commit(t);
	t = NULL;
	if ((err = map_rc(rc)) != FS_OK)
		goto out;
	*key = next;
	*bytes = out;
	*len = plen;
	out = NULL;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (t != NULL)
		mdb_txn_abort(t);
	for (size_t i = 0; i < n; i++)
		fieldsync__v1__record__free_unpacked(chs[i].record, NULL);
	free(out);
	free(changes);
	free(chs);
	free(keys);
	free(keybuf);
	return err;
}

/* True when reason starts with an Error code name and a colon ("INVALID: …"). */
static bool
reason_has_code(const char *r)
{
	size_t i = 0;
	while (r[i] >= 'A' && r[i] <= 'Z')
		i++;
	while (r[i] == '_' || (r[i] >= 'A' && r[i] <= 'Z'))
		i++;
	return i > 0 && r[i] == ':';
}

/*
 * Settles change i of an in-flight change set in the outbox. action:
 * 'a' acknowledged (delete when same version), 'p' park with reason,
 * 'q' requeue, 's' requeue to be pushed alone.
 */
static int
settle(fs_store *s, MDB_txn *t, const fsp_record *r, char action, const char *reason,
       bool *touched)
{
	uint8_t key[KEY_MAX];
	MDB_val k, d;
	ob_entry e;
	int rc;

	*touched = false;
	if (r == NULL || !names_valid(r->collection, r->id))
		return MDB_SUCCESS;
	k.mv_size = make_key(key, r->collection, r->id);
	k.mv_data = key;
	rc = mdb_get(t, s->outbox, &k, &d);
	if (rc == MDB_NOTFOUND)
		return MDB_SUCCESS;
	if (rc != MDB_SUCCESS)
		return rc;
	if (!ob_decode(&d, &e))
		return MDB_SUCCESS;
	fsp_record *mine = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
	if (mine == NULL)
		return MDB_SUCCESS;
	/* a newer local edit replaced the entry: it is not what was answered */
	bool same = fsp_vv_compare(mine->version, r->version) == FSP_VV_EQUAL;
	fieldsync__v1__record__free_unpacked(mine, NULL);
	if (!same)
		return MDB_SUCCESS;
	*touched = true;
	if (action == 'a')
		return mdb_del(t, s->outbox, &k, NULL);
	uint8_t *rec = malloc(e.rec_len ? e.rec_len : 1);
	if (rec == NULL)
		return ENOMEM;
	memcpy(rec, e.rec_bytes, e.rec_len);
	uint8_t state = action == 'p' ? OB_PARKED : action == 's' ? OB_SOLO : OB_PENDING;
	rc = ob_put(s, t, &k, state, NULL, action == 'p' ? reason : NULL, rec, e.rec_len);
	free(rec);
	return rc;
}

static int
inflight_del(fs_store *s, MDB_txn *t, uint64_t key)
{
	uint8_t kb[8];
	put_u64be(kb, key);
	MDB_val k = {8, kb};
	int rc = mdb_del(t, s->inflight, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

fs_err
sdk_push_done(fs_store *s, uint64_t key, const sdk_push_request *req,
              const sdk_push_reply *rep, sdk_push_outcome *o)
{
	MDB_txn *t = NULL;
	int rc;
	bool touched;
	size_t culprits = 0, bystanders = 0;
	sdk_push_outcome oc = {0, 0, 0, 0};

	/*
	 * A rejected change set applied nothing. When the reasons tell the
	 * faulty changes ("INVALID: …") from the bystanders ("not applied …"),
	 * the faulty ones are parked and the rest requeued. When they do not,
	 * every change is requeued to be pushed alone, so each is judged on its
	 * own and only a change refused alone is parked: nothing good is parked
	 * and nothing loops forever.
	 */
	for (size_t i = 0; i < rep->n_results; i++) {
		if (rep->results[i]->status != FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED)
			continue;
		if (reason_has_code(rep->results[i]->reason))
			culprits++;
		else
			bystanders++;
	}
	bool distinguishes = culprits > 0 && bystanders > 0;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	for (size_t i = 0; i < req->n_changes && i < rep->n_results; i++) {
		const Fieldsync__V1__ChangeResult *cr = rep->results[i];
		const fsp_record *r = req->changes[i]->record;
		char action;
		switch (cr->status) {
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED:
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE:
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__OBSOLETE:
			action = 'a';
			oc.acked++;
			break;
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT:
			action = 'a';
			oc.acked++;
			oc.conflicts++;
			break;
		default: /* REJECTED, or a status this version does not know */
			if (req->n_changes == 1)
				action = 'p';
			else if (distinguishes)
				action = reason_has_code(cr->reason) ? 'p' : 'q';
			else
				action = 's';
			break;
		}
		if ((rc = settle(s, t, r, action, cr->reason, &touched)) != MDB_SUCCESS)
			goto fail;
		if (touched && action == 'p')
			oc.parked++;
		else if (touched && action != 'a')
			oc.requeued++;
	}
	if ((rc = inflight_del(s, t, key)) != MDB_SUCCESS)
		goto fail;
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && o != NULL)
		*o = oc;
	return map_rc(rc);
fail:
	mdb_txn_abort(t);
	return map_rc(rc);
}

fs_err
sdk_push_refused(fs_store *s, uint64_t key, const sdk_push_request *req, const char *code,
                 const char *message, sdk_push_outcome *o)
{
	MDB_txn *t = NULL;
	int rc;
	bool touched;
	char reason[SDK_REASON_MAX + 1];
	sdk_push_outcome oc = {0, 0, 0, 0};

	snprintf(reason, sizeof(reason), "%s: %s", code, message ? message : "");
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	for (size_t i = 0; i < req->n_changes; i++) {
		char action = req->n_changes == 1 ? 'p' : 's';
		if ((rc = settle(s, t, req->changes[i]->record, action, reason, &touched)) !=
		    MDB_SUCCESS)
			goto fail;
		if (touched && action == 'p')
			oc.parked++;
		else if (touched)
			oc.requeued++;
	}
	if ((rc = inflight_del(s, t, key)) != MDB_SUCCESS)
		goto fail;
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && o != NULL)
		*o = oc;
	return map_rc(rc);
fail:
	mdb_txn_abort(t);
	return map_rc(rc);
}

/* ---- pull --------------------------------------------------------------- */

/* A sibling from the wire we are willing to store. */
static bool
sibling_ok(const fsp_record *r)
{
	const char *why = NULL;
	if (r == NULL || r->version == NULL || !fsp_vv_check(r->version, &why))
		return false;
	return !(r->deleted && r->payload.len != 0);
}

/* Merges one RecordState from the feed into the store. */
static int
pull_one(fs_store *s, MDB_txn *t, const sdk_record_state *in, bool *applied)
{
	uint8_t key[KEY_MAX];
	sdk_record_state *old = NULL;
	fsp_record **set = NULL, **next = NULL;
	size_t n = 0;
	int rc;

	*applied = false;
	if (!names_valid(in->collection, in->id))
		return MDB_SUCCESS; /* garbage from the wire: skip, never crash */
	size_t klen = make_key(key, in->collection, in->id);
	MDB_val k = {klen, key};
	if (in->purged || in->revoked) {
		rc = mdb_del(t, s->records, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		rc = mdb_del(t, s->outbox, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		*applied = true;
		return MDB_SUCCESS;
	}
	if ((rc = record_load(s, t, key, klen, &old)) != MDB_SUCCESS)
		return rc;
	size_t cap = (old ? old->n_siblings : 0) + in->n_siblings + 1;
	if ((set = calloc(cap, sizeof(*set))) == NULL || (next = calloc(cap, sizeof(*next))) == NULL) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; old && i < old->n_siblings; i++)
		set[n++] = old->siblings[i];
	bool changed = false;
	for (size_t i = 0; i < in->n_siblings; i++) {
		fsp_record *r = in->siblings[i];
		size_t m = 0;
		if (!sibling_ok(r))
			continue;
		fsp_merge_status st = fsp_merge(set, n, r, next, &m);
		if (st == FSP_MERGE_APPLIED || st == FSP_MERGE_CONFLICT) {
			memcpy(set, next, m * sizeof(*set));
			n = m;
			changed = true;
		}
		/* DUPLICATE/OBSOLETE: nothing new; INVALID: a reused dot, kept out */
	}
	const char *scope = fsp_scope_valid(in->scope) ? in->scope : old ? old->scope : NULL;
	if (n == 0 || scope == NULL || (!changed && old != NULL && strcmp(old->scope, scope) == 0)) {
		rc = MDB_SUCCESS;
		goto out;
	}
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	rs.collection = in->collection;
	rs.id = in->id;
	rs.scope = (char *)scope;
	rs.seq = in->seq;
	rs.n_siblings = n;
	rs.siblings = set;
	rc = record_save(s, t, key, klen, &rs);
	*applied = rc == MDB_SUCCESS;
out:
	free(set);
	free(next);
	if (old != NULL)
		fieldsync__v1__record_state__free_unpacked(old, NULL);
	return rc;
}

fs_err
sdk_pull_apply(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied)
{
	MDB_txn *t = NULL;
	int rc;
	uint64_t cp, count = 0;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	for (size_t i = 0; i < rep->n_records; i++) {
		bool a;
		if (rep->records[i] == NULL)
			continue;
		if ((rc = pull_one(s, t, rep->records[i], &a)) != MDB_SUCCESS)
			goto fail;
		count += a;
	}
	if ((rc = meta_get_u64(t, s->meta, "checkpoint", &cp)) != MDB_SUCCESS)
		goto fail;
	if (rep->last_seq > cp && (rc = meta_put_u64(t, s->meta, "checkpoint", rep->last_seq)) !=
	                              MDB_SUCCESS)
		goto fail;
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && applied != NULL)
		*applied = count;
	return map_rc(rc);
fail:
	mdb_txn_abort(t);
	return map_rc(rc);
}
