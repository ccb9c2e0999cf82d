/*
 * proto/seal.c, the sealed-value format and the data-key names both hosts
 * write: the exact header bytes of a known value, round trips through a
 * DEK, the value the hosts assembled by hand (magic, length, name, fsc_seal
 * output) opening with fss_open and the other way round, every truncated,
 * oversized or merely magic-prefixed input refused, and the names: which
 * key seals a case, a contact (its case's, unless its case id is invalid)
 * and any other record.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/seal.h"
#include "fieldsync/v1/casework.pb-c.h"

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
dek_of(uint8_t dek[FSC_KEY_LEN], uint8_t fill)
{
	memset(dek, fill, FSC_KEY_LEN);
}

/* ---- the framing -------------------------------------------------------- */

Test(core_seal, known_header_bytes)
{
	uint8_t body[FSC_SEAL_OVERHEAD], *v = NULL;
	size_t vl = 0;
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(0xA0 + i);
	cr_assert(fss_frame("c:case-1", body, sizeof(body), &v, &vl));
	static const uint8_t head[] = {0xFE, 'K', 8, 'c', ':', 'c', 'a', 's', 'e', '-', '1'};
	cr_assert_eq(vl, sizeof(head) + sizeof(body));
	cr_assert_arr_eq(v, head, sizeof(head));
	cr_assert_arr_eq(v + sizeof(head), body, sizeof(body));

	fss_parts p;
	cr_assert(fss_parse(v, vl, &p));
	cr_assert_str_eq(p.name, "c:case-1");
	cr_assert_eq(p.name_len, 8);
	cr_assert_eq(p.body, v + sizeof(head), "the body is a view into the value");
	cr_assert_eq(p.body_len, sizeof(body));
	cr_assert_eq(fss_classify(v, vl), FSS_SEALED);
	cr_assert(fss_is_sealed(v, vl));
	cr_assert(fss_sealed_under(v, vl, "c:case-1"));
	cr_assert_not(fss_sealed_under(v, vl, "c:case-"));
	cr_assert_not(fss_sealed_under(v, vl, "c:case-12"));
	cr_assert_not(fss_sealed_under(v, vl, NULL));
	free(v);
}

Test(core_seal, plain_values_are_plain)
{
	static const uint8_t proto[] = {0x0a, 0x06, 'c', 'a', 's', 'e', '-', '1'};
	static const uint8_t fe[] = {0xFE};
	static const uint8_t fe_other[] = {0xFE, 'k', 1, 'x'};
	cr_assert_eq(fss_classify(NULL, 0), FSS_PLAIN);
	cr_assert_eq(fss_classify((const uint8_t *)"", 0), FSS_PLAIN);
	cr_assert_eq(fss_classify(proto, sizeof(proto)), FSS_PLAIN);
	cr_assert_eq(fss_classify(fe, sizeof(fe)), FSS_PLAIN);
	cr_assert_eq(fss_classify(fe_other, sizeof(fe_other)), FSS_PLAIN);
	cr_assert_not(fss_is_sealed(proto, sizeof(proto)));
}

Test(core_seal, magic_prefix_whose_name_runs_past_the_end_is_not_sealed)
{
	/* the daemon's old check took this one (len >= 3 + name length) */
	uint8_t v[3 + 5 + FSC_SEAL_OVERHEAD];
	fss_parts p;
	memset(v, 'x', sizeof(v));
	v[0] = 0xFE;
	v[1] = 'K';
	v[2] = 200; /* declares a 200-byte name in a 37-byte value */
	cr_assert_eq(fss_classify(v, sizeof(v)), FSS_MALFORMED);
	cr_assert_not(fss_is_sealed(v, sizeof(v)));
	cr_assert_not(fss_parse(v, sizeof(v), &p));
	cr_assert_eq(p.name[0], '\0');
	cr_assert_null(p.body);
	/* a name that fits but leaves no room for a whole fsc_seal output */
	v[2] = 5;
	cr_assert(fss_is_sealed(v, sizeof(v)));
	for (size_t len = 2; len < sizeof(v); len++)
		cr_assert_eq(fss_classify(v, len), FSS_MALFORMED, "%zu bytes", len);
	/* two magic bytes alone, a zero-length name, a NUL in the name */
	cr_assert_eq(fss_classify(v, 2), FSS_MALFORMED);
	v[2] = 0;
	cr_assert_eq(fss_classify(v, sizeof(v)), FSS_MALFORMED);
	v[2] = 5;
	v[5] = '\0';
	cr_assert_eq(fss_classify(v, sizeof(v)), FSS_MALFORMED);
}

Test(core_seal, frame_refuses_bad_names_and_short_bodies)
{
	uint8_t body[FSC_SEAL_OVERHEAD] = {1}, *v = (uint8_t *)"sentinel";
	size_t vl = 7;
	char *n255 = repeat('n', FSS_NAME_MAX), *n256 = repeat('n', FSS_NAME_MAX + 1);
	cr_assert_not(fss_frame("", body, sizeof(body), &v, &vl));
	cr_assert_null(v);
	cr_assert_eq(vl, 0);
	cr_assert_not(fss_frame(NULL, body, sizeof(body), &v, &vl));
	cr_assert_not(fss_frame(n256, body, sizeof(body), &v, &vl), "a 256-byte name");
	cr_assert_not(fss_frame("c:x", body, sizeof(body) - 1, &v, &vl), "a short body");
	cr_assert_not(fss_frame("c:x", NULL, 0, &v, &vl));
	cr_assert(fss_frame(n255, body, sizeof(body), &v, &vl), "a 255-byte name");
	cr_assert_eq(v[2], 255);
	fss_parts p;
	cr_assert(fss_parse(v, vl, &p));
	cr_assert_str_eq(p.name, n255);
	free(v);
	free(n255);
	free(n256);
}

/* ---- sealing with a DEK --------------------------------------------------- */

Test(core_seal, seal_open_round_trip)
{
	uint8_t dek[FSC_KEY_LEN], aad[FSS_RECORD_AAD_MAX], *v = NULL, *back = NULL;
	static const uint8_t plain[] = "a contact's notes";
	size_t vl = 0, bl = 0, al = fss_record_aad(aad, "contact", "k-1");
	cr_assert(fsc_new_key(dek));
	cr_assert(fss_seal(dek, "c:case-1", aad, al, plain, sizeof(plain), &v, &vl));
	cr_assert_eq(vl, 3 + 8 + sizeof(plain) + FSC_SEAL_OVERHEAD);
	cr_assert_arr_eq(v, "\xFE" "K\x08" "c:case-1", 11);
	cr_assert(fss_sealed_under(v, vl, "c:case-1"));
	cr_assert(fss_open(dek, aad, al, v, vl, &back, &bl));
	cr_assert_eq(bl, sizeof(plain));
	cr_assert_arr_eq(back, plain, bl);
	free(back);
	free(v);
}

Test(core_seal, empty_plaintext_round_trip)
{
	uint8_t dek[FSC_KEY_LEN], *v = NULL, *back = (uint8_t *)"x";
	size_t vl = 0, bl = 9;
	dek_of(dek, 7);
	cr_assert(fss_seal(dek, "r:note/n-1", "note\0n-1", 8, NULL, 0, &v, &vl));
	cr_assert_eq(vl, 3 + 10 + FSC_SEAL_OVERHEAD);
	cr_assert(fss_open(dek, "note\0n-1", 8, v, vl, &back, &bl));
	cr_assert_null(back);
	cr_assert_eq(bl, 0);
	free(v);
}

Test(core_seal, open_refuses_wrong_key_aad_tampering_and_truncation)
{
	uint8_t dek[FSC_KEY_LEN], other[FSC_KEY_LEN], *v = NULL, *back = NULL;
	size_t vl = 0, bl = 0;
	static const uint8_t plain[] = "payload";
	dek_of(dek, 1);
	dek_of(other, 2);
	cr_assert(fss_seal(dek, "r:note/n-1", "note\0n-1", 8, plain, sizeof(plain), &v, &vl));
	cr_assert_not(fss_open(other, "note\0n-1", 8, v, vl, &back, &bl), "wrong DEK");
	cr_assert_null(back);
	cr_assert_not(fss_open(dek, "note\0n-2", 8, v, vl, &back, &bl), "moved to another record");
	cr_assert_not(fss_open(dek, "note", 4, v, vl, &back, &bl), "a shorter AAD");
	for (size_t len = 0; len < vl; len++) {
		cr_assert_not(fss_open(dek, "note\0n-1", 8, v, len, &back, &bl), "cut to %zu bytes", len);
		cr_assert_null(back);
		cr_assert_eq(bl, 0);
	}
	/* The name is not authenticated: it only says which DEK to fetch, and a
	 * changed name makes the host fetch another key. Every other byte is. */
	for (size_t i = 0; i < vl; i++) {
		if (i >= 3 && i < 3 + 10)
			continue;
		v[i] ^= 0x01;
		bool ok = fss_open(dek, "note\0n-1", 8, v, vl, &back, &bl);
		v[i] ^= 0x01;
		cr_assert_not(ok, "a flipped bit at %zu opens", i);
	}
	v[5] ^= 0x01;
	cr_assert_not(fss_sealed_under(v, vl, "r:note/n-1"), "a changed name names another key");
	v[5] ^= 0x01;
	cr_assert(fss_open(dek, "note\0n-1", 8, v, vl, &back, &bl));
	free(back);
	free(v);
}

Test(core_seal, seal_refuses_bad_names)
{
	uint8_t dek[FSC_KEY_LEN], *v = (uint8_t *)"sentinel";
	size_t vl = 5;
	char *n256 = repeat('n', FSS_NAME_MAX + 1);
	dek_of(dek, 3);
	cr_assert_not(fss_seal(dek, "", NULL, 0, (const uint8_t *)"x", 1, &v, &vl));
	cr_assert_null(v);
	cr_assert_eq(vl, 0);
	cr_assert_not(fss_seal(dek, NULL, NULL, 0, (const uint8_t *)"x", 1, &v, &vl));
	cr_assert_not(fss_seal(dek, n256, NULL, 0, (const uint8_t *)"x", 1, &v, &vl));
	free(n256);
}

/* What the daemon's keyring_seal and the SDK's seal_value wrote by hand:
 * the bytes on disk today. They must open with fss_open, and fss_seal's
 * output must be exactly that layout (fsc_open on the body opens it). */
Test(core_seal, same_bytes_as_the_hosts_wrote)
{
	uint8_t dek[FSC_KEY_LEN], *body = NULL, *v = NULL, *back = NULL;
	size_t bl = 0, vl = 0, pl = 0;
	static const char name[] = "r:note/n-1";
	static const uint8_t aad[] = "note\0n-1", plain[] = {1, 2, 3, 4};
	dek_of(dek, 9);
	cr_assert(fsc_seal(dek, aad, 8, plain, sizeof(plain), &body, &bl));
	size_t nl = strlen(name), hl = 3 + nl + bl;
	uint8_t *hand = malloc(hl);
	cr_assert_not_null(hand);
	hand[0] = 0xFE;
	hand[1] = 'K';
	hand[2] = (uint8_t)nl;
	memcpy(hand + 3, name, nl);
	memcpy(hand + 3 + nl, body, bl);
	cr_assert(fss_open(dek, aad, 8, hand, hl, &back, &pl));
	cr_assert_eq(pl, sizeof(plain));
	cr_assert_arr_eq(back, plain, pl);
	free(back);
	cr_assert(fss_frame(name, body, bl, &v, &vl));
	cr_assert_eq(vl, hl);
	cr_assert_arr_eq(v, hand, hl, "fss_frame makes the very bytes");
	free(v);

	cr_assert(fss_seal(dek, name, aad, 8, plain, sizeof(plain), &v, &vl));
	cr_assert_eq(vl, hl);
	cr_assert_arr_eq(v, hand, 3 + nl, "the same header");
	cr_assert(fsc_open(dek, aad, 8, v + 3 + nl, vl - 3 - nl, &back, &pl));
	cr_assert_arr_eq(back, plain, sizeof(plain));
	free(back);
	free(v);
	free(hand);
	free(body);
}

/* ---- data-key names and AAD ---------------------------------------------- */

static uint8_t *
contact_payload(const char *case_id, size_t *len)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	c.case_id = (char *)case_id;
	c.who5 = 50;
	*len = fieldsync__v1__contact__get_packed_size(&c);
	uint8_t *p = malloc(*len ? *len : 1);
	cr_assert_not_null(p);
	fieldsync__v1__contact__pack(&c, p);
	return p;
}

Test(core_seal, dek_names)
{
	char n[FSS_DEK_NAME_MAX + 1];
	char *id128 = repeat('i', FSP_ID_MAX), *id129 = repeat('i', FSP_ID_MAX + 1);
	char *coll64 = repeat('c', FSP_COLLECTION_MAX);
	cr_assert(fss_dek_case("case-1", n));
	cr_assert_str_eq(n, "c:case-1");
	cr_assert(fss_dek_record("note", "n-1", n));
	cr_assert_str_eq(n, "r:note/n-1");
	cr_assert(fss_dek_record("note", "a/b", n), "an id may hold '/'");
	cr_assert_str_eq(n, "r:note/a/b");
	cr_assert(fss_dek_record(coll64, id128, n), "the longest name fits");
	cr_assert_eq(strlen(n), FSS_DEK_NAME_MAX);

	cr_assert_not(fss_dek_case(id129, n));
	cr_assert_eq(n[0], '\0');
	cr_assert_not(fss_dek_case("", n));
	cr_assert_not(fss_dek_case(NULL, n));
	cr_assert_not(fss_dek_record("note", id129, n));
	cr_assert_eq(n[0], '\0');
	cr_assert_not(fss_dek_record("note", "", n));
	cr_assert_not(fss_dek_record("no/te", "x", n), "a '/' in the collection would be ambiguous");
	cr_assert_not(fss_dek_record("Note", "x", n));
	cr_assert_not(fss_dek_record(NULL, "x", n));
	free(id128);
	free(id129);
	free(coll64);
}

Test(core_seal, which_key_seals_a_record)
{
	char n[FSS_DEK_NAME_MAX + 1], *id129 = repeat('k', FSP_ID_MAX + 1);
	size_t l = 0;
	uint8_t *p;

	cr_assert(fss_dek_for("case", "case-1", NULL, 0, n));
	cr_assert_str_eq(n, "c:case-1", "a case: its own case key");

	p = contact_payload("case-1", &l);
	cr_assert(fss_dek_for("contact", "k-1", p, l, n));
	cr_assert_str_eq(n, "c:case-1", "a contact: its case's key");
	cr_assert(fss_dek_for("note", "k-1", p, l, n));
	cr_assert_str_eq(n, "r:note/k-1", "the same bytes in another collection");
	free(p);

	p = contact_payload(id129, &l);
	cr_assert(fss_dek_for("contact", "k-1", p, l, n));
	cr_assert_str_eq(n, "r:contact/k-1", "a case id of 129 bytes is not a case");
	free(p);

	p = contact_payload("", &l);
	cr_assert(fss_dek_for("contact", "k-1", p, l, n));
	cr_assert_str_eq(n, "r:contact/k-1", "a contact without a case");
	free(p);

	static const uint8_t junk[] = {0xFF, 0xFF, 0xFF};
	cr_assert(fss_dek_for("contact", "k-1", junk, sizeof(junk), n));
	cr_assert_str_eq(n, "r:contact/k-1", "a payload that does not decode");
	cr_assert(fss_dek_for("contact", "k-1", NULL, 0, n));
	cr_assert_str_eq(n, "r:contact/k-1");

	cr_assert_not(fss_dek_for("case", id129, NULL, 0, n));
	cr_assert_eq(n[0], '\0');
	cr_assert_not(fss_dek_for("", "x", NULL, 0, n));
	free(id129);
}

Test(core_seal, record_aad)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	char *coll64 = repeat('c', FSP_COLLECTION_MAX), *id128 = repeat('i', FSP_ID_MAX);
	char *id129 = repeat('i', FSP_ID_MAX + 1);
	size_t al = fss_record_aad(aad, "contact", "c-1");
	cr_assert_eq(al, 11);
	cr_assert_arr_eq(aad, "contact\0c-1", 11);
	cr_assert_eq(fss_record_aad(aad, coll64, id128), FSS_RECORD_AAD_MAX);
	cr_assert_eq(fss_record_aad(aad, "contact", id129), 0);
	cr_assert_eq(fss_record_aad(aad, "", "x"), 0);
	cr_assert_eq(fss_record_aad(aad, "note", ""), 0);
	cr_assert_eq(fss_record_aad(aad, NULL, "x"), 0);
	free(coll64);
	free(id128);
	free(id129);
}
