/*
 * fieldsync: the command-line face of libfieldsync, for scripts, tests and
 * staff support. See docs/man/fieldsync.1 and `fieldsync help`.
 *
 * main.c: the options (getopt_long: --opt VALUE, --opt=VALUE, short forms
 * for the common ones), the help texts, the checks of which options go with
 * which command, the environment's defaults, and the dispatch to the
 * cmd_*.c files (cli.h). The command is read before anything is opened, so
 * `fieldsync CMD --help` and every usage error work without a store.
 *
 * Exit status: cli.h's EX_* (0 success, 2 usage, 75 retry later, ...);
 * messages go to stderr and never quote a payload.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#ifdef FIELDSYNC_VERSION_STRING
#define CLI_VERSION FIELDSYNC_VERSION_STRING
#else
#define CLI_VERSION "0.1.0"
#endif

/* Options besides the global ones (--store, --key-file, --json, --help,
 * --version), as bits of a command's `takes`. */
enum {
	B_SCOPE = 1 << 0,
	B_ENDPOINT = 1 << 1,
	B_TIMEOUT = 1 << 2,
	B_REMINDERS = 1 << 3,
	B_SINCE = 1 << 4,
	B_RULE = 1 << 5,
	B_COUNT = 1 << 6,
	B_STATE = 1 << 7,
	B_CREDENTIAL = 1 << 8,
	B_KEY_ID = 1 << 9,
	B_NEW_KEY_FILE = 1 << 10,
	B_EXEC = 1 << 11,
	B_ON_RESTORE = 1 << 12,
	B_RETRY_DELAY = 1 << 13,
	B_NO_PROGRESS = 1 << 14,
	B_TIME_ZONE = 1 << 15,
	B_MINE = 1 << 16,
	B_DUE_WITHIN = 1 << 17,
	B_CASE = 1 << 18,
};

enum {
	O_SCOPE = 256,
	O_TIMEOUT,
	O_REMINDERS,
	O_SINCE,
	O_RULE,
	O_COUNT,
	O_STATE,
	O_CREDENTIAL,
	O_KEY_ID,
	O_NEW_KEY_FILE,
	O_EXEC,
	O_ON_RESTORE,
	O_RETRY_DELAY,
	O_NO_PROGRESS,
	O_TIME_ZONE,
	O_MINE,
	O_DUE_WITHIN,
	O_CASE
};

static const struct option longopts[] = {
	{"store", required_argument, NULL, 's'},
	{"key-file", required_argument, NULL, 'k'},
	{"endpoint", required_argument, NULL, 'e'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"scope", required_argument, NULL, O_SCOPE},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"reminders", required_argument, NULL, O_REMINDERS},
	{"since", required_argument, NULL, O_SINCE},
	{"rule", required_argument, NULL, O_RULE},
	{"count", required_argument, NULL, O_COUNT},
	{"state", required_argument, NULL, O_STATE},
	{"credential", required_argument, NULL, O_CREDENTIAL},
	{"key-id", required_argument, NULL, O_KEY_ID},
	{"new-key-file", required_argument, NULL, O_NEW_KEY_FILE},
	{"exec", required_argument, NULL, O_EXEC},
	{"on-restore", required_argument, NULL, O_ON_RESTORE},
	{"retry-delay", required_argument, NULL, O_RETRY_DELAY},
	{"no-progress", no_argument, NULL, O_NO_PROGRESS},
	{"time-zone", required_argument, NULL, O_TIME_ZONE},
	{"mine", required_argument, NULL, O_MINE},
	{"due-within", required_argument, NULL, O_DUE_WITHIN},
	{"case", required_argument, NULL, O_CASE},
	{NULL, 0, NULL, 0},
};
static const char shortopts[] = ":s:k:e:jhV";

static const struct command {
	const char *name;
	int min_args, max_args;
	unsigned takes;
	bool store;
	const char *synopsis; /* after "fieldsync [-s DIR] [-k FILE] " */
	const char *summary;  /* one line, for the command list */
	const char *help;     /* what it does, its options */
} commands[] = {
	{"init", 0, 0, B_SCOPE | B_CREDENTIAL, false, "init [--scope S] [--credential FILE]",
         "create the store",
         "Creates the store in the --store directory. Its default scope is --scope, else the\n"
         "credential's first scope, else \"default\". With --credential (or\n"
         "$FIELDSYNC_CREDENTIAL) the store keeps the device credential from `fieldsyncd\n"
         "enroll`: sync then uses its endpoint and CURVE. With --key-file the store is\n"
         "encrypted with that key.\n"
         "  --scope S             the default scope: [a-z0-9][a-z0-9._-]{0,63}\n"
         "  --credential FILE     a device credential (JSON, mode 0600)\n"},
	{"put", 2, 2, B_SCOPE, true, "put COLLECTION ID [--scope S]",
         "write the value read from stdin",
         "Writes the value read from stdin as the record's new version; it supersedes\n"
         "every sibling. \"case\" and \"contact\" take a JSON object with the field and\n"
         "enum names of docs/method.md (times in ms); other collections take bytes as they\n"
         "are.\n"
         "  --scope S             the record's scope (default: its current one, or the\n"
         "                        store's default scope for a new record)\n"
         "With --json it prints the stored record's id, scope and version.\n"},
	{"get", 2, 2, 0, true, "get COLLECTION ID [--json]", "print the value",
         "Prints the record's value (JSON for \"case\" and \"contact\"). A record in\n"
         "conflict exits 4: --json prints every sibling with its version.\n"},
	{"delete", 2, 2, 0, true, "delete COLLECTION ID", "delete the record",
         "Writes a tombstone that supersedes every sibling of the record.\n"},
	{"list", 1, 1, 0, true, "list COLLECTION [--json]", "print the ids of live records",
         "Prints the ids of the collection's live records, in id order; --json prints\n"
         "one object per record (id, scope, siblings).\n"},
	{"conflicts", 0, 0, 0, true, "conflicts [--json]", "list records in conflict",
         "Lists every record with more than one sibling: collection, id and the number\n"
         "of siblings (--json: one object per record).\n"},
	{"resolve", 2, 2, 0, true, "resolve COLLECTION ID", "write the merged value from stdin",
         "Like put, for a record in conflict: the value on stdin supersedes every\n"
         "sibling. The record must exist.\n"},
	{"sync", 0, 0, B_ENDPOINT | B_TIMEOUT | B_NO_PROGRESS, true,
         "sync [--endpoint EP] [--timeout SEC] [--no-progress]",
         "push local changes, pull the feed",
         "Pushes the local changes and pulls what changed at the daemon. On a terminal a\n"
         "progress line with rate and ETA goes to stderr. Exits 65 when the daemon\n"
         "refused some changes (they are parked: see `fieldsync status`), 75 when the\n"
         "daemon could not be reached or was busy (nothing is lost; run it again), 77\n"
         "when it refused this device.\n"
         "  -e, --endpoint EP     tcp://HOST:PORT ($FIELDSYNC_ENDPOINT; default: the\n"
         "                        credential's endpoint)\n"
         "  --timeout SEC         the whole sync, default 30\n"
         "  --no-progress         no progress line, even on a terminal\n"},
	{"status", 0, 0, 0, true, "status [--json]", "pending changes, last sync, last error",
         "Prints the replica, the credential (never its secret), the pending and parked\n"
         "changes and the outcome of the last sync, in local time (--json: ms).\n"},
	{"deadlines", 0, 0, B_MINE | B_DUE_WITHIN | B_CASE, true,
         "deadlines [--mine STAFF] [--due-within 7d] [--case ID] [--json]",
         "the deadlines of the local data, offline",
         "Lists the reminders the local data implies now, computed as the daemon computes\n"
         "them (docs/reminders.md), local edits included before any sync: overdue first,\n"
         "then by due time, met ones last; times in the service's zone. The rule table\n"
         "and zone are the ones the daemon sent at the last sync; before the first sync\n"
         "METHOD.md's defaults in Europe/Copenhagen (said on stderr).\n"
         "  --mine STAFF          only the cases whose contact person is STAFF\n"
         "  --due-within DUR      only open ones due within DUR (overdue included):\n"
         "                        N followed by m, h, d or w, e.g. 7d (7 x 24 h)\n"
         "  --case ID             only case ID\n"
         "With --json one object per reminder, times in ms and as local text.\n"},
	{"keygen", 0, 0, B_KEY_ID, false, "keygen [--key-id ID]",
         "write a new random key to the --key-file",
         "Writes a new random store key to the --key-file (mode 0600); never overwrites.\n"
         "  --key-id ID           the key's name, default k1\n"},
	{"migrate", 0, 0, 0, true, "migrate", "encrypt a plain store that holds a credential",
         "Encrypts, in place, a plain store an older version let hold a device credential\n"
         "(its secret key in clear), with the key in --key-file (from `fieldsync keygen`).\n"
         "Records, outbox and credential are kept. Nothing else may have the store open.\n"},
	{"rekey", 0, 0, B_NEW_KEY_FILE, true, "rekey --new-key-file FILE",
         "re-wrap the store's data keys with a new key",
         "Re-wraps the store's data keys with the key in FILE; afterwards only that key\n"
         "opens the store. Needs the current key in --key-file.\n"
         "  --new-key-file FILE   the new key (from `fieldsync keygen`)\n"},
	{"watch", 0, 0,
         B_ENDPOINT | B_REMINDERS | B_SINCE | B_RULE | B_SCOPE | B_COUNT | B_STATE | B_CREDENTIAL |
                 B_EXEC | B_ON_RESTORE | B_RETRY_DELAY | B_TIME_ZONE,
         false,
         "watch --reminders PUB_EP [--endpoint SYNC_EP] [--credential FILE]\n"
         "        [--since SEQ] [--rule R] [--scope S] [--count N] [--state FILE]\n"
         "        [--exec CMD [--retry-delay SEC]] [--on-restore=replay|skip]\n"
         "        [--time-zone ZONE] [--json]",
         "follow reminder events, each once, in seq order",
         "Follows the daemon's reminder events, each once and in seq order (gaps are\n"
         "filled by replay). Needs no store. Ctrl-C exits at once with 130.\n"
         "  -e, --endpoint EP     the sync endpoint, for replay ($FIELDSYNC_ENDPOINT;\n"
         "                        default: the credential's)\n"
         "  --reminders EP        the reminder PUB endpoint ($FIELDSYNC_REMINDERS)\n"
         "  --credential FILE     a scheduler credential: CURVE ($FIELDSYNC_CREDENTIAL)\n"
         "  --since SEQ           deliver the events after SEQ (overrides --state)\n"
         "  --rule R, --scope S   only this rule, only this scope\n"
         "  --count N             exit 0 after N events\n"
         "  --state FILE          resume from the cursor saved in FILE and save it after\n"
         "                        every event (atomically). A corrupt file exits 78; a\n"
         "                        cursor ahead of the daemon (a restore) exits 79\n"
         "  --on-restore MODE     when the cursor is ahead of the daemon: replay (from\n"
         "                        seq 0) or skip (from the daemon's last event)\n"
         "  --exec CMD            run CMD (sh -c) once per event, the event as JSON on\n"
         "                        stdin and in FS_* variables; the cursor advances only\n"
         "                        when CMD exits 0, else CMD is retried, never skipped.\n"
         "                        Idempotency key: $FS_IDEMPOTENCY_KEY (reminder_id:seq)\n"
         "  --retry-delay SEC     the first retry's delay, doubled up to 60 s; default 1\n"
         "  --time-zone ZONE      print times in ZONE, the service's (default: $TZ)\n"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
	"usage: fieldsync [-s DIR] [-k FILE] [-j] COMMAND [ARGS] [OPTIONS]\n"
	"       fieldsync help [COMMAND]     fieldsync COMMAND --help     fieldsync --version\n"
	"The offline store of a fieldsync tablet and its sync with fieldsyncd.\n"
	"\n"
	"  -s, --store DIR       the store directory ($FIELDSYNC_STORE)\n"
	"  -k, --key-file FILE   the key of an encrypted store, one line \"<id>:<64 hex>\",\n"
	"                        mode 0600 ($FIELDSYNC_STORE_KEY_FILE)\n"
	"  -j, --json            JSON lines on stdout, on every command\n"
	"  -h, --help            this help, or a command's\n"
	"  -V, --version         the version\n"
	"Options take their value as --opt VALUE or --opt=VALUE, anywhere on the line.\n"
	"\n"
	"commands:\n";

static const char exit_help[] =
	"\n"
	"exit status: 0 ok, 1 local failure, 2 usage or refused input, 3 not found,\n"
	"4 in conflict, 65 changes refused by the daemon, 75 retry later (network,\n"
	"timeout, busy), 76 protocol, 77 refused device or scope, 78 corrupt state file,\n"
	"79 cursor ahead of the daemon, 130 interrupted. See fieldsync(1).\n";

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; name != NULL && i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int
print_global_help(FILE *f)
{
	fputs(global_help, f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("  help       this help, or a command's: help COMMAND\n", f);
	fputs(exit_help, f);
	return 0;
}

static int
print_command_help(const struct command *c)
{
	printf("usage: fieldsync%s %s\n", c->store ? " [-s DIR] [-k FILE]" : "", c->synopsis);
	printf("%s\n%s", c->summary, c->help);
	if (c->store)
		printf("  -s, --store DIR       the store ($FIELDSYNC_STORE)\n"
		       "  -k, --key-file FILE   its key, when encrypted ($FIELDSYNC_STORE_KEY_FILE)\n");
	printf("  -j, --json            JSON lines on stdout\n");
	fputs(exit_help, stdout);
	return fflush(stdout) == 0 ? 0 : EX_FAIL;
}

/* The long option that a (possibly abbreviated) "--name" names; NULL when
 * none or several. */
static const struct option *
long_option(const char *arg)
{
	const char *name = arg + 2;
	size_t n = strcspn(name, "=");
	const struct option *hit = NULL;
	for (const struct option *o = longopts; o->name != NULL; o++) {
		if (strncmp(o->name, name, n) != 0)
			continue;
		if (strlen(o->name) == n)
			return o;
		if (hit != NULL)
			return NULL;
		hit = o;
	}
	return hit;
}

/* The command name: the first argument that is neither an option nor an
 * option's value. Read before any option is acted on. */
static const char *
scan_command(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-' || a[1] == '\0')
			return a;
		if (a[1] == '-') {
			const struct option *o = long_option(a);
			if (o != NULL && o->has_arg == required_argument && strchr(a, '=') == NULL)
				i++;
			continue;
		}
		for (const char *p = a + 1; *p != '\0'; p++) /* -js DIR, -sDIR */
			if (strchr("ske", *p) != NULL) {
				if (p[1] == '\0')
					i++;
				break;
			}
	}
	return NULL;
}

/* What an option's value is, for "needs a value" messages. */
static const char *
metavar(const char *name)
{
	static const char *const m[][2] = {
		{"store", "DIR"},
		{"key-file", "FILE"},
		{"endpoint", "tcp://HOST:PORT"},
		{"scope", "SCOPE"},
		{"timeout", "SECONDS"},
		{"reminders", "tcp://HOST:PORT"},
		{"since", "SEQ"},
		{"rule", "RULE"},
		{"count", "N"},
		{"state", "FILE"},
		{"credential", "FILE"},
		{"key-id", "ID"},
		{"new-key-file", "FILE"},
		{"exec", "CMD"},
		{"on-restore", "replay"},
		{"retry-delay", "SECONDS"},
		{"time-zone", "Europe/Copenhagen"},
		{"mine", "STAFF"},
		{"due-within", "7d"},
		{"case", "ID"},
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strcmp(m[i][0], name) == 0)
			return m[i][1];
	return "VALUE";
}

/* The option's name as the user wrote it, for messages. */
static const char *
option_name(int c, char *buf, size_t len)
{
	for (const struct option *o = longopts; o->name != NULL; o++)
		if (o->val == c) {
			snprintf(buf, len, "--%s", o->name);
			return buf;
		}
	snprintf(buf, len, "-%c", c);
	return buf;
}

static unsigned
option_bit(int c)
{
	switch (c) {
	case 'e':
		return B_ENDPOINT;
	case O_SCOPE:
		return B_SCOPE;
	case O_TIMEOUT:
		return B_TIMEOUT;
	case O_REMINDERS:
		return B_REMINDERS;
	case O_SINCE:
		return B_SINCE;
	case O_RULE:
		return B_RULE;
	case O_COUNT:
		return B_COUNT;
	case O_STATE:
		return B_STATE;
	case O_CREDENTIAL:
		return B_CREDENTIAL;
	case O_KEY_ID:
		return B_KEY_ID;
	case O_NEW_KEY_FILE:
		return B_NEW_KEY_FILE;
	case O_EXEC:
		return B_EXEC;
	case O_ON_RESTORE:
		return B_ON_RESTORE;
	case O_RETRY_DELAY:
		return B_RETRY_DELAY;
	case O_NO_PROGRESS:
		return B_NO_PROGRESS;
	case O_TIME_ZONE:
		return B_TIME_ZONE;
	case O_MINE:
		return B_MINE;
	case O_DUE_WITHIN:
		return B_DUE_WITHIN;
	case O_CASE:
		return B_CASE;
	default:
		return 0; /* a global option */
	}
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

int
main(int argc, char **argv)
{
	cli_opts o;
	bool help = false, version = false;
	int c, rc, bad = 0;
	char name[64];
	fs_store *s = NULL;

	memset(&o, 0, sizeof(o));
	cli_set_command(NULL);
	const char *scanned = scan_command(argc, argv);
	const struct command *cmd = find_command(scanned);
	if (cmd != NULL)
		cli_set_command(cmd->name);

	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const char **slot = NULL;
		switch (c) {
		case 's':
			slot = &o.store;
			break;
		case 'k':
			slot = &o.key_file;
			break;
		case 'e':
			slot = &o.endpoint;
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			help = true;
			break;
		case 'V':
			version = true;
			break;
		case O_SCOPE:
			slot = &o.scope;
			break;
		case O_TIMEOUT:
			slot = &o.timeout;
			break;
		case O_REMINDERS:
			slot = &o.reminders;
			break;
		case O_SINCE:
			slot = &o.since;
			break;
		case O_RULE:
			slot = &o.rule;
			break;
		case O_COUNT:
			slot = &o.count;
			break;
		case O_STATE:
			slot = &o.state;
			break;
		case O_CREDENTIAL:
			slot = &o.credential;
			break;
		case O_KEY_ID:
			slot = &o.key_id;
			break;
		case O_NEW_KEY_FILE:
			slot = &o.new_key_file;
			break;
		case O_EXEC:
			slot = &o.exec;
			break;
		case O_ON_RESTORE:
			slot = &o.on_restore;
			break;
		case O_RETRY_DELAY:
			slot = &o.retry_delay;
			break;
		case O_NO_PROGRESS:
			o.no_progress = true;
			break;
		case O_TIME_ZONE:
			slot = &o.time_zone;
			break;
		case O_MINE:
			slot = &o.mine;
			break;
		case O_DUE_WITHIN:
			slot = &o.due_within;
			break;
		case O_CASE:
			slot = &o.case_id;
			break;
		case ':': {
			const char *a = argv[optind - 1];
			if (a[0] == '-' && a[1] == '-') {
				const struct option *lo = long_option(a);
				const char *nm = lo ? lo->name : a + 2;
				return cli_usage_error("option --%s needs a value, e.g. --%s=%s",
				                       nm, nm, metavar(nm));
			}
			const char *nm = optopt == 's'   ? "store"
			                 : optopt == 'k' ? "key-file"
			                                 : "endpoint";
			return cli_usage_error("option -%c needs a value, e.g. -%c %s", optopt,
			                       optopt, metavar(nm));
		}
		default: { /* '?' */
			const char *a = argv[optind - 1];
			if (optopt != 0 && !(a[0] == '-' && a[1] == '-'))
				return cli_usage_error("unknown option -%c", optopt);
			if (a[0] == '-' && a[1] == '-' && long_option(a) == NULL &&
			    strchr(a, '=') == NULL) {
				/* unknown or ambiguous */
				return cli_usage_error("unknown option '%s'", a);
			}
			if (a[0] == '-' && a[1] == '-' && strchr(a, '=') != NULL)
				return cli_usage_error("option %.*s takes no value",
				                       (int)strcspn(a, "="), a);
			return cli_usage_error("unknown option '%s'", a);
		}
		}
		if (slot != NULL) {
			if (*slot != NULL && c != 'k' && c != 's')
				return cli_usage_error("%s is given twice",
				                       option_name(c, name, sizeof(name)));
			*slot = optarg;
		}
		if (option_bit(c) != 0 && cmd != NULL && !(cmd->takes & option_bit(c)) && bad == 0)
			bad = c;
	}

	int npos = argc - optind;
	char **pos = argv + optind;
	if (version) {
		printf("fieldsync %s (libfieldsync, protocol 1)\n", CLI_VERSION);
		return fflush(stdout) == 0 ? 0 : EX_FAIL;
	}
	if (npos == 0) {
		if (help)
			return print_global_help(stdout);
		print_global_help(stderr);
		return EX_USAGE;
	}
	if (strcmp(pos[0], "help") == 0) {
		if (npos == 1)
			return print_global_help(stdout);
		const struct command *h = find_command(pos[1]);
		if (h == NULL || npos > 2)
			return cli_usage_error(h == NULL ? "help: no command '%s'"
			                                 : "help takes one command, not '%s' too",
			                       h == NULL ? pos[1] : pos[2]);
		return print_command_help(h);
	}
	if (cmd == NULL || strcmp(cmd->name, pos[0]) != 0) {
		cli_set_command(NULL);
		return cli_usage_error("unknown command '%s'; `fieldsync help` lists them", pos[0]);
	}
	if (help)
		return print_command_help(cmd);
	if (bad != 0)
		return cli_usage_error("%s does not take %s", cmd->name,
		                       option_name(bad, name, sizeof(name)));
	o.cmd = cmd->name;
	o.nargs = npos - 1;
	if (o.nargs < cmd->min_args || o.nargs > cmd->max_args) {
		if (cmd->max_args == 0)
			return cli_usage_error("%s takes no arguments, only options; got '%s'",
			                       cmd->name, pos[1]);
		return cli_usage_error("%s takes %s, got %d argument%s", cmd->name,
		                       cmd->max_args == 1 ? "COLLECTION" : "COLLECTION ID", o.nargs,
		                       o.nargs == 1 ? "" : "s");
	}
	for (int i = 0; i < o.nargs; i++)
		o.args[i] = pos[i + 1];

	/* The environment's defaults, for the commands that use them. */
	if (o.store == NULL)
		o.store = env("FIELDSYNC_STORE");
	if (o.key_file == NULL)
		o.key_file = env("FIELDSYNC_STORE_KEY_FILE");
	if (o.endpoint == NULL && (cmd->takes & B_ENDPOINT))
		o.endpoint = env("FIELDSYNC_ENDPOINT");
	if (o.credential == NULL && (cmd->takes & B_CREDENTIAL))
		o.credential = env("FIELDSYNC_CREDENTIAL");
	if (o.reminders == NULL && (cmd->takes & B_REMINDERS))
		o.reminders = env("FIELDSYNC_REMINDERS");
	if (o.time_zone == NULL && (cmd->takes & B_TIME_ZONE))
		o.time_zone = env("FIELDSYNC_TIME_ZONE");

	if (strcmp(cmd->name, "watch") == 0)
		return cmd_watch(&o);
	if (strcmp(cmd->name, "keygen") == 0)
		return cmd_keygen(&o);
	if (o.store == NULL)
		return cli_usage_error("%s needs a store: give --store DIR (-s DIR) or set "
		                       "FIELDSYNC_STORE",
		                       cmd->name);
	if (strcmp(cmd->name, "init") == 0)
		return cmd_init(&o);
	if (strcmp(cmd->name, "migrate") == 0)
		return cmd_migrate(&o);
	if (strcmp(cmd->name, "rekey") == 0 && (o.new_key_file == NULL || o.key_file == NULL))
		return cli_usage_error("rekey needs the current key in --key-file FILE and the new "
		                       "one in --new-key-file FILE");

	double timeout_s = 30.0;
	if (o.timeout != NULL) {
		char *end = NULL;
		errno = 0;
		timeout_s = strtod(o.timeout, &end);
		if (errno || end == o.timeout || *end != '\0' || !(timeout_s > 0) ||
		    timeout_s > 86400)
			return cli_usage_error("--timeout takes seconds (more than 0, at most "
			                       "86400), e.g. --timeout=30 or 2.5; not '%s'",
			                       o.timeout);
	}
	if ((rc = cli_store_open(o.store, o.key_file, &s)) != 0)
		return rc;
	if (strcmp(cmd->name, "put") == 0 || strcmp(cmd->name, "resolve") == 0)
		rc = cmd_write(s, &o);
	else if (strcmp(cmd->name, "get") == 0)
		rc = cmd_get(s, &o);
	else if (strcmp(cmd->name, "delete") == 0)
		rc = cmd_delete(s, &o);
	else if (strcmp(cmd->name, "list") == 0)
		rc = cmd_list(s, &o);
	else if (strcmp(cmd->name, "conflicts") == 0)
		rc = cmd_conflicts(s, &o);
	else if (strcmp(cmd->name, "sync") == 0)
		rc = cmd_sync(s, &o, timeout_s);
	else if (strcmp(cmd->name, "rekey") == 0)
		rc = cmd_rekey(s, &o);
	else if (strcmp(cmd->name, "deadlines") == 0)
		rc = cmd_deadlines(s, &o);
	else
		rc = cmd_status(s, &o);
	fs_store_close(&s);
	return rc;
}
