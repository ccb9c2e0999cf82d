/*
 * The sync endpoint: one ROUTER, owned by this (the main) thread.
 *
 * Each request is exactly one frame holding an Envelope. Hello and Pull are
 * answered here from short read transactions; a valid Push becomes a job for
 * the writer thread, whose reply comes back over the inproc pipe after the
 * durable commit. Replies therefore may overtake each other: every one
 * carries its request's request_id (PROTOCOL.md §1).
 *
 * ZMQ_ROUTER_MANDATORY makes a reply to a peer that went away fail with
 * EHOSTUNREACH instead of vanishing; such replies are counted and logged.
 * The data is committed either way: the device's retry with the same
 * changeset_id gets the stored reply.
 *
 * The PUB socket for reminders belongs to this thread too: the writer hands
 * over batches of committed events, published here as two frames, the
 * topic "reminder/<rule>/<scope>" and the ReminderEvent. PUB drops what a
 * slow subscriber cannot take; every event is stored first, and Replay on
 * the sync endpoint returns it (PROTOCOL.md §6).
 *
 * Shutdown (SIGTERM/SIGINT): stop reading the ROUTER, tell the writer to
 * finish what is queued, forward those replies, close, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "actor.h"
#include "clock.h"
#include "feed.h"
#include "log.h"
#include "metrics.h"
#include "fieldsync/rules.h"
#include "ops_http.h"
#include "peer.h"
#include "registry.h"
#include "reminders.h"
#include "transport.h"
#include "validate.h"
#include "wire.h"
#include "writer.h"
#include "zap.h"

#define PIPE_ENDPOINT "inproc://fieldsyncd-writer"
#define PEERS 4096

static volatile sig_atomic_t g_stop, g_reload;

/* What the ops HTTP thread may look at: atomics and short read txns only. */
static struct ops_state {
	_Atomic int64_t beat_ms; /* the event loop's last turn (monotonic) */
	atomic_bool bound, draining;
	store *s;
	const config *c;
} g_ops;

/* /healthz: shallow, the event loop turned within the last 5 s. */
static bool
ops_alive(void *arg)
{
	(void)arg;
	return clock_mono_ms() - atomic_load(&g_ops.beat_ms) < 5000;
}

/* /readyz: deep. */
static bool
ops_ready(void *arg, char *why, size_t len)
{
	store_txn *t = NULL;
	uint64_t free_bytes = 0;
	(void)arg;
	if (atomic_load(&g_ops.draining)) {
		snprintf(why, len, "draining: shutdown in progress");
		return false;
	}
	if (!atomic_load(&g_ops.bound)) {
		snprintf(why, len, "starting: the sockets are not bound yet");
		return false;
	}
	if (store_read_begin(g_ops.s, &t) != FSD_OK) {
		snprintf(why, len, "the store cannot be read");
		return false;
	}
	store_read_end(&t);
	return ops_disk_ok(g_ops.c->data_dir, g_ops.c->min_free_bytes, &free_bytes, why, len);
}

static void
ops_before_metrics(void *arg)
{
	uint64_t map = 0, used = 0, free_bytes = 0;
	uint32_t readers = 0;
	char why[128];
	(void)arg;
	store_stats(g_ops.s, &map, &used, &readers);
	metrics_set(METRIC_LMDB_MAP_SIZE_BYTES, 0, (int64_t)map);
	metrics_set(METRIC_LMDB_USED_BYTES, 0, (int64_t)used);
	metrics_set(METRIC_LMDB_READERS, 0, readers);
	ops_disk_ok(g_ops.c->data_dir, 0, &free_bytes, why, sizeof(why));
	metrics_set(METRIC_DISK_FREE_BYTES, 0, (int64_t)free_bytes);
}

/* What a peer said in Hello, keyed by its routing id (bounded, overwritten). */
struct peer {
	uint8_t rid[256];
	size_t rid_len;
	char replica[FSP_REPLICA_MAX + 1];
};

struct transport {
	const config *c;
	store *s;
	void *ctx, *router, *pipe, *pub, *monitor;
	bool secure;                          /* CURVE + ZAP: not --dev */
	char server_secret[AUTH_Z85_KEY_LEN + 1];
	zap_handler *zap;
	uint64_t revoked_fingerprint;         /* to notice a revocation */
	int64_t next_registry_check_ms;
	writer *w;
	reminders *rem; /* until the writer takes it */
	struct peer *peers;
	uint64_t inflight;
};

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		g_reload = 1;
	} else {
		g_stop = 1;
		atomic_store(&g_ops.draining, true); /* readiness false at once (lock-free) */
	}
}

/*
 * SIGHUP: read the configuration again (file, env, flags as at start) and
 * apply what can change without dropping a connection: the log level and the
 * rule table. A bad file or table is logged and the old one stays.
 */
static void
reload(struct transport *tp)
{
	config nc;
	char err[600];
	rules_config *rc = malloc(sizeof(*rc));
	if (rc == NULL)
		return;
	if (config_load(&nc, tp->c->argc, tp->c->argv) != CONFIG_RUN) {
		log_event(LOG_ERROR, "reload refused: the configuration is bad; nothing changed", NULL);
		free(rc);
		return;
	}
	if (!reminders_load_rules(&nc, rc, err, sizeof(err))) {
		log_event(LOG_ERROR, "reload refused: bad rule table; nothing changed", LS("error", err), NULL);
		free(rc);
		return;
	}
	log_set_level(nc.log_level);
	if (actor_send(tp->pipe, WRITER_RULES, rc, 0) != FSD_OK)
		free(rc);
	log_event(LOG_INFO, "configuration reloaded (log level, rule table)", NULL);
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
peer_replica(struct transport *tp, const uint8_t *rid, size_t len)
{
	struct peer *p = &tp->peers[peer_slot(rid, len)];
	if (p->rid_len == len && memcmp(p->rid, rid, len) == 0)
		return p->replica;
	return "";
}

static void
peer_remember(struct transport *tp, const uint8_t *rid, size_t len, const char *replica)
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
peer_resolve(struct transport *tp, const uint8_t *rid, size_t rid_len, const char *user_id,
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
send_reply(struct transport *tp, const uint8_t *rid, size_t rid_len, const uint8_t *data,
           size_t len)
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
	}
}

static void
send_error(struct transport *tp, const uint8_t *rid, size_t rid_len, uint64_t request_id,
           fs_error_code code, const char *msg, uint32_t retry_ms)
{
	size_t len = 0;
	uint8_t *buf = NULL;
	wire_error(request_id, code, msg, retry_ms, &buf, &len);
	send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

static void
handle_hello(struct transport *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
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
	fieldsync__v1__welcome__init(&w);
	w.protocol = FIELDSYNC_PROTOCOL;
	w.server_id = (char *)store_server_id(tp->s);
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
	wire_welcome(req->request_id, &w, &buf, &len);
	send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

static void
handle_pull(struct transport *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
            fs_envelope *req)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!peer->may_sync) {
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "a scheduler may only replay reminders", 0);
		return;
	}
	feed_page page;
	fsd_err rc = feed_pull(tp->s, tp->c, peer, req->pull, &page);
	if (rc == FSD_OK) {
		rc = wire_pull_reply(req->request_id, &page.reply, &buf, &len);
		feed_page_free(&page);
	}
	if (rc != FSD_OK)
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
		           "the feed could not be read", 1000);
	else
		send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

static void
handle_replay(struct transport *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
              fs_envelope *req)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	atomic_fetch_add(&g_stats.replays, 1);
	metrics_inc(METRIC_REPLAYS_TOTAL, 0, 1);
	Fieldsync__V1__ReplayReply reply;
	fsd_err rc = reminders_replay(tp->s, tp->c, peer, req->replay, &reply);
	if (rc == FSD_OK) {
		rc = wire_replay_reply(req->request_id, &reply, &buf, &len);
		reminders_replay_free(&reply);
	}
	if (rc != FSD_OK)
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
		           "the reminder events could not be read", 1000);
	else
		send_reply(tp, rid, rid_len, buf, len);
	free(buf);
}

/* Takes ownership of req. */
static void
handle_push(struct transport *tp, const uint8_t *rid, size_t rid_len, const peer_auth *peer,
            fs_envelope *req)
{
	fs_error_code code = FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
	char msg[256];
	fs_push_reply *rej = NULL;
	fs_push_request *p = req->push;

	atomic_fetch_add(&g_stats.pushes, 1);
	if (!peer->may_sync) {
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "a scheduler may only replay reminders", 0);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	if (!validate_push(tp->c, peer, p, &code, msg, sizeof(msg), &rej)) {
		if (rej != NULL) {
			size_t len = 0;
			uint8_t *buf = NULL;
			wire_push_reply(req->request_id, rej, &buf, &len);
			send_reply(tp, rid, rid_len, buf, len);
			free(buf);
			validate_reply_free(rej);
		} else {
			send_error(tp, rid, rid_len, req->request_id, code, msg, 0);
		}
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
	if (actor_send(tp->pipe, WRITER_JOB, j, ZMQ_DONTWAIT) != FSD_OK) {
		/* The writer's queue is full: shed load rather than grow without bound. */
		j->request = NULL;
		push_job_free(j);
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

/* One request frame from one peer; user_id is ZAP's User-Id (NULL in --dev). */
static void
handle_request(struct transport *tp, const uint8_t *rid, size_t rid_len, const char *user_id,
               const uint8_t *data, size_t len)
{
	fs_envelope *req = wire_decode_envelope(data, len);

	atomic_fetch_add(&g_stats.requests, 1);
	if (req == NULL) {
		atomic_fetch_add(&g_stats.malformed, 1);
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_MALFORMED, 1);
		send_error(tp, rid, rid_len, 0, FIELDSYNC__V1__ERROR__CODE__MALFORMED,
		           "the frame is not a fieldsync.v1.Envelope", 0);
		return;
	}
	peer_auth peer;
	if (!peer_resolve(tp, rid, rid_len, user_id, &peer)) {
		send_error(tp, rid, rid_len, req->request_id, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN,
		           "this device is not enrolled, or was revoked", 0);
		fieldsync__v1__envelope__free_unpacked(req, NULL);
		return;
	}
	switch (req->body_case) {
	case FIELDSYNC__V1__ENVELOPE__BODY_HELLO:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_HELLO, 1);
		handle_hello(tp, rid, rid_len, &peer, req);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_PUSH:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_PUSH, 1);
		handle_push(tp, rid, rid_len, &peer, req);
		return; /* took req */
	case FIELDSYNC__V1__ENVELOPE__BODY_PULL:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_PULL, 1);
		handle_pull(tp, rid, rid_len, &peer, req);
		break;
	case FIELDSYNC__V1__ENVELOPE__BODY_REPLAY:
		metrics_inc(METRIC_REQUESTS_TOTAL, MREQ_REPLAY, 1);
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

/* Reads one multipart message from the ROUTER and answers it. */
static void
read_router(struct transport *tp)
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
	handle_request(tp, zmq_msg_data(&rid), zmq_msg_size(&rid),
	               tp->secure ? zmq_msg_gets(&body, "User-Id") : NULL, zmq_msg_data(&body),
	               zmq_msg_size(&body));
out:
	zmq_msg_close(&rid);
	zmq_msg_close(&body);
}

/* Publishes one batch of committed events. PUB never blocks: past the high
 * water mark a subscriber misses events and recovers them by replay. */
static void
publish_events(struct transport *tp, event_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->label[i] >= 0)
			metrics_inc(METRIC_REMINDER_EVENTS_TOTAL, (size_t)b->label[i], 1);
		if (zmq_send(tp->pub, b->topics[i], strlen(b->topics[i]), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
		    zmq_send(tp->pub, b->data[i], b->len[i], ZMQ_DONTWAIT) < 0)
			continue;
		atomic_fetch_add(&g_stats.events_published, 1);
		metrics_inc(METRIC_REMINDER_EVENTS_PUBLISHED_TOTAL, 0, 1);
	}
	event_batch_free(b);
}

/* One socket-monitor event: a peer came or went. */
static void
read_monitor(struct transport *tp)
{
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, tp->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		int more = zmq_msg_more(&m);
		if (zmq_msg_size(&m) >= 2) {
			uint16_t ev;
			memcpy(&ev, zmq_msg_data(&m), 2);
			if (ev == ZMQ_EVENT_ACCEPTED)
				metrics_add(METRIC_PEERS_CONNECTED, 0, 1);
			else if (ev == ZMQ_EVENT_DISCONNECTED)
				metrics_add(METRIC_PEERS_CONNECTED, 0, -1);
		}
		zmq_msg_close(&m);
		if (more) { /* the second frame: the endpoint */
			zmq_msg_init(&m);
			zmq_msg_recv(&m, tp->monitor, 0);
			zmq_msg_close(&m);
		}
	}
}

/* Forwards what the writer finished. Returns false on "stopped". */
static bool
read_pipe(struct transport *tp)
{
	for (;;) {
		void *p = NULL;
		int tag;
		if (actor_recv(tp->pipe, ZMQ_DONTWAIT, &tag, &p) != FSD_OK)
			return true;
		if (tag == ACTOR_STOP)
			return false;
		if (tag == WRITER_EVENTS && p != NULL) {
			publish_events(tp, p);
		} else if (tag == WRITER_JOB && p != NULL) {
			push_job *j = p;
			tp->inflight--;
			send_reply(tp, j->routing_id, j->routing_len, j->reply, j->reply_len);
			push_job_free(j);
		}
	}
}

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN /* a draft option in zmq.h 4.3; libzmq 4.3 takes it */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

/* CURVE server side and ZAP on a socket (production). Every option must
 * take: a socket that would run without them is refused (fail closed). */
static int
secure_socket(struct transport *tp, void *sock)
{
	int one = 1;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, tp->server_secret, AUTH_Z85_KEY_LEN + 1) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "fieldsync", 9) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0) {
		log_event(LOG_ERROR, "cannot set up CURVE and ZAP on a socket",
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		return -1;
	}
	return 0;
}

/*
 * The reminder socket. --dev: a PUB. Production: an XPUB in manual mode, so
 * the daemon decides what each subscriber gets: a subscription is narrowed
 * to the topics of the scopes its key was granted (see xpub_subscription).
 */
static int
open_reminder_socket(struct transport *tp)
{
	int one = 1, linger = 2000;
	/* Per subscriber: at most 1000 queued events and 256 KiB of kernel buffer.
	 * Past that a slow subscriber misses events, never the daemon's memory. */
	int pub_hwm = 1000, pub_sndbuf = 256 * 1024;
	tp->pub = zmq_socket(tp->ctx, tp->secure ? ZMQ_XPUB : ZMQ_PUB);
	if (tp->pub == NULL)
		return -1;
	zmq_setsockopt(tp->pub, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(tp->pub, ZMQ_SNDHWM, &pub_hwm, sizeof(pub_hwm));
	zmq_setsockopt(tp->pub, ZMQ_SNDBUF, &pub_sndbuf, sizeof(pub_sndbuf));
	if (tp->secure && (zmq_setsockopt(tp->pub, ZMQ_XPUB_MANUAL, &one, sizeof(one)) != 0 ||
	                   secure_socket(tp, tp->pub) != 0))
		return -1;
	if (zmq_bind(tp->pub, tp->c->reminder_endpoint) != 0) {
		log_event(LOG_ERROR, "cannot bind the reminder endpoint",
		          LS("endpoint", tp->c->reminder_endpoint), LS("error", zmq_strerror(zmq_errno())),
		          NULL);
		return -1;
	}
	return 0;
}

/* One subscription message on the XPUB: grant what the key's scopes allow. */
static void
xpub_subscription(struct transport *tp)
{
	zmq_msg_t m;
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, tp->pub, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return;
	}
	const uint8_t *d = zmq_msg_data(&m);
	size_t n = zmq_msg_size(&m);
	peer_auth peer;
	if (n >= 1 && (d[0] == 0 || d[0] == 1) &&
	    peer_resolve(tp, NULL, 0, zmq_msg_gets(&m, "User-Id"), &peer)) {
		int opt = d[0] == 1 ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE;
		const char *want = (const char *)d + 1;
		size_t wl = n - 1;
		for (int r = 0; r < RULE_COUNT; r++)
			for (size_t k = 0; k < peer.n_scopes; k++) {
				char topic[200];
				int tl = snprintf(topic, sizeof(topic), "reminder/%s/%s", rule_name((rule_id)r),
				                  peer.scopes[k]);
				if (tl < 0 || (size_t)tl >= sizeof(topic))
					continue;
				if (wl <= (size_t)tl && memcmp(topic, want, wl) == 0) /* broader: narrow it */
					zmq_setsockopt(tp->pub, opt, topic, (size_t)tl);
				else if (wl > (size_t)tl && memcmp(topic, want, (size_t)tl) == 0)
					zmq_setsockopt(tp->pub, opt, want, wl); /* narrower, inside a grant */
			}
	}
	zmq_msg_close(&m);
}

struct fingerprint {
	uint64_t h;
};

static bool
fingerprint_device(void *arg, const device_info *d)
{
	struct fingerprint *f = arg;
	if (d->revoked)
		for (const char *p = d->public_key; *p; p++)
			f->h = (f->h ^ (uint8_t)*p) * 1099511628211ULL;
	return true;
}

/*
 * Once a second: a device revoked since the last look has its XPUB
 * subscriptions cut by closing and rebinding the socket; every subscriber
 * reconnects on its own, through ZAP, which refuses the revoked key. (The
 * ROUTER needs no such thing: it checks the registry on every request.)
 */
static void
registry_check(struct transport *tp)
{
	int64_t now = clock_wall_ms();
	if (!tp->secure || now < tp->next_registry_check_ms)
		return;
	tp->next_registry_check_ms = now + 1000;
	struct fingerprint f = {1469598103934665603ULL};
	store_txn *t = NULL;
	if (store_read_begin(tp->s, &t) != FSD_OK)
		return;
	registry_device_list(t, fingerprint_device, &f);
	store_read_end(&t);
	if (tp->revoked_fingerprint != 0 && f.h != tp->revoked_fingerprint) {
		log_event(LOG_INFO, "a device was revoked: rebinding the reminder socket", NULL);
		zmq_close(tp->pub);
		tp->pub = NULL;
		for (int i = 0; i < 50 && open_reminder_socket(tp) != 0; i++) {
			if (tp->pub != NULL)
				zmq_close(tp->pub);
			tp->pub = NULL;
			struct timespec ts = {0, 100000000};
			nanosleep(&ts, NULL); /* the port is released asynchronously */
		}
	}
	tp->revoked_fingerprint = f.h;
}

static int
setup(struct transport *tp)
{
	int one = 1, hwm = 100000, linger = 2000;
	int64_t maxmsg = (int64_t)tp->c->max_message_bytes;

	tp->peers = calloc(PEERS, sizeof(*tp->peers));
	tp->ctx = zmq_ctx_new();
	if (tp->peers == NULL || tp->ctx == NULL)
		return -1;
	tp->pipe = zmq_socket(tp->ctx, ZMQ_PAIR);
	if (tp->pipe == NULL || zmq_bind(tp->pipe, PIPE_ENDPOINT) != 0)
		return -1;
	int qhwm = 4096;
	zmq_setsockopt(tp->pipe, ZMQ_SNDHWM, &qhwm, sizeof(qhwm));

	if (tp->secure) { /* ZAP before any server socket binds: fail closed */
		tp->zap = zap_start(tp->ctx, tp->s);
		if (tp->zap == NULL) {
			log_event(LOG_ERROR, "cannot start the ZAP handler", NULL);
			return -1;
		}
	}
	/* The PUB is bound before the writer starts: its first round may publish. */
	if (open_reminder_socket(tp) != 0)
		return -1;
	tp->w = writer_start(tp->ctx, PIPE_ENDPOINT, tp->s, tp->c, tp->rem);
	tp->rem = NULL; /* the writer owns it now, even when it failed to start */
	if (tp->w == NULL)
		return -1;

	tp->router = zmq_socket(tp->ctx, ZMQ_ROUTER);
	if (tp->router == NULL)
		return -1;
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
	if (tp->secure && secure_socket(tp, tp->router) != 0)
		return -1;
	/* Connected peers for /metrics: the socket monitor's accept/disconnect events. */
	if (zmq_socket_monitor(tp->router, "inproc://fieldsyncd-monitor",
	                       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0) {
		tp->monitor = zmq_socket(tp->ctx, ZMQ_PAIR);
		if (tp->monitor != NULL && zmq_connect(tp->monitor, "inproc://fieldsyncd-monitor") != 0) {
			zmq_close(tp->monitor);
			tp->monitor = NULL;
		}
	}
	if (zmq_bind(tp->router, tp->c->sync_endpoint) != 0) {
		log_event(LOG_ERROR, "cannot bind the sync endpoint", LS("endpoint", tp->c->sync_endpoint),
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		return -1;
	}
	char bound[256];
	size_t blen = sizeof(bound);
	if (zmq_getsockopt(tp->router, ZMQ_LAST_ENDPOINT, bound, &blen) != 0)
		snprintf(bound, sizeof(bound), "%s", tp->c->sync_endpoint);
	log_event(LOG_INFO, "sync endpoint ready", LS("endpoint", bound),
	          LU("max_message_bytes", tp->c->max_message_bytes), NULL);
	blen = sizeof(bound);
	if (zmq_getsockopt(tp->pub, ZMQ_LAST_ENDPOINT, bound, &blen) != 0)
		snprintf(bound, sizeof(bound), "%s", tp->c->reminder_endpoint);
	log_event(LOG_INFO, "reminder endpoint ready", LS("endpoint", bound), NULL);
	return 0;
}

int
transport_run(const config *c, store *s, reminders *rem)
{
	struct transport tp = {.c = c, .s = s, .rem = rem};
	struct sigaction sa;
	ops_http *ops = NULL;
	int code = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit must fail the write (EFBIG -> BUSY), not kill us. */
	signal(SIGXFSZ, SIG_IGN);

	tp.secure = !c->dev;
	if (tp.secure) {
		char pub[AUTH_Z85_KEY_LEN + 1], err2[300];
		if (!zap_keys_load(c->data_dir, pub, tp.server_secret, err2, sizeof(err2))) {
			log_event(LOG_ERROR, "cannot load the server keys", LS("error", err2), NULL);
			fprintf(stderr, "fieldsyncd: %s\n", err2);
			code = 2;
			goto out;
		}
		log_event(LOG_INFO, "CURVE on; only enrolled devices are admitted",
		          LS("server_public_key", pub), NULL);
	}
	g_ops.s = s;
	g_ops.c = c;
	atomic_store(&g_ops.beat_ms, clock_mono_ms());
	ops_http_hooks hooks = {.alive = ops_alive, .ready = ops_ready,
	                        .before_metrics = ops_before_metrics};
	char err[256];
	ops = ops_http_start(c->ops_listen, &hooks, err, sizeof(err));
	if (ops == NULL) {
		log_event(LOG_ERROR, "cannot serve the ops HTTP endpoint", LS("listen", c->ops_listen),
		          LS("error", err), NULL);
		goto out;
	}
	metrics_set(METRIC_UP, 0, 1);
	if (setup(&tp) != 0) {
		log_event(LOG_ERROR, "start-up failed", NULL);
		goto out;
	}
	atomic_store(&g_ops.bound, true);
	log_event(LOG_INFO, "ops HTTP ready", LS("listen", c->ops_listen),
	          LI("port", ops_http_port(ops)), NULL);
	while (!g_stop) {
		atomic_store(&g_ops.beat_ms, clock_mono_ms());
		registry_check(&tp);
		if (g_reload) {
			g_reload = 0;
			reload(&tp);
		}
		zmq_pollitem_t items[4] = {
			{tp.router, 0, ZMQ_POLLIN, 0},
			{tp.pipe, 0, ZMQ_POLLIN, 0},
			{tp.monitor, 0, tp.monitor ? ZMQ_POLLIN : 0, 0},
			{tp.pub, 0, ZMQ_POLLIN, 0},
		};
		if (zmq_poll(items, tp.secure ? 4 : 3, 1000) < 0) {
			if (zmq_errno() == EINTR)
				continue;
			log_event(LOG_ERROR, "poll failed", LS("error", zmq_strerror(zmq_errno())), NULL);
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			read_pipe(&tp);
		if (items[2].revents & ZMQ_POLLIN)
			read_monitor(&tp);
		if (tp.secure && (items[3].revents & ZMQ_POLLIN))
			xpub_subscription(&tp);
		/* A bounded number per wake-up keeps replies flowing under load. */
		for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); i++) {
			int ev = 0;
			size_t el = sizeof(ev);
			read_router(&tp);
			zmq_getsockopt(tp.router, ZMQ_EVENTS, &ev, &el);
			if (!(ev & ZMQ_POLLIN))
				break;
		}
	}
	atomic_store(&g_ops.draining, true); /* readiness goes false at once */
	metrics_set(METRIC_DRAINING, 0, 1);
	log_event(LOG_INFO, "draining: no new requests; committing and answering what is queued",
	          LU("in_flight", tp.inflight), NULL);
	actor_send_stop(tp.pipe);
	for (;;) {
		atomic_store(&g_ops.beat_ms, clock_mono_ms());
		zmq_pollitem_t it = {tp.pipe, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) < 0 && zmq_errno() != EINTR)
			break;
		if ((it.revents & ZMQ_POLLIN) && !read_pipe(&tp))
			break;
	}
	code = 0;
	log_event(LOG_INFO, "drained", LU("requests", atomic_load(&g_stats.requests)),
	          LU("pushes", atomic_load(&g_stats.pushes)),
	          LU("changes_applied", atomic_load(&g_stats.changes_applied)),
	          LU("commits", atomic_load(&g_stats.commits)),
	          LU("malformed", atomic_load(&g_stats.malformed)),
	          LU("busy", atomic_load(&g_stats.busy)),
	          LU("replies_unroutable", atomic_load(&g_stats.replies_unroutable)),
	          LU("events_published", atomic_load(&g_stats.events_published)),
	          LU("replays", atomic_load(&g_stats.replays)), NULL);
out:
	if (code != 0 && tp.w != NULL)
		actor_send_stop(tp.pipe); /* let a started writer end */
	writer_join(&tp.w);
	ops_http_stop(&ops);
	reminders_free(&tp.rem);
	if (tp.router != NULL)
		zmq_close(tp.router);
	if (tp.pub != NULL)
		zmq_close(tp.pub);
	if (tp.monitor != NULL)
		zmq_close(tp.monitor);
	zap_stop(&tp.zap);
	if (tp.pipe != NULL)
		zmq_close(tp.pipe);
	if (tp.ctx != NULL)
		zmq_ctx_term(tp.ctx);
	free(tp.peers);
	return code;
}
