/*
 * Deadlines on the tablet (issue 13, part 2) against the real fieldsyncd:
 *   - random-history equivalence: random case histories written on a
 *     tablet, fs_deadlines() evaluated there BEFORE any push at a fixed
 *     now, then synced to a daemon whose clock stands at that now
 *     (--clock-offset-ms): every reminder the tablet lists has the daemon's
 *     stored state, due day, due time, warning time, contact person and
 *     scope, and the daemon stores no active or MET reminder the tablet
 *     does not list. FS_DL_SEED=N repeats a run; the seed is printed on
 *     failure. The daemon runs a rule table that is not METHOD.md's, so the
 *     table must have travelled in Welcome for the two to agree;
 *   - the rule table and zone from Welcome change the tablet's deadlines
 *     (quick-help switched off: none listed after a sync, back after the
 *     daemon reloaded its table; another zone: the due time moves to that
 *     zone's midnight);
 *   - `fieldsync deadlines`: sorted, overdue first, local times.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/keys.h"
#include "fieldsync/rules.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsyncd.h"

#define T_MS 60000
#define DAY ((int64_t)86400000)
#define HOUR ((int64_t)3600000)
/* 2026-03-25 11:00 UTC: 12:00 in Copenhagen, far from every local midnight */
#define NOW_MS ((int64_t)1774436400000)
#define ROUNDS 10
#define PER_ROUND 50 /* histories per sync: < 1000 changes, one change set */

static fs_test_daemon *d;
static char *ddir, *tdir;
static fs_store *tab;

static void
teardown(void)
{
	fs_store_close(&tab);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	if (tdir != NULL)
		fs_test_rm_rf(tdir);
	if (ddir != NULL)
		fs_test_rm_rf(ddir);
	free(tdir);
	free(ddir);
	tdir = ddir = NULL;
}

TestSuite(deadlines, .fini = teardown, .timeout = 600);

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static fs_err
sync_tab(void)
{
	fs_sync_opts o = {0};
	fs_sync_stats st;
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	fs_err e = fs_sync(tab, &o, &st);
	if (e == FS_OK)
		cr_assert_eq(st.failed, 0, "the daemon refused %" PRIu64 " changes", st.failed);
	return e;
}

/* Starts the daemon in ddir (kept after stop) with its clock at now_ms. */
static void
start_at(int64_t now_ms, const char *rules_file, const char *zone)
{
	char off[32];
	const char *args[8] = {"--clock-offset-ms", off};
	int n = 2;
	snprintf(off, sizeof(off), "%" PRId64, now_ms - wall_ms());
	if (rules_file != NULL) {
		args[n++] = "--rules";
		args[n++] = rules_file;
	}
	if (zone != NULL) {
		args[n++] = "--time-zone";
		args[n++] = zone;
	}
	args[n] = NULL;
	ddir = fs_test_tmpdir();
	d = fs_test_daemon_start_args(ddir, args);
	cr_assert_not_null(d, "the daemon must start");
}

static char *
write_file(const char *dir, const char *name, const char *text)
{
	char *path = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
open_tablet(void)
{
	tdir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(tdir, "team-a", &tab), FS_OK);
}

/* ---- random histories ---------------------------------------------------- */

static uint64_t rng;

static uint64_t
next_u64(void)
{
	rng ^= rng << 13; /* xorshift64 */
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int64_t
pick(int64_t n) /* 0..n-1 */
{
	return (int64_t)(next_u64() % (uint64_t)n);
}

/* An instant in [NOW + lo, NOW + hi), never within 2 h of NOW (the run
 * takes far less: the daemon's clock moves on while it runs). */
static int64_t
instant(int64_t lo, int64_t hi)
{
	int64_t t = NOW_MS + lo + pick(hi - lo);
	if (t > NOW_MS - 2 * HOUR && t < NOW_MS + 2 * HOUR)
		t += t < NOW_MS ? -2 * HOUR : 2 * HOUR;
	return t;
}

static const char *const staff[] = {"staff-1", "staff-2", "staff-3", "staff-4", ""};

static void
put_case(const char *id, const char *scope)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[512];
	c.person = (Fieldsync__V1__Case__Person)pick(2);
	c.anonymous = pick(4) == 0;
	c.under_18 = pick(2) == 0;
	c.contact_person = (char *)staff[pick(5)];
	c.first_contact_at_ms = pick(7) == 0 ? 0 : instant(-120 * DAY, 10 * DAY);
	c.track = (Fieldsync__V1__Case__Track)pick(4);
	c.ended_at_ms = pick(3) != 0 ? 0 : instant(-90 * DAY, pick(5) == 0 ? 20 * DAY : -1 * DAY);
	c.follow_up_wanted = pick(2) == 0;
	c.follow_up_channel = "phone";
	c.needs_further_support = pick(5) < 2;
	c.taken_over_by = pick(2) == 0 ? "psychiatry" : "";
	c.notification_duty_informed = pick(3) == 0;
	size_t n = fieldsync__v1__case__pack(&c, buf);
	cr_assert_eq(fs_put(tab, "case", id, scope, buf, n), FS_OK);
}

static void
put_contact(const char *id, const char *case_id, const char *scope)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	uint8_t buf[512];
	c.case_id = (char *)case_id;
	c.kind = (Fieldsync__V1__Contact__Kind)pick(6);
	c.held_at_ms = pick(10) == 0 ? 0 : instant(-150 * DAY, 25 * DAY);
	if (pick(10) < 3)
		c.next_at_ms = c.held_at_ms > 0 && pick(2) == 0
		                       ? c.held_at_ms + 1 * DAY + pick(30 * DAY)
		                       : instant(-40 * DAY, 40 * DAY);
	if (c.next_at_ms > NOW_MS - 2 * HOUR && c.next_at_ms < NOW_MS + 2 * HOUR)
		c.next_at_ms += 4 * HOUR;
	c.who5 = -1;
	size_t n = fieldsync__v1__contact__pack(&c, buf);
	cr_assert_eq(fs_put(tab, "contact", id, scope, buf, n), FS_OK);
}

/* One case history: the case (sometimes rewritten or deleted) and 0..14
 * contacts of every kind (sometimes rewritten or deleted), all in the
 * case's scope; now and then a contact of a case that does not exist. */
static void
history(int round, int i)
{
	char cid[64], kid[64];
	const char *scope =
		(round + i) % 3 == 0 ? "team-b" : "team-a"; /* the same on every tablet */
	snprintf(cid, sizeof(cid), "c-%d-%d", round, i);
	put_case(cid, scope);
	int n = (int)pick(15);
	for (int k = 0; k < n; k++) {
		snprintf(kid, sizeof(kid), "k-%d-%d-%d", round, i, k);
		put_contact(kid, cid, scope);
		if (pick(8) == 0)
			put_contact(kid, cid, scope); /* an edit: the new value wins */
		if (pick(20) == 0)
			cr_assert_eq(fs_delete(tab, "contact", kid), FS_OK);
	}
	if (pick(4) == 0)
		put_case(cid, scope); /* edited after its contacts */
	if (pick(30) == 0)
		cr_assert_eq(fs_delete(tab, "case", cid), FS_OK);
	if (pick(20) == 0) {
		snprintf(kid, sizeof(kid), "k-%d-%d-orphan", round, i);
		put_contact(kid, "no-such-case", scope);
	}
}

/* ---- the daemon's stored reminders ---------------------------------------- */

typedef struct row_seen {
	char reminder_id[RULES_ID_MAX];
	bool matched, met;
} row_seen;

typedef struct scan {
	store_txn *t;
	row_seen *rows;
	size_t n, cap;
} scan;

static bool
collect_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	scan *sc = arg;
	reminder_row *r = NULL;
	(void)val;
	(void)vlen;
	cr_assert_eq(reminder_rows_get(sc->t, key, klen, &r), FSD_OK);
	if (r->rule < RULE_COUNT && r->state != FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED) {
		if (sc->n == sc->cap) {
			sc->cap = sc->cap ? sc->cap * 2 : 256;
			sc->rows = realloc(sc->rows, sc->cap * sizeof(*sc->rows));
			cr_assert_not_null(sc->rows);
		}
		snprintf(sc->rows[sc->n].reminder_id, RULES_ID_MAX, "%s", r->reminder_id);
		sc->rows[sc->n].met = r->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__MET;
		sc->rows[sc->n++].matched = false;
	}
	fieldsyncd__store__reminder_row__free_unpacked(r, NULL);
	return true;
}

static const char *
state_text(uint32_t st)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&fieldsync__v1__reminder_event__state__descriptor, (int)st);
	return v ? v->name : "?";
}

/* Compares every list with the daemon's store (stopped); returns reminders
 * compared. history: the daemon saw the cases change over several pushes,
 * so it may keep a MET reminder whose start the final data no longer shows
 * (reading 7), which the tablet does not list: such rows are counted in
 * *history_met instead of failing. */
static size_t
compare_with_daemon(fs_deadline_list *const *lists, size_t n_lists, uint64_t seed, bool history,
                    size_t *history_met)
{
	store *s = store_open(ddir, 1ULL << 24, 1ULL << 30);
	store_txn *t = NULL;
	scan sc = {0};
	size_t compared = 0;
	cr_assert_not_null(s);
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	sc.t = t;
	cr_assert_eq(store_kv_scan(t, &reminders_table, NULL, 0, NULL, 0, collect_row, &sc),
	             FSD_OK);
	for (size_t li = 0; li < n_lists; li++) {
		const fs_deadline_list *l = lists[li];
		for (size_t i = 0; i < l->n; i++) {
			const fs_deadline *x = &l->items[i];
			uint8_t key[REMINDER_KEY_MAX];
			size_t kl = fsk_case_key(key, sizeof(key), x->case_id, x->reminder_id);
			reminder_row *r = NULL;
			cr_assert_eq(reminder_rows_get(t, key, kl, &r), FSD_OK,
			             "seed %" PRIu64 ": the tablet lists %s (%s), the daemon "
			             "stores no such reminder",
			             seed, x->reminder_id, x->state);
			cr_assert_str_eq(state_text(r->state), x->state,
			                 "seed %" PRIu64 ": %s state", seed, x->reminder_id);
			cr_assert_eq(r->due_at_ms, x->due_at_ms, "seed %" PRIu64 ": %s due", seed,
			             x->reminder_id);
			cr_assert_eq(r->due_day_ms, x->due_day_ms, "seed %" PRIu64 ": %s due day",
			             seed, x->reminder_id);
			cr_assert_eq(r->warning_at_ms, x->warning_at_ms,
			             "seed %" PRIu64 ": %s warning", seed, x->reminder_id);
			cr_assert_str_eq(r->contact_person, x->contact_person,
			                 "seed %" PRIu64 ": %s contact person", seed,
			                 x->reminder_id);
			cr_assert_str_eq(r->scope, x->scope, "seed %" PRIu64 ": %s scope", seed,
			                 x->reminder_id);
			fieldsyncd__store__reminder_row__free_unpacked(r, NULL);
			for (size_t k = 0; k < sc.n; k++)
				if (strcmp(sc.rows[k].reminder_id, x->reminder_id) == 0)
					sc.rows[k].matched = true;
			compared++;
		}
	}
	for (size_t k = 0; k < sc.n; k++) {
		if (history && !sc.rows[k].matched && sc.rows[k].met) {
			(*history_met)++;
			continue;
		}
		cr_assert(sc.rows[k].matched,
		          "seed %" PRIu64 ": the daemon stores %s, which the tablet does not list",
		          seed, sc.rows[k].reminder_id);
	}
	free(sc.rows);
	store_read_end(&t);
	store_close(&s);
	return compared;
}

static const char rules_json[] =
	"{\"quick-help\": {\"due\": \"5 days\", \"warning\": \"1 days\"},"
	" \"counselling-limit\": {\"count\": 3},"
	" \"treatment-window\": {\"due\": \"6 months\", \"count\": 6},"
	" \"parent-session\": {\"warning\": \"none\"},"
	" \"network-meeting\": {\"warning\": \"3 days\"},"
	" \"follow-up\": {\"due\": \"2 months\", \"warning\": \"2 weeks\"}}";

Test(deadlines, random_histories_equal_the_daemons)
{
	const char *env = getenv("FS_DL_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)wall_ms();
	fs_deadline_list *lists[ROUNDS] = {0};
	size_t total = 0, histories = 0;

	if (seed == 0)
		seed = 1;
	rng = seed;
	fprintf(stderr, "deadlines equivalence: seed %" PRIu64 " (FS_DL_SEED to repeat)\n", seed);
	char *rdir = fs_test_tmpdir();
	char *rules = write_file(rdir, "rules.json", rules_json);
	start_at(NOW_MS, rules, NULL);
	open_tablet();
	cr_assert_eq(sync_tab(), FS_OK); /* the first Welcome: the table and zone */

	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < PER_ROUND; i++, histories++)
			history(round, i);
		/* before the push: the tablet alone, at the daemon's now */
		cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &lists[round]), FS_OK);
		cr_assert(lists[round]->from_daemon);
		cr_assert_eq(sync_tab(), FS_OK, "seed %" PRIu64, seed);
	}
	/* the pull brought nothing new: after the sync the tablet says the same */
	fs_deadline_list *after = NULL;
	cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &after), FS_OK);
	total = lists[ROUNDS - 1]->n; /* the last list holds every case */
	cr_assert_eq(after->n, total, "seed %" PRIu64, seed);
	fs_deadlines_free(&after);

	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	/* every round's list, each made before its push, against the daemon */
	compare_with_daemon(lists, ROUNDS, seed, false, NULL);
	size_t compared = total, met = 0, overdue = 0;
	for (size_t k = 0; k < total; k++) {
		met += strcmp(lists[ROUNDS - 1]->items[k].state, "MET") == 0;
		overdue += strcmp(lists[ROUNDS - 1]->items[k].state, "OVERDUE") == 0;
	}
	for (int round = 0; round < ROUNDS; round++)
		fs_deadlines_free(&lists[round]);
	fprintf(stderr,
	        "deadlines equivalence: %zu histories, %zu reminders equal on tablet and daemon "
	        "(%zu met, %zu overdue)\n",
	        histories, compared, met, overdue);
	cr_assert_gt(compared, (size_t)histories, "the histories imply reminders");
	cr_assert_gt(met, 0);
	cr_assert_gt(overdue, 0);
	fs_test_rm_rf(rdir);
	free(rdir);
	free(rules);
}

/* Conflicts: two tablets write the same cases and contacts offline; after
 * both synced, each holds every sibling, and what it lists (every live
 * sibling counts) is what the daemon stores. */
Test(deadlines, conflicting_histories_equal_the_daemons)
{
	const char *env = getenv("FS_DL_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)wall_ms();
	fs_store *a, *b = NULL;
	char *bdir = fs_test_tmpdir();
	fs_deadline_list *la = NULL, *lb = NULL;
	size_t history_met = 0, conflicts = 0;
	fs_list *cl = NULL;

	rng = seed ? seed : 1;
	fprintf(stderr, "deadlines conflicts: seed %" PRIu64 " (FS_DL_SEED to repeat)\n", seed);
	start_at(NOW_MS, NULL, NULL);
	open_tablet();
	a = tab;
	cr_assert_eq(fs_store_create(bdir, "team-a", &b), FS_OK);
	for (int i = 0; i < 100; i++) {
		tab = b;
		history(0, i);
		tab = a;
		history(0, i); /* the same ids, other values */
	}
	tab = b;
	cr_assert_eq(sync_tab(), FS_OK);
	tab = a;
	cr_assert_eq(sync_tab(), FS_OK); /* pushes its siblings, pulls b's */
	tab = b;
	cr_assert_eq(sync_tab(), FS_OK);
	tab = a;
	cr_assert_eq(fs_list_conflicts(a, &cl), FS_OK);
	conflicts = cl->n;
	fs_list_free(&cl);
	cr_assert_gt(conflicts, 50, "the tablets hold the conflicts");
	cr_assert_eq(fs_deadlines(a, NOW_MS, NULL, &la), FS_OK);
	cr_assert_eq(fs_deadlines(b, NOW_MS, NULL, &lb), FS_OK);
	cr_assert_eq(la->n, lb->n, "seed %" PRIu64 ": both tablets list the same", seed);
	for (size_t i = 0; i < la->n; i++) {
		cr_assert_str_eq(la->items[i].reminder_id, lb->items[i].reminder_id);
		cr_assert_str_eq(la->items[i].state, lb->items[i].state);
		cr_assert_eq(la->items[i].due_at_ms, lb->items[i].due_at_ms);
		cr_assert_str_eq(la->items[i].contact_person, lb->items[i].contact_person,
		                 "seed %" PRIu64 ": siblings in another order, the same person",
		                 seed);
	}
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	size_t compared = compare_with_daemon(&la, 1, seed, true, &history_met);
	fprintf(stderr,
	        "deadlines conflicts: %zu records in conflict, %zu reminders equal on tablet and "
	        "daemon, %zu MET at the daemon from earlier pushes only\n",
	        conflicts, compared, history_met);
	fs_deadlines_free(&la);
	fs_deadlines_free(&lb);
	fs_store_close(&b);
	fs_test_rm_rf(bdir);
	free(bdir);
}

/* ---- the table and zone travel in Welcome -------------------------------- */

static void
put_json(const char *coll, const char *id, const char *json)
{
	uint8_t *p = NULL;
	size_t n = 0;
	char why[256];
	cr_assert_eq(fs_json_to_payload(coll, json, strlen(json), &p, &n, why, sizeof(why)), FS_OK,
	             "%s", why);
	cr_assert_eq(fs_put(tab, coll, id, NULL, p, n), FS_OK);
	free(p);
}

static size_t
count_rule(const fs_deadline_list *l, const char *rule)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += strcmp(l->items[i].rule, rule) == 0;
	return n;
}

Test(deadlines, welcome_rule_table_switches_quick_help_off)
{
	char *rdir = fs_test_tmpdir();
	char *rules = write_file(rdir, "rules.json", "{\"quick-help\": {\"enabled\": false}}");
	fs_deadline_list *l = NULL;
	char json[256];

	open_tablet();
	snprintf(json, sizeof(json),
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-7\"}",
	         NOW_MS - 3 * DAY);
	put_json("case", "c-1", json);
	cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &l), FS_OK);
	cr_assert_not(l->from_daemon, "no sync yet: the defaults");
	cr_assert_str_eq(l->time_zone, "Europe/Copenhagen");
	cr_assert_eq(count_rule(l, "quick-help"), 1, "METHOD.md's default has quick-help");
	fs_deadlines_free(&l);

	start_at(NOW_MS, rules, NULL);
	cr_assert_eq(sync_tab(), FS_OK);
	cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &l), FS_OK);
	cr_assert(l->from_daemon);
	cr_assert_eq(count_rule(l, "quick-help"), 0, "the daemon's table switched it off");
	fs_deadlines_free(&l);

	/* a reload (SIGHUP) with quick-help back on: the next Welcome says so */
	free(write_file(rdir, "rules.json", "{}"));
	cr_assert_eq(kill(fs_test_daemon_pid(d), SIGHUP), 0);
	size_t back = 0;
	for (int i = 0; i < 100 && back == 0; i++) {
		usleep(50000);
		cr_assert_eq(sync_tab(), FS_OK);
		cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &l), FS_OK);
		back = count_rule(l, "quick-help");
		fs_deadlines_free(&l);
	}
	cr_assert_eq(back, 1, "after the reload the tablet lists quick-help again");

	/* another daemon, in another zone, with METHOD.md's table */
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(ddir);
	free(ddir);
	ddir = NULL;
	start_at(NOW_MS, NULL, "America/New_York");
	cr_assert_eq(sync_tab(), FS_OK);
	cr_assert_eq(fs_deadlines(tab, NOW_MS, NULL, &l), FS_OK);
	cr_assert_str_eq(l->time_zone, "America/New_York");
	cr_assert_eq(count_rule(l, "quick-help"), 1);
	/* first contact 2026-03-22 11:00 UTC = 07:00 EDT; due at the end of the 29th
	 * in New York: 2026-03-30 00:00 EDT = 04:00 UTC */
	cr_assert_eq(l->items[0].due_at_ms, 1774843200000LL);
	fs_deadlines_free(&l);
	fs_test_rm_rf(rdir);
	free(rdir);
	free(rules);
}

/* ---- the CLI -------------------------------------------------------------- */

static char *
run(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t cap = 1 << 16, n = 0;
	char *out = calloc(1, cap);
	size_t got;
	while ((got = fread(out + n, 1, cap - 1 - n, p)) > 0)
		n += got;
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "%s", cmd);
	return out;
}

Test(deadlines, cli_sorted_overdue_first_local_time)
{
	char json[256], cmd[1024];
	int64_t now = wall_ms();
	open_tablet();
	/* c-late: quick-help overdue (9 days ago); c-soon: due in ~3 days;
	 * c-done: met by a talk */
	snprintf(json, sizeof(json),
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-2\"}",
	         now - 4 * DAY);
	put_json("case", "c-soon", json);
	snprintf(json, sizeof(json),
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-1\"}",
	         now - 9 * DAY);
	put_json("case", "c-late", json);
	snprintf(json, sizeof(json),
	         "{\"first_contact_at_ms\": %" PRId64 ", \"contact_person\": \"staff-1\"}",
	         now - 20 * DAY);
	put_json("case", "c-done", json);
	snprintf(json, sizeof(json),
	         "{\"case_id\": \"c-done\", \"kind\": \"COUNSELLING\", \"held_at_ms\": %" PRId64
	         "}",
	         now - 19 * DAY);
	put_json("contact", "k-1", json);
	fs_store_close(&tab);

	snprintf(cmd, sizeof(cmd), "%s -s %s deadlines 2>/dev/null", FS_CLI_BIN, tdir);
	char *out = run(cmd);
	char *l1 = strstr(out, "OVERDUE"), *l2 = strstr(out, "c-soon"), *l3 = strstr(out, "\nMET ");
	cr_assert(l1 != NULL && l2 != NULL && l3 != NULL, "%s", out);
	cr_assert(l1 < l2 && l2 < l3, "overdue first, then by due, met last:\n%s", out);
	cr_assert(strncmp(out, "OVERDUE", 7) == 0 && strstr(out, "c-late") < l2, "%s", out);
	/* local time in the service's zone: the end of a day, 00:00 CET or CEST */
	cr_assert(strstr(out, " 00:00 CE") != NULL, "%s", out);
	free(out);

	snprintf(cmd, sizeof(cmd), "%s -s %s deadlines --mine staff-2 --json 2>/dev/null",
	         FS_CLI_BIN, tdir);
	out = run(cmd);
	cr_assert(strstr(out, "\"case_id\":\"c-soon\"") != NULL, "%s", out);
	cr_assert(strstr(out, "c-late") == NULL && strstr(out, "\"due_at_ms\":") != NULL, "%s",
	          out);
	free(out);

	snprintf(cmd, sizeof(cmd), "%s -s %s deadlines --due-within 1d 2>&1", FS_CLI_BIN, tdir);
	out = run(cmd);
	cr_assert(strstr(out, "c-late") != NULL && strstr(out, "c-soon") == NULL &&
	                  strstr(out, "\nMET ") == NULL,
	          "overdue only, nothing met:\n%s", out);
	cr_assert(strstr(out, "default rules in Europe/Copenhagen") != NULL, "%s", out);
	free(out);
}
