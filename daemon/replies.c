/* replies: the stored change-set replies, per device (data layer). See replies.h. */
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "replies.h"

const store_table replies_table = {"replies"};
const store_table replies_age_table = {"reply_age"};

#define KEY_MAX 256 /* device (<= 64) '\0' changeset_id (<= 128): validate.c caps both */

/* device '\0' changeset_id into key; false when it does not fit. */
static bool
reply_key(const char *device, const char *changeset_id, uint8_t key[KEY_MAX], size_t *klen)
{
	size_t dl = strlen(device), cl = strlen(changeset_id);
	if (dl + 1 + cl > KEY_MAX)
		return false;
	memcpy(key, device, dl);
	key[dl] = '\0';
	memcpy(key + dl + 1, changeset_id, cl);
	*klen = dl + 1 + cl;
	return true;
}

/* Stores data under key at age `ageb` in both tables. */
static fsd_err
put_at(store_txn *t, const uint8_t *key, size_t kl, const uint8_t ageb[8], const uint8_t *data,
       size_t len)
{
	void *v;
	fsd_err rc;
	if ((rc = store_kv_reserve(t, &replies_table, key, kl, len + 8, &v)) != FSD_OK)
		return rc;
	memcpy(v, ageb, 8);
	memcpy((uint8_t *)v + 8, data, len);
	return store_kv_put(t, &replies_age_table, ageb, 8, key, kl, false);
}

/*
 * An older release's row under changeset_id alone, claimed by device: moved
 * to the device's key with its age, so that no other device is ever given
 * it. FSD_NOTFOUND when there is none.
 */
static fsd_err
claim_legacy(store_txn *t, const char *changeset_id, const uint8_t *key, size_t kl)
{
	const void *v;
	size_t vl, cl = strlen(changeset_id);
	fsd_err rc = store_kv_get(t, &replies_table, changeset_id, cl, &v, &vl);
	if (rc != FSD_OK)
		return rc;
	if (vl < 8)
		return FSD_CORRUPT;
	uint8_t *copy = malloc(vl); /* the next write may move the page it is on */
	if (copy == NULL)
		return FSD_NOMEM;
	memcpy(copy, v, vl);
	rc = store_kv_del(t, &replies_table, changeset_id, cl);
	if (rc == FSD_OK)
		rc = store_kv_del(t, &replies_age_table, copy, 8);
	if (rc == FSD_NOTFOUND) /* an age entry trimmed already: keep the row */
		rc = FSD_OK;
	if (rc == FSD_OK)
		rc = put_at(t, key, kl, copy, copy + 8, vl - 8);
	free(copy);
	return rc;
}

fsd_err
replies_get(store_txn *t, const char *device, const char *changeset_id, const uint8_t **data,
            size_t *len)
{
	uint8_t key[KEY_MAX];
	size_t kl;
	const void *v;
	size_t vl;
	if (!reply_key(device, changeset_id, key, &kl))
		return FSD_NOTFOUND;
	fsd_err rc = store_kv_get(t, &replies_table, key, kl, &v, &vl);
	if (rc == FSD_NOTFOUND) {
		if ((rc = claim_legacy(t, changeset_id, key, kl)) != FSD_OK)
			return rc;
		rc = store_kv_get(t, &replies_table, key, kl, &v, &vl);
	}
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
	uint8_t id[64][KEY_MAX];
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
replies_put(store_txn *t, const char *device, const char *changeset_id, const uint8_t *data,
            size_t len, uint64_t keep)
{
	uint8_t key[KEY_MAX], ageb[8];
	size_t kl;
	uint64_t age = store_meta_u64(t, "reply_age") + 1, entries;
	fsd_err rc;

	if (!reply_key(device, changeset_id, key, &kl))
		return FSD_INVALID;
	if ((rc = store_meta_set_u64(t, "reply_age", age)) != FSD_OK)
		return rc;
	fsk_put_be64(ageb, age);
	if ((rc = put_at(t, key, kl, ageb, data, len)) != FSD_OK)
		return rc;

	/* Keep at most `keep` replies: drop the oldest (of every device and of
	 * older releases alike: their keys are in reply_age too). */
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
