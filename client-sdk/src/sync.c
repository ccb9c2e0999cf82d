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
 * of the local commit). A daemon without them gets exactly the above.
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
} sync_run;

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

static fs_err
hello(sync_run *r, size_t *max, size_t *budget)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	Fieldsync__V1__DeviceReport rep_dev = FIELDSYNC__V1__DEVICE_REPORT__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
	fs_err err;

	h.protocol = 1;
	h.replica_id = (char *)fs_store_replica_id(r->s);
	h.client = "libfieldsync/" FIELDSYNC_VERSION_STRING;
	h.accept_encoding = SDK_ENCODING_ZSTD;
	/* the device report: how this tablet stands (PROTOCOL.md §7) */
	if (sdk_device_report(r->s, &rep_dev.pending, &rep_dev.oldest_pending_ms, &rep_dev.failed,
	                      &rep_dev.last_seq) == FS_OK) {
		h.report = &rep_dev;
		r->reported_pending = rep_dev.pending > 0;
	}
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	if ((err = sdk_conn_call(&r->c, &e, r->deadline, &rep)) != FS_OK)
		goto out;
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
	*max = rep->welcome->max_changes_per_push ? rep->welcome->max_changes_per_push
	                                          : DEFAULT_BATCH;
	if (*max > BATCH_MAX)
		*max = BATCH_MAX;
	uint64_t mb = rep->welcome->max_message_bytes ? rep->welcome->max_message_bytes
	                                              : (uint64_t)16 << 20;
	if (mb > SDK_RECV_MAX)
		mb = SDK_RECV_MAX;
	*budget = (size_t)(mb - mb / 8); /* room for the envelope */
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
out:
	if (rep != NULL)
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	return err;
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

static fs_err push_settle(sync_run *r, uint64_t key, sdk_push_request *req, envelope *rep);

/* Sends in-flight change set `key` and applies the answer. */
static fs_err
push_one(sync_run *r, uint64_t key, const uint8_t *bytes, size_t len)
{
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
	sdk_push_request *req = push_unpack(bytes, len);
	fs_err err;

	if (req == NULL)
		return FS_ERR_CORRUPT;
	sdk_push_request zreq;
	uint8_t *z = NULL;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = r->encodings && sdk_push_deflate(req, &zreq, &z) ? &zreq : req;
	err = sdk_conn_call(&r->c, &e, r->deadline, &rep);
	free(z);
	if (err != FS_OK) {
		fieldsync__v1__push_request__free_unpacked(req, NULL);
		return err;
	}
	return push_settle(r, key, req, rep);
}

/* Applies the answer rep to in-flight change set `key` (request req);
 * frees rep and req. */
static fs_err
push_settle(sync_run *r, uint64_t key, sdk_push_request *req, envelope *rep)
{
	sdk_push_outcome oc = {0, 0, 0, 0};
	fs_err err;

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
		err = push_one(r, key, bytes, len);
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
		err = push_one(r, key, bytes, len);
		free(bytes);
		if (err != FS_OK)
			return err;
	}
}

/*
 * push_all with a window of change sets in flight (issue 15), for a daemon
 * that speaks protocol.md §5.1: up to PUSH_WINDOW PushRequests are sent
 * before the first answer is awaited; each answer settles its own set
 * (sets are made and stored before they are sent, and the daemon answers
 * a set it already applied with its stored reply, so a cut connection
 * re-sends them safely in the next sync).
 */
static fs_err
push_window(sync_run *r, size_t max, size_t budget)
{
	struct {
		uint64_t key, rid;
		sdk_push_request *req;
	} w[PUSH_WINDOW];
	uint64_t key = 0, rids[PUSH_WINDOW];
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
			             : sdk_push_prepare(r->s, max, budget, &key, &bytes, &len);
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
			e.push = r->encodings && sdk_push_deflate(w[n].req, &zreq, &z) ? &zreq
			                                                               : w[n].req;
			w[n].key = key;
			n++;
			err = sdk_conn_send(&r->c, &e, r->deadline);
			free(z);
			if (err != FS_OK)
				goto out;
			w[n - 1].rid = rids[n - 1] = e.request_id;
		}
		if (n == 0)
			return FS_OK;
		envelope *rep = NULL;
		if ((err = sdk_conn_recv_any(&r->c, rids, n, r->deadline, &rep)) != FS_OK)
			goto out;
		size_t i = 0;
		while (i < n && w[i].rid != rep->request_id)
			i++;
		if (i == n) { /* an Error for no request in particular */
			err = rep->error != NULL ? error_reply(r, rep->error) : FS_ERR_PROTOCOL;
			fieldsync__v1__envelope__free_unpacked(rep, NULL);
			goto out;
		}
		err = push_settle(r, w[i].key, w[i].req, rep);
		w[i] = w[--n];
		rids[i] = rids[n];
		if (err != FS_OK)
			goto out;
		made_all = false; /* a refused set may have requeued its changes */
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
	uint64_t applied = 0, from = 0, to = 0;
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
	if ((err = sdk_pull_apply_page(r->s, p, &applied, &from, &to)) != FS_OK)
		return err;
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

static fs_err
pull_all(sync_run *r, bool pushed)
{
	uint64_t since;
	fs_err err;
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	/* Streaming (§5.1): windows of 8, 16, ... pages up to Welcome.max_window. */
	uint32_t window = r->max_window > 1 ? (r->max_window < 8 ? r->max_window : 8) : 1;
	bool lean = r->max_window != 0;

	if ((err = sdk_checkpoint_get(r->s, &since)) != FS_OK)
		return err;
	r->pr.phase = FS_SYNC_PULL;
	r->pr.done = 0;
	r->pr.total = 0;
	progress(r);
	/* Up to date already (§2.1): Welcome's feed_seq is at or behind the
	 * checkpoint and this sync pushed nothing, so a pull would be empty. */
	if (r->feed_seq != 0 && since >= r->feed_seq && !pushed)
		return FS_OK;
	for (;;) {
		envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
		bool more = false;
		pr.since_seq = since;
		pr.limit = r->o->pull_limit ? r->o->pull_limit : DEFAULT_PULL_LIMIT;
		pr.window = window > 1 ? window : 0;
		pr.encoding = r->encodings;
		pr.lean = lean;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		if ((err = sdk_conn_call(&r->c, &e, r->deadline, &rep)) != FS_OK)
			return err;
		for (uint32_t i = 0;;) {
			err = pull_page(r, rep, lean, &since, &more);
			fieldsync__v1__envelope__free_unpacked(rep, NULL);
			if (err != FS_OK || !more)
				return err;
			if (++i == window)
				break;
			if ((err = sdk_conn_recv(&r->c, e.request_id, r->deadline, &rep)) != FS_OK)
				return err;
		}
		if (window < r->max_window)
			window = window * 2 < r->max_window ? window * 2 : r->max_window;
	}
}

fs_err
fs_sync(fs_store *s, const fs_sync_opts *o, fs_sync_stats *stats)
{
	sync_run r;
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
	r.deadline = sdk_mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
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
	if ((err = hello(&r, &max, &budget)) != FS_OK)
		goto out;
	if ((err = (r.max_window != 0 ? push_window : push_all)(&r, max, budget)) != FS_OK)
		goto out;
	err = pull_all(&r, r.st.changesets != 0 || r.st.pushed != 0 || r.st.failed != 0);
	/* Changes the daemon DEFERRED (PROTOCOL.md §3: history it does not hold
	 * yet) are pushed once more now that the pull is in; deferred again,
	 * they stay queued for the next sync's pull. */
	uint64_t undeferred = 0;
	if (err == FS_OK && (err = sdk_outbox_undefer(s, &undeferred)) == FS_OK && undeferred > 0)
		err = (r.max_window != 0 ? push_window : push_all)(&r, max, budget);
	/* The report in the first Hello said what was pending before the push:
	 * tell the daemon how the tablet stands now (one more round trip). */
	if (err == FS_OK && r.reported_pending)
		(void)hello(&r, &max, &budget);
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
	(void)sdk_sync_record(s, err, err == FS_OK ? NULL : r.msg);
	if (stats != NULL)
		*stats = r.st;
	sdk_sync_leave(s);
	return err;
}
