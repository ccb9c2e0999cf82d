/*
 * Encryption of values in an encrypted store (seal.h): the data keys in
 * the table `keys`, wrapped by the store key, and the sealed-value format.
 *
 * A payload of (collection, id) is sealed under the DEK its name says:
 * "c:<case_id>" for a case and its contacts (a contact's case is its
 * payload's case_id), "r:<collection>/<id>" for every other record and a
 * contact without a case id. The frame is [0xFE 'K'][u8 name length]
 * [name][fsc_seal output], the AAD "<collection>\0<id>" taken from where
 * the value is stored, never from what it says, so a sealed value moved to
 * another record does not open. The daemon's keyring writes the same bytes.
 *
 * Layer: seal (over db). Never begins or ends a transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/v1/casework.pb-c.h"
#include "seal.h"

#define SEAL_MAGIC0 0xFE
#define SEAL_MAGIC1 'K'
#define SEAL_HEAD 3 /* magic, magic, name length */
#define AAD_MAX (FSP_COLLECTION_MAX + 1 + FSP_ID_MAX)

/* ---- names ---------------------------------------------------------------- */

void
sdk_dek_name_case(const char *case_id, char name[DEK_NAME_MAX + 1])
{
	snprintf(name, DEK_NAME_MAX + 1, "c:%s", case_id);
}

void
sdk_dek_name_record(const char *coll, const char *id, char name[DEK_NAME_MAX + 1])
{
	snprintf(name, DEK_NAME_MAX + 1, "r:%s/%s", coll, id);
}

/* The case id of a packed Contact into out; false when it has none (or it
 * does not decode, or the id is too long). */
static bool
contact_case_id(const uint8_t *payload, size_t len, char out[FSP_ID_MAX + 1])
{
	Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, len, payload);
	bool has_case = c != NULL && c->case_id != NULL && c->case_id[0] != '\0' &&
	                strlen(c->case_id) <= FSP_ID_MAX;
	if (has_case)
		snprintf(out, FSP_ID_MAX + 1, "%s", c->case_id);
	if (c != NULL)
		fieldsync__v1__contact__free_unpacked(c, NULL);
	return has_case;
}

/* The name of the DEK a payload of (collection, id) is sealed with. */
static void
dek_name(const char *coll, const char *id, const uint8_t *payload, size_t len,
         char name[DEK_NAME_MAX + 1])
{
	char case_id[FSP_ID_MAX + 1];
	if (strcmp(coll, "case") == 0)
		sdk_dek_name_case(id, name);
	else if (strcmp(coll, "contact") == 0 && contact_case_id(payload, len, case_id))
		sdk_dek_name_case(case_id, name);
	else
		sdk_dek_name_record(coll, id, name);
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

int
sdk_dek_destroy(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(t, s->keys, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* ---- the frame: [0xFE 'K'][u8 name length][name][sealed] ------------------ */

/* Frames sealed bytes with their DEK name; *out malloc'd. */
static int
frame_pack(const char *name, const uint8_t *sealed, size_t sl, uint8_t **out, size_t *out_len)
{
	size_t nl = strlen(name);
	uint8_t *buf = malloc(SEAL_HEAD + nl + sl);
	if (buf == NULL)
		return ENOMEM;
	buf[0] = SEAL_MAGIC0;
	buf[1] = SEAL_MAGIC1;
	buf[2] = (uint8_t)nl;
	memcpy(buf + SEAL_HEAD, name, nl);
	memcpy(buf + SEAL_HEAD + nl, sealed, sl);
	*out = buf;
	*out_len = SEAL_HEAD + nl + sl;
	return MDB_SUCCESS;
}

/* The DEK name a sealed value names (a view into it), or NULL when it is not one. */
static const uint8_t *
sealed_name(const uint8_t *in, size_t len, size_t *nl)
{
	if (len < SEAL_HEAD || in[0] != SEAL_MAGIC0 || in[1] != SEAL_MAGIC1 || in[2] == 0 ||
	    len < (size_t)SEAL_HEAD + in[2] + FSC_SEAL_OVERHEAD)
		return NULL;
	*nl = in[2];
	return in + SEAL_HEAD;
}

/* ---- sealing and opening ---------------------------------------------------- */

int
sdk_seal_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *p,
               size_t len, uint8_t **out, size_t *out_len)
{
	char name[DEK_NAME_MAX + 1];
	uint8_t dek[FSC_KEY_LEN], aad[AAD_MAX], *sealed = NULL;
	size_t sl = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len == 0)
		return MDB_SUCCESS;
	dek_name(coll, id, p, len, name);
	if ((rc = dek_get(s, t, name, true, dek)) != MDB_SUCCESS)
		return rc;
	size_t al = make_aad(aad, coll, id);
	bool ok = fsc_seal(dek, aad, al, p, len, &sealed, &sl);
	fsc_cleanse(dek, sizeof(dek));
	if (!ok)
		return RC_CRYPTO;
	rc = frame_pack(name, sealed, sl, out, out_len);
	free(sealed);
	return rc;
}

int
sdk_open_value(fs_store *s, MDB_txn *t, const char *coll, const char *id, const uint8_t *in,
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

bool
sdk_sealed_under(const uint8_t *p, size_t len, const char *name)
{
	size_t nl = 0;
	const uint8_t *n = sealed_name(p, len, &nl);
	return n != NULL && nl == strlen(name) && memcmp(n, name, nl) == 0;
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
