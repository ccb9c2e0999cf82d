/*
 * audit: the append-only audit log (data layer). See audit.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "clock.h"
#include "fieldsync/keys.h"

const store_table audit_table = {"audit"};

/* ---- the audit log ------------------------------------------------------- */

/* Adds s (cut at max bytes, on a UTF-8 boundary) to o unless empty. */
static bool
add_capped(cJSON *o, const char *key, const char *s, size_t max)
{
	char buf[513];
	size_t n;
	if (s == NULL || s[0] == '\0')
		return true;
	n = strlen(s);
	if (max > sizeof(buf) - 1)
		max = sizeof(buf) - 1;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return cJSON_AddStringToObject(o, key, buf) != NULL;
}

fsd_err
audit_append(store_txn *t, const char *actor, const char *action, const char *collection,
             const char *id, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	uint8_t key[8];
	uint64_t seq;
	fsd_err rc = FSD_ERROR;

	if (o == NULL)
		return FSD_ERROR;
	if (cJSON_AddNumberToObject(o, "ts_ms", (double)clock_wall_ms()) == NULL ||
	    !add_capped(o, "actor", actor && actor[0] ? actor : "unknown", 128) ||
	    !add_capped(o, "action", action, 128) ||
	    !add_capped(o, "collection", collection, 128) || !add_capped(o, "id", id, 128) ||
	    !add_capped(o, "detail", detail, 512) || (text = cJSON_PrintUnformatted(o)) == NULL)
		goto out;
	seq = store_meta_u64(t, "audit_seq") + 1;
	fsk_put_be64(key, seq);
	if ((rc = store_kv_put(t, &audit_table, key, sizeof(key), text, strlen(text), true)) !=
	    FSD_OK)
		goto out;
	rc = store_meta_set_u64(t, "audit_seq", seq);
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}
