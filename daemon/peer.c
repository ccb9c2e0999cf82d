/* peer: who a request comes from and what it may do (logic layer). See peer.h. */
#include <stdio.h>
#include <string.h>

#include "peer.h"

bool
peer_may(const peer_auth *p, const char *scope)
{
	if (p->all_scopes)
		return true;
	for (size_t i = 0; i < p->n_scopes; i++)
		if (strcmp(p->scopes[i], scope) == 0)
			return true;
	return false;
}

bool
peer_may_cb(const void *peer, const char *scope)
{
	return peer_may(peer, scope);
}

fsd_err
peer_from_device(store *s, const char *user_id, peer_auth *out)
{
	device_info dev;
	store_txn *t = NULL;
	fsd_err rc = FSD_FORBIDDEN;
	memset(out, 0, sizeof(*out));
	if (user_id != NULL && store_read_begin(s, &t) == FSD_OK) {
		rc = registry_device_by_name(t, user_id, &dev);
		store_read_end(&t);
	}
	if (rc != FSD_OK || dev.revoked)
		return FSD_FORBIDDEN;
	snprintf(out->name, sizeof(out->name), "%s", dev.name);
	out->may_sync = dev.role == ROLE_DEVICE;
	out->n_scopes = dev.n_scopes;
	for (size_t i = 0; i < dev.n_scopes; i++)
		snprintf(out->scopes[i], sizeof(out->scopes[i]), "%s", dev.scopes[i]);
	return FSD_OK;
}

bool
peer_still_enrolled_cb(void *s, const char *device)
{
	peer_auth p;
	return peer_from_device(s, device, &p) == FSD_OK;
}
