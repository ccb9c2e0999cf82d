/* changeset: apply one change set inside a write transaction (logic layer). See changeset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changeset.h"
#include "clock.h"
#include "metrics.h"
#include "records.h"
#include "replies.h"

/* Why a change that passed validation is still rejected, found in the store. */
typedef struct rejection {
	fs_error_code code; /* UNSPECIFIED: not rejected */
	bool deferred;      /* refused for now: "DEFERRED: ..." (PROTOCOL.md §3, not yet used) */
	char why[240];
} rejection;

/*
 * METHOD.md reading 10: a contact belongs to its case's team. A contact
 * naming a case stored in another scope is FORBIDDEN (the reason never names
 * that scope), one naming an erased case INVALID (no data key is made again
 * for it).
 */
static fsd_err
check_contact_case(store_txn *t, const fsp_record *in, rejection *rej)
{
	char case_id[FSP_ID_MAX + 1], scope[FSP_SCOPE_MAX + 1];
	uint64_t seq;
	bool purged;
	if (in->deleted || strcmp(in->collection, "contact") != 0 ||
	    !fsp_contact_case_id(in->payload.data, in->payload.len, case_id))
		return FSD_OK;
	fsd_err rc = records_head(t, "case", case_id, scope, &seq, &purged);
	if (rc == FSD_NOTFOUND)
		return FSD_OK; /* the case may come later; it counts once it is in this scope */
	if (rc != FSD_OK)
		return rc;
	if (strcmp(scope, in->scope) != 0) {
		rej->code = FIELDSYNC__V1__ERROR__CODE__FORBIDDEN;
		snprintf(rej->why, sizeof(rej->why),
		         "a contact must be in the scope of the case it names");
	} else if (purged) {
		rej->code = FIELDSYNC__V1__ERROR__CODE__INVALID;
		snprintf(rej->why, sizeof(rej->why), "the case this contact names was erased");
	}
	return FSD_OK;
}

/* PROTOCOL.md §3 "Record caps": siblings and bytes over all of them. A
 * value that does not grow the record (a resolution) always passes. */
static bool
within_caps(const config *c, fsp_record *const *cur, size_t n_cur, fsp_record *const *out,
            size_t n_out, rejection *rej)
{
	uint64_t before = 0, after = 0;
	for (size_t i = 0; i < n_cur; i++)
		before += cur[i]->payload.len;
	for (size_t i = 0; i < n_out; i++)
		after += out[i]->payload.len;
	if (n_out > c->max_siblings && n_out > n_cur) {
		rej->code = FIELDSYNC__V1__ERROR__CODE__TOO_LARGE;
		snprintf(rej->why, sizeof(rej->why),
		         "the record would hold %zu siblings, the limit is %u: resolve the "
		         "conflict first",
		         n_out, c->max_siblings);
		return false;
	}
	if (after > c->max_record_bytes && after > before) {
		rej->code = FIELDSYNC__V1__ERROR__CODE__TOO_LARGE;
		snprintf(rej->why, sizeof(rej->why),
		         "the record would hold %llu bytes, the limit is %llu: resolve the "
		         "conflict first",
		         (unsigned long long)after, (unsigned long long)c->max_record_bytes);
		return false;
	}
	return true;
}

/*
 * Applies one change inside txn t for peer. Returns FSD_OK with *res
 * filled, or a store error. Sets rej->code (or rej->deferred) when the
 * change must be refused: a record in a scope the peer was not granted
 * (checked first, so nothing else about it is told), a purged record, a
 * contact of another scope's or an erased case, a reused dot (the merge rule's INVALID), or a record
 * past its caps.
 */
static fsd_err
apply_change(reminders *rem, store_txn *t, const config *c, const peer_auth *peer, fsp_record *in,
             fs_change_result *res, rejection *rej)
{
	fs_record_state *cur = NULL;
	fsp_record *one_in[1];
	fsp_record **out = one_in;
	size_t n_out = 0, n_cur = 0;
	fsp_record *const *siblings = NULL;
	fsd_err rc = records_get(t, in->collection, in->id, &cur);

	if (rc != FSD_OK && rc != FSD_NOTFOUND)
		return rc;
	if (cur != NULL && !peer_may(peer, cur->scope)) { /* says nothing of the record */
		rej->code = FIELDSYNC__V1__ERROR__CODE__FORBIDDEN;
		snprintf(rej->why, sizeof(rej->why),
		         "this record may not be written by this device");
		records_free(cur);
		return FSD_OK;
	}
	if (cur != NULL && cur->purged) { /* an old offline edit: never resurrected */
		rej->code = FIELDSYNC__V1__ERROR__CODE__INVALID;
		snprintf(rej->why, sizeof(rej->why), "the record was purged");
		records_free(cur);
		return FSD_OK;
	}
	if ((rc = check_contact_case(t, in, rej)) != FSD_OK ||
	    rej->code != FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED) {
		records_free(cur);
		return rc;
	}
	if (cur != NULL) {
		n_cur = cur->n_siblings;
		siblings = cur->siblings;
		out = malloc((n_cur + 1) * sizeof(*out));
		if (out == NULL) {
			records_free(cur);
			return FSD_ERROR;
		}
	}
	fsp_merge_status st = fsp_merge(siblings, n_cur, in, out, &n_out);
	rc = FSD_OK;
	switch (st) {
	case FSP_MERGE_INVALID:
		rej->code = FIELDSYNC__V1__ERROR__CODE__INVALID;
		snprintf(
			rej->why, sizeof(rej->why),
			"an equal version with a different value is stored (a replica reused a dot)");
		break;
	case FSP_MERGE_DUPLICATE:
	case FSP_MERGE_OBSOLETE:
		res->status = st == FSP_MERGE_DUPLICATE
		                      ? FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE
		                      : FIELDSYNC__V1__CHANGE_RESULT__STATUS__OBSOLETE;
		res->seq = cur->seq;
		break;
	case FSP_MERGE_APPLIED:
	case FSP_MERGE_CONFLICT: {
		if (!within_caps(c, siblings, n_cur, out, n_out, rej))
			break;
		fs_record_state next;
		fieldsync__v1__record_state__init(&next);
		next.collection = in->collection;
		next.id = in->id;
		next.scope = in->scope;
		next.seq = store_next_seq(t);
		next.n_siblings = n_out;
		next.siblings = out;
		rc = records_put(t, &next, cur ? cur->seq : 0);
		/* Open conflicts, for /metrics: counted in the transaction, so a
		 * rolled-back change set takes its count back with it. */
		int delta = (n_out > 1) - (n_cur > 1);
		if (rc == FSD_OK && delta != 0)
			rc = store_meta_set_u64(t, "conflicts_open",
			                        store_meta_u64(t, "conflicts_open") +
			                                (uint64_t)(int64_t)delta);
		if (rc == FSD_OK && cur != NULL && strcmp(cur->scope, next.scope) != 0)
			rc = records_former_scope_add(t, next.collection, next.id, cur->scope);
		if (rc == FSD_OK)
			rc = reminders_note_record(rem, t, cur, &next);
		res->status = st == FSP_MERGE_APPLIED
		                      ? FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED
		                      : FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT;
		res->seq = next.seq;
		break;
	}
	}
	if (out != one_in)
		free(out);
	records_free(cur);
	return rc;
}

fsd_err
changeset_apply(store_txn *parent, reminders *rem, const config *c, const peer_auth *peer,
                const fs_push_request *p, changeset_outcome *o)
{
	const uint8_t *stored;
	size_t stored_len, n = p->n_changes;
	store_txn *t = NULL;
	fs_change_result *results = NULL, **rptr = NULL;
	fs_push_reply reply;
	size_t mark = reminders_mark(rem);
	fsd_err rc = replies_get(parent, peer->name, p->changeset_id, &stored, &stored_len);

	memset(o, 0, sizeof(*o));
	o->m_result = MCS_DUPLICATE;
	if (rc == FSD_OK) { /* a retry: the stored reply again, nothing changes */
		o->stored = stored;
		o->stored_len = stored_len;
		return FSD_OK;
	}
	if (rc != FSD_NOTFOUND)
		return rc;

	results = calloc(n ? n : 1, sizeof(*results));
	rptr = calloc(n ? n : 1, sizeof(*rptr));
	if (results == NULL || rptr == NULL) {
		rc = FSD_NOMEM;
		goto out;
	}
	if ((rc = store_nested_begin(parent, &t)) != FSD_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rejection rej = {0};
		fieldsync__v1__change_result__init(&results[i]);
		rptr[i] = &results[i];
		rc = apply_change(rem, t, c, peer, p->changes[i]->record, &results[i], &rej);
		if (rc != FSD_OK) {
			store_abort(&t);
			reminders_rollback(rem, mark);
			goto out;
		}
		if (rej.code != FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED || rej.deferred) {
			/* the set is atomic: none of it is applied */
			o->m_result = MCS_REJECTED;
			o->m_changes[MCH_REJECTED] = (uint32_t)n;
			store_abort(&t);
			reminders_rollback(rem, mark);
			o->rejected = rej.deferred
			                      ? validate_defer_all(p->changeset_id, n, i, rej.why)
			                      : validate_reject_all(p->changeset_id, n, i, rej.code,
			                                            rej.why);
			if (o->rejected == NULL)
				o->oom = true; /* this job alone fails; the round goes on */
			else
				o->rejected->server_seq = store_last_seq(parent);
			goto out;
		}
	}
	/* The deadlines follow the data in the same transaction. */
	if ((rc = reminders_flush(rem, t, clock_deadline_ms(c->clock_offset_ms))) != FSD_OK) {
		store_abort(&t);
		reminders_rollback(rem, mark);
		goto out;
	}
	fieldsync__v1__push_reply__init(&reply);
	reply.changeset_id = p->changeset_id;
	reply.n_results = n;
	reply.results = rptr;
	reply.server_seq = store_last_seq(t);
	o->packed_len = fieldsync__v1__push_reply__get_packed_size(&reply);
	o->packed = malloc(o->packed_len ? o->packed_len : 1);
	if (o->packed == NULL) {
		store_abort(&t);
		reminders_rollback(rem, mark);
		rc = FSD_NOMEM;
		goto out;
	}
	fieldsync__v1__push_reply__pack(&reply, o->packed);
	rc = replies_put(t, peer->name, p->changeset_id, o->packed, o->packed_len, c->replies_kept);
	if (rc != FSD_OK) {
		store_abort(&t);
		reminders_rollback(rem, mark);
		goto out;
	}
	if ((rc = store_commit(&t)) != FSD_OK) {
		reminders_rollback(rem, mark);
		goto out;
	}
	o->m_result = MCS_APPLIED;
	for (size_t i = 0; i < n; i++) /* ChangeResult.Status and metric_change_result agree */
		if ((unsigned)results[i].status < MCH_COUNT)
			o->m_changes[results[i].status]++;
out:
	if (rc != FSD_OK) {
		free(o->packed);
		o->packed = NULL;
		validate_reply_free(o->rejected);
		o->rejected = NULL;
	}
	free(results);
	free(rptr);
	return rc;
}

void
changeset_outcome_free(changeset_outcome *o)
{
	free(o->packed);
	o->packed = NULL;
	validate_reply_free(o->rejected);
	o->rejected = NULL;
}

uint64_t
changeset_conflicts_open(store_txn *t)
{
	return store_meta_u64(t, "conflicts_open");
}
