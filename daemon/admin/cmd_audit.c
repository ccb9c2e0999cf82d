/*
 * cmd_audit.c: `fieldsyncd audit` (admin layer; admin.h). Prints the audit
 * log in order (who did what to which collection and id, and when), as a
 * table or JSON; an entry that does not parse is shown as unreadable, never
 * skipped. The log holds identifiers only, never payload content.
 *
 * Runs while the daemon runs or not (one short read transaction).
 */
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "audit.h"
#include "fieldsync/keys.h"

/* One line of the table: SEQ TIME ACTOR ACTION WHAT. */
static void
print_entry(const cJSON *o)
{
	const char *coll = admin_jstr(o, "collection"), *id = admin_jstr(o, "id");
	const char *detail = admin_jstr(o, "detail");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	printf("%-6.0f %-20s %-16s %-8s %s%s%s%s%s\n", cJSON_IsNumber(seq) ? seq->valuedouble : 0,
	       admin_jstr(o, "ts"), admin_jstr(o, "actor"),
	       cJSON_GetObjectItemCaseSensitive(o, "unreadable") ? "(unreadable entry)"
	                                                         : admin_jstr(o, "action"),
	       coll[0] || id[0] ? coll : "-", coll[0] && id[0] ? "/" : "", id,
	       detail[0] ? "  " : "", detail);
}

/* One stored entry into l: seq first, then the entry as stored, then its time in words. */
static bool
audit_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	admin_list *l = arg;
	uint64_t seq = klen == 8 ? fsk_get_be64(key) : 0;
	cJSON *stored = cJSON_ParseWithLength((const char *)val, vlen), *o = cJSON_CreateObject();
	char when[32];

	if (o == NULL || !cJSON_AddItemToArray(l->items, o) ||
	    !cJSON_AddNumberToObject(o, "seq", (double)seq))
		goto fail;
	if (!cJSON_IsObject(stored)) { /* shown, never skipped: the log must not hide an entry */
		if (!cJSON_AddBoolToObject(o, "unreadable", true))
			goto fail;
	} else {
		while (stored->child != NULL) {
			cJSON *it = cJSON_DetachItemViaPointer(stored, stored->child);
			if (it->string == NULL) {
				cJSON_Delete(it);
				continue;
			}
			if (!cJSON_AddItemToObject(o, it->string, it)) {
				cJSON_Delete(it);
				goto fail;
			}
		}
	}
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts_ms");
	admin_iso_time(cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0, when, sizeof(when));
	if (!cJSON_AddStringToObject(o, "ts", when))
		goto fail;
	cJSON_Delete(stored);
	return true;
fail:
	cJSON_Delete(stored);
	l->ok = false;
	return false;
}

static fsd_err
read_audit(store_txn *t, admin_list *l)
{
	return store_kv_scan(t, &audit_table, NULL, 0, NULL, 0, audit_entry, l);
}

int
admin_cmd_audit(const admin_args *a)
{
	char header[160];
	snprintf(header, sizeof(header), "%-6s %-20s %-16s %-8s %s", "SEQ", "TIME", "ACTOR",
	         "ACTION", "WHAT");
	return admin_list_print(a, header, read_audit, print_entry);
}
