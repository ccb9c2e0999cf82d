/* schema: the daemon's store with all its tables (data layer). See schema.h. */
#include <stddef.h>

#include "audit.h"
#include "caseindex.h"
#include "events.h"
#include "keyring.h"
#include "log.h"
#include "records.h"
#include "registry.h"
#include "reminder_rows.h"
#include "replicas.h"
#include "replies.h"
#include "schema.h"

/*
 * The first open by a build that keeps replica bindings (PROTOCOL.md §3):
 * derives them from what is stored, once, so nothing accepted before is
 * refused after the upgrade. A new store only records that it was done.
 */
static fsd_err
replicas_upgrade(store *s)
{
	store_txn *t = NULL;
	uint64_t n = 0;
	fsd_err rc = store_read_begin(s, &t);
	if (rc != FSD_OK)
		return rc;
	bool done = store_meta_u64(t, "replicas_derived") != 0;
	store_read_end(&t);
	if (done)
		return FSD_OK;
	if ((rc = store_write_begin(s, &t)) != FSD_OK)
		return rc;
	if ((rc = replicas_derive(t, &n)) != FSD_OK) {
		store_abort(&t);
		return rc;
	}
	if ((rc = store_commit(&t)) == FSD_OK && n > 0)
		log_event(LOG_INFO, "replica bindings derived from the stored records",
		          LU("records", n), NULL);
	return rc;
}

store *
store_open(const char *dir, uint64_t map_size, uint64_t map_size_max)
{
	/* The creation order of older builds: a new store's bytes stay as they were. */
	static const store_table *const tables[] = {
		&records_table,
		&records_feed_table,
		&replies_table,
		&replies_age_table,
		&caseindex_table,
		&reminders_table,
		&reminders_timers_table,
		&events_table,
		&registry_devices_table,
		&registry_names_table,
		&keyring_table,
		&records_former_scopes_table,
		&audit_table,
		&replicas_table,
		NULL,
	};
	store *s = store_open_with(dir, map_size, map_size_max, tables, 0);
	if (s != NULL && replicas_upgrade(s) != FSD_OK) {
		log_event(LOG_ERROR,
		          "the replica bindings could not be derived from the stored records",
		          NULL);
		store_close(&s);
	}
	return s;
}
