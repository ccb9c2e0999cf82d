/*
 * test_linksim: bytes go through linksim intact, in order, both ways at
 * once, with the end of stream passed on, and its counters add up. No timed
 * assertion: the throughput is printed, never checked.
 *
 *   test_linksim           (LINKSIM_BIN is compiled in)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fprintf(stderr, "\n");                               \
			failures++;                                          \
		}                                                            \
	} while (0)

/* The byte at offset i of stream `seed`: not periodic within a stream. */
static unsigned char
pattern(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32);
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (unsigned char)x;
}

typedef struct pump {
	int fd;
	uint32_t out_seed, in_seed;
	uint64_t out_n;
	uint64_t got, bad_at; /* bad_at: first wrong offset + 1, 0 if none */
	bool eof;
} pump;

/* Writes out_n bytes (then a half-close) while reading until end of stream. */
static void *
pump_run(void *arg)
{
	pump *p = arg;
	uint64_t sent = 0;
	bool shut = false;
	unsigned char buf[16384];
	while (!p->eof || !shut) {
		struct pollfd pf = {.fd = p->fd,
		                    .events = (p->eof ? 0 : POLLIN) | (shut ? 0 : POLLOUT)};
		if (poll(&pf, 1, 30000) <= 0)
			break;
		if (!shut && (pf.revents & POLLOUT)) {
			size_t n = sizeof(buf);
			if (p->out_n - sent < n)
				n = (size_t)(p->out_n - sent);
			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(p->out_seed, sent + i);
			ssize_t w = n > 0 ? send(p->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
			if (w > 0)
				sent += (uint64_t)w;
			if (sent == p->out_n) {
				shutdown(p->fd, SHUT_WR);
				shut = true;
			}
		}
		if (pf.revents & (POLLIN | POLLHUP)) {
			ssize_t r = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 0)
				p->eof = true;
			for (ssize_t i = 0; i < r; i++)
				if (p->bad_at == 0 &&
				    buf[i] != pattern(p->in_seed, p->got + (uint64_t)i))
					p->bad_at = p->got + (uint64_t)i + 1;
			if (r > 0)
				p->got += (uint64_t)r;
		}
	}
	return NULL;
}

typedef struct server {
	int lfd, nconn;
	uint64_t down_n;
	pump p[4];
} server;

static void *
server_run(void *arg)
{
	server *s = arg;
	pthread_t t[4];
	for (int i = 0; i < s->nconn; i++) {
		int fd = accept(s->lfd, NULL, NULL);
		s->p[i] = (pump){.fd = fd, .out_seed = 100, .in_seed = 200, .out_n = s->down_n};
		pthread_create(&t[i], NULL, pump_run, &s->p[i]);
	}
	for (int i = 0; i < s->nconn; i++) {
		pthread_join(t[i], NULL);
		close(s->p[i].fd);
	}
	return NULL;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs nconn connections at once through one linksim with args. */
static void
run_case(const char *name, int nconn, uint64_t up_n, uint64_t down_n, const char *down_kbit,
         const char *up_kbit, const char *rtt_ms)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	listen(lfd, 8);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	char target[64], stats[] = "/tmp/test_linksim_XXXXXX";
	snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(sa.sin_port));
	int sfd = mkstemp(stats);
	close(sfd);

	int out[2];
	if (pipe(out) != 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(LINKSIM_BIN, "linksim", "--target", target, "--down-kbit", down_kbit,
		      "--up-kbit", up_kbit, "--rtt-ms", rtt_ms, "--stats", stats, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *in = fdopen(out[0], "r");
	char line[128], host[64];
	int port = 0;
	if (fgets(line, sizeof(line), in) == NULL ||
	    sscanf(line, "linksim listening %63[^:]:%d", host, &port) != 2) {
		CHECK(false, "%s: linksim did not start", name);
		return;
	}

	server s = {.lfd = lfd, .nconn = nconn, .down_n = down_n};
	pthread_t st;
	pthread_create(&st, NULL, server_run, &s);
	pump c[4];
	pthread_t ct[4];
	double t0 = now_s();
	for (int i = 0; i < nconn; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in pa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		inet_pton(AF_INET, host, &pa.sin_addr);
		CHECK(connect(fd, (struct sockaddr *)&pa, sizeof(pa)) == 0, "%s: connect", name);
		c[i] = (pump){.fd = fd, .out_seed = 200, .in_seed = 100, .out_n = up_n};
		pthread_create(&ct[i], NULL, pump_run, &c[i]);
	}
	for (int i = 0; i < nconn; i++) {
		pthread_join(ct[i], NULL);
		close(c[i].fd);
	}
	double dt = now_s() - t0;
	pthread_join(st, NULL);
	close(lfd);
	kill(pid, SIGTERM);
	int status;
	waitpid(pid, &status, 0);
	fclose(in);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: linksim exit", name);

	for (int i = 0; i < nconn; i++) {
		CHECK(c[i].got == down_n && c[i].bad_at == 0 && c[i].eof,
		      "%s: client %d got %llu of %llu bytes (first bad at %llu, eof %d)", name, i,
		      (unsigned long long)c[i].got, (unsigned long long)down_n,
		      (unsigned long long)c[i].bad_at, c[i].eof);
		CHECK(s.p[i].got == up_n && s.p[i].bad_at == 0 && s.p[i].eof,
		      "%s: server %d got %llu of %llu bytes (first bad at %llu, eof %d)", name, i,
		      (unsigned long long)s.p[i].got, (unsigned long long)up_n,
		      (unsigned long long)s.p[i].bad_at, s.p[i].eof);
	}
	FILE *f = fopen(stats, "r");
	unsigned long long conns = 0, bup = 0, bdown = 0;
	if (f == NULL || fscanf(f, "{\"connections\":%llu,\"bytes_up\":%llu,\"bytes_down\":%llu",
	                        &conns, &bup, &bdown) != 3)
		CHECK(false, "%s: no stats", name);
	if (f != NULL)
		fclose(f);
	unlink(stats);
	CHECK(conns == (unsigned long long)nconn && bup == up_n * (uint64_t)nconn &&
	              bdown == down_n * (uint64_t)nconn,
	      "%s: stats %llu connections, %llu up, %llu down", name, conns, bup, bdown);
	printf("%s: %d connection(s), %llu up + %llu down bytes in %.2f s (%.0f kbit/s down)\n",
	       name, nconn, (unsigned long long)up_n, (unsigned long long)down_n, dt,
	       (double)down_n * (double)nconn * 8 / dt / 1000);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	run_case("shaped", 1, 1 << 20, 3 << 20, "80000", "40000", "20");
	run_case("concurrent", 3, 300000, 700001, "0", "0", "0");
	run_case("tiny", 1, 1, 0, "1000", "400", "100");
	run_case("empty", 1, 0, 0, "1000", "400", "10");
	if (failures != 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
