/*
 * Reminders through the real daemon: events on real SUB sockets, replay on
 * the sync endpoint, a slow subscriber, deadlines that pass while the daemon
 * runs and while it is down.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;
typedef Fieldsync__V1__ReminderEvent event_t;

#define DAY_MS (24LL * 3600 * 1000)
/* 2026-06-10T00:00:00+02:00, and 10:00 on 2 June: quick-help is due at the former. */
#define JUNE_10 1781042400000LL
#define JUNE_2_10AM 1780387200000LL

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rid = 1;

static env_t *
push_case(void *s, const char *csid, const char *case_id, const char *version,
          int64_t first_contact_ms, const char *scope)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[256];
	c.first_contact_at_ms = first_contact_ms;
	c.contact_person = "staff-7";
	size_t len = fieldsync__v1__case__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "case", case_id, scope, version, false, buf, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	return r;
}

static void
push_contact(void *s, const char *csid, const char *contact_id, const char *case_id,
             int64_t held_ms, const char *notes)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	uint8_t buf[512];
	c.case_id = (char *)case_id;
	c.kind = FIELDSYNC__V1__CONTACT__KIND__COUNSELLING;
	c.held_at_ms = held_ms;
	c.notes = (char *)notes;
	c.who5 = -1;
	size_t len = fieldsync__v1__contact__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "contact", contact_id, "team-a", "a:1", false, buf, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_assert_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* Replays every stored event after since; returns the reply (caller frees). */
static env_t *
replay(void *s, uint64_t since, uint32_t limit)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	rr.since_seq = since;
	rr.limit = limit;
	e.request_id = rid++;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	return r;
}

/* A SUB; hwm > 0 makes it a slow one: tiny queue and kernel buffer. */
static void *
subscriber(void *ctx, const char *endpoint, const char *prefix, int hwm)
{
	void *sub = zmq_socket(ctx, ZMQ_SUB);
	int zero = 0, small = 4096;
	zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
	if (hwm > 0) {
		zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(sub, ZMQ_RCVBUF, &small, sizeof(small));
	}
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
	cr_assert_eq(zmq_connect(sub, endpoint), 0);
	usleep(300000); /* let the subscription reach the PUB */
	return sub;
}

/* One event from sub within timeout_ms; *topic gets the topic frame. */
static event_t *
next_event(void *sub, int timeout_ms, char *topic, size_t tlen)
{
	zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return NULL;
	int n = zmq_recv(sub, topic, tlen - 1, 0);
	cr_assert_geq(n, 0);
	topic[n < (int)tlen - 1 ? n : (int)tlen - 1] = '\0';
	int more = 0;
	size_t ml = sizeof(more);
	zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml);
	cr_assert(more, "an event is two frames");
	zmq_msg_t m;
	zmq_msg_init(&m);
	cr_assert_geq(zmq_msg_recv(&m, sub, 0), 0);
	event_t *ev =
		fieldsync__v1__reminder_event__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
	zmq_msg_close(&m);
	cr_assert_not_null(ev, "the second frame is a ReminderEvent");
	return ev;
}

Test(reminders, events_are_published_and_replayed, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d), "reminder/quick-help/", 0);

	/* First contact 6 days ago: quick-help is in its warning window (due end of day 7). */
	int64_t now = now_ms();
	env_t *r = push_case(s, "cs-r1", "case-1", "a:1", now - 6 * DAY_MS, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char topic[256];
	event_t *ev = next_event(sub, 5000, topic, sizeof(topic));
	cr_assert_not_null(ev, "an event was published");
	cr_expect_str_eq(topic, "reminder/quick-help/team-a");
	cr_expect_eq(ev->seq, 1);
	cr_expect_str_eq(ev->rule, "quick-help");
	cr_expect_str_eq(ev->reminder_id, "quick-help/case-1");
	cr_expect_str_eq(ev->case_id, "case-1");
	cr_expect_str_eq(ev->scope, "team-a");
	cr_expect_str_eq(ev->contact_person, "staff-7");
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING);
	cr_expect_gt(ev->due_at_ms, now);
	cr_expect_lt(ev->due_at_ms, now + 2 * DAY_MS);
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);

	/* A talk held today meets it. Its notes never reach an event. */
	push_contact(s, "cs-r2", "talk-1", "case-1", now - 3600 * 1000, "CANARY-notes-Xq7");
	ev = next_event(sub, 5000, topic, sizeof(topic));
	cr_assert_not_null(ev);
	cr_expect_eq(ev->seq, 2);
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	uint8_t packed[1024];
	size_t plen = fieldsync__v1__reminder_event__pack(ev, packed);
	cr_expect_null(memmem(packed, plen, "CANARY", 6), "no free text in events");
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);

	/* Replay returns the same two events. */
	env_t *rp = replay(s, 0, 0);
	cr_assert_eq(rp->replay_reply->n_events, 2);
	cr_expect_eq(rp->replay_reply->events[0]->seq, 1);
	cr_expect_eq(rp->replay_reply->events[1]->seq, 2);
	cr_expect_eq(rp->replay_reply->events[1]->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	cr_expect_eq(rp->replay_reply->last_seq, 2);
	cr_expect(!rp->replay_reply->more);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	rp = replay(s, 2, 0);
	cr_expect_eq(rp->replay_reply->n_events, 0);
	cr_expect_eq(rp->replay_reply->last_seq, 2);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);

	/* The same change set again changes nothing: no new event. */
	r = push_case(s, "cs-r1", "case-1", "a:1", now - 6 * DAY_MS, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect_null(next_event(sub, 500, topic, sizeof(topic)));

	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(reminders, a_late_offline_talk_makes_it_met, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int64_t now = now_ms();
	/* First contact 9 days ago: overdue as far as the daemon knows... */
	env_t *r = push_case(s, "cs-l1", "case-late", "a:1", now - 9 * DAY_MS, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	/* ...until the tablet syncs the talk it recorded offline on day 5. */
	push_contact(s, "cs-l2", "talk-late", "case-late", now - 4 * DAY_MS, "");
	env_t *rp = replay(s, 0, 0);
	cr_assert_eq(rp->replay_reply->n_events, 2);
	cr_expect_eq(rp->replay_reply->events[0]->state,
	             FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	cr_expect_eq(rp->replay_reply->events[1]->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET,
	             "deadlines follow the data: the talk was held in time");
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(reminders, a_slow_subscriber_recovers_10000_missed_events_by_replay, .timeout = 240)
{
	enum { CASES = 16000, PER_SET = 1000 };
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d), "reminder/", 10);
	int64_t now = now_ms();

	/* 16,000 new cases -> 16,000 events, while the subscriber reads nothing. */
	for (int set = 0; set < CASES / PER_SET; set++) {
		Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
		uint8_t buf[128];
		c.first_contact_at_ms = now;
		size_t len = fieldsync__v1__case__pack(&c, buf);
		char csid[32];
		snprintf(csid, sizeof(csid), "cs-slow-%d", set);
		fs_test_push *p = fs_test_push_new(csid);
		for (int i = 0; i < PER_SET; i++) {
			char id[32];
			snprintf(id, sizeof(id), "slow-%05d", set * PER_SET + i);
			fs_test_push_add(p, "case", id, "team-a", "a:1", false, buf, len);
		}
		env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 60000);
		fs_test_push_free(p);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}

	/* What the subscriber got, then gap detection and replay, as a scheduler does. */
	static bool seen[CASES + 1];
	uint64_t last = 0, from_pub = 0, from_replay = 0, dup = 0;
	char topic[256];
	event_t *ev;
	while ((ev = next_event(sub, 500, topic, sizeof(topic))) != NULL) {
		if (ev->seq > last + 1) { /* a gap: fill it by replay */
			uint64_t since = last;
			while (since < ev->seq - 1) {
				env_t *rp = replay(s, since, 1000);
				for (size_t i = 0; i < rp->replay_reply->n_events &&
				                   rp->replay_reply->events[i]->seq < ev->seq;
				     i++) {
					uint64_t q = rp->replay_reply->events[i]->seq;
					cr_assert(q >= 1 && q <= CASES);
					dup += seen[q];
					seen[q] = true;
					from_replay++;
				}
				cr_assert_gt(rp->replay_reply->last_seq, since);
				since = rp->replay_reply->last_seq;
				fieldsync__v1__envelope__free_unpacked(rp, NULL);
			}
		}
		if (ev->seq > last) {
			cr_assert_leq(ev->seq, CASES);
			dup += seen[ev->seq];
			seen[ev->seq] = true;
			last = ev->seq;
			from_pub++;
		}
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	}
	/* The tail after the last event received. */
	for (bool more = true; more;) {
		env_t *rp = replay(s, last, 1000);
		for (size_t i = 0; i < rp->replay_reply->n_events; i++) {
			uint64_t q = rp->replay_reply->events[i]->seq;
			cr_assert(q >= 1 && q <= CASES);
			dup += seen[q];
			seen[q] = true;
			from_replay++;
		}
		last = rp->replay_reply->last_seq;
		more = rp->replay_reply->more;
		fieldsync__v1__envelope__free_unpacked(rp, NULL);
	}
	cr_log_info("slow subscriber: %llu events from PUB, %llu by replay",
	            (unsigned long long)from_pub, (unsigned long long)from_replay);
	cr_expect_geq(CASES - from_pub, 10000,
	              "the subscriber missed at least 10,000 events on PUB");
	cr_expect_eq(from_pub + from_replay, CASES);
	cr_expect_eq(dup, 0, "each event handled once");
	for (int q = 1; q <= CASES; q++)
		cr_assert(seen[q], "event %d recovered", q);
	cr_expect_eq(last, CASES, "seq is gap-free: 1..16000");
	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

/* Starts a daemon whose clock reads `lead_ms` before midnight of 10 June 2026. */
static fs_test_daemon *
start_before_june_10(int64_t lead_ms)
{
	char off[32];
	snprintf(off, sizeof(off), "%lld", (long long)(JUNE_10 - lead_ms - now_ms()));
	const char *args[] = {"--clock-offset-ms", off, NULL};
	return fs_test_daemon_start_args(NULL, args);
}

Test(reminders, a_deadline_fires_on_time_while_running, .timeout = 60)
{
	fs_test_daemon *d = start_before_june_10(2500);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d), "reminder/", 0);
	env_t *r = push_case(s, "cs-t1", "case-timer", "a:1", JUNE_2_10AM, "team-b");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char topic[256];
	event_t *ev = next_event(sub, 5000, topic, sizeof(topic));
	cr_assert_not_null(ev);
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__DUE, "the due day has begun");
	cr_expect_eq(ev->due_at_ms, JUNE_10);
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	ev = next_event(sub, 10000, topic, sizeof(topic));
	cr_assert_not_null(ev, "the timer fired");
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	cr_expect_eq(ev->seq, 2);
	cr_expect_geq(ev->emitted_at_ms, JUNE_10, "not before the deadline");
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	cr_expect_null(next_event(sub, 1000, topic, sizeof(topic)), "and only once");
	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(reminders, a_deadline_that_passed_while_down_fires_at_start_up_once, .timeout = 60)
{
	fs_test_daemon *d = start_before_june_10(1500);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	env_t *r = push_case(s, "cs-d1", "case-down", "a:1", JUNE_2_10AM, "team-b");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	kill(fs_test_daemon_pid(d), SIGTERM);
	cr_assert_eq(fs_test_daemon_wait(d, 30000), 0);
	sleep(3); /* the deadline passes while the daemon is down */
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(s);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	env_t *rp = replay(s, 0, 0);
	cr_assert_eq(rp->replay_reply->n_events, 2);
	cr_expect_eq(rp->replay_reply->events[0]->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__DUE);
	cr_expect_eq(rp->replay_reply->events[1]->state,
	             FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);

	/* Restarting again neither loses nor repeats a transition. */
	cr_assert(fs_test_daemon_restart(d)); /* kill -9 this time */
	zmq_close(s);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	rp = replay(s, 0, 0);
	cr_expect_eq(rp->replay_reply->n_events, 2);
	cr_expect_eq(rp->replay_reply->last_seq, 2);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(reminders, a_bad_rule_table_is_refused_at_start_up, .timeout = 30)
{
	char *dir = fs_test_tmpdir();
	char path[600], cmd[2048];
	snprintf(path, sizeof(path), "%s/rules.json", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"quick-help\": {\"due\": \"7 dayz\"}}", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	         "%s --dev --data-dir %s/data --sync-endpoint tcp://127.0.0.1:0 "
	         "--reminder-endpoint tcp://127.0.0.1:0 --rules %s 2>&1",
	         FS_DAEMON_BIN, dir, path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char out[8192];
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	cr_expect_neq(st, 0, "the daemon refuses to start");
	cr_expect_not_null(strstr(out, "quick-help"), "the message names the rule: %s", out);
	cr_expect_not_null(strstr(out, "due"), "and the field: %s", out);
	fs_test_rm_rf(dir);
	free(dir);
}

/* ---- METHOD.md revision 2 through the real daemon ---------------------------- */

/* All replayed events after 0 (at most 1000): the reply, caller frees. */
static env_t *
replay_all(void *s)
{
	return replay(s, 0, 1000);
}

/* Reading 1: a talk entered for a later day does not make an OVERDUE
 * quick-help MET; the case timer does when the talk's held_at comes. */
Test(reminders, rev2_a_future_talk_does_not_hide_an_overdue_quick_help, .timeout = 60)
{
	/* the daemon's clock: an hour after quick-help's deadline (10 June 00:00) */
	int64_t off = JUNE_10 + 3600 * 1000 - now_ms();
	char offs[32];
	snprintf(offs, sizeof(offs), "%lld", (long long)off);
	const char *args[] = {"--clock-offset-ms", offs, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d), "reminder/quick-help/", 0);
	env_t *r = push_case(s, "cs-f1", "case-future", "a:1", JUNE_2_10AM, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char topic[256];
	event_t *ev = next_event(sub, 5000, topic, sizeof(topic));
	cr_assert_not_null(ev);
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);

	/* a talk entered now for 4 seconds from now (the daemon's clock) */
	int64_t talk_at = now_ms() + off + 4000;
	push_contact(s, "cs-f2", "talk-future", "case-future", talk_at, "");
	ev = next_event(sub, 2000, topic, sizeof(topic));
	cr_expect_null(ev, "a planned talk meets nothing: the deadline stays OVERDUE");
	if (ev != NULL)
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	ev = next_event(sub, 10000, topic, sizeof(topic));
	cr_assert_not_null(ev, "the case is evaluated again when the talk is held");
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	cr_expect_geq(ev->emitted_at_ms, talk_at);
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	cr_expect_null(next_event(sub, 1500, topic, sizeof(topic)), "once");
	env_t *rp = replay_all(s);
	cr_expect_eq(rp->replay_reply->n_events, 2);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* Reading 8: SIGHUP with a rule switched off cancels its active reminders,
 * each published once. */
Test(reminders, rev2_sighup_with_a_disabled_rule_cancels_and_publishes_once, .timeout = 60)
{
	char *dir = fs_test_tmpdir();
	char path[600];
	cr_assert_not_null(dir);
	snprintf(path, sizeof(path), "%s/rules.json", dir);
	write_file(path, "{\"quick-help\": {\"enabled\": true}}");
	const char *args[] = {"--rules", path, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d), "reminder/", 0);
	int64_t now = now_ms();
	env_t *r = push_case(s, "cs-h1", "case-h1", "a:1", now - 6 * DAY_MS, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	r = push_case(s, "cs-h2", "case-h2", "a:1", now - 1 * DAY_MS, "team-b");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char topic[256];
	for (int i = 0; i < 2; i++) {
		event_t *ev = next_event(sub, 5000, topic, sizeof(topic));
		cr_assert_not_null(ev);
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	}

	write_file(path, "{\"quick-help\": {\"enabled\": false}}");
	cr_assert_eq(kill(fs_test_daemon_pid(d), SIGHUP), 0);
	int cancelled = 0;
	for (int i = 0; i < 2; i++) {
		event_t *ev = next_event(sub, 5000, topic, sizeof(topic));
		cr_assert_not_null(ev, "a CANCELLED event for each active quick-help");
		cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED);
		cr_expect_str_eq(ev->rule, "quick-help");
		cancelled += ev->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED;
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	}
	cr_expect_eq(cancelled, 2);
	event_t *extra = next_event(sub, 1500, topic, sizeof(topic));
	cr_expect_null(extra, "each published once");
	if (extra != NULL)
		fieldsync__v1__reminder_event__free_unpacked(extra, NULL);
	/* a second SIGHUP with the same table changes nothing */
	cr_assert_eq(kill(fs_test_daemon_pid(d), SIGHUP), 0);
	extra = next_event(sub, 1500, topic, sizeof(topic));
	cr_expect_null(extra, "nothing to re-evaluate");
	if (extra != NULL)
		fieldsync__v1__reminder_event__free_unpacked(extra, NULL);
	env_t *rp = replay_all(s);
	cr_expect_eq(rp->replay_reply->n_events, 4);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(dir);
	free(dir);
}

/* Reading 8: a restart with another --time-zone moves the due times. */
Test(reminders, rev2_a_restart_with_another_time_zone_moves_due_times, .timeout = 60)
{
	char *dir = fs_test_tmpdir();
	char data[600];
	cr_assert_not_null(dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	fs_test_daemon *d = fs_test_daemon_start_args(data, NULL); /* Europe/Copenhagen */
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	env_t *r = push_case(s, "cs-z1", "case-zone", "a:1", JUNE_2_10AM, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	env_t *rp = replay_all(s);
	cr_assert_eq(rp->replay_reply->n_events, 1);
	cr_expect_eq(rp->replay_reply->events[0]->due_at_ms, JUNE_10,
	             "the end of 9 June in Copenhagen");
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);

	const char *utc[] = {"--time-zone", "UTC", NULL};
	d = fs_test_daemon_start_args(data, utc);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	/* the re-evaluation runs in the writer's first rounds: wait for it */
	for (int i = 0; i < 50; i++) {
		rp = replay_all(s);
		if (rp->replay_reply->n_events >= 2)
			break;
		fieldsync__v1__envelope__free_unpacked(rp, NULL);
		rp = NULL;
		usleep(100000);
	}
	cr_assert_not_null(rp, "the reminder was re-evaluated under the new zone");
	cr_assert_eq(rp->replay_reply->n_events, 2);
	cr_expect_eq(rp->replay_reply->events[1]->due_at_ms, JUNE_10 + 2 * 3600 * 1000,
	             "the end of 9 June in UTC");
	cr_expect_eq(rp->replay_reply->events[1]->state,
	             FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	cr_expect_str_eq(rp->replay_reply->events[1]->reminder_id, "quick-help/case-zone");
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);

	/* the same zone again: nothing to re-evaluate */
	d = fs_test_daemon_start_args(data, utc);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	usleep(500000);
	rp = replay_all(s);
	cr_expect_eq(rp->replay_reply->n_events, 2);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(dir);
	free(dir);
}

/* `fieldsyncd verify` on data_dir: its exit status, the output in out. */
static int
verify_store(const char *data_dir, char *out, size_t outlen)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "'%s' verify --data-dir '%s' 2>&1", FS_DAEMON_BIN, data_dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	return pclose(p);
}

/* An existing store of release 1 (tests/fixtures/store-v1/dev): the first
 * start of this build re-evaluates every reminder under revision 2 (the
 * changes published as events after the stored ones), and only the first. */
Test(reminders, rev2_a_release_1_store_is_re_evaluated_at_first_start, .timeout = 120)
{
	char *dir = fs_test_tmpdir();
	char data[600], cmd[2048], out[16384];
	cr_assert_not_null(dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(cmd, sizeof(cmd), "cp -R '%s/store-v1/dev' '%s' && chmod -R go-rwx '%s'",
	         FS_FIXTURES_DIR, data, data);
	cr_assert_eq(system(cmd), 0, "%s", cmd);

	fs_test_daemon *d = fs_test_daemon_start_args(data, NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	char *log = NULL;
	for (int i = 0; i < 50; i++) {
		free(log);
		log = fs_test_daemon_log(d);
		if (log != NULL && strstr(log, "every case re-evaluated") != NULL)
			break;
		usleep(100000);
	}
	cr_assert_not_null(log);
	cr_expect_not_null(strstr(log, "re-evaluating every case"), "the pass started: %s", log);
	cr_expect_not_null(strstr(log, "every case re-evaluated"), "and ended: %s", log);
	free(log);
	/* release 1 stored events 1..3; whatever revision 2 changed follows them */
	env_t *rp = replay_all(s);
	cr_assert_geq(rp->replay_reply->n_events, 3);
	for (size_t i = 0; i < rp->replay_reply->n_events; i++)
		cr_expect_eq(rp->replay_reply->events[i]->seq, i + 1);
	size_t n_first = rp->replay_reply->n_events;
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	/* the stored reminders are those of revision 2: state, due, warning */
	int st = verify_store(data, out, sizeof(out));
	cr_expect_eq(st, 0, "verify: %s", out);

	/* the second start has nothing to re-evaluate */
	d = fs_test_daemon_start_args(data, NULL);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	usleep(500000);
	log = fs_test_daemon_log(d);
	cr_assert_not_null(log);
	cr_expect_null(strstr(log, "re-evaluating every case"), "already under revision 2: %s",
	               log);
	free(log);
	rp = replay_all(s);
	cr_expect_eq(rp->replay_reply->n_events, n_first);
	fieldsync__v1__envelope__free_unpacked(rp, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(dir);
	free(dir);
}
