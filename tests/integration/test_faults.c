/*
 * Graceful behaviour under faults (issue 6): SIGTERM under push load, and a
 * really full disk (a small tmpfs mounted by the test; CI runs as root).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/merge.h"

typedef Fieldsync__V1__Envelope env_t;

enum { CLIENTS = 8, KEYS = 30 };

struct client {
	int n;
	void *ctx;
	const char *endpoint;
	uint64_t acked[KEYS];
	atomic_long sets;
};

static void *
pusher(void *arg)
{
	struct client *c = arg;
	void *s = fs_test_dealer(c->ctx, c->endpoint);
	char rep[16];
	snprintf(rep, sizeof(rep), "c%d", c->n);
	for (uint64_t round = 1; round < 1000000; round++) {
		char csid[48];
		snprintf(csid, sizeof(csid), "term-%d-%llu", c->n, (unsigned long long)round);
		fs_test_push *p = fs_test_push_new(csid);
		for (int k = 0; k < KEYS; k++) {
			char id[32], ver[32];
			snprintf(id, sizeof(id), "c%d-k%d", c->n, k);
			snprintf(ver, sizeof(ver), "%s:%llu", rep, (unsigned long long)round);
			fs_test_push_add(p, "note", id, "team-a", ver, false, "v", 1);
		}
		env_t *r = fs_test_call(s, fs_test_push_envelope(p, round), 3000);
		fs_test_push_free(p);
		if (r == NULL)
			break; /* the daemon has gone */
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			for (int k = 0; k < KEYS; k++)
				c->acked[k] = round;
			atomic_fetch_add(&c->sets, 1);
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(s);
	return NULL;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(faults, sigterm_under_push_load, .timeout = 120)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	struct client cl[CLIENTS];
	pthread_t th[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		memset(&cl[i], 0, sizeof(cl[i]));
		cl[i].n = i;
		cl[i].ctx = ctx;
		cl[i].endpoint = fs_test_daemon_endpoint(d);
		pthread_create(&th[i], NULL, pusher, &cl[i]);
	}
	long total = 0;
	for (int w = 0; w < 200 && total < 300; w++) {
		usleep(50000);
		total = 0;
		for (int i = 0; i < CLIENTS; i++)
			total += atomic_load(&cl[i].sets);
	}
	int port = fs_test_daemon_ops_port(d);
	int64_t t0 = mono_ms();
	kill(fs_test_daemon_pid(d), SIGTERM);
	/* "At once": the handler flips readiness before the drain starts; give the
	 * kernel 50 ms to deliver the signal, then no /readyz may say 200 again. */
	usleep(50000);
	for (int i = 0; i < 5; i++) {
		char *body = NULL;
		int code = fs_test_http_get(port, "/readyz", &body);
		cr_expect_neq(code, 200, "readiness is false after SIGTERM (got %d: %s)", code,
		              body ? body : "");
		free(body);
		if (code < 0)
			break; /* already gone */
	}
	int st = fs_test_daemon_wait(d, 20000);
	cr_expect_eq(st, 0, "exit 0 within 20 s (status %d after %lld ms)", st,
	             (long long)(mono_ms() - t0));
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);

	/* Nothing acknowledged is lost. */
	cr_assert(fs_test_daemon_restart(d));
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.limit = 1000;
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	int checked = 0;
	for (size_t i = 0; i < r->pull_reply->n_records; i++) {
		int n, k;
		Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
		if (sscanf(rs->id, "c%d-k%d", &n, &k) != 2)
			continue;
		char rep[16];
		snprintf(rep, sizeof(rep), "c%d", n);
		cr_expect_geq(fsp_vv_get(rs->siblings[0]->version, rep), cl[n].acked[k],
		              "c%d-k%d: acked %llu", n, k, (unsigned long long)cl[n].acked[k]);
		checked++;
	}
	cr_expect_eq(checked, CLIENTS * KEYS);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

static env_t *
push_big(void *s, int set, uint64_t rid)
{
	static uint8_t payload[2048];
	char csid[32];
	memset(payload, 'q', sizeof(payload));
	snprintf(csid, sizeof(csid), "full-%d", set);
	fs_test_push *p = fs_test_push_new(csid);
	for (int i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "f%05d-%02d", set, i);
		fs_test_push_add(p, "note", id, "team-a", "a:1", false, payload, sizeof(payload));
	}
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid), 20000);
	fs_test_push_free(p);
	return r;
}

Test(faults, a_really_full_disk, .timeout = 180)
{
	char *dir = fs_test_tmpdir(), mnt[600], data[700], cmd[800];
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(data, sizeof(data), "%s/data", mnt);
	mkdir(mnt, 0700);
	cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=3m"), 0,
	             "the test mounts a 3 MiB tmpfs (needs root, as CI has)");
	const char *args[] = {"--map-size", "16M", "--min-free-bytes", "256K", NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);
	int port = fs_test_daemon_ops_port(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	static bool acked[400];
	int busy_at = -1;
	for (int i = 0; i < 400 && busy_at < 0; i++) {
		env_t *r = push_big(s, i, (uint64_t)i + 1);
		cr_assert_not_null(r, "set %d answered: the daemon lives", i);
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			acked[i] = true;
		} else {
			cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
			cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__BUSY);
			cr_expect_gt(r->error->retry_after_ms, 0);
			busy_at = i;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_assert_gt(busy_at, 0, "the disk filled up after some sets");
	char *body = NULL;
	cr_expect_eq(fs_test_http_get(port, "/readyz", &body), 503, "not ready on a full disk: %s",
	             body ? body : "");
	free(body);

	/* Space comes back: the same change set applies, without a restart. */
	snprintf(cmd, sizeof(cmd), "mount -o remount,size=64m %s", mnt);
	cr_assert_eq(system(cmd), 0);
	env_t *r = push_big(s, busy_at, 9999);
	cr_assert_not_null(r);
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	acked[busy_at] = true;
	body = NULL;
	cr_expect_eq(fs_test_http_get(port, "/readyz", &body), 200, "ready again: %s", body ? body : "");
	free(body);

	/* Nothing acknowledged was lost, nothing unacknowledged was kept. */
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(s);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int present = 0, expected = 0;
	for (int i = 0; i <= busy_at; i++)
		expected += acked[i] ? 20 : 0;
	uint64_t since = 0;
	for (bool more = true; more;) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = 77 + since;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			int set, k;
			if (sscanf(r->pull_reply->records[i]->id, "f%d-%d", &set, &k) == 2)
				present += set <= busy_at && acked[set];
		}
		since = r->pull_reply->last_seq;
		more = r->pull_reply->more;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_expect_eq(present, expected, "every acknowledged record is there");
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	umount2(mnt, MNT_DETACH);
	fs_test_rm_rf(dir);
	free(dir);
}
