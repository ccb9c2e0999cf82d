/*
 * writer: the actor thread that owns the one LMDB write transaction
 * (endpoint layer). See writer.c's design note (group commit).
 *
 * Messages on its pipe (actor.h): WRITER_JOB + push_job * (both ways: in to
 * be applied, back with its reply), WRITER_EVENTS + event_batch * (writer
 * to the endpoint: publish these), WRITER_RULES + a malloc'd rules_config
 * and WRITER_ZONE + an fs_tz (SIGHUP; the writer takes them); ACTOR_STOP to stop after what is queued, and back once stopped.
 */
#ifndef FIELDSYNCD_WRITER_H
#define FIELDSYNCD_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "config.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "peer.h"
#include "reminders.h"
#include "store.h"

typedef Fieldsync__V1__Envelope fs_envelope;

/* One push on its way through the writer; owned by whoever holds it. */
typedef struct push_job {
	uint8_t routing_id[256];
	size_t routing_len;
	uint64_t request_id;
	peer_auth auth;        /* who sent it, at the time it arrived */
	fs_envelope *request;  /* unpacked; its push is validated */
	uint8_t *reply;        /* packed reply envelope, set by the writer */
	uint8_t m_result;      /* metric_changeset_result, counted after the commit */
	uint32_t m_changes[5]; /* changes by metric_change_result */
	size_t reply_len;
	int64_t received_ms;
} push_job;

typedef struct writer writer;

/* Starts the writer actor; it connects a PAIR to `pipe_endpoint`. It owns
 * rem from then on (fires timers, evaluates cases, frees it at the end),
 * and frees it also when it fails to start. */
fsd_err writer_start(void *zctx, const char *pipe_endpoint, store *s, const config *c,
                     reminders *rem, writer **out);
/* Waits for the thread to end after it was told to stop over the pipe. */
void writer_join(writer **w);
void push_job_free(push_job *j);

enum { WRITER_JOB = 'J', WRITER_EVENTS = 'E', WRITER_RULES = 'R', WRITER_ZONE = 'Z' };

#endif
