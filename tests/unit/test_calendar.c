/*
 * calendar.c: the 77 checked cases of tests/vectors/calendar.json, the
 * corners the vectors do not reach (month ends, negative amounts, zones
 * whose DST switch swallows midnight, a skipped date), agreement with
 * glibc's own TZif reader over two centuries, synthetic TZif files (version
 * 1, footer-only rules) and corrupt ones.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fieldsync/calendar.h"

#define H 3600LL

/* ---- helpers ------------------------------------------------------------ */

static char g_tmpdir[64];
static char g_written[8][128]; /* files this test wrote into g_tmpdir */
static int g_nwritten;

static void
tmp_setup(void)
{
	strcpy(g_tmpdir, "/tmp/fs-test-calendar-XXXXXX");
	cr_assert_not_null(mkdtemp(g_tmpdir));
	cr_assert_eq(setenv("TZDIR", g_tmpdir, 1), 0);
}

static void
tmp_teardown(void)
{
	for (int i = 0; i < g_nwritten; i++)
		unlink(g_written[i]);
	if (g_tmpdir[0] != '\0')
		rmdir(g_tmpdir);
}

/* Writes len bytes as zone `name` (no '/') in the temporary TZDIR. */
static void
zone_write(const char *name, const void *data, size_t len)
{
	char path[128];
	FILE *f;
	bool known = false;

	snprintf(path, sizeof(path), "%s/%s", g_tmpdir, name);
	for (int i = 0; i < g_nwritten; i++)
		known |= strcmp(g_written[i], path) == 0;
	if (!known) {
		cr_assert_lt(g_nwritten, 8);
		strcpy(g_written[g_nwritten++], path);
	}
	cr_assert_not_null(f = fopen(path, "wb"));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* A whole file into malloc'd memory; *len its size. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0);
	rewind(f);
	cr_assert_not_null(buf = malloc((size_t)n + 1));
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static fs_tz *
load_ok(const char *name)
{
	char err[256] = "";
	fs_tz *tz = tz_load(name, err, sizeof(err));

	cr_assert_not_null(tz, "tz_load(%s): %s", name, err);
	cr_assert_str_eq(tz_name(tz), name);
	return tz;
}

static int64_t
due(const fs_tz *tz, int64_t start_ms, int amount, cal_unit unit)
{
	int64_t out = -1;

	cr_assert(cal_due_ms(tz, start_ms, amount, unit, &out),
	          "cal_due_ms(%s, %lld, %d) refused", tz_name(tz), (long long)start_ms,
	          amount);
	return out;
}

/* A synthetic TZif image: version 0 (v1) or '2'..'4'. */
typedef struct tzif_spec {
	char version;
	size_t ntimes;
	const int64_t *times;
	const uint8_t *idx;
	size_t ntypes;
	const int32_t *offs;
	uint32_t leapcnt;   /* leap records to write (zeros) */
	const char *footer; /* v2+ only */
} tzif_spec;

static size_t
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

static size_t
put_block(uint8_t *p, const tzif_spec *s, char version, unsigned tsize)
{
	size_t n = 0;

	memcpy(p, "TZif", 4);
	p[4] = (uint8_t)version;
	memset(p + 5, 0, 15);
	n = 20;
	n += put32(p + n, 0);               /* isutcnt */
	n += put32(p + n, 0);               /* isstdcnt */
	n += put32(p + n, s->leapcnt);
	n += put32(p + n, (uint32_t)s->ntimes);
	n += put32(p + n, (uint32_t)s->ntypes);
	n += put32(p + n, 4);               /* charcnt: "ABC\0" */
	for (size_t i = 0; i < s->ntimes; i++) {
		if (tsize == 8)
			n += put32(p + n, (uint32_t)((uint64_t)s->times[i] >> 32));
		n += put32(p + n, (uint32_t)s->times[i]);
	}
	for (size_t i = 0; i < s->ntimes; i++)
		p[n++] = s->idx[i];
	for (size_t i = 0; i < s->ntypes; i++) {
		n += put32(p + n, (uint32_t)s->offs[i]);
		p[n++] = 0; /* isdst */
		p[n++] = 0; /* desigidx */
	}
	memcpy(p + n, "ABC", 4);
	n += 4;
	memset(p + n, 0, (size_t)s->leapcnt * (tsize + 4));
	n += (size_t)s->leapcnt * (tsize + 4);
	return n;
}

static size_t
tzif_build(uint8_t *p, const tzif_spec *s)
{
	size_t n = put_block(p, s, s->version, 4);

	if (s->version == 0)
		return n;
	n += put_block(p + n, s, s->version, 8);
	n += (size_t)sprintf((char *)p + n, "\n%s\n", s->footer ? s->footer : "");
	return n;
}

/* A v2 zone with no transitions whose rule is TZ string `footer`. */
static fs_tz *
footer_zone(const char *name, const char *footer)
{
	static const int32_t offs[1] = {0};
	tzif_spec s = {.version = '2', .ntypes = 1, .offs = offs, .footer = footer};
	uint8_t buf[512];

	zone_write(name, buf, tzif_build(buf, &s));
	return load_ok(name);
}

/* Parses "...+01:00" / "...-04:00" / "...Z" at the end of an ISO string. */
static int64_t
iso_offset_s(const char *s)
{
	size_t n = strlen(s);
	int h, m;

	if (n > 0 && s[n - 1] == 'Z')
		return 0;
	cr_assert_geq(n, 6);
	cr_assert_eq(sscanf(s + n - 5, "%2d:%2d", &h, &m), 2, "offset of %s", s);
	return (s[n - 6] == '-' ? -1 : 1) * (h * H + m * 60);
}

/* ---- the vectors -------------------------------------------------------- */

Test(calendar, vectors)
{
	size_t len;
	char *text = (char *)slurp(FS_VECTORS_DIR "/calendar.json", &len);
	cJSON *root = cJSON_Parse(text), *cases, *c;
	fs_tz *tz = NULL;
	int n = 0, failed = 0;

	cr_assert_not_null(root, "calendar.json does not parse");
	cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
	cr_assert(cJSON_IsArray(cases));
	cJSON_ArrayForEach(c, cases) {
		const char *zone = cJSON_GetStringValue(cJSON_GetObjectItem(c, "time_zone"));
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(c, "why"));
		const char *start_local =
		    cJSON_GetStringValue(cJSON_GetObjectItem(c, "start_local"));
		const char *due_local = cJSON_GetStringValue(cJSON_GetObjectItem(c, "due_local"));
		const char *unit_s = cJSON_GetStringValue(cJSON_GetObjectItem(c, "unit"));
		cJSON *start = cJSON_GetObjectItem(c, "start_ms");
		cJSON *want = cJSON_GetObjectItem(c, "due_ms");
		cJSON *add = cJSON_GetObjectItem(c, "add");
		cal_unit unit;
		int64_t got = -1, start_ms, want_ms;

		cr_assert(zone && why && start_local && due_local && unit_s &&
		          cJSON_IsNumber(start) && cJSON_IsNumber(want) && cJSON_IsNumber(add),
		          "case %d is incomplete", n);
		start_ms = (int64_t)start->valuedouble;
		want_ms = (int64_t)want->valuedouble;
		if (tz == NULL || strcmp(tz_name(tz), zone) != 0) {
			tz_free(&tz);
			tz = load_ok(zone);
		}
		cr_assert(cal_unit_parse(unit_s, &unit), "case %d: unit %s", n, unit_s);
		cr_assert(cal_due_ms(tz, start_ms, add->valueint, unit, &got));
		if (got != want_ms)
			failed++;
		cr_expect_eq(got, want_ms,
		             "case %d (%s): %s + %d %s: got %lld, want %lld (%s)", n, why,
		             start_local, add->valueint, unit_s, (long long)got,
		             (long long)want_ms, due_local);
		/* The offsets printed in the vectors agree with ours. */
		cr_expect_eq(tz_offset_s(tz, start_ms / 1000), iso_offset_s(start_local),
		             "case %d (%s): offset at %s", n, why, start_local);
		cr_expect_eq(tz_offset_s(tz, want_ms / 1000), iso_offset_s(due_local),
		             "case %d (%s): offset at %s", n, why, due_local);
		n++;
	}
	cr_expect_eq(n, 77, "calendar.json holds %d cases, METHOD.md says 77", n);
	cr_expect_eq(failed, 0, "%d of %d cases failed", failed, n);
	tz_free(&tz);
	cJSON_Delete(root);
	free(text);
}

/* ---- corners ------------------------------------------------------------ */

Test(calendar, unit_parse)
{
	cal_unit u = CAL_MONTHS;

	cr_expect(cal_unit_parse("days", &u) && u == CAL_DAYS);
	cr_expect(cal_unit_parse("weeks", &u) && u == CAL_WEEKS);
	cr_expect(cal_unit_parse("months", &u) && u == CAL_MONTHS);
	u = CAL_WEEKS;
	cr_expect_not(cal_unit_parse("day", &u));
	cr_expect_not(cal_unit_parse("Days", &u));
	cr_expect_not(cal_unit_parse("", &u));
	cr_expect_not(cal_unit_parse(NULL, &u));
	cr_expect_eq(u, CAL_WEEKS, "a refused unit leaves *out alone");
}

Test(calendar, month_end_clamps)
{
	fs_tz *tz = load_ok("Europe/Copenhagen");

	/* 31 Jan 2026 + 1 month = 28 Feb: due when 1 March begins (+01:00). */
	cr_expect_eq(due(tz, 1769850000000, 1, CAL_MONTHS), 1772319600000);
	/* 31 Jan 2024 + 1 month = 29 Feb (leap year): due when 1 March begins. */
	cr_expect_eq(due(tz, 1706698800000, 1, CAL_MONTHS), 1709247600000);
	/* 29 Feb 2024 + 12 months = 28 Feb 2025. */
	cr_expect_eq(due(tz, 1709190000000, 12, CAL_MONTHS), 1740783600000);
	/* Backwards too: 31 Mar 2023 - 1 month = 28 Feb, 31 Mar 2024 - 1 = 29 Feb. */
	cr_expect_eq(due(tz, 1680256800000, -1, CAL_MONTHS), 1677625200000);
	cr_expect_eq(due(tz, 1711879200000, -1, CAL_MONTHS), 1709247600000);
	/* 31 May 2025 + 1 month = 30 June; 1 July begins at 00:00+02:00. */
	cr_expect_eq(due(tz, 1748685600000, 1, CAL_MONTHS), 1751320800000);
	/* Clamping does not carry over: 31 Jan + 2 months is 31 March. */
	cr_expect_eq(due(tz, 1769850000000, 2, CAL_MONTHS),
	             due(tz, 1769850000000, 59, CAL_DAYS));
	tz_free(&tz);
}

Test(calendar, negative_amounts_and_warnings)
{
	fs_tz *tz = load_ok("Europe/Copenhagen");
	const int64_t start = 1774360800000; /* 2026-03-24T15:00+01:00 */
	int64_t d, w = -1;

	/* quick-help: due 7 days after, warning 2 days before due. */
	d = due(tz, start, 7, CAL_DAYS);
	cr_assert_eq(d, 1774994400000); /* 2026-04-01T00:00+02:00 */
	cr_assert(cal_before_ms(tz, d, 2, CAL_DAYS, &w));
	cr_expect_eq(w, 1774821600000, "end of 29 March, the spring-forward day");
	cr_expect_eq(w, due(tz, start, 5, CAL_DAYS));
	/* -2 days from the start itself: the end of 22 March. */
	cr_expect_eq(due(tz, start, -2, CAL_DAYS), 1774220400000);
	cr_expect_eq(due(tz, start, -1, CAL_WEEKS), due(tz, start, -7, CAL_DAYS));
	/* The end of the start's own day, and of the day before it. */
	cr_expect_eq(due(tz, start, 0, CAL_DAYS), due(tz, start, 1, CAL_DAYS) - 24 * H * 1000);
	/* treatment-window: 9 months, warning 1 month before = 8 months. */
	d = due(tz, start, 9, CAL_MONTHS);
	cr_assert_eq(d, 1798153200000);
	cr_assert(cal_before_ms(tz, d, 1, CAL_MONTHS, &w));
	cr_expect_eq(w, 1795561200000); /* 2026-11-25T00:00+01:00 */
	cr_expect_eq(w, due(tz, start, 8, CAL_MONTHS));
	/* group-course: 3 months, warning 2 weeks before. */
	d = due(tz, start, 3, CAL_MONTHS);
	cr_assert(cal_before_ms(tz, d, 2, CAL_WEEKS, &w));
	cr_expect_eq(d - w, 14 * 24 * H * 1000, "June has no DST switch");
	/* A meeting at 10:00 on 10 June: 2 days before is the end of 8 June. */
	cr_assert(cal_before_ms(tz, 1781078400000, 2, CAL_DAYS, &w));
	cr_expect_eq(w, 1780956000000);
	tz_free(&tz);
}

Test(calendar, midnight_dst_switch)
{
	fs_tz *havana = load_ok("America/Havana");
	fs_tz *santiago = load_ok("America/Santiago");
	int64_t day;

	/* Havana springs from 23:59:59 to 01:00: 8 March 2026 begins at
	 * 01:00-04:00, so the end of 7 March is 05:00Z, not 04:00Z. */
	cr_expect_eq(due(havana, 1772816400000, 1, CAL_DAYS), 1772946000000);
	/* Autumn, 00:59:59 back to 00:00: 1 Nov begins at its first 00:00. */
	cr_expect_eq(due(havana, 1793376000000, 1, CAL_DAYS), 1793505600000);
	/* 2040 is past the table: the footer rule M3.2.0/0 does it. */
	cr_expect_eq(due(havana, 2214925200000, 1, CAL_DAYS), 2215054800000);
	/* Santiago falls back from Saturday 24:00 to 23:00: Sunday 5 April
	 * begins once, at 00:00-04:00. */
	cr_expect_eq(due(santiago, 1775228400000, 1, CAL_DAYS), 1775361600000);
	/* ...and springs from Saturday 24:00 to Sunday 01:00 on 6 September. */
	cr_expect_eq(due(santiago, 1788537600000, 1, CAL_DAYS), 1788667200000);
	cr_expect_eq(tz_offset_s(santiago, 1788667200), -3 * H);
	cr_expect_eq(tz_offset_s(santiago, 1788667199), -4 * H);
	/* The day a deadline falls on begins where the clocks say it does. */
	cr_assert(cal_day_start_ms(havana, 1772946000000 + 12 * H * 1000, &day));
	cr_expect_eq(day, 1772946000000, "8 March 2026 began at 01:00 in Havana");
	cr_assert(cal_day_start_ms(havana, 1772946000000, &day));
	cr_expect_eq(day, 1772946000000);
	cr_assert(cal_day_start_ms(havana, 1772946000000 - 1, &day));
	cr_expect_eq(day, 1772946000000 - 24 * H * 1000, "7 March began at 00:00-05:00");
	cr_expect_eq(due(havana, 1772946000000, 0, CAL_DAYS) - 1772946000000, 23 * H * 1000,
	             "8 March: 23 hours long");
	cr_assert(cal_day_start_ms(santiago, 1775361600000 - 1, &day));
	cr_expect_eq(day, 1775361600000 - 25 * H * 1000, "4 April: 25 hours long");
	tz_free(&havana);
	tz_free(&santiago);
}

Test(calendar, skipped_date)
{
	fs_tz *apia = load_ok("Pacific/Apia");

	/* Samoa skipped 30 December 2011: Thursday 29th 23:59:59-10:00 was
	 * followed by Saturday 31st 00:00+14:00 (2011-12-30T10:00Z). */
	cr_expect_eq(due(apia, 1325196000000, 0, CAL_DAYS), 1325239200000);
	cr_expect_eq(due(apia, 1325196000000, 1, CAL_DAYS), 1325239200000);
	cr_expect_eq(due(apia, 1325196000000, 2, CAL_DAYS), 1325239200000 + 24 * H * 1000);
	tz_free(&apia);
}

Test(calendar, range)
{
	fs_tz *tz = load_ok("Europe/Copenhagen");
	int64_t out = 42;

	cr_expect_not(cal_due_ms(tz, INT64_MAX, 1, CAL_DAYS, &out));
	cr_expect_not(cal_due_ms(tz, INT64_MIN, 1, CAL_DAYS, &out));
	cr_expect_not(cal_due_ms(tz, 0, INT32_MAX, CAL_MONTHS, &out));
	cr_expect_not(cal_due_ms(tz, 0, INT32_MIN, CAL_DAYS, &out));
	cr_expect_not(cal_before_ms(tz, 0, INT32_MIN, CAL_DAYS, &out));
	cr_expect_not(cal_before_ms(tz, INT64_MIN, 1, CAL_DAYS, &out));
	cr_expect_eq(out, 42, "refusals leave *due_ms alone");
	/* Year 9999 still works; 1 January 10000 does not. */
	cr_expect(cal_due_ms(tz, 253402214400000 - 1000 * H * 24, 0, CAL_DAYS, &out));
	cr_expect_not(cal_due_ms(tz, 253402214400000, 0, CAL_DAYS, &out));
	/* Before 1970: the end of 1 March 1900 (CMT, +00:50:20, ended in 1894). */
	cr_expect_eq(due(tz, -2203891200000, 0, CAL_DAYS), -2203804800000 - 3600000);
	tz_free(&tz);
}

/* ---- against glibc ------------------------------------------------------ */

static const char *const sweep_zones[] = {
    "Europe/Copenhagen", "America/Havana",   "America/Santiago", "Asia/Beirut",
    "America/Asuncion",  "Africa/Cairo",     "America/Scoresbysund",
    "Asia/Tehran",       "Australia/Lord_Howe", "America/Nuuk", "Europe/Dublin",
    "Antarctica/Troll",  "Pacific/Chatham",  "America/St_Johns", "Africa/Casablanca",
    "Pacific/Kiritimati", "Etc/GMT+12",      "UTC",
};

/* glibc's offset and local date (days since 1970) at t, zone set by TZ. */
static void
libc_local(time_t t, int64_t *off, int64_t *day)
{
	struct tm tm;

	cr_assert_not_null(localtime_r(&t, &tm));
	*off = tm.tm_gmtoff;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = 0;
	*day = (int64_t)timegm(&tm) / 86400;
}

/* Offsets every 6 h 1 s from 1900 to 2100 (the footer from 2037 on), and
 * the first instant of every local date 1970-2060, checked by glibc. */
Test(calendar, agrees_with_glibc)
{
	char tzvar[128];

	for (size_t z = 0; z < sizeof(sweep_zones) / sizeof(sweep_zones[0]); z++) {
		fs_tz *tz = load_ok(sweep_zones[z]);
		int64_t off, day, day2, bad = 0, skipped = 0;

		snprintf(tzvar, sizeof(tzvar), ":%s", sweep_zones[z]);
		setenv("TZ", tzvar, 1);
		tzset();
		for (int64_t t = -2208988800; t < 4102444800 && bad < 5; t += 6 * H + 1) {
			libc_local((time_t)t, &off, &day);
			if (tz_offset_s(tz, t) != off)
				bad++;
			cr_expect_eq(tz_offset_s(tz, t), off, "%s at %lld", sweep_zones[z],
			             (long long)t);
		}
		for (int64_t d = 0; d < 33000 && bad < 5; d++) {
			int64_t start = d * 86400 + 43200, end;

			libc_local((time_t)start, &off, &day);
			end = due(tz, start * 1000, 0, CAL_DAYS) / 1000;
			libc_local((time_t)end, &off, &day2);
			if (day2 < day + 1)
				bad++;
			skipped += day2 > day + 1;
			cr_expect_geq(day2, day + 1, "%s: start %lld, end of its day %lld",
			              sweep_zones[z], (long long)start, (long long)end);
			libc_local((time_t)end - 1, &off, &day2);
			if (day2 > day)
				bad++;
			cr_expect_leq(day2, day, "%s: %lld is not the first instant",
			              sweep_zones[z], (long long)end);
		}
		/* Only Kiritimati skipped a date: 31 December 1994. */
		cr_expect_eq(skipped, strcmp(sweep_zones[z], "Pacific/Kiritimati") == 0,
		             "%s: %lld dates skipped", sweep_zones[z], (long long)skipped);
		tz_free(&tz);
	}
}

/* ---- synthetic zones ------------------------------------------------------ */


TestSuite(tzif, .init = tmp_setup, .fini = tmp_teardown);

/* Loads a zone from the system database while TZDIR points elsewhere. */
static fs_tz *
load_system(const char *name)
{
	fs_tz *tz;

	cr_assert_eq(setenv("TZDIR", "/usr/share/zoneinfo", 1), 0);
	tz = load_ok(name);
	cr_assert_eq(setenv("TZDIR", g_tmpdir, 1), 0);
	return tz;
}

/* Offsets of a and b agree hourly (plus a second) over [from, to). */
static void
expect_same_offsets(const fs_tz *a, const fs_tz *b, int64_t from, int64_t to)
{
	int bad = 0;

	for (int64_t t = from; t < to && bad < 5; t += H + 1) {
		if (tz_offset_s(a, t) != tz_offset_s(b, t))
			bad++;
		cr_expect_eq(tz_offset_s(a, t), tz_offset_s(b, t), "%s vs %s at %lld",
		             tz_name(a), tz_name(b), (long long)t);
	}
}

/* Zones with no transitions at all: everything comes from the footer, and
 * must agree with the real zones' tables (built by zic from the same rules). */
Test(tzif, footer_matches_tables)
{
	static const struct {
		const char *real, *footer;
		int64_t from, to;
	} z[] = {
	    {"Europe/Copenhagen", "CET-1CEST,M3.5.0,M10.5.0/3", 852076800, 2140000000},
	    {"America/Santiago", "<-04>4<-03>,M9.1.6/24,M4.1.6/24", 1704067200, 2140000000},
	    {"America/Havana", "CST5CDT,M3.2.0/0,M11.1.0/1", 1356998400, 2140000000},
	    /* Negative DST (winter is "summer" time) and negative rule times. */
	    {"Europe/Dublin", "IST-1GMT0,M10.5.0,M3.5.0/1", 852076800, 2140000000},
	    {"America/Nuuk", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 1704067200, 2140000000},
	    {"Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1262304000,
	     2140000000},
	};

	for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
		fs_tz *real = load_system(z[i].real);
		fs_tz *syn = footer_zone("Footer", z[i].footer);

		expect_same_offsets(real, syn, z[i].from, z[i].to);
		tz_free(&syn);
		tz_free(&real);
	}
}

Test(tzif, footer_forms)
{
	fs_tz *tz;

	/* Daylight time all year (RFC 8536 3.3.1): J365/25 ends after the year. */
	tz = footer_zone("AllYear", "EST5EDT,0/0,J365/25");
	for (int64_t t = 1577836800 - 10 * H; t < 1893456000; t += 7 * H + 1)
		cr_assert_eq(tz_offset_s(tz, t), -4 * H, "at %lld", (long long)t);
	tz_free(&tz);
	/* Jn never counts 29 February: J60 is 1 March, also in 2024. */
	tz = footer_zone("Julian", "AAA0BBB,J60/0,J300/0");
	cr_expect_eq(tz_offset_s(tz, 1709251199), 0);        /* 2024-02-29T23:59:59Z */
	cr_expect_eq(tz_offset_s(tz, 1709251200), H);        /* 2024-03-01T00:00Z */
	cr_expect_eq(tz_offset_s(tz, 1740787200 - 1), 0);    /* 2025-02-28T23:59:59Z */
	cr_expect_eq(tz_offset_s(tz, 1740787200), H);
	tz_free(&tz);
	/* n is zero-based and counts it: day 59 of 2024 is 29 February. */
	tz = footer_zone("Zero", "AAA0BBB,59/0,299/0");
	cr_expect_eq(tz_offset_s(tz, 1709164799), 0);
	cr_expect_eq(tz_offset_s(tz, 1709164800), H);        /* 2024-02-29T00:00Z */
	tz_free(&tz);
	/* No DST; an offset with minutes; and the default hour of DST. */
	tz = footer_zone("Fixed", "<+0530>-5:30");
	cr_expect_eq(tz_offset_s(tz, 4102444800), 5 * H + 1800);
	tz_free(&tz);
	tz = footer_zone("Default", "AAA-2BBB,M3.5.0,M10.5.0/3");
	cr_expect_eq(tz_offset_s(tz, 1782000000), 3 * H); /* summer 2026 */
	cr_expect_eq(tz_offset_s(tz, 1798000000), 2 * H); /* winter */
	tz_free(&tz);
}

Test(tzif, version1_and_empty_footer)
{
	static const int64_t times[2] = {1000000, 2000000};
	static const uint8_t idx[2] = {1, 0};
	static const int32_t offs[2] = {3600, 7200};
	tzif_spec s = {.version = 0, .ntimes = 2, .times = times, .idx = idx, .ntypes = 2,
	               .offs = offs};
	uint8_t buf[512];
	fs_tz *tz;

	zone_write("V1", buf, tzif_build(buf, &s));
	tz = load_ok("V1");
	cr_expect_eq(tz_offset_s(tz, 0), 3600, "before the first transition: type 0");
	cr_expect_eq(tz_offset_s(tz, 999999), 3600);
	cr_expect_eq(tz_offset_s(tz, 1000000), 7200);
	cr_expect_eq(tz_offset_s(tz, 1999999), 7200);
	cr_expect_eq(tz_offset_s(tz, 2000000), 3600);
	cr_expect_eq(tz_offset_s(tz, INT64_MAX), 3600, "after the last: its type");
	cr_expect_eq(tz_offset_s(tz, INT64_MIN), 3600);
	tz_free(&tz);

	s.version = '3'; /* empty footer: the last type goes on */
	s.footer = "";
	zone_write("V3", buf, tzif_build(buf, &s));
	tz = load_ok("V3");
	cr_expect_eq(tz_offset_s(tz, 1500000), 7200);
	cr_expect_eq(tz_offset_s(tz, 4102444800), 3600);
	tz_free(&tz);
}

/* tz_load(name) must fail, and its error must mention `what`. */
static void
expect_refused(const char *name, const char *what)
{
	char err[256] = "";
	fs_tz *tz = tz_load(name, err, sizeof(err));

	cr_expect_null(tz, "%s loaded", name ? name : "(null)");
	tz_free(&tz);
	cr_expect_not_null(strstr(err, what), "%s: error \"%s\" lacks \"%s\"",
	                   name ? name : "(null)", err, what);
}

Test(calendar, bad_names)
{
	char err[8];
	fs_tz *tz = NULL;

	expect_refused("Mars/Olympus_Mons", "no such zone");
	expect_refused("Mars/Olympus_Mons", "Mars/Olympus_Mons");
	expect_refused("Europe", "not a zone file");
	expect_refused("", "not a zone name");
	expect_refused(NULL, "not a zone name");
	expect_refused("../../../etc/passwd", "not a zone name");
	expect_refused("/etc/localtime", "not a zone name");
	expect_refused("Europe//Copenhagen", "not a zone name");
	expect_refused("Europe/./Copenhagen", "not a zone name");
	expect_refused("Europe/Copenhagen/", "not a zone name");
	expect_refused("Europe/Copenhagen\n", "not a zone name");
	cr_expect_null(tz_load("Nowhere", NULL, 0));
	cr_expect_null(tz_load("Nowhere", err, sizeof(err)));
	cr_expect_eq(strlen(err), sizeof(err) - 1, "the error is cut to fit");
	tz_free(NULL);
	tz_free(&tz);
}

Test(tzif, corrupt_files)
{
	static const int64_t times[2] = {1000000, 2000000};
	static const uint8_t idx[2] = {1, 0};
	static const int32_t offs[2] = {3600, 7200};
	tzif_spec s = {.version = '2', .ntimes = 2, .times = times, .idx = idx, .ntypes = 2,
	               .offs = offs, .footer = "CET-1"};
	uint8_t buf[1024], bad[1024];
	size_t n = tzif_build(buf, &s);

	zone_write("Zone", buf, n);
	tz_free((fs_tz *[]){load_ok("Zone")});

	zone_write("Zone", "", 0);
	expect_refused("Zone", "truncated header");
	zone_write("Zone", "garbage, not a zone file at all........................", 56);
	expect_refused("Zone", "not a TZif file");

	/* Every field that is checked, one at a time. */
	memcpy(bad, buf, n);
	bad[4] = '5';
	zone_write("Zone", bad, n);
	expect_refused("Zone", "unsupported TZif version");
	/* The second header starts at 44 + 2*5 + 2*6 + 4 = 70, its data at 114. */
	memcpy(bad, buf, n);
	memset(bad + 70 + 32, 0xff, 4); /* timecnt = 4294967295 */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "truncated data block");
	memcpy(bad, buf, n);
	memset(bad + 70 + 36, 0, 4); /* typecnt = 0 */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "no local time types");
	memcpy(bad, buf, n);
	memcpy(bad + 114, bad + 122, 8); /* first transition = second */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "out of order");
	memcpy(bad, buf, n);
	bad[130] = 2; /* type index of the first transition */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "unknown type");
	memcpy(bad, buf, n);
	bad[132] = 0x7f; /* first UTC offset: about 67 years */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "UTC offset out of range");
	memcpy(bad, buf, n);
	bad[n - 1] = 'x'; /* footer's closing newline */
	zone_write("Zone", bad, n);
	expect_refused("Zone", "unterminated footer");

	s.footer = "CET-1CEST,M13.5.0,M10.5.0/3";
	zone_write("Zone", buf, tzif_build(buf, &s));
	expect_refused("Zone", "malformed TZ string");
	s.footer = "CET-1CEST"; /* DST with no dates */
	zone_write("Zone", buf, tzif_build(buf, &s));
	expect_refused("Zone", "malformed TZ string");
	s.footer = "CET-1CEST,M3.5.0,M10.5.0/3 ";
	zone_write("Zone", buf, tzif_build(buf, &s));
	expect_refused("Zone", "malformed TZ string");
	s.footer = "CET-1";
	s.leapcnt = 1;
	zone_write("Zone", buf, tzif_build(buf, &s));
	expect_refused("Zone", "leap-second");
}

Test(tzif, truncated_and_mutated_copenhagen)
{
	size_t len;
	uint8_t *orig = slurp("/usr/share/zoneinfo/Europe/Copenhagen", &len);
	uint8_t *buf = malloc(len), *big;
	uint32_t rng = 12345;
	int loaded = 0, refused = 0;

	cr_assert_not_null(buf);
	zone_write("Cph", orig, len);
	tz_free((fs_tz *[]){load_ok("Cph")});
	/* Every proper prefix is refused. */
	for (size_t cut = 0; cut < len; cut++) {
		char err[256] = "";
		fs_tz *tz;

		zone_write("Cph", orig, cut);
		tz = tz_load("Cph", err, sizeof(err));
		cr_assert_null(tz, "the first %zu of %zu bytes loaded", cut, len);
		cr_assert_not_null(strstr(err, "malformed TZif file"), "%zu: %s", cut, err);
	}
	/* Random damage: refused, or loaded and usable; never a crash or hang. */
	for (int i = 0; i < 3000; i++) {
		fs_tz *tz;
		int64_t out;

		memcpy(buf, orig, len);
		for (int k = 0; k < 1 + i % 4; k++) {
			rng = rng * 1103515245u + 12345u;
			buf[(rng >> 8) % len] = (uint8_t)(rng >> 20);
		}
		zone_write("Cph", buf, len);
		if ((tz = tz_load("Cph", NULL, 0)) == NULL) {
			refused++;
			continue;
		}
		loaded++;
		for (int64_t t = -4000000000; t < 8000000000; t += 123456789) {
			int64_t off = tz_offset_s(tz, t);

			cr_assert(off > -26 * H && off < 26 * H);
			cal_due_ms(tz, t * 1000, 1 + i % 40, (cal_unit)(i % 3), &out);
		}
		tz_free(&tz);
	}
	cr_expect_gt(refused, 100, "validation refused only %d of 3000", refused);
	cr_expect_gt(loaded, 100, "only %d of 3000 harmless mutants loaded", loaded);
	/* Trailing bytes are ignored, but a file over the cap is refused. */
	big = calloc(1, 256 * 1024 + 1);
	cr_assert_not_null(big);
	memcpy(big, orig, len);
	zone_write("Cph", big, 256 * 1024);
	tz_free((fs_tz *[]){load_ok("Cph")});
	zone_write("Cph", big, 256 * 1024 + 1);
	expect_refused("Cph", "file too large");
	free(big);
	free(buf);
	free(orig);
}
