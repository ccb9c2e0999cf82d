/*
 * The merge rule of PROTOCOL.md §3, the one implementation.
 *
 * NOTES ON THE DESIGN OF THE MERGE
 *
 * A record is a set S of sibling values, each with a version vector. The
 * invariants, which fsp_merge() keeps and the property test checks:
 *
 *   I1  the siblings of S are pairwise concurrent (none is <= another);
 *   I2  no two siblings have equal versions;
 *   I3  a value is only ever removed from S by an incoming value whose
 *       version dominates it, so a concurrent edit is never dropped;
 *   I4  merging is idempotent, commutative and associative over values with
 *       distinct dots, so replicas that saw the same values in any order,
 *       with duplicates, hold the same S.
 *
 * For an incoming value V, in this order:
 *
 *   1. some s in S has version(s) == version(V):
 *        same value (tombstone flag and payload bytes)  -> DUPLICATE
 *        different value                                -> INVALID: a replica
 *          reused a dot; the change is rejected, never merged silently.
 *   2. some s in S dominates V                          -> OBSOLETE
 *   3. otherwise drop every s with s < V, add V:
 *        one survivor (V alone)                          -> APPLIED
 *        more than one                                   -> CONFLICT
 *
 * Deletes are values (tombstones) and follow the same rule, so a delete
 * concurrent with an edit is a conflict. A resolving write is a value whose
 * version dominates every sibling: step 3 then leaves V alone.
 */
#include <string.h>

#include "fieldsync/merge.h"

bool
fsp_record_same_value(const fsp_record *a, const fsp_record *b)
{
	if (a->deleted != b->deleted)
		return false;
	if (a->payload.len != b->payload.len)
		return false;
	return a->payload.len == 0 || memcmp(a->payload.data, b->payload.data, a->payload.len) == 0;
}

fsp_merge_status
fsp_merge(fsp_record *const *stored, size_t n, fsp_record *in, fsp_record **out, size_t *n_out)
{
	fsp_merge_status st = FSP_MERGE_APPLIED;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		fsp_vv_order o = fsp_vv_compare(in->version, stored[i]->version);
		if (o == FSP_VV_EQUAL) {
			st = fsp_record_same_value(in, stored[i]) ? FSP_MERGE_DUPLICATE
			                                          : FSP_MERGE_INVALID;
			goto unchanged;
		}
		if (o == FSP_VV_DOMINATED)
			st = FSP_MERGE_OBSOLETE; /* keep looking: an equal one outranks */
	}
	if (st == FSP_MERGE_OBSOLETE)
		goto unchanged;

	for (size_t i = 0; i < n; i++)
		if (fsp_vv_compare(in->version, stored[i]->version) == FSP_VV_CONCURRENT)
			out[m++] = stored[i];
	out[m++] = in;
	*n_out = m;
	return m == 1 ? FSP_MERGE_APPLIED : FSP_MERGE_CONFLICT;

unchanged:
	for (size_t i = 0; i < n; i++)
		out[i] = stored[i];
	*n_out = n;
	return st;
}

const char *
fsp_merge_status_name(fsp_merge_status s)
{
	switch (s) {
	case FSP_MERGE_APPLIED:
		return "APPLIED";
	case FSP_MERGE_DUPLICATE:
		return "DUPLICATE";
	case FSP_MERGE_OBSOLETE:
		return "OBSOLETE";
	case FSP_MERGE_CONFLICT:
		return "CONFLICT";
	case FSP_MERGE_INVALID:
		return "INVALID";
	}
	return "?";
}
