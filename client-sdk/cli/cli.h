/*
 * cli.h: the private header of the `fieldsync` CLI (client-sdk/cli/). One
 * file per job: main.c (global options, usage, dispatch, the output helpers
 * below), cmd_records.c (put, get, delete, list, conflicts, resolve),
 * cmd_sync.c (sync with its progress bar, status), cmd_store.c (init,
 * keygen, rekey, opening the store), cmd_watch.c (watch).
 *
 * Contract: every cmd_* and cli_* returning int returns a process exit
 * status (EX_*; 0 is success) after printing its own message to stderr;
 * messages never quote a payload. A command never closes the store it is
 * given; main opens and closes it. Single-threaded.
 */
#ifndef FIELDSYNC_CLI_H
#define FIELDSYNC_CLI_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "fieldsync/crypto.h"
#include "fieldsync/fieldsync.h"

#define EX_FAIL 1     /* store, network, daemon */
#define EX_USAGE 2    /* bad usage or refused input */
#define EX_NOTFOUND 3 /* no such record */
#define EX_CONFLICT 4 /* the record is in conflict (get without --json) */

/* main.c: output shared by the commands. */
int cli_usage(const char *why);           /* why (may be NULL) + usage; EX_USAGE */
int cli_fail(const char *what, fs_err e); /* "what: error"; exit status for e */
bool cli_add_raw_int(cJSON *o, const char *name, int64_t v); /* exact 64-bit number */
int cli_print_json(cJSON *o); /* prints o on one line and frees it (NULL: out of memory) */

/* cmd_store.c */
bool cli_load_key(const char *key_file, fsc_master *m); /* false: message printed */
int cli_load_credential(const char *file, const char *what, const char *after,
                        fs_credential **cred);
int cli_store_open(const char *store_dir, const char *key_file, fs_store **s);
int cmd_init(const char *dir, const char *scope, const char *key_file, const char *cred_file);
int cmd_keygen(const char *key_file, const char *key_id);
int cmd_rekey(fs_store *s, const char *new_key_file);

/* cmd_records.c; what is "put" or "resolve" */
int cmd_write(fs_store *s, const char *what, const char *coll, const char *id, const char *scope);
int cmd_get(fs_store *s, const char *coll, const char *id, bool json);
int cmd_delete(fs_store *s, const char *coll, const char *id);
int cmd_list(fs_store *s, const char *coll);
int cmd_conflicts(fs_store *s, bool json);

/* cmd_sync.c */
int cmd_sync(fs_store *s, const char *endpoint, double timeout_s);
int cmd_status(fs_store *s, bool json);

/* cmd_watch.c */
int cmd_watch(const char *endpoint, const char *reminders, const char *since, const char *rule,
              const char *scope, bool json, const char *count, const char *state_file,
              const char *cred_file);

#endif
