/*
 * purge: erasure of a record or a whole case (logic layer). See purge.c.
 * Runs in an admin process, in one write transaction of its own.
 */
#ifndef FIELDSYNCD_PURGE_H
#define FIELDSYNCD_PURGE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "store.h"

typedef struct purge_report {
	size_t records, reminders, keys_destroyed;
} purge_report;

/*
 * Purges collection/id (whole_case: the case id and all its contacts) in one
 * write transaction of s, with an audit entry by actor. See purge.c.
 */
fsd_err purge_run(store *s, const char *collection, const char *id, bool whole_case,
                  const char *actor, purge_report *rep);

/* After a crash: finishes the re-keys (single-contact purges) that
 * committed, destroying their retired keys (keyring_retire). Run at start,
 * before anything is served or purged. */
fsd_err purge_recover(store *s);

#endif
