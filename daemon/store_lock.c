/*
 * store_lock: the single-writer lock on a data directory (storage layer;
 * declared in store.h with the rest of the store's API).
 *
 * LMDB's lock.mdb lets any number of processes write in turn, so two
 * daemons on one directory would both serve, fire timers and publish.
 * DIR/fieldsyncd.lock is flock()ed exclusively by the daemon (and by the
 * admin commands that write with no daemon: init, restore) for as long as
 * it runs, and holds its pid as text for the message of whoever is
 * refused. The kernel drops the lock when the process dies, so a crash
 * never leaves a stale one. Nothing here touches LMDB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "store.h"
#include "sys.h"

#define LOCK_FILE "fieldsyncd.lock"

/* The pid written in an open lock file; 0 when it holds none. */
static long
lock_file_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

fsd_err
store_lock_dir(const char *dir, bool create, int *fd_out, long *holder)
{
	char path[700];
	*fd_out = -1;
	*holder = 0;
	if (create && sys_mkdir_p(dir) != FSD_OK)
		return FSD_IO;
	snprintf(path, sizeof(path), "%s/" LOCK_FILE, dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno == ENOENT ? FSD_NOTFOUND : FSD_IO;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		*holder = lock_file_pid(fd);
		close(fd);
		return e == EWOULDBLOCK ? FSD_BUSY : FSD_IO;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		close(fd);
		return FSD_IO;
	}
	*fd_out = fd;
	return FSD_OK;
}

void
store_unlock_dir(int *fd)
{
	if (fd == NULL || *fd < 0)
		return;
	close(*fd); /* the lock goes with it; the stale pid is only read under a lock */
	*fd = -1;
}

long
store_lock_holder(const char *dir)
{
	char path[700];
	long pid = 0;
	snprintf(path, sizeof(path), "%s/" LOCK_FILE, dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		pid = lock_file_pid(fd);
		if (pid <= 0)
			pid = -1; /* held, by whom unknown */
	}
	close(fd);
	return pid;
}
