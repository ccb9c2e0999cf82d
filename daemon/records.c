/*
 * records: the record table, the feed index and former scopes (data layer).
 * See records.h for the tables and the contract.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "keyring.h"
#include "log.h"
#include "records.h"

#define KEY_MAX FSK_RECORD_KEY_MAX

const store_table records_table = {"records"};
const store_table records_feed_table = {"feed"};
const store_table records_former_scopes_table = {"former_scopes"};

/* Opens every sealed sibling payload of rs in place. */
static fsd_err
open_payloads(struct keyring *kr, fs_record_state *rs)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	size_t al = fss_record_aad(aad, rs->collection, rs->id);
	for (size_t i = 0; i < rs->n_siblings; i++) {
		ProtobufCBinaryData *p = &rs->siblings[i]->payload;
		uint8_t *plain = NULL;
		size_t pl = 0;
		fsd_err r = keyring_open_value(kr, aad, al, p->data, p->len, &plain, &pl);
		if (r == FSD_OK && plain == NULL)
			continue; /* not sealed */
		if (r != FSD_OK) {
			log_event(LOG_ERROR,
			          r == FSD_NOKEY ? "a value's data key is gone (purged?)"
			                         : "a sealed value does not verify",
			          LS("collection", rs->collection), LS("id", rs->id), NULL);
			return FSD_CORRUPT;
		}
		free(p->data);
		p->data = plain;
		p->len = pl;
	}
	return FSD_OK;
}

static fsd_err
unpack_state(store_txn *t, const void *val, size_t vlen, fs_record_state **out)
{
	*out = fieldsync__v1__record_state__unpack(NULL, vlen, val);
	if (*out == NULL) {
		log_event(LOG_ERROR, "stored record does not decode", LU("bytes", vlen), NULL);
		return FSD_CORRUPT;
	}
	fsd_err rc = open_payloads(store_keyring(store_txn_store(t)), *out);
	if (rc != FSD_OK) {
		records_free(*out);
		*out = NULL;
	}
	return rc;
}

fsd_err
records_get(store_txn *t, const char *collection, const char *id, fs_record_state **out)
{
	uint8_t key[KEY_MAX];
	size_t kl = fsk_record_key(key, collection, id), vl;
	const void *v;
	fsd_err rc = kl == 0 ? FSD_INVALID : store_kv_get(t, &records_table, key, kl, &v, &vl);
	*out = NULL;
	if (rc != FSD_OK)
		return rc;
	return unpack_state(t, v, vl, out);
}

static fsd_err record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq, bool feed);

fsd_err
records_put(store_txn *t, const fs_record_state *rs, uint64_t old_seq)
{
	return record_write(t, rs, old_seq, true);
}

fsd_err
records_rewrite(store_txn *t, const fs_record_state *rs)
{
	return record_write(t, rs, 0, false);
}

/* Seals rs's payloads (with a keyring) and writes it; moves it in the feed
 * from old_seq to rs->seq when feed is set. */
static fsd_err
record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq, bool feed)
{
	uint8_t key[KEY_MAX], seqb[8];
	size_t kl = fsk_record_key(key, rs->collection, rs->id);
	void *v;
	struct keyring *kr = store_keyring(store_txn_store(t));
	fsd_err src = FSD_OK;
	fs_record_state sealed_rs;
	fsp_record *copies = NULL, **ptrs = NULL;

	if (kl == 0)
		return FSD_INVALID;
	if (kr != NULL && rs->n_siblings > 0) { /* seal every payload on the way in */
		uint8_t aad[FSS_RECORD_AAD_MAX];
		char name[FSS_DEK_NAME_MAX + 1];
		size_t al = fss_record_aad(aad, rs->collection, rs->id);
		copies = calloc(rs->n_siblings, sizeof(*copies));
		ptrs = calloc(rs->n_siblings, sizeof(*ptrs));
		if (copies == NULL || ptrs == NULL) {
			src = FSD_ERROR;
			goto out;
		}
		sealed_rs = *rs;
		sealed_rs.siblings = ptrs;
		for (size_t i = 0; i < rs->n_siblings; i++) {
			const fsp_record *r = rs->siblings[i];
			copies[i] = *r;
			ptrs[i] = &copies[i];
			copies[i].payload.data = NULL;
			copies[i].payload.len = 0;
			if (r->payload.len == 0)
				continue;
			if (!fss_dek_for(rs->collection, rs->id, r->payload.data, r->payload.len,
			                 name)) {
				src = FSD_INVALID;
				goto out;
			}
			if ((src = keyring_seal(kr, name, aad, al, r->payload.data, r->payload.len,
			                        &copies[i].payload.data, &copies[i].payload.len)) !=
			    FSD_OK)
				goto out;
		}
		rs = &sealed_rs;
	}

	/* Reserve the value in place and pack straight into the map. */
	if ((src = store_kv_reserve(t, &records_table, key, kl,
	                            fieldsync__v1__record_state__get_packed_size(rs), &v)) !=
	    FSD_OK)
		goto out;
	fieldsync__v1__record_state__pack(rs, v);
	if (!feed)
		goto out;

	if (old_seq != 0) {
		fsk_put_be64(seqb, old_seq);
		src = store_kv_del(t, &records_feed_table, seqb, 8);
		if (src != FSD_OK && src != FSD_NOTFOUND)
			goto out;
	}
	/* Seqs only grow, so the feed is append-only: MDB_APPEND skips the search. */
	fsk_put_be64(seqb, rs->seq);
	src = store_kv_put(t, &records_feed_table, seqb, 8, key, kl, true);
out:
	if (copies != NULL)
		for (size_t i = 0; i < rs->n_siblings; i++)
			free(copies[i].payload.data);
	free(copies);
	free(ptrs);
	return src;
}

fsd_err
records_head(store_txn *t, const char *collection, const char *id, char scope[FSP_SCOPE_MAX + 1],
             uint64_t *seq, bool *purged)
{
	uint8_t key[KEY_MAX];
	size_t kl = fsk_record_key(key, collection, id), vl;
	const void *v;
	fsd_err rc = kl == 0 ? FSD_INVALID : store_kv_get(t, &records_table, key, kl, &v, &vl);
	if (rc != FSD_OK)
		return rc;
	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, vl, v);
	if (rs == NULL)
		return FSD_CORRUPT;
	snprintf(scope, FSP_SCOPE_MAX + 1, "%s", rs->scope);
	*seq = rs->seq;
	*purged = rs->purged;
	fieldsync__v1__record_state__free_unpacked(rs, NULL);
	return FSD_OK;
}

void
records_free(fs_record_state *rs)
{
	if (rs != NULL)
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
}

struct feed_walk {
	store_txn *t;
	records_feed_fn fn;
	void *arg;
	uint64_t *last;
	bool *more;
	fsd_err rc;
};

static bool
feed_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct feed_walk *w = arg;
	const void *rv;
	size_t rvl;
	fs_record_state *rs;
	uint64_t seq = klen == 8 ? fsk_get_be64(key) : 0;
	if (store_kv_get(w->t, &records_table, val, vlen, &rv, &rvl) != FSD_OK) {
		log_event(LOG_ERROR, "feed points at a missing record", LU("seq", seq), NULL);
		w->rc = FSD_CORRUPT;
		return false;
	}
	if ((w->rc = unpack_state(w->t, rv, rvl, &rs)) != FSD_OK)
		return false;
	if (w->fn(w->arg, w->t, rs) == FEED_STOP) {
		*w->more = true;
		return false;
	}
	*w->last = seq;
	return true;
}

fsd_err
records_feed_scan(store_txn *t, uint64_t since, records_feed_fn fn, void *arg, uint64_t *last,
                  bool *more)
{
	uint8_t seqb[8];
	struct feed_walk w = {t, fn, arg, last, more, FSD_OK};
	fsd_err rc;

	*last = since;
	*more = false;
	if (since == UINT64_MAX)
		return FSD_OK;
	fsk_put_be64(seqb, since + 1);
	rc = store_kv_scan(t, &records_feed_table, seqb, 8, NULL, 0, feed_one, &w);
	return w.rc != FSD_OK ? w.rc : rc;
}

/* The former scopes of a record: "scope\n" lines under its record key. */
fsd_err
records_former_scope_add(store_txn *t, const char *collection, const char *id, const char *scope)
{
	uint8_t key[KEY_MAX];
	char buf[64 * (FSP_SCOPE_MAX + 1)];
	size_t kl = fsk_record_key(key, collection, id), vl, have = 0, sl = strlen(scope);
	const void *v;
	fsd_err rc = kl == 0 ? FSD_INVALID
	                     : store_kv_get(t, &records_former_scopes_table, key, kl, &v, &vl);

	if (rc == FSD_OK) {
		have = vl < sizeof(buf) ? vl : sizeof(buf);
		memcpy(buf, v, have);
		for (size_t i = 0; i < have;) { /* already listed? */
			const char *nl = memchr(buf + i, '\n', have - i);
			size_t l = nl ? (size_t)(nl - (buf + i)) : have - i;
			if (l == sl && memcmp(buf + i, scope, sl) == 0)
				return FSD_OK;
			i += l + 1;
		}
	} else if (rc != FSD_NOTFOUND) { /* FSD_INVALID too */
		return rc;
	}
	if (have + sl + 1 > sizeof(buf))
		return FSD_OK; /* 64 moves: the oldest ones are enough to say "revoked" */
	memcpy(buf + have, scope, sl);
	buf[have + sl] = '\n';
	return store_kv_put(t, &records_former_scopes_table, key, kl, buf, have + sl + 1, false);
}

bool
records_former_scope_any(store_txn *t, const char *collection, const char *id,
                         bool (*granted)(const void *arg, const char *scope), const void *arg)
{
	uint8_t key[KEY_MAX];
	size_t kl = fsk_record_key(key, collection, id), vl;
	const void *v;
	if (kl == 0 || store_kv_get(t, &records_former_scopes_table, key, kl, &v, &vl) != FSD_OK)
		return false;
	const char *p = v;
	for (size_t i = 0; i < vl;) {
		const char *nl = memchr(p + i, '\n', vl - i);
		size_t l = nl ? (size_t)(nl - (p + i)) : vl - i;
		char scope[FSP_SCOPE_MAX + 1];
		if (l <= FSP_SCOPE_MAX) {
			memcpy(scope, p + i, l);
			scope[l] = '\0';
			if (granted(arg, scope))
				return true;
		}
		i += l + 1;
	}
	return false;
}
