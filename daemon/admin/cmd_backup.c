/*
 * cmd_backup.c: `fieldsyncd backup` (admin layer; admin.h). A hot,
 * compacting copy of the store into a new file, while the daemon runs.
 *
 * NOTES ON THE DESIGN OF BACKUPS
 *
 * store_copy_env (LMDB's compacting copy) runs in one read transaction, so
 * the copy is the consistent snapshot of the moment it began, while the
 * daemon goes on writing (readers never block the writer). Every change set
 * acknowledged before the backup began is in it: an ack follows a durable
 * commit. LMDB has no progress callback, so the copy goes through a pipe: a
 * thread runs the copy into it, the command reads the pipe into the output
 * file (new, 0600, O_EXCL: never overwritten), counts the bytes against the
 * store's used size and, on a terminal, prints a percentage. The output is
 * fsync'ed, then an audit entry "backup" goes into the live store.
 * `--out -` streams the copy to stdout instead (to a pipe, ssh, an object
 * store client); every message goes to stderr, so stdout holds the copy
 * alone.
 *
 * The key store (DATA_DIR/keys) is NOT in the data backup: a purge destroys
 * a data key, and that must reach every backup of the data
 * (docs/security.md). --with-keys FILE2 copies the key store the same way
 * into a second file, for key escrow with its own short retention. Server
 * keys (server.key/.pub) are in neither. restore (cmd_restore.c) undoes it.
 *
 * Runs while the daemon runs or not. The copy itself is the storage
 * layer's (store_copy_env, store_env_in_use: store.c owns LMDB); this file
 * only carries its bytes to the output file and shows the progress.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "clock.h"
#include "keyring.h"
#include "schema.h"
#include "store.h"
#include "sys.h"

/* Seconds on the monotonic clock, for progress and the time taken. */
static double
now_s(void)
{
	return (double)clock_mono_ms() / 1000.0;
}

/* ---- the hot copy: the storage layer's, through a pipe for progress -------- */

struct copy_job {
	const char *dir;
	int fd; /* the pipe's write end; the thread closes it */
	fsd_err rc;
};

static void *
copy_thread(void *p)
{
	struct copy_job *j = p;
	j->rc = store_copy_env(j->dir, j->fd, true);
	close(j->fd);
	return NULL;
}

/*
 * Copies (compacting) the LMDB env in env_dir into a new file out. *bytes is
 * the size written. False with a sentence in err; a partial out is removed.
 */
static bool
copy_env(const char *env_dir, const char *out, const char *label, uint64_t *bytes, char *err,
         size_t errlen)
{
	char path[1100];
	struct copy_job job = {0};
	pthread_t th;
	bool tty = isatty(STDERR_FILENO), started = false, ok = false, made = false;
	int pfd[2] = {-1, -1}, fd = -1, rc;
	fsd_err frc;
	uint64_t total = 0, done = 0;

	*bytes = 0;
	snprintf(path, sizeof(path), "%s/data.mdb", env_dir);
	if (!sys_file_exists(path)) {
		snprintf(err, errlen, "%s holds no store (no data.mdb)", env_dir);
		return false;
	}
	if ((frc = store_env_in_use(env_dir, &total)) != FSD_OK) {
		snprintf(err, errlen, "cannot open %s: %s", env_dir, fsd_strerror(frc));
		return false;
	}
	bool to_stdout = strcmp(out, "-") == 0; /* streamed: a pipe, ssh, an object store */
	fd = to_stdout ? dup(STDOUT_FILENO)
	               : open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s%s", out, strerror(errno),
		         errno == EEXIST ? " (a backup is never overwritten)" : "");
		goto out;
	}
	made = !to_stdout;
	if ((!to_stdout && fchmod(fd, 0600) != 0) || pipe(pfd) != 0) {
		snprintf(err, errlen, "cannot set up the copy: %s", strerror(errno));
		goto out;
	}
	fprintf(stderr, "fieldsyncd backup: copying %s (%llu KiB in use) to %s\n", label,
	        (unsigned long long)(total / 1024), out);
	job.dir = env_dir;
	job.fd = pfd[1];
	if ((rc = pthread_create(&th, NULL, copy_thread, &job)) != 0) {
		snprintf(err, errlen, "cannot start the copy: %s", strerror(rc));
		goto out;
	}
	pfd[1] = -1; /* the thread's now */
	started = true;

	uint8_t buf[1 << 16];
	double last = 0;
	for (;;) {
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "reading the copy: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (!sys_write_all(fd, buf, (size_t)n)) {
			snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
			goto out;
		}
		done += (uint64_t)n;
		if (tty && total > 0 && now_s() - last >= 0.2) {
			unsigned pct = done >= total ? 99 : (unsigned)(done * 100 / total);
			fprintf(stderr, "\rfieldsyncd backup: %s %3u%% (%llu KiB)", label, pct,
			        (unsigned long long)(done / 1024));
			last = now_s();
		}
	}
	ok = true;
out:
	if (pfd[0] >= 0) /* a copy still writing gets EPIPE (SIGPIPE is ignored) */
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (started) {
		pthread_join(th, NULL);
		if (ok && job.rc != FSD_OK) {
			snprintf(err, errlen, "the copy of %s failed: %s", env_dir,
			         fsd_strerror(job.rc));
			ok = false;
		}
	}
	if (tty && started)
		fprintf(stderr, "\r%60s\r", "");
	if (ok && !to_stdout && fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
		ok = false;
	}
	if (fd >= 0 && close(fd) != 0 && ok) {
		snprintf(err, errlen, "cannot write %s: %s", out, strerror(errno));
		ok = false;
	}
	if (!ok && made)
		unlink(out);
	if (ok && !to_stdout)
		sys_sync_parent(out);
	*bytes = done;
	return ok;
}

struct backup_audit {
	const char *actor, *detail;
};

/* The audit entry of a backup, written into the live store after the copy. */
static fsd_err
backup_audit_txn(store_txn *t, void *arg)
{
	const struct backup_audit *w = arg;
	return audit_append(t, w->actor, "backup", NULL, NULL, w->detail);
}

int
admin_cmd_backup(const admin_args *a)
{
	const char *dir = admin_opt(a, "data-dir"), *out = admin_opt(a, "out");
	const char *keys_out = admin_opt(a, "with-keys");
	const char *key_file = admin_opt(a, "master-key-file");
	char err[1200], keys_dir[600], detail[200];
	uint64_t bytes = 0, key_bytes = 0;

	signal(SIGPIPE, SIG_IGN);
	if (keys_out != NULL && strcmp(keys_out, out) == 0) {
		fprintf(stderr,
		        "fieldsyncd backup: --with-keys must name another file than --out\n");
		return FSD_EXIT_USAGE;
	}
	snprintf(keys_dir, sizeof(keys_dir), "%s/keys", dir);
	/* the key must open the key store, or the backup is unreadable; a plaintext
	 * store has none (and keyring_open would make an empty one) */
	if (key_file != NULL && sys_file_exists(keys_dir)) {
		keyring *k = NULL;
		if (keyring_open(dir, key_file, NULL, &k, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd backup: %s\n", err);
			return FSD_EXIT_FAIL;
		}
		keyring_close(&k);
	}
	if (keys_out != NULL && !sys_file_exists(keys_dir)) {
		fprintf(stderr,
		        "fieldsyncd backup: %s holds no key store (the data is not "
		        "encrypted): nothing for --with-keys\n",
		        dir);
		return FSD_EXIT_FAIL;
	}
	double t0 = now_s();
	if (!copy_env(dir, out, "the data", &bytes, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd backup: %s\n", err);
		return FSD_EXIT_FAIL;
	}
	fprintf(stderr, "fieldsyncd backup: wrote %s (%llu bytes, compacted) in %.1f s\n", out,
	        (unsigned long long)bytes, now_s() - t0);
	if (keys_out != NULL) {
		if (!copy_env(keys_dir, keys_out, "the key store", &key_bytes, err, sizeof(err))) {
			fprintf(stderr, "fieldsyncd backup: %s\n", err);
			return FSD_EXIT_FAIL;
		}
		fprintf(stderr,
		        "fieldsyncd backup: wrote the key store to %s (%llu bytes): this is "
		        "key escrow; keep it apart from the data backups, with a short "
		        "retention, so a purge reaches them\n",
		        keys_out, (unsigned long long)key_bytes);
	} else if (sys_file_exists(keys_dir)) {
		fprintf(stderr,
		        "fieldsyncd backup: note: the data keys (%s) are not in this backup "
		        "(a purge must reach data backups, docs/security.md); back them up "
		        "apart (--with-keys FILE) or the backup cannot be read\n",
		        keys_dir);
	}
	fprintf(stderr, "fieldsyncd backup: note: the server keys (server.key, server.pub) are "
	                "in no backup; keep them in your secret store\n");

	struct backup_audit w = {admin_actor(a), detail};
	snprintf(detail, sizeof(detail), "bytes=%llu keys=%s", (unsigned long long)bytes,
	         keys_out != NULL ? "yes" : "no");
	/* store_open, not admin_open_store: a failure is told once, below */
	store *s = store_open(dir, ADMIN_MAP_SIZE, ADMIN_MAP_SIZE_MAX);
	fsd_err rc = s == NULL ? FSD_ERROR : admin_write_txn(s, backup_audit_txn, &w);
	store_close(&s);
	if (rc != FSD_OK) {
		fprintf(stderr,
		        "fieldsyncd backup: the backup is complete, but its audit entry was "
		        "not written: %s\n",
		        fsd_strerror(rc));
		return FSD_EXIT_FAIL;
	}
	if (strcmp(out, "-") != 0) /* stdout holds the copy alone */
		printf("%s\n", out);
	return FSD_EXIT_OK;
}
