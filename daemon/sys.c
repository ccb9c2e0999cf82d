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
	size_t len = strlen(text), done = 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return FSD_IO;
	}
	if (fchmod(fd, 0600) != 0) /* the umask may have taken bits away, never add them */
		goto fail;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		done += (size_t)w;
	}
	if (fsync(fd) != 0)
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
