/*
 * cmd_verify.c: `fieldsyncd verify` (admin layer; admin.h); restore runs it
 * on what it restored (admin_verify_run). Checks a store:
 *  (1) every record decodes and its key names it; its payloads open (with
 *      a master key; without one, sealed payloads are counted "not
 *      checked"); live case and contact payloads decode as Case and Contact;
 *  (2) the feed holds each record exactly once, at the record's seq, and
 *      meta seq covers the highest seq;
 *  (3) through the store API (the way reminders.c loads a case), every
 *      case's stored reminder rows match what the rules say
 *      (reminders_verify_case); skipped when the data is sealed and no
 *      master key was given.
 * Problems are printed on stdout as "problem: ...", naming the record or
 * reminder by id, never payload content; then the counts. Exit 1 on any.
 *
 * Runs while the daemon runs or not: read transactions only.
 *
 * RAW TABLE WALKS. (1), (2) and the list of cases that have reminder rows
 * are read from the LMDB tables directly, in one read transaction
 * (raw_tables_check), by one function per table:
 *   walk_records_table   "records"   (record key and RecordState: records layer)
 *   walk_feed_table      "feed"      (the feed index: records layer)
 *   read_meta_seq        "meta"      ("seq" counter: store)
 *   walk_reminder_rows   "reminders" (row keys: reminders)
 * They decode formats other layers own. They should move to those layers,
 * as check functions this command calls ("verify asks the layer that owns a
 * format to check it"); then <lmdb.h> leaves this file.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "caseindex.h"
#include "config.h"
#include "fieldsync/keys.h"
#include "fieldsync/seal.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "keyring.h"
#include "records.h"
#include "reminder_rows.h"
#include "reminders.h"
#include "schema.h"
#include "store.h"

#define WALK_OOM (-1) /* a walk's result besides 0 and LMDB codes: out of memory */

/* A record seen in the records table, to match against the feed. */
struct vrec {
	uint8_t *key;
	size_t klen;
	uint64_t seq;
	bool decoded;
	unsigned in_feed;
};

/* What a verification has seen and counted so far. */
struct verify {
	struct vrec *recs;
	size_t n_recs, cap_recs;
	char **cases; /* case ids to check reminders of */
	size_t n_cases, cap_cases;
	size_t problems, feed_entries, payloads, not_checked, reminders;
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

static void
problem(struct verify *v, const char *fmt, const char *who, const char *what)
{
	v->problems++;
	printf("problem: ");
	printf(fmt, who, what);
	printf("\n");
}

static int
key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c != 0 ? c : al < bl ? -1 : al > bl;
}

static bool
case_add(struct verify *v, const char *id, size_t len)
{
	if (v->n_cases == v->cap_cases) {
		size_t cap = v->cap_cases ? v->cap_cases * 2 : 64;
		char **c = realloc(v->cases, cap * sizeof(*c));
		if (c == NULL)
			return false;
		v->cases = c;
		v->cap_cases = cap;
	}
	char *s = malloc(len + 1);
	if (s == NULL)
		return false;
	memcpy(s, id, len);
	s[len] = '\0';
	v->cases[v->n_cases++] = s;
	return true;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one record's payloads: they open, typed ones decode. */
static void
check_payloads(struct verify *v, keyring *k, const fs_record_state *rs, const char *name)
{
	uint8_t aad[FSS_RECORD_AAD_MAX];
	size_t al = fss_record_aad(aad, rs->collection, rs->id);
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const fsp_record *sib = rs->siblings[i];
		const uint8_t *p = sib->payload.data;
		size_t pl = sib->payload.len;
		uint8_t *plain = NULL;
		v->payloads++;
		if (fss_classify(p, pl) != FSS_PLAIN) {
			if (k == NULL) {
				v->not_checked++;
				continue;
			}
			size_t ol = 0;
			fsd_err r = keyring_open_value(k, aad, al, p, pl, &plain, &ol);
			if (r == FSD_NOKEY) {
				problem(v, "record %s: %s", name, "a payload's data key is gone");
				continue;
			}
			if (r != FSD_OK) {
				problem(v, "record %s: %s", name,
				        "a sealed payload does not verify");
				continue;
			}
			if (plain != NULL) {
				p = plain;
				pl = ol;
			}
		}
		if (!sib->deleted && strcmp(rs->collection, "case") == 0) {
			Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, pl, p);
			if (c == NULL)
				problem(v, "record %s: %s", name,
				        "a live payload does not decode as a Case");
			else
				fieldsync__v1__case__free_unpacked(c, NULL);
		} else if (!sib->deleted && strcmp(rs->collection, "contact") == 0) {
			Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, pl, p);
			if (c == NULL)
				problem(v, "record %s: %s", name,
				        "a live payload does not decode as a Contact");
			else
				fieldsync__v1__contact__free_unpacked(c, NULL);
		}
		free(plain);
	}
}

/* ---- raw table walks: to move to the layers owning these tables ----------- */

/* Adds a record key to v->recs (in LMDB's key order); NULL when out of memory. */
static struct vrec *
rec_add(struct verify *v, const MDB_val *key)
{
	if (v->n_recs == v->cap_recs) {
		size_t cap = v->cap_recs ? v->cap_recs * 2 : 1024;
		struct vrec *r = realloc(v->recs, cap * sizeof(*r));
		if (r == NULL)
			return NULL;
		v->recs = r;
		v->cap_recs = cap;
	}
	struct vrec *r = &v->recs[v->n_recs];
	memset(r, 0, sizeof(*r));
	if ((r->key = malloc(key->mv_size ? key->mv_size : 1)) == NULL)
		return NULL;
	memcpy(r->key, key->mv_data, key->mv_size);
	r->klen = key->mv_size;
	v->n_recs++;
	return r;
}

/*
 * (1) "records": [u8 len][collection][id] -> RecordState. Every record
 * decodes, its key names it, its payloads open; live cases are noted for
 * (3). Raises *max_seq. 0, WALK_OOM or an LMDB code.
 * To move to the records layer (it owns the record key and value).
 */
static int
walk_records_table(MDB_txn *txn, MDB_dbi recs, keyring *k, struct verify *v, uint64_t *max_seq)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(txn, recs, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80];
		key_name(key.mv_data, key.mv_size, name, sizeof(name));
		struct vrec *r = rec_add(v, &key);
		if (r == NULL) {
			rc = WALK_OOM;
			break;
		}
		fs_record_state *rs =
			fieldsync__v1__record_state__unpack(NULL, val.mv_size, val.mv_data);
		if (rs == NULL) {
			problem(v, "record %s: %s", name, "the stored record does not decode");
			continue;
		}
		r->decoded = true;
		r->seq = rs->seq;
		if (rs->seq > *max_seq)
			*max_seq = rs->seq;
		const uint8_t *kb = key.mv_data;
		size_t cl = strlen(rs->collection), il = strlen(rs->id);
		bool oom = false;
		if (key.mv_size != 1 + cl + il || kb[0] != cl ||
		    memcmp(kb + 1, rs->collection, cl) != 0 || memcmp(kb + 1 + cl, rs->id, il) != 0)
			problem(v, "record %s: %s", name,
			        "the record stored under this key names another");
		else if (strcmp(rs->collection, "case") == 0 && !case_add(v, rs->id, il))
			oom = true;
		if (!oom)
			check_payloads(v, k, rs, name);
		fieldsync__v1__record_state__free_unpacked(rs, NULL);
		if (oom) {
			rc = WALK_OOM;
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * (2) "feed": u64 BE seq -> record key. Each entry points at a stored
 * record, at the seq the record says; each record is in it exactly once.
 * Raises *max_seq. 0 or an LMDB code. To move to the records layer (the
 * feed index is kept with the record table).
 */
static int
walk_feed_table(MDB_txn *txn, MDB_dbi feed, struct verify *v, uint64_t *max_seq)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(txn, feed, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80], seqs[32];
		uint64_t seq = key.mv_size == 8 ? fsk_get_be64(key.mv_data) : 0;
		v->feed_entries++;
		key_name(val.mv_data, val.mv_size, name, sizeof(name));
		snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)seq);
		if (seq > *max_seq)
			*max_seq = seq;
		size_t lo = 0, hi = v->n_recs; /* v->recs is in key order */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (key_cmp(v->recs[mid].key, v->recs[mid].klen, val.mv_data, val.mv_size) <
			    0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == v->n_recs ||
		    key_cmp(v->recs[lo].key, v->recs[lo].klen, val.mv_data, val.mv_size) != 0) {
			problem(v, "feed entry at seq %s: it points at %s, which is not stored",
			        seqs, name);
			continue;
		}
		struct vrec *r = &v->recs[lo];
		if (++r->in_feed > 1)
			problem(v, "record %s: %s", name, "it is in the feed more than once");
		if (r->decoded && r->seq != seq) {
			char why[96];
			snprintf(why, sizeof(why), "the feed has it at seq %s but it says seq %llu",
			         seqs, (unsigned long long)r->seq);
			problem(v, "record %s: %s", name, why);
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	for (size_t i = 0; i < v->n_recs; i++)
		if (v->recs[i].in_feed == 0) {
			char name[1 + FSP_COLLECTION_MAX + FSP_ID_MAX + 80];
			key_name(v->recs[i].key, v->recs[i].klen, name, sizeof(name));
			problem(v, "record %s: %s", name, "it is not in the feed");
		}
	return 0;
}

/* "meta": the "seq" counter (u64, little-endian as store.c writes it); 0
 * when absent or malformed. To move to the store (it owns the counters). */
static uint64_t
read_meta_seq(MDB_txn *txn, MDB_dbi meta)
{
	MDB_val key = {.mv_size = 3, .mv_data = "seq"}, val;
	uint64_t seq = 0;
	if (mdb_get(txn, meta, &key, &val) == 0 && val.mv_size == 8)
		memcpy(&seq, val.mv_data, 8);
	return seq;
}

/*
 * "reminders": [u8 len][case_id][reminder_id] -> row. Adds the case of
 * every row to v->cases, for (3). 0, WALK_OOM or an LMDB code. To move to
 * the reminders (they own the row keys).
 */
static int
walk_reminder_rows(MDB_txn *txn, MDB_dbi rems, struct verify *v)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(txn, rems, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		const uint8_t *kb = key.mv_data;
		if (key.mv_size < 1 || (size_t)kb[0] + 1 > key.mv_size) {
			problem(v, "reminder row %s: %s", "(malformed key)",
			        "its key does not parse");
			continue;
		}
		if (!case_add(v, (const char *)kb + 1, kb[0])) {
			rc = WALK_OOM;
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* (1) and (2), and the cases with reminder rows, in one read txn of the raw
 * tables of dir. False with a sentence in err when the store cannot be read. */
static bool
raw_tables_check(const char *dir, keyring *k, struct verify *v, char *err, size_t errlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi recs, feed, meta, rems;
	uint64_t max_seq = 0, meta_seq;
	int rc;
	bool ok = false;

	if ((rc = admin_env_open_ro(dir, &env)) == 0 &&
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == MDB_MAP_RESIZED &&
	    (rc = mdb_env_set_mapsize(env, 0)) == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc != 0 || (rc = mdb_dbi_open(txn, "records", 0, &recs)) != 0 ||
	    (rc = mdb_dbi_open(txn, "feed", 0, &feed)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "reminders", 0, &rems)) != 0) {
		snprintf(err, errlen, "cannot read the store in %s: %s", dir, mdb_strerror(rc));
		goto out;
	}
	if ((rc = walk_records_table(txn, recs, k, v, &max_seq)) != 0 ||
	    (rc = walk_feed_table(txn, feed, v, &max_seq)) != 0)
		goto fail;
	if ((meta_seq = read_meta_seq(txn, meta)) < max_seq) {
		char a[32], b[64];
		snprintf(a, sizeof(a), "%llu", (unsigned long long)meta_seq);
		snprintf(b, sizeof(b), "below the highest seq in use, %llu",
		         (unsigned long long)max_seq);
		problem(v, "meta seq %s is %s", a, b);
	}
	if ((rc = walk_reminder_rows(txn, rems, v)) != 0)
		goto fail;
	ok = true;
	goto out;
fail:
	if (rc == WALK_OOM)
		snprintf(err, errlen, "out of memory");
	else
		snprintf(err, errlen, "reading the store: %s", mdb_strerror(rc));
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	return ok;
}

/* ---- (3) reminders, through the store API ---------------------------------- */

static void
reminder_problem(void *arg, const char *case_id, const char *reminder_id, const char *what)
{
	struct verify *v = arg;
	char who[FSP_ID_MAX + 400];
	snprintf(who, sizeof(who), "%s of case %s", reminder_id, case_id);
	problem(v, "reminder %s: %s", who, what);
}

/* (3) every case's reminder rows match its rules, through the store API. */
static bool
verify_reminders(const char *dir, keyring *k, const char *rules, const char *tz, struct verify *v,
                 char *err, size_t errlen)
{
	config conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.time_zone, sizeof(conf.time_zone), "%s", tz);
	snprintf(conf.rules_file, sizeof(conf.rules_file), "%s", rules ? rules : "");
	reminders *r = NULL;
	if (reminders_new(&conf, &r, err, errlen) != FSD_OK)
		return false;
	store *s = store_open(dir, ADMIN_MAP_SIZE, ADMIN_MAP_SIZE_MAX);
	store_txn *t = NULL;
	if (s == NULL || store_read_begin(s, &t) != FSD_OK) {
		snprintf(err, errlen, "cannot open the store in %s", dir);
		store_close(&s);
		reminders_free(&r);
		return false;
	}
	store_set_keyring(s, k);
	if (v->n_cases > 0)
		qsort(v->cases, v->n_cases, sizeof(*v->cases), str_cmp);
	for (size_t i = 0; i < v->n_cases; i++) {
		if (i > 0 && strcmp(v->cases[i], v->cases[i - 1]) == 0)
			continue;
		fsd_err rc = reminders_verify_case(r, t, v->cases[i], reminder_problem, v,
		                                   &v->reminders);
		if (rc != FSD_OK) {
			char who[FSP_ID_MAX + 8];
			snprintf(who, sizeof(who), "case/%s", v->cases[i]);
			problem(v, "record %s: its reminders cannot be checked: %s", who,
			        admin_store_rc_text(rc));
		}
	}
	store_read_end(&t);
	store_close(&s);
	reminders_free(&r);
	return true;
}

static void
verify_free(struct verify *v)
{
	for (size_t i = 0; i < v->n_recs; i++)
		free(v->recs[i].key);
	free(v->recs);
	for (size_t i = 0; i < v->n_cases; i++)
		free(v->cases[i]);
	free(v->cases);
}

int
admin_verify_run(const char *dir, const char *key_file, const char *rules, const char *tz)
{
	char path[600], err[1200];
	struct verify v = {0};
	keyring *k = NULL;
	const char *env_key = getenv("FIELDSYNC_MASTER_KEY");
	bool encrypted, have_key = (key_file != NULL && key_file[0] != '\0') ||
	                           (env_key != NULL && env_key[0] != '\0');
	int code = FSD_EXIT_FAIL;

	if (tz == NULL || tz[0] == '\0')
		tz = getenv("FIELDSYNC_TIME_ZONE");
	if (tz == NULL || tz[0] == '\0')
		tz = "Europe/Copenhagen";
	if (rules == NULL || rules[0] == '\0')
		rules = getenv("FIELDSYNC_RULES");
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!admin_file_exists(path)) {
		fprintf(stderr, "fieldsyncd verify: %s holds no store (no data.mdb)\n", dir);
		return FSD_EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	encrypted = admin_file_exists(path);
	if (have_key) {
		if (keyring_open(dir, key_file, env_key, &k, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd verify: %s\n", err);
			return FSD_EXIT_FAIL;
		}
	}
	if (!raw_tables_check(dir, k, &v, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	bool rem_checked = k != NULL || (!encrypted && v.not_checked == 0);
	if (rem_checked && !verify_reminders(dir, k, rules, tz, &v, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	printf("records: %zu\nfeed entries: %zu\npayloads: %zu\n", v.n_recs, v.feed_entries,
	       v.payloads);
	if (v.not_checked > 0)
		printf("payloads not checked: %zu (sealed: give --master-key-file)\n",
		       v.not_checked);
	if (rem_checked)
		printf("reminders checked: %zu\n", v.reminders);
	else
		printf("reminders checked: none (they are sealed: give --master-key-file)\n");
	printf("problems: %zu\n", v.problems);
	fflush(stdout);
	code = v.problems == 0 ? FSD_EXIT_OK : FSD_EXIT_FAIL;
	if (code != 0)
		fprintf(stderr, "fieldsyncd verify: %zu problem(s) in %s\n", v.problems, dir);
out:
	verify_free(&v);
	keyring_close(&k);
	return code;
}

int
admin_cmd_verify(const admin_args *a)
{
	return admin_verify_run(admin_opt(a, "data-dir"), admin_opt(a, "master-key-file"),
	                        admin_opt(a, "rules"), admin_opt(a, "time-zone"));
}
