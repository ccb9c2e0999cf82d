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

#include "config.h"
#include "reminders.h"
#include "store.h"

int daemon_run(const config *c, store *s, reminders *rem);

#endif
