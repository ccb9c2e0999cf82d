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
#include "fieldsync/keys.h"
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
	uint64_t gone = 0;
	append_committed(3, "team-a");
	append_committed(2, "team-b");
	append_committed(3, "team-a");

	fieldsync__v1__replay_request__init(&req);
	req.since_seq = 0;
	req.limit = 4;
	cr_assert_eq(events_replay(g_s, 1 << 20, only_team_a, NULL, &req, &rep, &gone), FSD_OK);
	cr_expect_eq(rep.n_events, 4);
	cr_expect(rep.more);
	for (size_t i = 0; i < rep.n_events; i++)
		cr_expect_str_eq(rep.events[i]->scope, "team-a");
	cr_expect_eq(rep.events[3]->seq, 6, "seqs 4 and 5 (team-b) were skipped");
	cr_expect_eq(rep.last_seq, 6);
	uint64_t next = rep.last_seq;
	events_replay_free(&rep);

	req.since_seq = next;
	cr_assert_eq(events_replay(g_s, 1 << 20, only_team_a, NULL, &req, &rep, &gone), FSD_OK);
	cr_expect_eq(rep.n_events, 2);
	cr_expect(!rep.more);
	cr_expect_eq(rep.last_seq, 8);
	events_replay_free(&rep);

	/* everything, in one page */
	req.since_seq = 0;
	req.limit = 0;
	cr_assert_eq(events_replay(g_s, 1 << 20, NULL, NULL, &req, &rep, &gone), FSD_OK);
	cr_expect_eq(rep.n_events, 8);
	cr_expect_eq(gone, 0, "nothing was trimmed");
	events_replay_free(&rep);
}

/* ---- retention ------------------------------------------------------------ */

/* Stores one event emitted at `at` (0: a marker without a time), committed. */
static void
append_at(int64_t at)
{
	store_txn *t = NULL;
	Fieldsync__V1__ReminderEvent ev;
	fieldsync__v1__reminder_event__init(&ev);
	ev.reminder_id = "rem";
	ev.rule = at != 0 ? (char *)rule_name((rule_id)0) : "";
	ev.scope = "team-a";
	ev.case_id = at != 0 ? "c1" : "";
	ev.emitted_at_ms = at;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(events_append(t, &ev, -1, NULL), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

/* One trim in its own transaction, with published_seq set to handed first. */
static size_t
trim(uint64_t handed, int64_t now, uint32_t days, uint64_t count, size_t batch)
{
	store_txn *t = NULL;
	size_t n = 0;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(events_set_published(t, handed), FSD_OK);
	cr_assert_eq(events_trim(t, now, days, count, batch, &n), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	return n;
}

static uint64_t
oldest(void)
{
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	uint64_t o = events_oldest_seq(t);
	store_read_end(&t);
	return o;
}

/* Replays from since (every scope); returns trimmed_before, *first the first seq. */
static uint64_t
replay_from(uint64_t since, size_t *n, uint64_t *first)
{
	Fieldsync__V1__ReplayRequest req;
	Fieldsync__V1__ReplayReply rep;
	uint64_t gone = 0;
	fieldsync__v1__replay_request__init(&req);
	req.since_seq = since;
	req.limit = 1000;
	cr_assert_eq(events_replay(g_s, 1 << 20, NULL, NULL, &req, &rep, &gone), FSD_OK);
	*n = rep.n_events;
	*first = rep.n_events > 0 ? rep.events[0]->seq : 0;
	events_replay_free(&rep);
	return gone;
}

Test(events, a_count_limit_trims_the_oldest_in_bounded_batches_never_past_published)
{
	size_t n;
	uint64_t first;
	append_committed(50, "team-a");
	cr_expect_eq(oldest(), 1, "nothing trimmed yet");
	/* 50 kept, 10 allowed, only 25 handed to the publisher, batches of 8. */
	cr_expect_eq(trim(25, 0, 0, 10, 8), 8);
	cr_expect_eq(oldest(), 9);
	cr_expect_eq(trim(25, 0, 0, 10, 8), 8);
	cr_expect_eq(trim(25, 0, 0, 10, 8), 8);
	cr_expect_eq(trim(25, 0, 0, 10, 8), 1, "seq 25 is the last handed one");
	cr_expect_eq(trim(25, 0, 0, 10, 8), 0);
	cr_expect_eq(oldest(), 26);
	/* The rest once handed: down to the newest 10. */
	while (trim(50, 0, 0, 10, 8) > 0)
		;
	cr_expect_eq(oldest(), 41);
	cr_expect_eq(metrics_value(METRIC_EVENTS_OLDEST_SEQ, 0), 41);

	/* Replay from before the oldest kept: TRIMMED; from oldest-1: the rest. */
	cr_expect_eq(replay_from(0, &n, &first), 41);
	cr_expect_eq(n, 0);
	cr_expect_eq(replay_from(39, &n, &first), 41, "seq 40 is gone");
	cr_expect_eq(replay_from(40, &n, &first), 0);
	cr_expect_eq(n, 10);
	cr_expect_eq(first, 41);
	cr_expect_eq(replay_from(50, &n, &first), 0, "a reader that keeps up");
	cr_expect_eq(n, 0);
}

Test(events, an_age_limit_trims_old_events_and_the_markers_among_them)
{
	size_t n;
	uint64_t first;
	const int64_t day = 86400000LL, now = 1000 * day;
	append_at(now - 500 * day); /* 1: old */
	append_at(0);               /* 2: a marker between old ones */
	append_at(now - 450 * day); /* 3: old */
	append_at(0);               /* 4: a marker before a young one: it stays */
	append_at(now - 10 * day);  /* 5: young */
	append_at(now - 900 * day); /* 6: old, but after a young one: kept (a prefix only) */
	cr_expect_eq(trim(6, now, 400, 0, 100), 3);
	cr_expect_eq(oldest(), 4);
	cr_expect_eq(trim(6, now, 400, 0, 100), 0, "nothing more is old at the head");
	cr_expect_eq(replay_from(3, &n, &first), 0);
	cr_expect_eq(n, 3);
	cr_expect_eq(first, 4);
	/* 0 keeps everything. */
	cr_expect_eq(trim(6, now + 2000 * day, 0, 0, 100), 0);
	cr_expect_eq(oldest(), 4);
	/* Everything old: all but the newest go; a reader at the head replays. */
	cr_expect_eq(trim(6, now + 2000 * day, 400, 0, 100), 2);
	cr_expect_eq(oldest(), 6);
	cr_expect_eq(replay_from(6, &n, &first), 0);
	cr_expect_eq(replay_from(5, &n, &first), 0);
	cr_expect_eq(n, 1);
	cr_expect_eq(replay_from(4, &n, &first), 6);
}

Test(events, a_row_that_does_not_decode_is_skipped_by_replay_and_counted)
{
	size_t n;
	uint64_t first;
	store_txn *t = NULL;
	uint8_t key[8];
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	append_committed(3, "team-a");
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	fsk_put_be64(key, 2);
	cr_assert_eq(store_kv_put(t, &events_table, key, 8, junk, sizeof(junk), false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	int64_t before = metrics_value(METRIC_EVENTS_UNREADABLE_TOTAL, 0);
	cr_expect_eq(replay_from(0, &n, &first), 0);
	cr_expect_eq(n, 2, "seq 1 and 3, seq 2 skipped");
	cr_expect_eq(metrics_value(METRIC_EVENTS_UNREADABLE_TOTAL, 0), before + 1);
}
