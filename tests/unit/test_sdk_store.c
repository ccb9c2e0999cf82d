/*
 * libfieldsync's local store: lifecycle, the replica id, local writes and
 * their versions, the outbox state machine (store.c's design note) and the
 * merge of pulled records. The outbox and pull functions are private
 * (client-sdk/src/internal.h); they are driven directly here, with no
 * network, so each transition is checked on its own.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../client-sdk/src/internal.h"
#include "daemon.h"

static char *dir;
static fs_store *s;

static void
setup(void)
{
	dir = fs_test_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_eq(fs_store_create(dir, NULL, &s), FS_OK);
}

static void
teardown(void)
{
	fs_store_close(&s);
	fs_test_rm_rf(dir);
	free(dir);
}

TestSuite(sdk_store, .init = setup, .fini = teardown);

static const char *
version_of(const char *coll, const char *id, size_t i)
{
	static char buf[512];
	fs_record *r = NULL;
	fs_sibling sb;
	cr_assert_eq(fs_get(s, coll, id, &r), FS_OK);
	cr_assert_lt(i, fs_record_sibling_count(r));
	fs_record_sibling(r, i, &sb);
	snprintf(buf, sizeof(buf), "%s", sb.version);
	fs_record_free(&r);
	return buf;
}

static uint64_t
pending(void)
{
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	return st.pending;
}

Test(sdk_store, create_makes_a_uuid_replica_and_refuses_a_second_create)
{
	const char *rid = fs_store_replica_id(s);
	cr_assert_eq(strlen(rid), 36);
	cr_assert_eq(rid[8], '-');
	cr_assert_eq(rid[14], '4', "a version-4 UUID");
	cr_expect_str_eq(fs_store_default_scope(s), "default");

	char saved[64];
	snprintf(saved, sizeof(saved), "%s", rid);
	fs_store_close(&s);
	cr_assert_null(s, "close nulls the handle");
	fs_store_close(&s); /* NULL is fine */
	fs_store_close(NULL);

	fs_store *again = NULL;
	cr_expect_eq(fs_store_create(dir, NULL, &again), FS_ERR_EXISTS);
	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	cr_expect_str_eq(fs_store_replica_id(s), saved, "the replica id survives a reopen");

	/* a second store gets a different replica id */
	char *d2 = fs_test_tmpdir();
	fs_store *s2 = NULL;
	cr_assert_eq(fs_store_create(d2, "team-a", &s2), FS_OK);
	cr_expect_str_neq(fs_store_replica_id(s2), saved);
	cr_expect_str_eq(fs_store_default_scope(s2), "team-a");
	fs_store_close(&s2);
	fs_test_rm_rf(d2);
	free(d2);

	struct stat st;
	cr_assert_eq(stat(dir, &st), 0);
}

Test(sdk_store, open_of_a_missing_store_and_bad_scope)
{
	fs_store *x = NULL;
	char *d2 = fs_test_tmpdir();
	cr_expect_eq(fs_store_open(d2, &x), FS_ERR_NOT_FOUND);
	cr_expect_null(x);
	cr_expect_eq(fs_store_create(d2, "Bad Scope", &x), FS_ERR_INVALID);
	cr_expect_eq(fs_store_open(d2, &x), FS_ERR_NOT_FOUND, "a refused create leaves no store");
	fs_test_rm_rf(d2);
	free(d2);
}

Test(sdk_store, put_get_and_versions_follow_the_protocol_rule)
{
	const char *rid = fs_store_replica_id(s);
	char want[128];
	cr_assert_eq(fs_put(s, "notes", "n1", NULL, "one", 3), FS_OK);
	snprintf(want, sizeof(want), "%s:1", rid);
	cr_expect_str_eq(version_of("notes", "n1", 0), want);
	cr_assert_eq(fs_put(s, "notes", "n1", NULL, "two", 3), FS_OK);
	snprintf(want, sizeof(want), "%s:2", rid);
	cr_expect_str_eq(version_of("notes", "n1", 0), want);

	fs_record *r = NULL;
	fs_sibling sb;
	cr_assert_eq(fs_get(s, "notes", "n1", &r), FS_OK);
	cr_expect_eq(fs_record_sibling_count(r), 1);
	fs_record_sibling(r, 0, &sb);
	cr_expect_eq(sb.len, 3);
	cr_expect_eq(memcmp(sb.payload, "two", 3), 0);
	cr_expect_not(sb.deleted);
	cr_expect_str_eq(fs_record_scope(r), "default");
	cr_expect_str_eq(fs_record_collection(r), "notes");
	cr_expect_str_eq(fs_record_id(r), "n1");
	fs_record_free(&r);
	cr_expect_null(r);

	cr_expect_eq(pending(), 1, "one outbox entry per record: the latest value");
}

Test(sdk_store, bad_arguments_are_refused_and_store_nothing)
{
	fs_record *r = NULL;
	cr_expect_eq(fs_put(s, "Bad", "x", NULL, "v", 1), FS_ERR_INVALID);
	cr_expect_eq(fs_put(s, "notes", "", NULL, "v", 1), FS_ERR_INVALID);
	char longid[200];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	cr_expect_eq(fs_put(s, "notes", longid, NULL, "v", 1), FS_ERR_INVALID);
	cr_expect_eq(fs_put(s, "notes", "x", "UPPER", "v", 1), FS_ERR_INVALID);
	/* a typed collection needs a payload that decodes and passes the shared check */
	cr_expect_eq(fs_put(s, "case", "c1", NULL, "\xff\xff\xff", 3), FS_ERR_INVALID);
	cr_expect_eq(fs_put(s, "contact", "k1", NULL, NULL, 0), FS_ERR_INVALID,
	             "a contact must name its case");
	cr_expect_eq(fs_get(s, "case", "c1", &r), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_get(s, "contact", "k1", &r), FS_ERR_NOT_FOUND);
	cr_expect_eq(pending(), 0);
}

Test(sdk_store, delete_is_a_tombstone_that_hides_the_record)
{
	fs_record *r = NULL;
	fs_list *l = NULL;
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "x", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "y", 1), FS_OK);
	cr_assert_eq(fs_delete(s, "notes", "a"), FS_OK);
	cr_expect_eq(fs_get(s, "notes", "a", &r), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_delete(s, "notes", "a"), FS_ERR_NOT_FOUND, "already deleted");
	cr_expect_eq(fs_delete(s, "notes", "never"), FS_ERR_NOT_FOUND);
	cr_assert_eq(fs_list_collection(s, "notes", &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_str_eq(l->items[0].id, "b");
	fs_list_free(&l);
	cr_expect_null(l);
	cr_expect_eq(pending(), 2, "the tombstone must be pushed");
	/* writing again after a delete supersedes the tombstone */
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "z", 1), FS_OK);
	char want[128];
	snprintf(want, sizeof(want), "%s:3", fs_store_replica_id(s));
	cr_expect_str_eq(version_of("notes", "a", 0), want);
}

Test(sdk_store, list_is_per_collection_in_id_order)
{
	fs_list *l = NULL;
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notesx", "c", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "note", "d", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_list_collection(s, "notes", &l), FS_OK);
	cr_assert_eq(l->n, 2);
	cr_expect_str_eq(l->items[0].id, "a");
	cr_expect_str_eq(l->items[1].id, "b");
	fs_list_free(&l);
	cr_assert_eq(fs_list_collection(s, "empty", &l), FS_OK);
	cr_expect_eq(l->n, 0);
	fs_list_free(&l);
	cr_expect_eq(fs_list_collection(s, "Bad!", &l), FS_ERR_INVALID);
}

Test(sdk_store, writes_are_durable_across_reopen)
{
	cr_assert_eq(fs_put(s, "notes", "n", "team-b", "kept", 4), FS_OK);
	fs_store_close(&s);
	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	fs_record *r = NULL;
	fs_sibling sb;
	cr_assert_eq(fs_get(s, "notes", "n", &r), FS_OK);
	fs_record_sibling(r, 0, &sb);
	cr_expect_eq(sb.len, 4);
	cr_expect_eq(memcmp(sb.payload, "kept", 4), 0);
	cr_expect_str_eq(fs_record_scope(r), "team-b");
	fs_record_free(&r);
	cr_expect_eq(pending(), 1);
	/* no scope given: an existing record keeps its own */
	cr_assert_eq(fs_put(s, "notes", "n", NULL, "again", 5), FS_OK);
	cr_assert_eq(fs_get(s, "notes", "n", &r), FS_OK);
	cr_expect_str_eq(fs_record_scope(r), "team-b");
	fs_record_free(&r);
}

/* ---- outbox transitions -------------------------------------------------- */

static sdk_push_request *
prepare(size_t max, uint64_t *key)
{
	uint8_t *b = NULL;
	size_t n = 0;
	cr_assert_eq(sdk_push_prepare(s, max, 1 << 20, key, &b, &n), FS_OK);
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, n, b);
	free(b);
	cr_assert_not_null(req);
	return req;
}

/* A PushReply with every result set to status, reasons as given (may be NULL). */
static sdk_push_reply *
reply_all(const sdk_push_request *req, int status, const char *const *reasons)
{
	sdk_push_reply *r = calloc(1, sizeof(*r));
	fieldsync__v1__push_reply__init(r);
	r->changeset_id = req->changeset_id;
	r->n_results = req->n_changes;
	r->results = calloc(req->n_changes, sizeof(*r->results));
	for (size_t i = 0; i < req->n_changes; i++) {
		r->results[i] = calloc(1, sizeof(**r->results));
		fieldsync__v1__change_result__init(r->results[i]);
		r->results[i]->status = status;
		r->results[i]->reason = reasons ? (char *)reasons[i] : "";
	}
	return r;
}

static void
reply_free(sdk_push_reply *r)
{
	for (size_t i = 0; i < r->n_results; i++)
		free(r->results[i]);
	free(r->results);
	free(r);
}

Test(sdk_store, batches_respect_max_and_keep_their_id_until_answered)
{
	uint64_t k1, k2, kx = 0;
	for (int i = 0; i < 5; i++) {
		char id[8];
		snprintf(id, sizeof(id), "r%d", i);
		cr_assert_eq(fs_put(s, "notes", id, NULL, "v", 1), FS_OK);
	}
	sdk_push_request *a = prepare(3, &k1);
	sdk_push_request *b = prepare(3, &k2);
	cr_expect_eq(a->n_changes, 3);
	cr_expect_eq(b->n_changes, 2, "entries already in a change set are not taken twice");
	cr_expect_str_neq(a->changeset_id, b->changeset_id);
	uint8_t *bytes;
	size_t len;
	cr_expect_eq(sdk_push_prepare(s, 3, 1 << 20, &kx, &bytes, &len), FS_ERR_NOT_FOUND);

	/* what is in flight is resent byte for byte, same changeset_id */
	kx = 0;
	cr_assert_eq(sdk_inflight_next(s, &kx, &bytes, &len), FS_OK);
	cr_expect_eq(kx, k1);
	sdk_push_request *again = fieldsync__v1__push_request__unpack(NULL, len, bytes);
	free(bytes);
	cr_assert_not_null(again);
	cr_expect_str_eq(again->changeset_id, a->changeset_id);
	cr_expect_eq(again->n_changes, 3);
	fieldsync__v1__push_request__free_unpacked(again, NULL);

	/* survives a reopen (a killed client) */
	fs_store_close(&s);
	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	kx = k1;
	cr_assert_eq(sdk_inflight_next(s, &kx, &bytes, &len), FS_OK);
	cr_expect_eq(kx, k2);
	free(bytes);

	sdk_push_reply *ra = reply_all(a, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, NULL);
	sdk_push_outcome oc;
	cr_assert_eq(sdk_push_done(s, k1, a, ra, &oc), FS_OK);
	cr_expect_eq(oc.acked, 3);
	cr_expect_eq(pending(), 2);
	kx = 0;
	cr_assert_eq(sdk_inflight_next(s, &kx, &bytes, &len), FS_OK);
	cr_expect_eq(kx, k2, "the answered set is no longer in flight");
	free(bytes);
	reply_free(ra);
	fieldsync__v1__push_request__free_unpacked(a, NULL);
	fieldsync__v1__push_request__free_unpacked(b, NULL);
}

Test(sdk_store, an_edit_made_while_its_older_version_is_in_flight_survives_the_ack)
{
	uint64_t k;
	cr_assert_eq(fs_put(s, "notes", "x", NULL, "v1", 2), FS_OK);
	sdk_push_request *a = prepare(10, &k);
	cr_assert_eq(fs_put(s, "notes", "x", NULL, "v2", 2), FS_OK); /* during the sync */
	sdk_push_reply *ra = reply_all(a, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, NULL);
	sdk_push_outcome oc;
	cr_assert_eq(sdk_push_done(s, k, a, ra, &oc), FS_OK);
	cr_expect_eq(pending(), 1, "v2 is still waiting to be pushed");
	sdk_push_request *b = prepare(10, &k);
	cr_assert_eq(b->n_changes, 1);
	cr_expect_eq(b->changes[0]->record->payload.len, 2);
	cr_expect_eq(memcmp(b->changes[0]->record->payload.data, "v2", 2), 0);
	cr_expect_str_neq(b->changeset_id, a->changeset_id, "a new value gets a new change set");
	cr_expect_eq(fsp_vv_compare(b->changes[0]->record->version, a->changes[0]->record->version),
	             FSP_VV_DOMINATES);
	reply_free(ra);
	fieldsync__v1__push_request__free_unpacked(a, NULL);
	fieldsync__v1__push_request__free_unpacked(b, NULL);
}

Test(sdk_store, rejected_changes_are_parked_or_retried_alone)
{
	uint64_t k;
	fs_list *l = NULL;
	sdk_push_outcome oc;
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "c", NULL, "1", 1), FS_OK);

	/* every reason carries a code: the culprit is unknown, so each goes alone */
	sdk_push_request *a = prepare(10, &k);
	const char *why3[] = {"FORBIDDEN: x", "FORBIDDEN: x", "FORBIDDEN: x"};
	sdk_push_reply *ra = reply_all(a, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED, why3);
	cr_assert_eq(sdk_push_done(s, k, a, ra, &oc), FS_OK);
	cr_expect_eq(oc.parked, 0);
	cr_expect_eq(oc.requeued, 3);
	reply_free(ra);
	fieldsync__v1__push_request__free_unpacked(a, NULL);
	for (int i = 0; i < 3; i++) {
		sdk_push_request *one = prepare(10, &k);
		cr_assert_eq(one->n_changes, 1, "a requeued change is pushed alone");
		const char *why1[] = {"INVALID: scope not granted"};
		int st = i == 1 ? FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED
		                : FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED;
		sdk_push_reply *r1 = reply_all(one, st, why1);
		cr_assert_eq(sdk_push_done(s, k, one, r1, &oc), FS_OK);
		reply_free(r1);
		fieldsync__v1__push_request__free_unpacked(one, NULL);
	}
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	cr_expect_eq(st.pending, 0);
	cr_expect_eq(st.failed, 1);
	cr_assert_eq(fs_list_failed(s, &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_str_eq(l->items[0].id, "b");
	cr_expect_str_eq(l->items[0].reason, "INVALID: scope not granted");
	fs_list_free(&l);
	uint8_t *bytes;
	size_t len;
	cr_expect_eq(sdk_push_prepare(s, 10, 1 << 20, &k, &bytes, &len), FS_ERR_NOT_FOUND,
	             "a parked change is not pushed again");

	/* retry_failed requeues; so does a new local write */
	size_t n = 0;
	cr_assert_eq(fs_retry_failed(s, &n), FS_OK);
	cr_expect_eq(n, 1);
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	cr_expect_eq(st.pending, 1);
	cr_expect_eq(st.failed, 0);
}

Test(sdk_store, daemon_naming_the_culprit_parks_it_and_requeues_the_rest)
{
	uint64_t k;
	sdk_push_outcome oc;
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "1", 1), FS_OK);
	sdk_push_request *a = prepare(10, &k);
	const char *why[] = {"not applied: change 1 of this change set was rejected",
	                     "TOO_LARGE: payload is too big"};
	sdk_push_reply *ra = reply_all(a, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED, why);
	cr_assert_eq(sdk_push_done(s, k, a, ra, &oc), FS_OK);
	cr_expect_eq(oc.parked, 1);
	cr_expect_eq(oc.requeued, 1);
	reply_free(ra);
	fieldsync__v1__push_request__free_unpacked(a, NULL);
	sdk_push_request *b = prepare(10, &k);
	cr_assert_eq(b->n_changes, 1);
	cr_expect_str_eq(b->changes[0]->record->id, "a");
	fieldsync__v1__push_request__free_unpacked(b, NULL);
}

Test(sdk_store, a_request_level_refusal_parks_a_single_change)
{
	uint64_t k;
	sdk_push_outcome oc;
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	sdk_push_request *a = prepare(10, &k);
	cr_assert_eq(sdk_push_refused(s, k, a, "TOO_LARGE", "frame too big", &oc), FS_OK);
	cr_expect_eq(oc.parked, 1);
	fs_list *l = NULL;
	cr_assert_eq(fs_list_failed(s, &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_str_eq(l->items[0].reason, "TOO_LARGE: frame too big");
	fs_list_free(&l);
	uint8_t *bytes;
	size_t len;
	uint64_t kx = 0;
	cr_expect_eq(sdk_inflight_next(s, &kx, &bytes, &len), FS_ERR_NOT_FOUND);
	fieldsync__v1__push_request__free_unpacked(a, NULL);
}

/* ---- pulled records ----------------------------------------------------- */

static fsp_record *
wire_record(const char *id, const char *version, const char *payload)
{
	fsp_record *r = calloc(1, sizeof(*r));
	fieldsync__v1__record__init(r);
	r->collection = "notes";
	r->id = (char *)id;
	r->scope = "default";
	r->version = fs_test_vv(version);
	r->payload.data = (uint8_t *)payload;
	r->payload.len = strlen(payload);
	return r;
}

static void
pull_page(const char *id, fsp_record **sibs, size_t n, uint64_t seq, bool purged)
{
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	sdk_record_state *rsp = &rs;
	sdk_pull_reply rep = FIELDSYNC__V1__PULL_REPLY__INIT;
	rs.collection = "notes";
	rs.id = (char *)id;
	rs.scope = "default";
	rs.seq = seq;
	rs.n_siblings = n;
	rs.siblings = sibs;
	rs.purged = purged;
	rep.n_records = 1;
	rep.records = &rsp;
	rep.last_seq = seq;
	uint64_t applied = 0;
	cr_assert_eq(sdk_pull_apply(s, &rep, &applied), FS_OK);
}

static void
free_wire(fsp_record *r)
{
	fsp_vv_free(r->version);
	free(r);
}

Test(sdk_store, a_pulled_conflict_on_a_locally_edited_record_keeps_all_three)
{
	/* the record as last synced: one value from replica "srv" */
	fsp_record *base = wire_record("x", "b0:1", "base");
	pull_page("x", &base, 1, 1, false);
	/* edited here since, not yet pushed */
	cr_assert_eq(fs_put(s, "notes", "x", NULL, "mine", 4), FS_OK);
	/* the feed now has two concurrent edits from two other tablets */
	fsp_record *p = wire_record("x", "b0:1,p:1", "theirs-p");
	fsp_record *q = wire_record("x", "b0:1,q:1", "theirs-q");
	fsp_record *sibs[2] = {p, q};
	pull_page("x", sibs, 2, 5, false);

	fs_record *r = NULL;
	cr_assert_eq(fs_get(s, "notes", "x", &r), FS_OK);
	cr_assert_eq(fs_record_sibling_count(r), 3, "mine, p and q are all kept");
	int seen = 0;
	for (size_t i = 0; i < 3; i++) {
		fs_sibling sb;
		fs_record_sibling(r, i, &sb);
		if (sb.len == 4 && memcmp(sb.payload, "mine", 4) == 0)
			seen |= 1;
		if (sb.len == 8 && memcmp(sb.payload, "theirs-p", 8) == 0)
			seen |= 2;
		if (sb.len == 8 && memcmp(sb.payload, "theirs-q", 8) == 0)
			seen |= 4;
	}
	cr_expect_eq(seen, 7);
	fs_record_free(&r);
	cr_expect_eq(pending(), 1, "the local edit still waits to be pushed");

	fs_list *l = NULL;
	cr_assert_eq(fs_list_conflicts(s, &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_eq(l->items[0].siblings, 3);
	fs_list_free(&l);

	/* resolving supersedes all three */
	cr_assert_eq(fs_resolve(s, "notes", "x", "merged", 6), FS_OK);
	cr_assert_eq(fs_get(s, "notes", "x", &r), FS_OK);
	cr_expect_eq(fs_record_sibling_count(r), 1);
	fs_sibling sb;
	fs_record_sibling(r, 0, &sb);
	char mine[80];
	snprintf(mine, sizeof(mine), "%s:2", fs_store_replica_id(s));
	cr_expect(strstr(sb.version, "p:1") && strstr(sb.version, "q:1") &&
	          strstr(sb.version, "b0:1") && strstr(sb.version, mine),
	          "the resolution dominates every sibling");
	fs_record_free(&r);
	cr_expect_eq(fs_resolve(s, "notes", "nope", "m", 1), FS_ERR_NOT_FOUND);

	uint64_t cp;
	cr_assert_eq(sdk_checkpoint_get(s, &cp), FS_OK);
	cr_expect_eq(cp, 5);
	free_wire(base);
	free_wire(p);
	free_wire(q);
}

/* A purge compacts the store when it closes: LMDB's compacting copy runs a
 * thread, which qemu-user 7.2 cannot run (tests/arm.sh). */
#ifndef FS_TEST_NO_THREADS
Test(sdk_store, pulling_is_idempotent_and_purge_deletes_physically)
{
	fsp_record *a = wire_record("y", "o:1", "one");
	pull_page("y", &a, 1, 3, false);
	pull_page("y", &a, 1, 3, false);
	fs_record *r = NULL;
	cr_assert_eq(fs_get(s, "notes", "y", &r), FS_OK);
	cr_expect_eq(fs_record_sibling_count(r), 1);
	fs_record_free(&r);
	cr_expect_eq(pending(), 0, "pulled values are not pushed back");

	cr_assert_eq(fs_put(s, "notes", "y", NULL, "local", 5), FS_OK);
	pull_page("y", NULL, 0, 4, true);
	cr_expect_eq(fs_get(s, "notes", "y", &r), FS_ERR_NOT_FOUND);
	cr_expect_eq(pending(), 0, "a purged record leaves nothing behind");
	free_wire(a);
}
#endif

Test(sdk_store, garbage_from_the_feed_is_skipped)
{
	fsp_record *bad = wire_record("z", "o:1", "x");
	bad->deleted = true; /* a tombstone with a payload: refused */
	pull_page("z", &bad, 1, 7, false);
	fs_record *r = NULL;
	cr_expect_eq(fs_get(s, "notes", "z", &r), FS_ERR_NOT_FOUND);
	fsp_vv_free(bad->version);
	bad->version = NULL; /* no version at all */
	bad->deleted = false;
	pull_page("z", &bad, 1, 8, false);
	cr_expect_eq(fs_get(s, "notes", "z", &r), FS_ERR_NOT_FOUND);
	free(bad);
}
