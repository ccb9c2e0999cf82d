/*
 * Issue 11, "failure stays local", for the reminders: one case that cannot
 * be read (a backup taken before its purge, restored with today's key
 * store: its data key is gone) must not hold back any other case's
 * deadlines. Through the real daemon (production mode, CURVE devices of two
 * teams, real ZeroMQ sockets):
 *  (a) 30 days on (--clock-offset-ms), team-a's unreadable case and
 *      team-b's case are both past their quick-help deadline: team-b's
 *      OVERDUE event is stored and replayable, team-a's readable case's
 *      too; the bad case's timers are counted in
 *      fieldsync_reminder_timers_skipped_total and `fieldsyncd verify`
 *      names the case;
 *  (b) a new rule table (re-evaluation of every case, METHOD.md reading 8)
 *      with the unreadable case first in key order: team-b's case is
 *      re-evaluated under the new rules all the same.
 * Before the fix (main at 8c8a071) both fail: reminders_tick and
 * reminders_reeval_step stopped at the first case that could not be read,
 * so no event came for team-b.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;

#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define THIRTY_DAYS_MS "2592000000"

typedef fs_test_cred cred;

static char g_dir[512], g_data[600], g_key[600], g_restored[700];
static fs_test_daemon *d;
static void *ctx;
static fs_test_socks g_socks; /* open sockets, closed by teardown */

static void *
sock_track(void *s)
{
	cr_assert(s == NULL || fs_test_socks_add(&g_socks, s) != NULL, "too many sockets");
	return s;
}

static void *
curve_dealer(const cred *c)
{
	void *s = fs_test_curve_dealer(ctx, fs_test_daemon_endpoint(d), c);
	cr_assert_not_null(s);
	return sock_track(s);
}

static void
expect_applied(env_t *r, const char *what)
{
	cr_assert_not_null(r, "%s: no reply", what);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY, "%s: %s", what,
	             r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
	cr_assert_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "%s: %s", what,
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

static double
metric(const char *name)
{
	char *body = NULL;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body), 200);
	double v = fs_test_metric_value(body, name);
	free(body);
	return v;
}

static void
setup(void)
{
	cr_assert_eq(fs_test_dirs(g_dir, sizeof(g_dir), g_data, sizeof(g_data), g_key,
	                          sizeof(g_key), KEY_LINE, NULL),
	             0);
	ctx = zmq_ctx_new();
}

static void
teardown(void)
{
	fs_test_socks_close_all(&g_socks);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(g_dir);
}

TestSuite(isolate_timers, .init = setup, .fini = teardown, .timeout = 240);

static void
start_production_at(const char *data, const char *clock_offset_ms, const char *rules)
{
	const char *args[] = {"--master-key-file",
	                      g_key,
	                      "--clock-offset-ms",
	                      clock_offset_ms,
	                      rules != NULL ? "--rules" : NULL,
	                      rules,
	                      NULL};
	d = fs_test_daemon_start_production(data, args);
	cr_assert_not_null(d, "the daemon starts in production mode on %s", data);
}

/* Pushes a case record (first contact now: quick-help due days ahead). */
static void
push_case(void *s, const char *csid, const char *id, const char *scope, const char *version)
{
	uint8_t buf[256];
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.first_contact_at_ms = (int64_t)time(NULL) * 1000;
	c.contact_person = "s-1";
	size_t n = fieldsync__v1__case__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "case", id, scope, version, false, buf, n);
	expect_applied(fs_test_call(s, fs_test_push_envelope(p, 9), 10000), id);
	fs_test_push_free(p);
}

/* The events s may replay from seq 0 (one page of up to 1000). */
static env_t *
replay_all(void *s)
{
	static uint64_t rid = 500;
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	rr.since_seq = 0;
	rr.limit = 1000;
	e.request_id = rid++;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r, "no reply to Replay");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY, "Replay: %s",
	             r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
	return r;
}

/* The first event of case_id in state (any state when state < 0) whose due
 * differs from not_due (any when 0) s can replay; 0 when none, else its due_at_ms. */
static int64_t
find_event(void *s, const char *case_id, int state, int64_t not_due)
{
	env_t *r = replay_all(s);
	int64_t due = 0;
	for (size_t i = 0; i < r->replay_reply->n_events && due == 0; i++) {
		const Fieldsync__V1__ReminderEvent *ev = r->replay_reply->events[i];
		if (strcmp(ev->case_id, case_id) == 0 && (state < 0 || (int)ev->state == state) &&
		    (not_due == 0 || ev->due_at_ms != not_due))
			due = ev->due_at_ms;
	}
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return due;
}

/* Waits (up to 30 s, 100 ms at a time) for find_event() to find one. The
 * fixed daemon stores it in its first round; an old one never does. */
static int64_t
await_event(void *s, const char *case_id, int state, int64_t not_due)
{
	int64_t due = 0;
	for (int i = 0; i < 300 && (due = find_event(s, case_id, state, not_due)) == 0; i++)
		usleep(100 * 1000);
	return due;
}

/*
 * team-a: case a-gone (to be made unreadable) and a-ok; team-b: case b-due.
 * A backup, the purge of a-gone (its data key destroyed), the key store as
 * it is then, and the old data restored with it into g_restored, where the
 * daemon is started at clock_offset_ms with rules (NULL: the defaults).
 * *b_due: b-due's quick-help due as first published.
 */
static void
make_unreadable_case(cred *a, cred *b, const char *clock_offset_ms, const char *rules,
                     int64_t *b_due)
{
	char bak[700], keys_now[700];
	cr_assert_eq(fs_test_sh(NULL, "%s init --data-dir %s >/dev/null", FS_DAEMON_BIN, g_data),
	             0);
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, "tab-a", "team-a", "device", a), 0,
	             "enroll tab-a");
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, "tab-b", "team-b", "device", b), 0,
	             "enroll tab-b");
	start_production_at(g_data, "0", NULL);
	void *sa = curve_dealer(a), *sb = curve_dealer(b);
	push_case(sa, "a-1", "a-gone", "team-a", "ra:1");
	push_case(sa, "a-2", "a-ok", "team-a", "ra:2");
	push_case(sb, "b-1", "b-due", "team-b", "rb:1");
	*b_due = await_event(sb, "b-due", -1, 0);
	cr_assert_gt(*b_due, 0, "b-due's first event");
	cr_assert_eq(find_event(sb, "a-ok", -1, 0), 0, "team-b sees no team-a event");

	snprintf(bak, sizeof(bak), "%s/before-purge.mdb", g_dir);
	snprintf(keys_now, sizeof(keys_now), "%s/keys-now.mdb", g_dir);
	cr_assert_eq(fs_test_backup_purge(NULL, g_data, g_dir, g_key, "--case a-gone"), 0);
	fs_test_socks_close(&g_socks, sa);
	fs_test_socks_close(&g_socks, sb);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snprintf(g_restored, sizeof(g_restored), "%s/restored", g_dir);
	/* restore's verify names a-gone (a non-zero exit): expected here */
	(void)fs_test_sh("/dev/null",
	                 "%s restore --data-dir %s --from %s --keys-from %s --master-key-file %s",
	                 FS_DAEMON_BIN, g_restored, bak, keys_now, g_key);
	cr_assert_eq(fs_test_sh(NULL, "cp %s/server.key %s/server.pub %s/", g_data, g_data,
	                        g_restored),
	             0);
	start_production_at(g_restored, clock_offset_ms, rules);
}

Test(isolate_timers, an_unreadable_case_does_not_hold_back_other_cases_due_timers)
{
	cred a, b;
	int64_t b_due = 0;
	make_unreadable_case(&a, &b, THIRTY_DAYS_MS, NULL, &b_due);
	void *sa = curve_dealer(&a), *sb = curve_dealer(&b);

	/* 30 days on: team-b's deadline passed; its OVERDUE event is there. */
	cr_expect_gt(await_event(sb, "b-due", FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE, 0), 0,
	             "team-b's OVERDUE event for b-due is replayable");
	/* team-a's readable case fires too. */
	cr_expect_gt(await_event(sa, "a-ok", FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE, 0), 0,
	             "team-a's OVERDUE event for a-ok is replayable");
	/* the bad case's timers were skipped, counted, and re-armed (not dropped) */
	cr_expect_geq(metric("fieldsync_reminder_timers_skipped_total"), 1,
	              "the skipped timers are counted");
	cr_expect_eq(find_event(sa, "a-gone", FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE, 0), 0,
	             "nothing is made up for the case that cannot be read");
	fs_test_socks_close(&g_socks, sa);
	fs_test_socks_close(&g_socks, sb);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	/* verify names the case whose timers are skipped, by id */
	char out[700];
	snprintf(out, sizeof(out), "%s/verify.txt", g_dir);
	int rc = fs_test_sh(out, "%s verify --data-dir %s --master-key-file %s", FS_DAEMON_BIN,
	                    g_restored, g_key);
	char *text = fs_test_slurp(out, 1 << 16, NULL);
	cr_assert_not_null(text, "open %s", out);
	cr_expect_neq(rc, 0, "verify finds a problem: %s", text);
	cr_expect_not_null(strstr(text, "of case a-gone: its case cannot be read"), "%s", text);
	cr_expect_null(strstr(text, "b-due"), "only the unreadable case is named: %s", text);
	free(text);
}

Test(isolate_timers, an_unreadable_case_does_not_stop_the_re_evaluation_of_the_others)
{
	cred a, b;
	int64_t b_due = 0;
	char rules[700];
	snprintf(rules, sizeof(rules), "%s/rules.json", g_dir);
	FILE *f = fopen(rules, "w");
	cr_assert_not_null(f);
	fputs("{\"quick-help\": {\"due\": \"3 days\", \"warning\": \"1 days\"}}\n", f);
	fclose(f);
	/* a-gone sorts before b-due: the pass meets the bad case first */
	make_unreadable_case(&a, &b, "0", rules, &b_due);
	void *sb = curve_dealer(&b);
	int64_t due = await_event(sb, "b-due", -1, b_due);
	cr_expect_gt(due, 0, "b-due is re-evaluated under the new rules (a new due time)");
	cr_expect_lt(due, b_due, "3 days instead of the default");
	cr_expect_geq(metric("fieldsync_reminder_timers_skipped_total"), 1,
	              "the skipped case is counted");
	fs_test_socks_close(&g_socks, sb);
}
