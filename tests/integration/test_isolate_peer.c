/*
 * Issue 11 breaks 6 and 9 and "bounded memory per peer", through the real
 * daemon in production mode with enrolled CURVE devices and real sockets:
 *   - two devices that use the same changeset_id both have their change
 *     applied; each retry gets its own device's stored reply (break 6);
 *   - revoking one device closes its connections only: another scheduler's
 *     SUB keeps its connection (no disconnect, no reconnect) and gets every
 *     event published after the revocation without a gap in seq; the
 *     revoked scheduler's and the revoked tablet's live connections are
 *     closed and their reconnects refused; another tablet keeps syncing
 *     (break 9);
 *   - a peer that pipelines 300 pulls and never reads the replies does not
 *     grow the daemon past the configured bound: it gets BUSY with
 *     retry_after_ms, and another device keeps syncing meanwhile.
 * Each fails against the release before (FS_TEST_DAEMON_BIN=old fieldsyncd).
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
static uint64_t g_rid = 100;

/* Every socket a test opens, closed by teardown when an assertion ended the
 * test early (zmq_ctx_term would wait for them forever). */
static void *g_socks[32];
static size_t g_nsocks;

static void *
track(void *s)
{
	cr_assert_not_null(s);
	if (g_nsocks < sizeof(g_socks) / sizeof(g_socks[0]))
		g_socks[g_nsocks++] = s;
	return s;
}

static cred
enroll(const char *name, const char *scopes, const char *role)
{
	cred c;
	cr_assert_eq(fs_test_enroll(NULL, g_data, g_dir, name, scopes, role, &c), 0, "enroll %s",
	             name);
	return c;
}

static void
revoke_device(const char *name)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "%s revoke --data-dir %s --name %s >/dev/null", FS_DAEMON_BIN,
	         g_data, name);
	cr_assert_eq(system(cmd), 0, "revoke %s", name);
}

/* A CURVE socket of type `type` with c's keys; a monitor on it when mon is
 * given (events: disconnected, handshake refused by ZAP). */
static void *
curve_socket(int type, const cred *c, void **mon)
{
	static int n;
	void *s = track(zmq_socket(ctx, type));
	int zero = 0;
	cr_assert_eq(fs_test_curve_keys(s, c), 0);
	if (mon != NULL) {
		char ep[64];
		snprintf(ep, sizeof(ep), "inproc://isolate-peer-mon-%d", n++);
		cr_assert_eq(zmq_socket_monitor(s, ep,
		                                ZMQ_EVENT_DISCONNECTED |
		                                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
		                                        ZMQ_EVENT_HANDSHAKE_SUCCEEDED),
		             0);
		*mon = track(zmq_socket(ctx, ZMQ_PAIR));
		zmq_setsockopt(*mon, ZMQ_LINGER, &zero, sizeof(zero));
		cr_assert_eq(zmq_connect(*mon, ep), 0);
	}
	return s;
}

static void *
curve_dealer(const cred *c, void **mon)
{
	void *s = curve_socket(ZMQ_DEALER, c, mon);
	cr_assert_eq(zmq_connect(s, fs_test_daemon_endpoint(d)), 0);
	return s;
}

/* Waits up to timeout_ms for a monitor event in mask; returns it, or 0. */
static uint16_t
wait_event(void *mon, uint16_t mask, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
		while (zmq_poll(&it, 1, 0) > 0) {
			zmq_msg_t m;
			uint16_t ev = 0;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, mon, 0) >= 0 && zmq_msg_size(&m) >= 2)
				memcpy(&ev, zmq_msg_data(&m), 2);
			zmq_msg_close(&m);
			zmq_msg_init(&m);
			zmq_msg_recv(&m, mon, 0); /* the address frame */
			zmq_msg_close(&m);
			if (ev & mask)
				return ev;
		}
		usleep(100000);
	}
	return 0;
}

/* Drains the monitor; how many events in mask it held. */
static int
count_events(void *mon, uint16_t mask)
{
	int n = 0;
	while (wait_event(mon, mask, 0) != 0)
		n++;
	return n;
}

static env_t *
call_within(void *s, env_t *e, int timeout_ms)
{
	e->request_id = ++g_rid;
	return fs_test_call(s, e, timeout_ms);
}

static env_t *
call(void *s, env_t *e)
{
	return call_within(s, e, 10000);
}

static env_t *
push_one(void *s, const char *csid, const char *coll, const char *id, const char *version,
         const void *payload, size_t len)
{
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, coll, id, "team-a", version, false, payload, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, ++g_rid), 10000);
	fs_test_push_free(p);
	return r;
}

static env_t *
hello_within(void *s, int timeout_ms)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "isolate-peer";
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	return call_within(s, &e, timeout_ms);
}

static env_t *
hello(void *s)
{
	return hello_within(s, 10000);
}

static env_t *
pull(void *s, uint64_t since)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.since_seq = since;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	return call(s, &e);
}

/* The record collection/id is in a pull from 0 by s. */
static bool
pulled(void *s, const char *id)
{
	bool found = false;
	uint64_t since = 0;
	for (int page = 0; page < 100; page++) {
		env_t *r = pull(s, since);
		cr_assert_not_null(r, "the pull is answered");
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++)
			found |= strcmp(r->pull_reply->records[i]->id, id) == 0 &&
			         r->pull_reply->records[i]->n_siblings > 0;
		since = r->pull_reply->last_seq;
		bool more = r->pull_reply->more;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			break;
	}
	return found;
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
	for (size_t i = 0; i < g_nsocks; i++)
		zmq_close(g_socks[i]);
	g_nsocks = 0;
	if (d != NULL)
		cr_expect_eq(fs_test_daemon_stop(&d), 0);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(g_dir);
}

TestSuite(isolate_peer, .init = setup, .fini = teardown, .timeout = 240);

/* ---- break 6: the reply cache is per device --------------------------------- */

Test(isolate_peer, break6_two_devices_with_one_changeset_id_both_apply)
{
	cred a = enroll("tab-a", "team-a", "device");
	cred b = enroll("tab-b", "team-a", "device");
	start();
	void *sa = curve_dealer(&a, NULL), *sb = curve_dealer(&b, NULL);

	env_t *r = push_one(sa, "cs-same", "note", "from-a", "ra:1", "a", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	uint64_t seq_a = r->push_reply->results[0]->seq;
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* tab-b, same changeset_id, its own change: judged on its own */
	r = push_one(sb, "cs-same", "note", "from-b", "rb:1", "b", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "tab-b's change: %s",
	             r->push_reply->results[0]->reason);
	cr_expect_neq(r->push_reply->results[0]->seq, seq_a, "not tab-a's stored reply");
	uint64_t seq_b = r->push_reply->results[0]->seq;
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect(pulled(sb, "from-b"), "tab-b's change was applied");
	cr_expect(pulled(sa, "from-a"), "and tab-a's");

	/* Each device's retry gets its own stored reply and changes nothing. */
	r = push_one(sa, "cs-same", "note", "probe-a", "ra:2", "p", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->seq, seq_a, "tab-a's retry: tab-a's reply");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	r = push_one(sb, "cs-same", "note", "probe-b", "rb:2", "p", 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->seq, seq_b, "tab-b's retry: tab-b's reply");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect(!pulled(sa, "probe-a") && !pulled(sa, "probe-b"), "retries change nothing");
}

/* ---- break 9: revocation without collateral --------------------------------- */

static size_t
pack_case(uint8_t *buf)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.first_contact_at_ms = 1774360800000LL;
	c.contact_person = "staff-7";
	return fieldsync__v1__case__pack(&c, buf);
}

/* Pushes case `id` in team-a. */
static void
push_case(void *s, const char *id)
{
	uint8_t buf[128];
	char csid[64];
	size_t n = pack_case(buf);
	snprintf(csid, sizeof(csid), "cs-%s", id);
	env_t *r = push_one(s, csid, "case", id, "coord:1", buf, n);
	cr_assert_not_null(r, "the case %s is answered", id);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_assert_eq(r->push_reply->results[0]->status,
	             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "%s",
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* What one subscriber heard. */
typedef struct heard {
	uint64_t seqs[256];
	size_t n;
	bool got[8]; /* case "c<i>" heard */
} heard;

/* Reads what sub holds now (waiting up to wait_ms for the first event). */
static void
listen_for(void *sub, heard *h, int wait_ms)
{
	zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
	while (zmq_poll(&it, 1, wait_ms) > 0) {
		zmq_msg_t topic, body;
		zmq_msg_init(&topic);
		zmq_msg_init(&body);
		cr_assert_geq(zmq_msg_recv(&topic, sub, 0), 0);
		cr_assert(zmq_msg_more(&topic), "two frames: topic, event");
		cr_assert_geq(zmq_msg_recv(&body, sub, 0), 0);
		Fieldsync__V1__ReminderEvent *ev =
			fieldsync__v1__reminder_event__unpack(NULL, zmq_msg_size(&body),
		                                              zmq_msg_data(&body));
		cr_assert_not_null(ev);
		if (h->n < 256)
			h->seqs[h->n++] = ev->seq;
		if (ev->case_id[0] == 'c' && ev->case_id[1] >= '0' && ev->case_id[1] <= '7')
			h->got[ev->case_id[1] - '0'] = true;
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
		zmq_msg_close(&topic);
		zmq_msg_close(&body);
		wait_ms = 200; /* the rest of a batch follows at once */
	}
}

static void *
subscriber(const cred *c, void **mon)
{
	void *sub = curve_socket(ZMQ_SUB, c, mon);
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "reminder/", 9);
	cr_assert_eq(zmq_connect(sub, fs_test_daemon_reminder_endpoint(d)), 0);
	return sub;
}

Test(isolate_peer, break9_revoking_one_device_closes_its_connections_only)
{
	cred coord = enroll("coord", "team-a", "device");
	cred tab_x = enroll("tab-x", "team-a", "device");
	cred s1 = enroll("sched-1", "team-a", "scheduler");
	cred s2 = enroll("sched-2", "team-a", "scheduler");
	start();
	void *mon1, *mon2, *mon_x, *mon_c;
	void *sub1 = subscriber(&s1, &mon1), *sub2 = subscriber(&s2, &mon2);
	void *sc = curve_dealer(&coord, &mon_c), *sx = curve_dealer(&tab_x, &mon_x);
	env_t *r = hello(sx);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME, "tab-x is in");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* Both schedulers hear team-a (cases c0, c1, ... until both did). */
	heard h1 = {0}, h2 = {0};
	char id[8];
	int i = 0;
	for (; i < 5 && (h1.n == 0 || h2.n == 0); i++) {
		snprintf(id, sizeof(id), "c%d", i);
		push_case(sc, id);
		listen_for(sub1, &h1, 1500);
		listen_for(sub2, &h2, 1500);
	}
	cr_assert(h1.n > 0 && h2.n > 0, "both schedulers hear events (%zu, %zu)", h1.n, h2.n);
	cr_assert_eq(count_events(mon1, ZMQ_EVENT_DISCONNECTED), 0);

	/* sched-2 and tab-x are revoked (by another process, as an operator does). */
	revoke_device("sched-2");
	revoke_device("tab-x");
	cr_expect_eq(wait_event(mon2, ZMQ_EVENT_DISCONNECTED, 15000), ZMQ_EVENT_DISCONNECTED,
	             "the revoked scheduler's connection is closed");
	cr_expect_eq(wait_event(mon_x, ZMQ_EVENT_DISCONNECTED, 15000), ZMQ_EVENT_DISCONNECTED,
	             "the revoked tablet's live connection is closed");
	cr_expect_eq(wait_event(mon2, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 15000),
	             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, "its reconnect is refused by ZAP");
	cr_expect_eq(wait_event(mon_x, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 15000),
	             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, "the tablet's reconnect too");

	/* Right after: an event for sched-1, which never lost its connection. */
	int after = i;
	snprintf(id, sizeof(id), "c%d", after);
	push_case(sc, id);
	for (int tries = 0; tries < 20 && !h1.got[after]; tries++)
		listen_for(sub1, &h1, 500);
	cr_expect(h1.got[after], "sched-1 hears the case pushed after the revocation");
	cr_expect_eq(count_events(mon1, ZMQ_EVENT_DISCONNECTED), 0,
	             "sched-1 was never disconnected (no re-bind)");
	cr_expect_eq(count_events(mon_c, ZMQ_EVENT_DISCONNECTED), 0, "nor was the other tablet");
	for (size_t k = 1; k < h1.n; k++)
		cr_expect_eq(h1.seqs[k], h1.seqs[k - 1] + 1, "no gap in sched-1's events at %zu",
		             k);
	listen_for(sub2, &h2, 0);
	cr_expect(!h2.got[after], "the revoked scheduler hears nothing after");

	/* The revoked tablet gets nothing; the other keeps syncing. */
	int sndtimeo = 2000; /* a DEALER with no admitted connection blocks on send */
	zmq_setsockopt(sx, ZMQ_SNDTIMEO, &sndtimeo, sizeof(sndtimeo));
	r = hello_within(sx, 2000); /* its reconnects are refused: no answer at all */
	cr_expect(r == NULL || (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR &&
	                        r->error->code == FIELDSYNC__V1__ERROR__CODE__FORBIDDEN),
	          "the revoked tablet is refused");
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect(pulled(sc, id), "the other tablet keeps syncing");
}

/* ---- bounded memory per peer -------------------------------------------------- */

/* The daemon's resident set, KiB. */
static long
rss_kib(void)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", fs_test_daemon_pid(d));
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* fieldsync_requests_total{type="pull"} from /metrics; -1 when unread. */
static long
pulls_served(void)
{
	char *body = NULL;
	long n = -1;
	if (fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body) == 200) {
		const char *at = strstr(body, "fieldsync_requests_total{type=\"pull\"} ");
		if (at != NULL)
			n = atol(at + strlen("fieldsync_requests_total{type=\"pull\"} "));
	}
	free(body);
	return n;
}

#define RECORDS 8
#define RECORD_BYTES (128 << 10) /* a page from 0: about 1 MiB */
#define UNREAD_PULLS 300
#define BOUND_MIB 8

Test(isolate_peer, a_peer_that_never_reads_stays_within_its_bound)
{
	cred hog = enroll("hog", "team-a", "device");
	cred b = enroll("tab-b", "team-a", "device");
	/* through the environment, so that the old release starts too */
	setenv("FIELDSYNC_PEER_QUEUE_MAX_BYTES", "8M", 1);
	char *asan = getenv("ASAN_OPTIONS") != NULL ? strdup(getenv("ASAN_OPTIONS")) : NULL;
	if (FS_TEST_SANITIZE[0] != '\0') { /* ASan keeps freed pages (its quarantine) */
		char opts[1024];
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0", asan ? asan : "",
		         asan && asan[0] ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
	start();
	unsetenv("FIELDSYNC_PEER_QUEUE_MAX_BYTES");
	if (asan != NULL)
		setenv("ASAN_OPTIONS", asan, 1);
	free(asan);
	void *sb = curve_dealer(&b, NULL);

	static uint8_t payload[RECORD_BYTES];
	memset(payload, 'x', sizeof(payload));
	fs_test_push *p = fs_test_push_new("cs-big");
	for (int i = 0; i < RECORDS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "big-%d", i);
		fs_test_push_add(p, "note", id, "team-a", "rb:1", false, payload, sizeof(payload));
	}
	env_t *r = fs_test_call(sb, fs_test_push_envelope(p, ++g_rid), 30000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_assert(pulled(sb, "big-7"), "a page holds the records");
	long served0 = pulls_served();
	cr_assert_geq(served0, 1, "/metrics counts pulls");
	long rss0 = rss_kib();

	/* The hog: a DEALER that reads nothing (its own buffers kept small, so
	 * the replies stay on the daemon's side) and pipelines 300 pulls. */
	void *sh = curve_socket(ZMQ_DEALER, &hog, NULL);
	int one = 1, small = 65536;
	zmq_setsockopt(sh, ZMQ_RCVHWM, &one, sizeof(one));
	zmq_setsockopt(sh, ZMQ_RCVBUF, &small, sizeof(small));
	cr_assert_eq(zmq_connect(sh, fs_test_daemon_endpoint(d)), 0);
	for (int i = 0; i < UNREAD_PULLS; i++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		e.request_id = ++g_rid;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		cr_assert(fs_test_send(sh, &e));
	}
	long served = 0;
	for (int i = 0; i < 1200 && served < served0 + UNREAD_PULLS; i++) {
		usleep(100000);
		served = pulls_served();
	}
	cr_assert_geq(served, served0 + UNREAD_PULLS, "the daemon read all %d pulls", UNREAD_PULLS);

	/* Meanwhile another device syncs as usual. */
	r = push_one(sb, "cs-during", "note", "during", "rb:2", "d", 1);
	cr_assert_not_null(r, "another device's push is answered");
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect(pulled(sb, "during"), "and its pull");

	long rss1 = rss_kib();
	long grew_mib = (rss1 - rss0) / 1024;
	cr_log_info("daemon RSS %ld KiB before, %ld KiB after %d unread pulls (+%ld MiB)", rss0,
	            rss1, UNREAD_PULLS, grew_mib);
	cr_expect_lt(grew_mib, 4 * BOUND_MIB,
	             "300 unread pulls of ~1 MiB grew the daemon by %ld MiB (bound %d MiB)",
	             grew_mib, BOUND_MIB);

	/* What the hog finally reads: some pages, then BUSY with a retry time. */
	int pages = 0, busy = 0, other = 0;
	for (int i = 0; i < UNREAD_PULLS; i++) {
		env_t *m = fs_test_recv(sh, 3000);
		if (m == NULL)
			break;
		if (m->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY)
			pages++;
		else if (m->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR &&
		         m->error->code == FIELDSYNC__V1__ERROR__CODE__BUSY &&
		         m->error->retry_after_ms > 0)
			busy++;
		else
			other++;
		fieldsync__v1__envelope__free_unpacked(m, NULL);
	}
	cr_log_info("the hog read %d pages, %d BUSY, %d other", pages, busy, other);
	cr_expect_gt(pages, 0, "it was served up to the bound");
	cr_expect_leq(pages, 2 * BOUND_MIB, "and no further");
	cr_expect_gt(busy, 0, "then told BUSY, with retry_after_ms");
	cr_expect_eq(other, 0);
}
