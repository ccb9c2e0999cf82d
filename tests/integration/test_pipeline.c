/*
 * A pipelined sync (issue 15): a peer that sends its Pull while its Push is
 * still at the daemon's writer. The daemon answers a connection's Pull only
 * after the Pushes that connection sent before it were answered (per
 * connection order, daemon/sync_endpoint.c pull_order_*), so the pull's
 * feed position covers what those pushes committed.
 *
 * What is checked (never a time), against the real fieldsyncd:
 *   - on a raw DEALER, Push then Pull back to back, many rounds: every Pull
 *     reply comes after its Push reply and its last_seq is at or past the
 *     push reply's server_seq (the old daemon answered the Pull at once,
 *     before the group commit, and fails this);
 *   - several Pushes (one of them refused at validation) then one Pull:
 *     every push is answered before the pull, whose last_seq covers them all;
 *   - the SDK (which sends its Pull with its last change sets in flight):
 *     after a sync with local edits the checkpoint is the daemon's feed
 *     position, every edit is acknowledged once, and another sync has
 *     nothing to push or pull.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define T_MS 20000
#define ROUNDS 20
#define PER_PUSH 100

typedef Fieldsync__V1__Envelope envelope;

static fs_test_daemon *d;
static void *zctx, *dealer;
static char *dir;
static fs_store *tab;

static void
teardown(void)
{
	fs_store_close(&tab);
	if (dir != NULL)
		fs_test_rm_rf(dir);
	free(dir);
	dir = NULL;
	if (dealer != NULL)
		zmq_close(dealer);
	if (zctx != NULL)
		zmq_ctx_term(zctx);
	dealer = zctx = NULL;
	if (d != NULL)
		fs_test_daemon_stop(&d);
}

TestSuite(pipeline, .fini = teardown, .timeout = 300);

static void
setup(void)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d, "the daemon must start");
	zctx = zmq_ctx_new();
	dealer = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));
}

/* Hello as replica `replica`; accept: Hello.accept_encoding. Returns the
 * Welcome's feed_seq (0 from a daemon without issue 15's fields). */
static uint64_t
raw_hello(void *sock, const char *replica, uint32_t accept)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = (char *)replica;
	h.client = "test_pipeline";
	h.accept_encoding = accept;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	e.request_id = 1;
	envelope *rep = fs_test_call(sock, &e, T_MS);
	cr_assert_not_null(rep);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	uint64_t feed = rep->welcome->feed_seq;
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	return feed;
}

/* Sends change set `cs` of n new journal records (ids from first) as
 * request rid, without waiting. valid false: a collection name the daemon
 * refuses (INVALID, never sent to the writer). */
static void
send_push(const char *cs, int first, int n, uint64_t rid, bool valid)
{
	fs_test_push *p = fs_test_push_new(cs);
	for (int i = first; i < first + n; i++) {
		char id[32], body[160];
		snprintf(id, sizeof(id), "p%06d", i);
		int len = snprintf(body, sizeof(body),
		                   "{\"note\":\"samtale om hverdagen, nummer %d, med forældrene\"}",
		                   i);
		fs_test_push_add(p, valid ? "journal" : "Not-A-Collection", id, "team-a",
		                 "pipe-peer:1", false, body, (size_t)len);
	}
	envelope *e = fs_test_push_envelope(p, rid);
	cr_assert(fs_test_send(dealer, e));
	fs_test_push_free(p);
}

static void
send_pull(uint64_t since, uint64_t rid)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.since_seq = since;
	pr.limit = 100000;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	e.request_id = rid;
	cr_assert(fs_test_send(dealer, &e));
}

static envelope *
recv_reply(void)
{
	envelope *rep = fs_test_recv(dealer, T_MS);
	cr_assert_not_null(rep, "every request is answered");
	return rep;
}

Test(pipeline, a_pull_never_overtakes_the_same_connections_push)
{
	setup();
	raw_hello(dealer, "pipe-peer", 0);
	uint64_t since = 0;
	for (int round = 0; round < ROUNDS; round++) {
		char cs[64];
		snprintf(cs, sizeof(cs), "pipe-set-%d", round);
		uint64_t push_rid = 100 + 2 * (uint64_t)round, pull_rid = push_rid + 1;
		send_push(cs, round * PER_PUSH, PER_PUSH, push_rid, true);
		send_pull(since, pull_rid); /* back to back: the push is still at the writer */
		envelope *first = recv_reply(), *second = recv_reply();
		cr_assert_eq(first->request_id, push_rid,
		             "round %d: the push is answered before the pull behind it (got %llu)",
		             round, (unsigned long long)first->request_id);
		cr_assert_eq(first->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		cr_assert_eq(first->push_reply->n_results, PER_PUSH);
		for (size_t i = 0; i < PER_PUSH; i++)
			cr_assert_eq(first->push_reply->results[i]->status,
			             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
		cr_assert_eq(second->request_id, pull_rid);
		cr_assert_eq(second->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		cr_assert_geq(second->pull_reply->last_seq, first->push_reply->server_seq,
		              "round %d: the pull (last_seq %llu) missed the push committed "
		              "before it (server_seq %llu)",
		              round, (unsigned long long)second->pull_reply->last_seq,
		              (unsigned long long)first->push_reply->server_seq);
		cr_assert_not(second->pull_reply->more);
		since = second->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(first, NULL);
		fieldsync__v1__envelope__free_unpacked(second, NULL);
	}
}

Test(pipeline, a_pull_waits_for_every_earlier_push_of_its_connection)
{
	setup();
	raw_hello(dealer, "pipe-peer", 1);
	/* three change sets, one refused at validation, then a windowed pull */
	send_push("multi-1", 0, PER_PUSH, 10, true);
	send_push("multi-2", PER_PUSH, PER_PUSH, 11, false);
	send_push("multi-3", 2 * PER_PUSH, PER_PUSH, 12, true);
	send_pull(0, 13);
	uint64_t max_seq = 0;
	bool answered[3] = {false, false, false};
	for (int k = 0; k < 4; k++) {
		envelope *rep = recv_reply();
		if (rep->request_id == 13) {
			for (int i = 0; i < 3; i++)
				cr_assert(answered[i],
				          "the pull overtook push %d of its connection", i + 1);
			cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
			cr_assert_geq(rep->pull_reply->last_seq, max_seq,
			              "the pull (last_seq %llu) missed a committed push (%llu)",
			              (unsigned long long)rep->pull_reply->last_seq,
			              (unsigned long long)max_seq);
			cr_assert_eq(k, 3);
		} else {
			cr_assert(rep->request_id >= 10 && rep->request_id <= 12);
			answered[rep->request_id - 10] = true;
			if (rep->request_id == 11) { /* refused as a whole, nothing applied */
				cr_assert(rep->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR ||
				          (rep->body_case ==
				                   FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY &&
				           rep->push_reply->results[0]->status ==
				                   FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED));
			} else {
				cr_assert_eq(rep->body_case,
				             FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
				if (rep->push_reply->server_seq > max_seq)
					max_seq = rep->push_reply->server_seq;
			}
		}
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	}
	cr_assert_geq(max_seq, 2 * PER_PUSH, "both valid sets were committed");
}

Test(pipeline, a_pipelined_sdk_sync_ends_with_the_checkpoint_at_its_own_pushes)
{
	setup();
	dir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(dir, "team-a", &tab), FS_OK);
	for (int i = 0; i < 450; i++) { /* several change sets in flight */
		char id[32], body[96];
		snprintf(id, sizeof(id), "t%05d", i);
		int len = snprintf(body, sizeof(body), "{\"note\":\"en lille rettelse %d\"}", i);
		cr_assert_eq(fs_put(tab, "journal", id, NULL, body, (size_t)len), FS_OK);
	}
	fs_sync_opts o = {0};
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	fs_sync_stats st;
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_assert_eq(st.pushed, 450, "every edit acknowledged once");
	cr_assert_eq(st.failed, 0);
	fs_status status;
	cr_assert_eq(fs_status_get(tab, &status), FS_OK);
	cr_assert_eq(status.pending, 0);
	uint64_t feed = raw_hello(dealer, "pipe-observer", 1);
	cr_assert_eq(status.last_seq, feed,
	             "the pull sent with the pushes in flight covers them: checkpoint %llu, "
	             "feed %llu",
	             (unsigned long long)status.last_seq, (unsigned long long)feed);
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_assert_eq(st.pushed + st.pulled + st.changesets, 0, "nothing left to do");
}
