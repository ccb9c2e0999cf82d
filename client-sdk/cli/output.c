/*
 * output.c: what every command of the `fieldsync` CLI says (cli.h): usage
 * errors naming the command's --help, error names and the exit status that
 * stands for each fs_err, JSON lines on stdout, local times. The layer under
 * main.c and the cmd_*.c files: it calls none of them.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* The command of this run, for "try 'fieldsync CMD --help'". */
static const char *g_cmd;

void
cli_set_command(const char *name)
{
	g_cmd = name;
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("fieldsync: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (g_cmd != NULL)
		fprintf(stderr, "\ntry 'fieldsync %s --help'\n", g_cmd);
	else
		fputs("\ntry 'fieldsync --help'\n", stderr);
	return EX_USAGE;
}

const char *
cli_err_name(fs_err e)
{
	static const char *const names[] = {
		"OK",           "INVALID",   "NOT_FOUND",     "EXISTS",    "NOMEM",
		"IO",           "CORRUPT",   "VERSION",       "FULL",      "TIMEOUT",
		"NETWORK",      "PROTOCOL",  "BUSY",          "REFUSED",   "SERVER",
		"KEY_REQUIRED", "KEY_WRONG", "NOT_ENCRYPTED", "FORBIDDEN", "CANCELLED",
	};
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "UNKNOWN";
}

int
cli_exit_status(fs_err e)
{
	switch (e) {
	case FS_OK:
		return 0;
	case FS_ERR_INVALID:
	case FS_ERR_KEY_REQUIRED:
	case FS_ERR_KEY_WRONG:
	case FS_ERR_NOT_ENCRYPTED:
		return EX_USAGE;
	case FS_ERR_NOT_FOUND:
		return EX_NOTFOUND;
	case FS_ERR_TIMEOUT:
	case FS_ERR_NETWORK:
	case FS_ERR_BUSY:
	case FS_ERR_SERVER:
		return EX_TEMPFAIL;
	case FS_ERR_PROTOCOL:
		return EX_PROTOCOL;
	case FS_ERR_KEY_REFUSED: /* revoked or unknown key: not a network failure */
	case FS_ERR_REFUSED:
	case FS_ERR_FORBIDDEN: /* a scope the credential does not grant: permanent */
		return EX_NOPERM;
	case FS_ERR_CANCELLED:
		return EX_TEMPFAIL; /* nothing was lost: run it again */
	default:
		return EX_FAIL;
	}
}

int
cli_fail(const char *what, fs_err e)
{
	fprintf(stderr, "fieldsync: %s: %s\n", what, fs_strerror(e));
	return cli_exit_status(e);
}

bool
cli_add_raw_int(cJSON *o, const char *name, int64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRId64, v);
	return cJSON_AddRawToObject(o, name, b) != NULL;
}

int
cli_print_json(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (s == NULL) {
		fprintf(stderr, "fieldsync: out of memory\n");
		return EX_FAIL;
	}
	puts(s);
	free(s);
	return fflush(stdout) == 0 ? 0 : EX_FAIL;
}

void
cli_local_time(int64_t ms, const char *tz, bool seconds, char *out, size_t len)
{
	char *saved = NULL;
	const char *old = getenv("TZ");
	time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
	struct tm tm;

	if (tz != NULL) { /* single-threaded: borrow TZ for the conversion */
		saved = old ? strdup(old) : NULL;
		setenv("TZ", tz, 1);
	}
	tzset();
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, len, seconds ? "%Y-%m-%d %H:%M:%S %Z" : "%Y-%m-%d %H:%M %Z", &tm) == 0)
		snprintf(out, len, "%" PRId64 " ms", ms);
	if (tz != NULL) {
		if (saved != NULL)
			setenv("TZ", saved, 1);
		else
			unsetenv("TZ");
		free(saved);
		tzset();
	}
}
