/*
 * fs_deadlines on a tablet alone (issue 13, part 2): METHOD.md's settled
 * readings (revision 2) on the tablet side, with the scenarios of
 * tests/unit/test_rules.c written through the SDK (fs_put) and read back
 * through fs_deadlines at an injected now; the rule table and zone of a
 * Welcome (reading 8); the defaults before any sync, also without a tz
 * database; the filters and the order of the list.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client-sdk/src/deadlines.h"
#include "daemon.h"
#include "fieldsync/calendar.h"
#include "fieldsync/fieldsync.h"

#define CASE "c-1"
#define DAY_MS ((int64_t)86400000)

static char *dir;
static fs_store *tab;
static fs_tz *cph;

static void
setup(void)
{
	dir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(dir, "team-a", &tab), FS_OK);
	cph = tz_load("Europe/Copenhagen", NULL, 0);
	cr_assert_not_null(cph);
}

static void
teardown(void)
{
	fs_store_close(&tab);
	fs_test_rm_rf(dir);
	free(dir);
	tz_free(&cph);
}

TestSuite(sdk_deadlines, .init = setup, .fini = teardown);

/* Local time in Copenhagen (not in a DST gap) as ms since the epoch. */
static int64_t
L(int y, int mo, int d, int h, int mi)
{
	/* days from civil (Howard Hinnant), then back by the offset */
	y -= mo <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = era * 146097 + doe - 719468;
	int64_t local_s = days * 86400 + h * 3600 + mi * 60;
	int64_t off = tz_offset_s(cph, local_s - 3600);
	off = tz_offset_s(cph, local_s - off);
	return (local_s - off) * 1000;
}

#define D(y, m, d) L(y, m, d, 0, 0)

static void put_json(const char *coll, const char *id, const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
put_json(const char *coll, const char *id, const char *scope, const char *fmt, ...)
{
	char json[1024], why[256];
	uint8_t *p = NULL;
	size_t n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(json, sizeof(json), fmt, ap);
	va_end(ap);
	cr_assert_eq(fs_json_to_payload(coll, json, strlen(json), &p, &n, why, sizeof(why)), FS_OK,
	             "%s: %s", json, why);
	cr_assert_eq(fs_put(tab, coll, id, scope, p, n), FS_OK);
	free(p);
}

/* A contact of CASE: kind, held_at, next_at. */
static void
contact(const char *id, const char *kind, int64_t held, int64_t next)
{
	put_json("contact", id, NULL,
	         "{\"case_id\": \"" CASE "\", \"kind\": \"%s\", \"held_at_ms\": %" PRId64
	         ", \"next_at_ms\": %" PRId64 "}",
	         kind, held, next);
}

static fs_deadline_list *g_list;

/* The list at now; the entry with id (NULL: not listed). */
static const fs_deadline *
at(int64_t now, const char *id)
{
	fs_deadlines_free(&g_list);
	cr_assert_eq(fs_deadlines(tab, now, NULL, &g_list), FS_OK);
	for (size_t i = 0; id != NULL && i < g_list->n; i++)
		if (strcmp(g_list->items[i].reminder_id, id) == 0)
			return &g_list->items[i];
	return NULL;
}

static void
fini_list(void)
{
	fs_deadlines_free(&g_list);
}

Test(sdk_deadlines, reading1_held_means_held, .fini = fini_list)
{
	const int64_t talk = L(2026, 3, 12, 10, 0);
	const fs_deadline *r;
	put_json("case", CASE, NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"under_18\": true, "
	         "\"contact_person\": \"staff-7\"}",
	         L(2026, 3, 3, 10, 0));
	contact("k1", "COUNSELLING", talk, 0); /* entered on the 8th for the 12th */
	cr_assert_not_null(r = at(L(2026, 3, 8, 9, 0), "quick-help/" CASE));
	cr_expect_str_eq(r->state, "SCHEDULED", "a talk dated ahead is planned, not held");
	cr_expect_eq(r->due_at_ms, D(2026, 3, 11));
	cr_expect_eq(r->warning_at_ms, D(2026, 3, 9));
	cr_expect_str_eq(r->contact_person, "staff-7");
	cr_expect_str_eq(r->scope, "team-a");
	cr_expect_eq(g_list->next_change_ms, D(2026, 3, 9), "the warning comes first");
	cr_expect_null(at(L(2026, 3, 8, 9, 0), "notification-duty/" CASE));
	cr_assert_not_null(r = at(L(2026, 3, 11, 9, 0), "quick-help/" CASE));
	cr_expect_str_eq(r->state, "OVERDUE", "the deadline passed before the talk");
	cr_expect_eq(g_list->next_change_ms, talk, "evaluate again when the talk is held");
	cr_assert_not_null(r = at(talk, "quick-help/" CASE));
	cr_expect_str_eq(r->state, "MET");
	cr_expect_not_null(at(talk, "notification-duty/" CASE), "the duty starts with the talk");
}

Test(sdk_deadlines, reading2_same_day_counts, .fini = fini_list)
{
	const int64_t first = L(2026, 3, 24, 15, 0);
	put_json("case", CASE, NULL, "{\"first_contact_at_ms\": %" PRId64 "}", first);
	contact("k1", "COUNSELLING", L(2026, 3, 24, 9, 0), 0);
	cr_expect_str_eq(at(first, "quick-help/" CASE)->state, "MET");
	contact("k1", "COUNSELLING", L(2026, 3, 23, 23, 59),
	        0); /* a local edit: the evening before */
	cr_expect_str_eq(at(first, "quick-help/" CASE)->state, "SCHEDULED");
}

Test(sdk_deadlines, reading3_the_end_ends_course_rules, .fini = fini_list)
{
	const int64_t now = L(2026, 3, 20, 12, 0);
	const char *open = "{\"first_contact_at_ms\": %" PRId64 ", \"track\": \"INDIVIDUAL\", "
			   "\"under_18\": true, \"needs_further_support\": true, "
			   "\"ended_at_ms\": %" PRId64 "}";
	put_json("case", CASE, NULL, open, L(2026, 3, 20, 9, 0), (int64_t)0);
	contact("k1", "COUNSELLING", L(2026, 3, 9, 10, 0), 0);
	contact("k2", "COUNSELLING", L(2026, 3, 10, 10, 0), 0);
	contact("k3", "COUNSELLING", L(2026, 3, 11, 10, 0), 0);
	contact("k4", "COUNSELLING", L(2026, 3, 12, 10, 0), 0);
	contact("k5", "COUNSELLING", L(2026, 3, 13, 10, 0), 0);
	contact("t1", "TREATMENT", L(2026, 3, 8, 10, 0), 0);
	contact("g1", "GROUP_SESSION", L(2026, 3, 14, 10, 0), 0);
	contact("p1", "PARENT_SESSION", L(2026, 3, 15, 10, 0), 0);
	contact("n1", "NETWORK_MEETING", L(2026, 3, 16, 10, 0), L(2026, 4, 2, 10, 0));
	at(now, NULL);
	cr_assert_eq(g_list->n, 8, "open: every rule but follow-up and handover");

	put_json("case", CASE, NULL, open, L(2026, 3, 20, 9, 0), L(2026, 3, 19, 16, 0));
	cr_expect_null(at(now, "quick-help/" CASE), "CANCELLED: not listed");
	cr_expect_null(at(now, "treatment-start/" CASE));
	cr_expect_null(at(now, "parent-session/" CASE "/p1"));
	cr_expect_null(at(now, "network-meeting/" CASE "/n1"));
	cr_expect_str_eq(at(now, "counselling-limit/" CASE)->state, "MET");
	cr_expect_str_eq(at(now, "treatment-window/" CASE)->state, "MET");
	cr_expect_str_eq(at(now, "group-course/" CASE)->state, "MET");
	cr_expect_not_null(at(now, "follow-up/" CASE));
	cr_expect_not_null(at(now, "handover/" CASE));
	cr_expect_str_neq(at(now, "notification-duty/" CASE)->state, "MET", "the duty runs on");
	cr_expect_eq(g_list->n, 6);

	put_json("case", CASE, NULL, open, L(2026, 3, 20, 9, 0), (int64_t)0); /* reopened */
	cr_expect_not_null(at(now, "treatment-start/" CASE));
	cr_expect_not_null(at(now, "network-meeting/" CASE "/n1"));
	cr_expect_null(at(now, "handover/" CASE));
}

Test(sdk_deadlines, reading4_network_meeting_warns_from_the_start_of_the_day, .fini = fini_list)
{
	const fs_deadline *r;
	put_json("case", CASE, NULL, "{\"track\": \"COUNSELLING\"}");
	contact("n1", "NETWORK_MEETING", L(2026, 3, 10, 10, 0), L(2026, 3, 20, 10, 0));
	cr_assert_not_null(r = at(D(2026, 3, 18), "network-meeting/" CASE "/n1"));
	cr_expect_eq(r->warning_at_ms, D(2026, 3, 18));
	cr_expect_eq(r->due_at_ms, L(2026, 3, 20, 10, 0), "due at the meeting itself");
	cr_expect_eq(r->due_day_ms, D(2026, 3, 20));
	cr_expect_str_eq(r->state, "WARNING");
	cr_expect_str_eq(at(D(2026, 3, 18) - 1, "network-meeting/" CASE "/n1")->state, "SCHEDULED");
}

Test(sdk_deadlines, reading5_follow_up_window, .fini = fini_list)
{
	const fs_deadline *r;
	put_json("case", CASE, NULL, "{\"track\": \"INDIVIDUAL\", \"ended_at_ms\": %" PRId64 "}",
	         L(2027, 1, 31, 14, 0));
	cr_assert_not_null(r = at(D(2027, 2, 28), "follow-up/" CASE));
	cr_expect_eq(r->warning_at_ms, D(2027, 2, 28), "31 January + 1 month, clamped");
	cr_expect_eq(r->due_at_ms, D(2027, 5, 1), "the end of 30 April");
	cr_expect_str_eq(r->state, "WARNING", "the window is open");
	contact("f1", "FOLLOW_UP", L(2027, 2, 7, 10, 0), 0);
	cr_expect_str_eq(at(L(2027, 2, 8, 9, 0), "follow-up/" CASE)->state, "MET",
	                 "before the window: met");
}

Test(sdk_deadlines, reading6_treatment_may_start_early, .fini = fini_list)
{
	const int64_t last = L(2026, 4, 7, 10, 0);
	put_json("case", CASE, NULL, "{\"track\": \"INDIVIDUAL\"}");
	contact("k1", "COUNSELLING", last, 0);
	contact("t1", "TREATMENT", last + 3600000, 0);
	cr_expect_str_eq(at(last + 3600000, "treatment-start/" CASE)->state, "MET");
	cr_expect_str_neq(at(last + 1800000, "treatment-start/" CASE)->state, "MET");
}

Test(sdk_deadlines, reading7_no_reminder_before_it_starts, .fini = fini_list)
{
	const int64_t far = D(2030, 1, 1);
	put_json("case", CASE, NULL,
	         "{\"ended_at_ms\": %" PRId64 ", \"needs_further_support\": true, "
	         "\"taken_over_by\": \"PPR\", \"track\": \"PARENT_ACTIVITIES\"}",
	         L(2026, 4, 1, 10, 0));
	cr_expect_null(at(far, "handover/" CASE), "taken over at the end: never started");
	put_json("case", "c-2", NULL, "{\"track\": \"PARENT_ACTIVITIES\"}");
	put_json("contact", "p1", NULL,
	         "{\"case_id\": \"c-2\", \"kind\": \"PARENT_SESSION\", \"held_at_ms\": %" PRId64
	         "}",
	         L(2026, 4, 1, 10, 0));
	put_json("contact", "p2", NULL,
	         "{\"case_id\": \"c-2\", \"kind\": \"PARENT_SESSION\", \"held_at_ms\": %" PRId64
	         "}",
	         L(2026, 4, 7, 15, 0));
	cr_expect_null(at(far, "parent-session/c-2/p1"), "never the last one");
	cr_expect_not_null(at(far, "parent-session/c-2/p2"));
}

/* Reading 8 on the tablet: the table and zone of the last Welcome apply to
 * every case at once; a Welcome without them, or with ones that do not
 * load, changes nothing. */
Test(sdk_deadlines, reading8_welcome_table_and_zone, .fini = fini_list)
{
	Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
	fs_tz *utc = tz_load("UTC", NULL, 0);
	size_t len = 0;
	const uint8_t *img;
	const fs_deadline *r;

	cr_assert_not_null(utc);
	img = tz_tzif(utc, &len);
	put_json("case", CASE, NULL, "{\"first_contact_at_ms\": %" PRId64 "}",
	         L(2026, 3, 3, 10, 0));
	put_json("case", "c-2", NULL,
	         "{\"ended_at_ms\": %" PRId64 ", \"needs_further_support\": true}",
	         L(2026, 3, 3, 10, 0));
	cr_assert_not_null(r = at(D(2026, 3, 5), "quick-help/" CASE));
	cr_expect_not(g_list->from_daemon);
	cr_expect_str_eq(g_list->time_zone, "Europe/Copenhagen");
	cr_expect_eq(r->due_at_ms, D(2026, 3, 11));
	cr_expect_not_null(at(D(2026, 3, 5), "handover/c-2"));

	w.deadline_rules =
		"{\"quick-help\": {\"due\": \"3 days\"}, \"handover\": {\"enabled\": false}}";
	w.time_zone = "UTC";
	w.time_zone_tzif.data = (uint8_t *)img;
	w.time_zone_tzif.len = len;
	cr_assert_eq(sdk_deadlines_welcome(tab, &w), FS_OK);
	cr_assert_not_null(r = at(D(2026, 3, 5), "quick-help/" CASE));
	cr_expect(g_list->from_daemon);
	cr_expect_str_eq(g_list->time_zone, "UTC");
	cr_expect_eq(r->due_at_ms, (int64_t)1772841600000, "the end of 6 March in UTC");
	cr_expect_null(at(D(2026, 3, 5), "handover/c-2"), "a rule switched off lists nothing");

	/* an older daemon (no fields), a table or a zone that does not load: no change */
	Fieldsync__V1__Welcome old = FIELDSYNC__V1__WELCOME__INIT;
	cr_assert_eq(sdk_deadlines_welcome(tab, &old), FS_OK);
	w.deadline_rules = "{\"quik-help\": {}}";
	cr_assert_eq(sdk_deadlines_welcome(tab, &w), FS_OK);
	w.deadline_rules = "{}";
	w.time_zone_tzif.len = 10;
	cr_assert_eq(sdk_deadlines_welcome(tab, &w), FS_OK);
	cr_assert_not_null(r = at(D(2026, 3, 5), "quick-help/" CASE));
	cr_expect_str_eq(g_list->time_zone, "UTC");
	cr_expect_eq(r->due_at_ms, (int64_t)1772841600000);
	tz_free(&utc);
}

/* Reading 9 on the tablet: contact_person is a staff identifier, never a
 * name; a case naming a person is refused before it is stored, so no
 * deadline carries the name. */
Test(sdk_deadlines, reading9_identifiers_only, .fini = fini_list)
{
	const char *json = "{\"first_contact_at_ms\": 1774360800000, "
			   "\"contact_person\": \"Karen Jensen\"}";
	char why[256];
	uint8_t *p = NULL;
	size_t n = 0;
	fs_err e = fs_json_to_payload("case", json, strlen(json), &p, &n, why, sizeof(why));
	if (e == FS_OK) {
		cr_expect_eq(fs_put(tab, "case", CASE, NULL, p, n), FS_ERR_INVALID,
		             "a name as contact person is refused");
		free(p);
	} else {
		cr_expect_eq(e, FS_ERR_INVALID);
		cr_expect(strstr(why, "contact_person") != NULL, "%s", why);
	}
	cr_assert_eq(fs_deadlines(tab, L(2026, 3, 30, 12, 0), NULL, &g_list), FS_OK);
	cr_expect_eq(g_list->n, 0, "nothing was stored, so nothing is due");
	put_json("case", CASE, NULL,
	         "{\"first_contact_at_ms\": 1774360800000, \"contact_person\": \"staff-7\"}");
	fs_deadlines_free(&g_list);
	cr_assert_not_null(at(L(2026, 3, 30, 12, 0), "quick-help/" CASE));
	cr_expect_str_eq(at(L(2026, 3, 30, 12, 0), "quick-help/" CASE)->contact_person, "staff-7");
}

/* Reading 10 on the tablet: a case counts only the contacts in its scope. */
Test(sdk_deadlines, reading10_scope, .fini = fini_list)
{
	const int64_t first = L(2026, 3, 3, 10, 0);
	put_json("case", CASE, "team-a", "{\"first_contact_at_ms\": %" PRId64 "}", first);
	put_json("contact", "k1", "team-b",
	         "{\"case_id\": \"" CASE "\", \"kind\": \"COUNSELLING\", \"held_at_ms\": %" PRId64
	         "}",
	         first + 3600000);
	cr_expect_str_eq(at(D(2026, 3, 5), "quick-help/" CASE)->state, "SCHEDULED",
	                 "another team's talk does not count");
	put_json("contact", "k1", "team-a",
	         "{\"case_id\": \"" CASE "\", \"kind\": \"COUNSELLING\", \"held_at_ms\": %" PRId64
	         "}",
	         first + 3600000);
	cr_expect_str_eq(at(D(2026, 3, 5), "quick-help/" CASE)->state, "MET");
}

/* Before any sync and without a tz database: the built-in Copenhagen rule
 * gives what the system's zone gives. */
Test(sdk_deadlines, defaults_without_a_tz_database, .fini = fini_list)
{
	put_json("case", CASE, NULL, "{\"first_contact_at_ms\": %" PRId64 "}",
	         L(2026, 3, 27, 23, 30));
	put_json("case", "c-2", NULL, "{\"first_contact_at_ms\": %" PRId64 "}",
	         L(2026, 10, 22, 12, 0));
	fs_deadline_list *sys = NULL, *builtin = NULL;
	cr_assert_eq(fs_deadlines(tab, D(2026, 3, 28), NULL, &sys), FS_OK);
	setenv("TZDIR", "/nonexistent", 1);
	cr_assert_eq(fs_deadlines(tab, D(2026, 3, 28), NULL, &builtin), FS_OK);
	unsetenv("TZDIR");
	cr_assert_eq(sys->n, 2);
	cr_assert_eq(builtin->n, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_expect_eq(sys->items[i].due_at_ms, builtin->items[i].due_at_ms);
		cr_expect_eq(sys->items[i].warning_at_ms, builtin->items[i].warning_at_ms);
	}
	cr_expect_eq(sys->items[0].due_at_ms, D(2026, 4, 4), "7 calendar days across the switch");
	fs_deadlines_free(&sys);
	fs_deadlines_free(&builtin);
}

Test(sdk_deadlines, filters_and_order, .fini = fini_list)
{
	const int64_t now = L(2026, 3, 20, 12, 0);
	fs_deadline_list *l = NULL;
	fs_deadline_filter f = {0};
	/* a: overdue (staff-1); b: due in 5 days (staff-2); c: met (staff-1); d: due in 2 days */
	put_json("case", "a", NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-1\"}",
	         now - 10 * DAY_MS);
	put_json("case", "b", NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-2\"}",
	         now - 2 * DAY_MS);
	put_json("case", "c", NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-1\"}",
	         now - 30 * DAY_MS);
	put_json("contact", "k1", NULL,
	         "{\"case_id\": \"c\", \"kind\": \"COUNSELLING\", \"held_at_ms\": %" PRId64 "}",
	         now - 29 * DAY_MS);
	put_json("case", "d", NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-1\"}",
	         now - 5 * DAY_MS);
	cr_assert_eq(fs_deadlines(tab, now, NULL, &l), FS_OK);
	cr_assert_eq(l->n, 4);
	cr_expect_str_eq(l->items[0].case_id, "a");
	cr_expect_str_eq(l->items[0].state, "OVERDUE");
	cr_expect_str_eq(l->items[1].case_id, "d");
	cr_expect_str_eq(l->items[2].case_id, "b");
	cr_expect_str_eq(l->items[3].case_id, "c");
	cr_expect_str_eq(l->items[3].state, "MET");
	fs_deadlines_free(&l);

	f.contact_person = "staff-1";
	cr_assert_eq(fs_deadlines(tab, now, &f, &l), FS_OK);
	cr_expect_eq(l->n, 3);
	fs_deadlines_free(&l);
	f.due_within_ms = 3 * DAY_MS; /* overdue and due in 2 days; not met */
	cr_assert_eq(fs_deadlines(tab, now, &f, &l), FS_OK);
	cr_assert_eq(l->n, 2);
	cr_expect_str_eq(l->items[0].case_id, "a");
	cr_expect_str_eq(l->items[1].case_id, "d");
	fs_deadlines_free(&l);
	f = (fs_deadline_filter){.case_id = "b"};
	cr_assert_eq(fs_deadlines(tab, now, &f, &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_str_eq(l->items[0].case_id, "b");
	fs_deadlines_free(&l);
	f = (fs_deadline_filter){.case_id = "no-such"};
	cr_assert_eq(fs_deadlines(tab, now, &f, &l), FS_OK);
	cr_expect_eq(l->n, 0);
	fs_deadlines_free(&l);
	/* a deleted case lists nothing */
	cr_assert_eq(fs_delete(tab, "case", "a"), FS_OK);
	cr_assert_eq(fs_deadlines(tab, now, NULL, &l), FS_OK);
	cr_expect_eq(l->n, 3);
	fs_deadlines_free(&l);
	cr_expect_eq(fs_deadlines(NULL, now, NULL, &l), FS_ERR_INVALID);
	fs_deadlines_free(&l); /* NULL: fine */
}

/* An encrypted store: the payloads are opened on the way to the rules. */
Test(sdk_deadlines, encrypted_store, .fini = fini_list)
{
	uint8_t key[FS_STORE_KEY_LEN];
	fs_store_opts o = {0};
	char *edir = fs_test_tmpdir();
	fs_store *plain = tab;
	const fs_deadline *r;

	memset(key, 7, sizeof(key));
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = "k1";
	cr_assert_eq(fs_store_create_ex(edir, &o, &tab), FS_OK);
	cr_assert(fs_store_encrypted(tab));
	put_json("case", CASE, NULL,
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-3\"}",
	         L(2026, 3, 3, 10, 0));
	contact("k1", "COUNSELLING", L(2026, 3, 4, 10, 0), 0);
	cr_assert_not_null(r = at(D(2026, 3, 5), "quick-help/" CASE));
	cr_expect_str_eq(r->state, "MET");
	cr_expect_str_eq(r->contact_person, "staff-3");
	fs_deadlines_free(&g_list);
	fs_store_close(&tab);
	tab = plain;
	fs_test_rm_rf(edir);
	free(edir);
}
