/*
 * fs_sync_cancel and the change feed against the real daemon: a sync of
 * many pages (pull) or many change sets (push) is cancelled from another
 * thread; it ends with FS_ERR_CANCELLED at a round trip, and the next sync
 * brings everything exactly once. fs_sync_opts.on_page reports each
 * committed page as a range of the change feed.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define N_RECORDS 600
#define T_MS 30000

static fs_test_daemon *d;
static char *dirs[2];
static fs_store *tab[2];

static void
setup(void)
{
	/* change sets of 50: a push of 500 changes is 10 round trips */
	const char *extra[] = {"--max-changes-per-push", "50", NULL};
	d = fs_test_daemon_start_args(NULL, extra);
	cr_assert_not_null(d, "the daemon must start");
	for (int i = 0; i < 2; i++) {
		dirs[i] = fs_test_tmpdir();
		cr_assert_eq(fs_store_create(dirs[i], "team-a", &tab[i]), FS_OK);
	}
}

static void
teardown(void)
{
	for (int i = 0; i < 2; i++) {
		fs_store_close(&tab[i]);
		if (dirs[i] != NULL)
			fs_test_rm_rf(dirs[i]);
		free(dirs[i]);
		dirs[i] = NULL;
	}
	if (d != NULL)
		fs_test_daemon_stop(&d);
}

TestSuite(sdk_cancel, .init = setup, .fini = teardown, .timeout = 180);

/* n records note/<prefix>NNNN written on s in batches of 100 */
static void
write_many(fs_store *s, const char *prefix, int n)
{
	static char ids[N_RECORDS][32];
	fs_write w[100];
	for (int base = 0; base < n; base += 100) {
		int k = 0;
		for (int i = base; i < base + 100 && i < n; i++, k++) {
			snprintf(ids[i], sizeof(ids[i]), "%s%04d", prefix, i);
			w[k] = (fs_write){"note", ids[i], NULL, ids[i], strlen(ids[i]), false};
		}
		cr_assert_eq(fs_put_many(s, w, (size_t)k, NULL), FS_OK, "%s",
		             fs_last_error_detail());
	}
}

/* The canceller: waits for the go signal, then cancels the store's sync. */
typedef struct watch {
	fs_store *s;
	sem_t go;
	int go_after;   /* callbacks (pages or pushed sets) before the signal */
	int seen;       /* callbacks so far */
	bool cancelled; /* what fs_sync_cancel returned */
	fs_sync_phase phase;
	uint64_t pages, first_from, last_to, covered; /* on_page bookkeeping */
} watch;

static void *
canceller(void *arg)
{
	watch *w = arg;
	sem_wait(&w->go);
	w->cancelled = fs_sync_cancel(w->s);
	return NULL;
}

static void
on_progress(void *arg, const fs_progress *p)
{
	watch *w = arg;
	if (p->phase != w->phase || p->done == 0)
		return;
	if (++w->seen == w->go_after) {
		sem_post(&w->go);
		usleep(100 * 1000); /* the cancel lands before the next request */
	}
}

static void
on_page(void *arg, uint64_t from, uint64_t to)
{
	watch *w = arg;
	cr_assert_geq(to, from);
	if (w->pages++ == 0)
		w->first_from = from;
	else
		cr_assert_eq(from, w->last_to, "pages follow each other in the feed");
	w->last_to = to;
	w->covered += to - from;
}

static fs_err
sync_with(fs_store *s, watch *w, uint32_t pull_limit, fs_sync_stats *st)
{
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = T_MS;
	o.pull_limit = pull_limit;
	if (w != NULL) {
		o.progress = on_progress;
		o.progress_arg = w;
		o.on_page = on_page;
		o.on_page_arg = w;
	}
	return fs_sync(s, &o, st);
}

static size_t
live(fs_store *s, const char *coll)
{
	fs_list *l = NULL;
	cr_assert_eq(fs_list_records(s, coll, &l), FS_OK);
	size_t n = l->n;
	fs_list_free(&l);
	return n;
}

Test(sdk_cancel, a_cancelled_pull_resumes_and_everything_arrives_once)
{
	fs_sync_stats st1, st2;
	write_many(tab[0], "r", N_RECORDS);
	cr_assert_eq(sync_with(tab[0], NULL, 0, &st1), FS_OK);
	cr_assert_eq(st1.pushed, N_RECORDS);

	watch w;
	memset(&w, 0, sizeof(w));
	w.s = tab[1];
	w.phase = FS_SYNC_PULL;
	w.go_after = 3;
	sem_init(&w.go, 0, 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, canceller, &w), 0);
	memset(&st1, 0, sizeof(st1));
	fs_err e = sync_with(tab[1], &w, 20, &st1); /* 30 pages of 20 */
	pthread_join(th, NULL);
	cr_expect(w.cancelled, "a sync was running when the cancel came");
	cr_assert_eq(e, FS_ERR_CANCELLED, "%s", fs_strerror(e));
	cr_expect_geq(st1.pulled, 3 * 20, "three pages were committed before the cancel");
	cr_expect_lt(st1.pulled, N_RECORDS, "the sync stopped before the end");
	fs_status stat;
	cr_assert_eq(fs_status_get(tab[1], &stat), FS_OK);
	cr_expect_eq(stat.last_error, FS_ERR_CANCELLED);
	cr_expect_eq(live(tab[1], "note"), st1.pulled, "what was pulled is stored");

	/* a cancel when no sync runs does nothing, not even to the next sync */
	cr_expect_not(fs_sync_cancel(tab[1]));
	w.go_after = -1;
	memset(&st2, 0, sizeof(st2));
	cr_assert_eq(sync_with(tab[1], &w, 20, &st2), FS_OK);
	cr_expect_eq(st1.pulled + st2.pulled, N_RECORDS, "no page was pulled twice, none skipped");
	cr_expect_eq(live(tab[1], "note"), N_RECORDS);

	/* the change feed: each record once, from the daemon; the pages' ranges
	 * cover it without a gap */
	fs_changes *c = NULL;
	cr_assert_eq(fs_changes_since(tab[1], 0, 0, &c), FS_OK);
	cr_assert_eq(c->n, N_RECORDS);
	for (size_t i = 0; i < c->n; i++) {
		cr_assert(c->items[i].remote);
		cr_assert_eq(c->items[i].kind, FS_CHANGE_PUT);
		cr_assert_eq(c->items[i].seq, i + 1);
	}
	fs_changes_free(&c);
	cr_expect_eq(w.first_from, 0);
	cr_expect_eq(w.covered, N_RECORDS);
	cr_expect_eq(w.last_to, N_RECORDS);
	sem_destroy(&w.go);
}

Test(sdk_cancel, a_cancelled_push_loses_nothing_and_applies_once)
{
	fs_sync_stats st1, st2;
	write_many(tab[1], "p", 500); /* 10 change sets of 50 */

	watch w;
	memset(&w, 0, sizeof(w));
	w.s = tab[1];
	w.phase = FS_SYNC_PUSH;
	w.go_after = 1;
	sem_init(&w.go, 0, 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, canceller, &w), 0);
	memset(&st1, 0, sizeof(st1));
	fs_err e = sync_with(tab[1], &w, 0, &st1);
	pthread_join(th, NULL);
	cr_assert_eq(e, FS_ERR_CANCELLED, "%s", fs_strerror(e));
	cr_expect_gt(st1.pushed, 0);
	cr_expect_lt(st1.pushed, 500);
	fs_status stat;
	cr_assert_eq(fs_status_get(tab[1], &stat), FS_OK);
	cr_expect_eq(stat.pending, 500 - st1.pushed, "unacknowledged changes stay queued");

	memset(&st2, 0, sizeof(st2));
	cr_assert_eq(sync_with(tab[1], NULL, 0, &st2), FS_OK);
	cr_expect_eq(st1.pushed + st2.pushed, 500);
	cr_assert_eq(fs_status_get(tab[1], &stat), FS_OK);
	cr_expect_eq(stat.pending, 0);

	/* another tablet sees each change once */
	cr_assert_eq(sync_with(tab[0], NULL, 0, &st1), FS_OK);
	cr_expect_eq(st1.pulled, 500);
	cr_expect_eq(live(tab[0], "note"), 500);
	sem_destroy(&w.go);
}

static void *
cancel_later(void *arg)
{
	fs_store *s = arg;
	usleep(300 * 1000);
	while (!fs_sync_cancel(s)) /* until the sync has begun */
		usleep(10 * 1000);
	return NULL;
}

Test(sdk_cancel, a_cancel_ends_a_wait_for_a_silent_endpoint_at_once)
{
	char ep[64];
	struct timespec a, b;
	fs_sync_opts o;
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", fs_test_free_port()); /* nobody there */
	memset(&o, 0, sizeof(o));
	o.endpoint = ep;
	o.timeout_ms = 20000;
	cr_assert_eq(fs_put(tab[1], "note", "x", NULL, "x", 1), FS_OK);
	pthread_t th;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(pthread_create(&th, NULL, cancel_later, tab[1]), 0);
	fs_err e = fs_sync(tab[1], &o, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(th, NULL);
	cr_assert_eq(e, FS_ERR_CANCELLED, "%s", fs_strerror(e));
	double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_expect_lt(secs, 2.0, "cancelled while waiting, not at the 20 s timeout (%.2f s)", secs);
	fs_status st;
	cr_assert_eq(fs_status_get(tab[1], &st), FS_OK);
	cr_expect_eq(st.pending, 1, "the change waits for the next sync");
}
