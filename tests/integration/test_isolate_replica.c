/*
 * Issue 11, break 1 and "History belongs to its replica" (PROTOCOL.md §3),
 * through the real daemon, real tablets (libfieldsync stores) and real
 * sockets:
 *   - an enrolled team member (CURVE) pushes a value carrying the victim's
 *     replica dot at 1000: refused, and the victim's real offline edit is
 *     still APPLIED (on the old daemon it was OBSOLETE, silently dropped);
 *   - a dot at UINT64_MAX (or above 2^53) is refused, so the victim's next
 *     put and sync work (on the old daemon the put failed "out of memory");
 *   - after a restore, a value that names history the daemon lost is
 *     answered DEFERRED: the tablet keeps it queued (not parked), and it
 *     lands after the owner of that history came back and a pull;
 *   - a store written by an older build (tests/fixtures/store-v1, prod):
 *     the bindings are derived on the first start, so the tablet that wrote
 *     a value may advance it, while another device may not advance its
 *     replica.
 * FS_TEST_DAEMON_BIN=<old fieldsyncd> runs the same against an old daemon.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "enroll.h"
#include "fieldsync/fieldsync.h"
#include "tablet.h"

typedef Fieldsync__V1__Envelope env_t;

#define KEY_LINE "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define FIXTURE FS_FIXTURES_DIR "/store-v1"
#define T_MS 20000

typedef fs_test_cred cred;

static char g_dir[512], g_data[600], g_key[600];
static fs_test_daemon *d;
static void *ctx;
static void *g_socks[8]; /* closed by teardown, also after a failed assertion */
static size_t g_n_socks;
static uint64_t g_rid = 1;

static void
setup(void)
{
	cr_assert_eq(fs_test_dirs(g_dir, sizeof(g_dir), g_data, sizeof(g_data), g_key,
	                          sizeof(g_key), NULL, NULL),
	             0);
	ctx = zmq_ctx_new();
}

static void
teardown(void)
{
	for (size_t i = 0; i < g_n_socks; i++)
		zmq_close(g_socks[i]);
	g_n_socks = 0;
	if (d != NULL)
		fs_test_daemon_stop(&d);
	zmq_ctx_term(ctx);
	fs_test_rm_rf(g_dir);
}

TestSuite(isolate_replica, .init = setup, .fini = teardown, .timeout = 180);

/* ---- production daemon, enrolled devices -------------------------------- */

static void
init_production(void)
{
	cr_assert_eq(fs_test_write_file(g_key, KEY_LINE), 0);
	cr_assert_eq(fs_test_sh(NULL, "%s init --data-dir %s >/dev/null", fs_test_daemon_bin(),
	                        g_data),
	             0);
}

static void
start_production(void)
{
	const char *args[] = {"--master-key-file", g_key, NULL};
	d = fs_test_daemon_start_production(g_data, args);
	cr_assert_not_null(d, "the daemon starts in production mode");
}

/* Enrolls name; the credential file's path in path. */
static cred
enroll(const char *name, const char *scopes, char *path, size_t plen)
{
	cred c;
	cr_assert_eq(fs_test_enroll(fs_test_daemon_bin(), g_data, g_dir, name, scopes, "device",
	                            &c),
	             0, "enroll %s", name);
	snprintf(path, plen, "%s", c.file);
	fs_credential *fc = NULL;
	char why[512];
	cr_assert_eq(fs_credential_load(path, &fc, why, sizeof(why)), FS_OK, "%s", why);
	fs_credential_free(&fc);
	return c;
}

static void *
curve_dealer(const cred *c)
{
	void *s = fs_test_curve_dealer(ctx, fs_test_daemon_endpoint(d), c);
	cr_assert_not_null(s);
	cr_assert_lt(g_n_socks, 8);
	g_socks[g_n_socks++] = s;
	return s;
}

/* Closes every socket curve_dealer made. */
static void
close_socks(void)
{
	for (size_t i = 0; i < g_n_socks; i++)
		zmq_close(g_socks[i]);
	g_n_socks = 0;
}

/* An encrypted tablet store holding the credential at path (CURVE). */
static fs_store *
tablet(const char *name, const char *path)
{
	fs_store *s = NULL;
	char why[512], dir[700];
	snprintf(dir, sizeof(dir), "%s/store-%s", g_dir, name);
	cr_assert_eq(fs_test_tablet(dir, path, 7, "k1", &s, why, sizeof(why)), FS_OK, "%s", why);
	return s;
}

static fs_err
sync_t(fs_store *s, fs_sync_stats *st)
{
	fs_sync_opts o = {0};
	fs_sync_stats dummy;
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	return fs_sync(s, &o, st != NULL ? st : &dummy);
}

/* ---- raw pushes with any version --------------------------------------- */

/*
 * Pushes one note from socket s with the dots (r[i], c[i]) (any order,
 * any counter); returns the reply (caller frees).
 */
static env_t *
push_dots(void *s, const char *id, const char *scope, const char *payload, size_t n,
          const char *const *r, const uint64_t *c)
{
	char csid[64], text[512] = "";
	snprintf(csid, sizeof(csid), "cs-%llu", (unsigned long long)++g_rid);
	/* sorted by replica (PROTOCOL.md §3), built with counter 1, then set */
	size_t order[4];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(r[order[j]], r[order[i]]) < 0) {
				size_t x = order[i];
				order[i] = order[j];
				order[j] = x;
			}
	for (size_t i = 0; i < n; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s:1", i ? "," : "",
		         r[order[i]]);
	fs_test_push *p = fs_test_push_new(csid);
	fs_test_push_add(p, "note", id, scope, text, false, payload, strlen(payload));
	env_t *e = fs_test_push_envelope(p, ++g_rid);
	Fieldsync__V1__VersionVector *v = e->push->changes[0]->record->version;
	cr_assert_eq(v->n_dots, n);
	for (size_t i = 0; i < n; i++)
		v->dots[i]->counter = c[order[i]];
	env_t *rep = fs_test_call(s, e, 10000);
	fs_test_push_free(p);
	cr_assert_not_null(rep, "the daemon answers the push");
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	return rep;
}

static int
status_of(env_t *r)
{
	return r->push_reply->results[0]->status;
}

/* The note's state as the daemon serves it: its single payload in buf (""
 * when absent), the number of siblings returned. */
static size_t
daemon_note(void *s, const char *id, char *buf, size_t len)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	uint64_t since = 0;
	size_t n = 0;
	buf[0] = '\0';
	for (;;) {
		pr.since_seq = since;
		pr.limit = 500;
		e.request_id = ++g_rid;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
			if (strcmp(rs->collection, "note") != 0 || strcmp(rs->id, id) != 0)
				continue;
			n = rs->n_siblings;
			if (n >= 1)
				snprintf(buf, len, "%.*s", (int)rs->siblings[n - 1]->payload.len,
				         (const char *)rs->siblings[n - 1]->payload.data);
		}
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			return n;
	}
}

/* The value of a tablet's note ("" when absent or in conflict). */
static const char *
value(fs_store *s, const char *id)
{
	static char buf[256];
	fs_record *r = NULL;
	fs_sibling sb;
	buf[0] = '\0';
	if (fs_get(s, "note", id, &r) != FS_OK)
		return buf;
	if (fs_record_sibling_count(r) == 1) {
		fs_record_sibling(r, 0, &sb);
		snprintf(buf, sizeof(buf), "%.*s", (int)sb.len, (const char *)sb.payload);
	}
	fs_record_free(&r);
	return buf;
}

static void
put(fs_store *s, const char *id, const char *val)
{
	fs_err e = fs_put(s, "note", id, NULL, val, strlen(val));
	cr_assert_eq(e, FS_OK, "put %s: %s", id, fs_strerror(e));
}

Test(isolate_replica, issue11_break1_a_forged_dot_never_drops_a_colleagues_edit)
{
	char vpath[700], hpath[700], buf[256];
	init_production();
	(void)enroll("tab-victim", "team-a", vpath, sizeof(vpath));
	cred h = enroll("tab-hostile", "team-a", hpath, sizeof(hpath));
	start_production();
	fs_store *victim = tablet("victim", vpath);
	const char *vrep = fs_store_replica_id(victim);
	void *hs = curve_dealer(&h);
	fs_sync_stats st;

	/* The victim writes n1 and syncs: its replica is bound to it. */
	put(victim, "n1", "first");
	cr_assert_eq(sync_t(victim, NULL), FS_OK);

	/* A team member forges the victim's history at 1000. */
	const char *forge_r[] = {vrep, "hostile-replica"};
	const uint64_t forge_c[] = {1000, 1};
	env_t *r = push_dots(hs, "n1", "team-a", "forged", 2, forge_r, forge_c);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED,
	             "a version with the victim's dot at 1000 is refused (status %d)",
	             status_of(r));
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	/* ... also when it claims to be the victim's own edit */
	r = push_dots(hs, "n1", "team-a", "forged", 1, forge_r, forge_c);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	cr_expect_eq(strncmp(r->push_reply->results[0]->reason, "DEFERRED", 8) != 0, true,
	             "advancing another device's replica is not history to wait for: %s",
	             r->push_reply->results[0]->reason);
	cr_expect_null(strstr(r->push_reply->results[0]->reason, "tab-victim"),
	               "the refusal names no device: %s", r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* The victim's real offline edit is kept, not OBSOLETE. */
	put(victim, "n1", "the real edit");
	cr_assert_eq(sync_t(victim, &st), FS_OK);
	cr_expect_eq(st.failed, 0);
	fs_status ss;
	cr_assert_eq(fs_status_get(victim, &ss), FS_OK);
	cr_expect_eq(ss.pending, 0);
	cr_expect_eq(daemon_note(hs, "n1", buf, sizeof(buf)), 1);
	cr_expect_str_eq(buf, "the real edit", "the daemon holds the victim's edit");
	cr_expect_str_eq(value(victim, "n1"), "the real edit");

	/* A dot at UINT64_MAX (and one above 2^53) never reaches a tablet. */
	const uint64_t max_c[] = {UINT64_MAX, 1};
	r = push_dots(hs, "n2", "team-a", "max", 2, forge_r, max_c);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	const char *own_r[] = {"hostile-replica"};
	const uint64_t big_c[] = {(UINT64_C(1) << 53) + 1};
	r = push_dots(hs, "n3", "team-a", "big", 1, own_r, big_c);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_assert_eq(sync_t(victim, NULL), FS_OK);
	fs_err e = fs_put(victim, "note", "n2", "team-a", "mine", 4);
	cr_expect_eq(e, FS_OK, "the victim's next put works: %s", fs_strerror(e));
	cr_expect_eq(fs_put(victim, "note", "n3", "team-a", "mine", 4), FS_OK);
	cr_expect_eq(sync_t(victim, &st), FS_OK);
	cr_expect_eq(st.failed, 0);
	cr_expect_eq(daemon_note(hs, "n2", buf, sizeof(buf)), 1);
	cr_expect_str_eq(buf, "mine");

	/* Counted, and logged with the device (never the payload). */
	char *log = fs_test_daemon_log(d);
	cr_expect_not_null(strstr(log, "tab-hostile"), "the refusal is logged with the device");
	cr_expect_null(strstr(log, "forged"), "no payload in the log");
	free(log);
	char *m = NULL;
	cr_assert_eq(fs_test_http_get(fs_test_daemon_ops_port(d), "/metrics", &m), 200);
	const char *line = strstr(m, "\nfieldsync_history_refused_total ");
	cr_expect(line != NULL && strtoull(line + 33, NULL, 10) >= 2, "%s",
	          line != NULL ? line : "no fieldsync_history_refused_total");
	free(m);
	close_socks();
	fs_store_close(&victim);
}

/* ---- DEFERRED after a restore (--dev: the Hello replica is the device) --- */

static fs_store *
dev_tablet(const char *name)
{
	char dir[700];
	fs_store *s = NULL;
	snprintf(dir, sizeof(dir), "%s/dev-%s", g_dir, name);
	cr_assert_eq(fs_store_create(dir, "team-a", &s), FS_OK);
	return s;
}

Test(isolate_replica, deferred_after_a_restore_lands_after_a_pull)
{
	char backup[700], newdir[700];
	fs_sync_stats st;
	fs_status ss;
	fs_store *a = dev_tablet("a"), *b = dev_tablet("b"), *c = dev_tablet("c");
	snprintf(backup, sizeof(backup), "%s/backup.mdb", g_dir);
	snprintf(newdir, sizeof(newdir), "%s/restored", g_dir);
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);

	put(a, "seed", "s");
	cr_assert_eq(sync_t(a, NULL), FS_OK);
	cr_assert_eq(fs_test_sh(NULL, "%s backup --data-dir %s --out %s >/dev/null 2>&1",
	                        fs_test_daemon_bin(), fs_test_daemon_data_dir(d), backup),
	             0, "backup");
	/* x from A, acknowledged; B pulls it. Then the daemon loses it. */
	put(a, "x", "from-a");
	cr_assert_eq(sync_t(a, NULL), FS_OK);
	cr_assert_eq(sync_t(b, NULL), FS_OK);
	cr_assert_str_eq(value(b, "x"), "from-a");
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	cr_assert_eq(fs_test_sh(NULL, "%s restore --data-dir %s --from %s >/dev/null 2>&1",
	                        fs_test_daemon_bin(), newdir, backup),
	             0, "restore");
	d = fs_test_daemon_start(newdir);
	cr_assert_not_null(d);

	/* B edits x on top of A's value the daemon no longer holds. */
	put(b, "x", "from-b");
	cr_assert_eq(sync_t(b, &st), FS_OK);
	cr_assert_eq(fs_status_get(b, &ss), FS_OK);
	cr_expect_eq(ss.failed, 0, "a DEFERRED change is never parked");
	cr_expect_eq(ss.pending, 1, "it stays queued (pending %llu)",
	             (unsigned long long)ss.pending);
	cr_assert_eq(sync_t(c, NULL), FS_OK);
	cr_expect_str_eq(value(c, "x"), "", "nothing of x is on the daemon yet");

	/* A comes back: it pushes again what it authored (PROTOCOL.md §7). */
	cr_assert_eq(sync_t(a, NULL), FS_OK);
	/* B's next sync: push, pull (x from A), push again what was deferred. */
	cr_assert_eq(sync_t(b, &st), FS_OK);
	cr_assert_eq(fs_status_get(b, &ss), FS_OK);
	cr_expect_eq(ss.pending, 0, "the deferred change landed");
	cr_expect_eq(ss.failed, 0);
	cr_assert_eq(sync_t(c, NULL), FS_OK);
	cr_expect_str_eq(value(c, "x"), "from-b", "B's edit is on the daemon, over A's");
	cr_assert_eq(sync_t(a, NULL), FS_OK);
	cr_expect_str_eq(value(a, "x"), "from-b");
	fs_store_close(&a);
	fs_store_close(&b);
	fs_store_close(&c);
}

/* ---- a store written by an older build ---------------------------------- */

static cred
fixture_cred(const char *file)
{
	fs_credential *fc = NULL;
	char path[600], why[512];
	cred c;
	snprintf(path, sizeof(path), "%s/%s", FIXTURE, file);
	/* git keeps no file modes: load a private copy */
	char copy[700];
	snprintf(copy, sizeof(copy), "%s/%s", g_dir, file);
	cr_assert_eq(fs_test_sh(NULL, "cp '%s' '%s' && chmod 600 '%s'", path, copy, copy), 0);
	cr_assert_eq(fs_credential_load(copy, &fc, why, sizeof(why)), FS_OK, "%s", why);
	snprintf(c.server, sizeof(c.server), "%s", fc->server_public_key);
	snprintf(c.pub, sizeof(c.pub), "%s", fc->client_public_key);
	snprintf(c.sec, sizeof(c.sec), "%s", fc->client_secret_key);
	fs_credential_free(&fc);
	return c;
}

/* The version of the note's sibling whose payload is `payload` (or the
 * first when NULL), as the daemon serves it: its dots in r/c. */
static size_t
daemon_version(void *s, const char *id, const char *payload, char r[][80], uint64_t *c)
{
	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	size_t n = 0;
	pr.limit = 500;
	e.request_id = ++g_rid;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	env_t *rep = fs_test_call(s, &e, 10000);
	cr_assert_not_null(rep);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
	for (size_t i = 0; i < rep->pull_reply->n_records; i++) {
		Fieldsync__V1__RecordState *rs = rep->pull_reply->records[i];
		if (strcmp(rs->collection, "note") != 0 || strcmp(rs->id, id) != 0)
			continue;
		for (size_t k = 0; k < rs->n_siblings && n == 0; k++) {
			Fieldsync__V1__Record *sb = rs->siblings[k];
			if (payload != NULL && (sb->payload.len != strlen(payload) ||
			                        memcmp(sb->payload.data, payload, sb->payload.len)))
				continue;
			for (size_t j = 0; j < sb->version->n_dots && j < 4; j++) {
				snprintf(r[j], 80, "%s", sb->version->dots[j]->replica);
				c[j] = sb->version->dots[j]->counter;
			}
			n = sb->version->n_dots;
		}
	}
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	return n;
}

Test(isolate_replica, a_store_of_the_old_build_keeps_its_bindings)
{
	char ra[4][80], rb[4][80], buf[256];
	uint64_t ca[4], cb[4];
	cr_assert_eq(
		fs_test_sh(
			NULL,
			"cp -R '%s/prod' '%s' && cp '%s/master.key' '%s' && chmod -R go-rwx '%s' "
			"'%s'",
			FIXTURE, g_data, FIXTURE, g_key, g_data, g_key),
		0);
	cred a = fixture_cred("prod-tablet-a.json");
	start_production();
	void *s = curve_dealer(&a);

	/* note/dup: one sibling from tablet-a, one from tablet-b */
	cr_assert_eq(daemon_version(s, "dup", "dup from a", ra, ca), 1);
	cr_assert_eq(daemon_version(s, "dup", "dup from b", rb, cb), 1);
	cr_assert_str_neq(ra[0], rb[0]);

	/* What was accepted before is still the same: a stored value again is
	 * DUPLICATE, not refused. */
	const char *r1[] = {ra[0]};
	env_t *r = push_dots(s, "dup", "team-a", "dup from a", 1, r1, ca);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__DUPLICATE, "%s",
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* tablet-a may not advance tablet-b's replica (its binding was derived
	 * from the stored modified_by) ... */
	const char *r2[] = {rb[0]};
	const uint64_t c2[] = {cb[0] + 1};
	r = push_dots(s, "dup", "team-a", "not mine", 1, r2, c2);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED,
	             "advancing tablet-b's replica from tablet-a");
	fieldsync__v1__envelope__free_unpacked(r, NULL);

	/* ... but may resolve the conflict by advancing its own, over both. */
	const char *r3[] = {ra[0], rb[0]};
	const uint64_t c3[] = {ca[0] + 1, cb[0]};
	r = push_dots(s, "dup", "team-a", "resolved", 2, r3, c3);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "%s",
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	cr_expect_eq(daemon_note(s, "dup", buf, sizeof(buf)), 1);
	cr_expect_str_eq(buf, "resolved");

	/* and edit its own note n1 */
	cr_assert_eq(daemon_version(s, "n1", NULL, ra, ca), 1);
	const char *r4[] = {ra[0]};
	const uint64_t c4[] = {ca[0] + 1};
	r = push_dots(s, "n1", "team-a", "alpha 2", 1, r4, c4);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED, "%s",
	             r->push_reply->results[0]->reason);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	close_socks();

	/* the bindings survive a restart, and verify is content */
	cr_assert(fs_test_daemon_restart(d));
	s = curve_dealer(&a);
	const uint64_t c5[] = {cb[0] + 2};
	r = push_dots(s, "dup", "team-a", "not mine", 1, r2, c5);
	cr_expect_eq(status_of(r), FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	close_socks();
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	cr_expect_eq(
		fs_test_sh(NULL,
	                   "'%s' verify --data-dir '%s' --master-key-file '%s' >/dev/null 2>&1",
	                   fs_test_daemon_bin(), g_data, g_key),
		0, "verify after the upgrade");
}
