/*
 * Property test of the merge rule (docs/protocol.md §3, proto/merge.c).
 *
 * Random histories: 3..6 replicas edit the same 2..4 records offline, each
 * with its own sibling sets, making versions the way docs/protocol.md says
 * (join of what it holds, plus one on its own replica; some edits are
 * tombstones). They exchange values in random orders, with duplicates and
 * stale deliveries, and apply them with fsp_merge(). After every merge the
 * replica's set is checked against a reference model that uses its own
 * dense dot maps, not fsp_vv_compare(); at the end everyone gets everything
 * and all replicas must hold the same set, equal to the maximal values of
 * all values ever created for the record.
 *
 * The seed is printed; FS_PROPERTY_SEED=<n> replays a run, and
 * FS_PROPERTY_RUNS=<n> changes the number of histories (default 1000).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fieldsync/merge.h"

#define MAX_REPLICAS 6
#define MAX_RECORDS 4
#define MAX_EDITS 48 /* per history, all records together */
#define MAX_VALUES MAX_EDITS
#define DEFAULT_RUNS 1000

/* ---- PRNG (splitmix64) -------------------------------------------------- */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int
rng_range(int lo, int hi)
{
	return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

/* True with probability pct/100. */
static bool
rng_pct(int pct)
{
	return rng_range(0, 99) < pct;
}

static void
shuffle(int *a, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rng_range(0, i), t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

/* ---- the world of one history ------------------------------------------ */

/*
 * One value ever created. The record is the first member so a pointer
 * returned by fsp_merge() leads back to its value. `dense` is the reference
 * model's version: the counter of every replica, by replica index.
 */
typedef struct {
	fsp_record rec;
	int id;      /* index in world.values */
	int record;  /* which record id */
	uint64_t dense[MAX_REPLICAS];
	char payload[48];
	char record_id[16];
} value;

typedef struct {
	fsp_record *sib[MAX_VALUES + 1];
	int n;
	bool seen[MAX_VALUES]; /* by value id: produced or received */
} replica_record;

typedef struct {
	const char *name;
	replica_record rec[MAX_RECORDS];
} replica;

typedef struct {
	int history;
	int n_replicas, n_records;
	replica reps[MAX_REPLICAS];
	value *values[MAX_VALUES];
	int n_values;
	size_t merges;
	size_t status_count[FSP_MERGE_INVALID + 1];
} world;

static uint64_t base_seed;

/* Replica names: sorted order differs from index order, prefixes included. */
static const char *const replica_names[] = {
	"r2", "tablet-7f3a", "r10", "a", "r1", "zz-last-0123456789abcdef",
	"b0", "r",
};

static value *
val_of(const world *w, const fsp_record *r)
{
	for (int i = 0; i < w->n_values; i++)
		if (&w->values[i]->rec == r)
			return w->values[i];
	cr_assert_fail("seed %" PRIu64 " history %d: fsp_merge returned a pointer to "
	               "no known value",
	               base_seed, w->history);
	return NULL;
}

static void
world_free(world *w)
{
	for (int i = 0; i < w->n_values; i++) {
		fsp_vv_free(w->values[i]->rec.version);
		free(w->values[i]);
	}
	w->n_values = 0;
}

static world *current; /* freed by the suite's fini if an assertion aborts */

static void
property_fini(void)
{
	if (current != NULL) {
		world_free(current);
		free(current);
		current = NULL;
	}
}

TestSuite(merge_property, .fini = property_fini);

/* ---- the reference model ------------------------------------------------ */

/* a <= b pointwise over the dense dot maps. */
static bool
ref_leq(const value *a, const value *b, int n_replicas)
{
	for (int r = 0; r < n_replicas; r++)
		if (a->dense[r] > b->dense[r])
			return false;
	return true;
}

/* a < b: a <= b and not equal. */
static bool
ref_less(const value *a, const value *b, int n_replicas)
{
	return ref_leq(a, b, n_replicas) && !ref_leq(b, a, n_replicas);
}

/*
 * The reference sibling set of a set of values (by id): those not strictly
 * dominated by another member. Writes a bitmap over value ids.
 */
static void
ref_maximal(const world *w, const bool *in_set, bool *out)
{
	for (int i = 0; i < w->n_values; i++) {
		out[i] = in_set[i];
		for (int j = 0; j < w->n_values && out[i]; j++)
			if (in_set[j] && ref_less(w->values[i], w->values[j], w->n_replicas))
				out[i] = false;
	}
}

/* ---- checks -------------------------------------------------------------- */

static const char *
dense_str(const world *w, const value *v, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (int r = 0; r < w->n_replicas && at < len; r++)
		if (v->dense[r] > 0)
			at += (size_t)snprintf(buf + at, len - at, "%s%s:%" PRIu64,
			                       at ? "," : "", w->reps[r].name, v->dense[r]);
	return buf;
}

static void
dump_set(const world *w, const char *label, fsp_record *const *s, int n)
{
	char buf[256];
	fprintf(stderr, "    %s:", label);
	for (int i = 0; i < n; i++) {
		const value *v = val_of(w, s[i]);
		fprintf(stderr, " #%d{%s}%s", v->id, dense_str(w, v, buf, sizeof(buf)),
		        v->rec.deleted ? "<del>" : "");
	}
	fprintf(stderr, "\n");
}

/*
 * The set of replica rr/record k equals the reference model's maximal
 * values of everything it has seen; implies pairwise concurrency and that
 * nothing concurrent was dropped.
 */
static void
check_replica(const world *w, int rr, int k, const char *when)
{
	const replica_record *s = &w->reps[rr].rec[k];
	bool in_set[MAX_VALUES] = {false}, want[MAX_VALUES];

	for (int i = 0; i < s->n; i++) {
		const value *v = val_of(w, s->sib[i]);
		cr_assert_eq(v->record, k, "seed %" PRIu64 " history %d: record %d holds a "
		             "value of record %d", base_seed, w->history, k, v->record);
		cr_assert_not(in_set[v->id], "seed %" PRIu64 " history %d %s: replica %s "
		              "record %d holds value #%d twice", base_seed, w->history, when,
		              w->reps[rr].name, k, v->id);
		in_set[v->id] = true;
		cr_assert(s->seen[v->id], "seed %" PRIu64 " history %d %s: replica %s holds "
		          "#%d it never saw", base_seed, w->history, when, w->reps[rr].name,
		          v->id);
		/* (c) pairwise concurrent */
		for (int j = 0; j < i; j++) {
			const value *u = val_of(w, s->sib[j]);
			cr_assert(!ref_leq(u, v, w->n_replicas) && !ref_leq(v, u, w->n_replicas),
			          "seed %" PRIu64 " history %d %s: replica %s record %d: "
			          "siblings #%d and #%d are not concurrent",
			          base_seed, w->history, when, w->reps[rr].name, k, u->id, v->id);
		}
	}
	ref_maximal(w, s->seen, want);
	for (int i = 0; i < w->n_values; i++) {
		if (in_set[i] == want[i])
			continue;
		fprintf(stderr, "seed %" PRIu64 " history %d %s: replica %s record %d:\n",
		        base_seed, w->history, when, w->reps[rr].name, k);
		dump_set(w, "holds", s->sib, s->n);
		cr_assert_fail("seed %" PRIu64 " history %d %s: replica %s record %d %s "
		               "value #%d (%s by what it has seen)",
		               base_seed, w->history, when, w->reps[rr].name, k,
		               in_set[i] ? "keeps" : "lost",
		               i, in_set[i] ? "dominated" : "not dominated");
	}
}

/* fsp's version of v matches the model's dense dot map, dot by dot. */
static void
check_version(const world *w, const value *v)
{
	const fsp_vv *vv = v->rec.version;
	const char *why = NULL;
	char buf[256];
	cr_assert(fsp_vv_check(vv, &why), "seed %" PRIu64 " history %d: value #%d: %s",
	          base_seed, w->history, v->id, why);
	size_t dots = 0;
	for (int r = 0; r < w->n_replicas; r++) {
		dots += v->dense[r] > 0;
		cr_assert_eq(fsp_vv_get(vv, w->reps[r].name), v->dense[r],
		             "seed %" PRIu64 " history %d: value #%d made by join+increment "
		             "differs from the model {%s} at %s",
		             base_seed, w->history, v->id, dense_str(w, v, buf, sizeof(buf)),
		             w->reps[r].name);
	}
	cr_assert_eq(vv->n_dots, dots, "seed %" PRIu64 " history %d: value #%d has "
	             "extra dots", base_seed, w->history, v->id);
}

/* ---- actions ------------------------------------------------------------- */

/*
 * The status the rule must give when replica rr gets v for its record, from
 * the model alone.
 */
static fsp_merge_status
expected_status(const world *w, int rr, const value *v)
{
	const replica_record *s = &w->reps[rr].rec[v->record];
	int survivors = 1;
	for (int i = 0; i < s->n; i++) {
		const value *u = val_of(w, s->sib[i]);
		if (u == v)
			return FSP_MERGE_DUPLICATE;
		if (ref_leq(v, u, w->n_replicas))
			return FSP_MERGE_OBSOLETE;
		if (!ref_leq(u, v, w->n_replicas))
			survivors++;
	}
	return survivors == 1 ? FSP_MERGE_APPLIED : FSP_MERGE_CONFLICT;
}

/* Replica rr merges value v (its own new one or a delivered one). */
static fsp_merge_status
apply(world *w, int rr, value *v, const char *when)
{
	replica_record *s = &w->reps[rr].rec[v->record];
	fsp_record *out[MAX_VALUES + 1];
	size_t n_out = 0;
	bool had = s->seen[v->id];
	fsp_merge_status want = expected_status(w, rr, v);
	fsp_merge_status got = fsp_merge(s->sib, (size_t)s->n, &v->rec, out, &n_out);

	w->merges++;
	w->status_count[got]++;
	if (got != want) {
		char buf[256];
		fprintf(stderr, "seed %" PRIu64 " history %d %s: replica %s record %d "
		        "gets #%d{%s}%s\n", base_seed, w->history, when, w->reps[rr].name,
		        v->record, v->id, dense_str(w, v, buf, sizeof(buf)),
		        v->rec.deleted ? "<del>" : "");
		dump_set(w, "holds", s->sib, s->n);
	}
	/* (d) never INVALID in an honest history; (e) DUPLICATE / OBSOLETE. */
	cr_assert_neq(got, FSP_MERGE_INVALID, "seed %" PRIu64 " history %d %s: INVALID "
	              "in an honest history", base_seed, w->history, when);
	cr_assert_eq(got, want, "seed %" PRIu64 " history %d %s: replica %s value #%d: "
	             "fsp_merge says %s, the model %s%s", base_seed, w->history, when,
	             w->reps[rr].name, v->id, fsp_merge_status_name(got),
	             fsp_merge_status_name(want),
	             had ? " (already seen)" : "");
	cr_assert_leq(n_out, (size_t)s->n + 1);
	for (size_t i = 0; i < n_out; i++)
		s->sib[i] = out[i];
	s->n = (int)n_out;
	s->seen[v->id] = true;
	check_replica(w, rr, v->record, when);
	return got;
}

/* Replica rr edits record k: join of what it holds, plus one on itself. */
static void
edit(world *w, int rr, int k)
{
	replica_record *s = &w->reps[rr].rec[k];
	cr_assert_lt(w->n_values, MAX_VALUES);
	value *v = calloc(1, sizeof(*v));
	cr_assert_not_null(v);
	v->id = w->n_values;
	v->record = k;
	w->values[w->n_values++] = v;

	/* The model: pointwise max of the held siblings' dot maps, +1 on rr. */
	const fsp_vv *held[MAX_VALUES];
	for (int i = 0; i < s->n; i++) {
		const value *u = val_of(w, s->sib[i]);
		for (int r = 0; r < w->n_replicas; r++)
			if (u->dense[r] > v->dense[r])
				v->dense[r] = u->dense[r];
		held[i] = s->sib[i]->version;
	}
	v->dense[rr]++;

	/* The library: fsp_vv_join + fsp_vv_increment. */
	fsp_vv *joined = NULL, *version = NULL;
	cr_assert(fsp_vv_join(held, (size_t)s->n, &joined));
	bool ok = fsp_vv_increment(joined, w->reps[rr].name, &version);
	fsp_vv_free(joined);
	cr_assert(ok);

	fieldsync__v1__record__init(&v->rec);
	snprintf(v->record_id, sizeof(v->record_id), "rec-%d", k);
	v->rec.collection = (char *)"note";
	v->rec.id = v->record_id;
	v->rec.scope = (char *)"team-1";
	v->rec.version = version;
	v->rec.modified_by = (char *)w->reps[rr].name;
	if (rng_pct(20)) {
		v->rec.deleted = true; /* a tombstone: no payload */
	} else {
		snprintf(v->payload, sizeof(v->payload), "h%d-v%d-%s", w->history, v->id,
		         w->reps[rr].name);
		v->rec.payload.data = (uint8_t *)v->payload;
		v->rec.payload.len = strlen(v->payload);
	}
	char why[200];
	cr_assert(fsp_record_check(&v->rec, why, sizeof(why)),
	          "seed %" PRIu64 " history %d: generated record is invalid: %s",
	          base_seed, w->history, why);
	check_version(w, v);

	/* Its own new value supersedes everything it held. */
	fsp_merge_status st = apply(w, rr, v, "local edit");
	cr_assert_eq(st, FSP_MERGE_APPLIED);
	cr_assert_eq(s->n, 1);
}

/*
 * One delivery from src to dst: a random subset of src's current siblings,
 * or of its log (everything it produced or received), over random records,
 * with some values sent twice, in random order.
 */
static void
deliver(world *w, int src, int dst)
{
	int batch[2 * MAX_VALUES];
	int n = 0;
	bool from_log = rng_pct(40);
	int pct = rng_range(30, 100);

	for (int k = 0; k < w->n_records; k++) {
		const replica_record *s = &w->reps[src].rec[k];
		if (from_log) {
			for (int i = 0; i < w->n_values; i++)
				if (s->seen[i] && rng_pct(pct))
					batch[n++] = i;
		} else {
			for (int i = 0; i < s->n; i++)
				if (rng_pct(pct))
					batch[n++] = val_of(w, s->sib[i])->id;
		}
	}
	for (int i = 0, m = n; i < m; i++)
		if (rng_pct(15))
			batch[n++] = batch[i];
	shuffle(batch, n);
	for (int i = 0; i < n; i++)
		apply(w, dst, w->values[batch[i]], from_log ? "log delivery" : "delivery");
}

/* All-to-all exchange of current siblings until nothing changes. */
static void
sync_all(world *w)
{
	for (int round = 0;; round++) {
		cr_assert_lt(round, 20, "seed %" PRIu64 " history %d: no quiescence",
		             base_seed, w->history);
		bool changed = false;
		int order[MAX_REPLICAS];
		for (int i = 0; i < w->n_replicas; i++)
			order[i] = i;
		shuffle(order, w->n_replicas);
		for (int a = 0; a < w->n_replicas; a++)
			for (int b = 0; b < w->n_replicas; b++) {
				int src = order[a], dst = order[b];
				if (src == dst)
					continue;
				for (int k = 0; k < w->n_records; k++) {
					/* Snapshot: merging into dst must not see src change. */
					int ids[MAX_VALUES + 1], n = w->reps[src].rec[k].n;
					for (int i = 0; i < n; i++)
						ids[i] = val_of(w, w->reps[src].rec[k].sib[i])->id;
					shuffle(ids, n);
					for (int i = 0; i < n; i++) {
						fsp_merge_status st =
							apply(w, dst, w->values[ids[i]], "final sync");
						changed = changed || st == FSP_MERGE_APPLIED ||
						          st == FSP_MERGE_CONFLICT;
					}
				}
			}
		if (!changed)
			break;
	}
}

static int
by_version(const void *a, const void *b)
{
	return fsp_vv_cmp_lex((*(fsp_record *const *)a)->version,
	                      (*(fsp_record *const *)b)->version);
}

/* After sync_all: (a) convergence and (b) the reference model. */
static void
check_final(world *w)
{
	for (int k = 0; k < w->n_records; k++) {
		bool all[MAX_VALUES] = {false}, want[MAX_VALUES];
		int n_want = 0;
		for (int i = 0; i < w->n_values; i++)
			all[i] = w->values[i]->record == k;
		ref_maximal(w, all, want);
		for (int i = 0; i < w->n_values; i++)
			n_want += want[i];

		fsp_record *first[MAX_VALUES + 1];
		int n_first = w->reps[0].rec[k].n;
		memcpy(first, w->reps[0].rec[k].sib, (size_t)n_first * sizeof(first[0]));
		qsort(first, (size_t)n_first, sizeof(first[0]), by_version);

		for (int rr = 0; rr < w->n_replicas; rr++) {
			const replica_record *s = &w->reps[rr].rec[k];
			/* (b) exactly the maximal values of everything created */
			cr_assert_eq(s->n, n_want, "seed %" PRIu64 " history %d: replica %s "
			             "record %d holds %d values, the model %d",
			             base_seed, w->history, w->reps[rr].name, k, s->n, n_want);
			for (int i = 0; i < s->n; i++) {
				const value *v = val_of(w, s->sib[i]);
				cr_assert(want[v->id], "seed %" PRIu64 " history %d: replica %s "
				          "record %d holds #%d, which the model drops",
				          base_seed, w->history, w->reps[rr].name, k, v->id);
			}
			/* (a) the same set everywhere, compared by version and value */
			fsp_record *mine[MAX_VALUES + 1];
			memcpy(mine, s->sib, (size_t)s->n * sizeof(mine[0]));
			qsort(mine, (size_t)s->n, sizeof(mine[0]), by_version);
			cr_assert_eq(s->n, n_first);
			for (int i = 0; i < s->n; i++) {
				cr_assert_eq(fsp_vv_cmp_lex(mine[i]->version, first[i]->version), 0,
				             "seed %" PRIu64 " history %d: replicas %s and %s "
				             "diverge on record %d", base_seed, w->history,
				             w->reps[rr].name, w->reps[0].name, k);
				cr_assert(fsp_record_same_value(mine[i], first[i]));
			}
		}
	}
}

/* (e) at the end every value ever made is DUPLICATE or OBSOLETE everywhere. */
static void
redeliver_everything(world *w)
{
	int ids[MAX_VALUES];
	for (int i = 0; i < w->n_values; i++)
		ids[i] = i;
	for (int rr = 0; rr < w->n_replicas; rr++) {
		shuffle(ids, w->n_values);
		for (int i = 0; i < w->n_values; i++) {
			value *v = w->values[ids[i]];
			bool held = false;
			const replica_record *s = &w->reps[rr].rec[v->record];
			for (int j = 0; j < s->n; j++)
				held = held || s->sib[j] == &v->rec;
			fsp_merge_status st = apply(w, rr, v, "redelivery");
			cr_assert_eq(st, held ? FSP_MERGE_DUPLICATE : FSP_MERGE_OBSOLETE,
			             "seed %" PRIu64 " history %d: redelivering #%d to %s",
			             base_seed, w->history, v->id, w->reps[rr].name);
		}
	}
}

static void
run_history(world *w, int history)
{
	memset(w, 0, sizeof(*w));
	w->history = history;
	rng_state = base_seed + (uint64_t)history * 0x9e3779b97f4a7c15ULL;
	w->n_replicas = rng_range(3, MAX_REPLICAS);
	w->n_records = rng_range(2, MAX_RECORDS);

	int pick[sizeof(replica_names) / sizeof(replica_names[0])];
	int n_names = (int)(sizeof(pick) / sizeof(pick[0]));
	for (int i = 0; i < n_names; i++)
		pick[i] = i;
	shuffle(pick, n_names);
	for (int r = 0; r < w->n_replicas; r++)
		w->reps[r].name = replica_names[pick[r]];

	int edits = rng_range(w->n_replicas, MAX_EDITS);
	int steps = rng_range(edits, 3 * edits);
	int made = 0;
	for (int step = 0; step < steps || made < edits; step++) {
		int a = rng_range(0, w->n_replicas - 1);
		if (made < edits && (rng_pct(45) || step >= steps)) {
			edit(w, a, rng_range(0, w->n_records - 1));
			made++;
		} else {
			int b = rng_range(0, w->n_replicas - 2);
			deliver(w, a, b >= a ? b + 1 : b);
		}
	}
	sync_all(w);
	check_final(w);
	redeliver_everything(w);
	check_final(w);
}

static uint64_t
env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	if (s == NULL || *s == '\0')
		return dflt;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 0);
	cr_assert(end != NULL && *end == '\0', "%s=%s is not a number", name, s);
	return (uint64_t)v;
}

Test(merge_property, random_histories)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t dflt = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
	                ((uint64_t)getpid() << 32);
	base_seed = env_u64("FS_PROPERTY_SEED", dflt);
	uint64_t runs = env_u64("FS_PROPERTY_RUNS", DEFAULT_RUNS);
	fprintf(stderr, "merge property: FS_PROPERTY_SEED=%" PRIu64 " (%" PRIu64
	        " histories)\n", base_seed, runs);

	size_t merges = 0, status_count[FSP_MERGE_INVALID + 1] = {0};
	current = calloc(1, sizeof(*current));
	cr_assert_not_null(current);
	for (uint64_t h = 0; h < runs; h++) {
		run_history(current, (int)h);
		merges += current->merges;
		for (int s = 0; s <= FSP_MERGE_INVALID; s++)
			status_count[s] += current->status_count[s];
		world_free(current);
	}
	fprintf(stderr, "merge property: %zu merges: %zu APPLIED, %zu CONFLICT, "
	        "%zu DUPLICATE, %zu OBSOLETE\n", merges,
	        status_count[FSP_MERGE_APPLIED], status_count[FSP_MERGE_CONFLICT],
	        status_count[FSP_MERGE_DUPLICATE], status_count[FSP_MERGE_OBSOLETE]);
	/* The generator must reach every honest outcome, or it tests little. */
	if (runs >= 50) {
		cr_assert_gt(status_count[FSP_MERGE_APPLIED], 0);
		cr_assert_gt(status_count[FSP_MERGE_CONFLICT], 0);
		cr_assert_gt(status_count[FSP_MERGE_DUPLICATE], 0);
		cr_assert_gt(status_count[FSP_MERGE_OBSOLETE], 0);
	}
}

/* ---- hand-written scenarios ---------------------------------------------- */

/* A record value with a version from fs_test_vv(); free with hv_free(). */
static fsp_record *
hv(const char *version, const char *payload, bool deleted)
{
	fsp_record *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	fieldsync__v1__record__init(r);
	r->collection = (char *)"note";
	r->id = (char *)"n1";
	r->scope = (char *)"team-1";
	r->version = fs_test_vv(version);
	r->deleted = deleted;
	if (payload != NULL) {
		r->payload.data = (uint8_t *)payload;
		r->payload.len = strlen(payload);
	}
	char why[200];
	cr_assert(fsp_record_check(r, why, sizeof(why)), "%s", why);
	return r;
}

static void
hv_free(fsp_record *r)
{
	fsp_vv_free(r->version);
	free(r);
}

static bool
holds(fsp_record *const *set, size_t n, const fsp_record *r)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == r)
			return true;
	return false;
}

Test(merge_property, resolving_write_collapses_conflict)
{
	fsp_record *a = hv("a:1", "from a", false);
	fsp_record *b = hv("b:1", "from b", false);
	fsp_record *c = hv("c:1", NULL, true);
	fsp_record *s1[4], *s2[4], *s3[4];
	size_t n1, n2, n3;

	cr_assert_eq(fsp_merge(NULL, 0, a, s1, &n1), FSP_MERGE_APPLIED);
	cr_assert_eq(n1, 1);
	cr_assert_eq(fsp_merge(s1, n1, b, s2, &n2), FSP_MERGE_CONFLICT);
	cr_assert_eq(n2, 2);
	cr_assert_eq(fsp_merge(s2, n2, c, s3, &n3), FSP_MERGE_CONFLICT);
	cr_assert_eq(n3, 3);
	cr_assert(holds(s3, n3, a) && holds(s3, n3, b) && holds(s3, n3, c));

	/* Replica a resolves: join of all three siblings, plus one on a. */
	const fsp_vv *held[3] = {s3[0]->version, s3[1]->version, s3[2]->version};
	fsp_vv *joined = NULL, *version = NULL;
	cr_assert(fsp_vv_join(held, 3, &joined));
	cr_assert(fsp_vv_increment(joined, "a", &version));
	fsp_vv_free(joined);
	fsp_record *res = hv("a:2,b:1,c:1", "resolved", false);
	cr_assert_eq(fsp_vv_compare(version, res->version), FSP_VV_EQUAL);
	fsp_vv_free(version);

	fsp_record *s4[5];
	size_t n4;
	cr_assert_eq(fsp_merge(s3, n3, res, s4, &n4), FSP_MERGE_APPLIED);
	cr_assert_eq(n4, 1);
	cr_assert_eq(s4[0], res);

	/* A write that dominates only some siblings does not resolve. */
	fsp_record *part = hv("a:2,b:1", "partial", false);
	cr_assert_eq(fsp_merge(s3, n3, part, s4, &n4), FSP_MERGE_CONFLICT);
	cr_assert_eq(n4, 2);
	cr_assert(holds(s4, n4, c) && holds(s4, n4, part));

	/* The old siblings arriving late are obsolete against the resolution. */
	fsp_record *one[1] = {res}, *o[2];
	size_t no;
	cr_assert_eq(fsp_merge(one, 1, b, o, &no), FSP_MERGE_OBSOLETE);
	cr_assert_eq(no, 1);
	cr_assert_eq(o[0], res);
	cr_assert_eq(fsp_merge(one, 1, res, o, &no), FSP_MERGE_DUPLICATE);

	hv_free(a);
	hv_free(b);
	hv_free(c);
	hv_free(res);
	hv_free(part);
}

Test(merge_property, delete_concurrent_with_edit_is_conflict)
{
	/* Both replicas had {a:1,b:1}; a edits, b deletes, offline. */
	fsp_record *base = hv("a:1,b:1", "base", false);
	fsp_record *ed = hv("a:2,b:1", "edited", false);
	fsp_record *del = hv("a:1,b:2", NULL, true);
	fsp_record *out[3];
	size_t n;

	fsp_record *at_a[1] = {ed};
	cr_assert_eq(fsp_merge(at_a, 1, del, out, &n), FSP_MERGE_CONFLICT);
	cr_assert_eq(n, 2);
	cr_assert(holds(out, n, ed) && holds(out, n, del));

	fsp_record *at_b[1] = {del};
	cr_assert_eq(fsp_merge(at_b, 1, ed, out, &n), FSP_MERGE_CONFLICT);
	cr_assert_eq(n, 2);
	cr_assert(holds(out, n, ed) && holds(out, n, del));
	for (size_t i = 0; i < n; i++)
		if (out[i] == del)
			cr_assert(out[i]->deleted && out[i]->payload.len == 0);

	/* The base is obsolete against both; a tombstone re-sent is a duplicate. */
	fsp_record *both[2] = {ed, del}, *o2[3];
	cr_assert_eq(fsp_merge(both, 2, base, o2, &n), FSP_MERGE_OBSOLETE);
	cr_assert_eq(n, 2);
	fsp_record *del2 = hv("a:1,b:2", NULL, true);
	cr_assert_eq(fsp_merge(both, 2, del2, o2, &n), FSP_MERGE_DUPLICATE);

	/* Resolving the conflict with a delete: the tombstone stays alone. */
	fsp_record *fin = hv("a:2,b:3", NULL, true);
	cr_assert_eq(fsp_merge(both, 2, fin, o2, &n), FSP_MERGE_APPLIED);
	cr_assert_eq(n, 1);
	cr_assert_eq(o2[0], fin);

	/* A reused dot: same version, different value: INVALID, set unchanged. */
	fsp_record *liar = hv("a:1,b:2", "not a delete", false);
	cr_assert_eq(fsp_merge(both, 2, liar, o2, &n), FSP_MERGE_INVALID);
	cr_assert_eq(n, 2);
	cr_assert(o2[0] == ed && o2[1] == del);

	hv_free(base);
	hv_free(ed);
	hv_free(del);
	hv_free(del2);
	hv_free(fin);
	hv_free(liar);
}

Test(merge_property, tombstone_differs_from_empty_value)
{
	/* An empty live value and a tombstone carry the same (no) bytes but are
	 * different values: with one version, that is a reused dot. */
	fsp_record *empty = hv("a:1,b:1", NULL, false);
	fsp_record *tomb = hv("a:1,b:1", NULL, true);
	fsp_record *tomb2 = hv("a:1,b:1", NULL, true);
	fsp_record *out[2];
	size_t n;

	cr_assert_not(fsp_record_same_value(empty, tomb));
	cr_assert(fsp_record_same_value(tomb, tomb2));
	fsp_record *s1[1] = {empty};
	cr_assert_eq(fsp_merge(s1, 1, tomb, out, &n), FSP_MERGE_INVALID);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0], empty);
	fsp_record *s2[1] = {tomb};
	cr_assert_eq(fsp_merge(s2, 1, empty, out, &n), FSP_MERGE_INVALID);
	cr_assert_eq(fsp_merge(s2, 1, tomb2, out, &n), FSP_MERGE_DUPLICATE);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0], tomb);

	hv_free(empty);
	hv_free(tomb);
	hv_free(tomb2);
}
