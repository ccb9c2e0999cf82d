/*
 * The master-key check at start (docs/security.md, "Failure stays local"),
 * through the real daemon in production mode (CURVE, an enrolled device):
 * a store made with master key K1 and started with another key (the same
 * id with other bytes, or another id) is refused before anything is
 * served: a non-zero exit that is not a timeout, a message that names the
 * problem and never key bytes, no byte of data.mdb or keys/data.mdb
 * changed; `check-config` says the same and creates nothing. Started with
 * K1 again, every record is served. Without the check (release before it),
 * the daemon starts with the wrong key and its Pull answers empty pages
 * (every record "unreadable"), so devices would move their checkpoints
 * past data they never got.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"

typedef Fieldsync__V1__Envelope env_t;

#define K1_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define K2_HEX "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
#define N_NOTES 5

static char g_dir[512], g_data[600];

static char *
slurp(const char *path, size_t *len)
{
	char *buf = fs_test_slurp(path, 0, len);
	cr_assert_not_null(buf, "open %s", path);
	return buf;
}

static char *
write_key(const char *name, const char *line)
{
	char *p = malloc(700);
	snprintf(p, 700, "%s/%s", g_dir, name);
	cr_assert_eq(fs_test_write_file(p, line), 0);
	return p;
}

/* The bytes of the store's two environments, to compare after a refusal. */
typedef struct snapshot {
	char *data, *keys;
	size_t data_len, keys_len;
} snapshot;

static snapshot
take_snapshot(void)
{
	char p[700];
	snapshot s;
	snprintf(p, sizeof(p), "%s/data.mdb", g_data);
	s.data = slurp(p, &s.data_len);
	snprintf(p, sizeof(p), "%s/keys/data.mdb", g_data);
	s.keys = slurp(p, &s.keys_len);
	return s;
}

static void
expect_unchanged(const snapshot *before, const char *what)
{
	snapshot now = take_snapshot();
	cr_expect(now.data_len == before->data_len &&
	                  memcmp(now.data, before->data, now.data_len) == 0,
	          "%s: data.mdb is unchanged", what);
	cr_expect(now.keys_len == before->keys_len &&
	                  memcmp(now.keys, before->keys, now.keys_len) == 0,
	          "%s: keys/data.mdb is unchanged", what);
	free(now.data);
	free(now.keys);
}

/* Starts the daemon (production) with key file `key` directly; its exit
 * status (124: still running after 20 s, killed by timeout), its stderr
 * in *err (malloc'd). */
static int
start_refused(const char *key, char **err)
{
	char out[700];
	snprintf(out, sizeof(out), "%s/start.err", g_dir);
	int p1 = fs_test_free_port(), p2 = fs_test_free_port(), p3 = fs_test_free_port();
	int rc =
		fs_test_sh(NULL,
	                   "timeout 20 %s --data-dir %s --master-key-file %s --sync-endpoint "
	                   "tcp://127.0.0.1:%d --reminder-endpoint tcp://127.0.0.1:%d --ops-listen "
	                   "127.0.0.1:%d >/dev/null 2>%s",
	                   fs_test_daemon_bin(), g_data, key, p1, p2 == p1 ? p1 + 1 : p2,
	                   p3 == p1 || p3 == p2 ? p1 + 2 : p3, out);
	*err = slurp(out, NULL);
	return rc;
}

typedef fs_test_cred cred;

static cred
enroll(const char *name, const char *scopes)
{
	cred c;
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, name, scopes, "device", &c), 0,
	             "enroll %s", name);
	return c;
}

static void *
curve_dealer(void *ctx, fs_test_daemon *d, const cred *c)
{
	void *s = fs_test_curve_dealer(ctx, fs_test_daemon_endpoint(d), c);
	cr_assert_not_null(s);
	return s;
}

/* The number of records in the whole feed as s sees it. */
static size_t
pull_count(void *s)
{
	uint64_t since = 0;
	size_t n = 0;
	for (int page = 0; page < 64; page++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		e.request_id = 100 + (uint64_t)page;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r, "a Pull is answered");
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY, "%s",
		             r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR
		                     ? r->error->message
		                     : "not a PullReply");
		n += r->pull_reply->n_records;
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			return n;
	}
	cr_assert_fail("the feed does not end");
	return n;
}

Test(master_key_check, a_store_refuses_a_master_key_that_does_not_open_it, .timeout = 240)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
	char *k1 = write_key("k1.key", "k1:" K1_HEX "\n");
	char *k2 = write_key("k2.key", "k1:" K2_HEX "\n"); /* same id, other bytes */
	char *k9 = write_key("k9.key", "k9:" K2_HEX "\n"); /* another id */
	void *ctx = zmq_ctx_new();

	/* A production store made with K1, holding N_NOTES sealed records. */
	cr_assert_eq(fs_test_sh(NULL, "%s init --data-dir %s >/dev/null", FS_DAEMON_BIN, g_data),
	             0);
	cred a = enroll("tab-a", "team-a");
	const char *args[] = {"--master-key-file", k1, NULL};
	fs_test_daemon *d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d);
	void *s = curve_dealer(ctx, d, &a);
	for (int i = 0; i < N_NOTES; i++) {
		char id[32], csid[32], ver[32], text[64];
		snprintf(id, sizeof(id), "n-%d", i);
		snprintf(csid, sizeof(csid), "cs-%d", i);
		snprintf(ver, sizeof(ver), "ra:%d", i + 1);
		snprintf(text, sizeof(text), "note %d, sealed at rest", i);
		fs_test_push *p = fs_test_push_new(csid);
		fs_test_push_add(p, "note", id, "team-a", ver, false, text, strlen(text));
		env_t *r = fs_test_call(s, fs_test_push_envelope(p, 9), 10000);
		fs_test_push_free(p);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		cr_assert_eq(r->push_reply->results[0]->status,
		             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_assert_eq(pull_count(s), N_NOTES);
	zmq_close(s);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snapshot before = take_snapshot();

	/* K2 (the id of K1, other bytes): refused at start, nothing changed. */
	char *err = NULL;
	int rc = start_refused(k2, &err);
	cr_expect_neq(rc, 124, "the daemon must not start with a key that does not open the store");
	cr_expect_eq(rc, 2, "exit code 2 (FSD_EXIT_USAGE: the key given is wrong), got %d", rc);
	cr_expect(strstr(err, "does not open the key store") != NULL, "the message says why: %s",
	          err);
	cr_expect(strstr(err, K2_HEX) == NULL && strstr(err, K1_HEX) == NULL,
	          "no key bytes in the message");
	free(err);
	expect_unchanged(&before, "start with K2");

	/* A key of another id: the store's key was not given. */
	rc = start_refused(k9, &err);
	cr_expect_neq(rc, 124, "the daemon must not start without the store's master key");
	cr_expect_eq(rc, 2, "exit code 2 (FSD_EXIT_USAGE: the key given is wrong), got %d", rc);
	cr_expect(strstr(err, "\"k1\", which was not given") != NULL, "the message says why: %s",
	          err);
	free(err);
	expect_unchanged(&before, "start with k9");

	/* check-config says the same and creates nothing. */
	char out[700];
	snprintf(out, sizeof(out), "%s/check.out", g_dir);
	rc = fs_test_sh(NULL, "%s check-config --data-dir %s --master-key-file %s >%s 2>&1",
	                fs_test_daemon_bin(), g_data, k2, out);
	err = slurp(out, NULL);
	cr_expect_neq(rc, 0, "check-config fails: %s", err);
	cr_expect(strstr(err, "# check master-key   FAILED") != NULL &&
	                  strstr(err, "does not open the key store") != NULL,
	          "check-config names the problem: %s", err);
	free(err);
	expect_unchanged(&before, "check-config with K2");

	/* With K1 again: every record is served. */
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d);
	s = curve_dealer(ctx, d, &a);
	cr_expect_eq(pull_count(s), N_NOTES, "every record opens with K1");
	zmq_close(s);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);

	zmq_ctx_term(ctx);
	free(before.data);
	free(before.keys);
	fs_test_rm_rf(g_dir);
	free(k1);
	free(k2);
	free(k9);
}

/*
 * At run time: the daemon holds K1 alone while another process rewraps the
 * key store with a key it was not given (rotate-master-key with k9 first).
 * Its data keys are there but do not unwrap: that is not a purged key
 * (skipped as one unreadable record): the Pull fails UNAVAILABLE (the
 * device's cursor stays) and the daemon says it is not ready. Release
 * before: an empty PullReply past the record, and /readyz 200.
 */
Test(master_key_check, a_data_key_that_does_not_unwrap_makes_the_daemon_not_ready, .timeout = 120)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
	char *k1 = write_key("k1.key", "k1:" K1_HEX "\n");
	char *both = write_key("both.key", "k9:" K2_HEX "\nk1:" K1_HEX "\n");
	const char *args[] = {"--master-key-file", k1, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(g_data, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	fs_test_push *p = fs_test_push_new("cs-1");
	fs_test_push_add(p, "note", "n-1", "team-a", "ra:1", false, "sealed", 6);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 9), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	char *body = NULL;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/readyz", &body), 200);
	free(body);

	/* Rewrapped under k9, which the running daemon does not hold. */
	cr_assert_eq(
		fs_test_sh(NULL,
	                   "%s rotate-master-key --data-dir %s --master-key-file %s >/dev/null",
	                   FS_DAEMON_BIN, g_data, both),
		0);
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 5;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r, "the Pull is answered");
	/* not an empty page whose last_seq passes the record: UNAVAILABLE */
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR,
	             "the Pull fails rather than skipping a record whose key does not unwrap");
	if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR)
		cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	body = NULL;
	int status = fs_test_http_get(fs_test_daemon_ops_port(d), "/readyz", &body);
	cr_expect_eq(status, 503, "not ready once a data key does not unwrap: %s",
	             body != NULL ? body : "");
	cr_expect(body != NULL && strstr(body, "key store failing") != NULL, "%s",
	          body != NULL ? body : "");
	free(body);
	zmq_close(s);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&d);
	fs_test_rm_rf(g_dir);
	free(k1);
	free(both);
}
