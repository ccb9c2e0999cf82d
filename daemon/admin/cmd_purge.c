/*
 * cmd_purge.c: `fieldsyncd purge` (admin layer; admin.h). Erases a record
 * (--collection C --id ID) or a case and all its contacts (--case ID) for
 * good through purge_run(): the records become purge markers every tablet
 * obeys, their reminders go, their data keys are destroyed, and an audit
 * entry is written, in one write transaction. A record that does not exist
 * still gets its audit entry.
 *
 * Runs while the daemon runs or not (LMDB serialises the writers); a
 * sealed store needs its master key (--master-key-file or
 * FIELDSYNC_MASTER_KEY).
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "fieldsync/merge.h"
#include "purge.h"

int
admin_cmd_purge(const admin_args *a)
{
	const char *collection = admin_opt(a, "collection"), *id = admin_opt(a, "id");
	const char *case_id = admin_opt(a, "case");
	bool whole_case = case_id != NULL, needed = false;
	purge_report rep;

	if (whole_case == (id != NULL) || (id != NULL && collection == NULL)) {
		fprintf(stderr, "fieldsyncd purge: give --case ID, or --collection C --id ID\n");
		return FSD_EXIT_USAGE;
	}
	if (whole_case)
		collection = "case", id = case_id;
	if (!fsp_collection_valid(collection) || id[0] == '\0' || strlen(id) > FSP_ID_MAX) {
		fprintf(stderr, "fieldsyncd purge: not a valid collection or id\n");
		return FSD_EXIT_USAGE;
	}
	store *s = admin_open_store(admin_opt(a, "data-dir"), false);
	if (s == NULL)
		return FSD_EXIT_FAIL;
	keyring *k = admin_open_keyring(admin_opt(a, "data-dir"), admin_opt(a, "master-key-file"),
	                                &needed);
	if (k == NULL && needed) {
		store_close(&s);
		return FSD_EXIT_FAIL;
	}
	store_set_keyring(s, k);
	fsd_err rc = purge_recover(s); /* a re-key a crash left half done */
	if (rc == FSD_OK)
		rc = purge_run(s, collection, id, whole_case, admin_actor(a), &rep);
	store_close(&s);
	keyring_close(&k);
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd: purge failed: %s\n", fsd_strerror(rc));
		return FSD_EXIT_FAIL;
	}
	if (rep.records == 0)
		printf("no such record: nothing to purge (an audit entry was written)\n");
	else
		printf("purged %zu record(s), %zu reminder(s); %zu data key(s) destroyed; every "
		       "tablet deletes them at its next sync\n",
		       rep.records, rep.reminders, rep.keys_destroyed);
	return FSD_EXIT_OK;
}
