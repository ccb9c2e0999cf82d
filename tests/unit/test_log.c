/*
 * log.c: one JSON object per line on stderr. stderr is redirected to a
 * temporary file for the duration of each check and every line is parsed
 * with cJSON.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fieldsyncd.h"

#define LINES_MAX 16

static int g_saved = -1;
static char g_path[64];

/* Starts sending fd 2 to a fresh temporary file. */
static void
capture_begin(void)
{
	snprintf(g_path, sizeof(g_path), "/tmp/fs-log-XXXXXX");
	int fd = mkstemp(g_path);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	g_saved = dup(2);
	cr_assert_geq(g_saved, 0);
	cr_assert_geq(dup2(fd, 2), 0);
	close(fd);
}

/* Restores fd 2; returns everything written meanwhile (malloc'd). */
static char *
capture_end(void)
{
	fflush(stderr);
	dup2(g_saved, 2);
	close(g_saved);
	g_saved = -1;
	FILE *f = fopen(g_path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	unlink(g_path);
	return buf;
}

static void
teardown(void)
{
	if (g_saved >= 0) { /* an assertion failed mid-capture */
		dup2(g_saved, 2);
		close(g_saved);
		unlink(g_path);
	}
	log_set_level(LOG_INFO);
}

TestSuite(log, .fini = teardown);

/*
 * Splits out into lines (in place); every line must end with '\n'.
 * Returns the number of lines.
 */
static size_t
split_lines(char *out, char **lines, size_t max)
{
	size_t n = 0;
	char *p = out;
	while (*p != '\0') {
		char *nl = strchr(p, '\n');
		cr_assert_not_null(nl, "the last line has no newline: '%s'", p);
		cr_assert_lt(n, max, "more than %zu lines", max);
		*nl = '\0';
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

/* Parses one line as exactly one JSON object (nothing after it). */
static cJSON *
parse_line(const char *line)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(line, &end, 1);
	cr_assert_not_null(j, "not valid JSON: %s", line);
	cr_assert(cJSON_IsObject(j), "not a JSON object: %s", line);
	return j;
}

static const char *
get_str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	cr_assert(cJSON_IsString(v), "\"%s\" is missing or not a string", key);
	return v->valuestring;
}

static double
get_num(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	cr_assert(cJSON_IsNumber(v), "\"%s\" is missing or not a number", key);
	return v->valuedouble;
}

/* "2026-01-31T23:59:59.123Z" */
static bool
is_timestamp(const char *ts)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (strlen(ts) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i] != '\0'; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)ts[i]) : ts[i] != shape[i])
			return false;
	return true;
}

Test(log, one_json_line_per_call_with_ts_level_msg)
{
	char *lines[LINES_MAX];
	capture_begin();
	log_event(LOG_INFO, "first", NULL);
	log_event(LOG_WARN, "second", LS("k", "v"), NULL);
	log_event(LOG_ERROR, "third", LU("n", 3), LI("d", -3), NULL);
	char *out = capture_end();
	size_t n = split_lines(out, lines, LINES_MAX);
	cr_assert_eq(n, 3, "3 calls wrote %zu lines", n);

	static const char *const msgs[] = {"first", "second", "third"};
	static const char *const levels[] = {"info", "warn", "error"};
	for (size_t i = 0; i < n; i++) {
		cJSON *j = parse_line(lines[i]);
		const cJSON *first = j->child;
		cr_assert_not_null(first);
		cr_expect_str_eq(first->string, "ts", "the object starts with ts: %s", lines[i]);
		cr_expect_str_eq(first->next->string, "level");
		cr_expect_str_eq(first->next->next->string, "msg");
		cr_expect(is_timestamp(get_str(j, "ts")), "ts '%s' is not ISO-8601 UTC with ms",
		          get_str(j, "ts"));
		cr_expect_str_eq(get_str(j, "level"), levels[i]);
		cr_expect_str_eq(get_str(j, "msg"), msgs[i]);
		cJSON_Delete(j);
	}
	cJSON *j = parse_line(lines[1]);
	cr_expect_eq(cJSON_GetArraySize(j), 4, "ts, level, msg, k");
	cr_expect_str_eq(get_str(j, "k"), "v");
	cJSON_Delete(j);
	free(out);
}

Test(log, typed_values)
{
	char *lines[LINES_MAX];
	capture_begin();
	log_event(LOG_INFO, "typed", LS("s", "hello world"), LU("u", 42), LI("i", -42),
	          LU("umax", UINT64_MAX), LI("imin", INT64_MIN), LI("imax", INT64_MAX),
	          LU("zero", 0), LS("null", NULL), NULL);
	char *out = capture_end();
	cr_assert_eq(split_lines(out, lines, LINES_MAX), 1);
	cJSON *j = parse_line(lines[0]);

	cr_expect_str_eq(get_str(j, "s"), "hello world");
	cr_expect_eq(get_num(j, "u"), 42.0);
	cr_expect_eq(get_num(j, "i"), -42.0);
	cr_expect_eq(get_num(j, "zero"), 0.0);
	cr_expect_str_eq(get_str(j, "null"), "", "a NULL string is logged as \"\"");
	get_num(j, "umax");
	get_num(j, "imin");
	/* Doubles cannot hold these exactly: check the digits themselves. */
	cr_expect(strstr(lines[0], "\"umax\":18446744073709551615") != NULL, "%s", lines[0]);
	cr_expect(strstr(lines[0], "\"imin\":-9223372036854775808") != NULL, "%s", lines[0]);
	cr_expect(strstr(lines[0], "\"imax\":9223372036854775807") != NULL, "%s", lines[0]);

	/* Keys come out in the order given, after ts, level and msg. */
	static const char *const order[] = {"ts", "level", "msg", "s", "u", "i",
	                                    "umax", "imin", "imax", "zero", "null"};
	const cJSON *it = j->child;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++, it = it->next) {
		cr_assert_not_null(it, "only %zu keys", k);
		cr_expect_str_eq(it->string, order[k]);
	}
	cr_expect_null(it, "more keys than were given");
	cJSON_Delete(j);
	free(out);
}

Test(log, escapes_keep_the_json_valid)
{
	static const char *const values[] = {
		"say \"hi\"",
		"C:\\temp\\new",
		"two\nlines",
		"tab\there, cr\r, bell\a, esc\x1b, unit sep\x1f, \x01",
		"\\\"",
		"\"",
		"\\",
		"ends with a backslash \\",
		"slash / and unicode \xc3\xa9",
		"",
	};
	const size_t nv = sizeof(values) / sizeof(values[0]);
	char *lines[LINES_MAX];

	capture_begin();
	for (size_t i = 0; i < nv; i++)
		log_event(LOG_INFO, values[i], LS("v", values[i]), NULL);
	log_event(LOG_INFO, "odd key", LS("k\"e\\y\n", "x"), NULL);
	char *out = capture_end();
	size_t n = split_lines(out, lines, LINES_MAX);
	cr_assert_eq(n, nv + 1, "%zu calls wrote %zu lines", nv + 1, n);

	for (size_t i = 0; i < nv; i++) {
		cJSON *j = parse_line(lines[i]);
		cr_expect_str_eq(get_str(j, "msg"), values[i], "msg of line %zu: %s", i, lines[i]);
		cr_expect_str_eq(get_str(j, "v"), values[i], "value of line %zu: %s", i, lines[i]);
		for (const char *p = lines[i]; *p; p++)
			cr_expect_geq((unsigned char)*p, 0x20, "raw control byte in line %zu", i);
		cJSON_Delete(j);
	}
	cJSON *j = parse_line(lines[nv]);
	cr_expect_str_eq(get_str(j, "k\"e\\y\n"), "x");
	cJSON_Delete(j);
	free(out);
}

Test(log, drops_events_below_the_level)
{
	char *lines[LINES_MAX];
	char *out;
	cJSON *j;

	/* The default is info. */
	capture_begin();
	log_event(LOG_DEBUG, "hidden-debug", NULL);
	log_event(LOG_INFO, "shown-info", NULL);
	out = capture_end();
	cr_assert_eq(split_lines(out, lines, LINES_MAX), 1);
	j = parse_line(lines[0]);
	cr_expect_str_eq(get_str(j, "msg"), "shown-info");
	cJSON_Delete(j);
	free(out);

	log_set_level(LOG_WARN);
	capture_begin();
	log_event(LOG_DEBUG, "hidden-debug", LU("n", 1), NULL);
	log_event(LOG_INFO, "hidden-info", LS("s", "x"), NULL);
	log_event(LOG_WARN, "shown-warn", NULL);
	log_event(LOG_ERROR, "shown-error", NULL);
	out = capture_end();
	cr_assert_eq(split_lines(out, lines, LINES_MAX), 2, "got: %s", out);
	j = parse_line(lines[0]);
	cr_expect_str_eq(get_str(j, "msg"), "shown-warn");
	cr_expect_str_eq(get_str(j, "level"), "warn");
	cJSON_Delete(j);
	j = parse_line(lines[1]);
	cr_expect_str_eq(get_str(j, "msg"), "shown-error");
	cr_expect_str_eq(get_str(j, "level"), "error");
	cJSON_Delete(j);
	free(out);

	log_set_level(LOG_ERROR);
	capture_begin();
	log_event(LOG_WARN, "hidden-warn", NULL);
	out = capture_end();
	cr_expect_str_eq(out, "");
	free(out);

	log_set_level(LOG_DEBUG);
	capture_begin();
	log_event(LOG_DEBUG, "shown-debug", NULL);
	out = capture_end();
	cr_assert_eq(split_lines(out, lines, LINES_MAX), 1);
	j = parse_line(lines[0]);
	cr_expect_str_eq(get_str(j, "level"), "debug");
	cJSON_Delete(j);
	free(out);
}

Test(log, level_names_parse)
{
	cr_expect_eq(log_level_parse("debug"), LOG_DEBUG);
	cr_expect_eq(log_level_parse("info"), LOG_INFO);
	cr_expect_eq(log_level_parse("warn"), LOG_WARN);
	cr_expect_eq(log_level_parse("error"), LOG_ERROR);
	cr_expect_eq(log_level_parse("loud"), -1);
	cr_expect_eq(log_level_parse(""), -1);
	cr_expect_eq(log_level_parse("Info"), -1);
	cr_expect_eq(log_level_parse("warning"), -1);
}

Test(log, an_overlong_value_is_cut_but_stays_one_valid_line)
{
	static char big[6000];
	char *lines[LINES_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[10] = '"'; /* escapes near the start still come out right */
	capture_begin();
	log_event(LOG_INFO, "big", LS("v", big), NULL);
	log_event(LOG_INFO, "after", NULL);
	char *out = capture_end();
	cr_assert_eq(split_lines(out, lines, LINES_MAX), 2);
	cr_expect_leq(strlen(lines[0]), 4096);
	cJSON *j = parse_line(lines[0]);
	const char *v = get_str(j, "v");
	cr_expect_gt(strlen(v), 1000);
	cr_expect_eq(strncmp(v, big, strlen(v)), 0, "the value kept is a prefix of the original");
	cJSON_Delete(j);
	j = parse_line(lines[1]);
	cr_expect_str_eq(get_str(j, "msg"), "after");
	cJSON_Delete(j);
	free(out);
}

/*
 * BUG (log.c, log_event/put_raw): when a line reaches the 4 KiB buffer,
 * put_json_string still emits the quotes of a key but put_raw silently
 * skips a number that no longer fits, leaving `"":}`: invalid JSON. Any
 * value that fills the buffer followed by a LU/LI with 2+ digits does it.
 * Disabled until log.c is fixed.
 */
Test(log, an_overlong_line_with_a_number_after_it_stays_valid)
{
	char *lines[LINES_MAX];
	static const size_t lens[] = {4020, 5000, 100000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		char *big = malloc(len + 1);
		cr_assert_not_null(big);
		memset(big, 'x', len);
		big[len] = '\0';
		capture_begin();
		log_event(LOG_INFO, "big", LS("v", big), LU("count", 4242), NULL);
		char *out = capture_end();
		cr_assert_eq(split_lines(out, lines, LINES_MAX), 1);
		cJSON *j = cJSON_Parse(lines[0]);
		cr_assert_not_null(j, "value of %zu bytes: not valid JSON: ...%s", len,
		                   lines[0] + strlen(lines[0]) - 20);
		cJSON_Delete(j);
		free(out);
		free(big);
	}
}
