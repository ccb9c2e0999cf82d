/*
 * The deadline rules of METHOD.md ("Deadline rules" and its "Settled
 * readings", revision RULES_REVISION), as a pure function of one case's data
 * and an instant: no LMDB, no sockets, no clock of its own (the caller
 * passes now_ms). Shared by the daemon (reminders.c stores what it returns
 * and turns changes into ReminderEvents) and the tablet SDK.
 */
#ifndef FIELDSYNC_RULES_H
#define FIELDSYNC_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/calendar.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsync/v1/sync.pb-c.h"

/* The revision of METHOD.md's readings these rules implement. A store whose
 * reminders were computed under another revision (or another table or
 * zone: rules_fingerprint) is re-evaluated in full. */
#define RULES_REVISION 2

typedef enum {
	RULE_QUICK_HELP = 0,
	RULE_COUNSELLING_LIMIT,
	RULE_TREATMENT_START,
	RULE_TREATMENT_WINDOW,
	RULE_GROUP_COURSE,
	RULE_PARENT_SESSION,
	RULE_NETWORK_MEETING,
	RULE_FOLLOW_UP,
	RULE_HANDOVER,
	RULE_NOTIFICATION_DUTY,
	RULE_COUNT
} rule_id;

typedef Fieldsync__V1__ReminderEvent__State reminder_state;

/* An offset such as "7 days"; amount 0 means "at once" (end of that day). */
typedef struct rule_offset {
	int amount;
	cal_unit unit;
} rule_offset;

typedef struct rule_conf {
	bool enabled;
	rule_offset due; /* after the start (unused by network-meeting: due at next_at) */
	bool has_warning;
	rule_offset warning; /* before the due instant */
	int count;           /* counselling-limit: the Nth COUNSELLING contact starts it (5);
	                        treatment-window: due at once at the Nth TREATMENT talk (12) */
} rule_conf;

typedef struct rules_config {
	rule_conf rule[RULE_COUNT];
} rules_config;

/* METHOD.md's table. */
void rules_config_default(rules_config *rc);

/*
 * Applies a JSON rule table over rc (see docs/reminders.md for the format):
 *   {"quick-help": {"enabled": true, "due": "7 days", "warning": "2 days"}, ...}
 * Unknown rules and fields, bad durations and wrong types are refused: false,
 * with a sentence naming the rule and the field in err. rc may be partly
 * changed on failure; callers discard it.
 */
bool rules_config_load_json(rules_config *rc, const char *json, char *err, size_t errlen);

/*
 * The table rc as JSON text in the format above, every rule with every
 * field it takes, so that rules_config_load_json() over the defaults gives
 * rc back (proto/rules_table.c). malloc'd (caller frees); NULL when out of
 * memory. What the daemon sends in Welcome.deadline_rules.
 */
char *rules_config_to_json(const rules_config *rc);

const char *rule_name(rule_id r); /* "quick-help", ... */
bool rule_parse(const char *name, rule_id *out);

/* One contact value (a contact in conflict contributes each live sibling). */
typedef struct rules_contact {
	const char *id; /* the contact record's id */
	const Fieldsync__V1__Contact *c;
} rules_contact;

/* Everything the rules see of one case. Pointers are borrowed. */
typedef struct rules_input {
	const char *case_id;
	const Fieldsync__V1__Case *const *cases; /* live (not deleted) siblings; 0 when the
	                                            case is deleted or not (yet) known */
	size_t n_cases;
	const rules_contact *contacts; /* live contacts whose case_id is case_id */
	size_t n_contacts;
} rules_input;

#define RULES_COUNT_MAX 100 /* the largest "count" a table may give (METHOD.md: 5 and 12) */
#define RULES_ID_MAX 300

/* One reminder the data implies. */
typedef struct rules_reminder {
	char reminder_id[RULES_ID_MAX]; /* "<rule>/<case_id>" or "<rule>/<case_id>/<contact_id>" */
	rule_id rule;
	int64_t start_ms;      /* the instant the rule started */
	int64_t warning_at_ms; /* 0: no warning */
	int64_t due_day_ms;    /* the first instant of the local day that holds the deadline */
	int64_t due_at_ms;     /* the deadline (METHOD.md) */
	bool met;
	/* false: met, and the data does not show that the start condition ever
	 * held on its own (reading 7: handover already taken over, duty already
	 * informed, a parent session that was never the last). Such a reminder
	 * exists only for a caller that already tracks it as active (it turns
	 * MET); otherwise there is no reminder and no event. */
	bool started;
	char contact_person[130]; /* the case's staff id, "" when none */
} rules_reminder;

/*
 * Evaluates every enabled rule for one case at now_ms. A contact counts as
 * held only once 0 < held_at_ms <= now_ms (reading 1). Writes at most cap
 * reminders to out and returns how many the data implies (which may exceed
 * cap: then call again with more room). When the case has several live
 * siblings, each is evaluated and, per reminder_id, the earliest due time
 * any sibling implies wins; it is met only when every sibling that implies
 * it says met. *next_eval_ms (when not NULL) gets the first instant after
 * now_ms at which the result can change with the clock alone (the next
 * held_at still to come), 0 when none: the caller evaluates again then.
 * Between evaluations the states change only as rules_state_at says.
 * Never allocates.
 */
size_t rules_evaluate(const rules_config *rc, const fs_tz *tz, const rules_input *in,
                      int64_t now_ms, rules_reminder *out, size_t cap, int64_t *next_eval_ms);

/* A fingerprint of (RULES_REVISION, the effective table rc, zone_name): equal
 * fingerprints give equal reminders for equal data. Never 0. */
uint64_t rules_fingerprint(const rules_config *rc, const char *zone_name);

/*
 * The state a reminder is in at now_ms:
 *   met                      MET
 *   now >= due_at            OVERDUE
 *   now >= due_day           DUE
 *   now >= warning_at (> 0)  WARNING
 *   otherwise                SCHEDULED
 */
reminder_state rules_state_at(const rules_reminder *r, int64_t now_ms);

/* The first instant after now_ms at which rules_state_at() changes; 0 if never. */
int64_t rules_next_change(const rules_reminder *r, int64_t now_ms);

#endif
