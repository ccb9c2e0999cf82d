/*
 * actor: a thread plus an inproc PAIR pipe carrying typed messages
 * (infrastructure layer; CZMQ's zactor, cut down).
 *
 * actor_start() binds nothing: the owner binds its end of the pipe first
 * (a PAIR on `endpoint`), then actor_start() runs fn on a new thread with
 * the other end connected, and returns only once that connect succeeded or
 * failed (synchronous start). A message is one frame of ACTOR_MSG_LEN bytes:
 * a tag byte chosen by the two ends, then a pointer whose ownership moves
 * with the message. The empty frame (tag ACTOR_STOP) means "stop after what
 * is queued" towards the actor and "stopped" from it. actor_join() waits
 * for the thread after it was told to stop.
 *
 * Threads: each end of the pipe belongs to one thread (ZeroMQ's rule).
 */
#ifndef FIELDSYNCD_ACTOR_H
#define FIELDSYNCD_ACTOR_H

#include <stdbool.h>

#include "err.h"

enum { ACTOR_STOP = 0 };
#define ACTOR_MSG_LEN (1 + sizeof(void *))

typedef struct actor actor;
/* The actor's body: runs on its own thread with its end of the pipe.
 * It returns after sending the "stopped" frame (actor_send_stop). */
typedef void (*actor_fn)(void *arg, void *pipe);

/* Starts fn(arg, pipe) on a new thread whose PAIR connects to endpoint in
 * zctx. FSD_OK with *out set, or an error (nothing runs then). */
fsd_err actor_start(void *zctx, const char *endpoint, actor_fn fn, void *arg, actor **out);
/* Waits for the thread to end (after it was told to stop); NULL-safe. */
void actor_join(actor **a);

/* Sends tag + ptr. FSD_BUSY when flags has ZMQ_DONTWAIT and the pipe is
 * full, FSD_IO on other errors; on failure ptr still belongs to the caller. */
fsd_err actor_send(void *pipe, char tag, void *ptr, int flags);
/* Sends the empty frame (ACTOR_STOP). */
fsd_err actor_send_stop(void *pipe);
/* Receives one message: FSD_OK with *tag (ACTOR_STOP for the empty frame)
 * and *ptr; FSD_NOTFOUND when nothing is queued (ZMQ_DONTWAIT); FSD_IO on
 * an error or a frame that is not a message. */
fsd_err actor_recv(void *pipe, int flags, int *tag, void **ptr);

#endif
