/*
 * reminder_rows: the reminders' stored rows, timers and counters (data
 * layer). See reminder_rows.c for the tables. Writes in the caller's write
 * transaction; a row returned is the caller's
 * (fieldsyncd__store__reminder_row__free_unpacked).
 */
#ifndef FIELDSYNCD_REMINDER_ROWS_H
#define FIELDSYNCD_REMINDER_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/merge.h"
#include "fieldsync/rules.h"
#include "storage.pb-c.h"
#include "store.h"

typedef Fieldsyncd__Store__ReminderRow reminder_row;

extern const store_table reminders_table;        /* reminders */
extern const store_table reminders_timers_table; /* timers */

#define REMINDER_KEY_MAX (1 + FSP_ID_MAX + RULES_ID_MAX)

/* A row's key is fsk_case_key(key, REMINDER_KEY_MAX, case_id, reminder_id)
 * ([u8 len][case_id][reminder_id], fieldsync/keys.h); a case's rows share
 * the prefix fsk_case_key(..., case_id, ""). */

/* Seals (with the case's data key) and stores a row under key. */
fsd_err reminder_rows_put(store_txn *t, const uint8_t *key, size_t klen, const reminder_row *row);
/* The row under key, opened, in *out (the caller's); FSD_NOTFOUND,
 * FSD_CORRUPT, ... with *out NULL. */
fsd_err reminder_rows_get(store_txn *t, const uint8_t *key, size_t klen, reminder_row **out);
/* Moves the row's timer from old_fire to new_fire (0: none). */
fsd_err reminder_rows_timer_set(store_txn *t, const uint8_t *rkey, size_t rklen, int64_t old_fire,
                                int64_t new_fire);
/* Adds delta to the count of reminders of rule in state (meta "rem:R:S"). */
fsd_err reminder_rows_count_add(store_txn *t, uint32_t rule, uint32_t state, int delta);
/* How many reminders of rule are in state now (for /metrics). */
uint64_t reminder_rows_count(store_txn *t, int rule, int state);

/* Purge: a case's rows read and opened in memory, to be written back
 * sealed under the case's fresh data key after the old one was destroyed. */
typedef struct reminder_rows_copy reminder_rows_copy;
fsd_err reminder_rows_copy_case(store_txn *t, const char *case_id, reminder_rows_copy **out);
fsd_err reminder_rows_copy_write(store_txn *t, const char *case_id, const reminder_rows_copy *rows);
void reminder_rows_copy_free(reminder_rows_copy **rows);

/*
 * Verification (fieldsyncd verify), in the caller's read transaction: every
 * row's key parses ([u8 len][case_id][reminder_id]) and, when it can be
 * opened (a keyring on t's store, or a plain row), the row opens and
 * decodes. Problems go to fns->problem (who names
 * the row by ids, never content); fns->row_case (may be NULL) is told the
 * case of every row whose key parses, so the caller can check the case's
 * reminders against the rules (reminders_verify_case); false means out of
 * memory and stops (FSD_NOMEM). *n_rows counts the rows walked.
 */
typedef struct reminder_rows_check_fns {
	void (*problem)(void *arg, const char *who, const char *what);
	bool (*row_case)(void *arg, const char *case_id);
	void *arg;
} reminder_rows_check_fns;
fsd_err reminder_rows_check(store_txn *t, const reminder_rows_check_fns *fns, size_t *n_rows);

#endif
