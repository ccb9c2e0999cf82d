/*
 * The record rules every side enforces before anything is written
 * (PROTOCOL.md §3 and docs/protocol-notes.md). The typed payload checks of
 * METHOD.md's collections are in casework.c.
 */
#include <stdio.h>
#include <string.h>

#include "fieldsync/merge.h"

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

/* Field number 0 is not valid protobuf, but libprotobuf-c 1.4 accepts it in a
 * two-byte tag and keeps it as an unknown field, which it then re-encodes
 * in a form its own decoder refuses. Nothing carrying one is accepted. */
bool
fsp_message_has_field_zero(const ProtobufCMessage *m)
{
	for (size_t i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	return false;
}

bool
fsp_record_has_field_zero(const fsp_record *r)
{
	if (fsp_message_has_field_zero(&r->base))
		return true;
	if (r->version != NULL) {
		if (fsp_message_has_field_zero(&r->version->base))
			return true;
		for (size_t i = 0; i < r->version->n_dots; i++)
			if (fsp_message_has_field_zero(&r->version->dots[i]->base))
				return true;
	}
	return false;
}
