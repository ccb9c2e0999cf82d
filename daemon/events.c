/*
 * events: the reminder event log (data layer). See events.h. An erased
 * case's events are rewritten in place as markers (events_erase_case):
 * their seq stays, their case and staff data go. Retention (events_trim)
 * removes a prefix of the log, so what is kept stays one run of seqs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"

#define DAY_MS (24LL * 3600 * 1000)

const store_table events_table = {"events"};

void
event_batch_free(event_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->topics[i]);
		free(b->data[i]);
	}
	free(b->topics);
	free(b->data);
	free(b->len);
	free(b->label);
	free(b);
}

fsd_err
events_batch_add(event_batch *b, const char *topic, uint8_t *data, size_t len, uint64_t seq,
                 int label)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		char **t = realloc(b->topics, cap * sizeof(*t));
		if (t == NULL)
			return FSD_NOMEM;
		b->topics = t;
		uint8_t **d = realloc(b->data, cap * sizeof(*d));
		if (d == NULL)
			return FSD_NOMEM;
		b->data = d;
		size_t *l = realloc(b->len, cap * sizeof(*l));
		if (l == NULL)
			return FSD_NOMEM;
		b->len = l;
		int *lb = realloc(b->label, cap * sizeof(*lb));
		if (lb == NULL)
			return FSD_NOMEM;
		b->label = lb;
		b->cap = cap;
	}
	b->topics[b->n] = strdup(topic);
	if (b->topics[b->n] == NULL)
		return FSD_NOMEM;
	b->data[b->n] = data;
	b->len[b->n] = len;
	b->label[b->n] = label;
	b->n++;
	b->last_seq = seq;
	return FSD_OK;
}

void
events_batch_truncate(event_batch *b, size_t mark)
{
	while (b->n > mark) {
		b->n--;
		free(b->topics[b->n]);
		free(b->data[b->n]);
	}
}

fsd_err
events_append(store_txn *t, Fieldsync__V1__ReminderEvent *ev, int label, event_batch *queue)
{
	uint8_t seqb[8];
	char topic[160];
	uint64_t seq = store_meta_u64(t, "event_seq") + 1;
	fsd_err rc;

	ev->seq = seq;
	size_t len = fieldsync__v1__reminder_event__get_packed_size(ev);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return FSD_NOMEM;
	fieldsync__v1__reminder_event__pack(ev, buf);
	fsk_put_be64(seqb, seq);
	if ((rc = store_kv_put(t, &events_table, seqb, 8, buf, len, true)) != FSD_OK ||
	    (rc = store_meta_set_u64(t, "event_seq", seq)) != FSD_OK) {
		free(buf);
		return rc;
	}
	snprintf(topic, sizeof(topic), "reminder/%s/%s", ev->rule, ev->scope);
	if (queue == NULL)
		free(buf);
	else if (events_batch_add(queue, topic, buf, len, seq, label) != FSD_OK) {
		free(buf);
		return FSD_NOMEM;
	}
	return FSD_OK;
}

struct replay_page {
	events_visible_fn visible; /* NULL: every scope (republishing) */
	const void *visible_arg;
	size_t examined;
	Fieldsync__V1__ReminderEvent **events;
	size_t n, cap, bytes, budget;
	uint64_t last;
	bool more;
	bool raw; /* collect packed bytes (republish) instead of unpacked events */
	event_batch *batch;
};

static bool
take_event(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct replay_page *pg = arg;
	if (klen != 8)
		return true;
	if (pg->n == pg->cap || (pg->n > 0 && pg->bytes + vlen > pg->budget)) {
		pg->more = true;
		return false;
	}
	if (pg->examined++ >= 20000) { /* a bounded scan per page, like the feed */
		pg->more = true;
		return false;
	}
	pg->last = fsk_get_be64(key);
	Fieldsync__V1__ReminderEvent *ev = fieldsync__v1__reminder_event__unpack(NULL, vlen, val);
	if (ev == NULL) { /* a damaged row: skipped, never failing the page */
		metrics_inc(METRIC_EVENTS_UNREADABLE_TOTAL, 0, 1);
		log_event(LOG_WARN, "a stored reminder event does not decode; skipped",
		          LU("seq", pg->last), LU("bytes", vlen), NULL);
		return true;
	}
	if (pg->raw && ev->rule[0] == '\0') { /* an erased event: nothing to publish */
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
		return true;
	}
	if (pg->visible != NULL && !pg->visible(pg->visible_arg, ev->scope)) { /* not this peer's */
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
		return true;
	}
	if (pg->raw) {
		char topic[160];
		uint8_t *copy = malloc(vlen ? vlen : 1);
		rule_id rid;
		int label = rule_parse(ev->rule, &rid)
		                    ? (int)metrics_rule_state((int)rid, (int)ev->state)
		                    : -1;
		snprintf(topic, sizeof(topic), "reminder/%s/%s", ev->rule, ev->scope);
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
		if (copy == NULL)
			return false;
		memcpy(copy, val, vlen);
		if (events_batch_add(pg->batch, topic, copy, vlen, pg->last, label) != FSD_OK) {
			free(copy);
			return false;
		}
		pg->n++;
	} else {
		pg->events[pg->n++] = ev;
	}
	pg->bytes += vlen + 8;
	return true;
}

fsd_err
events_after(store_txn *t, uint64_t after, event_batch **out)
{
	uint64_t to = store_meta_u64(t, "event_seq");
	uint8_t seqb[8];
	*out = NULL;
	if (to <= after)
		return FSD_OK;
	event_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return FSD_NOMEM;
	struct replay_page pg = {.cap = 100000, .budget = SIZE_MAX, .raw = true, .batch = b};
	fsk_put_be64(seqb, after + 1);
	fsd_err rc = store_kv_scan(t, &events_table, seqb, 8, NULL, 0, take_event, &pg);
	if (b->n == 0) { /* a partial batch is still worth publishing */
		event_batch_free(b);
		return rc;
	}
	*out = b;
	return FSD_OK;
}

uint64_t
events_last_seq(store_txn *t)
{
	return store_meta_u64(t, "event_seq");
}

fsd_err
events_unpublished(store_txn *t, event_batch **out)
{
	return events_after(t, store_meta_u64(t, "published_seq"), out);
}

fsd_err
events_set_published(store_txn *t, uint64_t seq)
{
	if (seq <= store_meta_u64(t, "published_seq"))
		return FSD_OK;
	return store_meta_set_u64(t, "published_seq", seq);
}

/* ---- retention ---------------------------------------------------------- */

uint64_t
events_oldest_seq(store_txn *t)
{
	uint64_t v = store_meta_u64(t, "event_oldest_seq");
	return v == 0 ? 1 : v;
}

struct trim_scan {
	uint64_t handed; /* never past published_seq */
	uint64_t excess; /* this many of the oldest go whatever their age */
	int64_t cutoff;  /* emitted before this goes (INT64_MIN: no age limit) */
	uint64_t *seqs;  /* the oldest events looked at, in order */
	size_t n, cap;   /* cap: the batch */
	size_t take;     /* seqs[0..take) are removed */
};

static bool
trim_look(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct trim_scan *ts = arg;
	if (klen != 8)
		return true;
	uint64_t seq = fsk_get_be64(key);
	if (seq > ts->handed || ts->n == ts->cap)
		return false;
	ts->seqs[ts->n++] = seq;
	if (ts->n <= ts->excess) { /* over the count: no need to look inside */
		ts->take = ts->n;
		return true;
	}
	if (ts->cutoff == INT64_MIN)
		return false;
	Fieldsync__V1__ReminderEvent *ev = fieldsync__v1__reminder_event__unpack(NULL, vlen, val);
	int64_t at = ev != NULL ? ev->emitted_at_ms : 0;
	if (ev != NULL)
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	if (at == 0) /* a marker (or a damaged row): it goes with the next dated event */
		return true;
	if (at >= ts->cutoff)
		return false; /* young enough: it and everything after stay */
	ts->take = ts->n;
	return true;
}

fsd_err
events_trim(store_txn *t, int64_t now_ms, uint32_t max_age_days, uint64_t max_count, size_t batch,
            size_t *trimmed)
{
	uint64_t oldest = events_oldest_seq(t), last = events_last_seq(t);
	uint64_t kept = last >= oldest ? last - oldest + 1 : 0;
	struct trim_scan ts = {.handed = store_meta_u64(t, "published_seq"),
	                       .cutoff = INT64_MIN,
	                       .cap = batch};
	uint8_t seqb[8];
	fsd_err rc = FSD_OK;

	if (trimmed != NULL)
		*trimmed = 0;
	metrics_set(METRIC_EVENTS_OLDEST_SEQ, 0, (int64_t)oldest);
	if (ts.handed >= last) /* the newest stays: a reader at the head is never told TRIMMED */
		ts.handed = last > 0 ? last - 1 : 0;
	if (max_count > 0 && kept > max_count)
		ts.excess = kept - max_count;
	if (max_age_days > 0 && now_ms > (int64_t)max_age_days * DAY_MS)
		ts.cutoff = now_ms - (int64_t)max_age_days * DAY_MS;
	if (batch == 0 || kept == 0 || ts.handed < oldest ||
	    (ts.excess == 0 && ts.cutoff == INT64_MIN))
		return FSD_OK;
	if ((ts.seqs = malloc(batch * sizeof(*ts.seqs))) == NULL)
		return FSD_NOMEM;
	fsk_put_be64(seqb, oldest);
	rc = store_kv_scan(t, &events_table, seqb, 8, NULL, 0, trim_look, &ts);
	for (size_t i = 0; rc == FSD_OK && i < ts.take; i++) {
		fsk_put_be64(seqb, ts.seqs[i]);
		rc = store_kv_del(t, &events_table, seqb, 8);
	}
	if (rc == FSD_OK && ts.take > 0) {
		oldest = ts.seqs[ts.take - 1] + 1;
		rc = store_meta_set_u64(t, "event_oldest_seq", oldest);
	}
	free(ts.seqs);
	if (rc != FSD_OK || ts.take == 0)
		return rc;
	/* Counted before the commit: a round that then aborts (rare) over-counts. */
	metrics_inc(METRIC_EVENTS_TRIMMED_TOTAL, 0, ts.take);
	metrics_set(METRIC_EVENTS_OLDEST_SEQ, 0, (int64_t)oldest);
	if (trimmed != NULL)
		*trimmed = ts.take;
	return FSD_OK;
}

bool
events_trim_due(store_txn *t, uint64_t handed, int64_t now_ms, uint32_t max_age_days,
                uint64_t max_count)
{
	uint64_t oldest = events_oldest_seq(t), last = events_last_seq(t);
	if (last == 0 || last < oldest)
		return false;
	if (handed >= last)
		handed = last - 1;
	if (handed < oldest)
		return false;
	if (max_count > 0 && last - oldest + 1 > max_count)
		return true;
	if (max_age_days == 0 || now_ms <= (int64_t)max_age_days * DAY_MS)
		return false;
	uint8_t k[8];
	const void *val = NULL;
	size_t vlen = 0;
	fsk_put_be64(k, oldest);
	if (store_kv_get(t, &events_table, k, 8, &val, &vlen) != FSD_OK)
		return false;
	Fieldsync__V1__ReminderEvent *ev = fieldsync__v1__reminder_event__unpack(NULL, vlen, val);
	int64_t at = ev != NULL ? ev->emitted_at_ms : 0;
	if (ev != NULL)
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	/* a marker or damaged row waits for the next round with work (events_trim) */
	return at != 0 && at < now_ms - (int64_t)max_age_days * DAY_MS;
}

/* ---- replay --------------------------------------------------------------- */

#define REPLAY_DEFAULT_LIMIT 500
#define REPLAY_MAX_LIMIT 1000

fsd_err
events_replay(store *s, size_t budget, events_visible_fn visible, const void *arg,
              const Fieldsync__V1__ReplayRequest *req, Fieldsync__V1__ReplayReply *out,
              uint64_t *trimmed_before)
{
	struct replay_page pg = {.visible = visible, .visible_arg = arg};
	store_txn *t = NULL;
	uint8_t seqb[8];
	fsd_err rc;

	fieldsync__v1__replay_reply__init(out);
	*trimmed_before = 0;
	pg.cap = req->limit == 0 ? REPLAY_DEFAULT_LIMIT : req->limit;
	if (pg.cap > REPLAY_MAX_LIMIT)
		pg.cap = REPLAY_MAX_LIMIT;
	pg.budget = budget;
	pg.last = req->since_seq;
	pg.events = calloc(pg.cap, sizeof(*pg.events));
	if (pg.events == NULL)
		return FSD_ERROR;
	if ((rc = store_read_begin(s, &t)) != FSD_OK)
		goto out;
	uint64_t oldest = events_oldest_seq(t); /* in the txn of the scan: no trim between */
	if (req->since_seq < oldest - 1) {      /* since_seq+1 .. oldest-1 are gone */
		*trimmed_before = oldest;
	} else if (req->since_seq < UINT64_MAX) {
		fsk_put_be64(seqb, req->since_seq + 1);
		rc = store_kv_scan(t, &events_table, seqb, 8, NULL, 0, take_event, &pg);
	}
	store_read_end(&t);
	if (rc != FSD_OK)
		goto out;
	out->events = pg.events;
	out->n_events = pg.n;
	out->last_seq = pg.last;
	out->more = pg.more;
	return FSD_OK;
out:
	for (size_t i = 0; i < pg.n; i++)
		fieldsync__v1__reminder_event__free_unpacked(pg.events[i], NULL);
	free(pg.events);
	return rc;
}

void
events_replay_free(Fieldsync__V1__ReplayReply *r)
{
	for (size_t i = 0; i < r->n_events; i++)
		fieldsync__v1__reminder_event__free_unpacked(r->events[i], NULL);
	free(r->events);
	r->events = NULL;
	r->n_events = 0;
}

/* ---- erasure ------------------------------------------------------------ */

struct case_events {
	const char *case_id;
	uint64_t *seqs;
	size_t n, cap;
	bool oom;
};

static bool
collect_case_event(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct case_events *ce = arg;
	if (klen != 8)
		return true;
	Fieldsync__V1__ReminderEvent *ev = fieldsync__v1__reminder_event__unpack(NULL, vlen, val);
	if (ev == NULL)
		return true;
	bool mine = strcmp(ev->case_id, ce->case_id) == 0;
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	if (!mine)
		return true;
	if (ce->n == ce->cap) {
		size_t cap = ce->cap ? ce->cap * 2 : 32;
		uint64_t *p = realloc(ce->seqs, cap * sizeof(*p));
		if (p == NULL) {
			ce->oom = true;
			return false;
		}
		ce->seqs = p;
		ce->cap = cap;
	}
	ce->seqs[ce->n++] = fsk_get_be64(key);
	return true;
}

fsd_err
events_erase_case(store_txn *t, const char *case_id, uint64_t keep_from, size_t *n_erased)
{
	struct case_events ce = {.case_id = case_id};
	fsd_err rc = store_kv_scan(t, &events_table, NULL, 0, NULL, 0, collect_case_event, &ce);
	if (rc == FSD_OK && ce.oom)
		rc = FSD_NOMEM;
	*n_erased = 0;
	for (size_t i = 0; rc == FSD_OK && i < ce.n; i++) {
		uint8_t seqb[8];
		const void *val;
		size_t vlen;
		fsk_put_be64(seqb, ce.seqs[i]);
		if ((rc = store_kv_get(t, &events_table, seqb, 8, &val, &vlen)) != FSD_OK)
			break;
		Fieldsync__V1__ReminderEvent *old =
			fieldsync__v1__reminder_event__unpack(NULL, vlen, val);
		if (old == NULL)
			continue;
		Fieldsync__V1__ReminderEvent ev;
		fieldsync__v1__reminder_event__init(&ev);
		ev.seq = ce.seqs[i];
		ev.scope = old->scope; /* who may see the marker (the replay's filter) */
		ev.state = FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED;
		if (ce.seqs[i] >= keep_from) { /* this erasure's own cancellation: ids, no staff */
			ev.reminder_id = old->reminder_id;
			ev.rule = old->rule;
			ev.case_id = old->case_id;
			ev.state = old->state;
			ev.emitted_at_ms = old->emitted_at_ms;
		}
		size_t len = fieldsync__v1__reminder_event__get_packed_size(&ev);
		void *out = NULL;
		rc = store_kv_reserve(t, &events_table, seqb, 8, len ? len : 1, &out);
		if (rc == FSD_OK) {
			memset(out, 0, len ? len : 1);
			fieldsync__v1__reminder_event__pack(&ev, out);
			(*n_erased)++;
		}
		fieldsync__v1__reminder_event__free_unpacked(old, NULL);
	}
	free(ce.seqs);
	return rc;
}
