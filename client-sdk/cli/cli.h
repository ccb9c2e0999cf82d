/*
 * cli.h: the private header of the `fieldsync` CLI (client-sdk/cli/). One
 * file per job: main.c (options, help texts, dispatch, the output and error
 * helpers below), cmd_records.c (put, get, delete, list, conflicts,
 * resolve), cmd_sync.c (sync with its progress line, status), cmd_store.c
 * (init, keygen, rekey, opening the store), cmd_watch.c (watch, --exec and
 * its state file), cmd_deadlines.c (deadlines: the local data's reminders),
 * cmd_migrate.c (migrate: encrypt an older plain store holding a credential;
 * it opens the store itself).
 *
 * Contract: every cmd_* and cli_* returning int returns a process exit
 * status (EX_* below; 0 is success) after printing its own message to
 * stderr; messages never quote a payload. A command never closes the store
 * it is given; main opens and closes it. Single-threaded.
 */
#ifndef FIELDSYNC_CLI_H
#define FIELDSYNC_CLI_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "fieldsync/crypto.h"
#include "fieldsync/fieldsync.h"

/* Exit statuses (docs/man/fieldsync.1, EXIT STATUS). 64..78 follow
 * sysexits(3) where one fits; usage keeps 2 as scripts already expect. */
#define EX_FAIL 1          /* a local failure: store, file, memory */
#define EX_USAGE 2         /* bad usage or refused input: fix the command */
#define EX_NOTFOUND 3      /* no such record */
#define EX_CONFLICT 4      /* the record is in conflict (get without --json) */
#define EX_DATAERR 65      /* the daemon refused some changes: they are parked */
#define EX_TEMPFAIL 75     /* network, timeout, BUSY, daemon error: retry later */
#define EX_PROTOCOL 76     /* the daemon answered outside the protocol */
#define EX_NOPERM 77       /* the daemon refused this device: key, scope */
#define EX_STATE 78        /* watch: the --state file is corrupt */
#define EX_RESTORED 79     /* watch: the cursor is ahead of the daemon (restore) */
#define EX_INTERRUPTED 130 /* watch: SIGINT (Ctrl-C); 143 for SIGTERM */

/* The options of one run, as given (NULL: not given), after the
 * environment's defaults. Positional arguments follow the command. */
typedef struct cli_opts {
	const char *cmd; /* the command name */
	const char *store, *key_file, *endpoint, *scope, *timeout, *reminders, *since, *rule;
	const char *count, *state, *credential, *key_id, *new_key_file, *exec, *on_restore;
	const char *retry_delay, *time_zone;
	const char *mine, *due_within, *case_id; /* deadlines */
	bool json, no_progress;
	const char *args[3];
	int nargs;
} cli_opts;

/* main.c: output shared by the commands. */
/* "fieldsync: <message>" then "try 'fieldsync CMD --help'"; EX_USAGE. */
/* output.c: what every command says. */
void cli_set_command(const char *name); /* the command named in "try 'fieldsync CMD --help'" */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(const char *what, fs_err e);                    /* "what: error"; exit status for e */
int cli_exit_status(fs_err e);                               /* the exit status that stands for e */
const char *cli_err_name(fs_err e);                          /* "TIMEOUT", ... */
bool cli_add_raw_int(cJSON *o, const char *name, int64_t v); /* exact 64-bit number */
int cli_print_json(cJSON *o); /* prints o on one line and frees it (NULL: out of memory) */
/* "2026-04-01 00:00 CEST": ms since the epoch in the zone TZ names (NULL:
 * the machine's), minutes only unless seconds. */
void cli_local_time(int64_t ms, const char *tz, bool seconds, char *out, size_t len);

/* cmd_store.c */
bool cli_load_key(const char *key_file, fsc_master *m); /* false: message printed */
int cli_load_credential(const char *file, const char *what, const char *after,
                        fs_credential **cred);
int cli_store_open(const char *store_dir, const char *key_file, fs_store **s);
int cmd_init(const cli_opts *o);
int cmd_keygen(const cli_opts *o);
int cmd_rekey(fs_store *s, const cli_opts *o);
int cmd_migrate(const cli_opts *o); /* cmd_migrate.c */

/* cmd_records.c; o->cmd is "put" or "resolve" for cmd_write */
int cmd_write(fs_store *s, const cli_opts *o);
int cmd_get(fs_store *s, const cli_opts *o);
int cmd_delete(fs_store *s, const cli_opts *o);
int cmd_list(fs_store *s, const cli_opts *o);
int cmd_conflicts(fs_store *s, const cli_opts *o);

/* cmd_sync.c */
int cmd_sync(fs_store *s, const cli_opts *o, double timeout_s);
int cmd_status(fs_store *s, const cli_opts *o);

/* cmd_deadlines.c */
int cmd_deadlines(fs_store *s, const cli_opts *o);

/* cmd_watch.c (needs no store) */
int cmd_watch(const cli_opts *o);

#endif
