/*
 * ops_http: the ops HTTP endpoint, /metrics, /healthz, /readyz (endpoint
 * layer; ops_http.h).
 *
 * libmicrohttpd runs it on one internal polling thread of its own (epoll on
 * Linux), bound to the one address of --ops-listen. Why not the others:
 * MHD_USE_THREAD_PER_CONNECTION gives every idle connection a thread (the
 * very thing a slow client exhausts), and a thread pool splits the
 * connection limit across threads and runs the hooks concurrently; the
 * requests here are answered from memory in microseconds, so one thread
 * that never waits on a client is enough. What keeps /healthz answered is
 * the limits: a total far above what monitoring needs, a small share per
 * client address (MHD_OPTION_PER_IP_CONNECTION_LIMIT closes the rest at
 * once), and an idle timeout. Every request is answered from the first
 * call of the access handler: nothing here needs a request body, so none is
 * ever read (a POST gets its 405 before its body is looked at). Responses
 * are small and built per request; /metrics renders into a malloc'd buffer
 * that libmicrohttpd frees.
 *
 * libmicrohttpd's own messages (bind failures, the connection limits) go to
 * log_event(), at most one line a second (a client refused at its limit
 * could otherwise fill the log); while ops_http_start() runs, the last one
 * is also kept to explain a failure in err.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "ops_http.h"
#include "store.h"

#define WHY_MAX 256
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

struct ops_http {
	struct MHD_Daemon *mhd;
	ops_http_hooks hooks;
	int port;
	pthread_mutex_t log_lock; /* guards last_log, logged_at, suppressed */
	char last_log[200];
	int64_t logged_at;   /* monotonic ms of the last line logged */
	uint64_t suppressed; /* messages not logged since */
};

/* ---- the address ---------------------------------------------------------- */

/* Parses the decimal port of s (no sign, no junk); false when not 0..65535. */
static bool
parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool
ops_http_parse_listen(const char *listen, struct sockaddr_storage *addr, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *host_at;
	size_t host_len;
	uint16_t port;

	memset(addr, 0, sizeof(*addr));
	if (listen == NULL || *listen == '\0')
		goto bad;
	if (listen[0] == '[') { /* [IPv6]:PORT */
		const char *close = strchr(listen, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		host_at = listen + 1;
		host_len = (size_t)(close - host_at);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL || memchr(listen, ':', (size_t)(colon - listen)) != NULL)
			goto bad; /* no port, or an IPv6 address without brackets */
		host_at = listen;
		host_len = (size_t)(colon - listen);
	}
	if (host_len == 0 || host_len >= sizeof(host) || !parse_port(colon + 1, &port))
		goto bad;
	memcpy(host, host_at, host_len);
	host[host_len] = '\0';
	if (listen[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto bad;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
	}
	return true;
bad:
	snprintf(err, errlen,
	         "ops listen address \"%.100s\" is not IPV4:PORT or [IPV6]:PORT with a numeric "
	         "address and a port 0..65535 (e.g. 127.0.0.1:7480 or [::1]:7480)",
	         listen ? listen : "");
	return false;
}

/* ---- requests --------------------------------------------------------------- */

/* Queues one response: body[0..len) with `mode` as libmicrohttpd knows it. */
static enum MHD_Result
respond(struct MHD_Connection *conn, unsigned int status, const char *ctype, void *body, size_t len,
        enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	if (r == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO; /* out of memory: the connection is closed */
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result
respond_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
	return respond(conn, status, CONTENT_TYPE_TEXT, (void *)text, strlen(text),
	               MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result
serve_metrics(ops_http *h, struct MHD_Connection *conn)
{
	size_t len = 0;
	if (h->hooks.before_metrics != NULL)
		h->hooks.before_metrics(h->hooks.arg);
	char *text = metrics_render_alloc(&len);
	if (text == NULL)
		return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return respond(conn, MHD_HTTP_OK, CONTENT_TYPE_METRICS, text, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result
serve_readyz(ops_http *h, struct MHD_Connection *conn)
{
	char why[WHY_MAX + 2] = "";
	/* a store that is failing (store.h: commits fail, LMDB panicked) first */
	if (store_health(why, WHY_MAX) &&
	    (h->hooks.ready == NULL || h->hooks.ready(h->hooks.arg, why, WHY_MAX)))
		return respond_text(conn, MHD_HTTP_OK, "ready\n");
	why[WHY_MAX - 1] = '\0';
	for (char *p = why; *p; p++) /* one line of text, whatever the hook wrote */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (why[0] == '\0')
		snprintf(why, WHY_MAX, "not ready");
	strcat(why, "\n");
	return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why);
}

/* The access handler: answers on its first call for the request. */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ops_http *h = cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/healthz") == 0) {
		if (h->hooks.alive == NULL || h->hooks.alive(h->hooks.arg))
			return respond_text(conn, MHD_HTTP_OK, "ok\n");
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
		                    "the event loop is stuck\n");
	}
	if (strcmp(url, "/readyz") == 0)
		return serve_readyz(h, conn);
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* libmicrohttpd's messages, as log lines (at most one a second, with the
 * count of those left out); kept for ops_http_start's err too. */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	ops_http *h = cls;
	char msg[sizeof(h->last_log)];
	struct timespec ts;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	uint64_t left_out = 0;
	bool say = false;
	pthread_mutex_lock(&h->log_lock);
	memcpy(h->last_log, msg, n + 1);
	if (h->logged_at == 0 || now - h->logged_at >= 1000) {
		say = true;
		left_out = h->suppressed;
		h->suppressed = 0;
		h->logged_at = now;
	} else {
		h->suppressed++;
	}
	pthread_mutex_unlock(&h->log_lock);
	if (say)
		log_event(LOG_WARN, "ops http: libmicrohttpd says", LS("detail", msg),
		          LU("similar_left_out", left_out), NULL);
}

/* ---- lifecycle ---------------------------------------------------------------- */

ops_http *
ops_http_start(const char *listen, const ops_http_hooks *hooks, char *err, size_t errlen)
{
	return ops_http_start_limited(listen, hooks, NULL, err, errlen);
}

ops_http *
ops_http_start_limited(const char *listen, const ops_http_hooks *hooks,
                       const ops_http_limits *limits, char *err, size_t errlen)
{
	struct sockaddr_storage addr;
	ops_http *h = NULL;
	ops_http_limits lim = {OPS_HTTP_MAX_CONNECTIONS, OPS_HTTP_PER_IP, OPS_HTTP_TIMEOUT_S};

	if (limits != NULL) {
		if (limits->max_connections > 0)
			lim.max_connections = limits->max_connections;
		if (limits->per_ip > 0)
			lim.per_ip = limits->per_ip;
		if (limits->idle_timeout_s > 0)
			lim.idle_timeout_s = limits->idle_timeout_s;
	}
	if (lim.per_ip > lim.max_connections)
		lim.per_ip = lim.max_connections;

	if (!ops_http_parse_listen(listen, &addr, err, errlen))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&h->log_lock, NULL);
	if (hooks != NULL)
		h->hooks = *hooks;

	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	uint16_t want_port;
	if (addr.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		want_port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
	} else {
		want_port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
	}
	h->mhd = MHD_start_daemon(flags, want_port, NULL, NULL, on_request, h,
	                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_SOCK_ADDR,
	                          (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
	                          lim.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                          lim.per_ip, MHD_OPTION_CONNECTION_TIMEOUT, lim.idle_timeout_s,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
	                          MHD_OPTION_LISTEN_BACKLOG_SIZE, lim.max_connections,
	                          MHD_OPTION_END);
	if (h->mhd == NULL) {
		pthread_mutex_lock(&h->log_lock);
		snprintf(err, errlen, "cannot serve ops HTTP on %.100s: %s", listen,
		         h->last_log[0] ? h->last_log : "libmicrohttpd could not start");
		pthread_mutex_unlock(&h->log_lock);
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL ? info->port : want_port;
	if (h->port == 0) {
		snprintf(err, errlen, "cannot serve ops HTTP on %.100s: the bound port is unknown",
		         listen);
		goto fail;
	}
	return h;
fail:
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd);
	pthread_mutex_destroy(&h->log_lock);
	free(h);
	return NULL;
}

int
ops_http_port(const ops_http *h)
{
	return h != NULL ? h->port : 0;
}

void
ops_http_stop(ops_http **hp)
{
	if (hp == NULL || *hp == NULL)
		return;
	ops_http *h = *hp;
	MHD_stop_daemon(h->mhd);
	pthread_mutex_destroy(&h->log_lock);
	free(h);
	*hp = NULL;
}

/* ---- readiness helper ---------------------------------------------------------- */

bool
ops_disk_ok(const char *dir, uint64_t min_free_bytes, uint64_t *free_bytes, char *why, size_t len)
{
	struct statvfs st;
	if (free_bytes != NULL)
		*free_bytes = 0;
	if (statvfs(dir, &st) != 0) {
		char e[128] = "";
		strerror_r(errno, e, sizeof(e)); /* XSI: this runs on the HTTP thread */
		snprintf(why, len, "the data directory cannot be examined: %s", e);
		return false;
	}
	uint64_t avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
	if (free_bytes != NULL)
		*free_bytes = avail;
	if (avail < min_free_bytes) {
		snprintf(why, len, "the disk is full: %llu bytes free, %llu needed",
		         (unsigned long long)avail, (unsigned long long)min_free_bytes);
		return false;
	}
	if (st.f_files != 0 && st.f_favail == 0) {
		snprintf(why, len, "the disk is full: no free inode");
		return false;
	}
	return true;
}
