/*
 * registry: the enrolled devices (data layer).
 *
 * Two tables of the store, written in one transaction:
 *   devices       client public key (Z85, 40 bytes) -> DeviceRow (storage.proto)
 *   device_names  device name -> client public key
 * Every name maps to exactly one key and back; a row is never deleted
 * (revoking sets `revoked`), so names stay audit identities. Any process
 * may read or write it in its own transactions (LMDB serialises writers);
 * a device_info is a plain copy the caller owns.
 */
#ifndef FIELDSYNCD_REGISTRY_H
#define FIELDSYNCD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fieldsync/merge.h"
#include "store.h"

#define AUTH_NAME_MAX 64
#define AUTH_SCOPES_MAX 32
#define AUTH_Z85_KEY_LEN 40

extern const store_table registry_devices_table;
extern const store_table registry_names_table;

typedef enum { ROLE_DEVICE = 0, ROLE_SCHEDULER = 1 } device_role;

typedef struct device_info {
	char name[AUTH_NAME_MAX + 1];          /* [a-z0-9][a-z0-9._-]{0,63} */
	char public_key[AUTH_Z85_KEY_LEN + 1]; /* Z85 */
	device_role role;
	bool revoked;
	int64_t enrolled_at_ms, revoked_at_ms;
	size_t n_scopes;
	char scopes[AUTH_SCOPES_MAX][FSP_SCOPE_MAX + 1];
} device_info;

/* FSD_NOTFOUND for an unknown (or malformed) key or name, FSD_CORRUPT for a
 * row that does not decode. */
fsd_err registry_device_by_key(store_txn *t, const char *public_key, device_info *out);
fsd_err registry_device_by_name(store_txn *t, const char *name, device_info *out);
/* Writes d (new or changed); FSD_INVALID for a bad name, key or scope list,
 * or a name already given to another key. */
fsd_err registry_device_put(store_txn *t, const device_info *d);
typedef bool (*registry_device_fn)(void *arg, const device_info *d);
/* Calls fn for every device in key order until it returns false. */
fsd_err registry_device_list(store_txn *t, registry_device_fn fn, void *arg);
bool registry_has_scope(const device_info *d, const char *scope);
/* True for 40 characters of Z85 that decode to 32 bytes. */
bool registry_key_valid(const char *z85);

#endif
