/*
 * Issue 11 break 2 ("one record can stop a whole team syncing"), through
 * the real daemon with CURVE and enrolled devices: several tablets push
 * concurrent versions of one hot record at once. The record never holds
 * more than --max-record-bytes (8 MiB) or --max-siblings (32); every
 * version past a cap is REJECTED with "resolve the conflict first"; and
 * every tablet of the scope, flooders and a quiet colleague alike, still
 * completes its sync with the real SDK and gets the record and what came
 * after it. Release 1 took all 70 versions (a 70 MB record that no tablet
 * could pull again: its page is past the SDK's receive limit).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"
#include "fieldsync/fieldsync.h"
#include "tablet.h"

typedef Fieldsync__V1__Envelope env_t;

#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define DEVICES 5
#define FLOOD 70
#define MB 1000000 /* "about 1 MB": under --max-payload-bytes (1 MiB) */

typedef fs_test_cred cred;

static char g_dir[512], g_data[600], g_key[600];
static fs_test_daemon *d;
static void *ctx;

static cred
enroll(const char *name)
{
	cred c;
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, name, "team-a", "device", &c), 0,
	             "enroll %s", name);
	return c;
}

static void *
curve_dealer(const cred *c)
{
	void *s = fs_test_curve_dealer(ctx, fs_test_daemon_endpoint(d), c);
	cr_assert_not_null(s);
	return s;
}

/* An encrypted tablet store holding the credential in file c->file. */
static fs_store *
tablet(const char *name, const cred *c)
{
	fs_store *s = NULL;
	char why[512], dir[700];
	snprintf(dir, sizeof(dir), "%s/tab-%s", g_dir, name);
	cr_assert_eq(fs_test_tablet(dir, c->file, 0x5a, "tk1", &s, why, sizeof(why)), FS_OK, "%s",
	             why);
	return s;
}

/* One sync of tablet s; the SDK's own receive limit applies. */
static fs_err
sync_tablet(fs_store *s, fs_sync_stats *st)
{
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = 30000;
	return fs_sync(s, &o, st);
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
teardown(void)
{
	if (d != NULL)
		cr_expect_eq(fs_test_daemon_stop(&d), 0);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(g_dir);
}

TestSuite(isolate_caps, .init = setup, .fini = teardown, .timeout = 300);

/* The result of a one-change push. */
typedef struct outcome {
	int status;
	char reason[256];
} outcome;

/*
 * The flood: FLOOD versions of note/hot, each with a dot of its own
 * replica (so all are concurrent), `len` bytes each, sent round-robin by
 * the DEVICES tablets and all pipelined before any reply is read, as
 * tablets that come online together would. out[i] answers version i.
 */
static void
flood(void *socks[DEVICES], size_t len, outcome out[FLOOD])
{
	uint8_t *payload = malloc(len);
	cr_assert_not_null(payload);
	for (int i = 0; i < FLOOD; i++) {
		char ver[48], cs[48];
		int dev = i % DEVICES;
		for (size_t k = 0; k < len; k++)
			payload[k] = (uint8_t)(k * 31 + (size_t)i * 7);
		snprintf(ver, sizeof(ver), "d%d-r%02d:1", dev, i);
		snprintf(cs, sizeof(cs), "cs-flood-%02d", i);
		fs_test_push *p = fs_test_push_new(cs);
		fs_test_push_add(p, "note", "hot", "team-a", ver, false, payload, len);
		cr_assert(fs_test_send(socks[dev], fs_test_push_envelope(p, 1000 + (uint64_t)i)));
		fs_test_push_free(p);
	}
	free(payload);
	for (int i = 0; i < FLOOD; i++)
		out[i].status = -1;
	for (int got = 0; got < FLOOD;) {
		zmq_pollitem_t it[DEVICES];
		for (int dev = 0; dev < DEVICES; dev++)
			it[dev] = (zmq_pollitem_t){socks[dev], 0, ZMQ_POLLIN, 0};
		cr_assert_gt(zmq_poll(it, DEVICES, 120000), 0, "%d of %d versions answered", got,
		             FLOOD);
		for (int dev = 0; dev < DEVICES; dev++) {
			if (!(it[dev].revents & ZMQ_POLLIN))
				continue;
			env_t *r = fs_test_recv(socks[dev], 0);
			cr_assert_not_null(r);
			cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
			             "a version answered with body %d", r->body_case);
			int i = (int)(r->request_id - 1000);
			cr_assert(i >= 0 && i < FLOOD && out[i].status == -1 &&
			          r->push_reply->n_results == 1);
			out[i].status = r->push_reply->results[0]->status;
			snprintf(out[i].reason, sizeof(out[i].reason), "%s",
			         r->push_reply->results[0]->reason);
			fieldsync__v1__envelope__free_unpacked(r, NULL);
			got++;
		}
	}
}

/* Counts what the flood was answered; checks each refusal's reason. */
static int
accepted(const outcome out[FLOOD])
{
	int n = 0;
	for (int i = 0; i < FLOOD; i++) {
		if (out[i].status == FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED) {
			cr_expect_not_null(strstr(out[i].reason, "resolve the conflict first"),
			                   "version %d: %s", i, out[i].reason);
			continue;
		}
		cr_expect(out[i].status == FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED ||
		                  out[i].status == FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT,
		          "version %d: status %d", i, out[i].status);
		n++;
	}
	return n;
}

/*
 * After the flood: one device writes an ordinary record, and every tablet
 * of the scope (the flooders and a quiet colleague) syncs with the real
 * SDK: the sync completes, the hot record arrives with `siblings`
 * siblings of at most max_bytes in all, and so does the later record.
 */
static void
everyone_still_syncs(cred creds[DEVICES + 1], size_t siblings, size_t max_bytes)
{
	void *s0 = curve_dealer(&creds[0]);
	fs_test_push *p = fs_test_push_new("cs-after");
	fs_test_push_add(p, "note", "after", "team-a", "d0-after:1", false, "x", 1);
	env_t *r = fs_test_call(s0, fs_test_push_envelope(p, 7), 30000);
	fs_test_push_free(p);
	cr_assert_not_null(r, "a push after the flood is answered");
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(s0);

	for (int t = 0; t <= DEVICES; t++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", t);
		fs_store *s = tablet(name, &creds[t]);
		fs_sync_stats st;
		fs_err e = sync_tablet(s, &st);
		cr_expect_eq(e, FS_OK, "tablet %d's sync completes: %s (%s)", t, fs_strerror(e),
		             fs_last_error_detail());
		fs_record *hot = NULL, *after = NULL;
		cr_expect_eq(fs_get(s, "note", "hot", &hot), FS_OK, "tablet %d has the hot record",
		             t);
		if (hot != NULL) {
			size_t bytes = 0;
			cr_expect_eq(fs_record_sibling_count(hot), siblings, "tablet %d", t);
			for (size_t i = 0; i < fs_record_sibling_count(hot); i++) {
				fs_sibling sib;
				fs_record_sibling(hot, i, &sib);
				bytes += sib.len;
			}
			cr_expect_leq(bytes, max_bytes, "tablet %d holds %zu bytes", t, bytes);
			fs_record_free(&hot);
		}
		cr_expect_eq(fs_get(s, "note", "after", &after), FS_OK,
		             "tablet %d got the record written after the flood", t);
		fs_record_free(&after);
		fs_store_close(&s);
	}
}

static void
start(cred creds[DEVICES + 1])
{
	for (int i = 0; i < DEVICES; i++) {
		char name[16];
		snprintf(name, sizeof(name), "flood-%d", i);
		creds[i] = enroll(name);
	}
	creds[DEVICES] = enroll("quiet");
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts in production mode");
}

Test(isolate_caps, issue11_break2_seventy_1MB_versions_stay_under_the_byte_cap)
{
	cred creds[DEVICES + 1];
	void *socks[DEVICES];
	outcome out[FLOOD];
	start(creds);
	for (int i = 0; i < DEVICES; i++)
		socks[i] = curve_dealer(&creds[i]);
	flood(socks, MB, out);
	for (int i = 0; i < DEVICES; i++)
		zmq_close(socks[i]);
	/* 8 versions of 1,000,000 bytes fit 8 MiB; a ninth would not. */
	int n = accepted(out);
	cr_expect_eq(n, 8, "the record took %d versions of 1 MB (cap 8 MiB)", n);
	everyone_still_syncs(creds, 8, 8u << 20);
}

Test(isolate_caps, issue11_break2_seventy_concurrent_versions_stay_under_the_sibling_cap)
{
	cred creds[DEVICES + 1];
	void *socks[DEVICES];
	outcome out[FLOOD];
	start(creds);
	for (int i = 0; i < DEVICES; i++)
		socks[i] = curve_dealer(&creds[i]);
	flood(socks, 1000, out);
	for (int i = 0; i < DEVICES; i++)
		zmq_close(socks[i]);
	int n = accepted(out);
	cr_expect_eq(n, 32, "the record took %d concurrent versions (cap 32)", n);
	everyone_still_syncs(creds, 32, 32 * 1000);
}

/* One small change set from socket s; the reply (caller frees). */
static env_t *
push_small(void *s, const char *cs, const char *id, const char *ver, size_t len, uint64_t rid)
{
	static uint8_t payload[MB];
	fs_test_push *p = fs_test_push_new(cs);
	fs_test_push_add(p, "note", id, "team-a", ver, false, payload, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid), 30000);
	fs_test_push_free(p);
	cr_assert_not_null(r, "%s is answered", cs);
	return r;
}

static void
expect_busy(env_t *r, const char *what)
{
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR, "%s: body %d", what,
	             r->body_case);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__BUSY, "%s", what);
	cr_expect(r->error->retry_after_ms >= 1 && r->error->retry_after_ms <= 60000,
	          "%s: retry_after_ms %u", what, r->error->retry_after_ms);
	cr_expect_not_null(strstr(r->error->message, "quota"), "%s: %s", what, r->error->message);
}

/*
 * Push quotas: a device past its change sets per minute gets BUSY with
 * retry_after_ms, another device pushes on unaffected, a device past its
 * bytes per minute gets BUSY too, and the SDK's sync of the throttled
 * device completes once the quota refills (nothing parked, nothing lost).
 */
Test(isolate_caps, issue11_push_quotas_answer_busy_per_device)
{
	cred creds[3];
	creds[0] = enroll("greedy");
	creds[1] = enroll("honest");
	creds[2] = enroll("bulky");
	const char *args[] = {"--master-key-file",
	                      g_key,
	                      "--push-quota-changesets",
	                      "60",
	                      "--push-quota-bytes",
	                      "4M",
	                      "--max-changes-per-push",
	                      "1",
	                      NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts with push quotas");

	/* 80 change sets sent at once: a minute's 60 pass, the rest are BUSY */
	void *g = curve_dealer(&creds[0]);
	for (int i = 0; i < 80; i++) {
		char cs[32], ver[32], id[32];
		snprintf(cs, sizeof(cs), "cs-g-%d", i);
		snprintf(id, sizeof(id), "g-%d", i);
		snprintf(ver, sizeof(ver), "greedy-r:%d", i + 1);
		fs_test_push *p = fs_test_push_new(cs);
		fs_test_push_add(p, "note", id, "team-a", ver, false, "g", 1);
		cr_assert(fs_test_send(g, fs_test_push_envelope(p, 100 + (uint64_t)i)));
		fs_test_push_free(p);
	}
	int applied = 0, busy = 0;
	for (int i = 0; i < 80; i++) {
		env_t *r = fs_test_recv(g, 60000);
		cr_assert_not_null(r, "reply %d", i);
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			applied++;
		} else {
			expect_busy(r, "a change set past the quota");
			busy++;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_expect_geq(applied, 60, "a minute's quota passes (%d)", applied);
	cr_expect_geq(busy, 1, "past the quota: BUSY (%d applied)", applied);
	zmq_close(g);

	/* another device is not affected */
	void *h = curve_dealer(&creds[1]);
	for (int i = 0; i < 5; i++) {
		char cs[32], ver[32], id[32];
		snprintf(cs, sizeof(cs), "cs-h-%d", i);
		snprintf(id, sizeof(id), "h-%d", i);
		snprintf(ver, sizeof(ver), "honest-r:%d", i + 1);
		env_t *r = push_small(h, cs, id, ver, 100, 10 + (uint64_t)i);
		cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
		             "the honest device's set %d is answered with body %d", i,
		             r->body_case);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(h);

	/* the throttled device's tablet: BUSY first, then it completes */
	fs_store *t = tablet("greedy", &creds[0]);
	for (int i = 0; i < 10; i++) {
		char id[32];
		snprintf(id, sizeof(id), "t-%d", i);
		cr_assert_eq(fs_put(t, "note", id, "team-a", "v", 1), FS_OK);
	}
	fs_sync_stats st;
	fs_err e = sync_tablet(t, &st);
	cr_expect_eq(e, FS_ERR_BUSY, "the first sync is over the quota: %s", fs_strerror(e));
	fs_status status;
	cr_assert_eq(fs_status_get(t, &status), FS_OK);
	cr_expect_not_null(strstr(status.last_error_msg, "quota"), "%s", status.last_error_msg);
	uint64_t pushed = st.pushed;
	for (int tries = 0; e == FS_ERR_BUSY && tries < 30; tries++) {
		/* the app's retry, later: the quota refills 1 set a second, and the
		 * SDK sends a window of 4 sets at a time */
		sleep(4);
		e = sync_tablet(t, &st);
		pushed += st.pushed;
	}
	cr_expect_eq(e, FS_OK, "the sync completes once the quota refills: %s", fs_strerror(e));
	cr_expect_eq(pushed, 10, "every change was pushed once (%llu)", (unsigned long long)pushed);
	cr_assert_eq(fs_status_get(t, &status), FS_OK);
	cr_expect_eq(status.pending, 0);
	cr_expect_eq(status.failed, 0, "nothing was parked");
	fs_store_close(&t);

	/* bytes: 4 MiB a minute takes four 1 MB change sets, not five */
	void *b = curve_dealer(&creds[2]);
	for (int i = 0; i < 5; i++) {
		char cs[32], ver[32], id[32];
		snprintf(cs, sizeof(cs), "cs-b-%d", i);
		snprintf(id, sizeof(id), "b-%d", i);
		snprintf(ver, sizeof(ver), "bulky-r:%d", i + 1);
		env_t *r = push_small(b, cs, id, ver, MB, 20 + (uint64_t)i);
		if (i < 4)
			cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
			             "1 MB set %d is within the bytes quota", i);
		else
			expect_busy(r, "the fifth 1 MB set");
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(b);
}

/*
 * The page bound: with --max-page-bytes below --max-record-bytes (caps
 * raised past what a page carries), a record that grows past a page is
 * not sent in a frame the tablet would drop without a word: the pages
 * before it arrive, the tablet's pull ends with TOO_LARGE naming what to
 * do, the operator sees it (log by id, metric, `verify`), and once the
 * conflict is resolved the tablet syncs again and gets what came after.
 */
Test(isolate_caps, issue11_a_record_larger_than_a_page_is_an_error_not_a_stall)
{
	cred creds[2];
	creds[0] = enroll("writer");
	creds[1] = enroll("reader");
	const char *args[] = {"--master-key-file", g_key, "--max-page-bytes", "2M", NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts with --max-page-bytes 2M");
	void *w = curve_dealer(&creds[0]);
	env_t *r = push_small(w, "cs-before", "before", "w-b:1", 10, 1);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	for (int i = 0; i < 3; i++) { /* three concurrent 1 MB versions: 3 MB */
		char cs[32], ver[32];
		snprintf(cs, sizeof(cs), "cs-big-%d", i);
		snprintf(ver, sizeof(ver), "w-big%d:1", i);
		r = push_small(w, cs, "big", ver, MB, 2 + (uint64_t)i);
		cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		cr_expect_neq(r->push_reply->results[0]->status,
		              FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED, "%s",
		              r->push_reply->results[0]->reason);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	r = push_small(w, "cs-after", "after", "w-a:1", 10, 6);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	fs_store *t = tablet("reader", &creds[1]);
	fs_sync_stats st;
	fs_err e = sync_tablet(t, &st);
	cr_expect_eq(e, FS_ERR_PROTOCOL, "the pull ends with an error: %s", fs_strerror(e));
	fs_status status;
	cr_assert_eq(fs_status_get(t, &status), FS_OK);
	cr_expect_not_null(strstr(status.last_error_msg, "TOO_LARGE"), "%s", status.last_error_msg);
	cr_expect_not_null(strstr(status.last_error_msg, "larger than a pull page"), "%s",
	                   status.last_error_msg);
	fs_record *rec = NULL;
	cr_expect_eq(fs_get(t, "note", "before", &rec), FS_OK, "the page before it arrived");
	fs_record_free(&rec);

	/* the operator sees it: the log names the record, the metric counts it,
	 * verify lists it */
	char *log = fs_test_daemon_log(d);
	cr_assert_not_null(log);
	cr_expect_not_null(strstr(log, "larger than a pull page"), "the daemon logs it");
	cr_expect_not_null(strstr(log, "\"big\""), "by id");
	free(log);
	char *body = NULL;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body), 200);
	cr_expect_null(strstr(body, "fieldsync_pull_oversize_records_total 0"), "counted");
	cr_expect_not_null(strstr(body, "fieldsync_pull_oversize_records_total"), "counted");
	free(body);
	char cmd[4096], out[700];
	snprintf(out, sizeof(out), "%s/verify.out", g_dir);
	snprintf(cmd, sizeof(cmd),
	         "%s verify --data-dir %s --master-key-file %s --max-page-bytes 2M >%s 2>&1",
	         FS_DAEMON_BIN, g_data, g_key, out);
	cr_expect_neq(system(cmd), 0, "verify reports a problem");
	FILE *f = fopen(out, "r");
	cr_assert_not_null(f);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	cr_expect_not_null(strstr(text, "record note/big"), "verify names it: %s", text);

	/* resolved (one value over all three), every tablet syncs again */
	r = push_small(w, "cs-resolve", "big", "w-big0:1,w-big1:1,w-big2:1,w-res:1", 10, 7);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(w);
	e = sync_tablet(t, &st);
	cr_expect_eq(e, FS_OK, "after the resolution the sync completes: %s", fs_strerror(e));
	cr_expect_eq(fs_get(t, "note", "after", &rec), FS_OK);
	fs_record_free(&rec);
	cr_expect_eq(fs_get(t, "note", "big", &rec), FS_OK);
	if (rec != NULL)
		cr_expect_eq(fs_record_sibling_count(rec), 1);
	fs_record_free(&rec);
	fs_store_close(&t);
}
