/*
 * Applying pulled pages (pull.h).
 *
 * Each RecordState of a page is merged sibling by sibling into the local
 * set with the shared merge rule (fsp_merge): a sibling that is new joins
 * or replaces what it dominates, one already known changes nothing, one
 * with a reused dot is kept out. Local outbox entries are left alone: the
 * outbox value is always one of the siblings or dominated by one, and it
 * is pushed as it is. A purged or revoked record is deleted with its
 * outbox entry; in an encrypted store its "r:" data key goes too, and a
 * purged case takes its "c:" key and every record and outbox entry sealed
 * under it (its contacts) - crypto-shredding, see the note atop store.c.
 * Every record a page changes is noted in the change feed (changes.c) and,
 * for a contact, in the contacts-by-case index (caseindex.c), in the page's
 * transaction.
 *
 * Layer: operations. Nothing from the wire is trusted: bad names and bad
 * siblings are skipped, never stored, never a crash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "caseindex.h"
#include "changes.h"
#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "outbox.h"
#include "pull.h"
#include "records.h"
#include "seal.h"

/* A sibling from the wire we are willing to store. */
static bool
sibling_ok(const fsp_record *r)
{
	const char *why = NULL;
	if (r == NULL || r->version == NULL || !fsp_vv_check(r->version, &why))
		return false;
	return !(r->deleted && r->payload.len != 0);
}

/* The feed and the case index learn that the record at k is erased. */
static int
forget_record(fs_store *s, MDB_txn *t, const MDB_val *k)
{
	char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
	uint8_t key[FSK_RECORD_KEY_MAX];
	int rc;
	if (k->mv_size > sizeof(key) || !fsk_record_key_split(k->mv_data, k->mv_size, coll, id))
		return MDB_SUCCESS;
	memcpy(key, k->mv_data, k->mv_size); /* k may point into a page we write */
	if ((rc = sdk_change_note(s, t, key, k->mv_size, true, FS_CHANGE_ERASED)) != MDB_SUCCESS)
		return rc;
	return sdk_caseidx_set(s, t, coll, id, NULL);
}

/*
 * Deletes every record and outbox entry with a payload sealed under DEK
 * `name` (the contacts of a purged case: without the key they cannot be
 * read any more, and erasure means they go too).
 */
static int
sweep_sealed_under(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_record_state *rs =
			fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		bool hit = false;
		for (size_t i = 0; rs != NULL && i < rs->n_siblings; i++)
			hit |= fss_sealed_under(rs->siblings[i]->payload.data,
			                        rs->siblings[i]->payload.len, name);
		if (rs != NULL)
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (hit && (rc = forget_record(s, t, &k)) != MDB_SUCCESS)
			break;
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		fsp_record *r = NULL;
		if (sdk_ob_decode(&d, &e))
			r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		bool hit = r != NULL && fss_sealed_under(r->payload.data, r->payload.len, name);
		if (r != NULL)
			fieldsync__v1__record__free_unpacked(r, NULL);
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Merges one RecordState from the feed into the store. */
static int
pull_one(fs_store *s, MDB_txn *t, const sdk_record_state *in, bool *applied)
{
	uint8_t key[FSK_RECORD_KEY_MAX];
	sdk_record_state *old = NULL;
	fsp_record **set = NULL, **next = NULL;
	size_t n = 0;
	int rc;

	*applied = false;
	size_t klen;
	if (!sdk_names_valid(in->collection, in->id) ||
	    (klen = fsk_record_key(key, in->collection, in->id)) == 0)
		return MDB_SUCCESS; /* garbage from the wire: skip, never crash */
	MDB_val k = {klen, key};
	if (in->purged || in->revoked) {
		rc = mdb_del(t, s->records, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		if (rc == MDB_SUCCESS && (rc = forget_record(s, t, &k)) != MDB_SUCCESS)
			return rc;
		rc = mdb_del(t, s->outbox, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		if (s->encrypted) { /* crypto-shredding: its data key goes too */
			char name[FSS_DEK_NAME_MAX + 1];
			if (!fss_dek_record(in->collection, in->id, name))
				return EINVAL; /* names checked above: cannot happen */
			if ((rc = sdk_dek_destroy(s, t, name)) != MDB_SUCCESS)
				return rc;
			if (in->purged && strcmp(in->collection, "case") == 0) {
				if (!fss_dek_case(in->id, name))
					return EINVAL;
				if ((rc = sdk_dek_destroy(s, t, name)) != MDB_SUCCESS ||
				    (rc = sweep_sealed_under(s, t, name)) != MDB_SUCCESS)
					return rc;
			}
		}
		*applied = true;
		return MDB_SUCCESS;
	}
	if ((rc = sdk_record_load(s, t, key, klen, &old)) != MDB_SUCCESS)
		return rc;
	size_t cap = (old ? old->n_siblings : 0) + in->n_siblings + 1;
	if ((set = calloc(cap, sizeof(*set))) == NULL ||
	    (next = calloc(cap, sizeof(*next))) == NULL) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; old && i < old->n_siblings; i++)
		set[n++] = old->siblings[i];
	bool changed = false;
	for (size_t i = 0; i < in->n_siblings; i++) {
		fsp_record *r = in->siblings[i];
		size_t m = 0;
		if (!sibling_ok(r))
			continue;
		fsp_merge_status st = fsp_merge(set, n, r, next, &m);
		if (st == FSP_MERGE_APPLIED || st == FSP_MERGE_CONFLICT) {
			memcpy(set, next, m * sizeof(*set));
			n = m;
			changed = true;
		}
		/* DUPLICATE/OBSOLETE: nothing new; INVALID: a reused dot, kept out */
	}
	const char *scope = fsp_scope_valid(in->scope) ? in->scope : old ? old->scope : NULL;
	if (n == 0 || scope == NULL ||
	    (!changed && old != NULL && strcmp(old->scope, scope) == 0)) {
		rc = MDB_SUCCESS;
		goto out;
	}
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	rs.collection = in->collection;
	rs.id = in->id;
	rs.scope = (char *)scope;
	rs.seq = in->seq;
	rs.n_siblings = n;
	rs.siblings = set;
	rc = sdk_record_save(s, t, key, klen, &rs);
	if (rc == MDB_SUCCESS) {
		bool live = false;
		for (size_t i = 0; i < n; i++)
			live |= !set[i]->deleted;
		rc = sdk_change_note(s, t, key, klen, true,
		                     live ? FS_CHANGE_PUT : FS_CHANGE_DELETE);
	}
	if (rc == MDB_SUCCESS)
		rc = sdk_caseidx_set(s, t, in->collection, in->id, &rs);
	*applied = rc == MDB_SUCCESS;
out:
	free(set);
	free(next);
	if (old != NULL)
		fieldsync__v1__record_state__free_unpacked(old, NULL);
	return rc;
}

fs_err
sdk_pull_apply(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied)
{
	return sdk_pull_apply_page(s, rep, applied, NULL, NULL);
}

fs_err
sdk_pull_apply_page(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied, uint64_t *from,
                    uint64_t *to)
{
	MDB_txn *t = NULL;
	int rc;
	uint64_t cp, count = 0, seq0 = 0, seq1 = 0;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((rc = sdk_change_seq_get(s, t, &seq0)) != MDB_SUCCESS)
		goto fail;
	for (size_t i = 0; i < rep->n_records; i++) {
		bool a;
		if (rep->records[i] == NULL)
			continue;
		if ((rc = pull_one(s, t, rep->records[i], &a)) != MDB_SUCCESS)
			goto fail;
		count += a;
	}
	if ((rc = sdk_meta_get_u64(s, t, "checkpoint", &cp)) != MDB_SUCCESS)
		goto fail;
	if (rep->last_seq > cp &&
	    (rc = sdk_meta_put_u64(s, t, "checkpoint", rep->last_seq)) != MDB_SUCCESS)
		goto fail;
	if ((rc = sdk_change_seq_get(s, t, &seq1)) != MDB_SUCCESS)
		goto fail;
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && applied != NULL)
		*applied = count;
	if (rc == MDB_SUCCESS && from != NULL)
		*from = seq0;
	if (rc == MDB_SUCCESS && to != NULL)
		*to = seq1;
	return sdk_map_rc(rc);
fail:
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}

fs_err
sdk_checkpoint_get(fs_store *s, uint64_t *seq)
{
	MDB_txn *t = NULL;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = sdk_meta_get_u64(s, t, "checkpoint", seq);
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}
