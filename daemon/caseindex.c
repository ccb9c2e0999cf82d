/* caseindex: case -> contacts, and data-key names (data layer). See caseindex.h. */
#include <stdio.h>
#include <string.h>

#include "caseindex.h"
#include "fieldsync/v1/casework.pb-c.h"

const store_table caseindex_table = {"case_contacts"};

static size_t
pair_key(uint8_t *key, const char *case_id, const char *contact_id)
{
	size_t cl = strlen(case_id), il = strlen(contact_id);
	if (cl > FSP_ID_MAX)
		cl = FSP_ID_MAX;
	if (il > FSP_ID_MAX)
		il = FSP_ID_MAX;
	key[0] = (uint8_t)cl;
	memcpy(key + 1, case_id, cl);
	memcpy(key + 1 + cl, contact_id, il);
	return 1 + cl + il;
}

fsd_err
caseindex_add(store_txn *t, const char *case_id, const char *contact_id)
{
	uint8_t key[1 + 2 * FSP_ID_MAX];
	return store_kv_put(t, &caseindex_table, key, pair_key(key, case_id, contact_id), "", 0,
	                    false);
}

fsd_err
caseindex_del(store_txn *t, const char *case_id, const char *contact_id)
{
	uint8_t key[1 + 2 * FSP_ID_MAX];
	fsd_err rc = store_kv_del(t, &caseindex_table, key, pair_key(key, case_id, contact_id));
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
	size_t l = strlen(case_id);
	if (l > FSP_ID_MAX)
		l = FSP_ID_MAX;
	prefix[0] = (uint8_t)l;
	memcpy(prefix + 1, case_id, l);
	struct walk w = {1 + l, fn, arg};
	return store_kv_scan(t, &caseindex_table, prefix, 1 + l, prefix, 1 + l, one_contact, &w);
}

bool
caseindex_contact_case(const uint8_t *payload, size_t len, char out[FSP_ID_MAX + 1])
{
	Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, len, payload);
	bool ok = c != NULL && c->case_id[0] != '\0' && strlen(c->case_id) <= FSP_ID_MAX;
	if (ok)
		strcpy(out, c->case_id);
	if (c != NULL)
		fieldsync__v1__contact__free_unpacked(c, NULL);
	return ok;
}

void
caseindex_case_dek_name(const char *case_id, char *name, size_t namelen)
{
	snprintf(name, namelen, "c:%s", case_id);
}

void
caseindex_dek_name(const char *collection, const char *id, const uint8_t *payload, size_t len,
                   char *name, size_t namelen)
{
	if (strcmp(collection, "case") == 0) {
		caseindex_case_dek_name(id, name, namelen);
		return;
	}
	if (strcmp(collection, "contact") == 0) {
		Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, len, payload);
		if (c != NULL && c->case_id[0] != '\0') {
			caseindex_case_dek_name(c->case_id, name, namelen);
			fieldsync__v1__contact__free_unpacked(c, NULL);
			return;
		}
		if (c != NULL)
			fieldsync__v1__contact__free_unpacked(c, NULL);
	}
	snprintf(name, namelen, "r:%s/%s", collection, id);
}
