/*
 * The keyring's erasure is physical and its cost bounded (issue 10, break
 * 1): N data keys are made, one is destroyed, and neither its name nor its
 * wrapped bytes are left in any file of the key store; the time of the
 * destroy (delete + compaction) is printed for N = 1000 and 5000 (the
 * figures in issue 10's closing note) and must stay under 5 s. Master keys
 * with duplicate ids or all zeros are refused with a sentence (break 9).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "fieldsyncd.h"

#define K1 "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define K2 "k1:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
#define K0 "k0:0000000000000000000000000000000000000000000000000000000000000000"

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
	fs_test_rm_rf(g_dir);
	free(g_dir);
}

TestSuite(keyring_erase, .init = setup, .fini = teardown, .timeout = 240);

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
erase_among(size_t n)
{
	keyring *k = NULL;
	char err[300] = "", name[64], path[700];
	cr_assert_eq(keyring_open(g_dir, NULL, K1, &k, err, sizeof(err)), FSD_OK, "%s", err);
	for (size_t i = 0; i < n; i++) {
		uint8_t *out = NULL;
		size_t ol = 0;
		snprintf(name, sizeof(name), "c:case-%06zu", i);
		cr_assert_eq(keyring_seal(k, name, "a", 1, (const uint8_t *)"x", 1, &out, &ol),
		             FSD_OK);
		free(out);
	}
	snprintf(path, sizeof(path), "%s/keys/data.mdb", g_dir);
	size_t len = 0;
	uint8_t *before = slurp(path, &len);
	const char *victim = "c:case-000007";
	uint8_t *hit = memmem(before, len, victim, strlen(victim));
	cr_assert_not_null(hit);
	uint8_t wrapped[48];
	memcpy(wrapped, hit + strlen(victim) + 4, sizeof(wrapped)); /* inside the sealed DEK */
	free(before);

	double t0 = now_ms();
	cr_assert_eq(keyring_destroy(k, victim), FSD_OK);
	double ms = now_ms() - t0;
	fprintf(stderr, "keyring_destroy among %zu keys (delete + compaction): %.1f ms\n", n, ms);
	cr_expect_lt(ms, 5000.0);

	uint8_t *after = slurp(path, &len);
	cr_expect_null(memmem(after, len, victim, strlen(victim)), "the name is gone");
	cr_expect_null(memmem(after, len, wrapped, sizeof(wrapped)), "the wrapped bytes are gone");
	free(after);
	/* the others are all still there */
	for (size_t i = 0; i < n; i += n / 10 + 1) {
		uint8_t *out = NULL, *back = NULL;
		size_t ol = 0, bl = 0;
		snprintf(name, sizeof(name), "c:case-%06zu", i == 7 ? 8 : i);
		cr_assert_eq(keyring_seal(k, name, "a", 1, (const uint8_t *)"y", 1, &out, &ol),
		             FSD_OK);
		cr_expect_eq(keyring_open_value(k, "a", 1, out, ol, &back, &bl), FSD_OK);
		free(out);
		free(back);
	}
	keyring_close(&k);
}

Test(keyring_erase, a_destroyed_key_is_in_no_file_among_1000)
{
	erase_among(1000);
}

Test(keyring_erase, a_destroyed_key_is_in_no_file_among_5000)
{
	erase_among(5000);
}

Test(keyring_erase, duplicate_and_zero_master_keys_are_refused)
{
	keyring *k = NULL;
	char err[300] = "";
	cr_expect_neq(keyring_open(g_dir, NULL, K1 "," K2, &k, err, sizeof(err)), FSD_OK);
	cr_expect_not_null(strstr(err, "same id"), "%s", err);
	cr_expect_null(k);
	err[0] = '\0';
	cr_expect_neq(keyring_open(g_dir, NULL, K0, &k, err, sizeof(err)), FSD_OK);
	cr_expect_not_null(strstr(err, "all zeros"), "%s", err);
	cr_expect_null(k);
}
