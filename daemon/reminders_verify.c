/*
 * reminders_verify: `fieldsyncd verify`'s check of one case's reminder rows
 * against what the rules imply (cmd_verify.c) (logic layer; see
 * reminders.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "reminder_rows.h"
#include "reminders.h"
#include "reminders_impl.h"
#include "storage.pb-c.h"

/* The state a row holds at now_ms once its own timers have fired. */
static uint32_t
row_state_at(const reminder_row *row, int64_t now_ms)
{
	rules_reminder rem;

	if (!reminders_row_is_active(row->state))
		return row->state;
	reminders_row_to_reminder(row, &rem);
	return (uint32_t)rules_state_at(&rem, now_ms);
}

fsd_err
reminders_verify_case(reminders *r, store_txn *t, const char *case_id, reminders_verify_fn fn,
                      void *arg, size_t *n_checked)
{
	return reminders_verify_case_at(r, t, case_id, clock_deadline_ms(r->clock_offset_ms), fn,
	                                arg, n_checked);
}

fsd_err
reminders_verify_case_at(reminders *r, store_txn *t, const char *case_id, int64_t now_ms,
                         reminders_verify_fn fn, void *arg, size_t *n_checked)
{
	struct case_data cd = {0};
	struct key_list existing = {0};
	rules_reminder *rems = NULL;
	reminder_row *timer = NULL;
	size_t n = 0;
	int64_t next_eval = 0, eval_at = now_ms;
	uint8_t prefix[REMINDER_KEY_MAX], key[REMINDER_KEY_MAX];
	size_t plen = fsk_case_key(prefix, sizeof(prefix), case_id, "");
	fsd_err rc;

	if (plen == 0)
		return FSD_INVALID;

	/* A case timer that is due (the daemon is down, or has not got to it):
	 * the rows hold the evaluation from just before it. */
	if (reminder_rows_get(t, prefix, plen, &timer) == FSD_OK && timer->next_fire_ms > 0 &&
	    timer->next_fire_ms <= now_ms)
		eval_at = timer->next_fire_ms - 1;
	if (timer != NULL)
		fieldsyncd__store__reminder_row__free_unpacked(timer, NULL);
	rc = reminders_implied(r, t, case_id, eval_at, &cd, &rems, &n, &next_eval);
	if (reminders_unreadable(rc)) { /* the daemon skips its due timers: say so */
		fn(arg, case_id, "(every)",
		   "its case cannot be read (a data key gone, or bytes that do not decode): its "
		   "due reminder timers are skipped and retried with backoff");
		rc = FSD_OK;
		goto out;
	}
	if (rc != FSD_OK)
		goto out;
	/* Every reminder the data implies has a row with its state and times. */
	for (size_t i = 0; rc == FSD_OK && i < n; i++) {
		size_t kl = fsk_case_key(key, sizeof(key), case_id, rems[i].reminder_id);
		fsd_err grc;
		reminder_row *row = NULL;
		grc = reminder_rows_get(t, key, kl, &row);
		(*n_checked)++;
		if (row == NULL) {
			if (grc == FSD_NOTFOUND && !rems[i].started)
				continue; /* reading 7: never started, no row */
			if (grc == FSD_NOTFOUND)
				fn(arg, case_id, rems[i].reminder_id,
				   "implied by the rules but has no row");
			else if (grc == FSD_CORRUPT)
				fn(arg, case_id, rems[i].reminder_id, "its row does not decode");
			else
				rc = grc;
			continue;
		}
		if (!rems[i].started &&
		    row->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED) {
			fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
			continue;
		}
		if (row_state_at(row, now_ms) != (uint32_t)rules_state_at(&rems[i], now_ms))
			fn(arg, case_id, rems[i].reminder_id,
			   "its row's state differs from the rules'");
		if (row->due_at_ms != rems[i].due_at_ms)
			fn(arg, case_id, rems[i].reminder_id,
			   "its row's due time differs from the rules'");
		if (row->warning_at_ms != rems[i].warning_at_ms)
			fn(arg, case_id, rems[i].reminder_id,
			   "its row's warning time differs from the rules'");
		fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	}
	if (rc != FSD_OK)
		goto out;
	/* No active row the data no longer implies. */
	rc = reminders_unimplied_rows(t, case_id, prefix, plen, rems, n, &existing);
	for (size_t i = 0; rc == FSD_OK && i < existing.n; i++) {
		char rid[RULES_ID_MAX];
		size_t idl = existing.klens[i] - plen < sizeof(rid) - 1 ? existing.klens[i] - plen
		                                                        : sizeof(rid) - 1;
		memcpy(rid, existing.keys[i] + plen, idl);
		rid[idl] = '\0';
		(*n_checked)++;
		fsd_err grc;
		reminder_row *row = NULL;
		grc = reminder_rows_get(t, existing.keys[i], existing.klens[i], &row);
		if (row == NULL) {
			if (grc == FSD_CORRUPT || grc == FSD_NOTFOUND)
				fn(arg, case_id, rid, "its row does not decode");
			else
				rc = grc;
			continue;
		}
		if (reminders_row_is_active(row->state))
			fn(arg, case_id, rid, "an active row the rules no longer imply");
		fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
	}
out:
	reminders_key_list_free(&existing);
	free(rems);
	reminders_case_data_free(&cd);
	return rc;
}
