/*
 * config.c: defaults, then FIELDSYNC_* environment, then flags; every bad
 * value stops start-up. config_load uses getenv and getopt_long, so each
 * test starts from a clean environment and unsets what it set.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fieldsyncd.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static const char *const g_env[] = {
	"FIELDSYNC_DATA_DIR", "FIELDSYNC_SYNC_ENDPOINT", "FIELDSYNC_REMINDER_ENDPOINT",
	"FIELDSYNC_OPS_LISTEN", "FIELDSYNC_DEV", "FIELDSYNC_MAP_SIZE", "FIELDSYNC_MAP_SIZE_MAX",
	"FIELDSYNC_MAX_MESSAGE_BYTES", "FIELDSYNC_MAX_CHANGES_PER_PUSH",
	"FIELDSYNC_MAX_PAYLOAD_BYTES", "FIELDSYNC_REPLIES_KEPT", "FIELDSYNC_LOG_LEVEL",
	"FIELDSYNC_TIME_ZONE", "FIELDSYNC_RULES", "FIELDSYNC_CLOCK_OFFSET_MS", "POSIXLY_CORRECT",
};

static void
clear_env(void)
{
	for (size_t i = 0; i < sizeof(g_env) / sizeof(g_env[0]); i++)
		unsetenv(g_env[i]);
}

TestSuite(config, .init = clear_env, .fini = clear_env);

/* config_load(c, "fieldsyncd", args..., NULL). */
static config_action
load(config *c, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"fieldsyncd";
	va_start(ap, c);
	for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *)) {
		cr_assert_lt(argc, 31);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	return config_load(c, argc, argv);
}

/* Output capture of fd 1 or 2 into a temporary file. */
typedef struct {
	int fd, saved;
	char path[64];
} capture;

static void
capture_begin(capture *cap, int fd)
{
	snprintf(cap->path, sizeof(cap->path), "/tmp/fs-config-out-XXXXXX");
	int tmp = mkstemp(cap->path);
	cr_assert_geq(tmp, 0);
	fflush(fd == 1 ? stdout : stderr);
	cap->fd = fd;
	cap->saved = dup(fd);
	cr_assert_geq(cap->saved, 0);
	cr_assert_geq(dup2(tmp, fd), 0);
	close(tmp);
}

/* Restores the fd; returns what was written (malloc'd, NUL-terminated). */
static char *
capture_end(capture *cap)
{
	char *buf = calloc(1, 65536);
	cr_assert_not_null(buf);
	fflush(cap->fd == 1 ? stdout : stderr);
	dup2(cap->saved, cap->fd);
	close(cap->saved);
	FILE *f = fopen(cap->path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	unlink(cap->path);
	return buf;
}

Test(config, defaults)
{
	config c;
	memset(&c, 0xa5, sizeof(c)); /* config_load must set every field */
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_str_eq(c.data_dir, "./var");
	cr_expect_str_eq(c.sync_endpoint, "tcp://*:7400");
	cr_expect_str_eq(c.reminder_endpoint, "tcp://*:7401");
	cr_expect_str_eq(c.ops_listen, "127.0.0.1:7480");
	cr_expect_not(c.dev);
	cr_expect_eq(c.max_message_bytes, 16 * MIB);
	cr_expect_eq(c.max_changes_per_push, 1000);
	cr_expect_eq(c.map_size, 1 * GIB, "--help documents 1G");
	cr_expect_eq(c.map_size_max, 64 * GIB);
	cr_expect_eq(c.max_payload_bytes, 1 * MIB);
	cr_expect_eq(c.replies_kept, 100000);
	cr_expect_eq(c.log_level, LOG_INFO);
	cr_expect_gt(c.pull_limit_max, 0);
	cr_expect_gt(c.batch_max_jobs, 0);
	cr_expect_lt(c.max_payload_bytes, c.max_message_bytes);
}

Test(config, environment_overrides_defaults)
{
	config c;
	setenv("FIELDSYNC_DATA_DIR", "/srv/fieldsync", 1);
	setenv("FIELDSYNC_SYNC_ENDPOINT", "tcp://127.0.0.1:9400", 1);
	setenv("FIELDSYNC_REMINDER_ENDPOINT", "ipc:///run/fs-rem", 1);
	setenv("FIELDSYNC_OPS_LISTEN", "0.0.0.0:9480", 1);
	setenv("FIELDSYNC_MAP_SIZE", "128M", 1);
	setenv("FIELDSYNC_MAX_CHANGES_PER_PUSH", "50", 1);
	setenv("FIELDSYNC_REPLIES_KEPT", "7", 1);
	setenv("FIELDSYNC_LOG_LEVEL", "debug", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_str_eq(c.data_dir, "/srv/fieldsync");
	cr_expect_str_eq(c.sync_endpoint, "tcp://127.0.0.1:9400");
	cr_expect_str_eq(c.reminder_endpoint, "ipc:///run/fs-rem");
	cr_expect_str_eq(c.ops_listen, "0.0.0.0:9480");
	cr_expect_eq(c.map_size, 128 * MIB);
	cr_expect_eq(c.max_changes_per_push, 50);
	cr_expect_eq(c.replies_kept, 7);
	cr_expect_eq(c.log_level, LOG_DEBUG);
	cr_expect_eq(c.map_size_max, 64 * GIB, "what env does not set keeps its default");
	clear_env();
}

Test(config, flags_override_environment)
{
	config c;
	setenv("FIELDSYNC_SYNC_ENDPOINT", "tcp://127.0.0.1:9400", 1);
	setenv("FIELDSYNC_OPS_LISTEN", "0.0.0.0:9480", 1);
	setenv("FIELDSYNC_LOG_LEVEL", "error", 1);
	cr_assert_eq(load(&c, "--sync-endpoint", "tcp://127.0.0.1:7777", "--log-level", "warn", NULL),
	             CONFIG_RUN);
	cr_expect_str_eq(c.sync_endpoint, "tcp://127.0.0.1:7777");
	cr_expect_eq(c.log_level, LOG_WARN);
	cr_expect_str_eq(c.ops_listen, "0.0.0.0:9480", "env the flags do not touch still applies");
	cr_expect_str_eq(c.reminder_endpoint, "tcp://*:7401");

	/* --opt=value works the same way. */
	cr_assert_eq(load(&c, "--sync-endpoint=tcp://10.0.0.1:1", NULL), CONFIG_RUN);
	cr_expect_str_eq(c.sync_endpoint, "tcp://10.0.0.1:1");
	clear_env();
}

Test(config, flags_set_every_option)
{
	config c;
	cr_assert_eq(load(&c, "--data-dir", "/data/fs", "--sync-endpoint", "tcp://*:1",
	                  "--reminder-endpoint", "tcp://*:2", "--ops-listen", "127.0.0.1:3",
	                  "--dev", "--map-size", "2M", "--map-size-max", "8M",
	                  "--max-message-bytes", "64K", "--max-changes-per-push", "10",
	                  "--max-payload-bytes", "32K", "--replies-kept", "5",
	                  "--log-level", "error", NULL),
	             CONFIG_RUN);
	cr_expect_str_eq(c.data_dir, "/data/fs");
	cr_expect_str_eq(c.sync_endpoint, "tcp://*:1");
	cr_expect_str_eq(c.reminder_endpoint, "tcp://*:2");
	cr_expect_str_eq(c.ops_listen, "127.0.0.1:3");
	cr_expect(c.dev);
	cr_expect_eq(c.map_size, 2 * MIB);
	cr_expect_eq(c.map_size_max, 8 * MIB);
	cr_expect_eq(c.max_message_bytes, 64 * KIB);
	cr_expect_eq(c.max_changes_per_push, 10);
	cr_expect_eq(c.max_payload_bytes, 32 * KIB);
	cr_expect_eq(c.replies_kept, 5);
	cr_expect_eq(c.log_level, LOG_ERROR);
}

Test(config, dev_mode)
{
	config c;
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_not(c.dev);

	setenv("FIELDSYNC_DEV", "1", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect(c.dev, "FIELDSYNC_DEV=1");

	setenv("FIELDSYNC_DEV", "true", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect(c.dev, "FIELDSYNC_DEV=true");

	setenv("FIELDSYNC_DEV", "0", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_not(c.dev, "FIELDSYNC_DEV=0");

	unsetenv("FIELDSYNC_DEV");
	cr_assert_eq(load(&c, "--dev", NULL), CONFIG_RUN);
	cr_expect(c.dev, "--dev");
}

Test(config, sizes_take_k_m_g_suffixes)
{
	/* The payload limit must stay below the frame limit, hence the 1K. */
	static const struct {
		const char *flag, *value;
		uint64_t want;
	} cases[] = {
		{"--map-size", "2M", 2 * MIB},
		{"--map-size", "3m", 3 * MIB},
		{"--map-size", "2048K", 2 * MIB},
		{"--map-size", "1048576", 1 * MIB},
		{"--map-size", "2G", 2 * GIB},
		{"--map-size-max", "3G", 3 * GIB},
		{"--map-size-max", "100g", 100 * GIB},
		{"--max-message-bytes", "4096", 4096},
		{"--max-message-bytes", "8k", 8 * KIB},
		{"--max-message-bytes", "2G", 2 * GIB},
		{"--max-payload-bytes", "512K", 512 * KIB},
		{"--max-payload-bytes", "7k", 7 * KIB},
		{"--max-payload-bytes", "1000", 1000},
		{"--replies-kept", "1K", 1024},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config c;
		const char *payload = strcmp(cases[i].flag, "--max-payload-bytes") == 0 ? NULL : "1K";
		cr_assert_eq(load(&c, cases[i].flag, cases[i].value,
		                  payload ? "--max-payload-bytes" : NULL, payload, NULL),
		             CONFIG_RUN, "%s %s", cases[i].flag, cases[i].value);
		uint64_t got = strcmp(cases[i].flag, "--map-size") == 0            ? c.map_size
		               : strcmp(cases[i].flag, "--map-size-max") == 0      ? c.map_size_max
		               : strcmp(cases[i].flag, "--max-message-bytes") == 0 ? c.max_message_bytes
		               : strcmp(cases[i].flag, "--max-payload-bytes") == 0 ? c.max_payload_bytes
		                                                                    : c.replies_kept;
		cr_expect_eq(got, cases[i].want, "%s %s gave %llu, want %llu", cases[i].flag,
		             cases[i].value, (unsigned long long)got, (unsigned long long)cases[i].want);
	}
	/* The same suffixes through the environment. */
	config c;
	setenv("FIELDSYNC_MAP_SIZE_MAX", "5G", 1);
	setenv("FIELDSYNC_MAX_PAYLOAD_BYTES", "64k", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_eq(c.map_size_max, 5 * GIB);
	cr_expect_eq(c.max_payload_bytes, 64 * KIB);
	unsetenv("FIELDSYNC_MAP_SIZE_MAX");
	unsetenv("FIELDSYNC_MAX_PAYLOAD_BYTES");
}

/* Each set of arguments must stop start-up with a message on stderr that
 * names the problem. */
Test(config, bad_values_are_errors)
{
	static const struct {
		const char *args[6];
		const char *mentions;
	} cases[] = {
		{{"--max-changes-per-push", "0"}, "max-changes-per-push"},
		{{"--max-changes-per-push", "100001"}, "max-changes-per-push"},
		{{"--max-changes-per-push", "ten"}, "max-changes-per-push"},
		{{"--map-size", "12Q"}, "map-size"},
		{{"--map-size", "12MB"}, "map-size"},
		{{"--map-size", "-64M"}, "map-size"},
		{{"--map-size", ""}, "map-size"},
		{{"--map-size", "512K"}, "map-size"}, /* under the 1 MiB floor */
		{{"--map-size", "99999999999999999999"}, "map-size"},
		{{"--map-size", "17179869184G"}, "map-size"}, /* 2^64 bytes */
		{{"--max-message-bytes", "1K"}, "max-message-bytes"},
		{{"--max-message-bytes", "3G"}, "max-message-bytes"},
		{{"--max-payload-bytes", "0"}, "max-payload-bytes"},
		{{"--max-payload-bytes", "16M"}, "max-payload-bytes"}, /* not below the frame */
		{{"--replies-kept", "0"}, "replies-kept"},
		{{"--log-level", "loud"}, "log-level"},
		{{"--log-level", "INFO"}, "log-level"},
		{{"--data-dir", ""}, "data-dir"},
		{{"--frobnicate"}, "frobnicate"},
		{{"--data-dir"}, "data-dir"}, /* missing its value */
		{{"stray"}, "stray"},
		{{"--dev", "stray"}, "stray"},
		{{"--map-size", "2G", "--map-size-max", "1G"}, "map-size"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		config c;
		capture cap;
		capture_begin(&cap, 2);
		config_action r = load(&c, a[0], a[1], a[2], a[3], a[4], a[5]);
		char *err = capture_end(&cap);
		cr_expect_eq(r, CONFIG_EXIT_ERR, "case %zu (%s %s %s %s) gave %d", i, a[0],
		             a[1] ? a[1] : "", a[2] ? a[2] : "", a[3] ? a[3] : "", r);
		cr_expect(strstr(err, cases[i].mentions) != NULL,
		          "case %zu: stderr does not mention '%s': %s", i, cases[i].mentions, err);
		free(err);
	}
}

Test(config, bad_environment_values_are_errors)
{
	static const struct {
		const char *name, *value;
	} cases[] = {
		{"FIELDSYNC_MAP_SIZE", "12Q"},
		{"FIELDSYNC_MAX_CHANGES_PER_PUSH", "0"},
		{"FIELDSYNC_LOG_LEVEL", "loud"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config c;
		capture cap;
		setenv(cases[i].name, cases[i].value, 1);
		capture_begin(&cap, 2);
		config_action r = load(&c, NULL);
		char *err = capture_end(&cap);
		cr_expect_eq(r, CONFIG_EXIT_ERR, "%s=%s", cases[i].name, cases[i].value);
		cr_expect(strstr(err, cases[i].name) != NULL, "stderr does not name %s: %s",
		          cases[i].name, err);
		free(err);
		unsetenv(cases[i].name);
	}
}

Test(config, an_empty_environment_variable_counts_as_unset)
{
	config c;
	setenv("FIELDSYNC_SYNC_ENDPOINT", "", 1);
	setenv("FIELDSYNC_MASTER_KEY_FILE", "", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_str_eq(c.sync_endpoint, "tcp://*:7400", "the default stays");
	cr_expect_str_eq(c.master_key_file, "");
	unsetenv("FIELDSYNC_SYNC_ENDPOINT");
	unsetenv("FIELDSYNC_MASTER_KEY_FILE");
}

Test(config, map_size_may_equal_its_maximum)
{
	config c;
	capture cap;
	cr_expect_eq(load(&c, "--map-size", "1G", "--map-size-max", "1G", NULL), CONFIG_RUN);
	/* The check runs after env and flags are both in. */
	setenv("FIELDSYNC_MAP_SIZE_MAX", "1G", 1);
	capture_begin(&cap, 2);
	cr_expect_eq(load(&c, "--map-size", "2G", NULL), CONFIG_EXIT_ERR);
	free(capture_end(&cap));
	cr_expect_eq(load(&c, "--map-size", "2G", "--map-size-max", "2G", NULL), CONFIG_RUN);
	unsetenv("FIELDSYNC_MAP_SIZE_MAX");
}

Test(config, help_and_version_exit_ok)
{
	config c;
	capture cap;
	char *out;

	capture_begin(&cap, 1);
	cr_expect_eq(load(&c, "--help", NULL), CONFIG_EXIT_OK);
	out = capture_end(&cap);
	cr_expect(strstr(out, "usage: fieldsyncd") != NULL, "--help printed: %s", out);
	cr_expect(strstr(out, "--sync-endpoint") != NULL);
	cr_expect(strstr(out, "FIELDSYNC_SYNC_ENDPOINT") != NULL);
	free(out);

	capture_begin(&cap, 1);
	cr_expect_eq(load(&c, "--version", NULL), CONFIG_EXIT_OK);
	out = capture_end(&cap);
	cr_expect(strstr(out, "fieldsyncd " FIELDSYNCD_VERSION) != NULL, "--version printed: %s",
	          out);
	free(out);

	/* --help wins over a bad value that comes after it. */
	capture_begin(&cap, 1);
	cr_expect_eq(load(&c, "--help", "--map-size", "12Q", NULL), CONFIG_EXIT_OK);
	free(capture_end(&cap));
}

Test(config, repeated_loads_are_independent)
{
	config c;
	cr_assert_eq(load(&c, "--sync-endpoint", "tcp://*:1", "--dev", NULL), CONFIG_RUN);
	cr_expect_str_eq(c.sync_endpoint, "tcp://*:1");
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_str_eq(c.sync_endpoint, "tcp://*:7400", "a second load kept the first's flags");
	cr_expect_not(c.dev);
	cr_assert_eq(load(&c, "--ops-listen", "127.0.0.1:1", NULL), CONFIG_RUN);
	cr_expect_str_eq(c.ops_listen, "127.0.0.1:1");
}

/*
 * BUG (config.c, parse_size): the "no negative sizes" check looks only at
 * s[0] == '-', but strtoull skips leading white space first and then
 * negates, so " -1" is taken as 2^64 - 1 (e.g. FIELDSYNC_REPLIES_KEPT=" -1"
 * keeps every reply forever). Disabled until config.c is fixed.
 */
Test(config, negative_sizes_after_white_space_are_errors)
{
	config c;
	capture cap;
	capture_begin(&cap, 2);
	cr_expect_eq(load(&c, "--replies-kept", " -1", NULL), CONFIG_EXIT_ERR, "replies_kept = %llu",
	             (unsigned long long)c.replies_kept);
	cr_expect_eq(load(&c, "--map-size-max", "\t-1", NULL), CONFIG_EXIT_ERR);
	free(capture_end(&cap));
}

/* The ops HTTP limits and the event retention (issues 11 and 12). */
Test(config, ops_limits_and_event_retention)
{
	config c;
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_eq(c.ops_max_connections, 256);
	cr_expect_eq(c.ops_per_ip, 8);
	cr_expect_eq(c.ops_idle_timeout_s, 5);
	cr_expect_eq(c.event_retention_days, 400);
	cr_expect_eq(c.event_retention_count, 0);

	setenv("FIELDSYNC_EVENT_RETENTION_COUNT", "10K", 1);
	cr_assert_eq(load(&c, "--ops-max-connections", "64", "--ops-per-ip-connections", "2",
	                  "--ops-idle-timeout", "30", "--event-retention-days", "0", NULL),
	             CONFIG_RUN);
	unsetenv("FIELDSYNC_EVENT_RETENTION_COUNT");
	cr_expect_eq(c.ops_max_connections, 64);
	cr_expect_eq(c.ops_per_ip, 2);
	cr_expect_eq(c.ops_idle_timeout_s, 30);
	cr_expect_eq(c.event_retention_days, 0, "0 keeps events whatever their age");
	cr_expect_eq(c.event_retention_count, 10240);

	static const char *const bad[][4] = {
		{"--ops-max-connections", "3"},
		{"--ops-per-ip-connections", "0"},
		{"--ops-idle-timeout", "0"},
		{"--event-retention-days", "-1"},
		{"--ops-max-connections", "16", "--ops-per-ip-connections", "17"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		capture cap;
		capture_begin(&cap, 2);
		config_action r = load(&c, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
		free(capture_end(&cap));
		cr_expect_eq(r, CONFIG_EXIT_ERR, "case %zu (%s %s) is refused", i, bad[i][0],
		             bad[i][1]);
	}
}

/* --peer-queue-max-bytes (issue 11): default 64 MiB, flag, environment and
 * config file alike, at least 64 KiB, printed by check-config. */
Test(config, peer_queue_max_bytes)
{
	config c;
	capture cap;
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	cr_expect_eq(c.peer_queue_max_bytes, 64ULL << 20);
	cr_assert_eq(load(&c, "--peer-queue-max-bytes", "8M", NULL), CONFIG_RUN);
	cr_expect_eq(c.peer_queue_max_bytes, 8ULL << 20);
	setenv("FIELDSYNC_PEER_QUEUE_MAX_BYTES", "1G", 1);
	cr_assert_eq(load(&c, NULL), CONFIG_RUN);
	unsetenv("FIELDSYNC_PEER_QUEUE_MAX_BYTES");
	cr_expect_eq(c.peer_queue_max_bytes, 1ULL << 30);

	char path[] = "/tmp/fs-config-peer-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *ini = "[fieldsyncd]\npeer_queue_max_bytes = 2M\n";
	cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
	close(fd);
	cr_assert_eq(load(&c, "--config", path, NULL), CONFIG_RUN);
	unlink(path);
	cr_expect_eq(c.peer_queue_max_bytes, 2ULL << 20);

	capture_begin(&cap, 2);
	cr_expect_eq(load(&c, "--peer-queue-max-bytes", "1000", NULL), CONFIG_EXIT_ERR);
	free(capture_end(&cap));

	cr_assert_eq(load(&c, "--peer-queue-max-bytes", "3M", NULL), CONFIG_RUN);
	capture_begin(&cap, 1);
	config_print(&c, stdout);
	char *out = capture_end(&cap);
	cr_expect_not_null(strstr(out, "peer-queue-max-bytes = 3145728"), "%s", out);
	free(out);
	capture_begin(&cap, 1);
	cr_assert_eq(load(&c, "--help", NULL), CONFIG_EXIT_OK);
	out = capture_end(&cap);
	cr_expect_not_null(strstr(out, "--peer-queue-max-bytes BYTES"), "%s", out);
	free(out);
}
