/*
 * reminder_endpoint: the PUB/XPUB socket of the reminder events (endpoint
 * layer). See reminder_endpoint.c for the policy. Every function on the
 * thread that opened it (the main thread).
 */
#ifndef FIELDSYNCD_REMINDER_ENDPOINT_H
#define FIELDSYNCD_REMINDER_ENDPOINT_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "reminders.h"
#include "store.h"

typedef struct reminder_endpoint reminder_endpoint;

/* Binds c->reminder_endpoint in ctx; server_secret NULL: --dev (a PUB). */
fsd_err reminder_endpoint_open(void *ctx, const config *c, store *s, const char *server_secret,
                               reminder_endpoint **out);
void reminder_endpoint_close(reminder_endpoint **re);
/* The socket to poll for subscriptions (production). Bound once: a
 * revocation never re-binds it. */
void *reminder_endpoint_socket(const reminder_endpoint *re);
/* Reads one subscription message and grants what the key's scopes allow. */
void reminder_endpoint_read(reminder_endpoint *re);
/* Closes the subscriber connections of every device that is no longer
 * enrolled or was revoked, and no other; returns how many (production). */
size_t reminder_endpoint_cut(reminder_endpoint *re);
/* Publishes a batch of committed events and frees it; never blocks. */
void reminder_endpoint_publish(reminder_endpoint *re, event_batch *b);

#endif
