/*
 * libFuzzer target: the rule table (--rules FILE, docs/reminders.md), the
 * daemon's config decoder for untrusted-ish text.
 *
 *   1. rules_config_load_json() (proto/rules.c) over docs/method.md's defaults,
 *      on the input made NUL-terminated, as reminders_new() calls it. A
 *      refusal must come with a sentence in err.
 *   2. A table it accepts must be safe to run: rules_evaluate() on a fixed
 *      case that starts every rule (two case siblings, contacts of every
 *      kind, one set of times in 2024 and one at the end of year 9999,
 *      where the calendar runs out), in the zone of the daemon's default
 *      (Europe/Copenhagen, else UTC; skipped without a tz database). Every
 *      reminder must have due_day <= due_at, and rules_next_change() must
 *      be after `now` or 0 (proto/include/fieldsync/rules.h).
 * Any violation calls abort(), so libFuzzer records it as a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/rules.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY_MS 86400000LL
#define T2024 1717236000000LL      /* 2024-06-01 10:00 UTC */
#define T9999 253402214400000LL    /* 9999-12-31 00:00 UTC */
#define N_CONTACTS 32

static fs_tz *g_tz;

/* The fixed case data, one set per base time. */
struct fixture {
	Fieldsync__V1__Case cases[2];
	const Fieldsync__V1__Case *case_ptrs[2];
	Fieldsync__V1__Contact contacts[N_CONTACTS];
	rules_contact rc[N_CONTACTS];
	char ids[N_CONTACTS][16];
	size_t n;
	rules_input in;
};

static struct fixture g_fix[2];

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_rules_config: %s\n", what);
	abort();
}

static void
add_contact(struct fixture *f, const char *id, int kind, int64_t held, int64_t next)
{
	Fieldsync__V1__Contact *c = &f->contacts[f->n];
	if (f->n == N_CONTACTS)
		fail("fixture: too many contacts");
	fieldsync__v1__contact__init(c);
	c->case_id = (char *)"case-1";
	c->kind = kind;
	c->held_at_ms = held;
	c->next_at_ms = next;
	c->who5 = -1;
	if (id == NULL) {
		snprintf(f->ids[f->n], sizeof(f->ids[f->n]), "k%zu", f->n);
		id = f->ids[f->n];
	}
	f->rc[f->n].id = id;
	f->rc[f->n].c = c;
	f->n++;
}

/* A case in conflict (an individual course and a counselling one) whose
 * contacts start every rule of docs/method.md, from base time t. */
static void
fixture_build(struct fixture *f, int64_t t)
{
	Fieldsync__V1__Case *a = &f->cases[0], *b = &f->cases[1];

	fieldsync__v1__case__init(a);
	a->contact_person = (char *)"staff-17";
	a->first_contact_at_ms = t;
	a->track = FIELDSYNC__V1__CASE__TRACK__INDIVIDUAL;
	a->under_18 = true;
	a->ended_at_ms = t + 20 * DAY_MS;
	a->needs_further_support = true;
	a->follow_up_wanted = true;

	fieldsync__v1__case__init(b);
	b->contact_person = (char *)"staff-4";
	b->first_contact_at_ms = t + DAY_MS;
	b->track = FIELDSYNC__V1__CASE__TRACK__COUNSELLING;
	b->under_18 = true;
	b->follow_up_wanted = true;
	b->ended_at_ms = t + 21 * DAY_MS;
	b->taken_over_by = (char *)"municipality";

	f->case_ptrs[0] = a;
	f->case_ptrs[1] = b;
	for (int i = 0; i < 6; i++)
		add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__COUNSELLING, t + i * DAY_MS / 2, 0);
	for (int i = 0; i < 13; i++)
		add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__TREATMENT, t + (i + 3) * DAY_MS, 0);
	add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__GROUP_SESSION, t + 2 * DAY_MS, 0);
	add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__PARENT_SESSION, t + 4 * DAY_MS, 0);
	add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__PARENT_SESSION, t + 9 * DAY_MS, 0);
	/* a network meeting in conflict: two siblings of one id */
	add_contact(f, "net-1", FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING, t + 5 * DAY_MS,
	            t + 40 * DAY_MS);
	add_contact(f, "net-1", FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING, t + 5 * DAY_MS,
	            t + 35 * DAY_MS);
	add_contact(f, NULL, FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP, t + 30 * DAY_MS, 0);

	f->in.case_id = "case-1";
	f->in.cases = f->case_ptrs;
	f->in.n_cases = 2;
	f->in.contacts = f->rc;
	f->in.n_contacts = f->n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	g_tz = tz_load("Europe/Copenhagen", err, sizeof(err));
	if (g_tz == NULL)
		g_tz = tz_load("UTC", err, sizeof(err));
	if (g_tz == NULL)
		fprintf(stderr, "fuzz_rules_config: no tz database (%s): rules_evaluate is not run\n",
		        err);
	fixture_build(&g_fix[0], T2024);
	fixture_build(&g_fix[1], T9999);
	return 0;
}

static void
evaluate(const rules_config *rc, const rules_input *in)
{
	rules_reminder out[64];
	/* now: the end of time, so every contact counts as held */
	size_t n = rules_evaluate(rc, g_tz, in, INT64_MAX, out, sizeof(out) / sizeof(out[0]), NULL);
	if (n > sizeof(out) / sizeof(out[0]))
		fail("fixture: more reminders than room");
	for (size_t i = 0; i < n; i++) {
		const rules_reminder *r = &out[i];
		if (r->due_day_ms > r->due_at_ms)
			fail("rules_evaluate: due_day after due_at");
		if (r->reminder_id[0] == '\0')
			fail("rules_evaluate: empty reminder_id");
		const int64_t probes[] = {r->start_ms - 1, r->start_ms, r->warning_at_ms,
		                          r->due_day_ms - 1, r->due_day_ms, r->due_at_ms};
		for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
			int64_t next = rules_next_change(r, probes[k]);
			(void)rules_state_at(r, probes[k]);
			if (next != 0 && next <= probes[k])
				fail("rules_next_change: not after now");
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rules_config rc;
	char err[256] = "";
	char *json = malloc(size + 1);

	if (json == NULL)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	rules_config_default(&rc);
	bool ok = rules_config_load_json(&rc, json, err, sizeof(err));
	free(json);
	if (!ok) {
		if (err[0] == '\0')
			fail("rules_config_load_json refused without saying why");
		return 0;
	}
	if (g_tz != NULL) {
		evaluate(&rc, &g_fix[0].in);
		evaluate(&rc, &g_fix[1].in);
	}
	return 0;
}
