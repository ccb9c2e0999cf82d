/*
 * libfieldsync's encrypted store (store.c, "ENCRYPTED STORES"): no payload
 * reaches the files in clear - records, outbox and in-flight change sets,
 * also after a real sync with the daemon - the store refuses to open
 * without its key or with another, rekey swaps the key, one data key per
 * case (shared by its contacts) and per other record, and a purge destroys
 * the key with the data. The files are read byte by byte; the key table is
 * read with LMDB directly, with the store closed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../client-sdk/src/internal.h"
#include "daemon.h"
#include "fieldsync/crypto.h"

#define CANARY "CANARY-7f3e-Aarhus-nobody-may-read-this"
#define CANARY_RAW "RAW-CANARY-0b1c-opaque-bytes"

static char *dirs[3];
static fs_store *st[3];
static fs_test_daemon *d;
static uint8_t key1[FSC_KEY_LEN], key2[FSC_KEY_LEN];

static void
setup(void)
{
	for (int i = 0; i < 3; i++) {
		dirs[i] = fs_test_tmpdir();
		cr_assert_not_null(dirs[i]);
	}
	memset(key1, 0x5a, sizeof(key1));
	cr_assert(fsc_new_key(key2));
}

static void
teardown(void)
{
	for (int i = 0; i < 3; i++) {
		fs_store_close(&st[i]);
		fs_test_rm_rf(dirs[i]);
		free(dirs[i]);
		dirs[i] = NULL;
	}
	if (d != NULL)
		fs_test_daemon_stop(&d);
}

TestSuite(sdk_crypto, .init = setup, .fini = teardown, .timeout = 120);

static fs_store_opts
keyed(const uint8_t *key, const char *id, const char *scope)
{
	fs_store_opts o;
	memset(&o, 0, sizeof(o));
	o.key = key;
	o.key_len = FSC_KEY_LEN;
	o.key_id = id;
	o.default_scope = scope;
	return o;
}

static void
put_contact(fs_store *s, const char *id, const char *case_id, const char *notes)
{
	char json[512], why[256];
	uint8_t *p = NULL;
	size_t n = 0;
	snprintf(json, sizeof(json),
	         "{\"case_id\":\"%s\",\"kind\":\"COUNSELLING\",\"held_at_ms\":1711929600000,"
	         "\"notes\":\"%s\"}",
	         case_id, notes);
	cr_assert_eq(fs_json_to_payload("contact", json, strlen(json), &p, &n, why, sizeof(why)),
	             FS_OK, "%s", why);
	cr_assert_eq(fs_put(s, "contact", id, NULL, p, n), FS_OK);
	free(p);
}

static void
put_case(fs_store *s, const char *id)
{
	static const char json[] = "{\"person\":\"PARENT\",\"track\":\"INDIVIDUAL\"}";
	char why[256];
	uint8_t *p = NULL;
	size_t n = 0;
	cr_assert_eq(fs_json_to_payload("case", json, strlen(json), &p, &n, why, sizeof(why)),
	             FS_OK, "%s", why);
	cr_assert_eq(fs_put(s, "case", id, NULL, p, n), FS_OK);
	free(p);
}

/* The notes of contact id as JSON text contains needle. */
static bool
contact_says(fs_store *s, const char *id, const char *needle)
{
	fs_record *r = NULL;
	fs_sibling sb;
	char *json = NULL;
	if (fs_get(s, "contact", id, &r) != FS_OK)
		return false;
	fs_record_sibling(r, 0, &sb);
	bool ok = fs_payload_to_json("contact", sb.payload, sb.len, &json) == FS_OK &&
	          strstr(json, needle) != NULL;
	free(json);
	fs_record_free(&r);
	return ok;
}

static bool
has_bytes(const uint8_t *hay, size_t hl, const void *needle, size_t nl)
{
	for (size_t i = 0; nl <= hl && i + nl <= hl; i++)
		if (memcmp(hay + i, needle, nl) == 0)
			return true;
	return false;
}

/* How many files under dir (recursively) contain needle; *files = files read. */
static int
files_containing(const char *dir, const void *needle, size_t nl, int *files)
{
	int hits = 0;
	DIR *dh = opendir(dir);
	struct dirent *e;
	cr_assert_not_null(dh, "cannot list %s", dir);
	while ((e = readdir(dh)) != NULL) {
		char path[1024];
		struct stat sb;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert_eq(lstat(path, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			hits += files_containing(path, needle, nl, files);
			continue;
		}
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f, "cannot read %s", path);
		uint8_t *buf = malloc((size_t)sb.st_size + 1);
		cr_assert_not_null(buf);
		size_t got = fread(buf, 1, (size_t)sb.st_size, f);
		fclose(f);
		cr_assert_eq(got, (size_t)sb.st_size, "read all of %s", path);
		hits += has_bytes(buf, got, needle, nl);
		(*files)++;
		free(buf);
	}
	closedir(dh);
	return hits;
}

static int
hits(int i, const char *needle)
{
	int files = 0;
	int h = files_containing(dirs[i], needle, strlen(needle), &files);
	cr_assert_geq(files, 2, "data.mdb and lock.mdb were read");
	return h;
}

static fs_err
sync_with(fs_store *s)
{
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.endpoint = fs_test_daemon_endpoint(d);
	o.timeout_ms = 20000;
	return fs_sync(s, &o, NULL);
}

Test(sdk_crypto, the_scan_finds_a_canary_in_a_plain_store)
{
	/* the control: the same writes in a plain store are found by the scan */
	cr_assert_eq(fs_store_create(dirs[0], "team-a", &st[0]), FS_OK);
	cr_expect_not(fs_store_encrypted(st[0]));
	put_contact(st[0], "x1", "c1", CANARY);
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, CANARY_RAW, strlen(CANARY_RAW)), FS_OK);
	fs_store_close(&st[0]);
	cr_expect_gt(hits(0, CANARY), 0);
	cr_expect_gt(hits(0, CANARY_RAW), 0);
}

Test(sdk_crypto, no_payload_reaches_the_files_before_during_and_after_a_sync)
{
	fs_store_opts o1 = keyed(key1, "tab-k1", "team-a"), o2 = keyed(key2, "tab-k2", "team-a");
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	cr_expect(fs_store_encrypted(st[0]));
	put_case(st[0], "c1");
	put_contact(st[0], "x1", "c1", CANARY);
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, CANARY_RAW, strlen(CANARY_RAW)), FS_OK);

	/* a change set in flight (made, never answered) holds payloads too */
	uint64_t key = 0;
	uint8_t *bytes = NULL;
	size_t len = 0;
	cr_assert_eq(sdk_push_prepare(st[0], 100, 1 << 20, &key, &bytes, &len), FS_OK);
	cr_expect(has_bytes(bytes, len, CANARY, strlen(CANARY)),
	          "what goes to the daemon is the plaintext");
	free(bytes);
	bytes = NULL;
	cr_assert_eq(sdk_inflight_next(st[0], &(uint64_t){0}, &bytes, &len), FS_OK);
	cr_expect(has_bytes(bytes, len, CANARY, strlen(CANARY)), "and so is a resend");
	free(bytes);
	fs_store_close(&st[0]);
	cr_expect_eq(hits(0, CANARY), 0, "records, outbox and in-flight set are sealed");
	cr_expect_eq(hits(0, CANARY_RAW), 0);
	cr_expect_eq(files_containing(dirs[0], key1, sizeof(key1), &(int){0}), 0,
	             "the store key is not in the files");

	/* a real sync: the in-flight set is resent, then a second tablet pulls */
	d = fs_test_daemon_start(NULL);
	cr_assert_not_null(d);
	cr_assert_eq(fs_store_open_ex(dirs[0], &o1, &st[0]), FS_OK);
	cr_assert_eq(sync_with(st[0]), FS_OK);
	fs_status ss;
	cr_assert_eq(fs_status_get(st[0], &ss), FS_OK);
	cr_expect_eq(ss.pending, 0, "everything was acknowledged");
	cr_assert_eq(fs_store_create_ex(dirs[1], &o2, &st[1]), FS_OK);
	cr_assert_eq(sync_with(st[1]), FS_OK);
	cr_expect(contact_says(st[1], "x1", CANARY), "the second tablet got the contact");
	/* a pulled record edited and synced again */
	put_contact(st[1], "x1", "c1", CANARY " edited");
	cr_assert_eq(sync_with(st[1]), FS_OK);
	cr_assert_eq(sync_with(st[0]), FS_OK);
	fs_store_close(&st[0]);
	fs_store_close(&st[1]);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(hits(i, CANARY), 0, "tablet %d after sync", i);
		cr_expect_eq(hits(i, CANARY_RAW), 0, "tablet %d after sync", i);
	}

	/* and the data is all there with the key */
	cr_assert_eq(fs_store_open_ex(dirs[0], &o1, &st[0]), FS_OK);
	cr_expect(contact_says(st[0], "x1", CANARY " edited"));
	fs_record *r = NULL;
	fs_sibling sb;
	cr_assert_eq(fs_get(st[0], "notes", "n1", &r), FS_OK);
	fs_record_sibling(r, 0, &sb);
	cr_expect_eq(sb.len, strlen(CANARY_RAW));
	cr_expect_eq(memcmp(sb.payload, CANARY_RAW, sb.len), 0);
	fs_record_free(&r);
	cr_assert_eq(fs_get(st[0], "case", "c1", &r), FS_OK);
	fs_record_free(&r);
}

Test(sdk_crypto, refuses_to_open_without_its_key_or_with_another)
{
	fs_store_opts o1 = keyed(key1, "k1", NULL);
	fs_store *x = NULL;
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, "v", 1), FS_OK);
	fs_store_close(&st[0]);

	cr_expect_eq(fs_store_open(dirs[0], &x), FS_ERR_KEY_REQUIRED);
	cr_expect_null(x);
	cr_expect_eq(fs_store_open_ex(dirs[0], NULL, &x), FS_ERR_KEY_REQUIRED);
	fs_store_opts wrong = keyed(key2, "k1", NULL);
	cr_expect_eq(fs_store_open_ex(dirs[0], &wrong, &x), FS_ERR_KEY_WRONG, "other key bytes");
	fs_store_opts wrong_id = keyed(key1, "k2", NULL);
	cr_expect_eq(fs_store_open_ex(dirs[0], &wrong_id, &x), FS_ERR_KEY_WRONG, "other key id");
	cr_expect_null(x);

	fs_store_opts bad = keyed(key1, "k1", NULL);
	bad.key_len = 16;
	cr_expect_eq(fs_store_open_ex(dirs[0], &bad, &x), FS_ERR_INVALID);
	bad = keyed(key1, "has space", NULL);
	cr_expect_eq(fs_store_open_ex(dirs[0], &bad, &x), FS_ERR_INVALID);
	bad = keyed(NULL, "k1", NULL);
	cr_expect_eq(fs_store_open_ex(dirs[0], &bad, &x), FS_ERR_INVALID, "an id without a key");

	cr_assert_eq(fs_store_open_ex(dirs[0], &o1, &st[0]), FS_OK);
	fs_record *r = NULL;
	cr_expect_eq(fs_get(st[0], "notes", "n1", &r), FS_OK);
	fs_record_free(&r);

	/* a plain store is never opened as if it were encrypted */
	cr_assert_eq(fs_store_create(dirs[1], NULL, &st[1]), FS_OK);
	fs_store_close(&st[1]);
	cr_expect_eq(fs_store_open_ex(dirs[1], &o1, &x), FS_ERR_NOT_ENCRYPTED);
	cr_expect_eq(fs_store_create_ex(dirs[0], &o1, &x), FS_ERR_EXISTS);

	const fs_err codes[] = {FS_ERR_KEY_REQUIRED, FS_ERR_KEY_WRONG, FS_ERR_NOT_ENCRYPTED};
	for (int i = 0; i < 3; i++) {
		cr_expect_str_neq(fs_strerror(codes[i]), "unknown error");
		for (int j = 0; j < i; j++)
			cr_expect_str_neq(fs_strerror(codes[i]), fs_strerror(codes[j]));
	}
}

Test(sdk_crypto, rekey_rewraps_and_only_the_new_key_opens)
{
	fs_store_opts o1 = keyed(key1, "k1", NULL), o2 = keyed(key2, "k2", NULL);
	fs_store *x = NULL;
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	put_case(st[0], "c1");
	put_contact(st[0], "x1", "c1", CANARY);
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, "raw", 3), FS_OK);
	cr_expect_eq(fs_store_rekey(st[0], key2, 16, "k2"), FS_ERR_INVALID);
	cr_assert_eq(fs_store_rekey(st[0], key2, sizeof(key2), "k2"), FS_OK);
	cr_expect(contact_says(st[0], "x1", CANARY), "the open store goes on working");
	put_contact(st[0], "x2", "c1", "after the rekey");
	fs_store_close(&st[0]);

	cr_expect_eq(fs_store_open_ex(dirs[0], &o1, &x), FS_ERR_KEY_WRONG,
	             "the old key no longer opens it");
	fs_store_opts old_bytes_new_id = keyed(key1, "k2", NULL);
	cr_expect_eq(fs_store_open_ex(dirs[0], &old_bytes_new_id, &x), FS_ERR_KEY_WRONG);
	cr_assert_eq(fs_store_open_ex(dirs[0], &o2, &st[0]), FS_OK);
	cr_expect(contact_says(st[0], "x1", CANARY));
	cr_expect(contact_says(st[0], "x2", "after the rekey"));
	fs_record *r = NULL;
	cr_expect_eq(fs_get(st[0], "notes", "n1", &r), FS_OK);
	fs_record_free(&r);
	fs_store_close(&st[0]);
	cr_expect_eq(hits(0, CANARY), 0);

	cr_assert_eq(fs_store_create(dirs[1], NULL, &st[1]), FS_OK);
	cr_expect_eq(fs_store_rekey(st[1], key2, sizeof(key2), "k2"), FS_ERR_NOT_ENCRYPTED);
}

/* The names in the store's key table (store closed), sorted, comma-separated. */
static void
key_names(const char *dir, char *out, size_t len)
{
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	MDB_dbi dbi;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	out[0] = '\0';
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "keys", 0, &dbi), 0);
	cr_assert_eq(mdb_cursor_open(t, dbi, &c), 0);
	while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
		size_t n = strlen(out);
		snprintf(out + n, len - n, "%s%.*s", n ? "," : "", (int)k.mv_size, (char *)k.mv_data);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(t);
	mdb_env_close(env);
}

/* Applies one page of the feed with a purged (or revoked) marker. */
static void
feed_marker(fs_store *s, const char *coll, const char *id, uint64_t seq, bool purged)
{
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT, *rsp = &rs;
	sdk_pull_reply rep = FIELDSYNC__V1__PULL_REPLY__INIT;
	rs.collection = (char *)coll;
	rs.id = (char *)id;
	rs.scope = "team-a";
	rs.seq = seq;
	rs.purged = purged;
	rs.revoked = !purged;
	rep.n_records = 1;
	rep.records = &rsp;
	rep.last_seq = seq;
	cr_assert_eq(sdk_pull_apply(s, &rep, NULL), FS_OK);
}

static bool
exists(fs_store *s, const char *coll, const char *id)
{
	fs_record *r = NULL;
	fs_err e = fs_get(s, coll, id, &r);
	fs_record_free(&r);
	cr_assert(e == FS_OK || e == FS_ERR_NOT_FOUND, "%s/%s: %s", coll, id, fs_strerror(e));
	return e == FS_OK;
}

Test(sdk_crypto, one_key_per_case_and_record_and_purge_destroys_it)
{
	fs_store_opts o1 = keyed(key1, "k1", "team-a");
	char names[1024];
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	put_case(st[0], "c1");
	put_contact(st[0], "x1", "c1", "one");
	put_contact(st[0], "x2", "c1", "two");
	put_case(st[0], "c2");
	put_contact(st[0], "x3", "c2", "three");
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, "a", 1), FS_OK);
	cr_assert_eq(fs_put(st[0], "notes", "n2", NULL, "b", 1), FS_OK);
	cr_assert_eq(fs_put(st[0], "notes", "empty", NULL, NULL, 0), FS_OK);
	fs_store_close(&st[0]);
	key_names(dirs[0], names, sizeof(names));
	cr_expect_str_eq(names, "c:c1,c:c2,r:notes/n1,r:notes/n2",
	                 "a case and its contacts share a key; an empty payload needs none");

	cr_assert_eq(fs_store_open_ex(dirs[0], &o1, &st[0]), FS_OK);
	/* a purged contact: its own record goes, the shared case key stays */
	feed_marker(st[0], "contact", "x3", 10, true);
	cr_expect_not(exists(st[0], "contact", "x3"));
	cr_expect(exists(st[0], "case", "c2"));
	/* a revoked note loses its key; a purged case takes its key and its contacts */
	feed_marker(st[0], "notes", "n2", 11, false);
	feed_marker(st[0], "case", "c1", 12, true);
	cr_expect_not(exists(st[0], "case", "c1"));
	cr_expect_not(exists(st[0], "contact", "x1"), "a contact of the erased case is gone");
	cr_expect_not(exists(st[0], "contact", "x2"), "a contact of the erased case is gone");
	cr_expect(exists(st[0], "notes", "n1"));
	fs_status ss;
	cr_assert_eq(fs_status_get(st[0], &ss), FS_OK);
	cr_expect_eq(ss.pending, 3, "c2, n1 and empty stay in the outbox, nothing else");
	fs_store_close(&st[0]);
	key_names(dirs[0], names, sizeof(names));
	cr_expect_str_eq(names, "c:c2,r:notes/n1");
	cr_expect_eq(hits(0, "three"), 0);
}

Test(sdk_crypto, an_in_flight_set_whose_key_was_destroyed_is_requeued)
{
	fs_store_opts o1 = keyed(key1, "k1", "team-a");
	uint64_t key = 0, k2 = 0;
	uint8_t *bytes = NULL;
	size_t len = 0;
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	put_case(st[0], "c1");
	cr_assert_eq(fs_put(st[0], "notes", "n1", NULL, "keep", 4), FS_OK);
	cr_assert_eq(sdk_push_prepare(st[0], 100, 1 << 20, &key, &bytes, &len), FS_OK);
	free(bytes);
	feed_marker(st[0], "case", "c1", 5, true); /* erased while the set was in flight */

	cr_expect_eq(sdk_inflight_next(st[0], &k2, &bytes, &len), FS_ERR_NOT_FOUND,
	             "the set that no longer opens is dropped");
	fs_status ss;
	cr_assert_eq(fs_status_get(st[0], &ss), FS_OK);
	cr_expect_eq(ss.pending, 1, "n1 is waiting again");
	cr_assert_eq(sdk_push_prepare(st[0], 100, 1 << 20, &key, &bytes, &len), FS_OK,
	             "and goes into a new change set");
	sdk_push_request *req = fieldsync__v1__push_request__unpack(NULL, len, bytes);
	cr_assert_not_null(req);
	cr_assert_eq(req->n_changes, 1);
	cr_expect_str_eq(req->changes[0]->record->id, "n1");
	cr_expect_eq(req->changes[0]->record->payload.len, 4);
	cr_expect_eq(memcmp(req->changes[0]->record->payload.data, "keep", 4), 0);
	fieldsync__v1__push_request__free_unpacked(req, NULL);
	free(bytes);
}

Test(sdk_crypto, a_sealed_value_moved_to_another_record_does_not_open)
{
	fs_store_opts o1 = keyed(key1, "k1", NULL);
	cr_assert_eq(fs_store_create_ex(dirs[0], &o1, &st[0]), FS_OK);
	cr_assert_eq(fs_put(st[0], "notes", "a", NULL, "secret a", 8), FS_OK);
	cr_assert_eq(fs_put(st[0], "notes", "b", NULL, "secret b", 8), FS_OK);
	fs_store_close(&st[0]);

	/* copy the stored value of notes/a over notes/b, with LMDB directly */
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	MDB_dbi dbi;
	MDB_val ka = {7, "\x05notesa"}, kb = {7, "\x05notesb"}, v;
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	cr_assert_eq(mdb_env_open(env, dirs[0], 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "records", 0, &dbi), 0);
	cr_assert_eq(mdb_get(t, dbi, &ka, &v), 0);
	uint8_t *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	MDB_val nv = {v.mv_size, copy};
	cr_assert_eq(mdb_put(t, dbi, &kb, &nv, 0), 0);
	cr_assert_eq(mdb_txn_commit(t), 0);
	mdb_env_close(env);
	free(copy);

	cr_assert_eq(fs_store_open_ex(dirs[0], &o1, &st[0]), FS_OK);
	fs_record *r = NULL;
	cr_expect_eq(fs_get(st[0], "notes", "b", &r), FS_ERR_CORRUPT,
	             "sealed for notes/a, it does not open as notes/b");
	cr_expect_eq(fs_get(st[0], "notes", "a", &r), FS_OK);
	fs_record_free(&r);
	fs_list *l = NULL;
	cr_expect_eq(fs_list_collection(st[0], "notes", &l), FS_OK, "listing does not open payloads");
	fs_list_free(&l);
}
