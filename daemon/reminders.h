/*
 * reminders: the deadline state of every case and its events (logic layer).
 * See reminders.c's design note for the tables and the transitions.
 *
 * Threads: a reminders handle belongs to the writer thread (it is handed
 * over at start); the functions that take no handle run in any
 * transaction of any process (the purge command, verify, replay).
 */
#ifndef FIELDSYNCD_REMINDERS_H
#define FIELDSYNCD_REMINDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "events.h"
#include "fieldsync/calendar.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "peer.h"
#include "records.h"
#include "reminder_rows.h"
#include "store.h"

typedef struct reminders reminders;

/* Loads the time zone and the rule table (operator input): FSD_OK with
 * *out, or an error with a sentence in err. */
fsd_err reminders_new(const config *c, reminders **out, char *err, size_t errlen);
void reminders_free(reminders **r);
/* The rule table of c (--rules, else METHOD.md's): FSD_OK, or an error
 * with a sentence in err. SIGHUP loads a new one and the writer installs
 * it with reminders_set_rules(): it applies to every case evaluated from
 * then on. */
struct rules_config;
fsd_err reminders_load_rules(const config *c, struct rules_config *out, char *err, size_t errlen);
void reminders_set_rules(reminders *r, const struct rules_config *rc);
/* Installs zone tz (taken; NULL: keep the current one) for every case evaluated from then on. */
void reminders_set_zone(reminders *r, fs_tz *tz);

/*
 * METHOD.md reading 8: a changed rule table or zone applies to every case.
 * reminders_reeval_check() compares rules_fingerprint(RULES_REVISION, the
 * table, the zone) with meta "rules_fp" in txn t (any): when they differ a
 * re-evaluation of every stored case is pending (true). Call it at start
 * and after installing new rules or a new zone.
 * reminders_reeval_step() re-evaluates, in write txn t at now_ms, the next
 * max_cases stored cases (key order), publishing each change once; the
 * step that reaches the last case stores the fingerprint. *n_done: cases
 * evaluated. reminders_committed() tells that t committed (the cursor
 * moves on; reminders_rollback() drops the step instead).
 */
bool reminders_reeval_check(reminders *r, store_txn *t);
bool reminders_reeval_pending(const reminders *r);
fsd_err reminders_reeval_step(reminders *r, store_txn *t, int64_t now_ms, size_t max_cases,
                              size_t *n_done);
void reminders_committed(reminders *r);

/*
 * Called by the writer for every record it writes, inside the write txn:
 * keeps the case -> contacts index and remembers which cases to evaluate.
 * before may be NULL (a new record).
 */
fsd_err reminders_note_record(reminders *r, store_txn *t, const fs_record_state *before,
                              const fs_record_state *after);
/* Evaluates the cases noted since the last call, at now_ms, in txn t. */
fsd_err reminders_flush(reminders *r, store_txn *t, int64_t now_ms);
/*
 * Erasure: every reminder of case_id goes, in txn t; an active one is first
 * CANCELLED (the event is stored; the daemon publishes events another
 * process stored). Works without a reminders handle (the purge command).
 */
fsd_err reminders_erase_case(store_txn *t, const char *case_id, int64_t now_ms, size_t *n_erased);
/* Fires the timers due at now_ms, at most 8192 in one call (transactions
 * stay small; the writer comes back at once while any is due). */
fsd_err reminders_tick(reminders *r, store_txn *t, int64_t now_ms);
/* The earliest timer, 0 when none. */
int64_t reminders_next_fire(reminders *r, store_txn *t);

/* The events emitted since the last take form the outbox. A mark lets a
 * rolled-back change set drop the events it emitted. */
size_t reminders_mark(const reminders *r);
void reminders_rollback(reminders *r, size_t mark);
/* Hands over the outbox in *out (NULL when empty); the caller frees it. */
fsd_err reminders_take(reminders *r, event_batch **out);

/* reminders_verify.c, for verify: re-runs the rules on case_id (loaded as the
 * writer loads it) in txn t at now_ms and calls fn for every difference
 * from the stored rows: an implied (started) reminder without a row, a row
 * whose state (once its own timers fired), due time or warning time
 * differs, an active row the data no longer implies. A case timer that is
 * due is taken into account (the rows are as just before it). Ids only.
 * *n_checked grows by the reminders looked at. reminders_verify_case()
 * uses the wall clock (with the config's --clock-offset-ms). */
typedef void (*reminders_verify_fn)(void *arg, const char *case_id, const char *reminder_id,
                                    const char *problem);
fsd_err reminders_verify_case(reminders *r, store_txn *t, const char *case_id,
                              reminders_verify_fn fn, void *arg, size_t *n_checked);
fsd_err reminders_verify_case_at(reminders *r, store_txn *t, const char *case_id, int64_t now_ms,
                                 reminders_verify_fn fn, void *arg, size_t *n_checked);

#endif
