/* sys: small system helpers (infrastructure layer). See sys.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys.h"

fsd_err
sys_mkdir_p(const char *path)
{
	char buf[512];
	size_t l = strlen(path);
	if (l == 0 || l >= sizeof(buf))
		return FSD_INVALID;
	memcpy(buf, path, l + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return FSD_IO;
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		return FSD_IO;
	return FSD_OK;
}

fsd_err
sys_write_new_file(const char *path, const char *text, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(text);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return FSD_IO;
	}
	if (fchmod(fd, 0600) != 0) /* the umask may have taken bits away, never add them */
		goto fail;
	if (!sys_write_all(fd, (const uint8_t *)text, len) || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return FSD_OK;
fail:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return FSD_IO;
}

void
sys_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

void
sys_sync_parent(const char *path)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	sys_sync_dir(dir);
}

bool
sys_file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

bool
sys_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

char *
sys_read_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf != NULL) {
		size_t n = fread(buf, 1, max + 1, f);
		if (n > max) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

void
sys_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n-- > 0)
		*v++ = 0;
}
