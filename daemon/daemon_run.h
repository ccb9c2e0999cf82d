/*
 * daemon (daemon.c): the process lifecycle of fieldsyncd (layer 7). The
 * header is not called daemon.h: tests/support/daemon.h (the test harness)
 * has that name on the tests' include path.
 *
 * daemon_run() runs on the main thread until SIGTERM/SIGINT and returns the
 * process exit code (FSD_EXIT_*). It owns every socket, starts the writer
 * actor and hands it rem (freed in every case).
 */
#ifndef FIELDSYNCD_DAEMON_RUN_H
#define FIELDSYNCD_DAEMON_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "reminders.h"
#include "store.h"

int daemon_run(const config *c, store *s, reminders *rem);

/*
 * The start-up checks, creating nothing (the daemon runs them before it
 * opens or creates a store; check-config runs them alone): the data
 * directory's single-writer lock is free (a holder is named by its pid);
 * in production the server keys load and the master key reads; with --dev
 * an encrypted store still needs its master key. Prints one line per check
 * to report (NULL: none) and why one failed to stderr. Returns the exit
 * code the daemon would end with: FSD_EXIT_OK when it would start,
 * FSD_EXIT_FAIL when another process holds the directory, FSD_EXIT_USAGE
 * for a missing or bad key. lock_held: the caller holds the lock already.
 */
int daemon_check_start(const config *c, bool lock_held, FILE *report);

#endif
