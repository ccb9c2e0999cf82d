/*
 * admin.c: fieldsyncd's operator subcommands: the table, option parsing,
 * --help, admin_dispatch(), and the helpers the cmd_*.c files share
 * (admin layer; contract in admin.h).
 *
 *   init, enroll, revoke, devices   cmd_init.c, cmd_devices.c
 *   audit                           cmd_audit.c
 *   purge, rotate-master-key        cmd_purge.c, cmd_rotate.c
 *   health                          cmd_health.c
 *   backup, restore, verify         cmd_backup.c, cmd_restore.c, cmd_verify.c
 *
 * They open the same LMDB store as a running daemon (LMDB serialises
 * writers across processes), so they work while it runs and take effect at
 * once: the ZAP handler reads the registry at every handshake. Every change
 * (init, enroll, revoke, purge, rotate-master-key, backup) writes one audit
 * entry. Nothing prints or stores a client secret key, except the
 * credential file enroll writes (mode 0600, never overwritten).
 *
 * Every subcommand: --help; errors on stderr; exit 0 on success, 1 when it
 * failed, 2 for bad usage (FSD_EXIT_*). --data-dir also comes from
 * FIELDSYNC_DATA_DIR.
 *
 * To add a subcommand: write `int admin_cmd_x(const admin_args *a)` in a
 * file of its own, declare it in admin.h and add a row to `commands` below;
 * options, --help, the required-option checks and --data-dir are handled by
 * admin_dispatch.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "admin_dispatch.h"
#include "clock.h"
#include "keyring.h"
#include "log.h"
#include "ops_http.h"
#include "registry.h"
#include "schema.h"
#include "store.h"

/* ---- options and usage ---------------------------------------------------- */

const char *
admin_opt(const admin_args *a, const char *name)
{
	const admin_cmd *c = a->cmd;
	for (size_t i = 0; i < ADMIN_OPTS_MAX && c->opts[i].name != NULL; i++)
		if (strcmp(c->opts[i].name, name) == 0)
			return a->val[i];
	assert(!"admin_opt: the command has no such option");
	return NULL;
}

void
admin_print_usage(FILE *f, const admin_cmd *c)
{
	fprintf(f, "usage: fieldsyncd %s [OPTIONS]\n\n%s\n\noptions:\n", c->name, c->usage);
	for (size_t i = 0; i < ADMIN_OPTS_MAX && c->opts[i].name != NULL; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", c->opts[i].name, c->opts[i].arg ? " " : "",
		         c->opts[i].arg ? c->opts[i].arg : "");
		fprintf(f, "  %-22s %s%s\n", left, c->opts[i].help,
		        c->opts[i].required ? " (required)" : "");
	}
	fprintf(f, "  %-22s %s\n", "--help", "print this help and exit");
	fprintf(f, "\nexit status: 0 done, 1 failed, 2 bad usage.\n");
}

const char *
admin_actor(const admin_args *a)
{
	const char *v = admin_opt(a, "actor");
	if (v == NULL || v[0] == '\0')
		v = getenv("SUDO_USER");
	if (v == NULL || v[0] == '\0')
		v = getenv("USER");
	return v != NULL && v[0] != '\0' ? v : "unknown";
}

/* ---- the store ------------------------------------------------------------ */

store *
admin_open_store(const char *dir, bool create)
{
	char path[600];
	struct stat st;
	store *s;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!create && stat(path, &st) != 0) {
		fprintf(stderr,
		        "fieldsyncd: %s holds no store: run 'fieldsyncd init --data-dir %s' "
		        "first\n",
		        dir, dir);
		return NULL;
	}
	if ((s = store_open(dir, ADMIN_MAP_SIZE, ADMIN_MAP_SIZE_MAX)) == NULL)
		fprintf(stderr,
		        "fieldsyncd: cannot open the store in %s (see the log line above)\n", dir);
	return s;
}

fsd_err
admin_write_txn(store *s, admin_txn_fn fn, void *arg)
{
	for (int tries = 0;; tries++) {
		store_txn *t;
		fsd_err rc = store_write_begin(s, &t);
		if (rc != FSD_OK)
			return rc;
		if ((rc = fn(t, arg)) == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
		if (rc == FSD_FULL && tries < 4 && store_grow(s) == FSD_OK)
			continue;
		return rc;
	}
}

keyring *
admin_open_keyring(const char *dir, const char *key_file, bool *needed)
{
	char keys_dir[600], err[400];
	struct stat st;
	const char *env = getenv("FIELDSYNC_MASTER_KEY");
	snprintf(keys_dir, sizeof(keys_dir), "%s/keys", dir);
	*needed = stat(keys_dir, &st) == 0;
	if (!*needed && (key_file == NULL || key_file[0] == '\0') &&
	    (env == NULL || env[0] == '\0'))
		return NULL; /* a plaintext (--dev) store */
	keyring *k = NULL;
	if (keyring_open(dir, key_file, env, &k, err, sizeof(err)) != FSD_OK)
		fprintf(stderr, "fieldsyncd: %s\n", err);
	return k;
}

/* ---- listings --------------------------------------------------------------- */

int
admin_list_print(const admin_args *a, const char *header,
                 fsd_err (*read)(store_txn *t, admin_list *l), void (*print)(const cJSON *item))
{
	admin_list l = {cJSON_CreateArray(), true};
	store *s = admin_open_store(admin_opt(a, "data-dir"), false);
	store_txn *t = NULL;
	fsd_err rc = FSD_ERROR;

	if (s != NULL && l.items != NULL && (rc = store_read_begin(s, &t)) == FSD_OK) {
		rc = read(t, &l);
		store_read_end(&t);
	}
	store_close(&s);
	if (rc == FSD_OK && l.ok && admin_opt(a, "json") != NULL) {
		char *text = cJSON_Print(l.items);
		if (text != NULL)
			printf("%s\n", text);
		else
			l.ok = false;
		free(text);
	} else if (rc == FSD_OK && l.ok) {
		const cJSON *it;
		printf("%s\n", header);
		cJSON_ArrayForEach(it, l.items)
		{
			print(it);
		}
	}
	cJSON_Delete(l.items);
	if (rc != FSD_OK || !l.ok) {
		fprintf(stderr, "fieldsyncd %s: failed: %s\n", a->cmd->name,
		        rc != FSD_OK ? fsd_strerror(rc) : "out of memory");
		return FSD_EXIT_FAIL;
	}
	return FSD_EXIT_OK;
}

const char *
admin_jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

void
admin_iso_time(int64_t ms, char *out, size_t cap)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || gmtime_r(&secs, &tm) == NULL ||
	    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "-");
}

/* ---- the table ----------------------------------------------------------------- */

#define OPT_DATA_DIR                                                                        \
	{                                                                                   \
		"data-dir", "DIR", true, "the daemon's data directory [FIELDSYNC_DATA_DIR]" \
	}
#define OPT_ACTOR                                                                      \
	{                                                                              \
		"actor", "NAME", false,                                                \
			"who does this, for the audit log (default $SUDO_USER, $USER)" \
	}
#define OPT_JSON                                          \
	{                                                 \
		"json", NULL, false, "print a JSON array" \
	}

static const admin_cmd commands[] = {
	{"init",
         admin_cmd_init,
         "Creates the store and the CURVE server key pair (DIR/server.key, DIR/server.pub,\n"
         "mode 0600) and prints the server public key. Never overwrites existing keys.",
         {OPT_DATA_DIR, OPT_ACTOR}},
	{"enroll",
         admin_cmd_enroll,
         "Enrolls a device or scheduler: makes its key pair, records its public key, name,\n"
         "role and scopes, and writes its credential (JSON, mode 0600, never overwritten).\n"
         "The client secret key is only in that file. Names are never reused; a scope may\n"
         "not be a prefix of another enrolled scope (reminder topics match by prefix).\n"
         "Takes effect at once, also while the daemon runs.",
         {OPT_DATA_DIR,
          {"name", "NAME", true, "device name, [a-z0-9][a-z0-9._-]{0,63}, unique"},
          {"scopes", "A,B", true, "the scopes it may sync (at most 32)"},
          {"role", "ROLE", true, "device (push and pull) or scheduler (replay and reminders)"},
          {"endpoint", "EP", true,
           "the sync endpoint it connects to, e.g. tcp://sync.example.org:7400"},
          {"out", "FILE", true, "where to write the credential"},
          OPT_ACTOR}},
	{"revoke",
         admin_cmd_revoke,
         "Revokes a device: new handshakes with its key are refused at once, and so are\n"
         "requests on its open connections. The name stays taken.",
         {OPT_DATA_DIR, {"name", "NAME", true, "the device to revoke"}, OPT_ACTOR}},
	{"devices",
         admin_cmd_devices,
         "Lists the enrolled devices (name, role, public key, enrolled and revoked time in\n"
         "UTC, scopes) with what the daemon last heard from each (last seen, client,\n"
         "pending and parked edits, checkpoint) and whether it is at risk. Never shows a\n"
         "secret: the daemon holds none.",
         {OPT_DATA_DIR,
          OPT_JSON,
          {"at-risk-days", "N", false,
           "a device not seen, or with an unpushed edit, for N days is at risk (default 3)"}}},
	{"purge",
         admin_cmd_purge,
         "Erases a record for good (GDPR art. 17): the record and its siblings become a purge\n"
         "marker that every tablet obeys by deleting it, its reminders go, and its data key\n"
         "is destroyed, so backups of the data taken before cannot be read for it. --case\n"
         "erases a case and all its contacts. Later pushes to it are refused. Works while\n"
         "the daemon runs.",
         {OPT_DATA_DIR,
          {"collection", "C", false, "the record's collection"},
          {"id", "ID", false, "the record's id"},
          {"case", "ID", false, "a case and all its contacts"},
          {"master-key-file", "FILE", false, "the master key(s) [or FIELDSYNC_MASTER_KEY]"},
          OPT_ACTOR}},
	{"rotate-master-key",
         admin_cmd_rotate,
         "Rewraps every data key with the first key of the master key file. To rotate: put\n"
         "the new key first in the file, restart the daemon, run this, drop the old line.",
         {OPT_DATA_DIR,
          {"master-key-file", "FILE", false, "the master key(s) [or FIELDSYNC_MASTER_KEY]"},
          OPT_ACTOR}},
	{"health",
         admin_cmd_health,
         "Asks the running daemon's ops endpoint: exit 0 when /healthz (or, with --ready,\n"
         "/readyz) answers 200, else 1. For container HEALTHCHECKs: the image needs no curl.",
         {{"ops-listen", "HOST:PORT", false, "the daemon's --ops-listen [FIELDSYNC_OPS_LISTEN]"},
          {"ready", NULL, false, "ask /readyz (deep) instead of /healthz (shallow)"}}},
	{"audit",
         admin_cmd_audit,
         "Prints the audit log in order: who did what to which collection and id, and when.\n"
         "It holds identifiers only, never payload content.",
         {OPT_DATA_DIR, OPT_JSON}},
	{"backup",
         admin_cmd_backup,
         "A hot, compacting copy of the store (DIR/data.mdb) into a new file, taken while\n"
         "the daemon runs: the snapshot of the moment it began. Progress on a terminal.\n"
         "The data keys (DIR/keys) are not in it, so a purge reaches data backups: copy\n"
         "them with --with-keys into a separate file (key escrow, short retention).\n"
         "Server keys are in no backup. Writes an audit entry.",
         {OPT_DATA_DIR,
          {"out", "FILE", true,
           "the backup file to create (mode 0600, never overwritten); - for stdout"},
          {"with-keys", "FILE2", false, "also copy the key store (DIR/keys) into FILE2"},
          {"master-key-file", "FILE", false, "check that this master key opens the key store"},
          OPT_ACTOR}},
	{"restore",
         admin_cmd_restore,
         "Restores a backup into a new data directory (one holding a data.mdb is refused),\n"
         "optionally with its key store backup, then verifies it. Server keys are not in\n"
         "backups: copy server.key and server.pub from your secret store.",
         {{"data-dir", "DIR", true, "the new data directory [FIELDSYNC_DATA_DIR]"},
          {"from", "FILE", true, "the backup made by 'fieldsyncd backup --out'"},
          {"keys-from", "FILE2", false, "the key store backup made by --with-keys"},
          {"master-key-file", "FILE", false,
           "the master key(s), to verify sealed data [or FIELDSYNC_MASTER_KEY]"},
          {"rules", "FILE", false,
           "the daemon's rule table, for the reminder check [FIELDSYNC_RULES]"},
          {"time-zone", "ZONE", false,
           "the daemon's time zone (default Europe/Copenhagen) [FIELDSYNC_TIME_ZONE]"}}},
	{"seal",
         admin_cmd_seal,
         "Seals what a production store holds in clear (payloads and reminder rows written\n"
         "before encryption was turned on; `verify` lists them). Works while the daemon runs.",
         {OPT_DATA_DIR,
          {"master-key-file", "FILE", false, "the master key(s) [or FIELDSYNC_MASTER_KEY]"},
          OPT_ACTOR}},
	{"verify",
         admin_cmd_verify,
         "Checks a store: every record decodes (and its payloads open, with a master key),\n"
         "the feed index matches the records, and stored reminders match their rules.\n"
         "Problems name the record by collection/id. Exit 1 on any problem.",
         {OPT_DATA_DIR,
          {"master-key-file", "FILE", false,
           "the master key(s), to open sealed data [or FIELDSYNC_MASTER_KEY]"},
          {"rules", "FILE", false,
           "the daemon's rule table, for the reminder check [FIELDSYNC_RULES]"},
          {"time-zone", "ZONE", false,
           "the daemon's time zone (default Europe/Copenhagen) [FIELDSYNC_TIME_ZONE]"},
          {"max-page-bytes", "BYTES", false,
           "the daemon's page bound (default 32M) [FIELDSYNC_MAX_PAGE_BYTES]"}}},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- parsing and dispatch ------------------------------------------------------ */

/* Parses argv (argv[0] is the subcommand) into a; returns -1 to go on, or an exit code. */
static int
parse_args(const admin_cmd *c, int argc, char **argv, admin_args *a)
{
	struct option longopts[ADMIN_OPTS_MAX + 2];
	size_t n = 0;

	memset(a, 0, sizeof(*a));
	a->cmd = c;
	for (; n < ADMIN_OPTS_MAX && c->opts[n].name != NULL; n++) {
		longopts[n].name = c->opts[n].name;
		longopts[n].has_arg = c->opts[n].arg ? required_argument : no_argument;
		longopts[n].flag = NULL;
		longopts[n].val = 256 + (int)n;
	}
	longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
	memset(&longopts[n + 1], 0, sizeof(longopts[n + 1]));

	optind = 1;
	opterr = 0;
	for (;;) {
		int id = getopt_long(argc, argv, "", longopts, NULL);
		if (id == -1)
			break;
		if (id == 'h') {
			admin_print_usage(stdout, c);
			return FSD_EXIT_OK;
		}
		if (id < 256 || id >= 256 + (int)n) {
			fprintf(stderr,
			        "fieldsyncd %s: unknown or incomplete option '%s'\n"
			        "try 'fieldsyncd %s --help'\n",
			        c->name, argv[optind - 1], c->name);
			return FSD_EXIT_USAGE;
		}
		a->val[id - 256] = c->opts[id - 256].arg ? optarg : "1";
	}
	if (optind < argc) {
		fprintf(stderr,
		        "fieldsyncd %s: unexpected argument '%s'\ntry 'fieldsyncd %s --help'\n",
		        c->name, argv[optind], c->name);
		return FSD_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		if (a->val[i] == NULL && strcmp(c->opts[i].name, "data-dir") == 0) {
			const char *env = getenv("FIELDSYNC_DATA_DIR");
			a->val[i] = env != NULL && env[0] != '\0' ? env : NULL;
		}
		if (c->opts[i].arg != NULL && a->val[i] != NULL && a->val[i][0] == '\0') {
			fprintf(stderr, "fieldsyncd %s: --%s is empty\n", c->name, c->opts[i].name);
			return FSD_EXIT_USAGE;
		}
		if (c->opts[i].required && a->val[i] == NULL) {
			fprintf(stderr,
			        "fieldsyncd %s: --%s is required%s\ntry 'fieldsyncd %s --help'\n",
			        c->name, c->opts[i].name,
			        strcmp(c->opts[i].name, "data-dir") == 0
			                ? " (or FIELDSYNC_DATA_DIR)"
			                : "",
			        c->name);
			return FSD_EXIT_USAGE;
		}
		if (strcmp(c->opts[i].name, "data-dir") == 0 && strlen(a->val[i]) > 400) {
			fprintf(stderr, "fieldsyncd %s: --data-dir is too long\n", c->name);
			return FSD_EXIT_USAGE;
		}
	}
	return -1;
}

bool
admin_dispatch(int argc, char **argv, int *code)
{
	admin_args a;
	int rc;

	if (argc < 2 || argv[1] == NULL)
		return false;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const admin_cmd *c = &commands[i];
		if (strcmp(argv[1], c->name) != 0)
			continue;
		/* the store's and the registry's log lines would only clutter a command's output */
		log_set_level(LOG_WARN);
		if ((rc = parse_args(c, argc - 1, argv + 1, &a)) >= 0) {
			*code = rc;
			return true;
		}
		*code = c->fn(&a);
		fflush(stdout);
		return true;
	}
	return false;
}
