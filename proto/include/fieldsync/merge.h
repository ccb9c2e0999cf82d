/*
 * libfieldsync-proto: version vectors, the merge rule of PROTOCOL.md §3 and
 * the record rules every side checks. The one implementation, shared by the
 * daemon (fieldsyncd) and the tablet SDK (libfieldsync).
 *
 * The functions work on the protobuf-c structs generated from
 * proto/fieldsync/v1/sync.proto, so a record decoded from the wire or from a
 * store can be merged without copying. Nothing here allocates except
 * fsp_vv_join() and fsp_vv_increment(), which say so.
 *
 * The rest of the shared core, each the one implementation both hosts use:
 * limits.h (size limits), casework.h (typed payloads, the case of a
 * contact), keys.h (LMDB key layouts, integer encodings), calendar.h and
 * rules.h (deadlines), and in libfieldsync-crypto crypto.h (AES-GCM, keys,
 * UUIDs) and seal.h (the sealed-value format and the data-key names).
 */
#ifndef FIELDSYNC_MERGE_H
#define FIELDSYNC_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The typed payload checks (fsp_collection_typed, fsp_typed_check) moved
 * to casework.h with the other casework helpers; it is included here so the
 * callers that know them from this header keep compiling. */
#include "fieldsync/casework.h"
#include "fieldsync/limits.h" /* FSP_COLLECTION_MAX, FSP_ID_MAX, ... */
#include "fieldsync/v1/sync.pb-c.h"

typedef Fieldsync__V1__Dot fsp_dot;
typedef Fieldsync__V1__VersionVector fsp_vv;
typedef Fieldsync__V1__Record fsp_record;

/*
 * The largest counter a version may carry (2^53, the largest integer every
 * JSON and JavaScript peer holds exactly). No honest replica comes near it;
 * the daemon refuses a version above it (PROTOCOL.md §3: absurd counters
 * never reach a tablet), so fsp_vv_increment() never meets UINT64_MAX.
 */
#define FSP_COUNTER_MAX (UINT64_C(1) << 53)

/* How version a relates to version b. */
typedef enum {
	FSP_VV_EQUAL = 0,
	FSP_VV_DOMINATED,  /* a < b: every dot of a is <= b, and a != b */
	FSP_VV_DOMINATES,  /* a > b */
	FSP_VV_CONCURRENT, /* neither */
} fsp_vv_order;

/* The outcome of merging one incoming value into a stored sibling set. */
typedef enum {
	FSP_MERGE_APPLIED = 0, /* one sibling survives: the incoming value */
	FSP_MERGE_DUPLICATE,   /* an equal version with the same value is stored */
	FSP_MERGE_OBSOLETE,    /* a stored sibling dominates the incoming value */
	FSP_MERGE_CONFLICT,    /* the incoming value joins concurrent siblings */
	FSP_MERGE_INVALID,     /* equal version, different value: a reused dot */
} fsp_merge_status;

/*
 * Compares two version vectors that pass fsp_vv_check(). A NULL vector is
 * the empty one. O(len a + len b); never allocates.
 */
fsp_vv_order fsp_vv_compare(const fsp_vv *a, const fsp_vv *b);

/* The counter of `replica` in `v`, 0 when absent. */
uint64_t fsp_vv_get(const fsp_vv *v, const char *replica);

/*
 * Sets *out to the join (pointwise maximum) of the n vectors in vs. *out is
 * allocated with malloc; free it with fsp_vv_free(). Returns false only when
 * memory runs out, leaving *out NULL.
 */
bool fsp_vv_join(const fsp_vv *const *vs, size_t n, fsp_vv **out);

/*
 * Sets *out to copy(v) with replica's counter raised by one (added when
 * absent), keeping the dots sorted. Allocated like fsp_vv_join(). Returns
 * false, *out NULL, when memory runs out or the counter is already
 * UINT64_MAX (it cannot be raised).
 */
bool fsp_vv_increment(const fsp_vv *v, const char *replica, fsp_vv **out);

/* Deep copy; NULL on out of memory. */
fsp_vv *fsp_vv_dup(const fsp_vv *v);

/* Frees a vector made by fsp_vv_join/increment/dup. Accepts NULL. */
void fsp_vv_free(fsp_vv *v);

/*
 * Checks PROTOCOL.md §3's rule for a version: at least one dot, replicas
 * non-empty and at most FSP_REPLICA_MAX bytes, sorted strictly ascending
 * (bytewise), no zero counters. On failure returns false and points *why at
 * a static sentence.
 */
bool fsp_vv_check(const fsp_vv *v, const char **why);

/* True when a and b carry the same value: same tombstone flag, same payload bytes. */
bool fsp_record_same_value(const fsp_record *a, const fsp_record *b);

/*
 * The merge rule of PROTOCOL.md §3. `stored` holds the n current siblings of
 * one record (pairwise concurrent), `in` the incoming value. On return
 * out[0..*n_out) holds the sibling set after the merge: pointers into stored
 * and possibly `in`, in stored order with `in` last. `out` must have room for
 * n + 1 pointers. For DUPLICATE, OBSOLETE and INVALID the set is unchanged.
 * Never allocates; never drops a value concurrent with `in`.
 */
fsp_merge_status fsp_merge(fsp_record *const *stored, size_t n, fsp_record *in, fsp_record **out,
                           size_t *n_out);

/* "APPLIED", "CONFLICT", ... */
const char *fsp_merge_status_name(fsp_merge_status s);

/*
 * Record rules every side enforces before anything is written: collection
 * and id syntax, scope syntax, a valid version, and a tombstone without a
 * payload. Does not look at typed payloads (see fsp_typed_check()). On
 * failure returns false and writes a sentence naming the field to why[0..len).
 */
bool fsp_record_check(const fsp_record *r, char *why, size_t len);

/*
 * Strict input (PROTOCOL.md §2), the same on both hosts. fsp_utf8_valid: the
 * n bytes are well-formed UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF). fsp_message_strict: every string field of m and of the
 * messages it holds is UTF-8 and, unless unknown_ok, no message carries a
 * field number its descriptor does not define. fsp_record_strict: both
 * for a Record (no unknown field at all) and then fsp_record_check().
 * fsp_record_state_strict: what a device checks on a pulled state (its
 * names' grammar and UTF-8, every sibling fsp_record_strict, siblings of
 * this record only; fields a newer daemon adds to RecordState itself are
 * let through). On failure false and a sentence in why[0..len).
 */
bool fsp_utf8_valid(const char *s, size_t n);
bool fsp_message_strict(const ProtobufCMessage *m, bool unknown_ok, char *why, size_t len);
bool fsp_record_strict(const fsp_record *r, char *why, size_t len);
bool fsp_record_state_strict(const Fieldsync__V1__RecordState *rs, char *why, size_t len);

/* True when the record, its version or a dot carries field number 0, which
 * is not valid protobuf (libprotobuf-c 1.4 lets it through as an unknown
 * field and then re-encodes it into bytes it cannot decode). */
bool fsp_record_has_field_zero(const fsp_record *r);

/* The same test for one decoded message (its unknown fields only, not its
 * sub-messages): true when it carries field number 0. */
bool fsp_message_has_field_zero(const ProtobufCMessage *m);

/* True when name matches [a-z][a-z0-9_-]{0,63}. */
bool fsp_collection_valid(const char *name);

/* True when scope matches [a-z0-9][a-z0-9._-]{0,63}. */
bool fsp_scope_valid(const char *scope);

/* A total order on versions, for printing and tests: bytewise on the dot list. */
int fsp_vv_cmp_lex(const fsp_vv *a, const fsp_vv *b);

#endif
