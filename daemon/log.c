/*
 * log: structured logs (infrastructure layer; log.h): one JSON object per line on stderr, for ops pipelines
 * (journald, Loki, Kubernetes). Only identifiers, counts and codes are
 * logged, never payload content.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

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

/*
 * Appends s as a JSON string to buf[*n..cap), escaping what JSON requires.
 * Never writes a partial string: when the escaped text would not fit, it is
 * cut and still closed with a quote (the caller reserves room for it).
 */
static void
put_json_string(char *buf, size_t cap, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	buf[(*n)++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && *n + 8 < cap; p++) {
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
	buf[(*n)++] = '"';
}

/* One "key":value member, built apart so that it goes in whole or not at all. */
static size_t
member(char *out, size_t cap, const char *key, int kind, va_list *ap)
{
	size_t n = 0;
	char num[32];
	out[n++] = ',';
	put_json_string(out, cap - 4, &n, key);
	out[n++] = ':';
	if (kind == LF_STR) {
		const char *v = va_arg(*ap, const char *);
		put_json_string(out, cap - 2, &n, v ? v : "");
		return n;
	}
	if (kind == LF_INT)
		snprintf(num, sizeof(num), "%lld", (long long)va_arg(*ap, int64_t));
	else
		snprintf(num, sizeof(num), "%llu", (unsigned long long)va_arg(*ap, uint64_t));
	size_t l = strlen(num);
	memcpy(out + n, num, l);
	return n + l;
}

void
log_event(int level, const char *msg, ...)
{
	/* A line is at most LOG_LINE bytes; members that do not fit are left out
	 * and the line says "truncated":true, so it is always valid JSON. */
	enum { LOG_LINE = 4096, LOG_MEMBER = 1024 };
	char buf[LOG_LINE], tmp[LOG_MEMBER];
	size_t n = 0;
	bool truncated = false;
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < g_level)
		return;
	if (level < LOG_DEBUG || level > LOG_ERROR)
		level = LOG_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n += strftime(buf, 64, "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, 64,
	                      ".%03ldZ\",\"level\":\"%s\",\"msg\":", ts.tv_nsec / 1000000,
	                      level_names[level]);
	put_json_string(buf, LOG_MEMBER, &n, msg);

	va_start(ap, msg);
	for (;;) {
		const char *key = va_arg(ap, const char *);
		if (key == NULL)
			break;
		int kind = va_arg(ap, int);
		size_t len = member(tmp, sizeof(tmp), key, kind, &ap);
		if (truncated || n + len + 32 > sizeof(buf)) {
			truncated = true;
			continue; /* still consume the arguments */
		}
		memcpy(buf + n, tmp, len);
		n += len;
	}
	va_end(ap);
	if (truncated) {
		memcpy(buf + n, ",\"truncated\":true", 17);
		n += 17;
	}
	buf[n++] = '}';
	buf[n++] = '\n';
	fwrite(buf, 1, n, stderr);
}
