/*
 * sync_count: counts the fsync/fdatasync/msync calls of the program it is
 * linked into. These definitions take the calls LMDB makes (Linux: the
 * program's own symbols come before libc's), then make the system call.
 * A file of its own: it calls nothing of the SDK, so the benchmark's arrows
 * run one way (bench_sdk -> SDK -> these wrappers).
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sync_count.h"

long sync_count;

int
fdatasync(int fd)
{
	sync_count++;
	return (int)syscall(SYS_fdatasync, fd);
}

int
fsync(int fd)
{
	sync_count++;
	return (int)syscall(SYS_fsync, fd);
}

int
msync(void *addr, size_t len, int flags)
{
	sync_count++;
	return (int)syscall(SYS_msync, addr, len, flags);
}
