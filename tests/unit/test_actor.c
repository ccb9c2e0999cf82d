/*
 * actor.c: a thread plus an inproc pipe with typed messages: synchronous
 * start, pointers that change hands with the message, the stop frame both
 * ways, and a start that fails cleanly.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <zmq.h>

#include "actor.h"

#define EP "inproc://test-actor"

/* Adds 1 to every int it gets and sends it back; stops on ACTOR_STOP. */
static void
incrementer(void *arg, void *pipe)
{
	int *seen = arg;
	for (;;) {
		int tag;
		void *p;
		if (actor_recv(pipe, 0, &tag, &p) != FSD_OK)
			break;
		if (tag == ACTOR_STOP)
			break;
		(*(int *)p)++;
		(*seen)++;
		if (actor_send(pipe, (char)tag, p, 0) != FSD_OK) /* no cr_assert off the test's thread */
			break;
	}
	actor_send_stop(pipe);
}

Test(actor, messages_go_both_ways_and_stop_is_answered)
{
	void *ctx = zmq_ctx_new();
	void *pipe = zmq_socket(ctx, ZMQ_PAIR);
	int seen = 0, values[3] = {10, 20, 30};
	actor *a = NULL;
	cr_assert_eq(zmq_bind(pipe, EP), 0);
	cr_assert_eq(actor_start(ctx, EP, incrementer, &seen, &a), FSD_OK);
	cr_assert_not_null(a);

	for (int i = 0; i < 3; i++)
		cr_assert_eq(actor_send(pipe, 'V', &values[i], 0), FSD_OK);
	for (int i = 0; i < 3; i++) {
		int tag;
		void *p;
		cr_assert_eq(actor_recv(pipe, 0, &tag, &p), FSD_OK);
		cr_expect_eq(tag, 'V');
		cr_expect_eq(p, &values[i], "the same pointer comes back, in order");
	}
	cr_expect_eq(values[0], 11);
	cr_expect_eq(values[2], 31);

	int tag = -1;
	void *p = (void *)&tag;
	cr_expect_eq(actor_recv(pipe, ZMQ_DONTWAIT, &tag, &p), FSD_NOTFOUND, "nothing queued");
	cr_assert_eq(actor_send_stop(pipe), FSD_OK);
	cr_assert_eq(actor_recv(pipe, 0, &tag, &p), FSD_OK);
	cr_expect_eq(tag, ACTOR_STOP, "the actor says it stopped");
	cr_expect_null(p);
	actor_join(&a);
	cr_expect_null(a);
	actor_join(&a); /* NULL: no-op */
	cr_expect_eq(seen, 3);
	zmq_close(pipe);
	zmq_ctx_term(ctx);
}

static void
never_runs(void *arg, void *pipe)
{
	(void)pipe;
	*(int *)arg = 1;
}

Test(actor, a_start_that_cannot_connect_fails_and_runs_nothing)
{
	void *ctx = zmq_ctx_new();
	int ran = 0;
	actor *a = (actor *)&ran;
	/* a malformed endpoint: the actor's connect fails */
	cr_expect_neq(actor_start(ctx, "bogus://nowhere", never_runs, &ran, &a), FSD_OK);
	cr_expect_null(a);
	cr_expect_eq(ran, 0);
	zmq_ctx_term(ctx);
}

Test(actor, a_frame_that_is_not_a_message_is_an_error)
{
	void *ctx = zmq_ctx_new();
	void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
	cr_assert_eq(zmq_bind(a, "inproc://test-actor-frame"), 0);
	cr_assert_eq(zmq_connect(b, "inproc://test-actor-frame"), 0);
	cr_assert_eq(zmq_send(b, "abc", 3, 0), 3);
	int tag;
	void *p;
	cr_expect_eq(actor_recv(a, 0, &tag, &p), FSD_IO);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
}
