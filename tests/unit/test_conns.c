/*
 * conns (endpoint layer): per-connection devices and unread bytes, on real
 * loopback TCP sockets. A cut closes exactly the refused device's
 * connections, never a descriptor that was reused since; the unread count
 * follows what the peer's kernel acknowledged.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"

static int g_listener;
static struct sockaddr_in g_addr;

static void
setup(void)
{
	socklen_t len = sizeof(g_addr);
	g_listener = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(g_listener, 0);
	memset(&g_addr, 0, sizeof(g_addr));
	g_addr.sin_family = AF_INET;
	g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(g_listener, (struct sockaddr *)&g_addr, sizeof(g_addr)), 0);
	cr_assert_eq(listen(g_listener, 8), 0);
	cr_assert_eq(getsockname(g_listener, (struct sockaddr *)&g_addr, &len), 0);
}

static void
teardown(void)
{
	close(g_listener);
}

TestSuite(conns, .init = setup, .fini = teardown, .timeout = 60);

/* A connected pair: *server is the accepted end (the daemon's), returns the
 * client end. */
static int
pair_rcvbuf(int *server, int rcvbuf)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(c, 0);
	if (rcvbuf > 0) /* before connect: the window is small from the start */
		setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	cr_assert_eq(connect(c, (struct sockaddr *)&g_addr, sizeof(g_addr)), 0);
	*server = accept(g_listener, NULL, NULL);
	cr_assert_geq(*server, 0);
	return c;
}

static int
pair(int *server)
{
	return pair_rcvbuf(server, 0);
}

/* True when the peer of fd sees end of file (waits up to 5 s). */
static bool
sees_eof(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	char b;
	return poll(&p, 1, 5000) == 1 && read(fd, &b, 1) == 0;
}

static bool
refuse_a(void *arg, const char *device)
{
	(void)arg;
	return strcmp(device, "tab-a") != 0;
}

Test(conns, a_cut_closes_the_refused_devices_connections_only)
{
	conns *cs = conns_new();
	int sa1, sa2, sb, sx;
	int ca1 = pair(&sa1), ca2 = pair(&sa2), cb = pair(&sb), cx = pair(&sx);
	cr_assert_not_null(conns_note(cs, sa1, "tab-a"));
	cr_assert_not_null(conns_note(cs, sa2, "tab-a"));
	cr_assert_not_null(conns_note(cs, sb, "tab-b"));
	cr_assert_not_null(conns_note(cs, sx, NULL)); /* no device known: never cut */
	cr_expect_eq(conns_count(cs), 4);
	cr_expect_eq(conns_cut(cs, refuse_a, NULL), 2);
	cr_expect(sees_eof(ca1));
	cr_expect(sees_eof(ca2));
	/* the others still talk */
	cr_assert_eq(write(sb, "x", 1), 1);
	char b;
	cr_expect_eq(read(cb, &b, 1), 1);
	cr_assert_eq(write(sx, "y", 1), 1);
	cr_expect_eq(read(cx, &b, 1), 1);
	cr_expect_eq(conns_count(cs), 2);
	close(ca1), close(ca2), close(cb), close(cx);
	close(sa1), close(sa2), close(sb), close(sx);
	conns_free(&cs);
}

Test(conns, a_reused_descriptor_is_never_cut)
{
	conns *cs = conns_new();
	int s1, s2;
	int c1 = pair(&s1);
	cr_assert_not_null(conns_note(cs, s1, "tab-a"));
	int c2 = pair(&s2);
	close(s1); /* the connection ends; its number is taken by another one */
	cr_assert_eq(dup2(s2, s1), s1);
	close(s2);
	s2 = s1;
	cr_expect_null(conns_find(cs, s2), "another connection now");
	cr_expect_eq(conns_cut(cs, refuse_a, NULL), 0, "the new connection is not tab-a's");
	cr_assert_eq(write(s2, "x", 1), 1);
	char b;
	cr_expect_eq(read(c2, &b, 1), 1, "and it still talks");
	close(c1), close(c2), close(s2);
	conns_free(&cs);
}

Test(conns, unread_bytes_follow_what_the_peer_acknowledged)
{
	conns *cs = conns_new();
	int s;
	int c = pair_rcvbuf(&s, 65536);
	conn *k = conns_note(cs, s, "tab-a");
	cr_assert_not_null(k);
	cr_expect_eq(conns_queued(k, 0), 0);

	/* 4 MiB sent, nothing read: most of it is still here */
	fcntl(s, F_SETFL, O_NONBLOCK);
	static char buf[1 << 16];
	size_t sent = 0;
	while (sent < (4u << 20)) {
		ssize_t n = write(s, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {s, POLLOUT, 0};
			if (poll(&p, 1, 200) == 0)
				break; /* the kernel holds no more: the rest stays in "libzmq" */
			continue;
		}
		cr_assert_gt(n, 0);
		sent += (size_t)n;
	}
	conns_sent(k, 4u << 20); /* what was handed over, written or not */
	cr_expect_eq(conns_queued(k, 8u << 20), 4u << 20,
	             "under the bound: what was sent, without asking the kernel");
	uint64_t q = conns_queued(k, 0);
	cr_expect_gt(q, 2u << 20, "unread: %llu of 4 MiB", (unsigned long long)q);
	cr_expect_leq(q, 4u << 20);

	/* the peer reads it all: the count goes to 0 (and starts afresh) */
	fcntl(s, F_SETFL, 0);
	size_t got = 0;
	while (got < sent) {
		ssize_t n = read(c, buf, sizeof(buf));
		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	conns_sent(k, 0);
	for (int i = 0; i < 500 && conns_queued(k, 0) > (4u << 20) - sent; i++)
		usleep(10000); /* the last ACKs are on their way */
	cr_expect_eq(conns_queued(k, 0), (4u << 20) - sent,
	             "what the kernel never took is all that is left");
	close(c), close(s);
	conns_free(&cs);
}
