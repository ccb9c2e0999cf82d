/*
 * admin.h: the private contract of fieldsyncd's admin subcommands
 * (daemon/admin/, the admin layer: it may call anything below daemon.c).
 *
 * One subcommand (or a small group) per file, cmd_<job>.c; admin.c holds
 * the table of subcommands, the option parsing, --help and the helpers
 * below. A subcommand is `int admin_cmd_x(const admin_args *a)`: it reads
 * its options by name with admin_opt(), prints what it did on stdout and
 * why it failed on stderr, and returns an fsd_exit code (err.h): FSD_EXIT_OK,
 * FSD_EXIT_FAIL, or FSD_EXIT_USAGE for bad options. admin_dispatch() has
 * already handled --help, unknown options, required options, empty values
 * and --data-dir from FIELDSYNC_DATA_DIR.
 *
 * Messages name errors with fsd_strerror() (err.h), the daemon's one
 * error-text table; file helpers are sys.h's (sys_file_exists,
 * sys_write_all, sys_sync_parent); LMDB is store.h's alone (the hot copy
 * is store_copy_env).
 *
 * Single-threaded, one subcommand per process. Every string an admin_args
 * holds belongs to argv or the environment: valid for the whole command.
 */
#ifndef FIELDSYNCD_ADMIN_H
#define FIELDSYNCD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "keyring.h"
#include "store.h"

#define ADMIN_OPTS_MAX 12
#define ADMIN_MAP_SIZE (1ULL << 30) /* as the daemon's default; LMDB keeps a larger file's */
#define ADMIN_MAP_SIZE_MAX (64ULL << 30)

/* One option of a subcommand, as --help shows it. */
typedef struct admin_option {
	const char *name; /* without "--"; NULL ends the list */
	const char *arg;  /* the value's name in --help; NULL: a flag */
	bool required;
	const char *help;
} admin_option;

typedef struct admin_cmd admin_cmd;

/* A parsed command line: the row it ran, and its option values by row index. */
typedef struct admin_args {
	const admin_cmd *cmd;
	const char *val[ADMIN_OPTS_MAX]; /* NULL when absent, "1" for a given flag */
} admin_args;

/* A row of the subcommand table (admin.c). */
struct admin_cmd {
	const char *name;
	int (*fn)(const admin_args *a); /* returns an fsd_exit code */
	const char *usage;              /* what it does, for --help */
	admin_option opts[ADMIN_OPTS_MAX];
};

/* The subcommands, one file each (or per group); their rows are in admin.c. */
int admin_cmd_init(const admin_args *a);    /* cmd_init.c */
int admin_cmd_enroll(const admin_args *a);  /* cmd_devices.c */
int admin_cmd_revoke(const admin_args *a);  /* cmd_devices.c */
int admin_cmd_devices(const admin_args *a); /* cmd_devices.c */
int admin_cmd_audit(const admin_args *a);   /* cmd_audit.c */
int admin_cmd_purge(const admin_args *a);   /* cmd_purge.c */
int admin_cmd_rotate(const admin_args *a);  /* cmd_rotate.c */
int admin_cmd_health(const admin_args *a);  /* cmd_health.c */
int admin_cmd_backup(const admin_args *a);  /* cmd_backup.c */
int admin_cmd_restore(const admin_args *a); /* cmd_restore.c */
int admin_cmd_verify(const admin_args *a);  /* cmd_verify.c */
int admin_cmd_seal(const admin_args *a);    /* cmd_seal.c */
/* Every record with a payload, and every reminder row, stored in clear
 * (cmd_verify.c, for verify and seal): fn gets (collection, id) of a
 * record, or (NULL, case id) of a reminder row; false stops. *n: found. */
typedef bool (*admin_unsealed_fn)(void *arg, const char *collection, const char *id);
fsd_err admin_unsealed_scan(store_txn *t, admin_unsealed_fn fn, void *arg, size_t *n);

/* ---- admin.c: options and usage ------------------------------------------ */

/* The value of option `name` of a's row: NULL when not given, "1" for a flag.
 * Naming an option the row does not have is a programmer error (asserted). */
const char *admin_opt(const admin_args *a, const char *name);
/* "who did it" for the audit log: --actor, else $SUDO_USER, $USER, "unknown". */
const char *admin_actor(const admin_args *a);
/* The --help text of c. */
void admin_print_usage(FILE *f, const admin_cmd *c);

/* ---- admin.c: the store --------------------------------------------------- */

/* Opens the store of an initialised data dir (or makes it: create); NULL,
 * after a sentence on stderr, when there is none or it does not open. */
store *admin_open_store(const char *dir, bool create);
/* Runs fn in a write transaction of s and commits; grows the map when full. */
typedef fsd_err (*admin_txn_fn)(store_txn *t, void *arg);
fsd_err admin_write_txn(store *s, admin_txn_fn fn, void *arg);
/* The keyring of dir for purge and rotate: --master-key-file or
 * FIELDSYNC_MASTER_KEY. NULL for a plaintext store (*needed false) or, after
 * a sentence on stderr, when it does not open (*needed true if DIR/keys exists). */
keyring *admin_open_keyring(const char *dir, const char *key_file, bool *needed);

/* ---- admin.c: listings (devices, audit) ---------------------------------- */

/* What a read collects, so the read transaction ends before anything is printed. */
typedef struct admin_list {
	cJSON *items; /* an array of objects */
	bool ok;      /* false: out of memory */
} admin_list;

/*
 * Runs read (in a read transaction of --data-dir) to fill l->items, then
 * prints them: a JSON array with --json, else header and print(item) for
 * each. Returns an fsd_exit code.
 */
int admin_list_print(const admin_args *a, const char *header,
                     fsd_err (*read)(store_txn *t, admin_list *l),
                     void (*print)(const cJSON *item));
/* o[key] when it is a string, else "". */
const char *admin_jstr(const cJSON *o, const char *key);
/* ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC), "-" for <= 0. */
void admin_iso_time(int64_t ms, char *out, size_t cap);

/* ---- cmd_verify.c, also run by restore ------------------------------------ */

/* Verifies the store in dir (see cmd_verify.c); key_file, rules and tz may be
 * NULL (then the environment or the defaults). Returns an fsd_exit code. */
int admin_verify_run(const char *dir, const char *key_file, const char *rules, const char *tz);

#endif
