/* changeset: apply one change set inside a write transaction (logic layer). See changeset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changeset.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "replicas.h"
#include "replies.h"

/* Why a change that passed validation is still rejected, found in the store. */
typedef struct rejection {
	fs_error_code code; /* UNSPECIFIED: not rejected */
	bool deferred;      /* refused for now: "DEFERRED: ..." (PROTOCOL.md §3) */
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

/*
 * PROTOCOL.md §3, history belongs to its replica (docs/protocol-notes.md
 * "Replica binding and DEFERRED"). A dot (R, c) of an incoming value is
 * NEW when c is above R's counter in every stored sibling of the record
 * (J[R], the record's join: it never decreases, so it is the highest
 * counter of R this record ever held). Old dots are history the daemon
 * holds and always pass. A new dot is
 *   OWN      R is bound to the pusher, or R is bound to nobody and is the
 *            one unbound new dot (in --dev: R is the Hello replica id, the
 *            pusher's name) - the pusher claims it;
 *   FOREIGN  any other: history of another replica the daemon never
 *            stored for this record.
 * The verdict, first match wins:
 *   an own dot more than STEP_MAX above J[R]             REJECTED (absurd)
 *   a foreign dot more than STEP_MAX above R's max       REJECTED (absurd)
 *   no own dot, a foreign dot of a replica bound to
 *   another device (the value would be another's edit)   REJECTED
 *   a foreign dot                                        DEFERRED: history
 *                                                          lost by a restore
 *                                                          comes back
 * A peer without a name (--dev on a connection that said no Hello, e.g.
 * one that reconnected mid-sync) has no identity to check: every new dot
 * counts as its own and it binds none; only the counter limits apply. Counters above FSP_COUNTER_MAX never get here
 * (validate.c). A value with no new dot advances nothing: the merge rule
 * alone judges it (DUPLICATE, OBSOLETE, or a resolution of siblings).
 */
#define STEP_MAX (UINT64_C(1) << 16)

/* J[R]: replica's highest counter over the stored siblings (0: new record). */
static uint64_t
stored_counter(const fs_record_state *cur, const char *replica)
{
	uint64_t m = 0;
	for (size_t i = 0; cur != NULL && i < cur->n_siblings; i++) {
		uint64_t c = fsp_vv_get(cur->siblings[i]->version, replica);
		if (c > m)
			m = c;
	}
	return m;
}

/*
 * Whether dot d of a pushed value is new (above J[R]); when it is, *j is
 * J[R] and *row R's row (row->bound false for a replica never seen).
 */
static fsd_err
new_dot(store_txn *t, const fs_record_state *cur, const fsp_dot *d, uint64_t *j, replica_row *row,
        bool *is_new)
{
	*j = stored_counter(cur, d->replica);
	*is_new = d->counter > *j;
	if (!*is_new)
		return FSD_OK;
	fsd_err rc = replicas_get(t, d->replica, row);
	return rc == FSD_NOTFOUND ? FSD_OK : rc;
}

/* Counts a refusal for /metrics and logs it: the device, never a payload,
 * a record id or a replica of another device. */
static void
history_refused(const peer_auth *peer, const fsp_record *in, rejection *rej)
{
	metrics_inc(METRIC_HISTORY_REFUSED_TOTAL, 0, 1);
	log_event(LOG_INFO,
	          rej->deferred ? "a change was deferred: its version names history not stored yet"
	                        : "a change was rejected: its version claims history its replica "
	                          "never wrote",
	          LS("device", peer->name[0] != '\0' ? peer->name : "(no name)"),
	          LS("collection", in->collection), NULL);
}

/*
 * Applies the rule above to in (cur: the stored record or NULL). Sets rej
 * (code, or deferred) on refusal. On FSD_OK without refusal, *claim is the
 * index of the own dot to bind to the pusher (SIZE_MAX: none).
 */
static fsd_err
check_history(store_txn *t, const peer_auth *peer, const fs_record_state *cur, const fsp_record *in,
              rejection *rej, size_t *claim)
{
	const fsp_vv *v = in->version;
	const char *me = peer->name;
	size_t n_own = 0, n_unbound = 0, unbound_at = SIZE_MAX, mine_at = SIZE_MAX;
	bool foreign_bound = false, absurd = false, foreign = false;

	*claim = SIZE_MAX;
	/* First pass: which new dots are bound to whom. */
	for (size_t k = 0; k < v->n_dots; k++) {
		const fsp_dot *d = v->dots[k];
		uint64_t j;
		replica_row row;
		bool is_new;
		fsd_err rc = new_dot(t, cur, d, &j, &row, &is_new);
		if (rc != FSD_OK)
			return rc;
		if (!is_new)
			continue;
		if (row.bound && (me[0] == '\0' || strcmp(row.owner, me) == 0)) {
			n_own++; /* its own; a peer with no name has no binding to keep */
			absurd |= d->counter - j > STEP_MAX;
		} else if (row.bound) {
			foreign_bound = true;
			foreign = true;
			absurd |= d->counter - row.max > STEP_MAX && d->counter > row.max;
		} else {
			n_unbound++;
			unbound_at = k;
			if (me[0] != '\0' && strcmp(d->replica, me) == 0)
				mine_at = k; /* --dev: the Hello replica is the pusher's */
		}
	}
	/* Which unbound new dot the pusher claims: its --dev replica, the only
	 * one when it has none bound yet, or (no name) all of them. */
	if (me[0] == '\0')
		n_own += n_unbound;
	else if (mine_at != SIZE_MAX)
		*claim = mine_at;
	else if (n_unbound == 1 && n_own == 0)
		*claim = unbound_at;
	if (*claim != SIZE_MAX)
		n_own++;
	/* Second pass over the unbound new dots: the claimed ones are own, the
	 * rest foreign. */
	for (size_t k = 0; n_unbound > 0 && k < v->n_dots; k++) {
		const fsp_dot *d = v->dots[k];
		uint64_t j;
		replica_row row;
		bool is_new;
		fsd_err rc = new_dot(t, cur, d, &j, &row, &is_new);
		if (rc != FSD_OK)
			return rc;
		if (!is_new)
			continue;
		if (row.bound)
			continue; /* judged in the first pass */
		if (me[0] == '\0' || k == *claim) {
			absurd |= d->counter - j > STEP_MAX;
		} else {
			foreign = true;
			absurd |= d->counter > row.max && d->counter - row.max > STEP_MAX;
		}
	}
	if (absurd || (foreign_bound && n_own == 0)) {
		rej->code = FIELDSYNC__V1__ERROR__CODE__INVALID;
		snprintf(rej->why, sizeof(rej->why),
		         absurd ? "the version claims history its replica never wrote"
		                : "the version advances a replica of another device");
		*claim = SIZE_MAX;
	} else if (foreign) {
		rej->deferred = true;
		snprintf(rej->why, sizeof(rej->why),
		         "the version names history this daemon does not hold yet: keep the "
		         "change and push it again after the next pull");
		*claim = SIZE_MAX;
	}
	if (rej->code != FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED || rej->deferred)
		history_refused(peer, in, rej);
	return FSD_OK;
}

/* After in was stored: its new dots raise their replicas' max, and the
 * claimed one (claim) is bound to the pusher. */
static fsd_err
note_history(store_txn *t, const peer_auth *peer, const fs_record_state *cur, const fsp_record *in,
             size_t claim)
{
	const fsp_vv *v = in->version;
	for (size_t k = 0; k < v->n_dots; k++) {
		const fsp_dot *d = v->dots[k];
		if (d->counter <= stored_counter(cur, d->replica))
			continue;
		fsd_err rc =
			replicas_note(t, d->replica, d->counter, k == claim ? peer->name : NULL);
		if (rc != FSD_OK)
			return rc;
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
 * contact of another scope's or an erased case, a version that claims
 * history its replicas never wrote or that the daemon does not hold yet
 * (check_history), a reused dot (the merge rule's INVALID), or a record
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
	size_t claim = SIZE_MAX;
	if ((rc = check_history(t, peer, cur, in, rej, &claim)) != FSD_OK ||
	    rej->code != FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED || rej->deferred) {
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
			rc = note_history(t, peer, cur, in, claim);
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
