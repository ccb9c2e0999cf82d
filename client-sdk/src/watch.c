/*
 * The reminder watcher: PUB/SUB for speed, Replay for completeness.
 *
 * `cursor` is the highest seq examined: every event up to it was delivered
 * or filtered out. An event from the SUB socket is taken only when its seq is
 * cursor + 1; a larger one reveals a gap, and the watcher then replays from
 * the cursor (the event itself comes back with the replay, since every event
 * is stored before it is published). Smaller ones are duplicates. When the
 * SUB socket stays quiet the watcher asks Replay anyway, now and then, so a
 * tail lost to a restart of the daemon is found without waiting for the next
 * event. With a rule or scope filter the PUB only carries matching events,
 * so gaps are normal and are filled (and filtered) the same way.
 * With CURVE keys both sockets are CURVE clients with the same key pair;
 * the keys are kept (binary) for the DEALER's reconnects and wiped at close.
 * The DEALER is conn.c's connection, on the watcher's context; a Replay
 * that gets no answer reopens it, so a late answer is never mistaken.
 *
 * Cursor check: every Replay asks from cursor - 1, so the daemon's answer
 * covers the event at the cursor itself (dropped here as already seen):
 * its last_seq is then >= cursor whenever the daemon holds that event, even
 * one this peer may not see. A last_seq below the cursor means the daemon
 * lost events the caller already had (a restore from an older backup, or
 * another daemon): fs_watcher_next says FS_ERR_NOT_FOUND from then on and
 * never delivers a reused seq as if it were new. The same probe, with
 * limit 1, finds the daemon's last event by bisection
 * (fs_watcher_daemon_last_seq).
 *
 * Layer: endpoints (over conn). A watcher belongs to one thread (its
 * sockets do); fs_watcher_close frees it and wipes its keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "conn.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/sync.pb-c.h"

#define REPLAY_PAGE 1000
#define QUIET_CHECK_MS 2000
#define CALL_TIMEOUT_MS 5000

typedef Fieldsync__V1__ReminderEvent event_t;

struct fs_watcher {
	void *ctx, *sub;
	sdk_conn dealer; /* Replay, on the watcher's context */
	char *sync_endpoint;
	char *rule, *scope;
	uint64_t cursor;
	/* events fetched by replay, waiting to be delivered */
	event_t **queue;
	size_t q_head, q_len, q_cap;
	Fieldsync__V1__Envelope *page; /* owns the queued events */
	event_t *current;              /* the event last handed out, from SUB */
	bool current_owned;
	bool catch_up;
	bool ahead; /* the daemon does not hold the event at the cursor */
	int64_t last_check_ms;
	fs_reminder out;
	sdk_curve_keys keys; /* kept for the DEALER's reconnects; wiped at close */
};

static const char *const state_names[] = {"SCHEDULED", "WARNING", "DUE",
                                          "OVERDUE",   "MET",     "CANCELLED"};

static bool
matches(const fs_watcher *w, const event_t *e)
{
	return (w->rule == NULL || strcmp(w->rule, e->rule) == 0) &&
	       (w->scope == NULL || strcmp(w->scope, e->scope) == 0);
}

static void
release_current(fs_watcher *w)
{
	if (w->current != NULL && w->current_owned)
		fieldsync__v1__reminder_event__free_unpacked(w->current, NULL);
	w->current = NULL;
	w->current_owned = false;
}

static void
drop_page(fs_watcher *w)
{
	if (w->page != NULL)
		fieldsync__v1__envelope__free_unpacked(w->page, NULL);
	w->page = NULL;
	w->q_head = w->q_len = 0;
}

/* A fresh DEALER for Replay (after a call without an answer, so a late
 * answer to the old one can never be taken for the next). */
static fs_err
dealer_open(fs_watcher *w)
{
	sdk_conn_close(&w->dealer);
	memset(&w->dealer, 0, sizeof(w->dealer));
	return sdk_conn_open(&w->dealer, w->ctx, w->sync_endpoint, &w->keys, false);
}

/*
 * The daemon's answer to a Replay from before its oldest kept event (event
 * retention, docs/reminders.md): Error INVALID "TRIMMED: events before seq N
 * ...". Returns N, or 0 when r is not that answer.
 */
static uint64_t
trimmed_before(const Fieldsync__V1__Envelope *r)
{
	static const char prefix[] = "TRIMMED: events before seq ";
	if (r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_ERROR || r->error == NULL ||
	    r->error->code != FIELDSYNC__V1__ERROR__CODE__INVALID || r->error->message == NULL ||
	    strncmp(r->error->message, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	const char *p = r->error->message + sizeof(prefix) - 1;
	uint64_t n = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	return n;
}

static fs_err replay_from(fs_watcher *w, uint64_t since, int timeout_ms);

/*
 * One Replay round trip from the cursor; fills the queue with matches. It
 * asks from cursor - 1 (the check above). When retention trimmed only
 * events the watcher already had, it asks again from the cursor; when it
 * trimmed events after the cursor, they are lost to this watcher: the
 * cursor moves to the oldest kept event - 1 and the caller is told
 * FS_ERR_TRIMMED once.
 */
static fs_err
replay(fs_watcher *w, int timeout_ms)
{
	return replay_from(w, w->cursor > 0 ? w->cursor - 1 : 0, timeout_ms);
}

static fs_err
replay_from(fs_watcher *w, uint64_t since, int timeout_ms)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *r = NULL;
	fs_err err;

	rr.since_seq = since;
	rr.limit = REPLAY_PAGE;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	err = sdk_conn_call(&w->dealer, &e, sdk_mono_ms() + timeout_ms, &r);
	if (err == FS_ERR_NOMEM)
		return err;
	if (err == FS_ERR_REFUSED) { /* the daemon refused our key */
		dealer_open(w);
		return err;
	}
	if (err != FS_OK || r->request_id != e.request_id) {
		/* No answer (or only an unaddressed Error, or garbage): the daemon
		 * is down or slow. Start afresh next time. */
		if (r != NULL)
			fieldsync__v1__envelope__free_unpacked(r, NULL);
		dealer_open(w);
		return FS_ERR_TIMEOUT;
	}
	uint64_t oldest = trimmed_before(r);
	if (oldest > 0) {
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (oldest - 1 <= w->cursor) /* nothing after the cursor is gone */
			return since < w->cursor ? replay_from(w, w->cursor, timeout_ms)
			                         : FS_ERR_PROTOCOL;
		drop_page(w);
		w->cursor = oldest - 1;
		w->catch_up = true;
		return FS_ERR_TRIMMED;
	}
	if (r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY) {
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		return FS_ERR_PROTOCOL;
	}
	if (since < w->cursor && w->cursor > 0 && r->replay_reply->last_seq < w->cursor) {
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		w->ahead = true;
		return FS_ERR_NOT_FOUND;
	}
	drop_page(w);
	w->page = r;
	Fieldsync__V1__ReplayReply *rp = r->replay_reply;
	if (rp->n_events > w->q_cap) {
		event_t **q = realloc(w->queue, rp->n_events * sizeof(*q));
		if (q == NULL)
			return FS_ERR_NOMEM;
		w->queue = q;
		w->q_cap = rp->n_events;
	}
	for (size_t i = 0; i < rp->n_events; i++)
		if (rp->events[i]->seq > w->cursor)
			w->queue[w->q_len++] = rp->events[i];
	if (w->q_len == 0 && rp->last_seq > w->cursor)
		w->cursor = rp->last_seq; /* nothing there for us */
	w->catch_up = rp->more;
	w->last_check_ms = sdk_mono_ms();
	return FS_OK;
}

fs_err
fs_watcher_open(const fs_watch_opts *o, fs_watcher **out)
{
	fs_watcher *w = calloc(1, sizeof(*w));
	char prefix[256];
	fs_err err = FS_ERR_NOMEM;

	if (w == NULL)
		return FS_ERR_NOMEM;
	if (o == NULL || o->sync_endpoint == NULL || o->reminder_endpoint == NULL) {
		err = FS_ERR_INVALID;
		goto fail;
	}
	if (o->curve_server_key != NULL || o->curve_public_key != NULL ||
	    o->curve_secret_key != NULL) {
		/* all three, valid, and a pair that belongs together; never clear */
		err = sdk_curve_keys_set(&w->keys, o->curve_server_key, o->curve_public_key,
		                         o->curve_secret_key);
		if (err != FS_OK)
			goto fail;
		err = FS_ERR_NOMEM;
	}
	w->cursor = o->since_seq;
	w->catch_up = true; /* first, everything after since_seq */
	w->sync_endpoint = strdup(o->sync_endpoint);
	w->rule = o->rule ? strdup(o->rule) : NULL;
	w->scope = o->scope ? strdup(o->scope) : NULL;
	w->ctx = zmq_ctx_new();
	if (w->sync_endpoint == NULL || w->ctx == NULL || (o->rule && !w->rule) ||
	    (o->scope && !w->scope))
		goto fail;
	w->sub = zmq_socket(w->ctx, ZMQ_SUB);
	if (w->sub == NULL)
		goto fail;
	int zero = 0;
	zmq_setsockopt(w->sub, ZMQ_LINGER, &zero, sizeof(zero));
	if (o->rule != NULL && o->scope != NULL)
		snprintf(prefix, sizeof(prefix), "reminder/%s/%s", o->rule, o->scope);
	else if (o->rule != NULL)
		snprintf(prefix, sizeof(prefix), "reminder/%s/", o->rule);
	else
		snprintf(prefix, sizeof(prefix), "reminder/");
	zmq_setsockopt(w->sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
	err = FS_ERR_NETWORK;
	if (!sdk_curve_apply(w->sub, &w->keys) || zmq_connect(w->sub, o->reminder_endpoint) != 0)
		goto fail;
	if ((err = dealer_open(w)) != FS_OK)
		goto fail;
	*out = w;
	return FS_OK;
fail:
	fs_watcher_close(&w);
	return err;
}

static const fs_reminder *
deliver(fs_watcher *w, event_t *e)
{
	w->cursor = e->seq;
	w->out.seq = e->seq;
	w->out.reminder_id = e->reminder_id;
	w->out.rule = e->rule;
	w->out.scope = e->scope;
	w->out.case_id = e->case_id;
	w->out.contact_person = e->contact_person;
	w->out.state = (unsigned)e->state < 6 ? state_names[e->state] : "UNKNOWN";
	w->out.due_at_ms = e->due_at_ms;
	w->out.emitted_at_ms = e->emitted_at_ms;
	return &w->out;
}

/* Reads one event from SUB (NULL when none or garbage). Caller frees. */
static event_t *
sub_read(fs_watcher *w)
{
	zmq_msg_t topic, body;
	int more = 0;
	size_t ml = sizeof(more);
	event_t *e = NULL;
	zmq_msg_init(&topic);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&topic, w->sub, ZMQ_DONTWAIT) < 0)
		goto out;
	zmq_getsockopt(w->sub, ZMQ_RCVMORE, &more, &ml);
	if (!more || zmq_msg_recv(&body, w->sub, 0) < 0)
		goto out;
	e = fieldsync__v1__reminder_event__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
	sdk_drain_frames(w->sub); /* any extra frames of a malformed message */
out:
	zmq_msg_close(&topic);
	zmq_msg_close(&body);
	return e;
}

fs_err
fs_watcher_next(fs_watcher *w, int timeout_ms, const fs_reminder **ev)
{
	int64_t deadline = sdk_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	release_current(w);
	if (w->ahead)
		return FS_ERR_NOT_FOUND;
	for (;;) {
		/* 1. What replay already brought. */
		while (w->q_head < w->q_len) {
			event_t *e = w->queue[w->q_head++];
			if (e->seq <= w->cursor)
				continue;
			w->cursor = e->seq;
			if (matches(w, e)) {
				*ev = deliver(w, e);
				return FS_OK;
			}
		}
		int64_t now = sdk_mono_ms();
		int64_t left = deadline - now;
		/* 2. A gap to fill, or a quiet spell to check. */
		if (w->catch_up || now - w->last_check_ms >= QUIET_CHECK_MS) {
			w->last_check_ms = now;
			fs_err err =
				replay(w, left > CALL_TIMEOUT_MS ? CALL_TIMEOUT_MS
			                                         : (left > 100 ? (int)left : 100));
			if (err == FS_ERR_PROTOCOL || err == FS_ERR_NOMEM ||
			    err == FS_ERR_NOT_FOUND || err == FS_ERR_REFUSED ||
			    err == FS_ERR_TRIMMED)
				return err;
			if (err == FS_OK)
				continue;
		}
		if (left <= 0)
			return FS_ERR_TIMEOUT;
		/* 3. The live stream. */
		long wait = left < QUIET_CHECK_MS ? (long)left : QUIET_CHECK_MS;
		zmq_pollitem_t it = {w->sub, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, wait) <= 0)
			continue;
		event_t *e = sub_read(w);
		if (e == NULL)
			continue;
		if (e->seq == w->cursor + 1) {
			if (matches(w, e)) {
				w->current = e;
				w->current_owned = true;
				w->last_check_ms = sdk_mono_ms();
				*ev = deliver(w, e);
				return FS_OK;
			}
			w->cursor = e->seq;
		} else if (e->seq > w->cursor + 1) {
			w->catch_up = true; /* replay brings this one too */
		}
		fieldsync__v1__reminder_event__free_unpacked(e, NULL);
	}
}

uint64_t
fs_watcher_cursor(const fs_watcher *w)
{
	return w->cursor;
}

/* Does the daemon hold event k (k >= 1)? One Replay from k - 1, limit 1. */
static fs_err
probe(fs_watcher *w, uint64_t k, int64_t deadline, bool *has)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *r = NULL;
	rr.since_seq = k - 1;
	rr.limit = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	fs_err err = sdk_conn_call(&w->dealer, &e, deadline, &r);
	if (err == FS_OK && r->request_id == e.request_id && trimmed_before(r) > 0) {
		*has = true; /* k was kept once and has been trimmed since: k <= the last */
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		return FS_OK;
	}
	if (err == FS_OK && r->request_id == e.request_id &&
	    r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY) {
		*has = r->replay_reply->last_seq >= k;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		return FS_OK;
	}
	if (r != NULL) {
		err = r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ? FS_ERR_BUSY
		                                                          : FS_ERR_PROTOCOL;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	if (err != FS_ERR_NOMEM && err != FS_ERR_PROTOCOL)
		dealer_open(w); /* never mistake a late answer for the next one */
	return err;
}

fs_err
fs_watcher_daemon_last_seq(fs_watcher *w, int timeout_ms, uint64_t *out)
{
	int64_t deadline = sdk_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	uint64_t lo = 0, hi = w->cursor > 0 ? w->cursor : 1; /* lo is held; hi is probed */
	bool has = false;
	fs_err err;
	/* grow hi until the daemon lacks it, then bisect (lo held, hi not) */
	for (;;) {
		if ((err = probe(w, hi, deadline, &has)) != FS_OK)
			return err;
		if (!has)
			break;
		lo = hi;
		if (hi > UINT64_MAX / 2) {
			*out = hi;
			return FS_OK;
		}
		hi *= 2;
	}
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((err = probe(w, mid, deadline, &has)) != FS_OK)
			return err;
		if (has)
			lo = mid;
		else
			hi = mid;
	}
	*out = lo;
	return FS_OK;
}

void
fs_watcher_close(fs_watcher **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	fs_watcher *w = *wp;
	release_current(w);
	drop_page(w);
	free(w->queue);
	if (w->sub != NULL)
		zmq_close(w->sub);
	sdk_conn_close(&w->dealer);
	if (w->ctx != NULL)
		zmq_ctx_term(w->ctx);
	free(w->sync_endpoint);
	free(w->rule);
	free(w->scope);
	sdk_curve_keys_wipe(&w->keys);
	free(w);
	*wp = NULL;
}
