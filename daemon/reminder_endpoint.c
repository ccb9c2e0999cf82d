/*
 * reminder_endpoint: the PUB/XPUB socket subscribers of reminder events
 * connect to (endpoint layer).
 *
 * The writer hands over batches of committed events (daemon.c passes them
 * to reminder_endpoint_publish); each is published as two frames, the topic
 * "reminder/<rule>/<scope>" and the ReminderEvent. PUB drops what a slow
 * subscriber cannot take; every event is stored first, and Replay on the
 * sync endpoint returns it (PROTOCOL.md §6).
 *
 * Policy: --dev binds a plain PUB. Production binds an XPUB in manual mode
 * behind CURVE and ZAP, so the daemon decides what each subscriber gets: a
 * subscription is narrowed to the topics of the scopes its key was granted,
 * and a revocation closes the revoked device's subscriber connections and
 * no other (reminder_endpoint_cut): every subscription message names the
 * connection it came over (conns.c), so the socket is never re-bound and
 * the other subscribers keep their connections, their subscriptions and
 * every event. The closed subscriber reconnects on its own, and ZAP
 * refuses its key.
 *
 * Threads: the socket belongs to the thread that opened it (the main thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clock.h"
#include "conns.h"
#include "fieldsync/crypto.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "registry.h"
#include "reminder_endpoint.h"
#include "zap.h"

struct reminder_endpoint {
	const config *c;
	store *s;
	void *ctx, *pub;
	bool secure;
	char server_secret[AUTH_Z85_KEY_LEN + 1];
	conns *subscribers; /* by descriptor, with their device */
};

/*
 * The reminder socket. --dev: a PUB. Production: an XPUB in manual mode, so
 * the daemon decides what each subscriber gets: a subscription is narrowed
 * to the topics of the scopes its key was granted (see xpub_subscription).
 */
static fsd_err
open_reminder_socket(reminder_endpoint *tp)
{
	int one = 1, linger = 2000;
	/* Per subscriber: at most 1000 queued events and 256 KiB of kernel buffer.
	 * Past that a slow subscriber misses events, never the daemon's memory. */
	int pub_hwm = 1000, pub_sndbuf = 256 * 1024;
	tp->pub = zmq_socket(tp->ctx, tp->secure ? ZMQ_XPUB : ZMQ_PUB);
	if (tp->pub == NULL)
		return FSD_IO;
	zmq_setsockopt(tp->pub, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(tp->pub, ZMQ_SNDHWM, &pub_hwm, sizeof(pub_hwm));
	zmq_setsockopt(tp->pub, ZMQ_SNDBUF, &pub_sndbuf, sizeof(pub_sndbuf));
	if (tp->secure && (zmq_setsockopt(tp->pub, ZMQ_XPUB_MANUAL, &one, sizeof(one)) != 0 ||
	                   zap_secure_socket(tp->pub, tp->server_secret) != FSD_OK))
		return FSD_IO;
	if (zmq_bind(tp->pub, tp->c->reminder_endpoint) != 0) {
		log_event(LOG_ERROR, "cannot bind the reminder endpoint",
		          LS("endpoint", tp->c->reminder_endpoint),
		          LS("error", zmq_strerror(zmq_errno())), NULL);
		return FSD_IO;
	}
	return FSD_OK;
}

/* One subscription message on the XPUB (production only): grant what the key's scopes allow. */
void
reminder_endpoint_read(reminder_endpoint *tp)
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
	const char *user = zmq_msg_gets(&m, "User-Id");
	/* the subscriber's connection, so that a revocation can close it alone */
	bool noted = conns_note(tp->subscribers, zmq_msg_get(&m, ZMQ_SRCFD), user) != NULL;
	if (peer_from_device(tp->s, user, &peer) != FSD_OK) {
		if (noted) /* revoked since its handshake: closed at once */
			reminder_endpoint_cut(tp);
	} else if (n >= 1 && (d[0] == 0 || d[0] == 1)) {
		int opt = d[0] == 1 ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE;
		const char *want = (const char *)d + 1;
		size_t wl = n - 1;
		for (int r = 0; r < RULE_COUNT; r++)
			for (size_t k = 0; k < peer.n_scopes; k++) {
				char topic[200];
				int tl = snprintf(topic, sizeof(topic), "reminder/%s/%s",
				                  rule_name((rule_id)r), peer.scopes[k]);
				if (tl < 0 || (size_t)tl >= sizeof(topic))
					continue;
				if (wl <= (size_t)tl &&
				    memcmp(topic, want, wl) == 0) /* broader: narrow it */
					zmq_setsockopt(tp->pub, opt, topic, (size_t)tl);
				else if (wl > (size_t)tl && memcmp(topic, want, (size_t)tl) == 0)
					zmq_setsockopt(tp->pub, opt, want,
					               wl); /* narrower, inside a grant */
			}
	}
	zmq_msg_close(&m);
}

size_t
reminder_endpoint_cut(reminder_endpoint *tp)
{
	if (tp == NULL || !tp->secure)
		return 0;
	return conns_cut(tp->subscribers, peer_still_enrolled_cb, tp->s);
}

/* Publishes one batch of committed events. PUB never blocks: past the high
 * water mark a subscriber misses events and recovers them by replay. */
void
reminder_endpoint_publish(reminder_endpoint *tp, event_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->label[i] >= 0)
			metrics_inc(METRIC_REMINDER_EVENTS_TOTAL, (size_t)b->label[i], 1);
		if (zmq_send(tp->pub, b->topics[i], strlen(b->topics[i]),
		             ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
		    zmq_send(tp->pub, b->data[i], b->len[i], ZMQ_DONTWAIT) < 0)
			continue;
		atomic_fetch_add(&g_stats.events_published, 1);
		metrics_inc(METRIC_REMINDER_EVENTS_SENT_TOTAL, 0, 1);
	}
	event_batch_free(b);
}

fsd_err
reminder_endpoint_open(void *ctx, const config *c, store *s, const char *server_secret,
                       reminder_endpoint **out)
{
	reminder_endpoint *tp = calloc(1, sizeof(*tp));
	*out = NULL;
	if (tp == NULL)
		return FSD_NOMEM;
	tp->c = c;
	tp->s = s;
	tp->ctx = ctx;
	tp->secure = server_secret != NULL;
	if (tp->secure)
		snprintf(tp->server_secret, sizeof(tp->server_secret), "%s", server_secret);
	if ((tp->subscribers = conns_new()) == NULL) {
		reminder_endpoint_close(&tp);
		return FSD_NOMEM;
	}
	if (open_reminder_socket(tp) != FSD_OK) {
		reminder_endpoint_close(&tp);
		return FSD_IO;
	}
	char bound[256];
	size_t blen = sizeof(bound);
	if (zmq_getsockopt(tp->pub, ZMQ_LAST_ENDPOINT, bound, &blen) != 0)
		snprintf(bound, sizeof(bound), "%s", c->reminder_endpoint);
	log_event(LOG_INFO, "reminder endpoint ready", LS("endpoint", bound), NULL);
	*out = tp;
	return FSD_OK;
}

void *
reminder_endpoint_socket(const reminder_endpoint *re)
{
	return re->pub;
}

void
reminder_endpoint_close(reminder_endpoint **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	if ((*rp)->pub != NULL)
		zmq_close((*rp)->pub);
	conns_free(&(*rp)->subscribers);
	fsc_cleanse((*rp)->server_secret, sizeof((*rp)->server_secret));
	free(*rp);
	*rp = NULL;
}
