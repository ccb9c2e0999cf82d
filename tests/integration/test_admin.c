/*
 * The admin subcommands of the real fieldsyncd binary (init, enroll, revoke,
 * devices, audit), and a real CURVE handshake through the ZAP handler with
 * the keys they made: a ROUTER in this process, DEALERs as devices, and
 * `fieldsyncd revoke` run as another process while this one holds the store.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsyncd.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN /* a draft option in zmq.h 4.3; libzmq takes it */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static char *g_tmp;
static char g_dir[600];

static void
setup(void)
{
	log_set_level(LOG_ERROR);
	g_tmp = fs_test_tmpdir();
	cr_assert_not_null(g_tmp);
	snprintf(g_dir, sizeof(g_dir), "%s/data", g_tmp);
	unsetenv("FIELDSYNC_DATA_DIR");
}

static void
teardown(void)
{
	if (g_tmp != NULL) {
		fs_test_rm_rf(g_tmp);
		free(g_tmp);
		g_tmp = NULL;
	}
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 120);

typedef struct run_result {
	int code;
	char *out, *err;
} run_result;

static void
run_free(run_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Appends what fd has to *buf; false at EOF. */
static bool
drain(int fd, char **buf, size_t *len)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n <= 0)
		return n < 0 && errno == EINTR;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

/* Runs fieldsyncd with the NULL-terminated args; collects exit code and output. */
static run_result
run(const char *arg, ...)
{
	const char *argv[32] = {FS_DAEMON_BIN};
	int argc = 1, po[2], pe[2];
	va_list ap;
	run_result r = {-1, calloc(1, 1), calloc(1, 1)};
	size_t lo = 0, le = 0;

	va_start(ap, arg);
	for (const char *a = arg; a != NULL && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	cr_assert_eq(pipe(po), 0);
	cr_assert_eq(pipe(pe), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execv(FS_DAEMON_BIN, (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	bool open_o = true, open_e = true;
	while (open_o || open_e) {
		struct pollfd p[2] = {{open_o ? po[0] : -1, POLLIN, 0}, {open_e ? pe[0] : -1, POLLIN, 0}};
		if (poll(p, 2, 30000) <= 0)
			break;
		if (p[0].revents)
			open_o = drain(po[0], &r.out, &lo);
		if (p[1].revents)
			open_e = drain(pe[0], &r.err, &le);
	}
	close(po[0]);
	close(pe[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	/* a sanitizer report in the child fails the test (its exit code may not) */
	cr_assert_null(strstr(r.err, "Sanitizer"), "%s", r.err);
	cr_assert_null(strstr(r.err, "runtime error"), "%s", r.err);
	return r;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s missing", path);
	return st.st_mode & 07777;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
init_ok(void)
{
	run_result r = run("init", "--data-dir", g_dir, "--actor", "ops-anna", NULL);
	cr_assert_eq(r.code, 0, "init: %s", r.err);
	run_free(&r);
}

static void
cred_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s.json", g_tmp, name);
}

static run_result
enroll(const char *name, const char *scopes, const char *role)
{
	char out[700];
	cred_path(out, sizeof(out), name);
	return run("enroll", "--data-dir", g_dir, "--name", name, "--scopes", scopes, "--role", role,
	           "--endpoint", "tcp://sync.example.org:7400", "--out", out, "--actor", "ops-anna",
	           NULL);
}

static void
enroll_ok(const char *name, const char *scopes, const char *role)
{
	run_result r = enroll(name, scopes, role);
	cr_assert_eq(r.code, 0, "enroll %s: %s", name, r.err);
	run_free(&r);
}

typedef struct credential {
	char endpoint[256], server_pub[41], client_pub[41], client_sec[41], name[65], role[16];
	char scopes[4][65];
	size_t n_scopes;
} credential;

static credential
load_credential(const char *name)
{
	char path[700];
	credential c;
	memset(&c, 0, sizeof(c));
	cred_path(path, sizeof(path), name);
	cr_assert_eq(mode_of(path), 0600, "%s", path);
	char *text = slurp(path);
	cJSON *o = cJSON_Parse(text);
	cr_assert(cJSON_IsObject(o), "%s", text);
	cr_assert_eq(cJSON_GetArraySize(o), 7, "exactly seven keys");
	const char *keys[] = {"endpoint", "server_public_key", "client_public_key",
	                      "client_secret_key", "name", "role"};
	char *dst[] = {c.endpoint, c.server_pub, c.client_pub, c.client_sec, c.name, c.role};
	size_t cap[] = {sizeof(c.endpoint), 41, 41, 41, sizeof(c.name), sizeof(c.role)};
	for (size_t i = 0; i < 6; i++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
		cr_assert(cJSON_IsString(v), "%s", keys[i]);
		cr_assert_lt(strlen(v->valuestring), cap[i], "%s", keys[i]);
		strcpy(dst[i], v->valuestring);
	}
	cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scopes"), *it;
	cr_assert(cJSON_IsArray(sc));
	cJSON_ArrayForEach(it, sc)
	{
		cr_assert(cJSON_IsString(it));
		cr_assert_lt(c.n_scopes, 4);
		snprintf(c.scopes[c.n_scopes++], 65, "%s", it->valuestring);
	}
	cJSON_Delete(o);
	free(text);
	return c;
}

/* ---- init --------------------------------------------------------------------- */

Test(admin, init_makes_store_and_keys_once)
{
	char p[700];
	run_result r = run("init", "--data-dir", g_dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	snprintf(p, sizeof(p), "%s/server.key", g_dir);
	cr_assert_eq(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/server.pub", g_dir);
	cr_assert_eq(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/data.mdb", g_dir);
	cr_assert_eq(access(p, F_OK), 0, "the store exists");
	cr_assert_eq(mode_of(g_dir), 0700);

	char pub[41], sec[41], err[600];
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) == FSD_OK, "%s", err);
	cr_assert_eq(strlen(r.out), 41, "stdout is the public key: '%s'", r.out);
	cr_assert_eq(strncmp(r.out, pub, 40), 0, "prints the server public key");
	cr_assert_null(strstr(r.out, sec));
	cr_assert_null(strstr(r.err, sec));
	run_free(&r);

	r = run("init", "--data-dir", g_dir, NULL);
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.err, "already initialised"), "%s", r.err);
	run_free(&r);
	char pub2[41], sec2[41];
	cr_assert(zap_keys_load(g_dir, pub2, sec2, err, sizeof(err)) == FSD_OK);
	cr_assert_str_eq(pub2, pub, "the keys were not replaced");
	cr_assert_str_eq(sec2, sec);
}

Test(admin, usage_errors_exit_2)
{
	run_result r = run("init", NULL);
	cr_assert_eq(r.code, 2);
	cr_assert_not_null(strstr(r.err, "--data-dir is required"), "%s", r.err);
	run_free(&r);
	r = run("init", "--data-dir", g_dir, "--bogus", NULL);
	cr_assert_eq(r.code, 2);
	cr_assert_not_null(strstr(r.err, "--bogus"), "%s", r.err);
	run_free(&r);
	r = run("devices", "--data-dir", g_dir, "extra", NULL);
	cr_assert_eq(r.code, 2);
	run_free(&r);
	const char *cmds[] = {"init", "enroll", "revoke", "devices", "audit"};
	for (size_t i = 0; i < 5; i++) {
		r = run(cmds[i], "--help", NULL);
		cr_assert_eq(r.code, 0, "%s --help", cmds[i]);
		char want[64];
		snprintf(want, sizeof(want), "usage: fieldsyncd %s", cmds[i]);
		cr_assert_not_null(strstr(r.out, want), "%s", r.out);
		run_free(&r);
	}
	/* not initialised: said so, nothing created */
	r = run("devices", "--data-dir", g_dir, NULL);
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.err, "fieldsyncd init"), "%s", r.err);
	cr_assert_neq(access(g_dir, F_OK), 0);
	run_free(&r);
}

Test(admin, data_dir_from_environment)
{
	setenv("FIELDSYNC_DATA_DIR", g_dir, 1);
	run_result r = run("init", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	r = run("devices", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	unsetenv("FIELDSYNC_DATA_DIR");
}

/* ---- enroll --------------------------------------------------------------------- */

Test(admin, enroll_writes_a_private_credential)
{
	init_ok();
	run_result r = enroll("tab-1", "team-a,team-b", "device");
	cr_assert_eq(r.code, 0, "%s", r.err);
	credential c = load_credential("tab-1");
	cr_assert_str_eq(c.endpoint, "tcp://sync.example.org:7400");
	cr_assert_str_eq(c.name, "tab-1");
	cr_assert_str_eq(c.role, "device");
	cr_assert_eq(c.n_scopes, 2);
	cr_assert_str_eq(c.scopes[0], "team-a");
	cr_assert_str_eq(c.scopes[1], "team-b");
	cr_assert_eq(strlen(c.server_pub), 40);
	cr_assert_eq(strlen(c.client_pub), 40);
	cr_assert_eq(strlen(c.client_sec), 40);
	char pub[41], sec[41], err[600], derived[41];
	cr_assert(zap_keys_load(g_dir, pub, sec, err, sizeof(err)) == FSD_OK);
	cr_assert_str_eq(c.server_pub, pub);
	cr_assert_eq(zmq_curve_public(derived, c.client_sec), 0);
	cr_assert_str_eq(derived, c.client_pub, "a matching key pair");
	cr_assert_null(strstr(r.out, c.client_sec), "the secret is only in the file");
	cr_assert_null(strstr(r.err, c.client_sec));
	run_free(&r);

	/* the daemon's files hold no trace of the client secret key */
	char p[700];
	snprintf(p, sizeof(p), "%s/data.mdb", g_dir);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	FILE *f = fopen(p, "rb");
	cr_assert_not_null(f);
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	cr_assert_eq(fread(buf, 1, n, f), n);
	fclose(f);
	bool found = false;
	for (size_t i = 0; !found && i + 40 <= n; i++)
		found = memcmp(buf + i, c.client_sec, 40) == 0;
	free(buf);
	cr_assert_not(found, "client secret key stored in data.mdb");

	/* scheduler role */
	enroll_ok("sched-1", "team-a", "scheduler");
	credential s = load_credential("sched-1");
	cr_assert_str_eq(s.role, "scheduler");
}

Test(admin, enroll_refusals)
{
	init_ok();
	enroll_ok("tab-1", "team-ab", "device");

	run_result r = enroll("tab-1", "other", "device");
	cr_assert_eq(r.code, 1, "duplicate name");
	cr_assert_not_null(strstr(r.err, "already enrolled"), "%s", r.err);
	run_free(&r);

	r = enroll("tab-2", "team-a", "device");
	cr_assert_eq(r.code, 1, "a prefix of team-ab");
	cr_assert_not_null(strstr(r.err, "prefix"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "team-ab"), "%s", r.err);
	run_free(&r);
	r = enroll("tab-3", "team-abc", "device");
	cr_assert_eq(r.code, 1, "team-ab is a prefix of it");
	cr_assert_not_null(strstr(r.err, "prefix"), "%s", r.err);
	run_free(&r);
	char p[700];
	cred_path(p, sizeof(p), "tab-2");
	cr_assert_neq(access(p, F_OK), 0, "no credential for a refused enrollment");

	r = enroll("tab-4", "team-c", "admin");
	cr_assert_eq(r.code, 2, "bad role");
	cr_assert_not_null(strstr(r.err, "--role"), "%s", r.err);
	run_free(&r);
	r = enroll("Tab 5", "team-c", "device");
	cr_assert_eq(r.code, 2, "bad name");
	run_free(&r);
	r = enroll("tab-6", "Team C", "device");
	cr_assert_eq(r.code, 2, "bad scope");
	run_free(&r);
	r = enroll("tab-7", "team-c,team-c", "device");
	cr_assert_eq(r.code, 2, "a scope twice");
	run_free(&r);

	/* an existing credential file is never overwritten */
	cred_path(p, sizeof(p), "tab-8");
	FILE *f = fopen(p, "w");
	fputs("keep me\n", f);
	fclose(f);
	r = enroll("tab-8", "team-c", "device");
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.err, "never overwritten"), "%s", r.err);
	run_free(&r);
	char *kept = slurp(p);
	cr_assert_str_eq(kept, "keep me\n");
	free(kept);
	/* ...and the name was not taken by the failed attempt */
	unlink(p);
	enroll_ok("tab-8", "team-c", "device");

	/* the server key must be private for enroll too */
	snprintf(p, sizeof(p), "%s/server.key", g_dir);
	chmod(p, 0644);
	r = enroll("tab-9", "team-d", "device");
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.err, "chmod 600"), "%s", r.err);
	run_free(&r);
}

/* ---- devices, revoke, audit --------------------------------------------------- */

Test(admin, devices_revoke_audit)
{
	init_ok();
	enroll_ok("tab-1", "team-a,team-b", "device");
	enroll_ok("sched-1", "team-a", "scheduler");
	credential c1 = load_credential("tab-1"), c2 = load_credential("sched-1");

	run_result r = run("devices", "--data-dir", g_dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, "tab-1"));
	cr_assert_not_null(strstr(r.out, "sched-1"));
	cr_assert_not_null(strstr(r.out, c1.client_pub));
	cr_assert_not_null(strstr(r.out, "team-a,team-b"));
	cr_assert_not_null(strstr(r.out, "scheduler"));
	cr_assert_null(strstr(r.out, c1.client_sec));
	cr_assert_null(strstr(r.out, c2.client_sec));
	cr_assert_null(strstr(r.err, c1.client_sec));
	run_free(&r);

	r = run("revoke", "--data-dir", g_dir, "--name", "tab-1", "--actor", "ops-bo", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	r = run("revoke", "--data-dir", g_dir, "--name", "tab-1", NULL);
	cr_assert_eq(r.code, 0, "revoking twice is harmless");
	cr_assert_not_null(strstr(r.out, "already revoked"), "%s", r.out);
	run_free(&r);
	r = run("revoke", "--data-dir", g_dir, "--name", "nobody", NULL);
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.err, "nobody"), "%s", r.err);
	run_free(&r);

	r = run("devices", "--data-dir", g_dir, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_null(strstr(r.out, c1.client_sec));
	cr_assert_null(strstr(r.out, c2.client_sec));
	cJSON *a = cJSON_Parse(r.out);
	cr_assert(cJSON_IsArray(a), "%s", r.out);
	cr_assert_eq(cJSON_GetArraySize(a), 2);
	cJSON *d0 = cJSON_GetArrayItem(a, 0), *d1 = cJSON_GetArrayItem(a, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(d0, "name")->valuestring, "sched-1");
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(d0, "revoked")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(d0, "revoked_at")));
	cr_assert_str_eq(cJSON_GetObjectItem(d1, "name")->valuestring, "tab-1");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(d1, "revoked")));
	const char *when = cJSON_GetObjectItem(d1, "revoked_at")->valuestring;
	cr_assert_eq(strlen(when), 20, "ISO-8601 UTC: %s", when);
	cr_assert_eq(when[10], 'T');
	cr_assert_eq(when[19], 'Z');
	cr_assert_str_eq(cJSON_GetObjectItem(d1, "public_key")->valuestring, c1.client_pub);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d1, "scopes")), 2);
	cr_assert_null(cJSON_GetObjectItem(d1, "client_secret_key"));
	cJSON_Delete(a);
	run_free(&r);

	r = run("audit", "--data-dir", g_dir, "--json", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_null(strstr(r.out, c1.client_sec));
	cr_assert_null(strstr(r.out, c2.client_sec));
	a = cJSON_Parse(r.out);
	cr_assert(cJSON_IsArray(a), "%s", r.out);
	cr_assert_eq(cJSON_GetArraySize(a), 4, "init, enroll, enroll, revoke (not the repeat)");
	const char *actions[] = {"init", "enroll", "enroll", "revoke"};
	const char *actors[] = {"ops-anna", "ops-anna", "ops-anna", "ops-bo"};
	const char *ids[] = {NULL, "tab-1", "sched-1", "tab-1"};
	double last_ts = 0;
	for (int i = 0; i < 4; i++) {
		cJSON *e = cJSON_GetArrayItem(a, i);
		cr_assert_eq(cJSON_GetObjectItem(e, "seq")->valuedouble, i + 1);
		cr_assert_str_eq(cJSON_GetObjectItem(e, "action")->valuestring, actions[i]);
		cr_assert_str_eq(cJSON_GetObjectItem(e, "actor")->valuestring, actors[i]);
		if (ids[i] != NULL) {
			cr_assert_str_eq(cJSON_GetObjectItem(e, "collection")->valuestring, "device");
			cr_assert_str_eq(cJSON_GetObjectItem(e, "id")->valuestring, ids[i]);
		}
		double ts = cJSON_GetObjectItem(e, "ts_ms")->valuedouble;
		cr_assert_geq(ts, last_ts, "in time order");
		last_ts = ts;
	}
	cr_assert_not_null(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 1), "detail")->valuestring,
	                          "team-a,team-b"));
	cJSON_Delete(a);
	run_free(&r);

	r = run("audit", "--data-dir", g_dir, NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	char *p1 = strstr(r.out, "init"), *p2 = strstr(r.out, "enroll"), *p3 = strstr(r.out, "revoke");
	cr_assert(p1 && p2 && p3 && p1 < p2 && p2 < p3, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "device/tab-1"), "%s", r.out);
	cr_assert_null(strstr(r.out, c1.client_sec));
	run_free(&r);
}

/* ---- a real CURVE handshake through the ZAP handler ------------------------------ */

#define ADMITTED_MS 5000 /* an admitted device: generous, for loaded CI machines */
#define REFUSED_MS 1000  /* a refused one: nothing may arrive in this long */

typedef struct server {
	store *s;
	void *ctx;
	zap_handler *zap;
	void *router;
	char endpoint[128];
	char pub[41];
} server;

static void
server_start(server *sv)
{
	char sec[41], err[600];
	size_t len = sizeof(sv->endpoint);
	int one = 1, zero = 0, timeout = 1000;
	memset(sv, 0, sizeof(*sv));
	cr_assert(zap_keys_load(g_dir, sv->pub, sec, err, sizeof(err)) == FSD_OK, "%s", err);
	sv->s = store_open(g_dir, 1ULL << 30, 64ULL << 30);
	cr_assert_not_null(sv->s);
	sv->ctx = zmq_ctx_new();
	sv->zap = zap_start(sv->ctx, sv->s); /* before the server socket binds */
	cr_assert_not_null(sv->zap);
	sv->router = zmq_socket(sv->ctx, ZMQ_ROUTER);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_LINGER, &zero, sizeof(zero)), 0);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_CURVE_SERVER, &one, sizeof(one)), 0);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_ZAP_DOMAIN, "fieldsync", 9), 0);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)), 0);
	cr_assert_eq(zmq_setsockopt(sv->router, ZMQ_RCVTIMEO, &timeout, sizeof(timeout)), 0);
	cr_assert_eq(zmq_bind(sv->router, "tcp://127.0.0.1:*"), 0);
	cr_assert_eq(zmq_getsockopt(sv->router, ZMQ_LAST_ENDPOINT, sv->endpoint, &len), 0);
	memset(sec, 0, sizeof(sec));
}

static void
server_stop(server *sv)
{
	zmq_close(sv->router); /* the server socket first, then its ZAP handler */
	zap_stop(&sv->zap);
	zmq_ctx_term(sv->ctx);
	store_close(&sv->s);
}

/* A DEALER as a device: CURVE with these keys, or the NULL mechanism. */
static void *
device_socket(server *sv, const char *pub, const char *sec)
{
	void *d = zmq_socket(sv->ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
	if (pub != NULL) {
		cr_assert_eq(zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, sv->pub, 40), 0);
		cr_assert_eq(zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
		cr_assert_eq(zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
	}
	cr_assert_eq(zmq_connect(d, sv->endpoint), 0);
	return d;
}

/* Sends a frame from the device; returns the ROUTER's User-Id for it ("" when
 * the frame carried none), or NULL when nothing arrived within timeout_ms. */
static char *
hello_through(server *sv, void *dealer, const char *text, int timeout_ms)
{
	zmq_msg_t rid, msg;
	char *user = NULL;
	zmq_setsockopt(sv->router, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
	cr_assert_eq(zmq_send(dealer, text, strlen(text), ZMQ_DONTWAIT), (int)strlen(text));
	zmq_msg_init(&rid);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&rid, sv->router, 0) >= 0) {
		cr_assert(zmq_msg_more(&rid));
		cr_assert_geq(zmq_msg_recv(&msg, sv->router, 0), 0);
		cr_assert_eq(zmq_msg_size(&msg), strlen(text));
		cr_assert_eq(memcmp(zmq_msg_data(&msg), text, strlen(text)), 0);
		const char *u = zmq_msg_gets(&msg, "User-Id");
		user = strdup(u != NULL ? u : "");
	}
	zmq_msg_close(&rid);
	zmq_msg_close(&msg);
	return user;
}

Test(admin, curve_handshake_admits_enrolled_unrevoked_keys)
{
	init_ok();
	enroll_ok("tab-1", "team-a", "device");
	credential c = load_credential("tab-1");
	server sv;
	server_start(&sv);

	/* the enrolled credential gets through, named */
	void *good = device_socket(&sv, c.client_pub, c.client_sec);
	char *user = hello_through(&sv, good, "hello", ADMITTED_MS);
	cr_assert_not_null(user, "an enrolled device gets through");
	cr_assert_str_eq(user, "tab-1", "User-Id is the device name");
	free(user);

	/* a key pair nobody enrolled */
	char spub[41], ssec[41];
	zmq_curve_keypair(spub, ssec);
	void *stranger = device_socket(&sv, spub, ssec);
	cr_assert_null(hello_through(&sv, stranger, "let me in", REFUSED_MS));

	/* no CURVE at all */
	void *plain = device_socket(&sv, NULL, NULL);
	cr_assert_null(hello_through(&sv, plain, "let me in", REFUSED_MS));

	/* a device enrolled while the server runs gets in at once */
	enroll_ok("tab-2", "team-a", "device");
	credential c2 = load_credential("tab-2");
	void *late = device_socket(&sv, c2.client_pub, c2.client_sec);
	user = hello_through(&sv, late, "hello", ADMITTED_MS);
	cr_assert_not_null(user, "enrolled while running");
	cr_assert_str_eq(user, "tab-2");
	free(user);

	/* revoked by another process while this one holds the store open */
	run_result r = run("revoke", "--data-dir", g_dir, "--name", "tab-1", NULL);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	void *again = device_socket(&sv, c.client_pub, c.client_sec);
	cr_assert_null(hello_through(&sv, again, "hello again", REFUSED_MS),
	               "a new connection with a revoked key gets nothing");

	zmq_close(good);
	zmq_close(stranger);
	zmq_close(plain);
	zmq_close(late);
	zmq_close(again);
	server_stop(&sv);
}
