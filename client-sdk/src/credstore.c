/*
 * The store's credential (credstore.h): the public JSON in meta
 * "credential", the Z85 secret key in "credential_secret", sealed with the
 * store DEK (AAD "fieldsync-credential-secret"). Only an encrypted store
 * takes a credential (FS_ERR_KEY_REQUIRED otherwise); a plain one written by
 * an older SDK is read only by fs_store_migrate, which seals it. Both are checked again on the way in and on the way
 * out: the public struct may hold anything, the file may be damaged. The
 * secret is wiped from every buffer it passes through.
 *
 * Layer: data. Each call runs in one transaction (sdk_cred_put in the
 * caller's).
 */
#include <stdlib.h>
#include <string.h>

#include "credential.h"
#include "credstore.h"
#include "db.h"

static const char cred_aad[] = "fieldsync-credential-secret";

fs_err
sdk_cred_put(fs_store *s, MDB_txn *t, const fs_credential *c)
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
	if (!s->encrypted) /* the secret key is never stored in clear */
		return FS_ERR_KEY_REQUIRED;
	if ((json = sdk_credential_public_json(c)) == NULL)
		return FS_ERR_NOMEM;
	if ((err = sdk_credential_parse_public(json, strlen(json), &check)) != FS_OK)
		goto out;
	if (!sdk_z85_key_decode(c->client_secret_key, bin) ||
	    !sdk_curve_pair_ok(c->client_public_key, c->client_secret_key)) {
		err = FS_ERR_INVALID;
		goto out;
	}
	if ((rc = sdk_meta_put(s, t, "credential", json, strlen(json))) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (s->encrypted) {
		if (!fsc_seal(s->store_dek, cred_aad, sizeof(cred_aad) - 1,
		              (const uint8_t *)c->client_secret_key, SDK_Z85_KEY_LEN, &sealed,
		              &sl)) {
			err = FS_ERR_IO;
			goto out;
		}
		rc = sdk_meta_put(s, t, "credential_secret", sealed, sl);
	} else {
		rc = sdk_meta_put(s, t, "credential_secret", c->client_secret_key, SDK_Z85_KEY_LEN);
	}
	err = sdk_map_rc(rc);
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
		return sdk_map_rc(rc);
	if ((rc = mdb_get(t, s->meta, &k, &d)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_credential_parse_public(d.mv_data, d.mv_size, &c)) != FS_OK) {
		err = err == FS_ERR_INVALID ? FS_ERR_CORRUPT : err;
		goto out;
	}
	if (with_secret) {
		MDB_val sk = {17, "credential_secret"};
		if ((rc = mdb_get(t, s->meta, &sk, &d)) != MDB_SUCCESS) {
			err = rc == MDB_NOTFOUND ? FS_ERR_CORRUPT : sdk_map_rc(rc);
			goto out;
		}
		if (s->encrypted) {
			if (!fsc_open(s->store_dek, cred_aad, sizeof(cred_aad) - 1, d.mv_data,
			              d.mv_size, &plain, &pl)) {
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

fs_err
fs_store_set_credential(fs_store *s, const fs_credential *c)
{
	MDB_txn *t = NULL;
	fs_err err;
	int rc;
	if (s == NULL || c == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((err = sdk_cred_put(s, t, c)) != FS_OK) {
		mdb_txn_abort(t);
		return err;
	}
	return sdk_map_rc(mdb_txn_commit(t));
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
