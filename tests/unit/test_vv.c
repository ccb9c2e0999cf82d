/*
 * Unit tests of libfieldsync-proto's version vectors (proto/vv.c) and record
 * rules (proto/check.c): compare, join, increment, dup, check, the lexical
 * order, the collection/scope/record syntax and the typed payload checks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/casework.pb-c.h"

/*
 * Vectors made by the tests are registered here and freed after each test,
 * so a failing assertion does not turn into a leak report.
 */
#define ARENA_MAX 512
static fsp_vv *arena[ARENA_MAX];
static size_t n_arena;

static fsp_vv *
keep(fsp_vv *v)
{
	cr_assert_not_null(v, "allocation of a version vector failed");
	cr_assert_lt(n_arena, ARENA_MAX);
	arena[n_arena++] = v;
	return v;
}

/* "a:1,b:2" -> vector (via the support library, sorted). */
static fsp_vv *
vv(const char *text)
{
	return keep(fs_test_vv(text));
}

static void
arena_free(void)
{
	for (size_t i = 0; i < n_arena; i++)
		fsp_vv_free(arena[i]);
	n_arena = 0;
}

TestSuite(vv, .fini = arena_free);
TestSuite(check, .fini = arena_free);
TestSuite(typed);

/* Renders v as "a:1,b:2" ("" when empty, "(null)" for NULL) into buf. */
static const char *
vv_str(const fsp_vv *v, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	if (v == NULL) {
		snprintf(buf, len, "(null)");
		return buf;
	}
	for (size_t i = 0; i < v->n_dots && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s:%llu", i ? "," : "",
		                       v->dots[i]->replica,
		                       (unsigned long long)v->dots[i]->counter);
	return buf;
}

static void
assert_vv_text(const fsp_vv *v, const char *want)
{
	char buf[1024];
	cr_assert_not_null(v);
	cr_assert_str_eq(vv_str(v, buf, sizeof(buf)), want);
}

/*
 * A vector built exactly as given (no sorting, zero counters allowed), for
 * feeding fsp_vv_check() broken input. Lives on the caller's stack.
 */
#define RAW_MAX 8
typedef struct {
	fsp_vv v;
	fsp_dot dot[RAW_MAX];
	fsp_dot *ptr[RAW_MAX];
} raw_vv;

static fsp_vv *
raw(raw_vv *r, size_t n, const char *const *reps, const uint64_t *counters)
{
	cr_assert_leq(n, RAW_MAX);
	fieldsync__v1__version_vector__init(&r->v);
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__dot__init(&r->dot[i]);
		r->dot[i].replica = (char *)reps[i];
		r->dot[i].counter = counters[i];
		r->ptr[i] = &r->dot[i];
	}
	r->v.n_dots = n;
	r->v.dots = n ? r->ptr : NULL;
	return &r->v;
}

static const char *
order_name(fsp_vv_order o)
{
	switch (o) {
	case FSP_VV_EQUAL:
		return "EQUAL";
	case FSP_VV_DOMINATED:
		return "DOMINATED";
	case FSP_VV_DOMINATES:
		return "DOMINATES";
	case FSP_VV_CONCURRENT:
		return "CONCURRENT";
	}
	return "?";
}

static fsp_vv_order
converse(fsp_vv_order o)
{
	return o == FSP_VV_DOMINATED ? FSP_VV_DOMINATES
	       : o == FSP_VV_DOMINATES ? FSP_VV_DOMINATED
	                               : o;
}

/* Checks compare(a, b) == want and compare(b, a) == converse(want). */
static void
assert_order(const fsp_vv *a, const fsp_vv *b, fsp_vv_order want)
{
	char x[256], y[256];
	fsp_vv_order got = fsp_vv_compare(a, b), back = fsp_vv_compare(b, a);
	cr_assert_eq(got, want, "compare(%s, %s) = %s, want %s", vv_str(a, x, sizeof(x)),
	             vv_str(b, y, sizeof(y)), order_name(got), order_name(want));
	cr_assert_eq(back, converse(want), "compare(%s, %s) = %s, want %s",
	             vv_str(b, y, sizeof(y)), vv_str(a, x, sizeof(x)), order_name(back),
	             order_name(converse(want)));
}

/* ---- fsp_vv_compare ---------------------------------------------------- */

Test(vv, compare_equal)
{
	assert_order(vv("a:1"), vv("a:1"), FSP_VV_EQUAL);
	assert_order(vv("a:3,b:1,c:7"), vv("a:3,b:1,c:7"), FSP_VV_EQUAL);
	fsp_vv *same = vv("a:2,b:2");
	assert_order(same, same, FSP_VV_EQUAL);
}

Test(vv, compare_dominated_and_dominates)
{
	assert_order(vv("a:1"), vv("a:2"), FSP_VV_DOMINATED);
	assert_order(vv("a:1,b:2"), vv("a:1,b:3"), FSP_VV_DOMINATED);
	assert_order(vv("a:5,b:2,c:9"), vv("a:1,b:2,c:9"), FSP_VV_DOMINATES);
	assert_order(vv("a:2,b:2,c:2"), vv("a:1,b:1,c:1"), FSP_VV_DOMINATES);
}

Test(vv, compare_concurrent)
{
	assert_order(vv("a:2,b:1"), vv("a:1,b:2"), FSP_VV_CONCURRENT);
	assert_order(vv("a:1"), vv("b:1"), FSP_VV_CONCURRENT);
	/* The difference that makes them concurrent is in the last dot. */
	assert_order(vv("a:2,b:1,z:1"), vv("a:2,b:1,y:1"), FSP_VV_CONCURRENT);
	assert_order(vv("a:1,b:1,z:1"), vv("a:2,b:1"), FSP_VV_CONCURRENT);
	/* ... or the first. */
	assert_order(vv("a:1,m:5,z:5"), vv("m:5,z:6"), FSP_VV_CONCURRENT);
}

Test(vv, compare_empty_and_null)
{
	fsp_vv *empty = vv("");
	cr_assert_eq(empty->n_dots, 0);
	assert_order(NULL, NULL, FSP_VV_EQUAL);
	assert_order(empty, empty, FSP_VV_EQUAL);
	assert_order(NULL, empty, FSP_VV_EQUAL);
	assert_order(NULL, vv("a:1"), FSP_VV_DOMINATED);
	assert_order(empty, vv("a:1,b:4"), FSP_VV_DOMINATED);
	assert_order(vv("q:1"), NULL, FSP_VV_DOMINATES);
}

Test(vv, compare_replicas_on_one_side_only)
{
	/* b only on the right: right is bigger there, equal elsewhere. */
	assert_order(vv("a:1"), vv("a:1,b:1"), FSP_VV_DOMINATED);
	assert_order(vv("a:1,c:1"), vv("a:1,b:1,c:1"), FSP_VV_DOMINATED);
	assert_order(vv("a:1,b:1,c:1"), vv("b:1"), FSP_VV_DOMINATES);
	assert_order(vv("a:1,c:1"), vv("b:1,d:1"), FSP_VV_CONCURRENT);
	/* A replica only on the left, but the right is bigger elsewhere. */
	assert_order(vv("a:1,b:1"), vv("b:2"), FSP_VV_CONCURRENT);
}

Test(vv, compare_different_lengths)
{
	assert_order(vv("a:2"), vv("a:1,b:1,c:5"), FSP_VV_CONCURRENT);
	assert_order(vv("a:1"), vv("a:1,b:1,c:1,d:1,e:1"), FSP_VV_DOMINATED);
	assert_order(vv("a:9,b:9,c:9,d:9,e:9"), vv("c:9"), FSP_VV_DOMINATES);
	assert_order(vv("e:1"), vv("a:1,b:1,c:1,d:1,e:1"), FSP_VV_DOMINATED);
}

Test(vv, compare_prefix_replica_names)
{
	/* "r1" < "r10" < "r2" bytewise: merging must not confuse them. */
	assert_order(vv("r1:1,r10:1"), vv("r1:1,r2:1"), FSP_VV_CONCURRENT);
	assert_order(vv("r1:1"), vv("r1:1,r10:1"), FSP_VV_DOMINATED);
	assert_order(vv("r10:2"), vv("r1:1,r10:2"), FSP_VV_DOMINATED);
}

/*
 * Every pair of vectors over 3 replicas with counters 0..2 (0 = absent),
 * checked against a dense reference comparison.
 */
Test(vv, compare_exhaustive_against_reference)
{
	static const char *const names[3] = {"alpha", "b", "c0"};
	enum { N = 27 };
	fsp_vv *all[N];
	int dense[N][3];
	for (int k = 0; k < N; k++) {
		char text[64] = "";
		size_t at = 0;
		for (int r = 0, x = k; r < 3; r++, x /= 3) {
			dense[k][r] = x % 3;
			if (dense[k][r] > 0)
				at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%s:%d",
				                       at ? "," : "", names[r], dense[k][r]);
		}
		all[k] = vv(text);
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			bool ib = false, jb = false;
			for (int r = 0; r < 3; r++) {
				ib = ib || dense[i][r] > dense[j][r];
				jb = jb || dense[j][r] > dense[i][r];
			}
			fsp_vv_order want = ib && jb ? FSP_VV_CONCURRENT
			                    : ib     ? FSP_VV_DOMINATES
			                    : jb     ? FSP_VV_DOMINATED
			                             : FSP_VV_EQUAL;
			assert_order(all[i], all[j], want);
		}
}

/* ---- fsp_vv_get -------------------------------------------------------- */

Test(vv, get)
{
	fsp_vv *v = vv("a:3,r1:7,r10:2");
	cr_assert_eq(fsp_vv_get(v, "a"), 3);
	cr_assert_eq(fsp_vv_get(v, "r1"), 7);
	cr_assert_eq(fsp_vv_get(v, "r10"), 2);
	cr_assert_eq(fsp_vv_get(v, "r"), 0);
	cr_assert_eq(fsp_vv_get(v, "zz"), 0);
	cr_assert_eq(fsp_vv_get(NULL, "a"), 0);
}

/* ---- fsp_vv_join ------------------------------------------------------- */

static fsp_vv *
join(const fsp_vv *const *vs, size_t n)
{
	fsp_vv *out = NULL;
	cr_assert(fsp_vv_join(vs, n, &out));
	return keep(out);
}

Test(vv, join_n_way)
{
	const fsp_vv *in[3] = {vv("a:1,c:3"), vv("b:2,c:1"), vv("a:4,d:1")};
	fsp_vv *j = join(in, 3);
	assert_vv_text(j, "a:4,b:2,c:3,d:1");
	const char *why = NULL;
	cr_assert(fsp_vv_check(j, &why), "%s", why);
	for (int k = 0; k < 3; k++) {
		fsp_vv_order o = fsp_vv_compare(in[k], j);
		cr_assert(o == FSP_VV_DOMINATED || o == FSP_VV_EQUAL);
	}
	/* The inputs are untouched. */
	assert_vv_text(in[0], "a:1,c:3");
	assert_vv_text(in[1], "b:2,c:1");
	assert_vv_text(in[2], "a:4,d:1");
}

Test(vv, join_overlaps)
{
	const fsp_vv *same[3] = {vv("a:2,b:2"), vv("a:2,b:2"), vv("a:2,b:2")};
	assert_vv_text(join(same, 3), "a:2,b:2");

	const fsp_vv *chain[4] = {vv("a:1"), vv("a:1,b:1"), vv("a:2,b:1"), vv("a:1")};
	assert_vv_text(join(chain, 4), "a:2,b:1");

	const fsp_vv *names[3] = {vv("r1:1,r2:5"), vv("r10:3"), vv("r1:4,r10:1")};
	assert_vv_text(join(names, 3), "r1:4,r10:3,r2:5");

	const fsp_vv *with_empty[3] = {vv(""), vv("x:1"), NULL};
	assert_vv_text(join(with_empty, 3), "x:1");
}

Test(vv, join_one_and_zero_inputs)
{
	const fsp_vv *one[1] = {vv("b:1,c:2")};
	fsp_vv *j = join(one, 1);
	assert_vv_text(j, "b:1,c:2");
	cr_assert_neq(j, one[0]);

	fsp_vv *z = join(NULL, 0);
	cr_assert_eq(z->n_dots, 0);
	cr_assert_eq(fsp_vv_compare(z, NULL), FSP_VV_EQUAL);
	const char *why = NULL;
	cr_assert_not(fsp_vv_check(z, &why), "an empty join has no dots");
}

Test(vv, join_result_outlives_inputs)
{
	fsp_vv *a = fs_test_vv("long-replica-name-a:3,m:1");
	fsp_vv *b = fs_test_vv("long-replica-name-b:2,m:4");
	cr_assert(a != NULL && b != NULL);
	const fsp_vv *in[2] = {a, b};
	fsp_vv *j = NULL;
	cr_assert(fsp_vv_join(in, 2, &j));
	fsp_vv_free(a);
	fsp_vv_free(b);
	keep(j);
	/* Under ASan this reads freed memory if the join shares strings. */
	assert_vv_text(j, "long-replica-name-a:3,long-replica-name-b:2,m:4");
}

/* ---- fsp_vv_increment -------------------------------------------------- */

static fsp_vv *
inc(const fsp_vv *v, const char *replica)
{
	fsp_vv *out = NULL;
	cr_assert(fsp_vv_increment(v, replica, &out));
	keep(out);
	const char *why = NULL;
	cr_assert(fsp_vv_check(out, &why), "increment made an invalid vector: %s", why);
	return out;
}

Test(vv, increment_inserts_in_sorted_position)
{
	fsp_vv *v = vv("b:1,d:2");
	assert_vv_text(inc(v, "a"), "a:1,b:1,d:2"); /* start */
	assert_vv_text(inc(v, "c"), "b:1,c:1,d:2"); /* middle */
	assert_vv_text(inc(v, "e"), "b:1,d:2,e:1"); /* end */
	assert_vv_text(inc(v, "bb"), "b:1,bb:1,d:2");
	assert_vv_text(v, "b:1,d:2"); /* input untouched */
}

Test(vv, increment_bumps_existing)
{
	fsp_vv *v = vv("b:1,d:2,f:9");
	assert_vv_text(inc(v, "b"), "b:2,d:2,f:9");
	assert_vv_text(inc(v, "d"), "b:1,d:3,f:9");
	assert_vv_text(inc(v, "f"), "b:1,d:2,f:10");
	fsp_vv *twice = inc(inc(v, "d"), "d");
	assert_vv_text(twice, "b:1,d:4,f:9");
	cr_assert_eq(fsp_vv_compare(v, twice), FSP_VV_DOMINATED);
}

Test(vv, increment_empty_and_null)
{
	assert_vv_text(inc(NULL, "x"), "x:1");
	assert_vv_text(inc(vv(""), "x"), "x:1");
	/* Prefix names: "r1" < "r10" < "r2". */
	assert_vv_text(inc(vv("r1:1,r2:1"), "r10"), "r1:1,r10:1,r2:1");
	assert_vv_text(inc(vv("r10:1"), "r1"), "r1:1,r10:1");
}

Test(vv, increment_dominates_input)
{
	fsp_vv *v = vv("a:1,c:1");
	static const char *const reps[] = {"a", "b", "c", "d", "0"};
	for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++) {
		fsp_vv *w = inc(v, reps[i]);
		cr_assert_eq(fsp_vv_compare(w, v), FSP_VV_DOMINATES, "replica %s", reps[i]);
		cr_assert_eq(fsp_vv_get(w, reps[i]), fsp_vv_get(v, reps[i]) + 1);
	}
}

/* ---- fsp_vv_dup -------------------------------------------------------- */

Test(vv, increment_refuses_a_counter_that_cannot_grow)
{
	fsp_vv *v = vv("a:1,b:1");
	v->dots[0]->counter = UINT64_MAX;
	fsp_vv *out = (fsp_vv *)1;
	cr_expect(!fsp_vv_increment(v, "a", &out), "a:UINT64_MAX + 1 must not wrap to 0");
	cr_expect_null(out);
	cr_assert(fsp_vv_increment(v, "b", &out), "other replicas still increment");
	keep(out);
	cr_expect_eq(fsp_vv_get(out, "b"), 2);
}

Test(vv, dup)
{
	fsp_vv *v = fs_test_vv("a:1,bravo:22,c:333");
	cr_assert_not_null(v);
	fsp_vv *d = fsp_vv_dup(v);
	cr_assert_not_null(d);
	keep(d);
	cr_assert_neq(d, v);
	cr_assert_eq(d->n_dots, 3);
	for (size_t i = 0; i < d->n_dots; i++) {
		cr_assert_neq(d->dots[i], v->dots[i]);
		cr_assert_neq(d->dots[i]->replica, v->dots[i]->replica);
	}
	cr_assert_eq(fsp_vv_compare(d, v), FSP_VV_EQUAL);
	cr_assert_eq(fsp_vv_cmp_lex(d, v), 0);
	fsp_vv_free(v);
	assert_vv_text(d, "a:1,bravo:22,c:333"); /* independent of the original */

	fsp_vv *e = keep(fsp_vv_dup(vv("")));
	cr_assert_eq(e->n_dots, 0);
}

/* ---- fsp_vv_check ------------------------------------------------------ */

static void
assert_check_fails(const fsp_vv *v, const char *what)
{
	const char *why = NULL;
	cr_assert_not(fsp_vv_check(v, &why), "%s: accepted", what);
	cr_assert_not_null(why, "%s: no reason given", what);
	cr_assert_neq(why[0], '\0', "%s: empty reason", what);
}

Test(vv, check_valid)
{
	const char *why = NULL;
	cr_assert(fsp_vv_check(vv("a:1"), &why), "%s", why);
	raw_vv r;
	static const char *const big[] = {"a", "b"};
	static const uint64_t big_ctr[] = {1, UINT64_MAX};
	cr_assert(fsp_vv_check(raw(&r, 2, big, big_ctr), &why), "max counter: %s", why);
	static const char *const reps[] = {"A", "a", "r1", "r10", "r2"};
	static const uint64_t ctr[] = {1, 1, 1, 1, 1};
	cr_assert(fsp_vv_check(raw(&r, 5, reps, ctr), &why), "bytewise order: %s", why);
}

Test(vv, check_empty)
{
	assert_check_fails(NULL, "NULL");
	assert_check_fails(vv(""), "no dots");
}

Test(vv, check_zero_counter)
{
	raw_vv r;
	static const char *const reps[] = {"a", "b"};
	static const uint64_t ctr[] = {1, 0};
	assert_check_fails(raw(&r, 2, reps, ctr), "zero counter");
	static const uint64_t ctr0[] = {0, 0};
	assert_check_fails(raw(&r, 1, reps, ctr0), "single zero counter");
}

Test(vv, check_unsorted)
{
	raw_vv r;
	static const char *const reps[] = {"a", "c", "b"};
	static const uint64_t ctr[] = {1, 1, 1};
	assert_check_fails(raw(&r, 3, reps, ctr), "unsorted");
	static const char *const reps2[] = {"r2", "r10"};
	assert_check_fails(raw(&r, 2, reps2, ctr), "unsorted bytewise");
}

Test(vv, check_duplicate_replica)
{
	raw_vv r;
	static const char *const reps[] = {"a", "b", "b"};
	static const uint64_t ctr[] = {1, 1, 2};
	assert_check_fails(raw(&r, 3, reps, ctr), "duplicate replica");
}

Test(vv, check_replica_length)
{
	char r64[65], r65[66];
	memset(r64, 'r', 64);
	r64[64] = '\0';
	memset(r65, 'r', 65);
	r65[65] = '\0';
	raw_vv r;
	const char *reps[] = {r64};
	static const uint64_t ctr[] = {1};
	const char *why = NULL;
	cr_assert(fsp_vv_check(raw(&r, 1, reps, ctr), &why), "64-byte replica: %s", why);
	reps[0] = r65;
	assert_check_fails(raw(&r, 1, reps, ctr), "65-byte replica");
	reps[0] = "";
	assert_check_fails(raw(&r, 1, reps, ctr), "empty replica");
	static const char *const two[] = {"", "a"};
	static const uint64_t ctr2[] = {1, 1};
	assert_check_fails(raw(&r, 2, two, ctr2), "empty replica first");
}

/* n dots with replicas "d000", "d001", ... (sorted), all counters 1. */
static void
check_many_dots(size_t n, bool want)
{
	fsp_vv v;
	fsp_dot *dots = calloc(n, sizeof(*dots));
	fsp_dot **ptrs = calloc(n, sizeof(*ptrs));
	char(*names)[24] = calloc(n, sizeof(*names));
	cr_assert(dots != NULL && ptrs != NULL && names != NULL);
	fieldsync__v1__version_vector__init(&v);
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__dot__init(&dots[i]);
		snprintf(names[i], sizeof(names[i]), "d%03zu", i);
		dots[i].replica = names[i];
		dots[i].counter = 1;
		ptrs[i] = &dots[i];
	}
	v.n_dots = n;
	v.dots = ptrs;
	const char *why = NULL;
	bool got = fsp_vv_check(&v, &why);
	free(dots);
	free(ptrs);
	free(names);
	cr_assert_eq(got, want, "%zu dots: check returned %d (%s)", n, got,
	             why ? why : "");
}

Test(vv, check_too_many_dots)
{
	check_many_dots(FSP_DOTS_MAX, true);
	check_many_dots(FSP_DOTS_MAX + 1, false);
}

/* ---- fsp_vv_cmp_lex ---------------------------------------------------- */

static int
sign(int x)
{
	return (x > 0) - (x < 0);
}

static void
assert_lex(const char *a, const char *b, int want)
{
	fsp_vv *x = vv(a), *y = vv(b);
	cr_assert_eq(sign(fsp_vv_cmp_lex(x, y)), want, "cmp_lex(%s, %s)", a, b);
	cr_assert_eq(sign(fsp_vv_cmp_lex(y, x)), -want, "cmp_lex(%s, %s)", b, a);
}

Test(vv, cmp_lex)
{
	assert_lex("a:1", "a:1", 0);
	assert_lex("a:1,b:2", "a:1,b:2", 0);
	assert_lex("a:1", "a:2", -1);
	assert_lex("a:1", "b:1", -1);
	assert_lex("a:9", "b:1", -1);          /* replica before counter */
	assert_lex("a:1", "a:1,b:1", -1);      /* prefix first */
	assert_lex("a:2", "a:1,b:1", 1);
	assert_lex("", "a:1", -1);
	assert_lex("a:1,c:1", "a:1,b:5", 1);
	assert_lex("r1:1", "r10:1", -1);
	assert_lex("a:2", "a:10", -1);          /* numeric, not textual */
	cr_assert_eq(fsp_vv_cmp_lex(NULL, vv("")), 0);
	cr_assert_lt(fsp_vv_cmp_lex(NULL, vv("a:1")), 0);
}

Test(vv, cmp_lex_is_a_total_order)
{
	static const char *const texts[] = {"", "a:1", "a:2", "a:1,b:1", "b:1",
	                                    "a:1,b:2", "a:2,b:1", "b:1,c:1", "c:3"};
	enum { N = sizeof(texts) / sizeof(texts[0]) };
	fsp_vv *v[N];
	for (size_t i = 0; i < N; i++)
		v[i] = vv(texts[i]);
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < N; j++) {
			int ij = sign(fsp_vv_cmp_lex(v[i], v[j]));
			cr_assert_eq(ij, -sign(fsp_vv_cmp_lex(v[j], v[i])));
			cr_assert_eq(ij == 0, i == j, "%s vs %s", texts[i], texts[j]);
			for (size_t k = 0; k < N; k++)
				if (ij < 0 && sign(fsp_vv_cmp_lex(v[j], v[k])) < 0)
					cr_assert_lt(fsp_vv_cmp_lex(v[i], v[k]), 0);
		}
}

/* ---- fsp_collection_valid / fsp_scope_valid ---------------------------- */

static char *
repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

Test(check, collection_valid)
{
	char buf[80];
	cr_assert(fsp_collection_valid("a"));
	cr_assert(fsp_collection_valid("case"));
	cr_assert(fsp_collection_valid("field_notes-2"));
	cr_assert(fsp_collection_valid("z0_-"));
	cr_assert(fsp_collection_valid(repeat(buf, 'c', 64)));
	cr_assert_not(fsp_collection_valid(repeat(buf, 'c', 65)));
	cr_assert_not(fsp_collection_valid(""));
	cr_assert_not(fsp_collection_valid("0case"), "first char must be a letter");
	cr_assert_not(fsp_collection_valid("_case"));
	cr_assert_not(fsp_collection_valid("-case"));
	cr_assert_not(fsp_collection_valid("Case"), "uppercase refused");
	cr_assert_not(fsp_collection_valid("caSe"), "uppercase refused");
	cr_assert_not(fsp_collection_valid("ca.se"), "'.' is for scopes only");
	cr_assert_not(fsp_collection_valid("ca se"));
	cr_assert_not(fsp_collection_valid("ca/se"));
	cr_assert_not(fsp_collection_valid("cas\xc3\xa9"));
}

Test(check, scope_valid)
{
	char buf[80];
	cr_assert(fsp_scope_valid("t"));
	cr_assert(fsp_scope_valid("0"), "digit first is fine for a scope");
	cr_assert(fsp_scope_valid("team-1.north_side"));
	cr_assert(fsp_scope_valid("9.."));
	cr_assert(fsp_scope_valid(repeat(buf, 's', 64)));
	cr_assert_not(fsp_scope_valid(repeat(buf, 's', 65)));
	cr_assert_not(fsp_scope_valid(""));
	cr_assert_not(fsp_scope_valid(".team"));
	cr_assert_not(fsp_scope_valid("_team"));
	cr_assert_not(fsp_scope_valid("-team"));
	cr_assert_not(fsp_scope_valid("Team"), "uppercase refused");
	cr_assert_not(fsp_scope_valid("teAm"), "uppercase refused");
	cr_assert_not(fsp_scope_valid("team/1"));
	cr_assert_not(fsp_scope_valid("team 1"));
}

/* ---- fsp_record_check -------------------------------------------------- */

/* A valid record; strings and version are borrowed. */
static void
record_init(fsp_record *r, const char *id)
{
	fieldsync__v1__record__init(r);
	r->collection = (char *)"note";
	r->id = (char *)id;
	r->scope = (char *)"team-1";
	r->version = vv("a:1");
	r->deleted = false;
}

static void
assert_record(const fsp_record *r, bool want, const char *what)
{
	char why[256] = "";
	bool got = fsp_record_check(r, why, sizeof(why));
	cr_assert_eq(got, want, "%s: check returned %d (%s)", what, got, why);
	if (!want)
		cr_assert_neq(why[0], '\0', "%s: no reason written", what);
}

Test(check, record_valid)
{
	fsp_record r;
	record_init(&r, "x");
	assert_record(&r, true, "plain record");
	static const uint8_t bytes[] = {0, 1, 2, 0xff};
	r.payload.data = (uint8_t *)bytes;
	r.payload.len = sizeof(bytes);
	assert_record(&r, true, "record with binary payload");
}

Test(check, record_id_length)
{
	char id[200];
	fsp_record r;
	record_init(&r, repeat(id, 'i', 0));
	assert_record(&r, false, "0-byte id");
	record_init(&r, repeat(id, 'i', 1));
	assert_record(&r, true, "1-byte id");
	record_init(&r, repeat(id, 'i', 128));
	assert_record(&r, true, "128-byte id");
	record_init(&r, repeat(id, 'i', 129));
	assert_record(&r, false, "129-byte id");
}

Test(check, record_tombstone)
{
	fsp_record r;
	record_init(&r, "x");
	r.deleted = true;
	assert_record(&r, true, "tombstone without payload");
	static const uint8_t bytes[] = {'x'};
	r.payload.data = (uint8_t *)bytes;
	r.payload.len = 1;
	assert_record(&r, false, "tombstone with payload");
}

Test(check, record_other_fields)
{
	fsp_record r;
	record_init(&r, "x");
	r.collection = (char *)"Note";
	assert_record(&r, false, "bad collection");
	record_init(&r, "x");
	r.scope = (char *)"";
	assert_record(&r, false, "empty scope");
	record_init(&r, "x");
	r.scope = (char *)"Team";
	assert_record(&r, false, "uppercase scope");
	record_init(&r, "x");
	r.version = NULL;
	assert_record(&r, false, "no version");
	record_init(&r, "x");
	r.version = vv("");
	assert_record(&r, false, "empty version");
	raw_vv raw_v;
	static const char *const reps[] = {"b", "a"};
	static const uint64_t ctr[] = {1, 1};
	record_init(&r, "x");
	r.version = raw(&raw_v, 2, reps, ctr);
	assert_record(&r, false, "unsorted version");
}

/* ---- fsp_typed_check --------------------------------------------------- */

typedef struct {
	uint8_t *data;
	size_t len;
} packed;

static packed
pack_case(const Fieldsync__V1__Case *c)
{
	packed p = {NULL, fieldsync__v1__case__get_packed_size(c)};
	p.data = malloc(p.len ? p.len : 1);
	cr_assert_not_null(p.data);
	cr_assert_eq(fieldsync__v1__case__pack(c, p.data), p.len);
	return p;
}

static packed
pack_contact(const Fieldsync__V1__Contact *c)
{
	packed p = {NULL, fieldsync__v1__contact__get_packed_size(c)};
	p.data = malloc(p.len ? p.len : 1);
	cr_assert_not_null(p.data);
	cr_assert_eq(fieldsync__v1__contact__pack(c, p.data), p.len);
	return p;
}

/* Runs the typed check on p, frees p, and asserts the outcome. */
static void
assert_typed(const char *collection, packed p, bool want, const char *what)
{
	char why[256] = "";
	bool got = fsp_typed_check(collection, p.data, p.len, why, sizeof(why));
	free(p.data);
	cr_assert_eq(got, want, "%s %s: typed check returned %d (%s)", collection, what,
	             got, why);
	if (!want)
		cr_assert_neq(why[0], '\0', "%s %s: no reason written", collection, what);
}

static Fieldsync__V1__Case
good_case(void)
{
	Fieldsync__V1__Case c = FIELDSYNC__V1__CASE__INIT;
	c.person = FIELDSYNC__V1__CASE__PERSON__PARENT;
	c.anonymous = true;
	c.under_18 = false;
	c.contact_person = (char *)"staff-17";
	c.first_contact_at_ms = 1714000000000;
	c.track = FIELDSYNC__V1__CASE__TRACK__PARENT_ACTIVITIES;
	c.follow_up_wanted = true;
	c.follow_up_channel = (char *)"phone";
	return c;
}

static Fieldsync__V1__Contact
good_contact(void)
{
	static char *participants[] = {(char *)"teacher", (char *)"parent"};
	Fieldsync__V1__Contact c = FIELDSYNC__V1__CONTACT__INIT;
	c.case_id = (char *)"case-0001";
	c.kind = FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP;
	c.held_at_ms = 1714000000000;
	c.next_at_ms = 1715000000000;
	c.n_participants = 2;
	c.participants = participants;
	c.notes = (char *)"notes";
	c.who5 = 64;
	return c;
}

Test(typed, collection_typed)
{
	cr_assert(fsp_collection_typed("case"));
	cr_assert(fsp_collection_typed("contact"));
	cr_assert_not(fsp_collection_typed("cases"));
	cr_assert_not(fsp_collection_typed("note"));
	cr_assert_not(fsp_collection_typed("Case"));
}

Test(typed, valid_case_passes)
{
	Fieldsync__V1__Case c = good_case();
	assert_typed("case", pack_case(&c), true, "valid");
	Fieldsync__V1__Case d = FIELDSYNC__V1__CASE__INIT;
	assert_typed("case", pack_case(&d), true, "all defaults (empty payload)");
	d.track = FIELDSYNC__V1__CASE__TRACK__GROUP;
	d.ended_at_ms = 1714000000001;
	assert_typed("case", pack_case(&d), true, "ended group track");
}

Test(typed, case_bad_values_fail)
{
	Fieldsync__V1__Case c = good_case();
	c.person = (Fieldsync__V1__Case__Person)2;
	assert_typed("case", pack_case(&c), false, "person 2");
	c = good_case();
	c.person = (Fieldsync__V1__Case__Person)-1;
	assert_typed("case", pack_case(&c), false, "person -1");
	c = good_case();
	c.track = (Fieldsync__V1__Case__Track)4;
	assert_typed("case", pack_case(&c), false, "track 4");
	c = good_case();
	c.first_contact_at_ms = -1;
	assert_typed("case", pack_case(&c), false, "negative first contact");
	c = good_case();
	c.ended_at_ms = -5;
	assert_typed("case", pack_case(&c), false, "negative end");
}

Test(typed, valid_contact_passes)
{
	Fieldsync__V1__Contact c = good_contact();
	assert_typed("contact", pack_contact(&c), true, "valid");
	c.who5 = -1;
	assert_typed("contact", pack_contact(&c), true, "who5 -1 (not taken)");
	c.who5 = 0;
	assert_typed("contact", pack_contact(&c), true, "who5 0");
	c.who5 = 100;
	assert_typed("contact", pack_contact(&c), true, "who5 100");
	char id[130];
	c.case_id = repeat(id, 'c', 128);
	assert_typed("contact", pack_contact(&c), true, "128-byte case_id");
}

Test(typed, contact_bad_values_fail)
{
	Fieldsync__V1__Contact c = good_contact();
	c.case_id = (char *)"";
	assert_typed("contact", pack_contact(&c), false, "without case_id");
	char id[131];
	c = good_contact();
	c.case_id = repeat(id, 'c', 129);
	assert_typed("contact", pack_contact(&c), false, "129-byte case_id");
	c = good_contact();
	c.who5 = 101;
	assert_typed("contact", pack_contact(&c), false, "who5 101");
	c.who5 = -2;
	assert_typed("contact", pack_contact(&c), false, "who5 -2");
	c = good_contact();
	c.kind = (Fieldsync__V1__Contact__Kind)6;
	assert_typed("contact", pack_contact(&c), false, "kind 6");
	c = good_contact();
	c.kind = (Fieldsync__V1__Contact__Kind)-3;
	assert_typed("contact", pack_contact(&c), false, "kind -3");
	c = good_contact();
	c.held_at_ms = -1;
	assert_typed("contact", pack_contact(&c), false, "negative held_at");
	c = good_contact();
	c.next_at_ms = -1;
	assert_typed("contact", pack_contact(&c), false, "negative next_at");
	Fieldsync__V1__Contact empty = FIELDSYNC__V1__CONTACT__INIT;
	assert_typed("contact", pack_contact(&empty), false, "empty payload");
}

/* Bytes that are not a protobuf message at all. */
static const struct {
	const char *what;
	uint8_t bytes[12];
	size_t len;
} garbage[] = {
	{"truncated string", {0x22, 0x10, 'a'}, 3},        /* field 4, len 16, 1 byte */
	{"varint without value", {0x08}, 1},
	{"overlong varint", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 11},
	{"field number 0", {0x00, 0x01}, 2},
	{"wire type 7", {0x0f, 0x01}, 2},
};

Test(typed, garbage_fails)
{
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		static const char *const typed_names[] = {"case", "contact"};
		for (size_t k = 0; k < 2; k++) {
			packed p = {malloc(garbage[i].len), garbage[i].len};
			cr_assert_not_null(p.data);
			memcpy(p.data, garbage[i].bytes, garbage[i].len);
			assert_typed(typed_names[k], p, false, garbage[i].what);
		}
	}
}

Test(typed, other_collections_always_pass)
{
	static const char *const others[] = {"note", "cases", "contacts", "calendar", "x"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++) {
			packed p = {malloc(garbage[g].len), garbage[g].len};
			cr_assert_not_null(p.data);
			memcpy(p.data, garbage[g].bytes, garbage[g].len);
			assert_typed(others[i], p, true, garbage[g].what);
		}
		Fieldsync__V1__Contact bad = good_contact();
		bad.case_id = (char *)"";
		bad.who5 = 101;
		assert_typed(others[i], pack_contact(&bad), true, "a bad contact");
	}
}
