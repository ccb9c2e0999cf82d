/*
 * The typed collections as JSON (client-sdk/src/json.c): docs/method.md's field
 * names, enums by name, integer ms, strict refusal of anything else.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/casework.pb-c.h"

static fs_err
to_payload(const char *coll, const char *json, uint8_t **p, size_t *n, char *why)
{
	return fs_json_to_payload(coll, json, strlen(json), p, n, why, 256);
}

Test(sdk_json, a_case_round_trips_with_every_field)
{
	const char *in = "{\"person\":\"PARENT\",\"anonymous\":true,\"under_18\":true,"
	                 "\"contact_person\":\"staff-7\",\"first_contact_at_ms\":1711929600123,"
	                 "\"track\":\"GROUP\",\"ended_at_ms\":1719792000000,\"follow_up_wanted\":true,"
	                 "\"follow_up_channel\":\"phone\",\"needs_further_support\":true,"
	                 "\"taken_over_by\":\"psychiatry\",\"notification_duty_informed\":true}";
	uint8_t *p = NULL;
	size_t n = 0;
	char why[256];
	cr_assert_eq(to_payload("case", in, &p, &n, why), FS_OK, "%s", why);
	Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, n, p);
	cr_assert_not_null(c);
	cr_expect_eq(c->person, FIELDSYNC__V1__CASE__PERSON__PARENT);
	cr_expect_eq(c->track, FIELDSYNC__V1__CASE__TRACK__GROUP);
	cr_expect_eq(c->first_contact_at_ms, 1711929600123LL);
	cr_expect_str_eq(c->contact_person, "staff-7");
	cr_expect(c->notification_duty_informed);
	fieldsync__v1__case__free_unpacked(c, NULL);
	char *out = NULL;
	cr_assert_eq(fs_payload_to_json("case", p, n, &out), FS_OK);
	cr_expect_str_eq(out, in, "printed with the same names, order and integer times");
	free(out);
	free(p);
}

Test(sdk_json, a_contact_with_arrays_and_who5)
{
	const char *in = "{\"case_id\":\"c-1\",\"kind\":\"NETWORK_MEETING\",\"held_at_ms\":5,"
	                 "\"next_at_ms\":9,\"participants\":[\"mother\",\"teacher\"],"
	                 "\"notes\":\"n\",\"decisions\":[\"meet again\"],\"who5\":64}";
	uint8_t *p = NULL;
	size_t n = 0;
	char why[256], *out = NULL;
	cr_assert_eq(to_payload("contact", in, &p, &n, why), FS_OK, "%s", why);
	cr_assert_eq(fs_payload_to_json("contact", p, n, &out), FS_OK);
	cr_expect_str_eq(out, in);
	free(out);
	free(p);
	/* who5 left out means "not taken" (-1), never a score of 0 */
	cr_assert_eq(to_payload("contact", "{\"case_id\":\"c\"}", &p, &n, why), FS_OK);
	Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, n, p);
	cr_assert_not_null(c);
	cr_expect_eq(c->who5, -1);
	cr_expect_eq(c->kind, FIELDSYNC__V1__CONTACT__KIND__COUNSELLING);
	fieldsync__v1__contact__free_unpacked(c, NULL);
	free(p);
}

Test(sdk_json, bad_input_is_refused_with_a_reason_that_quotes_no_value)
{
	struct {
		const char *coll, *json, *why_has;
	} bad[] = {
	    {"case", "not json", "not valid JSON"},
	    {"case", "[1,2]", "JSON object"},
	    {"case", "{\"person\":\"GRANDPARENT\"}", "person"},
	    {"case", "{\"person\":1}", "person"},
	    {"case", "{\"nickname\":\"x\"}", "unknown field"},
	    {"case", "{\"anonymous\":\"yes\"}", "anonymous"},
	    {"case", "{\"first_contact_at_ms\":1.5}", "first_contact_at_ms"},
	    {"case", "{\"first_contact_at_ms\":\"17\"}", "first_contact_at_ms"},
	    {"case", "{\"first_contact_at_ms\":-5}", "negative"},
	    {"case", "{\"track\":\"GROUP\",\"track\":\"INDIVIDUAL\"}", "twice"},
	    {"contact", "{\"kind\":\"TREATMENT\"}", "case_id"},
	    {"contact", "{\"case_id\":\"c\",\"who5\":101}", "who5"},
	    {"contact", "{\"case_id\":\"c\",\"participants\":[\"a\",3]}", "participants"},
	    {"notes", "{}", "typed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *p = (uint8_t *)"untouched";
		size_t n = 42;
		char why[256] = "";
		cr_expect_eq(to_payload(bad[i].coll, bad[i].json, &p, &n, why), FS_ERR_INVALID,
		             "case %zu must be refused", i);
		cr_expect(strstr(why, bad[i].why_has) != NULL, "case %zu: reason \"%s\"", i, why);
		cr_expect_eq(n, 42, "nothing is returned on failure");
	}
	/* the reason names the field but never echoes the value */
	char why[256];
	uint8_t *p;
	size_t n;
	cr_expect_eq(to_payload("case", "{\"person\":\"Secret Name\"}", &p, &n, why), FS_ERR_INVALID);
	cr_expect_null(strstr(why, "Secret"));
}

Test(sdk_json, an_undecodable_payload_is_reported_not_crashed_on)
{
	char *out = NULL;
	cr_expect_eq(fs_payload_to_json("case", (const uint8_t *)"\xff\xff\xff\xff", 4, &out),
	             FS_ERR_CORRUPT);
	cr_expect_null(out);
	cr_expect(fs_collection_typed("case"));
	cr_expect(fs_collection_typed("contact"));
	cr_expect_not(fs_collection_typed("notes"));
}
