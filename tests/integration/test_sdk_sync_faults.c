/*
 * fs_sync() against a fake ROUTER, for faults the real daemon does not make
 * on demand: a lost reply, a garbage reply, silence, BUSY, a bad endpoint.
 * Real behaviour (merge, feed, conflicts) is tested against the real
 * daemon in tests/integration/test_sdk_sync.c.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/sync.pb-c.h"

enum mode { SILENT_PUSH, GARBAGE, BUSY, ANSWER_ALL };

static struct fake {
	void *ctx, *router;
	char endpoint[64];
	pthread_t th;
	atomic_int stop;
	enum mode mode;
	int pushes;
	char csid[8][64];
	size_t nchanges[8];
} F;

static void
reply(const zmq_msg_t *rid, Fieldsync__V1__Envelope *e)
{
	size_t n = fieldsync__v1__envelope__get_packed_size(e);
	uint8_t *b = malloc(n + 1);
	fieldsync__v1__envelope__pack(e, b);
	zmq_send(F.router, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size(rid), ZMQ_SNDMORE);
	zmq_send(F.router, b, n, 0);
	free(b);
}

static void *
fake_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&F.stop)) {
		zmq_pollitem_t pi = {F.router, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&pi, 1, 20) <= 0)
			continue;
		zmq_msg_t rid, body;
		zmq_msg_init(&rid);
		zmq_msg_init(&body);
		zmq_msg_recv(&rid, F.router, 0);
		zmq_msg_recv(&body, F.router, 0);
		Fieldsync__V1__Envelope *req =
		    fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		if (req == NULL)
			goto next;
		e.request_id = req->request_id;
		if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_HELLO) {
			Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
			w.protocol = 1;
			w.max_changes_per_push = 1000;
			e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_WELCOME;
			e.welcome = &w;
			reply(&rid, &e);
		} else if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH) {
			int k = F.pushes++;
			if (k < 8) {
				snprintf(F.csid[k], sizeof(F.csid[k]), "%s", req->push->changeset_id);
				F.nchanges[k] = req->push->n_changes;
			}
			if (F.mode == SILENT_PUSH)
				goto next; /* the reply is lost */
			if (F.mode == GARBAGE) {
				zmq_send(F.router, zmq_msg_data(&rid), zmq_msg_size(&rid), ZMQ_SNDMORE);
				zmq_send(F.router, "\xff\x01garbage", 9, 0);
				goto next;
			}
			if (F.mode == BUSY) {
				Fieldsync__V1__Error er = FIELDSYNC__V1__ERROR__INIT;
				er.code = FIELDSYNC__V1__ERROR__CODE__BUSY;
				er.message = "disk full";
				er.retry_after_ms = 500;
				e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_ERROR;
				e.error = &er;
				reply(&rid, &e);
				goto next;
			}
			Fieldsync__V1__PushReply pr = FIELDSYNC__V1__PUSH_REPLY__INIT;
			size_t n = req->push->n_changes;
			Fieldsync__V1__ChangeResult *res = calloc(n, sizeof(*res));
			Fieldsync__V1__ChangeResult **rp = calloc(n, sizeof(*rp));
			for (size_t i = 0; i < n; i++) {
				fieldsync__v1__change_result__init(&res[i]);
				res[i].status = FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE;
				rp[i] = &res[i];
			}
			pr.changeset_id = req->push->changeset_id;
			pr.n_results = n;
			pr.results = rp;
			e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY;
			e.push_reply = &pr;
			reply(&rid, &e);
			free(res);
			free(rp);
		} else if (req->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PULL) {
			Fieldsync__V1__PullReply pr = FIELDSYNC__V1__PULL_REPLY__INIT;
			pr.last_seq = req->pull->since_seq;
			e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
			e.pull_reply = &pr;
			reply(&rid, &e);
		}
	next:
		if (req != NULL)
			fieldsync__v1__envelope__free_unpacked(req, NULL);
		zmq_msg_close(&rid);
		zmq_msg_close(&body);
	}
	return NULL;
}

static char *dir;
static fs_store *s;

static void
setup(void)
{
	int zero = 0;
	size_t len = sizeof(F.endpoint);
	memset(&F, 0, sizeof(F));
	F.ctx = zmq_ctx_new();
	F.router = zmq_socket(F.ctx, ZMQ_ROUTER);
	zmq_setsockopt(F.router, ZMQ_LINGER, &zero, sizeof(zero));
	cr_assert_eq(zmq_bind(F.router, "tcp://127.0.0.1:*"), 0);
	zmq_getsockopt(F.router, ZMQ_LAST_ENDPOINT, F.endpoint, &len);
	cr_assert_eq(pthread_create(&F.th, NULL, fake_main, NULL), 0);
	dir = fs_test_tmpdir();
	cr_assert_eq(fs_store_create(dir, NULL, &s), FS_OK);
}

static void
teardown(void)
{
	atomic_store(&F.stop, 1);
	pthread_join(F.th, NULL);
	zmq_close(F.router);
	zmq_ctx_term(F.ctx);
	fs_store_close(&s);
	fs_test_rm_rf(dir);
	free(dir);
}

TestSuite(sdk_faults, .init = setup, .fini = teardown, .timeout = 60);

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static fs_err
sync_to(const char *ep, int timeout_ms)
{
	fs_sync_opts o = {0};
	o.endpoint = ep;
	o.timeout_ms = timeout_ms;
	return fs_sync(s, &o, NULL);
}

static uint64_t
pending(void)
{
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	return st.pending;
}

Test(sdk_faults, a_lost_reply_is_retried_with_the_same_changeset_id)
{
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "2", 1), FS_OK);
	F.mode = SILENT_PUSH;
	cr_expect_eq(sync_to(F.endpoint, 500), FS_ERR_TIMEOUT);
	cr_expect_eq(pending(), 2, "nothing is dropped without an acknowledgement");
	/* edited again meanwhile: the old set is resent as it was, the new value after */
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "3", 1), FS_OK);
	F.mode = ANSWER_ALL;
	cr_assert_eq(sync_to(F.endpoint, 5000), FS_OK);
	cr_assert_eq(F.pushes, 3);
	cr_expect_str_eq(F.csid[1], F.csid[0], "the retry reuses the changeset_id");
	cr_expect_eq(F.nchanges[1], 2, "and the same changes");
	cr_expect_str_neq(F.csid[2], F.csid[0], "the newer edit goes in a new change set");
	cr_expect_eq(F.nchanges[2], 1);
	cr_expect_eq(pending(), 0);
}

Test(sdk_faults, a_garbage_reply_is_a_protocol_error_and_keeps_the_outbox)
{
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	F.mode = GARBAGE;
	cr_expect_eq(sync_to(F.endpoint, 5000), FS_ERR_PROTOCOL);
	cr_expect_eq(pending(), 1);
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	cr_expect_eq(st.last_error, FS_ERR_PROTOCOL);
	F.mode = ANSWER_ALL;
	cr_assert_eq(sync_to(F.endpoint, 5000), FS_OK);
	cr_expect_str_eq(F.csid[1], F.csid[0]);
	cr_expect_eq(pending(), 0);
}

Test(sdk_faults, busy_stops_the_sync_with_a_retryable_error)
{
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	F.mode = BUSY;
	cr_expect_eq(sync_to(F.endpoint, 5000), FS_ERR_BUSY);
	cr_expect_eq(F.pushes, 1, "no spinning on BUSY");
	cr_expect_eq(pending(), 1);
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	cr_expect_eq(st.last_error, FS_ERR_BUSY);
	cr_expect(strstr(st.last_error_msg, "BUSY") != NULL, "%s", st.last_error_msg);
}

Test(sdk_faults, silence_and_unreachable_endpoints_fail_within_the_timeout)
{
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK);
	F.mode = SILENT_PUSH;
	int64_t t0 = now_ms();
	cr_expect_eq(sync_to(F.endpoint, 300), FS_ERR_TIMEOUT);
	/* "within the timeout plus a generous margin" only: machines are shared */
	cr_expect_lt(now_ms() - t0, 300 + 5000);
	t0 = now_ms();
	cr_expect_eq(sync_to("tcp://127.0.0.1:1", 300), FS_ERR_TIMEOUT);
	cr_expect_lt(now_ms() - t0, 300 + 5000);
	cr_expect_eq(sync_to("not-an-endpoint", 300), FS_ERR_NETWORK);
	fs_sync_opts o = {0};
	cr_expect_eq(fs_sync(s, &o, NULL), FS_ERR_INVALID);
	cr_expect_eq(pending(), 1);
}
