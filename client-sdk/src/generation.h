/*
 * generation.h - the daemon's generation and the device report
 * (generation.c, PROTOCOL.md §7).
 *
 * The store keeps the generation of the last Welcome in meta "generation".
 * When a Welcome names another one (the daemon was restored from a backup,
 * or upgraded from release 1, which had none), sdk_generation_adopt moves,
 * in one transaction: the pull checkpoint back to 0, every current value
 * this replica authored that is not already waiting in the outbox back into
 * it (PENDING, in no change set: it is pushed again under a new
 * changeset_id), and the new generation into meta. A crash before the
 * commit changes nothing; after it, the next sync simply pushes and pulls.
 *
 * Layer: operations (over db and outbox). Thread rules as db.h.
 */
#ifndef FIELDSYNC_SDK_GENERATION_H
#define FIELDSYNC_SDK_GENERATION_H

#include "base.h"

/* Adopts the daemon's generation (nothing when it is empty or the one
 * stored). device_name: the credential's name, which the daemon writes as
 * modified_by (NULL: none); values written by s's replica count as its
 * own too. *requeued: values put back in the outbox; *changed: whether the
 * generation differed. */
fs_err sdk_generation_adopt(fs_store *s, const char *generation, const char *device_name,
                            bool *changed, uint64_t *requeued);

/* The numbers of a Hello.report: pending (not parked) and parked outbox
 * entries, the wall-clock ms of the oldest pending edit (0: none) and the
 * pull checkpoint. */
fs_err sdk_device_report(fs_store *s, uint64_t *pending, int64_t *oldest_pending_ms,
                         uint64_t *failed, uint64_t *checkpoint);

#endif
