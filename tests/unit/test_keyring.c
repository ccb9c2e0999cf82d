/*
 * keyring.c: master keys, data keys in their own store (DATA_DIR/keys),
 * sealing and opening, crypto-shredding and rewrapping. Real LMDB in a
 * fresh temporary directory per test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/seal.h"
#include "fieldsyncd.h"

#define K1 "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define K2 "k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"

static char *g_dir;

static void
setup(void)
{
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
}

static void
teardown(void)
{
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(keyring, .init = setup, .fini = teardown);

static bool
contains(const uint8_t *hay, size_t n, const char *needle)
{
	size_t l = strlen(needle);
	for (size_t i = 0; i + l <= n; i++)
		if (memcmp(hay + i, needle, l) == 0)
			return true;
	return false;
}

static keyring *
open_env(const char *keys)
{
	keyring *k = NULL;
	char err[300] = "";
	cr_assert_eq(keyring_open(g_dir, NULL, keys, &k, err, sizeof(err)), FSD_OK, "%s", err);
	cr_assert_not_null(k);
	return k;
}

Test(keyring, seals_and_opens_with_the_same_aad_only)
{
	keyring *k = open_env(K1);
	static const uint8_t msg[] = "a counselling note";
	uint8_t *sealed = NULL, *plain = NULL;
	size_t sl = 0, pl = 0;

	cr_expect_str_eq(keyring_current_id(k), "k1");
	cr_assert_eq(keyring_seal(k, "c:case-1", "aad", 3, msg, sizeof(msg), &sealed, &sl), FSD_OK);
	cr_expect(fss_is_sealed(sealed, sl));
	cr_expect(!contains(sealed, sl, "counselling"), "the value is not in the clear");

	cr_assert_eq(keyring_open_value(k, "aad", 3, sealed, sl, &plain, &pl), FSD_OK);
	cr_assert_not_null(plain);
	cr_assert_eq(pl, sizeof(msg));
	cr_expect_eq(memcmp(plain, msg, pl), 0);
	free(plain);

	/* copied elsewhere (another AAD), it does not open */
	cr_expect_eq(keyring_open_value(k, "other", 5, sealed, sl, &plain, &pl), FSD_CORRUPT);
	/* a flipped byte does not open either */
	sealed[sl - 1] ^= 1;
	cr_expect_eq(keyring_open_value(k, "aad", 3, sealed, sl, &plain, &pl), FSD_CORRUPT);
	free(sealed);
	keyring_close(&k);
	keyring_close(&k); /* NULL: no-op */
}

Test(keyring, a_plain_value_is_used_as_it_is)
{
	keyring *k = open_env(K1);
	uint8_t *out = (uint8_t *)"x";
	size_t ol = 9;
	cr_expect(!fss_is_sealed((const uint8_t *)"hello", 5));
	cr_assert_eq(keyring_open_value(k, "a", 1, (const uint8_t *)"hello", 5, &out, &ol), FSD_OK);
	cr_expect_null(out, "not sealed: nothing opened");
	cr_expect_eq(ol, 0);
	keyring_close(&k);
}

Test(keyring, an_empty_value_opens_to_an_empty_value)
{
	keyring *k = open_env(K1);
	uint8_t *sealed = NULL, *plain = NULL;
	size_t sl = 0, pl = 7;
	cr_assert_eq(keyring_seal(k, "r:note/n", "a", 1, (const uint8_t *)"", 0, &sealed, &sl), FSD_OK);
	cr_assert_eq(keyring_open_value(k, "a", 1, sealed, sl, &plain, &pl), FSD_OK);
	cr_expect_not_null(plain, "opened (not plain), though empty");
	cr_expect_eq(pl, 0);
	free(plain);
	free(sealed);
	keyring_close(&k);
}

Test(keyring, a_destroyed_key_is_gone_for_every_handle)
{
	keyring *a = open_env(K1), *b = open_env(K1);
	uint8_t *sealed = NULL, *plain = NULL;
	size_t sl = 0, pl = 0;
	cr_assert_eq(keyring_seal(a, "c:c9", "x", 1, (const uint8_t *)"v", 1, &sealed, &sl), FSD_OK);
	cr_assert_eq(keyring_open_value(b, "x", 1, sealed, sl, &plain, &pl), FSD_OK);
	free(plain);
	cr_assert_eq(keyring_destroy(a, "c:c9"), FSD_OK);
	cr_expect_eq(keyring_destroy(a, "c:c9"), FSD_OK, "destroying twice is fine");
	cr_expect_eq(keyring_open_value(b, "x", 1, sealed, sl, &plain, &pl), FSD_NOKEY,
	             "another handle sees the purge at once (no cache)");
	cr_expect_eq(keyring_open_value(NULL, "x", 1, sealed, sl, &plain, &pl), FSD_NOKEY);
	free(sealed);
	keyring_close(&a);
	keyring_close(&b);
}

Test(keyring, rewrap_moves_every_key_to_the_current_master)
{
	keyring *k = open_env(K1);
	uint8_t *s1 = NULL, *s2 = NULL, *plain = NULL;
	size_t l1 = 0, l2 = 0, pl = 0, n = 99;
	char err[300] = "";
	cr_assert_eq(keyring_seal(k, "c:a", "x", 1, (const uint8_t *)"one", 3, &s1, &l1), FSD_OK);
	cr_assert_eq(keyring_seal(k, "c:b", "x", 1, (const uint8_t *)"two", 3, &s2, &l2), FSD_OK);
	keyring_close(&k);

	k = open_env(K2 "," K1); /* the new key first */
	cr_expect_str_eq(keyring_current_id(k), "k2");
	cr_assert_eq(keyring_rewrap_all(k, &n, err, sizeof(err)), FSD_OK, "%s", err);
	cr_expect_eq(n, 2);
	cr_assert_eq(keyring_rewrap_all(k, &n, err, sizeof(err)), FSD_OK, "%s", err);
	cr_expect_eq(n, 0, "nothing left to rewrap");
	keyring_close(&k);

	k = open_env(K2); /* the old master key is no longer needed */
	cr_assert_eq(keyring_open_value(k, "x", 1, s1, l1, &plain, &pl), FSD_OK);
	cr_expect_eq(memcmp(plain, "one", 3), 0);
	free(plain);
	cr_assert_eq(keyring_open_value(k, "x", 1, s2, l2, &plain, &pl), FSD_OK);
	cr_expect_eq(memcmp(plain, "two", 3), 0);
	free(plain);
	keyring_close(&k);

	/* and the old one alone opens nothing now: the keyring is refused at
	 * open (its master-key check), with the missing key's id named */
	err[0] = '\0';
	cr_expect_eq(keyring_open(g_dir, NULL, K1, &k, err, sizeof(err)), FSD_NOKEY);
	cr_expect_null(k);
	cr_expect(strstr(err, "\"k2\", which was not given") != NULL, "%s", err);
	err[0] = '\0';
	cr_expect_eq(keyring_check_master(g_dir, NULL, K1, err, sizeof(err)), FSD_NOKEY);
	cr_expect(strstr(err, "\"k2\", which was not given") != NULL, "%s", err);
	cr_expect_eq(keyring_check_master(g_dir, NULL, K2, err, sizeof(err)), FSD_OK, "%s", err);
	free(s1);
	free(s2);
}

Test(keyring, a_malformed_sealed_value_is_corrupt_with_a_keyring_and_plain_without)
{
	keyring *k = open_env(K1);
	uint8_t *sealed = NULL, *out = NULL;
	size_t sl = 0, ol = 0;
	cr_assert_eq(keyring_seal(k, "c:case-1", "a", 1, (const uint8_t *)"v", 1, &sealed, &sl),
	             FSD_OK);
	/* cut inside the fsc_seal output: starts like a sealed value, is not one */
	size_t cut = 3 + strlen("c:case-1") + FSC_SEAL_OVERHEAD - 1;
	cr_assert_lt(cut, sl);
	cr_assert_eq(fss_classify(sealed, cut), FSS_MALFORMED);
	cr_expect_eq(keyring_open_value(k, "a", 1, sealed, cut, &out, &ol), FSD_CORRUPT);
	cr_expect_null(out);
	/* a name that runs past the end */
	static const uint8_t runs_past[] = {0xFE, 'K', 200, 'c', ':'};
	cr_expect_eq(keyring_open_value(k, "a", 1, runs_past, sizeof(runs_past), &out, &ol),
	             FSD_CORRUPT);
	/* without a keyring nothing was ever sealed: it is plaintext */
	cr_expect_eq(keyring_open_value(NULL, "a", 1, sealed, cut, &out, &ol), FSD_OK);
	cr_expect_null(out, "plain: use it as it is");
	/* and the whole value still opens */
	cr_assert_eq(keyring_open_value(k, "a", 1, sealed, sl, &out, &ol), FSD_OK);
	cr_expect_eq(ol, 1);
	free(out);
	free(sealed);

	/* through a store: the same answers */
	store *s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	store_txn *t = NULL;
	cr_assert_not_null(s);
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	cr_expect_eq(keyring_txn_unseal(t, "a", 1, runs_past, sizeof(runs_past), &out, &ol), FSD_OK,
	             "no keyring on the store: plain");
	cr_expect_eq(ol, sizeof(runs_past));
	free(out);
	store_set_keyring(s, k);
	cr_expect_eq(keyring_txn_unseal(t, "a", 1, runs_past, sizeof(runs_past), &out, &ol),
	             FSD_CORRUPT);
	store_read_end(&t);
	store_close(&s);
	keyring_close(&k);
}

Test(keyring, bad_master_keys_are_refused_with_a_sentence)
{
	keyring *k = NULL;
	char err[300] = "";
	cr_expect_neq(keyring_open(g_dir, NULL, "k1:nothex", &k, err, sizeof(err)), FSD_OK);
	cr_expect_null(k);
	cr_expect_neq(strstr(err, "FIELDSYNC_MASTER_KEY"), NULL, "%s", err);
	err[0] = '\0';
	cr_expect_neq(keyring_open(g_dir, NULL, NULL, &k, err, sizeof(err)), FSD_OK);
	cr_expect_neq(strstr(err, "no master key"), NULL, "%s", err);
}

Test(keyring, without_a_keyring_the_store_keeps_values_as_they_are)
{
	store *s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	store_txn *t = NULL;
	uint8_t *out = NULL, *back = NULL;
	size_t ol = 0, bl = 0;
	cr_assert_not_null(s);
	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	cr_assert_eq(keyring_txn_seal(t, "c:x", "k", 1, (const uint8_t *)"row", 3, &out, &ol), FSD_OK);
	cr_expect_eq(ol, 3);
	cr_expect_eq(memcmp(out, "row", 3), 0);
	cr_assert_eq(keyring_txn_unseal(t, "k", 1, out, ol, &back, &bl), FSD_OK);
	cr_expect_eq(bl, 3);
	free(out);
	free(back);

	keyring *k = open_env(K1);
	store_set_keyring(s, k);
	cr_assert_eq(keyring_txn_seal(t, "c:x", "k", 1, (const uint8_t *)"row", 3, &out, &ol), FSD_OK);
	cr_expect(fss_is_sealed(out, ol));
	cr_assert_eq(keyring_txn_unseal(t, "k", 1, out, ol, &back, &bl), FSD_OK);
	cr_expect_eq(bl, 3);
	cr_expect_eq(memcmp(back, "row", 3), 0);
	free(back);
	cr_expect_eq(keyring_txn_unseal(t, "other", 5, out, ol, &back, &bl), FSD_CORRUPT);
	free(out);
	store_abort(&t);
	store_close(&s);
	keyring_close(&k);
}
