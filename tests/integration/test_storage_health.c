/*
 * Storage health (issue 12, found by the fault sweep): one failed LMDB write
 * must not leave the daemon refusing every push, and while storage fails
 * /readyz must say so.
 *
 * The daemon runs under `fiu-run -x` (libfiu's POSIX preload); fiu-ctrl
 * makes the calls of one commit fail with EIO:
 *   - pwrite, once: LMDB's write of the meta page, the last write of a
 *     commit. LMDB then stops the environment (MDB_PANIC): release 1 and
 *     main answered every later push UNAVAILABLE until a restart. Now the
 *     next push is acknowledged, without a restart.
 *   - fdatasync, for as long as it is enabled: every commit fails. Release
 *     1 and main answered BUSY and /readyz said 200 ("ready") all along.
 *     Now /readyz says 503 with the reason, and 200 again by itself once
 *     the disk works (the writer's probe commit), before any push.
 *   - pwrite, for as long as it is enabled: a panicked environment that
 *     cannot be reopened and proven yet: 503, then 200 by itself.
 * Every acknowledged change set is there after a clean restart.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

#define PER_SET 3

/* The daemon of the running test: stopped by cleanup() even when an
 * assertion ends the test early (else it would outlive the test). */
static fs_test_daemon *g_d;

static void
cleanup(void)
{
	fs_test_daemon_stop(&g_d);
}

static bool
have_fiu(void)
{
	return system("command -v fiu-run >/dev/null 2>&1 && command -v fiu-ctrl >/dev/null 2>&1") ==
	       0;
}

static void
fiu_ctrl(fs_test_daemon *d, const char *cmd)
{
	char line[512];
	snprintf(line, sizeof(line), "timeout 10 fiu-ctrl -c '%s' %d", cmd, fs_test_daemon_pid(d));
	cr_assert_eq(system(line), 0, "fiu-ctrl reaches the daemon: %s", cmd);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static env_t *
push_set(void *s, int set, uint64_t rid)
{
	char csid[32], id[32], ver[32];
	snprintf(csid, sizeof(csid), "health-%d", set);
	fs_test_push *p = fs_test_push_new(csid);
	for (int j = 0; j < PER_SET; j++) {
		snprintf(id, sizeof(id), "h%d-%d", set, j);
		snprintf(ver, sizeof(ver), "hl:%d", set * PER_SET + j + 1);
		fs_test_push_add(p, "note", id, "team-a", ver, false, "payload", 7);
	}
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid), 10000);
	fs_test_push_free(p);
	return r;
}

static bool
acked(const env_t *r)
{
	if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY ||
	    r->push_reply->n_results != PER_SET)
		return false;
	for (size_t i = 0; i < r->push_reply->n_results; i++)
		if (r->push_reply->results[i]->status !=
		    FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED)
			return false;
	return true;
}

/* A push the failing storage refuses: BUSY or UNAVAILABLE, never a reply. */
static void
expect_refused(void *s, int set, uint64_t rid)
{
	env_t *r = push_set(s, set, rid);
	cr_assert_not_null(r, "the daemon answers while storage fails");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR,
	             "a change set that was not committed is not acknowledged");
	cr_expect(r->error->code == FIELDSYNC__V1__ERROR__CODE__BUSY ||
	                  r->error->code == FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
	          "BUSY or UNAVAILABLE, got %d", r->error->code);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

static int
readyz(fs_test_daemon *d, char **body)
{
	*body = NULL;
	return fs_test_http_get(fs_test_daemon_ops_port(d), "/readyz", body);
}

/* The value of an unlabelled metric on /metrics; -1 when it is not there. */
static long
metric(fs_test_daemon *d, const char *name)
{
	char *body = NULL, key[96];
	long v = -1;
	snprintf(key, sizeof(key), "\n%s ", name);
	if (fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body) == 200 &&
	    body != NULL) {
		const char *p = strstr(body, key);
		if (p != NULL)
			v = strtol(p + strlen(key), NULL, 10);
	}
	free(body);
	return v;
}

/* /readyz until it says 200, at most 20 s (the writer probes once a second). */
static bool
ready_again(fs_test_daemon *d)
{
	for (int i = 0; i < 200; i++) {
		char *body = NULL;
		int code = readyz(d, &body);
		free(body);
		if (code == 200)
			return true;
		sleep_ms(100);
	}
	return false;
}

/* Every record of sets [0, n) is there, whole, after a clean restart. */
static void
expect_sets_after_restart(fs_test_daemon **dp, const char *data, int n)
{
	fs_test_daemon_stop(dp);
	fs_test_daemon *d = g_d = fs_test_daemon_start(data);
	cr_assert_not_null(d, "a clean start after the failures");
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int have[8] = {0};
	uint64_t since = 0;
	for (;;) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = 77;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			int set, j;
			if (sscanf(r->pull_reply->records[i]->id, "h%d-%d", &set, &j) == 2 &&
			    set >= 0 && set < 8)
				have[set]++;
		}
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			break;
	}
	for (int set = 0; set < n; set++)
		cr_expect_eq(have[set], PER_SET, "change set %d is there, whole (%d of %d)", set,
		             have[set], PER_SET);
	zmq_close(s);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&g_d);
}

static fs_test_daemon *
start_under_fiu(const char *data)
{
	setenv("FS_TEST_DAEMON_WRAP", "fiu-run -x", 1);
	fs_test_daemon *d = g_d = fs_test_daemon_start(data);
	unsetenv("FS_TEST_DAEMON_WRAP");
	cr_assert_not_null(d, "the daemon starts under fiu-run");
	return d;
}

/* A missing libfiu fails the test, never skips it (tests/run.sh installs
 * fiu-utils); under sanitizers this file is not built at all
 * (tests/CMakeLists.txt: libfiu's preload cannot come before ASan's). */
static bool
can_run(void)
{
	cr_assert(have_fiu(), "fiu-run/fiu-ctrl not installed (deploy/install-deps.sh --test)");
	return true;
}

Test(storage_health, one_failed_meta_write_then_the_next_push_is_acknowledged, .timeout = 120,
     .fini = cleanup)
{
	if (!can_run())
		return;
	char *dir = fs_test_tmpdir(), data[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	fs_test_daemon *d = start_under_fiu(data);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	env_t *r = push_set(s, 0, 1);
	cr_assert(acked(r), "set 0 is acknowledged before any failure");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* the next pwrite (the commit's meta page) fails once with EIO */
	fiu_ctrl(d, "enable name=posix/io/rw/pwrite,failinfo=5,onetime");
	expect_refused(s, 1, 2);

	/* the fault is gone: set 1 sent again is acknowledged, no restart (a
	 * BUSY with its retry hint may come first; a stopped LMDB environment
	 * answered UNAVAILABLE for ever) */
	bool ok = false;
	int code = -1;
	for (int i = 0; i < 10 && !ok; i++) {
		r = push_set(s, 1, 10 + (uint64_t)i);
		cr_assert_not_null(r, "the daemon answers");
		ok = acked(r);
		code = r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ? (int)r->error->code
		                                                           : -1;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!ok)
			sleep_ms(300);
	}
	cr_assert(ok, "set 1 is acknowledged once the write works again (last error code %d)",
	          code);
	r = push_set(s, 2, 30);
	cr_expect(acked(r), "and so is the next one");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char *log = fs_test_daemon_log(d);
	cr_expect(log != NULL && strstr(log, "storage failing") != NULL, "the failure is logged");
	free(log);
	zmq_close(s);
	zmq_ctx_term(ctx);
	expect_sets_after_restart(&g_d, data, 3);
	fs_test_rm_rf(dir);
	free(dir);
}

Test(storage_health, while_commits_fail_readyz_says_not_ready, .timeout = 120, .fini = cleanup)
{
	if (!can_run())
		return;
	char *dir = fs_test_tmpdir(), data[600], *body = NULL;
	snprintf(data, sizeof(data), "%s/data", dir);
	fs_test_daemon *d = start_under_fiu(data);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	env_t *r = push_set(s, 0, 1);
	cr_assert(acked(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_assert_eq(readyz(d, &body), 200, "ready before the failure: %s", body);
	free(body);

	/* every fdatasync fails with EIO: no commit can be durable */
	fiu_ctrl(d, "enable name=posix/io/sync/fdatasync,failinfo=5");
	/* an I/O error on a disk with room is not "storage is full" (main
	 * answered BUSY "storage is full" for it) */
	r = push_set(s, 1, 2);
	cr_assert_not_null(r, "the daemon answers while storage fails");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
	             "a failed write is UNAVAILABLE (docs/protocol-notes.md), got %d: %s",
	             r->error->code, r->error->message);
	cr_expect(strstr(r->error->message, "storage write failed") != NULL &&
	                  strstr(r->error->message, "full") == NULL,
	          "the message says the write failed: %s", r->error->message);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	int code = readyz(d, &body);
	cr_expect_eq(code, 503, "not ready while commits fail (%d: %s)", code, body);
	cr_expect(body != NULL && strstr(body, "storage failing") != NULL, "the reason: %s", body);
	free(body);
	cr_expect_eq(metric(d, "fieldsync_storage_failing"), 1, "the gauge says so too");
	expect_refused(s, 1, 3); /* still failing, still not ready */
	code = readyz(d, &body);
	cr_expect_eq(code, 503, "still not ready (%d: %s)", code, body);
	free(body);

	/* the disk works again: ready by itself, before any push */
	fiu_ctrl(d, "disable name=posix/io/sync/fdatasync");
	cr_assert(ready_again(d), "/readyz says 200 again once commits succeed");
	cr_expect_eq(metric(d, "fieldsync_storage_failing"), 0);
	r = push_set(s, 1, 4);
	cr_expect(acked(r), "set 1 is acknowledged");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	expect_sets_after_restart(&g_d, data, 2);
	fs_test_rm_rf(dir);
	free(dir);
}

Test(storage_health, a_stopped_environment_is_reopened_by_itself, .timeout = 120, .fini = cleanup)
{
	if (!can_run())
		return;
	char *dir = fs_test_tmpdir(), data[600], *body = NULL;
	snprintf(data, sizeof(data), "%s/data", dir);
	fs_test_daemon *d = start_under_fiu(data);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	env_t *r = push_set(s, 0, 1);
	cr_assert(acked(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* every pwrite fails: the meta page is never written, LMDB stops the
	 * environment, and the probe's own commit stops it again */
	fiu_ctrl(d, "enable name=posix/io/rw/pwrite,failinfo=5");
	expect_refused(s, 1, 2);
	int code = readyz(d, &body);
	cr_expect_eq(code, 503, "not ready while the environment is stopped (%d: %s)", code, body);
	free(body);
	expect_refused(s, 1, 3);

	/* writes work again: reopened and ready with no push coming */
	fiu_ctrl(d, "disable name=posix/io/rw/pwrite");
	cr_assert(ready_again(d), "/readyz says 200 again: the environment was reopened");
	cr_expect_gt(metric(d, "fieldsync_storage_reopens_total"), 0, "the reopen is counted");
	cr_expect_eq(metric(d, "fieldsync_storage_failing"), 0);
	r = push_set(s, 1, 4);
	cr_expect(acked(r), "set 1 is acknowledged");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char *log = fs_test_daemon_log(d);
	cr_expect(log != NULL && strstr(log, "reopened") != NULL, "the reopen is logged");
	free(log);
	zmq_close(s);
	zmq_ctx_term(ctx);
	expect_sets_after_restart(&g_d, data, 2);
	fs_test_rm_rf(dir);
	free(dir);
}
