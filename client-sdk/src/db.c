/*
 * The LMDB primitives under every store file (db.h): error mapping,
 * transactions, record keys, integer encodings, the meta table. No policy
 * and no table layout beyond the key format: that is the job of the files
 * above (the note atop store.c lists them). The record key and the integer
 * encodings are the daemon's too; the shared core in proto/ is to offer
 * them, and these small functions are the places to switch.
 *
 * Layer: db, the bottom of the store. Calls nothing above it.
 */
#include <errno.h>
#include <string.h>

#include "db.h"

/* ---- errors and transactions -------------------------------------------- */

fs_err
sdk_map_rc(int rc)
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

fs_err
sdk_txn_commit(MDB_txn **t)
{
	int rc = mdb_txn_commit(*t);
	*t = NULL;
	return sdk_map_rc(rc);
}

void
sdk_txn_abort(MDB_txn **t)
{
	if (*t != NULL)
		mdb_txn_abort(*t);
	*t = NULL;
}

/* ---- record keys -------------------------------------------------------- */

size_t
sdk_make_key(uint8_t *k, const char *collection, const char *id)
{
	size_t cl = strlen(collection), il = strlen(id);
	k[0] = (uint8_t)cl;
	memcpy(k + 1, collection, cl);
	memcpy(k + 1 + cl, id, il);
	return 1 + cl + il;
}

bool
sdk_split_key(const MDB_val *k, char coll[FSP_COLLECTION_MAX + 1], char id[FSP_ID_MAX + 1])
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

bool
sdk_names_valid(const char *collection, const char *id)
{
	size_t il;
	if (collection == NULL || id == NULL || !fsp_collection_valid(collection))
		return false;
	il = strlen(id);
	return il >= 1 && il <= FSP_ID_MAX;
}

/* ---- integers ----------------------------------------------------------- */

void
sdk_put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t
sdk_get_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint32_t
sdk_get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void
sdk_put_u64be(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t
sdk_get_u64be(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* ---- the meta table ----------------------------------------------------- */

int
sdk_meta_get_u64(fs_store *s, MDB_txn *t, const char *name, uint64_t *v)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return MDB_SUCCESS;
	}
	if (rc != MDB_SUCCESS)
		return rc;
	if (d.mv_size != 8)
		return MDB_CORRUPTED;
	*v = sdk_get_u64le(d.mv_data);
	return MDB_SUCCESS;
}

int
sdk_meta_put(fs_store *s, MDB_txn *t, const char *name, const void *data, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, d = {len, (void *)data};
	return mdb_put(t, s->meta, &k, &d, 0);
}

int
sdk_meta_put_u64(fs_store *s, MDB_txn *t, const char *name, uint64_t v)
{
	uint8_t b[8];
	sdk_put_u64le(b, v);
	return sdk_meta_put(s, t, name, b, sizeof(b));
}
