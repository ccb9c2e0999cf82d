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

/*
 * Device reports (PROTOCOL.md §7): per device, when it was last seen, its
 * Hello.client and its last Hello.report. Telemetry, not data: kept in an
 * environment of its own, DATA_DIR/seen (its unnamed table), so the main
 * thread that hears a Hello never waits for the writer's transaction, and
 * backups (data.mdb) do not carry it. The main thread notes what it hears
 * in memory (registry_seen_note) and writes the batch at most every few
 * seconds (registry_seen_flush). Keys are the enrolled device name, or
 * "replica:<id>" for a --dev peer. note and flush: the owner's thread
 * only; registry_seen_walk: any thread of that process (/metrics);
 * registry_seen_list: another process (`fieldsyncd devices`).
 */
#define REGISTRY_SEEN_KEY_MAX (AUTH_NAME_MAX + 16)
#define REGISTRY_CLIENT_MAX 128

typedef struct device_seen {
	char key[REGISTRY_SEEN_KEY_MAX + 1];
	int64_t last_seen_ms;
	char client[REGISTRY_CLIENT_MAX + 1];
	bool has_report;
	uint64_t pending, failed, last_seq;
	int64_t oldest_pending_ms; /* 0: nothing pending */
} device_seen;

typedef struct registry_seen registry_seen;

/* Opens (creating) DATA_DIR/seen; NULL on failure, logged. */
registry_seen *registry_seen_open(const char *data_dir);
void registry_seen_close(registry_seen **rs);
/* Notes one Hello (report may be NULL: none sent). Dropped, logged once,
 * when the unflushed batch is full. */
void registry_seen_note(registry_seen *rs, const device_seen *d);
/* Writes the noted batch in one transaction when min_interval_ms passed
 * since the last write (0: now). */
fsd_err registry_seen_flush(registry_seen *rs, int64_t now_ms, int64_t min_interval_ms);
typedef bool (*registry_seen_fn)(void *arg, const device_seen *d);
/* Calls fn for every stored device report in key order, reading
 * DATA_DIR/seen; FSD_NOTFOUND (and nothing created) when there is none. */
fsd_err registry_seen_list(const char *data_dir, registry_seen_fn fn, void *arg);
/* The same over an open registry_seen, from any thread of its process
 * (a process must not open DATA_DIR/seen twice: LMDB's rule). */
fsd_err registry_seen_walk(registry_seen *rs, registry_seen_fn fn, void *arg);
/* At risk: not seen for at_risk_ms, or holding an edit older than it. */
bool registry_seen_at_risk(const device_seen *d, int64_t now_ms, int64_t at_risk_ms);

#endif
