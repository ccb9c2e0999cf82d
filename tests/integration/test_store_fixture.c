/*
 * The on-disk-format oracle (issue 9): tests/fixtures/store-v1 holds two
 * data directories written by an older build through its real binaries
 * (the commit is in tests/fixtures/store-v1/MADE-WITH; how: README.md
 * there and make-store-v1.sh). This build must open them as they are:
 *   - `fieldsyncd verify` exits 0 on a copy (with the master key for prod);
 *   - the daemon starts on it (dev/: --dev; prod/: CURVE, master key) and a
 *     pull from 0 gives exactly the records written then: ids, scopes,
 *     sibling counts, payloads, the tombstone and the purge marker;
 *   - Replay from 0 gives the stored reminder events with their seqs;
 *   - a retried change set gets its stored reply byte for byte, and
 *     nothing is applied;
 *   - the same again after a clean restart, and verify after each run.
 * The fixture is copied to a temporary directory: the committed files are
 * never opened by the daemon.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsync/v1/sync.pb-c.h"

#define FIXTURE FS_FIXTURES_DIR "/store-v1"

typedef Fieldsync__V1__Envelope env_t;

/* What make-store-v1.sh wrote, in both stores. */
static const struct want {
	const char *collection, *id, *scope;
	size_t siblings;
	bool deleted, purged;
	const char *payload;        /* the only sibling's bytes, for notes */
	const char *contact_person; /* for cases: the decoded Case */
	const char *case_id;        /* for contacts: the decoded Contact */
} WANT[] = {
	{"note", "n1", "team-a", 1, false, false, "alpha", NULL, NULL},
	{"note", "n2", "team-b", 1, false, false, "beta", NULL, NULL},
	{"note", "n3", "team-a", 1, true, false, NULL, NULL, NULL},
	{"note", "gone", "team-b", 0, false, true, NULL, NULL, NULL},
	{"note", "dup", "team-a", 2, false, false, NULL, NULL, NULL},
	{"case", "case-1", "team-a", 1, false, false, NULL, "staff-7", NULL},
	{"contact", "talk-1", "team-a", 1, false, false, NULL, NULL, "case-1"},
	{"case", "case-2", "team-b", 1, false, false, NULL, "staff-9", NULL},
	{"contact", "talk-2", "team-b", 1, false, false, NULL, NULL, "case-2"},
	{"case", "case-3", "team-a", 1, false, false, NULL, "staff-7", NULL},
};
#define N_WANT (sizeof(WANT) / sizeof(WANT[0]))

typedef struct cred {
	char server[41], pub[41], sec[41];
} cred;

static char g_dir[256], g_data[300], g_key[300];
static void *g_ctx;
static uint64_t g_rid = 100;

static void
setup(void)
{
	char *t = fs_test_tmpdir();
	cr_assert_not_null(t);
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	g_ctx = zmq_ctx_new();
}

static void
teardown(void)
{
	zmq_ctx_term(g_ctx);
	if (getenv("FS_TEST_KEEP") == NULL)
		fs_test_rm_rf(g_dir);
}

TestSuite(store_fixture, .init = setup, .fini = teardown, .timeout = 180);

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Copies the fixture's MODE directory to g_dir/data (and the master key),
 * with the modes the daemon insists on (git keeps only the x bit). */
static void
copy_fixture(const char *mode)
{
	char cmd[2048];
	snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
	snprintf(g_key, sizeof(g_key), "%s/master.key", g_dir);
	snprintf(cmd, sizeof(cmd),
	         "cp -R '%s/%s' '%s' && cp '%s/master.key' '%s' && chmod -R go-rwx '%s' '%s'",
	         FIXTURE, mode, g_data, FIXTURE, g_key, g_data, g_key);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* `fieldsyncd verify` on the copy: exit 0 ("Exit 1 on any problem"). */
static void
verify(bool with_key)
{
	char cmd[2048], out[400];
	snprintf(out, sizeof(out), "%s/verify.txt", g_dir);
	snprintf(cmd, sizeof(cmd), "'%s' verify --data-dir '%s'%s%s >'%s' 2>&1", FS_DAEMON_BIN,
	         g_data, with_key ? " --master-key-file " : "", with_key ? g_key : "", out);
	int rc = system(cmd);
	char *text = read_text(out);
	cr_assert_eq(rc, 0, "fieldsyncd verify on the old store failed:\n%s", text);
	free(text);
}

static cred
read_cred(const char *name)
{
	char path[600];
	cred c;
	snprintf(path, sizeof(path), "%s/%s", FIXTURE, name);
	char *text = read_text(path);
	cJSON *j = cJSON_Parse(text);
	cr_assert_not_null(j, "%s is not JSON", path);
	const char *keys[] = {"server_public_key", "client_public_key", "client_secret_key"};
	char *dst[] = {c.server, c.pub, c.sec};
	for (int i = 0; i < 3; i++) {
		cJSON *v = cJSON_GetObjectItem(j, keys[i]);
		cr_assert(cJSON_IsString(v) && strlen(v->valuestring) == 40, "%s: %s", path, keys[i]);
		memcpy(dst[i], v->valuestring, 41);
	}
	cJSON_Delete(j);
	free(text);
	return c;
}

static void *
dealer(const fs_test_daemon *d, const cred *c)
{
	if (c == NULL)
		return fs_test_dealer(g_ctx, fs_test_daemon_endpoint(d));
	void *s = zmq_socket(g_ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server, 41);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->pub, 41);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->sec, 41);
	cr_assert_eq(zmq_connect(s, fs_test_daemon_endpoint(d)), 0);
	return s;
}

static void
hello(void *s)
{
	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
	h.protocol = 1;
	h.replica_id = "fixture-reader";
	e.request_id = ++g_rid;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	env_t *r = fs_test_call(s, &e, 10000);
	cr_assert_not_null(r, "no answer to Hello");
	cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_WELCOME, "Hello is welcomed");
	fieldsync__v1__envelope__free_unpacked(r, NULL);
}

static bool
payload_is(const ProtobufCBinaryData *p, const char *text)
{
	return p->len == strlen(text) && memcmp(p->data, text, p->len) == 0;
}

/* One record state against what the fixture holds. */
static void
check_state(const Fieldsync__V1__RecordState *rs, const struct want *w)
{
	const char *what = rs->id;
	cr_expect_str_eq(rs->scope, w->scope, "%s: scope", what);
	cr_expect_eq(rs->purged, w->purged, "%s: purge marker", what);
	cr_assert_eq(rs->n_siblings, w->siblings, "%s: %zu siblings, want %zu", what,
	             rs->n_siblings, w->siblings);
	for (size_t k = 0; k < rs->n_siblings; k++) {
		const Fieldsync__V1__Record *r = rs->siblings[k];
		cr_expect_str_eq(r->collection, w->collection, "%s: collection", what);
		cr_expect_str_eq(r->id, w->id, "%s: id", what);
		cr_expect_eq(r->deleted, w->deleted, "%s: tombstone", what);
		cr_expect_not_null(r->version, "%s: a version", what);
		if (r->version != NULL)
			cr_expect_gt(r->version->n_dots, 0, "%s: a version with dots", what);
	}
	if (w->payload != NULL)
		cr_expect(payload_is(&rs->siblings[0]->payload, w->payload), "%s: payload", what);
	if (strcmp(w->id, "dup") == 0) {
		const ProtobufCBinaryData *a = &rs->siblings[0]->payload, *b = &rs->siblings[1]->payload;
		cr_expect((payload_is(a, "dup from a") && payload_is(b, "dup from b")) ||
		                  (payload_is(a, "dup from b") && payload_is(b, "dup from a")),
		          "dup: the two writers' values are the siblings");
	}
	if (w->contact_person != NULL) {
		const ProtobufCBinaryData *p = &rs->siblings[0]->payload;
		Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, p->len, p->data);
		cr_assert_not_null(c, "%s: the Case decodes", what);
		cr_expect_str_eq(c->contact_person, w->contact_person, "%s: contact_person", what);
		cr_expect_gt(c->first_contact_at_ms, 0, "%s: first contact", what);
		fieldsync__v1__case__free_unpacked(c, NULL);
	}
	if (w->case_id != NULL) {
		const ProtobufCBinaryData *p = &rs->siblings[0]->payload;
		Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, p->len, p->data);
		cr_assert_not_null(c, "%s: the Contact decodes", what);
		cr_expect_str_eq(c->case_id, w->case_id, "%s: case_id", what);
		fieldsync__v1__contact__free_unpacked(c, NULL);
	}
}

/* Pulls the whole feed from 0 and checks it holds exactly WANT. */
static void
check_records(void *s)
{
	bool seen[N_WANT] = {false};
	size_t n_records = 0;
	uint64_t since = 0, last = 0;
	for (int page = 0; page < 100; page++) {
		Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		pr.since_seq = since;
		pr.limit = 1000;
		e.request_id = ++g_rid;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
		e.pull = &pr;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r, "no answer to Pull");
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY, "a PullReply");
		const Fieldsync__V1__PullReply *pl = r->pull_reply;
		for (size_t i = 0; i < pl->n_records; i++) {
			const Fieldsync__V1__RecordState *rs = pl->records[i];
			size_t k = 0;
			while (k < N_WANT && !(strcmp(WANT[k].collection, rs->collection) == 0 &&
			                       strcmp(WANT[k].id, rs->id) == 0))
				k++;
			cr_assert_lt(k, N_WANT, "an unexpected record %s/%s", rs->collection, rs->id);
			cr_assert_not(seen[k], "%s/%s twice in the feed", rs->collection, rs->id);
			seen[k] = true;
			cr_expect_gt(rs->seq, last, "%s: feed seqs increase", rs->id);
			last = rs->seq;
			check_state(rs, &WANT[k]);
			n_records++;
		}
		bool more = pl->more;
		since = pl->last_seq;
		fieldsync__v1__envelope__free_unpacked(r, NULL);
		if (!more)
			break;
	}
	cr_assert_eq(n_records, N_WANT, "the feed holds %zu records, want %zu", n_records, N_WANT);
}

static const char *
state_name(int state)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&fieldsync__v1__reminder_event__state__descriptor, state);
	return v != NULL ? v->name : "?";
}

/* Replay from 0: the events stored then, with their seqs, come first (the
 * daemon may have added later ones since: deadlines pass). */
static void
check_events(void *s, const char *mode)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s-events.jsonl", FIXTURE, mode);
	char *text = read_text(path);
	Fieldsync__V1__ReminderEvent **got = NULL;
	size_t n_got = 0;
	env_t *replies[100];
	size_t n_replies = 0;
	uint64_t since = 0;

	for (; n_replies < 100; n_replies++) {
		Fieldsync__V1__ReplayRequest rq = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
		env_t e = FIELDSYNC__V1__ENVELOPE__INIT;
		rq.since_seq = since;
		rq.limit = 1000;
		e.request_id = ++g_rid;
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
		e.replay = &rq;
		env_t *r = fs_test_call(s, &e, 10000);
		cr_assert_not_null(r, "no answer to Replay");
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_REPLAY_REPLY, "a ReplayReply");
		replies[n_replies] = r;
		got = realloc(got, (n_got + r->replay_reply->n_events) * sizeof(*got) + 1);
		cr_assert_not_null(got);
		for (size_t i = 0; i < r->replay_reply->n_events; i++)
			got[n_got++] = r->replay_reply->events[i];
		since = r->replay_reply->last_seq;
		if (!r->replay_reply->more) {
			n_replies++;
			break;
		}
	}
	for (size_t i = 0; i < n_got; i++)
		cr_expect_eq(got[i]->seq, i + 1, "event seqs are 1, 2, ... without a gap");

	size_t n_want = 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"), n_want++) {
		cJSON *j = cJSON_Parse(line);
		cr_assert_not_null(j, "%s: line %zu", path, n_want + 1);
		cr_assert_lt(n_want, n_got, "stored event %zu is not replayed", n_want + 1);
		const Fieldsync__V1__ReminderEvent *ev = got[n_want];
#define WANT_STR(f) \
	cr_expect_str_eq(ev->f, cJSON_GetObjectItem(j, #f)->valuestring, "event %zu: " #f, n_want + 1)
#define WANT_NUM(f) \
	cr_expect_eq((int64_t)ev->f, (int64_t)cJSON_GetObjectItem(j, #f)->valuedouble, \
	             "event %zu: " #f, n_want + 1)
		WANT_NUM(seq);
		WANT_STR(reminder_id);
		WANT_STR(rule);
		WANT_STR(scope);
		WANT_STR(case_id);
		WANT_STR(contact_person);
		WANT_NUM(due_at_ms);
		WANT_NUM(emitted_at_ms);
#undef WANT_STR
#undef WANT_NUM
		cr_expect_str_eq(state_name(ev->state), cJSON_GetObjectItem(j, "state")->valuestring,
		                 "event %zu: state", n_want + 1);
		cJSON_Delete(j);
	}
	cr_assert_gt(n_want, 0, "%s lists events", path);
	free(got);
	for (size_t i = 0; i < n_replies; i++)
		fieldsync__v1__envelope__free_unpacked(replies[i], NULL);
	free(text);
}

static int
unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Each stored change set retried (with another change in it): the stored
 * reply comes back byte for byte, and nothing is applied (check_records
 * afterwards finds n1 without a new sibling). */
static void
check_replies(void *s, const char *mode)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s-replies.txt", FIXTURE, mode);
	char *text = read_text(path);
	size_t n = 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"), n++) {
		char *hex = strchr(line, ' ');
		cr_assert_not_null(hex, "%s: line %zu", path, n + 1);
		*hex++ = '\0';
		size_t len = strlen(hex) / 2;
		uint8_t *want = malloc(len + 1);
		cr_assert_not_null(want);
		for (size_t i = 0; i < len; i++) {
			int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
			cr_assert(hi >= 0 && lo >= 0, "%s: line %zu is not hex", path, n + 1);
			want[i] = (uint8_t)(hi << 4 | lo);
		}

		fs_test_push *p = fs_test_push_new(line);
		fs_test_push_add(p, "note", "n1", "team-a", "fixture-probe:1", false, "probe", 5);
		env_t *r = fs_test_call(s, fs_test_push_envelope(p, ++g_rid), 10000);
		fs_test_push_free(p);
		cr_assert_not_null(r, "no answer to the retried change set %s", line);
		cr_assert_eq(r->body_case, FIELDSYNC__V1__ENVELOPE__BODY_PUSH_REPLY,
		             "change set %s: a PushReply", line);
		size_t got_len = fieldsync__v1__push_reply__get_packed_size(r->push_reply);
		uint8_t *got = malloc(got_len + 1);
		cr_assert_not_null(got);
		fieldsync__v1__push_reply__pack(r->push_reply, got);
		cr_expect(got_len == len && memcmp(got, want, len) == 0,
		          "change set %s: the stored reply, byte for byte", line);
		free(got);
		free(want);
		fieldsync__v1__envelope__free_unpacked(r, NULL);
	}
	cr_assert_gt(n, 0, "%s lists stored replies", path);
	free(text);
}

static fs_test_daemon *
start(bool production)
{
	if (!production)
		return fs_test_daemon_start(g_data);
	const char *args[] = {"--master-key-file", g_key, NULL};
	return fs_test_daemon_start_production(g_data, args);
}

static void
run_on(const char *mode)
{
	bool production = strcmp(mode, "prod") == 0;
	cred device, scheduler;
	if (production) {
		device = read_cred("prod-tablet-a.json");
		scheduler = read_cred("prod-scheduler.json");
	}
	copy_fixture(mode);
	verify(production);
	for (int round = 0; round < 2; round++) {
		fs_test_daemon *d = start(production);
		cr_assert_not_null(d, "round %d: the daemon starts on the %s fixture", round, mode);
		void *s = dealer(d, production ? &device : NULL);
		void *sched = production ? dealer(d, &scheduler) : s;
		hello(s);
		if (sched != s)
			hello(sched);
		check_records(s);
		check_events(sched, mode);
		check_replies(s, mode);
		check_records(s);
		if (sched != s)
			zmq_close(sched);
		zmq_close(s);
		cr_assert_eq(fs_test_daemon_stop(&d), 0, "round %d: a clean stop", round);
		verify(production);
	}
}

Test(store_fixture, a_dev_store_written_by_the_old_build_opens_and_verifies)
{
	run_on("dev");
}

Test(store_fixture, a_production_store_written_by_the_old_build_opens_and_verifies)
{
	run_on("prod");
}
