/*
 * sync_endpoint: the ROUTER devices and schedulers talk to (endpoint layer).
 *
 * Opened on the main thread after the writer started (pushes go to the
 * writer's pipe, given at open and borrowed); every function runs on that
 * thread. The daemon polls sync_endpoint_socket() and the monitor, and
 * hands each push job the writer finished to sync_endpoint_reply().
 */
#ifndef FIELDSYNCD_SYNC_ENDPOINT_H
#define FIELDSYNCD_SYNC_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "fieldsync/calendar.h"
#include "fieldsync/rules.h"
#include "store.h"
#include "writer.h"

typedef struct sync_endpoint sync_endpoint;

/* Binds c->sync_endpoint in ctx; server_secret NULL: --dev (no CURVE,
 * every peer is granted every scope). */
fsd_err sync_endpoint_open(void *ctx, const config *c, store *s, void *writer_pipe,
                           const char *server_secret, sync_endpoint **out);
void sync_endpoint_close(sync_endpoint **se);
void *sync_endpoint_socket(const sync_endpoint *se);
void *sync_endpoint_monitor(const sync_endpoint *se); /* NULL when none */
/* Reads and answers the requests queued on the ROUTER (at most 256). */
void sync_endpoint_read(sync_endpoint *se);
/* Once per turn of the main loop: writes the device reports heard (at most
 * every few seconds). */
void sync_endpoint_tick(sync_endpoint *se);
/* The device reports it keeps (NULL when DATA_DIR/seen could not open);
 * for /metrics: registry_seen_walk from any thread. */
struct registry_seen *sync_endpoint_seen(const sync_endpoint *se);
/* Reads one multipart message from the ROUTER and answers it. */
void sync_endpoint_read_one(sync_endpoint *se);
/* Counts peers coming and going (the socket monitor's events). */
void sync_endpoint_read_monitor(sync_endpoint *se);
/* Sends a finished job's reply and frees the job. */
void sync_endpoint_reply(sync_endpoint *se, push_job *j);
/* The rule table and zone Welcome announces (docs/protocol.md §2.2): set
 * at open from the configuration, and again by a reload that installs
 * them. Copies what it needs; FSD_NOMEM leaves the old ones. */
fsd_err sync_endpoint_set_deadlines(sync_endpoint *se, const rules_config *rc, const fs_tz *tz);
/* Closes the connections of every device that is no longer enrolled or was
 * revoked (production; --dev has no devices), and no other connection.
 * Returns how many were closed. */
size_t sync_endpoint_cut(sync_endpoint *se);
/* Change sets handed to the writer and not answered yet. */
uint64_t sync_endpoint_inflight(const sync_endpoint *se);

#endif
