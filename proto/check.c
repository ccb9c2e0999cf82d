/*
 * The record rules every side enforces before anything is written
 * (PROTOCOL.md §3 and docs/protocol-notes.md). The typed payload checks of
 * METHOD.md's collections are in casework.c. Strict input (PROTOCOL.md
 * §2: UTF-8 in every string, no unknown field in a Record) is here too, so
 * the daemon (on a push) and the SDK (on a pull) refuse the same bytes.
 */
#include <stdint.h>
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

/* ---- strict input (PROTOCOL.md §2) ---------------------------------------- */

bool
fsp_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false; /* a continuation byte, an overlong lead, or 0xf5.. */
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, beyond Unicode, or a surrogate */
		i += k + 1;
	}
	return true;
}

static bool
strict_string(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *s,
              char *why, size_t len)
{
	if (s == NULL || fsp_utf8_valid(s, strlen(s)))
		return true;
	snprintf(why, len, "%s.%s is not valid UTF-8", m->descriptor->short_name, f->name);
	return false;
}

bool
fsp_message_strict(const ProtobufCMessage *m, bool unknown_ok, char *why, size_t len)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (!unknown_ok && m->n_unknown_fields > 0) {
		snprintf(why, len, "%s holds field number %u, which the protocol does not define",
		         d->short_name, (unsigned)m->unknown_fields[0].tag);
		return false;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			void *const *arr = *(void *const *const *)(base + f->offset);
			for (size_t k = 0; k < n; k++) {
				if (f->type == PROTOBUF_C_TYPE_STRING) {
					if (!strict_string(m, f, arr[k], why, len))
						return false;
				} else if (arr[k] != NULL &&
				           !fsp_message_strict(arr[k], unknown_ok, why, len)) {
					return false;
				}
			}
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue; /* another member of the oneof is set */
		const void *v = *(const void *const *)(base + f->offset);
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			if (!strict_string(m, f, v, why, len))
				return false;
		} else if (v != NULL && !fsp_message_strict(v, unknown_ok, why, len)) {
			return false;
		}
	}
	return true;
}

bool
fsp_record_strict(const fsp_record *r, char *why, size_t len)
{
	if (!fsp_message_strict(&r->base, false, why, len))
		return false;
	return fsp_record_check(r, why, len);
}

bool
fsp_record_state_strict(const Fieldsync__V1__RecordState *rs, char *why, size_t len)
{
	/* RecordState may grow fields a newer daemon sends (their numbers are
	 * let through); its siblings are Records and must be exact. One walk
	 * of each sibling: its strings, its unknown fields, its record rules. */
	size_t idlen = rs->id != NULL ? strlen(rs->id) : 0;
	if (rs->collection == NULL || rs->scope == NULL || !fsp_collection_valid(rs->collection) ||
	    idlen == 0 || idlen > FSP_ID_MAX || !fsp_utf8_valid(rs->id, idlen) ||
	    !fsp_scope_valid(rs->scope)) {
		snprintf(why, len, "the record state's collection, id or scope is malformed");
		return false;
	}
	for (size_t i = 0; i < rs->n_siblings; i++) {
		const fsp_record *s = rs->siblings[i];
		if (s == NULL) {
			snprintf(why, len, "an empty sibling");
			return false;
		}
		if (!fsp_record_strict(s, why, len))
			return false;
		if (strcmp(s->collection, rs->collection) != 0 || strcmp(s->id, rs->id) != 0) {
			snprintf(why, len, "a sibling names another record");
			return false;
		}
	}
	return true;
}
