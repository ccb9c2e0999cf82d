/*
 * ops_http (endpoint layer): the operator's HTTP endpoint (libmicrohttpd, its own polling
 * thread), on --ops-listen (default 127.0.0.1:7480):
 *
 *   GET /metrics   200, Prometheus text format 0.0.4 (metrics.h)
 *   GET /healthz   shallow: 200 "ok" while hooks->alive says so, else 503
 *   GET /readyz    deep: 200 "ready" while hooks->ready says so, else 503
 *                  with the hook's reason as the body
 *   other paths    404; methods other than GET and HEAD: 405 (Allow: GET, HEAD)
 *
 * Limits (ops_http_limits; 0 takes the default below): at most
 * max_connections connections in all and per_ip of them from one client
 * address (more are closed at once, so one address cannot hold the port),
 * each closed after idle_timeout_s seconds of silence; request bodies are
 * never read. One polling thread with epoll serves every connection: an
 * idle one costs a descriptor and its memory pool, never a thread, so
 * /healthz is answered while idle connections are held (below the total
 * limit). The hooks run on that thread, one request at a time: they must
 * be thread-safe against the daemon's threads (atomics, short read
 * transactions) and quick. The port belongs on a private network
 * (docs/security.md, deploy/k8s/networkpolicy.yaml): the limits bound what
 * a client can hold, they do not authenticate it.
 */
#ifndef FIELDSYNCD_OPS_HTTP_H
#define FIELDSYNCD_OPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define OPS_HTTP_MAX_CONNECTIONS 256 /* in all (--ops-max-connections) */
#define OPS_HTTP_PER_IP 8            /* from one address (--ops-per-ip-connections) */
#define OPS_HTTP_TIMEOUT_S 5         /* idle seconds (--ops-idle-timeout) */

/* The connection limits; a 0 field takes its default above. */
typedef struct ops_http_limits {
	unsigned max_connections;
	unsigned per_ip;
	unsigned idle_timeout_s;
} ops_http_limits;

typedef struct ops_http_hooks {
	/* /healthz: the event loop answers. NULL: always alive. */
	bool (*alive)(void *arg);
	/* /readyz: store open, sockets bound, disk not full, not draining. On
	 * false, writes a one-line reason (no personal data) into why[0..len).
	 * NULL: always ready. */
	bool (*ready)(void *arg, char *why, size_t len);
	/* Called before each /metrics render to refresh gauges (LMDB stats,
	 * free disk). May be NULL. */
	void (*before_metrics)(void *arg);
	void *arg;
} ops_http_hooks;

typedef struct ops_http ops_http;

/*
 * Parses "A.B.C.D:PORT" or "[IPv6]:PORT" (numeric addresses only, port
 * 0..65535; 0 picks a free port) into *addr. False with a sentence in err
 * for anything else, host names included.
 */
bool ops_http_parse_listen(const char *listen, struct sockaddr_storage *addr, char *err,
                           size_t errlen);

/*
 * Starts serving on `listen` (see ops_http_parse_listen), bound to that
 * address only. The hooks are copied; hooks->arg must outlive the handle.
 * NULL with a sentence in err when the address is bad or cannot be bound.
 */
ops_http *ops_http_start(const char *listen, const ops_http_hooks *hooks, char *err, size_t errlen);
/* The same with the given limits (NULL: every default). */
ops_http *ops_http_start_limited(const char *listen, const ops_http_hooks *hooks,
                                 const ops_http_limits *limits, char *err, size_t errlen);

/* The port actually bound (useful after asking for port 0). */
int ops_http_port(const ops_http *h);

/* Stops the thread (waits for a request in progress), closes the socket,
 * frees the handle and sets *h to NULL. Accepts NULL and *h == NULL. */
void ops_http_stop(ops_http **h);

/*
 * A readiness helper: true when the file system holding dir has at least
 * min_free_bytes available to unprivileged writers and a free inode. Sets
 * *free_bytes (when not NULL) to the bytes available, 0 on error. On false,
 * a one-line reason in why[0..len).
 */
bool ops_disk_ok(const char *dir, uint64_t min_free_bytes, uint64_t *free_bytes, char *why,
                 size_t len);

#endif
