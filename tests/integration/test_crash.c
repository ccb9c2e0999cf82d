/*
 * Acknowledged data survives kill -9: 8 clients push concurrently, the
 * daemon is killed mid-stream, restarted on the same data directory, and
 * every change that was acknowledged must be there.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/merge.h"

enum { CLIENTS = 8, RECORDS_PER_CLIENT = 40, PER_SET = 10, MAX_ROUNDS = 100000 };

struct client {
	int n;
	void *ctx;
	const char *endpoint;
	/* acked[k] = highest acknowledged counter of record k of this client */
	uint64_t acked[RECORDS_PER_CLIENT];
	uint64_t sets_acked;
	atomic_bool *stop;
};

static void *
client_main(void *arg)
{
	struct client *c = arg;
	void *s = fs_test_dealer(c->ctx, c->endpoint);
	uint64_t counter[RECORDS_PER_CLIENT] = {0};
	char replica[16];
	snprintf(replica, sizeof(replica), "c%d", c->n);

	for (int round = 0; round < MAX_ROUNDS && !atomic_load(c->stop); round++) {
		char csid[64];
		int first = (round * PER_SET) % RECORDS_PER_CLIENT;
		snprintf(csid, sizeof(csid), "crash-%d-%d", c->n, round);
		fs_test_push *p = fs_test_push_new(csid);
		uint64_t sent[PER_SET];
		for (int i = 0; i < PER_SET; i++) {
			int k = (first + i) % RECORDS_PER_CLIENT;
			char id[32], ver[32], payload[64];
			sent[i] = ++counter[k];
			snprintf(id, sizeof(id), "c%d-r%d", c->n, k);
			snprintf(ver, sizeof(ver), "%s:%llu", replica, (unsigned long long)sent[i]);
			snprintf(payload, sizeof(payload), "%s=%llu", id, (unsigned long long)sent[i]);
			fs_test_push_add(p, "note", id, "team-a", ver, false, payload, strlen(payload));
		}
		Fieldsync__V1__Envelope *r = fs_test_call(s, fs_test_push_envelope(p, (uint64_t)round + 1), 2000);
		fs_test_push_free(p);
		if (r == NULL)
			break; /* the daemon is gone: what was acked so far is the claim */
		if (r->body_case == FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY &&
		    r->push_reply->n_results == PER_SET &&
		    r->push_reply->results[0]->status == FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED) {
			for (int i = 0; i < PER_SET; i++) {
				int k = (first + i) % RECORDS_PER_CLIENT;
				if (sent[i] > c->acked[k])
					c->acked[k] = sent[i];
			}
			__atomic_add_fetch(&c->sets_acked, 1, __ATOMIC_RELAXED);
		}
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	zmq_close(s);
	return NULL;
}

Test(crash, acknowledged_changes_survive_kill9, .timeout = 120)
{
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	void *ctx = zmq_ctx_new();
	atomic_bool stop = false;
	struct client cl[CLIENTS];
	pthread_t th[CLIENTS];

	for (int i = 0; i < CLIENTS; i++) {
		memset(&cl[i], 0, sizeof(cl[i]));
		cl[i].n = i;
		cl[i].ctx = ctx;
		cl[i].endpoint = fs_test_daemon_endpoint(d);
		cl[i].stop = &stop;
		pthread_create(&th[i], NULL, client_main, &cl[i]);
	}
	/* Let them push for a while, then kill the daemon under load. */
	uint64_t total = 0;
	for (int waited = 0; waited < 20000 && total < 400; waited += 100) {
		usleep(100000);
		total = 0;
		for (int i = 0; i < CLIENTS; i++)
			total += __atomic_load_n(&cl[i].sets_acked, __ATOMIC_RELAXED);
	}
	fs_test_daemon_kill9(d);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);

	total = 0;
	for (int i = 0; i < CLIENTS; i++) {
		cr_expect_gt(cl[i].sets_acked, 0, "client %d got acknowledgements before the kill", i);
		total += cl[i].sets_acked;
	}
	cr_log_info("change sets acknowledged before kill -9: %llu", (unsigned long long)total);

	cr_assert(fs_test_daemon_restart(d), "the daemon restarts on the same data directory");
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	uint64_t stored[CLIENTS][RECORDS_PER_CLIENT];
	memset(stored, 0, sizeof(stored));
	uint64_t since = 0, rid = 1;
	bool more = true;
	while (more) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = rid++;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		Fieldsync__V1__Envelope *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		for (size_t i = 0; i < r->pull_reply->n_records; i++) {
			Fieldsync__V1__RecordState *rs = r->pull_reply->records[i];
			int cn, k;
			cr_assert_eq(sscanf(rs->id, "c%d-r%d", &cn, &k), 2);
			cr_assert_eq(rs->n_siblings, 1, "one writer per record: never a conflict");
			char replica[16];
			snprintf(replica, sizeof(replica), "c%d", cn);
			stored[cn][k] = fsp_vv_get(rs->siblings[0]->version, replica);
			char payload[64];
			snprintf(payload, sizeof(payload), "%s=%llu", rs->id, (unsigned long long)stored[cn][k]);
			cr_expect_eq(rs->siblings[0]->payload.len, strlen(payload));
			cr_expect_eq(memcmp(rs->siblings[0]->payload.data, payload, strlen(payload)), 0,
			             "the stored value belongs to the stored version");
		}
		since = r->pull_reply->last_seq;
		more = r->pull_reply->more;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	for (int i = 0; i < CLIENTS; i++)
		for (int k = 0; k < RECORDS_PER_CLIENT; k++)
			cr_expect_geq(stored[i][k], cl[i].acked[k],
			              "client %d record %d: acked version %llu, stored %llu", i, k,
			              (unsigned long long)cl[i].acked[k], (unsigned long long)stored[i][k]);
	zmq_close(s);
	zmq_ctx_term(ctx);
	cr_expect_eq(fs_test_daemon_stop(&d), 0);
}
