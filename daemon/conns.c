/*
 * conns: the live TCP connections of one server socket, by descriptor
 * (endpoint layer). See conns.h for the contract.
 *
 * Queued bytes. For each connection the table counts `sent`, the reply
 * bytes handed to libzmq since `acked_base`, the kernel's count of bytes the
 * peer acknowledged (TCP_INFO tcpi_bytes_acked) when counting began. What is
 * still in the daemon is then sent - (acked - acked_base). The wire carries
 * a little more than the replies (ZMTP framing, CURVE boxes, heartbeats), so
 * once the peer has read everything the difference turns negative: the count
 * starts again from there (sent 0, acked_base = acked). The estimate is
 * therefore never above the truth by more than the overhead of the replies
 * since the last restart, and never lasting.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conns.h"
#include "registry.h"

struct conn {
	bool used;
	bool counted; /* TCP_INFO answers: bytes are counted */
	int fd;
	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len;
	char device[AUTH_NAME_MAX + 1];
	uint64_t sent, acked_base;
	uint64_t refused; /* the caller's: refusal bytes since under the bound */
};

struct conns {
	conn *by_fd; /* index: the descriptor */
	size_t cap;
};

conns *
conns_new(void)
{
	return calloc(1, sizeof(conns));
}

void
conns_free(conns **cs)
{
	if (cs == NULL || *cs == NULL)
		return;
	free((*cs)->by_fd);
	free(*cs);
	*cs = NULL;
}

/* Both addresses of fd; false when fd is not a connected socket. */
static bool
addresses(int fd, struct sockaddr_storage *peer, socklen_t *pl, struct sockaddr_storage *local,
          socklen_t *ll)
{
	*pl = sizeof(*peer);
	*ll = sizeof(*local);
	memset(peer, 0, sizeof(*peer));
	memset(local, 0, sizeof(*local));
	return getpeername(fd, (struct sockaddr *)peer, pl) == 0 &&
	       getsockname(fd, (struct sockaddr *)local, ll) == 0;
}

/* fd still is the connection c was noted for. */
static bool
same(const conn *c, int fd)
{
	struct sockaddr_storage peer, local;
	socklen_t pl, ll;
	return c->used && addresses(fd, &peer, &pl, &local, &ll) && pl == c->peer_len &&
	       ll == c->local_len && memcmp(&peer, &c->peer, pl) == 0 &&
	       memcmp(&local, &c->local, ll) == 0;
}

/* The bytes the peer of fd acknowledged; false when the kernel does not say. */
static bool
acked(int fd, uint64_t *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return false;
	*out = ti.tcpi_bytes_acked;
	return true;
}

static bool
grow(conns *cs, int fd)
{
	if ((size_t)fd < cs->cap)
		return true;
	size_t cap = cs->cap ? cs->cap : 256;
	while (cap <= (size_t)fd)
		cap *= 2;
	if (cap > CONNS_FD_MAX)
		cap = CONNS_FD_MAX;
	conn *n = realloc(cs->by_fd, cap * sizeof(*n));
	if (n == NULL)
		return false;
	memset(n + cs->cap, 0, (cap - cs->cap) * sizeof(*n));
	cs->by_fd = n;
	cs->cap = cap;
	return true;
}

conn *
conns_note(conns *cs, int fd, const char *device)
{
	if (cs == NULL || fd < 0 || fd >= CONNS_FD_MAX || !grow(cs, fd))
		return NULL;
	conn *c = &cs->by_fd[fd];
	if (!same(c, fd)) { /* new, or the descriptor now holds another connection */
		memset(c, 0, sizeof(*c));
		if (!addresses(fd, &c->peer, &c->peer_len, &c->local, &c->local_len))
			return NULL;
		c->used = true;
		c->fd = fd;
		c->counted = acked(fd, &c->acked_base);
	}
	if (device != NULL && device[0] != '\0')
		snprintf(c->device, sizeof(c->device), "%s", device);
	return c;
}

conn *
conns_find(conns *cs, int fd)
{
	if (cs == NULL || fd < 0 || (size_t)fd >= cs->cap)
		return NULL;
	conn *c = &cs->by_fd[fd];
	return same(c, fd) ? c : NULL;
}

void
conns_forget(conns *cs, int fd)
{
	if (cs != NULL && fd >= 0 && (size_t)fd < cs->cap)
		memset(&cs->by_fd[fd], 0, sizeof(cs->by_fd[fd]));
}

void
conns_sent(conn *c, size_t len)
{
	if (c != NULL && c->counted)
		c->sent += len;
}

uint64_t
conns_queued(conn *c, uint64_t bound)
{
	uint64_t now;
	if (c == NULL || !c->counted)
		return 0;
	if (c->sent < bound) /* all sent since the last look is below it: no need to ask */
		return c->sent;
	if (!acked(c->fd, &now))
		return 0;
	uint64_t delivered = now - c->acked_base;
	if (delivered >= c->sent) { /* all read: count afresh from here */
		c->sent = 0;
		c->acked_base = now;
		return 0;
	}
	return c->sent - delivered;
}

const char *
conns_device(const conn *c)
{
	return c != NULL ? c->device : "";
}

uint64_t
conns_refused(const conn *c)
{
	return c != NULL ? c->refused : 0;
}

void
conns_set_refused(conn *c, uint64_t bytes)
{
	if (c != NULL)
		c->refused = bytes;
}

size_t
conns_cut(conns *cs, bool (*keep)(void *arg, const char *device), void *arg)
{
	size_t n = 0;
	for (size_t fd = 0; cs != NULL && fd < cs->cap; fd++) {
		conn *c = &cs->by_fd[fd];
		if (!c->used || c->device[0] == '\0' || keep(arg, c->device))
			continue;
		/* only the very connection noted: never a descriptor reused since */
		if (same(c, (int)fd) && shutdown((int)fd, SHUT_RDWR) == 0)
			n++;
		memset(c, 0, sizeof(*c));
	}
	return n;
}

size_t
conns_count(const conns *cs)
{
	size_t n = 0;
	for (size_t fd = 0; cs != NULL && fd < cs->cap; fd++)
		n += cs->by_fd[fd].used;
	return n;
}
