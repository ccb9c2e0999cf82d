/*
 * The change feed (changes.h): every write to `records` notes the record
 * under the next value of the change counter, in the writer's transaction,
 * and drops the record's older note, so fs_changes_since lists each
 * changed record once, at its latest change, in counter order.
 *
 * Layer: data (over db). An fs_changes is the app's until fs_changes_free.
 */
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "fieldsync/keys.h"

int
sdk_changes_open(fs_store *s, MDB_txn *t, unsigned flags)
{
	int rc = mdb_dbi_open(t, "changes", flags, &s->changes);
	if (rc == MDB_SUCCESS)
		rc = mdb_dbi_open(t, "change_keys", flags, &s->change_keys);
	return rc;
}

int
sdk_change_seq_get(fs_store *s, MDB_txn *t, uint64_t *seq)
{
	return sdk_meta_get_u64(s, t, "change_seq", seq);
}

int
sdk_change_note(fs_store *s, MDB_txn *t, const uint8_t *key, size_t klen, bool remote,
                fs_change_kind kind)
{
	uint8_t sk[8], val[2 + FSK_RECORD_KEY_MAX];
	uint64_t seq;
	MDB_val k = {klen, (void *)key}, d;
	int rc;

	if (klen > FSK_RECORD_KEY_MAX)
		return MDB_BAD_VALSIZE;
	if ((rc = sdk_change_seq_get(s, t, &seq)) != MDB_SUCCESS)
		return rc;
	rc = mdb_get(t, s->change_keys, &k, &d);
	if (rc == MDB_SUCCESS && d.mv_size == 8) { /* its older note goes */
		MDB_val ok = {8, sk};
		memcpy(sk, d.mv_data, 8);
		rc = mdb_del(t, s->changes, &ok, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
	} else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		return rc;
	}
	seq++;
	fsk_put_be64(sk, seq);
	val[0] = remote ? 1 : 0;
	val[1] = (uint8_t)kind;
	memcpy(val + 2, key, klen);
	MDB_val ck = {8, sk}, cv = {2 + klen, val};
	if ((rc = mdb_put(t, s->changes, &ck, &cv, 0)) != MDB_SUCCESS ||
	    (rc = mdb_put(t, s->change_keys, &k, &ck, 0)) != MDB_SUCCESS)
		return rc;
	return sdk_meta_put_u64(s, t, "change_seq", seq);
}

void
fs_changes_free(fs_changes **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	for (size_t i = 0; i < (*cp)->n; i++) {
		free((char *)(*cp)->items[i].collection);
		free((char *)(*cp)->items[i].id);
	}
	free((*cp)->items);
	free(*cp);
	*cp = NULL;
}

fs_err
fs_changes_since(fs_store *s, uint64_t since, size_t limit, fs_changes **out)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	fs_changes *l = NULL;
	size_t cap = 0;
	uint8_t sk[8];
	MDB_val k = {8, sk}, d;
	fs_err err = FS_OK;
	int rc;

	sdk_detail_clear();
	if (s == NULL || out == NULL) {
		sdk_detail("store/out: NULL");
		return FS_ERR_INVALID;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return FS_ERR_NOMEM;
	l->last_seq = since;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->changes, &c)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	fsk_put_be64(sk, since == UINT64_MAX ? since : since + 1);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		const uint8_t *v = d.mv_data;
		if (k.mv_size != 8 || d.mv_size < 3)
			continue; /* not ours */
		uint64_t seq = fsk_get_be64(k.mv_data);
		if (seq <= since)
			continue;
		if (limit > 0 && l->n == limit) {
			l->more = true;
			break;
		}
		if (!fsk_record_key_split(v + 2, d.mv_size - 2, coll, id))
			continue;
		if (l->n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			fs_change *it = realloc(l->items, nc * sizeof(*it));
			if (it == NULL) {
				err = FS_ERR_NOMEM;
				goto out;
			}
			l->items = it;
			cap = nc;
		}
		fs_change *ch = &l->items[l->n];
		memset(ch, 0, sizeof(*ch));
		ch->seq = seq;
		ch->remote = v[0] != 0;
		ch->kind = v[1] <= FS_CHANGE_ERASED ? (fs_change_kind)v[1] : FS_CHANGE_PUT;
		ch->collection = strdup(coll);
		ch->id = strdup(id);
		l->n++;
		if (ch->collection == NULL || ch->id == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		l->last_seq = seq;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		err = sdk_map_rc(rc);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	if (err != FS_OK)
		fs_changes_free(&l);
	else
		*out = l;
	return err;
}

fs_err
fs_change_seq(fs_store *s, uint64_t *seq)
{
	MDB_txn *t = NULL;
	int rc;

	if (s == NULL || seq == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = sdk_change_seq_get(s, t, seq);
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}
