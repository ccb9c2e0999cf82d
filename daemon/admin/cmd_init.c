/*
 * cmd_init.c: `fieldsyncd init` (admin layer; admin.h). Creates the data
 * directory (mode 0700), the store and the CURVE server key pair
 * (DIR/server.key, DIR/server.pub, mode 0600), writes an audit entry and
 * prints the server public key. Refuses a directory that already has a
 * server.key: it never overwrites keys.
 *
 * Runs against a data directory no daemon uses yet (there is nothing to
 * run against before it).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "fieldsync/crypto.h"
#include "store.h"
#include "zap.h"

struct init_job {
	const char *dir, *actor;
	char err[700];
	bool keys_made;
};

/* The audit entry and the key pair, in one transaction (keys made once). */
static fsd_err
init_txn(store_txn *t, void *arg)
{
	struct init_job *j = arg;
	fsd_err rc = audit_append(t, j->actor, "init", NULL, NULL, "server key pair created");
	if (rc != FSD_OK)
		return rc;
	if (!j->keys_made && zap_keys_create(j->dir, j->err, sizeof(j->err)) != FSD_OK)
		return FSD_ERROR;
	j->keys_made = true;
	return FSD_OK;
}

int
admin_cmd_init(const admin_args *a)
{
	struct init_job j = {.dir = admin_opt(a, "data-dir"), .actor = admin_actor(a)};
	char pub[AUTH_Z85_KEY_LEN + 1], sec[AUTH_Z85_KEY_LEN + 1], path[600];
	struct stat st;
	store *s;
	fsd_err rc;

	snprintf(path, sizeof(path), "%s/server.key", j.dir);
	if (lstat(path, &st) == 0) {
		fprintf(stderr,
		        "fieldsyncd: %s is already initialised (%s exists); nothing was "
		        "changed\n",
		        j.dir, path);
		return FSD_EXIT_FAIL;
	}
	if ((s = admin_open_store(j.dir, true)) == NULL) /* makes the directory, mode 0700 */
		return FSD_EXIT_FAIL;
	if (stat(j.dir, &st) == 0 && (st.st_mode & 077) != 0)
		fprintf(stderr,
		        "fieldsyncd: warning: group or others may enter %s (mode %04o); "
		        "chmod 700 %s\n",
		        j.dir, (unsigned)(st.st_mode & 07777), j.dir);
	rc = admin_write_txn(s, init_txn, &j);
	store_close(&s);
	if (rc != FSD_OK) {
		if (j.keys_made) { /* committing failed: leave no keys the log does not know */
			snprintf(path, sizeof(path), "%s/server.key", j.dir);
			unlink(path);
			snprintf(path, sizeof(path), "%s/server.pub", j.dir);
			unlink(path);
		}
		fprintf(stderr, "fieldsyncd: init failed: %s\n",
		        j.err[0] ? j.err : fsd_strerror(rc));
		return FSD_EXIT_FAIL;
	}
	if (zap_keys_load(j.dir, pub, sec, j.err, sizeof(j.err)) != FSD_OK) {
		fprintf(stderr, "fieldsyncd: %s\n", j.err);
		return FSD_EXIT_FAIL;
	}
	fsc_cleanse(sec, sizeof(sec));
	fprintf(stderr,
	        "fieldsyncd: initialised %s (enroll puts the server public key into "
	        "every credential); server public key:\n",
	        j.dir);
	printf("%s\n", pub);
	return FSD_EXIT_OK;
}
