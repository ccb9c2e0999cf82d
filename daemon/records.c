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

/* ---- verification (fieldsyncd verify) --------------------------------------- */

/* A record seen in the records table, to match against the feed. */
struct vrec {
	uint8_t *key;
	size_t klen;
	uint64_t seq;
	bool decoded;
	unsigned in_feed;
};

struct check {
	store_txn *t;
	struct keyring *kr;
	const records_check_fns *fns;
	records_check_counts *n;
	struct vrec *recs; /* in the table's key order */
	size_t n_recs, cap_recs;
	bool oom;
};

/* "collection/id" of a record key, non-printing bytes as '?'. */
static void
key_name(const uint8_t *k, size_t kl, char *out, size_t cap)
{
	size_t o = 0;
	if (kl == 0 || (size_t)k[0] + 1 > kl) {
		snprintf(out, cap, "(malformed key of %zu bytes)", kl);
		return;
	}
	for (size_t i = 1; i < kl && o + 2 < cap; i++) {
		if (i == (size_t)k[0] + 1)
			out[o++] = '/';
		out[o++] = k[i] >= 0x20 && k[i] < 0x7f ? (char)k[i] : '?';
	}
	out[o] = '\0';
}

#define WHO_MAX (FSK_RECORD_KEY_MAX + 80)

static void
record_problem(struct check *c, const char *name, const char *what)
{
	char who[WHO_MAX + 8];
	snprintf(who, sizeof(who), "record %s", name);
	c->fns->problem(c->fns->arg, who, what);
}

static int
key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r != 0 ? r : al < bl ? -1 : al > bl;
}

/* Each payload of rs opens; live ones go to fns->payload. */
static void
check_payloads(struct check *c, const fs_record_state *rs, const char *name)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	size_t al = fss_record_aad(aad, rs->collection, rs->id);
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const fsp_record *sib = rs->siblings[i];
		const uint8_t *p = sib->payload.data;
		size_t pl = sib->payload.len, ol = 0;
		uint8_t *plain = NULL;
		c->n->payloads++;
		if (fss_classify(p, pl) != FSS_PLAIN) {
			if (c->kr == NULL) {
				c->n->not_checked++;
				continue;
			}
			fsd_err r = keyring_open_value(c->kr, aad, al, p, pl, &plain, &ol);
			if (r != FSD_OK) {
				record_problem(c, name,
				               r == FSD_NOKEY ? "a payload's data key is gone"
				                              : "a sealed payload does not verify");
				continue;
			}
			if (plain != NULL) {
				p = plain;
				pl = ol;
			}
		}
		if (!sib->deleted && c->fns->payload != NULL)
			c->fns->payload(c->fns->arg, rs, name, p, pl);
		free(plain);
	}
}

static bool
check_record(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct check *c = arg;
	char name[WHO_MAX];
	uint8_t own[KEY_MAX];

	key_name(key, klen, name, sizeof(name));
	if (c->n_recs == c->cap_recs) {
		size_t cap = c->cap_recs ? c->cap_recs * 2 : 1024;
		struct vrec *r = realloc(c->recs, cap * sizeof(*r));
		if (r == NULL)
			goto oom;
		c->recs = r;
		c->cap_recs = cap;
	}
	struct vrec *r = &c->recs[c->n_recs];
	memset(r, 0, sizeof(*r));
	if ((r->key = malloc(klen ? klen : 1)) == NULL)
		goto oom;
	memcpy(r->key, key, klen);
	r->klen = klen;
	c->n_recs++;
	c->n->records++;

	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, vlen, val);
	if (rs == NULL) {
		record_problem(c, name, "the stored record does not decode");
		return true;
	}
	r->decoded = true;
	r->seq = rs->seq;
	if (rs->seq > c->n->max_seq)
		c->n->max_seq = rs->seq;
	size_t ol = fsk_record_key(own, rs->collection, rs->id);
	bool ok = true;
	if (ol == 0 || ol != klen || memcmp(own, key, klen) != 0)
		record_problem(c, name, "the record stored under this key names another");
	else if (c->fns->record != NULL && !c->fns->record(c->fns->arg, rs))
		ok = false;
	if (ok)
		check_payloads(c, rs, name);
	records_free(rs);
	if (!ok)
		goto oom;
	return true;
oom:
	c->oom = true;
	return false;
}

static bool
check_feed_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct check *c = arg;
	char name[WHO_MAX], who[64];
	uint64_t seq = klen == 8 ? fsk_get_be64(key) : 0;

	c->n->feed_entries++;
	key_name(val, vlen, name, sizeof(name));
	snprintf(who, sizeof(who), "feed entry at seq %llu", (unsigned long long)seq);
	if (seq > c->n->max_seq)
		c->n->max_seq = seq;
	size_t lo = 0, hi = c->n_recs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(c->recs[mid].key, c->recs[mid].klen, val, vlen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == c->n_recs || key_cmp(c->recs[lo].key, c->recs[lo].klen, val, vlen) != 0) {
		char what[WHO_MAX + 40];
		snprintf(what, sizeof(what), "it points at %s, which is not stored", name);
		c->fns->problem(c->fns->arg, who, what);
		return true;
	}
	struct vrec *r = &c->recs[lo];
	if (++r->in_feed > 1)
		record_problem(c, name, "it is in the feed more than once");
	if (r->decoded && r->seq != seq) {
		char why[96];
		snprintf(why, sizeof(why), "the feed has it at seq %llu but it says seq %llu",
		         (unsigned long long)seq, (unsigned long long)r->seq);
		record_problem(c, name, why);
	}
	return true;
}

fsd_err
records_check(store_txn *t, const records_check_fns *fns, records_check_counts *n)
{
	struct check c = {t, store_keyring(store_txn_store(t)), fns, n, NULL, 0, 0, false};
	fsd_err rc;

	memset(n, 0, sizeof(*n));
	rc = store_kv_scan(t, &records_table, NULL, 0, NULL, 0, check_record, &c);
	if (rc == FSD_OK && !c.oom)
		rc = store_kv_scan(t, &records_feed_table, NULL, 0, NULL, 0, check_feed_entry, &c);
	if (rc == FSD_OK && c.oom)
		rc = FSD_NOMEM;
	for (size_t i = 0; rc == FSD_OK && i < c.n_recs; i++)
		if (c.recs[i].in_feed == 0) {
			char name[WHO_MAX];
			key_name(c.recs[i].key, c.recs[i].klen, name, sizeof(name));
			record_problem(&c, name, "it is not in the feed");
		}
	for (size_t i = 0; i < c.n_recs; i++)
		free(c.recs[i].key);
	free(c.recs);
	return rc;
}
