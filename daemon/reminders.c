/*
 * reminders: the deadline state of every case, kept in the same LMDB
 * transactions as the data that drives it, and the event feed of
 * PROTOCOL.md §6 (logic layer).
 *
 * NOTES ON THE DESIGN OF THE REMINDERS
 *
 * rules.c (the shared core) says, as a pure function of one case's
 * records, which reminders exist and their times (start, warning, due day,
 * due instant, met). This module stores what was last published for each
 * reminder and turns every difference into exactly one ReminderEvent.
 *
 * Where the state lives (each module documents its table):
 *   caseindex.c      case_contacts: which contacts to load for a case; kept
 *                    by reminders_note_record() for every case_id any live
 *                    sibling of a contact names.
 *   reminder_rows.c  reminders: one sealed ReminderRow per reminder (the
 *                    state last emitted, the times it was computed from, the
 *                    key of its timer); timers: the next instant at which a
 *                    reminder's state changes with the clock alone; the
 *                    per-(rule, state) counters.
 *   events.c         events: every emitted ReminderEvent by seq, gap-free
 *                    (meta "event_seq" only moves in the transaction that
 *                    stores the event); the outbox (an event_batch) holds
 *                    the ones to publish after the commit.
 *
 * Transitions, each emitted once, in the transaction that causes it:
 *   data changed     reminders_flush(): re-evaluate the noted cases at now; a
 *                    new reminder or a different state, due time, contact
 *                    person or scope is emitted; an active reminder the data
 *                    no longer implies becomes CANCELLED (a MET or CANCELLED
 *                    one stays as it is). A reminder the rules return with
 *                    started == false (METHOD.md reading 7) is kept only when
 *                    it has a MET or active row (then it turns MET): no row,
 *                    no event.
 *   clock passed     reminders_tick(): for each due timer of a reminder,
 *                    recompute the state from the stored times; emit if it
 *                    changed. A case timer (below) re-evaluates its case.
 *                    A timer whose row or case cannot be read (FSD_NOKEY,
 *                    FSD_CORRUPT: a backup from before a purge restored) is
 *                    skipped alone (a case timer's evaluation in a nested
 *                    transaction, rolled back), counted, logged by ids and
 *                    moved 1 min on, doubling per skip up to 1 h (the
 *                    count in the timer's value); the other timers fire.
 *   a talk is held   rules_evaluate() counts a contact only once its held_at
 *                    has come (reading 1) and returns the next held_at still
 *                    to come; reminders_evaluate_case() keeps it as the case timer: a
 *                    row under the bare case prefix [u8 len][case_id] (empty
 *                    reminder id, rule RULE_COUNT, state CANCELLED, never
 *                    counted or published) whose next_fire_ms is in timers.
 *   start-up         the writer ticks at once, so a deadline that passed
 *                    while the daemon was down fires then, and republishes
 *                    events after meta "published_seq" that a crash may have
 *                    kept from subscribers (they dedupe by seq).
 *   rules changed    meta "rules_fp" holds rules_fingerprint() of the
 *                    revision, table and zone every row was computed under.
 *                    When the writer's differs (first start of a new
 *                    revision, a restart with other rules or zone, SIGHUP),
 *                    reminders_reeval_step() re-evaluates every stored case
 *                    in key order, a bounded batch per round of its own
 *                    between group commits; the last batch stores the new
 *                    fingerprint, the others 0 (a pass in progress: a
 *                    restart or another reload mid-pass begins again). The
 *                    cursor lives in memory; a case already done yields no
 *                    event when done again. A case that cannot be read is
 *                    skipped alone (nested transaction), counted and logged.
 * The state is a function of data and clock (rules_state_at), so a talk
 * recorded offline before the deadline and synced after it yields MET,
 * never a lasting OVERDUE. Events carry ids and times only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caseindex.h"
#include "clock.h"
#include "events.h"
#include "fieldsync/calendar.h"
#include "fieldsync/casework.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "reminder_rows.h"
#include "reminders.h"
#include "reminders_impl.h"
#include "storage.pb-c.h"
#include "sys.h"

#define KEY_MAX REMINDER_KEY_MAX

typedef Fieldsync__V1__ReminderEvent reminder_event;

/* ---- small helpers ------------------------------------------------------ */

static bool
touched_add(reminders *r, const char *case_id)
{
	for (size_t i = 0; i < r->n_touched; i++)
		if (strcmp(r->touched[i], case_id) == 0)
			return true;
	if (r->n_touched == r->cap_touched) {
		size_t cap = r->cap_touched ? r->cap_touched * 2 : 16;
		char **t = realloc(r->touched, cap * sizeof(*t));
		if (t == NULL)
			return false;
		r->touched = t;
		r->cap_touched = cap;
	}
	if ((r->touched[r->n_touched] = strdup(case_id)) == NULL)
		return false;
	r->n_touched++;
	return true;
}

static void
touched_clear(reminders *r)
{
	for (size_t i = 0; i < r->n_touched; i++)
		free(r->touched[i]);
	r->n_touched = 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

fsd_err
reminders_load_rules(const config *c, rules_config *out, char *err, size_t errlen)
{
	rules_config_default(out);
	if (c->rules_file[0] == '\0')
		return FSD_OK;
	char *json = sys_read_file(c->rules_file, 1 << 20);
	char why[512] = "";
	if (json == NULL) {
		snprintf(err, errlen, "--rules %s: cannot read the file (or it is over 1 MiB)",
		         c->rules_file);
		return FSD_IO;
	}
	bool ok = rules_config_load_json(out, json, why, sizeof(why));
	free(json);
	if (!ok)
		snprintf(err, errlen, "--rules %s: %s", c->rules_file, why);
	return ok ? FSD_OK : FSD_INVALID;
}

void
reminders_set_rules(reminders *r, const rules_config *rc)
{
	r->rules = *rc;
}

void
reminders_set_zone(reminders *r, fs_tz *tz)
{
	if (tz == NULL)
		return;
	tz_free(&r->tz);
	r->tz = tz;
}

fsd_err
reminders_new(const config *c, reminders **out, char *err, size_t errlen)
{
	reminders *r = calloc(1, sizeof(*r));
	fsd_err rc = FSD_INVALID;
	*out = NULL;
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return FSD_NOMEM;
	}
	char tzerr[256] = "";
	r->tz = tz_load(c->time_zone, tzerr, sizeof(tzerr));
	if (r->tz == NULL) {
		snprintf(err, errlen, "--time-zone %s: %s", c->time_zone, tzerr);
		goto fail;
	}
	if ((rc = reminders_load_rules(c, &r->rules, err, errlen)) != FSD_OK)
		goto fail;
	r->clock_offset_ms = c->clock_offset_ms;
	*out = r;
	return FSD_OK;
fail:
	reminders_free(&r);
	return rc;
}

void
reminders_free(reminders **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	reminders *r = *rp;
	tz_free(&r->tz);
	touched_clear(r);
	free(r->touched);
	for (size_t i = 0; i < r->out.n; i++) {
		free(r->out.topics[i]);
		free(r->out.data[i]);
	}
	free(r->out.topics);
	free(r->out.data);
	free(r->out.len);
	free(r->out.label);
	free(r);
	*rp = NULL;
}

/* ---- the case -> contacts index ----------------------------------------- */

fsd_err
reminders_note_record(reminders *r, store_txn *t, const fs_record_state *before,
                      const fs_record_state *after)
{
	enum { CAP = 16 };
	char old_ids[CAP][FSP_ID_MAX + 1], new_ids[CAP][FSP_ID_MAX + 1];
	fsd_err rc = FSD_OK;

	if (strcmp(after->collection, "case") == 0)
		return touched_add(r, after->id) ? FSD_OK : FSD_ERROR;
	if (strcmp(after->collection, "contact") != 0)
		return FSD_OK;

	size_t n_old = fsp_contact_case_ids(before, old_ids, CAP);
	size_t n_new = fsp_contact_case_ids(after, new_ids, CAP);
	for (size_t i = 0; i < n_old && rc == FSD_OK; i++) {
		bool kept = false;
		for (size_t k = 0; k < n_new; k++)
			kept |= strcmp(old_ids[i], new_ids[k]) == 0;
		if (!kept) {
			rc = caseindex_del(t, old_ids[i], after->id);
		}
		if (rc == FSD_OK && !touched_add(r, old_ids[i]))
			rc = FSD_ERROR;
	}
	for (size_t i = 0; i < n_new && rc == FSD_OK; i++) {
		rc = caseindex_add(t, new_ids[i], after->id);
		if (rc == FSD_OK && !touched_add(r, new_ids[i]))
			rc = FSD_ERROR;
	}
	return rc;
}

/* ---- loading one case --------------------------------------------------- */

void
reminders_case_data_free(struct case_data *cd)
{
	for (size_t i = 0; i < cd->n_cases; i++)
		fieldsync__v1__case__free_unpacked(cd->cases[i], NULL);
	free(cd->cases);
	records_free(cd->case_state);
	for (size_t i = 0; i < cd->n_contacts; i++)
		fieldsync__v1__contact__free_unpacked(cd->contact_values[i], NULL);
	free(cd->contact_values);
	free(cd->contacts);
	for (size_t i = 0; i < cd->n_states; i++)
		records_free(cd->contact_states[i]);
	free(cd->contact_states);
	memset(cd, 0, sizeof(*cd));
}

bool
reminders_collect_key(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct key_list *l = arg;
	(void)val;
	(void)vlen;
	if (l->limit > 0 && l->n >= l->limit)
		return false;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint8_t **k = realloc(l->keys, cap * sizeof(*k));
		if (k == NULL) {
			l->oom = true;
			return false;
		}
		l->keys = k;
		size_t *kl = realloc(l->klens, cap * sizeof(*kl));
		if (kl == NULL) {
			l->oom = true;
			return false;
		}
		l->klens = kl;
		l->cap = cap;
	}
	if ((l->keys[l->n] = malloc(klen)) == NULL) {
		l->oom = true;
		return false;
	}
	memcpy(l->keys[l->n], key, klen);
	l->klens[l->n++] = klen;
	return l->cap < 1000000; /* bounded: a case never has a million reminders */
}

/* caseindex_contacts() into a key_list: each contact id, without its NUL. */
static bool
collect_id(void *arg, const char *contact_id)
{
	return reminders_collect_key(arg, (const uint8_t *)contact_id, strlen(contact_id), NULL, 0);
}

void
reminders_key_list_free(struct key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	free(l->klens);
}

static bool
add_contact_value(struct case_data *cd, const char *id, Fieldsync__V1__Contact *c)
{
	if (cd->n_contacts == cd->cap_contacts) {
		size_t cap = cd->cap_contacts ? cd->cap_contacts * 2 : 32;
		rules_contact *rc = realloc(cd->contacts, cap * sizeof(*rc));
		if (rc == NULL)
			return false;
		cd->contacts = rc;
		Fieldsync__V1__Contact **v = realloc(cd->contact_values, cap * sizeof(*v));
		if (v == NULL)
			return false;
		cd->contact_values = v;
		cd->cap_contacts = cap;
	}
	cd->contacts[cd->n_contacts].id = id;
	cd->contacts[cd->n_contacts].c = c;
	cd->contact_values[cd->n_contacts] = c;
	cd->n_contacts++;
	return true;
}

/* Loads the live case siblings and the live contact values of case_id. */
static fsd_err
case_load(store_txn *t, const char *case_id, struct case_data *cd)
{
	struct key_list ids = {0};
	size_t plen;
	fsd_err rc = records_get(t, "case", case_id, &cd->case_state);

	if (rc == FSD_NOTFOUND)
		rc = FSD_OK;
	if (rc != FSD_OK)
		return rc;
	if (cd->case_state != NULL) {
		cd->cases = calloc(cd->case_state->n_siblings + 1, sizeof(*cd->cases));
		if (cd->cases == NULL)
			return FSD_ERROR;
		for (size_t i = 0; i < cd->case_state->n_siblings; i++) {
			const fsp_record *v = cd->case_state->siblings[i];
			Fieldsync__V1__Case *c;
			if (v->deleted)
				continue;
			c = fieldsync__v1__case__unpack(NULL, v->payload.len, v->payload.data);
			if (c != NULL) /* validated on the way in; skip rather than crash */
				cd->cases[cd->n_cases++] = c;
		}
	}

	rc = caseindex_contacts(t, case_id, collect_id, &ids);
	plen = 0; /* the list holds contact ids alone */
	if (rc == FSD_OK && ids.oom)
		rc = FSD_ERROR;
	cd->contact_states = calloc(ids.n + 1, sizeof(*cd->contact_states));
	if (cd->contact_states == NULL)
		rc = FSD_ERROR;
	for (size_t i = 0; rc == FSD_OK && i < ids.n; i++) {
		fs_record_state *rs = NULL;
		char id[FSP_ID_MAX + 1];
		size_t idl =
			ids.klens[i] - plen; /* the key is the case prefix, then the contact id */
		if (idl > FSP_ID_MAX)
			continue;
		memcpy(id, ids.keys[i] + plen, idl);
		id[idl] = '\0';
		fsd_err grc = records_get(t, "contact", id, &rs);
		if (grc == FSD_NOTFOUND)
			continue;
		if (grc != FSD_OK) {
			rc = grc;
			break;
		}
		cd->contact_states[cd->n_states++] = rs;
		for (size_t k = 0; k < rs->n_siblings; k++) {
			const fsp_record *v = rs->siblings[k];
			if (v->deleted)
				continue;
			Fieldsync__V1__Contact *c =
				fieldsync__v1__contact__unpack(NULL, v->payload.len,
			                                       v->payload.data);
			if (c == NULL)
				continue;
			if (strcmp(c->case_id, case_id) != 0 || !add_contact_value(cd, rs->id, c)) {
				bool mine = strcmp(c->case_id, case_id) == 0;
				fieldsync__v1__contact__free_unpacked(c, NULL);
				if (mine) {
					rc = FSD_ERROR;
					break;
				}
			}
		}
	}
	reminders_key_list_free(&ids);
	return rc;
}

/* ---- rows, timers and events -------------------------------------------- */

bool
reminders_row_is_active(uint32_t state)
{
	return state != FIELDSYNC__V1__REMINDER_EVENT__STATE__MET &&
	       state != FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED;
}

/* The rules' view of a stored row, for the clock-driven transitions. */
void
reminders_row_to_reminder(const reminder_row *row, rules_reminder *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->reminder_id, sizeof(out->reminder_id), "%s", row->reminder_id);
	out->rule = (rule_id)row->rule;
	out->start_ms = row->start_ms;
	out->warning_at_ms = row->warning_at_ms;
	out->due_day_ms = row->due_day_ms;
	out->due_at_ms = row->due_at_ms;
	out->met = row->met;
	snprintf(out->contact_person, sizeof(out->contact_person), "%s", row->contact_person);
}

/* Stores one event with the next seq and queues it for publishing (r NULL:
 * stored only, another process). */
fsd_err
reminders_emit(reminders *r, store_txn *t, reminder_row *row, uint32_t state, int64_t now_ms)
{
	reminder_event ev;
	fsd_err rc;

	fieldsync__v1__reminder_event__init(&ev);
	ev.reminder_id = row->reminder_id;
	ev.rule = (char *)rule_name((rule_id)row->rule);
	ev.state = (reminder_state)state;
	ev.scope = row->scope;
	ev.case_id = row->case_id;
	ev.contact_person = row->contact_person;
	ev.due_at_ms = row->due_at_ms;
	ev.emitted_at_ms = now_ms;
	/* r NULL: another process (purge); the daemon publishes it from the store */
	if ((rc = events_append(t, &ev, (int)metrics_rule_state((int)row->rule, (int)state),
	                        r != NULL ? &r->out : NULL)) != FSD_OK)
		return rc;
	if ((rc = reminder_rows_count_add(t, row->rule, row->state, -1)) != FSD_OK ||
	    (rc = reminder_rows_count_add(t, row->rule, state, +1)) != FSD_OK)
		return rc;
	row->state = state;
	row->last_seq = ev.seq;
	return FSD_OK;
}

/*
 * Brings one reminder's row in line with what the data now implies (rem) or,
 * when rem is NULL, with its absence. Emits at most one event.
 */
static fsd_err
reconcile(reminders *r, store_txn *t, const char *case_id, const char *scope,
          const rules_reminder *rem, const uint8_t *key, size_t klen, reminder_row *old,
          int64_t now_ms)
{
	reminder_row row;
	fsd_err rc = FSD_OK;
	int64_t old_fire = old ? old->next_fire_ms : 0;

	if (rem == NULL) { /* the data no longer implies it */
		if (old == NULL || !reminders_row_is_active(old->state))
			return FSD_OK;
		row = *old;
		row.next_fire_ms = 0;
		rc = reminders_emit(r, t, &row, FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED,
		                    now_ms);
		if (rc == FSD_OK)
			rc = reminder_rows_timer_set(t, key, klen, old_fire, 0);
		if (rc == FSD_OK)
			rc = reminder_rows_put(t, key, klen, &row);
		return rc;
	}

	fieldsyncd__store__reminder_row__init(&row);
	row.reminder_id = (char *)rem->reminder_id;
	row.rule = (uint32_t)rem->rule;
	row.scope = (char *)scope;
	row.case_id = (char *)case_id;
	row.contact_person = (char *)rem->contact_person;
	row.start_ms = rem->start_ms;
	row.warning_at_ms = rem->warning_at_ms;
	row.due_day_ms = rem->due_day_ms;
	row.due_at_ms = rem->due_at_ms;
	row.met = rem->met;
	row.next_fire_ms = rules_next_change(rem, now_ms);
	row.state = old ? old->state : (uint32_t)-1;
	row.last_seq = old ? old->last_seq : 0;

	uint32_t want = (uint32_t)rules_state_at(rem, now_ms);
	bool changed = old == NULL || old->state != want || old->due_at_ms != rem->due_at_ms ||
	               strcmp(old->scope, scope) != 0 ||
	               strcmp(old->contact_person, rem->contact_person) != 0;
	if (changed)
		rc = reminders_emit(r, t, &row, want, now_ms);
	if (rc == FSD_OK)
		rc = reminder_rows_timer_set(t, key, klen, old_fire, row.next_fire_ms);
	if (rc == FSD_OK &&
	    (changed || old->next_fire_ms != row.next_fire_ms || old->met != row.met ||
	     old->warning_at_ms != row.warning_at_ms || old->due_day_ms != row.due_day_ms ||
	     strcmp(old->contact_person, row.contact_person) != 0))
		rc = reminder_rows_put(t, key, klen, &row);
	return rc;
}

/*
 * What the case's data implies at now_ms: loads the case (*cd, caller frees
 * with reminders_case_data_free) and evaluates the rules into *rems (caller frees), *n
 * of them, and *next_eval (the next held_at to come, 0: none). A case
 * without a live `case` record implies none.
 */
fsd_err
reminders_implied(reminders *r, store_txn *t, const char *case_id, int64_t now_ms,
                  struct case_data *cd, rules_reminder **rems, size_t *n, int64_t *next_eval)
{
	size_t cap = 64;
	fsd_err rc = case_load(t, case_id, cd);

	*rems = NULL;
	*n = 0;
	*next_eval = 0;
	if (rc != FSD_OK || cd->n_cases == 0)
		return rc;
	rules_input in = {
		.case_id = case_id,
		.cases = (const Fieldsync__V1__Case *const *)cd->cases,
		.n_cases = cd->n_cases,
		.contacts = cd->contacts,
		.n_contacts = cd->n_contacts,
	};
	for (;;) {
		rules_reminder *grown = realloc(*rems, cap * sizeof(**rems));
		if (grown == NULL)
			return FSD_ERROR;
		*rems = grown;
		*n = rules_evaluate(&r->rules, r->tz, &in, now_ms, *rems, cap, next_eval);
		if (*n <= cap)
			return FSD_OK;
		cap = *n;
	}
}

/* The case's stored reminder rows (prefix) that rems[0..n) no longer
 * implies, into *out (caller frees with reminders_key_list_free). */
fsd_err
reminders_unimplied_rows(store_txn *t, const char *case_id, const uint8_t *prefix, size_t plen,
                         const rules_reminder *rems, size_t n, struct key_list *out)
{
	uint8_t key[KEY_MAX];
	fsd_err rc = store_kv_scan(t, &reminders_table, prefix, plen, prefix, plen,
	                           reminders_collect_key, out);
	if (rc == FSD_OK && out->oom)
		rc = FSD_ERROR;
	size_t kept = 0;
	for (size_t i = 0; i < out->n; i++) {
		bool implied = out->klens[i] == plen; /* the case timer: not a reminder */
		for (size_t k = 0; k < n && !implied; k++) {
			size_t kl = fsk_case_key(key, sizeof(key), case_id, rems[k].reminder_id);
			implied = kl == out->klens[i] && memcmp(key, out->keys[i], kl) == 0;
		}
		if (implied) {
			free(out->keys[i]);
			continue;
		}
		out->keys[kept] = out->keys[i];
		out->klens[kept++] = out->klens[i];
	}
	out->n = kept;
	return rc;
}

/* Moves the case timer (the row under the bare case prefix) to fire (0: none). */
static fsd_err
case_timer_set(store_txn *t, const char *case_id, const uint8_t *prefix, size_t plen, int64_t fire)
{
	reminder_row *old = NULL, row;
	fsd_err rc = reminder_rows_get(t, prefix, plen, &old);
	int64_t old_fire = old != NULL ? old->next_fire_ms : 0;

	if (rc != FSD_OK && rc != FSD_NOTFOUND && rc != FSD_CORRUPT)
		return rc;
	if (old != NULL)
		fieldsyncd__store__reminder_row__free_unpacked(old, NULL);
	if (old_fire == fire && (fire == 0 || rc == FSD_OK))
		return FSD_OK;
	if ((rc = reminder_rows_timer_set(t, prefix, plen, old_fire, fire)) != FSD_OK)
		return rc;
	if (fire == 0) {
		rc = store_kv_del(t, &reminders_table, prefix, plen);
		return rc == FSD_NOTFOUND ? FSD_OK : rc;
	}
	fieldsyncd__store__reminder_row__init(&row);
	row.reminder_id = "";
	row.rule = RULE_COUNT;                                       /* not a rule: never counted */
	row.state = FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED; /* never active */
	row.scope = "";
	row.case_id = (char *)case_id;
	row.contact_person = "";
	row.next_fire_ms = fire;
	return reminder_rows_put(t, prefix, plen, &row);
}

/* Re-evaluates one case at now_ms: its rows, its events, its case timer. */
fsd_err
reminders_evaluate_case(reminders *r, store_txn *t, const char *case_id, int64_t now_ms)
{
	struct case_data cd = {0};
	struct key_list existing = {0};
	rules_reminder *rems = NULL;
	size_t n = 0;
	int64_t next_eval = 0;
	uint8_t prefix[KEY_MAX], key[KEY_MAX];
	size_t plen = fsk_case_key(prefix, sizeof(prefix), case_id, "");
	fsd_err rc = plen == 0
	                     ? FSD_INVALID
	                     : reminders_implied(r, t, case_id, now_ms, &cd, &rems, &n, &next_eval);

	if (rc != FSD_OK)
		goto out;
	const char *scope = cd.case_state != NULL ? cd.case_state->scope : "";

	/* What the data implies now. */
	for (size_t i = 0; rc == FSD_OK && i < n; i++) {
		size_t kl = fsk_case_key(key, sizeof(key), case_id, rems[i].reminder_id);
		fsd_err grc;
		reminder_row *old = NULL;
		grc = reminder_rows_get(t, key, kl, &old);
		if (grc != FSD_OK && grc != FSD_NOTFOUND) {
			rc = grc;
			break;
		}
		/* reading 7: met without having started: only a tracked one turns MET */
		if (!rems[i].started &&
		    (old == NULL ||
		     old->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED)) {
			if (old != NULL)
				fieldsyncd__store__reminder_row__free_unpacked(old, NULL);
			continue;
		}
		rc = reconcile(r, t, case_id, scope, &rems[i], key, kl, old, now_ms);
		if (old != NULL)
			fieldsyncd__store__reminder_row__free_unpacked(old, NULL);
	}
	if (rc != FSD_OK)
		goto out;

	/* What it no longer implies. */
	rc = reminders_unimplied_rows(t, case_id, prefix, plen, rems, n, &existing);
	for (size_t i = 0; rc == FSD_OK && i < existing.n; i++) {
		fsd_err grc;
		reminder_row *old = NULL;
		grc = reminder_rows_get(t, existing.keys[i], existing.klens[i], &old);
		if (old == NULL) {
			rc = grc;
			break;
		}
		rc = reconcile(r, t, case_id, scope, NULL, existing.keys[i], existing.klens[i], old,
		               now_ms);
		fieldsyncd__store__reminder_row__free_unpacked(old, NULL);
	}
	/* reading 1: evaluate again when the next talk still to come is held */
	if (rc == FSD_OK)
		rc = case_timer_set(t, case_id, prefix, plen, next_eval);
out:
	reminders_key_list_free(&existing);
	free(rems);
	reminders_case_data_free(&cd);
	return rc;
}

fsd_err
reminders_erase_case(store_txn *t, const char *case_id, int64_t now_ms, size_t *n_erased)
{
	struct key_list rows = {0};
	uint8_t prefix[KEY_MAX];
	size_t plen = fsk_case_key(prefix, sizeof(prefix), case_id, "");
	fsd_err rc = plen == 0 ? FSD_INVALID
	                       : store_kv_scan(t, &reminders_table, prefix, plen, prefix, plen,
	                                       reminders_collect_key, &rows);
	if (rc == FSD_OK && rows.oom)
		rc = FSD_ERROR;
	*n_erased = 0;
	for (size_t i = 0; rc == FSD_OK && i < rows.n; i++) {
		reminder_row *row = NULL;
		/* a row that does not open is deleted all the same */
		(void)reminder_rows_get(t, rows.keys[i], rows.klens[i], &row);
		if (row != NULL && reminders_row_is_active(row->state))
			rc = reminders_emit(NULL, t, row,
			                    FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED,
			                    now_ms);
		if (row != NULL && rc == FSD_OK)
			rc = reminder_rows_timer_set(t, rows.keys[i], rows.klens[i],
			                             row->next_fire_ms, 0);
		if (row != NULL && rc == FSD_OK)
			rc = reminder_rows_count_add(t, row->rule, row->state, -1);
		if (row != NULL)
			fieldsyncd__store__reminder_row__free_unpacked(row, NULL);
		if (rc == FSD_OK)
			rc = store_kv_del(t, &reminders_table, rows.keys[i], rows.klens[i]);
		if (rc == FSD_OK)
			(*n_erased)++;
	}
	reminders_key_list_free(&rows);
	return rc;
}

fsd_err
reminders_flush(reminders *r, store_txn *t, int64_t now_ms)
{
	fsd_err rc = FSD_OK;
	for (size_t i = 0; rc == FSD_OK && i < r->n_touched; i++)
		rc = reminders_evaluate_case(r, t, r->touched[i], now_ms);
	touched_clear(r);
	return rc;
}

/* ---- the outbox ----------------------------------------------------------- */

size_t
reminders_mark(const reminders *r)
{
	return r->out.n;
}

void
reminders_rollback(reminders *r, size_t mark)
{
	events_batch_truncate(&r->out, mark);
	touched_clear(r);
	r->reeval.staged_valid = false; /* the re-evaluation step goes with its round */
}

fsd_err
reminders_take(reminders *r, event_batch **out)
{
	*out = NULL;
	if (r->out.n == 0)
		return FSD_OK;
	event_batch *b = malloc(sizeof(*b));
	if (b == NULL)
		return FSD_NOMEM;
	*b = r->out;
	memset(&r->out, 0, sizeof(r->out));
	*out = b;
	return FSD_OK;
}
