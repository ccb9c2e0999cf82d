/*
 * proto/casework.c: the case a contact belongs to (the one copy both hosts
 * use to pick a contact's data key, to index it and to purge it), its
 * length check at FSP_ID_MAX, the case ids of a contact's live siblings,
 * and that the typed check and the case lookup agree on what a case id is.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/casework.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef struct {
	uint8_t *data;
	size_t len;
} packed;

static packed
contact_with_case(const char *case_id)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	c.case_id = (char *)case_id;
	c.kind = FIELDSYNC__V1__CONTACT__KIND__COUNSELLING;
	c.held_at_ms = 1714000000000;
	c.who5 = -1;
	packed p = {NULL, fieldsync__v1__contact__get_packed_size(&c)};
	p.data = malloc(p.len ? p.len : 1);
	cr_assert_not_null(p.data);
	cr_assert_eq(fieldsync__v1__contact__pack(&c, p.data), p.len);
	return p;
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

Test(core_casework, case_id_valid)
{
	char *max = repeat('c', FSP_ID_MAX), *over = repeat('c', FSP_ID_MAX + 1);
	cr_assert(fsp_case_id_valid("case-1"));
	cr_assert(fsp_case_id_valid(max));
	cr_assert_not(fsp_case_id_valid(over));
	cr_assert_not(fsp_case_id_valid(""));
	cr_assert_not(fsp_case_id_valid(NULL));
	free(max);
	free(over);
}

Test(core_casework, contact_case_id)
{
	char out[FSP_ID_MAX + 1];
	packed p = contact_with_case("case-0001");
	cr_assert(fsp_contact_case_id(p.data, p.len, out));
	cr_assert_str_eq(out, "case-0001");
	free(p.data);
}

Test(core_casework, contact_case_id_at_128_bytes_is_taken)
{
	char out[FSP_ID_MAX + 1], *id = repeat('k', FSP_ID_MAX);
	packed p = contact_with_case(id);
	cr_assert(fsp_contact_case_id(p.data, p.len, out));
	cr_assert_str_eq(out, id);
	free(p.data);
	free(id);
}

Test(core_casework, contact_case_id_of_129_bytes_is_refused)
{
	char out[FSP_ID_MAX + 1], why[200] = "", *id = repeat('k', FSP_ID_MAX + 1);
	packed p = contact_with_case(id);
	memset(out, 'x', sizeof(out));
	cr_assert_not(fsp_contact_case_id(p.data, p.len, out));
	cr_assert_eq(out[0], '\0');
	/* the typed check refuses the same contact, for the same reason */
	cr_assert_not(fsp_typed_check("contact", p.data, p.len, why, sizeof(why)));
	cr_assert(strstr(why, "case_id") != NULL, "%s", why);
	free(p.data);
	free(id);
}

Test(core_casework, contact_without_a_case_or_not_a_contact)
{
	char out[FSP_ID_MAX + 1];
	static const uint8_t garbage[] = {0xFE, 0x4B, 0x05, 0x01, 0x02};
	packed p = contact_with_case("");
	memset(out, 'x', sizeof(out));
	cr_assert_not(fsp_contact_case_id(p.data, p.len, out), "an empty case id");
	cr_assert_eq(out[0], '\0');
	free(p.data);
	cr_assert_not(fsp_contact_case_id(garbage, sizeof(garbage), out), "does not decode");
	cr_assert_eq(out[0], '\0');
	cr_assert_not(fsp_contact_case_id(NULL, 0, out), "an empty payload names no case");
	cr_assert_not(fsp_contact_case_id(NULL, 5, out));
}

Test(core_casework, typed_check_and_case_lookup_agree)
{
	/* every contact the typed check accepts names a case fsp_contact_case_id finds */
	const size_t lens[] = {1, 2, 64, FSP_ID_MAX - 1, FSP_ID_MAX, FSP_ID_MAX + 1, 200, 255};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char out[FSP_ID_MAX + 1], why[200], *id = repeat('q', lens[i]);
		packed p = contact_with_case(id);
		bool typed = fsp_typed_check("contact", p.data, p.len, why, sizeof(why));
		bool found = fsp_contact_case_id(p.data, p.len, out);
		cr_assert_eq(typed, found, "case id of %zu bytes: typed %d, found %d", lens[i], typed,
		             found);
		cr_assert_eq(found, lens[i] <= FSP_ID_MAX);
		free(p.data);
		free(id);
	}
}

Test(core_casework, contact_case_ids_of_live_siblings)
{
	packed a1 = contact_with_case("case-a"), b = contact_with_case("case-b"),
	       a2 = contact_with_case("case-a"), c = contact_with_case("case-c"),
	       none = contact_with_case("");
	Fieldsync__V1__Record r[6];
	Fieldsync__V1__Record *sib[6];
	packed all[] = {none, a1, b, a2, c};
	for (size_t i = 0; i < 5; i++) {
		fieldsync__v1__record__init(&r[i]);
		r[i].collection = (char *)"contact";
		r[i].id = (char *)"k-1";
		r[i].payload.data = all[i].data;
		r[i].payload.len = all[i].len;
		sib[i] = &r[i];
	}
	r[4].deleted = true; /* a tombstone names no case, even with bytes in it */
	fieldsync__v1__record__init(&r[5]);
	sib[5] = &r[5]; /* an empty payload: no case */
	Fieldsync__V1__RecordState rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	rs.collection = (char *)"contact";
	rs.id = (char *)"k-1";
	rs.n_siblings = 6;
	rs.siblings = sib;

	char ids[4][FSP_ID_MAX + 1];
	cr_assert_eq(fsp_contact_case_ids(&rs, ids, 4), 2);
	cr_assert_str_eq(ids[0], "case-a");
	cr_assert_str_eq(ids[1], "case-b");
	cr_assert_eq(fsp_contact_case_ids(&rs, ids, 1), 1);
	cr_assert_str_eq(ids[0], "case-a");
	cr_assert_eq(fsp_contact_case_ids(&rs, ids, 0), 0);
	cr_assert_eq(fsp_contact_case_ids(NULL, ids, 4), 0);
	for (size_t i = 0; i < 5; i++)
		free(all[i].data);
}
