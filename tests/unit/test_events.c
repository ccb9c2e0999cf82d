/*
 * events.c: the reminder event log with real LMDB in a fresh temporary
 * directory: gap-free seqs, the publish batch and its metric labels, the
 * events another process stored, the published mark and replay pages.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/rules.h"
#include "fieldsyncd.h"

static char *g_dir;
static store *g_s;

static void
setup(void)
{
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	g_s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(g_s);
}

static void
teardown(void)
{
	store_close(&g_s);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(events, .init = setup, .fini = teardown);

/* Stores one event of rule r in scope, queued in q (NULL: not queued). */
static void
append(store_txn *t, rule_id r, const char *scope, const char *id, event_batch *q)
{
	Fieldsync__V1__ReminderEvent ev;
	fieldsync__v1__reminder_event__init(&ev);
	ev.reminder_id = (char *)id;
	ev.rule = (char *)rule_name(r);
	ev.state = FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING;
	ev.scope = (char *)scope;
	ev.case_id = "c1";
	int label = (int)metrics_rule_state((int)r, (int)ev.state);
	cr_assert_eq(events_append(t, &ev, label, q), FSD_OK);
	cr_expect_eq(ev.seq, events_last_seq(t), "the event got the next seq");
}

static void
append_committed(int n, const char *scope)
{
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "rem-%s-%d", scope, i);
		append(t, (rule_id)0, scope, id, NULL);
	}
	cr_assert_eq(store_commit(&t), FSD_OK);
}

Test(events, seqs_are_gap_free_and_a_batch_carries_topics_and_labels)
{
	event_batch q = {0};
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_expect_eq(events_last_seq(t), 0);
	append(t, (rule_id)0, "team-a", "r1", &q);
	append(t, (rule_id)1, "team-b", "r2", &q);
	append(t, (rule_id)1, "team-b", "r3", &q);
	cr_expect_eq(events_last_seq(t), 3);
	cr_assert_eq(q.n, 3);
	cr_expect_eq(q.last_seq, 3);
	char want[160];
	snprintf(want, sizeof(want), "reminder/%s/team-b", rule_name((rule_id)1));
	cr_expect_str_eq(q.topics[1], want);
	cr_expect_eq(q.label[1],
	             (int)metrics_rule_state(1, FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING));
	Fieldsync__V1__ReminderEvent *ev =
	    fieldsync__v1__reminder_event__unpack(NULL, q.len[2], q.data[2]);
	cr_assert_not_null(ev);
	cr_expect_eq(ev->seq, 3);
	cr_expect_str_eq(ev->reminder_id, "r3");
	fieldsync__v1__reminder_event__free_unpacked(ev, NULL);

	/* a rolled-back change set drops its events from the batch */
	events_batch_truncate(&q, 1);
	cr_expect_eq(q.n, 1);
	cr_assert_eq(store_commit(&t), FSD_OK);
	free(q.topics[0]);
	free(q.data[0]);
	free(q.topics);
	free(q.data);
	free(q.len);
	free(q.label);
}

Test(events, another_processs_events_and_the_published_mark)
{
	event_batch *b = NULL;
	store_txn *t = NULL;
	append_committed(4, "team-a");

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(events_after(t, 4, &b), FSD_OK);
	cr_expect_null(b, "nothing after the last one");
	cr_assert_eq(events_after(t, 1, &b), FSD_OK);
	cr_assert_not_null(b);
	cr_expect_eq(b->n, 3);
	cr_expect_eq(b->last_seq, 4);
	cr_expect_geq(b->label[0], 0, "the label is worked out from the stored event");
	event_batch_free(b);
	cr_assert_eq(events_unpublished(t, &b), FSD_OK);
	cr_assert_not_null(b);
	cr_expect_eq(b->n, 4, "nothing was published yet");
	event_batch_free(b);
	store_read_end(&t);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(events_set_published(t, 3), FSD_OK);
	cr_assert_eq(events_set_published(t, 2), FSD_OK); /* never backwards */
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(events_unpublished(t, &b), FSD_OK);
	cr_assert_not_null(b);
	cr_expect_eq(b->n, 1);
	cr_expect_eq(b->last_seq, 4);
	event_batch_free(b);
	store_read_end(&t);
}

static bool
only_team_a(const void *arg, const char *scope)
{
	(void)arg;
	return strcmp(scope, "team-a") == 0;
}

Test(events, replay_pages_hold_what_the_reader_may_see)
{
	Fieldsync__V1__ReplayRequest req;
	Fieldsync__V1__ReplayReply rep;
	append_committed(3, "team-a");
	append_committed(2, "team-b");
	append_committed(3, "team-a");

	fieldsync__v1__replay_request__init(&req);
	req.since_seq = 0;
	req.limit = 4;
	cr_assert_eq(events_replay(g_s, 1 << 20, only_team_a, NULL, &req, &rep), FSD_OK);
	cr_expect_eq(rep.n_events, 4);
	cr_expect(rep.more);
	for (size_t i = 0; i < rep.n_events; i++)
		cr_expect_str_eq(rep.events[i]->scope, "team-a");
	cr_expect_eq(rep.events[3]->seq, 6, "seqs 4 and 5 (team-b) were skipped");
	cr_expect_eq(rep.last_seq, 6);
	uint64_t next = rep.last_seq;
	events_replay_free(&rep);

	req.since_seq = next;
	cr_assert_eq(events_replay(g_s, 1 << 20, only_team_a, NULL, &req, &rep), FSD_OK);
	cr_expect_eq(rep.n_events, 2);
	cr_expect(!rep.more);
	cr_expect_eq(rep.last_seq, 8);
	events_replay_free(&rep);

	/* everything, in one page */
	req.since_seq = 0;
	req.limit = 0;
	cr_assert_eq(events_replay(g_s, 1 << 20, NULL, NULL, &req, &rep), FSD_OK);
	cr_expect_eq(rep.n_events, 8);
	events_replay_free(&rep);
}
