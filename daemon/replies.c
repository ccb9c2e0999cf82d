/* replies: the stored change-set replies (data layer). See replies.h. */
#include <string.h>

#include "fieldsync/keys.h"
#include "replies.h"

const store_table replies_table = {"replies"};
const store_table replies_age_table = {"reply_age"};

fsd_err
replies_get(store_txn *t, const char *changeset_id, const uint8_t **data, size_t *len)
{
	const void *v;
	size_t vl;
	fsd_err rc = store_kv_get(t, &replies_table, changeset_id, strlen(changeset_id), &v, &vl);
	if (rc != FSD_OK)
		return rc;
	if (vl < 8)
		return FSD_CORRUPT;
	*data = (const uint8_t *)v + 8;
	*len = vl - 8;
	return FSD_OK;
}

/* The oldest entries of reply_age, copied: at most 64 per call. */
struct oldest {
	size_t n, want;
	uint8_t age[64][8];
	char id[64][256];
	size_t idl[64];
};

static bool
take_oldest(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct oldest *o = arg;
	if (o->n == o->want)
		return false;
	if (klen != 8)
		return true;
	memcpy(o->age[o->n], key, 8);
	o->idl[o->n] = vlen < sizeof(o->id[0]) ? vlen : sizeof(o->id[0]);
	memcpy(o->id[o->n], val, o->idl[o->n]);
	o->n++;
	return true;
}

fsd_err
replies_put(store_txn *t, const char *changeset_id, const uint8_t *data, size_t len, uint64_t keep)
{
	size_t kl = strlen(changeset_id);
	uint8_t ageb[8];
	uint64_t age = store_meta_u64(t, "reply_age") + 1, entries;
	void *v;
	fsd_err rc;

	if ((rc = store_meta_set_u64(t, "reply_age", age)) != FSD_OK)
		return rc;
	fsk_put_be64(ageb, age);
	if ((rc = store_kv_reserve(t, &replies_table, changeset_id, kl, len + 8, &v)) != FSD_OK)
		return rc;
	memcpy(v, ageb, 8);
	memcpy((uint8_t *)v + 8, data, len);
	if ((rc = store_kv_put(t, &replies_age_table, ageb, 8, changeset_id, kl, false)) != FSD_OK)
		return rc;

	/* Keep at most `keep` replies: drop the oldest. */
	if ((rc = store_kv_count(t, &replies_age_table, &entries)) != FSD_OK)
		return rc;
	while (entries > keep) {
		static _Thread_local struct oldest o;
		o.n = 0;
		o.want = entries - keep < 64 ? (size_t)(entries - keep) : 64;
		if ((rc = store_kv_scan(t, &replies_age_table, NULL, 0, NULL, 0, take_oldest,
		                        &o)) != FSD_OK)
			return rc;
		if (o.n == 0)
			break;
		for (size_t i = 0; i < o.n; i++) {
			rc = store_kv_del(t, &replies_table, o.id[i], o.idl[i]);
			if (rc != FSD_OK && rc != FSD_NOTFOUND)
				return rc;
			if ((rc = store_kv_del(t, &replies_age_table, o.age[i], 8)) != FSD_OK)
				return rc;
		}
		entries -= o.n;
	}
	return FSD_OK;
}
