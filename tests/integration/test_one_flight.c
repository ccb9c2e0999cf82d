/*
 * One flight (issue 15): a tablet that synced with a daemon before sends
 * Hello, its first change sets and its Pull without waiting for Welcome
 * (client-sdk/src/sync.c sync_early, with the last Welcome kept in the
 * store's meta), and stays safe when that daemon changed meanwhile.
 *
 * What is checked (never a time):
 *   - against the real fieldsyncd through a relay that holds every answer
 *     back until the tablet's Pull has arrived: a second sync succeeds, so
 *     Hello, every change set and the Pull were sent before any answer (an
 *     SDK that waits for Welcome never gets one and times out); every edit
 *     is acknowledged once (APPLIED, no DUPLICATE), the colleague's records
 *     arrive, the checkpoint is the daemon's feed position;
 *   - a fake daemon on a raw ROUTER socket (fault injection) that, like a
 *     daemon rolled back to a release without compressed pushes, reads a
 *     compressed change set as an empty one and answers it (and any resend
 *     of its changeset_id) with no result: the SDK requeues the changes
 *     under a new changeset_id and delivers every one of them, once;
 *   - a relay that drops the push answers and cuts the connection after
 *     two pull pages: the sync fails, the checkpoint is the last page the
 *     tablet committed (never ahead), nothing is acknowledged that was not
 *     answered; the next sync delivers everything: the daemon's feed holds
 *     each change once and the tablet has every colleague record.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define T_MS 20000
#define CUT_MS 3000 /* the cut sync's deadline: it can only end by it */

typedef Fieldsync__V1__Envelope envelope;

static fs_test_daemon *d;
static void *zctx;
static char *dir;
static fs_store *tab;

/* ---- a relay between the tablet and the daemon ------------------------- */

typedef struct relay {
	pthread_t thread;
	pthread_mutex_t mu;
	atomic_bool stop;
	void *front, *back;
	char endpoint[64];
	/* modes, set while no sync runs */
	bool hold_until_pull;   /* keep answers until the client's Pull came */
	bool drop_push_replies; /* never forward a PushReply */
	int cut_after_pages;    /* after this many PullReplies forwarded, drop all */
	/* what it saw (under mu) */
	char log[256];         /* requests in order: H P L (Pull) */
	size_t log_at_release; /* requests seen when the held answers went out */
	bool released, dead;
	int pages;                          /* PullReplies forwarded */
	uint64_t last_page_seq;             /* last_seq of the last forwarded page */
	uint64_t applied, duplicate, other; /* results of forwarded PushReplies */
	uint8_t rid[256];
	size_t rid_len;
	zmq_msg_t held[256];
	size_t n_held;
} relay;

static relay *rl;

static void
relay_send_front(relay *r, zmq_msg_t *body)
{
	zmq_send(r->front, r->rid, r->rid_len, ZMQ_SNDMORE);
	zmq_msg_send(body, r->front, 0);
	zmq_msg_close(body);
}

/* One answer from the daemon: counted, then forwarded, held or dropped. */
static void
relay_answer(relay *r, zmq_msg_t *body)
{
	envelope *e = fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(body), zmq_msg_data(body));
	bool drop = r->dead;
	if (e != NULL && !drop) {
		if (e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			if (r->drop_push_replies)
				drop = true;
			else
				for (size_t i = 0; i < e->push_reply->n_results; i++) {
					int st = e->push_reply->results[i]->status;
					if (st == FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED)
						r->applied++;
					else if (st ==
					         FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE)
						r->duplicate++;
					else
						r->other++;
				}
		} else if (e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY) {
			r->pages++;
			r->last_page_seq = e->pull_reply->last_seq;
			if (r->cut_after_pages > 0 && r->pages >= r->cut_after_pages)
				r->dead = true; /* this page goes out; nothing after it */
		}
	}
	if (e != NULL)
		fieldsync__v1__envelope__free_unpacked(e, NULL);
	if (drop) {
		zmq_msg_close(body);
		return;
	}
	if (r->hold_until_pull && !r->released && r->n_held < 256) {
		zmq_msg_init(&r->held[r->n_held]);
		zmq_msg_move(&r->held[r->n_held++], body);
		zmq_msg_close(body);
		return;
	}
	relay_send_front(r, body);
}

/* One request from the tablet: logged, forwarded (unless cut). */
static void
relay_request(relay *r, zmq_msg_t *body)
{
	envelope *e = fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(body), zmq_msg_data(body));
	char c = '?';
	if (e != NULL)
		c = e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_HELLO  ? 'H'
		    : e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH ? 'P'
		    : e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL ? 'L'
		                                                         : '?';
	if (e != NULL)
		fieldsync__v1__envelope__free_unpacked(e, NULL);
	size_t n = strlen(r->log);
	if (n + 1 < sizeof(r->log)) {
		r->log[n] = c;
		r->log[n + 1] = '\0';
	}
	if (r->dead) {
		zmq_msg_close(body);
		return;
	}
	zmq_msg_send(body, r->back, 0);
	zmq_msg_close(body);
	if (c == 'L' && r->hold_until_pull && !r->released) {
		r->released = true;
		r->log_at_release = strlen(r->log);
		for (size_t i = 0; i < r->n_held; i++)
			relay_send_front(r, &r->held[i]);
		r->n_held = 0;
	}
}

static void *
relay_run(void *arg)
{
	relay *r = arg;
	zmq_pollitem_t it[2] = {{r->front, 0, ZMQ_POLLIN, 0}, {r->back, 0, ZMQ_POLLIN, 0}};
	while (!atomic_load(&r->stop)) {
		if (zmq_poll(it, 2, 20) <= 0)
			continue;
		pthread_mutex_lock(&r->mu);
		if (it[0].revents & ZMQ_POLLIN) {
			zmq_msg_t id, body;
			zmq_msg_init(&id);
			zmq_msg_init(&body);
			if (zmq_msg_recv(&id, r->front, 0) >= 0 &&
			    zmq_msg_recv(&body, r->front, 0) >= 0) {
				r->rid_len =
					zmq_msg_size(&id) < sizeof(r->rid) ? zmq_msg_size(&id) : 0;
				memcpy(r->rid, zmq_msg_data(&id), r->rid_len);
				relay_request(r, &body);
			}
			zmq_msg_close(&id);
			zmq_msg_close(&body);
		}
		if (it[1].revents & ZMQ_POLLIN) {
			zmq_msg_t body;
			zmq_msg_init(&body);
			if (zmq_msg_recv(&body, r->back, 0) >= 0)
				relay_answer(r, &body);
			zmq_msg_close(&body);
		}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* A relay to the daemon on a port of its own (the tablet's endpoint). */
static relay *
relay_start(void)
{
	relay *r = calloc(1, sizeof(*r));
	int linger = 0;
	pthread_mutex_init(&r->mu, NULL);
	r->front = zmq_socket(zctx, ZMQ_ROUTER);
	r->back = zmq_socket(zctx, ZMQ_DEALER);
	zmq_setsockopt(r->front, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(r->back, ZMQ_LINGER, &linger, sizeof(linger));
	snprintf(r->endpoint, sizeof(r->endpoint), "tcp://127.0.0.1:%d", fs_test_free_port());
	cr_assert_eq(zmq_bind(r->front, r->endpoint), 0);
	cr_assert_eq(zmq_connect(r->back, fs_test_daemon_endpoint(d)), 0);
	pthread_create(&r->thread, NULL, relay_run, r);
	return r;
}

/* Clears what the relay saw and sets its modes for the next sync. */
static void
relay_mode(relay *r, bool hold, bool drop_push_replies, int cut_after_pages)
{
	pthread_mutex_lock(&r->mu);
	r->hold_until_pull = hold;
	r->drop_push_replies = drop_push_replies;
	r->cut_after_pages = cut_after_pages;
	r->log[0] = '\0';
	r->log_at_release = 0;
	r->released = r->dead = false;
	r->pages = 0;
	r->last_page_seq = 0;
	r->applied = r->duplicate = r->other = 0;
	pthread_mutex_unlock(&r->mu);
}

/* Points the relay at another daemon (the tablet's endpoint stays). */
static void
relay_retarget(relay *r, const char *old_ep, const char *new_ep)
{
	pthread_mutex_lock(&r->mu);
	zmq_disconnect(r->back, old_ep);
	cr_assert_eq(zmq_connect(r->back, new_ep), 0);
	pthread_mutex_unlock(&r->mu);
}

static void
relay_stop(relay **pr)
{
	relay *r = *pr;
	if (r == NULL)
		return;
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	for (size_t i = 0; i < r->n_held; i++)
		zmq_msg_close(&r->held[i]);
	zmq_close(r->front);
	zmq_close(r->back);
	pthread_mutex_destroy(&r->mu);
	free(r);
	*pr = NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static void
teardown(void)
{
	relay_stop(&rl);
	fs_store_close(&tab);
	if (dir != NULL)
		fs_test_rm_rf(dir);
	free(dir);
	dir = NULL;
	if (zctx != NULL)
		zmq_ctx_term(zctx);
	zctx = NULL;
	if (d != NULL)
		fs_test_daemon_stop(&d);
}

TestSuite(one_flight, .fini = teardown, .timeout = 300);

static void
setup(void)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d, "the daemon must start");
	zctx = zmq_ctx_new();
	dir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(dir, "team-a", &tab), FS_OK);
}

/* The last sync's message (fs_status). */
static const char *
last_msg(void)
{
	static fs_status st;
	if (fs_status_get(tab, &st) != FS_OK)
		return "?";
	return st.last_error_msg;
}

/* A colleague pushes n records col00000.. in sets of 100 on a raw DEALER. */
static void
colleague_push(int n)
{
	void *s = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));
	for (int at = 0; at < n; at += 100) {
		char cs[64];
		snprintf(cs, sizeof(cs), "colleague-%d", at);
		fs_test_push *p = fs_test_push_new(cs);
		for (int i = at; i < at + 100 && i < n; i++) {
			char id[32], body[128];
			snprintf(id, sizeof(id), "col%05d", i);
			int len = snprintf(body, sizeof(body),
			                   "{\"note\":\"kollegaens notat nr. %d\"}", i);
			fs_test_push_add(p, "journal", id, "team-a", "colleague:1", false, body,
			                 (size_t)len);
		}
		envelope *rep = fs_test_call(s, fs_test_push_envelope(p, (uint64_t)at + 1), T_MS);
		fs_test_push_free(p);
		cr_assert_not_null(rep);
		cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	}
	zmq_close(s);
}

/* The daemon's feed position (Welcome.feed_seq) on a raw DEALER. */
static uint64_t
feed_seq(void)
{
	void *s = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "one-flight-observer";
	h.client = "test_one_flight";
	h.accept_encoding = 1; /* a client of this release: Welcome has feed_seq */
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	e.request_id = 1;
	envelope *rep = fs_test_call(s, &e, T_MS);
	cr_assert_not_null(rep);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	uint64_t f = rep->welcome->feed_seq;
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	zmq_close(s);
	return f;
}

/* n local edits t00000.. (from `from`), a few hundred compressible bytes each. */
static void
edits(int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char id[32], body[400];
		snprintf(id, sizeof(id), "t%05d", i);
		int len = snprintf(body, sizeof(body),
		                   "{\"note\":\"samtale om hverdagen, aftaler og opfoelgning; "
		                   "samtale om hverdagen, aftaler og opfoelgning; samtale om "
		                   "hverdagen, aftaler og opfoelgning nr. %d\"}",
		                   i);
		cr_assert_eq(fs_put(tab, "journal", id, NULL, body, (size_t)len), FS_OK);
	}
}

/* ---- 1: one flight against the real daemon ------------------------------ */

Test(one_flight, a_second_sync_sends_hello_its_change_sets_and_the_pull_before_any_answer)
{
	setup();
	rl = relay_start();
	fs_sync_opts o = {0};
	o.endpoint = rl->endpoint;
	o.timeout_ms = T_MS;
	fs_sync_stats st;

	/* first sync: this daemon is unknown, Hello waits for Welcome */
	edits(0, 10);
	relay_mode(rl, false, false, 0);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_assert_eq(st.pushed, 10);

	colleague_push(300);
	edits(10, 250); /* several change sets */
	relay_mode(rl, true, false, 0);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK,
	             "every answer is held until the Pull has come: an SDK that waits for "
	             "Welcome never gets one (%s)",
	             last_msg());
	pthread_mutex_lock(&rl->mu);
	char log[256];
	snprintf(log, sizeof(log), "%.*s", (int)rl->log_at_release, rl->log);
	uint64_t applied = rl->applied, duplicate = rl->duplicate, other = rl->other;
	pthread_mutex_unlock(&rl->mu);
	/* Hello, then the change sets (at most the window), then the Pull */
	size_t n = strlen(log);
	cr_assert_geq(n, 3, "requests in the first flight: %s", log);
	cr_assert_eq(log[0], 'H', "requests in the first flight: %s", log);
	cr_assert_eq(log[n - 1], 'L', "requests in the first flight: %s", log);
	for (size_t i = 1; i + 1 < n; i++)
		cr_assert_eq(log[i], 'P', "requests in the first flight: %s", log);
	cr_assert_eq(st.pushed, 250, "every edit acknowledged");
	cr_assert_eq(applied, 250, "each applied once");
	cr_assert_eq(duplicate + other, 0);
	cr_assert_eq(st.pulled, 300, "the colleague's records, not the tablet's own");
	fs_status status;
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.pending, 0);
	cr_assert_eq(status.last_seq, feed_seq(), "the pull covers the pushes of its flight");
	uint64_t feed = feed_seq();
	cr_assert_eq(feed, 10 + 300 + 250, "each change in the feed once (%llu)",
	             (unsigned long long)feed);
}

/* ---- 2: a daemon rolled back to a release without compressed pushes ----- */

typedef struct fake {
	pthread_t thread;
	atomic_bool stop;
	atomic_bool old; /* answer as a daemon without issue 15's fields */
	void *router;
	char endpoint[64];
	pthread_mutex_t mu;
	char zipped_ids[8][64]; /* changeset_ids read as empty (stored answers) */
	int n_zipped;
	int delivered[64]; /* times each t000NN was received */
	char delivered_cs[64][64];
	int pushes, bad;
} fake;

static bool
fake_zipped(fake *f, const char *cs)
{
	for (int i = 0; i < f->n_zipped; i++)
		if (strcmp(f->zipped_ids[i], cs) == 0)
			return true;
	return false;
}

static void
fake_reply(fake *f, zmq_msg_t *id, envelope *rep)
{
	size_t len = fieldsync__v1__envelope__get_packed_size(rep);
	uint8_t *buf = malloc(len ? len : 1);
	fieldsync__v1__envelope__pack(rep, buf);
	zmq_send(f->router, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
	zmq_send(f->router, buf, len, 0);
	free(buf);
}

static void
fake_answer(fake *f, zmq_msg_t *id, envelope *req)
{
	envelope rep = FIELDSYNC__V1__ENVELOPE__INIT;
	rep.request_id = req->request_id;
	bool old = atomic_load(&f->old);
	if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_HELLO) {
		Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
		w.protocol = 1;
		w.server_id = "fake";
		w.generation = "fake-generation-1";
		w.max_changes_per_push = 100;
		w.max_message_bytes = 16 << 20;
		if (!old) {
			w.encodings = 1; /* zstd */
			w.max_window = 16;
		}
		rep.body_case = FIELDSYNC__V1__ENVELOPE__BODY_WELCOME;
		rep.welcome = &w;
		fake_reply(f, id, &rep);
	} else if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH) {
		Fieldsync__V1__PushRequest *p = req->push;
		Fieldsync__V1__PushReply pr = FIELDSYNC__V1__PUSH_REPLY__INIT;
		Fieldsync__V1__ChangeResult res[100], *rp[100];
		pr.changeset_id = p->changeset_id;
		pthread_mutex_lock(&f->mu);
		f->pushes++;
		if (old && (p->changes_zstd.len > 0 || fake_zipped(f, p->changeset_id))) {
			/* release 1 knows no field 20: an empty set, applied, its
			 * answer kept under this changeset_id */
			if (!fake_zipped(f, p->changeset_id) && f->n_zipped < 8)
				snprintf(f->zipped_ids[f->n_zipped++], 64, "%s", p->changeset_id);
		} else {
			if (p->changes_zstd.len > 0)
				f->bad++; /* the fake of this release reads only plain sets */
			for (size_t i = 0; i < p->n_changes && i < 100; i++) {
				int k = atoi(p->changes[i]->record->id + 1);
				if (k >= 0 && k < 64) {
					f->delivered[k]++;
					snprintf(f->delivered_cs[k], 64, "%s", p->changeset_id);
				}
				fieldsync__v1__change_result__init(&res[i]);
				res[i].status = FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED;
				res[i].seq = (uint64_t)f->pushes * 1000 + i;
				rp[i] = &res[i];
			}
			pr.n_results = p->n_changes;
			pr.results = rp;
		}
		pthread_mutex_unlock(&f->mu);
		rep.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY;
		rep.push_reply = &pr;
		fake_reply(f, id, &rep);
	} else if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL) {
		Fieldsync__V1__PullReply pl = FIELDSYNC__V1__PULL_REPLY__INIT;
		rep.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
		rep.pull_reply = &pl; /* nothing new; more = false ends any window */
		fake_reply(f, id, &rep);
	}
}

static void *
fake_run(void *arg)
{
	fake *f = arg;
	zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
	while (!atomic_load(&f->stop)) {
		if (zmq_poll(&it, 1, 20) <= 0)
			continue;
		zmq_msg_t id, body;
		zmq_msg_init(&id);
		zmq_msg_init(&body);
		if (zmq_msg_recv(&id, f->router, 0) >= 0 &&
		    zmq_msg_recv(&body, f->router, 0) >= 0) {
			envelope *req = fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&body),
			                                                zmq_msg_data(&body));
			if (req != NULL) {
				fake_answer(f, &id, req);
				fieldsync__v1__envelope__free_unpacked(req, NULL);
			}
		}
		zmq_msg_close(&id);
		zmq_msg_close(&body);
	}
	return NULL;
}

Test(one_flight,
     a_compressed_set_read_as_empty_by_a_rolled_back_daemon_is_pushed_again_under_a_new_id)
{
	zctx = zmq_ctx_new();
	dir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(dir, "team-a", &tab), FS_OK);
	fake *f = calloc(1, sizeof(*f));
	int linger = 0;
	pthread_mutex_init(&f->mu, NULL);
	f->router = zmq_socket(zctx, ZMQ_ROUTER);
	zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof(linger));
	snprintf(f->endpoint, sizeof(f->endpoint), "tcp://127.0.0.1:%d", fs_test_free_port());
	cr_assert_eq(zmq_bind(f->router, f->endpoint), 0);
	pthread_create(&f->thread, NULL, fake_run, f);

	fs_sync_opts o = {0};
	o.endpoint = f->endpoint;
	o.timeout_ms = T_MS;
	fs_sync_stats st;
	/* the tablet meets the daemon of this release: its Welcome is kept */
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);

	/* the daemon is rolled back; the tablet's next sync sends its set,
	 * compressed as the kept Welcome allowed, before Welcome comes */
	atomic_store(&f->old, true);
	edits(0, 40);
	fs_err err = fs_sync(tab, &o, &st);
	fs_err err2 = fs_sync(tab, &o, &st); /* whatever is left */
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	zmq_close(f->router);

	cr_assert_eq(f->bad, 0);
	cr_assert_eq(f->n_zipped, 1, "the first set went out compressed before Welcome");
	cr_assert_eq(err, FS_OK, "the unread set is requeued, not stuck (%s)", last_msg());
	cr_assert_eq(err2, FS_OK);
	for (int k = 0; k < 40; k++) {
		cr_assert_eq(f->delivered[k], 1, "edit %d delivered once (%d)", k, f->delivered[k]);
		cr_assert_str_neq(f->delivered_cs[k], f->zipped_ids[0],
		                  "pushed again under a new changeset_id");
	}
	fs_status status;
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.pending, 0, "nothing lost");
	cr_assert_eq(status.failed, 0);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* ---- 3: the connection cut mid-flight ---------------------------------- */

Test(one_flight, a_flight_cut_after_two_pages_loses_nothing_and_applies_nothing_twice)
{
	setup();
	rl = relay_start();
	fs_sync_opts o = {0};
	o.endpoint = rl->endpoint;
	o.timeout_ms = T_MS;
	o.pull_limit = 100;
	fs_sync_stats st;
	relay_mode(rl, false, false, 0);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK); /* the daemon's Welcome is kept */

	colleague_push(1000);
	edits(0, 150);
	/* the push answers never come back and the link dies after two pages */
	relay_mode(rl, false, true, 2);
	o.timeout_ms = CUT_MS;
	fs_err err = fs_sync(tab, &o, &st);
	cr_assert_neq(err, FS_OK, "the cut sync cannot succeed");
	pthread_mutex_lock(&rl->mu);
	uint64_t page_seq = rl->last_page_seq;
	int pages = rl->pages;
	pthread_mutex_unlock(&rl->mu);
	cr_assert_eq(pages, 2);
	fs_status status;
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.last_seq, page_seq,
	             "the checkpoint is the last committed page's (%llu, page %llu)",
	             (unsigned long long)status.last_seq, (unsigned long long)page_seq);
	/* the colleague's records are seqs 1..1000, the tablet's own (not echoed) after */
	cr_assert_eq(st.pulled, page_seq, "what the tablet got it committed");
	cr_assert_eq(st.pushed, 0, "nothing acknowledged without an answer");
	cr_assert_eq(status.pending, 150, "every edit still queued");

	relay_mode(rl, false, false, 0);
	o.timeout_ms = T_MS;
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK, "%s", last_msg());
	cr_assert_eq(st.pushed, 150, "the sets in flight resent and answered");
	cr_assert_eq(st.pulled, 1000 - page_seq, "the rest of the colleague's records");
	pthread_mutex_lock(&rl->mu);
	uint64_t applied = rl->applied;
	pthread_mutex_unlock(&rl->mu);
	cr_assert_eq(applied, 150, "the daemon's stored answers: applied once");
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.pending, 0);
	uint64_t feed = feed_seq();
	cr_assert_eq(feed, 1000 + 150, "each change in the feed once (%llu)",
	             (unsigned long long)feed);
	cr_assert_eq(status.last_seq, feed);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_assert_eq(st.pushed + st.pulled + st.changesets, 0, "nothing left to do");
}

/* ---- 4: one flight to a daemon of another generation ------------------- */

Test(one_flight, a_flight_to_another_generation_pulls_from_0_and_pushes_its_values_again)
{
	setup();
	rl = relay_start();
	fs_sync_opts o = {0};
	o.endpoint = rl->endpoint;
	o.timeout_ms = T_MS;
	fs_sync_stats st;
	edits(0, 20);
	relay_mode(rl, false, false, 0);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_assert_eq(st.pushed, 20);
	fs_status status;
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.last_seq, 20);

	/* the same address now reaches a daemon of another history (a fresh
	 * one: another generation) where a colleague pushed 50 records */
	char old_ep[64];
	snprintf(old_ep, sizeof(old_ep), "%s", fs_test_daemon_endpoint(d));
	fs_test_daemon_stop(&d);
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	relay_retarget(rl, old_ep, fs_test_daemon_endpoint(d));
	colleague_push(50);
	edits(20, 5);
	relay_mode(rl, false, false, 0);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK, "%s", last_msg());
	pthread_mutex_lock(&rl->mu);
	char first = rl->log[0], second = rl->log[1];
	pthread_mutex_unlock(&rl->mu);
	cr_assert(first == 'H' && second == 'P', "the sync began with its flight");
	/* the early Pull asked from checkpoint 20 of the old history; the
	 * pull that counts starts from 0: every colleague record arrives */
	cr_assert_eq(st.pulled, 50, "pulled %llu", (unsigned long long)st.pulled);
	cr_assert_eq(st.requeued, 20, "this device's values pushed again");
	cr_assert_eq(st.pushed, 25);
	uint64_t feed = feed_seq();
	cr_assert_eq(feed, 50 + 5 + 20, "feed %llu", (unsigned long long)feed);
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.pending, 0);
	cr_assert_eq(status.last_seq, feed);
}
