/*
 * Issue 11 "strict input", the SDK's side: every record a tablet pulls is
 * checked with the shared core's strict checks (proto/check.c) before it
 * is stored. A fake daemon (a raw ROUTER in this test: fault injection, a
 * real fieldsyncd refuses such records on push) answers the real SDK's
 * Hello and Pull with a hand-built page holding good records and bad ones
 * (invalid UTF-8 in a sibling's modified_by, in a dot's replica and in
 * the scope; a collection outside the grammar; a sibling of another
 * record; a Record field the protocol does not define). The sync
 * succeeds, the good records are stored, every bad one is refused (not
 * stored, counted in fs_sync_stats.refused, named by seq in
 * fs_last_error_detail()), and the checkpoint moves past the page.
 * Release 1's SDK stored the bad values.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

typedef Fieldsync__V1__Envelope env_t;

static char *g_dir;
static void *g_ctx;
static int g_port;

static void
setup(void)
{
	g_dir = fs_test_tmpdir();
	g_ctx = zmq_ctx_new();
	g_port = fs_test_free_port();
	cr_assert_gt(g_port, 0);
}

static void
teardown(void)
{
	zmq_ctx_term(g_ctx);
	fs_test_rm_rf(g_dir);
	free(g_dir);
}

TestSuite(sdk_strict_pull, .init = setup, .fini = teardown, .timeout = 60);

/* One Record, with its own version of one dot. */
typedef struct rec {
	Fieldsync__V1__Record r;
	Fieldsync__V1__VersionVector vv;
	Fieldsync__V1__Dot dot, *dots[1];
	Fieldsync__V1__Record *sib[1];
	Fieldsync__V1__RecordState st;
} rec;

static void
rec_init(rec *x, const char *coll, const char *id, const char *scope, const char *replica,
         uint64_t seq)
{
	fieldsync__v1__record__init(&x->r);
	fieldsync__v1__version_vector__init(&x->vv);
	fieldsync__v1__dot__init(&x->dot);
	fieldsync__v1__record_state__init(&x->st);
	x->dot.replica = (char *)replica;
	x->dot.counter = 1;
	x->dots[0] = &x->dot;
	x->vv.n_dots = 1;
	x->vv.dots = x->dots;
	x->r.collection = (char *)coll;
	x->r.id = (char *)id;
	x->r.scope = (char *)scope;
	x->r.version = &x->vv;
	x->r.payload.data = (uint8_t *)"value";
	x->r.payload.len = 5;
	x->r.modified_by = "tab-x";
	x->sib[0] = &x->r;
	x->st.collection = (char *)coll;
	x->st.id = (char *)id;
	x->st.scope = (char *)scope;
	x->st.seq = seq;
	x->st.n_siblings = 1;
	x->st.siblings = x->sib;
}

#define N_RECS 8

/* The page: good-1, five bad ones, good-2, and one with an unknown field. */
static size_t
build_page(rec recs[N_RECS], Fieldsync__V1__RecordState *states[N_RECS],
           ProtobufCMessageUnknownField *unknown)
{
	rec_init(&recs[0], "note", "good-1", "team-a", "r1", 1);
	rec_init(&recs[1], "note", "bad-by", "team-a", "r1", 2);
	recs[1].r.modified_by = "tab-\xc3\x28";                              /* invalid UTF-8 */
	rec_init(&recs[2], "note", "bad-dot", "team-a", "r\xed\xa0\x80", 3); /* a surrogate */
	rec_init(&recs[3], "note", "bad-scope", "team-\xff", "r1", 4);
	rec_init(&recs[4], "Note!", "bad-coll", "team-a", "r1", 5);
	rec_init(&recs[5], "note", "bad-sib", "team-a", "r1", 6);
	recs[5].r.id = "another-record";
	rec_init(&recs[6], "note", "good-2", "team-a", "r2", 7);
	rec_init(&recs[7], "note", "bad-field", "team-a", "r1", 8);
	/* field 15, varint 1: a Record field the protocol does not define */
	static uint8_t one = 1;
	unknown->tag = 15;
	unknown->wire_type = PROTOBUF_C_WIRE_TYPE_VARINT;
	unknown->len = 1;
	unknown->data = &one;
	recs[7].r.base.n_unknown_fields = 1;
	recs[7].r.base.unknown_fields = unknown;
	for (int i = 0; i < N_RECS; i++)
		states[i] = &recs[i].st;
	return N_RECS;
}

static void
send_env(void *router, zmq_msg_t *rid, env_t *e)
{
	size_t len = fieldsync__v1__envelope__get_packed_size(e);
	uint8_t *buf = malloc(len ? len : 1);
	fieldsync__v1__envelope__pack(e, buf);
	zmq_msg_t copy;
	zmq_msg_init(&copy);
	zmq_msg_copy(&copy, rid);
	zmq_msg_send(&copy, router, ZMQ_SNDMORE);
	zmq_send(router, buf, len, 0);
	free(buf);
}

/* The fake daemon: Welcome for Hello, the page for Pull, until told to stop. */
static void *
fake_daemon(void *arg)
{
	void *router = arg;
	rec recs[N_RECS];
	Fieldsync__V1__RecordState *states[N_RECS];
	ProtobufCMessageUnknownField unknown;
	build_page(recs, states, &unknown);
	for (;;) {
		zmq_msg_t rid, body;
		zmq_msg_init(&rid);
		zmq_msg_init(&body);
		if (zmq_msg_recv(&rid, router, 0) < 0)
			break;
		if (zmq_msg_size(&rid) == 4 && memcmp(zmq_msg_data(&rid), "STOP", 4) == 0) {
			zmq_msg_close(&rid);
			break;
		}
		zmq_msg_recv(&body, router, 0);
		env_t *req = fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&body),
		                                             zmq_msg_data(&body));
		env_t rep = FIELDSYNC__V1__ENVELOPE__INIT;
		Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
		Fieldsync__V1__PullReply p = FIELDSYNC__V1__PULL_REPLY__INIT;
		char *scopes[] = {"*"};
		if (req != NULL) {
			rep.request_id = req->request_id;
			if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_HELLO) {
				w.protocol = 1;
				w.server_id = "fake";
				w.n_scopes = 1;
				w.scopes = scopes;
				w.max_changes_per_push = 100;
				w.max_message_bytes = 16u << 20;
				w.generation = "0b7c3a52-2c4e-4d0e-9b1a-5f2d7e8c9a10";
				rep.body_case = FIELDSYNC__V1__ENVELOPE__BODY_WELCOME;
				rep.welcome = &w;
			} else if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL) {
				p.n_records = N_RECS;
				p.records = states;
				p.last_seq = N_RECS;
				p.more = false;
				rep.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
				rep.pull_reply = &p;
			}
			if (rep.body_case != FIELDSYNC__V1__ENVELOPE__BODY__NOT_SET)
				send_env(router, &rid, &rep);
			fieldsync__v1__envelope__free_unpacked(req, NULL);
		}
		zmq_msg_close(&rid);
		zmq_msg_close(&body);
	}
	return NULL;
}

Test(sdk_strict_pull, issue11_strict_input_bad_pulled_records_are_refused_not_stored)
{
	char ep[64], dir[600];
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", g_port);
	void *router = zmq_socket(g_ctx, ZMQ_ROUTER);
	int zero = 0;
	zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
	cr_assert_eq(zmq_bind(router, ep), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, fake_daemon, router), 0);

	fs_store *s = NULL;
	snprintf(dir, sizeof(dir), "%s/tablet", g_dir);
	cr_assert_eq(fs_store_create(dir, "team-a", &s), FS_OK);
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.endpoint = ep;
	o.timeout_ms = 20000;
	fs_sync_stats st;
	fs_err e = fs_sync(s, &o, &st);
	char detail[256];
	snprintf(detail, sizeof(detail), "%s", fs_last_error_detail());

	/* stop the fake daemon: a DEALER whose routing id is STOP says so */
	void *stop = zmq_socket(g_ctx, ZMQ_DEALER);
	zmq_setsockopt(stop, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(stop, ZMQ_ROUTING_ID, "STOP", 4);
	zmq_connect(stop, ep);
	zmq_send(stop, "x", 1, 0);
	pthread_join(th, NULL);
	zmq_close(stop);
	zmq_close(router);

	cr_expect_eq(e, FS_OK, "one bad record never fails the pull: %s", fs_strerror(e));
	cr_expect_eq(st.pulled, N_RECS);
	cr_expect_eq(st.refused, 6, "six records refused (%llu)", (unsigned long long)st.refused);
	cr_expect_not_null(strstr(detail, "refused and not stored"), "the message: %s", detail);
	fs_list *l = NULL;
	cr_assert_eq(fs_list_records(s, "note", &l), FS_OK);
	cr_expect_eq(l->n, 2, "only the good records are stored (%zu)", l->n);
	for (size_t i = 0; i < l->n; i++)
		cr_expect(strncmp(l->items[i].id, "good-", 5) == 0, "stored: %s", l->items[i].id);
	fs_list_free(&l);
	fs_record *r = NULL;
	cr_expect_eq(fs_get(s, "note", "bad-by", &r), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_get(s, "note", "another-record", &r), FS_ERR_NOT_FOUND);
	fs_status status;
	cr_assert_eq(fs_status_get(s, &status), FS_OK);
	cr_expect_eq(status.last_seq, N_RECS, "the checkpoint moved past the page");
	fs_store_close(&s);
}
