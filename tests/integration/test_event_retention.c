/*
 * Event retention (issue 12, item 7) through the real daemon: reminder
 * events from real pushes, a real SUB that keeps up, Replay on the sync
 * endpoint, the metrics on the ops port. With a small retention count the
 * oldest events are trimmed, at most EVENTS_TRIM_BATCH (1000) per writer
 * round; a replay from before the oldest kept event is answered Error
 * INVALID "TRIMMED: events before seq N ..." (docs/reminders.md), a replay
 * from N-1 gets every kept event, and a subscriber that keeps up loses
 * nothing. deploy/examples/scheduler.py, started before the oldest kept
 * event, exits 80 naming it, continues with --on-trimmed=skip, and is not
 * bothered when only its cursor's own event is gone (needs Debian's
 * /usr/bin/python3 with python3-zmq and python3-protobuf, and protoc: a
 * missing one fails the test, never skips it). The old daemon keeps every
 * event and has no retention option.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;
typedef Fieldsync__V1__ReminderEvent event_t;

static uint64_t rid = 1;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n new cases (one reminder event each) in one change set. */
static void
push_cases(void *s, const char *tag, int n)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[128];
	char csid[64];
	c.first_contact_at_ms = now_ms();
	size_t len = fieldsync__v1__case__pack(&c, buf);
	snprintf(csid, sizeof(csid), "cs-%s", tag);
	fs_test_push *p = fs_test_push_new(csid);
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%05d", tag, i);
		fs_test_push_add(p, "case", id, "team-a", "a:1", false, buf, len);
	}
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 60000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* The reply to ReplayRequest{since, 1000}: a ReplayReply or an Error. */
static env_t *
replay(void *s, uint64_t since)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	rr.since_seq = since;
	rr.limit = 1000;
	e.request_id = rid++;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	return r;
}

/* The N of a TRIMMED answer, 0 when r is not one. */
static uint64_t
trimmed_before(const env_t *r)
{
	unsigned long long n = 0;
	if (r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_ERROR ||
	    r->error->code != FIELDSYNC__V1__ERROR__CODE__INVALID ||
	    strncmp(r->error->message, "TRIMMED: ", 9) != 0 ||
	    sscanf(r->error->message, "TRIMMED: events before seq %llu ", &n) != 1)
		return 0;
	return n;
}

/* A metric without labels from /metrics; -1 when absent. */
static long long
metric(fs_test_daemon *d, const char *name)
{
	char *body = NULL, key[128];
	long long v = -1;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body), 200);
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *at = strstr(body, key);
	if (at != NULL)
		v = atoll(at + strlen(key));
	free(body);
	return v;
}

static void *
subscriber(void *ctx, const char *endpoint)
{
	void *sub = zmq_socket(ctx, ZMQ_SUB);
	int zero = 0, big = 100000;
	zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(sub, ZMQ_RCVHWM, &big, sizeof(big));
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "reminder/", 9);
	cr_assert_eq(zmq_connect(sub, endpoint), 0);
	usleep(300000); /* let the subscription reach the PUB */
	return sub;
}

/* Reads events until `until` was seen (waiting up to 10 s for each);
 * every seq must follow the previous one: *last is the subscriber's cursor. */
static void
keep_up(void *sub, uint64_t *last, uint64_t until)
{
	while (*last < until) {
		zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
		cr_assert_gt(zmq_poll(&it, 1, 10000), 0, "no event after seq %" PRIu64, *last);
		char topic[256];
		cr_assert_geq(zmq_recv(sub, topic, sizeof(topic), 0), 0);
		zmq_msg_t m;
		zmq_msg_init(&m);
		cr_assert_geq(zmq_msg_recv(&m, sub, 0), 0);
		event_t *ev = fieldsync__v1__reminder_event__unpack(NULL, zmq_msg_size(&m),
		                                                     zmq_msg_data(&m));
		zmq_msg_close(&m);
		cr_assert_not_null(ev);
		if (*last > 0 || ev->seq == 1)
			cr_assert_eq(ev->seq, *last + 1, "a gap on PUB after %" PRIu64, *last);
		*last = ev->seq;
		fieldsync__v1__reminder_event__free_unpacked(ev, NULL);
	}
}

/* Waits (up to 20 s) until the metric leaves `from`; returns its value. */
static long long
metric_moved(fs_test_daemon *d, const char *name, long long from)
{
	long long v = metric(d, name);
	for (int i = 0; i < 400 && v == from; i++) {
		usleep(50000);
		v = metric(d, name);
	}
	return v;
}

TestSuite(event_retention, .timeout = 300);

Test(event_retention, old_events_are_trimmed_in_batches_and_an_old_replay_is_told_trimmed)
{
	char *tmp = fs_test_tmpdir(), dir[512];
	cr_assert_not_null(tmp);
	snprintf(dir, sizeof(dir), "%s/data", tmp);
	void *ctx = zmq_ctx_new();
	uint64_t cursor = 0;

	/* 3000 events under the default retention (400 days: nothing goes). */
	fs_test_daemon *d = fs_test_daemon_start(dir);
	cr_assert_not_null(d);
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d));
	for (int k = 0; k < 3; k++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "a%d", k);
		push_cases(s, tag, 1000);
		keep_up(sub, &cursor, (uint64_t)(k + 1) * 1000);
	}
	env_t *r = replay(s, 0);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	cr_expect_eq(r->replay_reply->events[0]->seq, 1, "every event is kept");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(sub);
	zmq_close(s);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	/* Restarted with room for 100: the start-up round trims one batch. */
	const char *const args[] = {"--event-retention-count", "100", NULL};
	d = fs_test_daemon_start_args(dir, args);
	cr_assert_not_null(d);
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d));
	long long oldest = metric_moved(d, "fieldsync_reminder_events_oldest_seq", 0);
	oldest = oldest == 1 ? metric_moved(d, "fieldsync_reminder_events_oldest_seq", 1) : oldest;
	cr_expect_eq(oldest, 1001, "the first round trims at most 1000 events");
	cr_expect_eq(metric(d, "fieldsync_reminder_events_trimmed_total"), 1000);

	/* Each round trims at most one more batch, and only what was handed to
	 * the publisher; the subscriber that keeps up gets every new event. */
	for (int k = 0; k < 3; k++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "b%d", k);
		push_cases(s, tag, 1);
		uint64_t want = 3000 + (uint64_t)k + 1;
		uint64_t from = want - 1;
		keep_up(sub, &from, want);
		long long now_oldest = metric(d, "fieldsync_reminder_events_oldest_seq");
		cr_expect_leq(now_oldest - oldest, 1000, "round %d trimmed %lld", k,
		              now_oldest - oldest);
		oldest = now_oldest;
	}
	cr_expect_eq(oldest, 2903, "100 kept when the last round began (3002 - 100 + 1)");
	cr_expect_eq(metric(d, "fieldsync_reminder_events_trimmed_total"), 2902);

	/* Replay from 0, and from just before the oldest kept: TRIMMED. */
	r = replay(s, 0);
	cr_expect_eq(trimmed_before(r), (uint64_t)oldest, "replay from 0: %s",
	             r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ? r->error->message
	                                                                : "a page");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	r = replay(s, (uint64_t)oldest - 2);
	cr_expect_eq(trimmed_before(r), (uint64_t)oldest);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* From oldest-1: every kept event, gap-free, to the last. */
	r = replay(s, (uint64_t)oldest - 1);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	cr_expect_eq(r->replay_reply->n_events, 3003 - (size_t)oldest + 1);
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		cr_assert_eq(r->replay_reply->events[i]->seq, (uint64_t)oldest + i);
	cr_expect_eq(r->replay_reply->last_seq, 3003);
	cr_expect(!r->replay_reply->more);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* A reader at the head is never told TRIMMED. */
	r = replay(s, 3003);
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(tmp);
	free(tmp);
}

Test(event_retention, a_subscriber_that_keeps_up_loses_nothing_while_events_are_trimmed)
{
	/* Set in the environment (FIELDSYNC_*), as a container would. */
	setenv("FIELDSYNC_EVENT_RETENTION_COUNT", "50", 1);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	unsetenv("FIELDSYNC_EVENT_RETENTION_COUNT");
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	void *sub = subscriber(ctx, fs_test_daemon_reminder_endpoint(d));
	uint64_t cursor = 0;

	/* 20 rounds of 100 events: each round trims what earlier rounds handed. */
	for (int k = 0; k < 20; k++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "c%d", k);
		push_cases(s, tag, 100);
		keep_up(sub, &cursor, (uint64_t)(k + 1) * 100);
		/* A subscriber that keeps up can always replay from its cursor. */
		env_t *r = replay(s, cursor);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY,
		             "replay from the cursor %" PRIu64 " after round %d", cursor, k);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_expect_eq(cursor, 2000, "every event 1..2000 arrived on PUB, in order");
	long long trimmed = metric(d, "fieldsync_reminder_events_trimmed_total");
	cr_expect_geq(trimmed, 1800, "the store kept at most the last round and 50: %lld trimmed",
	              trimmed);
	cr_expect_eq(metric(d, "fieldsync_reminder_events_oldest_seq"), trimmed + 1);
	/* A scheduler starting from 0 now is told so, never handed a silent gap. */
	env_t *r = replay(s, 0);
	cr_expect_gt(trimmed_before(r), 1, "replay from 0 after trimming is answered TRIMMED");
	cr_expect_eq(trimmed_before(r), (uint64_t)trimmed + 1);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	zmq_close(sub);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

/* ---- the Python scheduler --------------------------------------------------- */

#define PYTHON "/usr/bin/python3"
#define PACKAGES "python3-zmq python3-protobuf protobuf-compiler"

/* The repository root: FS_VECTORS_DIR is <root>/tests/vectors. */
static void
repo_root(char *out, size_t len)
{
	const char *v = FS_VECTORS_DIR, *tail = "/tests/vectors";
	size_t n = strlen(v), t = strlen(tail);
	cr_assert(n > t && strcmp(v + n - t, tail) == 0, "unexpected FS_VECTORS_DIR %s", v);
	cr_assert_lt(n - t, len);
	memcpy(out, v, n - t);
	out[n - t] = '\0';
}

/* Runs scheduler.py with opts to its end; returns its exit status, its
 * stdout in out (malloc'd) and its stderr in err (malloc'd). */
static int
run_scheduler(const char *root, const char *gen, fs_test_daemon *d, const char *opts, char **out,
              char **err)
{
	char cmd[4096], path[600];
	char *dir = fs_test_tmpdir();
	cr_assert_not_null(dir);
	snprintf(cmd, sizeof(cmd),
	         "timeout 60 " PYTHON " %s/deploy/examples/scheduler.py --proto-out %s "
	         "--endpoint %s --reminders %s --json %s >%s/out 2>%s/err",
	         root, gen, fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d), opts,
	         dir, dir);
	int st = system(cmd);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, i ? "err" : "out");
		FILE *f = fopen(path, "r");
		cr_assert_not_null(f);
		char *buf = calloc(1, 1 << 20);
		cr_assert_not_null(buf);
		size_t n = fread(buf, 1, (1 << 20) - 1, f);
		buf[n] = '\0';
		fclose(f);
		*(i ? err : out) = buf;
	}
	fs_test_rm_rf(dir);
	free(dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The seqs of the JSON lines in out: count, first and last. */
static void
seqs_of(const char *out, int *n, long *first, long *last)
{
	*n = 0;
	*first = *last = -1;
	for (const char *p = strstr(out, "\"seq\":"); p != NULL; p = strstr(p + 1, "\"seq\":")) {
		long v = atol(p + 6);
		if (*n == 0)
			*first = v;
		*last = v;
		(*n)++;
	}
}

Test(event_retention, the_python_scheduler_is_told_and_acts_on_trimmed_events)
{
	char root[1024], gen_cmd[3000];
	cr_assert_eq(system(PYTHON " -c 'import zmq, google.protobuf' >/dev/null 2>&1"), 0,
	             PYTHON " cannot import zmq and google.protobuf: apt-get install -y " PACKAGES);
	cr_assert_eq(system("command -v protoc >/dev/null 2>&1"), 0,
	             "protoc is missing: apt-get install -y " PACKAGES);
	repo_root(root, sizeof(root));
	char *gen = fs_test_tmpdir();
	cr_assert_not_null(gen);
	snprintf(gen_cmd, sizeof(gen_cmd),
	         "protoc --python_out=%s -I %s/proto %s/proto/fieldsync/v1/sync.proto", gen, root,
	         root);
	cr_assert_eq(system(gen_cmd), 0, "%s", gen_cmd);

	setenv("FIELDSYNC_EVENT_RETENTION_COUNT", "50", 1);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	unsetenv("FIELDSYNC_EVENT_RETENTION_COUNT");
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	/* Rounds of 100, 100, 100, 1 events: the last round keeps 251..300, then adds 301. */
	push_cases(s, "p0", 100);
	push_cases(s, "p1", 100);
	push_cases(s, "p2", 100);
	push_cases(s, "p3", 1);
	char *out = NULL, *err = NULL;
	int n;
	long first, last;

	/* From 0: exit 80, nothing delivered, the gap named. */
	int st = run_scheduler(root, gen, d, "--since 0 --idle-exit 3", &out, &err);
	cr_expect_eq(st, 80, "scheduler.py --since 0 exited %d; stderr:\n%s", st, err);
	cr_expect_str_eq(out, "", "nothing is delivered past a gap");
	cr_expect_not_null(strstr(err, "events 1..250"), "stderr:\n%s", err);
	free(out);
	free(err);

	/* --on-trimmed=skip: a warning, then every kept event from 251. */
	st = run_scheduler(root, gen, d, "--since 0 --on-trimmed skip --count 51", &out, &err);
	cr_expect_eq(st, 0, "stderr:\n%s", err);
	seqs_of(out, &n, &first, &last);
	cr_expect_eq(n, 51);
	cr_expect_eq(first, 251);
	cr_expect_eq(last, 301);
	cr_expect_not_null(strstr(err, "trimmed"), "stderr:\n%s", err);
	free(out);
	free(err);

	/* A cursor at 250 (its own event trimmed, nothing after it): no error. */
	st = run_scheduler(root, gen, d, "--since 250 --count 51", &out, &err);
	cr_expect_eq(st, 0, "stderr:\n%s", err);
	seqs_of(out, &n, &first, &last);
	cr_expect_eq(n, 51);
	cr_expect_eq(first, 251);
	free(out);
	free(err);

	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(gen);
	free(gen);
}

/* ---- the SDK's watcher (fieldsync watch) ------------------------------------- */

#include "fieldsync/fieldsync.h"

/*
 * libfieldsync's watcher from 0 after trimming: told FS_ERR_TRIMMED once
 * (never a protocol error, never a silent gap), its cursor moved to the
 * oldest kept event - 1, then handed the oldest kept event and the rest in
 * order. A watcher whose only missing event is its cursor's own is not told.
 */
Test(event_retention, the_sdk_watcher_is_told_trimmed_once_then_goes_on)
{
	const char *args[] = {"--event-retention-count", "30", NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	for (int k = 0; k < 3; k++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "w%d", k);
		push_cases(s, tag, 40);
	}
	/* the trim runs in writer rounds: wait until the store keeps 30 */
	long long oldest = metric_moved(d, "fieldsync_reminder_events_oldest_seq", -1);
	for (int i = 0; i < 400 && oldest < 91; i++) {
		usleep(50000);
		oldest = metric(d, "fieldsync_reminder_events_oldest_seq");
	}
	cr_assert_eq(oldest, 91, "120 events, 30 kept: the oldest kept is 91, not %lld", oldest);

	fs_watch_opts o = {0};
	o.sync_endpoint = fs_test_daemon_endpoint(d);
	o.reminder_endpoint = fs_test_daemon_reminder_endpoint(d);
	fs_watcher *w = NULL;
	cr_assert_eq(fs_watcher_open(&o, &w), FS_OK);
	const fs_reminder *ev = NULL;
	fs_err e = fs_watcher_next(w, 10000, &ev);
	cr_assert_eq(e, FS_ERR_TRIMMED, "a watcher from 0 is told: %s", fs_strerror(e));
	cr_expect_eq(fs_watcher_cursor(w), 90);
	for (uint64_t want = 91; want <= 120; want++) {
		e = fs_watcher_next(w, 10000, &ev);
		cr_assert_eq(e, FS_OK, "event %" PRIu64 ": %s", want, fs_strerror(e));
		cr_assert_eq(ev->seq, want);
	}
	fs_watcher_close(&w);

	/* since_seq 90: event 90 itself is gone, nothing after it is */
	o.since_seq = 90;
	cr_assert_eq(fs_watcher_open(&o, &w), FS_OK);
	e = fs_watcher_next(w, 10000, &ev);
	cr_assert_eq(e, FS_OK, "a watcher at the edge is not told: %s", fs_strerror(e));
	cr_expect_eq(ev->seq, 91);
	fs_watcher_close(&w);

	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
