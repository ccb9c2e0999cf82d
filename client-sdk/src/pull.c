/*
 * Applying pulled pages (pull.h).
 *
 * Each RecordState of a page is merged sibling by sibling into the local
 * set with the shared merge rule (fsp_merge): a sibling that is new joins
 * or replaces what it dominates, one already known changes nothing, one
 * with a reused dot is kept out. Local outbox entries are left alone: the
 * outbox value is always one of the siblings or dominated by one, and it
 * is pushed as it is. A purged or revoked record is deleted with its
 * outbox entry; in an encrypted store its "r:" data key goes too, and a
 * purged case takes its "c:" key and every record and outbox entry sealed
 * under it (its contacts) - crypto-shredding, see the note atop store.c.
 * A purged record that shared a data key (a contact: its case's key) has
 * that key replaced: what else was sealed under it is opened, the key is
 * destroyed and everything is sealed again under a fresh one
 * (rekey_shared), so the purged record's old copies do not open any more.
 * LMDB keeps deleted bytes in free pages: before a page with a purge
 * commits, the store's erase.pending marker is made durable, and the store
 * is compacted into a new file (sdk_store_mark_erase, store.c) when it is
 * closed or, after a crash, opened.
 * Every record a page changes is noted in the change feed (changes.c) and,
 * for a contact, in the contacts-by-case index (caseindex.c), in the page's
 * transaction.
 *
 * Layer: operations. Nothing from the wire is trusted: a record state
 * that fails the shared core's strict checks (fsp_record_state_strict,
 * fsp_record_strict: invalid UTF-8, a malformed name, a malformed
 * sibling, an undefined Record field) is skipped whole, counted and named
 * in fs_last_error_detail() (by seq: its id may be the bad string), never
 * stored, never a crash, and never failing the page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caseindex.h"
#include "changes.h"
#include "fieldsync/crypto.h"
#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "outbox.h"
#include "pull.h"
#include "records.h"
#include "seal.h"

/* A RecordState from the wire passes the shared core's strict checks
 * (protocol.md §2: UTF-8 in every string, the grammar of collection, id
 * and scope, every sibling a well-formed Record of this record with no
 * field the protocol does not define), the same the daemon applies to a
 * push. A purge or revocation marker only needs valid names. False with
 * a sentence in why. */
static bool
state_strict(const sdk_record_state *in, char *why, size_t len)
{
	return fsp_record_state_strict(in, why, len);
}

/* A sibling from the wire we are willing to store. */
static bool
sibling_ok(const fsp_record *r)
{
	const char *why = NULL;
	if (r == NULL || r->version == NULL || !fsp_vv_check(r->version, &why))
		return false;
	return !(r->deleted && r->payload.len != 0);
}

/* The feed and the case index learn that the record at k is erased. */
static int
forget_record(fs_store *s, MDB_txn *t, const MDB_val *k)
{
	char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
	uint8_t key[FSK_RECORD_KEY_MAX];
	int rc;
	if (k->mv_size > sizeof(key) || !fsk_record_key_split(k->mv_data, k->mv_size, coll, id))
		return MDB_SUCCESS;
	memcpy(key, k->mv_data, k->mv_size); /* k may point into a page we write */
	if ((rc = sdk_change_note(s, t, key, k->mv_size, true, FS_CHANGE_ERASED)) != MDB_SUCCESS)
		return rc;
	return sdk_caseidx_set(s, t, coll, id, NULL);
}

/*
 * Deletes every record and outbox entry with a payload sealed under DEK
 * `name` (the contacts of a purged case: without the key they cannot be
 * read any more, and erasure means they go too).
 */
static int
sweep_sealed_under(fs_store *s, MDB_txn *t, const char *name)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(t, s->records, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_record_state *rs =
			fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
		bool hit = false;
		for (size_t i = 0; rs != NULL && i < rs->n_siblings; i++)
			hit |= fss_sealed_under(rs->siblings[i]->payload.data,
			                        rs->siblings[i]->payload.len, name);
		if (rs != NULL)
			fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (hit && (rc = forget_record(s, t, &k)) != MDB_SUCCESS)
			break;
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(t, s->outbox, &c)) != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		sdk_ob_entry e;
		fsp_record *r = NULL;
		if (sdk_ob_decode(&d, &e))
			r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
		bool hit = r != NULL && fss_sealed_under(r->payload.data, r->payload.len, name);
		if (r != NULL)
			fieldsync__v1__record__free_unpacked(r, NULL);
		if (hit && (rc = mdb_cursor_del(c, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

struct key_list {
	uint8_t (*keys)[FSK_RECORD_KEY_MAX];
	size_t *lens;
	size_t n, cap;
};

static bool
key_list_add(struct key_list *l, const MDB_val *k)
{
	if (k->mv_size > FSK_RECORD_KEY_MAX)
		return true; /* not a record key of ours */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *a = realloc(l->keys, cap * sizeof(*l->keys));
		if (a == NULL)
			return false;
		l->keys = a;
		void *b = realloc(l->lens, cap * sizeof(*l->lens));
		if (b == NULL)
			return false;
		l->lens = b;
		l->cap = cap;
	}
	memcpy(l->keys[l->n], k->mv_data, k->mv_size);
	l->lens[l->n++] = k->mv_size;
	return true;
}

/* The keys of every record (outbox: false) or outbox entry (true) with a
 * payload sealed under DEK `name`. */
static int
keys_sealed_under(fs_store *s, MDB_txn *t, bool outbox, const char *name, struct key_list *l)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, outbox ? s->outbox : s->records, &c);
	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		bool hit = false;
		if (outbox) {
			sdk_ob_entry e;
			fsp_record *r = NULL;
			if (sdk_ob_decode(&d, &e))
				r = fieldsync__v1__record__unpack(NULL, e.rec_len, e.rec_bytes);
			hit = r != NULL && fss_sealed_under(r->payload.data, r->payload.len, name);
			if (r != NULL)
				fieldsync__v1__record__free_unpacked(r, NULL);
		} else {
			sdk_record_state *rs =
				fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
			for (size_t i = 0; rs != NULL && i < rs->n_siblings; i++)
				hit |= fss_sealed_under(rs->siblings[i]->payload.data,
				                        rs->siblings[i]->payload.len, name);
			if (rs != NULL)
				fieldsync__v1__record_state__free_unpacked(rs, NULL);
		}
		if (hit && !key_list_add(l, &k)) {
			rc = ENOMEM;
			break;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* An outbox entry, opened: its header and its Record with a plain payload. */
struct ob_open {
	sdk_ob_entry e;
	fsp_record *r;
};

/*
 * Re-keys DEK `name`: opens every record and outbox entry sealed under it,
 * destroys it, and seals them again under a fresh DEK of the same name.
 */
static int
rekey_shared(fs_store *s, MDB_txn *t, const char *name)
{
	struct key_list recs = {0}, obs = {0};
	sdk_record_state **rs = NULL;
	struct ob_open *ob = NULL;
	int rc = keys_sealed_under(s, t, false, name, &recs);
	if (rc == MDB_SUCCESS)
		rc = keys_sealed_under(s, t, true, name, &obs);
	if (rc == MDB_SUCCESS && ((rs = calloc(recs.n + 1, sizeof(*rs))) == NULL ||
	                          (ob = calloc(obs.n + 1, sizeof(*ob))) == NULL))
		rc = ENOMEM;
	/* 1. open everything with the old key */
	for (size_t i = 0; rc == MDB_SUCCESS && i < recs.n; i++)
		rc = sdk_record_load(s, t, recs.keys[i], recs.lens[i], &rs[i]);
	for (size_t i = 0; rc == MDB_SUCCESS && i < obs.n; i++) {
		MDB_val k = {obs.lens[i], obs.keys[i]}, d;
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		if ((rc = mdb_get(t, s->outbox, &k, &d)) != MDB_SUCCESS)
			break;
		if (!sdk_ob_decode(&d, &ob[i].e) ||
		    !fsk_record_key_split(obs.keys[i], obs.lens[i], coll, id) ||
		    (ob[i].r = fieldsync__v1__record__unpack(NULL, ob[i].e.rec_len,
		                                             ob[i].e.rec_bytes)) == NULL) {
			rc = MDB_CORRUPTED;
			break;
		}
		ob[i].e.rec_bytes = NULL; /* points into the txn's page: not used again */
		rc = sdk_record_open(s, t, coll, id, ob[i].r);
	}
	/* 2. the old key goes; 3. everything is sealed under a fresh one */
	if (rc == MDB_SUCCESS)
		rc = sdk_dek_destroy(s, t, name);
	for (size_t i = 0; rc == MDB_SUCCESS && i < recs.n; i++)
		if (rs[i] != NULL)
			rc = sdk_record_save(s, t, recs.keys[i], recs.lens[i], rs[i]);
	for (size_t i = 0; rc == MDB_SUCCESS && i < obs.n; i++) {
		MDB_val k = {obs.lens[i], obs.keys[i]};
		char coll[FSP_COLLECTION_MAX + 1], id[FSP_ID_MAX + 1];
		uint8_t *sealed = NULL, *packed = NULL;
		size_t sl = 0;
		fsk_record_key_split(obs.keys[i], obs.lens[i], coll, id);
		rc = sdk_seal_value(s, t, coll, id, ob[i].r->payload.data, ob[i].r->payload.len,
		                    &sealed, &sl);
		if (rc != MDB_SUCCESS)
			break;
		fsc_cleanse(ob[i].r->payload.data, ob[i].r->payload.len);
		free(ob[i].r->payload.data);
		ob[i].r->payload.data = sealed;
		ob[i].r->payload.len = sl;
		size_t pl = fieldsync__v1__record__get_packed_size(ob[i].r);
		if ((packed = malloc(pl ? pl : 1)) == NULL) {
			rc = ENOMEM;
			break;
		}
		fieldsync__v1__record__pack(ob[i].r, packed);
		rc = sdk_ob_put(s, t, &k, ob[i].e.state, ob[i].e.csid[0] ? ob[i].e.csid : NULL,
		                ob[i].e.reason[0] ? ob[i].e.reason : NULL, packed, pl);
		free(packed);
	}
	for (size_t i = 0; rs != NULL && i < recs.n; i++)
		if (rs[i] != NULL)
			fieldsync__v1__record_state__free_unpacked(rs[i], NULL);
	for (size_t i = 0; ob != NULL && i < obs.n; i++)
		if (ob[i].r != NULL)
			fieldsync__v1__record__free_unpacked(ob[i].r, NULL);
	free(rs);
	free(ob);
	free(recs.keys);
	free(recs.lens);
	free(obs.keys);
	free(obs.lens);
	return rc;
}

/* The data keys other than its own that record k's stored siblings are
 * sealed under (a contact: its case's), at most 4, into names. */
static size_t
shared_names(fs_store *s, MDB_txn *t, const MDB_val *k, const char *own,
             char names[4][FSS_DEK_NAME_MAX + 1])
{
	MDB_val d;
	size_t n = 0;
	if (mdb_get(t, s->records, (MDB_val *)k, &d) != MDB_SUCCESS)
		return 0;
	sdk_record_state *rs = fieldsync__v1__record_state__unpack(NULL, d.mv_size, d.mv_data);
	for (size_t i = 0; rs != NULL && i < rs->n_siblings && n < 4; i++) {
		fss_parts parts;
		if (!fss_parse(rs->siblings[i]->payload.data, rs->siblings[i]->payload.len,
		               &parts) ||
		    strcmp(parts.name, own) == 0 || parts.name_len > FSS_DEK_NAME_MAX)
			continue;
		bool seen = false;
		for (size_t j = 0; j < n; j++)
			seen |= strcmp(names[j], parts.name) == 0;
		if (!seen) {
			memcpy(names[n], parts.name, parts.name_len);
			names[n++][parts.name_len] = '\0';
		}
	}
	if (rs != NULL)
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
	return n;
}

/* Makes DIR/erase.pending durable: store.c compacts the store when it
 * finds it (at close, or at the next open after a crash). */
static int
sdk_store_mark_erase(fs_store *s)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/erase.pending", s->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	int rc = fsync(fd) == 0 ? MDB_SUCCESS : errno;
	close(fd);
	if (rc == MDB_SUCCESS && (fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) != 0)
			rc = errno;
		close(fd);
	}
	return rc;
}

/* Merges one RecordState from the feed into the store. */
static int
pull_one(fs_store *s, MDB_txn *t, const sdk_record_state *in, bool *applied)
{
	uint8_t key[FSK_RECORD_KEY_MAX];
	sdk_record_state *old = NULL;
	fsp_record **set = NULL, **next = NULL;
	size_t n = 0;
	int rc;

	*applied = false;
	size_t klen;
	if (!sdk_names_valid(in->collection, in->id) ||
	    (klen = fsk_record_key(key, in->collection, in->id)) == 0)
		return MDB_SUCCESS; /* garbage from the wire: skip, never crash */
	MDB_val k = {klen, key};
	if (in->purged || in->revoked) {
		char name[FSS_DEK_NAME_MAX + 1], shared[4][FSS_DEK_NAME_MAX + 1];
		size_t n_shared = 0;
		bool is_case = strcmp(in->collection, "case") == 0;
		if (!fss_dek_record(in->collection, in->id, name))
			return EINVAL; /* names checked above: cannot happen */
		if (s->encrypted && in->purged && !is_case)
			n_shared = shared_names(s, t, &k, name, shared);
		rc = mdb_del(t, s->records, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		if (rc == MDB_SUCCESS && (rc = forget_record(s, t, &k)) != MDB_SUCCESS)
			return rc;
		rc = mdb_del(t, s->outbox, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return rc;
		if (s->encrypted) { /* crypto-shredding: its data key goes too */
			if ((rc = sdk_dek_destroy(s, t, name)) != MDB_SUCCESS)
				return rc;
			if (in->purged && is_case) {
				if (!fss_dek_case(in->id, name))
					return EINVAL;
				if ((rc = sdk_dek_destroy(s, t, name)) != MDB_SUCCESS ||
				    (rc = sweep_sealed_under(s, t, name)) != MDB_SUCCESS)
					return rc;
			}
			/* a key it shared (its case's) is replaced for the others */
			for (size_t i = 0; i < n_shared; i++)
				if ((rc = rekey_shared(s, t, shared[i])) != MDB_SUCCESS)
					return rc;
		}
		*applied = true;
		return MDB_SUCCESS;
	}
	if ((rc = sdk_record_load(s, t, key, klen, &old)) != MDB_SUCCESS)
		return rc;
	size_t cap = (old ? old->n_siblings : 0) + in->n_siblings + 1;
	if ((set = calloc(cap, sizeof(*set))) == NULL ||
	    (next = calloc(cap, sizeof(*next))) == NULL) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; old && i < old->n_siblings; i++)
		set[n++] = old->siblings[i];
	bool changed = false;
	for (size_t i = 0; i < in->n_siblings; i++) {
		fsp_record *r = in->siblings[i];
		size_t m = 0;
		if (!sibling_ok(r))
			continue;
		fsp_merge_status st = fsp_merge(set, n, r, next, &m);
		if (st == FSP_MERGE_APPLIED || st == FSP_MERGE_CONFLICT) {
			memcpy(set, next, m * sizeof(*set));
			n = m;
			changed = true;
		}
		/* DUPLICATE/OBSOLETE: nothing new; INVALID: a reused dot, kept out */
	}
	const char *scope = fsp_scope_valid(in->scope) ? in->scope : old ? old->scope : NULL;
	if (n == 0 || scope == NULL ||
	    (!changed && old != NULL && strcmp(old->scope, scope) == 0)) {
		rc = MDB_SUCCESS;
		goto out;
	}
	sdk_record_state rs = FIELDSYNC__V1__RECORD_STATE__INIT;
	rs.collection = in->collection;
	rs.id = in->id;
	rs.scope = (char *)scope;
	rs.seq = in->seq;
	rs.n_siblings = n;
	rs.siblings = set;
	rc = sdk_record_save(s, t, key, klen, &rs);
	if (rc == MDB_SUCCESS) {
		bool live = false;
		for (size_t i = 0; i < n; i++)
			live |= !set[i]->deleted;
		rc = sdk_change_note(s, t, key, klen, true,
		                     live ? FS_CHANGE_PUT : FS_CHANGE_DELETE);
	}
	if (rc == MDB_SUCCESS)
		rc = sdk_caseidx_set(s, t, in->collection, in->id, &rs);
	*applied = rc == MDB_SUCCESS;
out:
	free(set);
	free(next);
	if (old != NULL)
		fieldsync__v1__record_state__free_unpacked(old, NULL);
	return rc;
}

fs_err
sdk_pull_apply(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied)
{
	return sdk_pull_apply_checked(s, rep, applied, NULL, NULL, NULL);
}

fs_err
sdk_pull_apply_page(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied, uint64_t *from,
                    uint64_t *to)
{
	return sdk_pull_apply_checked(s, rep, applied, from, to, NULL);
}

fs_err
sdk_pull_apply_checked(fs_store *s, const sdk_pull_reply *rep, uint64_t *applied, uint64_t *from,
                       uint64_t *to, uint64_t *refused)
{
	MDB_txn *t = NULL;
	int rc;
	uint64_t cp, count = 0, seq0 = 0, seq1 = 0, bad = 0;
	bool marked = false;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t)) != MDB_SUCCESS)
		return sdk_map_rc(rc);
	if ((rc = sdk_change_seq_get(s, t, &seq0)) != MDB_SUCCESS)
		goto fail;
	for (size_t i = 0; i < rep->n_records; i++) {
		bool a;
		if (rep->records[i] == NULL)
			continue;
		/* strict input (protocol.md §2): refused, reported, never stored,
		 * and the rest of the page goes on */
		char why[160];
		if (!state_strict(rep->records[i], why, sizeof(why))) {
			bad++;
			sdk_detail("a pulled record (seq %llu) was refused and not stored: %s",
			           (unsigned long long)rep->records[i]->seq, why);
			continue;
		}
		/* an erasure: the marker is durable before the deletion commits */
		if ((rep->records[i]->purged || rep->records[i]->revoked) && !marked) {
			if ((rc = sdk_store_mark_erase(s)) != MDB_SUCCESS)
				goto fail;
			marked = true;
			const char *at = getenv("FIELDSYNC_TEST_CRASH_AT"); /* store.c's hook */
			if (at != NULL && strcmp(at, "sdk-erase-marked") == 0)
				_exit(86);
		}
		if ((rc = pull_one(s, t, rep->records[i], &a)) != MDB_SUCCESS)
			goto fail;
		count += a;
	}
	if ((rc = sdk_meta_get_u64(s, t, "checkpoint", &cp)) != MDB_SUCCESS)
		goto fail;
	if (rep->last_seq > cp &&
	    (rc = sdk_meta_put_u64(s, t, "checkpoint", rep->last_seq)) != MDB_SUCCESS)
		goto fail;
	if ((rc = sdk_change_seq_get(s, t, &seq1)) != MDB_SUCCESS)
		goto fail;
	rc = mdb_txn_commit(t);
	if (rc == MDB_SUCCESS && applied != NULL)
		*applied = count;
	if (rc == MDB_SUCCESS && from != NULL)
		*from = seq0;
	if (rc == MDB_SUCCESS && to != NULL)
		*to = seq1;
	if (rc == MDB_SUCCESS && refused != NULL)
		*refused = bad;
	return sdk_map_rc(rc);
fail:
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}

fs_err
sdk_checkpoint_get(fs_store *s, uint64_t *seq)
{
	MDB_txn *t = NULL;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != MDB_SUCCESS)
		return sdk_map_rc(rc);
	rc = sdk_meta_get_u64(s, t, "checkpoint", seq);
	mdb_txn_abort(t);
	return sdk_map_rc(rc);
}
