/*
 * replies: the stored change-set replies (data layer).
 *
 * Tables (declared here, opened by schema.c):
 *   replies    changeset_id -> [u64 BE age][packed PushReply]
 *   reply_age  u64 BE age -> changeset_id. When more than `keep` replies
 *              are stored, the oldest are deleted in the same transaction.
 *              A retry older than that is merged again, which the version
 *              vectors make harmless (DUPLICATE/OBSOLETE); only its reply is
 *              then not byte-identical.
 * meta "reply_age" is the age counter. Writes in the writer's transaction.
 */
#ifndef FIELDSYNCD_REPLIES_H
#define FIELDSYNCD_REPLIES_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

extern const store_table replies_table;
extern const store_table replies_age_table;

/* The stored PushReply bytes of changeset_id; *data is valid until the
 * transaction ends. FSD_NOTFOUND when none is kept. */
fsd_err replies_get(store_txn *t, const char *changeset_id, const uint8_t **data, size_t *len);
/* Stores a reply and drops the oldest past `keep`. */
fsd_err replies_put(store_txn *t, const char *changeset_id, const uint8_t *data, size_t len,
                    uint64_t keep);

#endif
