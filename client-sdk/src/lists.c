/*
 * Lists and status (lists.h): what the app reads about the whole store.
 *
 * fs_list_collection (live records of a collection: a key prefix scan of
 * `records`), fs_list_conflicts (records with more than one sibling),
 * fs_list_failed (parked outbox entries with their reasons), and
 * fs_status_get (outbox counts, checkpoint, last good sync, last error).
 * Each is one read transaction; an entry that is not ours is skipped
 * rather than failing the listing. An fs_list is the app's until
 * fs_list_free.
 *
 * Layer: operations.
 */
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "lists.h"
#include "outbox.h"

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
		plen = fsk_record_prefix(prefix, collection); /* > 0: a valid name */
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return FS_ERR_NOMEM;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, kind == LIST_FAILED ? s->outbox : s->records, &c)) !=
	            MDB_SUCCESS) {
		err = sdk_map_rc(rc);
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
		if (!fsk_record_key_split(k.mv_data, k.mv_size, coll, id))
			continue; /* not ours: skip rather than fail the listing */
		if (kind == LIST_FAILED) {
			sdk_ob_entry e;
			if (!sdk_ob_decode(&d, &e) || e.state != OB_PARKED)
				continue;
			if (!list_add(l, &cap, coll, id, NULL, 1, e.reason)) {
				err = FS_ERR_NOMEM;
				goto out;
			}
			continue;
		}
		sdk_record_state *rs =
			fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
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
		err = sdk_map_rc(rc);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
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

/* ---- status ------------------------------------------------------------- */

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
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_outbox_counts(s, t, &st.pending, &st.failed)) != FS_OK)
		goto out;
	uint64_t v;
	if ((rc = sdk_meta_get_u64(s, t, "checkpoint", &st.last_seq)) != MDB_SUCCESS ||
	    (rc = sdk_meta_get_u64(s, t, "last_ok", &v)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	st.last_sync_ms = (int64_t)v;
	k.mv_data = "last_err";
	k.mv_size = 8;
	rc = mdb_get(t, s->meta, &k, &d);
	if (rc == MDB_SUCCESS && d.mv_size >= 12) {
		const uint8_t *p = d.mv_data;
		uint32_t code = fsk_get_le32(p);
		st.last_error = code <= FS_ERR_KEY_REFUSED ? (fs_err)code : FS_ERR_CORRUPT;
		st.last_error_ms = (int64_t)fsk_get_le64(p + 4);
		size_t ml = d.mv_size - 12;
		if (ml >= sizeof(st.last_error_msg))
			ml = sizeof(st.last_error_msg) - 1;
		memcpy(st.last_error_msg, p + 12, ml);
		st.last_error_msg[ml] = '\0';
	} else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = sdk_map_rc(rc);
		goto out;
	}
	err = FS_OK;
	*out = st;
out:
	sdk_txn_abort(&t);
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
		return sdk_map_rc(rc);
	if (e == FS_OK) {
		if ((rc = sdk_meta_put_u64(s, t, "last_ok", (uint64_t)now)) != MDB_SUCCESS)
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
		fsk_put_le32(buf, (uint32_t)e);
		fsk_put_le64(buf + 4, (uint64_t)now);
		if (ml)
			memcpy(buf + 12, msg, ml);
		if ((rc = sdk_meta_put(s, t, "last_err", buf, 12 + ml)) != MDB_SUCCESS)
			goto fail;
	}
	rc = mdb_txn_commit(t);
	return sdk_map_rc(rc);
fail:
	err = sdk_map_rc(rc);
	mdb_txn_abort(t);
	return err;
}
