/*
 * One client connection to fieldsyncd (conn.h): a DEALER with linger 0,
 * CURVE when keys are given, and a call that sends one Envelope and waits
 * for its reply until a deadline.
 *
 * Every wait is a zmq_poll() bounded by the time left before the deadline;
 * closing never waits. A reply is exactly one frame that decodes as an
 * Envelope with the request's id (or an Error with id 0, which answers
 * whatever was asked); a reply to another id (a late answer to an earlier
 * try) is dropped. With a monitor, a CURVE handshake the daemon refuses
 * ends the wait at once with FS_ERR_REFUSED instead of the timeout.
 *
 * Layer: wire. One thread per connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "conn.h"
#include "credential.h"
#include "fieldsync/crypto.h"

typedef Fieldsync__V1__Envelope envelope;

/* ---- CURVE keys ----------------------------------------------------------- */

fs_err
sdk_curve_keys_set(sdk_curve_keys *k, const char *server_z85, const char *public_z85,
                   const char *secret_z85)
{
	memset(k, 0, sizeof(*k));
	if (!sdk_z85_key_decode(server_z85, k->server) ||
	    !sdk_z85_key_decode(public_z85, k->public_key) ||
	    !sdk_z85_key_decode(secret_z85, k->secret) ||
	    !sdk_curve_pair_ok(public_z85, secret_z85)) {
		sdk_curve_keys_wipe(k);
		return FS_ERR_INVALID;
	}
	if (!sdk_curve_supported()) {
		sdk_curve_keys_wipe(k);
		return FS_ERR_NETWORK; /* never fall back to clear */
	}
	k->on = true;
	return FS_OK;
}

void
sdk_curve_keys_wipe(sdk_curve_keys *k)
{
	fsc_cleanse(k, sizeof(*k));
	k->on = false;
}

bool
sdk_curve_supported(void)
{
	return zmq_has("curve");
}

bool
sdk_curve_apply(void *sock, const sdk_curve_keys *k)
{
	if (k == NULL || !k->on)
		return true;
	return zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server, 32) == 0 &&
	       zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, 32) == 0 &&
	       zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret, 32) == 0;
}

void
sdk_drain_frames(void *sock)
{
	int more = 0;
	size_t ml = sizeof(more);
	zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
	while (more) {
		zmq_msg_t x;
		zmq_msg_init(&x);
		if (zmq_msg_recv(&x, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&x);
			break;
		}
		zmq_msg_close(&x);
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
	}
}

/* ---- the handshake monitor -------------------------------------------------- */

#define HANDSHAKE_FAILED                                                         \
	(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | \
	 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

/* A monitor tells a refused handshake from a daemon that is not there. */
static bool
monitor_open(sdk_conn *c)
{
	char ep[64];
	int zero = 0;
	snprintf(ep, sizeof(ep), "inproc://fs-sync-mon-%p", (void *)c);
	if (zmq_socket_monitor(c->sock, ep, HANDSHAKE_FAILED) != 0)
		return false;
	if ((c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) == NULL || zmq_connect(c->mon, ep) != 0)
		return false;
	zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof(zero));
	return true;
}

/* Drains the monitor; true when a handshake failed. */
static bool
monitor_refused(sdk_conn *c)
{
	while (c->mon != NULL) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, c->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			break;
		}
		if (zmq_msg_size(&m) >= 2) { /* frame 1: u16 event, u32 value, host order */
			uint16_t ev;
			memcpy(&ev, zmq_msg_data(&m), sizeof(ev));
			if (c->handshake_failed == 0 && (ev & HANDSHAKE_FAILED) != 0)
				c->handshake_failed = ev;
		}
		zmq_msg_close(&m);
		sdk_drain_frames(c->mon); /* frame 2: the endpoint */
	}
	return c->handshake_failed != 0;
}

/* ---- the connection ------------------------------------------------------- */

/* A random first request id (48 bits, never 0), so replies from another
 * conversation (a reused routing id) can never match. */
static uint64_t
first_request_id(void)
{
	uint8_t b[6];
	uint64_t r = 0;
	if (fsc_random(b, sizeof(b)))
		for (size_t i = 0; i < sizeof(b); i++)
			r = r << 8 | b[i];
	return r + 1;
}

fs_err
sdk_conn_open(sdk_conn *c, void *ctx, const char *endpoint, const sdk_curve_keys *keys,
              bool watch_handshake)
{
	int zero = 0, ivl = 100, ivl_max = 1000;
	int64_t maxmsg = (int64_t)SDK_RECV_MAX;
	bool curve = keys != NULL && keys->on;

	c->own_ctx = ctx == NULL;
	c->cancel = NULL;
	if ((c->ctx = ctx != NULL ? ctx : zmq_ctx_new()) == NULL)
		return FS_ERR_NOMEM;
	if ((c->sock = zmq_socket(c->ctx, ZMQ_DEALER)) == NULL)
		return FS_ERR_NETWORK;
	zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
	if (curve && !sdk_curve_supported())
		return FS_ERR_NETWORK; /* this libzmq cannot encrypt: never fall back to clear */
	if (!sdk_curve_apply(c->sock, keys) || (curve && watch_handshake && !monitor_open(c)))
		return FS_ERR_NETWORK;
	zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
	zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	if (zmq_connect(c->sock, endpoint) != 0)
		return FS_ERR_NETWORK;
	c->next_rid = first_request_id();
	return FS_OK;
}

void
sdk_conn_close(sdk_conn *c)
{
	if (c->mon != NULL)
		zmq_close(c->mon);
	if (c->sock != NULL)
		zmq_close(c->sock);
	if (c->ctx != NULL && c->own_ctx)
		zmq_ctx_term(c->ctx);
	c->sock = c->ctx = c->mon = NULL;
}

bool
sdk_conn_key_refused(const sdk_conn *c)
{
	return c->handshake_failed == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
}

bool
sdk_conn_handshake_failed(const sdk_conn *c)
{
	return c->handshake_failed != 0;
}

/* Milliseconds left before deadline, for zmq_poll; 0 when it has passed. */
static int
remaining(int64_t deadline)
{
	int64_t left = deadline - sdk_mono_ms();
	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/*
 * Waits until the socket is ready for events (ZMQ_POLLIN or ZMQ_POLLOUT),
 * the deadline passes (FS_ERR_TIMEOUT), or the monitor says the server
 * refused us (FS_ERR_REFUSED).
 */
static fs_err
conn_wait(sdk_conn *c, short events, int64_t deadline)
{
	for (;;) {
		zmq_pollitem_t pi[2] = {{c->sock, 0, events, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
		int left = remaining(deadline);
		if (c->cancel != NULL && atomic_load(c->cancel))
			return FS_ERR_CANCELLED;
		if (left == 0)
			return FS_ERR_TIMEOUT;
		if (c->cancel != NULL && left > SDK_CANCEL_POLL_MS)
			left = SDK_CANCEL_POLL_MS; /* look at the flag again soon */
		int n = zmq_poll(pi, c->mon ? 2 : 1, left);
		if (n < 0 && zmq_errno() == EINTR)
			continue;
		if (n < 0)
			return FS_ERR_NETWORK;
		if (monitor_refused(c))
			return FS_ERR_REFUSED;
		if (n > 0 && (pi[0].revents & events))
			return FS_OK;
		/* else: only the monitor spoke, or a spurious wake-up; re-check the deadline */
	}
}

/*
 * Waits for the next reply to request_id (or an Error with request_id 0);
 * drops replies to other ids. Shared by sdk_conn_call and, for the pages
 * of a streaming pull, sdk_conn_recv.
 */
fs_err
sdk_conn_recv(sdk_conn *c, uint64_t request_id, int64_t deadline, envelope **rep)
{
	return sdk_conn_recv_any(c, &request_id, 1, deadline, rep);
}

fs_err
sdk_conn_recv_any(sdk_conn *c, const uint64_t *ids, size_t n, int64_t deadline, envelope **rep)
{
	zmq_msg_t m;

	*rep = NULL;
	if (c->sock == NULL)
		return FS_ERR_NETWORK;
	for (;;) {
		int more = 0;
		size_t more_len = sizeof(more);
		fs_err err;
		if ((err = conn_wait(c, ZMQ_POLLIN, deadline)) != FS_OK)
			return err;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			continue;
		}
		zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
		if (more) { /* a reply is exactly one frame: drain and refuse */
			zmq_msg_close(&m);
			sdk_drain_frames(c->sock);
			return FS_ERR_PROTOCOL;
		}
		envelope *r =
			fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
		zmq_msg_close(&m);
		if (r == NULL)
			return FS_ERR_PROTOCOL;
		bool mine =
			r->request_id == 0 && r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR;
		for (size_t i = 0; i < n && !mine; i++)
			mine = r->request_id == ids[i];
		if (mine) {
			*rep = r;
			return FS_OK;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL); /* a stale reply */
	}
}

fs_err
sdk_conn_send(sdk_conn *c, envelope *e, int64_t deadline)
{
	uint8_t *buf = NULL;
	fs_err err = FS_OK;

	if (c->sock == NULL)
		return FS_ERR_NETWORK; /* never opened, or a reopen failed */
	e->request_id = c->next_rid++;
	size_t len = fieldsync__v1__envelope__get_packed_size(e);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return FS_ERR_NOMEM;
	fieldsync__v1__envelope__pack(e, buf);
	for (;;) {
		if ((err = conn_wait(c, ZMQ_POLLOUT, deadline)) != FS_OK)
			break;
		if (zmq_send(c->sock, buf, len, ZMQ_DONTWAIT) == (int)len)
			break;
		if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
			err = FS_ERR_NETWORK;
			break;
		}
	}
	free(buf);
	return err;
}

fs_err
sdk_conn_call(sdk_conn *c, envelope *e, int64_t deadline, envelope **rep)
{
	fs_err err;

	*rep = NULL;
	if ((err = sdk_conn_send(c, e, deadline)) != FS_OK)
		return err;
	return sdk_conn_recv(c, e->request_id, deadline, rep);
}
