/*
 * Records (records.h): the one local write and the reads of the table
 * `records`.
 *
 * write_value is the only way a local change enters the store: in one
 * durable transaction it replaces every sibling by one value whose version
 * is the join of all of them plus one on this replica (so it supersedes
 * them all) and puts that value in the outbox as PENDING, replacing any
 * older entry of the record. fs_put, fs_delete (a tombstone) and
 * fs_resolve (a write on a record that must exist) are that write, and
 * fs_put_many is several of them in one transaction. The same transaction
 * notes the change in the change feed (changes.c) and, for a contact,
 * updates the contacts-by-case index (caseindex.c). When the store holds a
 * credential, a scope it does not grant is FS_ERR_FORBIDDEN before anything
 * is written. fs_get returns every sibling, payloads opened, with versions
 * as text.
 *
 * Layer: data. An fs_record is the app's until fs_record_free; the strings
 * and bytes of an fs_sibling live as long as the fs_record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caseindex.h"
#include "changes.h"
#include "credstore.h"
#include "fieldsync/keys.h"
#include "json.h"
#include "outbox.h"
#include "records.h"
#include "seal.h"

struct fs_record {
	sdk_record_state *rs;
	char **versions;
};

int
sdk_record_load(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen, sdk_record_state **rs)
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
	if (s->encrypted && !fsk_record_key_split(key, klen, coll, id))
		rc = MDB_CORRUPTED;
	for (size_t i = 0; rc == MDB_SUCCESS && i < (*rs)->n_siblings; i++) {
		if ((*rs)->siblings[i]->version == NULL)
			rc = MDB_CORRUPTED;
		else /* the AAD comes from where the value is, not from what it says */
			rc = sdk_record_open(s, t, coll, id, (*rs)->siblings[i]);
	}
	if (rc != MDB_SUCCESS) {
		fieldsync__v1__record_state__free_unpacked(*rs, NULL);
		*rs = NULL;
	}
	return rc;
}

int
sdk_record_save(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen,
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
		if (!fsk_record_key_split(key, klen, coll, id))
			return EINVAL; /* a key of checked names: cannot happen */
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
			rc = sdk_seal_value(s, t, coll, id, views[i].payload.data,
			                    views[i].payload.len, &bufs[i], &bl);
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

/* The store's credential (NULL and FS_OK when it has none): its scopes are
 * the ones a write may use. Read before the write transaction begins. */
static fs_err
grants_load(fs_store *s, fs_credential **c)
{
	fs_err err = fs_store_credential(s, c);
	if (err == FS_ERR_NOT_FOUND) {
		*c = NULL;
		return FS_OK;
	}
	return err;
}

static bool
granted(const fs_credential *c, const char *scope)
{
	if (c == NULL)
		return true;
	for (size_t i = 0; i < c->n_scopes; i++)
		if (c->scopes[i] != NULL && strcmp(c->scopes[i], scope) == 0)
			return true;
	return false;
}

/* The checks of one write's arguments; fs_last_error_detail() names the
 * field, after `where` ("" or "writes[i]."). */
static fs_err
write_args_ok(const char *where, const char *collection, const char *id, const char *scope,
              bool deleted, const void *payload, size_t len)
{
	char why[256];
	if (collection == NULL || !fsp_collection_valid(collection)) {
		sdk_detail("%scollection: not a valid collection name", where);
		return FS_ERR_INVALID;
	}
	if (id == NULL || !sdk_names_valid(collection, id)) {
		sdk_detail("%sid: empty or longer than %d bytes", where, FSP_ID_MAX);
		return FS_ERR_INVALID;
	}
	if (deleted)
		return FS_OK;
	if (scope && !fsp_scope_valid(scope)) {
		sdk_detail("%sscope: not a scope name ([a-z0-9][a-z0-9._-]{0,63})", where);
		return FS_ERR_INVALID;
	}
	if ((len > 0 && payload == NULL) || len > SDK_PAYLOAD_MAX) {
		sdk_detail("%spayload: %s", where,
		           len > SDK_PAYLOAD_MAX ? "larger than 16 MiB" : "NULL with a length");
		return FS_ERR_INVALID;
	}
	if (fsp_collection_typed(collection) &&
	    !fsp_typed_check(collection, payload, len, why, sizeof(why))) {
		sdk_detail("%spayload: %s", where, why);
		return FS_ERR_INVALID;
	}
	return FS_OK;
}

/*
 * The one local write, in the caller's write transaction t: a value (or
 * tombstone) whose version is the join of every sibling + 1 on this
 * replica. must_exist: FS_ERR_NOT_FOUND unless some sibling exists
 * (must_live: a non-deleted one). cred: the scopes granted (NULL: any).
 */
static fs_err
write_in(fs_store *s, MDB_txn *t, const fs_credential *cred, const char *where,
         const char *collection, const char *id, const char *scope, bool deleted,
         const void *payload, size_t len, bool must_exist, bool must_live)
{
	uint8_t key[FSK_RECORD_KEY_MAX], *rec_buf = NULL, *sealed = NULL;
	size_t klen;
	sdk_record_state *old = NULL;
	fsp_vv *joined = NULL, *next = NULL;
	fs_err err = FS_OK;
	char why[256];
	int rc;

	if ((err = write_args_ok(where, collection, id, scope, deleted, payload, len)) != FS_OK)
		return err;
	if ((klen = fsk_record_key(key, collection, id)) == 0) {
		sdk_detail("%sid: does not fit a record key", where);
		return FS_ERR_INVALID;
	}
	if ((rc = sdk_record_load(s, t, key, klen, &old)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (must_exist) {
		bool live = false;
		for (size_t i = 0; old && i < old->n_siblings; i++)
			live |= !old->siblings[i]->deleted;
		if (old == NULL || old->n_siblings == 0 || (must_live && !live)) {
			sdk_detail("%sid: no such record", where);
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
		if (fsp_vv_get(joined, s->replica) == UINT64_MAX) {
			/* only a daemon of the first release ever served such a dot */
			sdk_detail("%sversion: this replica's counter in the stored version is at "
			           "its maximum and cannot grow; the record cannot be edited here",
			           where);
			err = FS_ERR_CORRUPT;
		}
		goto out;
	}
	if (scope == NULL)
		scope = (old != NULL && fsp_scope_valid(old->scope)) ? old->scope : s->scope;
	if (!granted(cred, scope)) {
		sdk_detail("%sscope: '%s' is not granted by the store's credential", where, scope);
		err = FS_ERR_FORBIDDEN;
		goto out;
	}

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
		sdk_detail("%srecord: %s", where, why);
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
	if ((rc = sdk_record_save(s, t, key, klen, &rs)) != MDB_SUCCESS ||
	    (rc = sdk_change_note(s, t, key, klen, false,
	                          deleted ? FS_CHANGE_DELETE : FS_CHANGE_PUT)) != MDB_SUCCESS ||
	    (rc = sdk_caseidx_set(s, t, collection, id, &rs)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (s->encrypted && r.payload.len > 0) { /* the outbox copy is sealed too */
		if ((rc = sdk_seal_value(s, t, collection, id, r.payload.data, r.payload.len,
		                         &sealed, &r.payload.len)) != MDB_SUCCESS) {
			err = sdk_map_rc(rc);
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
	if ((rc = sdk_ob_put(s, t, &k, OB_PENDING, NULL, NULL, rec_buf, rlen)) != MDB_SUCCESS)
		err = sdk_map_rc(rc);
out:
	if (old != NULL)
		fieldsync__v1__record_state__free_unpacked(old, NULL);
	fsp_vv_free(joined);
	fsp_vv_free(next);
	free(rec_buf);
	free(sealed);
	return err;
}

/* One write in a durable transaction of its own. */
static fs_err
write_value(fs_store *s, const char *collection, const char *id, const char *scope, bool deleted,
            const void *payload, size_t len, bool must_exist, bool must_live)
{
	MDB_txn *t = NULL;
	fs_credential *cred = NULL;
	fs_err err;
	int rc;

	sdk_detail_clear();
	if (s == NULL) {
		sdk_detail("store: NULL");
		return FS_ERR_INVALID;
	}
	/* the arguments first: a bad one costs no transaction */
	if ((err = write_args_ok("", collection, id, scope, deleted, payload, len)) != FS_OK)
		return err;
	if ((err = grants_load(s, &cred)) != FS_OK)
		return err;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	err = write_in(s, t, cred, "", collection, id, scope, deleted, payload, len, must_exist,
	               must_live);
	if (err == FS_OK)
		err = sdk_txn_commit(&t);
out:
	sdk_txn_abort(&t);
	fs_credential_free(&cred);
	return err;
}

fs_err
fs_put(fs_store *s, const char *collection, const char *id, const char *scope, const void *payload,
       size_t len)
{
	return write_value(s, collection, id, scope, false, payload, len, false, false);
}

fs_err
fs_delete(fs_store *s, const char *collection, const char *id)
{
	return write_value(s, collection, id, NULL, true, NULL, 0, true, true);
}

fs_err
fs_resolve(fs_store *s, const char *collection, const char *id, const void *payload, size_t len)
{
	return write_value(s, collection, id, NULL, false, payload, len, true, false);
}

fs_err
fs_put_many(fs_store *s, const fs_write *w, size_t n, size_t *bad)
{
	MDB_txn *t = NULL;
	fs_credential *cred = NULL;
	fs_err err = FS_OK;
	size_t i = 0;
	int rc;
	char where[40];

	sdk_detail_clear();
	if (bad != NULL)
		*bad = (size_t)-1;
	if (s == NULL || (w == NULL && n > 0)) {
		sdk_detail(s == NULL ? "store: NULL" : "writes: NULL");
		return FS_ERR_INVALID;
	}
	if (n == 0)
		return FS_OK;
	for (i = 0; i < n; i++) { /* every argument first: a bad one costs no transaction */
		snprintf(where, sizeof(where), "writes[%zu].", i);
		err = write_args_ok(where, w[i].collection, w[i].id, w[i].scope, w[i].deleted,
		                    w[i].payload, w[i].len);
		if (err != FS_OK)
			goto out;
	}
	if ((err = grants_load(s, &cred)) != FS_OK) {
		i = (size_t)-1;
		goto out;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		i = (size_t)-1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		snprintf(where, sizeof(where), "writes[%zu].", i);
		err = write_in(s, t, cred, where, w[i].collection, w[i].id, w[i].scope,
		               w[i].deleted, w[i].payload, w[i].len, w[i].deleted, w[i].deleted);
		if (err != FS_OK)
			goto out;
	}
	i = (size_t)-1;
	err = sdk_txn_commit(&t); /* one fsync for the batch */
out:
	sdk_txn_abort(&t);
	fs_credential_free(&cred);
	if (err != FS_OK && bad != NULL)
		*bad = i;
	return err;
}

fs_err
fs_get(fs_store *s, const char *collection, const char *id, fs_record **out)
{
	uint8_t key[FSK_RECORD_KEY_MAX];
	MDB_txn *t = NULL;
	sdk_record_state *rs = NULL;
	fs_record *r = NULL;
	fs_err err = FS_OK;
	int rc;
	bool live = false;

	size_t klen;
	if (s == NULL || out == NULL || !sdk_names_valid(collection, id) ||
	    (klen = fsk_record_key(key, collection, id)) == 0)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = sdk_record_load(s, t, key, klen, &rs)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
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
	sdk_txn_abort(&t);
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
