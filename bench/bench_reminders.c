/*
 * bench_reminders: the reminder engine at scale.
 *
 *   load       N cases (default 1,000,000), each scheduling a quick-help
 *              reminder, pushed in 1000-record change sets by 4 clients
 *   start-up   fieldsyncd restarted on that store: time until it answers
 *              Hello, and its RSS then
 *   lateness   while 8 clients push 100-record change sets flat out, 2000
 *              network-meeting deadlines (due at next_at itself) fall due
 *              5 ms apart; lateness = emitted_at_ms - due_at_ms of each
 *              OVERDUE event, collected over SUB and replay
 *
 *   bench_reminders [--cases N]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"

static double
mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long
proc_kb(int pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return v;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static bool
call_ok(void *s, fs_test_push *p, uint64_t rid)
{
	Fieldsync__V1__Envelope *r = fs_test_call(s, fs_test_push_envelope(p, rid), 120000);
	bool ok = r != NULL && r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY;
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	return ok;
}

/* ---- load: N cases ------------------------------------------------------- */

struct loader {
	void *ctx;
	const char *endpoint;
	long from, to;
	bool ok;
};

static void *
load_main(void *arg)
{
	struct loader *l = arg;
	void *s = fs_test_dealer(l->ctx, l->endpoint);
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	uint8_t buf[64];
	c.first_contact_at_ms = wall_ms();
	c.contact_person = "staff-1";
	size_t len = fieldsync__v1__case__pack(&c, buf);
	l->ok = true;
	for (long base = l->from; base < l->to && l->ok; base += 1000) {
		char csid[64];
		snprintf(csid, sizeof(csid), "load-%ld", base);
		fs_test_push *p = fs_test_push_new(csid);
		for (long i = base; i < base + 1000 && i < l->to; i++) {
			char id[32];
			snprintf(id, sizeof(id), "case-%08ld", i);
			fs_test_push_add(p, "case", id, "team-a", "a:1", false, buf, len);
		}
		l->ok = call_ok(s, p, (uint64_t)base + 1);
		fs_test_push_free(p);
	}
	zmq_close(s);
	return NULL;
}

/* ---- lateness -------------------------------------------------------------- */

struct pusher {
	void *ctx;
	const char *endpoint;
	int n;
	atomic_bool *stop;
	long sets;
};

static void *
push_main(void *arg)
{
	struct pusher *p = arg;
	void *s = fs_test_dealer(p->ctx, p->endpoint);
	char payload[300];
	memset(payload, 'n', sizeof(payload));
	for (long k = 0; !atomic_load(p->stop); k++) {
		char csid[64], ver[32];
		snprintf(csid, sizeof(csid), "noise-%d-%ld", p->n, k);
		snprintf(ver, sizeof(ver), "noise%d:1", p->n);
		fs_test_push *set = fs_test_push_new(csid);
		for (int i = 0; i < 100; i++) {
			char id[48];
			snprintf(id, sizeof(id), "n%d-%ld-%d", p->n, k, i);
			fs_test_push_add(set, "note", id, "team-a", ver, false, payload, sizeof(payload));
		}
		if (call_ok(s, set, (uint64_t)k + 1))
			p->sets++;
		fs_test_push_free(set);
	}
	zmq_close(s);
	return NULL;
}

int
main(int argc, char **argv)
{
	long cases = 1000000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cases") == 0 && i + 1 < argc)
			cases = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_reminders [--cases N]\n");
			return 2;
		}
	}
	char *dir = fs_test_tmpdir();
	char data[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	fs_test_daemon *d = fs_test_daemon_start(data);
	if (d == NULL)
		return 1;
	void *ctx = zmq_ctx_new();

	/* Load. */
	enum { LOADERS = 4 };
	struct loader ld[LOADERS];
	pthread_t th[LOADERS];
	double t0 = mono_s();
	for (int i = 0; i < LOADERS; i++) {
		ld[i] = (struct loader){ctx, fs_test_daemon_endpoint(d), cases * i / LOADERS,
		                        cases * (i + 1) / LOADERS, false};
		pthread_create(&th[i], NULL, load_main, &ld[i]);
	}
	for (int i = 0; i < LOADERS; i++) {
		pthread_join(th[i], NULL);
		if (!ld[i].ok) {
			fprintf(stderr, "load failed\n");
			return 1;
		}
	}
	double load_s = mono_s() - t0;
	long rss_loaded = proc_kb(fs_test_daemon_pid(d), "VmRSS");
	printf("bench_reminders: %ld cases, each with a scheduled quick-help reminder\n\n", cases);
	printf("| measure | value |\n|---|---|\n");
	printf("| load: cases/s (4 clients, 1000 per change set, reminders evaluated in the same txn) | %.0f |\n",
	       (double)cases / load_s);
	printf("| RSS after the load | %.0f MiB |\n", (double)rss_loaded / 1024);
	fflush(stdout);

	/* Restart: start-up time and RSS with N scheduled reminders. */
	fs_test_daemon_kill9(d);
	double t1 = mono_s();
	bool ok = fs_test_daemon_restart(d);
	double start_s = mono_s() - t1;
	if (!ok)
		return 1;
	usleep(500000);
	long rss = proc_kb(fs_test_daemon_pid(d), "VmRSS"), anon = proc_kb(fs_test_daemon_pid(d), "RssAnon");
	printf("| start-up with %ld scheduled reminders (exec to first Welcome) | %.0f ms |\n", cases,
	       start_s * 1000);
	printf("| RSS after start-up (heap only) | %.1f MiB (%.1f MiB) |\n", (double)rss / 1024,
	       (double)anon / 1024);
	fflush(stdout);

	/* Lateness under push load. */
	enum { PUSHERS = 8, MEETINGS = 2000 };
	atomic_bool stop = false;
	struct pusher pu[PUSHERS];
	pthread_t pth[PUSHERS];
	void *sub = zmq_socket(ctx, ZMQ_SUB);
	int zero = 0;
	zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "reminder/network-meeting/", 25);
	zmq_connect(sub, fs_test_daemon_reminder_endpoint(d));
	for (int i = 0; i < PUSHERS; i++) {
		pu[i] = (struct pusher){ctx, fs_test_daemon_endpoint(d), i, &stop, 0};
		pthread_create(&pth[i], NULL, push_main, &pu[i]);
	}
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int64_t first_due = wall_ms() + 3000;
	{
		Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
		uint8_t cbuf[64], tbuf[128];
		size_t clen = fieldsync__v1__case__pack(&c, cbuf);
		fs_test_push *p = fs_test_push_new("meetings-case");
		fs_test_push_add(p, "case", "meeting-case", "team-m", "m:1", false, cbuf, clen);
		bool pushed = call_ok(s, p, 1);
		fs_test_push_free(p);
		for (int base = 0; pushed && base < MEETINGS; base += 500) {
			char csid[32];
			snprintf(csid, sizeof(csid), "meetings-%d", base);
			p = fs_test_push_new(csid);
			for (int i = base; i < base + 500 && i < MEETINGS; i++) {
				Fieldsync__V1__Contact t = FIELDSYNC__V1__CONTACT__INIT;
				char id[32];
				t.case_id = "meeting-case";
				t.kind = FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING;
				t.held_at_ms = first_due - 86400000LL;
				t.next_at_ms = first_due + 5LL * i;
				t.who5 = -1;
				size_t tlen = fieldsync__v1__contact__pack(&t, tbuf);
				snprintf(id, sizeof(id), "meeting-%04d", i);
				fs_test_push_add(p, "contact", id, "team-m", "m:1", false, tbuf, tlen);
			}
			pushed = call_ok(s, p, 2 + (uint64_t)base);
			fs_test_push_free(p);
		}
		if (!pushed) {
			fprintf(stderr, "pushing the meetings failed\n");
			return 1;
		}
	}
	/* Wait until the last one is due, plus a margin, then stop the load. */
	int64_t last_due = first_due + 5LL * (MEETINGS - 1);
	while (wall_ms() < last_due + 2000)
		usleep(100000);
	atomic_store(&stop, true);
	long noise_sets = 0;
	for (int i = 0; i < PUSHERS; i++) {
		pthread_join(pth[i], NULL);
		noise_sets += pu[i].sets;
	}
	/* Every OVERDUE event of those meetings, from the store (replay). */
	int64_t *late = calloc(MEETINGS, sizeof(*late));
	size_t n_late = 0;
	uint64_t since = 0;
	for (bool more = true; more;) {
		Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		rr.since_seq = since;
		rr.limit = 1000;
		e.request_id = 100 + since;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
		e.replay = &rr;
		Fieldsync__V1__Envelope *r = fs_test_call(s, &e, 30000);
		if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY)
			return 1;
		for (size_t i = 0; i < r->replay_reply->n_events; i++) {
			Fieldsync__V1__ReminderEvent *ev = r->replay_reply->events[i];
			if (strcmp(ev->rule, "network-meeting") == 0 &&
			    ev->state == FIELDSYNC__V1__REMINDER_EVENT__STATE__OVERDUE && n_late < MEETINGS)
				late[n_late++] = ev->emitted_at_ms - ev->due_at_ms;
		}
		more = r->replay_reply->more;
		since = r->replay_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	qsort(late, n_late, sizeof(*late), cmp_i64);
	printf("| deadlines fired under load (8 clients pushing, %ld change sets meanwhile) | %zu of %d |\n",
	       noise_sets, n_late, MEETINGS);
	if (n_late > 0)
		printf("| firing lateness p50 / p99 / max | %lld / %lld / %lld ms |\n",
		       (long long)late[n_late / 2], (long long)late[(size_t)((double)n_late * 0.99)],
		       (long long)late[n_late - 1]);
	free(late);
	zmq_close(sub);
	zmq_close(s);

	/* Down for 8 days: every quick-help deadline passed. Restart and time
	 * how long the daemon takes to fire them all (the log grows from
	 * `since`, the head seen above, until it stops). */
	fs_test_daemon_stop(&d);
	const char *eight_days[] = {"--clock-offset-ms", "691200000", NULL};
	double t2 = mono_s();
	d = fs_test_daemon_start_args(data, eight_days);
	if (d == NULL)
		return 1;
	double up_s = mono_s() - t2;
	s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	uint64_t head = since, seen = since;
	double fired_s = 0;
	for (int quiet = 0, rounds = 0; quiet < 10 && rounds < 100000; rounds++) {
		Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		rr.since_seq = head;
		rr.limit = 1000;
		e.request_id = 10000 + (uint64_t)rounds;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
		e.replay = &rr;
		Fieldsync__V1__Envelope *r = fs_test_call(s, &e, 30000);
		if (r == NULL)
			return 1;
		head = r->replay_reply->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (head > seen) {
			seen = head;
			fired_s = mono_s() - t2;
			quiet = 0;
		} else {
			quiet++;
			usleep(100000);
		}
	}
	printf("| restart after 8 days down: first Welcome after | %.0f ms |\n", up_s * 1000);
	printf("| ... all %llu missed deadlines fired (OVERDUE) after | %.1f s |\n",
	       (unsigned long long)(seen - since), fired_s);
	zmq_close(s);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&d);
	fs_test_rm_rf(dir);
	free(dir);
	return 0;
}
