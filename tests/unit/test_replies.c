/*
 * replies (data layer): a stored change-set reply belongs to the device that
 * sent the change set (issue 11 break 6); a row of an older release (keyed
 * by changeset_id alone) goes to the first device that retries it and to no
 * other; the age-based trimming covers both kinds of rows.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/keys.h"
#include "fieldsyncd.h"

static char *g_dir;
static store *g_s;

static void
setup(void)
{
	log_set_level(LOG_WARN);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	g_s = store_open(g_dir, 16u << 20, 64u << 20);
	cr_assert_not_null(g_s);
}

static void
teardown(void)
{
	store_close(&g_s);
	fs_test_rm_rf(g_dir);
	free(g_dir);
}

TestSuite(replies, .init = setup, .fini = teardown);

static bool
got(store_txn *t, const char *device, const char *csid, const char *want)
{
	const uint8_t *d = NULL;
	size_t l = 0;
	fsd_err rc = replies_get(t, device, csid, &d, &l);
	if (want == NULL)
		return rc == FSD_NOTFOUND;
	return rc == FSD_OK && l == strlen(want) && memcmp(d, want, l) == 0;
}

Test(replies, a_reply_is_kept_per_device)
{
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(replies_put(t, "tab-a", "cs-1", (const uint8_t *)"a's", 3, 100), FSD_OK);
	cr_expect(got(t, "tab-b", "cs-1", NULL), "tab-b's cs-1 is its own, not tab-a's");
	cr_assert_eq(replies_put(t, "tab-b", "cs-1", (const uint8_t *)"b's", 3, 100), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_expect(got(t, "tab-a", "cs-1", "a's"));
	cr_expect(got(t, "tab-b", "cs-1", "b's"));
	cr_expect(got(t, "tab-c", "cs-1", NULL));
	/* the separator keeps "tab" + "-acs-1" apart from "tab-a" + "cs-1" */
	cr_expect(got(t, "tab", "-acs-1", NULL));
	cr_expect(got(t, "", "cs-1", NULL));
	store_read_end(&t);
}

/* A row as an older release wrote it: changeset_id -> [age][reply], and
 * reply_age age -> changeset_id. */
static void
put_legacy(store_txn *t, const char *csid, const char *reply)
{
	uint8_t v[64], ageb[8];
	uint64_t age = store_meta_u64(t, "reply_age") + 1;
	cr_assert_eq(store_meta_set_u64(t, "reply_age", age), FSD_OK);
	fsk_put_be64(ageb, age);
	memcpy(v, ageb, 8);
	memcpy(v + 8, reply, strlen(reply));
	cr_assert_eq(store_kv_put(t, &replies_table, csid, strlen(csid), v, 8 + strlen(reply),
	                          false),
	             FSD_OK);
	cr_assert_eq(store_kv_put(t, &replies_age_table, ageb, 8, csid, strlen(csid), false),
	             FSD_OK);
}

Test(replies, an_older_releases_reply_goes_to_one_device_only)
{
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	put_legacy(t, "cs-old", "old reply");
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_expect(got(t, "tab-a", "cs-old", "old reply"), "the first device to retry gets it");
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_expect(got(t, "tab-b", "cs-old", NULL), "another device never gets it");
	cr_expect(got(t, "tab-a", "cs-old", "old reply"), "the claimer keeps getting it");
	uint64_t n = 0;
	cr_assert_eq(store_kv_count(t, &replies_table, &n), FSD_OK);
	cr_expect_eq(n, 1, "re-keyed, not copied");
	cr_assert_eq(store_kv_count(t, &replies_age_table, &n), FSD_OK);
	cr_expect_eq(n, 1, "one age entry, pointing at the new key");
	cr_assert_eq(store_commit(&t), FSD_OK);
}

Test(replies, trimming_drops_the_oldest_of_every_kind)
{
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	put_legacy(t, "cs-old-1", "o1");
	put_legacy(t, "cs-old-2", "o2");
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_expect(got(t, "tab-a", "cs-old-2", "o2")); /* claimed, keeps its age (2) */
	cr_assert_eq(replies_put(t, "tab-a", "cs-1", (const uint8_t *)"n1", 2, 3), FSD_OK);
	cr_assert_eq(replies_put(t, "tab-b", "cs-1", (const uint8_t *)"n2", 2, 3), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_expect(got(t, "tab-c", "cs-old-1", NULL), "the oldest (a legacy row) was dropped");
	cr_expect(got(t, "tab-a", "cs-old-2", "o2"));
	cr_expect(got(t, "tab-a", "cs-1", "n1"));
	cr_expect(got(t, "tab-b", "cs-1", "n2"));
	cr_assert_eq(replies_put(t, "tab-c", "cs-9", (const uint8_t *)"n3", 2, 3), FSD_OK);
	cr_expect(got(t, "tab-a", "cs-old-2", NULL), "then the claimed one, by its old age");
	cr_expect(got(t, "tab-a", "cs-1", "n1"));
	uint64_t n = 0;
	cr_assert_eq(store_kv_count(t, &replies_table, &n), FSD_OK);
	cr_expect_eq(n, 3);
	store_abort(&t);
}
