/*
 * Migration of a plain store (fs_store_migrate): a plain store, with or
 * without a credential, copied sealed into a new encrypted store next to
 * it, which then replaces it atomically.
 *
 * Layer: operations (over db, seal, credstore, records, outbox and store.c's
 * lifecycle, migrate.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "credstore.h"
#include "db.h"
#include "fieldsync/crypto.h"
#include "fieldsync/keys.h"
#include "migrate.h"
#include "outbox.h"
#include "records.h"
#include "seal.h"

/* ---- migration: a plain store with a credential, encrypted in place ------ */

/* Copies old's tables, sealing, into the fresh encrypted store ns (t). */
static int
migrate_tables(fs_store *old, MDB_txn *ot, fs_store *ns, MDB_txn *t)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;
	static const char *const skip[] = {"schema",     "encryption",        "key_check",
	                                   "credential", "credential_secret", NULL};

	/* meta: the replica id, scope, checkpoint, counters, as they were */
	if ((rc = mdb_cursor_open(ot, old->meta, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		bool skipped = false;
		for (size_t i = 0; skip[i] != NULL; i++)
			skipped |= k.mv_size == strlen(skip[i]) &&
			           memcmp(k.mv_data, skip[i], k.mv_size) == 0;
		if (!skipped && (rc = mdb_put(t, ns->meta, &k, &d, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	/* records: opened as they are (plain), saved sealed */
	if ((rc = mdb_cursor_open(ot, old->records, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_record_state *rs = NULL;
		if ((rc = sdk_record_load(old, ot, k.mv_data, k.mv_size, &rs)) != MDB_SUCCESS)
			break;
		if (rs != NULL)
			rc = sdk_record_save(ns, t, k.mv_data, k.mv_size, rs);
		if (rs != NULL)
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (rc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	/* outbox: each entry's Record with its payload sealed */
	if ((rc = mdb_cursor_open(ot, old->outbox, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		fsp_record *r = NULL;
		uint8_t *sealed = NULL, *packed = NULL;
		size_t sl = 0, pl;
		if (!sdk_ob_decode(&d, &e) ||
		    !fsk_record_key_split(k.mv_data, k.mv_size, coll, id) ||
		    (r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes)) == NULL) {
			rc = MDB_CORRUPTED;
			break;
		}
		rc = sdk_seal_value(ns, t, coll, id, r->payload.data, r->payload.len, &sealed, &sl);
		if (rc == MDB_SUCCESS) {
			free(r->payload.data);
			r->payload.data = sealed;
			r->payload.len = sl;
			pl = fieldsync__v1__record__get_packed_size(r);
			if ((packed = malloc(pl ? pl : 1)) == NULL)
				rc = ENOMEM;
			else {
				fieldsync__v1__record__pack(r, packed);
				rc = sdk_ob_put(ns, t, &k, e.state, e.csid[0] ? e.csid : NULL,
				                e.reason[0] ? e.reason : NULL, packed, pl);
			}
		}
		free(packed);
		fieldsync__v1__record__free_unpacked(r, NULL);
		if (rc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	/* the change feed and the case index: ids and seqs, copied as they are
	 * (absent in a store of an older SDK: the new store's are rebuilt empty) */
	static const char *const raw[] = {"changes", "change_keys", "case_contacts",
	                                  "contact_cases", NULL};
	for (size_t i = 0; raw[i] != NULL; i++) {
		MDB_dbi from, to;
		if ((rc = mdb_dbi_open(ot, raw[i], 0, &from)) == MDB_NOTFOUND)
			continue;
		if (rc != MDB_SUCCESS ||
		    (rc = mdb_dbi_open(t, raw[i], MDB_CREATE, &to)) != MDB_SUCCESS ||
		    (rc = mdb_cursor_open(ot, from, &c)) != MDB_SUCCESS)
			return rc;
		for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
		     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
			if ((rc = mdb_put(t, to, &k, &d, 0)) != MDB_SUCCESS)
				break;
		mdb_cursor_close(c);
		if (rc != MDB_NOTFOUND)
			return rc;
	}
	/* change sets in flight: every change's payload sealed */
	if ((rc = mdb_cursor_open(ot, old->inflight, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		Fieldsync__V1__PushRequest *req =
			fieldsync__v1__push_request__unpack(NULL, d.mv_size, d.mv_data);
		if (req == NULL) {
			rc = MDB_CORRUPTED;
			break;
		}
		for (size_t i = 0; rc == MDB_SUCCESS && i < req->n_changes; i++) {
			fsp_record *r = req->changes[i] ? req->changes[i]->record : NULL;
			uint8_t *sealed = NULL;
			size_t sl = 0;
			if (r == NULL || !sdk_names_valid(r->collection, r->id)) {
				rc = MDB_CORRUPTED;
				break;
			}
			rc = sdk_seal_value(ns, t, r->collection, r->id, r->payload.data,
			                    r->payload.len, &sealed, &sl);
			if (rc == MDB_SUCCESS && sealed != NULL) {
				free(r->payload.data);
				r->payload.data = sealed;
				r->payload.len = sl;
			}
		}
		if (rc == MDB_SUCCESS) {
			MDB_val v;
			v.mv_size = fieldsync__v1__push_request__get_packed_size(req);
			if ((v.mv_data = malloc(v.mv_size ? v.mv_size : 1)) == NULL)
				rc = ENOMEM;
			else {
				fieldsync__v1__push_request__pack(req, v.mv_data);
				rc = mdb_put(t, ns->inflight, &k, &v, 0);
				free(v.mv_data);
			}
		}
		fieldsync__v1__push_request__free_unpacked(req, NULL);
		if (rc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

fs_err
fs_store_migrate(const char *dir, const fs_store_opts *o)
{
	char tmp[4200], p1[4300], p2[4300], lockp[4200];
	fs_store *old = NULL, *ns = NULL;
	MDB_txn *ot = NULL, *t = NULL;
	fs_credential *cred = NULL;
	fs_store_opts no;
	fsc_master m;
	bool keyed = false;
	int rc, lockfd = -1;
	fs_err err;

	memset(&m, 0, sizeof(m));
	if (dir == NULL || !sdk_store_has_data_file(dir))
		return dir == NULL ? FS_ERR_INVALID : FS_ERR_NOT_FOUND;
	if ((err = sdk_store_opts_key(o, &m, &keyed)) != FS_OK)
		goto out;
	if (!keyed) {
		err = FS_ERR_KEY_REQUIRED;
		goto out;
	}
	/* no handle of any process may have it open */
	snprintf(lockp, sizeof(lockp), "%s/erase.lock", dir);
	if ((lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
	    flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		err = lockfd < 0 ? FS_ERR_IO : FS_ERR_BUSY;
		goto out;
	}
	if ((old = calloc(1, sizeof(*old))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	old->lockfd = -1;
	if ((err = sdk_store_env_open(dir, &old->env)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(old->env, NULL, MDB_RDONLY, &ot)) != MDB_SUCCESS ||
	    (rc = sdk_store_dbis_open(old, ot, 0)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_store_load_meta(old, ot)) != FS_OK)
		goto out;
	if (old->encrypted) {
		err = FS_ERR_EXISTS;
		goto out;
	}
	/* the table handles live on only once their read txn commits */
	if ((err = sdk_txn_commit(&ot)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(old->env, NULL, MDB_RDONLY, &ot)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	/* the new, encrypted store, next to the old one */
	snprintf(tmp, sizeof(tmp), "%s/migrate.tmp", dir);
	snprintf(p1, sizeof(p1), "%s/data.mdb", tmp);
	unlink(p1);
	snprintf(p2, sizeof(p2), "%s/lock.mdb", tmp);
	unlink(p2);
	memset(&no, 0, sizeof(no));
	no.key = m.key;
	no.key_len = FSC_KEY_LEN;
	no.key_id = m.id;
	no.default_scope = old->scope;
	if ((err = fs_store_create_ex(tmp, &no, &ns)) != FS_OK)
		goto out;
	if ((rc = mdb_txn_begin(ns->env, NULL, 0, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((rc = migrate_tables(old, ot, ns, t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	sdk_txn_abort(&ot); /* cred_get reads in a transaction of its own */
	err = sdk_store_credential_secret(old, &cred);
	if (err == FS_OK)
		err = sdk_cred_put(ns, t, cred);
	else if (err == FS_ERR_NOT_FOUND)
		err = FS_OK;
	if (err != FS_OK || (err = sdk_txn_commit(&t)) != FS_OK)
		goto out;
	fs_store_close(&ns);
	mdb_env_close(old->env);
	old->env = NULL;
	/* the swap: the encrypted file replaces the plain one atomically */
	snprintf(p2, sizeof(p2), "%s/data.mdb", dir);
	if (rename(p1, p2) != 0) {
		err = FS_ERR_IO;
		goto out;
	}
	snprintf(p2, sizeof(p2), "%s/lock.mdb", dir);
	unlink(p2);
	snprintf(p1, sizeof(p1), "%s/lock.mdb", tmp);
	unlink(p1);
	snprintf(p1, sizeof(p1), "%s/erase.lock", tmp);
	unlink(p1);
	rmdir(tmp);
	err = sdk_fsync_path(dir, O_RDONLY | O_DIRECTORY) ? FS_OK : FS_ERR_IO;
out:
	sdk_txn_abort(&t);
	sdk_txn_abort(&ot);
	fs_store_close(&ns);
	if (old != NULL && old->env != NULL)
		mdb_env_close(old->env);
	if (old != NULL) {
		fsc_cleanse(old, sizeof(*old));
		free(old);
	}
	fs_credential_free(&cred);
	fsc_cleanse(&m, sizeof(m));
	if (lockfd >= 0)
		close(lockfd);
	return err;
}
