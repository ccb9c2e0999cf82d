/*
 * cmd_seal.c: `fieldsyncd seal` (admin layer; admin.h). Seals what a
 * production store holds in clear: payloads and reminder rows written
 * before encryption was turned on (issue 10, break 8), which `verify`
 * reports (admin_unsealed_scan). Each record found is read and written back
 * in place (records_get, records_rewrite: same seq, the feed untouched),
 * which seals it with its data key; each case with a clear reminder row has
 * its rows copied and written back sealed (reminder_rows_copy_*). One write
 * transaction with an audit entry: while the daemon runs or not (LMDB
 * serialises the writers, so nothing is written in between). Needs the
 * master key (--master-key-file or FIELDSYNC_MASTER_KEY). The old clear
 * bytes stay in free pages of data.mdb until LMDB reuses them: copy the
 * store compacted (`fieldsyncd backup`, then `restore`) to drop them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "audit.h"
#include "fieldsync/merge.h"
#include "records.h"
#include "reminder_rows.h"

struct found {
	char (*coll)[FSP_COLLECTION_MAX + 1]; /* "" for a case's reminder rows */
	char (*id)[FSP_ID_MAX + 1];
	size_t n, cap;
	bool oom;
};

static bool
found_add(void *arg, const char *collection, const char *id)
{
	struct found *f = arg;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		void *a = realloc(f->coll, cap * sizeof(*f->coll));
		if (a != NULL)
			f->coll = a;
		void *b = realloc(f->id, cap * sizeof(*f->id));
		if (b != NULL)
			f->id = b;
		if (a == NULL || b == NULL) {
			f->oom = true;
			return false;
		}
		f->cap = cap;
	}
	snprintf(f->coll[f->n], sizeof(f->coll[f->n]), "%s", collection ? collection : "");
	snprintf(f->id[f->n], sizeof(f->id[f->n]), "%s", id);
	f->n++;
	return true;
}

struct seal_job {
	const char *actor;
	size_t records, cases;
};

static fsd_err
seal_txn(store_txn *t, void *arg)
{
	struct seal_job *j = arg;
	struct found f = {0};
	size_t n = 0;
	char detail[80];
	fsd_err rc = admin_unsealed_scan(t, found_add, &f, &n);
	if (rc == FSD_OK && f.oom)
		rc = FSD_NOMEM;
	j->records = j->cases = 0;
	for (size_t i = 0; rc == FSD_OK && i < f.n; i++) {
		if (f.coll[i][0] != '\0') {
			fs_record_state *rs = NULL;
			if ((rc = records_get(t, f.coll[i], f.id[i], &rs)) == FSD_OK)
				rc = records_rewrite(t, rs);
			records_free(rs);
			j->records += rc == FSD_OK;
		} else if (i == 0 || strcmp(f.id[i], f.id[i - 1]) != 0 || f.coll[i - 1][0]) {
			reminder_rows_copy *rows = NULL;
			if ((rc = reminder_rows_copy_case(t, f.id[i], &rows)) == FSD_OK)
				rc = reminder_rows_copy_write(t, f.id[i], rows);
			reminder_rows_copy_free(&rows);
			j->cases += rc == FSD_OK;
		}
	}
	snprintf(detail, sizeof(detail), "records=%zu cases_with_rows=%zu", j->records, j->cases);
	if (rc == FSD_OK)
		rc = audit_append(t, j->actor, "seal", "", "", detail);
	free(f.coll);
	free(f.id);
	return rc;
}

int
admin_cmd_seal(const admin_args *a)
{
	const char *dir = admin_opt(a, "data-dir");
	bool needed = false;
	struct seal_job j = {.actor = admin_actor(a)};
	store *s = admin_open_store(dir, false);
	if (s == NULL)
		return FSD_EXIT_FAIL;
	keyring *k = admin_open_keyring(dir, admin_opt(a, "master-key-file"), &needed);
	if (k == NULL) {
		if (!needed)
			fprintf(stderr,
			        "fieldsyncd seal: give the master key (--master-key-file or "
			        "FIELDSYNC_MASTER_KEY): it seals with it\n");
		store_close(&s);
		return FSD_EXIT_USAGE;
	}
	store_set_keyring(s, k);
	fsd_err rc = admin_write_txn(s, seal_txn, &j);
	store_close(&s);
	keyring_close(&k);
	if (rc != FSD_OK) {
		fprintf(stderr, "fieldsyncd seal: %s (nothing was changed)\n", fsd_strerror(rc));
		return FSD_EXIT_FAIL;
	}
	printf("sealed %zu record(s) and the reminder rows of %zu case(s) that were in clear\n",
	       j.records, j.cases);
	return FSD_EXIT_OK;
}
