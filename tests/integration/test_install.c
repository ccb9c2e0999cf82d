/*
 * `cmake --install`: the binaries, the public header (and the Swift module
 * map), libfieldsync as a shared library (SONAME, only fs_* exported) and a
 * static archive, its pkg-config files and CMake package, and the man pages
 * fieldsyncd(8), fieldsync(1) and fieldsyncd.conf(5). The build directory
 * is the parent of the directory that holds FS_DAEMON_BIN
 * (<build>/daemon/fieldsyncd). It is installed into a fresh prefix, then a
 * small app that includes only the installed <fieldsync/fieldsync.h> is
 * built three ways - pkg-config (shared), pkg-config (static), CMake
 * (find_package(fieldsync)) - and each build syncs with a real daemon.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/fieldsync.h"

static char prefix[512];

static void
build_dir(char *out, size_t cap)
{
	snprintf(out, cap, "%s", FS_DAEMON_BIN);
	for (int i = 0; i < 2; i++) { /* drop /fieldsyncd, then /daemon */
		char *slash = strrchr(out, '/');
		cr_assert_not_null(slash, "FS_DAEMON_BIN is not <build>/daemon/fieldsyncd: %s",
		                   FS_DAEMON_BIN);
		*slash = '\0';
	}
}

static int
run(const char *cmd)
{
	int st = system(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
install_prefix(void)
{
	char build[512], cmd[2048];
	build_dir(build, sizeof(build));
	snprintf(prefix, sizeof(prefix), "/tmp/fs-install-XXXXXX");
	cr_assert_not_null(mkdtemp(prefix));
	snprintf(cmd, sizeof(cmd), "cmake --install '%s' --prefix '%s' > '%s.log' 2>&1", build,
	         prefix, prefix);
	int rc = run(cmd);
	if (rc != 0) {
		snprintf(cmd, sizeof(cmd), "cat '%s.log' >&2", prefix);
		run(cmd);
	}
	cr_assert_eq(rc, 0, "cmake --install failed (exit %d), log above", rc);
}

static void
remove_prefix(void)
{
	char cmd[2048];
	if (prefix[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.log'", prefix, prefix);
	run(cmd);
}

/* The one path matching pattern (relative to the prefix) into out. */
static bool
find_one(const char *pattern, char *out, size_t cap)
{
	char full[1024];
	glob_t g;
	snprintf(full, sizeof(full), "%s/%s", prefix, pattern);
	if (glob(full, 0, NULL, &g) != 0)
		return false;
	snprintf(out, cap, "%s", g.gl_pathv[0]);
	globfree(&g);
	return true;
}

static void
assert_file(const char *pattern, bool executable)
{
	char path[1024];
	struct stat st;
	cr_assert(find_one(pattern, path, sizeof(path)), "not installed: %s/%s", prefix, pattern);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert(S_ISREG(st.st_mode), "%s is not a regular file", path);
	cr_assert_gt(st.st_size, 0, "%s is empty", path);
	if (executable)
		cr_assert_eq(access(path, X_OK), 0, "%s is not executable", path);
}

TestSuite(install, .init = install_prefix, .fini = remove_prefix, .timeout = 300);

Test(install, installs_binaries_header_libraries_packages_and_man_pages)
{
	char path[1024], cmd[2048];

	/* fieldsyncd in bin (or sbin), the CLI in bin; both run. */
	cr_assert(find_one("bin/fieldsyncd", path, sizeof(path)) ||
	                  find_one("sbin/fieldsyncd", path, sizeof(path)),
	          "fieldsyncd is not installed in %s/bin or %s/sbin", prefix, prefix);
	cr_assert_eq(access(path, X_OK), 0, "%s is not executable", path);
	snprintf(cmd, sizeof(cmd), "'%s' --version > /dev/null", path);
	cr_assert_eq(run(cmd), 0, "%s --version failed", path);
	assert_file("bin/fieldsync", true);
	snprintf(cmd, sizeof(cmd), "'%s/bin/fieldsync' --help > /dev/null", prefix);
	cr_assert_eq(run(cmd), 0, "fieldsync --help failed");

	assert_file("include/fieldsync/fieldsync.h", false);
	assert_file("include/fieldsync/module.modulemap", false);
	assert_file("lib*/libfieldsync.a", false);
	assert_file("lib*/libfieldsync.so." FIELDSYNC_VERSION_STRING, false);
	cr_assert(find_one("lib*/libfieldsync.so.0", path, sizeof(path)), "no libfieldsync.so.0");
	cr_assert(find_one("lib*/libfieldsync.so", path, sizeof(path)), "no libfieldsync.so");
	assert_file("lib*/pkgconfig/fieldsync.pc", false);
	assert_file("lib*/pkgconfig/fieldsync-static.pc", false);
	assert_file("lib*/cmake/fieldsync/fieldsyncConfig.cmake", false);
	assert_file("lib*/cmake/fieldsync/fieldsyncConfigVersion.cmake", false);

	assert_file("share/man/man8/fieldsyncd.8", false);
	assert_file("share/man/man1/fieldsync.1", false);
	assert_file("share/man/man5/fieldsyncd.conf.5", false);

	/* the public header names no header that is not installed */
	snprintf(cmd, sizeof(cmd),
	         "! grep -nE 'fsc_|fsp_|#include +\"' '%s/include/fieldsync/fieldsync.h'", prefix);
	cr_expect_eq(run(cmd), 0, "fieldsync.h mentions something not installed (above)");
}

Test(install, the_shared_library_has_a_soname_and_exports_only_fs)
{
	char so[1024], cmd[4096];
	cr_assert(find_one("lib*/libfieldsync.so." FIELDSYNC_VERSION_STRING, so, sizeof(so)));
	snprintf(cmd, sizeof(cmd), "readelf -d '%s' | grep -q 'SONAME.*\\[libfieldsync.so.%d\\]'",
	         so, FIELDSYNC_VERSION_MAJOR);
	cr_expect_eq(run(cmd), 0, "SONAME is not libfieldsync.so.%d", FIELDSYNC_VERSION_MAJOR);
	snprintf(
		cmd, sizeof(cmd),
		"out=$(nm -D --defined-only '%s' | awk '{print $3}' | grep -v '^fs_' "
		"| grep -v '^FIELDSYNC' | grep -v '^$'); "
		"[ -z \"$out\" ] || { echo \"exported besides fs_*: $out\" | head -20 >&2; exit 1; }",
		so);
	cr_expect_eq(run(cmd), 0, "the shared library exports more than fs_* (above)");
	snprintf(cmd, sizeof(cmd),
	         "nm -D --defined-only '%s' | grep -qE ' T (fs_sync_cancel|fs_put_many)$'", so);
	cr_expect_eq(run(cmd), 0, "the public API is not exported");
}

/* ---- the app, built three ways ------------------------------------------- */

static const char app_src[] =
	"#include <fieldsync/fieldsync.h>\n"
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"/* app STORE ENDPOINT: a store, one write, one sync with the daemon */\n"
	"int main(int argc, char **argv) {\n"
	"\tfs_store *s = NULL;\n"
	"\tfs_sync_opts o;\n"
	"\tfs_sync_stats st;\n"
	"\tif (argc != 3) return 2;\n"
	"\tif (strcmp(fs_version(), FIELDSYNC_VERSION_STRING) != 0) return 3;\n"
	"\tfs_err e = fs_store_create(argv[1], \"team-a\", &s);\n"
	"\tif (e == FS_OK) e = fs_put(s, \"notes\", \"app\", NULL, \"hello\", 5);\n"
	"\tmemset(&o, 0, sizeof(o));\n"
	"\to.endpoint = argv[2];\n"
	"\to.timeout_ms = 20000;\n"
	"\tif (e == FS_OK) e = fs_sync(s, &o, &st);\n"
	"\tfs_store_close(&s);\n"
	"\tif (e != FS_OK) { fprintf(stderr, \"%s\\n\", fs_strerror(e)); return 1; }\n"
	"\tprintf(\"fieldsync %s: pushed %llu\\n\", fs_version(), (unsigned long long)st.pushed);\n"
	"\treturn st.pushed == 1 ? 0 : 4;\n"
	"}\n";

static fs_test_daemon *daemon_;

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* Runs exe with a fresh store against the daemon; the daemon starts once. */
static void
run_app(const char *exe, const char *how)
{
	char store[1024], cmd[4096];
	static int n;
	if (daemon_ == NULL) {
		daemon_ = fs_test_daemon_start(NULL);
		cr_assert_not_null(daemon_, "the daemon must start");
	}
	snprintf(store, sizeof(store), "%s/store-%d", prefix, n++);
	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", exe, store, fs_test_daemon_endpoint(daemon_));
	int rc = run(cmd);
	cr_assert_eq(rc, 0, "the app built with %s failed against the daemon (exit %d)", how, rc);
}

static void
stop_daemon(void)
{
	if (daemon_ != NULL)
		fs_test_daemon_stop(&daemon_);
	remove_prefix();
}

static void
pc_dir(char *out, size_t cap)
{
	char pc[1024];
	cr_assert(find_one("lib*/pkgconfig/fieldsync.pc", pc, sizeof(pc)), "no fieldsync.pc");
	snprintf(out, cap, "%s", pc);
	*strrchr(out, '/') = '\0';
}

TestSuite(install_app, .init = install_prefix, .fini = stop_daemon, .timeout = 300);

Test(install_app, pkg_config_shared)
{
	char pcdir[1024], src[1024], exe[1024], cmd[4096];
	pc_dir(pcdir, sizeof(pcdir));
	snprintf(src, sizeof(src), "%s/app.c", prefix);
	snprintf(exe, sizeof(exe), "%s/app-shared", prefix);
	write_file(src, app_src);
	/* Nothing but -lfieldsync: its dependencies are the .so's own. The
	 * rpath is the app's business (an installed SDK in /usr needs none). */
	snprintf(cmd, sizeof(cmd),
	         "export PKG_CONFIG_PATH='%s'; flags=$(pkg-config --cflags --libs fieldsync) "
	         "|| exit 90; echo \"pkg-config: $flags\" >&2; "
	         "cc -std=c11 -Wall -Werror %s%s -o '%s' '%s' $flags "
	         "-Wl,-rpath,$(pkg-config --variable=libdir fieldsync)",
	         pcdir, FS_TEST_SANITIZE[0] ? "-fsanitize=" : "", FS_TEST_SANITIZE, exe, src);
	int rc = run(cmd);
	cr_assert_neq(rc, 90, "pkg-config fieldsync failed");
	cr_assert_eq(rc, 0, "linking with pkg-config --libs fieldsync failed (exit %d)", rc);
	snprintf(cmd, sizeof(cmd), "readelf -d '%s' | grep -q 'NEEDED.*libfieldsync.so.%d'", exe,
	         FIELDSYNC_VERSION_MAJOR);
	cr_expect_eq(run(cmd), 0, "the app does not use the shared library");
	run_app(exe, "pkg-config (shared)");
}

Test(install_app, pkg_config_static)
{
	char pcdir[1024], src[1024], exe[1024], cmd[4096];
	pc_dir(pcdir, sizeof(pcdir));
	snprintf(src, sizeof(src), "%s/app.c", prefix);
	snprintf(exe, sizeof(exe), "%s/app-static", prefix);
	write_file(src, app_src);
	/* fieldsync-static.pc names libfieldsync.a by path (the SDK and the core
	 * in one archive) and its dependencies; with --static, theirs too.
	 * Debian 12's norm.pc (pulled in by libzmq) lists a bare "libprotokit.a"
	 * in Libs.private: such a token is turned into -l:libprotokit.a so the
	 * linker searches for it instead of opening ./libprotokit.a. */
	snprintf(cmd, sizeof(cmd),
	         "flags=$(PKG_CONFIG_PATH='%s' pkg-config --cflags --libs --static "
	         "fieldsync-static) || exit 90; "
	         "fixed=; for t in $flags; do case $t in -*|/*) ;; lib*.a) t=-l:$t;; esac; "
	         "fixed=\"$fixed $t\"; done; "
	         "echo \"pkg-config: $fixed\" >&2; "
	         "cc -std=c11 -Wall -Werror %s%s -o '%s' '%s' $fixed",
	         pcdir, FS_TEST_SANITIZE[0] ? "-fsanitize=" : "", FS_TEST_SANITIZE, exe, src);
	int rc = run(cmd);
	cr_assert_neq(rc, 90, "pkg-config --static fieldsync-static failed");
	cr_assert_eq(rc, 0, "linking with pkg-config --static fieldsync-static failed (exit %d)",
	             rc);
	snprintf(cmd, sizeof(cmd), "! readelf -d '%s' | grep -q 'NEEDED.*libfieldsync'", exe);
	cr_expect_eq(run(cmd), 0, "the static app still needs libfieldsync.so");
	run_app(exe, "pkg-config (static)");
}

Test(install_app, cmake_find_package)
{
	char dirp[1024], path[1200], cmd[4096];
	snprintf(dirp, sizeof(dirp), "%s/cmake-app", prefix);
	cr_assert_eq(mkdir(dirp, 0700), 0);
	snprintf(path, sizeof(path), "%s/app.c", dirp);
	write_file(path, app_src);
	snprintf(path, sizeof(path), "%s/CMakeLists.txt", dirp);
	write_file(path, "cmake_minimum_required(VERSION 3.18)\n"
	                 "project(app C)\n"
	                 "find_package(fieldsync 0.1 REQUIRED)\n"
	                 "add_executable(app app.c)\n"
	                 "target_link_libraries(app PRIVATE fieldsync::fieldsync)\n");
	snprintf(cmd, sizeof(cmd),
	         "cd '%s' && cmake -S . -B build -DCMAKE_PREFIX_PATH='%s' "
	         "-DCMAKE_C_FLAGS='%s%s' > cmake.log 2>&1 && cmake --build build >> cmake.log 2>&1 "
	         "|| { cat cmake.log >&2; exit 1; }",
	         dirp, prefix, FS_TEST_SANITIZE[0] ? "-fsanitize=" : "", FS_TEST_SANITIZE);
	cr_assert_eq(run(cmd), 0, "the CMake build with find_package(fieldsync) failed (above)");
	snprintf(path, sizeof(path), "%s/build/app", dirp);
	run_app(path, "CMake (fieldsync::fieldsync)");
}
