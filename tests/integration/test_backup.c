/*
 * Backup, restore and verify through the real daemon (issue 6): a backup
 * taken under write load holds every change acknowledged before it began,
 * restores, verifies, and serves them; a corrupted record fails verify,
 * which names it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define N_THREADS 4
#define N_CASES 16 /* per thread */

typedef Fieldsync__V1__Envelope env_t;

static char *
write_key(const char *dir)
{
	char *path = malloc(600);
	snprintf(path, 600, "%s/master.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	const char *text = "k1:" KEY_HEX "\n";
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Runs a shell command; its exit status (-1 when it did not exit). Output
 * goes to out_file when given. */
static int
run(const char *out_file, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (out_file != NULL) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, " >%s 2>&1", out_file);
	}
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s", path);
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* ---- the write load ------------------------------------------------------ */

struct load {
	const char *endpoint;
	void *zctx;
	atomic_bool stop;
	pthread_mutex_t mu;
	/* the counter of the last acknowledged version of case and contact (t, j) */
	uint64_t acked[N_THREADS][N_CASES];
	atomic_uint_fast64_t pushes;
	atomic_int failed; /* 1: a push went unanswered, 2: a change was not applied */
};

struct worker {
	struct load *l;
	int t;
};

static void *
worker_run(void *p)
{
	struct worker *w = p;
	struct load *l = w->l;
	void *s = fs_test_dealer(l->zctx, l->endpoint);
	uint64_t counter[N_CASES] = {0};
	uint64_t rid = 1;
	for (unsigned i = 0; !atomic_load(&l->stop); i++) {
		int j = (int)(i % N_CASES);
		uint64_t n = ++counter[j];
		char cs[64], case_id[32], talk_id[32], version[32], replica[8];
		snprintf(cs, sizeof(cs), "cs-%d-%u", w->t, i);
		snprintf(case_id, sizeof(case_id), "case-%d-%d", w->t, j);
		snprintf(talk_id, sizeof(talk_id), "talk-%d-%d", w->t, j);
		snprintf(replica, sizeof(replica), "w%d", w->t);
		snprintf(version, sizeof(version), "%s:%llu", replica, (unsigned long long)n);

		Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
		Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
		uint8_t cb[256], tb[256];
		c.first_contact_at_ms = 1774360800000LL + (int64_t)n * 3600000;
		c.contact_person = "staff-7";
		t.case_id = case_id;
		t.held_at_ms = 1774447200000LL + (int64_t)n * 60000;
		t.who5 = (int32_t)(n % 100);
		size_t cl = fieldsync__v1__case__pack(&c, cb), tl = fieldsync__v1__contact__pack(&t, tb);
		fs_test_push *push = fs_test_push_new(cs);
		fs_test_push_add(push, "case", case_id, "team-a", version, false, cb, cl);
		fs_test_push_add(push, "contact", talk_id, "team-a", version, false, tb, tl);
		env_t *r = fs_test_call(s, fs_test_push_envelope(push, rid++), 20000);
		fs_test_push_free(push);
		if (r == NULL) { /* asserted by the test's thread: Criterion asserts there only */
			atomic_store(&l->failed, 1);
			break;
		}
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY) {
			bool all = r->push_reply->n_results == 2;
			for (size_t k = 0; all && k < r->push_reply->n_results; k++)
				all = r->push_reply->results[k]->status ==
				      FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED;
			if (!all) {
				atomic_store(&l->failed, 2);
				fieldsync__v1__envelope__free_unpacked(r, NULL);
				break;
			}
			pthread_mutex_lock(&l->mu);
			l->acked[w->t][j] = n;
			pthread_mutex_unlock(&l->mu);
			atomic_fetch_add(&l->pushes, 1);
		} else { /* BUSY: not acknowledged, so not owed; try the same version again */
			counter[j]--;
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(s);
	return NULL;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The counter of replica's dot in the record's first sibling; 0 when none. */
static uint64_t
dot_of(const Fieldsync__V1__RecordState *rs, const char *replica)
{
	if (rs->n_siblings == 0 || rs->siblings[0]->version == NULL)
		return 0;
	const Fieldsync__V1__VersionVector *vv = rs->siblings[0]->version;
	uint64_t best = 0;
	for (size_t i = 0; i < rs->n_siblings; i++) {
		vv = rs->siblings[i]->version;
		for (size_t k = 0; vv != NULL && k < vv->n_dots; k++)
			if (strcmp(vv->dots[k]->replica, replica) == 0 && vv->dots[k]->counter > best)
				best = vv->dots[k]->counter;
	}
	return best;
}

/* Pulls the whole feed; fills have[t][j] (case) and have_talk[t][j]. */
static void
pull_all(void *s, uint64_t have[N_THREADS][N_CASES], uint64_t have_talk[N_THREADS][N_CASES])
{
	uint64_t since = 0;
	for (int page = 0; page < 10000; page++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 200;
		e.request_id = 1000 + (uint64_t)page;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			const Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
			int t, j;
			char replica[8];
			bool is_case = sscanf(rs->id, "case-%d-%d", &t, &j) == 2;
			if (!is_case && sscanf(rs->id, "talk-%d-%d", &t, &j) != 2)
				continue;
			if (t < 0 || t >= N_THREADS || j < 0 || j >= N_CASES)
				continue;
			snprintf(replica, sizeof(replica), "w%d", t);
			(is_case ? have : have_talk)[t][j] = dot_of(rs, replica);
		}
		bool more = r->pull_reply->more;
		since = r->pull_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			return;
	}
	cr_assert_fail("the feed never ended");
}

Test(backup, a_backup_under_load_restores_verifies_and_holds_every_acked_change,
     .timeout = 300)
{
	char *dir = fs_test_tmpdir();
	char *key = write_key(dir);
	char data[600], restored[600], bak[600], keys_bak[600], out[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(restored, sizeof(restored), "%s/restored", dir);
	snprintf(bak, sizeof(bak), "%s/data.bak", dir);
	snprintf(keys_bak, sizeof(keys_bak), "%s/keys.bak", dir);
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	const char *args[] = {"--master-key-file", key, NULL};
	fs_test_daemon *d = fs_test_daemon_start_args(data, args);
	cr_assert_not_null(d);

	static struct load l;
	memset(&l, 0, sizeof(l));
	pthread_mutex_init(&l.mu, NULL);
	l.endpoint = fs_test_daemon_endpoint(d);
	l.zctx = zmq_ctx_new();
	pthread_t th[N_THREADS];
	struct worker w[N_THREADS];
	for (int i = 0; i < N_THREADS; i++) {
		w[i] = (struct worker){&l, i};
		cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	sleep_ms(1000);

	/* What was acknowledged before the backup began. */
	uint64_t owed[N_THREADS][N_CASES];
	pthread_mutex_lock(&l.mu);
	memcpy(owed, l.acked, sizeof(owed));
	pthread_mutex_unlock(&l.mu);
	uint64_t pushes_before = atomic_load(&l.pushes);
	cr_assert_gt(pushes_before, 0, "the load ran");

	int rc = run(out, "%s backup --data-dir %s --out %s --with-keys %s --master-key-file %s",
	             FS_DAEMON_BIN, data, bak, keys_bak, key);
	char *text = slurp(out);
	cr_assert_eq(rc, 0, "backup: %s", text);
	cr_expect_not_null(strstr(text, "compacted"));
	free(text);
	sleep_ms(300); /* pushing goes on after the backup, too */
	atomic_store(&l.stop, true);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&l.failed), 0, "every push was answered and applied (%d)",
	             atomic_load(&l.failed));
	cr_expect_gt(atomic_load(&l.pushes), pushes_before, "writes went on during the backup");

	struct stat st;
	cr_assert_eq(stat(bak, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "the backup is mode 0600");
	cr_expect_neq(run(NULL, "%s backup --data-dir %s --out %s 2>/dev/null", FS_DAEMON_BIN, data,
	                  bak),
	              0, "an existing backup is never overwritten");

	/* The audit log of the live store says a backup was taken. */
	cr_assert_eq(run(out, "%s audit --data-dir %s", FS_DAEMON_BIN, data), 0);
	text = slurp(out);
	cr_expect_not_null(strstr(text, "backup"), "audit: %s", text);
	free(text);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	/* The live store verifies too (after the load). */
	rc = run(out, "%s verify --data-dir %s --master-key-file %s", FS_DAEMON_BIN, data, key);
	text = slurp(out);
	cr_expect_eq(rc, 0, "verify of the live store: %s", text);
	free(text);

	/* Restore (runs verify) into a new directory. */
	rc = run(out, "%s restore --data-dir %s --from %s --keys-from %s --master-key-file %s",
	         FS_DAEMON_BIN, restored, bak, keys_bak, key);
	text = slurp(out);
	cr_assert_eq(rc, 0, "restore: %s", text);
	cr_log_info("restore after %llu acked pushes:\n%s", (unsigned long long)pushes_before, text);
	cr_expect_not_null(strstr(text, "problems: 0"), "%s", text);
	cr_expect_null(strstr(text, "reminders checked: 0\n"), "reminders were checked: %s", text);
	free(text);
	cr_expect_neq(run(NULL, "%s restore --data-dir %s --from %s 2>/dev/null", FS_DAEMON_BIN,
	                  restored, bak),
	              0, "restore refuses a directory that holds a store");
	rc = run(out, "%s verify --data-dir %s --master-key-file %s", FS_DAEMON_BIN, restored, key);
	text = slurp(out);
	cr_assert_eq(rc, 0, "verify: %s", text);
	free(text);

	/* The restored store serves every change acknowledged before the backup. */
	d = fs_test_daemon_start_args(restored, args);
	cr_assert_not_null(d);
	void *s = fs_test_dealer(l.zctx, fs_test_daemon_endpoint(d));
	static uint64_t have[N_THREADS][N_CASES], have_talk[N_THREADS][N_CASES];
	memset(have, 0, sizeof(have));
	memset(have_talk, 0, sizeof(have_talk));
	pull_all(s, have, have_talk);
	zmq_close(s);
	size_t owed_n = 0;
	for (int t = 0; t < N_THREADS; t++)
		for (int j = 0; j < N_CASES; j++) {
			if (owed[t][j] == 0)
				continue;
			owed_n++;
			cr_expect_geq(have[t][j], owed[t][j], "case-%d-%d: version %llu acked, %llu restored",
			              t, j, (unsigned long long)owed[t][j], (unsigned long long)have[t][j]);
			cr_expect_geq(have_talk[t][j], owed[t][j], "talk-%d-%d: version %llu acked, %llu "
			              "restored", t, j, (unsigned long long)owed[t][j],
			              (unsigned long long)have_talk[t][j]);
		}
	cr_expect_gt(owed_n, 0);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
	zmq_ctx_term(l.zctx);
	pthread_mutex_destroy(&l.mu);
	fs_test_rm_rf(dir);
	free(key);
	free(dir);
}

/* Writes garbage as the stored value of one record, with LMDB directly. */
static void
corrupt_record(const char *dir, const char *collection, const char *id)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t key[300];
	size_t cl = strlen(collection), il = strlen(id);
	key[0] = (uint8_t)cl;
	memcpy(key + 1, collection, cl);
	memcpy(key + 1 + cl, id, il);
	MDB_val k = {1 + cl + il, key}, v = {12, "\xff\xff\xff garbage"};
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 24), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 1ULL << 30), 0);
	cr_assert_eq(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "records", 0, &dbi), 0);
	MDB_val old;
	cr_assert_eq(mdb_get(txn, dbi, &k, &old), 0, "the record is there to corrupt");
	cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Deletes every reminder row of case_id, with LMDB directly. */
static size_t
drop_reminder_rows(const char *dir, const char *case_id)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	uint8_t prefix[200];
	size_t pl = strlen(case_id), n = 0;
	prefix[0] = (uint8_t)pl;
	memcpy(prefix + 1, case_id, pl);
	pl++;
	MDB_val k = {pl, prefix}, v;
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 24), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 1ULL << 30), 0);
	cr_assert_eq(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "reminders", 0, &dbi), 0);
	cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT)) {
		cr_assert_eq(mdb_cursor_del(cur, 0), 0);
		n++;
	}
	mdb_cursor_close(cur);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	return n;
}

Test(backup, verify_names_a_corrupted_record, .timeout = 120)
{
	char *dir = fs_test_tmpdir();
	char data[600], copy[600], bak[600], out[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(copy, sizeof(copy), "%s/copy", dir);
	snprintf(bak, sizeof(bak), "%s/data.bak", dir);
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	fs_test_daemon *d = fs_test_daemon_start(data);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t cb[128];
	c.first_contact_at_ms = 1774360800000LL;
	size_t cl = fieldsync__v1__case__pack(&c, cb);
	fs_test_push *p = fs_test_push_new("cs-corrupt");
	fs_test_push_add(p, "case", "case-1", "team-a", "a:1", false, cb, cl);
	fs_test_push_add(p, "note", "note-1", "team-a", "a:1", false, "opaque", 6);
	fs_test_push_add(p, "note", "note-2", "team-a", "a:1", false, "opaque", 6);
	env_t *r = fs_test_call(s, fs_test_push_envelope(p, 1), 10000);
	fs_test_push_free(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
	fieldsync__v1__envelope__free_unpacked(r, NULL);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_assert_eq(run(NULL, "%s backup --data-dir %s --out %s 2>/dev/null >/dev/null",
	                 FS_DAEMON_BIN, fs_test_daemon_data_dir(d), bak), 0);
	cr_assert_eq(fs_test_daemon_stop(&d), 0);

	cr_assert_eq(run(out, "%s restore --data-dir %s --from %s", FS_DAEMON_BIN, copy, bak), 0);
	char *text = slurp(out);
	cr_expect_not_null(strstr(text, "records: 3"), "%s", text);
	free(text);

	corrupt_record(copy, "note", "note-2");
	int rc = run(out, "%s verify --data-dir %s", FS_DAEMON_BIN, copy);
	text = slurp(out);
	cr_expect_eq(rc, 1, "verify fails: %s", text);
	cr_log_info("verify of a damaged copy:\n%s", text);
	cr_expect_not_null(strstr(text, "note/note-2"), "the record is named: %s", text);
	cr_expect_null(strstr(text, "note/note-1"), "only the bad record: %s", text);
	cr_expect_null(strstr(text, "garbage"), "no content is printed: %s", text);
	free(text);

	/* A store whose reminders no longer match their rules fails too. */
	char copy2[600];
	snprintf(copy2, sizeof(copy2), "%s/copy2", dir);
	cr_assert_eq(run(out, "%s restore --data-dir %s --from %s", FS_DAEMON_BIN, copy2, bak), 0);
	cr_assert_gt(drop_reminder_rows(copy2, "case-1"), 0, "the case has reminders");
	rc = run(out, "%s verify --data-dir %s", FS_DAEMON_BIN, copy2);
	text = slurp(out);
	cr_expect_eq(rc, 1, "verify fails: %s", text);
	cr_log_info("verify of a damaged copy:\n%s", text);
	cr_expect_not_null(strstr(text, "of case case-1: implied by the rules but has no row"),
	                   "the reminder is named: %s", text);
	free(text);
	fs_test_rm_rf(dir);
	free(dir);
}
