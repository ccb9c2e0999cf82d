/*
 * replicas: replica id -> owner device and highest counter (data layer).
 * See replicas.h for the table and the contract.
 */
#include <stdio.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "fieldsync/merge.h"
#include "records.h"
#include "replicas.h"

const store_table replicas_table = {"replicas"};

#define ROW_HEAD 8 /* u64 BE max; the owner's bytes follow */

fsd_err
replicas_get(store_txn *t, const char *replica, replica_row *row)
{
	const void *v;
	size_t vl, rl = strlen(replica);
	memset(row, 0, sizeof(*row));
	if (rl == 0 || rl > FSP_REPLICA_MAX)
		return FSD_INVALID;
	fsd_err rc = store_kv_get(t, &replicas_table, replica, rl, &v, &vl);
	if (rc != FSD_OK)
		return rc;
	if (vl < ROW_HEAD || vl - ROW_HEAD > AUTH_NAME_MAX)
		return FSD_CORRUPT;
	row->max = fsk_get_be64(v);
	memcpy(row->owner, (const uint8_t *)v + ROW_HEAD, vl - ROW_HEAD);
	row->owner[vl - ROW_HEAD] = '\0';
	row->bound = row->owner[0] != '\0';
	return FSD_OK;
}

fsd_err
replicas_note(store_txn *t, const char *replica, uint64_t counter, const char *owner)
{
	replica_row row;
	uint8_t v[ROW_HEAD + AUTH_NAME_MAX];
	fsd_err rc = replicas_get(t, replica, &row);
	if (rc != FSD_OK && rc != FSD_NOTFOUND)
		return rc;
	bool bind =
		!row.bound && owner != NULL && owner[0] != '\0' && strlen(owner) <= AUTH_NAME_MAX;
	if (rc == FSD_OK && counter <= row.max && !bind)
		return FSD_OK; /* nothing to raise or bind */
	if (bind)
		snprintf(row.owner, sizeof(row.owner), "%s", owner);
	if (counter > row.max)
		row.max = counter;
	size_t ol = strlen(row.owner);
	fsk_put_be64(v, row.max);
	memcpy(v + ROW_HEAD, row.owner, ol);
	return store_kv_put(t, &replicas_table, replica, strlen(replica), v, ROW_HEAD + ol, false);
}

struct derive {
	store_txn *t;
	fsd_err rc;
	uint64_t records;
};

static bool
derive_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct derive *d = arg;
	(void)key;
	(void)klen;
	/* As stored: the payloads stay sealed, only versions and authors are read. */
	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, vlen, val);
	if (rs == NULL)
		return true; /* verify reports it; its dots stay unknown */
	d->records++;
	for (size_t i = 0; d->rc == FSD_OK && i < rs->n_siblings; i++) {
		const fsp_record *s = rs->siblings[i];
		const fsp_vv *v = s->version;
		const char *by = s->modified_by != NULL ? s->modified_by : "";
		for (size_t k = 0; d->rc == FSD_OK && v != NULL && k < v->n_dots; k++) {
			const fsp_dot *dot = v->dots[k];
			size_t rl = dot->replica != NULL ? strlen(dot->replica) : 0;
			if (rl == 0 || rl > FSP_REPLICA_MAX)
				continue;
			bool authored = v->n_dots == 1 || strcmp(dot->replica, by) == 0;
			d->rc = replicas_note(d->t, dot->replica, dot->counter,
			                      authored ? by : NULL);
		}
	}
	records_free(rs);
	return d->rc == FSD_OK;
}

fsd_err
replicas_derive(store_txn *t, uint64_t *n_records)
{
	struct derive d = {t, FSD_OK, 0};
	*n_records = 0;
	if (store_meta_u64(t, "replicas_derived") != 0)
		return FSD_OK;
	fsd_err rc = store_kv_scan(t, &records_table, NULL, 0, NULL, 0, derive_one, &d);
	if (rc == FSD_OK)
		rc = d.rc;
	if (rc == FSD_OK)
		rc = store_meta_set_u64(t, "replicas_derived", 1);
	if (rc == FSD_OK)
		*n_records = d.records;
	return rc;
}
