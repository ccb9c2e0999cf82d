/*
 * bench_unread: the daemon's memory when one peer pipelines pulls and never
 * reads the replies (issue 11, "bounded memory per peer"). The real
 * fieldsyncd (--dev) stores 8 records of 128 KiB (a pull from 0 is a page of
 * about 1 MiB); a DEALER that reads nothing (RCVHWM 1, a 64 KiB receive
 * buffer, so the replies stay on the daemon's side) sends N pulls; once
 * /metrics counts them all, the daemon's VmRSS is read again. Then the peer
 * reads what it was sent: pages and BUSY answers.
 *
 *   build/bench/bench_unread [--pulls N] [--bound BYTES]
 *        (default 300 pulls; --bound sets FIELDSYNC_PEER_QUEUE_MAX_BYTES,
 *         default: the daemon's own, 64 MiB)
 *   FS_TEST_DAEMON_BIN=<old fieldsyncd> build/bench/bench_unread   the old daemon
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

#define RECORDS 8
#define RECORD_BYTES (128 << 10)

static long
rss_kib(const fs_test_daemon *d)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", fs_test_daemon_pid(d));
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static long
pulls_served(const fs_test_daemon *d)
{
	static const char key[] = "fieldsync_requests_total{type=\"pull\"} ";
	char *body = NULL;
	long n = -1;
	if (fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body) == 200) {
		const char *at = strstr(body, key);
		if (at != NULL)
			n = atol(at + strlen(key));
	}
	free(body);
	return n;
}

static bool
send_pull(void *s, uint64_t rid)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = rid;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	return fs_test_send(s, &e);
}

int
main(int argc, char **argv)
{
	int pulls = 300;
	const char *bound = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--pulls") == 0)
			pulls = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--bound") == 0)
			bound = argv[i + 1];
	}
	if (bound != NULL)
		setenv("FIELDSYNC_PEER_QUEUE_MAX_BYTES", bound, 1);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	if (d == NULL) {
		fprintf(stderr, "bench_unread: the daemon did not start\n");
		return 1;
	}
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	static uint8_t payload[RECORD_BYTES];
	memset(payload, 'x', sizeof(payload));
	fs_test_push *p = fs_test_push_new("cs-big");
	for (int i = 0; i < RECORDS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "big-%d", i);
		fs_test_push_add(p, "note", id, "team-a", "w:1", false, payload, sizeof(payload));
	}
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 1), 30000);
	fs_test_push_free(p);
	if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
		fprintf(stderr, "bench_unread: the records were not stored\n");
		return 1;
	}
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	send_pull(s, 2); /* one page read, so the page path is warm */
	r = fs_test_recv(s, 10000);
	size_t page = r != NULL ? fieldsync__v1__envelope__get_packed_size(r) : 0;
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	long served0 = pulls_served(d), rss0 = rss_kib(d);

	void *hog = zmq_socket(ctx, ZMQ_DEALER);
	int one = 1, small = 65536, zero = 0;
	zmq_setsockopt(hog, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(hog, ZMQ_RCVHWM, &one, sizeof(one));
	zmq_setsockopt(hog, ZMQ_RCVBUF, &small, sizeof(small));
	zmq_connect(hog, fs_test_daemon_endpoint(d));
	for (int i = 0; i < pulls; i++)
		send_pull(hog, 100 + (uint64_t)i);
	long served = served0;
	for (int i = 0; i < 1200 && served < served0 + pulls; i++) {
		usleep(100000);
		served = pulls_served(d);
	}
	usleep(500000); /* the last replies reach the socket */
	long rss1 = rss_kib(d);

	int pages = 0, busy = 0;
	for (int i = 0; i < pulls; i++) {
		env_t *m = fs_test_recv(hog, 3000);
		if (m == NULL)
			break;
		pages += m->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
		busy += m->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR &&
		        m->error->code == FIELDSYNC__V1__ERROR__CODE__BUSY;
		fieldsync__v1__envelope__free_unpacked(m, NULL);
	}
	const char *bin = getenv("FS_TEST_DAEMON_BIN");
	printf("daemon: %s\n", bin != NULL && bin[0] ? bin : "this build");
	printf("bound: %s\n", bound != NULL ? bound : "the daemon's default");
	printf("page: %zu bytes; unread pulls: %d (served: %ld)\n", page, pulls, served - served0);
	printf("RSS before: %ld KiB, after: %ld KiB, growth: %.1f MiB\n", rss0, rss1,
	       (double)(rss1 - rss0) / 1024.0);
	printf("the peer then read: %d pages, %d BUSY\n", pages, busy);
	zmq_close(hog);
	zmq_close(s);
	fs_test_daemon_stop(&d);
	zmq_ctx_term(ctx);
	return 0;
}
