/*
 * The real fieldsyncd on a loopback port, driven over real DEALER sockets:
 * push, conflicts, retries, atomic change sets, bad input, the feed.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;

static fs_test_daemon *d;
static void *ctx, *sock;
static uint64_t next_rid = 100;

static void
setup(void)
{
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d, "the daemon must start");
	ctx = zmq_ctx_new();
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
}

static void
teardown(void)
{
	zmq_close(sock);
	zmq_ctx_term(ctx);
	if (d != NULL)
		cr_expect_eq(fs_test_daemon_stop(&d), 0, "SIGTERM must end the daemon with exit 0");
}

/* Pushes p and returns the reply (caller frees); asserts a reply came. */
static env_t *
push(fs_test_push *p)
{
	env_t *e = fs_test_push_envelope(p, next_rid++);
	env_t *r = fs_test_call(sock, e, 10000);
	cr_assert_not_null(r, "push must be answered");
	return r;
}

static env_t *
pull(uint64_t since, uint32_t limit)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.since_seq = since;
	pr.limit = limit;
	e.request_id = next_rid++;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r, "pull must be answered");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	return r;
}

/* The record's state in the feed, or NULL (caller frees the envelope *hold). */
static Fieldsync__V1__RecordState *
find_record(const char *collection, const char *id, env_t **hold)
{
	*hold = pull(0, 1000);
	for (size_t i = 0; i < (*hold)->pull_reply->n_records; i++) {
		Fieldsync__V1__RecordState *rs = (*hold)->pull_reply->records[i];
		if (strcmp(rs->collection, collection) == 0 && strcmp(rs->id, id) == 0)
			return rs;
	}
	return NULL;
}

static fs_test_push *
one(const char *csid, const char *id, const char *version, const char *payload)
{
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "note", id, "team-a", version, payload == NULL, payload,
	                 payload ? strlen(payload) : 0);
	return p;
}

TestSuite(sync, .init = setup, .fini = teardown, .timeout = 60);

Test(sync, hello_gets_welcome)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "tablet-1";
	h.client = "test";
	e.request_id = 7;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	env_t *r = fs_test_call(sock, &e, 5000);
	cr_assert_not_null(r);
	cr_assert_eq(r->request_id, 7);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	cr_expect_eq(r->welcome->protocol, 1);
	cr_expect_eq(strlen(r->welcome->server_id), 36);
	cr_expect_gt(r->welcome->max_changes_per_push, 0);
	cr_expect_eq(r->welcome->max_message_bytes, 16u << 20);
	cr_expect_gt(r->welcome->server_time_ms, 1700000000000LL);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	h.protocol = 2;
	r = fs_test_call(sock, &e, 5000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__UNSUPPORTED_PROTOCOL);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

Test(sync, conflict_becomes_siblings_and_resolving_write_collapses)
{
	fs_test_push *p = one("cs-1", "n1", "a:1", "base");
	env_t *r = push(p);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_assert_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	/* Two tablets edit the same version offline. */
	p = one("cs-2", "n1", "a:1,b:1", "from b");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	p = one("cs-3", "n1", "a:1,c:1", "from c");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	env_t *hold;
	Fieldsync__V1__RecordState *rs = find_record("note", "n1", &hold);
	cr_assert_not_null(rs);
	cr_assert_eq(rs->n_siblings, 2, "both concurrent values are kept");
	bool saw_b = false, saw_c = false;
	for (size_t i = 0; i < rs->n_siblings; i++) {
		ProtobufCBinaryData pl = rs->siblings[i]->payload;
		saw_b |= pl.len == 6 && memcmp(pl.data, "from b", 6) == 0;
		saw_c |= pl.len == 6 && memcmp(pl.data, "from c", 6) == 0;
	}
	cr_expect(saw_b && saw_c);
	fieldsync__v1__envelope__free_unpacked(hold, NULL);

	/* A delete concurrent with both is a conflict too: nothing is dropped. */
	p = one("cs-4", "n1", "a:1,d:1", NULL);
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__CONFLICT);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	/* The resolving write dominates every sibling. */
	p = one("cs-5", "n1", "a:1,b:2,c:1,d:1", "merged");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	rs = find_record("note", "n1", &hold);
	cr_assert_not_null(rs);
	cr_assert_eq(rs->n_siblings, 1);
	cr_expect_eq(rs->siblings[0]->payload.len, 6);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, "merged", 6), 0);
	fieldsync__v1__envelope__free_unpacked(hold, NULL);

	/* An old value arriving late is obsolete; the same value again a duplicate. */
	p = one("cs-6", "n1", "a:1,b:1", "from b");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__OBSOLETE);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	p = one("cs-7", "n1", "a:1,b:2,c:1,d:1", "merged");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
}

Test(sync, replayed_changeset_gets_the_same_reply)
{
	fs_test_push *p = fs_test_push_new("cs-replay");
	fs_test_push_add(p, "note", "r1", "team-a", "a:1", false, "x", 1);
	fs_test_push_add(p, "note", "r2", "team-a", "a:1", false, "y", 1);
	env_t *r1 = push(p);
	cr_assert_eq(r1->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	uint64_t seq_after_first = r1->push_reply->server_seq;

	/* Something else happens in between. */
	fs_test_push *q = one("cs-other", "r3", "a:1", "z");
	env_t *rq = push(q);
	fieldsync__v1__envelope__free_unpacked(rq, NULL);
	fs_test_push_free(q);

	env_t *r2 = push(p);
	cr_assert_eq(r2->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	uint8_t a[4096], b[4096];
	size_t la = fieldsync__v1__push_reply__pack(r1->push_reply, a);
	size_t lb = fieldsync__v1__push_reply__pack(r2->push_reply, b);
	cr_expect_eq(la, lb);
	cr_expect_eq(memcmp(a, b, la), 0, "the stored reply comes back byte for byte");
	cr_expect_eq(r2->push_reply->server_seq, seq_after_first);
	cr_expect_eq(r2->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);

	/* And nothing changed: r1 and r2 are still at their first seq. */
	env_t *hold = pull(0, 100);
	cr_expect_eq(hold->pull_reply->n_records, 3);
	cr_expect_eq(hold->pull_reply->last_seq, 3);
	fieldsync__v1__envelope__free_unpacked(hold, NULL);
	fieldsync__v1__envelope__free_unpacked(r1, NULL);
	fieldsync__v1__envelope__free_unpacked(r2, NULL);
	fs_test_push_free(p);
}

static void
expect_all_rejected(env_t *r, size_t n, size_t bad, const char *code)
{
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_assert_eq(r->push_reply->n_results, n);
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(r->push_reply->results[i]->status,
		             FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
		cr_expect_gt(strlen(r->push_reply->results[i]->reason), 0, "every result says why");
	}
	cr_expect_eq(strncmp(r->push_reply->results[bad]->reason, code, strlen(code)), 0,
	             "reason '%s' names %s", r->push_reply->results[bad]->reason, code);
}

static void
expect_feed_empty(void)
{
	env_t *h = pull(0, 100);
	cr_expect_eq(h->pull_reply->n_records, 0, "nothing of a rejected change set is applied");
	fieldsync__v1__envelope__free_unpacked(h, NULL);
}

Test(sync, one_bad_change_applies_nothing)
{
	struct {
		const char *collection, *id, *scope, *version;
		const char *code;
	} bad[] = {
		{"Bad-Collection", "x", "team-a", "a:1", "INVALID"},
		{"note", "", "team-a", "a:1", "INVALID"},
		{"note", "x", "", "a:1", "INVALID"},
		{"note", "x", "team-a", "", "INVALID"},
		{"case", "x", "team-a", "a:1", "INVALID"}, /* garbage payload below */
		{"contact", "x", "team-a", "a:1", "INVALID"},
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char csid[32];
		snprintf(csid, sizeof(csid), "cs-bad-%zu", k);
		fs_test_push *p = fs_test_push_new(csid);
		fs_test_push_add(p, "note", "good-1", "team-a", "a:1", false, "ok", 2);
		fs_test_push_add(p, bad[k].collection, bad[k].id, bad[k].scope, bad[k].version, false,
		                 "\xff\xff\xff", 3);
		fs_test_push_add(p, "note", "good-2", "team-a", "a:1", false, "ok", 2);
		env_t *r = push(p);
		expect_all_rejected(r, 3, 1, bad[k].code);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		fs_test_push_free(p);
	}
	/* Unsorted and zero dots, built by hand (fs_test_vv always sorts). */
	fs_test_push *p = fs_test_push_new("cs-unsorted");
	fs_test_push_add(p, "note", "good-1", "team-a", "a:1", false, "ok", 2);
	fs_test_push_add(p, "note", "u", "team-a", "a:1,b:1", false, "v", 1);
	env_t *e = fs_test_push_envelope(p, next_rid++);
	Fieldsync__V1__Dot *tmp = e->push->changes[1]->record->version->dots[0];
	e->push->changes[1]->record->version->dots[0] = e->push->changes[1]->record->version->dots[1];
	e->push->changes[1]->record->version->dots[1] = tmp;
	env_t *r = fs_test_call(sock, e, 10000);
	cr_assert_not_null(r);
	expect_all_rejected(r, 2, 1, "INVALID");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	e->push->changes[1]->record->version->dots[1] = e->push->changes[1]->record->version->dots[0];
	e->push->changes[1]->record->version->dots[0] = tmp;
	tmp->counter = 0;
	e->push->changeset_id = "cs-zero";
	r = fs_test_call(sock, e, 10000);
	cr_assert_not_null(r);
	expect_all_rejected(r, 2, 1, "INVALID");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	tmp->counter = 1;
	fs_test_push_free(p);
	expect_feed_empty();

	/* A typed payload that decodes passes; the same set then applies. */
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[256];
	c.first_contact_at_ms = 1774360800000LL;
	c.contact_person = "staff-7";
	size_t len = fieldsync__v1__case__pack(&c, buf);
	p = fs_test_push_new("cs-typed-ok");
	fs_test_push_add(p, "case", "case-1", "team-a", "a:1", false, buf, len);
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
}

Test(sync, reused_dot_rejects_the_whole_set)
{
	fs_test_push *p = one("cs-a", "n1", "a:1", "first");
	env_t *r = push(p);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	p = fs_test_push_new("cs-b");
	fs_test_push_add(p, "note", "n2", "team-a", "a:1", false, "fine", 4);
	fs_test_push_add(p, "note", "n1", "team-a", "a:1", false, "second", 6); /* same dot */
	r = push(p);
	expect_all_rejected(r, 2, 1, "INVALID");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	env_t *hold;
	cr_expect_null(find_record("note", "n2", &hold), "n2 was in the rejected set");
	fieldsync__v1__envelope__free_unpacked(hold, NULL);
	Fieldsync__V1__RecordState *rs = find_record("note", "n1", &hold);
	cr_assert_not_null(rs);
	cr_expect_eq(rs->n_siblings, 1);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, "first", 5), 0);
	fieldsync__v1__envelope__free_unpacked(hold, NULL);
}

static void
send_raw(const void *data, size_t len, int flags)
{
	cr_assert_eq(zmq_send(sock, data, len, flags), (int)len);
}

static void
expect_malformed(void)
{
	env_t *r = fs_test_recv(sock, 5000);
	cr_assert_not_null(r, "garbage gets an answer");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__MALFORMED);
	cr_expect_gt(strlen(r->error->message), 0);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

Test(sync, garbage_gets_malformed_and_the_daemon_keeps_serving)
{
	send_raw("\xff\xff\xff\xff\xff", 5, 0);
	expect_malformed();
	send_raw("\x0a\x80", 2, 0); /* truncated */
	expect_malformed();
	send_raw("", 0, 0);         /* an empty envelope: no body */
	expect_malformed();
	send_raw("\x08\x01", 2, ZMQ_SNDMORE); /* two frames */
	send_raw("\x08\x01", 2, 0);
	expect_malformed();

	/* A reply body sent as a request. */
	Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 42;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_WELCOME;
	e.welcome = &w;
	env_t *r = fs_test_call(sock, &e, 5000);
	cr_assert_not_null(r);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__MALFORMED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* Random bytes, many times: every one is answered, nothing crashes. */
	unsigned seed = 12345;
	for (int i = 0; i < 200; i++) {
		uint8_t junk[64];
		size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(junk));
		for (size_t k = 0; k < n; k++)
			junk[k] = (uint8_t)rand_r(&seed);
		send_raw(junk, n, 0);
		env_t *x = fs_test_recv(sock, 5000);
		cr_assert_not_null(x, "random frame %d was answered", i);
		fieldsync__v1__envelope__free_unpacked(x, NULL);
	}

	/* Still serving. */
	fs_test_push *p = one("cs-after", "n1", "a:1", "still here");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
}

Test(sync, caps_are_enforced)
{
	/* More changes than allowed: TOO_LARGE, nothing applied. */
	fs_test_push *p = fs_test_push_new("cs-big");
	for (int i = 0; i < 1001; i++) {
		char id[16];
		snprintf(id, sizeof(id), "b%d", i);
		fs_test_push_add(p, "note", id, "team-a", "a:1", false, "v", 1);
	}
	env_t *r = push(p);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__TOO_LARGE);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	/* A payload over the limit. */
	static uint8_t big[(1 << 20) + 1];
	p = fs_test_push_new("cs-big-payload");
	fs_test_push_add(p, "note", "big", "team-a", "a:1", false, big, sizeof(big));
	r = push(p);
	expect_all_rejected(r, 1, 0, "TOO_LARGE");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	/* No changeset id. */
	p = fs_test_push_new("");
	fs_test_push_add(p, "note", "x", "team-a", "a:1", false, "v", 1);
	r = push(p);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_expect_eq(r->error->code, FIELDSYNC__V1__ERROR__CODE__INVALID);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	expect_feed_empty();
}

Test(sync, paging_returns_every_record_once_in_seq_order)
{
	enum { N = 250 };
	/* 250 records, then 100 of them edited again so they move in the feed. */
	for (int batch = 0; batch < 5; batch++) {
		char csid[32];
		snprintf(csid, sizeof(csid), "cs-page-%d", batch);
		fs_test_push *p = fs_test_push_new(csid);
		for (int i = batch * 50; i < batch * 50 + 50; i++) {
			char id[16];
			snprintf(id, sizeof(id), "p%03d", i);
			fs_test_push_add(p, "note", id, "team-a", "a:1", false, "v1", 2);
		}
		env_t *r = push(p);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		fs_test_push_free(p);
	}
	fs_test_push *p = fs_test_push_new("cs-page-edit");
	for (int i = 0; i < N; i += 5) {
		char id[16];
		snprintf(id, sizeof(id), "p%03d", i);
		fs_test_push_add(p, "note", id, "team-a", "a:2", false, "v2", 2);
	}
	env_t *r = push(p);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	for (uint32_t limit = 1; limit <= 64; limit = limit * 4 + 3) {
		bool seen[N] = {false};
		size_t count = 0, pages = 0;
		uint64_t since = 0, prev_seq = 0;
		bool more = true;
		while (more) {
			env_t *h = pull(since, limit);
			Fieldsync__V1__PullReply *pr = h->pull_reply;
			cr_assert_leq(pr->n_records, limit);
			for (size_t i = 0; i < pr->n_records; i++) {
				int k = atoi(pr->records[i]->id + 1);
				cr_assert(k >= 0 && k < N);
				cr_assert(!seen[k], "record %d appears once (limit %u)", k, limit);
				seen[k] = true;
				cr_assert_gt(pr->records[i]->seq, prev_seq, "seq strictly increases");
				prev_seq = pr->records[i]->seq;
				const char *want = k % 5 == 0 ? "v2" : "v1";
				cr_expect_eq(memcmp(pr->records[i]->siblings[0]->payload.data, want, 2), 0,
				             "record %d is at its latest value", k);
				count++;
			}
			cr_assert(pr->n_records > 0 || !pr->more);
			since = pr->last_seq;
			more = pr->more;
			pages++;
			fieldsync__v1__envelope__free_unpacked(h, NULL);
			cr_assert_lt(pages, 1000);
		}
		cr_expect_eq(count, N, "every record once (limit %u)", limit);
		cr_expect_eq(since, N + N / 5, "last_seq ends at the last change");
	}
	/* Pulling from the end is empty and idempotent. */
	env_t *h = pull(N + N / 5, 10);
	cr_expect_eq(h->pull_reply->n_records, 0);
	cr_expect(!h->pull_reply->more);
	cr_expect_eq(h->pull_reply->last_seq, N + N / 5);
	fieldsync__v1__envelope__free_unpacked(h, NULL);
}

Test(sync, pipelined_requests_are_answered_by_request_id)
{
	enum { N = 40 };
	fs_test_push *ps[N];
	for (int i = 0; i < N; i++) {
		char csid[32], id[16];
		snprintf(csid, sizeof(csid), "cs-pipe-%d", i);
		snprintf(id, sizeof(id), "q%d", i);
		ps[i] = one(csid, id, "a:1", "v");
		cr_assert(fs_test_send(sock, fs_test_push_envelope(ps[i], 1000 + (uint64_t)i)));
		if (i % 4 == 0) { /* pulls interleaved with pushes */
			Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
			env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
			e.request_id = 5000 + (uint64_t)i;
			e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
			e.pull = &pr;
			cr_assert(fs_test_send(sock, &e));
		}
	}
	bool push_seen[N] = {false};
	int pulls = 0;
	for (int got = 0; got < N + N / 4; got++) {
		env_t *r = fs_test_recv(sock, 10000);
		cr_assert_not_null(r, "reply %d arrived", got);
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			uint64_t k = r->request_id - 1000;
			cr_assert_lt(k, N);
			char csid[32];
			snprintf(csid, sizeof(csid), "cs-pipe-%d", (int)k);
			cr_expect_str_eq(r->push_reply->changeset_id, csid, "request_id matches its push");
			cr_expect(!push_seen[k]);
			push_seen[k] = true;
		} else {
			cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
			cr_expect_geq(r->request_id, 5000);
			pulls++;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_expect_eq(pulls, N / 4);
	for (int i = 0; i < N; i++) {
		cr_expect(push_seen[i]);
		fs_test_push_free(ps[i]);
	}
}

Test(sync, sigterm_answers_what_is_queued)
{
	enum { N = 50 };
	fs_test_push *ps[N];
	for (int i = 0; i < N; i++) {
		char csid[32], id[16];
		snprintf(csid, sizeof(csid), "cs-term-%d", i);
		snprintf(id, sizeof(id), "t%d", i);
		ps[i] = one(csid, id, "a:1", "v");
		cr_assert(fs_test_send(sock, fs_test_push_envelope(ps[i], 1 + (uint64_t)i)));
	}
	/* Every push that is answered is durable: check after a restart. */
	int answered = 0;
	env_t *r = fs_test_recv(sock, 10000); /* at least one arrived before the signal */
	cr_assert_not_null(r);
	answered++;
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	kill(fs_test_daemon_pid(d), SIGTERM);
	while ((r = fs_test_recv(sock, 3000)) != NULL) {
		cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		answered++;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_expect_eq(fs_test_daemon_wait(d, 30000), 0, "exit 0 after SIGTERM");
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	env_t *h = pull(0, 1000);
	cr_expect_geq(h->pull_reply->n_records, (size_t)answered, "every answered push is stored");
	fieldsync__v1__envelope__free_unpacked(h, NULL);
	for (int i = 0; i < N; i++)
		fs_test_push_free(ps[i]);
}

Test(sync, a_reply_to_a_vanished_peer_is_counted)
{
	/* A second client makes itself known with one change set, then pipelines
	 * SETS big ones and disappears: the writer needs far longer to commit
	 * SETS x PER records than the daemon needs to notice the closed
	 * connection, so the later replies meet a peer that is gone. (Sending
	 * all first and vanishing after the first reply was racy: one group
	 * commit could take every set and answer them all before the close.) */
	enum { SETS = 40, PER = 1000 };
	void *gone = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	for (int k = 0; k <= SETS; k++) {
		char csid[32];
		snprintf(csid, sizeof(csid), "cs-vanished-%d", k);
		fs_test_push *p = fs_test_push_new(csid);
		for (int i = 0; i < (k == 0 ? 1 : PER); i++) {
			char id[16];
			snprintf(id, sizeof(id), "v%d-%d", k, i);
			fs_test_push_add(p, "note", id, "team-a", "a:1", false, "v", 1);
		}
		cr_assert(fs_test_send(gone, fs_test_push_envelope(p, (uint64_t)k + 1)));
		fs_test_push_free(p);
		if (k == 0) { /* the daemon is committing and knows this peer */
			env_t *first = fs_test_recv(gone, 10000);
			cr_assert_not_null(first);
			fieldsync__v1__envelope__free_unpacked(first, NULL);
		}
	}
	int linger = 5000; /* flush the requests, then the connection goes */
	zmq_setsockopt(gone, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_close(gone);

	/* The data is committed all the same: a retry would get the stored reply. */
	uint64_t last = 0;
	for (int stable = 0, i = 0; stable < 5 && i < 200; i++) {
		env_t *h = pull(0, 1);
		uint64_t now = h->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(h, NULL);
		h = pull(now, 1000);
		while (h->pull_reply->more) {
			uint64_t l = h->pull_reply->last_seq;
			fieldsync__v1__envelope__free_unpacked(h, NULL);
			h = pull(l, 1000);
		}
		now = h->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(h, NULL);
		stable = now == last ? stable + 1 : 0;
		last = now;
		usleep(100000);
	}
	cr_assert_gt(last, PER, "more than the first change set was committed");
	kill(fs_test_daemon_pid(d), SIGTERM);
	cr_assert_eq(fs_test_daemon_wait(d, 30000), 0);
	char *log = fs_test_daemon_log(d);
	const char *at = log ? strstr(log, "\"replies_unroutable\":") : NULL;
	cr_assert_not_null(at, "the drain log line counts unroutable replies");
	cr_log_info("replies to the vanished peer: %d unroutable",
	            atoi(at + strlen("\"replies_unroutable\":")));
	cr_expect_gt(atoi(at + strlen("\"replies_unroutable\":")), 0,
	             "replies to the vanished peer were counted");
	free(log);
	fs_test_daemon_stop(&d); /* already exited: this only cleans up */
}

/* Appends a protobuf length-delimited field header. */
static size_t
put_field(uint8_t *p, unsigned field, size_t len)
{
	size_t n = 0;
	p[n++] = (uint8_t)((field << 3) | 2);
	do {
		p[n++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
		len >>= 7;
	} while (len != 0);
	return n;
}

Test(sync, a_decode_bomb_is_refused_as_malformed)
{
	/* A Push whose one record has 500,000 empty dots: 1 MB on the wire, but
	 * some 24 MB once protobuf-c has allocated a struct for each dot. */
	enum { DOTS = 500000 };
	size_t vv_len = 2 * DOTS;
	uint8_t *buf = malloc(vv_len + 64);
	uint8_t head[4][16];
	size_t hl[4];
	hl[0] = put_field(head[0], 4, vv_len);                 /* Record.version */
	hl[1] = put_field(head[1], 1, hl[0] + vv_len);         /* Change.record */
	hl[2] = put_field(head[2], 2, hl[1] + hl[0] + vv_len); /* PushRequest.changes */
	hl[3] = put_field(head[3], 12, hl[2] + hl[1] + hl[0] + vv_len); /* Envelope.push */
	size_t n = 0;
	for (int k = 3; k >= 0; k--) {
		memcpy(buf + n, head[k], hl[k]);
		n += hl[k];
	}
	for (size_t i = 0; i < DOTS; i++) { /* VersionVector.dots: empty Dot */
		buf[n++] = 0x0a;
		buf[n++] = 0x00;
	}
	send_raw(buf, n, 0);
	free(buf);
	expect_malformed();

	/* And the daemon serves on. */
	fs_test_push *p = one("cs-after-bomb", "n1", "a:1", "ok");
	env_t *r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
}

Test(sync, a_record_holding_field_zero_is_refused_and_the_feed_stays_readable)
{
	/* Found by fuzz_envelope (tests/fuzz/crashes/fuzz_envelope/field0-in-pushed-record):
	 * a Record with the bytes 82 00 00, a field numbered 0 in a two-byte tag. */
	static const char hex[] =
	    "080162360a0963732d706f69736f6e12290a270a056e6f74657312026e311a0a7465616d2d6e6f72746822"
	    "080a060a0272311001320178820000";
	uint8_t frame[sizeof(hex) / 2];
	for (size_t i = 0; i < sizeof(frame); i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		frame[i] = (uint8_t)v;
	}
	send_raw(frame, sizeof(frame), 0);
	env_t *r = fs_test_recv(sock, 5000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_not_null(strstr(r->push_reply->results[0]->reason, "field number 0"), "%s",
	                   r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	fs_test_push *p = one("cs-after-field0", "n1", "a:1", "fine");
	r = push(p);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	env_t *h = pull(0, 100);
	cr_expect_eq(h->pull_reply->n_records, 1, "the feed is readable");
	fieldsync__v1__envelope__free_unpacked(h, NULL);
}
