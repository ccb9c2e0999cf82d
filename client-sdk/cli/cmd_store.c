/*
 * cmd_store.c: the commands of the `fieldsync` CLI that make, open and key a
 * store: init (optionally from a device credential), keygen, rekey, and the
 * opening of an existing store with the --key-file key for the other
 * commands.
 *
 * Contract: key material is cleansed before return; the store keeps its own
 * copy. Each function returns an exit status (cli.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The store key from --key-file / $FIELDSYNC_STORE_KEY_FILE into *m; false
 * (message printed) when the file does not give one. */
bool
cli_load_key(const char *key_file, fsc_master *m)
{
	char err[512];
	if (fsc_master_load_file(key_file, m, err, sizeof(err)))
		return true;
	fprintf(stderr, "fieldsync: %s\n", err);
	return false;
}

/* The device credential in file into *cred; 0, or the exit status after
 * "fieldsync: what: <why><after>" on stderr. */
int
cli_load_credential(const char *file, const char *what, const char *after, fs_credential **cred)
{
	char why[512];
	fs_err e = fs_credential_load(file, cred, why, sizeof(why));
	if (e == FS_OK)
		return 0;
	fprintf(stderr, "fieldsync: %s: %s%s\n", what, why, after);
	return e == FS_ERR_INVALID ? EX_USAGE : EX_FAIL;
}

int
cmd_init(const cli_opts *opt)
{
	const char *dir = opt->store, *scope = opt->scope, *key_file = opt->key_file;
	const char *cred_file = opt->credential;
	fs_store *s = NULL;
	fs_credential *cred = NULL;
	fs_store_opts o;
	fsc_master m;
	int rc = 0;

	memset(&o, 0, sizeof(o));
	memset(&m, 0, sizeof(m));
	o.default_scope = scope;
	if (cred_file != NULL) {
		if ((rc = cli_load_credential(cred_file, "init", "; nothing was created", &cred)) !=
		    0)
			return rc;
		o.credential = cred;
	}
	if (key_file != NULL) {
		if (!cli_load_key(key_file, &m)) {
			rc = EX_USAGE;
			goto out;
		}
		o.key = m.key;
		o.key_len = sizeof(m.key);
		o.key_id = m.id;
	}
	fs_err e = fs_store_create_ex(dir, &o, &s);
	if (e == FS_ERR_INVALID) {
		if (cred != NULL && scope != NULL) {
			rc = cli_usage_error(
				"--scope '%s' is not granted by the credential; give one of "
				"its scopes (e.g. --scope=%s) or leave --scope out",
				scope, cred->scopes[0]);
		} else {
			rc = cli_usage_error("--scope '%s' is not a scope name: use "
			                     "[a-z0-9][a-z0-9._-]{0,63}, e.g. team-north",
			                     scope ? scope : "");
		}
		goto out;
	}
	if (e == FS_ERR_EXISTS) {
		fprintf(stderr,
		        "fieldsync: init: %s already holds a store; use it as it is, or give "
		        "another --store\n",
		        dir);
		rc = EX_FAIL;
		goto out;
	}
	if (e != FS_OK) {
		rc = cli_fail("init", e);
		goto out;
	}
	if (opt->json) {
		cJSON *j = cJSON_CreateObject();
		if (j != NULL) {
			cJSON_AddStringToObject(j, "store", dir);
			cJSON_AddStringToObject(j, "replica", fs_store_replica_id(s));
			cJSON_AddStringToObject(j, "scope", fs_store_default_scope(s));
			cJSON_AddBoolToObject(j, "encrypted", key_file != NULL);
			if (cred != NULL) {
				cJSON_AddStringToObject(j, "name", cred->name);
				cJSON_AddStringToObject(j, "role", cred->role);
				cJSON_AddStringToObject(j, "endpoint", cred->endpoint);
			}
		}
		rc = cli_print_json(j);
		goto out;
	}
	printf("created %sstore %s: replica %s, default scope %s", key_file ? "encrypted " : "",
	       dir, fs_store_replica_id(s), fs_store_default_scope(s));
	if (cred != NULL)
		printf(", device %s (%s) syncing with %s over CURVE", cred->name, cred->role,
		       cred->endpoint);
	printf("\n");
out:
	fs_store_close(&s);
	fs_credential_free(&cred);
	fsc_cleanse(&m, sizeof(m));
	return rc;
}

int
cmd_keygen(const cli_opts *o)
{
	const char *key_file = o->key_file, *key_id = o->key_id;
	char err[512];
	if (key_file == NULL)
		return cli_usage_error("keygen writes the file given with --key-file FILE (or "
		                       "$FIELDSYNC_STORE_KEY_FILE)");
	if (!fsc_master_create_file(key_file, key_id ? key_id : "k1", err, sizeof(err))) {
		fprintf(stderr, "fieldsync: keygen: %s\n", err);
		return EX_FAIL;
	}
	if (o->json) {
		cJSON *j = cJSON_CreateObject();
		if (j != NULL) {
			cJSON_AddStringToObject(j, "key_file", key_file);
			cJSON_AddStringToObject(j, "key_id", key_id ? key_id : "k1");
		}
		return cli_print_json(j);
	}
	printf("wrote a new key %s to %s (mode 0600); keep it apart from the store\n",
	       key_id ? key_id : "k1", key_file);
	return 0;
}

int
cmd_rekey(fs_store *s, const cli_opts *o)
{
	fsc_master m;
	int rc = 0;
	if (!cli_load_key(o->new_key_file, &m))
		return EX_USAGE;
	fs_err e = fs_store_rekey(s, m.key, sizeof(m.key), m.id);
	if (e == FS_OK && o->json) {
		cJSON *j = cJSON_CreateObject();
		if (j != NULL)
			cJSON_AddStringToObject(j, "key_id", m.id);
		rc = cli_print_json(j);
	} else if (e == FS_OK) {
		printf("the store's data keys are now wrapped by key %s; only it opens the store\n",
		       m.id);
	}
	fsc_cleanse(&m, sizeof(m));
	return e == FS_OK ? rc : cli_fail("rekey", e);
}

/* Opens the store at dir with the key in key_file (NULL: unencrypted) into
 * *s; 0, or the exit status after a message naming what to do. */
int
cli_store_open(const char *store_dir, const char *key_file, fs_store **s)
{
	fs_store_opts so;
	fsc_master m;

	memset(&so, 0, sizeof(so));
	memset(&m, 0, sizeof(m));
	if (key_file != NULL) {
		if (!cli_load_key(key_file, &m))
			return EX_USAGE;
		so.key = m.key;
		so.key_len = sizeof(m.key);
		so.key_id = m.id;
	}
	fs_err e = fs_store_open_ex(store_dir, &so, s);
	fsc_cleanse(&m, sizeof(m)); /* the store keeps its own copy */
	if (e == FS_ERR_NOT_FOUND) {
		fprintf(stderr,
		        "fieldsync: no store at %s; run `fieldsync --store %s init` first\n",
		        store_dir, store_dir);
		return EX_FAIL;
	}
	if (e == FS_ERR_KEY_REQUIRED) {
		fprintf(stderr,
		        "fieldsync: the store at %s is encrypted: give --key-file FILE or set "
		        "FIELDSYNC_STORE_KEY_FILE\n",
		        store_dir);
		return EX_USAGE;
	}
	if (e == FS_ERR_KEY_WRONG) {
		fprintf(stderr,
		        "fieldsync: the key in %s does not open the store at %s (wrong key "
		        "or key id)\n",
		        key_file, store_dir);
		return EX_USAGE;
	}
	if (e == FS_ERR_NOT_ENCRYPTED) {
		fprintf(stderr,
		        "fieldsync: the store at %s is not encrypted; drop --key-file "
		        "(and FIELDSYNC_STORE_KEY_FILE) to use it\n",
		        store_dir);
		return EX_USAGE;
	}
	if (e != FS_OK)
		return cli_fail("open store", e);
	return 0;
}
