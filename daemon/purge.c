/*
 * purge: erasure, GDPR art. 17 (logic layer; purge.h): `fieldsyncd purge`.
 *
 * A purge runs in one write transaction of the data store, in whatever
 * process calls it (the admin command, while the daemon runs: LMDB
 * serialises the writers, so the daemon cannot seal anything with a key
 * between the moment the purge reads and the moment it destroys it):
 *
 *   1. every target record becomes a purge marker: RecordState{collection,
 *      id, scope, new seq, purged} with no siblings. It moves to the head of
 *      the feed, so every tablet sees it and deletes the record physically,
 *      and the writer rejects any later push to it ("the record was purged");
 *   2. a case's reminders go (active ones are CANCELLED first), and its
 *      stored reminder events become markers (seq and scope only; the
 *      cancellations keep their ids, not the staff): events_erase_case;
 *   3. the data key is destroyed in the key store (and physically: the key
 *      store is compacted, keyring_destroy): a case and all its
 *      contacts share the case's key (fss_dek_case), so `--case` destroys
 *      it; a single contact shares it with the rest of its case, so its case
 *      is re-sealed under a fresh key: the old one is retired (set aside,
 *      still able to open), the data re-sealed, and with the commit meta
 *      "rekey:<name>" records the re-key's token; only then are the retired
 *      keys destroyed (a crash in between: purge_recover, at every start,
 *      finishes a re-key that committed and keeps the old key of one that
 *      did not, so live data is never lost); any
 *      other record has a key of its own (fss_dek_record). Backups of the data taken before cannot be read for the
 *      purged records any more;
 *   4. an audit entry says who purged what, and when.
 * The data transaction commits last. If it fails after the key was
 * destroyed, the records are unreadable already; running the purge again
 * finishes the markers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "caseindex.h"
#include "clock.h"
#include "events.h"
#include "fieldsync/casework.h"
#include "fieldsync/crypto.h"
#include "fieldsync/seal.h"
#include "keyring.h"
#include "log.h"
#include "purge.h"
#include "records.h"
#include "reminder_rows.h"
#include "reminders.h"

struct id_set {
	char (*ids)[FSP_ID_MAX + 1];
	size_t n, cap;
	bool oom;
};

static bool
collect_contact(void *arg, const char *id)
{
	struct id_set *s = arg;
	size_t l = strlen(id);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		void *p = realloc(s->ids, cap * sizeof(*s->ids));
		if (p == NULL) {
			s->oom = true;
			return false;
		}
		s->ids = p;
		s->cap = cap;
	}
	memcpy(s->ids[s->n], id, l);
	s->ids[s->n][l] = '\0';
	s->n++;
	return true;
}

/* The contacts the index lists for case_id. */
static fsd_err
case_contacts(store_txn *t, const char *case_id, struct id_set *out)
{
	fsd_err rc = caseindex_contacts(t, case_id, collect_contact, out);
	return rc == FSD_OK && out->oom ? FSD_ERROR : rc;
}

/* Replaces one record by its purge marker; *found says whether it existed. */
static fsd_err
mark_purged(store_txn *t, const char *collection, const char *id, bool *found)
{
	char scope[FSP_SCOPE_MAX + 1];
	uint64_t seq = 0;
	bool purged = false;
	fsd_err rc = records_head(t, collection, id, scope, &seq, &purged);
	*found = false;
	if (rc == FSD_NOTFOUND)
		return FSD_OK;
	if (rc != FSD_OK)
		return rc;
	*found = true;
	if (purged)
		return FSD_OK; /* again: nothing more to mark */
	fs_record_state marker;
	fieldsync__v1__record_state__init(&marker);
	marker.collection = (char *)collection;
	marker.id = (char *)id;
	marker.scope = scope;
	marker.seq = store_next_seq(t);
	marker.purged = true;
	return records_put(t, &marker, seq);
}

/* The case a contact belongs to (from its first live sibling); "" if none. */
static void
contact_case(store_txn *t, const char *id, char out[FSP_ID_MAX + 1])
{
	fs_record_state *rs = NULL;
	char ids[1][FSP_ID_MAX + 1];
	out[0] = '\0';
	if (records_get(t, "contact", id, &rs) != FSD_OK)
		return;
	if (fsp_contact_case_ids(rs, ids, 1) == 1)
		memcpy(out, ids[0], FSP_ID_MAX + 1);
	records_free(rs);
}

/*
 * The case keeps living after one of its contacts was purged: re-seal the
 * case, its other contacts and its reminder rows under a fresh key, then
 * the old one (which the purged contact's old copies are sealed with) is
 * gone: read everything, destroy the key, write everything back.
 */
/* A re-key's token: names its retired slot and, in meta "rekey:<name>",
 * which re-key committed. Random (never 0). */
static uint64_t
rekey_token(void)
{
	uint8_t r[FSC_KEY_LEN];
	uint64_t v = 0;
	if (fsc_new_key(r))
		memcpy(&v, r, sizeof(v));
	fsc_cleanse(r, sizeof(r));
	return v ? v : 1;
}

static const char *
rekey_meta(const char *name, char out[FSS_DEK_NAME_MAX + 8])
{
	snprintf(out, FSS_DEK_NAME_MAX + 8, "rekey:%s", name);
	return out;
}

static fsd_err
rekey_case(store *s, store_txn *t, const char *case_id)
{
	keyring *kr = store_keyring(s);
	char meta[FSS_DEK_NAME_MAX + 8];
	struct id_set contacts = {0};
	reminder_rows_copy *rows = NULL;
	fs_record_state **keep = NULL;
	size_t n_keep = 0;
	char name[FSS_DEK_NAME_MAX + 1];
	fsd_err rc = case_contacts(t, case_id, &contacts);

	if (kr == NULL || rc != FSD_OK)
		goto out;
	keep = calloc(contacts.n + 1, sizeof(*keep));
	if (keep == NULL) {
		rc = FSD_ERROR;
		goto out;
	}
	/* 1. read everything sealed with the case key */
	rc = records_get(t, "case", case_id, &keep[n_keep]);
	if (rc == FSD_OK)
		n_keep++;
	else if (rc != FSD_NOTFOUND)
		goto out;
	for (size_t i = 0; i < contacts.n; i++) {
		fsd_err g = records_get(t, "contact", contacts.ids[i], &keep[n_keep]);
		if (g == FSD_OK)
			n_keep++;
		else if (g != FSD_NOTFOUND) {
			rc = g;
			goto out;
		}
	}
	if ((rc = reminder_rows_copy_case(t, case_id, &rows)) != FSD_OK)
		goto out;
	/* 2. the old key goes */
	if (!fss_dek_case(case_id, name)) {
		rc = FSD_INVALID;
		goto out;
	}
	/* retired, not destroyed: until this transaction commits, what is
	 * stored is sealed with it (keyring_open_value falls back to it) */
	uint64_t token = rekey_token();
	if ((rc = keyring_retire(kr, name, token)) != FSD_OK)
		goto out;
	/* 3. everything comes back sealed under a fresh one; the commit of
	 * this transaction says that the retired key may go */
	for (size_t i = 0; rc == FSD_OK && i < n_keep; i++)
		if (!keep[i]->purged)
			rc = records_rewrite(t, keep[i]);
	if (rc == FSD_OK)
		rc = reminder_rows_copy_write(t, case_id, rows);
	if (rc == FSD_OK)
		rc = store_meta_set_u64(t, rekey_meta(name, meta), token);
out:
	for (size_t i = 0; i < n_keep; i++)
		records_free(keep[i]);
	free(keep);
	reminder_rows_copy_free(&rows);
	free(contacts.ids);
	return rc;
}

/* The re-sealed data of DEK `name` committed: its retired keys go, then
 * the meta that said so. */
static fsd_err
finish_rekey(store *s, const char *name)
{
	char meta[FSS_DEK_NAME_MAX + 8];
	store_txn *t = NULL;
	fsd_err rc = keyring_destroy_retired(store_keyring(s), name);
	if (rc == FSD_OK && (rc = store_write_begin(s, &t)) == FSD_OK) {
		rc = store_meta_set_u64(t, rekey_meta(name, meta), 0);
		if (rc == FSD_OK)
			rc = store_commit(&t);
		else
			store_abort(&t);
	}
	return rc;
}

struct recover {
	store *s;
	char names[16][FSS_DEK_NAME_MAX + 1];
	size_t n;
};

static bool
retired_seen(void *arg, const char *name, uint64_t token)
{
	struct recover *r = arg;
	char meta[FSS_DEK_NAME_MAX + 8];
	store_txn *t = NULL;
	uint64_t done = 0;
	if (strlen(name) > FSS_DEK_NAME_MAX || store_read_begin(r->s, &t) != FSD_OK)
		return true;
	done = store_meta_u64(t, rekey_meta(name, meta));
	store_read_end(&t);
	if (done == token && r->n < 16) /* its re-key committed */
		snprintf(r->names[r->n++], FSS_DEK_NAME_MAX + 1, "%s", name);
	else if (done != token)
		log_event(LOG_WARN,
		          "a purge's re-key did not commit: its old key stays until the purge is "
		          "run again",
		          NULL);
	return true;
}

fsd_err
purge_recover(store *s)
{
	struct recover r = {.s = s};
	fsd_err rc = FSD_OK;
	if (store_keyring(s) == NULL)
		return FSD_OK;
	if ((rc = keyring_retired(store_keyring(s), retired_seen, &r)) != FSD_OK)
		return rc;
	for (size_t i = 0; rc == FSD_OK && i < r.n; i++)
		if (i == 0 || strcmp(r.names[i], r.names[i - 1]) != 0)
			rc = finish_rekey(s, r.names[i]);
	return rc;
}

fsd_err
purge_run(store *s, const char *collection, const char *id, bool whole_case, const char *actor,
          purge_report *rep)
{
	store_txn *t = NULL;
	char name[FSS_DEK_NAME_MAX + 1], rekeyed[FSS_DEK_NAME_MAX + 1] = "";
	bool found = false;
	struct id_set contacts = {0};
	fsd_err rc = store_write_begin(s, &t);
	int64_t now = clock_wall_ms();

	memset(rep, 0, sizeof(*rep));
	if (rc != FSD_OK)
		return rc;
	if (whole_case || strcmp(collection, "case") == 0) {
		const char *case_id = id;
		if ((rc = case_contacts(t, case_id, &contacts)) != FSD_OK)
			goto fail;
		if ((rc = mark_purged(t, "case", case_id, &found)) != FSD_OK)
			goto fail;
		rep->records += found;
		for (size_t i = 0; i < contacts.n; i++) {
			if ((rc = mark_purged(t, "contact", contacts.ids[i], &found)) != FSD_OK ||
			    (rc = caseindex_del(t, case_id, contacts.ids[i])) != FSD_OK)
				goto fail;
			rep->records += found;
		}
		uint64_t first_new = events_last_seq(t) + 1;
		size_t n_events = 0;
		if ((rc = reminders_erase_case(t, case_id, now, &rep->reminders)) != FSD_OK ||
		    (rc = events_erase_case(t, case_id, first_new, &n_events)) != FSD_OK)
			goto fail;
		rc = audit_append(t, actor, "purge", "case", case_id,
		                  whole_case ? "case and contacts" : "");
		if (rc != FSD_OK)
			goto fail;
		if (store_keyring(s) != NULL) {
			if (!fss_dek_case(case_id, name)) {
				rc = FSD_INVALID;
				goto fail;
			}
			if ((rc = keyring_destroy(store_keyring(s), name)) != FSD_OK)
				goto fail;
			rep->keys_destroyed++;
		}
	} else if (strcmp(collection, "contact") == 0) {
		char case_id[FSP_ID_MAX + 1];
		contact_case(t, id, case_id);
		if ((rc = mark_purged(t, "contact", id, &found)) != FSD_OK)
			goto fail;
		rep->records += found;
		if (case_id[0] != '\0') {
			if ((rc = caseindex_del(t, case_id, id)) != FSD_OK)
				goto fail;
			if (store_keyring(s) != NULL) {
				if ((rc = rekey_case(s, t, case_id)) != FSD_OK ||
				    !fss_dek_case(case_id, rekeyed))
					goto fail;
				rep->keys_destroyed++;
			}
		}
		if ((rc = audit_append(t, actor, "purge", "contact", id, "")) != FSD_OK)
			goto fail;
	} else {
		if ((rc = mark_purged(t, collection, id, &found)) != FSD_OK)
			goto fail;
		rep->records += found;
		if ((rc = audit_append(t, actor, "purge", collection, id, "")) != FSD_OK)
			goto fail;
		if (store_keyring(s) != NULL) {
			if (!fss_dek_record(collection, id, name)) {
				rc = FSD_INVALID;
				goto fail;
			}
			if ((rc = keyring_destroy(store_keyring(s), name)) != FSD_OK)
				goto fail;
			rep->keys_destroyed++;
		}
	}
	free(contacts.ids);
	if ((rc = store_commit(&t)) != FSD_OK || rekeyed[0] == '\0')
		return rc;
	/* committed: the old case key goes for good (and physically) */
	if (getenv("FIELDSYNC_TEST_CRASH_AT") != NULL &&
	    strcmp(getenv("FIELDSYNC_TEST_CRASH_AT"), "rekey-committed") == 0)
		_exit(86); /* the crash tests' kill -9 (keyring.c) */
	return finish_rekey(s, rekeyed);
fail:
	free(contacts.ids);
	store_abort(&t);
	return rc;
}
