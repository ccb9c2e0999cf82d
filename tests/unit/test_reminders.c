/*
 * reminders.c: the deadline state machine, with real LMDB in a fresh
 * temporary directory. Records go in through changeset_apply (as the writer
 * does); the clock is moved with reminders_tick. One rule is enough to see
 * each transition: quick-help (due 7 days after a case's first contact,
 * warning 2 days before, met by any contact held since).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsyncd.h"

#define DAY (24 * 3600 * 1000LL)

static char *g_dir;
static config g_cfg;
static store *g_s;
static reminders *g_rem;
static int64_t g_now;

static void
setup(void)
{
	char err[300];
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	cr_assert_eq(config_load(&g_cfg, 1, (char *[]){"fieldsyncd", NULL}), CONFIG_RUN);
	g_s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(g_s);
	cr_assert_eq(reminders_new(&g_cfg, &g_rem, err, sizeof(err)), FSD_OK, "%s", err);
	g_now = clock_deadline_ms(g_cfg.clock_offset_ms);
}

static void
teardown(void)
{
	reminders_free(&g_rem);
	store_close(&g_s);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(reminders, .init = setup, .fini = teardown);

static const peer_auth g_all = {.all_scopes = true, .may_sync = true, .name = "tab-1"};

static void
push_case(const char *cs, const char *id, const char *version, int64_t first_contact_ms)
{
	Fieldsync__V1__Case c;
	uint8_t buf[256];
	fieldsync__v1__case__init(&c);
	c.contact_person = "s1";
	c.first_contact_at_ms = first_contact_ms;
	size_t len = fieldsync__v1__case__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, "case", id, "team-a", version, false, buf, len);
	store_txn *t = NULL;
	changeset_outcome o;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push,
	                             &o),
	             FSD_OK);
	cr_assert_not_null(o.packed, "applied");
	cr_assert_eq(store_commit(&t), FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

static void
push_contact(const char *cs, const char *id, const char *case_id, int64_t held_ms)
{
	Fieldsync__V1__Contact c;
	uint8_t buf[256];
	fieldsync__v1__contact__init(&c);
	c.case_id = (char *)case_id;
	c.held_at_ms = held_ms;
	size_t len = fieldsync__v1__contact__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, "contact", id, "team-a", "r1:1", false, buf, len);
	store_txn *t = NULL;
	changeset_outcome o;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push,
	                             &o),
	             FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

static void
tick(int64_t at)
{
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_tick(g_rem, t, at), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

/* The events emitted since the last call, as (state) in order; returns n. */
static size_t
take_states(int *states, size_t cap, char *last_id, size_t idcap)
{
	event_batch *b = NULL;
	size_t n = 0;
	cr_assert_eq(reminders_take(g_rem, &b), FSD_OK);
	for (size_t i = 0; b != NULL && i < b->n && n < cap; i++) {
		Fieldsync__V1__ReminderEvent *ev =
			fieldsync__v1__reminder_event__unpack(NULL, b->len[i], b->data[i]);
		cr_assert_not_null(ev);
		cr_expect_str_eq(ev->rule, "quick-help");
		cr_expect_str_eq(ev->scope, "team-a");
		cr_expect_str_eq(ev->case_id, "c1");
		cr_expect_eq(b->label[i], (int)metrics_rule_state(RULE_QUICK_HELP, (int)ev->state));
		states[n++] = (int)ev->state;
		if (last_id != NULL)
			snprintf(last_id, idcap, "%s", ev->reminder_id);
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	}
	event_batch_free(b);
	return n;
}

static uint64_t
count(int state)
{
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	uint64_t n = reminder_rows_count(t, RULE_QUICK_HELP, state);
	store_read_end(&t);
	return n;
}

Test(reminders, a_deadline_is_scheduled_warned_and_overdue_with_the_clock)
{
	int st[8];
	char id[200] = "";
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	cr_assert_eq(take_states(st, 8, id, sizeof(id)), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED);
	cr_expect_str_eq(id, "quick-help/c1");
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED), 1);

	tick(g_now + 1 * DAY); /* nothing changes yet */
	cr_expect_eq(take_states(st, 8, NULL, 0), 0);
	tick(g_now + 5 * DAY + 1); /* less than 2 days before the due instant */
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING);
	tick(g_now + 9 * DAY);
	cr_assert_geq(take_states(st, 8, NULL, 0), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED), 0);
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE), 1);
}

Test(reminders, a_contact_held_since_the_start_meets_it_once)
{
	int st[8];
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	take_states(st, 8, NULL, 0);
	push_contact("cs-2", "k1", "c1", g_now - DAY / 2);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__MET), 1);

	/* the clock moving on changes nothing for a met reminder */
	tick(g_now + 30 * DAY);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0);
	/* nor does the same case written again */
	push_case("cs-3", "c1", "r1:2", g_now - DAY);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0);
}

Test(reminders, erasing_a_case_cancels_its_active_reminders)
{
	int st[8];
	size_t n = 0;
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	take_states(st, 8, NULL, 0);

	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	uint64_t before = events_last_seq(t);
	cr_assert_eq(reminders_erase_case(t, "c1", g_now, &n), FSD_OK);
	cr_expect_eq(n, 1);
	cr_expect_eq(events_last_seq(t), before + 1, "a CANCELLED event is stored");
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED), 0);
	cr_expect_eq(count(FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED), 0,
	             "the row is gone with the case");

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	event_batch *b = NULL;
	cr_assert_eq(events_after(t, before, &b), FSD_OK);
	cr_assert_not_null(b, "the daemon publishes what another process stored");
	Fieldsync__V1__ReminderEvent *ev =
		fieldsync__v1__reminder_event__unpack(NULL, b->len[0], b->data[0]);
	cr_assert_not_null(ev);
	cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED);
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	event_batch_free(b);
	store_read_end(&t);
}

static void
no_problem(void *arg, const char *case_id, const char *reminder_id, const char *problem)
{
	(void)arg;
	cr_expect_fail("verify: case %s, reminder %s: %s", case_id, reminder_id, problem);
}

static void
count_problem(void *arg, const char *case_id, const char *reminder_id, const char *problem)
{
	(void)case_id;
	(void)reminder_id;
	(void)problem;
	(*(size_t *)arg)++;
}

Test(reminders, verify_finds_the_stored_rows_as_the_rules_imply_them)
{
	int st[8];
	size_t checked = 0;
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	take_states(st, 8, NULL, 0);
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_verify_case(g_rem, t, "c1", no_problem, NULL, &checked), FSD_OK);
	cr_expect_geq(checked, 1);
	store_read_end(&t);
}

Test(reminders, a_rolled_back_change_set_takes_its_events_back)
{
	int st[8];
	size_t mark = reminders_mark(g_rem);
	store_txn *t = NULL;
	Fieldsync__V1__Case c;
	uint8_t buf[256];
	fieldsync__v1__case__init(&c);
	c.first_contact_at_ms = g_now - DAY;
	size_t len = fieldsync__v1__case__pack(&c, buf);
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "case", "c1", "team-a", "r1:1", false, buf, len);
	changeset_outcome o;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push,
	                             &o),
	             FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
	store_abort(&t); /* the round failed: nothing was committed */
	reminders_rollback(g_rem, mark);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "no event of an aborted round is published");
}

/* ---- METHOD.md revision 2 through the real store ----------------------------- */

/* Applies one change set holding case `id` with value c, as the writer does. */
static void
push_case_value(const char *cs, const char *id, const char *version, const Fieldsync__V1__Case *c)
{
	uint8_t buf[512];
	size_t len = fieldsync__v1__case__pack(c, buf);
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, "case", id, "team-a", version, false, buf, len);
	store_txn *t = NULL;
	changeset_outcome o;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push,
	                             &o),
	             FSD_OK);
	cr_assert_not_null(o.packed, "applied");
	cr_assert_eq(store_commit(&t), FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

/* The events emitted since the last call, unpacked into evs[] (caller frees each). */
static size_t
take_events(Fieldsync__V1__ReminderEvent **evs, size_t cap)
{
	event_batch *b = NULL;
	size_t n = 0;
	cr_assert_eq(reminders_take(g_rem, &b), FSD_OK);
	for (size_t i = 0; b != NULL && i < b->n; i++) {
		cr_assert_lt(n, cap, "more events than expected");
		evs[n] = fieldsync__v1__reminder_event__unpack(NULL, b->len[i], b->data[i]);
		cr_assert_not_null(evs[n]);
		n++;
	}
	event_batch_free(b);
	return n;
}

static void
free_events(Fieldsync__V1__ReminderEvent **evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fieldsync__v1__reminder_event__free_unpacked(evs[i], NULL);
}

/* Reading 1: a talk dated ahead meets nothing until its held_at, then the
 * case timer re-evaluates the case and the MET event goes out once. */
Test(reminders, rev2_held_at_timer_fires_and_re_evaluates)
{
	int st[8];
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	push_contact("cs-2", "k1", "c1", g_now + 2 * DAY);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "a talk not yet held meets nothing");

	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	int64_t next = reminders_next_fire(g_rem, t);
	store_read_end(&t);
	cr_expect_eq(next, g_now + 2 * DAY, "the case timer is the talk's held_at");

	tick(g_now + 2 * DAY - 1);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0);
	tick(g_now + 2 * DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1, "the timer fired");
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	tick(g_now + 30 * DAY);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "once");
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect_eq(reminders_next_fire(g_rem, t), 0, "no timer left");
	store_read_end(&t);
}

/* Every change of the contact person alone is published, exactly once. */
Test(reminders, rev2_contact_person_change_is_republished_once)
{
	Fieldsync__V1__ReminderEvent *evs[4];
	Fieldsync__V1__Case c;
	fieldsync__v1__case__init(&c);
	c.first_contact_at_ms = g_now - DAY;
	c.contact_person = "s1";
	push_case_value("cs-1", "c1", "r1:1", &c);
	size_t n = take_events(evs, 4);
	cr_assert_eq(n, 1);
	cr_expect_str_eq(evs[0]->contact_person, "s1");
	int64_t due = evs[0]->due_at_ms;
	int state = evs[0]->state;
	free_events(evs, n);

	c.contact_person = "s2"; /* a new contact person, nothing else */
	push_case_value("cs-2", "c1", "r1:2", &c);
	n = take_events(evs, 4);
	cr_assert_eq(n, 1, "republished");
	cr_expect_str_eq(evs[0]->contact_person, "s2");
	cr_expect_eq(evs[0]->due_at_ms, due);
	cr_expect_eq((int)evs[0]->state, state);
	free_events(evs, n);

	push_case_value("cs-3", "c1", "r1:3", &c); /* the same value again */
	cr_expect_eq(take_events(evs, 4), 0, "exactly once");
}

/* Reading 7: a case ended with taken_over_by already set has no handover
 * reminder and no MET event; one that started turns MET. */
Test(reminders, rev2_no_event_for_a_reminder_that_never_started)
{
	Fieldsync__V1__ReminderEvent *evs[4];
	Fieldsync__V1__Case c;
	fieldsync__v1__case__init(&c);
	c.ended_at_ms = g_now - DAY;
	c.needs_further_support = true;
	c.taken_over_by = "PPR";
	push_case_value("cs-1", "c1", "r1:1", &c);
	cr_expect_eq(take_events(evs, 4), 0, "no handover reminder, no MET event");

	c.taken_over_by = ""; /* nobody took over after all: it starts */
	push_case_value("cs-2", "c2", "r1:1", &c);
	size_t n = take_events(evs, 4);
	cr_assert_eq(n, 1);
	cr_expect_str_eq(evs[0]->rule, "handover");
	cr_expect_eq(evs[0]->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE,
	             "due at the end of the day it ended, yesterday");
	free_events(evs, n);
	c.taken_over_by = "PPR"; /* now taken over: MET */
	push_case_value("cs-3", "c2", "r1:2", &c);
	n = take_events(evs, 4);
	cr_assert_eq(n, 1);
	cr_expect_eq(evs[0]->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__MET);
	free_events(evs, n);
}

/* Installs rc as the writer does after SIGHUP; true when a re-evaluation is pending. */
static bool
install_rules(const char *json)
{
	rules_config rc;
	char err[256] = "";
	rules_config_default(&rc);
	if (json != NULL)
		cr_assert(rules_config_load_json(&rc, json, err, sizeof(err)), "%s", err);
	reminders_set_rules(g_rem, &rc);
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	bool pending = reminders_reeval_check(g_rem, t);
	store_read_end(&t);
	return pending;
}

/* One re-evaluation round of at most max cases, committed; returns how many. */
static size_t
reeval_round(size_t max)
{
	store_txn *t = NULL;
	size_t done = 0;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_reeval_step(g_rem, t, g_now, max, &done), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	reminders_committed(g_rem);
	return done;
}

/* Reading 8: a rule switched off by a reload cancels its active reminders,
 * each published once; the next check finds nothing to do. */
Test(reminders, rev2_disabled_rule_cancels_after_reload)
{
	int st[8];
	/* a fresh store: the first check brings it to the current fingerprint */
	if (install_rules(NULL))
		while (reminders_reeval_pending(g_rem))
			reeval_round(100);
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	cr_expect_not(install_rules(NULL), "the same rules: nothing to do");

	cr_assert(install_rules("{\"quick-help\": {\"enabled\": false}}"));
	cr_expect_eq(reeval_round(100), 1);
	cr_expect_not(reminders_reeval_pending(g_rem));
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED);
	cr_expect_not(install_rules("{\"quick-help\": {\"enabled\": false}}"), "stored: done");
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "published once");

	/* switched on again: the reminder comes back */
	cr_assert(install_rules(NULL));
	reeval_round(100);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED);
}

/* Reading 8: every stored case, in bounded batches; a rolled-back batch is
 * done again; each change published once. */
Test(reminders, rev2_re_evaluation_in_batches)
{
	Fieldsync__V1__ReminderEvent *evs[16];
	char id[16], cs[16];
	size_t n_ev;
	if (install_rules(NULL))
		while (reminders_reeval_pending(g_rem))
			reeval_round(100);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		snprintf(cs, sizeof(cs), "cs-%d", i);
		push_case(cs, id, "r1:1", g_now - DAY);
	}
	cr_assert_eq(n_ev = take_events(evs, 16), 5);
	free_events(evs, n_ev);

	cr_assert(install_rules("{\"quick-help\": {\"due\": \"10 days\"}}"));
	/* a batch whose round fails is done again */
	store_txn *t = NULL;
	size_t done = 0, mark = reminders_mark(g_rem);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_reeval_step(g_rem, t, g_now, 2, &done), FSD_OK);
	cr_expect_eq(done, 2);
	store_abort(&t);
	reminders_rollback(g_rem, mark);
	cr_expect_eq(take_events(evs, 16), 0, "the aborted round's events are dropped");

	size_t total = 0, rounds = 0;
	while (reminders_reeval_pending(g_rem)) {
		size_t n = reeval_round(2);
		cr_expect_leq(n, 2, "bounded");
		total += n;
		cr_assert_lt(++rounds, 10);
	}
	cr_expect_eq(total, 5, "every case once");
	cr_expect_eq(rounds, 3);
	cr_expect_eq(n_ev = take_events(evs, 16), 5, "each new due time published once");
	free_events(evs, n_ev);
	cr_expect_not(install_rules("{\"quick-help\": {\"due\": \"10 days\"}}"));
}

/* Reading 8: another zone moves every due time, published once each. */
Test(reminders, rev2_another_zone_moves_due_times)
{
	Fieldsync__V1__ReminderEvent *evs[4];
	char err[256] = "";
	if (install_rules(NULL))
		while (reminders_reeval_pending(g_rem))
			reeval_round(100);
	push_case("cs-1", "c1", "r1:1", 1780387200000LL); /* 2026-06-02 10:00 Copenhagen */
	size_t n = take_events(evs, 4);
	cr_assert_eq(n, 1);
	int64_t due = evs[0]->due_at_ms;
	free_events(evs, n);

	fs_tz *tz = tz_load("America/New_York", err, sizeof(err));
	cr_assert_not_null(tz, "%s", err);
	reminders_set_zone(g_rem, tz);
	cr_assert(install_rules(NULL), "another zone: another fingerprint");
	reeval_round(100);
	n = take_events(evs, 4);
	cr_assert_eq(n, 1);
	cr_expect_eq(due, 1781042400000LL, "the end of 9 June in Copenhagen");
	cr_expect_eq(evs[0]->due_at_ms, 1781064000000LL, "the end of 9 June in New York");
	free_events(evs, n);
}

/* Reading 8: a reload back to the stored rules in the middle of a pass
 * still brings the cases already done back. */
Test(reminders, rev2_a_reload_mid_pass_begins_again)
{
	Fieldsync__V1__ReminderEvent *evs[16];
	char id[16], cs[16];
	size_t n;
	if (install_rules(NULL))
		while (reminders_reeval_pending(g_rem))
			reeval_round(100);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		snprintf(cs, sizeof(cs), "cs-%d", i);
		push_case(cs, id, "r1:1", g_now - DAY);
	}
	free_events(evs, take_events(evs, 16));
	cr_assert(install_rules("{\"quick-help\": {\"due\": \"10 days\"}}"));
	cr_expect_eq(reeval_round(2), 2);
	cr_expect_eq(n = take_events(evs, 16), 2);
	free_events(evs, n);
	cr_assert(install_rules(NULL), "the pass was not finished: the store holds no fingerprint");
	while (reminders_reeval_pending(g_rem))
		reeval_round(2);
	cr_expect_eq(n = take_events(evs, 16), 2,
	             "the two cases done under the other rules come back");
	free_events(evs, n);
	cr_expect_not(install_rules(NULL));
}

/* verify compares state, due and warning times. */
Test(reminders, rev2_verify_compares_state_due_and_warning)
{
	int st[8];
	size_t checked = 0, problems = 0;
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	take_states(st, 8, NULL, 0);
	uint8_t key[REMINDER_KEY_MAX];
	size_t kl = fsk_case_key(key, sizeof(key), "c1", "quick-help/c1");
	store_txn *t = NULL;
	reminder_row *row = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminder_rows_get(t, key, kl, &row), FSD_OK);
	row->warning_at_ms -= 1; /* only the warning time is off */
	cr_assert_eq(reminder_rows_put(t, key, kl, row), FSD_OK);
	fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_verify_case_at(g_rem, t, "c1", g_now, count_problem, &problems,
	                                      &checked),
	             FSD_OK);
	cr_expect_eq(problems, 1, "the warning time differs");
	store_read_end(&t);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminder_rows_get(t, key, kl, &row), FSD_OK);
	row->warning_at_ms += 1;
	row->state = FIELDSYNC__V1__REMINDER_EVENT__STATE__MET; /* the state is off */
	cr_assert_eq(reminder_rows_put(t, key, kl, row), FSD_OK);
	fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	cr_assert_eq(store_commit(&t), FSD_OK);
	problems = 0;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminders_verify_case_at(g_rem, t, "c1", g_now, count_problem, &problems,
	                                      &checked),
	             FSD_OK);
	cr_expect_eq(problems, 1, "the state differs");
	store_read_end(&t);
}

/* ---- issue 11: a case that cannot be read holds back no other timer ------- */

/* The earliest timer and its value (the times it was skipped, 0: none). */
static int64_t
first_timer(uint32_t *skipped)
{
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	int64_t at = reminders_next_fire(g_rem, t);
	*skipped = 0;
	if (at > 0) {
		uint8_t key[8 + REMINDER_KEY_MAX];
		const void *v = NULL;
		size_t vl = 0;
		fsk_put_be64(key, (uint64_t)at);
		size_t kl = fsk_case_key(key + 8, REMINDER_KEY_MAX, "c0", "quick-help/c0");
		if (store_kv_get(t, &reminders_timers_table, key, 8 + kl, &v, &vl) != FSD_OK)
			kl = fsk_case_key(key + 8, REMINDER_KEY_MAX, "c0", "");
		cr_assert_eq(store_kv_get(t, &reminders_timers_table, key, 8 + kl, &v, &vl), FSD_OK,
		             "the earliest timer is c0's");
		cr_assert_eq(vl, 4);
		const uint8_t *b = v;
		*skipped = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	}
	store_read_end(&t);
	return at;
}

/* Stores, for case c0, value under the reminders key (c0, tail) and a timer due at fire. */
static void
plant(const char *tail, const uint8_t *val, size_t vlen, int64_t fire)
{
	uint8_t key[8 + REMINDER_KEY_MAX];
	store_txn *t = NULL;
	size_t kl = fsk_case_key(key + 8, REMINDER_KEY_MAX, "c0", tail);
	fsk_put_be64(key, (uint64_t)fire);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	if (val != NULL)
		cr_assert_eq(store_kv_put(t, &reminders_table, key + 8, kl, val, vlen, false), FSD_OK);
	cr_assert_eq(store_kv_put(t, &reminders_timers_table, key, 8 + kl, "", 0, false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

/* The backoff: 1 min, doubling, at most an hour; the count in the timer. */
static void
expect_backoff(int64_t at)
{
	uint32_t skipped = 0;
	int64_t delay = 60000;
	for (uint32_t i = 1; i <= 9; i++) {
		int64_t next = first_timer(&skipped);
		cr_expect_eq(next, at + delay, "skip %u: retried %lld ms later, not %lld", i,
		             (long long)delay, (long long)(next - at));
		cr_expect_eq(skipped, i);
		at = next;
		tick(at);
		delay = delay * 2 > 3600000 ? 3600000 : delay * 2;
	}
}

Test(reminders, issue11_an_unreadable_reminder_row_is_skipped_and_retried_with_backoff)
{
	int st[8];
	const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff}; /* no ReminderRow decodes from it */
	int64_t skipped0 = metrics_value(METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, 0);
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);
	/* c0's row does not decode; its timer is due before c1's */
	plant("quick-help/c0", garbage, sizeof(garbage), g_now + DAY);
	tick(g_now + 9 * DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1, "c1 fires, c0 does not stop it");
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	cr_expect_eq(metrics_value(METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, 0), skipped0 + 1);
	expect_backoff(g_now + 9 * DAY);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "nothing is made up for c0");
}

Test(reminders, issue11_an_unreadable_case_behind_a_case_timer_is_rolled_back_and_skipped)
{
	int st[8];
	const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
	uint8_t rkey[1 + FSP_COLLECTION_MAX + FSP_ID_MAX];
	store_txn *t = NULL;
	/* case c0's record does not decode, and a case timer (held_at) is due for it */
	size_t rl = fsk_record_prefix(rkey, "case");
	memcpy(rkey + rl, "c0", 2);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(store_kv_put(t, &records_table, rkey, rl + 2, garbage, sizeof(garbage), false),
	             FSD_OK);
	uint8_t ckey[REMINDER_KEY_MAX];
	size_t cl = fsk_case_key(ckey, sizeof(ckey), "c0", "");
	reminder_row row;
	fieldsyncd__store__reminder_row__init(&row);
	row.reminder_id = "";
	row.rule = RULE_COUNT;
	row.state = FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED;
	row.scope = "";
	row.case_id = "c0";
	row.contact_person = "";
	row.next_fire_ms = g_now + DAY;
	cr_assert_eq(reminder_rows_put(t, ckey, cl, &row), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	plant("", NULL, 0, g_now + DAY);
	push_case("cs-1", "c1", "r1:1", g_now - DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1);

	tick(g_now + 9 * DAY);
	cr_assert_eq(take_states(st, 8, NULL, 0), 1, "c1 fires, c0 does not stop it");
	cr_expect_eq(st[0], FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE);
	/* the case timer's row is still there: the failed evaluation was rolled back */
	reminder_row *kept = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect_eq(reminder_rows_get(t, ckey, cl, &kept), FSD_OK);
	if (kept != NULL)
		fieldsyncd__store__reminder_row__free_unpacked(kept, NULL);
	store_read_end(&t);
	expect_backoff(g_now + 9 * DAY);
}
