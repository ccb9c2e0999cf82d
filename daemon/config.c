/*
 * config: the configuration (infrastructure layer; config.h). Defaults, then an INI file (--config, or FIELDSYNC_CONFIG;
 * parsed by Debian's libinih), then FIELDSYNC_* environment variables, then
 * the command line: flags > env > file. A container sets env, a packager
 * ships a file, a person types flags. Every value is checked here; a bad one
 * stops start-up with a message naming it (the file's key).
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fieldsync/limits.h"
#include "log.h"

enum {
	OPT_DATA_DIR = 256,
	OPT_SYNC_EP,
	OPT_REMINDER_EP,
	OPT_OPS_LISTEN,
	OPT_DEV,
	OPT_MAP_SIZE,
	OPT_MAP_SIZE_MAX,
	OPT_MAX_MSG,
	OPT_MAX_CHANGES,
	OPT_MAX_PAYLOAD,
	OPT_REPLIES_KEPT,
	OPT_LOG_LEVEL,
	OPT_TIME_ZONE,
	OPT_RULES,
	OPT_CLOCK_OFFSET,
	OPT_MASTER_KEY_FILE,
	OPT_CONFIG,
	OPT_MIN_FREE,
	OPT_MAX_SIBLINGS,
	OPT_MAX_RECORD,
	OPT_AT_RISK_DAYS,
	OPT_OPS_MAX_CONN,
	OPT_OPS_PER_IP,
	OPT_OPS_IDLE_TIMEOUT,
	OPT_EVENT_RETENTION_DAYS,
	OPT_EVENT_RETENTION_COUNT,
	OPT_QUOTA_BYTES,
	OPT_QUOTA_SETS,
	OPT_MAX_PAGE,
	OPT_PEER_QUEUE_MAX,
	OPT_HELP,
	OPT_VERSION,
};

/* One table drives the long options, the environment names and --help. */
static const struct opt {
	const char *name;
	int id;
	const char *env;
	const char *arg;
	const char *help;
} opts[] = {
	{"data-dir", OPT_DATA_DIR, "FIELDSYNC_DATA_DIR", "DIR",
         "where the LMDB store lives (default ./var)"},
	{"sync-endpoint", OPT_SYNC_EP, "FIELDSYNC_SYNC_ENDPOINT", "EP",
         "ROUTER endpoint for tablets (default tcp://*:7400)"},
	{"reminder-endpoint", OPT_REMINDER_EP, "FIELDSYNC_REMINDER_ENDPOINT", "EP",
         "PUB endpoint for reminder events (default tcp://*:7401)"},
	{"ops-listen", OPT_OPS_LISTEN, "FIELDSYNC_OPS_LISTEN", "HOST:PORT",
         "ops HTTP address (default 127.0.0.1:7480)"},
	{"dev", OPT_DEV, "FIELDSYNC_DEV", NULL,
         "development mode: no CURVE, every peer gets every scope"},
	{"map-size", OPT_MAP_SIZE, "FIELDSYNC_MAP_SIZE", "BYTES",
         "initial LMDB map size (default 1G, grows; K/M/G suffixes)"},
	{"map-size-max", OPT_MAP_SIZE_MAX, "FIELDSYNC_MAP_SIZE_MAX", "BYTES",
         "the map grows up to this (default 64G)"},
	{"max-message-bytes", OPT_MAX_MSG, "FIELDSYNC_MAX_MESSAGE_BYTES", "BYTES",
         "largest accepted frame (default 16M)"},
	{"max-changes-per-push", OPT_MAX_CHANGES, "FIELDSYNC_MAX_CHANGES_PER_PUSH", "N",
         "changes in one change set (default 1000)"},
	{"max-payload-bytes", OPT_MAX_PAYLOAD, "FIELDSYNC_MAX_PAYLOAD_BYTES", "BYTES",
         "largest record payload (default 1M)"},
	{"replies-kept", OPT_REPLIES_KEPT, "FIELDSYNC_REPLIES_KEPT", "N",
         "change-set replies kept for retries (default 100000)"},
	{"log-level", OPT_LOG_LEVEL, "FIELDSYNC_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error (default info)"},
	{"time-zone", OPT_TIME_ZONE, "FIELDSYNC_TIME_ZONE", "ZONE",
         "IANA zone of the deadlines (default Europe/Copenhagen)"},
	{"rules", OPT_RULES, "FIELDSYNC_RULES", "FILE",
         "JSON rule table (default: METHOD.md's; docs/reminders.md)"},
	{"master-key-file", OPT_MASTER_KEY_FILE, "FIELDSYNC_MASTER_KEY_FILE", "FILE",
         "master key(s), one id:hex per line, first current (or FIELDSYNC_MASTER_KEY)"},
	{"clock-offset-ms", OPT_CLOCK_OFFSET, "FIELDSYNC_CLOCK_OFFSET_MS", "MS",
         "testing aid: shift the daemon's clock (default 0)"},
	{"min-free-bytes", OPT_MIN_FREE, "FIELDSYNC_MIN_FREE_BYTES", "BYTES",
         "/readyz fails below this much free disk (default 64M)"},
	{"max-siblings", OPT_MAX_SIBLINGS, "FIELDSYNC_MAX_SIBLINGS", "N",
         "siblings one record may hold; more is REJECTED (default 32)"},
	{"max-record-bytes", OPT_MAX_RECORD, "FIELDSYNC_MAX_RECORD_BYTES", "BYTES",
         "bytes one record may hold over all its siblings (default 8 MiB)"},
	{"at-risk-days", OPT_AT_RISK_DAYS, "FIELDSYNC_AT_RISK_DAYS", "DAYS",
         "a device not seen, or holding an unpushed edit, for this long is at risk (default 3)"},
	{"ops-max-connections", OPT_OPS_MAX_CONN, "FIELDSYNC_OPS_MAX_CONNECTIONS", "N",
         "ops HTTP connections in all (default 256)"},
	{"ops-per-ip-connections", OPT_OPS_PER_IP, "FIELDSYNC_OPS_PER_IP_CONNECTIONS", "N",
         "ops HTTP connections from one client address; more are closed (default 8)"},
	{"ops-idle-timeout", OPT_OPS_IDLE_TIMEOUT, "FIELDSYNC_OPS_IDLE_TIMEOUT", "SECONDS",
         "an idle ops HTTP connection is closed after this (default 5)"},
	{"event-retention-days", OPT_EVENT_RETENTION_DAYS, "FIELDSYNC_EVENT_RETENTION_DAYS", "DAYS",
         "reminder events older than this are trimmed; 0 keeps all (default 400)"},
	{"event-retention-count", OPT_EVENT_RETENTION_COUNT, "FIELDSYNC_EVENT_RETENTION_COUNT", "N",
         "at most this many reminder events are kept; 0 = no limit (default 0)"},
	{"push-quota-bytes", OPT_QUOTA_BYTES, "FIELDSYNC_PUSH_QUOTA_BYTES", "BYTES",
         "bytes one device may push per minute; more is BUSY (default 256M, 0: off)"},
	{"push-quota-changesets", OPT_QUOTA_SETS, "FIELDSYNC_PUSH_QUOTA_CHANGESETS", "N",
         "change sets one device may push per minute (default 6000, 0: off)"},
	{"max-page-bytes", OPT_MAX_PAGE, "FIELDSYNC_MAX_PAGE_BYTES", "BYTES",
         "no pull page is larger; a bigger record is an error (default 32M, at most 60M)"},
	{"peer-queue-max-bytes", OPT_PEER_QUEUE_MAX, "FIELDSYNC_PEER_QUEUE_MAX_BYTES", "BYTES",
         "reply bytes one connection may leave unread; then BUSY (default 64M)"},
	{"config", OPT_CONFIG, "FIELDSYNC_CONFIG", "FILE",
         "INI file: these option names as keys, in [fieldsyncd]"},
	{"help", OPT_HELP, NULL, NULL, "print this help and exit"},
	{"version", OPT_VERSION, NULL, NULL, "print the version and exit"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* check_config: the help of `fieldsyncd check-config`, which takes the
 * daemon's own options. */
static void
usage(FILE *f, bool check_config)
{
	if (check_config)
		fprintf(f,
		        "usage: fieldsyncd check-config [OPTIONS]\n\n"
		        "Reads the configuration as the daemon would (defaults, then --config FILE,\n"
		        "then FIELDSYNC_* environment, then flags), checks it with the rule table,\n"
		        "and prints the effective configuration as INI with secrets redacted.\n"
		        "Exits 0 when it is good, 2 naming the bad key otherwise.\n\n"
		        "options (each also read from the environment variable shown):\n");
	else
		fprintf(f,
		        "usage: fieldsyncd [OPTIONS]\n\n"
		        "fieldsyncd receives change sets from tablets over ZeroMQ, merges them into\n"
		        "LMDB with version vectors and serves the change feed (PROTOCOL.md).\n\n"
		        "options (each also read from the environment variable shown):\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
		         opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-32s %s%s%s%s\n", left, opts[i].help, opts[i].env ? " [" : "",
		        opts[i].env ? opts[i].env : "", opts[i].env ? "]" : "");
	}
	fprintf(f,
	        "\nwithout --dev: CURVE with enrolled keys (fieldsyncd init, enroll) and a master key.\n"
	        "\nsubcommands (each with --help), usable while the daemon runs:\n"
	        "  fieldsyncd init|enroll|revoke|devices|audit|purge|rotate-master-key --data-dir DIR ...\n"
	        "  fieldsyncd backup|restore|verify --data-dir DIR ...\n"
	        "  fieldsyncd health [--ready] [--ops-listen HOST:PORT]\n"
	        "  fieldsyncd check-config [OPTIONS]\n"
	        "\nsignals: SIGTERM or SIGINT drain the queue, commit, answer and exit 0.\n");
}

/* Parses "64M"-style sizes. */
static bool
parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!(s[0] >= '0' && s[0] <= '9')) /* no sign, no white space */
		return false;
	if (errno || end == s)
		return false;
	uint64_t mul = 1;
	switch (*end) {
	case 'K':
	case 'k':
		mul = 1ULL << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mul = 1ULL << 20;
		end++;
		break;
	case 'G':
	case 'g':
		mul = 1ULL << 30;
		end++;
		break;
	case '\0':
		break;
	default:
		return false;
	}
	if (*end != '\0' || (v != 0 && mul > UINT64_MAX / v))
		return false;
	*out = v * mul;
	return true;
}

static bool
copy_str(char *dst, size_t cap, const char *src)
{
	size_t l = strlen(src);
	if (l == 0 || l >= cap)
		return false;
	memcpy(dst, src, l + 1);
	return true;
}

static bool
bool_value(const char *v)
{
	return v == NULL || strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
	       strcmp(v, "yes") == 0 || strcmp(v, "on") == 0;
}

/* Applies one option value; prints why and returns false when it is bad. */
static bool
apply(config *c, const struct opt *o, const char *v, const char *source)
{
	uint64_t n = 0;
	bool ok = true;
	switch (o->id) {
	case OPT_DATA_DIR:
		ok = copy_str(c->data_dir, sizeof(c->data_dir), v);
		break;
	case OPT_SYNC_EP:
		ok = copy_str(c->sync_endpoint, sizeof(c->sync_endpoint), v);
		break;
	case OPT_REMINDER_EP:
		ok = copy_str(c->reminder_endpoint, sizeof(c->reminder_endpoint), v);
		break;
	case OPT_OPS_LISTEN:
		ok = copy_str(c->ops_listen, sizeof(c->ops_listen), v);
		break;
	case OPT_DEV:
		c->dev = bool_value(v);
		break;
	case OPT_MAP_SIZE:
		ok = parse_size(v, &c->map_size) && c->map_size >= (1 << 20);
		break;
	case OPT_MAP_SIZE_MAX:
		ok = parse_size(v, &c->map_size_max) && c->map_size_max >= (1 << 20);
		break;
	case OPT_MAX_MSG:
		ok = parse_size(v, &c->max_message_bytes) && c->max_message_bytes >= 4096 &&
		     c->max_message_bytes <= (1ULL << 31);
		break;
	case OPT_MAX_CHANGES:
		ok = parse_size(v, &n) && n >= 1 && n <= 100000;
		c->max_changes_per_push = (uint32_t)n;
		break;
	case OPT_MAX_PAYLOAD:
		ok = parse_size(v, &c->max_payload_bytes) && c->max_payload_bytes >= 1;
		break;
	case OPT_REPLIES_KEPT:
		ok = parse_size(v, &c->replies_kept) && c->replies_kept >= 1;
		break;
	case OPT_LOG_LEVEL:
		c->log_level = log_level_parse(v);
		ok = c->log_level >= 0;
		break;
	case OPT_TIME_ZONE:
		ok = copy_str(c->time_zone, sizeof(c->time_zone), v);
		break;
	case OPT_RULES:
		ok = copy_str(c->rules_file, sizeof(c->rules_file), v);
		break;
	case OPT_MASTER_KEY_FILE:
		ok = copy_str(c->master_key_file, sizeof(c->master_key_file), v);
		break;
	case OPT_CONFIG:
		ok = copy_str(c->config_file, sizeof(c->config_file), v);
		break;
	case OPT_MIN_FREE:
		ok = parse_size(v, &c->min_free_bytes);
		break;
	case OPT_MAX_SIBLINGS:
		ok = parse_size(v, &n) && n >= 1 && n <= 4096;
		c->max_siblings = (uint32_t)n;
		break;
	case OPT_MAX_RECORD:
		ok = parse_size(v, &c->max_record_bytes) && c->max_record_bytes >= 4096;
		break;
	case OPT_AT_RISK_DAYS:
		ok = parse_size(v, &n) && n >= 1 && n <= 3650;
		c->at_risk_days = (uint32_t)n;
		break;
	case OPT_OPS_MAX_CONN:
		ok = parse_size(v, &n) && n >= 4 && n <= 65536;
		c->ops_max_connections = (uint32_t)n;
		break;
	case OPT_OPS_PER_IP:
		ok = parse_size(v, &n) && n >= 1 && n <= 65536;
		c->ops_per_ip = (uint32_t)n;
		break;
	case OPT_OPS_IDLE_TIMEOUT:
		ok = parse_size(v, &n) && n >= 1 && n <= 3600;
		c->ops_idle_timeout_s = (uint32_t)n;
		break;
	case OPT_EVENT_RETENTION_DAYS:
		ok = parse_size(v, &n) && n <= 36500;
		c->event_retention_days = (uint32_t)n;
		break;
	case OPT_EVENT_RETENTION_COUNT:
		ok = parse_size(v, &c->event_retention_count);
		break;
	case OPT_QUOTA_BYTES:
		ok = parse_size(v, &c->push_quota_bytes) && c->push_quota_bytes <= (1ULL << 40);
		break;
	case OPT_QUOTA_SETS:
		ok = parse_size(v, &c->push_quota_changesets) &&
		     c->push_quota_changesets <= 100000000;
		break;
	case OPT_MAX_PAGE:
		ok = parse_size(v, &c->max_page_bytes) && c->max_page_bytes >= 4096 &&
		     c->max_page_bytes <= FSP_PAGE_BYTES_MAX;
		break;
	case OPT_PEER_QUEUE_MAX:
		ok = parse_size(v, &c->peer_queue_max_bytes) && c->peer_queue_max_bytes >= 65536;
		break;
	case OPT_CLOCK_OFFSET: {
		char *end;
		errno = 0;
		long long off = strtoll(v, &end, 10);
		ok = errno == 0 && end != v && *end == '\0';
		c->clock_offset_ms = off;
		break;
	}
	default:
		break;
	}
	if (!ok)
		fprintf(stderr, "fieldsyncd: bad value for %s%s: '%s'\n", source,
		        source[0] == '-' ? o->name : "", v);
	return ok;
}

struct ini_ctx {
	config *c;
	bool ok;
};

/* One key of the INI file: an option's long name (dashes or underscores). */
static int
ini_key(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;
	char key[64], where[96];
	snprintf(key, sizeof(key), "%s", name);
	for (char *p = key; *p; p++)
		if (*p == '_')
			*p = '-';
	if (section[0] != '\0' && strcmp(section, "fieldsyncd") != 0) {
		fprintf(stderr, "fieldsyncd: config: unknown section [%s] (use [fieldsyncd])\n",
		        section);
		x->ok = false;
		return 0;
	}
	for (size_t i = 0; i < N_OPTS; i++) {
		if (strcmp(opts[i].name, key) != 0 || opts[i].id == OPT_CONFIG ||
		    opts[i].id == OPT_HELP || opts[i].id == OPT_VERSION)
			continue;
		snprintf(where, sizeof(where), "config key '%s'", name);
		if (!apply(x->c, &opts[i], value, where))
			x->ok = false;
		return x->ok;
	}
	fprintf(stderr, "fieldsyncd: config: unknown key '%s'\n", name);
	x->ok = false;
	return 0;
}

/* --config FILE or FIELDSYNC_CONFIG, found before anything else is read. */
static const char *
config_path(int argc, char **argv)
{
	const char *path = getenv("FIELDSYNC_CONFIG");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
	}
	return path;
}

config_action
config_load(config *c, int argc, char **argv)
{
	struct option longopts[N_OPTS + 1];

	memset(c, 0, sizeof(*c));
	strcpy(c->data_dir, "./var");
	strcpy(c->sync_endpoint, "tcp://*:7400");
	strcpy(c->reminder_endpoint, "tcp://*:7401");
	strcpy(c->ops_listen, "127.0.0.1:7480");
	c->map_size = 1ULL << 30;
	c->map_size_max = 64ULL << 30;
	c->max_message_bytes = 16ULL << 20;
	c->max_changes_per_push = 1000;
	c->max_payload_bytes = 1ULL << 20;
	c->pull_limit_max = 1000;
	c->replies_kept = 100000;
	c->batch_max_jobs = 512;
	c->log_level = LOG_INFO;
	strcpy(c->time_zone, "Europe/Copenhagen");
	c->argc = argc;
	c->argv = argv;
	c->min_free_bytes = 64ULL << 20;
	c->max_siblings = 32;
	c->max_record_bytes = 8ULL << 20;
	c->at_risk_days = 3;
	c->ops_max_connections = 256;
	c->ops_per_ip = 8;
	c->ops_idle_timeout_s = 5;
	c->event_retention_days = 400;
	c->event_retention_count = 0;
	c->push_quota_bytes = 256ULL << 20;
	c->push_quota_changesets = 6000;
	c->max_page_bytes = 32ULL << 20;
	c->peer_queue_max_bytes = 64ULL << 20;

	const char *file = config_path(argc, argv);
	if (file != NULL && file[0] != '\0') {
		struct ini_ctx x = {c, true};
		snprintf(c->config_file, sizeof(c->config_file), "%s", file);
		int r = ini_parse(file, ini_key, &x);
		if (r < 0) {
			fprintf(stderr, "fieldsyncd: cannot read the config file %s\n", file);
			return CONFIG_EXIT_ERR;
		}
		if (r > 0 && x.ok)
			fprintf(stderr, "fieldsyncd: config file %s: syntax error on line %d\n",
			        file, r);
		if (r > 0 || !x.ok)
			return CONFIG_EXIT_ERR;
	}

	for (size_t i = 0; i < N_OPTS; i++) {
		const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
		if (v != NULL && v[0] == '\0')
			continue; /* an empty variable counts as unset */
		if (v != NULL && opts[i].id != OPT_CONFIG && !apply(c, &opts[i], v, opts[i].env))
			return CONFIG_EXIT_ERR;
	}

	for (size_t i = 0; i < N_OPTS; i++) {
		longopts[i].name = opts[i].name;
		longopts[i].has_arg = opts[i].arg ? required_argument : no_argument;
		longopts[i].flag = NULL;
		longopts[i].val = opts[i].id;
	}
	memset(&longopts[N_OPTS], 0, sizeof(longopts[N_OPTS]));

	optind = 1;
	opterr = 0;
	for (;;) {
		int id = getopt_long(argc, argv, "", longopts, NULL);
		if (id == -1)
			break;
		if (id == OPT_HELP) {
			usage(stdout, argc > 0 && strcmp(argv[0], "check-config") == 0);
			return CONFIG_EXIT_OK;
		}
		if (id == OPT_VERSION) {
			printf("fieldsyncd %s (protocol %d)\n", FIELDSYNCD_VERSION,
			       FIELDSYNC_PROTOCOL);
			return CONFIG_EXIT_OK;
		}
		const struct opt *o = NULL;
		for (size_t i = 0; i < N_OPTS; i++)
			if (opts[i].id == id)
				o = &opts[i];
		if (o == NULL) {
			fprintf(stderr,
			        "fieldsyncd: unknown or incomplete option '%s'\n"
			        "try 'fieldsyncd --help'\n",
			        argv[optind - 1]);
			return CONFIG_EXIT_ERR;
		}
		if (!apply(c, o, o->arg ? optarg : NULL, "--"))
			return CONFIG_EXIT_ERR;
	}
	if (optind < argc) {
		fprintf(stderr, "fieldsyncd: unexpected argument '%s'\ntry 'fieldsyncd --help'\n",
		        argv[optind]);
		return CONFIG_EXIT_ERR;
	}
	if (c->map_size > c->map_size_max) {
		fprintf(stderr, "fieldsyncd: --map-size is larger than --map-size-max\n");
		return CONFIG_EXIT_ERR;
	}
	if (c->ops_per_ip > c->ops_max_connections) {
		fprintf(stderr, "fieldsyncd: --ops-per-ip-connections is larger than "
		                "--ops-max-connections\n");
		return CONFIG_EXIT_ERR;
	}
	if (c->max_payload_bytes >= c->max_message_bytes) {
		fprintf(stderr,
		        "fieldsyncd: --max-payload-bytes must be below --max-message-bytes\n");
		return CONFIG_EXIT_ERR;
	}
	return CONFIG_RUN;
}

void
config_print(const config *c, FILE *f)
{
	const char *env_key = getenv("FIELDSYNC_MASTER_KEY");
	fprintf(f,
	        "# the effective configuration (flags > env > file); secrets redacted\n[fieldsyncd]\n");
	fprintf(f, "config = %s\n", c->config_file[0] ? c->config_file : "(none)");
	fprintf(f, "data-dir = %s\nsync-endpoint = %s\nreminder-endpoint = %s\nops-listen = %s\n",
	        c->data_dir, c->sync_endpoint, c->reminder_endpoint, c->ops_listen);
	fprintf(f, "dev = %s\n", c->dev ? "true" : "false");
	fprintf(f, "map-size = %llu\nmap-size-max = %llu\nmax-message-bytes = %llu\n",
	        (unsigned long long)c->map_size, (unsigned long long)c->map_size_max,
	        (unsigned long long)c->max_message_bytes);
	fprintf(f, "max-changes-per-push = %u\nmax-payload-bytes = %llu\nreplies-kept = %llu\n",
	        c->max_changes_per_push, (unsigned long long)c->max_payload_bytes,
	        (unsigned long long)c->replies_kept);
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	fprintf(f, "log-level = %s\ntime-zone = %s\nrules = %s\n", levels[c->log_level & 3],
	        c->time_zone, c->rules_file[0] ? c->rules_file : "(METHOD.md defaults)");
	if (c->master_key_file[0])
		fprintf(f, "master-key-file = %s\n", c->master_key_file);
	else
		fprintf(f, "master-key-file = %s\n",
		        env_key && env_key[0] ? "(FIELDSYNC_MASTER_KEY: redacted)" : "(none)");
	fprintf(f, "min-free-bytes = %llu\n", (unsigned long long)c->min_free_bytes);
	fprintf(f, "max-siblings = %u\nmax-record-bytes = %llu\n", c->max_siblings,
	        (unsigned long long)c->max_record_bytes);
	fprintf(f, "at-risk-days = %u\n", c->at_risk_days);
	fprintf(f, "push-quota-bytes = %llu\npush-quota-changesets = %llu\nmax-page-bytes = %llu\n",
	        (unsigned long long)c->push_quota_bytes,
	        (unsigned long long)c->push_quota_changesets,
	        (unsigned long long)c->max_page_bytes);
	fprintf(f, "clock-offset-ms = %lld\n", (long long)c->clock_offset_ms);
	fprintf(f, "ops-max-connections = %u\nops-per-ip-connections = %u\nops-idle-timeout = %u\n",
	        c->ops_max_connections, c->ops_per_ip, c->ops_idle_timeout_s);
	fprintf(f, "event-retention-days = %u\nevent-retention-count = %llu\n",
	        c->event_retention_days, (unsigned long long)c->event_retention_count);
	fprintf(f, "peer-queue-max-bytes = %llu\n", (unsigned long long)c->peer_queue_max_bytes);
}
