/*
 * cmd_restore.c: `fieldsyncd restore` (admin layer; admin.h). Copies a
 * backup made by `fieldsyncd backup` into a new data directory (one holding
 * a data.mdb is refused), optionally with the key store backup (--keys-from,
 * into DIR/keys), each file new, mode 0600 and synced; then runs verify on
 * the result and exits with verify's code. Server keys are in no backup:
 * the operator copies server.key and server.pub from the secret store.
 *
 * The restored store gets a new generation (PROTOCOL.md §7): it may have
 * forgotten change sets it acknowledged after the backup, and a tablet that
 * sees the new generation in Welcome pulls from 0 and pushes again what it
 * authored, so nothing acknowledged is lost.
 *
 * Runs with no daemon on the target directory (it must not hold a store):
 * it holds the directory's single-writer lock while it writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "keyring.h"
#include "schema.h"
#include "store.h"
#include "sys.h"

/* Copies from into a new file to (0600, O_EXCL), synced. */
static bool
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
	bool ok = false;
	uint8_t buf[1 << 16];
	if (in < 0) {
		fprintf(stderr, "fieldsyncd restore: cannot open %s: %s\n", from, strerror(errno));
		return false;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", to, strerror(errno));
		close(in);
		return false;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		if (!sys_write_all(out, buf, (size_t)n))
			goto fail;
	}
	if (fchmod(out, 0600) != 0 || fsync(out) != 0)
		goto fail;
	ok = true;
fail:
	if (!ok)
		fprintf(stderr, "fieldsyncd restore: copying %s to %s: %s\n", from, to,
		        strerror(errno));
	close(in);
	if (close(out) != 0)
		ok = false;
	if (!ok)
		unlink(to);
	else
		sys_sync_parent(to);
	return ok;
}

/* Gives the restored store in dir a new generation. */
static bool
new_generation(const char *dir)
{
	store *s = admin_open_store(dir, false);
	if (s == NULL)
		return false;
	fsd_err rc = store_new_generation(s);
	if (rc == FSD_OK)
		fprintf(stderr,
		        "fieldsyncd restore: new generation %s: tablets will re-push what "
		        "the backup may lack\n",
		        store_generation(s));
	else
		fprintf(stderr, "fieldsyncd restore: cannot give the store a new generation: %s\n",
		        fsd_strerror(rc));
	store_close(&s);
	return rc == FSD_OK;
}

int
admin_cmd_restore(const admin_args *a)
{
	const char *dir = admin_opt(a, "data-dir"), *from = admin_opt(a, "from");
	const char *keys_from = admin_opt(a, "keys-from");
	char path[700];
	int lock_fd = -1, code;
	long holder = 0;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (sys_file_exists(path)) {
		fprintf(stderr,
		        "fieldsyncd restore: %s already holds a store (%s); restore only "
		        "into a new directory\n",
		        dir, path);
		return FSD_EXIT_FAIL;
	}
	if (!sys_file_exists(from)) {
		fprintf(stderr, "fieldsyncd restore: %s: %s\n", from, strerror(errno));
		return FSD_EXIT_FAIL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", dir, strerror(errno));
		return FSD_EXIT_FAIL;
	}
	fsd_err lrc = store_lock_dir(dir, false, &lock_fd, &holder);
	if (lrc != FSD_OK) {
		fprintf(stderr,
		        "fieldsyncd restore: %s is in use by another process (pid %ld): %s\n", dir,
		        holder, fsd_strerror(lrc));
		return FSD_EXIT_FAIL;
	}
	code = FSD_EXIT_FAIL;
	if (!copy_file(from, path))
		goto out;
	if (keys_from != NULL) {
		snprintf(path, sizeof(path), "%s/keys", dir);
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			fprintf(stderr, "fieldsyncd restore: cannot create %s: %s\n", path,
			        strerror(errno));
			goto out;
		}
		snprintf(path, sizeof(path), "%s/keys/data.mdb", dir);
		if (!copy_file(keys_from, path))
			goto out;
	}
	if (!new_generation(dir))
		goto out;
	store_unlock_dir(&lock_fd);
	fprintf(stderr, "fieldsyncd restore: restored %s into %s%s\n", from, dir,
	        keys_from != NULL ? " with its key store" : "");
	fprintf(stderr,
	        "fieldsyncd restore: note: server keys are in no backup: copy server.key "
	        "and server.pub (mode 0600) from your secret store into %s before the "
	        "daemon runs in production mode\n",
	        dir);
	if (keys_from == NULL)
		fprintf(stderr,
		        "fieldsyncd restore: note: no key store was restored (--keys-from): "
		        "if the data is encrypted, it cannot be read until DIR/keys is "
		        "restored\n");
	fprintf(stderr, "fieldsyncd restore: verifying...\n");
	return admin_verify_run(dir, admin_opt(a, "master-key-file"), admin_opt(a, "rules"),
	                        admin_opt(a, "time-zone"));
out:
	store_unlock_dir(&lock_fd);
	return code;
}
