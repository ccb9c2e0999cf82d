/*
 * Encryption at rest: master keys, data keys (DEKs) and sealed values.
 *
 * NOTES ON THE DESIGN OF THE KEYRING
 *
 * Every record payload and every reminder row is sealed (AES-256-GCM, see
 * proto/include/fieldsync/crypto.h) with a data key named after what it
 * belongs to:
 *   "c:<case_id>"              a case record, its contacts, its reminders
 *   "r:<collection>/<id>"      any other record
 * DEKs are stored wrapped by the current master key in an LMDB environment
 * of their own, DATA_DIR/keys, apart from the data (DATA_DIR/data.mdb). A
 * purge deletes the DEK there: the live store and every backup of the data
 * taken before lose the means to read that case. Backups of the key store
 * are key escrow and need their own, short retention (docs/security.md).
 *
 * A sealed value is [0xFE 'K'][u8 name length][name][fsc_seal output]; the
 * AAD is the owner's identity (collection NUL id for records, "reminder" NUL
 * key for rows), so a sealed value copied elsewhere does not open. Values
 * written without a keyring (--dev without a master key) are plaintext and
 * are read as they are.
 *
 * Master keys come from a file (--master-key-file, one "id:hex" per line)
 * or FIELDSYNC_MASTER_KEY ("id:hex,id:hex"): the first is current and wraps
 * new DEKs; the others only unwrap. Rotation: put the new key first, restart,
 * run `fieldsyncd rotate-master-key`, which rewraps every DEK with it, then
 * drop the old line.
 *
 * DEKs are never cached: each seal or open unwraps its DEK in a short read
 * transaction, so a DEK destroyed by another process (the purge command) is
 * gone for the daemon at once.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fieldsync/crypto.h"
#include "keyring.h"
#include "log.h"

#define MASTERS_MAX 8
#define SEAL_MAGIC0 0xFE
#define SEAL_MAGIC1 'K'

struct keyring {
	fsc_master masters[MASTERS_MAX];
	size_t n_masters;
	MDB_env *env;
	MDB_dbi dbi;
};

static bool
parse_masters(keyring *k, const char *text, char sep, char *err, size_t errlen)
{
	char line[256];
	const char *p = text;
	while (*p != '\0') {
		const char *end = strchr(p, sep);
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l >= sizeof(line)) {
			snprintf(err, errlen, "a master key entry is too long");
			return false;
		}
		memcpy(line, p, l);
		line[l] = '\0';
		while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' '))
			line[--l] = '\0';
		if (l > 0 && line[0] != '#') {
			char why[200];
			if (k->n_masters == MASTERS_MAX) {
				snprintf(err, errlen, "more than %d master keys", MASTERS_MAX);
				return false;
			}
			if (!fsc_master_parse(line, &k->masters[k->n_masters], why, sizeof(why))) {
				snprintf(err, errlen, "master key %zu: %s", k->n_masters + 1, why);
				fsc_cleanse(line, sizeof(line));
				return false;
			}
			k->n_masters++;
		}
		fsc_cleanse(line, sizeof(line));
		p = end ? end + 1 : p + l;
	}
	if (k->n_masters == 0) {
		snprintf(err, errlen, "no master key in it");
		return false;
	}
	return true;
}

static bool
read_key_file(keyring *k, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char buf[4096];
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "--master-key-file %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
		fclose(f);
		snprintf(err, errlen,
		         "--master-key-file %s: group or others may read it (mode %03o); chmod 600 it",
		         path, (unsigned)(st.st_mode & 0777));
		return false;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	bool toolong = !feof(f);
	fclose(f);
	buf[n] = '\0';
	bool ok = !toolong;
	char why[256] = "the file is over 4 KiB";
	if (ok)
		ok = parse_masters(k, buf, '\n', why, sizeof(why));
	fsc_cleanse(buf, sizeof(buf));
	if (!ok)
		snprintf(err, errlen, "--master-key-file %s: %s", path, why);
	return ok;
}

keyring *
keyring_open(const char *data_dir, const char *key_file, const char *key_env, char *err,
             size_t errlen)
{
	keyring *k = calloc(1, sizeof(*k));
	char dir[600];
	MDB_txn *txn = NULL;
	int rc;

	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (key_file != NULL && key_file[0] != '\0') {
		if (!read_key_file(k, key_file, err, errlen))
			goto fail;
	} else if (key_env != NULL && key_env[0] != '\0') {
		char why[256];
		if (!parse_masters(k, key_env, ',', why, sizeof(why))) {
			snprintf(err, errlen, "FIELDSYNC_MASTER_KEY: %s", why);
			goto fail;
		}
	} else {
		snprintf(err, errlen, "no master key: give --master-key-file or FIELDSYNC_MASTER_KEY");
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%s/keys", data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&k->env)) != 0 || (rc = mdb_env_set_mapsize(k->env, 1ULL << 30)) != 0 ||
	    (rc = mdb_env_open(k->env, dir, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(k->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &k->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (txn != NULL && rc != 0)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "cannot open the key store %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	int dead = 0;
	mdb_reader_check(k->env, &dead);
	return k;
fail:
	keyring_close(&k);
	return NULL;
}

void
keyring_close(keyring **kp)
{
	if (kp == NULL || *kp == NULL)
		return;
	keyring *k = *kp;
	if (k->env != NULL)
		mdb_env_close(k->env);
	fsc_cleanse(k->masters, sizeof(k->masters));
	free(k);
	*kp = NULL;
}

const char *
keyring_current_id(const keyring *k)
{
	return k->masters[0].id;
}

static const fsc_master *
master_by_id(const keyring *k, const char *id)
{
	for (size_t i = 0; i < k->n_masters; i++)
		if (strcmp(k->masters[i].id, id) == 0)
			return &k->masters[i];
	return NULL;
}

/* Reads and unwraps DEK `name`; creates it when absent and create is set. */
static bool
dek_get(keyring *k, const char *name, bool create, uint8_t dek[FSC_KEY_LEN])
{
	MDB_txn *txn = NULL;
	MDB_val key = {strlen(name), (void *)name}, val;
	char id[FSC_KEY_ID_MAX + 1];
	bool ok = false;
	int rc = mdb_txn_begin(k->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return false;
	rc = mdb_get(txn, k->dbi, &key, &val);
	if (rc == 0) {
		const fsc_master *m = fsc_wrapped_key_id(val.mv_data, val.mv_size, id)
		                          ? master_by_id(k, id)
		                          : NULL;
		ok = m != NULL && fsc_unwrap(m, val.mv_data, val.mv_size, dek);
		if (m == NULL)
			log_event(LOG_ERROR, "a data key is wrapped by a master key we do not have",
			          LS("master_key_id", id), NULL);
	}
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND || !create)
		return ok;

	/* A new DEK, durable before anything is sealed with it. */
	uint8_t *wrapped = NULL;
	size_t wl = 0;
	if (!fsc_new_key(dek) || !fsc_wrap(&k->masters[0], dek, &wrapped, &wl))
		return false;
	val.mv_size = wl;
	val.mv_data = wrapped;
	rc = mdb_txn_begin(k->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_put(txn, k->dbi, &key, &val, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) { /* another process made it first: use theirs */
		mdb_txn_abort(txn);
		free(wrapped);
		return dek_get(k, name, false, dek);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	free(wrapped);
	return rc == 0;
}

const store_table keyring_table = {"keys"};

bool
keyring_seal(keyring *k, const char *name, const void *aad, size_t aad_len, const uint8_t *in,
             size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t dek[FSC_KEY_LEN], *sealed = NULL;
	size_t nl = strlen(name), sl = 0;
	bool ok = false;
	*out = NULL;
	if (nl > 255 || !dek_get(k, name, true, dek))
		goto out;
	if (!fsc_seal(dek, aad, aad_len, in, len, &sealed, &sl))
		goto out;
	*out = malloc(3 + nl + sl);
	if (*out == NULL)
		goto out;
	(*out)[0] = SEAL_MAGIC0;
	(*out)[1] = SEAL_MAGIC1;
	(*out)[2] = (uint8_t)nl;
	memcpy(*out + 3, name, nl);
	memcpy(*out + 3 + nl, sealed, sl);
	*out_len = 3 + nl + sl;
	ok = true;
out:
	fsc_cleanse(dek, sizeof(dek));
	free(sealed);
	return ok;
}

bool
keyring_is_sealed(const uint8_t *in, size_t len)
{
	return len >= 3 && in[0] == SEAL_MAGIC0 && in[1] == SEAL_MAGIC1 && len >= 3u + in[2];
}

int
keyring_open_value(keyring *k, const void *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t **out, size_t *out_len)
{
	uint8_t dek[FSC_KEY_LEN];
	char name[256];
	*out = NULL;
	*out_len = 0;
	if (!keyring_is_sealed(in, len))
		return KEYRING_PLAIN;
	if (k == NULL)
		return KEYRING_NO_KEY;
	size_t nl = in[2];
	memcpy(name, in + 3, nl);
	name[nl] = '\0';
	if (!dek_get(k, name, false, dek))
		return KEYRING_NO_KEY; /* destroyed by a purge, or never ours */
	bool ok = fsc_open(dek, aad, aad_len, in + 3 + nl, len - 3 - nl, out, out_len);
	fsc_cleanse(dek, sizeof(dek));
	return ok ? KEYRING_OPENED : KEYRING_BAD;
}

bool
keyring_destroy(keyring *k, const char *name)
{
	MDB_txn *txn = NULL;
	MDB_val key = {strlen(name), (void *)name};
	int rc = mdb_txn_begin(k->env, NULL, 0, &txn);
	if (rc != 0)
		return false;
	rc = mdb_del(txn, k->dbi, &key, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return false;
	}
	return mdb_txn_commit(txn) == 0;
}

bool
keyring_rewrap_all(keyring *k, size_t *n_rewrapped, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t n = 0;
	bool ok = false;
	int rc = mdb_txn_begin(k->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_cursor_open(txn, k->dbi, &cur);
	for (rc = rc ? rc : mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char id[FSC_KEY_ID_MAX + 1];
		uint8_t dek[FSC_KEY_LEN], *wrapped = NULL;
		size_t wl = 0;
		if (!fsc_wrapped_key_id(val.mv_data, val.mv_size, id)) {
			snprintf(err, errlen, "a wrapped key does not parse");
			goto out;
		}
		if (strcmp(id, k->masters[0].id) == 0)
			continue;
		const fsc_master *m = master_by_id(k, id);
		if (m == NULL || !fsc_unwrap(m, val.mv_data, val.mv_size, dek)) {
			snprintf(err, errlen, "a data key is wrapped by master key \"%s\", which was not given",
			         id);
			goto out;
		}
		bool w = fsc_wrap(&k->masters[0], dek, &wrapped, &wl);
		fsc_cleanse(dek, sizeof(dek));
		MDB_val nv = {wl, wrapped};
		if (!w || mdb_cursor_put(cur, &key, &nv, MDB_CURRENT) != 0) {
			free(wrapped);
			snprintf(err, errlen, "cannot rewrap a data key");
			goto out;
		}
		free(wrapped);
		n++;
	}
	if (rc != MDB_NOTFOUND) {
		snprintf(err, errlen, "key store: %s", mdb_strerror(rc));
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0) {
		snprintf(err, errlen, "key store commit: %s", mdb_strerror(rc));
		goto out;
	}
	*n_rewrapped = n;
	ok = true;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	return ok;
}

fsd_err
keyring_txn_seal(store_txn *t, const char *name, const void *aad, size_t aad_len,
                 const uint8_t *in,
                 size_t len, uint8_t **out, size_t *out_len)
{
	keyring *kr = store_keyring(store_txn_store(t));
	if (kr == NULL) {
		*out = malloc(len ? len : 1);
		if (*out == NULL)
			return FSD_ERROR;
		memcpy(*out, in, len);
		*out_len = len;
		return FSD_OK;
	}
	return keyring_seal(kr, name, aad, aad_len, in, len, out, out_len) ? FSD_OK
	                                                                       : FSD_ERROR;
}

fsd_err
keyring_txn_unseal(store_txn *t, const void *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t **out, size_t *out_len)
{
	int r = keyring_open_value(store_keyring(store_txn_store(t)), aad, aad_len, in, len, out, out_len);
	if (r == KEYRING_OPENED)
		return FSD_OK;
	if (r != KEYRING_PLAIN)
		return FSD_CORRUPT;
	*out = malloc(len ? len : 1);
	if (*out == NULL)
		return FSD_ERROR;
	memcpy(*out, in, len);
	*out_len = len;
	return FSD_OK;
}

