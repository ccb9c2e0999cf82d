/*
 * Erasure is physical (issue 10, breaks 1 and 5), tried as someone holding
 * the disk would: after `fieldsyncd purge` (of a case, of one contact) every
 * byte of every file under the daemon's data directory (data store, key
 * store) is scanned for the purged data key's wrapped bytes (read out of
 * the key store before the purge) and for the canary plaintext; a data
 * backup taken before the purge is opened with the live key store and the
 * master key and does not open. The erasure's compaction is killed at each
 * of its steps (FIELDSYNC_TEST_CRASH_AT, keyring.c): after a restart the
 * live data is intact and the erased key is in no file. A purged case's
 * reminder events keep their seq but lose their case and staff data.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/casework.pb-c.h"

typedef Fieldsync__V1__Envelope env_t;
#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define CANARY_P "CANARY-ERASED-7f3a"
#define CANARY_Q "CANARY-LIVE-91c2"

static char g_dir[512], g_data[800], g_key[600];
static fs_test_daemon *d;
static void *ctx, *sock;

static void
start(void)
{
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_args(g_data, args);
	cr_assert_not_null(d);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
}

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
	ctx = zmq_ctx_new();
	start();
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

TestSuite(erasure, .init = setup, .fini = teardown, .timeout = 180);

static int64_t
days_ago(int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 - (int64_t)n * 86400000LL;
}

static const char *g_staff = "ss-0042";

/* A case with two contacts whose notes carry the canary. */
static void
push_case(const char *case_id, const char *c1, const char *c2, const char *canary, uint64_t rid)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t cb[256], t1[256], t2[256];
	char notes[128], csid[64];
	c.first_contact_at_ms = days_ago(2);
	c.contact_person = (char *)g_staff;
	size_t cl = fieldsync__v1__case__pack(&c, cb);
	Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
	t.case_id = (char *)case_id;
	t.held_at_ms = days_ago(1);
	t.who5 = -1;
	snprintf(notes, sizeof(notes), "%s first talk", canary);
	t.notes = notes;
	size_t l1 = fieldsync__v1__contact__pack(&t, t1);
	snprintf(notes, sizeof(notes), "%s second talk", canary);
	size_t l2 = fieldsync__v1__contact__pack(&t, t2);
	snprintf(csid, sizeof(csid), "cs-%s", case_id);
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "case", case_id, "team-a", "d:1", false, cb, cl);
	fs_test_push_add(p, "contact", c1, "team-a", "d:1", false, t1, l1);
	fs_test_push_add(p, "contact", c2, "team-a", "d:1", false, t2, l2);
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, rid), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	for (size_t i = 0; i < r->push_reply->n_results; i++)
		cr_assert_eq(r->push_reply->results[i]->status,
		             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	uint8_t *b = malloc(cap);
	for (;;) {
		if (n == cap)
			b = realloc(b, cap *= 2);
		size_t r = fread(b + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return b;
}

/* The wrapped bytes of DEK `name` as LMDB stores them (node header: u16 lo,
 * u16 hi, u16 flags, u16 key size; key; value): a copy, or NULL. */
static uint8_t *wrapped_key_in(const char *path, const char *name, const char *kid, size_t *wl);

static uint8_t *
wrapped_key(const char *name, size_t *wl)
{
	char path[1000];
	snprintf(path, sizeof(path), "%s/keys/data.mdb", g_data);
	return wrapped_key_in(path, name, "k1", wl);
}

static uint8_t *
wrapped_key_in(const char *path, const char *name, const char *kid, size_t *wl)
{
	size_t n = 0, nl = strlen(name), kl = strlen(kid);
	uint8_t *b = slurp(path, &n);
	cr_assert_not_null(b);
	for (size_t i = 8; i + nl + 4 < n; i++) {
		if (memcmp(b + i, name, nl) != 0)
			continue;
		const uint8_t *h = b + i - 8;
		size_t ks = (size_t)h[6] | (size_t)h[7] << 8;
		size_t ds = ((size_t)h[0] | (size_t)h[1] << 8) | ((size_t)h[2] | (size_t)h[3] << 8)
		                                                         << 16;
		const uint8_t *v = b + i + nl;
		if (ks != nl || ds < 40 || ds > 200 || i + nl + ds > n || v[0] != 1 || v[1] != kl ||
		    memcmp(v + 2, kid, kl) != 0)
			continue;
		uint8_t *w = malloc(ds);
		memcpy(w, v, ds);
		*wl = ds;
		free(b);
		return w;
	}
	free(b);
	return NULL;
}

/* Every regular file under dir that holds needle: its path in found. */
static bool
scan(const char *dir, const void *needle, size_t nl, char *found, size_t flen)
{
	DIR *dd = opendir(dir);
	struct dirent *e;
	bool hit = false;
	if (dd == NULL)
		return false;
	while (!hit && (e = readdir(dd)) != NULL) {
		char p[1200];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			hit = scan(p, needle, nl, found, flen);
		} else if (S_ISREG(st.st_mode)) {
			size_t n = 0;
			uint8_t *b = slurp(p, &n);
			if (b != NULL && memmem(b, n, needle, nl) != NULL) {
				snprintf(found, flen, "%s", p);
				hit = true;
			}
			free(b);
		}
	}
	closedir(dd);
	return hit;
}

static void
expect_nowhere(const char *dir, const void *needle, size_t nl, const char *what)
{
	char found[1200] = "";
	cr_expect_not(scan(dir, needle, nl, found, sizeof(found)), "%s is still in %s", what,
	              found);
}

static int
run_cmd(const char *env, const char *fmt, const char *arg)
{
	char what[600], cmd[2400];
	snprintf(what, sizeof(what), fmt, arg);
	snprintf(cmd, sizeof(cmd),
	         "%s %s purge --data-dir %s --master-key-file %s %s --actor dpo >/dev/null 2>&1",
	         env ? env : "", FS_DAEMON_BIN, g_data, g_key, what);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Pull everything: the payload of collection/id (a malloc'd copy, "" when
 * purged or absent); NULL when the feed does not open at all. */
static char *
pulled_payload(const char *collection, const char *id)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	pr.limit = 1000;
	e.request_id = 77;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *r = fs_test_call(sock, &e, 10000);
	if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY) {
		if (r != NULL)
			fieldsync__v1__envelope__free_unpacked(r, NULL);
		return NULL;
	}
	char *out = strdup("");
	for (size_t i = 0; i < r->pull_reply->n_records; i++) {
		Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
		if (strcmp(rs->collection, collection) != 0 || strcmp(rs->id, id) != 0 ||
		    rs->n_siblings == 0)
			continue;
		ProtobufCBinaryData *pl = &rs->siblings[0]->payload;
		free(out);
		out = calloc(1, pl->len + 1);
		memcpy(out, pl->data, pl->len);
	}
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	return out;
}

static bool
payload_has(const char *collection, const char *id, const char *canary)
{
	char *p = pulled_payload(collection, id);
	bool yes = p != NULL && strstr(p, canary) != NULL;
	free(p);
	return yes;
}

static void
expect_key_gone(const uint8_t *w, size_t wl, const char *name)
{
	/* the sealed DEK (after the 4-byte header "\1\2k1") */
	expect_nowhere(g_dir, w + 4, wl - 4, "the purged key's wrapped bytes");
	char keys[1000];
	snprintf(keys, sizeof(keys), "%s/keys", g_data);
	expect_nowhere(keys, name, strlen(name), "the purged key's name");
}

Test(erasure, a_purged_case_leaves_no_key_and_no_plaintext_in_any_file)
{
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	push_case("case-q", "talk-q1", "talk-q2", CANARY_Q, 2);
	/* quiet edits that do not reuse the freed pages are what kept it */
	size_t wl = 0;
	uint8_t *w = wrapped_key("c:case-p", &wl);
	cr_assert_not_null(w, "the case's data key is in the key store before the purge");

	char backup[700], cmd[2400];
	snprintf(backup, sizeof(backup), "%s/backup", g_dir);
	mkdir(backup, 0700);
	snprintf(cmd, sizeof(cmd), "%s backup --data-dir %s --out %s/data.mdb >/dev/null 2>&1",
	         FS_DAEMON_BIN, g_data, backup);
	cr_assert_eq(system(cmd), 0, "a data backup before the purge");

	cr_assert_eq(run_cmd(NULL, "%s", "--case case-p"), 0);
	cr_expect(payload_has("contact", "talk-q1", CANARY_Q), "the other case is intact");
	expect_key_gone(w, wl, "c:case-p");
	expect_nowhere(g_data, CANARY_P, strlen(CANARY_P), "the purged case's notes");
	expect_nowhere(g_data, CANARY_Q, strlen(CANARY_Q), "a live case's notes (in clear)");
	expect_nowhere(backup, CANARY_P, strlen(CANARY_P), "the purged case's notes (backup)");
	free(w);
	/* nor in a log line or a metric */
	char *log = fs_test_daemon_log(d), *metrics = NULL;
	cr_assert_not_null(log);
	cr_expect_null(strstr(log, "CANARY"), "a canary in the daemon's log");
	free(log);
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &metrics), 200);
	cr_expect_null(strstr(metrics, "CANARY"), "a canary in /metrics");
	cr_expect_null(strstr(metrics, "ss-0042"), "a staff id in /metrics");
	free(metrics);

	/* The backup taken before, with the live key store and the master key. */
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snprintf(cmd, sizeof(cmd), "cp -r %s/keys %s/", g_data, backup);
	cr_assert_eq(system(cmd), 0);
	zmq_close(sock);
	snprintf(g_data, sizeof(g_data), "%s", backup);
	start();
	char *p = pulled_payload("contact", "talk-p1");
	cr_expect(p == NULL || strstr(p, CANARY_P) == NULL,
	          "the pre-purge backup does not open for the purged case");
	free(p);
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
}

Test(erasure, a_purged_contact_rekeys_its_case_and_the_old_key_is_in_no_file)
{
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	size_t wl = 0;
	uint8_t *w = wrapped_key("c:case-p", &wl);
	cr_assert_not_null(w);
	cr_assert_eq(run_cmd(NULL, "%s", "--collection contact --id talk-p2"), 0);
	cr_expect(payload_has("contact", "talk-p1", CANARY_P), "the rest of the case is re-keyed");
	cr_expect(!payload_has("contact", "talk-p2", CANARY_P));
	/* the old case key (which talk-p2's old copies are sealed with) is gone */
	expect_nowhere(g_dir, w + 4, wl - 4, "the re-keyed case's old wrapped key");
	free(w);
	size_t nl = 0;
	uint8_t *now = wrapped_key("c:case-p", &nl);
	cr_expect_not_null(now, "the case has a fresh key");
	free(now);
}

/* kill -9 of the purge at each step of the erasure: the restart finishes it. */
static void
crash_at(const char *point)
{
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	push_case("case-q", "talk-q1", "talk-q2", CANARY_Q, 2);
	size_t wl = 0;
	uint8_t *w = wrapped_key("c:case-p", &wl);
	cr_assert_not_null(w);
	char env[200];
	snprintf(env, sizeof(env), "FIELDSYNC_TEST_CRASH_AT=%s", point);
	cr_assert_eq(run_cmd(env, "%s", "--case case-p"), 86, "the purge died at %s", point);
	/* restart: the daemon is killed too, and starts again */
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	expect_key_gone(w, wl, "c:case-p");
	/* the operator runs the purge again; the live case is intact */
	cr_assert_eq(run_cmd(NULL, "%s", "--case case-p"), 0);
	cr_expect(payload_has("contact", "talk-q1", CANARY_Q), "live data intact after %s", point);
	cr_expect(!payload_has("contact", "talk-p1", CANARY_P));
	expect_key_gone(w, wl, "c:case-p");
	/* and a new key can be made after the recovery */
	push_case("case-r", "talk-r1", "talk-r2", CANARY_Q, 3);
	cr_expect(payload_has("contact", "talk-r1", CANARY_Q));
	free(w);
}

Test(erasure, crash_after_the_key_is_deleted)
{
	crash_at("erase-deleted");
}
Test(erasure, crash_with_the_store_locked)
{
	crash_at("compact-locked");
}
Test(erasure, crash_after_the_copy)
{
	crash_at("compact-copied");
}
Test(erasure, crash_after_the_lock_file_is_dropped)
{
	crash_at("compact-lock-dropped");
}
Test(erasure, crash_after_the_rename)
{
	crash_at("compact-renamed");
}

static env_t *
replay(void)
{
	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = 91;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	rr.limit = 1000;
	env_t *r = fs_test_call(sock, &e, 10000);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY);
	return r;
}

Test(erasure, a_purged_cases_events_keep_their_seq_and_lose_case_and_staff_data)
{
	g_staff = "ss-erased-5d1";
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	g_staff = "ss-live-77b";
	push_case("case-q", "talk-q1", "talk-q2", CANARY_Q, 2);
	g_staff = "ss-0042";
	env_t *r = replay();
	size_t before = 0;
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		before += strcmp(r->replay_reply->events[i]->contact_person, "ss-erased-5d1") == 0;
	cr_assert_gt(before, 0, "the case has reminder events naming its contact person");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	cr_assert_eq(run_cmd(NULL, "%s", "--case case-p"), 0);
	r = replay();
	size_t n = r->replay_reply->n_events, live = 0;
	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		Fieldsync__V1__ReminderEvent *ev = r->replay_reply->events[i];
		cr_expect_eq(ev->seq, i + 1, "the seq stays gap-free");
		cr_expect_str_neq(ev->contact_person, "ss-erased-5d1",
		                  "event %llu still names the erased case's staff",
		                  (unsigned long long)ev->seq);
		if (strcmp(ev->case_id, "case-p") == 0)
			cr_expect_eq(ev->state, FIELDSYNC__V1__REMINDER_EVENT__STATE__CANCELLED,
			             "only the purge's cancellations name the case (seq %llu)",
			             (unsigned long long)ev->seq);
		live += strcmp(ev->contact_person, "ss-live-77b") == 0;
	}
	cr_expect_gt(live, 0, "the live case's events are untouched");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	/* and after a restart (they were rewritten on disk, not filtered) */
	zmq_close(sock);
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	r = replay();
	for (size_t i = 0; i < r->replay_reply->n_events; i++)
		cr_expect_str_neq(r->replay_reply->events[i]->contact_person, "ss-erased-5d1");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

Test(erasure, a_name_as_contact_person_is_refused)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t cb[256];
	c.first_contact_at_ms = days_ago(2);
	c.contact_person = "Jens Hansen";
	size_t cl = fieldsync__v1__case__pack(&c, cb);
	fs_test_push *p = fs_test_push_new("cs-name");
	fs_test_push_add(p, "case", "case-n", "team-a", "d:1", false, cb, cl);
	env_t *r = fs_test_call(sock, fs_test_push_envelope(p, 9), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	bool refused = false;
	if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_ERROR)
		refused = r->error->code == FIELDSYNC__V1__ERROR__CODE__INVALID;
	else if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY)
		refused = r->push_reply->results[0]->status ==
		                  FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED &&
		          strstr(r->push_reply->results[0]->reason, "contact_person") != NULL;
	cr_expect(refused, "a case naming its contact person by name is refused INVALID");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	/* nothing of it anywhere */
	expect_nowhere(g_data, "Jens Hansen", 11, "a refused staff name");
}

/* ---- the tablet ------------------------------------------------------------ */

static fs_store *
tablet(const char *name, bool encrypted)
{
	char dir[900];
	fs_store *t = NULL;
	fs_store_opts o;
	uint8_t key[32];
	memset(key, 0x5a, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.default_scope = "team-a";
	if (encrypted) {
		o.key = key;
		o.key_len = sizeof(key);
		o.key_id = "tab1";
	}
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, name);
	cr_assert_eq(fs_store_create_ex(dir, &o, &t), FS_OK);
	return t;
}

static fs_store *
tablet_open(const char *name)
{
	char dir[900];
	fs_store *t = NULL;
	fs_store_opts o;
	uint8_t key[32];
	memset(key, 0x5a, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = "tab1";
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, name);
	cr_assert_eq(fs_store_open_ex(dir, &o, &t), FS_OK);
	return t;
}

static void
tablet_sync(fs_store *t)
{
	fs_sync_opts o = {.endpoint = fs_test_daemon_endpoint(d), .timeout_ms = 20000};
	fs_sync_stats st;
	cr_assert_eq(fs_sync(t, &o, &st), FS_OK);
}

Test(erasure, a_tablet_purge_rekeys_and_leaves_no_trace_in_the_store_files)
{
	char enc[900], plain[900];
	snprintf(enc, sizeof(enc), "%s/tab-enc/data.mdb", g_dir);
	snprintf(plain, sizeof(plain), "%s/tab-plain", g_dir);
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	fs_store *te = tablet("tab-enc", true), *tp = tablet("tab-plain", false);
	tablet_sync(te);
	tablet_sync(tp);
	fs_record *rec = NULL;
	cr_assert_eq(fs_get(te, "contact", "talk-p2", &rec), FS_OK);
	fs_record_free(&rec);
	fs_store_close(&te);
	size_t wl = 0;
	uint8_t *w = wrapped_key_in(enc, "c:case-p", "tab1", &wl);
	cr_assert_not_null(w, "the tablet holds the case's key, wrapped by its store key");

	/* one contact goes: its case is re-keyed on the tablet too */
	cr_assert_eq(run_cmd(NULL, "%s", "--collection contact --id talk-p2"), 0);
	te = tablet_open("tab-enc");
	tablet_sync(te);
	tablet_sync(tp);
	cr_expect_eq(fs_get(te, "contact", "talk-p2", &rec), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_get(te, "contact", "talk-p1", &rec), FS_OK, "the rest of the case stays");
	fs_record_free(&rec);
	fs_store_close(&te);
	fs_store_close(&tp);
	expect_nowhere(g_dir, w + 4, wl - 4, "the tablet's old case key (wrapped)");
	free(w);
	const char *gone = CANARY_P " second talk";
	expect_nowhere(plain, gone, strlen(gone), "the purged contact's notes (plain tablet)");

	/* the whole case goes */
	te = tablet_open("tab-enc");
	w = wrapped_key_in(enc, "c:case-p", "tab1", &wl);
	cr_assert_not_null(w, "the fresh case key");
	cr_assert_eq(run_cmd(NULL, "%s", "--case case-p"), 0);
	tablet_sync(te);
	fs_store_close(&te);
	char tp_dir[900];
	snprintf(tp_dir, sizeof(tp_dir), "%s/tab-plain", g_dir);
	cr_assert_eq(fs_store_open(tp_dir, &tp), FS_OK);
	tablet_sync(tp);
	fs_store_close(&tp);
	expect_nowhere(g_dir, w + 4, wl - 4, "the purged case's tablet key (wrapped)");
	expect_nowhere(plain, CANARY_P, strlen(CANARY_P), "the purged case's notes (plain tablet)");
	free(w);
}

/* ---- plaintext carried over ------------------------------------------------ */

static int
admin(const char *verb, char *out, size_t outlen)
{
	char cmd[2400];
	snprintf(cmd, sizeof(cmd), "%s %s --data-dir %s --master-key-file %s 2>&1", FS_DAEMON_BIN,
	         verb, g_data, g_key);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(erasure, plaintext_written_before_encryption_is_reported_and_sealed)
{
	/* a store that ran without a master key first */
	zmq_close(sock);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	snprintf(g_data, sizeof(g_data), "%s/was-plain", g_dir);
	d = fs_test_daemon_start(g_data);
	cr_assert_not_null(d);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	zmq_close(sock);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	/* then encryption was turned on */
	start();
	push_case("case-q", "talk-q1", "talk-q2", CANARY_Q, 2);

	char out[16384];
	cr_expect_eq(admin("verify", out, sizeof(out)), 1, "verify must fail: %s", out);
	cr_expect_not_null(strstr(out, "record contact/talk-p1"), "%s", out);
	cr_expect_not_null(strstr(out, "stored in clear"), "%s", out);
	cr_expect_null(strstr(out, "talk-q1"), "sealed records are not reported: %s", out);

	/* seal, while the daemon runs */
	cr_expect_eq(admin("seal", out, sizeof(out)), 0, "%s", out);
	cr_expect_eq(admin("verify", out, sizeof(out)), 0, "after seal: %s", out);
	cr_expect(payload_has("contact", "talk-p1", CANARY_P), "still readable, now sealed");
	cr_expect(payload_has("contact", "talk-q1", CANARY_Q));
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
}

/* kill -9 of a tablet at each step of its erasure: the next open finishes it */
static void
tablet_crash_at(const char *point)
{
	char dir[900];
	snprintf(dir, sizeof(dir), "%s/tab-crash", g_dir);
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	push_case("case-q", "talk-q1", "talk-q2", CANARY_Q, 2);
	fs_store *t = tablet("tab-crash", false);
	tablet_sync(t);
	fs_store_close(&t);
	cr_assert_eq(run_cmd(NULL, "%s", "--collection contact --id talk-p2"), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) { /* the tablet app: syncs the purge, dies at the point */
		setenv("FIELDSYNC_TEST_CRASH_AT", point, 1);
		fs_store *c = NULL;
		fs_sync_opts o = {.endpoint = fs_test_daemon_endpoint(d), .timeout_ms = 20000};
		fs_sync_stats st;
		if (fs_store_open(dir, &c) != FS_OK || fs_sync(c, &o, &st) != FS_OK)
			_exit(1);
		fs_store_close(&c);
		_exit(0);
	}
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 86, "the tablet died at %s (%d)",
	          point, status);
	/* the app starts again: open (finishes a compaction), sync, close */
	cr_assert_eq(fs_store_open(dir, &t), FS_OK, "the store opens after a crash at %s", point);
	tablet_sync(t);
	fs_record *rec = NULL;
	cr_expect_eq(fs_get(t, "contact", "talk-q1", &rec), FS_OK, "live data after %s", point);
	fs_record_free(&rec);
	cr_expect_eq(fs_get(t, "contact", "talk-p1", &rec), FS_OK, "live data after %s", point);
	fs_record_free(&rec);
	cr_expect_eq(fs_get(t, "contact", "talk-p2", &rec), FS_ERR_NOT_FOUND);
	fs_store_close(&t);
	const char *gone = CANARY_P " second talk";
	expect_nowhere(dir, gone, strlen(gone), "the purged contact's notes (after a crash)");
}

Test(erasure, tablet_crash_after_the_marker)
{
	tablet_crash_at("sdk-erase-marked");
}
Test(erasure, tablet_crash_after_the_copy)
{
	tablet_crash_at("sdk-compact-copied");
}
Test(erasure, tablet_crash_after_the_rename)
{
	tablet_crash_at("sdk-compact-renamed");
}

/* kill -9 of a single contact's purge (a re-key) at each step */
static void
contact_crash_at(const char *point)
{
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	size_t wl = 0;
	uint8_t *w = wrapped_key("c:case-p", &wl);
	cr_assert_not_null(w);
	char env[200];
	snprintf(env, sizeof(env), "FIELDSYNC_TEST_CRASH_AT=%s", point);
	cr_assert_eq(run_cmd(env, "%s", "--collection contact --id talk-p2"), 86,
	             "the purge died at %s", point);
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	/* whatever the point, the case is readable: live data never lost */
	cr_expect(payload_has("contact", "talk-p1", CANARY_P), "the case opens after %s", point);
	/* the operator runs the purge again */
	cr_assert_eq(run_cmd(NULL, "%s", "--collection contact --id talk-p2"), 0);
	cr_expect(payload_has("contact", "talk-p1", CANARY_P), "the case opens after %s", point);
	cr_expect(!payload_has("contact", "talk-p2", CANARY_P));
	expect_nowhere(g_dir, w + 4, wl - 4, "the re-keyed case's old wrapped key");
	free(w);
}

Test(erasure, contact_crash_after_the_old_key_is_retired)
{
	contact_crash_at("rekey-retired");
}
Test(erasure, contact_crash_after_the_rekey_committed)
{
	contact_crash_at("rekey-committed");
}
Test(erasure, contact_crash_during_the_compaction)
{
	contact_crash_at("compact-copied");
}

Test(erasure, a_committed_rekey_is_finished_by_the_restart_alone)
{
	push_case("case-p", "talk-p1", "talk-p2", CANARY_P, 1);
	size_t wl = 0;
	uint8_t *w = wrapped_key("c:case-p", &wl);
	cr_assert_not_null(w);
	cr_assert_eq(run_cmd("FIELDSYNC_TEST_CRASH_AT=rekey-committed", "%s",
	                     "--collection contact --id talk-p2"),
	             86);
	fs_test_daemon_kill9(d);
	cr_assert(fs_test_daemon_restart(d));
	zmq_close(sock);
	sock = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	expect_nowhere(g_dir, w + 4, wl - 4, "the old case key after the restart");
	cr_expect(payload_has("contact", "talk-p1", CANARY_P));
	cr_expect(!payload_has("contact", "talk-p2", CANARY_P));
	free(w);
}
