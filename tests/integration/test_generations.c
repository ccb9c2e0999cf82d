/*
 * Issue 12, item 1: a restore loses nothing acknowledged (PROTOCOL.md §7).
 * Three real tablets (libfieldsync stores) against the real daemon, a real
 * `fieldsyncd backup` and `fieldsyncd restore`:
 *   - the scenario of the issue: backup at seq 3; tablet A pushes a4..a6
 *     (acknowledged), B pulls them; restore; C writes c1 (seq 4 again).
 *     Then B must receive c1, A must push a4..a6 again, and C must see
 *     them: Welcome.generation changed, so A and B pulled from 0 and A
 *     re-pushed what it authored;
 *   - a restore while a tablet is mid-sync (the daemon killed during a
 *     large push): after the restore every value of that tablet is on the
 *     daemon.
 * On the old main (FS_TEST_DAEMON_BIN=old fieldsyncd) B never sees c1.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define T_MS 20000

static fs_test_daemon *d;
static char *tmp, *dirs[3];
static fs_store *tab[3];

static int
run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *
daemon_bin(void)
{
	const char *b = getenv("FS_TEST_DAEMON_BIN");
	return b != NULL && b[0] != '\0' ? b : FS_DAEMON_BIN;
}

static void
setup(void)
{
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
	for (int i = 0; i < 3; i++) {
		dirs[i] = malloc(700);
		snprintf(dirs[i], 700, "%s/tablet-%c", tmp, 'a' + i);
		cr_assert_eq(fs_store_create(dirs[i], "team-a", &tab[i]), FS_OK);
	}
}

static void
teardown(void)
{
	for (int i = 0; i < 3; i++) {
		fs_store_close(&tab[i]);
		free(dirs[i]);
		dirs[i] = NULL;
	}
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(generations, .init = setup, .fini = teardown, .timeout = 240);

static fs_err
sync_t(fs_store *s, fs_sync_stats *st)
{
	fs_sync_opts o = {0};
	fs_sync_stats dummy;
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	return fs_sync(s, &o, st != NULL ? st : &dummy);
}

static void
put(fs_store *s, const char *id, const char *val)
{
	cr_assert_eq(fs_put(s, "note", id, NULL, val, strlen(val)), FS_OK);
}

/* The record's single value ("" when absent or in conflict). */
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

/* Stops the daemon, restores backup into a new directory, starts it there. */
static void
restore_and_restart(const char *backup, const char *newdir)
{
	char *old = strdup(fs_test_daemon_data_dir(d));
	cr_assert_eq(fs_test_daemon_stop(&d), 0);
	cr_assert_eq(run("%s restore --data-dir %s --from %s >%s/restore.log 2>&1", daemon_bin(),
	                 newdir, backup, tmp),
	             0, "restore");
	d = fs_test_daemon_start(newdir);
	cr_assert_not_null(d, "the daemon starts on the restored store");
	free(old);
}

Test(generations, the_issue_scenario_with_three_tablets)
{
	char backup[700], newdir[700];
	fs_sync_stats st;
	snprintf(backup, sizeof(backup), "%s/backup.mdb", tmp);
	snprintf(newdir, sizeof(newdir), "%s/restored", tmp);
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);

	/* seq 1..3 from A, then the backup */
	put(tab[0], "a1", "one");
	put(tab[0], "a2", "two");
	put(tab[0], "a3", "three");
	cr_assert_eq(sync_t(tab[0], NULL), FS_OK);
	cr_assert_eq(run("%s backup --data-dir %s --out %s >/dev/null 2>&1", daemon_bin(),
	                 fs_test_daemon_data_dir(d), backup),
	             0, "backup");

	/* a4..a6 acknowledged; B pulls them (checkpoint 6) */
	put(tab[0], "a4", "four");
	put(tab[0], "a5", "five");
	put(tab[0], "a6", "six");
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_assert_eq(st.pushed, 3, "a4..a6 acknowledged");
	cr_assert_eq(sync_t(tab[1], NULL), FS_OK);
	cr_assert_str_eq(value(tab[1], "a6"), "six");
	fs_status ss;
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_assert_eq(ss.pending, 0);

	restore_and_restart(backup, newdir);

	/* C writes c1: seq 4 again on the restored daemon */
	put(tab[2], "c1", "from-c");
	cr_assert_eq(sync_t(tab[2], NULL), FS_OK);

	/* B sees the new generation: pulls from 0 and gets c1 */
	cr_assert_eq(sync_t(tab[1], NULL), FS_OK);
	cr_expect_str_eq(value(tab[1], "c1"), "from-c", "B receives c1 after the restore");

	/* A pushes again what it authored: a4..a6 reach the restored daemon */
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_geq(st.requeued, 6, "A re-queues its six values (%llu)",
	              (unsigned long long)st.requeued);
	cr_expect_str_eq(value(tab[0], "c1"), "from-c", "A pulled from 0 too");

	/* C (and anyone) now gets a4..a6 from the daemon */
	cr_assert_eq(sync_t(tab[2], NULL), FS_OK);
	cr_expect_str_eq(value(tab[2], "a4"), "four");
	cr_expect_str_eq(value(tab[2], "a5"), "five");
	cr_expect_str_eq(value(tab[2], "a6"), "six");
	cr_expect_str_eq(value(tab[2], "a1"), "one");

	/* a second sync after the generation was adopted changes nothing */
	cr_assert_eq(sync_t(tab[0], &st), FS_OK);
	cr_expect_eq(st.requeued, 0);
	cr_expect_eq(st.pushed, 0);
}

struct bg_sync {
	fs_store *s;
	const char *endpoint;
	atomic_int done;
	fs_err err;
};

static void *
bg_sync(void *arg)
{
	struct bg_sync *b = arg;
	fs_sync_opts o = {0};
	fs_sync_stats st;
	o.endpoint = b->endpoint;
	o.timeout_ms = 5000;
	b->err = fs_sync(b->s, &o, &st);
	atomic_store(&b->done, 1);
	return NULL;
}

Test(generations, a_restore_while_a_tablet_is_mid_sync)
{
	char backup[700], newdir[700], id[32], val[32];
	enum { N = 3000 };
	snprintf(backup, sizeof(backup), "%s/backup.mdb", tmp);
	snprintf(newdir, sizeof(newdir), "%s/restored", tmp);
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	put(tab[1], "b0", "before");
	cr_assert_eq(sync_t(tab[1], NULL), FS_OK);
	cr_assert_eq(run("%s backup --data-dir %s --out %s >/dev/null 2>&1", daemon_bin(),
	                 fs_test_daemon_data_dir(d), backup),
	             0);

	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "m%05d", i);
		snprintf(val, sizeof(val), "v%d", i);
		put(tab[0], id, val);
	}
	/* A pushes in the background; the daemon dies under it */
	struct bg_sync b = {tab[0], fs_test_daemon_endpoint(d), 0, FS_OK};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, bg_sync, &b), 0);
	usleep(150 * 1000);
	fs_test_daemon_kill9(d);
	pthread_join(th, NULL);
	fs_test_daemon_stop(&d); /* reaps, keeps nothing: the dir is a temp one */
	cr_assert_eq(run("%s restore --data-dir %s --from %s >%s/restore.log 2>&1", daemon_bin(),
	                 newdir, backup, tmp),
	             0);
	d = fs_test_daemon_start(newdir);
	cr_assert_not_null(d);

	/* A syncs until it is through (pushes what is in flight and its own values) */
	fs_err e = FS_ERR_BUSY;
	for (int i = 0; i < 10 && e != FS_OK; i++)
		e = sync_t(tab[0], NULL);
	cr_assert_eq(e, FS_OK, "%s", fs_strerror(e));
	fs_status ss;
	cr_assert_eq(fs_status_get(tab[0], &ss), FS_OK);
	cr_expect_eq(ss.pending, 0);

	/* C sees every value of A, and B's value from before the backup */
	cr_assert_eq(sync_t(tab[2], NULL), FS_OK);
	size_t missing = 0;
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "m%05d", i);
		snprintf(val, sizeof(val), "v%d", i);
		missing += strcmp(value(tab[2], id), val) != 0;
	}
	cr_expect_eq(missing, 0, "%zu of A's %d values missing after the restore", missing, N);
	cr_expect_str_eq(value(tab[2], "b0"), "before");
}
