/* schema: the daemon's store with all its tables (data layer). See schema.h. */
#include <stddef.h>

#include "audit.h"
#include "caseindex.h"
#include "events.h"
#include "keyring.h"
#include "records.h"
#include "registry.h"
#include "reminder_rows.h"
#include "replies.h"
#include "schema.h"

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
		NULL,
	};
	return store_open_with(dir, map_size, map_size_max, tables, 0);
}
