/*
 * reminders_reeval: the re-evaluation of every stored case after the rule
 * table or the zone changed, METHOD.md reading 8 (logic layer; see
 * reminders.h, and reminders.c's design note, "rules changed").
 */
#include <stdio.h>
#include <string.h>

#include "fieldsync/calendar.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "reminders.h"
#include "reminders_impl.h"
#include "store.h"

#define META_RULES_FP "rules_fp" /* the fingerprint the stored rows were computed under */

bool
reminders_reeval_check(reminders *r, store_txn *t)
{
	uint64_t fp = rules_fingerprint(&r->rules, tz_name(r->tz));

	r->reeval.staged_valid = false;
	if (store_meta_u64(t, META_RULES_FP) == fp) {
		r->reeval.pending = false;
		return false;
	}
	if (!r->reeval.pending || r->reeval.fp != fp)
		r->reeval.cursor[0] = '\0'; /* (again) from the first case */
	r->reeval.pending = true;
	r->reeval.fp = fp;
	return true;
}

bool
reminders_reeval_pending(const reminders *r)
{
	return r->reeval.pending;
}

fsd_err
reminders_reeval_step(reminders *r, store_txn *t, int64_t now_ms, size_t max_cases, size_t *n_done)
{
	struct key_list ids = {0};
	uint8_t from[1 + FSP_COLLECTION_MAX + FSP_ID_MAX];
	size_t plen = fsk_record_prefix(from, "case"), flen = plen, n = 0; /* records' keys */
	const char *cursor = r->reeval.cursor;
	fsd_err rc = FSD_OK;

	*n_done = 0;
	if (!r->reeval.pending)
		return FSD_OK;
	if (max_cases == 0)
		max_cases = 1;
	memcpy(from + plen, cursor, strlen(cursor));
	flen += strlen(cursor);
	/* the cursor's own key (done), the batch, and one more: whether any is left */
	ids.limit = max_cases + 2;
	rc = store_kv_scan(t, &records_table, from, flen, from, plen, reminders_collect_key, &ids);
	if (rc == FSD_OK && ids.oom)
		rc = FSD_ERROR;
	size_t first = cursor[0] != '\0' && ids.n > 0 && ids.klens[0] == flen &&
	                               memcmp(ids.keys[0], from, flen) == 0
	                       ? 1
	                       : 0;
	snprintf(r->reeval.staged, sizeof(r->reeval.staged), "%s", cursor);
	for (size_t i = first; rc == FSD_OK && i < ids.n && n < max_cases; i++, n++) {
		char id[FSP_ID_MAX + 1];
		size_t idl = ids.klens[i] - plen;

		if (idl > FSP_ID_MAX)
			continue; /* not an id the writer could have stored */
		memcpy(id, ids.keys[i] + plen, idl);
		id[idl] = '\0';
		/* a case that cannot be read is skipped alone (its own nested
		 * transaction); the pass goes on with the others */
		bool skipped = false;
		if ((rc = reminders_evaluate_isolated(r, t, id, now_ms, &skipped)) != FSD_OK)
			break;
		if (skipped) {
			metrics_inc(METRIC_REMINDER_TIMERS_SKIPPED_TOTAL, 0, 1);
			log_event(LOG_WARN,
			          "a case was skipped by the re-evaluation under new rules: it "
			          "cannot be read; the other cases go on",
			          LS("case_id", id), NULL);
		}
		memcpy(r->reeval.staged, id, idl + 1);
	}
	if (rc == FSD_OK) {
		r->reeval.staged_valid = true;
		r->reeval.staged_done = ids.n - first <= max_cases;
		/* the last batch stores the fingerprint; until then the store says
		 * "none" (0), so a restart or another reload mid-pass begins again */
		rc = store_meta_set_u64(t, META_RULES_FP, r->reeval.staged_done ? r->reeval.fp : 0);
	}
	reminders_key_list_free(&ids);
	*n_done = n;
	return rc;
}

void
reminders_committed(reminders *r)
{
	if (!r->reeval.staged_valid)
		return;
	memcpy(r->reeval.cursor, r->reeval.staged, sizeof(r->reeval.cursor));
	if (r->reeval.staged_done)
		r->reeval.pending = false;
	r->reeval.staged_valid = false;
}
