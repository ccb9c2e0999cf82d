/*
 * validate: push validation (logic layer; validate.h): everything a change set is checked against before the
 * writer sees it, so nothing invalid ever reaches a transaction. The one
 * check that needs the stored record (an equal version with a different
 * payload) is the merge rule's INVALID, found by the writer.
 *
 * A change set is atomic: when one change is bad, the reply is a PushReply
 * whose every result is REJECTED. The bad change's reason starts with the
 * Error code's name as the protocol spells it ("INVALID: ...", "TOO_LARGE:
 * ..."; taken from the generated enum descriptor, never typed by hand), the
 * others say they were not applied (docs/protocol-notes.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/v1/casework.pb-c.h"
#include "validate.h"

#define CHANGESET_ID_MAX 128

static fs_push_reply *reject_all(const char *changeset_id, size_t n, size_t bad, const char *name,
                                 const char *why);

fs_push_reply *
validate_reject_all(const char *changeset_id, size_t n, size_t bad, fs_error_code code,
                    const char *why)
{
	const ProtobufCEnumValue *cv =
		protobuf_c_enum_descriptor_get_value(&fieldsync__v1__error__code__descriptor,
	                                             (int)code);
	return reject_all(changeset_id, n, bad, cv != NULL ? cv->name : "UNSPECIFIED", why);
}

fs_push_reply *
validate_defer_all(const char *changeset_id, size_t n, size_t bad, const char *why)
{
	return reject_all(changeset_id, n, bad, "DEFERRED", why);
}

static fs_push_reply *
reject_all(const char *changeset_id, size_t n, size_t bad, const char *name, const char *why)
{
	fs_push_reply *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	fieldsync__v1__push_reply__init(r);
	r->changeset_id = strdup(changeset_id);
	r->results = calloc(n ? n : 1, sizeof(*r->results));
	if (r->changeset_id == NULL || r->results == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		char buf[320];
		fs_change_result *cr = calloc(1, sizeof(*cr));
		if (cr == NULL)
			goto fail;
		fieldsync__v1__change_result__init(cr);
		r->results[r->n_results++] = cr;
		cr->status = FIELDSYNC__V1__CHANGE_RESULT__STATUS__REJECTED;
		if (i == bad)
			snprintf(buf, sizeof(buf), "%s: %s", name, why);
		else
			snprintf(buf, sizeof(buf),
			         "not applied: change %zu of this change set was rejected", bad);
		if ((cr->reason = strdup(buf)) == NULL)
			goto fail;
	}
	return r;
fail:
	validate_reply_free(r);
	return NULL;
}

void
validate_reply_free(fs_push_reply *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_results; i++) {
		if (r->results[i]->reason != protobuf_c_empty_string)
			free(r->results[i]->reason);
		free(r->results[i]);
	}
	free(r->results);
	if (r->changeset_id != protobuf_c_empty_string)
		free(r->changeset_id);
	free(r);
}

/* The string fields of a typed payload (already decoded once by
 * fsp_typed_check) are UTF-8, so a strict peer can decode what it pulls. */
static bool
typed_strings_ok(const fsp_record *r, char *why, size_t len)
{
	const ProtobufCMessageDescriptor *d = strcmp(r->collection, "case") == 0
	                                              ? &fieldsync__v1__case__descriptor
	                                              : &fieldsync__v1__contact__descriptor;
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, r->payload.len, r->payload.data);
	bool ok = m != NULL && fsp_message_strict(m, true, why, len);
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
	return ok;
}

/* Checks one record; the wire code of what is wrong (UNSPECIFIED: nothing). */
static fs_error_code
check_change(const config *c, const Fieldsync__V1__Change *ch, char *why, size_t len)
{
	const fsp_record *r = ch->record;
	if (r == NULL) {
		snprintf(why, len, "change has no record");
		return FIELDSYNC__V1__ERROR__CODE__INVALID;
	}
	if (r->payload.len > c->max_payload_bytes) {
		snprintf(why, len, "payload is %zu bytes, the limit is %llu", r->payload.len,
		         (unsigned long long)c->max_payload_bytes);
		return FIELDSYNC__V1__ERROR__CODE__TOO_LARGE;
	}
	if (fsp_record_has_field_zero(r)) {
		snprintf(why, len, "the record holds field number 0, which is not valid protobuf");
		return FIELDSYNC__V1__ERROR__CODE__INVALID;
	}
	/* Strict input (PROTOCOL.md §2): every string UTF-8, no field the
	 * protocol does not define (an unknown field could carry megabytes past
	 * the payload cap, or data on a tombstone), then the record rules. */
	if (!fsp_record_strict(r, why, len))
		return FIELDSYNC__V1__ERROR__CODE__INVALID;
	/* Absurd counters never reach a tablet (PROTOCOL.md §3). */
	for (size_t i = 0; i < r->version->n_dots; i++)
		if (r->version->dots[i]->counter > FSP_COUNTER_MAX) {
			snprintf(why, len, "a version counter is above 2^53");
			return FIELDSYNC__V1__ERROR__CODE__INVALID;
		}
	if (!r->deleted && fsp_collection_typed(r->collection) &&
	    (!fsp_typed_check(r->collection, r->payload.data, r->payload.len, why, len) ||
	     !typed_strings_ok(r, why, len)))
		return FIELDSYNC__V1__ERROR__CODE__INVALID;
	return FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED;
}

fsd_err
validate_push(const config *c, const peer_auth *peer, const fs_push_request *p,
              fs_error_code *err_code, char *err_msg, size_t err_len, fs_push_reply **reply)
{
	size_t idl = strlen(p->changeset_id);
	*reply = NULL;
	if (idl == 0 || idl > CHANGESET_ID_MAX || !fsp_utf8_valid(p->changeset_id, idl)) {
		*err_code = FIELDSYNC__V1__ERROR__CODE__INVALID;
		snprintf(err_msg, err_len, "changeset_id must be 1..%d bytes of UTF-8",
		         CHANGESET_ID_MAX);
		return FSD_INVALID;
	}
	if (p->n_changes > c->max_changes_per_push) {
		*err_code = FIELDSYNC__V1__ERROR__CODE__TOO_LARGE;
		snprintf(err_msg, err_len, "%zu changes in one change set, the limit is %u",
		         p->n_changes, c->max_changes_per_push);
		return FSD_TOO_LARGE;
	}
	for (size_t i = 0; i < p->n_changes; i++) {
		char why[256];
		fs_error_code code = check_change(c, p->changes[i], why, sizeof(why));
		if (code == FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED &&
		    !peer_may(peer, p->changes[i]->record->scope)) {
			snprintf(why, sizeof(why), "scope \"%s\" is not granted to this device",
			         p->changes[i]->record->scope);
			code = FIELDSYNC__V1__ERROR__CODE__FORBIDDEN;
		}
		if (code != FIELDSYNC__V1__ERROR__CODE__UNSPECIFIED) {
			*reply = validate_reject_all(p->changeset_id, p->n_changes, i, code, why);
			if (*reply == NULL) {
				*err_code = FIELDSYNC__V1__ERROR__CODE__INTERNAL;
				snprintf(err_msg, err_len, "out of memory");
				return FSD_NOMEM;
			}
			return code == FIELDSYNC__V1__ERROR__CODE__TOO_LARGE   ? FSD_TOO_LARGE
			       : code == FIELDSYNC__V1__ERROR__CODE__FORBIDDEN ? FSD_FORBIDDEN
			                                                       : FSD_INVALID;
		}
	}
	return FSD_OK;
}
