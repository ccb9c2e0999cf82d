/*
 * libFuzzer target: the typed payloads of docs/method.md and the Record that
 * carries them (docs/protocol.md §3), as they arrive from a tablet or a pull.
 *
 * The same bytes are given to every decoder:
 *   - fsp_typed_check("case"|"contact", ...) (proto/check.c), which the
 *     daemon runs on each pushed typed record and the SDK on each write;
 *     an opaque collection must always pass;
 *   - the generated fieldsync__v1__case__unpack()/contact__unpack(): a
 *     payload the check accepts must decode, re-pack to get_packed_size()
 *     bytes, and pass the check again after re-packing;
 *   - fs_payload_to_json() (client-sdk/src/json.c), what `fieldsync get`
 *     prints for a pulled record: it must succeed exactly when the bytes
 *     decode, and for a payload the check accepts its JSON must convert
 *     back with fs_json_to_payload() when every integer fits a JSON number
 *     (|v| <= 2^53) and every string fits the JSON side's cap;
 *   - fieldsync__v1__record__unpack() + fsp_record_check(), then the typed
 *     check on the record's own payload when its collection is typed.
 * Any violation calls abort(), so libFuzzer records it as a crash.
 * Known findings (fuzz_known.h) are stepped over only with FUZZ_SKIP_KNOWN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldsync/fieldsync.h"
#include "fieldsync/merge.h"
#include "fieldsync/v1/casework.pb-c.h"
#include "fieldsync/v1/sync.pb-c.h"
#include "fuzz_known.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define JSON_EXACT_MAX 9007199254740992LL /* 2^53 */
#define JSON_STRING_MAX 65536             /* client-sdk/src/json.c STRING_MAX */

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_payloads: %s\n", what);
	abort();
}

/* pack(m) writes get_packed_size(m) bytes; returns them (caller frees). */
static uint8_t *
repack(const ProtobufCMessage *m, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	if (buf == NULL)
		fail("out of memory");
	if (protobuf_c_message_pack(m, buf) != n)
		fail("pack() length differs from get_packed_size()");
	*len = n;
	return buf;
}

static bool
int_fits(int64_t v)
{
	return v >= -JSON_EXACT_MAX && v <= JSON_EXACT_MAX;
}

static bool
str_fits(const char *s)
{
	return strlen(s) <= JSON_STRING_MAX;
}

/* Can the JSON of this (checked) case come back through fs_json_to_payload? */
static bool
case_json_safe(const Fieldsync__V1__Case *c)
{
	return int_fits(c->first_contact_at_ms) && int_fits(c->ended_at_ms) &&
	       str_fits(c->contact_person) && str_fits(c->follow_up_channel) &&
	       str_fits(c->taken_over_by);
}

static bool
contact_json_safe(const Fieldsync__V1__Contact *c)
{
	if (!int_fits(c->held_at_ms) || !int_fits(c->next_at_ms) || !str_fits(c->case_id) ||
	    !str_fits(c->notes))
		return false;
	for (size_t i = 0; i < c->n_participants; i++)
		if (!str_fits(c->participants[i]))
			return false;
	for (size_t i = 0; i < c->n_decisions; i++)
		if (!str_fits(c->decisions[i]))
			return false;
	return true;
}

/* One typed collection: check, decode, re-pack, print as JSON and back. */
static void
typed(const char *collection, const uint8_t *data, size_t size)
{
	char why[256] = "";
	bool is_case = strcmp(collection, "case") == 0;
	bool ok = fsp_typed_check(collection, data, size, why, sizeof(why));
	if (!ok && why[0] == '\0')
		fail("fsp_typed_check refused without saying why");

	ProtobufCMessage *m =
	    is_case ? (ProtobufCMessage *)fieldsync__v1__case__unpack(NULL, size, data)
	            : (ProtobufCMessage *)fieldsync__v1__contact__unpack(NULL, size, data);
	if (ok && m == NULL)
		fail("fsp_typed_check accepted bytes that do not decode");

	char *json = NULL;
	fs_err je = fs_payload_to_json(collection, data, size, &json);
	if ((je == FS_OK) != (m != NULL))
		fail("fs_payload_to_json disagrees with the decoder");
	if (je != FS_OK && je != FS_ERR_CORRUPT)
		fail("fs_payload_to_json: unexpected error");
	if (m == NULL)
		return;
	if (fuzz_known_skip(m)) {
		if (ok)
			fail("fsp_typed_check accepted a payload holding field 0");
		free(json);
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}

	size_t n;
	uint8_t *buf = repack(m, &n);
	if (ok && !fsp_typed_check(collection, buf, n, why, sizeof(why)))
		fail("a checked payload fails the check after re-packing");
	free(buf);

	bool safe = is_case ? case_json_safe((const Fieldsync__V1__Case *)m)
	                    : contact_json_safe((const Fieldsync__V1__Contact *)m);
	if (ok && safe) {
		uint8_t *back = NULL;
		size_t back_len = 0;
		char *json2 = NULL;
		if (fs_json_to_payload(collection, json, strlen(json), &back, &back_len, why,
		                       sizeof(why)) != FS_OK)
			fail("the JSON of a checked payload does not convert back");
		if (fs_payload_to_json(collection, back, back_len, &json2) != FS_OK ||
		    strcmp(json, json2) != 0)
			fail("payload -> JSON -> payload -> JSON changed the JSON");
		free(json2);
		free(back);
	}
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
record(const uint8_t *data, size_t size)
{
	char why[256] = "";
	Fieldsync__V1__Record *r = fieldsync__v1__record__unpack(NULL, size, data);
	if (r == NULL)
		return;
	size_t n;
	free(repack(&r->base, &n));
	if (fsp_record_check(r, why, sizeof(why))) {
		if (!r->deleted && fsp_collection_typed(r->collection))
			typed(r->collection, r->payload.data, r->payload.len);
	} else if (why[0] == '\0') {
		fail("fsp_record_check refused without saying why");
	}
	fieldsync__v1__record__free_unpacked(r, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[64];

	typed("case", data, size);
	typed("contact", data, size);
	if (!fsp_typed_check("notes", data, size, why, sizeof(why)))
		fail("an opaque collection failed the typed check");
	record(data, size);
	return 0;
}
