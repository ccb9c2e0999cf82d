/*
 * wire: decode with a budget, build every Envelope (wire layer). See wire.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void *
budget_alloc(void *data, size_t size)
{
	wire_budget *b = data;
	if (size > b->left)
		return NULL;
	void *p = b->alloc(size);
	if (p == NULL)
		b->oom = true;
	else
		b->left -= size;
	return p;
}

static void
budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

ProtobufCAllocator *
wire_budget_init(wire_budget *b, size_t input_len)
{
	b->left = 16 * input_len + (1u << 20);
	b->alloc = malloc;
	b->oom = false;
	b->allocator = (ProtobufCAllocator){.alloc = budget_alloc,
	                                    .free = budget_free,
	                                    .allocator_data = b};
	return &b->allocator;
}

fs_envelope *
wire_decode_envelope(const uint8_t *data, size_t len)
{
	wire_budget b;
	/* Memory comes from malloc, so the message is freed with the default allocator. */
	return fieldsync__v1__envelope__unpack(wire_budget_init(&b, len), len, data);
}

/* One protobuf varint at p[*i..len): false when it runs off the end or past
 * 64 bits. */
static bool
read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0;; shift += 7) {
		if (*i >= len || shift > 63)
			return false;
		*v |= (uint64_t)(p[*i] & 0x7f) << shift;
		if ((p[(*i)++] & 0x80) == 0)
			return true;
	}
}

/* The top-level request_id (field 1, a varint) of a frame that did not
 * decode, or 0: a bounded walk over the top-level fields only. */
static uint64_t
salvage_request_id(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t v = 0, tag = 0;
		if (!read_varint(p, len, &i, &tag))
			return 0;
		switch (tag & 7) {
		case 0: /* varint */
			if (!read_varint(p, len, &i, &v))
				return 0;
			if (tag >> 3 == 1)
				return v;
			break;
		case 1: /* 64-bit */
			i += 8;
			break;
		case 2: /* length-delimited */
			if (!read_varint(p, len, &i, &v) || v > len - i)
				return 0;
			i += (size_t)v;
			break;
		case 5: /* 32-bit */
			i += 4;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

fs_envelope *
wire_decode_request(const uint8_t *data, size_t len, void *(*alloc)(size_t), wire_decode_error *why)
{
	wire_budget b;
	ProtobufCAllocator *a = wire_budget_init(&b, len);
	b.alloc = alloc != NULL ? alloc : malloc;
	fs_envelope *e = fieldsync__v1__envelope__unpack(a, len, data);
	if (e != NULL)
		return e;
	why->request_id = 0; /* a malformed frame's fields are not trusted */
	if (b.oom) {
		why->request_id = salvage_request_id(data, len);
		why->why = FSD_NOMEM;
		why->code = FIELDSYNC__V1__ERROR__CODE__BUSY;
		why->message = "the server is short of memory; nothing was done, retry later";
		why->retry_after_ms = 1000;
	} else {
		why->why = FSD_INVALID;
		why->code = FIELDSYNC__V1__ERROR__CODE__MALFORMED;
		why->message = "the frame is not a fieldsync.v1.Envelope";
		why->retry_after_ms = 0;
	}
	return NULL;
}

void
wire_envelope_free(fs_envelope *e)
{
	if (e != NULL)
		fieldsync__v1__envelope__free_unpacked(e, NULL);
}

fs_error_code
wire_code(fsd_err e)
{
	switch (e) {
	case FSD_INVALID:
		return FIELDSYNC__V1__ERROR__CODE__INVALID;
	case FSD_FORBIDDEN:
		return FIELDSYNC__V1__ERROR__CODE__FORBIDDEN;
	case FSD_TOO_LARGE:
		return FIELDSYNC__V1__ERROR__CODE__TOO_LARGE;
	case FSD_FULL:
	case FSD_NOSPACE:
	case FSD_BUSY:
		return FIELDSYNC__V1__ERROR__CODE__BUSY;
	case FSD_NOMEM:
		return FIELDSYNC__V1__ERROR__CODE__INTERNAL;
	default: /* the store or the disk failed: try again later */
		return FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE;
	}
}

/* Every reply Envelope starts the same: request_id and which body it holds. */
static void
envelope_begin(fs_envelope *e, uint64_t request_id, Fieldsync__V1__Envelope__BodyCase body)
{
	fieldsync__v1__envelope__init(e);
	e->request_id = request_id;
	e->body_case = body;
}

fsd_err
wire_pack(const fs_envelope *e, uint8_t **out, size_t *len)
{
	*len = fieldsync__v1__envelope__get_packed_size(e);
	*out = malloc(*len ? *len : 1);
	if (*out == NULL)
		return FSD_NOMEM;
	fieldsync__v1__envelope__pack(e, *out);
	return FSD_OK;
}

fsd_err
wire_error(uint64_t request_id, fs_error_code code, const char *message, uint32_t retry_after_ms,
           uint8_t **out, size_t *len)
{
	Fieldsync__V1__Error err;
	fs_envelope e;
	fieldsync__v1__error__init(&err);
	err.code = code;
	err.message = (char *)message;
	err.retry_after_ms = retry_after_ms;
	envelope_begin(&e, request_id, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	e.error = &err;
	return wire_pack(&e, out, len);
}

fsd_err
wire_push_reply(uint64_t request_id, const fs_push_reply *r, uint8_t **out, size_t *len)
{
	fs_envelope e;
	envelope_begin(&e, request_id, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	e.push_reply = (fs_push_reply *)r;
	return wire_pack(&e, out, len);
}

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	return n;
}

fsd_err
wire_push_reply_stored(uint64_t request_id, const uint8_t *reply, size_t reply_len, uint8_t **out,
                       size_t *len)
{
	/* The stored PushReply bytes are the field's content, so a replayed
	 * reply is byte-identical to the first one. */
	uint8_t head[24];
	size_t n = 0;
	head[n++] = 0x08; /* field 1, varint */
	n += put_varint(head + n, request_id);
	head[n++] = (13 << 3) | 2; /* field 13, length-delimited */
	n += put_varint(head + n, reply_len);
	*out = malloc(n + reply_len);
	if (*out == NULL)
		return FSD_NOMEM;
	memcpy(*out, head, n);
	memcpy(*out + n, reply, reply_len);
	*len = n + reply_len;
	return FSD_OK;
}

fsd_err
wire_welcome(uint64_t request_id, const Fieldsync__V1__Welcome *w, uint8_t **out, size_t *len)
{
	fs_envelope e;
	envelope_begin(&e, request_id, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	e.welcome = (Fieldsync__V1__Welcome *)w;
	return wire_pack(&e, out, len);
}

fsd_err
wire_pull_reply(uint64_t request_id, const Fieldsync__V1__PullReply *r, uint8_t **out, size_t *len)
{
	fs_envelope e;
	envelope_begin(&e, request_id, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	e.pull_reply = (Fieldsync__V1__PullReply *)r;
	return wire_pack(&e, out, len);
}

fsd_err
wire_replay_reply(uint64_t request_id, const Fieldsync__V1__ReplayReply *r, uint8_t **out,
                  size_t *len)
{
	fs_envelope e;
	envelope_begin(&e, request_id, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	e.replay_reply = (Fieldsync__V1__ReplayReply *)r;
	return wire_pack(&e, out, len);
}

fsd_err
wire_replay_answer(uint64_t request_id, const Fieldsync__V1__ReplayReply *r,
                   uint64_t trimmed_before, uint8_t **out, size_t *len)
{
	char msg[160];
	if (trimmed_before == 0)
		return wire_replay_reply(request_id, r, out, len);
	snprintf(msg, sizeof(msg),
	         "TRIMMED: events before seq %llu are no longer kept; resynchronise, then replay "
	         "from %llu",
	         (unsigned long long)trimmed_before, (unsigned long long)(trimmed_before - 1));
	return wire_error(request_id, FIELDSYNC__V1__ERROR__CODE__INVALID, msg, 0, out, len);
}
