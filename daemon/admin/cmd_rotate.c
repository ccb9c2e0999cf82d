/*
 * cmd_rotate.c: `fieldsyncd rotate-master-key` (admin layer; admin.h).
 * Rewraps every data key of DIR/keys with the first (current) key of the
 * master key file, then writes an audit entry (best effort: the rewrap has
 * happened either way). To rotate: put the new key first in the file,
 * restart the daemon, run this, drop the old line.
 *
 * Runs while the daemon runs (after its restart with the new key file).
 */
#include <stdio.h>

#include "admin.h"
#include "audit.h"
#include "keyring.h"

/* The audit entry of a done rotation; nothing is undone when it fails. */
static fsd_err
rotate_audit_txn(store_txn *t, void *arg)
{
	const char *const *w = arg; /* actor, key id */
	return audit_append(t, w[0], "rotate-master-key", NULL, NULL, w[1]);
}

int
admin_cmd_rotate(const admin_args *a)
{
	bool needed = false;
	size_t n = 0;
	char err[300];
	keyring *k = admin_open_keyring(admin_opt(a, "data-dir"), admin_opt(a, "master-key-file"),
	                                &needed);
	if (k == NULL) {
		if (!needed)
			fprintf(stderr, "fieldsyncd: this store holds no encrypted data\n");
		return FSD_EXIT_FAIL;
	}
	bool ok = keyring_rewrap_all(k, &n, err, sizeof(err)) == FSD_OK;
	const char *id = keyring_current_id(k);
	char idc[80];
	snprintf(idc, sizeof(idc), "%s", id);
	keyring_close(&k);
	if (!ok) {
		fprintf(stderr, "fieldsyncd: rotate-master-key failed: %s\n", err);
		return FSD_EXIT_FAIL;
	}
	store *s = admin_open_store(admin_opt(a, "data-dir"), false);
	if (s != NULL) {
		const char *what[2] = {admin_actor(a), idc};
		admin_write_txn(s, rotate_audit_txn, (void *)what);
		store_close(&s);
	}
	printf("%zu data key(s) rewrapped with master key \"%s\"; the old master key can now be "
	       "removed from the key file\n",
	       n, idc);
	return FSD_EXIT_OK;
}
