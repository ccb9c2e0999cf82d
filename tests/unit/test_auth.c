/*
 * registry.c and zap.c through their interfaces (registry.h, zap.h): the server key files, the
 * device registry, the audit log and the ZAP handler, driven directly the
 * way libzmq drives it (RFC 27 requests on inproc://zeromq.zap.01). Every
 * test has a fresh temporary data directory.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "admin/admin_dispatch.h"
#include "daemon.h"
#include "fieldsync/keys.h"
#include "fieldsyncd.h"
#include "metrics.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN /* a draft option in zmq.h 4.3; libzmq takes it */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define MIB (1ULL << 20)

static char *g_dir;

static void
setup(void)
{
	log_set_level(LOG_ERROR); /* refusals are logged at info; keep the output readable */
	g_dir = fs_test_tmpdir();
	cr_assert_not_null(g_dir, "cannot make a temporary directory");
}

static void
teardown(void)
{
	if (g_dir != NULL) {
		fs_test_rm_rf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

TestSuite(auth, .init = setup, .fini = teardown);

static void
path_of(char *out, size_t cap, const char *file)
{
	snprintf(out, cap, "%s/%s", g_dir, file);
}

static mode_t
mode_of(const char *file)
{
	char p[600];
	struct stat st;
	path_of(p, sizeof(p), file);
	cr_assert_eq(stat(p, &st), 0, "%s missing", p);
	return st.st_mode & 07777;
}

static void
write_file(const char *file, const char *text, mode_t mode)
{
	char p[600];
	path_of(p, sizeof(p), file);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
}

/* ---- server keys ------------------------------------------------------------ */

Test(auth, server_keys_create_and_load)
{
	char err[600] = "", pub[41], sec[41], derived[41];
	cr_assert(zap_keys_create(g_dir, err, sizeof(err)) == FSD_OK, "%s", err);
	cr_assert_eq(mode_of("server.key"), 0600);
	cr_assert_eq(mode_of("server.pub"), 0600);
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) == FSD_OK, "%s", err);
	cr_assert_eq(strlen(pub), 40);
	cr_assert_eq(strlen(sec), 40);
	cr_assert_eq(zmq_curve_public(derived, sec), 0);
	cr_assert_str_eq(derived, pub);

	/* never overwritten */
	err[0] = '\0';
	cr_assert(zap_keys_create(g_dir, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "already initialised"), "%s", err);
	char pub2[41], sec2[41];
	cr_assert(zap_keys_load(g_dir, pub2, sec2, err, sizeof(err)) == FSD_OK, "%s", err);
	cr_assert_str_eq(pub2, pub);
}

Test(auth, server_key_readable_by_others_is_refused)
{
	char err[600] = "", pub[41], sec[41], p[600];
	cr_assert(zap_keys_create(g_dir, err, sizeof(err)) == FSD_OK, "%s", err);
	path_of(p, sizeof(p), "server.key");
	cr_assert_eq(chmod(p, 0644), 0);
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "server.key"), "%s", err);
	cr_assert_not_null(strstr(err, "0644"), "%s", err);
	cr_assert_not_null(strstr(err, "chmod 600"), "%s", err);
	cr_assert_eq(chmod(p, 0640), 0); /* group alone is too much as well */
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "0640"), "%s", err);
	cr_assert_eq(chmod(p, 0400), 0); /* read-only for the owner is fine */
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) == FSD_OK, "%s", err);
}

Test(auth, missing_key_files_are_refused)
{
	char err[600] = "", pub[41], sec[41], p[600];
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "server.key is missing"), "%s", err);
	cr_assert_not_null(strstr(err, "fieldsyncd init"), "%s", err);

	cr_assert(zap_keys_create(g_dir, err, sizeof(err)) == FSD_OK, "%s", err);
	path_of(p, sizeof(p), "server.pub");
	cr_assert_eq(unlink(p), 0);
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "server.pub is missing"), "%s", err);
}

Test(auth, bad_key_files_are_refused)
{
	char err[600] = "", pub[41], sec[41], opub[41], osec[41];
	cr_assert_eq(zmq_curve_keypair(opub, osec), 0);
	write_file("server.key", "not a key\n", 0600);
	write_file("server.pub", "not a key\n", 0600);
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "does not hold a CURVE key"), "%s", err);

	/* a public key that is not the secret key's */
	char a_pub[41], a_sec[41], line[64];
	cr_assert_eq(zmq_curve_keypair(a_pub, a_sec), 0);
	snprintf(line, sizeof(line), "%s\n", a_sec);
	write_file("server.key", line, 0600);
	snprintf(line, sizeof(line), "%s\n", opub);
	write_file("server.pub", line, 0600);
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) != FSD_OK);
	cr_assert_not_null(strstr(err, "does not hold the public key"), "%s", err);
}

/* ---- the registry --------------------------------------------------------------- */

static store *
open_store(void)
{
	store *s = store_open(g_dir, 16 * MIB, 64 * MIB);
	cr_assert_not_null(s, "store_open(%s) failed", g_dir);
	return s;
}

static device_info
make_device(const char *name, device_role role, const char *s1, const char *s2)
{
	device_info d;
	char sec[41];
	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "%s", name);
	cr_assert_eq(zmq_curve_keypair(d.public_key, sec), 0);
	d.role = role;
	d.enrolled_at_ms = 1700000000000;
	snprintf(d.scopes[d.n_scopes++], sizeof(d.scopes[0]), "%s", s1);
	if (s2 != NULL)
		snprintf(d.scopes[d.n_scopes++], sizeof(d.scopes[0]), "%s", s2);
	return d;
}

static void
put(store *s, const device_info *d)
{
	store_txn *t;
	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	cr_assert_eq(registry_device_put(t, d), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
}

static void
assert_same(const device_info *a, const device_info *b)
{
	cr_assert_str_eq(a->name, b->name);
	cr_assert_str_eq(a->public_key, b->public_key);
	cr_assert_eq(a->role, b->role);
	cr_assert_eq(a->revoked, b->revoked);
	cr_assert_eq(a->enrolled_at_ms, b->enrolled_at_ms);
	cr_assert_eq(a->revoked_at_ms, b->revoked_at_ms);
	cr_assert_eq(a->n_scopes, b->n_scopes);
	for (size_t i = 0; i < a->n_scopes; i++)
		cr_assert_str_eq(a->scopes[i], b->scopes[i]);
}

struct names {
	size_t n;
	char name[8][AUTH_NAME_MAX + 1];
};

static bool
collect(void *arg, const device_info *d)
{
	struct names *n = arg;
	if (n->n < 8)
		strcpy(n->name[n->n++], d->name);
	return true;
}

Test(auth, registry_put_get_list)
{
	store *s = open_store();
	device_info a = make_device("tab-2", ROLE_DEVICE, "team-a", "team-b");
	device_info b = make_device("sched.1", ROLE_SCHEDULER, "team-a", NULL);
	device_info c = make_device("tab-1", ROLE_DEVICE, "team-c", NULL);
	device_info got;
	store_txn *t;

	put(s, &a);
	put(s, &b);
	put(s, &c);
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	cr_assert_eq(registry_device_by_key(t, a.public_key, &got), FSD_OK);
	assert_same(&got, &a);
	cr_assert_eq(registry_device_by_name(t, "sched.1", &got), FSD_OK);
	assert_same(&got, &b);
	cr_assert_eq(registry_device_by_name(t, "nobody", &got), FSD_NOTFOUND);
	cr_assert_eq(registry_device_by_name(t, "Not A Name", &got), FSD_NOTFOUND);
	char other[41], sec[41];
	zmq_curve_keypair(other, sec);
	cr_assert_eq(registry_device_by_key(t, other, &got), FSD_NOTFOUND);
	cr_assert_eq(registry_device_by_key(t, "short", &got), FSD_NOTFOUND);
	cr_assert_eq(registry_device_by_key(t, NULL, &got), FSD_NOTFOUND);

	struct names n = {0};
	cr_assert_eq(registry_device_list(t, collect, &n), FSD_OK);
	cr_assert_eq(n.n, 3);
	cr_assert_str_eq(n.name[0], "sched.1"); /* by name */
	cr_assert_str_eq(n.name[1], "tab-1");
	cr_assert_str_eq(n.name[2], "tab-2");
	store_read_end(&t);

	/* revoking is a put of the same row */
	a.revoked = true;
	a.revoked_at_ms = 1700000001000;
	put(s, &a);
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	cr_assert_eq(registry_device_by_name(t, "tab-2", &got), FSD_OK);
	assert_same(&got, &a);
	store_read_end(&t);
	store_close(&s);
}

Test(auth, registry_refuses_bad_rows)
{
	store *s = open_store();
	device_info a = make_device("tab-1", ROLE_DEVICE, "team-a", NULL);
	store_txn *t;
	put(s, &a);

	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	device_info same_name = make_device("tab-1", ROLE_DEVICE, "team-a", NULL);
	cr_assert_eq(registry_device_put(t, &same_name), FSD_INVALID, "a name belongs to one key");
	device_info bad = make_device("Tab 1", ROLE_DEVICE, "team-a", NULL);
	cr_assert_eq(registry_device_put(t, &bad), FSD_INVALID);
	bad = make_device("tab-3", ROLE_DEVICE, "Team A", NULL);
	cr_assert_eq(registry_device_put(t, &bad), FSD_INVALID);
	bad = make_device("tab-3", ROLE_DEVICE, "team-a", NULL);
	bad.n_scopes = 0;
	cr_assert_eq(registry_device_put(t, &bad), FSD_INVALID);
	bad = make_device("tab-3", ROLE_DEVICE, "team-a", NULL);
	strcpy(bad.public_key, "not-z85-not-z85-not-z85-not-z85-not-z85~");
	cr_assert_eq(registry_device_put(t, &bad), FSD_INVALID);
	bad = make_device("tab-3", (device_role)7, "team-a", NULL);
	cr_assert_eq(registry_device_put(t, &bad), FSD_INVALID);
	store_abort(&t);

	/* a row that does not decode is corrupt, never a device */
	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	char k2[41], sec[41];
	zmq_curve_keypair(k2, sec);
	cr_assert_eq(store_kv_put(t, &registry_devices_table, k2, 40, "\xff\xff\xff", 3, false), FSD_OK);
	device_info got;
	cr_assert_eq(registry_device_by_key(t, k2, &got), FSD_CORRUPT);
	store_abort(&t);
	store_close(&s);
}

Test(auth, has_scope)
{
	device_info d = make_device("tab-1", ROLE_DEVICE, "team-a", "team-b");
	cr_assert(registry_has_scope(&d, "team-a"));
	cr_assert(registry_has_scope(&d, "team-b"));
	cr_assert_not(registry_has_scope(&d, "team-ab"));
	cr_assert_not(registry_has_scope(&d, "team"));
	cr_assert_not(registry_has_scope(&d, ""));
}

/* The prefix rule lives in `enroll`: run it in this process. */
static int
admin(const char *const *args)
{
	char *argv[24];
	int argc = 0, code = -1;
	argv[argc++] = "fieldsyncd";
	for (; args[argc - 1] != NULL && argc < 23; argc++)
		argv[argc] = (char *)args[argc - 1];
	argv[argc] = NULL;
	cr_assert(admin_dispatch(argc, argv, &code), "%s is an admin command", argv[1]);
	log_set_level(LOG_ERROR);
	return code;
}

static int
enroll(const char *name, const char *scopes)
{
	char out[600];
	snprintf(out, sizeof(out), "%s/%s.json", g_dir, name);
	const char *args[] = {"enroll", "--data-dir", g_dir, "--name", name, "--scopes", scopes,
	                      "--role", "device", "--endpoint", "tcp://127.0.0.1:7400", "--out",
	                      out, NULL};
	return admin(args);
}

Test(auth, enroll_refuses_scopes_that_prefix_one_another)
{
	const char *init[] = {"init", "--data-dir", g_dir, NULL};
	cr_redirect_stdout();
	cr_redirect_stderr();
	cr_assert_eq(admin(init), 0);
	cr_assert_eq(enroll("tab-1", "team-ab,other"), 0);
	cr_assert_eq(enroll("tab-2", "team-a"), 1, "team-a is a prefix of team-ab");
	cr_assert_eq(enroll("tab-3", "team-abc"), 1, "team-ab is a prefix of team-abc");
	cr_assert_eq(enroll("tab-4", "team-ab"), 0, "the same scope is fine");
	cr_assert_eq(enroll("tab-5", "x,xy"), 2, "within one list too");
	cr_assert_eq(enroll("tab-6", "team-b"), 0);
	const char *revoke[] = {"revoke", "--data-dir", g_dir, "--name", "tab-6", NULL};
	cr_assert_eq(admin(revoke), 0);
	cr_assert_eq(enroll("tab-7", "team-b2"), 1, "revoked devices keep their scopes' topics");

	store *s = open_store();
	store_txn *t;
	device_info got;
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	cr_assert_eq(registry_device_by_name(t, "tab-2", &got), FSD_NOTFOUND);
	cr_assert_eq(registry_device_by_name(t, "tab-3", &got), FSD_NOTFOUND);
	cr_assert_eq(registry_device_by_name(t, "tab-4", &got), FSD_OK);
	store_read_end(&t);
	store_close(&s);
	char p[600];
	snprintf(p, sizeof(p), "%s/tab-2.json", g_dir);
	cr_assert_neq(access(p, F_OK), 0, "no credential for a refused enrollment");
}

/* ---- the audit log -------------------------------------------------------------- */

struct entries {
	size_t n;
	uint64_t seq[8];
	char *text[8];
};

static bool
collect_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct entries *e = arg;
	cr_assert_eq(klen, 8);
	if (e->n < 8) {
		e->seq[e->n] = fsk_get_be64(key);
		e->text[e->n] = strndup((const char *)val, vlen);
		e->n++;
	}
	return true;
}

Test(auth, audit_append_in_order)
{
	store *s = open_store();
	store_txn *t;
	char long_detail[2000];
	memset(long_detail, 'x', sizeof(long_detail) - 1);
	long_detail[sizeof(long_detail) - 1] = '\0';

	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	cr_assert_eq(audit_append(t, "alice", "enroll", "device", "tab-1", "role=device"), FSD_OK);
	cr_assert_eq(audit_append(t, NULL, "purge", "case", "c-17", NULL), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);
	cr_assert_eq(store_write_begin(s, &t), FSD_OK); /* an aborted entry leaves no gap */
	cr_assert_eq(audit_append(t, "bob", "revoke", "device", "tab-1", ""), FSD_OK);
	store_abort(&t);
	cr_assert_eq(store_write_begin(s, &t), FSD_OK);
	cr_assert_eq(audit_append(t, "bob", "revoke", "device", "tab-1", long_detail), FSD_OK);
	cr_assert_eq(store_commit(&t), FSD_OK);

	struct entries e = {0};
	cr_assert_eq(store_read_begin(s, &t), FSD_OK);
	cr_assert_eq(store_kv_scan(t, &audit_table, NULL, 0, NULL, 0, collect_entry, &e), FSD_OK);
	store_read_end(&t);
	cr_assert_eq(e.n, 3);
	const char *actions[] = {"enroll", "purge", "revoke"};
	const char *actors[] = {"alice", "unknown", "bob"};
	for (size_t i = 0; i < e.n; i++) {
		cr_assert_eq(e.seq[i], i + 1);
		cJSON *o = cJSON_Parse(e.text[i]);
		cr_assert(cJSON_IsObject(o), "%s", e.text[i]);
		cr_assert_str_eq(cJSON_GetObjectItem(o, "action")->valuestring, actions[i]);
		cr_assert_str_eq(cJSON_GetObjectItem(o, "actor")->valuestring, actors[i]);
		cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "ts_ms")));
		cr_assert_gt(cJSON_GetObjectItem(o, "ts_ms")->valuedouble, 1.6e12);
		cJSON_Delete(o);
	}
	cJSON *o = cJSON_Parse(e.text[1]);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "collection")->valuestring, "case");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "c-17");
	cr_assert_null(cJSON_GetObjectItem(o, "detail"), "empty fields are left out");
	cJSON_Delete(o);
	o = cJSON_Parse(e.text[2]);
	cr_assert_eq(strlen(cJSON_GetObjectItem(o, "detail")->valuestring), 512, "capped");
	cJSON_Delete(o);
	for (size_t i = 0; i < e.n; i++)
		free(e.text[i]);
	store_close(&s);
}

/* ---- the ZAP handler ------------------------------------------------------------ */

typedef struct zap_fixture {
	store *s;
	void *ctx;
	zap_handler *z;
	void *req;
	device_info dev, gone;
	uint8_t dev_key[32], gone_key[32];
} zap_fixture;

static void *
req_socket(void *ctx)
{
	void *req = zmq_socket(ctx, ZMQ_REQ);
	int zero = 0, timeout = 3000;
	cr_assert_not_null(req);
	zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	cr_assert_eq(zmq_connect(req, "inproc://zeromq.zap.01"), 0);
	return req;
}

static void
zap_fixture_start(zap_fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->s = open_store();
	f->dev = make_device("tab-1", ROLE_DEVICE, "team-a", NULL);
	f->gone = make_device("tab-gone", ROLE_DEVICE, "team-a", NULL);
	f->gone.revoked = true;
	f->gone.revoked_at_ms = 1700000002000;
	put(f->s, &f->dev);
	put(f->s, &f->gone);
	cr_assert_not_null(zmq_z85_decode(f->dev_key, f->dev.public_key));
	cr_assert_not_null(zmq_z85_decode(f->gone_key, f->gone.public_key));
	f->ctx = zmq_ctx_new();
	f->z = zap_start(f->ctx, f->s);
	cr_assert_not_null(f->z);
	f->req = req_socket(f->ctx);
}

static void
zap_fixture_stop(zap_fixture *f)
{
	zmq_close(f->req);
	zap_stop(&f->z);
	cr_assert_null(f->z);
	zmq_ctx_term(f->ctx);
	store_close(&f->s);
}

/* Sends frames (n of them, lens[i] < 0: strlen). */
static void
send_frames(void *sock, size_t n, const void *const *frames, const int *lens)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = lens != NULL && lens[i] >= 0 ? (size_t)lens[i] : strlen(frames[i]);
		cr_assert_geq(zmq_send(sock, frames[i], len, i + 1 < n ? ZMQ_SNDMORE : 0), 0);
	}
}

typedef struct zap_reply {
	size_t n;
	char frame[8][128];
} zap_reply;

static bool
recv_reply(void *sock, zap_reply *r)
{
	int more = 1;
	size_t ml = sizeof(more);
	memset(r, 0, sizeof(*r));
	while (more) {
		char buf[128];
		int n = zmq_recv(sock, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return false;
		if (r->n < 8) {
			memcpy(r->frame[r->n], buf, (size_t)(n < 127 ? n : 127));
			r->n++;
		}
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
	}
	return true;
}

/* An RFC 27 request as libzmq sends it for a CURVE client. */
static void
curve_request(zap_fixture *f, const char *request_id, const uint8_t key[32], zap_reply *r)
{
	const void *frames[] = {"1.0", request_id, "fieldsync", "192.0.2.7", "", "CURVE", key};
	int lens[] = {-1, -1, -1, -1, 0, -1, 32};
	send_frames(f->req, 7, frames, lens);
	cr_assert(recv_reply(f->req, r), "the handler answered");
	cr_assert_eq(r->n, 6, "reply: version, request id, status, text, user id, metadata");
	cr_assert_str_eq(r->frame[0], "1.0");
	cr_assert_str_eq(r->frame[1], request_id);
	cr_assert_str_eq(r->frame[5], "");
}

Test(auth, zap_admits_enrolled_keys_only)
{
	zap_fixture f;
	zap_reply r;
	zap_fixture_start(&f);
	metrics_reset();

	curve_request(&f, "1", f.dev_key, &r);
	cr_assert_str_eq(r.frame[2], "200");
	cr_assert_str_eq(r.frame[4], "tab-1", "User-Id is the device name");

	uint8_t unknown[32];
	char pub[41], sec[41];
	zmq_curve_keypair(pub, sec);
	zmq_z85_decode(unknown, pub);
	curve_request(&f, "2", unknown, &r);
	cr_assert_str_eq(r.frame[2], "400");
	cr_assert_str_eq(r.frame[4], "");

	curve_request(&f, "3", f.gone_key, &r);
	cr_assert_str_eq(r.frame[2], "400", "revoked");
	cr_assert_str_eq(r.frame[4], "");

	/* fieldsync_zap_denials_total{reason} */
	cr_assert_eq(metrics_value(METRIC_ZAP_DENIALS_TOTAL, MZAP_UNKNOWN_KEY), 1);
	cr_assert_eq(metrics_value(METRIC_ZAP_DENIALS_TOTAL, MZAP_REVOKED), 1);
	cr_assert_eq(metrics_value(METRIC_ZAP_DENIALS_TOTAL, MZAP_MECHANISM), 0);
	zap_fixture_stop(&f);
}

Test(auth, zap_sees_enrollments_and_revocations_at_once)
{
	zap_fixture f;
	zap_reply r;
	zap_fixture_start(&f);
	device_info late = make_device("tab-late", ROLE_DEVICE, "team-a", NULL);
	uint8_t key[32];
	zmq_z85_decode(key, late.public_key);

	curve_request(&f, "1", key, &r);
	cr_assert_str_eq(r.frame[2], "400");
	put(f.s, &late);
	curve_request(&f, "2", key, &r);
	cr_assert_str_eq(r.frame[2], "200");
	cr_assert_str_eq(r.frame[4], "tab-late");
	late.revoked = true;
	late.revoked_at_ms = 1700000003000;
	put(f.s, &late);
	curve_request(&f, "3", key, &r);
	cr_assert_str_eq(r.frame[2], "400");
	zap_fixture_stop(&f);
}

Test(auth, zap_refuses_other_mechanisms)
{
	zap_fixture f;
	zap_reply r;
	zap_fixture_start(&f);

	const void *null_req[] = {"1.0", "7", "fieldsync", "192.0.2.7", "", "NULL"};
	send_frames(f.req, 6, null_req, NULL);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_eq(r.n, 6);
	cr_assert_str_eq(r.frame[1], "7");
	cr_assert_str_eq(r.frame[2], "400");

	const void *plain_req[] = {"1.0", "8", "fieldsync", "192.0.2.7", "", "PLAIN", "tab-1", "pw"};
	send_frames(f.req, 8, plain_req, NULL);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400");
	cr_assert_str_eq(r.frame[4], "");
	zap_fixture_stop(&f);
}

Test(auth, zap_answers_malformed_requests_with_400)
{
	zap_fixture f;
	zap_reply r;
	zap_fixture_start(&f);

	const void *short_req[] = {"1.0", "1", "fieldsync"};
	send_frames(f.req, 3, short_req, NULL);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[1], "1");
	cr_assert_str_eq(r.frame[2], "400");

	const void *one[] = {"garbage"};
	send_frames(f.req, 1, one, NULL);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400");

	const void *version[] = {"2.0", "2", "fieldsync", "a", "", "CURVE", f.dev_key};
	int vlens[] = {-1, -1, -1, -1, 0, -1, 32};
	send_frames(f.req, 7, version, vlens);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400", "only version 1.0");

	const void *short_key[] = {"1.0", "3", "fieldsync", "a", "", "CURVE", f.dev_key};
	int klens[] = {-1, -1, -1, -1, 0, -1, 31};
	send_frames(f.req, 7, short_key, klens);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400", "a key is 32 bytes");

	const void *no_key[] = {"1.0", "4", "fieldsync", "a", "", "CURVE"};
	send_frames(f.req, 6, no_key, NULL);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400");

	const void *many[20] = {"1.0", "5", "fieldsync", "a", "", "CURVE"};
	int mlens[20] = {-1, -1, -1, -1, 0, -1};
	for (int i = 6; i < 20; i++) {
		many[i] = f.dev_key;
		mlens[i] = 32;
	}
	send_frames(f.req, 20, many, mlens);
	cr_assert(recv_reply(f.req, &r));
	cr_assert_str_eq(r.frame[2], "400", "too many frames");

	/* and it still serves a good request afterwards */
	curve_request(&f, "6", f.dev_key, &r);
	cr_assert_str_eq(r.frame[2], "200");
	zap_fixture_stop(&f);
}

Test(auth, zap_start_twice_fails_and_stop_is_safe)
{
	store *s = open_store();
	void *ctx = zmq_ctx_new();
	zap_handler *z = zap_start(ctx, s), *z2 = zap_start(ctx, s);
	cr_assert_not_null(z);
	cr_assert_null(z2, "one ZAP handler per context");
	zap_stop(&z);
	zap_stop(&z);   /* NULL: no-op */
	zap_stop(NULL); /* no-op */
	z = zap_start(ctx, s);
	cr_assert_not_null(z, "the endpoint is free again after a stop");
	zap_stop(&z);
	zmq_ctx_term(ctx);
	store_close(&s);
}

Test(auth, zap_stop_after_context_shutdown_does_not_hang, .timeout = 10)
{
	store *s = open_store();
	void *ctx = zmq_ctx_new();
	zap_handler *z = zap_start(ctx, s);
	cr_assert_not_null(z);
	zmq_ctx_shutdown(ctx);
	zap_stop(&z);
	zmq_ctx_term(ctx);
	store_close(&s);
}

/* What the transport relies on: with ZMQ_ZAP_ENFORCE_DOMAIN a CURVE server
 * without a ZAP handler admits nobody (without it, libzmq 4.3 admits all). */
static int
curve_hello_without_handler(bool enforce)
{
	void *ctx = zmq_ctx_new();
	void *r = zmq_socket(ctx, ZMQ_ROUTER), *d = zmq_socket(ctx, ZMQ_DEALER);
	char spub[41], ssec[41], cpub[41], csec[41], ep[128], buf[64];
	size_t eplen = sizeof(ep);
	int one = 1, zero = 0, timeout = 1000, n;
	zmq_curve_keypair(spub, ssec);
	zmq_curve_keypair(cpub, csec);
	zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof(one));
	zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, ssec, 40);
	zmq_setsockopt(r, ZMQ_ZAP_DOMAIN, "fieldsync", 9);
	if (enforce)
		cr_assert_eq(zmq_setsockopt(r, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)), 0);
	zmq_setsockopt(r, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	cr_assert_eq(zmq_bind(r, "tcp://127.0.0.1:*"), 0);
	zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen);
	zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, spub, 40);
	zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, cpub, 40);
	zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, csec, 40);
	cr_assert_eq(zmq_connect(d, ep), 0);
	zmq_send(d, "hi", 2, 0);
	n = zmq_recv(r, buf, sizeof(buf), 0);
	zmq_close(d);
	zmq_close(r);
	zmq_ctx_term(ctx);
	return n;
}

Test(auth, enforce_domain_fails_closed_without_handler)
{
	cr_assert_lt(curve_hello_without_handler(true), 0, "nobody gets through");
	/* why the option matters: libzmq's legacy default lets everybody in */
	cr_assert_gt(curve_hello_without_handler(false), 0);
}
