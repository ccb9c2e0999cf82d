/*
 * libfieldsync-crypto (proto/crypto.c): sealing and opening with AES-256-GCM,
 * every way a sealed value can be damaged, key wrapping, and master key
 * files (format, permissions, no overwrite).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/crypto.h"

static const char aad[] = "contact\0c-1";
#define AAD_LEN (sizeof(aad) - 1)

static bool
contains(const uint8_t *hay, size_t hl, const uint8_t *needle, size_t nl)
{
	for (size_t i = 0; nl <= hl && i <= hl - nl; i++)
		if (memcmp(hay + i, needle, nl) == 0)
			return true;
	return false;
}

static void
key_of(uint8_t key[FSC_KEY_LEN], uint8_t fill)
{
	memset(key, fill, FSC_KEY_LEN);
}

static void
round_trip(size_t len)
{
	uint8_t key[FSC_KEY_LEN], *plain = NULL, *sealed = NULL, *back = NULL;
	size_t sl = 0, bl = 99;
	cr_assert(fsc_new_key(key));
	if (len > 0) {
		plain = malloc(len);
		cr_assert_not_null(plain);
		for (size_t i = 0; i < len; i++)
			plain[i] = (uint8_t)(i * 31 + 7);
	}
	cr_assert(fsc_seal(key, aad, AAD_LEN, plain, len, &sealed, &sl));
	cr_assert_not_null(sealed);
	cr_assert_eq(sl, len + FSC_SEAL_OVERHEAD);
	cr_expect_eq(sealed[0], 1, "format version 1");
	if (len >= 16)
		cr_expect_neq(memcmp(sealed + 13, plain, 16), 0, "the ciphertext is not the plaintext");
	cr_assert(fsc_open(key, aad, AAD_LEN, sealed, sl, &back, &bl));
	cr_assert_eq(bl, len);
	if (len == 0)
		cr_expect_null(back, "an empty plaintext opens to NULL, 0");
	else
		cr_expect_eq(memcmp(back, plain, len), 0);
	free(plain);
	free(sealed);
	free(back);
}

Test(crypto, round_trips_empty_one_byte_and_one_mebibyte)
{
	round_trip(0);
	round_trip(1);
	round_trip(1u << 20);
}

Test(crypto, seal_without_aad_opens_only_without_aad)
{
	uint8_t key[FSC_KEY_LEN], *s = NULL, *o = NULL;
	size_t sl, ol;
	key_of(key, 3);
	cr_assert(fsc_seal(key, NULL, 0, (const uint8_t *)"abc", 3, &s, &sl));
	cr_assert(fsc_open(key, NULL, 0, s, sl, &o, &ol));
	cr_expect_eq(ol, 3);
	free(o);
	o = NULL;
	cr_expect_not(fsc_open(key, "x", 1, s, sl, &o, &ol));
	cr_expect_null(o);
	free(s);
}

/* A sealed value of a 100-byte plaintext under key 1 with aad. */
static uint8_t *
sealed_sample(size_t *len)
{
	uint8_t key[FSC_KEY_LEN], plain[100], *s = NULL;
	key_of(key, 1);
	memset(plain, 'p', sizeof(plain));
	cr_assert(fsc_seal(key, aad, AAD_LEN, plain, sizeof(plain), &s, len));
	return s;
}

static bool
opens(const uint8_t *s, size_t len, uint8_t key_fill, const void *a, size_t al)
{
	uint8_t key[FSC_KEY_LEN], *o = (uint8_t *)1;
	size_t ol = 99;
	key_of(key, key_fill);
	bool ok = fsc_open(key, a, al, s, len, &o, &ol);
	if (!ok) {
		cr_expect_null(o, "a failed open leaves *out NULL");
		cr_expect_eq(ol, 0);
	}
	free(o);
	return ok;
}

Test(crypto, wrong_key_and_wrong_aad_do_not_open)
{
	size_t len;
	uint8_t *s = sealed_sample(&len);
	cr_assert(opens(s, len, 1, aad, AAD_LEN), "the sample itself opens");
	cr_expect_not(opens(s, len, 2, aad, AAD_LEN), "wrong key");
	cr_expect_not(opens(s, len, 1, "contact\0c-2", AAD_LEN), "aad of another record");
	cr_expect_not(opens(s, len, 1, "case\0c-1", 8), "aad of another collection");
	cr_expect_not(opens(s, len, 1, NULL, 0), "no aad");
	free(s);
}

Test(crypto, a_flipped_bit_anywhere_is_refused)
{
	size_t len;
	uint8_t *s = sealed_sample(&len);
	/* version, first and last nonce byte, ciphertext, first and last tag byte */
	const size_t where[] = {0, 1, 12, 13, 13 + 50, 13 + 99, len - 16, len - 1};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			s[where[i]] ^= (uint8_t)(1u << bit);
			cr_expect_not(opens(s, len, 1, aad, AAD_LEN), "flipped bit %d of byte %zu", bit,
			              where[i]);
			s[where[i]] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert(opens(s, len, 1, aad, AAD_LEN), "restored, it opens again");
	free(s);
}

Test(crypto, truncated_or_extended_input_is_refused)
{
	size_t len;
	uint8_t *s = sealed_sample(&len);
	for (size_t cut = 0; cut < len; cut += (cut < 40 ? 1 : 17))
		cr_expect_not(opens(s, cut, 1, aad, AAD_LEN), "truncated to %zu bytes", cut);
	cr_expect_not(opens(s, len - 1, 1, aad, AAD_LEN));
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, s, len);
	longer[len] = 0;
	cr_expect_not(opens(longer, len + 1, 1, aad, AAD_LEN), "a byte appended");
	cr_expect_not(opens(NULL, 0, 1, aad, AAD_LEN));
	free(longer);
	free(s);
}

Test(crypto, two_seals_of_the_same_plaintext_differ)
{
	uint8_t key[FSC_KEY_LEN], *a = NULL, *b = NULL;
	size_t al, bl;
	key_of(key, 9);
	cr_assert(fsc_seal(key, aad, AAD_LEN, (const uint8_t *)"same", 4, &a, &al));
	cr_assert(fsc_seal(key, aad, AAD_LEN, (const uint8_t *)"same", 4, &b, &bl));
	cr_assert_eq(al, bl);
	cr_expect_neq(memcmp(a + 1, b + 1, 12), 0, "fresh random nonces");
	cr_expect_neq(memcmp(a, b, al), 0);
	free(a);
	free(b);
}

Test(crypto, random_keys_are_unique)
{
	enum { N = 256 };
	static uint8_t keys[N][FSC_KEY_LEN];
	uint8_t zero[FSC_KEY_LEN] = {0};
	for (int i = 0; i < N; i++) {
		cr_assert(fsc_new_key(keys[i]));
		cr_expect_neq(memcmp(keys[i], zero, FSC_KEY_LEN), 0);
		for (int j = 0; j < i; j++)
			cr_assert_neq(memcmp(keys[i], keys[j], FSC_KEY_LEN), 0, "keys %d and %d", i, j);
	}
	cr_expect(fsc_random(NULL, 0), "zero bytes is a no-op");
}

static fsc_master
master(const char *id, uint8_t fill)
{
	fsc_master m;
	memset(&m, 0, sizeof(m));
	key_of(m.key, fill);
	snprintf(m.id, sizeof(m.id), "%s", id);
	return m;
}

Test(crypto, wrap_unwrap_and_key_id)
{
	fsc_master m1 = master("k1", 0x11), m1b = master("k1", 0x12), m2 = master("2026-11", 0x11);
	uint8_t dek[FSC_KEY_LEN], back[FSC_KEY_LEN], *w = NULL;
	size_t wl = 0;
	char id[FSC_KEY_ID_MAX + 1];

	cr_assert(fsc_new_key(dek));
	cr_assert(fsc_wrap(&m1, dek, &w, &wl));
	cr_expect_eq(wl, 2 + 2 + FSC_KEY_LEN + FSC_SEAL_OVERHEAD);
	cr_expect_not(contains(w, wl, dek, FSC_KEY_LEN), "the DEK does not appear in clear");
	cr_assert(fsc_wrapped_key_id(w, wl, id));
	cr_expect_str_eq(id, "k1");
	cr_assert(fsc_unwrap(&m1, w, wl, back));
	cr_expect_eq(memcmp(back, dek, FSC_KEY_LEN), 0);
	cr_expect_not(fsc_unwrap(&m1b, w, wl, back), "same id, other key bytes");
	cr_expect_not(fsc_unwrap(&m2, w, wl, back), "same key bytes, other id");
	for (size_t i = 0; i < wl; i++) {
		w[i] ^= 0x40;
		cr_expect_not(fsc_unwrap(&m1, w, wl, back), "byte %zu changed", i);
		w[i] ^= 0x40;
	}
	cr_expect_not(fsc_unwrap(&m1, w, wl - 1, back), "truncated");
	cr_expect_not(fsc_wrapped_key_id(w, 1, id));
	cr_expect_not(fsc_wrapped_key_id(w, 3, id));

	fsc_master bad = master("", 1);
	uint8_t *w2 = NULL;
	cr_expect_not(fsc_wrap(&bad, dek, &w2, &wl), "a master key needs an id");
	cr_expect_null(w2);

	/* a DEK sealed with the master key directly is not a wrapped key */
	uint8_t *s = NULL;
	size_t sl;
	cr_assert(fsc_seal(m1.key, "fieldsync-dek", 13, dek, FSC_KEY_LEN, &s, &sl));
	cr_expect_not(fsc_unwrap(&m1, s, sl, back));
	free(s);
	free(w);
}

/* ---- master key files --------------------------------------------------- */

static char *tmp;

static void
files_setup(void)
{
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
}

static void
files_teardown(void)
{
	fs_test_rm_rf(tmp);
	free(tmp);
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

Test(crypto_files, a_good_key_file_loads, .init = files_setup, .fini = files_teardown)
{
	fsc_master m;
	char err[256] = "";
	cr_assert(fsc_master_load_file(write_file("k", "k1:" HEX64 "\n", 0600), &m, err,
	                               sizeof(err)), "%s", err);
	cr_expect_str_eq(m.id, "k1");
	cr_expect_eq(m.key[0], 0x00);
	cr_expect_eq(m.key[1], 0x11);
	cr_expect_eq(m.key[31], 0xff, "upper-case hex is fine");
	cr_assert(fsc_master_load_file(write_file("k2", "2026-11:" HEX64, 0400), &m, err,
	                               sizeof(err)), "no newline, read-only: %s", err);
	cr_expect_str_eq(m.id, "2026-11");
	cr_assert(fsc_master_parse("a.b_c:" HEX64 "\r\n", &m, err, sizeof(err)), "%s", err);
	cr_expect_str_eq(m.id, "a.b_c");
}

static void
expect_refused(const char *text, const char *what, const char *says)
{
	fsc_master m;
	char err[256] = "";
	cr_expect_not(fsc_master_load_file(write_file("bad", text, 0600), &m, err, sizeof(err)),
	              "%s", what);
	cr_expect_not_null(strstr(err, says), "%s: the message \"%s\" says \"%s\"", what, err, says);
	cr_expect_null(strstr(err, "00112233"), "no key bytes in the message");
	cr_expect_not(fsc_master_parse(text, &m, err, sizeof(err)), "%s (parse)", what);
}

Test(crypto_files, bad_key_files_are_refused_with_a_reason, .init = files_setup,
     .fini = files_teardown)
{
	expect_refused("k1:" HEX64 "0\n", "65 digits", "exactly 64 hex digits");
	expect_refused("k1:" "00112233", "too short", "exactly 64 hex digits");
	expect_refused("k1:" "0011223344556677889Xaabbccddeeff00112233445566778899aabbccddeeff",
	               "bad hex", "not a hex digit");
	expect_refused(":" HEX64, "missing id", "no id");
	expect_refused(HEX64, "no colon", "no ':'");
	expect_refused("k 1:" HEX64, "a space in the id", "id must be");
	expect_refused("", "empty", "no ':'");
	expect_refused("k1:" HEX64 "\nk2:" HEX64 "\n", "two lines", "exactly 64 hex digits");
}

Test(crypto_files, a_key_file_others_can_read_is_refused, .init = files_setup,
     .fini = files_teardown)
{
	fsc_master m;
	char err[512] = "";
	const char *p = write_file("k", "k1:" HEX64 "\n", 0644);
	cr_expect_not(fsc_master_load_file(p, &m, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "accessible by group or others"), "%s", err);
	cr_expect_not_null(strstr(err, "0644"), "%s", err);
	cr_expect_not_null(strstr(err, "chmod 600"), "%s", err);
	p = write_file("k", "k1:" HEX64 "\n", 0640);
	cr_expect_not(fsc_master_load_file(p, &m, err, sizeof(err)), "group-readable");
	p = write_file("k", "k1:" HEX64 "\n", 0602);
	cr_expect_not(fsc_master_load_file(p, &m, err, sizeof(err)), "world-writable");

	char missing[512];
	snprintf(missing, sizeof(missing), "%s/none", tmp);
	cr_expect_not(fsc_master_load_file(missing, &m, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "cannot open"), "%s", err);
	cr_expect_not(fsc_master_load_file(tmp, &m, err, sizeof(err)), "a directory");
}

Test(crypto_files, create_writes_a_0600_key_and_refuses_to_overwrite, .init = files_setup,
     .fini = files_teardown)
{
	char path[512], err[256] = "";
	struct stat st;
	fsc_master a, b;
	snprintf(path, sizeof(path), "%s/new.key", tmp);
	cr_assert(fsc_master_create_file(path, "k7", err, sizeof(err)), "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert(fsc_master_load_file(path, &a, err, sizeof(err)), "%s", err);
	cr_expect_str_eq(a.id, "k7");

	cr_expect_not(fsc_master_create_file(path, "k8", err, sizeof(err)));
	cr_expect_not_null(strstr(err, "refusing to overwrite"), "%s", err);
	cr_assert(fsc_master_load_file(path, &b, err, sizeof(err)));
	cr_expect_str_eq(b.id, "k7", "the existing key is untouched");
	cr_expect_eq(memcmp(a.key, b.key, FSC_KEY_LEN), 0);

	char other[512];
	snprintf(other, sizeof(other), "%s/other.key", tmp);
	cr_assert(fsc_master_create_file(other, "k7", err, sizeof(err)));
	cr_assert(fsc_master_load_file(other, &b, err, sizeof(err)));
	cr_expect_neq(memcmp(a.key, b.key, FSC_KEY_LEN), 0, "each new key file is a new key");

	snprintf(other, sizeof(other), "%s/bad-id.key", tmp);
	cr_expect_not(fsc_master_create_file(other, "no:colons", err, sizeof(err)));
	cr_expect_neq(access(other, F_OK), 0, "nothing is left behind");
	cr_expect_not(fsc_master_create_file(other, "", err, sizeof(err)));

	fsc_cleanse(&a, sizeof(a));
	fsc_cleanse(&b, sizeof(b));
	uint8_t z[sizeof(a.key)] = {0};
	cr_expect_eq(memcmp(a.key, z, sizeof(z)), 0, "fsc_cleanse wipes");
}
