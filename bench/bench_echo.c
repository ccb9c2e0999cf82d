/*
 * bench_echo: the bytes "no echo" (PROTOCOL.md §7) saves. A tablet
 * (replica R) pushes N records through the real fieldsyncd, then its first
 * pull from 0 is measured (wire bytes of every PullReply frame), next to the
 * same pull by another tablet (replica S), which must get everything.
 *
 *   build/bench/bench_echo [--records N]     (default 30000, 200-byte payloads)
 *   FS_TEST_DAEMON_BIN=<old fieldsyncd> build/bench/bench_echo   the old daemon
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

static void
hello(void *s, const char *replica)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = (char *)replica;
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	env_t *r = fs_test_call(s, &e, 10000);
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* Pulls from 0 to the end; returns the reply bytes, *records the count. */
static size_t
pull_bytes(void *s, size_t *records)
{
	uint64_t since = 0, rid = 10;
	size_t bytes = 0;
	*records = 0;
	for (;;) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = ++rid;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 30000);
		if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY) {
			fprintf(stderr, "bench_echo: no pull reply\n");
			exit(1);
		}
		bytes += fieldsync__v1__envelope__get_packed_size(r);
		*records += r->pull_reply->n_records;
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			return bytes;
	}
}

int
main(int argc, char **argv)
{
	size_t n = 30000;
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--records") == 0)
			n = strtoull(argv[i + 1], NULL, 10);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	if (d == NULL)
		return 1;
	void *ctx = zmq_ctx_new();
	void *a = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *b = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	char payload[200], id[32], csid[32], ver[64];
	memset(payload, 'x', sizeof(payload));
	hello(a, "tablet-r");
	for (size_t i = 0; i < n; i += 1000) {
		snprintf(csid, sizeof(csid), "cs-%zu", i);
		fs_test_push *p = fs_test_push_new(csid);
		for (size_t j = i; j < i + 1000 && j < n; j++) {
			snprintf(id, sizeof(id), "r%06zu", j);
			snprintf(ver, sizeof(ver), "tablet-r:%zu", j + 1);
			fs_test_push_add(p, "note", id, "team-a", ver, false, payload, sizeof(payload));
		}
		env_t *r = fs_test_call(a, fs_test_push_envelope(p, 5), 60000);
		fs_test_push_free(p);
		if (r == NULL) {
			fprintf(stderr, "bench_echo: push not answered\n");
			return 1;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	size_t own_n = 0, other_n = 0;
	size_t own = pull_bytes(a, &own_n);
	hello(b, "tablet-s");
	size_t other = pull_bytes(b, &other_n);
	printf("records pushed by the tablet          %zu\n", n);
	printf("its own first pull from 0             %zu records, %zu bytes\n", own_n, own);
	printf("another tablet's first pull from 0    %zu records, %zu bytes\n", other_n, other);
	printf("saved by no echo                      %zu bytes (%.1f%% of the pull)\n",
	       other > own ? other - own : 0, other ? 100.0 * (double)(other - own) / other : 0);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&d);
	return 0;
}
