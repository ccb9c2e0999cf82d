/*
 * schema: the daemon's store with all its tables (data layer).
 *
 * Each table is declared by the module that owns its layout; schema.c only
 * lists them, in the order older builds created them. Admin commands and
 * the daemon open the store through here. The first open by a build with
 * the replicas table derives its rows from the stored records
 * (replicas_derive), in a write transaction of its own.
 */
#ifndef FIELDSYNCD_SCHEMA_H
#define FIELDSYNCD_SCHEMA_H

#include <stdint.h>

#include "store.h"

/* Opens (creating when new) the daemon's store under dir. NULL on failure,
 * logged. */
store *store_open(const char *dir, uint64_t map_size, uint64_t map_size_max);

#endif
