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
#include "metrics.h"
#include "records.h"

#define KEY_MAX FSK_RECORD_KEY_MAX

const store_table records_table = {"records"};
const store_table records_feed_table = {"feed"};
const store_table records_former_scopes_table = {"former_scopes"};

/*
 * The record frame (records.h): [0x00][0x01][varint n][ceil(n/8) bytes, bit
 * i set = sibling i is sealed][packed RecordState]. 0x00 never starts a
 * packed RecordState (no protobuf field has the number 0), so a row of the
 * old release (the bare RecordState) is told apart by its first byte.
 */
#define FRAME_MAGIC 0x00
#define FRAME_V1 0x01
#define FRAME_SIBLINGS_MAX (1u << 24)

typedef struct frame {
	bool framed;         /* false: a row of the old release */
	const uint8_t *bits; /* framed: bit i = sibling i sealed */
	size_t n;            /* framed: sibling count the bits cover */
	const uint8_t *body; /* the packed RecordState */
	size_t body_len;
} frame;

/* Splits a stored value; false when it is framed but the frame is broken. */
static bool
frame_split(const uint8_t *v, size_t vl, frame *f)
{
	memset(f, 0, sizeof(*f));
	if (vl == 0 || v[0] != FRAME_MAGIC) {
		f->body = v;
		f->body_len = vl;
		return true;
	}
	if (vl < 3 || v[1] != FRAME_V1)
		return false;
	size_t i = 2, n = 0;
	for (unsigned shift = 0;; shift += 7) {
		if (i >= vl || shift > 21)
			return false;
		n |= (size_t)(v[i] & 0x7f) << shift;
		if ((v[i++] & 0x80) == 0)
			break;
	}
	size_t nb = (n + 7) / 8;
	if (n > FRAME_SIBLINGS_MAX || vl - i < nb)
		return false;
	f->framed = true;
	f->bits = v + i;
	f->n = n;
	f->body = v + i + nb;
	f->body_len = vl - i - nb;
	return true;
}

/* The length of the frame's head for n siblings. */
static size_t
frame_head_len(size_t n)
{
	size_t l = 3;
	for (size_t x = n; x > 0x7f; x >>= 7)
		l++;
	return l + (n + 7) / 8;
}

/* Writes the frame's head for n siblings into out (frame_head_len(n)
 * bytes); sealed[i] sets bit i. Its length. */
static size_t
frame_head(uint8_t *out, size_t n, const bool *sealed)
{
	size_t o = 0;
	out[o++] = FRAME_MAGIC;
	out[o++] = FRAME_V1;
	size_t x = n;
	do {
		out[o++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
		x >>= 7;
	} while (x != 0);
	memset(out + o, 0, (n + 7) / 8);
	for (size_t i = 0; i < n; i++)
		if (sealed[i])
			out[o + i / 8] |= (uint8_t)(1u << (i % 8));
	return o + (n + 7) / 8;
}

/*
 * Whether sibling i (payload p) is stored sealed. Framed: its bit. A row of
 * the old release: its payload has the sealed header and the store was
 * written by a daemon with a master key (legacy_sealed: a store with a key
 * store never starts without one, daemon_check_start; a --dev store never
 * had one).
 */
static bool
frame_sealed(const frame *f, size_t i, const ProtobufCBinaryData *p, bool legacy_sealed)
{
	if (f->framed)
		return i < f->n && (f->bits[i / 8] >> (i % 8) & 1) != 0;
	return legacy_sealed && p->len > 0 && fss_classify(p->data, p->len) != FSS_PLAIN;
}

/* Unpacks a stored value without opening anything; *f says which payloads
 * are sealed. NULL when it does not decode. */
static fs_record_state *
unpack_raw(const void *val, size_t vlen, frame *f)
{
	if (!frame_split(val, vlen, f))
		return NULL;
	fs_record_state *rs = fieldsync__v1__record_state__unpack(NULL, f->body_len, f->body);
	if (rs != NULL && f->framed && f->n != rs->n_siblings) {
		records_free(rs);
		return NULL;
	}
	return rs;
}

/* Opens every sealed sibling payload of rs in place. */
static fsd_err
open_payloads(struct keyring *kr, fs_record_state *rs, const frame *f)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	size_t al = fss_record_aad(aad, rs->collection, rs->id);
	for (size_t i = 0; i < rs->n_siblings; i++) {
		ProtobufCBinaryData *p = &rs->siblings[i]->payload;
		uint8_t *plain = NULL;
		size_t pl = 0;
		if (!frame_sealed(f, i, p, kr != NULL))
			continue; /* stored as the client sent it */
		fsd_err r = kr == NULL
		                    ? FSD_NOKEY
		                    : keyring_open_value(kr, aad, al, p->data, p->len, &plain, &pl);
		if (r == FSD_OK && plain == NULL)
			r = FSD_CORRUPT; /* marked sealed, but not a sealed value */
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
	frame f;
	*out = unpack_raw(val, vlen, &f);
	if (*out == NULL) {
		log_event(LOG_ERROR, "stored record does not decode", LU("bytes", vlen), NULL);
		return FSD_CORRUPT;
	}
	fsd_err rc = open_payloads(store_keyring(store_txn_store(t)), *out, &f);
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

static fsd_err record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq, bool feed,
                            bool reseal);

fsd_err
records_put(store_txn *t, const fs_record_state *rs, uint64_t old_seq)
{
	return record_write(t, rs, old_seq, true, false);
}

fsd_err
records_rewrite(store_txn *t, const fs_record_state *rs)
{
	return record_write(t, rs, 0, false, true);
}

/* The stored sibling of old that is r itself, stored sealed; NULL when
 * none. The same version (within a record a version names one value: the
 * merge rule's INVALID), a non-empty one, the same delete flag and author,
 * and sealed bytes of the length r's payload seals to under the data key
 * r's payload names (dek). */
static const fsp_record *
stored_twin(const fs_record_state *old, const frame *f, const fsp_record *r, const char *dek)
{
	size_t want = 3 + strlen(dek) + r->payload.len + FSC_SEAL_OVERHEAD;
	if (r->version == NULL || r->version->n_dots == 0)
		return NULL;
	for (size_t j = 0; old != NULL && j < old->n_siblings; j++) {
		const fsp_record *o = old->siblings[j];
		if (o->deleted == r->deleted && o->payload.len == want &&
		    frame_sealed(f, j, &o->payload, true) &&
		    fss_sealed_under(o->payload.data, o->payload.len, dek) &&
		    fsp_vv_compare(o->version, r->version) == FSP_VV_EQUAL &&
		    strcmp(o->modified_by ? o->modified_by : "",
		           r->modified_by ? r->modified_by : "") == 0)
			return o;
	}
	return NULL;
}

/*
 * Writes rs framed (records.h): with a keyring, each payload is stored
 * sealed. A sibling already stored sealed under the same version keeps its
 * sealed bytes (sealing costs the change, not the sibling count), unless
 * reseal (a rewrite after its data key was replaced: all is sealed anew).
 * Moves the record in the feed from old_seq to rs->seq when feed is set.
 */
static fsd_err
record_write(store_txn *t, const fs_record_state *rs, uint64_t old_seq, bool feed, bool reseal)
{
	uint8_t key[KEY_MAX], seqb[8], *v;
	size_t kl = fsk_record_key(key, rs->collection, rs->id), n = rs->n_siblings;
	struct keyring *kr = store_keyring(store_txn_store(t));
	fsd_err src = FSD_OK;
	fs_record_state sealed_rs, *old = NULL;
	fsp_record *copies = NULL, **ptrs = NULL;
	bool *own = NULL, *sealed = NULL;
	frame of;

	if (kl == 0)
		return FSD_INVALID;
	if ((sealed = calloc(n ? n : 1, sizeof(*sealed))) == NULL)
		return FSD_NOMEM;
	if (kr != NULL && n > 0) { /* seal the payloads on the way in */
		uint8_t aad[FSS_RECORD_AAD_MAX];
		char name[FSS_DEK_NAME_MAX + 1];
		size_t al = fss_record_aad(aad, rs->collection, rs->id), ovl;
		const void *ov;
		copies = calloc(n, sizeof(*copies));
		ptrs = calloc(n, sizeof(*ptrs));
		own = calloc(n, sizeof(*own));
		if (copies == NULL || ptrs == NULL || own == NULL) {
			src = FSD_NOMEM;
			goto out;
		}
		/* The stored state, unopened: its sealed siblings are reused (one
		 * that does not decode is simply not reused). */
		if (!reseal && old_seq != 0 &&
		    store_kv_get(t, &records_table, key, kl, &ov, &ovl) == FSD_OK)
			old = unpack_raw(ov, ovl, &of);
		sealed_rs = *rs;
		sealed_rs.siblings = ptrs;
		for (size_t i = 0; i < n; i++) {
			const fsp_record *r = rs->siblings[i], *twin;
			copies[i] = *r;
			ptrs[i] = &copies[i];
			copies[i].payload.data = NULL;
			copies[i].payload.len = 0;
			if (r->payload.len == 0)
				continue;
			sealed[i] = true;
			if (!fss_dek_for(rs->collection, rs->id, r->payload.data, r->payload.len,
			                 name)) {
				src = FSD_INVALID;
				goto out;
			}
			if ((twin = stored_twin(old, &of, r, name)) != NULL) {
				copies[i].payload = twin->payload; /* borrowed from old */
				continue;
			}
			own[i] = true;
			if ((src = keyring_seal(kr, name, aad, al, r->payload.data, r->payload.len,
			                        &copies[i].payload.data, &copies[i].payload.len)) !=
			    FSD_OK)
				goto out;
		}
		rs = &sealed_rs;
	}

	/* Reserve the value in place; the frame and the state go straight in. */
	size_t hl = frame_head_len(n);
	if ((src = store_kv_reserve(t, &records_table, key, kl,
	                            hl + fieldsync__v1__record_state__get_packed_size(rs),
	                            (void **)&v)) != FSD_OK)
		goto out;
	frame_head(v, n, sealed);
	fieldsync__v1__record_state__pack(rs, v + hl);
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
	for (size_t i = 0; copies != NULL && own != NULL && i < n; i++)
		if (own[i])
			free(copies[i].payload.data);
	records_free(old);
	free(copies);
	free(ptrs);
	free(own);
	free(sealed);
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
	frame f;
	fs_record_state *rs = unpack_raw(v, vl, &f);
	if (rs == NULL)
		return FSD_CORRUPT;
	snprintf(scope, FSP_SCOPE_MAX + 1, "%s", rs->scope);
	*seq = rs->seq;
	*purged = rs->purged;
	records_free(rs);
	return FSD_OK;
}

void
records_free(fs_record_state *rs)
{
	if (rs != NULL)
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
}

struct records_feed_item {
	frame f;
	uint64_t seq;
};

struct feed_walk {
	store_txn *t;
	records_feed_fn fn;
	void *arg;
	uint64_t *last;
	bool *more;
	fsd_err rc;
};

/* A record the feed names but that cannot be read: skipped, counted, logged
 * by its key (collection/id, never payload content). */
static void
feed_unreadable(const uint8_t *key, size_t klen, uint64_t seq, const char *why)
{
	char coll[FSP_COLLECTION_MAX + 1] = "?", id[FSP_ID_MAX + 1] = "?";
	(void)fsk_record_key_split(key, klen, coll, id);
	metrics_inc(METRIC_RECORDS_UNREADABLE_TOTAL, 0, 1);
	log_event(LOG_ERROR, why, LS("collection", coll), LS("id", id), LU("seq", seq), NULL);
}

static bool
feed_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct feed_walk *w = arg;
	const void *rv;
	size_t rvl;
	records_feed_item it = {.seq = klen == 8 ? fsk_get_be64(key) : 0};
	fs_record_state *rs = NULL;
	if (store_kv_get(w->t, &records_table, val, vlen, &rv, &rvl) != FSD_OK)
		feed_unreadable(val, vlen, it.seq, "feed points at a missing record; skipped");
	else if ((rs = unpack_raw(rv, rvl, &it.f)) == NULL)
		feed_unreadable(val, vlen, it.seq, "stored record does not decode; skipped");
	if (rs != NULL && w->fn(w->arg, w->t, rs, &it) == FEED_STOP) {
		*w->more = true;
		return false;
	}
	*w->last = it.seq; /* an unreadable record is passed, never a stall */
	return true;
}

fsd_err
records_feed_open(store_txn *t, fs_record_state *rs, const records_feed_item *it)
{
	if (open_payloads(store_keyring(store_txn_store(t)), rs, &it->f) == FSD_OK)
		return FSD_OK;
	metrics_inc(METRIC_RECORDS_UNREADABLE_TOTAL, 0, 1);
	log_event(LOG_ERROR, "an unreadable record is skipped in the feed",
	          LS("collection", rs->collection), LS("id", rs->id), LU("seq", it->seq), NULL);
	return FSD_CORRUPT;
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

/* Each payload of rs opens; live ones go to fns->payload. False when one
 * does not (the record is unreadable: the feed skips it). */
static bool
check_payloads(struct check *c, const fs_record_state *rs, const frame *f, const char *name)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	size_t al = fss_record_aad(aad, rs->collection, rs->id);
	bool readable = true;
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const fsp_record *sib = rs->siblings[i];
		const uint8_t *p = sib->payload.data;
		size_t pl = sib->payload.len, ol = 0;
		uint8_t *plain = NULL;
		c->n->payloads++;
		if (frame_sealed(f, i, &sib->payload, c->kr != NULL || c->fns->encrypted)) {
			if (c->kr == NULL) {
				c->n->not_checked++;
				continue;
			}
			fsd_err r = keyring_open_value(c->kr, aad, al, p, pl, &plain, &ol);
			if (r == FSD_OK && plain == NULL)
				r = FSD_CORRUPT; /* marked sealed, not a sealed value */
			if (r != FSD_OK) {
				record_problem(
					c, name,
					r == FSD_NOKEY
						? "a payload's data key is gone (unreadable: "
						  "the feed skips it)"
						: "a sealed payload does not verify (unreadable: "
						  "the feed skips it)");
				readable = false;
				continue;
			}
			p = plain;
			pl = ol;
		}
		if (!sib->deleted && c->fns->payload != NULL)
			c->fns->payload(c->fns->arg, rs, name, p, pl);
		free(plain);
	}
	return readable;
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

	frame f;
	fs_record_state *rs = unpack_raw(val, vlen, &f);
	if (rs == NULL) {
		record_problem(c, name,
		               "the stored record does not decode (unreadable: the feed skips it)");
		c->n->unreadable++;
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
	if (ok && !check_payloads(c, rs, &f, name))
		c->n->unreadable++;
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

/* ---- values stored in clear (verify, seal) ---------------------------------- */

struct clear_walk {
	bool (*fn)(void *arg, const char *collection, const char *id);
	void *arg;
	size_t n;
	bool stop;
};

static bool
clear_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct clear_walk *w = arg;
	char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
	frame f;
	if (!fsk_record_key_split(key, klen, coll, id))
		return true; /* records_check reports it */
	fs_record_state *rs = unpack_raw(val, vlen, &f);
	bool clear = false;
	for (size_t i = 0; rs != NULL && i < rs->n_siblings; i++)
		clear |= rs->siblings[i]->payload.len > 0 &&
		         !frame_sealed(&f, i, &rs->siblings[i]->payload, true);
	records_free(rs);
	if (clear) {
		w->n++;
		if (!w->fn(w->arg, coll, id))
			return !(w->stop = true);
	}
	return true;
}

fsd_err
records_clear_scan(store_txn *t, bool (*fn)(void *arg, const char *collection, const char *id),
                   void *arg, size_t *n)
{
	struct clear_walk w = {fn, arg, 0, false};
	fsd_err rc = store_kv_scan(t, &records_table, NULL, 0, NULL, 0, clear_one, &w);
	*n = w.n;
	return rc;
}

struct scan_stored {
	bool (*fn)(void *arg, const fs_record_state *rs);
	void *arg;
};

static bool
scan_stored_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct scan_stored *ss = arg;
	frame f;
	(void)key;
	(void)klen;
	fs_record_state *rs = unpack_raw(val, vlen, &f);
	if (rs == NULL)
		return true;
	bool go_on = ss->fn(ss->arg, rs);
	records_free(rs);
	return go_on;
}

fsd_err
records_scan_stored(store_txn *t, bool (*fn)(void *arg, const fs_record_state *rs), void *arg)
{
	struct scan_stored ss = {fn, arg};
	return store_kv_scan(t, &records_table, NULL, 0, NULL, 0, scan_stored_one, &ss);
}
