/*
 * conns: the live TCP connections of one server socket, by file descriptor,
 * with the device each one authenticated as (endpoint layer).
 *
 * libzmq gives a bound socket no way to drop one peer and no per-peer byte
 * count. It does tell, on every message, which connection it came over:
 * the message property "__fd" (zmq_msg_get(ZMQ_SRCFD)), kept on the
 * subscription messages of an XPUB too. This table keeps what the endpoints
 * need per connection:
 *   - its device (ZAP's User-Id, or --dev's Hello replica), so that a
 *     revocation can close exactly that device's connections
 *     (conns_cut: shutdown(2) of the socket, which libzmq then sees as the
 *     peer going away: its pipe and its subscriptions end, nobody else's);
 *   - the bytes of replies handed to libzmq for it, against the bytes its
 *     kernel acknowledged (TCP_INFO tcpi_bytes_acked), so that what one peer
 *     has queued in the daemon (libzmq's pipe and the socket's send buffer)
 *     is known in bytes (conns_queued).
 * A descriptor is reused after a close: every entry remembers both socket
 * addresses, an entry whose descriptor now has other addresses is started
 * afresh, and nothing is ever shut down whose addresses do not match.
 *
 * A libzmq that stops setting "__fd" (zmq_msg_get answers -1) leaves every
 * connection untracked: no byte bound and no cut, never a wrong one.
 *
 * Not thread-safe: one table per socket, on the thread that owns the socket.
 * Bounded: descriptors at or above CONNS_FD_MAX are not tracked (served
 * without a byte count, and a revocation cannot cut them: ZAP still refuses
 * their next handshake, and the sync endpoint refuses every request).
 */
#ifndef FIELDSYNCD_CONNS_H
#define FIELDSYNCD_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONNS_FD_MAX 65536

typedef struct conns conns;
typedef struct conn conn;

conns *conns_new(void);
void conns_free(conns **cs);

/* The connection behind descriptor fd, noted as device's (NULL or "":
 * not known yet; a known device is never overwritten by ""). NULL when fd is
 * not a TCP socket this table can track (or out of memory). */
conn *conns_note(conns *cs, int fd, const char *device);
/* The connection behind fd when it is tracked and still the same one; NULL
 * otherwise. */
conn *conns_find(conns *cs, int fd);
/* The socket monitor saw fd close (ZMQ_EVENT_DISCONNECTED / CLOSED). */
void conns_forget(conns *cs, int fd);

/* len reply bytes were handed to libzmq for c. */
void conns_sent(conn *c, size_t len);
/* The bytes handed to libzmq for c that its peer's kernel has not
 * acknowledged yet (0 when the kernel does not say). While everything sent
 * since the last full read is below bound, that sum is returned as it is
 * (an upper bound, under the caller's limit) and the kernel is not asked:
 * the request path makes no system call for it until then. */
uint64_t conns_queued(conn *c, uint64_t bound);
const char *conns_device(const conn *c);
/* Bytes of refusals the caller sent c since it was last under its bound (0
 * for NULL); kept by the caller through conns_set_refused. */
uint64_t conns_refused(const conn *c);
void conns_set_refused(conn *c, uint64_t bytes);

/* Shuts down every tracked connection whose device keep() refuses (only
 * connections with a known device are asked). Returns how many. */
size_t conns_cut(conns *cs, bool (*keep)(void *arg, const char *device), void *arg);
/* Tracked connections (for tests and logs). */
size_t conns_count(const conns *cs);

#endif
