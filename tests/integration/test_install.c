/*
 * `cmake --install`: the binaries, the public header, libfieldsync with its
 * pkg-config file, and the man pages fieldsyncd(8), fieldsync(1) and
 * fieldsyncd.conf(5). The build directory is the parent of the directory that
 * holds FS_DAEMON_BIN (<build>/daemon/fieldsyncd). It is installed into a
 * fresh prefix, then a small program that includes only the installed
 * <fieldsync/fieldsync.h> is compiled and linked with what
 * `pkg-config --static fieldsync` says, and run.
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

Test(install, installs_binaries_header_library_pc_and_man_pages)
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
	assert_file("lib*/libfieldsync.a", false);
	assert_file("lib*/libfieldsync-proto.a", false);
	assert_file("lib*/libfieldsync-crypto.a", false);
	assert_file("lib*/pkgconfig/fieldsync.pc", false);

	assert_file("share/man/man8/fieldsyncd.8", false);
	assert_file("share/man/man1/fieldsync.1", false);
	assert_file("share/man/man5/fieldsyncd.conf.5", false);
}

Test(install, sdk_builds_from_installed_files_with_pkg_config)
{
	char pc[1024], pcdir[1024], src[1024], exe[1024], store[1024], cmd[4096];

	cr_assert(find_one("lib*/pkgconfig/fieldsync.pc", pc, sizeof(pc)), "no fieldsync.pc");
	snprintf(pcdir, sizeof(pcdir), "%s", pc);
	*strrchr(pcdir, '/') = '\0';

	snprintf(src, sizeof(src), "%s/hello.c", prefix);
	snprintf(exe, sizeof(exe), "%s/hello", prefix);
	snprintf(store, sizeof(store), "%s/store", prefix);
	FILE *f = fopen(src, "w");
	cr_assert_not_null(f);
	/* fs_store_create pulls in LMDB, cJSON, protobuf-c, OpenSSL and libzmq
	 * through the static libraries: Requires.private must name them. */
	fputs("#include <fieldsync/fieldsync.h>\n"
	      "#include <stdio.h>\n"
	      "#include <string.h>\n"
	      "int main(int argc, char **argv) {\n"
	      "\tfs_store *s = NULL;\n"
	      "\tif (argc != 2) return 2;\n"
	      "\tfs_err e = fs_store_create(argv[1], \"team-a\", &s);\n"
	      "\tif (e != FS_OK) { fprintf(stderr, \"%s\\n\", fs_strerror(e)); return 1; }\n"
	      "\tfs_store_close(&s);\n"
	      "\tconst char *m = fs_strerror(FS_OK);\n"
	      "\tif (m == NULL || m[0] == '\\0') return 1;\n"
	      "\tprintf(\"%s\\n\", m);\n"
	      "\treturn 0;\n"
	      "}\n",
	      f);
	cr_assert_eq(fclose(f), 0);

	/* The .pc finds its prefix from its own place (${pcfiledir}), so it
	 * works under this --prefix. Debian 12's norm.pc (pulled in by libzmq)
	 * lists a bare "libprotokit.a" in Libs.private: such a token is turned
	 * into -l:libprotokit.a so the linker searches for it. */
	snprintf(cmd, sizeof(cmd),
	         "flags=$(PKG_CONFIG_PATH='%s' pkg-config --cflags --libs --static fieldsync) "
	         "|| exit 90; "
	         "fixed=; for t in $flags; do case $t in -*) ;; lib*.a) t=-l:$t;; esac; "
	         "fixed=\"$fixed $t\"; done; "
	         "echo \"pkg-config: $fixed\" >&2; "
	         "cc -std=c11 -Wall -Werror %s%s -o '%s' '%s' $fixed",
	         pcdir, FS_TEST_SANITIZE[0] ? "-fsanitize=" : "", FS_TEST_SANITIZE, exe, src);
	int rc = run(cmd);
	cr_assert_neq(rc, 90, "pkg-config --static fieldsync failed");
	cr_assert_eq(rc, 0, "compiling against the installed SDK failed (exit %d)", rc);

	snprintf(cmd, sizeof(cmd), "'%s' '%s'", exe, store);
	cr_assert_eq(run(cmd), 0, "the program built against the installed SDK failed");
}
