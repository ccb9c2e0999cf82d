/*
 * rules.c: every deadline rule of docs/method.md in Europe/Copenhagen, as tables
 * of scenarios (one case, its contacts, a config over the defaults) with the
 * exact start, warning, due-day and due instants and the state at chosen
 * instants; daylight saving and month ends; a talk learned of late; cases
 * and contacts in conflict; rules_state_at and rules_next_change; the JSON
 * rule table, good and bad.
 *
 * The clock is the now_ms passed to rules_state_at. Expected instants come
 * from local_ms(), an oracle independent of calendar.c: Copenhagen is UTC+1,
 * and UTC+2 from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
 * last Sunday of October (the EU rule, in force since 1996); test_oracle
 * checks it against instants computed elsewhere.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/calendar.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"

/* ---- the oracle --------------------------------------------------------- */

/* Days since 1970-01-01 (Howard Hinnant's days_from_civil). */
static int64_t
civil_days(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* 01:00 UTC on the last Sunday of month m, in seconds. */
static int64_t
eu_switch_s(int y, int m)
{
	int64_t last = civil_days(y, m + 1, 1) - 1; /* m is 3 or 10 */
	int64_t wd = (last + 4) % 7;                /* 1970-01-01 was a Thursday; 0 = Sunday */

	return (last - wd) * 86400 + 3600;
}

/* Local Copenhagen time y-m-d h:mi as ms since the epoch (not for the
 * skipped hour; in the repeated hour the summer-time reading). */
static int64_t
local_ms(int y, int m, int d, int h, int mi)
{
	int64_t local = civil_days(y, m, d) * 86400 + h * 3600 + mi * 60;
	int64_t summer = local - 7200;

	if (summer >= eu_switch_s(y, 3) && summer < eu_switch_s(y, 10))
		return summer * 1000;
	return (local - 3600) * 1000;
}

#define L(y, m, d, h, mi) local_ms(y, m, d, h, mi)
#define D(y, m, d) local_ms(y, m, d, 0, 0) /* the local midnight that starts y-m-d */

/* ---- fixtures ----------------------------------------------------------- */

#define SCH FIELDSYNC__V1__REMINDER_EVENT__STATE__SCHEDULED
#define WARN FIELDSYNC__V1__REMINDER_EVENT__STATE__WARNING
#define DUE FIELDSYNC__V1__REMINDER_EVENT__STATE__DUE
#define OVER FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE
#define MET FIELDSYNC__V1__REMINDER_EVENT__STATE__MET

#define CO FIELDSYNC__V1__CONTACT__KIND__COUNSELLING
#define TR FIELDSYNC__V1__CONTACT__KIND__TREATMENT
#define GS FIELDSYNC__V1__CONTACT__KIND__GROUP_SESSION
#define PS FIELDSYNC__V1__CONTACT__KIND__PARENT_SESSION
#define NM FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING
#define FU FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP

#define T_COUNSELLING FIELDSYNC__V1__CASE__TRACK__COUNSELLING
#define T_INDIVIDUAL FIELDSYNC__V1__CASE__TRACK__INDIVIDUAL
#define T_GROUP FIELDSYNC__V1__CASE__TRACK__GROUP
#define T_PARENT FIELDSYNC__V1__CASE__TRACK__PARENT_ACTIVITIES

#define CASE_ID "case-1"
#define MAXC 16  /* contacts in one scenario */
#define MAXR 64  /* reminders of one evaluation */
#define MAXAT 10 /* state checks in one scenario */

/* 2026-03-24 15:00 +01:00, the brief's reference instant */
#define REF_MS 1774360800000LL
/* an instant after every contact of every scenario */
#define FAR D(2100, 1, 1)
/* a state check expecting no reminder at that instant */
#define NONE (-1)

static fs_tz *g_tz;

static void
tz_setup(void)
{
	char err[256] = "";

	g_tz = tz_load("Europe/Copenhagen", err, sizeof(err));
	cr_assert_not_null(g_tz, "tz_load: %s", err);
}

static void
tz_teardown(void)
{
	tz_free(&g_tz);
}

TestSuite(rules, .init = tz_setup, .fini = tz_teardown);

typedef struct tcontact {
	const char *id; /* NULL ends the list */
	int kind;
	int64_t held, next;
} tcontact;

typedef struct tcase {
	int64_t first, ended;
	int track;
	bool under_18, follow_up_wanted, further, informed;
	const char *taken_over_by, *person; /* NULL: "" and "staff-7" */
} tcase;

/* The protobuf values behind one rules_input. */
typedef struct world {
	Fieldsync__V1__Case cases[4];
	const Fieldsync__V1__Case *case_ptr[4];
	Fieldsync__V1__Contact contacts[MAXC];
	rules_contact rcontacts[MAXC];
	rules_input in;
	rules_reminder out[MAXR];
	size_t n;
} world;

static void
world_init(world *w)
{
	memset(w, 0, sizeof(*w));
	w->in.case_id = CASE_ID;
	w->in.cases = w->case_ptr;
	w->in.contacts = w->rcontacts;
}

static void
add_case(world *w, const tcase *t)
{
	Fieldsync__V1__Case *c;

	cr_assert_lt(w->in.n_cases, 4);
	c = &w->cases[w->in.n_cases];
	fieldsync__v1__case__init(c);
	c->first_contact_at_ms = t->first;
	c->ended_at_ms = t->ended;
	c->track = (Fieldsync__V1__Case__Track)t->track;
	c->under_18 = t->under_18;
	c->follow_up_wanted = t->follow_up_wanted;
	c->needs_further_support = t->further;
	c->notification_duty_informed = t->informed;
	c->taken_over_by = (char *)(t->taken_over_by ? t->taken_over_by : "");
	c->contact_person = (char *)(t->person ? t->person : "staff-7");
	w->case_ptr[w->in.n_cases++] = c;
}

static void
add_contact(world *w, const char *id, int kind, int64_t held, int64_t next)
{
	Fieldsync__V1__Contact *c;

	cr_assert_lt(w->in.n_contacts, MAXC);
	c = &w->contacts[w->in.n_contacts];
	fieldsync__v1__contact__init(c);
	c->case_id = (char *)CASE_ID;
	c->kind = (Fieldsync__V1__Contact__Kind)kind;
	c->held_at_ms = held;
	c->next_at_ms = next;
	c->who5 = -1;
	w->rcontacts[w->in.n_contacts].id = id;
	w->rcontacts[w->in.n_contacts].c = c;
	w->in.n_contacts++;
}

static void
add_contacts(world *w, const tcontact *ct)
{
	for (; ct->id != NULL; ct++)
		add_contact(w, ct->id, ct->kind, ct->held, ct->next);
}

static void
conf_get(rules_config *rc, const char *json)
{
	char err[256] = "";

	rules_config_default(rc);
	if (json != NULL)
		cr_assert(rules_config_load_json(rc, json, err, sizeof(err)), "config %s: %s", json,
		          err);
}

/* Evaluates at now (every contact up to now counts as held); *next_eval when wanted. */
static void
evaluate_at(world *w, const rules_config *rc, int64_t now, int64_t *next_eval)
{
	w->n = rules_evaluate(rc, g_tz, &w->in, now, w->out, MAXR, next_eval);
	cr_assert_leq(w->n, MAXR);
}

/* Evaluates when every contact of a scenario has been held. */
static void
evaluate(world *w, const rules_config *rc)
{
	evaluate_at(w, rc, FAR, NULL);
}

static const rules_reminder *
find(const world *w, const char *reminder_id)
{
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->out[i].reminder_id, reminder_id) == 0)
			return &w->out[i];
	}
	return NULL;
}

static size_t
count_rule(const world *w, rule_id r)
{
	size_t n = 0;

	for (size_t i = 0; i < w->n; i++)
		n += w->out[i].rule == r;
	return n;
}

static const char *
state_name(int s)
{
	static const char *const names[] = {"SCHEDULED", "WARNING", "DUE",
	                                    "OVERDUE",   "MET",     "CANCELLED"};

	return s == NONE ? "no reminder" : s >= 0 && s < 6 ? names[s] : "?";
}

/* ---- one table per rule ------------------------------------------------- */

/*
 * One scenario: a case (or none), its contacts and a config over the
 * defaults. present == false: the reminder must not exist once every
 * contact was held (not started, or vanished: the caller cancels a reminder
 * that disappears). Otherwise its instants must be exactly these then, and
 * at each at[].now, evaluated at that instant (a contact counts once held:
 * reading 1), its state is as given (NONE: no reminder then).
 */
typedef struct scenario {
	const char *what;
	const char *conf;
	bool no_case; /* the case is deleted or not (yet) known */
	tcase cs;
	tcontact ct[MAXC];
	const char *occ; /* contact id of the occurrence (parent-session, network-meeting) */
	bool present;
	int64_t start, warning, due_day, due_at;
	struct {
		int64_t now;
		int state;
	} at[MAXAT]; /* until now == 0 */
} scenario;

static void
run_scenarios(rule_id r, const scenario *sc, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const scenario *s = &sc[i];
		world w;
		rules_config rc;
		char id[RULES_ID_MAX];
		const rules_reminder *rem;

		world_init(&w);
		if (!s->no_case)
			add_case(&w, &s->cs);
		add_contacts(&w, s->ct);
		conf_get(&rc, s->conf);
		evaluate(&w, &rc);
		if (s->occ != NULL)
			snprintf(id, sizeof(id), "%s/%s/%s", rule_name(r), CASE_ID, s->occ);
		else
			snprintf(id, sizeof(id), "%s/%s", rule_name(r), CASE_ID);
		rem = find(&w, id);
		if (!s->present) {
			cr_expect_null(rem, "%s: %s: expected no reminder", id, s->what);
			continue;
		}
		cr_assert_not_null(rem, "%s: %s: expected a reminder", id, s->what);
		cr_expect_eq(rem->rule, r, "%s: %s: rule", id, s->what);
		cr_expect_eq(rem->start_ms, s->start, "%s: %s: start %lld, expected %lld", id,
		             s->what, (long long)rem->start_ms, (long long)s->start);
		cr_expect_eq(rem->warning_at_ms, s->warning, "%s: %s: warning %lld, expected %lld",
		             id, s->what, (long long)rem->warning_at_ms, (long long)s->warning);
		cr_expect_eq(rem->due_day_ms, s->due_day, "%s: %s: due day %lld, expected %lld", id,
		             s->what, (long long)rem->due_day_ms, (long long)s->due_day);
		cr_expect_eq(rem->due_at_ms, s->due_at, "%s: %s: due %lld, expected %lld", id,
		             s->what, (long long)rem->due_at_ms, (long long)s->due_at);
		cr_expect_str_eq(rem->contact_person, s->cs.person ? s->cs.person : "staff-7",
		                 "%s: %s: contact person", id, s->what);
		for (int k = 0; k < MAXAT && s->at[k].now != 0; k++) {
			const rules_reminder *then;
			int got;

			evaluate_at(&w, &rc, s->at[k].now, NULL);
			then = find(&w, id);
			got = then != NULL ? (int)rules_state_at(then, s->at[k].now) : NONE;

			cr_expect_eq(got, s->at[k].state, "%s: %s: at %lld: %s, expected %s", id,
			             s->what, (long long)s->at[k].now, state_name(got),
			             state_name(s->at[k].state));
		}
	}
}

#define RUN(r, table) run_scenarios(r, table, sizeof(table) / sizeof(table[0]))

Test(rules, oracle)
{
	/* computed with Python's zoneinfo, independently of this file and of calendar.c */
	cr_assert_eq(L(2026, 3, 24, 15, 0), REF_MS);
	cr_assert_eq(D(2026, 4, 1), 1774994400000LL);  /* +02:00 */
	cr_assert_eq(D(2026, 3, 30), 1774821600000LL); /* +02:00 */
	cr_assert_eq(L(2026, 10, 20, 10, 0), 1792483200000LL);
	cr_assert_eq(D(2026, 10, 28), 1793142000000LL); /* +01:00 */
	cr_assert_eq(L(2026, 3, 29, 1, 59),
	             1774745940000LL); /* +01:00, a minute before the switch */
	cr_assert_eq(L(2026, 3, 29, 3, 0), 1774746000000LL); /* +02:00, the switch */
}

Test(rules, quick_help)
{
	const int64_t first = REF_MS; /* Tuesday 2026-03-24 15:00 +01:00 */
	const scenario sc[] = {
		{.what = "no first contact yet", .cs = {.first = 0}},
		{.what = "the case is deleted", .no_case = true, .cs = {.first = first}},
		{.what = "disabled",
	         .conf = "{\"quick-help\": {\"enabled\": false}}",
	         .cs = {.first = first}},
		/* 7 days after the 24th: the end of the 31st, after the switch to summer time */
		{.what = "first contact, no talk yet",
	         .cs = {.first = first},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{first, SCH},
	                {L(2026, 3, 29, 23, 59), SCH},
	                {D(2026, 3, 30), WARN},
	                {D(2026, 3, 31) - 1, WARN},
	                {D(2026, 3, 31), DUE},
	                {D(2026, 4, 1) - 1, DUE},
	                {D(2026, 4, 1), OVER},
	                {L(2026, 6, 1, 12, 0), OVER}}},
		/* reading 1: not met before the talk is held */
		{.what = "a counselling talk two days later",
	         .cs = {.first = first},
	         .ct = {{"k1", CO, L(2026, 3, 26, 10, 0), 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{first, SCH},
	                {L(2026, 3, 26, 10, 0) - 1, SCH},
	                {L(2026, 3, 26, 10, 0), MET},
	                {D(2026, 4, 1), MET}}},
		{.what = "any kind of contact meets it",
	         .cs = {.first = first},
	         .ct = {{"k1", NM, L(2026, 3, 25, 18, 0), 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{D(2026, 4, 2), MET}}},
		{.what = "a talk at the first contact itself",
	         .cs = {.first = first},
	         .ct = {{"k1", CO, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{first, MET}}},
		/* reading 2: a talk earlier on the day of the first contact counts */
		{.what = "a talk earlier that day counts",
	         .cs = {.first = first},
	         .ct = {{"k1", CO, D(2026, 3, 24), 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{first, MET}, {D(2026, 4, 1), MET}}},
		{.what = "a talk the day before the first contact does not count",
	         .cs = {.first = first},
	         .ct = {{"k1", CO, D(2026, 3, 24) - 1, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{first, SCH}, {D(2026, 4, 1), OVER}}},
		{.what = "a talk only planned (not held) does not count",
	         .cs = {.first = first},
	         .ct = {{"k1", CO, 0, L(2026, 3, 27, 10, 0)}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 30),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{D(2026, 3, 31), DUE}}},
		{.what = "configured: 10 days, no warning",
	         .conf = "{\"quick-help\": {\"due\": \"10 days\", \"warning\": \"none\"}}",
	         .cs = {.first = first},
	         .present = true,
	         .start = first,
	         .warning = 0,
	         .due_day = D(2026, 4, 3),
	         .due_at = D(2026, 4, 4),
	         .at = {{D(2026, 4, 2), SCH}, {D(2026, 4, 3), DUE}, {D(2026, 4, 4), OVER}}},
		/* the autumn switch: 2026-10-25; 7 days after the 20th ends at +01:00 */
		{.what = "across the October switch",
	         .cs = {.first = L(2026, 10, 20, 10, 0)},
	         .present = true,
	         .start = L(2026, 10, 20, 10, 0),
	         .warning = D(2026, 10, 26),
	         .due_day = D(2026, 10, 27),
	         .due_at = D(2026, 10, 28),
	         .at = {{L(2026, 10, 25, 23, 0), SCH},
	                {D(2026, 10, 26), WARN},
	                {D(2026, 10, 27), DUE},
	                {D(2026, 10, 28), OVER}}},
		/* a first contact late in the evening: the local date, not the UTC date, counts */
		{.what = "first contact at 00:30 local (23:30 UTC the day before)",
	         .cs = {.first = L(2026, 1, 10, 0, 30)},
	         .present = true,
	         .start = L(2026, 1, 10, 0, 30),
	         .warning = D(2026, 1, 16),
	         .due_day = D(2026, 1, 17),
	         .due_at = D(2026, 1, 18)},
	};

	RUN(RULE_QUICK_HELP, sc);
	/* the explicit instants of the brief: the due is 2026-03-31 22:00 UTC */
	cr_assert_eq(D(2026, 4, 1), 1774994400000LL);
}

Test(rules, quick_help_talk_learned_late)
{
	/* a talk held offline on day 5 that the daemon learns of on day 9 */
	const int64_t first = REF_MS, day9 = L(2026, 4, 2, 11, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.first = first});
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert_eq(rules_state_at(r, L(2026, 3, 29, 10, 0)), SCH);
	cr_assert_eq(rules_state_at(r, day9), OVER, "before the talk is known it is overdue");

	add_contact(&w, "late-talk", CO, L(2026, 3, 29, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert(r->met);
	cr_assert_eq(rules_state_at(r, day9), MET,
	             "the deadline follows the data, not the arrival");
	cr_assert_eq(rules_next_change(r, day9), 0);
}

static void
copy_contacts(tcontact *dst, const tcontact *src, const tcontact *extra)
{
	size_t n = 0;

	for (; src->id != NULL; src++)
		dst[n++] = *src;
	for (; extra != NULL && extra->id != NULL; extra++)
		dst[n++] = *extra;
	cr_assert_lt(n, MAXC);
	dst[n].id = NULL;
}

Test(rules, counselling_limit)
{
	const tcontact five[] = {
		/* out of order on purpose: the 5th by held_at is the 24th */
		{"k3", CO, L(2026, 3, 16, 10, 0), 0}, {"k5", CO, REF_MS, 0},
		{"k1", CO, L(2026, 3, 2, 10, 0), 0},  {"k4", CO, L(2026, 3, 23, 10, 0), 0},
		{"k2", CO, L(2026, 3, 9, 10, 0), 0},  {NULL, 0, 0, 0},
	};
	const tcontact sixth[] = {{"k6", CO, L(2026, 3, 30, 10, 0), 0}, {NULL, 0, 0, 0}};
	const tcontact unheld[] = {{"k6", CO, 0, L(2026, 4, 1, 10, 0)}, {NULL, 0, 0, 0}};
	const tcontact treat[] = {{"t1", TR, L(2026, 3, 25, 10, 0), 0}, {NULL, 0, 0, 0}};
	scenario sc[] = {
		{.what = "four talks", .cs = {.track = T_COUNSELLING}},
		{.what = "five talks",
	         .cs = {.track = T_COUNSELLING},
	         .present = true,
	         .start = REF_MS,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         /* reading 1: no reminder before the 5th talk is held (a talk entered ahead) */
	         .at = {{L(2026, 3, 23, 12, 0), NONE},
	                {D(2026, 3, 24), NONE},
	                {REF_MS - 1, NONE},
	                {REF_MS, DUE},
	                {D(2026, 3, 25), OVER}}},
		{.what = "six talks: the 5th by held_at starts it",
	         .cs = {.track = T_COUNSELLING},
	         .present = true,
	         .start = REF_MS,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{REF_MS, DUE}}},
		{.what = "configured: due 3 days after, warning 2 days before",
	         .conf = "{\"counselling-limit\": {\"due\": \"3 days\", \"warning\": \"2 days\"}}",
	         .cs = {.track = T_COUNSELLING},
	         .present = true,
	         .start = REF_MS,
	         .warning = D(2026, 3, 26),
	         .due_day = D(2026, 3, 27),
	         .due_at = D(2026, 3, 28),
	         .at = {{REF_MS, SCH},
	                {D(2026, 3, 26), WARN},
	                {D(2026, 3, 27), DUE},
	                {D(2026, 3, 28), OVER}}},
		{.what = "configured count 3: the 3rd talk",
	         .conf = "{\"counselling-limit\": {\"count\": 3}}",
	         .cs = {.track = T_COUNSELLING},
	         .present = true,
	         .start = L(2026, 3, 16, 10, 0),
	         .warning = 0,
	         .due_day = D(2026, 3, 16),
	         .due_at = D(2026, 3, 17)},
		{.what = "met: moved to an individual course",
	         .cs = {.track = T_INDIVIDUAL},
	         .present = true,
	         .start = REF_MS,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{D(2026, 3, 30), MET}}},
		{.what = "met: the case ended",
	         .cs = {.track = T_COUNSELLING, .ended = L(2026, 3, 25, 9, 0)},
	         .present = true,
	         .start = REF_MS,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{D(2026, 3, 30), MET}}},
		{.what = "a talk not held does not count", .cs = {.track = T_COUNSELLING}},
		{.what = "a treatment talk does not count", .cs = {.track = T_COUNSELLING}},
		{.what = "disabled",
	         .conf = "{\"counselling-limit\": {\"enabled\": false}}",
	         .cs = {.track = T_COUNSELLING}},
	};
	copy_contacts(sc[0].ct, five + 1, NULL); /* k5, k1, k4, k2 */
	sc[0].ct[0] = five[0];                   /* k3, k1, k4, k2: no k5 */
	copy_contacts(sc[1].ct, five, NULL);
	copy_contacts(sc[2].ct, sixth, five);
	for (int i = 3; i < 7; i++)
		copy_contacts(sc[i].ct, five, NULL);
	copy_contacts(sc[7].ct, sc[0].ct, unheld);
	copy_contacts(sc[8].ct, sc[0].ct, treat);
	copy_contacts(sc[9].ct, five, NULL);
	RUN(RULE_COUNSELLING_LIMIT, sc);
}

Test(rules, treatment_start)
{
	const int64_t last = L(2026, 4, 7, 10, 0); /* the last counselling talk */
	/* 4 weeks after the 7th: the end of 5 May; a week before: the end of 28 April */
	const scenario sc[] = {
		{.what = "counselling track",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"k1", CO, L(2026, 4, 1, 10, 0), 0}, {"k2", CO, last, 0}}},
		{.what = "individual track, no counselling talk yet",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"t0", TR, L(2026, 4, 1, 10, 0), 0}}},
		{.what = "individual track after two talks",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"k2", CO, last, 0}, {"k1", CO, L(2026, 4, 1, 10, 0), 0}},
	         .present = true,
	         .start = last,
	         .warning = D(2026, 4, 29),
	         .due_day = D(2026, 5, 5),
	         .due_at = D(2026, 5, 6),
	         .at = {{L(2026, 4, 7, 12, 0), SCH},
	                {D(2026, 4, 29) - 1, SCH},
	                {D(2026, 4, 29), WARN},
	                {D(2026, 5, 5), DUE},
	                {D(2026, 5, 6), OVER}}},
		{.what = "met: a treatment talk after the last counselling talk",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"k1", CO, L(2026, 4, 1, 10, 0), 0},
	                {"k2", CO, last, 0},
	                {"t1", TR, L(2026, 4, 21, 10, 0), 0}},
	         .present = true,
	         .start = last,
	         .warning = D(2026, 4, 29),
	         .due_day = D(2026, 5, 5),
	         .due_at = D(2026, 5, 6),
	         .at = {{D(2026, 5, 6), MET}}},
		{.what = "a treatment talk before the last counselling talk does not meet it",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"t1", TR, L(2026, 4, 5, 10, 0), 0},
	                {"k1", CO, L(2026, 4, 1, 10, 0), 0},
	                {"k2", CO, last, 0}},
	         .present = true,
	         .start = last,
	         .warning = D(2026, 4, 29),
	         .due_day = D(2026, 5, 5),
	         .due_at = D(2026, 5, 6),
	         .at = {{D(2026, 5, 5), DUE}}},
		{.what = "a treatment talk at the same instant is not after it",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"k2", CO, last, 0}, {"t1", TR, last, 0}},
	         .present = true,
	         .start = last,
	         .warning = D(2026, 4, 29),
	         .due_day = D(2026, 5, 5),
	         .due_at = D(2026, 5, 6),
	         .at = {{D(2026, 5, 6), OVER}}},
		{.what = "vanishes: the track changes to group",
	         .cs = {.track = T_GROUP},
	         .ct = {{"k1", CO, L(2026, 4, 1, 10, 0), 0}, {"k2", CO, last, 0}}},
		{.what = "disabled",
	         .conf = "{\"treatment-start\": {\"enabled\": false}}",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"k2", CO, last, 0}}},
	};

	RUN(RULE_TREATMENT_START, sc);
}

Test(rules, treatment_window)
{
	const int64_t first = L(2026, 5, 31, 10, 0);
	/* 9 months after 31 May: 31 February, clamped to the 28th (2027); a month
	 * before the end of 28 February is the end of 28 January */
	scenario sc[] = {
		{.what = "no treatment talk",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"k1", CO, L(2026, 5, 1, 10, 0), 0}}},
		{.what = "one treatment talk on 31 May",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"t1", TR, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2027, 1, 29),
	         .due_day = D(2027, 2, 28),
	         .due_at = D(2027, 3, 1),
	         .at = {{L(2026, 6, 1, 9, 0), SCH},
	                {D(2027, 1, 29), WARN},
	                {D(2027, 2, 28), DUE},
	                {D(2027, 3, 1), OVER}}},
		{.what = "eleven weekly talks",
	         .cs = {.track = T_INDIVIDUAL},
	         .present = true,
	         .start = first,
	         .warning = D(2027, 1, 29),
	         .due_day = D(2027, 2, 28),
	         .due_at = D(2027, 3, 1)},
		/* the 12th weekly talk: 16 August; due at once; a month before: the end of 16 July */
		{.what = "twelve weekly talks: due at the 12th",
	         .cs = {.track = T_INDIVIDUAL},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 7, 17),
	         .due_day = D(2026, 8, 16),
	         .due_at = D(2026, 8, 17),
	         /* reading 1: before the 12th talk is held the due is 9 months after */
	         .at = {{L(2026, 7, 16, 12, 0), SCH},
	                {D(2026, 7, 17), SCH},
	                {L(2026, 8, 16, 10, 0), DUE},
	                {D(2026, 8, 17), OVER}}},
		{.what = "twelve monthly talks: the 12th after 9 months does not move it",
	         .cs = {.track = T_INDIVIDUAL},
	         .present = true,
	         .start = first,
	         .warning = D(2027, 1, 29),
	         .due_day = D(2027, 2, 28),
	         .due_at = D(2027, 3, 1)},
		{.what = "configured count 3: due at the 3rd weekly talk (14 June)",
	         .conf = "{\"treatment-window\": {\"count\": 3}}",
	         .cs = {.track = T_INDIVIDUAL},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 5, 15),
	         .due_day = D(2026, 6, 14),
	         .due_at = D(2026, 6, 15)},
		{.what = "met: the case ended",
	         .cs = {.track = T_INDIVIDUAL, .ended = L(2026, 12, 1, 10, 0)},
	         .ct = {{"t1", TR, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2027, 1, 29),
	         .due_day = D(2027, 2, 28),
	         .due_at = D(2027, 3, 1),
	         .at = {{D(2027, 3, 1), MET}}},
		{.what = "vanishes: the talk is deleted", .cs = {.track = T_INDIVIDUAL}},
		{.what = "disabled",
	         .conf = "{\"treatment-window\": {\"enabled\": false}}",
	         .cs = {.track = T_INDIVIDUAL},
	         .ct = {{"t1", TR, first, 0}}},
	};
	static const int monthly[12][3] = {
		{2026, 5, 31}, {2026, 6, 30},  {2026, 7, 31},  {2026, 8, 31},
		{2026, 9, 30}, {2026, 10, 31}, {2026, 11, 30}, {2026, 12, 31},
		{2027, 1, 31}, {2027, 2, 28},  {2027, 3, 31},  {2027, 4, 30},
	};
	static const char *const ids[12] = {"t1", "t2", "t3", "t4",  "t5",  "t6",
	                                    "t7", "t8", "t9", "t10", "t11", "t12"};

	for (int i = 0; i < 12; i++) {
		/* weekly from 31 May, listed backwards */
		int64_t weekly = first + (int64_t)i * 7 * 86400000;

		if (i < 11)
			sc[2].ct[10 - i] = (tcontact){ids[i], TR, weekly, 0};
		sc[3].ct[11 - i] = (tcontact){ids[i], TR, weekly, 0};
		if (i < 3)
			sc[5].ct[i] = (tcontact){ids[i], TR, weekly, 0};
		sc[4].ct[i] = (tcontact){ids[i], TR,
		                         L(monthly[i][0], monthly[i][1], monthly[i][2], 10, 0), 0};
	}
	/* the weekly talks stay at 10:00: no switch between 31 May and 16 August */
	cr_assert_eq(first + 11LL * 7 * 86400000, L(2026, 8, 16, 10, 0));
	RUN(RULE_TREATMENT_WINDOW, sc);
}

Test(rules, group_course)
{
	const int64_t first = REF_MS;
	/* 3 months after 24 March: the end of 24 June; 2 weeks before: the end of 10 June */
	const scenario sc[] = {
		{.what = "no group session", .cs = {.track = T_GROUP}},
		{.what = "a group session planned, not held",
	         .cs = {.track = T_GROUP},
	         .ct = {{"g1", GS, 0, first}}},
		{.what = "the first session",
	         .cs = {.track = T_GROUP},
	         .ct = {{"g1", GS, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 6, 11),
	         .due_day = D(2026, 6, 24),
	         .due_at = D(2026, 6, 25),
	         .at = {{first, SCH},
	                {D(2026, 6, 11), WARN},
	                {D(2026, 6, 24), DUE},
	                {D(2026, 6, 25), OVER}}},
		{.what = "later sessions do not move it",
	         .cs = {.track = T_GROUP},
	         .ct = {{"g2", GS, L(2026, 3, 31, 15, 0), 0},
	                {"g1", GS, first, 0},
	                {"g3", GS, L(2026, 4, 7, 15, 0), 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 6, 11),
	         .due_day = D(2026, 6, 24),
	         .due_at = D(2026, 6, 25)},
		{.what = "met: the case ended",
	         .cs = {.track = T_GROUP, .ended = L(2026, 6, 20, 12, 0)},
	         .ct = {{"g1", GS, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 6, 11),
	         .due_day = D(2026, 6, 24),
	         .due_at = D(2026, 6, 25),
	         .at = {{D(2026, 7, 1), MET}}},
		{.what = "vanishes: the session is deleted",
	         .cs = {.track = T_GROUP},
	         .ct = {{"k1", CO, first, 0}}},
		{.what = "disabled",
	         .conf = "{\"group-course\": {\"enabled\": false}}",
	         .cs = {.track = T_GROUP},
	         .ct = {{"g1", GS, first, 0}}},
	};

	RUN(RULE_GROUP_COURSE, sc);
}

Test(rules, parent_session)
{
	const int64_t p1 = REF_MS, p2 = L(2026, 4, 7, 15, 0);
	/* 14 days after 24 March: the end of 7 April (the switch lies between) */
	const scenario sc[] = {
		{.what = "no parent session", .cs = {.track = T_PARENT}, .occ = "p1"},
		{.what = "the first session",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p1", PS, p1, 0}},
	         .occ = "p1",
	         .present = true,
	         .start = p1,
	         .warning = D(2026, 4, 6),
	         .due_day = D(2026, 4, 7),
	         .due_at = D(2026, 4, 8),
	         .at = {{p1, SCH},
	                {D(2026, 4, 6), WARN},
	                {D(2026, 4, 7), DUE},
	                {D(2026, 4, 8), OVER}}},
		{.what = "the second session meets the first",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p2", PS, p2, 0}, {"p1", PS, p1, 0}},
	         .occ = "p1",
	         .present = true,
	         .start = p1,
	         .warning = D(2026, 4, 6),
	         .due_day = D(2026, 4, 7),
	         .due_at = D(2026, 4, 8),
	         .at = {{D(2026, 4, 8), MET}}},
		{.what = "the second session starts the next",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p2", PS, p2, 0}, {"p1", PS, p1, 0}},
	         .occ = "p2",
	         .present = true,
	         .start = p2,
	         .warning = D(2026, 4, 20),
	         .due_day = D(2026, 4, 21),
	         .due_at = D(2026, 4, 22),
	         .at = {{p2, SCH},
	                {D(2026, 4, 20), WARN},
	                {D(2026, 4, 21), DUE},
	                {D(2026, 4, 22), OVER}}},
		{.what = "a case ended: the met occurrence stays",
	         .cs = {.track = T_PARENT, .ended = L(2026, 4, 10, 9, 0)},
	         .ct = {{"p1", PS, p1, 0}, {"p2", PS, p2, 0}},
	         .occ = "p1",
	         .present = true,
	         .start = p1,
	         .warning = D(2026, 4, 6),
	         .due_day = D(2026, 4, 7),
	         .due_at = D(2026, 4, 8),
	         .at = {{D(2026, 4, 8), MET}}},
		{.what = "vanishes: the case ended, the last one goes",
	         .cs = {.track = T_PARENT, .ended = L(2026, 4, 10, 9, 0)},
	         .ct = {{"p1", PS, p1, 0}, {"p2", PS, p2, 0}},
	         .occ = "p2"},
		{.what = "two sessions at one instant: ordered by id, p1 met",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p2", PS, p1, 0}, {"p1", PS, p1, 0}},
	         .occ = "p1",
	         .present = true,
	         .start = p1,
	         .warning = D(2026, 4, 6),
	         .due_day = D(2026, 4, 7),
	         .due_at = D(2026, 4, 8),
	         .at = {{p1, MET}}},
		{.what = "two sessions at one instant: p2 is the last",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p2", PS, p1, 0}, {"p1", PS, p1, 0}},
	         .occ = "p2",
	         .present = true,
	         .start = p1,
	         .warning = D(2026, 4, 6),
	         .due_day = D(2026, 4, 7),
	         .due_at = D(2026, 4, 8),
	         .at = {{p1, SCH}}},
		{.what = "a session not held makes no occurrence",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p1", PS, p1, 0}, {"p2", PS, 0, p2}},
	         .occ = "p2"},
		{.what = "disabled",
	         .conf = "{\"parent-session\": {\"enabled\": false}}",
	         .cs = {.track = T_PARENT},
	         .ct = {{"p1", PS, p1, 0}},
	         .occ = "p1"},
	};

	RUN(RULE_PARENT_SESSION, sc);
}

Test(rules, parent_session_occurrences)
{
	rules_config rc;
	world w;
	const rules_reminder *r1, *r2;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.track = T_PARENT});
	add_contact(&w, "p1", PS, REF_MS, 0);
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_PARENT_SESSION), 1);
	cr_assert_not_null(r1 = find(&w, "parent-session/" CASE_ID "/p1"));
	cr_assert_eq(rules_state_at(r1, D(2026, 4, 7)), DUE);

	/* the second session is held on 7 April: p1 turns MET, p2 starts */
	add_contact(&w, "p2", PS, L(2026, 4, 7, 15, 0), 0);
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_PARENT_SESSION), 2);
	cr_assert_not_null(r1 = find(&w, "parent-session/" CASE_ID "/p1"));
	cr_assert_not_null(r2 = find(&w, "parent-session/" CASE_ID "/p2"));
	cr_assert_eq(rules_state_at(r1, L(2026, 4, 7, 16, 0)), MET);
	cr_assert_eq(rules_state_at(r2, L(2026, 4, 7, 16, 0)), SCH);
	cr_assert_eq(r2->due_at_ms, D(2026, 4, 22));
}

Test(rules, network_meeting)
{
	const int64_t held = REF_MS, next = L(2026, 4, 7, 10, 0);
	/* due at next_at itself; the due day is the 7th; reading 4: 2 days before
	 * the day holding the meeting: from the start of the 5th */
	const scenario sc[] = {
		{.what = "no next meeting agreed",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, 0}},
	         .occ = "n1"},
		{.what = "next meeting agreed",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, next}},
	         .occ = "n1",
	         .present = true,
	         .start = held,
	         .warning = D(2026, 4, 5),
	         .due_day = D(2026, 4, 7),
	         .due_at = next,
	         .at = {{D(2026, 4, 5) - 1, SCH},
	                {D(2026, 4, 5), WARN},
	                {D(2026, 4, 6), WARN},
	                {D(2026, 4, 7), DUE},
	                {next - 1, DUE},
	                {next, OVER},
	                {L(2026, 4, 8, 12, 0), OVER}}},
		{.what = "met: the meeting held half an hour late",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, next}, {"n2", NM, L(2026, 4, 7, 10, 30), 0}},
	         .occ = "n1",
	         .present = true,
	         .start = held,
	         .warning = D(2026, 4, 5),
	         .due_day = D(2026, 4, 7),
	         .due_at = next,
	         .at = {{L(2026, 4, 7, 11, 0), MET}}},
		{.what = "met: held at next_at exactly, any kind",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"k1", CO, next, 0}, {"n1", NM, held, next}},
	         .occ = "n1",
	         .present = true,
	         .start = held,
	         .warning = D(2026, 4, 5),
	         .due_day = D(2026, 4, 7),
	         .due_at = next,
	         .at = {{next, MET}}},
		{.what = "a meeting an hour early does not meet it",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, next}, {"n2", NM, L(2026, 4, 7, 9, 0), 0}},
	         .occ = "n1",
	         .present = true,
	         .start = held,
	         .warning = D(2026, 4, 5),
	         .due_day = D(2026, 4, 7),
	         .due_at = next,
	         .at = {{next, OVER}}},
		{.what = "next_at on a contact not held: starts at next_at",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, 0, next}},
	         .occ = "n1",
	         .present = true,
	         .start = next,
	         .warning = D(2026, 4, 5),
	         .due_day = D(2026, 4, 7),
	         .due_at = next,
	         .at = {{D(2026, 4, 7), DUE}}},
		{.what = "the meeting that set it carries its own next_at",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, next},
	                {"n2", NM, L(2026, 4, 7, 10, 30), L(2026, 4, 21, 13, 0)}},
	         .occ = "n2",
	         .present = true,
	         .start = L(2026, 4, 7, 10, 30),
	         .warning = D(2026, 4, 19),
	         .due_day = D(2026, 4, 21),
	         .due_at = L(2026, 4, 21, 13, 0),
	         .at = {{D(2026, 4, 20), WARN}}},
		{.what = "vanishes: next_at cleared",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, 0}, {"n2", NM, L(2026, 4, 7, 10, 30), 0}},
	         .occ = "n1"},
		{.what = "disabled",
	         .conf = "{\"network-meeting\": {\"enabled\": false}}",
	         .cs = {.track = T_COUNSELLING},
	         .ct = {{"n1", NM, held, next}},
	         .occ = "n1"},
	};

	RUN(RULE_NETWORK_MEETING, sc);
}

Test(rules, follow_up)
{
	const int64_t ended = L(2025, 11, 30, 14, 0), leap_end = L(2027, 11, 30, 14, 0);
	/* 3 months after 30 November: 30 February, clamped to the 28th (29th in
	 * 2028); reading 5: the window opens at the start of the date 1 month
	 * after the end: 00:00 on 30 December */
	const scenario sc[] = {
		{.what = "case open", .cs = {.track = T_INDIVIDUAL}},
		{.what = "counselling ended, no follow-up wanted",
	         .cs = {.track = T_COUNSELLING, .ended = ended}},
		{.what = "individual course ended 30 November",
	         .cs = {.track = T_INDIVIDUAL, .ended = ended},
	         .present = true,
	         .start = ended,
	         .warning = D(2025, 12, 30),
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1),
	         .at = {{L(2025, 12, 1, 9, 0), SCH},
	                {D(2025, 12, 30) - 1, SCH},
	                {D(2025, 12, 30), WARN},
	                {D(2026, 2, 28), DUE},
	                {D(2026, 3, 1) - 1, DUE},
	                {D(2026, 3, 1), OVER}}},
		{.what = "leap year: ended 30 November 2027, due the end of 29 February",
	         .cs = {.track = T_GROUP, .ended = leap_end},
	         .present = true,
	         .start = leap_end,
	         .warning = D(2027, 12, 30),
	         .due_day = D(2028, 2, 29),
	         .due_at = D(2028, 3, 1),
	         .at = {{D(2028, 2, 28), WARN}, {D(2028, 2, 29), DUE}, {D(2028, 3, 1), OVER}}},
		{.what = "counselling ended, follow-up wanted",
	         .cs = {.track = T_COUNSELLING, .ended = ended, .follow_up_wanted = true},
	         .present = true,
	         .start = ended,
	         .warning = D(2025, 12, 30),
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1)},
		{.what = "met: a follow-up talk in January",
	         .cs = {.track = T_PARENT, .ended = ended},
	         .ct = {{"f1", FU, L(2026, 1, 15, 10, 0), 0}},
	         .present = true,
	         .start = ended,
	         .warning = D(2025, 12, 30),
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1),
	         .at = {{D(2026, 3, 1), MET}}},
		{.what = "a follow-up talk before the end does not meet it",
	         .cs = {.track = T_INDIVIDUAL, .ended = ended},
	         .ct = {{"f1", FU, ended - 60000, 0}},
	         .present = true,
	         .start = ended,
	         .warning = D(2025, 12, 30),
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1),
	         .at = {{D(2026, 3, 1), OVER}}},
		{.what = "a counselling talk after the end does not meet it",
	         .cs = {.track = T_INDIVIDUAL, .ended = ended},
	         .ct = {{"k1", CO, L(2026, 1, 15, 10, 0), 0}},
	         .present = true,
	         .start = ended,
	         .warning = D(2025, 12, 30),
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1),
	         .at = {{D(2026, 2, 28), DUE}}},
		{.what = "configured: no warning window",
	         .conf = "{\"follow-up\": {\"warning\": null}}",
	         .cs = {.track = T_INDIVIDUAL, .ended = ended},
	         .present = true,
	         .start = ended,
	         .warning = 0,
	         .due_day = D(2026, 2, 28),
	         .due_at = D(2026, 3, 1),
	         .at = {{D(2026, 2, 27), SCH}}},
		{.what = "vanishes: the case is reopened",
	         .cs = {.track = T_INDIVIDUAL, .ended = 0},
	         .ct = {{"k1", CO, L(2026, 1, 15, 10, 0), 0}}},
		{.what = "disabled",
	         .conf = "{\"follow-up\": {\"enabled\": false}}",
	         .cs = {.track = T_INDIVIDUAL, .ended = ended}},
	};

	RUN(RULE_FOLLOW_UP, sc);
}

Test(rules, handover)
{
	const int64_t ended = REF_MS;
	const scenario sc[] = {
		{.what = "open case", .cs = {.further = true}},
		{.what = "ended, no further support needed", .cs = {.ended = ended}},
		{.what = "ended, further support, nobody took over",
	         .cs = {.ended = ended, .further = true},
	         .present = true,
	         .start = ended,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{L(2026, 3, 23, 12, 0), SCH},
	                {ended, DUE},
	                {D(2026, 3, 25) - 1, DUE},
	                {D(2026, 3, 25), OVER}}},
		{.what = "handed over at once: already met",
	         .cs = {.ended = ended, .further = true, .taken_over_by = "PPR"},
	         .present = true,
	         .start = ended,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{ended, MET}, {D(2026, 3, 25), MET}}},
		{.what = "configured: 3 days, warning 2 days before",
	         .conf = "{\"handover\": {\"due\": \"3 days\", \"warning\": \"2 days\"}}",
	         .cs = {.ended = ended, .further = true},
	         .present = true,
	         .start = ended,
	         .warning = D(2026, 3, 26),
	         .due_day = D(2026, 3, 27),
	         .due_at = D(2026, 3, 28),
	         .at = {{ended, SCH},
	                {D(2026, 3, 26), WARN},
	                {D(2026, 3, 27), DUE},
	                {D(2026, 3, 28), OVER}}},
		{.what = "vanishes: the case is reopened", .cs = {.ended = 0, .further = true}},
		{.what = "disabled",
	         .conf = "{\"handover\": {\"enabled\": false}}",
	         .cs = {.ended = ended, .further = true}},
	};

	RUN(RULE_HANDOVER, sc);
}

Test(rules, notification_duty)
{
	const int64_t first = REF_MS;
	const scenario sc[] = {
		{.what = "under 18, no counselling talk yet",
	         .cs = {.under_18 = true},
	         .ct = {{"n1", NM, first, 0}}},
		{.what = "18 or over", .cs = {.under_18 = false}, .ct = {{"k1", CO, first, 0}}},
		{.what = "under 18, the first talk",
	         .cs = {.under_18 = true},
	         .ct = {{"k2", CO, L(2026, 3, 31, 10, 0), 0}, {"k1", CO, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         /* reading 1: no reminder before the first talk is held */
	         .at = {{L(2026, 3, 23, 12, 0), NONE}, {first, DUE}, {D(2026, 3, 25), OVER}}},
		{.what = "met: informed",
	         .cs = {.under_18 = true, .informed = true},
	         .ct = {{"k1", CO, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = 0,
	         .due_day = D(2026, 3, 24),
	         .due_at = D(2026, 3, 25),
	         .at = {{first, MET}}},
		{.what = "configured warning",
	         .conf = "{\"notification-duty\": {\"due\": \"1 weeks\", \"warning\": \"3 days\"}}",
	         .cs = {.under_18 = true},
	         .ct = {{"k1", CO, first, 0}},
	         .present = true,
	         .start = first,
	         .warning = D(2026, 3, 29),
	         .due_day = D(2026, 3, 31),
	         .due_at = D(2026, 4, 1),
	         .at = {{D(2026, 3, 29) - 1, SCH}, {D(2026, 3, 29), WARN}}},
		{.what = "vanishes: not under 18 after all",
	         .cs = {.under_18 = false},
	         .ct = {{"k1", CO, first, 0}}},
		{.what = "disabled",
	         .conf = "{\"notification-duty\": {\"enabled\": false}}",
	         .cs = {.under_18 = true},
	         .ct = {{"k1", CO, first, 0}}},
	};

	RUN(RULE_NOTIFICATION_DUTY, sc);
}

/* ---- conflicts ---------------------------------------------------------- */

Test(rules, case_siblings_disagree_on_first_contact)
{
	rules_config rc;
	world w;
	const rules_reminder *r;
	const tcase a = {.first = REF_MS, .person = "staff-a"};
	const tcase b = {.first = L(2026, 3, 20, 10, 0), .person = "staff-b"};

	conf_get(&rc, NULL);

	/* no talk: the earliest due (sibling b: the end of the 27th) wins */
	world_init(&w);
	add_case(&w, &a);
	add_case(&w, &b);
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_QUICK_HELP), 1);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert_eq(r->start_ms, b.first);
	cr_assert_eq(r->warning_at_ms, D(2026, 3, 26));
	cr_assert_eq(r->due_day_ms, D(2026, 3, 27));
	cr_assert_eq(r->due_at_ms, D(2026, 3, 28));
	cr_assert_not(r->met);
	cr_assert_str_eq(r->contact_person, "staff-b");

	/* a talk on the 22nd meets b only: a's deadline stands */
	add_contact(&w, "k1", CO, L(2026, 3, 22, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert_not(r->met);
	cr_assert_eq(r->start_ms, a.first);
	cr_assert_eq(r->due_at_ms, D(2026, 4, 1));
	cr_assert_str_eq(r->contact_person, "staff-a");
	cr_assert_eq(rules_state_at(r, D(2026, 4, 1)), OVER);

	/* a talk on the 25th meets both: MET, with the earliest due */
	add_contact(&w, "k2", CO, L(2026, 3, 25, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert(r->met);
	cr_assert_eq(r->due_at_ms, D(2026, 3, 28));
	cr_assert_str_eq(r->contact_person, "staff-b");
}

Test(rules, case_siblings_one_ended)
{
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	/* one sibling ended the course with further support needed, the other did not */
	add_case(&w, &(tcase){.track = T_PARENT});
	add_case(&w, &(tcase){.track = T_PARENT, .ended = L(2026, 4, 10, 9, 0), .further = true});
	add_contact(&w, "p1", PS, REF_MS, 0);
	add_contact(&w, "p2", PS, L(2026, 4, 7, 15, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "handover/" CASE_ID), "implied by one sibling is enough");
	cr_assert_not(r->met);
	cr_assert_not_null(r = find(&w, "follow-up/" CASE_ID));
	cr_assert_not_null(r = find(&w, "parent-session/" CASE_ID "/p2"),
	                   "the last session stays while a sibling is open");
	cr_assert_not(r->met);
}

Test(rules, contact_siblings)
{
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);

	/* contact x in conflict: a counselling talk on the 10th, a treatment talk on the 12th */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_INDIVIDUAL, .under_18 = true});
	add_contact(&w, "x", CO, L(2026, 3, 10, 10, 0), 0);
	add_contact(&w, "x", TR, L(2026, 3, 12, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "notification-duty/" CASE_ID), "x counts as counselling");
	cr_assert_eq(r->start_ms, L(2026, 3, 10, 10, 0));
	cr_assert_not_null(r = find(&w, "treatment-window/" CASE_ID), "x counts as treatment");
	cr_assert_eq(r->start_ms, L(2026, 3, 12, 10, 0));
	cr_assert_not_null(r = find(&w, "treatment-start/" CASE_ID));
	cr_assert_eq(r->start_ms, L(2026, 3, 10, 10, 0));
	cr_assert(r->met, "x's treatment sibling is after x's counselling sibling");

	/* two counselling siblings count once, at the earlier time */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_COUNSELLING});
	add_contact(&w, "k1", CO, L(2026, 3, 2, 10, 0), 0);
	add_contact(&w, "x", CO, L(2026, 3, 9, 10, 0), 0);
	add_contact(&w, "k2", CO, L(2026, 3, 3, 10, 0), 0);
	add_contact(&w, "x", CO, L(2026, 3, 5, 10, 0), 0);
	add_contact(&w, "k3", CO, L(2026, 3, 4, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_null(find(&w, "counselling-limit/" CASE_ID), "4 talks, not 5");
	add_contact(&w, "k4", CO, L(2026, 3, 6, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "counselling-limit/" CASE_ID));
	/* 2, 3, 4, 5 (x), 6: the 5th is the 6th; with x at the 9th it would be the 9th */
	cr_assert_eq(r->start_ms, L(2026, 3, 6, 10, 0));

	/* a parent session in conflict is one occurrence, from its earlier time */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_PARENT});
	add_contact(&w, "p1", PS, L(2026, 3, 26, 15, 0), 0);
	add_contact(&w, "p1", PS, REF_MS, 0);
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_PARENT_SESSION), 1);
	cr_assert_not_null(r = find(&w, "parent-session/" CASE_ID "/p1"));
	cr_assert_eq(r->start_ms, REF_MS);
	cr_assert_not(r->met);

	/* siblings of one meeting agreeing on different next meetings */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_COUNSELLING});
	add_contact(&w, "n1", NM, REF_MS, L(2026, 4, 14, 10, 0));
	add_contact(&w, "n1", NM, REF_MS, L(2026, 4, 7, 10, 0));
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_NETWORK_MEETING), 1);
	cr_assert_not_null(r = find(&w, "network-meeting/" CASE_ID "/n1"));
	cr_assert_eq(r->due_at_ms, L(2026, 4, 7, 10, 0), "the earliest next_at wins");
	cr_assert_not(r->met);
	add_contact(&w, "n2", NM, L(2026, 4, 7, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "network-meeting/" CASE_ID "/n1"));
	cr_assert_eq(r->due_at_ms, L(2026, 4, 14, 10, 0),
	             "the other sibling's meeting is still ahead");
	cr_assert_not(r->met);
	add_contact(&w, "n3", NM, L(2026, 4, 14, 10, 0), 0);
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "network-meeting/" CASE_ID "/n1"));
	cr_assert(r->met);
	cr_assert_eq(r->due_at_ms, L(2026, 4, 7, 10, 0));
}

/* ---- the whole case ----------------------------------------------------- */

/* A case ended on 1 June that implies all ten rules. */
static void
world_full(world *w)
{
	world_init(w);
	add_case(w, &(tcase){.first = L(2026, 1, 5, 9, 0),
	                     .ended = L(2026, 6, 1, 12, 0),
	                     .track = T_INDIVIDUAL,
	                     .under_18 = true,
	                     .further = true});
	for (int i = 0; i < 5; i++) {
		static const char *const ids[] = {"k1", "k2", "k3", "k4", "k5"};

		add_contact(w, ids[i], CO, L(2026, 1, 6 + i, 10, 0), 0);
	}
	add_contact(w, "t1", TR, L(2026, 2, 2, 10, 0), 0);
	add_contact(w, "g1", GS, L(2026, 2, 3, 10, 0), 0);
	add_contact(w, "p1", PS, L(2026, 2, 4, 10, 0), 0);
	add_contact(w, "p2", PS, L(2026, 2, 18, 10, 0), 0);
	add_contact(w, "n1", NM, L(2026, 2, 5, 10, 0), L(2026, 2, 19, 10, 0));
	/* the meeting agreed at n1 was held: met, so the end does not cancel it (reading 3) */
	add_contact(w, "n2", NM, L(2026, 2, 19, 10, 0), 0);
}

Test(rules, all_rules_and_disabling_each)
{
	rules_config rc;
	world w;

	conf_get(&rc, NULL);
	world_full(&w);
	evaluate(&w, &rc);
	cr_assert_eq(w.n, 10);
	for (int r = 0; r < RULE_COUNT; r++)
		cr_assert_eq(count_rule(&w, (rule_id)r), 1, "%s", rule_name((rule_id)r));
	cr_assert_not_null(find(&w, "parent-session/" CASE_ID "/p1"));
	cr_assert_null(find(&w, "parent-session/" CASE_ID "/p2"), "the case ended");

	for (int r = 0; r < RULE_COUNT; r++) {
		conf_get(&rc, NULL);
		rc.rule[r].enabled = false;
		evaluate(&w, &rc);
		cr_assert_eq(w.n, 9, "%s disabled", rule_name((rule_id)r));
		cr_assert_eq(count_rule(&w, (rule_id)r), 0, "%s disabled", rule_name((rule_id)r));
	}
}

Test(rules, no_case_no_reminders)
{
	rules_config rc;
	world w;

	conf_get(&rc, NULL);
	world_full(&w);
	w.in.n_cases = 0;
	evaluate(&w, &rc);
	cr_assert_eq(w.n, 0);
	w.in.cases = NULL;
	evaluate(&w, &rc);
	cr_assert_eq(w.n, 0);
}

Test(rules, cap_counts_everything_writes_cap)
{
	rules_config rc;
	world w;
	rules_reminder few[3];
	size_t n;

	conf_get(&rc, NULL);
	world_full(&w);
	evaluate(&w, &rc);
	memset(few, 0x5a, sizeof(few));
	n = rules_evaluate(&rc, g_tz, &w.in, FAR, few, 3, NULL);
	cr_assert_eq(n, 10);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(memcmp(&few[i], &w.out[i], sizeof(few[i])), 0, "reminder %d", i);
	cr_assert_eq(rules_evaluate(&rc, g_tz, &w.in, FAR, NULL, 0, NULL), 10);
}

Test(rules, reminder_id_too_long_is_skipped)
{
	rules_config rc;
	world w;
	char case_id[291];

	/* "handover/" + 290 = 299 bytes fits in RULES_ID_MAX (300) with its NUL;
	 * "quick-help/" + 290 = 301 does not */
	memset(case_id, 'c', 290);
	case_id[290] = '\0';
	conf_get(&rc, NULL);
	world_full(&w);
	w.in.case_id = case_id;
	evaluate(&w, &rc);
	cr_assert_eq(count_rule(&w, RULE_HANDOVER), 1);
	cr_assert_eq(strlen(w.out[0].reminder_id), 299);
	cr_assert_eq(count_rule(&w, RULE_QUICK_HELP), 0);
	cr_assert_eq(w.n, 1, "every other rule name is longer than \"handover\"");
}

Test(rules, contact_person_kept_or_empty)
{
	rules_config rc;
	world w;
	char long_id[200];

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.first = REF_MS, .person = ""});
	evaluate(&w, &rc);
	cr_assert_eq(w.n, 1);
	cr_assert_str_eq(w.out[0].contact_person, "");

	/* a staff id that does not fit is left out, never cut into another id */
	memset(long_id, 's', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	w.cases[0].contact_person = long_id;
	evaluate(&w, &rc);
	cr_assert_eq(w.n, 1);
	cr_assert_str_eq(w.out[0].contact_person, "");
}

Test(rules, thousands_of_contacts, .timeout = 60)
{
	enum { N = 3000 };
	static Fieldsync__V1__Contact c[N];
	static rules_contact rc_[N];
	static char ids[N][16];
	static rules_reminder out[1200];
	Fieldsync__V1__Case cs;
	const Fieldsync__V1__Case *csp = &cs;
	rules_input in = {
		.case_id = CASE_ID, .cases = &csp, .n_cases = 1, .contacts = rc_, .n_contacts = N};
	rules_config rc;
	const rules_reminder *r = NULL;
	size_t n, parents = 0, meetings = 0;

	fieldsync__v1__case__init(&cs);
	cs.track = T_COUNSELLING;
	/* 2000 counselling talks, hourly and listed backwards, every one present as two
	 * siblings (1000 ids); 500 parent sessions; 500 meetings with a next_at */
	for (int i = 0; i < N; i++) {
		fieldsync__v1__contact__init(&c[i]);
		rc_[i].c = &c[i];
		rc_[i].id = ids[i];
		if (i < 2000) {
			snprintf(ids[i], sizeof(ids[i]), "k%d", i % 1000);
			c[i].kind = CO;
			c[i].held_at_ms = REF_MS + (int64_t)(2000 - i) * 3600000;
		} else if (i < 2500) {
			snprintf(ids[i], sizeof(ids[i]), "p%d", i);
			c[i].kind = PS;
			c[i].held_at_ms = REF_MS + (int64_t)i * 86400000;
		} else {
			snprintf(ids[i], sizeof(ids[i]), "n%d", i);
			c[i].kind = NM;
			c[i].held_at_ms = REF_MS;
			c[i].next_at_ms = REF_MS + (int64_t)i * 3600000;
		}
	}
	rules_config_default(&rc);
	n = rules_evaluate(&rc, g_tz, &in, FAR, out, 1200, NULL);
	/* counselling-limit (no first contact, no under-18, counselling track) */
	cr_assert_eq(n, 1 + 500 + 500, "%zu reminders", n);
	for (size_t i = 0; i < n; i++) {
		parents += out[i].rule == RULE_PARENT_SESSION;
		meetings += out[i].rule == RULE_NETWORK_MEETING;
		if (out[i].rule == RULE_COUNSELLING_LIMIT)
			r = &out[i];
	}
	cr_assert_eq(parents, 500);
	cr_assert_eq(meetings, 500);
	cr_assert_not_null(r);
	/* id k<j> is held at REF + (2000 - j - 1000) h (the earlier sibling): the 5th
	 * smallest is REF + 5 h */
	cr_assert_eq(r->start_ms, REF_MS + 5 * 3600000LL);
}

/* ---- METHOD.md "Settled readings (revision 2)", one test each ------------ */

/* Evaluates w at now and returns reminder id (NULL: none); *next_eval when wanted. */
static const rules_reminder *
at_now(world *w, const rules_config *rc, int64_t now, const char *id, int64_t *next_eval)
{
	evaluate_at(w, rc, now, next_eval);
	return find(w, id);
}

Test(rules, rev2_reading1_held_means_held)
{
	/* first contact on the 3rd; due at the end of the 10th; a talk entered on
	 * the 8th for the 12th */
	const int64_t first = L(2026, 3, 3, 10, 0), talk = L(2026, 3, 12, 10, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;
	int64_t next = -1;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.first = first, .under_18 = true});
	add_contact(&w, "k1", CO, talk, 0);
	cr_assert_not_null(r = at_now(&w, &rc, L(2026, 3, 8, 9, 0), "quick-help/" CASE_ID, &next));
	cr_expect_not(r->met, "a talk dated ahead is planned, not held");
	cr_expect_eq(rules_state_at(r, L(2026, 3, 9, 9, 0)), WARN);
	cr_expect_eq(next, talk, "the case is evaluated again when the talk is held");
	cr_expect_null(find(&w, "notification-duty/" CASE_ID), "no counselling talk held yet");
	/* the deadline passes before the talk: OVERDUE is not hidden */
	cr_assert_not_null(r = at_now(&w, &rc, D(2026, 3, 11), "quick-help/" CASE_ID, &next));
	cr_expect_eq(rules_state_at(r, D(2026, 3, 11)), OVER);
	cr_expect_eq(next, talk);
	/* held at last: met (late), and notification-duty starts */
	cr_assert_not_null(r = at_now(&w, &rc, talk, "quick-help/" CASE_ID, &next));
	cr_expect(r->met);
	cr_expect_eq(next, 0, "nothing left to come");
	cr_expect_not_null(find(&w, "notification-duty/" CASE_ID));
	/* held_at 0: planned, never held, no timer */
	world_init(&w);
	add_case(&w, &(tcase){.first = first});
	add_contact(&w, "k1", CO, 0, talk);
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "quick-help/" CASE_ID, &next));
	cr_expect_not(r->met);
	cr_expect_eq(next, 0);
}

Test(rules, rev2_reading2_same_day_counts_for_quick_help)
{
	const int64_t first = L(2026, 3, 24, 15, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.first = first});
	add_contact(&w, "k1", CO, L(2026, 3, 24, 9, 0), 0); /* the same visit, noted earlier */
	cr_assert_not_null(r = at_now(&w, &rc, first, "quick-help/" CASE_ID, NULL));
	cr_expect(r->met);
	world_init(&w);
	add_case(&w, &(tcase){.first = first});
	add_contact(&w, "k1", CO, L(2026, 3, 23, 23, 59), 0); /* the evening before */
	cr_assert_not_null(r = at_now(&w, &rc, first, "quick-help/" CASE_ID, NULL));
	cr_expect_not(r->met);
}

Test(rules, rev2_reading3_the_end_ends_course_rules)
{
	const int64_t now = L(2026, 3, 20, 12, 0), ended = L(2026, 3, 19, 16, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;
	tcase open = {.first = L(2026, 3, 20, 9, 0),
	              .track = T_INDIVIDUAL,
	              .under_18 = true,
	              .further = true};

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &open);
	/* five counselling talks from the 9th (before the first contact of the
	 * 20th: quick-help stays unmet), one treatment talk before them, one group session, a
	 * parent session, a network meeting agreed for April */
	add_contact(&w, "k1", CO, L(2026, 3, 9, 10, 0), 0);
	add_contact(&w, "k2", CO, L(2026, 3, 10, 10, 0), 0);
	add_contact(&w, "k3", CO, L(2026, 3, 11, 10, 0), 0);
	add_contact(&w, "k4", CO, L(2026, 3, 12, 10, 0), 0);
	add_contact(&w, "k5", CO, L(2026, 3, 13, 10, 0), 0);
	add_contact(&w, "t1", TR, L(2026, 3, 8, 10, 0), 0);
	add_contact(&w, "g1", GS, L(2026, 3, 14, 10, 0), 0);
	add_contact(&w, "p1", PS, L(2026, 3, 15, 10, 0), 0);
	add_contact(&w, "n1", NM, L(2026, 3, 16, 10, 0), L(2026, 4, 2, 10, 0));
	evaluate_at(&w, &rc, now, NULL);
	cr_assert_eq(w.n, 8, "open: every rule but follow-up and handover");
	cr_expect_not(find(&w, "quick-help/" CASE_ID)->met);
	cr_expect_not(find(&w, "treatment-start/" CASE_ID)->met);

	w.cases[0].ended_at_ms = ended;
	evaluate_at(&w, &rc, now, NULL);
	/* CANCELLED unless MET: not implied (the caller cancels them) */
	cr_expect_null(find(&w, "quick-help/" CASE_ID));
	cr_expect_null(find(&w, "treatment-start/" CASE_ID));
	cr_expect_null(find(&w, "parent-session/" CASE_ID "/p1"));
	cr_expect_null(find(&w, "network-meeting/" CASE_ID "/n1"));
	/* MET */
	cr_expect(find(&w, "counselling-limit/" CASE_ID)->met);
	cr_expect(find(&w, "treatment-window/" CASE_ID)->met);
	cr_expect(find(&w, "group-course/" CASE_ID)->met);
	/* start at the end */
	cr_assert_not_null(r = find(&w, "follow-up/" CASE_ID));
	cr_expect_eq(r->start_ms, ended);
	cr_assert_not_null(r = find(&w, "handover/" CASE_ID));
	cr_expect_eq(r->start_ms, ended);
	cr_expect_not(r->met);
	/* the duty does not lapse */
	cr_assert_not_null(r = find(&w, "notification-duty/" CASE_ID));
	cr_expect_not(r->met);
	cr_expect_eq(w.n, 6);

	/* a MET course rule stays MET after the end */
	add_contact(&w, "k6", CO, L(2026, 3, 20, 10, 0), 0);
	evaluate_at(&w, &rc, now, NULL);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_expect(r->met);

	/* reopening brings them back */
	w.cases[0].ended_at_ms = 0;
	evaluate_at(&w, &rc, now, NULL);
	cr_expect_not_null(find(&w, "treatment-start/" CASE_ID));
	cr_expect_not_null(find(&w, "parent-session/" CASE_ID "/p1"));
	cr_expect_not_null(find(&w, "network-meeting/" CASE_ID "/n1"));
	cr_expect_null(find(&w, "follow-up/" CASE_ID));
	cr_expect_null(find(&w, "handover/" CASE_ID));
	cr_expect_not(find(&w, "group-course/" CASE_ID)->met);
}

Test(rules, rev2_reading4_network_meeting_warns_from_the_start_of_the_day)
{
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.track = T_COUNSELLING});
	add_contact(&w, "n1", NM, L(2026, 3, 10, 10, 0), L(2026, 3, 20, 10, 0));
	cr_assert_not_null(
		r = at_now(&w, &rc, L(2026, 3, 11, 9, 0), "network-meeting/" CASE_ID "/n1", NULL));
	cr_expect_eq(r->warning_at_ms, D(2026, 3, 18),
	             "a meeting on the 20th warns from 00:00 on the 18th");
	cr_expect_eq(rules_state_at(r, D(2026, 3, 18) - 1), SCH);
	cr_expect_eq(rules_state_at(r, D(2026, 3, 18)), WARN);
	cr_expect_eq(rules_state_at(r, D(2026, 3, 20)), DUE);
	cr_expect_eq(rules_state_at(r, L(2026, 3, 20, 10, 0)), OVER);
	/* across the spring switch (29 March): a meeting on the 30th at 00:30 */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_COUNSELLING});
	add_contact(&w, "n1", NM, L(2026, 3, 10, 10, 0), L(2026, 3, 30, 0, 30));
	cr_assert_not_null(
		r = at_now(&w, &rc, L(2026, 3, 11, 9, 0), "network-meeting/" CASE_ID "/n1", NULL));
	cr_expect_eq(r->warning_at_ms, D(2026, 3, 28));
	/* configured: 1 weeks */
	conf_get(&rc, "{\"network-meeting\": {\"warning\": \"1 weeks\"}}");
	world_init(&w);
	add_case(&w, &(tcase){.track = T_COUNSELLING});
	add_contact(&w, "n1", NM, L(2026, 3, 10, 10, 0), L(2026, 3, 20, 10, 0));
	cr_assert_not_null(
		r = at_now(&w, &rc, L(2026, 3, 11, 9, 0), "network-meeting/" CASE_ID "/n1", NULL));
	cr_expect_eq(r->warning_at_ms, D(2026, 3, 13));
}

Test(rules, rev2_reading5_follow_up_window)
{
	const int64_t ended = L(2027, 1, 31, 14, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.track = T_INDIVIDUAL, .ended = ended});
	cr_assert_not_null(r = at_now(&w, &rc, L(2027, 2, 1, 9, 0), "follow-up/" CASE_ID, NULL));
	cr_expect_eq(r->warning_at_ms, D(2027, 2, 28),
	             "31 January + 1 month, clamped: 28 February 00:00");
	cr_expect_eq(r->due_at_ms, D(2027, 5, 1), "the end of 30 April");
	cr_expect_eq(r->due_day_ms, D(2027, 4, 30));
	cr_expect_eq(rules_state_at(r, D(2027, 2, 28) - 1), SCH);
	cr_expect_eq(rules_state_at(r, D(2027, 2, 28)), WARN, "the window is open");
	cr_expect_eq(rules_state_at(r, D(2027, 4, 29)), WARN);
	cr_expect_eq(rules_state_at(r, D(2027, 4, 30)), DUE);
	cr_expect_eq(rules_state_at(r, D(2027, 5, 1)), OVER);
	/* a follow-up talk a week after the end, before the window: met */
	add_contact(&w, "f1", FU, L(2027, 2, 7, 10, 0), 0);
	cr_assert_not_null(r = at_now(&w, &rc, L(2027, 2, 8, 9, 0), "follow-up/" CASE_ID, NULL));
	cr_expect(r->met);
}

Test(rules, rev2_reading6_treatment_may_start_early)
{
	const int64_t last = L(2026, 4, 7, 10, 0);
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.track = T_INDIVIDUAL});
	add_contact(&w, "k1", CO, last, 0);
	add_contact(&w, "t1", TR, last + 3600000, 0); /* an hour later, not 2 weeks */
	cr_assert_not_null(r = at_now(&w, &rc, last + 3600000, "treatment-start/" CASE_ID, NULL));
	cr_expect(r->met);
	cr_assert_not_null(r = at_now(&w, &rc, last + 1800000, "treatment-start/" CASE_ID, NULL));
	cr_expect_not(r->met, "not before it is held");
}

Test(rules, rev2_reading7_no_reminder_before_it_starts)
{
	const int64_t ended = REF_MS;
	rules_config rc;
	world w;
	const rules_reminder *r;

	conf_get(&rc, NULL);
	/* ended with taken_over_by already set: the handover never started */
	world_init(&w);
	add_case(&w, &(tcase){.ended = ended, .further = true, .taken_over_by = "PPR"});
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "handover/" CASE_ID, NULL));
	cr_expect(r->met);
	cr_expect_not(r->started, "a caller that does not track it has no reminder, no event");
	/* ended, nobody took over: started */
	w.cases[0].taken_over_by = "";
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "handover/" CASE_ID, NULL));
	cr_expect(r->started);
	cr_expect_not(r->met);
	/* informed at the first talk: no notification-duty */
	world_init(&w);
	add_case(&w, &(tcase){.under_18 = true, .informed = true});
	add_contact(&w, "k1", CO, REF_MS, 0);
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "notification-duty/" CASE_ID, NULL));
	cr_expect_not(r->started);
	/* two parent sessions learned at once: the first never was the last */
	world_init(&w);
	add_case(&w, &(tcase){.track = T_PARENT});
	add_contact(&w, "p1", PS, REF_MS, 0);
	add_contact(&w, "p2", PS, L(2026, 4, 7, 15, 0), 0);
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "parent-session/" CASE_ID "/p1", NULL));
	cr_expect(r->met);
	cr_expect_not(r->started);
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "parent-session/" CASE_ID "/p2", NULL));
	cr_expect(r->started);
	/* a reminder that started and is met (quick-help with its talk) did start */
	world_init(&w);
	add_case(&w, &(tcase){.first = REF_MS});
	add_contact(&w, "k1", CO, REF_MS, 0);
	cr_assert_not_null(r = at_now(&w, &rc, FAR, "quick-help/" CASE_ID, NULL));
	cr_expect(r->met && r->started);
}

Test(rules, rev2_reading8_fingerprint_of_revision_table_and_zone)
{
	rules_config a, b;

	conf_get(&a, NULL);
	conf_get(&b, NULL);
	cr_expect_eq(rules_fingerprint(&a, "Europe/Copenhagen"),
	             rules_fingerprint(&b, "Europe/Copenhagen"));
	cr_expect_neq(rules_fingerprint(&a, "Europe/Copenhagen"), 0);
	cr_expect_neq(rules_fingerprint(&a, "Europe/Copenhagen"), rules_fingerprint(&a, "UTC"),
	              "another zone");
	conf_get(&b, "{\"quick-help\": {\"due\": \"8 days\"}}");
	cr_expect_neq(rules_fingerprint(&a, "UTC"), rules_fingerprint(&b, "UTC"), "another due");
	conf_get(&b, "{\"handover\": {\"enabled\": false}}");
	cr_expect_neq(rules_fingerprint(&a, "UTC"), rules_fingerprint(&b, "UTC"), "a rule off");
	/* the fields of a rule switched off change nothing */
	conf_get(&a, "{\"handover\": {\"enabled\": false, \"due\": \"9 days\"}}");
	cr_expect_eq(rules_fingerprint(&a, "UTC"), rules_fingerprint(&b, "UTC"));
	/* a rule switched off yields no reminder (the caller cancels the active ones) */
	world w;
	world_init(&w);
	add_case(&w, &(tcase){.ended = REF_MS, .further = true});
	evaluate(&w, &b);
	cr_expect_null(find(&w, "handover/" CASE_ID));
	cr_expect_eq(RULES_REVISION, 2);
}

/* ---- states ------------------------------------------------------------- */

Test(rules, state_and_next_change)
{
	static const struct {
		int64_t warning, due_day, due_at;
		bool met;
		int64_t now;
		int state;
		int64_t next;
	} t[] = {
		{1000, 2000, 3000, false, 0, SCH, 1000},
		{1000, 2000, 3000, false, 999, SCH, 1000},
		{1000, 2000, 3000, false, 1000, WARN, 2000},
		{1000, 2000, 3000, false, 1999, WARN, 2000},
		{1000, 2000, 3000, false, 2000, DUE, 3000},
		{1000, 2000, 3000, false, 2999, DUE, 3000},
		{1000, 2000, 3000, false, 3000, OVER, 0},
		{1000, 2000, 3000, false, 9999, OVER, 0},
		{1000, 2000, 3000, true, 0, MET, 0},
		{1000, 2000, 3000, true, 2500, MET, 0},
		/* no warning */
		{0, 2000, 3000, false, 500, SCH, 2000},
		/* a warning at the due day's start is never seen as WARNING */
		{2000, 2000, 3000, false, 500, SCH, 2000},
		/* a warning after the due day (a follow-up window opening late) changes nothing */
		{2500, 2000, 3000, false, 500, SCH, 2000},
		{2500, 2000, 3000, false, 2000, DUE, 3000},
		/* due at a meeting on the due day's first instant */
		{1000, 3000, 3000, false, 1500, WARN, 3000},
		{1000, 3000, 3000, false, 3000, OVER, 0},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rules_reminder r;

		memset(&r, 0, sizeof(r));
		r.warning_at_ms = t[i].warning;
		r.due_day_ms = t[i].due_day;
		r.due_at_ms = t[i].due_at;
		r.met = t[i].met;
		cr_expect_eq((int)rules_state_at(&r, t[i].now), t[i].state, "row %zu: state %s", i,
		             state_name((int)rules_state_at(&r, t[i].now)));
		cr_expect_eq(rules_next_change(&r, t[i].now), t[i].next, "row %zu: next %lld", i,
		             (long long)rules_next_change(&r, t[i].now));
	}
}

Test(rules, next_change_walks_a_real_reminder)
{
	rules_config rc;
	world w;
	const rules_reminder *r;
	int64_t now = REF_MS, t;
	int seen[5] = {0}, steps = 0;

	conf_get(&rc, NULL);
	world_init(&w);
	add_case(&w, &(tcase){.first = REF_MS});
	evaluate(&w, &rc);
	cr_assert_not_null(r = find(&w, "quick-help/" CASE_ID));
	cr_assert_eq(rules_next_change(r, now), D(2026, 3, 30));
	/* each transition happens once, in order */
	seen[rules_state_at(r, now)]++;
	while ((t = rules_next_change(r, now)) != 0) {
		cr_assert_gt(t, now);
		cr_assert_neq(rules_state_at(r, t), rules_state_at(r, t - 1));
		now = t;
		seen[rules_state_at(r, now)]++;
		cr_assert_lt(++steps, 5);
	}
	cr_assert_eq(now, D(2026, 4, 1));
	cr_assert_eq(seen[SCH] + seen[WARN] + seen[DUE] + seen[OVER], 4);
	cr_assert(seen[SCH] == 1 && seen[WARN] == 1 && seen[DUE] == 1 && seen[OVER] == 1);
}

/* ---- configuration ------------------------------------------------------ */

Test(rules, config_defaults_and_names)
{
	rules_config rc;
	rule_id r;

	rules_config_default(&rc);
	for (int i = 0; i < RULE_COUNT; i++) {
		cr_assert(rc.rule[i].enabled, "%s", rule_name((rule_id)i));
		cr_assert(rule_parse(rule_name((rule_id)i), &r));
		cr_assert_eq(r, (rule_id)i);
	}
	cr_assert_not(rule_parse("quik-help", &r));
	cr_assert_not(rule_parse(NULL, &r));
	cr_assert_eq(rc.rule[RULE_QUICK_HELP].due.amount, 7);
	cr_assert_eq(rc.rule[RULE_QUICK_HELP].due.unit, CAL_DAYS);
	cr_assert_eq(rc.rule[RULE_QUICK_HELP].warning.amount, 2);
	cr_assert_eq(rc.rule[RULE_COUNSELLING_LIMIT].count, 5);
	cr_assert_not(rc.rule[RULE_COUNSELLING_LIMIT].has_warning);
	cr_assert_eq(rc.rule[RULE_TREATMENT_START].due.amount, 4);
	cr_assert_eq(rc.rule[RULE_TREATMENT_START].due.unit, CAL_WEEKS);
	cr_assert_eq(rc.rule[RULE_TREATMENT_WINDOW].due.amount, 9);
	cr_assert_eq(rc.rule[RULE_TREATMENT_WINDOW].due.unit, CAL_MONTHS);
	cr_assert_eq(rc.rule[RULE_TREATMENT_WINDOW].count, 12);
	cr_assert_eq(rc.rule[RULE_GROUP_COURSE].warning.amount, 2);
	cr_assert_eq(rc.rule[RULE_GROUP_COURSE].warning.unit, CAL_WEEKS);
	cr_assert_eq(rc.rule[RULE_PARENT_SESSION].due.amount, 14);
	cr_assert_eq(rc.rule[RULE_FOLLOW_UP].due.amount, 3);
	cr_assert_eq(rc.rule[RULE_FOLLOW_UP].warning.amount, 1);
	cr_assert_eq(rc.rule[RULE_FOLLOW_UP].warning.unit, CAL_MONTHS);
	cr_assert_not(rc.rule[RULE_HANDOVER].has_warning);
	cr_assert_not(rc.rule[RULE_NOTIFICATION_DUTY].has_warning);
}

Test(rules, config_json_good)
{
	rules_config rc, def;
	char err[256] = "";
	const char *json =
		"{\"quick-help\": {\"enabled\": true, \"due\": \"10 days\", \"warning\": \"3 days\"},\n"
		" \"counselling-limit\": {\"count\": 4, \"warning\": \"1 weeks\"},\n"
		" \"treatment-window\": {\"count\": 10, \"due\": \"6 months\", \"warning\": null},\n"
		" \"follow-up\": {\"warning\": \"none\"},\n"
		" \"network-meeting\": {\"warning\": \"0 days\"},\n"
		" \"group-course\": {\"enabled\": false}}";

	rules_config_default(&def);
	rules_config_default(&rc);
	cr_assert(rules_config_load_json(&rc, json, err, sizeof(err)), "%s", err);
	cr_assert_eq(rc.rule[RULE_QUICK_HELP].due.amount, 10);
	cr_assert_eq(rc.rule[RULE_QUICK_HELP].warning.amount, 3);
	cr_assert(rc.rule[RULE_QUICK_HELP].has_warning);
	cr_assert_eq(rc.rule[RULE_COUNSELLING_LIMIT].count, 4);
	cr_assert(rc.rule[RULE_COUNSELLING_LIMIT].has_warning);
	cr_assert_eq(rc.rule[RULE_COUNSELLING_LIMIT].warning.amount, 1);
	cr_assert_eq(rc.rule[RULE_COUNSELLING_LIMIT].warning.unit, CAL_WEEKS);
	cr_assert_eq(rc.rule[RULE_TREATMENT_WINDOW].count, 10);
	cr_assert_eq(rc.rule[RULE_TREATMENT_WINDOW].due.amount, 6);
	cr_assert_not(rc.rule[RULE_TREATMENT_WINDOW].has_warning);
	cr_assert_not(rc.rule[RULE_FOLLOW_UP].has_warning);
	cr_assert(rc.rule[RULE_NETWORK_MEETING].has_warning);
	cr_assert_eq(rc.rule[RULE_NETWORK_MEETING].warning.amount, 0);
	cr_assert_not(rc.rule[RULE_GROUP_COURSE].enabled);
	/* untouched rules keep the defaults */
	cr_assert_eq(memcmp(&rc.rule[RULE_TREATMENT_START], &def.rule[RULE_TREATMENT_START],
	                    sizeof(rule_conf)),
	             0);
	cr_assert_eq(memcmp(&rc.rule[RULE_HANDOVER], &def.rule[RULE_HANDOVER], sizeof(rule_conf)),
	             0);

	/* an empty table changes nothing */
	rules_config_default(&rc);
	cr_assert(rules_config_load_json(&rc, " {} ", err, sizeof(err)), "%s", err);
	cr_assert_eq(memcmp(&rc, &def, sizeof(rc)), 0);
	cr_assert(rules_config_load_json(&rc, "{\"handover\": {}}", NULL, 0));
}

Test(rules, config_json_bad)
{
	static const struct {
		const char *json;
		const char *want[3]; /* substrings of the message */
	} t[] = {
		{"{\"quick-help\": {\"due\": \"7 dayz\"}}",
	         {"rule \"quick-help\": field \"due\": expected \"<N> days|weeks|months\", got \"7 dayz\""}},
		{"{\"quik-help\": {}}", {"unknown rule \"quik-help\""}},
		{"{\"quick-help\": {\"dew\": \"7 days\"}}",
	         {"rule \"quick-help\"", "unknown field \"dew\""}},
		{"{\"quick-help\": {\"due\": 7}}",
	         {"rule \"quick-help\"", "field \"due\"", "got a number"}},
		{"{\"quick-help\": {\"due\": \"-1 days\"}}",
	         {"rule \"quick-help\"", "field \"due\"", "\"-1 days\""}},
		{"{\"quick-help\": {\"due\": \"7days\"}}",
	         {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"7  days\"}}",
	         {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \" 7 days\"}}",
	         {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"7 days \"}}",
	         {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"1 day\"}}",
	         {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"\"}}", {"rule \"quick-help\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"99999999999 days\"}}",
	         {"rule \"quick-help\"", "field \"due\"", "0..10000"}},
		{"{\"group-course\": {\"warning\": true}}",
	         {"rule \"group-course\"", "field \"warning\"", "a boolean"}},
		{"{\"group-course\": {\"warning\": \"2 fortnights\"}}",
	         {"rule \"group-course\"", "field \"warning\"", "\"2 fortnights\""}},
		{"{\"handover\": {\"enabled\": \"yes\"}}",
	         {"rule \"handover\"", "field \"enabled\"", "a string"}},
		{"{\"handover\": {\"enabled\": 1}}", {"rule \"handover\"", "field \"enabled\""}},
		{"{\"quick-help\": {\"count\": 3}}", {"rule \"quick-help\"", "field \"count\""}},
		{"{\"counselling-limit\": {\"count\": 0}}",
	         {"rule \"counselling-limit\"", "field \"count\""}},
		{"{\"counselling-limit\": {\"count\": 2.5}}",
	         {"rule \"counselling-limit\"", "field \"count\""}},
		{"{\"counselling-limit\": {\"count\": \"5\"}}",
	         {"rule \"counselling-limit\"", "field \"count\""}},
		{"{\"treatment-window\": {\"count\": 1000000}}",
	         {"rule \"treatment-window\"", "field \"count\""}},
		{"{\"network-meeting\": {\"due\": \"1 days\"}}",
	         {"rule \"network-meeting\"", "field \"due\""}},
		{"{\"quick-help\": {\"due\": \"7 days\", \"due\": \"8 days\"}}",
	         {"rule \"quick-help\"", "field \"due\"", "twice"}},
		{"{\"quick-help\": {}, \"quick-help\": {}}", {"rule \"quick-help\"", "twice"}},
		{"{\"quick-help\": true}", {"rule \"quick-help\"", "expected an object"}},
		{"{\"quick-help\": [\"7 days\"]}", {"rule \"quick-help\"", "an array"}},
		{"[{\"quick-help\": {}}]", {"expected an object keyed by rule name", "an array"}},
		{"\"quick-help\"", {"expected an object keyed by rule name"}},
		{"quick-help: 7 days", {"not JSON"}},
		{"", {"not JSON"}},
		{"{\"quick-help\": {}} trailing", {"not JSON"}},
		{"{\"quick-help\": {\"due\": \"7 days\"}", {"not JSON"}},
		{"{\"bad\\u0001\\\"name\": {}}", {"unknown rule \"bad??name\""}},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rules_config rc;
		char err[256] = "";

		rules_config_default(&rc);
		cr_expect_not(rules_config_load_json(&rc, t[i].json, err, sizeof(err)),
		              "accepted %s", t[i].json);
		for (int k = 0; k < 3 && t[i].want[k] != NULL; k++)
			cr_expect_not_null(strstr(err, t[i].want[k]),
			                   "%s: message \"%s\" lacks \"%s\"", t[i].json, err,
			                   t[i].want[k]);
	}
}

Test(rules, config_json_error_buffers)
{
	rules_config rc;
	char small[16];

	rules_config_default(&rc);
	cr_assert_not(rules_config_load_json(&rc, "{\"quik-help\": {}}", NULL, 0));
	cr_assert_not(rules_config_load_json(&rc, NULL, small, sizeof(small)));
	memset(small, 'x', sizeof(small));
	cr_assert_not(rules_config_load_json(&rc, "{\"quik-help\": {}}", small, sizeof(small)));
	cr_assert_eq(strlen(small), sizeof(small) - 1, "truncated, terminated");
}
