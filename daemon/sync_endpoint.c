/*
 * sync_endpoint: the ROUTER that devices talk to (endpoint layer).
 *
 * Each request is exactly one frame holding an Envelope. Hello, Pull and
 * Replay are answered here from short read transactions; a valid Push
 * becomes a job for the writer actor, whose reply comes back over its pipe
 * after the durable commit (daemon.c hands it to sync_endpoint_reply).
 * Replies therefore may overtake each other: every one carries its
 * request's request_id (PROTOCOL.md §1).
 *
 * ZMQ_ROUTER_MANDATORY makes a reply to a peer that went away fail with
 * EHOSTUNREACH instead of vanishing; such replies are counted and logged.
 * The data is committed either way: the device's retry with the same
 * changeset_id gets the stored reply.
 *
 * A Pull may ask for a window of pages (protocol.md §5.1): they are read
 * and sent here one after the other, each from its own read transaction,
 * compressed and lean when asked (wire_page.c). A Push may come with its
 * changes compressed (§4.1): opened first, under the frame limit.
 *
 * Per connection, a Pull never overtakes a Push sent before it: a Pull
 * that arrives while the same routing id has push jobs at the writer is
 * held and served when those jobs come back (pull_order_*, below), so its
 * pages include what those pushes committed.
 *
 * Hello is answered with Welcome (its generation: the store's, PROTOCOL.md
 * §7) and noted as the device's report (registry_seen: last seen, client,
 * Hello.report), written to DATA_DIR/seen at most every 5 s.
 *
 * Per connection (conns.c, by the descriptor libzmq names on each message):
 * the device it authenticated as, and the reply bytes it has not read yet.
 * A connection past --peer-queue-max-bytes of unread replies is answered
 * BUSY (retry_after_ms) instead of served, and once 64 KiB of those went
 * unread too, its requests are dropped unanswered: a peer that pipelines and
 * never reads holds at most about the bound (plus one page) of the
 * daemon's memory. ZMQ_SNDHWM (messages) stays a backstop for transports
 * the kernel gives no byte count for. A revocation (sync_endpoint_cut)
 * closes the revoked device's connections and no other.
 *
 * Refusals are visible: the socket monitor logs and counts every failed
 * handshake (a NULL or PLAIN peer never reaches ZAP:
 * zap_denials_total{reason="mechanism"}); requests answered FORBIDDEN are
 * logged and counted by reason (fieldsync_forbidden_total).
 *
 * Threads: the ROUTER, its monitor and the writer end given at open belong
 * to the thread that opened the endpoint (the main thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "actor.h"
#include "clock.h"
#include "conns.h"
#include "events.h"
#include "feed.h"
#include "fieldsync/calendar.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "quota.h"
#include "reminders.h"
#include "sync_endpoint.h"
#include "validate.h"
#include "wire.h"
#include "wire_page.h"
#include "writer.h"
#include "zap.h"

#define PEERS 4096
#define PULL_WINDOW_MAX 16           /* pages one PullRequest may ask for (Welcome.max_window) */
#define QUEUE_BUSY_SLACK (64u << 10) /* BUSY answers past the bound; then silence */
#define QUEUE_BUSY_BYTES 128         /* one BUSY answer, at most */
#define QUEUE_RETRY_MS 1000
#define QUEUE_LOG_MS 10000 /* one log line per this, with the count since */

/* What a peer said in Hello, keyed by its routing id (bounded, overwritten). */
struct peer {
	uint8_t rid[256];
	size_t rid_len;
	char replica[FSP_REPLICA_MAX + 1];
};

struct sync_endpoint {
	const config *c;
	store *s;
	void *router, *monitor;
	void *writer_pipe; /* borrowed: the daemon's end of the writer's pipe */
	bool secure;       /* CURVE + ZAP: not --dev */
	struct peer *peers;
	struct pull_order *orders; /* connections with pushes at the writer */
	uint64_t inflight;
	registry_seen *seen; /* device reports; NULL when DATA_DIR/seen cannot open */
	/* what Welcome tells the tablets about deadlines (issue 13): the
	 * effective rule table as JSON, the zone's name and its TZif bytes */
	char *dl_rules;
	char *dl_zone;
	uint8_t *dl_tzif;
	size_t dl_tzif_len;
	conns *conns;   /* the ROUTER's connections by descriptor */
	conn *cur;      /* the one being answered; NULL when not tracked */
	struct rid_fd { /* routing id -> descriptor, for the writer's replies */
		uint8_t rid[256];
		size_t len;
		int fd;
	} * rid_fd;
	uint64_t queue_refused; /* requests refused for unread replies, not logged yet */
	int64_t queue_logged_ms;
};

#define SEEN_FLUSH_MS 5000

/* Logs and counts one FORBIDDEN answer (the peer's name, never a payload). */
static void
forbidden(const peer_auth *peer, metric_forbidden_reason why, const char *what)
{
	static const char *const names[MFORB_COUNT] = {"scope", "role", "not enrolled"};
	metrics_inc(METRIC_FORBIDDEN_TOTAL, why, 1);
	log_event(LOG_INFO, "request refused: FORBIDDEN", LS("reason", names[why]),
	          LS("device", peer != NULL ? peer->name : "(unknown)"), LS("detail", what), NULL);
}

static size_t
peer_slot(const uint8_t *rid, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ rid[i]) * 1099511628211ULL;
	return (size_t)(h % PEERS);
}

static const char *
peer_replica(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	struct peer *p = &tp->peers[peer_slot(rid, len)];
	if (p->rid_len == len && memcmp(p->rid, rid, len) == 0)
		return p->replica;
	return "";
}

static void
peer_remember(sync_endpoint *tp, const uint8_t *rid, size_t len, const char *replica)
{
	struct peer *p = &tp->peers[peer_slot(rid, len)];
	if (len > sizeof(p->rid) || strlen(replica) > FSP_REPLICA_MAX)
		return;
	memcpy(p->rid, rid, len);
	p->rid_len = len;
	strcpy(p->replica, replica);
}

/*
 * What the peer behind a request may do. --dev: everything, named by its
 * Hello. Otherwise the device that ZAP authenticated (the message's
 * User-Id), looked up for every request, so a revocation also stops a
 * connection that is already open. Returns false for a peer that may do
 * nothing at all (unknown or revoked).
 */
static bool
peer_resolve(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const char *user_id,
             peer_auth *out)
{
	memset(out, 0, sizeof(*out));
	if (!tp->secure) {
		out->all_scopes = true;
		out->may_sync = true;
		snprintf(out->name, sizeof(out->name), "%s", peer_replica(tp, rid, rid_len));
		return true;
	}
	return peer_from_device(tp->s, user_id, out) == FSD_OK;
}

/* Sends one reply; counts, and logs, one that cannot be routed. */
static void
send_reply(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const uint8_t *data, size_t len)
{
	if (data == NULL) {
		log_event(LOG_ERROR, "no reply could be built (out of memory)", NULL);
		return;
	}
	if (zmq_send(tp->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(tp->router, data, len, ZMQ_DONTWAIT) < 0) {
		atomic_fetch_add(&g_stats.replies_unroutable, 1);
		metrics_inc(METRIC_REPLIES_UNROUTABLE_TOTAL, 0, 1);
		log_event(LOG_DEBUG, "reply not delivered: the peer is gone or too slow",
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		return;
	}
	conns_sent(tp->cur, len);
}

/* The bytes of replies the connection being answered has not read yet. */
static uint64_t
unread(sync_endpoint *tp)
{
	return conns_queued(tp->cur, tp->c->peer_queue_max_bytes);
}

static void
send_error(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, uint64_t request_id,
           fs_error_code code, const char *msg, uint32_t retry_ms)
{
	size_t len = 0;
	uint8_t *buf = NULL;
	wire_error(request_id, code, msg, retry_ms, &buf, &len);
	send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

/* Notes the device's Hello (last seen, client, report) for registry_seen. */
static void
note_seen(sync_endpoint *tp, const peer_auth *peer, const Fieldsync__V1__Hello *h)
{
	device_seen d;
	memset(&d, 0, sizeof(d));
	if (tp->secure)
		snprintf(d.key, sizeof(d.key), "%s", peer->name);
	else if (h->replica_id[0] != '\0')
		snprintf(d.key, sizeof(d.key), "replica:%s", h->replica_id);
	if (d.key[0] == '\0')
		return;
	d.last_seen_ms = clock_wall_ms();
	snprintf(d.client, sizeof(d.client), "%s", h->client);
	if (h->report != NULL) {
		d.has_report = true;
		d.pending = h->report->pending;
		d.oldest_pending_ms = h->report->oldest_pending_ms;
		d.failed = h->report->failed;
		d.last_seq = h->report->last_seq;
	}
	registry_seen_note(tp->seen, &d);
}

/*
 * The optional Welcome fields of issue 15 (protocol.md §2.1), for a device
 * that said in Hello which encodings it reads; others see none of them.
 */
static void
welcome_fast(sync_endpoint *tp, const Fieldsync__V1__Hello *h, Fieldsync__V1__Welcome *w)
{
	store_txn *t = NULL;
	if (h->accept_encoding == 0)
		return;
	w->encodings = h->accept_encoding & WIRE_ENCODING_ZSTD;
	w->max_window = PULL_WINDOW_MAX;
	if (store_read_begin(tp->s, &t) == FSD_OK) {
		w->feed_seq = store_last_seq(t);
		store_read_end(&t);
	}
}

static void
handle_hello(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
             fs_envelope *req)
{
	Fieldsync__V1__Welcome w;
	char *all[1] = {"*"};
	char *granted[AUTH_SCOPES_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;

	if (strlen(req->hello->replica_id) > FSP_REPLICA_MAX || strlen(req->hello->client) > 128) {
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__INVALID,
		           "Hello: replica_id is at most 64 bytes, client at most 128", 0);
		return;
	}
	if (req->hello->protocol != FIELDSYNC_PROTOCOL) {
		send_error(tp, rid, rid_len, req->request_id,
		           FIELDSYNC__V1__ERROR__CODE__UNSUPPORTED_PROTOCOL,
		           "this daemon speaks protocol 1", 0);
		return;
	}
	peer_remember(tp, rid, rid_len, req->hello->replica_id);
	note_seen(tp, peer, req->hello);
	fieldsync__v1__welcome__init(&w);
	if (tp->dl_rules != NULL) { /* the tablets compute deadlines as we do */
		w.deadline_rules = tp->dl_rules;
		w.time_zone = tp->dl_zone;
		w.time_zone_tzif.data = tp->dl_tzif;
		w.time_zone_tzif.len = tp->dl_tzif_len;
	}
	w.protocol = FIELDSYNC_PROTOCOL;
	w.server_id = (char *)store_server_id(tp->s);
	w.generation = (char *)store_generation(tp->s);
	if (peer->all_scopes) { /* dev mode grants every scope; "*" says so */
		w.n_scopes = 1;
		w.scopes = all;
	} else {
		for (size_t i = 0; i < peer->n_scopes; i++)
			granted[i] = (char *)peer->scopes[i];
		w.n_scopes = peer->n_scopes;
		w.scopes = granted;
	}
	w.max_changes_per_push = tp->c->max_changes_per_push;
	w.max_message_bytes = tp->c->max_message_bytes;
	w.server_time_ms = clock_wall_ms();
	welcome_fast(tp, req->hello, &w);
	wire_welcome(req->request_id, &w, &buf, &len);
	send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

static void
handle_pull(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
            fs_envelope *req)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!peer->may_sync) {
		forbidden(peer, MFORB_ROLE, "a scheduler pulled");
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "a scheduler may only replay reminders", 0);
		return;
	}
	/* Streaming pull (protocol.md §5.1): up to `window` pages back to back,
	 * each from the last one's last_seq; one page when window is 0 or 1. */
	Fieldsync__V1__PullRequest pr = *req->pull;
	uint32_t window = pr.window < 1                 ? 1
	                  : pr.window > PULL_WINDOW_MAX ? PULL_WINDOW_MAX
	                                                : pr.window;
	uint32_t enc = pr.encoding & WIRE_ENCODING_ZSTD;
	for (uint32_t i = 0; i < window; i++) {
		feed_page page;
		bool more = false;
		fsd_err rc = feed_pull_from(tp->s, tp->c, peer, peer_replica(tp, rid, rid_len), &pr,
		                            &page);
		if (rc == FSD_OK) {
			more = page.reply.more;
			pr.since_seq = page.reply.last_seq;
			rc = enc || pr.lean
			             ? wire_pull_page(req->request_id, &page.reply, enc, pr.lean,
			                              &buf, &len)
			             : wire_pull_reply(req->request_id, &page.reply, &buf, &len);
			feed_page_free(&page);
		}
		if (rc == FSD_TOO_LARGE) { /* feed.c: a record larger than any page */
			send_error(tp, rid, rid_len, req->request_id,
			           FIELDSYNC__V1__ERROR__CODE__TOO_LARGE,
			           "the next record of this feed is larger than a pull page; the "
			           "operator must resolve it (fieldsyncd verify lists it)",
			           0);
			return;
		}
		if (rc != FSD_OK) {
			send_error(tp, rid, rid_len, req->request_id,
			           FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
			           "the feed could not be read", 1000);
			return;
		}
		send_reply(tp, rid, rid_len, buf, len);
		free(buf);
		buf = NULL;
		/* a window stops early at the per-connection bound: the device
		 * sees more = true and asks again once it has read these */
		if (!more || unread(tp) >= tp->c->peer_queue_max_bytes)
			return;
	}
}

/* ---- per-connection order: a Pull after that connection's Pushes -------- */

/*
 * A connection (routing id) that has push jobs at the writer: how many it
 * sent (started) and how many came back (done), and the Pulls it sent
 * meanwhile, each with the number of pushes sent before it (its ticket).
 * A held Pull is served once done reaches its ticket; the writer answers
 * jobs in the order it got them, so those are exactly the earlier pushes.
 * An entry lives while something is outstanding; a connection may hold
 * PULLS_HELD_MAX Pulls, more are answered BUSY.
 */
#define PULLS_HELD_MAX 16

struct held_pull {
	struct held_pull *next;
	uint64_t ticket;
	peer_auth auth; /* as resolved when the Pull arrived */
	fs_envelope *req;
};

struct pull_order {
	struct pull_order *next;
	uint8_t rid[256];
	size_t rid_len;
	uint64_t started, done;
	struct held_pull *head, *tail;
	size_t held;
};

static struct pull_order **
pull_order_find(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	struct pull_order **o = &tp->orders;
	while (*o != NULL && ((*o)->rid_len != len || memcmp((*o)->rid, rid, len) != 0))
		o = &(*o)->next;
	return o;
}

/* A push job of this connection goes to the writer; false: out of memory. */
static bool
pull_order_push_sent(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	struct pull_order **o = pull_order_find(tp, rid, len);
	if (*o == NULL) {
		if (len > sizeof((*o)->rid) || (*o = calloc(1, sizeof(**o))) == NULL)
			return false;
		memcpy((*o)->rid, rid, len);
		(*o)->rid_len = len;
	}
	(*o)->started++;
	return true;
}

/* Takes req when the Pull must wait for this connection's pushes (held, or
 * answered BUSY when too many wait); false: serve it now. */
static bool
pull_order_hold(sync_endpoint *tp, const uint8_t *rid, size_t len, const peer_auth *peer,
                fs_envelope *req)
{
	struct pull_order *o = *pull_order_find(tp, rid, len);
	struct held_pull *h = NULL;
	if (o == NULL || o->done >= o->started)
		return false;
	if (o->held >= PULLS_HELD_MAX || (h = calloc(1, sizeof(*h))) == NULL) {
		send_error(tp, rid, len, req->request_id, FIELDSYNC__V1__ERROR__CODE__BUSY,
		           "too many pulls wait for this connection's pushes", 200);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return true;
	}
	h->ticket = o->started;
	h->auth = *peer;
	h->req = req;
	if (o->tail != NULL)
		o->tail->next = h;
	else
		o->head = h;
	o->tail = h;
	o->held++;
	return true;
}

/* A push job of this connection came back (its reply sent): serves the
 * Pulls that waited for it, and forgets a connection with nothing left. */
static void
pull_order_push_done(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	struct pull_order **op = pull_order_find(tp, rid, len), *o = *op;
	if (o == NULL)
		return;
	o->done++;
	while (o->head != NULL && o->head->ticket <= o->done) {
		struct held_pull *h = o->head;
		if ((o->head = h->next) == NULL)
			o->tail = NULL;
		o->held--;
		handle_pull(tp, o->rid, o->rid_len, &h->auth, h->req);
		fieldsync__v1__envelope__free_unpacked(h->req, NULL);
		free(h);
	}
	if (o->done >= o->started && o->head == NULL) {
		*op = o->next;
		free(o);
	}
}

static void
pull_order_free(sync_endpoint *tp)
{
	while (tp->orders != NULL) {
		struct pull_order *o = tp->orders;
		tp->orders = o->next;
		while (o->head != NULL) {
			struct held_pull *h = o->head;
			o->head = h->next;
			fieldsync__v1__envelope__free_unpacked(h->req, NULL);
			free(h);
		}
		free(o);
	}
}

static void
handle_replay(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
              fs_envelope *req)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	atomic_fetch_add(&g_stats.replays, 1);
	metrics_inc(METRIC_REPLAYS_TOTAL, 0, 1);
	Fieldsync__V1__ReplayReply reply;
	uint64_t trimmed_before = 0; /* retention: a TRIMMED answer (events.h) */
	fsd_err rc = events_replay(tp->s, tp->c->max_message_bytes / 2, peer_may_cb, peer,
	                           req->replay, &reply, &trimmed_before);
	if (rc == FSD_OK) {
		rc = wire_replay_answer(req->request_id, &reply, trimmed_before, &buf, &len);
		events_replay_free(&reply);
	}
	if (rc != FSD_OK)
		send_error(tp, rid, rid_len, req->request_id,
		           FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
		           "the reminder events could not be read", 1000);
	else
		send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

/* Takes ownership of req. */
static void
handle_push(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
            fs_envelope *req)
{
	fs_error_code code = FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
	char msg[256];
	fs_push_reply *rej = NULL;
	fs_push_request *p = req->push;

	atomic_fetch_add(&g_stats.pushes, 1);
	if (!peer->may_sync) {
		forbidden(peer, MFORB_ROLE, "a scheduler pushed");
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "a scheduler may only replay reminders", 0);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	/* a compressed change set (protocol.md §4.1): opened under the frame limit */
	fsd_err zrc = wire_push_inflate(p, tp->c->max_message_bytes);
	if (zrc != FSD_OK) {
		send_error(
			tp, rid, rid_len, req->request_id,
			zrc == FSD_TOO_LARGE ? FIELDSYNC__V1__ERROR__CODE__TOO_LARGE
			: zrc == FSD_NOMEM   ? FIELDSYNC__V1__ERROR__CODE__BUSY
					     : FIELDSYNC__V1__ERROR__CODE__MALFORMED,
			"changes_zstd: not one zstd frame of changes_size bytes within the frame limit",
			zrc == FSD_NOMEM ? 200 : 0);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	fsd_err vrc = validate_push(tp->c, peer, p, &code, msg, sizeof(msg), &rej);
	if (vrc == FSD_FORBIDDEN)
		forbidden(peer, MFORB_SCOPE, "a push into a scope not granted");
	if (vrc != FSD_OK) {
		if (rej != NULL) {
			size_t len = 0;
			uint8_t *buf = NULL;
			wire_push_reply(req->request_id, rej, &buf, &len);
			send_reply(tp, rid, rid_len, buf, len);
			free(buf);
			validate_reply_free(rej);
		} else {
			send_error(tp, rid, rid_len, req->request_id, wire_code(vrc), msg, 0);
		}
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	/* Per-device push quota (quota.h): one device cannot take the disk. */
	uint32_t retry_ms = 0;
	if (!quota_push_allow(tp->c, peer->name, p->changeset_id,
	                      fieldsync__v1__push_request__get_packed_size(p), clock_mono_ms(),
	                      &retry_ms)) {
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__BUSY,
		           "this device is over its push quota; retry later", retry_ms);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	/* modified_by is the daemon's word, never the device's (PROTOCOL.md §3). */
	const char *who = peer->name;
	for (size_t i = 0; i < p->n_changes; i++) {
		fsp_record *r = p->changes[i]->record;
		char *dup = strdup(who);
		if (dup == NULL)
			goto oom;
		if (r->modified_by != protobuf_c_empty_string)
			free(r->modified_by);
		r->modified_by = dup;
	}
	push_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		goto oom;
	memcpy(j->routing_id, rid, rid_len);
	j->routing_len = rid_len;
	j->request_id = req->request_id;
	j->auth = *peer;
	j->request = req;
	j->received_ms = clock_wall_ms();
	if (!pull_order_push_sent(tp, rid, rid_len)) {
		j->request = NULL;
		push_job_free(j);
		goto oom;
	}
	if (actor_send(tp->writer_pipe, WRITER_JOB, j, ZMQ_DONTWAIT) != FSD_OK) {
		/* The writer's queue is full: shed load rather than grow without bound. */
		j->request = NULL;
		push_job_free(j);
		pull_order_push_done(tp, rid, rid_len);
		atomic_fetch_add(&g_stats.busy, 1);
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__BUSY,
		           "too many change sets queued", 200);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	tp->inflight++;
	return;
oom:
	send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__INTERNAL,
	           "out of memory", 1000);
	fieldsync__v1__envelope__free_unpacked(req, NULL);
}

/*
 * A connection with more unread replies than the bound gets BUSY instead of
 * service, and once QUEUE_BUSY_SLACK bytes of such answers went unread too,
 * no answer at all (they would pile up as well). True when the request was
 * refused.
 */
static bool
over_queue_bound(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, uint64_t request_id)
{
	uint64_t q = unread(tp), max = tp->c->peer_queue_max_bytes;
	if (q < max) {
		conns_set_refused(tp->cur, 0);
		return false;
	}
	atomic_fetch_add(&g_stats.busy, 1);
	tp->queue_refused++;
	int64_t now = clock_mono_ms();
	if (now - tp->queue_logged_ms >= QUEUE_LOG_MS) {
		log_event(LOG_INFO, "requests refused: the connection does not read its replies",
		          LS("device", conns_device(tp->cur)), LU("unread_bytes", q),
		          LU("limit_bytes", max), LU("refused_since_last_line", tp->queue_refused),
		          NULL);
		tp->queue_logged_ms = now;
		tp->queue_refused = 0;
	}
	uint64_t refused = conns_refused(tp->cur);
	if (refused < QUEUE_BUSY_SLACK) {
		send_error(tp, rid, rid_len, request_id, FIELDSYNC__V1__ERROR__CODE__BUSY,
		           "too many replies not read yet on this connection: read them, then "
		           "retry",
		           QUEUE_RETRY_MS);
		conns_set_refused(tp->cur, refused + QUEUE_BUSY_BYTES);
	}
	return true;
}

/* Counts a request by its type (whether it is then served or refused). */
static void
count_request(const fs_envelope *req)
{
	switch (req->body_case) {
	case FIELDSYNC__V1__ENVELOPE__BODY_HELLO:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_HELLO, 1);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_PUSH:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_PUSH, 1);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_PULL:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_PULL, 1);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_REPLAY:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_REPLAY, 1);
		break;
	default:
		break;
	}
}

/* One request frame from one peer; user_id is ZAP's User-Id (NULL in --dev). */
static void
handle_request(sync_endpoint *tp, const uint8_t *rid, size_t rid_len, const char *user_id,
               const uint8_t *data, size_t len)
{
	wire_decode_error bad;
	fs_envelope *req = wire_decode_request(data, len, malloc, &bad);

	atomic_fetch_add(&g_stats.requests, 1);
	if (req == NULL && bad.why == FSD_NOMEM) { /* not the peer's fault: BUSY (wire.h) */
		send_error(tp, rid, rid_len, bad.request_id, bad.code, bad.message,
		           bad.retry_after_ms);
		return;
	}
	if (req == NULL) {
		atomic_fetch_add(&g_stats.malformed, 1);
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_MALFORMED, 1);
		if (unread(tp) < tp->c->peer_queue_max_bytes) /* else it would pile up too */
			send_error(tp, rid, rid_len, 0, FIELDSYNC__V1__ERROR__CODE__MALFORMED,
			           "the frame is not a fieldsync.v1.Envelope", 0);
		return;
	}
	count_request(req);
	if (over_queue_bound(tp, rid, rid_len, req->request_id)) {
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	peer_auth peer;
	if (!peer_resolve(tp, rid, rid_len, user_id, &peer)) {
		forbidden(NULL, MFORB_NOT_ENROLLED, "a request from a revoked or unknown key");
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "this device is not enrolled, or was revoked", 0);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	switch (req->body_case) {
	case FIELDSYNC__V1__ENVELOPE__BODY_HELLO:
		handle_hello(tp, rid, rid_len, &peer, req);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_PUSH:
		handle_push(tp, rid, rid_len, &peer, req);
		return; /* took req */
	case FIELDSYNC__V1__ENVELOPE__BODY_PULL:
		if (pull_order_hold(tp, rid, rid_len, &peer, req))
			return; /* took req: after this connection's pushes */
		handle_pull(tp, rid, rid_len, &peer, req);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_REPLAY:
		handle_replay(tp, rid, rid_len, &peer, req);
		break;
	default:
		atomic_fetch_add(&g_stats.malformed, 1);
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__MALFORMED,
		           "the envelope carries no request (Hello, Push, Pull or Replay)", 0);
		break;
	}
	fieldsync__v1__envelope__free_unpacked(req, NULL);
}

static struct rid_fd *
rid_fd_slot(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	return &tp->rid_fd[peer_slot(rid, len)];
}

/* Remembers which descriptor routing id rid came over (fd -1: none). */
static void
rid_fd_note(sync_endpoint *tp, const uint8_t *rid, size_t len, int fd)
{
	struct rid_fd *r = rid_fd_slot(tp, rid, len);
	if (len > sizeof(r->rid))
		return;
	memcpy(r->rid, rid, len);
	r->len = len;
	r->fd = fd;
}

/* The tracked connection of routing id rid, or NULL. */
static conn *
rid_conn(sync_endpoint *tp, const uint8_t *rid, size_t len)
{
	struct rid_fd *r = rid_fd_slot(tp, rid, len);
	if (r->len != len || memcmp(r->rid, rid, len) != 0 || r->fd < 0)
		return NULL;
	return conns_find(tp->conns, r->fd);
}

/* Reads one multipart message from the ROUTER and answers it. */
void
sync_endpoint_read_one(sync_endpoint *tp)
{
	zmq_msg_t rid, body;
	int more = 0;
	size_t more_len = sizeof(more), frames = 0;

	zmq_msg_init(&rid);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&rid, tp->router, ZMQ_DONTWAIT) < 0)
		goto out;
	zmq_getsockopt(tp->router, ZMQ_RCVMORE, &more, &more_len);
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, tp->router, 0) < 0) {
			zmq_msg_close(&part);
			break;
		}
		if (frames++ == 0)
			zmq_msg_move(&body, &part);
		zmq_msg_close(&part);
		zmq_getsockopt(tp->router, ZMQ_RCVMORE, &more, &more_len);
	}
	if (zmq_msg_size(&rid) > sizeof(((push_job *)0)->routing_id))
		goto out;
	if (frames != 1) {
		atomic_fetch_add(&g_stats.malformed, 1);
		send_error(tp, zmq_msg_data(&rid), zmq_msg_size(&rid), 0,
		           FIELDSYNC__V1__ERROR__CODE__MALFORMED,
		           "a request is exactly one frame holding an Envelope", 0);
		goto out;
	}
	{
		const char *user = tp->secure ? zmq_msg_gets(&body, "User-Id") : NULL;
		int fd = zmq_msg_get(&body, ZMQ_SRCFD); /* the connection it came over */
		tp->cur = conns_note(tp->conns, fd, user);
		rid_fd_note(tp, zmq_msg_data(&rid), zmq_msg_size(&rid), tp->cur != NULL ? fd : -1);
		handle_request(tp, zmq_msg_data(&rid), zmq_msg_size(&rid), user,
		               zmq_msg_data(&body), zmq_msg_size(&body));
		tp->cur = NULL;
	}
out:
	zmq_msg_close(&rid);
	zmq_msg_close(&body);
}

/*
 * A failed handshake seen by the socket monitor. A peer without CURVE (NULL
 * or PLAIN) fails at the mechanism check and never reaches ZAP: counted
 * here as reason "mechanism"; ZAP's own refusals (HANDSHAKE_FAILED_AUTH)
 * were counted by the ZAP handler already; anything else is "handshake".
 */
static void
handshake_failed(uint16_t ev, uint32_t value, const char *addr)
{
	if (ev != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
		return;
	bool mech = ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	            value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
	metrics_inc(METRIC_ZAP_DENIALS_TOTAL, mech ? MZAP_MECHANISM : MZAP_HANDSHAKE, 1);
	char code[32];
	snprintf(code, sizeof(code), "0x%04x/0x%08x", (unsigned)ev, (unsigned)value);
	log_event(LOG_INFO, "handshake refused",
	          LS("reason", mech ? "mechanism (the peer does not speak CURVE)"
	                            : "handshake failed (wrong server key or not ZMTP)"),
	          LS("address", addr), LS("zmq_error", code), NULL);
}

/* One socket-monitor event: a peer came or went, or a handshake failed. */
void
sync_endpoint_read_monitor(sync_endpoint *tp)
{
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, tp->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		int more = zmq_msg_more(&m);
		uint16_t ev = 0;
		uint32_t value = 0;
		if (zmq_msg_size(&m) >= 6) {
			memcpy(&ev, zmq_msg_data(&m), 2);
			memcpy(&value, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
			if (ev == ZMQ_EVENT_ACCEPTED) {
				metrics_add(METRIC_PEERS_CONNECTED, 0, 1);
			} else if (ev == ZMQ_EVENT_DISCONNECTED) {
				metrics_add(METRIC_PEERS_CONNECTED, 0, -1);
				conns_forget(tp->conns, (int)value); /* value: its descriptor */
			}
		}
		zmq_msg_close(&m);
		char addr[128] = "";
		if (more) { /* the second frame: the endpoint */
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, tp->monitor, 0) >= 0) {
				size_t n = zmq_msg_size(&m) < sizeof(addr) - 1 ? zmq_msg_size(&m)
				                                               : sizeof(addr) - 1;
				memcpy(addr, zmq_msg_data(&m), n);
				addr[n] = '\0';
			}
			zmq_msg_close(&m);
		}
		handshake_failed(ev, value, addr);
	}
}

void
sync_endpoint_reply(sync_endpoint *tp, push_job *j)
{
	tp->inflight--;
	tp->cur = rid_conn(tp, j->routing_id, j->routing_len);
	send_reply(tp, j->routing_id, j->routing_len, j->reply, j->reply_len);
	pull_order_push_done(tp, j->routing_id, j->routing_len); /* held Pulls, same conn */
	tp->cur = NULL;
	push_job_free(j);
}

size_t
sync_endpoint_cut(sync_endpoint *tp)
{
	if (tp == NULL || !tp->secure)
		return 0;
	return conns_cut(tp->conns, peer_still_enrolled_cb, tp->s);
}

void
sync_endpoint_read(sync_endpoint *tp)
{
	/* A bounded number per wake-up keeps replies flowing under load. */
	for (int i = 0; i < 256; i++) {
		int ev = 0;
		size_t el = sizeof(ev);
		sync_endpoint_read_one(tp);
		zmq_getsockopt(tp->router, ZMQ_EVENTS, &ev, &el);
		if (!(ev & ZMQ_POLLIN))
			break;
	}
}

void
sync_endpoint_tick(sync_endpoint *tp)
{
	if (tp != NULL)
		registry_seen_flush(tp->seen, clock_wall_ms(), SEEN_FLUSH_MS);
}

void *
sync_endpoint_socket(const sync_endpoint *tp)
{
	return tp->router;
}

registry_seen *
sync_endpoint_seen(const sync_endpoint *tp)
{
	return tp != NULL ? tp->seen : NULL;
}

void *
sync_endpoint_monitor(const sync_endpoint *tp)
{
	return tp->monitor;
}

uint64_t
sync_endpoint_inflight(const sync_endpoint *tp)
{
	return tp->inflight;
}

fsd_err
sync_endpoint_open(void *ctx, const config *c, store *s, void *writer_pipe,
                   const char *server_secret, sync_endpoint **out)
{
	int one = 1, hwm = 100000, linger = 2000;
	int64_t maxmsg = (int64_t)c->max_message_bytes;
	sync_endpoint *tp = calloc(1, sizeof(*tp));

	*out = NULL;
	if (tp == NULL || (tp->peers = calloc(PEERS, sizeof(*tp->peers))) == NULL ||
	    (tp->rid_fd = calloc(PEERS, sizeof(*tp->rid_fd))) == NULL ||
	    (tp->conns = conns_new()) == NULL) {
		if (tp != NULL) {
			free(tp->peers);
			free(tp->rid_fd);
		}
		free(tp);
		return FSD_NOMEM;
	}
	tp->c = c;
	tp->s = s;
	tp->writer_pipe = writer_pipe;
	tp->seen = registry_seen_open(c->data_dir); /* telemetry: the daemon runs without it */
	tp->secure = server_secret != NULL;
	{ /* the rule table and zone the reminders use (checked there already) */
		rules_config rc;
		char err[600];
		fs_tz *tz = tz_load(c->time_zone, err, sizeof(err));
		if (tz == NULL || reminders_load_rules(c, &rc, err, sizeof(err)) != FSD_OK ||
		    sync_endpoint_set_deadlines(tp, &rc, tz) != FSD_OK)
			log_event(LOG_WARN, "Welcome will not carry the rule table and zone",
			          LS("error", err), NULL);
		tz_free(&tz);
	}
	tp->router = zmq_socket(ctx, ZMQ_ROUTER);
	if (tp->router == NULL)
		goto fail;
	zmq_setsockopt(tp->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	zmq_setsockopt(tp->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	zmq_setsockopt(tp->router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(tp->router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(tp->router, ZMQ_LINGER, &linger, sizeof(linger));
	/* ZMTP heartbeats: a tablet that vanished (radio gone, no FIN) is noticed
	 * within 30 s and its connection state freed; a handshake must finish in 10 s. */
	int hb_ivl = 10000, hb_timeout = 30000, hb_ttl = 30000, handshake = 10000;
	zmq_setsockopt(tp->router, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof(hb_ivl));
	zmq_setsockopt(tp->router, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof(hb_timeout));
	zmq_setsockopt(tp->router, ZMQ_HEARTBEAT_TTL, &hb_ttl, sizeof(hb_ttl));
	zmq_setsockopt(tp->router, ZMQ_HANDSHAKE_IVL, &handshake, sizeof(handshake));
	if (tp->secure && zap_secure_socket(tp->router, server_secret) != FSD_OK)
		goto fail;
	/* Connected peers for /metrics and failed handshakes: the socket monitor. */
	if (zmq_socket_monitor(tp->router, "inproc://fieldsyncd-monitor",
	                       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) == 0) {
		tp->monitor = zmq_socket(ctx, ZMQ_PAIR);
		if (tp->monitor != NULL &&
		    zmq_connect(tp->monitor, "inproc://fieldsyncd-monitor") != 0) {
			zmq_close(tp->monitor);
			tp->monitor = NULL;
		}
	}
	if (zmq_bind(tp->router, c->sync_endpoint) != 0) {
		log_event(LOG_ERROR, "cannot bind the sync endpoint",
		          LS("endpoint", c->sync_endpoint), LS("error", zmq_strerror(zmq_errno())),
		          NULL);
		goto fail;
	}
	char bound[256];
	size_t blen = sizeof(bound);
	if (zmq_getsockopt(tp->router, ZMQ_LAST_ENDPOINT, bound, &blen) != 0)
		snprintf(bound, sizeof(bound), "%s", c->sync_endpoint);
	log_event(LOG_INFO, "sync endpoint ready", LS("endpoint", bound),
	          LU("max_message_bytes", c->max_message_bytes), NULL);
	*out = tp;
	return FSD_OK;
fail:
	sync_endpoint_close(&tp);
	return FSD_IO;
}

void
sync_endpoint_close(sync_endpoint **tpp)
{
	if (tpp == NULL || *tpp == NULL)
		return;
	sync_endpoint *tp = *tpp;
	if (tp->router != NULL)
		zmq_close(tp->router);
	if (tp->monitor != NULL)
		zmq_close(tp->monitor);
	registry_seen_flush(tp->seen, clock_wall_ms(), 0);
	registry_seen_close(&tp->seen);
	pull_order_free(tp);
	free(tp->peers);
	free(tp->rid_fd);
	conns_free(&tp->conns);
	free(tp->dl_rules);
	free(tp->dl_zone);
	free(tp->dl_tzif);
	free(tp);
	*tpp = NULL;
}

fsd_err
sync_endpoint_set_deadlines(sync_endpoint *se, const rules_config *rc, const fs_tz *tz)
{
	size_t len = 0;
	const uint8_t *img = tz_tzif(tz, &len);
	char *rules = rules_config_to_json(rc);
	char *zone = strdup(tz_name(tz));
	uint8_t *tzif = malloc(len > 0 ? len : 1);

	if (rules == NULL || zone == NULL || tzif == NULL) {
		free(rules);
		free(zone);
		free(tzif);
		return FSD_NOMEM;
	}
	memcpy(tzif, img, len);
	free(se->dl_rules);
	free(se->dl_zone);
	free(se->dl_tzif);
	se->dl_rules = rules;
	se->dl_zone = zone;
	se->dl_tzif = tzif;
	se->dl_tzif_len = len;
	return FSD_OK;
}
