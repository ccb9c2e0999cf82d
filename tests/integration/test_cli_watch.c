/*
 * The reference scheduler: fs_watcher and `fieldsync watch` against the real
 * daemon. Every event once, in seq order, gaps filled by replay, filters,
 * and resuming from a saved seq.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/casework.pb-c.h"

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pushes n new cases (first contact now) in change sets of 500, plus, for
 * every fifth, a counselling contact held now (quick-help MET). */
static void
push_cases(fs_test_daemon *d, const char *prefix, int n, bool with_talks)
{
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t cbuf[128], tbuf[256];
	c.first_contact_at_ms = now_ms();
	c.under_18 = true;
	size_t clen = fieldsync__v1__case__pack(&c, cbuf);
	for (int base = 0; base < n; base += 500) {
		char csid[64];
		snprintf(csid, sizeof(csid), "%s-set-%d", prefix, base);
		fs_test_push *p = fs_test_push_new(csid);
		for (int i = base; i < n && i < base + 500; i++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%05d", prefix, i);
			fs_test_push_add(p, "case", id, i % 2 ? "team-a" : "team-b", "a:1", false,
			                 cbuf, clen);
			if (with_talks && i % 5 == 0) {
				Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
				char tid[64];
				t.case_id = id;
				t.held_at_ms = c.first_contact_at_ms + 1000;
				t.who5 = -1;
				size_t tlen = fieldsync__v1__contact__pack(&t, tbuf);
				snprintf(tid, sizeof(tid), "%s-talk-%05d", prefix, i);
				/* in its case's scope (METHOD.md reading 10) */
				fs_test_push_add(p, "contact", tid, i % 2 ? "team-a" : "team-b",
				                 "a:1", false, tbuf, tlen);
			}
		}
		Fieldsync__V1__Envelope *r =
			fs_test_call(s, fs_test_push_envelope(p, (uint64_t)base + 1), 30000);
		fs_test_push_free(p);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
}

Test(watch, every_event_once_in_order_from_a_late_start, .timeout = 120)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	push_cases(d, "late", 2000, true); /* before the watcher exists */

	fs_watch_opts o = {.sync_endpoint = fs_test_daemon_endpoint(d),
	                   .reminder_endpoint = fs_test_daemon_reminder_endpoint(d)};
	fs_watcher *w = NULL;
	cr_assert_eq(fs_watcher_open(&o, &w), FS_OK);
	uint64_t expect = 1, total = 0;
	const fs_reminder *r;
	/* Half arrive by replay; then more come while we watch (PUB). */
	while (total < 1000 && fs_watcher_next(w, 5000, &r) == FS_OK) {
		cr_assert_eq(r->seq, expect++, "in seq order, none twice, none missed");
		total++;
	}
	push_cases(d, "live", 1000, false);
	while (fs_watcher_next(w, 3000, &r) == FS_OK) {
		cr_assert_eq(r->seq, expect++);
		cr_assert_str_neq(r->state, "UNKNOWN");
		total++;
	}
	/* 2000 cases -> quick-help + notification-duty (under 18 with a talk);
	 * 400 talks: quick-help is met at once. Count what the daemon stored. */
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	rr.since_seq = expect - 1;
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	Fieldsync__V1__Envelope *rep = fs_test_call(s, &e, 10000);
	cr_assert_not_null(rep);
	cr_expect_eq(rep->replay_reply->n_events, 0, "the watcher delivered everything stored");
	cr_expect_eq(rep->replay_reply->last_seq, total);
	cr_expect_geq(total, 3000);
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	fs_watcher_close(&w);
	cr_expect_null(w);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(watch, filters_by_rule_and_scope, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	fs_watch_opts o = {.sync_endpoint = fs_test_daemon_endpoint(d),
	                   .reminder_endpoint = fs_test_daemon_reminder_endpoint(d),
	                   .rule = "notification-duty",
	                   .scope = "team-b"};
	fs_watcher *w = NULL;
	cr_assert_eq(fs_watcher_open(&o, &w), FS_OK);
	push_cases(d, "f", 100, true);
	const fs_reminder *r;
	int n = 0;
	uint64_t last = 0;
	while (fs_watcher_next(w, 3000, &r) == FS_OK) {
		cr_expect_str_eq(r->rule, "notification-duty");
		cr_expect_str_eq(r->scope, "team-b");
		cr_expect_gt(r->seq, last);
		last = r->seq;
		n++;
	}
	/* Even-numbered cases are team-b; every fifth has a talk: 0,10,20,...,90. */
	cr_expect_eq(n, 10, "one notification-duty event per team-b case with a talk");
	fs_watcher_close(&w);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

/* Runs the CLI, returns its stdout (malloc'd) and exit status. */
static char *
run(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t cap = 1 << 20, n = 0;
	char *out = malloc(cap);
	size_t r;
	while ((r = fread(out + n, 1, cap - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

Test(watch, the_cli_prints_json_lines_and_resumes_from_its_state_file, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	push_cases(d, "cli", 5, false); /* 5 quick-help SCHEDULED events */
	char *dir = fs_test_tmpdir();
	char cmd[2048];
	int st;
	snprintf(cmd, sizeof(cmd),
	         "%s watch --endpoint %s --reminders %s --json --count 2 --state %s/cursor",
	         FS_CLI_BIN, fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d), dir);
	char *out = run(cmd, &st);
	cr_expect_eq(st, 0);
	cr_expect_not_null(strstr(out, "{\"seq\":1,"), "%s", out);
	cr_expect_not_null(strstr(out, "{\"seq\":2,"));
	cr_expect_null(strstr(out, "{\"seq\":3,"));
	cr_expect_not_null(strstr(out, "\"state\":\"SCHEDULED\""));
	cr_expect_not_null(strstr(out, "\"rule\":\"quick-help\""));
	free(out);

	/* The next run resumes after seq 2. */
	snprintf(cmd, sizeof(cmd),
	         "%s watch --endpoint %s --reminders %s --count 3 --state %s/cursor", FS_CLI_BIN,
	         fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d), dir);
	out = run(cmd, &st);
	cr_expect_eq(st, 0);
	cr_expect_eq(strncmp(out, "3 SCHEDULED", 11), 0, "resumed at seq 3: %s", out);
	cr_expect_not_null(strstr(out, "\n5 SCHEDULED"));
	free(out);

	/* --since overrides; an explicit bad value is a usage error. */
	snprintf(cmd, sizeof(cmd), "%s watch --endpoint %s --reminders %s --since x 2>/dev/null",
	         FS_CLI_BIN, fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d));
	out = run(cmd, &st);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	free(out);
	fs_test_rm_rf(dir);
	free(dir);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
