/*
 * replicas: which device a replica id belongs to and the highest counter
 * it has pushed (data layer; PROTOCOL.md §3 "a replica id belongs to the
 * device that first used it", docs/protocol-notes.md "Replica binding and
 * DEFERRED").
 *
 * Table replicas: replica id (its bytes) -> [u64 BE highest counter]
 * [owner: the enrolled device name, or in --dev the Hello replica id;
 * empty: not bound yet]. A row is only ever raised (max) and bound once:
 * replicas_note never lowers a counter and never moves a binding.
 *
 * Existing stores: replicas_derive fills the table once (meta
 * "replicas_derived") from the stored records, so nothing accepted before
 * the table existed is refused after it.
 *
 * The rule that uses the table is changeset.c's (logic layer); this module
 * only keeps the rows. Writes in the writer's transaction (or at open).
 */
#ifndef FIELDSYNCD_REPLICAS_H
#define FIELDSYNCD_REPLICAS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "registry.h" /* AUTH_NAME_MAX */
#include "store.h"

extern const store_table replicas_table;

typedef struct replica_row {
	uint64_t max; /* the highest counter this replica has pushed (0: none) */
	bool bound;   /* owner holds the device it belongs to */
	char owner[AUTH_NAME_MAX + 1];
} replica_row;

/* The row of replica: FSD_OK, FSD_NOTFOUND (*row zeroed: unknown, unbound),
 * FSD_CORRUPT for a value this module did not write. */
fsd_err replicas_get(store_txn *t, const char *replica, replica_row *row);

/* Raises replica's max to counter (never lowers it) and, when it is not
 * bound yet and owner is non-empty, binds it to owner. owner NULL or "":
 * no binding. An empty or over-long replica id is FSD_INVALID. */
fsd_err replicas_note(store_txn *t, const char *replica, uint64_t counter, const char *owner);

/*
 * Fills the table from the stored records when it was never filled (meta
 * "replicas_derived" 0): every dot of every sibling raises its replica's
 * max; a sibling binds the replica of its dot to its modified_by when its
 * version has one dot, or when the dot's replica is modified_by itself
 * (--dev, where the device is named by its replica). Values are read as
 * stored (payloads are not opened). Runs once, in write txn t; *n_records
 * is how many records it read (0 when it had run before).
 */
fsd_err replicas_derive(store_txn *t, uint64_t *n_records);

#endif
