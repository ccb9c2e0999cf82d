/*
 * Production mode through the real daemon: CURVE with enrolled keys, the
 * ZAP handler, per-device scopes, roles, revocation of an open connection,
 * scope moves, scheduler topics, and the refusals at start-up.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
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
hello(void *s, uint64_t rid, int timeout_ms)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "forged-name"; /* never trusted */
	e.request_id = rid;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	return fs_test_call(s, &e, timeout_ms);
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

static env_t *
pull_all(void *s)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.limit = 1000;
	e.request_id = 11;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	return fs_test_call(s, &e, 10000);
}

static void
setup(void)
{
	cr_assert_eq(fs_test_dirs(g_dir, sizeof(g_dir), g_data, sizeof(g_data), g_key, sizeof(g_key),
	                          KEY_LINE, FS_DAEMON_BIN),
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

TestSuite(secure, .init = setup, .fini = teardown, .timeout = 90);

Test(secure, enrolled_devices_get_their_scopes_and_nothing_else)
{
	cred a = enroll("tab-a", "team-a", "device");
	cred b = enroll("tab-b", "team-b", "device");
	start();
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	env_t *r = hello(sa, 1, 10000);
	cr_assert_not_null(r, "an enrolled device is admitted");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	cr_assert_eq(r->welcome->n_scopes, 1);
	cr_expect_str_eq(r->welcome->scopes[0], "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	r = push_one(sa, "cs-a1", "note", "n1", "team-a", "a:1", "secret", 6);
	cr_assert_not_null(r);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* Into a scope not granted: the whole change set, marked FORBIDDEN. */
	r = push_one(sa, "cs-a2", "note", "n2", "team-b", "a:1", "x", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_eq(strncmp(r->push_reply->results[0]->reason, "FORBIDDEN", 9), 0);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* modified_by comes from the key, never from Hello. */
	r = pull_all(sa);
	cr_assert_not_null(r);
	cr_assert_eq(r->pull_reply->n_records, 1);
	cr_expect_str_eq(r->pull_reply->records[0]->siblings[0]->modified_by, "tab-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* team-b does not see team-a's record, and cannot change it. */
	void *sb = curve_dealer(&b, fs_test_daemon_endpoint(d));
	r = pull_all(sb);
	cr_assert_not_null(r);
	cr_expect_eq(r->pull_reply->n_records, 0, "the feed holds granted scopes only");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	r = push_one(sb, "cs-b1", "note", "n1", "team-b", "a:1,b:1", "take", 4);
	cr_assert_not_null(r);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED,
	             "moving another team's record into one's own scope is refused");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sa);
	zmq_close(sb);
}

Test(secure, unenrolled_revoked_and_null_peers_get_no_data)
{
	cred a = enroll("tab-a", "team-a", "device");
	start();
	/* NULL mechanism: ZAP (enforced) refuses the handshake; nothing comes back. */
	void *plain = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	env_t *r = hello(plain, 1, 1500);
	cr_expect_null(r, "a NULL-mechanism peer gets nothing");
	zmq_close(plain);

	/* A well-formed key pair that was never enrolled. */
	cred stranger = a;
	char pub[41], sec[41];
	zmq_curve_keypair(pub, sec);
	memcpy(stranger.pub, pub, 41);
	memcpy(stranger.sec, sec, 41);
	void *ss = curve_dealer(&stranger, fs_test_daemon_endpoint(d));
	cr_expect_null(hello(ss, 2, 1500), "an unenrolled key gets nothing");
	zmq_close(ss);

	/* Revocation while connected: the open connection is refused at once. */
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	r = hello(sa, 3, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_assert_eq(fs_test_sh(NULL, "%s revoke --data-dir %s --name %s >/dev/null", FS_DAEMON_BIN, g_data,
	                        "tab-a"), 0);
	r = pull_all(sa);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sa);
	/* ...and a new connection with the revoked key is not admitted. */
	sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	cr_expect_null(hello(sa, 4, 1500));
	zmq_close(sa);
}

Test(secure, a_record_that_moves_scope_is_revoked_for_the_old_scope)
{
	cred a = enroll("tab-a", "team-a", "device");
	cred c = enroll("coord", "team-a,team-b", "device");
	start();
	void *sa = curve_dealer(&a, fs_test_daemon_endpoint(d));
	void *sc = curve_dealer(&c, fs_test_daemon_endpoint(d));
	env_t *r = push_one(sa, "cs-1", "note", "m1", "team-a", "a:1", "v1", 2);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	/* The coordinator, who holds both scopes, moves it to team-b. */
	r = push_one(sc, "cs-2", "note", "m1", "team-b", "a:1,c:1", "v2", 2);
	cr_assert_not_null(r);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	r = pull_all(sa);
	cr_assert_not_null(r);
	cr_assert_eq(r->pull_reply->n_records, 1);
	cr_expect(r->pull_reply->records[0]->revoked, "team-a gets it as revoked");
	cr_expect_eq(r->pull_reply->records[0]->n_siblings, 0, "without its value");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sa);
	zmq_close(sc);
}

Test(secure, schedulers_replay_and_hear_their_own_scopes_only)
{
	cred c = enroll("coord", "team-a,team-b", "device");
	cred s = enroll("sched-a", "team-a", "scheduler");
	start();
	void *ss = curve_dealer(&s, fs_test_daemon_endpoint(d));
	env_t *r = push_one(ss, "cs-s", "note", "x", "team-a", "s:1", "x", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__FORBIDDEN, "a scheduler cannot push");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* A SUB with the scheduler's key, asking for everything. */
	void *sub = zmq_socket(ctx, ZMQ_SUB);
	int zero = 0;
	zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, s.server, 41);
	zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, s.pub, 41);
	zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, s.sec, 41);
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "reminder/", 9);
	cr_assert_eq(zmq_connect(sub, fs_test_daemon_reminder_endpoint(d)), 0);
	usleep(500000);

	void *sc = curve_dealer(&c, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Case k = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[64];
	k.first_contact_at_ms = 1774360800000LL;
	size_t len = fieldsync__v1__case__pack(&k, buf);
	fs_test_push *p = fs_test_push_new("cs-cases");
	fs_test_push_add(p, "case", "case-a", "team-a", "c:1", false, buf, len);
	fs_test_push_add(p, "case", "case-b", "team-b", "c:1", false, buf, len);
	r = fs_test_call(sc, fs_test_push_envelope(p, 5), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	int heard_a = 0, heard_b = 0;
	zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
	while (zmq_poll(&it, 1, 1500) > 0) {
		char topic[256];
		int n = zmq_recv(sub, topic, sizeof(topic) - 1, 0);
		topic[n > 0 ? n : 0] = '\0';
		zmq_msg_t m;
		zmq_msg_init(&m);
		zmq_msg_recv(&m, sub, 0);
		zmq_msg_close(&m);
		heard_a += strstr(topic, "/team-a") != NULL;
		heard_b += strstr(topic, "/team-b") != NULL;
	}
	cr_expect_gt(heard_a, 0, "the scheduler hears its scope");
	cr_expect_eq(heard_b, 0, "and never another's");

	/* Replay holds its scopes only, too. */
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 6;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	r = fs_test_call(ss, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	cr_expect_gt(r->replay_reply->n_events, 0);
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		cr_expect_str_eq(r->replay_reply->events[i]->scope, "team-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sub);
	zmq_close(ss);
	zmq_close(sc);
}

Test(secure, the_daemon_refuses_to_start_without_proper_keys)
{
	char cmd[2048], out[8192];
	/* server.key readable by others */
	char path[700];
	snprintf(path, sizeof(path), "%s/server.key", g_data);
	chmod(path, 0644);
	snprintf(cmd, sizeof(cmd),
	         "%s --data-dir %s --master-key-file %s --sync-endpoint tcp://127.0.0.1:0 "
	         "--reminder-endpoint tcp://127.0.0.1:0 --ops-listen 127.0.0.1:0 2>&1",
	         FS_DAEMON_BIN, g_data, g_key);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_expect_neq(pclose(p), 0);
	cr_expect_not_null(strstr(out, "server.key"), "names the file: %s", out);
	/* server.key missing */
	remove(path);
	p = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_expect_neq(pclose(p), 0);
	cr_expect_not_null(strstr(out, "server.key"), "names the file: %s", out);
}
