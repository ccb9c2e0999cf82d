/*
 * The calls an app needs beyond put/get (fieldsync.h): batch writes
 * (fs_put_many), the change feed (fs_changes_since, fs_change_seq),
 * fs_list_records with sibling metadata, the contacts-by-case index
 * (fs_contacts_of_case, also built on open for an older store), the local
 * scope check (FS_ERR_FORBIDDEN), the thread-local fs_last_error_detail(),
 * fs_free and fs_version. Pulled pages are applied directly
 * (sdk_pull_apply), with no network; tests/integration/test_sdk_cancel.c
 * does the same against the daemon, with fs_sync_cancel.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../../client-sdk/src/db.h"
#include "../../client-sdk/src/internal.h"
#include "daemon.h"

static char *dir;
static fs_store *s;

static void
setup(void)
{
	dir = fs_test_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_eq(fs_store_create(dir, "team-a", &s), FS_OK);
}

static void
teardown(void)
{
	fs_store_close(&s);
	fs_test_rm_rf(dir);
	free(dir);
}

TestSuite(sdk_api, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t
pending(void)
{
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	return st.pending;
}

static uint64_t
change_seq(void)
{
	uint64_t v = 99;
	cr_assert_eq(fs_change_seq(s, &v), FS_OK);
	return v;
}

static size_t
count_live(const char *collection)
{
	fs_list *l = NULL;
	cr_assert_eq(fs_list_records(s, collection, &l), FS_OK);
	size_t n = l->n;
	fs_list_free(&l);
	return n;
}

/* A contact payload of case case_id (typed: it goes through fs_json_to_payload). */
static void
put_contact(const char *id, const char *case_id)
{
	char json[128], why[256] = "";
	uint8_t *p = NULL;
	size_t n = 0;
	snprintf(json, sizeof(json), "{\"case_id\":\"%s\",\"kind\":\"NETWORK_MEETING\"}", case_id);
	cr_assert_eq(fs_json_to_payload("contact", json, strlen(json), &p, &n, why, sizeof(why)),
	             FS_OK, "%s", why);
	cr_assert_eq(fs_put(s, "contact", id, NULL, p, n), FS_OK, "%s", fs_last_error_detail());
	fs_free(p);
}

/* The ids of case_id's contacts, comma-separated. */
static const char *
contacts_of(const char *case_id)
{
	static char buf[512];
	fs_list *l = NULL;
	size_t n = 0;
	cr_assert_eq(fs_contacts_of_case(s, case_id, &l), FS_OK);
	buf[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		cr_assert_str_eq(l->items[i].collection, "contact");
		cr_assert_not_null(l->items[i].meta, "contacts come with their metadata");
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
		                      l->items[i].id);
	}
	fs_list_free(&l);
	return buf;
}

/* ---- version, fs_free, error detail -------------------------------------- */

Test(sdk_api, version_is_the_headers_and_the_projects)
{
	char v[32];
	snprintf(v, sizeof(v), "%d.%d.%d", FIELDSYNC_VERSION_MAJOR, FIELDSYNC_VERSION_MINOR,
	         FIELDSYNC_VERSION_PATCH);
	cr_expect_str_eq(fs_version(), FIELDSYNC_VERSION_STRING);
	cr_expect_str_eq(fs_version(), v);
	cr_expect_str_neq(fs_strerror(FS_ERR_FORBIDDEN), "unknown error");
	cr_expect_str_neq(fs_strerror(FS_ERR_CANCELLED), "unknown error");
	fs_free(NULL);
}

#ifndef FS_TEST_NO_THREADS
static void *
fail_in_thread(void *arg)
{
	char *out = arg;
	/* a new thread starts with no detail, whatever the main thread did */
	snprintf(out, 256, "[%s]", fs_last_error_detail());
	cr_expect_eq(fs_put(s, "notes", "", NULL, "x", 1), FS_ERR_INVALID);
	snprintf(out + strlen(out), 200, "%s", fs_last_error_detail());
	return NULL;
}
#endif

Test(sdk_api, error_detail_names_the_field_per_thread)
{
	cr_assert_eq(fs_put(s, "Bad Name", "a", NULL, "x", 1), FS_ERR_INVALID);
	cr_expect(strncmp(fs_last_error_detail(), "collection:", 11) == 0, "%s",
	          fs_last_error_detail());
	cr_assert_eq(fs_put(s, "notes", "a", "NO SCOPE", "x", 1), FS_ERR_INVALID);
	cr_expect(strncmp(fs_last_error_detail(), "scope:", 6) == 0, "%s", fs_last_error_detail());
	uint8_t bad[] = {0x08, 0x63}; /* Case.person = 99: not a known enum value */
	cr_assert_eq(fs_put(s, "case", "c1", NULL, bad, sizeof(bad)), FS_ERR_INVALID);
	cr_expect(strncmp(fs_last_error_detail(), "payload:", 8) == 0, "%s",
	          fs_last_error_detail());
	cr_expect(strstr(fs_last_error_detail(), "person") != NULL, "names the field: %s",
	          fs_last_error_detail());
	cr_assert_eq(fs_delete(s, "notes", "never"), FS_ERR_NOT_FOUND);
	cr_expect_str_eq(fs_last_error_detail(), "id: no such record");

#ifndef FS_TEST_NO_THREADS /* tests/arm.sh: qemu-user hangs in a new thread there */
	char other[512] = "";
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, fail_in_thread, other), 0);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_expect(strncmp(other, "[]id:", 5) == 0, "the other thread's own detail: %s", other);
	cr_expect_str_eq(fs_last_error_detail(), "id: no such record",
	                 "this thread's detail is untouched by the other thread");
#endif

	cr_assert_eq(fs_put(s, "notes", "a", NULL, "x", 1), FS_OK);
	cr_expect_str_eq(fs_last_error_detail(), "", "a call clears it on entry");

	uint8_t *p = NULL;
	size_t n = 0;
	const char *j = "{\"person\":\"GRANDPARENT\"}";
	cr_assert_eq(fs_json_to_payload("case", j, strlen(j), &p, &n, NULL, 0), FS_ERR_INVALID);
	cr_expect(strncmp(fs_last_error_detail(), "json: ", 6) == 0 &&
	                  strstr(fs_last_error_detail(), "person") != NULL,
	          "%s", fs_last_error_detail());
}

/* ---- batch writes ------------------------------------------------------- */

Test(sdk_api, put_many_is_all_or_nothing_and_names_the_bad_write)
{
	fs_write w[4] = {
		{"notes", "a", NULL, "1", 1, false},
		{"notes", "b", NULL, "2", 1, false},
		{"notes", "", NULL, "3", 1, false}, /* an empty id */
		{"notes", "d", NULL, "4", 1, false},
	};
	size_t bad = 0;
	cr_assert_eq(fs_put_many(s, w, 4, &bad), FS_ERR_INVALID);
	cr_expect_eq(bad, 2);
	cr_expect(strncmp(fs_last_error_detail(), "writes[2].id:", 13) == 0, "%s",
	          fs_last_error_detail());
	cr_expect_eq(count_live("notes"), 0, "nothing of a refused batch is stored");
	cr_expect_eq(pending(), 0);
	cr_expect_eq(change_seq(), 0);

	/* a failure found inside the transaction (a delete of a missing record)
	 * also leaves nothing: the earlier writes of the batch are rolled back */
	fs_write w2[3] = {
		{"notes", "a", NULL, "1", 1, false},
		{"notes", "b", NULL, "2", 1, false},
		{"notes", "zz", NULL, NULL, 0, true},
	};
	cr_assert_eq(fs_put_many(s, w2, 3, &bad), FS_ERR_NOT_FOUND);
	cr_expect_eq(bad, 2);
	cr_expect_eq(count_live("notes"), 0);
	cr_expect_eq(pending(), 0);

	w[2].id = "c";
	cr_assert_eq(fs_put_many(s, w, 4, &bad), FS_OK);
	cr_expect_eq(bad, (size_t)-1);
	cr_expect_eq(count_live("notes"), 4);
	cr_expect_eq(pending(), 4);
	cr_expect_eq(change_seq(), 4);

	/* the same record twice: the later write wins, and supersedes the first */
	fs_write w3[3] = {
		{"notes", "a", NULL, "first", 5, false},
		{"notes", "a", NULL, "second", 6, false},
		{"notes", "b", NULL, NULL, 0, true},
	};
	cr_assert_eq(fs_put_many(s, w3, 3, NULL), FS_OK);
	fs_record *r = NULL;
	fs_sibling sb;
	cr_assert_eq(fs_get(s, "notes", "a", &r), FS_OK);
	cr_assert_eq(fs_record_sibling_count(r), 1);
	fs_record_sibling(r, 0, &sb);
	cr_expect(sb.len == 6 && memcmp(sb.payload, "second", 6) == 0);
	char v[80];
	snprintf(v, sizeof(v), "%s:3", fs_store_replica_id(s));
	cr_expect_str_eq(sb.version, v, "put, put in the batch, put again: counter 3");
	fs_record_free(&r);
	cr_expect_eq(fs_get(s, "notes", "b", &r), FS_ERR_NOT_FOUND, "deleted in the batch");
	cr_expect_eq(fs_put_many(s, NULL, 0, NULL), FS_OK);
	cr_expect_eq(fs_put_many(s, NULL, 1, NULL), FS_ERR_INVALID);

	/* durable: all of it is there after a reopen */
	fs_store_close(&s);
	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	cr_expect_eq(count_live("notes"), 3);
}

/* ---- the change feed ---------------------------------------------------- */

static fsp_record *
wire_record(const char *coll, const char *id, const char *version, const void *payload, size_t len)
{
	fsp_record *r = calloc(1, sizeof(*r));
	fieldsync__v1__record__init(r);
	r->collection = (char *)coll;
	r->id = (char *)id;
	r->scope = "team-a";
	r->version = fs_test_vv(version);
	r->payload.data = (uint8_t *)payload;
	r->payload.len = len;
	r->modified_at_ms = 1234;
	r->modified_by = "srv";
	return r;
}

static void
free_wire(fsp_record *r)
{
	fsp_vv_free(r->version);
	free(r);
}

static void
pull_one(const char *coll, const char *id, fsp_record **sibs, size_t n, uint64_t seq, bool purged)
{
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	sdk_record_state *rsp = &rs;
	sdk_pull_reply rep = FIELDSYNC__V1__PULL_REPLY__INIT;
	rs.collection = (char *)coll;
	rs.id = (char *)id;
	rs.scope = "team-a";
	rs.seq = seq;
	rs.n_siblings = n;
	rs.siblings = sibs;
	rs.purged = purged;
	rep.n_records = 1;
	rep.records = &rsp;
	rep.last_seq = seq;
	cr_assert_eq(sdk_pull_apply(s, &rep, NULL), FS_OK);
}

Test(sdk_api, the_change_feed_lists_local_and_pulled_changes_once_each)
{
	fs_changes *c = NULL;
	cr_assert_eq(fs_changes_since(s, 0, 0, &c), FS_OK);
	cr_expect_eq(c->n, 0);
	cr_expect_eq(c->last_seq, 0);
	cr_expect_not(c->more);
	fs_changes_free(&c);
	cr_assert_null(c);

	cr_assert_eq(fs_put(s, "notes", "a", NULL, "1", 1), FS_OK); /* 1 */
	cr_assert_eq(fs_put(s, "notes", "b", NULL, "2", 1), FS_OK); /* 2 */
	cr_assert_eq(fs_put(s, "notes", "a", NULL, "3", 1), FS_OK); /* 3: a again */
	uint64_t mark = change_seq();
	cr_expect_eq(mark, 3);
	fsp_record *p = wire_record("notes", "p", "srv:1", "x", 1);
	pull_one("notes", "p", &p, 1, 7, false);         /* 4: pulled */
	cr_assert_eq(fs_delete(s, "notes", "b"), FS_OK); /* 5 */
	pull_one("notes", "a", NULL, 0, 8, true);        /* 6: purged */
	pull_one("notes", "p", &p, 1, 9, false);         /* known: no change */
	cr_expect_eq(change_seq(), 6);

	cr_assert_eq(fs_changes_since(s, 0, 0, &c), FS_OK);
	cr_assert_eq(c->n, 3, "a, b and p once each, at their latest change");
	cr_expect_str_eq(c->items[0].id, "p");
	cr_expect_eq(c->items[0].seq, 4);
	cr_expect(c->items[0].remote);
	cr_expect_eq(c->items[0].kind, FS_CHANGE_PUT);
	cr_expect_str_eq(c->items[1].id, "b");
	cr_expect_eq(c->items[1].seq, 5);
	cr_expect_not(c->items[1].remote);
	cr_expect_eq(c->items[1].kind, FS_CHANGE_DELETE);
	cr_expect_str_eq(c->items[2].id, "a");
	cr_expect_eq(c->items[2].seq, 6);
	cr_expect(c->items[2].remote);
	cr_expect_eq(c->items[2].kind, FS_CHANGE_ERASED);
	cr_expect_str_eq(c->items[2].collection, "notes");
	cr_expect_eq(c->last_seq, 6);
	fs_changes_free(&c);

	/* paging: limit and more */
	cr_assert_eq(fs_changes_since(s, mark, 2, &c), FS_OK);
	cr_assert_eq(c->n, 2);
	cr_expect(c->more);
	cr_expect_eq(c->last_seq, 5);
	uint64_t next = c->last_seq;
	fs_changes_free(&c);
	cr_assert_eq(fs_changes_since(s, next, 2, &c), FS_OK);
	cr_assert_eq(c->n, 1);
	cr_expect_not(c->more);
	cr_expect_str_eq(c->items[0].id, "a");
	fs_changes_free(&c);
	cr_assert_eq(fs_changes_since(s, 6, 0, &c), FS_OK);
	cr_expect_eq(c->n, 0);
	cr_expect_eq(c->last_seq, 6);
	fs_changes_free(&c);
	free_wire(p);
}

/* ---- lists with metadata --------------------------------------------------- */

Test(sdk_api, list_records_gives_every_siblings_metadata)
{
	cr_assert_eq(fs_put(s, "notes", "x", NULL, "mine!", 5), FS_OK);
	fsp_record *q = wire_record("notes", "x", "q:1", "theirs", 6);
	pull_one("notes", "x", &q, 1, 3, false); /* concurrent: a conflict */
	cr_assert_eq(fs_put(s, "tasks", "t", NULL, "t", 1), FS_OK);
	cr_assert_eq(fs_put(s, "notes", "gone", NULL, "g", 1), FS_OK);
	cr_assert_eq(fs_delete(s, "notes", "gone"), FS_OK);

	fs_list *l = NULL;
	cr_assert_eq(fs_list_records(s, "notes", &l), FS_OK);
	cr_assert_eq(l->n, 1, "a deleted record is not listed");
	cr_expect_str_eq(l->items[0].id, "x");
	cr_expect_str_eq(l->items[0].scope, "team-a");
	cr_assert_eq(l->items[0].siblings, 2);
	cr_assert_not_null(l->items[0].meta);
	int seen = 0;
	for (size_t i = 0; i < 2; i++) {
		const fs_sibling_meta *m = &l->items[0].meta[i];
		cr_expect_not(m->deleted);
		if (strcmp(m->modified_by, "srv") == 0) {
			seen |= 1;
			cr_expect_eq(m->len, 6);
			cr_expect_str_eq(m->version, "q:1");
			cr_expect_eq(m->modified_at_ms, 1234);
		} else {
			seen |= 2;
			cr_expect_str_eq(m->modified_by, fs_store_replica_id(s));
			cr_expect_eq(m->len, 5);
			cr_expect_gt(m->modified_at_ms, 0);
		}
	}
	cr_expect_eq(seen, 3);
	fs_list_free(&l);

	cr_assert_eq(fs_list_records(s, NULL, &l), FS_OK);
	cr_assert_eq(l->n, 2, "NULL: every collection");
	cr_expect_str_eq(l->items[0].collection, "notes");
	cr_expect_str_eq(l->items[1].collection, "tasks");
	fs_list_free(&l);
	cr_expect_eq(fs_list_records(s, "Bad", &l), FS_ERR_INVALID);
	cr_expect_null(l);
	cr_assert_eq(fs_list_collection(s, "notes", &l), FS_OK);
	cr_expect_null(l->items[0].meta, "the id lists carry no metadata");
	fs_list_free(&l);
	free_wire(q);
}

/* ---- contacts by case ------------------------------------------------------- */

Test(sdk_api, contacts_of_case_follow_writes_deletes_and_pulls)
{
	put_contact("k1", "c1");
	put_contact("k2", "c1");
	put_contact("k3", "c2");
	cr_expect_str_eq(contacts_of("c1"), "k1,k2");
	cr_expect_str_eq(contacts_of("c2"), "k3");
	cr_expect_str_eq(contacts_of("c9"), "");

	put_contact("k2", "c2"); /* moved to another case */
	cr_expect_str_eq(contacts_of("c1"), "k1");
	cr_expect_str_eq(contacts_of("c2"), "k2,k3");
	cr_assert_eq(fs_delete(s, "contact", "k3"), FS_OK);
	cr_expect_str_eq(contacts_of("c2"), "k2");

	/* a pulled contact, and a pulled concurrent edit naming another case:
	 * in conflict, it is listed under both */
	char why[256];
	uint8_t *p1 = NULL, *p2 = NULL;
	size_t n1 = 0, n2 = 0;
	const char *j1 = "{\"case_id\":\"c3\"}", *j2 = "{\"case_id\":\"c4\"}";
	cr_assert_eq(fs_json_to_payload("contact", j1, strlen(j1), &p1, &n1, why, 256), FS_OK);
	cr_assert_eq(fs_json_to_payload("contact", j2, strlen(j2), &p2, &n2, why, 256), FS_OK);
	fsp_record *a = wire_record("contact", "k4", "o:1", p1, n1);
	fsp_record *b = wire_record("contact", "k4", "q:1", p2, n2);
	fsp_record *both[2] = {a, b};
	pull_one("contact", "k4", both, 2, 4, false);
	cr_expect_str_eq(contacts_of("c3"), "k4");
	cr_expect_str_eq(contacts_of("c4"), "k4");
	pull_one("contact", "k4", NULL, 0, 5, true); /* purged */
	cr_expect_str_eq(contacts_of("c3"), "");
	cr_expect_str_eq(contacts_of("c4"), "");
	fs_list *l = NULL;
	cr_expect_eq(fs_contacts_of_case(s, "", &l), FS_ERR_INVALID);
	cr_expect(strncmp(fs_last_error_detail(), "case_id:", 8) == 0);
	fs_free(p1);
	fs_free(p2);
	free_wire(a);
	free_wire(b);
}

Test(sdk_api, an_older_store_gets_its_index_built_on_open)
{
	put_contact("k1", "c1");
	put_contact("k2", "c1");
	cr_assert_eq(fs_put(s, "notes", "n", NULL, "x", 1), FS_OK);
	/* what an older SDK's store looks like: none of the four new tables */
	MDB_txn *t = NULL;
	cr_assert_eq(mdb_txn_begin(s->env, NULL, 0, &t), 0);
	cr_assert_eq(mdb_drop(t, s->changes, 1), 0);
	cr_assert_eq(mdb_drop(t, s->change_keys, 1), 0);
	cr_assert_eq(mdb_drop(t, s->case_contacts, 1), 0);
	cr_assert_eq(mdb_drop(t, s->contact_cases, 1), 0);
	MDB_val k = {10, "change_seq"};
	cr_assert_eq(mdb_del(t, s->meta, &k, NULL), 0);
	cr_assert_eq(mdb_txn_commit(t), 0);
	fs_store_close(&s);

	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	cr_expect_str_eq(contacts_of("c1"), "k1,k2", "the index was built at open");
	fs_changes *c = NULL;
	cr_assert_eq(fs_changes_since(s, 0, 0, &c), FS_OK);
	cr_expect_eq(c->n, 0, "the feed starts at the first write by this SDK");
	fs_changes_free(&c);
	put_contact("k3", "c1");
	cr_expect_str_eq(contacts_of("c1"), "k1,k2,k3");
	cr_expect_eq(change_seq(), 1);
}

/* ---- scopes granted by the credential ------------------------------------- */

Test(sdk_api, a_scope_the_credential_does_not_grant_is_forbidden)
{
	char spub[41], ssec[41], cpub[41], csec[41], json[1024], why[256] = "";
	fs_credential *cred = NULL;
	cr_assert_eq(zmq_curve_keypair(spub, ssec), 0);
	cr_assert_eq(zmq_curve_keypair(cpub, csec), 0);
	snprintf(json, sizeof(json),
	         "{\"endpoint\":\"tcp://127.0.0.1:1\",\"server_public_key\":\"%s\","
	         "\"client_public_key\":\"%s\",\"client_secret_key\":\"%s\",\"name\":\"t\","
	         "\"scopes\":[\"team-north\",\"team-east\"],\"role\":\"device\"}",
	         spub, cpub, csec);
	cr_assert_eq(fs_credential_parse(json, strlen(json), &cred, why, sizeof(why)), FS_OK, "%s",
	             why);
	char *d2 = fs_test_tmpdir();
	fs_store *t = NULL;
	fs_store_opts o;
	uint8_t key[32];
	memset(key, 4, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.credential = cred;
	o.key = key; /* a store with a credential is always encrypted */
	o.key_len = sizeof(key);
	o.key_id = "k1";
	cr_assert_eq(fs_store_create_ex(d2, &o, &t), FS_OK);
	fs_store_close(&s);
	s = t;

	cr_expect_eq(fs_put(s, "notes", "a", "team-south", "x", 1), FS_ERR_FORBIDDEN);
	cr_expect(strstr(fs_last_error_detail(), "scope: 'team-south' is not granted") != NULL,
	          "%s", fs_last_error_detail());
	cr_expect_eq(fs_put(s, "notes", "a", NULL, "x", 1), FS_OK, "the default scope: team-north");
	cr_expect_eq(fs_put(s, "notes", "b", "team-east", "x", 1), FS_OK);
	fs_write w[2] = {{"notes", "c", "team-east", "x", 1, false},
	                 {"notes", "d", "team-west", "x", 1, false}};
	size_t bad = 0;
	cr_expect_eq(fs_put_many(s, w, 2, &bad), FS_ERR_FORBIDDEN);
	cr_expect_eq(bad, 1);
	cr_expect(strncmp(fs_last_error_detail(), "writes[1].scope:", 16) == 0);
	cr_expect_eq(count_live("notes"), 2, "nothing forbidden was stored");
	cr_expect_eq(pending(), 2);
	/* a record the daemon put in a scope no longer granted: an edit that keeps it is refused */
	fsp_record *r = wire_record("notes", "old", "srv:1", "x", 1);
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT, *rsp = &rs;
	sdk_pull_reply rep = FIELDSYNC__V1__PULL_REPLY__INIT;
	rs.collection = "notes";
	rs.id = "old";
	rs.scope = "team-south";
	rs.n_siblings = 1;
	rs.siblings = &r;
	rep.n_records = 1;
	rep.records = &rsp;
	cr_assert_eq(sdk_pull_apply(s, &rep, NULL), FS_OK);
	cr_expect_eq(fs_put(s, "notes", "old", NULL, "y", 1), FS_ERR_FORBIDDEN);
	cr_expect_eq(fs_delete(s, "notes", "old"), FS_ERR_FORBIDDEN,
	             "nor a deletion: the daemon would refuse it as well");
	free_wire(r);
	fs_credential_free(&cred);
	fs_store_close(&s);
	fs_test_rm_rf(d2);
	free(d2);
	cr_assert_eq(fs_store_open(dir, &s), FS_OK);
	cr_expect_eq(fs_put(s, "notes", "z", "any-scope", "x", 1), FS_OK,
	             "a store without a credential checks nothing");
}
