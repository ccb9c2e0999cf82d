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
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push, &o),
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
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push, &o),
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
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push, &o),
	             FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
	store_abort(&t); /* the round failed: nothing was committed */
	reminders_rollback(g_rem, mark);
	cr_expect_eq(take_states(st, 8, NULL, 0), 0, "no event of an aborted round is published");
}
