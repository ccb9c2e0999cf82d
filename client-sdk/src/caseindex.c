/*
 * The contacts of each case (caseindex.h). Every write of a contact to
 * `records` (records.c, pull.c) calls sdk_caseidx_set in its transaction;
 * a store made before the index existed is indexed once at open
 * (sdk_caseidx_build, from store.c).
 *
 * Layer: data (over db, seal and the core's casework.h).
 */
#include <stdlib.h>
#include <string.h>

#include "caseindex.h"
#include "fieldsync/casework.h"
#include "fieldsync/keys.h"
#include "seal.h"

#define CASES_MAX 8 /* distinct cases of one contact's siblings we index */

int
sdk_caseidx_open(fs_store *s, MDB_txn *t, unsigned flags)
{
	int rc = mdb_dbi_open(t, "case_contacts", flags, &s->case_contacts);
	if (rc == MDB_SUCCESS)
		rc = mdb_dbi_open(t, "contact_cases", flags, &s->contact_cases);
	return rc;
}

/* key = [case_id][0x00][contact id] into buf; its length. */
static size_t
pair_key(uint8_t *buf, const char *case_id, size_t cl, const char *id, size_t il)
{
	memcpy(buf, case_id, cl);
	buf[cl] = 0;
	memcpy(buf + cl + 1, id, il);
	return cl + 1 + il;
}

int
sdk_caseidx_set(fs_store *s, MDB_txn *t, const char *collection, const char *id,
                const sdk_record_state *rs)
{
	char ids[CASES_MAX][FSP_ID_MAX + 1];
	uint8_t key[2 * FSP_ID_MAX + 2], list[CASES_MAX * (FSP_ID_MAX + 1)];
	size_t il = strlen(id), n, ll = 0;
	MDB_val ck = {il, (void *)id}, cv;
	int rc;

	if (strcmp(collection, "contact") != 0)
		return MDB_SUCCESS;
	rc = mdb_get(t, s->contact_cases, &ck, &cv);
	if (rc == MDB_SUCCESS) { /* its old entries go */
		const char *p = cv.mv_data, *end = p + cv.mv_size;
		uint8_t old[sizeof(list)];
		size_t ol = cv.mv_size < sizeof(old) ? cv.mv_size : sizeof(old);
		memcpy(old, p, ol); /* cv dies with the first write */
		p = (const char *)old;
		end = p + ol;
		while (p < end) {
			const char *z = memchr(p, 0, (size_t)(end - p));
			size_t cl = z ? (size_t)(z - p) : (size_t)(end - p);
			if (cl > 0 && cl <= FSP_ID_MAX) {
				MDB_val pk = {pair_key(key, p, cl, id, il), key};
				rc = mdb_del(t, s->case_contacts, &pk, NULL);
				if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
					return rc;
			}
			p += cl + 1;
		}
		if ((rc = mdb_del(t, s->contact_cases, &ck, NULL)) != MDB_SUCCESS)
			return rc;
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	n = rs ? fsp_contact_case_ids(rs, ids, CASES_MAX) : 0;
	for (size_t i = 0; i < n; i++) {
		size_t cl = strlen(ids[i]);
		MDB_val pk = {pair_key(key, ids[i], cl, id, il), key}, e = {0, ""};
		if ((rc = mdb_put(t, s->case_contacts, &pk, &e, 0)) != MDB_SUCCESS)
			return rc;
		memcpy(list + ll, ids[i], cl + 1);
		ll += cl + 1;
	}
	if (ll == 0)
		return MDB_SUCCESS;
	cv.mv_size = ll;
	cv.mv_data = list;
	return mdb_put(t, s->contact_cases, &ck, &cv, 0);
}

int
sdk_caseidx_build(fs_store *s, MDB_txn *t)
{
	uint8_t prefix[1 + FSP_COLLECTION_MAX];
	size_t plen = fsk_record_prefix(prefix, "contact");
	MDB_cursor *c = NULL;
	MDB_val k = {plen, prefix}, d;
	int rc;

	if ((rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		sdk_record_state *rs = NULL;
		if (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (!fsk_record_key_split(k.mv_data, k.mv_size, coll, id))
			continue;
		rs = fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		if (rs == NULL)
			continue;
		/* a sibling that does not open (its key destroyed) has no case to index */
		for (size_t i = 0; i < rs->n_siblings; i++)
			if (sdk_record_open(s, t, coll, id, rs->siblings[i]) != MDB_SUCCESS)
				rs->siblings[i]->deleted = true;
		rc = sdk_caseidx_set(s, t, coll, id, rs);
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (rc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int
sdk_caseidx_each(fs_store *s, MDB_txn *t, const char *case_id,
                 int (*fn)(void *arg, const char *contact_id), void *arg)
{
	uint8_t prefix[FSP_ID_MAX + 1];
	size_t cl = strlen(case_id);
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;

	if (cl == 0 || cl > FSP_ID_MAX)
		return MDB_SUCCESS;
	memcpy(prefix, case_id, cl);
	prefix[cl] = 0;
	k.mv_size = cl + 1;
	k.mv_data = prefix;
	if ((rc = mdb_cursor_open(t, s->case_contacts, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		char id[FSP_ID_MAX + 1];
		size_t il;
		if (k.mv_size <= cl + 1 || memcmp(k.mv_data, prefix, cl + 1) != 0)
			break;
		il = k.mv_size - cl - 1;
		if (il > FSP_ID_MAX)
			continue;
		memcpy(id, (const uint8_t *)k.mv_data + cl + 1, il);
		id[il] = '\0';
		if ((rc = fn(arg, id)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}
