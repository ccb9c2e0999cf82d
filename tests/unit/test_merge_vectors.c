/*
 * The checked merge vectors of docs/protocol.md §3 (tests/vectors/merge.json):
 * every case is merged with fsp_merge() and its status and resulting
 * sibling set compared with the expected ones, as sets.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/merge.h"

#define VECTORS_FILE FS_VECTORS_DIR "/merge.json"
#define VECTORS_COUNT 300

/* One value decoded from the JSON; owns everything it points to. */
typedef struct {
	fsp_record rec;
	fsp_vv vv;
	fsp_dot *dots;
	fsp_dot **ptrs;
} jvalue;

/* One case: stored siblings, incoming value, expectation. */
typedef struct {
	jvalue **stored;
	size_t n_stored;
	jvalue *in;
	fsp_merge_status status;
	jvalue **result;
	size_t n_result;
} jcase;

static cJSON *doc;

static void
vectors_free(void)
{
	cJSON_Delete(doc);
	doc = NULL;
}

TestSuite(merge_vectors, .fini = vectors_free);

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	size_t got = fread(buf, 1, (size_t)n, f);
	fclose(f);
	if (got != (size_t)n) {
		free(buf);
		cr_assert_fail("short read of %s", path);
	}
	buf[n] = '\0';
	return buf;
}

/* The "cases" array of the vectors file (owned by doc). */
static const cJSON *
load_cases(void)
{
	char *text = slurp(VECTORS_FILE);
	doc = cJSON_Parse(text);
	free(text);
	cr_assert_not_null(doc, "%s is not JSON", VECTORS_FILE);
	const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
	cr_assert(cJSON_IsArray(cases), "%s has no \"cases\" array", VECTORS_FILE);
	return cases;
}

static void
jvalue_free(jvalue *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->vv.n_dots; i++)
		free(v->dots[i].replica);
	free(v->dots);
	free(v->ptrs);
	free(v->rec.payload.data);
	free(v);
}

static void
jvalues_free(jvalue **vs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jvalue_free(vs[i]);
	free(vs);
}

static void
jcase_free(jcase *c)
{
	jvalues_free(c->stored, c->n_stored);
	jvalue_free(c->in);
	jvalues_free(c->result, c->n_result);
	memset(c, 0, sizeof(*c));
}

/*
 * Decodes {"version": [{"replica", "counter"}...], "payload", "deleted"}.
 * The dots are taken exactly as written (not sorted). NULL when malformed.
 */
static jvalue *
jvalue_parse(const cJSON *j)
{
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
	const cJSON *pay = cJSON_GetObjectItemCaseSensitive(j, "payload");
	const cJSON *del = cJSON_GetObjectItemCaseSensitive(j, "deleted");
	if (!cJSON_IsArray(ver) || !cJSON_IsString(pay) || !cJSON_IsBool(del))
		return NULL;
	jvalue *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	size_t n = (size_t)cJSON_GetArraySize(ver);
	fieldsync__v1__record__init(&v->rec);
	fieldsync__v1__version_vector__init(&v->vv);
	v->dots = calloc(n ? n : 1, sizeof(*v->dots));
	v->ptrs = calloc(n ? n : 1, sizeof(*v->ptrs));
	if (v->dots == NULL || v->ptrs == NULL)
		goto bad;
	const cJSON *d;
	size_t i = 0;
	cJSON_ArrayForEach(d, ver) {
		const cJSON *rep = cJSON_GetObjectItemCaseSensitive(d, "replica");
		const cJSON *ctr = cJSON_GetObjectItemCaseSensitive(d, "counter");
		if (!cJSON_IsString(rep) || !cJSON_IsNumber(ctr) || ctr->valuedouble < 0)
			goto bad;
		fieldsync__v1__dot__init(&v->dots[i]);
		v->dots[i].replica = strdup(rep->valuestring);
		if (v->dots[i].replica == NULL)
			goto bad;
		v->dots[i].counter = (uint64_t)ctr->valuedouble;
		v->ptrs[i] = &v->dots[i];
		v->vv.n_dots = ++i;
	}
	v->vv.dots = v->ptrs;
	v->rec.collection = (char *)"note";
	v->rec.id = (char *)"vector-record";
	v->rec.scope = (char *)"team";
	v->rec.version = &v->vv;
	v->rec.deleted = cJSON_IsTrue(del);
	size_t plen = strlen(pay->valuestring);
	if (plen > 0) {
		v->rec.payload.data = malloc(plen);
		if (v->rec.payload.data == NULL)
			goto bad;
		memcpy(v->rec.payload.data, pay->valuestring, plen);
		v->rec.payload.len = plen;
	}
	return v;
bad:
	jvalue_free(v);
	return NULL;
}

static bool
jvalues_parse(const cJSON *arr, jvalue ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(arr))
		return false;
	size_t cap = (size_t)cJSON_GetArraySize(arr);
	*out = calloc(cap ? cap : 1, sizeof(**out));
	if (*out == NULL)
		return false;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		jvalue *v = jvalue_parse(e);
		if (v == NULL)
			return false;
		(*out)[(*n)++] = v;
	}
	return true;
}

static bool
status_parse(const char *s, fsp_merge_status *st)
{
	static const fsp_merge_status all[] = {FSP_MERGE_APPLIED, FSP_MERGE_DUPLICATE,
	                                       FSP_MERGE_OBSOLETE, FSP_MERGE_CONFLICT,
	                                       FSP_MERGE_INVALID};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, fsp_merge_status_name(all[i])) == 0) {
			*st = all[i];
			return true;
		}
	return false;
}

/* Decodes case number idx; asserts (with the index) when it is malformed. */
static void
jcase_parse(const cJSON *j, size_t idx, jcase *c)
{
	memset(c, 0, sizeof(*c));
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
	bool ok = jvalues_parse(cJSON_GetObjectItemCaseSensitive(j, "stored"), &c->stored,
	                        &c->n_stored) &&
	          jvalues_parse(cJSON_GetObjectItemCaseSensitive(j, "result"), &c->result,
	                        &c->n_result) &&
	          (c->in = jvalue_parse(cJSON_GetObjectItemCaseSensitive(j, "incoming"))) !=
	              NULL &&
	          cJSON_IsString(st) && status_parse(st->valuestring, &c->status);
	if (!ok) {
		jcase_free(c);
		cr_assert_fail("case %zu: malformed in %s", idx, VECTORS_FILE);
	}
}

static int
by_version(const void *a, const void *b)
{
	const fsp_record *x = *(fsp_record *const *)a, *y = *(fsp_record *const *)b;
	int c = fsp_vv_cmp_lex(x->version, y->version);
	if (c != 0)
		return c;
	if (x->deleted != y->deleted)
		return x->deleted ? 1 : -1;
	size_t n = x->payload.len < y->payload.len ? x->payload.len : y->payload.len;
	c = n ? memcmp(x->payload.data, y->payload.data, n) : 0;
	if (c != 0)
		return c;
	return (x->payload.len > y->payload.len) - (x->payload.len < y->payload.len);
}

static bool
same_record(const fsp_record *a, const fsp_record *b)
{
	return fsp_vv_cmp_lex(a->version, b->version) == 0 &&
	       fsp_vv_compare(a->version, b->version) == FSP_VV_EQUAL &&
	       a->deleted == b->deleted && a->payload.len == b->payload.len &&
	       (a->payload.len == 0 ||
	        memcmp(a->payload.data, b->payload.data, a->payload.len) == 0);
}

/* Renders a record as "{a:1,b:2} 'payload'" or "{a:1} <deleted>" into buf. */
static const char *
record_str(const fsp_record *r, char *buf, size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "{");
	for (size_t i = 0; r->version != NULL && i < r->version->n_dots && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s:%llu", i ? "," : "",
		                       r->version->dots[i]->replica,
		                       (unsigned long long)r->version->dots[i]->counter);
	if (at < len)
		snprintf(buf + at, len - at, "} '%.*s'%s", (int)r->payload.len,
		         r->payload.len ? (const char *)r->payload.data : "",
		         r->deleted ? " <deleted>" : "");
	return buf;
}

static void
print_set(const char *label, fsp_record *const *s, size_t n)
{
	char buf[512];
	fprintf(stderr, "    %s (%zu):\n", label, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "      %s\n", record_str(s[i], buf, sizeof(buf)));
}

/*
 * True when the n records of a and m of b are the same set of values:
 * both are sorted (in copies) by version, then compared element by element.
 */
static bool
same_set(fsp_record *const *a, size_t n, fsp_record *const *b, size_t m)
{
	if (n != m)
		return false;
	fsp_record **x = calloc(n + 1, sizeof(*x)), **y = calloc(n + 1, sizeof(*y));
	cr_assert(x != NULL && y != NULL);
	memcpy(x, a, n * sizeof(*x));
	memcpy(y, b, n * sizeof(*y));
	qsort(x, n, sizeof(*x), by_version);
	qsort(y, n, sizeof(*y), by_version);
	bool same = true;
	for (size_t i = 0; i < n && same; i++)
		same = same_record(x[i], y[i]);
	free(x);
	free(y);
	return same;
}

/*
 * Runs fsp_merge(stored, in) and checks the result against case c; stored
 * is c's stored siblings in some order. Returns the number of failed checks
 * and explains each on stderr.
 */
static int
check_case(size_t idx, const jcase *c, fsp_record **stored, const char *variant)
{
	size_t n = c->n_stored;
	fsp_record **out = calloc(n + 2, sizeof(*out));
	fsp_record **want = calloc(c->n_result + 1, sizeof(*want));
	cr_assert(out != NULL && want != NULL);
	for (size_t i = 0; i < c->n_result; i++)
		want[i] = &c->result[i]->rec;

	/* A canary past the documented n + 1 slots. */
	fsp_record canary;
	out[n + 1] = &canary;
	size_t n_out = (size_t)-1;
	fsp_merge_status st = fsp_merge(stored, n, &c->in->rec, out, &n_out);
	int failed = 0;
	const char *why = NULL;

	if (st != c->status) {
		why = "wrong status";
	} else if (n_out > n + 1 || out[n + 1] != &canary) {
		why = "wrote past n + 1 output slots";
	} else {
		/* Every output is one of the inputs, stored order kept, `in` last. */
		size_t next = 0;
		for (size_t i = 0; i < n_out && why == NULL; i++) {
			if (out[i] == &c->in->rec) {
				if (i != n_out - 1)
					why = "incoming value is not last in the output";
				continue;
			}
			while (next < n && stored[next] != out[i])
				next++;
			if (next == n)
				why = "output holds a pointer that is not a stored sibling "
				      "(or breaks stored order, or repeats one)";
			else
				next++;
		}
		if (why == NULL && !same_set(out, n_out, want, c->n_result))
			why = "wrong sibling set";
		if (why == NULL && (st == FSP_MERGE_INVALID || st == FSP_MERGE_DUPLICATE ||
		                    st == FSP_MERGE_OBSOLETE)) {
			if (n_out != n)
				why = "set changed although the status says unchanged";
			for (size_t i = 0; i < n && why == NULL; i++)
				if (out[i] != stored[i])
					why = "set changed although the status says unchanged";
		}
	}
	if (why != NULL) {
		char buf[512];
		failed = 1;
		fprintf(stderr, "merge.json case %zu (%s): %s: got %s, want %s\n", idx,
		        variant, why, fsp_merge_status_name(st),
		        fsp_merge_status_name(c->status));
		print_set("stored", stored, n);
		fprintf(stderr, "    incoming: %s\n",
		        record_str(&c->in->rec, buf, sizeof(buf)));
		print_set("expected", want, c->n_result);
		if (n_out <= n + 1)
			print_set("got", out, n_out);
	}
	cr_expect(why == NULL, "merge.json case %zu (%s): %s", idx, variant,
	          why ? why : "");

	/* Merging is idempotent: the incoming value again is a DUPLICATE. */
	if (why == NULL && (st == FSP_MERGE_APPLIED || st == FSP_MERGE_CONFLICT)) {
		fsp_record **again = calloc(n_out + 1, sizeof(*again));
		size_t n_again = 0;
		cr_assert_not_null(again);
		fsp_merge_status st2 = fsp_merge(out, n_out, &c->in->rec, again, &n_again);
		cr_expect_eq(st2, FSP_MERGE_DUPLICATE,
		             "merge.json case %zu (%s): merging the incoming value again "
		             "gave %s, want DUPLICATE",
		             idx, variant, fsp_merge_status_name(st2));
		failed += st2 != FSP_MERGE_DUPLICATE;
		free(again);
	}
	free(out);
	free(want);
	return failed;
}

/* The stored records of case c before the merge, to detect mutation. */
static bool
stored_untouched(const jcase *c, const jcase *pristine)
{
	for (size_t i = 0; i < c->n_stored; i++)
		if (!same_record(&c->stored[i]->rec, &pristine->stored[i]->rec))
			return false;
	return same_record(&c->in->rec, &pristine->in->rec);
}

Test(merge_vectors, file_has_all_cases)
{
	const cJSON *cases = load_cases();
	cr_assert_eq(cJSON_GetArraySize(cases), VECTORS_COUNT,
	             "%s has %d cases, want %d (truncated copy?)", VECTORS_FILE,
	             cJSON_GetArraySize(cases), VECTORS_COUNT);
}

Test(merge_vectors, every_case)
{
	const cJSON *cases = load_cases();
	const cJSON *j;
	size_t idx = 0, failed = 0;
	size_t per_status[FSP_MERGE_INVALID + 1] = {0};

	cJSON_ArrayForEach(j, cases) {
		jcase c, pristine;
		jcase_parse(j, idx, &c);
		jcase_parse(j, idx, &pristine);
		per_status[c.status]++;

		/* The vectors themselves must be well formed. */
		for (size_t i = 0; i <= c.n_stored; i++) {
			const fsp_vv *v = i < c.n_stored ? &c.stored[i]->vv : &c.in->vv;
			const char *why = NULL;
			cr_expect(fsp_vv_check(v, &why), "merge.json case %zu: bad version: %s",
			          idx, why);
		}

		fsp_record **stored = calloc(c.n_stored + 1, sizeof(*stored));
		cr_assert_not_null(stored);
		for (size_t i = 0; i < c.n_stored; i++)
			stored[i] = &c.stored[i]->rec;
		failed += (size_t)check_case(idx, &c, stored, "as written");

		/* The stored order must not matter. */
		for (size_t i = 0; i < c.n_stored; i++)
			stored[i] = &c.stored[c.n_stored - 1 - i]->rec;
		failed += (size_t)check_case(idx, &c, stored, "stored reversed");

		cr_expect(stored_untouched(&c, &pristine),
		          "merge.json case %zu: fsp_merge modified its inputs", idx);
		free(stored);
		jcase_free(&c);
		jcase_free(&pristine);
		idx++;
	}
	cr_assert_eq(idx, VECTORS_COUNT, "ran %zu cases, want %d", idx, VECTORS_COUNT);
	cr_assert_eq(failed, 0, "%zu failed checks over %zu cases (see stderr)", failed,
	             idx);
	/* The file exercises every outcome. */
	for (int s = FSP_MERGE_APPLIED; s <= FSP_MERGE_INVALID; s++)
		cr_assert_gt(per_status[s], 0, "no case expects %s",
		             fsp_merge_status_name((fsp_merge_status)s));
}
