/*
 * purge.c with real LMDB and a keyring in a fresh temporary directory: the
 * purge marker, the case index, the reminders that go with a case, and
 * crypto-shredding (a purged contact's old sealed copies no longer open,
 * while its case lives on under a fresh key).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsyncd.h"

#define K1 "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char *g_dir;
static config g_cfg;
static store *g_s;
static keyring *g_kr;
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
	cr_assert_eq(keyring_open(g_dir, NULL, K1, &g_kr, err, sizeof(err)), FSD_OK, "%s", err);
	store_set_keyring(g_s, g_kr);
	cr_assert_eq(reminders_new(&g_cfg, &g_rem, err, sizeof(err)), FSD_OK, "%s", err);
}

static void
teardown(void)
{
	reminders_free(&g_rem);
	store_close(&g_s);
	keyring_close(&g_kr);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(purge, .init = setup, .fini = teardown);

static const peer_auth g_all = {.all_scopes = true, .may_sync = true, .name = "tab-1"};

static void
push(const char *cs, const char *collection, const char *id, const uint8_t *payload, size_t len)
{
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, collection, id, "team-a", "r1:1", false, payload, len);
	store_txn *t = NULL;
	changeset_outcome o;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(changeset_apply(t, g_rem, &g_cfg, &g_all, fs_test_push_envelope(p, 1)->push, &o),
	             FSD_OK);
	cr_assert_not_null(o.packed, "applied");
	cr_assert_eq(store_commit(&t), FSD_OK);
	changeset_outcome_free(&o);
	fs_test_push_free(p);
}

static void
push_case_and_contacts(void)
{
	uint8_t buf[256];
	Fieldsync__V1__Case c;
	fieldsync__v1__case__init(&c);
	c.first_contact_at_ms = clock_wall_ms() - 1000;
	push("cs-c", "case", "c1", buf, fieldsync__v1__case__pack(&c, buf));
	const char *ids[2] = {"k1", "k2"};
	for (int i = 0; i < 2; i++) {
		Fieldsync__V1__Contact k;
		fieldsync__v1__contact__init(&k);
		k.case_id = "c1";
		k.notes = (char *)ids[i];
		char cs[16];
		snprintf(cs, sizeof(cs), "cs-%s", ids[i]);
		push(cs, "contact", ids[i], buf, fieldsync__v1__contact__pack(&k, buf));
	}
}

struct ids {
	int n;
	char id[8][FSP_ID_MAX + 1];
};

static bool
collect(void *arg, const char *contact_id)
{
	struct ids *l = arg;
	if (l->n < 8)
		snprintf(l->id[l->n++], sizeof(l->id[0]), "%s", contact_id);
	return true;
}

Test(purge, a_contact_goes_and_its_case_lives_on_under_a_fresh_key)
{
	purge_report rep = {0};
	store_txn *t = NULL;
	fs_record_state *rs = NULL;
	push_case_and_contacts();

	/* an old copy of k1's sealed payload, as a backup would hold it */
	const void *v;
	size_t vl;
	uint8_t key[1 + 7 + 2] = {7, 'c', 'o', 'n', 't', 'a', 'c', 't', 'k', '1'};
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(store_kv_get(t, &records_table, key, sizeof(key), &v, &vl), FSD_OK);
	uint8_t *old = malloc(vl);
	memcpy(old, v, vl);
	size_t old_len = vl;
	store_read_end(&t);

	cr_assert_eq(purge_run(g_s, "contact", "k1", false, "alice", &rep), FSD_OK);
	cr_expect_eq(rep.records, 1);
	cr_expect_eq(rep.keys_destroyed, 1);

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "contact", "k1", &rs), FSD_OK);
	cr_expect(rs->purged);
	cr_expect_eq(rs->n_siblings, 0, "a purge marker holds no value");
	records_free(rs);
	cr_assert_eq(records_get(t, "contact", "k2", &rs), FSD_OK, "k2 opens under the new key");
	cr_assert_eq(rs->n_siblings, 1);
	records_free(rs);
	cr_assert_eq(records_get(t, "case", "c1", &rs), FSD_OK);
	records_free(rs);
	struct ids l = {0};
	cr_assert_eq(caseindex_contacts(t, "c1", collect, &l), FSD_OK);
	cr_assert_eq(l.n, 1);
	cr_expect_str_eq(l.id[0], "k2");
	store_read_end(&t);

	/* the old copy of k1 no longer opens: it was sealed with the case's old
	 * key, which is gone (the name "c:c1" now holds a fresh key) */
	/* past the record frame of one sibling (records.h) */
	cr_assert(old_len > 4 && old[0] == 0x00);
	fs_record_state *old_rs = fieldsync__v1__record_state__unpack(NULL, old_len - 4, old + 4);
	cr_assert_not_null(old_rs);
	cr_assert_eq(old_rs->n_siblings, 1);
	uint8_t *plain = NULL;
	size_t pl = 0;
	char aad[16];
	int al = snprintf(aad, sizeof(aad), "%s%c%s", "contact", 0, "k1");
	cr_expect_eq(keyring_open_value(g_kr, aad, (size_t)al, old_rs->siblings[0]->payload.data,
	                                old_rs->siblings[0]->payload.len, &plain, &pl),
	             FSD_CORRUPT);
	fieldsync__v1__record_state__free_unpacked(old_rs, NULL);
	free(old);
}

Test(purge, a_whole_case_goes_with_its_contacts_reminders_and_key)
{
	purge_report rep = {0};
	store_txn *t = NULL;
	fs_record_state *rs = NULL;
	push_case_and_contacts();

	cr_assert_eq(purge_run(g_s, "case", "c1", true, "alice", &rep), FSD_OK);
	cr_expect_eq(rep.records, 3);
	cr_expect_eq(rep.reminders, 1, "quick-help of c1");
	cr_expect_eq(rep.keys_destroyed, 1);

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	const char *ids[3][2] = {{"case", "c1"}, {"contact", "k1"}, {"contact", "k2"}};
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(records_get(t, ids[i][0], ids[i][1], &rs), FSD_OK);
		cr_expect(rs->purged, "%s/%s", ids[i][0], ids[i][1]);
		records_free(rs);
	}
	struct ids l = {0};
	cr_assert_eq(caseindex_contacts(t, "c1", collect, &l), FSD_OK);
	cr_expect_eq(l.n, 0);
	store_read_end(&t);
}
