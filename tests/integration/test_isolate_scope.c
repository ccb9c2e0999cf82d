/*
 * Issue 11 breaks 3 and 7, issue 10 break 6 and the record caps of break 2,
 * through the real daemon with CURVE and enrolled devices: a contact cannot
 * reach into another team's case (FORBIDDEN, the other scope never named),
 * refusals name no other scope and no purge, a contact naming an erased case
 * is INVALID, and one record cannot grow past its sibling cap.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;

#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

typedef fs_test_cred cred;

static char g_dir[512], g_data[600], g_key[600];
static fs_test_daemon *d;
static void *ctx;

static cred
enroll(const char *name, const char *scopes, const char *role)
{
	cred c;
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, name, scopes, role, &c), 0, "enroll %s",
	             name);
	return c;
}

static void *
curve_dealer(const cred *c, const char *endpoint)
{
	void *s = fs_test_curve_dealer(ctx, endpoint, c);
	cr_assert_not_null(s);
	return s;
}

static env_t *
push_one(void *s, const char *csid, const char *coll, const char *id, const char *scope,
         const char *version, const void *payload, size_t len)
{
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, coll, id, scope, version, false, payload, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 9), 10000);
	fs_test_push_free(p);
	return r;
}

static void
setup(void)
{
	cr_assert_eq(fs_test_dirs(g_dir, sizeof(g_dir), g_data, sizeof(g_data), g_key,
	                          sizeof(g_key), KEY_LINE, FS_DAEMON_BIN),
	             0);
	ctx = zmq_ctx_new();
}

static void
start(void)
{
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts in production mode");
}

static void
teardown(void)
{
	if (d != NULL)
		cr_expect_eq(fs_test_daemon_stop(&d), 0);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(g_dir);
}

TestSuite(isolate_scope, .init = setup, .fini = teardown, .timeout = 120);

static size_t
pack_case(uint8_t *buf)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.first_contact_at_ms = 1774447200000LL;
	c.contact_person = "s-1";
	return fieldsync__v1__case__pack(&c, buf);
}

static size_t
pack_contact(uint8_t *buf, const char *case_id)
{
	Fieldsync__V1__Contact k = FIELDSYNC__V1__CONTACT__INIT;
	k.case_id = (char *)case_id;
	k.held_at_ms = 1774447200000LL;
	k.who5 = -1;
	return fieldsync__v1__contact__pack(&k, buf);
}

static const char *
reason(env_t *r)
{
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	return r->push_reply->results[0]->reason;
}

Test(isolate_scope, issue11_break3_and_7_a_contact_cannot_reach_another_teams_case)
{
	cred a = enroll("tab-a", "team-a", "device");
	cred b = enroll("tab-b", "team-b", "device");
	start();
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	void *sb = curve_dealer(&b, fs_test_daemon_endpoint(d));
	uint8_t buf[256];
	size_t n = pack_case(buf);
	env_t *r = push_one(sa, "cs-a1", "case", "c-a", "team-a", "ra:1", buf, n);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* team-b's contact naming team-a's case: FORBIDDEN, team-a not named. */
	n = pack_contact(buf, "c-a");
	r = push_one(sb, "cs-b1", "contact", "k-b", "team-b", "rb:1", buf, n);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_eq(strncmp(reason(r), "FORBIDDEN", 9), 0, "%s", reason(r));
	cr_expect_null(strstr(reason(r), "team-a"), "%s", reason(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* Writing team-a's record from team-b: refused without naming team-a. */
	r = push_one(sb, "cs-b2", "case", "c-a", "team-b", "ra:1,rb:1", buf, n);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_null(strstr(reason(r), "team-a"), "%s", reason(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* team-a's own contact for its case is fine. */
	r = push_one(sa, "cs-a2", "contact", "k-a", "team-a", "ra:2", buf, n);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "%s",
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sa);
	zmq_close(sb);
}

Test(isolate_scope, issue10_break6_a_contact_naming_a_purged_case_is_invalid)
{
	cred a = enroll("tab-a", "team-a", "device");
	start();
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	uint8_t buf[256];
	size_t n = pack_case(buf);
	env_t *r = push_one(sa, "cs-1", "case", "c-p", "team-a", "ra:1", buf, n);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "%s purge --data-dir %s --master-key-file %s --case c-p --actor dpo >/dev/null",
	         FS_DAEMON_BIN, g_data, g_key);
	cr_assert_eq(system(cmd), 0, "the case is purged (the daemon runs)");
	zmq_close(sa);
	sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	n = pack_contact(buf, "c-p");
	r = push_one(sa, "cs-2", "contact", "k-late", "team-a", "ra:2", buf, n);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_eq(strncmp(reason(r), "INVALID", 7), 0, "%s", reason(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sa);
}

Test(isolate_scope, issue11_break2_a_record_holds_at_most_32_siblings)
{
	cred a = enroll("tab-a", "team-a", "device");
	start();
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	char ver[32], cs[32];
	for (int i = 0; i < 33; i++) {
		snprintf(ver, sizeof(ver), "r%02d:1", i);
		snprintf(cs, sizeof(cs), "cs-flood-%d", i);
		env_t *r = push_one(sa, cs, "note", "hot", "team-a", ver, "v", 1);
		cr_assert_not_null(r);
		if (i < 32) {
			cr_expect_neq(r->push_reply->results[0]->status,
			              FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED, "sibling %d",
			              i);
		} else {
			cr_expect_eq(r->push_reply->results[0]->status,
			             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
			cr_expect_not_null(strstr(reason(r), "resolve the conflict first"), "%s",
			                   reason(r));
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(sa);
}
