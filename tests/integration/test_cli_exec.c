/*
 * `fieldsync watch` as a scheduler that acts, against the real daemon:
 * --exec CMD once per event in seq order with a CMD that fails every third
 * call and a watcher killed with SIGKILL mid-run (every event acted on, in
 * order, none twice after its success was saved); the --state file's
 * safety (a corrupt file is refused, a cursor ahead of the daemon is
 * detected, --on-restore chooses); Ctrl-C exits at once with 130; the
 * daemon's fieldsync_reminder_events_last_seq gauge.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

#ifndef FS_CLI_BIN
#error "the fieldsync-cli target must exist"
#endif

static fs_test_daemon *d;
static char *tmp;
static pid_t watcher; /* a running watcher's process group, for the fini hook */

static void
setup(void)
{
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
}

static void
teardown(void)
{
	if (watcher > 0)
		kill(-watcher, SIGKILL);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(cli_exec, .init = setup, .fini = teardown, .timeout = 180);

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pushes n cases <prefix>-<i> with a first contact now and nothing else:
 * one quick-help event (SCHEDULED) each. */
static void
push_cases(const char *prefix, int n)
{
	static uint64_t rid = 1;
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[128];
	char csid[64];
	c.first_contact_at_ms = now_ms();
	c.contact_person = "staff-3";
	size_t len = fieldsync__v1__case__pack(&c, buf);
	snprintf(csid, sizeof(csid), "%s-set", prefix);
	fs_test_push *p = fs_test_push_new(csid);
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%05d", prefix, i);
		fs_test_push_add(p, "case", id, "team-a", "a:1", false, buf, len);
	}
	Fieldsync__V1__Envelope *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 30000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
}

static char *
slurp(const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 1 << 20);
	cr_assert_not_null(text);
	if (f != NULL) {
		size_t n = fread(text, 1, (1 << 20) - 1, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

static void
write_file(const char *name, const char *text)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* Starts `fieldsync watch --endpoint .. --reminders .. ARGS` in its own
 * process group, stdout to TMP/out, stderr appended to TMP/err. */
static pid_t
watch_start(const char *args)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "exec %s watch --endpoint %s --reminders %s %s >>%s/out 2>>%s/err",
	         FS_CLI_BIN, fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d), args,
	         tmp, tmp);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	watcher = pid;
	return pid;
}

/* Waits for pid; its exit status (128 + signal when killed), -1 on timeout. */
static int
watch_wait(pid_t pid, int timeout_ms)
{
	int st;
	for (int64_t end = mono_ms() + timeout_ms; mono_ms() < end;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			watcher = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(5000);
	}
	return -1;
}

/* Runs a watch to its end; returns its exit status. */
static int
watch_run(const char *args)
{
	return watch_wait(watch_start(args), 60000);
}

static uint64_t
state_seq(void)
{
	char *t = slurp("cursor");
	uint64_t v = strtoull(t, NULL, 10);
	free(t);
	return v;
}

Test(cli_exec, every_event_acted_on_in_order_through_failures_and_kill9)
{
	enum { N = 120, M = 60, KILLS = 4 };
	char args[2048];
	/* CMD: fails every third call (a shared counter), else appends the seq
	 * to `done`; notes in `bad` any event whose stdin and environment
	 * disagree. */
	char script[2048];
	snprintf(script, sizeof(script),
	         "n=$(cat %s/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n >%s/calls\n"
	         "json=$(cat)\n"
	         "case \"$json\" in *\"\\\"seq\\\":$FS_EVENT_SEQ,\"*) ;; *) echo \"$FS_EVENT_SEQ\" >>%s/bad;; esac\n"
	         "[ \"$FS_IDEMPOTENCY_KEY\" = \"$FS_REMINDER_ID@$FS_EVENT_SEQ\" ] || echo key >>%s/bad\n"
	         "[ \"$FS_RULE\" = quick-help ] && [ \"$FS_STATE\" = SCHEDULED ] && "
	         "[ \"$FS_CONTACT_PERSON\" = staff-3 ] && [ -n \"$FS_DUE_AT_MS\" ] || echo env >>%s/bad\n"
	         "[ $((n %% 3)) -eq 0 ] && exit 1\n"
	         "sleep 0.005\n"
	         "echo $FS_EVENT_SEQ >>%s/done\n",
	         tmp, tmp, tmp, tmp, tmp, tmp);
	write_file("cmd.sh", script);
	push_cases("early", N); /* before any watcher: replayed */
	snprintf(args, sizeof(args), "--exec 'sh %s/cmd.sh' --retry-delay 0.01 --state %s/cursor",
	         tmp, tmp);

	int kills = 0;
	for (int round = 0; round < KILLS; round++) {
		pid_t pid = watch_start(args);
		usleep(250000 + round * 70000);
		if (round == 1)
			push_cases("live", M); /* while one runs: by PUB */
		cr_assert_eq(kill(-pid, SIGKILL), 0);
		cr_assert_eq(watch_wait(pid, 10000), 128 + SIGKILL);
		kills++;
	}
	/* The last run goes to the end, then SIGTERM stops it. */
	pid_t pid = watch_start(args);
	int64_t end = mono_ms() + 60000;
	while (state_seq() < N + M && mono_ms() < end)
		usleep(20000);
	cr_assert_eq(state_seq(), N + M, "the cursor reached the last event");
	kill(pid, SIGTERM);
	cr_expect_eq(watch_wait(pid, 10000), 143);

	char *bad = slurp("bad"), *done = slurp("done"), *calls = slurp("calls"), *err = slurp("err");
	cr_expect_str_eq(bad, "", "stdin and environment carry the event");
	int n_calls = atoi(calls);
	cr_expect_gt(n_calls, N + M, "failed calls were retried: %d calls", n_calls);
	cr_expect_not_null(strstr(err, "--exec exited 1 for seq"), "%s", err);
	/* done: 1..N+M in order; a seq twice only right after itself, and only
	 * where a kill came between CMD's success and the save of the cursor. */
	uint64_t want = 1, dups = 0, prev = 0;
	for (char *line = strtok(done, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		uint64_t seq = strtoull(line, NULL, 10);
		if (seq == prev) {
			dups++;
			continue;
		}
		cr_assert_eq(seq, want, "in order, none lost: got %lu, want %lu", (unsigned long)seq,
		             (unsigned long)want);
		prev = seq;
		want++;
	}
	cr_expect_eq(want, (uint64_t)N + M + 1, "every event acted on");
	cr_expect_leq(dups, (uint64_t)kills, "a repeat only where a kill hit: %lu",
	              (unsigned long)dups);
	cr_log_info("watch --exec: %d calls for %d events, %lu repeats after %d kills", n_calls,
	            N + M, (unsigned long)dups, kills);
	free(bad);
	free(done);
	free(calls);
	free(err);
}

Test(cli_exec, a_corrupt_state_file_is_refused_never_reset)
{
	char args[1024];
	push_cases("c", 3);
	snprintf(args, sizeof(args), "--count 1 --state %s/cursor", tmp);
	const char *bad[] = {"12abc\n", "", "\n", "-1\n", "99999999999999999999999\n", "1\n2\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("cursor", bad[i]);
		cr_expect_eq(watch_run(args), 78, "corrupt state %zu refused with 78", i);
		char *t = slurp("cursor");
		cr_expect_str_eq(t, bad[i], "the file is left as it was");
		free(t);
	}
	char *err = slurp("err");
	cr_expect_not_null(strstr(err, "is corrupt"), "%s", err);
	cr_expect_not_null(strstr(err, "never reset"), "%s", err);
	free(err);
	/* a good one resumes; a missing one starts from the beginning */
	write_file("cursor", "2\n");
	cr_assert_eq(watch_run(args), 0);
	cr_expect_eq(state_seq(), 3);
	char *out = slurp("out");
	cr_expect_eq(strncmp(out, "3 SCHEDULED", 11), 0, "%s", out);
	free(out);
}

Test(cli_exec, a_cursor_ahead_of_the_daemon_is_detected_and_on_restore_chooses)
{
	char args[1024], path[600];
	push_cases("r", 5);
	/* The gauge operators alert on: last_seq - the scheduler's cursor. */
	char *body = NULL;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &body), 200);
	cr_expect_not_null(strstr(body, "\nfieldsync_reminder_events_last_seq 5\n"), "%s", body);
	free(body);

	write_file("cursor", "100\n");
	snprintf(args, sizeof(args), "--count 1 --state %s/cursor", tmp);
	cr_expect_eq(watch_run(args), 79, "refused by default");
	cr_expect_eq(state_seq(), 100, "the state is left alone");
	char *err = slurp("err");
	cr_expect_not_null(strstr(err, "ahead of the daemon's last event (seq 5)"), "%s", err);
	cr_expect_not_null(strstr(err, "--on-restore=replay"), "%s", err);
	free(err);

	/* skip: only events after the daemon's last */
	snprintf(args, sizeof(args), "--json --count 2 --on-restore=skip --state %s/cursor", tmp);
	pid_t pid = watch_start(args);
	usleep(1500000);
	push_cases("s", 2);
	cr_assert_eq(watch_wait(pid, 30000), 0);
	char *out = slurp("out");
	cr_expect_eq(strncmp(out, "{\"seq\":6,", 9), 0, "%s", out);
	cr_expect_not_null(strstr(out, "\n{\"seq\":7,"), "%s", out);
	free(out);
	cr_expect_eq(state_seq(), 7);

	/* replay: from the beginning */
	write_file("cursor", "100\n");
	snprintf(path, sizeof(path), "%s/out", tmp);
	unlink(path);
	snprintf(args, sizeof(args), "--count 2 --on-restore=replay --state %s/cursor", tmp);
	cr_assert_eq(watch_run(args), 0);
	out = slurp("out");
	cr_expect_eq(strncmp(out, "1 SCHEDULED", 11), 0, "%s", out);
	cr_expect_not_null(strstr(out, "\n2 SCHEDULED"), "%s", out);
	free(out);
	cr_expect_eq(state_seq(), 2);
	snprintf(args, sizeof(args), "--on-restore=later --state %s/cursor", tmp);
	cr_expect_eq(watch_run(args), 2, "a bad --on-restore is a usage error");
}

Test(cli_exec, ctrl_c_exits_at_once_with_130_and_times_are_local)
{
	char args[1024];
	push_cases("t", 1);
	snprintf(args, sizeof(args), "--time-zone Europe/Copenhagen --state %s/cursor", tmp);
	pid_t pid = watch_start(args);
	int64_t end = mono_ms() + 20000;
	while (state_seq() < 1 && mono_ms() < end)
		usleep(20000);
	usleep(300000); /* now it waits inside the watcher's poll */
	int64_t t0 = mono_ms();
	cr_assert_eq(kill(pid, SIGINT), 0);
	cr_expect_eq(watch_wait(pid, 5000), 130);
	cr_expect_lt(mono_ms() - t0, 300, "at once, not after the next poll");
	char *out = slurp("out");
	/* December in Copenhagen: CET; the due time is a date, hours, minutes */
	cr_expect_not_null(strstr(out, " due=20"), "%s", out);
	cr_expect(strstr(out, " CET\n") != NULL || strstr(out, " CEST\n") != NULL, "%s", out);
	free(out);
}
