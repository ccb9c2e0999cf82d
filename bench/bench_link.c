/*
 * bench_link: the tablet on a weak link. The real daemon (fieldsyncd --dev),
 * the real SDK (fs_sync in a child process) and, between them, linksim: a
 * TCP proxy on loopback with a bandwidth limit per direction and a one-way
 * delay of rtt/2 (bench/linksim.c).
 *
 * Data: casework as a team would hold it, generated: cases (small typed
 * records), contacts whose notes, decisions and participants are Danish
 * prose built from a word list below (no personal data), and opaque journal
 * records (JSON text the daemon does not look into). Ids are UUIDs, as
 * tablets make them.
 *
 * Scenarios, on each link:
 *   initial    the daemon holds N records (default 20,000); an empty tablet
 *              syncs them all
 *   day        the tablet makes N/100 local edits offline (200), colleagues
 *              push N/10 records meanwhile (2,000: half new, half updates),
 *              then one sync
 *   reconnect  a sync with nothing to do: how long until the tablet knows
 *              it is up to date
 *
 * For each: wall time of fs_sync (measured in the tablet process), bytes
 * each way and round trips as linksim saw them, fsyncs and wake-ups of the
 * tablet process (strace -f -c over the child: fsync, fdatasync, msync,
 * sync_file_range; poll, ppoll, epoll_wait, epoll_pwait, select, pselect6),
 * and the link's limit: (bytes that must cross, each way) / that way's
 * rate + the round trips a minimal protocol needs (one to connect, one per
 * direction that carries data; a reconnect needs one to ask). "Bytes that
 * must cross" is the zstd -3 size of what the tablet does not have yet: per
 * record its collection, id, version and payload. The baseline sends
 * exactly those compressed bytes as one file over a fresh linksim with the
 * same settings (connect, send the up file, receive the down file).
 *
 *   bench_link [--quick] [--records N] [--links 1,2,3] [--no-strace]
 *              [--burst-bytes N]
 *
 * --quick: 2,000 records on the 5/1 Mbit/s 100 ms link only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <zstd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"
#include "fieldsync/v1/casework.pb-c.h"

#define SCOPE "team-a"
/* Colleagues' replicas (A seeded everything; B works during the day). */
#define REPLICA_A "3d6f0a52-7c1e-4b8e-9a4f-2f0c5e1b7a10"
#define REPLICA_B "8b2e4c91-05d3-4f6a-b7e8-c1a9d3f02e54"
/* For the must-cross size of the tablet's edits: its replica id is a UUID too. */
#define REPLICA_T "c4a7e2d0-9b13-4e5f-8a62-7d0b1f3e9c85"

static double
mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- data ---------------------------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t
rng(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static int
rnd(int n)
{
	return (int)(rng() % (uint64_t)n);
}

static void
uuid(char out[37])
{
	uint64_t a = rng(), b = rng();
	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
	         (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
	         (unsigned)((b >> 48) & 0x3fff) | 0x8000,
	         (unsigned long long)(b & 0xffffffffffffull));
}

/* Everyday Danish of a family-counselling service: no names, no places. */
static const char *const words[] = {
	"og",
	"i",
	"at",
	"det",
	"er",
	"en",
	"til",
	"på",
	"med",
	"for",
	"af",
	"den",
	"som",
	"har",
	"de",
	"ikke",
	"om",
	"var",
	"vi",
	"han",
	"hun",
	"der",
	"men",
	"efter",
	"også",
	"kan",
	"skal",
	"vil",
	"blev",
	"meget",
	"godt",
	"mere",
	"lidt",
	"stadig",
	"igen",
	"nu",
	"hvor",
	"når",
	"fordi",
	"mens",
	"inden",
	"siden",
	"barnet",
	"den unge",
	"forælderen",
	"forældrene",
	"mor",
	"far",
	"familien",
	"skolen",
	"klassen",
	"læreren",
	"pædagogen",
	"sagsbehandleren",
	"psykologen",
	"sundhedsplejersken",
	"kontaktpersonen",
	"netværket",
	"hjemmet",
	"weekenden",
	"ugen",
	"morgenen",
	"aftenen",
	"samtalen",
	"mødet",
	"aftalen",
	"planen",
	"målet",
	"trivsel",
	"søvn",
	"skolegang",
	"fravær",
	"venner",
	"fritid",
	"sport",
	"musik",
	"lektier",
	"madpakke",
	"rutiner",
	"grænser",
	"konflikter",
	"bekymring",
	"uro",
	"glæde",
	"tryghed",
	"tillid",
	"støtte",
	"hjælp",
	"forløb",
	"fortalte",
	"sagde",
	"beskrev",
	"oplevede",
	"ønskede",
	"aftalte",
	"foreslog",
	"mente",
	"viste",
	"fik",
	"gik",
	"kom",
	"havde",
	"ville",
	"kunne",
	"skulle",
	"arbejder",
	"taler",
	"tænker",
	"føler",
	"prøver",
	"hjælper",
	"sover",
	"spiser",
	"leger",
	"følger",
	"bliver",
	"går",
	"ser",
	"hører",
	"får",
	"gør",
	"tager",
	"giver",
	"holder",
	"ny",
	"nye",
	"gammel",
	"lille",
	"stor",
	"svært",
	"nemt",
	"vigtigt",
	"roligt",
	"trist",
	"glad",
	"vred",
	"træt",
	"bedre",
	"dårligere",
	"positivt",
	"tydeligt",
	"åbent",
	"ærligt",
	"fælles",
	"næste",
	"sidste",
	"første",
	"hver",
	"alle",
	"begge",
	"flere",
	"nogle",
	"sammen",
	"hjemme",
	"ude",
	"hos",
	"mellem",
	"under",
	"over",
	"omkring",
	"uden",
	"gennem",
	"ifølge",
	"måske",
	"sikkert",
	"ofte",
	"sjældent",
	"altid",
	"aldrig",
	"hurtigt",
	"langsomt",
	"tidligere",
	"senere",
	"opfølgning",
	"vurdering",
	"handleplan",
	"underretning",
	"samtykke",
	"journal",
	"notat",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const char *const roles[] = {"forælder", "lærer",   "sagsbehandler", "sundhedsplejerske",
                                    "psykolog", "pædagog", "skoleleder",    "kontaktperson"};
static const char *const channels[] = {"meeting", "phone", "sms", "video", "mail"};

/* Appends sentences to b until it holds at least want bytes. */
static void
prose(char *b, size_t cap, size_t want)
{
	size_t n = strlen(b);
	while (n < want && n + 200 < cap) {
		int len = 6 + rnd(12);
		for (int i = 0; i < len; i++) {
			const char *w = words[rnd((int)NWORDS)];
			if (i == 0) {
				n += (size_t)snprintf(b + n, cap - n, "%s%c%s", n > 0 ? " " : "",
				                      (w[0] >= 'a' && w[0] <= 'z') ? w[0] - 32
				                                                   : w[0],
				                      w + 1);
			} else
				n += (size_t)snprintf(b + n, cap - n, " %s", w);
			if (i > 2 && i < len - 2 && rnd(9) == 0)
				n += (size_t)snprintf(b + n, cap - n, ",");
		}
		n += (size_t)snprintf(b + n, cap - n, ".");
	}
}

typedef struct rec {
	const char *coll;
	char id[37];
	uint8_t *payload;
	size_t len;
} rec;

static int64_t day0_ms = 1764547200000; /* 2025-12-01 */

static char case_ids[1 << 16][37];
static int ncases;

static void
make_case(rec *r)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	char staff[16];
	snprintf(staff, sizeof(staff), "staff-%03d", rnd(60));
	c.person = rnd(4) == 0 ? FIELDSYNC__V1__CASE__PERSON__PARENT
	                       : FIELDSYNC__V1__CASE__PERSON__YOUNG_PERSON;
	c.anonymous = rnd(10) == 0;
	c.under_18 = rnd(3) != 0;
	c.contact_person = staff;
	c.first_contact_at_ms = day0_ms - (int64_t)rnd(700) * 86400000 - rnd(86400000);
	c.track = (Fieldsync__V1__Case__Track)rnd(4);
	c.ended_at_ms = rnd(4) == 0 ? c.first_contact_at_ms + (int64_t)rnd(200) * 86400000 : 0;
	c.follow_up_wanted = rnd(2);
	c.follow_up_channel = (char *)channels[rnd(5)];
	c.needs_further_support = rnd(5) == 0;
	c.taken_over_by = rnd(8) == 0 ? "kommunens familieafdeling" : "";
	c.notification_duty_informed = rnd(2);
	r->coll = "case";
	r->len = fieldsync__v1__case__get_packed_size(&c);
	r->payload = malloc(r->len + 1);
	fieldsync__v1__case__pack(&c, r->payload);
	if (ncases < (int)(sizeof(case_ids) / sizeof(case_ids[0])))
		memcpy(case_ids[ncases++], r->id, 37);
}

static void
make_contact(rec *r)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	char notes[1200] = "", d1[300] = "", d2[300] = "";
	char *parts[4], *decisions[2] = {d1, d2};
	c.case_id = ncases > 0 ? case_ids[rnd(ncases)] : "none";
	c.kind = (Fieldsync__V1__Contact__Kind)rnd(6);
	c.held_at_ms = day0_ms - (int64_t)rnd(365) * 86400000 + (int64_t)(8 + rnd(9)) * 3600000;
	c.next_at_ms = rnd(3) == 0 ? 0 : c.held_at_ms + (int64_t)(7 + rnd(21)) * 86400000;
	c.n_participants = (size_t)(1 + rnd(4));
	for (size_t i = 0; i < c.n_participants; i++)
		parts[i] = (char *)roles[rnd(8)];
	c.participants = parts;
	prose(notes, sizeof(notes), (size_t)(200 + rnd(450)));
	c.notes = notes;
	c.n_decisions = (size_t)rnd(3);
	for (size_t i = 0; i < c.n_decisions; i++)
		prose(decisions[i], sizeof(d1), (size_t)(30 + rnd(60)));
	c.decisions = decisions;
	c.who5 = rnd(3) == 0 ? -1 : rnd(101);
	r->coll = "contact";
	r->len = fieldsync__v1__contact__get_packed_size(&c);
	r->payload = malloc(r->len + 1);
	fieldsync__v1__contact__pack(&c, r->payload);
}

static void
make_journal(rec *r)
{
	static const char *const types[] = {"observation", "telefonnotat", "mail", "aftale"};
	char text[1200] = "", body[1400];
	prose(text, sizeof(text), (size_t)(150 + rnd(400)));
	int n = snprintf(body, sizeof(body),
	                 "{\"type\":\"%s\",\"at\":%lld,\"by\":\"staff-%03d\",\"text\":\"%s\"}",
	                 types[rnd(4)], (long long)(day0_ms - (int64_t)rnd(365) * 86400000),
	                 rnd(60), text);
	r->coll = "journal";
	r->len = (size_t)n;
	r->payload = malloc(r->len + 1);
	memcpy(r->payload, body, r->len);
}

/* Record i of the data set: 20% cases, 60% contacts, 20% journal. */
static void
make_record(rec *r)
{
	uuid(r->id);
	int k = rnd(10);
	if (k < 2 || ncases == 0)
		make_case(r);
	else if (k < 8)
		make_contact(r);
	else
		make_journal(r);
}

/* An edit of r: a contact gets new notes (same id and collection). */
static void
make_edit(const rec *r, rec *out)
{
	*out = *r;
	if (strcmp(r->coll, "contact") == 0) {
		make_contact(out);
		memcpy(out->id, r->id, 37);
	} else if (strcmp(r->coll, "case") == 0) {
		int saved = ncases;
		make_case(out);
		ncases = saved;
		memcpy(out->id, r->id, 37);
	} else {
		make_journal(out);
		memcpy(out->id, r->id, 37);
	}
}

/* What must cross: per record collection, id, version and payload, zstd -3. */
typedef struct buf {
	uint8_t *p;
	size_t n, cap;
} buf;

static void
buf_add(buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
frame(buf *b, const rec *r, const char *version)
{
	uint32_t l = (uint32_t)r->len;
	buf_add(b, r->coll, strlen(r->coll) + 1);
	buf_add(b, r->id, strlen(r->id) + 1);
	buf_add(b, version, strlen(version) + 1);
	buf_add(b, &l, 4);
	buf_add(b, r->payload, r->len);
}

static buf
zstd3(const buf *in)
{
	buf out = {0};
	out.cap = ZSTD_compressBound(in->n);
	out.p = malloc(out.cap);
	size_t z = ZSTD_compress(out.p, out.cap, in->p, in->n, 3);
	out.n = ZSTD_isError(z) ? 0 : z;
	return out;
}

/* ---- the daemon's side: colleagues push directly on loopback ------------- */

static int
seed(fs_test_daemon *d, const rec *rs, size_t from, size_t to, const char *version, const char *tag)
{
	void *ctx = zmq_ctx_new();
	void *s = fs_test_dealer(ctx, fs_test_daemon_endpoint(d));
	int rc = 0;
	static uint64_t reqid = 1;
	for (size_t base = from; base < to && rc == 0; base += 500) {
		char csid[64];
		snprintf(csid, sizeof(csid), "%s-%zu", tag, base);
		fs_test_push *p = fs_test_push_new(csid);
		for (size_t i = base; i < base + 500 && i < to; i++)
			fs_test_push_add(p, rs[i].coll, rs[i].id, SCOPE, version, false,
			                 rs[i].payload, rs[i].len);
		Fieldsync__V1__Envelope *r =
			fs_test_call(s, fs_test_push_envelope(p, reqid++), 60000);
		if (r == NULL || r->body_case != FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY)
			rc = -1;
		if (r != NULL)
			fieldsync__v1__envelope__free_unpacked(r, NULL);
		fs_test_push_free(p);
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}

/* ---- linksim --------------------------------------------------------------- */

typedef struct wlink {
	const char *name;
	double down_kbit, up_kbit, rtt_ms;
} wlink;

static const wlink links[] = {
	{"1/0.4 Mbit/s, 300 ms", 1000, 400, 300},
	{"5/1 Mbit/s, 100 ms", 5000, 1000, 100},
	{"20/5 Mbit/s, 40 ms", 20000, 5000, 40},
};

typedef struct simstats {
	unsigned long long conns, up, down, pk_up, pk_down, turns, rts;
} simstats;

typedef struct sim {
	pid_t pid;
	int port;
	char stats[64];
} sim;

static int burst_bytes = 4096;

static int
sim_start_at(sim *s, const wlink *l, int target_port, int listen_port)
{
	char target[32], down[32], up[32], rtt[32], burst[32], listen_at[32];
	snprintf(target, sizeof(target), "127.0.0.1:%d", target_port);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", listen_port);
	snprintf(down, sizeof(down), "%g", l->down_kbit);
	snprintf(up, sizeof(up), "%g", l->up_kbit);
	snprintf(rtt, sizeof(rtt), "%g", l->rtt_ms);
	snprintf(burst, sizeof(burst), "%d", burst_bytes);
	snprintf(s->stats, sizeof(s->stats), "/tmp/bench_link_sim_XXXXXX");
	int fd = mkstemp(s->stats);
	if (fd < 0)
		return -1;
	close(fd);
	int out[2];
	if (pipe(out) != 0)
		return -1;
	s->pid = fork();
	if (s->pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(LINKSIM_BIN, "linksim", "--target", target, "--down-kbit", down, "--up-kbit",
		      up, "--rtt-ms", rtt, "--burst-bytes", burst, "--stats", s->stats, "--listen",
		      listen_at, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *in = fdopen(out[0], "r");
	char line[128];
	s->port = 0;
	if (fgets(line, sizeof(line), in) == NULL ||
	    sscanf(line, "linksim listening 127.0.0.1:%d", &s->port) != 1)
		s->port = -1;
	fclose(in);
	return s->port > 0 ? 0 : -1;
}

/* A linksim on a free port. */
static int
sim_start(sim *s, const wlink *l, int target_port)
{
	return sim_start_at(s, l, target_port, 0);
}

static simstats
sim_stop(sim *s)
{
	simstats st = {0};
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	FILE *f = fopen(s->stats, "r");
	if (f != NULL) {
		if (fscanf(f,
		           "{\"connections\":%llu,\"bytes_up\":%llu,\"bytes_down\":%llu,\"packets_up\":%llu,"
		           "\"packets_down\":%llu,\"turns\":%llu,\"round_trips\":%llu",
		           &st.conns, &st.up, &st.down, &st.pk_up, &st.pk_down, &st.turns,
		           &st.rts) != 7)
			memset(&st, 0, sizeof(st));
		fclose(f);
	}
	unlink(s->stats);
	return st;
}

/* ---- the tablet: a child process, under strace when there is one ---------- */

static char self_exe[4096];
static bool use_strace = true;

typedef struct tabres {
	double secs;
	unsigned long long pushed, pulled, sets;
	int err;
	long fsyncs, wakeups; /* -1: not counted */
} tabres;

/* In the child: one fs_sync; writes "secs pushed pulled sets err". */
static int
tablet_sync_main(const char *store, const char *endpoint, const char *result, bool create)
{
	fs_store *st = NULL;
	fs_err e = create ? fs_store_create(store, SCOPE, &st) : fs_store_open(store, &st);
	if (e != FS_OK)
		return 1;
	fs_sync_opts o = {.endpoint = endpoint, .timeout_ms = 900000};
	fs_sync_stats stats = {0};
	double t0 = mono_s();
	e = fs_sync(st, &o, &stats);
	double dt = mono_s() - t0;
	fs_store_close(&st);
	FILE *f = fopen(result, "w");
	if (f == NULL)
		return 1;
	fprintf(f, "%.4f %llu %llu %llu %d\n", dt, (unsigned long long)stats.pushed,
	        (unsigned long long)stats.pulled, (unsigned long long)stats.changesets, (int)e);
	fclose(f);
	return e == FS_OK ? 0 : 1;
}

static void
parse_strace(const char *path, tabres *r)
{
	FILE *f = fopen(path, "r");
	r->fsyncs = r->wakeups = -1;
	if (f == NULL)
		return;
	r->fsyncs = r->wakeups = 0;
	char line[256];
	while (fgets(line, sizeof(line), f) != NULL) {
		char *tok[8];
		int n = 0;
		for (char *t = strtok(line, " \t\n"); t != NULL && n < 8; t = strtok(NULL, " \t\n"))
			tok[n++] = t;
		if (n < 5 || strchr(tok[0], '.') == NULL)
			continue;
		long calls = atol(tok[3]);
		const char *name = tok[n - 1];
		if (strcmp(name, "fsync") == 0 || strcmp(name, "fdatasync") == 0 ||
		    strcmp(name, "msync") == 0 || strcmp(name, "sync_file_range") == 0)
			r->fsyncs += calls;
		else if (strcmp(name, "total") != 0)
			r->wakeups += calls;
	}
	fclose(f);
}

static tabres
tablet_sync(const char *store, int port, bool create)
{
	tabres r = {.err = -1, .fsyncs = -1, .wakeups = -1};
	char endpoint[64], result[] = "/tmp/bench_link_res_XXXXXX",
			   trace[] = "/tmp/bench_link_st_XXXXXX";
	snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", port);
	int fd = mkstemp(result);
	close(fd);
	fd = mkstemp(trace);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		const char *mode = create ? "create" : "open";
		if (use_strace)
			execlp("strace", "strace", "-f", "-c", "--seccomp-bpf", "-o", trace, "-e",
			       "trace=fsync,fdatasync,msync,sync_file_range,poll,ppoll,epoll_wait,"
			       "epoll_pwait,select,pselect6",
			       self_exe, "--tablet-sync", store, endpoint, result, mode,
			       (char *)NULL);
		execl(self_exe, self_exe, "--tablet-sync", store, endpoint, result, mode,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	FILE *f = fopen(result, "r");
	if (f != NULL) {
		if (fscanf(f, "%lf %llu %llu %llu %d", &r.secs, &r.pushed, &r.pulled, &r.sets,
		           &r.err) != 5)
			r.err = -1;
		fclose(f);
	}
	if (use_strace)
		parse_strace(trace, &r);
	unlink(result);
	unlink(trace);
	return r;
}

/* The day's local edits, offline, in a child (not timed, not traced). */
static int
tablet_edits(const char *store, const rec *edits, size_t n)
{
	pid_t pid = fork();
	if (pid == 0) {
		fs_store *st = NULL;
		fs_err e = fs_store_open(store, &st);
		for (size_t i = 0; i < n && e == FS_OK; i++)
			e = fs_put(st, edits[i].coll, edits[i].id, NULL, edits[i].payload,
			           edits[i].len);
		fs_store_close(&st);
		_exit(e == FS_OK ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* ---- the baseline: one compressed file each way over the same link ---------*/

typedef struct basesrv {
	int lfd;
	const buf *down;
	size_t got_up;
} basesrv;

static bool
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w <= 0 && errno != EINTR)
			return false;
		if (w > 0) {
			b += w;
			n -= (size_t)w;
		}
	}
	return true;
}

static bool
read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r == 0 || (r < 0 && errno != EINTR))
			return false;
		if (r > 0) {
			b += r;
			n -= (size_t)r;
		}
	}
	return true;
}

/* Server: reads [8-byte length][up file], answers [8-byte length][down file]. */
static void *
basesrv_run(void *arg)
{
	basesrv *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	uint64_t n = 0;
	if (fd >= 0 && read_all(fd, &n, 8)) {
		uint8_t *tmp = malloc(n + 1);
		if (read_all(fd, tmp, n))
			s->got_up = n;
		free(tmp);
		uint64_t m = s->down->n;
		write_all(fd, &m, 8);
		write_all(fd, s->down->p, s->down->n);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

typedef struct baseres {
	double secs;
	simstats st;
	bool ok;
} baseres;

static baseres
baseline(const wlink *l, const buf *up, const buf *down)
{
	baseres r = {0};
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
		return r;
	sim s;
	if (sim_start(&s, l, ntohs(sa.sin_port)) != 0)
		return r;
	basesrv srv = {.lfd = lfd, .down = down};
	pthread_t t;
	pthread_create(&t, NULL, basesrv_run, &srv);
	double t0 = mono_s();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in pa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)s.port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint64_t n = up->n, m = 0;
	bool ok = connect(fd, (struct sockaddr *)&pa, sizeof(pa)) == 0 && write_all(fd, &n, 8) &&
	          write_all(fd, up->p, up->n) && read_all(fd, &m, 8) && m == down->n;
	uint8_t *tmp = malloc(m + 1);
	ok = ok && read_all(fd, tmp, m) && memcmp(tmp, down->p, m) == 0;
	r.secs = mono_s() - t0;
	free(tmp);
	close(fd);
	pthread_join(t, NULL);
	close(lfd);
	r.st = sim_stop(&s);
	r.ok = ok && srv.got_up == up->n;
	return r;
}

/* ---- the table -------------------------------------------------------------- */

typedef struct row {
	const wlink *l;
	const char *scenario;
	tabres t;
	simstats st;
	size_t must_up, must_down;
	int min_rts;
	baseres b;
} row;

static double
limit_s(const row *r)
{
	return (double)r->must_down * 8 / (r->l->down_kbit * 1000) +
	       (double)r->must_up * 8 / (r->l->up_kbit * 1000) + r->min_rts * r->l->rtt_ms / 1000;
}

static void
print_row(const row *r)
{
	double lim = limit_s(r);
	char fs[32] = "-", wk[32] = "-";
	if (r->t.fsyncs >= 0) {
		snprintf(fs, sizeof(fs), "%ld", r->t.fsyncs);
		snprintf(wk, sizeof(wk), "%ld", r->t.wakeups);
	}
	unsigned long long recs = r->t.pulled + r->t.pushed;
	char per[32] = "-";
	if (recs > 0)
		snprintf(per, sizeof(per), "%.0f", (double)(r->st.down + r->st.up) / (double)recs);
	printf("| %-21s | %-9s | %8llu / %-6llu | %7.2f | %6.2f | %5.2f | %6.2f | %4.2f | %10llu | %8llu | "
	       "%7zu / %-6zu | %4llu + %-4llu | %6s | %8s | %5s |%s\n",
	       r->l->name, r->scenario, r->t.pulled, r->t.pushed, r->t.secs, lim, r->t.secs / lim,
	       r->b.secs, r->b.secs / lim, r->st.down, r->st.up, r->must_down, r->must_up,
	       r->st.conns, r->st.turns, fs, wk, per, r->t.err == 0 && r->b.ok ? "" : " FAILED");
	fflush(stdout);
}

static bool
parse_links(const char *s, bool sel[3])
{
	sel[0] = sel[1] = sel[2] = false;
	for (; *s; s++) {
		if (*s >= '1' && *s <= '3')
			sel[*s - '1'] = true;
		else if (*s != ',')
			return false;
	}
	return true;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "--tablet-sync") == 0)
		return tablet_sync_main(argv[2], argv[3], argv[4], strcmp(argv[5], "create") == 0);
	long n = 20000;
	bool sel[3] = {true, true, true};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			n = 2000;
			sel[0] = sel[2] = false;
		} else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
			n = atol(argv[++i]);
		else if (strcmp(argv[i], "--links") == 0 && i + 1 < argc) {
			if (!parse_links(argv[++i], sel))
				goto usage;
		} else if (strcmp(argv[i], "--burst-bytes") == 0 && i + 1 < argc)
			burst_bytes = atoi(argv[++i]);
		else if (strcmp(argv[i], "--no-strace") == 0)
			use_strace = false;
		else {
		usage:
			fprintf(stderr,
			        "usage: bench_link [--quick] [--records N] [--links 1,2,3] [--no-strace] "
			        "[--burst-bytes N]\n");
			return 2;
		}
	}
	if (n < 100)
		n = 100;
	ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (sl <= 0)
		return 1;
	self_exe[sl] = '\0';
	if (use_strace && system("strace -V >/dev/null 2>&1") != 0) {
		fprintf(stderr, "bench_link: no strace; fsyncs and wake-ups are not counted\n");
		use_strace = false;
	}
	signal(SIGPIPE, SIG_IGN);

	/* The data: n records, then the day's: n/10 from colleagues (half new,
	 * half updates of records the tablet does not edit), n/100 local edits. */
	size_t n_col = (size_t)n / 10, n_new = n_col / 2, n_upd = n_col - n_new,
	       n_edit = (size_t)n / 100;
	rec *rs = calloc((size_t)n + n_new, sizeof(*rs));
	for (size_t i = 0; i < (size_t)n + n_new; i++)
		make_record(&rs[i]);
	rec *col = calloc(n_col, sizeof(*col)); /* new ones, then updates of the second half */
	for (size_t i = 0; i < n_new; i++)
		col[i] = rs[(size_t)n + i];
	for (size_t i = 0; i < n_upd; i++)
		make_edit(&rs[(size_t)n / 2 + i], &col[n_new + i]);
	rec *edits = calloc(n_edit, sizeof(*edits)); /* contacts from the first half */
	for (size_t i = 0, j = 0; i < n_edit && j < (size_t)n / 2; j++)
		if (strcmp(rs[j].coll, "contact") == 0)
			make_edit(&rs[j], &edits[i++]);

	buf raw_init = {0}, raw_day_down = {0}, raw_day_up = {0}, empty = {0};
	size_t payload_bytes = 0, counts[3] = {0, 0, 0};
	for (long i = 0; i < n; i++) {
		frame(&raw_init, &rs[i], REPLICA_A ":1");
		payload_bytes += rs[i].len;
		counts[rs[i].coll[0] == 'c' ? (rs[i].coll[1] == 'a' ? 0 : 1) : 2]++;
	}
	for (size_t i = 0; i < n_new; i++)
		frame(&raw_day_down, &col[i], REPLICA_B ":1");
	for (size_t i = n_new; i < n_col; i++)
		frame(&raw_day_down, &col[i], REPLICA_A ":1," REPLICA_B ":1");
	for (size_t i = 0; i < n_edit; i++)
		frame(&raw_day_up, &edits[i], REPLICA_A ":1," REPLICA_T ":1");
	buf z_init = zstd3(&raw_init), z_day_down = zstd3(&raw_day_down),
	    z_day_up = zstd3(&raw_day_up);

	printf("bench_link: a tablet (libfieldsync) and fieldsyncd --dev through linksim\n\n");
	printf("data: %ld records (%zu cases, %zu contacts, %zu journal), payloads %.0f bytes on average, "
	       "%.2f MB framed (collection, id, version, payload: %.0f bytes per record), %.2f MB with zstd -3 (%.2fx)\n",
	       n, counts[0], counts[1], counts[2], (double)payload_bytes / (double)n,
	       raw_init.n / 1e6, (double)raw_init.n / (double)n, z_init.n / 1e6,
	       (double)raw_init.n / (double)z_init.n);
	printf("day: %zu local edits (%zu bytes, %zu zstd), %zu colleague records (%zu new, %zu updates; "
	       "%zu bytes, %zu zstd)\n",
	       n_edit, raw_day_up.n, z_day_up.n, n_col, n_new, n_upd, raw_day_down.n, z_day_down.n);
	printf("fsyncs and wake-ups: %s\n\n",
	       use_strace ? "strace -f -c of the tablet process (opening the store and one fs_sync)"
	                  : "not counted");
	printf("| link                  | scenario  | pulled / pushed  | wall s  | limit  | x lim | base s | x lim "
	       "| down bytes | up bytes | must cross dn / up | TCP + turns | fsyncs | wake-ups | B/rec |\n");
	printf("|-----------------------|-----------|------------------|---------|--------|-------|--------|------"
	       "|------------|----------|--------------------|-------------|--------|----------|-------|\n");
	fflush(stdout);

	int failed = 0, nrows = 0;
	row rows[9];
	for (int li = 0; li < 3; li++) {
		if (!sel[li])
			continue;
		const wlink *l = &links[li];
		fs_test_daemon *d = fs_test_daemon_start(NULL);
		if (d == NULL || seed(d, rs, 0, (size_t)n, REPLICA_A ":1", "seed") != 0) {
			fprintf(stderr, "cannot start or seed the daemon\n");
			return 1;
		}
		const char *ep = fs_test_daemon_endpoint(d);
		int dport = atoi(strrchr(ep, ':') + 1);
		char *dir = fs_test_tmpdir();
		char store[600];
		snprintf(store, sizeof(store), "%s/tablet", dir);

		/* initial */
		sim s;
		row r = {.l = l, .scenario = "initial", .must_down = z_init.n, .min_rts = 2};
		if (sim_start(&s, l, dport) != 0)
			return 1;
		r.t = tablet_sync(store, s.port, true);
		/* the tablet reaches this daemon at one address, as in the field
		 * (the SDK keeps the daemon's last Welcome by endpoint): the day's
		 * and the reconnect's linksim listen on the initial one's port */
		int tport = s.port;
		r.st = sim_stop(&s);
		r.b = baseline(l, &empty, &z_init);
		print_row(&r);
		rows[nrows++] = r;
		failed += r.t.err != 0 || r.t.pulled != (unsigned long long)n;

		/* a day's work */
		row dw = {.l = l,
		          .scenario = "day",
		          .must_down = z_day_down.n,
		          .must_up = z_day_up.n,
		          .min_rts = 3};
		if (tablet_edits(store, edits, n_edit) != 0 ||
		    seed(d, col, 0, n_new, REPLICA_B ":1", "day-new") != 0 ||
		    seed(d, col, n_new, n_col, REPLICA_A ":1," REPLICA_B ":1", "day-upd") != 0) {
			fprintf(stderr, "the day's edits failed\n");
			return 1;
		}
		if (sim_start_at(&s, l, dport, tport) != 0)
			return 1;
		dw.t = tablet_sync(store, s.port, false);
		dw.st = sim_stop(&s);
		dw.b = baseline(l, &z_day_up, &z_day_down);
		print_row(&dw);
		rows[nrows++] = dw;
		failed += dw.t.err != 0 || dw.t.pushed != n_edit;

		/* reconnect with nothing to do */
		row rc = {.l = l, .scenario = "reconnect", .min_rts = 2};
		if (sim_start_at(&s, l, dport, tport) != 0)
			return 1;
		rc.t = tablet_sync(store, s.port, false);
		rc.st = sim_stop(&s);
		rc.b = baseline(l, &empty, &empty);
		print_row(&rc);
		rows[nrows++] = rc;
		failed += rc.t.err != 0;

		fs_test_rm_rf(dir);
		free(dir);
		fs_test_daemon_stop(&d);
	}
	printf("\nWhere the time goes (an estimate from linksim's counters): the wire bytes at the link's\n"
	       "rate each way, and the round trips (TCP + turns) x RTT; the rest is the ends' own work, less\n"
	       "what overlapped.\n\n");
	printf("| link                  | scenario  | wall s  | bytes s | round trips s | rest s |\n");
	printf("|-----------------------|-----------|---------|---------|---------------|--------|\n");
	for (int i = 0; i < nrows; i++) {
		const row *r = &rows[i];
		double bytes_s = (double)r->st.down * 8 / (r->l->down_kbit * 1000) +
		                 (double)r->st.up * 8 / (r->l->up_kbit * 1000);
		double rt_s = (double)(r->st.conns + r->st.turns) * r->l->rtt_ms / 1000;
		printf("| %-21s | %-9s | %7.2f | %7.2f | %13.2f | %6.2f |\n", r->l->name,
		       r->scenario, r->t.secs, bytes_s, rt_s, r->t.secs - bytes_s - rt_s);
	}
	printf("\nlimit: must-cross bytes / rate each way + round trips x RTT (initial 2, day 3, reconnect 2);\n"
	       "x lim: wall / limit; base s: the same must-cross bytes as one file over the same link;\n"
	       "down/up bytes: TCP payload through linksim; TCP + turns: connections (one handshake round trip\n"
	       "each) + request-response turns (the client sending after it received); B/rec: wire bytes\n"
	       "both ways per record pulled or pushed.\n");
	return failed == 0 ? 0 : 1;
}
