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
 * Layer: endpoints (over conn, push, pull, lists, credstore). One thread;
 * the fs_store is the caller's for the duration of the call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "credstore.h"
#include "generation.h"
#include "lists.h"
#include "pull.h"
#include "push.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_PULL_LIMIT 500
#define DEFAULT_BATCH 100
#define BATCH_MAX 10000

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
	h.client = "libfieldsync/0.1";
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
	*max = rep->welcome->max_changes_per_push ? rep->welcome->max_changes_per_push
	                                          : DEFAULT_BATCH;
	if (*max > BATCH_MAX)
		*max = BATCH_MAX;
	uint64_t mb = rep->welcome->max_message_bytes ? rep->welcome->max_message_bytes
	                                              : (uint64_t)16 << 20;
	if (mb > SDK_RECV_MAX)
		mb = SDK_RECV_MAX;
	*budget = (size_t)(mb - mb / 8); /* room for the envelope */
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

/* Sends in-flight change set `key` and applies the answer. */
static fs_err
push_one(sync_run *r, uint64_t key, const uint8_t *bytes, size_t len)
{
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, len, bytes);
	sdk_push_outcome oc = {0, 0, 0, 0};
	fs_err err;

	if (req == NULL)
		return FS_ERR_CORRUPT;
	for (size_t i = 0; i < req->n_changes; i++)
		if (req->changes[i] == NULL || req->changes[i]->record == NULL) {
			err = FS_ERR_CORRUPT;
			goto out;
		}
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = req;
	if ((err = sdk_conn_call(&r->c, &e, r->deadline, &rep)) != FS_OK)
		goto out;
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

static fs_err
pull_all(sync_run *r)
{
	uint64_t since;
	fs_err err;
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;

	if ((err = sdk_checkpoint_get(r->s, &since)) != FS_OK)
		return err;
	r->pr.phase = FS_SYNC_PULL;
	r->pr.done = 0;
	r->pr.total = 0;
	progress(r);
	for (;;) {
		envelope e = FIELDSYNC__V1__ENVELOPE__INIT, *rep = NULL;
		uint64_t applied = 0;
		pr.since_seq = since;
		pr.limit = r->o->pull_limit ? r->o->pull_limit : DEFAULT_PULL_LIMIT;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		if ((err = sdk_conn_call(&r->c, &e, r->deadline, &rep)) != FS_OK)
			return err;
		if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR && rep->error != NULL) {
			err = error_reply(r, rep->error);
		} else if (rep->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY ||
		           rep->pull_reply == NULL) {
			err = FS_ERR_PROTOCOL;
		} else if (rep->pull_reply->more && rep->pull_reply->last_seq <= since) {
			err = FS_ERR_PROTOCOL; /* "more" without progress would loop forever */
			snprintf(r->msg, sizeof(r->msg), "the feed did not advance");
		} else {
			err = sdk_pull_apply(r->s, rep->pull_reply, &applied);
		}
		bool more = err == FS_OK && rep->pull_reply->more;
		if (err == FS_OK) {
			r->st.pulled += rep->pull_reply->n_records;
			r->pr.done += rep->pull_reply->n_records;
			if (rep->pull_reply->last_seq > since)
				since = rep->pull_reply->last_seq;
			progress(r);
		}
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
		if (err != FS_OK || !more)
			return err;
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
	if ((err = push_all(&r, max, budget)) != FS_OK)
		goto out;
	err = pull_all(&r);
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
	if (err != FS_OK && r.msg[0] == '\0')
		snprintf(r.msg, sizeof(r.msg), "%s", fs_strerror(err));
	/* the outcome is informational: a failure to record it changes nothing */
	(void)sdk_sync_record(s, err, err == FS_OK ? NULL : r.msg);
	if (stats != NULL)
		*stats = r.st;
	return err;
}
