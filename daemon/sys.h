/*
 * sys: small system helpers (infrastructure layer). Any thread; no state.
 */
#ifndef FIELDSYNCD_SYS_H
#define FIELDSYNCD_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* mkdir -p with mode 0700 for every directory it makes. */
fsd_err sys_mkdir_p(const char *path);
/* Writes text to a new file (O_EXCL, O_NOFOLLOW, mode 0600) and fsyncs it;
 * removes it again on failure. A sentence for the operator in err. */
fsd_err sys_write_new_file(const char *path, const char *text, char *err, size_t errlen);
/* fsyncs a directory (after creating files in it); best effort. */
void sys_sync_dir(const char *dir);
/* fsyncs the directory a path is in (after creating it); best effort. */
void sys_sync_parent(const char *path);
/* True when something exists at path (stat succeeds). */
bool sys_file_exists(const char *path);
/* Writes all of p[0..n) to fd, retrying short writes and EINTR; false
 * (errno set) on an error. */
bool sys_write_all(int fd, const uint8_t *p, size_t n);
/* Reads a whole file of at most max bytes, NUL-terminated; NULL when it
 * cannot be read or is larger. The caller frees it. */
char *sys_read_file(const char *path, size_t max);
/* Zeroes secrets in a way the compiler may not drop. */
void sys_wipe(void *p, size_t n);

#endif
