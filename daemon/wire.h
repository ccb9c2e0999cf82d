/*
 * wire: the one place that decodes an Envelope and builds every Envelope
 * the daemon sends (wire layer).
 *
 * Decoding caps memory: protobuf-c allocates every field of a decoded
 * message separately, so each decode gets a budget of 16 bytes of heap per
 * byte of frame plus 1 MiB; past it the decode fails as malformed. The
 * fuzz target calls wire_decode_envelope() itself.
 *
 * Every builder returns a malloc'd packed Envelope in *out (the caller
 * frees it) and FSD_NOMEM when it cannot. Pure functions: any thread.
 */
#ifndef FIELDSYNCD_WIRE_H
#define FIELDSYNCD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "fieldsync/v1/sync.pb-c.h"

typedef Fieldsync__V1__Envelope fs_envelope;
typedef Fieldsync__V1__PushReply fs_push_reply;
typedef Fieldsync__V1__Error__Code fs_error_code;

/* Decodes one frame; NULL when it is not an Envelope or over budget. Free
 * the result with wire_envelope_free(). */
fs_envelope *wire_decode_envelope(const uint8_t *data, size_t len);

/* Why a request frame did not decode, and the Error that answers it: a
 * frame that is not an Envelope (or needs more than the budget) is
 * MALFORMED; a decode that ran out of memory within the budget is not the
 * peer's fault and is answered BUSY with retry_after_ms, so the device
 * retries instead of waiting for a reply that never comes. request_id is
 * read from the frame when its top level names one (else 0). */
typedef struct wire_decode_error {
	uint64_t request_id;
	fs_error_code code; /* MALFORMED or BUSY */
	const char *message;
	uint32_t retry_after_ms;
	fsd_err why; /* FSD_INVALID (malformed) or FSD_NOMEM */
} wire_decode_error;
/* wire_decode_envelope with its failure told apart; alloc is where the
 * budget's memory comes from (malloc in the daemon; a failing one in tests). */
fs_envelope *wire_decode_request(const uint8_t *data, size_t len, void *(*alloc)(size_t),
                                 wire_decode_error *why);

/* The heap budget every decode of untrusted bytes runs under: at most
 * 16 x the input + 1 MiB, from malloc (so what it decodes is freed with the
 * default allocator). wire_budget_init returns the allocator to pass to a
 * generated unpack; b must outlive that call. */
typedef struct wire_budget {
	size_t left;
	ProtobufCAllocator allocator;
	void *(*alloc)(size_t); /* malloc unless wire_decode_request was given another */
	bool oom;               /* an allocation within the budget failed */
} wire_budget;
ProtobufCAllocator *wire_budget_init(wire_budget *b, size_t input_len);
void wire_envelope_free(fs_envelope *e);

/* The wire code a peer is told for e (an fsd_err from storage or logic):
 * a refused request keeps its reason (INVALID, FORBIDDEN, TOO_LARGE), a
 * full store or disk is BUSY, out of memory INTERNAL, anything else that
 * failed underneath UNAVAILABLE. */
fs_error_code wire_code(fsd_err e);

/* Packs any envelope. */
fsd_err wire_pack(const fs_envelope *e, uint8_t **out, size_t *len);
/* Error{code, message, retry_after_ms} answering request_id. */
fsd_err wire_error(uint64_t request_id, fs_error_code code, const char *message,
                   uint32_t retry_after_ms, uint8_t **out, size_t *len);
/* PushReply answering request_id. */
fsd_err wire_push_reply(uint64_t request_id, const fs_push_reply *r, uint8_t **out, size_t *len);
/* A stored PushReply's bytes answering request_id, byte for byte as first
 * sent (hand-encoded: Envelope{request_id = 1; push_reply = 13}). */
fsd_err wire_push_reply_stored(uint64_t request_id, const uint8_t *reply, size_t reply_len,
                               uint8_t **out, size_t *len);
fsd_err wire_welcome(uint64_t request_id, const Fieldsync__V1__Welcome *w, uint8_t **out,
                     size_t *len);
fsd_err wire_pull_reply(uint64_t request_id, const Fieldsync__V1__PullReply *r, uint8_t **out,
                        size_t *len);
fsd_err wire_replay_reply(uint64_t request_id, const Fieldsync__V1__ReplayReply *r, uint8_t **out,
                          size_t *len);
/* The answer to a ReplayRequest: the page r, or, when trimmed_before is
 * not 0 (events_replay: events after since_seq were trimmed), Error
 * INVALID "TRIMMED: events before seq N are no longer kept; resynchronise,
 * then replay from N-1" with N = trimmed_before (docs/reminders.md). */
fsd_err wire_replay_answer(uint64_t request_id, const Fieldsync__V1__ReplayReply *r,
                           uint64_t trimmed_before, uint8_t **out, size_t *len);

#endif
