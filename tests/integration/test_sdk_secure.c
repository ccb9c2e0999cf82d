/*
 * The secure setup end to end: a production fieldsyncd (no --dev: CURVE on
 * both endpoints, ZAP, a master key), devices enrolled with `fieldsyncd
 * enroll`, tablets set up from their credentials with encrypted stores.
 * Two tablets sync over CURVE; a revoked device and a tablet that pins the
 * wrong server key get nothing; a store without a credential cannot talk to
 * it; a scheduler watches reminders over CURVE; the CLI does the same from
 * the command line. No payload is found in clear in any file of the tablets
 * or the daemon.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/crypto.h"
#include "fieldsync/fieldsync.h"

extern char **environ;

#define CANARY "SECURE-CANARY-5d1e-nobody-reads-this"

static char *tmp;
static char data_dir[512], master_key[512], ep[64], rem_ep[64], ops[64];
static int ops_port;
static pid_t daemon_pid = -1;
static fs_store *tab[2];

/* Runs argv to completion with stdout/stderr to log; returns its exit status. */
static int
run(const char *const *argv, const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	size_t got = fread(b, 1, (size_t)n, f);
	b[got] = '\0';
	fclose(f);
	return b;
}

static void
enroll(const char *name, const char *role, const char *out)
{
	char log[600];
	snprintf(log, sizeof(log), "%s/admin.log", tmp);
	const char *argv[] = {FS_DAEMON_BIN, "enroll", "--data-dir", data_dir, "--name", name,
	                      "--scopes", "team-a", "--role", role, "--endpoint", ep, "--out",
	                      out, NULL};
	int rc = run(argv, log);
	char *text = slurp(log);
	cr_assert_eq(rc, 0, "enroll %s: %s", name, text);
	free(text);
}

static void
daemon_start(void)
{
	char log[600];
	posix_spawn_file_actions_t fa;
	snprintf(log, sizeof(log), "%s/daemon.log", tmp);
	const char *argv[] = {FS_DAEMON_BIN, "--data-dir", data_dir, "--sync-endpoint", ep,
	                      "--reminder-endpoint", rem_ep, "--ops-listen", ops,
	                      "--master-key-file", master_key, NULL};
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	cr_assert_eq(posix_spawn(&daemon_pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 200; i++) {
		char *body = NULL;
		int st = fs_test_http_get(ops_port, "/readyz", &body);
		free(body);
		if (st == 200)
			return;
		int wst;
		if (waitpid(daemon_pid, &wst, WNOHANG) == daemon_pid) {
			daemon_pid = -1;
			char *text = slurp(log);
			cr_assert_fail("the production daemon exited at start: %s", text);
		}
		usleep(100 * 1000);
	}
	cr_assert_fail("the production daemon did not get ready");
}

static void
setup(void)
{
	char log[600];
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
	snprintf(data_dir, sizeof(data_dir), "%s/daemon", tmp);
	snprintf(master_key, sizeof(master_key), "%s/master.key", tmp);
	snprintf(log, sizeof(log), "%s/admin.log", tmp);
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", fs_test_free_port());
	snprintf(rem_ep, sizeof(rem_ep), "tcp://127.0.0.1:%d", fs_test_free_port());
	ops_port = fs_test_free_port();
	snprintf(ops, sizeof(ops), "127.0.0.1:%d", ops_port);
	char err[256];
	cr_assert(fsc_master_create_file(master_key, "m1", err, sizeof(err)), "%s", err);
	const char *init[] = {FS_DAEMON_BIN, "init", "--data-dir", data_dir, NULL};
	int rc = run(init, log);
	char *text = slurp(log);
	cr_assert_eq(rc, 0, "fieldsyncd init: %s", text);
	free(text);
}

static void
teardown(void)
{
	for (int i = 0; i < 2; i++)
		fs_store_close(&tab[i]);
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
	/* sanitizer reports of the processes this test ran (the files go with tmp) */
	const char *logs[] = {"daemon.log", "admin.log", "cli.log"};
	for (int i = 0; i < 3; i++) {
		char path[600];
		snprintf(path, sizeof(path), "%s/%s", tmp, logs[i]);
		char *text = slurp(path);
		cr_expect_null(strstr(text, "Sanitizer"), "%s: %s", logs[i], text);
		cr_expect_null(strstr(text, "runtime error"), "%s: %s", logs[i], text);
		free(text);
	}
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(secure, .init = setup, .fini = teardown, .timeout = 180);

static void
key_file(const char *name, char *path, size_t len)
{
	char err[256];
	snprintf(path, len, "%s/%s", tmp, name);
	cr_assert(fsc_master_create_file(path, name, err, sizeof(err)), "%s", err);
}

/* An encrypted tablet store set up from credential file cred. */
static fs_store *
tablet(const char *name, const char *cred, const char *keyf)
{
	fs_credential *c = NULL;
	fsc_master m;
	fs_store_opts o;
	fs_store *s = NULL;
	char why[512], dir[600];
	cr_assert_eq(fs_credential_load(cred, &c, why, sizeof(why)), FS_OK, "%s", why);
	cr_assert(fsc_master_load_file(keyf, &m, why, sizeof(why)), "%s", why);
	memset(&o, 0, sizeof(o));
	o.key = m.key;
	o.key_len = sizeof(m.key);
	o.key_id = m.id;
	o.credential = c;
	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	cr_assert_eq(fs_store_create_ex(dir, &o, &s), FS_OK);
	cr_expect_str_eq(fs_store_default_scope(s), "team-a");
	fs_credential_free(&c);
	fsc_cleanse(&m, sizeof(m));
	return s;
}

static fs_err
sync_t(fs_store *s, int timeout_ms)
{
	fs_sync_opts o;
	memset(&o, 0, sizeof(o)); /* the endpoint comes from the credential */
	o.timeout_ms = timeout_ms;
	return fs_sync(s, &o, NULL);
}

static void
put_json(fs_store *s, const char *coll, const char *id, const char *json)
{
	char why[256];
	uint8_t *p = NULL;
	size_t n = 0;
	cr_assert_eq(fs_json_to_payload(coll, json, strlen(json), &p, &n, why, sizeof(why)), FS_OK,
	             "%s", why);
	cr_assert_eq(fs_put(s, coll, id, NULL, p, n), FS_OK);
	free(p);
}

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

/* Files under dir (recursively) that contain needle. */
static int
files_with(const char *dir, const char *needle)
{
	int hits = 0;
	DIR *dh = opendir(dir);
	struct dirent *e;
	if (dh == NULL)
		return 0;
	while ((e = readdir(dh)) != NULL) {
		char path[1024];
		struct stat sb;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			hits += files_with(path, needle);
			continue;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		char *b = NULL;
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		b = malloc((size_t)sb.st_size + 1);
		size_t n = fread(b, 1, (size_t)sb.st_size, f);
		fclose(f);
		size_t nl = strlen(needle);
		for (size_t i = 0; i + nl <= n; i++)
			if (memcmp(b + i, needle, nl) == 0) {
				hits++;
				break;
			}
		free(b);
	}
	closedir(dh);
	return hits;
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(secure, two_tablets_sync_over_curve_and_nothing_is_in_clear_on_disk)
{
	char c1[600], c2[600], k1[600], k2[600], dir[600];
	snprintf(c1, sizeof(c1), "%s/tab1.json", tmp);
	snprintf(c2, sizeof(c2), "%s/tab2.json", tmp);
	enroll("tab1", "device", c1);
	enroll("tab2", "device", c2);
	key_file("tab1-key", k1, sizeof(k1));
	key_file("tab2-key", k2, sizeof(k2));
	daemon_start();

	tab[0] = tablet("t1", c1, k1);
	tab[1] = tablet("t2", c2, k2);
	char json[512];
	snprintf(json, sizeof(json),
	         "{\"person\":\"YOUNG_PERSON\",\"under_18\":true,\"first_contact_at_ms\":%lld}",
	         (long long)now_ms());
	put_json(tab[0], "case", "c1", json);
	put_json(tab[0], "contact", "x1",
	         "{\"case_id\":\"c1\",\"kind\":\"COUNSELLING\",\"notes\":\"" CANARY "\"}");
	cr_assert_eq(fs_put(tab[0], "notes", "n1", NULL, CANARY "-raw", strlen(CANARY) + 4), FS_OK);
	fs_err e = sync_t(tab[0], 20000);
	cr_assert_eq(e, FS_OK, "tablet 1: %s", fs_strerror(e));
	e = sync_t(tab[1], 20000);
	cr_assert_eq(e, FS_OK, "tablet 2: %s", fs_strerror(e));
	cr_expect(contact_says(tab[1], "x1", CANARY), "tablet 2 got tablet 1's contact");

	put_json(tab[1], "contact", "x1",
	         "{\"case_id\":\"c1\",\"kind\":\"COUNSELLING\",\"notes\":\"" CANARY " v2\"}");
	cr_assert_eq(sync_t(tab[1], 20000), FS_OK);
	cr_assert_eq(sync_t(tab[0], 20000), FS_OK);
	cr_expect(contact_says(tab[0], "x1", CANARY " v2"), "and tablet 1 got the edit back");
	fs_status st;
	cr_assert_eq(fs_status_get(tab[0], &st), FS_OK);
	cr_expect_eq(st.pending, 0);

	for (int i = 0; i < 2; i++)
		fs_store_close(&tab[i]);
	for (int i = 1; i <= 2; i++) {
		snprintf(dir, sizeof(dir), "%s/t%d", tmp, i);
		cr_expect_eq(files_with(dir, CANARY), 0, "tablet %d's files", i);
	}
	cr_expect_eq(files_with(data_dir, CANARY), 0, "the daemon's files");
}

Test(secure, revoked_impostor_and_clear_text_peers_get_nothing)
{
	char c1[600], c3[600], k1[600], log[600], dir[600];
	snprintf(c1, sizeof(c1), "%s/tab1.json", tmp);
	snprintf(c3, sizeof(c3), "%s/tab3.json", tmp);
	snprintf(log, sizeof(log), "%s/admin.log", tmp);
	enroll("tab1", "device", c1);
	enroll("tab3", "device", c3);
	key_file("k", k1, sizeof(k1));
	daemon_start();

	/* revoked: refused at the handshake, at once */
	const char *revoke[] = {FS_DAEMON_BIN, "revoke", "--data-dir", data_dir, "--name", "tab3",
	                        NULL};
	cr_assert_eq(run(revoke, log), 0);
	tab[0] = tablet("t3", c3, k1);
	int64_t t0 = now_ms();
	fs_err e = sync_t(tab[0], 15000);
	/* a refused key has its own code (issue 12): not a network blip */
	cr_expect_eq(e, FS_ERR_KEY_REFUSED, "%s", fs_strerror(e));
	cr_expect_lt(now_ms() - t0, 10000, "told at once, not after the timeout");
	fs_status st;
	cr_assert_eq(fs_status_get(tab[0], &st), FS_OK);
	cr_expect_not_null(strstr(st.last_error_msg, "refused this device's key"), "%s",
	                   st.last_error_msg);
	fs_store_close(&tab[0]);

	/* a credential whose server key is not the daemon's */
	fs_credential *c = NULL;
	char why[512], other_pub[41], other_sec[41];
	cr_assert_eq(fs_credential_load(c1, &c, why, sizeof(why)), FS_OK, "%s", why);
	cr_assert_eq(zmq_curve_keypair(other_pub, other_sec), 0);
	fs_credential forged = *c;
	forged.server_public_key = other_pub;
	fs_store_opts o;
	uint8_t key[32];
	memset(key, 3, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.credential = &forged;
	o.key = key; /* a store with a credential is always encrypted */
	o.key_len = sizeof(key);
	o.key_id = "k1";
	snprintf(dir, sizeof(dir), "%s/forged", tmp);
	cr_assert_eq(fs_store_create_ex(dir, &o, &tab[0]), FS_OK);
	e = sync_t(tab[0], 3000);
	cr_expect(e == FS_ERR_TIMEOUT || e == FS_ERR_REFUSED, "%s", fs_strerror(e));
	fs_store_close(&tab[0]);
	fs_credential_free(&c);

	/* a store without a credential talks in clear: the daemon does not answer it */
	snprintf(dir, sizeof(dir), "%s/clear", tmp);
	cr_assert_eq(fs_store_create(dir, "team-a", &tab[0]), FS_OK);
	fs_sync_opts so;
	memset(&so, 0, sizeof(so));
	so.endpoint = ep;
	so.timeout_ms = 2000;
	e = fs_sync(tab[0], &so, NULL);
	cr_expect_neq(e, FS_OK, "a NULL-mechanism peer is not served");
}

Test(secure, a_scheduler_watches_reminders_over_curve)
{
	char c1[600], cs[600], k1[600], why[512];
	snprintf(c1, sizeof(c1), "%s/tab1.json", tmp);
	snprintf(cs, sizeof(cs), "%s/sched.json", tmp);
	enroll("tab1", "device", c1);
	enroll("sched1", "scheduler", cs);
	key_file("k", k1, sizeof(k1));
	daemon_start();

	fs_credential *c = NULL;
	cr_assert_eq(fs_credential_load(cs, &c, why, sizeof(why)), FS_OK, "%s", why);
	fs_watch_opts wo;
	memset(&wo, 0, sizeof(wo));
	wo.sync_endpoint = c->endpoint;
	wo.reminder_endpoint = rem_ep;
	wo.curve_server_key = c->server_public_key;
	wo.curve_public_key = c->client_public_key;
	wo.curve_secret_key = c->client_secret_key;
	fs_watcher *w = NULL;
	cr_assert_eq(fs_watcher_open(&wo, &w), FS_OK);
	fs_credential_free(&c);

	tab[0] = tablet("t1", c1, k1);
	char json[256];
	snprintf(json, sizeof(json),
	         "{\"person\":\"YOUNG_PERSON\",\"under_18\":true,\"first_contact_at_ms\":%lld}",
	         (long long)now_ms());
	put_json(tab[0], "case", "c-watch", json);
	cr_assert_eq(sync_t(tab[0], 20000), FS_OK);

	const fs_reminder *ev = NULL;
	fs_err e = FS_ERR_TIMEOUT;
	for (int i = 0; i < 30 && e == FS_ERR_TIMEOUT; i++)
		e = fs_watcher_next(w, 1000, &ev);
	cr_assert_eq(e, FS_OK, "an event arrived over CURVE: %s", fs_strerror(e));
	cr_expect_str_eq(ev->case_id, "c-watch");
	cr_expect_str_eq(ev->scope, "team-a");
	fs_watcher_close(&w);
}

#ifdef FS_CLI_BIN
Test(secure, the_cli_sets_up_and_syncs_from_a_credential)
{
	char c1[600], k1[600], store[600], log[600], outp[600];
	snprintf(c1, sizeof(c1), "%s/tab1.json", tmp);
	snprintf(store, sizeof(store), "%s/cli-store", tmp);
	snprintf(log, sizeof(log), "%s/cli.log", tmp);
	snprintf(outp, sizeof(outp), "%s/cli.out", tmp);
	enroll("tab1", "device", c1);
	snprintf(k1, sizeof(k1), "%s/cli.key", tmp);
	const char *keygen[] = {FS_CLI_BIN, "--key-file", k1, "keygen", "--key-id", "cli1", NULL};
	cr_assert_eq(run(keygen, log), 0);
	daemon_start();

	const char *init[] = {FS_CLI_BIN, "--store", store, "--key-file", k1, "init",
	                      "--credential", c1, NULL};
	cr_assert_eq(run(init, log), 0);
	const char *sync[] = {FS_CLI_BIN, "--store", store, "--key-file", k1, "sync", "--timeout",
	                      "20", NULL};
	cr_assert_eq(run(sync, log), 0, "sync without --endpoint, over CURVE");
	const char *status[] = {FS_CLI_BIN, "--store", store, "--key-file", k1, "status", "--json",
	                        NULL};
	cr_assert_eq(run(status, outp), 0);
	char *text = slurp(outp), why[512];
	fs_credential *cred = NULL;
	cr_expect_not_null(strstr(text, "\"name\":\"tab1\""), "%s", text);
	cr_expect_not_null(strstr(text, "\"scopes\":[\"team-a\"]"), "%s", text);
	cr_expect_not_null(strstr(text, "\"encrypted\":true"), "%s", text);
	cr_expect_null(strstr(text, "secret"), "%s", text);
	cr_assert_eq(fs_credential_load(c1, &cred, why, sizeof(why)), FS_OK, "%s", why);
	cr_expect_null(strstr(text, cred->client_secret_key), "status never prints the secret key");
	cr_expect_eq(files_with(store, cred->client_secret_key), 0,
	             "the secret key is sealed in the store");
	fs_credential_free(&cred);
	free(text);

	/* without the key the CLI refuses, and says why */
	const char *nokey[] = {FS_CLI_BIN, "--store", store, "status", NULL};
	cr_expect_eq(run(nokey, log), 2);
	text = slurp(log);
	cr_expect_not_null(strstr(text, "is encrypted"), "%s", text);
	free(text);
	/* a credential others can read is refused */
	char c2[600];
	snprintf(c2, sizeof(c2), "%s/tab2.json", tmp);
	enroll("tab2", "device", c2);
	chmod(c2, 0644);
	snprintf(store, sizeof(store), "%s/cli-store2", tmp);
	const char *init2[] = {FS_CLI_BIN, "--store", store, "init", "--credential", c2, NULL};
	cr_expect_eq(run(init2, log), 2);
	text = slurp(log);
	cr_expect_not_null(strstr(text, "accessible by group or others"), "%s", text);
	free(text);
}
#endif
