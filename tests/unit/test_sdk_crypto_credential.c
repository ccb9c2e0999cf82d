/*
 * Credentials (client-sdk/src/credential.c): parsing and validation of what
 * `fieldsyncd enroll` writes, the file's permissions, keeping it in a store
 * (the secret sealed in an encrypted store, never handed out), and fs_sync
 * over CURVE against an in-process CURVE server with a ZAP handler that
 * admits or refuses the tablet's key.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "../../client-sdk/src/internal.h"
#include "daemon.h"

static char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41], other_pub[41], other_sec[41];
static char *tmp;

static void
setup(void)
{
	cr_assert(zmq_has("curve"), "this libzmq has CURVE");
	cr_assert_eq(zmq_curve_keypair(srv_pub, srv_sec), 0);
	cr_assert_eq(zmq_curve_keypair(cli_pub, cli_sec), 0);
	cr_assert_eq(zmq_curve_keypair(other_pub, other_sec), 0);
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
}

static void
teardown(void)
{
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(credential, .init = setup, .fini = teardown, .timeout = 60);

/* A credential's JSON with one member replaced (value: raw JSON, or NULL to drop it). */
static char *
cred_json(const char *endpoint, const char *member, const char *value)
{
	const char *names[] = {"endpoint", "server_public_key", "client_public_key",
	                       "client_secret_key", "name", "scopes", "role"};
	char vals[7][256];
	snprintf(vals[0], 256, "\"%s\"", endpoint);
	snprintf(vals[1], 256, "\"%s\"", srv_pub);
	snprintf(vals[2], 256, "\"%s\"", cli_pub);
	snprintf(vals[3], 256, "\"%s\"", cli_sec);
	snprintf(vals[4], 256, "\"tab1\"");
	snprintf(vals[5], 256, "[\"team-a\",\"team-b\"]");
	snprintf(vals[6], 256, "\"device\"");
	char *out = malloc(4096);
	size_t n = 0;
	n += (size_t)snprintf(out + n, 4096 - n, "{");
	bool first = true;
	for (int i = 0; i < 7; i++) {
		const char *v = vals[i];
		if (member != NULL && strcmp(member, names[i]) == 0) {
			if (value == NULL)
				continue;
			v = value;
		}
		n += (size_t)snprintf(out + n, 4096 - n, "%s\"%s\":%s", first ? "" : ",", names[i], v);
		first = false;
	}
	snprintf(out + n, 4096 - n, "}");
	return out;
}

static fs_credential *
good(const char *endpoint)
{
	char *j = cred_json(endpoint, NULL, NULL), why[256] = "";
	fs_credential *c = NULL;
	cr_assert_eq(fs_credential_parse(j, strlen(j), &c, why, sizeof(why)), FS_OK, "%s", why);
	free(j);
	return c;
}

Test(credential, a_good_credential_parses)
{
	fs_credential *c = good("tcp://sync.example:7400");
	cr_expect_str_eq(c->endpoint, "tcp://sync.example:7400");
	cr_expect_str_eq(c->server_public_key, srv_pub);
	cr_expect_str_eq(c->client_public_key, cli_pub);
	cr_expect_str_eq(c->client_secret_key, cli_sec);
	cr_expect_str_eq(c->name, "tab1");
	cr_expect_str_eq(c->role, "device");
	cr_assert_eq(c->n_scopes, 2);
	cr_expect_str_eq(c->scopes[0], "team-a");
	cr_expect_str_eq(c->scopes[1], "team-b");
	fs_credential_free(&c);
	cr_expect_null(c);
	fs_credential_free(&c);
	fs_credential_free(NULL);

	/* unknown members are ignored (a newer daemon may add some) */
	char *j = cred_json("tcp://h:1", "role", "\"scheduler\",\"issued_at\":12");
	char why[256];
	cr_assert_eq(fs_credential_parse(j, strlen(j), &c, why, sizeof(why)), FS_OK, "%s", why);
	cr_expect_str_eq(c->role, "scheduler");
	fs_credential_free(&c);
	free(j);
}

static void
refused(const char *member, const char *value, const char *says)
{
	char *j = cred_json("tcp://h:7400", member, value), why[256] = "";
	fs_credential *c = NULL;
	cr_expect_eq(fs_credential_parse(j, strlen(j), &c, why, sizeof(why)), FS_ERR_INVALID,
	             "%s = %s", member, value ? value : "(missing)");
	cr_expect_null(c);
	cr_expect_not_null(strstr(why, says), "%s: \"%s\" says \"%s\"", member, why, says);
	cr_expect_null(strstr(why, cli_sec), "the secret is never quoted");
	free(j);
}

Test(credential, every_member_is_checked)
{
	const char *members[] = {"endpoint", "server_public_key", "client_public_key",
	                         "client_secret_key", "name", "scopes", "role"};
	for (int i = 0; i < 7; i++) {
		refused(members[i], NULL, "has no");
		refused(members[i], "42", "must be");
	}
	refused("server_public_key", "\"abc\"", "40 characters");
	char bad[41];
	snprintf(bad, sizeof(bad), "%s", srv_pub);
	bad[7] = '~'; /* not in the Z85 alphabet */
	char q[64];
	snprintf(q, sizeof(q), "\"%s\"", bad);
	refused("server_public_key", q, "not a valid Z85 key");
	refused("client_public_key", "\"########################################\"",
	        "not a valid Z85 key"); /* every group above 2^32 */
	snprintf(q, sizeof(q), "\"%s\"", other_pub);
	refused("client_public_key", q, "not the public key of");
	snprintf(q, sizeof(q), "\"%s\"", cli_pub);
	refused("server_public_key", q, "same key");
	refused("scopes", "[]", "1 to");
	refused("scopes", "\"team-a\"", "must be an array");
	refused("scopes", "[\"Team A\"]", "scope 1");
	refused("scopes", "[\"team-a\",7]", "scope 2");
	refused("scopes", "[\"team-a\",\"team-a\"]", "are the same");
	refused("role", "\"admin\"", "\"device\" or \"scheduler\"");
	refused("name", "\"\"", "\"name\" must be");
	refused("name", "\"tab\\n1\"", "\"name\" must be");
	refused("endpoint", "\"tcp://*:7400\"", "no '*'");
	refused("endpoint", "\"sync.example:7400\"", "ZeroMQ address");
	refused("endpoint", "\"\"", "ZeroMQ address");

	fs_credential *c = NULL;
	char why[256];
	cr_expect_eq(fs_credential_parse("not json", 8, &c, why, sizeof(why)), FS_ERR_INVALID);
	cr_expect_not_null(strstr(why, "not valid JSON"), "%s", why);
	cr_expect_eq(fs_credential_parse("[1]", 3, &c, why, sizeof(why)), FS_ERR_INVALID);
	cr_expect_not_null(strstr(why, "JSON object"), "%s", why);
	cr_expect_eq(fs_credential_parse("{\"endpoint\":", 12, &c, why, sizeof(why)),
	             FS_ERR_INVALID, "truncated");
	char *j = cred_json("tcp://h:1", NULL, NULL);
	cr_expect_eq(fs_credential_parse(j, strlen(j) - 1, &c, why, sizeof(why)), FS_ERR_INVALID,
	             "the closing brace cut off");
	free(j);
	cr_expect_eq(fs_credential_parse(NULL, 0, &c, why, sizeof(why)), FS_ERR_INVALID);
	cr_expect_null(c);
}

static const char *
write_cred(const char *name, const char *text, mode_t mode)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

Test(credential, files_others_may_read_are_refused)
{
	char *j = cred_json("tcp://h:7400", NULL, NULL), why[512] = "";
	fs_credential *c = NULL;
	cr_assert_eq(fs_credential_load(write_cred("c.json", j, 0600), &c, why, sizeof(why)), FS_OK,
	             "%s", why);
	cr_expect_str_eq(c->name, "tab1");
	fs_credential_free(&c);

	cr_expect_eq(fs_credential_load(write_cred("c.json", j, 0644), &c, why, sizeof(why)),
	             FS_ERR_INVALID);
	cr_expect_null(c);
	cr_expect_not_null(strstr(why, "accessible by group or others"), "%s", why);
	cr_expect_not_null(strstr(why, "0644"), "%s", why);
	cr_expect_not_null(strstr(why, "secret key"), "%s", why);
	cr_expect_eq(fs_credential_load(write_cred("c.json", j, 0640), &c, why, sizeof(why)),
	             FS_ERR_INVALID, "group-readable");

	char path[512];
	snprintf(path, sizeof(path), "%s/missing.json", tmp);
	cr_expect_eq(fs_credential_load(path, &c, why, sizeof(why)), FS_ERR_NOT_FOUND);
	cr_expect_eq(fs_credential_load(tmp, &c, why, sizeof(why)), FS_ERR_INVALID, "a directory");

	char *big = malloc(70000);
	memset(big, ' ', 69999);
	big[69999] = '\0';
	memcpy(big, j, strlen(j));
	cr_expect_eq(fs_credential_load(write_cred("big.json", big, 0600), &c, why, sizeof(why)),
	             FS_ERR_INVALID);
	cr_expect_not_null(strstr(why, "larger than"), "%s", why);
	cr_expect_eq(fs_credential_load(write_cred("bad.json", "{\"name\":1}", 0600), &c, why,
	                                sizeof(why)), FS_ERR_INVALID);
	cr_expect_not_null(strstr(why, "bad.json"), "the message names the file: %s", why);
	free(big);
	free(j);
}

static bool
dir_has(const char *dir, const char *needle)
{
	char path[512];
	bool hit = false;
	const char *files[] = {"data.mdb", "lock.mdb"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		struct stat sb;
		cr_assert_eq(fstat(fileno(f), &sb), 0);
		char *buf = malloc((size_t)sb.st_size);
		size_t n = fread(buf, 1, (size_t)sb.st_size, f);
		fclose(f);
		for (size_t k = 0; k + strlen(needle) <= n && !hit; k++)
			hit = memcmp(buf + k, needle, strlen(needle)) == 0;
		free(buf);
	}
	return hit;
}

Test(credential, a_store_keeps_it_and_never_hands_out_the_secret)
{
	fs_credential *c = good("tcp://sync.example:7400"), *back = NULL;
	fs_store *s = NULL;
	fs_store_opts o;
	char sdir[512];
	uint8_t key[32];
	memset(key, 7, sizeof(key));

	snprintf(sdir, sizeof(sdir), "%s/plain", tmp);
	memset(&o, 0, sizeof(o));
	o.credential = c;
	o.default_scope = "team-c";
	cr_expect_eq(fs_store_create_ex(sdir, &o, &s), FS_ERR_INVALID, "a scope not granted");
	o.default_scope = NULL;
	cr_expect_eq(fs_store_create_ex(sdir, &o, &s), FS_ERR_KEY_REQUIRED,
	             "a store that holds a credential is always encrypted");
	cr_expect_null(s);
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = "k1";
	cr_assert_eq(fs_store_create_ex(sdir, &o, &s), FS_OK);
	cr_expect_str_eq(fs_store_default_scope(s), "team-a", "the first scope granted");
	cr_assert_eq(fs_store_credential(s, &back), FS_OK);
	cr_expect_null(back->client_secret_key);
	cr_expect_str_eq(back->name, "tab1");
	cr_expect_str_eq(back->client_public_key, cli_pub);
	cr_assert_eq(back->n_scopes, 2);
	fs_credential_free(&back);
	cr_assert_eq(sdk_store_credential_secret(s, &back), FS_OK);
	cr_expect_str_eq(back->client_secret_key, cli_sec);
	fs_credential_free(&back);
	fs_store_close(&s);

	snprintf(sdir, sizeof(sdir), "%s/enc", tmp);
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = "k1";
	o.default_scope = "team-b";
	cr_assert_eq(fs_store_create_ex(sdir, &o, &s), FS_OK);
	cr_expect_str_eq(fs_store_default_scope(s), "team-b");
	fs_store_close(&s);
	cr_expect_not(dir_has(sdir, cli_sec), "the secret key is sealed in an encrypted store");
	cr_expect(dir_has(sdir, cli_pub), "(the public key is not secret)");
	cr_assert_eq(fs_store_open_ex(sdir, &o, &s), FS_OK);
	cr_assert_eq(sdk_store_credential_secret(s, &back), FS_OK);
	cr_expect_str_eq(back->client_secret_key, cli_sec);
	fs_credential_free(&back);

	/* a replacement; a hand-made credential is checked as well */
	fs_credential bad = *c;
	bad.client_secret_key = other_sec;
	cr_expect_eq(fs_store_set_credential(s, &bad), FS_ERR_INVALID, "a key pair that does not match");
	bad = *c;
	bad.role = "root";
	cr_expect_eq(fs_store_set_credential(s, &bad), FS_ERR_INVALID);
	fs_credential nc = *c;
	nc.client_public_key = other_pub;
	nc.client_secret_key = other_sec;
	nc.name = "tab1-reenrolled";
	cr_assert_eq(fs_store_set_credential(s, &nc), FS_OK);
	cr_assert_eq(sdk_store_credential_secret(s, &back), FS_OK);
	cr_expect_str_eq(back->client_secret_key, other_sec);
	cr_expect_str_eq(back->name, "tab1-reenrolled");
	fs_credential_free(&back);
	fs_store_close(&s);

	snprintf(sdir, sizeof(sdir), "%s/none", tmp);
	cr_assert_eq(fs_store_create(sdir, NULL, &s), FS_OK);
	cr_expect_eq(fs_store_credential(s, &back), FS_ERR_NOT_FOUND);
	fs_sync_opts so;
	memset(&so, 0, sizeof(so));
	cr_expect_eq(fs_sync(s, &so, NULL), FS_ERR_INVALID, "no endpoint and no credential");
	fs_store_close(&s);
	fs_credential_free(&c);
}

/* ---- a CURVE server with a ZAP handler, in a thread --------------------- */

/* tests/arm.sh: under qemu-user a new thread hangs, and ZeroMQ makes some */
#ifndef FS_TEST_NO_THREADS

typedef struct fake {
	void *ctx, *router, *zap;
	char endpoint[128];
	bool admit;
	volatile bool stop;
	pthread_t th;
	int zap_requests, requests;
	char seen_key[41], seen_mechanism[16];
} fake;

static void
zap_answer(fake *f)
{
	zmq_msg_t part[8];
	int n = 0, more = 1;
	size_t ml = sizeof(more);
	while (more && n < 8) {
		zmq_msg_init(&part[n]);
		if (zmq_msg_recv(&part[n], f->zap, 0) < 0)
			break;
		n++;
		zmq_getsockopt(f->zap, ZMQ_RCVMORE, &more, &ml);
	}
	if (n >= 7) { /* version, request id, domain, address, identity, mechanism, key */
		snprintf(f->seen_mechanism, sizeof(f->seen_mechanism), "%.*s",
		         (int)zmq_msg_size(&part[5]), (char *)zmq_msg_data(&part[5]));
		if (zmq_msg_size(&part[6]) == 32)
			zmq_z85_encode(f->seen_key, zmq_msg_data(&part[6]), 32);
		f->zap_requests++;
		zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(f->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
		zmq_send(f->zap, f->admit ? "200" : "400", 3, ZMQ_SNDMORE);
		zmq_send(f->zap, f->admit ? "OK" : "not enrolled", f->admit ? 2 : 12, ZMQ_SNDMORE);
		zmq_send(f->zap, "tab1", 4, ZMQ_SNDMORE);
		zmq_send(f->zap, "", 0, 0);
	}
	for (int i = 0; i < n; i++)
		zmq_msg_close(&part[i]);
}

static void
serve(fake *f)
{
	zmq_msg_t id, body;
	zmq_msg_init(&id);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&id, f->router, 0) < 0 || zmq_msg_recv(&body, f->router, 0) < 0)
		goto out;
	Fieldsync__V1__Envelope *e =
	    fieldsync__v1__envelope__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
	if (e == NULL)
		goto out;
	f->requests++;
	Fieldsync__V1__Envelope r = FIELDSYNC__V1__ENVELOPE__INIT;
	Fieldsync__V1__Welcome w = FIELDSYNC__V1__WELCOME__INIT;
	Fieldsync__V1__PullReply pr = FIELDSYNC__V1__PULL_REPLY__INIT;
	r.request_id = e->request_id;
	if (e->body_case == FIELDSYNC__V1__ENVELOPE__BODY_HELLO) {
		w.protocol = 1;
		w.server_id = "fake";
		w.max_changes_per_push = 100;
		r.body_case = FIELDSYNC__V1__ENVELOPE__BODY_WELCOME;
		r.welcome = &w;
	} else {
		r.body_case = FIELDSYNC__V1__ENVELOPE__BODY_PULL_REPLY;
		r.pull_reply = &pr;
	}
	fieldsync__v1__envelope__free_unpacked(e, NULL);
	uint8_t buf[256];
	size_t n = fieldsync__v1__envelope__pack(&r, buf);
	zmq_send(f->router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
	zmq_send(f->router, buf, n, 0);
out:
	zmq_msg_close(&id);
	zmq_msg_close(&body);
}

static void *
fake_run(void *arg)
{
	fake *f = arg;
	while (!f->stop) {
		zmq_pollitem_t it[2] = {{f->zap, 0, ZMQ_POLLIN, 0}, {f->router, 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(it, 2, 50) <= 0)
			continue;
		if (it[0].revents & ZMQ_POLLIN)
			zap_answer(f);
		if (it[1].revents & ZMQ_POLLIN)
			serve(f);
	}
	return NULL;
}

static fake *
fake_start(bool admit)
{
	fake *f = calloc(1, sizeof(*f));
	int one = 1, zero = 0;
	size_t el = sizeof(f->endpoint);
	f->admit = admit;
	f->ctx = zmq_ctx_new();
	f->zap = zmq_socket(f->ctx, ZMQ_REP);
	cr_assert_eq(zmq_bind(f->zap, "inproc://zeromq.zap.01"), 0);
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(f->zap, ZMQ_LINGER, &zero, sizeof(zero));
	cr_assert_eq(zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &one, sizeof(one)), 0);
	cr_assert_eq(zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, srv_sec, 40), 0);
	cr_assert_eq(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
	cr_assert_eq(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &el), 0);
	cr_assert_eq(pthread_create(&f->th, NULL, fake_run, f), 0);
	return f;
}

static void
fake_stop(fake *f)
{
	f->stop = true;
	pthread_join(f->th, NULL);
	zmq_close(f->router);
	zmq_close(f->zap);
	zmq_ctx_term(f->ctx);
	free(f);
}

/* An (encrypted) store set up from a credential for endpoint, with server key spk. */
static fs_store *
store_for(const char *name, const char *endpoint, const char *spk)
{
	fs_credential *c = good(endpoint);
	fs_credential copy = *c;
	fs_store *s = NULL;
	fs_store_opts o;
	char sdir[512];
	copy.server_public_key = spk;
	uint8_t key[32];
	memset(key, 9, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.credential = &copy;
	o.key = key; /* a store with a credential is always encrypted */
	o.key_len = sizeof(key);
	o.key_id = "k1";
	snprintf(sdir, sizeof(sdir), "%s/%s", tmp, name);
	cr_assert_eq(fs_store_create_ex(sdir, &o, &s), FS_OK);
	fs_credential_free(&c);
	return s;
}

Test(credential, sync_talks_curve_with_the_credentials_keys)
{
	fake *f = fake_start(true);
	fs_store *s = store_for("t", f->endpoint, srv_pub);
	fs_sync_opts o;
	memset(&o, 0, sizeof(o)); /* no endpoint: the credential's */
	o.timeout_ms = 10000;
	fs_err e = fs_sync(s, &o, NULL);
	cr_expect_eq(e, FS_OK, "%s", fs_strerror(e));
	cr_expect_geq(f->zap_requests, 1, "the server asked ZAP about us");
	cr_expect_str_eq(f->seen_mechanism, "CURVE");
	cr_expect_str_eq(f->seen_key, cli_pub, "authenticated with the credential's key");
	cr_expect_geq(f->requests, 2, "Hello and Pull arrived");
	fs_store_close(&s);
	fake_stop(f);
}

Test(credential, a_refused_key_ends_the_sync_at_once_with_refused)
{
	fake *f = fake_start(false);
	fs_store *s = store_for("t", f->endpoint, srv_pub);
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 20000;
	int64_t t0 = sdk_mono_ms();
	fs_err e = fs_sync(s, &o, NULL);
	/* a refused key has its own code (issue 12), not a network failure */
	cr_expect_eq(e, FS_ERR_KEY_REFUSED, "%s", fs_strerror(e));
	cr_expect_lt(sdk_mono_ms() - t0, 10000, "not after the timeout");
	cr_expect_eq(f->requests, 0, "nothing got through");
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	cr_expect_not_null(strstr(st.last_error_msg, "refused this device's key"), "%s",
	                   st.last_error_msg);
	fs_store_close(&s);
	fake_stop(f);
}

Test(credential, a_server_without_the_pinned_key_gets_nothing)
{
	fake *f = fake_start(true);
	fs_store *s = store_for("t", f->endpoint, other_pub); /* not the server's key */
	fs_sync_opts o;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 1500;
	fs_err e = fs_sync(s, &o, NULL);
	cr_expect(e == FS_ERR_TIMEOUT || e == FS_ERR_REFUSED, "%s", fs_strerror(e));
	cr_expect_eq(f->requests, 0, "no request reached an impostor");
	fs_status st;
	cr_assert_eq(fs_status_get(s, &st), FS_OK);
	if (e == FS_ERR_REFUSED)
		cr_expect_not_null(strstr(st.last_error_msg, "does not hold the server key"), "%s",
		                   st.last_error_msg);
	fs_store_close(&s);
	fake_stop(f);
}

Test(credential, watcher_curve_keys_are_checked)
{
	fs_watch_opts o;
	fs_watcher *w = NULL;
	memset(&o, 0, sizeof(o));
	o.sync_endpoint = "tcp://127.0.0.1:1";
	o.reminder_endpoint = "tcp://127.0.0.1:2";
	o.curve_server_key = srv_pub;
	cr_expect_eq(fs_watcher_open(&o, &w), FS_ERR_INVALID, "all three or none");
	o.curve_public_key = cli_pub;
	o.curve_secret_key = other_sec;
	cr_expect_eq(fs_watcher_open(&o, &w), FS_ERR_INVALID, "a pair that does not match");
	o.curve_secret_key = "short";
	cr_expect_eq(fs_watcher_open(&o, &w), FS_ERR_INVALID);
	cr_expect_null(w);
	o.curve_secret_key = cli_sec;
	cr_assert_eq(fs_watcher_open(&o, &w), FS_OK);
	const fs_reminder *ev = NULL;
	cr_expect_eq(fs_watcher_next(w, 200, &ev), FS_ERR_TIMEOUT, "nobody there");
	fs_watcher_close(&w);
	cr_expect_null(w);
}
#endif
