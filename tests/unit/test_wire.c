/*
 * wire.c: the budgeted Envelope decoder (the one the sync endpoint and the
 * fuzz target use) and the Envelope builders, byte for byte.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsyncd.h"

/* A PushRequest of n empty changes: 2 bytes of frame each, far more heap. */
static uint8_t *
pack_push_of_empty_changes(size_t n, size_t *len)
{
	Fieldsync__V1__Change *changes = calloc(n, sizeof(*changes));
	Fieldsync__V1__Change **ptrs = calloc(n, sizeof(*ptrs));
	Fieldsync__V1__PushRequest p;
	fs_envelope e;
	uint8_t *buf = NULL;
	cr_assert(changes != NULL && ptrs != NULL);
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__change__init(&changes[i]);
		ptrs[i] = &changes[i];
	}
	fieldsync__v1__push_request__init(&p);
	p.changeset_id = "cs-many";
	p.n_changes = n;
	p.changes = ptrs;
	fieldsync__v1__envelope__init(&e);
	e.request_id = 7;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = &p;
	cr_assert_eq(wire_pack(&e, &buf, len), FSD_OK);
	free(ptrs);
	free(changes);
	return buf;
}

Test(wire, decodes_an_envelope)
{
	size_t len = 0;
	uint8_t *buf = pack_push_of_empty_changes(3, &len);
	fs_envelope *e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_expect_eq(e->request_id, 7);
	cr_assert_eq(e->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH);
	cr_expect_str_eq(e->push->changeset_id, "cs-many");
	cr_expect_eq(e->push->n_changes, 3);
	wire_envelope_free(e);
	wire_envelope_free(NULL); /* no-op */
	free(buf);
}

Test(wire, refuses_bytes_that_are_not_an_envelope)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80};
	cr_expect_null(wire_decode_envelope(junk, sizeof(junk)));
	/* field 12 (push) says 100 bytes follow, 1 does */
	static const uint8_t short_frame[] = {0x62, 0x64, 0x0a};
	cr_expect_null(wire_decode_envelope(short_frame, sizeof(short_frame)));
}

Test(wire, the_budget_refuses_a_small_frame_that_would_take_much_memory)
{
	/* 300,000 empty changes: about 600 KB of frame, over 16 bytes of heap
	 * per frame byte plus 1 MiB once decoded. The plain decoder takes it;
	 * the budgeted one refuses it as malformed. */
	size_t len = 0;
	uint8_t *buf = pack_push_of_empty_changes(300000, &len);
	cr_assert_lt(len, 700000u);
	fs_envelope *plain = fieldsync__v1__envelope__unpack(NULL, len, buf);
	cr_assert_not_null(plain, "the frame itself is a valid Envelope");
	cr_expect_eq(plain->push->n_changes, 300000);
	fieldsync__v1__envelope__free_unpacked(plain, NULL);
	cr_expect_null(wire_decode_envelope(buf, len));
	free(buf);

	/* A few thousand fit the budget. */
	buf = pack_push_of_empty_changes(5000, &len);
	fs_envelope *e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_expect_eq(e->push->n_changes, 5000);
	wire_envelope_free(e);
	free(buf);
}

Test(wire, error_envelope)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	cr_assert_eq(wire_error(42, FIELDSYNC__V1__ERROR__CODE__BUSY, "later", 200, &buf, &len),
	             FSD_OK);
	fs_envelope *e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_expect_eq(e->request_id, 42);
	cr_assert_eq(e->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(e->error->code, FIELDSYNC__V1__ERROR__CODE__BUSY);
	cr_expect_str_eq(e->error->message, "later");
	cr_expect_eq(e->error->retry_after_ms, 200);
	wire_envelope_free(e);
	free(buf);
}

/* A stored reply wrapped by hand is the same bytes protobuf-c would pack. */
static void
expect_stored_reply_identical(uint64_t request_id, size_t n_results)
{
	fs_push_reply *r = validate_reject_all("cs-1", n_results, 0,
	                                       FIELDSYNC__V1__ERROR__CODE__INVALID, "why");
	cr_assert_not_null(r);
	r->server_seq = 99;
	size_t rl = fieldsync__v1__push_reply__get_packed_size(r);
	uint8_t *rb = malloc(rl ? rl : 1);
	cr_assert_not_null(rb);
	fieldsync__v1__push_reply__pack(r, rb);

	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	cr_assert_eq(wire_push_reply(request_id, r, &a, &al), FSD_OK);
	cr_assert_eq(wire_push_reply_stored(request_id, rb, rl, &b, &bl), FSD_OK);
	cr_assert_eq(al, bl, "request_id %llu: %zu bytes packed, %zu by hand",
	             (unsigned long long)request_id, al, bl);
	cr_expect_eq(memcmp(a, b, al), 0, "request_id %llu", (unsigned long long)request_id);
	free(a);
	free(b);
	free(rb);
	validate_reply_free(r);
}

Test(wire, a_stored_reply_is_byte_identical_to_a_packed_one)
{
	expect_stored_reply_identical(1, 1);
	expect_stored_reply_identical(127, 2);
	expect_stored_reply_identical(128, 3);        /* a two-byte varint */
	expect_stored_reply_identical(UINT64_MAX, 1); /* ten bytes */
	expect_stored_reply_identical(300, 200);      /* a reply over 127 bytes: a longer length */
}

Test(wire, welcome_pull_and_replay_replies)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Fieldsync__V1__Welcome w;
	fieldsync__v1__welcome__init(&w);
	w.protocol = FIELDSYNC_PROTOCOL;
	w.server_id = "srv";
	cr_assert_eq(wire_welcome(5, &w, &buf, &len), FSD_OK);
	fs_envelope *e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_expect_eq(e->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	cr_expect_str_eq(e->welcome->server_id, "srv");
	wire_envelope_free(e);
	free(buf);

	Fieldsync__V1__PullReply pr;
	fieldsync__v1__pull_reply__init(&pr);
	pr.last_seq = 12;
	pr.more = true;
	cr_assert_eq(wire_pull_reply(6, &pr, &buf, &len), FSD_OK);
	e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_expect_eq(e->request_id, 6);
	cr_assert_eq(e->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	cr_expect_eq(e->pull_reply->last_seq, 12);
	cr_expect(e->pull_reply->more);
	wire_envelope_free(e);
	free(buf);

	Fieldsync__V1__ReplayReply rr;
	fieldsync__v1__replay_reply__init(&rr);
	rr.last_seq = 3;
	cr_assert_eq(wire_replay_reply(8, &rr, &buf, &len), FSD_OK);
	e = wire_decode_envelope(buf, len);
	cr_assert_not_null(e);
	cr_assert_eq(e->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	cr_expect_eq(e->replay_reply->last_seq, 3);
	wire_envelope_free(e);
	free(buf);
}

Test(wire, codes_for_daemon_errors)
{
	cr_expect_eq(wire_code(FSD_INVALID), FIELDSYNC__V1__ERROR__CODE__INVALID);
	cr_expect_eq(wire_code(FSD_FORBIDDEN), FIELDSYNC__V1__ERROR__CODE__FORBIDDEN);
	cr_expect_eq(wire_code(FSD_TOO_LARGE), FIELDSYNC__V1__ERROR__CODE__TOO_LARGE);
	cr_expect_eq(wire_code(FSD_FULL), FIELDSYNC__V1__ERROR__CODE__BUSY);
	cr_expect_eq(wire_code(FSD_NOSPACE), FIELDSYNC__V1__ERROR__CODE__BUSY);
	cr_expect_eq(wire_code(FSD_BUSY), FIELDSYNC__V1__ERROR__CODE__BUSY);
	cr_expect_eq(wire_code(FSD_NOMEM), FIELDSYNC__V1__ERROR__CODE__INTERNAL);
	cr_expect_eq(wire_code(FSD_IO), FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE);
	cr_expect_eq(wire_code(FSD_CORRUPT), FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE);
	cr_expect_str_eq(fsd_strerror(FSD_EXISTS), "already exists");
}

/* An allocator that fails the Nth call and after (g_fail_at: 0 = the first). */
static long g_calls, g_fail_at;

static void *
failing_alloc(size_t n)
{
	return g_calls++ >= g_fail_at ? NULL : malloc(n);
}

/*
 * A decode that runs out of memory (within the budget) is not a malformed
 * frame: it is answered BUSY with a retry hint and the request's own id, so
 * the device is told to retry instead of waiting for an answer (main
 * answered MALFORMED with request_id 0, which the device does not match
 * to its request: it saw a timeout). Every allocation of the decode in turn
 * is made to fail; each failure gets that answer, and the answer packs.
 */
Test(wire, a_decode_out_of_memory_is_answered_busy_with_its_request_id)
{
	size_t len = 0;
	uint8_t *buf = pack_push_of_empty_changes(5, &len);
	long failures = 0;
	for (g_fail_at = 0;; g_fail_at++) {
		wire_decode_error why;
		memset(&why, 0xAB, sizeof(why));
		g_calls = 0;
		fs_envelope *e = wire_decode_request(buf, len, failing_alloc, &why);
		if (e != NULL) { /* every allocation succeeded */
			cr_expect_eq(e->request_id, 7);
			wire_envelope_free(e);
			break;
		}
		failures++;
		cr_expect_eq(why.why, FSD_NOMEM, "allocation %ld", g_fail_at);
		cr_expect_eq(why.code, FIELDSYNC__V1__ERROR__CODE__BUSY, "allocation %ld",
		             g_fail_at);
		cr_expect_gt(why.retry_after_ms, 0);
		cr_expect_eq(why.request_id, 7, "the answer names the request");
		uint8_t *out = NULL;
		size_t out_len = 0;
		cr_assert_eq(wire_error(why.request_id, why.code, why.message, why.retry_after_ms,
		                        &out, &out_len),
		             FSD_OK);
		fs_envelope *r = wire_decode_envelope(out, out_len);
		cr_assert_not_null(r);
		cr_expect_eq(r->request_id, 7);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
		cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__BUSY);
		wire_envelope_free(r);
		free(out);
		cr_assert_lt(g_fail_at, 1000);
	}
	cr_expect_geq(failures, 7, "the envelope, the push, its changes: %ld allocations",
	              failures);

	/* Bytes that are not an Envelope stay MALFORMED, answered without an id. */
	const uint8_t junk[] = {0x08, 0x2a, 0xff, 0xff, 0xff};
	wire_decode_error why;
	cr_expect_null(wire_decode_request(junk, sizeof(junk), malloc, &why));
	cr_expect_eq(why.why, FSD_INVALID);
	cr_expect_eq(why.code, FIELDSYNC__V1__ERROR__CODE__MALFORMED);
	cr_expect_eq(why.request_id, 0);
	/* Over the budget is malformed too, not memory trouble. */
	size_t big_len = 0;
	uint8_t *big = pack_push_of_empty_changes(200000, &big_len);
	cr_expect_null(wire_decode_request(big, big_len, malloc, &why));
	cr_expect_eq(why.code, FIELDSYNC__V1__ERROR__CODE__MALFORMED);
	free(big);
	free(buf);
}
