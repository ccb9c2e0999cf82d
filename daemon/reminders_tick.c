/*
 * reminders_tick: the reminders' clock (logic layer; the API is
 * reminders.h, the design note is reminders.c's). reminders_tick() fires
 * the timers due (table "timers", reminder_rows.c), each on its own: a
 * timer whose reminder row or case cannot be read (FSD_NOKEY, FSD_CORRUPT)
 * is skipped alone, counted in fieldsync_reminder_timers_skipped_total,
 * logged by ids and tried again 1 min later, doubling per skip up to 1 h
 * (the skips counted in the timer's value); the other timers fire.
 * reminders_next_fire() says when the earliest timer is due ("now" when it
 * cannot tell). Also the nested-transaction evaluation the re-evaluation
 * uses (reminders_evaluate_isolated).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"
#include "reminder_rows.h"
#include "reminders.h"
#include "reminders_impl.h"
#include "storage.pb-c.h"

#define KEY_MAX REMINDER_KEY_MAX
#define TICK_BATCH 1024
#define TICK_ROUND_BATCHES 8 /* at most 8192 timers per round */
/* A due timer whose case cannot be read: tried again after 1 min, 2, 4, ... 1 h */
#define TIMER_SKIP_FIRST_MS ((int64_t)60 * 1000)
#define TIMER_SKIP_MAX_MS ((int64_t)60 * 60 * 1000)

struct due_list {
	struct key_list keys;
	int64_t now_ms;
};

static bool
collect_due(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct due_list *d = arg;
	if (klen < 8 || (int64_t)fsk_get_be64(key) > d->now_ms || d->keys.n >= TICK_BATCH)
		return false;
	return reminders_collect_key(&d->keys, key, klen, val, vlen);
}

/* An error that belongs to one case's stored bytes (a data key gone after a
 * restore, bytes that do not decode): that case is skipped, the others go on. */
bool
reminders_unreadable(fsd_err rc)
{
	return rc == FSD_NOKEY || rc == FSD_CORRUPT;
}

/*
 * Evaluates case_id in a nested transaction of t: FSD_OK with *skipped set
 * when the case cannot be read (nothing of it written, its events dropped),
 * any other error as it came.
 */
fsd_err
reminders_evaluate_isolated(reminders *r, store_txn *t, const char *case_id, int64_t now_ms,
                            bool *skipped)
{
	store_txn *nt = NULL;
	size_t mark = r->out.n;
	fsd_err rc = store_nested_begin(t, &nt);

	*skipped = false;
	if (rc != FSD_OK)
		return rc;
	rc = reminders_evaluate_case(r, nt, case_id, now_ms);
	if (rc == FSD_OK)
		return store_commit(&nt);
	store_abort(&nt);
	events_batch_truncate(&r->out, mark);
	if (!reminders_unreadable(rc))
		return rc;
	*skipped = true;
	return FSD_OK;
}

/* A timer's value: empty, or the u32 BE count of the times it was skipped. */
static uint32_t
timer_attempts(store_txn *t, const uint8_t *tkey, size_t tklen)
{
	const void *v = NULL;
	size_t vl = 0;
	if (store_kv_get(t, &reminders_timers_table, tkey, tklen, &v, &vl) != FSD_OK || vl != 4)
		return 0;
	const uint8_t *b = v;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/*
 * A due timer whose case cannot be read: counted, logged by ids, and moved
 * to now + 1 minute, doubling with each skip up to an hour (docs/reminders.md).
 * Its key's old instant is already deleted.
 */
static fsd_err
timer_skip(store_txn *t, const uint8_t *rkey, size_t rklen, uint32_t attempts, fsd_err why,
           int64_t now_ms)
{
	uint8_t key[8 + KEY_MAX], val[4];
	char case_id[FSP_ID_MAX + 1], rid[RULES_ID_MAX + 1];
	size_t cl = rkey[0], rl = rklen - 1 - cl;
	int64_t delay = TIMER_SKIP_FIRST_MS << (attempts < 6 ? attempts : 6);

	if (delay > TIMER_SKIP_MAX_MS)
		delay = TIMER_SKIP_MAX_MS;
	if (attempts < UINT32_MAX)
		attempts++;
	memcpy(case_id, rkey + 1, cl);
	case_id[cl] = '\0';
	if (rl > RULES_ID_MAX)
		rl = RULES_ID_MAX;
	memcpy(rid, rkey + 1 + cl, rl);
	rid[rl] = '\0';
	metrics_inc(METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, 0, 1);
	log_event(LOG_WARN,
	          "a due reminder timer was skipped: its case cannot be read; the other timers "
	          "fire, this one is tried again later",
	          LS("case_id", case_id), LS("reminder_id", rl > 0 ? rid : "(case timer)"),
	          LS("why", fsd_strerror(why)), LU("skipped", attempts), LI("retry_in_ms", delay),
	          NULL);
	fsk_put_be64(key, (uint64_t)(now_ms + delay));
	memcpy(key + 8, rkey, rklen);
	val[0] = (uint8_t)(attempts >> 24);
	val[1] = (uint8_t)(attempts >> 16);
	val[2] = (uint8_t)(attempts >> 8);
	val[3] = (uint8_t)attempts;
	return store_kv_put(t, &reminders_timers_table, key, 8 + rklen, val, sizeof(val), false);
}

/* Fires one due timer (tkey: [u64 BE fire][reminders key]). A timer whose
 * case cannot be read is skipped (timer_skip), never failing the others. */
static fsd_err
fire_timer(reminders *r, store_txn *t, const uint8_t *tkey, size_t tklen, int64_t now_ms)
{
	const uint8_t *rkey = tkey + 8;
	size_t rklen = tklen - 8;
	uint32_t attempts = timer_attempts(t, tkey, tklen);
	fsd_err rc = store_kv_del(t, &reminders_timers_table, tkey, tklen);

	if (rc == FSD_NOTFOUND) /* moved by a case evaluated in this batch */
		return FSD_OK;
	if (rc != FSD_OK)
		return rc;
	/* not a key the writer stores: dropped */
	if (rklen < 1 || rkey[0] > FSP_ID_MAX || rklen < (size_t)rkey[0] + 1 ||
	    rklen - 1 - rkey[0] > RULES_ID_MAX)
		return FSD_OK;
	if (rklen == (size_t)rkey[0] + 1) { /* a case timer */
		char case_id[FSP_ID_MAX + 1];
		store_txn *nt = NULL;
		size_t mark = r->out.n;
		memcpy(case_id, rkey + 1, rkey[0]);
		case_id[rkey[0]] = '\0';
		if ((rc = store_nested_begin(t, &nt)) != FSD_OK)
			return rc;
		/* it fired: forget it, so reminders_evaluate_case sets the next one afresh */
		rc = store_kv_del(nt, &reminders_table, rkey, rklen);
		if (rc == FSD_NOTFOUND)
			rc = FSD_OK;
		if (rc == FSD_OK)
			rc = reminders_evaluate_case(r, nt, case_id, now_ms);
		if (rc == FSD_OK)
			return store_commit(&nt);
		store_abort(&nt);
		events_batch_truncate(&r->out, mark);
		return reminders_unreadable(rc) ? timer_skip(t, rkey, rklen, attempts, rc, now_ms)
		                                : rc;
	}
	reminder_row *row = NULL;
	fsd_err grc = reminder_rows_get(t, rkey, rklen, &row);
	if (row == NULL) {
		if (grc == FSD_NOTFOUND)
			return FSD_OK; /* stale timer */
		return reminders_unreadable(grc) ? timer_skip(t, rkey, rklen, attempts, grc, now_ms)
		                                 : grc;
	}
	rules_reminder rem;
	reminders_row_to_reminder(row, &rem);
	uint32_t want = (uint32_t)rules_state_at(&rem, now_ms);
	row->next_fire_ms = rules_next_change(&rem, now_ms);
	if (want != row->state && reminders_row_is_active(row->state))
		rc = reminders_emit(r, t, row, want, now_ms);
	if (rc == FSD_OK && row->next_fire_ms > 0)
		rc = reminder_rows_timer_set(t, rkey, rklen, 0, row->next_fire_ms);
	if (rc == FSD_OK)
		rc = reminder_rows_put(t, rkey, rklen, row);
	fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	return rc;
}

fsd_err
reminders_tick(reminders *r, store_txn *t, int64_t now_ms)
{
	fsd_err rc = FSD_OK;
	int batches = 0;
	for (;;) { /* in batches, so a million due timers do not need a million keys at once */
		struct due_list due = {.now_ms = now_ms};
		rc = store_kv_scan(t, &reminders_timers_table, NULL, 0, NULL, 0, collect_due, &due);
		if (rc == FSD_OK && due.keys.oom)
			rc = FSD_ERROR;
		size_t n = due.keys.n;
		for (size_t i = 0; rc == FSD_OK && i < n; i++)
			if (due.keys.klens[i] > 8)
				rc = fire_timer(r, t, due.keys.keys[i], due.keys.klens[i], now_ms);
		reminders_key_list_free(&due.keys);
		if (rc != FSD_OK || n < TICK_BATCH || ++batches == TICK_ROUND_BATCHES)
			break; /* the rest fire in the next round: transactions stay small */
	}
	return rc;
}

static bool
first_key(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	if (klen >= 8)
		*(int64_t *)arg = (int64_t)fsk_get_be64(key);
	return false;
}

int64_t
reminders_next_fire(reminders *r, store_txn *t)
{
	int64_t at = 0;
	/* the scan failed: a timer may be due, so "now" (the writer ticks, and
	 * retries a second later if the tick fails too) */
	if (store_kv_scan(t, &reminders_timers_table, NULL, 0, NULL, 0, first_key, &at) != FSD_OK)
		return clock_deadline_ms(r->clock_offset_ms);
	return at;
}
