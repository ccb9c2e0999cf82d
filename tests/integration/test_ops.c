/*
 * The ops HTTP endpoint of the real daemon: /healthz, /readyz, /metrics
 * (counted from real pushes and pulls), checked by promtool.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

/* The value of the sample line starting with `name` in a Prometheus text. */
static double
sample(const char *text, const char *name)
{
	size_t l = strlen(name);
	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, l) == 0 && p[l] == ' ')
			return atof(p + l + 1);
	return -1;
}

Test(ops, health_readiness_and_metrics, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	int port = fs_test_daemon_ops_port(d);
	char *body = NULL;
	cr_expect_eq(fs_test_http_get(port, "/healthz", &body), 200);
	free(body);
	cr_expect_eq(fs_test_http_get(port, "/readyz", &body), 200, "ready: %s", body);
	free(body);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s health --ready --ops-listen 127.0.0.1:%d", FS_DAEMON_BIN, port);
	cr_expect_eq(system(cmd), 0, "fieldsyncd health (the HEALTHCHECK) says ready");

	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	fs_test_push *p = fs_test_push_new("cs-ops");
	fs_test_push_add(p, "note", "a", "team-a", "x:1", false, "1", 1);
	fs_test_push_add(p, "note", "b", "team-a", "x:1", false, "2", 1);
	Fieldsync__V1__Envelope *r = fs_test_call(s, fs_test_push_envelope(p, 1), 10000);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 2;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* A case whose quick-help is in its warning window (first contact 6 days ago). */
	{
		Fieldsync__V1__Case k = FIELDSYNC__V1__CASE__INIT;
		uint8_t kb[64];
		k.first_contact_at_ms = (int64_t)time(NULL) * 1000 - 6LL * 86400000;
		size_t kl = fieldsync__v1__case__pack(&k, kb);
		p = fs_test_push_new("cs-ops-case");
		fs_test_push_add(p, "case", "ops-case", "team-a", "x:1", false, kb, kl);
		r = fs_test_call(s, fs_test_push_envelope(p, 5), 10000);
		cr_assert_not_null(r);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		fs_test_push_free(p);
	}
	/* A conflict: two concurrent versions of one record. */
	p = fs_test_push_new("cs-ops-c");
	fs_test_push_add(p, "note", "a", "team-a", "x:1,y:1", false, "3", 1);
	r = fs_test_call(s, fs_test_push_envelope(p, 3), 10000);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);
	p = fs_test_push_new("cs-ops-d");
	fs_test_push_add(p, "note", "a", "team-a", "x:1,z:1", false, "4", 1);
	r = fs_test_call(s, fs_test_push_envelope(p, 4), 10000);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	fs_test_push_free(p);

	cr_assert_eq(fs_test_http_get(port, "/metrics", &body), 200);
	cr_expect_eq(sample(body, "fieldsync_conflicts_open"), 1, "%s", body);
	cr_expect_eq(sample(body, "fieldsync_reminders{rule=\"quick-help\",state=\"warning\"}"), 1,
	             "the case pushed above is in its warning window");
	cr_expect_geq(sample(body, "fieldsync_peers_connected"), 1);
	cr_expect_eq(sample(body, "fieldsync_up"), 1);
	cr_expect_eq(sample(body, "fieldsync_changes_total{result=\"applied\"}"), 4, "%s", body);
	cr_expect_eq(sample(body, "fieldsync_changes_total{result=\"conflict\"}"), 1);
	cr_expect_eq(sample(body, "fieldsync_changesets_total{result=\"applied\"}"), 4);
	cr_expect_eq(sample(body, "fieldsync_pulled_records_total"), 2);
	cr_expect_eq(sample(body, "fieldsync_requests_total{type=\"push\"}"), 4);
	cr_expect_geq(sample(body, "fieldsync_commit_duration_seconds_count"), 1);
	cr_expect_gt(sample(body, "fieldsync_lmdb_map_size_bytes"), 0);
	cr_expect_gt(sample(body, "fieldsync_lmdb_used_bytes"), 0);

	/* promtool accepts the exposition. */
	char path[] = "/tmp/fieldsync-metrics-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs(body, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	FILE *pc = popen(cmd, "r");
	char out[4096] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, pc);
	out[n] = '\0';
	int st = pclose(pc);
	cr_expect_eq(st, 0, "promtool check metrics (Debian package prometheus): %s", out);
	remove(path);
	free(body);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	snprintf(cmd, sizeof(cmd), "%s health --ops-listen 127.0.0.1:%d 2>/dev/null", FS_DAEMON_BIN, port);
	cr_expect_neq(system(cmd), 0, "and fails once the daemon is gone");
}
