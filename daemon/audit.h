/*
 * audit: the append-only audit log (data layer).
 *
 * Table audit: u64 BE seq -> one JSON object {"ts_ms","actor","action",
 * "collection","id","detail"}. seq is 1 + the last one, counted in meta
 * "audit_seq" in the same transaction, and written with MDB_APPEND, so an
 * entry can only ever be added after the last one. Identifiers only, never
 * payload content.
 */
#ifndef FIELDSYNCD_AUDIT_H
#define FIELDSYNCD_AUDIT_H

#include "err.h"
#include "store.h"

extern const store_table audit_table;

/*
 * Appends one entry inside write txn t (empty or NULL fields left out;
 * actor NULL: "unknown"). Strings are cut at 128 bytes (detail 512).
 */
fsd_err audit_append(store_txn *t, const char *actor, const char *action, const char *collection,
                     const char *id, const char *detail);

#endif
