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
 *             keyring: "c:<case_id>" for a case and its contacts (a
 *             contact's case is its payload's case_id), "r:<collection>/<id>"
 *             for every other record (and a contact without a case id)
 *
 * Every non-empty payload - of every sibling in `records`, of the Record in
 * an `outbox` entry, of every change of an `inflight` PushRequest - is
 * stored as [0xFE 'K'][u8 name length][DEK name][fsc_seal output] with AAD
 * "<collection>\0<id>" (taken from the LMDB key for records and outbox),
 * the daemon's format. Payloads are plaintext only in memory: record_load
 * and the push functions open them, record_save and write_value seal them.
 * Ids, scopes, versions and the outbox bookkeeping stay in clear.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fieldsync/crypto.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "internal.h"

#define SDK_SCHEMA 1u     /* a plain store */
#define SDK_SCHEMA_ENC 2u /* an encrypted store */
#define SEAL_MAGIC0 0xFE
#define SEAL_MAGIC1 'K'
#define DEK_NAME_MAX (2 + FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)
#define AAD_MAX (FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)
/* Our own return codes next to LMDB's and errno's; map_rc turns them into fs_err. */
#define RC_SEAL_BAD (-31900) /* a sealed value does not open (or its DEK is gone) */
#define RC_CRYPTO (-31901)   /* sealing failed: no randomness, OpenSSL error */
#define KEY_MAX (1 + FSP_COLLECTION_MAX + FSP_ID_MAX)
#define MAP_SIZE ((size_t)4 << 30)

enum { OB_PENDING = 0, OB_PARKED = 1, OB_SOLO = 2 };

struct fs_store {
	MDB_env *env;
	MDB_dbi meta, records, outbox, inflight, keys; /* keys: encrypted stores only */
	char replica[FSP_REPLICA_MAX + 1];
	char scope[FSP_SCOPE_MAX + 1];
	bool encrypted;
	fsc_master master;              /* the store key; wiped at close */
	uint8_t store_dek[FSC_KEY_LEN]; /* seals the credential's secret; wiped at close */
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
	case RC_SEAL_BAD:
		return FS_ERR_CORRUPT;
	default: /* RC_CRYPTO and every other error */
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
	case FS_ERR_KEY_REQUIRED:
		return "the local store is encrypted: open it with its key";
	case FS_ERR_KEY_WRONG:
		return "the key given does not open the local store (wrong key or key id)";
	case FS_ERR_NOT_ENCRYPTED:
		return "a key was given but the local store is not encrypted";
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

/* ---- sealing (encrypted stores) ----------------------------------------- */

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
static fs_err
opts_key(const fs_store_opts *o, fsc_master *m, bool *has)
{
	*has = false;
	if (o == NULL || (o->key == NULL && o->key_len == 0 && o->key_id == NULL))
		return FS_OK;
	if (o->key == NULL || o->key_len != FS_STORE_KEY_LEN || !key_id_ok(o->key_id))
		return FS_ERR_INVALID;
	memcpy(m->key, o->key, FSC_KEY_LEN);
	snprintf(m->id, sizeof(m->id), "%s", o->key_id);
	*has = true;
	return FS_OK;
}

/* The name of the DEK a payload of (collection, id) is sealed with. */
static void
dek_name(const char *coll, const char *id, const uint8_t *payload, size_t len,
         char name[DEK_NAME_MAX + 1])
{
	if (strcmp(coll, "case") == 0) {
		snprintf(name, DEK_NAME_MAX + 1, "c:%s", id);
		return;
	}
	if (strcmp(coll, "contact") == 0) {
		Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, len, payload);
		bool has_case = c != NULL && c->case_id != NULL && c->case_id[0] != '\0' &&
		                strlen(c->case_id) <= FSP_ID_MAX;
		if (has_case)
			snprintf(name, DEK_NAME_MAX + 1, "c:%s", c->case_id);
		if (c != NULL)
			fieldsync__v1__contact__free_unpacked(c, NULL);
		if (has_case)
			return;
	}
	snprintf(name, DEK_NAME_MAX + 1, "r:%s/%s", coll, id);
}

/* "<collection>\0<id>": where a sealed payload belongs. */
static size_t
make_aad(uint8_t aad[AAD_MAX], const char *coll, const char *id)
{
	size_t cl = strlen(coll), il = strlen(id);
	memcpy(aad, coll, cl);
	aad[cl] = '\0';
	memcpy(aad + cl + 1, id, il);
	return cl + 1 + il;
}

/*
 * Unwraps DEK `name` into dek. When it does not exist: creates, wraps and
 * stores it in t (a write transaction) if create is set, else RC_SEAL_BAD.
 */
static int
dek_get(fs_store *s, MDB_txn *t, const char *name, bool create, uint8_t dek[FSC_KEY_LEN])
{
	MDB_val k = {strlen(name), (void *)name}, d;
	uint8_t *w = NULL;
	size_t wl = 0;
	int rc = mdb_get(t, s->keys, &k, &d);
	if (rc == MDB_SUCCESS)
		return fsc_unwrap(&s->master, d.mv_data, d.mv_size, dek) ? MDB_SUCCESS : RC_SEAL_BAD;
	if (rc != MDB_NOTFOUND)
		return rc;
	if (!create)
		return RC_SEAL_BAD; /* destroyed by a purge */
	if (!fsc_new_key(dek) || !fsc_wrap(&s->master, dek, &w, &wl)) {
		fsc_cleanse(dek, FSC_KEY_LEN);
		return RC_CRYPTO;
	}
	d.mv_size = wl;
	d.mv_data = w;
	rc = mdb_put(t, s->keys, &k, &d, MDB_NOOVERWRITE);
	free(w);
	if (rc != MDB_SUCCESS)
		fsc_cleanse(dek, FSC_KEY_LEN);
	return rc;
}

/* Removes DEK `name` (crypto-shredding); absent is fine. */
static int
dek_destroy(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(t, s->keys, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/*
 * Seals payload p[0..len) of (coll, id): *out malloc'd (caller frees). An
 * empty payload stays empty (*out NULL, *out_len 0): there is nothing to hide.
 */
static int
seal_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *p,
           size_t len, uint8_t **out, size_t *out_len)
{
	char name[DEK_NAME_MAX + 1];
	uint8_t dek[FSC_KEY_LEN], aad[AAD_MAX], *sealed = NULL, *buf = NULL;
	size_t sl = 0, nl;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return MDB_SUCCESS;
	dek_name(coll, id, p, len, name);
	nl = strlen(name);
	if ((rc = dek_get(s, t, name, true, dek)) != MDB_SUCCESS)
		return rc;
	size_t al = make_aad(aad, coll, id);
	bool ok = fsc_seal(dek, aad, al, p, len, &sealed, &sl);
	fsc_cleanse(dek, sizeof(dek));
	if (!ok)
		return RC_CRYPTO;
	if ((buf = malloc(3 + nl + sl)) == NULL) {
		free(sealed);
		return ENOMEM;
	}
	buf[0] = SEAL_MAGIC0;
	buf[1] = SEAL_MAGIC1;
	buf[2] = (uint8_t)nl;
	memcpy(buf + 3, name, nl);
	memcpy(buf + 3 + nl, sealed, sl);
	free(sealed);
	*out = buf;
	*out_len = 3 + nl + sl;
	return MDB_SUCCESS;
}

/* The DEK name a sealed value names (a view into it), or NULL when it is not one. */
static const uint8_t *
sealed_name(const uint8_t *in, size_t len, size_t *nl)
{
	if (len < 3 || in[0] != SEAL_MAGIC0 || in[1] != SEAL_MAGIC1 || in[2] == 0 ||
	    len < 3u + in[2] + FSC_SEAL_OVERHEAD)
		return NULL;
	*nl = in[2];
	return in + 3;
}

/* Opens what seal_value made: *out malloc'd (NULL, 0 for empty). RC_SEAL_BAD
 * when it is not sealed, its DEK is gone, or it does not verify. */
static int
open_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *in,
           size_t len, uint8_t **out, size_t *out_len)
{
	char name[256];
	uint8_t dek[FSC_KEY_LEN], aad[AAD_MAX];
	const uint8_t *n;
	size_t nl = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return MDB_SUCCESS;
	if ((n = sealed_name(in, len, &nl)) == NULL)
		return RC_SEAL_BAD;
	memcpy(name, n, nl);
	name[nl] = '\0';
	if (strlen(name) != nl)
		return RC_SEAL_BAD;
	if ((rc = dek_get(s, t, name, false, dek)) != MDB_SUCCESS)
		return rc;
	size_t al = make_aad(aad, coll, id);
	bool ok = fsc_open(dek, aad, al, in + 3 + nl, len - 3 - nl, out, out_len);
	fsc_cleanse(dek, sizeof(dek));
	return ok ? MDB_SUCCESS : RC_SEAL_BAD;
}

/* Replaces r's sealed payload by its plaintext, in place (r comes from a
 * protobuf-c unpack with the default allocator, so its bytes are malloc'd). */
static int
record_open(fs_store *s, MDB_txn *t, const char *coll, const char *id, fsp_record *r)
{
	uint8_t *p = NULL;
	size_t pl = 0;
	if (!s->encrypted || r->payload.len == 0)
		return MDB_SUCCESS;
	int rc = open_value(s, t, coll, id, r->payload.data, r->payload.len, &p, &pl);
	if (rc != MDB_SUCCESS)
		return rc;
	free(r->payload.data);
	r->payload.data = p;
	r->payload.len = pl;
	return MDB_SUCCESS;
}

/* True when the sealed payload p was sealed under DEK `name`. */
static bool
sealed_under(const uint8_t *p, size_t len, const char *name)
{
	size_t nl = 0;
	const uint8_t *n = sealed_name(p, len, &nl);
	return n != NULL && nl == strlen(name) && memcmp(n, name, nl) == 0;
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

/* Reads schema, replica, scope and whether the store is encrypted into s. */
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
	if (schema != SDK_SCHEMA && schema != SDK_SCHEMA_ENC)
		return FS_ERR_VERSION;
	k.mv_data = "encryption";
	k.mv_size = 10;
	rc = mdb_get(t, s->meta, &k, &d);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return map_rc(rc);
	s->encrypted = rc == MDB_SUCCESS;
	if (s->encrypted != (schema == SDK_SCHEMA_ENC))
		return FS_ERR_CORRUPT; /* never guess which one is right */
	if (s->encrypted && (d.mv_size != 1 || ((const uint8_t *)d.mv_data)[0] != 1))
		return FS_ERR_VERSION; /* a scheme this SDK does not know */
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
		return rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : map_rc(rc);
	if (!fsc_wrapped_key_id(d.mv_data, d.mv_size, id))
		return FS_ERR_CORRUPT;
	if (strcmp(id, s->master.id) != 0)
		return FS_ERR_KEY_WRONG;
	return fsc_unwrap(&s->master, d.mv_data, d.mv_size, s->store_dek) ? FS_OK
	                                                                   : FS_ERR_KEY_WRONG;
}

static const char cred_aad[] = "fieldsync-credential-secret";

/* Stores credential c (validated here again: the struct is public) in t. */
static fs_err
cred_put(fs_store *s, MDB_txn *t, const fs_credential *c)
{
	fs_credential *check = NULL;
	char *json = NULL;
	uint8_t *sealed = NULL, bin[32];
	size_t sl = 0;
	fs_err err;
	int rc;

	if (c == NULL || c->client_secret_key == NULL || c->endpoint == NULL ||
	    c->server_public_key == NULL || c->client_public_key == NULL || c->name == NULL ||
	    c->role == NULL || c->scopes == NULL)
		return FS_ERR_INVALID;
	for (size_t i = 0; i < c->n_scopes; i++)
		if (c->scopes[i] == NULL)
			return FS_ERR_INVALID;
	if ((json = sdk_credential_public_json(c)) == NULL)
		return FS_ERR_NOMEM;
	if ((err = sdk_credential_parse_public(json, strlen(json), &check)) != FS_OK)
		goto out;
	if (!sdk_z85_key_decode(c->client_secret_key, bin) ||
	    !sdk_curve_pair_ok(c->client_public_key, c->client_secret_key)) {
		err = FS_ERR_INVALID;
		goto out;
	}
	if ((rc = meta_put(t, s->meta, "credential", json, strlen(json))) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if (s->encrypted) {
		if (!fsc_seal(s->store_dek, cred_aad, sizeof(cred_aad) - 1,
		              (const uint8_t *)c->client_secret_key, SDK_Z85_KEY_LEN, &sealed, &sl)) {
			err = FS_ERR_IO;
			goto out;
		}
		rc = meta_put(t, s->meta, "credential_secret", sealed, sl);
	} else {
		rc = meta_put(t, s->meta, "credential_secret", c->client_secret_key, SDK_Z85_KEY_LEN);
	}
	err = map_rc(rc);
out:
	fsc_cleanse(bin, sizeof(bin));
	fs_credential_free(&check);
	free(json);
	free(sealed);
	return err;
}

/* The stored credential; its secret key too when with_secret. */
static fs_err
cred_get(fs_store *s, bool with_secret, fs_credential **out)
{
	MDB_txn *t = NULL;
	MDB_val k = {10, "credential"}, d;
	fs_credential *c = NULL;
	uint8_t *plain = NULL;
	size_t pl = 0;
	char secret[SDK_Z85_KEY_LEN + 1];
	fs_err err;
	int rc;

	if (s == NULL || out == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	if ((rc = mdb_get(t, s->meta, &k, &d)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if ((err = sdk_credential_parse_public(d.mv_data, d.mv_size, &c)) != FS_OK) {
		err = err == FS_ERR_INVALID ? FS_ERR_CORRUPT : err;
		goto out;
	}
	if (with_secret) {
		MDB_val sk = {17, "credential_secret"};
		if ((rc = mdb_get(t, s->meta, &sk, &d)) != MDB_SUCCESS) {
			err = rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : map_rc(rc);
			goto out;
		}
		if (s->encrypted) {
			if (!fsc_open(s->store_dek, cred_aad, sizeof(cred_aad) - 1, d.mv_data, d.mv_size,
			              &plain, &pl)) {
				err = FS_ERR_CORRUPT;
				goto out;
			}
		} else if ((plain = malloc(d.mv_size ? d.mv_size : 1)) != NULL) {
			memcpy(plain, d.mv_data, d.mv_size);
			pl = d.mv_size;
		} else {
			err = FS_ERR_NOMEM;
			goto out;
		}
		if (pl != SDK_Z85_KEY_LEN) {
			err = FS_ERR_CORRUPT;
			goto out;
		}
		memcpy(secret, plain, SDK_Z85_KEY_LEN);
		secret[SDK_Z85_KEY_LEN] = '\0';
		uint8_t bin[32];
		bool ok = sdk_z85_key_decode(secret, bin) &&
		          sdk_curve_pair_ok(c->client_public_key, secret);
		fsc_cleanse(bin, sizeof(bin));
		if (!ok) {
			err = FS_ERR_CORRUPT;
			goto out;
		}
		if ((c->client_secret_key = strdup(secret)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
	}
	*out = c;
	c = NULL;
	err = FS_OK;
out:
	mdb_txn_abort(t);
	fsc_cleanse(secret, sizeof(secret));
	if (plain != NULL) {
		fsc_cleanse(plain, pl);
		free(plain);
	}
	fs_credential_free(&c);
	return err;
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
	if ((err = opts_key(o, &m, &keyed)) != FS_OK)
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
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = errno == ENOENT ? FS_ERR_NOT_FOUND : FS_ERR_IO;
		goto out;
	}
	if (has_data_file(dir)) {
		err = FS_ERR_EXISTS;
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
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
	uint8_t schema[4] = {(keyed ? SDK_SCHEMA_ENC : SDK_SCHEMA) & 0xff, 0, 0, 0};
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
			rc = meta_put(t, s->meta, "encryption", &one, 1);
		if (rc == MDB_SUCCESS)
			rc = meta_put(t, s->meta, "key_check", w, wl);
		free(w);
		if (rc != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
	}
	if (cred != NULL && (err = cred_put(s, t, cred)) != FS_OK)
		goto out;
	rc = mdb_txn_commit(t);
	t = NULL;
	err = map_rc(rc);
out:
	if (t != NULL)
		mdb_txn_abort(t);
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
	if (!has_data_file(dir))
		return FS_ERR_NOT_FOUND;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return FS_ERR_NOMEM;
	if ((err = opts_key(o, &s->master, &keyed)) != FS_OK)
		goto out;
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
	if (s->encrypted && !keyed) {
		err = FS_ERR_KEY_REQUIRED;
		goto out;
	}
	if (!s->encrypted && keyed) {
		err = FS_ERR_NOT_ENCRYPTED;
		goto out;
	}
	if (s->encrypted) {
		if ((rc = mdb_dbi_open(t, "keys", 0, &s->keys)) != MDB_SUCCESS) {
			err = rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : map_rc(rc);
			goto out;
		}
		if ((err = key_check(s, t)) != FS_OK)
			goto out;
	}
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
	if ((*sp)->env != NULL)
		mdb_env_close((*sp)->env);
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
	MDB_cursor *c = NULL;
	MDB_val k, d;
	fsc_master nm;
	uint8_t dek[FSC_KEY_LEN], *w = NULL;
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
	if ((err = opts_key(&o, &nm, &keyed)) != FS_OK)
		goto out;
	if (!s->encrypted) {
		err = FS_ERR_NOT_ENCRYPTED;
		goto out;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->keys, &c)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (!fsc_unwrap(&s->master, d.mv_data, d.mv_size, dek)) {
			err = FS_ERR_CORRUPT; /* nothing changes: the transaction is aborted */
			goto out;
		}
		bool ok = fsc_wrap(&nm, dek, &w, &wl);
		fsc_cleanse(dek, sizeof(dek));
		if (!ok) {
			err = FS_ERR_IO;
			goto out;
		}
		MDB_val nd = {wl, w};
		rc = mdb_cursor_put(c, &k, &nd, MDB_CURRENT);
		free(w);
		w = NULL;
		if (rc != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
	}
	if (rc != MDB_NOTFOUND) {
		err = map_rc(rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	if (!fsc_wrap(&nm, s->store_dek, &w, &wl)) {
		err = FS_ERR_IO;
		goto out;
	}
	if ((rc = meta_put(t, s->meta, "key_check", w, wl)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	rc = mdb_txn_commit(t);
	t = NULL;
	if ((err = map_rc(rc)) == FS_OK)
		s->master = nm;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	if (t != NULL)
		mdb_txn_abort(t);
	free(w);
	fsc_cleanse(&nm, sizeof(nm));
	fsc_cleanse(dek, sizeof(dek));
	return err;
}

fs_err
fs_store_set_credential(fs_store *s, const fs_credential *c)
{
	MDB_txn *t = NULL;
	fs_err err;
	int rc;
	if (s == NULL || c == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	if ((err = cred_put(s, t, c)) != FS_OK) {
		mdb_txn_abort(t);
		return err;
	}
	return map_rc(mdb_txn_commit(t));
}

fs_err
fs_store_credential(fs_store *s, fs_credential **out)
{
	return cred_get(s, false, out);
}

fs_err
sdk_store_credential_secret(fs_store *s, fs_credential **out)
{
	return cred_get(s, true, out);
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
	char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
	rc = MDB_SUCCESS;
	if (s->encrypted && !split_key(&k, coll, id))
		rc = MDB_CORRUPTED;
	for (size_t i = 0; rc == MDB_SUCCESS && i < (*rs)->n_siblings; i++) {
		if ((*rs)->siblings[i]->version == NULL)
			rc = MDB_CORRUPTED;
		else /* the AAD comes from where the value is, not from what it says */
			rc = record_open(s, t, coll, id, (*rs)->siblings[i]);
	}
	if (rc != MDB_SUCCESS) {
		fieldsync__v1__record_state__free_unpacked(*rs, NULL);
		*rs = NULL;
	}
	return rc;
}

/* Stores rs (packed) at key; in an encrypted store with every payload sealed
 * (rs itself, plaintext, is not changed). */
static int
record_save(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen,
            const sdk_record_state *rs)
{
	MDB_val k = {klen, (void *)key}, d;
	sdk_record_state sealed_rs;
	fsp_record *views = NULL, **ptrs = NULL;
	uint8_t **bufs = NULL;
	size_t ns = rs->n_siblings;
	char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
	int rc = MDB_SUCCESS;

	if (s->encrypted) {
		if (!split_key(&k, coll, id))
			return EINVAL; /* make_key of checked names: cannot happen */
		if ((views = calloc(ns ? ns : 1, sizeof(*views))) == NULL ||
		    (ptrs = calloc(ns ? ns : 1, sizeof(*ptrs))) == NULL ||
		    (bufs = calloc(ns ? ns : 1, sizeof(*bufs))) == NULL) {
			rc = ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < ns; i++) {
			size_t bl = 0;
			views[i] = *rs->siblings[i];
			ptrs[i] = &views[i];
			if (views[i].payload.len == 0)
				continue;
			rc = seal_value(s, t, coll, id, views[i].payload.data, views[i].payload.len,
			                &bufs[i], &bl);
			if (rc != MDB_SUCCESS)
				goto out;
			views[i].payload.data = bufs[i];
			views[i].payload.len = bl;
		}
		sealed_rs = *rs;
		sealed_rs.siblings = ptrs;
		rs = &sealed_rs;
	}
	d.mv_size = fieldsync__v1__record_state__get_packed_size(rs);
	d.mv_data = NULL;
	if ((rc = mdb_put(t, s->records, &k, &d, MDB_RESERVE)) != MDB_SUCCESS)
		goto out;
	fieldsync__v1__record_state__pack(rs, d.mv_data);
out:
	for (size_t i = 0; bufs != NULL && i < ns; i++)
		free(bufs[i]);
	free(bufs);
	free(ptrs);
	free(views);
	return rc;
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
	uint8_t key[KEY_MAX], *rec_buf = NULL, *sealed = NULL;
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
	if (s->encrypted && r.payload.len > 0) { /* the outbox copy is sealed too */
		if ((rc = seal_value(s, t, collection, id, r.payload.data, r.payload.len, &sealed,
		                     &r.payload.len)) != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
		r.payload.data = sealed;
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
	free(sealed);
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
		st.last_error = code <= FS_ERR_NOT_ENCRYPTED ? (fs_err)code : FS_ERR_CORRUPT;
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

/*
 * An in-flight set of an encrypted store whose payloads no longer open (a
 * DEK destroyed by a purge, or damage): drops it and requeues its changes
 * that are still in the outbox, in one transaction. Safe: a change set the
 * daemon did apply comes back DUPLICATE or OBSOLETE when pushed again.
 */
static int settle(fs_store *s, MDB_txn *t, const fsp_record *r, char action, const char *reason,
                  bool *touched);
static int inflight_del(fs_store *s, MDB_txn *t, uint64_t key);

static fs_err
inflight_discard(fs_store *s, uint64_t key)
{
	MDB_txn *t = NULL;
	uint8_t kb[8];
	MDB_val k = {8, kb}, d;
	sdk_push_request *req = NULL;
	bool touched;
	int rc;

	put_u64be(kb, key);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return map_rc(rc);
	rc = mdb_get(t, s->inflight, &k, &d);
	if (rc == MDB_SUCCESS &&
	    (req = fieldsync__v1__push_request__unpack(NULL, d.mv_size, d.mv_data)) != NULL) {
		for (size_t i = 0; rc == MDB_SUCCESS && i < req->n_changes; i++)
			if (req->changes[i] != NULL)
				rc = settle(s, t, req->changes[i]->record, 'q', NULL, &touched);
		fieldsync__v1__push_request__free_unpacked(req, NULL);
	}
	if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND)
		rc = inflight_del(s, t, key);
	if (rc != MDB_SUCCESS) {
		mdb_txn_abort(t);
		return map_rc(rc);
	}
	return map_rc(mdb_txn_commit(t));
}

/* The plaintext PushRequest of a sealed in-flight value; RC_SEAL_BAD when a
 * payload does not open, MDB_CORRUPTED when it does not decode. */
static int
inflight_open(fs_store *s, MDB_txn *t, const MDB_val *d, uint8_t **bytes, size_t *len)
{
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, d->mv_size, d->mv_data);
	int rc = MDB_SUCCESS;
	if (req == NULL)
		return MDB_CORRUPTED;
	for (size_t i = 0; rc == MDB_SUCCESS && i < req->n_changes; i++) {
		fsp_record *r = req->changes[i] ? req->changes[i]->record : NULL;
		if (r == NULL || !names_valid(r->collection, r->id))
			rc = MDB_CORRUPTED;
		else
			rc = record_open(s, t, r->collection, r->id, r);
	}
	if (rc == MDB_SUCCESS) {
		*len = fieldsync__v1__push_request__get_packed_size(req);
		if ((*bytes = malloc(*len ? *len : 1)) == NULL)
			rc = ENOMEM;
		else
			fieldsync__v1__push_request__pack(req, *bytes);
	}
	fieldsync__v1__push_request__free_unpacked(req, NULL);
	return rc;
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
	uint64_t from = *key;

again:
	put_u64be(kb, from + 1);
	k.mv_size = 8;
	k.mv_data = kb;
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
	uint64_t found = get_u64be(k.mv_data);
	if (s->encrypted) {
		rc = inflight_open(s, t, &d, bytes, len);
		if (rc == RC_SEAL_BAD) { /* its key is gone: requeue its changes, go on */
			mdb_cursor_close(c);
			c = NULL;
			mdb_txn_abort(t);
			t = NULL;
			if ((err = inflight_discard(s, found)) != FS_OK)
				goto out;
			from = found;
			goto again;
		}
		if (rc != MDB_SUCCESS) {
			err = map_rc(rc);
			goto out;
		}
	} else {
		if ((*bytes = malloc(d.mv_size ? d.mv_size : 1)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(*bytes, d.mv_data, d.mv_size);
		*len = d.mv_size;
	}
	*key = found;
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
	uint8_t *keybuf = NULL, **plain = NULL, *sealed_out = NULL;
	size_t n = 0, size = 0, *plain_len = NULL;
	bool solo = false;
	char csid[37];
	uint8_t *out = NULL;

	if (max == 0)
		max = 1;
	if ((changes = calloc(max, sizeof(*changes))) == NULL ||
	    (chs = calloc(max, sizeof(*chs))) == NULL || (keys = calloc(max, sizeof(*keys))) == NULL ||
	    (keybuf = malloc(max * KEY_MAX)) == NULL || (plain = calloc(max, sizeof(*plain))) == NULL ||
	    (plain_len = calloc(max, sizeof(*plain_len))) == NULL) {
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
		if (s->encrypted) { /* it must open, under the names it is stored at */
			char kc[FSP_COLLECTION_MAX + 1], ki[FSP_ID_MAX + 1];
			if (!split_key(&k, kc, ki) || r->collection == NULL || r->id == NULL ||
			    strcmp(kc, r->collection) != 0 || strcmp(ki, r->id) != 0 ||
			    open_value(s, t, kc, ki, r->payload.data, r->payload.len, &plain[n],
			               &plain_len[n]) != MDB_SUCCESS) {
				fieldsync__v1__record__free_unpacked(r, NULL);
				continue; /* like an undecodable entry: stays visible in status */
			}
		}
		size_t sz = fieldsync__v1__record__get_packed_size(r) + 16;
		if (n > 0 && size + sz > budget) {
			fieldsync__v1__record__free_unpacked(r, NULL);
			free(plain[n]);
			plain[n] = NULL;
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
	size_t plen = fieldsync__v1__push_request__get_packed_size(&req), slen = plen;
	if ((out = malloc(plen ? plen : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	fieldsync__v1__push_request__pack(&req, out);
	if (s->encrypted) {
		/* in flight as stored (sealed); to the daemon with the plaintext */
		sealed_out = out;
		for (size_t i = 0; i < n; i++) {
			free(chs[i].record->payload.data);
			chs[i].record->payload.data = plain[i];
			chs[i].record->payload.len = plain_len[i];
			plain[i] = NULL;
		}
		plen = fieldsync__v1__push_request__get_packed_size(&req);
		if ((out = malloc(plen ? plen : 1)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		fieldsync__v1__push_request__pack(&req, out);
	}
	uint64_t next;
	uint8_t kb[8];
	if ((rc = meta_get_u64(t, s->meta, "cs_next", &next)) != MDB_SUCCESS) {
		err = map_rc(rc);
		goto out;
	}
	if (next == 0)
		next = 1;
	put_u64be(kb, next);
	MDB_val ik = {8, kb}, iv = {slen, sealed_out != NULL ? sealed_out : out};
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
	for (size_t i = 0; plain != NULL && i < max; i++)
		free(plain[i]);
	free(out);
	free(sealed_out);
	free(changes);
	free(chs);
	free(keys);
	free(keybuf);
	free(plain);
	free(plain_len);
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

/* The end of settling a change set: it is no longer in flight, and the
 * outbox changes commit with that; *o gets the counts once durable. */
static fs_err
settle_commit(fs_store *s, MDB_txn *t, uint64_t key, const sdk_push_outcome *oc,
              sdk_push_outcome *o)
{
	int rc = inflight_del(s, t, key);
	if (rc != MDB_SUCCESS) {
		mdb_txn_abort(t);
		return map_rc(rc);
	}
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && o != NULL)
		*o = *oc;
	return map_rc(rc);
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
	return settle_commit(s, t, key, &oc, o);
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
	return settle_commit(s, t, key, &oc, o);
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

/*
 * Deletes every record and outbox entry with a payload sealed under DEK
 * `name` (the contacts of a purged case: without the key they cannot be
 * read any more, and erasure means they go too).
 */
static int
sweep_sealed_under(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_record_state *rs = fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		bool hit = false;
		for (size_t i = 0; rs != NULL && i < rs->n_siblings; i++)
			hit |= sealed_under(rs->siblings[i]->payload.data, rs->siblings[i]->payload.len,
			                    name);
		if (rs != NULL)
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		ob_entry e;
		fsp_record *r = NULL;
		if (ob_decode(&d, &e))
			r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		bool hit = r != NULL && sealed_under(r->payload.data, r->payload.len, name);
		if (r != NULL)
			fieldsync__v1__record__free_unpacked(r, NULL);
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
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
		if (s->encrypted) { /* crypto-shredding: its data key goes too */
			char name[DEK_NAME_MAX + 1];
			snprintf(name, sizeof(name), "r:%s/%s", in->collection, in->id);
			if ((rc = dek_destroy(s, t, name)) != MDB_SUCCESS)
				return rc;
			if (in->purged && strcmp(in->collection, "case") == 0) {
				snprintf(name, sizeof(name), "c:%s", in->id);
				if ((rc = dek_destroy(s, t, name)) != MDB_SUCCESS ||
				    (rc = sweep_sealed_under(s, t, name)) != MDB_SUCCESS)
					return rc;
			}
		}
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
