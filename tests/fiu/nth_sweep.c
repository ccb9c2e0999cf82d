/*
 * nth_sweep: the "fail the Nth call" sweep of issue 12 (test tooling, the
 * separately invoked long mode; tests/fiu/nth_sweep.sh runs it per class).
 *
 * For one class of libfiu failure points (e.g. every posix/io point, or
 * malloc/calloc/realloc) it runs the real daemon under libfiu's POSIX
 * preload and nth_preload.so (nth_ctl.h). A first push with nothing failing
 * counts the calls of each point. Then, for each point a push calls, and
 * for N = 1, 2, ...: starts the daemon (nothing injected), checks the
 * store, arms the counter, sends ONE push, disarms; the Nth call of that
 * point made while armed failed (--all: the Nth call of the class). A
 * point's sweep ends at the first N that no call reached (the push made
 * fewer than N calls), or at --max / --budget (then it says "CAPPED").
 * Calls are counted in the whole process while armed: the push's path and
 * whatever else ran meanwhile (libzmq's I/O thread, the idle writer).
 *
 * Each run checks:
 *   - after the restart that begins the next run (a clean one: disarmed,
 *     nothing fails), every change set ever acknowledged is there, whole,
 *     and no change set is there in part;
 *   - the daemon did not die from a signal (an abort is printed with the
 *     frames the preload wrote, and counted apart when it is libzmq's own
 *     assertion: libzmq aborts on a failed malloc or a failed read of its
 *     own signalling socket, by design);
 *   - the push was answered with its PushReply or an Error BUSY,
 *     UNAVAILABLE or INTERNAL, or not at all; never another code;
 *   - without a restart, the same change set sent again (at most RETRIES
 *     times, as a tablet would) is acknowledged: the daemon recovers from
 *     the fault by itself; while it cannot, /readyz must say 503.
 * Exit status: 0 when no run lost or split a change set, answered another
 * code, failed to restart, stayed failing with /readyz 200, or died from a
 * signal that is not a libzmq assertion; 1 otherwise; 2 usage or set-up.
 *
 *   nth_sweep --preload PATH --class NAME --points "p1 p2 ..." [--max N]
 *             [--budget SECONDS] [--from N] [--all] [--verbose]
 * FS_TEST_DAEMON_BIN runs another daemon binary (the old release).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "nth_ctl.h"

typedef Fieldsync__V1__Envelope env_t;

#define PER_SET 3
#define SETS_MAX 20000
#define RETRIES 12
#define RETRY_MS 8000
#define POSIX_PRELOAD "/usr/lib/fiu/fiu_posix_preload.so"

static struct set {
	bool sent, acked;
} g_sets[SETS_MAX];
static size_t g_n_sets;
static fs_fiu_nth_ctl *g_ctl;
static char g_points[FS_FIU_NTH_POINTS_MAX][64];
static unsigned g_n_points;
static bool g_verbose;

/* what the sweep counts */
static struct {
	size_t runs, injected, acked, lost, partial, no_restart;
	size_t reply_ok, busy, unavailable, internal, other, silent;
	size_t retried, recovered, stuck_ready_503, stuck_ready_200, exited_nonzero;
	size_t abort_zmq, signal_other;
	size_t per_point_failed[FS_FIU_NTH_POINTS_MAX];
} g;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Sends change set k and waits up to timeout_ms for its answer, looking
 * every 100 ms whether the daemon died (then *st is its status). */
static env_t *
push_set(void *s, size_t k, uint64_t rid, int timeout_ms, fs_test_daemon *d, int *st)
{
	char csid[32], id[32], ver[48];
	snprintf(csid, sizeof(csid), "nth-%zu", k);
	fs_test_push *p = fs_test_push_new(csid);
	for (int j = 0; j < PER_SET; j++) {
		snprintf(id, sizeof(id), "n%zu-%d", k, j);
		snprintf(ver, sizeof(ver), "nth:%zu", k * PER_SET + (size_t)j + 1);
		fs_test_push_add(p, "note", id, "team-a", ver, false, "payload", 7);
	}
	env_t *r = NULL;
	bool sent = fs_test_send(s, fs_test_push_envelope(p, rid));
	fs_test_push_free(p);
	for (int64_t end = now_ms() + timeout_ms; sent && now_ms() < end;) {
		r = fs_test_recv(s, 100);
		if (r != NULL && r->request_id == rid)
			break;
		if (r != NULL) { /* an answer to an earlier try: not this one */
			fieldsync__v1__envelope__free_unpacked(r, NULL);
			r = NULL;
		}
		if ((*st = fs_test_daemon_wait(d, 0)) != -1)
			break;
	}
	return r;
}

/* A PushReply applying (or having applied: a retry) every change. */
static bool
is_ack(const env_t *r)
{
	if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY ||
	    r->push_reply->n_results != PER_SET)
		return false;
	for (size_t i = 0; i < r->push_reply->n_results; i++) {
		int st = r->push_reply->results[i]->status;
		if (st != FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED &&
		    st != FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE)
			return false;
	}
	return true;
}

static const char *
describe(const env_t *r)
{
	if (r == NULL)
		return "none";
	if (is_ack(r))
		return "ack";
	if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY)
		return "reply-not-applied";
	if (r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_ERROR)
		return "other-body";
	switch (r->error->code) {
	case FIELDSYNC__V1__ERROR__CODE__BUSY:
		return "BUSY";
	case FIELDSYNC__V1__ERROR__CODE__UNAVAILABLE:
		return "UNAVAILABLE";
	case FIELDSYNC__V1__ERROR__CODE__INTERNAL:
		return "INTERNAL";
	default:
		return "other-code";
	}
}

/* Pulls the whole feed: counts acknowledged sets missing and sets in part. */
static bool
verify(void *s, size_t *lost, size_t *partial)
{
	static unsigned char have[SETS_MAX];
	memset(have, 0, sizeof(have));
	uint64_t since = 0;
	for (;;) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = 1;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY) {
			fprintf(stderr, "nth: the pull after the restart failed (%s)\n",
			        describe(r));
			if (r != NULL)
				fieldsync__v1__envelope__free_unpacked(r, NULL);
			return false;
		}
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			size_t k;
			int j;
			if (sscanf(r->pull_reply->records[i]->id, "n%zu-%d", &k, &j) == 2 &&
			    k < SETS_MAX && j >= 0 && j < PER_SET)
				have[k]++;
		}
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			break;
	}
	*lost = *partial = 0;
	for (size_t k = 0; k < g_n_sets; k++) {
		if (g_sets[k].acked && have[k] != PER_SET)
			(*lost)++;
		if (have[k] != 0 && have[k] != PER_SET)
			(*partial)++;
	}
	return true;
}

static fs_test_daemon *
start_daemon(const char *data, const char *preload)
{
	char wrap[1200];
	if (preload != NULL) {
		snprintf(wrap, sizeof(wrap), "env LD_PRELOAD='%s %s'", POSIX_PRELOAD, preload);
		setenv("FS_TEST_DAEMON_WRAP", wrap, 1);
	}
	fs_test_daemon *d = fs_test_daemon_start(data);
	unsetenv("FS_TEST_DAEMON_WRAP");
	return d;
}

/* "func file:line" of a "fieldsyncd(+0x...)" frame line, with addr2line. */
static void
resolve(const char *frame, char *out, size_t len)
{
	const char *bin = getenv("FS_TEST_DAEMON_BIN");
	const char *plus = strstr(frame, "fieldsyncd(+0x");
	char off[64], cmd[1200];
	out[0] = '\0';
	if (plus == NULL || sscanf(plus, "fieldsyncd(+%63[0-9a-fx])", off) != 1)
		return;
	snprintf(cmd, sizeof(cmd), "addr2line -f -s -e '%s' %s | paste -sd' '",
	         bin && bin[0] ? bin : FS_DAEMON_BIN, off);
	FILE *f = popen(cmd, "r");
	if (f != NULL) {
		if (fgets(out, (int)len, f) == NULL)
			out[0] = '\0';
		pclose(f);
	}
	out[strcspn(out, "\n")] = '\0';
}

/* Where the failed call was: the first frame in the daemon after the
 * preload's "failed call at" (the library's name when none is). */
static void
failed_site(const char *log, char *out, size_t len)
{
	const char *p = log != NULL ? strstr(log, "nth_preload: failed call at") : NULL;
	snprintf(out, len, "?");
	const char *lib = NULL;
	for (int i = 0; p != NULL && i < 25; i++) {
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
		if (strncmp(p, "{", 1) == 0 || strncmp(p, "nth_preload", 11) == 0)
			break; /* the frames ended */
		if (strstr(p, "fieldsyncd(+0x") != NULL &&
		    strstr(p, "fieldsyncd(+0x") < strchr(p, '\n')) {
			char line[300];
			snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
			resolve(line, out, len);
			return;
		}
		if (lib == NULL && strstr(p, "libzmq") != NULL &&
		    strstr(p, "libzmq") < strchr(p, '\n'))
			lib = "libzmq";
	}
	if (lib != NULL)
		snprintf(out, len, "%s", lib);
}

/* The frames the preload wrote after marker, resolved with addr2line. */
static void
print_frames(const char *log, const char *marker)
{
	const char *p = log != NULL ? strstr(log, marker) : NULL;
	if (p == NULL)
		return;
	int shown = 0;
	for (const char *line = p; line != NULL && *line != '\0' && shown < 14;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[512];
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < 500 ? len : 500), line);
		char res[300];
		resolve(buf, res, sizeof(res));
		fprintf(stderr, "    %s  %s\n", buf, res);
		shown++;
		line = nl ? nl + 1 : NULL;
	}
}

enum run_end { RUN_OK, RUN_BAD, RUN_SETUP };

/* One run: a clean start and check, then one push with the Nth call failing. */
static enum run_end
run_one(const char *data, const char *preload, uint64_t n, bool *injected, uint64_t *calls)
{
	bool bad = false;
	int st = -1; /* the daemon's exit status once it exited */
	char line[1000];
	int pos = 0;
	*injected = false;
	fs_test_daemon *d = start_daemon(data, preload);
	if (d == NULL) {
		fprintf(stderr, "nth: N=%llu: no clean restart\n", (unsigned long long)n);
		g.no_restart++;
		return RUN_BAD;
	}
	if (atomic_load(&g_ctl->magic) != FS_FIU_NTH_MAGIC) {
		fprintf(stderr, "nth: the preload did not enable its points\n");
		fs_test_daemon_stop(&d);
		return RUN_SETUP;
	}
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	size_t lost = 0, partial = 0;
	if (!verify(s, &lost, &partial)) {
		g.no_restart++;
		bad = true;
		goto out;
	}
	g.lost += lost;
	g.partial += partial;
	if (lost || partial) {
		fprintf(stderr, "nth: before N=%llu: %zu acknowledged sets lost, %zu in part\n",
		        (unsigned long long)n, lost, partial);
		bad = true;
	}
	if (n == 0) /* the final check only */
		goto out;

	size_t k = g_n_sets++;
	g_sets[k].sent = true;
	atomic_store(&g_ctl->count, 0);
	atomic_store(&g_ctl->injected, 0);
	atomic_store(&g_ctl->failed_point, -1);
	for (unsigned i = 0; i < FS_FIU_NTH_POINTS_MAX; i++)
		atomic_store(&g_ctl->per_point[i], 0);
	atomic_store(&g_ctl->target, n);
	atomic_store(&g_ctl->armed, 1);
	env_t *r = push_set(s, k, 2, 1500, d, &st);
	atomic_store(&g_ctl->armed, 0);
	*injected = atomic_load(&g_ctl->injected) != 0;
	*calls = atomic_load(&g_ctl->count);
	int fp = atomic_load(&g_ctl->failed_point);
	g.runs++;
	const char *what = describe(r);
	pos += snprintf(line + pos, sizeof(line) - (size_t)pos, "N=%-5llu %-28s reply=%-11s",
	                (unsigned long long)n,
	                *injected ? (fp >= 0 ? g_points[fp] : "?") : "(no call reached)", what);
	if (*injected) {
		g.injected++;
		if (fp >= 0)
			g.per_point_failed[fp]++;
	}
	if (r == NULL)
		g.silent++;
	else if (is_ack(r))
		g.reply_ok++;
	else if (strcmp(what, "BUSY") == 0)
		g.busy++;
	else if (strcmp(what, "UNAVAILABLE") == 0)
		g.unavailable++;
	else if (strcmp(what, "INTERNAL") == 0)
		g.internal++;
	else {
		g.other++;
		bad = true;
	}
	bool acked = is_ack(r);
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);

	if (g_verbose)
		fprintf(stderr, "nth: N=%llu failed %s, first reply %s\n", (unsigned long long)n,
		        fp >= 0 ? g_points[fp] : "-", what);
	/* Not acknowledged: send it again as a tablet would, without a restart,
	 * for at most RETRY_MS. */
	int tries = 0;
	int64_t retry_end = now_ms() + RETRY_MS;
	while (!acked && st == -1 && tries < RETRIES && now_ms() < retry_end) {
		if (tries == 0)
			g.retried++;
		tries++;
		zmq_close(s); /* a new connection each time: the old one may be the broken part */
		s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
		r = push_set(s, k, 10 + (uint64_t)tries, 1500, d, &st);
		acked = is_ack(r);
		long wait = 250;
		if (r != NULL && r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR &&
		    r->error->retry_after_ms > 0)
			wait = r->error->retry_after_ms < 1000 ? (long)r->error->retry_after_ms
			                                       : 1000;
		if (r != NULL)
			fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!acked)
			sleep_ms(wait);
	}
	if (tries > 0 && acked) {
		g.recovered++;
		pos += snprintf(line + pos, sizeof(line) - (size_t)pos, " retry=ack(%d)", tries);
	} else if (tries > 0 && st == -1) {
		char *body = NULL;
		int code = fs_test_http_get(fs_test_daemon_ops_port(d), "/readyz", &body);
		if (body != NULL)
			body[strcspn(body, "\n")] = '\0';
		pos += snprintf(line + pos, sizeof(line) - (size_t)pos,
		                " retry=FAILING(%d) readyz=%d %s", tries, code, body ? body : "");
		free(body);
		/* the daemon must recover by itself (store.c); and while it
		 * cannot, /readyz must say so */
		bad = true;
		if (code == 200)
			g.stuck_ready_200++;
		else
			g.stuck_ready_503++;
	}
	g_sets[k].acked = acked;
	g.acked += acked;

out:
	zmq_close(s);
	zmq_ctx_term(ctx);
	if (st == -1)
		st = fs_test_daemon_wait(d, 0);
	if (st == -1 && fs_test_daemon_pid(d) > 0) { /* alive: the clean stop */
		kill(fs_test_daemon_pid(d), SIGTERM);
		st = fs_test_daemon_wait(d, 30000);
		if (st == -1) {
			pos += snprintf(line + pos, sizeof(line) - (size_t)pos, " stop=TIMEOUT");
			bad = true;
		}
	}
	char *log = NULL;
	if (*injected) {
		char site[300];
		log = fs_test_daemon_log(d);
		failed_site(log, site, sizeof(site));
		pos += snprintf(line + pos, sizeof(line) - (size_t)pos, " at %s", site);
		if (g_verbose)
			print_frames(log, "nth_preload: failed call at");
	}
	if (st >= 128) {
		if (log == NULL)
			log = fs_test_daemon_log(d);
		const char *frames = log != NULL ? strstr(log, "nth_preload: signal") : NULL;
		bool zmq =
			st == 128 + SIGABRT && frames != NULL && strstr(frames, "libzmq") != NULL;
		if (zmq)
			g.abort_zmq++;
		else {
			g.signal_other++;
			bad = true;
		}
		pos += snprintf(line + pos, sizeof(line) - (size_t)pos, " died=signal %d%s",
		                st - 128, zmq ? " (libzmq assertion)" : "");
	} else if (st > 0) {
		g.exited_nonzero++;
		pos += snprintf(line + pos, sizeof(line) - (size_t)pos, " exit=%d", st);
	}
	if (n > 0)
		fprintf(stderr, "nth: %s\n", line);
	if ((bad || (g_verbose && st >= 128)) && log == NULL)
		log = fs_test_daemon_log(d);
	if (st >= 128 && log != NULL) {
		const char *a = strstr(log, "nth_preload: signal");
		/* the line before the frames: libzmq's own message, when it wrote one */
		if (a != NULL && a > log && a[-1] == '\n') {
			const char *end = a - 1, *start = end;
			while (start > log && start[-1] != '\n')
				start--;
			fprintf(stderr, "    %.*s\n", (int)(end - start), start);
		}
		if (bad || g_verbose)
			print_frames(log, "nth_preload: signal");
	}
	if (bad && log != NULL && st < 128) {
		size_t len = strlen(log);
		fprintf(stderr, "    log tail: %s\n", log + (len > 1500 ? len - 1500 : 0));
	}
	free(log);
	fs_test_daemon_stop(&d);
	return bad ? RUN_BAD : RUN_OK;
}

int
main(int argc, char **argv)
{
	const char *preload = NULL, *cls = "points", *points = NULL;
	uint64_t max = 100000, from = 1;
	double budget = 360;
	bool all_together = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc)
			preload = argv[++i];
		else if (strcmp(argv[i], "--class") == 0 && i + 1 < argc)
			cls = argv[++i];
		else if (strcmp(argv[i], "--points") == 0 && i + 1 < argc)
			points = argv[++i];
		else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
			max = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			from = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
			budget = atof(argv[++i]);
		else if (strcmp(argv[i], "--verbose") == 0)
			g_verbose = true;
		else if (strcmp(argv[i], "--all") == 0)
			all_together = true;
		else {
			fprintf(stderr,
			        "usage: nth_sweep --preload PATH --class NAME --points "
			        "\"p1 p2\" [--max N] [--from N] [--budget S] [--all] [--verbose]\n");
			return 2;
		}
	}
	if (preload == NULL || points == NULL || access(preload, R_OK) != 0 ||
	    access(POSIX_PRELOAD, R_OK) != 0) {
		fprintf(stderr, "nth: needs --preload, --points and %s (fiu-utils)\n",
		        POSIX_PRELOAD);
		return 2;
	}
	char pts[FS_FIU_NTH_POINTS_MAX * 64];
	snprintf(pts, sizeof(pts), "%s", points);
	for (char *save = NULL, *p = strtok_r(pts, " ", &save);
	     p != NULL && g_n_points < FS_FIU_NTH_POINTS_MAX; p = strtok_r(NULL, " ", &save))
		snprintf(g_points[g_n_points++], sizeof(g_points[0]), "%s", p);

	char *dir = fs_test_tmpdir(), data[600], ctlpath[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(ctlpath, sizeof(ctlpath), "%s/ctl", dir);
	int fd = open(ctlpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, sizeof(fs_fiu_nth_ctl)) != 0)
		return 2;
	g_ctl = mmap(NULL, sizeof(fs_fiu_nth_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (g_ctl == MAP_FAILED)
		return 2;
	setenv("FS_FIU_NTH_CTL", ctlpath, 1);
	setenv("FS_FIU_NTH_POINTS", points, 1);

	int64_t t0 = now_ms();
	/* calibration: one push with nothing failing, to count its calls */
	bool inj = false;
	uint64_t calls = 0, cal_calls = 0, cal_per[FS_FIU_NTH_POINTS_MAX] = {0};
	atomic_store(&g_ctl->only_point, -1);
	if (run_one(data, preload, UINT64_MAX, &inj, &cal_calls) == RUN_SETUP)
		return 2;
	for (unsigned i = 0; i < g_n_points; i++)
		cal_per[i] = atomic_load(&g_ctl->per_point[i]);
	size_t bad_runs = 0;
	/* per point (the default): N counts that point's calls alone, so each of
	 * its calls is failed whatever the others did; --all counts them together */
	uint64_t swept_to[FS_FIU_NTH_POINTS_MAX] = {0};
	const char *end_of[FS_FIU_NTH_POINTS_MAX] = {0};
	unsigned n_walks = all_together ? 1 : g_n_points;
	for (unsigned w = 0; w < n_walks; w++) {
		if (!all_together && cal_per[w] == 0) /* not on a push's path */
			continue;
		atomic_store(&g_ctl->only_point, all_together ? -1 : (int32_t)w);
		end_of[w] = "not reached";
		for (uint64_t n = from;; n++) {
			if (n > max) {
				end_of[w] = "CAPPED by --max";
				break;
			}
			if ((double)(now_ms() - t0) / 1000.0 >= budget) {
				end_of[w] = "CAPPED by the time budget";
				break;
			}
			enum run_end e = run_one(data, preload, n, &inj, &calls);
			if (e == RUN_SETUP)
				return 2;
			bad_runs += e == RUN_BAD;
			if (!inj) { /* the push made fewer than n calls: each was failed once */
				end_of[w] = "complete";
				break;
			}
			swept_to[w] = n;
		}
	}
	/* the last restart: a plain daemon, no preload at all */
	bad_runs += run_one(data, NULL, 0, &inj, &calls) == RUN_BAD;
	double secs = (double)(now_ms() - t0) / 1000.0;

	printf("nth sweep %s: %u points enabled; one push makes %llu calls of them (", cls,
	       g_n_points, (unsigned long long)cal_calls);
	bool first = true;
	for (unsigned i = 0; i < g_n_points; i++)
		if (cal_per[i] > 0) {
			printf("%s%s %llu", first ? "" : ", ", g_points[i],
			       (unsigned long long)cal_per[i]);
			first = false;
		}
	printf(")\n");
	for (unsigned w = 0; w < n_walks; w++)
		if (end_of[w] != NULL)
			printf("  %-28s N %llu..%llu %s\n",
			       all_together ? "(all together)" : g_points[w],
			       (unsigned long long)from, (unsigned long long)swept_to[w],
			       end_of[w]);
	printf("  runs %zu (the first counts the calls), failures injected %zu, change sets "
	       "acknowledged %zu, lost %zu, in part %zu, no clean restart %zu\n",
	       g.runs, g.injected, g.acked, g.lost, g.partial, g.no_restart);
	printf("  first reply: ack %zu, BUSY %zu, UNAVAILABLE %zu, INTERNAL %zu, other %zu, "
	       "none %zu\n",
	       g.reply_ok, g.busy, g.unavailable, g.internal, g.other, g.silent);
	printf("  sent again without a restart: %zu, then acknowledged %zu; still failing "
	       "with /readyz 503 %zu, with /readyz 200 %zu\n",
	       g.retried, g.recovered, g.stuck_ready_503, g.stuck_ready_200);
	printf("  died from a signal: libzmq assertion %zu, other %zu; exited non-zero %zu\n",
	       g.abort_zmq, g.signal_other, g.exited_nonzero);
	printf("  failed calls by point:");
	for (unsigned i = 0; i < g_n_points; i++)
		if (g.per_point_failed[i] > 0)
			printf(" %s %zu", g_points[i], g.per_point_failed[i]);
	printf("\n  %.0f s, %zu runs with a finding\n", secs, bad_runs);
	fs_test_rm_rf(dir);
	free(dir);
	return bad_runs == 0 ? 0 : 1;
}
