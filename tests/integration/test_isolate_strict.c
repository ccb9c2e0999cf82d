/*
 * Issue 11 break 4 (invalid UTF-8 in a string field is stored and served)
 * and issue 10 break 4 (unknown protobuf fields inside a Record: a 3 MiB
 * unknown field past the payload cap, data on a tombstone), through the real
 * daemon over a real socket: each is REJECTED with a reason and nothing of
 * it is stored or served by Pull.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"

typedef Fieldsync__V1__Envelope env_t;

static fs_test_daemon *d;
static void *ctx, *sock;

static void
setup(void)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	ctx = zmq_ctx_new();
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
}

static void
teardown(void)
{
	zmq_close(sock);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&d);
}

TestSuite(isolate_strict, .init = setup, .fini = teardown, .timeout = 60);

/* Pushes the one-change set p and expects REJECTED with reason prefix. */
static void
expect_rejected(fs_test_push *p, const char *prefix, const char *what)
{
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, 7), 20000);
	cr_assert_not_null(r, "%s: a reply", what);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY, "%s", what);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED, "%s is refused", what);
	cr_expect_eq(strncmp(r->push_reply->results[0]->reason, prefix, strlen(prefix)), 0,
	             "%s: %s", what, r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

static size_t
pulled(void)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 99;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	size_t n = r->pull_reply->n_records;
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return n;
}

Test(isolate_strict, issue11_break4_invalid_utf8_is_refused_never_stored)
{
	fs_test_push *p = fs_test_push_new("cs-utf8-id");
	fs_test_push_add(p, "note", "n\xc3\x28", "team-a", "a:1", false, "x", 1);
	expect_rejected(p, "INVALID", "an id that is not UTF-8");
	fs_test_push_free(p);

	p = fs_test_push_new("cs-utf8-replica");
	fs_test_push_add(p, "note", "n1", "team-a", "\xff\xfe:1", false, "x", 1);
	expect_rejected(p, "INVALID", "a dot's replica that is not UTF-8");
	fs_test_push_free(p);

	p = fs_test_push_new("cs-utf8-overlong");
	fs_test_push_add(p, "note", "n\xc0\xaf", "team-a", "a:1", false, "x", 1);
	expect_rejected(p, "INVALID", "an overlong encoding");
	fs_test_push_free(p);

	cr_expect_eq(pulled(), 0, "nothing malformed is stored or served");
}

/* Adds an unknown field (number 99, bytes) of len bytes to the record.
 * protobuf-c packs an unknown field's data as it is, so for a
 * length-delimited field the data starts with the length varint. */
static void
add_unknown(Fieldsync__V1__Record *r, size_t len)
{
	ProtobufCMessageUnknownField *u = calloc(1, sizeof(*u));
	cr_assert_not_null(u);
	uint8_t prefix[10];
	size_t pl = 0;
	for (size_t v = len; pl == 0 || v != 0; v >>= 7)
		prefix[pl++] = (uint8_t)((v & 0x7f) | (v >> 7 ? 0x80 : 0));
	u->tag = 99;
	u->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	u->len = pl + len;
	u->data = calloc(1, pl + len);
	cr_assert_not_null(u->data);
	memcpy(u->data, prefix, pl);
	memset(u->data + pl, 'P', len);
	r->base.unknown_fields = u;
	r->base.n_unknown_fields = 1;
}

static void
drop_unknown(Fieldsync__V1__Record *r)
{
	free(r->base.unknown_fields[0].data);
	free(r->base.unknown_fields);
	r->base.unknown_fields = NULL;
	r->base.n_unknown_fields = 0;
}

Test(isolate_strict, issue10_break4_unknown_record_fields_are_refused)
{
	/* 3 MiB in an unknown field: past the 1 MiB payload cap by the side door. */
	fs_test_push *p = fs_test_push_new("cs-unknown-big");
	fs_test_push_add(p, "note", "n1", "team-a", "a:1", false, "x", 1);
	env_t *e = fs_test_push_envelope(p, 7);
	Fieldsync__V1__Record *rec = e->push->changes[0]->record;
	add_unknown(rec, 3u << 20);
	cr_assert(fs_test_send(sock, e));
	env_t *r = fs_test_recv(sock, 20000);
	drop_unknown(rec);
	cr_assert_not_null(r, "a refusal, not silence");
	/* A well-formed envelope: the record check refuses the change, naming
	 * the field (release 1 applied it and stored the 3 MiB in clear). */
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect(strstr(r->push_reply->results[0]->reason, "field number 99") != NULL, "%s",
	          r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	/* A tombstone cannot carry data that way either. */
	p = fs_test_push_new("cs-unknown-tomb");
	fs_test_push_add(p, "note", "n2", "team-a", "a:1", true, NULL, 0);
	e = fs_test_push_envelope(p, 8);
	rec = e->push->changes[0]->record;
	add_unknown(rec, 64);
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	cr_assert(fs_test_send(sock, e));
	r = fs_test_recv(sock, 20000);
	drop_unknown(rec);
	cr_assert_not_null(r, "a refusal, not silence");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	cr_expect_eq(pulled(), 0, "neither value is stored");
}
