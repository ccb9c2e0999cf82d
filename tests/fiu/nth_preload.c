/*
 * nth_preload: a preload library (test tooling, loaded into fieldsyncd
 * next to libfiu's fiu_posix_preload.so) that fails exactly the Nth call
 * of a set of libfiu failure points, counted from a marker, so a sweep can
 * walk the failure over every I/O call and allocation of one push.
 *
 * libfiu can fail a point always, at random or when a callback says so
 * (fiu_enable_external); it has no "the Nth call" mode. At load, this
 * library enables every point named in FS_FIU_NTH_POINTS with a callback
 * that counts calls while the shared control block (nth_ctl.h, the file
 * FS_FIU_NTH_CTL) is armed and fails the one whose number is the target,
 * once. The errno of the failure is EIO for I/O points and ENOMEM for
 * allocations, or FS_FIU_NTH_ERRNO when set. Disarmed (the default), the
 * callback fails nothing: the daemon runs as without it.
 *
 * A crash (SIGSEGV, SIGBUS, SIGFPE, SIGABRT) writes "nth_preload: signal
 * N" and the stack's frames to stderr, then dies from the same signal: the
 * driver resolves them and tells libzmq's own assertions from the rest.
 *
 * The call it fails writes "nth_preload: failed call at" and the stack's
 * frames to stderr, so the driver can say where it was.
 *
 * Contract: the callback runs inside malloc(), write() and the like, with
 * libfiu's read lock held: it touches atomics in the mapped block and,
 * once, writes the frames of the failed call (libfiu's recursion guard
 * lets those calls through unfailed and uncounted).
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <fiu.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nth_ctl.h"

static fs_fiu_nth_ctl *g_ctl;
static char g_names[FS_FIU_NTH_POINTS_MAX][64];
static long g_errno[FS_FIU_NTH_POINTS_MAX];
static unsigned g_n;

static int
on_call(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
	(void)failnum;
	(void)flags;
	if (atomic_load(&g_ctl->armed) == 0)
		return 0;
	unsigned i = 0;
	while (i < g_n && strcmp(g_names[i], name) != 0)
		i++;
	if (i < g_n)
		atomic_fetch_add(&g_ctl->per_point[i], 1);
	int32_t only = atomic_load(&g_ctl->only_point);
	if (only >= 0 && (unsigned)only != i)
		return 0;
	uint64_t n = atomic_fetch_add(&g_ctl->count, 1) + 1;
	if (n != atomic_load(&g_ctl->target))
		return 0;
	atomic_store(&g_ctl->failed_point, i < g_n ? (int32_t)i : -1);
	atomic_store(&g_ctl->injected, 1);
	/* where: the frames on stderr (the daemon's log). Inside libfiu's
	 * callback the wrapped calls go straight to libc, and backtrace() was
	 * loaded at start, so this neither allocates through the wrapper nor
	 * counts. */
	void *frames[24];
	static const char head[] = "nth_preload: failed call at\n";
	if (write(2, head, sizeof(head) - 1) > 0)
		backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
	*failinfo = (void *)(i < g_n ? g_errno[i] : (long)EIO); /* the wrapper's errno */
	return 1;
}

static void
on_crash(int sig)
{
	void *frames[40];
	char head[48];
	int n = snprintf(head, sizeof(head), "nth_preload: signal %d\n", sig);
	if (n > 0 && write(2, head, (size_t)n) < 0)
		_exit(128 + sig);
	backtrace_symbols_fd(frames, backtrace(frames, 40), 2);
	raise(sig); /* SA_RESETHAND: the default action now */
}

__attribute__((constructor)) static void
nth_init(void)
{
	const char *path = getenv("FS_FIU_NTH_CTL"), *points = getenv("FS_FIU_NTH_POINTS");
	const char *forced = getenv("FS_FIU_NTH_ERRNO");
	static char buf[FS_FIU_NTH_POINTS_MAX * 64];
	if (path == NULL || points == NULL)
		return;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("nth_preload: FS_FIU_NTH_CTL");
		return;
	}
	void *m = mmap(NULL, sizeof(fs_fiu_nth_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		perror("nth_preload: mmap");
		return;
	}
	g_ctl = m;
	if (fiu_init(0) != 0) {
		fprintf(stderr, "nth_preload: fiu_init failed\n");
		return;
	}
	snprintf(buf, sizeof(buf), "%s", points);
	for (char *save = NULL, *p = strtok_r(buf, " ", &save);
	     p != NULL && g_n < FS_FIU_NTH_POINTS_MAX; p = strtok_r(NULL, " ", &save)) {
		snprintf(g_names[g_n], sizeof(g_names[g_n]), "%s", p);
		g_errno[g_n] = forced != NULL                   ? atol(forced)
		               : strncmp(p, "libc/mm/", 8) == 0 ? ENOMEM
		                                                : EIO;
		g_n++;
	}
	/* every name first, then the points: the callback reads g_names */
	for (unsigned i = 0; i < g_n; i++)
		if (fiu_enable_external(g_names[i], 1, NULL, 0, on_call) != 0) {
			fprintf(stderr, "nth_preload: cannot enable %s\n", g_names[i]);
			return;
		}
	void *prime[2];
	backtrace(prime, 2); /* loads libgcc now, not inside a crash */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_crash;
	sa.sa_flags = (int)SA_RESETHAND;
	const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	atomic_store(&g_ctl->n_points, g_n);
	atomic_store(&g_ctl->magic, FS_FIU_NTH_MAGIC);
}
