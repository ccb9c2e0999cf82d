/*
 * The outbox (outbox.h): one entry per record with a local change not yet
 * acknowledged, [u8 state][u8 n][changeset_id: n bytes][u16 LE m]
 * [reason: m bytes][packed Record]. The states and the functions that move
 * them are listed in the design note atop store.c; this file holds the
 * entry format, the counts, fs_retry_failed (PARKED -> PENDING),
 * sdk_outbox_settle (what a push answer does to one entry) and
 * sdk_outbox_undefer (DEFERRED -> PENDING after a pull; PROTOCOL.md §3).
 *
 * Layer: data. Never ends a transaction it did not begin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "outbox.h"

bool
sdk_ob_decode(const MDB_val *d, sdk_ob_entry *e)
{
	const uint8_t *p = d->mv_data;
	size_t n = d->mv_size, off = 0;
	if (n < 4)
		return false;
	e->state = p[off++];
	size_t cl = p[off++];
	if (off + cl + 2 > n)
		return false;
	memcpy(e->csid, p + off, cl);
	e->csid[cl] = '\0';
	off += cl;
	size_t rl = (size_t)p[off] | (size_t)p[off + 1] << 8;
	off += 2;
	if (off + rl > n || rl > SDK_REASON_MAX)
		return false;
	memcpy(e->reason, p + off, rl);
	e->reason[rl] = '\0';
	off += rl;
	e->rec_bytes = p + off;
	e->rec_len = n - off;
	return true;
}

int
sdk_ob_put(fs_store *s, MDB_txn *t, const MDB_val *key, uint8_t state, const char *csid,
           const char *reason, const uint8_t *rec, size_t rec_len)
{
	size_t cl = csid ? strlen(csid) : 0, rl = reason ? strlen(reason) : 0;
	if (cl > 255)
		cl = 255;
	if (rl > SDK_REASON_MAX)
		rl = SDK_REASON_MAX;
	MDB_val d = {4 + cl + rl + rec_len, NULL};
	int rc = mdb_put(t, s->outbox, (MDB_val *)key, &d, MDB_RESERVE);
	if (rc != MDB_SUCCESS)
		return rc;
	uint8_t *p = d.mv_data;
	p[0] = state;
	p[1] = (uint8_t)cl;
	if (cl > 0)
		memcpy(p + 2, csid, cl);
	p[2 + cl] = (uint8_t)(rl & 0xff);
	p[3 + cl] = (uint8_t)(rl >> 8);
	if (rl > 0)
		memcpy(p + 4 + cl, reason, rl);
	if (rec_len > 0)
		memcpy(p + 4 + cl + rl, rec, rec_len);
	return MDB_SUCCESS;
}

fs_err
sdk_outbox_counts(fs_store *s, MDB_txn *t, uint64_t *pending, uint64_t *parked)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, s->outbox, &c);
	*pending = *parked = 0;
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		const uint8_t *p = d.mv_data;
		if (d.mv_size > 0 && p[0] == OB_PARKED)
			(*parked)++;
		else
			(*pending)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? FS_OK : sdk_map_rc(rc);
}

/* Sets every entry in state `from` to PENDING, in one transaction. */
static fs_err
outbox_to_pending(fs_store *s, uint8_t from, uint64_t *n)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	size_t count = 0;
	fs_err err = FS_OK;
	int rc;

	if (s == NULL)
		return FS_ERR_INVALID;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		if (!sdk_ob_decode(&d, &e) || e.state != from)
			continue;
		/* the first byte is the state; the length does not change */
		uint8_t *copy = malloc(d.mv_size);
		if (copy == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(copy, d.mv_data, d.mv_size);
		copy[0] = OB_PENDING;
		MDB_val nd = {d.mv_size, copy};
		rc = mdb_cursor_put(c, &k, &nd, MDB_CURRENT);
		free(copy);
		if (rc != MDB_SUCCESS) {
			err = sdk_map_rc(rc);
			goto out;
		}
		count++;
	}
	if (rc != MDB_NOTFOUND) {
		err = sdk_map_rc(rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	err = sdk_txn_commit(&t);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	if (err == FS_OK && n != NULL)
		*n = count;
	return err;
}

fs_err
fs_retry_failed(fs_store *s, size_t *n)
{
	uint64_t count = 0;
	if (s == NULL)
		return FS_ERR_INVALID;
	fs_err err = outbox_to_pending(s, OB_PARKED, &count);
	if (err == FS_OK && n != NULL)
		*n = (size_t)count;
	return err;
}

fs_err
sdk_outbox_undefer(fs_store *s, uint64_t *n)
{
	return outbox_to_pending(s, OB_DEFERRED, n);
}

int
sdk_outbox_settle(fs_store *s, MDB_txn *t, const fsp_record *r, sdk_settle action,
                  const char *reason, bool *touched)
{
	uint8_t key[FSK_RECORD_KEY_MAX];
	MDB_val k, d;
	sdk_ob_entry e;
	int rc;

	*touched = false;
	if (r == NULL || !sdk_names_valid(r->collection, r->id) ||
	    (k.mv_size = fsk_record_key(key, r->collection, r->id)) == 0)
		return MDB_SUCCESS;
	k.mv_data = key;
	rc = mdb_get(t, s->outbox, &k, &d);
	if (rc == MDB_NOTFOUND)
		return MDB_SUCCESS;
	if (rc != MDB_SUCCESS)
		return rc;
	if (!sdk_ob_decode(&d, &e))
		return MDB_SUCCESS;
	fsp_record *mine = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
	if (mine == NULL)
		return MDB_SUCCESS;
	/* a newer local edit replaced the entry: it is not what was answered */
	bool same = fsp_vv_compare(mine->version, r->version) == FSP_VV_EQUAL;
	fieldsync__v1__record__free_unpacked(mine, NULL);
	if (!same)
		return MDB_SUCCESS;
	*touched = true;
	if (action == SETTLE_ACK)
		return mdb_del(t, s->outbox, &k, NULL);
	uint8_t *rec = malloc(e.rec_len ? e.rec_len : 1);
	if (rec == NULL)
		return ENOMEM;
	memcpy(rec, e.rec_bytes, e.rec_len);
	uint8_t state = action == SETTLE_PARK    ? OB_PARKED
	                : action == SETTLE_SOLO  ? OB_SOLO
	                : action == SETTLE_DEFER ? OB_DEFERRED
	                                         : OB_PENDING;
	bool keep_reason = action == SETTLE_PARK || action == SETTLE_DEFER;
	rc = sdk_ob_put(s, t, &k, state, NULL, keep_reason ? reason : NULL, rec, e.rec_len);
	free(rec);
	return rc;
}
