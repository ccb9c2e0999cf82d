/*
 * fsc_uuid (proto/crypto.c), the one UUID maker of both hosts: the text
 * format (version 4 nibble, RFC 9562 variant, lowercase hex, hyphens),
 * uniqueness and spread over many draws, and failing closed when OpenSSL's
 * CSPRNG has no bytes (a RAND_METHOD that always fails is installed; each
 * Criterion test runs in its own process).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* RAND_set_rand_method: only to make RAND_bytes fail */
#include <criterion/criterion.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/crypto.h"

#define DRAWS 20000

static bool
is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void
assert_format(const char *u)
{
	cr_assert_eq(strlen(u), FSC_UUID_LEN, "\"%s\" is not 36 characters", u);
	for (size_t i = 0; i < FSC_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			cr_assert_eq(u[i], '-', "\"%s\": no hyphen at %zu", u, i);
		else
			cr_assert(is_lower_hex(u[i]), "\"%s\": not lowercase hex at %zu", u, i);
	}
	cr_assert_eq(u[14], '4', "\"%s\": version nibble is not 4", u);
	cr_assert(strchr("89ab", u[19]) != NULL, "\"%s\": variant is not 10xx", u);
}

Test(core_uuid, format)
{
	char u[FSC_UUID_LEN + 1];
	memset(u, 'x', sizeof(u));
	cr_assert(fsc_uuid(u));
	assert_format(u);
}

static int
cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, FSC_UUID_LEN + 1);
}

Test(core_uuid, unique_and_spread_over_many_draws)
{
	char(*u)[FSC_UUID_LEN + 1] = calloc(DRAWS, sizeof(*u));
	unsigned seen[FSC_UUID_LEN] = {0}; /* bit set of the hex digits seen at each position */
	cr_assert_not_null(u);
	for (size_t i = 0; i < DRAWS; i++) {
		cr_assert(fsc_uuid(u[i]));
		assert_format(u[i]);
		for (size_t k = 0; k < FSC_UUID_LEN; k++)
			if (u[i][k] != '-')
				seen[k] |= 1u << (u[i][k] <= '9' ? u[i][k] - '0' : u[i][k] - 'a' + 10);
	}
	qsort(u, DRAWS, sizeof(*u), cmp_uuid);
	for (size_t i = 1; i < DRAWS; i++)
		cr_assert_neq(memcmp(u[i - 1], u[i], sizeof(*u)), 0, "draw repeated: %s", u[i]);
	for (size_t k = 0; k < FSC_UUID_LEN; k++) {
		if (k == 8 || k == 13 || k == 18 || k == 23)
			continue;
		if (k == 14)
			cr_assert_eq(seen[k], 1u << 4, "the version position is always 4");
		else if (k == 19)
			cr_assert_eq(seen[k], 0xfu << 8, "the variant position takes exactly 8, 9, a, b");
		else
			cr_assert_eq(seen[k], 0xffffu, "position %zu does not take all 16 digits", k);
	}
	free(u);
}

/* ---- failing closed ------------------------------------------------------ */

static int
no_bytes(unsigned char *buf, int num)
{
	(void)buf;
	(void)num;
	return 0;
}

static int
no_status(void)
{
	return 0;
}

static const RAND_METHOD failing = {.bytes = no_bytes, .pseudorand = no_bytes, .status = no_status};

Test(core_uuid, fails_closed_without_randomness)
{
	char u[FSC_UUID_LEN + 1];
	uint8_t b[16];
	cr_assert_eq(RAND_set_rand_method(&failing), 1);
	cr_assert_not(fsc_random(b, sizeof(b)), "the failing method is not in use");
	memset(u, 'x', sizeof(u));
	cr_assert_not(fsc_uuid(u), "a UUID was made without random bytes");
	cr_assert_eq(u[0], '\0', "a failed fsc_uuid leaves text behind: \"%.36s\"", u);
	/* and a second try does not fall back to anything either */
	cr_assert_not(fsc_uuid(u));
	cr_assert_eq(u[0], '\0');
}
