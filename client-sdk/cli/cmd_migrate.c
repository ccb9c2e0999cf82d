/*
 * cmd_migrate.c: `fieldsync --store DIR --key-file FILE migrate` (cli.h).
 * Encrypts, in place, a plain store that an older SDK let hold a device
 * credential (its CURVE secret key in clear): fs_store_migrate seals every
 * record, outbox entry, change set in flight and the secret key with a new
 * store key from FILE (`fieldsync --key-file FILE keygen` makes one) and
 * atomically replaces the store file. Nothing else may have the store open.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cmd_migrate(const cli_opts *opts)
{
	const char *store_dir = opts->store, *key_file = opts->key_file;
	fs_store_opts o;
	fsc_master m;
	if (key_file == NULL)
		return cli_usage_error("migrate needs --key-file FILE (make one with `fieldsync "
		                       "--key-file FILE keygen`)");
	memset(&m, 0, sizeof(m));
	if (!cli_load_key(key_file, &m))
		return EX_USAGE;
	memset(&o, 0, sizeof(o));
	o.key = m.key;
	o.key_len = sizeof(m.key);
	o.key_id = m.id;
	fs_err e = fs_store_migrate(store_dir, &o);
	fsc_cleanse(&m, sizeof(m));
	if (e == FS_ERR_EXISTS) {
		fprintf(stderr, "fieldsync: the store at %s is encrypted already\n", store_dir);
		return EX_USAGE;
	}
	if (e == FS_ERR_BUSY) {
		fprintf(stderr, "fieldsync: the store at %s is open elsewhere: close it first\n",
		        store_dir);
		return EX_FAIL;
	}
	if (e != FS_OK)
		return cli_fail("migrate", e);
	fprintf(stderr, "fieldsync: the store at %s is encrypted now; open it with --key-file %s\n",
	        store_dir, key_file);
	return 0;
}
