/*
 * validate.c: what a push is checked against before the writer sees it,
 * with the default limits of config_load(). Requests are built on the stack
 * from the generated protobuf-c structs; nothing here is sent anywhere.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/merge.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsyncd.h"

#define MAXC 4
#define DOTS_MAX 3

static config g_cfg;

static void
setup(void)
{
	static const char *const env[] = {
		"FIELDSYNC_MAX_CHANGES_PER_PUSH", "FIELDSYNC_MAX_PAYLOAD_BYTES",
		"FIELDSYNC_MAX_MESSAGE_BYTES", "FIELDSYNC_LOG_LEVEL",
	};
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		unsetenv(env[i]);
	cr_assert_eq(config_load(&g_cfg, 1, (char *[]){"fieldsyncd", NULL}), CONFIG_RUN);
	cr_assert_eq(g_cfg.max_changes_per_push, 1000);
	cr_assert_eq(g_cfg.max_payload_bytes, 1u << 20);
}

TestSuite(validate, .init = setup);

/* A push whose records, versions and dots live inside the struct. */
typedef struct {
	fs_push_request req;
	Fieldsync__V1__Change change[MAXC];
	Fieldsync__V1__Change *changes[MAXC];
	fsp_record rec[MAXC];
	fsp_vv vv[MAXC];
	fsp_dot dot[MAXC][DOTS_MAX];
	fsp_dot *dots[MAXC][DOTS_MAX];
	char id[MAXC][32];
} push_buf;

/* Sets record i's version to the given (replica, counter) dots, in order. */
static void
set_version(push_buf *b, size_t i, size_t n, const char *r0, uint64_t c0, const char *r1,
            uint64_t c1)
{
	const char *rep[2] = {r0, r1};
	uint64_t cnt[2] = {c0, c1};
	fieldsync__v1__version_vector__init(&b->vv[i]);
	for (size_t k = 0; k < n; k++) {
		fieldsync__v1__dot__init(&b->dot[i][k]);
		b->dot[i][k].replica = (char *)rep[k];
		b->dot[i][k].counter = cnt[k];
		b->dots[i][k] = &b->dot[i][k];
	}
	b->vv[i].n_dots = n;
	b->vv[i].dots = b->dots[i];
	b->rec[i].version = &b->vv[i];
}

/* n good changes to collection "note", each with one dot. */
static void
push_init(push_buf *b, const char *changeset_id, size_t n)
{
	memset(b, 0, sizeof(*b));
	fieldsync__v1__push_request__init(&b->req);
	b->req.changeset_id = (char *)changeset_id;
	b->req.n_changes = n;
	b->req.changes = b->changes;
	for (size_t i = 0; i < n; i++) {
		fsp_record *r = &b->rec[i];
		fieldsync__v1__change__init(&b->change[i]);
		fieldsync__v1__record__init(r);
		snprintf(b->id[i], sizeof(b->id[i]), "note-%zu", i);
		r->collection = (char *)"note";
		r->id = b->id[i];
		r->scope = (char *)"team-a";
		set_version(b, i, 1, "tablet-1", i + 1, NULL, 0);
		r->payload.data = (uint8_t *)"hello";
		r->payload.len = 5;
		r->modified_at_ms = 1700000000000LL;
		b->change[i].record = r;
		b->changes[i] = &b->change[i];
	}
}

static void
set_payload(push_buf *b, size_t i, const void *data, size_t len)
{
	b->rec[i].payload.data = (uint8_t *)data;
	b->rec[i].payload.len = len;
}

/* validate_push must set *reply; this marks "not set". */
static fs_push_reply g_unset;

static bool
run(const push_buf *b, fs_error_code *code, char *msg, size_t msg_len, fs_push_reply **reply)
{
	bool ok;
	*code = FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
	*reply = &g_unset;
	msg[0] = '\0';
	peer_auth all = {.all_scopes = true, .may_sync = true};
	ok = validate_push(&g_cfg, &all, &b->req, code, msg, msg_len, reply) == FSD_OK;
	cr_assert_neq(*reply, &g_unset, "validate_push left *reply unset");
	return ok;
}

static void
expect_accepted(const push_buf *b, const char *what)
{
	fs_error_code code;
	fs_push_reply *reply;
	char msg[256];
	bool ok = run(b, &code, msg, sizeof(msg), &reply);
	cr_expect(ok, "%s: refused (err_code %d: %s)", what, code, msg);
	cr_expect_null(reply, "%s: an accepted push has no reply", what);
	for (size_t i = 0; reply != NULL && i < reply->n_results; i++)
		cr_log_error("%s: result %zu: %s", what, i, reply->results[i]->reason);
	validate_reply_free(reply);
}

/* The whole push is refused with an Error envelope: no reply. */
static void
expect_error(const push_buf *b, fs_error_code want, const char *what)
{
	fs_error_code code;
	fs_push_reply *reply;
	char msg[256];
	cr_expect_not(run(b, &code, msg, sizeof(msg), &reply), "%s: accepted", what);
	cr_expect_eq(code, want, "%s: err_code %d, want %d", what, code, want);
	cr_expect_null(reply, "%s: a refused request has no PushReply", what);
	cr_expect_neq(msg[0], '\0', "%s: no message", what);
	validate_reply_free(reply);
}

static bool
starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every result REJECTED; change `bad` says why with `prefix`, the others
 * that they were not applied. */
static void
expect_rejected(const push_buf *b, size_t bad, const char *prefix, const char *what)
{
	fs_error_code code;
	fs_push_reply *reply;
	char msg[256];
	cr_expect_not(run(b, &code, msg, sizeof(msg), &reply), "%s: accepted", what);
	cr_assert_not_null(reply, "%s: no PushReply (err_code %d: %s)", what, code, msg);
	cr_expect_str_eq(reply->changeset_id, b->req.changeset_id, "%s", what);
	cr_assert_eq(reply->n_results, b->req.n_changes, "%s: %zu results for %zu changes", what,
	             reply->n_results, b->req.n_changes);
	for (size_t i = 0; i < reply->n_results; i++) {
		const fs_change_result *r = reply->results[i];
		cr_expect_eq(r->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED,
		             "%s: result %zu is not REJECTED", what, i);
		if (i == bad)
			cr_expect(starts_with(r->reason, prefix), "%s: reason '%s' does not start with '%s'",
			          what, r->reason, prefix);
		else
			cr_expect(strstr(r->reason, "not applied") != NULL,
			          "%s: result %zu says '%s', not 'not applied'", what, i, r->reason);
	}
	validate_reply_free(reply);
}

/* ---- good pushes ---------------------------------------------------------- */

static size_t
pack_case(uint8_t *buf, size_t cap, int person, int track)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.person = person;
	c.track = track;
	c.under_18 = true;
	c.contact_person = (char *)"staff-7";
	c.first_contact_at_ms = 1700000000000LL;
	cr_assert_leq(fieldsync__v1__case__get_packed_size(&c), cap);
	return fieldsync__v1__case__pack(&c, buf);
}

static size_t
pack_contact(uint8_t *buf, size_t cap, const char *case_id, int32_t who5)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	c.case_id = (char *)case_id;
	c.kind = FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING;
	c.held_at_ms = 1700000000000LL;
	c.who5 = who5;
	cr_assert_leq(fieldsync__v1__contact__get_packed_size(&c), cap);
	return fieldsync__v1__contact__pack(&c, buf);
}

Test(validate, accepts_a_good_push)
{
	push_buf b;
	uint8_t cs[128], ct[128];
	push_init(&b, "5f0c6f7e-2b1d-4c39-9a57-0d3e4b8f1a22", 4);
	set_version(&b, 0, 2, "alpha", 3, "beta", 1);
	b.rec[1].collection = (char *)"case";
	set_payload(&b, 1, cs, pack_case(cs, sizeof(cs), FIELDSYNC__V1__CASE__PERSON__PARENT,
	                                 FIELDSYNC__V1__CASE__TRACK__GROUP));
	b.rec[2].collection = (char *)"contact";
	set_payload(&b, 2, ct, pack_contact(ct, sizeof(ct), "case-1", 55));
	b.rec[3].deleted = true;
	set_payload(&b, 3, NULL, 0);
	expect_accepted(&b, "good push");
}

Test(validate, accepts_values_at_the_limits)
{
	push_buf b;
	char id[FSP_ID_MAX + 1], csid[129], coll[FSP_COLLECTION_MAX + 1];
	uint8_t ct[128];

	memset(id, 'i', FSP_ID_MAX);
	id[FSP_ID_MAX] = '\0';
	memset(csid, 'c', 128);
	csid[128] = '\0';
	coll[0] = 'z';
	memset(coll + 1, '9', FSP_COLLECTION_MAX - 1);
	coll[FSP_COLLECTION_MAX] = '\0';

	push_init(&b, csid, 3);
	b.rec[0].id = id;
	b.rec[1].collection = coll;
	b.rec[2].collection = (char *)"contact";
	set_payload(&b, 2, ct, pack_contact(ct, sizeof(ct), "c", 100));
	expect_accepted(&b, "128-byte changeset_id and id, 64-byte collection, who5 100");

	push_init(&b, "cs", 1);
	b.rec[0].collection = (char *)"contact";
	set_payload(&b, 0, ct, pack_contact(ct, sizeof(ct), "c", -1));
	expect_accepted(&b, "who5 -1 (not taken)");

	uint8_t *big = calloc(1, g_cfg.max_payload_bytes);
	cr_assert_not_null(big);
	push_init(&b, "cs", 2);
	set_payload(&b, 1, big, g_cfg.max_payload_bytes);
	expect_accepted(&b, "payload of exactly max_payload_bytes");
	free(big);
}

Test(validate, tombstones_are_not_decoded)
{
	push_buf b;
	push_init(&b, "cs-tomb", 2);
	b.rec[0].collection = (char *)"case";
	b.rec[0].deleted = true;
	set_payload(&b, 0, NULL, 0);
	b.rec[1].collection = (char *)"contact";
	b.rec[1].deleted = true;
	set_payload(&b, 1, NULL, 0);
	expect_accepted(&b, "deleted case and contact with empty payloads");

	/* The same empty contact that is not a tombstone has no case_id. */
	b.rec[1].deleted = false;
	expect_rejected(&b, 1, "INVALID:", "live contact with an empty payload");
}

/* ---- the whole request refused -------------------------------------------- */

Test(validate, changeset_id_must_be_1_to_128_bytes)
{
	push_buf b;
	char csid[130];
	push_init(&b, "", 2);
	expect_error(&b, FIELDSYNC__V1__ERROR__CODE__INVALID, "empty changeset_id");

	memset(csid, 'x', 129);
	csid[129] = '\0';
	push_init(&b, csid, 2);
	expect_error(&b, FIELDSYNC__V1__ERROR__CODE__INVALID, "129-byte changeset_id");

	csid[128] = '\0';
	push_init(&b, csid, 2);
	expect_accepted(&b, "128-byte changeset_id");
}

Test(validate, too_many_changes_is_too_large)
{
	size_t n = (size_t)g_cfg.max_changes_per_push + 1;
	Fieldsync__V1__Change **many = calloc(n, sizeof(*many));
	push_buf b;
	cr_assert_not_null(many);
	push_init(&b, "cs-many", 1);
	for (size_t i = 0; i < n; i++)
		many[i] = &b.change[0];
	b.req.changes = many;

	b.req.n_changes = n;
	expect_error(&b, FIELDSYNC__V1__ERROR__CODE__TOO_LARGE, "max_changes_per_push + 1");
	b.req.n_changes = n - 1;
	expect_accepted(&b, "exactly max_changes_per_push");

	/* The limit is the configured one, not a constant. */
	g_cfg.max_changes_per_push = 2;
	b.req.n_changes = 3;
	expect_error(&b, FIELDSYNC__V1__ERROR__CODE__TOO_LARGE, "3 changes with a limit of 2");
	b.req.n_changes = 2;
	expect_accepted(&b, "2 changes with a limit of 2");
	free(many);
}

/* ---- one bad change among good ones --------------------------------------- */

Test(validate, bad_collection)
{
	static const char *const bad[] = {
		"Note", "", "1note", "_note", "no te", "note/x", "n\xc3\xa9", "note.x",
		"a12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		push_buf b;
		char what[128];
		push_init(&b, "cs-coll", 3);
		b.rec[1].collection = (char *)bad[k];
		snprintf(what, sizeof(what), "collection '%s'", bad[k]);
		expect_rejected(&b, 1, "INVALID:", what);
	}
}

Test(validate, bad_id)
{
	char id[FSP_ID_MAX + 2];
	push_buf b;
	memset(id, 'i', FSP_ID_MAX + 1);
	id[FSP_ID_MAX + 1] = '\0';
	push_init(&b, "cs-id", 3);
	b.rec[1].id = id;
	expect_rejected(&b, 1, "INVALID:", "129-byte id");

	push_init(&b, "cs-id", 3);
	b.rec[2].id = (char *)"";
	expect_rejected(&b, 2, "INVALID:", "empty id");
}

Test(validate, bad_scope)
{
	static const char *const bad[] = {"", "Team-a", ".team", "-team", "team a", "team/a"};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		push_buf b;
		char what[64];
		push_init(&b, "cs-scope", 3);
		b.rec[0].scope = (char *)bad[k];
		snprintf(what, sizeof(what), "scope '%s'", bad[k]);
		expect_rejected(&b, 0, "INVALID:", what);
	}
}

Test(validate, record_without_a_version)
{
	push_buf b;
	push_init(&b, "cs-nov", 3);
	b.rec[1].version = NULL;
	expect_rejected(&b, 1, "INVALID:", "no version");

	push_init(&b, "cs-nov", 3);
	set_version(&b, 1, 0, NULL, 0, NULL, 0);
	expect_rejected(&b, 1, "INVALID:", "a version with no dots");
}

Test(validate, zero_counter)
{
	push_buf b;
	push_init(&b, "cs-zero", 3);
	set_version(&b, 1, 2, "alpha", 1, "beta", 0);
	expect_rejected(&b, 1, "INVALID:", "dot beta:0");

	push_init(&b, "cs-zero", 3);
	set_version(&b, 2, 1, "alpha", 0, NULL, 0);
	expect_rejected(&b, 2, "INVALID:", "single dot alpha:0");
}

Test(validate, unsorted_or_repeated_dots)
{
	push_buf b;
	push_init(&b, "cs-sort", 3);
	set_version(&b, 1, 2, "beta", 1, "alpha", 1);
	expect_rejected(&b, 1, "INVALID:", "dots beta, alpha");

	push_init(&b, "cs-sort", 3);
	set_version(&b, 1, 2, "alpha", 1, "alpha", 2);
	expect_rejected(&b, 1, "INVALID:", "replica alpha twice");

	push_init(&b, "cs-sort", 3);
	set_version(&b, 1, 2, "", 1, "alpha", 2);
	expect_rejected(&b, 1, "INVALID:", "empty replica");
}

Test(validate, tombstone_with_payload)
{
	push_buf b;
	push_init(&b, "cs-tomb", 3);
	b.rec[1].deleted = true; /* keeps its "hello" payload */
	expect_rejected(&b, 1, "INVALID:", "deleted with a payload");
}

Test(validate, payload_over_the_limit_is_too_large)
{
	push_buf b;
	size_t n = (size_t)g_cfg.max_payload_bytes + 1;
	uint8_t *big = calloc(1, n);
	cr_assert_not_null(big);
	push_init(&b, "cs-big", 3);
	set_payload(&b, 1, big, n);
	expect_rejected(&b, 1, "TOO_LARGE:", "payload of max_payload_bytes + 1");

	/* On a typed collection the size is checked before the content. */
	b.rec[1].collection = (char *)"case";
	expect_rejected(&b, 1, "TOO_LARGE:", "oversized case payload");
	free(big);
}

Test(validate, case_payload_that_does_not_decode)
{
	/* Field 4 (string) claims 16 bytes, one follows. */
	static const uint8_t garbage[] = {0x22, 0x10, 'x'};
	push_buf b;
	push_init(&b, "cs-case", 3);
	b.rec[1].collection = (char *)"case";
	set_payload(&b, 1, garbage, sizeof(garbage));
	expect_rejected(&b, 1, "INVALID:", "garbage case payload");

	/* The same bytes are fine in an untyped collection. */
	b.rec[1].collection = (char *)"note";
	expect_accepted(&b, "garbage bytes in an untyped collection");
}

Test(validate, case_with_unknown_enum_value)
{
	uint8_t cs[128];
	push_buf b;
	push_init(&b, "cs-case", 3);
	b.rec[0].collection = (char *)"case";
	set_payload(&b, 0, cs, pack_case(cs, sizeof(cs), 7, FIELDSYNC__V1__CASE__TRACK__GROUP));
	expect_rejected(&b, 0, "INVALID:", "case.person 7");
}

Test(validate, contact_with_who5_out_of_range)
{
	static const int32_t bad[] = {200, 101, -2};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		uint8_t ct[128];
		char what[64];
		push_buf b;
		push_init(&b, "cs-who5", 3);
		b.rec[2].collection = (char *)"contact";
		set_payload(&b, 2, ct, pack_contact(ct, sizeof(ct), "case-1", bad[k]));
		snprintf(what, sizeof(what), "contact.who5 = %d", (int)bad[k]);
		expect_rejected(&b, 2, "INVALID:", what);
	}
}

Test(validate, change_without_a_record)
{
	push_buf b;
	push_init(&b, "cs-norec", 3);
	b.change[1].record = NULL;
	expect_rejected(&b, 1, "INVALID:", "change without a record");
}

Test(validate, two_bad_changes_reject_everything)
{
	push_buf b;
	push_init(&b, "cs-two", 4);
	b.rec[1].scope = (char *)"";
	b.rec[3].collection = (char *)"";
	fs_error_code code;
	fs_push_reply *reply;
	char msg[256];
	cr_expect_not(run(&b, &code, msg, sizeof(msg), &reply));
	cr_assert_not_null(reply);
	cr_assert_eq(reply->n_results, 4);
	for (size_t i = 0; i < 4; i++)
		cr_expect_eq(reply->results[i]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect(starts_with(reply->results[1]->reason, "INVALID:"), "%s", reply->results[1]->reason);
	cr_expect(strstr(reply->results[0]->reason, "not applied") != NULL);
	validate_reply_free(reply);
}

/* ---- validate_reject_all -------------------------------------------------- */

Test(validate, reject_all_builds_n_results)
{
	fs_push_reply *r = validate_reject_all("cs-ra", 4, 2, FIELDSYNC__V1__ERROR__CODE__TOO_LARGE, "payload is huge");
	cr_assert_not_null(r);
	cr_expect_str_eq(r->changeset_id, "cs-ra");
	cr_assert_eq(r->n_results, 4);
	for (size_t i = 0; i < 4; i++) {
		cr_expect_eq(r->results[i]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
		cr_expect_eq(r->results[i]->seq, 0);
		if (i == 2)
			cr_expect_str_eq(r->results[i]->reason, "TOO_LARGE: payload is huge");
		else
			cr_expect(strstr(r->results[i]->reason, "not applied") != NULL, "%s",
			          r->results[i]->reason);
	}

	/* It is a well-formed PushReply: it packs and unpacks to the same. */
	size_t len = fieldsync__v1__push_reply__get_packed_size(r);
	uint8_t *buf = malloc(len);
	cr_assert_not_null(buf);
	cr_assert_eq(fieldsync__v1__push_reply__pack(r, buf), len);
	fs_push_reply *u = fieldsync__v1__push_reply__unpack(NULL, len, buf);
	cr_assert_not_null(u);
	cr_expect_str_eq(u->changeset_id, "cs-ra");
	cr_assert_eq(u->n_results, 4);
	for (size_t i = 0; i < 4; i++) {
		cr_expect_eq(u->results[i]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
		cr_expect_str_eq(u->results[i]->reason, r->results[i]->reason);
	}
	fieldsync__v1__push_reply__free_unpacked(u, NULL);
	free(buf);
	validate_reply_free(r);

	r = validate_reject_all("cs-one", 1, 0, FIELDSYNC__V1__ERROR__CODE__INVALID, "x");
	cr_assert_not_null(r);
	cr_assert_eq(r->n_results, 1);
	cr_expect_str_eq(r->results[0]->reason, "INVALID: x");
	validate_reply_free(r);

	r = validate_reject_all("cs-none", 0, 0, FIELDSYNC__V1__ERROR__CODE__INVALID, "x");
	cr_assert_not_null(r);
	cr_expect_eq(r->n_results, 0);
	cr_expect_str_eq(r->changeset_id, "cs-none");
	validate_reply_free(r);
}

Test(validate, a_scope_not_granted_is_forbidden)
{
	push_buf b;
	push_init(&b, "cs-scope", 3);
	b.rec[2].scope = (char *)"team-b";
	peer_auth dev = {.may_sync = true, .n_scopes = 1};
	strcpy(dev.scopes[0], "team-a");
	fs_error_code code = FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
	char msg[256] = "";
	fs_push_reply *reply = NULL;
	cr_assert(validate_push(&g_cfg, &dev, &b.req, &code, msg, sizeof(msg), &reply) != FSD_OK);
	cr_assert_not_null(reply);
	cr_expect_eq(strncmp(reply->results[2]->reason, "FORBIDDEN: ", 11), 0, "%s",
	             reply->results[2]->reason);
	cr_expect_not_null(strstr(reply->results[0]->reason, "not applied"));
	validate_reply_free(reply);

	/* team-a alone passes; a peer with every scope passes team-b too. */
	b.rec[2].scope = (char *)"team-a";
	reply = NULL;
	cr_expect(validate_push(&g_cfg, &dev, &b.req, &code, msg, sizeof(msg), &reply) == FSD_OK);
	cr_expect_null(reply);
	cr_expect(peer_may(&dev, "team-a"));
	cr_expect(!peer_may(&dev, "team-ab"), "scopes match exactly, never by prefix");
	cr_expect(!peer_may(&dev, "team-"));
}
