/*
 * quota: per-device push quotas (logic layer; issue 11 "bounded records",
 * docs/protocol-notes.md "Record caps, page bound and push quotas").
 *
 * Each device (its enrolled name; in --dev the Hello replica id) has two
 * token buckets: change sets and bytes per minute. A bucket holds at most
 * one minute's quota (the burst) and refills continuously. A change set
 * passes when both buckets hold its cost (a set larger than a whole
 * minute's bytes passes on a full bucket and leaves it in debt); otherwise
 * it is refused and the caller answers Error{BUSY, retry_after_ms}.
 *
 * Memory is bounded: at most QUOTA_DEVICES_MAX devices are tracked. When
 * the table is full the device least recently seen is forgotten; a device
 * forgotten comes back with full buckets, which only ever errs on the
 * generous side. A quota of 0 switches that bucket off.
 *
 * Threads: one quota belongs to one thread (the sync endpoint's).
 */
#ifndef FIELDSYNCD_QUOTA_H
#define FIELDSYNCD_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define QUOTA_DEVICES_MAX 4096

typedef struct quota quota;

/* A table for at most max_devices devices (0: QUOTA_DEVICES_MAX); NULL
 * when out of memory. */
quota *quota_new(size_t max_devices);
void quota_free(quota **q); /* accepts NULL, nulls *q */

/*
 * Charges change set changeset_id of `bytes` bytes to `device` at
 * monotonic time now_ms, with quotas of sets_per_min change sets and
 * bytes_per_min bytes per minute (0: no quota). True: within the quota,
 * charged; or a resend of one of the device's last 8 charged change sets
 * (same changeset_id: its reply was lost and the daemon answers it from
 * the reply store), free. False: over the quota, nothing charged,
 * *retry_after_ms (1..60000) says when this set would pass.
 */
bool quota_take(quota *q, const char *device, const char *changeset_id, uint64_t bytes,
                uint64_t sets_per_min, uint64_t bytes_per_min, int64_t now_ms,
                uint32_t *retry_after_ms);

/* Devices tracked now (for tests). */
size_t quota_tracked(const quota *q);

/*
 * The sync endpoint's hook: quota_take() on the endpoint's own table
 * (static storage, created with the first call) with c's
 * push_quota_changesets and push_quota_bytes, so a reload (SIGHUP)
 * applies at once. A peer without a name (--dev, no Hello) is not
 * charged: there is no device to charge. A refusal is counted
 * (fieldsync_push_quota_refused_total) and logged once per device until
 * it is back within its quota.
 */
bool quota_push_allow(const config *c, const char *device, const char *changeset_id, uint64_t bytes,
                      int64_t now_ms, uint32_t *retry_after_ms);

#endif
