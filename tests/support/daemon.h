/*
 * Test support: start the real fieldsyncd on a loopback port, in a fresh
 * temporary data directory, and talk to it over a real DEALER socket.
 */
#ifndef FS_TEST_DAEMON_H
#define FS_TEST_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fieldsync/v1/sync.pb-c.h"

typedef struct fs_test_daemon fs_test_daemon;

/* Starts fieldsyncd --dev on a free loopback port (with RLIMIT_FSIZE set to
 * $FS_TEST_FSIZE_LIMIT bytes when that is set: a full disk, for fault tests) and waits until it answers
 * Hello. data_dir NULL: a fresh temporary directory, removed by stop. Extra
 * arguments (NULL-terminated list) are passed on. NULL on failure. */
fs_test_daemon *fs_test_daemon_start(const char *data_dir);
fs_test_daemon *fs_test_daemon_start_args(const char *data_dir, const char *const *extra);
/* Without --dev: data_dir must have been set up with `fieldsyncd init`, and
 * extra must give the master key. Readiness is read from /readyz. */
fs_test_daemon *fs_test_daemon_start_production(const char *data_dir, const char *const *extra);
const char *fs_test_daemon_endpoint(const fs_test_daemon *d); /* "tcp://127.0.0.1:PORT" */
const char *fs_test_daemon_data_dir(const fs_test_daemon *d);
const char *fs_test_daemon_reminder_endpoint(const fs_test_daemon *d); /* its PUB */
int fs_test_daemon_ops_port(const fs_test_daemon *d);                  /* its ops HTTP */
/* GET http://127.0.0.1:port/path; returns the status, the body in *body
 * (malloc'd, caller frees), -1 when nothing answered. */
int fs_test_http_get(int port, const char *path, char **body);
int fs_test_daemon_pid(const fs_test_daemon *d);
/* The daemon's stderr so far (its JSON log), malloc'd; caller frees. */
char *fs_test_daemon_log(const fs_test_daemon *d);
void fs_test_daemon_kill9(fs_test_daemon *d);       /* SIGKILL and reap */
/* Waits for the daemon to exit by itself (after a signal the test sent);
 * returns its exit status, 128+signal when killed, -1 on timeout. */
int fs_test_daemon_wait(fs_test_daemon *d, int timeout_ms);
bool fs_test_daemon_restart(fs_test_daemon *d);     /* same dir and port; waits until ready */
int fs_test_daemon_stop(fs_test_daemon **d);        /* SIGTERM, reap, remove temp dir; exit status or -1 */
/* A free loopback TCP port below the ephemeral range; -1 if none found. */
int fs_test_free_port(void);
char *fs_test_tmpdir(void);                         /* mkdtemp under /tmp; caller frees */
void fs_test_rm_rf(const char *path);

/* A DEALER connected to endpoint (linger 0). */
void *fs_test_dealer(void *zctx, const char *endpoint);
/* Sends e as one frame. */
bool fs_test_send(void *sock, const Fieldsync__V1__Envelope *e);
/* Waits up to timeout_ms for one reply; NULL on timeout or garbage. Free with
 * fieldsync__v1__envelope__free_unpacked(e, NULL). */
Fieldsync__V1__Envelope *fs_test_recv(void *sock, int timeout_ms);
/* Send then receive, checking request_id matches. */
Fieldsync__V1__Envelope *fs_test_call(void *sock, Fieldsync__V1__Envelope *e, int timeout_ms);

/* Builders for requests. Strings are copied into a static arena owned by
 * the returned object; free with fs_test_push_free(). */
typedef struct fs_test_push fs_test_push;
fs_test_push *fs_test_push_new(const char *changeset_id);
/* Adds a change; version given as "r1:2,r2:1". payload may be NULL. */
void fs_test_push_add(fs_test_push *p, const char *collection, const char *id,
                      const char *scope, const char *version, bool deleted,
                      const void *payload, size_t payload_len);
Fieldsync__V1__Envelope *fs_test_push_envelope(fs_test_push *p, uint64_t request_id);
void fs_test_push_free(fs_test_push *p);

/* Parses "r1:2,r2:1" into a newly allocated VersionVector (free with fsp_vv_free). */
Fieldsync__V1__VersionVector *fs_test_vv(const char *text);

#endif
