/*
 * cmd_deadlines.c: `fieldsync deadlines [--mine STAFF] [--due-within DUR]
 * [--case ID] [--json]`, the reminders the local data implies now
 * (fs_deadlines), for a caseworker without network.
 *
 * One line per reminder, in fs_deadlines' order (overdue first, then by due
 * time, met ones last): state, due time in the service's zone, rule, case,
 * contact person; --json one object per reminder with times in ms and the
 * due time as local text. Before the first sync the list is computed with
 * METHOD.md's defaults in Europe/Copenhagen: a note on stderr says so.
 *
 * Contract: cli.h. Single-threaded; the store is main's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* "7d", "12h", "30m", "2w" into ms; false when it is not one. */
static bool
duration_parse(const char *s, int64_t *ms)
{
	char *end = NULL;
	long long n;
	int64_t unit;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || end[0] == '\0' || end[1] != '\0' || n < 1 || n > 100000)
		return false;
	switch (end[0]) {
	case 'm':
		unit = 60000;
		break;
	case 'h':
		unit = 3600000;
		break;
	case 'd':
		unit = 86400000;
		break;
	case 'w':
		unit = 7 * 86400000LL;
		break;
	default:
		return false;
	}
	*ms = (int64_t)n * unit;
	return true;
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
print_json(const fs_deadline_list *l, const fs_deadline *d)
{
	char due[64];
	cJSON *o = cJSON_CreateObject();
	cli_local_time(d->due_at_ms, l->time_zone, false, due, sizeof(due));
	if (o == NULL || !cJSON_AddStringToObject(o, "reminder_id", d->reminder_id) ||
	    !cJSON_AddStringToObject(o, "rule", d->rule) ||
	    !cJSON_AddStringToObject(o, "case_id", d->case_id) ||
	    !cJSON_AddStringToObject(o, "scope", d->scope) ||
	    !cJSON_AddStringToObject(o, "contact_person", d->contact_person) ||
	    !cJSON_AddStringToObject(o, "state", d->state) ||
	    !cli_add_raw_int(o, "due_at_ms", d->due_at_ms) ||
	    !cli_add_raw_int(o, "due_day_ms", d->due_day_ms) ||
	    !cli_add_raw_int(o, "warning_at_ms", d->warning_at_ms) ||
	    !cJSON_AddStringToObject(o, "due_at", due) ||
	    !cJSON_AddStringToObject(o, "time_zone", l->time_zone)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return cli_print_json(o);
}

int
cmd_deadlines(fs_store *s, const cli_opts *o)
{
	fs_deadline_filter f = {0};
	fs_deadline_list *l = NULL;
	fs_err e;
	int rc = 0;

	if (o->due_within != NULL && !duration_parse(o->due_within, &f.due_within_ms))
		return cli_usage_error(
			"--due-within takes N followed by m, h, d or w (N 1..100000), "
			"e.g. --due-within=7d; not '%s'",
			o->due_within);
	if (o->case_id != NULL && (o->case_id[0] == '\0' || strlen(o->case_id) > 128))
		return cli_usage_error("--case takes a case id of 1..128 bytes");
	f.contact_person = o->mine;
	f.case_id = o->case_id;
	if ((e = fs_deadlines(s, now_ms(), &f, &l)) != FS_OK)
		return cli_fail("deadlines", e);
	if (!l->from_daemon)
		fprintf(stderr,
		        "fieldsync: no rule table from the daemon yet (never synced): "
		        "METHOD.md's default rules in %s\n",
		        l->time_zone);
	for (size_t i = 0; i < l->n && rc == 0; i++) {
		const fs_deadline *d = &l->items[i];
		char due[64];
		if (o->json) {
			rc = print_json(l, d);
			continue;
		}
		cli_local_time(d->due_at_ms, l->time_zone, false, due, sizeof(due));
		printf("%-9s %-22s %-17s %s %s\n", d->state, due, d->rule, d->case_id,
		       d->contact_person[0] != '\0' ? d->contact_person : "-");
	}
	fs_deadlines_free(&l);
	if (rc == 0 && fflush(stdout) != 0)
		rc = EX_FAIL;
	return rc;
}
