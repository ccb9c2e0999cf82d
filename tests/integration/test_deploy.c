/*
 * deploy/: the container image's entry point, run the way the image runs it.
 * CI has no container engine, so this runs deploy/entrypoint.sh itself, with
 * what the image (deploy/Dockerfile) and the Kubernetes manifests give it:
 * uid/gid 10001 with no supplementary groups and no_new_privs (setpriv from
 * util-linux; the tests run as root), the daemon and the script in a
 * read-only directory first in PATH, a fresh data directory owned by 10001,
 * and configuration from the environment only. It checks /readyz, the
 * HEALTHCHECK command (`fieldsyncd health`) and that SIGTERM reaches the
 * daemon itself (the script execs it) and ends it with exit 0 after the drain.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define APP_UID 10001
#define APP_GID 10001

static const char *const setpriv_paths[] = {"/usr/bin/setpriv", "/bin/setpriv", NULL};

/* The repository root: FS_VECTORS_DIR is <repo>/tests/vectors. */
static void
repo_path(char *out, size_t cap, const char *rel)
{
	char root[1024];
	snprintf(root, sizeof(root), "%s", FS_VECTORS_DIR);
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(root, '/');
		cr_assert_not_null(slash, "FS_VECTORS_DIR is not <repo>/tests/vectors: %s", FS_VECTORS_DIR);
		*slash = '\0';
	}
	snprintf(out, cap, "%s/%s", root, rel);
}

static const char *
setpriv_bin(void)
{
	for (int i = 0; setpriv_paths[i]; i++)
		if (access(setpriv_paths[i], X_OK) == 0)
			return setpriv_paths[i];
	return NULL;
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
	FILE *in = fopen(from, "rb");
	cr_assert_not_null(in, "open %s: %s", from, strerror(errno));
	FILE *out = fopen(to, "wb");
	cr_assert_not_null(out, "create %s: %s", to, strerror(errno));
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
	cr_assert_eq(chmod(to, mode), 0);
}

static void
write_file(const char *path, const char *text, mode_t mode, uid_t uid, gid_t gid)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "create %s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
	cr_assert_eq(chown(path, uid, gid), 0, "chown %s: %s", path, strerror(errno));
}
/* The test's fixture: one temporary tree, made as root, used as APP_UID. */
struct tree {
	char base[256], bin[300], data[300], secrets[300], run[300], log[300];
	char entrypoint[320], daemon[320];
	int sync_port, reminder_port, ops_port;
};

static void
tree_make(struct tree *t)
{
	const char *sp = setpriv_bin();
	cr_assert_not_null(sp, "setpriv is missing (Debian package util-linux): the test runs the "
	                       "entrypoint as uid %d with it, as the image does", APP_UID);
	cr_assert_eq(geteuid(), 0, "this test switches to uid %d with setpriv, so it must run as "
	                           "root (as CI does: tests/run.sh)", APP_UID);
	char *tmp = fs_test_tmpdir();
	cr_assert_not_null(tmp);
	snprintf(t->base, sizeof(t->base), "%s", tmp);
	free(tmp);
	cr_assert_eq(chmod(t->base, 0711), 0); /* APP_UID may pass through, not list */
	snprintf(t->bin, sizeof(t->bin), "%s/bin", t->base);
	snprintf(t->data, sizeof(t->data), "%s/data", t->base);
	snprintf(t->secrets, sizeof(t->secrets), "%s/secrets", t->base);
	snprintf(t->run, sizeof(t->run), "%s/run", t->base);
	snprintf(t->log, sizeof(t->log), "%s/daemon.log", t->base);
	snprintf(t->daemon, sizeof(t->daemon), "%s/fieldsyncd", t->bin);
	snprintf(t->entrypoint, sizeof(t->entrypoint), "%s/entrypoint.sh", t->bin);

	/* The install tree: the built daemon and deploy/entrypoint.sh, read-only. */
	char src[1100];
	cr_assert_eq(mkdir(t->bin, 0755), 0);
	copy_file(FS_DAEMON_BIN, t->daemon, 0555);
	repo_path(src, sizeof(src), "deploy/entrypoint.sh");
	copy_file(src, t->entrypoint, 0555);
	cr_assert_eq(chmod(t->bin, 0555), 0);

	/* The volume and the secrets, owned by APP_UID (the image's VOLUME and a
	 * Docker secret mounted for it). */
	cr_assert_eq(mkdir(t->data, 0700), 0);
	cr_assert_eq(chown(t->data, APP_UID, APP_GID), 0);
	cr_assert_eq(mkdir(t->secrets, 0700), 0);
	cr_assert_eq(chown(t->secrets, APP_UID, APP_GID), 0);
	cr_assert_eq(mkdir(t->run, 0700), 0);
	cr_assert_eq(chown(t->run, APP_UID, APP_GID), 0);

	t->sync_port = fs_test_free_port();
	t->reminder_port = fs_test_free_port();
	t->ops_port = fs_test_free_port();
	cr_assert(t->sync_port > 0 && t->reminder_port > 0 && t->ops_port > 0);
}

static void
tree_remove(struct tree *t)
{
	chmod(t->bin, 0755);
	fs_test_rm_rf(t->base);
}

/* A clean environment, as a container has: PATH with the install tree first,
 * and the FIELDSYNC_* variables the image and the manifests set. extra: more
 * NAME=value strings, NULL-terminated. */
static void
make_env(const struct tree *t, char env[][1024], char **envp, const char *ops_listen,
         const char *const *extra)
{
	int n = 0;
	snprintf(env[n++], 1024, "PATH=%s:/usr/bin:/bin", t->bin);
	snprintf(env[n++], 1024, "HOME=/nonexistent");
	snprintf(env[n++], 1024, "LANG=C");
	snprintf(env[n++], 1024, "FIELDSYNC_DATA_DIR=%s", t->data);
	snprintf(env[n++], 1024, "FIELDSYNC_SYNC_ENDPOINT=tcp://127.0.0.1:%d", t->sync_port);
	snprintf(env[n++], 1024, "FIELDSYNC_REMINDER_ENDPOINT=tcp://127.0.0.1:%d", t->reminder_port);
	snprintf(env[n++], 1024, "FIELDSYNC_OPS_LISTEN=%s", ops_listen);
	for (int i = 0; extra && extra[i]; i++)
		snprintf(env[n++], 1024, "%s", extra[i]);
	for (int i = 0; i < n; i++)
		envp[i] = env[i];
	envp[n] = NULL;
}

/* Starts argv as APP_UID:APP_GID, no supplementary groups, no_new_privs,
 * stdout and stderr appended to log. Returns the pid (setpriv execs argv, so
 * it is argv's pid). */
static pid_t
spawn_as_app(const char *log, char *const *argv, char *const *envp)
{
	const char *sp = setpriv_bin();
	char reuid[32], regid[32];
	snprintf(reuid, sizeof(reuid), "--reuid=%d", APP_UID);
	snprintf(regid, sizeof(regid), "--regid=%d", APP_GID);
	const char *args[32] = {sp, reuid, regid, "--clear-groups", "--no-new-privs", "--"};
	int n = 6;
	for (int i = 0; argv[i] && n < 31; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setpgid(0, 0); /* its own group: whatever it leaves behind is killed at the end */
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		if (chdir("/") != 0)
			_exit(126);
		execve(sp, (char *const *)args, envp);
		_exit(127);
	}
	return pid;
}

/* Waits for pid up to timeout_ms; its exit status, 128+signal, -1 on timeout. */
static int
wait_for(pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(20000);
	}
	return -1;
}

static int
run_as_app(const char *log, char *const *argv, char *const *envp, int timeout_ms)
{
	pid_t pid = spawn_as_app(log, argv, envp);
	int st = wait_for(pid, timeout_ms);
	if (st < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	kill(-pid, SIGKILL);
	return st;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return strdup("");
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	/* only the tail matters in a failure message */
	return strdup(n > 4000 ? buf + n - 4000 : buf);
}

/* The uid a running process has (real), from /proc; -1 when unknown. */
static long
proc_uid(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long uid = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Uid:", 4) == 0)
			uid = strtol(line + 4, NULL, 10);
	fclose(f);
	return uid;
}

static bool
wait_ready(int ops_port, pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		char *body = NULL;
		int code = fs_test_http_get(ops_port, "/readyz", &body);
		free(body);
		if (code == 200)
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(100000);
	}
	return false;
}

/* Sends SIGTERM and expects the drain to end with exit 0 within 30 s. */
static void
expect_clean_stop(pid_t pid, const char *log)
{
	cr_assert_eq(kill(pid, SIGTERM), 0);
	int st = wait_for(pid, 30000);
	if (st < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	kill(-pid, SIGKILL); /* a child the entrypoint forked instead of exec'ing */
	char *out = slurp(log);
	cr_expect_eq(st, 0, "SIGTERM must drain and exit 0 (got %d); log:\n%s", st, out);
	free(out);
}

Test(deploy, image_entrypoint_as_uid_10001_read_only_install, .timeout = 120)
{
	struct tree t;
	tree_make(&t);
	char env[16][1024], *envp[17], ops_listen[64], port_arg[80];

	/* The master key: a Docker secret mounted for uid 10001, mode 0600. */
	char mk[320], mk_env[400];
	snprintf(mk, sizeof(mk), "%s/master.key", t.secrets);
	write_file(mk, "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	           0600, APP_UID, APP_GID);
	snprintf(mk_env, sizeof(mk_env), "FIELDSYNC_MASTER_KEY_FILE=%s", mk);
	const char *const extra[] = {mk_env, NULL};

	/* 0.0.0.0, as in the image: `fieldsyncd health` must then ask loopback. */
	snprintf(ops_listen, sizeof(ops_listen), "0.0.0.0:%d", t.ops_port);
	make_env(&t, env, envp, ops_listen, extra);

	/* Once, before the first start: the server key pair, made as 10001. */
	char *init[] = {t.daemon, "init", "--data-dir", t.data, NULL};
	int st = run_as_app(t.log, init, envp, 30000);
	char *out = slurp(t.log);
	cr_assert_eq(st, 0, "fieldsyncd init as uid %d: %d\n%s", APP_UID, st, out);
	free(out);
	char key[320];
	struct stat ks;
	snprintf(key, sizeof(key), "%s/server.key", t.data);
	cr_assert_eq(stat(key, &ks), 0);
	cr_expect_eq(ks.st_uid, (uid_t)APP_UID);
	cr_expect_eq(ks.st_mode & 0777, 0600);

	/* The image's ENTRYPOINT, no arguments: production mode. */
	char *ep[] = {t.entrypoint, NULL};
	pid_t pid = spawn_as_app(t.log, ep, envp);
	bool ready = wait_ready(t.ops_port, pid, 30000);
	out = slurp(t.log);
	cr_assert(ready, "/readyz never answered 200; log:\n%s", out);
	cr_expect_null(strstr(out, "DEVELOPMENT MODE"), "the image runs in production mode:\n%s", out);
	free(out);

	/* The entrypoint exec'd the daemon (so SIGTERM reaches it), as 10001,
	 * from the read-only install tree. */
	char exe_link[64], exe[700] = "";
	snprintf(exe_link, sizeof(exe_link), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(exe_link, exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = '\0';
	cr_expect_str_eq(exe, t.daemon, "the entrypoint must exec fieldsyncd, not fork it");
	cr_expect_eq(proc_uid(pid), APP_UID);
	struct stat ds;
	char mdb[320];
	snprintf(mdb, sizeof(mdb), "%s/data.mdb", t.data);
	cr_expect_eq(stat(mdb, &ds), 0);
	cr_expect_eq(ds.st_uid, (uid_t)APP_UID);

	/* The HEALTHCHECK: `fieldsyncd health`, as 10001, reading FIELDSYNC_OPS_LISTEN. */
	char *health[] = {"fieldsyncd", "health", NULL}; /* found in PATH, as Docker does */
	cr_expect_eq(run_as_app(t.log, health, envp, 10000), 0,
	             "fieldsyncd health (the image's HEALTHCHECK) must exit 0");
	char *ready_cmd[] = {t.daemon, "health", "--ready", NULL};
	cr_expect_eq(run_as_app(t.log, ready_cmd, envp, 10000), 0);
	/* ...and 1 when nothing answers. */
	snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%d", fs_test_free_port());
	char *dead_cmd[] = {t.daemon, "health", "--ops-listen", port_arg, NULL};
	cr_expect_eq(run_as_app(t.log, dead_cmd, envp, 10000), 1);

	expect_clean_stop(pid, t.log);
	tree_remove(&t);
}

/* The Kubernetes path (deploy/k8s/statefulset.yaml): the Secrets are mounted
 * root-owned, group 10001, mode 0440 (fsGroup), which fieldsyncd refuses for
 * keys; the entrypoint installs the server key pair into a fresh data
 * directory and copies the master key to a private 0600 file. */
Test(deploy, entrypoint_installs_kubernetes_secrets, .timeout = 120)
{
	struct tree t;
	tree_make(&t);
	char env[16][1024], *envp[17], ops_listen[64];

	/* A key pair made elsewhere with `fieldsyncd init` (what the Secret holds). */
	char made[300], sk_dir[300], mk_dir[300];
	snprintf(made, sizeof(made), "%s/made", t.base);
	char *init[] = {(char *)FS_DAEMON_BIN, "init", "--data-dir", made, NULL};
	pid_t ip = fork();
	cr_assert_geq(ip, 0);
	if (ip == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(FS_DAEMON_BIN, init);
		_exit(127);
	}
	cr_assert_eq(wait_for(ip, 30000), 0, "fieldsyncd init");
	snprintf(sk_dir, sizeof(sk_dir), "%s/server-key", t.base);
	snprintf(mk_dir, sizeof(mk_dir), "%s/master-key", t.base);
	cr_assert_eq(mkdir(sk_dir, 0755), 0);
	cr_assert_eq(mkdir(mk_dir, 0755), 0);
	const char *names[] = {"server.key", "server.pub"};
	for (int i = 0; i < 2; i++) {
		char from[400], to[400];
		snprintf(from, sizeof(from), "%s/%s", made, names[i]);
		snprintf(to, sizeof(to), "%s/%s", sk_dir, names[i]);
		copy_file(from, to, 0440);
		cr_assert_eq(chown(to, 0, APP_GID), 0);
	}
	char mk[400];
	snprintf(mk, sizeof(mk), "%s/master.key", mk_dir);
	write_file(mk, "k1:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n",
	           0440, 0, APP_GID);

	/* The StatefulSet's environment; the data dir is a subdirectory of the volume. */
	char e_data[512], e_sk[512], e_mk[512], e_mkf[512];
	snprintf(e_data, sizeof(e_data), "FIELDSYNC_DATA_DIR=%s/data/data", t.base);
	snprintf(e_sk, sizeof(e_sk), "FIELDSYNC_SERVER_KEY_DIR=%s", sk_dir);
	snprintf(e_mk, sizeof(e_mk), "FIELDSYNC_MASTER_KEY_SECRET=%s", mk);
	snprintf(e_mkf, sizeof(e_mkf), "FIELDSYNC_MASTER_KEY_FILE=%s/master.key", t.run);
	const char *const extra[] = {e_sk, e_mk, e_mkf, NULL};
	snprintf(ops_listen, sizeof(ops_listen), "0.0.0.0:%d", t.ops_port);
	make_env(&t, env, envp, ops_listen, extra);
	/* make_env set FIELDSYNC_DATA_DIR to the volume root: point it one level down. */
	for (int i = 0; envp[i]; i++)
		if (strncmp(envp[i], "FIELDSYNC_DATA_DIR=", 19) == 0)
			snprintf(env[i], 1024, "%s", e_data);

	char *ep[] = {t.entrypoint, NULL};
	pid_t pid = spawn_as_app(t.log, ep, envp);
	bool ready = wait_ready(t.ops_port, pid, 30000);
	char *out = slurp(t.log);
	cr_assert(ready, "/readyz never answered 200; log:\n%s", out);
	cr_expect_null(strstr(out, "DEVELOPMENT MODE"), "the image runs in production mode:\n%s", out);
	free(out);

	char path[400];
	struct stat st;
	snprintf(path, sizeof(path), "%s/data/data/server.key", t.base);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, (uid_t)APP_UID);
	cr_expect_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/master.key", t.run);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	expect_clean_stop(pid, t.log);

	/* A restart with the same Secret starts; a different key in the Secret
	 * than in the volume is refused before the daemon starts. */
	pid = spawn_as_app(t.log, ep, envp);
	ready = wait_ready(t.ops_port, pid, 30000);
	cr_expect(ready, "restart with the same Secret");
	if (ready)
		expect_clean_stop(pid, t.log);
	else {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	snprintf(path, sizeof(path), "%s/server.pub", sk_dir);
	write_file(path, "not-the-same-key\n", 0440, 0, APP_GID);
	cr_expect_eq(run_as_app(t.log, ep, envp, 30000), 1,
	             "a Secret whose server key differs from the volume's must stop the start");
	tree_remove(&t);
}

/* The Kubernetes manifests fence the ops port (issue 11): check_k8s_ops.py
 * reads deploy/k8s as kustomization.yaml lists it (needs python3-yaml:
 * deploy/install-deps.sh --test) and names every hole it finds. */
Test(deploy, kubernetes_manifests_keep_the_ops_port_private, .timeout = 60)
{
	char k8s[1100], script[1100], cmd[2400], out[4096] = "";
	repo_path(k8s, sizeof(k8s), "deploy/k8s");
	repo_path(script, sizeof(script), "tests/integration/check_k8s_ops.py");
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s' 2>&1", script, k8s);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "deploy/k8s leaves the ops port open (python3-yaml missing? "
	          "deploy/install-deps.sh --test):\n%s",
	          out);
	cr_expect_str_eq(out, "ok\n");
}
