/*
 * base.h - the bottom layer of libfieldsync: clocks, the size limits and
 * the protobuf type names every other SDK file uses.
 *
 * Layers of the SDK, low to high (a file includes headers of its own
 * layer or lower, never higher; no circle of files):
 *   core        the shared core in proto/, under every SDK layer: the formats
 *               the daemon writes too (fieldsync/keys.h record keys and
 *               integers, seal.h sealed values and DEK names, casework.h,
 *               crypto.h sealing and UUIDs, merge.h); the SDK keeps no copy
 *   base        base, credential (Z85 keys, credential files), json
 *   db          db (the private struct fs_store, LMDB primitives, meta)
 *   seal        seal (data keys; sealing and opening through the core)
 *   data        credstore, records, outbox
 *   operations  lists (and status), push (change sets), pull, store
 *               (lifecycle: create, open, close, rekey)
 *   wire        conn (one DEALER+CURVE client connection)
 *   endpoints   sync (fs_sync), watch (fs_watcher)
 *
 * Nothing here is public; every symbol is sdk_… so it cannot collide with
 * the daemon's modules (the tests link both), and the shared library
 * exports none of them (only FIELDSYNC_API). Every function here is
 * thread-safe; the only state is the thread-local error detail.
 */
#ifndef FIELDSYNC_SDK_BASE_H
#define FIELDSYNC_SDK_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/fieldsync.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/sync.pb-c.h"

typedef Fieldsync__V1__RecordState sdk_record_state;
typedef Fieldsync__V1__PushRequest sdk_push_request;
typedef Fieldsync__V1__PushReply sdk_push_reply;
typedef Fieldsync__V1__PullReply sdk_pull_reply;

#define SDK_REASON_MAX 300 /* a parked change's reason, truncated */
#define SDK_PAYLOAD_MAX (16u << 20)

/* Milliseconds: wall clock (for records and status) and monotonic (deadlines). */
int64_t sdk_now_ms(void);
int64_t sdk_mono_ms(void);

/* fs_last_error_detail(): this thread's text. sdk_detail formats it (the
 * field first: "scope: ..."; never payload bytes); sdk_detail_clear empties
 * it, at the entry of each public call that may set it. */
void sdk_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sdk_detail_clear(void);

#endif
