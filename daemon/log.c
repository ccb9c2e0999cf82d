/*
 * Structured logs: one JSON object per line on stderr, for ops pipelines
 * (journald, Loki, Kubernetes). Only identifiers, counts and codes are
 * logged, never payload content.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static int g_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_set_level(int level)
{
	g_level = level;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

/* Appends s as a JSON string, escaping what JSON requires. */
static void
put_json_string(char *buf, size_t cap, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (*n < cap)
		buf[(*n)++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && *n + 7 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)*p;
		} else if (*p < 0x20) {
			memcpy(buf + *n, "\\u00", 4);
			*n += 4;
			buf[(*n)++] = hex[*p >> 4];
			buf[(*n)++] = hex[*p & 15];
		} else {
			buf[(*n)++] = (char)*p;
		}
	}
	if (*n < cap)
		buf[(*n)++] = '"';
}

static void
put_raw(char *buf, size_t cap, size_t *n, const char *s)
{
	size_t l = strlen(s);
	if (*n + l < cap) {
		memcpy(buf + *n, s, l);
		*n += l;
	}
}

void
log_event(int level, const char *msg, ...)
{
	char buf[4096], tmp[64];
	size_t n = 0, cap = sizeof(buf) - 2;
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	put_raw(buf, cap, &n, "{\"ts\":\"");
	put_raw(buf, cap, &n, tmp);
	snprintf(tmp, sizeof(tmp), ".%03ldZ\",\"level\":\"%s\",\"msg\":",
	         ts.tv_nsec / 1000000, level_names[level]);
	put_raw(buf, cap, &n, tmp);
	put_json_string(buf, cap, &n, msg);

	va_start(ap, msg);
	for (;;) {
		const char *key = va_arg(ap, const char *);
		if (key == NULL)
			break;
		int kind = va_arg(ap, int);
		put_raw(buf, cap, &n, ",");
		put_json_string(buf, cap, &n, key);
		put_raw(buf, cap, &n, ":");
		if (kind == LF_STR) {
			const char *v = va_arg(ap, const char *);
			put_json_string(buf, cap, &n, v ? v : "");
		} else if (kind == LF_INT) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)va_arg(ap, int64_t));
			put_raw(buf, cap, &n, tmp);
		} else {
			snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)va_arg(ap, uint64_t));
			put_raw(buf, cap, &n, tmp);
		}
	}
	va_end(ap);
	buf[n++] = '}';
	buf[n++] = '\n';
	fwrite(buf, 1, n, stderr);
}
