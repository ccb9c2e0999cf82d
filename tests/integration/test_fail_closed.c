/*
 * Fail closed (issue 10, breaks 7, 9 and 10), with the real daemon:
 *   - --dev (or FIELDSYNC_DEV=1) on a production store (server keys from
 *     `init`, or a key store a production daemon used) is refused with a
 *     message that says why;
 *   - master keys with the same id, an all-zero master key and a master key
 *     path that is a FIFO are refused at once, with a clear message (a FIFO
 *     used to block the start: every command here runs under `timeout`);
 *   - FIELDSYNC_MASTER_KEY is gone from the running daemon's environment
 *     (/proc/PID/environ), and its key material sits in pages marked
 *     "do not dump" (VmFlags dd in /proc/PID/smaps).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY2_HEX "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

static char g_dir[512];

static void
setup(void)
{
	char *t = fs_test_tmpdir();
	snprintf(g_dir, sizeof(g_dir), "%s", t);
	free(t);
}

static void
teardown(void)
{
	fs_test_rm_rf(g_dir);
}

TestSuite(fail_closed, .init = setup, .fini = teardown, .timeout = 120);

/* Runs cmd (under timeout 10: a start that does not fail runs until then);
 * its output in a malloc'd string, its exit status in *st (124: it ran). */
static char *
run(const char *cmd, int *st)
{
	char full[3000];
	snprintf(full, sizeof(full), "timeout 10 env %s 2>&1", cmd);
	FILE *p = popen(full, "r");
	cr_assert_not_null(p);
	char *out = calloc(1, 16384);
	size_t n = fread(out, 1, 16383, p);
	out[n] = '\0';
	int s = pclose(p);
	*st = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
	return out;
}

static char *
write_key(const char *name, const char *text)
{
	char *path = malloc(700);
	snprintf(path, 700, "%s/%s", g_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static char *
start_dev(const char *env, const char *data, const char *key, int *st)
{
	char cmd[2400];
	snprintf(cmd, sizeof(cmd),
	         "%s %s --dev --data-dir %s --sync-endpoint tcp://127.0.0.1:0 --reminder-endpoint "
	         "tcp://127.0.0.1:0 --ops-listen 127.0.0.1:0 %s %s",
	         env ? env : "", FS_DAEMON_BIN, data, key ? "--master-key-file" : "",
	         key ? key : "");
	return run(cmd, st);
}

Test(fail_closed, dev_mode_is_refused_on_a_production_store)
{
	char data[700], cmd[1600];
	int st;
	char *key = write_key("master.key", "k1:" KEY_HEX "\n");
	snprintf(data, sizeof(data), "%s/data", g_dir);
	snprintf(cmd, sizeof(cmd), "%s init --data-dir %s", FS_DAEMON_BIN, data);
	char *out = run(cmd, &st);
	cr_assert_eq(st, 0, "init: %s", out);
	free(out);

	out = start_dev(NULL, data, key, &st);
	cr_expect_neq(st, 124, "--dev ran on a production store: %s", out);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "refusing --dev"), "%s", out);
	cr_expect_not_null(strstr(out, "server keys"), "%s", out);
	free(out);

	/* the same through the environment, with the key in the environment */
	char *cmd2 = NULL;
	cr_assert_neq(asprintf(&cmd2,
	                       "FIELDSYNC_DEV=1 FIELDSYNC_MASTER_KEY=k1:" KEY_HEX
	                       " %s --data-dir %s --sync-endpoint tcp://127.0.0.1:0 "
	                       "--reminder-endpoint tcp://127.0.0.1:0 --ops-listen 127.0.0.1:0",
	                       FS_DAEMON_BIN, data),
	              -1);
	out = run(cmd2, &st);
	free(cmd2);
	cr_expect_neq(st, 124, "FIELDSYNC_DEV=1 ran on a production store: %s", out);
	cr_expect_not_null(strstr(out, "refusing --dev"), "%s", out);
	free(out);

	/* the server keys gone (a copied data directory): the key store a
	 * production daemon used still says it is one */
	fs_test_daemon *pd = fs_test_daemon_start_production(data, (const char *[]){
		"--master-key-file", key, NULL});
	cr_assert_not_null(pd, "the production daemon starts");
	fs_test_daemon_stop(&pd);
	snprintf(cmd, sizeof(cmd), "%s/server.key", data);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/server.pub", data);
	unlink(cmd);
	out = start_dev(NULL, data, key, &st);
	cr_expect_neq(st, 124, "--dev ran on a production daemon's key store: %s", out);
	cr_expect_not_null(strstr(out, "keys/production"), "%s", out);
	free(out);

	/* a fresh directory is still fine for development */
	fs_test_daemon *d = fs_test_daemon_start(NULL);
	cr_expect_not_null(d);
	if (d != NULL)
		fs_test_daemon_stop(&d);
	free(key);
}

Test(fail_closed, bad_master_keys_are_refused)
{
	char data[700];
	int st;
	snprintf(data, sizeof(data), "%s/data", g_dir);

	char *key = write_key("dup.key", "k1:" KEY_HEX "\nk1:" KEY2_HEX "\n");
	char *out = start_dev(NULL, data, key, &st);
	cr_expect_neq(st, 124, "duplicate ids accepted: %s", out);
	cr_expect_not_null(strstr(out, "same id"), "%s", out);
	free(out);
	free(key);

	char env[400];
	snprintf(env, sizeof(env), "FIELDSYNC_MASTER_KEY=k1:%s,k1:%s", KEY_HEX, KEY2_HEX);
	out = start_dev(env, data, NULL, &st);
	cr_expect_neq(st, 124, "duplicate ids in the environment accepted: %s", out);
	cr_expect_not_null(strstr(out, "same id"), "%s", out);
	free(out);

	key = write_key("zero.key", "k1:" ZERO_HEX "\n");
	out = start_dev(NULL, data, key, &st);
	cr_expect_neq(st, 124, "an all-zero key accepted: %s", out);
	cr_expect_not_null(strstr(out, "all zeros"), "%s", out);
	free(out);
	free(key);

	char fifo[700];
	snprintf(fifo, sizeof(fifo), "%s/fifo.key", g_dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	out = start_dev(NULL, data, fifo, &st);
	cr_expect_neq(st, 124, "a FIFO blocked the start: %s", out);
	cr_expect_neq(st, 0);
	cr_expect_not_null(strstr(out, "not a regular file"), "%s", out);
	free(out);
}

static char *
proc_file(int pid, const char *name, size_t *len)
{
	char p[100];
	snprintf(p, sizeof(p), "/proc/%d/%s", pid, name);
	FILE *f = fopen(p, "rb");
	cr_assert_not_null(f, "%s", p);
	char *b = calloc(1, 1 << 20);
	size_t n = fread(b, 1, (1 << 20) - 1, f);
	fclose(f);
	*len = n;
	return b;
}

Test(fail_closed, the_master_key_leaves_the_environment_and_core_dumps)
{
	char data[700];
	snprintf(data, sizeof(data), "%s/data", g_dir);
	setenv("FIELDSYNC_MASTER_KEY", "k1:" KEY2_HEX, 1);
	fs_test_daemon *d = fs_test_daemon_start_args(data, NULL);
	unsetenv("FIELDSYNC_MASTER_KEY");
	cr_assert_not_null(d);
	size_t n = 0;
	char *env = proc_file(fs_test_daemon_pid(d), "environ", &n);
	cr_expect_null(memmem(env, n, KEY2_HEX, strlen(KEY2_HEX)),
	               "the master key is still in /proc/PID/environ");
	free(env);
	char *smaps = proc_file(fs_test_daemon_pid(d), "smaps", &n);
	bool dd = false;
	for (char *l = strstr(smaps, "VmFlags:"); l != NULL; l = strstr(l + 1, "VmFlags:")) {
		char *eol = strchr(l, '\n');
		size_t ll = eol ? (size_t)(eol - l) : strlen(l);
		dd |= memmem(l, ll, " dd", 3) != NULL;
	}
	cr_expect(dd, "no mapping of the daemon is marked MADV_DONTDUMP");
	free(smaps);
	fs_test_daemon_stop(&d);
}
