/*
 * linksim: a weak link on loopback. A TCP proxy that imposes, per direction,
 * a bandwidth limit (a token bucket with a burst) and a one-way delay of
 * rtt/2, and counts what crosses. Kernel netem is not available on the
 * machines this runs on; this is user space and single-threaded.
 *
 *   linksim --target HOST:PORT [--listen HOST:PORT] [--down-kbit N]
 *           [--up-kbit N] [--rtt-ms N] [--burst-bytes N] [--queue-bytes N]
 *           [--stats FILE]
 *
 * "up" is client -> target, "down" is target -> client. A rate of 0 means
 * unlimited. --listen defaults to 127.0.0.1:0 (a free port); once listening,
 * linksim prints "linksim listening HOST:PORT" on stdout. On SIGTERM or
 * SIGINT it writes its counters as one JSON line to FILE (or stdout) and
 * exits 0.
 *
 * The model, per direction: bytes read from the sender wait in a bottleneck
 * queue (at most --queue-bytes, default 64 KiB; beyond that linksim stops
 * reading, so TCP pushes back on the sender). They leave it in packets of at
 * most 1448 bytes when the token bucket (the rate; --burst-bytes, default
 * 4096, is what an idle line saves up) holds enough tokens; each packet is
 * stamped with now + rtt/2 and put on a delay queue, from which it is
 * written to the receiver when its time has come. Bytes are delivered in
 * order and never dropped; an end of stream is passed on (shutdown) after
 * the last byte, with the same delay.
 *
 * TCP's handshake costs a round trip on a real link, but on loopback the
 * client's connect() returns at once. linksim therefore lets the client's
 * bytes into the link no earlier than one rtt after the accept (the SYN-ACK's
 * arrival at the client), and connects to the target 1.5 rtt after the accept
 * (the handshake's last ACK reaches the server, whose accept() returns then):
 * the client's first bytes arrive with it, and bytes the server sends first
 * reach the client 2 rtt after its connect, as on a real link.
 *
 * Counters (JSON): connections accepted; bytes_up / bytes_down delivered;
 * packets_up / packets_down; turns: the number of times the client started
 * sending after it had last received (or for the first time on a
 * connection) and more than rtt/2 after its previous send -- a
 * request-response turn as the client sees it (a message split into
 * writes with a fragment of the answer between them is one turn; a
 * pipelined protocol that sends while it receives is overcounted);
 * round_trips = connections + turns (each connection's handshake is one);
 * first_ms / last_ms: the first byte read and the last byte delivered,
 * since linksim started.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 32
#define PACKET 1448

enum { UP = 0, DOWN = 1 };

typedef struct chunk {
	struct chunk *next;
	double due;
	size_t len, off;
	unsigned char data[];
} chunk;

typedef struct bucket {
	double rate; /* bytes per second; 0: unlimited */
	double burst, tokens, last;
	bool backlog; /* data waited for tokens: the line has been busy since */
} bucket;

typedef struct dir {
	int *src, *dst;         /* point into the conn */
	unsigned char *pending; /* read, waiting for tokens */
	size_t npending;
	chunk *head, *tail; /* on the wire, in order */
	bool src_eof, dst_shut;
	double eof_due; /* the end of stream travels with the same delay */
} dir;

typedef struct conn {
	bool used;
	int client, target;
	double t0; /* accept */
	bool target_up;
	int last;       /* UP, DOWN or -1: what the client last did */
	double last_up; /* when the client last sent; 0: never */
	dir d[2];
} conn;

static struct {
	double delay, rtt;
	size_t queue;
	bucket b[2];
	conn c[MAX_CONNS];
	struct sockaddr_in target;
	double start;
	/* counters */
	uint64_t connections, bytes[2], packets[2], turns;
	double first, lastbyte;
} L;

static volatile sig_atomic_t stop_flag;

static void
on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
parse_addr(const char *text, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
refill(bucket *b, double now)
{
	if (b->rate <= 0)
		return;
	b->tokens += (now - b->last) * b->rate;
	/* The burst caps what an idle line saves up. While data waits, the line
	 * is busy, and tokens earned while this process woke up late are time
	 * the line spent sending: keeping them makes the rate exact however
	 * loaded the machine is (the packets then leave a little bunched). */
	if (!b->backlog && b->tokens > b->burst)
		b->tokens = b->burst;
	b->last = now;
}

static void
conn_close(conn *c)
{
	for (int k = 0; k < 2; k++) {
		free(c->d[k].pending);
		for (chunk *p = c->d[k].head, *n; p != NULL; p = n) {
			n = p->next;
			free(p);
		}
	}
	if (c->client >= 0)
		close(c->client);
	if (c->target >= 0)
		close(c->target);
	memset(c, 0, sizeof(*c));
}

static void
conn_open(int fd, double now)
{
	conn *c = NULL;
	for (int i = 0; i < MAX_CONNS && c == NULL; i++)
		if (!L.c[i].used)
			c = &L.c[i];
	if (c == NULL) {
		close(fd);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->client = fd;
	c->target = -1;
	c->t0 = now;
	c->last = -1;
	for (int k = 0; k < 2; k++) {
		c->d[k].pending = malloc(L.queue);
		if (c->d[k].pending == NULL) {
			conn_close(c);
			return;
		}
	}
	c->d[UP].src = &c->client;
	c->d[UP].dst = &c->target;
	c->d[DOWN].src = &c->target;
	c->d[DOWN].dst = &c->client;
	nonblock(fd);
	L.connections++;
}

/* Connects to the target once the SYN would have arrived. false: give up. */
static bool
conn_connect(conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&L.target, sizeof(L.target)) != 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	nonblock(fd);
	c->target = fd;
	c->target_up = true;
	return true;
}

/* Reads what the bottleneck queue has room for. false: the connection broke. */
static bool
dir_read(conn *c, int k, double now)
{
	dir *d = &c->d[k];
	if (d->src_eof || d->npending >= L.queue)
		return true;
	ssize_t n = read(*d->src, d->pending + d->npending, L.queue - d->npending);
	if (n == 0) {
		d->src_eof = true;
		d->eof_due = now + L.delay;
		return true;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (L.first == 0)
		L.first = now;
	d->npending += (size_t)n;
	if (k == UP) {
		/* A new turn: the client received since it last sent, and its last
		 * send is more than half a round trip ago (no answer comes sooner,
		 * so anything sooner belongs to the same flight). */
		if (c->last != UP && (c->last_up == 0 || now - c->last_up >= L.rtt / 2))
			L.turns++;
		c->last = UP;
		c->last_up = now;
	}
	return true;
}

/* Moves packets from the bottleneck onto the wire as tokens allow; returns
 * the time at which more could go (0: nothing waits). */
static double
dir_send(conn *c, int k, double now)
{
	dir *d = &c->d[k];
	bucket *b = &L.b[k];
	if (k == UP && now < c->t0 + L.rtt)
		return d->npending > 0 ? c->t0 + L.rtt : 0;
	refill(b, now);
	while (d->npending > 0) {
		size_t n = d->npending < PACKET ? d->npending : PACKET;
		if (b->rate > 0 && b->tokens < (double)n) {
			b->backlog = true;
			return now + ((double)n - b->tokens) / b->rate;
		}
		chunk *p = malloc(sizeof(*p) + n);
		if (p == NULL)
			return now + 0.001;
		p->next = NULL;
		p->due = now + L.delay;
		p->len = n;
		p->off = 0;
		memcpy(p->data, d->pending, n);
		memmove(d->pending, d->pending + n, d->npending - n);
		d->npending -= n;
		if (b->rate > 0)
			b->tokens -= (double)n;
		if (d->tail != NULL)
			d->tail->next = p;
		else
			d->head = p;
		d->tail = p;
	}
	b->backlog = false;
	return 0;
}

/* Delivers the packets whose time has come. false: the connection broke. */
static bool
dir_deliver(conn *c, int k, double now, bool *blocked)
{
	dir *d = &c->d[k];
	*blocked = false;
	while (d->head != NULL && d->head->due <= now) {
		chunk *p = d->head;
		ssize_t n = write(*d->dst, p->data + p->off, p->len - p->off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				*blocked = true;
				return true;
			}
			return false;
		}
		p->off += (size_t)n;
		L.bytes[k] += (uint64_t)n;
		L.lastbyte = now;
		if (k == DOWN)
			c->last = DOWN;
		if (p->off < p->len) {
			*blocked = true;
			return true;
		}
		L.packets[k]++;
		d->head = p->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(p);
	}
	if (d->src_eof && d->npending == 0 && d->head == NULL && !d->dst_shut &&
	    now >= d->eof_due) {
		shutdown(*d->dst, SHUT_WR);
		d->dst_shut = true;
	}
	return true;
}

static void
write_stats(const char *path)
{
	FILE *f = path != NULL ? fopen(path, "w") : stdout;
	if (f == NULL)
		f = stdout;
	fprintf(f,
	        "{\"connections\":%llu,\"bytes_up\":%llu,\"bytes_down\":%llu,\"packets_up\":%llu,"
	        "\"packets_down\":%llu,\"turns\":%llu,\"round_trips\":%llu,\"first_ms\":%.1f,"
	        "\"last_ms\":%.1f}\n",
	        (unsigned long long)L.connections, (unsigned long long)L.bytes[UP],
	        (unsigned long long)L.bytes[DOWN], (unsigned long long)L.packets[UP],
	        (unsigned long long)L.packets[DOWN], (unsigned long long)L.turns,
	        (unsigned long long)(L.connections + L.turns),
	        L.first > 0 ? (L.first - L.start) * 1000 : 0.0,
	        L.lastbyte > 0 ? (L.lastbyte - L.start) * 1000 : 0.0);
	if (f != stdout)
		fclose(f);
	else
		fflush(f);
}

static void
usage(void)
{
	fprintf(stderr, "usage: linksim --target HOST:PORT [--listen HOST:PORT] [--down-kbit N] "
	                "[--up-kbit N] [--rtt-ms N] [--burst-bytes N] [--queue-bytes N] "
	                "[--stats FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *listen_at = "127.0.0.1:0", *target = NULL, *stats = NULL;
	double down_kbit = 0, up_kbit = 0, rtt_ms = 0, burst = 4096;
	L.queue = 64 * 1024;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--listen") == 0)
			listen_at = v;
		else if (strcmp(a, "--target") == 0)
			target = v;
		else if (strcmp(a, "--down-kbit") == 0)
			down_kbit = atof(v);
		else if (strcmp(a, "--up-kbit") == 0)
			up_kbit = atof(v);
		else if (strcmp(a, "--rtt-ms") == 0)
			rtt_ms = atof(v);
		else if (strcmp(a, "--burst-bytes") == 0)
			burst = atof(v);
		else if (strcmp(a, "--queue-bytes") == 0)
			L.queue = (size_t)atol(v);
		else if (strcmp(a, "--stats") == 0)
			stats = v;
		else
			usage();
	}
	struct sockaddr_in la;
	if (target == NULL || parse_addr(target, &L.target) != 0 ||
	    parse_addr(listen_at, &la) != 0 || L.queue < PACKET || burst < PACKET)
		usage();
	L.rtt = rtt_ms / 1000;
	L.delay = L.rtt / 2;
	L.start = now_s();
	L.b[UP] = (bucket){.rate = up_kbit * 1000 / 8,
	                   .burst = burst,
	                   .tokens = burst,
	                   .last = L.start};
	L.b[DOWN] = (bucket){.rate = down_kbit * 1000 / 8,
	                     .burst = burst,
	                     .tokens = burst,
	                     .last = L.start};

	signal(SIGPIPE, SIG_IGN);
	sigset_t block, empty;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &empty);
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t sl = sizeof(la);
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&la, &sl) != 0) {
		perror("linksim: listen");
		return 1;
	}
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	char host[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &la.sin_addr, host, sizeof(host));
	printf("linksim listening %s:%d\n", host, ntohs(la.sin_port));
	fflush(stdout);

	while (!stop_flag) {
		double now = now_s();
		double wake = now + 1.0;
		struct pollfd pf[1 + 2 * MAX_CONNS];
		conn *owner[1 + 2 * MAX_CONNS];
		int np = 0;
		pf[np] = (struct pollfd){.fd = lfd, .events = POLLIN};
		owner[np++] = NULL;
		for (int i = 0; i < MAX_CONNS; i++) {
			conn *c = &L.c[i];
			if (!c->used)
				continue;
			if (!c->target_up) {
				if (now >= c->t0 + L.rtt + L.delay) {
					if (!conn_connect(c)) {
						conn_close(c);
						continue;
					}
				} else if (c->t0 + L.rtt + L.delay < wake)
					wake = c->t0 + L.rtt + L.delay;
			}
			bool broken = false, blocked[2] = {false, false};
			for (int k = 0; k < 2 && !broken; k++) {
				if (*c->d[k].src < 0)
					continue;
				double t = dir_send(c, k, now);
				if (t > 0 && t < wake)
					wake = t;
				if (*c->d[k].dst >= 0 && !dir_deliver(c, k, now, &blocked[k]))
					broken = true;
				if (c->d[k].head != NULL && !blocked[k] && c->d[k].head->due < wake)
					wake = c->d[k].head->due;
				if (c->d[k].src_eof && !c->d[k].dst_shut && c->d[k].eof_due < wake)
					wake = c->d[k].eof_due;
			}
			if (broken || (c->d[UP].dst_shut && c->d[DOWN].dst_shut)) {
				conn_close(c);
				continue;
			}
			/* client: read (up) when room; write (down) when blocked */
			short ev = 0;
			if (!c->d[UP].src_eof && c->d[UP].npending < L.queue)
				ev |= POLLIN;
			if (blocked[DOWN])
				ev |= POLLOUT;
			pf[np] = (struct pollfd){.fd = ev ? c->client : -1, .events = ev};
			owner[np++] = c;
			if (c->target >= 0) {
				ev = 0;
				if (!c->d[DOWN].src_eof && c->d[DOWN].npending < L.queue)
					ev |= POLLIN;
				if (blocked[UP])
					ev |= POLLOUT;
				pf[np] = (struct pollfd){.fd = ev ? c->target : -1, .events = ev};
				owner[np++] = c;
			}
		}
		double dt = wake - now;
		if (dt < 0)
			dt = 0;
		struct timespec ts = {.tv_sec = (time_t)dt,
		                      .tv_nsec = (long)((dt - (double)(time_t)dt) * 1e9)};
		int r = ppoll(pf, (nfds_t)np, &ts, &empty);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("linksim: ppoll");
			break;
		}
		now = now_s();
		if (pf[0].revents & POLLIN) {
			int fd;
			while ((fd = accept(lfd, NULL, NULL)) >= 0)
				conn_open(fd, now);
		}
		for (int j = 1; j < np; j++) {
			conn *c = owner[j];
			if (!c->used || !(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int k = j > 0 && owner[j - 1] == c ? DOWN : UP;
			if (!dir_read(c, k, now))
				conn_close(c);
		}
	}
	write_stats(stats);
	for (int i = 0; i < MAX_CONNS; i++)
		if (L.c[i].used)
			conn_close(&L.c[i]);
	close(lfd);
	return 0;
}
