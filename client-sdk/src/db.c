/*
 * The LMDB primitives under every store file (db.h): error mapping,
 * transactions, the check of record names, the meta table. No policy and
 * no table layout: that is the job of the files above (the note atop
 * store.c lists them). The record keys and the integer encodings are the
 * daemon's too, so they are not here but in the shared core
 * (fieldsync/keys.h: fsk_record_key, fsk_record_prefix,
 * fsk_record_key_split, fsk_*_be64/le64/le32), which every store file
 * calls directly.
 *
 * Layer: db, the bottom of the store, over the core. Calls nothing above it.
 */
#include <errno.h>
#include <string.h>

#include "db.h"
#include "fieldsync/keys.h"

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

/* ---- names ------------------------------------------------------------- */

bool
sdk_names_valid(const char *collection, const char *id)
{
	size_t il;
	if (collection == NULL || id == NULL || !fsp_collection_valid(collection))
		return false;
	il = strlen(id);
	return il >= 1 && il <= FSP_ID_MAX;
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
	*v = fsk_get_le64(d.mv_data);
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
	fsk_put_le64(b, v);
	return sdk_meta_put(s, t, name, b, sizeof(b));
}
