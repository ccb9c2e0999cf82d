/*
 * Issue 15 against the real fieldsyncd and the real SDK: compressed, lean,
 * streamed pull pages (docs/protocol.md §5.1) and pipelined pushes, beside
 * peers that ask for none of it, and through a small fault proxy that cuts
 * the TCP connection after a given number of bytes in one direction.
 *
 * What is checked (never a time):
 *   - a change set sent compressed is applied once like a plain one; a
 *     declared size over the frame limit is TOO_LARGE, a false one MALFORMED;
 *   - a plain peer sees exactly protocol.md §2/§5 (no new Welcome fields,
 *     plain pages); a peer that asks gets compressed lean pages whose
 *     records, inflated and filled in, are byte for byte the plain ones;
 *   - a streamed pull cut at several byte offsets: after each cut the
 *     checkpoint is never ahead of what the tablet committed (every record
 *     the feed holds at or below it is there), and at the end every record
 *     is there once, with one sibling, with its payload;
 *   - pipelined pushes cut at several offsets, up and down: every change is
 *     acknowledged exactly once over all the syncs, none is left pending,
 *     and the daemon holds each once at version "replica:1".
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>
#include <zstd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define N_RECORDS 1500
#define T_MS 20000
#define T_CUT_MS 3000 /* a cut sync ends when this runs out */

/* ---- the fault proxy ---------------------------------------------------- */

static struct proxy {
	int lfd, port, dport;
	pthread_t th;
	atomic_int stop;
	atomic_long cut_up, cut_down; /* bytes before the cut; -1: never */
	atomic_int cuts;
} P;

static bool
pump(int from, int to, long *left)
{
	char buf[4096];
	size_t want = sizeof(buf);
	if (*left >= 0 && (size_t)*left < want)
		want = (size_t)*left;
	if (want == 0)
		return false;
	ssize_t n = recv(from, buf, want, 0);
	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		off += w;
	}
	if (*left >= 0)
		*left -= n;
	return *left != 0;
}

static void
serve(int cfd)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)P.dport)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int sfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(sfd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(sfd);
		close(cfd);
		return;
	}
	/* Each connection is cut at most once: the limits are taken, then cleared. */
	long up = atomic_exchange(&P.cut_up, -1), down = atomic_exchange(&P.cut_down, -1);
	bool cut = false;
	while (!atomic_load(&P.stop)) {
		struct pollfd pf[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
		if (poll(pf, 2, 50) <= 0)
			continue;
		if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(cfd, sfd, &up)) {
			cut = up == 0;
			break;
		}
		if ((pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(sfd, cfd, &down)) {
			cut = down == 0;
			break;
		}
	}
	if (cut)
		atomic_fetch_add(&P.cuts, 1);
	close(sfd);
	close(cfd);
}

static void *
proxy_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&P.stop)) {
		struct pollfd pf = {P.lfd, POLLIN, 0};
		if (poll(&pf, 1, 50) <= 0)
			continue;
		int cfd = accept(P.lfd, NULL, NULL);
		if (cfd >= 0)
			serve(cfd); /* one connection at a time: a DEALER holds one */
	}
	return NULL;
}

static void
proxy_start(int dport)
{
	memset(&P, 0, sizeof(P));
	P.dport = dport;
	atomic_store(&P.cut_up, -1);
	atomic_store(&P.cut_down, -1);
	P.lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(P.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(P.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(P.lfd, 8), 0);
	getsockname(P.lfd, (struct sockaddr *)&a, &al);
	P.port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&P.th, NULL, proxy_main, NULL), 0);
}

static void
proxy_stop(void)
{
	if (P.lfd <= 0)
		return;
	atomic_store(&P.stop, 1);
	pthread_join(P.th, NULL);
	close(P.lfd);
	P.lfd = 0;
}

/* ---- fixtures ------------------------------------------------------------ */

static fs_test_daemon *d;
static char *dirs[2];
static fs_store *tab[2];
static char proxy_ep[64];

static void
teardown(void)
{
	proxy_stop();
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

TestSuite(fast_sync, .fini = teardown, .timeout = 300);

static void
setup(const char *const *extra)
{
	d = extra ? fs_test_daemon_start_args(NULL, extra) : fs_test_daemon_start(NULL);
	cr_assert_not_null(d, "the daemon must start");
	for (int i = 0; i < 2; i++) {
		dirs[i] = fs_test_tmpdir();
		cr_assert_eq(fs_store_create(dirs[i], "team-a", &tab[i]), FS_OK);
	}
	const char *ep = fs_test_daemon_endpoint(d);
	proxy_start(atoi(strrchr(ep, ':') + 1));
	snprintf(proxy_ep, sizeof(proxy_ep), "tcp://127.0.0.1:%d", P.port);
}

static fs_err
sync_via(fs_store *s, const char *ep, int timeout_ms, unsigned pull_limit, fs_sync_stats *st)
{
	fs_sync_opts o = {0};
	o.endpoint = ep;
	o.timeout_ms = timeout_ms;
	o.pull_limit = pull_limit;
	fs_sync_stats tmp;
	return fs_sync(s, &o, st ? st : &tmp);
}

/* Prose-like text that compresses about as casework does. */
static size_t
payload(char *buf, size_t cap, int i)
{
	static const char *w[] = {"samtale",    "borger",   "hjemmet", "aftale",
	                          "opfølgning", "familien", "netværk", "bekymring",
	                          "støtte",     "møde",     "i dag",   "efter",
	                          "sammen",     "om",       "og",      "med"};
	size_t n = (size_t)snprintf(buf, cap, "{\"n\":%d,\"note\":\"", i);
	unsigned x = (unsigned)i * 2654435761u;
	for (int k = 0; k < 50 && n + 16 < cap; k++) {
		x = x * 1103515245u + 12345u;
		n += (size_t)snprintf(buf + n, cap - n, "%s ", w[(x >> 16) % 16]);
	}
	n += (size_t)snprintf(buf + n, cap - n, "\"}");
	return n;
}

/* Tablet 0 puts n journal records and pushes them (directly, no proxy). */
static void
seed(int n)
{
	char id[32], buf[1024];
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "j%05d", i);
		size_t len = payload(buf, sizeof(buf), i);
		cr_assert_eq(fs_put(tab[0], "journal", id, NULL, buf, len), FS_OK);
	}
	cr_assert_eq(sync_via(tab[0], fs_test_daemon_endpoint(d), T_MS, 0, NULL), FS_OK);
}

/* Record i is on tablet s once, one sibling, with its payload. */
static bool
has_record(fs_store *s, int i)
{
	char id[32], buf[1024];
	fs_record *r = NULL;
	fs_sibling sib;
	snprintf(id, sizeof(id), "j%05d", i);
	size_t len = payload(buf, sizeof(buf), i);
	if (fs_get(s, "journal", id, &r) != FS_OK)
		return false;
	bool ok = fs_record_sibling_count(r) == 1;
	if (ok) {
		fs_record_sibling(r, 0, &sib);
		ok = sib.len == len && memcmp(sib.payload, buf, len) == 0;
	}
	fs_record_free(&r);
	return ok;
}

/* ---- a raw peer ---------------------------------------------------------- */

static void *zctx, *dealer;

static Fieldsync__V1__Welcome *
raw_hello(uint32_t accept, Fieldsync__V1__Envelope **keep)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "raw-peer";
	h.client = "test";
	h.accept_encoding = accept;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	e.request_id = 1;
	*keep = fs_test_call(dealer, &e, T_MS);
	cr_assert_not_null(*keep);
	cr_assert_eq((*keep)->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME);
	return (*keep)->welcome;
}

/* Packed RecordStates of the whole feed, plain pages, one request a page. */
static size_t
raw_plain_feed(uint8_t **out, size_t *lens, uint64_t *seqs, size_t cap)
{
	uint64_t since = 0;
	size_t n = 0;
	for (uint64_t rid = 10;; rid++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 500;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		e.request_id = rid;
		Fieldsync__V1__Envelope *rep = fs_test_call(dealer, &e, T_MS);
		cr_assert_not_null(rep);
		cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
		Fieldsync__V1__PullReply *p = rep->pull_reply;
		cr_assert_eq(p->records_zstd.len, 0, "a plain peer gets plain pages");
		cr_assert_eq(p->records_size, 0);
		for (size_t i = 0; i < p->n_records && n < cap; i++, n++) {
			lens[n] = fieldsync__v1__record_state__get_packed_size(p->records[i]);
			out[n] = malloc(lens[n]);
			fieldsync__v1__record_state__pack(p->records[i], out[n]);
			seqs[n] = p->records[i]->seq;
		}
		since = p->last_seq;
		bool more = p->more;
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
		if (!more)
			return n;
	}
}

static void
fill(char **f, const char *from)
{
	if ((*f)[0] != '\0')
		return;
	if (*f != protobuf_c_empty_string)
		free(*f);
	*f = strdup(from);
}

Test(fast_sync, compressed_and_plain_peers_agree)
{
	setup(NULL);
	seed(N_RECORDS);
	zctx = zmq_ctx_new();
	dealer = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));

	/* a peer that asks for nothing: §2 and §5 exactly */
	Fieldsync__V1__Envelope *keep = NULL;
	Fieldsync__V1__Welcome *w = raw_hello(0, &keep);
	cr_assert_eq(w->encodings, 0);
	cr_assert_eq(w->feed_seq, 0);
	cr_assert_eq(w->max_window, 0);
	fieldsync__v1__envelope__free_unpacked(keep, NULL);
	static uint8_t *plain[N_RECORDS + 10];
	static size_t plen[N_RECORDS + 10];
	static uint64_t pseq[N_RECORDS + 10];
	size_t np = raw_plain_feed(plain, plen, pseq, N_RECORDS + 10);
	cr_assert_eq(np, N_RECORDS);

	/* a peer that asks: zstd, a window of pages, lean siblings */
	w = raw_hello(1, &keep);
	cr_assert_eq(w->encodings, 1);
	cr_assert_gt(w->feed_seq, 0);
	cr_assert_geq(w->max_window, 2);
	uint32_t window = w->max_window;
	fieldsync__v1__envelope__free_unpacked(keep, NULL);
	size_t nz = 0, pages = 0, zipped = 0;
	uint64_t since = 0;
	bool more = true;
	for (uint64_t rid = 100; more; rid++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 200;
		pr.window = window;
		pr.encoding = 1;
		pr.lean = true;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		e.request_id = rid;
		cr_assert(fs_test_send(dealer, &e));
		for (uint32_t k = 0; k < window && more; k++) {
			Fieldsync__V1__Envelope *rep = fs_test_recv(dealer, T_MS);
			cr_assert_not_null(rep, "page %zu of a window must come without asking",
			                   pages);
			cr_assert_eq(rep->request_id, rid);
			cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY);
			Fieldsync__V1__PullReply *p = rep->pull_reply;
			Fieldsync__V1__PullReply *in = p;
			uint8_t *raw = NULL;
			pages++;
			if (p->records_zstd.len != 0) {
				zipped++;
				cr_assert_eq(p->n_records, 0);
				cr_assert_eq(ZSTD_getFrameContentSize(p->records_zstd.data,
				                                      p->records_zstd.len),
				             p->records_size);
				raw = malloc(p->records_size);
				cr_assert_eq(ZSTD_decompress(raw, p->records_size,
				                             p->records_zstd.data,
				                             p->records_zstd.len),
				             p->records_size);
				in = fieldsync__v1__pull_reply__unpack(NULL, p->records_size, raw);
				cr_assert_not_null(in);
				cr_assert_lt(p->records_zstd.len, p->records_size / 2,
				             "prose compresses at least 2x");
			}
			for (size_t i = 0; i < in->n_records; i++, nz++) {
				Fieldsync__V1__RecordState *rs = in->records[i];
				for (size_t j = 0; j < rs->n_siblings; j++) {
					cr_assert_str_empty(rs->siblings[j]->collection,
					                    "lean: implied");
					cr_assert_str_empty(rs->siblings[j]->id);
					cr_assert_str_empty(rs->siblings[j]->scope);
					fill(&rs->siblings[j]->collection, rs->collection);
					fill(&rs->siblings[j]->id, rs->id);
					fill(&rs->siblings[j]->scope, rs->scope);
				}
				cr_assert_lt(nz, np);
				size_t l = fieldsync__v1__record_state__get_packed_size(rs);
				uint8_t *b = malloc(l);
				fieldsync__v1__record_state__pack(rs, b);
				cr_assert(l == plen[nz] && memcmp(b, plain[nz], l) == 0,
				          "record %zu differs from the plain page's", nz);
				free(b);
			}
			since = p->last_seq;
			more = p->more;
			if (in != p)
				fieldsync__v1__pull_reply__free_unpacked(in, NULL);
			free(raw);
			fieldsync__v1__envelope__free_unpacked(rep, NULL);
		}
	}
	cr_assert_eq(nz, np);
	cr_assert_eq(zipped, pages, "every page of 200 records is over the floor");
	cr_assert_eq(fs_test_recv(dealer, 200), NULL, "no page after the last");
	for (size_t i = 0; i < np; i++)
		free(plain[i]);
	zmq_close(dealer);
	zmq_ctx_term(zctx);

	/* the SDK: everything, once; then the up-to-date reconnect pulls nothing */
	fs_sync_stats st;
	cr_assert_eq(sync_via(tab[1], fs_test_daemon_endpoint(d), T_MS, 100, &st), FS_OK);
	cr_assert_eq(st.pulled, N_RECORDS);
	for (int i = 0; i < N_RECORDS; i++)
		cr_assert(has_record(tab[1], i), "record %d", i);
	cr_assert_eq(sync_via(tab[1], fs_test_daemon_endpoint(d), T_MS, 100, &st), FS_OK);
	cr_assert_eq(st.pulled, 0);
}

/* Every record the daemon's feed holds at or below the tablet's checkpoint
 * is on the tablet: the checkpoint is never ahead of the local commit. */
static void
check_checkpoint(fs_store *s, const uint64_t *seqs, size_t n)
{
	fs_status stt;
	cr_assert_eq(fs_status_get(s, &stt), FS_OK);
	for (size_t i = 0; i < n; i++)
		if (seqs[i] <= stt.last_seq)
			cr_assert(has_record(s, (int)i),
			          "checkpoint %llu is ahead: record %zu missing",
			          (unsigned long long)stt.last_seq, i);
}

Test(fast_sync, stream_cut_mid_pull)
{
	setup(NULL);
	seed(N_RECORDS);
	/* the feed's seq of each record, from a plain peer */
	zctx = zmq_ctx_new();
	dealer = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));
	Fieldsync__V1__Envelope *keep = NULL;
	raw_hello(0, &keep);
	fieldsync__v1__envelope__free_unpacked(keep, NULL);
	static uint8_t *plain[N_RECORDS + 10];
	static size_t plen[N_RECORDS + 10];
	static uint64_t pseq[N_RECORDS + 10];
	size_t np = raw_plain_feed(plain, plen, pseq, N_RECORDS + 10);
	cr_assert_eq(np, N_RECORDS);
	for (size_t i = 0; i < np; i++)
		free(plain[i]);
	zmq_close(dealer);
	zmq_ctx_term(zctx);

	/* cuts in the daemon's bytes: in the first page, between and inside
	 * later pages (pseudo-random, fixed), then in the greeting and Welcome */
	long offsets[] = {2500, 9000, 17000, 31000, 52000, 40, 300};
	unsigned x = 12345;
	int failed = 0;
	for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
		x = x * 1103515245u + 12345u;
		long off = offsets[k] + (long)((x >> 16) % 997);
		atomic_store(&P.cut_down, off);
		fs_err err = sync_via(tab[1], proxy_ep, T_CUT_MS, 50, NULL);
		failed += err != FS_OK;
		atomic_store(&P.cut_down, -1);
		check_checkpoint(tab[1], pseq, np);
	}
	cr_assert_geq(failed, 3, "the cuts must end syncs");
	/* and cuts in the tablet's bytes (its requests) */
	long up[] = {30, 200, 420};
	for (size_t k = 0; k < sizeof(up) / sizeof(up[0]); k++) {
		atomic_store(&P.cut_up, up[k]);
		(void)sync_via(tab[1], proxy_ep, T_CUT_MS, 50, NULL);
		atomic_store(&P.cut_up, -1);
		check_checkpoint(tab[1], pseq, np);
	}
	cr_assert_geq(atomic_load(&P.cuts), 3);
	cr_assert_eq(sync_via(tab[1], proxy_ep, T_MS, 50, NULL), FS_OK);
	check_checkpoint(tab[1], pseq, np);
	fs_list *l = NULL;
	cr_assert_eq(fs_list_collection(tab[1], "journal", &l), FS_OK);
	cr_assert_eq(l->n, N_RECORDS, "nothing lost, nothing twice");
	for (size_t i = 0; i < l->n; i++)
		cr_assert_eq(l->items[i].siblings, 1);
	fs_list_free(&l);
	for (int i = 0; i < N_RECORDS; i++)
		cr_assert(has_record(tab[1], i), "record %d", i);
	fs_status stt;
	cr_assert_eq(fs_status_get(tab[1], &stt), FS_OK);
	cr_assert_geq(stt.last_seq, pseq[np - 1]);
}

Test(fast_sync, pipelined_push_cut)
{
	const char *const args[] = {"--max-changes-per-push", "20", NULL};
	setup(args);
	enum { BATCH = 100, EDITS = 6 * BATCH };
	char id[32], buf[1024];
	/* 100 new edits before each sync, so that each has sets to pipeline;
	 * cut the tablet's change sets mid-frame, and the daemon's replies */
	uint64_t acked = 0;
	long cut[6][2] = {{900, -1}, {-1, 200}, {6000, -1}, {-1, 700}, {12000, -1}, {-1, 1500}};
	for (int k = 0; k < 6; k++) {
		for (int i = k * BATCH; i < (k + 1) * BATCH; i++) {
			snprintf(id, sizeof(id), "j%05d", i);
			size_t len = payload(buf, sizeof(buf), i);
			cr_assert_eq(fs_put(tab[1], "journal", id, NULL, buf, len), FS_OK);
		}
		fs_sync_stats st = {0};
		atomic_store(&P.cut_up, cut[k][0]);
		atomic_store(&P.cut_down, cut[k][1]);
		(void)sync_via(tab[1], proxy_ep, T_CUT_MS, 0, &st);
		atomic_store(&P.cut_up, -1);
		atomic_store(&P.cut_down, -1);
		acked += st.pushed;
		cr_assert_eq(st.failed, 0);
	}
	cr_assert_geq(atomic_load(&P.cuts), 4);
	fs_sync_stats st = {0};
	cr_assert_eq(sync_via(tab[1], proxy_ep, T_MS, 0, &st), FS_OK);
	acked += st.pushed;
	cr_assert_eq(acked, EDITS, "every change acknowledged exactly once");
	fs_status stt;
	cr_assert_eq(fs_status_get(tab[1], &stt), FS_OK);
	cr_assert_eq(stt.pending, 0);
	cr_assert_eq(stt.failed, 0);
	/* the daemon holds each once, at its first version */
	cr_assert_eq(sync_via(tab[0], fs_test_daemon_endpoint(d), T_MS, 0, &st), FS_OK);
	cr_assert_eq(st.pulled, EDITS);
	for (int i = 0; i < EDITS; i++) {
		cr_assert(has_record(tab[0], i), "record %d", i);
		fs_record *r = NULL;
		fs_sibling sib;
		snprintf(id, sizeof(id), "j%05d", i);
		cr_assert_eq(fs_get(tab[0], "journal", id, &r), FS_OK);
		fs_record_sibling(r, 0, &sib);
		cr_assert_eq(strcmp(strchr(sib.version, ':'), ":1"), 0, "%s", sib.version);
		fs_record_free(&r);
	}
}

/* Sends push request p with its changes compressed; size: what to declare. */
static Fieldsync__V1__Envelope *
raw_push_zstd(Fieldsync__V1__PushRequest *p, uint64_t rid, int lie)
{
	Fieldsync__V1__PushRequest only = FIELDSYNC__V1__PUSH_REQUEST__INIT, z = *p;
	only.n_changes = p->n_changes;
	only.changes = p->changes;
	size_t len = fieldsync__v1__push_request__get_packed_size(&only);
	uint8_t *raw = malloc(len);
	fieldsync__v1__push_request__pack(&only, raw);
	size_t cap = ZSTD_compressBound(len);
	uint8_t *buf = malloc(cap);
	size_t n = ZSTD_compress(buf, cap, raw, len, 3);
	cr_assert(!ZSTD_isError(n));
	z.n_changes = 0;
	z.changes = NULL;
	z.changes_zstd.data = buf;
	z.changes_zstd.len = n;
	z.changes_size = lie == 0 ? len : lie == 1 ? len - 1 : (uint64_t)1 << 40;
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	e.request_id = rid;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = &z;
	Fieldsync__V1__Envelope *rep = fs_test_call(dealer, &e, T_MS);
	free(raw);
	free(buf);
	cr_assert_not_null(rep);
	return rep;
}

Test(fast_sync, compressed_push_and_bombs)
{
	setup(NULL);
	zctx = zmq_ctx_new();
	dealer = fs_test_dealer(zctx, fs_test_daemon_endpoint(d));
	char buf[1024];
	fs_test_push *tp = fs_test_push_new("zset-1");
	for (int i = 0; i < 10; i++) {
		char id[32];
		snprintf(id, sizeof(id), "j%05d", i);
		size_t len = payload(buf, sizeof(buf), i);
		fs_test_push_add(tp, "journal", id, "team-a", "raw-peer:1", false, buf, len);
	}
	Fieldsync__V1__Envelope *pe = fs_test_push_envelope(tp, 0);
	/* a size over the frame limit: TOO_LARGE, nothing allocated or applied */
	Fieldsync__V1__Envelope *rep = raw_push_zstd(pe->push, 7, 2);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(rep->error->code, FIELDSYNC__V1__ERROR__CODE__TOO_LARGE);
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	/* a size the frame does not have: MALFORMED */
	rep = raw_push_zstd(pe->push, 8, 1);
	cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(rep->error->code, FIELDSYNC__V1__ERROR__CODE__MALFORMED);
	fieldsync__v1__envelope__free_unpacked(rep, NULL);
	/* the real thing: applied like a plain change set, once */
	for (int k = 0; k < 2; k++) {
		rep = raw_push_zstd(pe->push, 9 + (uint64_t)k, 0);
		cr_assert_eq(rep->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY);
		cr_assert_eq(rep->push_reply->n_results, 10);
		for (size_t i = 0; i < 10; i++)
			cr_assert_eq(rep->push_reply->results[i]->status,
			             FIELDSYNC__V1__CHANGE_RESULT__STATUS__APPLIED,
			             "the retry gets the stored reply");
		fieldsync__v1__envelope__free_unpacked(rep, NULL);
	}
	fs_test_push_free(tp);
	zmq_close(dealer);
	zmq_ctx_term(zctx);
	fs_sync_stats st;
	cr_assert_eq(sync_via(tab[1], fs_test_daemon_endpoint(d), T_MS, 0, &st), FS_OK);
	cr_assert_eq(st.pulled, 10);
	for (int i = 0; i < 10; i++)
		cr_assert(has_record(tab[1], i), "record %d", i);
}
