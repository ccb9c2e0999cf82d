/*
 * validate: checks a push before anything is written (logic layer). Pure
 * functions of the request, the config and the peer: any thread.
 */
#ifndef FIELDSYNCD_VALIDATE_H
#define FIELDSYNCD_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "peer.h"

typedef Fieldsync__V1__PushRequest fs_push_request;
typedef Fieldsync__V1__PushReply fs_push_reply;
typedef Fieldsync__V1__ChangeResult fs_change_result;
typedef Fieldsync__V1__Error__Code fs_error_code;

/*
 * Checks a push before anything is written. Returns FSD_OK when every change
 * may go to the writer. Otherwise (FSD_INVALID, FSD_TOO_LARGE, FSD_FORBIDDEN
 * or FSD_NOMEM) either *err_code is set (the whole request is refused with
 * an Error envelope: caps, changeset id) and *reply is NULL, or *reply is a
 * PushReply with every result REJECTED, the bad change saying why (caller
 * frees with validate_reply_free()).
 */
fsd_err validate_push(const config *c, const peer_auth *peer, const fs_push_request *p,
                      fs_error_code *err_code, char *err_msg, size_t err_len,
                      fs_push_reply **reply);
void validate_reply_free(fs_push_reply *r);

/*
 * Builds a PushReply for n changes where change `bad` was rejected for
 * `why`: that result says why, prefixed with the code's protocol name
 * ("INVALID: ..."); every other says it was not applied. Used by
 * validation and by changeset.c (a reused dot, a purged record).
 */
fs_push_reply *validate_reject_all(const char *changeset_id, size_t n, size_t bad,
                                   fs_error_code code, const char *why);
/* The same with the reason "DEFERRED: why" (PROTOCOL.md §3): the change
 * references history the daemon has not seen yet; the device keeps it and
 * pushes it again after its next pull. */
fs_push_reply *validate_defer_all(const char *changeset_id, size_t n, size_t bad, const char *why);

#endif
