/*
 * conn.h - one client connection to fieldsyncd's ROUTER (conn.c): a DEALER
 * socket, CURVE keys from a credential or the watcher's options, a
 * request/reply call bounded by a deadline. Used by sync.c (fs_sync) and
 * watch.c (the watcher's Replay); the watcher's SUB takes the same keys
 * through sdk_curve_apply.
 *
 * Layer: wire (over base and credential; no LMDB).
 *
 * Contract:
 * - An sdk_conn belongs to one thread (a ZeroMQ socket does). It is opened
 *   in a zeroed struct and closed with sdk_conn_close, which is safe on a
 *   half-opened one and never waits (linger 0).
 * - With a context from the caller the connection borrows it (the caller
 *   terminates it after closing every socket); with NULL it owns one.
 * - sdk_curve_keys hold binary secret keys: the holder wipes them with
 *   sdk_curve_keys_wipe; the connection keeps no copy.
 * - Nothing from the network is trusted: a reply must be one frame that
 *   decodes as an Envelope, else FS_ERR_PROTOCOL.
 */
#ifndef FIELDSYNC_SDK_CONN_H
#define FIELDSYNC_SDK_CONN_H

#include <stdatomic.h>

#include "base.h"

#define SDK_RECV_MAX ((uint64_t)64 << 20) /* the largest reply a connection takes */

typedef struct sdk_curve_keys {
	bool on; /* false: clear text */
	uint8_t server[32], public_key[32], secret[32];
} sdk_curve_keys;

/*
 * Sets k from three Z85 keys. FS_ERR_INVALID unless all three decode and
 * the public key belongs to the secret one; FS_ERR_NETWORK when this libzmq
 * has no CURVE (never fall back to clear text). k is wiped on failure.
 */
fs_err sdk_curve_keys_set(sdk_curve_keys *k, const char *server_z85, const char *public_z85,
                          const char *secret_z85);

/* Wipes k (the secret key above all); k->on becomes false. */
void sdk_curve_keys_wipe(sdk_curve_keys *k);

/* True when this libzmq can talk CURVE. */
bool sdk_curve_supported(void);

/* Makes socket sock a CURVE client with k; true (and nothing done) when
 * k is NULL or off. Call before connecting. */
bool sdk_curve_apply(void *sock, const sdk_curve_keys *k);

typedef struct sdk_conn {
	void *ctx, *sock;
	void *mon; /* PAIR on the socket's monitor: handshake failures */
	bool own_ctx;
	uint64_t next_rid;
	int handshake_failed; /* the first ZMQ_EVENT_HANDSHAKE_FAILED_* seen; 0: none */
	/* Set by the owner after sdk_conn_open (NULL there): while it is true,
	 * a call returns FS_ERR_CANCELLED within SDK_CANCEL_POLL_MS. */
	const atomic_bool *cancel;
} sdk_conn;

#define SDK_CANCEL_POLL_MS 50

/*
 * Opens a DEALER in ctx (NULL: a context of its own) and connects it to
 * endpoint, a CURVE client when keys is on. With watch_handshake and keys,
 * a socket monitor turns a refused handshake into FS_ERR_REFUSED at once
 * instead of a timeout. Request ids start at a random point.
 * FS_ERR_NETWORK for a bad endpoint; close c after any failure.
 */
fs_err sdk_conn_open(sdk_conn *c, void *ctx, const char *endpoint, const sdk_curve_keys *keys,
                     bool watch_handshake);

/*
 * Sends e (its request_id set here) and waits until deadline (monotonic ms,
 * sdk_mono_ms) for the reply with the same request_id, or an Error with
 * request_id 0; replies to other ids are dropped. *rep is the caller's to
 * free. FS_ERR_TIMEOUT, FS_ERR_REFUSED (handshake), FS_ERR_NETWORK (also
 * on a connection that is not open), FS_ERR_PROTOCOL (a multi-frame or
 * undecodable reply), FS_ERR_NOMEM.
 */
fs_err sdk_conn_call(sdk_conn *c, Fieldsync__V1__Envelope *e, int64_t deadline,
                     Fieldsync__V1__Envelope **rep);

/* Sends e (its request_id set here) without waiting for an answer: the
 * change sets of a pipelined push. Errors as for sdk_conn_call. */
fs_err sdk_conn_send(sdk_conn *c, Fieldsync__V1__Envelope *e, int64_t deadline);

/* Waits until deadline for a reply to any of the n ids (or an Error with
 * request_id 0), dropping others. Errors as for sdk_conn_call. */
fs_err sdk_conn_recv_any(sdk_conn *c, const uint64_t *ids, size_t n, int64_t deadline,
                         Fieldsync__V1__Envelope **rep);

/*
 * Waits until deadline for one more reply to request_id (an Error with
 * request_id 0 too), dropping others: the later pages of a streaming pull
 * (protocol.md §5.1), which share their PullRequest's id. Errors as for
 * sdk_conn_call.
 */
fs_err sdk_conn_recv(sdk_conn *c, uint64_t request_id, int64_t deadline,
                     Fieldsync__V1__Envelope **rep);

/* The daemon refused this key in the CURVE handshake (revoked, unknown). */
bool sdk_conn_key_refused(const sdk_conn *c);

/* Some CURVE handshake failure was seen (see sdk_conn_key_refused). */
bool sdk_conn_handshake_failed(const sdk_conn *c);

/* Reads and drops the rest of a multi-frame message on sock. */
void sdk_drain_frames(void *sock);

/* Closes the sockets (and the context when owned); safe when half-open or
 * closed. The handshake outcome stays readable. */
void sdk_conn_close(sdk_conn *c);

#endif
