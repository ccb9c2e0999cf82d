/*
 * Lists and status (lists.h): what the app reads about the whole store.
 *
 * fs_list_collection (live records of a collection: a key prefix scan of
 * `records`), fs_list_conflicts (records with more than one sibling),
 * fs_list_failed (parked outbox entries with their reasons), and
 * fs_status_get (outbox counts, checkpoint, last good sync, last error);
 * fs_list_records (live records with their siblings' metadata) and
 * fs_contacts_of_case (the same, for the contacts the case index names).
 * Each is one read transaction; an entry that is not ours is skipped
 * rather than failing the listing. An fs_list is the app's until
 * fs_list_free.
 *
 * Layer: operations.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "caseindex.h"
#include "fieldsync/casework.h"
#include "fieldsync/keys.h"
#include "json.h"
#include "lists.h"
#include "outbox.h"
#include "records.h"

void
fs_list_free(fs_list **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	fs_list *l = *lp;
	for (size_t i = 0; i < l->n; i++) {
		fs_sibling_meta *m = (fs_sibling_meta *)l->items[i].meta;
		for (size_t j = 0; m != NULL && j < l->items[i].siblings; j++) {
			free((char *)m[j].version);
			free((char *)m[j].modified_by);
		}
		free(m);
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

/* ---- lists with metadata ---------------------------------------------------- */

/* Adds rs (payloads opened) with its siblings' metadata; false: no memory. */
static bool
list_add_meta(fs_list *l, size_t *cap, const sdk_record_state *rs)
{
	fs_sibling_meta *m;
	size_t ns = rs->n_siblings;
	if (!list_add(l, cap, rs->collection, rs->id, rs->scope, 0, NULL))
		return false;
	if ((m = calloc(ns ? ns : 1, sizeof(*m))) == NULL)
		return false;
	fs_list_item *it = &l->items[l->n - 1];
	it->meta = m;
	for (size_t i = 0; i < ns; i++) {
		const fsp_record *x = rs->siblings[i];
		const fsp_vv *v = x->version;
		size_t need = 1;
		for (size_t j = 0; v != NULL && j < v->n_dots; j++)
			need += strlen(v->dots[j]->replica) + 22;
		char *vt = malloc(need);
		if (vt == NULL)
			return false;
		if (v != NULL)
			sdk_vv_text(v, vt, need);
		else
			vt[0] = '\0';
		m[i].version = vt;
		it->siblings = i + 1; /* what fs_list_free frees */
		m[i].deleted = x->deleted;
		m[i].len = x->payload.len;
		m[i].modified_at_ms = x->modified_at_ms;
		if ((m[i].modified_by = strdup(x->modified_by ? x->modified_by : "")) == NULL)
			return false;
	}
	return true;
}

/* Adds the record at key when it is live. */
static int
add_live(fs_store *s, MDB_txn *t, fs_list *l, size_t *cap, const uint8_t *key, size_t klen)
{
	sdk_record_state *rs = NULL;
	bool live = false;
	int rc = sdk_record_load(s, t, key, klen, &rs);
	if (rc == MDB_CORRUPTED || rc == RC_SEAL_BAD)
		return MDB_SUCCESS; /* not ours, or its key is gone: skip, as the other lists */
	if (rc != MDB_SUCCESS || rs == NULL)
		return rc;
	for (size_t i = 0; i < rs->n_siblings; i++)
		live |= !rs->siblings[i]->deleted;
	if (live && !list_add_meta(l, cap, rs))
		rc = ENOMEM;
	fieldsync__v1__record_state__free_unpacked(rs, NULL);
	return rc;
}

fs_err
fs_list_records(fs_store *s, const char *collection, fs_list **out)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	fs_list *l = NULL;
	size_t cap = 0, plen = 0;
	uint8_t prefix[1 + FSP_COLLECTION_MAX];
	MDB_val k, d;
	MDB_cursor_op op = MDB_FIRST;
	fs_err err = FS_OK;
	int rc;

	sdk_detail_clear();
	if (s == NULL || out == NULL) {
		sdk_detail("%s: NULL", s == NULL ? "store" : "out");
		return FS_ERR_INVALID;
	}
	if (collection != NULL) {
		if (!fsp_collection_valid(collection)) {
			sdk_detail("collection: not a valid collection name");
			return FS_ERR_INVALID;
		}
		plen = fsk_record_prefix(prefix, collection);
		k.mv_size = plen;
		k.mv_data = prefix;
		op = MDB_SET_RANGE;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return FS_ERR_NOMEM;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS)
		goto out;
	for (rc = mdb_cursor_get(c, &k, &d, op); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (plen > 0 && (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		if ((rc = add_live(s, t, l, &cap, k.mv_data, k.mv_size)) != MDB_SUCCESS)
			break;
	}
out:
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = sdk_map_rc(rc);
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	if (err != FS_OK)
		fs_list_free(&l);
	else
		*out = l;
	return err;
}

typedef struct case_walk {
	fs_store *s;
	MDB_txn *t;
	fs_list *l;
	size_t cap;
} case_walk;

static int
case_walk_one(void *arg, const char *contact_id)
{
	case_walk *w = arg;
	uint8_t key[FSK_RECORD_KEY_MAX];
	size_t klen = fsk_record_key(key, "contact", contact_id);
	if (klen == 0)
		return MDB_SUCCESS;
	return add_live(w->s, w->t, w->l, &w->cap, key, klen);
}

fs_err
fs_contacts_of_case(fs_store *s, const char *case_id, fs_list **out)
{
	case_walk w;
	fs_err err = FS_OK;
	int rc;

	sdk_detail_clear();
	if (s == NULL || out == NULL) {
		sdk_detail("%s: NULL", s == NULL ? "store" : "out");
		return FS_ERR_INVALID;
	}
	if (case_id == NULL || !fsp_case_id_valid(case_id)) {
		sdk_detail("case_id: empty or longer than %d bytes", FSP_ID_MAX);
		return FS_ERR_INVALID;
	}
	memset(&w, 0, sizeof(w));
	w.s = s;
	if ((w.l = calloc(1, sizeof(*w.l))) == NULL)
		return FS_ERR_NOMEM;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &w.t)) == MDB_SUCCESS)
		rc = sdk_caseidx_each(s, w.t, case_id, case_walk_one, &w);
	if (rc != MDB_SUCCESS)
		err = sdk_map_rc(rc);
	sdk_txn_abort(&w.t);
	if (err != FS_OK)
		fs_list_free(&w.l);
	else
		*out = w.l;
	return err;
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
		st.last_error = code <= FS_ERR_TRIMMED ? (fs_err)code : FS_ERR_CORRUPT;
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
sdk_sync_record(fs_store *s, fs_err e, const char *msg, const sdk_welcome_facts *welcome)
{
	MDB_txn *t = NULL;
	int rc;
	fs_err err;
	int64_t now = sdk_now_ms();

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	/* facts too long (EINVAL) are not kept: the next sync waits for Welcome */
	if (welcome != NULL && (rc = sdk_welcome_put(s, t, welcome)) != MDB_SUCCESS && rc != EINVAL)
		goto fail;
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

/* ---- cancellation ------------------------------------------------------ */

const atomic_bool *
sdk_sync_enter(fs_store *s)
{
	if (atomic_fetch_add(&s->syncs_running, 1) == 0)
		atomic_store(&s->cancel, false); /* a cancel after the last sync ended */
	return &s->cancel;
}

void
sdk_sync_leave(fs_store *s)
{
	if (atomic_fetch_sub(&s->syncs_running, 1) == 1)
		atomic_store(&s->cancel, false);
}

bool
fs_sync_cancel(fs_store *s)
{
	if (s == NULL || atomic_load(&s->syncs_running) == 0)
		return false;
	atomic_store(&s->cancel, true);
	return true;
}
