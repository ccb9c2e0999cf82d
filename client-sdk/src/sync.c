/*
 * fs_sync(): one conversation with fieldsyncd over a DEALER socket
 * (PROTOCOL.md §1, §2, §4, §5).
 *
 *   Hello -> Welcome          Hello carries the device report (pending,
 *                             oldest pending edit, parked, checkpoint);
 *                             Welcome gives max_changes_per_push,
 *                             max_message_bytes and the generation: a new
 *                             one (a restored daemon) resets the checkpoint
 *                             and re-queues every current value this
 *                             device authored (generation.c, PROTOCOL.md §7)
 *                             (and the deadline table and zone, kept by
 *                             deadlines.c for fs_deadlines)
 *   push in-flight sets       change sets made by an earlier sync and never
 *                             answered, resent byte for byte (same
 *                             changeset_id: the daemon applies them once)
 *   push new sets             sdk_push_prepare() makes and stores a set
 *                             BEFORE it is sent; sdk_push_done() applies
 *                             the reply; a crash in between leaves the set
 *                             in flight for the next sync
 *   pull until !more          each page merged and checkpointed in one
 *                             transaction (sdk_pull_apply)
 *
 * With a daemon that offers issue 15's fields (Welcome.max_window,
 * protocol.md §2.1, §4.1, §5.1): Hello says the SDK reads zstd; up to
 * PUSH_WINDOW change sets are in flight at once (push_window), compressed
 * when that pays; the pull is skipped when Welcome.feed_seq is at or
 * behind the checkpoint and nothing was pushed; otherwise each PullRequest
 * asks for a window of compressed, lean pages, each applied and
 * checkpointed on its own as it arrives (the checkpoint never runs ahead
 * of the local commit). The first PullRequest goes right behind the last
 * change sets, without waiting for their answers (such a daemon answers a
 * connection's Pull after its earlier Pushes, §5.1), and the report's
 * second Hello goes out while the pages stream (its pending and parked
 * counts are after the push; its checkpoint is the one before this pull):
 * a day's sync is Hello, then one flight of pushes and pull. A daemon
 * without them gets exactly the above.
 *
 * One flight (sync_early): the store keeps what the last Welcome offered
 * with the daemon's endpoint and server key (meta "welcome", store.c).
 * A sync to that same daemon sends Hello, its first change sets (sized and
 * compressed as that Welcome allowed) and the Pull at once, and takes the
 * Welcome in among the answers (early_welcome): another generation drops
 * that Pull and pulls from 0 behind the values it requeued; a daemon
 * without the offers (rolled back) is pulled one whole page at a time; a
 * push reply with no result for a set (a daemon that read a compressed set
 * as empty) requeues the set's changes under a new changeset_id and ends
 * compressed pushes on the connection (push_settle). A first sync, or one
 * to another endpoint, waits for Welcome as above.
 *
 * The connection is conn.c's (one DEALER, CURVE from the store's
 * credential): every wait is bounded by the sync's one deadline, and
 * closing never waits. Nothing from the network is trusted: an
 * undecodable frame, a multi-frame message, a reply whose results do not
 * match the request end the sync with FS_ERR_PROTOCOL and leave the outbox
 * and in-flight sets as they were. No transaction is held
 * across a network wait, so the app keeps writing while a sync runs.
 *
 * A store with a credential talks CURVE: the server key is pinned from the
 * credential and the client key pair authenticates the tablet. A handshake
 * that fails (the daemon refused the key: revoked, never enrolled; or a
 * daemon without that server key) is seen on conn.c's socket monitor and
 * ends the sync at once instead of waiting for the timeout: with
 * FS_ERR_KEY_REFUSED when ZAP refused the key (revoked, never enrolled),
 * FS_ERR_REFUSED for any other failed handshake (and for FORBIDDEN).
 *
 * fs_sync_cancel (lists.c) sets the store's cancel flag, which the connection looks
 * at before each request and every SDK_CANCEL_POLL_MS while it waits
 * (conn.c): the sync then ends with FS_ERR_CANCELLED like any other
 * failure, so nothing is lost (a set in flight stays in flight). After
 * each committed pull page, opts->on_page hears how the change counter
 * moved (the change feed, changes.c).
 *
 * Layer: endpoints (over conn, push, pull, lists, credstore). One thread;
 * the fs_store is the caller's for the duration of the call, except
 * fs_sync_cancel, which any thread may call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "conn.h"
#include "credstore.h"
#include "deadlines.h"
#include "generation.h"
#include "lists.h"
#include "outbox.h"
#include "pull.h"
#include "push.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_PULL_LIMIT 500
#define DEFAULT_BATCH 100
#define BATCH_MAX 10000
#define PUSH_WINDOW 4 /* change sets in flight at once (push_window) */

typedef Fieldsync__V1__Envelope envelope;

typedef struct sync_run {
	fs_store *s;
	const fs_sync_opts *o;
	sdk_conn c;
	int64_t deadline; /* monotonic ms: no wait goes past it */
	fs_sync_stats st;
	fs_progress pr;
	const char *device_name; /* the credential's name: the daemon's modified_by */
	bool reported_pending;   /* the first Hello reported pending or parked edits */
	char msg[256];
	/* issue 15 (protocol.md §2.1, §5.1): what Welcome offered, 0: nothing */
	uint32_t encodings, max_window;
	uint64_t feed_seq;
	uint64_t report_rid;  /* the report's Hello sent while the pull streams; 0: none */
	bool report_answered; /* its Welcome came */
	size_t *max, *budget; /* what the latest Welcome allows (hello_welcome) */
	/* one flight (sync_early): the first Hello's id while its Welcome is
	 * still to come (0: answered, or not sent early) */
	uint64_t hello_rid;
	bool gen_changed; /* the latest Welcome named another generation */
	bool zstd_off;    /* a set went unread: no compressed push on this connection */
	const char *endpoint, *server_key; /* whose Welcome is kept */
	/* the facts to keep, written with the sync's outcome at its end (one
	 * commit: keeping them costs the first sync no fsync of its own) */
	sdk_welcome_facts welcome;
	bool welcome_set;
} sync_run;

/*
 * The pull of one sync: a PullRequest (a window of pages) in flight, sent
 * behind the last change sets (pipelined) or on its own (pull_all).
 */
typedef struct pull_state {
	uint64_t since;  /* the checkpoint: the last committed page's last_seq */
	uint64_t rid;    /* the PullRequest in flight */
	uint32_t window; /* pages it asked for */
	uint32_t got;    /* pages of it received */
	bool lean, sent, started, done;
} pull_state;

static const char *
code_name(int code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&fieldsync__v1__error__code__descriptor, code);
	return v ? v->name : "UNKNOWN";
}

/* The fs_err for an Error reply that ends the sync; msg says why. */
static fs_err
error_reply(sync_run *r, const Fieldsync__V1__Error *e)
{
	fs_err err;
	switch (e->code) {
	case FIELDSYNC__V1__ERROR__CODE__BUSY:
	case FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE:
		err = FS_ERR_BUSY;
		break;
	case FIELDSYNC__V1__ERROR__CODE__FORBIDDEN:
	case FIELDSYNC__V1__ERROR__CODE__UNSUPPORTED_PROTOCOL:
		err = FS_ERR_REFUSED;
		break;
	case FIELDSYNC__V1__ERROR__CODE__MALFORMED:
	case FIELDSYNC__V1__ERROR__CODE__INVALID:
	case FIELDSYNC__V1__ERROR__CODE__TOO_LARGE:
		err = FS_ERR_PROTOCOL; /* for a request the SDK made itself */
		break;
	default:
		err = FS_ERR_SERVER;
		break;
	}
	snprintf(r->msg, sizeof(r->msg), "daemon: %s: %.150s%s", code_name(e->code),
	         e->message ? e->message : "", e->retry_after_ms ? " (retry later)" : "");
	return err;
}

static void
progress(sync_run *r)
{
	if (r->o->progress != NULL)
		r->o->progress(r->o->progress_arg, &r->pr);
}

/* Sends Hello with the device report (how the tablet stands now). */
static fs_err
hello_send(sync_run *r, bool first, uint64_t *rid)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	Fieldsync__V1__DeviceReport rep_dev = FIELDSYNC__V1__DEVICE_REPORT__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	fs_err err;

	h.protocol = 1;
	h.replica_id = (char *)fs_store_replica_id(r->s);
	h.client = "libfieldsync/" FIELDSYNC_VERSION_STRING;
	h.accept_encoding = SDK_ENCODING_ZSTD;
	/* the device report: how this tablet stands (PROTOCOL.md §7) */
	if (sdk_device_report(r->s, &rep_dev.pending, &rep_dev.oldest_pending_ms, &rep_dev.failed,
	                      &rep_dev.last_seq) == FS_OK) {
		h.report = &rep_dev;
		if (first)
			r->reported_pending = rep_dev.pending > 0;
	}
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	err = sdk_conn_send(&r->c, &e, r->deadline);
	*rid = e.request_id;
	return err;
}

/* The push limits from a Welcome's (or a kept Welcome's) numbers. */
static void
limits_set(sync_run *r, uint64_t max_changes, uint64_t max_message_bytes)
{
	size_t max = max_changes ? (size_t)max_changes : DEFAULT_BATCH;
	*r->max = max > BATCH_MAX ? BATCH_MAX : max;
	uint64_t mb = max_message_bytes ? max_message_bytes : (uint64_t)16 << 20;
	if (mb > SDK_RECV_MAX)
		mb = SDK_RECV_MAX;
	*r->budget = (size_t)(mb - mb / 8); /* room for the envelope */
}

/* Notes what this Welcome offered for the next sync's one flight; kept
 * with the sync's outcome (sdk_sync_record). Informational: a failure only
 * costs the next sync a round trip. */
static void
welcome_keep(sync_run *r, const Fieldsync__V1__Welcome *w)
{
	sdk_welcome_facts f;
	memset(&f, 0, sizeof(f));
	f.encodings = w->encodings & SDK_ENCODING_ZSTD;
	f.max_window = w->max_window;
	f.max_changes = w->max_changes_per_push;
	f.max_message_bytes = w->max_message_bytes;
	snprintf(f.endpoint, sizeof(f.endpoint), "%s", r->endpoint);
	snprintf(f.server_key, sizeof(f.server_key), "%s", r->server_key ? r->server_key : "");
	if (w->generation != NULL && strlen(w->generation) < sizeof(f.generation))
		snprintf(f.generation, sizeof(f.generation), "%s", w->generation);
	if (strlen(r->endpoint) < sizeof(f.endpoint)) {
		r->welcome = f;
		r->welcome_set = true;
	}
}

/* Takes in the answer to Hello (frees rep): the limits, the offers of
 * issue 15, the deadline table and the generation. */
static fs_err
hello_welcome(sync_run *r, envelope *rep)
{
	fs_err err = FS_OK;

	if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR && rep->error != NULL) {
		err = error_reply(r, rep->error);
		goto out;
	}
	if (rep->body_case != FIELDSYNC__V1__ENVELOPE__BODY_WELCOME || rep->welcome == NULL) {
		err = FS_ERR_PROTOCOL;
		goto out;
	}
	/* the daemon's rule table and zone, for fs_deadlines offline; never
	 * fails the sync (a table not kept stays the old one) */
	(void)sdk_deadlines_welcome(r->s, rep->welcome);
	limits_set(r, rep->welcome->max_changes_per_push, rep->welcome->max_message_bytes);
	r->encodings = rep->welcome->encodings & SDK_ENCODING_ZSTD;
	r->max_window = rep->welcome->max_window;
	r->feed_seq = rep->welcome->feed_seq;
	/* another history than at our last sync: pull from 0, push ours again */
	bool changed = false;
	uint64_t requeued = 0;
	err = sdk_generation_adopt(r->s, rep->welcome->generation, r->device_name, &changed,
	                           &requeued);
	if (changed)
		r->st.requeued += requeued;
	r->gen_changed = changed;
	welcome_keep(r, rep->welcome);
out:
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	return err;
}

/* Hello -> Welcome, waiting for the answer; first: the sync's first Hello. */
static fs_err
hello(sync_run *r, bool first)
{
	envelope *rep = NULL;
	uint64_t rid = 0;
	fs_err err = hello_send(r, first, &rid);
	if (err == FS_OK)
		err = sdk_conn_recv(&r->c, rid, r->deadline, &rep);
	return err != FS_OK ? err : hello_welcome(r, rep);
}

/* The in-flight change set in bytes, checked; NULL when it does not decode. */
static sdk_push_request *
push_unpack(const uint8_t *bytes, size_t len)
{
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, len, bytes);
	for (size_t i = 0; req != NULL && i < req->n_changes; i++)
		if (req->changes[i] == NULL || req->changes[i]->record == NULL) {
			fieldsync__v1__push_request__free_unpacked(req, NULL);
			return NULL;
		}
	return req;
}

static fs_err push_settle(sync_run *r, uint64_t key, sdk_push_request *req, envelope *rep,
                          bool fresh_plain);

/* The PushRequest to send for req: compressed when Welcome offered it, this
 * connection has not seen a set go unread, and it pays. */
static sdk_push_request *
push_wire(sync_run *r, sdk_push_request *req, sdk_push_request *zreq, uint8_t **z)
{
	return r->encodings && !r->zstd_off && sdk_push_deflate(req, zreq, z) ? zreq : req;
}

/* Sends in-flight change set `key` and applies the answer; fresh: made by
 * this sync. */
static fs_err
push_one(sync_run *r, uint64_t key, const uint8_t *bytes, size_t len, bool fresh)
{
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
	sdk_push_request *req = push_unpack(bytes, len);
	fs_err err;

	if (req == NULL)
		return FS_ERR_CORRUPT;
	sdk_push_request zreq;
	uint8_t *z = NULL;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = push_wire(r, req, &zreq, &z);
	err = sdk_conn_call(&r->c, &e, r->deadline, &rep);
	free(z);
	if (err != FS_OK) {
		fieldsync__v1__push_request__free_unpacked(req, NULL);
		return err;
	}
	return push_settle(r, key, req, rep, fresh && z == NULL);
}

/*
 * Applies the answer rep to in-flight change set `key` (request req);
 * frees rep and req. fresh_plain: the set was made by this sync and sent
 * uncompressed.
 *
 * A PushReply with no result for a set of changes means the daemon did not
 * read them: a daemon rolled back to a release without compressed pushes
 * reads changes_zstd as an empty set, applies that and answers any resend
 * of the same changeset_id with the same empty reply. The set's changes
 * are requeued under a new changeset_id (sdk_push_requeue) and this
 * connection pushes uncompressed from then on. A set this sync made and
 * sent uncompressed cannot have been misread: requeued all the same, it
 * ends the sync with FS_ERR_PROTOCOL (so a broken daemon is no loop).
 */
static fs_err
push_settle(sync_run *r, uint64_t key, sdk_push_request *req, envelope *rep, bool fresh_plain)
{
	sdk_push_outcome oc = {0, 0, 0, 0};
	fs_err err;

	if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY && rep->push_reply != NULL &&
	    rep->push_reply->n_results == 0 && req->n_changes > 0) {
		r->zstd_off = true;
		if ((err = sdk_push_requeue(r->s, key)) == FS_OK && fresh_plain) {
			err = FS_ERR_PROTOCOL;
			snprintf(r->msg, sizeof(r->msg),
			         "the daemon read none of the changes of a change set");
		}
		goto out;
	}
	if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR && rep->error != NULL) {
		int code = rep->error->code;
		if (code == FIELDSYNC__V1__ERROR__CODE__INVALID ||
		    code == FIELDSYNC__V1__ERROR__CODE__TOO_LARGE ||
		    code == FIELDSYNC__V1__ERROR__CODE__MALFORMED) {
			/* refused as a whole, nothing applied: settle and go on */
			err = sdk_push_refused(r->s, key, req, code_name(code), rep->error->message,
			                       &oc);
		} else {
			err = error_reply(r, rep->error);
		}
		goto counted;
	}
	if (rep->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY || rep->push_reply == NULL ||
	    rep->push_reply->n_results != req->n_changes ||
	    (rep->push_reply->changeset_id[0] != '\0' &&
	     strcmp(rep->push_reply->changeset_id, req->changeset_id) != 0)) {
		err = FS_ERR_PROTOCOL;
		snprintf(r->msg, sizeof(r->msg), "the push reply does not match the change set");
		goto out;
	}
	for (size_t i = 0; i < rep->push_reply->n_results; i++)
		if (rep->push_reply->results[i] == NULL) {
			err = FS_ERR_PROTOCOL;
			goto out;
		}
	err = sdk_push_done(r->s, key, req, rep->push_reply, &oc);
	r->st.changesets++;
counted:
	r->st.pushed += oc.acked;
	r->st.conflicts += oc.conflicts;
	r->st.failed += oc.parked;
	r->pr.done += oc.acked + oc.parked;
	if (r->pr.done > r->pr.total)
		r->pr.total = r->pr.done;
	if (err == FS_OK)
		progress(r);
out:
	if (rep != NULL)
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	fieldsync__v1__push_request__free_unpacked(req, NULL);
	return err;
}

static fs_err
push_all(sync_run *r, size_t max, size_t budget)
{
	uint64_t key = 0;
	uint8_t *bytes = NULL;
	size_t len = 0;
	fs_err err;

	r->pr.phase = FS_SYNC_PUSH;
	if ((err = sdk_pending_count(r->s, &r->pr.total)) != FS_OK)
		return err;
	progress(r);
	/* first what an earlier sync sent and never heard back about */
	for (;;) {
		err = sdk_inflight_next(r->s, &key, &bytes, &len);
		if (err == FS_ERR_NOT_FOUND)
			break;
		if (err != FS_OK)
			return err;
		err = push_one(r, key, bytes, len, false);
		free(bytes);
		if (err != FS_OK)
			return err;
	}
	for (;;) {
		err = sdk_push_prepare(r->s, max, budget, &key, &bytes, &len);
		if (err == FS_ERR_NOT_FOUND)
			return FS_OK;
		if (err != FS_OK)
			return err;
		err = push_one(r, key, bytes, len, true);
		free(bytes);
		if (err != FS_OK)
			return err;
	}
}

static fs_err pull_send(sync_run *r, pull_state *ps);
static fs_err pull_on_reply(sync_run *r, pull_state *ps, envelope *rep);
static fs_err pull_begin(sync_run *r, pull_state *ps);

/*
 * The Welcome of a Hello sent in one flight with change sets and a Pull
 * (sync_early; frees rep). A daemon reads a connection's requests in order
 * and answers Hello at once, so it comes before any other answer. Then:
 * - another generation (hello_welcome has moved the checkpoint to 0 and
 *   requeued this device's values, as in a sync that waited): a Pull sent
 *   already asked from the old checkpoint; it is dropped (its pages carry
 *   its request id and are discarded unread) and the pull starts again
 *   from 0 behind the change sets still to come, as today's rule wants;
 * - a daemon without §5.1 (rolled back): the Pull sent asked for a window
 *   of lean pages, which it does not know: it answers one page at a time,
 *   whole; the pull goes on that way;
 * - a pull not sent yet is begun again from what this Welcome offers.
 */
static fs_err
early_welcome(sync_run *r, pull_state *ps, envelope *rep)
{
	r->hello_rid = 0;
	fs_err err = hello_welcome(r, rep);
	if (err != FS_OK)
		return err;
	if (!ps->sent || r->gen_changed)
		return pull_begin(r, ps);
	if (r->max_window == 0) {
		ps->window = 1;
		ps->lean = false;
	} else if (ps->window > r->max_window) {
		ps->window = r->max_window;
	}
	return FS_OK;
}

/*
 * push_all with a window of change sets in flight (issue 15), for a daemon
 * that speaks protocol.md §5.1: up to PUSH_WINDOW PushRequests are sent
 * before the first answer is awaited; each answer settles its own set
 * (sets are made and stored before they are sent, and the daemon answers
 * a set it already applied with its stored reply, so a cut connection
 * re-sends them safely in the next sync).
 *
 * Once the last set is made, the PullRequest (ps) goes right behind the
 * sets still in flight: such a daemon answers a Pull only after the
 * Pushes the same connection sent before it (§5.1), so the pull covers
 * them and costs no round trip of its own. Sets made after that (changes
 * a refused set requeued, edits the app made meanwhile) follow it; the
 * pull does not cover them. Pull pages that arrive
 * while sets are in flight are taken in as they come (pull_on_reply).
 */
static fs_err
push_window(sync_run *r, pull_state *ps)
{
	struct {
		uint64_t key, rid;
		sdk_push_request *req;
		bool fresh_plain;
	} w[PUSH_WINDOW];
	uint64_t key = 0, rids[PUSH_WINDOW + 2];
	size_t n = 0;
	bool resend = true, made_all = false;
	fs_err err;

	r->pr.phase = FS_SYNC_PUSH;
	if ((err = sdk_pending_count(r->s, &r->pr.total)) != FS_OK)
		return err;
	progress(r);
	for (;;) {
		while (n < PUSH_WINDOW && !made_all) {
			uint8_t *bytes = NULL;
			size_t len = 0;
			/* first what an earlier sync sent and never heard back about */
			err = resend ? sdk_inflight_next(r->s, &key, &bytes, &len)
			             : sdk_push_prepare(r->s, *r->max, *r->budget, &key, &bytes,
			                                &len);
			if (err == FS_ERR_NOT_FOUND) {
				made_all = !resend;
				resend = false;
				continue;
			}
			if (err != FS_OK)
				goto out;
			w[n].req = push_unpack(bytes, len);
			free(bytes);
			if (w[n].req == NULL) {
				err = FS_ERR_CORRUPT;
				goto out;
			}
			envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
			sdk_push_request zreq;
			uint8_t *z = NULL;
			e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
			e.push = push_wire(r, w[n].req, &zreq, &z);
			w[n].key = key;
			w[n].fresh_plain = !resend && z == NULL;
			n++;
			err = sdk_conn_send(&r->c, &e, r->deadline);
			free(z);
			if (err != FS_OK)
				goto out;
			w[n - 1].rid = rids[n - 1] = e.request_id;
		}
		if (n == 0)
			return FS_OK;
		if (made_all && !ps->sent && (err = pull_send(r, ps)) != FS_OK)
			goto out;
		envelope *rep = NULL;
		size_t nids = n;
		if (ps->sent && !ps->done)
			rids[nids++] = ps->rid;
		if (r->hello_rid != 0)
			rids[nids++] = r->hello_rid;
		if ((err = sdk_conn_recv_any(&r->c, rids, nids, r->deadline, &rep)) != FS_OK)
			goto out;
		if (r->hello_rid != 0) { /* sent in one flight: Welcome comes first */
			if (rep->request_id != r->hello_rid && rep->request_id != 0) {
				fieldsync__v1__envelope__free_unpacked(rep, NULL);
				snprintf(r->msg, sizeof(r->msg), "an answer came before Welcome");
				err = FS_ERR_PROTOCOL;
				goto out;
			}
			if ((err = early_welcome(r, ps, rep)) != FS_OK)
				goto out;
			made_all = false; /* another generation requeued values */
			continue;
		}
		if (ps->sent && rep->request_id == ps->rid) {
			if ((err = pull_on_reply(r, ps, rep)) != FS_OK)
				goto out;
			continue;
		}
		size_t i = 0;
		while (i < n && w[i].rid != rep->request_id)
			i++;
		if (i == n) { /* an Error for no request in particular */
			err = rep->error != NULL ? error_reply(r, rep->error) : FS_ERR_PROTOCOL;
			fieldsync__v1__envelope__free_unpacked(rep, NULL);
			goto out;
		}
		err = push_settle(r, w[i].key, w[i].req, rep, w[i].fresh_plain);
		w[i] = w[--n];
		rids[i] = rids[n];
		if (err != FS_OK)
			goto out;
		/* a refused set may have requeued its changes (and the app may have
		 * edited meanwhile): look again; what is made now goes behind the
		 * pull, which does not wait for it */
		made_all = false;
	}
out:
	for (size_t i = 0; i < n; i++)
		fieldsync__v1__push_request__free_unpacked(w[i].req, NULL);
	return err;
}

/*
 * One page of the feed: decoded (a compressed or lean page made whole),
 * checked, applied and checkpointed in one local commit, then *since
 * moves (never ahead of the commit). *more: the feed has more.
 */
static fs_err
pull_page(sync_run *r, envelope *rep, bool lean, uint64_t *since, bool *more)
{
	uint64_t applied = 0, from = 0, to = 0, refused = 0;
	fs_err err;

	*more = false;
	if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR && rep->error != NULL)
		return error_reply(r, rep->error);
	if (rep->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY || rep->pull_reply == NULL)
		return FS_ERR_PROTOCOL;
	Fieldsync__V1__PullReply *p = rep->pull_reply;
	if (p->more && p->last_seq <= *since) {
		snprintf(r->msg, sizeof(r->msg), "the feed did not advance");
		return FS_ERR_PROTOCOL; /* "more" without progress would loop forever */
	}
	if (p->records_zstd.len != 0 && r->encodings == 0)
		return FS_ERR_PROTOCOL; /* never asked for */
	if ((err = sdk_page_inflate(p, SDK_PAGE_RAW_MAX)) != FS_OK) {
		snprintf(r->msg, sizeof(r->msg),
		         "a compressed page does not decode within %llu bytes",
		         (unsigned long long)SDK_PAGE_RAW_MAX);
		return err;
	}
	if (lean && (err = sdk_page_unlean(p)) != FS_OK)
		return err;
	if ((err = sdk_pull_apply_checked(r->s, p, &applied, &from, &to, &refused)) != FS_OK)
		return err;
	r->st.refused += refused; /* strict input: named in fs_last_error_detail() */
	if (r->o->on_page != NULL)
		r->o->on_page(r->o->on_page_arg, from, to);
	*more = p->more;
	r->st.pulled += p->n_records;
	r->pr.done += p->n_records;
	if (p->last_seq > *since)
		*since = p->last_seq;
	progress(r);
	return FS_OK;
}

/* Sends the PullRequest for the next window from ps->since. */
static fs_err
pull_send(sync_run *r, pull_state *ps)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	fs_err err;

	pr.since_seq = ps->since;
	pr.limit = r->o->pull_limit ? r->o->pull_limit : DEFAULT_PULL_LIMIT;
	pr.window = ps->window > 1 ? ps->window : 0;
	pr.encoding = r->encodings;
	pr.lean = ps->lean;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	err = sdk_conn_send(&r->c, &e, r->deadline);
	ps->rid = e.request_id;
	ps->got = 0;
	ps->sent = true;
	return err;
}

/* Prepares the pull from the checkpoint. Streaming (§5.1): windows of 8,
 * 16, ... pages up to Welcome.max_window. */
static fs_err
pull_begin(sync_run *r, pull_state *ps)
{
	memset(ps, 0, sizeof(*ps));
	ps->window = r->max_window > 1 ? (r->max_window < 8 ? r->max_window : 8) : 1;
	ps->lean = r->max_window != 0;
	return sdk_checkpoint_get(r->s, &ps->since);
}

/* One page of the pull in flight (frees rep); asks for the next window
 * when this one is over and the feed has more; ps->done at the end. */
static fs_err
pull_on_reply(sync_run *r, pull_state *ps, envelope *rep)
{
	bool more = false;
	if (!ps->started) {
		ps->started = true;
		r->pr.phase = FS_SYNC_PULL;
		r->pr.done = 0;
		r->pr.total = 0;
	}
	fs_err err = pull_page(r, rep, ps->lean, &ps->since, &more);
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	if (err != FS_OK)
		return err;
	if (!more) {
		ps->done = true;
		return FS_OK;
	}
	if (++ps->got < ps->window)
		return FS_OK;
	if (ps->window < r->max_window)
		ps->window = ps->window * 2 < r->max_window ? ps->window * 2 : r->max_window;
	return pull_send(r, ps);
}

/*
 * The pull, to its end: sent here unless push_window sent it behind the
 * last change sets. While it streams, the report's Hello goes out once the
 * pushes are settled (its Welcome is read among the pages, so the report
 * costs no round trip of its own).
 */
static fs_err
pull_all(sync_run *r, pull_state *ps, bool pushed)
{
	fs_err err;

	if (!ps->sent) {
		r->pr.phase = FS_SYNC_PULL;
		r->pr.done = 0;
		r->pr.total = 0;
		progress(r);
		/* Up to date already (§2.1): Welcome's feed_seq is at or behind the
		 * checkpoint and this sync pushed nothing, so a pull would be empty. */
		if (r->feed_seq != 0 && ps->since >= r->feed_seq && !pushed)
			return FS_OK;
		if ((err = pull_send(r, ps)) != FS_OK)
			return err;
	}
	while (!ps->done) {
		envelope *rep = NULL;
		if (r->reported_pending && r->report_rid == 0 && r->max_window != 0 &&
		    (err = hello_send(r, false, &r->report_rid)) != FS_OK)
			return err;
		uint64_t ids[2] = {ps->rid, r->report_rid};
		bool report = r->report_rid != 0 && !r->report_answered;
		if ((err = sdk_conn_recv_any(&r->c, ids, report ? 2 : 1, r->deadline, &rep)) !=
		    FS_OK)
			return err;
		if (report && rep->request_id == r->report_rid) {
			r->report_answered = true;
			(void)hello_welcome(r, rep); /* informational, as report_hello */
			continue;
		}
		if ((err = pull_on_reply(r, ps, rep)) != FS_OK)
			return err;
	}
	return FS_OK;
}

/* The report in the first Hello said what was pending before the push:
 * tell the daemon how the tablet stands now. Its Welcome may be on its way
 * already (pull_all); otherwise one more round trip. Informational: a
 * failure changes nothing. */
static void
report_hello(sync_run *r)
{
	envelope *rep = NULL;
	if (!r->reported_pending || r->report_answered)
		return;
	if (r->report_rid == 0) {
		(void)hello(r, false);
		return;
	}
	if (sdk_conn_recv(&r->c, r->report_rid, r->deadline, &rep) == FS_OK)
		(void)hello_welcome(r, rep);
}

/*
 * Hello and the push. With a Welcome kept from this same daemon (endpoint
 * and server key; sdk_welcome_load) that offered §5.1, Hello, the first
 * change sets (sized, and compressed, as that Welcome allowed) and the
 * Pull go out in one flight, without waiting for Welcome (early_welcome
 * takes it in among the answers). Without one (a first sync, another
 * daemon, an older one): Hello -> Welcome, then the push, as before.
 */
static fs_err
sync_early(sync_run *r, pull_state *ps)
{
	sdk_welcome_facts f;
	fs_err err;

	if (sdk_welcome_load(r->s, r->endpoint, r->server_key, &f) != FS_OK || f.max_window == 0) {
		if ((err = hello(r, true)) != FS_OK || (err = pull_begin(r, ps)) != FS_OK)
			return err;
		return r->max_window != 0 ? push_window(r, ps) : push_all(r, *r->max, *r->budget);
	}
	limits_set(r, f.max_changes, f.max_message_bytes);
	r->encodings = f.encodings & SDK_ENCODING_ZSTD;
	r->max_window = f.max_window;
	if ((err = hello_send(r, true, &r->hello_rid)) != FS_OK ||
	    (err = pull_begin(r, ps)) != FS_OK || (err = push_window(r, ps)) != FS_OK)
		return err;
	if (r->hello_rid == 0)
		return FS_OK; /* Welcome came among the answers */
	/* nothing was pushed: wait for Welcome, then push what it requeued */
	envelope *rep = NULL;
	if ((err = sdk_conn_recv(&r->c, r->hello_rid, r->deadline, &rep)) != FS_OK ||
	    (err = early_welcome(r, ps, rep)) != FS_OK)
		return err;
	return r->max_window != 0 ? push_window(r, ps) : push_all(r, *r->max, *r->budget);
}

fs_err
fs_sync(fs_store *s, const fs_sync_opts *o, fs_sync_stats *stats)
{
	sync_run r;
	pull_state ps;
	size_t max = DEFAULT_BATCH, budget = 0;
	fs_err err;
	fs_credential *cred = NULL;
	const char *endpoint;
	sdk_curve_keys keys = {0};

	if (s == NULL || o == NULL)
		return FS_ERR_INVALID;
	err = sdk_store_credential_secret(s, &cred);
	if (err != FS_OK && err != FS_ERR_NOT_FOUND)
		return err;
	endpoint = o->endpoint != NULL ? o->endpoint : cred != NULL ? cred->endpoint : NULL;
	if (endpoint == NULL) {
		fs_credential_free(&cred);
		return FS_ERR_INVALID;
	}
	const atomic_bool *cancel = sdk_sync_enter(s);
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.o = o;
	r.device_name = cred != NULL ? cred->name : NULL;
	r.max = &max;
	r.budget = &budget;
	r.deadline = sdk_mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
	r.endpoint = endpoint;
	r.server_key = cred != NULL ? cred->server_public_key : NULL;
	r.pr.phase = FS_SYNC_CONNECT;
	err = cred == NULL ? FS_OK
	                   : sdk_curve_keys_set(&keys, cred->server_public_key,
	                                        cred->client_public_key, cred->client_secret_key);
	if (err == FS_OK)
		err = sdk_conn_open(&r.c, NULL, endpoint, &keys, true);
	r.c.cancel = cancel;
	sdk_curve_keys_wipe(&keys);
	if (err != FS_OK) {
		snprintf(r.msg, sizeof(r.msg), "%s",
		         err == FS_ERR_NETWORK && cred != NULL && !sdk_curve_supported()
		                 ? "this libzmq has no CURVE support; refusing to sync in clear"
		                 : "cannot connect to the endpoint (bad address?)");
		goto out;
	}
	progress(&r);
	if ((err = sync_early(&r, &ps)) != FS_OK)
		goto out;
	if ((err = pull_all(&r, &ps,
	                    r.st.changesets != 0 || r.st.pushed != 0 || r.st.failed != 0)) != FS_OK)
		goto out;
	/* Changes the daemon DEFERRED (PROTOCOL.md §3: history it does not hold
	 * yet) are pushed once more now that the pull is in, lock-step (a rare
	 * path); deferred again, they stay queued for the next sync's pull. */
	uint64_t undeferred = 0;
	if ((err = sdk_outbox_undefer(s, &undeferred)) == FS_OK && undeferred > 0)
		err = push_all(&r, max, budget);
	if (err != FS_OK)
		goto out;
	report_hello(&r);
out:
	sdk_conn_close(&r.c);
	fs_credential_free(&cred); /* wipes the secret key */
	if (err == FS_ERR_REFUSED && sdk_conn_key_refused(&r.c)) {
		err = FS_ERR_KEY_REFUSED;
		snprintf(r.msg, sizeof(r.msg),
		         "the daemon refused this device's key in the CURVE "
		         "handshake (revoked, or not enrolled there)");
	} else if (err == FS_ERR_REFUSED && sdk_conn_handshake_failed(&r.c))
		snprintf(r.msg, sizeof(r.msg),
		         "the CURVE handshake failed: the endpoint does not hold "
		         "the server key the credential names, or does not "
		         "speak CURVE");
	if (err == FS_ERR_CANCELLED)
		snprintf(r.msg, sizeof(r.msg), "cancelled by fs_sync_cancel()");
	if (err != FS_OK && r.msg[0] == '\0')
		snprintf(r.msg, sizeof(r.msg), "%s", fs_strerror(err));
	/* the outcome is informational: a failure to record it changes nothing */
	(void)sdk_sync_record(s, err, err == FS_OK ? NULL : r.msg,
	                      r.welcome_set ? &r.welcome : NULL);
	if (stats != NULL)
		*stats = r.st;
	sdk_sync_leave(s);
	return err;
}
