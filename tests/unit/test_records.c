/*
 * records.c and reminder_rows.c checks (what `fieldsyncd verify` asks
 * them), and store.c's hot copy, with real LMDB and a keyring in a fresh
 * temporary directory: a clean store has no problem; a record damaged
 * through the store API, a feed entry gone or pointing nowhere and a reminder
 * row that does not parse are each reported by name; a copy made with
 * store_copy_env opens with the same records.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "fieldsyncd.h"

#define K1 "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char *g_dir;
static store *g_s;
static keyring *g_kr;

static void
setup(void)
{
	char err[300];
	log_set_level(LOG_ERROR);
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir);
	g_s = store_open(g_dir, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(g_s);
	cr_assert_eq(keyring_open(g_dir, NULL, K1, &g_kr, err, sizeof(err)), FSD_OK, "%s", err);
	store_set_keyring(g_s, g_kr);
}

static void
teardown(void)
{
	store_close(&g_s);
	keyring_close(&g_kr);
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(records, .init = setup, .fini = teardown);

/* Writes (collection, id) with one sibling holding text, at a new seq,
 * moving it in the feed from old_seq (0: a new record). */
static void
put_at(const char *collection, const char *id, const char *text, uint64_t old_seq)
{
	store_txn *t = NULL;
	fsp_record r;
	fsp_record *sib[1] = {&r};
	fs_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	fieldsync__v1__record__init(&r);
	r.collection = (char *)collection;
	r.id = (char *)id;
	r.payload.data = (uint8_t *)text;
	r.payload.len = strlen(text);
	rs.collection = (char *)collection;
	rs.id = (char *)id;
	rs.scope = "team-a";
	rs.n_siblings = 1;
	rs.siblings = sib;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	rs.seq = store_next_seq(t);
	cr_assert_eq(records_put(t, &rs, old_seq), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

static void
put(const char *collection, const char *id, const char *text)
{
	put_at(collection, id, text, 0);
}

/* What a check reported: every "who: what" line, joined. */
struct seen {
	char text[4096];
	size_t problems, records, payloads;
};

static void
on_problem(void *arg, const char *who, const char *what)
{
	struct seen *s = arg;
	size_t l = strlen(s->text);
	snprintf(s->text + l, sizeof(s->text) - l, "%s: %s\n", who, what);
	s->problems++;
}

static bool
on_record(void *arg, const fs_record_state *rs)
{
	(void)rs;
	((struct seen *)arg)->records++;
	return true;
}

static void
on_payload(void *arg, const fs_record_state *rs, const char *name, const uint8_t *p, size_t len)
{
	(void)rs;
	(void)name;
	cr_expect(len > 0 && !fss_is_sealed(p, len), "payloads come opened");
	((struct seen *)arg)->payloads++;
}

static fsd_err
check(struct seen *s, records_check_counts *n)
{
	records_check_fns fns = {on_problem, on_record, on_payload, s, false};
	store_txn *t = NULL;
	memset(s, 0, sizeof(*s));
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	fsd_err rc = records_check(t, &fns, n);
	store_read_end(&t);
	return rc;
}

Test(records, a_clean_store_has_no_problem)
{
	struct seen s;
	records_check_counts n;
	put("note", "n-1", "one");
	put("note", "n-2", "two");
	put_at("note", "n-1", "one again", 1); /* moves n-1 in the feed */
	cr_assert_eq(check(&s, &n), FSD_OK);
	cr_expect_eq(s.problems, 0, "%s", s.text);
	cr_expect_eq(n.records, 2);
	cr_expect_eq(n.feed_entries, 2);
	cr_expect_eq(n.payloads, 2);
	cr_expect_eq(n.not_checked, 0);
	cr_expect_eq(n.max_seq, 3);
	cr_expect_eq(s.records, 2);
	cr_expect_eq(s.payloads, 2);
}

Test(records, a_record_that_does_not_decode_is_named)
{
	struct seen s;
	records_check_counts n;
	uint8_t key[FSK_RECORD_KEY_MAX];
	store_txn *t = NULL;
	put("note", "n-1", "one");
	put("note", "n-2", "two");
	size_t kl = fsk_record_key(key, "note", "n-2");
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(store_kv_put(t, &records_table, key, kl, "\xff\xff\xff", 3, false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(check(&s, &n), FSD_OK);
	cr_expect_eq(s.problems, 1, "%s", s.text);
	cr_expect_not_null(strstr(s.text, "record note/n-2: the stored record does not decode"),
	                   "%s", s.text);
	cr_expect_null(strstr(s.text, "n-1"), "%s", s.text);
}

Test(records, a_sealed_payload_that_was_tampered_with_is_named)
{
	struct seen s;
	records_check_counts n;
	uint8_t key[FSK_RECORD_KEY_MAX];
	const void *v;
	size_t vl, kl = fsk_record_key(key, "note", "n-1");
	store_txn *t = NULL;
	put("note", "n-1", "one");
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	cr_assert_eq(store_kv_get(t, &records_table, key, kl, &v, &vl), FSD_OK);
	/* the record frame of one sealed sibling (records.h): 00 01 01 01 */
	cr_assert_gt(vl, 4);
	cr_assert_eq(memcmp(v, "\x00\x01\x01\x01", 4), 0, "framed, sibling 0 marked sealed");
	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, vl - 4, (const uint8_t *)v + 4);
	cr_assert_not_null(rs);
	ProtobufCBinaryData *p = &rs->siblings[0]->payload;
	cr_assert(fss_is_sealed(p->data, p->len), "sealed on disk");
	p->data[p->len - 1] ^= 1;
	uint8_t buf[512];
	memcpy(buf, v, 4);
	size_t bl = 4 + fieldsync__v1__record_state__pack(rs, buf + 4);
	records_free(rs);
	cr_assert_eq(store_kv_put(t, &records_table, key, kl, buf, bl, false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(check(&s, &n), FSD_OK);
	cr_expect_eq(s.problems, 1, "%s", s.text);
	cr_expect_not_null(strstr(s.text, "record note/n-1: a sealed payload does not verify"),
	                   "%s", s.text);
	cr_expect_eq(s.payloads, 0, "a payload that does not open is not handed on");
}

Test(records, a_feed_that_does_not_match_the_records_is_named)
{
	struct seen s;
	records_check_counts n;
	uint8_t seqb[8], key[FSK_RECORD_KEY_MAX];
	store_txn *t = NULL;
	put("note", "n-1", "one");
	put("note", "n-2", "two");
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	fsk_put_be64(seqb, 2); /* n-2's entry goes */
	cr_assert_eq(store_kv_del(t, &records_feed_table, seqb, 8), FSD_OK);
	fsk_put_be64(seqb, 9); /* and one points at nothing */
	size_t kl = fsk_record_key(key, "note", "gone");
	cr_assert_eq(store_kv_put(t, &records_feed_table, seqb, 8, key, kl, false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(check(&s, &n), FSD_OK);
	cr_expect_eq(s.problems, 2, "%s", s.text);
	cr_expect_not_null(strstr(s.text, "record note/n-2: it is not in the feed"), "%s", s.text);
	cr_expect_not_null(
		strstr(s.text, "feed entry at seq 9: it points at note/gone, which is not stored"),
		"%s", s.text);
	cr_expect_eq(n.max_seq, 9, "the feed's highest seq counts");
	store_txn *r = NULL;
	cr_assert_eq(store_read_begin(g_s, &r), FSD_OK);
	cr_expect_lt(store_last_seq(r), n.max_seq, "what verify reports as a meta seq problem");
	store_read_end(&r);
}

Test(records, without_a_keyring_sealed_payloads_are_not_checked)
{
	struct seen s;
	records_check_counts n;
	put("note", "n-1", "one");
	store_set_keyring(g_s, NULL);
	cr_assert_eq(check(&s, &n), FSD_OK);
	cr_expect_eq(s.problems, 0, "%s", s.text);
	cr_expect_eq(n.payloads, 1);
	cr_expect_eq(n.not_checked, 1);
	cr_expect_eq(s.payloads, 0);
}

static bool
note_case(void *arg, const char *case_id)
{
	struct seen *s = arg;
	size_t l = strlen(s->text);
	snprintf(s->text + l, sizeof(s->text) - l, "case %s\n", case_id);
	return true;
}

Test(records, reminder_rows_check_names_bad_rows_and_lists_cases)
{
	struct seen s = {0};
	reminder_rows_check_fns fns = {on_problem, note_case, &s};
	store_txn *t = NULL;
	uint8_t key[REMINDER_KEY_MAX];
	size_t rows = 0;
	reminder_row row = FIELDSYNCD__STORE__REMINDER_ROW__INIT;
	row.case_id = "c1";
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	size_t kl = fsk_case_key(key, sizeof(key), "c1", "r1/c1");
	cr_assert_eq(reminder_rows_put(t, key, kl, &row), FSD_OK);
	kl = fsk_case_key(key, sizeof(key), "c2", "r1/c2");
	cr_assert_eq(store_kv_put(t, &reminders_table, key, kl,
	                          "\xfe"
	                          "K\x01",
	                          3, false),
	             FSD_OK);
	cr_assert_eq(store_kv_put(t, &reminders_table,
	                          "\x09"
	                          "ab",
	                          3, "", 0, false),
	             FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(reminder_rows_check(t, &fns, &rows), FSD_OK);
	store_read_end(&t);
	cr_expect_eq(rows, 3);
	cr_expect_eq(s.problems, 2, "%s", s.text);
	cr_expect_not_null(strstr(s.text, "reminder row (malformed key): its key does not parse"),
	                   "%s", s.text);
	cr_expect_not_null(strstr(s.text, "reminder row r1/c2 of case c2: it does not open"), "%s",
	                   s.text);
	cr_expect_not_null(strstr(s.text, "case c1\n"), "%s", s.text);
	cr_expect_not_null(strstr(s.text, "case c2\n"), "%s", s.text);
}

Test(records, store_copy_env_makes_a_store_that_opens_with_the_same_records)
{
	char copy[700], file[760];
	uint64_t used = 0;
	put("note", "n-1", "one");
	put("note", "n-2", "two");
	cr_assert_eq(store_env_in_use(g_dir, &used), FSD_OK);
	cr_expect_gt(used, 0);

	snprintf(copy, sizeof(copy), "%s/copy", g_dir);
	cr_assert_eq(sys_mkdir_p(copy), FSD_OK);
	snprintf(file, sizeof(file), "%s/data.mdb", copy);
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(store_copy_env(g_dir, fd, true), FSD_OK, "while the store is open");
	cr_assert_eq(close(fd), 0);

	store *c = store_open(copy, 1ULL << 24, 1ULL << 26);
	cr_assert_not_null(c);
	cr_expect_str_eq(store_server_id(c), store_server_id(g_s), "the same store");
	store_set_keyring(c, g_kr);
	store_txn *t = NULL;
	fs_record_state *rs = NULL;
	cr_assert_eq(store_read_begin(c, &t), FSD_OK);
	cr_expect_eq(store_last_seq(t), 2);
	cr_assert_eq(records_get(t, "note", "n-2", &rs), FSD_OK);
	cr_assert_eq(rs->n_siblings, 1);
	cr_expect_eq(rs->siblings[0]->payload.len, 3);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, "two", 3), 0);
	records_free(rs);
	struct seen s;
	records_check_counts n;
	records_check_fns fns = {on_problem, NULL, NULL, &s, false};
	memset(&s, 0, sizeof(s));
	cr_assert_eq(records_check(t, &fns, &n), FSD_OK);
	cr_expect_eq(s.problems, 0, "%s", s.text);
	cr_expect_eq(n.records, 2);
	store_read_end(&t);
	store_close(&c);

	snprintf(file, sizeof(file), "%s/none", g_dir);
	cr_expect_eq(store_env_in_use(file, &used), FSD_NOTFOUND);
}

/* ---- the record frame and sealing only what changed (issue 11) ------------ */

/* The stored value of note/id: its frame head and siblings, unopened. */
static fs_record_state *
raw_state(const char *id, uint8_t head[4])
{
	uint8_t key[FSK_RECORD_KEY_MAX];
	size_t kl = fsk_record_key(key, "note", id), vl;
	const void *v;
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(store_kv_get(t, &records_table, key, kl, &v, &vl), FSD_OK);
	cr_assert_gt(vl, 4);
	memcpy(head, v, 4); /* 00 01 n bits: up to 7 siblings */
	fs_record_state *rs =
		fieldsync__v1__record_state__unpack(NULL, vl - 4, (const uint8_t *)v + 4);
	store_read_end(&t);
	cr_assert_not_null(rs);
	return rs;
}

static fsp_record *
sibling(const char *id, const char *version, const char *text)
{
	fsp_record *r = calloc(1, sizeof(*r));
	fieldsync__v1__record__init(r);
	r->collection = "note";
	r->id = (char *)id;
	r->scope = "team-a";
	r->version = fs_test_vv(version);
	r->payload.data = (uint8_t *)text;
	r->payload.len = strlen(text);
	return r;
}

static void
write_state(const char *id, fsp_record **sibs, size_t n, uint64_t old_seq, bool rewrite)
{
	fs_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	store_txn *t = NULL;
	rs.collection = "note";
	rs.id = (char *)id;
	rs.scope = "team-a";
	rs.n_siblings = n;
	rs.siblings = sibs;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	rs.seq = rewrite ? old_seq : store_next_seq(t);
	cr_assert_eq(rewrite ? records_rewrite(t, &rs) : records_put(t, &rs, old_seq), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

static bool
same_bytes(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

Test(records, a_write_seals_only_the_sibling_that_changed)
{
	uint8_t head[4];
	fsp_record *s[2] = {sibling("h", "a:1", "kept as it was"), sibling("h", "b:1", "first")};
	write_state("h", s, 2, 0, false);
	fs_record_state *before = raw_state("h", head);
	cr_expect_eq(memcmp(head, "\x00\x01\x02\x03", 4), 0, "both marked sealed");

	/* b moves on; a is the same value: its sealed bytes stay as stored */
	fsp_record *s2[2] = {s[0], sibling("h", "b:2", "second")};
	write_state("h", s2, 2, 1, false);
	fs_record_state *after = raw_state("h", head);
	cr_expect(same_bytes(&before->siblings[0]->payload, &after->siblings[0]->payload),
	          "the unchanged sibling is not sealed again");
	cr_expect(!same_bytes(&before->siblings[1]->payload, &after->siblings[1]->payload));

	/* the same version with another value is the merge's INVALID (a reused
	 * dot) and never reaches records_put; should it, a value that does not
	 * seal to the stored length is sealed anew, never swapped for the
	 * stored one */
	fsp_record *s3[2] = {sibling("h", "a:1", "kept as it was, longer"), s2[1]};
	write_state("h", s3, 2, 2, false);
	fs_record_state *rs = NULL;
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "note", "h", &rs), FSD_OK);
	store_read_end(&t);
	cr_assert_eq(rs->n_siblings, 2);
	cr_expect_eq(rs->siblings[0]->payload.len, 22);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, "kept as it was, longer", 22), 0);
	cr_expect_eq(memcmp(rs->siblings[1]->payload.data, "second", 6), 0);
	records_free(rs);

	/* a rewrite (after a re-key) seals everything anew */
	fs_record_state *mid = raw_state("h", head);
	write_state("h", s3, 2, 3, true);
	fs_record_state *re = raw_state("h", head);
	cr_expect(!same_bytes(&mid->siblings[0]->payload, &re->siblings[0]->payload));
	cr_expect(!same_bytes(&mid->siblings[1]->payload, &re->siblings[1]->payload));
	records_free(before);
	records_free(after);
	records_free(mid);
	records_free(re);
	for (int i = 0; i < 2; i++) {
		fsp_vv_free(s[i]->version);
		free(s[i]);
	}
	fsp_vv_free(s2[1]->version);
	free(s2[1]);
	fsp_vv_free(s3[0]->version);
	free(s3[0]);
}

/* A payload that looks like a sealed value, framed well enough. */
static size_t
fake_sealed(uint8_t *buf)
{
	buf[0] = 0xFE;
	buf[1] = 'K';
	buf[2] = 8;
	memcpy(buf + 3, "r:note/x", 8);
	for (int i = 11; i < 64; i++)
		buf[i] = (uint8_t)i;
	return 64;
}

Test(records, without_a_keyring_a_payload_with_the_sealed_header_is_data)
{
	uint8_t fake[64], head[4];
	size_t fl = fake_sealed(fake);
	store_set_keyring(g_s, NULL); /* --dev */
	fsp_record *s = sibling("x", "a:1", "");
	s->payload.data = fake;
	s->payload.len = fl;
	write_state("x", &s, 1, 0, false);
	fs_record_state *raw = raw_state("x", head);
	cr_expect_eq(memcmp(head, "\x00\x01\x01\x00", 4), 0, "stored, marked not sealed");
	records_free(raw);

	fs_record_state *rs = NULL;
	store_txn *t = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "note", "x", &rs), FSD_OK);
	cr_assert_eq(rs->siblings[0]->payload.len, fl);
	cr_expect_eq(memcmp(rs->siblings[0]->payload.data, fake, fl), 0, "byte for byte");
	records_free(rs);
	struct seen sn = {0};
	records_check_counts n;
	records_check_fns fns = {on_problem, NULL, NULL, &sn, false};
	cr_assert_eq(records_check(t, &fns, &n), FSD_OK);
	store_read_end(&t);
	cr_expect_eq(sn.problems, 0, "%s", sn.text);
	cr_expect_eq(n.not_checked, 0, "data, not a sealed value");
	fsp_vv_free(s->version);
	free(s);
}

Test(records, rows_of_the_old_release_are_read_by_the_legacy_rule)
{
	uint8_t key[FSK_RECORD_KEY_MAX], buf[1024], fake[64], *sealed = NULL;
	size_t kl, bl, sl = 0, fl = fake_sealed(fake);
	const char *text = "written by the old release";
	char aad[32];
	int al = snprintf(aad, sizeof(aad), "%s%c%s", "note", 0, "old");
	cr_assert_eq(keyring_seal(g_kr, "r:note/old", aad, (size_t)al, (const uint8_t *)text,
	                          strlen(text), &sealed, &sl),
	             FSD_OK);
	/* bare packed RecordStates, as the old release wrote them */
	fsp_record *s = sibling("old", "a:1", "");
	fs_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	fsp_record *sibs[1] = {s};
	rs.collection = "note";
	rs.scope = "team-a";
	rs.n_siblings = 1;
	rs.siblings = sibs;
	store_txn *t = NULL;
	cr_assert_eq(store_write_begin(g_s, &t), FSD_OK);
	rs.id = "old";
	s->payload.data = sealed;
	s->payload.len = sl;
	rs.seq = store_next_seq(t);
	bl = fieldsync__v1__record_state__pack(&rs, buf);
	cr_assert_neq(buf[0], 0x00);
	kl = fsk_record_key(key, "note", "old");
	cr_assert_eq(store_kv_put(t, &records_table, key, kl, buf, bl, false), FSD_OK);
	rs.id = "olddev";
	s->payload.data = fake;
	s->payload.len = fl;
	rs.seq = store_next_seq(t);
	bl = fieldsync__v1__record_state__pack(&rs, buf);
	kl = fsk_record_key(key, "note", "olddev");
	cr_assert_eq(store_kv_put(t, &records_table, key, kl, buf, bl, false), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	/* with a keyring: the header means sealed, and it opens */
	fs_record_state *got = NULL;
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "note", "old", &got), FSD_OK);
	cr_expect_eq(got->siblings[0]->payload.len, strlen(text));
	cr_expect_eq(memcmp(got->siblings[0]->payload.data, text, strlen(text)), 0);
	records_free(got);
	store_read_end(&t);

	/* without one (a --dev store never had one): the header is data */
	store_set_keyring(g_s, NULL);
	cr_assert_eq(store_read_begin(g_s, &t), FSD_OK);
	cr_assert_eq(records_get(t, "note", "olddev", &got), FSD_OK);
	cr_expect_eq(got->siblings[0]->payload.len, fl);
	cr_expect_eq(memcmp(got->siblings[0]->payload.data, fake, fl), 0);
	records_free(got);
	store_read_end(&t);
	free(sealed);
	fsp_vv_free(s->version);
	free(s);
}
