/*
 * The deadline rules of METHOD.md as a pure function of one case's data.
 *
 * NOTES ON THE DESIGN
 *
 * Input. One case: its live siblings (a case in conflict has several) and
 * every live sibling of every contact of it, each as its own rules_contact,
 * siblings of one contact sharing an id, and the instant now_ms. Nothing
 * else: no clock of its own, no store, no globals.
 *
 * Revision 2 (METHOD.md "Settled readings", RULES_REVISION). The clock
 * enters the evaluation in one place only: a contact is held once
 * 0 < held_at <= now (reading 1, held_as). The result is therefore constant
 * until the next held_at still to come, which rules_evaluate returns as
 * next_eval_ms for the caller's timer; between evaluations only the states
 * move, at the instants rules_state_at names. The other readings are local
 * to their rule in case_candidate and the two per-contact evaluators:
 * same-day talks (2) in quick-help, the end of a case (3) as "not implied
 * unless met" for the four course rules, the warning from the start of a
 * day (4) in network-meeting, the window from the start of a day (5) in
 * follow-up, early treatment (6) in treatment-start (strictly after the
 * last counselling talk), and reading 7 as rules_reminder.started (false
 * for a reminder that the data shows met but never started on its own).
 *
 * Contacts in conflict are grouped by id ("logical contacts"). A logical
 * contact counts as kind K if any of its siblings has kind K and was held
 * (as above); its held_at for K is the earliest held held_at among those
 * siblings, so a conflict can only bring a deadline forward.
 * Grouping needs no memory: raw contact i represents its logical contact
 * for kind K (is_first_held) when no sibling of the same id and kind was
 * held earlier, or at the same instant with a smaller index. Counting
 * representatives counts logical contacts. Checks of the form "some
 * contact was held at or after T" look at every raw sibling: any sibling
 * that satisfies the condition counts.
 *
 * Evaluation. For every enabled rule and every occurrence of it (one per
 * case, or one per contact for parent-session and network-meeting), each
 * case sibling yields at most one candidate (start, warning, due day, due,
 * met, contact person); the candidates are merged (merge_candidate): among
 * the unmet ones the earliest due wins; the reminder is met only when every
 * candidate is met, and then the earliest due among them is kept. Ties go
 * to the smaller contact person, then the earlier warning, then the
 * earlier start (cand_cmp): never to the order the siblings are stored in. A network-meeting occurrence has one candidate per
 * contact sibling with a next_at, merged the same way.
 *
 * Cost and memory. rules_evaluate never allocates. Finding representatives
 * is O(n) per contact, so a case with n contacts costs O(n^2) comparisons
 * in the worst case (about 20 ms for 3000 contact entries at -O2); the
 * integer comparisons come before any strcmp. The Nth contact by held_at
 * (counselling-limit, treatment-window) keeps the N smallest values in a
 * stack array of RULES_COUNT_MAX entries, the only per-call scratch; a
 * configured count above that is clamped (the JSON loader refuses it).
 *
 * Times that the calendar cannot place (outside years 1..9999) yield no
 * candidate: such a value is corrupt data, not a deadline.
 *
 * States (rules_state_at): MET, else OVERDUE from due_at, DUE from due_day,
 * WARNING from warning_at (when > 0), SCHEDULED before. They change only at
 * those three instants, which is what rules_next_change searches.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "fieldsync/rules.h"

#define PERSON_MAX (sizeof(((rules_reminder *)0)->contact_person))

typedef Fieldsync__V1__Case fs_case;
typedef Fieldsync__V1__Contact fs_contact;

#define KIND_COUNSELLING FIELDSYNC__V1__CONTACT__KIND__COUNSELLING
#define KIND_TREATMENT FIELDSYNC__V1__CONTACT__KIND__TREATMENT
#define KIND_GROUP_SESSION FIELDSYNC__V1__CONTACT__KIND__GROUP_SESSION
#define KIND_PARENT_SESSION FIELDSYNC__V1__CONTACT__KIND__PARENT_SESSION
#define KIND_FOLLOW_UP FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP
#define KIND_ANY (-1)
#define TRACK_COUNSELLING FIELDSYNC__V1__CASE__TRACK__COUNSELLING
#define TRACK_INDIVIDUAL FIELDSYNC__V1__CASE__TRACK__INDIVIDUAL

static const char *
str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static const char *
contact_id(const rules_contact *x)
{
	return str_or_empty(x->id);
}

/* held_at of raw contact x when it has `kind` (KIND_ANY: any) and was held by now; else 0. */
static int64_t
held_as(const rules_contact *x, int kind, int64_t now)
{
	if (x->c == NULL || x->c->held_at_ms <= 0 || x->c->held_at_ms > now)
		return 0;
	if (kind != KIND_ANY && (int)x->c->kind != kind)
		return 0;
	return x->c->held_at_ms;
}

/*
 * True when raw contact i, held as `kind`, represents its logical contact:
 * no sibling (same id) held as `kind` earlier, or at the same instant with a
 * smaller index. Its held_at is then the logical contact's held_at for kind.
 */
static bool
is_first_held(const rules_input *in, size_t i, int kind, int64_t now)
{
	int64_t hi = held_as(&in->contacts[i], kind, now), hj;

	if (hi == 0)
		return false;
	for (size_t j = 0; j < in->n_contacts; j++) {
		if (j == i || (hj = held_as(&in->contacts[j], kind, now)) == 0)
			continue;
		if ((hj < hi || (hj == hi && j < i)) &&
		    strcmp(contact_id(&in->contacts[j]), contact_id(&in->contacts[i])) == 0)
			return false;
	}
	return true;
}

/* True when raw contact i is the first (lowest index) sibling of its id with a next_at. */
static bool
is_first_next(const rules_input *in, size_t i)
{
	const rules_contact *x = &in->contacts[i];

	if (x->c == NULL || x->c->next_at_ms <= 0)
		return false;
	for (size_t j = 0; j < i; j++) {
		const rules_contact *y = &in->contacts[j];

		if (y->c != NULL && y->c->next_at_ms > 0 &&
		    strcmp(contact_id(y), contact_id(x)) == 0)
			return false;
	}
	return true;
}

/* Some raw contact of `kind` (KIND_ANY: any) held by now, at or after t (strictly after when strict). */
static bool
held_since(const rules_input *in, int kind, int64_t t, bool strict, int64_t now)
{
	for (size_t j = 0; j < in->n_contacts; j++) {
		int64_t h = held_as(&in->contacts[j], kind, now);

		if (h > 0 && (strict ? h > t : h >= t))
			return true;
	}
	return false;
}

/* What one kind of held contacts says, over logical contacts. */
typedef struct kind_facts {
	size_t n;      /* logical contacts held as this kind */
	int64_t first; /* the earliest held_at; 0 when n == 0 */
	int64_t last;  /* the latest held_at; 0 when n == 0 */
	int64_t nth;   /* the held_at of the count-th by held_at; 0 when n < count */
	size_t last_i; /* the raw index representing the last one, by (held_at, id) */
} kind_facts;

static int
count_clamped(int count)
{
	return count < 1 ? 1 : count > RULES_COUNT_MAX ? RULES_COUNT_MAX : count;
}

/* What the contacts held as `kind` by now say (count: which one is nth). */
static void
kind_facts_get(const rules_input *in, int kind, int count, int64_t now, kind_facts *f)
{
	int64_t low[RULES_COUNT_MAX]; /* the k smallest held_at so far, ascending */
	size_t nlow = 0, k = (size_t)count_clamped(count), pos;

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < in->n_contacts; i++) {
		int64_t h = held_as(&in->contacts[i], kind, now);

		if (h == 0 || !is_first_held(in, i, kind, now))
			continue;
		if (f->n == 0 || h < f->first)
			f->first = h;
		if (f->n == 0 || h > f->last ||
		    (h == f->last && strcmp(contact_id(&in->contacts[i]),
		                            contact_id(&in->contacts[f->last_i])) > 0)) {
			f->last = h;
			f->last_i = i;
		}
		f->n++;
		if (nlow < k)
			pos = nlow++;
		else if (h < low[k - 1])
			pos = k - 1;
		else
			continue;
		while (pos > 0 && low[pos - 1] > h) {
			low[pos] = low[pos - 1];
			pos--;
		}
		low[pos] = h;
	}
	f->nth = nlow == k ? low[k - 1] : 0;
}

/* ---- candidates --------------------------------------------------------- */

/* What one case sibling (or contact sibling) implies for one reminder. */
typedef struct candidate {
	int64_t start, warning_at, due_day, due_at;
	bool met;
	bool started; /* reading 7: false when met without ever having started */
	const char *person;
} candidate;

typedef struct eval_ctx {
	const rules_config *rc;
	const fs_tz *tz;
	const rules_input *in;
	int64_t now;
	kind_facts counselling, treatment, group, parent;
	rules_reminder *out;
	size_t cap, n;
} eval_ctx;

/* Fills due_day and, unless the rule has none, a warning before due_at. */
static bool
cand_finish(const eval_ctx *x, const rule_conf *rc, candidate *c)
{
	if (c->due_at <= 0 || !cal_due_ms(x->tz, c->due_at - 1, -1, CAL_DAYS, &c->due_day))
		return false;
	c->warning_at = 0;
	if (rc->has_warning &&
	    !cal_before_ms(x->tz, c->due_at, rc->warning.amount, rc->warning.unit, &c->warning_at))
		return false;
	return true;
}

/* start, due = start + the rule's due offset, warning before it. */
static bool
cand_after(const eval_ctx *x, const rule_conf *rc, int64_t start, candidate *c)
{
	c->start = start;
	if (!cal_due_ms(x->tz, start, rc->due.amount, rc->due.unit, &c->due_at))
		return false;
	return cand_finish(x, rc, c);
}

/* Negative when a goes before b: due first; on a tie the smaller contact
 * person (bytes), then the earlier warning, then the earlier start, so the
 * result does not depend on the order the siblings are stored in (a daemon
 * and a tablet, or two tablets, may hold them in different orders). */
static int
cand_cmp(const candidate *a, const candidate *b)
{
	int p;

	if (a->due_at != b->due_at)
		return a->due_at < b->due_at ? -1 : 1;
	if ((p = strcmp(str_or_empty(a->person), str_or_empty(b->person))) != 0)
		return p;
	if (a->warning_at != b->warning_at)
		return a->warning_at < b->warning_at ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return 0;
}

/* Keeps in *best the unmet candidate due first, else (all met) the met one due first
 * (ties: cand_cmp); the merged reminder started when any candidate did. */
static void
merge_candidate(candidate *best, bool *have, const candidate *c)
{
	bool started = (*have && best->started) || c->started;

	if (!*have || (best->met && !c->met) || (best->met == c->met && cand_cmp(c, best) < 0))
		*best = *c;
	best->started = started;
	*have = true;
}

/* The first instant of the local day `amount` units before the local day holding t. */
static bool
day_start_before(const fs_tz *tz, int64_t t, int amount, cal_unit unit, int64_t *out)
{
	int64_t next_day;

	/* the start of the day after (t's date - amount), then the start of the day before it */
	return cal_due_ms(tz, t, -amount, unit, &next_day) &&
	       cal_day_start_ms(tz, next_day - 1, out);
}

/* The candidate case sibling cs implies for a case-level rule; false: none. */
static bool
case_candidate(const eval_ctx *x, rule_id r, const fs_case *cs, candidate *c)
{
	const rule_conf *rc = &x->rc->rule[r];
	const rules_input *in = x->in;
	int64_t ended = cs->ended_at_ms, at_once;

	int64_t day;

	memset(c, 0, sizeof(*c));
	c->person = str_or_empty(cs->contact_person);
	c->started = true;
	switch (r) {
	case RULE_QUICK_HELP:
		if (cs->first_contact_at_ms <= 0 ||
		    !cand_after(x, rc, cs->first_contact_at_ms, c) ||
		    !cal_day_start_ms(x->tz, cs->first_contact_at_ms, &day))
			return false;
		/* reading 2: a talk on the day of the first contact counts, even earlier that day */
		c->met = held_since(in, KIND_ANY, day, false, x->now);
		return c->met || ended <= 0; /* reading 3: the end cancels it unless met */
	case RULE_COUNSELLING_LIMIT:
		if (x->counselling.nth == 0 || !cand_after(x, rc, x->counselling.nth, c))
			return false;
		c->met = cs->track != TRACK_COUNSELLING || ended > 0;
		return true;
	case RULE_TREATMENT_START:
		if (cs->track != TRACK_INDIVIDUAL || x->counselling.n == 0 ||
		    !cand_after(x, rc, x->counselling.last, c))
			return false;
		/* reading 6: any treatment talk after the last counselling talk, however soon */
		c->met = held_since(in, KIND_TREATMENT, c->start, true, x->now);
		return c->met || ended <= 0; /* reading 3 */
	case RULE_TREATMENT_WINDOW:
		if (x->treatment.n == 0)
			return false;
		c->start = x->treatment.first;
		if (!cal_due_ms(x->tz, c->start, rc->due.amount, rc->due.unit, &c->due_at))
			return false;
		if (x->treatment.nth > 0) {
			if (!cal_due_ms(x->tz, x->treatment.nth, 0, CAL_DAYS, &at_once))
				return false;
			if (at_once < c->due_at)
				c->due_at = at_once;
		}
		if (!cand_finish(x, rc, c))
			return false;
		c->met = ended > 0;
		return true;
	case RULE_GROUP_COURSE:
		if (x->group.n == 0 || !cand_after(x, rc, x->group.first, c))
			return false;
		c->met = ended > 0;
		return true;
	case RULE_FOLLOW_UP:
		if (ended <= 0 || (cs->track == TRACK_COUNSELLING && !cs->follow_up_wanted))
			return false;
		c->start = ended;
		if (!cal_due_ms(x->tz, ended, rc->due.amount, rc->due.unit, &c->due_at) ||
		    !cand_finish(x, rc, c))
			return false;
		/* reading 5: the window opens at the start of the local date `warning`
		 * after the end's date (clamped), not before the due */
		if (rc->has_warning && !day_start_before(x->tz, ended, -rc->warning.amount,
		                                         rc->warning.unit, &c->warning_at))
			return false;
		c->met = held_since(in, KIND_FOLLOW_UP, ended, false, x->now);
		return true;
	case RULE_HANDOVER:
		if (ended <= 0 || !cs->needs_further_support || !cand_after(x, rc, ended, c))
			return false;
		c->met = str_or_empty(cs->taken_over_by)[0] != '\0';
		c->started = !c->met; /* reading 7: taken over already, never started */
		return true;
	case RULE_NOTIFICATION_DUTY: /* reading 3: keeps running after the end */
		if (!cs->under_18 || x->counselling.n == 0 ||
		    !cand_after(x, rc, x->counselling.first, c))
			return false;
		c->met = cs->notification_duty_informed;
		c->started = !c->met; /* reading 7: informed already, never started */
		return true;
	default:
		return false; /* per-contact rules are not evaluated here */
	}
}

/* Writes (or counts) the merged reminder; a reminder_id that does not fit is skipped. */
static void
emit(eval_ctx *x, rule_id r, const char *occurrence, const candidate *c)
{
	const char *name = rule_name(r), *case_id = str_or_empty(x->in->case_id);
	size_t len = strlen(name) + 1 + strlen(case_id);
	rules_reminder *o;

	if (occurrence != NULL)
		len += 1 + strlen(occurrence);
	if (len >= RULES_ID_MAX)
		return;
	if (x->n < x->cap) {
		o = &x->out[x->n];
		memset(o, 0, sizeof(*o));
		if (occurrence != NULL)
			snprintf(o->reminder_id, sizeof(o->reminder_id), "%s/%s/%s", name, case_id,
			         occurrence);
		else
			snprintf(o->reminder_id, sizeof(o->reminder_id), "%s/%s", name, case_id);
		o->rule = r;
		o->start_ms = c->start;
		o->warning_at_ms = c->warning_at;
		o->due_day_ms = c->due_day;
		o->due_at_ms = c->due_at;
		o->met = c->met;
		o->started = c->started;
		/* a staff id that does not fit is left out rather than cut into another id */
		if (strlen(c->person) < PERSON_MAX)
			memcpy(o->contact_person, c->person, strlen(c->person) + 1);
	}
	x->n++;
}

static void
eval_case_rule(eval_ctx *x, rule_id r)
{
	candidate best, c;
	bool have = false;

	for (size_t s = 0; s < x->in->n_cases; s++) {
		if (x->in->cases[s] != NULL && case_candidate(x, r, x->in->cases[s], &c))
			merge_candidate(&best, &have, &c);
	}
	if (have)
		emit(x, r, NULL, &best);
}

/* One occurrence per logical PARENT_SESSION contact; the last one only while a sibling is open. */
static void
eval_parent_sessions(eval_ctx *x)
{
	const rule_conf *rc = &x->rc->rule[RULE_PARENT_SESSION];
	const rules_input *in = x->in;

	for (size_t i = 0; i < in->n_contacts; i++) {
		candidate best, c;
		bool have = false, last;

		if (!is_first_held(in, i, KIND_PARENT_SESSION, x->now))
			continue;
		last = i == x->parent.last_i;
		for (size_t s = 0; s < in->n_cases; s++) {
			const fs_case *cs = in->cases[s];

			if (cs == NULL || (last && cs->ended_at_ms > 0))
				continue;
			memset(&c, 0, sizeof(c));
			if (!cand_after(x, rc, in->contacts[i].c->held_at_ms, &c))
				continue;
			c.met = !last; /* a later parent session was held */
			c.started =
				last; /* reading 7: an earlier one was the last only if tracked */
			c.person = str_or_empty(cs->contact_person);
			merge_candidate(&best, &have, &c);
		}
		if (have)
			emit(x, RULE_PARENT_SESSION, contact_id(&in->contacts[i]), &best);
	}
}

/* One occurrence per contact id with a next_at; each sibling with one is a candidate. */
static void
eval_network_meetings(eval_ctx *x)
{
	const rule_conf *rc = &x->rc->rule[RULE_NETWORK_MEETING];
	const rules_input *in = x->in;

	for (size_t i = 0; i < in->n_contacts; i++) {
		candidate best, c;
		bool have = false;

		if (!is_first_next(in, i))
			continue;
		for (size_t j = i; j < in->n_contacts; j++) {
			const fs_contact *k = in->contacts[j].c;

			if (k == NULL || k->next_at_ms <= 0 ||
			    (j != i && strcmp(contact_id(&in->contacts[j]),
			                      contact_id(&in->contacts[i])) != 0))
				continue;
			memset(&c, 0, sizeof(c));
			c.start = k->held_at_ms > 0 && k->held_at_ms <= x->now ? k->held_at_ms
			                                                       : k->next_at_ms;
			c.due_at = k->next_at_ms;
			c.started = true;
			if (!cand_finish(x, rc, &c))
				continue;
			/* reading 4: warn from the start of the day K before the meeting's day */
			if (rc->has_warning &&
			    !day_start_before(x->tz, c.due_at, rc->warning.amount, rc->warning.unit,
			                      &c.warning_at))
				continue;
			c.met = held_since(in, KIND_ANY, k->next_at_ms, false, x->now);
			for (size_t s = 0; s < in->n_cases; s++) {
				/* reading 3: an ended case cancels it unless met */
				if (in->cases[s] == NULL ||
				    (!c.met && in->cases[s]->ended_at_ms > 0))
					continue;
				c.person = str_or_empty(in->cases[s]->contact_person);
				merge_candidate(&best, &have, &c);
			}
		}
		if (have)
			emit(x, RULE_NETWORK_MEETING, contact_id(&in->contacts[i]), &best);
	}
}

size_t
rules_evaluate(const rules_config *rc, const fs_tz *tz, const rules_input *in, int64_t now_ms,
               rules_reminder *out, size_t cap, int64_t *next_eval_ms)
{
	eval_ctx x;
	bool any_case = false;

	assert(rc != NULL && tz != NULL && in != NULL && (out != NULL || cap == 0));
	assert(in->contacts != NULL || in->n_contacts == 0);
	if (next_eval_ms != NULL)
		*next_eval_ms = 0;
	for (size_t s = 0; s < in->n_cases && in->cases != NULL; s++)
		any_case |= in->cases[s] != NULL;
	if (!any_case)
		return 0;
	/* reading 1: the result changes when a contact still to come is held */
	for (size_t i = 0; next_eval_ms != NULL && i < in->n_contacts; i++) {
		const fs_contact *k = in->contacts[i].c;

		if (k != NULL && k->held_at_ms > now_ms &&
		    (*next_eval_ms == 0 || k->held_at_ms < *next_eval_ms))
			*next_eval_ms = k->held_at_ms;
	}

	memset(&x, 0, sizeof(x));
	x.rc = rc;
	x.tz = tz;
	x.in = in;
	x.now = now_ms;
	x.out = out;
	x.cap = cap;
	kind_facts_get(in, KIND_COUNSELLING, rc->rule[RULE_COUNSELLING_LIMIT].count, now_ms,
	               &x.counselling);
	kind_facts_get(in, KIND_TREATMENT, rc->rule[RULE_TREATMENT_WINDOW].count, now_ms,
	               &x.treatment);
	kind_facts_get(in, KIND_GROUP_SESSION, 1, now_ms, &x.group);
	kind_facts_get(in, KIND_PARENT_SESSION, 1, now_ms, &x.parent);

	for (int r = 0; r < RULE_COUNT; r++) {
		if (!rc->rule[r].enabled)
			continue;
		if (r == RULE_PARENT_SESSION)
			eval_parent_sessions(&x);
		else if (r == RULE_NETWORK_MEETING)
			eval_network_meetings(&x);
		else
			eval_case_rule(&x, (rule_id)r);
	}
	return x.n;
}

/* ---- the fingerprint ------------------------------------------------------ */

/* FNV-1a over n bytes, continuing from h. */
static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Mixes one integer into h as 8 little-endian bytes (no padding, no host order). */
static uint64_t
fnv1a_int(uint64_t h, int64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)v >> (8 * i));
	return fnv1a(h, b, sizeof(b));
}

uint64_t
rules_fingerprint(const rules_config *rc, const char *zone_name)
{
	uint64_t h = 14695981039346656037ULL;

	assert(rc != NULL);
	h = fnv1a(h, "fieldsync-rules", 15);
	h = fnv1a_int(h, RULES_REVISION);
	/* sibling ties broken by cand_cmp, not by storage order: stores computed
	 * before are evaluated again once, so a tied contact person is put right */
	h = fnv1a(h, "ties-by-value", 13);
	for (int r = 0; r < RULE_COUNT; r++) {
		const rule_conf *c = &rc->rule[r];

		h = fnv1a_int(h, r);
		h = fnv1a_int(h, c->enabled);
		if (!c->enabled)
			continue; /* a disabled rule's other fields change nothing */
		h = fnv1a_int(h, c->due.amount);
		h = fnv1a_int(h, c->due.unit);
		h = fnv1a_int(h, c->has_warning);
		h = fnv1a_int(h, c->has_warning ? c->warning.amount : 0);
		h = fnv1a_int(h, c->has_warning ? c->warning.unit : 0);
		h = fnv1a_int(h, c->count);
	}
	zone_name = str_or_empty(zone_name);
	h = fnv1a(h, zone_name, strlen(zone_name) + 1);
	return h != 0 ? h : 1;
}

/* ---- states ------------------------------------------------------------- */

reminder_state
rules_state_at(const rules_reminder *r, int64_t now_ms)
{
	assert(r != NULL);
	if (r->met)
		return FIELDSYNC__V1__REMINDER_EVENT__STATE__MET;
	if (now_ms >= r->due_at_ms)
		return FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE;
	if (now_ms >= r->due_day_ms)
		return FIELDSYNC__V1__REMINDER_EVENT__STATE__DUE;
	if (r->warning_at_ms > 0 && now_ms >= r->warning_at_ms)
		return FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING;
	return FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED;
}

int64_t
rules_next_change(const rules_reminder *r, int64_t now_ms)
{
	int64_t t[3], best = 0;
	reminder_state now_state;

	assert(r != NULL);
	t[0] = r->warning_at_ms;
	t[1] = r->due_day_ms;
	t[2] = r->due_at_ms;
	if (r->met)
		return 0;
	now_state = rules_state_at(r, now_ms);
	/* the state is constant between these instants, so the earliest one after
	 * now at which it differs is the next change */
	for (int i = 0; i < 3; i++) {
		if (t[i] <= now_ms || (i == 0 && t[i] == 0) || (best != 0 && t[i] >= best))
			continue;
		if (rules_state_at(r, t[i]) != now_state)
			best = t[i];
	}
	return best;
}
