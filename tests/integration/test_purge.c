/*
 * Erasure through the real daemon and a real tablet (libfieldsync):
 * `fieldsyncd purge` while the daemon runs removes a case and its contacts
 * from the daemon and from a synced tablet, cancels its reminders, refuses
 * an old offline edit, leaves an audit entry, and makes a backup taken
 * before unreadable for that case; a single contact's purge keeps the rest
 * of its case readable.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;
#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

static char g_dir[512], g_data[600], g_key[600];
static fs_test_daemon *d;
static void *ctx, *sock;

static void
setup(void)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
	snprintf(g_key, sizeof(g_key), "%s/master.key", g_dir);
	int fd = open(g_key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, KEY_LINE, strlen(KEY_LINE)), (ssize_t)strlen(KEY_LINE));
	close(fd);
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_args(g_data, args);
	cr_assert_not_null(d);
	ctx = zmq_ctx_new();
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
}

static void
teardown(void)
{
	zmq_close(sock);
	zmq_ctx_term(ctx);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(g_dir);
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 90);

static int64_t
days_ago(int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 - (int64_t)n * 86400000LL;
}

static size_t
contact(uint8_t *buf, const char *case_id, const char *notes)
{
	Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
	t.case_id = (char *)case_id;
	t.held_at_ms = 1774447200000LL;
	t.notes = (char *)notes;
	t.who5 = -1;
	return fieldsync__v1__contact__pack(&t, buf);
}

static void
push_case(void)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t cb[128], t1[256], t2[256];
	c.first_contact_at_ms = days_ago(2);
	size_t cl = fieldsync__v1__case__pack(&c, cb);
	size_t l1 = contact(t1, "case-p", "first talk, private");
	size_t l2 = contact(t2, "case-p", "second talk, private");
	fs_test_push *p = fs_test_push_new("cs-case-p");
	fs_test_push_add(p, "case", "case-p", "team-a", "d:1", false, cb, cl);
	fs_test_push_add(p, "contact", "talk-1", "team-a", "d:1", false, t1, l1);
	fs_test_push_add(p, "contact", "talk-2", "team-a", "d:1", false, t2, l2);
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, 1), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

/* The daemon's view of one record: 0 absent, 1 live, 2 purge marker. */
static int
daemon_state(const char *collection, const char *id)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.limit = 1000;
	e.request_id = 50;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY, "the feed is readable");
	int st = 0;
	for (size_t i = 0; i < r->pull_reply->n_records; i++) {
		Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
		if (strcmp(rs->collection, collection) == 0 && strcmp(rs->id, id) == 0)
			st = rs->purged ? (rs->n_siblings == 0 ? 2 : -1) : 1;
	}
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return st;
}

static int
run_purge(const char *what)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "%s purge --data-dir %s --master-key-file %s %s --actor dpo >/dev/null", FS_DAEMON_BIN,
	         g_data, g_key, what);
	return system(cmd);
}

Test(purge, a_case_is_erased_everywhere)
{
	push_case();
	/* A tablet syncs the case. */
	char tablet[700];
	snprintf(tablet, sizeof(tablet), "%s/tablet", g_dir);
	fs_store *tab = NULL;
	cr_assert_eq(fs_store_create(tablet, "team-a", &tab), FS_OK);
	fs_sync_opts o = {.endpoint = fs_test_daemon_endpoint(d), .timeout_ms = 20000};
	fs_sync_stats st;
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	fs_record *rec = NULL;
	cr_assert_eq(fs_get(tab, "contact", "talk-1", &rec), FS_OK);
	fs_record_free(&rec);

	/* An old backup of the data, taken before the purge. */
	char backup[700], cmd[2048];
	snprintf(backup, sizeof(backup), "%s/backup", g_dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/data.mdb %s/", backup, g_data, backup);
	cr_assert_eq(system(cmd), 0);

	cr_assert_eq(run_purge("--case case-p"), 0, "purge runs while the daemon runs");
	cr_expect_eq(daemon_state("case", "case-p"), 2);
	cr_expect_eq(daemon_state("contact", "talk-1"), 2);
	cr_expect_eq(daemon_state("contact", "talk-2"), 2);

	/* The tablet deletes it physically at its next sync. */
	cr_assert_eq(fs_sync(tab, &o, &st), FS_OK);
	cr_expect_eq(fs_get(tab, "contact", "talk-1", &rec), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_get(tab, "case", "case-p", &rec), FS_ERR_NOT_FOUND);
	fs_store_close(&tab);

	/* An old offline edit is refused, never resurrected. */
	uint8_t t1[256];
	size_t l1 = contact(t1, "case-p", "an edit made offline last week");
	fs_test_push *p = fs_test_push_new("cs-late");
	fs_test_push_add(p, "contact", "talk-1", "team-a", "d:1,z:1", false, t1, l1);
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, 2), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	cr_expect_eq(r->push_reply->results[0]->status, FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_not_null(strstr(r->push_reply->results[0]->reason, "purged"));
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect_eq(daemon_state("contact", "talk-1"), 2);

	/* Its reminders were cancelled (quick-help was active). */
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 3;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r);
	bool cancelled = false;
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		cancelled |= r->replay_reply->events[i]->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED &&
		             strcmp(r->replay_reply->events[i]->case_id, "case-p") == 0;
	cr_expect(cancelled, "the case's reminders are cancelled");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* The audit log says who purged what. */
	snprintf(cmd, sizeof(cmd), "%s audit --data-dir %s", FS_DAEMON_BIN, g_data);
	FILE *pp = popen(cmd, "r");
	char out[8192];
	size_t n = fread(out, 1, sizeof(out) - 1, pp);
	out[n] = '\0';
	pclose(pp);
	cr_expect_not_null(strstr(out, "purge"), "%s", out);
	cr_expect_not_null(strstr(out, "case-p"), "%s", out);
	cr_expect_not_null(strstr(out, "dpo"), "%s", out);

	/* The old backup, with today's keys, cannot be read for the case. */
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snprintf(cmd, sizeof(cmd), "cp -r %s/keys %s/", g_data, backup);
	cr_assert_eq(system(cmd), 0);
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_args(backup, args);
	cr_assert_not_null(d);
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	e.request_id = 4;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r);
	/* The page is served; the case and its contacts are skipped as
	 * unreadable (issue 11, break 5), never served. */
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	for (size_t i = 0; i < r->pull_reply->n_records; i++)
		cr_expect(strcmp(r->pull_reply->records[i]->id, "case-p") != 0 &&
		                  strncmp(r->pull_reply->records[i]->id, "talk-", 5) != 0,
		          "the backup's copy of %s does not decrypt any more",
		          r->pull_reply->records[i]->id);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

Test(purge, one_contact_goes_and_the_rest_of_its_case_stays_readable)
{
	push_case();
	cr_assert_eq(run_purge("--collection contact --id talk-2"), 0);
	cr_expect_eq(daemon_state("contact", "talk-2"), 2);
	cr_expect_eq(daemon_state("contact", "talk-1"), 1, "re-sealed under a fresh case key");
	cr_expect_eq(daemon_state("case", "case-p"), 1);
	/* And after a restart too (the fresh key is durable). */
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_args(g_data, args);
	cr_assert_not_null(d);
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	cr_expect_eq(daemon_state("contact", "talk-1"), 1);
	cr_expect_eq(daemon_state("contact", "talk-2"), 2);
	/* An opaque record has a key of its own. */
	fs_test_push *p = fs_test_push_new("cs-note");
	fs_test_push_add(p, "note", "memo", "team-a", "d:1", false, "private memo", 12);
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, 5), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_assert_eq(run_purge("--collection note --id memo"), 0);
	cr_expect_eq(daemon_state("note", "memo"), 2);
	cr_expect_eq(daemon_state("contact", "talk-1"), 1);
}
