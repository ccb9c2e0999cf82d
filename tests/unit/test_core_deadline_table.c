/*
 * What Welcome carries for the tablets' deadlines (issue 13), in the shared
 * core: rules_config_to_json() gives text that rules_config_load_json()
 * reads back to the same table (equal fingerprints), and a zone rebuilt
 * from tz_tzif() bytes with tz_load_tzif() has the same offsets; bad names
 * and bad images are refused.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/calendar.h"
#include "fieldsync/rules.h"

/* Field by field: struct padding may differ between equal tables. */
static bool
same_table(const rules_config *a, const rules_config *b)
{
	for (int r = 0; r < RULE_COUNT; r++) {
		const rule_conf *x = &a->rule[r], *y = &b->rule[r];
		if (x->enabled != y->enabled || x->due.amount != y->due.amount ||
		    x->due.unit != y->due.unit || x->has_warning != y->has_warning ||
		    x->warning.amount != y->warning.amount || x->warning.unit != y->warning.unit ||
		    x->count != y->count)
			return false;
	}
	return true;
}

static void
roundtrip(const char *json)
{
	rules_config a, b;
	char err[256] = "";
	rules_config_default(&a);
	if (json != NULL)
		cr_assert(rules_config_load_json(&a, json, err, sizeof(err)), "%s", err);
	char *text = rules_config_to_json(&a);
	cr_assert_not_null(text);
	rules_config_default(&b);
	cr_assert(rules_config_load_json(&b, text, err, sizeof(err)), "%s: %s", text, err);
	cr_expect_eq(rules_fingerprint(&a, "UTC"), rules_fingerprint(&b, "UTC"), "%s", text);
	cr_expect(same_table(&a, &b), "%s", text);
	/* over another table than the defaults, too: every field is written */
	rules_config_default(&b);
	cr_assert(rules_config_load_json(&b,
	                                 "{\"quick-help\": {\"enabled\": false, \"warning\": "
	                                 "\"none\"}, \"counselling-limit\": {\"count\": 9}}",
	                                 err, sizeof(err)));
	cr_assert(rules_config_load_json(&b, text, err, sizeof(err)), "%s", err);
	cr_expect(same_table(&a, &b), "%s", text);
	free(text);
}

Test(core_deadline_table, rule_table_json_roundtrip)
{
	roundtrip(NULL);
	roundtrip("{\"quick-help\": {\"enabled\": false}}");
	roundtrip(
		"{\"quick-help\": {\"due\": \"5 days\", \"warning\": \"1 days\"},"
		" \"counselling-limit\": {\"count\": 3},"
		" \"treatment-window\": {\"due\": \"6 months\", \"warning\": \"none\", \"count\": 6},"
		" \"network-meeting\": {\"warning\": \"3 weeks\"},"
		" \"follow-up\": {\"due\": \"2 months\", \"warning\": \"2 weeks\"},"
		" \"handover\": {\"enabled\": false}}");
}

Test(core_deadline_table, zone_from_tzif_bytes)
{
	char err[256];
	fs_tz *cph = tz_load("Europe/Copenhagen", err, sizeof(err));
	size_t len = 0;
	cr_assert_not_null(cph, "%s", err);
	const uint8_t *img = tz_tzif(cph, &len);
	cr_assert(len > 44 && memcmp(img, "TZif", 4) == 0);
	fs_tz *copy = tz_load_tzif("Europe/Copenhagen", img, len, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_expect_str_eq(tz_name(copy), "Europe/Copenhagen");
	for (int64_t t = -2000000000; t < 4000000000; t += 86400 * 7 + 3601)
		cr_assert_eq(tz_offset_s(cph, t), tz_offset_s(copy, t));
	size_t len2 = 0;
	const uint8_t *img2 = tz_tzif(copy, &len2);
	cr_expect(len2 == len && memcmp(img, img2, len) == 0, "the image travels on unchanged");
	/* refused: a bad name, an empty, truncated or foreign image */
	cr_expect_null(tz_load_tzif("../etc/passwd", img, len, err, sizeof(err)));
	cr_expect_null(tz_load_tzif("Europe/Copenhagen", img, 0, err, sizeof(err)));
	cr_expect_null(tz_load_tzif("Europe/Copenhagen", img, 40, err, sizeof(err)));
	cr_expect(strstr(err, "malformed") != NULL, "%s", err);
	cr_expect_null(tz_load_tzif("Europe/Copenhagen",
	                            (const uint8_t *)"not a zone at all, "
	                                             "really not, no TZif here",
	                            43, err, sizeof(err)));
	tz_free(&copy);
	tz_free(&cph);
}

/* Case siblings that tie on the due time: the same reminder whatever order
 * the siblings come in (the daemon and a tablet store them differently). */
Test(core_deadline_table, sibling_ties_do_not_depend_on_order)
{
	Fieldsync__V1__Case a = FIELDSYNC__V1__CASE__INIT, b = FIELDSYNC__V1__CASE__INIT;
	Fieldsync__V1__Contact k = FIELDSYNC__V1__CONTACT__INIT;
	rules_config rc;
	rules_reminder ab[16], ba[16];
	fs_tz *tz = tz_load("Europe/Copenhagen", NULL, 0);
	const int64_t t = 1774436400000LL;

	cr_assert_not_null(tz);
	rules_config_default(&rc);
	a.first_contact_at_ms = b.first_contact_at_ms = t;
	a.under_18 = b.under_18 = true;
	a.contact_person = "staff-9";
	b.contact_person = "staff-1";
	a.first_contact_at_ms = t + 3600000; /* the same day: the same due */
	k.case_id = "c";
	k.kind = FIELDSYNC__V1__CONTACT__KIND__COUNSELLING;
	k.held_at_ms = t + 86400000LL * 20;
	rules_contact rcs[1] = {{"k1", &k}};
	const Fieldsync__V1__Case *o1[2] = {&a, &b}, *o2[2] = {&b, &a};
	rules_input in1 = {"c", o1, 2, rcs, 1}, in2 = {"c", o2, 2, rcs, 1};
	size_t n1 = rules_evaluate(&rc, tz, &in1, t + 86400000LL * 30, ab, 16, NULL);
	size_t n2 = rules_evaluate(&rc, tz, &in2, t + 86400000LL * 30, ba, 16, NULL);
	cr_assert_eq(n1, n2);
	cr_assert_gt(n1, 1);
	for (size_t i = 0; i < n1; i++) {
		cr_expect_str_eq(ab[i].reminder_id, ba[i].reminder_id);
		cr_expect_str_eq(ab[i].contact_person, "staff-1", "%s", ab[i].reminder_id);
		cr_expect_str_eq(ba[i].contact_person, "staff-1", "%s", ba[i].reminder_id);
		cr_expect_eq(ab[i].start_ms, ba[i].start_ms, "%s", ab[i].reminder_id);
		cr_expect_eq(ab[i].warning_at_ms, ba[i].warning_at_ms);
	}
	tz_free(&tz);
}
