/*
 * Configuration through the real binary: an INI file (libinih) under env and
 * flags, check-config, SIGHUP reloading the rule table on a live connection,
 * and idle TCP connections that must not hold up a real client.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;

static char *
run(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char *out = calloc(1, 16384);
	size_t n = fread(out, 1, 16383, p);
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(config_file, flags_beat_env_beat_the_file, .timeout = 30)
{
	char *dir = fs_test_tmpdir(), ini[600], cmd[2048];
	int st;
	snprintf(ini, sizeof(ini), "%s/fieldsyncd.conf", dir);
	write_file(ini, "[fieldsyncd]\nsync_endpoint = tcp://127.0.0.1:1111\nlog-level = warn\n"
	                "replies-kept = 77\n");
	snprintf(cmd, sizeof(cmd), "%s check-config --dev --config %s", FS_DAEMON_BIN, ini);
	char *out = run(cmd, &st);
	cr_expect_eq(st, 0, "%s", out);
	cr_expect_not_null(strstr(out, "sync-endpoint = tcp://127.0.0.1:1111"), "%s", out);
	cr_expect_not_null(strstr(out, "replies-kept = 77"));
	cr_expect_not_null(strstr(out, "log-level = warn"));
	free(out);
	snprintf(cmd, sizeof(cmd),
	         "FIELDSYNC_SYNC_ENDPOINT=tcp://127.0.0.1:2222 %s check-config --dev --config %s", FS_DAEMON_BIN, ini);
	out = run(cmd, &st);
	cr_expect_not_null(strstr(out, "sync-endpoint = tcp://127.0.0.1:2222"), "env beats the file: %s", out);
	free(out);
	snprintf(cmd, sizeof(cmd),
	         "FIELDSYNC_SYNC_ENDPOINT=tcp://127.0.0.1:2222 %s check-config --dev --config %s "
	         "--sync-endpoint tcp://127.0.0.1:3333", FS_DAEMON_BIN, ini);
	out = run(cmd, &st);
	cr_expect_not_null(strstr(out, "sync-endpoint = tcp://127.0.0.1:3333"), "flags beat env: %s", out);
	free(out);

	/* Secrets are redacted. */
	snprintf(cmd, sizeof(cmd), "FIELDSYNC_MASTER_KEY=k1:%064d %s check-config --dev", 7, FS_DAEMON_BIN);
	out = run(cmd, &st);
	cr_expect_eq(st, 0);
	cr_expect_not_null(strstr(out, "redacted"));
	cr_expect_null(strstr(out, "0000000000000007"), "the key never shows: %s", out);
	free(out);

	/* A bad key, a bad value: non-zero, naming the key. */
	write_file(ini, "[fieldsyncd]\nmax_changes_per_pushh = 10\n");
	snprintf(cmd, sizeof(cmd), "%s check-config --config %s 2>&1", FS_DAEMON_BIN, ini);
	out = run(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "max_changes_per_pushh"), "%s", out);
	free(out);
	write_file(ini, "[fieldsyncd]\nmax-payload-bytes = lots\n");
	out = run(cmd, &st);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "max-payload-bytes"), "%s", out);
	free(out);

	/* Its --help is its own, and exits 0 without checking anything. */
	snprintf(cmd, sizeof(cmd), "%s check-config --help", FS_DAEMON_BIN);
	out = run(cmd, &st);
	cr_expect_eq(st, 0);
	cr_expect_not_null(strstr(out, "usage: fieldsyncd check-config"), "%s", out);
	cr_expect_not_null(strstr(out, "--config FILE"), "%s", out);
	free(out);
	fs_test_rm_rf(dir);
	free(dir);
}

static int
count_quick_help(void *s, const char *case_id)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 40;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r);
	int n = 0;
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		n += strcmp(r->replay_reply->events[i]->rule, "quick-help") == 0 &&
		     strcmp(r->replay_reply->events[i]->case_id, case_id) == 0;
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return n;
}

static void
push_case(void *s, const char *id)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[64];
	c.first_contact_at_ms = (int64_t)time(NULL) * 1000;
	size_t len = fieldsync__v1__case__pack(&c, buf);
	fs_test_push *p = fs_test_push_new(id);
	fs_test_push_add(p, "case", id, "team-a", "a:1", false, buf, len);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 41), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

Test(config_file, sighup_reloads_the_rule_table_on_a_live_connection, .timeout = 60)
{
	char *dir = fs_test_tmpdir(), rules[600];
	snprintf(rules, sizeof(rules), "%s/rules.json", dir);
	write_file(rules, "{\"quick-help\": {\"enabled\": true}}");
	const char *args[] = {"--rules", rules, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(NULL, args);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case(s, "before");
	cr_expect_eq(count_quick_help(s, "before"), 1);

	/* A bad table is refused and the old one stays. */
	write_file(rules, "{\"quick-help\": {\"due\": \"soon\"}}");
	kill(fs_test_daemon_pid(d), SIGHUP);
	usleep(1500000);
	push_case(s, "still");
	cr_expect_eq(count_quick_help(s, "still"), 1, "the old table is in force");

	write_file(rules, "{\"quick-help\": {\"enabled\": false}}");
	kill(fs_test_daemon_pid(d), SIGHUP);
	usleep(1500000);
	push_case(s, "after"); /* the same connection: nothing was dropped */
	cr_expect_eq(count_quick_help(s, "after"), 0, "quick-help is switched off now");
	char *log = fs_test_daemon_log(d);
	cr_expect_not_null(strstr(log, "rule table reloaded"));
	cr_expect_not_null(strstr(log, "reload refused"));
	free(log);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	fs_test_rm_rf(dir);
	free(dir);
}

Test(config_file, idle_tcp_connections_do_not_hold_up_a_client, .timeout = 60)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	int port = atoi(strrchr(fs_test_daemon_endpoint(d), ':') + 1);
	int fds[100];
	for (int i = 0; i < 100; i++) { /* connect, then say nothing */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_eq(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
	}
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	env_t *r = fs_test_call(s, &e, 5000);
	cr_assert_not_null(r, "a real client is served beside 100 idle connections");
	cr_expect_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
