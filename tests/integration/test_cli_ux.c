/*
 * The `fieldsync` CLI's face (issue 14): --version, help and CMD --help
 * without a store, --opt=value and short options, errors that name the
 * option, field or value and end with "try 'fieldsync CMD --help'", enum
 * names listed on a typo, --json on init/put/list/sync, the exit status of
 * a partly refused sync (65), of an unreachable daemon (75), the
 * environment's defaults, and status in local time. Real daemon, real
 * sockets.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "daemon.h"

#ifndef FS_CLI_BIN
#error "the fieldsync-cli target must exist"
#endif

static fs_test_daemon *d;
static char *tmp;
static char out[1 << 16], err[1 << 16];

static void
setup(void)
{
	tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
}

static void
teardown(void)
{
	if (d != NULL)
		fs_test_daemon_stop(&d);
	fs_test_rm_rf(tmp);
	free(tmp);
}

TestSuite(cli_ux, .init = setup, .fini = teardown, .timeout = 120);

static void
read_into(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
}

/* Runs `ENV fieldsync ARGS` (no FIELDSYNC_* from the test's environment)
 * with `in` on stdin; stdout to `out`, stderr to `err`. Exit status. */
static int
cli(const char *env, const char *in, const char *fmt, ...)
{
	char args[2048], cmd[4096], ip[512], op[512], ep[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(ip, sizeof(ip), "%s/stdin", tmp);
	snprintf(op, sizeof(op), "%s/stdout", tmp);
	snprintf(ep, sizeof(ep), "%s/stderr", tmp);
	FILE *f = fopen(ip, "w");
	cr_assert_not_null(f);
	if (in != NULL)
		fputs(in, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	         "env -u FIELDSYNC_STORE -u FIELDSYNC_ENDPOINT -u FIELDSYNC_CREDENTIAL %s %s %s "
	         "<%s >%s 2>%s",
	         env ? env : "", FS_CLI_BIN, args, ip, op, ep);
	int st = system(cmd);
	read_into(op, out, sizeof(out));
	read_into(ep, err, sizeof(err));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(cli_ux, version_help_and_errors_that_name_what_is_wrong)
{
	cr_assert_eq(cli(NULL, NULL, "--version"), 0);
	cr_expect_eq(strncmp(out, "fieldsync ", 10), 0, "%s", out);
	cr_assert_eq(cli(NULL, NULL, "-V"), 0);
	cr_assert_eq(cli(NULL, NULL, "help"), 0);
	cr_expect(strstr(out, "commands:") && strstr(out, "watch") && strstr(out, "exit status"),
	          "%s", out);
	cr_assert_eq(cli(NULL, NULL, "--help"), 0);
	cr_expect_not_null(strstr(out, "--store"));

	/* a command's help needs no store: the command is read first */
	cr_assert_eq(cli(NULL, NULL, "put --help"), 0, "%s", err);
	cr_expect_not_null(strstr(out, "put COLLECTION ID"), "%s", out);
	cr_expect_null(strstr(out, "keygen"), "only put's help: %s", out);
	static char help_put[sizeof(out)];
	memcpy(help_put, out, sizeof(out));
	cr_assert_eq(cli(NULL, NULL, "help put"), 0);
	cr_expect_str_eq(out, help_put, "help put is put --help");
	cr_assert_eq(cli(NULL, NULL, "watch -h"), 0);
	cr_expect_not_null(strstr(out, "--exec"), "%s", out);
	cr_expect_eq(cli(NULL, NULL, "help frob"), 2);

	/* errors: one line naming the culprit, then where to look */
	cr_expect_eq(cli(NULL, NULL, "list case --frob"), 2);
	cr_expect_not_null(strstr(err, "unknown option '--frob'"), "%s", err);
	cr_expect_not_null(strstr(err, "try 'fieldsync list --help'"), "%s", err);
	cr_expect_null(strstr(err, "commands:"), "not the whole usage: %s", err);
	cr_expect_eq(cli(NULL, NULL, "put case c1 --endpoint=tcp://127.0.0.1:1"), 2);
	cr_expect_not_null(strstr(err, "put does not take --endpoint"), "%s", err);
	cr_expect_eq(cli(NULL, NULL, "sync --timeout"), 2);
	cr_expect_not_null(strstr(err, "--timeout needs a value"), "%s", err);
	cr_expect_eq(cli(NULL, NULL, "frobnicate"), 2);
	cr_expect_not_null(strstr(err, "unknown command 'frobnicate'"), "%s", err);
	cr_expect_eq(cli(NULL, NULL, "list case"), 2, "no store");
	cr_expect_not_null(strstr(err, "--store DIR"), "%s", err);
	cr_expect_eq(cli(NULL, NULL, "-s %s/a list", tmp), 2);
	cr_expect_not_null(strstr(err, "list takes COLLECTION"), "%s", err);

	/* --opt=value and the short options */
	cr_assert_eq(cli(NULL, NULL, "--store=%s/a init --scope=team-a", tmp), 0, "%s", err);
	cr_expect_not_null(strstr(out, "default scope team-a"), "%s", out);
	cr_expect_eq(cli(NULL, "{\"track\":\"GRUOP\"}", "-s %s/a put case c1", tmp), 2);
	cr_expect_not_null(strstr(err, "\"track\" takes one of COUNSELLING, INDIVIDUAL, GROUP, "
	                                "PARENT_ACTIVITIES"),
	                   "%s", err);
	cr_expect_not_null(strstr(err, "try 'fieldsync put --help'"), "%s", err);
	cr_expect_eq(cli(NULL, "x", "-s %s/a put notes n1 --scope=Team", tmp), 2);
	cr_expect_not_null(strstr(err, "--scope 'Team' is not a scope name"), "%s", err);
	cr_expect_eq(cli(NULL, "x", "-s %s/a put Notes n1", tmp), 2);
	cr_expect_not_null(strstr(err, "'Notes' is not a collection name"), "%s", err);
	cr_expect_eq(cli(NULL, NULL, "-s %s/a sync -e tcp://127.0.0.1:1 --timeout=zero", tmp), 2);
	cr_expect_not_null(strstr(err, "not 'zero'"), "%s", err);
	cr_assert_eq(cli("FIELDSYNC_STORE=x", NULL, "-s %s/a -j list case", tmp), 0, "%s", err);
	cr_expect_str_eq(out, "", "-s wins over $FIELDSYNC_STORE");
}

static cJSON *
json_line(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	cr_assert_not_null(j, "one JSON value: %s", text);
	return j;
}

Test(cli_ux, json_everywhere_a_partly_refused_sync_and_local_times)
{
	const char *extra[] = {"--max-payload-bytes", "64", NULL};
	d = fs_test_daemon_start_args(NULL, extra);
	cr_assert_not_null(d);
	const char *ep = fs_test_daemon_endpoint(d);
	char big[201];
	memset(big, 'b', 200);
	big[200] = '\0';

	cr_assert_eq(cli(NULL, NULL, "-s %s/a init --json", tmp), 0, "%s", err);
	cJSON *j = json_line(out);
	cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "replica")), "%s", out);
	cr_expect_str_eq(cJSON_GetObjectItem(j, "scope")->valuestring, "default");
	cJSON_Delete(j);
	cr_assert_eq(cli(NULL, "ok-a", "-s %s/a put notes a --json", tmp), 0, "%s", err);
	j = json_line(out);
	cr_expect_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, "a");
	cr_expect(cJSON_IsObject(cJSON_GetObjectItem(j, "version")), "%s", out);
	cJSON_Delete(j);
	cr_assert_eq(cli(NULL, big, "-s %s/a put notes big", tmp), 0);
	cr_assert_eq(cli(NULL, NULL, "-s %s/a list notes --json", tmp), 0);
	int lines = 0;
	for (char *l = strtok(out, "\n"); l != NULL; l = strtok(NULL, "\n"), lines++) {
		j = json_line(l);
		cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "id")), "%s", l);
		cJSON_Delete(j);
	}
	cr_expect_eq(lines, 2, "JSON lines: one object per record");

	/* the daemon refuses one change: the sync exits 65 and says which */
	cr_expect_eq(cli(NULL, NULL, "-s %s/a sync -e %s --json", tmp, ep), 65, "%s", err);
	j = json_line(out);
	cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")), "%s", out);
	cr_expect_eq(cJSON_GetObjectItem(j, "pushed")->valueint, 1, "%s", out);
	cr_expect_eq(cJSON_GetObjectItem(j, "failed")->valueint, 1, "%s", out);
	cr_expect_not_null(strstr(out, "\"id\":\"big\""), "%s", out);
	cJSON_Delete(j);
	cr_expect_not_null(strstr(err, "refused by the daemon"), "%s", err);
	/* nothing more to refuse: the next sync exits 0; $FIELDSYNC_ENDPOINT works */
	char env[600];
	snprintf(env, sizeof(env), "FIELDSYNC_ENDPOINT=%s", ep);
	cr_expect_eq(cli(env, NULL, "-s %s/a sync", tmp), 0, "%s", err);
	cr_expect_null(strchr(err, '\r'), "no progress line off a terminal: %s", err);

	/* status in local time: the zone's name, not epoch ms */
	cr_assert_eq(cli("TZ=Europe/Copenhagen", NULL, "-s %s/a status", tmp), 0);
	const char *ls = strstr(out, "last sync   ");
	cr_assert_not_null(ls, "%s", out);
	cr_expect(strncmp(ls + 12, "20", 2) == 0 && strstr(ls, " CET\n") != NULL, "%s", out);
	cr_expect_null(strstr(out, " ms\n"), "%s", out);
	cr_assert_eq(cli(NULL, NULL, "-s %s/a status --json", tmp), 0);
	cr_expect_not_null(strstr(out, "\"last_sync_ms\":1"), "JSON keeps ms: %s", out);

	/* an unreachable daemon: 75, retry later */
	cr_expect_eq(cli(NULL, NULL, "-s %s/a sync -e tcp://127.0.0.1:1 --timeout 1 -j", tmp), 75);
	cr_expect_not_null(strstr(out, "\"code\":\"TIMEOUT\""), "%s", out);
	cr_expect_not_null(strstr(err, "run sync again later"), "%s", err);
}

Test(cli_ux, the_bash_completion_completes_commands_and_options)
{
	/* FS_VECTORS_DIR is <root>/tests/vectors */
	char root[1024], script[1200];
	snprintf(root, sizeof(root), "%s", FS_VECTORS_DIR);
	char *cut = strstr(root, "/tests/vectors");
	cr_assert_not_null(cut);
	*cut = '\0';
	snprintf(script, sizeof(script), "%s/client-sdk/cli/fieldsync.bash", root);
	char cmd[2048], path[600];
	snprintf(path, sizeof(path), "%s/completion", tmp);
	snprintf(cmd, sizeof(cmd),
	         "bash -c 'source %s; COMP_WORDS=(fieldsync wa); COMP_CWORD=1; _fieldsync; "
	         "echo \"${COMPREPLY[@]}\"; COMP_WORDS=(fieldsync watch --on); COMP_CWORD=2; "
	         "_fieldsync; echo \"${COMPREPLY[@]}\"' >%s 2>&1",
	         script, path);
	cr_assert_eq(system(cmd), 0);
	read_into(path, out, sizeof(out));
	cr_expect_str_eq(out, "watch\n--on-restore\n");
}
