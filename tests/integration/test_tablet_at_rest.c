/*
 * A tablet store that holds a device credential is always encrypted (issue
 * 10, break 2): creating one without a key is refused; a key-provider
 * callback (the platform keystore) can give the key; the credential's
 * secret key is in no file of the store; a plain store that an older SDK
 * let hold a credential is refused with a message that says how to migrate,
 * and `fieldsync migrate --key-file FILE` encrypts it in place (records,
 * outbox and credential kept, nothing of them left in clear in any file).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

#define CANARY "CANARY-TABLET-3b8e"

static char g_dir[512];
static char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41];
static const char *const scopes[] = {"team-a"};

static void
setup(void)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
	cr_assert_eq(zmq_curve_keypair(srv_pub, srv_sec), 0);
	cr_assert_eq(zmq_curve_keypair(cli_pub, cli_sec), 0);
}

static void
teardown(void)
{
	fs_test_rm_rf(g_dir);
}

TestSuite(tablet_at_rest, .init = setup, .fini = teardown, .timeout = 120);

static fs_credential
cred(void)
{
	fs_credential c = {.endpoint = "tcp://127.0.0.1:1",
	                   .server_public_key = srv_pub,
	                   .client_public_key = cli_pub,
	                   .client_secret_key = cli_sec,
	                   .name = "tab1",
	                   .role = "device",
	                   .scopes = scopes,
	                   .n_scopes = 1};
	return c;
}

static bool
file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return false;
	size_t cap = 1 << 20, n = 0;
	char *b = malloc(cap);
	for (size_t r; (r = fread(b + n, 1, cap - n, f)) > 0;)
		if ((n += r) == cap)
			b = realloc(b, cap *= 2);
	fclose(f);
	bool hit = memmem(b, n, needle, strlen(needle)) != NULL;
	free(b);
	return hit;
}

/* The first file under dir that holds needle, or "". */
static void
scan(const char *dir, const char *needle, char *found, size_t flen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	found[0] = '\0';
	while (d != NULL && found[0] == '\0' && (e = readdir(d)) != NULL) {
		char p[1200];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			scan(p, needle, found, flen);
		else if (S_ISREG(st.st_mode) && file_has(p, needle))
			snprintf(found, flen, "%s", p);
	}
	if (d != NULL)
		closedir(d);
}

static fs_err
provider(void *arg, uint8_t key[FS_STORE_KEY_LEN], char key_id[65])
{
	(*(int *)arg)++;
	memset(key, 0x42, FS_STORE_KEY_LEN);
	snprintf(key_id, 65, "keystore-1");
	return FS_OK;
}

Test(tablet_at_rest, a_store_with_a_credential_is_always_encrypted)
{
	char dir[700], found[1200];
	fs_credential c = cred();
	fs_store *s = NULL;
	fs_store_opts o;
	memset(&o, 0, sizeof(o));
	o.credential = &c;
	snprintf(dir, sizeof(dir), "%s/plain", g_dir);
	cr_expect_eq(fs_store_create_ex(dir, &o, &s), FS_ERR_KEY_REQUIRED,
	             "a credential in a plain store");
	if (s != NULL)
		fs_store_close(&s);
	cr_assert_eq(fs_store_create(dir, "team-a", &s), FS_OK);
	cr_expect_eq(fs_store_set_credential(s, &c), FS_ERR_KEY_REQUIRED,
	             "a credential put into a plain store later");
	fs_store_close(&s);

	/* the key from the platform keystore, through a callback */
	int calls = 0;
	o.key_provider = provider;
	o.key_provider_arg = &calls;
	snprintf(dir, sizeof(dir), "%s/keystore", g_dir);
	cr_assert_eq(fs_store_create_ex(dir, &o, &s), FS_OK);
	cr_expect(fs_store_encrypted(s));
	fs_store_close(&s);
	memset(&o, 0, sizeof(o));
	o.key_provider = provider;
	o.key_provider_arg = &calls;
	cr_assert_eq(fs_store_open_ex(dir, &o, &s), FS_OK);
	cr_expect_eq(calls, 2);
	fs_store_close(&s);
	scan(dir, cli_sec, found, sizeof(found));
	cr_expect_str_eq(found, "", "the client secret key is in %s", found);
}

static int
run(const char *fmt, const char *a, const char *b, char *out, size_t outlen)
{
	char cmd[3000], line[2400];
	snprintf(line, sizeof(line), fmt, a, b);
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", FS_CLI_BIN, line);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(tablet_at_rest, a_plain_store_with_a_credential_is_refused_and_migrated)
{
	char dir[700], scratch[700], keyf[700], out[8192], found[1200];
	fs_credential c = cred();
	fs_store *s = NULL;
	fs_store_opts o;
	uint8_t key[32];

	/* the public JSON as the SDK stores it, from an encrypted scratch store */
	memset(key, 1, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.credential = &c;
	o.key = key;
	o.key_len = sizeof(key);
	o.key_id = "k1";
	snprintf(scratch, sizeof(scratch), "%s/scratch", g_dir);
	cr_assert_eq(fs_store_create_ex(scratch, &o, &s), FS_OK);
	fs_store_close(&s);
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi meta;
	MDB_val k = {10, "credential"}, v;
	char json[2048];
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	cr_assert_eq(mdb_env_open(env, scratch, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), 0);
	cr_assert_eq(mdb_get(t, meta, &k, &v), 0);
	cr_assert_lt(v.mv_size, sizeof(json));
	memcpy(json, v.mv_data, v.mv_size);
	size_t jl = v.mv_size;
	mdb_txn_abort(t);
	mdb_env_close(env);

	/* a plain store as an older SDK wrote it: a record, an outbox entry,
	 * and the credential with its secret key in clear */
	snprintf(dir, sizeof(dir), "%s/legacy", g_dir);
	cr_assert_eq(fs_store_create(dir, "team-a", &s), FS_OK);
	cr_assert_eq(fs_put(s, "note", "n1", NULL, CANARY " note", strlen(CANARY) + 5), FS_OK);
	fs_store_close(&s);
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), 0);
	v.mv_data = json;
	v.mv_size = jl;
	cr_assert_eq(mdb_put(t, meta, &k, &v, 0), 0);
	MDB_val ks = {17, "credential_secret"}, vs = {40, cli_sec};
	cr_assert_eq(mdb_put(t, meta, &ks, &vs, 0), 0);
	cr_assert_eq(mdb_txn_commit(t), 0);
	mdb_env_close(env);

	/* refused, with the way out */
	cr_expect_eq(fs_store_open(dir, &s), FS_ERR_PLAIN_CREDENTIAL);
	cr_expect_not_null(strstr(fs_strerror(FS_ERR_PLAIN_CREDENTIAL), "migrate"));
	cr_expect_neq(run("--store %s status%s", dir, "", out, sizeof(out)), 0, "%s", out);
	cr_expect_not_null(strstr(out, "migrate"), "the message says how: %s", out);

	/* migrated by the CLI */
	snprintf(keyf, sizeof(keyf), "%s/tablet.key", g_dir);
	cr_assert_eq(run("--key-file %s keygen --key-id tab%s", keyf, "", out, sizeof(out)), 0,
	             "%s", out);
	cr_expect_eq(run("--store %s --key-file %s migrate", dir, keyf, out, sizeof(out)), 0, "%s",
	             out);
	cr_expect_eq(run("--store %s --key-file %s status --json", dir, keyf, out, sizeof(out)), 0,
	             "%s", out);
	cr_expect_not_null(strstr(out, "\"encrypted\":true"), "%s", out);
	cr_expect_not_null(strstr(out, "\"name\":\"tab1\""), "the credential is kept: %s", out);
	cr_expect_eq(run("--store %s --key-file %s get note n1", dir, keyf, out, sizeof(out)), 0,
	             "%s", out);
	cr_expect_not_null(strstr(out, CANARY), "the record is kept: %s", out);
	scan(dir, cli_sec, found, sizeof(found));
	cr_expect_str_eq(found, "", "the client secret key is still in clear in %s", found);
	scan(dir, CANARY, found, sizeof(found));
	cr_expect_str_eq(found, "", "the record is still in clear in %s", found);
}
