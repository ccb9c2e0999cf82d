/*
 * bench_push: durable push throughput and ack latency of fieldsyncd, against
 * a raw-LMDB baseline measured in the same run on the same disk.
 *
 *   baseline   the same records written straight into LMDB, one durable
 *              commit per 1000 puts (what a hand-rolled store would do)
 *   closed     C concurrent DEALER clients, each pushing 100-record change
 *              sets (300-byte payloads) and waiting for each ack: max load
 *   open       64 clients sending at a fixed total rate (default: half of
 *              the 64-client closed-loop rate), latency measured send->ack
 *
 * Every run starts a fresh fieldsyncd --dev in a fresh temp directory. The
 * open loop is run --open-runs times (default 3): its tail is set by the
 * disk's slowest fsyncs, which vary from run to run on a shared machine, and
 * the baseline's own commit latency (p50/p99 of one durable commit of 1000
 * puts) is printed beside it to show what the disk did. The figures go to
 * stdout as a Markdown table; see bench/README.md.
 */
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/merge.h"

static int g_set_size = 100, g_payload = 300;
static double g_seconds = 8.0;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- raw LMDB baseline ---------------------------------------------------- */

/*
 * Writes records for `seconds` (or until `max_records`), so the baseline
 * moves as much data through the page cache and the disk as a daemon run of
 * the same length: a short baseline that fits in the dirty-page cache would
 * flatter it. Keys are 64 interleaved sequences, like 64 clients' ids.
 */
struct baseline {
	double records_per_s;
	double commit_p50_ms, commit_p99_ms, commit_max_ms; /* one durable commit */
};

static struct baseline
baseline_lmdb(double seconds, long max_records)
{
	struct baseline b = {0};
	size_t n_commits = 0, cap_commits = 1024;
	double *commits = malloc(cap_commits * sizeof(*commits));
	char *dir = fs_test_tmpdir();
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	long n = 0;
	char *payload = malloc((size_t)g_payload);
	memset(payload, 'x', (size_t)g_payload);
	mdb_env_create(&env);
	mdb_env_set_mapsize(env, 16ULL << 30);
	if (mdb_env_open(env, dir, 0, 0600) != 0) {
		fprintf(stderr, "baseline: cannot open LMDB\n");
		exit(1);
	}
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, NULL, 0, &dbi);
	double t0 = now_s(), dt = 0;
	for (; n < max_records; n++) {
		char key[64];
		int kl = snprintf(key, sizeof(key), "b%03ld-%08ld-%04ld", n % 64, n / 6400,
		                  (n / 64) % 100);
		MDB_val k = {(size_t)kl, key}, v = {(size_t)g_payload, payload};
		mdb_put(txn, dbi, &k, &v, 0);
		if ((n + 1) % 1000 == 0) {
			double c0 = now_s();
			mdb_txn_commit(txn); /* durable: LMDB fsyncs on commit */
			if (n_commits == cap_commits) {
				cap_commits *= 2;
				commits = realloc(commits, cap_commits * sizeof(*commits));
			}
			commits[n_commits++] = now_s() - c0;
			mdb_txn_begin(env, NULL, 0, &txn);
			if ((dt = now_s() - t0) >= seconds)
				break;
		}
	}
	mdb_txn_commit(txn);
	dt = now_s() - t0;
	mdb_env_close(env);
	fs_test_rm_rf(dir);
	free(dir);
	free(payload);
	b.records_per_s = (double)n / dt;
	if (n_commits > 0) {
		qsort(commits, n_commits, sizeof(*commits), cmp_double);
		b.commit_p50_ms = commits[n_commits / 2] * 1e3;
		b.commit_p99_ms = commits[(size_t)((double)(n_commits - 1) * 0.99)] * 1e3;
		b.commit_max_ms = commits[n_commits - 1] * 1e3;
	}
	free(commits);
	return b;
}

/* ---- fieldsyncd clients --------------------------------------------------- */

struct client {
	int n;
	void *ctx;
	const char *endpoint;
	double rate;     /* change sets per second; 0 = closed loop */
	double deadline; /* stop sending at this time */
	double *lat;     /* latencies in seconds */
	size_t n_lat, cap_lat;
	long records_acked;
	long errors;
};

/*
 * One change set per client, built once; each send rewrites the ids in place
 * (fixed width, so lengths never change) and repacks. Keeps the load
 * generator cheap: it shares the two cores with the daemon.
 */
static fs_test_push *
make_set(int client, const char *payload)
{
	char csid[64], ver[32];
	snprintf(csid, sizeof(csid), "bench-%03d-%08ld", client, 0L);
	snprintf(ver, sizeof(ver), "bench%d:1", client);
	fs_test_push *p = fs_test_push_new(csid);
	for (int i = 0; i < g_set_size; i++) {
		char id[64];
		snprintf(id, sizeof(id), "b%03d-%08ld-%04d", client, 0L, i);
		fs_test_push_add(p, "note", id, "team-a", ver, false, payload, (size_t)g_payload);
	}
	return p;
}

static void
note_latency(struct client *c, double l)
{
	if (c->n_lat == c->cap_lat) {
		c->cap_lat = c->cap_lat ? c->cap_lat * 2 : 1024;
		c->lat = realloc(c->lat, c->cap_lat * sizeof(double));
	}
	c->lat[c->n_lat++] = l;
}

/* Packs change set number `set` of this client into buf (malloc'd). */
static uint8_t *
packed_set(fs_test_push *p, int client, long set, size_t *len)
{
	Fieldsync__V1__Envelope *e = fs_test_push_envelope(p, (uint64_t)set + 1);
	snprintf(e->push->changeset_id, strlen(e->push->changeset_id) + 1, "bench-%03d-%08ld",
	         client, set);
	for (size_t i = 0; i < e->push->n_changes; i++) {
		char *id = e->push->changes[i]->record->id;
		snprintf(id, strlen(id) + 1, "b%03d-%08ld-%04zu", client, set, i);
	}
	*len = fieldsync__v1__envelope__get_packed_size(e);
	uint8_t *buf = malloc(*len);
	fieldsync__v1__envelope__pack(e, buf);
	return buf;
}

/* Reads one reply; returns false when none was there. */
static bool
handle_reply(struct client *c, void *s, double *sent_at, long n_sent)
{
	zmq_msg_t m;
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return false;
	}
	Fieldsync__V1__Envelope *r =
	    fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
	zmq_msg_close(&m);
	double t = now_s();
	if (r != NULL && r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY &&
	    r->request_id >= 1 && (long)r->request_id <= n_sent) {
		note_latency(c, t - sent_at[r->request_id - 1]);
		c->records_acked += (long)r->push_reply->n_results;
	} else {
		c->errors++;
	}
	if (r != NULL)
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	return true; /* an error reply also ends its request */
}

static void *
client_main(void *arg)
{
	struct client *c = arg;
	void *s = fs_test_dealer(c->ctx, c->endpoint);
	char *payload = malloc((size_t)g_payload);
	size_t cap = 1 << 16;
	double *sent_at = calloc(cap, sizeof(double));
	long sent = 0, acked_sets = 0;
	memset(payload, 'p', (size_t)g_payload);
	double start = now_s(), next = start;
	size_t len;
	fs_test_push *set = make_set(c->n, payload);
	uint8_t *buf = packed_set(set, c->n, 0, &len);

	while ((size_t)sent < cap) {
		double t = now_s();
		bool may_send = t < c->deadline &&
		                (c->rate > 0 ? t >= next : sent == acked_sets);
		if (may_send) {
			sent_at[sent] = now_s();
			zmq_send(s, buf, len, 0);
			free(buf);
			sent++;
			buf = packed_set(set, c->n, sent, &len);
			next += c->rate > 0 ? 1.0 / c->rate : 0;
			continue;
		}
		if (t >= c->deadline && acked_sets == sent)
			break;
		if (t > c->deadline + 30)
			break; /* replies lost: give up rather than hang */
		int wait_ms = 100;
		if (c->rate > 0 && t < c->deadline) {
			wait_ms = (int)((next - t) * 1000);
			if (wait_ms < 0)
				wait_ms = 0;
		}
		zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, wait_ms) > 0 && handle_reply(c, s, sent_at, sent))
			acked_sets++;
	}
	free(buf);
	fs_test_push_free(set);
	free(sent_at);
	free(payload);
	zmq_close(s);
	return NULL;
}

struct result {
	double records_per_s, p50_ms, p99_ms, rss_mb, anon_mb;
	long errors;
};

static long
rss_kb(int pid, const char *field)
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

static struct result
run_daemon(int clients, double total_rate)
{
	struct result res = {0};
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	if (d == NULL) {
		fprintf(stderr, "cannot start fieldsyncd\n");
		exit(1);
	}
	void *ctx = zmq_ctx_new();
	struct client *cl = calloc((size_t)clients, sizeof(*cl));
	pthread_t *th = calloc((size_t)clients, sizeof(*th));
	double t0 = now_s();
	for (int i = 0; i < clients; i++) {
		cl[i].n = i;
		cl[i].ctx = ctx;
		cl[i].endpoint = fs_test_daemon_endpoint(d);
		cl[i].rate = total_rate > 0 ? total_rate / clients : 0;
		cl[i].deadline = t0 + g_seconds;
		pthread_create(&th[i], NULL, client_main, &cl[i]);
	}
	size_t n_lat = 0;
	long records = 0;
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		n_lat += cl[i].n_lat;
		records += cl[i].records_acked;
		res.errors += cl[i].errors;
	}
	double dt = now_s() - t0;
	double *all = malloc((n_lat ? n_lat : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < clients; i++) {
		memcpy(all + k, cl[i].lat, cl[i].n_lat * sizeof(double));
		k += cl[i].n_lat;
		free(cl[i].lat);
	}
	qsort(all, n_lat, sizeof(double), cmp_double);
	res.records_per_s = (double)records / dt;
	res.p50_ms = n_lat ? all[n_lat / 2] * 1000 : 0;
	res.p99_ms = n_lat ? all[(size_t)((double)n_lat * 0.99)] * 1000 : 0;
	/* VmHWM counts LMDB's mapped file pages too; RssAnon is the heap alone. */
	res.rss_mb = (double)rss_kb(fs_test_daemon_pid(d), "VmHWM") / 1024.0;
	res.anon_mb = (double)rss_kb(fs_test_daemon_pid(d), "RssAnon") / 1024.0;
	free(all);
	free(cl);
	free(th);
	zmq_ctx_term(ctx);
	fs_test_daemon_stop(&d);
	return res;
}

static void
print_row(const char *name, int clients, const char *rate, struct result r, double base)
{
	printf("| %-22s | %7d | %10s | %10.0f | %6.2f | %6.1f | %6.1f | %8.1f | %8.1f | %6ld |\n",
	       name, clients, rate, r.records_per_s, r.records_per_s / base, r.p50_ms, r.p99_ms,
	       r.rss_mb, r.anon_mb, r.errors);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	int client_counts[8] = {1, 8, 64};
	int n_counts = 3, open_runs = 3;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--baseline-only") == 0) {
			printf("raw LMDB: %.0f records/s\n", baseline_lmdb(g_seconds, 1000000).records_per_s);
			return 0;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			g_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
			n_counts = 0;
			for (char *save = NULL, *t = strtok_r(argv[++i], ",", &save); t && n_counts < 8;
			     t = strtok_r(NULL, ",", &save))
				client_counts[n_counts++] = atoi(t);
		} else if (strcmp(argv[i], "--open-runs") == 0 && i + 1 < argc) {
			open_runs = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: bench_push [--seconds S] [--clients 1,8,64] [--open-runs N]\n");
			return 2;
		}
	}
	printf("bench_push: %d-record change sets, %d-byte payloads, %.0f s per run\n\n",
	       g_set_size, g_payload, g_seconds);
	double burst = baseline_lmdb(60, 200000).records_per_s;
	struct baseline bl = baseline_lmdb(g_seconds, 100000000);
	double base = bl.records_per_s;
	char p50[16], p99[16];
	snprintf(p50, sizeof(p50), "%.1f", bl.commit_p50_ms);
	snprintf(p99, sizeof(p99), "%.1f", bl.commit_p99_ms);
	printf("| run                    | clients | rate       | records/s  | x base | p50 ms | p99 ms | peak RSS | heap MiB | errors |\n");
	printf("|------------------------|---------|------------|------------|--------|--------|--------|----------|----------|--------|\n");
	printf("| %-22s | %7s | %10s | %10.0f | %6.2f | %6s | %6s | %8s | %8s | %6s |\n",
	       "raw LMDB, commit/1000", "-", "-", base, 1.0, p50, p99, "-", "-", "-");
	printf("| %-22s | %7s | %10s | %10.0f | %6.2f | %6s | %6s | %8s | %8s | %6s |\n",
	       "raw LMDB, 200k burst", "-", "-", burst, burst / base, "-", "-", "-", "-", "-");
	double max64 = 0;
	for (int i = 0; i < n_counts; i++) {
		struct result r = run_daemon(client_counts[i], 0);
		print_row("fieldsyncd closed loop", client_counts[i], "max", r, base);
		if (client_counts[i] == 64)
			max64 = r.records_per_s;
	}
	if (max64 > 0) {
		double half = max64 / 2 / g_set_size; /* change sets per second */
		char rate[32];
		snprintf(rate, sizeof(rate), "%.0f r/s", max64 / 2);
		for (int k = 0; k < open_runs; k++) {
			struct result r = run_daemon(64, half);
			print_row("fieldsyncd open loop", 64, rate, r, base);
		}
	}
	printf("\nraw LMDB: p50/p99 are of one durable commit of 1000 puts (max %.1f ms);\n"
	       "fieldsyncd: of one change set, send to durable ack.\n",
	       bl.commit_max_ms);
	return 0;
}
