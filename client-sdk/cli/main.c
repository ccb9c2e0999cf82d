/*
 * fieldsync: the command-line face of libfieldsync, for scripts, tests and
 * staff support. See client-sdk/README.md and `fieldsync --help`.
 *
 * main.c: the global options, the usage text, the checks of which options go
 * with which command, and the dispatch to the cmd_*.c files (cli.h).
 *
 * Exit status: 0 success, 1 failure (store, network, daemon), 2 bad usage
 * or refused input, 3 no such record, 4 the record is in conflict (get
 * without --json). Messages go to stderr and never quote a payload.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
	"usage: fieldsync [--store DIR] [--key-file FILE] COMMAND [ARGS]\n"
	"  The store directory comes from --store or $FIELDSYNC_STORE.\n"
	"  --key-file FILE (or $FIELDSYNC_STORE_KEY_FILE): the store is encrypted with the\n"
	"  key in FILE, one line \"<id>:<64 hex digits>\", mode 0600; every command that\n"
	"  opens or creates the store uses it.\n"
	"commands:\n"
	"  init [--scope S] [--credential FILE] create the store (default scope \"default\",\n"
	"                                       or the credential's first scope); with\n"
	"                                       --credential, sync uses its endpoint and CURVE\n"
	"  put COLLECTION ID [--scope S]        write the value read from stdin\n"
	"  get COLLECTION ID [--json]           print the value (--json: every sibling)\n"
	"  delete COLLECTION ID                 delete the record\n"
	"  list COLLECTION                      print the ids of live records\n"
	"  conflicts [--json]                   list records in conflict\n"
	"  resolve COLLECTION ID                write the merged value from stdin\n"
	"  sync [--endpoint EP] [--timeout SEC] push local changes, pull the feed (EP\n"
	"                                       defaults to the credential's endpoint)\n"
	"  status [--json]                      pending changes, last sync, last error\n"
	"  keygen [--key-id ID]                 write a new random key to the --key-file\n"
	"                                       (mode 0600; never overwrites; ID default k1)\n"
	"  rekey --new-key-file FILE            re-wrap the store's data keys with the key in\n"
	"                                       FILE; afterwards only that key opens the store\n"
	"  watch --endpoint SYNC_EP --reminders PUB_EP [--since SEQ] [--rule R]\n"
	"        [--scope S] [--json] [--count N] [--state FILE] [--credential FILE]\n"
	"                                       follow reminder events, each once, in seq\n"
	"                                       order; gaps are filled by replay (no store);\n"
	"                                       --credential: CURVE, and SYNC_EP defaults\n"
	"                                       to the credential's endpoint\n"
	"Collections \"case\" and \"contact\" are read and printed as JSON (METHOD.md);\n"
	"others take their bytes from stdin and print them as they are.\n";

int
cli_usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "fieldsync: %s\n", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

int
cli_fail(const char *what, fs_err e)
{
	fprintf(stderr, "fieldsync: %s: %s\n", what, fs_strerror(e));
	if (e == FS_ERR_NOT_FOUND)
		return EX_NOTFOUND;
	if (e == FS_ERR_INVALID)
		return EX_USAGE;
	return EX_FAIL;
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

int
main(int argc, char **argv)
{
	const char *store_dir = getenv("FIELDSYNC_STORE");
	const char *pos[4] = {NULL, NULL, NULL, NULL};
	const char *key_file = getenv("FIELDSYNC_STORE_KEY_FILE");
	const char *scope = NULL, *endpoint = NULL, *timeout = NULL;
	const char *reminders = NULL, *since = NULL, *rule = NULL, *count = NULL, *state = NULL;
	const char *credential = NULL, *key_id = NULL, *new_key_file = NULL;
	bool json = false;
	int npos = 0, rc;
	fs_store *s = NULL;

	if (key_file != NULL && key_file[0] == '\0')
		key_file = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **opt = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		}
		if (strcmp(a, "--store") == 0)
			opt = &store_dir;
		else if (strcmp(a, "--scope") == 0)
			opt = &scope;
		else if (strcmp(a, "--endpoint") == 0)
			opt = &endpoint;
		else if (strcmp(a, "--timeout") == 0)
			opt = &timeout;
		else if (strcmp(a, "--reminders") == 0)
			opt = &reminders;
		else if (strcmp(a, "--since") == 0)
			opt = &since;
		else if (strcmp(a, "--rule") == 0)
			opt = &rule;
		else if (strcmp(a, "--count") == 0)
			opt = &count;
		else if (strcmp(a, "--state") == 0)
			opt = &state;
		else if (strcmp(a, "--key-file") == 0)
			opt = &key_file;
		else if (strcmp(a, "--credential") == 0)
			opt = &credential;
		else if (strcmp(a, "--key-id") == 0)
			opt = &key_id;
		else if (strcmp(a, "--new-key-file") == 0)
			opt = &new_key_file;
		if (opt != NULL) {
			if (i + 1 >= argc)
				return cli_usage("an option needs a value");
			*opt = argv[++i];
			continue;
		}
		if (a[0] == '-' && a[1] == '-')
			return cli_usage("unknown option");
		if (npos == 4)
			return cli_usage("too many arguments");
		pos[npos++] = a;
	}
	if (npos == 0)
		return cli_usage(NULL);
	if (strcmp(pos[0], "watch") == 0) { /* needs no store */
		if (npos != 1 || timeout != NULL || key_id || new_key_file)
			return cli_usage("watch takes options only");
		return cmd_watch(endpoint, reminders, since, rule, scope, json, count, state,
		                 credential);
	}
	if (strcmp(pos[0], "keygen") == 0) { /* needs no store either */
		if (npos != 1 || scope || endpoint || timeout || json || credential ||
		    new_key_file || reminders || since || rule || count || state)
			return cli_usage("keygen takes --key-file FILE and --key-id ID only");
		return cmd_keygen(key_file, key_id);
	}
	if (reminders || since || rule || count || state || key_id)
		return cli_usage("option not valid for this command");
	if (store_dir == NULL || store_dir[0] == '\0')
		return cli_usage("no store: give --store DIR or set FIELDSYNC_STORE");

	const char *cmd = pos[0];
	struct {
		const char *name;
		int args;
		bool scope, json, sync;
	} const cmds[] = {
		{"init", 0, true, false, false},     {"put", 2, true, false, false},
		{"get", 2, false, true, false},      {"delete", 2, false, false, false},
		{"list", 1, false, false, false},    {"conflicts", 0, false, true, false},
		{"resolve", 2, false, false, false}, {"sync", 0, false, false, true},
		{"status", 0, false, true, false},   {"rekey", 0, false, false, false},
	};
	int k = -1;
	for (int i = 0; i < (int)(sizeof(cmds) / sizeof(cmds[0])); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			k = i;
	if (k < 0)
		return cli_usage("unknown command");
	if (npos - 1 != cmds[k].args)
		return cli_usage("wrong number of arguments");
	if ((scope && !cmds[k].scope) || (json && !cmds[k].json) ||
	    ((endpoint || timeout) && !cmds[k].sync) || (credential && strcmp(cmd, "init") != 0) ||
	    (new_key_file && strcmp(cmd, "rekey") != 0))
		return cli_usage("option not valid for this command");

	if (strcmp(cmd, "init") == 0)
		return cmd_init(store_dir, scope, key_file, credential);
	if (strcmp(cmd, "rekey") == 0 && (new_key_file == NULL || key_file == NULL))
		return cli_usage("rekey needs --key-file CURRENT and --new-key-file NEW");

	double timeout_s = 30.0;
	if (cmds[k].sync) {
		if (timeout != NULL) {
			char *end = NULL;
			errno = 0;
			timeout_s = strtod(timeout, &end);
			if (errno || end == timeout || *end != '\0' || !(timeout_s > 0) ||
			    timeout_s > 86400)
				return cli_usage("--timeout takes seconds, e.g. 30 or 2.5");
		}
	}

	if ((rc = cli_store_open(store_dir, key_file, &s)) != 0)
		return rc;

	if (strcmp(cmd, "put") == 0 || strcmp(cmd, "resolve") == 0)
		rc = cmd_write(s, cmd, pos[1], pos[2], scope);
	else if (strcmp(cmd, "get") == 0)
		rc = cmd_get(s, pos[1], pos[2], json);
	else if (strcmp(cmd, "delete") == 0)
		rc = cmd_delete(s, pos[1], pos[2]);
	else if (strcmp(cmd, "list") == 0)
		rc = cmd_list(s, pos[1]);
	else if (strcmp(cmd, "conflicts") == 0)
		rc = cmd_conflicts(s, json);
	else if (strcmp(cmd, "sync") == 0)
		rc = cmd_sync(s, endpoint, timeout_s);
	else if (strcmp(cmd, "rekey") == 0)
		rc = cmd_rekey(s, new_key_file);
	else
		rc = cmd_status(s, json);
	fs_store_close(&s);
	return rc;
}
