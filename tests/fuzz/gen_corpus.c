/*
 * Writes the committed seed corpus of the fuzz targets:
 *   tests/fuzz/run.sh --regen-corpus
 * (or by hand: build with the generated sync/casework code and run it with
 * the corpus directory as its only argument). The outputs are committed;
 * this program only exists to say how the binary seeds were made. Every
 * seed is small: the fuzzer grows them, the seeds only point the way.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsync/v1/sync.pb-c.h"

static const char *g_root;

static void
die(const char *what)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
put(const char *target, const char *name, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", g_root, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", g_root, target, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die(path);
}

static void
put_text(const char *target, const char *name, const char *text)
{
	put(target, name, text, strlen(text));
}

/* Packs any message into a static buffer (seeds are small). */
static const uint8_t *
packed(const ProtobufCMessage *m, size_t *len)
{
	static uint8_t buf[8192];
	*len = protobuf_c_message_get_packed_size(m);
	if (*len > sizeof(buf)) {
		fprintf(stderr, "gen_corpus: seed too large\n");
		exit(1);
	}
	protobuf_c_message_pack(m, buf);
	return buf;
}

static void
put_msg(const char *target, const char *name, const ProtobufCMessage *m)
{
	size_t len;
	const uint8_t *p = packed(m, &len);
	put(target, name, p, len);
}

/* ---- values ------------------------------------------------------------- */

static Fieldsync__V1__Case
a_case(void)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.person = FIELDSYNC__V1__CASE__PERSON__YOUNG_PERSON;
	c.under_18 = true;
	c.contact_person = "staff-17";
	c.first_contact_at_ms = 1717236000000;
	c.track = FIELDSYNC__V1__CASE__TRACK__INDIVIDUAL;
	c.follow_up_channel = "phone";
	return c;
}

static char *g_participants[] = {"school", "parent"};
static char *g_decisions[] = {"weekly talks"};

static Fieldsync__V1__Contact
a_contact(void)
{
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	c.case_id = "case-1";
	c.kind = FIELDSYNC__V1__CONTACT__KIND__NETWORK_MEETING;
	c.held_at_ms = 1717322400000;
	c.next_at_ms = 1719914400000;
	c.n_participants = 2;
	c.participants = g_participants;
	c.notes = "met at school";
	c.n_decisions = 1;
	c.decisions = g_decisions;
	c.who5 = 64;
	return c;
}

/* Owns the pieces of one record so it can live on the stack. */
typedef struct {
	Fieldsync__V1__Record r;
	Fieldsync__V1__VersionVector vv;
	Fieldsync__V1__Dot dots[3];
	Fieldsync__V1__Dot *dotp[3];
	uint8_t payload[512];
} rec;

static void
rec_init(rec *x, const char *collection, const char *id, const char *scope,
         const char *replica, uint64_t counter)
{
	fieldsync__v1__record__init(&x->r);
	fieldsync__v1__version_vector__init(&x->vv);
	for (int i = 0; i < 3; i++) {
		fieldsync__v1__dot__init(&x->dots[i]);
		x->dotp[i] = &x->dots[i];
	}
	x->dots[0].replica = (char *)replica;
	x->dots[0].counter = counter;
	x->vv.n_dots = 1;
	x->vv.dots = x->dotp;
	x->r.collection = (char *)collection;
	x->r.id = (char *)id;
	x->r.scope = (char *)scope;
	x->r.version = &x->vv;
	x->r.modified_at_ms = 1717236000000;
}

static void
rec_dot(rec *x, const char *replica, uint64_t counter)
{
	x->dots[x->vv.n_dots].replica = (char *)replica;
	x->dots[x->vv.n_dots].counter = counter;
	x->vv.n_dots++;
}

static void
rec_payload(rec *x, const ProtobufCMessage *m)
{
	size_t len;
	const uint8_t *p = packed(m, &len);
	memcpy(x->payload, p, len);
	x->r.payload.data = x->payload;
	x->r.payload.len = len;
}

static void
rec_opaque(rec *x, const char *text)
{
	x->r.payload.data = (uint8_t *)text;
	x->r.payload.len = strlen(text);
}

#define REPLICA_A "3f0e9a52-1c1d-4b7e-9a43-3a1c2b9f0d11"
#define REPLICA_B "9b1d4c7e-52aa-4f0e-8c11-0d2e6f7a8b90"

/* ---- fuzz_envelope ------------------------------------------------------ */

static void
put_push(const char *name, rec *const *rs, size_t n, const char *changeset_id)
{
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	Fieldsync__V1__PushRequest p = FIELDSYNC__V1__PUSH_REQUEST__INIT;
	Fieldsync__V1__Change ch[8], *chp[8];
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__change__init(&ch[i]);
		ch[i].record = &rs[i]->r;
		chp[i] = &ch[i];
	}
	p.changeset_id = (char *)changeset_id;
	p.n_changes = n;
	p.changes = chp;
	e.request_id = 7;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
	e.push = &p;
	put_msg("fuzz_envelope", name, &e.base);
}

static void
envelope_seeds(void)
{
	Fieldsync__V1__Envelope e = FIELDSYNC__V1__ENVELOPE__INIT;
	Fieldsync__V1__Case cs = a_case();
	Fieldsync__V1__Contact ct = a_contact();
	const char *cid = "6c3b9f0e-7d1a-4e2b-8f5c-1a2b3c4d5e6f";

	Fieldsync__V1__Hello h = FIELDSYNC__V1__HELLO__INIT;
	h.protocol = 1;
	h.replica_id = REPLICA_A;
	h.client = "fieldsync-sdk/0.1.0";
	e.request_id = 1;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_HELLO;
	e.hello = &h;
	put_msg("fuzz_envelope", "hello", &e.base);

	/* a push with typed and opaque records and a tombstone */
	rec a, b, c, d;
	rec_init(&a, "case", "case-1", "team-north", REPLICA_A, 1);
	rec_payload(&a, &cs.base);
	rec_init(&b, "contact", "contact-1", "team-north", REPLICA_A, 2);
	rec_payload(&b, &ct.base);
	rec_init(&c, "notes", "n-1", "team.south_2", REPLICA_A, 3);
	rec_dot(&c, REPLICA_B, 1);
	rec_opaque(&c, "opaque bytes \x01\x02");
	rec_init(&d, "contact", "contact-0", "team-north", REPLICA_B, 4);
	d.r.deleted = true;
	put_push("push_typed_opaque", (rec *[]){&a, &b, &c, &d}, 4, cid);

	/* two concurrent values and a resolving one for one record */
	rec m1, m2, m3;
	rec_init(&m1, "notes", "n-2", "team-north", REPLICA_A, 1);
	rec_opaque(&m1, "left");
	rec_init(&m2, "notes", "n-2", "team-north", REPLICA_B, 1);
	rec_opaque(&m2, "right");
	rec_init(&m3, "notes", "n-2", "team-north", REPLICA_A, 2);
	rec_dot(&m3, REPLICA_B, 1);
	rec_opaque(&m3, "both");
	put_push("push_conflict_resolve", (rec *[]){&m1, &m2, &m3, &m1}, 4, cid);

	/* pushes validate_push must refuse */
	rec bad;
	rec_init(&bad, "Case", "x", "team-north", REPLICA_A, 1);
	put_push("push_bad_collection", (rec *[]){&bad}, 1, cid);
	rec_init(&bad, "notes", "x", "team-north", REPLICA_B, 1);
	rec_dot(&bad, REPLICA_A, 1); /* dots not sorted */
	put_push("push_bad_version", (rec *[]){&a, &bad}, 2, cid);
	Fieldsync__V1__Contact bad_ct = a_contact();
	bad_ct.who5 = 200;
	rec_init(&bad, "contact", "x", "team-north", REPLICA_A, 1);
	rec_payload(&bad, &bad_ct.base);
	put_push("push_bad_typed", (rec *[]){&c, &bad}, 2, cid);
	rec_init(&bad, "notes", "x", "team-west", REPLICA_A, 1);
	put_push("push_forbidden_scope", (rec *[]){&bad}, 1, cid);
	rec_init(&bad, "notes", "x", "team-north", REPLICA_A, 1);
	bad.r.deleted = true;
	rec_opaque(&bad, "a tombstone with a payload");
	put_push("push_bad_tombstone", (rec *[]){&bad}, 1, cid);
	put_push("push_no_changeset_id", (rec *[]){&c}, 1, "");

	Fieldsync__V1__PullRequest pr = FIELDSYNC__V1__PULL_REQUEST__INIT;
	pr.since_seq = 42;
	pr.limit = 500;
	fieldsync__v1__envelope__init(&e);
	e.request_id = 2;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL;
	e.pull = &pr;
	put_msg("fuzz_envelope", "pull", &e.base);

	Fieldsync__V1__ReplayRequest rr = FIELDSYNC__V1__REPLAY_REQUEST__INIT;
	rr.since_seq = 1000;
	rr.limit = 100;
	e.request_id = 3;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_REPLAY;
	e.replay = &rr;
	put_msg("fuzz_envelope", "replay", &e.base);

	/* a reply sent where a request is expected: the daemon says MALFORMED */
	Fieldsync__V1__Error er = FIELDSYNC__V1__ERROR__INIT;
	er.code = FIELDSYNC__V1__ERROR__CODE__BUSY;
	er.message = "too many change sets queued";
	er.retry_after_ms = 200;
	e.request_id = 4;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_ERROR;
	e.error = &er;
	put_msg("fuzz_envelope", "error_reply", &e.base);

	Fieldsync__V1__RecordState rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	Fieldsync__V1__Record *sib[] = {&m1.r, &m2.r};
	Fieldsync__V1__RecordState *rsp[] = {&rs};
	Fieldsync__V1__PullReply pl = FIELDSYNC__V1__PULL_REPLY__INIT;
	rs.collection = "notes";
	rs.id = "n-2";
	rs.scope = "team-north";
	rs.seq = 9;
	rs.n_siblings = 2;
	rs.siblings = sib;
	pl.n_records = 1;
	pl.records = rsp;
	pl.last_seq = 9;
	e.request_id = 5;
	e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
	e.pull_reply = &pl;
	put_msg("fuzz_envelope", "pull_reply", &e.base);

	/* an empty frame is a valid Envelope with no body */
	put("fuzz_envelope", "empty", "", 0);
	/* the typed push cut in the middle of a record */
	{
		size_t len;
		rec *rs4[] = {&a, &b};
		Fieldsync__V1__PushRequest p = FIELDSYNC__V1__PUSH_REQUEST__INIT;
		Fieldsync__V1__Change ch[2], *chp[2];
		for (int i = 0; i < 2; i++) {
			fieldsync__v1__change__init(&ch[i]);
			ch[i].record = &rs4[i]->r;
			chp[i] = &ch[i];
		}
		p.changeset_id = (char *)cid;
		p.n_changes = 2;
		p.changes = chp;
		fieldsync__v1__envelope__init(&e);
		e.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PUSH;
		e.push = &p;
		const uint8_t *bytes = packed(&e.base, &len);
		put("fuzz_envelope", "push_truncated", bytes, len * 2 / 3);
	}
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x62, 0x80, 0x80,
	                                  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
	                                  0x12, 0x00, 0xde, 0xad, 0xbe, 0xef};
	put("fuzz_envelope", "garbage", garbage, sizeof(garbage));
}

/* ---- fuzz_payloads ------------------------------------------------------ */

static void
payload_seeds(void)
{
	Fieldsync__V1__Case cs = a_case();
	Fieldsync__V1__Contact ct = a_contact();
	put_msg("fuzz_payloads", "case_valid", &cs.base);
	put_msg("fuzz_payloads", "contact_valid", &ct.base);

	Fieldsync__V1__Case cs2 = a_case();
	cs2.person = FIELDSYNC__V1__CASE__PERSON__PARENT;
	cs2.track = FIELDSYNC__V1__CASE__TRACK__COUNSELLING;
	cs2.anonymous = true;
	cs2.ended_at_ms = 1719914400000;
	cs2.needs_further_support = true;
	cs2.taken_over_by = "municipality";
	cs2.notification_duty_informed = true;
	put_msg("fuzz_payloads", "case_ended", &cs2.base);

	Fieldsync__V1__Case bad_case = a_case();
	bad_case.track = 9;
	put_msg("fuzz_payloads", "case_bad_track", &bad_case.base);
	bad_case = a_case();
	bad_case.first_contact_at_ms = -5;
	put_msg("fuzz_payloads", "case_negative_time", &bad_case.base);

	Fieldsync__V1__Contact bad_ct = a_contact();
	bad_ct.who5 = 101;
	put_msg("fuzz_payloads", "contact_bad_who5", &bad_ct.base);
	bad_ct = a_contact();
	bad_ct.case_id = "";
	put_msg("fuzz_payloads", "contact_no_case", &bad_ct.base);
	bad_ct = a_contact();
	bad_ct.who5 = -1;
	bad_ct.kind = FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP;
	bad_ct.n_participants = 0;
	bad_ct.n_decisions = 0;
	put_msg("fuzz_payloads", "contact_follow_up", &bad_ct.base);

	rec r;
	rec_init(&r, "case", "case-1", "team-north", REPLICA_A, 3);
	rec_dot(&r, REPLICA_B, 1);
	rec_payload(&r, &cs.base);
	put_msg("fuzz_payloads", "record_case", &r.r.base);
	rec_init(&r, "contact", "contact-1", "team-north", REPLICA_B, 1);
	rec_payload(&r, &ct.base);
	put_msg("fuzz_payloads", "record_contact", &r.r.base);
	rec_init(&r, "notes", "n-1", "team.south_2", REPLICA_A, 1);
	rec_opaque(&r, "free text");
	put_msg("fuzz_payloads", "record_opaque", &r.r.base);
	rec_init(&r, "case", "case-1", "team-north", REPLICA_A, 4);
	r.r.deleted = true;
	put_msg("fuzz_payloads", "record_tombstone", &r.r.base);
	static const uint8_t garbage[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	                                  0x80, 0x80, 0x80, 0x22, 0x05, 'a', 'b'};
	put("fuzz_payloads", "garbage", garbage, sizeof(garbage));
}

/* ---- fuzz_rules_config -------------------------------------------------- */

static void
rules_seeds(void)
{
	const char *t = "fuzz_rules_config";
	put_text(t, "docs_example.json",
	         "{\n"
	         "  \"quick-help\":        {\"enabled\": true, \"due\": \"7 days\", \"warning\": \"2 days\"},\n"
	         "  \"counselling-limit\": {\"count\": 5},\n"
	         "  \"treatment-window\":  {\"due\": \"9 months\", \"warning\": \"1 months\", \"count\": 12},\n"
	         "  \"follow-up\":         {\"warning\": \"1 months\"},\n"
	         "  \"handover\":          {\"enabled\": false}\n"
	         "}\n");
	put_text(t, "every_rule.json",
	         "{\"quick-help\":{\"due\":\"0 days\",\"warning\":null},"
	         "\"counselling-limit\":{\"enabled\":true,\"due\":\"2 weeks\",\"count\":1},"
	         "\"treatment-start\":{\"due\":\"10000 days\",\"warning\":\"none\"},"
	         "\"treatment-window\":{\"count\":100,\"due\":\"10000 months\"},"
	         "\"group-course\":{\"due\":\"3 weeks\",\"warning\":\"10000 weeks\"},"
	         "\"parent-session\":{\"due\":\"1 months\"},"
	         "\"network-meeting\":{\"warning\":\"1 days\"},"
	         "\"follow-up\":{\"due\":\"3 months\",\"warning\":\"2 months\"},"
	         "\"handover\":{\"due\":\"1 weeks\"},"
	         "\"notification-duty\":{\"enabled\":false,\"due\":\"1 days\"}}");
	put_text(t, "empty_object.json", "{}");
	put_text(t, "bad_unknown_rule.json", "{\"quik-help\": {}}");
	put_text(t, "bad_duration.json", "{\"quick-help\": {\"due\": \"7 dayz\"}}");
	put_text(t, "bad_range.json", "{\"quick-help\": {\"due\": \"10001 days\"}}");
	put_text(t, "bad_count.json", "{\"counselling-limit\": {\"count\": 2.5}}");
	put_text(t, "bad_count_rule.json", "{\"quick-help\": {\"count\": 3}}");
	put_text(t, "bad_type.json", "{\"handover\": {\"enabled\": \"yes\"}}");
	put_text(t, "bad_twice.json", "{\"handover\": {}, \"handover\": {}}");
	put_text(t, "bad_field_twice.json", "{\"handover\": {\"due\": \"1 days\", \"due\": \"2 days\"}}");
	put_text(t, "bad_network_due.json", "{\"network-meeting\": {\"due\": \"1 days\"}}");
	put_text(t, "bad_not_object.json", "[{\"quick-help\": {}}]");
	put_text(t, "bad_trailing.json", "{} {}");
	put_text(t, "bad_syntax.json", "{\"quick-help\": {\"due\": ");
}

/* ---- fuzz_json_payload -------------------------------------------------- */

static void
json_seeds(void)
{
	const char *t = "fuzz_json_payload";
	put_text(t, "case_full.json",
	         "{\"person\":\"YOUNG_PERSON\",\"anonymous\":false,\"under_18\":true,"
	         "\"contact_person\":\"staff-17\",\"first_contact_at_ms\":1717236000000,"
	         "\"track\":\"INDIVIDUAL\",\"ended_at_ms\":0,\"follow_up_wanted\":true,"
	         "\"follow_up_channel\":\"phone\",\"needs_further_support\":false,"
	         "\"taken_over_by\":\"\",\"notification_duty_informed\":false}");
	put_text(t, "contact_full.json",
	         "{\"case_id\":\"case-1\",\"kind\":\"NETWORK_MEETING\",\"held_at_ms\":1717322400000,"
	         "\"next_at_ms\":1719914400000,\"participants\":[\"school\",\"parent\"],"
	         "\"notes\":\"met at school\",\"decisions\":[\"weekly talks\"],\"who5\":64}");
	put_text(t, "contact_minimal.json", "{\"case_id\": \"c\"}");
	put_text(t, "empty_object.json", "{}");
	put_text(t, "case_unicode.json",
	         "{\"contact_person\":\"\\u00e6\\u00f8\\u00e5 \\ud83d\\ude00\",\"track\":\"GROUP\"}");
	put_text(t, "bad_unknown_field.json", "{\"case_id\":\"c\",\"name\":\"Jane\"}");
	put_text(t, "bad_type.json", "{\"case_id\":\"c\",\"who5\":\"64\"}");
	put_text(t, "bad_enum.json", "{\"person\":\"ADULT\"}");
	put_text(t, "bad_who5.json", "{\"case_id\":\"c\",\"who5\":101}");
	put_text(t, "bad_big_int.json", "{\"first_contact_at_ms\":9007199254740993}");
	put_text(t, "bad_fraction.json", "{\"held_at_ms\":1.5,\"case_id\":\"c\"}");
	put_text(t, "bad_twice.json", "{\"case_id\":\"a\",\"case_id\":\"b\"}");
	put_text(t, "bad_array.json", "{\"case_id\":\"c\",\"participants\":[\"a\",1]}");
	put_text(t, "bad_not_object.json", "[1,2,3]");
	put_text(t, "bad_syntax.json", "{\"case_id\":");
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus CORPUS_DIR\n");
		return 2;
	}
	g_root = argv[1];
	if (mkdir(g_root, 0755) != 0 && errno != EEXIST)
		die(g_root);
	envelope_seeds();
	payload_seeds();
	rules_seeds();
	json_seeds();
	return 0;
}
