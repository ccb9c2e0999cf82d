/*
 * libfieldsync-proto (see fieldsync/casework.h): the casework collections
 * of METHOD.md. The case a contact belongs to, and the typed payload checks
 * every side runs before a "case" or "contact" value is written (moved here
 * from check.c, same API), among them that a case's contact_person is a
 * staff identifier, never a name (METHOD.md revision 2, item 9): reminder
 * events copy it and are stored and published in clear.
 *
 * Layer: the shared core; depends on the generated casework code and on
 * check.c's field-zero test only. Pure functions, thread-safe, no logging.
 */
#include <stdio.h>
#include <string.h>

#include "fieldsync/casework.h"
#include "fieldsync/merge.h" /* fsp_message_has_field_zero */
#include "fieldsync/v1/casework.pb-c.h"

bool
fsp_case_id_valid(const char *case_id)
{
	return case_id != NULL && case_id[0] != '\0' &&
	       strnlen(case_id, FSP_ID_MAX + 1) <= FSP_ID_MAX;
}

bool
fsp_staff_id_valid(const char *id)
{
	size_t n = 0;
	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++) {
		char c = id[n];
		if (n == FSP_STAFF_ID_MAX ||
		    !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

bool
fsp_contact_case_id(const uint8_t *payload, size_t len, char out[FSP_ID_MAX + 1])
{
	Fieldsync__V1__Contact *c;
	bool ok = false;

	out[0] = '\0';
	if (payload == NULL && len > 0)
		return false;
	if ((c = fieldsync__v1__contact__unpack(NULL, len, payload)) == NULL)
		return false;
	if (fsp_case_id_valid(c->case_id)) {
		size_t l = strlen(c->case_id);
		memcpy(out, c->case_id, l + 1);
		ok = true;
	}
	fieldsync__v1__contact__free_unpacked(c, NULL);
	return ok;
}

size_t
fsp_contact_case_ids(const Fieldsync__V1__RecordState *rs, char ids[][FSP_ID_MAX + 1], size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; rs != NULL && i < rs->n_siblings && n < cap; i++) {
		const Fieldsync__V1__Record *v = rs->siblings[i];
		char id[FSP_ID_MAX + 1];
		bool dup = false;
		if (v->deleted || !fsp_contact_case_id(v->payload.data, v->payload.len, id))
			continue;
		for (size_t k = 0; k < n && !dup; k++)
			dup = strcmp(ids[k], id) == 0;
		if (!dup)
			memcpy(ids[n++], id, strlen(id) + 1);
	}
	return n;
}

bool
fsp_collection_typed(const char *collection)
{
	return strcmp(collection, "case") == 0 || strcmp(collection, "contact") == 0;
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
	if (fsp_message_has_field_zero(&c->base))
		snprintf(why, len, "payload of a case holds field number 0 (not valid protobuf)");
	else if ((unsigned)c->person > FIELDSYNC__V1__CASE__PERSON__PARENT)
		snprintf(why, len, "case.person is not a known value");
	else if ((unsigned)c->track > FIELDSYNC__V1__CASE__TRACK__PARENT_ACTIVITIES)
		snprintf(why, len, "case.track is not a known value");
	else if (c->first_contact_at_ms < 0 || c->ended_at_ms < 0)
		snprintf(why, len, "case times must not be negative");
	else if (c->contact_person != NULL && c->contact_person[0] != '\0' &&
	         !fsp_staff_id_valid(c->contact_person))
		snprintf(why, len,
		         "case.contact_person must be a staff identifier ([A-Za-z0-9._-]{1,%d}), "
		         "never a name (METHOD.md revision 2, item 9)",
		         FSP_STAFF_ID_MAX);
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
	if (fsp_message_has_field_zero(&c->base))
		snprintf(why, len,
		         "payload of a contact holds field number 0 (not valid protobuf)");
	else if (!fsp_case_id_valid(c->case_id))
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
fsp_typed_check(const char *collection, const uint8_t *payload, size_t len, char *why,
                size_t why_len)
{
	if (strcmp(collection, "case") == 0)
		return check_case(payload, len, why, why_len);
	if (strcmp(collection, "contact") == 0)
		return check_contact(payload, len, why, why_len);
	return true;
}
