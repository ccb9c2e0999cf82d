/*
 * libfieldsync against the real fieldsyncd on loopback: offline edits,
 * conflicts and their resolution, large outboxes, and syncs cut off by a
 * killed daemon or a killed client, each checked for lost or duplicated
 * edits from both the tablets' and the daemon's point of view.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/merge.h"

#define T_MS 20000

static fs_test_daemon *d;
static char *dirs[4];
static fs_store *tab[4];

static void
open_tablets(int n)
{
	for (int i = 0; i < n; i++) {
		dirs[i] = fs_test_tmpdir();
		cr_assert_not_null(dirs[i]);
		cr_assert_eq(fs_store_create(dirs[i], "team-a", &tab[i]), FS_OK);
	}
}

static void
start(const char *const *extra)
{
	d = extra ? fs_test_daemon_start_args(NULL, extra) : fs_test_daemon_start(NULL);
	cr_assert_not_null(d, "the daemon must start");
}

static void
teardown(void)
{
	for (int i = 0; i < 4; i++) {
		fs_store_close(&tab[i]);
		if (dirs[i] != NULL)
			fs_test_rm_rf(dirs[i]);
		free(dirs[i]);
		dirs[i] = NULL;
	}
	if (d != NULL)
		fs_test_daemon_stop(&d);
}

TestSuite(sdk_sync, .fini = teardown, .timeout = 120);

static fs_err
sync_t(fs_store *s, fs_sync_stats *st)
{
	fs_sync_opts o = {0};
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	return fs_sync(s, &o, st);
}

static size_t
siblings(fs_store *s, const char *coll, const char *id)
{
	fs_record *r = NULL;
	if (fs_get(s, coll, id, &r) != FS_OK)
		return 0;
	size_t n = fs_record_sibling_count(r);
	fs_record_free(&r);
	return n;
}

/* The single value of a record as a string ("" when absent or in conflict). */
static const char *
value(fs_store *s, const char *coll, const char *id)
{
	static char buf[256];
	fs_record *r = NULL;
	fs_sibling sb;
	buf[0] = '\0';
	if (fs_get(s, coll, id, &r) != FS_OK)
		return buf;
	if (fs_record_sibling_count(r) == 1) {
		fs_record_sibling(r, 0, &sb);
		snprintf(buf, sizeof(buf), "%.*s", (int)sb.len, (const char *)sb.payload);
	}
	fs_record_free(&r);
	return buf;
}

static uint64_t
pending(fs_store *s)
{
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	return st.pending;
}

/*
 * What the daemon holds, read over its own feed: number of records, and
 * whether each has exactly one sibling whose version is {replica: 1}.
 */
static size_t
daemon_records(const char *replica, size_t *single_v1)
{
	void *ctx = zmq_ctx_new(), *sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	uint64_t since = 0, rid = 7;
	size_t n = 0;
	*single_v1 = 0;
	for (;;) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = rid++;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		Fieldsync__V1__Envelope *r = fs_test_call(sock, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		Fieldsync__V1__PullReply *p = r->pull_reply;
		for (size_t i = 0; i < p->n_records; i++) {
			n++;
			Fieldsync__V1__RecordState *rs = p->records[i];
			if (rs->n_siblings == 1 && rs->siblings[0]->version->n_dots == 1 &&
			    strcmp(rs->siblings[0]->version->dots[0]->replica, replica) == 0 &&
			    rs->siblings[0]->version->dots[0]->counter == 1)
				(*single_v1)++;
		}
		bool more = p->more;
		since = p->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			break;
	}
	zmq_close(sock);
	zmq_ctx_term(ctx);
	return n;
}

static void
put_many(fs_store *s, int n)
{
	for (int i = 0; i < n; i++) {
		char id[16], v[32];
		snprintf(id, sizeof(id), "r%04d", i);
		snprintf(v, sizeof(v), "value %d", i);
		cr_assert_eq(fs_put(s, "notes", id, NULL, v, strlen(v)), FS_OK);
	}
}

/* Every tablet-side check that n offline edits arrived once, whole. */
static void
check_all_arrived(fs_store *from, fs_store *other, int n)
{
	size_t single;
	cr_expect_eq(pending(from), 0, "the outbox is empty");
	cr_expect_eq(daemon_records(fs_store_replica_id(from), &single), (size_t)n);
	cr_expect_eq(single, (size_t)n, "each record once, at version {replica:1}: no duplicate");
	fs_sync_stats st;
	cr_assert_eq(sync_t(other, &st), FS_OK);
	fs_list *l = NULL;
	cr_assert_eq(fs_list_collection(other, "notes", &l), FS_OK);
	cr_expect_eq(l->n, (size_t)n, "the other tablet sees every edit");
	fs_list_free(&l);
	for (int i = 0; i < n; i += 97) {
		char id[16], v[32];
		snprintf(id, sizeof(id), "r%04d", i);
		snprintf(v, sizeof(v), "value %d", i);
		cr_expect_str_eq(value(other, "notes", id), v);
	}
}

Test(sdk_sync, two_tablets_edit_offline_conflict_resolve_and_converge)
{
	start(NULL);
	open_tablets(2);
	const char *base = "{\"person\":\"YOUNG_PERSON\",\"track\":\"COUNSELLING\"}";
	uint8_t *p;
	size_t n;
	cr_assert_eq(fs_json_to_payload("case", base, strlen(base), &p, &n, NULL, 0), FS_OK);
	cr_assert_eq(fs_put(tab[0], "case", "c1", NULL, p, n), FS_OK);
	free(p);
	fs_sync_stats st;
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_assert_eq(siblings(tab[1], "case", "c1"), 1);

	/* both edit offline */
	const char *e1 = "{\"person\":\"YOUNG_PERSON\",\"track\":\"INDIVIDUAL\"}";
	const char *e2 = "{\"person\":\"YOUNG_PERSON\",\"track\":\"GROUP\"}";
	cr_assert_eq(fs_json_to_payload("case", e1, strlen(e1), &p, &n, NULL, 0), FS_OK);
	cr_assert_eq(fs_put(tab[0], "case", "c1", NULL, p, n), FS_OK);
	free(p);
	cr_assert_eq(fs_json_to_payload("case", e2, strlen(e2), &p, &n, NULL, 0), FS_OK);
	cr_assert_eq(fs_put(tab[1], "case", "c1", NULL, p, n), FS_OK);
	free(p);

	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_expect_eq(st.conflicts, 1, "the daemon answered CONFLICT");
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(siblings(tab[0], "case", "c1"), 2, "tablet 0 sees the conflict");
	cr_expect_eq(siblings(tab[1], "case", "c1"), 2, "tablet 1 sees the conflict");
	fs_list *l = NULL;
	cr_assert_eq(fs_list_conflicts(tab[1], &l), FS_OK);
	cr_expect_eq(l->n, 1);
	fs_list_free(&l);

	/* tablet 1 resolves; everyone converges */
	const char *m = "{\"person\":\"YOUNG_PERSON\",\"track\":\"INDIVIDUAL\",\"anonymous\":true}";
	cr_assert_eq(fs_json_to_payload("case", m, strlen(m), &p, &n, NULL, 0), FS_OK);
	cr_assert_eq(fs_resolve(tab[1], "case", "c1", p, n), FS_OK);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	for (int i = 0; i < 2; i++) {
		fs_record *r = NULL;
		fs_sibling sb;
		cr_assert_eq(fs_get(tab[i], "case", "c1", &r), FS_OK);
		cr_assert_eq(fs_record_sibling_count(r), 1, "tablet %d converged", i);
		fs_record_sibling(r, 0, &sb);
		cr_expect_eq(sb.len, n);
		cr_expect_eq(memcmp(sb.payload, p, n), 0);
		fs_record_free(&r);
		cr_expect_eq(pending(tab[i]), 0);
	}
	free(p);
}

Test(sdk_sync, a_thousand_offline_edits_sync_in_one_go)
{
	start(NULL);
	open_tablets(2);
	put_many(tab[0], 1000);
	cr_expect_eq(pending(tab[0]), 1000);
	fs_sync_stats st;
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(st.pushed, 1000);
	cr_expect_eq(st.failed, 0);
	check_all_arrived(tab[0], tab[1], 1000);
	fs_status ss;
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_expect_gt(ss.last_sync_ms, 0);
	cr_expect_eq(ss.last_error, FS_OK);
}

Test(sdk_sync, change_sets_follow_max_changes_per_push)
{
	const char *extra[] = {"--max-changes-per-push", "64", NULL};
	start(extra);
	open_tablets(2);
	put_many(tab[0], 300);
	fs_sync_stats st;
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(st.pushed, 300);
	cr_expect_eq(st.changesets, 5, "ceil(300 / 64) change sets");
	check_all_arrived(tab[0], tab[1], 300);
}

struct kill_arg {
	int calls;
};

static void
kill_daemon_midway(void *arg, const fs_progress *p)
{
	struct kill_arg *k = arg;
	if (p->phase == FS_SYNC_PUSH && p->done >= 100 && k->calls++ == 0)
		fs_test_daemon_kill9(d);
}

Test(sdk_sync, a_sync_cut_by_kill9_of_the_daemon_completes_next_time)
{
	const char *extra[] = {"--max-changes-per-push", "50", NULL};
	start(extra);
	open_tablets(2);
	put_many(tab[0], 400);
	struct kill_arg k = {0};
	fs_sync_opts o = {0};
	fs_sync_stats st;
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = 1500;
	o.progress = kill_daemon_midway;
	o.progress_arg = &k;
	fs_err e = fs_sync(tab[0], &o, &st);
	cr_assert_eq(k.calls > 0, true, "the daemon was killed during the push");
	cr_expect_eq(e, FS_ERR_TIMEOUT, "got %s", fs_strerror(e));
	cr_expect_lt(st.pushed, 400);
	cr_expect_gt(pending(tab[0]), 0, "what was not acknowledged stays in the outbox");
	fs_status ss;
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_expect_eq(ss.last_error, FS_ERR_TIMEOUT);

	cr_assert(fs_test_daemon_restart(d));
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	check_all_arrived(tab[0], tab[1], 400);
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_expect_eq(ss.last_error, FS_OK);
}

static int pipe_w = -1;

static void
stop_child_midway(void *arg, const fs_progress *p)
{
	(void)arg;
	if (p->phase == FS_SYNC_PUSH && p->done >= 100) {
		char c = 'x';
		if (write(pipe_w, &c, 1) != 1)
			_exit(3);
		for (;;)
			pause(); /* the parent kills us with SIGKILL here */
	}
}

/* Forks a client that syncs and is killed: at a fixed point when
 * `at_point`, else as soon as its outbox starts to shrink (a racing kill). */
static void
kill_client_midway(const char *dir, bool at_point, const char *endpoint)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fs_store *s = NULL;
		close(fds[0]);
		pipe_w = fds[1];
		if (fs_store_open(dir, &s) != FS_OK)
			_exit(2);
		fs_sync_opts o = {0};
		o.endpoint = endpoint;
		o.timeout_ms = T_MS;
		o.progress = at_point ? stop_child_midway : NULL;
		fs_sync(s, &o, NULL);
		_exit(0);
	}
	close(fds[1]);
	if (at_point) {
		char c;
		cr_assert_eq(read(fds[0], &c, 1), 1, "the child reached the kill point");
	} else {
		fs_store *s = NULL;
		cr_assert_eq(fs_store_open(dir, &s), FS_OK);
		for (int i = 0; i < 4000 && pending(s) == 400; i++)
			usleep(1000);
		fs_store_close(&s);
	}
	kill(pid, SIGKILL);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	close(fds[0]);
}

Test(sdk_sync, a_sync_cut_by_kill9_of_the_client_completes_next_time)
{
	const char *extra[] = {"--max-changes-per-push", "50", NULL};
	start(extra);
	open_tablets(2);
	put_many(tab[0], 400);
	char saved[64];
	snprintf(saved, sizeof(saved), "%s", fs_store_replica_id(tab[0]));
	fs_store_close(&tab[0]); /* the child opens the store itself */

	kill_client_midway(dirs[0], true, fs_test_daemon_endpoint(d));
	cr_assert_eq(fs_store_open(dirs[0], &tab[0]), FS_OK);
	uint64_t left = pending(tab[0]);
	cr_expect(left > 0 && left < 400, "killed midway: %llu left", (unsigned long long)left);
	fs_store_close(&tab[0]);

	/* and once more, killed at whatever point it has reached */
	kill_client_midway(dirs[0], false, fs_test_daemon_endpoint(d));

	cr_assert_eq(fs_store_open(dirs[0], &tab[0]), FS_OK);
	cr_expect_str_eq(fs_store_replica_id(tab[0]), saved);
	fs_sync_stats st;
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	check_all_arrived(tab[0], tab[1], 400);
}

Test(sdk_sync, a_pulled_conflict_on_a_locally_edited_record_keeps_all_three_versions)
{
	start(NULL);
	open_tablets(3);
	fs_sync_stats st;
	cr_assert_eq(fs_put(tab[0], "notes", "x", NULL, "base", 4), FS_OK);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sync_t(tab[i], &st), FS_OK);
	/* tablets 1 and 2 make a conflict at the daemon */
	cr_assert_eq(fs_put(tab[1], "notes", "x", NULL, "one", 3), FS_OK);
	cr_assert_eq(fs_put(tab[2], "notes", "x", NULL, "two", 3), FS_OK);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_assert_eq(sync_t(tab[2], &st), FS_OK);
	/* tablet 0 edited the record offline since its last sync */
	cr_assert_eq(fs_put(tab[0], "notes", "x", NULL, "zero", 4), FS_OK);
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	fs_record *r = NULL;
	cr_assert_eq(fs_get(tab[0], "notes", "x", &r), FS_OK);
	cr_assert_eq(fs_record_sibling_count(r), 3);
	int seen = 0;
	for (size_t i = 0; i < 3; i++) {
		fs_sibling sb;
		fs_record_sibling(r, i, &sb);
		seen |= (sb.len == 4 && !memcmp(sb.payload, "zero", 4)) ? 1 : 0;
		seen |= (sb.len == 3 && !memcmp(sb.payload, "one", 3)) ? 2 : 0;
		seen |= (sb.len == 3 && !memcmp(sb.payload, "two", 3)) ? 4 : 0;
	}
	cr_expect_eq(seen, 7, "all three versions are kept");
	fs_record_free(&r);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_expect_eq(siblings(tab[1], "notes", "x"), 3);

	cr_assert_eq(fs_resolve(tab[0], "notes", "x", "all", 3), FS_OK);
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	for (int i = 1; i < 3; i++)
		cr_assert_eq(sync_t(tab[i], &st), FS_OK);
	for (int i = 0; i < 3; i++)
		cr_expect_str_eq(value(tab[i], "notes", "x"), "all", "tablet %d converged", i);
}

struct writer_arg {
	fs_store *s;
	int n;
};

static void *
hot_writer(void *arg)
{
	struct writer_arg *w = arg;
	for (int i = 0; i < w->n; i++) {
		char v[16];
		snprintf(v, sizeof(v), "v%d", i);
		if (fs_put(w->s, "notes", "hot", NULL, v, strlen(v)) != FS_OK)
			return (void *)1;
		usleep(200);
	}
	return NULL;
}

Test(sdk_sync, local_edits_made_while_a_sync_runs_are_never_lost)
{
	const char *extra[] = {"--max-changes-per-push", "20", NULL};
	start(extra);
	open_tablets(2);
	put_many(tab[0], 1000);
	struct writer_arg w = {tab[0], 300};
	pthread_t th;
	fs_sync_stats st;
	cr_assert_eq(pthread_create(&th, NULL, hot_writer, &w), 0);
	cr_expect_eq(sync_t(tab[0], &st), FS_OK);
	void *res;
	pthread_join(th, &res);
	cr_assert_null(res, "every local write succeeded during the sync");
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(pending(tab[0]), 0);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_expect_str_eq(value(tab[1], "notes", "hot"), "v299", "the last local edit won");
	cr_expect_str_eq(value(tab[0], "notes", "hot"), "v299");
	cr_expect_str_eq(value(tab[1], "notes", "r0999"), "value 999");
}

Test(sdk_sync, a_change_the_daemon_rejects_is_parked_and_the_rest_applied)
{
	const char *extra[] = {"--max-payload-bytes", "64", NULL};
	start(extra);
	open_tablets(2);
	char big[200];
	memset(big, 'b', sizeof(big));
	cr_assert_eq(fs_put(tab[0], "notes", "a", NULL, "ok-a", 4), FS_OK);
	cr_assert_eq(fs_put(tab[0], "notes", "big", NULL, big, sizeof(big)), FS_OK);
	cr_assert_eq(fs_put(tab[0], "notes", "c", NULL, "ok-c", 4), FS_OK);
	fs_sync_stats st;
	cr_assert_eq(sync_t(tab[0], &st), FS_OK, "a refused change does not fail the sync");
	cr_expect_eq(st.failed, 1);
	cr_expect_eq(st.pushed, 2);
	fs_status ss;
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_expect_eq(ss.pending, 0);
	cr_expect_eq(ss.failed, 1);
	fs_list *l = NULL;
	cr_assert_eq(fs_list_failed(tab[0], &l), FS_OK);
	cr_assert_eq(l->n, 1);
	cr_expect_str_eq(l->items[0].id, "big");
	cr_expect(strncmp(l->items[0].reason, "TOO_LARGE:", 10) == 0, "reason: %s", l->items[0].reason);
	fs_list_free(&l);
	/* the local value is kept, and a second sync does not retry it */
	cr_expect_eq(siblings(tab[0], "notes", "big"), 1);
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(st.pushed + st.failed, 0);
	cr_assert_eq(sync_t(tab[1], &st), FS_OK);
	cr_expect_str_eq(value(tab[1], "notes", "a"), "ok-a");
	cr_expect_str_eq(value(tab[1], "notes", "c"), "ok-c");
	cr_expect_eq(siblings(tab[1], "notes", "big"), 0);
}
