/*
 * writer: the writer actor, group commit (endpoint layer; writer.h).
 *
 * It owns the only LMDB write transaction. Each round it takes every push
 * job queued on the pipe (up to batch_max_jobs), applies them in ONE write
 * transaction, each change set in a nested transaction of its own so that a
 * rejected set rolls back alone (changeset.c), commits once (one fsync for the whole
 * round), and only then hands the jobs back with their replies. Concurrent
 * devices thus share fsyncs instead of paying one each.
 *
 * Round outcomes:
 *   one set fails    (an unreadable record it touches, a gone data key, a
 *                    crypto error, ...) its nested transaction is rolled
 *                    back and that job alone gets Error UNAVAILABLE or
 *                    INTERNAL (a neutral text); the round goes on
 *   timers fail      (out of memory, ...; a due timer of a case that cannot
 *                    be read is skipped alone inside reminders_tick) their
 *                    own nested transaction is rolled back, they are tried
 *                    again a second later; the round goes on
 *   commit ok        every other job gets its PushReply (stored for retries)
 *   MDB_MAP_FULL     abort, grow the map, redo the round from the start
 *   disk full        abort; every job gets Error BUSY with retry_after_ms
 *   other failure    abort; every job gets Error UNAVAILABLE
 * Nothing is acknowledged that was not committed.
 *
 * The same transactions carry the reminders (reminders.c): every record the
 * writer stores is noted, the cases it touches are re-evaluated before the
 * change set's nested transaction commits, and the events go to the main
 * thread (daemon.c -> reminder_endpoint) only after the durable commit. Between
 * rounds the writer sleeps until the next reminder timer, then fires it in
 * a round of its own. The idle writer wakes at least once a second (to
 * publish events another process stored, publish_external), so its sleep
 * is capped at 1 s.
 *
 * Rules changed (METHOD.md reading 8): at start and whenever SIGHUP
 * installs a rule table and a zone, reminders_reeval_check() compares the rules'
 * fingerprint with the store's; while a re-evaluation is pending the writer
 * does not sleep, and after each round of pushes (their replies sent) runs
 * one round of REEVAL_BATCH cases of its own, so a push waits for at most
 * one batch.
 *
 * Threads: the writer is an actor (actor.h): it runs on its own thread and
 * talks to the main thread over its pipe only (writer.h lists the messages).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "changeset.h"
#include "clock.h"
#include "events.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"
#include "writer.h"

#define REEVAL_BATCH 256 /* cases re-evaluated per round after the rules changed */

struct writer {
	actor *thread;
	store *s;
	const config *c;
	reminders *rem;
	push_job **jobs;         /* room for batch_max_jobs */
	uint64_t handed_seq;     /* last event seq handed to the publisher */
	int64_t next_fire;       /* earliest reminder timer, 0 = none */
	int64_t reeval_retry_ms; /* after a failed re-evaluation round: not before (mono) */
	int64_t tick_retry_ms;   /* after reminder timers failed to fire: not before (mono) */
	void *pipe;              /* the actor's end, valid while it runs */
};

/* pipe_send() of old: true when sent. */
static bool
pipe_send(void *pipe, char tag, void *ptr, int flags)
{
	return actor_send(pipe, tag, ptr, flags) == FSD_OK;
}

void
push_job_free(push_job *j)
{
	if (j == NULL)
		return;
	if (j->request != NULL)
		fieldsync__v1__envelope__free_unpacked(j->request, NULL);
	free(j->reply);
	free(j);
}

static void
job_set_error(push_job *j, fs_error_code code, const char *msg, uint32_t retry_ms)
{
	free(j->reply);
	j->reply = NULL;
	if (wire_error(j->request_id, code, msg, retry_ms, &j->reply, &j->reply_len) != FSD_OK)
		j->reply_len = 0;
}

/*
 * Whether a change set's failure dooms the round: the round's own
 * transaction failed (map full, disk full, I/O), or the parent transaction
 * is no longer usable (LMDB refuses a child of a broken parent, so a probe
 * child tells). Anything else (an unreadable stored record, a gone data
 * key, a crypto error, bad input, out of memory for this set) was rolled
 * back with the set's own nested transaction (changeset_apply) and fails
 * that set alone.
 */
static bool
round_doomed(store_txn *parent, fsd_err rc)
{
	store_txn *probe = NULL;
	if (rc == FSD_FULL || rc == FSD_NOSPACE || rc == FSD_IO)
		return true;
	if (store_nested_begin(parent, &probe) != FSD_OK)
		return true;
	store_abort(&probe);
	return false;
}

/* Applies one job's change set; its reply is set unless the round is doomed
 * (then the error is returned). A set that fails alone gets an Error. */
static fsd_err
apply_job(writer *w, store_txn *parent, push_job *j)
{
	changeset_outcome o;
	fsd_err rc = changeset_apply(parent, w->rem, w->c, &j->auth, j->request->push, &o);
	if (rc != FSD_OK && round_doomed(parent, rc))
		return rc;
	if (rc != FSD_OK) { /* nothing of this set was applied; the others go on */
		bool unreadable = rc == FSD_CORRUPT || rc == FSD_NOKEY;
		log_event(LOG_WARN, "a change set failed alone; the rest of the round goes on",
		          LI("fsd_err", rc), NULL);
		j->m_result = MCS_FAILED;
		memset(j->m_changes, 0, sizeof(j->m_changes));
		job_set_error(j,
		              unreadable ? FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE
		                         : FIELDSYNC__V1__ERROR__CODE__INTERNAL,
		              "this change set could not be applied; nothing of it was stored",
		              unreadable ? 60000 : 1000);
		return FSD_OK;
	}
	j->m_result = o.m_result;
	memcpy(j->m_changes, o.m_changes, sizeof(j->m_changes));
	free(j->reply);
	j->reply = NULL;
	if (o.stored != NULL)
		rc = wire_push_reply_stored(j->request_id, o.stored, o.stored_len, &j->reply,
		                            &j->reply_len);
	else if (o.packed != NULL)
		rc = wire_push_reply_stored(j->request_id, o.packed, o.packed_len, &j->reply,
		                            &j->reply_len);
	else if (o.rejected != NULL)
		rc = wire_push_reply(j->request_id, o.rejected, &j->reply, &j->reply_len);
	else
		rc = FSD_NOMEM;
	if (rc != FSD_OK)
		job_set_error(j, FIELDSYNC__V1__ERROR__CODE__INTERNAL, "out of memory", 0);
	changeset_outcome_free(&o);
	return FSD_OK;
}

/*
 * The round's due reminder timers, in a nested transaction of their own: a
 * timer that cannot fire (its case cannot be read: a data key gone after a
 * restore) is rolled back alone and tried again a second later, and the
 * round's change sets commit. Only a failure that dooms the round is
 * returned.
 */
static fsd_err
round_tick(writer *w, store_txn *t)
{
	store_txn *nt = NULL;
	size_t mark = reminders_mark(w->rem);
	fsd_err rc;

	if (clock_mono_ms() < w->tick_retry_ms)
		return FSD_OK;
	if ((rc = store_nested_begin(t, &nt)) != FSD_OK)
		return rc;
	rc = reminders_tick(w->rem, nt, clock_deadline_ms(w->c->clock_offset_ms));
	if (rc == FSD_OK) {
		if ((rc = store_commit(&nt)) == FSD_OK)
			return FSD_OK;
	} else {
		store_abort(&nt);
	}
	reminders_rollback(w->rem, mark);
	if (round_doomed(t, rc))
		return rc;
	log_event(LOG_ERROR,
	          "due reminder timers could not fire (a case that cannot be read?); tried "
	          "again in a second, the round goes on",
	          LI("fsd_err", rc), NULL);
	w->tick_retry_ms = clock_mono_ms() + 1000;
	return FSD_OK;
}

/* Hands the events of a committed round to the main thread for publishing. */
static void
publish(writer *w)
{
	event_batch *b = NULL;
	if (reminders_take(w->rem, &b) != FSD_OK || b == NULL)
		return;
	uint64_t last = b->last_seq;
	if (pipe_send(w->pipe, WRITER_EVENTS, b, 0))
		w->handed_seq = last;
	else
		event_batch_free(b); /* subscribers recover it by replay */
}

/*
 * Events another process stored (the purge command) are published by the
 * daemon: everything after the last seq handed to the publisher that is not
 * ours. Called at the start of every round, inside its transaction (so no
 * event of ours can come between), and when the writer is idle.
 */
static void
publish_external(writer *w, store_txn *t)
{
	event_batch *b = NULL;
	if (events_after(t, w->handed_seq, &b) != FSD_OK || b == NULL)
		return;
	uint64_t last = b->last_seq;
	if (pipe_send(w->pipe, WRITER_EVENTS, b, 0))
		w->handed_seq = last;
	else
		event_batch_free(b);
}

/*
 * One round: jobs[0..n) (n may be 0), every reminder timer due now and, when
 * reeval, the next batch of the pending re-evaluation, in one transaction.
 * Retries after growing a full map. Returns the store result.
 */
static fsd_err
writer_round(writer *w, push_job **jobs, size_t n, bool reeval)
{
	size_t mark = reminders_mark(w->rem);
	for (;;) {
		store_txn *t = NULL;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		fsd_err rc = store_write_begin(w->s, &t);
		if (rc == FSD_OK)
			publish_external(w, t);
		if (rc == FSD_OK)
			rc = events_set_published(t, w->handed_seq);
		if (rc == FSD_OK) /* retention: a bounded batch of the oldest events */
			rc = events_trim(t, clock_deadline_ms(w->c->clock_offset_ms),
			                 w->c->event_retention_days, w->c->event_retention_count,
			                 EVENTS_TRIM_BATCH, NULL);
		for (size_t i = 0; rc == FSD_OK && i < n; i++)
			rc = apply_job(w, t, jobs[i]);
		if (rc == FSD_OK)
			rc = round_tick(w, t);
		size_t reevaluated = 0;
		if (rc == FSD_OK && reeval)
			rc = reminders_reeval_step(w->rem, t,
			                           clock_deadline_ms(w->c->clock_offset_ms),
			                           REEVAL_BATCH, &reevaluated);
		int64_t next_fire = rc == FSD_OK ? reminders_next_fire(w->rem, t) : 0;
		int64_t conflicts = rc == FSD_OK ? (int64_t)changeset_conflicts_open(t) : 0;
		int64_t last_event = rc == FSD_OK ? (int64_t)events_last_seq(t) : 0;
		int64_t counts[METRIC_RULES][METRIC_STATES];
		for (int r = 0; rc == FSD_OK && r < METRIC_RULES; r++)
			for (int st = 0; st < METRIC_STATES; st++)
				counts[r][st] = (int64_t)reminder_rows_count(t, r, st);
		if (rc == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
		if (rc == FSD_OK) {
			reminders_committed(w->rem);
			if (reeval && !reminders_reeval_pending(w->rem))
				log_event(LOG_INFO,
				          "every case re-evaluated under the current rules",
				          LI("rules_revision", RULES_REVISION), NULL);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			metrics_observe(METRIC_COMMIT_DURATION_SECONDS,
			                (double)(t1.tv_sec - t0.tv_sec) +
			                        (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			if (n > 0)
				metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, (double)n);
			metrics_set(METRIC_CONFLICTS_OPEN, 0, conflicts);
			metrics_set(METRIC_EVENTS_LAST_SEQ, 0, last_event);
			for (int r = 0; r < METRIC_RULES; r++)
				for (int st = 0; st < METRIC_STATES; st++)
					metrics_set(METRIC_REMINDERS, metrics_rule_state(r, st),
					            counts[r][st]);
			for (size_t i = 0; i < n; i++) {
				metrics_inc(METRIC_CHANGESETS_TOTAL, jobs[i]->m_result, 1);
				for (size_t k = 0; k < MCH_COUNT; k++)
					if (jobs[i]->m_changes[k] > 0)
						metrics_inc(METRIC_CHANGES_TOTAL, k,
						            jobs[i]->m_changes[k]);
			}
			atomic_fetch_add(&g_stats.commits, 1);
			for (size_t i = 0; i < n; i++)
				if (jobs[i]->m_result != MCS_FAILED)
					atomic_fetch_add(&g_stats.changes_applied,
					                 jobs[i]->request->push->n_changes);
			w->next_fire = next_fire;
			publish(w);
			return FSD_OK;
		}
		reminders_rollback(w->rem, mark);
		if (rc == FSD_FULL && store_grow(w->s) == FSD_OK)
			continue;
		/* Nothing of this round was committed: no job may say otherwise. */
		for (size_t i = 0; i < n; i++) {
			metrics_inc(METRIC_CHANGESETS_TOTAL,
			            rc == FSD_FULL || rc == FSD_NOSPACE ? MCS_BUSY : MCS_FAILED, 1);
			if (rc == FSD_FULL || rc == FSD_NOSPACE) {
				job_set_error(
					jobs[i], FIELDSYNC__V1__ERROR__CODE__BUSY,
					"storage is full; nothing of this change set was applied",
					5000);
				atomic_fetch_add(&g_stats.busy, 1);
			} else {
				/* an I/O error is not a full disk: say what happened */
				job_set_error(jobs[i], FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE,
				              rc == FSD_IO
				                      ? "storage write failed; nothing of this "
				                        "change set was applied"
				                      : "storage error; nothing of this change "
				                        "set was applied",
				              1000);
			}
		}
		log_event(LOG_WARN, "group commit failed; change sets answered BUSY/UNAVAILABLE",
		          LU("change_sets", n), LI("fsd_err", rc), NULL);
		return rc;
	}
}

/* Whether the rules (revision, table, zone) differ from the store's: a
 * re-evaluation of every case is then pending. */
static void
writer_reeval_check(writer *w)
{
	store_txn *t = NULL;
	if (store_read_begin(w->s, &t) != FSD_OK)
		return;
	bool pending = reminders_reeval_check(w->rem, t);
	store_read_end(&t);
	if (pending)
		log_event(LOG_INFO,
		          "the rules revision, table or zone changed: re-evaluating every case",
		          LI("rules_revision", RULES_REVISION), LI("batch", REEVAL_BATCH), NULL);
}

/* Start-up: republish what a crash may have kept from subscribers. */
static void
writer_recover(writer *w)
{
	store_txn *t = NULL;
	if (store_read_begin(w->s, &t) != FSD_OK)
		return;
	event_batch *b = NULL;
	events_unpublished(t, &b);
	w->handed_seq = events_last_seq(t);
	metrics_set(METRIC_EVENTS_LAST_SEQ, 0, (int64_t)w->handed_seq);
	store_read_end(&t);
	if (b != NULL) {
		log_event(LOG_INFO, "republishing reminder events a restart may have held back",
		          LU("events", b->n), NULL);
		if (!pipe_send(w->pipe, WRITER_EVENTS, b, 0))
			event_batch_free(b);
	}
}

/* How long the writer may sleep: until the next timer, at most a second. */
static long
writer_timeout(const writer *w)
{
	/* At most a second: the idle writer also looks for events another
	 * process stored (publish_external). */
	if (w->next_fire <= 0)
		return 1000;
	int64_t retry = w->tick_retry_ms - clock_mono_ms();
	if (retry > 0) /* timers that failed: not before tick_retry_ms */
		return retry > 1000 ? 1000 : (long)retry;
	int64_t wait = w->next_fire - clock_deadline_ms(w->c->clock_offset_ms);
	if (wait < 0)
		return 0;
	return wait > 1000 ? 1000 : (long)wait;
}

static void
writer_main(void *arg, void *pipe)
{
	writer *w = arg;
	size_t cap = w->c->batch_max_jobs;
	push_job **jobs = w->jobs;
	bool stopping = false;

	w->pipe = pipe;
	writer_recover(w);
	writer_reeval_check(w);
	/* First round: fire every deadline that passed while we were down. */
	if (writer_round(w, jobs, 0, false) != FSD_OK)
		log_event(LOG_ERROR, "the start-up reminder round failed; it is retried", NULL);
	while (!stopping) {
		size_t n = 0;
		bool reeval =
			reminders_reeval_pending(w->rem) && clock_mono_ms() >= w->reeval_retry_ms;
		zmq_pollitem_t it = {w->pipe, 0, ZMQ_POLLIN, 0};
		int pr = zmq_poll(&it, 1, reeval ? 0 : writer_timeout(w));
		if (pr < 0 && zmq_errno() == ETERM)
			break;
		while (n < cap && pr > 0) {
			void *p = NULL;
			int tag;
			if (actor_recv(w->pipe, ZMQ_DONTWAIT, &tag, &p) != FSD_OK)
				break; /* EAGAIN: the queue is drained */
			if (tag == ACTOR_STOP) {
				stopping = true;
				break;
			}
			if (tag == WRITER_JOB && p != NULL) {
				jobs[n++] = p;
			} else if (tag == WRITER_RULES &&
			           p != NULL) { /* SIGHUP: a new rule table */
				reminders_set_rules(w->rem, (const struct rules_config *)p);
				free(p);
				log_event(LOG_INFO, "rule table reloaded", NULL);
				writer_reeval_check(w);
			} else if (tag == WRITER_ZONE && p != NULL) { /* SIGHUP: the zone */
				reminders_set_zone(w->rem, p);
				writer_reeval_check(w);
			}
		}
		bool timer_due = w->next_fire > 0 &&
		                 clock_deadline_ms(w->c->clock_offset_ms) >= w->next_fire &&
		                 clock_mono_ms() >= w->tick_retry_ms;
		if (n > 0 || timer_due) {
			writer_round(w, jobs, n, false);
		} else if (!stopping && !reeval) { /* idle: anything another process stored? */
			store_txn *rt = NULL;
			bool trim = false;
			if (store_read_begin(w->s, &rt) == FSD_OK) {
				publish_external(w, rt);
				trim = events_trim_due(rt, w->handed_seq,
				                       clock_deadline_ms(w->c->clock_offset_ms),
				                       w->c->event_retention_days,
				                       w->c->event_retention_count);
				store_read_end(&rt);
			}
			if (trim) /* retention catches up while idle, a batch a round */
				writer_round(w, NULL, 0, false);
		}
		for (size_t i = 0; i < n; i++)
			pipe_send(w->pipe, WRITER_JOB, jobs[i], 0);
		/* between group commits: one batch of the pending re-evaluation */
		if (!stopping && reminders_reeval_pending(w->rem) &&
		    clock_mono_ms() >= w->reeval_retry_ms &&
		    writer_round(w, NULL, 0, true) != FSD_OK)
			w->reeval_retry_ms = clock_mono_ms() + 1000;
	}
	actor_send_stop(w->pipe); /* "stopped": everything queued was answered */
	reminders_free(&w->rem);
	w->pipe = NULL;
}

fsd_err
writer_start(void *zctx, const char *pipe_endpoint, store *s, const config *c, reminders *rem,
             writer **out)
{
	writer *w = calloc(1, sizeof(*w));
	fsd_err rc;
	*out = NULL;
	if (w == NULL || (w->jobs = calloc(c->batch_max_jobs ? c->batch_max_jobs : 1,
	                                   sizeof(*w->jobs))) == NULL) {
		free(w);
		reminders_free(&rem);
		return FSD_NOMEM;
	}
	w->rem = rem;
	w->s = s;
	w->c = c;
	if ((rc = actor_start(zctx, pipe_endpoint, writer_main, w, &w->thread)) != FSD_OK) {
		reminders_free(&w->rem);
		free(w->jobs);
		free(w);
		return rc;
	}
	*out = w;
	return FSD_OK;
}

void
writer_join(writer **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	actor_join(&(*wp)->thread);
	reminders_free(&(*wp)->rem);
	free((*wp)->jobs);
	free(*wp);
	*wp = NULL;
}
