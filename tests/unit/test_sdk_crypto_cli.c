/*
 * The CLI's encryption options without a daemon: keygen, --key-file and
 * FIELDSYNC_STORE_KEY_FILE on every command, rekey, and the messages for a
 * missing, wrong or badly protected key. The real `fieldsync` binary runs.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

#ifdef FS_CLI_BIN

extern char **environ;

static char *tmp;
static char store[512], key1[512], key2[512], out[512], in[512];

static void
setup(void)
{
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(key1, sizeof(key1), "%s/k1.key", tmp);
	snprintf(key2, sizeof(key2), "%s/k2.key", tmp);
	snprintf(out, sizeof(out), "%s/out", tmp);
	snprintf(in, sizeof(in), "%s/in", tmp);
}

static void
teardown(void)
{
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(cli_crypto, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the CLI with argv (after the program name), stdin from `in` when
 * stdin_text is given, stdout+stderr to `out`; env: NULL-terminated extra. */
static int
cli(const char *stdin_text, const char *const *env, const char *const *args)
{
	const char *argv[24];
	char *envp[256];
	int n = 0, e = 0;
	argv[n++] = FS_CLI_BIN;
	for (int i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	for (char **p = environ; *p != NULL && e < 200; p++)
		if (strncmp(*p, "FIELDSYNC_", 10) != 0)
			envp[e++] = *p;
	for (int i = 0; env != NULL && env[i] != NULL; i++)
		envp[e++] = (char *)env[i];
	envp[e] = NULL;
	if (stdin_text != NULL) {
		FILE *f = fopen(in, "w");
		fputs(stdin_text, f);
		fclose(f);
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, stdin_text ? in : "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int st;
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *
output(void)
{
	static char buf[8192];
	FILE *f = fopen(out, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static bool
store_has(const char *needle)
{
	char path[600];
	bool hit = false;
	snprintf(path, sizeof(path), "%s/data.mdb", store);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	struct stat sb;
	fstat(fileno(f), &sb);
	char *b = malloc((size_t)sb.st_size);
	size_t n = fread(b, 1, (size_t)sb.st_size, f);
	fclose(f);
	for (size_t i = 0; i + strlen(needle) <= n && !hit; i++)
		hit = memcmp(b + i, needle, strlen(needle)) == 0;
	free(b);
	return hit;
}

Test(cli_crypto, an_encrypted_store_from_the_command_line)
{
	struct stat sb;
	cr_assert_eq(cli(NULL, NULL, ARGS("--key-file", key1, "keygen", "--key-id", "tab-1")), 0,
	             "%s", output());
	cr_assert_eq(stat(key1, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0600);
	cr_expect_eq(cli(NULL, NULL, ARGS("--key-file", key1, "keygen")), 1, "never overwrites");
	cr_expect_not_null(strstr(output(), "refusing to overwrite"), "%s", output());

	cr_assert_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key1, "init", "--scope",
	                                  "team-a")), 0, "%s", output());
	cr_expect_not_null(strstr(output(), "created encrypted store"), "%s", output());
	cr_assert_eq(cli("{\"case_id\":\"c1\",\"notes\":\"CLI-CANARY-41\"}", NULL,
	                 ARGS("--store", store, "--key-file", key1, "put", "contact", "x1")),
	             0, "%s", output());
	cr_assert_eq(cli("opaque CLI-CANARY-42", NULL,
	                 ARGS("--store", store, "--key-file", key1, "put", "notes", "n1")),
	             0, "%s", output());
	cr_expect_not(store_has("CLI-CANARY-41"));
	cr_expect_not(store_has("CLI-CANARY-42"));

	/* the environment variable works like the option */
	const char *env1[] = {NULL, NULL};
	char e1[600];
	snprintf(e1, sizeof(e1), "FIELDSYNC_STORE_KEY_FILE=%s", key1);
	env1[0] = e1;
	cr_assert_eq(cli(NULL, env1, ARGS("--store", store, "get", "contact", "x1")), 0, "%s",
	             output());
	cr_expect_not_null(strstr(output(), "CLI-CANARY-41"), "%s", output());
	cr_assert_eq(cli(NULL, env1, ARGS("--store", store, "status", "--json")), 0);
	cr_expect_not_null(strstr(output(), "\"encrypted\":true"), "%s", output());

	/* no key, another key, a key others can read */
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", store, "list", "contact")), 2);
	cr_expect_not_null(strstr(output(), "is encrypted: give --key-file"), "%s", output());
	cr_assert_eq(cli(NULL, NULL, ARGS("--key-file", key2, "keygen", "--key-id", "tab-2")), 0);
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key2, "list", "contact")),
	             2);
	cr_expect_not_null(strstr(output(), "does not open the store"), "%s", output());
	chmod(key1, 0644);
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key1, "list", "contact")),
	             2);
	cr_expect_not_null(strstr(output(), "accessible by group or others"), "%s", output());
	chmod(key1, 0600);

	/* rekey: afterwards only the new key opens the store */
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key1, "rekey")), 2,
	             "rekey needs --new-key-file");
	cr_assert_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key1, "rekey",
	                                  "--new-key-file", key2)), 0, "%s", output());
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key1, "list", "contact")),
	             2);
	cr_assert_eq(cli(NULL, NULL, ARGS("--store", store, "--key-file", key2, "get", "notes", "n1")),
	             0, "%s", output());
	cr_expect_str_eq(output(), "opaque CLI-CANARY-42");

	/* a key for a plain store is refused rather than ignored */
	char plain[600];
	snprintf(plain, sizeof(plain), "%s/plain", tmp);
	cr_assert_eq(cli(NULL, NULL, ARGS("--store", plain, "init")), 0);
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", plain, "--key-file", key2, "status")), 2);
	cr_expect_not_null(strstr(output(), "is not encrypted"), "%s", output());
	cr_expect_eq(cli(NULL, NULL, ARGS("--store", plain, "sync")), 2,
	             "no endpoint and no credential");
	cr_expect_not_null(strstr(output(), "--endpoint"), "%s", output());
}

#endif
