/*
 * Encryption of values in an encrypted store (seal.h): the data keys in
 * the table `keys`, wrapped by the store key, and sealing and opening the
 * payloads of records with them.
 *
 * The format is not here: which DEK seals a payload of (collection, id)
 * ("c:<case_id>" for a case and its contacts, "r:<collection>/<id>" for
 * every other record), the AAD "<collection>\0<id>" and the frame
 * [0xFE 'K'][u8 name length][name][fsc_seal output] are the shared core's
 * (fieldsync/seal.h: fss_dek_for, fss_record_aad, fss_seal, fss_open,
 * fss_parse), the very code the daemon's keyring runs. This file only
 * stores the DEKs: fetch, create and wrap, destroy, rewrap. The AAD is
 * taken from where the value is stored, never from what it says, so a
 * sealed value moved to another record does not open.
 *
 * In an encrypted store every non-empty payload is sealed: a value that is
 * not FSS_SEALED (plain, or FSS_MALFORMED: 0xFE 'K' whose frame does not
 * hold) is corrupt, RC_SEAL_BAD, like one whose DEK is gone or whose tag
 * does not verify.
 *
 * Layer: seal (over db and the core). Never begins or ends a transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/crypto.h"
#include "fieldsync/seal.h"
#include "seal.h"

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
		return fsc_unwrap(&s->master, d.mv_data, d.mv_size, dek) ? MDB_SUCCESS
		                                                         : RC_SEAL_BAD;
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

int
sdk_dek_destroy(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(t, s->keys, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* ---- sealing and opening ---------------------------------------------------- */

int
sdk_seal_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *p,
               size_t len, uint8_t **out, size_t *out_len)
{
	char name[FSS_DEK_NAME_MAX + 1];
	uint8_t dek[FSC_KEY_LEN], aad[FSS_RECORD_AAD_MAX];
	size_t al;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return MDB_SUCCESS;
	if (!fss_dek_for(coll, id, p, len, name) || (al = fss_record_aad(aad, coll, id)) == 0)
		return EINVAL; /* the callers checked the names: cannot happen */
	if ((rc = dek_get(s, t, name, true, dek)) != MDB_SUCCESS)
		return rc;
	bool ok = fss_seal(dek, name, aad, al, p, len, out, out_len);
	fsc_cleanse(dek, sizeof(dek));
	return ok ? MDB_SUCCESS : RC_CRYPTO;
}

int
sdk_open_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *in,
               size_t len, uint8_t **out, size_t *out_len)
{
	fss_parts parts;
	uint8_t dek[FSC_KEY_LEN], aad[FSS_RECORD_AAD_MAX];
	size_t al;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return MDB_SUCCESS;
	/* plain or FSS_MALFORMED where a sealed value must be: corrupt */
	if (!fss_parse(in, len, &parts) || (al = fss_record_aad(aad, coll, id)) == 0)
		return RC_SEAL_BAD;
	if ((rc = dek_get(s, t, parts.name, false, dek)) != MDB_SUCCESS)
		return rc;
	bool ok = fss_open(dek, aad, al, in, len, out, out_len);
	fsc_cleanse(dek, sizeof(dek));
	return ok ? MDB_SUCCESS : RC_SEAL_BAD;
}

int
sdk_record_open(fs_store *s, MDB_txn *t, const char *coll, const char *id, fsp_record *r)
{
	uint8_t *p = NULL;
	size_t pl = 0;
	if (!s->encrypted || r->payload.len == 0)
		return MDB_SUCCESS;
	int rc = sdk_open_value(s, t, coll, id, r->payload.data, r->payload.len, &p, &pl);
	if (rc != MDB_SUCCESS)
		return rc;
	free(r->payload.data);
	r->payload.data = p;
	r->payload.len = pl;
	return MDB_SUCCESS;
}

/* ---- rekey ---------------------------------------------------------------- */

fs_err
sdk_dek_rewrap_all(fs_store *s, MDB_txn *t, const fsc_master *nm)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	uint8_t dek[FSC_KEY_LEN], *w = NULL;
	size_t wl = 0;
	fs_err err = FS_OK;
	int rc;

	if ((rc = mdb_cursor_open(t, s->keys, &c)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (!fsc_unwrap(&s->master, d.mv_data, d.mv_size, dek)) {
			err = FS_ERR_CORRUPT; /* nothing changes: the caller aborts */
			goto out;
		}
		bool ok = fsc_wrap(nm, dek, &w, &wl);
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
			err = sdk_map_rc(rc);
			goto out;
		}
	}
	if (rc != MDB_NOTFOUND)
		err = sdk_map_rc(rc);
out:
	mdb_cursor_close(c);
	fsc_cleanse(dek, sizeof(dek));
	return err;
}
