/*
 * actor: a thread plus an inproc pipe with typed messages (infrastructure
 * layer). See actor.h for the contract.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "actor.h"

struct actor {
	pthread_t thread;
	void *zctx;
	char endpoint[128];
	actor_fn fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready; /* 0 starting, 1 running, -1 failed */
};

static void *
actor_main(void *p)
{
	actor *a = p;
	void *pipe = zmq_socket(a->zctx, ZMQ_PAIR);
	int ok = pipe != NULL && zmq_connect(pipe, a->endpoint) == 0;

	pthread_mutex_lock(&a->lock);
	a->ready = ok ? 1 : -1;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (ok)
		a->fn(a->arg, pipe);
	if (pipe != NULL)
		zmq_close(pipe);
	return NULL;
}

fsd_err
actor_start(void *zctx, const char *endpoint, actor_fn fn, void *arg, actor **out)
{
	actor *a = calloc(1, sizeof(*a));
	*out = NULL;
	if (a == NULL)
		return FSD_NOMEM;
	a->zctx = zctx;
	snprintf(a->endpoint, sizeof(a->endpoint), "%s", endpoint);
	a->fn = fn;
	a->arg = arg;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->thread, NULL, actor_main, a) != 0) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
		return FSD_ERROR;
	}
	pthread_mutex_lock(&a->lock);
	while (a->ready == 0)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
	if (a->ready < 0) {
		pthread_join(a->thread, NULL);
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
		return FSD_IO;
	}
	*out = a;
	return FSD_OK;
}

void
actor_join(actor **ap)
{
	if (ap == NULL || *ap == NULL)
		return;
	pthread_join((*ap)->thread, NULL);
	pthread_mutex_destroy(&(*ap)->lock);
	pthread_cond_destroy(&(*ap)->cond);
	free(*ap);
	*ap = NULL;
}

fsd_err
actor_send(void *pipe, char tag, void *ptr, int flags)
{
	uint8_t msg[ACTOR_MSG_LEN];
	msg[0] = (uint8_t)tag;
	memcpy(msg + 1, &ptr, sizeof(ptr));
	if (zmq_send(pipe, msg, sizeof(msg), flags) == (int)sizeof(msg))
		return FSD_OK;
	return zmq_errno() == EAGAIN ? FSD_BUSY : FSD_IO;
}

fsd_err
actor_send_stop(void *pipe)
{
	return zmq_send(pipe, "", 0, 0) == 0 ? FSD_OK : FSD_IO;
}

fsd_err
actor_recv(void *pipe, int flags, int *tag, void **ptr)
{
	uint8_t msg[ACTOR_MSG_LEN + 1];
	int n = zmq_recv(pipe, msg, sizeof(msg), flags);
	*ptr = NULL;
	*tag = ACTOR_STOP;
	if (n < 0)
		return zmq_errno() == EAGAIN ? FSD_NOTFOUND : FSD_IO;
	if (n == 0)
		return FSD_OK;
	if (n != (int)ACTOR_MSG_LEN)
		return FSD_IO;
	memcpy(ptr, msg + 1, sizeof(*ptr));
	*tag = msg[0];
	return FSD_OK;
}
