/*
 * bench_sdk: libfieldsync against the real daemon.
 *
 *   initial sync  the daemon holds N records (default 100,000, 300-byte
 *                 payloads); an empty tablet store syncs them all: records/s
 *                 and the client process's peak RSS (getrusage, the child
 *                 process alone)
 *   offline edits the tablet makes 1,000 edits offline (each a durable local
 *                 commit), then syncs them in one go: the time of each part
 *   batch         no daemon: 1,000 puts as 1,000 fs_put calls vs one
 *                 fs_put_many of 1,000, each on a fresh store: time and
 *                 the number of fsync/fdatasync/msync calls (counted by
 *                 sync_count.c's wrappers, which LMDB's calls resolve to)
 *
 *   bench_sdk [--records N] [--batch-only]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "sync_count.h"

static double
mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1,000 puts one by one, then 1,000 in one fs_put_many, each on a fresh store. */
static int
batch_vs_single(void)
{
	enum { N = 1000 };
	static char ids[N][16];
	static fs_write w[N];
	char value[300];
	double secs[2];
	long syncs[2];
	memset(value, 'b', sizeof(value));
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "f%04d", i);
		w[i] = (fs_write){"note", ids[i], NULL, value, sizeof(value), false};
	}
	for (int k = 0; k < 2; k++) {
		char *dir = fs_test_tmpdir();
		fs_store *s = NULL;
		if (dir == NULL || fs_store_create(dir, "team-a", &s) != FS_OK)
			return -1;
		long before = sync_count;
		double t0 = mono_s();
		fs_err e = FS_OK;
		if (k == 0)
			for (int i = 0; i < N && e == FS_OK; i++)
				e = fs_put(s, "note", ids[i], NULL, value, sizeof(value));
		else
			e = fs_put_many(s, w, N, NULL);
		secs[k] = mono_s() - t0;
		syncs[k] = sync_count - before;
		fs_store_close(&s);
		fs_test_rm_rf(dir);
		free(dir);
		if (e != FS_OK)
			return -1;
	}
	printf("| 1,000 puts of 300 bytes, one fs_put each | %.3f s (%.3f ms each), %ld syncs |\n",
	       secs[0], secs[0], syncs[0]);
	printf("| the same 1,000 in one fs_put_many | %.4f s (%.1fx faster), %ld syncs |\n",
	       secs[1], secs[0] / secs[1], syncs[1]);
	fflush(stdout);
	return 0;
}

/* Fills the daemon with n opaque records through plain DEALER pushes. */
static int
seed(fs_test_daemon *d, long n)
{
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	char payload[300];
	memset(payload, 's', sizeof(payload));
	int rc = 0;
	for (long base = 0; base < n && rc == 0; base += 1000) {
		char csid[32];
		snprintf(csid, sizeof(csid), "seed-%ld", base);
		fs_test_push *p = fs_test_push_new(csid);
		for (long i = base; i < base + 1000 && i < n; i++) {
			char id[32];
			snprintf(id, sizeof(id), "r%07ld", i);
			fs_test_push_add(p, "note", id, "team-a", "seed:1", false, payload,
			                 sizeof(payload));
		}
		Fieldsync__V1__Envelope *r =
			fs_test_call(s, fs_test_push_envelope(p, (uint64_t)base + 1), 60000);
		if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY)
			rc = -1;
		if (r != NULL)
			fieldsync__v1__envelope__free_unpacked(r, NULL);
		fs_test_push_free(p);
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}

/* The child: what a tablet app does. Writes its figures to fd. */
static int
tablet(const char *dir, const char *endpoint, bool initial, FILE *out)
{
	fs_store *st = NULL;
	fs_sync_stats stats;
	fs_sync_opts o = {.endpoint = endpoint, .timeout_ms = 600000, .pull_limit = 1000};
	fs_err e = initial ? fs_store_create(dir, "team-a", &st) : fs_store_open(dir, &st);
	if (e != FS_OK)
		return 1;
	if (initial) {
		double t0 = mono_s();
		memset(&stats, 0, sizeof(stats));
		e = fs_sync(st, &o, &stats);
		double dt = mono_s() - t0;
		fprintf(out, "initial %llu %.3f %d\n", (unsigned long long)stats.pulled, dt,
		        (int)e);
	} else {
		char value[300];
		memset(value, 'e', sizeof(value));
		double t0 = mono_s();
		for (int i = 0; i < 1000 && e == FS_OK; i++) {
			char id[32];
			snprintf(id, sizeof(id), "r%07d", i * 7);
			e = fs_put(st, "note", id, NULL, (const uint8_t *)value, sizeof(value));
		}
		double put_s = mono_s() - t0;
		t0 = mono_s();
		memset(&stats, 0, sizeof(stats));
		if (e == FS_OK)
			e = fs_sync(st, &o, &stats);
		double sync_s = mono_s() - t0;
		fprintf(out, "edits %llu %.3f %.3f %llu %d\n", (unsigned long long)stats.pushed,
		        put_s, sync_s, (unsigned long long)stats.changesets, (int)e);
	}
	fs_store_close(&st);
	return e == FS_OK ? 0 : 1;
}

/* Runs tablet() in a child process; returns its peak RSS in KiB. */
static long
run_child(const char *dir, const char *endpoint, bool initial, char *line, size_t len)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		FILE *out = fdopen(fds[1], "w");
		int rc = tablet(dir, endpoint, initial, out);
		fclose(out);
		_exit(rc);
	}
	close(fds[1]);
	FILE *in = fdopen(fds[0], "r");
	if (fgets(line, (int)len, in) == NULL)
		line[0] = '\0';
	fclose(in);
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return ru.ru_maxrss;
}

int
main(int argc, char **argv)
{
	long n = 100000;
	bool batch_only = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
			n = atol(argv[++i]);
		else if (strcmp(argv[i], "--batch-only") == 0)
			batch_only = true;
		else {
			fprintf(stderr, "usage: bench_sdk [--records N] [--batch-only]\n");
			return 2;
		}
	}
	if (batch_only) {
		printf("bench_sdk: batch writes on the local store\n\n");
		printf("| measure | value |\n|---|---|\n");
		return batch_vs_single() == 0 ? 0 : 1;
	}
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	if (d == NULL || seed(d, n) != 0) {
		fprintf(stderr, "cannot start or seed the daemon\n");
		return 1;
	}
	char *dir = fs_test_tmpdir();
	char store[600], line[256];
	snprintf(store, sizeof(store), "%s/tablet", dir);

	long rss = run_child(store, fs_test_daemon_endpoint(d), true, line, sizeof(line));
	unsigned long long pulled = 0;
	double secs = 0;
	int err = -1;
	if (rss < 0 || sscanf(line, "initial %llu %lf %d", &pulled, &secs, &err) != 3 || err != 0) {
		fprintf(stderr, "initial sync failed: %s\n", line);
		return 1;
	}
	printf("bench_sdk: a tablet against fieldsyncd --dev on loopback\n\n");
	printf("| measure | value |\n|---|---|\n");
	printf("| initial sync of %ld records (300-byte payloads) to an empty tablet | %.2f s, %.0f records/s |\n",
	       n, secs, (double)pulled / secs);
	printf("| client peak RSS during it | %.1f MiB |\n", (double)rss / 1024);
	fflush(stdout);
	if (batch_vs_single() != 0) {
		fprintf(stderr, "the batch measure failed\n");
		return 1;
	}

	rss = run_child(store, fs_test_daemon_endpoint(d), false, line, sizeof(line));
	unsigned long long pushed = 0, sets = 0;
	double put_s = 0, sync_s = 0;
	if (rss < 0 ||
	    sscanf(line, "edits %llu %lf %lf %llu %d", &pushed, &put_s, &sync_s, &sets, &err) !=
	            5 ||
	    err != 0) {
		fprintf(stderr, "offline edits failed: %s\n", line);
		return 1;
	}
	printf("| 1,000 offline edits: the local puts (each a durable commit) | %.2f s (%.2f ms each) |\n",
	       put_s, put_s);
	printf("| then syncing them in one go (%llu acknowledged, %llu change set(s)) | %.3f s |\n",
	       pushed, sets, sync_s);
	fs_test_rm_rf(dir);
	free(dir);
	fs_test_daemon_stop(&d);
	return 0;
}
