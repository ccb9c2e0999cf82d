/*
 * peer: who a request comes from and what it may do (logic layer).
 *
 * A peer_auth is a plain value: copied into each push job, so a revocation
 * never races a queued change set. Any thread.
 */
#ifndef FIELDSYNCD_PEER_H
#define FIELDSYNCD_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "registry.h"
#include "store.h"

/* What a request may do, from the authenticated key (or --dev). Copied into
 * each push job, so a revocation never races a queued change set. */
typedef struct peer_auth {
	bool all_scopes;              /* --dev: every scope */
	bool may_sync;                /* devices push and pull; schedulers only replay */
	char name[AUTH_NAME_MAX + 1]; /* the enrolled device name; --dev: Hello's replica id */
	size_t n_scopes;
	char scopes[AUTH_SCOPES_MAX][FSP_SCOPE_MAX + 1];
} peer_auth;

bool peer_may(const peer_auth *p, const char *scope);
/* peer_may() for callbacks taking a const void *. */
bool peer_may_cb(const void *peer, const char *scope);
/* Whether the device (ZAP's User-Id) is still enrolled and not revoked in
 * the store passed as arg: conns_cut's question at a revocation. */
bool peer_still_enrolled_cb(void *store, const char *device);

/* The peer an authenticated device name (ZAP's User-Id) stands for, looked
 * up in the registry in a short read transaction of s: FSD_OK, or
 * FSD_FORBIDDEN for a name that is unknown, revoked or NULL. */
fsd_err peer_from_device(store *s, const char *user_id, peer_auth *out);

#endif
