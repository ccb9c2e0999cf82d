/*
 * changeset.c: one change set applied inside a write transaction, with real
 * LMDB in a fresh temporary directory: merge results, the stored reply of a
 * retry, atomic rejection (purged record, scope not granted, reused dot)
 * and the open-conflicts counter.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsyncd.h"

static char *g_dir;
static config g_cfg;
static store *g_s;
static reminders *g_rem;

static void
setup(void)
{
	char err[300];
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	cr_assert_eq(config_load(&g_cfg, 1, (char *[]){"fieldsyncd", NULL}), CONFIG_RUN);
	g_s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(g_s);
	cr_assert_eq(reminders_new(&g_cfg, &g_rem, err, sizeof(err)), FSD_OK, "%s", err);
}

static void
teardown(void)
{
	reminders_free(&g_rem);
	store_close(&g_s);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(changeset, .init = setup, .fini = teardown);

static const peer_auth g_all = {.all_scopes = true, .may_sync = true, .name = "tab-1"};

/* Applies p's change set in a write txn of its own and commits it. */
static void
apply(fs_test_push *p, const peer_auth *peer, changeset_outcome *o)
{
	store_txn *t = NULL;
	fs_envelope *e = fs_test_push_envelope(p, 1);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, peer, e->push, o), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

static fs_push_reply *
unpack_reply(const changeset_outcome *o)
{
	cr_assert_not_null(o->packed);
	fs_push_reply *r = fieldsync__v1__push_reply__unpack(NULL, o->packed_len, o->packed);
	cr_assert_not_null(r);
	return r;
}

Test(changeset, applies_a_set_and_stores_its_reply)
{
	changeset_outcome o, again;
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "note", "n1", "team-a", "r1:1", false, "one", 3);
	fs_test_push_add(p, "note", "n2", "team-a", "r1:2", false, "two", 3);
	apply(p, &g_all, &o);
	cr_expect_eq(o.m_result, MCS_APPLIED);
	cr_expect_eq(o.m_changes[MCH_APPLIED], 2);
	cr_expect_null(o.rejected);
	fs_push_reply *r = unpack_reply(&o);
	cr_assert_eq(r->n_results, 2);
	cr_expect_eq(r->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	cr_expect_eq(r->results[0]->seq, 1);
	cr_expect_eq(r->results[1]->seq, 2);
	cr_expect_eq(r->server_seq, 2);
	fieldsync__v1__push_reply__free_unpacked(r, NULL);

	/* the record is there, its modified state with it */
	store_txn *t = NULL;
	fs_record_state *rs = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "note", "n2", &rs), FSD_OK);
	cr_expect_eq(rs->seq, 2);
	cr_assert_eq(rs->n_siblings, 1);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, "two", 3), 0);
	records_free(rs);
	store_read_end(&t);

	/* A retry gets the very same bytes and changes nothing. */
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	fs_envelope *e = fs_test_push_envelope(p, 2);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, e->push, &again), FSD_OK);
	cr_expect_eq(again.m_result, MCS_DUPLICATE);
	cr_assert_not_null(again.stored);
	cr_assert_eq(again.stored_len, o.packed_len);
	cr_expect_eq(memcmp(again.stored, o.packed, o.packed_len), 0);
	cr_expect_eq(store_last_seq(t), 2, "no new seq for a retry");
	changeset_outcome_free(&again);
	store_abort(&t);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

Test(changeset, a_duplicate_and_a_conflict)
{
	changeset_outcome o;
	fs_test_push *p = fs_test_push_new("cs-a");
	fs_test_push_add(p, "note", "n", "team-a", "r1:1", false, "a", 1);
	apply(p, &g_all, &o);
	changeset_outcome_free(&o);
	fs_test_push_free(p);

	p = fs_test_push_new("cs-b"); /* the same version again, and a concurrent one */
	fs_test_push_add(p, "note", "n", "team-a", "r1:1", false, "a", 1);
	fs_test_push_add(p, "note", "n", "team-a", "r2:1", false, "b", 1);
	apply(p, &g_all, &o);
	fs_push_reply *r = unpack_reply(&o);
	cr_assert_eq(r->n_results, 2);
	cr_expect_eq(r->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE);
	cr_expect_eq(r->results[1]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT);
	fieldsync__v1__push_reply__free_unpacked(r, NULL);
	changeset_outcome_free(&o);
	fs_test_push_free(p);

	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect_eq(changeset_conflicts_open(t), 1);
	store_read_end(&t);

	p = fs_test_push_new("cs-c"); /* a version that dominates both resolves it */
	fs_test_push_add(p, "note", "n", "team-a", "r1:1,r2:1,r3:1", false, "c", 1);
	apply(p, &g_all, &o);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect_eq(changeset_conflicts_open(t), 0);
	store_read_end(&t);
}

Test(changeset, a_set_with_one_bad_change_is_rejected_whole)
{
	changeset_outcome o;
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "note", "n", "team-a", "r1:1", false, "a", 1);
	apply(p, &g_all, &o);
	changeset_outcome_free(&o);
	fs_test_push_free(p);

	/* r1:1 again with another value: a reused dot (the merge rule's INVALID) */
	p = fs_test_push_new("cs-2");
	fs_test_push_add(p, "note", "other", "team-a", "r9:1", false, "x", 1);
	fs_test_push_add(p, "note", "n", "team-a", "r1:1", false, "different", 9);
	apply(p, &g_all, &o);
	cr_expect_eq(o.m_result, MCS_REJECTED);
	cr_expect_null(o.packed);
	cr_assert_not_null(o.rejected);
	cr_assert_eq(o.rejected->n_results, 2);
	cr_expect_eq(strncmp(o.rejected->results[1]->reason, "INVALID: ", 9), 0, "%s",
	             o.rejected->results[1]->reason);
	cr_expect_neq(strstr(o.rejected->results[0]->reason, "not applied"), NULL);
	cr_expect_eq(o.rejected->server_seq, 1);
	changeset_outcome_free(&o);
	fs_test_push_free(p);

	store_txn *t = NULL;
	fs_record_state *rs = NULL;
	const uint8_t *stored;
	size_t sl;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect_eq(records_get(t, "note", "other", &rs), FSD_NOTFOUND, "the set is atomic");
	cr_expect_eq(replies_get(t, "tab-1", "cs-2", &stored, &sl), FSD_NOTFOUND,
	             "a rejected set stores no reply (a fixed retry may apply)");
	store_read_end(&t);
}

Test(changeset, a_record_in_a_scope_not_granted_is_forbidden)
{
	changeset_outcome o;
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "note", "n", "team-b", "r1:1", false, "a", 1);
	apply(p, &g_all, &o);
	changeset_outcome_free(&o);
	fs_test_push_free(p);

	/* a device of team-a moves it into team-a: the stored record is not its own */
	peer_auth dev = {.may_sync = true, .n_scopes = 1, .name = "tab-a"};
	strcpy(dev.scopes[0], "team-a");
	p = fs_test_push_new("cs-2");
	fs_test_push_add(p, "note", "n", "team-a", "r1:2", false, "b", 1);
	apply(p, &dev, &o);
	cr_assert_not_null(o.rejected);
	cr_expect_eq(strncmp(o.rejected->results[0]->reason, "FORBIDDEN: ", 11), 0, "%s",
	             o.rejected->results[0]->reason);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

Test(changeset, a_purged_record_is_never_resurrected)
{
	changeset_outcome o;
	purge_report rep;
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "note", "n", "team-a", "r1:1", false, "a", 1);
	apply(p, &g_all, &o);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
	cr_assert_eq(purge_run(g_s, "note", "n", false, "test", &rep), FSD_OK);
	cr_expect_eq(rep.records, 1);

	p = fs_test_push_new("cs-2"); /* an old offline edit arrives after the purge */
	fs_test_push_add(p, "note", "n", "team-a", "r1:2", false, "late", 4);
	apply(p, &g_all, &o);
	cr_assert_not_null(o.rejected);
	cr_expect_str_eq(o.rejected->results[0]->reason, "INVALID: the record was purged");
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}
