/*
 * The typed collections of METHOD.md as JSON: field names exactly those of
 * casework.proto, enums by their names, times as integer milliseconds.
 * Parsing is strict (unknown fields and wrong types are refused) and ends
 * with the shared fsp_typed_check(), so the SDK accepts exactly what the
 * daemon accepts. Error sentences name fields, never quote values: a
 * payload is personal data.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "json.h"

#define JSON_MAX (4u << 20)
#define STRING_MAX 65536

void
sdk_vv_text(const fsp_vv *v, char *buf, size_t len)
{
	size_t off = 0;
	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; v != NULL && i < v->n_dots; i++) {
		int w = snprintf(buf + off, len - off, "%s%s:%" PRIu64, i ? "," : "",
		                 v->dots[i]->replica, v->dots[i]->counter);
		if (w < 0 || (size_t)w >= len - off) {
			buf[len - 1] = '\0';
			return;
		}
		off += (size_t)w;
	}
}

bool
fs_collection_typed(const char *collection)
{
	return collection != NULL && fsp_collection_typed(collection);
}

/* ---- JSON -> payload ---------------------------------------------------- */

enum ftype { F_BOOL, F_INT64, F_INT32, F_STRING, F_STRINGS, F_ENUM };

typedef struct field {
	const char *name;
	enum ftype type;
	size_t offset;                        /* in the protobuf-c struct */
	size_t count_offset;                  /* F_STRINGS: n_… */
	const ProtobufCEnumDescriptor *enums; /* F_ENUM */
} field;

#define CASE_F(n, t)                                             \
	{                                                        \
#n, t, offsetof(Fieldsync__V1__Case, n), 0, NULL \
	}
#define CONTACT_F(n, t)                                             \
	{                                                           \
#n, t, offsetof(Fieldsync__V1__Contact, n), 0, NULL \
	}

static const field case_fields[] = {
	{"person", F_ENUM, offsetof(Fieldsync__V1__Case, person), 0,
         &fieldsync__v1__case__person__descriptor},
	CASE_F(anonymous, F_BOOL),
	CASE_F(under_18, F_BOOL),
	CASE_F(contact_person, F_STRING),
	CASE_F(first_contact_at_ms, F_INT64),
	{"track", F_ENUM, offsetof(Fieldsync__V1__Case, track), 0,
         &fieldsync__v1__case__track__descriptor},
	CASE_F(ended_at_ms, F_INT64),
	CASE_F(follow_up_wanted, F_BOOL),
	CASE_F(follow_up_channel, F_STRING),
	CASE_F(needs_further_support, F_BOOL),
	CASE_F(taken_over_by, F_STRING),
	CASE_F(notification_duty_informed, F_BOOL),
};

static const field contact_fields[] = {
	CONTACT_F(case_id, F_STRING),
	{"kind", F_ENUM, offsetof(Fieldsync__V1__Contact, kind), 0,
         &fieldsync__v1__contact__kind__descriptor},
	CONTACT_F(held_at_ms, F_INT64),
	CONTACT_F(next_at_ms, F_INT64),
	{"participants", F_STRINGS, offsetof(Fieldsync__V1__Contact, participants),
         offsetof(Fieldsync__V1__Contact, n_participants), NULL},
	CONTACT_F(notes, F_STRING),
	{"decisions", F_STRINGS, offsetof(Fieldsync__V1__Contact, decisions),
         offsetof(Fieldsync__V1__Contact, n_decisions), NULL},
	CONTACT_F(who5, F_INT32),
};

static bool
is_case(const char *c)
{
	return strcmp(c, "case") == 0;
}

static const field *
fields_of(const char *collection, size_t *n)
{
	if (is_case(collection)) {
		*n = sizeof(case_fields) / sizeof(case_fields[0]);
		return case_fields;
	}
	*n = sizeof(contact_fields) / sizeof(contact_fields[0]);
	return contact_fields;
}

/* Integral JSON number within [lo, hi] (and exactly representable). */
static bool
json_int(const cJSON *j, double lo, double hi, int64_t *out)
{
	if (!cJSON_IsNumber(j))
		return false;
	double d = j->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
		return false;
	*out = (int64_t)d;
	return true;
}

/* Sets one field from JSON. Strings are strdup'd into the struct. */
static bool
set_field(void *msg, const field *f, const cJSON *j, char *why, size_t why_len)
{
	char *base = msg;
	int64_t v;
	switch (f->type) {
	case F_BOOL:
		if (!cJSON_IsBool(j))
			goto type;
		*(protobuf_c_boolean *)(base + f->offset) = cJSON_IsTrue(j);
		return true;
	case F_INT64:
		/* 2^53: beyond that a JSON number is not an exact integer */
		if (!json_int(j, -9007199254740992.0, 9007199254740992.0, &v))
			goto type;
		*(int64_t *)(base + f->offset) = v;
		return true;
	case F_INT32:
		if (!json_int(j, -2147483648.0, 2147483647.0, &v))
			goto type;
		*(int32_t *)(base + f->offset) = (int32_t)v;
		return true;
	case F_STRING:
		if (!cJSON_IsString(j) || strlen(j->valuestring) > STRING_MAX)
			goto type;
		if ((*(char **)(base + f->offset) = strdup(j->valuestring)) == NULL)
			goto nomem;
		return true;
	case F_ENUM: {
		const ProtobufCEnumValue *ev;
		if (!cJSON_IsString(j))
			goto type;
		ev = protobuf_c_enum_descriptor_get_value_by_name(f->enums, j->valuestring);
		if (ev == NULL) { /* name the valid ones: the fix is one of them */
			int w = snprintf(why, why_len, "field \"%s\" takes one of ", f->name);
			for (unsigned i = 0;
			     w >= 0 && (size_t)w < why_len && i < f->enums->n_values; i++)
				w += snprintf(why + w, why_len - (size_t)w, "%s%s", i ? ", " : "",
				              f->enums->values[i].name);
			return false;
		}
		*(int *)(base + f->offset) = ev->value;
		return true;
	}
	case F_STRINGS: {
		if (!cJSON_IsArray(j))
			goto type;
		size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
		char **arr = calloc(n ? n : 1, sizeof(char *));
		if (arr == NULL)
			goto nomem;
		*(char ***)(base + f->offset) = arr;
		const cJSON *el;
		cJSON_ArrayForEach(el, j)
		{
			if (!cJSON_IsString(el) || strlen(el->valuestring) > STRING_MAX) {
				snprintf(why, why_len, "field \"%s\" must be an array of strings",
				         f->name);
				return false;
			}
			if ((arr[i] = strdup(el->valuestring)) == NULL)
				goto nomem;
			*(size_t *)(base + f->count_offset) = ++i;
		}
		return true;
	}
	}
type:
	snprintf(why, why_len, "field \"%s\" has the wrong type (%s)", f->name,
	         f->type == F_BOOL     ? "want true or false"
	         : f->type == F_STRING ? "want a string"
	         : f->type == F_ENUM   ? "want an enum name"
	                               : "want an integer");
	return false;
nomem:
	snprintf(why, why_len, "out of memory");
	return false;
}

static void
free_strings(void *msg, const field *fs, size_t nf)
{
	char *base = msg;
	for (size_t i = 0; i < nf; i++) {
		if (fs[i].type == F_STRING) {
			char *p = *(char **)(base + fs[i].offset);
			if (p != protobuf_c_empty_string)
				free(p);
		} else if (fs[i].type == F_STRINGS) {
			char **arr = *(char ***)(base + fs[i].offset);
			size_t n = *(size_t *)(base + fs[i].count_offset);
			for (size_t k = 0; k < n; k++)
				free(arr[k]);
			free(arr);
		}
	}
}

static fs_err
json_to_payload(const char *collection, const char *json, size_t json_len, uint8_t **out,
                size_t *out_len, char *why, size_t why_len)
{
	cJSON *root = NULL;
	fs_err err = FS_ERR_INVALID;
	Fieldsync__V1__Case cs = FIELDSYNC__V1__CASE__INIT;
	Fieldsync__V1__Contact ct = FIELDSYNC__V1__CONTACT__INIT;
	void *msg;
	size_t nf;
	const field *fs;
	char dummy[8];
	uint8_t *buf = NULL;

	if (why == NULL) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	if (why_len)
		why[0] = '\0';
	if (!fs_collection_typed(collection) || json == NULL || out == NULL || out_len == NULL) {
		snprintf(why, why_len, "not a typed collection");
		return FS_ERR_INVALID;
	}
	fs = fields_of(collection, &nf);
	msg = is_case(collection) ? (void *)&cs : (void *)&ct;
	ct.who5 = -1; /* absent means "not taken", not a score of 0 */
	if (json_len > JSON_MAX) {
		snprintf(why, why_len, "the JSON is larger than %u bytes", JSON_MAX);
		goto out;
	}
	root = cJSON_ParseWithLength(json, json_len);
	if (root == NULL) {
		snprintf(why, why_len, "not valid JSON");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(why, why_len, "a %s must be a JSON object", collection);
		goto out;
	}
	const cJSON *m;
	cJSON_ArrayForEach(m, root)
	{
		const field *f = NULL;
		for (size_t i = 0; i < nf && f == NULL; i++)
			if (strcmp(fs[i].name, m->string) == 0)
				f = &fs[i];
		if (f == NULL) {
			/* the name comes from the input; keep it short and printable */
			char name[40];
			size_t k = 0;
			for (const char *p = m->string; *p && k < sizeof(name) - 1; p++)
				name[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
			name[k] = '\0';
			snprintf(why, why_len, "unknown field \"%s\" for a %s", name, collection);
			goto out;
		}
		/* a repeated key would silently override: refuse it */
		for (const cJSON *p = root->child; p != m; p = p->next)
			if (strcmp(p->string, m->string) == 0) {
				snprintf(why, why_len, "field \"%s\" is given twice", f->name);
				goto out;
			}
		if (!set_field(msg, f, m, why, why_len)) {
			if (strcmp(why, "out of memory") == 0)
				err = FS_ERR_NOMEM;
			goto out;
		}
	}
	size_t n = is_case(collection) ? fieldsync__v1__case__get_packed_size(&cs)
	                               : fieldsync__v1__contact__get_packed_size(&ct);
	if ((buf = malloc(n ? n : 1)) == NULL) {
		err = FS_ERR_NOMEM;
		goto out;
	}
	if (is_case(collection))
		fieldsync__v1__case__pack(&cs, buf);
	else
		fieldsync__v1__contact__pack(&ct, buf);
	if (!fsp_typed_check(collection, buf, n, why, why_len))
		goto out;
	*out = buf;
	*out_len = n;
	buf = NULL;
	err = FS_OK;
out:
	free_strings(msg, fs, nf);
	free(buf);
	cJSON_Delete(root);
	return err;
}

/* ---- payload -> JSON ---------------------------------------------------- */

static bool
add_int64(cJSON *o, const char *name, int64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRId64, v);
	return cJSON_AddRawToObject(o, name, b) != NULL;
}

fs_err
fs_payload_to_json(const char *collection, const uint8_t *payload, size_t len, char **out)
{
	cJSON *o = NULL;
	ProtobufCMessage *pm = NULL;
	fs_err err = FS_ERR_NOMEM;
	size_t nf;
	const field *fs;

	if (!fs_collection_typed(collection) || out == NULL || (len && payload == NULL))
		return FS_ERR_INVALID;
	fs = fields_of(collection, &nf);
	pm = is_case(collection)
	             ? (ProtobufCMessage *)fieldsync__v1__case__unpack(NULL, len, payload)
	             : (ProtobufCMessage *)fieldsync__v1__contact__unpack(NULL, len, payload);
	if (pm == NULL)
		return FS_ERR_CORRUPT;
	if ((o = cJSON_CreateObject()) == NULL)
		goto out;
	const char *base = (const char *)pm;
	for (size_t i = 0; i < nf; i++) {
		const field *f = &fs[i];
		bool ok = true;
		switch (f->type) {
		case F_BOOL:
			ok = cJSON_AddBoolToObject(o, f->name,
			                           *(const protobuf_c_boolean *)(base +
			                                                         f->offset)) !=
			     NULL;
			break;
		case F_INT64:
			ok = add_int64(o, f->name, *(const int64_t *)(base + f->offset));
			break;
		case F_INT32:
			ok = add_int64(o, f->name, *(const int32_t *)(base + f->offset));
			break;
		case F_STRING:
			ok = cJSON_AddStringToObject(o, f->name,
			                             *(char *const *)(base + f->offset)) != NULL;
			break;
		case F_ENUM: {
			int v = *(const int *)(base + f->offset);
			const ProtobufCEnumValue *ev =
				protobuf_c_enum_descriptor_get_value(f->enums, v);
			if (ev != NULL)
				ok = cJSON_AddStringToObject(o, f->name, ev->name) != NULL;
			else /* an enum this version does not know: keep the number */
				ok = add_int64(o, f->name, v);
			break;
		}
		case F_STRINGS: {
			char *const *arr = *(char *const *const *)(base + f->offset);
			size_t n = *(const size_t *)(base + f->count_offset);
			cJSON *a = cJSON_AddArrayToObject(o, f->name);
			ok = a != NULL;
			for (size_t k = 0; ok && k < n; k++) {
				cJSON *sj = cJSON_CreateString(arr[k]);
				ok = sj != NULL && cJSON_AddItemToArray(a, sj);
			}
			break;
		}
		}
		if (!ok)
			goto out;
	}
	if ((*out = cJSON_PrintUnformatted(o)) == NULL)
		goto out;
	err = FS_OK;
out:
	cJSON_Delete(o);
	protobuf_c_message_free_unpacked(pm, NULL);
	return err;
}

/* The conversion, with its sentence in why and in fs_last_error_detail(). */
fs_err
fs_json_to_payload(const char *collection, const char *json, size_t json_len, uint8_t **out,
                   size_t *out_len, char *why, size_t why_len)
{
	char w[256] = "";
	fs_err e;

	sdk_detail_clear();
	e = json_to_payload(collection, json, json_len, out, out_len, w, sizeof(w));
	if (why != NULL && why_len > 0)
		snprintf(why, why_len, "%s", w);
	if (e != FS_OK)
		sdk_detail("json: %s", w);
	return e;
}
