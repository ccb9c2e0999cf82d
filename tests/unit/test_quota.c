/*
 * quota.c: per-device push quotas (issue 11, "bounded records"): two token
 * buckets per device, a refusal says when to retry, devices do not share
 * a bucket, and the table never tracks more devices than its cap. Time is
 * passed in, so nothing here waits.
 */
#include <criterion/criterion.h>

#include "quota.h"

#define MIN 60000

Test(quota, a_device_gets_a_minutes_change_sets_then_a_retry_time)
{
	quota *q = quota_new(0);
	uint32_t retry = 0;
	for (int i = 0; i < 3; i++)
		cr_assert(quota_take(q, "tab-a", NULL, 10, 3, 0, 1000, &retry), "set %d", i);
	cr_assert_not(quota_take(q, "tab-a", NULL, 10, 3, 0, 1000, &retry));
	/* 3 a minute: one set back every 20 s */
	cr_expect(retry > 19000 && retry <= 20001, "retry_after_ms %u", retry);
	cr_expect_not(quota_take(q, "tab-a", NULL, 10, 3, 0, 1000 + 19000, &retry));
	cr_expect(quota_take(q, "tab-a", NULL, 10, 3, 0, 1000 + 20001, &retry));
	cr_expect_eq(retry, 0);
	quota_free(&q);
	cr_expect_null(q);
}

Test(quota, bytes_per_minute_and_another_device_is_not_affected)
{
	quota *q = quota_new(0);
	uint32_t retry = 0;
	cr_assert(quota_take(q, "tab-a", NULL, 600, 0, 1000, 0, &retry));
	cr_assert_not(quota_take(q, "tab-a", NULL, 600, 0, 1000, 0, &retry));
	/* 200 bytes short at 1000 a minute: 12 s */
	cr_expect(retry >= 12000 && retry <= 12001, "retry_after_ms %u", retry);
	cr_expect(quota_take(q, "tab-b", NULL, 600, 0, 1000, 0, &retry),
	          "tab-b has its own bucket");
	cr_expect(quota_take(q, "tab-a", NULL, 600, 0, 1000, 12001, &retry));
	quota_free(&q);
}

Test(quota, a_set_larger_than_a_minute_passes_on_a_full_bucket_and_leaves_debt)
{
	quota *q = quota_new(0);
	uint32_t retry = 0;
	cr_assert(quota_take(q, "tab-a", NULL, 5000, 0, 1000, 0, &retry));
	cr_assert_not(quota_take(q, "tab-a", NULL, 1, 0, 1000, 0, &retry));
	cr_expect_eq(retry, 60000, "the wait is capped at a minute (%u)", retry);
	/* 4000 in debt, 1000 a minute: empty again after 4 minutes, then 1 byte */
	cr_expect_not(quota_take(q, "tab-a", NULL, 1, 0, 1000, 4 * MIN, &retry));
	cr_expect(quota_take(q, "tab-a", NULL, 1, 0, 1000, 4 * MIN + 61, &retry));
	quota_free(&q);
}

Test(quota, zero_switches_a_bucket_off)
{
	quota *q = quota_new(0);
	uint32_t retry = 7;
	for (int i = 0; i < 100000; i++)
		cr_assert(quota_take(q, "tab-a", NULL, 1 << 20, 0, 0, 0, &retry));
	cr_expect_eq(retry, 0);
	cr_expect_eq(quota_tracked(q), 0, "nothing is tracked without a quota");
	quota_free(&q);
}

Test(quota, the_table_is_bounded_and_forgets_the_least_recently_seen)
{
	quota *q = quota_new(4);
	uint32_t retry = 0;
	char name[32];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "dev-%d", i);
		cr_assert(quota_take(q, name, NULL, 1, 1, 0, i, &retry));
		cr_assert_leq(quota_tracked(q), 4);
	}
	/* dev-99 is still tracked (over quota); dev-0 was forgotten (full again) */
	cr_expect_not(quota_take(q, "dev-99", NULL, 1, 1, 0, 100, &retry));
	cr_expect(quota_take(q, "dev-0", NULL, 1, 1, 0, 100, &retry));
	quota_free(&q);
}

Test(quota, a_resend_of_a_charged_change_set_is_free)
{
	quota *q = quota_new(0);
	uint32_t retry = 0;
	cr_assert(quota_take(q, "tab-a", "cs-1", 10, 1, 0, 0, &retry));
	cr_expect_not(quota_take(q, "tab-a", "cs-2", 10, 1, 0, 0, &retry), "over the quota");
	cr_expect(quota_take(q, "tab-a", "cs-1", 10, 1, 0, 0, &retry),
	          "cs-1 again (its reply was lost) costs nothing");
	cr_expect(quota_take(q, "tab-b", "cs-1", 10, 1, 0, 0, &retry));
	cr_expect_not(quota_take(q, "tab-b", "cs-9", 10, 1, 0, 0, &retry),
	              "another device's set of the same id was charged to it");
	quota_free(&q);
}
