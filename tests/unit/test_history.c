/*
 * changeset.c's history rule (PROTOCOL.md §3; docs/protocol-notes.md
 * "Replica binding and DEFERRED"), one verdict at a time, with real LMDB:
 * a device claims its replica by advancing it; another device's new dot is
 * DEFERRED (history not held yet) or REJECTED (advancing another device's
 * replica, absurd jumps); two unbound new dots are ambiguous (DEFERRED);
 * a --dev peer with no name has no identity but still meets the limits.
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

TestSuite(history, .init = setup, .fini = teardown);

static peer_auth
peer(const char *name)
{
	peer_auth p = {.all_scopes = true, .may_sync = true};
	snprintf(p.name, sizeof(p.name), "%s", name);
	return p;
}

/* Pushes one note as `who`; the status, and the reason in why. */
static int
push(const char *who, const char *id, const char *version, char *why, size_t len)
{
	static int n;
	char csid[32];
	changeset_outcome o;
	store_txn *t = NULL;
	peer_auth p = peer(who);
	snprintf(csid, sizeof(csid), "cs-%d", ++n);
	fs_test_push *fp = fs_test_push_new(csid);
	fs_test_push_add(fp, "note", id, "team-a", version, false, "v", 1);
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &p, fs_test_push_envelope(fp, 1)->push, &o),
	             FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	int st;
	why[0] = '\0';
	if (o.rejected != NULL) {
		st = o.rejected->results[0]->status;
		snprintf(why, len, "%s", o.rejected->results[0]->reason);
	} else {
		fs_push_reply *r = fieldsync__v1__push_reply__unpack(NULL, o.packed_len, o.packed);
		cr_assert_not_null(r);
		st = r->results[0]->status;
		fieldsync__v1__push_reply__free_unpacked(r, NULL);
	}
	changeset_outcome_free(&o);
	fs_test_push_free(fp);
	return st;
}

#define APPLIED FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED
#define REJECTED FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED

static bool
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

Test(history, a_replica_belongs_to_the_device_that_advanced_it_first)
{
	char why[320];
	cr_assert_eq(push("ra", "n1", "ra:1", why, sizeof(why)), APPLIED, "%s", why);
	/* rb builds on ra's history the daemon does not hold: DEFERRED */
	cr_expect_eq(push("rb", "n1", "ra:5,rb:1", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "DEFERRED: "), "%s", why);
	/* rb advancing ra's replica with no dot of its own: REJECTED */
	cr_expect_eq(push("rb", "n1", "ra:2", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "INVALID: the version advances a replica of another device"), "%s",
	          why);
	cr_expect_null(strstr(why, "ra"), "no replica or device named: %s", why);
	/* building on what the record holds is fine */
	cr_expect_eq(push("rb", "n1", "ra:1,rb:1", why, sizeof(why)), APPLIED, "%s", why);
	cr_expect_eq(push("ra", "n1", "ra:2,rb:1", why, sizeof(why)), APPLIED, "%s", why);
	/* absurd jumps: its own far above the record, another's far above its max */
	cr_expect_eq(push("ra", "n1", "ra:70000,rb:1", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "INVALID: the version claims history"), "%s", why);
	cr_expect_eq(push("rb", "n2", "ra:70000,rb:1", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "INVALID: the version claims history"), "%s", why);
}

Test(history, an_enrolled_device_claims_the_one_unbound_new_dot)
{
	char why[320];
	/* two replicas nobody owns yet: which is the device's? DEFERRED */
	cr_expect_eq(push("tab-1", "n1", "x1:1,x2:1", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "DEFERRED: "), "%s", why);
	cr_expect_eq(push("tab-1", "n1", "x1:1", why, sizeof(why)), APPLIED, "%s", why);
	cr_expect_eq(push("tab-2", "n1", "x1:2", why, sizeof(why)), REJECTED, "x1 is tab-1's");
	cr_expect_eq(push("tab-2", "n1", "x1:1,y:1", why, sizeof(why)), APPLIED, "%s", why);
	cr_expect_eq(push("tab-1", "n1", "x1:2,y:1", why, sizeof(why)), APPLIED, "%s", why);
	/* a reinstalled tablet: a new replica of the same device */
	cr_expect_eq(push("tab-1", "n1", "x1:2,x3:1,y:1", why, sizeof(why)), APPLIED, "%s", why);
}

Test(history, a_peer_without_a_name_meets_the_limits_only)
{
	char why[320];
	cr_assert_eq(push("ra", "n1", "ra:1", why, sizeof(why)), APPLIED, "%s", why);
	cr_expect_eq(push("", "n1", "ra:2,rb:1", why, sizeof(why)), APPLIED, "%s", why);
	cr_expect_eq(push("", "n1", "ra:70000,rb:1", why, sizeof(why)), REJECTED);
	cr_expect(starts(why, "INVALID: the version claims history"), "%s", why);
}
