/*
 * transport: the sync endpoint (ROUTER), the reminder endpoint (PUB/XPUB)
 * and the process lifecycle (endpoint layer, to be split into
 * sync_endpoint, reminder_endpoint and daemon).
 *
 * transport_run() runs on the main thread until SIGTERM/SIGINT and owns
 * every socket; it starts the writer actor and hands it rem.
 */
#ifndef FIELDSYNCD_TRANSPORT_H
#define FIELDSYNCD_TRANSPORT_H

#include "config.h"
#include "reminders.h"
#include "store.h"

/* Runs the daemon until SIGTERM/SIGINT; returns the process exit code.
 * Takes ownership of rem. */
int transport_run(const config *c, store *s, reminders *rem);

#endif
