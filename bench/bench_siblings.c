/*
 * bench_siblings: what a hot record costs the daemon (issue 11, break 2).
 *
 *   throughput  C DEALER clients, each waiting for every ack, push one
 *               change per change set for --seconds: "cold" into a record
 *               of its own that never holds more than one sibling, then
 *               "hot" into one record kept at 32 siblings (32 replicas,
 *               each new value replaces its own replica's sibling:
 *               CONFLICT every time). Records/s of both and their ratio,
 *               from the same daemon in the same run.
 *   flood       the sibling flood: 70 concurrent versions of one
 *               record, 1,000,000 bytes each, pipelined from 5 clients,
 *               then one pull with the SDK's receive limit (64 MiB); the
 *               daemon's peak RSS (VmHWM in /proc/<pid>/status) after it,
 *               what the 70 were answered, and whether the pull came back.
 *
 * Every daemon runs with --dev and a master key (encryption at rest on, so
 * sealing is measured), in a fresh directory. With --old-daemon PATH both
 * parts run against that binary too (tests/support's FS_TEST_DAEMON_BIN),
 * one after the other in the same run. Figures go to stdout as Markdown
 * rows; see bench/README.md.
 *
 *   bench_siblings [--seconds S] [--clients C] [--payload BYTES]
 *                  [--old-daemon PATH]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

#define HOT_SIBLINGS 32
#define FLOOD 70
#define FLOOD_CLIENTS 5
#define FLOOD_BYTES 1000000
#define SDK_RECV (64 << 20)
#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

static double g_seconds = 5.0;
static int g_clients = 8, g_payload = 4096;
static char g_key[600];

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static fs_test_daemon *
start(const char *bin)
{
	const char *extra[] = {"--master-key-file", g_key, NULL};
	if (bin != NULL)
		setenv("FS_TEST_DAEMON_BIN", bin, 1);
	else
		unsetenv("FS_TEST_DAEMON_BIN");
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, extra);
	if (d == NULL) {
		fprintf(stderr, "bench_siblings: the daemon %s does not start\n",
		        bin ? bin : "(this build)");
		exit(1);
	}
	return d;
}

/* Sends one change set of one change; false when it could not be sent. */
static bool
send_one(void *s, uint64_t rid, const char *cs, const char *id, const char *ver,
         const uint8_t *payload, size_t len)
{
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, "note", id, "team-a", ver, false, payload, len);
	bool ok = fs_test_send(s, fs_test_push_envelope(p, rid));
	fs_test_push_free(p);
	return ok;
}

/* The status of a one-change reply, -1 for anything else (an Error). */
static int
status_of(env_t *r)
{
	if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY ||
	    r->push_reply->n_results != 1)
		return -1;
	return r->push_reply->results[0]->status;
}

/*
 * C clients push for g_seconds, each one change set at a time. hot: all
 * into note/hot, client k cycling through its share of the 32 replicas;
 * cold: client k into note/cold-k with its own replica. Returns records/s;
 * *bad counts replies that were neither APPLIED nor CONFLICT.
 */
static double
push_run(fs_test_daemon *d, void *ctx, bool hot, uint8_t *payload, long *bad)
{
	void *s[64];
	uint64_t counter[HOT_SIBLINGS] = {0};
	long done = 0;
	*bad = 0;
	for (int k = 0; k < g_clients; k++)
		s[k] = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	/* the hot record starts with its 32 siblings */
	if (hot)
		for (int r = 0; r < HOT_SIBLINGS; r++) {
			char cs[64], ver[64];
			snprintf(cs, sizeof(cs), "seed-%d", r);
			snprintf(ver, sizeof(ver), "hot-r%02d:%llu", r,
			         (unsigned long long)++counter[r]);
			send_one(s[0], 1, cs, "hot", ver, payload, (size_t)g_payload);
			env_t *rep = fs_test_recv(s[0], 60000);
			if (status_of(rep) < 0)
				(*bad)++;
			if (rep != NULL)
				fieldsync__v1__envelope__free_unpacked(rep, NULL);
		}
	int next_replica[64];
	uint64_t seq = 0;
	for (int k = 0; k < g_clients; k++) {
		next_replica[k] = k;
		char cs[64], ver[64], id[32];
		int r = hot ? k % HOT_SIBLINGS : k;
		snprintf(cs, sizeof(cs), "%s-%d-%llu", hot ? "h" : "c", k,
		         (unsigned long long)++seq);
		snprintf(id, sizeof(id), hot ? "hot" : "cold-%d", k);
		snprintf(ver, sizeof(ver), "%s-r%02d:%llu", hot ? "hot" : "cold", r,
		         (unsigned long long)++counter[r]);
		send_one(s[k], seq, cs, id, ver, payload, (size_t)g_payload);
	}
	double t0 = now_s(), t = t0;
	while (t - t0 < g_seconds) {
		zmq_pollitem_t it[64];
		for (int k = 0; k < g_clients; k++)
			it[k] = (zmq_pollitem_t){s[k], 0, ZMQ_POLLIN, 0};
		if (zmq_poll(it, g_clients, 60000) <= 0) {
			fprintf(stderr, "bench_siblings: no reply within 60 s\n");
			exit(1);
		}
		for (int k = 0; k < g_clients; k++) {
			if (!(it[k].revents & ZMQ_POLLIN))
				continue;
			env_t *rep = fs_test_recv(s[k], 0);
			int st = status_of(rep);
			if (st != FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED &&
			    st != FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT)
				(*bad)++;
			if (rep != NULL)
				fieldsync__v1__envelope__free_unpacked(rep, NULL);
			done++;
			/* the next value: hot clients take turns over their replicas */
			char cs[64], ver[64], id[32];
			int r = k;
			if (hot) {
				next_replica[k] += g_clients;
				if (next_replica[k] >= HOT_SIBLINGS)
					next_replica[k] = k % HOT_SIBLINGS;
				r = next_replica[k];
			}
			snprintf(cs, sizeof(cs), "%s-%d-%llu", hot ? "h" : "c", k,
			         (unsigned long long)++seq);
			snprintf(id, sizeof(id), hot ? "hot" : "cold-%d", k);
			snprintf(ver, sizeof(ver), "%s-r%02d:%llu", hot ? "hot" : "cold", r,
			         (unsigned long long)++counter[r]);
			send_one(s[k], seq, cs, id, ver, payload, (size_t)g_payload);
		}
		t = now_s();
	}
	/* the last sends are answered before the sockets go */
	for (int k = 0; k < g_clients; k++) {
		env_t *rep = fs_test_recv(s[k], 60000);
		if (rep != NULL)
			fieldsync__v1__envelope__free_unpacked(rep, NULL);
		zmq_close(s[k]);
	}
	return (double)done / (t - t0);
}

/* VmHWM (peak resident set) of pid, in MiB; -1 when unreadable. */
static double
vm_hwm_mib(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	double kib = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtod(line + 6, NULL);
	fclose(f);
	return kib < 0 ? -1 : kib / 1024.0;
}

struct flood_result {
	int accepted, rejected, other;
	double seconds, hwm_before, hwm_after;
	const char *pull; /* what one pull with the SDK's limit got */
	size_t pull_bytes;
};

static struct flood_result
flood(fs_test_daemon *d, void *ctx)
{
	struct flood_result fr = {0};
	void *s[FLOOD_CLIENTS];
	uint8_t *payload = malloc(FLOOD_BYTES);
	fr.hwm_before = vm_hwm_mib(fs_test_daemon_pid(d));
	for (int k = 0; k < FLOOD_CLIENTS; k++)
		s[k] = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	double t0 = now_s();
	for (int i = 0; i < FLOOD; i++) {
		char cs[32], ver[32];
		for (size_t b = 0; b < FLOOD_BYTES; b++)
			payload[b] = (uint8_t)(b * 131 + (size_t)i * 17);
		snprintf(cs, sizeof(cs), "flood-%d", i);
		snprintf(ver, sizeof(ver), "f%02d:1", i);
		send_one(s[i % FLOOD_CLIENTS], (uint64_t)i + 1, cs, "flooded", ver, payload,
		         FLOOD_BYTES);
	}
	for (int got = 0; got < FLOOD;) {
		zmq_pollitem_t it[FLOOD_CLIENTS];
		for (int k = 0; k < FLOOD_CLIENTS; k++)
			it[k] = (zmq_pollitem_t){s[k], 0, ZMQ_POLLIN, 0};
		if (zmq_poll(it, FLOOD_CLIENTS, 300000) <= 0) {
			fprintf(stderr, "bench_siblings: the flood is not answered\n");
			exit(1);
		}
		for (int k = 0; k < FLOOD_CLIENTS; k++) {
			if (!(it[k].revents & ZMQ_POLLIN))
				continue;
			env_t *rep = fs_test_recv(s[k], 0);
			int st = status_of(rep);
			if (st == FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED)
				fr.rejected++;
			else if (st >= 0)
				fr.accepted++;
			else
				fr.other++;
			if (rep != NULL)
				fieldsync__v1__envelope__free_unpacked(rep, NULL);
			got++;
		}
	}
	fr.seconds = now_s() - t0;
	for (int k = 0; k < FLOOD_CLIENTS; k++)
		zmq_close(s[k]);
	free(payload);

	/* one pull, as the SDK would (its receive limit): does it come back? */
	void *p = zmq_socket(ctx, ZMQ_DEALER);
	int64_t lim = SDK_RECV;
	int zero = 0;
	zmq_setsockopt(p, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(p, ZMQ_MAXMSGSIZE, &lim, sizeof(lim)); /* before connect, as conn.c */
	zmq_connect(p, fs_test_daemon_endpoint(d));
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 77;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *rep = fs_test_call(p, &e, 30000);
	if (rep == NULL)
		fr.pull = "no reply in 30 s (a page past the 64 MiB receive limit is dropped)";
	else if (rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY) {
		fr.pull = "page received";
		fr.pull_bytes = fieldsync__v1__envelope__get_packed_size(rep);
	} else
		fr.pull = "an Error";
	if (rep != NULL)
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	zmq_close(p);
	fr.hwm_after = vm_hwm_mib(fs_test_daemon_pid(d));
	return fr;
}

static void
run(const char *label, const char *bin, void *ctx, uint8_t *payload)
{
	long bad_cold = 0, bad_hot = 0;
	fs_test_daemon *d = start(bin);
	double cold = push_run(d, ctx, false, payload, &bad_cold);
	double hot = push_run(d, ctx, true, payload, &bad_hot);
	fs_test_daemon_stop(&d);
	printf("| %s | %.0f | %.0f | %.2f | %ld |\n", label, cold, hot, cold > 0 ? hot / cold : 0,
	       bad_cold + bad_hot);
	fflush(stdout);
	d = start(bin);
	struct flood_result fr = flood(d, ctx);
	fs_test_daemon_stop(&d);
	fprintf(stderr, "%s flood: %d accepted, %d rejected, %d other in %.1f s\n", label,
	        fr.accepted, fr.rejected, fr.other, fr.seconds);
	char size[48] = "";
	if (fr.pull_bytes)
		snprintf(size, sizeof(size), " (%.1f MiB)", (double)fr.pull_bytes / 1048576.0);
	printf("FLOOD | %s | %d | %d | %.1f | %.0f | %.0f | %s%s |\n", label, fr.accepted,
	       fr.rejected, fr.seconds, fr.hwm_before, fr.hwm_after, fr.pull, size);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	const char *old = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			g_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
			g_clients = atoi(argv[++i]);
		else if (strcmp(argv[i], "--payload") == 0 && i + 1 < argc)
			g_payload = atoi(argv[++i]);
		else if (strcmp(argv[i], "--old-daemon") == 0 && i + 1 < argc)
			old = argv[++i];
		else {
			fprintf(stderr,
			        "usage: bench_siblings [--seconds S] [--clients C] [--payload BYTES] "
			        "[--old-daemon PATH]\n");
			return 2;
		}
	}
	if (g_clients < 1 || g_clients > 32 || g_payload < 1 || g_payload > (1 << 18) ||
	    g_seconds <= 0) {
		fprintf(stderr, "bench_siblings: --clients 1..32, --payload 1..262144\n");
		return 2;
	}
	char *dir = fs_test_tmpdir();
	snprintf(g_key, sizeof(g_key), "%s/master.key", dir);
	int fd = open(g_key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, KEY_LINE, strlen(KEY_LINE)) != (ssize_t)strlen(KEY_LINE)) {
		fprintf(stderr, "bench_siblings: cannot write the master key\n");
		return 1;
	}
	close(fd);
	void *ctx = zmq_ctx_new();
	uint8_t *payload = malloc((size_t)g_payload);
	for (int i = 0; i < g_payload; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	printf("bench_siblings: %d clients, %d-byte payloads, %.0f s per run, "
	       "encryption at rest on\n\n",
	       g_clients, g_payload, g_seconds);
	printf("| daemon | cold records/s | hot (32 siblings) records/s | hot/cold | refused |\n"
	       "|---|---|---|---|---|\n");
	run("this build", NULL, ctx, payload);
	if (old != NULL)
		run("old", old, ctx, payload);
	printf("\nFLOOD rows: | daemon | accepted | rejected | seconds | VmHWM before MiB | "
	       "VmHWM after MiB | pull with a 64 MiB limit |\n");
	free(payload);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(dir);
	free(dir);
	return 0;
}
