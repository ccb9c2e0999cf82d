/*
 * Storage pressure: a map that must grow, and a disk that is really full
 * (RLIMIT_FSIZE on the daemon stands in for it). Nothing acknowledged may be
 * lost, nothing may crash, and a full disk is answered BUSY with a retry hint.
 */
#define _GNU_SOURCE /* prlimit */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

static env_t *
push_set(void *s, int set, size_t payload_len, uint64_t rid)
{
	char csid[32];
	static uint8_t payload[4096];
	memset(payload, 'z', sizeof(payload));
	snprintf(csid, sizeof(csid), "full-%d", set);
	fs_test_push *p = fs_test_push_new(csid);
	for (int i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "f%05d-%02d", set, i);
		fs_test_push_add(p, "note", id, "team-a", "a:1", false, payload, payload_len);
	}
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid), 20000);
	fs_test_push_free(p);
	return r;
}

/* Pulls everything; returns how many of the records of sets [0, n) exist. */
static int
count_records(void *s, bool *present, int n_sets)
{
	uint64_t since = 0, rid = 900000;
	bool more = true;
	int found = 0;
	while (more) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = rid++;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			int set, k;
			if (sscanf(r->pull_reply->records[i]->id, "f%d-%d", &set, &k) == 2 &&
			    set < n_sets) {
				present[set * 20 + k] = true;
				found++;
			}
		}
		since = r->pull_reply->last_seq;
		more = r->pull_reply->more;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	return found;
}

Test(storage, the_map_grows_and_keeps_everything, .timeout = 120)
{
	const char *args[] = {"--map-size", "1M", NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	enum { SETS = 200 }; /* 200 x 20 x 1 KiB: several doublings of a 1 MiB map */
	for (int i = 0; i < SETS; i++) {
		env_t *r = push_set(s, i, 1024, (uint64_t)i + 1);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
		             "set %d applied", i);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	static bool present[SETS * 20];
	cr_expect_eq(count_records(s, present, SETS), SETS * 20);
	char *log = fs_test_daemon_log(d);
	cr_expect_not_null(strstr(log, "\"map grown\""), "the daemon logged the growth");
	free(log);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(storage, a_full_disk_answers_busy_and_loses_nothing, .timeout = 180)
{
	/* 4 MiB of file for the daemon: a few hundred 1 KiB records fit. */
	setenv("FS_TEST_FSIZE_LIMIT", "4194304", 1);
	const char *args[] = {"--map-size", "64M", NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	unsetenv("FS_TEST_FSIZE_LIMIT");
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	enum { MAX_SETS = 2000 };
	static bool acked[MAX_SETS];
	int busy_at = -1, n_sets = 0;
	for (int i = 0; i < MAX_SETS && busy_at < 0; i++, n_sets++) {
		env_t *r = push_set(s, i, 2048, (uint64_t)i + 1);
		cr_assert_not_null(r, "set %d answered (the daemon is alive)", i);
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			acked[i] = true;
		} else {
			cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
			cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__BUSY,
			             "set %d: error %d: %s", i, r->error->code, r->error->message);
			cr_expect_gt(r->error->retry_after_ms, 0);
			cr_expect(strstr(r->error->message, "storage is full") != NULL,
			          "a full disk says so: %s", r->error->message);
			busy_at = i;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_assert_geq(busy_at, 1, "some sets fit, then the disk was full (busy at %d)", busy_at);

	/* Reads keep working while the disk is full. */
	static bool present[MAX_SETS * 20];
	int found = count_records(s, present, n_sets);
	cr_expect_eq(found, busy_at * 20);

	/* Free the "disk": the same change set now applies, without a restart. */
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
	cr_assert_eq(prlimit(fs_test_daemon_pid(d), RLIMIT_FSIZE, &rl, NULL), 0);
	env_t *r = push_set(s, busy_at, 2048, 777777);
	cr_assert_not_null(r);
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
	             "the retried set applies once space is back");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	acked[busy_at] = true;

	/* And everything acknowledged survives a kill -9. */
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(s);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	memset(present, 0, sizeof(present));
	count_records(s, present, n_sets);
	for (int i = 0; i < n_sets; i++)
		for (int k = 0; acked[i] && k < 20; k++)
			cr_expect(present[i * 20 + k], "acked record f%05d-%02d survived", i, k);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
