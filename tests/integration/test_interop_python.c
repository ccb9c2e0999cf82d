/*
 * Interoperability: deploy/examples/scheduler.py, a scheduler written in
 * Python against docs/protocol.md alone, follows the real daemon's reminder feed.
 * It must replay what was stored before it started, follow the PUB, fill
 * gaps by replay and print every event once, in seq order.
 *
 * The same scheduler with CURVE (the CLI's credential file), --exec, the
 * --state file's safety and the exit codes of `fieldsync watch`, against a
 * production daemon.
 *
 * Needs Debian's /usr/bin/python3 with python3-zmq and python3-protobuf, and
 * protoc (protobuf-compiler). A missing package fails the test, never skips it.
 */
#define _GNU_SOURCE /* getline, popen, kill */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/crypto.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;

/* Debian's interpreter: a python3 earlier in PATH (pyenv) lacks the modules. */
#define PYTHON "/usr/bin/python3"
#define PACKAGES "python3-zmq python3-protobuf protobuf-compiler"

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
elapsed_s(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The repository root: FS_VECTORS_DIR is <root>/tests/vectors. */
static void
repo_root(char *out, size_t len)
{
	const char *v = FS_VECTORS_DIR, *tail = "/tests/vectors";
	size_t n = strlen(v), t = strlen(tail);
	cr_assert(n > t && strcmp(v + n - t, tail) == 0, "unexpected FS_VECTORS_DIR %s", v);
	cr_assert_lt(n - t, len);
	memcpy(out, v, n - t);
	out[n - t] = '\0';
}

/* Fails (never skips) when the Python side cannot run here. */
static void
require_python(void)
{
	cr_assert_eq(system(PYTHON " -c 'import zmq, google.protobuf' >/dev/null 2>&1"), 0,
	             PYTHON " cannot import zmq and google.protobuf: install the Debian packages "
	             PACKAGES " (apt-get install -y " PACKAGES ")");
	cr_assert_eq(system("command -v protoc >/dev/null 2>&1"), 0,
	             "protoc is missing: install the Debian packages " PACKAGES
	             " (apt-get install -y " PACKAGES ")");
}

/* Generates fieldsync/v1/sync_pb2.py into a new temporary directory, as
 * deploy/examples/README.md tells an operator to. Caller frees and removes. */
static char *
generate_python(const char *root)
{
	char *dir = fs_test_tmpdir(), cmd[4096], path[1024];
	cr_assert_not_null(dir);
	snprintf(cmd, sizeof(cmd), "protoc --python_out=%s -I %s/proto %s/proto/fieldsync/v1/sync.proto",
	         dir, root, root);
	cr_assert_eq(system(cmd), 0, "protoc failed: %s", cmd);
	snprintf(path, sizeof(path), "%s/fieldsync/v1/sync_pb2.py", dir);
	cr_assert_eq(access(path, R_OK), 0, "protoc wrote no %s", path);
	return dir;
}

/* Pushes cases <prefix>-<from> .. <prefix>-<from+n-1>, each with a first
 * contact now and nothing else: exactly one quick-help event (SCHEDULED) each. */
static void
push_cases(void *s, const char *prefix, int from, int n, int per_set)
{
	static uint64_t rid = 1;
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[128];
	c.first_contact_at_ms = now_ms();
	c.contact_person = "staff-3";
	size_t len = fieldsync__v1__case__pack(&c, buf);
	for (int base = from; base < from + n; base += per_set) {
		char csid[64];
		snprintf(csid, sizeof(csid), "%s-set-%d", prefix, base);
		fs_test_push *p = fs_test_push_new(csid);
		int k = 0;
		for (int i = base; i < from + n && i < base + per_set; i++, k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%05d", prefix, i);
			fs_test_push_add(p, "case", id, i % 2 ? "team-a" : "team-b", "a:1", false, buf, len);
		}
		env_t *r = fs_test_call(s, fs_test_push_envelope(p, rid++), 30000);
		fs_test_push_free(p);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		cr_assert_eq(r->push_reply->n_results, (size_t)k);
		for (size_t i = 0; i < r->push_reply->n_results; i++)
			cr_assert_eq(r->push_reply->results[i]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
}

/* The seq of the last stored event, by replay. */
static uint64_t
stored_last_seq(void *s)
{
	uint64_t since = 0;
	for (bool more = true; more;) {
		Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		rr.since_seq = since;
		rr.limit = 1000;
		e.request_id = 900000 + since;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
		e.replay = &rr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
		since = r->replay_reply->last_seq;
		more = r->replay_reply->more;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	return since;
}

/* A running scheduler.py: its stdout, pid and the directory holding its stderr. */
struct sched {
	FILE *out;
	pid_t pid;
	char dir[512];
};

/* The scheduler still running, for the fini hook after a failed assertion. */
static pid_t running_pid;

/* Criterion fini: never leave a scheduler behind, stopped or running. */
static void
kill_scheduler(void)
{
	if (running_pid > 0) {
		kill(running_pid, SIGCONT);
		kill(running_pid, SIGTERM);
	}
}

static void
sched_start(struct sched *sc, const char *root, const char *gen, const fs_test_daemon *d,
            const char *opts)
{
	char cmd[4096], path[600];
	char *dir = fs_test_tmpdir();
	cr_assert_not_null(dir);
	snprintf(sc->dir, sizeof(sc->dir), "%s", dir);
	free(dir);
	/* sh writes its pid, then becomes the scheduler: the pid is the scheduler's. */
	snprintf(cmd, sizeof(cmd),
	         "echo $$ >%s/pid; exec " PYTHON " %s/deploy/examples/scheduler.py --proto-out %s "
	         "--endpoint %s --reminders %s --verbose %s 2>%s/stderr",
	         sc->dir, root, gen, fs_test_daemon_endpoint(d), fs_test_daemon_reminder_endpoint(d),
	         opts, sc->dir);
	sc->out = popen(cmd, "r");
	cr_assert_not_null(sc->out);
	snprintf(path, sizeof(path), "%s/pid", sc->dir);
	sc->pid = 0;
	for (int i = 0; i < 500 && sc->pid <= 0; i++) {
		FILE *f = fopen(path, "r");
		if (f == NULL || fscanf(f, "%d", &sc->pid) != 1)
			usleep(10000);
		if (f != NULL)
			fclose(f);
	}
	cr_assert_gt(sc->pid, 0, "the scheduler started");
	running_pid = sc->pid;
}

/* Its stderr, for the test log (malloc'd). */
static char *
sched_stderr(const struct sched *sc)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/stderr", sc->dir);
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	cr_assert_not_null(text);
	if (f != NULL) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

/* Where its events came from, from the summary --verbose writes at exit. */
static void
sched_stats(const char *err, int *by_replay, int *by_pub)
{
	const char *p = strstr(err, "delivered ");
	*by_replay = *by_pub = -1;
	cr_assert(p != NULL && sscanf(p, "delivered %d by replay and %d from PUB", by_replay, by_pub) == 2,
	          "the scheduler's summary: %s", err);
}

/* Waits for the scheduler to exit; returns its exit status (-1: not exited). */
static int
sched_finish(struct sched *sc)
{
	int st = pclose(sc->out);
	sc->out = NULL;
	running_pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
sched_cleanup(struct sched *sc)
{
	fs_test_rm_rf(sc->dir);
}

/* What the events printed so far covered. */
struct tally {
	uint64_t next_seq; /* the seq the next line must carry */
	int lines;
	bool *seen;        /* by case number, per prefix: [0, cases) "py", [cases, 2 cases) "live" */
	int cases;
};

/* Reads one JSON line and checks it is the next event, for a case not seen
 * before. Returns false at end of output. */
static bool
read_event(struct sched *sc, struct tally *t)
{
	char *line = NULL;
	size_t cap = 0;
	if (getline(&line, &cap, sc->out) < 0) {
		free(line);
		return false;
	}
	cJSON *j = cJSON_Parse(line);
	cr_assert_not_null(j, "a JSON line: %s", line);
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(j, "state");
	const cJSON *rule = cJSON_GetObjectItemCaseSensitive(j, "rule");
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(j, "reminder_id");
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "case_id");
	const cJSON *who = cJSON_GetObjectItemCaseSensitive(j, "contact_person");
	const cJSON *due = cJSON_GetObjectItemCaseSensitive(j, "due_at_ms");
	cr_assert(cJSON_IsNumber(seq) && cJSON_IsString(state) && cJSON_IsString(rule) &&
	              cJSON_IsString(rem) && cJSON_IsString(cid) && cJSON_IsString(who) &&
	              cJSON_IsNumber(due),
	          "every field: %s", line);
	cr_assert_eq((uint64_t)seq->valuedouble, t->next_seq, "seq in order, once each: %s", line);
	cr_expect_str_eq(state->valuestring, "SCHEDULED");
	cr_expect_str_eq(rule->valuestring, "quick-help");
	cr_expect_str_eq(who->valuestring, "staff-3");
	cr_expect_gt(due->valuedouble, (double)now_ms());
	char prefix[16];
	int num = -1;
	cr_assert_eq(sscanf(cid->valuestring, "%15[a-z]-%d", prefix, &num), 2, "%s", line);
	int slot = strcmp(prefix, "live") == 0 ? t->cases + num : num;
	cr_assert(num >= 0 && num < t->cases && slot < 2 * t->cases, "a case we pushed: %s", line);
	cr_assert(!t->seen[slot], "each case's event once: %s", line);
	t->seen[slot] = true;
	char want[64];
	snprintf(want, sizeof(want), "quick-help/%s", cid->valuestring);
	cr_expect_str_eq(rem->valuestring, want);
	cJSON_Delete(j);
	free(line);
	t->next_seq++;
	t->lines++;
	return true;
}

Test(interop_python, the_scheduler_replays_then_follows_the_pub, .fini = kill_scheduler, .timeout = 60)
{
	enum { N = 300, M = 200 };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	require_python();
	char root[1024];
	repo_root(root, sizeof(root));
	char *gen = generate_python(root);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));

	/* N events stored before the scheduler exists: it must replay them. */
	push_cases(s, "py", 0, N, 100);
	cr_assert_eq(stored_last_seq(s), N, "one event per case");

	struct sched sc;
	char opts[128];
	snprintf(opts, sizeof(opts), "--json --count %d --idle-exit 20", N + M);
	sched_start(&sc, root, gen, d, opts);
	static bool seen[2 * N];
	struct tally t = {.next_seq = 1, .seen = seen, .cases = N};
	while (t.lines < N)
		cr_assert(read_event(&sc, &t), "the scheduler printed %d of %d replayed events", t.lines, N);

	/* M more while it runs: these come from the PUB. */
	usleep(300000); /* its subscription has long reached the PUB; be sure */
	push_cases(s, "live", 0, M, 50);
	while (read_event(&sc, &t))
		;
	int st = sched_finish(&sc);
	char *err = sched_stderr(&sc);
	cr_log_info("python scheduler: %d events in %.2f s; %s", t.lines, elapsed_s(&t0), err);
	cr_expect_eq(st, 0, "exits 0 after --count events: %s", err);
	cr_expect_eq(t.lines, N + M, "exactly N+M events, seq 1..N+M");
	for (int i = 0; i < N + M; i++)
		cr_expect(seen[i], "case %d's event printed", i);
	int by_replay, by_pub;
	sched_stats(err, &by_replay, &by_pub);
	cr_expect_geq(by_replay, N, "the first N by replay: %s", err);
	cr_expect_gt(by_pub, 0, "the rest from the PUB: %s", err);
	free(err);

	sched_cleanup(&sc);
	fs_test_rm_rf(gen);
	free(gen);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

Test(interop_python, a_late_stalled_scheduler_prints_exactly_the_events_after_since,
     .fini = kill_scheduler, .timeout = 60)
{
	/* Starts late (--since K, events K+1..N stored before), then stalls
	 * (SIGSTOP) while BURST events are published: more than the PUB queues
	 * for one subscriber, so it sees a gap and fills it by replay. */
	enum { N = 300, K = 120, BURST = 12000 };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	require_python();
	char root[1024];
	repo_root(root, sizeof(root));
	char *gen = generate_python(root);
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_cases(s, "py", 0, N, 100);
	cr_assert_eq(stored_last_seq(s), N);

	struct sched sc;
	char opts[128];
	/* No --count: it must stop by itself after printing K+1..N+BURST. */
	snprintf(opts, sizeof(opts), "--json --since %d --idle-exit 3", K);
	sched_start(&sc, root, gen, d, opts);
	static bool seen[2 * BURST];
	struct tally t = {.next_seq = K + 1, .seen = seen, .cases = BURST};
	while (t.lines < N - K)
		cr_assert(read_event(&sc, &t), "printed %d of the %d events after %d", t.lines, N - K, K);
	for (int i = 0; i < K; i++)
		cr_expect(!seen[i], "nothing at or before --since");

	cr_assert_eq(kill(sc.pid, SIGSTOP), 0);
	push_cases(s, "live", 0, BURST, 1000);
	cr_assert_eq(kill(sc.pid, SIGCONT), 0);
	while (read_event(&sc, &t))
		;
	int st = sched_finish(&sc);
	char *err = sched_stderr(&sc);
	cr_log_info("python scheduler, late and stalled: %d events in %.2f s; %s", t.lines,
	            elapsed_s(&t0), err);
	cr_expect_eq(st, 0, "exits 0 after --idle-exit: %s", err);
	cr_expect_eq(t.lines, N - K + BURST, "exactly the events after --since");
	cr_expect_eq(t.next_seq, (uint64_t)N + BURST + 1, "the last is seq N+BURST");
	for (int i = K; i < N; i++)
		cr_expect(seen[i], "case py-%05d's event printed", i);
	for (int i = 0; i < BURST; i++)
		cr_expect(seen[BURST + i], "case live-%05d's event printed", i);
	/* The PUB queues about 1000 events plus 256 KiB per subscriber; with
	 * the SUB's queue and a default loopback receive buffer that is some
	 * 5000 events, far below BURST. The PUB drops the rest; the scheduler
	 * gets them by replay, when the next PUB event shows a gap or when the
	 * PUB stays quiet for 2 s (the burst's tail). */
	int by_replay, by_pub;
	sched_stats(err, &by_replay, &by_pub);
	cr_expect_gt(by_replay, N - K, "events the stall cost on the PUB came by replay: %s", err);
	cr_expect_gt(by_pub, 0, "and the PUB delivered what it queued: %s", err);
	free(err);

	sched_cleanup(&sc);
	fs_test_rm_rf(gen);
	free(gen);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}

/* Runs cmd (sh -c) to the end; its exit status. */
static int
sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *
file_text(const char *dir, const char *name)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	cr_assert_not_null(text);
	if (f != NULL) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

Test(interop_python, curve_exec_and_the_state_file_like_fieldsync_watch, .fini = kill_scheduler,
     .timeout = 120)
{
	require_python();
	char root[1024], cmd[8192], err[256];
	repo_root(root, sizeof(root));
	char *gen = generate_python(root);
	char *dir = fs_test_tmpdir();
	cr_assert_not_null(dir);

	/* A production daemon (CURVE, ZAP), a device and a scheduler enrolled. */
	char data[700], mk[700], tab[700], sched[700];
	snprintf(data, sizeof(data), "%s/daemon", dir);
	snprintf(mk, sizeof(mk), "%s/master.key", dir);
	snprintf(tab, sizeof(tab), "%s/tab1.json", dir);
	snprintf(sched, sizeof(sched), "%s/sched.json", dir);
	cr_assert(fsc_master_create_file(mk, "m1", err, sizeof(err)), "%s", err);
	snprintf(cmd, sizeof(cmd), "%s init --data-dir %s >%s/admin.log 2>&1", FS_DAEMON_BIN, data,
	         dir);
	cr_assert_eq(sh(cmd), 0);
	const char *who[][2] = {{"tab1", "device"}, {"sched1", "scheduler"}};
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd),
		         "%s enroll --data-dir %s --name %s --role %s --scopes team-a --endpoint "
		         "tcp://127.0.0.1:1 --out %s >>%s/admin.log 2>&1",
		         FS_DAEMON_BIN, data, who[i][0], who[i][1], i == 0 ? tab : sched, dir);
		cr_assert_eq(sh(cmd), 0, "enroll %s", who[i][0]);
	}
	const char *extra[] = {"--master-key-file", mk, NULL};
	fs_test_daemon *d = fs_test_daemon_start_production(data, extra);
	cr_assert_not_null(d);
	const char *ep = fs_test_daemon_endpoint(d), *rem = fs_test_daemon_reminder_endpoint(d);

	/* Three cases from the tablet, over CURVE: three quick-help events. A
	 * store that holds a credential is encrypted: its key for every call. */
	char store_key[800];
	snprintf(store_key, sizeof(store_key), "%s/store.key", dir);
	snprintf(cmd, sizeof(cmd), "%s -k %s keygen >>%s/cli.log 2>&1", FS_CLI_BIN, store_key, dir);
	cr_assert_eq(sh(cmd), 0);
	setenv("FIELDSYNC_STORE_KEY_FILE", store_key, 1);
	snprintf(cmd, sizeof(cmd), "%s -s %s/store init --credential %s >>%s/cli.log 2>&1", FS_CLI_BIN,
	         dir, tab, dir);
	cr_assert_eq(sh(cmd), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd),
		         "echo '{\"first_contact_at_ms\":%lld,\"contact_person\":\"staff-3\"}' | %s -s "
		         "%s/store put case c%d >>%s/cli.log 2>&1",
		         (long long)now_ms(), FS_CLI_BIN, dir, i, dir);
		cr_assert_eq(sh(cmd), 0);
	}
	snprintf(cmd, sizeof(cmd), "%s -s %s/store sync -e %s >>%s/cli.log 2>&1", FS_CLI_BIN, dir, ep,
	         dir);
	cr_assert_eq(sh(cmd), 0);

	/* --credential: CURVE; --exec once per event; the cursor in --state. */
	char base[2048];
	snprintf(base, sizeof(base),
	         PYTHON " %s/deploy/examples/scheduler.py --proto-out %s --endpoint %s --reminders %s",
	         root, gen, ep, rem);
	snprintf(cmd, sizeof(cmd),
	         "%s --credential %s --state %s/cursor --count 3 --exec 'echo "
	         "$FS_EVENT_SEQ:$FS_IDEMPOTENCY_KEY >>%s/done' 2>>%s/py.log",
	         base, sched, dir, dir, dir);
	cr_assert_eq(sh(cmd), 0, "exits 0 after --count");
	char *done = file_text(dir, "done"), *cur = file_text(dir, "cursor");
	cr_expect_str_eq(done, "1:quick-help/c0@1\n2:quick-help/c1@2\n3:quick-help/c2@3\n");
	cr_expect_str_eq(cur, "3\n", "the state file holds the cursor");
	free(done);
	free(cur);

	/* Without the credential the daemon refuses the plain connection: nothing. */
	snprintf(cmd, sizeof(cmd), "%s --json --idle-exit 2 >%s/plain.out 2>>%s/py.log", base, dir,
	         dir);
	cr_expect_eq(sh(cmd), 0);
	char *plain = file_text(dir, "plain.out");
	cr_expect_str_eq(plain, "", "no event without CURVE");
	free(plain);

	/* A corrupt state file: 78, left as it is; a cursor ahead: 79. */
	snprintf(cmd, sizeof(cmd), "printf 'x3\\n' >%s/cursor; %s --credential %s --state %s/cursor "
	         "--count 1 2>>%s/py.log", dir, base, sched, dir, dir);
	cr_expect_eq(sh(cmd), 78);
	cur = file_text(dir, "cursor");
	cr_expect_str_eq(cur, "x3\n");
	free(cur);
	snprintf(cmd, sizeof(cmd), "printf '50\\n' >%s/cursor; %s --credential %s --state %s/cursor "
	         "--count 1 2>>%s/py.log", dir, base, sched, dir, dir);
	cr_expect_eq(sh(cmd), 79);
	char *log = file_text(dir, "py.log");
	cr_expect_not_null(strstr(log, "is corrupt"), "%s", log);
	cr_expect_not_null(strstr(log, "ahead of the daemon's last event (seq 3)"), "%s", log);
	free(log);
	/* --on-restore=skip: resumes after the daemon's last; the state says so */
	snprintf(cmd, sizeof(cmd), "%s --credential %s --state %s/cursor --on-restore=skip "
	         "--idle-exit 2 2>>%s/py.log", base, sched, dir, dir);
	cr_expect_eq(sh(cmd), 0);
	cur = file_text(dir, "cursor");
	cr_expect_str_eq(cur, "3\n");
	free(cur);

	/* Ctrl-C: 130, like fieldsync watch. */
	struct sched sc;
	char opts[1024];
	snprintf(opts, sizeof(opts), "--credential %s --state %s/cursor", sched, dir);
	sched_start(&sc, root, gen, d, opts);
	usleep(1500000);
	cr_assert_eq(kill(sc.pid, SIGINT), 0);
	cr_expect_eq(sched_finish(&sc), 130);
	sched_cleanup(&sc);

	fs_test_rm_rf(dir);
	free(dir);
	fs_test_rm_rf(gen);
	free(gen);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
