/*
 * proto/keys.c, the LMDB key layouts and integer encodings both hosts
 * write: exact bytes of each (the bytes already on disk), round trips,
 * big-endian keys sorting like their numbers, and every empty, oversized
 * or malformed input refused instead of truncated.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- integers ------------------------------------------------------------ */

Test(core_keys, be64_known_bytes_and_round_trip)
{
	static const uint8_t want[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
	uint8_t b[8];
	fsk_put_be64(b, 0x0102030405060708ULL);
	cr_assert_arr_eq(b, want, 8);
	cr_assert_eq(fsk_get_be64(b), 0x0102030405060708ULL);
	fsk_put_be64(b, UINT64_MAX);
	cr_assert_eq(fsk_get_be64(b), UINT64_MAX);
	fsk_put_be64(b, 0);
	cr_assert_eq(fsk_get_be64(b), 0);
}

Test(core_keys, be64_keys_sort_like_their_numbers)
{
	uint64_t v[] = {0, 1, 255, 256, 65535, 1ULL << 32, (1ULL << 32) + 1, 1ULL << 56,
	                (1ULL << 63) - 1, 1ULL << 63, UINT64_MAX};
	size_t n = sizeof(v) / sizeof(v[0]);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < n; k++) {
			uint8_t a[8], b[8];
			fsk_put_be64(a, v[i]);
			fsk_put_be64(b, v[k]);
			int c = memcmp(a, b, 8);
			cr_assert_eq(c < 0, v[i] < v[k], "%llu vs %llu", (unsigned long long)v[i],
			             (unsigned long long)v[k]);
			cr_assert_eq(c == 0, v[i] == v[k]);
		}
}

Test(core_keys, le_known_bytes_and_round_trip)
{
	static const uint8_t want64[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	static const uint8_t want32[4] = {0x02, 0x00, 0x00, 0x00};
	uint8_t b[8], c[4];
	fsk_put_le64(b, 0x0102030405060708ULL);
	cr_assert_arr_eq(b, want64, 8);
	cr_assert_eq(fsk_get_le64(b), 0x0102030405060708ULL);
	fsk_put_le32(c, 2); /* the SDK's encrypted schema number */
	cr_assert_arr_eq(c, want32, 4);
	cr_assert_eq(fsk_get_le32(c), 2);
	fsk_put_le32(c, 0xdeadbeef);
	cr_assert_eq(fsk_get_le32(c), 0xdeadbeef);
	/* unaligned */
	uint8_t buf[9] = {0};
	fsk_put_le64(buf + 1, 42);
	cr_assert_eq(fsk_get_le64(buf + 1), 42);
	cr_assert_eq(buf[1], 42);
}

/* ---- record keys --------------------------------------------------------- */

Test(core_keys, record_key_known_bytes)
{
	uint8_t k[FSK_RECORD_KEY_MAX];
	size_t n = fsk_record_key(k, "contact", "c-1");
	cr_assert_eq(n, 11);
	cr_assert_arr_eq(k, "\x07" "contactc-1", 11);
	uint8_t p[1 + FSP_COLLECTION_MAX];
	cr_assert_eq(fsk_record_prefix(p, "contact"), 8);
	cr_assert_arr_eq(p, k, 8, "the prefix starts every key of its collection");
}

Test(core_keys, record_key_round_trip_at_the_limits)
{
	char *coll = repeat('a', FSP_COLLECTION_MAX), *id = repeat('z', FSP_ID_MAX);
	char c2[FSP_COLLECTION_MAX + 1], i2[FSP_ID_MAX + 1];
	uint8_t k[FSK_RECORD_KEY_MAX];
	size_t n = fsk_record_key(k, coll, id);
	cr_assert_eq(n, FSK_RECORD_KEY_MAX);
	cr_assert_eq(k[0], FSP_COLLECTION_MAX);
	cr_assert(fsk_record_key_split(k, n, c2, i2));
	cr_assert_str_eq(c2, coll);
	cr_assert_str_eq(i2, id);
	n = fsk_record_key(k, "n", "1");
	cr_assert_eq(n, 3);
	cr_assert(fsk_record_key_split(k, n, c2, i2));
	cr_assert_str_eq(c2, "n");
	cr_assert_str_eq(i2, "1");
	free(coll);
	free(id);
}

Test(core_keys, record_key_refuses_instead_of_truncating)
{
	char *coll = repeat('a', FSP_COLLECTION_MAX + 1), *id = repeat('z', FSP_ID_MAX + 1);
	uint8_t k[FSK_RECORD_KEY_MAX], p[1 + FSP_COLLECTION_MAX];
	memset(k, 0xAA, sizeof(k));
	cr_assert_eq(fsk_record_key(k, coll, "x"), 0);
	cr_assert_eq(fsk_record_key(k, "note", id), 0);
	cr_assert_eq(fsk_record_key(k, "", "x"), 0);
	cr_assert_eq(fsk_record_key(k, "note", ""), 0);
	cr_assert_eq(fsk_record_key(k, NULL, "x"), 0);
	cr_assert_eq(fsk_record_key(k, "note", NULL), 0);
	cr_assert_eq(fsk_record_prefix(p, coll), 0);
	cr_assert_eq(fsk_record_prefix(p, ""), 0);
	free(coll);
	free(id);
}

Test(core_keys, record_key_split_refuses_what_was_never_a_key)
{
	char c[FSP_COLLECTION_MAX + 1], i[FSP_ID_MAX + 1];
	uint8_t big[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 1];
	cr_assert_not(fsk_record_key_split(NULL, 0, c, i));
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x01", 1, c, i));
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x00xy", 3, c, i), "empty collection");
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x04note", 5, c, i), "no id");
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x09note", 5, c, i),
	              "length byte past the end");
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x04no\0ex", 7, c, i), "NUL in it");
	cr_assert_not(fsk_record_key_split((const uint8_t *)"\x04notex\0y", 8, c, i), "NUL in id");
	cr_assert_eq(c[0], '\0');
	cr_assert_eq(i[0], '\0');
	memset(big, 'a', sizeof(big));
	big[0] = FSP_COLLECTION_MAX + 1;
	cr_assert_not(fsk_record_key_split(big, 1 + FSP_COLLECTION_MAX + 2, c, i),
	              "collection over the limit");
	big[0] = FSP_COLLECTION_MAX;
	cr_assert_not(fsk_record_key_split(big, sizeof(big), c, i), "id of 129 bytes");
	cr_assert(fsk_record_key_split(big, sizeof(big) - 1, c, i));
}

/* ---- case keys ----------------------------------------------------------- */

Test(core_keys, case_key_known_bytes_and_prefix)
{
	uint8_t k[1 + FSP_ID_MAX + 300], p[1 + FSP_ID_MAX];
	size_t n = fsk_case_key(k, sizeof(k), "case-1", "c-9");
	cr_assert_eq(n, 10);
	cr_assert_arr_eq(k, "\x06" "case-1c-9", 10);
	size_t pl = fsk_case_key(p, sizeof(p), "case-1", "");
	cr_assert_eq(pl, 7);
	cr_assert_arr_eq(p, k, pl);
	cr_assert_eq(fsk_case_key(p, sizeof(p), "case-1", NULL), 7);
}

Test(core_keys, case_key_refuses_what_does_not_fit)
{
	char *long_case = repeat('c', FSP_ID_MAX + 1), *max_case = repeat('c', FSP_ID_MAX);
	uint8_t k[1 + FSP_ID_MAX + 8];
	cr_assert_eq(fsk_case_key(k, sizeof(k), long_case, ""), 0, "a case id of 129 bytes");
	cr_assert_eq(fsk_case_key(k, sizeof(k), "", "x"), 0);
	cr_assert_eq(fsk_case_key(k, sizeof(k), NULL, "x"), 0);
	cr_assert_eq(fsk_case_key(k, sizeof(k), max_case, "12345678"), sizeof(k));
	cr_assert_eq(fsk_case_key(k, sizeof(k), max_case, "123456789"), 0, "one byte too many");
	cr_assert_eq(fsk_case_key(k, 3, "abc", ""), 0, "no room for the case id");
	free(long_case);
	free(max_case);
}
