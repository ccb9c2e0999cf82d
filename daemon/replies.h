/*
 * replies: the stored change-set replies, per device (data layer).
 *
 * Tables (declared here, opened by schema.c):
 *   replies    device '\0' changeset_id -> [u64 BE age][packed PushReply]
 *   reply_age  u64 BE age -> the replies key. When more than `keep` replies
 *              are stored, the oldest are deleted in the same transaction.
 *              A retry older than that is merged again, which the version
 *              vectors make harmless (DUPLICATE/OBSOLETE); only its reply is
 *              then not byte-identical.
 * meta "reply_age" is the age counter. Writes in the writer's transaction.
 *
 * A reply belongs to the device that sent the change set (PROTOCOL.md §4):
 * another device's change set with the same changeset_id is judged on its
 * own. The device is peer_auth.name: the enrolled device name, or in --dev
 * the Hello's replica id.
 *
 * Rows of older releases are keyed by changeset_id alone (no '\0' in the
 * key: the two key forms never meet) and say nothing about their device.
 * Such a row is claimed by the first device that retries its changeset_id:
 * replies_get re-keys it under that device (same age) in the caller's write
 * transaction, so it is served to that one device only, never to another
 * (exactly-once acknowledgement across the upgrade for the device that
 * retries a lost reply, and no second device loses a change to it).
 */
#ifndef FIELDSYNCD_REPLIES_H
#define FIELDSYNCD_REPLIES_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

extern const store_table replies_table;
extern const store_table replies_age_table;

/* The stored PushReply bytes of device's changeset_id; *data is valid until
 * the transaction ends or is next written. FSD_NOTFOUND when none is kept.
 * Claims an older release's row (see above): t must then be a write
 * transaction, or the claim's error is returned. */
fsd_err replies_get(store_txn *t, const char *device, const char *changeset_id,
                    const uint8_t **data, size_t *len);
/* Stores device's reply and drops the oldest past `keep`. */
fsd_err replies_put(store_txn *t, const char *device, const char *changeset_id, const uint8_t *data,
                    size_t len, uint64_t keep);

#endif
