/*
 * ops_http.c: the listen address parser; a real server on 127.0.0.1:0
 * driven with real HTTP/1.1 requests over a plain socket: /healthz,
 * /readyz (ready, then 503 with the hook's reason), /metrics (the content
 * type, fresh gauges from the hook, and `promtool check metrics` on the
 * body), 404, 405 for POST, HEAD; a taken port and a host name refused;
 * the disk readiness helper.
 *
 * promtool comes with Debian's `prometheus` package. Without it the
 * promtool test fails and says so: it is never skipped.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "ops_http.h"

/* ---- a tiny HTTP/1.1 client ------------------------------------------------ */

struct http_reply {
	int status;
	char head[2048]; /* status line and headers */
	char *body;      /* malloc'd, NUL-terminated */
	size_t body_len;
};

/* Sends `method path` (with an optional body) to 127.0.0.1:port and reads
 * the reply until the server closes ("Connection: close"). */
static struct http_reply
http_call(int port, const char *method, const char *path, const char *body)
{
	struct http_reply r = {0};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};
	char req[512];
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to port %d", port);
	int l = snprintf(req, sizeof(req),
	                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	                 "Content-Length: %zu\r\n\r\n%s",
	                 method, path, body ? strlen(body) : 0, body ? body : "");
	cr_assert_eq(write(fd, req, (size_t)l), l);
	for (;;) {
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t k = read(fd, buf + n, cap - n - 1);
		cr_assert_geq(k, 0, "read timed out");
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(sep, "no end of headers in: %s", buf);
	cr_assert_lt((size_t)(sep - buf), sizeof(r.head));
	memcpy(r.head, buf, (size_t)(sep - buf));
	cr_assert_eq(sscanf(buf, "HTTP/1.1 %d ", &r.status), 1, "bad status line: %s", buf);
	r.body_len = n - (size_t)(sep + 4 - buf);
	r.body = malloc(r.body_len + 1);
	memcpy(r.body, sep + 4, r.body_len + 1);
	free(buf);
	return r;
}

static struct http_reply
http_get(int port, const char *path)
{
	return http_call(port, "GET", path, NULL);
}

/* ---- the daemon side: hooks over a few flags ------------------------------ */

static struct {
	atomic_bool alive, ready;
	atomic_int refreshed;
} g_state;

static bool
hook_alive(void *arg)
{
	(void)arg;
	return g_state.alive;
}

static bool
hook_ready(void *arg, char *why, size_t len)
{
	(void)arg;
	if (g_state.ready)
		return true;
	snprintf(why, len, "draining: shutdown in progress");
	return false;
}

static void
hook_before_metrics(void *arg)
{
	(void)arg;
	g_state.refreshed++;
	metrics_set(METRIC_LMDB_USED_BYTES, 0, 123456789);
}

static const ops_http_hooks g_hooks = {
	.alive = hook_alive, .ready = hook_ready, .before_metrics = hook_before_metrics, .arg = NULL,
};

static ops_http *
start(void)
{
	char err[256] = "";
	g_state.alive = true;
	g_state.ready = true;
	g_state.refreshed = 0;
	ops_http *h = ops_http_start("127.0.0.1:0", &g_hooks, err, sizeof(err));
	cr_assert_not_null(h, "ops_http_start: %s", err);
	cr_assert_gt(ops_http_port(h), 0);
	return h;
}

static void
reply_free(struct http_reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* ---- the address ----------------------------------------------------------- */

Test(ops_http, parse_listen)
{
	static const char *const good[] = {"127.0.0.1:7480", "0.0.0.0:0", "10.1.2.3:65535",
	                                   "[::1]:7480", "[::]:9", "[fe80::1]:80"};
	static const char *const bad[] = {
	    "",           "localhost:7480", "127.0.0.1",     "127.0.0.1:",     "127.0.0.1:65536",
	    "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80a", " 127.0.0.1:80", "1.2.3:80",
	    "::1:7480",   "[::1]7480",      "[::1]:",        "[::1]:x",        "[127.0.0.1]:80",
	    "[::1",       ":7480",          "127.0.0.1:0007480", "http://127.0.0.1:80"};
	struct sockaddr_storage a;
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert(ops_http_parse_listen(good[i], &a, err, sizeof(err)), "%s: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert(!ops_http_parse_listen(bad[i], &a, err, sizeof(err)), "accepted \"%s\"", bad[i]);
		cr_assert(strstr(err, "IPV4:PORT") != NULL, "unclear error for \"%s\": %s", bad[i], err);
	}
	cr_assert(ops_http_parse_listen("192.168.7.9:7480", &a, err, sizeof(err)));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
	cr_assert_eq(a4->sin_family, AF_INET);
	cr_assert_eq(ntohs(a4->sin_port), 7480);
	cr_assert_eq(ntohl(a4->sin_addr.s_addr), 0xC0A80709u);
	cr_assert(ops_http_parse_listen("[::1]:80", &a, err, sizeof(err)));
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
	cr_assert_eq(a6->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(a6->sin6_port), 80);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
}

Test(ops_http, refuses_host_names_and_taken_ports)
{
	char err[256] = "";
	cr_assert_null(ops_http_start("localhost:0", &g_hooks, err, sizeof(err)));
	cr_assert(strstr(err, "localhost") != NULL, "%s", err);

	ops_http *h = start();
	char taken[64];
	snprintf(taken, sizeof(taken), "127.0.0.1:%d", ops_http_port(h));
	err[0] = '\0';
	cr_assert_null(ops_http_start(taken, &g_hooks, err, sizeof(err)));
	cr_assert(strstr(err, "cannot serve ops HTTP on 127.0.0.1:") != NULL, "%s", err);
	ops_http_stop(&h);
	cr_assert_null(h);
	ops_http_stop(&h); /* NULL is fine */
	ops_http_stop(NULL);
}

/* Connects to addr:port; returns the connect() result (0 or -1). */
static int
try_connect(int family, const char *addr, int port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		len = sizeof(*a);
	}
	int fd = socket(family, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	int rc = connect(fd, (struct sockaddr *)&ss, len);
	close(fd);
	return rc;
}

Test(ops_http, bound_to_the_given_address_only)
{
	ops_http *h = start();
	cr_assert_eq(try_connect(AF_INET, "127.0.0.1", ops_http_port(h)), 0);
	/* Another loopback address of the same host: nobody listens there. */
	cr_assert_neq(try_connect(AF_INET, "127.0.0.2", ops_http_port(h)), 0,
	              "127.0.0.1:port must not be a wildcard bind");
	ops_http_stop(&h);
}

Test(ops_http, ipv6_loopback)
{
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (probe >= 0)
		close(probe);
	if (!have_v6) { /* a container without IPv6: nothing to serve on */
		cr_log_warn("no IPv6 loopback here; [::1] was not exercised");
		return;
	}
	char err[256] = "";
	ops_http *h = ops_http_start("[::1]:0", &g_hooks, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	cr_assert_gt(ops_http_port(h), 0);
	cr_assert_eq(try_connect(AF_INET6, "::1", ops_http_port(h)), 0);
	cr_assert_neq(try_connect(AF_INET, "127.0.0.1", ops_http_port(h)), 0, "v6 only");
	ops_http_stop(&h);
}

/* ---- requests ---------------------------------------------------------------- */

Test(ops_http, healthz)
{
	ops_http *h = start();
	struct http_reply r = http_get(ops_http_port(h), "/healthz");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok\n");
	reply_free(&r);

	g_state.alive = false;
	r = http_get(ops_http_port(h), "/healthz");
	cr_assert_eq(r.status, 503);
	reply_free(&r);

	r = http_call(ops_http_port(h), "HEAD", "/healthz", NULL);
	cr_assert_eq(r.status, 503);
	cr_assert_eq(r.body_len, 0, "HEAD has no body");
	reply_free(&r);
	ops_http_stop(&h);
}

Test(ops_http, readyz_says_why)
{
	ops_http *h = start();
	struct http_reply r = http_get(ops_http_port(h), "/readyz");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ready\n");
	reply_free(&r);

	g_state.ready = false;
	r = http_get(ops_http_port(h), "/readyz");
	cr_assert_eq(r.status, 503);
	cr_assert_str_eq(r.body, "draining: shutdown in progress\n");
	cr_assert(strstr(r.head, "text/plain") != NULL, "%s", r.head);
	reply_free(&r);

	g_state.ready = true;
	r = http_get(ops_http_port(h), "/readyz");
	cr_assert_eq(r.status, 200);
	reply_free(&r);
	ops_http_stop(&h);
}

Test(ops_http, hooks_may_be_null)
{
	char err[256] = "";
	ops_http_hooks none = {0};
	ops_http *h = ops_http_start("127.0.0.1:0", &none, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	const char *paths[] = {"/healthz", "/readyz", "/metrics"};
	for (size_t i = 0; i < 3; i++) {
		struct http_reply r = http_get(ops_http_port(h), paths[i]);
		cr_assert_eq(r.status, 200, "%s", paths[i]);
		reply_free(&r);
	}
	ops_http_stop(&h);
	h = ops_http_start("127.0.0.1:0", NULL, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	ops_http_stop(&h);
}

Test(ops_http, metrics)
{
	metrics_reset();
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_APPLIED, 42);
	ops_http *h = start();
	struct http_reply r = http_get(ops_http_port(h), "/metrics?debug=1");
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.head, "Content-Type: text/plain; version=0.0.4") != NULL, "%s", r.head);
	cr_assert_eq(g_state.refreshed, 1, "before_metrics runs once per scrape");
	cr_assert(strstr(r.body, "\nfieldsync_changes_total{result=\"applied\"} 42\n") != NULL);
	cr_assert(strstr(r.body, "\nfieldsync_lmdb_used_bytes 123456789\n") != NULL,
	          "the hook's fresh gauge is in this very scrape");
	/* Every line is a comment or a fieldsync_ sample. */
	size_t samples = 0;
	for (char *line = strtok(r.body, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		cr_assert(strncmp(line, "fieldsync_", 10) == 0, "%s", line);
		samples++;
	}
	cr_assert_gt(samples, 100);
	reply_free(&r);
	ops_http_stop(&h);
}

Test(ops_http, not_found_and_method_not_allowed)
{
	ops_http *h = start();
	struct http_reply r = http_get(ops_http_port(h), "/");
	cr_assert_eq(r.status, 404);
	reply_free(&r);
	r = http_get(ops_http_port(h), "/metrics/extra");
	cr_assert_eq(r.status, 404);
	reply_free(&r);

	r = http_call(ops_http_port(h), "POST", "/metrics", "a=1&b=2");
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.head, "Allow: GET, HEAD") != NULL, "%s", r.head);
	reply_free(&r);
	r = http_call(ops_http_port(h), "DELETE", "/readyz", NULL);
	cr_assert_eq(r.status, 405);
	reply_free(&r);
	cr_assert_eq(g_state.refreshed, 0, "no render for refused requests");

	/* Still serving after all that. */
	r = http_get(ops_http_port(h), "/healthz");
	cr_assert_eq(r.status, 200);
	reply_free(&r);
	ops_http_stop(&h);
}

/* ---- promtool -------------------------------------------------------------------- */

Test(ops_http, promtool_check_metrics)
{
	cr_assert_eq(system("command -v promtool >/dev/null 2>&1"), 0,
	             "promtool is not installed: `apt-get install prometheus` (Debian's package "
	             "ships promtool); this test checks /metrics with `promtool check metrics`");

	/* Values everywhere, histograms included, so every kind of line is checked. */
	metrics_reset();
	metrics_set(METRIC_UP, 0, 1);
	metrics_inc(METRIC_CHANGESETS_TOTAL, MCS_APPLIED, 10);
	metrics_inc(METRIC_CHANGES_TOTAL, MCH_CONFLICT, 2);
	metrics_inc(METRIC_REMINDER_EVENTS_TOTAL, metrics_rule_state(3, 2), 1);
	metrics_set(METRIC_REMINDERS, metrics_rule_state(9, 5), 4);
	metrics_observe(METRIC_COMMIT_DURATION_SECONDS, 0.0123);
	metrics_observe(METRIC_COMMIT_DURATION_SECONDS, 9.5);
	metrics_observe(METRIC_COMMIT_BATCH_CHANGESETS, 17);

	ops_http *h = start();
	struct http_reply r = http_get(ops_http_port(h), "/metrics");
	cr_assert_eq(r.status, 200);
	ops_http_stop(&h);

	char out[] = "/tmp/fs-promtool-XXXXXX";
	int fd = mkstemp(out);
	cr_assert_geq(fd, 0);
	close(fd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "promtool check metrics >%s 2>&1", out);
	FILE *p = popen(cmd, "w");
	cr_assert_not_null(p);
	cr_assert_eq(fwrite(r.body, 1, r.body_len, p), r.body_len);
	int st = pclose(p);

	char said[4096] = "";
	FILE *f = fopen(out, "r");
	if (f != NULL) {
		said[fread(said, 1, sizeof(said) - 1, f)] = '\0';
		fclose(f);
	}
	unlink(out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool check metrics failed:\n%s", said);
	cr_assert_eq(said[0], '\0', "promtool has remarks:\n%s", said);
	reply_free(&r);
}

/* ---- the disk helper --------------------------------------------------------------- */

Test(ops_http, disk_ok)
{
	char why[256] = "";
	uint64_t free_bytes = 0;
	cr_assert(ops_disk_ok("/tmp", 0, &free_bytes, why, sizeof(why)), "%s", why);
	cr_assert_gt(free_bytes, 0);
	cr_assert(!ops_disk_ok("/tmp", UINT64_MAX, &free_bytes, why, sizeof(why)));
	cr_assert(strstr(why, "the disk is full") != NULL, "%s", why);
	cr_assert(!ops_disk_ok("/nonexistent/fieldsync", 0, NULL, why, sizeof(why)));
	cr_assert(strstr(why, "cannot be examined") != NULL, "%s", why);
}
