/* caseindex: case -> contacts (data layer). See caseindex.h. */
#include <string.h>

#include "caseindex.h"
#include "fieldsync/keys.h"

const store_table caseindex_table = {"case_contacts"};

#define PAIR_KEY_MAX (1 + 2 * FSP_ID_MAX)

fsd_err
caseindex_add(store_txn *t, const char *case_id, const char *contact_id)
{
	uint8_t key[PAIR_KEY_MAX];
	size_t kl = fsk_case_key(key, sizeof(key), case_id, contact_id);
	if (kl == 0 || contact_id[0] == '\0')
		return FSD_INVALID;
	return store_kv_put(t, &caseindex_table, key, kl, "", 0, false);
}

fsd_err
caseindex_del(store_txn *t, const char *case_id, const char *contact_id)
{
	uint8_t key[PAIR_KEY_MAX];
	size_t kl = fsk_case_key(key, sizeof(key), case_id, contact_id);
	if (kl == 0 || contact_id[0] == '\0')
		return FSD_INVALID;
	fsd_err rc = store_kv_del(t, &caseindex_table, key, kl);
	return rc == FSD_NOTFOUND ? FSD_OK : rc;
}

struct walk {
	size_t prefix_len;
	caseindex_fn fn;
	void *arg;
};

static bool
one_contact(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct walk *w = arg;
	char id[FSP_ID_MAX + 1];
	size_t l = klen - w->prefix_len; /* the key is the case prefix, then the contact id */
	(void)val;
	(void)vlen;
	if (l > FSP_ID_MAX)
		return true;
	memcpy(id, key + w->prefix_len, l);
	id[l] = '\0';
	return w->fn(w->arg, id);
}

fsd_err
caseindex_contacts(store_txn *t, const char *case_id, caseindex_fn fn, void *arg)
{
	uint8_t prefix[1 + FSP_ID_MAX];
	size_t pl = fsk_case_key(prefix, sizeof(prefix), case_id, "");
	if (pl == 0)
		return FSD_OK; /* no such case can have been indexed */
	struct walk w = {pl, fn, arg};
	return store_kv_scan(t, &caseindex_table, prefix, pl, prefix, pl, one_contact, &w);
}
