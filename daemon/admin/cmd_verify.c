/*
 * cmd_verify.c: `fieldsyncd verify` (admin layer; admin.h); restore runs it
 * on what it restored (admin_verify_run). Checks a store:
 *  (1) every record decodes and its key names it; its payloads open (with
 *      a master key; without one, sealed payloads are counted "not
 *      checked"); live case and contact payloads decode as Case and Contact;
 *      a record that does not decode or open is reported "unreadable" by
 *      collection/id and counted ("unreadable records: N"): the daemon
 *      skips it in Pull (issue 11, break 5);
 *  (2) the feed holds each record exactly once, at the record's seq, and
 *      meta seq covers the highest seq;
 *  (3) every reminder row's key parses and the row decodes, and every
 *      case's stored reminder rows match what the rules say
 *      (reminders_verify_case); skipped when the data is sealed and no
 *      master key was given;
 *  (4) in a production store (a key store or server keys), no payload and
 *      no reminder row is stored in clear (written before encryption was
 *      turned on): each one is a problem that `fieldsyncd seal` fixes
 *      (admin_unsealed_scan, shared with cmd_seal.c);
 *  (5) no record is larger than a pull page (--max-page-bytes, as the
 *      daemon's; its stored size, sealed payloads included).
 * Problems are printed on stdout as "problem: ...", naming the record or
 * reminder by id, never payload content; then the counts. Exit 1 on any.
 *
 * Runs while the daemon runs or not: one read transaction through the
 * store API. Verify asks the layer that owns a format to check it:
 *   records_check        records, payloads, feed (records.c)
 *   store_last_seq       the meta "seq" counter (store.c)
 *   reminder_rows_check  reminder rows, and which cases have any
 *                        (reminder_rows.c)
 *   reminders_verify_case  a case's rows against its rules (reminders_verify.c)
 * This file only decodes the typed payloads (casework.pb-c.h) and prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
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
#include "sys.h"

/* What a verification has seen and counted so far. */
struct verify {
	records_check_counts rec;
	char **cases; /* case ids to check reminders of */
	size_t n_cases, cap_cases;
	size_t problems, rows, reminders;
	bool oom;
};

static void
problem(void *arg, const char *who, const char *what)
{
	struct verify *v = arg;
	v->problems++;
	printf("problem: %s: %s\n", who, what);
}

static bool
case_add(void *arg, const char *id)
{
	struct verify *v = arg;
	if (v->n_cases == v->cap_cases) {
		size_t cap = v->cap_cases ? v->cap_cases * 2 : 64;
		char **c = realloc(v->cases, cap * sizeof(*c));
		if (c == NULL)
			return false;
		v->cases = c;
		v->cap_cases = cap;
	}
	char *s = strdup(id);
	if (s == NULL)
		return false;
	v->cases[v->n_cases++] = s;
	return true;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* (5) the daemon's --max-page-bytes: --max-page-bytes, FIELDSYNC_MAX_PAGE_BYTES,
 * or the default (config.c) */
static uint64_t g_page_max = 32ULL << 20;

static void
page_max_set(const char *v)
{
	if (v == NULL || v[0] == '\0')
		v = getenv("FIELDSYNC_MAX_PAGE_BYTES");
	if (v == NULL || v[0] == '\0')
		return;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	uint64_t mul = *end == 'K' || *end == 'k'   ? 1ULL << 10
	               : *end == 'M' || *end == 'm' ? 1ULL << 20
	               : *end == 'G' || *end == 'g' ? 1ULL << 30
	                                            : 1;
	if (n > 0 && n <= UINT64_MAX / mul)
		g_page_max = n * mul;
}

/* (1) every case record is a case whose reminders (3) checks; (5) a
 * record no pull page can carry (issue 11: its devices get TOO_LARGE). */
static bool
record_seen(void *arg, const fs_record_state *rs)
{
	size_t sz = fieldsync__v1__record_state__get_packed_size(rs) + 8;
	if (sz > g_page_max) {
		char who[FSP_COLLECTION_MAX + FSP_ID_MAX + 40], what[200];
		snprintf(who, sizeof(who), "record %s/%s", rs->collection, rs->id);
		snprintf(what, sizeof(what),
		         "%zu bytes in %zu siblings, larger than a pull page (--max-page-bytes "
		         "%llu): its devices cannot pull it; resolve its conflict",
		         sz, rs->n_siblings, (unsigned long long)g_page_max);
		problem(arg, who, what);
	}
	return strcmp(rs->collection, "case") != 0 || case_add(arg, rs->id);
}

/* (1) a live case or contact payload decodes as its type. */
static void
payload_seen(void *arg, const fs_record_state *rs, const char *name, const uint8_t *p, size_t pl)
{
	char who[FSP_COLLECTION_MAX + FSP_ID_MAX + 100];
	snprintf(who, sizeof(who), "record %s", name);
	if (strcmp(rs->collection, "case") == 0) {
		Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, pl, p);
		if (c == NULL)
			problem(arg, who, "a live payload does not decode as a Case");
		else
			fieldsync__v1__case__free_unpacked(c, NULL);
	} else if (strcmp(rs->collection, "contact") == 0) {
		Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, pl, p);
		if (c == NULL)
			problem(arg, who, "a live payload does not decode as a Contact");
		else
			fieldsync__v1__contact__free_unpacked(c, NULL);
	}
}

/* (1), (2) and the rows of (3), in read txn t. False with a sentence in
 * err when the store cannot be read. */
static bool
tables_check(store_txn *t, struct verify *v, bool encrypted, char *err, size_t errlen)
{
	records_check_fns rf = {problem, record_seen, payload_seen, v, encrypted};
	reminder_rows_check_fns mf = {problem, case_add, v};
	fsd_err rc = records_check(t, &rf, &v->rec);
	uint64_t meta_seq = store_last_seq(t);

	if (rc != FSD_OK) {
		snprintf(err, errlen, "reading the records: %s", fsd_strerror(rc));
		return false;
	}
	if (meta_seq < v->rec.max_seq) {
		char a[64], b[96];
		snprintf(a, sizeof(a), "meta seq %llu", (unsigned long long)meta_seq);
		snprintf(b, sizeof(b), "it is below the highest seq in use, %llu",
		         (unsigned long long)v->rec.max_seq);
		problem(v, a, b);
	}
	if ((rc = reminder_rows_check(t, &mf, &v->rows)) != FSD_OK) {
		snprintf(err, errlen, "reading the reminder rows: %s", fsd_strerror(rc));
		return false;
	}
	return true;
}

/* ---- (4) values stored in clear --------------------------------------------- */

struct unsealed_walk {
	admin_unsealed_fn fn;
	void *arg;
	size_t n;
	bool stop;
};

static bool
record_unsealed(void *arg, const char *collection, const char *id)
{
	struct unsealed_walk *w = arg;
	if (!w->fn(w->arg, collection, id))
		w->stop = true;
	return !w->stop;
}

static bool
row_unsealed(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct unsealed_walk *w = arg;
	char case_id[FSP_ID_MAX + 1];
	if (klen < 1 || key[0] == 0 || key[0] > FSP_ID_MAX || (size_t)key[0] + 1 > klen)
		return true; /* (3) reports it */
	if (vlen == 0 || fss_is_sealed(val, vlen))
		return true;
	memcpy(case_id, key + 1, key[0]);
	case_id[key[0]] = '\0';
	w->n++;
	if (!w->fn(w->arg, NULL, case_id))
		return !(w->stop = true);
	return true;
}

fsd_err
admin_unsealed_scan(store_txn *t, admin_unsealed_fn fn, void *arg, size_t *n)
{
	struct unsealed_walk w = {fn, arg, 0, false};
	fsd_err rc = records_clear_scan(t, record_unsealed, &w, &w.n);
	if (rc == FSD_OK && !w.stop)
		rc = store_kv_scan(t, &reminders_table, NULL, 0, NULL, 0, row_unsealed, &w);
	*n = w.n;
	return rc;
}

static bool
unsealed_problem(void *arg, const char *collection, const char *id)
{
	char who[FSP_COLLECTION_MAX + FSP_ID_MAX + 40];
	if (collection != NULL)
		snprintf(who, sizeof(who), "record %s/%s", collection, id);
	else
		snprintf(who, sizeof(who), "a reminder row of case %s", id);
	problem(arg, who,
	        "stored in clear in a production store (written before encryption was on): "
	        "run `fieldsyncd seal`");
	return true;
}

/* ---- (3) reminders, through the store API ---------------------------------- */

static void
reminder_problem(void *arg, const char *case_id, const char *reminder_id, const char *what)
{
	char who[FSP_ID_MAX + 400];
	snprintf(who, sizeof(who), "reminder %s of case %s", reminder_id, case_id);
	problem(arg, who, what);
}

/* (3) every case's reminder rows match its rules, in read txn t. */
static bool
verify_reminders(store_txn *t, const char *rules, const char *tz, struct verify *v, char *err,
                 size_t errlen)
{
	config conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.time_zone, sizeof(conf.time_zone), "%s", tz);
	snprintf(conf.rules_file, sizeof(conf.rules_file), "%s", rules ? rules : "");
	reminders *r = NULL;
	if (reminders_new(&conf, &r, err, errlen) != FSD_OK)
		return false;
	if (v->n_cases > 0)
		qsort(v->cases, v->n_cases, sizeof(*v->cases), str_cmp);
	for (size_t i = 0; i < v->n_cases; i++) {
		if (i > 0 && strcmp(v->cases[i], v->cases[i - 1]) == 0)
			continue;
		fsd_err rc = reminders_verify_case(r, t, v->cases[i], reminder_problem, v,
		                                   &v->reminders);
		if (rc != FSD_OK) {
			char who[FSP_ID_MAX + 16], what[160];
			snprintf(who, sizeof(who), "record case/%s", v->cases[i]);
			snprintf(what, sizeof(what), "its reminders cannot be checked: %s",
			         fsd_strerror(rc));
			problem(v, who, what);
		}
	}
	reminders_free(&r);
	return true;
}

static void
verify_free(struct verify *v)
{
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
	store *s = NULL;
	store_txn *t = NULL;
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
	if (!sys_file_exists(path)) {
		fprintf(stderr, "fieldsyncd verify: %s holds no store (no data.mdb)\n", dir);
		return FSD_EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	encrypted = sys_file_exists(path);
	if (have_key) {
		if (keyring_open(dir, key_file, env_key, &k, err, sizeof(err)) != FSD_OK) {
			fprintf(stderr, "fieldsyncd verify: %s\n", err);
			return FSD_EXIT_FAIL;
		}
	}
	if ((s = store_open(dir, ADMIN_MAP_SIZE, ADMIN_MAP_SIZE_MAX)) == NULL ||
	    store_read_begin(s, &t) != FSD_OK) {
		fprintf(stderr, "fieldsyncd verify: cannot open the store in %s\n", dir);
		goto out;
	}
	store_set_keyring(s, k);
	if (!tables_check(t, &v, encrypted, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/server.key", dir);
	if (encrypted || sys_file_exists(path)) { /* (4) a production store */
		size_t n_clear = 0;
		fsd_err rc = admin_unsealed_scan(t, unsealed_problem, &v, &n_clear);
		if (rc != FSD_OK) {
			fprintf(stderr, "fieldsyncd verify: looking for values in clear: %s\n",
			        fsd_strerror(rc));
			goto out;
		}
		if (n_clear > 0)
			printf("stored in clear: %zu (run `fieldsyncd seal`)\n", n_clear);
	}
	bool rem_checked = k != NULL || (!encrypted && v.rec.not_checked == 0);
	if (rem_checked && !verify_reminders(t, rules, tz, &v, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd verify: %s\n", err);
		goto out;
	}
	printf("records: %zu\nfeed entries: %zu\npayloads: %zu\n", v.rec.records,
	       v.rec.feed_entries, v.rec.payloads);
	if (v.rec.unreadable > 0)
		printf("unreadable records: %zu (skipped in Pull; restore them from a backup "
		       "taken after their last write, or purge them)\n",
		       v.rec.unreadable);
	if (v.rec.not_checked > 0)
		printf("payloads not checked: %zu (sealed: give --master-key-file)\n",
		       v.rec.not_checked);
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
	store_read_end(&t);
	store_close(&s);
	verify_free(&v);
	keyring_close(&k);
	return code;
}

int
admin_cmd_verify(const admin_args *a)
{
	page_max_set(admin_opt(a, "max-page-bytes"));
	return admin_verify_run(admin_opt(a, "data-dir"), admin_opt(a, "master-key-file"),
	                        admin_opt(a, "rules"), admin_opt(a, "time-zone"));
}
