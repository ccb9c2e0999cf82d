/*
 * reminders_impl: private to reminders.c, reminders_reeval.c, reminders_verify.c
 * and reminders_tick.c (logic layer; the API is reminders.h): the handle's
 * state and the helpers reminders.c and reminders_tick.c define for the others. No other file includes it. It does not include reminders.h
 * (the layer check's circle rule), hence "struct reminders".
 */
#ifndef FIELDSYNCD_REMINDERS_IMPL_H
#define FIELDSYNCD_REMINDERS_IMPL_H

#include "err.h"
#include "events.h"
#include "fieldsync/calendar.h"
#include "fieldsync/limits.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "records.h"
#include "reminder_rows.h"
#include "store.h"

struct reminders {
	fs_tz *tz;
	rules_config rules;
	int64_t clock_offset_ms; /* verify's clock (config's --clock-offset-ms) */
	/* the re-evaluation of every stored case after the rules changed */
	struct {
		bool pending;
		uint64_t fp;                    /* what it brings meta "rules_fp" to */
		char cursor[FSP_ID_MAX + 1];    /* the last case done and committed */
		char staged[FSP_ID_MAX + 1];    /* ... by the round in progress */
		bool staged_valid, staged_done; /* a step ran in the round; it was the last */
	} reeval;
	/* cases noted since the last flush */
	char **touched;
	size_t n_touched, cap_touched;
	/* events emitted, not yet handed to the publisher */
	event_batch out;
};

/* One case's live records, loaded for the rules; reminders_case_data_free frees. */
struct case_data {
	fs_record_state *case_state;
	Fieldsync__V1__Case **cases;
	size_t n_cases;
	fs_record_state **contact_states;
	size_t n_states, cap_states;
	rules_contact *contacts;
	Fieldsync__V1__Contact **contact_values;
	size_t n_contacts, cap_contacts;
};
void reminders_case_data_free(struct case_data *cd);

/* The keys a prefix scan found, copied (reminders_collect_key, a
 * store_kv_scan callback); reminders_key_list_free frees. */
struct key_list {
	uint8_t **keys;
	size_t *klens;
	size_t n, cap;
	size_t limit; /* stop after this many (0: no limit but reminders_collect_key's bound) */
	bool oom;
};
bool reminders_collect_key(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen);
void reminders_key_list_free(struct key_list *l);

/* A row state that is neither MET nor CANCELLED. */
bool reminders_row_is_active(uint32_t state);
/* The rules' view of a stored row, for the clock-driven transitions. */
void reminders_row_to_reminder(const reminder_row *row, rules_reminder *out);
/* What case_id's data implies at now_ms: loads *cd (caller frees), the rules
 * into *rems (caller frees), *n of them, *next_eval (next held_at, 0: none). */
fsd_err reminders_implied(struct reminders *r, store_txn *t, const char *case_id, int64_t now_ms,
                          struct case_data *cd, rules_reminder **rems, size_t *n,
                          int64_t *next_eval);
/* The case's stored rows (prefix) that rems[0..n) no longer implies, into
 * *out (caller frees with reminders_key_list_free). */
fsd_err reminders_unimplied_rows(store_txn *t, const char *case_id, const uint8_t *prefix,
                                 size_t plen, const rules_reminder *rems, size_t n,
                                 struct key_list *out);
/* Re-evaluates one case at now_ms: its rows, its events, its case timer. */
fsd_err reminders_evaluate_case(struct reminders *r, store_txn *t, const char *case_id,
                                int64_t now_ms);

/* Stores one event of row in state with the next seq, queues it for
 * publishing (r NULL: stored only) and moves the row's state and counters. */
fsd_err reminders_emit(struct reminders *r, store_txn *t, reminder_row *row, uint32_t state,
                       int64_t now_ms);
/* An error that belongs to one case's stored bytes (FSD_NOKEY, FSD_CORRUPT):
 * that case is skipped, the others go on. */
bool reminders_unreadable(fsd_err rc);
/* reminders_evaluate_case in a nested transaction of t: FSD_OK with *skipped
 * when the case cannot be read (nothing of it written, its events dropped). */
fsd_err reminders_evaluate_isolated(struct reminders *r, store_txn *t, const char *case_id,
                                    int64_t now_ms, bool *skipped);

#endif
