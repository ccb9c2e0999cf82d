/*
 * admin_dispatch.h: the one entry of fieldsyncd's admin subcommands
 * (daemon/admin/, target fieldsyncd-admin) for main.c. Their private
 * contract is admin.h.
 */
#ifndef FIELDSYNCD_ADMIN_DISPATCH_H
#define FIELDSYNCD_ADMIN_DISPATCH_H

#include <stdbool.h>

/*
 * True when argv[1] names an admin subcommand (init, enroll, revoke,
 * devices, audit, purge, rotate-master-key, health, backup, restore, seal,
 * verify): then it has run it and set *code to the process exit code
 * (FSD_EXIT_*, err.h). False, touching nothing, for anything else.
 */
bool admin_dispatch(int argc, char **argv, int *code);

#endif
