/*
 * Version vectors: compare, join, increment. A vector is a list of dots
 * (replica, counter) sorted strictly by replica with no zero counter; an
 * absent replica counts as 0. Every function here relies on that order and
 * fsp_vv_check() is the gate that guarantees it for anything from outside.
 */
#include <stdlib.h>
#include <string.h>

#include "fieldsync/merge.h"

static size_t
vv_len(const fsp_vv *v)
{
	return v == NULL ? 0 : v->n_dots;
}

fsp_vv_order
fsp_vv_compare(const fsp_vv *a, const fsp_vv *b)
{
	size_t na = vv_len(a), nb = vv_len(b), i = 0, j = 0;
	bool a_bigger = false, b_bigger = false;

	while (i < na || j < nb) {
		int c;
		if (i == na)
			c = 1;
		else if (j == nb)
			c = -1;
		else
			c = strcmp(a->dots[i]->replica, b->dots[j]->replica);
		if (c < 0) { /* only a has this replica */
			a_bigger = a->dots[i]->counter > 0 || a_bigger;
			i++;
		} else if (c > 0) {
			b_bigger = b->dots[j]->counter > 0 || b_bigger;
			j++;
		} else {
			uint64_t x = a->dots[i]->counter, y = b->dots[j]->counter;
			if (x > y)
				a_bigger = true;
			else if (y > x)
				b_bigger = true;
			i++;
			j++;
		}
		if (a_bigger && b_bigger)
			return FSP_VV_CONCURRENT;
	}
	if (a_bigger)
		return FSP_VV_DOMINATES;
	if (b_bigger)
		return FSP_VV_DOMINATED;
	return FSP_VV_EQUAL;
}

uint64_t
fsp_vv_get(const fsp_vv *v, const char *replica)
{
	for (size_t i = 0; i < vv_len(v); i++)
		if (strcmp(v->dots[i]->replica, replica) == 0)
			return v->dots[i]->counter;
	return 0;
}

/*
 * One allocation holds the vector, its pointer array, the dots and the
 * replica strings, so fsp_vv_free() is a single free().
 */
static fsp_vv *
vv_alloc(size_t n, size_t str_bytes, char **strings)
{
	size_t head = sizeof(fsp_vv) + n * sizeof(fsp_dot *) + n * sizeof(fsp_dot);
	unsigned char *mem = malloc(head + str_bytes);
	if (mem == NULL)
		return NULL;
	fsp_vv *v = (fsp_vv *)mem;
	fieldsync__v1__version_vector__init(v);
	v->n_dots = n;
	v->dots = n ? (fsp_dot **)(mem + sizeof(fsp_vv)) : NULL;
	fsp_dot *dots = (fsp_dot *)(mem + sizeof(fsp_vv) + n * sizeof(fsp_dot *));
	for (size_t i = 0; i < n; i++) {
		fieldsync__v1__dot__init(&dots[i]);
		v->dots[i] = &dots[i];
	}
	*strings = (char *)(mem + head);
	return v;
}

/* Builds a vector from a sorted list of (replica, counter) pairs. */
static fsp_vv *
vv_build(const char *const *reps, const uint64_t *counters, size_t n)
{
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += strlen(reps[i]) + 1;
	char *s;
	fsp_vv *v = vv_alloc(n, bytes, &s);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(reps[i]) + 1;
		memcpy(s, reps[i], l);
		v->dots[i]->replica = s;
		v->dots[i]->counter = counters[i];
		s += l;
	}
	return v;
}

bool
fsp_vv_join(const fsp_vv *const *vs, size_t n, fsp_vv **out)
{
	size_t cap = 0;
	for (size_t k = 0; k < n; k++)
		cap += vv_len(vs[k]);
	const char **reps = malloc((cap ? cap : 1) * sizeof(*reps));
	uint64_t *ctr = malloc((cap ? cap : 1) * sizeof(*ctr));
	size_t *pos = calloc(n ? n : 1, sizeof(*pos));
	size_t m = 0;
	*out = NULL;
	if (reps == NULL || ctr == NULL || pos == NULL)
		goto out;
	/* n-way merge of sorted lists, taking the maximum counter per replica. */
	for (;;) {
		const char *min = NULL;
		for (size_t k = 0; k < n; k++)
			if (pos[k] < vv_len(vs[k])) {
				const char *r = vs[k]->dots[pos[k]]->replica;
				if (min == NULL || strcmp(r, min) < 0)
					min = r;
			}
		if (min == NULL)
			break;
		uint64_t best = 0;
		for (size_t k = 0; k < n; k++)
			if (pos[k] < vv_len(vs[k]) &&
			    strcmp(vs[k]->dots[pos[k]]->replica, min) == 0) {
				if (vs[k]->dots[pos[k]]->counter > best)
					best = vs[k]->dots[pos[k]]->counter;
				pos[k]++;
			}
		reps[m] = min;
		ctr[m] = best;
		m++;
	}
	*out = vv_build(reps, ctr, m);
out:
	free(reps);
	free(ctr);
	free(pos);
	return *out != NULL;
}

bool
fsp_vv_increment(const fsp_vv *v, const char *replica, fsp_vv **out)
{
	size_t n = vv_len(v);
	const char **reps = malloc((n + 1) * sizeof(*reps));
	uint64_t *ctr = malloc((n + 1) * sizeof(*ctr));
	size_t m = 0;
	bool placed = false;
	*out = NULL;
	if (reps == NULL || ctr == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int c = strcmp(v->dots[i]->replica, replica);
		if (!placed && c > 0) {
			reps[m] = replica;
			ctr[m++] = 1;
			placed = true;
		}
		reps[m] = v->dots[i]->replica;
		ctr[m] = v->dots[i]->counter;
		if (c == 0) {
			if (ctr[m] == UINT64_MAX) /* a counter that cannot grow: refuse */
				goto out;
			ctr[m]++;
			placed = true;
		}
		m++;
	}
	if (!placed) {
		reps[m] = replica;
		ctr[m++] = 1;
	}
	*out = vv_build(reps, ctr, m);
out:
	free(reps);
	free(ctr);
	return *out != NULL;
}

fsp_vv *
fsp_vv_dup(const fsp_vv *v)
{
	fsp_vv *out = NULL;
	const fsp_vv *one[1] = {v};
	(void)fsp_vv_join(one, 1, &out);
	return out;
}

void
fsp_vv_free(fsp_vv *v)
{
	free(v);
}

bool
fsp_vv_check(const fsp_vv *v, const char **why)
{
	if (v == NULL || v->n_dots == 0) {
		*why = "version has no dots";
		return false;
	}
	if (v->n_dots > FSP_DOTS_MAX) {
		*why = "version has too many dots";
		return false;
	}
	for (size_t i = 0; i < v->n_dots; i++) {
		const fsp_dot *d = v->dots[i];
		size_t l = strlen(d->replica);
		if (l == 0 || l > FSP_REPLICA_MAX) {
			*why = "version has a dot whose replica is empty or too long";
			return false;
		}
		if (d->counter == 0) {
			*why = "version has a zero counter";
			return false;
		}
		if (i > 0 && strcmp(v->dots[i - 1]->replica, d->replica) >= 0) {
			*why = "version dots are not sorted by replica, or repeat one";
			return false;
		}
	}
	return true;
}

int
fsp_vv_cmp_lex(const fsp_vv *a, const fsp_vv *b)
{
	size_t na = vv_len(a), nb = vv_len(b);
	for (size_t i = 0; i < na && i < nb; i++) {
		int c = strcmp(a->dots[i]->replica, b->dots[i]->replica);
		if (c != 0)
			return c;
		if (a->dots[i]->counter != b->dots[i]->counter)
			return a->dots[i]->counter < b->dots[i]->counter ? -1 : 1;
	}
	return na < nb ? -1 : na > nb ? 1 : 0;
}
