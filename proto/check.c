/*
 * The record rules every side enforces before anything is written
 * (PROTOCOL.md §3 and docs/protocol-notes.md), and the typed payload checks
 * of METHOD.md's collections.
 */
#include <stdio.h>
#include <string.h>

#include "fieldsync/merge.h"
#include "fieldsync/v1/casework.pb-c.h"

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool
fsp_collection_valid(const char *name)
{
	size_t l = strlen(name);
	if (l == 0 || l > FSP_COLLECTION_MAX || !(name[0] >= 'a' && name[0] <= 'z'))
		return false;
	for (size_t i = 1; i < l; i++)
		if (!is_lower_alnum(name[i]) && name[i] != '_' && name[i] != '-')
			return false;
	return true;
}

bool
fsp_scope_valid(const char *scope)
{
	size_t l = strlen(scope);
	if (l == 0 || l > FSP_SCOPE_MAX || !is_lower_alnum(scope[0]))
		return false;
	for (size_t i = 1; i < l; i++)
		if (!is_lower_alnum(scope[i]) && scope[i] != '_' && scope[i] != '-' &&
		    scope[i] != '.')
			return false;
	return true;
}

bool
fsp_record_check(const fsp_record *r, char *why, size_t len)
{
	const char *vwhy = NULL;
	size_t idlen = strlen(r->id);

	if (!fsp_collection_valid(r->collection)) {
		snprintf(why, len, "collection must match [a-z][a-z0-9_-]{0,63}");
		return false;
	}
	if (idlen == 0 || idlen > FSP_ID_MAX) {
		snprintf(why, len, "id must be 1..%d bytes", FSP_ID_MAX);
		return false;
	}
	if (!fsp_scope_valid(r->scope)) {
		snprintf(why, len, "scope must match [a-z0-9][a-z0-9._-]{0,63}");
		return false;
	}
	if (!fsp_vv_check(r->version, &vwhy)) {
		snprintf(why, len, "%s", vwhy);
		return false;
	}
	if (r->deleted && r->payload.len != 0) {
		snprintf(why, len, "a tombstone (deleted) must not carry a payload");
		return false;
	}
	return true;
}

bool
fsp_collection_typed(const char *collection)
{
	return strcmp(collection, "case") == 0 || strcmp(collection, "contact") == 0;
}

/* Field number 0 is not valid protobuf, but libprotobuf-c 1.4 accepts it in a
 * two-byte tag and keeps it as an unknown field, which it then re-encodes
 * in a form its own decoder refuses. Nothing carrying one is accepted. */
static bool
has_field_zero(const ProtobufCMessage *m)
{
	for (size_t i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	return false;
}

bool
fsp_record_has_field_zero(const fsp_record *r)
{
	if (has_field_zero(&r->base))
		return true;
	if (r->version != NULL) {
		if (has_field_zero(&r->version->base))
			return true;
		for (size_t i = 0; i < r->version->n_dots; i++)
			if (has_field_zero(&r->version->dots[i]->base))
				return true;
	}
	return false;
}

static bool
check_case(const uint8_t *p, size_t n, char *why, size_t len)
{
	Fieldsync__V1__Case *c = fieldsync__v1__case__unpack(NULL, n, p);
	bool ok = false;
	if (c == NULL) {
		snprintf(why, len, "payload of a case does not decode as fieldsync.v1.Case");
		return false;
	}
	if (has_field_zero(&c->base))
		snprintf(why, len, "payload of a case holds field number 0 (not valid protobuf)");
	else if ((unsigned)c->person > FIELDSYNC__V1__CASE__PERSON__PARENT)
		snprintf(why, len, "case.person is not a known value");
	else if ((unsigned)c->track > FIELDSYNC__V1__CASE__TRACK__PARENT_ACTIVITIES)
		snprintf(why, len, "case.track is not a known value");
	else if (c->first_contact_at_ms < 0 || c->ended_at_ms < 0)
		snprintf(why, len, "case times must not be negative");
	else
		ok = true;
	fieldsync__v1__case__free_unpacked(c, NULL);
	return ok;
}

static bool
check_contact(const uint8_t *p, size_t n, char *why, size_t len)
{
	Fieldsync__V1__Contact *c = fieldsync__v1__contact__unpack(NULL, n, p);
	bool ok = false;
	if (c == NULL) {
		snprintf(why, len, "payload of a contact does not decode as fieldsync.v1.Contact");
		return false;
	}
	if (has_field_zero(&c->base))
		snprintf(why, len, "payload of a contact holds field number 0 (not valid protobuf)");
	else if (c->case_id[0] == '\0' || strlen(c->case_id) > FSP_ID_MAX)
		snprintf(why, len, "contact.case_id must be 1..%d bytes", FSP_ID_MAX);
	else if ((unsigned)c->kind > FIELDSYNC__V1__CONTACT__KIND__FOLLOW_UP)
		snprintf(why, len, "contact.kind is not a known value");
	else if (c->who5 < -1 || c->who5 > 100)
		snprintf(why, len, "contact.who5 must be -1..100");
	else if (c->held_at_ms < 0 || c->next_at_ms < 0)
		snprintf(why, len, "contact times must not be negative");
	else
		ok = true;
	fieldsync__v1__contact__free_unpacked(c, NULL);
	return ok;
}

bool
fsp_typed_check(const char *collection, const uint8_t *payload, size_t len,
                char *why, size_t why_len)
{
	if (strcmp(collection, "case") == 0)
		return check_case(payload, len, why, why_len);
	if (strcmp(collection, "contact") == 0)
		return check_contact(payload, len, why, why_len);
	return true;
}
