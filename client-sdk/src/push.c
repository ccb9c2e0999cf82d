/*
 * Change sets (push.h): the table `inflight` and the push bookkeeping.
 *
 * A change set is made (sdk_push_prepare) and stored in flight BEFORE it
 * is sent; its outbox entries carry its changeset_id from then on. A retry
 * resends the stored bytes (sdk_inflight_next), so the daemon sees the same
 * id and the same changes and applies them once. The answer is applied in
 * one transaction that settles every entry (sdk_outbox_settle) and removes
 * the set from `inflight` (settle_commit). In an encrypted store the
 * in-flight value is stored sealed and opened on the way out.
 *
 * Layer: operations. Each exported function begins and commits its own
 * transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/crypto.h"
#include "fieldsync/keys.h"
#include "outbox.h"
#include "push.h"
#include "seal.h"

fs_err
sdk_pending_count(fs_store *s, uint64_t *n)
{
	MDB_txn *t = NULL;
	uint64_t parked;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	fs_err err = sdk_outbox_counts(s, t, n, &parked);
	mdb_txn_abort(t);
	return err;
}

/* Removes in-flight change set `key`; absent is fine. */
static int
inflight_del(fs_store *s, MDB_txn *t, uint64_t key)
{
	uint8_t kb[8];
	fsk_put_be64(kb, key);
	MDB_val k = {8, kb};
	int rc = mdb_del(t, s->inflight, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/*
 * An in-flight set of an encrypted store whose payloads no longer open (a
 * DEK destroyed by a purge, or damage): drops it and requeues its changes
 * that are still in the outbox, in one transaction. Safe: a change set the
 * daemon did apply comes back DUPLICATE or OBSOLETE when pushed again.
 */
static fs_err
inflight_discard(fs_store *s, uint64_t key)
{
	MDB_txn *t = NULL;
	uint8_t kb[8];
	MDB_val k = {8, kb}, d;
	sdk_push_request *req = NULL;
	bool touched;
	int rc;

	fsk_put_be64(kb, key);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = mdb_get(t, s->inflight, &k, &d);
	if (rc == MDB_SUCCESS &&
	    (req = fieldsync__v1__push_request__unpack(NULL, d.mv_size, d.mv_data)) != NULL) {
		for (size_t i = 0; rc == MDB_SUCCESS && i < req->n_changes; i++)
			if (req->changes[i] != NULL)
				rc = sdk_outbox_settle(s, t, req->changes[i]->record,
				                       SETTLE_REQUEUE, NULL, &touched);
		fieldsync__v1__push_request__free_unpacked(req, NULL);
	}
	if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND)
		rc = inflight_del(s, t, key);
	if (rc != MDB_SUCCESS) {
		mdb_txn_abort(t);
		return sdk_map_rc(rc);
	}
	return sdk_map_rc(mdb_txn_commit(t));
}

fs_err
sdk_push_requeue(fs_store *s, uint64_t key)
{
	return inflight_discard(s, key);
}

/* The plaintext PushRequest of a sealed in-flight value; RC_SEAL_BAD when a
 * payload does not open, MDB_CORRUPTED when it does not decode. */
static int
inflight_open(fs_store *s, MDB_txn *t, const MDB_val *d, uint8_t **bytes, size_t *len)
{
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, d->mv_size, d->mv_data);
	int rc = MDB_SUCCESS;
	if (req == NULL)
		return MDB_CORRUPTED;
	for (size_t i = 0; rc == MDB_SUCCESS && i < req->n_changes; i++) {
		fsp_record *r = req->changes[i] ? req->changes[i]->record : NULL;
		if (r == NULL || !sdk_names_valid(r->collection, r->id))
			rc = MDB_CORRUPTED;
		else
			rc = sdk_record_open(s, t, r->collection, r->id, r);
	}
	if (rc == MDB_SUCCESS) {
		*len = fieldsync__v1__push_request__get_packed_size(req);
		if ((*bytes = malloc(*len ? *len : 1)) == NULL)
			rc = ENOMEM;
		else
			fieldsync__v1__push_request__pack(req, *bytes);
	}
	fieldsync__v1__push_request__free_unpacked(req, NULL);
	return rc;
}

fs_err
sdk_inflight_next(fs_store *s, uint64_t *key, uint8_t **bytes, size_t *len)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	uint8_t kb[8];
	MDB_val k = {8, kb}, d;
	fs_err err;
	int rc;
	uint64_t from = *key;

again:
	fsk_put_be64(kb, from + 1);
	k.mv_size = 8;
	k.mv_data = kb;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->inflight, &c)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
		if (k.mv_size == 8)
			break;
	if (rc != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	uint64_t found = fsk_get_be64(k.mv_data);
	if (s->encrypted) {
		rc = inflight_open(s, t, &d, bytes, len);
		if (rc == RC_SEAL_BAD) { /* its key is gone: requeue its changes, go on */
			mdb_cursor_close(c);
			c = NULL;
			mdb_txn_abort(t);
			t = NULL;
			if ((err = inflight_discard(s, found)) != FS_OK)
				goto out;
			from = found;
			goto again;
		}
		if (rc != MDB_SUCCESS) {
			err = sdk_map_rc(rc);
			goto out;
		}
	} else {
		if ((*bytes = malloc(d.mv_size ? d.mv_size : 1)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(*bytes, d.mv_data, d.mv_size);
		*len = d.mv_size;
	}
	*key = found;
	err = FS_OK;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	return err;
}

fs_err
sdk_push_prepare(fs_store *s, size_t max, size_t budget, uint64_t *key, uint8_t **bytes,
                 size_t *len)
{
	MDB_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	fs_err err = FS_OK;
	int rc;
	Fieldsync__V1__Change **changes = NULL;
	Fieldsync__V1__Change *chs = NULL;
	MDB_val *keys = NULL;
	uint8_t *keybuf = NULL, **plain = NULL, *sealed_out = NULL;
	size_t n = 0, size = 0, *plain_len = NULL;
	bool solo = false;
	char csid[FSC_UUID_LEN + 1];
	uint8_t *out = NULL;

	if (max == 0)
		max = 1;
	if ((changes = calloc(max, sizeof(*changes))) == NULL ||
	    (chs = calloc(max, sizeof(*chs))) == NULL ||
	    (keys = calloc(max, sizeof(*keys))) == NULL ||
	    (keybuf = malloc(max * FSK_RECORD_KEY_MAX)) == NULL ||
	    (plain = calloc(max, sizeof(*plain))) == NULL ||
	    (plain_len = calloc(max, sizeof(*plain_len))) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS && n < max && !solo;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		if (!sdk_ob_decode(&d, &e) || e.state == OB_PARKED || e.state == OB_DEFERRED ||
		    e.csid[0] != '\0')
			continue; /* DEFERRED: pushed again after the next pull (sync.c) */
		if (e.state == OB_SOLO && n > 0)
			continue;
		if (k.mv_size > FSK_RECORD_KEY_MAX)
			continue;
		fsp_record *r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		if (r == NULL)
			continue;   /* cannot be pushed; stays visible in status */
		if (s->encrypted) { /* it must open, under the names it is stored at */
			char kc[FSP_COLLECTION_MAX + 1], ki[FSP_ID_MAX + 1];
			if (!fsk_record_key_split(k.mv_data, k.mv_size, kc, ki) ||
			    r->collection == NULL || r->id == NULL ||
			    strcmp(kc, r->collection) != 0 || strcmp(ki, r->id) != 0 ||
			    sdk_open_value(s, t, kc, ki, r->payload.data, r->payload.len, &plain[n],
			                   &plain_len[n]) != MDB_SUCCESS) {
				fieldsync__v1__record__free_unpacked(r, NULL);
				continue; /* like an undecodable entry: stays visible in status */
			}
		}
		size_t sz = fieldsync__v1__record__get_packed_size(r) + 16;
		if (n > 0 && size + sz > budget) {
			fieldsync__v1__record__free_unpacked(r, NULL);
			free(plain[n]);
			plain[n] = NULL;
			break;
		}
		fieldsync__v1__change__init(&chs[n]);
		chs[n].record = r;
		changes[n] = &chs[n];
		memcpy(keybuf + n * FSK_RECORD_KEY_MAX, k.mv_data, k.mv_size);
		keys[n].mv_data = keybuf + n * FSK_RECORD_KEY_MAX;
		keys[n].mv_size = k.mv_size;
		size += sz;
		n++;
		solo = e.state == OB_SOLO;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		err = sdk_map_rc(rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	if (n == 0) {
		err = FS_ERR_NOT_FOUND;
		goto out;
	}
	if (!fsc_uuid(csid)) {
		err = FS_ERR_IO;
		goto out;
	}
	/* mark the entries: same bytes, with the change set's id */
	for (size_t i = 0; i < n; i++) {
		sdk_ob_entry e;
		if ((rc = mdb_get(t, s->outbox, &keys[i], &d)) != MDB_SUCCESS ||
		    !sdk_ob_decode(&d, &e)) {
			err = rc != MDB_SUCCESS ? sdk_map_rc(rc) : FS_ERR_CORRUPT;
			goto out;
		}
		uint8_t *rec = malloc(e.rec_len ? e.rec_len : 1);
		if (rec == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		memcpy(rec, e.rec_bytes, e.rec_len);
		rc = sdk_ob_put(s, t, &keys[i], e.state, csid, NULL, rec, e.rec_len);
		free(rec);
		if (rc != MDB_SUCCESS) {
			err = sdk_map_rc(rc);
			goto out;
		}
	}
	sdk_push_request req = FIELDSYNC__V1__PUSH_REQUEST__INIT;
	req.changeset_id = csid;
	req.n_changes = n;
	req.changes = changes;
	size_t plen = fieldsync__v1__push_request__get_packed_size(&req), slen = plen;
	if ((out = malloc(plen ? plen : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	fieldsync__v1__push_request__pack(&req, out);
	if (s->encrypted) {
		/* in flight as stored (sealed); to the daemon with the plaintext */
		sealed_out = out;
		for (size_t i = 0; i < n; i++) {
			free(chs[i].record->payload.data);
			chs[i].record->payload.data = plain[i];
			chs[i].record->payload.len = plain_len[i];
			plain[i] = NULL;
		}
		plen = fieldsync__v1__push_request__get_packed_size(&req);
		if ((out = malloc(plen ? plen : 1)) == NULL) {
			err = FS_ERR_NOMEM;
			goto out;
		}
		fieldsync__v1__push_request__pack(&req, out);
	}
	uint64_t next;
	uint8_t kb[8];
	if ((rc = sdk_meta_get_u64(s, t, "cs_next", &next)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if (next == 0)
		next = 1;
	fsk_put_be64(kb, next);
	MDB_val ik = {8, kb}, iv = {slen, sealed_out != NULL ? sealed_out : out};
	if ((rc = mdb_put(t, s->inflight, &ik, &iv, 0)) != MDB_SUCCESS ||
	    (rc = sdk_meta_put_u64(s, t, "cs_next", next + 1)) != MDB_SUCCESS) {
		err = sdk_map_rc(rc);
		goto out;
	}
	if ((err = sdk_txn_commit(&t)) != FS_OK)
		goto out;
	*key = next;
	*bytes = out;
	*len = plen;
	out = NULL;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	sdk_txn_abort(&t);
	for (size_t i = 0; i < n; i++)
		fieldsync__v1__record__free_unpacked(chs[i].record, NULL);
	for (size_t i = 0; plain != NULL && i < max; i++)
		free(plain[i]);
	free(out);
	free(sealed_out);
	free(changes);
	free(chs);
	free(keys);
	free(keybuf);
	free(plain);
	free(plain_len);
	return err;
}

/* True when reason starts with an Error code name and a colon ("INVALID: …"). */
static bool
reason_has_code(const char *r)
{
	size_t i = 0;
	while (r[i] >= 'A' && r[i] <= 'Z')
		i++;
	while (r[i] == '_' || (r[i] >= 'A' && r[i] <= 'Z'))
		i++;
	return i > 0 && r[i] == ':';
}

/* True when the daemon deferred the change (PROTOCOL.md §3): it names
 * history the daemon does not hold yet; keep it and push it after a pull. */
static bool
reason_deferred(const char *r)
{
	return strncmp(r, "DEFERRED:", 9) == 0;
}

/* The end of settling a change set: it is no longer in flight, and the
 * outbox changes commit with that; *o gets the counts once durable. */
static fs_err
settle_commit(fs_store *s, MDB_txn *t, uint64_t key, const sdk_push_outcome *oc,
              sdk_push_outcome *o)
{
	int rc = inflight_del(s, t, key);
	if (rc != MDB_SUCCESS) {
		mdb_txn_abort(t);
		return sdk_map_rc(rc);
	}
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && o != NULL)
		*o = *oc;
	return sdk_map_rc(rc);
}

fs_err
sdk_push_done(fs_store *s, uint64_t key, const sdk_push_request *req, const sdk_push_reply *rep,
              sdk_push_outcome *o)
{
	MDB_txn *t = NULL;
	int rc;
	bool touched;
	size_t culprits = 0, bystanders = 0;
	sdk_push_outcome oc = {0, 0, 0, 0};

	/*
	 * A rejected change set applied nothing. When the reasons tell the
	 * faulty changes ("INVALID: …") from the bystanders ("not applied …"),
	 * the faulty ones are parked and the rest requeued. When they do not,
	 * every change is requeued to be pushed alone, so each is judged on its
	 * own and only a change refused alone is parked: nothing good is parked
	 * and nothing loops forever. A change answered "DEFERRED: ..." is kept
	 * DEFERRED (not pushed again before the next pull, never parked).
	 */
	for (size_t i = 0; i < rep->n_results; i++) {
		if (rep->results[i]->status != FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED)
			continue;
		if (reason_has_code(rep->results[i]->reason))
			culprits++;
		else
			bystanders++;
	}
	bool distinguishes = culprits > 0 && bystanders > 0;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	for (size_t i = 0; i < req->n_changes && i < rep->n_results; i++) {
		const Fieldsync__V1__ChangeResult *cr = rep->results[i];
		const fsp_record *r = req->changes[i]->record;
		sdk_settle action;
		switch (cr->status) {
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED:
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE:
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__OBSOLETE:
			action = SETTLE_ACK;
			oc.acked++;
			break;
		case FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT:
			action = SETTLE_ACK;
			oc.acked++;
			oc.conflicts++;
			break;
		default: /* REJECTED, or a status this version does not know */
			if (cr->status == FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED &&
			    reason_deferred(cr->reason))
				action = SETTLE_DEFER; /* queued, never parked or dropped */
			else if (req->n_changes == 1)
				action = SETTLE_PARK;
			else if (distinguishes)
				action = reason_has_code(cr->reason) ? SETTLE_PARK : SETTLE_REQUEUE;
			else
				action = SETTLE_SOLO;
			break;
		}
		if ((rc = sdk_outbox_settle(s, t, r, action, cr->reason, &touched)) != MDB_SUCCESS)
			goto fail;
		if (touched && action == SETTLE_PARK)
			oc.parked++;
		else if (touched && action != SETTLE_ACK)
			oc.requeued++;
	}
	return settle_commit(s, t, key, &oc, o);
fail:
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}

fs_err
sdk_push_refused(fs_store *s, uint64_t key, const sdk_push_request *req, const char *code,
                 const char *message, sdk_push_outcome *o)
{
	MDB_txn *t = NULL;
	int rc;
	bool touched;
	char reason[SDK_REASON_MAX + 1];
	sdk_push_outcome oc = {0, 0, 0, 0};

	snprintf(reason, sizeof(reason), "%s: %s", code, message ? message : "");
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	for (size_t i = 0; i < req->n_changes; i++) {
		sdk_settle action = req->n_changes == 1 ? SETTLE_PARK : SETTLE_SOLO;
		if ((rc = sdk_outbox_settle(s, t, req->changes[i]->record, action, reason,
		                            &touched)) != MDB_SUCCESS)
			goto fail;
		if (touched && action == SETTLE_PARK)
			oc.parked++;
		else if (touched)
			oc.requeued++;
	}
	return settle_commit(s, t, key, &oc, o);
fail:
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}
