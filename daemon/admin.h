/*
 * admin: the admin subcommands (daemon/admin.c, backup.c; moving to
 * daemon/admin/ in their own target). Layer 7: may include anything below.
 */
#ifndef FIELDSYNCD_ADMIN_H
#define FIELDSYNCD_ADMIN_H

#include <stdbool.h>

/* True when argv[1] names an admin subcommand; then runs it and sets *code. */
bool admin_dispatch(int argc, char **argv, int *code);


/* The subcommands' functions, for their rows in admin.c's `commands` table.
 * Their options are read by position: the order of the `opts` of each row
 * must follow the BACKUP_O_* / RESTORE_O_* / VERIFY_O_* numbers below. */
struct admin_cmd;
struct admin_args;
enum { BACKUP_O_DATA_DIR = 0, BACKUP_O_OUT, BACKUP_O_WITH_KEYS, BACKUP_O_MASTER_KEY,
       BACKUP_O_ACTOR };
enum { RESTORE_O_DATA_DIR = 0, RESTORE_O_FROM, RESTORE_O_KEYS_FROM, RESTORE_O_MASTER_KEY,
       RESTORE_O_RULES, RESTORE_O_TIME_ZONE };
enum { VERIFY_O_DATA_DIR = 0, VERIFY_O_MASTER_KEY, VERIFY_O_RULES, VERIFY_O_TIME_ZONE };
int backup_cmd_backup(const struct admin_cmd *c, const struct admin_args *a);
int backup_cmd_restore(const struct admin_cmd *c, const struct admin_args *a);
int backup_cmd_verify(const struct admin_cmd *c, const struct admin_args *a);

#endif
