/*
 * cmd_watch.c: the watch command of the `fieldsync` CLI, the reference
 * scheduler: follows reminder events from the daemon, each once and in seq
 * order (the SDK's watcher fills gaps by replay), prints them or runs
 * --exec CMD for each, and keeps its cursor in a --state file. Needs no
 * store.
 *
 * Delivery: with --exec, CMD runs once per event, in seq order; the cursor
 * is saved (temp file, fsync, rename, fsync of the directory) only after
 * CMD exits 0, and a failing CMD is run again after a growing delay, never
 * skipped. A crash between CMD's success and the save runs CMD again for
 * that event after the restart: at least once, and the idempotency key
 * (reminder_id and seq, $FS_IDEMPOTENCY_KEY) lets CMD make it exactly once.
 *
 * Cursor safety: a state file that is not one seq number is refused
 * (EX_STATE), never read as 0; a cursor the daemon has not reached (a
 * restore) is reported (EX_RESTORED) unless --on-restore says what to do.
 *
 * Signals: SIGINT and SIGTERM end the process at once (130, 143) from the
 * handler, after passing the signal on to a running CMD: nothing is lost,
 * since the cursor on disk only ever names events fully handled.
 *
 * Contract: runs until --count events, a signal or an error; returns an
 * exit status (cli.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define RETRY_MAX_S 60.0

extern char **environ;

static volatile sig_atomic_t g_child; /* the running CMD, 0 when none */

/* --time-zone is set as TZ once, before the watcher's threads start (setenv
 * is not safe beside them); CMD gets the caller's own TZ back. */
static bool g_tz_set;
static char g_tz_orig[256]; /* "TZ=..." as it was; "" when unset */

static void
watch_on_signal(int sig)
{
	pid_t c = (pid_t)g_child;
	if (c > 0)
		kill(c, sig);
	_exit(128 + sig);
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	if (s == NULL || !(s[0] >= '0' && s[0] <= '9'))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* The cursor saved in a --state file: one number, optionally followed by a
 * newline. 0: read; 1: no file (start from 0); EX_STATE or EX_FAIL after a
 * message. */
static int
state_read(const char *path, uint64_t *seq)
{
	char buf[64];
	FILE *f = fopen(path, "r");
	if (f == NULL && errno == ENOENT)
		return 1;
	if (f == NULL) {
		fprintf(stderr, "fieldsync: watch: cannot read the state file %s: %s\n", path,
		        strerror(errno));
		return EX_FAIL;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	bool err = ferror(f) != 0;
	fclose(f);
	if (err) {
		fprintf(stderr, "fieldsync: watch: cannot read the state file %s\n", path);
		return EX_FAIL;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n == sizeof(buf) - 2 || strlen(buf) != n || !parse_u64(buf, seq)) {
		fprintf(stderr,
		        "fieldsync: watch: the state file %s is corrupt (it must hold one seq "
		        "number); it is never reset to 0: fix it, or give --since SEQ to choose "
		        "where to resume\n",
		        path);
		return EX_STATE;
	}
	return 0;
}

/* Writes the cursor atomically and durably: temp file, fsync, rename,
 * fsync of the directory. */
static bool
state_write(const char *path, uint64_t seq)
{
	char tmp[4200], dir[4200], text[32];
	int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", seq);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return false;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return false;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return true;
}

/* The event as one JSON object, ms kept (malloc'd text; NULL: out of memory). */
static char *
event_json(const fs_reminder *r)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cli_add_raw_int(o, "seq", (int64_t)r->seq);
	cJSON_AddStringToObject(o, "reminder_id", r->reminder_id);
	cJSON_AddStringToObject(o, "rule", r->rule);
	cJSON_AddStringToObject(o, "state", r->state);
	cJSON_AddStringToObject(o, "scope", r->scope);
	cJSON_AddStringToObject(o, "case_id", r->case_id);
	cJSON_AddStringToObject(o, "contact_person", r->contact_person);
	cli_add_raw_int(o, "due_at_ms", r->due_at_ms);
	cli_add_raw_int(o, "emitted_at_ms", r->emitted_at_ms);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int
print_reminder(const fs_reminder *r, bool json)
{
	if (json) {
		char *text = event_json(r);
		if (text == NULL)
			return EX_FAIL;
		puts(text);
		free(text);
	} else {
		char due[64];
		cli_local_time(r->due_at_ms, NULL, false, due, sizeof(due));
		printf("%" PRIu64 " %-9s %-18s %s scope=%s case=%s contact_person=%s due=%s\n",
		       r->seq, r->state, r->rule, r->reminder_id, r->scope, r->case_id,
		       r->contact_person[0] ? r->contact_person : "-", due);
	}
	return fflush(stdout) == 0 ? 0 : EX_FAIL;
}

/* Sleeps s seconds (a signal ends the process from its handler). */
static void
sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Runs `sh -c cmd` once for r: the event's JSON on stdin, FS_* in the
 * environment. Returns CMD's exit status (128 + signal when killed), or -1
 * when it could not be started. The environment is built before fork: the
 * watcher's sockets have threads, so the child only calls exec.
 */
static int
run_exec(const char *cmd, const fs_reminder *r, unsigned attempt)
{
	char *json = event_json(r);
	char due[64], vars[12][400];
	size_t n_env = 0;
	int fds[2] = {-1, -1}, rc = -1;

	if (json == NULL)
		return -1;
	cli_local_time(r->due_at_ms, NULL, false, due, sizeof(due));
	snprintf(vars[0], sizeof(vars[0]), "FS_EVENT_SEQ=%" PRIu64, r->seq);
	snprintf(vars[1], sizeof(vars[1]), "FS_REMINDER_ID=%s", r->reminder_id);
	snprintf(vars[2], sizeof(vars[2]), "FS_RULE=%s", r->rule);
	snprintf(vars[3], sizeof(vars[3]), "FS_STATE=%s", r->state);
	snprintf(vars[4], sizeof(vars[4]), "FS_SCOPE=%s", r->scope);
	snprintf(vars[5], sizeof(vars[5]), "FS_CASE_ID=%s", r->case_id);
	snprintf(vars[6], sizeof(vars[6]), "FS_CONTACT_PERSON=%s", r->contact_person);
	snprintf(vars[7], sizeof(vars[7]), "FS_DUE_AT_MS=%" PRId64, r->due_at_ms);
	snprintf(vars[8], sizeof(vars[8]), "FS_EMITTED_AT_MS=%" PRId64, r->emitted_at_ms);
	snprintf(vars[9], sizeof(vars[9]), "FS_DUE_AT=%s", due);
	snprintf(vars[10], sizeof(vars[10]), "FS_IDEMPOTENCY_KEY=%s@%" PRIu64, r->reminder_id,
	         r->seq);
	snprintf(vars[11], sizeof(vars[11]), "FS_ATTEMPT=%u", attempt);

	for (char **e = environ; *e != NULL; e++)
		n_env++;
	char **envp = calloc(n_env + 14, sizeof(char *));
	if (envp == NULL)
		goto out;
	size_t k = 0;
	for (char **e = environ; *e != NULL; e++)
		if (strncmp(*e, "FS_", 3) != 0 && /* ours win over inherited ones */
		    !(g_tz_set && strncmp(*e, "TZ=", 3) == 0))
			envp[k++] = *e;
	if (g_tz_set && g_tz_orig[0] != '\0')
		envp[k++] = g_tz_orig;
	for (size_t i = 0; i < 12; i++)
		envp[k++] = vars[i];
	envp[k] = NULL;

	/* The JSON fits the pipe's buffer: written before the child runs. */
	if (pipe(fds) != 0)
		goto out;
	size_t len = strlen(json);
	json[len] = '\n';
	bool ok = write(fds[1], json, len + 1) == (ssize_t)(len + 1);
	close(fds[1]);
	fds[1] = -1;
	if (!ok)
		goto out;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		char *const argv[] = {"sh", "-c", (char *)cmd, NULL};
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	g_child = pid;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	g_child = 0;
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
out:
	if (fds[0] >= 0)
		close(fds[0]);
	free(envp);
	free(json);
	return rc;
}

/* Runs CMD for r until it exits 0; the delay doubles from `delay` to
 * RETRY_MAX_S. */
static void
exec_until_done(const char *cmd, const fs_reminder *r, double delay)
{
	for (unsigned attempt = 1;; attempt++) {
		int st = run_exec(cmd, r, attempt);
		if (st == 0)
			return;
		if (st < 0)
			fprintf(stderr,
			        "fieldsync: watch: could not start --exec for seq %" PRIu64
			        " (%s); retry %u in %.1f s\n",
			        r->seq, strerror(errno), attempt, delay);
		else
			fprintf(stderr,
			        "fieldsync: watch: --exec exited %d for seq %" PRIu64
			        " (%s); retry %u in %.1f s, it is never skipped\n",
			        st, r->seq, r->reminder_id, attempt, delay);
		sleep_s(delay);
		delay = delay * 2 > RETRY_MAX_S ? RETRY_MAX_S : delay * 2;
	}
}

/* The daemon holds no event at the cursor: report, or act on --on-restore.
 * 0 and *since set to resume from, or an exit status. */
static int
on_cursor_ahead(fs_watcher *w, const cli_opts *o, uint64_t cursor, uint64_t *since)
{
	uint64_t last = 0;
	fs_err e = fs_watcher_daemon_last_seq(w, 30000, &last);
	if (e != FS_OK)
		return cli_fail("watch: the daemon's last event", e);
	if (o->on_restore == NULL) {
		fprintf(stderr,
		        "fieldsync: watch: the cursor (seq %" PRIu64 "%s%s) is ahead of the "
		        "daemon's last event (seq %" PRIu64 "): the daemon was restored from a "
		        "backup, or is another daemon; nothing was delivered. Give "
		        "--on-restore=replay to deliver every stored event again (from seq 1), "
		        "or --on-restore=skip to deliver only new ones (after seq %" PRIu64 ")\n",
		        cursor, o->state ? ", from " : "", o->state ? o->state : "", last, last);
		return EX_RESTORED;
	}
	*since = strcmp(o->on_restore, "replay") == 0 ? 0 : last;
	fprintf(stderr,
	        "fieldsync: watch: the cursor (seq %" PRIu64 ") was ahead of the daemon's last "
	        "event (seq %" PRIu64 "): a restore; --on-restore=%s: resuming after seq %" PRIu64
	        "\n",
	        cursor, last, o->on_restore, *since);
	if (o->state != NULL && !state_write(o->state, *since)) {
		fprintf(stderr, "fieldsync: watch: cannot write the state file %s\n", o->state);
		return EX_FAIL;
	}
	return 0;
}

int
cmd_watch(const cli_opts *o)
{
	fs_watch_opts wo = {.sync_endpoint = o->endpoint,
	                    .reminder_endpoint = o->reminders,
	                    .rule = o->rule,
	                    .scope = o->scope};
	uint64_t max = 0, done = 0;
	double delay = 1.0;
	fs_watcher *w = NULL;
	fs_credential *cred = NULL;
	struct sigaction sa;
	int rc = 0;

	if (o->since != NULL && !parse_u64(o->since, &wo.since_seq))
		return cli_usage_error(
			"--since takes a seq, a whole number like 0 or 1234; not '%s'", o->since);
	if (o->count != NULL && (!parse_u64(o->count, &max) || max == 0))
		return cli_usage_error("--count takes a positive whole number; not '%s'", o->count);
	if (o->on_restore != NULL && strcmp(o->on_restore, "replay") != 0 &&
	    strcmp(o->on_restore, "skip") != 0)
		return cli_usage_error("--on-restore takes replay or skip; not '%s'",
		                       o->on_restore);
	if (o->retry_delay != NULL) {
		char *end = NULL;
		errno = 0;
		delay = strtod(o->retry_delay, &end);
		if (errno || end == o->retry_delay || *end != '\0' || !(delay > 0) || delay > 3600)
			return cli_usage_error("--retry-delay takes seconds (more than 0, at most "
			                       "3600), e.g. 0.5; not '%s'",
			                       o->retry_delay);
		if (o->exec == NULL)
			return cli_usage_error("--retry-delay goes with --exec CMD");
	}
	if (o->exec != NULL && o->exec[0] == '\0')
		return cli_usage_error("--exec takes a shell command, e.g. --exec='notify.sh'");
	if (o->credential != NULL) {
		if ((rc = cli_load_credential(o->credential, "watch", "", &cred)) != 0)
			return rc;
		if (wo.sync_endpoint == NULL)
			wo.sync_endpoint = cred->endpoint;
		wo.curve_server_key = cred->server_public_key;
		wo.curve_public_key = cred->client_public_key;
		wo.curve_secret_key = cred->client_secret_key;
	}
	if (wo.sync_endpoint == NULL || o->reminders == NULL) {
		fs_credential_free(&cred);
		return cli_usage_error(
			wo.sync_endpoint == NULL
				? "watch needs the sync endpoint: --endpoint SYNC_EP, "
				  "$FIELDSYNC_ENDPOINT or --credential FILE"
				: "watch needs the reminder PUB endpoint: --reminders "
				  "PUB_EP or $FIELDSYNC_REMINDERS");
	}
	if (o->since == NULL && o->state != NULL) {
		int sr =
			state_read(o->state, &wo.since_seq); /* resume where the last run stopped */
		if (sr > 1) {
			fs_credential_free(&cred);
			return sr;
		}
	}

	if (o->time_zone != NULL) {
		const char *old = getenv("TZ");
		snprintf(g_tz_orig, sizeof(g_tz_orig), "%s%s", old ? "TZ=" : "", old ? old : "");
		setenv("TZ", o->time_zone, 1);
		tzset();
		g_tz_set = true;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		fs_err e = fs_watcher_open(&wo, &w);
		if (e != FS_OK) {
			rc = cli_fail("watch", e);
			break;
		}
		while (max == 0 || done < max) {
			const fs_reminder *r = NULL;
			uint64_t before = fs_watcher_cursor(w);
			e = fs_watcher_next(w, 1000, &r);
			if (e == FS_ERR_TIMEOUT)
				continue;
			if (e == FS_ERR_TRIMMED) {
				/* said once, loudly; the watcher goes on after the gap */
				fprintf(stderr,
				        "fieldsync: watch: events %llu..%llu are no longer kept by "
				        "the daemon (event retention) and were not delivered; "
				        "resynchronise what depends on them\n",
				        (unsigned long long)before + 1,
				        (unsigned long long)fs_watcher_cursor(w));
				if (o->state != NULL &&
				    !state_write(o->state, fs_watcher_cursor(w))) {
					fprintf(stderr,
					        "fieldsync: watch: cannot write the state file %s: %s\n",
					        o->state, strerror(errno));
					rc = EX_FAIL;
					break;
				}
				continue;
			}
			if (e != FS_OK)
				break;
			if (o->exec != NULL)
				exec_until_done(o->exec, r, delay);
			else if ((rc = print_reminder(r, o->json)) != 0)
				break;
			done++;
			if (o->state != NULL && !state_write(o->state, fs_watcher_cursor(w))) {
				fprintf(stderr,
				        "fieldsync: watch: cannot write the state file %s: %s\n",
				        o->state, strerror(errno));
				rc = EX_FAIL;
				break;
			}
		}
		if (rc == 0 && e == FS_ERR_NOT_FOUND) { /* a restore; may recur */
			uint64_t cursor = fs_watcher_cursor(w);
			rc = on_cursor_ahead(w, o, cursor, &wo.since_seq);
			fs_watcher_close(&w);
			if (rc == 0)
				continue;
			break;
		}
		if (rc == 0 && e != FS_OK) {
			if (e == FS_ERR_REFUSED)
				fprintf(stderr,
				        "fieldsync: watch: the daemon refused this scheduler's "
				        "key (revoked or never enrolled)\n");
			rc = cli_fail("watch", e);
		}
		break;
	}
	fs_watcher_close(&w);
	fs_credential_free(&cred); /* the watcher kept its own copy of the keys */
	return rc;
}
